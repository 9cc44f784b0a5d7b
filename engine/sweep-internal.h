/*
 * sweep-internal.h — the worker pool shared by `spiral sweep` and
 * `spiral stress` (CLI only: compiled into the executable, not the library).
 *
 * A job is one `spiral run`: a scenario, a seed and a list of --set
 * overrides, written to its own HDF5 file.  sw_job_prepare() resolves the
 * job in this process exactly as `spiral run` will (load, --seed, --set in
 * order, bind) and hashes the resolved YAML; the hash equals the run file's
 * root attribute `config_hash` (world.c), which is how a complete file is
 * recognised as this job's result and reused instead of rerun.
 *
 * sw_pool_run() runs jobs on up to N worker processes: fork + exec of this
 * very binary (`/proc/self/exe run ...`), each in its own process group, its
 * stdout/stderr in the job's log file, with SPIRAL_RECORDER_THREADS=0 in its
 * environment (unless already set) so that its recorder compresses inline and
 * the worker keeps one core busy, not ~1.4.  A worker that crashes (a signal, an
 * abort) only marks its job failed.  SIGINT/SIGTERM to the parent stop the
 * launching and are forwarded to the running workers, which close their
 * files "interrupted"; jobs never launched end SW_NOT_RUN.
 */
#ifndef SPIRAL_SWEEP_INTERNAL_H
#define SPIRAL_SWEEP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "spiral/scenario.h"

/* Codes of the `status` columns of summary.h5 and stress files; never renumbered. */
enum sw_status { SW_COMPLETE = 0, SW_FAILED = 1, SW_INTERRUPTED = 2, SW_NOT_RUN = 3 };
extern const char *const sw_status_names[];   /* NULL-terminated, by code */

struct sw_metric {
    char *name;
    double value;
};

struct sw_job {
    /* what to run (strings owned by the caller) */
    const char *id;            /* "a003_r1": names the run and log files */
    const char *scenario;      /* path of the base scenario */
    int64_t seed;
    const char **sets;         /* "key=value" in application order */
    size_t n_sets;
    char *output;              /* the run file (owned) */
    char *log;                 /* the worker's stdout+stderr (owned) */
    char hash[17];             /* config hash of the resolved scenario */
    /* the result */
    enum sw_status status;
    bool resumed;              /* an earlier complete file was reused */
    int exit_code;             /* of the worker; 128+signal if killed; -1 not run */
    double wall_seconds;       /* of the worker process (or the reused file's) */
    struct sw_metric *metrics; /* /summary attributes of a complete run */
    size_t n_metrics;
    /* runner state */
    pid_t pid;
    double t_start;
};

struct sw_pool {
    int jobs;                  /* worker processes */
    bool quiet;
    const char *what;          /* "sweep" | "stress", for the progress line */
    /* progress across calls (stress runs several batches) */
    size_t total, done, failed, resumed;
    double t0;
    size_t launched_done;      /* jobs run here (not reused) that finished */
    bool shown;
};

/* Resolve the job like `spiral run` would; with `build`, also build the
 * world (module init).  Fills j->hash.  Errors go to d (file:line:col for the
 * scenario, "--set K=V" for overrides); returns 0 or an SP_E* code. */
int sw_job_prepare(struct sw_job *j, bool build, struct sp_diag *d);

/* Sets j->output = DIR/runs/ID.h5 and j->log = DIR/logs/ID.log. */
void sw_job_paths(struct sw_job *j, const char *runs_dir, const char *logs_dir);

/* Run (or reuse) every job; returns true if interrupted by a signal. */
bool sw_pool_run(struct sw_pool *p, struct sw_job **jobs, size_t n);
/* End the progress line (if any) before printing. */
void sw_pool_done(struct sw_pool *p);

/* Value of /summary metric `name` of a complete job; false if absent. */
bool sw_job_metric(const struct sw_job *j, const char *name, double *out);
void sw_job_release(struct sw_job *j);

void sw_signals_install(void);
bool sw_interrupted(void);
int sw_default_jobs(void);
int sw_mkdirs(const char *dir);      /* mkdir -p; 0 or -1 with errno */
double sw_now(void);                 /* monotonic seconds */
char *sw_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The commands (main.c dispatches). */
/* "spiral CMD: <message>\nTry 'spiral CMD --help'." on stderr; returns 2
 * (main.c: every subcommand's usage errors read the same). */
int sp_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int sp_cmd_sweep(int argc, char **argv, const char *cmdline);
int sp_cmd_stress(int argc, char **argv, const char *cmdline);

#endif
