/*
 * main.c — the `spiral` command line: run, validate, info, types; sweep and
 * stress live in sweep.c and stress.c.
 *
 * Exit codes: 0 success; 1 the run failed (I/O, a model invariant); 2 bad
 * input or usage (scenario errors, bad options, an output that cannot be
 * created); 130 interrupted by SIGINT/SIGTERM (the file says "interrupted").
 * Results go to stdout, errors and the progress line to stderr; the progress
 * line only when stderr is a terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/version.h"
#include "spiral/world.h"
#include "info.h"
#include "sweep-internal.h"

enum { EXIT_RUNFAIL = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

static const char usage_main[] =
    "Usage: spiral COMMAND [ARGS]\n"
    "\n"
    "spiral simulates recursive leverage in DeFi: positions collateralized by other\n"
    "positions, liquidation cascades, and the feedback through markets and oracles.\n"
    "\n"
    "Commands:\n"
    "  run SCENARIO.yaml       run a scenario and write an HDF5 file\n"
    "  validate SCENARIO.yaml  check a scenario (and overrides) without running it\n"
    "  sweep SWEEP.yaml        run a scenario over parameter axes x seeds, in parallel\n"
    "  stress SCENARIO.yaml    find the critical value of a parameter by bisection\n"
    "  info FILE.h5            summarise a run's output file\n"
    "  types                   list the module types a scenario can use\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help (also: spiral COMMAND --help)\n"
    "  -V, --version  show the version\n"
    "\n"
    "Exit status: 0 ok, 1 run failure, 2 bad input or usage, 130 interrupted.\n"
    "Docs: docs/cli.md, docs/scenario.md (every key), docs/output.md (the HDF5 layout).\n";

static const char usage_run[] =
    "Usage: spiral run SCENARIO.yaml [options]\n"
    "\n"
    "Run a scenario and record it to an HDF5 file.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   output file (default runs/NAME.h5, NAME = scenario name)\n"
    "      --seed N        seed of every random stream (overrides the scenario's seed)\n"
    "      --set KEY=VAL   override a scenario key, e.g. --set references.0.volatility=90%%\n"
    "                      (repeatable; list items by index or by name; validated as the file)\n"
    "      --until T       stop at simulated time T (e.g. 6h); default the horizon\n"
    "      --pace X        run X simulated seconds per wall second (default: flat out)\n"
    "  -q, --quiet         print nothing on success\n"
    "  -h, --help          show this help\n"
    "\n"
    "SIGINT/SIGTERM stop at the next batch of events and close the file with\n"
    "status \"interrupted\" (exit 130); a second signal exits at once.\n";

static const char usage_validate[] =
    "Usage: spiral validate SCENARIO.yaml [--seed N] [--set KEY=VAL ...] [--print]\n"
    "\n"
    "Check a scenario and its overrides without running it.  Every error is\n"
    "reported as file:line:column: key: message.  Exit 0 if valid, 2 if not.\n"
    "\n"
    "  --print   print the fully resolved scenario (defaults filled in) as YAML\n";

static const char usage_info[] =
    "Usage: spiral info FILE.h5\n"
    "\n"
    "Print a short summary of a run: status, seed, scenario, tables with their\n"
    "row counts and time spans, and the /summary metrics.\n";

static const char usage_types[] =
    "Usage: spiral types [--markdown]\n"
    "\n"
    "List the registered module types.  --markdown prints the full scenario\n"
    "reference (the source of docs/scenario.md).\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "spiral%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'spiral %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* Quote an argument for the command_line attribute when it needs it. */
static void append_arg(char **buf, size_t *len, size_t *cap, const char *a)
{
    size_t need = *len + 3 * strlen(a) + 4;
    if (need > *cap) {
        *cap = need * 2;
        char *p = realloc(*buf, *cap);
        if (!p) return;
        *buf = p;
    }
    char *o = *buf + *len;
    if (*len) *o++ = ' ';
    bool plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-_./=:,%+@") == strlen(a);
    if (plain) {
        o += sprintf(o, "%s", a);
    } else {
        *o++ = '\'';
        for (const char *p = a; *p; p++) {
            if (*p == '\'') { memcpy(o, "'\\''", 4); o += 4; }
            else *o++ = *p;
        }
        *o++ = '\'';
        *o = 0;
    }
    *len = (size_t)(o - *buf);
}

static char *join_argv(int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; i < argc; i++) append_arg(&buf, &len, &cap, argv[i]);
    return buf ? buf : strdup("");
}

struct common {
    const char *scenario;
    const char *seed;
    const char **sets;
    int n_sets;
};

