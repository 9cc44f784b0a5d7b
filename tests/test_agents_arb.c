/*
 * test_agents_arb.c — the arbitrageur, scripted and liquidity_provider agents
 * in whole simulations built from scenario text: arbitrage pulls a CPMM back
 * into its fee band after a reference shock (at once with ample capital and
 * no latency; only after the latency with one; never with too little
 * capital), every token conserved at every step, non-negative arbitrage
 * profit after gas, scripted actions at their exact times and amounts (read
 * back from /events/trades), LP flight exactly when the drawdown threshold
 * is crossed, and scenario errors with file:line:col and key.
 *
 * Runs are stepped in process (sp_world_build, sp_sim_start, sp_sim_step)
 * so the test can look at the venue, the reference and the ledger between
 * events; sp_ledger_check runs after every step.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "amm.h"
#include "book.h"
#include "reference.h"


/* |a − b| <= eps, reporting both values. */
#define assert_near(a, b, eps)                                                          \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps)))                                                   \
            fail_msg("%s = %.17g, expected %.17g (within %g)", #a, a_, b_, (double)(eps)); \
    } while (0)

#define GAMMA 0.997                          /* 1 − fee of the pools below (0.3 %) */

/* ---- helpers --------------------------------------------------------------- */

static void world_open(struct tw_world *w, const char *name, const char *yaml)
{
    tw_open(w, &(struct tw_opts){ .name = name, .text = yaml });
}

static double pool_price(struct tw_world *w)
{
    sp_id v = tw_id(w, "pool");
    return sp_market_ops_of(w->sim, v)->price(sp_sim_entity_state(w->sim, v));
}

static double ref_price(struct tw_world *w)
{
    return sp_reference_price(w->sim, tw_id(w, "reference_ETH"));
}

static bool in_band(struct tw_world *w)
{
    double p = pool_price(w), r = ref_price(w);
    return p >= r * GAMMA * (1 - 1e-9) && p <= r / GAMMA * (1 + 1e-9);
}

/* ---- arbitrage after a shock ---------------------------------------------- */

/* ETH at 2000 without noise; at 1h a 30 % drop completed within 1 s.  A
 * 1000 ETH / 2M USDC pool, polled every 12 s (1h is a multiple of 12 s, so
 * the first poll that sees the drop is at 1h + 12 s). */
static const char shock_fmt[] =
    "horizon: 3h\n"
    "output: {sample_every: 1m}\n"
    "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m,\n"
    "     shocks: [{at: 1h, drop: 30%%, over: 1s}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0.3%%}\n"
    "agents:\n"
    "  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, reaction: %s, gas_cost: 5,\n"
    "     inventory: %s, cash: 1000000}\n";

static void open_shock(struct tw_world *w, const char *name, const char *reaction, const char *eth)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, shock_fmt, reaction, eth);
    world_open(w, name, yaml);
}

#define T_SHOCK (SP_HOUR + SP_SEC)           /* the reference is at 1400 from here */
#define T_POLL  (SP_HOUR + 12 * SP_SEC)      /* first poll after it */

/* FORMULAS.md, "Optimal arbitrage" against a CPMM with fee: the trade is sized
 * from Uniswap v2's getAmountOut (derivation in the test) and leaves the pool
 * inside the no-arbitrage band P·γ <= price <= P/γ. */
