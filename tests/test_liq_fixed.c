/*
 * test_liq_fixed.c — fixed-spread liquidation mechanics (Aave v3, Compound v2).
 *
 * Reference values come from FORMULAS.md: "Aave v3 health factor and
 * liquidation" (close factor, debtRepaid, collateral, the cap by the user's
 * collateral, protocol fee, and the toxic-liquidation line collateral/debt =
 * bonus) and "Compound v2 seize" (the two seizeTokens rows).  FORMULAS.md
 * gives no numeric Aave vectors, so the expected values here are worked by
 * hand from its formulas in the comments.  A randomized run checks that no
 * collateral or debt is created or lost over repeated liquidations.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "liq_fixed.h"

static void assert_rel(double got, double want, double tol)
{
    double err = want == 0.0 ? fabs(got) : fabs(got - want) / fabs(want);
    if (!(err <= tol)) fail_msg("got %.17g want %.17g (rel err %.3g > %.3g)", got, want, err, tol);
}

static void test_fixed_aave_close_factor_boundary(void **state)
{
    (void)state;
    /* FORMULAS.md, Aave v3: "closeFactor = 0.5 if HF > 0.95 else 1.0" — aave-v3-core
     * LiquidationLogic._calculateDebt: healthFactor > CLOSE_FACTOR_HF_THRESHOLD ? 0.5 : 1.0,
     * so exactly 0.95 gets the full close factor. */
    struct sp_fixed_params p = sp_fixed_params_aave_v3(1.05, 0.1);
    assert_int_equal(sp_fixed_params_check(&p, NULL, 0), 0);
    assert_true(sp_fixed_close_factor(&p, 0.99) == 0.5);
    assert_true(sp_fixed_close_factor(&p, nextafter(0.95, 1.0)) == 0.5);
    assert_true(sp_fixed_close_factor(&p, 0.95) == 1.0);
    assert_true(sp_fixed_close_factor(&p, 0.5) == 1.0);

    struct sp_fixed_result r;
    /* total debt 1000, cover 1000: 500 at HF 0.96, all 1000 at HF 0.95 (coll plentiful) */
    assert_int_equal(sp_fixed_liquidate(&p, 0.96, 1000.0, 100.0, 1.0, 2000.0, 1000.0, &r), 0);
    assert_rel(r.debt_repaid, 500.0, 1e-15);
    assert_int_equal(sp_fixed_liquidate(&p, 0.95, 1000.0, 100.0, 1.0, 2000.0, 1000.0, &r), 0);
    assert_rel(r.debt_repaid, 1000.0, 1e-15);
    /* only liquidatable below HF 1 (ValidationLogic: HF < 1e18) */
    assert_int_equal(sp_fixed_liquidate(&p, 1.0, 1000.0, 100.0, 1.0, 2000.0, 1000.0, &r),
                     SP_ESTATE);
}

static void test_fixed_aave_seizure_and_protocol_fee(void **state)
{
    (void)state;
    /* FORMULAS.md, Aave v3: debtRepaid = min(debtToCover, totalDebt·closeFactor);
     * collateral = debtRepaid·debtPrice/collPrice·bonus;
     * protocolFee = (collateral − collateral/bonus)·liquidationProtocolFee.
     * Debt 1000 USDC (price 1), 0.6 ETH at 2000, LT 0.8: HF = 0.6·2000·0.8/1000 = 0.96. */
    struct sp_fixed_params p = sp_fixed_params_aave_v3(1.05, 0.1);
    double hf;
    assert_int_equal(sp_fixed_health_factor(0.6, 2000.0, 0.8, 1000.0, 1.0, &hf), 0);
    assert_rel(hf, 0.96, 1e-15);
    struct sp_fixed_result r;
    assert_int_equal(sp_fixed_liquidate(&p, hf, 1000.0, 0.6, 1.0, 2000.0, 10000.0, &r), 0);
    assert_true(r.close_factor == 0.5 && !r.capped);
    assert_rel(r.debt_repaid, 500.0, 1e-15);              /* min(10000, 1000·0.5) */
    assert_rel(r.collateral_seized, 0.2625, 1e-15);       /* 500/2000·1.05 */
    assert_rel(r.protocol_fee, 0.00125, 1e-12);           /* (0.2625 − 0.25)·0.1 */
    assert_rel(r.to_liquidator, 0.26125, 1e-15);
    /* a smaller debtToCover is taken as is */
    assert_int_equal(sp_fixed_liquidate(&p, hf, 1000.0, 0.6, 1.0, 2000.0, 200.0, &r), 0);
    assert_rel(r.debt_repaid, 200.0, 0);
    assert_rel(r.collateral_seized, 0.105, 1e-15);
}

