/*
 * test_sweep.c — `spiral sweep` and `spiral stress`, run as child processes.
 *
 *  - a 2 arms x 3 seeds sweep gives 6 complete run files and a summary
 *    whose rows match them (arm, replicate, seed, axis value, metrics);
 *  - common random numbers: two arms that differ only in an AMM fee have
 *    bit-identical reference price paths and identical noise-trader order
 *    times, sides and traders (while the pool prices differ);
 *  - resume: a -j 1 sweep sent SIGINT after two runs completed exits 130
 *    with an "interrupted" summary; rerun, it reruns only what is missing
 *    (the complete files keep their mtimes) and its summary equals an
 *    uninterrupted sweep's, wall times aside;
 *  - a worker that crashes (the test-only SPIRAL_TEST_CRASH_ON_SEED makes
 *    `spiral run` abort) is marked failed and every other run completes;
 *  - bad input (missing base, an unknown key in an axis) exits 2 before
 *    anything runs, naming sweep-file line and key;
 *  - stress finds the critical shock of a deterministic scenario within
 *    tolerance of the value computed by hand.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <time.h>
#include <cmocka.h>
#include "testutil.h"

/* GBM reference (every update recorded), a CPMM with every trade recorded,
 * an arbitrageur and three noise traders: every random draw of the run. */
static const char crn_yaml[] =
    "name: crn\n"
    "seed: 7\n"
    "horizon: 3h\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 80%, step: 12s, record_every_update: true}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5000, reserve_quote: 10000000,\n"
    "     fee: 0.3%, record_every_trade: true}\n"
    "agents:\n"
    "  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, cash: 1000000, inventory: 500}\n"
    "  - {type: noise, name: noise, count: 3, venue: pool, cash: 1000000, inventory: 500,\n"
    "     mean_interval: 300, size: {dist: uniform, low: 0.1, high: 2}}\n";

static const char sweep_yaml[] =
    "base: crn.yaml\n"
    "axes:\n"
    "  - {key: markets.pool.fee, values: [0.05%, 1%]}\n"
    "replicates: 3\n"
    "seed_base: 11\n";

static char dir[600];

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("sweep"));
    char p[700];
    path_in(p, sizeof p, "crn.yaml");
    tu_write(p, crn_yaml);
    path_in(p, sizeof p, "sweep.yaml");
    tu_write(p, sweep_yaml);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

/* Run `spiral ARGS...` (NULL-terminated); returns the exit code, log in *log. */
static int spiral(char **log, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = "spiral";
    va_list ap;
    va_start(ap, log);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 31) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char lp[700];
    path_in(lp, sizeof lp, "last.log");
    int rc = tu_run(argv, lp);
    if (log) *log = tu_read(lp);
    return rc;
}

static char *read_str_attr(const char *path, const char *obj, const char *name)
{
    char *out = strdup("");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return out;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        char *s = NULL;
        if (H5Aread(a, t, &s) >= 0 && s) {
            free(out);
            out = strdup(s);
            H5free_memory(s);
        }
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
    return out;
}

static int64_t attr_i64(const char *path, const char *obj, const char *name)
{
    int64_t v = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return v;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) { H5Aread(a, H5T_NATIVE_INT64, &v); H5Aclose(a); }
    H5Fclose(f);
    return v;
}

/* A 1-D integer dataset of any width as int64. */
static int64_t *read_i64(const char *path, const char *ds, size_t *n)
{
    size_t elem;
    void *raw = tu_read_raw(path, ds, n, &elem);
    if (!raw) return NULL;
    int64_t *out = calloc(*n + 1, sizeof *out);
    for (size_t i = 0; i < *n; i++) {
        switch (elem) {
        case 1: out[i] = ((int8_t *)raw)[i]; break;
        case 2: out[i] = ((int16_t *)raw)[i]; break;
        case 4: out[i] = ((int32_t *)raw)[i]; break;
        default: out[i] = ((int64_t *)raw)[i]; break;
        }
    }
    free(raw);
    return out;
}

