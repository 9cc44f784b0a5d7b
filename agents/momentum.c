/*
 * momentum.c — momentum traders (agents, type "momentum"): a moving-average
 * crossover on the venue's price, traded with market orders, as ABIDES's
 * MomentumAgent.
 *
 * At Poisson arrivals (exponential gaps, mean `mean_interval` drawn per
 * member) a member reads the venue's price (an order book's mid; skipped
 * while it is undefined) into a ring of the last `long_window` readings.
 * Once the ring is full it compares the means of the last `short_window`
 * and of all `long_window` readings: short above long by more than
 * `threshold` (relative) -> market buy of `size` base units (spending
 * size x price of quote), below by more -> market sell of `size`; between
 * -> nothing.  It trades only what it holds.  Trades carry cause
 * "momentum".
 *
 * Snapshot: the ring's next write position and the readings it holds
 * (ring[0 .. n): until it is full they are written in order from 0, so
 * head = n; once full, all long_window slots).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"

enum { EV_ARRIVE = 1 };

#define MOM_MAX_WINDOW 1024

struct momentum_cfg {
    int64_t count;
    const char *venue;
    struct sp_dist cash, inventory, mean_interval, size;
    int64_t short_window, long_window;
    double threshold;
};

struct momentum {
    const struct momentum_cfg *cfg;
    sp_id id, venue;
    sp_token base, quote;
    double mean_interval;
    double ring[MOM_MAX_WINDOW];
    size_t n, head;              /* readings held; next write position */
};

static int momentum_check(void *bound, const struct sp_check_ctx *ctx);

static const struct sp_field momentum_fields[] = {
    { "count", SP_T_INT, SP_F_MIN, 1, 0, "1", "agents",
      "Population size: members NAME_0 .. NAME_{count-1}.",
      offsetof(struct momentum_cfg, count), NULL, 0 },
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The market it trades on.",
      offsetof(struct momentum_cfg, venue), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote",
      "Endowment of the quote token, minted at init.", offsetof(struct momentum_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base",
      "Endowment of the base token, minted at init.",
      offsetof(struct momentum_cfg, inventory), NULL, 0 },
    { "mean_interval", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "37", "s",
      "Mean time between arrivals (exponential gaps), drawn per member.",
      offsetof(struct momentum_cfg, mean_interval), NULL, 0 },
    { "size", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "1", "base", "Order size, drawn per order.",
      offsetof(struct momentum_cfg, size), NULL, 0 },
    { "short_window", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, MOM_MAX_WINDOW, "20", "readings",
      "Readings in the short moving average.",
      offsetof(struct momentum_cfg, short_window), NULL, 0 },
    { "long_window", SP_T_INT, SP_F_MIN | SP_F_MAX, 2, MOM_MAX_WINDOW, "50", "readings",
      "Readings in the long moving average (> short_window).",
      offsetof(struct momentum_cfg, long_window), NULL, 0 },
    { "threshold", SP_T_FRACTION, SP_F_MIN, 0, 0, "0%", "fraction",
      "Trade only when the averages differ by more than this (relative to the long one).",
      offsetof(struct momentum_cfg, threshold), NULL, 0 },
};

static const struct sp_schema momentum_schema = {
    "agents[type: momentum]",
    "Momentum traders: moving-average crossover on the venue's price, market orders.",
    momentum_fields, sizeof momentum_fields / sizeof momentum_fields[0],
    sizeof(struct momentum_cfg), momentum_check
};

static int momentum_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct momentum_cfg *c = bound;
    if (c->short_window >= c->long_window) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "short_window"),
                      "short_window (%lld) must be less than long_window (%lld)",
                      (long long)c->short_window, (long long)c->long_window);
        return SP_ECONFIG;
    }
    return SP_OK;
}

static size_t momentum_count(const void *cfg)
{
    return (size_t)((const struct momentum_cfg *)cfg)->count;
}

static double draw_pos(const struct sp_dist *d, struct sp_rng *rng)
{
    double x = sp_dist_draw(d, rng);
    return x > 0 ? x : 0;
}

