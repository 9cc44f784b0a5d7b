/*
 * test_looper.c — the "looper" and "depositor" agents in whole simulations
 * built from scenario text, against the recursive-leverage arithmetic of
 * FORMULAS.md ("Recursive leverage"):
 *   - without a swap (ETH looped on ETH) n rounds at LTV λ give exposure
 *     (1 − λⁿ⁺¹)/(1 − λ) exactly, and a target is hit exactly;
 *   - through a CPMM the collateral falls short of that by exactly the
 *     slippage of each recorded trade, re-levered by the rounds after it;
 *   - after a price shock a looper deleverages back to its target exposure
 *     `reaction` after its watch sees HF below the band (margin first if it
 *     has spare; never if it is inattentive);
 *   - a depositor runs when the receipt's exchange rate draws down past its
 *     threshold, `delay` later, and one with a higher threshold stays;
 *   - populations are deterministic per seed;
 *   - scenario errors name file:line:col and suggest the nearest name.
 * Runs are stepped in process (sp_world_build, sp_sim_start, sp_sim_step);
 * sp_ledger_check runs after every step.  Interest rates are zero
 * (slope1 = slope2 = 0) so no debt accrues between the checks.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "lending.h"
#include "sim-internal.h"
#include "vault.h"

/* |a − b| <= eps·max(1, |b|), reporting both values. */
#define assert_rel(a, b, eps)                                                             \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        if (!(fabs(a_ - b_) <= (eps) * fmax(1.0, fabs(b_))))                               \
            fail_msg("%s = %.17g, expected %.17g (rel %g)", #a, a_, b_, (double)(eps));     \
    } while (0)

/* ---- helpers --------------------------------------------------------------- */

/* Small recordings: no compression, 256 rows a chunk. */
static const struct sp_rec_opts small_rec = { 0, 256 };

/* Build from `yaml`; record /events/trades to a file when `record`. */
static void world_open(struct tw_world *w, const char *name, const char *yaml, bool record)
{
    tw_open(w, &(struct tw_opts){ .name = name, .text = yaml,
                                  .record = record ? "looper" : NULL, .rec_opts = &small_rec });
}

/* Collateral, debt and exposure of `owner` on protocol "aave". */
struct pos { double coll, debt, exposure, hf; };

static struct pos position(struct tw_world *w, const char *owner, const char *coll,
                           const char *debt)
{
    sp_id proto = tw_id(w, "aave"), o = tw_id(w, owner);
    struct sp_lending_position p;
    assert_int_equal(sp_lending_position(w->sim, proto, o, &p), 0);
    struct pos r = {
        sp_lending_collateral(w->sim, proto, o, tw_tok(w, coll)),
        sp_lending_debt(w->sim, proto, o, tw_tok(w, debt)),
        p.collateral_value / (p.collateral_value - p.debt_value), p.hf,
    };
    return r;
}

/* ETH (reference 2000, no noise) and USDC; a 1000 ETH / 2M USDC CPMM; an
 * Aave-like pool lending both at LTV 0.8, LT 0.85, zero interest, with 10M
 * USDC and 10k ETH of passive supply.  `%s` slots: ETH shocks, agents. */
static const char world_fmt[] =
    "horizon: 6h\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aETH, kind: receipt, underlying: ETH, issuer: aave}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m, shocks: [%s]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0.3%%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, deviation: 0.5%%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    assets:\n"
    "      - {token: ETH, oracle: eth_usd, borrowable: true, receipt: aETH, ltv: 0.8,\n"
    "         liquidation_threshold: 0.85, slope1: 0, slope2: 0, initial_supply: 10000}\n"
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: aUSDC, slope1: 0, slope2: 0, initial_supply: %s}\n"
    "agents:\n"
    "%s";

static void open_world(struct tw_world *w, const char *name, const char *shocks,
                       const char *usdc_supply, const char *agents, bool record)
{
    static char yaml[8192];
    snprintf(yaml, sizeof yaml, world_fmt, shocks, usdc_supply, agents);
    world_open(w, name, yaml, record);
}

#define LAMBDA 0.8
#define T_START SP_MIN                       /* the loopers' default start */

/* ---- (a) loop arithmetic without a swap ------------------------------------- */

/* FORMULAS.md, "Recursive leverage": looping at LTV λ gives exposure
 * (1 − λⁿ⁺¹)/(1 − λ) after n loops.  ETH on ETH: the borrowed ETH is the
 * collateral, no trade, price cancels; safety 1 borrows to the LTV. */
