/*
 * amm.c — the AMM venue machinery shared by the "cpmm" and "stableswap"
 * market types, and market/amm.h (what agents do with an AMM beyond swaps).
 *
 * A venue is `struct amm` (amm-internal.h): a pool from market/cpmm.h or
 * market/stableswap.h plus its place in the simulation.  The pool math is
 * reached through the type's `struct amm_mech`; this file does the rest the
 * same way for both:
 *   - swaps: the agent must hold the input (else SP_ERANGE, nothing moves);
 *     the swap is computed on a copy of the pool, rejected below min_out
 *     (SP_ERANGE, nothing moves), then the input moves agent -> venue, the
 *     pool is committed, the output moves venue -> agent, and the trade is
 *     recorded in /events/trades;
 *   - the price cumulative is Uniswap v2's price0CumulativeLast: before any
 *     change of the reserves, cum += price·(now − cum_t); read at `now` it
 *     is extrapolated with the price in force;
 *   - liquidity: deposits at the pool's ratio, capped by the agent's
 *     balances; LP shares per holder in a small growable array (the venue
 *     itself holds the initial shares, so the pool never empties).  When a
 *     token of kind lp names the venue as its issuer (spiral/token.h), the
 *     shares are that ledger token instead: minted to the venue for the
 *     initial liquidity, to the provider on add, burned on remove, and
 *     sp_amm_lp_shares reads the ledger, so LP tokens can be transferred
 *     and posted as collateral.  Then the venue's ledger supply of the lp
 *     token equals the pool's lp_supply, and every change of the reserves
 *     calls sp_token_values_changed (the lp token's value moved);
 *   - sampling of /markets/<name> on a grid at SP_PRIO_RECORD, and
 *     /summary metrics at finish.
 * The ledger and the pool do the same arithmetic on the same numbers, so
 * the venue's balances equal the reserves exactly; debug builds assert it
 * after every change.
 *
 * Snapshot (both types, one payload): what changes while running — the
 * pool's reserves and LP supply (fee and amp stay the config's, so a branch
 * may change them), the price and its cumulative, the /summary extrema and
 * volume, the LP holders in array order (ids and shares: the lookup is a
 * linear scan, so the order is the index), and the liquidation tag's
 * (time, generation) pairs (its watchers are made again by their owners'
 * init/start).  The sampling event is in the restored queue and the table
 * is made again by start.  Restore checks the reserves against the
 * venue's ledger balances, which the engine restored first.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "amm.h"
#include "amm-internal.h"

enum { EV_SAMPLE = 1 };

/* Rounds of the StableSwap arbitrage size (see sp_amm_arb_size). */
#define AMM_ARB_ROUNDS 16

/* ---- helpers --------------------------------------------------------------- */

static void check_sync(const struct amm *a)
{
#ifndef NDEBUG
    double r[2];
    a->mech->reserves(a, r);
    for (int k = 0; k < 2; k++) {
        double b = sp_balance(a->sim, a->id, a->tok[k]);
        assert(fabs(b - r[k]) <= 1e-12 * (r[k] > 1.0 ? r[k] : 1.0));
        (void)b;
    }
#else
    (void)a;
#endif
}

/* The venue state of `id` if it is an AMM, else NULL.  The sim is only
 * read: the cast drops const because the engine has one accessor. */
static struct amm *venue_of(const struct sp_sim *sim, sp_id id)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    if (!ops || (ops != &sp_market_cpmm_ops.base && ops != &sp_market_stableswap_ops.base)) return NULL;
    return sp_sim_entity_state((struct sp_sim *)sim, id);
}

/* The ledger lp token this venue issues, or -1 (then shares are internal). */
static sp_token lp_token(const struct amm *a)
{
    sp_token t = sp_token_find_issued(a->sim, a->id, -1);
    return t >= 0 && sp_token_kind(a->sim, t) == SP_TOKEN_LP ? t : -1;
}

