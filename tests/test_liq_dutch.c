/*
 * test_liq_dutch.c — Maker Liquidations 2.0 Dutch auction mechanics.
 *
 * Reference values come from FORMULAS.md, "Maker Liquidations 2.0 (dss
 * clip.sol, abaci.sol, dog.sol)": the clip test setup (tab 110, lot 40,
 * top 5, 5·0.99³⁰ after 30 s, keeper reward 102.2, take 25 at max 5 buys 22
 * for 110 and returns 18), the LinearDecrease schedule (tau 3600, top 1000:
 * −100 every 360 s), the strict redo conditions and the chost partial-take
 * rule, whose exact branches are those of dss src/clip.sol `take`.  A
 * randomized run checks conservation of collateral and DAI after every step.
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
#include "spiral/types.h"
#include "liq_dutch.h"

static void assert_rel(double got, double want, double tol)
{
    double err = want == 0.0 ? fabs(got) : fabs(got - want) / fabs(want);
    if (!(err <= tol)) fail_msg("got %.17g want %.17g (rel err %.3g > %.3g)", got, want, err, tol);
}

/* FORMULAS.md clip test setup: stairstep cut 0.99 per 1 s, buf 1.25, chop
 * 1.1, tip 100, chip 2 %.  tail/cusp loose enough not to interfere. */
static struct sp_dutch_params clip_setup(void)
{
    struct sp_dutch_params p = {
        .curve = SP_DUTCH_STAIRSTEP_EXP, .step = 1 * SP_SEC, .cut = 0.99, .buf = 1.25,
        .tail = 3600 * SP_SEC, .cusp = 0.3, .chop = 1.1, .tip = 100.0, .chip = 0.02,
        .dust = 20.0,
    };
    return p;
}

static void test_dutch_clip_setup_matches_formulas_vector(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 2.0, "clip test setup". */
    struct sp_dutch_params p = clip_setup();
    struct sp_dutch_auction a;
    double reward = 0, price = 0;
    int redo = -1;
    assert_int_equal(sp_dutch_params_check(&p, NULL, 0), 0);
    assert_int_equal(sp_dutch_bark(&p, 100.0, 40.0, 4.0, 7 * SP_SEC, &a, &reward), 0);
    assert_rel(a.tab, 110.0, 1e-15);
    assert_rel(a.lot, 40.0, 0);
    assert_rel(a.top, 5.0, 1e-15);
    assert_rel(reward, 102.2, 1e-14);               /* tip 100 + 2 % of 110 */
    assert_int_equal(a.tic, 7 * SP_SEC);

    assert_int_equal(sp_dutch_status(&p, &a, a.tic + 30 * SP_SEC, &redo, &price), 0);
    assert_false(redo);
    assert_true(fabs(price - 3.6985018669) < 1e-10);   /* 5·0.99³⁰ */
    assert_rel(price, 5.0 * pow(0.99, 30), 1e-14);
    /* whole seconds: 30.9 s after the kick is still the 30 s price */
    double p2 = 0;
    assert_int_equal(sp_dutch_status(&p, &a, a.tic + 30 * SP_SEC + 900 * SP_MS, &redo, &p2), 0);
    assert_true(p2 == price);

    /* take 25 at max 5, at the kick (price = top = 5) */
    struct sp_dutch_take t;
    assert_int_equal(sp_dutch_take(&p, &a, a.tic, 25.0, 5.0, &t), 0);
    assert_rel(t.price, 5.0, 1e-15);
    assert_rel(t.slice, 22.0, 1e-14);
    assert_rel(t.owe, 110.0, 1e-15);
    assert_rel(t.lot_returned, 18.0, 1e-14);
    assert_true(t.closed && t.shortfall == 0.0 && !a.live);
    assert_rel(t.slice + t.lot_returned, 40.0, 1e-15);
}

