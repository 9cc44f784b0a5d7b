/*
 * bench.c — spiral-bench: the engine's speed, measured beside baselines.
 *
 *   hold model   N pending events; each dispatched event reschedules itself
 *                at t + U[0, 2*mean) (the classic priority-queue benchmark).
 *                Baseline: a bare binary heap of (time, seq) pairs doing
 *                pop + push with the same random draws, in the same process.
 *                spiral: the full engine — libevent loop, batch step event,
 *                dispatch through the ops table, 4-ary heap with slot indices.
 *   recorder     the hold model at N = 1e3 where every event also appends a
 *                6-column row to an HDF5 table, against the same run with
 *                recording off; compressed (deflate 1 + shuffle) and not.
 *                Reports rows/s, MB/s and memory at quarter points (flat
 *                memory = bounded buffers).
 *
 * Not a test: figures depend on the machine.  Usage:
 *   spiral-bench [--quick] [--only hold|recorder] [--pending 1000|100000|1000000] [--out DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/rng.h"
#include "spiral/sim.h"

#define MEAN_INC 1000   /* mean increment of the hold model, in us */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* ---- baseline: a bare binary heap ------------------------------------- */

struct bentry { int64_t t; uint64_t seq; };

static inline int bless(const struct bentry *a, const struct bentry *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static double baseline_hold(size_t n_pending, uint64_t n_events, uint64_t *checksum)
{
    struct bentry *h = malloc((n_pending + 1) * sizeof *h);
    struct sp_rng rng;
    sp_rng_init(&rng, 1, 1);
    uint64_t seq = 0;
    size_t n = 0;
    for (size_t i = 0; i < n_pending; i++) {          /* push */
        struct bentry e = { (int64_t)sp_rng_below(&rng, 2 * MEAN_INC), seq++ };
        size_t k = n++;
        while (k > 0 && bless(&e, &h[(k - 1) / 2])) { h[k] = h[(k - 1) / 2]; k = (k - 1) / 2; }
        h[k] = e;
    }
    uint64_t sum = 0;
    double t0 = now_s();
    for (uint64_t ev = 0; ev < n_events; ev++) {
        struct bentry top = h[0];                       /* pop */
        struct bentry last = h[--n];
        size_t k = 0;
        for (;;) {
            size_t c = 2 * k + 1;
            if (c >= n) break;
            if (c + 1 < n && bless(&h[c + 1], &h[c])) c++;
            if (!bless(&h[c], &last)) break;
            h[k] = h[c];
            k = c;
        }
        h[k] = last;
        sum += (uint64_t)top.t;
        struct bentry e = { top.t + (int64_t)sp_rng_below(&rng, 2 * MEAN_INC), seq++ };
        k = n++;                                        /* push */
        while (k > 0 && bless(&e, &h[(k - 1) / 2])) { h[k] = h[(k - 1) / 2]; k = (k - 1) / 2; }
        h[k] = e;
    }
    double dt = now_s() - t0;
    free(h);
    *checksum = sum;
    return dt;
}

/* ---- spiral: the engine ------------------------------------------------ */

struct hold {
    struct sp_rng rng;
    uint64_t left;
    uint64_t sum;
    struct sp_rec_table *tab;
};

static void hold_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct hold *h = self;
    h->sum += (uint64_t)ev->t;
    if (h->tab) {
        union sp_rec_val row[6];
        row[0].f = sp_time_sec(ev->t);
        row[1].i = ev->t;
        row[2].f = ev->data.f[0];
        row[3].f = ev->data.f[1];
        row[4].i = (int64_t)h->left;
        row[5].i = (int64_t)h->sum;
        sp_rec_append(h->tab, row);
    }
    if (--h->left == 0) sp_sim_request_stop(sim);
    sp_sim_again(sim, ev, ev->t + (sp_time)sp_rng_below(&h->rng, 2 * MEAN_INC));
}

static const struct sp_module_ops hold_ops = {
    .kind = "bench", .type = "hold", .summary = "hold-model benchmark entity",
    .state_size = sizeof(struct hold), .on_event = hold_on_event,
};

struct engine_result { double seconds; uint64_t sum; double rss_q[4]; size_t buf_bytes; };

static double g_unused;

static int engine_hold(size_t n_pending, uint64_t n_events, struct sp_rec *rec,
                       struct engine_result *res)
{
    struct sp_sim *sim;
    struct hold h = { .left = n_events };
    sp_rng_init(&h.rng, 1, 1);
    if (sp_sim_create(&sim, 1)) return -1;
    sp_id id;
    sp_sim_add_entity(sim, "hold", &hold_ops, &h, &id);
    if (rec) {
        static const struct sp_rec_col cols[6] = {
            { "t", SP_REC_F64, "s", "time", NULL },
            { "t_us", SP_REC_I64, "us", "time", NULL },
            { "a", SP_REC_F64, "1", "payload 0", NULL },
            { "b", SP_REC_F64, "1", "payload 1", NULL },
            { "c", SP_REC_I64, "1", "events left", NULL },
            { "d", SP_REC_I64, "1", "checksum", NULL },
        };
        if (sp_rec_table_create(rec, "/bench/hold", cols, 6, &h.tab)) return -1;
    }
    for (size_t i = 0; i < n_pending; i++)
        sp_sim_schedule(sim, (sp_time)sp_rng_below(&h.rng, 2 * MEAN_INC), SP_PRIO_AGENT, id, 0)
            ->data.u[0] = i;
    struct sp_run_opts o = { .until = SP_TIME_MAX };
    double t0 = now_s();
    if (rec) {
        /* Run in quarters to sample memory as the output grows. */
        uint64_t quarter = n_events / 4;
        for (int q = 0; q < 4; q++) {
            h.left = quarter;
            sp_sim_run(sim, &o);
            res->rss_q[q] = rss_mib();
        }
        res->buf_bytes = sp_rec_buffer_bytes(rec);
    } else {
        sp_sim_run(sim, &o);
    }
    res->seconds = now_s() - t0;
    res->sum = h.sum;
    sp_sim_destroy(sim);
    return 0;
}