static int agent_ok(const struct amm *a, sp_id agent)
{
    return agent != a->id && agent < sp_sim_entity_count(a->sim);
}

/* Accrue the cumulative up to now (before the reserves change). */
static void accrue(struct amm *a)
{
    sp_time now = sp_sim_now(a->sim);
    if (now > a->cum_t) {
        a->cum += a->price * sp_time_sec(now - a->cum_t);
        a->cum_t = now;
    }
}

static void track_price(struct amm *a)
{
    double p;
    if (a->mech->price(a, &p) == 0) a->price = p;
    if (a->price > a->peak) a->peak = a->price;
    double dd = 1.0 - a->price / a->peak;
    if (dd > a->max_drawdown) a->max_drawdown = dd;
    if (a->price < a->min_price) a->min_price = a->price;
}

static struct amm_holder *holder_find(const struct amm *a, sp_id h)
{
    for (size_t i = 0; i < a->n_lp; i++)
        if (a->lp[i].holder == h) return &a->lp[i];
    return NULL;
}

static int holder_credit(struct amm *a, sp_id h, double shares)
{
    struct amm_holder *e = holder_find(a, h);
    if (!e) {
        if (a->n_lp == a->cap_lp) {
            size_t cap = a->cap_lp ? 2 * a->cap_lp : 4;
            struct amm_holder *p = realloc(a->lp, cap * sizeof *p);
            if (!p) return SP_ENOMEM;
            a->lp = p;
            a->cap_lp = cap;
        }
        e = &a->lp[a->n_lp++];
        e->holder = h;
        e->shares = 0.0;
    }
    e->shares += shares;
    return SP_OK;
}

static void record_row(struct amm *a, sp_time t)
{
    if (!a->tab) return;
    double r[2];
    a->mech->reserves(a, r);
    union sp_rec_val row[6];
    row[0].f = sp_time_sec(t);
    row[1].i = t;
    row[2].f = a->price;
    row[3].f = r[0];
    row[4].f = r[1];
    row[5].f = a->mech->lp_supply(a);
    sp_rec_append(a->tab, row);
}

/* ---- lifecycle ------------------------------------------------------------- */

int sp_amm_check_pair(const struct sp_check_ctx *ctx, const struct amm_cfg *c)
{
    int rc = sp_world_check_token(ctx, "base", -1);
    int rq = sp_world_check_token(ctx, "quote", -1);
    if (rc || rq) return SP_ECONFIG;
    if (!strcmp(c->base, c->quote)) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "quote"),
                      "base and quote must be different tokens (both are '%s')", c->quote);
        return SP_ECONFIG;
    }
    return SP_OK;
}

int sp_amm_venue_init(struct amm *a, const struct amm_mech *mech, struct sp_sim *sim, sp_id id,
                      const struct amm_cfg *c)
{
    a->cfg = c;
    a->mech = mech;
    a->sim = sim;
    a->id = id;
    a->tok[0] = sp_token_find(sim, c->base);
    a->tok[1] = sp_token_find(sim, c->quote);
    if (a->tok[0] < 0 || a->tok[1] < 0 || a->tok[0] == a->tok[1]) {
        sp_sim_fail(sim, SP_EINVAL, "%s: bad pair %s/%s", c->name, c->base, c->quote);
        return SP_EINVAL;
    }
    int rc = mech->init(a, c);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: cannot create the pool: %s", c->name, sp_strerror(rc));
        return rc;
    }
    double r[2];
    mech->reserves(a, r);
    if ((rc = sp_mint(sim, a->tok[0], id, r[0])) || (rc = sp_mint(sim, a->tok[1], id, r[1])) ||
        (rc = holder_credit(a, id, mech->lp_supply(a))) ||
        (lp_token(a) >= 0 && (rc = sp_mint(sim, lp_token(a), id, mech->lp_supply(a))))) {
        sp_sim_fail(sim, rc, "%s: cannot fund the pool: %s", c->name, sp_strerror(rc));
        return rc;
    }
    if ((rc = mech->price(a, &a->price))) {
        sp_sim_fail(sim, rc, "%s: no price: %s", c->name, sp_strerror(rc));
        return rc;
    }
    a->peak = a->min_price = a->price;
    a->sample_every = c->sample_every ? c->sample_every : sp_sim_sample_every(sim);
    check_sync(a);
    return SP_OK;
}

