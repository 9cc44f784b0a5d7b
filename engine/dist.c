/*
 * dist.c — parameter distributions (spiral/dist.h): their schema and draws.
 */
#include <math.h>
#include <stddef.h>
#include "spiral/dist.h"
#include "spiral/error.h"

static const char *const dist_kinds[] = { "const", "uniform", "normal", "lognormal",
                                          "exponential", NULL };

static int dist_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct sp_dist *d = bound;
    const struct sp_node *n = ctx->node;
    switch (d->kind) {
    case SP_DIST_UNIFORM:
        if (!sp_node_get(n, "low") || !sp_node_get(n, "high") || !(d->low <= d->high)) {
            sp_diag_error(ctx->diag, n, "uniform needs low <= high");
            return SP_ECONFIG;
        }
        break;
    case SP_DIST_NORMAL:
    case SP_DIST_LOGNORMAL:
        if (!sp_node_get(n, "mean") || !(d->sd >= 0)) {
            sp_diag_error(ctx->diag, n, "%s needs mean and sd >= 0",
                          d->kind == SP_DIST_NORMAL ? "normal" : "lognormal");
            return SP_ECONFIG;
        }
        if (d->kind == SP_DIST_LOGNORMAL && !(d->mean > 0)) {
            sp_diag_error(ctx->diag, sp_node_get(n, "mean"), "lognormal needs mean > 0");
            return SP_ECONFIG;
        }
        break;
    case SP_DIST_EXPONENTIAL:
        if (!(d->mean > 0)) {
            sp_diag_error(ctx->diag, n, "exponential needs mean > 0");
            return SP_ECONFIG;
        }
        break;
    default:
        if (!sp_node_get(n, "value")) {
            sp_diag_error(ctx->diag, n, "const needs value");
            return SP_ECONFIG;
        }
    }
    return SP_OK;
}

static const struct sp_field dist_fields[] = {
    { "dist", SP_T_ENUM, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "const, uniform (low, high), normal (mean, sd), lognormal (mean, sd of the value), "
      "exponential (mean).", offsetof(struct sp_dist, kind), dist_kinds, 0 },
    { "value", SP_T_NUMBER, 0, 0, 0, NULL, NULL, "const: the value.",
      offsetof(struct sp_dist, value), NULL, 0 },
    { "low", SP_T_NUMBER, 0, 0, 0, NULL, NULL, "uniform: lower bound.",
      offsetof(struct sp_dist, low), NULL, 0 },
    { "high", SP_T_NUMBER, 0, 0, 0, NULL, NULL, "uniform: upper bound.",
      offsetof(struct sp_dist, high), NULL, 0 },
    { "mean", SP_T_NUMBER, 0, 0, 0, NULL, NULL, "normal, lognormal, exponential: the mean.",
      offsetof(struct sp_dist, mean), NULL, 0 },
    { "sd", SP_T_NUMBER, SP_F_MIN, 0, 0, NULL, NULL, "normal, lognormal: standard deviation.",
      offsetof(struct sp_dist, sd), NULL, 0 },
};

const struct sp_schema sp_dist_schema = {
    "distribution", "A parameter drawn per population member from its own random stream; "
    "a plain number is a constant.",
    dist_fields, sizeof dist_fields / sizeof dist_fields[0], sizeof(struct sp_dist), dist_check
};

double sp_dist_draw(const struct sp_dist *d, struct sp_rng *rng)
{
    switch (d->kind) {
    case SP_DIST_UNIFORM:
        return d->low + (d->high - d->low) * sp_rng_uniform(rng);
    case SP_DIST_NORMAL:
        return d->mean + d->sd * sp_rng_normal(rng);
    case SP_DIST_LOGNORMAL: {
        double v = d->sd / d->mean, s2 = log1p(v * v);
        return exp(log(d->mean) - 0.5 * s2 + sqrt(s2) * sp_rng_normal(rng));
    }
    case SP_DIST_EXPONENTIAL:
        return sp_rng_exponential(rng, d->mean);
    default:
        return d->value;
    }
}

double sp_dist_mean(const struct sp_dist *d)
{
    switch (d->kind) {
    case SP_DIST_UNIFORM: return 0.5 * (d->low + d->high);
    case SP_DIST_NORMAL: case SP_DIST_LOGNORMAL: case SP_DIST_EXPONENTIAL: return d->mean;
    default: return d->value;
    }
}

int sp_dist_check_nonneg(const struct sp_check_ctx *ctx, const char *key, const struct sp_dist *d)
{
    const struct sp_node *at = sp_node_get(ctx->node, key);
    if (d->kind == SP_DIST_UNIFORM && d->low < 0) {
        sp_diag_error(ctx->diag, at, "must be >= 0: uniform low is %g", d->low);
        return SP_ECONFIG;
    }
    if (d->kind == SP_DIST_CONST && d->value < 0) {
        sp_diag_error(ctx->diag, at, "must be >= 0, got %g", d->value);
        return SP_ECONFIG;
    }
    return SP_OK;
}
