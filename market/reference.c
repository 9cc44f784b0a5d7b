/*
 * reference.c — reference price processes: GBM with Merton jumps, and CSV
 * replay; both with scheduled shocks.  One entity per base asset, recorded
 * to /markets/reference_<asset>.
 *
 * price(t) = x(t) * F(t), where
 *   x(t) is the base process:
 *     gbm:    exact log-normal steps on a fixed grid of `step`:
 *             x <- x * exp((mu - sigma^2/2 - lambda*kappa*c) dt + sigma sqrt(dt) Z + J),
 *             J = sum of N ~ Poisson(lambda dt) normal log-jumps (mean m, sd s),
 *             kappa = E[e^J] - 1 = exp(m + s^2/2) - 1, c = 1 if compensated;
 *             x is constant between grid points.
 *     replay: linear interpolation of the CSV's (time, price) rows, the first
 *             row (plus `skip`) at t = 0, the last price held after the end.
 *   F(t) = prod over shocks of 1 - drop * clamp((t - at) / over, 0, 1)
 *          (a linear ramp from 1 to 1 - drop over [at, at + over]).
 * The GBM draws happen only on its own grid, so they do not depend on the
 * shocks: two arms that differ only in a shock see the same x(t).
 *
 * Updates happen at the grid points, at each replay row, and at each shock's
 * start and end; samples are written every `sample_every` (a separate
 * low-priority event, so a sample sees every update at its instant), or at
 * every update when `record_every_update` is set.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/recorder.h"
#include "spiral/error.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "csv-internal.h"
#include "reference.h"

enum { REF_GBM, REF_REPLAY };
enum { EV_UPDATE = 1, EV_SAMPLE = 2, EV_SHOCK_END = 3 };

struct shock_cfg {
    sp_time at;
    double drop;
    sp_time over;
};

struct reference_cfg {
    const char *name;
    const char *asset;
    sp_time step;
    sp_time sample_every;
    bool record_every_update;
    struct shock_cfg *shocks;
    size_t n_shocks;
    /* gbm */
    double initial, drift, volatility;
    double jump_rate, jump_mean, jump_stdev;
    bool compensate_jumps;
    /* replay */
    const char *file;
    const char *time_column, *price_column;
    sp_time skip;
    double scale;
};

struct reference {
    const struct reference_cfg *cfg;
    struct shock_cfg *extra;  /* shocks added while running (sp_reference_shock) */
    size_t n_extra, cap_extra;
    struct sp_sim *sim;
    sp_id id;
    int kind;
    double x, factor, price;
    sp_time grid_t;           /* time of the last grid step */
    double log_drift;         /* per year, with the compensator */
    struct sp_series series;  /* replay rows, times in file seconds */
    double t0_file;           /* file time at t = 0: first row + skip */
    size_t row;               /* series index with t[row] <= file time < t[row+1] */
    struct sp_rec_table *tab;
    sp_time sample_every;
    double peak, max_drawdown, min_price;
};

/* ---- schema --------------------------------------------------------------- */

static const struct sp_field shock_fields[] = {
    { "at", SP_T_DURATION, SP_F_REQUIRED, 0, 0, NULL, "time", "When the shock starts.",
      offsetof(struct shock_cfg, at), NULL, 0 },
    { "drop", SP_T_FRACTION, SP_F_REQUIRED | SP_F_MAX_EXCL, 0, 1, NULL, "fraction",
      "Fall of the price at the end of the ramp (40% leaves 0.6 of the price); negative is a rise.",
      offsetof(struct shock_cfg, drop), NULL, 0 },
    { "over", SP_T_DURATION, 0, 0, 0, "0s", "time",
      "Length of the linear ramp; 0 is an instant jump.",
      offsetof(struct shock_cfg, over), NULL, 0 },
};

static const struct sp_schema shock_schema = {
    "shock", "A scheduled move of the reference price: a linear ramp of the multiplier "
    "from 1 to 1 - drop between `at` and `at + over`. Shocks compose multiplicatively.",
    shock_fields, sizeof shock_fields / sizeof shock_fields[0], sizeof(struct shock_cfg), NULL
};