static void test_looper_no_swap_exposure_matches_recursive_formula(void **state)
{
    (void)state;
    struct tw_world w;
    open_world(&w, "loop_noswap", "", "10000000",
               "  - {type: looper, name: n1, protocol: aave, collateral: ETH, debt: ETH,\n"
               "     capital: 10, loops: 1, safety: 1, hf_low: 0}\n"
               "  - {type: looper, name: n3, protocol: aave, collateral: ETH, debt: ETH,\n"
               "     capital: 10, loops: 3, safety: 1, hf_low: 0}\n"
               "  - {type: looper, name: n10, protocol: aave, collateral: ETH, debt: ETH,\n"
               "     capital: 10, loops: 10, safety: 1, hf_low: 0}\n"
               "  - {type: looper, name: t3, protocol: aave, collateral: ETH, debt: ETH,\n"
               "     capital: 10, target_leverage: 3, safety: 1, hf_low: 0}\n", false);
    tw_step_to(&w, T_START - 1);
    assert_rel(sp_lending_collateral(w.sim, tw_id(&w, "aave"), tw_id(&w, "n3"), tw_tok(&w, "ETH")),
               0.0, 0);
    tw_step_to(&w, T_START);
    const struct { const char *name; int n; } cases[] = { { "n1", 1 }, { "n3", 3 }, { "n10", 10 } };
    for (size_t i = 0; i < 3; i++) {
        double e = (1 - pow(LAMBDA, cases[i].n + 1)) / (1 - LAMBDA);
        struct pos p = position(&w, cases[i].name, "ETH", "ETH");
        assert_rel(p.exposure, e, 1e-12);
        assert_rel(p.coll, 10 * e, 1e-12);
        assert_rel(p.debt, 10 * (e - 1), 1e-12);
        assert_rel(sp_balance(w.sim, tw_id(&w, cases[i].name), tw_tok(&w, "ETH")), 0.0, 1e-12);
    }
    /* A target of 3: 2.952 after three rounds, so a fourth, cut to land on 3. */
    struct pos t = position(&w, "t3", "ETH", "ETH");
    assert_rel(t.exposure, 3.0, 1e-9);
    assert_rel(t.coll, 30.0, 1e-9);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_loops_n10"), 10, 0);
    assert_rel(tw_summary(w.sim, "n_loops_t3"), 4, 0);
    assert_rel(tw_summary(w.sim, "leverage_mean_n1"), 1.8, 1e-12);
    tw_close(&w);
}

/* ---- (b) through a CPMM: frictionless minus the slippage ------------------- */

/* With safety 1 each round brings the debt to λ·(collateral value).  Write
 * c_k for the collateral after round k, u_k = c_k − d_k/p for the equity in
 * ETH at the oracle price p, and s_k = (amount_in − p·amount_out)/p for the
 * slippage of round k's swap in ETH at that price (fee included).  Round k
 * borrows λ·p·c_k − d_k USDC and gets (λ·p·c_k − d_k)/p − s_k ETH, so
 *     u_{k+1} = u_k − s_k,    c_{k+1} = λ·c_k + u_{k+1},
 * and, with c_0 = u_0 = C,
 *     c_n = C·(1 − λⁿ⁺¹)/(1 − λ) − Σ_k s_k·(1 − λ^(n−k))/(1 − λ),
 *     E   = c_n / (C − Σ_k s_k):
 * the frictionless collateral less each slippage, re-levered by the rounds
 * still to come.  The s_k come from /events/trades. */
static void test_looper_cpmm_exposure_is_frictionless_less_slippage(void **state)
{
    (void)state;
    const int n = 4;
    const double C = 20;
    struct tw_world w;
    open_world(&w, "loop_cpmm", "", "10000000",
               "  - {type: looper, name: lev, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, loops: 4, safety: 1, hf_low: 0,\n"
               "     max_slippage: 10%}\n", true);
    tw_step_to(&w, T_START);
    struct pos p = position(&w, "lev", "ETH", "USDC");
    double price = sp_lending_price(w.sim, tw_id(&w, "aave"), tw_tok(&w, "ETH"));
    assert_rel(price, 2000.0, 1e-12);
    tw_finish(&w);
    size_t nt, n2, elem;
    double *in = tu_read_f64(w.h5, "/events/trades/amount_in", &nt);
    double *out = tu_read_f64(w.h5, "/events/trades/amount_out", &n2);
    int8_t *cause = tu_read_raw(w.h5, "/events/trades/cause", &n2, &elem);
    assert_int_equal(nt, (size_t)n);
    assert_int_equal(elem, 1);
    double coll = C * (1 - pow(LAMBDA, n + 1)) / (1 - LAMBDA), slip = 0;
    double frictionless = coll / C;
    for (int k = 0; k < n; k++) {
        assert_string_equal(sp_cause_names[cause[k]], "loop");
        double s = (in[k] - price * out[k]) / price;
        assert_true(s > 0);
        coll -= s * (1 - pow(LAMBDA, n - k)) / (1 - LAMBDA);
        slip += s;
    }
    assert_rel(p.coll, coll, 1e-10);
    assert_rel(p.exposure, coll / (C - slip), 1e-10);
    /* The position is smaller than the frictionless one, but its leverage
     * on what equity is left is higher: E = Σ_j λ^(n−j)·u_j/u_n with the
     * u_j falling, so E > Σ_j λ^(n−j) = (1 − λⁿ⁺¹)/(1 − λ). */
    assert_true(p.coll < C * frictionless);
    assert_true(p.exposure > frictionless);
    assert_rel(tw_summary(w.sim, "slippage_lev"), slip * price, 1e-9);
    free(in);
    free(out);
    free(cause);
    tw_close(&w);
}