/* Load, override, bind.  Prints diagnostics; returns 0 or an exit code. */
static int load_scenario(const struct common *c, struct sp_scenario **sc, struct sp_world_cfg *cfg)
{
    struct sp_diag d = { 0 };
    int rc = sp_scenario_load(sc, c->scenario, &d);
    if (!rc && c->seed) {
        char *end;
        errno = 0;
        long long v = strtoll(c->seed, &end, 10);
        if (*end || errno || v < 0 || !*c->seed) {
            sp_diag_print(&d, stderr);
            sp_diag_release(&d);
            return usage_error("run", "--seed: expected a non-negative integer, got '%s'", c->seed);
        }
        char buf[64];
        snprintf(buf, sizeof buf, "seed=%lld", v);
        rc = sp_scenario_set(*sc, buf, &d);
    }
    for (int i = 0; !rc && i < c->n_sets; i++) rc = sp_scenario_set(*sc, c->sets[i], &d);
    if (!rc) rc = sp_world_bind(*sc, sp_registry_builtin(), cfg, &d);
    if (rc) {
        sp_diag_print(&d, stderr);
        if (d.n_errors > 1) fprintf(stderr, "%d errors.\n", d.n_errors);
        sp_diag_release(&d);
        return EXIT_USAGE;
    }
    sp_diag_release(&d);
    return 0;
}

struct progress_state { bool shown; };

static void progress_line(const struct sp_progress *p, void *arg)
{
    struct progress_state *ps = arg;
    char now[32], end[32];
    double frac = p->end > 0 && p->end != SP_TIME_MAX ? (double)p->now / (double)p->end : 0;
    double rate = p->wall_seconds > 0 ? (double)p->events / p->wall_seconds : 0;
    fprintf(stderr, "\r  t = %s / %s (%3.0f%%)  %.3gM events  %.3gM events/s\033[K",
            sp_format_duration(p->now, now, sizeof now), sp_format_duration(p->end, end, sizeof end),
            100 * frac, (double)p->events / 1e6, rate / 1e6);
    fflush(stderr);
    ps->shown = true;
}

static int make_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return -1;
    memcpy(dir, path, n);
    dir[n] = 0;
    struct stat st;
    if (stat(dir, &st) == 0) return 0;
    return mkdir(dir, 0777);
}

static int cmd_run(int argc, char **argv, const char *cmdline)
{
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' }, { "seed", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },    { "until", required_argument, NULL, 'u' },
        { "pace", required_argument, NULL, 'p' },   { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
    };
    struct common c = { 0 };
    c.sets = calloc((size_t)argc + 1, sizeof *c.sets);
    const char *output = NULL;
    sp_time until = 0;
    double pace = 0;
    bool quiet = false;
    int opt, ret = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': output = optarg; break;
        case 's': c.seed = optarg; break;
        case 'S': c.sets[c.n_sets++] = optarg; break;
        case 'u':
            if (sp_parse_duration(optarg, &until) || until <= 0) {
                ret = usage_error("run", "--until: expected a positive duration such as 6h, got '%s'", optarg);
                goto out;
            }
            break;
        case 'p': {
            char *end;
            pace = strtod(optarg, &end);
            if (*end || !(pace > 0) || !isfinite(pace)) {
                ret = usage_error("run", "--pace: expected a positive number, got '%s'", optarg);
                goto out;
            }
            break;
        }
        case 'q': quiet = true; break;
        case 'h': fputs(usage_run, stdout); goto out;
        case ':': ret = usage_error("run", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = usage_error("run", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) ret = usage_error("run", "missing SCENARIO.yaml");
        else ret = usage_error("run", "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    c.scenario = argv[optind];

    struct sp_scenario *sc = NULL;
    struct sp_world_cfg cfg;
    ret = load_scenario(&c, &sc, &cfg);
    if (ret) { sp_scenario_destroy(sc); goto out; }

    char default_out[PATH_MAX];
    if (!output) {
        snprintf(default_out, sizeof default_out, "runs/%s.h5", cfg.name);
        output = default_out;
        if (make_parent_dir(output)) {
            fprintf(stderr, "spiral run: cannot create directory for '%s': %s\n", output, strerror(errno));
            sp_scenario_destroy(sc);
            ret = EXIT_USAGE;
            goto out;
        }
    }
    /* Test-only (tests/test_sweep.c): crash like a buggy worker would, to
     * check that `spiral sweep` marks just that run failed. */
    const char *crash = getenv("SPIRAL_TEST_CRASH_ON_SEED");
    if (crash && *crash && strtoll(crash, NULL, 10) == (long long)cfg.seed) abort();
    struct progress_state ps = { false };
    struct sp_world_run req = { 0 };
    req.output = output;
    req.command_line = cmdline;
    req.run.until = until;
    req.run.pace = pace;
    req.run.handle_signals = true;
    if (!quiet && isatty(STDERR_FILENO)) {
        req.run.progress = progress_line;
        req.run.progress_arg = &ps;
    }
    struct sp_diag d = { 0 };
    enum sp_run_status st;
    int rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (ps.shown) fputs("\r\033[K", stderr);
    if (rc) {
        sp_diag_print(&d, stderr);
        ret = EXIT_USAGE;
    } else {
        if (d.n_errors) sp_diag_print(&d, stderr);
        if (st == SP_RUN_COMPLETE) {
            if (!quiet) printf("wrote %s (status complete)\n", output);
            ret = 0;
        } else if (st == SP_RUN_INTERRUPTED) {
            fprintf(stderr, "spiral run: interrupted; %s is readable with status \"interrupted\"\n", output);
            ret = EXIT_INTERRUPTED;
        } else {
            fprintf(stderr, "spiral run: failed; %s has status \"failed\"\n", output);
            ret = EXIT_RUNFAIL;
        }
    }
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
out:
    free(c.sets);
    return ret;
}

static int cmd_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "seed", required_argument, NULL, 's' }, { "set", required_argument, NULL, 'S' },
        { "print", no_argument, NULL, 'P' },      { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct common c = { 0 };
    c.sets = calloc((size_t)argc + 1, sizeof *c.sets);
    bool print = false;
    int opt, ret = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': c.seed = optarg; break;
        case 'S': c.sets[c.n_sets++] = optarg; break;
        case 'P': print = true; break;
        case 'h': fputs(usage_validate, stdout); goto out;
        case ':': ret = usage_error("validate", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = usage_error("validate", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) ret = usage_error("validate", "missing SCENARIO.yaml");
        else ret = usage_error("validate", "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    c.scenario = argv[optind];
    struct sp_scenario *sc = NULL;
    struct sp_world_cfg cfg;
    ret = load_scenario(&c, &sc, &cfg);
    if (!ret) {
        /* Building the world runs every module's init: catches what only
         * shows up when the pieces meet. */
        struct sp_diag d = { 0 };
        struct sp_sim *sim = NULL;
        if (sp_world_build(&sim, &cfg, &d)) {
            sp_diag_print(&d, stderr);
            ret = EXIT_USAGE;
        } else if (print) {
            char *y = sp_scenario_emit(sc);
            if (y) fputs(y, stdout);
            free(y);
        } else {
            char h[32];
            printf("%s: ok (scenario '%s', %zu tokens, %zu entities, horizon %s, seed %lld)\n",
                   c.scenario, cfg.name, cfg.n_tokens, sp_sim_entity_count(sim),
                   sp_format_duration(cfg.horizon, h, sizeof h), (long long)cfg.seed);
        }
        sp_sim_destroy(sim);
        sp_diag_release(&d);
    }
    sp_scenario_destroy(sc);
out:
    free(c.sets);
    return ret;
}

static int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage_info, stdout);
        return 0;
    }
    if (argc < 2) return usage_error("info", "missing FILE.h5");
    if (argc > 2) return usage_error("info", "unexpected argument '%s'", argv[2]);
    if (argv[1][0] == '-') return usage_error("info", "unknown option '%s'", argv[1]);
    return sp_info_print(argv[1], stdout, stderr) ? EXIT_USAGE : 0;
}