static void test_arb_closes_gap_within_one_poll_with_ample_capital(void **state)
{
    (void)state;
    struct tw_world w;
    open_shock(&w, "arb_ample", "0s", "100000");
    for (sp_time t = 0; t <= T_SHOCK; t += 12 * SP_SEC) {
        tw_step_to(&w, t);
        assert_near(pool_price(&w), 2000.0, 1e-9);   /* nothing to do before */
    }
    tw_step_to(&w, T_SHOCK);
    assert_near(ref_price(&w), 1400.0, 1e-9);
    assert_false(in_band(&w));
    tw_step_to(&w, T_POLL - 1);
    assert_false(in_band(&w));
    tw_step_to(&w, T_POLL);
    assert_true(in_band(&w));
    /* Uniswap v2 getAmountOut: out(x) = γ·x·r1/(r0 + γ·x); profit out(x) − P·x is
     * maximal where out'(x) = γ·r0·r1/(r0 + γ·x)² = P, i.e.
     * x* = (sqrt(γ·r0·r1/P) − r0)/γ: the base the arbitrageur sold. */
    double x_star = (sqrt(GAMMA * 1000.0 * 2000000.0 / 1400.0) - 1000.0) / GAMMA;
    sp_token eth0 = sp_token_find(w.sim, "ETH");
    assert_near((100000.0 - sp_balance(w.sim, tw_id(&w, "arb"), eth0)) / x_star, 1.0, 1e-12);
    for (sp_time t = T_POLL; t <= 3 * SP_HOUR; t += 12 * SP_SEC) {
        tw_step_to(&w, t);
        assert_true(in_band(&w));
    }
    sp_sim_finish(w.sim);
    assert_true(tw_summary(w.sim, "n_trades_arb") == 1);
    assert_true(tw_summary(w.sim, "profit_arb") > 0);
    assert_near(tw_summary(w.sim, "gas_arb"), 5.0, 0);
    /* Gas is burned: USDC supply = pool + wallet − gas; ETH supply untouched. */
    sp_token eth = sp_token_find(w.sim, "ETH"), usdc = sp_token_find(w.sim, "USDC");
    assert_near(sp_supply(w.sim, eth), 101000.0, 1e-6);
    assert_near(sp_supply(w.sim, usdc), 3000000.0 - 5.0, 1e-6);
    tw_close(&w);
}

static void test_arb_latency_delays_the_pull_back(void **state)
{
    (void)state;
    struct tw_world w;
    open_shock(&w, "arb_latency", "5m", "100000");
    sp_time exec = T_POLL + 5 * SP_MIN;
    for (sp_time t = T_SHOCK; t < exec; t += 6 * SP_SEC) {
        tw_step_to(&w, t);
        assert_false(in_band(&w));
    }
    tw_step_to(&w, exec - 1);
    assert_false(in_band(&w));
    tw_step_to(&w, exec);
    assert_true(in_band(&w));
    tw_step_to(&w, 3 * SP_HOUR);
    assert_true(in_band(&w));
    sp_sim_finish(w.sim);
    assert_true(tw_summary(w.sim, "profit_arb") > 0);
    tw_close(&w);
}

static void test_arb_small_capital_leaves_the_pool_away(void **state)
{
    (void)state;
    struct tw_world w;
    open_shock(&w, "arb_small", "0s", "20");
    sp_id arb = tw_id(&w, "arb");
    sp_token eth = sp_token_find(w.sim, "ETH");
    for (sp_time t = T_SHOCK; t <= 3 * SP_HOUR; t += SP_MIN) {
        tw_step_to(&w, t);
        assert_false(in_band(&w));
        assert_true(pool_price(&w) > 1400.0 / GAMMA * 1.10);   /* > 10 % above the band */
    }
    assert_near(sp_balance(w.sim, arb, eth), 0.0, 1e-9);   /* sold all it had */
    sp_sim_finish(w.sim);
    assert_true(tw_summary(w.sim, "capital_bound_arb") > 1);
    assert_true(tw_summary(w.sim, "profit_arb") > 0);
    tw_close(&w);
}

/* StableSwap (numeric sizing): a 5 % depeg of the stETH reference is closed
 * into the pool's fee band at the first poll. */
