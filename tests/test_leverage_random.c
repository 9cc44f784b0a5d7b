/*
 * test_leverage_random.c — issue 4's requirement, "every token conserved, no
 * negative balance, after randomized sequences of supply, borrow, repay,
 * withdraw, loop, vault deposit/redeem and interest accrual", in one whole
 * world built from scenario text:
 *
 *   tokens   ETH (base), USDC (stable), stETH (lst of ETH, 4 % APR, 1-day
 *            redemption queue), aETH (A's receipt), bUSDC (B's receipt),
 *            vstETH (the vault's share), PEG (a base token only there to be
 *            priced by a reference: stETH/ETH on the deep off-chain market);
 *   venues   a StableSwap stETH/ETH pool held to reference_PEG and an
 *            ETH/USDC CPMM held to reference_ETH, each by an arbitrageur;
 *   oracles  ETH/USD on the reference, stETH/ETH on the StableSwap spot
 *            (quoted in ETH/USD, so swaps there move A's health factors),
 *            USDC, and `value` feeds of aETH and vstETH for B;
 *   lenders  A: stETH collateral, ETH borrowable (interest, reserve);
 *            B: aETH and vstETH collateral (second layer), USDC borrowable;
 *   agents   20 loopers on A in two populations (different targets, HF
 *            bands, reactions, spare margin, inattention), a vault looping
 *            stETH on A, 10 depositors on the vault, two arbitrageurs, and 6
 *            scripted holders the test drives as actors.
 *
 * From a seeded xorshift generator (state in the test) it runs 2400 random
 * steps — supply / withdraw receipts, deposit / withdraw collateral,
 * borrow, repay on A or B, vault deposit / redeem / rebalance, an lst
 * redemption, a swap on either venue, a shock of ±10 % to ETH/USD or to the
 * stETH/ETH peg, or a clock advance (loopers loop, deleverage and re-lever,
 * interest accrues, the keeper runs, depositors may run, redemptions
 * settle).  After every step:
 *   - the run has not failed and sp_ledger_check passes;
 *   - recomputed here through the public API: no balance of any entity in
 *     any token is negative, and the balances of every token sum to its
 *     supply;
 *   - supply laws: USDC's supply never changes after init; stETH's falls by
 *     exactly what was redeemed; ETH's supply plus the redemption queue
 *     equals ETH at init plus Σ amount·rate of the redemptions;
 *   - sp_lending_check for both protocols; every position's debt and
 *     collateral >= 0, totals and cash >= 0, and for each borrowable asset
 *     rate·receipt supply + reserve = cash + debt;
 *   - the vault: share price = NAV / shares (1e-9) and NAV = C + idle −
 *     (D − idle debt)·p_ETH/p_stETH recomputed from the protocol and ledger;
 *   - an operation that returns an error moved nothing of the actor's; one
 *     that succeeded moved exactly what it reports.
 * At the end: every kind of operation succeeded many times (the counts are
 * printed), the loopers looped (summary n_loops and positions with debt)
 * and defended their health factors, interest accrued into both pools'
 * reserves and receipt rates.
 *
 * Deterministic (fixed seeds); SP_LEVERAGE_SEED=<n> and SP_LEVERAGE_STEPS=<n>
 * run another or a longer sequence for exploration (the end-of-run "it
 * happened" counts are tuned for the default sequence).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "reference.h"
#include "vault.h"

/* |a − b| <= eps·max(1, |b|), reporting both values. */
#define assert_rel(a, b, eps)                                                             \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        if (!(fabs(a_ - b_) <= (eps) * fmax(1.0, fabs(b_))))                               \
            fail_msg("step %ld: %s = %.17g, expected %.17g (rel %g)", g_step, #a, a_, b_,   \
                     (double)(eps));                                                       \
    } while (0)

static long g_step = -1;            /* for messages */

/* ---- the world ---------------------------------------------------------------- */

#define N_ACTORS 6
#define N_CALM 12
#define N_TWITCHY 8
#define N_DEP 10

