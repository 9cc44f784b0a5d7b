/*
 * bench_markets.c — speed of the market mechanics: ns per CPMM swap, ns per
 * StableSwap swap, LOB messages per second on a mixed stream.
 *
 * Standalone (not built by CMake yet):
 *   cc -O2 -I include -I market bench/bench_markets.c market/cpmm.c \
 *      market/stableswap.c market/lob.c engine/rng.c engine/error.c -lm \
 *      -o /tmp/bench_markets && /tmp/bench_markets [--quick]
 *
 * Inputs are drawn before the clock starts, so the figures are the
 * mechanics alone.  CPMM and StableSwap do pairs: a swap of coin0 sized
 * log-uniform in 1e-6 .. 1e-2 of its reserve, then the proceeds swapped back,
 * so the pool stays near balance however long the run.  The
 * LOB stream: 60 % limit orders around a wandering mid (a fifth of them
 * marketable), 30 % cancels of the oldest outstanding limit id (some already
 * filled: a miss costs a lookup), 10 % market orders; lots 1..100.
 * Not a test: figures depend on the machine; best of several repetitions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "spiral/rng.h"
#include "cpmm.h"
#include "stableswap.h"
#include "lob.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double log_uniform(struct sp_rng *r, double lo, double hi)
{
    return lo * exp(sp_rng_uniform(r) * log(hi / lo));
}

static volatile double sink;

/* Baseline: the bare getAmountOut formula inline, no validation, no call. */
static double bench_cpmm_bare(const double *frac, int n, int reps)
{
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        double r0 = 1000.0, r1 = 2000000.0, g = 0.997, acc = 0.0;
        double t0 = now_s();
        for (int i = 0; i + 1 < n; i += 2) {
            double in = frac[i] * r0, out = in * g * r1 / (r0 + in * g);
            r0 += in; r1 -= out; acc += out;
            double back = out * g * r0 / (r1 + out * g);
            r1 += out; r0 -= back; acc += back;
        }
        double dt = now_s() - t0;
        sink = acc;
        if (dt < best) best = dt;
    }
    return best / n * 1e9;
}

static double bench_cpmm(int n, int reps, double *bare)
{
    struct sp_rng r;
    sp_rng_init(&r, 1, sp_rng_key("bench_cpmm"));
    double *frac = malloc((size_t)n * sizeof *frac);
    for (int i = 0; i < n; i++) frac[i] = log_uniform(&r, 1e-6, 1e-2);
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        struct sp_cpmm p;
        sp_cpmm_init(&p, 1000.0, 2000000.0, 0.003);
        double acc = 0.0, out;
        double t0 = now_s();
        for (int i = 0; i + 1 < n; i += 2) {       /* a swap, then its reverse */
            if (sp_cpmm_swap_in(&p, SP_CPMM_0TO1, frac[i] * p.r0, &out) == 0) acc += out;
            if (sp_cpmm_swap_in(&p, SP_CPMM_1TO0, out, &out) == 0) acc += out;
        }
        double dt = now_s() - t0;
        sink = acc;
        if (dt < best) best = dt;
    }
    *bare = bench_cpmm_bare(frac, n, reps);
    free(frac);
    return best / n * 1e9;
}

static double bench_stableswap(int n, int reps)
{
    struct sp_rng r;
    sp_rng_init(&r, 2, sp_rng_key("bench_ss"));
    double *frac = malloc((size_t)n * sizeof *frac);
    for (int i = 0; i < n; i++) frac[i] = log_uniform(&r, 1e-6, 1e-2);
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        struct sp_stableswap p;
        sp_stableswap_init(&p, 1000e18, 1000e18, 100.0, 4e-4);
        double acc = 0.0, out;
        double t0 = now_s();
        for (int i = 0; i + 1 < n; i += 2) {       /* a swap, then its reverse */
            if (sp_stableswap_swap(&p, 0, frac[i] * p.bal[0], &out) == 0) acc += out;
            if (sp_stableswap_swap(&p, 1, out, &out) == 0) acc += out;
        }
        double dt = now_s() - t0;
        sink = acc;
        if (dt < best) best = dt;
    }
    free(frac);
    return best / n * 1e9;
}

