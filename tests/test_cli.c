/*
 * test_cli.c — the `spiral` command line, run as a child process.
 *
 *  - bad input: a table of malformed scenarios and command lines; each must
 *    exit 2 with a message holding the expected file:line / key fragment,
 *    and none may leave an output file marked "complete";
 *  - signals: a long run sent SIGINT (fast and paced mode) exits 130 and
 *    leaves a readable file with status "interrupted" and every row up to
 *    the time it stopped;
 *  - help, version, validate and info behave as documented.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "testutil.h"

#define BASE                                                                     \
    "horizon: 1d\n"                                                              \
    "tokens:\n"                                                                  \
    "  - {name: ETH, kind: base}\n"                                              \
    "  - {name: USDC, kind: stable}\n"

#define GBM                                                                      \
    "references:\n"                                                              \
    "  - type: gbm\n"                                                            \
    "    asset: ETH\n"                                                           \
    "    initial: 2000\n"

#define REPLAY(file)                                                             \
    "references:\n"                                                              \
    "  - type: replay\n"                                                         \
    "    asset: ETH\n"                                                           \
    "    file: " file "\n"                                                       \
    "    time_column: unix_ts\n"                                                 \
    "    price_column: close\n"

struct bad_case {
    const char *name;
    const char *yaml;          /* scenario text, or NULL to use `good.yaml` */
    const char *args[8];       /* after "spiral"; "SCN" = the scenario path, "OUT" = output */
    const char *expect[3];     /* fragments that must appear in the output */
};