/* Index of `name` in a column's flag_meanings, or -1. */
static int flag_code(const char *path, const char *ds, const char *name)
{
    char *m = read_str_attr(path, ds, "flag_meanings");
    int code = -1, i = 0;
    for (char *tok = strtok(m, " "); tok; tok = strtok(NULL, " "), i++)
        if (!strcmp(tok, name)) { code = i; break; }
    free(m);
    return code;
}

static void test_sweep_2x3_gives_six_complete_runs_and_summary(void **state)
{
    (void)state;
    char sw[700], out[700], *log;
    path_in(sw, sizeof sw, "sweep.yaml");
    path_in(out, sizeof out, "basic");
    int rc = spiral(&log, "sweep", sw, "-j", "2", "-o", out, NULL);
    if (rc) fprintf(stderr, "%s", log);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "6 complete (0 resumed)"));
    free(log);
    char summary[800];
    snprintf(summary, sizeof summary, "%s/summary.h5", out);
    char st[64];
    assert_string_equal(tu_status(summary, st, sizeof st), "complete");
    assert_int_equal(attr_i64(summary, "/", "n_runs"), 6);
    assert_int_equal(attr_i64(summary, "/", "n_complete"), 6);
    size_t n;
    int64_t *arm = read_i64(summary, "/runs/arm", &n);
    assert_int_equal(n, 6);
    int64_t *rep = read_i64(summary, "/runs/replicate", &n);
    int64_t *seed = read_i64(summary, "/runs/seed", &n);
    int64_t *status = read_i64(summary, "/runs/status", &n);
    double *fee = tu_read_f64(summary, "/runs/markets.pool.fee", &n);
    assert_int_equal(n, 6);
    double *trades = tu_read_f64(summary, "/runs/n_trades", &n);
    assert_int_equal(n, 6);
    double *min_price = tu_read_f64(summary, "/runs/min_price_reference_ETH", &n);
    assert_int_equal(flag_code(summary, "/runs/status", "complete"), 0);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(arm[i], (int64_t)(i / 3));
        assert_int_equal(rep[i], (int64_t)(i % 3));
        assert_int_equal(seed[i], 11 + (int64_t)(i % 3));
        assert_int_equal(status[i], 0);
        assert_true(fabs(fee[i] - (i < 3 ? 0.0005 : 0.01)) < 1e-15);
        char run[800];
        snprintf(run, sizeof run, "%s/runs/a%03zu_r%zu.h5", out, i / 3, i % 3);
        assert_string_equal(tu_status(run, st, sizeof st), "complete");
        assert_int_equal((int64_t)tu_attr_f64(run, "/", "seed"), seed[i]);
        assert_true(trades[i] == tu_attr_f64(run, "/summary", "n_trades"));
        assert_true(min_price[i] == tu_attr_f64(run, "/summary", "min_price_reference_ETH"));
        /* The run file stores the hash the sweep matched on. */
        char *h = read_str_attr(run, "/", "config_hash");
        assert_int_equal(strlen(h), 16);
        free(h);
    }
    /* The sweep file itself, and the axis description. */
    hid_t f = H5Fopen(summary, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Lexists(f, "sweep.yaml", H5P_DEFAULT) > 0);
    H5Fclose(f);
    char *k = read_str_attr(summary, "/axes", "axis_0");
    assert_string_equal(k, "markets.pool.fee");
    free(k);
    free(arm); free(rep); free(seed); free(status); free(fee); free(trades); free(min_price);
}

