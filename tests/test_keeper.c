/*
 * test_keeper.c — the "keeper" agent (agents/keeper.c) in whole simulations
 * built from scenario text:
 *   - fixed spread (Aave v3, FORMULAS.md): a position made liquidatable by an
 *     oracle update at t0 is liquidated at t0 + latency exactly (instant
 *     chain), or in the first block after (eip1559 chain); the repayment is
 *     close factor × debt, the seizure repaid·p_d/p_c·bonus less the
 *     protocol fee, the sale the Uniswap v2 formula, and the keeper's profit
 *     is proceeds − repaid − gas, gas = gas_per_call × (base fee + tip) gwei
 *     at the ETH price; finite capital caps the repayment; min_profit skips;
 *     failure_probability 1 reverts everything, gas still paid; a flash
 *     loan is repaid with its fee from the sale;
 *   - Dutch auction (clip.sol, abaci.sol, dog.sol): a take at the first step
 *     of the stairstep curve top·cut^k at or below value·(1 − margin); a
 *     keeper's bark earns tip + chip·tab; a redo once price/top < cusp;
 *   - English auction (flip.sol): two keepers raise each other by at least
 *     beg up to their valuations; the higher valuation wins;
 *   - congestion: a base-fee spike keeps a fixed-cap keeper's transactions
 *     in the mempool while an adaptive one gets in; in an English auction
 *     the lone bid that got in wins near zero (zero_bid in /events/auctions);
 *   - determinism of a keeper population; bad input with file:line.
 * sp_ledger_check runs after every step (conservation of every token).
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
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "chain.h"
#include "lending.h"
#include "liquidation.h"
#include "sim-internal.h"

#define assert_rel(a, b, eps)                                                             \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        if (!(fabs(a_ - b_) <= (eps) * fmax(1.0, fabs(b_))))                               \
            fail_msg("%s = %.17g, expected %.17g (rel %g)", #a, a_, b_, (double)(eps));     \
    } while (0)

/* ---- helpers --------------------------------------------------------------- */

/* Small recordings: no compression, 256 rows a chunk. */
static const struct sp_rec_opts small_rec = { 0, 256 };

/* Build from `yaml` (seed 0: its own); record /events/trades when `record`. */
static void world_open(struct tw_world *w, const char *name, const char *yaml, bool record,
                       uint64_t seed)
{
    tw_open(w, &(struct tw_opts){ .name = name, .text = yaml, .seed = seed,
                                  .record = record ? "keeper" : NULL, .rec_opts = &small_rec });
}

/* Step ten seconds at a time, checking conservation after each step. */
static void walk_to(struct tw_world *w, sp_time until)
{
    for (sp_time t = sp_sim_now(w->sim) + SP_SEC; t < until; t += 10 * SP_SEC) tw_step_to(w, t);
    tw_step_to(w, until);
}

/* Uniswap v2 getAmountOut (FORMULAS.md), fee 0.3 %. */
static double uni_out(double in, double r_in, double r_out)
{
    return in * 0.997 * r_out / (r_in + in * 0.997);
}

/* Reserves of a cpmm market (base, quote) through its ledger balances. */
static void reserves(struct tw_world *w, const char *venue, const char *base, const char *quote,
                     double *rb, double *rq)
{
    *rb = sp_balance(w->sim, tw_id(w, venue), tw_tok(w, base));
    *rq = sp_balance(w->sim, tw_id(w, venue), tw_tok(w, quote));
}

/* ---- a pool with one position (fixed spread) ------------------------------- */

/* ETH at 2000 (no noise) falls by `drop` at 1h, instantly; a Chainlink feed
 * polls every 12 s, so the position becomes liquidatable at exactly 3600 s.
 * A 1000 ETH / 2M USDC CPMM nobody arbitrages (it stays near 2000); an
 * Aave-like pool, LT 85 %, bonus 5 %, protocol fee 0; bob (a scripted agent
 * with no actions) holds 10 ETH and, at 1 min, deposits them and borrows
 * 16 000 USDC (HF 1.0625).  Slots: shocks' drop, chain, agents. */
static const char pool_fmt[] =
    "horizon: 3h\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m, shocks: [{at: 1h, drop: %s}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0.3%%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, deviation: 0.5%%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: {mechanism: fixed_spread, protocol_fee: 0}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: eth_usd, ltv: 0.8, liquidation_threshold: 0.85,\n"
    "         liquidation_bonus: 5%%}\n"
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: aUSDC, slope1: 0, slope2: 0, initial_supply: 10000000}\n"
    "%s"
    "agents:\n"
    "  - {type: scripted, name: bob, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "%s";

