/*
 * lob_market.c — the limit order book as a scenario venue (markets, type
 * "lob"): market/lob.h's matching engine plus tokens, agents and output, and
 * the agent API of market/book.h.
 *
 * Units.  tick_size is quote per base; lot_size is base units per lot.  A
 * price of p ticks is p·tick_size quote per base, so one lot at p costs
 * p·tick_size·lot_size quote (tl = tick_size·lot_size).  The book covers
 * the ticks of [initial_price·(1 − window), initial_price·(1 + window)].
 *
 * Money.  Resting orders escrow at the venue entity: a buy p·rem·tl quote,
 * a sell rem·lot_size base (its own price, so a maker's fill is paid exactly
 * from its escrow).  A taker pays as it fills: in the fill callback the
 * taker's side moves taker -> maker straight from the taker's wallet, and
 * the maker's escrow moves venue -> taker.  Before any matching the taker
 * must hold the worst case (limit price x lots for a buy, the lots for a
 * sell), else SP_ERANGE and nothing moves; what is left to rest is then
 * escrowed.  Cancels return the resting escrow.  Nothing is minted or
 * burned, so every token is conserved up to floating-point dust (the
 * ledger's SP_LEDGER_DUST).
 *
 * Owners.  lob.h keeps no owners: order ids are (generation << 32) | slot,
 * so the venue keeps owner[slot] (agent, cause) for every resting order.
 *
 * Trades.  One /events/trades row per fill, agent = taker, cause and
 * generation from the taker's request, side = taker side.  Fills are
 * buffered during a message and recorded after it, with price_before / after
 * the venue mid just before and after the whole message (the book is
 * mid-update inside the fill callback).
 *
 * Market orders (ops->swap).  SELL: amount_in base -> floor(lots), a lob
 * market order.  BUY: amount_in quote: walk the asks (sp_lob_depth in
 * doubling windows) for the lots it affords, then an IOC at the last level
 * reached, which eats exactly those lots.  min_out is checked on the walk
 * before anything moves.
 *
 * Price = mid ((bid + ask) / 2), NAN when a side is empty.  cumulative()
 * integrates the mid in force; while a side is empty the last two-sided mid
 * is held (0 before the first one).
 *
 * Output: /markets/<name> sampled every sample_every, and /markets/<name>_depth
 * (top depth_levels of each side) every depth_every; /summary n_orders_<name>
 * (accepted limit and market orders), n_cancels_<name>, n_fills_<name>.
 * A full book (max_orders resting) fails the run: raise max_orders.
 *
 * Snapshot: the book (lob.h's sp_lob_snapshot: ids, free list, resting
 * orders in price-time priority, totals), the owner (agent, cause) of each
 * resting order in the book's canonical order (sp_lob_resting), the price
 * integral (cum, last_mid, cum_t), the summary counters and the liquidation
 * tag's (time, generation) pairs (its watchers are set up by init/start).
 * The fill buffer, taker and error are empty between messages; the window,
 * tables and scratch come from the config.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "book.h"
#include "lob.h"

enum { EV_SAMPLE = 1, EV_DEPTH = 2 };

#define LOB_MAX_TICKS ((int64_t)1 << 24)
#define LOB_MAX_DEPTH 50

struct lob_cfg {
    const char *name;
    const char *base, *quote;
    double tick_size, lot_size;
    double initial_price, window;
    int64_t max_orders;
    sp_time sample_every;
    int64_t depth_levels;
    sp_time depth_every;
};

struct owner {
    sp_id agent;
    int32_t cause;
};

struct fill_rec {
    double amount_in, amount_out;
};

struct lob_venue {
    const struct lob_cfg *cfg;
    struct sp_sim *sim;
    sp_id id;
    sp_token base, quote;
    struct sp_lob *book;
    double tick, lot, tl;
    int64_t min_tick, n_ticks;
    struct owner *owner;            /* by order slot: cfg->max_orders + 1 */
    uint32_t n_slots;
    /* the message being matched */
    sp_id taker;
    int err;
    struct fill_rec *fills;
    size_t n_fill_buf, cap_fill_buf;
    struct sp_lob_level *scratch;   /* depth walks */
    size_t n_scratch;
    /* price integral */
    double cum, last_mid;
    sp_time cum_t;
    /* output */
    struct sp_rec_table *tab, *depth_tab;
    char *depth_names;
    sp_time sample_every, depth_every;
    uint64_t n_orders, n_cancels, n_fills;
    struct sp_venue_tag tag;        /* liquidation tag and watchers (spiral/market.h) */
    bool propagates;                /* the message being matched propagates a tag */
};

