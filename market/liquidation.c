/*
 * liquidation.c — the liquidation mechanism of a lending protocol
 * (liquidation.h): the `liquidation:` schema shared by pools and cdps, the
 * protocol side of the four mechanisms, the protocol's own liquidation pass,
 * /events/liquidations, /events/auctions and the /summary metrics.  The
 * arithmetic is market/liq_fixed.h, liq_dutch.h and liq_english.h; this file
 * only moves tokens and books debt around them.
 *
 * Debt of a position in an auction.  At the kick (Dog.bark / Cat.bite) the
 * position gives up ALL its collateral of one asset (the largest by value;
 * a cdp vault has one) and ALL its debt of one slot (the largest; a cdp
 * vault has one): the vault is emptied, as in Maker.  The debt moves into
 * the slot's `auction` counter — the protocol's claim on the auction's
 * proceeds (Maker's sin in the vow).  It accrues no interest.  A pool counts
 * it in its receipt exchange rate like ordinary debt, so suppliers are
 * unaffected while the auction runs.  Collateral in auctions is
 * the coll's `auction` counter: still in the protocol's custody.
 * Proceeds (takes, tend bids) go to the debt first, the rest (the penalty
 * part of tab) to the reserve (cdp: surplus); a pool receives them as cash,
 * a cdp burns them.  When the lot is gone with debt still owed, that debt
 * is bad debt, booked like sp_lending_write_off (reserve / surplus first,
 * then socialised).  A position left with debt and no collateral at all is
 * written off at once.
 *
 * Keeper incentive (dutch: tip + chip·tab at a keeper's kick and at redo).
 * Maker mints it with vat.suck against the system's surplus: a cdp mints
 * the stablecoin to the keeper and takes it from the surplus buffer; beyond
 * the buffer it is bad debt (deficit).  A pool pays it in the debt token out
 * of the asset's reserve, as far as reserve and cash go.  No incentive when
 * the protocol kicks itself (`kick: protocol`).
 *
 * The protocol's own pass.  With amm_direct, or an auction mechanism with
 * `kick: protocol`, a position crossing to HF < 1 (liq_crossed, called from
 * the index callback) only queues one LEND_EV_LIQUIDATE event at the same
 * instant, priority SP_PRIO_MARKET.  The pass then handles every position
 * liquidatable at that moment in owner-id order: amm_direct seizes the
 * collateral and sells it into the venue (cause liquidation, the position's
 * generation), repays from the proceeds, pays the surplus to the owner and
 * writes the shortfall off.  A sale that moves the price an oracle of this
 * protocol reads reaches it through the oracle (an `on_trade` oracle polls
 * at the same instant), whose delivery refreshes the protocol, whose new
 * crossings queue the next pass: each round of a cascade is one pass, and
 * nothing recurses inside the index callback.
 *
 * Generations.  A position carries the generation of the refresh that made
 * it liquidatable (lending.c: the highest generation among the protocol's
 * oracles that delivered at that instant, 0 for crossings by accrual or by
 * actions); its liquidation rows, its auction and its amm_direct sales carry
 * it.
 *
 * Snapshot (inside the protocol's payload, lending.c): the counters behind
 * /summary (liquidations, kicks, closes, zero bids, skips, liquidated
 * value, deepest generation), the Hole's dirt, whether a pass is queued
 * (its event is in the restored queue), the first live auction, the
 * auction subscribers, and every auction ever kicked (ids are positions in
 * that array, closed ones stay) as two bins: 13 doubles and 16 integers
 * each, the dutch and english states both.  The mechanism, the venue and
 * the tables come from the config and start.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending-internal.h"
#include "liq_dutch.h"
#include "liq_english.h"
#include "liq_fixed.h"
#include "liquidation.h"

/* ---- schema ------------------------------------------------------------------ */

static const char *const mechanism_names[] = { "none", "fixed_spread", "dutch_auction",
                                               "english_auction", "amm_direct", NULL };
static const char *const variant_names[] = { "aave_v3", "compound_v2", NULL };
static const char *const curve_names[] = { "linear", "stairstep_exponential", "exponential",
                                           NULL };
static const char *const kick_names[] = { "protocol", "keeper", NULL };

static const struct sp_field liq_fields[] = {
    { "mechanism", SP_T_ENUM, 0, 0, 0, NULL, NULL,
      "How liquidatable positions are liquidated. Default: fixed_spread for a pool, "
      "dutch_auction for a cdp. Every key below is accepted whatever the mechanism, so "
      "`--set protocols.N.liquidation.mechanism=...` switches alone.",
      offsetof(struct liq_cfg, mechanism), mechanism_names, 0 },
    { "variant", SP_T_ENUM, 0, 0, 0, "aave_v3", NULL,
      "fixed_spread: aave_v3 (LiquidationLogic: close factor switch, collateral cap, protocol "
      "fee) or compound_v2 (liquidateBorrow: refuses too large a repay, seize share).",
      offsetof(struct liq_cfg, variant), variant_names, 0 },
    { "close_factor", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "50%", "fraction",
      "fixed_spread: largest share of the debt one call may repay while HF > hf_threshold.",
      offsetof(struct liq_cfg, close_factor), NULL, 0 },
    { "close_factor_max", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "100%", "fraction",
      "fixed_spread (aave_v3): the close factor once HF <= hf_threshold.",
      offsetof(struct liq_cfg, close_factor_max), NULL, 0 },
    { "hf_threshold", SP_T_NUMBER, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "0.95", "1",
      "fixed_spread (aave_v3): CLOSE_FACTOR_HF_THRESHOLD.",
      offsetof(struct liq_cfg, hf_threshold), NULL, 0 },
    { "protocol_fee", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "10%", "fraction",
      "fixed_spread (aave_v3): liquidationProtocolFee, the share of the bonus collateral "
      "kept by the protocol (10% on Aave v3's main markets).",
      offsetof(struct liq_cfg, protocol_fee), NULL, 0 },
    { "seize_share", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "2.8%", "fraction",
      "fixed_spread (compound_v2): protocolSeizeShare, the share of the seized collateral "
      "kept by the protocol.", offsetof(struct liq_cfg, seize_share), NULL, 0 },
    { "curve", SP_T_ENUM, 0, 0, 0, "stairstep_exponential", NULL,
      "dutch_auction: the price curve (abaci.sol): linear top·(duration − t)/duration, "
      "stairstep_exponential top·cut^floor(t/step), exponential top·cut^t (t in seconds).",
      offsetof(struct liq_cfg, curve), curve_names, 0 },
    { "duration", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "dutch_auction, linear: time for the price to fall to 0 (LinearDecrease tau).",
      offsetof(struct liq_cfg, duration), NULL, 0 },
    { "step", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "90s", "time",
      "dutch_auction, stairstep_exponential: time between price cuts.",
      offsetof(struct liq_cfg, step), NULL, 0 },
    { "cut", SP_T_NUMBER, SP_F_MIN_EXCL | SP_F_MAX_EXCL, 0, 1, "0.99", "1",
      "dutch_auction: price factor per step (stairstep) or per second (exponential).",
      offsetof(struct liq_cfg, cut), NULL, 0 },
    { "buf", SP_T_NUMBER, SP_F_MIN, 1, 0, "1.2", "1",
      "dutch_auction: starting price = oracle price × buf.",
      offsetof(struct liq_cfg, buf), NULL, 0 },
    { "tail", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "140m", "time",
      "dutch_auction: an auction older than this must be reset (redo).",
      offsetof(struct liq_cfg, tail), NULL, 0 },
    { "cusp", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "40%", "fraction",
      "dutch_auction: an auction whose price fell below cusp × its start must be reset.",
      offsetof(struct liq_cfg, cusp), NULL, 0 },
    { "tip", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "debt token",
      "dutch_auction: flat keeper reward at a keeper's kick and at redo.",
      offsetof(struct liq_cfg, tip), NULL, 0 },
    { "chip", SP_T_FRACTION, SP_F_MIN, 0, 0, "0.1%", "fraction",
      "dutch_auction: keeper reward as a share of tab (with tip).",
      offsetof(struct liq_cfg, chip), NULL, 0 },
    { "hole", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "debt token",
      "dutch_auction: most tab in live auctions at once (Maker's Hole); a kick beyond it is "
      "refused; 0 = no limit.", offsetof(struct liq_cfg, hole), NULL, 0 },
    { "kick", SP_T_ENUM, 0, 0, 0, "protocol", NULL,
      "Auctions: who opens them. protocol: the protocol, at the instant a position becomes "
      "liquidatable (no keeper reward); keeper: keepers call bark (and earn tip + chip·tab).",
      offsetof(struct liq_cfg, kick), kick_names, 0 },
    { "beg", SP_T_NUMBER, SP_F_MIN_EXCL, 1, 0, "1.05", "1",
      "english_auction: minimum bid increase (tend) / lot decrease (dent) factor.",
      offsetof(struct liq_cfg, beg), NULL, 0 },
    { "ttl", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "3h", "time",
      "english_auction: lifetime of a bid (at most tau).",
      offsetof(struct liq_cfg, ttl), NULL, 0 },
    { "tau", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "2d", "time",
      "english_auction: auction length.", offsetof(struct liq_cfg, tau), NULL, 0 },
    { "venue", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "amm_direct: the market the protocol sells seized collateral into (a `markets` entry "
      "trading a collateral of the protocol against its debt token).",
      offsetof(struct liq_cfg, venue), NULL, 0 },
    { "max_slippage", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "100%", "fraction",
      "amm_direct: a sale that would get less than (1 − max_slippage) × the collateral's "
      "oracle value is not made (the position stays liquidatable); 100% = no limit.",
      offsetof(struct liq_cfg, max_slippage), NULL, 0 },
};

