/*
 * market_maker.c — market makers on an order book (agents, type
 * "market_maker"): ladders of quotes around a reference, skewed by
 * inventory, cancelled and replaced every `refresh`.  A simplification of
 * ABIDES's AdaptiveMarketMaker (no adaptive spread or POV sizing).
 *
 * Every `refresh` (the first at a random phase within it) a member:
 *   1. cancels all its resting orders (their escrow comes back);
 *   2. takes a centre: the `reference` process's price if one is given,
 *      else the book's mid, else the last centre (it skips while it has none);
 *   3. measures its inventory deviation dev = base balance − its initial
 *      inventory, and shifts the centre by −skew·(dev / max_inventory)·centre
 *      (long -> quotes lower, to sell);
 *   4. quotes `levels` bids at centre·(1 − spread − i·level_spacing) and as
 *      many asks at centre·(1 + spread + i·level_spacing), i = 0..levels−1,
 *      each of `size` base units — but only while the bids placed so far
 *      keep dev + Σ bid sizes ≤ max_inventory, and the asks keep
 *      dev − Σ ask sizes ≥ −max_inventory.
 * Since fills of bids only raise dev by what rests and fills of asks only
 * lower it, |dev| ≤ max_inventory holds at every instant (the test checks
 * it).  spread, level_spacing, size and skew are drawn per member.  Quotes
 * it cannot pay for (cash or inventory short) or that fall outside the
 * book's window are skipped.  Trades are recorded with cause
 * "market_making" when the maker's quote is hit (the taker's cause) or when
 * its own quote crosses (its own cause).
 *
 * Snapshot: the last centre, the largest deviation seen, and its resting
 * quotes (ids, with their sides as a bit mask: bit i set = ask).  The
 * per-member draws (spreads, sizes, initial inventory) come back from init.
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

enum { EV_REFRESH = 1 };

#define MM_MAX_LEVELS 32

struct mm_cfg {
    int64_t count;
    const char *venue, *reference;
    struct sp_dist cash, inventory, spread, level_spacing, size, skew;
    int64_t levels;
    double max_inventory;
    sp_time refresh;
};

struct mm {
    const struct mm_cfg *cfg;
    sp_id id, venue, ref;
    sp_token base, quote;
    double inv0, spread, spacing, size, skew, centre;
    sp_order_id orders[2 * MM_MAX_LEVELS];
    enum sp_side sides[2 * MM_MAX_LEVELS];
    size_t n_orders;
    double max_dev;              /* largest |dev| seen at a refresh (diagnostics) */
};

static const struct sp_field mm_fields[] = {
    { "count", SP_T_INT, SP_F_MIN, 1, 0, "1", "agents",
      "Population size: members NAME_0 .. NAME_{count-1}.", offsetof(struct mm_cfg, count), NULL, 0 },
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The order book (type lob) it quotes on.",
      offsetof(struct mm_cfg, venue), NULL, 0 },
    { "reference", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Optional reference process to quote around; default the book's own mid.",
      offsetof(struct mm_cfg, reference), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote",
      "Endowment of the quote token, minted at init.", offsetof(struct mm_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base",
      "Endowment of the base token, minted at init; inventory skew is measured from it.",
      offsetof(struct mm_cfg, inventory), NULL, 0 },
    { "spread", SP_T_DIST, SP_F_MIN, 0, 0, "0.001", "fraction",
      "Half-spread of the first level, as a fraction of the centre.",
      offsetof(struct mm_cfg, spread), NULL, 0 },
    { "level_spacing", SP_T_DIST, SP_F_MIN, 0, 0, "0.0005", "fraction",
      "Distance between successive levels, as a fraction of the centre.",
      offsetof(struct mm_cfg, level_spacing), NULL, 0 },
    { "size", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "1", "base", "Quantity quoted at each level.",
      offsetof(struct mm_cfg, size), NULL, 0 },
    { "skew", SP_T_DIST, SP_F_MIN, 0, 0, "0.001", "fraction",
      "Centre shift at full inventory (dev = max_inventory), as a fraction of the centre.",
      offsetof(struct mm_cfg, skew), NULL, 0 },
    { "levels", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, MM_MAX_LEVELS, "3", "levels",
      "Quotes per side.", offsetof(struct mm_cfg, levels), NULL, 0 },
    { "max_inventory", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "100", "base",
      "Bound on |base balance − initial inventory|: quotes that could break it are not placed.",
      offsetof(struct mm_cfg, max_inventory), NULL, 0 },
    { "refresh", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "10s", "time",
      "Cancel and replace every this long.", offsetof(struct mm_cfg, refresh), NULL, 0 },
};

