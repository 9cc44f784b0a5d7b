/*
 * sweep.c — `spiral sweep SWEEP.yaml`: a scenario over a grid of parameters
 * and replicate seeds, run on worker processes, summarised in one file.
 *
 * A sweep file names a base scenario, overrides applied to every arm
 * (`set:`), axes (Cartesian; a `zip:` group varies its keys together) and
 * replicate seeds.  Arm a, replicate k is the base with the arm's overrides
 * and seed k — the same seed in every arm, so arms see common random
 * numbers (streams are keyed by seed and entity name).  Every arm is
 * validated before anything runs.  Runs are `spiral run` processes (see
 * sweep-internal.h for the pool), files DIR/runs/<arm>_r<k>.h5; a complete
 * file whose config_hash matches is reused, which makes a sweep resumable.
 * At the end DIR/summary.h5 gets one row per run (written to a temporary
 * name, then renamed: readers never see half a summary).
 *
 * The pool lives here too and is shared with stress.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/version.h"
#include "spiral/world.h"
#include "sweep-internal.h"

enum { EXIT_RUNFAIL = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

const char *const sw_status_names[] = { "complete", "failed", "interrupted", "not_run", NULL };

/* ---- small helpers ---------------------------------------------------- */

/* The one piece of process-wide state: signals counted by the handler. */
static volatile sig_atomic_t n_signals;

static void on_signal(int sig)
{
    (void)sig;
    n_signals++;
}

void sw_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool sw_interrupted(void) { return n_signals > 0; }

int sw_default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double sw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *sw_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    if (!s) abort();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int sw_mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

static const char *fmt_secs(double s, char *buf, size_t size)
{
    if (!isfinite(s) || s < 0) snprintf(buf, size, "?");
    else if (s < 60) snprintf(buf, size, "%.1fs", s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

/* ---- jobs ------------------------------------------------------------- */

int sw_job_prepare(struct sw_job *j, bool build, struct sp_diag *d)
{
    struct sp_scenario *sc = NULL;
    int rc = sp_scenario_load(&sc, j->scenario, d);
    char buf[64];
    snprintf(buf, sizeof buf, "seed=%lld", (long long)j->seed);   /* as `spiral run --seed` */
    if (!rc) rc = sp_scenario_set(sc, buf, d);
    for (size_t i = 0; !rc && i < j->n_sets; i++) rc = sp_scenario_set(sc, j->sets[i], d);
    struct sp_world_cfg cfg;
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, d);
    if (!rc) {
        char *y = sp_scenario_emit(sc);
        if (!y) rc = SP_ENOMEM;
        else snprintf(j->hash, sizeof j->hash, "%016llx", (unsigned long long)sp_rng_key(y));
        free(y);
    }
    if (!rc && build) {
        struct sp_sim *sim = NULL;
        rc = sp_world_build(&sim, &cfg, d);
        sp_sim_destroy(sim);
    }
    sp_scenario_destroy(sc);
    return rc;
}

void sw_job_paths(struct sw_job *j, const char *runs_dir, const char *logs_dir)
{
    free(j->output);
    free(j->log);
    j->output = sw_strdup_printf("%s/%s.h5", runs_dir, j->id);
    j->log = sw_strdup_printf("%s/%s.log", logs_dir, j->id);
}

static void free_metrics(struct sw_job *j)
{
    for (size_t i = 0; i < j->n_metrics; i++) free(j->metrics[i].name);
    free(j->metrics);
    j->metrics = NULL;
    j->n_metrics = 0;
}

void sw_job_release(struct sw_job *j)
{
    free(j->output);
    free(j->log);
    free_metrics(j);
    j->output = j->log = NULL;
}

bool sw_job_metric(const struct sw_job *j, const char *name, double *out)
{
    for (size_t i = 0; i < j->n_metrics; i++)
        if (!strcmp(j->metrics[i].name, name)) { *out = j->metrics[i].value; return true; }
    return false;
}

/* A root string attribute (variable- or fixed-length) into buf; false if absent. */
static bool read_str_attr(hid_t f, const char *name, char *buf, size_t size)
{
    buf[0] = 0;
    if (H5Aexists(f, name) <= 0) return false;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return false;
    hid_t ft = H5Aget_type(a);
    bool ok = false;
    if (H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5Tget_cset(ft));
            char *s = NULL;
            if (H5Aread(a, t, &s) >= 0 && s) {
                snprintf(buf, size, "%s", s);
                H5free_memory(s);
                ok = true;
            }
            H5Tclose(t);
        } else {
            size_t n = H5Tget_size(ft);
            char *s = calloc(n + 1, 1);
            if (s && H5Aread(a, ft, s) >= 0) { snprintf(buf, size, "%s", s); ok = true; }
            free(s);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return ok;
}

static herr_t collect_metric(hid_t loc, const char *name, const H5A_info_t *info, void *arg)
{
    (void)info;
    struct sw_job *j = arg;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t ft = H5Aget_type(a);
    H5T_class_t cl = H5Tget_class(ft);
    double v;
    if ((cl == H5T_FLOAT || cl == H5T_INTEGER) && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) {
        struct sw_metric *m = realloc(j->metrics, (j->n_metrics + 1) * sizeof *m);
        if (m) {
            j->metrics = m;
            m[j->n_metrics].name = strdup(name);
            m[j->n_metrics].value = v;
            j->n_metrics++;
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return 0;
}

/* Read a run file: status, config_hash, wall_seconds and /summary.  Returns
 * false when the file is absent or unreadable. */
static bool read_run_file(struct sw_job *j, char *status, char *hash, size_t size, bool metrics)
{
    status[0] = hash[0] = 0;
    if (access(j->output, F_OK) != 0) return false;
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    bool ok = false;
    if (H5Fis_hdf5(j->output) > 0) {
        hid_t f = H5Fopen(j->output, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            ok = true;
            read_str_attr(f, "status", status, size);
            read_str_attr(f, "config_hash", hash, size);
            if (metrics) {
                free_metrics(j);
                if (H5Lexists(f, "summary", H5P_DEFAULT) > 0) {
                    hid_t g = H5Gopen2(f, "summary", H5P_DEFAULT);
                    if (g >= 0) {
                        hsize_t idx = 0;
                        H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_metric, j);
                        H5Gclose(g);
                    }
                }
                if (H5Aexists(f, "wall_seconds") > 0) {
                    hid_t a = H5Aopen(f, "wall_seconds", H5P_DEFAULT);
                    double w;
                    if (a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &w) >= 0 && j->resumed)
                        j->wall_seconds = w;
                    if (a >= 0) H5Aclose(a);
                }
            }
            H5Fclose(f);
        }
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return ok;
}

/* ---- the pool ----------------------------------------------------------- */

static const char *self_exe(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n > 0) path[n] = 0;
        else snprintf(path, sizeof path, "/proc/self/exe");
    }
    return path;
}

