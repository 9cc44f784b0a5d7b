/*
 * test_liquidation.c — the liquidation mechanisms (market/liquidation.c) on
 * real protocols built from scenario text:
 *   - fixed spread, Aave v3 (FORMULAS.md "Aave v3 health factor and
 *     liquidation"): the close factor switches from 50 % to 100 % at
 *     HF <= 0.95; the collateral cap recomputes the debt repaid; the
 *     protocol fee; a position left without collateral is written off; a
 *     liquidation of a position with HF < LT·bonus lowers its HF (toxic);
 *   - fixed spread, Compound v2 (FORMULAS.md "Compound v2 seize"): seize
 *     tokens and the protocol seize share; too large a repay is refused;
 *   - the clip.sol test setup (FORMULAS.md "Maker Liquidations 2.0") through
 *     a cdp: tab 110, lot 40, top 5, price after 30 s 3.6985018669, keeper
 *     reward 102.2, take 25 at max 5 buys 22 for 110 and returns 18;
 *   - the flip.sol beg/dent vectors (FORMULAS.md "Maker Liquidations 1.0")
 *     through a cdp, refunds, the dent phase, deal, a zero-bid auction and
 *     its bad debt, tick of an auction without bids;
 *   - conservation of every token (sp_ledger_check) and the protocol's own
 *     invariants (sp_lending_check) through a pool's Dutch auctions with
 *     partial takes and redo, and through amm_direct;
 *   - the cascade: amm_direct into a fee-less CPMM read by an on_trade
 *     oracle; the final price and the set of liquidated positions equal the
 *     fixed point computed here from x·y = k, and generations count the
 *     rounds (0, 1, 2, ...), cascade_depth in /summary their maximum; an
 *     arbitrageur trading on the moved venue propagates its tag;
 *   - bad input with file:line and key, and exit code 2 from the CLI.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "spiral/token.h"
#include "spiral/world.h"
#include "sim-internal.h"
#include "lending.h"
#include "liq_fixed.h"
#include "liquidation.h"
#include "oracle.h"
#include "reference.h"

#define assert_near(a, b, eps)                                                          \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps)))                                                   \
            fail_msg("%s = %.17g, expected %.17g (within %g)", #a, a_, b_, (double)(eps)); \
    } while (0)
#define assert_rel(a, b, r) assert_near(a, b, (r) * fabs(b) + 1e-300)

static void world_open(struct tw_world *w, const char *name, const char *yaml)
{
    tw_open(w, &(struct tw_opts){ .name = name, .text = yaml });
}

/* Dispatch to `until`; the ledger and every lending protocol check out. */
static void step_to(struct tw_world *w, sp_time until)
{
    tw_drain(w, until);
    tw_check_lending(w);
}

/* Move the ETH reference to `price` (from its current level) and let the
 * oracle (poll 1 s, deviation 0) deliver it. */
static void move_eth(struct tw_world *w, double from, double price)
{
    sp_time now = sp_sim_now(w->sim);
    assert_int_equal(sp_reference_shock(w->sim, tw_id(w, "reference_ETH"), 1 - price / from, 0), 0);
    step_to(w, now + 2 * SP_SEC);
}

/* ---- a pool: fixed spread ------------------------------------------------------- */

/* Interest rates 0, so debts stay exact; ETH oracle polls every second. */
static const char *const pool_yaml =
    "seed: 7\n"
    "horizon: 30d\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1m}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH},\n"
    "     poll: 1s, deviation: 0, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%%, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: %s\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%%, liquidation_threshold: 82.5%%,\n"
    "         liquidation_bonus: %s}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 1000000, reserve: 1000, base_rate: 0, slope1: 0, slope2: 0}\n"
    "agents:\n"
    "  - {type: scripted, name: u_0, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "  - {type: scripted, name: u_1, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "  - {type: scripted, name: u_2, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "  - {type: scripted, name: u_3, holdings: [{token: ETH, amount: 10}], actions: []}\n"
    "  - {type: scripted, name: liq, holdings: [{token: USDC, amount: 1000000}], actions: []}\n";

static void open_positions(struct tw_world *w, sp_id aave, int n, double coll, double debt)
{
    sp_token ETH = tw_tok(w, "ETH"), USDC = tw_tok(w, "USDC");
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "u_%d", i);
        sp_id u = tw_id(w, nm);
        assert_int_equal(sp_lending_deposit(w->sim, aave, u, ETH, coll), 0);
        assert_int_equal(sp_lending_borrow(w->sim, aave, u, USDC, debt), 0);
    }
}