static const struct sp_schema mm_schema = {
    "agents[type: market_maker]",
    "Market makers on an order book: a ladder of quotes around a reference or the mid, "
    "skewed by inventory, replaced every `refresh`; |inventory deviation| <= max_inventory.",
    mm_fields, sizeof mm_fields / sizeof mm_fields[0], sizeof(struct mm_cfg), NULL
};

static size_t mm_count(const void *cfg)
{
    return (size_t)((const struct mm_cfg *)cfg)->count;
}

static double draw_pos(const struct sp_dist *d, struct sp_rng *rng)
{
    double x = sp_dist_draw(d, rng);
    return x > 0 ? x : 0;
}

static int mm_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct mm *a = self;
    const struct mm_cfg *c = cfg;
    a->cfg = c;
    a->id = id;
    a->venue = sp_sim_find(sim, c->venue);
    if (a->venue == SP_ID_NONE || !sp_book_is(sim, a->venue)) {
        sp_sim_fail(sim, SP_ECONFIG, "venue '%s' is not an order book (type lob)", c->venue);
        return SP_ECONFIG;
    }
    a->ref = SP_ID_NONE;
    if (c->reference) {
        a->ref = sp_sim_find(sim, c->reference);
        if (a->ref == SP_ID_NONE || !sp_is_reference(sim, a->ref)) {
            sp_sim_fail(sim, SP_ECONFIG, "reference '%s' is not a reference process", c->reference);
            return SP_ECONFIG;
        }
    }
    sp_market_ops_of(sim, a->venue)->pair(sp_sim_entity_state(sim, a->venue), &a->base, &a->quote);
    struct sp_rng *rng = sp_sim_rng(sim, id);
    a->inv0 = draw_pos(&c->inventory, rng);
    int rc = sp_mint(sim, a->quote, id, draw_pos(&c->cash, rng));
    if (!rc) rc = sp_mint(sim, a->base, id, a->inv0);
    a->spread = draw_pos(&c->spread, rng);
    a->spacing = draw_pos(&c->level_spacing, rng);
    a->size = draw_pos(&c->size, rng);
    a->skew = draw_pos(&c->skew, rng);
    a->centre = NAN;
    return rc;
}

static int mm_start(void *self, struct sp_sim *sim)
{
    struct mm *a = self;
    sp_time t = sp_sim_now(sim) +
                (sp_time)(sp_rng_uniform(sp_sim_rng(sim, a->id)) * (double)a->cfg->refresh);
    if (t > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, t, SP_PRIO_AGENT, a->id, EV_REFRESH) ? SP_OK : SP_ENOMEM;
}

/* Quote one level; 1 if the book accepted it (rested, filled, or both). */
static int place(struct mm *a, struct sp_sim *sim, enum sp_side side, double price)
{
    sp_order_id id = 0;
    if (!(price > 0)) return 0;
    if (sp_book_limit(sim, a->venue, a->id, side, price, a->size, SP_CAUSE_MARKET_MAKING, &id,
                      NULL) != SP_OK)
        return 0;
    if (id) {
        a->orders[a->n_orders] = id;
        a->sides[a->n_orders++] = side;
    }
    return 1;
}