static pid_t launch(struct sw_job *j)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%lld", (long long)j->seed);
    size_t argc = 0;
    const char **argv = calloc(10 + 2 * j->n_sets, sizeof *argv);
    if (!argv) return -1;
    argv[argc++] = "spiral";
    argv[argc++] = "run";
    argv[argc++] = j->scenario;
    argv[argc++] = "-o";
    argv[argc++] = j->output;
    argv[argc++] = "--quiet";
    argv[argc++] = "--seed";
    argv[argc++] = seed;
    for (size_t i = 0; i < j->n_sets; i++) {
        argv[argc++] = "--set";
        argv[argc++] = j->sets[i];
    }
    argv[argc] = NULL;
    const char *exe = self_exe();
    unlink(j->output);      /* a crash before the worker creates it leaves no stale file */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Own process group: a terminal's Ctrl-C reaches the sweep only,
         * which forwards it once; and die with the sweep. */
        setpgid(0, 0);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int fd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) { dup2(in, 0); close(in); }
        execv(exe, (char *const *)argv);
        fprintf(stderr, "spiral sweep: cannot execute %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    free(argv);
    return pid;
}

static void progress(struct sw_pool *p, size_t running, bool force)
{
    static double last;
    if (p->quiet || !isatty(STDERR_FILENO)) return;
    double now = sw_now();
    if (!force && now - last < 0.25) return;
    last = now;
    double el = now - p->t0;
    size_t remaining = p->total - p->done;
    double eta = p->launched_done ? el / (double)p->launched_done * (double)remaining : NAN;
    char a[32], b[32];
    fprintf(stderr, "\r  %s: %zu/%zu done (%zu resumed), %zu failed, %zu running, %s elapsed, ETA %s\033[K",
            p->what, p->done, p->total, p->resumed, p->failed, running, fmt_secs(el, a, sizeof a),
            remaining ? fmt_secs(eta, b, sizeof b) : "0s");
    fflush(stderr);
    p->shown = true;
}

void sw_pool_done(struct sw_pool *p)
{
    if (p->shown) fputs("\r\033[K", stderr);
    p->shown = false;
}

static void finished(struct sw_pool *p, struct sw_job *j, size_t running)
{
    p->done++;
    if (j->status == SW_FAILED) p->failed++;
    if (!p->quiet && !isatty(STDERR_FILENO)) {
        char w[32];
        fprintf(stderr, "  [%zu/%zu] %s %s%s (%s)\n", p->done, p->total, j->id,
                sw_status_names[j->status], j->resumed ? ", resumed" : "",
                fmt_secs(j->wall_seconds, w, sizeof w));
    } else if (!p->quiet && j->status == SW_FAILED) {
        sw_pool_done(p);
        fprintf(stderr, "  %s failed (exit %d): see %s\n", j->id, j->exit_code, j->log);
    }
    progress(p, running, true);
}

/* Reuse a complete file of this very job, if there is one. */
static bool try_resume(struct sw_job *j)
{
    char status[64], hash[64];
    if (!read_run_file(j, status, hash, sizeof status, false)) return false;
    if (strcmp(status, "complete") || strcmp(hash, j->hash)) return false;
    j->resumed = true;
    j->status = SW_COMPLETE;
    j->exit_code = 0;
    read_run_file(j, status, hash, sizeof status, true);
    return true;
}

static void reap(struct sw_job *j, int wst, bool forwarded)
{
    j->pid = 0;
    j->wall_seconds = sw_now() - j->t_start;
    if (WIFEXITED(wst)) j->exit_code = WEXITSTATUS(wst);
    else j->exit_code = 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    if (WIFSIGNALED(wst)) {
        FILE *f = fopen(j->log, "a");
        if (f) {
            fprintf(f, "spiral: the worker was killed by signal %d (%s)\n", WTERMSIG(wst),
                    strsignal(WTERMSIG(wst)));
            fclose(f);
        }
    }
    /* The file decides first: a worker can be signalled after it closed a
     * complete file (between the close and its exit). */
    char status[64], hash[64];
    read_run_file(j, status, hash, sizeof status, true);
    if (!strcmp(status, "complete") && !strcmp(hash, j->hash)) {
        j->status = SW_COMPLETE;
    } else if (j->exit_code == 0) {
        j->status = SW_FAILED;
    } else if (j->exit_code == EXIT_INTERRUPTED || (forwarded && WIFSIGNALED(wst))) {
        j->status = SW_INTERRUPTED;
    } else {
        j->status = SW_FAILED;
    }
    if (j->status != SW_COMPLETE) free_metrics(j);
}

