/*
 * test_amm_market.c — the "cpmm" and "stableswap" market modules in whole
 * simulations: swaps through sp_market_swap against published vectors,
 * conservation over randomized swaps, all-or-nothing failures, the price
 * cumulative (TWAP), liquidity round trips, arbitrage sizes, the recorded
 * tables, and scenario errors.
 *
 * Agents do not exist yet, so the tests add a small trader entity of their
 * own: a test-local module (kind "agent") whose events carry a swap in
 * their payload.  It is also registered in a user registry so a scenario
 * file can drive trades through sp_world_run and the HDF5 can be read back.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "amm.h"
#include "stableswap.h"

/* ---- a test trader -------------------------------------------------------- */

struct trade_cfg {
    sp_time at;
    int side;
    double amount;
};

struct trader_cfg {
    const char *venue;
    double base_balance, quote_balance;
    struct trade_cfg *trades;
    size_t n_trades;
};

struct trader {
    sp_id id, venue;
    const struct trader_cfg *cfg;
    int last_rc;
    int n_ok;
    struct sp_swap_result last;
    double cum_after[8];        /* the venue's cumulative right after each trade */
    sp_time t_after[8];
};

enum { EV_TRADE = 7 };

static const char *const sides[] = { "buy", "sell", NULL };

static const struct sp_field trade_fields[] = {
    { "at", SP_T_DURATION, SP_F_REQUIRED, 0, 0, NULL, NULL, "when", offsetof(struct trade_cfg, at), NULL, 0 },
    { "side", SP_T_ENUM, SP_F_REQUIRED, 0, 0, NULL, NULL, "side", offsetof(struct trade_cfg, side), sides, 0 },
    { "amount", SP_T_NUMBER, SP_F_REQUIRED, 0, 0, NULL, NULL, "in", offsetof(struct trade_cfg, amount), NULL, 0 },
};
static const struct sp_schema trade_schema = {
    "trade", "a scripted swap", trade_fields, 3, sizeof(struct trade_cfg), NULL
};
static const struct sp_field trader_fields[] = {
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "market", offsetof(struct trader_cfg, venue), NULL, 0 },
    { "base_balance", SP_T_NUMBER, 0, 0, 0, "0", NULL, "mint", offsetof(struct trader_cfg, base_balance), NULL, 0 },
    { "quote_balance", SP_T_NUMBER, 0, 0, 0, "0", NULL, "mint", offsetof(struct trader_cfg, quote_balance), NULL, 0 },
    { "trades", SP_T_LIST, 0, 0, 0, NULL, NULL, "script", offsetof(struct trader_cfg, trades),
      &trade_schema, offsetof(struct trader_cfg, n_trades) },
};
static const struct sp_schema trader_schema = {
    "agents[type: amm_test_trader]", "test", trader_fields, 4, sizeof(struct trader_cfg), NULL
};

static void fund(struct sp_sim *sim, sp_id who, sp_id venue, double b, double q)
{
    sp_token tb, tq;
    sp_market_ops_of(sim, venue)->pair(sp_sim_entity_state(sim, venue), &tb, &tq);
    assert_int_equal(sp_mint(sim, tb, who, b), 0);
    assert_int_equal(sp_mint(sim, tq, who, q), 0);
}

static int trader_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct trader *tr = self;
    tr->cfg = cfg;
    tr->id = id;
    tr->venue = sp_sim_find(sim, tr->cfg->venue);
    if (tr->venue == SP_ID_NONE) return SP_EINVAL;
    fund(sim, id, tr->venue, tr->cfg->base_balance, tr->cfg->quote_balance);
    return 0;
}

static void schedule_trade(struct sp_sim *sim, sp_id id, sp_time t, int side, double amount)
{
    struct sp_event *ev = sp_sim_schedule(sim, t, SP_PRIO_AGENT, id, EV_TRADE);
    assert_non_null(ev);
    ev->data.f[0] = amount;
    ev->data.i[1] = side;
}

static int trader_start(void *self, struct sp_sim *sim)
{
    struct trader *tr = self;
    for (size_t i = 0; tr->cfg && i < tr->cfg->n_trades; i++)
        schedule_trade(sim, tr->id, tr->cfg->trades[i].at, tr->cfg->trades[i].side,
                       tr->cfg->trades[i].amount);
    return 0;
}