static const struct sp_rec_col amm_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
    { "price", SP_REC_F64, "quote per base", "pool marginal price, fee excluded", NULL },
    { "reserve_0", SP_REC_F64, "token", "pool reserve of the base token", NULL },
    { "reserve_1", SP_REC_F64, "token", "pool reserve of the quote token", NULL },
    { "lp_supply", SP_REC_F64, "share", "LP shares outstanding", NULL },
};

int sp_amm_venue_start(void *self, struct sp_sim *sim)
{
    struct amm *a = self;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        char group[300];
        snprintf(group, sizeof group, "/markets/%s", sp_sim_entity_name(sim, a->id));
        int rc = sp_rec_table_create(rec, group, amm_cols, sizeof amm_cols / sizeof amm_cols[0],
                                     &a->tab);
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
        const struct sp_module_ops *ops = sp_sim_entity_ops(sim, a->id);
        sp_rec_attr_str(rec, group, "type", ops->type);
        sp_rec_attr_str(rec, group, "base", a->cfg->base);
        sp_rec_attr_str(rec, group, "quote", a->cfg->quote);
        sp_rec_attr_f64(rec, group, "fee", a->cfg->fee);
        if (ops == &sp_market_stableswap_ops.base) sp_rec_attr_f64(rec, group, "amp", a->cfg->amp);
    }
    if (!sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_RECORD, a->id, EV_SAMPLE))
        return SP_ENOMEM;
    return SP_OK;
}

void sp_amm_venue_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct amm *a = self;
    if (ev->kind != EV_SAMPLE) return;
    record_row(a, ev->t);
    sp_time next = ev->t + a->sample_every;
    if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
}

void sp_amm_venue_finish(void *self, struct sp_sim *sim)
{
    struct amm *a = self;
    char key[300];
    const char *name = sp_sim_entity_name(sim, a->id);
    snprintf(key, sizeof key, "max_drawdown_%s", name);
    sp_sim_summary(sim, key, a->max_drawdown);
    snprintf(key, sizeof key, "min_price_%s", name);
    sp_sim_summary(sim, key, a->min_price);
    snprintf(key, sizeof key, "final_price_%s", name);
    sp_sim_summary(sim, key, a->price);
    snprintf(key, sizeof key, "volume_%s", name);
    sp_sim_summary(sim, key, a->volume);
}

void sp_amm_venue_release(void *self)
{
    struct amm *a = self;
    free(a->lp);
    a->lp = NULL;
    a->n_lp = a->cap_lp = 0;
}

/* ---- snapshot -------------------------------------------------------------- */

enum { SNAP_F_R0, SNAP_F_R1, SNAP_F_LP, SNAP_F_PRICE, SNAP_F_CUM, SNAP_F_PEAK, SNAP_F_MDD,
       SNAP_F_MIN, SNAP_F_VOLUME, SNAP_N_F };

