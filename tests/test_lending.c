/*
 * test_lending.c — the lending protocols (market/lending*.c) in whole
 * simulations built from scenario text:
 *   - the Aave v3 health factor (FORMULAS.md, "Aave v3 health factor") with
 *     several collaterals (one with a haircut) and several debts, computed
 *     by hand; borrowing power and refusals that change nothing;
 *   - 10^5 randomized supply / withdraw / deposit / borrow / repay /
 *     seize operations under a volatile price path: after every step every
 *     token is conserved with no negative balance (sp_ledger_check), the
 *     protocol's own invariants hold (sp_lending_check), and the set of
 *     liquidatable positions equals a brute-force HF < 1 scan computed here
 *     from the amounts and prices;
 *   - interest: the kinked rate, exact accrual over one interval, the
 *     receipt identity  rate·supply + reserve = cash + debt;
 *   - contagion: bad debt in protocol A beyond its reserve lowers A's
 *     receipt exchange rate by (bad debt − reserve)/supply, and the HF of a
 *     position in protocol B that posts that receipt by exactly that ratio;
 *   - the CDP: minting, ratio, ceiling, dust, fee to surplus, deficit;
 *   - bad input with file:line and key.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "reference.h"

#define assert_near(a, b, eps)                                                          \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps)))                                                   \
            fail_msg("%s = %.17g, expected %.17g (within %g)", #a, a_, b_, (double)(eps)); \
    } while (0)

static void world_open(struct tw_world *w, const char *name, const char *yaml)
{
    tw_open(w, &(struct tw_opts){ .name = name, .text = yaml });
}

/* Prices constant (volatility 0) unless moved with sp_reference_shock;
 * Chainlink-style oracles polling every minute with a tiny deviation, so a
 * shock is delivered at the next minute. */
static const char *const world_head =
    "seed: 7\n"
    "horizon: 30d\n"
    "output: {sample_every: %s}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: WBTC, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aETH, kind: receipt, underlying: ETH, issuer: aave}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: %s, step: 1m}\n"
    "  - {type: gbm, asset: WBTC, initial: 30000, volatility: %s, step: 1m}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH},\n"
    "     poll: 1m, deviation: 0.0001%%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_btc, source: {type: reference, of: reference_WBTC},\n"
    "     poll: 1m, deviation: 0.0001%%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%%, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    accrue_every: %s\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%%, liquidation_threshold: 82.5%%,\n"
    "         borrowable: true, receipt: aETH, initial_supply: 1000, reserve: 5}\n"
    "      - {token: WBTC, oracle: o_btc, ltv: 70%%, liquidation_threshold: 75%%, haircut: 10%%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 1000000, reserve_factor: 10%%, slope1: 4%%, slope2: 60%%,\n"
    "         optimal_utilization: 90%%}\n"
    "agents:\n";

static char *owners_yaml(int n, double eth)
{
    size_t cap = 256 + (size_t)n * 200;
    char *s = malloc(cap), *p = s;
    *p = 0;
    for (int i = 0; i < n; i++)
        p += snprintf(p, cap - (size_t)(p - s),
                      "  - {type: scripted, name: u%d, holdings: [{token: ETH, amount: %g}, "
                      "{token: WBTC, amount: %g}, {token: USDC, amount: %g}], actions: []}\n",
                      i, eth, eth / 200, eth * 200);
    return s;
}

static char *scenario_x(int n_owners, const char *vol, const char *accrue, const char *sample,
                        double eth)
{
    char *head = tw_fmt(world_head, sample, vol, vol, accrue);
    char *own = owners_yaml(n_owners, eth);
    char *all = tw_fmt("%s%s", head, own);
    free(head);
    free(own);
    return all;
}

static char *scenario(int n_owners, const char *vol, const char *accrue)
{
    return scenario_x(n_owners, vol, accrue, "5m", 1000);
}

/* ---- health factor by hand ------------------------------------------------------ */

