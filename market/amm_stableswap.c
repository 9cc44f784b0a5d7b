/*
 * amm_stableswap.c — the "stableswap" market type: a two-coin Curve
 * StableSwap pool (market/stableswap.h) as a venue of the simulation.
 *
 * Coin 0 is the pair's base, coin 1 its quote.  price is the marginal price
 * from sp_stableswap_price: −dx1/dx0 on the invariant, i.e. quote per base
 * (> 1 when the pool is short of base), fee excluded.  The venue entity
 * holds both balances in the ledger (minted at init) and the initial LP
 * shares (D).  Deposits through sp_amm_add_liquidity are at the pool's
 * ratio, so the missing imbalance fee of stableswap.c never matters here.
 * This file is the schema and the mechanics table; the venue machinery
 * (snapshot included) is market/amm.c (invariants in amm-internal.h).
 * `sp_market_stableswap_ops` is defined as the full `struct sp_market_ops`
 * table, as in amm_cpmm.c.
 */
#include <stddef.h>
#include "spiral/error.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "amm-internal.h"

static int ss_init_pool(struct amm *a, const struct amm_cfg *c)
{
    return sp_stableswap_init(&a->pool.ss, c->reserve_base, c->reserve_quote, c->amp, c->fee);
}

static int ss_price(const struct amm *a, double *price)
{
    return sp_stableswap_price(&a->pool.ss, price);
}

static int ss_swap(struct amm *a, int in, double amount_in, double *amount_out)
{
    return sp_stableswap_swap(&a->pool.ss, in, amount_in, amount_out);
}

static void ss_reserves(const struct amm *a, double r[2])
{
    r[0] = a->pool.ss.bal[0];
    r[1] = a->pool.ss.bal[1];
}

static double ss_lp_supply(const struct amm *a) { return a->pool.ss.lp_supply; }

/* At the pool's ratio: the binding side is used exactly. */
static int ss_add(struct amm *a, double max0, double max1, double used[2], double *minted)
{
    const struct sp_stableswap *p = &a->pool.ss;
    double f0 = max0 / p->bal[0], f1 = max1 / p->bal[1];
    if (f0 <= f1) { used[0] = max0; used[1] = p->bal[1] * f0; }
    else          { used[1] = max1; used[0] = p->bal[0] * f1; }
    return sp_stableswap_add_liquidity(&a->pool.ss, used[0], used[1], minted);
}

static int ss_remove(struct amm *a, double shares, double out[2])
{
    return sp_stableswap_remove_liquidity(&a->pool.ss, shares, &out[0], &out[1]);
}

static int ss_arb(const struct amm *a, double P, int *in, double *amount_in)
{
    return sp_stableswap_arb_size(&a->pool.ss, P, in, amount_in);
}

static void ss_load(struct amm *a, const double r[2], double lp_supply)
{
    a->pool.ss.bal[0] = r[0];
    a->pool.ss.bal[1] = r[1];
    a->pool.ss.lp_supply = lp_supply;
}

static const struct amm_mech ss_mech = {
    .init = ss_init_pool, .price = ss_price, .swap = ss_swap,
    .reserves = ss_reserves, .lp_supply = ss_lp_supply, .add = ss_add,
    .remove = ss_remove, .arb = ss_arb, .load = ss_load,
};

/* ---- schema --------------------------------------------------------------- */

static const struct sp_field ss_fields[] = {
    { "name", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "Entity name; output group /markets/<name>.", offsetof(struct amm_cfg, name), NULL, 0 },
    { "base", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The token priced (pool token 0), a `tokens` entry.", offsetof(struct amm_cfg, base),
      NULL, 0 },
    { "quote", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The token it is priced in (pool token 1), a `tokens` entry other than base.",
      offsetof(struct amm_cfg, quote), NULL, 0 },
    { "reserve_base", SP_T_NUMBER, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "base token",
      "Initial reserve of the base token, minted to the venue.",
      offsetof(struct amm_cfg, reserve_base), NULL, 0 },
    { "reserve_quote", SP_T_NUMBER, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "quote token",
      "Initial reserve of the quote token.",
      offsetof(struct amm_cfg, reserve_quote), NULL, 0 },
    { "fee", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0.04%", "fraction",
      "Fee taken from the output; it stays in the pool (Curve stETH pool: 0.04%).",
      offsetof(struct amm_cfg, fee), NULL, 0 },
    { "amp", SP_T_NUMBER, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, NULL,
      "Amplification A as in the Curve contracts (Ann = A·n); larger is flatter near balance.",
      offsetof(struct amm_cfg, amp), NULL, 0 },
    { "sample_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "Recording cadence of /markets/<name>; default output.sample_every.",
      offsetof(struct amm_cfg, sample_every), NULL, 0 },
    { "record_every_trade", SP_T_BOOL, 0, 0, 0, "false", NULL,
      "Also write a /markets/<name> row after every trade.",
      offsetof(struct amm_cfg, record_every_trade), NULL, 0 },
};

static int ss_check(void *bound, const struct sp_check_ctx *ctx)
{
    return sp_amm_check_pair(ctx, bound);
}

static const struct sp_schema ss_schema = {
    "markets[type: stableswap]",
    "Curve StableSwap pool (n = 2, amplification A, fee on output kept in the pool) for one "
    "pair; price = marginal price on the invariant, quote per base.",
    ss_fields, sizeof ss_fields / sizeof ss_fields[0], sizeof(struct amm_cfg), ss_check
};

/* ---- ops ------------------------------------------------------------------ */

static int ss_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    return sp_amm_venue_init(self, &ss_mech, sim, id, cfg);
}

const struct sp_market_ops sp_market_stableswap_ops = {
    .base = {
        .kind = "market", .type = "stableswap",
        .summary = "Curve StableSwap AMM (two coins)",
        .schema = &ss_schema, .state_size = sizeof(struct amm),
        .init = ss_init, .start = sp_amm_venue_start, .on_event = sp_amm_venue_on_event,
        .finish = sp_amm_venue_finish, .price = sp_amm_venue_price,
        .release = sp_amm_venue_release,
        .snapshot = sp_amm_venue_snapshot, .restore = sp_amm_venue_restore,
    },
    .pair = sp_amm_venue_pair, .price = sp_amm_venue_price, .quote = sp_amm_venue_quote,
    .swap = sp_amm_venue_swap, .cumulative = sp_amm_venue_cumulative,
    .tag = sp_amm_venue_tag,
};