static void trader_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct trader *tr = self;
    struct sp_swap req = { .agent = tr->id, .side = (enum sp_side)ev->data.i[1],
                           .amount_in = ev->data.f[0], .cause = SP_CAUSE_SCRIPTED };
    tr->last_rc = sp_market_swap(sim, tr->venue, &req, &tr->last);
    if (tr->last_rc == 0 && tr->n_ok < 8) {
        const struct sp_market_ops *m = sp_market_ops_of(sim, tr->venue);
        tr->cum_after[tr->n_ok] = m->cumulative(sp_sim_entity_state(sim, tr->venue), ev->t);
        tr->t_after[tr->n_ok] = ev->t;
        tr->n_ok++;
    }
}

static const struct sp_module_ops trader_ops = {
    .kind = "agent", .type = "amm_test_trader", .summary = "test trader",
    .schema = &trader_schema, .state_size = sizeof(struct trader),
    .init = trader_init, .start = trader_start, .on_event = trader_on_event,
};

/* ---- building worlds ------------------------------------------------------ */

struct world {
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    sp_id venue, trader;
    struct trader tr;
};

static const char header[] =
    "horizon: 1d\n"
    "output: {sample_every: 1h, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: stETH, kind: base}\n";

/* Build `markets_yaml` (the `markets:` section), add a trader funded with
 * (b, q) of the venue's pair, start the sim. */
static void world_open(struct world *w, const char *markets_yaml, double b, double q)
{
    memset(w, 0, sizeof *w);
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", header, markets_yaml);
    struct sp_diag d = { 0 };
    int rc = sp_scenario_load_string(&w->sc, "amm.yaml", yaml, strlen(yaml), &d);
    if (!rc) rc = sp_world_bind(w->sc, sp_registry_builtin(), &w->cfg, &d);
    if (!rc) rc = sp_world_build(&w->sim, &w->cfg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    sp_diag_release(&d);
    w->venue = sp_sim_find(w->sim, "pool");
    assert_true(w->venue != SP_ID_NONE);
    assert_int_equal(sp_sim_add_entity(w->sim, "trader", &trader_ops, &w->tr, &w->trader), 0);
    w->tr.id = w->trader;
    w->tr.venue = w->venue;
    fund(w->sim, w->trader, w->venue, b, q);
    assert_int_equal(sp_sim_start(w->sim), 0);
}

static void world_close(struct world *w)
{
    sp_sim_destroy(w->sim);
    sp_scenario_destroy(w->sc);
}

static sp_token tok(struct world *w, int k)
{
    sp_token t[2];
    sp_market_ops_of(w->sim, w->venue)->pair(sp_sim_entity_state(w->sim, w->venue), &t[0], &t[1]);
    return t[k];
}

static double bal(struct world *w, sp_id who, int k) { return sp_balance(w->sim, who, tok(w, k)); }

static int swap(struct world *w, enum sp_side side, double in, double min_out,
                struct sp_swap_result *res)
{
    struct sp_swap req = { .agent = w->trader, .side = side, .amount_in = in, .min_out = min_out,
                           .cause = SP_CAUSE_SCRIPTED };
    return sp_market_swap(w->sim, w->venue, &req, res);
}

static const char cpmm_5_10[] =
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5, reserve_quote: 10}\n";

/* ---- tests ---------------------------------------------------------------- */

/* FORMULAS.md, "Uniswap v2 constant product" (UniswapV2Library.getAmountOut,
 * fee 0.3%): amountIn 1e18 into (Rin, Rout) = (5e18, 10e18) gives
 * 1662497915624478906 wei; into (10e18, 5e18) gives 453305446940074565 wei.
 * Here in token units (1e18 wei = 1). */
