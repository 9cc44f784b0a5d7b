/*
 * stress.c — `spiral stress SCENARIO.yaml --param KEY --range LO:HI --metric M`:
 * the critical value of a parameter, where the mean over replicate seeds of
 * a /summary metric first exceeds a threshold.
 *
 * A coarse grid (G points over [LO, HI], every point x every seed at once on
 * the worker pool) brackets the first crossing; bisection then narrows the
 * bracket to the tolerance, R runs per step.  Seeds are the same at every
 * point (common random numbers), so the curve is smooth in the parameter
 * wherever the model is.  The curve assumes one crossing; with several, the
 * grid's first one is refined.  Runs are ordinary run files in OUT_runs/,
 * reused when complete with the same config hash (so a rerun is nearly
 * free); OUT.h5 holds the curve and every evaluation.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/version.h"
#include "sweep-internal.h"

enum { EXIT_RUNFAIL = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };
enum { PHASE_GRID, PHASE_BISECT };

struct point {
    double param;
    int phase;
    size_t order;              /* evaluation order (0 = first grid point) */
    struct sw_job *jobs;       /* one per seed */
    char *set;                 /* "KEY=value" */
    const char **sets;
    double mean, std;
    size_t n_ok;
    bool exceeds;
};

struct stress {
    const char *scenario, *key, *metric;
    double lo, hi, threshold, tol;
    int64_t *seeds;
    size_t n_seeds;
    const char **user_sets;
    size_t n_user_sets;
    char runs_dir[PATH_MAX], logs_dir[PATH_MAX + 8];
    struct point *pts;
    size_t n_pts, cap_pts;
    struct sw_pool pool;
};

static const char usage_stress[] =
    "Usage: spiral stress SCENARIO.yaml --param KEY --range LO:HI --metric M [options]\n"
    "\n"
    "Find the critical value of scenario key KEY in [LO, HI] at which the mean over\n"
    "replicate seeds of /summary metric M first exceeds the threshold: a coarse grid\n"
    "brackets it, bisection narrows it to the tolerance.  Writes the fragility curve.\n"
    "\n"
    "Options:\n"
    "  --param KEY        scenario key path, e.g. references.0.shocks.0.drop\n"
    "  --range LO:HI      numbers (a fraction key takes 0.3 for 30%%)\n"
    "  --metric M         /summary metric, e.g. bad_debt_total, max_liquidatable_aave\n"
    "  --threshold X      exceed X (default 0)\n"
    "  --seeds R          replicate seeds per point (default 3), seeds S..S+R-1\n"
    "  --seed-base S      first seed (default 1)\n"
    "  --tol T            stop when the bracket is at most T wide (default (HI-LO)/1000)\n"
    "  --grid G           points of the coarse grid (default 8)\n"
    "  --set KEY=VAL      override another key for every run (repeatable)\n"
    "  -j, --jobs N       worker processes (default: online cores)\n"
    "  -o, --output FILE  the curve (default stress/NAME.h5; runs in stress/NAME_runs/)\n"
    "  -q, --quiet        no progress and no result line\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 done (also when M never exceeds X in the range: critical_value\n"
    "is then NaN), 1 runs failed so a point has no value, 2 bad input or usage,\n"
    "130 interrupted.\n";


static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return false;
    *out = v;
    return true;
}

static struct point *add_point(struct stress *st, double param, int phase)
{
    if (st->n_pts == st->cap_pts) {
        st->cap_pts = st->cap_pts ? 2 * st->cap_pts : 16;
        st->pts = realloc(st->pts, st->cap_pts * sizeof *st->pts);
        if (!st->pts) abort();
    }
    struct point *p = &st->pts[st->n_pts];
    memset(p, 0, sizeof *p);
    p->param = param;
    p->phase = phase;
    p->order = st->n_pts++;
    p->set = sw_strdup_printf("%s=%.17g", st->key, param);
    p->sets = calloc(st->n_user_sets + 2, sizeof *p->sets);
    for (size_t i = 0; i < st->n_user_sets; i++) p->sets[i] = st->user_sets[i];
    p->sets[st->n_user_sets] = p->set;
    p->jobs = calloc(st->n_seeds, sizeof *p->jobs);
    for (size_t k = 0; k < st->n_seeds; k++) {
        struct sw_job *j = &p->jobs[k];
        j->id = sw_strdup_printf("p%03zu_r%zu", p->order, k);
        j->scenario = st->scenario;
        j->seed = st->seeds[k];
        j->sets = p->sets;
        j->n_sets = st->n_user_sets + 1;
        sw_job_paths(j, st->runs_dir, st->logs_dir);
    }
    p->mean = p->std = NAN;
    return p;
}