static void test_health_factor_multi(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = scenario(2, "0", "1h");
    world_open(&w, "lending_hf", y);
    free(y);
    tw_step_to(&w, SP_MIN);                 /* oracles delivered */
    sp_id aave = tw_id(&w, "aave"), u0 = tw_id(&w, "u0");
    sp_token ETH = tw_tok(&w, "ETH"), WBTC = tw_tok(&w, "WBTC"), USDC = tw_tok(&w, "USDC");
    assert_true(sp_lending_is(w.sim, aave));
    assert_near(sp_lending_price(w.sim, aave, ETH), 2000, 0);
    assert_near(sp_lending_price(w.sim, aave, USDC), 1, 0);
    assert_int_equal(sp_lending_deposit(w.sim, aave, u0, ETH, 10), 0);
    assert_int_equal(sp_lending_deposit(w.sim, aave, u0, WBTC, 1), 0);
    /* Borrowing power: 10·2000·0.8 + 1·30000·0.9·0.7 = 16000 + 18900 = 34900 USD. */
    assert_near(sp_lending_max_borrow(w.sim, aave, u0, USDC), 34900, 1e-9);
    double usdc0 = sp_balance(w.sim, u0, USDC);
    assert_int_equal(sp_lending_borrow(w.sim, aave, u0, USDC, 34901), SP_ERANGE);
    assert_near(sp_balance(w.sim, u0, USDC), usdc0, 0);          /* nothing moved */
    assert_int_equal(sp_lending_borrow(w.sim, aave, u0, USDC, 20000), 0);
    assert_int_equal(sp_lending_borrow(w.sim, aave, u0, ETH, 5), 0);      /* two debts */
    struct sp_lending_position st;
    assert_int_equal(sp_lending_position(w.sim, aave, u0, &st), 0);
    /* HF = Σ c·p·(1−h)·LT / Σ d·p = (10·2000·0.825 + 30000·0.9·0.75) / (20000 + 5·2000) */
    double W = 10 * 2000 * 0.825 + 30000 * 0.9 * 0.75;
    assert_near(st.weighted_value, W, 1e-9);
    assert_near(st.debt_value, 30000, 1e-9);
    assert_near(st.hf, W / 30000, 1e-12);
    assert_false(st.liquidatable);
    /* Withdrawing collateral beyond the borrowing power is refused. */
    assert_int_equal(sp_lending_withdraw_collateral(w.sim, aave, u0, WBTC, 1), SP_ERANGE);
    assert_near(sp_lending_collateral(w.sim, aave, u0, WBTC), 1, 0);
    /* ETH −40 %: W = 10·1200·0.825 + 20250 = 30150 ; D = 20000 + 6000 = 26000. */
    sp_reference_shock(w.sim, tw_id(&w, "reference_ETH"), 0.40, 0);
    tw_step_to(&w, 2 * SP_MIN);
    assert_int_equal(sp_lending_position(w.sim, aave, u0, &st), 0);
    assert_near(sp_lending_price(w.sim, aave, ETH), 1200, 1e-9);
    assert_near(st.hf, (10 * 1200 * 0.825 + 20250) / (20000 + 5 * 1200.0), 1e-6);
    assert_false(st.liquidatable);
    /* WBTC −50 %: W = 9900 + 10125 = 20025 < D = 26000 -> liquidatable. */
    sp_reference_shock(w.sim, tw_id(&w, "reference_WBTC"), 0.50, 0);
    tw_step_to(&w, 3 * SP_MIN);
    assert_int_equal(sp_lending_position(w.sim, aave, u0, &st), 0);
    assert_true(st.hf < 1);
    assert_true(st.liquidatable);
    sp_id owners[4];
    assert_int_equal(sp_lending_liquidatable(w.sim, aave, owners, 4), 1);
    assert_int_equal(owners[0], u0);
    assert_int_equal(sp_lending_check(w.sim, aave), 0);
    tw_close(&w);
}

/* ---- randomized: conservation, invariants, index vs brute force ------------------- */

