/*
 * test_vault.c — the ERC-4626 yield vault (agents/vault.c) in whole
 * simulations built from scenario text: an ETH vault looping against USDC
 * on a pool lending protocol, trading on an ETH/USDC CPMM held to the
 * reference by an arbitrageur, with scripted agents as depositors.
 *
 * What is checked, and against what:
 *   - share price = NAV / shares after every step of a randomized sequence
 *     of deposits, redemptions, keeper rebalances and reference shocks,
 *     with NAV recomputed here from the protocol and the ledger (C + idle −
 *     (D − idle debt) · p_debt / p_asset at the protocol's prices), and the
 *     share token's rate equal to it; ERC-4626: a deposit does not move the
 *     share price, a redemption pays shares · price; every token conserved
 *     (sp_ledger_check) after every step;
 *   - a run (large redemptions) makes the vault unwind through the venue:
 *     trades with cause "redemption" (and "deleverage" at the next keeper
 *     tick) in /events/trades, debt falls, leverage back in the band; a thin
 *     venue with a tight slippage limit pays a redemption in part;
 *   - the shares as collateral in a second pool priced by a `value` oracle:
 *     a shock to ETH moves the share's price by the vault's leverage;
 *   - scenario errors: missing protocol (did-you-mean, file:line, key),
 *     share token of the wrong kind or issuer, target_leverage < 1.
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
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "reference.h"
#include "sim-internal.h"
#include "vault.h"

#define assert_near(a, b, eps)                                                          \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps)))                                                   \
            fail_msg("%s = %.17g, expected %.17g (within %g)", #a, a_, b_, (double)(eps)); \
    } while (0)

#define assert_rel(a, b, r) assert_near(a, b, (r) * fmax(fabs(b), 1e-300))

/* ---- helpers --------------------------------------------------------------- */

extern const struct sp_module_ops sp_agent_vault_ops;
extern const struct sp_module_ops sp_protocol_pool_ops;

/* The built-in registry, plus the vault and pool types if it lacks them. */
static struct sp_registry *registry(void)
{
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    if (!sp_registry_find(reg, "agent", "vault"))
        assert_int_equal(sp_registry_add(reg, &sp_agent_vault_ops), 0);
    if (!sp_registry_find(reg, "protocol", "pool"))
        assert_int_equal(sp_registry_add(reg, &sp_protocol_pool_ops), 0);
    return reg;
}

/* A tw_world and the vault's cast; `sim` is tw.sim, for brevity. */
struct world {
    struct tw_world tw;
    struct sp_sim *sim;
    sp_id vault, lend, alice, bob;
    sp_token eth, usdc, share;
};

/* Build with registry(); record to `out` (NULL: no output). */
static void world_open(struct world *w, const char *name, const char *yaml, const char *out)
{
    tw_open(&w->tw, &(struct tw_opts){ .name = name, .text = yaml, .registry = registry,
                                       .h5 = out });
    w->sim = w->tw.sim;
    w->vault = sp_sim_find(w->sim, "vault");
    w->lend = sp_sim_find(w->sim, "lend");
    w->alice = sp_sim_find(w->sim, "alice");
    w->bob = sp_sim_find(w->sim, "bob");
    w->eth = sp_token_find(w->sim, "ETH");
    w->usdc = sp_token_find(w->sim, "USDC");
    w->share = sp_token_find(w->sim, "vETH");
    assert_true(sp_vault_is(w->sim, w->vault));
    assert_false(sp_vault_is(w->sim, w->lend));
}

/* With output: finish, write the summary metrics and close it. */
static void world_close(struct world *w)
{
    if (w->tw.rec) {
        sp_sim_finish(w->sim);
        for (size_t i = 0; i < sp_sim_summary_count(w->sim); i++) {
            double v;
            const char *k = sp_sim_summary_get(w->sim, i, &v);
            sp_rec_attr_f64(w->tw.rec, "/summary", k, v);
        }
        assert_int_equal(sp_rec_close(w->tw.rec, "complete"), 0);
    }
    tw_close(&w->tw);
}

