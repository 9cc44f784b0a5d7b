/*
 * vault.c — the "vault" agent: an ERC-4626 yield vault over one `asset`
 * token (e.g. stETH) that issues a vault_share token and runs a recursive
 * loop on a lending protocol — collateral = asset, borrow `debt` (e.g. ETH),
 * swap debt → asset on `venue`, deposit, to a target leverage.  Its shares
 * can be collateral in another protocol: the second layer of the stack.
 *
 * Books.  The vault's own ledger account holds its idle asset (deposits not
 * yet put to work, proceeds of unwinding) and, transiently, debt tokens
 * (borrowed and not yet swapped, or bought beyond the debt when unwinding);
 * the protocol holds its collateral C (asset units) against debt D (debt
 * units).  NAV, in asset units, at the lending protocol's oracle prices
 * (sp_lending_price; pa for the asset, pd for the debt token):
 *
 *   NAV = C + idle_asset + (idle_debt − D) · pd / pa
 *
 * The protocol's prices, not the venue's, because they are what the
 * protocol values the position at (its HF, its liquidations): the vault
 * cannot mark itself up by trading against its own venue, and a second
 * protocol that takes the shares sees one consistent value.  Without debt
 * or idle debt tokens no price is needed; with them and no oracle price yet
 * NAV is NAN (the share's rate then stays at its last finite value).
 *
 *   share price = NAV / shares (asset per share; 1 before the first deposit)
 *   leverage    = C / NAV     (exposure; 0 with no collateral)
 *
 * The share token's rate (sp_token_set_rate_fn) is the share price, so its
 * fundamental value is price · value(asset); every operation that changes
 * NAV or the supply calls sp_token_values_changed.  Invariant: only the
 * vault mints or burns its shares.
 *
 * Deposits (sp_vault_deposit): shares = assets · supply / NAV, 1:1 for the
 * first.  The assets stay idle until the next keeper tick — deposits cost
 * depositors no slippage, and the price of existing shares does not move.
 *
 * Keeper (every `rebalance_every` from t = 0): first puts idle asset into
 * the protocol as collateral (a ledger move, no trade), repays debt with any
 * idle debt tokens; then, if leverage is outside [target − band, target +
 * band]:
 *   - below: loop — borrow (never beyond `safety` × the LTV borrowing power:
 *     debt value <= safety · Σ c·p·(1−h)·LTV), swap debt → asset, deposit;
 *     repeat until the net debt reaches (target − 1) · NAV.  Cause "loop".
 *   - above: unwind — withdraw collateral within borrowing power, sell it
 *     for debt, repay; repeat until the debt is (target − 1) · NAV.  Cause
 *     "deleverage".
 * NAV is re-read at each round, so the slippage paid is reflected in the
 * target.  A target above 1 / (1 − safety · LTV·(1 − haircut)) is
 * unreachable and rejected at init.
 *
 * Redemptions (sp_vault_redeem): owed = shares · NAV / supply with NAV taken
 * before unwinding, paid from idle asset when there is enough.  Otherwise
 * the vault keeps the leverage of its invested part, L = C / (NAV − idle),
 * for those who stay: it unwinds by the same withdraw/sell/repay rounds
 * (cause "redemption") to debt (L − 1) · (NAV − owed), NAV re-read each
 * round, then withdraws the rest of the payout as collateral.  The
 * slippage lowers NAV for those who stay (a run's first movers are paid in
 * full); their leverage is unchanged.  Collateral is released only as far
 * as that leverage stays at most L — payout p <= (L·NAV − C − idle)/(L − 1)
 * — so when the venue stalls the unwind (slippage limit) the vault pays
 * what that allows and burns only the matching fraction of the shares; the
 * rest stays with the holder (the shortfall sums in /summary unpaid_<name>).
 * It never levers up the holders who stay to pay the ones who leave.
 *
 * No flash loans: the vault unwinds only by withdrawing within its
 * borrowing power, as the strategy's protocol allows.  Once a fall in the
 * asset has pushed its debt above the LTV borrowing power it cannot unwind
 * at all (its keeper and its redemptions stall) until the price comes back
 * or the position is liquidated: the fragile state a cascade runs through.
 *
 * Slippage.  Every swap is priced against the oracle: min_out = amount ·
 * p_in / p_out · (1 − max_slippage); a larger swap is halved until it
 * passes (quoted first, so a refused swap never reaches the venue), else
 * skipped.  The slippage paid, in asset units at oracle prices (fees
 * included; negative when the venue paid better than the oracle), sums in
 * /summary slippage_<name>.
 *
 * Output: /vaults/<name> sampled every output.sample_every (t, nav, shares,
 * share_price, leverage, collateral, debt, idle), and /summary
 * rebalances_<name>, slippage_<name>, redemptions_<name>, deposits_<name>,
 * unpaid_<name>, min_share_price_<name>, final_share_price_<name>.
 *
 * Snapshot.  Its books are not its own state: collateral and debt are the
 * protocol's (restored by it), idle asset, idle debt and the share supply
 * the ledger's (restored by the engine), and its keeper and sample ticks are
 * queued events.  Redemptions complete inside the call, so none is ever in
 * flight.  The payload is the rest of what changes: the last finite share
 * price (the share token's rate when NAV is unpriced), the lowest share
 * price seen, the slippage and unpaid sums and the three counters.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "vault.h"

enum { EV_REBALANCE = 1, EV_SAMPLE = 2 };

#define VAULT_ROUNDS 200          /* rounds of a loop or an unwind */
#define VAULT_HALVINGS 30         /* a swap is halved at most this often */
#define VAULT_TOL 1e-9            /* relative: amounts below this are done */

