/*
 * arbitrageur.c — the "arbitrageur" agent: closes the gap between one venue
 * and a reference price process (the deep off-chain market), within its
 * capital, its reaction latency, and a minimum profit after fees and gas.
 *
 * Timing.  Every `poll` it reads the venue and the reference.  If a trade
 * worth doing is there, it commits to act `reaction` later (at once when
 * the reaction is 0) and does not look again until it has acted: one
 * pending execution at a time.  At execution it *re-checks*: it sizes the
 * trade on the venue as it is then, against both the price it saw and the
 * reference now — the smaller of the two optimal sizes on the same side, so
 * it never overshoots either — and trades only if that is still worth
 * min_profit after gas.  A pool that another arbitrageur already fixed, or a
 * reference that came back, leaves it nothing to do ("stale").
 *
 * Sizing.  AMMs (cpmm, stableswap): sp_amm_arb_size, the profit-maximising
 * single swap with fees (closed form CPMM, numeric StableSwap), which leaves
 * the pool on the edge of the no-arbitrage band P·γ <= price <= P/γ.  Order
 * books (lob): walk the book — buy every ask below P·(1 − threshold), sell
 * into every bid above P·(1 + threshold) — as one limit order at the worst
 * level taken, whose unfilled rest (if the book moved) is cancelled at once.
 *
 * Capital.  Its wallet is the ledger: `inventory` (the venue's base token)
 * and `cash` (its quote token) are minted to it at init, each drawn per
 * member of a population.  A sell is capped by its base balance, a buy by
 * its quote balance less the gas; there is no off-chain rebalancing, so a one-way move (a crash: the pool stays above the
 * reference, the arbitrageur keeps selling base) drains one side of its
 * wallet and then it can no longer hold the pool to the reference.  That is
 * how limited capital and latency let an AMM price run away from the
 * reference: compare /markets/<venue> with /markets/<reference>, and the
 * /summary counters capital_bound_<name> (decisions — at a poll or at an
 * execution — where a profitable gap was left, wholly or in part, for lack
 * of capital) and stale_<name> (executions that found the gap gone).
 *
 * Money.  Gas is a fixed cost in quote units per executed trade, burned from
 * its quote balance through the ledger (no chain entity receives it yet).  Profit is marked at the reference
 * at the instant of the trade: sell: quote out − base in·P − gas; buy:
 * base out·P − quote in − gas.  It only trades when that is >= min_profit
 * (>= 0), so its realised profit never falls below zero; /summary
 * profit_<name> and gas_<name>.  Every trade is recorded by the venue in
 * /events/trades with cause "arbitrage".
 *
 * Cascades.  An arbitrage that follows a venue moved by liquidation sales
 * carries the cascade on: on an AMM its trade's generation is the highest
 * liquidation tag of the venue since its previous execution
 * (sp_venue_liq_generation) and the trade is marked `propagates`, so the
 * venue stays tagged for the oracles that read it.  (Book orders go through
 * sp_book_limit, which carries no generation: they are not tagged.)
 *
 * Populations: `count: N` makes N members, each drawing cash, inventory,
 * min_profit and gas_cost from its own stream; the members of a population
 * (N > 1) start polling at a random phase within `poll` so they do not all
 * look at the same instant.
 *
 * Snapshot: whether an execution is queued (the event itself, with the
 * price it saw, is restored with the queue), the time of its previous
 * execution (cascade tags since then), and the /summary accumulators.  Its
 * draws (min_profit, gas, phase) come from init, its wallet from the ledger.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "amm.h"
#include "book.h"
#include "reference.h"

enum { EV_POLL = 1, EV_EXEC = 2 };
enum { VENUE_AMM, VENUE_BOOK };

/* Book levels walked per trade. */
#define ARB_BOOK_LEVELS 64

/* ---- config ---------------------------------------------------------------- */

struct arb_cfg {
    const char *venue;
    const char *reference;        /* NULL: the reference of the venue's base */
    int64_t count;
    struct sp_dist cash, inventory;
    sp_time poll, reaction;
    double threshold;
    struct sp_dist min_profit, gas_cost;
};


static const char *const venue_types[] = { "cpmm", "stableswap", "lob", NULL };