static void test_dutch_linear_decrease_falls_100_every_360_s(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 2.0, "LinearDecrease test": tau 3600, top 1000. */
    struct sp_dutch_params p = clip_setup();
    p.curve = SP_DUTCH_LINEAR;
    p.tau = 3600 * SP_SEC;
    double price = -1;
    for (int k = 0; k <= 10; k++) {
        assert_int_equal(sp_dutch_price(&p, 1000.0, k * 360 * SP_SEC, &price), 0);
        assert_rel(price, 1000.0 - 100.0 * k, 1e-13);
    }
    /* linear in between (abaci LinearDecrease is not a stairstep) */
    assert_int_equal(sp_dutch_price(&p, 1000.0, 180 * SP_SEC, &price), 0);
    assert_rel(price, 950.0, 1e-13);
    /* 0 once dur >= tau */
    assert_int_equal(sp_dutch_price(&p, 1000.0, 3599 * SP_SEC, &price), 0);
    assert_rel(price, 1000.0 / 3600.0, 1e-12);
    assert_int_equal(sp_dutch_price(&p, 1000.0, 3600 * SP_SEC, &price), 0);
    assert_true(price == 0.0);
    assert_int_equal(sp_dutch_price(&p, 1000.0, 5000 * SP_SEC, &price), 0);
    assert_true(price == 0.0);
    assert_int_equal(sp_dutch_price(&p, 1000.0, -1, &price), SP_EINVAL);
}

static void test_dutch_exponential_curves(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 2.0, price curves: stairstep top·cut^floor(dur/step),
     * exponential top·cut^dur. */
    struct sp_dutch_params p = clip_setup();
    double price = 0;
    p.step = 90 * SP_SEC;
    p.cut = 0.99;
    assert_int_equal(sp_dutch_price(&p, 1000.0, 89 * SP_SEC, &price), 0);
    assert_rel(price, 1000.0, 0);
    assert_int_equal(sp_dutch_price(&p, 1000.0, 90 * SP_SEC, &price), 0);
    assert_rel(price, 990.0, 1e-15);
    assert_int_equal(sp_dutch_price(&p, 1000.0, 455 * SP_SEC, &price), 0);
    assert_rel(price, 1000.0 * pow(0.99, 5), 1e-15);
    p.curve = SP_DUTCH_EXP;
    p.cut = 0.999;
    assert_int_equal(sp_dutch_price(&p, 1000.0, 455 * SP_SEC, &price), 0);
    assert_rel(price, 1000.0 * pow(0.999, 455), 1e-14);
}

static void test_dutch_redo_conditions_are_strict(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 2.0: "Reset (redo) allowed when dur > tail or
     * price/top < cusp (strictly)" (dss clip.sol status). */
    struct sp_dutch_params p = clip_setup();
    p.curve = SP_DUTCH_LINEAR;
    p.tau = 3600 * SP_SEC;
    p.tail = 1800 * SP_SEC;
    p.cusp = 0.0;
    struct sp_dutch_auction a;
    double reward, price;
    int redo;
    assert_int_equal(sp_dutch_bark(&p, 100.0, 40.0, 800.0, 0, &a, &reward), 0);   /* top 1000 */
    assert_rel(a.top, 1000.0, 1e-15);
    assert_int_equal(sp_dutch_status(&p, &a, 1800 * SP_SEC, &redo, &price), 0);
    assert_false(redo);                                 /* dur == tail */
    assert_int_equal(sp_dutch_status(&p, &a, 1801 * SP_SEC, &redo, &price), 0);
    assert_true(redo);                                  /* dur > tail */

    p.tail = 3600 * SP_SEC;
    p.cusp = 0.5;
    assert_int_equal(sp_dutch_status(&p, &a, 1800 * SP_SEC, &redo, &price), 0);
    assert_rel(price, 500.0, 1e-15);
    assert_false(redo);                                 /* price/top == cusp */
    assert_int_equal(sp_dutch_status(&p, &a, 1801 * SP_SEC, &redo, &price), 0);
    assert_true(redo);                                  /* price/top < cusp */

    /* take refused while a redo is due; redo refused while none is due */
    struct sp_dutch_take t;
    struct sp_dutch_auction before = a;
    assert_int_equal(sp_dutch_take(&p, &a, 1801 * SP_SEC, 1.0, 1e9, &t), SP_ESTATE);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(sp_dutch_redo(&p, &a, 1800 * SP_SEC, 900.0, &reward), SP_ESTATE);
    assert_memory_equal(&a, &before, sizeof a);

    /* redo restarts the run at the new feed price and pays tip + chip·tab */
    assert_int_equal(sp_dutch_redo(&p, &a, 1801 * SP_SEC, 600.0, &reward), 0);
    assert_int_equal(a.tic, 1801 * SP_SEC);
    assert_rel(a.top, 750.0, 1e-15);
    assert_rel(reward, 100.0 + 0.02 * 110.0, 1e-14);
    assert_int_equal(sp_dutch_status(&p, &a, 1801 * SP_SEC, &redo, &price), 0);
    assert_false(redo);
    assert_rel(price, 750.0, 1e-15);
}