static void test_arb_stableswap_back_in_fee_band(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 2h\n"
        "tokens: [{name: stETH, kind: base}, {name: ETH, kind: base}]\n"
        "references:\n"
        "  - {type: gbm, asset: stETH, initial: 1, shocks: [{at: 1h, drop: 5%, over: 1s}]}\n"
        "markets:\n"
        "  - {type: stableswap, name: pool, base: stETH, quote: ETH, reserve_base: 10000,\n"
        "     reserve_quote: 10000, amp: 50, fee: 0.04%}\n"
        "agents:\n"
        "  - {type: arbitrageur, name: arb, venue: pool, gas_cost: 0.001, inventory: 100000,\n"
        "     cash: 100000}\n";
    struct tw_world w;
    world_open(&w, "arb_stableswap", yaml);
    sp_id pool = tw_id(&w, "pool"), ref = tw_id(&w, "reference_stETH");
    const double g = 1 - 0.0004;
    tw_step_to(&w, T_POLL - 1);
    double p = sp_market_ops_of(w.sim, pool)->price(sp_sim_entity_state(w.sim, pool));
    assert_true(p > sp_reference_price(w.sim, ref) / g * 1.01);
    tw_step_to(&w, T_POLL);
    p = sp_market_ops_of(w.sim, pool)->price(sp_sim_entity_state(w.sim, pool));
    double r = sp_reference_price(w.sim, ref);
    if (!(p >= r * g * (1 - 1e-9) && p <= r / g * (1 + 1e-9)))
        fail_msg("pool %.12g outside the band of reference %.12g", p, r);
    tw_step_to(&w, 2 * SP_HOUR);
    sp_sim_finish(w.sim);
    assert_true(tw_summary(w.sim, "profit_arb") > 0);
    tw_close(&w);
}

/* A population under noise: every member's realised profit after gas is
 * >= 0 and the ledger balances at every minute. */
static void test_arb_population_profit_nonnegative_under_noise(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 1d\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 2000, volatility: 120%, step: 10s,\n"
        "     shocks: [{at: 6h, drop: 25%, over: 2h}]}\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
        "     reserve_quote: 2000000}\n"
        "agents:\n"
        "  - type: arbitrageur\n"
        "    name: arb\n"
        "    count: 4\n"
        "    venue: pool\n"
        "    reaction: 12s\n"
        "    gas_cost: {dist: uniform, low: 1, high: 20}\n"
        "    min_profit: 2\n"
        "    inventory: {dist: lognormal, mean: 30, sd: 10}\n"
        "    cash: {dist: lognormal, mean: 60000, sd: 20000}\n";
    struct tw_world w;
    world_open(&w, "arb_population", yaml);
    for (sp_time t = 0; t <= SP_DAY; t += SP_MIN) tw_step_to(&w, t);
    sp_sim_finish(w.sim);
    double trades = 0;
    for (int k = 0; k < 4; k++) {
        char key[64];
        snprintf(key, sizeof key, "profit_arb_%d", k);
        assert_true(tw_summary(w.sim, key) >= 0);
        snprintf(key, sizeof key, "n_trades_arb_%d", k);
        trades += tw_summary(w.sim, key);
    }
    assert_true(trades > 10);
    tw_close(&w);
}

/* An order book: a scripted ask 2.5 % below the reference is bought by the
 * arbitrageur at its next poll, and an ask inside the threshold is left;
 * then it sells into two bids above the threshold. */
