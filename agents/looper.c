/*
 * looper.c — the "looper" agent: a leveraged position built by recursive
 * borrowing on a lending protocol (DESIGN §2, "Agents"; FORMULAS.md,
 * "Recursive leverage"), watched and defended afterwards.
 *
 * Looping.  At `start` (plus a uniform draw within `start_spread`, so that
 * a population does not hit the venue in one instant) it deposits its
 * capital (collateral token) into its position on `protocol`, then repeats
 * one *round*: borrow the debt token until its debt is `safety` × its
 * borrowing power Σ c·p·(1−h)·LTV (an effective loan-to-value λ =
 * safety·LTV·(1−h)), swap what it borrowed into collateral on `venue` (a
 * real trade, cause "loop"), deposit it.  It stops after `loops` rounds, or
 * on reaching `target_leverage` in exposure
 *     E = collateral value / equity,  equity = collateral value − debt value
 * (both at the protocol's oracle prices), or when it can borrow no more
 * (caps, the pool's cash).  The round that reaches the target is sized on
 * the venue's quote (bisection) so that E lands on it after the slippage.
 *
 * Arithmetic.  With collateral == debt (ETH looped on ETH) there is no
 * venue and no trade: n rounds give E = (1 − λⁿ⁺¹)/(1 − λ) exactly
 * (FORMULAS.md).  Through a venue, round i pays slippage s_i (collateral
 * units at the oracle price), which is lost equity; the collateral falls
 * short of the frictionless path by Σ s_i·(1 − λ^(n−i))/(1 − λ) — each lost
 * unit would have been re-levered by the rounds still to come — while E,
 * on the smaller equity, ends *above* the frictionless value
 * (tests/test_looper.c checks these identities from /events/trades).  A
 * swap that would get less than (1 − max_slippage) of its oracle value
 * reverts; the loan is repaid and looping stops there (counted).  After
 * the loop its target is the exposure it reached, E_t.  For one collateral
 * and one debt asset HF is a function of E alone, HF = LT·(1−h)/(1 − 1/E),
 * so "back to the target leverage" and "back to the target HF" are one
 * thing; init refuses a member whose target HF is not above hf_low.

 * Defending.  Unless it is inattentive (drawn once per member with
 * probability `inattentive`: it loops, then never looks again), it reads its
 * HF every `watch_every`.  Out of the band (HF < hf_low, or HF > hf_high when
 * hf_high is set) it commits to act `reaction` later (drawn per member) and
 * re-checks then:
 *   - below hf_low: first adds margin — deposits `spare` collateral held
 *     back in its wallet, as much as brings E back to E_t — then, if that
 *     was not enough, deleverages: withdraws the collateral its borrowing
 *     power allows (sp_lending_withdraw_collateral refuses more), sells it
 *     for the debt token (cause "deleverage"), repays, and repeats; each
 *     round frees 1/LTV times the headroom of the last, and the last is
 *     sized on the venue's quote so that E lands back on E_t.  Without flash liquidity a position whose debt already exceeds
 *     its borrowing power (HF < LT/LTV) cannot withdraw anything: with no
 *     spare left it is *stuck* (counted) and waits for the liquidators;
 *   - above hf_high: loops up again to E_t.
 *
 * Money: `capital` and `spare` (collateral units, drawn per member) are
 * minted at init.  Every trade is recorded by its venue in /events/trades
 * with cause "loop" or "deleverage"; the position itself is the protocol's
 * (its /protocols output).  /summary, per population (one set of keys for
 * an item, the members summed by the last one): n_loops_<name> (rounds),
 * n_deleverages_<name> (deleveraging actions), n_margin_<name> (margin
 * additions), n_stuck_<name>, n_reverted_<name> (swaps refused by the
 * slippage guard), slippage_<name> (numeraire, at oracle prices), and
 * leverage_mean_<name> (mean final exposure of the members with positive
 * equity).
 *
 * Vault shares as collateral.  When `collateral` is a vault_share token
 * issued by a vault agent, the looper never mints the share (only the vault
 * mints or burns its shares, agents/vault.c): `capital` and `spare` are
 * minted in the vault's asset and deposited into the vault at `start`
 * (sp_vault_deposit) for shares, `venue` trades the vault's *asset* against
 * the debt token, a loop round buys the asset and deposits it into the
 * vault, and a deleverage round redeems shares (sp_vault_redeem, which may
 * make the vault unwind through its own venue) and sells the asset.  Quotes
 * convert at the vault's share price, the slippage guard prices the asset
 * at p_share / share price.  This is the second layer of a vault chain:
 * ETH borrowed against vault shares, looped back into the vault.
 *
 * Snapshot.  Its draws (capital, target, reaction, inattentive, start) and
 * everything init resolves come back from init with the same stream; the
 * payload is what changes while running: the spare still in its wallet,
 * the exposure it defends, whether it has looped and whether a reaction
 * (an EV_ACT event, restored with the queue) is pending, its counters and
 * its slippage.  No event handles: its events are untracked.
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
#include "lending.h"
#include "vault.h"

enum { EV_START = 1, EV_WATCH = 2, EV_ACT = 3 };

#define LOOP_TOL   1e-6     /* relative: close enough to the target exposure */
#define MAX_ROUNDS 64       /* rounds per loop-up or deleverage when no `loops` */

/* ---- config ---------------------------------------------------------------- */