/* ---- (c) deleveraging after a shock ----------------------------------------- */

/* Target exposure 3 at LT 0.85: HF = LT/(1 − 1/E) = 1.275.  ETH drops 10 %
 * at 1h (over 1 s): E = 2.7/0.7, HF = 0.85·2.7/2 = 1.1475 < hf_low 1.2.
 * The chainlink feed (0.5 % deviation, 12 s poll) delivers at 1h12s; the
 * watch (every minute from 1m) sees it at 1h1m and acts 30 s later. */
static void test_looper_deleverages_after_shock_after_its_reaction(void **state)
{
    (void)state;
    struct tw_world w;
    open_world(&w, "loop_shock", "{at: 1h, drop: 10%, over: 1s}", "10000000",
               "  - {type: looper, name: alert, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, target_leverage: 3, hf_low: 1.2, reaction: 30,\n"
               "     max_slippage: 20%}\n"
               "  - {type: looper, name: sleepy, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, target_leverage: 3, hf_low: 1.2,\n"
               "     inattentive: 100%, max_slippage: 20%}\n"
               "  - {type: looper, name: saver, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, spare: 50, target_leverage: 3, hf_low: 1.2,\n"
               "     reaction: 30, max_slippage: 20%}\n", true);
    tw_step_to(&w, T_START);
    struct pos a0 = position(&w, "alert", "ETH", "USDC");
    struct pos s0 = position(&w, "saver", "ETH", "USDC");
    struct pos z0 = position(&w, "sleepy", "ETH", "USDC");
    assert_rel(a0.exposure, 3.0, 1e-9);
    assert_rel(a0.hf, 0.85 / (1 - 1 / a0.exposure), 1e-12);
    const sp_time t_act = SP_HOUR + SP_MIN + 30 * SP_SEC;
    tw_step_to(&w, t_act - 1);
    struct pos a1 = position(&w, "alert", "ETH", "USDC");
    assert_rel(a1.coll, a0.coll, 0);                      /* not yet */
    assert_true(a1.hf < 1.2);
    tw_step_to(&w, t_act);
    struct pos a2 = position(&w, "alert", "ETH", "USDC");
    assert_true(a2.coll < a0.coll && a2.debt < a0.debt);
    assert_rel(a2.exposure, a0.exposure, 1e-9);           /* back to its target */
    assert_true(a2.hf > 1.2);
    /* The one with spare margin deposits just enough of it instead. */
    struct pos s2 = position(&w, "saver", "ETH", "USDC");
    assert_rel(s2.debt, s0.debt, 0);
    assert_true(s2.coll > s0.coll);
    assert_rel(s2.exposure, s0.exposure, 1e-9);
    /* The inattentive one never moves. */
    tw_step_to(&w, 3 * SP_HOUR);
    struct pos z = position(&w, "sleepy", "ETH", "USDC");
    assert_rel(z.coll, z0.coll, 0);
    assert_rel(z.debt, z0.debt, 0);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_deleverages_alert"), 1, 0);
    assert_rel(tw_summary(w.sim, "n_deleverages_saver"), 0, 0);
    assert_rel(tw_summary(w.sim, "n_margin_saver"), 1, 0);
    assert_rel(tw_summary(w.sim, "n_deleverages_sleepy"), 0, 0);
    /* In /events/trades: loops at 1m by all three, then deleverage sales by
     * `alert` alone, all at 1h1m30s. */
    size_t n, n2, elem;
    double *t = tu_read_f64(w.h5, "/events/trades/t", &n);
    int8_t *cause = tu_read_raw(w.h5, "/events/trades/cause", &n2, &elem);
    int32_t *agent = tu_read_raw(w.h5, "/events/trades/agent", &n2, &elem);
    assert_int_equal(elem, 4);
    size_t n_delev = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(sp_cause_names[cause[i]], "loop")) {
            assert_rel(t[i], 60, 0);
        } else {
            assert_string_equal(sp_cause_names[cause[i]], "deleverage");
            assert_rel(t[i], sp_time_sec(t_act), 0);
            assert_int_equal(agent[i], (int32_t)tw_id(&w, "alert"));
            n_delev++;
        }
    }
    assert_true(n_delev >= 1);
    free(t);
    free(cause);
    free(agent);
    tw_close(&w);
}