static void test_fixed_aave_collateral_cap_recomputes_debt(void **state)
{
    (void)state;
    /* FORMULAS.md, Aave v3: "if collateral > userCollateral: collateral = userCollateral,
     * debtRepaid = collateral·collPrice/debtPrice/bonus".  Debt 1000, 0.5 ETH at 2000,
     * LT 0.8: HF 0.8 → close factor 1; covering 1000 would take 0.525 ETH > 0.5. */
    struct sp_fixed_params p = sp_fixed_params_aave_v3(1.05, 0.2);
    struct sp_fixed_result r;
    assert_int_equal(sp_fixed_liquidate(&p, 0.8, 1000.0, 0.5, 1.0, 2000.0, 1000.0, &r), 0);
    assert_true(r.capped && r.close_factor == 1.0);
    assert_rel(r.collateral_seized, 0.5, 0);
    assert_rel(r.debt_repaid, 1000.0 / 1.05, 1e-15);      /* 0.5·2000/1/1.05 = 952.38… */
    assert_rel(r.protocol_fee, (0.5 - 0.5 / 1.05) * 0.2, 1e-14);
    assert_rel(r.to_liquidator + r.protocol_fee, 0.5, 1e-15);
    /* 1000 − 952.38 = 47.62 of debt is left with no collateral: bad debt */
    assert_true(1000.0 - r.debt_repaid > 47.6);
}

static void test_fixed_toxic_liquidation_line(void **state)
{
    (void)state;
    /* FORMULAS.md, Aave v3: "A liquidation step raises HF only while collateral/debt >
     * bonus (equivalently HF > LT·bonus)".  Derivation in liq_fixed.c. */
    struct sp_fixed_params p = sp_fixed_params_aave_v3(1.05, 0.0);
    const double lt = 0.8;
    struct sp_fixed_result r;
    double hf0, hf1;
    /* C/D = 1.06 > 1.05: HF = 0.848 rises */
    assert_int_equal(sp_fixed_health_factor(1.06, 1.0, lt, 1.0, 1.0, &hf0), 0);
    assert_false(sp_fixed_is_toxic(1.06, 1.0, 1.05));
    assert_true(hf0 > lt * 1.05 - 1e-15);
    assert_int_equal(sp_fixed_liquidate(&p, hf0, 1.0, 1.06, 1.0, 1.0, 0.3, &r), 0);
    assert_int_equal(sp_fixed_health_factor(1.06 - r.collateral_seized, 1.0, lt,
                                            1.0 - r.debt_repaid, 1.0, &hf1), 0);
    assert_true(hf1 > hf0);
    /* C/D = 1.04 < 1.05: HF = 0.832 falls */
    assert_int_equal(sp_fixed_health_factor(1.04, 1.0, lt, 1.0, 1.0, &hf0), 0);
    assert_true(sp_fixed_is_toxic(1.04, 1.0, 1.05));
    assert_true(hf0 < lt * 1.05);
    assert_int_equal(sp_fixed_liquidate(&p, hf0, 1.0, 1.04, 1.0, 1.0, 0.3, &r), 0);
    assert_int_equal(sp_fixed_health_factor(1.04 - r.collateral_seized, 1.0, lt,
                                            1.0 - r.debt_repaid, 1.0, &hf1), 0);
    assert_true(hf1 < hf0);
    /* on the line (exact in binary: C = 1.25, D = 1, bonus 1.25, repay 0.5): unchanged */
    struct sp_fixed_params q = sp_fixed_params_aave_v3(1.25, 0.0);
    assert_int_equal(sp_fixed_health_factor(1.25, 1.0, 0.5, 1.0, 1.0, &hf0), 0);
    assert_false(sp_fixed_is_toxic(1.25, 1.0, 1.25));
    assert_int_equal(sp_fixed_liquidate(&q, hf0, 1.0, 1.25, 1.0, 1.0, 0.5, &r), 0);
    assert_true(r.collateral_seized == 0.625 && r.debt_repaid == 0.5);
    assert_int_equal(sp_fixed_health_factor(1.25 - 0.625, 1.0, 0.5, 0.5, 1.0, &hf1), 0);
    assert_true(hf1 == hf0);

    /* both sides over random positions: the sign of HF' − HF is the sign of C − bonus·D */
    struct sp_rng rng;
    sp_rng_init(&rng, 3, sp_rng_key("liq_fixed_toxic"));
    int n_toxic = 0, n_healthy = 0;
    for (int k = 0; k < 20000; k++) {
        double bonus = 1.0 + 0.15 * sp_rng_uniform(&rng);
        double ltk = 0.5 + 0.45 * sp_rng_uniform(&rng);
        struct sp_fixed_params pk = sp_fixed_params_aave_v3(bonus, 0.5 * sp_rng_uniform(&rng));
        double pc = 10.0 + 1000.0 * sp_rng_uniform(&rng), pd = 0.5 + sp_rng_uniform(&rng);
        double debt = 1.0 + 1e4 * sp_rng_uniform(&rng);
        double ratio = 0.8 + 0.5 * sp_rng_uniform(&rng);        /* C/D */
        double coll = ratio * debt * pd / pc;
        double hf;
        assert_int_equal(sp_fixed_health_factor(coll, pc, ltk, debt, pd, &hf), 0);
        if (!(hf < 1.0)) continue;
        double cover = debt * 0.45 * sp_rng_uniform(&rng) + 1e-6 * debt;   /* < D·0.5 */
        assert_int_equal(sp_fixed_liquidate(&pk, hf, debt, coll, pd, pc, cover, &r), 0);
        if (r.capped || fabs(ratio - bonus) < 1e-9) continue;
        double hf2;
        assert_int_equal(sp_fixed_health_factor(coll - r.collateral_seized, pc, ltk,
                                                debt - r.debt_repaid, pd, &hf2), 0);
        int toxic = sp_fixed_is_toxic(coll * pc, debt * pd, bonus);
        assert_int_equal(toxic, hf < ltk * bonus);             /* the equivalent form */
        if (toxic) { assert_true(hf2 < hf); n_toxic++; }
        else       { assert_true(hf2 > hf); n_healthy++; }
    }
    assert_true(n_toxic > 1000 && n_healthy > 1000);
}

