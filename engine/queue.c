/*
 * queue.c — the event queue: a binary min-heap over pooled events.
 *
 * Invariants (checked by sp_queue_verify, exercised by tests/test_queue.c):
 *   - heap[i] <= heap[c] for every child c = 2i+1, 2i+2, ordering by (t, key);
 *   - the heap entry caches (t, key) of its event so comparisons never touch
 *     the event itself;
 *   - *tracked* events (pushed with a handle, or the event being dispatched)
 *     carry TRACKED in their entry's index, and slot[index] == their heap
 *     position; every other event has slot == NOT_QUEUED.
 *
 * Why tracking is opt-in: keeping every event's heap position costs one
 * random write per heap move (libevent's min_heap_idx); at 10^6 pending
 * events that was a third of the engine's time in spiral-bench.  Only events
 * a module may cancel or move need it, so only those pay: a module that
 * wants a handle asks for one at push time (sp_queue_push_tracked).  The
 * event being dispatched is tracked for the duration of its handler, so the
 * handler can reschedule it in place.  Cancel and reschedule of a tracked
 * event are O(log n).
 *
 * Events are allocated in blocks of SP_QBLOCK and never move, so pointers
 * stay valid for an event's life; freed events go on an index free list.
 * Measured with spiral-bench (hold model): a binary heap beat 4- and 8-ary
 * ones here at 10^3..10^6 pending events, and prefetching the root's
 * children's events at dispatch hid most of the miss on the next head.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/event.h"
#include "spiral/error.h"
#include "queue-internal.h"

static inline bool less(const struct entry *a, const struct entry *b)
{
    return a->t < b->t || (a->t == b->t && a->k < b->k);
}

static inline struct sp_event *event_at(const struct sp_queue *q, uint32_t index)
{
    return sp_queue_event_at(q, index);
}

int sp_queue_create(struct sp_queue **out)
{
    struct sp_queue *q = calloc(1, sizeof *q);
    if (!q) return SP_ENOMEM;
    q->free_head = UINT32_MAX;
    *out = q;
    return SP_OK;
}

void sp_queue_destroy(struct sp_queue *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->n_blocks; i++) free(q->blocks[i]);
    free(q->blocks);
    free(q->slot);
    free(q->heap);
    free(q);
}

static int grow_events(struct sp_queue *q)
{
    if ((q->n_blocks + 1) * (size_t)SP_QBLOCK > MAX_EVENTS) return SP_ENOMEM;
    if (q->n_blocks == q->cap_blocks) {
        size_t cap = q->cap_blocks ? 2 * q->cap_blocks : 8;
        struct sp_event **b = realloc(q->blocks, cap * sizeof *b);
        if (!b) return SP_ENOMEM;
        q->blocks = b;
        q->cap_blocks = cap;
    }
    struct sp_event *blk = calloc(SP_QBLOCK, sizeof *blk);
    if (!blk) return SP_ENOMEM;
    uint32_t *slot = realloc(q->slot, (q->n_blocks + 1) * SP_QBLOCK * sizeof *slot);
    if (!slot) { free(blk); return SP_ENOMEM; }
    q->slot = slot;
    uint32_t base = (uint32_t)(q->n_blocks << SP_QBLOCK_BITS);
    q->blocks[q->n_blocks++] = blk;
    /* Thread the new block onto the free list in index order. */
    for (uint32_t i = SP_QBLOCK; i-- > 0;) {
        blk[i].index = base + i;
        q->slot[base + i] = NOT_QUEUED;
        blk[i].target = q->free_head;       /* free-list link */
        q->free_head = base + i;
    }
    return SP_OK;
}

static inline void place(struct sp_queue *q, size_t i, struct entry e)
{
    q->heap[i] = e;
    if (e.k & TRACKED) q->slot[INDEX(K_INDEX(e.k))] = (uint32_t)i;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return less(x, y) ? -1 : less(y, x) ? 1 : 0;
}

