/*
 * test_cpmm.c — Uniswap v2 constant-product pool mechanics.
 *
 * Swaps are checked against the published vectors of FORMULAS.md (Uniswap v2,
 * UniswapV2Library.sol getAmountOut); the invariants (k never falls, exact-out
 * inverts exact-in, LP round trip) after every step of randomized runs; and
 * the optimal arbitrage against its first-order condition, restated here from
 * the getAmountOut formula rather than taken from the code under test.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "cpmm.h"

static void assert_rel(double got, double want, double tol)
{
    double err = fabs(got - want) / fabs(want);
    if (!(err <= tol)) fail_msg("got %.17g want %.17g (rel err %.3g > %.3g)", got, want, err, tol);
}

static double mid(const struct sp_cpmm *p)
{
    double pr = NAN;
    assert_int_equal(sp_cpmm_price(p, &pr), 0);
    return pr;
}

/* log-uniform in [lo, hi] */
static double log_uniform(struct sp_rng *r, double lo, double hi)
{
    return lo * exp(sp_rng_uniform(r) * log(hi / lo));
}

static void test_cpmm_swap_matches_uniswap_v2_reference_vectors(void **state)
{
    (void)state;
    /* FORMULAS.md, Uniswap v2 (UniswapV2Library.sol getAmountOut), fee 0.3 %. */
    static const struct { double in, rin, rout, out; } v[] = {
        { 1e18, 5e18, 10e18, 1662497915624478906.0 },
        { 1e18, 10e18, 5e18, 453305446940074565.0 },
        { 2e18, 5e18, 10e18, 2851015155847869602.0 },
        { 2e18, 10e18, 5e18, 831248957812239453.0 },
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        for (int dir = 0; dir < 2; dir++) {   /* the same row in both directions */
            struct sp_cpmm p;
            double r0 = dir ? v[k].rout : v[k].rin, r1 = dir ? v[k].rin : v[k].rout, out = 0;
            assert_int_equal(sp_cpmm_init(&p, r0, r1, 0.003), 0);
            assert_int_equal(sp_cpmm_quote_in(&p, (enum sp_cpmm_dir)dir, v[k].in, &out), 0);
            assert_rel(out, v[k].out, 1e-12);
            assert_int_equal(sp_cpmm_swap_in(&p, (enum sp_cpmm_dir)dir, v[k].in, &out), 0);
            assert_rel(out, v[k].out, 1e-12);
            assert_rel(dir ? p.r1 : p.r0, v[k].rin + v[k].in, 1e-15);   /* fee stays in */
            assert_rel(dir ? p.r0 : p.r1, v[k].rout - v[k].out, 1e-12);
        }
    }
}

static void test_cpmm_exact_out_inverts_exact_in(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 11, sp_rng_key("cpmm_inverse"));
    for (int k = 0; k < 10000; k++) {
        struct sp_cpmm a, b;
        double r0 = log_uniform(&r, 1e3, 1e24), r1 = log_uniform(&r, 1e3, 1e24);
        double fee = sp_rng_uniform(&r) * 0.05;
        assert_int_equal(sp_cpmm_init(&a, r0, r1, fee), 0);
        b = a;
        enum sp_cpmm_dir dir = (enum sp_cpmm_dir)(sp_rng_next(&r) & 1);
        double in = log_uniform(&r, 1e-9, 10.0) * (dir ? r1 : r0), out, in2;
        assert_int_equal(sp_cpmm_quote_in(&a, dir, in, &out), 0);
        assert_int_equal(sp_cpmm_quote_out(&a, dir, out, &in2), 0);
        assert_rel(in2, in, 1e-9);
        /* swapping exact-out for that output lands on the same state */
        assert_int_equal(sp_cpmm_swap_in(&a, dir, in, &out), 0);
        assert_int_equal(sp_cpmm_swap_out(&b, dir, out, &in2), 0);
        assert_rel(b.r0, a.r0, 1e-9);
        assert_rel(b.r1, a.r1, 1e-12);
    }
}