static int arb_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct arb_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = sp_world_check_entity(ctx, "venue", w->markets, w->n_markets, "venue", venue_types);
    if (c->reference &&
        sp_world_check_entity(ctx, "reference", w->references, w->n_references, "reference", NULL))
        rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "cash", &c->cash)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "inventory", &c->inventory)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "min_profit", &c->min_profit)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "gas_cost", &c->gas_cost)) rc = SP_ECONFIG;
    return rc;
}

static const struct sp_field arb_fields[] = {
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The market it arbitrages (a `markets` entry: cpmm, stableswap or lob).",
      offsetof(struct arb_cfg, venue), NULL, 0 },
    { "reference", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The reference process it arbitrages against; default the one pricing the venue's base.",
      offsetof(struct arb_cfg, reference), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1e7, "1", "agents",
      "Population size: N > 1 makes NAME_0 .. NAME_{N-1}, each with its own draws.",
      offsetof(struct arb_cfg, count), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote token",
      "Capital in the venue's quote token, minted at init: caps its buys (and pays gas).",
      offsetof(struct arb_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base token",
      "Capital in the venue's base token, minted at init: caps its sells.",
      offsetof(struct arb_cfg, inventory), NULL, 0 },
    { "poll", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "12s", "time",
      "How often it compares the venue with the reference.",
      offsetof(struct arb_cfg, poll), NULL, 0 },
    { "reaction", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "Latency between seeing a gap and trading on it (re-checked at execution).",
      offsetof(struct arb_cfg, reaction), NULL, 0 },
    { "threshold", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0.1%", "fraction",
      "Order books: buy asks below reference·(1 − threshold), sell into bids above "
      "reference·(1 + threshold). AMMs use their fee band instead.",
      offsetof(struct arb_cfg, threshold), NULL, 0 },
    { "min_profit", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote token",
      "Least profit after fees and gas, marked at the reference, for a trade to be worth doing.",
      offsetof(struct arb_cfg, min_profit), NULL, 0 },
    { "gas_cost", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote token",
      "Fixed cost of each trade in quote units, burned from its quote balance.",
      offsetof(struct arb_cfg, gas_cost), NULL, 0 },
};

static const struct sp_schema arb_schema = {
    "agents[type: arbitrageur]",
    "Closes the gap between a venue and a reference price with the optimal trade size, "
    "limited by its capital, its reaction latency and a minimum profit after fees and gas.",
    arb_fields, sizeof arb_fields / sizeof arb_fields[0], sizeof(struct arb_cfg), arb_check
};

/* ---- state ----------------------------------------------------------------- */

struct arb {
    const struct arb_cfg *cfg;
    sp_id id, venue, ref;
    int kind;                     /* VENUE_AMM or VENUE_BOOK */
    sp_token base, quote;
    double min_profit, gas;
    sp_time phase;                /* first poll */
    bool pending;                 /* an execution is scheduled */
    sp_time last_look;            /* previous execution: venue tags since then count */
    double profit, gas_paid, volume_quote;
    int64_t n_trades, n_capital_bound, n_stale;
};

/* A planned trade. */
struct plan {
    enum sp_side side;
    double amount;                /* AMM: amount in; book: base quantity */
    double limit;                 /* book: worst price taken */
    double profit;                /* expected, after gas, marked at the reference now */
    bool capital_bound;           /* cut (or prevented) by the wallet */
};

static size_t arb_count(const void *cfg)
{
    const struct arb_cfg *c = cfg;
    return (size_t)c->count;
}

static double draw_nonneg(struct sp_sim *sim, sp_id id, const struct sp_dist *d, const char *key,
                          int *rc)
{
    double v = sp_dist_draw(d, sp_sim_rng(sim, id));
    if (!(v >= 0) || !isfinite(v)) {
        sp_sim_fail(sim, SP_EMODEL, "%s: %s drew %g (must be >= 0)", sp_sim_entity_name(sim, id),
                    key, v);
        *rc = SP_EMODEL;
    }
    return v;
}