/* ---- config ---------------------------------------------------------------- */

struct vault_cfg {
    const char *asset, *share, *protocol, *debt, *venue;
    double target_leverage, band;
    sp_time rebalance_every;
    double safety, max_slippage;
    double seed_capital;
};

static const char *const venue_types[] = { "cpmm", "stableswap", "lob", NULL };

static const struct sp_token_cfg *token_cfg(const struct sp_world_cfg *w, const char *name)
{
    for (size_t i = 0; name && i < w->n_tokens; i++)
        if (w->tokens[i].name && !strcmp(w->tokens[i].name, name)) return &w->tokens[i];
    return NULL;
}

static int vault_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct vault_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = SP_OK;
    if (sp_world_check_entity(ctx, "protocol", w->protocols, w->n_protocols, "protocol", NULL))
        rc = SP_ECONFIG;
    if (sp_world_check_entity(ctx, "venue", w->markets, w->n_markets, "venue", venue_types))
        rc = SP_ECONFIG;
    if (sp_world_check_token(ctx, "debt", -1)) rc = SP_ECONFIG;
    if (c->asset && sp_world_check_token(ctx, "asset", -1)) rc = SP_ECONFIG;
    if (sp_world_check_token(ctx, "share", SP_TOKEN_VAULT_SHARE)) return SP_ECONFIG;
    /* The share must be this vault's: issued by it, over its asset. */
    const struct sp_node *nm = sp_node_get(ctx->node, "name");
    const char *me = nm && nm->value ? nm->value : "agent_vault";
    const struct sp_token_cfg *t = token_cfg(w, c->share);
    if (t && (!t->issuer || strcmp(t->issuer, me))) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "share"),
                      "token '%s' is issued by '%s', not by this vault ('%s'): set its "
                      "`issuer: %s`", c->share, t->issuer ? t->issuer : "(none)", me, me);
        rc = SP_ECONFIG;
    }
    const char *asset = c->asset ? c->asset : (t ? t->underlying : NULL);
    if (t && c->asset && t->underlying && strcmp(t->underlying, c->asset)) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "asset"),
                      "the share token '%s' has underlying '%s', but the vault's asset is "
                      "'%s'", c->share, t->underlying, c->asset);
        rc = SP_ECONFIG;
    }
    if (!asset) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "share"),
                      "the share token '%s' names no underlying: give the vault an `asset`",
                      c->share);
        rc = SP_ECONFIG;
    } else if (c->debt && !strcmp(asset, c->debt)) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "debt"),
                      "the debt token must differ from the vault's asset '%s'", asset);
        rc = SP_ECONFIG;
    }
    if (c->target_leverage > 1 && c->band >= c->target_leverage) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "band"),
                      "band %g is not below target_leverage %g: the vault would never loop",
                      c->band, c->target_leverage);
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field vault_fields[] = {
    { "share", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The vault's share token: a `tokens` entry of kind vault_share whose issuer is this "
      "vault and whose underlying is its asset.",
      offsetof(struct vault_cfg, share), NULL, 0 },
    { "asset", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The token deposited and redeemed (ERC-4626 asset), also the loop's collateral; "
      "default the share token's underlying.",
      offsetof(struct vault_cfg, asset), NULL, 0 },
    { "protocol", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The lending protocol of the strategy (a `protocols` entry) where the asset is "
      "collateral and the debt token is borrowed.",
      offsetof(struct vault_cfg, protocol), NULL, 0 },
    { "debt", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The token borrowed against the asset and swapped into it (e.g. ETH for a stETH loop).",
      offsetof(struct vault_cfg, debt), NULL, 0 },
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The market (cpmm, stableswap or lob) of the asset/debt pair where it loops and unwinds.",
      offsetof(struct vault_cfg, venue), NULL, 0 },
    { "target_leverage", SP_T_NUMBER, SP_F_MIN, 1, 0, "3", "1",
      "Target exposure: collateral value / NAV (1 = no borrowing).",
      offsetof(struct vault_cfg, target_leverage), NULL, 0 },
    { "band", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "0.25", "1",
      "Rebalance when leverage leaves [target − band, target + band].",
      offsetof(struct vault_cfg, band), NULL, 0 },
    { "rebalance_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "Keeper cadence: how often it checks its leverage (from t = 0) and puts idle "
      "deposits to work.",
      offsetof(struct vault_cfg, rebalance_every), NULL, 0 },
    { "safety", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "90%", "fraction",
      "Never borrow beyond this fraction of the LTV borrowing power.",
      offsetof(struct vault_cfg, safety), NULL, 0 },
    { "max_slippage", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "1%", "fraction",
      "Largest shortfall of a swap's proceeds from their value at the protocol's oracle "
      "prices; larger swaps are halved until they pass.",
      offsetof(struct vault_cfg, max_slippage), NULL, 0 },
    { "seed_capital", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "asset",
      "Asset minted to the vault at init as a first deposit (the vault holds the shares), "
      "so a scenario can start with a running vault.",
      offsetof(struct vault_cfg, seed_capital), NULL, 0 },
};