/* ---- schema --------------------------------------------------------------- */

static const struct sp_field lob_fields[] = {
    { "name", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "Entity name. Output groups /markets/<name> and /markets/<name>_depth.",
      offsetof(struct lob_cfg, name), NULL, 0 },
    { "base", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "Base token (what is traded).",
      offsetof(struct lob_cfg, base), NULL, 0 },
    { "quote", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "Quote token (what prices are in).",
      offsetof(struct lob_cfg, quote), NULL, 0 },
    { "tick_size", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "0.01", "quote per base",
      "Price increment; limit prices round to it (buys down, sells up).",
      offsetof(struct lob_cfg, tick_size), NULL, 0 },
    { "lot_size", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "1", "base",
      "Quantity increment; order sizes round down to it.",
      offsetof(struct lob_cfg, lot_size), NULL, 0 },
    { "initial_price", SP_T_NUMBER, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "quote per base",
      "Centre of the price window the book can hold.",
      offsetof(struct lob_cfg, initial_price), NULL, 0 },
    { "window", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX_EXCL, 0, 1, "50%", "fraction",
      "The book holds prices in initial_price x [1 - window, 1 + window]; orders outside are "
      "refused (SP_ERANGE).", offsetof(struct lob_cfg, window), NULL, 0 },
    { "max_orders", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1 << 26, "100000", "orders",
      "Resting orders the book can hold; a full book fails the run.",
      offsetof(struct lob_cfg, max_orders), NULL, 0 },
    { "sample_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "Cadence of /markets/<name>; default output.sample_every.",
      offsetof(struct lob_cfg, sample_every), NULL, 0 },
    { "depth_levels", SP_T_INT, SP_F_MIN | SP_F_MAX, 0, LOB_MAX_DEPTH, "5", "levels",
      "Levels per side recorded in /markets/<name>_depth; 0 records no depth table.",
      offsetof(struct lob_cfg, depth_levels), NULL, 0 },
    { "depth_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "Cadence of /markets/<name>_depth; default sample_every.",
      offsetof(struct lob_cfg, depth_every), NULL, 0 },
};

/* The tick window of a config: [min_tick, min_tick + n_ticks). */
static void window_of(const struct lob_cfg *c, int64_t *min_tick, int64_t *n_ticks)
{
    double lo = floor(c->initial_price * (1.0 - c->window) / c->tick_size);
    double hi = ceil(c->initial_price * (1.0 + c->window) / c->tick_size);
    if (lo < 1) lo = 1;
    *min_tick = (int64_t)lo;
    *n_ticks = hi >= lo && hi - lo < 9e18 ? (int64_t)(hi - lo) + 1 : -1;
}

static int lob_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct lob_cfg *c = bound;
    int rc = sp_world_check_token(ctx, "base", -1);
    if (sp_world_check_token(ctx, "quote", -1)) rc = SP_ECONFIG;
    if (!rc && !strcmp(c->base, c->quote)) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "quote"),
                      "quote must differ from base ('%s')", c->base);
        rc = SP_ECONFIG;
    }
    double span = c->initial_price * (1.0 + c->window) / c->tick_size;
    int64_t lo, n;
    window_of(c, &lo, &n);
    if (!(span < 9e15) || n < 1 || n > LOB_MAX_TICKS) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "tick_size"),
                      "the price window holds %.0f ticks (at most %lld): raise tick_size or "
                      "narrow window", span - (double)lo, (long long)LOB_MAX_TICKS);
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_schema lob_schema = {
    "markets[type: lob]",
    "Limit order book for one pair, price-time priority: resting limit orders escrow at the "
    "venue, market orders walk the book, price = mid.",
    lob_fields, sizeof lob_fields / sizeof lob_fields[0], sizeof(struct lob_cfg), lob_check
};

/* ---- helpers -------------------------------------------------------------- */

static double mid_of(const struct lob_venue *v)
{
    int64_t b, a;
    if (sp_lob_best_bid(v->book, &b, NULL) || sp_lob_best_ask(v->book, &a, NULL)) return NAN;
    return 0.5 * (double)(b + a) * v->tick;
}

/* Bring the price integral up to now (before the book changes). */
static void accrue(struct lob_venue *v)
{
    sp_time now = sp_sim_now(v->sim);
    v->cum += v->last_mid * sp_time_sec(now - v->cum_t);
    v->cum_t = now;
}

