/*
 * rng.c — xoshiro256** streams seeded by splitmix64 (Blackman & Vigna,
 * https://prng.di.unimi.it/).  See spiral/rng.h for the stream discipline.
 */
#include <math.h>
#include "spiral/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sp_rng_key(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void sp_rng_init(struct sp_rng *r, uint64_t seed, uint64_t key)
{
    /* Mix seed and key through splitmix64 so nearby seeds/keys decorrelate. */
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = key ^ a;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;  /* never all-zero */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sp_rng_next(struct sp_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sp_rng_uniform(struct sp_rng *r)
{
    return (double)(sp_rng_next(r) >> 11) * 0x1.0p-53;
}

double sp_rng_normal(struct sp_rng *r)
{
    double u, v, s;
    do {
        u = 2.0 * sp_rng_uniform(r) - 1.0;
        v = 2.0 * sp_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

double sp_rng_exponential(struct sp_rng *r, double mean)
{
    return -mean * log1p(-sp_rng_uniform(r));
}

uint64_t sp_rng_poisson(struct sp_rng *r, double lambda)
{
    /* Knuth's product method, in chunks of mean <= 16 so exp(-chunk) never
     * underflows; the sum of independent Poissons is Poisson. */
    uint64_t n = 0;
    while (lambda > 0) {
        double chunk = lambda > 16 ? 16 : lambda;
        lambda -= chunk;
        double limit = exp(-chunk), p = 1.0;
        for (;;) {
            p *= sp_rng_uniform(r);
            if (p <= limit) break;
            n++;
        }
    }
    return n;
}

uint64_t sp_rng_below(struct sp_rng *r, uint64_t n)
{
    /* Lemire's nearly-divisionless method, unbiased. */
    if (n == 0) return 0;
    __uint128_t m = (__uint128_t)sp_rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = (0 - n) % n;
        while (lo < t) {
            m = (__uint128_t)sp_rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}
