/*
 * queue-internal.h — the layout of the event queue, for queue.c and the
 * snapshot code (engine/snapshot.c), plus test hooks.  Not public API.
 *
 * A snapshot must reproduce the pool exactly — the same event indexes and
 * generations (modules keep handles = index + generation), the same free
 * list order (which index the next push gets), the same insertion sequence
 * counter and the same heap array — so snapshot.c reads this layout
 * directly and rebuilds it through sp_queue_reset_pool().
 */
#ifndef SPIRAL_QUEUE_INTERNAL_H
#define SPIRAL_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "spiral/event.h"

#define SP_QBLOCK_BITS 12
#define SP_QBLOCK (1u << SP_QBLOCK_BITS)
#define NOT_QUEUED UINT32_MAX
#define TRACKED 0x80000000u
#define INDEX(x) ((x) & ~TRACKED)
#define MAX_EVENTS TRACKED             /* indices must leave the top bit free */

/* 16 bytes: (t, k) with k = prio << 60 | seq << 32 | TRACKED | index.
 * Comparing (t, k) orders by time, priority class, then insertion sequence
 * (seq is unique among pending events, so the index never decides).  At 10^6
 * pending events the heap outgrows the caches; 16-byte entries instead of 24
 * made the whole engine ~20% faster there (spiral-bench). */
struct entry {
    sp_time t;
    uint64_t k;
};

#define SEQ_BITS 28
#define SEQ_LIMIT (1u << SEQ_BITS)
#define K_INDEX(k) ((uint32_t)(k))
#define MAKE_K(prio, seq, idx) (((uint64_t)(prio) << 60) | ((uint64_t)(seq) << 32) | (idx))

struct sp_queue {
    struct entry *heap;
    size_t n, cap;
    struct sp_event **blocks;
    uint32_t *slot;                    /* heap position of tracked events */
    size_t n_blocks, cap_blocks;
    uint32_t free_head;                /* index of first free event, or UINT32_MAX */
    uint32_t seq;                      /* next insertion sequence, < SEQ_LIMIT */
    struct sp_event *running;          /* event being dispatched, NULL if none/cancelled */
    bool running_requeued;
    bool running_was_tracked;          /* keep it tracked after dispatch */
};

static inline struct sp_event *sp_queue_event_at(const struct sp_queue *q, uint32_t index)
{
    index = INDEX(index);
    return &q->blocks[index >> SP_QBLOCK_BITS][index & (SP_QBLOCK - 1)];
}

/* Empty the queue and give it exactly `n_events` pooled events (a multiple
 * of SP_QBLOCK), all free, generations 0, free list in index order; the
 * heap gets room for `heap_cap` entries.  For restoring snapshots, which
 * then fill in generations, the free list, the heap and the slots. */
int sp_queue_reset_pool(struct sp_queue *q, size_t n_events, size_t heap_cap);

/* Move the insertion-sequence counter (tests of the renumbering at 2^28). */
void sp_queue_debug_set_seq(struct sp_queue *q, uint32_t next);
/* The insertion-sequence limit that triggers renumbering. */
uint32_t sp_queue_debug_seq_limit(void);

#endif
