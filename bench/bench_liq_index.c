/*
 * bench_liq_index.c — the liquidation index at 10^6 positions.
 *
 * Standalone (not built by CMake):
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -I include -I market bench/bench_liq_index.c \
 *      market/liq_index.c engine/rng.c engine/error.c -lm -o /tmp/bench_liq_index
 *   /tmp/bench_liq_index [n_positions [median_hf_minus_1]]
 *
 * Book: n positions over 3 assets (ETH 2000, USDC 1, BTC 30000; LT 0.825,
 * 0.78, 0.70); 60 % single-collateral (asset uniform), 40 % multi-collateral
 * (two or three assets); collateral value log-normal; HF − 1 log-normal
 * (σ = 1) with median 0.2 by default (so many positions sit near the
 * boundary: a stress book), 1 % start liquidatable.  Reports memory per position, build time, the cost of
 * oracle moves of several sizes against the positions they touch and cross,
 * a full brute-force scan for comparison, and a 50 % crash.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "spiral/rng.h"
#include "liq_index.h"

#define NA 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct book {
    uint32_t n;
    double *c, *debt;
    double lt[NA], price[NA];
};

/* The brute-force scan: W < D for every position (what the index avoids). */
static size_t scan(const struct book *b)
{
    size_t n_liq = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        const double *c = &b->c[(size_t)i * NA];
        double w = 0.0;
        for (int a = 0; a < NA; a++) w += c[a] * b->price[a] * b->lt[a];
        n_liq += b->debt[i] > 0.0 && w < b->debt[i];
    }
    return n_liq;
}

static void count_change(void *ctx, uint32_t id, int liquidatable)
{
    (void)id;
    (void)liquidatable;
    (*(uint64_t *)ctx)++;
}

struct move_result {
    double us;          /* mean microseconds per update */
    double touched;     /* mean positions re-checked per update */
    double multi;       /* of which multi-collateral */
    double changed;     /* mean state changes per update */
};

/* `steps` oracle updates of relative size `rel`, random asset and sign. */
static struct move_result moves(struct sp_liq_index *ix, struct book *b, struct sp_rng *g,
                                double rel, int steps)
{
    struct sp_liq_index_stats s0, s1;
    uint64_t n_cb = 0;
    sp_liq_index_stats(ix, &s0);
    double t = 0.0;
    for (int k = 0; k < steps; k++) {
        uint32_t a = (uint32_t)sp_rng_below(g, NA);
        double f = sp_rng_below(g, 2) ? 1.0 + rel : 1.0 / (1.0 + rel);
        double p = b->price[a] * f;
        double t0 = now();
        sp_liq_index_set_price(ix, a, p, count_change, &n_cb);
        t += now() - t0;
        b->price[a] = p;
    }
    sp_liq_index_stats(ix, &s1);
    return (struct move_result){ 1e6 * t / steps, (double)(s1.n_touched - s0.n_touched) / steps,
                                 (double)(s1.n_touched_multi - s0.n_touched_multi) / steps,
                                 (double)(s1.n_changed - s0.n_changed) / steps };
}