/* A 25 % drop takes E = 3 to V = 2.25, D = 2 (per unit of equity at the
 * start): borrowing power 0.8·2.25 = 1.8 is below the debt, so nothing can
 * be withdrawn, and without spare margin or flash liquidity it is stuck
 * (HF = 0.85·2.25/2 = 0.956: it waits for the liquidators, none here).  A
 * 20 % rise takes HF above hf_high 1.5 (E = 3.6/1.6 = 2.25, HF = 1.53): the
 * other one loops back up to its target. */
static void test_looper_stuck_below_ltv_and_relevers_above_band(void **state)
{
    (void)state;
    struct tw_world w;
    open_world(&w, "loop_stuck", "{at: 1h, drop: 25%, over: 1s}", "10000000",
               "  - {type: looper, name: stuck, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, target_leverage: 3, hf_low: 1.2,\n"
               "     max_slippage: 50%}\n", false);
    tw_step_to(&w, T_START);
    struct pos a0 = position(&w, "stuck", "ETH", "USDC");
    tw_step_to(&w, 2 * SP_HOUR);
    struct pos a1 = position(&w, "stuck", "ETH", "USDC");
    assert_rel(a1.coll, a0.coll, 0);
    assert_rel(a1.debt, a0.debt, 0);
    assert_true(a1.hf < 1);
    tw_finish(&w);
    assert_true(tw_summary(w.sim, "n_stuck_stuck") >= 1);
    assert_rel(tw_summary(w.sim, "n_deleverages_stuck"), 0, 0);
    tw_close(&w);

    open_world(&w, "loop_relever", "{at: 1h, drop: -20%, over: 1s}", "10000000",
               "  - {type: looper, name: up, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 20, target_leverage: 3, hf_low: 1.2, hf_high: 1.5,\n"
               "     max_slippage: 50%}\n", false);
    tw_step_to(&w, T_START);
    a0 = position(&w, "up", "ETH", "USDC");
    tw_step_to(&w, SP_HOUR + SP_MIN - 1);
    a1 = position(&w, "up", "ETH", "USDC");
    assert_rel(a1.hf, 0.85 / (1 - 1 / 2.25), 1e-6);
    tw_step_to(&w, SP_HOUR + SP_MIN);
    struct pos a2 = position(&w, "up", "ETH", "USDC");
    assert_true(a2.debt > a0.debt);
    assert_rel(a2.exposure, 3.0, 1e-9);
    tw_finish(&w);
    tw_close(&w);
}

/* ---- (d) a depositor run ---------------------------------------------------- */

/* Two depositors supply 100k USDC each (no passive supply); a looper
 * borrows 160k against 100 ETH.  At 2h the test wipes out the looper's
 * collateral and writes its debt off (what a liquidation that recovers
 * nothing leaves): no reserve, so the suppliers take it and the receipt's
 * rate falls from 1 to 40k/200k = 0.2, a drawdown of 80 %.  The watch at
 * 2h1m sees it; the one with threshold 5 % runs 10 min later and gets its
 * 100k·0.2 = 20k; the one with threshold 90 % stays. */
static void test_depositor_runs_after_drawdown_past_threshold(void **state)
{
    (void)state;
    struct tw_world w;
    open_world(&w, "deposit_run", "", "0",
               "  - {type: depositor, name: nervous, pool: aave, token: USDC, amount: 100000,\n"
               "     run_threshold: 0.05, delay: 600}\n"
               "  - {type: depositor, name: calm, pool: aave, token: USDC, amount: 100000,\n"
               "     run_threshold: 0.9, delay: 600}\n"
               "  - {type: looper, name: lev, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 100, loops: 1, safety: 1, max_slippage: 20%}\n",
               false);
    sp_id proto = tw_id(&w, "aave"), lev = tw_id(&w, "lev");
    sp_token eth = tw_tok(&w, "ETH"), usdc = tw_tok(&w, "USDC"), ausdc = tw_tok(&w, "aUSDC");
    tw_step_to(&w, 2 * SP_HOUR);
    assert_rel(sp_lending_debt(w.sim, proto, lev, usdc), 160000, 1e-12);
    assert_rel(sp_lending_exchange_rate(w.sim, proto, usdc), 1.0, 1e-12);
    double c = sp_lending_collateral(w.sim, proto, lev, eth);
    assert_int_equal(sp_lending_seize(w.sim, proto, lev, eth, c, lev), 0);
    double bad;
    assert_int_equal(sp_lending_write_off(w.sim, proto, lev, &bad), 0);
    assert_rel(sp_lending_exchange_rate(w.sim, proto, usdc), 0.2, 1e-12);
    sp_id nervous = tw_id(&w, "nervous"), calm = tw_id(&w, "calm");
    const sp_time t_run = 2 * SP_HOUR + SP_MIN + 10 * SP_MIN;
    tw_step_to(&w, t_run - 1);
    assert_rel(sp_balance(w.sim, nervous, ausdc), 100000, 1e-12);
    assert_rel(sp_balance(w.sim, nervous, usdc), 0, 0);
    tw_step_to(&w, t_run);
    assert_rel(sp_balance(w.sim, nervous, ausdc), 0, 1e-9);
    assert_rel(sp_balance(w.sim, nervous, usdc), 20000, 1e-9);
    tw_step_to(&w, 6 * SP_HOUR);
    assert_rel(sp_balance(w.sim, calm, ausdc), 100000, 1e-12);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_runs_nervous"), 1, 0);
    assert_rel(tw_summary(w.sim, "first_run_nervous"), 7260, 0);
    assert_rel(tw_summary(w.sim, "withdrawn_nervous"), 20000, 1e-9);
    assert_rel(tw_summary(w.sim, "n_unserved_nervous"), 0, 0);
    assert_rel(tw_summary(w.sim, "n_runs_calm"), 0, 0);
    tw_close(&w);
}

