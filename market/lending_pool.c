/*
 * lending_pool.c — the "pool" protocol type (Aave/Compound-like): its
 * scenario keys, their checks, and how they become the common lending state
 * (lending-internal.h).  Everything a pool does at run time is lending.c.
 *
 * Each `assets:` item is one token with its oracle and risk parameters; it
 * may be collateral (ltv, liquidation_threshold, liquidation_bonus,
 * haircut, supply_cap), borrowable (a receipt token, borrow_cap, the kinked
 * rate model, reserve_factor), or both.  `initial_supply` seeds the market
 * with passive suppliers: that much of the asset is minted to the pool as
 * cash and the receipts are held by the pool entity itself (they take
 * their share of any socialised loss like any supplier).  `reserve` seeds
 * the protocol reserve (minted as cash, not as receipts): the first buffer
 * against bad debt.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending-internal.h"

/* ---- shared with lending_cdp.c ------------------------------------------------- */

int lend_check_oracle(const struct sp_check_ctx *ctx, const char *key)
{
    const struct sp_world_cfg *w = ctx->root;
    return sp_world_check_entity(ctx, key, w->oracles, w->n_oracles, "oracle", NULL);
}

static const char *item_name(const struct sp_check_ctx *ctx, const char *type, char *buf,
                             size_t n)
{
    (void)ctx;
    snprintf(buf, n, "protocol_%s", type);
    return buf;
}

/* ---- schema ----------------------------------------------------------------------- */