static void test_cpmm_swap_matches_uniswap_v2_vector(void **state)
{
    (void)state;
    struct world w;
    struct sp_swap_result res;
    world_open(&w, cpmm_5_10, 100, 100);
    assert_true(fabs(sp_amm_fee(w.sim, w.venue) - 0.003) < 1e-18);
    assert_int_equal(swap(&w, SP_SELL, 1.0, 0, &res), 0);           /* 1 ETH in, Rin = 5 */
    assert_true(fabs(res.amount_out - 1.662497915624478906) <= 1e-15 * 1.66);
    assert_true(res.price_before == 2.0);
    double r0, r1;
    assert_int_equal(sp_amm_reserves(w.sim, w.venue, &r0, &r1), 0);
    assert_true(r0 == 6.0 && r1 == 10.0 - res.amount_out);
    assert_true(res.price_after == r1 / r0);
    assert_true(bal(&w, w.trader, 0) == 99.0 && bal(&w, w.trader, 1) == 100.0 + res.amount_out);
    assert_true(bal(&w, w.venue, 0) == r0 && bal(&w, w.venue, 1) == r1);
    world_close(&w);

    world_open(&w, cpmm_5_10, 100, 100);                              /* Rin = 10 USDC */
    assert_int_equal(swap(&w, SP_BUY, 1.0, 0, &res), 0);
    assert_true(fabs(res.amount_out - 0.453305446940074565) <= 1e-15 * 0.45);
    assert_true(bal(&w, w.trader, 0) == 100.0 + res.amount_out && bal(&w, w.trader, 1) == 99.0);
    const struct sp_market_ops *m = sp_market_ops_of(w.sim, w.venue);
    void *st = sp_sim_entity_state(w.sim, w.venue);
    assert_true(m->price(st) == m->base.price(st));
    assert_true(m->price(st) == 11.0 / (5.0 - res.amount_out));
    double q;
    assert_int_equal(m->quote(st, SP_SELL, 1.0, &q), 0);              /* no state change */
    assert_true(m->price(st) == 11.0 / (5.0 - res.amount_out));
    world_close(&w);
}

static double invariant(struct world *w, int stable)
{
    double r[2];
    sp_amm_reserves(w->sim, w->venue, &r[0], &r[1]);
    if (!stable) return r[0] * r[1];
    double D;
    assert_int_equal(sp_stableswap_get_D(r, 50, &D), 0);
    return D;
}

static void random_swaps(const char *markets, int stable)
{
    struct world w;
    world_open(&w, markets, 5000, 5000);
    struct sp_rng rng;
    sp_rng_init(&rng, 42, stable);
    double total[2] = { bal(&w, w.trader, 0) + bal(&w, w.venue, 0),
                        bal(&w, w.trader, 1) + bal(&w, w.venue, 1) };
    double k = invariant(&w, stable);
    for (int n = 0; n < 10000; n++) {
        enum sp_side side = sp_rng_uniform(&rng) < 0.5 ? SP_BUY : SP_SELL;
        int in = side == SP_BUY ? 1 : 0;
        double have = bal(&w, w.trader, in);
        double amount = have * 0.3 * sp_rng_uniform(&rng) + 1e-9;
        double b_in = have, b_out = bal(&w, w.trader, 1 - in);
        double v_in = bal(&w, w.venue, in), v_out = bal(&w, w.venue, 1 - in);
        struct sp_swap_result res;
        assert_int_equal(swap(&w, side, amount, 0, &res), 0);
        /* Balances move by exactly the reported amounts. */
        assert_true(bal(&w, w.trader, in) == b_in - amount);
        assert_true(bal(&w, w.trader, 1 - in) == b_out + res.amount_out);
        assert_true(bal(&w, w.venue, in) == v_in + amount);
        assert_true(bal(&w, w.venue, 1 - in) == v_out - res.amount_out);
        assert_int_equal(sp_ledger_check(w.sim), 0);
        for (int c = 0; c < 2; c++) {
            double sum = bal(&w, w.trader, c) + bal(&w, w.venue, c);
            assert_true(fabs(sum - total[c]) <= 1e-12 * total[c]);
            assert_true(fabs(sp_supply(w.sim, tok(&w, c)) - total[c]) <= 1e-12 * total[c]);
        }
        double k2 = invariant(&w, stable);
        assert_true(k2 >= k * (1.0 - (stable ? 1e-14 : 1e-15)));     /* never falls */
        k = k2;
    }
    world_close(&w);
}