static void test_aave_close_factor_cap_and_toxic(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(pool_yaml, "{mechanism: fixed_spread}", "5%");
    world_open(&w, "liq_aave", y);
    free(y);
    step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave"), liq = tw_id(&w, "liq");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC");
    assert_int_equal(sp_liq_mechanism(w.sim, aave), SP_LIQ_FIXED_SPREAD);
    open_positions(&w, aave, 4, 10, 16000);
    sp_id u0 = tw_id(&w, "u_0"), u1 = tw_id(&w, "u_1"), u2 = tw_id(&w, "u_2"),
          u3 = tw_id(&w, "u_3");
    struct sp_liq_result r;
    /* Healthy: refused, nothing moves. */
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u0, USDC, ETH, 100, &r), SP_ESTATE);

    /* 1900: HF = 10·1900·0.825/16000 = 0.9797 > 0.95 -> close factor 50 %. */
    move_eth(&w, 2000, 1900);
    struct sp_lending_position st;
    assert_int_equal(sp_lending_position(w.sim, aave, u0, &st), 0);
    assert_near(st.hf, 10 * 1900 * 0.825 / 16000, 1e-12);
    assert_int_equal(sp_liq_generation(w.sim, aave, u0), 0);
    double liq_eth0 = sp_balance(w.sim, liq, ETH), liq_usdc0 = sp_balance(w.sim, liq, USDC);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u0, USDC, ETH, 10000, &r), 0);
    double seized = 8000.0 / 1900 * 1.05;                      /* debtRepaid·pd/pc·bonus */
    double fee = (seized - seized / 1.05) * 0.10;              /* liquidationProtocolFee 10 % */
    assert_rel(r.debt_repaid, 8000, 1e-12);
    assert_rel(r.collateral_seized, seized, 1e-12);
    assert_rel(r.protocol_fee, fee, 1e-9);
    assert_rel(r.to_liquidator, seized - fee, 1e-12);
    assert_false(r.capped);
    assert_rel(sp_balance(w.sim, liq, ETH) - liq_eth0, seized - fee, 1e-12);
    assert_rel(liq_usdc0 - sp_balance(w.sim, liq, USDC), 8000, 1e-12);
    assert_rel(sp_lending_debt(w.sim, aave, u0, USDC), 8000, 1e-12);
    assert_rel(sp_lending_collateral(w.sim, aave, u0, ETH), 10 - seized, 1e-12);
    /* HF > LT·bonus = 0.866: the step raised HF (not toxic). */
    struct sp_lending_position after;
    assert_int_equal(sp_lending_position(w.sim, aave, u0, &after), 0);
    assert_true(after.hf > st.hf);
    tw_check_lending(&w);

    /* 1800: HF = 0.928 <= 0.95 -> close factor 100 %: the whole debt. */
    move_eth(&w, 1900, 1800);
    assert_int_equal(sp_lending_position(w.sim, aave, u1, &st), 0);
    assert_true(st.hf <= 0.95);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u1, USDC, ETH, 1e9, &r), 0);
    assert_rel(r.debt_repaid, 16000, 1e-12);
    assert_rel(r.collateral_seized, 16000.0 / 1800 * 1.05, 1e-12);
    assert_near(sp_lending_debt(w.sim, aave, u1, USDC), 0, 1e-9);

    /* 1500: seizing 16000/1500·1.05 = 11.2 > 10 ETH -> capped at 10 and the
     * debt repaid recomputed: 10·1500/1.05; the rest is written off. */
    move_eth(&w, 1800, 1500);
    double bad0 = sp_lending_bad_debt(w.sim, aave);
    double reserve0 = sp_lending_reserve(w.sim, aave, USDC);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u2, USDC, ETH, 1e9, &r), 0);
    assert_true(r.capped);
    assert_rel(r.collateral_seized, 10, 1e-12);
    assert_rel(r.debt_repaid, 10 * 1500 / 1.05, 1e-12);
    assert_rel(r.bad_debt, 16000 - 10 * 1500 / 1.05, 1e-9);
    assert_rel(sp_lending_bad_debt(w.sim, aave) - bad0, 16000 - 10 * 1500 / 1.05, 1e-9);
    assert_rel(reserve0 - sp_lending_reserve(w.sim, aave, USDC), 1000, 1e-12);  /* absorbed */
    assert_near(sp_lending_debt(w.sim, aave, u2, USDC), 0, 1e-9);
    assert_near(sp_lending_collateral(w.sim, aave, u2, ETH), 0, 0);

    /* Toxic: u3 at 1500 has HF = 0.773 < LT·bonus = 0.866; a small
     * liquidation lowers its HF (FORMULAS.md: collateral/debt < bonus). */
    assert_int_equal(sp_lending_position(w.sim, aave, u3, &st), 0);
    assert_true(st.hf < 0.825 * 1.05);
    assert_int_equal(sp_fixed_is_toxic(st.collateral_value, st.debt_value, 1.05), 1);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u3, USDC, ETH, 1000, &r), 0);
    assert_int_equal(sp_lending_position(w.sim, aave, u3, &after), 0);
    assert_true(after.hf < st.hf);
    tw_check_lending(&w);
    tw_close(&w);
}