int sp_amm_venue_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct amm *a = self;
    /* The LP holders go as two bins (ids, shares): split them first. */
    uint64_t *ids = malloc((a->n_lp ? a->n_lp : 1) * sizeof *ids);
    double *sh = malloc((a->n_lp ? a->n_lp : 1) * sizeof *sh);
    if (!ids || !sh) { free(ids); free(sh); return SP_ENOMEM; }
    for (size_t i = 0; i < a->n_lp; i++) {
        ids[i] = (uint64_t)a->lp[i].holder;
        sh[i] = a->lp[i].shares;
    }
    double r[2];
    a->mech->reserves(a, r);
    double f[SNAP_N_F] = {
        [SNAP_F_R0] = r[0], [SNAP_F_R1] = r[1], [SNAP_F_LP] = a->mech->lp_supply(a),
        [SNAP_F_PRICE] = a->price, [SNAP_F_CUM] = a->cum, [SNAP_F_PEAK] = a->peak,
        [SNAP_F_MDD] = a->max_drawdown, [SNAP_F_MIN] = a->min_price, [SNAP_F_VOLUME] = a->volume,
    };
    int64_t gen[SP_VENUE_TAG_MAX];
    for (int i = 0; i < a->tag.n; i++) gen[i] = a->tag.gen[i];
    sp_snap_put_array(w, 5);
    sp_snap_put_f64s(w, f, SNAP_N_F);
    sp_snap_put_i64(w, a->cum_t);
    sp_snap_put_array(w, 2);
    sp_snap_put_u64s(w, ids, a->n_lp);
    sp_snap_put_f64s(w, sh, a->n_lp);
    free(ids);
    free(sh);
    /* The liquidation tag: times and generations. */
    sp_snap_put_i64s(w, a->tag.t, (size_t)a->tag.n);
    return sp_snap_put_i64s(w, gen, (size_t)a->tag.n);
}

static bool pos_finite(double x) { return x > 0.0 && x < INFINITY; }

/* The LP holders: ids checked against the world, the venue first. */
static int restore_holders(struct amm *a, struct sp_snapshot_reader *r)
{
    size_t n, n_sh;
    sp_snap_get_array_n(r, 2);
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (n == 0) return sp_snap_fail(r, "no LP holders (the venue holds the initial shares)");
    uint64_t *ids = malloc(n * sizeof *ids);
    if (!ids) return sp_snap_fail(r, "out of memory");
    if (sp_snap_get_u64s(r, ids, n) || sp_snap_peek_count(r, &n_sh)) goto out;
    if (n_sh != n) { sp_snap_fail(r, "%zu LP holders but %zu share amounts", n, n_sh); goto out; }
    if (n > a->cap_lp) {
        struct amm_holder *p = realloc(a->lp, n * sizeof *p);
        if (!p) { sp_snap_fail(r, "out of memory"); goto out; }
        a->lp = p;
        a->cap_lp = n;
    }
    double *sh = malloc(n * sizeof *sh);
    if (!sh) { sp_snap_fail(r, "out of memory"); goto out; }
    if (sp_snap_get_f64s(r, sh, n) == 0) {
        size_t n_ents = sp_sim_entity_count(a->sim);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] >= n_ents || (i == 0) != (ids[i] == (uint64_t)a->id) ||
                !(sh[i] >= 0.0 && sh[i] < INFINITY)) {
                sp_snap_fail(r, "LP holder %zu: entity %llu with %g shares", i,
                             (unsigned long long)ids[i], sh[i]);
                break;
            }
            a->lp[i].holder = (sp_id)ids[i];
            a->lp[i].shares = sh[i];
        }
        if (!sp_snap_error(r)) a->n_lp = n;
    }
    free(sh);
out:
    free(ids);
    return sp_snap_error(r) ? sp_snap_error(r) : sp_snap_get_end(r);
}

