/*
 * amm_cpmm.c — the "cpmm" market type: a Uniswap v2 constant-product pool
 * (market/cpmm.h) as a venue of the simulation.
 *
 * Pool token 0 is the pair's base, token 1 its quote; price = r1/r0, quote
 * per base.  The venue entity holds both reserves in the ledger (minted at
 * init) and the initial LP shares sqrt(r0·r1).  This file is the schema and
 * the mechanics table; the venue machinery (ledger moves, trades, price
 * cumulative, LP holders, sampling, /summary, snapshot) is market/amm.c,
 * shared with "stableswap" (invariants in amm-internal.h).
 *
 * The registry declares `sp_market_cpmm_ops` as a `struct sp_module_ops`;
 * here it is defined as the full `struct sp_market_ops`, whose first member
 * is that struct: the registry reads the embedded base and
 * sp_market_ops_of() casts back to the whole table (same address).  An
 * alias (`__attribute__((alias))` of a `struct sp_module_ops` name onto the
 * full table) was tried first and breaks AddressSanitizer: ASan registers
 * the alias as a 120-byte global and poisons the rest of the table as its
 * redzone, so every read of `swap` etc. is reported as an overflow.
 */
#include <stddef.h>
#include "spiral/error.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "amm-internal.h"

static int cpmm_init_pool(struct amm *a, const struct amm_cfg *c)
{
    return sp_cpmm_init(&a->pool.cpmm, c->reserve_base, c->reserve_quote, c->fee);
}

static int cpmm_price(const struct amm *a, double *price)
{
    return sp_cpmm_price(&a->pool.cpmm, price);
}

static int cpmm_swap(struct amm *a, int in, double amount_in, double *amount_out)
{
    return sp_cpmm_swap_in(&a->pool.cpmm, in ? SP_CPMM_1TO0 : SP_CPMM_0TO1, amount_in, amount_out);
}

static void cpmm_reserves(const struct amm *a, double r[2])
{
    r[0] = a->pool.cpmm.r0;
    r[1] = a->pool.cpmm.r1;
}

static double cpmm_lp_supply(const struct amm *a) { return a->pool.cpmm.lp_supply; }

static int cpmm_add(struct amm *a, double max0, double max1, double used[2], double *minted)
{
    return sp_cpmm_add_liquidity(&a->pool.cpmm, max0, max1, &used[0], &used[1], minted);
}

static int cpmm_remove(struct amm *a, double shares, double out[2])
{
    return sp_cpmm_remove_liquidity(&a->pool.cpmm, shares, &out[0], &out[1]);
}

static int cpmm_arb(const struct amm *a, double P, int *in, double *amount_in)
{
    enum sp_cpmm_dir dir;
    int rc = sp_cpmm_arb_size(&a->pool.cpmm, P, &dir, amount_in);
    if (rc) return rc;
    *in = dir == SP_CPMM_1TO0;
    return SP_OK;
}

static void cpmm_load(struct amm *a, const double r[2], double lp_supply)
{
    a->pool.cpmm.r0 = r[0];
    a->pool.cpmm.r1 = r[1];
    a->pool.cpmm.lp_supply = lp_supply;
}

static const struct amm_mech cpmm_mech = {
    .init = cpmm_init_pool, .price = cpmm_price, .swap = cpmm_swap,
    .reserves = cpmm_reserves, .lp_supply = cpmm_lp_supply, .add = cpmm_add,
    .remove = cpmm_remove, .arb = cpmm_arb, .load = cpmm_load,
};

/* ---- schema --------------------------------------------------------------- */

static const struct sp_field cpmm_fields[] = {
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
      "Initial reserve of the quote token; the initial price is reserve_quote / reserve_base.",
      offsetof(struct amm_cfg, reserve_quote), NULL, 0 },
    { "fee", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0.3%", "fraction",
      "Fee on the input amount; it stays in the pool (Uniswap v2: 0.3%).",
      offsetof(struct amm_cfg, fee), NULL, 0 },
    { "sample_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "Recording cadence of /markets/<name>; default output.sample_every.",
      offsetof(struct amm_cfg, sample_every), NULL, 0 },
    { "record_every_trade", SP_T_BOOL, 0, 0, 0, "false", NULL,
      "Also write a /markets/<name> row after every trade.",
      offsetof(struct amm_cfg, record_every_trade), NULL, 0 },
};

static int cpmm_check(void *bound, const struct sp_check_ctx *ctx)
{
    return sp_amm_check_pair(ctx, bound);
}

static const struct sp_schema cpmm_schema = {
    "markets[type: cpmm]",
    "Uniswap v2 constant-product pool (x·y = k, fee on input kept in the pool) for one pair; "
    "price = quote reserve / base reserve.",
    cpmm_fields, sizeof cpmm_fields / sizeof cpmm_fields[0], sizeof(struct amm_cfg), cpmm_check
};

/* ---- ops ------------------------------------------------------------------ */

static int cpmm_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    return sp_amm_venue_init(self, &cpmm_mech, sim, id, cfg);
}

const struct sp_market_ops sp_market_cpmm_ops = {
    .base = {
        .kind = "market", .type = "cpmm",
        .summary = "Uniswap v2 constant-product AMM",
        .schema = &cpmm_schema, .state_size = sizeof(struct amm),
        .init = cpmm_init, .start = sp_amm_venue_start, .on_event = sp_amm_venue_on_event,
        .finish = sp_amm_venue_finish, .price = sp_amm_venue_price,
        .release = sp_amm_venue_release,
        .snapshot = sp_amm_venue_snapshot, .restore = sp_amm_venue_restore,
    },
    .pair = sp_amm_venue_pair, .price = sp_amm_venue_price, .quote = sp_amm_venue_quote,
    .swap = sp_amm_venue_swap, .cumulative = sp_amm_venue_cumulative,
    .tag = sp_amm_venue_tag,
};
