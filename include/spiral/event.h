/*
 * spiral/event.h — simulation events and the event queue.
 *
 * The queue is a binary min-heap of 16-byte (time, key) entries, where
 * key = priority class << 60 | insertion sequence << 32 | event index.  So
 * events leave in order
 * of time, then priority class (lower first), then insertion order: equal-time
 * events are deterministic.  Events that may be cancelled or moved are
 * pushed *tracked*: their heap slot is kept (libevent's min_heap_idx, here in
 * a dense side array), which makes cancel and reschedule O(log n).  Untracked
 * events (the common case: fire, and maybe come back later) skip that
 * bookkeeping on every heap move.
 *
 * Events live in fixed blocks and are recycled through a free list; their
 * payload is inline (32 bytes), so the hot loop never calls malloc.  An event
 * names its target entity by id and its meaning by a module-defined `kind`;
 * it never holds a pointer, so the queue can be written to a snapshot.
 * Modules keep `sp_event_handle`s (index + generation) of tracked events,
 * never event pointers: a handle to an event that has fired or was cancelled
 * is detected as stale.
 *
 * Dispatch (sp_queue_begin / sp_queue_end) leaves the head in the heap while
 * its handler runs; if the handler reschedules that event (the common "hold"
 * pattern: act, then come back later) the heap does one sift instead of a
 * pop plus a push.  The order is exactly that of pop-then-push.
 */
#ifndef SPIRAL_EVENT_H
#define SPIRAL_EVENT_H

#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Priority classes: at equal times, lower classes run first. */
enum sp_prio {
    SP_PRIO_PRICE  = 1,    /* exogenous price processes */
    SP_PRIO_ORACLE = 2,
    SP_PRIO_MARKET = 3,
    SP_PRIO_AGENT  = 4,
    SP_PRIO_CHAIN  = 5,
    SP_PRIO_RECORD = 9,    /* samplers: see the state after everything else */
    SP_PRIO_MAX    = 15    /* classes are 4 bits */
};

typedef uint64_t sp_event_handle;   /* 0 is never a valid handle */

union sp_event_data {
    double   f[4];
    int64_t  i[4];
    uint64_t u[4];
    uint32_t id[8];
};

struct sp_event {
    sp_time t;                 /* when it fires */
    uint64_t key;              /* prio << 60 | insertion sequence << 32 | index */
    uint32_t index;            /* its place in the event pool (for handles) */
    uint32_t reserved;
    sp_id target;              /* entity it is addressed to */
    uint16_t kind;             /* module-defined meaning */
    uint16_t gen;              /* bumped each time the event is freed */
    union sp_event_data data;  /* inline payload */
};

struct sp_queue;

int  sp_queue_create(struct sp_queue **out);
void sp_queue_destroy(struct sp_queue *q);

/* Allocate an event and insert it.  Returns NULL only when out of memory.
 * Fill `data` after the call (it does not affect ordering). */
struct sp_event *sp_queue_push(struct sp_queue *q, sp_time t, unsigned prio,
                               sp_id target, uint16_t kind);
/* Same, tracked: *h receives a handle for cancel/reschedule. */
struct sp_event *sp_queue_push_tracked(struct sp_queue *q, sp_time t, unsigned prio,
                                       sp_id target, uint16_t kind, sp_event_handle *h);
/* The next event, or NULL if empty.  Does not remove it. */
struct sp_event *sp_queue_peek(const struct sp_queue *q);
/* Its time (SP_TIME_MAX if empty), without touching the event. */
sp_time sp_queue_next_time(const struct sp_queue *q);
/* Remove and free the next event, copying it to *out.  Returns 0 if empty. */
int sp_queue_pop(struct sp_queue *q, struct sp_event *out);

/* Dispatch protocol: begin returns the head (or NULL), which stays queued
 * while it is handled; end frees it unless it was rescheduled or cancelled. */
struct sp_event *sp_queue_begin(struct sp_queue *q);
void sp_queue_end(struct sp_queue *q);

/* The handle of a tracked event, or of the event being dispatched (which
 * then stays tracked); 0 for an untracked queued event. */
sp_event_handle sp_queue_handle(struct sp_queue *q, const struct sp_event *ev);
/* The live event behind `h`, or NULL if it fired or was cancelled. */
struct sp_event *sp_queue_lookup(const struct sp_queue *q, sp_event_handle h);
/* Remove and free.  SP_ENOTFOUND for a stale handle. */
int sp_queue_cancel(struct sp_queue *q, sp_event_handle h);
/* Move to time `t` (a new insertion sequence, as if pushed now). */
int sp_queue_reschedule(struct sp_queue *q, sp_event_handle h, sp_time t);
/* Same, on the event being dispatched (no handle needed). */
void sp_queue_reschedule_event(struct sp_queue *q, struct sp_event *ev, sp_time t);

size_t sp_queue_size(const struct sp_queue *q);
/* Bytes held by the queue (heap array plus event blocks). */
size_t sp_queue_memory(const struct sp_queue *q);
/* Check the heap property and tracked slots (tests): 0 if sound. */
int sp_queue_verify(const struct sp_queue *q);

#ifdef __cplusplus
}
#endif
#endif
