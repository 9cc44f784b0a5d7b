/*
 * test_queue.c — the event queue against a brute-force oracle.
 *
 * Randomised push / pop / cancel / reschedule sequences are mirrored in a
 * plain array; after every operation the heap property and slot
 * back-pointers are verified (libevent's regress_minheap.c does the same),
 * and every pop must return the oracle's minimum by (t, prio, sequence).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>
#include "spiral/event.h"
#include "spiral/rng.h"
#include "spiral/error.h"
#include "queue-internal.h"

struct ref {
    sp_time t;
    unsigned prio;
    uint64_t seq;
    sp_event_handle h;     /* 0 for an untracked event */
    uint32_t tag;
};

static int ref_less(const struct ref *a, const struct ref *b)
{
    if (a->t != b->t) return a->t < b->t;
    if (a->prio != b->prio) return a->prio < b->prio;
    return a->seq < b->seq;
}

static size_t ref_min(const struct ref *r, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (ref_less(&r[i], &r[best])) best = i;
    return best;
}

static void run_random_ops_from(uint64_t seed, size_t n_ops, sp_time t_range, uint32_t seq0)
{
    struct sp_queue *q;
    assert_int_equal(sp_queue_create(&q), SP_OK);
    if (seq0) sp_queue_debug_set_seq(q, seq0);
    struct sp_rng rng;
    sp_rng_init(&rng, seed, 7);
    struct ref *refs = calloc(n_ops, sizeof *refs);
    size_t n = 0;
    uint64_t seq = 0;
    uint32_t tag = 0;
    for (size_t op = 0; op < n_ops; op++) {
        uint64_t r = sp_rng_below(&rng, 10);
        if (r < 4 || n == 0) {                                  /* push */
            sp_time t = (sp_time)sp_rng_below(&rng, (uint64_t)t_range);
            unsigned prio = (unsigned)sp_rng_below(&rng, 3) * 4;
            sp_event_handle h = 0;
            struct sp_event *ev = sp_rng_below(&rng, 2)
                ? sp_queue_push_tracked(q, t, prio, 0, 0, &h)
                : sp_queue_push(q, t, prio, 0, 0);
            assert_non_null(ev);
            assert_int_equal(sp_queue_handle(q, ev), h);       /* 0 when untracked */
            ev->data.u[0] = ++tag;
            refs[n] = (struct ref){ t, prio, seq++, h, tag };
            n++;
        } else if (r < 7) {                                     /* pop */
            size_t m = ref_min(refs, n);
            struct sp_event out;
            assert_int_equal(sp_queue_pop(q, &out), 1);
            assert_int_equal(out.t, refs[m].t);
            assert_int_equal(out.data.u[0], refs[m].tag);
            if (refs[m].h) assert_null(sp_queue_lookup(q, refs[m].h));   /* now stale */
            refs[m] = refs[--n];
        } else if (r < 8) {                                     /* cancel */
            size_t k = (size_t)sp_rng_below(&rng, n);
            if (!refs[k].h) continue;                          /* untracked: no handle */
            assert_int_equal(sp_queue_cancel(q, refs[k].h), SP_OK);
            assert_int_equal(sp_queue_cancel(q, refs[k].h), SP_ENOTFOUND);
            refs[k] = refs[--n];
        } else {                                                /* reschedule */
            size_t k = (size_t)sp_rng_below(&rng, n);
            if (!refs[k].h) continue;
            sp_time t = (sp_time)sp_rng_below(&rng, (uint64_t)t_range);
            assert_int_equal(sp_queue_reschedule(q, refs[k].h, t), SP_OK);
            refs[k].t = t;
            refs[k].seq = seq++;
        }
        assert_int_equal(sp_queue_size(q), n);
        assert_int_equal(sp_queue_verify(q), 0);
    }
    while (n) {                                                 /* drain in order */
        size_t m = ref_min(refs, n);
        struct sp_event out;
        assert_int_equal(sp_queue_pop(q, &out), 1);
        assert_int_equal(out.data.u[0], refs[m].tag);
        refs[m] = refs[--n];
        assert_int_equal(sp_queue_verify(q), 0);
    }
    assert_int_equal(sp_queue_pop(q, NULL), 0);
    free(refs);
    sp_queue_destroy(q);
}