static void test_arb_walks_the_book(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 1h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references: [{type: gbm, asset: ETH, initial: 2000}]\n"
        "markets:\n"
        "  - {type: lob, name: book, base: ETH, quote: USDC, initial_price: 2000,\n"
        "     tick_size: 1, lot_size: 0.1}\n"
        "agents:\n"
        "  - type: scripted\n"
        "    name: maker\n"
        "    holdings: [{token: ETH, amount: 100}, {token: USDC, amount: 100000}]\n"
        "    actions:\n"
        "      - {at: 10m, do: limit, venue: book, side: sell, price: 1950, qty: 5}\n"
        "      - {at: 10m, do: limit, venue: book, side: sell, price: 1999, qty: 3}\n"
        "      - {at: 15m, do: cancel, order: 1}\n"
        "      - {at: 20m, do: limit, venue: book, side: buy, price: 2060, qty: 2}\n"
        "      - {at: 20m, do: limit, venue: book, side: buy, price: 2040, qty: 4}\n"
        "  - {type: arbitrageur, name: arb, venue: book, threshold: 0.5%, gas_cost: 10,\n"
        "     cash: 1000000, inventory: 3}\n";
    struct tw_world w;
    world_open(&w, "arb_book", yaml);
    sp_id arb = tw_id(&w, "arb"), book = tw_id(&w, "book");
    sp_token eth = sp_token_find(w.sim, "ETH"), usdc = sp_token_find(w.sim, "USDC");
    tw_step_to(&w, 10 * SP_MIN - 1);
    assert_near(sp_balance(w.sim, arb, eth), 3.0, 0);
    /* 10m is on its 12 s polling grid, and its poll comes after the orders. */
    tw_step_to(&w, 10 * SP_MIN);
    assert_near(sp_balance(w.sim, arb, eth), 8.0, 1e-9);
    assert_near(sp_balance(w.sim, arb, usdc), 1000000.0 - 5 * 1950.0 - 10.0, 1e-6);
    double bid, ask;
    assert_int_equal(sp_book_best(w.sim, book, &bid, NULL, &ask, NULL), 0);
    assert_near(ask, 1999.0, 1e-9);       /* inside the threshold: left alone */
    /* The 1999 ask is cancelled at 15m; bids above 2000·1.005 = 2010 come at
     * 20m: it sells into both (6 ETH of its 8). */
    tw_step_to(&w, 20 * SP_MIN);
    assert_near(sp_balance(w.sim, arb, eth), 2.0, 1e-9);
    assert_int_equal(sp_book_best(w.sim, book, &bid, NULL, NULL, NULL), 0);
    assert_true(isnan(bid));              /* both bids taken */
    tw_step_to(&w, SP_HOUR);
    sp_sim_finish(w.sim);
    assert_near(tw_summary(w.sim, "profit_arb"),
                5 * 50.0 - 10.0 + (2 * 60.0 + 4 * 40.0 - 10.0), 1e-6);
    assert_near(tw_summary(w.sim, "n_trades_arb"), 2.0, 0);
    tw_close(&w);
}

/* ---- scripted -------------------------------------------------------------- */

static const char scripted_yaml[] =
    "horizon: 6h\n"
    "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
    "references: [{type: gbm, asset: ETH, initial: 2000}]\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0.3%}\n"
    "  - {type: lob, name: book, base: ETH, quote: USDC, initial_price: 2000, tick_size: 1,\n"
    "     lot_size: 0.5}\n"
    "agents:\n"
    "  - type: scripted\n"
    "    name: whale\n"
    "    holdings: [{token: ETH, amount: 500}, {token: USDC, amount: 1000000}]\n"
    "    actions:\n"
    "      - {at: 1h, do: swap, venue: pool, side: sell, amount: 100}\n"
    "      - {at: 1h30m, do: swap, venue: pool, side: buy, amount: 50000}\n"
    "      - {at: 2h, do: add_liquidity, venue: pool, base: 10, quote: 100000}\n"
    "      - {at: 3h, do: remove_liquidity, venue: pool, shares: 50%}\n"
    "      - {at: 4h, do: limit, venue: book, side: buy, price: 1990, qty: 5}\n"
    "      - {at: 5h, do: cancel, order: 4}\n"
    "      - {at: 5h30m, do: swap, venue: pool, side: sell, amount: 1, min_out: 1e9}\n";

/* Uniswap v2 getAmountOut (FORMULAS.md): in·γ·Rout / (Rin + in·γ). */
static double v2_out(double in, double rin, double rout)
{
    return in * GAMMA * rout / (rin + in * GAMMA);
}

