/*
 * loop.c — libevent drives the simulation (DESIGN §1, "libevent drives it").
 *
 * Simulated time lives in spiral's own heap; libevent's event_base runs the
 * loop so that signals (and, later, sockets of external agents) are served
 * between batches of simulation events.
 *
 *  fast mode:  one `step` event with no fd; its callback dispatches a batch
 *              (opts->batch, default 1024) of simulation events and, if any
 *              are left, re-activates itself with event_active().  The base is
 *              configured with event_config_set_max_dispatch_interval so a
 *              self-activating event cannot starve signals.
 *  paced mode: one evtimer armed for the wall time of the queue head,
 *              wall0 + (t - t0) / pace, on a base with
 *              EVENT_BASE_FLAG_PRECISE_TIMER (the default coarse clock would
 *              round every short timeout up to ~4 ms).
 *  signals:    SIGINT/SIGTERM set a stop flag checked at the next batch
 *              boundary; the run ends "interrupted".  A second signal exits
 *              the process at once (the file then keeps status "running").
 *
 * Flushing the output on a wall-clock timer and the progress callback also
 * happen at batch boundaries, never per event.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "spiral/sim.h"
#include "spiral/recorder.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "sim-internal.h"

struct loop {
    struct sp_sim *sim;
    const struct sp_run_opts *opts;
    struct event_base *base;
    struct event *step;
    struct event *sigint, *sigterm;
    sp_time until;
    unsigned batch;
    double wall0, last_flush, last_progress;
    sp_time t0;
    int signals;
    enum sp_run_status status;
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void report_progress(struct loop *L, double now, bool force)
{
    if (!L->opts->progress) return;
    if (!force && now - L->last_progress < 0.2) return;
    L->last_progress = now;
    struct sp_progress p = { L->sim->now, L->until, L->sim->n_events, now - L->wall0 };
    L->opts->progress(&p, L->opts->progress_arg);
}

/* Batch boundary housekeeping.  Returns true when the loop should end. */
static bool boundary(struct loop *L, bool drained)
{
    struct sp_sim *sim = L->sim;
    double now = wall_now();
#ifndef NDEBUG
    /* Debug and test builds: every token conserved, no negative balance. */
    if (!sim->fail_code && sim->n_tokens) sp_ledger_check(sim);
#endif
    if (sim->fail_code) {
        L->status = SP_RUN_FAILED;
    } else if (sim->stop_requested) {
        L->status = SP_RUN_INTERRUPTED;
    } else if (drained) {
        L->status = SP_RUN_COMPLETE;
    } else {
        double every = L->opts->flush_seconds > 0 ? L->opts->flush_seconds : 10.0;
        if (sim->rec && now - L->last_flush >= every) {
            L->last_flush = now;
            int rc = sp_rec_flush(sim->rec);
            if (rc) sp_sim_fail(sim, rc, "cannot flush the output: %s", sp_strerror(rc));
        }
        report_progress(L, now, false);
        return false;
    }
    report_progress(L, now, true);
    event_base_loopbreak(L->base);
    return true;
}

static void fast_step(evutil_socket_t fd, short what, void *arg)
{
    struct loop *L = arg;
    bool drained;
    sp_sim_step(L->sim, L->until, L->batch, &drained);
    if (!boundary(L, drained)) event_active(L->step, EV_TIMEOUT, 0);
}

static void paced_arm(struct loop *L)
{
    struct sp_event *head = sp_queue_peek(L->sim->queue);
    if (!head || head->t > L->until) {
        /* Nothing left before `until`: the clock still runs to `until`. */
        boundary(L, true);
        return;
    }
    double due = L->wall0 + sp_time_sec(head->t - L->t0) / L->opts->pace;
    double wait = due - wall_now();
    if (wait < 0) wait = 0;
    struct timeval tv = { (time_t)wait, (suseconds_t)((wait - floor(wait)) * 1e6) };
    evtimer_add(L->step, &tv);
}

static void paced_step(evutil_socket_t fd, short what, void *arg)
{
    struct loop *L = arg;
    /* Everything whose wall time has come, in batches. */
    double elapsed = wall_now() - L->wall0;
    double sim_now = (double)L->t0 + elapsed * L->opts->pace * 1e6;
    sp_time limit = sim_now >= (double)L->until ? L->until : (sp_time)sim_now;
    bool drained;
    sp_sim_step(L->sim, limit, L->batch, &drained);
    if (boundary(L, false)) return;
    paced_arm(L);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct loop *L = arg;
    if (++L->signals > 1) _exit(128 + (int)sig);
    sp_sim_request_stop(L->sim);
    /* In paced mode the timer may be far away: wake the loop now. */
    if (L->opts->pace > 0) {
        evtimer_del(L->step);
        struct timeval tv = { 0, 0 };
        evtimer_add(L->step, &tv);
    }
}

enum sp_run_status sp_sim_run(struct sp_sim *sim, const struct sp_run_opts *opts)
{
    struct loop L = { .sim = sim, .opts = opts, .status = SP_RUN_FAILED };
    L.until = opts->until ? opts->until : sim->horizon;
    L.batch = opts->batch ? opts->batch : 1024;
    L.t0 = sim->now;
    L.wall0 = L.last_flush = wall_now();
    sim->stop_requested = 0;      /* a stop asked of an earlier run is spent */
    sim->pausing = opts->pause;
    L.last_progress = L.wall0;

    struct event_config *cfg = event_config_new();
    if (!cfg) { sp_sim_fail(sim, SP_ENOMEM, "cannot create the event loop"); return SP_RUN_FAILED; }
    event_config_avoid_method(cfg, "select");   /* nothing to poll but signals */
    /* A self-activating event must not starve signals: check for them
     * after at most 64 callbacks. */
    event_config_set_max_dispatch_interval(cfg, NULL, 64, 0);
    if (opts->pace > 0) event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    L.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!L.base) { sp_sim_fail(sim, SP_ENOMEM, "cannot create the event loop"); return SP_RUN_FAILED; }

    if (opts->pace > 0) L.step = evtimer_new(L.base, paced_step, &L);
    else                L.step = event_new(L.base, -1, 0, fast_step, &L);
    if (opts->handle_signals) {
        L.sigint = evsignal_new(L.base, SIGINT, on_signal, &L);
        L.sigterm = evsignal_new(L.base, SIGTERM, on_signal, &L);
        if (L.sigint) evsignal_add(L.sigint, NULL);
        if (L.sigterm) evsignal_add(L.sigterm, NULL);
    }
    if (!L.step) {
        sp_sim_fail(sim, SP_ENOMEM, "cannot create the event loop");
    } else {
        if (opts->pace > 0) paced_arm(&L);
        else event_active(L.step, EV_TIMEOUT, 0);
        if (L.status != SP_RUN_COMPLETE || opts->pace <= 0)
            event_base_dispatch(L.base);
    }
    if (L.status == SP_RUN_COMPLETE && sim->now < L.until && L.until != SP_TIME_MAX &&
        !opts->pause) {
        sp_lst_settle(sim, L.until);         /* redemptions due by the end */
        sim->now = L.until;                  /* the clock runs to the end */
        sim->value_epoch++;
    }
    if (sim->fail_code) L.status = SP_RUN_FAILED;
    sim->pausing = false;

    if (L.sigint) event_free(L.sigint);
    if (L.sigterm) event_free(L.sigterm);
    if (L.step) event_free(L.step);
    event_base_free(L.base);
    return L.status;
}