bool sw_pool_run(struct sw_pool *p, struct sw_job **jobs, size_t n)
{
    if (p->t0 == 0) p->t0 = sw_now();
    if (p->jobs < 1) p->jobs = 1;
    /* Workers compress inline (recorder.c, "Inline mode"): a run with its own
     * writer thread keeps ~1.4 cores busy, so N of them on N cores contend
     * and -j 2 gained only 1.27x.  Inherited through exec; the run files are
     * identical.  A value already in the environment wins (e.g. =1 to
     * compare). */
    setenv("SPIRAL_RECORDER_THREADS", "0", 0);
    struct sw_job **running = calloc((size_t)p->jobs, sizeof *running);
    if (!running) abort();
    size_t n_running = 0, next = 0;
    int forwarded = 0;
    for (size_t i = 0; i < n; i++) {
        jobs[i]->status = SW_NOT_RUN;
        jobs[i]->exit_code = -1;
        jobs[i]->resumed = false;
        jobs[i]->wall_seconds = NAN;
    }
    for (;;) {
        while (!sw_interrupted() && next < n && n_running < (size_t)p->jobs) {
            struct sw_job *j = jobs[next++];
            if (try_resume(j)) {
                p->resumed++;
                finished(p, j, n_running);
                continue;
            }
            j->t_start = sw_now();
            j->pid = launch(j);
            if (j->pid < 0) {
                j->pid = 0;
                j->status = SW_FAILED;
                j->exit_code = 127;
                finished(p, j, n_running);
                continue;
            }
            for (int s = 0; s < p->jobs; s++)
                if (!running[s]) { running[s] = j; break; }
            n_running++;
        }
        if (n_running == 0) break;
        /* Forward each signal the sweep got, once, to every worker. */
        while (forwarded < n_signals) {
            forwarded++;
            for (int s = 0; s < p->jobs; s++)
                if (running[s]) kill(running[s]->pid, SIGINT);
        }
        int wst;
        pid_t pid = waitpid(-1, &wst, WNOHANG);
        if (pid > 0) {
            for (int s = 0; s < p->jobs; s++)
                if (running[s] && running[s]->pid == pid) {
                    struct sw_job *j = running[s];
                    running[s] = NULL;
                    n_running--;
                    reap(j, wst, forwarded > 0);
                    p->launched_done++;
                    finished(p, j, n_running);
                    break;
                }
            continue;
        }
        if (pid < 0 && errno == ECHILD) break;
        progress(p, n_running, false);
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    free(running);
    return sw_interrupted();
}

/* ---- the sweep file ----------------------------------------------------- */

struct axis {
    const char *key;
    const struct sp_node *key_node, *values_node;
    size_t n;                 /* values */
    char **text;              /* each value as YAML flow text */
    char **assign;            /* "key=text" */
    const struct sp_node **value_nodes;
    bool numeric;
    double *num;
    int group;                /* dimension index (zip members share one) */
};

struct sweep {
    const char *path;
    struct sp_scenario *file;    /* the sweep file's tree */
    char *base;
    char **sets;                 /* "key=text" of `set:` */
    size_t n_sets;
    const struct sp_node *set_node;
    struct axis *axes;
    size_t n_axes;
    size_t n_groups;
    size_t *group_n;             /* values per dimension */
    int64_t *seeds;
    size_t n_seeds;
    const char *output;          /* from the file, relative to it (resolved) */
    char *output_resolved;
};

/* A node as YAML flow text: scalars as written (re-quoted if they were). */
static void flow(const struct sp_node *n, char **buf, size_t *len, size_t *cap)
{
    size_t need = *len + (n->value ? 2 * strlen(n->value) : 0) + (n->key ? strlen(n->key) : 0) + 16;
    if (need > *cap) {
        *cap = 2 * need + 64;
        *buf = realloc(*buf, *cap);
        if (!*buf) abort();
    }
    char *o = *buf + *len;
    if (n->kind == SP_NODE_SCALAR) {
        const char *v = n->value ? n->value : "";
        if (n->flags & SP_NODE_QUOTED) {
            *o++ = '\'';
            for (const char *q = v; *q; q++) {
                if (*q == '\'') *o++ = '\'';
                *o++ = *q;
            }
            *o++ = '\'';
        } else {
            o += sprintf(o, "%s", v);
        }
        *o = 0;
        *len = (size_t)(o - *buf);
        return;
    }
    bool map = n->kind == SP_NODE_MAP;
    *o++ = map ? '{' : '[';
    *len = (size_t)(o - *buf);
    for (const struct sp_node *c = n->child; c; c = c->next) {
        if (*cap < *len + (c->key ? strlen(c->key) : 0) + 8) {
            *cap = 2 * (*len + (c->key ? strlen(c->key) : 0) + 8);
            *buf = realloc(*buf, *cap);
            if (!*buf) abort();
        }
        if (c != n->child) { memcpy(*buf + *len, ", ", 2); *len += 2; }
        if (map) *len += (size_t)sprintf(*buf + *len, "%s: ", c->key ? c->key : "");
        flow(c, buf, len, cap);
    }
    if (*cap < *len + 2) { *cap = *len + 16; *buf = realloc(*buf, *cap); if (!*buf) abort(); }
    (*buf)[(*len)++] = map ? '}' : ']';
    (*buf)[*len] = 0;
}

static char *flow_text(const struct sp_node *n)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    flow(n, &buf, &len, &cap);
    return buf ? buf : strdup("");
}

/* A scalar axis value as a number: plain numbers, "30%", durations (s). */
static bool scalar_number(const struct sp_node *n, double *out)
{
    if (n->kind != SP_NODE_SCALAR || (n->flags & SP_NODE_QUOTED) || !n->value || !*n->value)
        return false;
    char *end;
    double v = strtod(n->value, &end);
    if (!*end && isfinite(v)) { *out = v; return true; }
    if (strchr(n->value, '%') && sp_parse_fraction(n->value, &v) == 0) { *out = v; return true; }
    sp_time t;
    if (sp_parse_duration(n->value, &t) == 0) { *out = sp_time_sec(t); return true; }
    return false;
}

static const char *dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, size, ".");
    else if (slash == path) snprintf(buf, size, "/");
    else snprintf(buf, size, "%.*s", (int)(slash - path), path);
    return buf;
}

static char *relative_to(const char *file, const char *p)
{
    if (p[0] == '/') return strdup(p);
    char dir[PATH_MAX];
    dir_of(file, dir, sizeof dir);
    if (!strcmp(dir, ".")) return strdup(p);
    return sw_strdup_printf("%s/%s", dir, p);
}

