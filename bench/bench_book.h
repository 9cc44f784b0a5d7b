/*
 * bench_book.h — the lending book shared by spiral-bench-lending and
 * spiral-bench-snapshot: one pool lending USDC against ETH (LT 82.5 %), a
 * GBM reference with no volatility, two Chainlink feeds, and n idle noise
 * owners (owner_0 .. owner_{n-1}); each owner posts 1..10 ETH and borrows
 * to a health factor 1 + 0.1·e^(1.2 Z) (capped at the LTV).  Header-only.
 */
#ifndef SPIRAL_BENCH_BOOK_H
#define SPIRAL_BENCH_BOOK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BENCH_BOOK_YAML \
    "name: %s\n" \
    "seed: 1\n" \
    "horizon: 1d\n" \
    "output: {sample_every: 1d}\n" \
    "tokens:\n" \
    "  - {name: ETH, kind: base}\n" \
    "  - {name: USDC, kind: stable}\n" \
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: pool}\n" \
    "references:\n" \
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1m}\n" \
    "markets:\n" \
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: 1000, reserve_quote: 2000000}\n" \
    "oracles:\n" \
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH}, poll: 1m,\n" \
    "     deviation: 0.0001%%, heartbeat: 1h}\n" \
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1d, heartbeat: 1d}\n" \
    "protocols:\n" \
    "  - type: pool\n" \
    "    name: pool\n" \
    "    accrue_every: 0s\n" \
    "    positions_every: 0s\n" \
    "    assets:\n" \
    "      - {token: ETH, oracle: o_eth, ltv: 82.5%%, liquidation_threshold: 82.5%%}\n" \
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n" \
    "         initial_supply: 1e12, slope1: 0, slope2: 0}\n" \
    "agents:\n" \
    "  - {type: noise, name: owner, count: %zu, venue: amm, mean_interval: 1e12}\n"

/* Build (not start) the world of n owners, named `name`, from a temporary
 * scenario file.  Errors in d. */
static inline int bench_book_world(size_t n, const char *name, struct sp_scenario **sc,
                                   struct sp_world_cfg *cfg, struct sp_sim **sim,
                                   struct sp_diag *d)
{
    char path[] = "/tmp/bench_book_XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0) return SP_EIO;
    FILE *f = fdopen(fd, "w");
    if (!f) { close(fd); return SP_EIO; }
    fprintf(f, BENCH_BOOK_YAML, name, n);
    fclose(f);
    int rc = sp_scenario_load(sc, path, d);
    if (!rc) rc = sp_world_bind(*sc, sp_registry_builtin(), cfg, d);
    if (!rc) rc = sp_world_build(sim, cfg, d);
    remove(path);
    return rc;
}

/* Open the n positions through the lending API (the sim is started). */
static inline int bench_book_fill(struct sp_sim *sim, size_t n)
{
    sp_id pool = sp_sim_find(sim, "pool"), first = sp_sim_find(sim, "owner_0");
    sp_token ETH = sp_token_find(sim, "ETH"), USDC = sp_token_find(sim, "USDC");
    struct sp_rng rng;
    sp_rng_init(&rng, 1, 2);
    int rc = SP_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        sp_id o = first + (sp_id)i;
        double c = 1 + 9 * sp_rng_uniform(&rng);
        double hf = 1 + 0.1 * exp(1.2 * sp_rng_normal(&rng));
        double debt = c * 2000 * 0.825 / hf, cap = c * 2000 * 0.825;
        if (!(rc = sp_mint(sim, ETH, o, c)) && !(rc = sp_lending_deposit(sim, pool, o, ETH, c)))
            rc = sp_lending_borrow(sim, pool, o, USDC, debt < cap ? debt : cap);
    }
    return rc;
}

#endif