static const struct bad_case cases[] = {
    { "yaml_syntax", BASE "references: [\n  - {type: gbm\n", { "run", "SCN", "-o", "OUT" },
      { "yaml_syntax.yaml:", "error" } },
    { "unknown_key", BASE GBM "    colour: blue\n", { "run", "SCN", "-o", "OUT" },
      { "unknown_key.yaml:9:", "unknown key 'colour'" } },
    { "typo_key", BASE GBM "    volatilty: 50%\n", { "run", "SCN", "-o", "OUT" },
      { "typo_key.yaml:9:", "did you mean 'volatility'" } },
    { "typo_root_key", "horizn: 1d\n" "tokens:\n  - {name: ETH, kind: base}\n",
      { "run", "SCN", "-o", "OUT" }, { "typo_root_key.yaml:1:", "did you mean 'horizon'" } },
    { "wrong_type", BASE GBM "    jump_rate: often\n", { "run", "SCN", "-o", "OUT" },
      { "wrong_type.yaml:9:", "jump_rate", "expected a number" } },
    { "out_of_range", BASE GBM "    volatility: -20%\n", { "run", "SCN", "-o", "OUT" },
      { "out_of_range.yaml:9:", "volatility" } },
    { "negative_duration", "horizon: -2d\ntokens:\n  - {name: ETH, kind: base}\n",
      { "run", "SCN", "-o", "OUT" }, { "negative_duration.yaml:1:", "horizon" } },
    { "unitless_duration", "horizon: 3600\ntokens:\n  - {name: ETH, kind: base}\n",
      { "run", "SCN", "-o", "OUT" }, { "unitless_duration.yaml:1:", "unit" } },
    { "missing_required", "tokens:\n  - {name: ETH, kind: base}\n", { "run", "SCN", "-o", "OUT" },
      { "missing_required.yaml:1:", "missing required key 'horizon'" } },
    { "missing_required_nested", BASE "references:\n  - type: gbm\n    asset: ETH\n",
      { "run", "SCN", "-o", "OUT" }, { "missing_required_nested.yaml:6", "'initial'" } },
    { "bad_enum", "horizon: 1d\ntokens:\n  - {name: ETH, kind: bsae}\n",
      { "run", "SCN", "-o", "OUT" }, { "bad_enum.yaml:3:", "base" } },
    { "unknown_module_type", BASE "references:\n  - type: gmb\n    asset: ETH\n    initial: 1\n",
      { "run", "SCN", "-o", "OUT" }, { "unknown_module_type.yaml:6:", "did you mean 'gbm'" } },
    { "unknown_token", BASE GBM "    name: r\n  - type: gbm\n    asset: ETX\n    initial: 1\n",
      { "run", "SCN", "-o", "OUT" }, { "unknown_token.yaml:11:", "did you mean 'ETH'" } },
    { "stable_reference", BASE "references:\n  - {type: gbm, asset: USDC, initial: 1}\n",
      { "run", "SCN", "-o", "OUT" }, { "stable_reference.yaml:6:", "kind stable" } },
    { "shock_over_100", BASE GBM "    shocks:\n      - {at: 1h, drop: 120%}\n",
      { "run", "SCN", "-o", "OUT" }, { "shock_over_100.yaml:10:", "drop" } },
    { "missing_csv", BASE REPLAY("no_such.csv"), { "run", "SCN", "-o", "OUT" },
      { "missing_csv.yaml:8:", "cannot open", "no_such.csv" } },
    { "csv_bad_row", BASE REPLAY("bad_row.csv"), { "run", "SCN", "-o", "OUT" },
      { "csv_bad_row.yaml:8:", "bad_row.csv:4:", "column 'close'" } },
    { "csv_time_not_increasing", BASE REPLAY("backwards.csv"), { "run", "SCN", "-o", "OUT" },
      { "backwards.csv:5:", "does not increase" } },
    { "duplicate_key", BASE GBM "    initial: 3\n", { "run", "SCN", "-o", "OUT" },
      { "duplicate_key.yaml:9:", "duplicate key 'initial'" } },
    { "root_not_a_map", "- a\n- b\n", { "run", "SCN", "-o", "OUT" }, { "root_not_a_map.yaml", "map" } },
    { "compression_range", BASE "output:\n  compression: 12\n", { "run", "SCN", "-o", "OUT" },
      { "compression_range.yaml:6:", "compression" } },
    { "set_bad_index", NULL, { "run", "SCN", "-o", "OUT", "--set", "references.5.initial=3" },
      { "--set", "references.5" } },
    { "set_typo", NULL, { "run", "SCN", "-o", "OUT", "--set", "references.0.volatilty=50%" },
      { "--set", "did you mean 'volatility'" } },
    { "set_no_equals", NULL, { "run", "SCN", "-o", "OUT", "--set", "horizon" }, { "--set", "=" } },
    { "set_bad_value", NULL, { "run", "SCN", "-o", "OUT", "--set", "horizon=soon" },
      { "--set horizon=soon", "duration" } },
    { "unwritable_output", NULL, { "run", "SCN", "-o", "/nonexistent-dir/out.h5" },
      { "cannot create output file", "/nonexistent-dir/out.h5" } },
    { "missing_scenario_file", NULL, { "run", "/nonexistent/scn.yaml", "-o", "OUT" },
      { "/nonexistent/scn.yaml", "No such file" } },
    { "no_scenario_argument", NULL, { "run" }, { "missing SCENARIO", "--help" } },
    { "unknown_option", NULL, { "run", "SCN", "--frobnicate" }, { "unknown option '--frobnicate'" } },
    { "bad_seed", NULL, { "run", "SCN", "-o", "OUT", "--seed", "-4" }, { "--seed", "-4" } },
    { "bad_until", NULL, { "run", "SCN", "-o", "OUT", "--until", "7" }, { "--until" } },
    { "bad_pace", NULL, { "run", "SCN", "-o", "OUT", "--pace", "fast" }, { "--pace", "fast" } },
    { "unknown_command", NULL, { "rnu", "SCN" }, { "did you mean 'run'" } },
    { "info_not_hdf5", NULL, { "info", "SCN" }, { "not a readable HDF5 file" } },
    { "validate_typo", BASE GBM "    volatilty: 50%\n", { "validate", "SCN" },
      { "validate_typo.yaml:9:", "did you mean 'volatility'" } },
};

