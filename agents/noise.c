/*
 * noise.c — noise traders (agents, type "noise"): uninformed orders at
 * Poisson arrival times, as ABIDES's NoiseAgent but arriving repeatedly.
 *
 * Each member of a population (`count:`) draws its endowment (`cash` of the
 * venue's quote token, `inventory` of its base token, minted at init — the
 * only creation of value) and its mean interval between arrivals from its
 * own random stream.  At each arrival (exponential gaps) it picks a side
 * with equal odds and a size in base units from `size`, then:
 *   - on an order book (market/book.h): with probability `market_fraction` a
 *     market order (sp_market_swap; a buy spends size x best ask of quote),
 *     otherwise a limit order near the touch: a buy at best bid x (1 −
 *     offset), a sell at best ask x (1 + offset), offset drawn from
 *     `offset` (0 = join the touch).  With that side of the book empty it
 *     uses the other side, else the `reference` price, else it skips.  A
 *     resting order is cancelled after `order_life` (0 = never);
 *   - on any other venue: a market order (sp_market_swap).
 * It never trades more than it holds: a buy spends at most its quote
 * balance, a sell at most its base balance (an agent's choice, not a
 * clamp of the model: the ledger would refuse more).  Trades are recorded
 * by the venue with cause "noise".
 *
 * Snapshot: nil.  A member's draws are made at init and its only running
 * state — the next arrival and the pending cancels, with their order ids
 * in the event payload — lives in the event queue, which the engine saves.
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

enum { EV_ARRIVE = 1, EV_EXPIRE = 2 };

struct noise_cfg {
    int64_t count;
    const char *venue, *reference;
    struct sp_dist cash, inventory, mean_interval, size, offset;
    double market_fraction;
    sp_time order_life;
};

struct noise {
    const struct noise_cfg *cfg;
    sp_id id, venue, ref;
    sp_token base, quote;
    double mean_interval;        /* seconds, this member's */
    int book;
};

static const struct sp_field noise_fields[] = {
    { "count", SP_T_INT, SP_F_MIN, 1, 0, "1", "agents",
      "Population size: members NAME_0 .. NAME_{count-1}, each with its own draws.",
      offsetof(struct noise_cfg, count), NULL, 0 },
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The market it trades on (any type).",
      offsetof(struct noise_cfg, venue), NULL, 0 },
    { "reference", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Optional reference process: the price used when the book is empty.",
      offsetof(struct noise_cfg, reference), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote",
      "Endowment of the venue's quote token, minted at init.",
      offsetof(struct noise_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base",
      "Endowment of the venue's base token, minted at init.",
      offsetof(struct noise_cfg, inventory), NULL, 0 },
    { "mean_interval", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "60", "s",
      "Mean time between arrivals (exponential gaps), drawn per member.",
      offsetof(struct noise_cfg, mean_interval), NULL, 0 },
    { "size", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "1", "base",
      "Order size, drawn per order.", offsetof(struct noise_cfg, size), NULL, 0 },
    { "market_fraction", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "50%", "fraction",
      "On a book: share of orders sent as market orders (the rest are limit orders).",
      offsetof(struct noise_cfg, market_fraction), NULL, 0 },
    { "offset", SP_T_DIST, 0, 0, 0, "0", "fraction",
      "On a book: how far behind the touch a limit order sits (0.001 = 0.1%), per order.",
      offsetof(struct noise_cfg, offset), NULL, 0 },
    { "order_life", SP_T_DURATION, SP_F_MIN, 0, 0, "5m", "time",
      "On a book: cancel a resting limit order after this long (0 = never).",
      offsetof(struct noise_cfg, order_life), NULL, 0 },
};

static const struct sp_schema noise_schema = {
    "agents[type: noise]",
    "Noise traders: Poisson arrivals, random side and size; market orders, or limit orders "
    "near the touch on an order book.",
    noise_fields, sizeof noise_fields / sizeof noise_fields[0], sizeof(struct noise_cfg), NULL
};

static size_t noise_count(const void *cfg)
{
    return (size_t)((const struct noise_cfg *)cfg)->count;
}

static double draw_pos(const struct sp_dist *d, struct sp_rng *rng)
{
    double x = sp_dist_draw(d, rng);
    return x > 0 ? x : 0;
}

static int noise_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct noise *n = self;
    const struct noise_cfg *c = cfg;
    n->cfg = c;
    n->id = id;
    n->venue = sp_sim_find(sim, c->venue);
    const struct sp_market_ops *m = n->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, n->venue);
    if (!m) {
        sp_sim_fail(sim, SP_ECONFIG, "venue '%s' is not a market", c->venue);
        return SP_ECONFIG;
    }
    n->ref = SP_ID_NONE;
    if (c->reference) {
        n->ref = sp_sim_find(sim, c->reference);
        if (n->ref == SP_ID_NONE || !sp_is_reference(sim, n->ref)) {
            sp_sim_fail(sim, SP_ECONFIG, "reference '%s' is not a reference process", c->reference);
            return SP_ECONFIG;
        }
    }
    m->pair(sp_sim_entity_state(sim, n->venue), &n->base, &n->quote);
    n->book = sp_book_is(sim, n->venue);
    struct sp_rng *rng = sp_sim_rng(sim, id);
    int rc = sp_mint(sim, n->quote, id, draw_pos(&c->cash, rng));
    if (!rc) rc = sp_mint(sim, n->base, id, draw_pos(&c->inventory, rng));
    n->mean_interval = sp_dist_draw(&c->mean_interval, rng);
    if (!rc && !(n->mean_interval > 0)) {
        sp_sim_fail(sim, SP_ECONFIG, "%s: mean_interval drew %g s, must be > 0",
                    sp_sim_entity_name(sim, id), n->mean_interval);
        rc = SP_ECONFIG;
    }
    return rc;
}