static void settle_mid(struct lob_venue *v)
{
    double m = mid_of(v);
    if (isfinite(m)) v->last_mid = m;
}

static void on_fill(void *ctx, const struct sp_lob_fill *f)
{
    struct lob_venue *v = ctx;
    struct sp_sim *sim = v->sim;
    v->n_fills++;
    double b = (double)f->qty * v->lot;
    double c = (double)(f->price * f->qty) * v->tl;
    sp_id maker = v->owner[(uint32_t)f->maker_id].agent;
    int rc;
    if (f->taker_side == SP_LOB_BUY) {
        rc = sp_transfer(sim, v->quote, v->taker, maker, c);
        if (!rc) rc = sp_transfer(sim, v->base, v->id, v->taker, b);
    } else {
        rc = sp_transfer(sim, v->base, v->taker, maker, b);
        if (!rc) rc = sp_transfer(sim, v->quote, v->id, v->taker, c);
    }
    if (rc && !v->err) v->err = rc;
    if (v->n_fill_buf == v->cap_fill_buf) {
        size_t cap = v->cap_fill_buf ? 2 * v->cap_fill_buf : 64;
        struct fill_rec *p = realloc(v->fills, cap * sizeof *p);
        if (!p) { v->err = SP_ENOMEM; return; }
        v->fills = p;
        v->cap_fill_buf = cap;
    }
    v->fills[v->n_fill_buf++] = f->taker_side == SP_LOB_BUY ? (struct fill_rec){ c, b }
                                                            : (struct fill_rec){ b, c };
}

/* Record the buffered fills of one message and report its outcome. */
static int flush_fills(struct lob_venue *v, enum sp_side side, int cause, int generation,
                       double before)
{
    double after = mid_of(v);
    for (size_t i = 0; i < v->n_fill_buf; i++) {
        struct sp_trade tr = { v->id, v->taker, cause, (int)side, generation,
                               v->fills[i].amount_in, v->fills[i].amount_out, before, after,
                               v->propagates };
        sp_trade_record(v->sim, &tr);
    }
    v->n_fill_buf = 0;
    settle_mid(v);
    int rc = v->err;
    v->err = 0;
    if (rc == SP_ENOMEM) sp_sim_fail(v->sim, rc, "%s: out of memory recording fills",
                                     sp_sim_entity_name(v->sim, v->id));
    return rc;
}

/* Walk the opposite side of a taker: how many lots `budget` buys (BUY,
 * budget in quote) or how much quote `lots` sells for (SELL).  *lots,
 * *last_tick (the deepest level touched, 0 if none) and *quote_amt out. */
static void walk(const struct lob_venue *v, enum sp_side side, double budget, int64_t want,
                 int64_t *lots, int64_t *last_tick, double *quote_amt)
{
    enum sp_lob_side opp = side == SP_BUY ? SP_LOB_SELL : SP_LOB_BUY;
    size_t k = 16;
    for (;;) {
        if (k > v->n_scratch) k = v->n_scratch;
        size_t n = sp_lob_depth(v->book, opp, v->scratch, k);
        int64_t got = 0, last = 0;
        double spent = 0;
        int done = 0;
        for (size_t i = 0; i < n && !done; i++) {
            const struct sp_lob_level *l = &v->scratch[i];
            double per_lot = (double)l->price * v->tl;
            int64_t take;
            if (side == SP_BUY) {
                double left = budget - spent;
                double can = floor(left / per_lot);
                take = can >= (double)l->qty ? l->qty : (int64_t)can;
                if (take > 0 && (double)take * per_lot > left) take--;
                if (take < l->qty) done = 1;
            } else {
                take = want - got < l->qty ? want - got : l->qty;
                if (got + take == want) done = 1;
            }
            if (take > 0) {
                got += take;
                spent += (double)(l->price * take) * v->tl;
                last = l->price;
            }
        }
        if (done || n < k || k == v->n_scratch) {
            *lots = got;
            *last_tick = last;
            *quote_amt = spent;
            return;
        }
        k *= 2;
    }
}

/* ---- market ops ------------------------------------------------------------ */

static void lob_pair(const void *self, sp_token *base, sp_token *quote)
{
    const struct lob_venue *v = self;
    if (base) *base = v->base;
    if (quote) *quote = v->quote;
}

static double lob_price(const void *self)
{
    return mid_of(self);
}