/* The 28-bit sequence ran out: renumber the pending events 0..n-1 in their
 * order (a sorted array is a heap), so relative order is kept exactly.  Once
 * per 2^28 insertions, O(n log n). */
static void renumber(struct sp_queue *q)
{
    qsort(q->heap, q->n, sizeof *q->heap, cmp_entry);
    for (size_t i = 0; i < q->n; i++) {
        struct entry *e = &q->heap[i];
        e->k = MAKE_K(e->k >> 60, i, K_INDEX(e->k));
        struct sp_event *ev = event_at(q, K_INDEX(e->k));
        ev->key = e->k & ~(uint64_t)TRACKED;
        if (e->k & TRACKED) q->slot[ev->index] = (uint32_t)i;
    }
    q->seq = (uint32_t)q->n;
}

static inline uint32_t next_seq(struct sp_queue *q)
{
    if (q->seq == SEQ_LIMIT) renumber(q);
    return q->seq++;
}

static void sift_up(struct sp_queue *q, size_t i, struct entry e)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(&e, &q->heap[p])) break;
        place(q, i, q->heap[p]);
        i = p;
    }
    place(q, i, e);
}

static void sift_down(struct sp_queue *q, size_t i, struct entry e)
{
    struct entry *h = q->heap;
    const size_t n = q->n;
    /* While both children exist, pick the smaller without a branch (the
     * comparison is a coin flip the predictor cannot learn). */
    for (size_t c; (c = 2 * i + 2) < n;) {
        c -= less(&h[c - 1], &h[c]);
        if (!less(&h[c], &e)) goto done;
        place(q, i, h[c]);
        i = c;
    }
    if (2 * i + 1 < n && less(&h[2 * i + 1], &e)) {
        place(q, i, h[2 * i + 1]);
        i = 2 * i + 1;
    }
done:
    place(q, i, e);
}

/* Put `e` at position i after its key changed or a hole opened there. */
static void resift(struct sp_queue *q, size_t i, struct entry e)
{
    if (i > 0 && less(&e, &q->heap[(i - 1) / 2])) sift_up(q, i, e);
    else sift_down(q, i, e);
}

static struct sp_event *push(struct sp_queue *q, sp_time t, unsigned prio, sp_id target,
                             uint16_t kind, uint32_t tracked)
{
    if (q->free_head == UINT32_MAX && grow_events(q)) return NULL;
    if (q->n >= SEQ_LIMIT - 1) return NULL;         /* 2^28 pending events */
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 1024;
        struct entry *h = realloc(q->heap, cap * sizeof *h);
        if (!h) return NULL;
        q->heap = h;
        q->cap = cap;
    }
    struct sp_event *ev = event_at(q, q->free_head);
    q->free_head = ev->target;
    ev->t = t;
    ev->key = MAKE_K(prio & 0xf, next_seq(q), ev->index);
    ev->target = target;
    ev->kind = kind;
    memset(&ev->data, 0, sizeof ev->data);
    struct entry e = { t, ev->key | tracked };
    sift_up(q, q->n++, e);
    return ev;
}

struct sp_event *sp_queue_push(struct sp_queue *q, sp_time t, unsigned prio,
                               sp_id target, uint16_t kind)
{
    return push(q, t, prio, target, kind, 0);
}

struct sp_event *sp_queue_push_tracked(struct sp_queue *q, sp_time t, unsigned prio,
                                       sp_id target, uint16_t kind, sp_event_handle *h)
{
    struct sp_event *ev = push(q, t, prio, target, kind, TRACKED);
    if (ev && h) *h = ((uint64_t)ev->gen << 32) | ((uint64_t)ev->index + 1);
    return ev;
}

static void free_event(struct sp_queue *q, struct sp_event *ev)
{
    q->slot[ev->index] = NOT_QUEUED;
    ev->gen++;
    ev->target = q->free_head;
    q->free_head = ev->index;
    if (q->running == ev) q->running = NULL;
}

