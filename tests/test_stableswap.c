/*
 * test_stableswap.c — Curve StableSwap (n = 2) mechanics.
 *
 * D and y are checked against FORMULAS.md ("Curve StableSwap, n = 2": balances
 * [1000, 1000]e18 at A = 50 give D = 2000e18) and against the invariant
 * itself, restated here:  Ann·S + D = Ann·D + D³/(4·x0·x1), Ann = 2A.
 * The analytic marginal price is cross-checked by a finite difference of the
 * swap output (the test may difference; the code may not).  Randomized swaps
 * check after every step that D never falls and balances are conserved.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "stableswap.h"

static void assert_rel(double got, double want, double tol)
{
    double err = fabs(got - want) / fabs(want);
    if (!(err <= tol)) fail_msg("got %.17g want %.17g (rel err %.3g > %.3g)", got, want, err, tol);
}

static double log_uniform(struct sp_rng *r, double lo, double hi)
{
    return lo * exp(sp_rng_uniform(r) * log(hi / lo));
}

/* Relative residual of the invariant, restated from FORMULAS.md. */
static double invariant_residual(double x0, double x1, double D, double A)
{
    double Ann = 2.0 * A;
    double lhs = Ann * (x0 + x1) + D;
    double rhs = Ann * D + D * (D / (2.0 * x0)) * (D / (2.0 * x1));
    return fabs(lhs - rhs) / lhs;
}

static double pool_D(const struct sp_stableswap *p)
{
    double D;
    assert_int_equal(sp_stableswap_get_D(p->bal, p->amp, &D), 0);
    return D;
}

static void test_stableswap_D_matches_formulas_vector(void **state)
{
    (void)state;
    /* FORMULAS.md, Curve StableSwap n = 2: [1000, 1000]·1e18, A = 50 → D = 2000e18. */
    double bal[2] = { 1000e18, 1000e18 }, D = 0;
    assert_int_equal(sp_stableswap_get_D(bal, 50.0, &D), 0);
    assert_true(D == 2000e18);
}

static void test_stableswap_D_of_equal_balances_is_their_sum(void **state)
{
    (void)state;
    static const double amps[] = { 0.5, 1, 10, 50, 100, 200, 1000, 5000, 1e6 };
    static const double xs[] = { 1e-6, 1.0, 12345.678, 1e18, 3.3e24 };
    for (size_t a = 0; a < sizeof amps / sizeof amps[0]; a++)
        for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) {
            double bal[2] = { xs[k], xs[k] }, D;
            assert_int_equal(sp_stableswap_get_D(bal, amps[a], &D), 0);
            assert_rel(D, 2.0 * xs[k], 1e-15);
        }
}

static void test_stableswap_D_and_y_satisfy_the_invariant(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 21, sp_rng_key("ss_invariant"));
    for (int k = 0; k < 20000; k++) {
        double A = log_uniform(&r, 1.0, 5000.0);
        double x0 = log_uniform(&r, 1.0, 1e24), x1 = x0 * log_uniform(&r, 1e-3, 1e3);
        double bal[2] = { x0, x1 }, D, y;
        assert_int_equal(sp_stableswap_get_D(bal, A, &D), 0);
        assert_true(D <= x0 + x1 && D > 0);   /* D <= S, equality only at balance */
        assert_true(invariant_residual(x0, x1, D, A) < 1e-13);
        /* y recovers the other balance at the same D, from either side */
        assert_int_equal(sp_stableswap_get_y(x0, D, A, &y), 0);
        assert_rel(y, x1, 1e-11);
        assert_int_equal(sp_stableswap_get_y(x1, D, A, &y), 0);
        assert_rel(y, x0, 1e-11);
    }
}