static const struct sp_field pool_asset_fields[] = {
    { "token", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The asset (a token).",
      offsetof(struct lend_asset_cfg, token), NULL, 0 },
    { "oracle", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The oracle the protocol prices it with (an `oracles` entry; for a receipt token or a "
      "vault share of another protocol, an oracle with source `value`).",
      offsetof(struct lend_asset_cfg, oracle), NULL, 0 },
    { "quoted_in", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "When `oracle` prices the asset in another token (stETH/ETH), the oracle of that token "
      "in the numeraire (ETH/USD); the price used is their product.",
      offsetof(struct lend_asset_cfg, quoted_in), NULL, 0 },
    { "collateral", SP_T_BOOL, 0, 0, 0, "true", NULL, "Whether positions may post it.",
      offsetof(struct lend_asset_cfg, collateral), NULL, 0 },
    { "borrowable", SP_T_BOOL, 0, 0, 0, "false", NULL,
      "Whether it can be supplied and borrowed (needs `receipt`).",
      offsetof(struct lend_asset_cfg, borrowable), NULL, 0 },
    { "receipt", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Borrowable: the receipt token suppliers get (a token of kind receipt whose issuer is "
      "this protocol and whose underlying is `token`).",
      offsetof(struct lend_asset_cfg, receipt), NULL, 0 },
    { "ltv", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "75%", "fraction",
      "Maximum loan to value: borrowing power per unit of collateral value.",
      offsetof(struct lend_asset_cfg, ltv), NULL, 0 },
    { "liquidation_threshold", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "80%", "fraction",
      "LT in the health factor; at least `ltv`.",
      offsetof(struct lend_asset_cfg, lt), NULL, 0 },
    { "liquidation_bonus", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "5%", "fraction",
      "Extra collateral a liquidator receives (Aave's bonus − 1); LT·(1 + bonus) must stay "
      "below 1.",
      offsetof(struct lend_asset_cfg, bonus), NULL, 0 },
    { "haircut", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0", "fraction",
      "Volatility haircut: the collateral counts at price·(1 − haircut).",
      offsetof(struct lend_asset_cfg, haircut), NULL, 0 },
    { "supply_cap", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "token",
      "Most collateral all positions may post together; 0 = no cap.",
      offsetof(struct lend_asset_cfg, supply_cap), NULL, 0 },
    { "borrow_cap", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "token",
      "Most debt of this asset in total; 0 = no cap.",
      offsetof(struct lend_asset_cfg, borrow_cap), NULL, 0 },
    { "reserve_factor", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "10%", "fraction",
      "Share of the interest kept as protocol reserve.",
      offsetof(struct lend_asset_cfg, reserve_factor), NULL, 0 },
    { "base_rate", SP_T_FRACTION, SP_F_MIN, 0, 0, "0", "per year",
      "Borrow APR at zero utilization.", offsetof(struct lend_asset_cfg, base_rate), NULL, 0 },
    { "slope1", SP_T_FRACTION, SP_F_MIN, 0, 0, "4%", "per year",
      "APR added from zero to optimal utilization.",
      offsetof(struct lend_asset_cfg, slope1), NULL, 0 },
    { "slope2", SP_T_FRACTION, SP_F_MIN, 0, 0, "75%", "per year",
      "APR added from optimal to full utilization (the kink).",
      offsetof(struct lend_asset_cfg, slope2), NULL, 0 },
    { "optimal_utilization", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX_EXCL, 0, 1, "80%",
      "fraction", "Where the rate curve kinks.",
      offsetof(struct lend_asset_cfg, optimal), NULL, 0 },
    { "initial_supply", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "token",
      "Borrowable: liquidity supplied at t = 0 by passive suppliers (receipts held by the "
      "protocol entity).", offsetof(struct lend_asset_cfg, initial_supply), NULL, 0 },
    { "reserve", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "token",
      "Borrowable: protocol reserve at t = 0 (absorbs bad debt before suppliers do).",
      offsetof(struct lend_asset_cfg, reserve), NULL, 0 },
};

static int pool_asset_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct lend_asset_cfg *a = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = SP_OK;
    if (sp_world_check_token(ctx, "token", -1)) rc = SP_ECONFIG;
    if (lend_check_oracle(ctx, "oracle")) rc = SP_ECONFIG;
    if (a->quoted_in && lend_check_oracle(ctx, "quoted_in")) rc = SP_ECONFIG;
    if (a->collateral && a->ltv > a->lt) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "ltv"),
                      "ltv %g is above liquidation_threshold %g: a position could borrow "
                      "straight into liquidation", a->ltv, a->lt);
        rc = SP_ECONFIG;
    }
    if (a->collateral && a->lt * (1 + a->bonus) >= 1) {
        const struct sp_node *at = sp_node_get(ctx->node, "liquidation_bonus");
        sp_diag_error(ctx->diag, at ? at : sp_node_get(ctx->node, "liquidation_threshold"),
                      "liquidation_threshold x (1 + liquidation_bonus) = %g must be below 1 "
                      "(Aave's rule: a liquidation at HF just below 1 must be able to pay "
                      "the bonus)", a->lt * (1 + a->bonus));
        rc = SP_ECONFIG;
    }
    if (!a->collateral && !a->borrowable) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "token"),
                      "asset '%s' is neither collateral nor borrowable", a->token);
        rc = SP_ECONFIG;
    }
    if (a->borrowable && !a->receipt) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "borrowable"),
                      "a borrowable asset needs `receipt`: the token suppliers receive");
        rc = SP_ECONFIG;
    }
    if (!a->borrowable && (a->initial_supply > 0 || a->reserve > 0 || a->receipt)) {
        const char *k = a->receipt ? "receipt" : a->initial_supply > 0 ? "initial_supply" : "reserve";
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, k),
                      "`%s` needs `borrowable: true`", k);
        rc = SP_ECONFIG;
    }
    if (a->receipt && !sp_world_check_token(ctx, "receipt", SP_TOKEN_RECEIPT)) {
        for (size_t i = 0; i < w->n_tokens; i++) {
            const struct sp_token_cfg *t = &w->tokens[i];
            if (strcmp(t->name, a->receipt)) continue;
            if (t->underlying && a->token && strcmp(t->underlying, a->token)) {
                sp_diag_error(ctx->diag, sp_node_get(ctx->node, "receipt"),
                              "receipt token '%s' has underlying '%s', not '%s'", t->name,
                              t->underlying, a->token);
                rc = SP_ECONFIG;
            }
        }
    } else if (a->receipt) {
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_schema pool_asset_schema = {
    "protocols[type: pool].assets[]",
    "One asset of a pool: its oracle and its risk parameters as collateral and/or as a "
    "borrowable asset.",
    pool_asset_fields, sizeof pool_asset_fields / sizeof pool_asset_fields[0],
    sizeof(struct lend_asset_cfg), pool_asset_check
};

#define LEND_COMMON_FIELDS                                                                   \
    { "accrue_every", SP_T_DURATION, SP_F_MIN, 0, 0, "1h", "time",                          \
      "Interest is accrued at every oracle delivery and action, and at least this often; "  \
      "0 = only then.", offsetof(struct lend_cfg, accrue_every), NULL, 0 },                  \
    { "sample_every", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",                          \
      "Sampling of /protocols/<name>; 0 = output.sample_every.",                            \
      offsetof(struct lend_cfg, sample_every), NULL, 0 },                                     \
    { "positions_every", SP_T_DURATION, SP_F_MIN, 0, 0, "1h", "time",                       \
      "Cadence of position snapshots in /positions (one row per position); 0 = none.",      \
      offsetof(struct lend_cfg, positions_every), NULL, 0 }

static const struct sp_field pool_fields[] = {
    { "assets", SP_T_LIST, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The listed assets (at most 64 collateral assets).",
      offsetof(struct lend_cfg, assets), &pool_asset_schema,
      offsetof(struct lend_cfg, n_assets) },
    { "liquidation", SP_T_MAP, 0, 0, 0, NULL, NULL,
      "How its positions are liquidated (default: fixed_spread, Aave v3).",
      offsetof(struct lend_cfg, liq), &lend_liq_schema, 0 },
    LEND_COMMON_FIELDS,
};

static int pool_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct lend_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = SP_OK;
    const struct sp_node *list = sp_node_get(ctx->node, "assets");
    size_t ncoll = 0;
    char buf[128];
    const struct sp_node *nm = sp_node_get(ctx->node, "name");
    const char *self = nm && nm->value ? nm->value : item_name(ctx, "pool", buf, sizeof buf);
    for (size_t i = 0; i < c->n_assets; i++) {
        const struct lend_asset_cfg *a = &c->assets[i];
        ncoll += a->collateral;
        for (size_t k = 0; k < i; k++)
            if (a->token && c->assets[k].token && !strcmp(a->token, c->assets[k].token)) {
                sp_diag_error(ctx->diag, sp_node_get(sp_node_at(list, i), "token"),
                              "asset '%s' is listed twice", a->token);
                rc = SP_ECONFIG;
            }
        if (!a->receipt) continue;
        for (size_t t = 0; t < w->n_tokens; t++)
            if (!strcmp(w->tokens[t].name, a->receipt) && w->tokens[t].issuer &&
                strcmp(w->tokens[t].issuer, self)) {
                sp_diag_error(ctx->diag, sp_node_get(sp_node_at(list, i), "receipt"),
                              "receipt token '%s' is issued by '%s', not by this protocol "
                              "('%s')", a->receipt, w->tokens[t].issuer, self);
                rc = SP_ECONFIG;
            }
    }
    if (ncoll > 64) {
        sp_diag_error(ctx->diag, list, "at most 64 collateral assets (%zu given)", ncoll);
        rc = SP_ECONFIG;
    }
    if (liq_check(bound, ctx, LEND_POOL)) rc = SP_ECONFIG;
    return rc;
}

static const struct sp_schema pool_schema = {
    "protocols[type: pool]",
    "A pool lending protocol (Aave/Compound-like): suppliers get receipt tokens, borrowers "
    "post several collaterals; kinked utilization interest; liquidatable when HF < 1.",
    pool_fields, sizeof pool_fields / sizeof pool_fields[0], sizeof(struct lend_cfg), pool_check
};

/* ---- init ------------------------------------------------------------------------ */

static sp_id entity(struct sp_sim *sim, const char *name)
{
    return name ? sp_sim_find(sim, name) : SP_ID_NONE;
}

static int pool_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct lending *L = self;
    const struct lend_cfg *c = cfg;
    L->cfg = c;
    L->kind = LEND_POOL;
    L->sim = sim;
    L->id = id;
    L->stable = -1;
    size_t na = 0, nd = 0;
    for (size_t i = 0; i < c->n_assets; i++) {
        na += c->assets[i].collateral;
        nd += c->assets[i].borrowable;
    }
    L->coll = calloc(na ? na : 1, sizeof *L->coll);
    L->debt = calloc(nd ? nd : 1, sizeof *L->debt);
    if (!L->coll || !L->debt) return SP_ENOMEM;
    for (size_t i = 0; i < c->n_assets; i++) {
        const struct lend_asset_cfg *a = &c->assets[i];
        sp_token tok = sp_token_find(sim, a->token);
        if (a->collateral) {
            struct lend_coll *k = &L->coll[L->na++];
            k->token = tok;
            k->oracle = entity(sim, a->oracle);
            k->quoted_in = entity(sim, a->quoted_in);
            k->ltv = a->ltv; k->lt = a->lt; k->bonus = a->bonus; k->haircut = a->haircut;
            k->cap = a->supply_cap;
            k->cfg_index = (int)i;
        }
        if (a->borrowable) {
            struct lend_debt *d = &L->debt[L->nd++];
            d->token = tok;
            d->receipt = sp_token_find(sim, a->receipt);
            d->oracle = entity(sim, a->oracle);
            d->quoted_in = entity(sim, a->quoted_in);
            d->reserve_factor = a->reserve_factor;
            d->base_rate = a->base_rate; d->slope1 = a->slope1; d->slope2 = a->slope2;
            d->optimal = a->optimal;
            d->cap = a->borrow_cap;
            d->coll = a->collateral ? (int)L->na - 1 : -1;
            d->cfg_index = (int)i;
        }
    }
    int rc = lend_init_common(L);
    if (rc) return rc;
    /* Seed liquidity and reserves (lend_init_common has set the indexes). */
    for (size_t j = 0; j < L->nd; j++) {
        struct lend_debt *d = &L->debt[j];
        const struct lend_asset_cfg *a = &c->assets[d->cfg_index];
        if (a->initial_supply > 0) {
            if ((rc = sp_mint(sim, d->token, id, a->initial_supply)) ||
                (rc = sp_mint(sim, d->receipt, id, a->initial_supply)))
                return rc;
            d->cash += a->initial_supply;
        }
        if (a->reserve > 0) {
            if ((rc = sp_mint(sim, d->token, id, a->reserve))) return rc;
            d->cash += a->reserve;
            d->reserve += a->reserve;
        }
    }
    return liq_init(L);
}

const struct sp_module_ops sp_protocol_pool_ops = {
    .kind = "protocol", .type = "pool",
    .summary = "pool lending (Aave/Compound-like): receipt tokens, multi-collateral "
               "borrowing, kinked interest, health factor",
    .schema = &pool_schema, .state_size = sizeof(struct lending),
    .init = pool_init, .start = lend_start, .on_event = lend_on_event,
    .finish = lend_finish, .release = lend_release,
    .snapshot = lend_snapshot, .restore = lend_restore,
};
