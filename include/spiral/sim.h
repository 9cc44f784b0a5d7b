/*
 * spiral/sim.h — one simulation: clock, event queue, entities, output.
 *
 * All state hangs off `struct sp_sim` (Lua's lua_State): there are no mutable
 * globals, so two simulations can run in one process (tests, sweeps,
 * counterfactuals).  A simulation is built either from a scenario
 * (sp_world_build in spiral/world.h) or by hand: sp_sim_create, then
 * sp_sim_add_entity for each entity, then sp_sim_start.
 *
 * Entities are the instances of modules (a reference price process, later a
 * market, an oracle, an agent...).  Each has a dense id, a unique name, its
 * ops table and its state.  Events are addressed to entity ids; the engine
 * calls ops->on_event(self, sim, ev) when they fire.  Each entity also has
 * its own random stream derived from (seed, name): see spiral/rng.h.
 *
 * Running: sp_sim_step() dispatches events in order up to a time limit and a
 * count; sp_sim_run() (engine/loop.c) drives sp_sim_step from a libevent
 * loop, fast or paced, stopping cleanly on SIGINT/SIGTERM.
 */
#ifndef SPIRAL_SIM_H
#define SPIRAL_SIM_H

#include <stdbool.h>
#include "spiral/types.h"
#include "spiral/event.h"
#include "spiral/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_sim;
struct sp_rec;
struct sp_module_ops;

/* Progress report for a terminal (called about 5 times a second). */
struct sp_progress {
    sp_time now, end;
    uint64_t events;
    double wall_seconds;
};
typedef void (*sp_progress_fn)(const struct sp_progress *p, void *arg);

struct sp_run_opts {
    sp_time until;          /* stop after events at `until` (SP_TIME_MAX: never) */
    double pace;            /* 0: as fast as possible; X: X simulated s per wall s */
    unsigned batch;         /* events per libevent step callback (0 = 1024) */
    bool handle_signals;    /* stop on SIGINT/SIGTERM (the CLI sets this) */
    double flush_seconds;   /* flush the output every this many wall seconds (0 = 10) */
    sp_progress_fn progress;
    void *progress_arg;
    /* Stop after the events at `until` and leave the state exactly as an
     * uninterrupted run has it between two events: the clock stays at the
     * last event, nothing due after it (LST redemptions) is settled early.
     * A checkpoint pauses so (docs/snapshot.md); without it the clock runs
     * on to `until` as at the end of a run. */
    bool pause;
};

/* Why sp_sim_run returned. */
enum sp_run_status { SP_RUN_COMPLETE, SP_RUN_INTERRUPTED, SP_RUN_FAILED };

int  sp_sim_create(struct sp_sim **out, uint64_t seed);
void sp_sim_destroy(struct sp_sim *sim);   /* releases entities; NULL is a no-op */

/* Declare the tokens (before any balance is touched). */
int sp_sim_set_tokens(struct sp_sim *sim, const char *const *names, size_t n);

/* Add an entity.  `state` of ops->state_size bytes is allocated (zeroed) by
 * the engine unless `state` is given (then the caller owns it).  Names must
 * be unique.  *out_id receives the id. */
int sp_sim_add_entity(struct sp_sim *sim, const char *name, const struct sp_module_ops *ops,
                      void *state, sp_id *out_id);
/* Call ops->init(self, sim, id, cfg) for entity `id`. */
int sp_sim_init_entity(struct sp_sim *sim, sp_id id, const void *cfg);
/* Call every entity's ops->start, in id order. */
int sp_sim_start(struct sp_sim *sim);
/* Call every entity's ops->finish, in id order (once). */
void sp_sim_finish(struct sp_sim *sim);

/* Dispatch events with t <= until, at most max_events of them.  Returns the
 * number dispatched; sets *drained when no event with t <= until is left. */
uint64_t sp_sim_step(struct sp_sim *sim, sp_time until, uint64_t max_events, bool *drained);

/* Run to opts->until through the libevent loop (engine/loop.c). */
enum sp_run_status sp_sim_run(struct sp_sim *sim, const struct sp_run_opts *opts);
/* Ask a running loop to stop at the next batch boundary (async-signal-safe). */
void sp_sim_request_stop(struct sp_sim *sim);

/* ---- for modules ------------------------------------------------------- */

sp_time  sp_sim_now(const struct sp_sim *sim);
uint64_t sp_sim_seed(const struct sp_sim *sim);
uint64_t sp_sim_events(const struct sp_sim *sim);   /* dispatched so far */
struct sp_queue *sp_sim_queue(struct sp_sim *sim);

/* Schedule an event for `target` at absolute time t (>= now). */
struct sp_event *sp_sim_schedule(struct sp_sim *sim, sp_time t, unsigned prio,
                                 sp_id target, uint16_t kind);
/* Same, for an event the module may cancel or move later: *h receives its
 * handle (keep the handle, never the pointer). */
struct sp_event *sp_sim_schedule_tracked(struct sp_sim *sim, sp_time t, unsigned prio,
                                         sp_id target, uint16_t kind, sp_event_handle *h);
/* Re-queue the event being handled at time t (cheaper than a new one). */
void sp_sim_again(struct sp_sim *sim, struct sp_event *ev, sp_time t);
int  sp_sim_cancel(struct sp_sim *sim, sp_event_handle h);
int  sp_sim_reschedule(struct sp_sim *sim, sp_event_handle h, sp_time t);

/* The entity's own random stream: derived from (seed, name), so it does not
 * depend on which other entities exist. */
struct sp_rng *sp_sim_rng(struct sp_sim *sim, sp_id id);

size_t sp_sim_entity_count(const struct sp_sim *sim);
const char *sp_sim_entity_name(const struct sp_sim *sim, sp_id id);
const struct sp_module_ops *sp_sim_entity_ops(const struct sp_sim *sim, sp_id id);
void *sp_sim_entity_state(struct sp_sim *sim, sp_id id);
/* Id of the entity called `name`, or SP_ID_NONE. */
sp_id sp_sim_find(const struct sp_sim *sim, const char *name);

/* Output: NULL when the run is not recorded.  Modules create their tables in
 * ops->start and must accept a NULL recorder. */
struct sp_rec *sp_sim_recorder(struct sp_sim *sim);
void sp_sim_set_recorder(struct sp_sim *sim, struct sp_rec *rec);
/* Default sampling cadence of the scenario's output section. */
sp_time sp_sim_sample_every(const struct sp_sim *sim);
void sp_sim_set_sample_every(struct sp_sim *sim, sp_time dt);
/* The end of the run (horizon), for modules that plan ahead. */
sp_time sp_sim_horizon(const struct sp_sim *sim);
void sp_sim_set_horizon(struct sp_sim *sim, sp_time t);

/* Record a scalar metric in /summary (also kept in memory for callers). */
void sp_sim_summary(struct sp_sim *sim, const char *name, double value);
/* Number of summary metrics, and the i-th one. */
size_t sp_sim_summary_count(const struct sp_sim *sim);
const char *sp_sim_summary_get(const struct sp_sim *sim, size_t i, double *value);

/* A module met a run failure (I/O, a violated model invariant): the run stops
 * at the next batch with status "failed" and this message. */
void sp_sim_fail(struct sp_sim *sim, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* First failure code (0 if none) and its message. */
int sp_sim_failure(const struct sp_sim *sim, const char **message);

#ifdef __cplusplus
}
#endif
#endif