static void test_scripted_trades_at_exact_times_and_amounts(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("agents_arb");
    char path[1024], out[1100];
    snprintf(path, sizeof path, "%s/scripted.yaml", dir);
    snprintf(out, sizeof out, "%s/scripted.h5", dir);
    tu_write(path, scripted_yaml);
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    int rc = sp_scenario_load(&sc, path, &d);
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, &d);
    struct sp_world_run req = { .output = out, .command_line = "test" };
    enum sp_run_status st = SP_RUN_FAILED;
    if (!rc) rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (rc || d.n_errors) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(st, SP_RUN_COMPLETE);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);

    size_t n, n2, elem;
    double *t = tu_read_f64(out, "/events/trades/t", &n);
    double *in = tu_read_f64(out, "/events/trades/amount_in", &n2);
    double *o = tu_read_f64(out, "/events/trades/amount_out", &n2);
    int8_t *cause = tu_read_raw(out, "/events/trades/cause", &n2, &elem);
    int8_t *side = tu_read_raw(out, "/events/trades/side", &n2, &elem);
    assert_int_equal(elem, 1);
    assert_int_equal(n, 2);                    /* the limit rests; the min_out swap reverts */
    assert_near(t[0], 3600.0, 0);
    assert_near(t[1], 5400.0, 0);
    assert_near(in[0], 100.0, 0);
    assert_near(in[1], 50000.0, 0);
    assert_int_equal(side[0], SP_SELL);
    assert_int_equal(side[1], SP_BUY);
    assert_int_equal(cause[0], SP_CAUSE_SCRIPTED);
    assert_int_equal(cause[1], SP_CAUSE_SCRIPTED);
    double q1 = v2_out(100, 1000, 2000000);
    assert_near(o[0] / q1, 1.0, 1e-12);
    double b2 = v2_out(50000, 2000000 - q1, 1100);
    assert_near(o[1] / b2, 1.0, 1e-12);
    free(t); free(in); free(o); free(cause); free(side);
    assert_near(tu_attr_f64(out, "/summary", "actions_done_whale"), 6.0, 0);
    assert_near(tu_attr_f64(out, "/summary", "reverted_whale"), 1.0, 0);
    assert_near(tu_attr_f64(out, "/summary", "cancel_missed_whale"), 0.0, 0);
}

static void test_scripted_shock_moves_the_reference_like_a_scheduled_one(void **state)
{
    (void)state;
    /* A ramp of 20 % over 90 s from 1h (ending off the 1-minute grid), then
     * an instant 50 % drop at 3h; volatility 0, so the path is exact. */
    static const char yaml[] =
        "horizon: 4h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references: [{type: gbm, asset: ETH, initial: 1000, step: 1m}]\n"
        "agents:\n"
        "  - type: scripted\n"
        "    name: news\n"
        "    actions:\n"
        "      - {at: 1h, do: shock, reference: reference_ETH, drop: 20%, over: 90s}\n"
        "      - {at: 3h, do: shock, reference: reference_ETH, drop: 50%}\n";
    struct tw_world w;
    world_open(&w, "scripted_shock", yaml);
    tw_step_to(&w, SP_HOUR - 1);
    assert_near(ref_price(&w), 1000.0, 0);
    tw_step_to(&w, SP_HOUR + SP_MIN);                    /* a grid step inside the ramp */
    assert_near(ref_price(&w), 1000.0 * (1 - 0.2 * 60.0 / 90.0), 1e-9);
    tw_step_to(&w, SP_HOUR + 90 * SP_SEC);               /* the exact end of the ramp */
    assert_near(ref_price(&w), 800.0, 1e-9);
    tw_step_to(&w, 3 * SP_HOUR);                         /* instant: at its time */
    assert_near(ref_price(&w), 400.0, 1e-9);
    tw_step_to(&w, 4 * SP_HOUR);
    assert_near(ref_price(&w), 400.0, 1e-9);
    tw_close(&w);
}

static void test_scripted_liquidity_and_orders_in_process(void **state)
{
    (void)state;
    struct tw_world w;
    world_open(&w, "scripted_inproc", scripted_yaml);
    sp_id whale = tw_id(&w, "whale"), pool = tw_id(&w, "pool"), book = tw_id(&w, "book");
    sp_token eth = sp_token_find(w.sim, "ETH"), usdc = sp_token_find(w.sim, "USDC");
    tw_step_to(&w, 2 * SP_HOUR - 1);
    assert_near(sp_amm_lp_shares(w.sim, pool, whale), 0.0, 0);
    double r0, r1;
    assert_int_equal(sp_amm_reserves(w.sim, pool, &r0, &r1), 0);
    double supply = sp_amm_lp_supply(w.sim, pool);
    tw_step_to(&w, 2 * SP_HOUR);
    /* 10 ETH binds or 100000 USDC binds, whichever is short at the pool ratio. */
    double used0 = fmin(10.0, 100000.0 * r0 / r1);
    double shares = sp_amm_lp_shares(w.sim, pool, whale);
    assert_near(shares / (supply * used0 / r0), 1.0, 1e-9);
    tw_step_to(&w, 3 * SP_HOUR);
    assert_near(sp_amm_lp_shares(w.sim, pool, whale) / (shares / 2), 1.0, 1e-12);
    double usdc_before = sp_balance(w.sim, whale, usdc);
    tw_step_to(&w, 4 * SP_HOUR);
    double bid, bid_qty;
    assert_int_equal(sp_book_best(w.sim, book, &bid, &bid_qty, NULL, NULL), 0);
    assert_near(bid, 1990.0, 0);
    assert_near(bid_qty, 5.0, 0);
    assert_near(usdc_before - sp_balance(w.sim, whale, usdc), 1990.0 * 5, 1e-6);
    tw_step_to(&w, 5 * SP_HOUR);
    assert_int_equal(sp_book_best(w.sim, book, &bid, &bid_qty, NULL, NULL), 0);
    assert_true(isnan(bid));
    assert_near(sp_balance(w.sim, whale, usdc), usdc_before, 1e-6);
    double eth_before = sp_balance(w.sim, whale, eth);
    tw_step_to(&w, 6 * SP_HOUR);
    assert_near(sp_balance(w.sim, whale, eth), eth_before, 0);   /* reverted */
    tw_close(&w);
}