static void test_stableswap_price_is_one_at_balance_and_moves_with_skew(void **state)
{
    (void)state;
    struct sp_stableswap p;
    double pr, prev = 2.0;
    assert_int_equal(sp_stableswap_init(&p, 1000e18, 1000e18, 50.0, 0.0), 0);
    assert_int_equal(sp_stableswap_price(&p, &pr), 0);
    assert_rel(pr, 1.0, 1e-15);
    /* more coin0 in the pool: coin0 gets cheaper, monotonically */
    for (double skew = 1.0; skew <= 1000.0; skew *= 1.5) {
        assert_int_equal(sp_stableswap_init(&p, 1000e18 * skew, 1000e18, 50.0, 0.0), 0);
        assert_int_equal(sp_stableswap_price(&p, &pr), 0);
        assert_true(pr < prev && pr > 0.0);
        prev = pr;
        /* the mirror pool quotes the reciprocal */
        struct sp_stableswap m;
        double pm;
        assert_int_equal(sp_stableswap_init(&m, 1000e18, 1000e18 * skew, 50.0, 0.0), 0);
        assert_int_equal(sp_stableswap_price(&m, &pm), 0);
        assert_rel(pm, 1.0 / pr, 1e-12);
        /* analytic price against a central difference of the swap curve */
        double h = 1e-6 * p.bal[0], D = pool_D(&p), yp, ym;
        assert_int_equal(sp_stableswap_get_y(p.bal[0] + h, D, p.amp, &yp), 0);
        assert_int_equal(sp_stableswap_get_y(p.bal[0] - h, D, p.amp, &ym), 0);
        assert_rel(pr, (ym - yp) / (2 * h), 1e-6);
    }
    /* flat at high A, constant-product (x1/x0) as A → 0 */
    assert_int_equal(sp_stableswap_init(&p, 2e18, 1e18, 1e6, 0.0), 0);
    assert_int_equal(sp_stableswap_price(&p, &pr), 0);
    assert_true(pr < 1.0 && pr > 0.9999);
    assert_int_equal(sp_stableswap_init(&p, 2e18, 1e18, 1e-7, 0.0), 0);
    assert_int_equal(sp_stableswap_price(&p, &pr), 0);
    assert_rel(pr, 0.5, 1e-5);
}

static void test_stableswap_y_converges_for_extreme_balances(void **state)
{
    (void)state;
    static const double amps[] = { 1, 50, 2000 };
    for (size_t a = 0; a < 3; a++) {
        for (double ratio = 1e-3; ratio <= 1e3; ratio *= 1e3) {   /* 1:1000 and 1000:1 */
            struct sp_stableswap p;
            double dy, y, D;
            assert_int_equal(sp_stableswap_init(&p, 1e18, 1e18 * ratio, amps[a], 4e-4), 0);
            D = pool_D(&p);
            assert_true(invariant_residual(p.bal[0], p.bal[1], D, p.amp) < 1e-13);
            assert_int_equal(sp_stableswap_get_y(p.bal[0], D, p.amp, &y), 0);
            assert_rel(y, p.bal[1], 1e-11);
            assert_int_equal(sp_stableswap_swap(&p, 0, 0.5e18, &dy), 0);
            assert_true(dy > 0 && dy < 1e18 * ratio);
            assert_int_equal(sp_stableswap_swap(&p, 1, 0.5e18 * ratio, &dy), 0);
            assert_true(dy > 0);
        }
    }
    /* 1:1e9 still converges within the iteration cap */
    double bal[2] = { 1.0, 1e9 }, D, y;
    assert_int_equal(sp_stableswap_get_D(bal, 100.0, &D), 0);
    assert_int_equal(sp_stableswap_get_y(1e9, D, 100.0, &y), 0);
    assert_rel(y, 1.0, 1e-9);
    /* out of range: a clear error, no NaN */
    y = 42.0;
    assert_int_equal(sp_stableswap_get_y(1e-300, 1e300, 50.0, &y), SP_ERANGE);
    assert_int_equal(sp_stableswap_get_y(0.0, 1.0, 50.0, &y), SP_EINVAL);
    assert_int_equal(sp_stableswap_get_y(1.0, NAN, 50.0, &y), SP_EINVAL);
    assert_true(y == 42.0);
    double bad[2] = { 1.0, 0.0 };
    assert_int_equal(sp_stableswap_get_D(bad, 50.0, &D), SP_EINVAL);
    double empty[2] = { 0.0, 0.0 };
    assert_int_equal(sp_stableswap_get_D(empty, 50.0, &D), 0);
    assert_true(D == 0.0);
}

static void test_stableswap_swap_then_reverse_loses_only_fees(void **state)
{
    (void)state;
    static const double fees[] = { 0.0, 4e-4, 3e-3 };
    for (size_t f = 0; f < 3; f++) {
        for (double size = 1e15; size <= 500e18; size *= 10) {
            struct sp_stableswap p;
            double dy, back;
            assert_int_equal(sp_stableswap_init(&p, 1000e18, 700e18, 100.0, fees[f]), 0);
            double D0 = pool_D(&p);
            assert_int_equal(sp_stableswap_swap(&p, 0, size, &dy), 0);
            assert_int_equal(sp_stableswap_swap(&p, 1, dy, &back), 0);
            double loss = size - back, fee_bound = (1.0 - (1.0 - fees[f]) * (1.0 - fees[f])) * size;
            if (fees[f] == 0.0) {
                assert_rel(back, size, 1e-9);   /* reversible without a fee */
                assert_rel(pool_D(&p), D0, 1e-14);
            } else {
                assert_true(loss > 0.0);
                /* the loss is the two fees (to first order), not more */
                assert_true(loss <= fee_bound * 1.01);
                assert_true(loss >= fee_bound * 0.5);
                assert_true(pool_D(&p) > D0);
            }
        }
    }
}