/* An illiquid pool: two loopers borrow 80k each of the 200k supplied;
 * `lev1` is written off (80k of bad debt): rate (40k + 80k)/200k = 0.6.  The
 * nervous depositor's 100k receipts are worth 60k but the cash is 40k: it
 * takes the 40k (cash/rate receipts) and queues for the rest, which it gets
 * at the first watch after `lev2` repays (the test pays for it). */
static void test_depositor_run_on_illiquid_pool_is_served_as_cash_returns(void **state)
{
    (void)state;
    struct tw_world w;
    open_world(&w, "deposit_queue", "", "0",
               "  - {type: depositor, name: nervous, pool: aave, token: USDC, amount: 100000,\n"
               "     run_threshold: 0.05, delay: 600}\n"
               "  - {type: depositor, name: calm, pool: aave, token: USDC, amount: 100000,\n"
               "     run_threshold: 0.9}\n"
               "  - {type: looper, name: lev1, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 50, loops: 1, safety: 1, max_slippage: 20%}\n"
               "  - {type: looper, name: lev2, protocol: aave, collateral: ETH, debt: USDC,\n"
               "     venue: pool, capital: 50, loops: 1, safety: 1, max_slippage: 20%}\n",
               false);
    sp_id proto = tw_id(&w, "aave"), lev1 = tw_id(&w, "lev1"), lev2 = tw_id(&w, "lev2");
    sp_id nervous = tw_id(&w, "nervous");
    sp_token eth = tw_tok(&w, "ETH"), usdc = tw_tok(&w, "USDC"), ausdc = tw_tok(&w, "aUSDC");
    tw_step_to(&w, 2 * SP_HOUR);
    assert_rel(sp_lending_cash(w.sim, proto, usdc), 40000, 1e-12);
    double c = sp_lending_collateral(w.sim, proto, lev1, eth);
    assert_int_equal(sp_lending_seize(w.sim, proto, lev1, eth, c, lev1), 0);
    assert_int_equal(sp_lending_write_off(w.sim, proto, lev1, NULL), 0);
    assert_rel(sp_lending_exchange_rate(w.sim, proto, usdc), 0.6, 1e-12);
    const sp_time t_run = 2 * SP_HOUR + 11 * SP_MIN;
    tw_step_to(&w, t_run);
    assert_rel(sp_balance(w.sim, nervous, usdc), 40000, 1e-8);
    assert_rel(sp_balance(w.sim, nervous, ausdc), 100000 - 40000 / 0.6, 1e-8);
    tw_step_to(&w, 3 * SP_HOUR);                      /* still queued: no cash */
    assert_rel(sp_balance(w.sim, nervous, usdc), 40000, 1e-8);
    assert_int_equal(sp_mint(w.sim, usdc, lev2, 80000), 0);
    assert_int_equal(sp_lending_repay(w.sim, proto, lev2, lev2, usdc, 80000, NULL), 0);
    tw_step_to(&w, 3 * SP_HOUR + SP_MIN);
    assert_rel(sp_balance(w.sim, nervous, usdc), 60000, 1e-8);
    assert_rel(sp_balance(w.sim, nervous, ausdc), 0, 1e-8);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_runs_nervous"), 1, 0);
    assert_rel(tw_summary(w.sim, "withdrawn_nervous"), 60000, 1e-8);
    assert_rel(tw_summary(w.sim, "n_unserved_nervous"), 0, 0);
    tw_close(&w);
}

/* The vault path: a vault loops ETH against USDC at 3x; a depositor puts
 * 10 ETH in at 0.  ETH falls 10 % at 2h, so NAV (ETH units) = C − D/p
 * falls by about a fifth (3 − 2/0.9 = 0.78 per unit); the watch at 2h1m sees
 * it and the depositor redeems all its shares 5 minutes later (the vault
 * unwinds to pay, cause "redemption").  A second depositor with a 90 %
 * threshold stays.  (After a 20 % drop the vault's debt would exceed its
 * borrowing power — D/V = 0.67/0.8 > LTV — and it could pay nothing: the
 * depositor would stay queued.) */