int main(int argc, char **argv)
{
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000u;
    double hf_med = argc > 2 ? strtod(argv[2], NULL) : 0.2;
    struct book b = { .n = n, .lt = { 0.825, 0.78, 0.70 }, .price = { 2000.0, 1.0, 30000.0 } };
    b.c = calloc((size_t)n * NA, sizeof *b.c);
    b.debt = calloc(n, sizeof *b.debt);
    if (!b.c || !b.debt) return 1;
    struct sp_rng g;
    sp_rng_init(&g, 42, sp_rng_key("bench_liq_index"));
    uint32_t n_multi = 0;
    for (uint32_t i = 0; i < n; i++) {
        double *c = &b.c[(size_t)i * NA];
        if (sp_rng_uniform(&g) < 0.6) {
            uint32_t a = (uint32_t)sp_rng_below(&g, NA);
            c[a] = 10000.0 * exp(sp_rng_normal(&g)) / b.price[a];
        } else {
            n_multi++;
            uint32_t skip = sp_rng_below(&g, 2) ? (uint32_t)sp_rng_below(&g, NA) : NA;
            for (uint32_t a = 0; a < NA; a++)
                if (a != skip) c[a] = 10000.0 * exp(sp_rng_normal(&g)) / b.price[a];
        }
        double w = 0.0;
        for (int a = 0; a < NA; a++) w += c[a] * b.price[a] * b.lt[a];
        double hf = sp_rng_uniform(&g) < 0.01 ? 0.9 + 0.1 * sp_rng_uniform(&g)
                                              : 1.0 + hf_med * exp(sp_rng_normal(&g));
        b.debt[i] = w / hf;
    }

    printf("liq_index benchmark: %u positions (%u multi-collateral), 3 assets, "
           "median HF %.2f\n", n, n_multi, 1.0 + hf_med);
    for (int hint = 1; hint >= 0; hint--) {
        struct sp_liq_index *ix = NULL;
        if (sp_liq_index_create(NA, b.lt, hint ? n : 0, &ix)) return 1;
        for (uint32_t a = 0; a < NA; a++) sp_liq_index_set_price(ix, a, b.price[a], NULL, NULL);
        double t0 = now();
        for (uint32_t i = 0; i < n; i++)
            if (sp_liq_index_upsert(ix, i, &b.c[(size_t)i * NA], b.debt[i], NULL)) return 1;
        double t1 = now();
        size_t bytes = sp_liq_index_bytes(ix);
        printf("  build %s: %.3f s (%.0f ns/upsert); memory %zu B = %.1f B/position\n",
               hint ? "with capacity hint" : "growing (no hint) ", t1 - t0,
               1e9 * (t1 - t0) / n, bytes, (double)bytes / n);
        sp_liq_index_destroy(ix);
    }

    struct sp_liq_index *ix = NULL;
    if (sp_liq_index_create(NA, b.lt, n, &ix)) return 1;
    for (uint32_t a = 0; a < NA; a++) sp_liq_index_set_price(ix, a, b.price[a], NULL, NULL);
    for (uint32_t i = 0; i < n; i++) sp_liq_index_upsert(ix, i, &b.c[(size_t)i * NA], b.debt[i], NULL);
    size_t n_liq0 = sp_liq_index_liquidatable(ix, NULL, 0);
    if (n_liq0 != scan(&b)) {
        fprintf(stderr, "mismatch at start\n");
        return 1;
    }
    printf("  liquidatable at start: %zu\n", n_liq0);

    /* the volatile factor (always 1) stops the compiler from hoisting the
     * pure scan out of the timing loop */
    static volatile double one = 1.0;
    const int n_scans = 20;
    size_t sink = 0;
    double t0 = now();
    for (int k = 0; k < n_scans; k++) {
        b.price[k % NA] *= one;
        sink += scan(&b);
    }
    double scan_us = 1e6 * (now() - t0) / n_scans;
    printf("  full brute-force scan (HF of every position): %.0f us  [%zu]\n", scan_us,
           sink / n_scans);

    printf("\n  oracle random walk, random asset and sign per update:\n");
    printf("  %8s %8s %11s %11s %11s %11s %11s %9s\n", "move", "updates", "us/update",
           "touched/upd", "(multi)", "crossed/upd", "ns/touched", "vs scan");
    static const double rel[] = { 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1 };
    static const int steps[] = { 2000, 2000, 1000, 1000, 300, 100 };
    for (size_t k = 0; k < sizeof rel / sizeof rel[0]; k++) {
        /* warm the walk so certificates reflect it, then measure */
        moves(ix, &b, &g, rel[k], steps[k] / 4);
        struct move_result r = moves(ix, &b, &g, rel[k], steps[k]);
        printf("  %7.2f%% %8d %11.1f %11.1f %11.1f %11.1f %11.0f %8.1fx\n", 100 * rel[k],
               steps[k], r.us, r.touched, r.multi, r.changed,
               r.touched > 0 ? 1e3 * r.us / r.touched : 0.0, scan_us / r.us);
    }
    if (sp_liq_index_liquidatable(ix, NULL, 0) != scan(&b)) {
        fprintf(stderr, "mismatch after walk\n");
        return 1;
    }

    /* reset prices, then crash: each asset −50 % in turn, then all back */
    for (uint32_t a = 0; a < NA; a++) {
        double p0[NA] = { 2000.0, 1.0, 30000.0 };
        b.price[a] = p0[a];
        sp_liq_index_set_price(ix, a, p0[a], NULL, NULL);
    }
    printf("\n  crash (prices reset to start; liquidatable %zu):\n",
           sp_liq_index_liquidatable(ix, NULL, 0));
    const char *name[NA] = { "ETH", "USDC", "BTC" };
    double total = 0.0;
    for (int dir = 0; dir < 2; dir++)
        for (uint32_t a = 0; a < NA; a++) {
            struct sp_liq_index_stats s0, s1;
            uint64_t n_cb = 0;
            double p = dir == 0 ? b.price[a] * 0.5 : b.price[a] * 2.0;
            sp_liq_index_stats(ix, &s0);
            double t = now();
            sp_liq_index_set_price(ix, a, p, count_change, &n_cb);
            t = now() - t;
            total += t;
            b.price[a] = p;
            sp_liq_index_stats(ix, &s1);
            size_t liq = sp_liq_index_liquidatable(ix, NULL, 0);
            if (liq != scan(&b)) {
                fprintf(stderr, "mismatch after crash step\n");
                return 1;
            }
            printf("    %-4s %s50%%: %7.1f ms, touched %8llu, changed %8llu, liquidatable %zu\n",
                   name[a], dir == 0 ? "-" : "+", 1e3 * t,
                   (unsigned long long)(s1.n_touched - s0.n_touched),
                   (unsigned long long)n_cb, liq);
        }
    printf("    all six 50%% moves: %.1f ms (index agreed with the scan after each)\n",
           1e3 * total);
    sp_liq_index_destroy(ix);
    free(b.c);
    free(b.debt);
    return 0;
}