/* Base held, counting what rests in its asks (escrowed at the venue). */
static double holdings(const struct mm *a, struct sp_sim *sim)
{
    double h = sp_balance(sim, a->id, a->base);
    for (size_t i = 0; i < a->n_orders; i++)
        if (a->sides[i] == SP_SELL) h += sp_book_order_qty(sim, a->venue, a->orders[i]);
    return h;
}

static void mm_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct mm *a = self;
    const struct mm_cfg *c = a->cfg;
    for (size_t i = 0; i < a->n_orders; i++) sp_book_cancel(sim, a->venue, a->orders[i]);
    a->n_orders = 0;
    double centre = a->ref != SP_ID_NONE ? sp_reference_price(sim, a->ref)
                                         : sp_market_ops_of(sim, a->venue)->price(
                                               sp_sim_entity_state(sim, a->venue));
    if (isfinite(centre) && centre > 0) a->centre = centre;
    if (isfinite(a->centre)) {
        double dev = sp_balance(sim, a->id, a->base) - a->inv0;
        if (fabs(dev) > a->max_dev) a->max_dev = fabs(dev);
        double mid = a->centre * (1 - a->skew * dev / c->max_inventory);
        double room_bid = c->max_inventory - dev, room_ask = c->max_inventory + dev;
        for (int64_t i = 0; i < c->levels; i++) {
            double off = a->spread + (double)i * a->spacing;
            if (room_bid >= a->size && place(a, sim, SP_BUY, mid * (1 - off)))
                room_bid -= a->size;
            if (room_ask >= a->size && place(a, sim, SP_SELL, mid * (1 + off)))
                room_ask -= a->size;
        }
    }
    sp_time t = ev->t + c->refresh;
    if (t <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, t);
}

static void mm_finish(void *self, struct sp_sim *sim)
{
    struct mm *a = self;
    char key[300];
    const char *name = sp_sim_entity_name(sim, a->id);
    snprintf(key, sizeof key, "inventory_dev_%s", name);
    sp_sim_summary(sim, key, holdings(a, sim) - a->inv0);
    snprintf(key, sizeof key, "max_inventory_dev_%s", name);
    sp_sim_summary(sim, key, a->max_dev);
}

static int mm_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct mm *a = self;
    uint64_t mask = 0;
    for (size_t i = 0; i < a->n_orders; i++)
        if (a->sides[i] == SP_SELL) mask |= 1ULL << i;
    sp_snap_put_array(w, 4);
    sp_snap_put_f64(w, a->centre);
    sp_snap_put_f64(w, a->max_dev);
    sp_snap_put_u64s(w, a->orders, a->n_orders);
    return sp_snap_put_u64(w, mask);
}

static int mm_restore(void *self, struct sp_snapshot_reader *r)
{
    struct mm *a = self;
    size_t n = 0;
    uint64_t mask = 0;
    sp_snap_get_array_n(r, 4);
    sp_snap_get_f64(r, &a->centre);
    sp_snap_get_f64(r, &a->max_dev);
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (n > 2 * MM_MAX_LEVELS)
        return sp_snap_fail(r, "%zu resting quotes (at most %d)", n, 2 * MM_MAX_LEVELS);
    sp_snap_get_u64s(r, a->orders, n);
    sp_snap_get_u64(r, &mask);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    if (n < 64 && mask >> n) return sp_snap_fail(r, "quote side mask has bits past the quotes");
    for (size_t i = 0; i < n; i++) a->sides[i] = mask >> i & 1 ? SP_SELL : SP_BUY;
    a->n_orders = n;
    return SP_OK;
}

const struct sp_module_ops sp_agent_market_maker_ops = {
    .kind = "agent", .type = "market_maker",
    .summary = "order-book market maker: inventory-skewed quote ladder, cancel/replace",
    .schema = &mm_schema, .state_size = sizeof(struct mm),
    .count = mm_count, .init = mm_init, .start = mm_start, .on_event = mm_on_event,
    .finish = mm_finish, .snapshot = mm_snapshot, .restore = mm_restore,
};