static void run_random_ops(uint64_t seed, size_t n_ops, sp_time t_range)
{
    run_random_ops_from(seed, n_ops, t_range, 0);
}

static void test_queue_sequence_renumbering_keeps_the_order(void **state)
{
    (void)state;
    /* Start just below the 28-bit sequence limit so each run crosses it,
     * with and without many equal times. */
    uint32_t lim = sp_queue_debug_seq_limit();
    for (uint64_t seed = 1; seed <= 10; seed++) {
        run_random_ops_from(seed, 3000, 1000000, lim - 100 * (uint32_t)seed);
        run_random_ops_from(seed + 50, 3000, 3, lim - 7 * (uint32_t)seed);
    }
}

static void test_queue_random_ops_match_sorted_oracle(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) run_random_ops(seed, 3000, 1000000);
}

static void test_queue_random_ops_with_many_ties(void **state)
{
    (void)state;
    /* A tiny time range makes most comparisons fall through to prio/seq. */
    for (uint64_t seed = 100; seed < 110; seed++) run_random_ops(seed, 3000, 4);
}

static void test_queue_equal_times_leave_in_insertion_order(void **state)
{
    (void)state;
    struct sp_queue *q;
    sp_queue_create(&q);
    for (uint32_t i = 0; i < 10000; i++) {
        struct sp_event *ev = sp_queue_push(q, 42, SP_PRIO_AGENT, 0, 0);
        ev->data.u[0] = i;
    }
    struct sp_event out;
    for (uint32_t i = 0; i < 10000; i++) {
        assert_int_equal(sp_queue_pop(q, &out), 1);
        assert_int_equal(out.data.u[0], i);
    }
    sp_queue_destroy(q);
}

static void test_queue_priority_class_breaks_time_ties(void **state)
{
    (void)state;
    struct sp_queue *q;
    sp_queue_create(&q);
    sp_queue_push(q, 5, SP_PRIO_RECORD, 0, 1);
    sp_queue_push(q, 5, SP_PRIO_PRICE, 0, 2);
    sp_queue_push(q, 4, SP_PRIO_RECORD, 0, 3);
    sp_queue_push(q, 5, SP_PRIO_AGENT, 0, 4);
    struct sp_event out;
    uint16_t order[4];
    for (int i = 0; i < 4; i++) { sp_queue_pop(q, &out); order[i] = out.kind; }
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 4);
    assert_int_equal(order[3], 1);
    sp_queue_destroy(q);
}

static void test_queue_dispatch_reschedule_of_head_equals_pop_push(void **state)
{
    (void)state;
    /* Two queues fed identically: one uses begin/reschedule/end, the other
     * pop + push.  They must release events in the same order. */
    struct sp_queue *a, *b;
    sp_queue_create(&a);
    sp_queue_create(&b);
    sp_queue_debug_set_seq(a, sp_queue_debug_seq_limit() - 5000);   /* renumbers mid-run */
    struct sp_rng ra, rb;
    sp_rng_init(&ra, 3, 1);
    sp_rng_init(&rb, 3, 1);
    for (uint32_t i = 0; i < 500; i++) {
        sp_time t = (sp_time)sp_rng_below(&ra, 100);
        sp_rng_below(&rb, 100);
        sp_queue_push(a, t, 0, i, 0)->data.u[0] = i;
        sp_queue_push(b, t, 0, i, 0)->data.u[0] = i;
    }
    for (int step = 0; step < 20000; step++) {
        struct sp_event *ev = sp_queue_begin(a);
        struct sp_event out;
        sp_queue_pop(b, &out);
        assert_int_equal(ev->data.u[0], out.data.u[0]);
        assert_int_equal(ev->t, out.t);
        sp_time dt = (sp_time)sp_rng_below(&ra, 50);
        sp_rng_below(&rb, 50);
        if (step % 7 == 0) {
            sp_queue_end(a);                                   /* let it go */
            struct sp_event *n1 = sp_queue_push(a, out.t + dt, 0, 0, 0);
            n1->data.u[0] = out.data.u[0];
        } else {
            sp_queue_reschedule_event(a, ev, out.t + dt);
            sp_queue_end(a);
        }
        struct sp_event *n2 = sp_queue_push(b, out.t + dt, 0, 0, 0);
        n2->data.u[0] = out.data.u[0];
        assert_int_equal(sp_queue_verify(a), 0);
    }
    sp_queue_destroy(a);
    sp_queue_destroy(b);
}