#define COMMON_FIELDS                                                                        \
    { "name", SP_T_NAME, 0, 0, 0, NULL, NULL,                                                \
      "Entity name; default reference_<asset>. Output group /markets/<name>.",              \
      offsetof(struct reference_cfg, name), NULL, 0 },                                       \
    { "asset", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,                                  \
      "The base token it prices (a `tokens` entry of kind base).",                           \
      offsetof(struct reference_cfg, asset), NULL, 0 },                                      \
    { "step", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",                              \
      "Time between updates of the process.", offsetof(struct reference_cfg, step), NULL, 0 },\
    { "sample_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",                      \
      "Recording cadence; default output.sample_every.",                                    \
      offsetof(struct reference_cfg, sample_every), NULL, 0 },                               \
    { "record_every_update", SP_T_BOOL, 0, 0, 0, "false", NULL,                              \
      "Write a row at every update instead of on the sampling grid.",                        \
      offsetof(struct reference_cfg, record_every_update), NULL, 0 },                        \
    { "shocks", SP_T_LIST, 0, 0, 0, NULL, NULL, "Scheduled shocks (list).",                  \
      offsetof(struct reference_cfg, shocks), &shock_schema,                                 \
      offsetof(struct reference_cfg, n_shocks) }

static const struct sp_field gbm_fields[] = {
    COMMON_FIELDS,
    { "initial", SP_T_NUMBER, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "numeraire",
      "Price at t = 0.", offsetof(struct reference_cfg, initial), NULL, 0 },
    { "drift", SP_T_FRACTION, 0, 0, 0, "0%", "per year",
      "Annualised drift mu of the diffusion.", offsetof(struct reference_cfg, drift), NULL, 0 },
    { "volatility", SP_T_FRACTION, SP_F_MIN, 0, 0, "0%", "per sqrt(year)",
      "Annualised volatility sigma.", offsetof(struct reference_cfg, volatility), NULL, 0 },
    { "jump_rate", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "per year",
      "Merton jumps: mean number per year (0 = none).",
      offsetof(struct reference_cfg, jump_rate), NULL, 0 },
    { "jump_mean", SP_T_FRACTION, 0, 0, 0, "0%", "log return",
      "Mean of each jump's log return (e.g. -5%).",
      offsetof(struct reference_cfg, jump_mean), NULL, 0 },
    { "jump_stdev", SP_T_FRACTION, SP_F_MIN, 0, 0, "0%", "log return",
      "Standard deviation of each jump's log return.",
      offsetof(struct reference_cfg, jump_stdev), NULL, 0 },
    { "compensate_jumps", SP_T_BOOL, 0, 0, 0, "false", NULL,
      "Subtract lambda*kappa from the drift so jumps do not change the expected price.",
      offsetof(struct reference_cfg, compensate_jumps), NULL, 0 },
};

static int gbm_check(void *bound, const struct sp_check_ctx *ctx)
{
    return sp_world_check_token(ctx, "asset", SP_TOKEN_BASE);
}

static const struct sp_schema gbm_schema = {
    "references[type: gbm]",
    "Geometric Brownian motion with optional Merton jumps, sampled exactly on a grid.",
    gbm_fields, sizeof gbm_fields / sizeof gbm_fields[0], sizeof(struct reference_cfg), gbm_check
};

static const struct sp_field replay_fields[] = {
    COMMON_FIELDS,
    { "file", SP_T_PATH, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "CSV file with a header line; '#' lines are comments. Relative to the scenario file.",
      offsetof(struct reference_cfg, file), NULL, 0 },
    { "time_column", SP_T_STRING, 0, 0, 0, "time", "seconds",
      "Column of times in seconds (e.g. unix time); must strictly increase.",
      offsetof(struct reference_cfg, time_column), NULL, 0 },
    { "price_column", SP_T_STRING, 0, 0, 0, "price", "numeraire",
      "Column of prices.", offsetof(struct reference_cfg, price_column), NULL, 0 },
    { "skip", SP_T_DURATION, 0, 0, 0, "0s", "time",
      "Start the replay this long after the file's first row (that instant is t = 0).",
      offsetof(struct reference_cfg, skip), NULL, 0 },
    { "scale", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "1", NULL,
      "Multiply every price by this.", offsetof(struct reference_cfg, scale), NULL, 0 },
};

static int replay_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct reference_cfg *c = bound;
    int rc = sp_world_check_token(ctx, "asset", SP_TOKEN_BASE);
    struct sp_series s;
    char err[512];
    int r = sp_csv_read_series(c->file, c->time_column, c->price_column, &s, err, sizeof err);
    if (r) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "file"), "%s", err);
        return SP_ECONFIG;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (!(s.v[i] > 0)) {
            sp_diag_error(ctx->diag, sp_node_get(ctx->node, "file"),
                          "%s: row %zu: price must be > 0, got %g", c->file, i + 1, s.v[i]);
            rc = SP_ECONFIG;
            break;
        }
    }
    if (s.t[0] + sp_time_sec(c->skip) > s.t[s.n - 1]) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "skip"),
                      "skip goes past the file's last row (the file spans %.17g s)",
                      s.t[s.n - 1] - s.t[0]);
        rc = SP_ECONFIG;
    }
    sp_series_release(&s);
    return rc;
}