static void test_compound_variant_seize(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(pool_yaml, "{variant: compound_v2, seize_share: 2.8%}", "8%");
    world_open(&w, "liq_compound", y);
    free(y);
    step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave"), liq = tw_id(&w, "liq");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC");
    open_positions(&w, aave, 1, 10, 16000);
    sp_id u0 = tw_id(&w, "u_0");
    move_eth(&w, 2000, 1800);
    struct sp_liq_result r;
    /* repay > closeFactor·borrow (TOO_MUCH_REPAY): refused, nothing moves. */
    double usdc0 = sp_balance(w.sim, liq, USDC);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u0, USDC, ETH, 8001, &r), SP_ERANGE);
    assert_near(sp_balance(w.sim, liq, USDC), usdc0, 0);
    assert_rel(sp_lending_debt(w.sim, aave, u0, USDC), 16000, 1e-15);
    /* seizeTokens = repay·incentive·priceBorrowed/(priceCollateral·exchangeRate) */
    double eth0 = sp_balance(w.sim, liq, ETH);
    assert_int_equal(sp_liq_fixed(w.sim, aave, liq, u0, USDC, ETH, 5000, &r), 0);
    double seize = 5000 * 1.08 * 1.0 / (1800 * 1.0);
    assert_rel(r.collateral_seized, seize, 1e-12);
    assert_rel(r.to_liquidator, seize * (1 - 0.028), 1e-12);
    assert_rel(r.protocol_fee, seize * 0.028, 1e-9);
    assert_rel(sp_balance(w.sim, liq, ETH) - eth0, seize * (1 - 0.028), 1e-12);
    assert_rel(sp_lending_debt(w.sim, aave, u0, USDC), 11000, 1e-12);
    tw_check_lending(&w);
    tw_close(&w);
}

/* ---- a cdp: the clip and flip vectors -------------------------------------------- */

static const char *const cdp_yaml =
    "seed: 7\n"
    "horizon: 30d\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: DAI, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 6, volatility: 0, step: 1m}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH},\n"
    "     poll: 1s, deviation: 0, heartbeat: 1h}\n"
    "protocols:\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    surplus: 1000\n"
    "    liquidation: %s\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: o_eth, liquidation_ratio: 2, liquidation_penalty: 10%%,\n"
    "         stability_fee: 0}\n"
    "agents:\n"
    "  - {type: scripted, name: v_0, holdings: [{token: ETH, amount: 100}], actions: []}\n"
    "  - {type: scripted, name: v_1, holdings: [{token: ETH, amount: 100}], actions: []}\n"
    "  - {type: scripted, name: v_2, holdings: [{token: ETH, amount: 100}], actions: []}\n"
    "  - {type: scripted, name: k_0, holdings: [{token: DAI, amount: 1000}], actions: []}\n"
    "  - {type: scripted, name: k_1, holdings: [{token: DAI, amount: 1000}], actions: []}\n";

static void test_clip_vector_through_protocol(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(cdp_yaml, "{mechanism: dutch_auction, kick: keeper, curve: "
                            "stairstep_exponential, step: 1s, cut: 0.99, buf: 1.25, tip: 100, "
                            "chip: 2%, tail: 1h, cusp: 10%}");
    world_open(&w, "liq_clip", y);
    free(y);
    step_to(&w, SP_SEC);
    sp_id mk = tw_id(&w, "maker"), v0 = tw_id(&w, "v_0"), v1 = tw_id(&w, "v_1"),
          k0 = tw_id(&w, "k_0");
    sp_token ETH = tw_tok(&w, "ETH"), DAI = tw_tok(&w, "DAI");
    /* clip test setup: 40 collateral, 100 debt; price 4 */
    for (int i = 0; i < 2; i++) {
        sp_id v = i ? v1 : v0;
        assert_int_equal(sp_lending_deposit(w.sim, mk, v, ETH, 40), 0);
        assert_int_equal(sp_lending_borrow(w.sim, mk, v, DAI, 100), 0);
    }
    move_eth(&w, 6, 4);
    assert_int_equal(sp_lending_liquidatable(w.sim, mk, NULL, 0), 2);
    double dai0 = sp_balance(w.sim, k0, DAI), eth_v0 = sp_balance(w.sim, v0, ETH);
    uint32_t id0, id1;
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, v0, &id0), 0);
    /* keeper reward tip + chip·tab = 100 + 0.02·110 = 102.2 (minted) */
    assert_rel(sp_balance(w.sim, k0, DAI) - dai0, 102.2, 1e-12);
    assert_rel(sp_lending_reserve(w.sim, mk, DAI), 1000 - 102.2, 1e-12);
    struct sp_auction_view av;
    assert_int_equal(sp_liq_auction(w.sim, mk, id0, &av), 0);
    assert_rel(av.tab, 110, 1e-12);
    assert_rel(av.lot, 40, 1e-12);
    assert_rel(av.top, 5.0, 1e-12);
    assert_rel(av.price, 5.0, 1e-12);
    assert_true(av.live);
    /* The vault is emptied. */
    assert_near(sp_lending_collateral(w.sim, mk, v0, ETH), 0, 0);
    assert_near(sp_lending_debt(w.sim, mk, v0, DAI), 0, 0);
    tw_check_lending(&w);
    /* take 25 at max 5 -> buys 22 for 110, 18 back to the owner */
    double bought, paid;
    assert_int_equal(sp_liq_take(w.sim, mk, k0, id0, 25, 5.0, &bought, &paid), 0);
    assert_rel(bought, 22, 1e-12);
    assert_rel(paid, 110, 1e-12);
    assert_rel(sp_balance(w.sim, v0, ETH) - eth_v0, 18, 1e-12);
    assert_int_equal(sp_liq_auction(w.sim, mk, id0, &av), 0);
    assert_false(av.live);
    /* penalty 10 to the surplus */
    assert_rel(sp_lending_reserve(w.sim, mk, DAI), 1000 - 102.2 + 10, 1e-12);
    tw_check_lending(&w);
    /* Price after 30 s: 5·0.99^30 = 3.6985018669 */
    sp_time t0 = sp_sim_now(w.sim);
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, v1, &id1), 0);
    step_to(&w, t0 + 30 * SP_SEC);
    assert_int_equal(sp_liq_auction(w.sim, mk, id1, &av), 0);
    assert_true(sp_sim_now(w.sim) == t0 + 30 * SP_SEC);
    assert_near(av.price, 3.6985018669, 1e-10);
    assert_int_equal(sp_liq_auctions(w.sim, mk, NULL, 0), 1);
    tw_close(&w);
}