static bool parse_int(const struct sp_node *n, long long min, long long *out, struct sp_diag *d,
                      const char *what)
{
    if (!n || n->kind != SP_NODE_SCALAR || !n->value) {
        sp_diag_error(d, n, "expected %s", what);
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(n->value, &end, 10);
    if (*end || errno || !*n->value || v < min) {
        sp_diag_error(d, n, "expected %s, got '%s'", what, n->value);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_axis(struct sweep *sw, const struct sp_node *item, int group, struct sp_diag *d)
{
    static const char *const keys[] = { "key", "values" };
    bool ok = true;
    for (const struct sp_node *c = item->child; c; c = c->next)
        if (strcmp(c->key, "key") && strcmp(c->key, "values")) {
            const char *near = sp_suggest(c->key, keys, 2);
            if (near) sp_diag_error(d, c, "unknown key '%s' (did you mean '%s'?)", c->key, near);
            else sp_diag_error(d, c, "unknown key '%s' (an axis has `key` and `values`)", c->key);
            ok = false;
        }
    const struct sp_node *k = sp_node_get(item, "key"), *v = sp_node_get(item, "values");
    if (!k || k->kind != SP_NODE_SCALAR || !k->value || !*k->value) {
        sp_diag_error(d, k ? k : item, "expected `key: scenario.key.path` (e.g. references.0.volatility)");
        ok = false;
    }
    if (!v || v->kind != SP_NODE_SEQ || v->n_children == 0) {
        sp_diag_error(d, v ? v : item, "expected `values:` a non-empty list such as [10%%, 20%%, 30%%]");
        ok = false;
    }
    if (!ok) return false;
    if (!strcmp(k->value, "seed")) {
        sp_diag_error(d, k, "the seed is not an axis: use `replicates:` or `seeds:` (the same seeds "
                      "are used in every arm)");
        return false;
    }
    for (size_t i = 0; i < sw->n_axes; i++)
        if (!strcmp(sw->axes[i].key, k->value)) {
            sp_diag_error(d, k, "key '%s' is already an axis (line %d)", k->value,
                          sw->axes[i].key_node->line);
            return false;
        }
    struct axis *ax = &sw->axes[sw->n_axes++];
    memset(ax, 0, sizeof *ax);
    ax->key = k->value;
    ax->key_node = k;
    ax->values_node = v;
    ax->group = group;
    ax->n = v->n_children;
    ax->text = calloc(ax->n, sizeof *ax->text);
    ax->assign = calloc(ax->n, sizeof *ax->assign);
    ax->value_nodes = calloc(ax->n, sizeof *ax->value_nodes);
    ax->num = calloc(ax->n, sizeof *ax->num);
    ax->numeric = true;
    size_t i = 0;
    for (const struct sp_node *c = v->child; c; c = c->next, i++) {
        ax->value_nodes[i] = c;
        ax->text[i] = flow_text(c);
        ax->assign[i] = sw_strdup_printf("%s=%s", ax->key, ax->text[i]);
        if (!scalar_number(c, &ax->num[i])) ax->numeric = false;
    }
    return true;
}

static int sweep_parse(struct sweep *sw, const char *path, struct sp_diag *d)
{
    memset(sw, 0, sizeof *sw);
    sw->path = path;
    int rc = sp_scenario_load(&sw->file, path, d);
    if (rc) return rc;
    const struct sp_node *root = sp_scenario_root(sw->file);
    if (!root || root->kind != SP_NODE_MAP) {
        sp_diag_error_at(d, path, 1, 1, "expected a map with `base:`, `axes:`, `replicates:`");
        return SP_ECONFIG;
    }
    static const char *const keys[] = { "base", "set", "axes", "replicates", "seeds", "seed_base",
                                        "output", "name", "description" };
    const size_t n_keys = sizeof keys / sizeof keys[0];
    for (const struct sp_node *c = root->child; c; c = c->next) {
        size_t k = 0;
        while (k < n_keys && strcmp(keys[k], c->key)) k++;
        if (k == n_keys) {
            const char *near = sp_suggest(c->key, keys, n_keys);
            if (near) sp_diag_error(d, c, "unknown key '%s' (did you mean '%s'?)", c->key, near);
            else sp_diag_error(d, c, "unknown key '%s' (a sweep has base, set, axes, replicates, "
                               "seeds, seed_base, output)", c->key);
        }
    }
    const struct sp_node *base = sp_node_get(root, "base");
    if (!base || base->kind != SP_NODE_SCALAR || !base->value || !*base->value)
        sp_diag_error(d, base ? base : root, "missing required key 'base': the scenario to sweep "
                      "(a path relative to this file)");
    else {
        sw->base = relative_to(path, base->value);
        if (access(sw->base, R_OK) != 0)
            sp_diag_error(d, base, "cannot read base scenario '%s': %s", sw->base, strerror(errno));
    }
    const struct sp_node *set = sp_node_get(root, "set");
    sw->set_node = set;
    if (set && set->kind != SP_NODE_MAP) {
        sp_diag_error(d, set, "expected a map {scenario.key.path: value, ...}");
    } else if (set) {
        sw->sets = calloc(set->n_children + 1, sizeof *sw->sets);
        for (const struct sp_node *c = set->child; c; c = c->next) {
            char *t = flow_text(c);
            sw->sets[sw->n_sets++] = sw_strdup_printf("%s=%s", c->key, t);
            free(t);
        }
    }
    const struct sp_node *axes = sp_node_get(root, "axes");
    size_t cap = 0;
    if (axes && axes->kind != SP_NODE_SEQ) {
        sp_diag_error(d, axes, "expected a list of {key: ..., values: [...]} or {zip: [...]}");
    } else if (axes) {
        for (const struct sp_node *c = axes->child; c; c = c->next) {
            const struct sp_node *z = c->kind == SP_NODE_MAP ? sp_node_get(c, "zip") : NULL;
            cap += z && z->kind == SP_NODE_SEQ ? z->n_children : 1;
        }
        sw->axes = calloc(cap + 1, sizeof *sw->axes);
        sw->group_n = calloc(axes->n_children + 1, sizeof *sw->group_n);
        for (const struct sp_node *c = axes->child; c; c = c->next) {
            if (c->kind != SP_NODE_MAP) {
                sp_diag_error(d, c, "expected {key: ..., values: [...]} or {zip: [...]}");
                continue;
            }
            const struct sp_node *z = sp_node_get(c, "zip");
            int g = (int)sw->n_groups;
            if (z) {
                if (z->kind != SP_NODE_SEQ || z->n_children == 0 || c->n_children != 1) {
                    sp_diag_error(d, z, "expected `zip:` alone, with a list of {key, values} "
                                  "whose values lists have equal lengths");
                    continue;
                }
                size_t first = sw->n_axes;
                bool ok = true;
                for (const struct sp_node *m = z->child; m; m = m->next) {
                    if (m->kind != SP_NODE_MAP) { sp_diag_error(d, m, "expected {key, values}"); ok = false; continue; }
                    if (!parse_axis(sw, m, g, d)) ok = false;
                }
                for (size_t i = first + 1; ok && i < sw->n_axes; i++)
                    if (sw->axes[i].n != sw->axes[first].n) {
                        sp_diag_error(d, sw->axes[i].values_node, "a zip group's values lists must "
                                      "have equal lengths: %zu here, %zu for '%s'", sw->axes[i].n,
                                      sw->axes[first].n, sw->axes[first].key);
                        ok = false;
                    }
                if (ok && sw->n_axes > first) sw->group_n[sw->n_groups++] = sw->axes[first].n;
            } else if (parse_axis(sw, c, g, d)) {
                sw->group_n[sw->n_groups++] = sw->axes[sw->n_axes - 1].n;
            }
        }
    }
    const struct sp_node *reps = sp_node_get(root, "replicates");
    const struct sp_node *seeds = sp_node_get(root, "seeds");
    const struct sp_node *sbase = sp_node_get(root, "seed_base");
    long long r = 0, sb = -1;
    if (reps && !parse_int(reps, 1, &r, d, "a positive number of replicate seeds")) r = -1;
    if (sbase && !parse_int(sbase, 0, &sb, d, "a non-negative seed")) sb = -2;
    if (seeds) {
        if (seeds->kind != SP_NODE_SEQ || !seeds->n_children) {
            sp_diag_error(d, seeds, "expected a non-empty list of seeds such as [1, 2, 3]");
        } else {
            if (sbase) sp_diag_error(d, sbase, "give either `seeds:` or `seed_base:`, not both");
            if (r > 0 && (size_t)r != seeds->n_children)
                sp_diag_error(d, reps, "replicates: %lld but `seeds:` lists %zu", r, seeds->n_children);
            sw->seeds = calloc(seeds->n_children, sizeof *sw->seeds);
            for (const struct sp_node *c = seeds->child; c; c = c->next) {
                long long v;
                if (parse_int(c, 0, &v, d, "a non-negative integer seed")) {
                    for (size_t i = 0; i < sw->n_seeds; i++)
                        if (sw->seeds[i] == v) { sp_diag_error(d, c, "seed %lld is listed twice", v); break; }
                    sw->seeds[sw->n_seeds++] = v;
                }
            }
        }
    } else if (r >= 0 && sb >= -1) {
        if (r == 0) r = 1;
        if (sb < 0 && sw->base && access(sw->base, R_OK) == 0) {
            /* Default seed_base: the base scenario's own seed (1 if none). */
            struct sp_scenario *b = NULL;
            struct sp_diag bd = { 0 };
            sb = 1;
            if (!sp_scenario_load(&b, sw->base, &bd)) {
                const struct sp_node *s = sp_node_get(sp_scenario_root(b), "seed");
                if (s && s->value) sb = strtoll(s->value, NULL, 10);
            }
            sp_scenario_destroy(b);
            sp_diag_release(&bd);
        }
        sw->seeds = calloc((size_t)r, sizeof *sw->seeds);
        for (long long k = 0; k < r; k++) sw->seeds[sw->n_seeds++] = (sb < 0 ? 1 : sb) + k;
    }
    const struct sp_node *out = sp_node_get(root, "output");
    if (out && (out->kind != SP_NODE_SCALAR || !out->value || !*out->value))
        sp_diag_error(d, out, "expected a directory path");
    else if (out) sw->output_resolved = relative_to(path, out->value);
    return d->n_errors ? SP_ECONFIG : SP_OK;
}

static void sweep_release(struct sweep *sw)
{
    for (size_t i = 0; i < sw->n_axes; i++) {
        struct axis *ax = &sw->axes[i];
        for (size_t k = 0; k < ax->n; k++) { free(ax->text[k]); free(ax->assign[k]); }
        free(ax->text);
        free(ax->assign);
        free(ax->value_nodes);
        free(ax->num);
    }
    free(sw->axes);
    for (size_t i = 0; i < sw->n_sets; i++) free(sw->sets[i]);
    free(sw->sets);
    free(sw->group_n);
    free(sw->seeds);
    free(sw->base);
    free(sw->output_resolved);
    sp_scenario_destroy(sw->file);
}

static size_t n_arms(const struct sweep *sw)
{
    size_t n = 1;
    for (size_t g = 0; g < sw->n_groups; g++) n *= sw->group_n[g];
    return n;
}

/* Value index of axis `ax` in arm `a` (the last dimension varies fastest). */
static size_t arm_value(const struct sweep *sw, size_t a, size_t ax)
{
    size_t stride = 1;
    for (size_t g = sw->n_groups; g-- > (size_t)sw->axes[ax].group + 1; ) stride *= sw->group_n[g];
    return (a / stride) % sw->group_n[sw->axes[ax].group];
}

/* Print the sweep-file line, then the scenario's own messages indented. */
static void report_arm_error(const char *path, const struct sp_node *at, const char *what,
                             const struct sp_diag *inner)
{
    struct sp_diag d = { 0 };
    sp_diag_error(&d, at, "%s", what);
    sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    (void)path;
    const char *t = inner->text ? inner->text : "";
    while (*t) {
        const char *nl = strchr(t, '\n');
        size_t n = nl ? (size_t)(nl - t) : strlen(t);
        fprintf(stderr, "  %.*s\n", (int)n, t);
        t += n + (nl ? 1 : 0);
    }
}

/* Validate: `set:` alone, each axis value alone, then every arm. */
static int sweep_validate(struct sweep *sw, struct sw_job *jobs, size_t arms)
{
    int errors = 0;
    struct sw_job probe = { 0 };
    probe.scenario = sw->base;
    probe.seed = sw->seeds[0];
    probe.sets = (const char **)sw->sets;
    probe.n_sets = sw->n_sets;
    struct sp_diag d = { 0 };
    if (sw_job_prepare(&probe, false, &d)) {
        report_arm_error(sw->path, sw->set_node ? sw->set_node : sp_scenario_root(sw->file),
                         sw->set_node ? "the base scenario with `set:` does not validate:"
                                      : "the base scenario does not validate:", &d);
        sp_diag_release(&d);
        return 1;
    }
    sp_diag_release(&d);
    const char **sets = calloc(sw->n_sets + sw->n_axes + 1, sizeof *sets);
    for (size_t i = 0; i < sw->n_sets; i++) sets[i] = sw->sets[i];
    for (size_t a = 0; a < sw->n_axes; a++)
        for (size_t v = 0; v < sw->axes[a].n; v++) {
            sets[sw->n_sets] = sw->axes[a].assign[v];
            probe.sets = sets;
            probe.n_sets = sw->n_sets + 1;
            struct sp_diag e = { 0 };
            if (sw_job_prepare(&probe, false, &e)) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s = %s: the scenario does not validate with this value:",
                         sw->axes[a].key, sw->axes[a].text[v]);
                report_arm_error(sw->path, v == 0 ? sw->axes[a].key_node : sw->axes[a].value_nodes[v],
                                 msg, &e);
                errors++;
                if (v == 0) v = sw->axes[a].n;   /* the key itself is bad: once is enough */
            }
            sp_diag_release(&e);
        }
    free(sets);
    if (errors) return errors;
    /* Every arm, every seed: hashes for resume; the first replicate of each
     * arm also builds the world (module init checks). */
    for (size_t a = 0; a < arms; a++)
        for (size_t k = 0; k < sw->n_seeds; k++) {
            struct sw_job *j = &jobs[a * sw->n_seeds + k];
            struct sp_diag e = { 0 };
            if (sw_job_prepare(j, k == 0, &e)) {
                if (errors < 3) {
                    char msg[1024];
                    size_t len = (size_t)snprintf(msg, sizeof msg, "arm %zu (", a);
                    for (size_t x = 0; x < sw->n_axes && len < sizeof msg; x++)
                        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s = %s", x ? ", " : "",
                                                sw->axes[x].key, sw->axes[x].text[arm_value(sw, a, x)]);
                    if (len < sizeof msg)
                        snprintf(msg + len, sizeof msg - len, "), seed %lld, does not validate:",
                                 (long long)j->seed);
                    report_arm_error(sw->path, sp_node_get(sp_scenario_root(sw->file), "axes"), msg, &e);
                }
                errors++;
                sp_diag_release(&e);
                break;
            }
            sp_diag_release(&e);
        }
    if (errors > 3) fprintf(stderr, "... and %d more arms that do not validate.\n", errors - 3);
    return errors;
}