/* The chain of the gas tests: 20 gwei base fee held by its floor (no
 * background demand), fees in ETH. */
static const char flat_chain[] =
    "chain: {type: eip1559, block_time: 12s, initial_base_fee: 20, min_base_fee: 20,\n"
    "        gas_token: ETH}\n";

static void open_pool(struct tw_world *w, const char *name, const char *drop, const char *chain,
                      const char *agents, bool record)
{
    static char yaml[8192];
    snprintf(yaml, sizeof yaml, pool_fmt, drop, chain, agents);
    world_open(w, name, yaml, record, 0);
    tw_step_to(w, SP_MIN);
    sp_id aave = tw_id(w, "aave"), bob = tw_id(w, "bob");
    assert_int_equal(sp_lending_deposit(w->sim, aave, bob, tw_tok(w, "ETH"), 10), 0);
    assert_int_equal(sp_lending_borrow(w->sim, aave, bob, tw_tok(w, "USDC"), 16000), 0);
}

#define T_SHOCK (3600 * SP_SEC)

/* Aave v3 at HF 0.95625 > 0.95: close factor 50 %.  At p = 1800: repay
 * 8000, seize 8000/1800·1.05 ETH, sold into the untouched CPMM. */
static void test_keeper_fixed_spread_after_latency_profit_is_proceeds_less_repaid(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_fixed", "10%", "",
              "  - {type: keeper, name: k, protocols: aave, capital: 1000000, latency: 30}\n",
              false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob"), k = tw_id(&w, "k");
    sp_token eth = tw_tok(&w, "ETH"), usdc = tw_tok(&w, "USDC");
    tw_step_to(&w, T_SHOCK);
    struct sp_lending_position pos;
    assert_int_equal(sp_lending_position(w.sim, aave, bob, &pos), 0);
    assert_true(pos.liquidatable);
    assert_rel(pos.hf, 10 * 1800 * 0.85 / 16000, 1e-12);
    double rb, rq;
    reserves(&w, "pool", "ETH", "USDC", &rb, &rq);
    walk_to(&w, T_SHOCK + 30 * SP_SEC - 1);
    assert_rel(sp_lending_debt(w.sim, aave, bob, usdc), 16000, 1e-12);   /* not yet */
    tw_step_to(&w, T_SHOCK + 30 * SP_SEC);
    double repaid = 16000 * 0.5;
    double seized = repaid / 1800 * 1.05;
    double proceeds = uni_out(seized, rb, rq);
    assert_rel(sp_lending_debt(w.sim, aave, bob, usdc), 16000 - repaid, 1e-9);
    assert_rel(sp_lending_collateral(w.sim, aave, bob, eth), 10 - seized, 1e-9);
    assert_rel(sp_balance(w.sim, k, usdc), 1000000 - repaid + proceeds, 1e-12);
    assert_rel(sp_balance(w.sim, k, eth), 0, 1e-12);
    walk_to(&w, 2 * SP_HOUR);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_liquidations_k"), 1, 0);
    assert_rel(tw_summary(w.sim, "profit_k"), proceeds - repaid, 1e-9);
    assert_rel(tw_summary(w.sim, "gas_spent_k"), 0, 0);               /* instant: no fee */
    assert_rel(tw_summary(w.sim, "mean_latency_k"), 30, 1e-12);
    tw_close(&w);
}

/* On an eip1559 chain the call is included in the first block after the
 * latency (blocks every 12 s: 3636 s) and pays 500 000 gas × (20 + 2) gwei
 * = 0.011 ETH, valued at the protocol's ETH price 1800. */