struct looper_cfg {
    const char *protocol, *collateral, *debt, *venue;
    int64_t count;
    struct sp_dist capital, spare, target_leverage, reaction;
    int64_t loops;                /* 0: until the target */
    double safety, max_slippage;
    double hf_low, hf_high;       /* 0: off */
    double inattentive;
    sp_time start, start_spread, watch_every;
    bool has_target;              /* target_leverage was given */
};

static const char *const protocol_types[] = { "pool", "cdp", NULL };

/* The market item called `name`, or NULL. */
static const struct sp_module_cfg *find_item(const struct sp_module_cfg *items, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].name && !strcmp(items[i].name, name)) return &items[i];
    return NULL;
}

static const char *node_text(const struct sp_node *map, const char *key)
{
    const struct sp_node *n = map ? sp_node_get(map, key) : NULL;
    return n && n->value ? n->value : NULL;
}

static int looper_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct looper_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = SP_OK;
    if (sp_world_check_entity(ctx, "protocol", w->protocols, w->n_protocols, "protocol",
                              protocol_types))
        rc = SP_ECONFIG;
    int rt = sp_world_check_token(ctx, "collateral", -1);
    if (sp_world_check_token(ctx, "debt", -1)) rt = SP_ECONFIG;
    if (rt) rc = rt;
    bool same = !strcmp(c->collateral, c->debt);
    /* A vault share is bought through its vault: the venue trades its asset. */
    const char *traded = c->collateral;
    for (size_t i = 0; !rt && i < w->n_tokens; i++)
        if (w->tokens[i].name && !strcmp(w->tokens[i].name, c->collateral) &&
            w->tokens[i].kind == SP_TOKEN_VAULT_SHARE && w->tokens[i].underlying)
            traded = w->tokens[i].underlying;
    if (c->venue) {
        if (sp_world_check_entity(ctx, "venue", w->markets, w->n_markets, "venue", NULL)) {
            rc = SP_ECONFIG;
        } else if (!rt) {
            /* Every market type names its pair with `base` and `quote`. */
            const struct sp_module_cfg *m = find_item(w->markets, w->n_markets, c->venue);
            const char *b = m ? node_text(m->node, "base") : NULL;
            const char *q = m ? node_text(m->node, "quote") : NULL;
            if (same) {
                sp_diag_error(ctx->diag, sp_node_get(ctx->node, "venue"),
                              "collateral and debt are both %s: there is nothing to swap, "
                              "remove `venue`", c->debt);
                rc = SP_ECONFIG;
            } else if (b && q && !((!strcmp(b, traded) && !strcmp(q, c->debt)) ||
                                   (!strcmp(b, c->debt) && !strcmp(q, traded)))) {
                sp_diag_error(ctx->diag, sp_node_get(ctx->node, "venue"),
                              "venue '%s' trades %s/%s, not the looper's pair %s/%s "
                              "(collateral/debt)", c->venue, b, q, traded, c->debt);
                rc = SP_ECONFIG;
            }
        }
    } else if (!rt && !same) {
        sp_diag_error(ctx->diag, ctx->node, "collateral %s differs from debt %s: name a `venue` "
                      "that trades %s against %s", c->collateral, c->debt, c->collateral, c->debt);
        rc = SP_ECONFIG;
    }
    c->has_target = sp_node_get(ctx->node, "target_leverage") != NULL;
    if (!c->has_target && c->loops == 0) {
        sp_diag_error(ctx->diag, ctx->node, "a looper needs `target_leverage` or `loops` "
                      "(or both: it stops at whichever comes first)");
        rc = SP_ECONFIG;
    }
    if (sp_dist_check_nonneg(ctx, "capital", &c->capital)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "spare", &c->spare)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "reaction", &c->reaction)) rc = SP_ECONFIG;
    if (c->hf_high > 0 && c->hf_high <= c->hf_low) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "hf_high"),
                      "hf_high %g must be above hf_low %g", c->hf_high, c->hf_low);
        rc = SP_ECONFIG;
    }
    if (c->start >= w->horizon) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "start"),
                      "start is not before the horizon: it would never loop");
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field looper_fields[] = {
    { "protocol", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The lending protocol it borrows from (a `protocols` entry: pool or cdp).",
      offsetof(struct looper_cfg, protocol), NULL, 0 },
    { "collateral", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "Token it posts as collateral (its capital is in this token).",
      offsetof(struct looper_cfg, collateral), NULL, 0 },
    { "debt", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "Token it borrows (may equal `collateral`: then no venue, no swap).",
      offsetof(struct looper_cfg, debt), NULL, 0 },
    { "venue", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Market trading collateral against debt (either way round); required unless "
      "collateral == debt.", offsetof(struct looper_cfg, venue), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1e7, "1", "agents",
      "Population size: N > 1 makes NAME_0 .. NAME_{N-1}, each with its own draws.",
      offsetof(struct looper_cfg, count), NULL, 0 },
    { "capital", SP_T_DIST, SP_F_MIN, 0, 0, NULL, "collateral token",
      "Capital, minted at init and looped at `start`.",
      offsetof(struct looper_cfg, capital), NULL, 0 },
    { "spare", SP_T_DIST, SP_F_MIN, 0, 0, "0", "collateral token",
      "Collateral kept back in its wallet, deposited as margin before it deleverages.",
      offsetof(struct looper_cfg, spare), NULL, 0 },
    { "target_leverage", SP_T_DIST, SP_F_MIN_EXCL, 1, 0, NULL, "x",
      "Exposure to reach: collateral value / equity at the oracle prices.",
      offsetof(struct looper_cfg, target_leverage), NULL, 0 },
    { "loops", SP_T_INT, SP_F_MIN | SP_F_MAX, 0, 1000, "0", "rounds",
      "Most borrow-swap-deposit rounds (0: as many as the target needs, at most 64).",
      offsetof(struct looper_cfg, loops), NULL, 0 },
    { "safety", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "95%", "fraction",
      "Borrows until its debt is this fraction of its borrowing power.",
      offsetof(struct looper_cfg, safety), NULL, 0 },
    { "max_slippage", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "5%", "fraction",
      "A swap must get at least (1 − this) of its value at the oracle prices, or it reverts.",
      offsetof(struct looper_cfg, max_slippage), NULL, 0 },
    { "start", SP_T_DURATION, SP_F_MIN, 0, 0, "1m", "time",
      "When it loops (after the oracles have delivered; retried every watch_every until "
      "they have).", offsetof(struct looper_cfg, start), NULL, 0 },
    { "start_spread", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "Members of a population start at a uniform random time in [start, start + "
      "start_spread], so arbitrage can work between their trades.",
      offsetof(struct looper_cfg, start_spread), NULL, 0 },
    { "watch_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",
      "How often it reads its health factor.", offsetof(struct looper_cfg, watch_every), NULL, 0 },
    { "reaction", SP_T_DIST, SP_F_MIN, 0, 0, "0", "seconds",
      "Delay between seeing its HF out of the band and acting (re-checked then).",
      offsetof(struct looper_cfg, reaction), NULL, 0 },
    { "hf_low", SP_T_NUMBER, SP_F_MIN, 0, 0, "1.05", "1",
      "Adds margin / deleverages back to its target when HF falls below this (0: never).",
      offsetof(struct looper_cfg, hf_low), NULL, 0 },
    { "hf_high", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "1",
      "Loops up again to its target when HF rises above this (0: never).",
      offsetof(struct looper_cfg, hf_high), NULL, 0 },
    { "inattentive", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "0", "probability",
      "Chance that a member never watches its position after looping.",
      offsetof(struct looper_cfg, inattentive), NULL, 0 },
};