static void test_fixed_aave_conserves_collateral_over_repeated_liquidations(void **state)
{
    (void)state;
    /* Conservation (STYLE.md): user + liquidators + treasury collateral = initial, debt
     * left + Σ repaid = initial, each step within closeFactor·debt; liquidate until the
     * position is healthy, empty, or below a dust size, with the price drifting down. */
    struct sp_rng rng;
    sp_rng_init(&rng, 12, sp_rng_key("liq_fixed_conservation"));
    for (int run = 0; run < 2000; run++) {
        double bonus = 1.0 + 0.15 * sp_rng_uniform(&rng), lt = 0.5 + 0.45 * sp_rng_uniform(&rng);
        struct sp_fixed_params p = sp_fixed_params_aave_v3(bonus, 0.5 * sp_rng_uniform(&rng));
        double pc = 1000.0, pd = 1.0;
        double coll0 = 1.0 + 100.0 * sp_rng_uniform(&rng);
        double debt0 = coll0 * pc * lt * (1.0 + 0.3 * sp_rng_uniform(&rng));
        double coll = coll0, debt = debt0, liq = 0, treasury = 0, repaid = 0;
        for (int step = 0; step < 100 && coll > 1e-9 * coll0 && debt > 1e-9 * debt0; step++) {
            pc *= 0.95 + 0.06 * sp_rng_uniform(&rng);
            double hf;
            assert_int_equal(sp_fixed_health_factor(coll, pc, lt, debt, pd, &hf), 0);
            if (!(hf < 1.0)) continue;
            struct sp_fixed_result r;
            double cover = debt * (0.05 + sp_rng_uniform(&rng));
            assert_int_equal(sp_fixed_liquidate(&p, hf, debt, coll, pd, pc, cover, &r), 0);
            assert_true(r.debt_repaid <= debt * r.close_factor * (1 + 1e-15));
            assert_true(r.collateral_seized <= coll);
            coll -= r.collateral_seized;
            debt -= r.debt_repaid;
            liq += r.to_liquidator;
            treasury += r.protocol_fee;
            repaid += r.debt_repaid;
            assert_rel(coll + liq + treasury, coll0, 1e-12);
            assert_rel(debt + repaid, debt0, 1e-12);
            assert_true(coll >= 0.0 && debt >= 0.0);
        }
    }
}

static void test_fixed_compound_seize_matches_formulas_vectors(void **state)
{
    (void)state;
    /* FORMULAS.md, Compound v2 seize (Comptroller.liquidateCalculateSeizeTokens); the
     * table's mantissas (1e18 = 1.0) are read as numbers, repay in wei. */
    static const struct { double er, pb, pc, inc, repay, seize; } v[] = {
        { 1e18, 1e18, 1e18, 1e18, 1e18, 1e18 },
        { 2e18, 1e18, 1e18, 1e18, 1e18, 5e17 },
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        struct sp_fixed_compound_params p = { .close_factor = 0.5, .incentive = v[k].inc / 1e18,
                                              .protocol_seize_share = 0.0 };
        double s = 0;
        assert_int_equal(sp_fixed_compound_seize_tokens(&p, v[k].repay, v[k].pb / 1e18,
                                                        v[k].pc / 1e18, v[k].er / 1e18, &s), 0);
        assert_rel(s, v[k].seize, 1e-12);
    }
    /* incentive and prices enter as repay·incentive·pB/(pC·er) */
    struct sp_fixed_compound_params p = { .close_factor = 0.5, .incentive = 1.08,
                                          .protocol_seize_share = 0.028 };
    double s;
    assert_int_equal(sp_fixed_compound_seize_tokens(&p, 100.0, 1.0, 2000.0, 0.02, &s), 0);
    assert_rel(s, 100.0 * 1.08 * 1.0 / (2000.0 * 0.02), 1e-15);   /* 2.7 cTokens */
}

