/*
 * bench_lending.c — a pool lending protocol with 10^6 positions (the lending
 * issue's speed targets), driven through the whole engine: a reference
 * price, a Chainlink-style oracle polling every minute, the pool subscribed
 * to it.
 *
 *   spiral-bench-lending [n_positions]      (default 1000000)
 *
 * Book: n owners (an idle population), each posting ETH (uniform 1..10) and
 * borrowing USDC to a health factor 1 + X, X log-normal with median 0.1
 * (σ = 1.2; LTV = LT = 82.5 % so HF ≥ 1 at creation): about 3 % of the book
 * lies within 1 % of liquidation, so a 1 % move crosses a few percent of it.
 * Reports the bytes the protocol holds per position (position arrays +
 * owner map + the liquidation-price indexes) beside the process's RSS, the
 * time to build the book, and for ETH moves of −0.01 %, −0.1 %, −1 %, +1 %,
 * −2 % and −50 % (each from the last): the time of the simulation step that
 * delivers the oracle update and re-indexes, the positions it touched and
 * crossed (HF passing 1, either way), the step time per crossed position,
 * and the time a plain recomputation of every position's HF takes (the
 * fastest of three, warm caches) — the cost the index does not pay.  Every
 * row is checked: the index's liquidatable count equals the scan's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "bench_book.h"
#include "lending-internal.h"
#include "reference.h"

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_lending: %s: %s\n", what, sp_strerror(rc));
    exit(1);
}

struct totals { uint64_t touched, changed; };

static struct totals index_totals(const struct lending *L)
{
    struct totals t = { 0, 0 };
    for (size_t g = 0; g <= L->nd; g++) {
        struct sp_liq_index_stats st;
        sp_liq_index_stats(L->ix[g], &st);
        t.touched += st.n_touched;
        t.changed += st.n_changed;
    }
    return t;
}

/* What the index avoids: every position's HF recomputed. */
static size_t full_scan(const struct lending *L, double *secs)
{
    size_t liq = 0;
    *secs = INFINITY;
    for (int rep = 0; rep < 3; rep++) {          /* the fastest of three: warm caches */
        double t0 = bench_now();
        liq = 0;
        for (size_t s = 0; s < L->n_pos; s++) {
            struct sp_lending_position st;
            lend_position_state(L, s, &st);
            liq += st.hf < 1.0;
        }
        double dt = bench_now() - t0;
        if (dt < *secs) *secs = dt;
    }
    return liq;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    double rss0 = rss_mib();
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    double t0 = bench_now();
    int rc = bench_book_world(n, "bench_lending", &sc, &cfg, &sim, &d);
    if (rc) { sp_diag_print(&d, stderr); die("scenario", rc); }
    if ((rc = sp_sim_start(sim))) die("start", rc);
    bool drained;
    sp_sim_step(sim, SP_MIN, UINT64_MAX, &drained);
    double t_world = bench_now() - t0;
    double rss_world = rss_mib();
    sp_id pool = sp_sim_find(sim, "pool"), ref = sp_sim_find(sim, "reference_ETH");
    struct lending *L = lend_of(sim, pool);
    t0 = bench_now();
    if ((rc = bench_book_fill(sim, n))) die("book", rc);
    double t_build = bench_now() - t0;
    size_t bytes = sp_lending_bytes(sim, pool);
    double rss_book = rss_mib();
    printf("spiral-bench-lending: %zu positions (pool, ETH collateral, USDC debt)\n", n);
    printf("  world with %zu idle owners: %.2f s, RSS %.0f MiB (+%.0f MiB: entities, ledger rows)\n",
           n, t_world, rss_world, rss_world - rss0);
    printf("  book built through the API (mint, deposit, borrow): %.2f s, %.0f ns/position\n",
           t_build, 1e9 * t_build / (double)n);
    printf("  protocol memory: %.1f MiB = %.0f bytes/position (target <= 256); "
           "RSS grew %.0f MiB while building (%.0f bytes/position incl. ledger balances)\n",
           (double)bytes / 1048576.0, (double)bytes / (double)n, rss_book - rss_world,
           (rss_book - rss_world) * 1048576.0 / (double)n);
    printf("\n  %-9s %10s %9s %9s %13s %14s %14s\n", "ETH move", "step (ms)", "touched",
           "crossed", "ns/crossed", "liquidatable", "full scan (ms)");
    static const double moves[] = { 0.0001, 0.001, 0.01, -0.01, 0.02, 0.5 };
    sp_time t = SP_MIN;
    for (size_t m = 0; m < sizeof moves / sizeof moves[0]; m++) {
        struct totals before = index_totals(L);
        sp_reference_shock(sim, ref, moves[m], 0);
        t += SP_MIN;
        double s0 = bench_now();
        sp_sim_step(sim, t, UINT64_MAX, &drained);
        double step = bench_now() - s0;
        struct totals after = index_totals(L);
        double scan;
        size_t liq = full_scan(L, &scan);
        const char *msg;
        if (sp_sim_failure(sim, &msg)) { fprintf(stderr, "%s\n", msg); return 1; }
        if (liq != L->n_liquidatable) {
            fprintf(stderr, "index says %zu liquidatable, scan %zu\n", L->n_liquidatable, liq);
            return 1;
        }
        uint64_t crossed = after.changed - before.changed;
        printf("  %+8.2f%% %10.3f %9llu %9llu %13.0f %14zu %14.1f\n", -100 * moves[m],
               1e3 * step, (unsigned long long)(after.touched - before.touched),
               (unsigned long long)crossed, crossed ? 1e9 * step / (double)crossed : 0.0,
               L->n_liquidatable, 1e3 * scan);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\n  peak RSS %.0f MiB\n", (double)ru.ru_maxrss / 1024.0);
    sp_sim_destroy(sim);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
    return 0;
}
