/*
 * lending_cdp.c — the "cdp" protocol type (Maker-like vaults): its scenario
 * keys, their checks, and how they become the common lending state
 * (lending-internal.h).  Everything a cdp does at run time is lending.c.
 *
 * Maker's vocabulary, for readers of dss: each `collaterals:` item is an
 * ilk — a collateral token with its liquidation ratio `mat` (a vault is
 * safe while ink·price ≥ art·rate·mat, so LT = LTV = 1/mat here), penalty
 * `chop` (liquidation_penalty = chop − 1), debt ceiling `line`, stability
 * fee `duty` (an APR, compounded continuously here) and `dust` (the least
 * debt a vault may have, unless it has none).  A position is one vault: it
 * holds one ilk (a second collateral token is refused).  The debt is the
 * one `stablecoin`, minted on borrow (Maker's `frob` drawing DAI) and
 * burned on repay; the global ceiling is `line` (Maker's Line).  Stability
 * fees go to the surplus buffer (`surplus` at t = 0, Maker's vow), which
 * absorbs bad debt first; the rest is the system's deficit (bad debt).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending-internal.h"

static const struct sp_field cdp_coll_fields[] = {
    { "token", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The collateral token (an ilk).",
      offsetof(struct lend_asset_cfg, token), NULL, 0 },
    { "oracle", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The oracle it is priced with (Maker: an OSM).",
      offsetof(struct lend_asset_cfg, oracle), NULL, 0 },
    { "quoted_in", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "When `oracle` prices it in another token, that token's oracle in the numeraire.",
      offsetof(struct lend_asset_cfg, quoted_in), NULL, 0 },
    { "liquidation_ratio", SP_T_NUMBER, SP_F_MIN, 1, 0, "1.5", "ratio",
      "Maker's mat: a vault is liquidatable when collateral value < debt x mat.",
      offsetof(struct lend_asset_cfg, mat), NULL, 0 },
    { "liquidation_penalty", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "13%", "fraction",
      "Maker's chop − 1: added to the debt to cover at liquidation.",
      offsetof(struct lend_asset_cfg, chop), NULL, 0 },
    { "debt_ceiling", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "stablecoin",
      "Maker's ilk line: most debt against this collateral; 0 = none.",
      offsetof(struct lend_asset_cfg, line), NULL, 0 },
    { "stability_fee", SP_T_FRACTION, SP_F_MIN, 0, 0, "2%", "per year",
      "Maker's duty as an APR (compounded continuously).",
      offsetof(struct lend_asset_cfg, fee), NULL, 0 },
    { "dust", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "stablecoin",
      "Least debt a vault may carry unless it carries none.",
      offsetof(struct lend_asset_cfg, dust), NULL, 0 },
    { "haircut", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0", "fraction",
      "Volatility haircut: the collateral counts at price·(1 − haircut).",
      offsetof(struct lend_asset_cfg, haircut), NULL, 0 },
};

static int cdp_coll_check(void *bound, const struct sp_check_ctx *ctx)
{
    (void)bound;
    int rc = SP_OK;
    if (sp_world_check_token(ctx, "token", -1)) rc = SP_ECONFIG;
    if (lend_check_oracle(ctx, "oracle")) rc = SP_ECONFIG;
    if (sp_node_get(ctx->node, "quoted_in") && lend_check_oracle(ctx, "quoted_in"))
        rc = SP_ECONFIG;
    return rc;
}

static const struct sp_schema cdp_coll_schema = {
    "protocols[type: cdp].collaterals[]",
    "One collateral type (Maker's ilk) of a cdp.",
    cdp_coll_fields, sizeof cdp_coll_fields / sizeof cdp_coll_fields[0],
    sizeof(struct lend_asset_cfg), cdp_coll_check
};

static const struct sp_field cdp_fields[] = {
    { "stablecoin", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The token minted against collateral (kind stable).",
      offsetof(struct lend_cfg, stablecoin), NULL, 0 },
    { "stable_oracle", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Oracle of the stablecoin in the numeraire; default: worth 1.",
      offsetof(struct lend_cfg, stable_oracle), NULL, 0 },
    { "collaterals", SP_T_LIST, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The collateral types (at most 64).",
      offsetof(struct lend_cfg, assets), &cdp_coll_schema, offsetof(struct lend_cfg, n_assets) },
    { "debt_ceiling", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "stablecoin",
      "Maker's Line: most debt in total; 0 = none.", offsetof(struct lend_cfg, line), NULL, 0 },
    { "surplus", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "stablecoin",
      "Surplus buffer at t = 0: absorbs bad debt before it becomes a deficit.",
      offsetof(struct lend_cfg, surplus), NULL, 0 },
    { "liquidation", SP_T_MAP, 0, 0, 0, NULL, NULL,
      "How its vaults are liquidated (default: dutch_auction kicked by the protocol, Maker "
      "Liquidations 2.0).",
      offsetof(struct lend_cfg, liq), &lend_liq_schema, 0 },
    { "accrue_every", SP_T_DURATION, SP_F_MIN, 0, 0, "1h", "time",
      "Stability fees accrue at every oracle delivery and action, and at least this often; "
      "0 = only then.", offsetof(struct lend_cfg, accrue_every), NULL, 0 },
    { "sample_every", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "Sampling of /protocols/<name>; 0 = output.sample_every.",
      offsetof(struct lend_cfg, sample_every), NULL, 0 },
    { "positions_every", SP_T_DURATION, SP_F_MIN, 0, 0, "1h", "time",
      "Cadence of position snapshots in /positions (one row per vault); 0 = none.",
      offsetof(struct lend_cfg, positions_every), NULL, 0 },
};

static int cdp_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct lend_cfg *c = bound;
    int rc = SP_OK;
    if (sp_world_check_token(ctx, "stablecoin", SP_TOKEN_STABLE)) rc = SP_ECONFIG;
    if (c->stable_oracle && lend_check_oracle(ctx, "stable_oracle")) rc = SP_ECONFIG;
    const struct sp_node *list = sp_node_get(ctx->node, "collaterals");
    for (size_t i = 0; i < c->n_assets; i++) {
        const char *t = c->assets[i].token;
        if (t && c->stablecoin && !strcmp(t, c->stablecoin)) {
            sp_diag_error(ctx->diag, sp_node_get(sp_node_at(list, i), "token"),
                          "the stablecoin cannot be its own collateral");
            rc = SP_ECONFIG;
        }
        for (size_t k = 0; k < i; k++)
            if (t && c->assets[k].token && !strcmp(t, c->assets[k].token)) {
                sp_diag_error(ctx->diag, sp_node_get(sp_node_at(list, i), "token"),
                              "collateral '%s' is listed twice", t);
                rc = SP_ECONFIG;
            }
    }
    if (c->n_assets > 64) {
        sp_diag_error(ctx->diag, list, "at most 64 collateral types (%zu given)", c->n_assets);
        rc = SP_ECONFIG;
    }
    if (liq_check(bound, ctx, LEND_CDP)) rc = SP_ECONFIG;
    return rc;
}

static const struct sp_schema cdp_schema = {
    "protocols[type: cdp]",
    "A Maker-like CDP: vaults lock one collateral type and mint the stablecoin; liquidation "
    "ratio, penalty, debt ceilings, stability fee, surplus buffer.",
    cdp_fields, sizeof cdp_fields / sizeof cdp_fields[0], sizeof(struct lend_cfg), cdp_check
};

static int cdp_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct lending *L = self;
    const struct lend_cfg *c = cfg;
    L->cfg = c;
    L->kind = LEND_CDP;
    L->sim = sim;
    L->id = id;
    L->stable = sp_token_find(sim, c->stablecoin);
    L->surplus = c->surplus;
    size_t n = c->n_assets;
    L->coll = calloc(n ? n : 1, sizeof *L->coll);
    L->debt = calloc(n ? n : 1, sizeof *L->debt);
    if (!L->coll || !L->debt) return SP_ENOMEM;
    sp_id so = c->stable_oracle ? sp_sim_find(sim, c->stable_oracle) : SP_ID_NONE;
    for (size_t i = 0; i < n; i++) {
        const struct lend_asset_cfg *a = &c->assets[i];
        struct lend_coll *k = &L->coll[L->na++];
        k->token = sp_token_find(sim, a->token);
        k->oracle = sp_sim_find(sim, a->oracle);
        k->quoted_in = a->quoted_in ? sp_sim_find(sim, a->quoted_in) : SP_ID_NONE;
        k->ltv = k->lt = 1.0 / a->mat;
        k->bonus = a->chop;
        k->haircut = a->haircut;
        k->cfg_index = (int)i;
        struct lend_debt *d = &L->debt[L->nd++];
        d->token = L->stable;
        d->receipt = -1;
        d->oracle = so;
        d->quoted_in = SP_ID_NONE;
        d->fee = a->fee;
        d->cap = a->line;
        d->dust = a->dust;
        d->coll = (int)i;
        d->cfg_index = (int)i;
    }
    int rc = lend_init_common(L);
    return rc ? rc : liq_init(L);
}

const struct sp_module_ops sp_protocol_cdp_ops = {
    .kind = "protocol", .type = "cdp",
    .summary = "Maker-like CDP: vaults mint a stablecoin against one collateral type; "
               "liquidation ratio, penalty, ceilings, stability fee",
    .schema = &cdp_schema, .state_size = sizeof(struct lending),
    .init = cdp_init, .start = lend_start, .on_event = lend_on_event,
    .finish = lend_finish, .release = lend_release,
    .snapshot = lend_snapshot, .restore = lend_restore,
};