/* The liquidation tag's pairs (the watchers are left as init/start made them). */
static int restore_tag(struct amm *a, struct sp_snapshot_reader *r)
{
    size_t n, n_gen;
    int64_t t[SP_VENUE_TAG_MAX], gen[SP_VENUE_TAG_MAX];
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (n > SP_VENUE_TAG_MAX)
        return sp_snap_fail(r, "%zu liquidation tag pairs (at most %d)", n, SP_VENUE_TAG_MAX);
    sp_snap_get_i64s(r, t, n);
    if (sp_snap_peek_count(r, &n_gen)) return sp_snap_error(r);
    if (n_gen != n) return sp_snap_fail(r, "%zu tag times but %zu generations", n, n_gen);
    if (sp_snap_get_i64s(r, gen, n)) return sp_snap_error(r);
    for (size_t i = 0; i < n; i++) {
        if (gen[i] < 0 || gen[i] > INT32_MAX || t[i] < 0 || t[i] > sp_sim_now(a->sim))
            return sp_snap_fail(r, "liquidation tag pair %zu: time %lld, generation %lld", i,
                                (long long)t[i], (long long)gen[i]);
        a->tag.t[i] = t[i];
        a->tag.gen[i] = (int)gen[i];
    }
    a->tag.n = (int)n;
    return SP_OK;
}

int sp_amm_venue_restore(void *self, struct sp_snapshot_reader *r)
{
    struct amm *a = self;
    double f[SNAP_N_F];
    sp_time cum_t;
    sp_snap_get_array_n(r, 5);
    sp_snap_get_f64s(r, f, SNAP_N_F);
    if (sp_snap_get_i64(r, &cum_t)) return sp_snap_error(r);
    double res[2] = { f[SNAP_F_R0], f[SNAP_F_R1] };
    if (!pos_finite(res[0]) || !pos_finite(res[1]) || !pos_finite(f[SNAP_F_LP]) ||
        !pos_finite(f[SNAP_F_PRICE]))
        return sp_snap_fail(r, "reserves %g/%g, LP supply %g, price %g: not positive and finite",
                            res[0], res[1], f[SNAP_F_LP], f[SNAP_F_PRICE]);
    for (int k = 0; k < 2; k++) {
        double b = sp_balance(a->sim, a->id, a->tok[k]);
        if (!(fabs(b - res[k]) <= 1e-12 * (res[k] > 1.0 ? res[k] : 1.0)))
            return sp_snap_fail(r, "reserve %d is %.17g but the venue's ledger balance is %.17g",
                                k, res[k], b);
    }
    if (cum_t < 0 || cum_t > sp_sim_now(a->sim))
        return sp_snap_fail(r, "cumulative time %lld outside [0, now]", (long long)cum_t);
    a->mech->load(a, res, f[SNAP_F_LP]);
    a->price = f[SNAP_F_PRICE];
    a->cum = f[SNAP_F_CUM];
    a->cum_t = cum_t;
    a->peak = f[SNAP_F_PEAK];
    a->max_drawdown = f[SNAP_F_MDD];
    a->min_price = f[SNAP_F_MIN];
    a->volume = f[SNAP_F_VOLUME];
    if (restore_holders(a, r) || restore_tag(a, r)) return sp_snap_error(r);
    return sp_snap_get_end(r);
}

/* ---- market ops ------------------------------------------------------------ */

double sp_amm_venue_price(const void *self)
{
    const struct amm *a = self;
    return a->price;
}

void sp_amm_venue_pair(const void *self, sp_token *base, sp_token *quote)
{
    const struct amm *a = self;
    if (base) *base = a->tok[0];
    if (quote) *quote = a->tok[1];
}

static int side_ok(enum sp_side s) { return s == SP_BUY || s == SP_SELL; }

int sp_amm_venue_quote(const void *self, enum sp_side side, double amount_in, double *amount_out)
{
    const struct amm *a = self;
    if (!side_ok(side) || !amount_out) return SP_EINVAL;
    struct amm t = *a;
    return a->mech->swap(&t, side == SP_BUY ? 1 : 0, amount_in, amount_out);
}

int sp_amm_venue_swap(void *self, struct sp_sim *sim, const struct sp_swap *req,
                      struct sp_swap_result *res)
{
    struct amm *a = self;
    if (!req || !res || !side_ok(req->side) || !agent_ok(a, req->agent) ||
        !(req->amount_in > 0.0 && req->amount_in < INFINITY))
        return SP_EINVAL;
    int in = req->side == SP_BUY ? 1 : 0, out_c = 1 - in;
    if (!(sp_balance(sim, req->agent, a->tok[in]) >= req->amount_in)) return SP_ERANGE;
    struct amm t = *a;
    double out;
    int rc = a->mech->swap(&t, in, req->amount_in, &out);
    if (rc) return rc;
    if (!(out >= req->min_out)) return SP_ERANGE;

