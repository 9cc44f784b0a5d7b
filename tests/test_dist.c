/*
 * test_dist.c — distributed parameters: a number or a {dist: ...} map binds,
 * bad maps are located errors, and draws have the configured moments.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/module.h"

struct cfg { struct sp_dist size; struct sp_dist delay; };

static const struct sp_field fields[] = {
    { "size", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "1", NULL, "size", offsetof(struct cfg, size), NULL, 0 },
    { "delay", SP_T_DIST, 0, 0, 0, "2.5", NULL, "delay", offsetof(struct cfg, delay), NULL, 0 },
};
static const struct sp_schema schema = { "t", "t", fields, 2, sizeof(struct cfg), NULL };

static int bind(const char *yaml, struct cfg *c, struct sp_diag *d)
{
    struct sp_scenario *sc;
    int rc = sp_scenario_load_string(&sc, "t.yaml", yaml, strlen(yaml), d);
    if (!rc) {
        memset(c, 0, sizeof *c);
        rc = sp_scenario_bind(sc, &schema, sp_registry_builtin(), c, d);
    }
    sp_scenario_destroy(sc);
    return rc;
}

static void test_dist_number_and_map_forms_bind(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct cfg c;
    assert_int_equal(bind("size: 3\n", &c, &d), 0);
    assert_int_equal(c.size.kind, SP_DIST_CONST);
    assert_true(c.size.value == 3 && c.delay.kind == SP_DIST_CONST && c.delay.value == 2.5);
    assert_int_equal(bind("size: {dist: uniform, low: 1, high: 5}\n", &c, &d), 0);
    assert_int_equal(c.size.kind, SP_DIST_UNIFORM);
    assert_true(c.size.low == 1 && c.size.high == 5);
    assert_int_equal(bind("size: {dist: lognormal, mean: 10, sd: 5}\n", &c, &d), 0);
    assert_int_equal(c.size.kind, SP_DIST_LOGNORMAL);
    sp_diag_release(&d);
}

static void test_dist_bad_forms_are_located_errors(void **state)
{
    (void)state;
    const char *bad[][2] = {
        { "size: -1\n", "t.yaml:1:1" },
        { "size: {dist: uniform, low: 5, high: 1}\n", "low <= high" },
        { "size: {dist: gaussian, mean: 1}\n", "expected one of: const, uniform" },
        { "size: {dist: lognormal, mean: -2, sd: 1}\n", "mean > 0" },
        { "size: {dist: normal, mean: 0, sd: 1, skew: 2}\n", "unknown key 'skew'" },
        { "size: big\n", "expected a number, got 'big'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sp_diag d = { 0 };
        struct cfg c;
        assert_int_equal(bind(bad[i][0], &c, &d), SP_ECONFIG);
        if (!strstr(d.text, bad[i][1])) fprintf(stderr, "case %zu: %s\n", i, d.text);
        assert_non_null(strstr(d.text, bad[i][1]));
        sp_diag_release(&d);
    }
}

static void test_dist_draws_have_the_configured_moments(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 5, 6);
    struct sp_dist ln = { .kind = SP_DIST_LOGNORMAL, .mean = 10, .sd = 5 };
    struct sp_dist un = { .kind = SP_DIST_UNIFORM, .low = 2, .high = 4 };
    const int n = 400000;
    double s = 0, s2 = 0, su = 0;
    for (int i = 0; i < n; i++) {
        double x = sp_dist_draw(&ln, &r);
        s += x;
        s2 += x * x;
        double u = sp_dist_draw(&un, &r);
        assert_true(u >= 2 && u < 4);
        su += u;
    }
    double m = s / n, sd = sqrt(s2 / n - m * m);
    assert_true(fabs(m - 10) < 5 * 5 / sqrt(n));
    assert_true(fabs(sd - 5) < 0.1);
    assert_true(fabs(su / n - 3) < 0.01);
    assert_true(sp_dist_mean(&ln) == 10 && sp_dist_mean(&un) == 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_number_and_map_forms_bind),
        cmocka_unit_test(test_dist_bad_forms_are_located_errors),
        cmocka_unit_test(test_dist_draws_have_the_configured_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