static const struct sp_schema looper_schema = {
    "agents[type: looper]",
    "Loops deposit → borrow → swap → deposit on a lending protocol to a target leverage or "
    "loop count, then watches its health factor: adds spare margin or deleverages below a "
    "band, optionally re-levers above it.",
    looper_fields, sizeof looper_fields / sizeof looper_fields[0], sizeof(struct looper_cfg),
    looper_check
};

/* ---- state ----------------------------------------------------------------- */

struct looper {
    const struct looper_cfg *cfg;
    sp_id id, proto, venue;
    sp_token coll, debt;
    sp_id vault;                  /* issuer of a vault-share collateral, else SP_ID_NONE */
    sp_token traded;              /* what the venue trades for debt: coll, or the vault's asset */
    enum sp_side buy_coll;        /* the side that pays debt for collateral */
    double ltv, lt, haircut;      /* of the collateral */
    double capital, spare_left, target, reaction_s;
    sp_time start;
    bool inattentive, looped, pending;
    double e_target;              /* exposure it defends (reached at loop-up) */
    sp_id pop_first;              /* first member of its population */
    size_t member;
    int64_t n_loops, n_delev, n_margin, n_stuck, n_reverted;
    double slippage;              /* numeraire, at oracle prices */
};

static size_t looper_count(const void *cfg)
{
    const struct looper_cfg *c = cfg;
    return (size_t)c->count;
}

/* Member index from the name NAME_k of a population member (0 otherwise). */
static size_t member_index(const char *name, size_t count)
{
    if (count <= 1) return 0;
    const char *u = strrchr(name, '_');
    return u ? (size_t)strtoull(u + 1, NULL, 10) : 0;
}