static void step_to(struct world *w, sp_time until)
{
    tw_step_to(&w->tw, until);
}

/* NAV recomputed from the protocol and the ledger (vault.c's definition). */
static double nav_here(struct world *w)
{
    struct sp_sim *s = w->sim;
    double c = sp_lending_collateral(s, w->lend, w->vault, w->eth);
    double d = sp_lending_debt(s, w->lend, w->vault, w->usdc);
    double idle = sp_balance(s, w->vault, w->eth), idle_d = sp_balance(s, w->vault, w->usdc);
    double pa = sp_lending_price(s, w->lend, w->eth), pd = sp_lending_price(s, w->lend, w->usdc);
    double net = d - idle_d;
    return net != 0 ? c + idle - net * pd / pa : c + idle;
}

static void check_price(struct world *w)
{
    double nav = nav_here(w), supply = sp_supply(w->sim, w->share);
    assert_rel(sp_vault_nav(w->sim, w->vault), nav, 1e-12);
    double price = supply > 0 ? nav / supply : 1.0;
    assert_rel(sp_vault_share_price(w->sim, w->vault), price, 1e-12);
    sp_token_values_changed(w->sim);
    assert_rel(sp_token_rate(w->sim, w->share), price, 1e-12);
    double c = sp_lending_collateral(w->sim, w->lend, w->vault, w->eth);
    if (c > 0) assert_rel(sp_vault_leverage(w->sim, w->vault), c / nav, 1e-12);
    tw_check(&w->tw);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double unif(uint64_t *s) { return (double)(xorshift(s) >> 11) / 9007199254740992.0; }

/* ---- the world --------------------------------------------------------------- */

/* ETH at 2000 (no noise) on a reference; a 400k ETH / 800M USDC pool (0.3 %)
 * held to it by an arbitrageur; a pool lender taking ETH (LTV 80 %) and
 * lending USDC; the vault (3x, band 0.25, keeper hourly, 100 ETH of seed
 * capital) and two depositors.  %s: extra `vault` keys; %s: extra items. */
static const char world_fmt[] =
    "horizon: 2d\n"
    "output: {sample_every: 10m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: lend}\n"
    "  - {name: vETH, kind: vault_share, underlying: ETH, issuer: vault}\n"
    "%s"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1m}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: %s,\n"
    "     reserve_quote: %s, fee: 0.3%%}\n"
    "oracles:\n"
    "  - {type: heartbeat, name: eth_usd, poll: 12s, heartbeat: 12s,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, poll: 12s, heartbeat: 12s,\n"
    "     source: {type: value, of: USDC}}\n"
    "%s"
    "protocols:\n"
    "  - type: pool\n"
    "    name: lend\n"
    "    assets:\n"
    "      - {token: ETH, oracle: eth_usd, ltv: 80%%, liquidation_threshold: 85%%}\n"
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: aUSDC, initial_supply: 100000000}\n"
    "%s"
    "agents:\n"
    "  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, cash: 2000000000,\n"
    "     inventory: 1000000}\n"
    "  - {type: vault, name: vault, share: vETH, protocol: lend, debt: USDC, venue: pool,\n"
    "     target_leverage: 3, band: 0.25, seed_capital: 100%s}\n"
    "  - {type: scripted, name: alice, holdings: [{token: ETH, amount: 1000}], actions: []}\n"
    "  - {type: scripted, name: bob, holdings: [{token: ETH, amount: 1000}], actions: []}\n";

static void open_world(struct world *w, const char *name, const char *vault_extra,
                       const char *rb, const char *rq, const char *out)
{
    char yaml[8192];
    snprintf(yaml, sizeof yaml, world_fmt, "", rb, rq, "", "", vault_extra);
    world_open(w, name, yaml, out);
}

/* ---- share price = NAV / shares --------------------------------------------- */