static void test_flip_vectors_through_protocol(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(cdp_yaml, "{mechanism: english_auction, kick: keeper, beg: 1.05, ttl: 3h, "
                            "tau: 2d}");
    world_open(&w, "liq_flip", y);
    free(y);
    step_to(&w, SP_SEC);
    sp_id mk = tw_id(&w, "maker"), v0 = tw_id(&w, "v_0"), v1 = tw_id(&w, "v_1"),
          v2 = tw_id(&w, "v_2"), k0 = tw_id(&w, "k_0"), k1 = tw_id(&w, "k_1");
    sp_token ETH = tw_tok(&w, "ETH"), DAI = tw_tok(&w, "DAI");
    sp_id vs[3] = { v0, v1, v2 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sp_lending_deposit(w.sim, mk, vs[i], ETH, 100), 0);
        assert_int_equal(sp_lending_borrow(w.sim, mk, vs[i], DAI, 250), 0);
    }
    move_eth(&w, 6, 4);                                  /* 400 < 250·2 */
    uint32_t a, b, c;
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, v0, &a), 0);
    struct sp_auction_view av;
    assert_int_equal(sp_liq_auction(w.sim, mk, a, &av), 0);
    assert_rel(av.tab, 275, 1e-12);                      /* debt·chop */
    assert_rel(av.lot, 100, 0);
    double k0_dai = sp_balance(w.sim, k0, DAI), k1_dai = sp_balance(w.sim, k1, DAI);
    /* tend: 1.00 then 1.01 fails, 1.07 passes (beg 1.05); k0 refunded */
    assert_int_equal(sp_liq_tend(w.sim, mk, k0, a, 1.00), 0);
    assert_rel(k0_dai - sp_balance(w.sim, k0, DAI), 1.00, 1e-12);
    assert_int_equal(sp_liq_tend(w.sim, mk, k1, a, 1.01), SP_ERANGE);
    assert_rel(sp_balance(w.sim, k1, DAI), k1_dai, 0);
    assert_int_equal(sp_liq_tend(w.sim, mk, k1, a, 1.07), 0);
    assert_rel(sp_balance(w.sim, k0, DAI), k0_dai, 1e-12);
    assert_rel(k1_dai - sp_balance(w.sim, k1, DAI), 1.07, 1e-12);
    /* bid == tab -> dent phase: 100 -> 99 fails, 100 -> 95 passes, 5 to the owner */
    assert_int_equal(sp_liq_tend(w.sim, mk, k0, a, 275), 0);
    assert_int_equal(sp_liq_auction(w.sim, mk, a, &av), 0);
    assert_int_equal(av.phase, 1);
    double eth_v0 = sp_balance(w.sim, v0, ETH);
    assert_int_equal(sp_liq_dent(w.sim, mk, k1, a, 99), SP_ERANGE);
    assert_int_equal(sp_liq_dent(w.sim, mk, k1, a, 95), 0);
    assert_rel(sp_balance(w.sim, v0, ETH) - eth_v0, 5, 1e-12);
    tw_check_lending(&w);
    /* deal: only after the bid expired (ttl 3 h) */
    assert_int_equal(sp_liq_deal(w.sim, mk, a), SP_ESTATE);
    /* A lone bidder on a second auction; a third with no bid. */
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, v1, &b), 0);
    assert_int_equal(sp_liq_tend(w.sim, mk, k0, b, 1.0), 0);
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, v2, &c), 0);
    sp_time t0 = sp_sim_now(w.sim);
    step_to(&w, t0 + 3 * SP_HOUR + SP_SEC);
    double surplus0 = sp_lending_reserve(w.sim, mk, DAI), bad0 = sp_lending_bad_debt(w.sim, mk);
    double eth_k1 = sp_balance(w.sim, k1, ETH), eth_k0 = sp_balance(w.sim, k0, ETH);
    assert_int_equal(sp_liq_deal(w.sim, mk, a), 0);
    assert_rel(sp_balance(w.sim, k1, ETH) - eth_k1, 95, 1e-12);
    /* raised 275 = debt 250 + penalty 25, booked to the surplus at the bids */
    assert_rel(sp_lending_bad_debt(w.sim, mk), bad0, 0);
    assert_int_equal(sp_liq_deal(w.sim, mk, b), 0);     /* 100 ETH for 1 DAI */
    assert_rel(sp_balance(w.sim, k0, ETH) - eth_k0, 100, 1e-12);
    assert_rel(sp_lending_bad_debt(w.sim, mk) - bad0, 249, 1e-9);   /* debt − bid */
    assert_rel(sp_lending_reserve(w.sim, mk, DAI), surplus0 - 249, 1e-9);
    /* no bid: deal restarts (tick) only after the end */
    assert_int_equal(sp_liq_deal(w.sim, mk, c), SP_ESTATE);
    step_to(&w, t0 + 2 * SP_DAY + SP_SEC);
    assert_int_equal(sp_liq_deal(w.sim, mk, c), 0);
    assert_int_equal(sp_liq_auction(w.sim, mk, c, &av), 0);
    assert_true(av.live);
    assert_true(av.end == sp_sim_now(w.sim) + 2 * SP_DAY);
    assert_int_equal(sp_liq_auctions(w.sim, mk, NULL, 0), 1);
    tw_check_lending(&w);
    sp_sim_finish(w.sim);
    double v;
    int found = 0;
    for (size_t i = 0; i < sp_sim_summary_count(w.sim); i++) {
        const char *k = sp_sim_summary_get(w.sim, i, &v);
        if (!strcmp(k, "n_zero_bid_auctions")) { assert_near(v, 1, 0); found++; }
        if (!strcmp(k, "n_auctions")) { assert_near(v, 3, 0); found++; }
        if (!strcmp(k, "n_liquidations_maker")) { assert_near(v, 2, 0); found++; }
    }
    assert_int_equal(found, 3);
    tw_close(&w);
}