/* ---- summary.h5 --------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int write_summary(const struct sweep *sw, const char *dir, struct sw_job *jobs, size_t n,
                         size_t arms, const char *cmdline, bool interrupted, char *err, size_t errsize)
{
    char final[PATH_MAX + 64], tmp[PATH_MAX + 64];
    snprintf(final, sizeof final, "%s/summary.h5", dir);
    snprintf(tmp, sizeof tmp, "%s/.summary.h5.tmp.%d", dir, (int)getpid());
    /* Metric names seen in any run, sorted. */
    size_t n_names = 0, cap_names = 16;
    char **names = malloc(cap_names * sizeof *names);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < jobs[i].n_metrics; m++) {
            bool seen = false;
            for (size_t q = 0; q < n_names && !seen; q++) seen = !strcmp(names[q], jobs[i].metrics[m].name);
            if (seen) continue;
            if (n_names == cap_names) names = realloc(names, (cap_names *= 2) * sizeof *names);
            names[n_names++] = jobs[i].metrics[m].name;
        }
    qsort(names, n_names, sizeof *names, cmp_str);

    enum { FIXED = 8 };
    size_t ncols = FIXED + sw->n_axes + n_names;
    struct sp_rec_col *cols = calloc(ncols, sizeof *cols);
    static const char *const yes_no[] = { "no", "yes", NULL };
    cols[0] = (struct sp_rec_col){ "run", SP_REC_I64, "1", "run index (row)", NULL };
    cols[1] = (struct sp_rec_col){ "arm", SP_REC_I64, "1", "arm index (a point of the axes grid)", NULL };
    cols[2] = (struct sp_rec_col){ "replicate", SP_REC_I64, "1", "replicate index k (file <arm>_r<k>.h5)", NULL };
    cols[3] = (struct sp_rec_col){ "seed", SP_REC_I64, "1", "seed of the run (the same for replicate k in every arm)", NULL };
    cols[4] = (struct sp_rec_col){ "status", SP_REC_I8, "1", "outcome of the run", sw_status_names };
    cols[5] = (struct sp_rec_col){ "resumed", SP_REC_I8, "1", "reused from an earlier invocation (complete, same config_hash)", yes_no };
    cols[6] = (struct sp_rec_col){ "exit_code", SP_REC_I32, "1", "worker exit code; 128+N killed by signal N; -1 not run", NULL };
    cols[7] = (struct sp_rec_col){ "wall_seconds", SP_REC_F64, "s", "wall-clock time of the worker (NaN if not run)", NULL };
    const char ***codes = calloc(sw->n_axes + 1, sizeof *codes);
    for (size_t a = 0; a < sw->n_axes; a++) {
        const struct axis *ax = &sw->axes[a];
        if (!ax->numeric) {
            codes[a] = calloc(ax->n + 1, sizeof **codes);
            for (size_t v = 0; v < ax->n; v++) codes[a][v] = ax->text[v];
        }
        cols[FIXED + a] = (struct sp_rec_col){ ax->key, ax->numeric ? SP_REC_F64 : SP_REC_I32,
                                               ax->numeric ? "as in the scenario (fractions for %, s for durations)" : "1",
                                               "sweep axis: the value of this scenario key", codes[a] };
    }
    for (size_t m = 0; m < n_names; m++)
        cols[FIXED + sw->n_axes + m] = (struct sp_rec_col){ names[m], SP_REC_F64, "as in the run's /summary",
                                                            "/summary metric of the run (NaN if absent or not complete)", NULL };
    struct sp_rec *rec = NULL;
    struct sp_rec_opts ro = { 1, 1024 };
    int rc = sp_rec_create(&rec, tmp, &ro);
    struct sp_rec_table *t = NULL;
    if (!rc) rc = sp_rec_table_create(rec, "/runs", cols, ncols, &t);
    union sp_rec_val *row = calloc(ncols, sizeof *row);
    size_t counts[4] = { 0 }, n_resumed = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const struct sw_job *j = &jobs[i];
        size_t a = i / sw->n_seeds, k = i % sw->n_seeds;
        row[0].i = (int64_t)i;
        row[1].i = (int64_t)a;
        row[2].i = (int64_t)k;
        row[3].i = j->seed;
        row[4].i = j->status;
        row[5].i = j->resumed;
        row[6].i = j->exit_code;
        row[7].f = j->wall_seconds;
        for (size_t x = 0; x < sw->n_axes; x++) {
            size_t v = arm_value(sw, a, x);
            if (sw->axes[x].numeric) row[FIXED + x].f = sw->axes[x].num[v];
            else row[FIXED + x].i = (int64_t)v;
        }
        for (size_t m = 0; m < n_names; m++) {
            double v = NAN;
            if (j->status == SW_COMPLETE) sw_job_metric(j, names[m], &v);
            row[FIXED + sw->n_axes + m].f = v;
        }
        sp_rec_append(t, row);
        counts[j->status]++;
        n_resumed += j->resumed;
    }
    if (!rc) {
        char buf[256];
        snprintf(buf, sizeof buf, "spiral %s (git %s)", SPIRAL_VERSION, SPIRAL_GIT_SHA);
        rc |= sp_rec_attr_str(rec, "/", "software", buf);
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        rc |= sp_rec_attr_str(rec, "/", "created_utc", buf);
        rc |= sp_rec_attr_str(rec, "/", "kind", "sweep");
        rc |= sp_rec_attr_str(rec, "/", "sweep", sw->path);
        rc |= sp_rec_attr_str(rec, "/", "base", sw->base);
        rc |= sp_rec_attr_str(rec, "/", "command_line", cmdline ? cmdline : "");
        rc |= sp_rec_attr_str(rec, "/", "runs_dir", "runs");
        rc |= sp_rec_attr_i64(rec, "/", "n_runs", (int64_t)n);
        rc |= sp_rec_attr_i64(rec, "/", "n_arms", (int64_t)arms);
        rc |= sp_rec_attr_i64(rec, "/", "n_replicates", (int64_t)sw->n_seeds);
        rc |= sp_rec_attr_i64(rec, "/", "n_complete", (int64_t)counts[SW_COMPLETE]);
        rc |= sp_rec_attr_i64(rec, "/", "n_failed", (int64_t)counts[SW_FAILED]);
        rc |= sp_rec_attr_i64(rec, "/", "n_interrupted", (int64_t)counts[SW_INTERRUPTED]);
        rc |= sp_rec_attr_i64(rec, "/", "n_not_run", (int64_t)counts[SW_NOT_RUN]);
        rc |= sp_rec_attr_i64(rec, "/", "n_resumed", (int64_t)n_resumed);
        /* Run file names in row order, so readers need not rebuild them. */
        size_t len = 1;
        for (size_t i = 0; i < n; i++) len += strlen(jobs[i].id) + 5;
        char *files = calloc(len, 1);
        for (size_t i = 0; i < n; i++) {
            strcat(files, jobs[i].id);
            strcat(files, ".h5");
            if (i + 1 < n) strcat(files, "\n");
        }
        rc |= sp_rec_text(rec, "/run_files", files);
        free(files);
        /* /axes: one attribute per axis, the key -> its values as a YAML flow list. */
        rc |= sp_rec_attr_i64(rec, "/axes", "n_axes", (int64_t)sw->n_axes);
        rc |= sp_rec_attr_i64(rec, "/axes", "n_dimensions", (int64_t)sw->n_groups);
        for (size_t x = 0; x < sw->n_axes; x++) {
            const struct axis *ax = &sw->axes[x];
            size_t l = 4;
            for (size_t v = 0; v < ax->n; v++) l += strlen(ax->text[v]) + 2;
            char *s = calloc(l, 1);
            strcat(s, "[");
            for (size_t v = 0; v < ax->n; v++) {
                if (v) strcat(s, ", ");
                strcat(s, ax->text[v]);
            }
            strcat(s, "]");
            char an[64];
            snprintf(an, sizeof an, "axis_%zu", x);
            rc |= sp_rec_attr_str(rec, "/axes", an, ax->key);
            snprintf(an, sizeof an, "axis_%zu_values", x);
            rc |= sp_rec_attr_str(rec, "/axes", an, s);
            snprintf(an, sizeof an, "axis_%zu_dimension", x);
            rc |= sp_rec_attr_i64(rec, "/axes", an, ax->group);
            snprintf(an, sizeof an, "axis_%zu_kind", x);
            rc |= sp_rec_attr_str(rec, "/axes", an, ax->numeric ? "number" : "category");
            free(s);
        }
        char *text = NULL;
        FILE *f = fopen(sw->path, "r");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            text = calloc((size_t)(sz > 0 ? sz : 0) + 1, 1);
            if (text && sz > 0 && fread(text, 1, (size_t)sz, f) != (size_t)sz) text[0] = 0;
            fclose(f);
        }
        rc |= sp_rec_text(rec, "/sweep.yaml", text ? text : "");
        free(text);
        if (rc) rc = SP_EHDF5;
    }
    if (rec) {
        int rc2 = sp_rec_close(rec, interrupted ? "interrupted" : "complete");
        if (!rc) rc = rc2;
    }
    if (!rc && rename(tmp, final)) rc = SP_EIO;
    if (rc) {
        snprintf(err, errsize, "cannot write %s: %s", final, sp_strerror(rc));
        unlink(tmp);
    }
    free(row);
    for (size_t a = 0; a < sw->n_axes; a++) free(codes[a]);
    free(codes);
    free(cols);
    free(names);
    return rc;
}