static void test_sweep_arms_share_random_draws(void **state)
{
    (void)state;
    char out[700], a[800], b[800];
    path_in(out, sizeof out, "basic");     /* made by the test above */
    for (int k = 0; k < 3; k++) {
        snprintf(a, sizeof a, "%s/runs/a000_r%d.h5", out, k);
        snprintf(b, sizeof b, "%s/runs/a001_r%d.h5", out, k);
        size_t na, nb, ea, eb;
        /* Reference path: bit-identical. */
        void *pa = tu_read_raw(a, "/markets/reference_ETH/price", &na, &ea);
        void *pb = tu_read_raw(b, "/markets/reference_ETH/price", &nb, &eb);
        assert_true(na > 100);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na * ea);
        free(pa);
        free(pb);
        /* Noise traders: the same arrivals (time, trader, side) in both arms. */
        int ca = flag_code(a, "/events/trades/cause", "noise");
        int cb = flag_code(b, "/events/trades/cause", "noise");
        assert_true(ca >= 0 && ca == cb);
        size_t n1, n2;
        double *ta = tu_read_f64(a, "/events/trades/t", &n1);
        double *tb = tu_read_f64(b, "/events/trades/t", &n2);
        int64_t *causea = read_i64(a, "/events/trades/cause", &n1);
        int64_t *causeb = read_i64(b, "/events/trades/cause", &n2);
        int64_t *aga = read_i64(a, "/events/trades/agent", &n1);
        int64_t *agb = read_i64(b, "/events/trades/agent", &n2);
        int64_t *sa = read_i64(a, "/events/trades/side", &n1);
        int64_t *sb = read_i64(b, "/events/trades/side", &n2);
        size_t i = 0, j = 0, matched = 0;
        for (;;) {
            while (i < n1 && causea[i] != ca) i++;
            while (j < n2 && causeb[j] != cb) j++;
            if (i == n1 || j == n2) break;
            assert_true(ta[i] == tb[j]);
            assert_int_equal(aga[i], agb[j]);
            assert_int_equal(sa[i], sb[j]);
            matched++;
            i++;
            j++;
        }
        while (i < n1 && causea[i] != ca) i++;
        while (j < n2 && causeb[j] != cb) j++;
        assert_true(i == n1 && j == n2);     /* same number of noise trades */
        assert_true(matched > 10);
        free(ta); free(tb); free(causea); free(causeb); free(aga); free(agb); free(sa); free(sb);
        /* ... while the arms do differ: the fee changes the arbitrage. */
        double fa = tu_attr_f64(a, "/summary", "n_trades");
        double fb = tu_attr_f64(b, "/summary", "n_trades");
        assert_true(fa != fb);
    }
    /* A different replicate is a different draw. */
    snprintf(a, sizeof a, "%s/runs/a000_r0.h5", out);
    snprintf(b, sizeof b, "%s/runs/a000_r1.h5", out);
    assert_true(tu_attr_f64(a, "/summary", "min_price_reference_ETH") !=
                tu_attr_f64(b, "/summary", "min_price_reference_ETH"));
}

/* Names of the datasets of a group, into names[] (max 128). */
static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    (void)g; (void)info;
    char **names = arg;
    for (int i = 0; i < 127; i++)
        if (!names[i]) { names[i] = strdup(name); break; }
    return 0;
}

static void list_names(const char *path, const char *group, char **names)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_name, names);
    H5Gclose(g);
    H5Fclose(f);
}

static int count_complete(const char *runs_dir, int n_arms, int n_reps)
{
    int c = 0;
    char st[64], p[900];
    for (int a = 0; a < n_arms; a++)
        for (int k = 0; k < n_reps; k++) {
            snprintf(p, sizeof p, "%s/a%03d_r%d.h5", runs_dir, a, k);
            if (!strcmp(tu_status(p, st, sizeof st), "complete")) c++;
        }
    return c;
}

static void test_sweep_resumes_after_sigint_and_matches_uninterrupted(void **state)
{
    (void)state;
    /* Runs of ~1 s so the sweep can be stopped between the 2nd and the 6th. */
    char base[700], sw[700], ref[700], part[700], runs[800];
    path_in(base, sizeof base, "long.yaml");
    tu_write(base,
             "name: long\n"
             "horizon: 12d\n"
             "tokens:\n"
             "  - {name: ETH, kind: base}\n"
             "  - {name: USDC, kind: stable}\n"
             "references:\n"
             "  - {type: gbm, asset: ETH, initial: 2000, volatility: 60%, step: 1s}\n"
             "markets:\n"
             "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5000,\n"
             "     reserve_quote: 10000000, fee: 0.3%}\n"
             "agents:\n"
             "  - {type: arbitrageur, name: arb, venue: pool, poll: 1m, cash: 1000000, inventory: 500}\n");
    path_in(sw, sizeof sw, "long_sweep.yaml");
    tu_write(sw, "base: long.yaml\n"
                 "axes:\n"
                 "  - {key: markets.0.fee, values: [0.1%, 0.5%]}\n"
                 "seeds: [5, 6, 7]\n");
    path_in(ref, sizeof ref, "resume_ref");
    path_in(part, sizeof part, "resume_part");
    snprintf(runs, sizeof runs, "%s/runs", part);
    char *log;
    assert_int_equal(spiral(&log, "sweep", sw, "-j", "2", "-o", ref, "-q", NULL), 0);
    free(log);

    char *argv[] = { "spiral", "sweep", sw, "-j", "1", "-o", part, NULL };
    char lp[700];
    path_in(lp, sizeof lp, "part.log");
    pid_t pid = tu_spawn(argv, lp);
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    for (int i = 0; i < 6000 && count_complete(runs, 2, 3) < 2; i++) nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    assert_int_equal(tu_wait(pid), 130);
    char summary[800], st[64];
    snprintf(summary, sizeof summary, "%s/summary.h5", part);
    assert_string_equal(tu_status(summary, st, sizeof st), "interrupted");
    int64_t done = attr_i64(summary, "/", "n_complete");
    assert_true(done >= 2 && done < 6);
    assert_int_equal(done, count_complete(runs, 2, 3));
    /* mtimes of the complete files, to see they are not rewritten. */
    struct stat before[6];
    bool was_complete[6];
    for (int i = 0; i < 6; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/a%03d_r%d.h5", runs, i / 3, i % 3);
        was_complete[i] = !strcmp(tu_status(p, st, sizeof st), "complete");
        stat(p, &before[i]);
    }
    assert_int_equal(spiral(&log, "sweep", sw, "-j", "1", "-o", part, NULL), 0);
    char expect[64];
    snprintf(expect, sizeof expect, "6 complete (%lld resumed)", (long long)done);
    if (!strstr(log, expect)) fprintf(stderr, "%s", log);
    assert_non_null(strstr(log, expect));
    free(log);
    for (int i = 0; i < 6; i++) {
        if (!was_complete[i]) continue;
        char p[900];
        struct stat after;
        snprintf(p, sizeof p, "%s/a%03d_r%d.h5", runs, i / 3, i % 3);
        stat(p, &after);
        assert_true(after.st_mtim.tv_sec == before[i].st_mtim.tv_sec &&
                    after.st_mtim.tv_nsec == before[i].st_mtim.tv_nsec);
    }
    assert_string_equal(tu_status(summary, st, sizeof st), "complete");
    assert_int_equal(attr_i64(summary, "/", "n_resumed"), done);
    /* Same rows and values as the uninterrupted sweep, wall times aside. */
    char refsum[800];
    snprintf(refsum, sizeof refsum, "%s/summary.h5", ref);
    char *na[128] = { 0 }, *nb[128] = { 0 };
    list_names(refsum, "/runs", na);
    list_names(summary, "/runs", nb);
    int cols = 0;
    for (int i = 0; na[i] || nb[i]; i++) {
        assert_non_null(na[i]);
        assert_non_null(nb[i]);
        assert_string_equal(na[i], nb[i]);
        if (strcmp(na[i], "wall_seconds") && strcmp(na[i], "resumed")) {
            char ds[300];
            snprintf(ds, sizeof ds, "/runs/%s", na[i]);
            size_t n1, n2, e1, e2;
            void *x = tu_read_raw(refsum, ds, &n1, &e1);
            void *y = tu_read_raw(summary, ds, &n2, &e2);
            assert_int_equal(n1, 6);
            assert_int_equal(n1, n2);
            assert_int_equal(e1, e2);
            if (memcmp(x, y, n1 * e1)) fail_msg("column %s differs after resume", na[i]);
            free(x);
            free(y);
            cols++;
        }
        free(na[i]);
        free(nb[i]);
    }
    assert_true(cols > 8);
}