static const struct sp_schema vault_schema = {
    "agents[type: vault]",
    "ERC-4626 yield vault: takes deposits of an asset, issues shares (NAV / shares), loops "
    "the asset on a lending protocol to a target leverage, rebalances on a keeper cadence "
    "and deleverages through a venue to serve redemptions.",
    vault_fields, sizeof vault_fields / sizeof vault_fields[0], sizeof(struct vault_cfg),
    vault_check
};

/* ---- state ----------------------------------------------------------------- */

struct vault {
    const struct vault_cfg *cfg;
    sp_id id, proto, venue;
    sp_token asset, share, debt;
    bool asset_is_base;           /* the venue's base token is the asset */
    double ltv_eff;               /* LTV · (1 − haircut) of the asset */
    double last_price;            /* last finite share price (for the token rate) */
    double min_price;
    double slippage, unpaid;
    int64_t n_rebalances, n_redemptions, n_deposits;
    sp_time sample_every;
    struct sp_rec_table *tab;
};

/* What the vault holds now. */
struct books {
    double collateral, debt;      /* in the protocol: asset units, debt units */
    double idle, idle_debt;       /* its wallet */
    double pa, pd;                /* the protocol's prices (may be NAN) */
    double nav;                   /* asset units; NAN without the prices it needs */
};

extern const struct sp_module_ops sp_agent_vault_ops;

static struct vault *vault_of(const struct sp_sim *sim, sp_id id)
{
    if (id == SP_ID_NONE || id >= sp_sim_entity_count(sim)) return NULL;
    if (sp_sim_entity_ops(sim, id) != &sp_agent_vault_ops) return NULL;
    return sp_sim_entity_state((struct sp_sim *)sim, id);
}

int sp_vault_is(const struct sp_sim *sim, sp_id id) { return vault_of(sim, id) != NULL; }

static void look(struct vault *v, struct sp_sim *sim, struct books *b)
{
    b->collateral = sp_lending_collateral(sim, v->proto, v->id, v->asset);
    b->debt = sp_lending_debt(sim, v->proto, v->id, v->debt);
    b->idle = sp_balance(sim, v->id, v->asset);
    b->idle_debt = sp_balance(sim, v->id, v->debt);
    b->pa = sp_lending_price(sim, v->proto, v->asset);
    b->pd = sp_lending_price(sim, v->proto, v->debt);
    double net_debt = b->debt - b->idle_debt;
    b->nav = b->collateral + b->idle;
    if (net_debt != 0) b->nav -= net_debt * b->pd / b->pa;
}

static bool priced(const struct books *b) { return b->pa > 0 && b->pd > 0 && isfinite(b->nav); }

static double share_price(struct vault *v, struct sp_sim *sim, const struct books *b)
{
    double supply = sp_supply(sim, v->share);
    return supply > 0 ? b->nav / supply : 1.0;
}

static double leverage(const struct books *b)
{
    if (!(b->collateral > 0)) return 0.0;
    return b->nav > 0 ? b->collateral / b->nav : INFINITY;
}

/* The share token's rate: asset per share, finite and >= 0. */
static double rate_fn(void *self, struct sp_sim *sim, sp_token tok)
{
    struct vault *v = self;
    (void)tok;
    struct books b;
    look(v, sim, &b);
    double p = share_price(v, sim, &b);
    if (isfinite(p)) v->last_price = p > 0 ? p : 0.0;
    return v->last_price;
}

/* Something changed NAV or the supply within the current event. */
static void changed(struct vault *v, struct sp_sim *sim)
{
    sp_token_values_changed(sim);
    struct books b;
    look(v, sim, &b);
    double p = share_price(v, sim, &b);
    if (isfinite(p)) {
        v->last_price = p > 0 ? p : 0.0;
        if (p < v->min_price) v->min_price = p;
    }
}

/* ---- trading and the protocol --------------------------------------------- */

/* A lending call failed: a limit (SP_ERANGE) stops the round quietly; anything
 * else is a bug in the vault's arithmetic or the world, and fails the run. */