static const char good_yaml[] = BASE GBM "    volatility: 80%\n";

static void test_cli_bad_input_exits_2_with_located_message(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("bad");
    char path[1024], out[1024], log[1024];
    snprintf(path, sizeof path, "%s/good.yaml", dir);
    tu_write(path, good_yaml);
    snprintf(path, sizeof path, "%s/bad_row.csv", dir);
    tu_write(path, "# comment\nunix_ts,close\n0,100\n3600,1o1\n");
    snprintf(path, sizeof path, "%s/backwards.csv", dir);
    tu_write(path, "unix_ts,close\n0,100\n3600,101\n\n3600,102\n");
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        char scn[1024];
        if (c->yaml) {
            snprintf(scn, sizeof scn, "%s/%s.yaml", dir, c->name);
            tu_write(scn, c->yaml);
        } else {
            snprintf(scn, sizeof scn, "%s/good.yaml", dir);
        }
        snprintf(out, sizeof out, "%s/%s.h5", dir, c->name);
        snprintf(log, sizeof log, "%s/%s.log", dir, c->name);
        char *argv[12] = { "spiral" };
        int n = 1;
        for (int k = 0; k < 8 && c->args[k]; k++) {
            if (!strcmp(c->args[k], "SCN")) argv[n++] = scn;
            else if (!strcmp(c->args[k], "OUT")) argv[n++] = out;
            else argv[n++] = (char *)c->args[k];
        }
        argv[n] = NULL;
        int code = tu_run(argv, log);
        char *text = tu_read(log);
        char st[64];
        bool ok = code == 2;
        for (int k = 0; k < 3 && c->expect[k]; k++) ok = ok && strstr(text, c->expect[k]);
        tu_status(out, st, sizeof st);
        ok = ok && strcmp(st, "complete") != 0;
        if (!ok) {
            failures++;
            fprintf(stderr, "case %s: exit %d (want 2), status '%s', output:\n%s\n", c->name, code,
                    st, text);
            for (int k = 0; k < 3 && c->expect[k]; k++)
                if (!strstr(text, c->expect[k])) fprintf(stderr, "  missing fragment: %s\n", c->expect[k]);
        }
        free(text);
    }
    fprintf(stderr, "%zu bad-input cases checked\n", sizeof cases / sizeof cases[0]);
    assert_int_equal(failures, 0);
}

static void test_cli_help_version_and_validate(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("help");
    char log[1024], scn[1024];
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(scn, sizeof scn, "%s/good.yaml", dir);
    tu_write(scn, good_yaml);
    struct { const char *args[4]; int code; const char *expect; } runs[] = {
        { { "--help" }, 0, "Usage: spiral COMMAND" },
        { { "--version" }, 0, "spiral " },
        { { "run", "--help" }, 0, "--until T" },
        { { "validate", "--help" }, 0, "Usage: spiral validate" },
        { { "info", "--help" }, 0, "Usage: spiral info" },
        { { "types" }, 0, "gbm" },
        { { "validate", "SCN" }, 0, ": ok" },
        { { "validate", "SCN", "--print" }, 0, "volatility: 80%" },
        { { 0 }, 2, "Usage" },
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char *argv[6] = { "spiral" };
        int n = 1;
        for (int k = 0; k < 4 && runs[i].args[k]; k++)
            argv[n++] = !strcmp(runs[i].args[k], "SCN") ? scn : (char *)runs[i].args[k];
        argv[n] = NULL;
        int code = tu_run(argv, log);
        char *text = tu_read(log);
        if (code != runs[i].code || !strstr(text, runs[i].expect))
            fprintf(stderr, "run %zu: exit %d, output:\n%s\n", i, code, text);
        assert_int_equal(code, runs[i].code);
        assert_non_null(strstr(text, runs[i].expect));
        free(text);
    }
}