static int liq_schema_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct liq_cfg *c = bound;
    if (c->ttl > c->tau) {
        char a[64], b[64];
        const struct sp_node *at = sp_node_get(ctx->node, "ttl");
        sp_diag_error(ctx->diag, at && !(at->flags & SP_NODE_DEFAULT) ? at
                                 : sp_node_get(ctx->node, "tau"),
                      "ttl (%s) must not exceed tau (%s): a bid would outlive the auction",
                      sp_format_duration(c->ttl, a, sizeof a),
                      sp_format_duration(c->tau, b, sizeof b));
        return SP_ECONFIG;
    }
    return SP_OK;
}

const struct sp_schema lend_liq_schema = {
    "liquidation",
    "How a protocol's liquidatable positions are liquidated (market/liquidation.h). Penalty "
    "and bonus come from the assets (pool liquidation_bonus, cdp liquidation_penalty = "
    "chop − 1).",
    liq_fields, sizeof liq_fields / sizeof liq_fields[0], sizeof(struct liq_cfg),
    liq_schema_check
};

/* Whether `tok` is a collateral (*coll) or the debt token (*debt) of the
 * protocol item being checked. */
static void token_role(const struct lend_cfg *c, enum lend_kind kind, const char *tok,
                       bool *coll, bool *debt)
{
    *coll = *debt = false;
    if (!tok) return;
    for (size_t i = 0; i < c->n_assets; i++) {
        const struct lend_asset_cfg *a = &c->assets[i];
        if (!a->token || strcmp(a->token, tok)) continue;
        if (kind == LEND_CDP || a->collateral) *coll = true;
        if (kind == LEND_POOL && a->borrowable) *debt = true;
    }
    if (kind == LEND_CDP && c->stablecoin && !strcmp(c->stablecoin, tok)) *debt = true;
}

static const char *market_item_name(const struct sp_module_cfg *m, char *buf, size_t n)
{
    if (m->name) return m->name;
    if (m->ops && m->ops->default_name && m->cfg) return m->ops->default_name(m->cfg, buf, n);
    return NULL;
}

int liq_check(struct lend_cfg *c, const struct sp_check_ctx *ctx, enum lend_kind kind)
{
    const struct sp_node *liq = sp_node_get(ctx->node, "liquidation");
    const struct sp_node *mech = liq ? sp_node_get(liq, "mechanism") : NULL;
    if (!mech || (mech->flags & SP_NODE_DEFAULT))
        c->liq.mechanism = kind == LEND_POOL ? SP_LIQ_FIXED_SPREAD : SP_LIQ_DUTCH;
    if (c->liq.mechanism != SP_LIQ_AMM_DIRECT) return SP_OK;
    if (!c->liq.venue) {
        sp_diag_error(ctx->diag, mech ? mech : ctx->node,
                      "mechanism amm_direct needs `venue`: the market the protocol sells "
                      "seized collateral into");
        return SP_ECONFIG;
    }
    const struct sp_world_cfg *w = ctx->root;
    struct sp_check_ctx sub = *ctx;
    sub.node = liq;
    if (sp_world_check_entity(&sub, "venue", w->markets, w->n_markets, "venue", NULL))
        return SP_ECONFIG;
    for (size_t i = 0; i < w->n_markets; i++) {
        char buf[128];
        const struct sp_module_cfg *m = &w->markets[i];
        const char *nm = market_item_name(m, buf, sizeof buf);
        if (!nm || strcmp(nm, c->liq.venue) || !m->node) continue;
        const struct sp_node *b = sp_node_get(m->node, "base");
        const struct sp_node *q = sp_node_get(m->node, "quote");
        const char *bt = b ? b->value : NULL, *qt = q ? q->value : NULL;
        bool bc, bd, qc, qd;
        token_role(c, kind, bt, &bc, &bd);
        token_role(c, kind, qt, &qc, &qd);
        if (!((bc && qd) || (qc && bd))) {
            sp_diag_error(ctx->diag, sp_node_get(liq, "venue"),
                          "venue '%s' trades %s/%s: amm_direct needs a market of one of this "
                          "protocol's collaterals against its debt token", c->liq.venue,
                          bt ? bt : "?", qt ? qt : "?");
            return SP_ECONFIG;
        }
    }
    return SP_OK;
}

/* ---- state ------------------------------------------------------------------- */

struct liq_auction {
    int mech;                  /* SP_LIQ_DUTCH or SP_LIQ_ENGLISH */
    sp_id owner;
    int a, j;                  /* collateral asset, debt slot */
    struct sp_dutch_auction d;
    struct sp_english_auction e;
    double debt;               /* of the slot's `auction` debt, what this one still owes */
    double raised;             /* debt token paid in so far */
    double lot0, tab0, value0; /* at the kick; value0 = lot0 at the oracle (numeraire) */
    double lot_returned, last_price;
    sp_id winner;
    int n_bids;
    sp_time start;
    int generation;
    bool live;
};

struct liq_sub { sp_id who; uint16_t kind; };

struct liq_state {
    int mech;                  /* enum sp_liq_mechanism */
    /* amm_direct */
    sp_id venue;
    int v_coll;                /* collateral asset it sells */
    sp_token v_debt;           /* the debt token it buys */
    bool coll_is_base;
    /* auctions */
    struct liq_auction *auc;       /* every auction, by id − 1 (closed ones stay) */
    size_t n_auc, cap_auc;
    size_t first_live;             /* no live auction below this index */
    struct liq_sub *subs;
    size_t n_subs;
    double dirt;               /* tab of live dutch auctions (Hole) */
    bool pass_pending;
    int code;                  /* protocol code in the tables */
    /* metrics */
    uint64_t n_liq, n_kicked, n_closed, n_zero, n_skipped;
    double liquidated_value;
    int max_gen;
    /* leader: the shared tables */
    struct sp_rec_table *liq_tab, *auc_tab;
};

static struct liq_state *leader_state(struct lending *L)
{
    for (sp_id i = 0; i <= L->id; i++) {
        struct lending *o = lend_of(L->sim, i);
        if (o && o->liq) return o->liq;
    }
    return L->liq;
}