static int arb_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct arb *a = self;
    const struct arb_cfg *c = cfg;
    const char *me = sp_sim_entity_name(sim, id);
    a->cfg = c;
    a->id = id;
    a->venue = sp_sim_find(sim, c->venue);
    const struct sp_market_ops *m = a->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, a->venue);
    if (!m) {
        sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a market", me, c->venue);
        return SP_EINVAL;
    }
    if (sp_amm_is(sim, a->venue)) a->kind = VENUE_AMM;
    else if (sp_book_is(sim, a->venue)) a->kind = VENUE_BOOK;
    else {
        sp_sim_fail(sim, SP_EINVAL, "%s: venue '%s' is neither an AMM nor an order book", me,
                    c->venue);
        return SP_EINVAL;
    }
    m->pair(sp_sim_entity_state(sim, a->venue), &a->base, &a->quote);
    if (c->reference) {
        a->ref = sp_sim_find(sim, c->reference);
        if (a->ref == SP_ID_NONE || !sp_is_reference(sim, a->ref)) {
            sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a reference process", me, c->reference);
            return SP_EINVAL;
        }
    } else {
        a->ref = SP_ID_NONE;
        const char *asset = sp_token_name(sim, a->base);
        for (sp_id e = 0; e < sp_sim_entity_count(sim); e++) {
            const char *x = sp_is_reference(sim, e) ? sp_reference_asset(sim, e) : NULL;
            if (x && !strcmp(x, asset)) { a->ref = e; break; }
        }
        if (a->ref == SP_ID_NONE) {
            sp_sim_fail(sim, SP_EINVAL, "%s: no reference process prices %s: add one or set "
                        "`reference`", me, asset);
            return SP_EINVAL;
        }
    }
    int rc = SP_OK;
    double cash = draw_nonneg(sim, id, &c->cash, "cash", &rc);
    double inventory = rc ? 0 : draw_nonneg(sim, id, &c->inventory, "inventory", &rc);
    if (!rc) a->min_profit = draw_nonneg(sim, id, &c->min_profit, "min_profit", &rc);
    if (!rc) a->gas = draw_nonneg(sim, id, &c->gas_cost, "gas_cost", &rc);
    if (rc) return rc;
    if ((rc = sp_mint(sim, a->quote, id, cash)) || (rc = sp_mint(sim, a->base, id, inventory))) {
        sp_sim_fail(sim, rc, "%s: cannot mint its capital: %s", me, sp_strerror(rc));
        return rc;
    }
    a->phase = c->count > 1 ? (sp_time)sp_rng_below(sp_sim_rng(sim, id), (uint64_t)c->poll) : 0;
    return SP_OK;
}

static int arb_start(void *self, struct sp_sim *sim)
{
    struct arb *a = self;
    if (a->phase > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, a->phase, SP_PRIO_AGENT, a->id, EV_POLL) ? SP_OK : SP_ENOMEM;
}

/* ---- planning -------------------------------------------------------------- */

static int plan_amm(struct arb *a, struct sp_sim *sim, double p_seen, double p_now,
                    struct plan *pl)
{
    enum sp_side s1, s2;
    double x1, x2;
    int rc = sp_amm_arb_size(sim, a->venue, p_seen, &s1, &x1);
    if (!rc) rc = sp_amm_arb_size(sim, a->venue, p_now, &s2, &x2);
    if (rc) return rc;
    if (!(x1 > 0) || !(x2 > 0) || s1 != s2) return SP_ENOTFOUND;
    pl->side = s1;
    pl->amount = x1 < x2 ? x1 : x2;
    double cap = s1 == SP_SELL ? sp_balance(sim, a->id, a->base)
                               : sp_balance(sim, a->id, a->quote) - a->gas;
    if (sp_balance(sim, a->id, a->quote) < a->gas) cap = 0;
    pl->capital_bound = cap < pl->amount;
    if (pl->capital_bound) pl->amount = cap;
    if (!(pl->amount > 0)) return SP_ERANGE;
    const struct sp_market_ops *m = sp_market_ops_of(sim, a->venue);
    double out;
    if ((rc = m->quote(sp_sim_entity_state(sim, a->venue), pl->side, pl->amount, &out)))
        return rc;
    pl->profit = pl->side == SP_SELL ? out - pl->amount * p_now - a->gas
                                     : out * p_now - pl->amount - a->gas;
    return SP_OK;
}