static int looper_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct looper *l = self;
    const struct looper_cfg *c = cfg;
    const char *me = sp_sim_entity_name(sim, id);
    l->cfg = c;
    l->id = id;
    l->member = member_index(me, (size_t)c->count);
    l->pop_first = id - (sp_id)l->member;
    l->proto = sp_sim_find(sim, c->protocol);
    if (l->proto == SP_ID_NONE || !sp_lending_is(sim, l->proto)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a lending protocol", me, c->protocol);
        return SP_EINVAL;
    }
    l->coll = sp_token_find(sim, c->collateral);
    l->debt = sp_token_find(sim, c->debt);
    struct sp_lending_asset ca, da;
    int ic = sp_lending_asset_index(sim, l->proto, l->coll);
    int id_ = sp_lending_asset_index(sim, l->proto, l->debt);
    if (ic < 0 || sp_lending_asset_info(sim, l->proto, (size_t)ic, &ca) || !ca.collateral) {
        sp_sim_fail(sim, SP_EINVAL, "%s: protocol '%s' does not take %s as collateral", me,
                    c->protocol, c->collateral);
        return SP_EINVAL;
    }
    /* A pool lends its borrowable assets; a cdp mints its stablecoin, which is
     * not one of its listed assets (a wrong `debt` fails the first borrow,
     * with the protocol's message). */
    bool cdp = !strcmp(sp_sim_entity_ops(sim, l->proto)->type, "cdp");
    if (!cdp &&
        (id_ < 0 || sp_lending_asset_info(sim, l->proto, (size_t)id_, &da) || !da.borrowable)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: protocol '%s' does not lend %s", me, c->protocol,
                    c->debt);
        return SP_EINVAL;
    }
    l->ltv = ca.ltv;
    l->lt = ca.lt;
    l->haircut = ca.haircut;
    l->venue = SP_ID_NONE;
    l->vault = SP_ID_NONE;
    l->traded = l->coll;
    if (sp_token_kind(sim, l->coll) == SP_TOKEN_VAULT_SHARE &&
        sp_vault_is(sim, sp_token_issuer(sim, l->coll))) {
        l->vault = sp_token_issuer(sim, l->coll);
        l->traded = sp_token_underlying(sim, l->coll);
    }
    if (c->venue) {
        l->venue = sp_sim_find(sim, c->venue);
        const struct sp_market_ops *m =
            l->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, l->venue);
        sp_token b = -1, q = -1;
        if (m) m->pair(sp_sim_entity_state(sim, l->venue), &b, &q);
        if (b == l->traded && q == l->debt) l->buy_coll = SP_BUY;
        else if (b == l->debt && q == l->traded) l->buy_coll = SP_SELL;
        else {
            sp_sim_fail(sim, SP_EINVAL, "%s: venue '%s' does not trade %s against %s", me,
                        c->venue, sp_token_name(sim, l->traded), c->debt);
            return SP_EINVAL;
        }
    }
    /* Draws, in a fixed order (a member's draws depend on nothing else). */
    struct sp_rng *rng = sp_sim_rng(sim, id);
    l->capital = sp_dist_draw(&c->capital, rng);
    l->spare_left = sp_dist_draw(&c->spare, rng);
    l->target = c->has_target ? sp_dist_draw(&c->target_leverage, rng) : INFINITY;
    l->reaction_s = sp_dist_draw(&c->reaction, rng);
    l->inattentive = sp_rng_uniform(rng) < c->inattentive;
    l->start = c->start + (c->start_spread > 0
                               ? (sp_time)sp_rng_below(rng, (uint64_t)c->start_spread + 1) : 0);
    if (!(l->capital >= 0 && isfinite(l->capital)) || !(l->spare_left >= 0) ||
        !isfinite(l->spare_left) || !(l->target > 1) || !(l->reaction_s >= 0) ||
        !isfinite(l->reaction_s)) {
        sp_sim_fail(sim, SP_EMODEL, "%s: drew capital %g, spare %g, target_leverage %g, "
                    "reaction %g (need capital, spare, reaction >= 0, target > 1)", me,
                    l->capital, l->spare_left, l->target, l->reaction_s);
        return SP_EMODEL;
    }
    /* Its exposure at the end of the loop is at most the least of the
     * target, (1 − λⁿ⁺¹)/(1 − λ) after n = `loops` rounds and the limit
     * 1/(1 − λ), λ = safety·LTV·(1−h); HF = LT·(1−h)/(1 − 1/E) falls with E.
     * If the HF there is not above hf_low it would deleverage at once. */
    double lam = c->safety * l->ltv * (1 - l->haircut);
    double e_max = 1 / (1 - lam);
    if (c->loops > 0) {
        double e_n = (1 - pow(lam, (double)c->loops + 1)) / (1 - lam);
        if (e_n < e_max) e_max = e_n;
    }
    if (l->target < e_max) e_max = l->target;
    double hf_end = l->lt * (1 - l->haircut) / (1 - 1 / e_max);
    if (c->hf_low > 0 && !(hf_end > c->hf_low)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: its target (leverage %g at safety %g, HF %.4g) is not "
                    "above hf_low %g: it would deleverage at once", me, l->target, c->safety,
                    hf_end, c->hf_low);
        return SP_EINVAL;
    }
    /* A vault share is not minted: its asset is, deposited into the vault at start. */
    int rc = sp_mint(sim, l->traded, id, l->capital + l->spare_left);
    if (rc) sp_sim_fail(sim, rc, "%s: cannot mint its capital: %s", me, sp_strerror(rc));
    return rc;
}

static int looper_start(void *self, struct sp_sim *sim)
{
    struct looper *l = self;
    if (l->start > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, l->start, SP_PRIO_AGENT, l->id, EV_START) ? SP_OK : SP_ENOMEM;
}

/* ---- mechanics ------------------------------------------------------------- */

static void fail(struct looper *l, struct sp_sim *sim, int rc, const char *what)
{
    sp_sim_fail(sim, rc, "%s: %s on '%s' failed: %s", sp_sim_entity_name(sim, l->id), what,
                l->cfg->protocol, sp_strerror(rc));
}

static double exposure(const struct sp_lending_position *p)
{
    double eq = p->collateral_value - p->debt_value;
    return eq > 0 ? p->collateral_value / eq : INFINITY;
}

/* Deposit what it holds of the collateral beyond its spare. */
static int deposit_free(struct looper *l, struct sp_sim *sim)
{
    double amt = sp_balance(sim, l->id, l->coll) - l->spare_left;
    if (!(amt > 0)) return SP_OK;
    int rc = sp_lending_deposit(sim, l->proto, l->id, l->coll, amt);
    if (rc) fail(l, sim, rc, "deposit");
    return rc;
}

/* Borrow *amt, or the least bit less if rounding puts it a hair past the
 * protocol's limit (*amt gets what was borrowed).  SP_ERANGE: not even that. */