static void test_vault_share_price_is_nav_over_shares_through_random_steps(void **state)
{
    (void)state;
    struct world w;
    open_world(&w, "vault_random", "", "400000", "800000000", NULL);
    check_price(&w);
    step_to(&w, 10 * SP_SEC);                 /* the first keeper tick has levered up */
    check_price(&w);
    assert_near(sp_vault_leverage(w.sim, w.vault), 3.0, 0.25);
    assert_near(sp_supply(w.sim, w.share), 100.0, 0);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    sp_id ref = sp_sim_find(w.sim, "reference_ETH");
    sp_time t = 10 * SP_SEC;
    int n_dep = 0, n_red = 0, n_reb = 0, n_shock = 0;
    for (int k = 0; k < 60; k++) {
        sp_id who = unif(&rng) < 0.5 ? w.alice : w.bob;
        double u = unif(&rng);
        if (u < 0.35) {                                   /* deposit */
            double have = sp_balance(w.sim, who, w.eth);
            double amt = have * 0.3 * unif(&rng);
            if (amt > 0) {
                double p0 = sp_vault_share_price(w.sim, w.vault), sh = 0;
                double s0 = sp_balance(w.sim, who, w.share);
                assert_int_equal(sp_vault_deposit(w.sim, w.vault, who, amt, &sh), 0);
                assert_rel(sp_balance(w.sim, who, w.share) - s0, sh, 1e-9);
                assert_rel(sp_vault_share_price(w.sim, w.vault), p0, 1e-12);
                assert_rel(sh * p0, amt, 1e-12);
                n_dep++;
            }
        } else if (u < 0.6) {                             /* redeem */
            double held = sp_balance(w.sim, who, w.share);
            double sh = held * unif(&rng);
            if (sh > 0) {
                double p0 = sp_vault_share_price(w.sim, w.vault), got = 0;
                double e0 = sp_balance(w.sim, who, w.eth);
                assert_int_equal(sp_vault_redeem(w.sim, w.vault, who, sh, &got), 0);
                assert_rel(got, sh * p0, 1e-9);           /* ample venue: paid in full */
                assert_rel(sp_balance(w.sim, who, w.eth) - e0, got, 1e-9);
                assert_rel(sp_balance(w.sim, who, w.share), held - sh, 1e-9);
                /* those who stay pay the unwinding's slippage, nothing else */
                assert_true(sp_vault_share_price(w.sim, w.vault) <= p0 * (1 + 1e-9));
                assert_true(sp_vault_share_price(w.sim, w.vault) >= p0 * 0.99);
                n_red++;
            }
        } else if (u < 0.8) {                             /* keeper */
            double lev0 = sp_vault_leverage(w.sim, w.vault);
            int rc = sp_vault_rebalance(w.sim, w.vault);
            assert_true(rc == 0 || rc == 1);
            double lev = sp_vault_leverage(w.sim, w.vault);
            if (rc == 1) assert_true(fabs(lev - 3.0) < fabs(lev0 - 3.0));
            if (rc == 0 && lev0 > 0) assert_true(lev <= 3.25 || lev >= lev0);
            n_reb++;
        } else {                                          /* price move, then the arb */
            double drop = 0.16 * unif(&rng) - 0.08;
            assert_int_equal(sp_reference_shock(w.sim, ref, drop, 0), 0);
            n_shock++;
        }
        check_price(&w);
        t += 10 * SP_MIN;
        step_to(&w, t);
        check_price(&w);
    }
    assert_true(n_dep > 5 && n_red > 5 && n_reb > 5 && n_shock > 5);
    world_close(&w);
}

/* ---- a run ------------------------------------------------------------------ */