int liq_init(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    const struct liq_cfg *c = &L->cfg->liq;
    const char *name = sp_sim_entity_name(sim, L->id);
    struct liq_state *Q = calloc(1, sizeof *Q);
    if (!Q) return SP_ENOMEM;
    L->liq = Q;
    Q->mech = c->mechanism;
    Q->venue = SP_ID_NONE;
    Q->v_coll = -1;
    Q->v_debt = -1;
    Q->max_gen = -1;
    char msg[256];
    for (size_t a = 0; a < L->na; a++) {
        int rc = SP_OK;
        if (Q->mech == SP_LIQ_FIXED_SPREAD) {
            struct sp_fixed_params p = { c->close_factor, c->close_factor_max, c->hf_threshold,
                                         1.0 + L->coll[a].bonus, c->protocol_fee };
            rc = sp_fixed_params_check(&p, msg, sizeof msg);
        } else if (Q->mech == SP_LIQ_DUTCH) {
            struct sp_dutch_params p = { (enum sp_dutch_curve)c->curve, c->duration, c->step,
                                         c->cut, c->buf, c->tail, c->cusp,
                                         1.0 + L->coll[a].bonus, c->tip, c->chip, 0 };
            rc = sp_dutch_params_check(&p, msg, sizeof msg);
        } else if (Q->mech == SP_LIQ_ENGLISH) {
            struct sp_english_params p = { c->beg, c->ttl, c->tau };
            rc = sp_english_params_check(&p, msg, sizeof msg);
        }
        if (rc) {
            sp_sim_fail(sim, rc, "%s: liquidation: %s", name, msg);
            return rc;
        }
    }
    if (Q->mech != SP_LIQ_AMM_DIRECT) return SP_OK;
    Q->venue = c->venue ? sp_sim_find(sim, c->venue) : SP_ID_NONE;
    const struct sp_market_ops *m = Q->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, Q->venue);
    if (!m) {
        sp_sim_fail(sim, SP_EINVAL, "%s: liquidation venue '%s' is not a market", name,
                    c->venue ? c->venue : "(none)");
        return SP_EINVAL;
    }
    sp_token base, quote;
    m->pair(sp_sim_entity_state(sim, Q->venue), &base, &quote);
    sp_token debt_tok = L->kind == LEND_CDP ? L->stable : -1;
    for (int side = 0; side < 2 && Q->v_coll < 0; side++) {
        sp_token ct = side == 0 ? base : quote, dt = side == 0 ? quote : base;
        int a = lend_coll_index(L, ct);
        bool is_debt = L->kind == LEND_CDP ? dt == debt_tok : false;
        for (size_t j = 0; L->kind == LEND_POOL && j < L->nd; j++)
            if (L->debt[j].token == dt) is_debt = true;
        if (a >= 0 && is_debt) {
            Q->v_coll = a;
            Q->v_debt = dt;
            Q->coll_is_base = side == 0;
        }
    }
    if (Q->v_coll < 0) {
        sp_sim_fail(sim, SP_EINVAL, "%s: liquidation venue '%s' does not trade a collateral "
                    "against the debt token", name, c->venue);
        return SP_EINVAL;
    }
    return SP_OK;
}

void liq_release(struct lending *L)
{
    struct liq_state *Q = L->liq;
    if (!Q) return;
    free(Q->auc);
    free(Q->subs);
    free(Q);
    L->liq = NULL;
}

/* ---- recording --------------------------------------------------------------- */

int liq_start(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    struct liq_state *Q = L->liq;
    for (sp_id i = 0; i < L->id; i++) Q->code += lend_of(sim, i) != NULL;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (!L->leader || !rec) return SP_OK;
    size_t n = sp_sim_entity_count(sim), nt = sp_token_count(sim), np = 0;
    const char **ents = calloc(n + 1, sizeof *ents);
    const char **protos = calloc(n + 1, sizeof *protos);
    const char **toks = calloc(nt + 1, sizeof *toks);
    int rc = SP_ENOMEM;
    if (!ents || !protos || !toks) goto out;
    for (sp_id i = 0; i < n; i++) {
        ents[i] = sp_sim_entity_name(sim, i);
        if (lend_of(sim, i)) protos[np++] = ents[i];
    }
    for (size_t t = 0; t < nt; t++) toks[t] = sp_token_name(sim, (sp_token)t);
    const struct sp_rec_col lcols[] = {
        { "t", SP_REC_F64, "s", "time of the liquidation", NULL },
        { "t_us", SP_REC_I64, "us", "time, exact", NULL },
        { "protocol", SP_REC_I32, "1", "lending protocol", protos },
        { "owner", SP_REC_I32, "1", "position owner's entity id", ents },
        { "liquidator", SP_REC_I32, "1",
          "who repaid / bought (the protocol itself for amm_direct and write-offs)", ents },
        { "mechanism", SP_REC_I8, "1", "liquidation mechanism", mechanism_names },
        { "collateral", SP_REC_I32, "1", "collateral token", toks },
        { "debt", SP_REC_I32, "1", "debt token", toks },
        { "debt_repaid", SP_REC_F64, "token", "debt token paid in (debt token units)", NULL },
        { "collateral_seized", SP_REC_F64, "token", "collateral leaving the position or auction",
          NULL },
        { "oracle_price", SP_REC_F64, "numeraire", "protocol's price of the collateral", NULL },
        { "exec_price", SP_REC_F64, "numeraire",
          "debt obtained per unit of collateral, at the debt's price", NULL },
        { "bad_debt", SP_REC_F64, "numeraire", "debt written off by this event", NULL },
        { "generation", SP_REC_I32, "1", "cascade generation", NULL },
    };
    rc = sp_rec_table_create(rec, "/events/liquidations", lcols, sizeof lcols / sizeof lcols[0],
                             &Q->liq_tab);
    if (rc) goto out;
    const struct sp_rec_col acols[] = {
        { "t_start", SP_REC_F64, "s", "kick time", NULL },
        { "t_end", SP_REC_F64, "s", "close time", NULL },
        { "protocol", SP_REC_I32, "1", "lending protocol", protos },
        { "owner", SP_REC_I32, "1", "position owner's entity id", ents },
        { "mechanism", SP_REC_I8, "1", "auction mechanism", mechanism_names },
        { "collateral", SP_REC_I32, "1", "collateral token sold", toks },
        { "lot", SP_REC_F64, "token", "collateral on offer at the kick", NULL },
        { "tab", SP_REC_F64, "token", "debt token wanted at the kick (debt x chop)", NULL },
        { "raised", SP_REC_F64, "token", "debt token raised", NULL },
        { "n_bids", SP_REC_I32, "1", "takes (dutch) or bids (english)", NULL },
        { "winner", SP_REC_I32, "1", "last taker / winning bidder (-1: none)", ents },
        { "final_price", SP_REC_F64, "debt per collateral",
          "dutch: price of the last take; english: bid / lot at the deal", NULL },
        { "collateral_value", SP_REC_F64, "numeraire", "lot at the oracle price at the kick",
          NULL },
        { "zero_bid", SP_REC_I8, "1", "1 when raised was below 1% of collateral_value", NULL },
        { "lot_returned", SP_REC_F64, "token", "collateral given back to the owner", NULL },
        { "generation", SP_REC_I32, "1", "cascade generation", NULL },
    };
    rc = sp_rec_table_create(rec, "/events/auctions", acols, sizeof acols / sizeof acols[0],
                             &Q->auc_tab);
out:
    free(ents);
    free(protos);
    free(toks);
    if (rc) sp_sim_fail(sim, rc, "cannot create the liquidation tables: %s", sp_strerror(rc));
    return rc;
}

static double num(double x) { return isfinite(x) ? x : 0.0; }

static void record_liq(struct lending *L, sp_id owner, sp_id liquidator, int a, int j,
                       double repaid, double seized, double proceeds, double bad, int gen)
{
    struct liq_state *Q = L->liq, *R = leader_state(L);
    double pd = L->debt[j].price, pc = L->coll[a].price;
    Q->n_liq++;
    Q->liquidated_value += num(repaid * pd);
    if (gen > Q->max_gen) Q->max_gen = gen;
    if (!R->liq_tab) return;
    sp_time now = sp_sim_now(L->sim);
    union sp_rec_val row[14];
    row[0].f = sp_time_sec(now);
    row[1].i = now;
    row[2].i = Q->code;
    row[3].i = owner;
    row[4].i = liquidator;
    row[5].i = Q->mech;
    row[6].i = L->coll[a].token;
    row[7].i = L->debt[j].token;
    row[8].f = repaid;
    row[9].f = seized;
    row[10].f = pc;
    row[11].f = seized > 0 ? proceeds * pd / seized : NAN;
    row[12].f = bad;
    row[13].i = gen;
    sp_rec_append(R->liq_tab, row);
}