static int borrow(struct looper *l, struct sp_sim *sim, double *amt)
{
    double a = *amt;
    int rc = sp_lending_borrow(sim, l->proto, l->id, l->debt, a);
    for (int k = 12; rc == SP_ERANGE && k >= 9; k--) {
        a = *amt * (1 - pow(10, -k));
        rc = sp_lending_borrow(sim, l->proto, l->id, l->debt, a);
    }
    if (!rc) *amt = a;
    return rc;
}

/* Collateral per unit of the traded token: 1, or 1 / share price for a
 * vault share (a deposit of a assets gets a / share price shares). */
static double coll_per_traded(struct looper *l, struct sp_sim *sim)
{
    return l->vault == SP_ID_NONE ? 1.0 : 1.0 / sp_vault_share_price(sim, l->vault);
}

/* The venue's quote for buying collateral with `amt` debt (out: collateral)
 * or selling `amt` collateral for debt (out: debt), through the vault when
 * the collateral is its share.  Nonzero: no quote. */
static int quote_coll(struct looper *l, struct sp_sim *sim, bool buy, double amt, double *out)
{
    const struct sp_market_ops *m = sp_market_ops_of(sim, l->venue);
    const void *vs = sp_sim_entity_state(sim, l->venue);
    double k = coll_per_traded(l, sim);
    if (!(k > 0) || !isfinite(k)) return SP_ERANGE;
    if (buy) {
        int rc = m->quote(vs, l->buy_coll, amt, out);
        if (!rc) *out *= k;
        return rc;
    }
    return m->quote(vs, l->buy_coll == SP_BUY ? SP_SELL : SP_BUY, amt / k, out);
}

/* A trade through a vault share: debt -> asset on the venue -> deposit into
 * the vault, or redeem shares -> asset -> debt on the venue.  Same contract
 * as swap(); on a refusal after a redemption the asset goes back into the
 * vault and the shares into the wallet (the caller re-deposits them). */
static int swap_vault(struct looper *l, struct sp_sim *sim, sp_token from, double amt, int cause,
                      double *out)
{
    const char *me = sp_sim_entity_name(sim, l->id);
    double p_c = sp_lending_price(sim, l->proto, l->coll);
    double p_d = sp_lending_price(sim, l->proto, l->debt);
    double sp = sp_vault_share_price(sim, l->vault);
    double p_a = p_c / sp;                       /* the asset, at the share's oracle price */
    if (!(p_a > 0) || !isfinite(p_a)) { l->n_reverted++; return SP_ERANGE; }
    struct sp_swap_result res;
    int rc;
    if (from == l->debt) {
        struct sp_swap req = { .agent = l->id, .side = l->buy_coll, .amount_in = amt,
                               .min_out = amt * p_d / p_a * (1 - l->cfg->max_slippage),
                               .cause = cause };
        rc = sp_market_swap(sim, l->venue, &req, &res);
        if (rc == SP_ERANGE) { l->n_reverted++; return rc; }
        if (rc) goto failed;
        double sh = 0;
        if ((rc = sp_vault_deposit(sim, l->vault, l->id, res.amount_out, &sh))) {
            sp_sim_fail(sim, rc, "%s: deposit into vault '%s' failed: %s", me,
                        sp_sim_entity_name(sim, l->vault), sp_strerror(rc));
            return rc;
        }
        l->slippage += amt * p_d - sh * p_c;
        *out = sh;
        return SP_OK;
    }
    /* Shares -> debt: check the venue first, so that a refusal moves nothing. */
    double fair = amt * p_c / p_d, q = 0;
    if (quote_coll(l, sim, false, amt, &q) || q < fair * (1 - l->cfg->max_slippage)) {
        l->n_reverted++;
        return SP_ERANGE;
    }
    double held = sp_balance(sim, l->id, l->coll), got = 0;
    if ((rc = sp_vault_redeem(sim, l->vault, l->id, amt, &got))) {
        sp_sim_fail(sim, rc, "%s: redeem from vault '%s' failed: %s", me,
                    sp_sim_entity_name(sim, l->vault), sp_strerror(rc));
        return rc;
    }
    double burned = held - sp_balance(sim, l->id, l->coll);
    if (!(got > 0)) { l->n_reverted++; return SP_ERANGE; }
    struct sp_swap req = { .agent = l->id, .side = l->buy_coll == SP_BUY ? SP_SELL : SP_BUY,
                           .amount_in = got,
                           .min_out = got * p_a / p_d * (1 - l->cfg->max_slippage),
                           .cause = cause };
    rc = sp_market_swap(sim, l->venue, &req, &res);
    if (rc == SP_ERANGE) {                           /* the redemption moved the venue */
        l->n_reverted++;
        rc = sp_vault_deposit(sim, l->vault, l->id, got, NULL);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: deposit into vault '%s' failed: %s", me,
                        sp_sim_entity_name(sim, l->vault), sp_strerror(rc));
            return rc;
        }
        return SP_ERANGE;
    }
    if (rc) goto failed;
    l->slippage += burned * p_c - res.amount_out * p_d;
    *out = res.amount_out;
    /* A vault that could not raise it all burned only part: re-post the rest. */
    return burned < amt ? deposit_free(l, sim) : SP_OK;
failed:
    sp_sim_fail(sim, rc, "%s: swap on '%s' failed: %s", me, l->cfg->venue, sp_strerror(rc));
    return rc;
}

/* Swap `amt` of `from` into the other token of the pair.  *out gets what
 * came back; SP_ERANGE when the slippage guard refused (nothing moved). */