static int lend_rc(struct vault *v, struct sp_sim *sim, int rc, const char *what, double amount)
{
    if (rc && rc != SP_ERANGE)
        sp_sim_fail(sim, rc, "%s: %s %.17g %s on %s failed: %s", sp_sim_entity_name(sim, v->id),
                    what, amount, !strcmp(what, "borrow") || !strcmp(what, "repay") ?
                    sp_token_name(sim, v->debt) : sp_token_name(sim, v->asset),
                    v->cfg->protocol, sp_strerror(rc));
    return rc;
}

/* The largest of amount, amount/2, amount/4, ... of `from` whose quoted
 * proceeds are within max_slippage of their value at the oracle (0 if none). */
static double sizable(struct vault *v, struct sp_sim *sim, const struct books *b, sp_token from,
                      double amount)
{
    if (!(amount > 0) || !priced(b)) return 0;
    bool from_asset = from == v->asset;
    double p_in = from_asset ? b->pa : b->pd, p_out = from_asset ? b->pd : b->pa;
    enum sp_side side = (from_asset == v->asset_is_base) ? SP_SELL : SP_BUY;
    const struct sp_market_ops *m = sp_market_ops_of(sim, v->venue);
    const void *st = sp_sim_entity_state(sim, v->venue);
    double keep = 1.0 - v->cfg->max_slippage;
    for (int k = 0; k < VAULT_HALVINGS; k++, amount *= 0.5) {
        double q = 0;
        if (!m->quote(st, side, amount, &q) && q >= amount * p_in / p_out * keep) return amount;
    }
    return 0;
}

/* Swap `amount` of `from` (the asset or the debt token) on the venue, halved
 * until within max_slippage of the oracle.  Returns what was paid (0 if no
 * size passed); *out gets what was received. */
static double swap(struct vault *v, struct sp_sim *sim, const struct books *b, sp_token from,
                   double amount, int cause, double *out)
{
    *out = 0;
    if (!(amount > 0) || !priced(b)) return 0;
    bool from_asset = from == v->asset;
    double p_in = from_asset ? b->pa : b->pd, p_out = from_asset ? b->pd : b->pa;
    enum sp_side side = (from_asset == v->asset_is_base) ? SP_SELL : SP_BUY;
    const struct sp_market_ops *m = sp_market_ops_of(sim, v->venue);
    const void *st = sp_sim_entity_state(sim, v->venue);
    double keep = 1.0 - v->cfg->max_slippage;
    for (int k = 0; k < VAULT_HALVINGS; k++, amount *= 0.5) {
        double q = 0;
        if (m->quote(st, side, amount, &q) || !(q >= amount * p_in / p_out * keep)) continue;
        struct sp_swap req = { .agent = v->id, .side = side, .amount_in = amount,
                               .min_out = amount * p_in / p_out * keep, .cause = cause };
        struct sp_swap_result res;
        int rc = sp_market_swap(sim, v->venue, &req, &res);
        if (rc == SP_ERANGE) continue;
        if (rc) {
            sp_sim_fail(sim, rc, "%s: swap on %s failed: %s", sp_sim_entity_name(sim, v->id),
                        v->cfg->venue, sp_strerror(rc));
            return 0;
        }
        *out = res.amount_out;
        v->slippage += (res.amount_in * p_in - res.amount_out * p_out) / b->pa;
        return res.amount_in;
    }
    return 0;
}

/* Collateral it may withdraw now and stay within its borrowing power. */
static double withdrawable(struct vault *v, struct sp_sim *sim, const struct books *b)
{
    if (!(b->collateral > 0)) return 0;
    if (!(b->debt > 0)) return b->collateral;
    struct sp_lending_position pos;
    if (sp_lending_position(sim, v->proto, v->id, &pos) || !(b->pa > 0)) return 0;
    double w = (pos.borrow_power - pos.debt_value) / (b->pa * v->ltv_eff) * (1 - 1e-9);
    return w > 0 ? fmin(w, b->collateral) : 0;
}

/* Debt it may still borrow within safety × borrowing power (and the
 * protocol's own limits). */
static double borrowable(struct vault *v, struct sp_sim *sim, const struct books *b)
{
    struct sp_lending_position pos;
    if (sp_lending_position(sim, v->proto, v->id, &pos) || !(b->pd > 0)) return 0;
    double room = (v->cfg->safety * pos.borrow_power - pos.debt_value) / b->pd * (1 - 1e-9);
    double cap = sp_lending_max_borrow(sim, v->proto, v->id, v->debt);
    if (cap < room) room = cap;
    return room > 0 ? room : 0;
}

static int deposit_idle(struct vault *v, struct sp_sim *sim)
{
    double idle = sp_balance(sim, v->id, v->asset);
    if (!(idle > 0)) return SP_OK;
    return lend_rc(v, sim, sp_lending_deposit(sim, v->proto, v->id, v->asset, idle),
                   "deposit", idle);
}

static int repay_idle_debt(struct vault *v, struct sp_sim *sim)
{
    double have = sp_balance(sim, v->id, v->debt);
    double owe = sp_lending_debt(sim, v->proto, v->id, v->debt);
    double amt = fmin(have, owe);
    if (!(amt > 0)) return SP_OK;
    return lend_rc(v, sim, sp_lending_repay(sim, v->proto, v->id, v->id, v->debt, amt, NULL),
                   "repay", amt);
}