static void test_cli_run_then_info(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("info");
    char log[1024], scn[1024], out[1024], st[64];
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(scn, sizeof scn, "%s/good.yaml", dir);
    snprintf(out, sizeof out, "%s/good.h5", dir);
    tu_write(scn, good_yaml);
    char *argv[] = { "spiral", "run", scn, "-o", out, "--seed", "9", NULL };
    assert_int_equal(tu_run(argv, log), 0);
    assert_string_equal(tu_status(out, st, sizeof st), "complete");
    char *info[] = { "spiral", "info", out, NULL };
    assert_int_equal(tu_run(info, log), 0);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "complete"));
    assert_non_null(strstr(text, "/markets/reference_ETH"));
    assert_non_null(strstr(text, "max_drawdown_reference_ETH"));
    free(text);
}

/* A long run interrupted by signal `sig` after `delay` seconds. */
static void interrupt_run(const char *tag, const char *horizon, const char *extra_arg,
                          const char *extra_val, double delay, int sig)
{
    const char *dir = tu_tmpdir(tag);
    char log[1024], scn[1024], out[1024], st[64], yaml[1024];
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(scn, sizeof scn, "%s/long.yaml", dir);
    snprintf(out, sizeof out, "%s/long.h5", dir);
    snprintf(yaml, sizeof yaml,
             "horizon: %s\noutput: {sample_every: 1m, chunk_rows: 1024}\n"
             "tokens:\n  - {name: ETH, kind: base}\n"
             "references:\n  - {type: gbm, asset: ETH, initial: 100, volatility: 50%%, step: 1s}\n",
             horizon);
    tu_write(scn, yaml);
    char *argv[] = { "spiral", "run", scn, "-o", out, (char *)extra_arg, (char *)extra_val, NULL };
    remove(out);
    pid_t pid = tu_spawn(argv, log);
    /* Count the delay from when the run has started (its file exists): on a
     * loaded machine start-up alone can take longer than the delay. */
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    for (int i = 0; i < 3000 && access(out, F_OK) != 0; i++) nanosleep(&tick, NULL);
    struct timespec ts = { (time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9) };
    nanosleep(&ts, NULL);
    kill(pid, sig);
    int code = tu_wait(pid);
    char *text = tu_read(log);
    if (code != 130) fprintf(stderr, "exit %d, output:\n%s\n", code, text);
    free(text);
    assert_int_equal(code, 130);
    assert_string_equal(tu_status(out, st, sizeof st), "interrupted");
    /* Every sample from t = 0 to where the run stopped is there, in order. */
    double t_end = tu_attr_f64(out, "/", "t_end");
    size_t n;
    double *t = tu_read_f64(out, "/markets/reference_ETH/t", &n);
    assert_true(t_end > 0);
    assert_true(n > 10);
    for (size_t i = 0; i < n; i++) assert_true(fabs(t[i] - 60.0 * (double)i) < 1e-9);
    assert_int_equal(n, (size_t)floor(t_end / 60.0) + 1);
    free(t);
}

static void test_cli_sigint_fast_mode_leaves_interrupted_file(void **state)
{
    (void)state;
    interrupt_run("sigfast", "100000d", "--quiet", NULL, 0.7, SIGINT);
}

static void test_cli_sigterm_paced_mode_leaves_interrupted_file(void **state)
{
    (void)state;
    /* 2 simulated hours per wall second: about 70 samples after 0.6 s. */
    interrupt_run("sigpaced", "10d", "--pace", "7200", 0.6, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_bad_input_exits_2_with_located_message),
        cmocka_unit_test(test_cli_help_version_and_validate),
        cmocka_unit_test(test_cli_run_then_info),
        cmocka_unit_test(test_cli_sigint_fast_mode_leaves_interrupted_file),
        cmocka_unit_test(test_cli_sigterm_paced_mode_leaves_interrupted_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