/* ---- the command -------------------------------------------------------- */

static const char usage_sweep[] =
    "Usage: spiral sweep SWEEP.yaml [-j N] [-o DIR] [--quiet]\n"
    "\n"
    "Run a base scenario over a grid of parameters (axes) and replicate seeds, on\n"
    "N worker processes, and write DIR/summary.h5 (one row per run) beside\n"
    "DIR/runs/<arm>_r<k>.h5.  Replicate k has the same seed in every arm (common\n"
    "random numbers).  Every arm is validated before anything runs.  Resumable: a\n"
    "run whose file is complete with the same resolved-config hash is reused.\n"
    "\n"
    "Options:\n"
    "  -j, --jobs N        worker processes (default: the number of online cores)\n"
    "  -o, --output DIR    output directory (default: the file's `output:`, else\n"
    "                      sweeps/NAME, NAME = the sweep file's name)\n"
    "  -q, --quiet         no progress and no final line\n"
    "  -h, --help          show this help\n"
    "\n"
    "SWEEP.yaml:\n"
    "  base: scenario.yaml              # relative to the sweep file\n"
    "  set: {references.0.volatility: 0}   # applied to every arm (optional)\n"
    "  axes:                            # Cartesian product, last varies fastest\n"
    "    - {key: markets.0.fee, values: [0.05%, 0.3%]}\n"
    "    - zip:                         # keys varied together\n"
    "        - {key: references.0.shocks.0.drop, values: [20%, 40%]}\n"
    "        - {key: references.0.shocks.0.over, values: [1h, 2h]}\n"
    "  replicates: 3                    # seeds seed_base..seed_base+2, or seeds: [..]\n"
    "  seed_base: 1                     # default: the base scenario's seed\n"
    "  output: out/fees                 # relative to the sweep file (optional)\n"
    "\n"
    "Exit status: 0 every run complete, 1 some run failed, 2 bad input or usage,\n"
    "130 interrupted (SIGINT/SIGTERM: no new runs, running ones are stopped and\n"
    "left \"interrupted\"; the summary is written; rerun the same command to resume).\n";