static void test_keeper_fixed_spread_on_a_chain_pays_gas(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_gas", "10%", flat_chain,
              "  - {type: keeper, name: k, protocols: aave, capital: 1000000, latency: 30,\n"
              "     gas_policy: fixed, max_fee: 100, priority_fee: 2, gas_per_call: 500000}\n",
              false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob"), k = tw_id(&w, "k");
    sp_token usdc = tw_tok(&w, "USDC");
    tw_step_to(&w, T_SHOCK);
    double rb, rq;
    reserves(&w, "pool", "ETH", "USDC", &rb, &rq);
    tw_step_to(&w, T_SHOCK + 36 * SP_SEC - 1);
    assert_rel(sp_lending_debt(w.sim, aave, bob, usdc), 16000, 1e-12);
    assert_int_equal(sp_chain_pending(w.sim), 1);
    tw_step_to(&w, T_SHOCK + 36 * SP_SEC);
    assert_int_equal(sp_chain_pending(w.sim), 0);
    double repaid = 8000, proceeds = uni_out(repaid / 1800 * 1.05, rb, rq);
    double gas = 500000 * 22e-9 * 1800;
    assert_rel(sp_lending_debt(w.sim, aave, bob, usdc), 8000, 1e-9);
    assert_rel(sp_balance(w.sim, k, usdc), 1000000 - repaid + proceeds, 1e-12);
    walk_to(&w, 2 * SP_HOUR);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "gas_spent_k"), gas, 1e-12);
    assert_rel(tw_summary(w.sim, "profit_k"), proceeds - repaid - gas, 1e-9);
    assert_rel(tw_summary(w.sim, "mean_latency_k"), 36, 1e-12);
    assert_rel(tw_summary(w.sim, "mean_wait_k"), 6, 1e-12);
    tw_close(&w);
}

/* Capital 5000 < the 8000 the close factor allows: it repays 5000. */
static void test_keeper_finite_capital_limits_repayment(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_capital", "10%", "",
              "  - {type: keeper, name: k, protocols: aave, capital: 5000, latency: 30}\n",
              false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob");
    tw_step_to(&w, T_SHOCK + 30 * SP_SEC);
    assert_rel(sp_lending_debt(w.sim, aave, bob, tw_tok(&w, "USDC")), 11000, 1e-9);
    assert_rel(sp_lending_collateral(w.sim, aave, bob, tw_tok(&w, "ETH")),
               10 - 5000.0 / 1800 * 1.05, 1e-9);
    tw_finish(&w);
    assert_true(tw_summary(w.sim, "n_capital_bound_k") >= 1);
    tw_close(&w);
}

/* min_profit above what the liquidation can earn: skipped, every time. */
static void test_keeper_min_profit_skips_the_liquidation(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_minprofit", "10%", "",
              "  - {type: keeper, name: k, protocols: aave, capital: 1000000, latency: 30,\n"
              "     min_profit: 5000}\n", false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob");
    walk_to(&w, 2 * SP_HOUR);
    assert_rel(sp_lending_debt(w.sim, aave, bob, tw_tok(&w, "USDC")), 16000, 1e-12);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_liquidations_k"), 0, 0);
    assert_true(tw_summary(w.sim, "n_skipped_unprofitable_k") >= 2);   /* event, then polls */
    assert_rel(tw_summary(w.sim, "n_tx_k"), 0, 0);
    assert_rel(tw_summary(w.sim, "profit_k"), 0, 0);
    tw_close(&w);
}

/* failure_probability 1: every delivered transaction reverts, gas paid. */
static void test_keeper_failing_transactions_pay_gas_and_liquidate_nothing(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_fail", "10%", flat_chain,
              "  - {type: keeper, name: k, protocols: aave, capital: 1000000, latency: 30,\n"
              "     gas_policy: fixed, max_fee: 100, priority_fee: 2, gas_per_call: 500000,\n"
              "     failure_probability: 1}\n", false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob");
    walk_to(&w, 2 * SP_HOUR);
    assert_rel(sp_lending_debt(w.sim, aave, bob, tw_tok(&w, "USDC")), 16000, 1e-12);
    assert_rel(sp_balance(w.sim, tw_id(&w, "k"), tw_tok(&w, "USDC")), 1000000, 0);
    tw_finish(&w);
    double n = tw_summary(w.sim, "n_failed_k");
    assert_true(n >= 10);                 /* one per poll-and-latency cycle for an hour */
    assert_rel(tw_summary(w.sim, "n_liquidations_k"), 0, 0);
    assert_rel(tw_summary(w.sim, "gas_spent_k"), n * 500000 * 22e-9 * 1800, 1e-9);
    assert_rel(tw_summary(w.sim, "profit_k"), -n * 500000 * 22e-9 * 1800, 1e-9);
    tw_close(&w);
}

/* flash: true and no capital: it borrows the 8000 USDC inside the
 * transaction and repays them with flash_fee from the sale. */