/* Loop up until the net debt is (target − 1) · NAV.  Returns rounds traded. */
static int lever_up(struct vault *v, struct sp_sim *sim, double target)
{
    int traded = 0;
    for (int r = 0; r < VAULT_ROUNDS; r++) {
        if (deposit_idle(v, sim)) break;
        struct books b;
        look(v, sim, &b);
        if (!priced(&b) || !(b.nav > 0)) break;
        double want = (target - 1) * b.nav * b.pa / b.pd;      /* net debt, debt units */
        double need = want - (b.debt - b.idle_debt);
        if (!(need > VAULT_TOL * b.nav * b.pa / b.pd)) break;
        /* Borrow only what the venue takes within the slippage limit now. */
        double s = sizable(v, sim, &b, v->debt, fmin(need, b.idle_debt + borrowable(v, sim, &b)));
        if (!(s > VAULT_TOL * need)) break;     /* at the safety limit, or the venue is away */
        if (s > b.idle_debt) {
            double borrow = s - b.idle_debt;
            int rc = sp_lending_borrow(sim, v->proto, v->id, v->debt, borrow);
            if (lend_rc(v, sim, rc, "borrow", borrow)) break;
        }
        look(v, sim, &b);
        double got;
        if (swap(v, sim, &b, v->debt, fmin(s, b.idle_debt), SP_CAUSE_LOOP, &got) <= 0) break;
        traded++;
    }
    deposit_idle(v, sim);
    return traded;
}

/* Unwind — withdraw collateral, sell it for the debt token, repay — until
 * the debt is (lev − 1) · (NAV − nav_off), NAV re-read each round so the
 * slippage paid counts.  Returns rounds traded. */
static int unwind(struct vault *v, struct sp_sim *sim, double lev, double nav_off, int cause)
{
    int traded = 0;
    repay_idle_debt(v, sim);
    for (int r = 0; r < VAULT_ROUNDS; r++) {
        struct books b;
        look(v, sim, &b);
        if (!priced(&b)) break;
        double target = (lev - 1) * (b.nav - nav_off) * b.pa / b.pd;
        if (target < 0) target = 0;
        double excess = b.debt - target;                        /* debt units */
        if (!(excess > VAULT_TOL * b.debt)) break;
        /* Asset to sell for `excess` debt, corrected by a quote for the
         * venue's price and fee. */
        double a = excess * b.pd / b.pa;
        const struct sp_market_ops *m = sp_market_ops_of(sim, v->venue);
        enum sp_side side = v->asset_is_base ? SP_SELL : SP_BUY;
        double q = 0;
        if (!m->quote(sp_sim_entity_state(sim, v->venue), side, a, &q) && q > 0)
            a = fmin(a * excess / q, a / (1 - v->cfg->max_slippage));
        /* Withdraw only what the venue takes within the slippage limit. */
        double s = sizable(v, sim, &b, v->asset, fmin(a, b.idle + withdrawable(v, sim, &b)));
        if (!(s > VAULT_TOL * a)) break;                        /* stuck, or the venue is away */
        if (b.idle < s) {
            double w = s - b.idle;
            int rc = sp_lending_withdraw_collateral(sim, v->proto, v->id, v->asset, w);
            if (lend_rc(v, sim, rc, "withdraw", w)) break;
        }
        look(v, sim, &b);
        double got;
        if (swap(v, sim, &b, v->asset, fmin(s, b.idle), cause, &got) <= 0) break;
        traded++;
        if (repay_idle_debt(v, sim)) break;
    }
    return traded;
}

/* ---- the API ---------------------------------------------------------------- */

double sp_vault_nav(struct sp_sim *sim, sp_id id)
{
    struct vault *v = vault_of(sim, id);
    if (!v) return NAN;
    struct books b;
    look(v, sim, &b);
    return b.nav;
}

double sp_vault_share_price(struct sp_sim *sim, sp_id id)
{
    struct vault *v = vault_of(sim, id);
    if (!v) return NAN;
    struct books b;
    look(v, sim, &b);
    return share_price(v, sim, &b);
}

double sp_vault_leverage(struct sp_sim *sim, sp_id id)
{
    struct vault *v = vault_of(sim, id);
    if (!v) return NAN;
    struct books b;
    look(v, sim, &b);
    return isfinite(b.nav) ? leverage(&b) : NAN;
}

static bool valid_agent(const struct sp_sim *sim, sp_id agent)
{
    return agent != SP_ID_NONE && agent < sp_sim_entity_count(sim);
}