static size_t brute_liquidatable(struct tw_world *w, sp_id proto, int n_owners, sp_id *out,
                                 size_t *ambiguous)
{
    sp_token ETH = tw_tok(w, "ETH"), WBTC = tw_tok(w, "WBTC"), USDC = tw_tok(w, "USDC");
    double pe = sp_lending_price(w->sim, proto, ETH), pb = sp_lending_price(w->sim, proto, WBTC);
    double pu = sp_lending_price(w->sim, proto, USDC);
    size_t k = 0;
    *ambiguous = 0;
    for (int i = 0; i < n_owners; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "u%d", i);
        sp_id o = tw_id(w, nm);
        double W = sp_lending_collateral(w->sim, proto, o, ETH) * pe * 0.825 +
                   sp_lending_collateral(w->sim, proto, o, WBTC) * pb * 0.9 * 0.75;
        double D = sp_lending_debt(w->sim, proto, o, ETH) * pe +
                   sp_lending_debt(w->sim, proto, o, USDC) * pu;
        if (!(D > 0)) continue;
        if (fabs(W / D - 1) < 1e-9) { (*ambiguous)++; continue; }
        if (W < D) out[k++] = o;
    }
    return k;
}

static void test_randomized_invariants(void **state)
{
    (void)state;
    enum { N = 40 };
    struct tw_world w;
    char *y = scenario_x(N, "200%", "10m", "1h", 10);
    world_open(&w, "lending_random", y);
    free(y);
    tw_step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave");
    sp_token ETH = tw_tok(&w, "ETH"), WBTC = tw_tok(&w, "WBTC"), USDC = tw_tok(&w, "USDC");
    sp_token aETH = tw_tok(&w, "aETH"), aUSDC = tw_tok(&w, "aUSDC");
    sp_id ids[N];
    for (int i = 0; i < N; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "u%d", i);
        ids[i] = tw_id(&w, nm);
    }
    struct sp_rng rng;
    sp_rng_init(&rng, 12345, 0);
    long ops = 0, ok = 0, liq_seen = 0, checks = 0;
    sp_time t = SP_MIN;
    while (ops < 100000) {
        for (int k = 0; k < 50; k++, ops++) {
            sp_id o = ids[sp_rng_below(&rng, N)];
            double u = sp_rng_uniform(&rng);
            int rc = 0;
            switch (sp_rng_below(&rng, 9)) {
            case 0: rc = sp_lending_deposit(w.sim, aave, o, ETH, u * sp_balance(w.sim, o, ETH)); break;
            case 1: rc = sp_lending_deposit(w.sim, aave, o, WBTC, u * sp_balance(w.sim, o, WBTC)); break;
            case 2: rc = sp_lending_borrow(w.sim, aave, o, USDC,
                                           u * 1.05 * sp_lending_max_borrow(w.sim, aave, o, USDC)); break;
            case 3: rc = sp_lending_borrow(w.sim, aave, o, ETH,
                                           u * sp_lending_max_borrow(w.sim, aave, o, ETH)); break;
            case 4: rc = sp_lending_repay(w.sim, aave, o, o, USDC,
                                          u * sp_balance(w.sim, o, USDC), NULL); break;
            case 5: rc = sp_lending_repay(w.sim, aave, o, o, ETH, u * sp_balance(w.sim, o, ETH), NULL); break;
            case 6: rc = sp_lending_withdraw_collateral(w.sim, aave, o, sp_rng_below(&rng, 2) ? ETH : WBTC,
                                                        u * 3); break;
            case 7:
                if (sp_rng_below(&rng, 2))
                    rc = sp_lending_supply(w.sim, aave, o, USDC, u * 0.1 * sp_balance(w.sim, o, USDC), NULL);
                else
                    rc = sp_lending_withdraw(w.sim, aave, o, USDC, u * sp_balance(w.sim, o, aUSDC), NULL);
                break;
            default: {          /* a liquidation-like seizure of a liquidatable position */
                sp_id l[N];
                size_t n = sp_lending_liquidatable(w.sim, aave, l, N);
                if (n) {
                    liq_seen++;
                    sp_id v = l[sp_rng_below(&rng, n < N ? n : N)];
                    rc = sp_lending_seize(w.sim, aave, v, ETH,
                                          u * sp_lending_collateral(w.sim, aave, v, ETH), o);
                }
                if (sp_rng_below(&rng, 2))
                    rc = sp_lending_supply(w.sim, aave, o, ETH, u * 0.1 * sp_balance(w.sim, o, ETH), NULL);
                else
                    rc = sp_lending_withdraw(w.sim, aave, o, ETH, u * sp_balance(w.sim, o, aETH), NULL);
            }
            }
            assert_true(rc == 0 || rc == SP_ERANGE || rc == SP_ENOTFOUND);
            ok += rc == 0;
        }
        if ((t / SP_MIN) % 20 == 0)         /* jolts both ways on top of the GBM */
            sp_reference_shock(w.sim, tw_id(&w, sp_rng_below(&rng, 2) ? "reference_ETH"
                                                                       : "reference_WBTC"),
                               0.16 * sp_rng_uniform(&rng) - 0.08, 0);
        t += SP_MIN;
        tw_step_to(&w, t);
        assert_int_equal(sp_lending_check(w.sim, aave), 0);
        sp_id brute[N], listed[N];
        size_t amb;
        size_t nb = brute_liquidatable(&w, aave, N, brute, &amb);
        size_t nl = sp_lending_liquidatable(w.sim, aave, listed, N);
        if (getenv("SP_DEBUG_HF") && (t / SP_MIN) % 200 == 0) {
            double mn = INFINITY;
            for (int i = 0; i < N; i++) {
                struct sp_lending_position st;
                if (!sp_lending_position(w.sim, aave, ids[i], &st) && st.hf < mn) mn = st.hf;
            }
            print_message("t=%g min hf %g eth %g\n", sp_time_sec(t), mn, sp_lending_price(w.sim, aave, ETH));
        }
        if (!amb) {
            assert_int_equal(nb, nl);
            for (size_t i = 0; i < nb; i++) assert_int_equal(brute[i], listed[i]);
            checks++;
        }
    }
    print_message("%ld operations (%ld succeeded), %ld steps compared with brute force, "
                  "%ld times a liquidatable position was seized from\n", ops, ok, checks, liq_seen);
    assert_true(ok > ops / 4);
    assert_true(liq_seen > 0);
    tw_close(&w);
}

