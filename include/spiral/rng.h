/*
 * spiral/rng.h — per-entity random streams.
 *
 * Every entity draws from its own xoshiro256** stream whose state is derived
 * by splitmix64 from (run seed, stream key), and the key is a 64-bit FNV-1a
 * hash of the entity's *name*.  So a stream depends only on the seed and the
 * name: adding, removing or reordering other entities never changes it, and
 * two arms of a comparison that share names and seed share draws (common
 * random numbers).  Same seed + same binary => bit-identical draws.
 */
#ifndef SPIRAL_RNG_H
#define SPIRAL_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sp_rng { uint64_t s[4]; };

/* 64-bit FNV-1a of a NUL-terminated string: the stream key of a name. */
uint64_t sp_rng_key(const char *name);
/* Seed `r` from (seed, key). */
void sp_rng_init(struct sp_rng *r, uint64_t seed, uint64_t key);
/* Next 64 random bits (xoshiro256**). */
uint64_t sp_rng_next(struct sp_rng *r);
/* Uniform on [0, 1) with 53 bits. */
double sp_rng_uniform(struct sp_rng *r);
/* Standard normal (Marsaglia polar method; no cached spare, so the stream
 * position depends only on the number of calls made). */
double sp_rng_normal(struct sp_rng *r);
/* Exponential with the given mean. */
double sp_rng_exponential(struct sp_rng *r, double mean);
/* Poisson with mean `lambda` (exact: Knuth's method in chunks of mean <= 16;
 * cost grows with lambda, meant for jump counts per step). */
uint64_t sp_rng_poisson(struct sp_rng *r, double lambda);
/* Uniform integer in [0, n). */
uint64_t sp_rng_below(struct sp_rng *r, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif
