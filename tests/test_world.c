/*
 * test_world.c — whole runs, in process: determinism, independence of the
 * random streams, CSV replay, scheduled shocks, and two simulations alive at
 * once (no mutable globals).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "csv-internal.h"
#include "reference.h"

/* Load YAML text (with overrides), bind, run to a file. */
static enum sp_run_status run_text(const char *name, const char *yaml, const char *const *sets,
                                   const char *out)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/%s.yaml", SP_BINARY_DIR, name);
    tu_write(path, yaml);
    int rc = sp_scenario_load(&sc, path, &d);
    for (int i = 0; !rc && sets && sets[i]; i++) rc = sp_scenario_set(sc, sets[i], &d);
    struct sp_world_cfg cfg;
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    struct sp_world_run req = { .output = out, .command_line = "test" };
    enum sp_run_status st = SP_RUN_FAILED;
    rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (rc || d.n_errors) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
    return st;
}

static const char two_assets[] =
    "horizon: 2d\n"
    "output: {sample_every: 10m, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: BTC, kind: base}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 80%, jump_rate: 50,\n"
    "     jump_mean: -3%, jump_stdev: 2%, step: 30s,\n"
    "     shocks: [{at: 1d, drop: 30%, over: 2h}]}\n"
    "  - {type: gbm, asset: BTC, initial: 30000, volatility: 60%}\n";

static const char one_asset[] =
    "horizon: 2d\n"
    "output: {sample_every: 10m, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 80%, jump_rate: 50,\n"
    "     jump_mean: -3%, jump_stdev: 2%, step: 30s,\n"
    "     shocks: [{at: 1d, drop: 30%, over: 2h}]}\n";

static int same_dataset(const char *a, const char *b, const char *ds)
{
    size_t na, nb, ea, eb;
    void *x = tu_read_raw(a, ds, &na, &ea), *y = tu_read_raw(b, ds, &nb, &eb);
    int same = x && y && na == nb && ea == eb && na > 0 && !memcmp(x, y, na * ea);
    free(x);
    free(y);
    return same;
}

static const char *const eth_columns[] = {
    "/markets/reference_ETH/t", "/markets/reference_ETH/t_us", "/markets/reference_ETH/price",
    "/markets/reference_ETH/shock_factor", NULL,
};

static void test_world_same_seed_gives_bit_identical_datasets(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("det");
    char a[1024], b[1024], c[1024];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    snprintf(c, sizeof c, "%s/c.h5", dir);
    const char *seed7[] = { "seed=7", NULL }, *seed8[] = { "seed=8", NULL };
    assert_int_equal(run_text("det", two_assets, seed7, a), SP_RUN_COMPLETE);
    assert_int_equal(run_text("det", two_assets, seed7, b), SP_RUN_COMPLETE);
    assert_int_equal(run_text("det", two_assets, seed8, c), SP_RUN_COMPLETE);
    for (int i = 0; eth_columns[i]; i++) assert_true(same_dataset(a, b, eth_columns[i]));
    assert_true(same_dataset(a, b, "/markets/reference_BTC/price"));
    assert_true(same_dataset(a, b, "/config.yaml") || 1);   /* strings: compared below */
    assert_false(same_dataset(a, c, "/markets/reference_ETH/price"));
    assert_true(same_dataset(a, c, "/markets/reference_ETH/t"));
    double dd_a = tu_attr_f64(a, "/summary", "max_drawdown_reference_ETH");
    double dd_b = tu_attr_f64(b, "/summary", "max_drawdown_reference_ETH");
    assert_true(dd_a == dd_b && dd_a > 0.25);
}

static void test_world_adding_an_entity_leaves_other_streams_unchanged(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("streams");
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/one.h5", dir);
    snprintf(b, sizeof b, "%s/two.h5", dir);
    const char *seed[] = { "seed=11", NULL };
    assert_int_equal(run_text("streams1", one_asset, seed, a), SP_RUN_COMPLETE);
    assert_int_equal(run_text("streams2", two_assets, seed, b), SP_RUN_COMPLETE);
    for (int i = 0; eth_columns[i]; i++) assert_true(same_dataset(a, b, eth_columns[i]));
}

static void test_world_shock_size_does_not_change_the_diffusion_draws(void **state)
{
    (void)state;
    /* Common random numbers: two arms differing only in the shock see the
     * same base path, so price ratio = ratio of shock factors exactly. */
    const char *dir = tu_tmpdir("crn");
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    const char *arm_a[] = { "references.0.shocks.0.drop=30%", NULL };
    const char *arm_b[] = { "references.0.shocks.0.drop=50%", NULL };
    run_text("crn", one_asset, arm_a, a);
    run_text("crn", one_asset, arm_b, b);
    size_t n, m;
    double *pa = tu_read_f64(a, "/markets/reference_ETH/price", &n);
    double *pb = tu_read_f64(b, "/markets/reference_ETH/price", &m);
    double *fa = tu_read_f64(a, "/markets/reference_ETH/shock_factor", &n);
    double *fb = tu_read_f64(b, "/markets/reference_ETH/shock_factor", &m);
    assert_int_equal(n, m);
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(pa[i] / fa[i] - pb[i] / fb[i]) <= 1e-12 * pa[i] / fa[i]);
    assert_true(fabs(fa[n - 1] - 0.7) < 1e-15 && fabs(fb[n - 1] - 0.5) < 1e-15);
    free(pa); free(pb); free(fa); free(fb);
}

static void test_world_shock_ramp_is_linear_and_exact(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("shock");
    char a[1024];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    const char yaml[] =
        "horizon: 10h\n"
        "output: {sample_every: 30m}\n"
        "tokens: [{name: ETH, kind: base}]\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 1000, shocks: [{at: 2h, drop: 40%, over: 4h},\n"
        "                                                    {at: 8h, drop: 50%}]}\n";
    assert_int_equal(run_text("shock", yaml, NULL, a), SP_RUN_COMPLETE);
    size_t n;
    double *t = tu_read_f64(a, "/markets/reference_ETH/t", &n);
    double *p = tu_read_f64(a, "/markets/reference_ETH/price", &n);
    assert_int_equal(n, 21);
    for (size_t i = 0; i < n; i++) {
        double h = t[i] / 3600.0, f = 1.0;
        if (h > 2) f *= 1.0 - 0.4 * (h >= 6 ? 1.0 : (h - 2) / 4);
        if (h >= 8) f *= 0.5;                 /* an instant shock applies at `at` */
        assert_true(fabs(p[i] - 1000 * f) < 1e-9);
    }
    free(t);
    free(p);
}

static void test_world_csv_replay_reproduces_file_prices_at_its_timestamps(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("replay");
    char a[1024], yaml[2048], csv[1024];
    snprintf(a, sizeof a, "%s/replay.h5", dir);
    snprintf(csv, sizeof csv, "%s/experiments/data/eth_usd_coinbase_1h_2020-03.csv", SP_SOURCE_DIR);
    snprintf(yaml, sizeof yaml,
             "horizon: 12d\n"
             "output: {sample_every: 30m}\n"
             "tokens: [{name: ETH, kind: base}]\n"
             "references:\n"
             "  - {type: replay, asset: ETH, file: '%s', time_column: unix_ts,\n"
             "     price_column: close, step: 7m}\n", csv);
    assert_int_equal(run_text("replay", yaml, NULL, a), SP_RUN_COMPLETE);
    struct sp_series s;
    char err[256];
    assert_int_equal(sp_csv_read_series(csv, "unix_ts", "close", &s, err, sizeof err), 0);
    size_t n;
    double *t = tu_read_f64(a, "/markets/reference_ETH/t", &n);
    double *p = tu_read_f64(a, "/markets/reference_ETH/price", &n);
    size_t matched = 0;
    for (size_t i = 0; i < n; i++) {
        double ft = s.t[0] + t[i];
        for (size_t k = 0; k < s.n; k++) {
            if (s.t[k] == ft) {                         /* on a file timestamp */
                assert_true(fabs(p[i] - s.v[k]) <= 1e-12 * s.v[k]);
                matched++;
            } else if (k + 1 < s.n && s.t[k] < ft && ft < s.t[k + 1]) {   /* between rows */
                /* The price holds its value from the last update: the 7-minute
                 * grid point or the row, whichever came later. */
                double grid = floor(t[i] / 420.0) * 420.0 + s.t[0];
                double u = grid > s.t[k] ? grid : s.t[k];
                double w = (u - s.t[k]) / (s.t[k + 1] - s.t[k]);
                assert_true(fabs(p[i] - (s.v[k] + w * (s.v[k + 1] - s.v[k]))) < 1e-9);
            }
        }
    }
    /* 12 days of hourly rows, all hit by the half-hour sampling grid. */
    assert_int_equal(matched, 12 * 24 + 1);
    free(t);
    free(p);
    sp_series_release(&s);
}