static int lob_quote(const void *self, enum sp_side side, double amount_in, double *amount_out)
{
    const struct lob_venue *v = self;
    if (!(amount_in >= 0) || !isfinite(amount_in) || (side != SP_BUY && side != SP_SELL))
        return SP_EINVAL;
    int64_t lots, last;
    double q;
    int64_t want = side == SP_SELL ? (int64_t)floor(amount_in / v->lot * (1 + 1e-12)) : 0;
    walk(v, side, amount_in, want, &lots, &last, &q);
    if (amount_out) *amount_out = side == SP_BUY ? (double)lots * v->lot : q;
    return SP_OK;
}

static int lob_swap(void *self, struct sp_sim *sim, const struct sp_swap *req,
                    struct sp_swap_result *res)
{
    struct lob_venue *v = self;
    if (!req || !(req->amount_in >= 0) || !isfinite(req->amount_in) ||
        (req->side != SP_BUY && req->side != SP_SELL))
        return SP_EINVAL;
    sp_token tin = req->side == SP_BUY ? v->quote : v->base;
    if (sp_balance(sim, req->agent, tin) < req->amount_in * (1 - 1e-12)) return SP_ERANGE;
    int64_t want = req->side == SP_SELL
                       ? (int64_t)floor(req->amount_in / v->lot * (1 + 1e-12)) : 0;
    int64_t lots, last;
    double q;
    walk(v, req->side, req->amount_in, want, &lots, &last, &q);
    double out = req->side == SP_BUY ? (double)lots * v->lot : q;
    if (out < req->min_out) return SP_ERANGE;
    double before = mid_of(v);
    memset(res, 0, sizeof *res);
    res->price_before = res->price_after = before;
    if (lots == 0) return SP_OK;
    accrue(v);
    v->taker = req->agent;
    int64_t filled = 0;
    int rc = req->side == SP_BUY
                 ? sp_lob_ioc(v->book, SP_LOB_BUY, last, lots, NULL, &filled)
                 : sp_lob_market(v->book, SP_LOB_SELL, lots, NULL, &filled);
    if (rc) return rc;
    v->n_orders++;
    double paid = 0, got = 0;
    for (size_t i = 0; i < v->n_fill_buf; i++) {
        paid += v->fills[i].amount_in;
        got += v->fills[i].amount_out;
    }
    v->propagates = req->propagates;
    rc = flush_fills(v, req->side, req->cause, req->generation, before);
    v->propagates = false;
    res->amount_in = paid;
    res->amount_out = got;
    res->price_after = mid_of(v);
    return rc;
}

static double lob_cumulative(const void *self, sp_time now)
{
    const struct lob_venue *v = self;
    return v->cum + v->last_mid * sp_time_sec(now - v->cum_t);
}

/* ---- lifecycle ------------------------------------------------------------- */

static int lob_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct lob_venue *v = self;
    const struct lob_cfg *c = cfg;
    v->cfg = c;
    v->sim = sim;
    v->id = id;
    v->base = sp_token_find(sim, c->base);
    v->quote = sp_token_find(sim, c->quote);
    if (v->base < 0 || v->quote < 0) {
        sp_sim_fail(sim, SP_ECONFIG, "%s: unknown token", sp_sim_entity_name(sim, id));
        return SP_ECONFIG;
    }
    v->tick = c->tick_size;
    v->lot = c->lot_size;
    v->tl = c->tick_size * c->lot_size;
    window_of(c, &v->min_tick, &v->n_ticks);
    struct sp_lob_config lc = { v->min_tick, v->n_ticks, (uint32_t)c->max_orders, c->tick_size,
                                on_fill, v };
    int rc = sp_lob_create(&lc, &v->book);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: cannot create the book: %s", sp_sim_entity_name(sim, id),
                    sp_strerror(rc));
        return rc;
    }
    v->n_slots = (uint32_t)c->max_orders + 1;
    v->owner = calloc(v->n_slots, sizeof *v->owner);
    v->n_scratch = (size_t)v->n_ticks;
    v->scratch = malloc(v->n_scratch * sizeof *v->scratch);
    if (!v->owner || !v->scratch) return SP_ENOMEM;
    v->sample_every = c->sample_every ? c->sample_every : sp_sim_sample_every(sim);
    v->depth_every = c->depth_every ? c->depth_every : v->sample_every;
    return SP_OK;
}

static const struct sp_rec_col lob_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
    { "price", SP_REC_F64, "quote per base", "mid price (NaN when a side is empty)", NULL },
    { "best_bid", SP_REC_F64, "quote per base", "best bid (NaN when empty)", NULL },
    { "best_ask", SP_REC_F64, "quote per base", "best ask (NaN when empty)", NULL },
    { "bid_qty", SP_REC_F64, "base", "quantity at the best bid", NULL },
    { "ask_qty", SP_REC_F64, "base", "quantity at the best ask", NULL },
};