static int swap(struct looper *l, struct sp_sim *sim, sp_token from, double amt, int cause,
                double *out)
{
    if (l->vault != SP_ID_NONE) return swap_vault(l, sim, from, amt, cause, out);
    sp_token to = from == l->coll ? l->debt : l->coll;
    double p_in = sp_lending_price(sim, l->proto, from), p_out = sp_lending_price(sim, l->proto, to);
    double fair = amt * p_in / p_out;
    enum sp_side side = from == l->debt ? l->buy_coll
                                        : (l->buy_coll == SP_BUY ? SP_SELL : SP_BUY);
    struct sp_swap req = { .agent = l->id, .side = side, .amount_in = amt,
                           .min_out = fair * (1 - l->cfg->max_slippage), .cause = cause };
    struct sp_swap_result res;
    int rc = sp_market_swap(sim, l->venue, &req, &res);
    if (rc == SP_ERANGE) { l->n_reverted++; return rc; }
    if (rc) {
        sp_sim_fail(sim, rc, "%s: swap on '%s' failed: %s", sp_sim_entity_name(sim, l->id),
                    l->cfg->venue, sp_strerror(rc));
        return rc;
    }
    l->slippage += res.amount_in * p_in - res.amount_out * p_out;
    *out = res.amount_out;
    return SP_OK;
}

/* The borrow (debt units, at most `cap`) that lands on exposure `target`
 * after the swap.  Slippage is lost equity, so the frictionless size
 * (target·equity − V)/p_d overshoots: with out(D) the venue's quote,
 *   f(D) = (1 − target)·(V + out(D)·p_c) + target·(debt + D·p_d)
 * is 0 on the target, < 0 below it (f(0) = V − target·equity), and rises
 * with D while the venue pays no more than the oracle price; bisection. */
static double size_to_target(struct looper *l, struct sp_sim *sim,
                             const struct sp_lending_position *pos, double target, double cap)
{
    double p_c = sp_lending_price(sim, l->proto, l->coll);
    double p_d = sp_lending_price(sim, l->proto, l->debt);
    double lo = 0, hi = cap;
    for (int i = 0; i < 100 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi), out;
        if (quote_coll(l, sim, true, mid, &out)) { hi = mid; continue; }
        double f = (1 - target) * (pos->collateral_value + out * p_c) +
                   target * (pos->debt_value + mid * p_d);
        if (f < 0) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* The collateral to withdraw and sell (at most `cap`) that lands on
 * exposure `e_t` once the proceeds repay debt: with out(w) the venue's
 * quote for selling w,
 *   g(w) = (1 − e_t)·(V − w·p_c) + e_t·(debt − out(w)·p_d)
 * is V − e_t·equity > 0 at w = 0 and 0 on the target; bisection.  Selling
 * above the oracle price lands on it too, where the frictionless size
 * would overshoot below. */
static double size_to_unwind(struct looper *l, struct sp_sim *sim,
                             const struct sp_lending_position *pos, double e_t, double cap)
{
    double p_c = sp_lending_price(sim, l->proto, l->coll);
    double p_d = sp_lending_price(sim, l->proto, l->debt);
    double lo = 0, hi = cap;
    for (int i = 0; i < 100 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi), out;
        if (quote_coll(l, sim, false, mid, &out)) { hi = mid; continue; }
        double g = (1 - e_t) * (pos->collateral_value - mid * p_c) +
                   e_t * (pos->debt_value - out * p_d);
        if (g > 0) lo = mid;
        else hi = mid;
    }
    return hi;
}

/* Loop up from wherever it is to e_target (or to the configured target /
 * loop count on the first time).  Returns 0 or a failure already reported. */
static int loop_up(struct looper *l, struct sp_sim *sim, double target, int64_t max_rounds)
{
    const struct looper_cfg *c = l->cfg;
    int rc = deposit_free(l, sim);
    double p_d = sp_lending_price(sim, l->proto, l->debt);
    for (int64_t r = 0; !rc && r < max_rounds; r++) {
        struct sp_lending_position pos;
        if ((rc = sp_lending_position(sim, l->proto, l->id, &pos))) { fail(l, sim, rc, "position"); break; }
        double eq = pos.collateral_value - pos.debt_value;
        if (!(eq > 0) || exposure(&pos) >= target * (1 - LOOP_TOL)) break;
        double want = (c->safety * pos.borrow_power - pos.debt_value) / p_d;
        double room = sp_lending_max_borrow(sim, l->proto, l->id, l->debt);
        if (room < want) want = room;
        double need = (target * eq - pos.collateral_value) / p_d;
        if (need < want) want = l->venue == SP_ID_NONE ? need : size_to_target(l, sim, &pos,
                                                                               target, want);
        if (!(want > LOOP_TOL * 1e-3 * eq / p_d)) break;        /* nothing worth a round */
        rc = borrow(l, sim, &want);
        if (rc == SP_ERANGE) { rc = SP_OK; break; }
        if (rc) { fail(l, sim, rc, "borrow"); break; }
        if (l->venue != SP_ID_NONE) {
            double got;
            rc = swap(l, sim, l->debt, want, SP_CAUSE_LOOP, &got);
            if (rc == SP_ERANGE) {                                /* refused: give it back */
                rc = sp_lending_repay(sim, l->proto, l->id, l->id, l->debt, want, NULL);
                if (rc) fail(l, sim, rc, "repay");
                break;
            }
            if (rc) break;
        }
        l->n_loops++;
        rc = deposit_free(l, sim);
    }
    return rc;
}

