/*
 * bench_cascade.c — a liquidation cascade through n positions (the
 * liquidation issue's speed target: 10^5 positions in under 2 s), driven
 * through the whole engine.
 *
 *   spiral-bench-cascade [n_positions] [mechanism]
 *       n_positions  default 100000
 *       mechanism    amm_direct (default) | fixed_spread | dutch_auction | all
 *
 * World: one CPMM ETH/USDC (fee 0.3 %, 20 ETH of depth per position), an
 * oracle that re-reads it after every trade on it (`on_trade`), a pool
 * lending USDC against ETH (LTV = LT = 82.5 %, bonus 5 %), n owners (an
 * idle population) each posting 1..10 ETH and borrowing to HF = 1 + X, X
 * log-normal with median 0.1 (σ = 1.2).  With fixed_spread and
 * dutch_auction, 5 keepers with flash liquidity and no latency liquidate /
 * take and sell into the CPMM; with amm_direct the protocol sells itself.
 * The shock: at t = 1 min a seller dumps 8 % of the pool's ETH reserve into
 * it; the oracle reads the move, positions cross, their collateral is sold
 * into the same pool, the oracle reads that, and so on until the price
 * settles.  Reports the wall time of the simulation from the dump to the
 * end of the cascade (the queue drained up to t + 1 h), the liquidations,
 * auctions and trades it did, liquidations per second, the cascade depth
 * (highest generation) and the price fall, and checks the ledger.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "lending.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BENCH_YAML \
    "name: bench_cascade\n" \
    "seed: 1\n" \
    "horizon: 1d\n" \
    "output: {sample_every: 1d}\n" \
    "tokens:\n" \
    "  - {name: ETH, kind: base}\n" \
    "  - {name: USDC, kind: stable}\n" \
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: pool}\n" \
    "references:\n" \
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1h}\n" \
    "markets:\n" \
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: %.0f,\n" \
    "     reserve_quote: %.0f, fee: 0.3%%}\n" \
    "oracles:\n" \
    "  - {type: chainlink, name: o_eth, source: {type: spot, of: amm}, poll: 1h,\n" \
    "     deviation: 0, heartbeat: 1h, on_trade: true}\n" \
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1d,\n" \
    "     heartbeat: 1d}\n" \
    "protocols:\n" \
    "  - type: pool\n" \
    "    name: pool\n" \
    "    accrue_every: 0s\n" \
    "    positions_every: 0s\n" \
    "    liquidation: {mechanism: %s, venue: amm, close_factor: 100%%, protocol_fee: 0,\n" \
    "                  curve: stairstep_exponential, step: 12s, cut: 0.99, buf: 1.05,\n" \
    "                  tail: 1h, cusp: 0.5, tip: 0, chip: 0}\n" \
    "    assets:\n" \
    "      - {token: ETH, oracle: o_eth, ltv: 82.5%%, liquidation_threshold: 82.5%%,\n" \
    "         liquidation_bonus: 5%%}\n" \
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n" \
    "         initial_supply: 1e13, slope1: 0, slope2: 0}\n" \
    "agents:\n" \
    "  - {type: scripted, name: dumper, holdings: [{token: ETH, amount: %.0f}], actions: []}\n" \
    "  - {type: noise, name: owner, count: %zu, venue: amm, mean_interval: 1e12}\n" \
    "%s"

static const char *const keepers =
    "  - {type: keeper, name: keepers, count: 5, protocols: pool, flash: true,\n"
    "     flash_fee: 0, latency: 0, margin: 0.01, min_profit: 0, poll: 1h,\n"
    "     bidding: jump}\n";

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_cascade: %s: %s\n", what, sp_strerror(rc));
    exit(1);
}

static double summary(struct sp_sim *sim, const char *name)
{
    for (size_t i = 0; i < sp_sim_summary_count(sim); i++) {
        double v;
        const char *k = sp_sim_summary_get(sim, i, &v);
        if (!strcmp(k, name)) return v;
    }
    return NAN;
}

static int run(size_t n, const char *mech)
{
    double reserve = 20.0 * (double)n;
    char path[] = "/tmp/bench_cascade_XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0) die("temp file", SP_EIO);
    FILE *f = fdopen(fd, "w");
    bool amm = !strcmp(mech, "amm_direct");
    fprintf(f, BENCH_YAML, reserve, reserve * 2000, mech, 0.08 * reserve, n, amm ? "" : keepers);
    fclose(f);
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    double t0 = now();
    int rc = sp_scenario_load(&sc, path, &d);
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, &d);
    if (!rc) rc = sp_world_build(&sim, &cfg, &d);
    if (rc) { sp_diag_print(&d, stderr); die("scenario", rc); }
    if ((rc = sp_sim_start(sim))) die("start", rc);
    bool drained;
    sp_sim_step(sim, SP_SEC, UINT64_MAX, &drained);
    double t_world = now() - t0;

    sp_id pool = sp_sim_find(sim, "pool"), venue = sp_sim_find(sim, "amm");
    sp_id dumper = sp_sim_find(sim, "dumper");
    sp_token ETH = sp_token_find(sim, "ETH"), USDC = sp_token_find(sim, "USDC");
    struct sp_rng rng;
    sp_rng_init(&rng, 1, 2);
    sp_id first = sp_sim_find(sim, "owner_0");
    t0 = now();
    for (size_t i = 0; i < n; i++) {
        sp_id o = first + (sp_id)i;
        double c = 1 + 9 * sp_rng_uniform(&rng);
        double hf = 1 + 0.1 * exp(1.2 * sp_rng_normal(&rng));
        if ((rc = sp_mint(sim, ETH, o, c)) || (rc = sp_lending_deposit(sim, pool, o, ETH, c)))
            die("deposit", rc);
        double debt = c * 2000 * 0.825 / hf, cap = c * 2000 * 0.825;
        if ((rc = sp_lending_borrow(sim, pool, o, USDC, debt < cap ? debt : cap)))
            die("borrow", rc);
    }
    double t_book = now() - t0;
    sp_sim_step(sim, SP_MIN - 1, UINT64_MAX, &drained);

    const struct sp_market_ops *m = sp_market_ops_of(sim, venue);
    double p0 = m->price(sp_sim_entity_state(sim, venue));
    struct sp_swap req = { .agent = dumper, .side = SP_SELL, .amount_in = 0.08 * reserve,
                           .cause = SP_CAUSE_SCRIPTED };
    struct sp_swap_result res;
    uint64_t ev0 = sp_sim_events(sim);
    t0 = now();
    sp_sim_step(sim, SP_MIN, UINT64_MAX, &drained);    /* the oracles' time has come */
    if ((rc = sp_market_swap(sim, venue, &req, &res))) die("dump", rc);
    sp_sim_step(sim, SP_MIN + SP_HOUR, UINT64_MAX, &drained);
    double t_cascade = now() - t0;
    uint64_t events = sp_sim_events(sim) - ev0;
    const char *msg;
    if (sp_sim_failure(sim, &msg)) { fprintf(stderr, "bench_cascade: %s\n", msg); return 1; }
    if ((rc = sp_ledger_check(sim))) die("ledger", rc);
    double p1 = m->price(sp_sim_entity_state(sim, venue));
    sp_sim_finish(sim);
    double nliq = summary(sim, "n_liquidations"), nauc = summary(sim, "n_auctions");
    printf("  %-14s %8.2f %8.2f %9.3f %11.0f %9.0f %12.0f %10.0f %6.0f %8.1f%% %6zu\n", mech,
           t_world, t_book, t_cascade, nliq, nauc, nliq / t_cascade, (double)events,
           summary(sim, "cascade_depth"), 100 * (1 - p1 / p0),
           sp_lending_liquidatable(sim, pool, NULL, 0));
    sp_sim_destroy(sim);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
    remove(path);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    const char *mech = argc > 2 ? argv[2] : "amm_direct";
    static const char *const all[] = { "amm_direct", "fixed_spread", "dutch_auction" };
    printf("spiral-bench-cascade: %zu positions, 8 %% of the pool's ETH dumped at t = 1 min\n", n);
    printf("  %-14s %8s %8s %9s %11s %9s %12s %10s %6s %9s %6s\n", "mechanism", "world s",
           "book s", "cascade s", "liquidated", "auctions", "liq/s", "events", "depth",
           "fall", "left");
    int rc = 0;
    if (!strcmp(mech, "all")) {
        for (size_t i = 0; i < sizeof all / sizeof all[0] && !rc; i++) rc = run(n, all[i]);
    } else {
        rc = run(n, mech);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  peak RSS %.0f MiB\n", (double)ru.ru_maxrss / 1024.0);
    return rc;
}