static void test_sweep_worker_crash_marks_only_that_run_failed(void **state)
{
    (void)state;
    char sw[700], out[700], *log;
    path_in(sw, sizeof sw, "sweep.yaml");
    path_in(out, sizeof out, "crash");
    setenv("SPIRAL_TEST_CRASH_ON_SEED", "12", 1);     /* replicate 1 of both arms */
    int rc = spiral(&log, "sweep", sw, "-j", "2", "-o", out, NULL);
    unsetenv("SPIRAL_TEST_CRASH_ON_SEED");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(log, "4 complete"));
    assert_non_null(strstr(log, "2 failed"));
    free(log);
    char summary[800];
    snprintf(summary, sizeof summary, "%s/summary.h5", out);
    size_t n;
    int64_t *status = read_i64(summary, "/runs/status", &n);
    int64_t *seed = read_i64(summary, "/runs/seed", &n);
    int64_t *code = read_i64(summary, "/runs/exit_code", &n);
    double *trades = tu_read_f64(summary, "/runs/n_trades", &n);
    assert_int_equal(n, 6);
    int failed_code = flag_code(summary, "/runs/status", "failed");
    assert_true(failed_code > 0);
    for (size_t i = 0; i < n; i++) {
        if (seed[i] == 12) {
            assert_int_equal(status[i], failed_code);
            assert_int_equal(code[i], 128 + SIGABRT);
            assert_true(isnan(trades[i]));
        } else {
            assert_int_equal(status[i], 0);
            assert_false(isnan(trades[i]));
        }
    }
    assert_int_equal(attr_i64(summary, "/", "n_failed"), 2);
    free(status); free(seed); free(code); free(trades);
    /* Rerun without the crash: only the two failed runs run again. */
    assert_int_equal(spiral(&log, "sweep", sw, "-j", "2", "-o", out, NULL), 0);
    assert_non_null(strstr(log, "6 complete (4 resumed)"));
    free(log);
}