static const struct sp_schema replay_schema = {
    "references[type: replay]",
    "Replay of a recorded price path from CSV, linearly interpolated between rows.",
    replay_fields, sizeof replay_fields / sizeof replay_fields[0], sizeof(struct reference_cfg),
    replay_check
};

/* ---- the process ---------------------------------------------------------- */

static const char *ref_default_name(const void *cfg, char *buf, size_t size)
{
    const struct reference_cfg *c = cfg;
    snprintf(buf, size, "reference_%s", c->asset);
    return buf;
}

static double shocks_factor(const struct shock_cfg *shocks, size_t n, sp_time t)
{
    double f = 1.0;
    for (size_t i = 0; i < n; i++) {
        const struct shock_cfg *s = &shocks[i];
        if (t < s->at) continue;            /* an instant shock applies at `at` */
        double frac = (s->over <= 0 || t >= s->at + s->over)
                          ? 1.0 : (double)(t - s->at) / (double)s->over;
        f *= 1.0 - s->drop * frac;
    }
    return f;
}

static double shock_factor(const struct reference *r, sp_time t)
{
    return shocks_factor(r->cfg->shocks, r->cfg->n_shocks, t)
         * shocks_factor(r->extra, r->n_extra, t);
}

static double file_time(const struct reference *r, sp_time t)
{
    return r->t0_file + sp_time_sec(t);
}

static sp_time sim_time_of(const struct reference *r, double ft)
{
    return (sp_time)llround((ft - r->t0_file) * 1e6);
}

static double replay_value(struct reference *r, sp_time t)
{
    const struct sp_series *s = &r->series;
    double ft = file_time(r, t);
    while (r->row + 1 < s->n && s->t[r->row + 1] <= ft) r->row++;
    if (r->row + 1 >= s->n || ft <= s->t[r->row]) return s->v[r->row] * r->cfg->scale;
    double w = (ft - s->t[r->row]) / (s->t[r->row + 1] - s->t[r->row]);
    return (s->v[r->row] + w * (s->v[r->row + 1] - s->v[r->row])) * r->cfg->scale;
}

static void gbm_advance(struct reference *r, sp_time t)
{
    const struct reference_cfg *c = r->cfg;
    struct sp_rng *rng = sp_sim_rng(r->sim, r->id);
    double dt = (double)(t - r->grid_t) / (double)SP_YEAR;
    double lr = r->log_drift * dt;
    if (c->volatility > 0) lr += c->volatility * sqrt(dt) * sp_rng_normal(rng);
    if (c->jump_rate > 0) {
        uint64_t nj = sp_rng_poisson(rng, c->jump_rate * dt);
        for (uint64_t k = 0; k < nj; k++) lr += c->jump_mean + c->jump_stdev * sp_rng_normal(rng);
    }
    r->x *= exp(lr);
    r->grid_t = t;
}

static void record(struct reference *r, sp_time t)
{
    if (!r->tab) return;
    union sp_rec_val row[4];
    row[0].f = sp_time_sec(t);
    row[1].i = t;
    row[2].f = r->price;
    row[3].f = r->factor;
    sp_rec_append(r->tab, row);
}

/* The next time something changes after `t`. */
static sp_time next_update(const struct reference *r, sp_time t)
{
    const struct reference_cfg *c = r->cfg;
    sp_time next = (t / c->step + 1) * c->step;          /* next grid point */
    for (size_t i = 0; i < c->n_shocks; i++) {
        const struct shock_cfg *s = &c->shocks[i];
        if (s->at > t && s->at < next) next = s->at;
        if (s->at + s->over > t && s->at + s->over < next) next = s->at + s->over;
    }
    if (r->kind == REF_REPLAY) {
        const struct sp_series *s = &r->series;
        size_t k = r->row;
        while (k < s->n && sim_time_of(r, s->t[k]) <= t) k++;
        if (k < s->n && sim_time_of(r, s->t[k]) < next) next = sim_time_of(r, s->t[k]);
    }
    return next;
}

static void update(struct reference *r, sp_time t)
{
    if (r->kind == REF_GBM) {
        if (t % r->cfg->step == 0 && t > r->grid_t) gbm_advance(r, t);
    } else {
        r->x = replay_value(r, t);
    }
    r->factor = shock_factor(r, t);
    r->price = r->x * r->factor;
    if (r->price > r->peak) r->peak = r->price;
    double dd = 1.0 - r->price / r->peak;
    if (dd > r->max_drawdown) r->max_drawdown = dd;
    if (r->price < r->min_price) r->min_price = r->price;
    if (r->cfg->record_every_update) record(r, t);
}