static void test_amm_random_swaps_conserve_every_token_and_k_never_falls(void **state)
{
    (void)state;
    random_swaps("markets:\n  - {type: cpmm, name: pool, base: ETH, quote: USDC,\n"
                 "     reserve_base: 1000, reserve_quote: 2000000}\n", 0);
    random_swaps("markets:\n  - {type: stableswap, name: pool, base: stETH, quote: ETH,\n"
                 "     reserve_base: 1000, reserve_quote: 1000, amp: 50}\n", 1);
}

static void test_amm_failed_swap_moves_nothing(void **state)
{
    (void)state;
    struct world w;
    world_open(&w, cpmm_5_10, 1, 0.5);
    struct sp_swap_result res;
    double before[4] = { bal(&w, w.trader, 0), bal(&w, w.trader, 1), bal(&w, w.venue, 0),
                         bal(&w, w.venue, 1) };
    double p = sp_market_ops_of(w.sim, w.venue)->price(sp_sim_entity_state(w.sim, w.venue));
    assert_int_equal(swap(&w, SP_BUY, 0.6, 0, &res), SP_ERANGE);      /* has 0.5 USDC */
    assert_int_equal(swap(&w, SP_SELL, 1.5, 0, &res), SP_ERANGE);     /* has 1 ETH */
    double q;
    assert_int_equal(sp_market_ops_of(w.sim, w.venue)->quote(sp_sim_entity_state(w.sim, w.venue),
                                                              SP_SELL, 0.5, &q), 0);
    assert_int_equal(swap(&w, SP_SELL, 0.5, q * (1 + 1e-12), &res), SP_ERANGE);   /* min_out */
    assert_int_equal(swap(&w, SP_SELL, -1, 0, &res), SP_EINVAL);
    double after[4] = { bal(&w, w.trader, 0), bal(&w, w.trader, 1), bal(&w, w.venue, 0),
                        bal(&w, w.venue, 1) };
    assert_memory_equal(before, after, sizeof before);
    assert_true(p == sp_market_ops_of(w.sim, w.venue)->price(sp_sim_entity_state(w.sim, w.venue)));
    assert_int_equal(swap(&w, SP_SELL, 0.5, q, &res), 0);             /* exactly min_out: ok */
    assert_true(res.amount_out == q);
    assert_int_equal(sp_ledger_check(w.sim), 0);
    world_close(&w);
}

/* Trades at 1h, 3h and 4h; the cumulative at 6h must be the hand-computed
 * integral of the step price, and a TWAP window between two reads its mean. */
static void test_amm_cumulative_is_the_time_weighted_price(void **state)
{
    (void)state;
    struct world w;
    world_open(&w, cpmm_5_10, 100, 100);
    const sp_time at[3] = { 1 * SP_HOUR, 3 * SP_HOUR, 4 * SP_HOUR };
    const int side[3] = { SP_SELL, SP_BUY, SP_BUY };
    const double amt[3] = { 1.0, 3.0, 1.5 };
    for (int i = 0; i < 3; i++) schedule_trade(w.sim, w.trader, at[i], side[i], amt[i]);
    double p[4];
    p[0] = 2.0;
    double r0 = 5, r1 = 10;                                          /* by hand: getAmountOut */
    for (int i = 0; i < 3; i++) {
        double g = amt[i] * 0.997;
        if (side[i] == SP_SELL) { double o = g * r1 / (r0 + g); r0 += amt[i]; r1 -= o; }
        else                    { double o = g * r0 / (r1 + g); r1 += amt[i]; r0 -= o; }
        p[i + 1] = r1 / r0;
    }
    bool done;
    sp_sim_step(w.sim, 6 * SP_HOUR, UINT64_MAX, &done);
    assert_int_equal(w.tr.n_ok, 3);
    const struct sp_market_ops *m = sp_market_ops_of(w.sim, w.venue);
    double c6 = m->cumulative(sp_sim_entity_state(w.sim, w.venue), 6 * SP_HOUR);
    double want = p[0] * 3600 + p[1] * 7200 + p[2] * 3600 + p[3] * 7200;
    assert_true(fabs(c6 - want) <= 1e-12 * want);
    /* Read right after each trade: the integral up to it, the new price not yet counted. */
    double upto[3] = { p[0] * 3600, p[0] * 3600 + p[1] * 7200,
                       p[0] * 3600 + p[1] * 7200 + p[2] * 3600 };
    for (int i = 0; i < 3; i++) {
        assert_true(w.tr.t_after[i] == at[i]);
        assert_true(fabs(w.tr.cum_after[i] - upto[i]) <= 1e-12 * upto[i]);
    }
    /* TWAP over [1h, 6h] from two reads: (p1·2h + p2·1h + p3·2h) / 5h. */
    double twap = (c6 - w.tr.cum_after[0]) / (5 * 3600.0);
    double mean = (p[1] * 2 + p[2] * 1 + p[3] * 2) / 5;
    assert_true(fabs(twap - mean) <= 1e-12 * mean);
    world_close(&w);
}