static int create_depth_table(struct lob_venue *v, struct sp_rec *rec, const char *group)
{
    size_t n = (size_t)v->cfg->depth_levels, ncols = 1 + 4 * n;
    struct sp_rec_col *cols = calloc(ncols, sizeof *cols);
    v->depth_names = calloc(ncols, 24);
    if (!cols || !v->depth_names) { free(cols); return SP_ENOMEM; }
    static const char *const what[4] = { "bid_price", "bid_qty", "ask_price", "ask_qty" };
    static const char *const longs[4] = { "bid price at level", "quantity at bid level",
                                          "ask price at level", "quantity at ask level" };
    cols[0] = (struct sp_rec_col){ "t", SP_REC_F64, "s", "simulated time", NULL };
    for (size_t w = 0; w < 4; w++)
        for (size_t i = 0; i < n; i++) {
            size_t k = 1 + w * n + i;
            char *nm = v->depth_names + 24 * k;
            snprintf(nm, 24, "%s_%zu", what[w], i + 1);
            cols[k] = (struct sp_rec_col){ nm, SP_REC_F64, w % 2 ? "base" : "quote per base",
                                           longs[w], NULL };
        }
    int rc = sp_rec_table_create(rec, group, cols, ncols, &v->depth_tab);
    free(cols);
    return rc;
}

static int lob_start(void *self, struct sp_sim *sim)
{
    struct lob_venue *v = self;
    struct sp_rec *rec = sp_sim_recorder(sim);
    const char *name = sp_sim_entity_name(sim, v->id);
    if (rec) {
        char group[300];
        snprintf(group, sizeof group, "/markets/%s", name);
        int rc = sp_rec_table_create(rec, group, lob_cols, sizeof lob_cols / sizeof lob_cols[0],
                                     &v->tab);
        if (!rc) {
            sp_rec_attr_str(rec, group, "type", "lob");
            sp_rec_attr_str(rec, group, "base", v->cfg->base);
            sp_rec_attr_str(rec, group, "quote", v->cfg->quote);
            sp_rec_attr_f64(rec, group, "tick_size", v->tick);
            sp_rec_attr_f64(rec, group, "lot_size", v->lot);
        }
        if (!rc && v->cfg->depth_levels > 0) {
            snprintf(group, sizeof group, "/markets/%s_depth", name);
            rc = create_depth_table(v, rec, group);
        }
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
    }
    if (!sp_sim_schedule(sim, 0, SP_PRIO_RECORD, v->id, EV_SAMPLE)) return SP_ENOMEM;
    if (v->depth_tab && !sp_sim_schedule(sim, 0, SP_PRIO_RECORD, v->id, EV_DEPTH))
        return SP_ENOMEM;
    return SP_OK;
}

static void sample(struct lob_venue *v, sp_time t)
{
    int64_t bp = 0, bq = 0, ap = 0, aq = 0;
    int hb = !sp_lob_best_bid(v->book, &bp, &bq), ha = !sp_lob_best_ask(v->book, &ap, &aq);
    union sp_rec_val row[7];
    row[0].f = sp_time_sec(t);
    row[1].i = t;
    row[2].f = mid_of(v);
    row[3].f = hb ? (double)bp * v->tick : NAN;
    row[4].f = ha ? (double)ap * v->tick : NAN;
    row[5].f = (double)bq * v->lot;
    row[6].f = (double)aq * v->lot;
    sp_rec_append(v->tab, row);
}

static void sample_depth(struct lob_venue *v, sp_time t)
{
    size_t n = (size_t)v->cfg->depth_levels;
    union sp_rec_val row[1 + 4 * LOB_MAX_DEPTH];
    struct sp_lob_level lv[LOB_MAX_DEPTH];
    row[0].f = sp_time_sec(t);
    for (int s = 0; s < 2; s++) {
        size_t got = sp_lob_depth(v->book, s ? SP_LOB_SELL : SP_LOB_BUY, lv, n);
        for (size_t i = 0; i < n; i++) {
            row[1 + (2 * (size_t)s) * n + i].f = i < got ? (double)lv[i].price * v->tick : NAN;
            row[1 + (2 * (size_t)s + 1) * n + i].f = i < got ? (double)lv[i].qty * v->lot : 0.0;
        }
    }
    sp_rec_append(v->depth_tab, row);
}