static double ref_price(const void *self)
{
    return ((const struct reference *)self)->price;
}

static int ref_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct reference *r = self;
    const struct reference_cfg *c = cfg;
    r->cfg = c;
    r->sim = sim;
    r->id = id;
    r->kind = c->file ? REF_REPLAY : REF_GBM;
    if (r->kind == REF_REPLAY) {
        char err[512];
        int rc = sp_csv_read_series(c->file, c->time_column, c->price_column, &r->series,
                                    err, sizeof err);
        if (rc) { sp_sim_fail(sim, rc, "%s", err); return rc; }
        r->t0_file = r->series.t[0] + sp_time_sec(c->skip);
        r->x = replay_value(r, 0);
    } else {
        double kappa = exp(c->jump_mean + 0.5 * c->jump_stdev * c->jump_stdev) - 1.0;
        r->log_drift = c->drift - 0.5 * c->volatility * c->volatility
                     - (c->compensate_jumps ? c->jump_rate * kappa : 0.0);
        r->x = c->initial;
    }
    r->factor = shock_factor(r, 0);
    r->price = r->x * r->factor;
    r->peak = r->min_price = r->price;
    r->sample_every = c->sample_every ? c->sample_every : sp_sim_sample_every(sim);
    return SP_OK;
}

static const struct sp_rec_col ref_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
    { "price", SP_REC_F64, "numeraire", "reference price", NULL },
    { "shock_factor", SP_REC_F64, "1", "product of scheduled shock multipliers", NULL },
};

static int ref_start(void *self, struct sp_sim *sim)
{
    struct reference *r = self;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        char group[300];
        snprintf(group, sizeof group, "/markets/%s", sp_sim_entity_name(sim, r->id));
        int rc = sp_rec_table_create(rec, group, ref_cols, 4, &r->tab);
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
        sp_rec_attr_str(rec, group, "asset", r->cfg->asset);
        sp_rec_attr_str(rec, group, "process", r->kind == REF_GBM ? "gbm" : "replay");
    }
    update(r, 0);
    if (!sp_sim_schedule(sim, next_update(r, 0), SP_PRIO_PRICE, r->id, EV_UPDATE)) return SP_ENOMEM;
    if (!r->cfg->record_every_update &&
        !sp_sim_schedule(sim, 0, SP_PRIO_RECORD, r->id, EV_SAMPLE)) return SP_ENOMEM;
    return SP_OK;
}

static void ref_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct reference *r = self;
    sp_time t = ev->t;
    if (ev->kind == EV_SHOCK_END) {         /* the exact end of a run-time ramp */
        update(r, t);
        return;
    }
    if (ev->kind == EV_UPDATE) {
        update(r, t);
        sp_time next = next_update(r, t);
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
    } else {
        record(r, t);
        sp_time next = t + r->sample_every;
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
    }
}

static void ref_finish(void *self, struct sp_sim *sim)
{
    struct reference *r = self;
    char key[300];
    const char *name = sp_sim_entity_name(sim, r->id);
    snprintf(key, sizeof key, "max_drawdown_%s", name);
    sp_sim_summary(sim, key, r->max_drawdown);
    snprintf(key, sizeof key, "min_price_%s", name);
    sp_sim_summary(sim, key, r->min_price);
    snprintf(key, sizeof key, "final_price_%s", name);
    sp_sim_summary(sim, key, r->price);
}

static void ref_release(void *self)
{
    struct reference *r = self;
    free(r->extra);
    sp_series_release(&r->series);
}

/* Snapshot: what changes while running — the process value, the grid and
 * replay positions, the extrema for the summary, run-time shocks.  The
 * config, the CSV series and the drift come back from init. */
static int ref_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct reference *r = self;
    sp_snap_put_array(w, 9);
    sp_snap_put_f64(w, r->x);
    sp_snap_put_f64(w, r->factor);
    sp_snap_put_f64(w, r->price);
    sp_snap_put_i64(w, r->grid_t);
    sp_snap_put_u64(w, r->row);
    sp_snap_put_f64(w, r->peak);
    sp_snap_put_f64(w, r->max_drawdown);
    sp_snap_put_f64(w, r->min_price);
    sp_snap_put_array(w, r->n_extra);
    for (size_t i = 0; i < r->n_extra; i++) {
        sp_snap_put_array(w, 3);
        sp_snap_put_i64(w, r->extra[i].at);
        sp_snap_put_f64(w, r->extra[i].drop);
        sp_snap_put_i64(w, r->extra[i].over);
    }
    return sp_snap_writer_error(w);
}