static void test_keeper_flash_liquidity_repays_loan_and_fee_from_the_sale(void **state)
{
    (void)state;
    struct tw_world w;
    open_pool(&w, "kp_flash", "10%", "",
              "  - {type: keeper, name: k, protocols: aave, flash: true, flash_fee: 0.09%,\n"
              "     latency: 30}\n", false);
    sp_id aave = tw_id(&w, "aave"), bob = tw_id(&w, "bob"), k = tw_id(&w, "k");
    sp_token usdc = tw_tok(&w, "USDC");
    tw_step_to(&w, T_SHOCK);
    double rb, rq;
    reserves(&w, "pool", "ETH", "USDC", &rb, &rq);
    double supply = sp_supply(w.sim, usdc);
    tw_step_to(&w, T_SHOCK + 30 * SP_SEC);
    double proceeds = uni_out(8000.0 / 1800 * 1.05, rb, rq);
    assert_rel(sp_lending_debt(w.sim, aave, bob, usdc), 8000, 1e-9);
    assert_rel(sp_balance(w.sim, k, usdc), proceeds - 8000 * 1.0009, 1e-9);
    /* The loan was minted and burned: USDC left is the fee burned. */
    assert_rel(sp_supply(w.sim, usdc), supply - 8000 * 0.0009, 1e-12);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "profit_k"), proceeds - 8000 * 1.0009, 1e-9);
    tw_close(&w);
}

/* ---- a cdp with auctions ---------------------------------------------------- */

/* ETH 2000 → 1200 at 1h (−40 %); the ETH/DAI CPMM is priced at 1200
 * already (10 000 ETH / 12M DAI, nobody arbitrages), so lots are worth
 * about 1200 on it.  A Maker-like cdp (mat 1.5, chop 1.1); bob locks 10 ETH
 * and draws 12 000 DAI; at 1200 his vault (12 000 < 18 000) is barked by the
 * protocol at 3600 s: tab 13 200, lot 10.  Slots: liquidation mapping,
 * chain, agents. */
static const char cdp_fmt[] =
    "horizon: %s\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: DAI, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m, shocks: [{at: 1h, drop: 40%%}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 10000,\n"
    "     reserve_quote: 12000000, fee: 0.3%%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, deviation: 0.5%%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "protocols:\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    liquidation: %s\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: eth_usd, liquidation_ratio: 1.5, liquidation_penalty: 10%%,\n"
    "         stability_fee: 0}\n"
    "%s"
    "agents:\n"
    "  - {type: scripted, name: bob, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "%s";

static void open_cdp(struct tw_world *w, const char *name, const char *horizon, const char *liq,
                     const char *chain, const char *agents, bool record)
{
    static char yaml[8192];
    snprintf(yaml, sizeof yaml, cdp_fmt, horizon, liq, chain, agents);
    world_open(w, name, yaml, record, 0);
    tw_step_to(w, SP_MIN);
    sp_id maker = tw_id(w, "maker"), bob = tw_id(w, "bob");
    assert_int_equal(sp_lending_deposit(w->sim, maker, bob, tw_tok(w, "ETH"), 10), 0);
    assert_int_equal(sp_lending_borrow(w->sim, maker, bob, tw_tok(w, "DAI"), 12000), 0);
}

/* clip.sol / abaci.sol StairstepExponentialDecrease: top = 1200·buf 1.2 =
 * 1440, price after k steps of 60 s = 1440·0.99^k.  The keeper (margin 5 %,
 * polls every second, no latency) values the whole lot at its CPMM sale,
 * out(10)/10, and takes at the first step whose price is <= that × 0.95. */
static void test_keeper_takes_dutch_auction_when_price_falls_below_value_margin(void **state)
{
    (void)state;
    struct tw_world w;
    open_cdp(&w, "kp_dutch", "4h",
             "{mechanism: dutch_auction, curve: stairstep_exponential, step: 60s, cut: 0.99,\n"
             "                  buf: 1.2, tail: 3h, cusp: 0.2, tip: 0, chip: 0}",
             "", "  - {type: keeper, name: k, capital: 1000000, margin: 0.05, poll: 1s}\n", true);
    sp_id maker = tw_id(&w, "maker"), k = tw_id(&w, "k");
    sp_token dai = tw_tok(&w, "DAI"), eth = tw_tok(&w, "ETH");
    tw_step_to(&w, T_SHOCK);
    assert_int_equal(sp_liq_auctions(w.sim, maker, NULL, 0), 1);
    struct sp_auction_view v;
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_rel(v.tab, 13200, 1e-12);
    assert_rel(v.lot, 10, 0);
    assert_rel(v.top, 1440, 1e-12);
    double rb, rq;
    reserves(&w, "pool", "ETH", "DAI", &rb, &rq);
    double max = uni_out(10, rb, rq) / 10 * 0.95;
    int kstar = 0;
    while (1440 * pow(0.99, kstar) > max) kstar++;
    double price = 1440 * pow(0.99, kstar);
    assert_true(10 * price < 13200);            /* the whole lot: takes all 10 */
    sp_time t_take = T_SHOCK + kstar * 60 * SP_SEC;
    tw_step_to(&w, t_take - 1);
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_true(v.live);
    assert_rel(v.lot, 10, 0);
    tw_step_to(&w, t_take);
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_false(v.live);
    assert_rel(sp_balance(w.sim, k, dai), 1000000 - 10 * price + uni_out(10, rb, rq), 1e-9);
    assert_rel(sp_balance(w.sim, k, eth), 0, 0);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_takes_k"), 1, 0);
    assert_rel(tw_summary(w.sim, "profit_k"), uni_out(10, rb, rq) - 10 * price, 1e-9);
    tw_close(&w);
    /* The sale is a liquidation trade. */
    size_t n, elem;
    int8_t *cause = tu_read_raw(w.h5, "/events/trades/cause", &n, &elem);
    assert_int_equal(elem, 1);
    assert_true(n >= 1);
    assert_int_equal(cause[n - 1], SP_CAUSE_LIQUIDATION);
    free(cause);
}