static void test_vault_run_deleverages_through_the_market(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("vault_run");
    char out[1100];
    snprintf(out, sizeof out, "%s/run.h5", dir);
    struct world w;
    open_world(&w, "vault_run", "", "400000", "800000000", out);
    step_to(&w, 10 * SP_SEC);
    double sh_a = 0, sh_b = 0;
    assert_int_equal(sp_vault_deposit(w.sim, w.vault, w.alice, 200, &sh_a), 0);
    assert_int_equal(sp_vault_deposit(w.sim, w.vault, w.bob, 100, &sh_b), 0);
    step_to(&w, SP_HOUR + 10 * SP_SEC);          /* the keeper puts them to work */
    check_price(&w);
    double lev0 = sp_vault_leverage(w.sim, w.vault);
    assert_near(lev0, 3.0, 0.25);
    double debt0 = sp_lending_debt(w.sim, w.lend, w.vault, w.usdc);
    assert_true(debt0 > 2 * 400 * 2000 * 0.9);
    assert_near(sp_balance(w.sim, w.vault, w.eth), 0, 1e-9);
    /* The run: alice takes everything out at once. */
    double p0 = sp_vault_share_price(w.sim, w.vault), got = 0;
    assert_int_equal(sp_vault_redeem(w.sim, w.vault, w.alice, sh_a, &got), 0);
    check_price(&w);
    assert_rel(got, sh_a * p0, 1e-9);
    double debt1 = sp_lending_debt(w.sim, w.lend, w.vault, w.usdc);
    double lev1 = sp_vault_leverage(w.sim, w.vault);
    assert_true(debt1 < debt0 * 0.55);             /* cut pro rata: ~ (1 − 200/400) */
    assert_true(fabs(lev1 - 3.0) <= 0.25 || debt1 < debt0);
    assert_rel(lev1, lev0, 1e-6);                  /* those who stay keep their leverage */
    assert_true(sp_vault_share_price(w.sim, w.vault) < p0);   /* bob paid the slippage */
    assert_true(sp_vault_share_price(w.sim, w.vault) > p0 * 0.98);
    /* A crash: leverage leaves the band upward; the keeper deleverages. */
    assert_int_equal(sp_reference_shock(w.sim, sp_sim_find(w.sim, "reference_ETH"), 0.15, 0), 0);
    step_to(&w, 2 * SP_HOUR - SP_SEC);
    assert_true(sp_vault_leverage(w.sim, w.vault) > 3.25);
    double debt2 = sp_lending_debt(w.sim, w.lend, w.vault, w.usdc);
    step_to(&w, 2 * SP_HOUR + 10 * SP_SEC);
    assert_near(sp_vault_leverage(w.sim, w.vault), 3.0, 0.25);
    assert_true(sp_lending_debt(w.sim, w.lend, w.vault, w.usdc) < debt2);
    step_to(&w, 3 * SP_HOUR);
    world_close(&w);

    size_t n, m, elem;
    int8_t *cause = tu_read_raw(out, "/events/trades/cause", &n, &elem);
    int32_t *agent = tu_read_raw(out, "/events/trades/agent", &m, &elem);
    int n_loop = 0, n_red = 0, n_dlv = 0;
    for (size_t i = 0; i < n; i++) {
        if (agent[i] != (int32_t)w.vault) continue;
        n_loop += cause[i] == SP_CAUSE_LOOP;
        n_red += cause[i] == SP_CAUSE_REDEMPTION;
        n_dlv += cause[i] == SP_CAUSE_DELEVERAGE;
    }
    free(cause);
    free(agent);
    assert_true(n_loop > 0 && n_red > 0 && n_dlv > 0);
    double *nav = tu_read_f64(out, "/vaults/vault/nav", &n);
    double *price = tu_read_f64(out, "/vaults/vault/share_price", &m);
    double *shares = tu_read_f64(out, "/vaults/vault/shares", &m);
    assert_int_equal(n, m);
    assert_true(n >= 18);
    for (size_t i = 0; i < n; i++) assert_rel(price[i], nav[i] / shares[i], 1e-12);
    free(nav); free(price); free(shares);
    assert_true(tu_attr_f64(out, "/summary", "rebalances_vault") >= 3);
    assert_true(tu_attr_f64(out, "/summary", "redemptions_vault") == 1);
    assert_true(tu_attr_f64(out, "/summary", "slippage_vault") > 0);
    assert_true(tu_attr_f64(out, "/summary", "min_share_price_vault") < 1);
}

static double summary_unpaid(struct world *w)
{
    sp_sim_finish(w->sim);
    return tw_summary(w->sim, "unpaid_vault");
}