int sp_vault_deposit(struct sp_sim *sim, sp_id id, sp_id agent, double assets, double *shares)
{
    struct vault *v = vault_of(sim, id);
    if (shares) *shares = 0;
    if (!v || !valid_agent(sim, agent) || agent == id || !(assets > 0) || !isfinite(assets))
        return SP_EINVAL;
    if (sp_balance(sim, agent, v->asset) < assets) return SP_ERANGE;
    struct books b;
    look(v, sim, &b);
    double supply = sp_supply(sim, v->share), out = assets;
    if (supply > 0) {
        if (!isfinite(b.nav)) return SP_ESTATE;
        if (!(b.nav > 0)) return SP_ERANGE;
        out = assets * supply / b.nav;
    }
    int rc = sp_transfer(sim, v->asset, agent, id, assets);
    if (!rc) rc = sp_mint(sim, v->share, agent, out);
    if (rc) return rc;
    v->n_deposits++;
    changed(v, sim);
    if (shares) *shares = out;
    return SP_OK;
}

int sp_vault_redeem(struct sp_sim *sim, sp_id id, sp_id agent, double shares, double *assets)
{
    struct vault *v = vault_of(sim, id);
    if (assets) *assets = 0;
    if (!v || !valid_agent(sim, agent) || agent == id || !(shares > 0) || !isfinite(shares))
        return SP_EINVAL;
    if (sp_balance(sim, agent, v->share) < shares) return SP_ERANGE;
    struct books b;
    look(v, sim, &b);
    if (!isfinite(b.nav)) return SP_ESTATE;
    if (!(b.nav > 0)) return SP_ERANGE;
    double supply = sp_supply(sim, v->share);
    double owed = shares * b.nav / supply, pay = owed;
    if (b.idle < owed) {
        /* Keep the leverage of the invested part, L = C / (NAV − idle), for
         * those who stay: unwind to debt (L − 1)·(NAV − owed), then release
         * collateral only as far as the invested leverage stays at most L:
         * payout p <= (L·NAV − C − idle) / (L − 1).  An unwind the venue
         * stalls therefore limits the payout instead of levering up the
         * rest. */
        double equity = b.nav - b.idle;
        double lev = equity > 0 ? b.collateral / equity : v->cfg->target_leverage;
        if (lev < 1) lev = 1;
        if (b.debt > 0) unwind(v, sim, lev, owed, SP_CAUSE_REDEMPTION);
        look(v, sim, &b);
        double cap = owed;
        if (b.debt > 0)
            cap = lev > 1 + 1e-12 ? (lev * b.nav - b.collateral - b.idle) / (lev - 1) : b.idle;
        if (cap >= owed * (1 - 1e-6)) cap = owed;
        pay = fmax(0, fmin(owed, cap));
        double w = fmin(pay - b.idle, withdrawable(v, sim, &b));
        if (w > 0) {
            int rc = sp_lending_withdraw_collateral(sim, v->proto, v->id, v->asset, w);
            if (lend_rc(v, sim, rc, "withdraw", w) && rc != SP_ERANGE) return rc;
        }
    }
    double idle = sp_balance(sim, v->id, v->asset);
    double paid = fmin(pay, idle), burned = shares;
    if (paid < owed * (1 - VAULT_TOL)) {               /* could not raise it all */
        burned = shares * paid / owed;
        v->unpaid += owed - paid;
    }
    int rc = SP_OK;
    if (burned > 0) rc = sp_burn(sim, v->share, agent, burned);
    if (!rc && paid > 0) rc = sp_transfer(sim, v->asset, id, agent, paid);
    if (rc) return rc;
    if (paid > 0) v->n_redemptions++;
    changed(v, sim);
    if (assets) *assets = paid;
    return SP_OK;
}