static int cmd_types(int argc, char **argv)
{
    const struct sp_registry *reg = sp_registry_builtin();
    if (argc == 2 && !strcmp(argv[1], "--markdown")) {
        sp_schema_markdown(stdout, sp_world_schema(), reg);
        return 0;
    }
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage_types, stdout);
        return 0;
    }
    if (argc != 1) return usage_error("types", "unexpected argument '%s'", argv[1]);
    for (size_t i = 0; i < sp_registry_count(reg); i++) {
        const struct sp_module_ops *o = sp_registry_get(reg, i);
        printf("%-12s %-12s %s\n", o->kind, o->type, o->summary);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("spiral %s (git %s)\n", SPIRAL_VERSION, SPIRAL_GIT_SHA);
        return 0;
    }
    if (!strcmp(cmd, "run")) {
        /* Joined before getopt permutes argv. */
        char *cmdline = join_argv(argc, argv);
        int rc = cmd_run(argc - 1, argv + 1, cmdline);
        free(cmdline);
        return rc;
    }
    if (!strcmp(cmd, "sweep") || !strcmp(cmd, "stress")) {
        char *cmdline = join_argv(argc, argv);
        int rc = !strcmp(cmd, "sweep") ? sp_cmd_sweep(argc - 1, argv + 1, cmdline)
                                       : sp_cmd_stress(argc - 1, argv + 1, cmdline);
        free(cmdline);
        return rc;
    }
    if (!strcmp(cmd, "validate")) return cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "types")) return cmd_types(argc - 1, argv + 1);
    static const char *const cmds[] = { "run", "validate", "sweep", "stress", "info", "types",
                                           "help", "version" };
    const char *near = sp_suggest(cmd, cmds, sizeof cmds / sizeof cmds[0]);
    if (near) {
        fprintf(stderr, "spiral: unknown command '%s' (did you mean '%s'?)\nTry 'spiral --help'.\n", cmd, near);
        return EXIT_USAGE;
    }
    return usage_error(NULL, "unknown command '%s'", cmd);
}