static const char world_yaml[] =
    "seed: 11\n"
    "horizon: 120d\n"
    "output: {sample_every: 1d}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: PEG, kind: base, description: stETH/ETH on the deep off-chain market}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: stETH, kind: lst, underlying: ETH, apr: 4%, redemption_delay: 1d}\n"
    "  - {name: aETH, kind: receipt, underlying: ETH, issuer: protoA}\n"
    "  - {name: bUSDC, kind: receipt, underlying: USDC, issuer: protoB}\n"
    "  - {name: vstETH, kind: vault_share, underlying: stETH, issuer: vault}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m}\n"
    "  - {type: gbm, asset: PEG, initial: 1, step: 1m}\n"
    "markets:\n"
    "  - {type: stableswap, name: curve, base: stETH, quote: ETH, reserve_base: 40000,\n"
    "     reserve_quote: 40000, amp: 50, fee: 0.04%}\n"
    "  - {type: cpmm, name: uni, base: ETH, quote: USDC, reserve_base: 50000,\n"
    "     reserve_quote: 100000000, fee: 0.3%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, poll: 1m, deviation: 0.01%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: chainlink, name: steth_eth, poll: 1m, deviation: 0.01%, heartbeat: 1h,\n"
    "     source: {type: spot, of: curve}}\n"
    "  - {type: heartbeat, name: usdc_usd, poll: 1h, heartbeat: 1h,\n"
    "     source: {type: value, of: USDC}}\n"
    "  - {type: chainlink, name: aeth_usd, poll: 1m, deviation: 0.01%, heartbeat: 1h,\n"
    "     source: {type: value, of: aETH}}\n"
    "  - {type: chainlink, name: vsteth_usd, poll: 1m, deviation: 0.01%, heartbeat: 1h,\n"
    "     source: {type: value, of: vstETH}}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: protoA\n"
    "    accrue_every: 1h\n"
    "    positions_every: 0\n"
    "    assets:\n"
    "      - {token: stETH, oracle: steth_eth, quoted_in: eth_usd, ltv: 80%,\n"
    "         liquidation_threshold: 85%}\n"
    "      - {token: ETH, oracle: eth_usd, collateral: false, borrowable: true, receipt: aETH,\n"
    "         initial_supply: 40000, reserve: 50, slope1: 8%, slope2: 80%,\n"
    "         optimal_utilization: 85%, reserve_factor: 15%}\n"
    "  - type: pool\n"
    "    name: protoB\n"
    "    accrue_every: 1h\n"
    "    positions_every: 0\n"
    "    assets:\n"
    "      - {token: aETH, oracle: aeth_usd, ltv: 70%, liquidation_threshold: 75%}\n"
    "      - {token: vstETH, oracle: vsteth_usd, ltv: 50%, liquidation_threshold: 60%,\n"
    "         haircut: 5%}\n"
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: bUSDC, initial_supply: 20000000, reserve: 1000, slope1: 6%,\n"
    "         slope2: 60%}\n"
    "agents:\n"
    "  - {type: arbitrageur, name: arb, venue: uni, poll: 1m, cash: 400000000,\n"
    "     inventory: 200000}\n"
    "  - {type: arbitrageur, name: arb_peg, venue: curve, reference: reference_PEG, poll: 1m,\n"
    "     cash: 200000, inventory: 200000}\n"
    "  - {type: looper, name: calm, count: 12, protocol: protoA, collateral: stETH, debt: ETH,\n"
    "     venue: curve, capital: {dist: lognormal, mean: 150, sd: 80},\n"
    "     spare: {dist: uniform, low: 0, high: 30},\n"
    "     target_leverage: {dist: uniform, low: 1.8, high: 3.6}, hf_low: 1.1,\n"
    "     reaction: {dist: exponential, mean: 300}, watch_every: 5m, start_spread: 30m,\n"
    "     max_slippage: 5%, inattentive: 15%}\n"
    "  - {type: looper, name: twitchy, count: 8, protocol: protoA, collateral: stETH,\n"
    "     debt: ETH, venue: curve, capital: {dist: uniform, low: 20, high: 300},\n"
    ""
    "     target_leverage: {dist: uniform, low: 2.2, high: 2.65}, hf_low: 1.35, hf_high: 1.6,\n"
    "     reaction: {dist: uniform, low: 0, high: 120}, watch_every: 5m, start: 20m,\n"
    "     start_spread: 1h, max_slippage: 3%}\n"
    "  - {type: vault, name: vault, share: vstETH, protocol: protoA, debt: ETH, venue: curve,\n"
    "     target_leverage: 3, band: 0.25, rebalance_every: 1h, seed_capital: 1000,\n"
    "     max_slippage: 1%}\n"
    "  - {type: depositor, name: dep, count: 10, vault: vault, token: stETH,\n"
    "     amount: {dist: uniform, low: 10, high: 400}, at: 10m, watch_every: 5m,\n"
    "     run_threshold: {dist: uniform, low: 0.002, high: 0.05},\n"
    "     delay: {dist: exponential, mean: 600}}\n"
    "  - {type: scripted, name: h, actions: [], holdings: [{token: ETH, amount: 5000},\n"
    "     {token: stETH, amount: 5000}, {token: USDC, amount: 5000000}]}\n";

/* A tw_world and its cast; `sim` is tw.sim, for brevity. */
struct world {
    struct tw_world tw;
    struct sp_sim *sim;
    sp_id A, B, vault, curve, uni, ref, peg;
    sp_id actor[N_ACTORS];
    sp_token eth, usdc, steth, aeth, busdc, vsteth;
    size_t n_tok, n_ent;
    /* supply laws */
    double eth0, usdc0, steth0, redeemed, redeemed_eth;
    long shocks[2][2];          /* [ETH, peg][down, up] that went through */
    long redeem_paid, redeem_partial;   /* vault redemptions paying > 0, < in full */
};

static sp_id id_of(struct world *w, const char *name)
{
    return tw_id(&w->tw, name);
}

static sp_token tok(struct world *w, const char *name)
{
    return tw_tok(&w->tw, name);
}