static void test_depositor_runs_on_a_vault(void **state)
{
    (void)state;
    static char yaml[8192];
    char agents[1024];
    snprintf(agents, sizeof agents, "%s",
             "  - {type: vault, name: vault, share: vETH, protocol: aave, debt: USDC,\n"
             "     venue: pool, target_leverage: 3, max_slippage: 20%}\n"
             "  - {type: depositor, name: nervous, vault: vault, token: ETH, amount: 10,\n"
             "     run_threshold: 0.1, delay: 300}\n"
             "  - {type: depositor, name: calm, vault: vault, token: ETH, amount: 10,\n"
             "     run_threshold: 0.9}\n");
    snprintf(yaml, sizeof yaml, world_fmt, "{at: 2h, drop: 10%, over: 1s}", "10000000", agents);
    /* the vault's share token */
    char *at = strstr(yaml, "references:");
    char text[8400];
    snprintf(text, sizeof text, "%.*s  - {name: vETH, kind: vault_share, underlying: ETH, "
             "issuer: vault}\n%s", (int)(at - yaml), yaml, at);
    struct tw_world w;
    world_open(&w, "deposit_vault", text, false);
    sp_id vault = tw_id(&w, "vault"), nervous = tw_id(&w, "nervous"), calm = tw_id(&w, "calm");
    sp_token veth = tw_tok(&w, "vETH"), eth = tw_tok(&w, "ETH");
    tw_step_to(&w, 2 * SP_HOUR);
    double shares = sp_balance(w.sim, nervous, veth);
    assert_true(shares > 0);
    assert_rel(sp_vault_leverage(w.sim, vault), 3.0, 0.1);
    const sp_time t_run = 2 * SP_HOUR + 6 * SP_MIN;
    tw_step_to(&w, t_run - 1);
    assert_true(sp_vault_share_price(w.sim, vault) < 0.9 * 1.0);
    assert_rel(sp_balance(w.sim, nervous, veth), shares, 0);
    assert_rel(sp_balance(w.sim, nervous, eth), 0, 0);
    tw_step_to(&w, t_run);
    assert_rel(sp_balance(w.sim, nervous, veth), 0, 1e-9);
    assert_true(sp_balance(w.sim, nervous, eth) > 0.7 * 10);
    tw_step_to(&w, 6 * SP_HOUR);
    assert_true(sp_balance(w.sim, calm, veth) > 0);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_runs_nervous"), 1, 0);
    assert_rel(tw_summary(w.sim, "first_run_nervous"), 7260, 0);
    assert_rel(tw_summary(w.sim, "n_runs_calm"), 0, 0);
    tw_close(&w);
}

/* ---- (e) populations -------------------------------------------------------- */

static const char pop_agents[] =
    "  - {type: looper, name: crowd, count: 20, protocol: aave, collateral: ETH, debt: USDC,\n"
    "     venue: pool, capital: {dist: lognormal, mean: 2, sd: 1}, max_slippage: 20%,\n"
    "     target_leverage: {dist: uniform, low: 1.5, high: 3}, inattentive: 30%,\n"
    "     reaction: {dist: exponential, mean: 60}, hf_low: 1.2, start_spread: 10m}\n";

/* Every member's collateral, debt and wallet after a shock, in member order. */
static void run_population(const char *seed, double out[20][4], double *lev_mean)
{
    char yaml[8192], agents[1024];
    snprintf(agents, sizeof agents, "%s", pop_agents);
    snprintf(yaml, sizeof yaml, world_fmt, "{at: 1h, drop: 10%, over: 1s}", "10000000", agents);
    char text[8300];
    snprintf(text, sizeof text, "seed: %s\n%s", seed, yaml);
    struct tw_world w;
    world_open(&w, "loop_pop", text, false);
    tw_step_to(&w, 4 * SP_HOUR);
    for (int k = 0; k < 20; k++) {
        char name[32];
        snprintf(name, sizeof name, "crowd_%d", k);
        struct pos p = position(&w, name, "ETH", "USDC");
        out[k][0] = p.coll;
        out[k][1] = p.debt;
        out[k][2] = sp_balance(w.sim, tw_id(&w, name), tw_tok(&w, "ETH"));
        out[k][3] = sp_balance(w.sim, tw_id(&w, name), tw_tok(&w, "USDC"));
    }
    tw_finish(&w);
    *lev_mean = tw_summary(w.sim, "leverage_mean_crowd");
    assert_true(tw_summary(w.sim, "n_loops_crowd") >= 20);
    tw_close(&w);
}

static void test_looper_population_is_deterministic_per_seed(void **state)
{
    (void)state;
    static double a[20][4], b[20][4], c[20][4];
    double la, lb, lc;
    run_population("7", a, &la);
    run_population("7", b, &lb);
    run_population("8", c, &lc);
    assert_memory_equal(a, b, sizeof a);
    assert_true(la == lb);
    assert_true(memcmp(a, c, sizeof a) != 0);
    assert_true(la >= 1.5 && la <= 3.0 + 1e-6);
    /* Members draw their own capital: not all alike. */
    bool differ = false;
    for (int k = 1; k < 20; k++) differ |= a[k][0] != a[0][0];
    assert_true(differ);
}

