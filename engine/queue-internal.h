/*
 * queue-internal.h — test hooks of the event queue (not public API).
 */
#ifndef SPIRAL_QUEUE_INTERNAL_H
#define SPIRAL_QUEUE_INTERNAL_H

#include <stdint.h>

struct sp_queue;

/* Move the insertion-sequence counter (tests of the renumbering at 2^28). */
void sp_queue_debug_set_seq(struct sp_queue *q, uint32_t next);
/* The insertion-sequence limit that triggers renumbering. */
uint32_t sp_queue_debug_seq_limit(void);

#endif