static void world_open(struct world *w)
{
    memset(w, 0, sizeof *w);
    /* The scripted holder is one item; the actors are copies of it. */
    size_t cap = sizeof world_yaml + N_ACTORS * 256;
    char *yaml = malloc(cap);
    const char *h = strstr(world_yaml, "  - {type: scripted, name: h,");
    assert_non_null(h);
    int n = snprintf(yaml, cap, "%.*s", (int)(h - world_yaml), world_yaml);
    for (int i = 0; i < N_ACTORS; i++)
        n += snprintf(yaml + n, cap - (size_t)n, "  - {type: scripted, name: h%d,%s", i,
                      h + strlen("  - {type: scripted, name: h,"));
    tw_open(&w->tw, &(struct tw_opts){ .name = "leverage_random", .text = yaml });
    free(yaml);
    w->sim = w->tw.sim;
    w->A = id_of(w, "protoA");
    w->B = id_of(w, "protoB");
    w->vault = id_of(w, "vault");
    w->curve = id_of(w, "curve");
    w->uni = id_of(w, "uni");
    w->ref = id_of(w, "reference_ETH");
    w->peg = id_of(w, "reference_PEG");
    for (int i = 0; i < N_ACTORS; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "h%d", i);
        w->actor[i] = id_of(w, nm);
    }
    w->eth = tok(w, "ETH");
    w->usdc = tok(w, "USDC");
    w->steth = tok(w, "stETH");
    w->aeth = tok(w, "aETH");
    w->busdc = tok(w, "bUSDC");
    w->vsteth = tok(w, "vstETH");
    assert_true(sp_lending_is(w->sim, w->A) && sp_lending_is(w->sim, w->B));
    assert_true(sp_vault_is(w->sim, w->vault));
    assert_int_equal(sp_token_kind(w->sim, w->steth), SP_TOKEN_LST);
    w->n_tok = sp_token_count(w->sim);
    w->n_ent = sp_sim_entity_count(w->sim);
    /* Everything is minted at init: these are the supplies for good. */
    w->eth0 = sp_supply(w->sim, w->eth);
    w->usdc0 = sp_supply(w->sim, w->usdc);
    w->steth0 = sp_supply(w->sim, w->steth);
    assert_true(w->eth0 > 0 && w->usdc0 > 0 && w->steth0 > 0);
}

static void world_close(struct world *w)
{
    tw_close(&w->tw);
}

/* ---- the checks after every step ------------------------------------------------- */

static void check_ledger(struct world *w)
{
    struct sp_sim *s = w->sim;
    const char *msg = NULL;
    if (sp_sim_failure(s, &msg)) fail_msg("step %ld: run failed: %s", g_step, msg);
    assert_int_equal(sp_ledger_check(s), 0);
    /* The same, recomputed here through the public API over every entity. */
    for (size_t k = 0; k < w->n_tok; k++) {
        double sum = 0, mag = 0;
        for (size_t e = 0; e < w->n_ent; e++) {
            double b = sp_balance(s, (sp_id)e, (sp_token)k);
            if (!(b >= 0) || !isfinite(b))
                fail_msg("step %ld: %s holds %.17g %s", g_step, sp_sim_entity_name(s, (sp_id)e),
                         b, sp_token_name(s, (sp_token)k));
            sum += b;
            mag += fabs(b);
        }
        double sup = sp_supply(s, (sp_token)k);
        if (!(fabs(sum - sup) <= 1e-9 * fmax(1.0, mag)))
            fail_msg("step %ld: %s balances sum to %.17g, supply %.17g", g_step,
                     sp_token_name(s, (sp_token)k), sum, sup);
    }
    /* Supply laws: nothing mints or burns ETH, stETH or USDC after init but
     * the lst queue (burns stETH now, mints amount·rate ETH when due). */
    assert_rel(sp_supply(s, w->usdc), w->usdc0, 1e-12);
    assert_rel(sp_supply(s, w->steth), w->steth0 - w->redeemed, 1e-12);
    assert_rel(sp_supply(s, w->eth) + sp_lst_pending_total(s, w->steth),
               w->eth0 + w->redeemed_eth, 1e-12);
}

static void check_protocol(struct world *w, sp_id proto)
{
    struct sp_sim *s = w->sim;
    assert_int_equal(sp_lending_check(s, proto), 0);
    size_t na = sp_lending_asset_count(s, proto);
    assert_true(na >= 2);
    size_t np = sp_lending_position_count(s, proto);
    for (size_t i = 0; i < na; i++) {
        struct sp_lending_asset a;
        assert_int_equal(sp_lending_asset_info(s, proto, i, &a), 0);
        for (size_t p = 0; p < np; p++) {
            sp_id o = sp_lending_position_owner(s, proto, p);
            double c = sp_lending_collateral(s, proto, o, a.token);
            double d = sp_lending_debt(s, proto, o, a.token);
            if (!(c >= 0) || !(d >= 0))
                fail_msg("step %ld: %s on %s: collateral %.17g, debt %.17g of %s", g_step,
                         sp_sim_entity_name(s, o), sp_sim_entity_name(s, proto), c, d,
                         sp_token_name(s, a.token));
        }
        if (!a.borrowable) continue;
        double debt = sp_lending_total_debt(s, proto, a.token);
        double cash = sp_lending_cash(s, proto, a.token);
        double res = sp_lending_reserve(s, proto, a.token);
        double rate = sp_lending_exchange_rate(s, proto, a.token);
        assert_true(debt >= 0);
        assert_true(cash >= 0);
        assert_true(res >= 0);
        assert_true(rate >= 0 && isfinite(rate));
        /* Cash is what the protocol holds of the token beyond collateral. */
        assert_true(cash <= sp_balance(s, proto, a.token) * (1 + 1e-12) + 1e-9);
        /* The receipt identity: rate·supply + reserve = cash + debt. */
        assert_rel(rate * sp_supply(s, a.receipt) + res, cash + debt, 1e-9);
    }
}