static void free_points(struct stress *st)
{
    for (size_t i = 0; i < st->n_pts; i++) {
        struct point *p = &st->pts[i];
        for (size_t k = 0; k < st->n_seeds; k++) {
            free((char *)p->jobs[k].id);
            sw_job_release(&p->jobs[k]);
        }
        free(p->jobs);
        free(p->set);
        free(p->sets);
    }
    free(st->pts);
}

/* Prepare (validate + hash) then run points [from, n_pts); compute means. */
static int evaluate(struct stress *st, size_t from, bool *interrupted)
{
    size_t n = (st->n_pts - from) * st->n_seeds, i = 0;
    struct sw_job **jobs = calloc(n + 1, sizeof *jobs);
    for (size_t q = from; q < st->n_pts; q++)
        for (size_t k = 0; k < st->n_seeds; k++) {
            struct sw_job *j = &st->pts[q].jobs[k];
            struct sp_diag d = { 0 };
            if (sw_job_prepare(j, q == 0 && k == 0, &d)) {
                fprintf(stderr, "spiral stress: the scenario does not validate with --param %s=%.17g "
                        "(seed %lld):\n", st->key, st->pts[q].param, (long long)j->seed);
                sp_diag_print(&d, stderr);
                sp_diag_release(&d);
                free(jobs);
                return EXIT_USAGE;
            }
            sp_diag_release(&d);
            jobs[i++] = j;
        }
    st->pool.total += n;
    *interrupted = sw_pool_run(&st->pool, jobs, n);
    free(jobs);
    for (size_t q = from; q < st->n_pts; q++) {
        struct point *p = &st->pts[q];
        double s = 0, s2 = 0;
        p->n_ok = 0;
        for (size_t k = 0; k < st->n_seeds; k++) {
            double v;
            if (p->jobs[k].status == SW_COMPLETE && sw_job_metric(&p->jobs[k], st->metric, &v) && !isnan(v)) {
                s += v;
                s2 += v * v;
                p->n_ok++;
            }
        }
        if (p->n_ok) {
            p->mean = s / (double)p->n_ok;
            p->std = p->n_ok > 1 ? sqrt(fmax(0, (s2 - s * s / (double)p->n_ok) / (double)(p->n_ok - 1))) : 0;
            p->exceeds = p->mean > st->threshold;
        }
    }
    return 0;
}

/* The metric is not in any complete run: say which ones are. */
static int metric_missing(const struct stress *st)
{
    const struct sw_job *j = NULL;
    for (size_t q = 0; q < st->n_pts && !j; q++)
        for (size_t k = 0; k < st->n_seeds && !j; k++)
            if (st->pts[q].jobs[k].status == SW_COMPLETE) j = &st->pts[q].jobs[k];
    if (!j) {
        fprintf(stderr, "spiral stress: no run completed (see the logs in %s)\n", st->logs_dir);
        return EXIT_RUNFAIL;
    }
    const char **names = calloc(j->n_metrics + 1, sizeof *names);
    for (size_t m = 0; m < j->n_metrics; m++) names[m] = j->metrics[m].name;
    const char *near = sp_suggest(st->metric, names, j->n_metrics);
    fprintf(stderr, "spiral stress: --metric %s: no such /summary metric in the runs", st->metric);
    if (near) fprintf(stderr, " (did you mean '%s'?)", near);
    fprintf(stderr, "; they have:");
    for (size_t m = 0; m < j->n_metrics; m++) fprintf(stderr, " %s", names[m]);
    fputc('\n', stderr);
    free(names);
    return EXIT_USAGE;
}

static int cmp_param(const void *a, const void *b)
{
    const struct point *const *x = a, *const *y = b;
    return (*x)->param < (*y)->param ? -1 : (*x)->param > (*y)->param;
}