static void test_sweep_bad_input_exits_2_before_running(void **state)
{
    (void)state;
    static const struct { const char *name, *yaml, *expect[2]; } cases[] = {
        { "nobase", "axes:\n  - {key: markets.0.fee, values: [0.1%]}\nreplicates: 2\n",
          { "nobase.yaml:1:", "missing required key 'base'" } },
        { "missingbase", "base: nothere.yaml\nreplicates: 2\n",
          { "missingbase.yaml:1:", "nothere.yaml" } },
        { "badaxis", "base: crn.yaml\naxes:\n  - {key: markets.0.fee, values: [0.1%, 0.3%]}\n"
                     "  - key: references.0.volatilty\n    values: [10%, 20%]\nreplicates: 2\n",
          { "badaxis.yaml:4:", "did you mean 'volatility'" } },
        { "badvalue", "base: crn.yaml\naxes:\n  - {key: markets.0.fee, values: [0.1%, 300%]}\n",
          { "badvalue.yaml:3:", "markets.0.fee" } },
        { "typo", "base: crn.yaml\nreplicate: 3\n", { "typo.yaml:2:", "did you mean 'replicates'" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[700], out[700], *log;
        snprintf(p, sizeof p, "%s/%s.yaml", dir, cases[i].name);
        tu_write(p, cases[i].yaml);
        snprintf(out, sizeof out, "%s/out_%s", dir, cases[i].name);
        int rc = spiral(&log, "sweep", p, "-o", out, NULL);
        for (int k = 0; k < 2; k++)
            if (!strstr(log, cases[i].expect[k]))
                fail_msg("%s: expected '%s' in:\n%s", cases[i].name, cases[i].expect[k], log);
        assert_int_equal(rc, 2);
        assert_int_not_equal(access(out, F_OK), 0);     /* nothing created */
        free(log);
    }
    char *log;
    assert_int_equal(spiral(&log, "sweep", NULL), 2);
    free(log);
    assert_int_equal(spiral(&log, "sweep", "x.yaml", "-j", "0", NULL), 2);
    free(log);
    assert_int_equal(spiral(&log, "sweep", "--help", NULL), 0);
    assert_non_null(strstr(log, "replicates"));
    free(log);
    assert_int_equal(spiral(&log, "stress", "x.yaml", "--param", "a", "--range", "3:1",
                            "--metric", "m", NULL), 2);
    free(log);
}

static void test_stress_finds_hand_computed_critical_shock(void **state)
{
    (void)state;
    /* No volatility, no drift: the reference is 2000 until the shock, then
     * 2000 (1 - drop); so max_drawdown_reference_ETH = drop exactly and the
     * smallest drop with drawdown > 0.37 is 0.37. */
    char scn[700], out[700], *log;
    path_in(scn, sizeof scn, "det.yaml");
    tu_write(scn,
             "name: det\n"
             "horizon: 2h\n"
             "tokens:\n"
             "  - {name: ETH, kind: base}\n"
             "  - {name: USDC, kind: stable}\n"
             "references:\n"
             "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1m,\n"
             "     shocks: [{at: 30m, drop: 10%}]}\n");
    path_in(out, sizeof out, "stress/det.h5");
    const double tol = 0.002, expect = 0.37;
    int rc = spiral(&log, "stress", scn, "--param", "references.0.shocks.0.drop", "--range", "0.05:0.9",
                    "--metric", "max_drawdown_reference_ETH", "--threshold", "0.37", "--seeds", "2",
                    "--tol", "0.002", "-j", "2", "-o", out, NULL);
    if (rc) fprintf(stderr, "%s", log);
    assert_int_equal(rc, 0);
    free(log);
    double crit = tu_attr_f64(out, "/", "critical_value");
    double lo = tu_attr_f64(out, "/", "bracket_lo"), hi = tu_attr_f64(out, "/", "bracket_hi");
    assert_true(fabs(crit - expect) <= tol);
    assert_true(hi - lo <= tol && lo <= expect && expect <= hi);
    char *res = read_str_attr(out, "/", "result");
    assert_string_equal(res, "found");
    free(res);
    /* The curve: sorted by param, mean = the drop, two seeds per point. */
    size_t n, m;
    double *param = tu_read_f64(out, "/curve/param", &n);
    double *mean = tu_read_f64(out, "/curve/mean", &m);
    assert_true(n >= 8 && n == m);
    for (size_t i = 0; i < n; i++) {
        if (i) assert_true(param[i] > param[i - 1]);
        assert_true(fabs(mean[i] - param[i]) < 1e-9);
    }
    size_t ne;
    double *val = tu_read_f64(out, "/evaluations/value", &ne);
    assert_int_equal(ne, 2 * n);
    free(param); free(mean); free(val);
    /* Not reached in the range: NaN, exit 0. */
    rc = spiral(&log, "stress", scn, "--param", "references.0.shocks.0.drop", "--range", "0.05:0.3",
                "--metric", "max_drawdown_reference_ETH", "--threshold", "0.37", "--seeds", "1",
                "--grid", "3", "-j", "2", "-o", out, NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "no critical value"));
    free(log);
    assert_true(isnan(tu_attr_f64(out, "/", "critical_value")));
    /* An unknown metric: exit 2 with a suggestion. */
    rc = spiral(&log, "stress", scn, "--param", "references.0.shocks.0.drop", "--range", "0.05:0.3",
                "--metric", "max_drawdown_ETH", "--seeds", "1", "--grid", "2", "-j", "2", "-o", out, NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(log, "no such /summary metric"));
    assert_non_null(strstr(log, " max_drawdown_reference_ETH"));   /* the list of those there are */
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_2x3_gives_six_complete_runs_and_summary),
        cmocka_unit_test(test_sweep_arms_share_random_draws),
        cmocka_unit_test(test_sweep_resumes_after_sigint_and_matches_uninterrupted),
        cmocka_unit_test(test_sweep_worker_crash_marks_only_that_run_failed),
        cmocka_unit_test(test_sweep_bad_input_exits_2_before_running),
        cmocka_unit_test(test_stress_finds_hand_computed_critical_shock),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