static void record_auction(struct lending *L, const struct liq_auction *au, double final_price)
{
    struct liq_state *Q = L->liq, *R = leader_state(L);
    double pd = L->debt[au->j].price;
    bool zero = !(num(au->raised * pd) >= 0.01 * au->value0);
    Q->n_closed++;
    Q->n_zero += zero;
    if (!R->auc_tab) return;
    union sp_rec_val row[16];
    row[0].f = sp_time_sec(au->start);
    row[1].f = sp_time_sec(sp_sim_now(L->sim));
    row[2].i = Q->code;
    row[3].i = au->owner;
    row[4].i = au->mech;
    row[5].i = L->coll[au->a].token;
    row[6].f = au->lot0;
    row[7].f = au->tab0;
    row[8].f = au->raised;
    row[9].i = au->n_bids;
    row[10].i = au->winner == SP_ID_NONE ? -1 : (int64_t)au->winner;
    row[11].f = final_price;
    row[12].f = au->value0;
    row[13].i = zero;
    row[14].f = au->lot_returned;
    row[15].i = au->generation;
    sp_rec_append(R->auc_tab, row);
}

void liq_finish(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    struct liq_state *Q = L->liq;
    if (!Q) return;
    char key[300];
    snprintf(key, sizeof key, "n_liquidations_%s", sp_sim_entity_name(sim, L->id));
    sp_sim_summary(sim, key, (double)Q->n_liq);
    if (!L->leader) return;
    double n = 0, value = 0, kicked = 0, closed = 0, zero = 0;
    int depth = -1;
    for (sp_id i = 0; i < sp_sim_entity_count(sim); i++) {
        struct lending *P = lend_of(sim, i);
        if (!P || !P->liq) continue;
        n += (double)P->liq->n_liq;
        value += P->liq->liquidated_value;
        kicked += (double)P->liq->n_kicked;
        closed += (double)P->liq->n_closed;
        zero += (double)P->liq->n_zero;
        if (P->liq->max_gen > depth) depth = P->liq->max_gen;
    }
    sp_sim_summary(sim, "n_liquidations", n);
    sp_sim_summary(sim, "liquidated_value", value);
    sp_sim_summary(sim, "cascade_depth", depth < 0 ? 0 : depth);
    sp_sim_summary(sim, "n_auctions", kicked);
    sp_sim_summary(sim, "n_zero_bid_auctions", zero);
    sp_sim_summary(sim, "zero_bid_share", closed > 0 ? zero / closed : 0.0);
}

/* ---- helpers ------------------------------------------------------------------ */

static bool finite_pos(double x) { return x > 0 && isfinite(x); }

static double position_collateral(const struct lending *L, size_t s)
{
    double c = 0;
    for (size_t a = 0; a < L->na; a++) c += L->pc[s * L->na + a];
    return c;
}

static bool position_owes(const struct lending *L, size_t s)
{
    for (size_t j = 0; j < L->nd; j++) if (L->pd[s * L->nd + j] > 0) return true;
    return false;
}

/* After a liquidation step: a position with debt and no collateral left is
 * written off; otherwise re-filed in the index.  *bad gets the value. */
static int settle_position(struct lending *L, size_t s, double *bad)
{
    *bad = 0;
    if (position_owes(L, s) && !(position_collateral(L, s) > 0))
        return sp_lending_write_off(L->sim, L->id, L->owner[s], bad);
    return lend_reindex(L, s);
}

static struct sp_dutch_params dutch_params(const struct lending *L, int a, int j)
{
    const struct liq_cfg *c = &L->cfg->liq;
    struct sp_dutch_params p = { (enum sp_dutch_curve)c->curve, c->duration, c->step, c->cut,
                                 c->buf, c->tail, c->cusp, 1.0 + L->coll[a].bonus, c->tip,
                                 c->chip, L->debt[j].dust };
    return p;
}

static struct sp_english_params english_params(const struct lending *L)
{
    const struct liq_cfg *c = &L->cfg->liq;
    struct sp_english_params p = { c->beg, c->ttl, c->tau };
    return p;
}

static bool short_of(struct sp_sim *sim, sp_id who, sp_token tok, double amount)
{
    return amount > sp_balance(sim, who, tok) * (1 + SP_LEDGER_DUST);
}

/* The protocol receives `amount` of slot j's debt token from `payer`
 * towards auction `au`: pool cash (transfer), cdp burn; the debt first,
 * the rest (penalty) to the reserve / surplus. */
static int receive(struct lending *L, struct liq_auction *au, sp_id payer, double amount)
{
    if (!(amount > 0)) return SP_OK;
    struct lend_debt *d = &L->debt[au->j];
    int rc = L->kind == LEND_POOL ? sp_transfer(L->sim, d->token, payer, L->id, amount)
                                  : sp_burn(L->sim, d->token, payer, amount);
    if (rc) return rc;
    double to_debt = amount < au->debt ? amount : au->debt;
    double penalty = amount - to_debt;
    au->debt -= to_debt;
    d->auction -= to_debt;
    if (d->auction < 0) d->auction = 0;
    au->raised += amount;
    if (L->kind == LEND_POOL) {
        d->cash += amount;
        d->reserve += penalty;
    } else {
        L->surplus += penalty;
    }
    return SP_OK;
}

/* Give `amount` of the auction's collateral to `to`. */
static int give_lot(struct lending *L, struct liq_auction *au, sp_id to, double amount)
{
    if (!(amount > 0)) return SP_OK;
    struct lend_coll *c = &L->coll[au->a];
    int rc = sp_transfer(L->sim, c->token, L->id, to, amount);
    if (rc) return rc;
    c->auction -= amount;
    if (c->auction < 0) c->auction = 0;
    return SP_OK;
}

static void schedule_pass(struct lending *L);

/* The auction closed: what it still owes is bad debt.  Returns its value.
 * With a Hole, room freed lets the protocol kick what it had to leave. */
static double close_auction(struct lending *L, struct liq_auction *au)
{
    struct liq_state *Q = L->liq;
    double bad = 0;
    if (au->debt > 0) {
        L->debt[au->j].auction -= au->debt;
        if (L->debt[au->j].auction < 0) L->debt[au->j].auction = 0;
        bad = lend_book_bad_debt(L, (size_t)au->j, au->debt);
        au->debt = 0;
    }
    if (au->mech == SP_LIQ_DUTCH) {
        Q->dirt -= au->d.tab;
        if (Q->dirt < 0) Q->dirt = 0;
        if (L->cfg->liq.hole > 0 && L->n_liquidatable > 0) schedule_pass(L);
    }
    au->live = false;
    sp_token_values_changed(L->sim);
    return bad;
}

/* Keeper incentive (tip + chip·tab): see the file comment. */
static int pay_reward(struct lending *L, int j, sp_id keeper, double reward)
{
    if (!(reward > 0) || keeper == L->id) return SP_OK;
    struct lend_debt *d = &L->debt[j];
    if (L->kind == LEND_POOL) {
        double x = reward;
        if (x > d->reserve) x = d->reserve;
        if (x > d->cash) x = d->cash;
        if (!(x > 0)) return SP_OK;
        int rc = sp_transfer(L->sim, d->token, L->id, keeper, x);
        if (rc) return rc;
        d->cash -= x;
        d->reserve -= x;
        return SP_OK;
    }
    int rc = sp_mint(L->sim, d->token, keeper, reward);
    if (rc) return rc;
    double from = L->surplus > 0 ? (L->surplus < reward ? L->surplus : reward) : 0;
    L->surplus -= from;
    double deficit = reward - from;
    if (deficit > 0) {                  /* vat.suck beyond the surplus: the system's deficit */
        d->bad_debt += deficit;
        d->socialized += deficit;
        L->bad_debt_value += deficit * num(d->price);
    }
    return SP_OK;
}

static void announce(struct lending *L, uint32_t id)
{
    struct liq_state *Q = L->liq;
    for (size_t i = 0; i < Q->n_subs; i++) {
        struct sp_event *ev = sp_sim_schedule(L->sim, sp_sim_now(L->sim), SP_PRIO_AGENT,
                                              Q->subs[i].who, Q->subs[i].kind);
        if (!ev) return;
        ev->data.u[0] = id;
        ev->data.u[1] = L->id;
    }
}

static struct lending *proto_of(struct sp_sim *sim, sp_id proto, int mech)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || !L->liq) return NULL;
    if (mech >= 0 && L->liq->mech != mech) return NULL;
    return L;
}

static struct liq_auction *auction_of(struct lending *L, uint32_t id)
{
    if (id == 0 || id > L->liq->n_auc) return NULL;
    return &L->liq->auc[id - 1];
}

/* ---- the API ------------------------------------------------------------------ */