/* Remove the entry at position i from the heap (the event stays allocated). */
static void remove_at(struct sp_queue *q, size_t i)
{
    struct entry last = q->heap[--q->n];
    if (i < q->n) resift(q, i, last);
}

struct sp_event *sp_queue_peek(const struct sp_queue *q)
{
    return q->n ? event_at(q, K_INDEX(q->heap[0].k)) : NULL;
}

sp_time sp_queue_next_time(const struct sp_queue *q)
{
    return q->n ? q->heap[0].t : SP_TIME_MAX;
}

int sp_queue_pop(struct sp_queue *q, struct sp_event *out)
{
    if (!q->n) return 0;
    struct sp_event *ev = event_at(q, K_INDEX(q->heap[0].k));
    if (out) *out = *ev;
    remove_at(q, 0);
    free_event(q, ev);
    return 1;
}

struct sp_event *sp_queue_begin(struct sp_queue *q)
{
    if (!q->n) return NULL;
    struct entry *root = &q->heap[0];
    struct sp_event *ev = event_at(q, K_INDEX(root->k));
    q->running = ev;
    q->running_requeued = false;
    q->running_was_tracked = (root->k & TRACKED) != 0;
    root->k |= TRACKED;                      /* tracked while its handler runs */
    q->slot[ev->index] = 0;
    /* The next head is one of the root's children (or this event again):
     * fetch their events now so the miss overlaps this event's handler. */
    if (q->n > 1) __builtin_prefetch(event_at(q, K_INDEX(q->heap[1].k)));
    if (q->n > 2) __builtin_prefetch(event_at(q, K_INDEX(q->heap[2].k)));
    return ev;
}

void sp_queue_end(struct sp_queue *q)
{
    struct sp_event *ev = q->running;
    if (!ev) return;                         /* cancelled by its own handler */
    q->running = NULL;
    uint32_t pos = q->slot[ev->index];
    if (!q->running_requeued) {
        remove_at(q, pos);
        free_event(q, ev);
    } else if (!q->running_was_tracked) {
        q->heap[pos].k &= ~(uint64_t)TRACKED;   /* back to untracked */
        q->slot[ev->index] = NOT_QUEUED;
    }
}

sp_event_handle sp_queue_handle(struct sp_queue *q, const struct sp_event *ev)
{
    if (ev == q->running) q->running_was_tracked = true;   /* stays tracked */
    else if (q->slot[ev->index] == NOT_QUEUED) return 0;   /* not tracked */
    return ((uint64_t)ev->gen << 32) | ((uint64_t)ev->index + 1);
}

struct sp_event *sp_queue_lookup(const struct sp_queue *q, sp_event_handle h)
{
    uint64_t idx1 = h & 0xffffffffULL;
    if (idx1 == 0 || idx1 - 1 >= ((uint64_t)q->n_blocks << SP_QBLOCK_BITS)) return NULL;
    struct sp_event *ev = event_at(q, (uint32_t)(idx1 - 1));
    if (q->slot[ev->index] == NOT_QUEUED || ev->gen != (uint16_t)(h >> 32)) return NULL;
    return ev;
}

int sp_queue_cancel(struct sp_queue *q, sp_event_handle h)
{
    struct sp_event *ev = sp_queue_lookup(q, h);
    if (!ev) return SP_ENOTFOUND;
    remove_at(q, q->slot[ev->index]);
    free_event(q, ev);
    return SP_OK;
}

static void reschedule(struct sp_queue *q, struct sp_event *ev, sp_time t)
{
    unsigned prio = (unsigned)(ev->key >> 60);
    uint32_t seq = next_seq(q);              /* may renumber: read slot after */
    ev->t = t;
    ev->key = MAKE_K(prio, seq, ev->index);
    struct entry e = { t, ev->key | TRACKED };
    resift(q, q->slot[ev->index], e);
}