static sp_time next_gap(struct noise *n, struct sp_sim *sim)
{
    double s = sp_rng_exponential(sp_sim_rng(sim, n->id), n->mean_interval);
    sp_time dt = (sp_time)(s * 1e6);
    return dt > 0 ? dt : 1;
}

static int noise_start(void *self, struct sp_sim *sim)
{
    struct noise *n = self;
    sp_time t = sp_sim_now(sim) + next_gap(n, sim);
    if (t > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, t, SP_PRIO_AGENT, n->id, EV_ARRIVE) ? SP_OK : SP_ENOMEM;
}

static void market_order(struct noise *n, struct sp_sim *sim, enum sp_side side, double size,
                         double price)
{
    double amount = side == SP_BUY ? size * price : size;
    double have = sp_balance(sim, n->id, side == SP_BUY ? n->quote : n->base);
    if (amount > have) amount = have;
    if (!(amount > 0)) return;
    struct sp_swap req = { .agent = n->id, .side = side, .amount_in = amount,
                           .cause = SP_CAUSE_NOISE };
    sp_market_swap(sim, n->venue, &req, NULL);   /* a refusal (nothing to match) is a skip */
}

static void limit_order(struct noise *n, struct sp_sim *sim, struct sp_rng *rng,
                        enum sp_side side, double size, double bid, double ask, double ref)
{
    double off = sp_dist_draw(&n->cfg->offset, rng);
    double touch = side == SP_BUY ? (isnan(bid) ? ask : bid) : (isnan(ask) ? bid : ask);
    if (isnan(touch)) touch = ref;
    if (!(touch > 0)) return;
    double price = side == SP_BUY ? touch * (1 - off) : touch * (1 + off);
    double have = sp_balance(sim, n->id, side == SP_BUY ? n->quote : n->base);
    if (side == SP_BUY && size * price > have) size = have / price;
    if (side == SP_SELL && size > have) size = have;
    sp_order_id id = 0;
    if (!(size > 0) || sp_book_limit(sim, n->venue, n->id, side, price, size, SP_CAUSE_NOISE, &id,
                                     NULL) != SP_OK)
        return;                                  /* below a lot or outside the window */
    if (id && n->cfg->order_life > 0) {
        sp_time t = sp_sim_now(sim) + n->cfg->order_life;
        if (t <= sp_sim_horizon(sim)) {
            struct sp_event *ev = sp_sim_schedule(sim, t, SP_PRIO_AGENT, n->id, EV_EXPIRE);
            if (ev) ev->data.u[0] = id;
            else sp_sim_fail(sim, SP_ENOMEM, "out of memory scheduling a cancel");
        }
    }
}

static void noise_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct noise *n = self;
    if (ev->kind == EV_EXPIRE) {
        sp_book_cancel(sim, n->venue, ev->data.u[0]);   /* SP_ENOTFOUND: it filled */
        return;
    }
    struct sp_rng *rng = sp_sim_rng(sim, n->id);
    enum sp_side side = sp_rng_below(rng, 2) ? SP_SELL : SP_BUY;
    double size = sp_dist_draw(&n->cfg->size, rng);
    double ref = n->ref != SP_ID_NONE ? sp_reference_price(sim, n->ref) : NAN;
    if (size > 0) {
        if (n->book) {
            double bid, ask;
            sp_book_best(sim, n->venue, &bid, NULL, &ask, NULL);
            if (sp_rng_uniform(rng) < n->cfg->market_fraction) {
                double px = isnan(ask) ? (isnan(bid) ? ref : bid) : ask;
                if (px > 0) market_order(n, sim, side, size, px);
            } else {
                limit_order(n, sim, rng, side, size, bid, ask, ref);
            }
        } else {
            const struct sp_market_ops *m = sp_market_ops_of(sim, n->venue);
            market_order(n, sim, side, size, m->price(sp_sim_entity_state(sim, n->venue)));
        }
    }
    sp_time t = ev->t + next_gap(n, sim);
    if (t <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, t);
}

static int noise_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    return sp_snap_put_nil(w);
}

static int noise_restore(void *self, struct sp_snapshot_reader *r)
{
    (void)self;
    return sp_snap_get_nil(r);
}

const struct sp_module_ops sp_agent_noise_ops = {
    .kind = "agent", .type = "noise",
    .summary = "noise traders: Poisson arrivals, random side and size",
    .schema = &noise_schema, .state_size = sizeof(struct noise),
    .count = noise_count, .init = noise_init, .start = noise_start,
    .on_event = noise_on_event, .snapshot = noise_snapshot, .restore = noise_restore,
};