/* Maker's Hole: the protocol kicks what fits; room freed by a closed auction
 * lets it kick the rest. */
static void test_hole_limits_kicks(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(cdp_yaml, "{hole: 150, step: 1s, cut: 0.99, buf: 1.25, tip: 0, chip: 0}");
    world_open(&w, "liq_hole", y);
    free(y);
    step_to(&w, SP_SEC);
    sp_id mk = tw_id(&w, "maker"), k0 = tw_id(&w, "k_0");
    sp_token ETH = tw_tok(&w, "ETH"), DAI = tw_tok(&w, "DAI");
    assert_int_equal(sp_liq_mechanism(w.sim, mk), SP_LIQ_DUTCH);     /* the cdp default */
    for (int i = 0; i < 2; i++) {
        sp_id v = tw_id(&w, i ? "v_1" : "v_0");
        assert_int_equal(sp_lending_deposit(w.sim, mk, v, ETH, 40), 0);
        assert_int_equal(sp_lending_borrow(w.sim, mk, v, DAI, 100), 0);
    }
    move_eth(&w, 6, 4);
    uint32_t ids[4];
    assert_int_equal(sp_liq_auctions(w.sim, mk, ids, 4), 1);          /* 110 fits, 220 not */
    assert_int_equal(sp_lending_liquidatable(w.sim, mk, NULL, 0), 1);
    assert_int_equal(sp_liq_bark(w.sim, mk, k0, tw_id(&w, "v_1"), NULL), SP_ERANGE);
    double bought, paid;
    assert_int_equal(sp_liq_take(w.sim, mk, k0, ids[0], 40, 5.0, &bought, &paid), 0);
    assert_rel(paid, 110, 1e-12);
    step_to(&w, sp_sim_now(w.sim) + SP_SEC);
    assert_int_equal(sp_liq_auctions(w.sim, mk, ids, 4), 1);
    assert_int_equal(ids[0], 2);
    assert_int_equal(sp_lending_liquidatable(w.sim, mk, NULL, 0), 0);
    tw_close(&w);
}

/* ---- conservation through a pool's Dutch auctions and amm_direct ------------------- */