/* NAV recomputed from the protocol and the ledger (vault.c's definition). */
static double nav_here(struct world *w)
{
    struct sp_sim *s = w->sim;
    double c = sp_lending_collateral(s, w->A, w->vault, w->steth);
    double d = sp_lending_debt(s, w->A, w->vault, w->eth);
    double idle = sp_balance(s, w->vault, w->steth), idle_d = sp_balance(s, w->vault, w->eth);
    double pa = sp_lending_price(s, w->A, w->steth), pd = sp_lending_price(s, w->A, w->eth);
    double net = d - idle_d;
    return net != 0 ? c + idle - net * pd / pa : c + idle;
}

static void check_vault(struct world *w)
{
    struct sp_sim *s = w->sim;
    double nav = sp_vault_nav(s, w->vault), shares = sp_supply(s, w->vsteth);
    double price = sp_vault_share_price(s, w->vault);
    assert_true(isfinite(nav) && nav > 0);
    assert_true(shares > 0);
    assert_rel(price, nav / shares, 1e-9);
    assert_rel(nav, nav_here(w), 1e-9);
    double c = sp_lending_collateral(s, w->A, w->vault, w->steth);
    if (c > 0) assert_rel(sp_vault_leverage(s, w->vault), c / nav, 1e-9);
}

static void check_all(struct world *w)
{
    check_ledger(w);
    check_protocol(w, w->A);
    check_protocol(w, w->B);
    check_vault(w);
}

static void step_to(struct world *w, sp_time until)
{
    tw_drain(&w->tw, until);
}

/* ---- the random sequence ------------------------------------------------------ */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double unif(uint64_t *s) { return (double)(xorshift(s) >> 11) / 9007199254740992.0; }
static unsigned below(uint64_t *s, unsigned n) { return (unsigned)(unif(s) * n); }

enum op {
    OP_SUPPLY_A, OP_WITHDRAW_A, OP_SUPPLY_B, OP_WITHDRAW_B,
    OP_DEPOSIT_A, OP_WITHDRAW_COLL_A, OP_DEPOSIT_B, OP_WITHDRAW_COLL_B,
    OP_BORROW_A, OP_BORROW_B, OP_REPAY_A, OP_REPAY_B,
    OP_VAULT_DEPOSIT, OP_VAULT_REDEEM, OP_VAULT_REBALANCE, OP_LST_REDEEM,
    OP_SHOCK, OP_SWAP_CURVE, OP_SWAP_UNI, OP_ADVANCE, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "supply A", "withdraw A", "supply B", "withdraw B",
    "deposit coll A", "withdraw coll A", "deposit coll B", "withdraw coll B",
    "borrow A", "borrow B", "repay A", "repay B",
    "vault deposit", "vault redeem", "vault rebalance", "lst redeem",
    "ref shock", "swap curve", "swap uni", "advance clock",
};

/* Relative weights; the clock moves often enough for the agents to act. */
static const unsigned op_weight[OP_COUNT] = {
    5, 4, 4, 3, 6, 4, 6, 4, 7, 7, 5, 5, 4, 4, 2, 2, 4, 5, 2, 14,
};

/* An actor's wallet in every token, for "an error moved nothing". */
struct wallet { double b[16]; };

static void wallet_of(struct world *w, sp_id who, struct wallet *out)
{
    assert_true(w->n_tok <= 16);
    for (size_t k = 0; k < w->n_tok; k++) out->b[k] = sp_balance(w->sim, who, (sp_token)k);
}

static void assert_wallet_unchanged(struct world *w, sp_id who, const struct wallet *before,
                                    const char *what, int rc)
{
    for (size_t k = 0; k < w->n_tok; k++)
        if (sp_balance(w->sim, who, (sp_token)k) != before->b[k])
            fail_msg("step %ld: %s failed (%s) but moved %s of %s: %.17g -> %.17g", g_step,
                     what, sp_err_name(rc), sp_token_name(w->sim, (sp_token)k),
                     sp_sim_entity_name(w->sim, who), before->b[k],
                     sp_balance(w->sim, who, (sp_token)k));
}

static double bal(struct world *w, sp_id who, sp_token t) { return sp_balance(w->sim, who, t); }

/* One random operation by actor `who`; returns its rc, or 1 when it was not
 * attempted (nothing to do: zero amount). */
