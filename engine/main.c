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
#include "spiral/snapshot.h"
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
    "  resume SNAPSHOT.snap    continue a run (or branch a what-if) from a checkpoint\n"
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
    "      --counterfactual none|no-feedback\n"
    "                      shorthand for --set counterfactual=...: no-feedback sends every\n"
    "                      liquidation sale to a sink at the reference price (no slippage)\n"
    "      --amplification first run the no-feedback twin (same seed and overrides) to\n"
    "                      OUT_nofeedback.h5, then this run, whose /summary gets\n"
    "                      amplification, amplification_MARKET (max drawdown with feedback\n"
    "                      / without) and drawdown_nofeedback_MARKET\n"
    "      --discard-twin  with --amplification: write no file for the twin\n"
    "      --checkpoint-every T\n"
    "                      write a snapshot of the whole state every T of simulated\n"
    "                      time (e.g. 6h) to DIR/NAME@T.snap, for `spiral resume`\n"
    "      --checkpoint-at T  a snapshot at time T (repeatable)\n"
    "      --checkpoint-dir DIR\n"
    "                      where snapshots go (default: OUTPUT without .h5 + .ckpt/)\n"
    "  -q, --quiet         print nothing on success\n"
    "  -h, --help          show this help\n"
    "\n"
    "SIGINT/SIGTERM stop at the next batch of events and close the file with\n"
    "status \"interrupted\" (exit 130); a second signal exits at once.\n";

static const char usage_resume[] =
    "Usage: spiral resume SNAPSHOT.snap [options]\n"
    "\n"
    "Continue a run from a snapshot written by --checkpoint-every/--checkpoint-at.\n"
    "The world is rebuilt from the scenario stored in the snapshot and its state\n"
    "restored exactly; the output holds the rows after the snapshot's time, so the\n"
    "parent's rows up to then followed by these equal the uninterrupted run.\n"
    "With --set it is a branch: the overrides apply from the snapshot's time on,\n"
    "and the output records parent_snapshot, resumed_at and overrides.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   output (default runs/NAME.resume@T.h5, or\n"
    "                      runs/NAME.branch@T.h5 with --set)\n"
    "      --until T       stop at simulated time T; default the horizon\n"
    "      --set KEY=VAL   override a scenario key from the snapshot on (repeatable;\n"
    "                      the entities and tokens must stay the same)\n"
    "      --checkpoint-every T, --checkpoint-at T, --checkpoint-dir DIR\n"
    "                      as for `spiral run`\n"
    "  -q, --quiet         print nothing on success\n"
    "\n"
    "A damaged, truncated or foreign snapshot is refused with exit 2.\n";

static const char usage_validate[] =
    "Usage: spiral validate SCENARIO.yaml [--seed N] [--set KEY=VAL ...] [--print]\n"
    "\n"
    "Check a scenario and its overrides without running it.  Every error is\n"
    "reported as file:line:column: key: message.  Exit 0 if valid, 2 if not.\n"
    "\n"
    "  --print   print the fully resolved scenario (defaults filled in) as YAML\n";

static const char usage_info[] =
    "Usage: spiral info FILE.h5 | FILE.snap\n"
    "\n"
    "Print a short summary of a run: status, seed, scenario, tables with their\n"
    "row counts and time spans, and the /summary metrics.  Of a snapshot: its\n"
    "format and spiral versions, scenario, seed, time, entities per module type,\n"
    "tokens and pending events (the file is checked in full first).\n";

static const char usage_types[] =
    "Usage: spiral types [--markdown]\n"
    "\n"
    "List the registered module types.  --markdown prints the full scenario\n"
    "reference (the source of docs/scenario.md).\n";

int sp_cli_usage_error(const char *cmd, const char *fmt, ...)
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
            return sp_cli_usage_error("run", "--seed: expected a non-negative integer, got '%s'", c->seed);
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

/* How a run or resume ended, said once: the errors of a run that never
 * started (fail = its exit code), or the file's status and the exit code
 * for it.  `note` follows "status complete" in the success line. */