static void test_conservation_pool_dutch(void **state)
{
    (void)state;
    struct tw_world w;
    char *y = tw_fmt(pool_yaml, "{mechanism: dutch_auction, step: 10s, cut: 0.9, buf: 1.1, "
                             "tail: 5m, cusp: 30%, tip: 5, chip: 1%}", "5%");
    world_open(&w, "liq_pool_dutch", y);
    free(y);
    step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave"), liq = tw_id(&w, "liq");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC");
    open_positions(&w, aave, 3, 10, 16000);
    move_eth(&w, 2000, 1800);
    /* kick: protocol -> the protocol barked all three at the delivery */
    uint32_t ids[8];
    assert_int_equal(sp_liq_auctions(w.sim, aave, ids, 8), 3);
    assert_int_equal(sp_lending_liquidatable(w.sim, aave, NULL, 0), 0);
    struct sp_auction_view av;
    assert_int_equal(sp_liq_auction(w.sim, aave, ids[0], &av), 0);
    assert_rel(av.tab, 16000 * 1.05, 1e-12);
    assert_rel(av.top, 1800 * 1.1, 1e-12);
    assert_int_equal(av.generation, 0);
    /* partial takes while the price falls */
    double bought, paid;
    sp_time t = sp_sim_now(w.sim);
    for (int k = 1; k <= 4; k++) {
        step_to(&w, t + k * 10 * SP_SEC);
        assert_int_equal(sp_liq_take(w.sim, aave, liq, ids[0], 2, 1e9, &bought, &paid), 0);
        assert_rel(bought, 2, 1e-12);
        tw_check_lending(&w);
    }
    /* the second runs past tail: take refused until redo */
    step_to(&w, t + 6 * SP_MIN);
    assert_int_equal(sp_liq_auction(w.sim, aave, ids[1], &av), 0);
    assert_true(av.needs_redo);
    assert_int_equal(sp_liq_take(w.sim, aave, liq, ids[1], 1, 1e9, &bought, &paid), SP_ESTATE);
    double liq0 = sp_balance(w.sim, liq, USDC);
    assert_int_equal(sp_liq_redo(w.sim, aave, liq, ids[1]), 0);
    assert_rel(sp_balance(w.sim, liq, USDC) - liq0, 5 + 0.01 * av.tab, 1e-9);   /* from reserve */
    tw_check_lending(&w);
    /* take everything: the auction closes, leftover lot back to the owner */
    double eth_u1 = sp_balance(w.sim, tw_id(&w, "u_1"), ETH);
    assert_int_equal(sp_liq_take(w.sim, aave, liq, ids[1], 100, 1e9, &bought, &paid), 0);
    assert_int_equal(sp_liq_auction(w.sim, aave, ids[1], &av), 0);
    assert_false(av.live);
    assert_rel(sp_balance(w.sim, tw_id(&w, "u_1"), ETH) - eth_u1, 10 - bought, 1e-9);
    assert_rel(paid, 16000 * 1.05, 1e-9);
    tw_check_lending(&w);
    /* the third: the price falls until the lot is gone below the tab -> bad debt */
    step_to(&w, t + 6 * SP_MIN + 50 * SP_SEC);
    double bad0 = sp_lending_bad_debt(w.sim, aave);
    assert_int_equal(sp_liq_auction(w.sim, aave, ids[2], &av), 0);
    if (av.needs_redo) assert_int_equal(sp_liq_redo(w.sim, aave, liq, ids[2]), 0);
    step_to(&w, sp_sim_now(w.sim) + 45 * SP_SEC);          /* four cuts: 1980·0.9^4 */
    assert_int_equal(sp_liq_auction(w.sim, aave, ids[2], &av), 0);
    assert_true(av.price * 10 < 16000);                    /* below the debt itself */
    assert_int_equal(sp_liq_take(w.sim, aave, liq, ids[2], 10, 1e9, &bought, &paid), 0);
    assert_rel(bought, 10, 1e-12);
    assert_rel(sp_lending_bad_debt(w.sim, aave) - bad0, 16000 - paid, 1e-6);
    tw_check_lending(&w);
    tw_close(&w);
}

/* ---- the cascade ----------------------------------------------------------------------- */

#define N_CASCADE 12

static char *owners(int n)
{
    char *s = calloc(1, 1);
    for (int i = 0; i < n; i++) {
        char *t = tw_fmt("%s  - {type: scripted, name: u_%d, holdings: [{token: ETH, amount: 2}], "
                         "actions: []}\n", s, i);
        free(s);
        s = t;
    }
    return s;
}

static const char *const cascade_yaml =
    "seed: 7\n"
    "horizon: 1d\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1h}\n"
    "markets:\n"
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: spot, of: amm}, poll: 1h,\n"
    "     deviation: 0, heartbeat: 1h, on_trade: true}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%%, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: {mechanism: amm_direct, venue: amm}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%%, liquidation_threshold: 80%%,\n"
    "         liquidation_bonus: 5%%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 10000000, base_rate: 0, slope1: 0, slope2: 0}\n"
    "agents:\n"
    "%s"
    "  - {type: scripted, name: seller, holdings: [{token: ETH, amount: 10}],\n"
    "     actions: [{at: 10m, do: swap, venue: amm, side: sell, amount: %g}]}\n"
    "  - {type: arbitrageur, name: arb, venue: amm, poll: 7m, cash: 10000000, inventory: 1000}\n";