static void test_dutch_redo_reward_needs_tab_and_lot_value_above_chost(void **state)
{
    (void)state;
    /* dss clip.sol redo: coin paid only if tab >= chost && lot·feedPrice >= chost. */
    struct sp_dutch_params p = clip_setup();   /* chost = 20·1.1 = 22 */
    p.tail = 10 * SP_SEC;
    struct sp_dutch_auction a;
    double reward;
    assert_int_equal(sp_dutch_bark(&p, 100.0, 40.0, 4.0, 0, &a, &reward), 0);
    /* lot·feed = 40·0.5 = 20 < 22: no reward */
    assert_int_equal(sp_dutch_redo(&p, &a, 11 * SP_SEC, 0.5, &reward), 0);
    assert_true(reward == 0.0);
    /* lot·feed = 40·0.55 = 22 == chost: rewarded */
    assert_int_equal(sp_dutch_redo(&p, &a, 22 * SP_SEC, 0.55 + 1e-12, &reward), 0);
    assert_rel(reward, 102.2, 1e-14);
    /* tab below chost: no reward */
    a.tab = 21.0;
    assert_int_equal(sp_dutch_redo(&p, &a, 33 * SP_SEC, 4.0, &reward), 0);
    assert_true(reward == 0.0);
}

/* A setup where every amount is exact in binary: buf 1, feed 4 (price 4 at
 * the kick), chop 1.25, debt 88 → tab 110, dust 16 → chost 20. */
static void exact_setup(struct sp_dutch_params *p, struct sp_dutch_auction *a, double lot)
{
    double reward;
    *p = clip_setup();
    p->buf = 1.0;
    p->chop = 1.25;
    p->dust = 16.0;
    assert_true(sp_dutch_chost(p) == 20.0);
    assert_int_equal(sp_dutch_bark(p, 88.0, lot, 4.0, 0, a, &reward), 0);
    assert_true(a->tab == 110.0 && a->top == 4.0);
}

static void test_dutch_take_chost_rule(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 2.0, take: "a partial take must leave tab >= chost
     * (dust·chop) or take everything"; branches as in dss clip.sol take. */
    struct sp_dutch_params p;
    struct sp_dutch_auction a;
    struct sp_dutch_take t;

    /* leaves 60 >= 20: an ordinary partial take */
    exact_setup(&p, &a, 40.0);
    assert_int_equal(sp_dutch_take(&p, &a, 0, 12.5, 4.0, &t), 0);
    assert_true(t.slice == 12.5 && t.owe == 50.0 && !t.closed);
    assert_true(a.tab == 60.0 && a.lot == 27.5);

    /* leaves exactly chost (110 − 90 = 20, not < 20): not adjusted */
    exact_setup(&p, &a, 40.0);
    assert_int_equal(sp_dutch_take(&p, &a, 0, 22.5, 4.0, &t), 0);
    assert_true(t.slice == 22.5 && t.owe == 90.0 && a.tab == 20.0);

    /* would leave 19 < chost: cut down to leave exactly chost */
    exact_setup(&p, &a, 40.0);
    assert_int_equal(sp_dutch_take(&p, &a, 0, 22.75, 4.0, &t), 0);
    assert_true(t.slice == 22.5 && t.owe == 90.0 && a.tab == 20.0 && a.lot == 17.5);

    /* now tab <= chost: a partial take is refused, the whole lot is not */
    struct sp_dutch_auction before = a;
    assert_int_equal(sp_dutch_take(&p, &a, 0, 1.0, 4.0, &t), SP_ERANGE);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(sp_dutch_take(&p, &a, 0, 17.5, 4.0, &t), 0);  /* owe 70 > 20 */
    assert_true(t.owe == 20.0 && t.slice == 5.0 && t.closed);
    assert_true(t.lot_returned == 12.5 && t.shortfall == 0.0);

    /* taking the whole lot is never limited by chost, even if it leaves tab unpaid */
    exact_setup(&p, &a, 25.0);                          /* lot worth 100 < tab 110 */
    assert_int_equal(sp_dutch_take(&p, &a, 0, 25.0, 4.0, &t), 0);
    assert_true(t.slice == 25.0 && t.owe == 100.0 && t.closed);
    assert_true(t.shortfall == 10.0 && t.lot_returned == 0.0 && !a.live);

    /* too expensive: price 4 > max */
    exact_setup(&p, &a, 40.0);
    before = a;
    assert_int_equal(sp_dutch_take(&p, &a, 0, 1.0, 3.99, &t), SP_ERANGE);
    assert_memory_equal(&a, &before, sizeof a);
    /* a closed auction cannot be taken */
    a.live = 0;
    assert_int_equal(sp_dutch_take(&p, &a, 0, 1.0, 4.0, &t), SP_ESTATE);
}