static int plan_book(struct arb *a, struct sp_sim *sim, double p_seen, double p_now,
                     struct plan *pl)
{
    double th = a->cfg->threshold;
    double prices[ARB_BOOK_LEVELS], qtys[ARB_BOOK_LEVELS];
    double bid, ask;
    int rc = sp_book_best(sim, a->venue, &bid, NULL, &ask, NULL);
    if (rc) return rc;
    double buy_below = fmin(p_seen, p_now) * (1 - th);
    double sell_above = fmax(p_seen, p_now) * (1 + th);
    enum sp_side side;
    if (ask < buy_below) side = SP_BUY;            /* NAN compares false: empty side */
    else if (bid > sell_above) side = SP_SELL;
    else return SP_ENOTFOUND;
    /* Walk the other side: asks (SP_SELL) to buy, bids (SP_BUY) to sell. */
    size_t n = sp_book_depth(sim, a->venue, side == SP_BUY ? SP_SELL : SP_BUY, prices, qtys,
                             ARB_BOOK_LEVELS);
    double quote_bal = sp_balance(sim, a->id, a->quote);
    double budget = side == SP_BUY ? quote_bal - a->gas : sp_balance(sim, a->id, a->base);
    if (quote_bal < a->gas) budget = 0;
    double qty = 0, edge = 0, worst = NAN;
    pl->capital_bound = false;
    for (size_t i = 0; i < n; i++) {
        double p = prices[i], q = qtys[i];
        if (side == SP_BUY ? !(p < buy_below) : !(p > sell_above)) break;
        /* A buy must hold the limit price times the whole quantity. */
        double room = side == SP_BUY ? budget / p - qty : budget - qty;
        if (q > room) { q = room > 0 ? room : 0; pl->capital_bound = true; }
        if (!(q > 0)) break;
        qty += q;
        edge += side == SP_BUY ? (p_now - p) * q : (p - p_now) * q;
        worst = p;
        if (pl->capital_bound) break;
    }
    if (!(qty > 0)) return SP_ERANGE;
    pl->side = side;
    pl->amount = qty;
    pl->limit = worst;
    pl->profit = edge - a->gas;
    return SP_OK;
}

/* ---- acting ---------------------------------------------------------------- */

static double wallet_value(const struct arb *a, struct sp_sim *sim, double p)
{
    return sp_balance(sim, a->id, a->base) * p + sp_balance(sim, a->id, a->quote);
}

static void execute(struct arb *a, struct sp_sim *sim, double p_seen)
{
    double p_now = sp_reference_price(sim, a->ref);
    struct plan pl = { 0 };
    int rc = a->kind == VENUE_AMM ? plan_amm(a, sim, p_seen, p_now, &pl)
                                  : plan_book(a, sim, p_seen, p_now, &pl);
    if (rc == SP_ENOTFOUND) { a->n_stale++; return; }
    if (rc == SP_ERANGE) { a->n_capital_bound++; return; }
    if (rc) {
        sp_sim_fail(sim, rc, "%s: cannot size a trade on %s: %s",
                    sp_sim_entity_name(sim, a->id), a->cfg->venue, sp_strerror(rc));
        return;
    }
    if (pl.capital_bound) a->n_capital_bound++;
    if (pl.profit < a->min_profit) return;

    double before = wallet_value(a, sim, p_now);
    double quote_before = sp_balance(sim, a->id, a->quote);
    if (a->kind == VENUE_AMM) {
        const struct sp_market_ops *m = sp_market_ops_of(sim, a->venue);
        double out;
        if ((rc = m->quote(sp_sim_entity_state(sim, a->venue), pl.side, pl.amount, &out)))
            goto fail;
        int g = sp_venue_liq_generation(sim, a->venue, a->last_look);
        a->last_look = sp_sim_now(sim);
        struct sp_swap req = { .agent = a->id, .side = pl.side, .amount_in = pl.amount,
                               .min_out = out * (1 - 1e-12), .cause = SP_CAUSE_ARBITRAGE,
                               .generation = g > 0 ? g : 0, .propagates = g >= 0 };
        struct sp_swap_result res;
        if ((rc = sp_market_swap(sim, a->venue, &req, &res))) goto fail;
    } else {
        sp_order_id oid;
        double filled;
        rc = sp_book_limit(sim, a->venue, a->id, pl.side, pl.limit, pl.amount,
                           SP_CAUSE_ARBITRAGE, &oid, &filled);
        if (rc == SP_EINVAL && pl.capital_bound) return;   /* it affords less than a lot */
        if (rc) goto fail;
        if (oid && (rc = sp_book_cancel(sim, a->venue, oid))) goto fail;
        if (!(filled > 0)) { a->n_stale++; return; }
    }
    if (a->gas > 0 && (rc = sp_burn(sim, a->quote, a->id, a->gas))) goto fail;
    a->n_trades++;
    a->gas_paid += a->gas;
    a->volume_quote += fabs(sp_balance(sim, a->id, a->quote) + a->gas - quote_before);
    a->profit += wallet_value(a, sim, p_now) - before;
    return;
fail:
    sp_sim_fail(sim, rc, "%s: arbitrage on %s failed: %s", sp_sim_entity_name(sim, a->id),
                a->cfg->venue, sp_strerror(rc));
}