static void test_cpmm_k_never_falls_over_random_swaps(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 12, sp_rng_key("cpmm_k"));
    struct sp_cpmm p;
    assert_int_equal(sp_cpmm_init(&p, 1000e18, 2000000e18, 0.003), 0);
    double k = p.r0 * p.r1, sum0 = p.r0, sum1 = p.r1;
    for (int i = 0; i < 100000; i++) {
        enum sp_cpmm_dir dir = (enum sp_cpmm_dir)(sp_rng_next(&r) & 1);
        double rin = dir ? p.r1 : p.r0, rout = dir ? p.r0 : p.r1, amt, other;
        if (sp_rng_next(&r) & 1) {
            amt = log_uniform(&r, 1e-6, 1.0) * rin;
            assert_int_equal(sp_cpmm_swap_in(&p, dir, amt, &other), 0);
            if (dir) { sum1 += amt; sum0 -= other; } else { sum0 += amt; sum1 -= other; }
        } else {
            amt = log_uniform(&r, 1e-6, 0.5) * rout;
            assert_int_equal(sp_cpmm_swap_out(&p, dir, amt, &other), 0);
            if (dir) { sum1 += other; sum0 -= amt; } else { sum0 += other; sum1 -= amt; }
        }
        double k2 = p.r0 * p.r1;
        assert_true(p.r0 > 0 && p.r1 > 0);
        if (!(k2 >= k)) fail_msg("k fell at swap %d: %.17g -> %.17g", i, k, k2);
        k = k2;
    }
    /* conservation: reserves are exactly what went in minus what came out */
    assert_rel(p.r0, sum0, 1e-9);
    assert_rel(p.r1, sum1, 1e-9);
}

static void test_cpmm_lp_add_remove_round_trip(void **state)
{
    (void)state;
    struct sp_cpmm p = { 0, 0, 0.003, 0 };
    double u0, u1, m, o0, o1;
    /* first deposit mints sqrt(x·y) (UniswapV2Pair.mint, without MINIMUM_LIQUIDITY) */
    assert_int_equal(sp_cpmm_add_liquidity(&p, 4e18, 9e18, &u0, &u1, &m), 0);
    assert_rel(m, 6e18, 1e-15);
    assert_rel(p.lp_supply, 6e18, 1e-15);
    /* proportional deposit: the scarcer side binds, the other is used pro rata */
    assert_int_equal(sp_cpmm_add_liquidity(&p, 2e18, 100e18, &u0, &u1, &m), 0);
    assert_rel(u0, 2e18, 1e-15);
    assert_rel(u1, 4.5e18, 1e-15);
    assert_rel(m, 3e18, 1e-15);
    assert_rel(mid(&p), 9.0 / 4.0, 1e-15);
    /* burning the minted shares returns exactly what was deposited */
    assert_int_equal(sp_cpmm_remove_liquidity(&p, m, &o0, &o1), 0);
    assert_rel(o0, u0, 1e-14);
    assert_rel(o1, u1, 1e-14);
    assert_rel(p.r0, 4e18, 1e-14);
    assert_rel(p.r1, 9e18, 1e-14);
    /* fees accrue to LPs: after swaps, the same shares redeem for more k */
    double out;
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, 1e18, &out), 0);
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_1TO0, out, &out), 0);
    assert_true(p.r0 * p.r1 > 36e36);
    /* the last share takes everything and leaves an empty pool */
    double lp = p.lp_supply, r0 = p.r0, r1 = p.r1;
    assert_int_equal(sp_cpmm_remove_liquidity(&p, lp, &o0, &o1), 0);
    assert_true(o0 == r0 && o1 == r1 && p.r0 == 0 && p.r1 == 0 && p.lp_supply == 0);
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, 1.0, &out), SP_ESTATE);
    assert_int_equal(sp_cpmm_remove_liquidity(&p, 1.0, &o0, &o1), SP_ESTATE);
    assert_int_equal(sp_cpmm_price(&p, &out), SP_ESTATE);   /* not 0/0 */
    /* an emptied pool takes a new first deposit */
    assert_int_equal(sp_cpmm_add_liquidity(&p, 1.0, 4.0, &u0, &u1, &m), 0);
    assert_rel(m, 2.0, 1e-15);
}