static void test_cascade_fixed_point(void **state)
{
    (void)state;
    struct tw_world w;
    const double shock = 5, LT = 0.8, x0 = 1000, y0 = 2000000;
    char *own_yaml = owners(N_CASCADE);
    char *y = tw_fmt(cascade_yaml, own_yaml, shock);
    free(own_yaml);
    char h5[1024];
    snprintf(h5, sizeof h5, "%s/tests/liq_cascade.h5", SP_BINARY_DIR);
    tw_open(&w, &(struct tw_opts){ .name = "liq_cascade", .text = y, .h5 = h5 });
    free(y);
    step_to(&w, SP_MIN);
    sp_id aave = tw_id(&w, "aave"), amm = tw_id(&w, "amm");
    sp_token ETH = tw_tok(&w, "ETH"), USDC = tw_tok(&w, "USDC");
    /* Position i: 2 ETH, debt = 2·LT·L_i with liquidation prices L_i staggered
     * 1995, 1985, ... (HF_i = 2·P·LT / debt_i < 1 iff P < L_i). */
    double coll[N_CASCADE], debt[N_CASCADE];
    sp_id own[N_CASCADE];
    for (int i = 0; i < N_CASCADE; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "u_%d", i);
        own[i] = tw_id(&w, nm);
        coll[i] = 2;
        debt[i] = 2 * LT * (1995 - 10.0 * i);
        assert_int_equal(sp_lending_deposit(w.sim, aave, own[i], ETH, coll[i]), 0);
        assert_int_equal(sp_lending_borrow(w.sim, aave, own[i], USDC, debt[i]), 0);
    }
    /* The fixed point from first principles: sell the collateral of every
     * position with HF < 1 at the current price, recompute the price from
     * x·y = k (no fee), repeat until no new position. */
    int round_of[N_CASCADE];
    double k = x0 * y0, x = x0 + shock, P = k / x / x;
    int rounds = 0;
    for (int i = 0; i < N_CASCADE; i++) round_of[i] = -1;
    for (;;) {
        double sold = 0;
        for (int i = 0; i < N_CASCADE; i++)
            if (round_of[i] < 0 && coll[i] * P * LT < debt[i]) {
                round_of[i] = rounds;
                sold += coll[i];
            }
        if (sold == 0) break;
        x += sold;
        P = k / x / x;
        rounds++;
    }
    assert_true(rounds >= 3);                       /* a real cascade */
    int n_expected = 0;
    for (int i = 0; i < N_CASCADE; i++) n_expected += round_of[i] >= 0;
    assert_true(n_expected < N_CASCADE);            /* it stops before the end */

    /* Run event by event through the shock, noting each position's
     * generation while it is liquidatable (between the oracle's delivery and
     * the protocol's pass). */
    int gen_seen[N_CASCADE];
    for (int i = 0; i < N_CASCADE; i++) gen_seen[i] = -1;
    sp_time until = 10 * SP_MIN + SP_SEC;
    bool drained = false;
    while (!drained) {
        sp_sim_step(w.sim, until, 1, &drained);
        for (int i = 0; i < N_CASCADE; i++) {
            int g = sp_liq_generation(w.sim, aave, own[i]);
            if (g >= 0 && gen_seen[i] < 0) gen_seen[i] = g;
        }
    }
    tw_check_lending(&w);
    const struct sp_market_ops *m = sp_market_ops_of(w.sim, amm);
    double price = m->price(sp_sim_entity_state(w.sim, amm));
    assert_rel(price, P, 1e-12);
    for (int i = 0; i < N_CASCADE; i++) {
        double c = sp_lending_collateral(w.sim, aave, own[i], ETH);
        if (round_of[i] >= 0) {
            assert_near(c, 0, 0);
            assert_near(sp_lending_debt(w.sim, aave, own[i], USDC), 0, 1e-6);
            assert_int_equal(gen_seen[i], round_of[i]);
        } else {
            assert_near(c, coll[i], 0);
            assert_int_equal(gen_seen[i], -1);
        }
    }
    assert_int_equal(sp_lending_liquidatable(w.sim, aave, NULL, 0), 0);
    /* The oracle's last delivery read the last round's sales. */
    sp_id o_eth = tw_id(&w, "o_eth");
    assert_int_equal(sp_oracle_generation(w.sim, o_eth), rounds);
    assert_int_equal(sp_venue_liq_generation(w.sim, amm, 10 * SP_MIN), rounds - 1);
    /* The arbitrageur (poll 7 m) restores the price at 14 m: its trade
     * carries the venue's tag on (generation rounds − 1, propagating), so
     * the oracle's next delivery is generation `rounds` again. */
    assert_int_equal(sp_venue_liq_generation(w.sim, amm, 14 * SP_MIN), -1);
    step_to(&w, 15 * SP_MIN);
    assert_int_equal(sp_venue_liq_generation(w.sim, amm, 14 * SP_MIN), rounds - 1);
    assert_true(sp_oracle_delivered_at(w.sim, o_eth) == 14 * SP_MIN);
    assert_int_equal(sp_oracle_generation(w.sim, o_eth), rounds);
    assert_int_equal(sp_lending_liquidatable(w.sim, aave, NULL, 0), 0);
    sp_sim_finish(w.sim);
    double v, depth = -1, nliq = -1;
    for (size_t i = 0; i < sp_sim_summary_count(w.sim); i++) {
        const char *key = sp_sim_summary_get(w.sim, i, &v);
        if (!strcmp(key, "cascade_depth")) depth = v;
        if (!strcmp(key, "n_liquidations")) nliq = v;
    }
    assert_near(depth, rounds - 1, 0);
    assert_near(nliq, n_expected, 0);
    assert_int_equal(sp_rec_close(w.rec, "complete"), 0);
    /* /events/liquidations: one row per liquidated position, its round as
     * generation, non-decreasing; the liquidation sales in /events/trades
     * carry the same generations. */
    size_t n, el, n2, el2;
    int32_t *gen = tu_read_raw(h5, "/events/liquidations/generation", &n, &el);
    int32_t *own_col = tu_read_raw(h5, "/events/liquidations/owner", &n2, &el2);
    assert_int_equal(n, (size_t)n_expected);
    assert_int_equal(el, 4);
    for (size_t r = 0; r < n; r++) {
        int i = -1;
        for (int q = 0; q < N_CASCADE; q++) if (own[q] == (sp_id)own_col[r]) i = q;
        assert_true(i >= 0);
        assert_int_equal(gen[r], round_of[i]);
        if (r) assert_true(gen[r] >= gen[r - 1]);
    }
    free(gen);
    free(own_col);
    int8_t *cause = tu_read_raw(h5, "/events/trades/cause", &n, &el);
    int32_t *tgen = tu_read_raw(h5, "/events/trades/generation", &n2, &el2);
    assert_int_equal(n, n2);
    size_t n_sales = 0;
    for (size_t r = 0; r < n; r++)
        if (cause[r] == SP_CAUSE_LIQUIDATION) n_sales++;
        else if (cause[r] == SP_CAUSE_ARBITRAGE) assert_int_equal(tgen[r], rounds - 1);
    assert_int_equal(n_sales, (size_t)n_expected);
    free(cause);
    free(tgen);
    tw_close(&w);
}