static void test_dutch_params_check_names_the_bad_parameter(void **state)
{
    (void)state;
    char msg[160];
    struct sp_dutch_params p = clip_setup();
    assert_int_equal(sp_dutch_params_check(&p, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
    static const struct { const char *key; int code; } cases[] = {
        { "buf", SP_ERANGE }, { "cut", SP_ERANGE }, { "cut", SP_ERANGE }, { "tail", SP_ERANGE },
        { "cusp", SP_ERANGE }, { "chop", SP_ERANGE }, { "step", SP_ERANGE }, { "cut", SP_EINVAL },
        { "tau", SP_ERANGE }, { "tip", SP_ERANGE }, { "dust", SP_ERANGE },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        p = clip_setup();
        switch (k) {
        case 0: p.buf = 0.99; break;
        case 1: p.cut = 1.0; break;
        case 2: p.cut = 0.0; break;
        case 3: p.tail = 0; break;
        case 4: p.cusp = 1.0; break;
        case 5: p.chop = 0.9; break;
        case 6: p.step = 0; break;
        case 7: p.cut = NAN; break;
        case 8: p.curve = SP_DUTCH_LINEAR; p.tau = -5; break;
        case 9: p.tip = -1.0; break;
        default: p.dust = -1.0; break;
        }
        assert_int_equal(sp_dutch_params_check(&p, msg, sizeof msg), cases[k].code);
        if (!strstr(msg, cases[k].key)) fail_msg("case %zu: '%s' lacks '%s'", k, msg, cases[k].key);
    }
    /* a linear curve does not look at cut */
    p = clip_setup();
    p.curve = SP_DUTCH_LINEAR;
    p.tau = 3600 * SP_SEC;
    p.cut = 7.0;
    assert_int_equal(sp_dutch_params_check(&p, msg, sizeof msg), 0);
    p.curve = (enum sp_dutch_curve)9;
    assert_int_equal(sp_dutch_params_check(&p, msg, sizeof msg), SP_EINVAL);
    assert_int_equal(sp_dutch_params_check(NULL, NULL, 0), SP_EINVAL);
    /* truncation is safe */
    p = clip_setup();
    p.buf = 0.5;
    assert_int_equal(sp_dutch_params_check(&p, msg, 4), SP_ERANGE);
    assert_int_equal(strlen(msg), 3);
}

static void test_dutch_conserves_collateral_and_dai_over_random_runs(void **state)
{
    (void)state;
    /* Conservation (STYLE.md, randomized invariants): every unit of the kicked lot ends
     * with a taker, back with the owner, or still in the auction; DAI raised plus tab left
     * plus shortfall is the kicked tab; a partial take never leaves 0 < tab < chost from
     * above; nobody pays more than max per unit. */
    struct sp_rng r;
    sp_rng_init(&r, 2020, sp_rng_key("liq_dutch_conservation"));
    int n_closed = 0, n_redo = 0, n_take = 0;
    for (int run = 0; run < 2000; run++) {
        struct sp_dutch_params p = clip_setup();
        p.curve = (enum sp_dutch_curve)sp_rng_below(&r, 3);
        p.tau = (sp_time)(600 + sp_rng_below(&r, 6000)) * SP_SEC;
        p.step = (sp_time)(1 + sp_rng_below(&r, 120)) * SP_SEC;
        p.cut = 0.9 + 0.0999 * sp_rng_uniform(&r);
        p.tail = (sp_time)(60 + sp_rng_below(&r, 3600)) * SP_SEC;
        p.cusp = 0.6 * sp_rng_uniform(&r);
        p.buf = 1.0 + 0.5 * sp_rng_uniform(&r);
        p.dust = 50.0 * sp_rng_uniform(&r);
        assert_int_equal(sp_dutch_params_check(&p, NULL, 0), 0);
        double feed = 1.0 + 99.0 * sp_rng_uniform(&r);
        double coll = 1.0 + 1000.0 * sp_rng_uniform(&r);
        double debt = coll * feed * (0.3 + 1.2 * sp_rng_uniform(&r));
        struct sp_dutch_auction a;
        double reward;
        sp_time now = (sp_time)sp_rng_below(&r, 1000) * SP_SEC;
        assert_int_equal(sp_dutch_bark(&p, debt, coll, feed, now, &a, &reward), 0);
        const double lot0 = a.lot, tab0 = a.tab, chost = sp_dutch_chost(&p);
        double sold = 0, returned = 0, raised = 0, shortfall = 0;
        for (int step = 0; step < 200 && a.live; step++) {
            now += (sp_time)sp_rng_below(&r, 300 * (uint64_t)SP_SEC);
            int redo;
            double price;
            assert_int_equal(sp_dutch_status(&p, &a, now, &redo, &price), 0);
            if (redo) {
                feed *= 0.7 + 0.6 * sp_rng_uniform(&r);
                assert_int_equal(sp_dutch_redo(&p, &a, now, feed, &reward), 0);
                n_redo++;
                continue;
            }
            double amt = a.lot * (sp_rng_uniform(&r) < 0.2 ? 1.5 : sp_rng_uniform(&r));
            if (!(amt > 0)) continue;
            double max = price * (0.9 + 0.3 * sp_rng_uniform(&r));
            double tab_before = a.tab;
            struct sp_dutch_take t;
            int rc = sp_dutch_take(&p, &a, now, amt, max, &t);
            if (rc == SP_ERANGE) continue;   /* too expensive or no partial purchase */
            assert_int_equal(rc, 0);
            n_take++;
            assert_true(t.slice >= 0 && t.owe >= 0 && t.owe <= max * t.slice * (1 + 1e-12));
            assert_true(t.owe <= tab_before);
            sold += t.slice;
            returned += t.lot_returned;
            raised += t.owe;
            shortfall += t.shortfall;
            if (!t.closed && tab_before > chost) assert_true(a.tab >= chost * (1 - 1e-12));
            if (t.closed) n_closed++;
            /* conservation after every step */
            assert_rel(sold + returned + a.lot, lot0, 1e-12);
            assert_rel(raised + (a.live ? a.tab : 0.0) + shortfall, tab0, 1e-12);
        }
        assert_true(a.lot >= 0 && a.tab >= 0);
    }
    /* the runs exercised every path */
    assert_true(n_closed > 500 && n_redo > 500 && n_take > 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dutch_clip_setup_matches_formulas_vector),
        cmocka_unit_test(test_dutch_linear_decrease_falls_100_every_360_s),
        cmocka_unit_test(test_dutch_exponential_curves),
        cmocka_unit_test(test_dutch_redo_conditions_are_strict),
        cmocka_unit_test(test_dutch_redo_reward_needs_tab_and_lot_value_above_chost),
        cmocka_unit_test(test_dutch_take_chost_rule),
        cmocka_unit_test(test_dutch_params_check_names_the_bad_parameter),
        cmocka_unit_test(test_dutch_conserves_collateral_and_dai_over_random_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