static int run_outcome(const char *cmd, int fail, enum sp_run_status st, const struct sp_diag *d,
                       const char *output, const char *note, bool quiet)
{
    if (fail) {
        sp_diag_print(d, stderr);
        if (d->n_errors > 1) fprintf(stderr, "%d errors.\n", d->n_errors);
        return fail;
    }
    if (d->n_errors) sp_diag_print(d, stderr);
    if (st == SP_RUN_COMPLETE) {
        if (!quiet) printf("wrote %s (status complete%s)\n", output, note);
        return 0;
    }
    if (st == SP_RUN_INTERRUPTED) {
        fprintf(stderr, "spiral %s: interrupted; %s is readable with status \"interrupted\"\n",
                cmd, output);
        return EXIT_INTERRUPTED;
    }
    fprintf(stderr, "spiral %s: failed; %s has status \"failed\"\n", cmd, output);
    return EXIT_RUNFAIL;
}

/* ---- checkpoints (run and resume) ------------------------------------------ */

struct ckpt_opts {
    sp_time every;
    sp_time *at;
    size_t n_at;
    const char *dir;
    char dir_buf[PATH_MAX];
    bool quiet;
};

/* --checkpoint-every / --checkpoint-at / --checkpoint-dir; 1 if handled. */
static int ckpt_option(struct ckpt_opts *k, int opt, const char *arg, const char *cmd, int *ret)
{
    sp_time t;
    switch (opt) {
    case 'E': case 'T':
        if (sp_parse_duration(arg, &t) || t <= 0) {
            *ret = sp_cli_usage_error(cmd, "--checkpoint-%s: expected a positive duration such as 6h, "
                               "got '%s'", opt == 'E' ? "every" : "at", arg);
            return 1;
        }
        if (opt == 'E') k->every = t;
        else k->at[k->n_at++] = t;
        return 1;
    case 'K': k->dir = arg; return 1;
    default: return 0;
    }
}

static void ckpt_written(void *arg, const char *path, sp_time t)
{
    const struct ckpt_opts *k = arg;
    char buf[64];
    if (!k->quiet) printf("checkpoint %s (t = %s)\n", path, sp_format_duration(t, buf, sizeof buf));
    fflush(stdout);
}

/* Fill the request's checkpoint fields; the default directory is the
 * output's path without its extension + ".ckpt". */
static void ckpt_request(struct ckpt_opts *k, struct sp_world_run *req, const char *output)
{
    if (!k->every && !k->n_at) return;
    if (!k->dir) {
        const char *slash = strrchr(output, '/');
        const char *dot = strrchr(output, '.');
        size_t n = dot && (!slash || dot > slash + 1) ? (size_t)(dot - output) : strlen(output);
        snprintf(k->dir_buf, sizeof k->dir_buf, "%.*s.ckpt", (int)n, output);
        k->dir = k->dir_buf;
    }
    req->checkpoint_every = k->every;
    req->checkpoint_at = k->at;
    req->n_checkpoint_at = k->n_at;
    req->checkpoint_dir = k->dir;
    req->on_checkpoint = ckpt_written;
    req->on_checkpoint_arg = k;
}

/* ---- --amplification ------------------------------------------------------ */

struct summary_copy {
    char **name;
    double *value;
    size_t n;
    bool nomem;
};

static void summary_copy_release(struct summary_copy *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->name[i]);
    free(c->name);
    free(c->value);
    memset(c, 0, sizeof *c);
}

/* on_summary of the twin: keep its metrics. */
static void twin_capture(void *arg, struct sp_sim *sim)
{
    struct summary_copy *c = arg;
    size_t n = sp_sim_summary_count(sim);
    c->name = calloc(n + 1, sizeof *c->name);
    c->value = calloc(n + 1, sizeof *c->value);
    if (!c->name || !c->value) { c->nomem = true; return; }
    for (size_t i = 0; i < n; i++) {
        const char *k = sp_sim_summary_get(sim, i, &c->value[i]);
        if (!(c->name[i] = strdup(k))) { c->nomem = true; return; }
        c->n = i + 1;
    }
}

static bool summary_find(const struct summary_copy *c, const char *name, double *v)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name)) { *v = c->value[i]; return true; }
    return false;
}

static bool scalar_is_false(const struct sp_node *n)
{
    static const char *const f[] = { "false", "False", "FALSE", "no", "No", "off", "Off" };
    if (!n || !n->value) return false;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!strcmp(n->value, f[i])) return true;
    return false;
}

static const char *module_name(const struct sp_module_cfg *m, char *buf, size_t size)
{
    if (m->name) return m->name;
    if (m->ops && m->ops->default_name) return m->ops->default_name(m->cfg, buf, size);
    return NULL;
}

/* The market the first lending protocol's first collateral oracle reads:
 * the protocol's first `collaterals` item (cdp) or first `assets` item
 * that is collateral (pool), its `oracle`, that oracle's `source.of` when
 * the source is spot, mid or twap, or the first such leg of a median.
 * NULL when there is none (no protocol, or the oracle reads a reference
 * process or a token's value). */