/* ---- bad input ---------------------------------------------------------------------- */

static void expect_error(const char *name, const char *yaml, const char *needle, int line)
{
    tw_expect_config_error_at(&(struct tw_opts){ .name = name, .text = yaml }, needle, line);
}

static void test_bad_input(void **state)
{
    (void)state;
    /* the `liquidation:` mapping is line 17 of cdp_yaml, 21 of cascade_yaml */
    static const struct { const char *liq, *needle; } cdp_cases[] = {
        { "{buf: 0.9}", "buf" },
        { "{cut: 1}", "cut" },
        { "{cut: 0}", "cut" },
        { "{tail: 0}", "tail" },
        { "{mechanism: english_auction, beg: 1}", "beg" },
        { "{mechanism: english_auction, ttl: 3d, tau: 2d}", "ttl (3d) must not exceed tau (2d)" },
        { "{mechanism: dutch_auctoin}", "dutch_auction" },
    };
    for (size_t i = 0; i < sizeof cdp_cases / sizeof cdp_cases[0]; i++) {
        char *y = tw_fmt(cdp_yaml, cdp_cases[i].liq);
        expect_error("liq_bad_cdp", y, cdp_cases[i].needle, 17);
        free(y);
    }
    char *y = tw_fmt(cascade_yaml, "", 1.0);
    char *p = strstr(y, "venue: amm}");
    assert_non_null(p);
    char *bad = tw_fmt("%.*svenue: ammm}%s", (int)(p - y), y, p + strlen("venue: amm}"));
    expect_error("liq_bad_venue", bad, "unknown venue 'ammm' (did you mean 'amm'?)", 21);
    free(bad);
    bad = tw_fmt("%.*s}%s", (int)(p - y - 2), y, p + strlen("venue: amm}"));
    expect_error("liq_no_venue", bad, "needs `venue`", 21);
    free(bad);
    /* a venue that does not trade the pair (two lines inserted above) */
    char *q = strstr(y, "markets:\n");
    assert_non_null(q);
    q += strlen("markets:\n");
    bad = tw_fmt("%.*s  - {type: cpmm, name: other, base: ETH, quote: aUSDC, reserve_base: 1,\n"
                 "     reserve_quote: 1}\n%.*svenue: other}%s", (int)(q - y), y,
                 (int)(p - q), q, p + strlen("venue: amm}"));
    expect_error("liq_bad_pair", bad, "trades ETH/aUSDC", 23);
    free(bad);
    /* the CLI exits with 2 */
    char *cli = tw_fmt(cdp_yaml, "{buf: 0.5}");
    char path[1024], log[1024];
    snprintf(path, sizeof path, "%s/tests/liq_cli_bad.yaml", SP_BINARY_DIR);
    snprintf(log, sizeof log, "%s/tests/liq_cli_bad.log", SP_BINARY_DIR);
    tu_write(path, cli);
    char *argv[] = { (char *)SP_SPIRAL_EXE, (char *)"validate", path, NULL };
    assert_int_equal(tu_run(argv, log), 2);
    char *out = tu_read(log);
    if (!strstr(out, "liq_cli_bad.yaml:17:")) fail_msg("no file:line in:\n%s", out);
    free(out);
    free(cli);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aave_close_factor_cap_and_toxic),
        cmocka_unit_test(test_compound_variant_seize),
        cmocka_unit_test(test_clip_vector_through_protocol),
        cmocka_unit_test(test_flip_vectors_through_protocol),
        cmocka_unit_test(test_hole_limits_kicks),
        cmocka_unit_test(test_conservation_pool_dutch),
        cmocka_unit_test(test_cascade_fixed_point),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