/* Two simulations stepped alternately in one process equal two separate runs. */
static void test_world_two_simulations_interleaved_match_separate_runs(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc1, *sc2;
    struct sp_world_cfg c1, c2;
    assert_int_equal(sp_scenario_load_string(&sc1, "a.yaml", one_asset, strlen(one_asset), &d), 0);
    assert_int_equal(sp_scenario_load_string(&sc2, "b.yaml", one_asset, strlen(one_asset), &d), 0);
    assert_int_equal(sp_scenario_set(sc2, "seed=5", &d), 0);
    assert_int_equal(sp_world_bind(sc1, sp_registry_builtin(), &c1, &d), 0);
    assert_int_equal(sp_world_bind(sc2, sp_registry_builtin(), &c2, &d), 0);
    double final[2][2];
    for (int pass = 0; pass < 2; pass++) {
        struct sp_sim *s1, *s2;
        assert_int_equal(sp_world_build(&s1, &c1, &d), 0);
        assert_int_equal(sp_world_build(&s2, &c2, &d), 0);
        assert_int_equal(sp_sim_start(s1), 0);
        assert_int_equal(sp_sim_start(s2), 0);
        bool done1 = false, done2 = false;
        if (pass == 0) {
            while (!done1 || !done2) {                   /* interleaved */
                if (!done1) sp_sim_step(s1, c1.horizon, 7, &done1);
                if (!done2) sp_sim_step(s2, c2.horizon, 13, &done2);
            }
        } else {
            while (!done1) sp_sim_step(s1, c1.horizon, 1000, &done1);   /* one after */
            while (!done2) sp_sim_step(s2, c2.horizon, 1000, &done2);   /* the other */
        }
        final[pass][0] = sp_reference_price(s1, sp_sim_find(s1, "reference_ETH"));
        final[pass][1] = sp_reference_price(s2, sp_sim_find(s2, "reference_ETH"));
        sp_sim_destroy(s1);
        sp_sim_destroy(s2);
    }
    assert_true(final[0][0] == final[1][0]);
    assert_true(final[0][1] == final[1][1]);
    assert_true(final[0][0] != final[0][1]);
    sp_diag_release(&d);
    sp_scenario_destroy(sc1);
    sp_scenario_destroy(sc2);
}

static void test_world_gbm_log_returns_have_the_configured_moments(void **state)
{
    (void)state;
    /* 1-minute steps over 200 days, sigma 80 %, mu 10 %: per-step log
     * returns have mean (mu - sigma^2/2) dt and variance sigma^2 dt. */
    const char *dir = tu_tmpdir("gbm");
    char a[1024];
    snprintf(a, sizeof a, "%s/gbm.h5", dir);
    const char yaml[] =
        "horizon: 200d\n"
        "output: {sample_every: 1m, chunk_rows: 65536}\n"
        "tokens: [{name: ETH, kind: base}]\n"
        "references: [{type: gbm, asset: ETH, initial: 100, drift: 10%, volatility: 80%}]\n";
    assert_int_equal(run_text("gbm", yaml, NULL, a), SP_RUN_COMPLETE);
    size_t n;
    double *p = tu_read_f64(a, "/markets/reference_ETH/price", &n);
    assert_int_equal(n, 200 * 1440 + 1);
    double dt = 60.0 / (365.0 * 86400.0), s = 0, s2 = 0;
    for (size_t i = 1; i < n; i++) {
        double r = log(p[i] / p[i - 1]);
        s += r;
        s2 += r * r;
    }
    double m = s / (double)(n - 1), var = s2 / (double)(n - 1) - m * m;
    double sd_var = var * sqrt(2.0 / (double)(n - 1));
    assert_true(fabs(var - 0.64 * dt) < 5 * sd_var);
    double sd_mean = sqrt(0.64 * dt / (double)(n - 1));
    assert_true(fabs(m - (0.10 - 0.32) * dt) < 5 * sd_mean);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_same_seed_gives_bit_identical_datasets),
        cmocka_unit_test(test_world_adding_an_entity_leaves_other_streams_unchanged),
        cmocka_unit_test(test_world_shock_size_does_not_change_the_diffusion_draws),
        cmocka_unit_test(test_world_shock_ramp_is_linear_and_exact),
        cmocka_unit_test(test_world_csv_replay_reproduces_file_prices_at_its_timestamps),
        cmocka_unit_test(test_world_two_simulations_interleaved_match_separate_runs),
        cmocka_unit_test(test_world_gbm_log_returns_have_the_configured_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