/* ---- liquidity provider ---------------------------------------------------- */

/* A seller sells 15 ETH into the pool every 10 minutes; the LP
 * (max_drawdown 10 % over a 1 h window, sampled every minute) must leave at
 * the first sample whose drawdown from the window's peak exceeds 10 %, and
 * not before. */
static void test_lp_flees_when_drawdown_crosses_and_not_before(void **state)
{
    (void)state;
    char yaml[4096];
    size_t len = (size_t)snprintf(yaml, sizeof yaml,
        "horizon: 4h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references: [{type: gbm, asset: ETH, initial: 2000}]\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
        "     reserve_quote: 2000000}\n"
        "agents:\n"
        "  - type: liquidity_provider\n"
        "    name: lp\n"
        "    venue: pool\n"
        "    inventory: 200\n"
        "    cash: 400000\n"
        "    sample: 1m\n"
        "    window: 1h\n"
        "    max_drawdown: 10%%\n"
        "  - type: scripted\n"
        "    name: seller\n"
        "    holdings: [{token: ETH, amount: 1000}]\n"
        "    actions:\n");
    for (int k = 1; k <= 12; k++)
        len += (size_t)snprintf(yaml + len, sizeof yaml - len,
                                "      - {at: %dm, do: swap, venue: pool, side: sell, amount: 15}\n",
                                10 * k);
    struct tw_world w;
    world_open(&w, "lp_flight", yaml);
    sp_id lp = tw_id(&w, "lp"), pool = tw_id(&w, "pool");
    double prices[600];
    int n = 0, exit_at = -1;
    for (int m = 0; m <= 180; m++) {
        tw_step_to(&w, m * SP_MIN);
        prices[n++] = pool_price(&w);
        double peak = 0;
        for (int k = n - 1; k >= 0 && k >= n - 61; k--) peak = fmax(peak, prices[k]);
        bool crossed = 1 - prices[n - 1] / peak > 0.10;
        double held = sp_amm_lp_shares(w.sim, pool, lp);
        if (exit_at < 0 && !crossed) {
            assert_true(held > 0);
        } else if (exit_at < 0) {
            exit_at = m;
            assert_near(held, 0.0, 0);
        }
    }
    assert_true(exit_at > 0);
    sp_sim_finish(w.sim);
    assert_near(tw_summary(w.sim, "first_exit_lp"), exit_at * 60.0, 0);
    tw_close(&w);
}

/* Volatility trigger and return: one 50 ETH sale at 30m makes the realised
 * volatility of the 1 h window jump (one ~10 % one-minute return); the LP
 * leaves at the 30m sample.  The return leaves the window once the 29m
 * sample does (at 90m), so it is calm from 90m and returns 30 min later. */