/* kick: keeper — the protocol leaves the vault to keepers; one barks it
 * `latency` after it became unsafe and is paid tip + chip·tab (dog.sol:
 * 100 + 2 % of 13 200 = 364 DAI, FORMULAS.md's clip vector uses the same
 * rule), minted to it; with a 90 % margin it does not take. */
static void test_keeper_barks_for_the_incentive_when_kick_is_keeper(void **state)
{
    (void)state;
    struct tw_world w;
    open_cdp(&w, "kp_bark", "3h",
             "{mechanism: dutch_auction, kick: keeper, tip: 100, chip: 2%}", "",
             "  - {type: keeper, name: k, capital: 1000, margin: 0.9, latency: 20}\n", false);
    sp_id maker = tw_id(&w, "maker"), k = tw_id(&w, "k");
    tw_step_to(&w, T_SHOCK + 20 * SP_SEC - 1);
    assert_int_equal(sp_liq_auctions(w.sim, maker, NULL, 0), 0);
    tw_step_to(&w, T_SHOCK + 20 * SP_SEC);
    assert_int_equal(sp_liq_auctions(w.sim, maker, NULL, 0), 1);
    assert_rel(sp_balance(w.sim, k, tw_tok(&w, "DAI")), 1000 + 100 + 0.02 * 13200, 1e-12);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_barks_k"), 1, 0);
    assert_rel(tw_summary(w.sim, "n_takes_k"), 0, 0);
    assert_rel(tw_summary(w.sim, "profit_k"), 364, 1e-12);
    tw_close(&w);
}

/* clip.sol redo: with cusp 0.8 a run needs a reset once 1440·0.99^k / 1440
 * < 0.8, k = 23 steps of 60 s; a keeper polling every minute that will not
 * take (margin 90 %) resets it then, at the oracle price × buf, and earns
 * the tip (50 DAI, chip 0). */
static void test_keeper_redoes_a_dutch_auction_past_cusp(void **state)
{
    (void)state;
    struct tw_world w;
    open_cdp(&w, "kp_redo", "3h",
             "{mechanism: dutch_auction, step: 60s, cut: 0.99, buf: 1.2, cusp: 0.8, tail: 3h,\n"
             "                  tip: 50, chip: 0}", "",
             "  - {type: keeper, name: k, capital: 1000, margin: 0.9}\n", false);
    sp_id maker = tw_id(&w, "maker"), k = tw_id(&w, "k");
    sp_time t_redo = T_SHOCK + 23 * 60 * SP_SEC;
    struct sp_auction_view v;
    tw_step_to(&w, t_redo - 1);
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_int_equal(v.tic, T_SHOCK);
    assert_false(v.needs_redo);
    tw_step_to(&w, t_redo);
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_true(v.live);
    assert_int_equal(v.tic, t_redo);
    assert_rel(v.top, 1440, 1e-12);
    assert_rel(sp_balance(w.sim, k, tw_tok(&w, "DAI")), 1050, 1e-12);
    tw_finish(&w);
    assert_true(tw_summary(w.sim, "n_redos_k") >= 1);
    tw_close(&w);
}