enum sp_liq_mechanism sp_liq_mechanism(const struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    return L && L->liq ? (enum sp_liq_mechanism)L->liq->mech : SP_LIQ_NONE;
}

int sp_liq_generation(struct sp_sim *sim, sp_id proto, sp_id owner)
{
    struct lending *L = lend_of(sim, proto);
    long s = L ? lend_slot(L, owner) : -1;
    if (s < 0) return -1;
    lend_refresh_if_stale(L);
    return lend_is_liquidatable(L, (size_t)s) ? L->pgen[s] : -1;
}

int sp_liq_fixed(struct sp_sim *sim, sp_id proto, sp_id liquidator, sp_id owner,
                 sp_token debt_tok, sp_token coll_tok, double debt_to_cover,
                 struct sp_liq_result *out)
{
    struct lending *L = proto_of(sim, proto, SP_LIQ_FIXED_SPREAD);
    if (!L || !(debt_to_cover > 0) || !isfinite(debt_to_cover) ||
        liquidator >= sp_sim_entity_count(sim) || liquidator == proto)
        return SP_EINVAL;
    long s = lend_slot(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    int a = lend_coll_index(L, coll_tok), j = lend_debt_slot(L, s, debt_tok);
    if (a < 0 || j < 0) return SP_EINVAL;
    lend_refresh_if_stale(L);
    if (!lend_is_liquidatable(L, (size_t)s)) return SP_ESTATE;
    const struct liq_cfg *c = &L->cfg->liq;
    struct lend_debt *d = &L->debt[j];
    struct lend_coll *k = &L->coll[a];
    double debt = L->pd[(size_t)s * L->nd + j] * d->index;
    double coll = L->pc[(size_t)s * L->na + a];
    if (!(debt > 0) || !(coll > 0) || !finite_pos(d->price) || !finite_pos(k->price))
        return SP_ESTATE;
    struct sp_lending_position st;
    lend_position_state(L, (size_t)s, &st);
    double repaid, seized, to_liq, fee;
    int capped = 0, rc;
    if (c->variant == LIQ_VARIANT_AAVE_V3) {
        struct sp_fixed_params p = { c->close_factor, c->close_factor_max, c->hf_threshold,
                                     1.0 + k->bonus, c->protocol_fee };
        struct sp_fixed_result r;
        if ((rc = sp_fixed_liquidate(&p, st.hf, debt, coll, d->price, k->price, debt_to_cover,
                                     &r)))
            return rc;
        repaid = r.debt_repaid;
        seized = r.collateral_seized;
        to_liq = r.to_liquidator;
        fee = r.protocol_fee;
        capped = r.capped;
    } else {
        struct sp_fixed_compound_params p = { c->close_factor, 1.0 + k->bonus, c->seize_share };
        struct sp_fixed_compound_result r;
        if ((rc = sp_fixed_compound_liquidate(&p, debt, coll, debt_to_cover, d->price, k->price,
                                              1.0, &r)))
            return rc;
        repaid = debt_to_cover;
        seized = r.seize_tokens;
        to_liq = r.to_liquidator;
        fee = r.to_reserves;
    }
    if (seized > coll) seized = coll;             /* rounding only: the mechanics capped it */
    if (to_liq > seized) to_liq = seized;
    if (short_of(sim, liquidator, d->token, repaid)) return SP_ERANGE;
    int gen = L->pgen[s];
    rc = L->kind == LEND_POOL ? sp_transfer(sim, d->token, liquidator, proto, repaid)
                              : sp_burn(sim, d->token, liquidator, repaid);
    if (rc) return rc;
    if (L->kind == LEND_POOL) d->cash += repaid;
    lend_reduce_debt(L, (size_t)s, (size_t)j, repaid, debt);
    L->pc[(size_t)s * L->na + a] = capped || seized >= coll ? 0.0 : coll - seized;
    k->total -= seized;
    if (k->total < 0) k->total = 0;
    if ((rc = sp_transfer(sim, k->token, proto, liquidator, to_liq))) return rc;
    k->treasury += seized - to_liq;
    double bad;
    rc = settle_position(L, (size_t)s, &bad);
    sp_token_values_changed(sim);
    record_liq(L, owner, liquidator, a, j, repaid, seized, repaid, bad, gen);
    if (out) {
        out->debt_repaid = repaid;
        out->collateral_seized = seized;
        out->to_liquidator = to_liq;
        out->protocol_fee = seized - to_liq;
        out->bad_debt = bad;
        out->capped = capped;
        out->generation = gen;
    }
    (void)fee;
    return rc;
}

/* The collateral asset and debt slot an auction of position s takes: the
 * largest by value (a cdp vault has one of each). */
static void pick(const struct lending *L, size_t s, int *a_out, int *j_out)
{
    double best = -1;
    *a_out = *j_out = -1;
    for (size_t a = 0; a < L->na; a++) {
        double c = L->pc[s * L->na + a];
        double v = c * num(L->coll[a].price);
        if (c > 0 && v > best) { best = v; *a_out = (int)a; }
    }
    best = -1;
    for (size_t j = 0; j < L->nd; j++) {
        double x = L->pd[s * L->nd + j];
        double v = x * L->debt[j].index * num(L->debt[j].price);
        if (x > 0 && v > best) { best = v; *j_out = (int)j; }
    }
}

int sp_liq_bark(struct sp_sim *sim, sp_id proto, sp_id keeper, sp_id owner, uint32_t *id)
{
    struct lending *L = proto_of(sim, proto, -1);
    if (!L || (L->liq->mech != SP_LIQ_DUTCH && L->liq->mech != SP_LIQ_ENGLISH) ||
        keeper >= sp_sim_entity_count(sim))
        return SP_EINVAL;
    struct liq_state *Q = L->liq;
    long s = lend_slot(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    lend_refresh_if_stale(L);
    if (!lend_is_liquidatable(L, (size_t)s)) return SP_ESTATE;
    int a, j;
    pick(L, (size_t)s, &a, &j);
    if (a < 0 || j < 0) return SP_ESTATE;
    struct lend_coll *k = &L->coll[a];
    struct lend_debt *d = &L->debt[j];
    if (!finite_pos(k->price) || !finite_pos(d->price)) return SP_ESTATE;
    double lot = L->pc[(size_t)s * L->na + a];
    double debt = L->pd[(size_t)s * L->nd + j] * d->index;
    double feed = k->price / d->price;
    struct liq_auction au;
    memset(&au, 0, sizeof au);
    double reward = 0;
    int rc;
    if (Q->mech == SP_LIQ_DUTCH) {
        struct sp_dutch_params p = dutch_params(L, a, j);
        if ((rc = sp_dutch_bark(&p, debt, lot, feed, sp_sim_now(sim), &au.d, &reward))) return rc;
        if (L->cfg->liq.hole > 0 && Q->dirt + au.d.tab > L->cfg->liq.hole * (1 + 1e-12))
            return SP_ERANGE;
        au.tab0 = au.d.tab;
    } else {
        struct sp_english_params p = english_params(L);
        au.tab0 = debt * (1.0 + k->bonus);
        if ((rc = sp_english_kick(&p, au.tab0, lot, 0.0, sp_sim_now(sim), &au.e))) return rc;
    }
    if (Q->n_auc == Q->cap_auc) {
        size_t cap = Q->cap_auc ? 2 * Q->cap_auc : 16;
        struct liq_auction *p = realloc(Q->auc, cap * sizeof *p);
        if (!p) return SP_ENOMEM;
        Q->auc = p;
        Q->cap_auc = cap;
    }
    au.mech = Q->mech;
    au.owner = owner;
    au.a = a;
    au.j = j;
    au.debt = debt;
    au.lot0 = lot;
    au.value0 = lot * k->price;
    au.last_price = NAN;
    au.winner = SP_ID_NONE;
    au.start = sp_sim_now(sim);
    au.generation = L->pgen[s];
    au.live = true;
    /* The vault is emptied: collateral into custody for the auction, debt to
     * the protocol's claim on the proceeds. */
    L->pc[(size_t)s * L->na + a] = 0;
    k->total -= lot;
    if (k->total < 0) k->total = 0;
    k->auction += lot;
    lend_reduce_debt(L, (size_t)s, (size_t)j, debt, debt);
    d->auction += debt;
    if (Q->mech == SP_LIQ_DUTCH) Q->dirt += au.d.tab;
    Q->auc[Q->n_auc++] = au;
    Q->n_kicked++;
    uint32_t aid = (uint32_t)Q->n_auc;
    if (id) *id = aid;
    if ((rc = pay_reward(L, j, keeper, reward))) return rc;
    double bad;
    rc = settle_position(L, (size_t)s, &bad);
    if (bad > 0) record_liq(L, owner, proto, a, j, 0, 0, 0, bad, au.generation);
    sp_token_values_changed(sim);
    announce(L, aid);
    return rc;
}

size_t sp_liq_auctions(struct sp_sim *sim, sp_id proto, uint32_t *ids, size_t n)
{
    struct lending *L = proto_of(sim, proto, -1);
    if (!L) return 0;
    struct liq_state *Q = L->liq;
    while (Q->first_live < Q->n_auc && !Q->auc[Q->first_live].live) Q->first_live++;
    size_t k = 0;
    for (size_t i = Q->first_live; i < Q->n_auc; i++) {
        if (!Q->auc[i].live) continue;
        if (ids && k < n) ids[k] = (uint32_t)i + 1;
        k++;
    }
    return k;
}

int sp_liq_auction(struct sp_sim *sim, sp_id proto, uint32_t id, struct sp_auction_view *out)
{
    struct lending *L = proto_of(sim, proto, -1);
    if (!L || !out) return SP_EINVAL;
    struct liq_auction *au = auction_of(L, id);
    if (!au) return SP_ENOTFOUND;
    lend_refresh_if_stale(L);
    sp_time now = sp_sim_now(sim);
    memset(out, 0, sizeof *out);
    out->id = id;
    out->owner = au->owner;
    out->collateral = L->coll[au->a].token;
    out->debt = L->debt[au->j].token;
    out->live = au->live;
    out->n_bids = au->n_bids;
    out->start = au->start;
    out->generation = au->generation;
    out->guy = SP_ID_NONE;
    out->oracle_price = L->coll[au->a].price / L->debt[au->j].price;
    if (au->mech == SP_LIQ_DUTCH) {
        struct sp_dutch_params p = dutch_params(L, au->a, au->j);
        out->lot = au->d.lot;
        out->tab = au->d.tab;
        out->top = au->d.top;
        out->tic = au->d.tic;
        out->price = 0;
        if (au->live) {
            int redo = 0;
            double price = 0;
            if (sp_dutch_status(&p, &au->d, now, &redo, &price) == SP_OK) {
                out->price = price;
                out->needs_redo = redo;
            }
        }
    } else {
        out->lot = au->e.lot;
        out->tab = au->e.tab;
        out->bid = au->e.bid;
        out->guy = au->e.guy;
        out->phase = au->e.bid >= au->e.tab ? 1 : 0;
        out->tic = au->e.tic;
        out->end = au->e.end;
    }
    return SP_OK;
}

int sp_liq_take(struct sp_sim *sim, sp_id proto, sp_id keeper, uint32_t id, double amt,
                double max_price, double *bought, double *paid)
{
    struct lending *L = proto_of(sim, proto, SP_LIQ_DUTCH);
    if (!L || keeper >= sp_sim_entity_count(sim) || keeper == proto || !(amt > 0) ||
        isnan(max_price))
        return SP_EINVAL;
    struct liq_auction *au = auction_of(L, id);
    if (!au) return SP_ENOTFOUND;
    if (!au->live) return SP_ESTATE;
    lend_refresh_if_stale(L);
    struct sp_dutch_params p = dutch_params(L, au->a, au->j);
    struct sp_dutch_auction next = au->d;
    struct sp_dutch_take tk;
    int rc = sp_dutch_take(&p, &next, sp_sim_now(sim), amt, max_price, &tk);
    if (rc) return rc;
    struct lend_debt *d = &L->debt[au->j];
    if (short_of(sim, keeper, d->token, tk.owe)) return SP_ERANGE;
    if ((rc = receive(L, au, keeper, tk.owe))) return rc;
    if ((rc = give_lot(L, au, keeper, tk.slice))) return rc;
    L->liq->dirt -= au->d.tab - next.tab;
    au->d = next;
    au->n_bids++;
    au->winner = keeper;
    au->last_price = tk.price;
    double bad = 0;
    if (tk.closed) {
        if ((rc = give_lot(L, au, au->owner, tk.lot_returned))) return rc;
        au->lot_returned += tk.lot_returned;
        bad = close_auction(L, au);
    }
    record_liq(L, au->owner, keeper, au->a, au->j, tk.owe, tk.slice, tk.owe, bad,
               au->generation);
    if (tk.closed) record_auction(L, au, tk.price);
    sp_token_values_changed(sim);
    if (bought) *bought = tk.slice;
    if (paid) *paid = tk.owe;
    return SP_OK;
}

int sp_liq_redo(struct sp_sim *sim, sp_id proto, sp_id keeper, uint32_t id)
{
    struct lending *L = proto_of(sim, proto, SP_LIQ_DUTCH);
    if (!L || keeper >= sp_sim_entity_count(sim)) return SP_EINVAL;
    struct liq_auction *au = auction_of(L, id);
    if (!au) return SP_ENOTFOUND;
    if (!au->live) return SP_ESTATE;
    lend_refresh_if_stale(L);
    double pc = L->coll[au->a].price, pd = L->debt[au->j].price;
    if (!finite_pos(pc) || !finite_pos(pd)) return SP_ESTATE;
    struct sp_dutch_params p = dutch_params(L, au->a, au->j);
    double reward = 0;
    int rc = sp_dutch_redo(&p, &au->d, sp_sim_now(sim), pc / pd, &reward);
    if (rc) return rc;
    rc = pay_reward(L, au->j, keeper, reward);
    announce(L, id);
    return rc;
}

/* Post the DAI side of an English bid (sp_english_flow). */
static int post_bid(struct lending *L, struct liq_auction *au, sp_id bidder,
                    const struct sp_english_flow *f)
{
    sp_token tok = L->debt[au->j].token;
    int rc = SP_OK;
    if (f->refund > 0 && f->refund_to != SP_ID_NONE)
        rc = sp_transfer(L->sim, tok, bidder, f->refund_to, f->refund);
    if (!rc) rc = receive(L, au, bidder, f->to_gal);
    return rc;
}

/* tend (raise the bid on the lot) or dent (lower the lot for the full tab):
 * the same checks and postings, dent also returns the lot given up. */
static int english_bid(struct sp_sim *sim, sp_id proto, sp_id bidder, uint32_t id, double x,
                       bool dent)
{
    struct lending *L = proto_of(sim, proto, SP_LIQ_ENGLISH);
    if (!L || bidder >= sp_sim_entity_count(sim) || bidder == proto || !isfinite(x))
        return SP_EINVAL;
    struct liq_auction *au = auction_of(L, id);
    if (!au) return SP_ENOTFOUND;
    if (!au->live) return SP_ESTATE;
    struct sp_english_params p = english_params(L);
    struct sp_english_auction next = au->e;
    struct sp_english_flow f;
    int rc = dent ? sp_english_dent(&p, &next, sp_sim_now(sim), bidder, x, &f)
                  : sp_english_tend(&p, &next, sp_sim_now(sim), bidder, x, &f);
    if (rc) return rc;
    if (short_of(sim, bidder, L->debt[au->j].token, f.paid)) return SP_ERANGE;
    if ((rc = post_bid(L, au, bidder, &f))) return rc;
    if (dent) {
        if ((rc = give_lot(L, au, au->owner, f.lot_to_owner))) return rc;
        au->lot_returned += f.lot_to_owner;
    }
    au->e = next;
    au->n_bids++;
    au->winner = bidder;
    sp_token_values_changed(sim);
    return SP_OK;
}

int sp_liq_tend(struct sp_sim *sim, sp_id proto, sp_id bidder, uint32_t id, double bid)
{
    return english_bid(sim, proto, bidder, id, bid, false);
}

int sp_liq_dent(struct sp_sim *sim, sp_id proto, sp_id bidder, uint32_t id, double lot)
{
    return english_bid(sim, proto, bidder, id, lot, true);
}

int sp_liq_deal(struct sp_sim *sim, sp_id proto, uint32_t id)
{
    struct lending *L = proto_of(sim, proto, SP_LIQ_ENGLISH);
    if (!L) return SP_EINVAL;
    struct liq_auction *au = auction_of(L, id);
    if (!au) return SP_ENOTFOUND;
    if (!au->live) return SP_ESTATE;
    lend_refresh_if_stale(L);
    sp_time now = sp_sim_now(sim);
    if (au->e.n_bids == 0) {                       /* Flipper.tick */
        struct sp_english_params p = english_params(L);
        int rc = sp_english_tick(&p, &au->e, now);
        if (!rc) announce(L, id);
        return rc;
    }
    struct sp_english_auction next = au->e;
    struct sp_english_flow f;
    sp_id winner = SP_ID_NONE;
    int rc = sp_english_deal(&next, now, &winner, &f);
    if (rc) return rc;
    if ((rc = give_lot(L, au, winner, f.lot_to_winner))) return rc;
    au->e = next;
    au->winner = winner;
    double bad = close_auction(L, au);
    double final_price = f.lot_to_winner > 0 ? au->e.bid / f.lot_to_winner : NAN;
    record_liq(L, au->owner, winner, au->a, au->j, au->raised, f.lot_to_winner, au->raised, bad,
               au->generation);
    record_auction(L, au, final_price);
    return SP_OK;
}

int sp_liq_subscribe_auctions(struct sp_sim *sim, sp_id proto, sp_id subscriber, uint16_t kind)
{
    struct lending *L = proto_of(sim, proto, -1);
    if (!L || subscriber >= sp_sim_entity_count(sim)) return SP_EINVAL;
    struct liq_state *Q = L->liq;
    struct liq_sub *p = realloc(Q->subs, (Q->n_subs + 1) * sizeof *p);
    if (!p) return SP_ENOMEM;
    Q->subs = p;
    Q->subs[Q->n_subs++] = (struct liq_sub){ subscriber, kind };
    return SP_OK;
}

/* ---- the protocol's own pass -------------------------------------------------- */

static void schedule_pass(struct lending *L)
{
    struct liq_state *Q = L->liq;
    if (!Q || Q->pass_pending) return;
    bool own = Q->mech == SP_LIQ_AMM_DIRECT ||
               ((Q->mech == SP_LIQ_DUTCH || Q->mech == SP_LIQ_ENGLISH) &&
                L->cfg->liq.kick == LIQ_KICK_PROTOCOL);
    if (!own) return;
    if (sp_sim_schedule(L->sim, sp_sim_now(L->sim), SP_PRIO_MARKET, L->id, LEND_EV_LIQUIDATE))
        Q->pass_pending = true;
}

void liq_crossed(struct lending *L, size_t slot)
{
    (void)slot;
    schedule_pass(L);
}

/* amm_direct: seize the venue's collateral of position s, sell it, repay,
 * surplus to the owner, shortfall written off. */
static int amm_direct(struct lending *L, size_t s)
{
    struct sp_sim *sim = L->sim;
    struct liq_state *Q = L->liq;
    sp_id owner = L->owner[s];
    int a = Q->v_coll;
    int j = lend_debt_slot(L, (long)s, Q->v_debt);
    if (j < 0) return SP_OK;
    struct lend_coll *k = &L->coll[a];
    struct lend_debt *d = &L->debt[j];
    double coll = L->pc[s * L->na + a];
    double debt = L->pd[s * L->nd + j] * d->index;
    if (!(coll > 0) || !(debt > 0)) return SP_OK;
    const struct sp_market_ops *m = sp_market_ops_of(sim, Q->venue);
    enum sp_side side = Q->coll_is_base ? SP_SELL : SP_BUY;
    double out;
    int rc = m->quote(sp_sim_entity_state(sim, Q->venue), side, coll, &out);
    if (rc) return SP_OK;
    double min_out = 0;
    if (L->cfg->liq.max_slippage < 1 && finite_pos(k->price) && finite_pos(d->price)) {
        min_out = coll * k->price / d->price * (1 - L->cfg->liq.max_slippage);
        if (out < min_out) { Q->n_skipped++; return SP_OK; }
    }
    int gen = L->pgen[s];
    /* Seize: the collateral leaves the position but stays with the protocol,
     * which sells it. */
    L->pc[s * L->na + a] = 0;
    k->total -= coll;
    if (k->total < 0) k->total = 0;
    struct sp_swap req = { .agent = L->id, .side = side, .amount_in = coll, .min_out = min_out,
                           .cause = SP_CAUSE_LIQUIDATION, .generation = gen };
    struct sp_swap_result res;
    if ((rc = sp_market_swap(sim, Q->venue, &req, &res))) {
        L->pc[s * L->na + a] = coll;               /* nothing moved */
        k->total += coll;
        return SP_OK;
    }
    double proceeds = res.amount_out;
    double repay = proceeds < debt ? proceeds : debt;
    if (L->kind == LEND_POOL) d->cash += repay;
    else if ((rc = sp_burn(sim, d->token, L->id, repay))) return rc;
    lend_reduce_debt(L, s, (size_t)j, repay, debt);
    if (proceeds > repay && (rc = sp_transfer(sim, d->token, L->id, owner, proceeds - repay)))
        return rc;
    double bad;
    rc = settle_position(L, s, &bad);
    sp_token_values_changed(sim);
    record_liq(L, owner, L->id, a, j, repay, coll, proceeds, bad, gen);
    return rc;
}

static void pass(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    struct liq_state *Q = L->liq;
    Q->pass_pending = false;
    lend_refresh_if_stale(L);
    size_t n = sp_lending_liquidatable(sim, L->id, NULL, 0);
    if (!n) return;
    sp_id *owners = malloc(n * sizeof *owners);
    if (!owners) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
    n = sp_lending_liquidatable(sim, L->id, owners, n);
    for (size_t i = 0; i < n; i++) {
        long s = lend_slot(L, owners[i]);
        if (s < 0 || !lend_is_liquidatable(L, (size_t)s)) continue;
        int rc = SP_OK;
        if (!(position_collateral(L, (size_t)s) > 0)) {       /* nothing left to sell */
            int gen = L->pgen[s], a = 0, j = 0;
            pick(L, (size_t)s, &a, &j);
            double bad = 0;
            rc = sp_lending_write_off(sim, L->id, owners[i], &bad);
            if (!rc && bad > 0) record_liq(L, owners[i], L->id, a < 0 ? 0 : a, j < 0 ? 0 : j,
                                           0, 0, 0, bad, gen);
        } else if (Q->mech == SP_LIQ_AMM_DIRECT) {
            rc = amm_direct(L, (size_t)s);
        } else {
            /* a pool position may owe several assets against several
             * collaterals: one auction per (largest collateral, largest debt)
             * while it stays liquidatable */
            for (size_t k = 0; k <= L->na && !rc && lend_is_liquidatable(L, (size_t)s) &&
                               position_collateral(L, (size_t)s) > 0; k++)
                rc = sp_liq_bark(sim, L->id, L->id, owners[i], NULL);
            if (rc == SP_ERANGE || rc == SP_ESTATE) rc = SP_OK;   /* Hole full, dust, no price */
        }
        if (rc) {
            sp_sim_fail(sim, rc, "%s: liquidation of %s failed: %s",
                        sp_sim_entity_name(sim, L->id), sp_sim_entity_name(sim, owners[i]),
                        sp_strerror(rc));
            break;
        }
    }
    free(owners);
}

void liq_on_event(struct lending *L, struct sp_event *ev)
{
    if (ev->kind == LEND_EV_LIQUIDATE && L->liq) pass(L);
}

/* ---- snapshots ---------------------------------------------------------------- */

#define AUC_F64 13
#define AUC_I64 16

static void auction_put(const struct liq_auction *au, double *f, int64_t *k)
{
    double fv[AUC_F64] = { au->d.tab, au->d.lot, au->d.top, au->e.bid, au->e.lot, au->e.tab,
                           au->debt, au->raised, au->lot0, au->tab0, au->value0,
                           au->lot_returned, au->last_price };
    int64_t kv[AUC_I64] = { au->mech, au->owner, au->a, au->j, au->d.tic, au->d.live,
                            au->e.guy, au->e.n_bids, au->e.tic, au->e.end, au->e.live,
                            au->winner, au->n_bids, au->start, au->generation, au->live };
    memcpy(f, fv, sizeof fv);
    memcpy(k, kv, sizeof kv);
}

static bool id_ok(const struct lending *L, int64_t id, bool none_ok)
{
    return (none_ok && id == (int64_t)SP_ID_NONE) ||
           (id >= 0 && (uint64_t)id < sp_sim_entity_count(L->sim));
}

static int auction_get(const struct lending *L, struct liq_auction *au, const double *f,
                       const int64_t *k)
{
    memset(au, 0, sizeof *au);
    if ((k[0] != SP_LIQ_DUTCH && k[0] != SP_LIQ_ENGLISH) || !id_ok(L, k[1], false) ||
        k[2] < 0 || (uint64_t)k[2] >= L->na || k[3] < 0 || (uint64_t)k[3] >= L->nd ||
        !id_ok(L, k[6], true) || !id_ok(L, k[11], true) || k[7] < 0 || k[7] > INT32_MAX ||
        k[12] < 0 || k[12] > INT32_MAX || k[14] < -1 || k[14] > 255 ||
        (k[5] | k[10] | k[15]) & ~(int64_t)1)
        return SP_SNAPSHOT_EFORMAT;
    au->d = (struct sp_dutch_auction){ f[0], f[1], f[2], k[4], (int)k[5] };
    au->e = (struct sp_english_auction){ f[3], f[4], f[5], (sp_id)k[6], (int)k[7], k[8], k[9],
                                         (int)k[10] };
    au->debt = f[6];
    au->raised = f[7];
    au->lot0 = f[8];
    au->tab0 = f[9];
    au->value0 = f[10];
    au->lot_returned = f[11];
    au->last_price = f[12];
    au->mech = (int)k[0];
    au->owner = (sp_id)k[1];
    au->a = (int)k[2];
    au->j = (int)k[3];
    au->winner = (sp_id)k[11];
    au->n_bids = (int)k[12];
    au->start = k[13];
    au->generation = (int)k[14];
    au->live = k[15] == 1;
    return SP_OK;
}

int liq_snapshot(const struct lending *L, struct sp_snapshot_writer *w)
{
    const struct liq_state *Q = L->liq;
    if (!Q) return sp_snap_put_nil(w);
    size_t n = Q->n_auc;
    double *f = malloc((n * AUC_F64 + 1) * sizeof *f);
    int64_t *k = malloc((n * AUC_I64 + 1) * sizeof *k);
    uint64_t *subs = malloc((2 * Q->n_subs + 1) * sizeof *subs);
    if (!f || !k || !subs) { free(f); free(k); free(subs); return SP_ENOMEM; }
    for (size_t i = 0; i < n; i++) auction_put(&Q->auc[i], f + i * AUC_F64, k + i * AUC_I64);
    for (size_t i = 0; i < Q->n_subs; i++) {
        subs[2 * i] = Q->subs[i].who;
        subs[2 * i + 1] = Q->subs[i].kind;
    }
    int64_t c[8] = { (int64_t)Q->first_live, Q->pass_pending, (int64_t)Q->n_liq,
                     (int64_t)Q->n_kicked, (int64_t)Q->n_closed, (int64_t)Q->n_zero,
                     (int64_t)Q->n_skipped, Q->max_gen };
    double v[2] = { Q->dirt, Q->liquidated_value };
    sp_snap_put_array(w, 5);
    sp_snap_put_i64s(w, c, 8);
    sp_snap_put_f64s(w, v, 2);
    sp_snap_put_u64s(w, subs, 2 * Q->n_subs);
    sp_snap_put_f64s(w, f, n * AUC_F64);
    int rc = sp_snap_put_i64s(w, k, n * AUC_I64);
    free(f);
    free(k);
    free(subs);
    return rc;
}

int liq_restore(struct lending *L, struct sp_snapshot_reader *r)
{
    struct liq_state *Q = L->liq;
    if (!Q) return sp_snap_get_nil(r);
    int64_t c[8];
    double v[2];
    size_t m, nf, nk;
    sp_snap_get_array_n(r, 5);
    sp_snap_get_i64s(r, c, 8);
    sp_snap_get_f64s(r, v, 2);
    if (sp_snap_peek_count(r, &m)) return sp_snap_error(r);
    if (m % 2) return sp_snap_fail(r, "bad auction subscriber list");
    uint64_t *subs = malloc((m ? m : 1) * sizeof *subs);
    struct liq_sub *ns = realloc(Q->subs, (m / 2 ? m / 2 : 1) * sizeof *ns);
    if (ns) Q->subs = ns;
    if (!subs || !ns) { free(subs); return sp_snap_fail(r, "out of memory"); }
    if (sp_snap_get_u64s(r, subs, m)) { free(subs); return sp_snap_error(r); }
    Q->n_subs = 0;
    for (size_t i = 0; i < m / 2; i++) {
        if (!id_ok(L, (int64_t)subs[2 * i], false) || subs[2 * i + 1] > UINT16_MAX) {
            free(subs);
            return sp_snap_fail(r, "bad auction subscriber %zu", i);
        }
        Q->subs[Q->n_subs++] = (struct liq_sub){ (sp_id)subs[2 * i], (uint16_t)subs[2 * i + 1] };
    }
    free(subs);
    if (sp_snap_peek_count(r, &nf)) return sp_snap_error(r);
    if (nf % AUC_F64) return sp_snap_fail(r, "bad auction bin");
    size_t n = nf / AUC_F64;
    double *f = malloc((nf ? nf : 1) * sizeof *f);
    if (!f) return sp_snap_fail(r, "out of memory");
    if (sp_snap_get_f64s(r, f, nf) || sp_snap_peek_count(r, &nk)) { free(f); return sp_snap_error(r); }
    if (nk != n * AUC_I64) { free(f); return sp_snap_fail(r, "%zu auctions but %zu integers", n, nk); }
    int64_t *k = malloc((nk ? nk : 1) * sizeof *k);
    if (!k) { free(f); return sp_snap_fail(r, "out of memory"); }
    if (sp_snap_get_i64s(r, k, nk)) { free(f); free(k); return sp_snap_error(r); }
    if (n > Q->cap_auc) {
        size_t cap = Q->cap_auc ? Q->cap_auc : 16;
        while (cap < n) cap *= 2;
        struct liq_auction *p = realloc(Q->auc, cap * sizeof *p);
        if (!p) { free(f); free(k); return sp_snap_fail(r, "out of memory"); }
        Q->auc = p;
        Q->cap_auc = cap;
    }
    Q->n_auc = 0;
    for (size_t i = 0; i < n; i++) {
        if (auction_get(L, &Q->auc[i], f + i * AUC_F64, k + i * AUC_I64)) {
            free(f);
            free(k);
            return sp_snap_fail(r, "auction %zu: bad state", i + 1);
        }
        Q->n_auc = i + 1;
    }
    free(f);
    free(k);
    if (c[0] < 0 || (uint64_t)c[0] > n || c[1] < 0 || c[1] > 1 || c[2] < 0 || c[3] < 0 ||
        c[4] < 0 || c[5] < 0 || c[6] < 0 || c[7] < -1 || c[7] > 255 || (uint64_t)c[3] != n)
        return sp_snap_fail(r, "bad liquidation counters");
    for (size_t i = 0; i < (size_t)c[0]; i++)
        if (Q->auc[i].live) return sp_snap_fail(r, "live auction %zu below first_live", i + 1);
    /* A branch that switches the mechanism (--set ...liquidation.mechanism)
     * while auctions of the old one are live would strand them: the take,
     * bid and deal calls of one mechanism do not serve the other's. */
    size_t stranded = 0, first = 0;
    for (size_t i = (size_t)c[0]; i < n; i++)
        if (Q->auc[i].live && Q->auc[i].mech != Q->mech && !stranded++) first = i;
    if (stranded)
        return sp_snap_fail(r, "%zu live %s auction%s (the first: auction %zu) would be "
                            "stranded by switching the mechanism to %s: keep the mechanism, or "
                            "branch from a time with no live auction", stranded,
                            mechanism_names[Q->auc[first].mech], stranded > 1 ? "s" : "",
                            first + 1, mechanism_names[Q->mech]);
    Q->first_live = (size_t)c[0];
    Q->pass_pending = c[1] == 1;
    Q->n_liq = (uint64_t)c[2];
    Q->n_kicked = (uint64_t)c[3];
    Q->n_closed = (uint64_t)c[4];
    Q->n_zero = (uint64_t)c[5];
    Q->n_skipped = (uint64_t)c[6];
    Q->max_gen = (int)c[7];
    Q->dirt = v[0];
    Q->liquidated_value = v[1];
    return sp_snap_get_end(r);
}