static void test_vault_thin_venue_pays_a_redemption_in_part(void **state)
{
    (void)state;
    struct world w;
    /* 2000 ETH of depth and a 2 % slippage limit: the keeper (every 2
     * minutes) levers up over many ticks, the arbitrageur re-pegging the
     * pool in between; a redemption must unwind in one go and stalls. */
    open_world(&w, "vault_thin", ", max_slippage: 2%, rebalance_every: 2m", "2000", "4000000",
               NULL);
    step_to(&w, 10 * SP_SEC);
    double sh = 0;
    assert_int_equal(sp_vault_deposit(w.sim, w.vault, w.alice, 100, &sh), 0);
    step_to(&w, 3 * SP_HOUR);
    check_price(&w);
    double lev = sp_vault_leverage(w.sim, w.vault);
    assert_near(lev, 3.0, 0.25);
    double p0 = sp_vault_share_price(w.sim, w.vault), got = 0;
    double held = sp_balance(w.sim, w.alice, w.share);
    assert_int_equal(sp_vault_redeem(w.sim, w.vault, w.alice, held, &got), 0);
    check_price(&w);
    double burned = held - sp_balance(w.sim, w.alice, w.share);
    assert_true(got < held * p0 * 0.999);      /* could not raise it all */
    assert_true(got > 0);
    assert_rel(burned / held, got / (held * p0), 1e-9);
    assert_true(sp_vault_leverage(w.sim, w.vault) <= lev * (1 + 1e-9));
    assert_true(summary_unpaid(&w) > 0);
    world_close(&w);
}

/* ---- the second layer --------------------------------------------------------- */

static void test_vault_shares_are_collateral_in_a_second_protocol(void **state)
{
    (void)state;
    char yaml[8192];
    snprintf(yaml, sizeof yaml, world_fmt,
             "  - {name: a2USDC, kind: receipt, underlying: USDC, issuer: lend2}\n",
             "400000", "800000000",
             "  - {type: heartbeat, name: veth_usd, poll: 12s, heartbeat: 12s,\n"
             "     source: {type: value, of: vETH}}\n",
             "  - type: pool\n"
             "    name: lend2\n"
             "    assets:\n"
             "      - {token: vETH, oracle: veth_usd, ltv: 50%, liquidation_threshold: 60%}\n"
             "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
             "         receipt: a2USDC, initial_supply: 10000000}\n",
             "");
    struct world w;
    world_open(&w, "vault_layer2", yaml, NULL);
    sp_id lend2 = sp_sim_find(w.sim, "lend2");
    assert_int_equal(sp_token_layer(w.sim, w.share), 1);
    step_to(&w, 10 * SP_SEC);
    double sh = 0;
    assert_int_equal(sp_vault_deposit(w.sim, w.vault, w.alice, 300, &sh), 0);
    step_to(&w, SP_HOUR + 30 * SP_SEC);
    double lev = sp_vault_leverage(w.sim, w.vault);
    assert_near(lev, 3.0, 0.25);
    /* The second protocol prices the share at its fundamental value. */
    double price = sp_vault_share_price(w.sim, w.vault);
    double p_eth = sp_lending_price(w.sim, w.lend, w.eth);
    assert_rel(sp_lending_price(w.sim, lend2, w.share), price * p_eth, 1e-9);
    assert_int_equal(sp_lending_deposit(w.sim, lend2, w.alice, w.share, sh), 0);
    double borrow = 0.4 * sh * price * p_eth;
    assert_int_equal(sp_lending_borrow(w.sim, lend2, w.alice, w.usdc, borrow), 0);
    tw_check(&w.tw);
    struct sp_lending_position pos0, pos1;
    assert_int_equal(sp_lending_position(w.sim, lend2, w.alice, &pos0), 0);
    /* ETH −10 %: the share (3x) loses about 30 % of its value in USD·(1/0.9)
     * terms: its price in ETH falls by (lev − 1)·10 %/(1 − 10 %) before the
     * keeper acts. */
    double v0 = price * p_eth;
    assert_int_equal(sp_reference_shock(w.sim, sp_sim_find(w.sim, "reference_ETH"), 0.10, 0), 0);
    step_to(&w, SP_HOUR + 2 * SP_MIN);
    double price1 = sp_vault_share_price(w.sim, w.vault);
    double p_eth1 = sp_lending_price(w.sim, w.lend, w.eth);
    assert_rel(p_eth1, 0.9 * p_eth, 0.01);
    double v1 = sp_lending_price(w.sim, lend2, w.share);
    assert_rel(v1, price1 * p_eth1, 1e-9);
    assert_true(v1 / v0 < 0.75 && v1 / v0 > 0.65);      /* ~ 1 − 3 × 10 % */
    assert_int_equal(sp_lending_position(w.sim, lend2, w.alice, &pos1), 0);
    assert_true(pos1.hf < pos0.hf * 0.75);
    world_close(&w);
}