/* flip.sol: two keepers, margins 5 % and 40 %, value the lot at its CPMM
 * sale V and bid up to V·(1 − margin); each raise is beg = 1.05 (or the
 * bidder's maximum, still >= beg × the bid).  tab 13 200 exceeds both
 * maxima, so the auction stays in the tend phase; the 40 % keeper stops at
 * most at 0.6·V, the 5 % keeper's last raise puts it on top and the lot is
 * its when its bid expires (ttl 1h). */
static void test_keeper_english_bids_rise_by_beg_and_higher_valuation_wins(void **state)
{
    (void)state;
    struct tw_world w;
    open_cdp(&w, "kp_english", "10h",
             "{mechanism: english_auction, beg: 1.05, ttl: 1h, tau: 8h}", "",
             "  - {type: keeper, name: hi, capital: 1000000, margin: 0.05, open_bid: 1%}\n"
             "  - {type: keeper, name: lo, capital: 1000000, margin: 0.4, open_bid: 1%}\n", true);
    sp_id maker = tw_id(&w, "maker"), hi = tw_id(&w, "hi");
    tw_step_to(&w, T_SHOCK);
    double rb, rq;
    reserves(&w, "pool", "ETH", "DAI", &rb, &rq);
    double V = uni_out(10, rb, rq), max_hi = 0.95 * V, max_lo = 0.6 * V;
    /* Watch the bids: each new bid >= beg × the previous (or == tab). */
    double last = 0;
    int seen = 0;
    struct sp_auction_view v;
    for (sp_time t = T_SHOCK; t <= 9 * SP_HOUR; t += 30 * SP_SEC) {
        tw_step_to(&w, t);
        assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
        if (!v.live) break;
        if (v.bid > last) {
            if (last > 0 && !(v.bid >= 1.05 * last * (1 - 1e-12)))
                fail_msg("bid %g after %g: less than beg", v.bid, last);
            assert_true(v.bid <= max_hi * (1 + 1e-12));
            last = v.bid;
            seen++;
        }
    }
    assert_false(v.live);
    assert_int_equal(v.guy, hi);
    assert_true(seen >= 10);
    /* The winning bid beat the low keeper's maximum by less than one step. */
    assert_true(last > max_lo / 1.05 && last <= fmin(max_hi, max_lo * 1.05) * (1 + 1e-12));
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_wins_hi"), 1, 0);
    assert_rel(tw_summary(w.sim, "n_wins_lo"), 0, 0);
    assert_true(tw_summary(w.sim, "profit_hi") > 0);
    assert_true(tw_summary(w.sim, "n_bids_lo") >= 5);
    tw_close(&w);
}

/* ---- congestion ---------------------------------------------------------------- */

/* Background demand of 2 tx/s of 100 000 gas (4.8M gas a block, below the
 * 15M target: the base fee sits at its 20 gwei floor) spikes tenfold from
 * 50 min for 40 min: blocks are full and the base fee rises 12.5 % a block,
 * past 100 gwei within 15 blocks.  Slots: the spike's length. */
static const char spike_chain_fmt[] =
    "chain:\n"
    "  type: eip1559\n"
    "  block_time: 12s\n"
    "  initial_base_fee: 20\n"
    "  min_base_fee: 20\n"
    "  gas_token: ETH\n"
    "  background: {rate: 2, gas: 100000, tip: 1, fee_cap_multiple: 2}\n"
    "  spikes: [{at: 50m, over: %s, rate_factor: 10, tip_factor: 5}]\n";

/* A keeper with a fixed cap of 100 gwei and an adaptive one (tip 50 gwei,
 * ahead of the background's 5): the position is liquidatable at 1h, during
 * the spike.  The adaptive keeper gets in; the fixed one waits. */
static void test_keeper_congestion_fixed_cap_waits_adaptive_gets_in(void **state)
{
    (void)state;
    char chain[1024];
    snprintf(chain, sizeof chain, spike_chain_fmt, "40m");
    struct tw_world w;
    open_pool(&w, "kp_congest", "10%", chain,
              "  - {type: keeper, name: fixed, protocols: aave, capital: 1000000, latency: 0,\n"
              "     gas_policy: fixed, max_fee: 100, priority_fee: 50}\n"
              "  - {type: keeper, name: adaptive, protocols: aave, capital: 1000000,\n"
              "     latency: 30, gas_policy: adaptive, fee_multiple: 2, priority_fee: 50}\n",
              false);
    tw_step_to(&w, T_SHOCK);
    assert_true(sp_chain_base_fee(w.sim) > 100);
    walk_to(&w, T_SHOCK + 5 * SP_MIN);
    /* The fixed keeper saw it first (no latency) and is still waiting. */
    assert_true(sp_chain_pending(w.sim) >= 1);
    tw_finish(&w);
    assert_rel(tw_summary(w.sim, "n_liquidations_adaptive"), 1, 0);
    assert_rel(tw_summary(w.sim, "n_liquidations_fixed"), 0, 0);
    assert_true(tw_summary(w.sim, "gas_spent_adaptive") > 500000 * 100e-9 * 1800);
    tw_close(&w);
}