int sp_vault_rebalance(struct sp_sim *sim, sp_id id)
{
    struct vault *v = vault_of(sim, id);
    if (!v) return SP_EINVAL;
    const struct vault_cfg *c = v->cfg;
    int rc = deposit_idle(v, sim);
    if (!rc) rc = repay_idle_debt(v, sim);
    if (rc && rc != SP_ERANGE) return rc;
    struct books b;
    look(v, sim, &b);
    int traded = 0;
    if (priced(&b) && b.nav > 0) {
        double lev = leverage(&b);
        if (lev > c->target_leverage + c->band)
            traded = unwind(v, sim, c->target_leverage, 0, SP_CAUSE_DELEVERAGE);
        else if (lev < c->target_leverage - c->band)
            traded = lever_up(v, sim, c->target_leverage);
        deposit_idle(v, sim);
    }
    if (traded) v->n_rebalances++;
    changed(v, sim);
    rc = sp_sim_failure(sim, NULL);
    return rc ? rc : traded > 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

static int vault_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct vault *v = self;
    const struct vault_cfg *c = cfg;
    const char *me = sp_sim_entity_name(sim, id);
    v->cfg = c;
    v->id = id;
    v->last_price = v->min_price = 1.0;
    v->share = sp_token_find(sim, c->share);
    v->asset = c->asset ? sp_token_find(sim, c->asset) : sp_token_underlying(sim, v->share);
    v->debt = sp_token_find(sim, c->debt);
    if (v->share < 0 || v->asset < 0 || v->debt < 0 ||
        sp_token_kind(sim, v->share) != SP_TOKEN_VAULT_SHARE ||
        sp_token_issuer(sim, v->share) != id) {
        sp_sim_fail(sim, SP_EINVAL, "%s: share '%s' is not a vault_share token issued by it",
                    me, c->share);
        return SP_EINVAL;
    }
    v->proto = sp_sim_find(sim, c->protocol);
    if (v->proto == SP_ID_NONE || !sp_lending_is(sim, v->proto)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a lending protocol", me, c->protocol);
        return SP_EINVAL;
    }
    struct sp_lending_asset ai, di;
    int ia = sp_lending_asset_index(sim, v->proto, v->asset);
    int id_ = sp_lending_asset_index(sim, v->proto, v->debt);
    if (ia < 0 || sp_lending_asset_info(sim, v->proto, (size_t)ia, &ai) || !ai.collateral) {
        sp_sim_fail(sim, SP_EINVAL, "%s: %s does not take %s as collateral", me, c->protocol,
                    sp_token_name(sim, v->asset));
        return SP_EINVAL;
    }
    /* A pool lends its borrowable assets; a cdp mints its stablecoin, which
     * is not one of its listed assets (a wrong `debt` there fails the first
     * borrow, with the protocol's message). */
    bool cdp = !strcmp(sp_sim_entity_ops(sim, v->proto)->type, "cdp");
    if (!cdp && (id_ < 0 || sp_lending_asset_info(sim, v->proto, (size_t)id_, &di) ||
                 !di.borrowable)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: %s does not lend %s", me, c->protocol, c->debt);
        return SP_EINVAL;
    }
    v->ltv_eff = ai.ltv * (1 - ai.haircut);
    double reach = v->ltv_eff * c->safety < 1 ? 1 / (1 - v->ltv_eff * c->safety) : INFINITY;
    if (c->target_leverage >= reach) {
        sp_sim_fail(sim, SP_EINVAL, "%s: target_leverage %g is unreachable at %g%% of %s's LTV "
                    "for %s (at most 1 / (1 − %g) = %g)", me, c->target_leverage,
                    100 * c->safety, c->protocol, sp_token_name(sim, v->asset),
                    v->ltv_eff * c->safety, reach);
        return SP_EINVAL;
    }
    v->venue = sp_sim_find(sim, c->venue);
    const struct sp_market_ops *m = v->venue == SP_ID_NONE ? NULL : sp_market_ops_of(sim, v->venue);
    if (!m) {
        sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a market", me, c->venue);
        return SP_EINVAL;
    }
    sp_token base, quote;
    m->pair(sp_sim_entity_state(sim, v->venue), &base, &quote);
    if (!((base == v->asset && quote == v->debt) || (base == v->debt && quote == v->asset))) {
        sp_sim_fail(sim, SP_EINVAL, "%s: venue '%s' trades %s/%s, not %s against %s", me,
                    c->venue, sp_token_name(sim, base), sp_token_name(sim, quote),
                    sp_token_name(sim, v->asset), c->debt);
        return SP_EINVAL;
    }
    v->asset_is_base = base == v->asset;
    int rc = sp_token_set_rate_fn(sim, v->share, id, rate_fn, v);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: cannot price its share '%s': %s", me, c->share, sp_strerror(rc));
        return rc;
    }
    if (c->seed_capital > 0) {
        rc = sp_mint(sim, v->asset, id, c->seed_capital);
        if (!rc) rc = sp_mint(sim, v->share, id, c->seed_capital);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: cannot mint its seed capital: %s", me, sp_strerror(rc));
            return rc;
        }
    }
    v->sample_every = sp_sim_sample_every(sim);
    return SP_OK;
}

static const struct sp_rec_col vault_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "nav", SP_REC_F64, "asset", "net asset value at the protocol's oracle prices", NULL },
    { "shares", SP_REC_F64, "share", "shares outstanding", NULL },
    { "share_price", SP_REC_F64, "asset per share", "NAV / shares (1 before any deposit)", NULL },
    { "leverage", SP_REC_F64, "1", "collateral value / NAV", NULL },
    { "collateral", SP_REC_F64, "asset", "asset posted in the lending protocol", NULL },
    { "debt", SP_REC_F64, "debt token", "debt owed to the lending protocol", NULL },
    { "idle", SP_REC_F64, "asset", "asset held by the vault, not posted", NULL },
};