    accrue(a);
    if ((rc = sp_transfer(sim, a->tok[in], req->agent, a->id, req->amount_in))) return rc;
    a->pool = t.pool;
    if ((rc = sp_transfer(sim, a->tok[out_c], a->id, req->agent, out))) return rc;
    double before = a->price;
    track_price(a);
    a->volume += in == 1 ? req->amount_in : out;
    check_sync(a);
    if (lp_token(a) >= 0) sp_token_values_changed(sim);

    struct sp_trade tr = {
        .venue = a->id, .agent = req->agent, .cause = req->cause, .side = req->side,
        .generation = req->generation, .amount_in = req->amount_in, .amount_out = out,
        .price_before = before, .price_after = a->price, .propagates = req->propagates,
    };
    sp_trade_record(sim, &tr);
    if (a->cfg->record_every_trade) record_row(a, sp_sim_now(sim));
    res->amount_in = req->amount_in;
    res->amount_out = out;
    res->price_before = before;
    res->price_after = a->price;
    return SP_OK;
}

struct sp_venue_tag *sp_amm_venue_tag(void *self)
{
    struct amm *a = self;
    return &a->tag;
}

double sp_amm_venue_cumulative(const void *self, sp_time now)
{
    const struct amm *a = self;
    return a->cum + a->price * sp_time_sec(now - a->cum_t);
}

/* ---- market/amm.h ---------------------------------------------------------- */

int sp_amm_is(const struct sp_sim *sim, sp_id venue)
{
    return venue_of(sim, venue) != NULL;
}

int sp_amm_reserves(const struct sp_sim *sim, sp_id venue, double *r_base, double *r_quote)
{
    struct amm *a = venue_of(sim, venue);
    if (!a) return SP_EINVAL;
    double r[2];
    a->mech->reserves(a, r);
    if (r_base) *r_base = r[0];
    if (r_quote) *r_quote = r[1];
    return SP_OK;
}

double sp_amm_fee(const struct sp_sim *sim, sp_id venue)
{
    struct amm *a = venue_of(sim, venue);
    return a ? a->cfg->fee : NAN;
}

/* The CPMM's closed form already leaves the pool inside the fee band (see
 * cpmm.c).  The StableSwap optimum does not: the fee it leaves in the pool
 * (in the output coin) pulls the price back, leaving a residual gap of
 * order fee·dx.  So for StableSwap we iterate: size the arbitrage on the
 * pool *after* a single swap of the running total and add it, until the
 * addition is below 1e-12 of the total (each round shrinks it by about the
 * fee; AMM_ARB_ROUNDS is a safety cap).  The result is one swap after which
 * the pool sits on the edge of the band: no arbitrage is left for a second
 * trade, at a cost to the arbitrageur of second order in the fee compared
 * with the single-trade optimum. */
int sp_amm_arb_size(const struct sp_sim *sim, sp_id venue, double P, enum sp_side *side,
                    double *amount_in)
{
    struct amm *a = venue_of(sim, venue);
    if (!a || !side || !amount_in) return SP_EINVAL;
    int in;
    double total;
    int rc = a->mech->arb(a, P, &in, &total);
    if (rc) return rc;
    *side = SP_SELL;
    *amount_in = 0.0;
    if (total <= 0.0) return SP_OK;
    if (sp_sim_entity_ops(sim, venue) == &sp_market_stableswap_ops.base) {
        for (int round = 0; round < AMM_ARB_ROUNDS; round++) {
            struct amm t = *a;
            double out, more;
            int in2;
            if ((rc = a->mech->swap(&t, in, total, &out))) return rc;
            if ((rc = a->mech->arb(&t, P, &in2, &more))) return rc;
            if (more <= 0.0 || in2 != in) break;
            total += more;
            if (more <= 1e-12 * total) break;
        }
    }
    *side = in == 1 ? SP_BUY : SP_SELL;
    *amount_in = total;
    return SP_OK;
}