/* Margin first, then deleverage, back to e_target. */
static int defend(struct looper *l, struct sp_sim *sim)
{
    struct sp_lending_position pos;
    int rc = sp_lending_position(sim, l->proto, l->id, &pos);
    if (rc) { fail(l, sim, rc, "position"); return rc; }
    double p_c = sp_lending_price(sim, l->proto, l->coll);
    double e_t = l->e_target;
    if (l->spare_left > 0 && exposure(&pos) > e_t * (1 + LOOP_TOL)) {
        /* (V + A)/(V + A − D) = e_t  ⇒  A = e_t·D/(e_t − 1) − V */
        double a = (e_t * pos.debt_value / (e_t - 1) - pos.collateral_value) / p_c;
        if (a > l->spare_left) a = l->spare_left;
        if (a > 0) {
            if ((rc = sp_lending_deposit(sim, l->proto, l->id, l->coll, a))) {
                fail(l, sim, rc, "deposit");
                return rc;
            }
            l->spare_left -= a;
            l->n_margin++;
        }
    }
    bool acted = false;
    for (int r = 0; r < MAX_ROUNDS; r++) {
        if ((rc = sp_lending_position(sim, l->proto, l->id, &pos))) { fail(l, sim, rc, "position"); return rc; }
        double e = exposure(&pos);
        if (e <= e_t * (1 + LOOP_TOL)) break;
        /* Frictionless: (V − W)/(V − D) = e_t  ⇒  W = V − e_t·(V − D). */
        double w_need = isfinite(e) ? pos.collateral_value - e_t * (pos.collateral_value -
                                                                     pos.debt_value)
                                    : pos.collateral_value;
        double w_max = (pos.borrow_power - pos.debt_value) / ((1 - l->haircut) * l->ltv);
        double held = sp_lending_collateral(sim, l->proto, l->id, l->coll);
        double cap = w_max * (1 - 1e-9) / p_c;
        if (cap > held) cap = held;
        double w = w_need / p_c;
        if (w >= cap) w = cap;
        else if (l->venue != SP_ID_NONE && isfinite(e)) w = size_to_unwind(l, sim, &pos, e_t, cap);
        if (!(w > LOOP_TOL * 1e-3 * held)) {
            if (!acted) l->n_stuck++;
            break;
        }
        if ((rc = sp_lending_withdraw_collateral(sim, l->proto, l->id, l->coll, w))) {
            if (rc == SP_ERANGE) { if (!acted) l->n_stuck++; return SP_OK; }
            fail(l, sim, rc, "withdraw_collateral");
            return rc;
        }
        double got = w;
        if (l->venue != SP_ID_NONE) {
            rc = swap(l, sim, l->coll, w, SP_CAUSE_DELEVERAGE, &got);
            if (rc == SP_ERANGE) {                         /* refused: put it back */
                rc = l->vault != SP_ID_NONE ? deposit_free(l, sim)
                                            : sp_lending_deposit(sim, l->proto, l->id, l->coll, w);
                if (rc) fail(l, sim, rc, "deposit");
                break;
            }
            if (rc) return rc;
        }
        double owed = sp_lending_debt(sim, l->proto, l->id, l->debt);
        if ((rc = sp_lending_repay(sim, l->proto, l->id, l->id, l->debt,
                                   got < owed ? got : owed, NULL))) {
            fail(l, sim, rc, "repay");
            return rc;
        }
        acted = true;
    }
    if (acted) l->n_delev++;
    return SP_OK;
}

/* HF out of the band?  -1 below, +1 above, 0 inside (or no position). */
static int band(struct looper *l, struct sp_sim *sim)
{
    struct sp_lending_position pos;
    if (sp_lending_position(sim, l->proto, l->id, &pos)) return 0;
    if (!(pos.debt_value > 0)) return 0;
    if (l->cfg->hf_low > 0 && pos.hf < l->cfg->hf_low) return -1;
    if (l->cfg->hf_high > 0 && pos.hf > l->cfg->hf_high) return 1;
    return 0;
}

static bool prices_ready(struct looper *l, struct sp_sim *sim)
{
    return isfinite(sp_lending_price(sim, l->proto, l->coll)) &&
           isfinite(sp_lending_price(sim, l->proto, l->debt));
}