/* ---- (f) bad input ---------------------------------------------------------- */

static const char bad_fmt[] =
    "horizon: 1h\n"                                                          /* 1 */
    "tokens:\n"                                                              /* 2 */
    "  - {name: ETH, kind: base}\n"                                          /* 3 */
    "  - {name: USDC, kind: stable}\n"                                       /* 4 */
    "  - {name: stETH, kind: lst, underlying: ETH}\n"                        /* 5 */
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"     /* 6 */
    "references:\n"                                                          /* 7 */
    "  - {type: gbm, asset: ETH, initial: 2000}\n"                           /* 8 */
    "markets:\n"                                                             /* 9 */
    "  - {type: stableswap, name: curve, base: stETH, quote: ETH, reserve_base: 100,\n"
    "     reserve_quote: 100}\n"                                             /* 11 */
    "oracles:\n"                                                             /* 12 */
    "  - {type: heartbeat, name: eth_usd, source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"
    "protocols:\n"                                                           /* 15 */
    "  - type: pool\n"                                                       /* 16 */
    "    name: aave\n"                                                       /* 17 */
    "    assets:\n"                                                          /* 18 */
    "      - {token: ETH, oracle: eth_usd}\n"                                /* 19 */
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true, receipt: aUSDC}\n"
    "agents:\n"                                                              /* 21 */
    "  - type: looper\n"                                                     /* 22 */
    "    protocol: %s\n"                                                     /* 23 */
    "    collateral: ETH\n"                                                  /* 24 */
    "    debt: USDC\n"                                                       /* 25 */
    "    venue: curve\n"                                                     /* 26 */
    "    capital: 10\n"                                                      /* 27 */
    "    loops: 3\n";                                                        /* 28 */

static char *bind_errors(const char *protocol)
{
    char text[4096];
    snprintf(text, sizeof text, bad_fmt, protocol);
    return tw_config_error(&(struct tw_opts){ .name = "bad.yaml", .text = text, .in_memory = true },
                           false);
}