static void test_lp_volatility_exit_and_return_after_calm(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 3h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references: [{type: gbm, asset: ETH, initial: 2000}]\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
        "     reserve_quote: 2000000}\n"
        "agents:\n"
        "  - {type: liquidity_provider, name: lp, venue: pool, max_volatility: 500%,\n"
        "     return_after: 30m, inventory: 100, cash: 200000}\n"
        "  - type: scripted\n"
        "    name: seller\n"
        "    holdings: [{token: ETH, amount: 50}]\n"
        "    actions: [{at: 30m, do: swap, venue: pool, side: sell, amount: 50}]\n";
    struct tw_world w;
    world_open(&w, "lp_return", yaml);
    sp_id lp = tw_id(&w, "lp"), pool = tw_id(&w, "pool");
    for (int m = 0; m <= 150; m++) {
        tw_step_to(&w, m * SP_MIN);
        double held = sp_amm_lp_shares(w.sim, pool, lp);
        if (m < 30 || m >= 120) {
            if (!(held > 0)) fail_msg("no LP shares at %d min", m);
        } else if (held != 0) {
            fail_msg("LP shares %g at %d min", held, m);
        }
    }
    sp_sim_finish(w.sim);
    assert_near(tw_summary(w.sim, "first_exit_lp"), 1800.0, 0);
    assert_near(tw_summary(w.sim, "n_exits_lp"), 1.0, 0);
    assert_near(tw_summary(w.sim, "n_returns_lp"), 1.0, 0);
    tw_close(&w);
}

/* A scripted swap it cannot pay for fails the run, naming the action. */
static void test_scripted_unfunded_action_fails_the_run(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 2h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references: [{type: gbm, asset: ETH, initial: 2000}]\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
        "     reserve_quote: 2000000}\n"
        "agents:\n"
        "  - type: scripted\n"
        "    name: broke\n"
        "    holdings: [{token: ETH, amount: 4}]\n"
        "    actions: [{at: 1h, do: swap, venue: pool, side: sell, amount: 10}]\n";
    struct tw_world w;
    world_open(&w, "scripted_broke", yaml);
    bool drained = false;
    while (!drained && !sp_sim_failure(w.sim, NULL))
        sp_sim_step(w.sim, 2 * SP_HOUR, 1, &drained);
    const char *msg = NULL;
    assert_int_equal(sp_sim_failure(w.sim, &msg), SP_EMODEL);
    assert_non_null(strstr(msg, "broke: action 0 (swap at 3600 s): holds 4 ETH, needs 10"));
    assert_int_equal(sp_sim_now(w.sim), SP_HOUR);
    tw_close(&w);
}

/* ---- scenario errors ------------------------------------------------------- */

static const char bad_head[] =
    "horizon: 6h\n"                                                             /* 1 */
    "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"           /* 2 */
    "references: [{type: gbm, asset: ETH, initial: 2000}]\n"                    /* 3 */
    "markets:\n"                                                                /* 4 */
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1,\n"   /* 5 */
    "     reserve_quote: 2000}\n"                                               /* 6 */
    "agents:\n";                                                                /* 7 */

static void expect_bind_error(const char *agent_line, const char *where, const char *what,
                              const char *key)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%s%s", bad_head, agent_line);
    tw_expect_config_error(&(struct tw_opts){ .name = "bad_agent", .text = yaml }, true, where,
                           what, key, (const char *)NULL);
}