/* ---- interest ------------------------------------------------------------------------ */

static void test_interest(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = scenario_x(2, "0", "1h", "1d", 1000);
    world_open(&w, "lending_interest", y);
    free(y);
    tw_step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave"), u0 = tw_id(&w, "u0");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC"), aUSDC = tw_tok(&w, "aUSDC");
    assert_int_equal(sp_lending_deposit(w.sim, aave, u0, ETH, 1000), 0);
    assert_int_equal(sp_lending_borrow(w.sim, aave, u0, USDC, 950000), 0);
    /* Utilization 0.95 > optimal 0.9: r = 0 + 4 % + 60 %·(0.95 − 0.9)/(1 − 0.9) = 34 %. */
    assert_near(sp_lending_borrow_rate(w.sim, aave, USDC), 0.04 + 0.60 * 0.5, 1e-12);
    assert_near(sp_lending_exchange_rate(w.sim, aave, USDC), 1.0, 1e-12);
    /* The accrual tick at 1 h is the only event touching the pool before 2 h
     * (the USDC oracle does not move): debt = 950000·exp(0.34·(1h − 1m)/yr). */
    tw_step_to(&w, SP_HOUR);
    double dt = (double)(SP_HOUR - SP_MIN) / (double)SP_YEAR;
    double D = sp_lending_debt(w.sim, aave, u0, USDC);
    assert_near(D, 950000 * exp(0.34 * dt), 1e-6);
    /* rate·supply + reserve = cash + debt, reserve = 10 % of the interest. */
    double er = sp_lending_exchange_rate(w.sim, aave, USDC);
    double res = sp_lending_reserve(w.sim, aave, USDC);
    double cash = sp_lending_cash(w.sim, aave, USDC);
    assert_near(res, 0.1 * (D - 950000), 1e-6);
    assert_near(er * sp_supply(w.sim, aUSDC) + res, cash + D, 1e-6);
    assert_true(er > 1);
    /* Over 30 days the debt compounds; the identity still holds. */
    tw_step_to(&w, 30 * SP_DAY);
    D = sp_lending_debt(w.sim, aave, u0, USDC);
    er = sp_lending_exchange_rate(w.sim, aave, USDC);
    res = sp_lending_reserve(w.sim, aave, USDC);
    assert_near(er * sp_supply(w.sim, aUSDC) + res, sp_lending_cash(w.sim, aave, USDC) + D, 1e-5);
    assert_true(D > 950000 * exp(0.34 * 29.0 / 365.25));
    assert_int_equal(sp_lending_check(w.sim, aave), 0);
    tw_close(&w);
}