static const char *primary_market(const struct sp_world_cfg *cfg, char *buf, size_t size)
{
    if (!cfg->n_protocols || !cfg->protocols[0].node) return NULL;
    const struct sp_node *p = cfg->protocols[0].node, *item = NULL, *list;
    if ((list = sp_node_get(p, "collaterals"))) {
        item = sp_node_at(list, 0);
    } else if ((list = sp_node_get(p, "assets"))) {
        for (size_t i = 0; (item = sp_node_at(list, i)); i++)
            if (!scalar_is_false(sp_node_get(item, "collateral"))) break;
    }
    const struct sp_node *on = item ? sp_node_get(item, "oracle") : NULL;
    if (!on || !on->value) return NULL;
    for (size_t i = 0; i < cfg->n_oracles; i++) {
        char nb[128];
        const char *nm = module_name(&cfg->oracles[i], nb, sizeof nb);
        if (!nm || strcmp(nm, on->value) || !cfg->oracles[i].node) continue;
        const struct sp_node *src = sp_node_get(cfg->oracles[i].node, "source");
        const struct sp_node *legs = src ? sp_node_get(src, "sources") : NULL;
        for (size_t k = 0; src; k++) {
            const struct sp_node *leg = legs ? sp_node_at(legs, k) : (k ? NULL : src);
            if (!leg) break;
            const struct sp_node *ty = sp_node_get(leg, "type"), *of = sp_node_get(leg, "of");
            if (ty && ty->value && of && of->value &&
                (!strcmp(ty->value, "spot") || !strcmp(ty->value, "mid") ||
                 !strcmp(ty->value, "twap"))) {
                snprintf(buf, size, "%s", of->value);
                return buf;
            }
        }
        return NULL;
    }
    return NULL;
}

struct amp_ctx {
    const struct summary_copy *twin;
    const struct sp_world_cfg *cfg;
};

/* with / without: 0/0 is NaN, x/0 (x > 0) is +inf. */
static double amp_ratio(double with, double without)
{
    if (without == 0) return with == 0 ? NAN : INFINITY;
    return with / without;
}

/* on_summary of the main run: for every market with a max_drawdown_<market>
 * metric in both runs, drawdown_nofeedback_<market> and
 * amplification_<market>; then `amplification` for the primary market (or,
 * without one, the market with the largest drawdown with feedback; the
 * first in entity order on a tie). */
static void amp_write(void *arg, struct sp_sim *sim)
{
    const struct amp_ctx *a = arg;
    char pbuf[128];
    const char *primary = primary_market(a->cfg, pbuf, sizeof pbuf);
    double best_dd = -1, best_amp = NAN, primary_amp = NAN;
    bool have_primary = false, have_best = false;
    for (sp_id id = 0; id < sp_sim_entity_count(sim); id++) {
        const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
        if (!ops || strcmp(ops->kind, "market")) continue;
        const char *name = sp_sim_entity_name(sim, id);
        char key[300];
        snprintf(key, sizeof key, "max_drawdown_%s", name);
        double with = NAN, without;
        bool found = false;
        for (size_t i = 0; i < sp_sim_summary_count(sim) && !found; i++) {
            double v;
            if (!strcmp(sp_sim_summary_get(sim, i, &v), key)) { with = v; found = true; }
        }
        if (!found || !summary_find(a->twin, key, &without)) continue;
        double amp = amp_ratio(with, without);
        snprintf(key, sizeof key, "drawdown_nofeedback_%s", name);
        sp_sim_summary(sim, key, without);
        snprintf(key, sizeof key, "amplification_%s", name);
        sp_sim_summary(sim, key, amp);
        if (primary && !strcmp(primary, name)) { primary_amp = amp; have_primary = true; }
        if (with > best_dd) { best_dd = with; best_amp = amp; have_best = true; }
    }
    if (have_primary) sp_sim_summary(sim, "amplification", primary_amp);
    else if (have_best) sp_sim_summary(sim, "amplification", best_amp);
}

/* OUT.h5 -> OUT_nofeedback.h5 (OUT -> OUT_nofeedback.h5 without an extension). */
static char *twin_path(const char *output)
{
    size_t n = strlen(output);
    const char *slash = strrchr(output, '/');
    const char *dot = strrchr(output, '.');
    if (!dot || (slash && dot < slash) || dot == output || (slash && dot == slash + 1))
        dot = output + n;
    char *p = malloc(n + 32);
    if (!p) return NULL;
    sprintf(p, "%.*s_nofeedback%s", (int)(dot - output), output, *dot ? dot : ".h5");
    return p;
}