static void test_bad_input_names_file_line_and_key(void **state)
{
    (void)state;
    expect_bind_error("  - {type: arbitrageur, venue: poll}\n",
                      "bad_agent.yaml:8:", "unknown venue 'poll' (did you mean 'pool'?)",
                      "agents.0.venue");
    expect_bind_error("  - {type: arbitrageur, venue: pool,\n"
                      "     cash: -5}\n",
                      "bad_agent.yaml:9:", "must be >= 0", "agents.0.cash");
    expect_bind_error("  - {type: arbitrageur, venue: pool,\n"
                      "     inventory: {dist: uniform, low: -5, high: 5}}\n",
                      "bad_agent.yaml:9:", "must be >= 0", "agents.0.inventory");
    expect_bind_error("  - type: scripted\n"
                      "    holdings: [{token: ETH, amount: -1}]\n"
                      "    actions: [{at: 1h, do: swap, venue: pool, side: sell, amount: 1}]\n",
                      "bad_agent.yaml:9:", "must be >= 0", "agents.0.holdings.0.amount");
    expect_bind_error("  - {type: arbitrageur, venue: pool, gas_cost: -1}\n",
                      "bad_agent.yaml:8:", "must be >= 0", "agents.0.gas_cost");
    expect_bind_error("  - {type: arbitrageur, venue: pool, reference: reference_ETh}\n",
                      "bad_agent.yaml:8:", "did you mean 'reference_ETH'", "agents.0.reference");
    expect_bind_error("  - type: scripted\n"
                      "    holdings: [{token: USD, amount: 1}]\n"
                      "    actions: [{at: 1h, do: swap, venue: pool, side: sell, amount: 1}]\n",
                      "bad_agent.yaml:9:", "did you mean 'USDC'", "agents.0.holdings.0.token");
    expect_bind_error("  - {type: liquidity_provider, venue: pool, max_drawdown: 10%, cash: -1}\n",
                      "bad_agent.yaml:8:", "must be >= 0", "agents.0.cash");
    expect_bind_error("  - type: scripted\n"
                      "    actions:\n"
                      "      - {at: 1h, do: swap, venue: pool, side: sell, amount: 1}\n"
                      "      - {do: swap, venue: pool, side: sell, amount: 1}\n",
                      "bad_agent.yaml:11:", "missing required key 'at'", "agents.0.actions.1");
    expect_bind_error("  - type: scripted\n"
                      "    actions: [{at: 1h, do: swap, venue: pools, side: sell, amount: 1}]\n",
                      "bad_agent.yaml:9:", "did you mean 'pool'", "agents.0.actions.0.venue");
    expect_bind_error("  - type: scripted\n"
                      "    actions: [{at: 1h, do: swap, venue: pool, side: sell}]\n",
                      "bad_agent.yaml:9:", "do: swap needs 'amount'", "agents.0.actions.0");
    expect_bind_error("  - type: scripted\n"
                      "    actions: [{at: 1h, do: swap, venue: pool, side: sell, amount: 1,\n"
                      "               price: 3}]\n",
                      "bad_agent.yaml:10:", "does not apply to do: swap", "agents.0.actions.0.price");
    expect_bind_error("  - type: scripted\n"
                      "    actions: [{at: 1h, do: limit, venue: pool, side: buy, price: 1, qty: 1}]\n",
                      "bad_agent.yaml:9:", "is of type cpmm; expected one of: lob",
                      "agents.0.actions.0.venue");
    expect_bind_error("  - type: scripted\n"
                      "    actions:\n"
                      "      - {at: 1h, do: swap, venue: pool, side: sell, amount: 1}\n"
                      "      - {at: 2h, do: cancel, order: 0}\n",
                      "bad_agent.yaml:11:", "is a 'swap' action, not a 'limit'",
                      "agents.0.actions.1.order");
    expect_bind_error("  - type: scripted\n"
                      "    actions: [{at: 7h, do: swap, venue: pool, side: sell, amount: 1}]\n",
                      "bad_agent.yaml:9:", "not before the horizon", "agents.0.actions.0.at");
    expect_bind_error("  - {type: liquidity_provider, venue: pool}\n",
                      "bad_agent.yaml:8:", "max_volatility or max_drawdown", "agents.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arb_closes_gap_within_one_poll_with_ample_capital),
        cmocka_unit_test(test_arb_latency_delays_the_pull_back),
        cmocka_unit_test(test_arb_small_capital_leaves_the_pool_away),
        cmocka_unit_test(test_arb_stableswap_back_in_fee_band),
        cmocka_unit_test(test_arb_population_profit_nonnegative_under_noise),
        cmocka_unit_test(test_arb_walks_the_book),
        cmocka_unit_test(test_scripted_trades_at_exact_times_and_amounts),
        cmocka_unit_test(test_scripted_shock_moves_the_reference_like_a_scheduled_one),
        cmocka_unit_test(test_scripted_liquidity_and_orders_in_process),
        cmocka_unit_test(test_scripted_unfunded_action_fails_the_run),
        cmocka_unit_test(test_lp_flees_when_drawdown_crosses_and_not_before),
        cmocka_unit_test(test_lp_volatility_exit_and_return_after_calm),
        cmocka_unit_test(test_bad_input_names_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
