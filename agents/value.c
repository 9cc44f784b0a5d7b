/*
 * value.c — value traders (agents, type "value"): trade toward a noisy
 * private estimate of the fundamental, as ABIDES's ValueAgent but without
 * its Bayesian filter of an Ornstein–Uhlenbeck fundamental.
 *
 * At Poisson arrivals (exponential gaps, mean `mean_interval` drawn per
 * member) a member:
 *   1. cancels its previous order if it still rests (ABIDES cancels all
 *      open orders at each wake-up);
 *   2. observes the fundamental: est = reference price x exp(noise x Z),
 *      Z standard normal, `noise` drawn per member;
 *   3. compares it with the venue's price (the mid; on a one-sided book the
 *      side that exists; on an empty book it skips): est above -> buy,
 *      below -> sell, `size` base units drawn per order;
 *   4. on a book: with probability `aggression` a marketable limit at the
 *      opposite touch (it takes), else a passive limit at a uniform point
 *      of [own touch, opposite touch) — inside the spread or joining the
 *      touch — capped at est (it never pays more than its estimate);
 *      on any other venue: a market order.
 * It trades only what it holds (buys spend at most its quote, sells at
 * most its base).  Trades carry cause "value".
 *
 * Snapshot: the id of its open order (0 = none); its draws come from init.
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
#include "book.h"
#include "reference.h"

enum { EV_ARRIVE = 1 };

struct value_cfg {
    int64_t count;
    const char *venue, *reference;
    struct sp_dist cash, inventory, mean_interval, noise, size;
    double aggression;
};

struct value {
    const struct value_cfg *cfg;
    sp_id id, venue, ref;
    sp_token base, quote;
    double mean_interval, noise;
    sp_order_id open;
    int book;
};

static const struct sp_field value_fields[] = {
    { "count", SP_T_INT, SP_F_MIN, 1, 0, "1", "agents",
      "Population size: members NAME_0 .. NAME_{count-1}.", offsetof(struct value_cfg, count), NULL, 0 },
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The market it trades on.",
      offsetof(struct value_cfg, venue), NULL, 0 },
    { "reference", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The reference process that is the fundamental.", offsetof(struct value_cfg, reference), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote",
      "Endowment of the quote token, minted at init.", offsetof(struct value_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base",
      "Endowment of the base token, minted at init.", offsetof(struct value_cfg, inventory), NULL, 0 },
    { "mean_interval", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "175", "s",
      "Mean time between arrivals (exponential gaps), drawn per member.",
      offsetof(struct value_cfg, mean_interval), NULL, 0 },
    { "noise", SP_T_DIST, SP_F_MIN, 0, 0, "0.001", "log",
      "Standard deviation of the log observation error of the fundamental, per member.",
      offsetof(struct value_cfg, noise), NULL, 0 },
    { "size", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "1", "base", "Order size, drawn per order.",
      offsetof(struct value_cfg, size), NULL, 0 },
    { "aggression", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "10%", "fraction",
      "On a book: share of orders placed at the opposite touch (taking).",
      offsetof(struct value_cfg, aggression), NULL, 0 },
};

static const struct sp_schema value_schema = {
    "agents[type: value]",
    "Value traders: Poisson arrivals, buy below / sell above a noisy estimate of the "
    "reference price; passive or (with probability `aggression`) taking limit orders.",
    value_fields, sizeof value_fields / sizeof value_fields[0], sizeof(struct value_cfg), NULL
};

static size_t value_count(const void *cfg)
{
    return (size_t)((const struct value_cfg *)cfg)->count;
}

static double draw_pos(const struct sp_dist *d, struct sp_rng *rng)
{
    double x = sp_dist_draw(d, rng);
    return x > 0 ? x : 0;
}

static int value_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct value *v = self;
    const struct value_cfg *c = cfg;
    v->cfg = c;
    v->id = id;
    v->venue = sp_sim_find(sim, c->venue);
    const struct sp_market_ops *m = v->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, v->venue);
    if (!m) {
        sp_sim_fail(sim, SP_ECONFIG, "venue '%s' is not a market", c->venue);
        return SP_ECONFIG;
    }
    v->ref = sp_sim_find(sim, c->reference);
    if (v->ref == SP_ID_NONE || !sp_is_reference(sim, v->ref)) {
        sp_sim_fail(sim, SP_ECONFIG, "reference '%s' is not a reference process", c->reference);
        return SP_ECONFIG;
    }
    m->pair(sp_sim_entity_state(sim, v->venue), &v->base, &v->quote);
    v->book = sp_book_is(sim, v->venue);
    struct sp_rng *rng = sp_sim_rng(sim, id);
    int rc = sp_mint(sim, v->quote, id, draw_pos(&c->cash, rng));
    if (!rc) rc = sp_mint(sim, v->base, id, draw_pos(&c->inventory, rng));
    v->mean_interval = sp_dist_draw(&c->mean_interval, rng);
    v->noise = draw_pos(&c->noise, rng);
    if (!rc && !(v->mean_interval > 0)) {
        sp_sim_fail(sim, SP_ECONFIG, "%s: mean_interval drew %g s, must be > 0",
                    sp_sim_entity_name(sim, id), v->mean_interval);
        rc = SP_ECONFIG;
    }
    return rc;
}

static sp_time next_gap(struct value *v, struct sp_sim *sim)
{
    sp_time dt = (sp_time)(sp_rng_exponential(sp_sim_rng(sim, v->id), v->mean_interval) * 1e6);
    return dt > 0 ? dt : 1;
}

static int value_start(void *self, struct sp_sim *sim)
{
    struct value *v = self;
    sp_time t = sp_sim_now(sim) + next_gap(v, sim);
    if (t > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, t, SP_PRIO_AGENT, v->id, EV_ARRIVE) ? SP_OK : SP_ENOMEM;
}

static void trade_book(struct value *v, struct sp_sim *sim, struct sp_rng *rng, double est,
                       double bid, double ask)
{
    double mid = isnan(bid) ? ask : isnan(ask) ? bid : 0.5 * (bid + ask);
    if (isnan(mid) || est == mid) return;
    enum sp_side side = est > mid ? SP_BUY : SP_SELL;
    double size = sp_dist_draw(&v->cfg->size, rng);
    double own = side == SP_BUY ? bid : ask, opp = side == SP_BUY ? ask : bid;
    double price;
    if (sp_rng_uniform(rng) < v->cfg->aggression && !isnan(opp)) price = opp;
    else if (isnan(own)) price = isnan(opp) ? est : opp;
    else if (isnan(opp)) price = own;
    else price = own + sp_rng_uniform(rng) * (opp - own);
    if (side == SP_BUY && price > est) price = est;
    if (side == SP_SELL && price < est) price = est;
    double have = sp_balance(sim, v->id, side == SP_BUY ? v->quote : v->base);
    if (side == SP_BUY && size * price > have) size = have / price;
    if (side == SP_SELL && size > have) size = have;
    if (!(size > 0) || !(price > 0)) return;
    sp_order_id id = 0;
    if (sp_book_limit(sim, v->venue, v->id, side, price, size, SP_CAUSE_VALUE, &id, NULL) == SP_OK)
        v->open = id;
}

static void value_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct value *v = self;
    struct sp_rng *rng = sp_sim_rng(sim, v->id);
    double est = sp_reference_price(sim, v->ref) * exp(v->noise * sp_rng_normal(rng));
    if (v->book) {
        if (v->open) sp_book_cancel(sim, v->venue, v->open);   /* SP_ENOTFOUND: it filled */
        v->open = 0;
        double bid, ask;
        sp_book_best(sim, v->venue, &bid, NULL, &ask, NULL);
        trade_book(v, sim, rng, est, bid, ask);
    } else {
        const struct sp_market_ops *m = sp_market_ops_of(sim, v->venue);
        double px = m->price(sp_sim_entity_state(sim, v->venue));
        double size = sp_dist_draw(&v->cfg->size, rng);
        if (isfinite(px) && px > 0 && est != px && size > 0) {
            enum sp_side side = est > px ? SP_BUY : SP_SELL;
            double amount = side == SP_BUY ? size * px : size;
            double have = sp_balance(sim, v->id, side == SP_BUY ? v->quote : v->base);
            if (amount > have) amount = have;
            struct sp_swap req = { .agent = v->id, .side = side, .amount_in = amount,
                                   .cause = SP_CAUSE_VALUE };
            if (amount > 0) sp_market_swap(sim, v->venue, &req, NULL);
        }
    }
    sp_time t = ev->t + next_gap(v, sim);
    if (t <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, t);
}

static int value_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct value *v = self;
    return sp_snap_put_u64(w, v->open);
}

static int value_restore(void *self, struct sp_snapshot_reader *r)
{
    struct value *v = self;
    return sp_snap_get_u64(r, &v->open);
}

const struct sp_module_ops sp_agent_value_ops = {
    .kind = "agent", .type = "value",
    .summary = "value traders: trade toward a noisy estimate of the reference price",
    .schema = &value_schema, .state_size = sizeof(struct value),
    .count = value_count, .init = value_init, .start = value_start,
    .on_event = value_on_event, .snapshot = value_snapshot, .restore = value_restore,
};