static void looper_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct looper *l = self;
    const struct looper_cfg *c = l->cfg;
    sp_time next = ev->t + c->watch_every;
    switch (ev->kind) {
    case EV_START: {
        if (!prices_ready(l, sim)) {          /* the oracles have not delivered yet */
            if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
            return;
        }
        if (l->vault != SP_ID_NONE && !l->looped) {   /* buy its shares from the vault */
            double a = sp_balance(sim, l->id, l->traded), sh = 0;
            int rc = a > 0 ? sp_vault_deposit(sim, l->vault, l->id, a, &sh) : SP_OK;
            if (rc) {
                sp_sim_fail(sim, rc, "%s: deposit into vault '%s' failed: %s",
                            sp_sim_entity_name(sim, l->id), sp_sim_entity_name(sim, l->vault),
                            sp_strerror(rc));
                return;
            }
            l->spare_left = a > 0 ? sh * l->spare_left / a : 0;
        }
        if (loop_up(l, sim, l->target, c->loops > 0 ? c->loops : MAX_ROUNDS)) return;
        struct sp_lending_position pos;
        if (sp_lending_position(sim, l->proto, l->id, &pos) == SP_OK) l->e_target = exposure(&pos);
        l->looped = true;
        if (!l->inattentive && l->e_target > 1 && next <= sp_sim_horizon(sim)) {
            ev->kind = EV_WATCH;
            sp_sim_again(sim, ev, next);
        }
        return;
    }
    case EV_WATCH:
        if (!l->pending && band(l, sim) != 0) {
            sp_time at = ev->t + (sp_time)llround(l->reaction_s * (double)SP_SEC);
            if (at == ev->t) {
                if (band(l, sim) < 0) defend(l, sim);
                else loop_up(l, sim, l->e_target, MAX_ROUNDS);
            } else if (at <= sp_sim_horizon(sim)) {
                if (!sp_sim_schedule(sim, at, SP_PRIO_AGENT, l->id, EV_ACT)) {
                    sp_sim_fail(sim, SP_ENOMEM, "out of memory");
                    return;
                }
                l->pending = true;
            }
        }
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
        return;
    case EV_ACT: {
        l->pending = false;
        int b = band(l, sim);                 /* re-check: the HF may be back */
        if (b < 0) defend(l, sim);
        else if (b > 0) loop_up(l, sim, l->e_target, MAX_ROUNDS);
        return;
    }
    }
}

/* Population totals, written by the last member. */
static void looper_finish(void *self, struct sp_sim *sim)
{
    struct looper *l = self;
    const struct looper_cfg *c = l->cfg;
    if (l->member + 1 != (size_t)c->count) return;
    int64_t loops = 0, delev = 0, margin = 0, stuck = 0, reverted = 0, n_lev = 0;
    double slip = 0, lev = 0;
    for (size_t k = 0; k < (size_t)c->count; k++) {
        const struct looper *m = sp_sim_entity_state(sim, l->pop_first + (sp_id)k);
        loops += m->n_loops;
        delev += m->n_delev;
        margin += m->n_margin;
        stuck += m->n_stuck;
        reverted += m->n_reverted;
        slip += m->slippage;
        struct sp_lending_position pos;
        if (sp_lending_position(sim, m->proto, m->id, &pos) == SP_OK && isfinite(exposure(&pos)) &&
            pos.collateral_value > 0) {
            lev += exposure(&pos);
            n_lev++;
        }
    }
    char pop[200], key[300];
    snprintf(pop, sizeof pop, "%s", sp_sim_entity_name(sim, l->id));
    if (c->count > 1) { char *u = strrchr(pop, '_'); if (u) *u = 0; }
    struct { const char *k; double v; } out[] = {
        { "n_loops", (double)loops }, { "n_deleverages", (double)delev },
        { "n_margin", (double)margin }, { "n_stuck", (double)stuck },
        { "n_reverted", (double)reverted }, { "slippage", slip },
        { "leverage_mean", n_lev ? lev / (double)n_lev : NAN },
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        snprintf(key, sizeof key, "%s_%s", out[i].k, pop);
        sp_sim_summary(sim, key, out[i].v);
    }
}

/* ---- snapshot --------------------------------------------------------------- */

static int looper_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct looper *l = self;
    sp_snap_put_array(w, 10);
    sp_snap_put_f64(w, l->spare_left);
    sp_snap_put_f64(w, l->e_target);
    sp_snap_put_bool(w, l->looped);
    sp_snap_put_bool(w, l->pending);
    sp_snap_put_i64(w, l->n_loops);
    sp_snap_put_i64(w, l->n_delev);
    sp_snap_put_i64(w, l->n_margin);
    sp_snap_put_i64(w, l->n_stuck);
    sp_snap_put_i64(w, l->n_reverted);
    return sp_snap_put_f64(w, l->slippage);
}

static int looper_restore(void *self, struct sp_snapshot_reader *r)
{
    struct looper *l = self;
    double spare = 0, e_target = 0, slippage = 0;
    bool looped = false, pending = false;
    int64_t n[5] = { 0 };
    sp_snap_get_array_n(r, 10);
    sp_snap_get_f64(r, &spare);
    sp_snap_get_f64(r, &e_target);
    sp_snap_get_bool(r, &looped);
    sp_snap_get_bool(r, &pending);
    for (size_t i = 0; i < 5; i++) sp_snap_get_i64(r, &n[i]);
    sp_snap_get_f64(r, &slippage);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    if (!(spare >= 0) || !isfinite(spare))
        return sp_snap_fail(r, "spare %g is not a finite amount >= 0", spare);
    for (size_t i = 0; i < 5; i++)
        if (n[i] < 0) return sp_snap_fail(r, "counter %zu is negative", i);
    l->spare_left = spare;
    l->e_target = e_target;
    l->looped = looped;
    l->pending = pending;
    l->n_loops = n[0];
    l->n_delev = n[1];
    l->n_margin = n[2];
    l->n_stuck = n[3];
    l->n_reverted = n[4];
    l->slippage = slippage;
    return SP_OK;
}

const struct sp_module_ops sp_agent_looper_ops = {
    .kind = "agent", .type = "looper",
    .summary = "loops deposit-borrow-swap on a lending protocol to a target leverage, then "
               "defends its health factor (margin, deleverage)",
    .schema = &looper_schema, .state_size = sizeof(struct looper),
    .count = looper_count, .init = looper_init, .start = looper_start,
    .on_event = looper_on_event, .finish = looper_finish,
    .snapshot = looper_snapshot, .restore = looper_restore,
};