static int do_op(struct world *w, enum op op, sp_id who, uint64_t *rng, sp_time *t)
{
    struct sp_sim *s = w->sim;
    double u = unif(rng);
    int rc = 1;
    switch (op) {
    case OP_SUPPLY_A:
    case OP_SUPPLY_B: {
        sp_id p = op == OP_SUPPLY_A ? w->A : w->B;
        sp_token tk = op == OP_SUPPLY_A ? w->eth : w->usdc, rt = op == OP_SUPPLY_A ? w->aeth : w->busdc;
        double amt = u * 0.5 * bal(w, who, tk);
        if (!(amt > 0)) return 1;
        double b0 = bal(w, who, tk), r0 = bal(w, who, rt), got = 0;
        double rate = sp_lending_exchange_rate(s, p, tk);
        rc = sp_lending_supply(s, p, who, tk, amt, &got);
        if (!rc) {
            assert_rel(bal(w, who, tk), b0 - amt, 1e-12);
            assert_rel(bal(w, who, rt), r0 + got, 1e-12);
            assert_rel(got * rate, amt, 1e-9);
        }
        break;
    }
    case OP_WITHDRAW_A:
    case OP_WITHDRAW_B: {
        sp_id p = op == OP_WITHDRAW_A ? w->A : w->B;
        sp_token tk = op == OP_WITHDRAW_A ? w->eth : w->usdc, rt = op == OP_WITHDRAW_A ? w->aeth : w->busdc;
        double r = u * 1.1 * bal(w, who, rt);           /* sometimes more than held */
        if (!(r > 0)) return 1;
        double b0 = bal(w, who, tk), r0 = bal(w, who, rt), got = 0;
        rc = sp_lending_withdraw(s, p, who, tk, r, &got);
        if (!rc) {
            assert_rel(bal(w, who, rt), r0 - r, 1e-12);
            assert_rel(bal(w, who, tk), b0 + got, 1e-12);
            assert_true(got >= 0);
        }
        break;
    }
    case OP_DEPOSIT_A:
    case OP_DEPOSIT_B: {
        sp_id p = op == OP_DEPOSIT_A ? w->A : w->B;
        sp_token tk = op == OP_DEPOSIT_A ? w->steth : below(rng, 2) ? w->aeth : w->vsteth;
        double amt = u * 0.6 * bal(w, who, tk);
        if (!(amt > 0)) return 1;
        double b0 = bal(w, who, tk), c0 = sp_lending_collateral(s, p, who, tk);
        rc = sp_lending_deposit(s, p, who, tk, amt);
        if (!rc) {
            assert_rel(bal(w, who, tk), b0 - amt, 1e-12);
            assert_rel(sp_lending_collateral(s, p, who, tk), c0 + amt, 1e-12);
        }
        break;
    }
    case OP_WITHDRAW_COLL_A:
    case OP_WITHDRAW_COLL_B: {
        sp_id p = op == OP_WITHDRAW_COLL_A ? w->A : w->B;
        sp_token tk = op == OP_WITHDRAW_COLL_A ? w->steth : below(rng, 2) ? w->aeth : w->vsteth;
        double c0 = sp_lending_collateral(s, p, who, tk), b0 = bal(w, who, tk);
        double amt = u * 1.05 * c0;
        if (!(amt > 0)) return 1;
        rc = sp_lending_withdraw_collateral(s, p, who, tk, amt);
        if (!rc) {
            assert_rel(sp_lending_collateral(s, p, who, tk), c0 - amt, 1e-12);
            assert_rel(bal(w, who, tk), b0 + amt, 1e-12);
            struct sp_lending_position ps;
            assert_int_equal(sp_lending_position(s, p, who, &ps), 0);
            assert_true(ps.debt_value <= ps.borrow_power * (1 + 1e-9) + 1e-9);
        }
        break;
    }
    case OP_BORROW_A:
    case OP_BORROW_B: {
        sp_id p = op == OP_BORROW_A ? w->A : w->B;
        sp_token tk = op == OP_BORROW_A ? w->eth : w->usdc;
        double mx = sp_lending_max_borrow(s, p, who, tk);
        double amt = u * 1.1 * (mx > 0 ? mx : 0);       /* a tenth of them too much */
        if (!(amt > 0)) return 1;
        double b0 = bal(w, who, tk), d0 = sp_lending_debt(s, p, who, tk);
        rc = sp_lending_borrow(s, p, who, tk, amt);
        if (!rc) {
            assert_true(amt <= mx * (1 + 1e-9));
            assert_rel(bal(w, who, tk), b0 + amt, 1e-12);
            assert_rel(sp_lending_debt(s, p, who, tk), d0 + amt, 1e-9);
        } else if (rc == SP_ERANGE) {
            assert_true(amt > mx * (1 - 1e-9));          /* refused only beyond the max */
        }
        break;
    }
    case OP_REPAY_A:
    case OP_REPAY_B: {
        sp_id p = op == OP_REPAY_A ? w->A : w->B;
        sp_token tk = op == OP_REPAY_A ? w->eth : w->usdc;
        double d0 = sp_lending_debt(s, p, who, tk), b0 = bal(w, who, tk);
        double amt = u * fmin(b0, 1.2 * d0);
        if (!(amt > 0)) return 1;
        double repaid = -1;
        rc = sp_lending_repay(s, p, who, who, tk, amt, &repaid);
        if (!rc) {
            assert_true(repaid >= 0 && repaid <= amt * (1 + 1e-12));
            assert_rel(repaid, fmin(amt, d0), 1e-9);
            assert_rel(bal(w, who, tk), b0 - repaid, 1e-12);
            assert_rel(sp_lending_debt(s, p, who, tk), d0 - repaid, 1e-9);
        }
        break;
    }
    case OP_VAULT_DEPOSIT: {
        double amt = u * 0.4 * bal(w, who, w->steth);
        if (!(amt > 0)) return 1;
        double p0 = sp_vault_share_price(s, w->vault), sh = 0;
        double a0 = bal(w, who, w->steth), s0 = bal(w, who, w->vsteth);
        rc = sp_vault_deposit(s, w->vault, who, amt, &sh);
        if (!rc) {
            assert_rel(bal(w, who, w->steth), a0 - amt, 1e-12);
            assert_rel(bal(w, who, w->vsteth), s0 + sh, 1e-12);
            assert_rel(sh * p0, amt, 1e-9);
            assert_rel(sp_vault_share_price(s, w->vault), p0, 1e-9);   /* no dilution */
        }
        break;
    }
    case OP_VAULT_REDEEM: {
        double held = bal(w, who, w->vsteth), sh = u * held;
        if (!(sh > 0)) return 1;
        double p0 = sp_vault_share_price(s, w->vault), got = -1;
        double a0 = bal(w, who, w->steth), idle0 = bal(w, w->vault, w->steth);
        rc = sp_vault_redeem(s, w->vault, who, sh, &got);
        if (!rc) {
            double burned = held - bal(w, who, w->vsteth);
            assert_true(burned >= -1e-12 && burned <= sh * (1 + 1e-12));
            assert_rel(bal(w, who, w->steth), a0 + got, 1e-12);
            /* paid at the price before, for the shares it burned */
            assert_rel(got, burned * p0, 1e-9);
            /* Paid from idle asset: no trade, the price of those who stay
             * does not move.  (Through the venue it moves by the slippage,
             * either way: the venue may pay better than a lagging oracle.) */
            if (idle0 >= sh * p0 * (1 + 1e-9))
                assert_rel(sp_vault_share_price(s, w->vault), p0, 1e-9);
            w->redeem_paid += got > 0;
            w->redeem_partial += burned < sh * (1 - 1e-9);
        }
        break;
    }
    case OP_VAULT_REBALANCE:
        rc = sp_vault_rebalance(s, w->vault);
        if (rc == 1) rc = 0;
        break;
    case OP_LST_REDEEM: {
        double amt = u * 0.2 * bal(w, who, w->steth);
        if (!(amt > 0)) return 1;
        double rate = sp_token_rate(s, w->steth), pend0 = sp_lst_pending(s, w->steth, who);
        double b0 = bal(w, who, w->steth);
        sp_time ready = 0;
        rc = sp_lst_redeem(s, w->steth, who, amt, &ready);
        if (!rc) {
            assert_true(rate >= 1);                       /* a positive APR from 1 */
            assert_true(ready == sp_sim_now(s) + SP_DAY);
            assert_rel(bal(w, who, w->steth), b0 - amt, 1e-12);
            assert_rel(sp_lst_pending(s, w->steth, who), pend0 + amt * rate, 1e-12);
            w->redeemed += amt;
            w->redeemed_eth += amt * rate;
        }
        break;
    }
    case OP_SHOCK: {
        /* ETH/USD or the stETH/ETH peg, ±10 % either, kept in a sane range. */
        bool peg = below(rng, 10) < 4;
        sp_id ref = peg ? w->peg : w->ref;
        double p = sp_reference_price(s, ref);
        double drop = 0.2 * u - 0.1;
        if (p > (peg ? 1.02 : 2800)) drop = fabs(drop);
        if (p < (peg ? 0.85 : 1300)) drop = -fabs(drop);
        rc = sp_reference_shock(s, ref, drop, 0);
        if (!rc) {
            assert_rel(sp_reference_price(s, ref), p * (1 - drop), 1e-9);
            w->shocks[peg][drop < 0]++;
        }
        break;
    }
    case OP_SWAP_CURVE:
    case OP_SWAP_UNI: {
        sp_id venue = op == OP_SWAP_CURVE ? w->curve : w->uni;
        enum sp_side side = below(rng, 2) ? SP_BUY : SP_SELL;
        sp_token pay = op == OP_SWAP_CURVE ? (side == SP_BUY ? w->eth : w->steth)
                                           : (side == SP_BUY ? w->usdc : w->eth);
        sp_token get = op == OP_SWAP_CURVE ? (side == SP_BUY ? w->steth : w->eth)
                                           : (side == SP_BUY ? w->eth : w->usdc);
        double amt = u * 0.5 * bal(w, who, pay);
        if (!(amt > 0)) return 1;
        double p0 = bal(w, who, pay), g0 = bal(w, who, get);
        struct sp_swap req = { who, side, amt, 0, SP_CAUSE_SCRIPTED, 0 };
        struct sp_swap_result res;
        rc = sp_market_swap(s, venue, &req, &res);
        if (!rc) {
            assert_rel(bal(w, who, pay), p0 - res.amount_in, 1e-12);
            assert_rel(bal(w, who, get), g0 + res.amount_out, 1e-12);
            assert_true(res.amount_out > 0);
        }
        break;
    }
    case OP_ADVANCE: {
        double v = unif(rng);
        *t += SP_MIN + (sp_time)(v * v * 4 * SP_HOUR);
        step_to(w, *t);
        rc = 0;
        break;
    }
    default:
        fail_msg("bad op %d", (int)op);
    }
    return rc;
}

