/*
 * trades.c — the venue-independent side of trading: dispatching a swap to a
 * market's ops, and the /events/trades table every venue writes to.
 *
 * The table is created by the world builder before the run starts, empty if
 * nothing trades, so the layout never depends on what happened.  `venue` and
 * `agent` are entity ids (their names are the columns' flag_meanings, as in
 * /entities); `cause` and `side` are small codes with their names.
 *
 * Cascade tags (spiral/market.h): each liquidation-driven trade pushes
 * (now, generation) into its venue's tag, a max-queue kept in the venue's
 * own state (ops->tag), and every trade calls the venue's watchers (oracles
 * that publish on trades), which only schedule events.
 */
#include <stdlib.h>
#include <string.h>
#include "spiral/market.h"
#include "spiral/recorder.h"
#include "spiral/error.h"
#include "sim-internal.h"

const char *const sp_cause_names[] = {
#define SP_CAUSE_NAME_(name, text) text,
    SP_CAUSE_MAP(SP_CAUSE_NAME_)
#undef SP_CAUSE_NAME_
    NULL
};

static const char *const side_names[] = { "buy", "sell", NULL };

const struct sp_market_ops *sp_market_ops_of(const struct sp_sim *sim, sp_id id)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    if (!ops || strcmp(ops->kind, "market") != 0) return NULL;
    return (const struct sp_market_ops *)ops;   /* market ops embed the base first */
}

int sp_market_swap(struct sp_sim *sim, sp_id venue, const struct sp_swap *req,
                   struct sp_swap_result *res)
{
    const struct sp_market_ops *m = sp_market_ops_of(sim, venue);
    if (!m || !m->swap) return SP_EINVAL;
    struct sp_swap_result tmp;
    return m->swap(sp_sim_entity_state(sim, venue), sim, req, res ? res : &tmp);
}

int sp_trades_open(struct sp_sim *sim, struct sp_rec *rec)
{
    size_t n = sim->n_ents;
    const char **names = calloc(n + 1, sizeof *names);
    if (!names) return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) names[i] = sim->ents[i].name;
    const struct sp_rec_col cols[] = {
        { "t", SP_REC_F64, "s", "trade time", NULL },
        { "venue", SP_REC_I32, "1", "market entity id", names },
        { "agent", SP_REC_I32, "1", "trading entity id", names },
        { "cause", SP_REC_I8, "1", "why the trade happened", sp_cause_names },
        { "side", SP_REC_I8, "1", "buy: quote in, base out; sell: base in, quote out", side_names },
        { "amount_in", SP_REC_F64, "token", "amount paid (quote for buy, base for sell)", NULL },
        { "amount_out", SP_REC_F64, "token", "amount received", NULL },
        { "price_before", SP_REC_F64, "quote per base", "venue price before the trade", NULL },
        { "price_after", SP_REC_F64, "quote per base", "venue price after the trade", NULL },
        { "generation", SP_REC_I32, "1", "cascade generation (0 = exogenous)", NULL },
    };
    int rc = sp_rec_table_create(rec, "/events/trades", cols, sizeof cols / sizeof cols[0],
                                 &sim->trades);
    free(names);
    return rc;
}

static struct sp_venue_tag *tag_of(struct sp_sim *sim, sp_id venue)
{
    const struct sp_market_ops *m = sp_market_ops_of(sim, venue);
    return m && m->tag ? m->tag(sp_sim_entity_state(sim, venue)) : NULL;
}

static void tag_push(struct sp_venue_tag *g, sp_time t, int gen)
{
    while (g->n > 0 && g->gen[g->n - 1] <= gen) g->n--;
    if (g->n == SP_VENUE_TAG_MAX) {                   /* drop the oldest */
        memmove(g->t, g->t + 1, (SP_VENUE_TAG_MAX - 1) * sizeof *g->t);
        memmove(g->gen, g->gen + 1, (SP_VENUE_TAG_MAX - 1) * sizeof *g->gen);
        g->n--;
    }
    g->t[g->n] = t;
    g->gen[g->n] = gen;
    g->n++;
}

int sp_venue_liq_generation(struct sp_sim *sim, sp_id venue, sp_time since)
{
    struct sp_venue_tag *g = tag_of(sim, venue);
    if (!g) return -1;
    for (int i = 0; i < g->n; i++)
        if (g->t[i] >= since) return g->gen[i];
    return -1;
}

int sp_venue_watch(struct sp_sim *sim, sp_id venue, sp_venue_watch_fn fn, void *arg)
{
    struct sp_venue_tag *g = tag_of(sim, venue);
    if (!g || !fn) return SP_EINVAL;
    if (g->n_watch == SP_VENUE_WATCH_MAX) return SP_ERANGE;
    g->watch[g->n_watch] = fn;
    g->watch_arg[g->n_watch] = arg;
    g->n_watch++;
    return SP_OK;
}

void sp_trade_record(struct sp_sim *sim, const struct sp_trade *tr)
{
    sim->n_trades++;
    struct sp_venue_tag *g = tag_of(sim, tr->venue);
    if (g) {
        if (tr->cause == SP_CAUSE_LIQUIDATION || tr->propagates)
            tag_push(g, sim->now, tr->generation > 0 ? tr->generation : 0);
        for (int i = 0; i < g->n_watch; i++) g->watch[i](g->watch_arg[i], sim, tr->venue);
    }
    if (!sim->trades) return;
    union sp_rec_val row[10];
    row[0].f = sp_time_sec(sim->now);
    row[1].i = tr->venue;
    row[2].i = tr->agent;
    row[3].i = tr->cause;
    row[4].i = tr->side;
    row[5].f = tr->amount_in;
    row[6].f = tr->amount_out;
    row[7].f = tr->price_before;
    row[8].f = tr->price_after;
    row[9].i = tr->generation;
    sp_rec_append(sim->trades, row);
}