static void test_cpmm_rejects_invalid_input_without_nan(void **state)
{
    (void)state;
    struct sp_cpmm p, q;
    double out = 42.0;
    assert_int_equal(sp_cpmm_init(&p, 1.0, 1.0, 1.0), SP_EINVAL);
    assert_int_equal(sp_cpmm_init(&p, 1.0, 1.0, -0.001), SP_EINVAL);
    assert_int_equal(sp_cpmm_init(&p, 1.0, 1.0, NAN), SP_EINVAL);
    assert_int_equal(sp_cpmm_init(&p, 0.0, 1.0, 0.003), SP_EINVAL);
    assert_int_equal(sp_cpmm_init(&p, 100.0, 200.0, 0.003), 0);
    q = p;
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, 0.0, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, -1.0, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, NAN, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, INFINITY, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_swap_in(&p, (enum sp_cpmm_dir)2, 1.0, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_swap_out(&p, SP_CPMM_0TO1, 200.0, &out), SP_ERANGE);
    assert_int_equal(sp_cpmm_swap_out(&p, SP_CPMM_0TO1, 250.0, &out), SP_ERANGE);
    assert_int_equal(sp_cpmm_swap_out(&p, SP_CPMM_1TO0, 0.0, &out), SP_EINVAL);
    assert_int_equal(sp_cpmm_quote_out(&p, SP_CPMM_1TO0, 100.0, &out), SP_ERANGE);
    assert_int_equal(sp_cpmm_remove_liquidity(&p, p.lp_supply * 2, &out, &out), SP_ERANGE);
    assert_int_equal(sp_cpmm_arb_size(&p, 0.0, &(enum sp_cpmm_dir){ 0 }, &out), SP_EINVAL);
    p.fee = 1.5;   /* corrupted after init: refused, not computed */
    assert_int_equal(sp_cpmm_swap_in(&p, SP_CPMM_0TO1, 1.0, &out), SP_EINVAL);
    p.fee = q.fee;
    assert_true(out == 42.0);   /* no output written on any error */
    assert_memory_equal(&p, &q, sizeof p);
}

static void test_cpmm_price_after_and_impact_move_the_right_way(void **state)
{
    (void)state;
    struct sp_cpmm p, q;
    double pr, imp, out;
    assert_int_equal(sp_cpmm_init(&p, 1000.0, 2000000.0, 0.003), 0);
    assert_rel(mid(&p), 2000.0, 1e-15);
    /* selling token0 lowers its price; buying it raises it */
    assert_int_equal(sp_cpmm_price_after(&p, SP_CPMM_0TO1, 10.0, &pr), 0);
    q = p;
    assert_int_equal(sp_cpmm_swap_in(&q, SP_CPMM_0TO1, 10.0, &out), 0);
    assert_rel(pr, mid(&q), 1e-15);
    assert_true(pr < 2000.0);
    assert_int_equal(sp_cpmm_price_impact(&p, SP_CPMM_0TO1, 10.0, &imp), 0);
    /* x·y = k grown by the fee: new price = (k'/x'^2); for small fee ≈ −2·10/1000 */
    assert_rel(imp, pr / 2000.0 - 1.0, 1e-12);
    assert_true(imp < -0.019 && imp > -0.021);
    assert_int_equal(sp_cpmm_price_impact(&p, SP_CPMM_1TO0, 20000.0, &imp), 0);
    assert_true(imp > 0.019 && imp < 0.021);
}

/* Profit of trading `in` in direction dir at external price P (token1 units). */
static double arb_profit(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double in, double P)
{
    double out;
    if (in <= 0) return 0.0;
    assert_int_equal(sp_cpmm_quote_in(p, dir, in, &out), 0);
    return dir == SP_CPMM_0TO1 ? out - P * in : P * out - in;
}