static void test_queue_handler_may_cancel_its_own_event(void **state)
{
    (void)state;
    struct sp_queue *q;
    sp_queue_create(&q);
    sp_queue_push(q, 1, 0, 0, 0);
    sp_queue_push(q, 2, 0, 0, 0);
    struct sp_event *ev = sp_queue_begin(q);
    sp_event_handle h = sp_queue_handle(q, ev);
    assert_int_equal(sp_queue_cancel(q, h), SP_OK);
    sp_event_handle hf;
    sp_queue_push_tracked(q, 3, 0, 0, 9, &hf);               /* may reuse the slot */
    sp_queue_end(q);                                          /* must not free it */
    assert_int_equal(sp_queue_size(q), 2);
    assert_non_null(sp_queue_lookup(q, hf));
    assert_int_equal(sp_queue_verify(q), 0);
    sp_queue_destroy(q);
}

static void test_queue_handle_taken_while_dispatching_stays_valid(void **state)
{
    (void)state;
    /* An untracked event asks for its handle from its handler, reschedules
     * itself, and is later cancelled through that handle. */
    struct sp_queue *q;
    sp_queue_create(&q);
    for (int i = 0; i < 50; i++) sp_queue_push(q, 10 + i, 0, 0, 0);
    sp_queue_push(q, 1, 0, 0, 7);
    struct sp_event *ev = sp_queue_begin(q);
    assert_int_equal(ev->kind, 7);
    sp_event_handle h = sp_queue_handle(q, ev);
    assert_int_not_equal(h, 0);
    sp_queue_reschedule_event(q, ev, 30);
    sp_queue_end(q);
    assert_int_equal(sp_queue_verify(q), 0);
    assert_int_equal(sp_queue_reschedule(q, h, 100), SP_OK);
    assert_int_equal(sp_queue_verify(q), 0);
    assert_int_equal(sp_queue_cancel(q, h), SP_OK);
    assert_int_equal(sp_queue_size(q), 50);
    assert_int_equal(sp_queue_verify(q), 0);
    sp_queue_destroy(q);
}

static void test_queue_stale_handles_are_rejected(void **state)
{
    (void)state;
    struct sp_queue *q;
    sp_queue_create(&q);
    sp_event_handle h;
    sp_queue_push_tracked(q, 1, 0, 0, 0, &h);
    assert_int_not_equal(h, 0);
    assert_int_equal(sp_queue_pop(q, NULL), 1);
    sp_queue_push(q, 2, 0, 0, 0);                              /* reuses the slot */
    assert_int_equal(sp_queue_reschedule(q, h, 5), SP_ENOTFOUND);
    assert_int_equal(sp_queue_cancel(q, h), SP_ENOTFOUND);
    assert_int_equal(sp_queue_cancel(q, 0), SP_ENOTFOUND);
    assert_int_equal(sp_queue_cancel(q, 0xffffffffffffULL), SP_ENOTFOUND);
    sp_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_random_ops_match_sorted_oracle),
        cmocka_unit_test(test_queue_random_ops_with_many_ties),
        cmocka_unit_test(test_queue_sequence_renumbering_keeps_the_order),
        cmocka_unit_test(test_queue_equal_times_leave_in_insertion_order),
        cmocka_unit_test(test_queue_priority_class_breaks_time_ties),
        cmocka_unit_test(test_queue_dispatch_reschedule_of_head_equals_pop_push),
        cmocka_unit_test(test_queue_handler_may_cancel_its_own_event),
        cmocka_unit_test(test_queue_handle_taken_while_dispatching_stays_valid),
        cmocka_unit_test(test_queue_stale_handles_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