enum { M_LIMIT, M_CANCEL, M_MARKET };
struct msg {
    uint8_t kind, side;
    int64_t price, qty;
};

static void count_fill(void *ctx, const struct sp_lob_fill *f)
{
    int64_t *vol = ctx;
    *vol += f->qty;
}

static double bench_lob(int n, int reps, uint32_t *resting_end, int64_t *volume_end)
{
    struct sp_rng r;
    sp_rng_init(&r, 3, sp_rng_key("bench_lob"));
    const int64_t min_tick = 0, n_ticks = 1 << 16;
    struct msg *m = malloc((size_t)n * sizeof *m);
    int64_t mid = n_ticks / 2;
    for (int i = 0; i < n; i++) {
        if (sp_rng_below(&r, 8) == 0) mid += (int64_t)sp_rng_below(&r, 3) - 1;
        double u = sp_rng_uniform(&r);
        m[i].side = (uint8_t)sp_rng_below(&r, 2);
        m[i].qty = 1 + (int64_t)sp_rng_below(&r, 100);
        m[i].kind = u < 0.6 ? M_LIMIT : u < 0.9 ? M_CANCEL : M_MARKET;
        int64_t off = (int64_t)sp_rng_below(&r, 20) - 4;   /* 1 in 5 crosses */
        m[i].price = m[i].side == SP_LOB_BUY ? mid - off : mid + off;
    }
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        int64_t vol = 0;
        struct sp_lob_config cfg = { min_tick, n_ticks, (uint32_t)n, 0.01, count_fill, &vol };
        struct sp_lob *b;
        if (sp_lob_create(&cfg, &b)) { fprintf(stderr, "lob create failed\n"); exit(1); }
        size_t head = 0, tail = 0;
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            const struct msg *x = &m[i];
            uint64_t id;
            if (x->kind == M_LIMIT) {
                if (sp_lob_limit(b, (enum sp_lob_side)x->side, x->price, x->qty, &id, NULL) == 0)
                    ids[tail++] = id;
            } else if (x->kind == M_CANCEL) {
                if (head < tail) sp_lob_cancel(b, ids[head++], NULL);
            } else {
                sp_lob_market(b, (enum sp_lob_side)x->side, x->qty, &id, NULL);
            }
        }
        double dt = now_s() - t0;
        struct sp_lob_stats st;
        sp_lob_stats(b, &st);
        *resting_end = st.n_orders;
        *volume_end = vol;
        sp_lob_destroy(b);
        if (dt < best) best = dt;
    }
    free(ids);
    free(m);
    return n / best;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int n_cpmm = quick ? 1000000 : 20000000, n_ss = quick ? 200000 : 2000000;
    int n_lob = quick ? 1000000 : 5000000, reps = quick ? 2 : 5;
    double bare;
    double ns_cpmm = bench_cpmm(n_cpmm, reps, &bare);
    printf("cpmm        %8.2f ns/swap     (%d swaps, best of %d; bare inline formula %.2f ns)\n",
           ns_cpmm, n_cpmm, reps, bare);
    double ns_ss = bench_stableswap(n_ss, reps);
    printf("stableswap  %8.1f ns/swap     (%d swaps, get_D + get_y per swap)\n", ns_ss, n_ss);
    uint32_t resting;
    int64_t vol;
    double mps = bench_lob(n_lob, reps, &resting, &vol);
    printf("lob         %8.2f M msg/s     (%d msgs: 60%% limit, 30%% cancel, 10%% market; "
           "%u resting at end, %lld lots traded)\n",
           mps / 1e6, n_lob, resting, (long long)vol);
    return 0;
}