/* The same spike over an English auction: the high-valuation keeper has a
 * fixed 100 gwei cap, a low-valuation one is adaptive.  The adaptive one
 * opens at 0.1 % of tab and, alone, is never outbid: its bid expires and it
 * deals the lot to itself: a zero bid (raised < 1 % of the lot's value). */
static void test_keeper_congestion_lets_a_lone_low_bid_win_an_english_auction(void **state)
{
    (void)state;
    char chain[1024];
    snprintf(chain, sizeof chain, spike_chain_fmt, "2h");
    struct tw_world w;
    open_cdp(&w, "kp_zero", "6h", "{mechanism: english_auction, beg: 1.05, ttl: 30m, tau: 4h}",
             chain,
             "  - {type: keeper, name: stuck, capital: 1000000, margin: 0.05, gas_policy: fixed,\n"
             "     max_fee: 100, priority_fee: 50, tx_timeout: 20m}\n"
             "  - {type: keeper, name: lone, capital: 1000000, margin: 0.4, open_bid: 0.1%,\n"
             "     gas_policy: adaptive, fee_multiple: 2, priority_fee: 50}\n", true);
    sp_id maker = tw_id(&w, "maker"), lone = tw_id(&w, "lone");
    tw_step_to(&w, 3 * SP_HOUR);
    struct sp_auction_view v;
    assert_int_equal(sp_liq_auction(w.sim, maker, 1, &v), 0);
    assert_false(v.live);
    assert_int_equal(v.guy, lone);
    assert_rel(v.bid, 13200 * 0.001, 1e-12);
    tw_step_to(&w, 6 * SP_HOUR);
    tw_finish(&w);
    assert_true(tw_summary(w.sim, "n_dropped_stuck") >= 1);
    assert_rel(tw_summary(w.sim, "n_bids_stuck"), 0, 0);
    assert_rel(tw_summary(w.sim, "n_wins_lone"), 1, 0);
    tw_close(&w);
    size_t n, elem;
    int8_t *z = tu_read_raw(w.h5, "/events/auctions/zero_bid", &n, &elem);
    assert_int_equal(n, 1);
    assert_int_equal(elem, 1);
    assert_int_equal(z[0], 1);
    free(z);
}

/* ---- populations ------------------------------------------------------------- */

/* Five owners at HF 0.98 down to 0.93 after a 15 % fall, four keepers with drawn latencies and
 * capital: the same seed gives the same liquidations, member for member. */
static void run_population(uint64_t seed, double out[6][3])
{
    static const char agents[] =
        "  - {type: keeper, name: ks, count: 4, protocols: aave,\n"
        "     capital: {dist: lognormal, mean: 6000, sd: 3000},\n"
        "     latency: {dist: uniform, low: 0, high: 120}, poll: 30s}\n"
        "  - {type: scripted, name: o1, holdings: [{token: ETH, amount: 10}], actions: []}\n"
        "  - {type: scripted, name: o2, holdings: [{token: ETH, amount: 10}], actions: []}\n"
        "  - {type: scripted, name: o3, holdings: [{token: ETH, amount: 10}], actions: []}\n"
        "  - {type: scripted, name: o4, holdings: [{token: ETH, amount: 10}], actions: []}\n";
    struct tw_world w;
    static char yaml[8192];
    snprintf(yaml, sizeof yaml, pool_fmt, "15%", "", agents);
    world_open(&w, "kp_pop", yaml, false, seed);
    tw_step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave");
    const char *owners[5] = { "bob", "o1", "o2", "o3", "o4" };
    for (int i = 0; i < 5; i++) {
        sp_id o = tw_id(&w, owners[i]);
        assert_int_equal(sp_lending_deposit(w.sim, aave, o, tw_tok(&w, "ETH"), 10), 0);
        assert_int_equal(sp_lending_borrow(w.sim, aave, o, tw_tok(&w, "USDC"), 14800 + 200 * i), 0);
    }
    walk_to(&w, 2 * SP_HOUR);
    for (int i = 0; i < 5; i++) {
        sp_id o = tw_id(&w, owners[i]);
        out[i][0] = sp_lending_debt(w.sim, aave, o, tw_tok(&w, "USDC"));
        out[i][1] = sp_lending_collateral(w.sim, aave, o, tw_tok(&w, "ETH"));
        out[i][2] = 0;
    }
    tw_finish(&w);
    out[5][0] = tw_summary(w.sim, "n_liquidations_ks");
    out[5][1] = tw_summary(w.sim, "profit_ks");
    out[5][2] = tw_summary(w.sim, "mean_latency_ks");
    tw_close(&w);
}