int sp_amm_add_liquidity(struct sp_sim *sim, sp_id venue, sp_id agent, double max_base,
                         double max_quote, double *shares)
{
    struct amm *a = venue_of(sim, venue);
    if (!a || !agent_ok(a, agent) || !(max_base > 0.0) || !(max_quote > 0.0)) return SP_EINVAL;
    double have0 = sp_balance(sim, agent, a->tok[0]), have1 = sp_balance(sim, agent, a->tok[1]);
    if (max_base > have0) max_base = have0;            /* at most what the agent holds */
    if (max_quote > have1) max_quote = have1;
    if (!(max_base > 0.0 && max_quote > 0.0)) return SP_ERANGE;
    struct amm t = *a;
    double used[2], minted;
    int rc = a->mech->add(&t, max_base, max_quote, used, &minted);
    if (rc) return rc;
    sp_token lp = lp_token(a);
    if (lp < 0 && (rc = holder_credit(a, agent, 0.0))) return rc;  /* allocate before moving */
    accrue(a);
    if ((rc = sp_transfer(sim, a->tok[0], agent, a->id, used[0]))) return rc;
    if ((rc = sp_transfer(sim, a->tok[1], agent, a->id, used[1]))) return rc;
    a->pool = t.pool;
    if (lp >= 0) {
        if ((rc = sp_mint(sim, lp, agent, minted))) return rc;
        sp_token_values_changed(sim);
    } else {
        holder_find(a, agent)->shares += minted;
    }
    track_price(a);
    check_sync(a);
    if (shares) *shares = minted;
    return SP_OK;
}

int sp_amm_remove_liquidity(struct sp_sim *sim, sp_id venue, sp_id agent, double shares,
                            double *out_base, double *out_quote)
{
    struct amm *a = venue_of(sim, venue);
    if (!a || !agent_ok(a, agent) || !(shares > 0.0 && shares < INFINITY)) return SP_EINVAL;
    sp_token lp = lp_token(a);
    struct amm_holder *h = lp < 0 ? holder_find(a, agent) : NULL;
    if (lp >= 0 ? shares > sp_balance(sim, agent, lp) : (!h || shares > h->shares))
        return SP_ERANGE;
    struct amm t = *a;
    double out[2];
    int rc = a->mech->remove(&t, shares, out);
    if (rc) return rc;
    if (lp >= 0 && (rc = sp_burn(sim, lp, agent, shares))) return rc;
    accrue(a);
    a->pool = t.pool;
    if ((rc = sp_transfer(sim, a->tok[0], a->id, agent, out[0]))) return rc;
    if ((rc = sp_transfer(sim, a->tok[1], a->id, agent, out[1]))) return rc;
    if (h) h->shares -= shares;
    else sp_token_values_changed(sim);
    track_price(a);
    check_sync(a);
    if (out_base) *out_base = out[0];
    if (out_quote) *out_quote = out[1];
    return SP_OK;
}

double sp_amm_lp_shares(const struct sp_sim *sim, sp_id venue, sp_id holder)
{
    struct amm *a = venue_of(sim, venue);
    if (!a) return NAN;
    sp_token lp = lp_token(a);
    if (lp >= 0) return sp_balance(sim, holder, lp);
    const struct amm_holder *h = holder_find(a, holder);
    return h ? h->shares : 0.0;
}

double sp_amm_lp_supply(const struct sp_sim *sim, sp_id venue)
{
    struct amm *a = venue_of(sim, venue);
    return a ? a->mech->lp_supply(a) : NAN;
}