static void lp_round_trip(const char *markets)
{
    struct world w;
    world_open(&w, markets, 50, 1e7);
    double b0 = bal(&w, w.trader, 0), q0 = bal(&w, w.trader, 1);
    double supply0 = sp_amm_lp_supply(w.sim, w.venue), r0, r1, s0, s1;
    sp_amm_reserves(w.sim, w.venue, &r0, &r1);
    double p0 = sp_market_ops_of(w.sim, w.venue)->price(sp_sim_entity_state(w.sim, w.venue));
    assert_true(sp_amm_lp_shares(w.sim, w.venue, w.venue) == supply0);   /* venue owns the seed */
    double shares;
    assert_int_equal(sp_amm_add_liquidity(w.sim, w.venue, w.trader, 10, 1e9, &shares), 0);
    assert_true(fabs(shares - supply0 * 10 / r0) <= 1e-12 * shares);    /* base side binds */
    assert_true(bal(&w, w.trader, 0) == b0 - 10);
    assert_true(fabs((q0 - bal(&w, w.trader, 1)) - r1 * 10 / r0) <= 1e-15 * q0 + 1e-12 * r1);
    assert_true(sp_amm_lp_shares(w.sim, w.venue, w.trader) == shares);
    assert_true(fabs(sp_amm_lp_supply(w.sim, w.venue) - supply0 - shares) <= 1e-12 * supply0);
    assert_int_equal(sp_ledger_check(w.sim), 0);
    double ob, oq;
    assert_int_equal(sp_amm_remove_liquidity(w.sim, w.venue, w.trader, shares * 1.000001, &ob, &oq),
                     SP_ERANGE);
    assert_int_equal(sp_amm_remove_liquidity(w.sim, w.venue, w.trader, shares, &ob, &oq), 0);
    assert_true(fabs(ob - 10) <= 1e-12 * 10);
    assert_true(fabs(bal(&w, w.trader, 0) - b0) <= 1e-12 * b0);
    assert_true(fabs(bal(&w, w.trader, 1) - q0) <= 1e-12 * q0);
    assert_true(sp_amm_lp_shares(w.sim, w.venue, w.trader) == 0);
    assert_true(fabs(sp_amm_lp_supply(w.sim, w.venue) - supply0) <= 1e-12 * supply0);
    sp_amm_reserves(w.sim, w.venue, &s0, &s1);
    assert_true(fabs(s0 - r0) <= 1e-12 * r0 && fabs(s1 - r1) <= 1e-12 * r1);
    double p1 = sp_market_ops_of(w.sim, w.venue)->price(sp_sim_entity_state(w.sim, w.venue));
    assert_true(fabs(p1 - p0) <= 1e-12 * p0);
    assert_int_equal(sp_ledger_check(w.sim), 0);
    /* An agent with no shares, and the venue itself, cannot withdraw. */
    assert_int_equal(sp_amm_remove_liquidity(w.sim, w.venue, w.trader, 1, &ob, &oq), SP_ERANGE);
    assert_int_equal(sp_amm_remove_liquidity(w.sim, w.venue, w.venue, 1, &ob, &oq), SP_EINVAL);
    world_close(&w);
}

static void test_amm_liquidity_add_remove_round_trip(void **state)
{
    (void)state;
    lp_round_trip("markets:\n  - {type: cpmm, name: pool, base: ETH, quote: USDC,\n"
                  "     reserve_base: 100, reserve_quote: 200000}\n");
    lp_round_trip("markets:\n  - {type: stableswap, name: pool, base: stETH, quote: ETH,\n"
                  "     reserve_base: 120, reserve_quote: 80, amp: 50}\n");
}

