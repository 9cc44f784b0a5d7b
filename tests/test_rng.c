/*
 * test_rng.c — per-entity random streams.
 *
 * The generator is checked against the reference xoshiro256** of Blackman
 * and Vigna (https://prng.di.unimi.it/xoshiro256starstar.c, restated below),
 * the streams for their independence from everything but (seed, name), and
 * the distributions for their first moments.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/rng.h"

/* Reference implementation, verbatim in substance from the authors' site. */
static inline uint64_t ref_rotl(const uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t ref_next(uint64_t s[4])
{
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

static void test_rng_matches_reference_xoshiro256starstar(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 12345, sp_rng_key("ETH"));
    uint64_t s[4] = { r.s[0], r.s[1], r.s[2], r.s[3] };
    for (int i = 0; i < 10000; i++) assert_int_equal(sp_rng_next(&r), ref_next(s));
}

static void test_rng_fnv1a_key_matches_published_vectors(void **state)
{
    (void)state;
    /* FNV-1a 64 test vectors (Fowler/Noll/Vo reference test suite). */
    assert_int_equal(sp_rng_key(""), 0xcbf29ce484222325ULL);
    assert_int_equal(sp_rng_key("a"), 0xaf63dc4c8601ec8cULL);
    assert_int_equal(sp_rng_key("foobar"), 0x85944171f73967e8ULL);
}

static void test_rng_stream_depends_only_on_seed_and_name(void **state)
{
    (void)state;
    struct sp_rng a, b, c, d;
    sp_rng_init(&a, 7, sp_rng_key("looper_1"));
    sp_rng_init(&b, 7, sp_rng_key("looper_1"));
    sp_rng_init(&c, 8, sp_rng_key("looper_1"));
    sp_rng_init(&d, 7, sp_rng_key("looper_2"));
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = sp_rng_next(&a);
        assert_int_equal(x, sp_rng_next(&b));
        same_c += x == sp_rng_next(&c);
        same_d += x == sp_rng_next(&d);
    }
    assert_int_equal(same_c, 0);
    assert_int_equal(same_d, 0);
}

static void test_rng_distributions_have_the_right_moments(void **state)
{
    (void)state;
    struct sp_rng r;
    sp_rng_init(&r, 1, 2);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, se = 0, sp = 0;
    for (int i = 0; i < n; i++) {
        double u = sp_rng_uniform(&r);
        assert_true(u >= 0 && u < 1);
        su += u;
        double z = sp_rng_normal(&r);
        sn += z;
        sn2 += z * z;
        se += sp_rng_exponential(&r, 3.0);
        sp += (double)sp_rng_poisson(&r, 40.0);
        assert_true(sp_rng_below(&r, 7) < 7);
    }
    /* Tolerances are about 5 standard errors. */
    assert_true(fabs(su / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(sn / n) < 5 / sqrt(n));
    assert_true(fabs(sn2 / n - 1) < 5 * sqrt(2.0 / n));
    assert_true(fabs(se / n - 3) < 5 * 3 / sqrt(n));
    assert_true(fabs(sp / n - 40) < 5 * sqrt(40.0 / n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_matches_reference_xoshiro256starstar),
        cmocka_unit_test(test_rng_fnv1a_key_matches_published_vectors),
        cmocka_unit_test(test_rng_stream_depends_only_on_seed_and_name),
        cmocka_unit_test(test_rng_distributions_have_the_right_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