static int write_output(const struct stress *st, const char *out, const char *cmdline,
                        const char *result, double critical, double b_lo, double b_hi,
                        bool interrupted)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    static const char *const phases[] = { "grid", "bisection", NULL };
    static const char *const yes_no[] = { "no", "yes", NULL };
    const struct sp_rec_col curve_cols[] = {
        { "param", SP_REC_F64, "as in the scenario", "value of the stressed key", NULL },
        { "mean", SP_REC_F64, "as the metric", "mean of the metric over the seeds that completed", NULL },
        { "std", SP_REC_F64, "as the metric", "sample standard deviation over the seeds", NULL },
        { "n_ok", SP_REC_I64, "1", "seeds whose run completed with the metric", NULL },
        { "exceeds", SP_REC_I8, "1", "mean > threshold", yes_no },
        { "phase", SP_REC_I8, "1", "how the point was chosen", phases },
        { "order", SP_REC_I64, "1", "evaluation order (run files p<order>_r<k>.h5)", NULL },
    };
    const struct sp_rec_col eval_cols[] = {
        { "run", SP_REC_I64, "1", "row", NULL },
        { "order", SP_REC_I64, "1", "evaluation order of the point", NULL },
        { "param", SP_REC_F64, "as in the scenario", "value of the stressed key", NULL },
        { "replicate", SP_REC_I64, "1", "replicate index k", NULL },
        { "seed", SP_REC_I64, "1", "seed of the run", NULL },
        { "value", SP_REC_F64, "as the metric", "the metric (NaN if the run did not complete)", NULL },
        { "status", SP_REC_I8, "1", "outcome of the run", sw_status_names },
        { "resumed", SP_REC_I8, "1", "reused from an earlier invocation", yes_no },
    };
    struct sp_rec *rec = NULL;
    struct sp_rec_opts ro = { 1, 1024 };
    int rc = sp_rec_create(&rec, tmp, &ro);
    struct sp_rec_table *tc = NULL, *te = NULL;
    if (!rc) rc = sp_rec_table_create(rec, "/curve", curve_cols, 7, &tc);
    if (!rc) rc = sp_rec_table_create(rec, "/evaluations", eval_cols, 8, &te);
    const struct point **sorted = calloc(st->n_pts + 1, sizeof *sorted);
    for (size_t i = 0; i < st->n_pts; i++) sorted[i] = &st->pts[i];
    qsort(sorted, st->n_pts, sizeof *sorted, cmp_param);
    for (size_t i = 0; !rc && i < st->n_pts; i++) {
        const struct point *p = sorted[i];
        union sp_rec_val row[7] = { { .f = p->param }, { .f = p->mean }, { .f = p->std },
                                    { .i = (int64_t)p->n_ok }, { .i = p->exceeds },
                                    { .i = p->phase }, { .i = (int64_t)p->order } };
        sp_rec_append(tc, row);
    }
    int64_t r = 0;
    for (size_t q = 0; !rc && q < st->n_pts; q++)
        for (size_t k = 0; k < st->n_seeds; k++) {
            const struct sw_job *j = &st->pts[q].jobs[k];
            double v = NAN;
            if (j->status == SW_COMPLETE) sw_job_metric(j, st->metric, &v);
            union sp_rec_val row[8] = { { .i = r++ }, { .i = (int64_t)q }, { .f = st->pts[q].param },
                                        { .i = (int64_t)k }, { .i = j->seed }, { .f = v },
                                        { .i = j->status }, { .i = j->resumed } };
            sp_rec_append(te, row);
        }
    free(sorted);
    if (!rc) {
        char buf[256];
        snprintf(buf, sizeof buf, "spiral %s (git %s)", SPIRAL_VERSION, SPIRAL_GIT_SHA);
        rc |= sp_rec_attr_str(rec, "/", "software", buf);
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        rc |= sp_rec_attr_str(rec, "/", "created_utc", buf);
        rc |= sp_rec_attr_str(rec, "/", "kind", "stress");
        rc |= sp_rec_attr_str(rec, "/", "command_line", cmdline ? cmdline : "");
        rc |= sp_rec_attr_str(rec, "/", "scenario", st->scenario);
        rc |= sp_rec_attr_str(rec, "/", "param", st->key);
        rc |= sp_rec_attr_str(rec, "/", "metric", st->metric);
        rc |= sp_rec_attr_f64(rec, "/", "threshold", st->threshold);
        rc |= sp_rec_attr_f64(rec, "/", "lo", st->lo);
        rc |= sp_rec_attr_f64(rec, "/", "hi", st->hi);
        rc |= sp_rec_attr_f64(rec, "/", "tol", st->tol);
        rc |= sp_rec_attr_i64(rec, "/", "n_seeds", (int64_t)st->n_seeds);
        rc |= sp_rec_attr_i64(rec, "/", "seed_base", st->seeds[0]);
        rc |= sp_rec_attr_str(rec, "/", "result", result);
        rc |= sp_rec_attr_f64(rec, "/", "critical_value", critical);
        rc |= sp_rec_attr_f64(rec, "/", "bracket_lo", b_lo);
        rc |= sp_rec_attr_f64(rec, "/", "bracket_hi", b_hi);
        const char *rd = strrchr(st->runs_dir, '/');       /* beside OUT.h5 */
        rc |= sp_rec_attr_str(rec, "/", "runs_dir", rd ? rd + 1 : st->runs_dir);
        if (rc) rc = SP_EHDF5;
    }
    if (rec) {
        int rc2 = sp_rec_close(rec, interrupted ? "interrupted" : "complete");
        if (!rc) rc = rc2;
    }
    if (!rc && rename(tmp, out)) rc = SP_EIO;
    if (rc) {
        fprintf(stderr, "spiral stress: cannot write %s: %s\n", out, sp_strerror(rc));
        unlink(tmp);
    }
    return rc;
}