int sp_cmd_sweep(int argc, char **argv, const char *cmdline)
{
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' }, { "output", required_argument, NULL, 'o' },
        { "quiet", no_argument, NULL, 'q' },      { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int jobs = 0, opt;
    const char *outdir = NULL;
    bool quiet = false;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":j:o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 4096) return sp_cli_usage_error("sweep", "-j: expected a positive number of workers, got '%s'", optarg);
            jobs = (int)v;
            break;
        }
        case 'o': outdir = optarg; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage_sweep, stdout); return 0;
        case ':': return sp_cli_usage_error("sweep", "option '%s' needs a value", argv[optind - 1]);
        default: return sp_cli_usage_error("sweep", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) return sp_cli_usage_error("sweep", "missing SWEEP.yaml%s", "");
        return sp_cli_usage_error("sweep", "unexpected argument '%s'", argv[optind + 1]);
    }
    if (!jobs) jobs = sw_default_jobs();
    const char *path = argv[optind];

    struct sweep sw;
    struct sp_diag d = { 0 };
    int ret = 0;
    if (sweep_parse(&sw, path, &d)) {
        sp_diag_print(&d, stderr);
        if (d.n_errors > 1) fprintf(stderr, "%d errors.\n", d.n_errors);
        sp_diag_release(&d);
        sweep_release(&sw);
        return EXIT_USAGE;
    }
    sp_diag_release(&d);

    size_t arms = n_arms(&sw), n = arms * sw.n_seeds;
    int width = 1;
    for (size_t x = arms - 1; x >= 10; x /= 10) width++;
    if (width < 3) width = 3;
    struct sw_job *jobv = calloc(n, sizeof *jobv);
    struct sw_job **jobp = calloc(n, sizeof *jobp);
    char **ids = calloc(n, sizeof *ids);
    const char ***sets = calloc(arms, sizeof *sets);
    for (size_t a = 0; a < arms; a++) {
        sets[a] = calloc(sw.n_sets + sw.n_axes + 1, sizeof **sets);
        for (size_t i = 0; i < sw.n_sets; i++) sets[a][i] = sw.sets[i];
        for (size_t x = 0; x < sw.n_axes; x++) sets[a][sw.n_sets + x] = sw.axes[x].assign[arm_value(&sw, a, x)];
        for (size_t k = 0; k < sw.n_seeds; k++) {
            size_t i = a * sw.n_seeds + k;
            ids[i] = sw_strdup_printf("a%0*zu_r%zu", width, a, k);
            jobv[i].id = ids[i];
            jobv[i].scenario = sw.base;
            jobv[i].seed = sw.seeds[k];
            jobv[i].sets = sets[a];
            jobv[i].n_sets = sw.n_sets + sw.n_axes;
            jobp[i] = &jobv[i];
        }
    }
    char dir[PATH_MAX];
    if (outdir) snprintf(dir, sizeof dir, "%s", outdir);
    else if (sw.output_resolved) snprintf(dir, sizeof dir, "%s", sw.output_resolved);
    else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        snprintf(dir, sizeof dir, "sweeps/%.*s", (int)strcspn(b, "."), b);
    }
    char runs_dir[PATH_MAX + 8], logs_dir[PATH_MAX + 8];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", dir);
    snprintf(logs_dir, sizeof logs_dir, "%s/logs", dir);

    if (sweep_validate(&sw, jobv, arms)) {
        ret = EXIT_USAGE;
        goto out;
    }
    if (sw_mkdirs(runs_dir) || sw_mkdirs(logs_dir)) {
        fprintf(stderr, "spiral sweep: cannot create '%s': %s\n", runs_dir, strerror(errno));
        ret = EXIT_USAGE;
        goto out;
    }
    for (size_t i = 0; i < n; i++) sw_job_paths(&jobv[i], runs_dir, logs_dir);

    sw_signals_install();
    struct sw_pool pool = { .jobs = jobs, .quiet = quiet, .what = "sweep", .total = n };
    if (!quiet)
        fprintf(stderr, "spiral sweep: %zu arms x %zu seeds = %zu runs on %d workers -> %s\n",
                arms, sw.n_seeds, n, jobs, dir);
    bool interrupted = sw_pool_run(&pool, jobp, n);
    sw_pool_done(&pool);
    char err[PATH_MAX + 256];
    size_t counts[4] = { 0 }, resumed = 0;
    for (size_t i = 0; i < n; i++) { counts[jobv[i].status]++; resumed += jobv[i].resumed; }
    if (write_summary(&sw, dir, jobv, n, arms, cmdline, interrupted, err, sizeof err)) {
        fprintf(stderr, "spiral sweep: %s\n", err);
        ret = EXIT_RUNFAIL;
        goto out;
    }
    if (!quiet || interrupted || counts[SW_FAILED])
        fprintf(quiet ? stderr : stdout,
                "sweep: %zu runs: %zu complete (%zu resumed), %zu failed, %zu interrupted, "
                "%zu not run; wrote %s/summary.h5\n",
                n, counts[SW_COMPLETE], resumed, counts[SW_FAILED], counts[SW_INTERRUPTED],
                counts[SW_NOT_RUN], dir);
    if (interrupted) {
        fprintf(stderr, "spiral sweep: interrupted; run the same command again to resume\n");
        ret = EXIT_INTERRUPTED;
    } else if (counts[SW_FAILED]) {
        fprintf(stderr, "spiral sweep: %zu runs failed (logs in %s)\n", counts[SW_FAILED], logs_dir);
        ret = EXIT_RUNFAIL;
    }
out:
    for (size_t i = 0; i < n; i++) { sw_job_release(&jobv[i]); free(ids[i]); }
    for (size_t a = 0; a < arms; a++) free(sets[a]);
    free(sets);
    free(ids);
    free(jobv);
    free(jobp);
    sweep_release(&sw);
    return ret;
}