static void test_fixed_compound_close_factor_and_seize_limits(void **state)
{
    (void)state;
    /* Compound v2 refuses (TOO_MUCH_REPAY, LIQUIDATE_SEIZE_TOO_MUCH) rather than clamps. */
    struct sp_fixed_compound_params p = { .close_factor = 0.5, .incentive = 1.08,
                                          .protocol_seize_share = 0.028 };
    struct sp_fixed_compound_result r;
    assert_int_equal(sp_fixed_compound_liquidate(&p, 1000.0, 1e6, 500.0, 1.0, 1.0, 1.0, &r), 0);
    assert_rel(r.seize_tokens, 540.0, 1e-15);
    assert_rel(r.to_reserves, 540.0 * 0.028, 1e-14);
    assert_rel(r.to_liquidator + r.to_reserves, r.seize_tokens, 1e-15);
    assert_int_equal(sp_fixed_compound_liquidate(&p, 1000.0, 1e6, 500.0001, 1.0, 1.0, 1.0, &r),
                     SP_ERANGE);
    assert_int_equal(sp_fixed_compound_liquidate(&p, 1000.0, 539.0, 500.0, 1.0, 1.0, 1.0, &r),
                     SP_ERANGE);
}

static void test_fixed_params_check_names_the_bad_parameter(void **state)
{
    (void)state;
    char msg[160];
    struct sp_fixed_params p = sp_fixed_params_aave_v3(1.05, 0.1);
    assert_int_equal(sp_fixed_params_check(&p, msg, sizeof msg), 0);
    static const struct { const char *key; int code; } cases[] = {
        { "close_factor", SP_ERANGE }, { "close_factor", SP_ERANGE }, { "bonus", SP_ERANGE },
        { "protocol_fee", SP_ERANGE }, { "hf_threshold", SP_ERANGE }, { "bonus", SP_EINVAL },
        { "close_factor_max", SP_ERANGE },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        p = sp_fixed_params_aave_v3(1.05, 0.1);
        switch (k) {
        case 0: p.close_factor = 0.0; break;
        case 1: p.close_factor = 1.01; break;
        case 2: p.bonus = 0.99; break;
        case 3: p.protocol_fee = 1.5; break;
        case 4: p.hf_threshold = 1.2; break;
        case 5: p.bonus = NAN; break;
        default: p.close_factor_max = -1; break;
        }
        assert_int_equal(sp_fixed_params_check(&p, msg, sizeof msg), cases[k].code);
        if (!strstr(msg, cases[k].key)) fail_msg("case %zu: '%s' lacks '%s'", k, msg, cases[k].key);
    }
    p = sp_fixed_params_aave_v3(1.0, 0.0);
    p.close_factor = 1.0;                      /* both ends of the closed sides are valid */
    assert_int_equal(sp_fixed_params_check(&p, msg, sizeof msg), 0);

    struct sp_fixed_compound_params c = { .close_factor = 0.5, .incentive = 1.08,
                                          .protocol_seize_share = 0.0 };
    assert_int_equal(sp_fixed_compound_params_check(&c, msg, sizeof msg), 0);
    c.incentive = 0.9;
    assert_int_equal(sp_fixed_compound_params_check(&c, msg, sizeof msg), SP_ERANGE);
    assert_non_null(strstr(msg, "incentive"));
    c.incentive = 1.08;
    c.close_factor = 2.0;
    assert_int_equal(sp_fixed_compound_params_check(&c, msg, sizeof msg), SP_ERANGE);
    assert_non_null(strstr(msg, "close_factor"));
    c.close_factor = 0.5;
    c.protocol_seize_share = 1.0;
    assert_int_equal(sp_fixed_compound_params_check(&c, msg, sizeof msg), SP_ERANGE);
    assert_int_equal(sp_fixed_params_check(NULL, msg, sizeof msg), SP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_aave_close_factor_boundary),
        cmocka_unit_test(test_fixed_aave_seizure_and_protocol_fee),
        cmocka_unit_test(test_fixed_aave_collateral_cap_recomputes_debt),
        cmocka_unit_test(test_fixed_toxic_liquidation_line),
        cmocka_unit_test(test_fixed_aave_conserves_collateral_over_repeated_liquidations),
        cmocka_unit_test(test_fixed_compound_seize_matches_formulas_vectors),
        cmocka_unit_test(test_fixed_compound_close_factor_and_seize_limits),
        cmocka_unit_test(test_fixed_params_check_names_the_bad_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