static void lob_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct lob_venue *v = self;
    sp_time next;
    if (ev->kind == EV_SAMPLE) {
        if (v->tab) sample(v, ev->t);
        next = ev->t + v->sample_every;
    } else {
        sample_depth(v, ev->t);
        next = ev->t + v->depth_every;
    }
    if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
}

static void lob_finish(void *self, struct sp_sim *sim)
{
    struct lob_venue *v = self;
    char key[300];
    const char *name = sp_sim_entity_name(sim, v->id);
    snprintf(key, sizeof key, "n_orders_%s", name);
    sp_sim_summary(sim, key, (double)v->n_orders);
    snprintf(key, sizeof key, "n_cancels_%s", name);
    sp_sim_summary(sim, key, (double)v->n_cancels);
    snprintf(key, sizeof key, "n_fills_%s", name);
    sp_sim_summary(sim, key, (double)v->n_fills);
}

static void lob_release(void *self)
{
    struct lob_venue *v = self;
    sp_lob_destroy(v->book);
    free(v->owner);
    free(v->fills);
    free(v->scratch);
    free(v->depth_names);
}

static int lob_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct lob_venue *v = self;
    size_t n = sp_lob_resting(v->book, NULL, 0);
    uint64_t *ids = malloc((n + 1) * sizeof *ids);
    int64_t *own = malloc((2 * n + 1) * sizeof *own);
    if (!ids || !own) {
        free(ids);
        free(own);
        return SP_ENOMEM;
    }
    sp_lob_resting(v->book, ids, n);
    for (size_t i = 0; i < n; i++) {
        const struct owner *o = &v->owner[(uint32_t)ids[i]];
        own[2 * i] = (int64_t)o->agent;
        own[2 * i + 1] = o->cause;
    }
    int64_t tt[SP_VENUE_TAG_MAX], tg[SP_VENUE_TAG_MAX];
    size_t nt = v->tag.n > 0 && v->tag.n <= SP_VENUE_TAG_MAX ? (size_t)v->tag.n : 0;
    for (size_t i = 0; i < nt; i++) {
        tt[i] = v->tag.t[i];
        tg[i] = v->tag.gen[i];
    }
    sp_snap_put_array(w, 7);
    sp_lob_snapshot(v->book, w);
    sp_snap_put_i64s(w, own, 2 * n);
    sp_snap_put_f64s(w, (const double[]){ v->cum, v->last_mid }, 2);
    sp_snap_put_i64(w, v->cum_t);
    sp_snap_put_u64s(w, (const uint64_t[]){ v->n_orders, v->n_cancels, v->n_fills }, 3);
    sp_snap_put_i64s(w, tt, nt);
    int rc = sp_snap_put_i64s(w, tg, nt);
    free(ids);
    free(own);
    return rc;
}

static int lob_restore(void *self, struct sp_snapshot_reader *r)
{
    struct lob_venue *v = self;
    size_t n_own = 0, nt = 0, nt2 = 0;
    double cm[2];
    uint64_t counts[3];
    int64_t tt[SP_VENUE_TAG_MAX], tg[SP_VENUE_TAG_MAX];
    sp_snap_get_array_n(r, 7);
    if (sp_lob_restore(v->book, r)) return sp_snap_error(r);
    size_t n = sp_lob_resting(v->book, NULL, 0);
    if (sp_snap_peek_count(r, &n_own)) return sp_snap_error(r);
    if (n_own != 2 * n) return sp_snap_fail(r, "%zu order owners for %zu resting orders",
                                             n_own / 2, n);
    uint64_t *ids = malloc((n + 1) * sizeof *ids);
    int64_t *own = malloc((2 * n + 1) * sizeof *own);
    if (!ids || !own) {
        free(ids);
        free(own);
        return sp_snap_fail(r, "out of memory");
    }
    sp_lob_resting(v->book, ids, n);
    sp_snap_get_i64s(r, own, 2 * n);
    size_t n_ents = sp_sim_entity_count(sp_snap_sim(r));
    for (size_t i = 0; i < n && !sp_snap_error(r); i++) {
        if (own[2 * i] < 0 || (uint64_t)own[2 * i] >= n_ents || own[2 * i + 1] < INT32_MIN ||
            own[2 * i + 1] > INT32_MAX)
            sp_snap_fail(r, "order owner %zu out of range", i);
        else
            v->owner[(uint32_t)ids[i]] = (struct owner){ (sp_id)own[2 * i],
                                                         (int32_t)own[2 * i + 1] };
    }
    free(ids);
    free(own);
    sp_snap_get_f64s(r, cm, 2);
    sp_snap_get_i64(r, &v->cum_t);
    sp_snap_get_u64s(r, counts, 3);
    if (!sp_snap_peek_count(r, &nt) && nt > SP_VENUE_TAG_MAX)
        return sp_snap_fail(r, "%zu liquidation tag pairs (at most %d)", nt, SP_VENUE_TAG_MAX);
    sp_snap_get_i64s(r, tt, nt);
    if (!sp_snap_peek_count(r, &nt2) && nt2 != nt)
        return sp_snap_fail(r, "liquidation tag times and generations differ in number");
    sp_snap_get_i64s(r, tg, nt);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    for (size_t i = 0; i < nt; i++) {
        if (tg[i] < INT32_MIN || tg[i] > INT32_MAX)
            return sp_snap_fail(r, "liquidation tag generation out of range");
        v->tag.t[i] = tt[i];
        v->tag.gen[i] = (int)tg[i];
    }
    v->tag.n = (int)nt;
    v->cum = cm[0];
    v->last_mid = cm[1];
    v->n_orders = counts[0];
    v->n_cancels = counts[1];
    v->n_fills = counts[2];
    return SP_OK;
}