/* ---- contagion through a receipt token ---------------------------------------------- */

static const char *const contagion_yaml =
    "seed: 3\n"
    "horizon: 1d\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aETH, kind: receipt, underlying: ETH, issuer: A}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1m}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH},\n"
    "     poll: 1m, deviation: 0.0001%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%, heartbeat: 1d}\n"
    "  - {type: chainlink, name: o_aeth, source: {type: value, of: aETH}, poll: 1m,\n"
    "     deviation: 0.0001%, heartbeat: 1h}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: A\n"
    "    accrue_every: 0s\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, collateral: false, borrowable: true, receipt: aETH,\n"
    "         slope1: 0, slope2: 0, reserve: 5}\n"
    "      - {token: USDC, oracle: o_usdc, ltv: 80%, liquidation_threshold: 85%}\n"
    "  - type: pool\n"
    "    name: B\n"
    "    accrue_every: 0s\n"
    "    assets:\n"
    "      - {token: aETH, oracle: o_aeth, ltv: 70%, liquidation_threshold: 80%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true,\n"
    "         receipt: bUSDC, initial_supply: 1000000, slope1: 0, slope2: 0}\n"
    "agents:\n"
    "  - {type: scripted, name: supplier, holdings: [{token: ETH, amount: 100}], actions: []}\n"
    "  - {type: scripted, name: bob, holdings: [{token: USDC, amount: 100000}], actions: []}\n"
    "  - {type: scripted, name: keeper, holdings: [{token: USDC, amount: 1}], actions: []}\n";

static void test_contagion(void **state)
{
    (void)state;
    struct tw_world w;
    /* bUSDC is B's receipt: add it to the tokens. */
    char *y = tw_fmt("%s", contagion_yaml);
    char *at = strstr(y, "references:");
    char *y2 = tw_fmt("%.*s  - {name: bUSDC, kind: receipt, underlying: USDC, issuer: B}\n%s",
                      (int)(at - y), y, at);
    world_open(&w, "lending_contagion", y2);
    free(y);
    free(y2);
    tw_step_to(&w, SP_MIN);
    sp_id A = tw_id(&w, "A"), B = tw_id(&w, "B");
    sp_id sup = tw_id(&w, "supplier"), bob = tw_id(&w, "bob");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC"), aETH = tw_tok(&w, "aETH");
    /* The supplier lends 100 ETH to A and posts the 100 aETH in B, borrowing USDC. */
    double r;
    assert_int_equal(sp_lending_supply(w.sim, A, sup, ETH, 100, &r), 0);
    assert_near(r, 100, 0);
    assert_int_equal(sp_lending_deposit(w.sim, B, sup, aETH, 100), 0);
    assert_int_equal(sp_lending_borrow(w.sim, B, sup, USDC, 100000), 0);
    /* Bob borrows 40 ETH from A against 100000 USDC (power 80000 = 40 ETH). */
    assert_int_equal(sp_lending_deposit(w.sim, A, bob, USDC, 100000), 0);
    assert_int_equal(sp_lending_borrow(w.sim, A, bob, ETH, 40), 0);
    tw_step_to(&w, 2 * SP_MIN);
    struct sp_lending_position before;
    assert_int_equal(sp_lending_position(w.sim, B, sup, &before), 0);
    assert_near(before.hf, 100 * 2000 * 0.8 / 100000, 1e-12);
    /* ETH triples: Bob owes 40·6000 = 240000 against 100000 USDC.  A keeper
     * seizes all of Bob's collateral; A writes off the 40 ETH left. */
    sp_reference_shock(w.sim, tw_id(&w, "reference_ETH"), -2.0, 0);
    tw_step_to(&w, 3 * SP_MIN);
    assert_true(sp_lending_position(w.sim, A, bob, &before) == 0 && before.liquidatable);
    assert_int_equal(sp_lending_position(w.sim, B, sup, &before), 0);
    double er0 = sp_lending_exchange_rate(w.sim, A, ETH);
    assert_near(er0, 1.0, 1e-12);
    assert_int_equal(sp_lending_seize(w.sim, A, bob, USDC, 100000, tw_id(&w, "keeper")), 0);
    double bad;
    assert_int_equal(sp_lending_write_off(w.sim, A, bob, &bad), 0);
    assert_near(bad, 40 * 6000, 1e-6);
    assert_near(sp_lending_bad_debt(w.sim, A), 40 * 6000, 1e-6);
    /* The reserve (5 ETH) absorbs first; suppliers lose 35 ETH of 100. */
    assert_near(sp_lending_reserve(w.sim, A, ETH), 0, 1e-12);
    double er1 = sp_lending_exchange_rate(w.sim, A, ETH);
    assert_near(er1, (100.0 - 35.0) / 100.0, 1e-12);
    assert_near(sp_token_rate(w.sim, aETH), er1, 1e-12);
    assert_near(sp_token_value(w.sim, aETH), er1 * 6000, 1e-9);
    /* B sees it at o_aeth's next poll: HF falls by exactly er1/er0. */
    tw_step_to(&w, 4 * SP_MIN);
    struct sp_lending_position after;
    assert_int_equal(sp_lending_position(w.sim, B, sup, &after), 0);
    assert_near(after.hf / before.hf, er1 / er0, 1e-12);
    assert_near(after.hf, 100 * 0.65 * 6000 * 0.8 / 100000, 1e-9);
    assert_int_equal(sp_lending_check(w.sim, A), 0);
    assert_int_equal(sp_lending_check(w.sim, B), 0);
    tw_close(&w);
}