/* The same loop on a Maker-like cdp: the debt is the minted stablecoin. */
static void test_vault_loops_on_a_cdp(void **state)
{
    (void)state;
    static const char yaml[] =
        "horizon: 6h\n"
        "tokens:\n"
        "  - {name: ETH, kind: base}\n"
        "  - {name: DAI, kind: stable}\n"
        "  - {name: vETH, kind: vault_share, underlying: ETH, issuer: vault}\n"
        "references: [{type: gbm, asset: ETH, initial: 2000, step: 1m}]\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 400000,\n"
        "     reserve_quote: 800000000}\n"
        "oracles:\n"
        "  - {type: heartbeat, name: eth_usd, poll: 12s, heartbeat: 12s,\n"
        "     source: {type: reference, of: reference_ETH}}\n"
        "protocols:\n"
        "  - type: cdp\n"
        "    name: lend\n"
        "    stablecoin: DAI\n"
        "    collaterals: [{token: ETH, oracle: eth_usd, liquidation_ratio: 1.5}]\n"
        "agents:\n"
        "  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, cash: 2000000000,\n"
        "     inventory: 1000000}\n"
        "  - {type: vault, name: vault, share: vETH, protocol: lend, debt: DAI, venue: pool,\n"
        "     target_leverage: 2, seed_capital: 100}\n"
        "  - {type: scripted, name: alice, holdings: [{token: ETH, amount: 1000}], actions: []}\n"
        "  - {type: scripted, name: bob, holdings: [{token: ETH, amount: 1000}], actions: []}\n";
    struct world w;
    world_open(&w, "vault_cdp", yaml, NULL);
    w.usdc = sp_token_find(w.sim, "DAI");
    step_to(&w, 10 * SP_SEC);
    check_price(&w);
    assert_near(sp_vault_leverage(w.sim, w.vault), 2.0, 0.25);
    double sh = 0, got = 0;
    assert_int_equal(sp_vault_deposit(w.sim, w.vault, w.alice, 100, &sh), 0);
    step_to(&w, SP_HOUR + 10 * SP_SEC);
    check_price(&w);
    double p0 = sp_vault_share_price(w.sim, w.vault);
    double debt0 = sp_lending_debt(w.sim, w.lend, w.vault, w.usdc);
    assert_int_equal(sp_vault_redeem(w.sim, w.vault, w.alice, sh, &got), 0);
    check_price(&w);
    assert_rel(got, sh * p0, 1e-9);
    assert_true(sp_lending_debt(w.sim, w.lend, w.vault, w.usdc) < debt0 * 0.6);
    step_to(&w, 6 * SP_HOUR);
    world_close(&w);
}

/* ---- scenario errors ------------------------------------------------------- */

static void expect_bind_error(const char *yaml, const char *where, const char *what,
                              const char *key)
{
    tw_expect_config_error(&(struct tw_opts){ .name = "bad_vault", .text = yaml,
                                              .registry = registry },
                           true, where, what, key, (const char *)NULL);
}