static void test_stableswap_random_swaps_never_decrease_D(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 22, sp_rng_key("ss_random"));
    struct sp_stableswap p;
    assert_int_equal(sp_stableswap_init(&p, 1000e18, 1000e18, 50.0, 4e-4), 0);
    double D = pool_D(&p), sum[2] = { p.bal[0], p.bal[1] };
    for (int k = 0; k < 100000; k++) {
        int i = (int)(sp_rng_next(&r) & 1);
        /* sized on the other coin's balance, so the walk reverts to balance */
        double dx = log_uniform(&r, 1e-6, 0.5) * p.bal[1 - i], dy;
        assert_int_equal(sp_stableswap_swap(&p, i, dx, &dy), 0);
        sum[i] += dx;
        sum[1 - i] -= dy;
        double D2 = pool_D(&p);
        if (!(D2 >= D)) fail_msg("D fell at swap %d: %.17g -> %.17g", k, D, D2);
        D = D2;
        assert_true(p.bal[0] > 0 && p.bal[1] > 0);
    }
    assert_rel(p.bal[0], sum[0], 1e-9);
    assert_rel(p.bal[1], sum[1], 1e-9);
}

static void test_stableswap_lp_add_remove_round_trip(void **state)
{
    (void)state;
    struct sp_stableswap p = { { 0, 0 }, 100.0, 4e-4, 0 };
    double m, o0, o1;
    assert_int_equal(sp_stableswap_add_liquidity(&p, 0.0, 5e18, &m), SP_EINVAL);  /* first needs both */
    assert_int_equal(sp_stableswap_add_liquidity(&p, 600e18, 400e18, &m), 0);
    assert_rel(m, pool_D(&p), 1e-15);
    /* a balanced deposit mints shares in proportion */
    double lp = p.lp_supply;
    assert_int_equal(sp_stableswap_add_liquidity(&p, 60e18, 40e18, &m), 0);
    assert_rel(m, 0.1 * lp, 1e-12);
    /* ... and burning them gives the deposit back */
    assert_int_equal(sp_stableswap_remove_liquidity(&p, m, &o0, &o1), 0);
    assert_rel(o0, 60e18, 1e-12);
    assert_rel(o1, 40e18, 1e-12);
    /* a one-sided deposit mints D-proportional shares (no imbalance fee) */
    double D0 = pool_D(&p);
    lp = p.lp_supply;
    assert_int_equal(sp_stableswap_add_liquidity(&p, 10e18, 0.0, &m), 0);
    assert_rel(m, lp * (pool_D(&p) - D0) / D0, 1e-12);
    assert_true(m < 10e18 * lp / D0 * 1.0000001);
    /* everything out empties the pool */
    lp = p.lp_supply;
    double b0 = p.bal[0], b1 = p.bal[1];
    assert_int_equal(sp_stableswap_remove_liquidity(&p, lp, &o0, &o1), 0);
    assert_true(o0 == b0 && o1 == b1 && p.lp_supply == 0.0);
    assert_int_equal(sp_stableswap_swap(&p, 0, 1.0, &o0), SP_ESTATE);
    assert_int_equal(sp_stableswap_remove_liquidity(&p, 1.0, &o0, &o1), SP_ESTATE);
}

static void test_stableswap_rejects_invalid_input(void **state)
{
    (void)state;
    struct sp_stableswap p, q;
    double out = 42.0;
    assert_int_equal(sp_stableswap_init(&p, 1.0, 1.0, 50.0, 1.0), SP_EINVAL);
    assert_int_equal(sp_stableswap_init(&p, 1.0, 1.0, 0.0, 0.0), SP_EINVAL);
    assert_int_equal(sp_stableswap_init(&p, -1.0, 1.0, 50.0, 0.0), SP_EINVAL);
    assert_int_equal(sp_stableswap_init(&p, 10.0, 10.0, 50.0, 4e-4), 0);
    q = p;
    assert_int_equal(sp_stableswap_swap(&p, 0, 0.0, &out), SP_EINVAL);
    assert_int_equal(sp_stableswap_swap(&p, 0, NAN, &out), SP_EINVAL);
    assert_int_equal(sp_stableswap_swap(&p, 2, 1.0, &out), SP_EINVAL);
    assert_int_equal(sp_stableswap_quote(&p, -1, 1.0, &out), SP_EINVAL);
    assert_int_equal(sp_stableswap_remove_liquidity(&p, 1e9, &out, &out), SP_ERANGE);
    int i;
    assert_int_equal(sp_stableswap_arb_size(&p, -1.0, &i, &out), SP_EINVAL);
    assert_true(out == 42.0);
    assert_memory_equal(&p, &q, sizeof p);
}