/* ---- CDP ------------------------------------------------------------------------------ */

static const char *const cdp_yaml =
    "seed: 3\n"
    "horizon: 400d\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: DAI, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 150, volatility: 0, step: 1h}\n"
    "oracles:\n"
    "  - {type: osm, name: osm_eth, source: {type: reference, of: reference_ETH}, poll: 1m,\n"
    "     hop: 1h}\n"
    "protocols:\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    surplus: 100\n"
    "    debt_ceiling: 1000000\n"
    "    liquidation: {kick: keeper}\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: osm_eth, liquidation_ratio: 1.5, liquidation_penalty: 13%,\n"
    "         debt_ceiling: 5000, stability_fee: 5%, dust: 100}\n"
    "agents:\n"
    "  - {type: scripted, name: v1, holdings: [{token: ETH, amount: 100}], actions: []}\n"
    "  - {type: scripted, name: v2, holdings: [{token: ETH, amount: 100}], actions: []}\n";

static void test_cdp(void **state)
{
    (void)state;
    struct tw_world w;
    world_open(&w, "lending_cdp", cdp_yaml);
    tw_step_to(&w, 3 * SP_HOUR);             /* the OSM delivers after its hops */
    sp_id mk = tw_id(&w, "maker"), v1 = tw_id(&w, "v1"), v2 = tw_id(&w, "v2");
    sp_token ETH = tw_tok(&w, "ETH"), DAI = tw_tok(&w, "DAI");
    assert_near(sp_lending_price(w.sim, mk, ETH), 150, 1e-9);
    assert_int_equal(sp_lending_deposit(w.sim, mk, v1, ETH, 20), 0);
    /* Safe while ink·price >= art·mat: 20·150/1.5 = 2000 DAI. */
    assert_near(sp_lending_max_borrow(w.sim, mk, v1, DAI), 2000, 1e-9);
    assert_int_equal(sp_lending_borrow(w.sim, mk, v1, DAI, 50), SP_ERANGE);       /* dust */
    assert_int_equal(sp_lending_borrow(w.sim, mk, v1, DAI, 2000.5), SP_ERANGE);
    assert_int_equal(sp_lending_borrow(w.sim, mk, v1, DAI, 1800), 0);
    assert_near(sp_balance(w.sim, v1, DAI), 1800, 0);
    assert_near(sp_supply(w.sim, DAI), 1800, 0);                                  /* minted */
    struct sp_lending_position st;
    assert_int_equal(sp_lending_position(w.sim, mk, v1, &st), 0);
    assert_near(st.hf, 20 * 150 / 1.5 / 1800, 1e-12);
    /* The ilk ceiling (5000): v2 may draw at most 3200 more. */
    assert_int_equal(sp_lending_deposit(w.sim, mk, v2, ETH, 100), 0);
    assert_near(sp_lending_max_borrow(w.sim, mk, v2, DAI), 3200, 1e-9);
    /* A repay leaving less than dust is refused; a full one is fine. */
    assert_int_equal(sp_lending_repay(w.sim, mk, v1, v1, DAI, 1750, NULL), SP_ERANGE);
    /* A year of 5 % stability fee: debt·e^0.05, the fee goes to surplus. */
    tw_step_to(&w, 3 * SP_HOUR + SP_YEAR);
    double d = sp_lending_debt(w.sim, mk, v1, DAI);
    assert_near(d, 1800 * exp(0.05), 1e-6);
    assert_near(sp_lending_reserve(w.sim, mk, DAI), 100 + (d - 1800), 1e-6);
    /* ETH −50 %: 20·75/1.5 = 1000 < 1892 -> liquidatable; seize and write off. */
    sp_reference_shock(w.sim, tw_id(&w, "reference_ETH"), 0.5, 0);
    tw_step_to(&w, 6 * SP_HOUR + SP_YEAR);
    assert_int_equal(sp_lending_position(w.sim, mk, v1, &st), 0);
    assert_true(st.liquidatable);
    assert_int_equal(sp_lending_seize(w.sim, mk, v1, ETH, 20, v2), 0);
    double surplus = sp_lending_reserve(w.sim, mk, DAI), bad;
    d = sp_lending_debt(w.sim, mk, v1, DAI);
    assert_int_equal(sp_lending_write_off(w.sim, mk, v1, &bad), 0);
    assert_near(bad, d, 1e-9);
    assert_near(sp_lending_reserve(w.sim, mk, DAI), 0, 0);
    assert_true(bad > surplus);                                   /* a deficit remains */
    assert_int_equal(sp_lending_check(w.sim, mk), 0);
    tw_close(&w);
}