static void test_looper_bad_protocol_and_venue_are_reported_with_line(void **state)
{
    (void)state;
    char *msg = bind_errors("aavee");
    if (!strstr(msg, "bad.yaml:23:") || !strstr(msg, "unknown protocol 'aavee' (did you mean 'aave'?)"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    if (!strstr(msg, "bad.yaml:26:") ||
        !strstr(msg, "venue 'curve' trades stETH/ETH, not the looper's pair ETH/USDC"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    free(msg);
    msg = bind_errors("aave");                 /* the venue alone */
    if (strstr(msg, "protocol") || !strstr(msg, "bad.yaml:26:"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    free(msg);
}

/* ---- (f) a cdp, and vault shares as collateral ------------------------------- */

/* A looper on a Maker-like cdp: DAI is minted, not lent, so it is no listed
 * asset of the protocol; the looper must still borrow it, buy ETH with it
 * and reach its target exposure. */
static void test_looper_loops_on_a_cdp(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 2h\n"
        "output: {sample_every: 1h}\n"
        "tokens:\n"
        "  - {name: ETH, kind: base}\n"
        "  - {name: DAI, kind: stable}\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 2000, step: 1m}\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 10000,\n"
        "     reserve_quote: 20000000, fee: 0.3%}\n"
        "oracles:\n"
        "  - {type: chainlink, name: eth_usd, deviation: 0.5%, heartbeat: 1h,\n"
        "     source: {type: reference, of: reference_ETH}}\n"
        "protocols:\n"
        "  - type: cdp\n"
        "    name: maker\n"
        "    stablecoin: DAI\n"
        "    collaterals:\n"
        "      - {token: ETH, oracle: eth_usd, liquidation_ratio: 1.5, stability_fee: 0}\n"
        "agents:\n"
        "  - {type: looper, name: lev, protocol: maker, collateral: ETH, debt: DAI, venue: pool,\n"
        "     capital: 10, target_leverage: 2.5, max_slippage: 5%}\n";
    struct tw_world w;
    world_open(&w, "loop_cdp", yaml, false);
    tw_step_to(&w, SP_HOUR);
    sp_id maker = tw_id(&w, "maker"), lev = tw_id(&w, "lev");
    sp_token eth = tw_tok(&w, "ETH"), dai = tw_tok(&w, "DAI");
    double coll = sp_lending_collateral(w.sim, maker, lev, eth);
    double debt = sp_lending_debt(w.sim, maker, lev, dai);
    assert_true(debt > 0);
    /* every DAI in existence was minted by the looper's borrowing, or is the pool's */
    assert_rel(sp_supply(w.sim, dai), 20000000 + debt, 1e-12);
    struct sp_lending_position p;
    assert_int_equal(sp_lending_position(w.sim, maker, lev, &p), 0);
    double exposure = p.collateral_value / (p.collateral_value - p.debt_value);
    if (!(exposure > 2.2 && exposure < 2.6)) fail_msg("exposure %g coll %g debt %g", exposure, coll, debt);
    assert_true(coll > 10 * 2.2);
    /* within the cdp's limit: debt <= value / mat */
    assert_true(p.debt_value <= p.collateral_value / 1.5 * (1 + 1e-12));
    tw_close(&w);
}

/* The second layer of a vault chain: a looper whose collateral is a vault's
 * shares on a second protocol buys the vault's asset and deposits it into
 * the vault.  The shares are only ever minted by the vault, so the share
 * price is not diluted: supply × price = NAV. */
static void test_looper_posts_vault_shares_bought_through_the_vault(void **state)
{
    (void)state;
    static char yaml[8192];
    snprintf(yaml, sizeof yaml, world_fmt, "", "10000000",
             "  - {type: vault, name: vault, share: vETH, protocol: aave, debt: USDC,\n"
             "     venue: pool, target_leverage: 2, max_slippage: 20%}\n"
             "  - {type: looper, name: lev, protocol: fuse, collateral: vETH, debt: USDC,\n"
             "     venue: pool, capital: 20, target_leverage: 2, max_slippage: 20%}\n");
    char text[10000];
    char *at = strstr(yaml, "references:");
    char *agents = strstr(yaml, "agents:\n");
    snprintf(text, sizeof text,
             "%.*s  - {name: vETH, kind: vault_share, underlying: ETH, issuer: vault}\n"
             "  - {name: fUSDC, kind: receipt, underlying: USDC, issuer: fuse}\n"
             "%.*s"
             "  - {type: heartbeat, name: veth_usd, source: {type: value, of: vETH}}\n"
             "%.*s"
             "  - type: pool\n"
             "    name: fuse\n"
             "    assets:\n"
             "      - {token: vETH, oracle: veth_usd, ltv: 0.7, liquidation_threshold: 0.75}\n"
             "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
             "         receipt: fUSDC, slope1: 0, slope2: 0, initial_supply: 1000000}\n"
             "%s",
             (int)(at - yaml), yaml,
             (int)(strstr(yaml, "protocols:") - at), at,
             (int)(agents - strstr(yaml, "protocols:")), strstr(yaml, "protocols:"), agents);
    struct tw_world w;
    world_open(&w, "loop_vault_share", text, false);
    sp_id fuse = tw_id(&w, "fuse"), lev = tw_id(&w, "lev"), vault = tw_id(&w, "vault");
    sp_token veth = tw_tok(&w, "vETH"), usdc = tw_tok(&w, "USDC"), eth = tw_tok(&w, "ETH");
    tw_step_to(&w, 2 * SP_HOUR);
    double shares = sp_lending_collateral(w.sim, fuse, lev, veth);
    assert_true(shares > 20 * 1.5);                    /* looped: more than its capital */
    assert_true(sp_lending_debt(w.sim, fuse, lev, usdc) > 0);
    assert_rel(sp_balance(w.sim, lev, eth), 0, 1e-9);   /* all of it went into the vault */
    /* Every share came from a deposit: the supply is what fuse holds plus the
     * vault's own, and the share price is NAV over it (not diluted). */
    double price = sp_vault_share_price(w.sim, vault);
    assert_true(price > 0.9 && price <= 1.0 + 1e-9);
    assert_rel(sp_supply(w.sim, veth), shares + sp_balance(w.sim, vault, veth), 1e-12);
    struct sp_lending_position p;
    assert_int_equal(sp_lending_position(w.sim, fuse, lev, &p), 0);
    double exposure = p.collateral_value / (p.collateral_value - p.debt_value);
    if (!(exposure > 1.8 && exposure < 2.3)) fail_msg("exposure %g", exposure);
    tw_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_looper_no_swap_exposure_matches_recursive_formula),
        cmocka_unit_test(test_looper_cpmm_exposure_is_frictionless_less_slippage),
        cmocka_unit_test(test_looper_deleverages_after_shock_after_its_reaction),
        cmocka_unit_test(test_looper_stuck_below_ltv_and_relevers_above_band),
        cmocka_unit_test(test_depositor_runs_after_drawdown_past_threshold),
        cmocka_unit_test(test_depositor_run_on_illiquid_pool_is_served_as_cash_returns),
        cmocka_unit_test(test_depositor_runs_on_a_vault),
        cmocka_unit_test(test_looper_population_is_deterministic_per_seed),
        cmocka_unit_test(test_looper_bad_protocol_and_venue_are_reported_with_line),
        cmocka_unit_test(test_looper_loops_on_a_cdp),
        cmocka_unit_test(test_looper_posts_vault_shares_bought_through_the_vault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