static struct sp_venue_tag *lob_tag(void *self)
{
    struct lob_venue *v = self;
    return &v->tag;
}

/* The registry lists `&sp_market_lob_ops.base`; sp_market_ops_of() casts
 * back to the whole table (the module ops are its first member). */
const struct sp_market_ops sp_market_lob_ops = {
    .base = {
        .kind = "market", .type = "lob",
        .summary = "limit order book, price-time priority, escrowed limit orders",
        .schema = &lob_schema, .state_size = sizeof(struct lob_venue),
        .init = lob_init, .start = lob_start, .on_event = lob_on_event,
        .finish = lob_finish, .price = lob_price, .release = lob_release,
        .snapshot = lob_snapshot, .restore = lob_restore,
    },
    .pair = lob_pair, .price = lob_price, .quote = lob_quote, .swap = lob_swap,
    .cumulative = lob_cumulative, .tag = lob_tag,
};


/* ---- book.h ---------------------------------------------------------------- */

static struct lob_venue *venue_of(const struct sp_sim *sim, sp_id venue)
{
    if (sp_sim_entity_ops(sim, venue) != &sp_market_lob_ops.base) return NULL;
    /* The accessor takes a mutable sim; the const entry points only read. */
    return sp_sim_entity_state((struct sp_sim *)sim, venue);
}

int sp_book_is(const struct sp_sim *sim, sp_id venue)
{
    return venue_of(sim, venue) != NULL;
}

/* A limit order (the rest rests, escrowed) or, with `ioc`, an
 * immediate-or-cancel one (the rest is dropped). */
static int place(struct sp_sim *sim, sp_id venue, sp_id agent, enum sp_side side, double price,
                 double qty_base, int cause, bool ioc, sp_order_id *id, double *filled_base)
{
    struct lob_venue *v = venue_of(sim, venue);
    if (id) *id = 0;
    if (filled_base) *filled_base = 0;
    if (!v || (side != SP_BUY && side != SP_SELL) || !(price > 0) || !isfinite(price) ||
        !(qty_base > 0) || !isfinite(qty_base))
        return SP_EINVAL;
    double pt = price / v->tick;
    pt = side == SP_BUY ? floor(pt + 1e-9) : ceil(pt - 1e-9);
    if (pt < (double)v->min_tick || pt >= (double)(v->min_tick + v->n_ticks)) return SP_ERANGE;
    int64_t p = (int64_t)pt;
    double lq = floor(qty_base / v->lot + 1e-9);
    if (lq < 1) return SP_EINVAL;
    if (lq > 1e15) return SP_ERANGE;
    int64_t lots = (int64_t)lq;
    sp_token tin = side == SP_BUY ? v->quote : v->base;
    double need = side == SP_BUY ? (double)(p * lots) * v->tl : (double)lots * v->lot;
    if (sp_balance(sim, agent, tin) < need * (1 - 1e-12)) return SP_ERANGE;
    double before = mid_of(v);
    accrue(v);
    v->taker = agent;
    uint64_t oid = 0;
    int64_t filled = 0;
    int rc = (ioc ? sp_lob_ioc : sp_lob_limit)(v->book, side == SP_BUY ? SP_LOB_BUY : SP_LOB_SELL,
                                                p, lots, &oid, &filled);
    if (rc == SP_ENOMEM) {
        sp_sim_fail(sim, SP_EMODEL, "%s: the book is full (%lld resting orders): raise max_orders",
                    sp_sim_entity_name(sim, v->id), (long long)v->cfg->max_orders);
        return SP_EMODEL;
    }
    if (rc) return rc;
    v->n_orders++;
    int64_t rest = ioc ? 0 : lots - filled;
    if (rest > 0) {
        v->owner[(uint32_t)oid] = (struct owner){ agent, cause };
        double esc = side == SP_BUY ? (double)(p * rest) * v->tl : (double)rest * v->lot;
        int r2 = sp_transfer(sim, tin, agent, v->id, esc);
        if (r2 && !v->err) v->err = r2;
        if (id) *id = oid;
    }
    if (filled_base) *filled_base = (double)filled * v->lot;
    return flush_fills(v, side, cause, 0, before);
}