/* ---- bad input ----------------------------------------------------------------------- */

static void expect_error(const char *name, const char *yaml, const char *needle, int line)
{
    tw_expect_config_error_at(&(struct tw_opts){ .name = name, .text = yaml }, needle, line);
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    assert_non_null(p);
    return tw_fmt("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

static void test_bad_input(void **state)
{
    (void)state;
    char *base = scenario(1, "0", "1h");
    /* line numbers: the pool's assets are lines 25-30 of world_head */
    char *y = replace(base, "ltv: 80%, liquidation_threshold: 82.5%",
                      "ltv: 85%, liquidation_threshold: 82.5%");
    expect_error("lending_bad_ltv", y, "ltv 0.85 is above liquidation_threshold 0.825", 25);
    free(y);
    y = replace(base, "{token: WBTC, oracle: o_btc", "{token: WBTC, oracle: o_bt");
    expect_error("lending_bad_oracle", y, "unknown oracle 'o_bt' (did you mean 'o_btc'?)", 27);
    free(y);
    y = replace(base, "{token: WBTC, oracle: o_btc, ", "{token: WBTC, ");
    expect_error("lending_no_oracle", y, "oracle", 27);
    free(y);
    y = replace(base, "receipt: aUSDC,", "receipt: USDC,");
    expect_error("lending_bad_receipt", y, "expected kind receipt", 28);
    free(y);
    y = replace(base, "liquidation_threshold: 82.5%,", "liquidation_threshold: 97%, liquidation_bonus: 5%,");
    expect_error("lending_bad_bonus", y, "must be below 1", 25);
    free(y);
    free(base);
    char *c = replace(cdp_yaml, "stablecoin: DAI", "stablecoin: ETH");
    expect_error("lending_cdp_stable", c, "expected kind stable", 14);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_factor_multi),
        cmocka_unit_test(test_interest),
        cmocka_unit_test(test_contagion),
        cmocka_unit_test(test_cdp),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_randomized_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