static double arb_profit(const struct sp_stableswap *p, int i, double dx, double P)
{
    double dy;
    assert_int_equal(sp_stableswap_quote(p, i, dx, &dy), 0);
    return i == 0 ? dy - P * dx : P * dy - dx;   /* in coin1 for i = 0, coin0 for i = 1 */
}

static void test_stableswap_arb_size_closes_the_gap(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 23, sp_rng_key("ss_arb"));
    int traded = 0;
    for (int k = 0; k < 500; k++) {
        struct sp_stableswap p, q;
        double fee = k % 5 == 0 ? 0.0 : 4e-4;
        double A = log_uniform(&r, 5.0, 2000.0);
        assert_int_equal(sp_stableswap_init(&p, 1000e18 * log_uniform(&r, 0.3, 3.0), 1000e18, A, fee), 0);
        double P = 0.9 + 0.2 * sp_rng_uniform(&r), m0, dx;
        int i;
        assert_int_equal(sp_stableswap_price(&p, &m0), 0);
        assert_int_equal(sp_stableswap_arb_size(&p, P, &i, &dx), 0);
        double g = 1.0 - fee;
        if (g * m0 <= P && g / m0 <= 1.0 / P) {   /* inside the band */
            assert_true(dx == 0.0);
            continue;
        }
        traded++;
        assert_true(dx > 0.0);
        assert_int_equal(i, g * m0 > P ? 0 : 1);
        double pext = i == 0 ? P : 1.0 / P;
        /* first-order condition, by central difference of the quoted output */
        double h = dx * 1e-5, dp, dm;
        assert_int_equal(sp_stableswap_quote(&p, i, dx + h, &dp), 0);
        assert_int_equal(sp_stableswap_quote(&p, i, dx - h, &dm), 0);
        assert_rel((dp - dm) / (2 * h), pext, 1e-5);
        /* profit is maximal */
        double best = arb_profit(&p, i, dx, P);
        assert_true(best > 0.0);
        assert_true(best >= arb_profit(&p, i, 0.9 * dx, P));
        assert_true(best >= arb_profit(&p, i, 1.1 * dx, P));
        /* The gap closes.  The fee stays in the pool as the coin paid out, which
         * moves the price a little back toward the trade (Curve's fee is on the
         * output), so one optimal swap leaves a residual of order fee·dx; repeated
         * optimal swaps shrink it geometrically, to the band edge. */
        q = p;
        double dy, m1, again = dx;
        int i2 = i;
        for (int round = 0; round < 4 && again > 0.0; round++) {
            double prev = again;
            assert_int_equal(sp_stableswap_swap(&q, i2, again, &dy), 0);
            assert_int_equal(sp_stableswap_arb_size(&q, P, &i2, &again), 0);
            if (!(again == 0.0 || i2 == i || again <= 1e-10 * q.bal[i2]))   /* never overshoots */
                fail_msg("overshoot: fee %g round %d again %g bal %g", fee, round, again, q.bal[i2]);
            assert_true(again <= 2e-3 * prev + 1e-12 * q.bal[i2]);
        }
        assert_true(again <= 1e-9 * dx + 1e-12 * q.bal[i2]);
        assert_int_equal(sp_stableswap_price(&q, &m1), 0);
        assert_true(m1 <= P / g * (1 + 1e-9) && m1 >= P * g * (1 - 1e-9));
        if (fee > 0.0) assert_rel(m1, i == 0 ? P / g : P * g, 1e-9);
    }
    assert_true(traded > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stableswap_D_matches_formulas_vector),
        cmocka_unit_test(test_stableswap_D_of_equal_balances_is_their_sum),
        cmocka_unit_test(test_stableswap_D_and_y_satisfy_the_invariant),
        cmocka_unit_test(test_stableswap_price_is_one_at_balance_and_moves_with_skew),
        cmocka_unit_test(test_stableswap_y_converges_for_extreme_balances),
        cmocka_unit_test(test_stableswap_swap_then_reverse_loses_only_fees),
        cmocka_unit_test(test_stableswap_random_swaps_never_decrease_D),
        cmocka_unit_test(test_stableswap_lp_add_remove_round_trip),
        cmocka_unit_test(test_stableswap_rejects_invalid_input),
        cmocka_unit_test(test_stableswap_arb_size_closes_the_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