static int momentum_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct momentum *a = self;
    const struct momentum_cfg *c = cfg;
    a->cfg = c;
    a->id = id;
    a->venue = sp_sim_find(sim, c->venue);
    const struct sp_market_ops *m = a->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, a->venue);
    if (!m) {
        sp_sim_fail(sim, SP_ECONFIG, "venue '%s' is not a market", c->venue);
        return SP_ECONFIG;
    }
    m->pair(sp_sim_entity_state(sim, a->venue), &a->base, &a->quote);
    struct sp_rng *rng = sp_sim_rng(sim, id);
    int rc = sp_mint(sim, a->quote, id, draw_pos(&c->cash, rng));
    if (!rc) rc = sp_mint(sim, a->base, id, draw_pos(&c->inventory, rng));
    a->mean_interval = sp_dist_draw(&c->mean_interval, rng);
    if (!rc && !(a->mean_interval > 0)) {
        sp_sim_fail(sim, SP_ECONFIG, "%s: mean_interval drew %g s, must be > 0",
                    sp_sim_entity_name(sim, id), a->mean_interval);
        rc = SP_ECONFIG;
    }
    return rc;
}

static sp_time next_gap(struct momentum *a, struct sp_sim *sim)
{
    sp_time dt = (sp_time)(sp_rng_exponential(sp_sim_rng(sim, a->id), a->mean_interval) * 1e6);
    return dt > 0 ? dt : 1;
}

static int momentum_start(void *self, struct sp_sim *sim)
{
    struct momentum *a = self;
    sp_time t = sp_sim_now(sim) + next_gap(a, sim);
    if (t > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, t, SP_PRIO_AGENT, a->id, EV_ARRIVE) ? SP_OK : SP_ENOMEM;
}

/* Mean of the last k readings (k <= n). */
static double last_mean(const struct momentum *a, size_t k)
{
    size_t cap = (size_t)a->cfg->long_window;
    double s = 0;
    for (size_t i = 1; i <= k; i++) s += a->ring[(a->head + cap - i) % cap];
    return s / (double)k;
}

static void momentum_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct momentum *a = self;
    const struct momentum_cfg *c = a->cfg;
    const struct sp_market_ops *m = sp_market_ops_of(sim, a->venue);
    double px = m->price(sp_sim_entity_state(sim, a->venue));
    struct sp_rng *rng = sp_sim_rng(sim, a->id);
    double size = sp_dist_draw(&c->size, rng);
    if (isfinite(px) && px > 0) {
        size_t cap = (size_t)c->long_window;
        a->ring[a->head] = px;
        a->head = (a->head + 1) % cap;
        if (a->n < cap) a->n++;
        if (a->n == cap && size > 0) {
            double s = last_mean(a, (size_t)c->short_window), l = last_mean(a, cap);
            double gap = (s - l) / l;
            if (fabs(gap) > c->threshold && gap != 0) {
                enum sp_side side = gap > 0 ? SP_BUY : SP_SELL;
                double amount = side == SP_BUY ? size * px : size;
                double have = sp_balance(sim, a->id, side == SP_BUY ? a->quote : a->base);
                if (amount > have) amount = have;
                struct sp_swap req = { .agent = a->id, .side = side, .amount_in = amount,
                                       .cause = SP_CAUSE_MOMENTUM };
                if (amount > 0) sp_market_swap(sim, a->venue, &req, NULL);
            }
        }
    }
    sp_time t = ev->t + next_gap(a, sim);
    if (t <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, t);
}

static int momentum_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct momentum *a = self;
    sp_snap_put_array(w, 2);
    sp_snap_put_u64(w, a->head);
    return sp_snap_put_f64s(w, a->ring, a->n);
}

static int momentum_restore(void *self, struct sp_snapshot_reader *r)
{
    struct momentum *a = self;
    size_t cap = (size_t)a->cfg->long_window, n = 0;
    uint64_t head = 0;
    sp_snap_get_array_n(r, 2);
    sp_snap_get_u64(r, &head);
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (n > cap || head >= cap || (n < cap && head != n))
        return sp_snap_fail(r, "price ring of %zu readings at %llu (window %zu)", n,
                            (unsigned long long)head, cap);
    sp_snap_get_f64s(r, a->ring, n);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    a->n = n;
    a->head = (size_t)head;
    return SP_OK;
}

const struct sp_module_ops sp_agent_momentum_ops = {
    .kind = "agent", .type = "momentum",
    .summary = "momentum traders: moving-average crossover, market orders",
    .schema = &momentum_schema, .state_size = sizeof(struct momentum),
    .count = momentum_count, .init = momentum_init, .start = momentum_start,
    .on_event = momentum_on_event, .snapshot = momentum_snapshot, .restore = momentum_restore,
};