static double venue_price(struct world *w)
{
    return sp_market_ops_of(w->sim, w->venue)->price(sp_sim_entity_state(w->sim, w->venue));
}

static void arb_to_band(const char *markets, double P)
{
    struct world w;
    world_open(&w, markets, 1e7, 1e7);
    double g = 1.0 - sp_amm_fee(w.sim, w.venue);
    enum sp_side side;
    double amount;
    assert_int_equal(sp_amm_arb_size(w.sim, w.venue, P, &side, &amount), 0);
    assert_true(amount > 0);
    assert_int_equal(side, venue_price(&w) > P ? SP_SELL : SP_BUY);
    struct sp_swap_result res;
    assert_int_equal(swap(&w, side, amount, 0, &res), 0);
    double m = venue_price(&w);
    assert_true(P * g * (1 - 1e-9) <= m && m <= P / g * (1 + 1e-9));      /* in the band */
    assert_int_equal(sp_amm_arb_size(w.sim, w.venue, P, &side, &amount), 0);
    assert_true(amount <= 1e-9 * res.amount_in);                          /* nothing left */
    world_close(&w);
}

static void test_amm_arb_size_brings_the_price_to_the_band(void **state)
{
    (void)state;
    const char cpmm[] = "markets:\n  - {type: cpmm, name: pool, base: ETH, quote: USDC,\n"
                        "     reserve_base: 1000, reserve_quote: 2000000}\n";
    const char ss[] = "markets:\n  - {type: stableswap, name: pool, base: stETH, quote: ETH,\n"
                      "     reserve_base: 1000, reserve_quote: 1000, amp: 50}\n";
    arb_to_band(cpmm, 1500);
    arb_to_band(cpmm, 2600);
    arb_to_band(ss, 0.97);
    arb_to_band(ss, 1.02);
    /* FORMULAS.md: without a fee the arbitrage leaves x = sqrt(k/P), price P. */
    struct world w;
    world_open(&w, "markets:\n  - {type: cpmm, name: pool, base: ETH, quote: USDC,\n"
                   "     reserve_base: 1000, reserve_quote: 2000000, fee: 0}\n", 1e7, 1e7);
    enum sp_side side;
    double amount, r0, r1;
    struct sp_swap_result res;
    assert_int_equal(sp_amm_arb_size(w.sim, w.venue, 1800, &side, &amount), 0);
    assert_int_equal(side, SP_SELL);
    assert_int_equal(swap(&w, side, amount, 0, &res), 0);
    sp_amm_reserves(w.sim, w.venue, &r0, &r1);
    assert_true(fabs(r0 - sqrt(1000 * 2e6 / 1800)) <= 1e-12 * r0);
    assert_true(fabs(venue_price(&w) - 1800) <= 1e-9 * 1800);
    /* Inside the band: nothing to do. */
    assert_int_equal(sp_amm_arb_size(w.sim, w.venue, 1800, &side, &amount), 0);
    assert_true(amount == 0);
    assert_false(sp_amm_is(w.sim, w.trader));
    assert_true(sp_amm_is(w.sim, w.venue));
    assert_int_equal(sp_amm_arb_size(w.sim, w.trader, 1800, &side, &amount), SP_EINVAL);
    world_close(&w);
}

/* Quote per base: a pool long the base prices it below 1, and at balance 1. */
static void test_stableswap_price_is_quote_per_base(void **state)
{
    (void)state;
    struct world w;
    world_open(&w, "markets:\n  - {type: stableswap, name: pool, base: stETH, quote: ETH,\n"
                   "     reserve_base: 1000, reserve_quote: 1000, amp: 50}\n", 100, 100);
    assert_true(fabs(venue_price(&w) - 1.0) <= 1e-15);
    assert_true(fabs(sp_amm_fee(w.sim, w.venue) - 0.0004) < 1e-18);
    struct sp_swap_result res;
    assert_int_equal(swap(&w, SP_SELL, 50, 0, &res), 0);           /* sell stETH: it cheapens */
    assert_true(res.price_after < res.price_before && res.price_after < 1.0);
    assert_true(res.amount_out < 50 && res.amount_out > 49);         /* near par, A = 50 */
    assert_true(bal(&w, w.trader, 0) == 50 && bal(&w, w.trader, 1) == 100 + res.amount_out);
    struct sp_stableswap ref;
    sp_stableswap_init(&ref, 1000, 1000, 50, 0.0004);
    double dy, pr;
    sp_stableswap_swap(&ref, 0, 50, &dy);
    sp_stableswap_price(&ref, &pr);
    assert_true(dy == res.amount_out && pr == venue_price(&w));
    assert_int_equal(swap(&w, SP_BUY, 80, 0, &res), 0);             /* buy stETH back: dearer */
    assert_true(res.price_after > res.price_before);
    world_close(&w);
}