static const char bad_fmt[] =
    "horizon: 6h\n"                                                                 /* 1 */
    "tokens:\n"                                                                     /* 2 */
    "  - {name: ETH, kind: base}\n"                                                 /* 3 */
    "  - {name: USDC, kind: stable}\n"                                              /* 4 */
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: lend}\n"            /* 5 */
    "  - {name: vETH, kind: vault_share, underlying: ETH, issuer: vault}\n"         /* 6 */
    "references: [{type: gbm, asset: ETH, initial: 2000}]\n"                        /* 7 */
    "markets:\n"                                                                    /* 8 */
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1,\n"       /* 9 */
    "     reserve_quote: 2000}\n"                                                   /* 10 */
    "oracles:\n"                                                                    /* 11 */
    "  - {type: heartbeat, name: eth_usd, source: {type: reference, of: reference_ETH}}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"      /* 13 */
    "protocols:\n"                                                                  /* 14 */
    "  - type: pool\n"                                                              /* 15 */
    "    name: lend\n"                                                              /* 16 */
    "    assets:\n"                                                                 /* 17 */
    "      - {token: ETH, oracle: eth_usd}\n"                                       /* 18 */
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: aUSDC}\n"                                                    /* 20 */
    "agents:\n"                                                                     /* 21 */
    "  - type: vault\n"                                                             /* 22 */
    "    name: vault\n"                                                             /* 23 */
    "    debt: USDC\n"                                                              /* 24 */
    "    venue: pool\n"                                                             /* 25 */
    "%s";                                                                           /* 26.. */

static void bad(const char *lines, const char *where, const char *what, const char *key)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, bad_fmt, lines);
    expect_bind_error(yaml, where, what, key);
}

static void test_vault_bad_input_names_file_line_and_key(void **state)
{
    (void)state;
    bad("    share: vETH\n    protocol: lnd\n",
        "bad_vault.yaml:27:", "unknown protocol 'lnd' (did you mean 'lend'?)",
        "agents.0.protocol");
    bad("    share: ETH\n    protocol: lend\n",
        "bad_vault.yaml:26:", "is of kind base, expected kind vault_share", "agents.0.share");
    bad("    share: aUSDC\n    protocol: lend\n",
        "bad_vault.yaml:26:", "expected kind vault_share", "agents.0.share");
    bad("    share: vETH\n    protocol: lend\n    target_leverage: 0.5\n",
        "bad_vault.yaml:28:", "target_leverage", "agents.0.target_leverage");
    bad("    share: vETH\n    protocol: lend\n    asset: USDC\n",
        "bad_vault.yaml:28:", "underlying 'ETH'", "agents.0.asset");
    bad("    share: vETH\n    protocol: lend\n    venue2: pool\n",
        "bad_vault.yaml:28:", "unknown key 'venue2'", "agents.0");
    bad("    share: vETH\n    protocol: lend\n    target_leverage: 2\n    band: 2\n",
        "bad_vault.yaml:29:", "never loop", "agents.0.band");
}

/* A vault whose share token names another issuer. */
static void test_vault_share_issued_by_another_is_rejected(void **state)
{
    (void)state;
    char yaml[4096];
    snprintf(yaml, sizeof yaml, bad_fmt, "    share: vETH\n    protocol: lend\n");
    /* rename the vault: the share's issuer `vault` no longer exists */
    char *p = strstr(yaml, "    name: vault\n");
    assert_non_null(p);
    memcpy(p, "    name: vlt  \n", 16);
    expect_bind_error(yaml, "bad_vault.yaml:", "vault", "share");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vault_share_price_is_nav_over_shares_through_random_steps),
        cmocka_unit_test(test_vault_run_deleverages_through_the_market),
        cmocka_unit_test(test_vault_thin_venue_pays_a_redemption_in_part),
        cmocka_unit_test(test_vault_shares_are_collateral_in_a_second_protocol),
        cmocka_unit_test(test_vault_loops_on_a_cdp),
        cmocka_unit_test(test_vault_bad_input_names_file_line_and_key),
        cmocka_unit_test(test_vault_share_issued_by_another_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