static void test_cpmm_arb_size_maximises_profit_and_reaches_band_edge(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 13, sp_rng_key("cpmm_arb"));
    for (int k = 0; k < 2000; k++) {
        struct sp_cpmm p, q;
        double fee = k % 4 == 0 ? 0.0 : sp_rng_uniform(&r) * 0.01;
        assert_int_equal(sp_cpmm_init(&p, log_uniform(&r, 1e2, 1e22), log_uniform(&r, 1e2, 1e22), fee), 0);
        double g = 1.0 - fee, s = mid(&p);
        double P = s * exp((sp_rng_uniform(&r) - 0.5) * 1.0);   /* up to ±50 % gap in log */
        enum sp_cpmm_dir dir;
        double d, out;
        assert_int_equal(sp_cpmm_arb_size(&p, P, &dir, &d), 0);
        if (s <= P / g && s >= P * g) {   /* inside the fee band: no trade */
            assert_true(d == 0.0);
            continue;
        }
        assert_true(d > 0.0);
        assert_int_equal(dir, s > P / g ? SP_CPMM_0TO1 : SP_CPMM_1TO0);
        double x = dir ? p.r1 : p.r0, y = dir ? p.r0 : p.r1;
        /* First-order condition from getAmountOut: d(out)/d(in) = γxy/(x+γΔ)² equals
         * the external price of what is sold (P, or 1/P when selling token1). */
        double rate = g * x * y / ((x + g * d) * (x + g * d));
        assert_rel(rate, dir == SP_CPMM_0TO1 ? P : 1.0 / P, 1e-9);
        q = p;
        assert_int_equal(sp_cpmm_swap_in(&q, dir, d, &out), 0);
        /* The pool's marginal price on the reserves net of the fee just paid is the
         * band edge: P/γ after selling token0, P·γ after buying it. */
        double x_net = x + g * d, y_after = dir ? q.r0 : q.r1;
        double mid_net = dir == SP_CPMM_0TO1 ? y_after / x_net : x_net / y_after;
        assert_rel(mid_net, dir == SP_CPMM_0TO1 ? P / g : P * g, 1e-9);
        /* ... and the fee left in the pool puts the mid just inside the band */
        double m1 = mid(&q);
        assert_true(m1 <= P / g * (1 + 1e-12) && m1 >= P * g * (1 - 1e-12));
        enum sp_cpmm_dir d2;
        double again;
        assert_int_equal(sp_cpmm_arb_size(&q, P, &d2, &again), 0);
        if (!(again <= 1e-12 * (d2 ? q.r1 : q.r0))) fail_msg("fee %g again %g", fee, again);
        /* profit is maximal: no better at 0.9× or 1.1× the size */
        double best = arb_profit(&p, dir, d, P);
        assert_true(best > 0.0);
        assert_true(best >= arb_profit(&p, dir, 0.9 * d, P));
        assert_true(best >= arb_profit(&p, dir, 1.1 * d, P));
    }
}

static void test_cpmm_arb_size_is_zero_inside_fee_band(void **state)
{
    (void)state;
    struct sp_cpmm p;
    enum sp_cpmm_dir dir;
    double d;
    assert_int_equal(sp_cpmm_init(&p, 1000.0, 2000.0, 0.003), 0);
    for (double P = 2.0 * 0.9971; P <= 2.0 / 0.9971; P *= 1.0001) {
        assert_int_equal(sp_cpmm_arb_size(&p, P, &dir, &d), 0);
        assert_true(d == 0.0);
    }
    assert_int_equal(sp_cpmm_arb_size(&p, 2.0 / 0.99, &dir, &d), 0);
    assert_true(d > 0 && dir == SP_CPMM_1TO0);
    assert_int_equal(sp_cpmm_arb_size(&p, 2.0 * 0.99, &dir, &d), 0);
    assert_true(d > 0 && dir == SP_CPMM_0TO1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpmm_swap_matches_uniswap_v2_reference_vectors),
        cmocka_unit_test(test_cpmm_exact_out_inverts_exact_in),
        cmocka_unit_test(test_cpmm_k_never_falls_over_random_swaps),
        cmocka_unit_test(test_cpmm_lp_add_remove_round_trip),
        cmocka_unit_test(test_cpmm_rejects_invalid_input_without_nan),
        cmocka_unit_test(test_cpmm_price_after_and_impact_move_the_right_way),
        cmocka_unit_test(test_cpmm_arb_size_maximises_profit_and_reaches_band_edge),
        cmocka_unit_test(test_cpmm_arb_size_is_zero_inside_fee_band),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