/* A whole run: /markets/pool sampled on its grid (plus a row per trade) and
 * /events/trades rows, read back from the file. */
static void test_amm_run_writes_markets_and_trades_tables(void **state)
{
    (void)state;
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    assert_int_equal(sp_registry_add(reg, &trader_ops), 0);
    const char *dir = tu_tmpdir("amm");
    char path[1024], out[1024];
    snprintf(path, sizeof path, "%s/run.yaml", dir);
    snprintf(out, sizeof out, "%s/run.h5", dir);
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%s%s", header,
             "markets:\n"
             "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5,\n"
             "     reserve_quote: 10, sample_every: 2h, record_every_trade: true}\n"
             "agents:\n"
             "  - type: amm_test_trader\n"
             "    name: trader\n"
             "    venue: pool\n"
             "    base_balance: 10\n"
             "    quote_balance: 10\n"
             "    trades: [{at: 1h, side: sell, amount: 1}, {at: 5h, side: buy, amount: 2}]\n");
    tu_write(path, yaml);
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    int rc = sp_scenario_load(&sc, path, &d);
    if (!rc) rc = sp_world_bind(sc, reg, &cfg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    struct sp_world_run req = { .output = out, .command_line = "test" };
    enum sp_run_status st = SP_RUN_FAILED;
    rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (rc || d.n_errors) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(st, SP_RUN_COMPLETE);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
    sp_registry_destroy(reg);

    size_t n, m;
    double *t = tu_read_f64(out, "/markets/pool/t", &n);
    double *p = tu_read_f64(out, "/markets/pool/price", &m);
    double *r0 = tu_read_f64(out, "/markets/pool/reserve_0", &m);
    double *r1 = tu_read_f64(out, "/markets/pool/reserve_1", &m);
    double *lp = tu_read_f64(out, "/markets/pool/lp_supply", &m);
    size_t ne;
    int64_t *tus = tu_read_raw(out, "/markets/pool/t_us", &m, &ne);
    assert_int_equal(ne, 8);
    assert_int_equal(n, 13 + 2);                         /* 0, 2h, ..., 24h; and 2 trades */
    size_t trade_rows = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(tus[i] == (int64_t)llround(t[i] * 1e6));
        assert_true(fabs(p[i] - r1[i] / r0[i]) <= 1e-15 * p[i]);
        assert_true(fabs(lp[i] - sqrt(50.0)) <= 1e-12);
        if (fmod(t[i], 7200.0) != 0) trade_rows++;
        if (i) assert_true(t[i] >= t[i - 1]);
    }
    assert_int_equal(trade_rows, 2);                     /* at 1h and 5h, off the grid */
    assert_true(p[0] == 2.0 && r0[0] == 5.0 && r1[0] == 10.0);
    size_t nt;
    double *tt = tu_read_f64(out, "/events/trades/t", &nt);
    assert_int_equal(nt, 2);
    double *ain = tu_read_f64(out, "/events/trades/amount_in", &nt);
    double *aout = tu_read_f64(out, "/events/trades/amount_out", &nt);
    double *pb = tu_read_f64(out, "/events/trades/price_before", &nt);
    double *pa = tu_read_f64(out, "/events/trades/price_after", &nt);
    int8_t *side = tu_read_raw(out, "/events/trades/side", &nt, &ne);
    int8_t *cause = tu_read_raw(out, "/events/trades/cause", &nt, &ne);
    int32_t *venue = tu_read_raw(out, "/events/trades/venue", &nt, &ne);
    assert_true(tt[0] == 3600 && tt[1] == 5 * 3600);
    assert_true(ain[0] == 1 && ain[1] == 2);
    assert_true(fabs(aout[0] - 1.662497915624478906) <= 1e-15 * 1.67);   /* FORMULAS.md */
    assert_true(side[0] == SP_SELL && side[1] == SP_BUY);
    assert_true(cause[0] == SP_CAUSE_SCRIPTED);
    assert_true(venue[0] == 0);                          /* the first entity */
    assert_true(pb[0] == 2.0 && pa[0] == pb[1]);
    /* The row written after the first trade shows the post-trade state. */
    assert_true(t[1] == 3600 && p[1] == pa[0]);
    /* /summary: quote volume = quote received on the sell + quote paid on the buy. */
    double vol = tu_attr_f64(out, "/summary", "volume_pool");
    assert_true(fabs(vol - (aout[0] + 2)) <= 1e-12 * vol);
    assert_true(tu_attr_f64(out, "/summary", "min_price_pool") == pa[0]);
    double dd = tu_attr_f64(out, "/summary", "max_drawdown_pool");
    assert_true(fabs(dd - (1 - pa[0] / 2.0)) <= 1e-15);
    assert_true(tu_attr_f64(out, "/summary", "final_price_pool") == pa[1]);
    free(t); free(p); free(r0); free(r1); free(lp); free(tus);
    free(tt); free(ain); free(aout); free(pb); free(pa); free(side); free(cause); free(venue);
}