static void arb_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct arb *a = self;
    if (ev->kind == EV_EXEC) {
        a->pending = false;
        execute(a, sim, ev->data.f[0]);
        return;
    }
    /* EV_POLL */
    sp_time next = ev->t + a->cfg->poll;
    if (!a->pending) {
        double p = sp_reference_price(sim, a->ref);
        struct plan pl = { 0 };
        int rc = a->kind == VENUE_AMM ? plan_amm(a, sim, p, p, &pl) : plan_book(a, sim, p, p, &pl);
        if (rc == SP_OK && pl.profit >= a->min_profit) {
            if (a->cfg->reaction == 0) {
                execute(a, sim, p);
            } else {
                struct sp_event *x = sp_sim_schedule(sim, ev->t + a->cfg->reaction, SP_PRIO_AGENT,
                                                     a->id, EV_EXEC);
                if (!x) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
                x->data.f[0] = p;
                a->pending = true;
            }
        } else if (rc == SP_ERANGE) {
            a->n_capital_bound++;
        } else if (rc && rc != SP_ENOTFOUND) {
            sp_sim_fail(sim, rc, "%s: cannot size a trade on %s: %s",
                        sp_sim_entity_name(sim, a->id), a->cfg->venue, sp_strerror(rc));
            return;
        }
    }
    if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
}

static void arb_finish(void *self, struct sp_sim *sim)
{
    struct arb *a = self;
    const char *name = sp_sim_entity_name(sim, a->id);
    char key[300];
    snprintf(key, sizeof key, "profit_%s", name);
    sp_sim_summary(sim, key, a->profit);
    snprintf(key, sizeof key, "gas_%s", name);
    sp_sim_summary(sim, key, a->gas_paid);
    snprintf(key, sizeof key, "n_trades_%s", name);
    sp_sim_summary(sim, key, (double)a->n_trades);
    snprintf(key, sizeof key, "volume_%s", name);
    sp_sim_summary(sim, key, a->volume_quote);
    snprintf(key, sizeof key, "capital_bound_%s", name);
    sp_sim_summary(sim, key, (double)a->n_capital_bound);
    snprintf(key, sizeof key, "stale_%s", name);
    sp_sim_summary(sim, key, (double)a->n_stale);
}

static int arb_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct arb *a = self;
    sp_snap_put_array(w, 4);
    sp_snap_put_bool(w, a->pending);
    sp_snap_put_i64(w, a->last_look);
    sp_snap_put_f64s(w, (const double[]){ a->profit, a->gas_paid, a->volume_quote }, 3);
    return sp_snap_put_i64s(w, (const int64_t[]){ a->n_trades, a->n_capital_bound, a->n_stale }, 3);
}

static int arb_restore(void *self, struct sp_snapshot_reader *r)
{
    struct arb *a = self;
    double f[3];
    int64_t n[3];
    sp_snap_get_array_n(r, 4);
    sp_snap_get_bool(r, &a->pending);
    sp_snap_get_i64(r, &a->last_look);
    sp_snap_get_f64s(r, f, 3);
    sp_snap_get_i64s(r, n, 3);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    a->profit = f[0];
    a->gas_paid = f[1];
    a->volume_quote = f[2];
    a->n_trades = n[0];
    a->n_capital_bound = n[1];
    a->n_stale = n[2];
    return SP_OK;
}

const struct sp_module_ops sp_agent_arbitrageur_ops = {
    .kind = "agent", .type = "arbitrageur",
    .summary = "closes venue-reference gaps with the optimal trade, within capital, latency "
               "and a minimum profit after gas",
    .schema = &arb_schema, .state_size = sizeof(struct arb),
    .count = arb_count, .init = arb_init, .start = arb_start, .on_event = arb_on_event,
    .finish = arb_finish, .snapshot = arb_snapshot, .restore = arb_restore,
};