static void test_keeper_population_is_deterministic_per_seed(void **state)
{
    (void)state;
    double a[6][3], b[6][3];
    run_population(7, a);
    run_population(7, b);
    assert_memory_equal(a, b, sizeof a);
    assert_true(a[5][0] >= 5);                 /* all five are below HF 1 at 1700 */
}

/* ---- bad input ----------------------------------------------------------------- */

static const char bad_fmt[] =
    "horizon: 1h\n"                                                          /* 1 */
    "tokens:\n"                                                              /* 2 */
    "  - {name: ETH, kind: base}\n"                                          /* 3 */
    "  - {name: USDC, kind: stable}\n"                                       /* 4 */
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"     /* 5 */
    "references:\n"                                                          /* 6 */
    "  - {type: gbm, asset: ETH, initial: 2000}\n"                           /* 7 */
    "oracles:\n"                                                             /* 8 */
    "  - {type: heartbeat, name: eth_usd, source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"
    "protocols:\n"                                                           /* 11 */
    "  - type: pool\n"                                                       /* 12 */
    "    name: aave\n"                                                       /* 13 */
    "    assets:\n"                                                          /* 14 */
    "      - {token: ETH, oracle: eth_usd}\n"                                /* 15 */
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true, receipt: aUSDC}\n"
    "agents:\n"                                                              /* 17 */
    "  - type: keeper\n"                                                     /* 18 */
    "    protocols: %s\n"                                                    /* 19 */
    "    capital: 1000\n"                                                    /* 20 */
    "    gas_policy: %s\n";                                                  /* 21 */

static char *bind_errors(const char *protocols, const char *policy)
{
    char text[4096];
    snprintf(text, sizeof text, bad_fmt, protocols, policy);
    return tw_config_error(&(struct tw_opts){ .name = "bad.yaml", .text = text, .in_memory = true },
                           false);
}

static void test_keeper_bad_input_is_reported_with_line(void **state)
{
    (void)state;
    char *msg = bind_errors("\"aave, aavee\"", "adaptive");
    if (!strstr(msg, "bad.yaml:19:") ||
        !strstr(msg, "unknown protocol 'aavee' (did you mean 'aave'?)"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    free(msg);
    msg = bind_errors("aave", "fixed");
    if (!strstr(msg, "bad.yaml:21:") || !strstr(msg, "gas_policy fixed needs `max_fee`"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    free(msg);
    msg = bind_errors("aave", "fixd");
    if (!strstr(msg, "bad.yaml:21:") || !strstr(msg, "fixed"))
        fail_msg("unexpected diagnostics:\n%s", msg);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeper_fixed_spread_after_latency_profit_is_proceeds_less_repaid),
        cmocka_unit_test(test_keeper_fixed_spread_on_a_chain_pays_gas),
        cmocka_unit_test(test_keeper_finite_capital_limits_repayment),
        cmocka_unit_test(test_keeper_min_profit_skips_the_liquidation),
        cmocka_unit_test(test_keeper_failing_transactions_pay_gas_and_liquidate_nothing),
        cmocka_unit_test(test_keeper_flash_liquidity_repays_loan_and_fee_from_the_sale),
        cmocka_unit_test(test_keeper_takes_dutch_auction_when_price_falls_below_value_margin),
        cmocka_unit_test(test_keeper_barks_for_the_incentive_when_kick_is_keeper),
        cmocka_unit_test(test_keeper_redoes_a_dutch_auction_past_cusp),
        cmocka_unit_test(test_keeper_english_bids_rise_by_beg_and_higher_valuation_wins),
        cmocka_unit_test(test_keeper_congestion_fixed_cap_waits_adaptive_gets_in),
        cmocka_unit_test(test_keeper_congestion_lets_a_lone_low_bid_win_an_english_auction),
        cmocka_unit_test(test_keeper_population_is_deterministic_per_seed),
        cmocka_unit_test(test_keeper_bad_input_is_reported_with_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