static void test_amm_bad_input_names_file_line_and_key(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        { "type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: -5, reserve_quote: 10",
          "reserve_base", "must be >" },
        { "type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5, reserve_quote: 10, fee: 100%",
          "fee", "must be <" },
        { "type: stableswap, name: pool, base: stETH, quote: ETH, reserve_base: 5, reserve_quote: 5, amp: 0",
          "amp", "must be >" },
        { "type: stableswap, name: pool, base: stETH, quote: ETH, reserve_base: 5, reserve_quote: 5",
          "amp", "amp" },
        { "type: cpmm, name: pool, base: ETH, quote: ETH, reserve_base: 5, reserve_quote: 10",
          "quote", "different" },
        { "type: cpmm, name: pool, base: ETH, quote: USDT, reserve_base: 5, reserve_quote: 10",
          "quote", "unknown token 'USDT'" },
        { "type: stableswap, name: pool, base: WBTC, quote: ETH, reserve_base: 5, reserve_quote: 5, amp: 9",
          "base", "unknown token 'WBTC'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[2048], key[64];
        snprintf(yaml, sizeof yaml, "%smarkets:\n  - {%s}\n", header, bad[i][0]);
        struct sp_diag d = { 0 };
        struct sp_scenario *sc;
        struct sp_world_cfg cfg;
        assert_int_equal(sp_scenario_load_string(&sc, "bad.yaml", yaml, strlen(yaml), &d), 0);
        assert_int_equal(sp_world_bind(sc, sp_registry_builtin(), &cfg, &d), SP_ECONFIG);
        snprintf(key, sizeof key, "markets.0.%s", bad[i][1]);
        int ok = d.text && strstr(d.text, "bad.yaml:8:") && strstr(d.text, bad[i][2]) &&
                 (strstr(d.text, key) || !strcmp(bad[i][1], "amp"));
        if (!ok) fprintf(stderr, "case %zu: %s\n", i, d.text ? d.text : "(none)");
        assert_true(ok);
        sp_diag_release(&d);
        sp_scenario_destroy(sc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpmm_swap_matches_uniswap_v2_vector),
        cmocka_unit_test(test_amm_random_swaps_conserve_every_token_and_k_never_falls),
        cmocka_unit_test(test_amm_failed_swap_moves_nothing),
        cmocka_unit_test(test_amm_cumulative_is_the_time_weighted_price),
        cmocka_unit_test(test_amm_liquidity_add_remove_round_trip),
        cmocka_unit_test(test_amm_arb_size_brings_the_price_to_the_band),
        cmocka_unit_test(test_stableswap_price_is_quote_per_base),
        cmocka_unit_test(test_amm_run_writes_markets_and_trades_tables),
        cmocka_unit_test(test_amm_bad_input_names_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