int sp_book_limit(struct sp_sim *sim, sp_id venue, sp_id agent, enum sp_side side,
                  double price, double qty_base, int cause, sp_order_id *id,
                  double *filled_base)
{
    return place(sim, venue, agent, side, price, qty_base, cause, false, id, filled_base);
}

int sp_book_ioc(struct sp_sim *sim, sp_id venue, sp_id agent, enum sp_side side, double price,
                double qty_base, int cause, double *filled_base)
{
    return place(sim, venue, agent, side, price, qty_base, cause, true, NULL, filled_base);
}

int sp_book_cancel(struct sp_sim *sim, sp_id venue, sp_order_id id)
{
    struct lob_venue *v = venue_of(sim, venue);
    if (!v) return SP_EINVAL;
    enum sp_lob_side side;
    int64_t price, rem;
    int rc = sp_lob_order(v->book, id, &side, &price, &rem);
    if (rc) return rc;
    accrue(v);
    rc = sp_lob_cancel(v->book, id, &rem);
    if (rc) return rc;
    v->n_cancels++;
    sp_id owner = v->owner[(uint32_t)id].agent;
    rc = side == SP_LOB_BUY ? sp_transfer(sim, v->quote, v->id, owner, (double)(price * rem) * v->tl)
                            : sp_transfer(sim, v->base, v->id, owner, (double)rem * v->lot);
    settle_mid(v);
    return rc;
}

int sp_book_best(const struct sp_sim *sim, sp_id venue, double *bid, double *bid_qty,
                 double *ask, double *ask_qty)
{
    const struct lob_venue *v = venue_of(sim, venue);
    if (!v) return SP_EINVAL;
    int64_t p, q;
    int hb = !sp_lob_best_bid(v->book, &p, &q);
    if (bid) *bid = hb ? (double)p * v->tick : NAN;
    if (bid_qty) *bid_qty = hb ? (double)q * v->lot : 0.0;
    int ha = !sp_lob_best_ask(v->book, &p, &q);
    if (ask) *ask = ha ? (double)p * v->tick : NAN;
    if (ask_qty) *ask_qty = ha ? (double)q * v->lot : 0.0;
    return SP_OK;
}

size_t sp_book_depth(const struct sp_sim *sim, sp_id venue, enum sp_side side,
                     double *prices, double *qtys, size_t n)
{
    const struct lob_venue *v = venue_of(sim, venue);
    if (!v || (side != SP_BUY && side != SP_SELL)) return 0;
    /* Small requests on the stack; larger ones in the venue's scratch
     * (which holds every tick, so no side has more levels). */
    struct sp_lob_level small[64];
    struct sp_lob_level *lv = n <= 64 ? small : v->scratch;
    size_t m = n <= 64 ? n : (n < v->n_scratch ? n : v->n_scratch);
    size_t got = sp_lob_depth(v->book, side == SP_BUY ? SP_LOB_BUY : SP_LOB_SELL, lv, m);
    for (size_t i = 0; i < got; i++) {
        if (prices) prices[i] = (double)lv[i].price * v->tick;
        if (qtys) qtys[i] = (double)lv[i].qty * v->lot;
    }
    return got;
}

double sp_book_order_qty(const struct sp_sim *sim, sp_id venue, sp_order_id id)
{
    const struct lob_venue *v = venue_of(sim, venue);
    int64_t q;
    if (!v || sp_lob_order(v->book, id, NULL, NULL, &q)) return 0.0;
    return (double)q * v->lot;
}
