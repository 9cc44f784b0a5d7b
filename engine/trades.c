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
 *
 * Counterfactual without feedback (`counterfactual: no-feedback`,
 * sim->no_feedback): a swap of cause SP_CAUSE_LIQUIDATION never reaches its
 * venue.  The sink burns the seller's input and mints the output at the
 * reference price of the venue's pair, p = sp_token_value(base) /
 * sp_token_value(quote) (a base token: its reference process; a stable
 * without one: 1; an lst: rate x its underlying's reference), with no fee,
 * no slippage and no min_out (the seller sized the sale on the venue's
 * quote; the sink always fills it).  The sale is a row of /events/trades as
 * usual (venue: the one it would have hit; price_before = price_after =
 * that venue's price), but it neither tags the venue nor calls its watchers:
 * nothing moved, so no oracle and no arbitrageur has anything to follow,
 * and generations stay 0.  Supplies change by the burn and the mint, so
 * sp_ledger_check holds.
 */
#include <math.h>
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

static void trade_row(struct sp_sim *sim, const struct sp_trade *tr);

/* The no-feedback sink (see the top of the file). */
static int sink_swap(struct sp_sim *sim, sp_id venue, const struct sp_market_ops *m,
                     const struct sp_swap *req, struct sp_swap_result *res)
{
    void *st = sp_sim_entity_state(sim, venue);
    if (!m->pair || !req || (req->side != SP_BUY && req->side != SP_SELL) ||
        req->agent == venue || req->agent >= (sp_id)sim->n_ents ||
        !(req->amount_in > 0.0 && req->amount_in < INFINITY))
        return SP_EINVAL;
    sp_token base, quote;
    m->pair(st, &base, &quote);
    double p = sp_token_value(sim, base) / sp_token_value(sim, quote);
    if (!(p > 0) || !isfinite(p)) {
        sp_sim_fail(sim, SP_EMODEL, "counterfactual no-feedback: no reference price for %s/%s "
                    "(venue '%s'): give %s a reference process", sp_token_name(sim, base),
                    sp_token_name(sim, quote), sp_sim_entity_name(sim, venue),
                    sp_token_name(sim, base));
        return SP_EMODEL;
    }
    sp_token in = req->side == SP_SELL ? base : quote, out_tok = req->side == SP_SELL ? quote : base;
    if (!(sp_balance(sim, req->agent, in) >= req->amount_in)) return SP_ERANGE;
    double out = req->side == SP_SELL ? req->amount_in * p : req->amount_in / p;
    int rc;
    if ((rc = sp_burn(sim, in, req->agent, req->amount_in))) return rc;
    if ((rc = sp_mint(sim, out_tok, req->agent, out))) return rc;
    double price = m->price ? m->price(st) : NAN;
    struct sp_trade tr = {
        .venue = venue, .agent = req->agent, .cause = req->cause, .side = req->side,
        .generation = req->generation, .amount_in = req->amount_in, .amount_out = out,
        .price_before = price, .price_after = price, .propagates = false,
    };
    sim->n_trades++;
    trade_row(sim, &tr);
    res->amount_in = req->amount_in;
    res->amount_out = out;
    res->price_before = res->price_after = price;
    return SP_OK;
}

int sp_market_swap(struct sp_sim *sim, sp_id venue, const struct sp_swap *req,
                   struct sp_swap_result *res)
{
    const struct sp_market_ops *m = sp_market_ops_of(sim, venue);
    if (!m || !m->swap) return SP_EINVAL;
    struct sp_swap_result tmp;
    if (sim->no_feedback && req && req->cause == SP_CAUSE_LIQUIDATION)
        return sink_swap(sim, venue, m, req, res ? res : &tmp);
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
    trade_row(sim, tr);
}

/* The /events/trades row only. */
static void trade_row(struct sp_sim *sim, const struct sp_trade *tr)
{
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