static void bench_hold(bool quick, size_t only_size)
{
    static const size_t sizes[] = { 1000, 100000, 1000000 };
    printf("== hold model (events/s; spiral = libevent loop + engine, baseline = bare binary heap)\n");
    printf("%10s %12s %14s %14s %8s %10s\n", "pending", "events", "baseline M/s", "spiral M/s",
           "ratio", "queue MiB");
    for (size_t i = 0; i < 3; i++) {
        size_t n = sizes[i];
        if (only_size && n != only_size) continue;
        uint64_t m = quick ? 2000000 : (n >= 1000000 ? 10000000 : 20000000);
        uint64_t sum_b;
        struct engine_result r = { 0 };
        /* best of 3 for each, interleaved, to damp machine noise */
        double best_b = 1e30, best_e = 1e30;
        for (int rep = 0; rep < (quick ? 1 : 3); rep++) {
            double b = baseline_hold(n, m, &sum_b);
            if (b < best_b) best_b = b;
            engine_hold(n, m, NULL, &r);
            if (r.seconds < best_e) best_e = r.seconds;
        }
        double qmib = (double)n * (16.0 + 64.0 + 4.0) / (1024.0 * 1024.0);   /* entry, event, slot */
        printf("%10zu %12llu %14.2f %14.2f %7.0f%% %10.1f\n", n, (unsigned long long)m,
               (double)m / best_b / 1e6, (double)m / best_e / 1e6, 100.0 * best_b / best_e, qmib);
        fflush(stdout);
    }
}

static void bench_recorder(bool quick, const char *dir)
{
    const size_t n = 1000;
    const uint64_t m = quick ? 2000000 : 20000000;
    printf("\n== recorder: one 6-column row per event, hold model at %zu pending, %llu events\n", n,
           (unsigned long long)m);
    struct engine_result off = { 0 };
    double best_off = 1e30;
    for (int rep = 0; rep < (quick ? 1 : 3); rep++) {
        engine_hold(n, m, NULL, &off);
        if (off.seconds < best_off) best_off = off.seconds;
    }
    printf("%-22s %8.3f s  %6.2f M events/s\n", "recording off", best_off, (double)m / best_off / 1e6);
    for (int level = 0; level <= 1; level++) {
        char path[512];
        snprintf(path, sizeof path, "%s/spiral-bench-rec%d.h5", dir, level);
        struct sp_rec *rec;
        struct sp_rec_opts ro = { level, 0 };
        if (sp_rec_create(&rec, path, &ro)) { printf("cannot create %s\n", path); return; }
        struct engine_result on = { 0 };
        engine_hold(n, m, rec, &on);
        double t0 = now_s();
        sp_rec_close(rec, "complete");
        double close_s = now_s() - t0;
        double total = on.seconds + close_s;
        FILE *f = fopen(path, "rb");
        long size = 0;
        if (f) { fseek(f, 0, SEEK_END); size = ftell(f); fclose(f); }
        printf("%-22s %8.3f s  %6.2f M rows/s  %7.1f MB/s raw  file %.1f MiB  overhead %+.0f%%\n",
               level ? "recording, deflate 1" : "recording, no filter", total, (double)m / total / 1e6,
               (double)m * 48.0 / total / 1e6, (double)size / 1048576.0,
               100.0 * (total - best_off) / best_off);
        printf("%-22s run %.3f s + close (drain, tails) %.3f s\n", "", on.seconds, close_s);
        printf("%-22s RSS at quarters: %.1f %.1f %.1f %.1f MiB; row buffers %.2f MiB\n", "",
               on.rss_q[0], on.rss_q[1], on.rss_q[2], on.rss_q[3], (double)on.buf_bytes / 1048576.0);
        unlink(path);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *only = NULL, *dir = "/tmp";
    size_t only_size = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--pending") && i + 1 < argc) only_size = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: spiral-bench [--quick] [--only hold|recorder] [--pending N] [--out DIR]\n");
            return 2;
        }
    }
    (void)g_unused;
    printf("spiral-bench (%s)\n", quick ? "quick" : "full");
    if (!only || !strcmp(only, "hold")) bench_hold(quick, only_size);
    if (!only || !strcmp(only, "recorder")) bench_recorder(quick, dir);
    printf("\npeak RSS %.1f MiB\n", peak_rss_mib());
    printf("positions processed: n/a until the lending issue adds positions\n");
    return 0;
}