void sp_queue_reschedule_event(struct sp_queue *q, struct sp_event *ev, sp_time t)
{
    if (ev == q->running) q->running_requeued = true;
    reschedule(q, ev, t);
}

int sp_queue_reschedule(struct sp_queue *q, sp_event_handle h, sp_time t)
{
    struct sp_event *ev = sp_queue_lookup(q, h);
    if (!ev) return SP_ENOTFOUND;
    sp_queue_reschedule_event(q, ev, t);
    return SP_OK;
}

size_t sp_queue_size(const struct sp_queue *q) { return q->n; }

size_t sp_queue_memory(const struct sp_queue *q)
{
    return q->cap * sizeof(struct entry) + q->cap_blocks * sizeof(void *)
         + q->n_blocks * SP_QBLOCK * (sizeof(struct sp_event) + sizeof(uint32_t)) + sizeof *q;
}

int sp_queue_verify(const struct sp_queue *q)
{
    size_t tracked = 0;
    for (size_t i = 0; i < q->n; i++) {
        const struct entry *e = &q->heap[i];
        const struct sp_event *ev = event_at(q, K_INDEX(e->k));
        if (ev->t != e->t || ev->key != (e->k & ~(uint64_t)TRACKED)) return -1;
        if (i > 0 && less(e, &q->heap[(i - 1) / 2])) return -2;
        if (e->k & TRACKED) {
            if (q->slot[ev->index] != i) return -3;
            tracked++;
        }
    }
    size_t marked = 0;               /* no stale slot outside the heap */
    for (size_t k = 0; k < q->n_blocks * SP_QBLOCK; k++) marked += q->slot[k] != NOT_QUEUED;
    return marked == tracked ? 0 : -4;
}

int sp_queue_reset_pool(struct sp_queue *q, size_t n_events, size_t heap_cap)
{
    if (n_events % SP_QBLOCK || n_events > MAX_EVENTS || heap_cap > n_events) return SP_EINVAL;
    for (size_t i = 0; i < q->n_blocks; i++) free(q->blocks[i]);
    free(q->blocks);
    free(q->slot);
    free(q->heap);
    memset(q, 0, sizeof *q);
    q->free_head = UINT32_MAX;
    /* Everything at its final size at once (growing block by block would
     * realloc the slot array once per block: quadratic at 10^6 events). */
    size_t nb = n_events / SP_QBLOCK, cap = heap_cap > 1024 ? heap_cap : 1024;
    q->heap = malloc(cap * sizeof *q->heap);
    q->blocks = malloc((nb ? nb : 1) * sizeof *q->blocks);
    q->slot = malloc((n_events ? n_events : 1) * sizeof *q->slot);
    if (!q->heap || !q->blocks || !q->slot) return SP_ENOMEM;
    q->cap = cap;
    q->cap_blocks = nb ? nb : 1;
    for (size_t b = 0; b < nb; b++) {
        struct sp_event *blk = calloc(SP_QBLOCK, sizeof *blk);
        if (!blk) return SP_ENOMEM;
        q->blocks[q->n_blocks++] = blk;
    }
    /* All free, in index order (the snapshot then sets the real order). */
    for (size_t i = n_events; i-- > 0;) {
        struct sp_event *ev = event_at(q, (uint32_t)i);
        ev->index = (uint32_t)i;
        ev->target = q->free_head;
        q->slot[i] = NOT_QUEUED;
        q->free_head = (uint32_t)i;
    }
    return SP_OK;
}

void sp_queue_debug_set_seq(struct sp_queue *q, uint32_t next)
{
    /* Only forward, past every pending sequence: order is unchanged. */
    if (next > q->seq && next <= SEQ_LIMIT) q->seq = next;
}

uint32_t sp_queue_debug_seq_limit(void) { return SEQ_LIMIT; }