static void test_randomized_leverage_world_conserves_every_token(void **state)
{
    (void)state;
    clock_t c0 = clock();
    struct world w;
    world_open(&w);
    check_ledger(&w);
    /* the oracles deliver at 0; the loopers start from 1m / 20m; the vault's
     * keeper levers its seed at t = 0; depositors come in at 10m */
    sp_time t = 2 * SP_HOUR;
    step_to(&w, t);
    check_all(&w);
    assert_true(sp_vault_leverage(w.sim, w.vault) > 2.5);

    long STEPS = 2400;
    /* Longer sequences for exploration: SP_LEVERAGE_STEPS=<n>. */
    if (getenv("SP_LEVERAGE_STEPS") && atol(getenv("SP_LEVERAGE_STEPS")) > STEPS)
        STEPS = atol(getenv("SP_LEVERAGE_STEPS"));
    unsigned wsum = 0;
    for (int k = 0; k < OP_COUNT; k++) wsum += op_weight[k];
    long tried[OP_COUNT] = { 0 }, ok[OP_COUNT] = { 0 }, refused[OP_COUNT] = { 0 };
    uint64_t rng = 0x2545f4914f6cdd1dull;
    /* Another sequence for exploration: SP_LEVERAGE_SEED=<n> (nonzero). */
    const char *seed_env = getenv("SP_LEVERAGE_SEED");
    if (seed_env && strtoull(seed_env, NULL, 0)) {
        rng ^= strtoull(seed_env, NULL, 0) * 0x9e3779b97f4a7c15ull;
        if (!rng) rng = 1;
        for (int i = 0; i < 8; i++) xorshift(&rng);
    }
    double aeth_rate0 = sp_lending_exchange_rate(w.sim, w.A, w.eth);
    double reserve0 = sp_lending_reserve(w.sim, w.A, w.eth);
    double reserve_b0 = sp_lending_reserve(w.sim, w.B, w.usdc);
    double busdc_rate0 = sp_lending_exchange_rate(w.sim, w.B, w.usdc);
    double min_ref = INFINITY, max_ref = 0, min_peg = INFINITY, max_peg = 0, min_hf = INFINITY;
    double min_pref = INFINITY, max_pref = 0;
    double max_debt_a = 0, max_debt_b = 0;
    bool looper_seen[N_CALM + N_TWITCHY] = { false };
    sp_id looper_id[N_CALM + N_TWITCHY];
    for (int i = 0; i < N_CALM + N_TWITCHY; i++) {
        char nm[32];
        if (i < N_CALM) snprintf(nm, sizeof nm, "calm_%d", i);
        else snprintf(nm, sizeof nm, "twitchy_%d", i - N_CALM);
        looper_id[i] = id_of(&w, nm);
    }
    for (g_step = 0; g_step < STEPS; g_step++) {
        unsigned x = below(&rng, wsum), k = 0;
        while (x >= op_weight[k]) x -= op_weight[k++];
        enum op op = (enum op)k;
        sp_id who = w.actor[below(&rng, N_ACTORS)];
        struct wallet before;
        wallet_of(&w, who, &before);
        tried[op]++;
        int rc = do_op(&w, op, who, &rng, &t);
        if (rc == 1) {
            tried[op]--;                                  /* nothing to try */
        } else if (rc == 0) {
            ok[op]++;
        } else {
            if (!(rc == SP_ERANGE || rc == SP_ENOTFOUND || rc == SP_ESTATE))
                fail_msg("step %ld: %s returned %s", g_step, op_names[op], sp_err_name(rc));
            if (op != OP_ADVANCE) assert_wallet_unchanged(&w, who, &before, op_names[op], rc);
            refused[op]++;
        }
        check_all(&w);
        double r = sp_lending_price(w.sim, w.A, w.steth) / sp_lending_price(w.sim, w.A, w.eth);
        min_peg = fmin(min_peg, r);
        max_peg = fmax(max_peg, r);
        for (int i = 0; i < N_CALM + N_TWITCHY; i++) {
            struct sp_lending_position ps;
            if (!sp_lending_position(w.sim, w.A, looper_id[i], &ps)) min_hf = fmin(min_hf, ps.hf);
        }
        min_pref = fmin(min_pref, sp_reference_price(w.sim, w.peg));
        max_pref = fmax(max_pref, sp_reference_price(w.sim, w.peg));
        double p = sp_reference_price(w.sim, w.ref);
        min_ref = fmin(min_ref, p);
        max_ref = fmax(max_ref, p);
        max_debt_a = fmax(max_debt_a, sp_lending_total_debt(w.sim, w.A, w.eth));
        max_debt_b = fmax(max_debt_b, sp_lending_total_debt(w.sim, w.B, w.usdc));
        for (int i = 0; i < N_CALM + N_TWITCHY; i++)
            if (sp_lending_debt(w.sim, w.A, looper_id[i], w.eth) > 0) looper_seen[i] = true;
    }
    g_step = -1;
    /* Let everything queued settle (lst redemptions are due a day later). */
    t += 2 * SP_DAY;
    step_to(&w, t);
    check_all(&w);
    assert_rel(sp_lst_pending_total(w.sim, w.steth), 0.0, 0);
    assert_rel(sp_supply(w.sim, w.eth), w.eth0 + w.redeemed_eth, 1e-12);

    print_message("%-16s %7s %7s %7s\n", "operation", "tried", "ok", "refused");
    long total_ok = 0;
    for (int k = 0; k < OP_COUNT; k++) {
        print_message("%-16s %7ld %7ld %7ld\n", op_names[k], tried[k], ok[k], refused[k]);
        total_ok += ok[k];
    }
    print_message("simulated %.1f days, %llu events, ETH reference in [%.0f, %.0f], "
                  "stETH/ETH on A in [%.4f, %.4f], lowest looper HF %.4f\n",
                  sp_time_sec(t) / 86400, (unsigned long long)sp_sim_events(w.sim), min_ref,
                  max_ref, min_peg, max_peg, min_hf);
    /* Every kind of operation went through many times. */
    for (int k = 0; k < OP_COUNT; k++)
        if (ok[k] < 20) fail_msg("%s succeeded only %ld times", op_names[k], ok[k]);
    assert_true(total_ok > STEPS / 2);
    /* Requests beyond the limits were made, and refused. */
    assert_true(refused[OP_BORROW_A] + refused[OP_BORROW_B] > 0);
    assert_true(refused[OP_WITHDRAW_COLL_A] + refused[OP_WITHDRAW_COLL_B] > 0);
    /* Both references were moved both ways. */
    print_message("shocks: ETH %ld down %ld up, peg %ld down %ld up (peg reference in "
                  "[%.4f, %.4f])\n", w.shocks[0][0], w.shocks[0][1], w.shocks[1][0],
                  w.shocks[1][1], min_pref, max_pref);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) assert_true(w.shocks[i][j] >= 5);
    /* Interest accrued: each pool's reserve grew and its receipts are worth
     * more of the underlying (no bad debt here). */
    assert_true(sp_lending_bad_debt(w.sim, w.A) == 0 && sp_lending_bad_debt(w.sim, w.B) == 0);
    assert_true(sp_lending_reserve(w.sim, w.A, w.eth) > reserve0);
    assert_true(sp_lending_reserve(w.sim, w.B, w.usdc) > reserve_b0);
    assert_true(sp_lending_exchange_rate(w.sim, w.A, w.eth) > aeth_rate0);
    assert_true(sp_lending_exchange_rate(w.sim, w.B, w.usdc) > busdc_rate0);
    assert_true(max_debt_a > 0 && max_debt_b > 0);
    /* The loopers looped: every member had debt on A at some point. */
    int n_seen = 0;
    for (int i = 0; i < N_CALM + N_TWITCHY; i++) n_seen += looper_seen[i];
    print_message("loopers seen with debt on A: %d of %d\n", n_seen, N_CALM + N_TWITCHY);
    assert_int_equal(n_seen, N_CALM + N_TWITCHY);
    sp_sim_finish(w.sim);
    const char *keys[] = { "n_loops_calm", "n_loops_twitchy", "n_deleverages_calm",
                           "n_deleverages_twitchy", "n_margin_calm", "n_stuck_calm",
                           "n_stuck_twitchy", "n_reverted_calm", "n_reverted_twitchy",
                           "rebalances_vault", "redemptions_vault", "deposits_vault",
                           "n_runs_dep" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        print_message("%-22s %g\n", keys[i], tw_summary(w.sim, keys[i]));
    assert_true(tw_summary(w.sim, "n_loops_calm") >= N_CALM);
    assert_true(tw_summary(w.sim, "n_loops_twitchy") >= N_TWITCHY);
    assert_true(tw_summary(w.sim, "rebalances_vault") > 10);
    /* They defended their health factors after the peg moved. */
    assert_true(tw_summary(w.sim, "n_deleverages_twitchy") + tw_summary(w.sim, "n_margin_calm") +
                tw_summary(w.sim, "n_deleverages_calm") > 0);
    assert_true(tw_summary(w.sim, "deposits_vault") >= ok[OP_VAULT_DEPOSIT]);
    print_message("vault redemptions by the actors: %ld paid, %ld of them in part\n",
                  w.redeem_paid, w.redeem_partial);
    assert_true(w.redeem_paid >= 20);
    assert_true(tw_summary(w.sim, "redemptions_vault") >= w.redeem_paid);
    world_close(&w);
    print_message("wall time %.2f s (CPU)\n", (double)(clock() - c0) / CLOCKS_PER_SEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_randomized_leverage_world_conserves_every_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