static int vault_start(void *self, struct sp_sim *sim)
{
    struct vault *v = self;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        char group[300];
        snprintf(group, sizeof group, "/vaults/%s", sp_sim_entity_name(sim, v->id));
        int rc = sp_rec_table_create(rec, group, vault_cols,
                                     sizeof vault_cols / sizeof vault_cols[0], &v->tab);
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
        sp_rec_attr_str(rec, group, "asset", sp_token_name(sim, v->asset));
        sp_rec_attr_str(rec, group, "share", v->cfg->share);
        sp_rec_attr_str(rec, group, "debt", v->cfg->debt);
        sp_rec_attr_str(rec, group, "protocol", v->cfg->protocol);
        sp_rec_attr_str(rec, group, "venue", v->cfg->venue);
        sp_rec_attr_f64(rec, group, "target_leverage", v->cfg->target_leverage);
        sp_rec_attr_f64(rec, group, "band", v->cfg->band);
    }
    if (!sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_AGENT, v->id, EV_REBALANCE))
        return SP_ENOMEM;
    if (!sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_RECORD, v->id, EV_SAMPLE))
        return SP_ENOMEM;
    return SP_OK;
}

static void sample(struct vault *v, struct sp_sim *sim)
{
    struct books b;
    look(v, sim, &b);
    double p = share_price(v, sim, &b);
    if (isfinite(p) && p < v->min_price) v->min_price = p;
    if (!v->tab) return;
    union sp_rec_val row[8];
    row[0].f = sp_time_sec(sp_sim_now(sim));
    row[1].f = b.nav;
    row[2].f = sp_supply(sim, v->share);
    row[3].f = p;
    row[4].f = isfinite(b.nav) ? leverage(&b) : NAN;
    row[5].f = b.collateral;
    row[6].f = b.debt;
    row[7].f = b.idle;
    sp_rec_append(v->tab, row);
}

static void vault_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct vault *v = self;
    sp_time step;
    if (ev->kind == EV_REBALANCE) {
        sp_vault_rebalance(sim, v->id);
        step = v->cfg->rebalance_every;
    } else {
        sample(v, sim);
        step = v->sample_every;
    }
    sp_time next = ev->t + step;
    if (step > 0 && next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
}

static void vault_finish(void *self, struct sp_sim *sim)
{
    struct vault *v = self;
    const char *name = sp_sim_entity_name(sim, v->id);
    struct books b;
    look(v, sim, &b);
    double p = share_price(v, sim, &b);
    char key[300];
    snprintf(key, sizeof key, "rebalances_%s", name);
    sp_sim_summary(sim, key, (double)v->n_rebalances);
    snprintf(key, sizeof key, "slippage_%s", name);
    sp_sim_summary(sim, key, v->slippage);
    snprintf(key, sizeof key, "redemptions_%s", name);
    sp_sim_summary(sim, key, (double)v->n_redemptions);
    snprintf(key, sizeof key, "deposits_%s", name);
    sp_sim_summary(sim, key, (double)v->n_deposits);
    snprintf(key, sizeof key, "unpaid_%s", name);
    sp_sim_summary(sim, key, v->unpaid);
    snprintf(key, sizeof key, "min_share_price_%s", name);
    sp_sim_summary(sim, key, isfinite(p) && p < v->min_price ? p : v->min_price);
    snprintf(key, sizeof key, "final_share_price_%s", name);
    sp_sim_summary(sim, key, p);
}

/* ---- snapshot --------------------------------------------------------------- */

static int vault_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct vault *v = self;
    sp_snap_put_array(w, 7);
    sp_snap_put_f64(w, v->last_price);
    sp_snap_put_f64(w, v->min_price);
    sp_snap_put_f64(w, v->slippage);
    sp_snap_put_f64(w, v->unpaid);
    sp_snap_put_i64(w, v->n_rebalances);
    sp_snap_put_i64(w, v->n_redemptions);
    return sp_snap_put_i64(w, v->n_deposits);
}

static int vault_restore(void *self, struct sp_snapshot_reader *r)
{
    struct vault *v = self;
    double last = 0, min = 0, slippage = 0, unpaid = 0;
    int64_t n[3] = { 0 };
    sp_snap_get_array_n(r, 7);
    sp_snap_get_f64(r, &last);
    sp_snap_get_f64(r, &min);
    sp_snap_get_f64(r, &slippage);
    sp_snap_get_f64(r, &unpaid);
    for (size_t i = 0; i < 3; i++) sp_snap_get_i64(r, &n[i]);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    /* The share token's rate must stay finite and >= 0 (rate_fn). */
    if (!(last >= 0) || !isfinite(last))
        return sp_snap_fail(r, "last share price %g is not a finite price >= 0", last);
    for (size_t i = 0; i < 3; i++)
        if (n[i] < 0) return sp_snap_fail(r, "counter %zu is negative", i);
    v->last_price = last;
    v->min_price = min;
    v->slippage = slippage;
    v->unpaid = unpaid;
    v->n_rebalances = n[0];
    v->n_redemptions = n[1];
    v->n_deposits = n[2];
    return SP_OK;
}

const struct sp_module_ops sp_agent_vault_ops = {
    .kind = "agent", .type = "vault",
    .summary = "ERC-4626 vault looping its asset on a lending protocol to a target leverage",
    .schema = &vault_schema, .state_size = sizeof(struct vault),
    .init = vault_init, .start = vault_start, .on_event = vault_on_event,
    .finish = vault_finish, .snapshot = vault_snapshot, .restore = vault_restore,
};