static int cmd_run(int argc, char **argv, const char *cmdline)
{
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' }, { "seed", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },    { "until", required_argument, NULL, 'u' },
        { "pace", required_argument, NULL, 'p' },   { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "counterfactual", required_argument, NULL, 'C' },
        { "amplification", no_argument, NULL, 'A' },
        { "discard-twin", no_argument, NULL, 'D' },
        { "checkpoint-every", required_argument, NULL, 'E' },
        { "checkpoint-at", required_argument, NULL, 'T' },
        { "checkpoint-dir", required_argument, NULL, 'K' }, { NULL, 0, NULL, 0 },
    };
    struct common c = { 0 };
    struct ckpt_opts ck = { 0 };
    ck.at = calloc((size_t)argc + 1, sizeof *ck.at);
    c.sets = calloc((size_t)argc + 2, sizeof *c.sets);
    /* --counterfactual X becomes --set counterfactual=X, in its place. */
    char **cf_sets = calloc((size_t)argc + 1, sizeof *cf_sets);
    size_t n_cf = 0;
    char *twin_out = NULL;
    struct summary_copy twin_sum = { 0 };
    const char *output = NULL;
    sp_time until = 0;
    double pace = 0;
    bool quiet = false, amplification = false, discard_twin = false;
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
                ret = sp_cli_usage_error("run", "--until: expected a positive duration such as 6h, got '%s'", optarg);
                goto out;
            }
            break;
        case 'p': {
            char *end;
            pace = strtod(optarg, &end);
            if (*end || !(pace > 0) || !isfinite(pace)) {
                ret = sp_cli_usage_error("run", "--pace: expected a positive number, got '%s'", optarg);
                goto out;
            }
            break;
        }
        case 'q': quiet = true; break;
        case 'C': {
            char *set = malloc(strlen(optarg) + sizeof "counterfactual=");
            if (!set || !cf_sets) { ret = EXIT_RUNFAIL; free(set); goto out; }
            sprintf(set, "counterfactual=%s", optarg);
            cf_sets[n_cf++] = set;
            c.sets[c.n_sets++] = set;
            break;
        }
        case 'A': amplification = true; break;
        case 'D': discard_twin = true; break;
        case 'E': case 'T': case 'K':
            ckpt_option(&ck, opt, optarg, "run", &ret);
            if (ret) goto out;
            break;
        case 'h': fputs(usage_run, stdout); goto out;
        case ':': ret = sp_cli_usage_error("run", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = sp_cli_usage_error("run", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) ret = sp_cli_usage_error("run", "missing SCENARIO.yaml");
        else ret = sp_cli_usage_error("run", "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    c.scenario = argv[optind];

    if (discard_twin && !amplification) {
        ret = sp_cli_usage_error("run", "--discard-twin applies only with --amplification");
        goto out;
    }
    struct sp_scenario *sc = NULL;
    struct sp_world_cfg cfg;
    ret = load_scenario(&c, &sc, &cfg);
    if (ret) { sp_scenario_destroy(sc); goto out; }
    if (amplification && cfg.counterfactual != SP_CF_NONE) {
        sp_scenario_destroy(sc);
        ret = sp_cli_usage_error("run", "--amplification compares this run with its no-feedback twin: "
                          "the run itself needs counterfactual: none (it is %s)",
                          sp_counterfactual_names[cfg.counterfactual]);
        goto out;
    }

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
    struct amp_ctx amp = { &twin_sum, &cfg };
    if (amplification) {
        /* The twin: the same file, seed and overrides, then counterfactual:
         * no-feedback (last, so it wins). */
        struct common tc = c;
        tc.sets[tc.n_sets++] = "counterfactual=no-feedback";
        struct sp_scenario *tsc = NULL;
        struct sp_world_cfg tcfg;
        ret = load_scenario(&tc, &tsc, &tcfg);
        if (ret) { sp_scenario_destroy(tsc); sp_scenario_destroy(sc); goto out; }
        twin_out = discard_twin ? NULL : twin_path(output);
        struct sp_world_run treq = { 0 };
        treq.output = twin_out;
        treq.command_line = cmdline;
        treq.run.until = until;
        treq.run.pace = pace;
        treq.run.handle_signals = true;
        treq.on_summary = twin_capture;
        treq.on_summary_arg = &twin_sum;
        if (!quiet && isatty(STDERR_FILENO)) {
            treq.run.progress = progress_line;
            treq.run.progress_arg = &ps;
        }
        struct sp_diag td = { 0 };
        enum sp_run_status tst = SP_RUN_FAILED;
        int trc = sp_world_run(tsc, &tcfg, &treq, &tst, &td);
        if (ps.shown) { fputs("\r\033[K", stderr); ps.shown = false; }
        sp_scenario_destroy(tsc);
        if (trc || tst != SP_RUN_COMPLETE || twin_sum.nomem) {
            sp_diag_print(&td, stderr);
            sp_diag_release(&td);
            sp_scenario_destroy(sc);
            bool intr = !trc && tst == SP_RUN_INTERRUPTED;
            ret = trc ? EXIT_USAGE : intr ? EXIT_INTERRUPTED : EXIT_RUNFAIL;
            fprintf(stderr, "spiral run: the no-feedback twin %s%s%s; the run itself was not "
                    "started\n", intr ? "was interrupted" : "failed",
                    twin_out && !trc ? ", see " : "", twin_out && !trc ? twin_out : "");
            goto out;
        }
        if (td.n_errors) sp_diag_print(&td, stderr);
        sp_diag_release(&td);
        if (!quiet && twin_out) printf("wrote %s (status complete, no-feedback twin)\n", twin_out);
    }
    struct sp_world_run req = { 0 };
    if (amplification) {
        req.on_summary = amp_write;
        req.on_summary_arg = &amp;
    }
    req.output = output;
    req.command_line = cmdline;
    req.run.until = until;
    req.run.pace = pace;
    req.run.handle_signals = true;
    if (!quiet && isatty(STDERR_FILENO)) {
        req.run.progress = progress_line;
        req.run.progress_arg = &ps;
    }
    ck.quiet = quiet;
    ckpt_request(&ck, &req, output);
    struct sp_diag d = { 0 };
    enum sp_run_status st;
    int rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (ps.shown) fputs("\r\033[K", stderr);
    ret = run_outcome("run", rc ? EXIT_USAGE : 0, st, &d, output, "", quiet);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
out:
    for (size_t i = 0; i < n_cf; i++) free(cf_sets[i]);
    free(cf_sets);
    free(twin_out);
    summary_copy_release(&twin_sum);
    free(c.sets);
    free(ck.at);
    return ret;
}

static int cmd_resume(int argc, char **argv, const char *cmdline)
{
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' }, { "set", required_argument, NULL, 'S' },
        { "until", required_argument, NULL, 'u' },  { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "checkpoint-every", required_argument, NULL, 'E' },
        { "checkpoint-at", required_argument, NULL, 'T' },
        { "checkpoint-dir", required_argument, NULL, 'K' }, { NULL, 0, NULL, 0 },
    };
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    size_t n_sets = 0;
    struct ckpt_opts ck = { 0 };
    ck.at = calloc((size_t)argc + 1, sizeof *ck.at);
    const char *output = NULL;
    sp_time until = 0;
    bool quiet = false;
    int opt, ret = 0;
    struct sp_snapshot *snap = NULL;
    if (!sets || !ck.at) { ret = EXIT_RUNFAIL; goto out; }
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': output = optarg; break;
        case 'S': sets[n_sets++] = optarg; break;
        case 'u':
            if (sp_parse_duration(optarg, &until) || until <= 0) {
                ret = sp_cli_usage_error("resume", "--until: expected a positive duration such as 6h, got '%s'", optarg);
                goto out;
            }
            break;
        case 'q': quiet = true; break;
        case 'E': case 'T': case 'K':
            ckpt_option(&ck, opt, optarg, "resume", &ret);
            if (ret) goto out;
            break;
        case 'h': fputs(usage_resume, stdout); goto out;
        case ':': ret = sp_cli_usage_error("resume", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = sp_cli_usage_error("resume", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) ret = sp_cli_usage_error("resume", "missing SNAPSHOT.snap");
        else ret = sp_cli_usage_error("resume", "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    const char *path = argv[optind];
    struct sp_diag d = { 0 };
    int rc = sp_snapshot_load(&snap, path, &d);
    if (rc) {
        sp_diag_print(&d, stderr);
        sp_diag_release(&d);
        ret = rc == SP_ENOMEM ? EXIT_RUNFAIL : EXIT_USAGE;   /* unreadable or damaged: bad input */
        goto out;
    }
    if (strcmp(sp_snapshot_spiral_version(snap), SPIRAL_VERSION))
        fprintf(stderr, "spiral resume: warning: %s was written by spiral %s, this is %s; the "
                "format is the same (version %u), and any module state that no longer fits "
                "is refused\n", path, sp_snapshot_spiral_version(snap), SPIRAL_VERSION,
                SP_SNAPSHOT_VERSION);
    /* The scenario name, for default paths (validated again when the world
     * is built). */
    char name[256], default_out[PATH_MAX], tbuf[64];
    sp_snapshot_name(snap, name, sizeof name);
    if (!output) {
        snprintf(default_out, sizeof default_out, "runs/%s.%s@%s.h5", name,
                 n_sets ? "branch" : "resume",
                 sp_format_duration(sp_snapshot_time(snap), tbuf, sizeof tbuf));
        output = default_out;
        if (make_parent_dir(output)) {
            fprintf(stderr, "spiral resume: cannot create directory for '%s': %s\n", output, strerror(errno));
            ret = EXIT_USAGE;
            goto out;
        }
    }
    struct progress_state ps = { false };
    struct sp_world_run req = { 0 };
    req.output = output;
    req.command_line = cmdline;
    req.run.until = until;
    req.run.handle_signals = true;
    req.resume_path = path;
    req.sets = sets;
    req.n_sets = n_sets;
    if (!quiet && isatty(STDERR_FILENO)) {
        req.run.progress = progress_line;
        req.run.progress_arg = &ps;
    }
    ck.quiet = quiet;
    ckpt_request(&ck, &req, output);
    enum sp_run_status st;
    rc = sp_world_resume(snap, sp_registry_builtin(), &req, &st, &d);
    if (ps.shown) fputs("\r\033[K", stderr);
    char note[96];
    snprintf(note, sizeof note, ", %s from t = %s", n_sets ? "branched" : "resumed",
             sp_format_duration(sp_snapshot_time(snap), tbuf, sizeof tbuf));
    ret = run_outcome("resume", rc ? (rc == SP_ENOMEM ? EXIT_RUNFAIL : EXIT_USAGE) : 0, st, &d,
                      output, note, quiet);
    sp_diag_release(&d);
out:
    sp_snapshot_destroy(snap);
    free(sets);
    free(ck.at);
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
        case ':': ret = sp_cli_usage_error("validate", "option '%s' needs a value", argv[optind - 1]); goto out;
        default: ret = sp_cli_usage_error("validate", "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) ret = sp_cli_usage_error("validate", "missing SCENARIO.yaml");
        else ret = sp_cli_usage_error("validate", "unexpected argument '%s'", argv[optind + 1]);
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
    if (argc < 2) return sp_cli_usage_error("info", "missing FILE.h5");
    if (argc > 2) return sp_cli_usage_error("info", "unexpected argument '%s'", argv[2]);
    if (argv[1][0] == '-') return sp_cli_usage_error("info", "unknown option '%s'", argv[1]);
    /* A snapshot (spiral run --checkpoint-every) or a run's HDF5 file. */
    FILE *f = fopen(argv[1], "rb");
    char magic[8] = { 0 };
    bool snap = f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, SP_SNAPSHOT_MAGIC, 8);
    if (f) fclose(f);
    if (snap) {
        struct sp_snapshot *s;
        struct sp_diag d = { 0 };
        int rc = sp_snapshot_load(&s, argv[1], &d);
        if (rc) sp_diag_print(&d, stderr);
        else sp_snapshot_print_info(s, stdout);
        sp_diag_release(&d);
        sp_snapshot_destroy(s);
        return rc ? EXIT_USAGE : 0;
    }
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
    if (argc != 1) return sp_cli_usage_error("types", "unexpected argument '%s'", argv[1]);
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
    if (!strcmp(cmd, "resume")) {
        char *cmdline = join_argv(argc, argv);
        int rc = cmd_resume(argc - 1, argv + 1, cmdline);
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
    static const char *const cmds[] = { "run", "resume", "validate", "sweep", "stress", "info", "types",
                                           "help", "version" };
    const char *near = sp_suggest(cmd, cmds, sizeof cmds / sizeof cmds[0]);
    if (near) {
        fprintf(stderr, "spiral: unknown command '%s' (did you mean '%s'?)\nTry 'spiral --help'.\n", cmd, near);
        return EXIT_USAGE;
    }
    return sp_cli_usage_error(NULL, "unknown command '%s'", cmd);
}