static int ref_restore(void *self, struct sp_snapshot_reader *r)
{
    struct reference *ref = self;
    uint64_t row;
    size_t n;
    sp_snap_get_array_n(r, 9);
    sp_snap_get_f64(r, &ref->x);
    sp_snap_get_f64(r, &ref->factor);
    sp_snap_get_f64(r, &ref->price);
    sp_snap_get_i64(r, &ref->grid_t);
    sp_snap_get_u64(r, &row);
    sp_snap_get_f64(r, &ref->peak);
    sp_snap_get_f64(r, &ref->max_drawdown);
    sp_snap_get_f64(r, &ref->min_price);
    if (sp_snap_get_array(r, &n)) return sp_snap_error(r);
    if (ref->kind == REF_REPLAY ? row >= ref->series.n : row != 0)
        return sp_snap_fail(r, "replay row %llu out of range", (unsigned long long)row);
    ref->row = (size_t)row;
    if (n > ref->cap_extra) {
        struct shock_cfg *e = realloc(ref->extra, n * sizeof *e);
        if (!e) return sp_snap_fail(r, "out of memory");
        ref->extra = e;
        ref->cap_extra = n;
    }
    struct shock_cfg *e = ref->extra;
    ref->n_extra = 0;
    for (size_t i = 0; i < n && !sp_snap_error(r); i++) {
        struct shock_cfg *s = &e[ref->n_extra++];
        sp_snap_get_array_n(r, 3);
        sp_snap_get_i64(r, &s->at);
        sp_snap_get_f64(r, &s->drop);
        sp_snap_get_i64(r, &s->over);
        sp_snap_get_end(r);
    }
    sp_snap_get_end(r);
    return sp_snap_get_end(r);
}

const struct sp_module_ops sp_reference_gbm_ops = {
    .kind = "reference", .type = "gbm",
    .summary = "geometric Brownian motion with Merton jumps and scheduled shocks",
    .schema = &gbm_schema, .state_size = sizeof(struct reference),
    .default_name = ref_default_name, .init = ref_init, .start = ref_start,
    .on_event = ref_on_event, .finish = ref_finish, .price = ref_price,
    .release = ref_release, .snapshot = ref_snapshot, .restore = ref_restore,
};

const struct sp_module_ops sp_reference_replay_ops = {
    .kind = "reference", .type = "replay",
    .summary = "replay of a CSV price path with linear interpolation and scheduled shocks",
    .schema = &replay_schema, .state_size = sizeof(struct reference),
    .default_name = ref_default_name, .init = ref_init, .start = ref_start,
    .on_event = ref_on_event, .finish = ref_finish, .price = ref_price,
    .release = ref_release, .snapshot = ref_snapshot, .restore = ref_restore,
};

int sp_is_reference(struct sp_sim *sim, sp_id id)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    return ops == &sp_reference_gbm_ops || ops == &sp_reference_replay_ops;
}

double sp_reference_price(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_reference(sim, id)) return NAN;
    const struct reference *r = sp_sim_entity_state(sim, id);
    return r->price;
}

const char *sp_reference_asset(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_reference(sim, id)) return NULL;
    const struct reference *r = sp_sim_entity_state(sim, id);
    return r->cfg->asset;
}

int sp_reference_shock(struct sp_sim *sim, sp_id id, double drop, sp_time over)
{
    if (!sp_is_reference(sim, id) || !(drop < 1) || !isfinite(drop) || over < 0)
        return SP_EINVAL;
    struct reference *r = sp_sim_entity_state(sim, id);
    if (r->n_extra == r->cap_extra) {
        size_t cap = r->cap_extra ? 2 * r->cap_extra : 4;
        struct shock_cfg *e = realloc(r->extra, cap * sizeof *e);
        if (!e) return SP_ENOMEM;
        r->extra = e;
        r->cap_extra = cap;
    }
    sp_time now = sp_sim_now(sim);
    r->extra[r->n_extra++] = (struct shock_cfg){ now, drop, over };
    update(r, now);                          /* an instant shock shows at once */
    if (over > 0 && now + over <= sp_sim_horizon(sim) &&
        !sp_sim_schedule(sim, now + over, SP_PRIO_PRICE, r->id, EV_SHOCK_END))
        return SP_ENOMEM;
    return SP_OK;
}
