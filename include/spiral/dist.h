/*
 * spiral/dist.h — parameter distributions for agent populations.
 *
 * A population item (`count: 1000`) gives its members parameters drawn from
 * distributions, each member from its own random stream, so a member's draws
 * do not depend on the population's size or order.  In a scenario a
 * distributed parameter is written either as a plain number (a constant) or
 * as a map:
 *
 *     size: 2.5                                   # constant
 *     size: {dist: uniform, low: 1, high: 5}
 *     size: {dist: normal, mean: 0, sd: 1}
 *     size: {dist: lognormal, mean: 10, sd: 5}    # mean and sd of the value itself
 *     size: {dist: exponential, mean: 3}
 *
 * Bind it with a field of type SP_T_MAP whose `sub` is &sp_dist_schema into a
 * `struct sp_dist` — and, so that plain numbers work too, declare the field
 * with SP_DIST_FIELD(key, struct, member, default, units, doc).
 */
#ifndef SPIRAL_DIST_H
#define SPIRAL_DIST_H

#include "spiral/rng.h"
#include "spiral/scenario.h"

#ifdef __cplusplus
extern "C" {
#endif

enum sp_dist_kind { SP_DIST_CONST, SP_DIST_UNIFORM, SP_DIST_NORMAL, SP_DIST_LOGNORMAL,
                    SP_DIST_EXPONENTIAL };

struct sp_dist {
    int kind;                 /* enum sp_dist_kind */
    double value;             /* const */
    double low, high;         /* uniform */
    double mean, sd;          /* normal, lognormal (of the value), exponential (mean) */
};

extern const struct sp_schema sp_dist_schema;

/* A draw from `d` using `rng`.  Lognormal: mean and sd are those of the
 * value, converted to the underlying normal's mu, sigma. */
double sp_dist_draw(const struct sp_dist *d, struct sp_rng *rng);
/* For module checks: the distributed amount at `key` of ctx->node cannot
 * draw below 0 (a constant or a uniform's low; normal draws are checked by
 * the module when drawn).  Reports and returns SP_ECONFIG if it can. */
int sp_dist_check_nonneg(const struct sp_check_ctx *ctx, const char *key, const struct sp_dist *d);
/* The distribution's mean (for docs and checks). */
double sp_dist_mean(const struct sp_dist *d);

#ifdef __cplusplus
}
#endif
#endif