int sp_cmd_stress(int argc, char **argv, const char *cmdline)
{
    enum { O_PARAM = 256, O_RANGE, O_METRIC, O_THRESH, O_SEEDS, O_SEEDBASE, O_TOL, O_GRID, O_SET };
    static const struct option opts[] = {
        { "param", required_argument, NULL, O_PARAM },   { "range", required_argument, NULL, O_RANGE },
        { "metric", required_argument, NULL, O_METRIC }, { "threshold", required_argument, NULL, O_THRESH },
        { "seeds", required_argument, NULL, O_SEEDS },   { "seed-base", required_argument, NULL, O_SEEDBASE },
        { "tol", required_argument, NULL, O_TOL },       { "grid", required_argument, NULL, O_GRID },
        { "set", required_argument, NULL, O_SET },       { "jobs", required_argument, NULL, 'j' },
        { "output", required_argument, NULL, 'o' },      { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },              { NULL, 0, NULL, 0 },
    };
    struct stress st;
    memset(&st, 0, sizeof st);
    st.tol = NAN;
    st.user_sets = calloc((size_t)argc + 1, sizeof *st.user_sets);
    const char *range = NULL, *out = NULL;
    long n_seeds = 3, grid = 8, jobs = 0;
    long long seed_base = 1;
    bool quiet = false;
    int opt, ret = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":j:o:qh", opts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case O_PARAM: st.key = optarg; break;
        case O_RANGE: range = optarg; break;
        case O_METRIC: st.metric = optarg; break;
        case O_THRESH:
            if (!parse_double(optarg, &st.threshold)) { ret = sp_cli_usage_error("stress", "--threshold: expected a number, got '%s'", optarg); goto out; }
            break;
        case O_TOL:
            if (!parse_double(optarg, &st.tol) || !(st.tol > 0)) { ret = sp_cli_usage_error("stress", "--tol: expected a positive number, got '%s'", optarg); goto out; }
            break;
        case O_SEEDS:
            n_seeds = strtol(optarg, &end, 10);
            if (*end || n_seeds < 1 || n_seeds > 100000) { ret = sp_cli_usage_error("stress", "--seeds: expected a positive number, got '%s'", optarg); goto out; }
            break;
        case O_SEEDBASE:
            seed_base = strtoll(optarg, &end, 10);
            if (*end || seed_base < 0 || !*optarg) { ret = sp_cli_usage_error("stress", "--seed-base: expected a non-negative integer, got '%s'", optarg); goto out; }
            break;
        case O_GRID:
            grid = strtol(optarg, &end, 10);
            if (*end || grid < 2 || grid > 10000) { ret = sp_cli_usage_error("stress", "--grid: expected at least 2 points, got '%s'", optarg); goto out; }
            break;
        case O_SET: st.user_sets[st.n_user_sets++] = optarg; break;
        case 'j':
            jobs = strtol(optarg, &end, 10);
            if (*end || jobs < 1 || jobs > 4096) { ret = sp_cli_usage_error("stress", "-j: expected a positive number of workers, got '%s'", optarg); goto out; }
            break;
        case 'o': out = optarg; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage_stress, stdout); goto out;
        case ':': ret = sp_cli_usage_error("stress", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = sp_cli_usage_error("stress", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        ret = optind >= argc ? sp_cli_usage_error("stress", "missing SCENARIO.yaml%s", "")
                             : sp_cli_usage_error("stress", "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    st.scenario = argv[optind];
    if (!st.key) { ret = sp_cli_usage_error("stress", "missing --param KEY%s", ""); goto out; }
    if (!st.metric) { ret = sp_cli_usage_error("stress", "missing --metric M%s", ""); goto out; }
    if (!range) { ret = sp_cli_usage_error("stress", "missing --range LO:HI%s", ""); goto out; }
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", range);
        char *colon = strchr(buf, ':');
        if (colon) *colon = 0;
        if (!colon || !parse_double(buf, &st.lo) || !parse_double(colon + 1, &st.hi) || !(st.lo < st.hi)) {
            ret = sp_cli_usage_error("stress", "--range: expected LO:HI with numbers LO < HI, got '%s'", range);
            goto out;
        }
    }
    if (isnan(st.tol)) st.tol = (st.hi - st.lo) / 1000;
    st.n_seeds = (size_t)n_seeds;
    st.seeds = calloc(st.n_seeds, sizeof *st.seeds);
    for (size_t k = 0; k < st.n_seeds; k++) st.seeds[k] = seed_base + (int64_t)k;

    char outbuf[PATH_MAX];
    if (!out) {
        const char *b = strrchr(st.scenario, '/');
        b = b ? b + 1 : st.scenario;
        snprintf(outbuf, sizeof outbuf, "stress/%.*s.h5", (int)strcspn(b, "."), b);
        out = outbuf;
    }
    {
        size_t l = strlen(out);
        int stem = (l > 3 && !strcmp(out + l - 3, ".h5")) ? (int)(l - 3) : (int)l;
        snprintf(st.runs_dir, sizeof st.runs_dir, "%.*s_runs", stem, out);
        snprintf(st.logs_dir, sizeof st.logs_dir, "%s/logs", st.runs_dir);
    }
    /* Validate the grid's end points before creating anything. */
    {
        struct sw_job probe = { 0 };
        probe.scenario = st.scenario;
        probe.seed = st.seeds[0];
        const char **sets = calloc(st.n_user_sets + 2, sizeof *sets);
        for (size_t i = 0; i < st.n_user_sets; i++) sets[i] = st.user_sets[i];
        probe.sets = sets;
        probe.n_sets = st.n_user_sets + 1;
        for (int e = 0; e < 2 && !ret; e++) {
            char *s = sw_strdup_printf("%s=%.17g", st.key, e ? st.hi : st.lo);
            sets[st.n_user_sets] = s;
            struct sp_diag d = { 0 };
            if (sw_job_prepare(&probe, true, &d)) {
                fprintf(stderr, "spiral stress: the scenario does not validate with --param %s:\n", s);
                sp_diag_print(&d, stderr);
                ret = EXIT_USAGE;
            }
            sp_diag_release(&d);
            free(s);
        }
        free(sets);
        if (ret) goto out;
    }
    if (sw_mkdirs(st.logs_dir)) {
        fprintf(stderr, "spiral stress: cannot create '%s': %s\n", st.logs_dir, strerror(errno));
        ret = EXIT_USAGE;
        goto out;
    }
    const char *slash = strrchr(out, '/');
    if (slash && slash != out) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
        if (sw_mkdirs(dir)) {
            fprintf(stderr, "spiral stress: cannot create '%s': %s\n", dir, strerror(errno));
            ret = EXIT_USAGE;
            goto out;
        }
    }
    sw_signals_install();
    st.pool = (struct sw_pool){ .jobs = jobs ? (int)jobs : sw_default_jobs(), .quiet = quiet, .what = "stress" };
    for (long g = 0; g < grid; g++)
        add_point(&st, g == grid - 1 ? st.hi : st.lo + (st.hi - st.lo) * (double)g / (double)(grid - 1),
                  PHASE_GRID);
    bool interrupted = false;
    const char *result = "failed";      /* until one of the outcomes below */
    double critical = NAN, b_lo = NAN, b_hi = NAN;
    ret = evaluate(&st, 0, &interrupted);
    if (ret) goto out;
    bool any = false;
    for (size_t q = 0; q < st.n_pts; q++) any |= st.pts[q].n_ok > 0;
    if (!interrupted && !any) {
        sw_pool_done(&st.pool);
        ret = metric_missing(&st);
        goto out;
    }
    if (!interrupted) {
        /* The first grid point (in parameter order: the grid is built so) above the threshold. */
        size_t first = SIZE_MAX;
        for (size_t q = 0; q < st.n_pts && first == SIZE_MAX; q++) {
            if (!st.pts[q].n_ok) {
                sw_pool_done(&st.pool);
                fprintf(stderr, "spiral stress: every run at %s=%g failed (see %s)\n", st.key,
                        st.pts[q].param, st.logs_dir);
                ret = EXIT_RUNFAIL;
                break;
            }
            if (st.pts[q].exceeds) first = q;
        }
        if (!ret && first == SIZE_MAX) {
            result = "not_reached";
            b_lo = st.hi;
        } else if (!ret && first == 0) {
            result = "exceeded_at_lo";
            critical = b_hi = st.lo;
        } else if (!ret) {
            b_lo = st.pts[first - 1].param;
            b_hi = st.pts[first].param;
            /* Bisection; with more workers than seeds, m-section: m points
             * per step, evaluated at once, shrink the bracket m+1 times. */
            size_t m = st.pool.jobs > (int)st.n_seeds ? (size_t)st.pool.jobs / st.n_seeds : 1;
            while (b_hi - b_lo > st.tol && !interrupted && !ret) {
                size_t from = st.n_pts;
                for (size_t i = 1; i <= m; i++)
                    add_point(&st, b_lo + (b_hi - b_lo) * (double)i / (double)(m + 1), PHASE_BISECT);
                if ((ret = evaluate(&st, from, &interrupted))) goto out;
                if (interrupted) break;
                double new_lo = b_lo, new_hi = b_hi;
                for (size_t q = from; q < st.n_pts; q++) {
                    struct point *p = &st.pts[q];
                    if (!p->n_ok) {
                        sw_pool_done(&st.pool);
                        fprintf(stderr, "spiral stress: every run at %s=%.17g failed (see %s)\n",
                                st.key, p->param, st.logs_dir);
                        ret = EXIT_RUNFAIL;
                        break;
                    }
                    if (p->exceeds) { new_hi = p->param; break; }
                    new_lo = p->param;
                }
                b_lo = new_lo;
                b_hi = new_hi;
            }
            if (!interrupted && !ret) {
                result = "found";
                critical = b_hi;
            }
        }
    }
    sw_pool_done(&st.pool);
    if (interrupted) result = "interrupted";
    if (write_output(&st, out, cmdline, result, critical, b_lo, b_hi, interrupted)) {
        if (!ret) ret = EXIT_RUNFAIL;
        goto out;
    }
    if (interrupted) {
        fprintf(stderr, "spiral stress: interrupted; %s has what was evaluated (rerun to resume)\n", out);
        ret = EXIT_INTERRUPTED;
    } else if (!ret && !quiet) {
        if (!strcmp(result, "found"))
            printf("critical %s = %.10g (mean %s > %g; bracket [%.10g, %.10g], %zu points x %zu seeds); wrote %s\n",
                   st.key, critical, st.metric, st.threshold, b_lo, b_hi, st.n_pts, st.n_seeds, out);
        else if (!strcmp(result, "exceeded_at_lo"))
            printf("mean %s > %g already at %s = %g (the range's low end); wrote %s\n", st.metric,
                   st.threshold, st.key, st.lo, out);
        else
            printf("mean %s stays <= %g over %s in [%g, %g]: no critical value; wrote %s\n", st.metric,
                   st.threshold, st.key, st.lo, st.hi, out);
    }
out:
    free_points(&st);
    free(st.seeds);
    free(st.user_sets);
    return ret;
}
