/*
 * test_token.c — the valuation graph (spiral/token.h): kinds and layers, LST
 * accrual, issuer rate functions and the per-event value cache, LP tokens
 * and their value, the LST redemption queue, the oracle `value` source, and
 * the scenario checks on tokens (messages, lines, CLI exit code 2).
 *
 * Expected values come from the definitions in DESIGN §2: an lst is worth
 * rate0·exp(apr·t/year) times its base; an lp token (reserve_0·v(base) +
 * reserve_1·v(quote)) / LP supply, with the Uniswap v2 initial supply
 * sqrt(x·y) (UniswapV2Pair.mint, without the MINIMUM_LIQUIDITY lock, which
 * market/cpmm.c leaves out).
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "amm.h"
#include "oracle.h"

#define REL(a, b) (fabs((a) - (b)) <= 1e-12 * fabs(b))

/* ---- a fake lending protocol: registers a receipt rate, reads values ------- */

enum { POOL_READ = 1 };

struct test_pool_cfg {
    double rate;
};

struct test_pool {
    sp_id id;
    sp_token receipt;
    double rate;
    int calls;                 /* rate function calls */
    int events;
    double seen[2];            /* values read in the last event */
};

static const struct sp_field test_pool_fields[] = {
    { "rate", SP_T_NUMBER, 0, 0, 0, "1", NULL, "receipt rate",
      offsetof(struct test_pool_cfg, rate), NULL, 0 },
};

static const struct sp_schema test_pool_schema = {
    "protocols[type: test_pool]", "test issuer", test_pool_fields, 1,
    sizeof(struct test_pool_cfg), NULL
};

static double test_pool_rate(void *self, struct sp_sim *sim, sp_token tok)
{
    (void)sim;
    (void)tok;
    struct test_pool *p = self;
    p->calls++;
    return p->rate;
}

static int test_pool_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct test_pool *p = self;
    const struct test_pool_cfg *c = cfg;
    p->id = id;
    p->rate = c ? c->rate : 1.0;
    p->receipt = sp_token_find_issued(sim, id, -1);
    if (p->receipt < 0) return SP_OK;
    return sp_token_set_rate_fn(sim, p->receipt, id, test_pool_rate, p);
}

/* At each event: read the receipt's value twice; in the second event
 * change the rate between the reads and say so. */
static void test_pool_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct test_pool *p = self;
    if (ev->kind != POOL_READ) return;
    p->events++;
    p->seen[0] = sp_token_value(sim, p->receipt);
    if (p->events == 2) {
        p->rate = 0.5;                    /* bad debt written off */
        sp_token_values_changed(sim);
    }
    p->seen[1] = sp_token_value(sim, p->receipt);
}

static const struct sp_module_ops test_pool_ops = {
    .kind = "protocol", .type = "test_pool", .summary = "test issuer",
    .schema = &test_pool_schema, .state_size = sizeof(struct test_pool),
    .init = test_pool_init, .on_event = test_pool_on_event,
};

/* ---- building worlds from YAML --------------------------------------------- */

/* The built-in registry and the test protocol. */
static struct sp_registry *registry(void)
{
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    assert_int_equal(sp_registry_add(reg, &test_pool_ops), 0);
    return reg;
}

/* Load tests/token-NAME.yaml (path in w->yaml) and bind: the code,
 * diagnostics in w->d. */
static int world_bind(struct tw_world *w, const char *name, const char *yaml)
{
    char nm[256];
    snprintf(nm, sizeof nm, "token-%s", name);
    return tw_bind(w, &(struct tw_opts){ .name = nm, .text = yaml, .registry = registry });
}

static void world_start(struct tw_world *w, const char *name, const char *yaml)
{
    int rc = world_bind(w, name, yaml);
    if (rc) sp_diag_print(&w->d, stderr);
    assert_int_equal(rc, 0);
    tw_start(w, &(struct tw_opts){ 0 });
}

/* ---- kinds and layers ------------------------------------------------------ */

static const char graph_yaml[] =
    "horizon: 400d\n"
    "output: {sample_every: 1d}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: stETH, kind: lst, underlying: ETH, apr: 4%, rate: 1.05, redemption_delay: 1d}\n"
    "  - {name: astETH, kind: receipt, underlying: stETH, issuer: lender}\n"
    "  - {name: ETHUSDC_LP, kind: lp, issuer: ethusdc}\n"
    "  - {name: STETH_LP, kind: lp, issuer: steth_eth}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, step: 1d}\n"
    "markets:\n"
    "  - {type: cpmm, name: ethusdc, base: ETH, quote: USDC, reserve_base: 100,\n"
    "     reserve_quote: 200000}\n"
    "  - {type: stableswap, name: steth_eth, base: stETH, quote: ETH, reserve_base: 1000,\n"
    "     reserve_quote: 1000, amp: 50}\n"
    "oracles:\n"
    "  - {type: heartbeat, name: steth_value, poll: 1d, heartbeat: 1d,\n"
    "     source: {type: value, of: stETH}}\n"
    "protocols:\n"
    "  - {type: test_pool, name: lender, rate: 1.25}\n"
    "agents:\n"
    "  - type: scripted\n"
    "    name: lp\n"
    "    holdings: [{token: ETH, amount: 10}, {token: USDC, amount: 50000}]\n"
    "    actions:\n"
    "      - {at: 1h, do: add_liquidity, venue: ethusdc, base: 10, quote: 50000}\n"
    "      - {at: 2h, do: remove_liquidity, venue: ethusdc, shares: 50%}\n";

static void test_token_kinds_and_layers_follow_the_graph(void **state)
{
    (void)state;
    struct tw_world w;
    world_start(&w, "graph", graph_yaml);
    struct sp_sim *sim = w.sim;
    sp_token eth = tw_tok(&w, "ETH"), usdc = tw_tok(&w, "USDC"), st = tw_tok(&w, "stETH"),
             ast = tw_tok(&w, "astETH"), lp1 = tw_tok(&w, "ETHUSDC_LP"),
             lp2 = tw_tok(&w, "STETH_LP");
    assert_int_equal(sp_token_kind(sim, eth), SP_TOKEN_BASE);
    assert_int_equal(sp_token_kind(sim, usdc), SP_TOKEN_STABLE);
    assert_int_equal(sp_token_kind(sim, st), SP_TOKEN_LST);
    assert_int_equal(sp_token_kind(sim, ast), SP_TOKEN_RECEIPT);
    assert_int_equal(sp_token_kind(sim, lp1), SP_TOKEN_LP);
    assert_int_equal(sp_token_underlying(sim, st), eth);
    assert_int_equal(sp_token_underlying(sim, ast), st);
    assert_int_equal(sp_token_underlying(sim, lp1), -1);
    assert_int_equal(sp_token_issuer(sim, ast), sp_sim_find(sim, "lender"));
    assert_int_equal(sp_token_issuer(sim, lp1), sp_sim_find(sim, "ethusdc"));
    assert_int_equal(sp_token_issuer(sim, st), SP_ID_NONE);
    assert_int_equal(sp_token_find_issued(sim, sp_sim_find(sim, "steth_eth"), -1), lp2);
    /* base/stable 0; lst 1; receipt of an lst 2; lp of ETH/USDC 1; lp of stETH/ETH 2 */
    assert_int_equal(sp_token_layer(sim, eth), 0);
    assert_int_equal(sp_token_layer(sim, usdc), 0);
    assert_int_equal(sp_token_layer(sim, st), 1);
    assert_int_equal(sp_token_layer(sim, ast), 2);
    assert_int_equal(sp_token_layer(sim, lp1), 1);
    assert_int_equal(sp_token_layer(sim, lp2), 2);
    assert_int_equal(sp_token_max_layer(sim), 2);
    /* out of range */
    assert_int_equal(sp_token_kind(sim, 99), -1);
    assert_int_equal(sp_token_layer(sim, -1), -1);
    assert_int_equal(sp_token_issuer(sim, 99), SP_ID_NONE);
    assert_true(isnan(sp_token_value(sim, 99)));
    /* the lst schema defaults */
    assert_true(REL(sp_token_apr(sim, st), 0.04));
    assert_int_equal(sp_token_redemption_delay(sim, st), SP_DAY);
    tw_release(&w);
}

/* ---- values ---------------------------------------------------------------- */

static void test_token_lst_accrues_its_apr_continuously(void **state)
{
    (void)state;
    struct tw_world w;
    world_start(&w, "accrual", graph_yaml);
    struct sp_sim *sim = w.sim;
    sp_token eth = tw_tok(&w, "ETH"), usdc = tw_tok(&w, "USDC"), st = tw_tok(&w, "stETH"),
             ast = tw_tok(&w, "astETH");
    assert_true(REL(sp_token_value(sim, eth), 2000.0));
    assert_true(REL(sp_token_value(sim, usdc), 1.0));
    assert_true(REL(sp_token_rate(sim, st), 1.05));
    assert_true(REL(sp_token_value(sim, st), 1.05 * 2000.0));
    tw_advance(&w, SP_YEAR);
    /* after one year: rate0 · e^apr, times the base (volatility 0: 2000) */
    double want = 1.05 * exp(0.04) * 2000.0;
    assert_true(REL(sp_token_rate(sim, st), 1.05 * exp(0.04)));
    assert_true(REL(sp_token_value(sim, st), want));
    /* the receipt: issuer rate 1.25 times the lst's value */
    assert_true(REL(sp_token_rate(sim, ast), 1.25));
    assert_true(REL(sp_token_value(sim, ast), 1.25 * want));
    /* the oracle `value` source read the lst at its last poll (t = 365d) */
    sp_id orc = sp_sim_find(sim, "steth_value");
    assert_true(REL(sp_oracle_price(sim, orc), want));
    tw_release(&w);
}

static void test_token_lp_value_is_reserves_over_supply(void **state)
{
    (void)state;
    struct tw_world w;
    world_start(&w, "lp", graph_yaml);
    struct sp_sim *sim = w.sim;
    sp_token lp1 = tw_tok(&w, "ETHUSDC_LP");
    sp_id venue = sp_sim_find(sim, "ethusdc"), agent = sp_sim_find(sim, "lp");
    /* the initial liquidity's LP tokens belong to the venue: sqrt(100 · 200000) */
    double s0 = sqrt(100.0 * 200000.0);
    assert_true(REL(sp_supply(sim, lp1), s0));
    assert_true(REL(sp_balance(sim, venue, lp1), s0));
    assert_true(REL(sp_amm_lp_supply(sim, venue), s0));
    assert_true(REL(sp_amm_lp_shares(sim, venue, venue), s0));
    /* (100 · 2000 + 200000 · 1) / sqrt(2e7) */
    assert_true(REL(sp_token_value(sim, lp1), 400000.0 / s0));
    /* 1h: the agent adds 10 ETH + 20000 USDC (the pool's ratio): minted
     * s0 · 10/100 LP tokens, in the ledger */
    tw_advance(&w, SP_HOUR);
    double minted = s0 * 0.1;
    assert_true(fabs(sp_balance(sim, agent, lp1) - minted) <= 1e-9 * minted);
    assert_true(REL(sp_amm_lp_shares(sim, venue, agent), sp_balance(sim, agent, lp1)));
    assert_true(REL(sp_supply(sim, lp1), sp_amm_lp_supply(sim, venue)));
    assert_true(fabs(sp_token_value(sim, lp1) - 400000.0 / s0) <= 1e-9 * 400000.0 / s0);
    /* 2h: it removes half: burned */
    tw_advance(&w, 2 * SP_HOUR);
    assert_true(fabs(sp_balance(sim, agent, lp1) - minted / 2) <= 1e-9 * minted);
    assert_true(REL(sp_supply(sim, lp1), sp_amm_lp_supply(sim, venue)));
    assert_true(fabs(sp_balance(sim, agent, tw_tok(&w, "ETH")) - 5.0) <= 1e-9);
    /* LP tokens are transferable: whoever holds them can redeem them */
    sp_id lender = sp_sim_find(sim, "lender");
    double held = sp_balance(sim, agent, lp1), ob, oq;
    assert_int_equal(sp_transfer(sim, lp1, agent, lender, held), 0);
    assert_true(sp_amm_lp_shares(sim, venue, agent) == 0.0);
    assert_int_equal(sp_amm_remove_liquidity(sim, venue, agent, held, NULL, NULL), SP_ERANGE);
    assert_int_equal(sp_amm_remove_liquidity(sim, venue, lender, held, &ob, &oq), 0);
    assert_true(fabs(ob - 5.0) <= 1e-9 && fabs(oq - 10000.0) <= 1e-6);
    assert_true(sp_balance(sim, lender, lp1) == 0.0);
    assert_true(REL(sp_supply(sim, lp1), s0));
    assert_true(REL(sp_amm_lp_supply(sim, venue), s0));
    assert_int_equal(sp_ledger_check(sim), 0);
    /* the stableswap lp: (1000 · v(stETH) + 1000 · v(ETH)) / D, D = 2000 at balance */
    sp_token lp2 = tw_tok(&w, "STETH_LP");
    double v2 = (1000.0 * sp_token_value(sim, tw_tok(&w, "stETH")) + 1000.0 * 2000.0) /
                sp_supply(sim, lp2);
    assert_true(REL(sp_supply(sim, lp2), 2000.0));
    assert_true(REL(sp_token_value(sim, lp2), v2));
    tw_release(&w);
}

/* ---- rate functions and the per-event cache (a hand-built sim) ------------- */

static void test_token_rate_fn_runs_once_per_event_until_values_change(void **state)
{
    (void)state;
    struct sp_sim *sim;
    assert_int_equal(sp_sim_create(&sim, 1), 0);
    const char *names[] = { "USDC", "aUSDC", "ETH" };
    assert_int_equal(sp_sim_set_tokens(sim, names, 3), 0);
    sp_id pool, other;
    assert_int_equal(sp_sim_add_entity(sim, "pool", &test_pool_ops, NULL, &pool), 0);
    assert_int_equal(sp_sim_add_entity(sim, "other", &test_pool_ops, NULL, &other), 0);
    /* a token never defined is base; bad definitions are refused */
    assert_int_equal(sp_token_kind(sim, 1), SP_TOKEN_BASE);
    struct sp_token_def bad = { SP_TOKEN_RECEIPT, 0, SP_ID_NONE, 0, 1, 0 };
    assert_int_equal(sp_token_define(sim, 1, &bad), SP_EINVAL);
    bad = (struct sp_token_def){ SP_TOKEN_BASE, 0, SP_ID_NONE, 0, 1, 0 };
    assert_int_equal(sp_token_define(sim, 1, &bad), SP_EINVAL);
    struct sp_token_def stable = { SP_TOKEN_STABLE, -1, SP_ID_NONE, 0, 1, 0 };
    struct sp_token_def rcpt = { SP_TOKEN_RECEIPT, 0, pool, 0, 1, 0 };
    assert_int_equal(sp_token_define(sim, 0, &stable), 0);
    assert_int_equal(sp_token_define(sim, 1, &rcpt), 0);
    /* 1 until the issuer registers */
    assert_true(REL(sp_token_rate(sim, 1), 1.0));
    assert_int_equal(sp_sim_init_entity(sim, pool, NULL), 0);
    assert_int_equal(sp_sim_init_entity(sim, other, NULL), 0);
    struct test_pool *p = sp_sim_entity_state(sim, pool);
    p->rate = 1.1;
    /* only the issuer, and only for receipt / vault_share tokens */
    assert_int_equal(sp_token_set_rate_fn(sim, 1, other, test_pool_rate, p), SP_EINVAL);
    assert_int_equal(sp_token_set_rate_fn(sim, 0, pool, test_pool_rate, p), SP_EINVAL);
    assert_int_equal(sp_token_set_rate_fn(sim, 2, pool, test_pool_rate, p), SP_EINVAL);
    assert_non_null(sp_sim_schedule(sim, 10 * SP_SEC, 0, pool, POOL_READ));
    assert_non_null(sp_sim_schedule(sim, 20 * SP_SEC, 0, pool, POOL_READ));
    assert_int_equal(sp_sim_start(sim), 0);
    bool drained;
    p->calls = 0;
    sp_sim_step(sim, 10 * SP_SEC, 100, &drained);
    /* two reads in one event: one call; value = rate · 1 (stable) */
    assert_int_equal(p->events, 1);
    assert_int_equal(p->calls, 1);
    assert_true(REL(p->seen[0], 1.1) && REL(p->seen[1], 1.1));
    sp_sim_step(sim, 20 * SP_SEC, 100, &drained);
    /* the next event computes again; sp_token_values_changed forces a third */
    assert_int_equal(p->events, 2);
    assert_int_equal(p->calls, 3);
    assert_true(REL(p->seen[0], 1.1));
    assert_true(REL(p->seen[1], 0.5));
    /* base without a reference process has no value */
    assert_true(isnan(sp_token_value(sim, 2)));
    sp_sim_destroy(sim);
}

/* ---- LST redemption queue (a hand-built sim) -------------------------------- */

struct probe {
    sp_token eth, steth;
    int n;
    sp_time t[8];
    double eth_seen[8];
};

static void probe_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct probe *p = self;
    if (p->n == 8) return;
    p->t[p->n] = ev->t;
    p->eth_seen[p->n++] = sp_balance(sim, (sp_id)ev->target, p->eth);
    if (ev->kind == 2) {           /* redeem again, from inside an event */
        sp_time ready;
        assert_int_equal(sp_lst_redeem(sim, p->steth, (sp_id)ev->target, 1.0, &ready), 0);
        assert_int_equal(ready, ev->t + 10 * SP_SEC);
    }
}

static const struct sp_module_ops probe_ops = {
    .kind = "agent", .type = "test_probe", .summary = "test probe",
    .state_size = sizeof(struct probe), .on_event = probe_on_event,
};

static void test_token_lst_redemption_burns_now_and_mints_at_ready_time(void **state)
{
    (void)state;
    struct sp_sim *sim;
    assert_int_equal(sp_sim_create(&sim, 1), 0);
    const char *names[] = { "ETH", "stETH" };
    assert_int_equal(sp_sim_set_tokens(sim, names, 2), 0);
    sp_id a, b;
    assert_int_equal(sp_sim_add_entity(sim, "alice", &probe_ops, NULL, &a), 0);
    assert_int_equal(sp_sim_add_entity(sim, "bob", &probe_ops, NULL, &b), 0);
    struct sp_token_def lst = { SP_TOKEN_LST, 0, SP_ID_NONE, 0.05, 1.2, 10 * SP_SEC };
    assert_int_equal(sp_token_define(sim, 1, &lst), 0);
    struct probe *pa = sp_sim_entity_state(sim, a), *pb = sp_sim_entity_state(sim, b);
    pa->eth = pb->eth = 0;
    pa->steth = pb->steth = 1;
    assert_int_equal(sp_mint(sim, 1, a, 5.0), 0);
    assert_int_equal(sp_mint(sim, 1, b, 3.0), 0);
    /* errors: not an lst, too much, not positive */
    assert_int_equal(sp_lst_redeem(sim, 0, a, 1.0, NULL), SP_EINVAL);
    assert_int_equal(sp_lst_redeem(sim, 1, a, 6.0, NULL), SP_EMODEL);
    assert_int_equal(sp_lst_redeem(sim, 1, a, 0.0, NULL), SP_EINVAL);
    assert_true(REL(sp_balance(sim, a, 1), 5.0));
    /* at t = 0 (rate 1.2): both redeem; ready at 10s */
    sp_time ready;
    assert_int_equal(sp_lst_redeem(sim, 1, a, 2.0, &ready), 0);
    assert_int_equal(ready, 10 * SP_SEC);
    assert_int_equal(sp_lst_redeem(sim, 1, b, 3.0, NULL), 0);
    assert_true(REL(sp_balance(sim, a, 1), 3.0));
    assert_true(REL(sp_supply(sim, 1), 3.0));                 /* burned at once */
    assert_true(REL(sp_lst_pending(sim, 1, a), 2.4));
    assert_true(REL(sp_lst_pending(sim, 1, b), 3.6));
    assert_true(REL(sp_lst_pending_total(sim, 1), 6.0));
    assert_true(sp_supply(sim, 0) == 0.0);
    assert_int_equal(sp_ledger_check(sim), 0);
    /* probe events just before, at and after the ready time; alice redeems
     * 1 more at 11s (rate 1.2·e^{0.05·11s/yr}), ready at 21s */
    assert_non_null(sp_sim_schedule(sim, 10 * SP_SEC - 1, 0, a, 1));
    assert_non_null(sp_sim_schedule(sim, 10 * SP_SEC, 0, a, 1));
    assert_non_null(sp_sim_schedule(sim, 11 * SP_SEC, 0, a, 2));
    assert_int_equal(sp_sim_start(sim), 0);
    bool drained;
    sp_sim_step(sim, 10 * SP_SEC - 1, 100, &drained);
    assert_true(sp_balance(sim, a, 0) == 0.0);
    assert_true(REL(sp_lst_pending(sim, 1, a), 2.4));
    sp_sim_step(sim, SP_TIME_MAX - 1, 2, &drained);  /* the events at 10s and 11s */
    assert_int_equal(pa->n, 3);
    assert_true(pa->eth_seen[0] == 0.0);              /* at 10s - 1us: nothing yet */
    assert_true(REL(pa->eth_seen[1], 2.4));           /* minted before the event at 10s */
    assert_true(REL(sp_balance(sim, b, 0), 3.6));     /* FIFO: bob's too, same instant */
    assert_true(sp_lst_pending(sim, 1, a) > 0.0);     /* the 11s redemption waits */
    double r11 = 1.2 * exp(0.05 * 11.0 / (365.0 * 86400.0));
    assert_true(REL(sp_lst_pending(sim, 1, a), r11));
    assert_int_equal(sp_ledger_check(sim), 0);
    /* no event left: the run's end (30s) settles what is due by then */
    struct sp_run_opts opts = { .until = 30 * SP_SEC };
    assert_int_equal(sp_sim_run(sim, &opts), SP_RUN_COMPLETE);
    assert_true(REL(sp_balance(sim, a, 0), 2.4 + r11));
    assert_true(sp_lst_pending(sim, 1, a) == 0.0);
    assert_true(REL(sp_balance(sim, a, 1), 2.0));
    assert_int_equal(sp_sim_now(sim), 30 * SP_SEC);
    assert_int_equal(sp_ledger_check(sim), 0);
    sp_sim_destroy(sim);
}

static void test_token_redemption_in_a_world_keeps_the_ledger_conserved(void **state)
{
    (void)state;
    struct tw_world w;
    world_start(&w, "redeem",
                "horizon: 3d\n"
                "output: {sample_every: 1h}\n"
                "tokens:\n"
                "  - {name: ETH, kind: base}\n"
                "  - {name: stETH, kind: lst, underlying: ETH, apr: 5%}\n"
                "references:\n"
                "  - {type: gbm, asset: ETH, initial: 2000, step: 1h}\n"
                "agents:\n"
                "  - {type: scripted, name: whale, holdings: [{token: stETH, amount: 10}],\n"
                "     actions: []}\n");
    struct sp_sim *sim = w.sim;
    sp_token eth = tw_tok(&w, "ETH"), st = tw_tok(&w, "stETH");
    sp_id whale = sp_sim_find(sim, "whale");
    assert_int_equal(sp_token_redemption_delay(sim, st), 7 * SP_DAY);  /* the default */
    tw_advance(&w, SP_HOUR);
    sp_time ready;
    assert_int_equal(sp_lst_redeem(sim, st, whale, 4.0, &ready), 0);
    assert_int_equal(ready, SP_HOUR + 7 * SP_DAY);
    double want = 4.0 * exp(0.05 * (double)SP_HOUR / (double)SP_YEAR);
    assert_true(REL(sp_lst_pending(sim, st, whale), want));
    assert_true(REL(sp_balance(sim, whale, st), 6.0));
    tw_advance(&w, 3 * SP_DAY);                          /* the horizon: still queued */
    assert_true(sp_balance(sim, whale, eth) == 0.0);
    assert_int_equal(sp_ledger_check(sim), 0);
    tw_release(&w);
}

/* ---- bad input --------------------------------------------------------------- */

struct bad_token {
    const char *name;
    const char *tokens;        /* the tokens: block, then the fixed rest */
    int line;
    const char *key;
    const char *message;
};

#define BAD_REST                                                                \
    "references:\n"                                                            \
    "  - {type: gbm, asset: ETH, initial: 2000}\n"                             \
    "markets:\n"                                                               \
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1,\n"  \
    "     reserve_quote: 2000}\n"                                              \
    "agents:\n"                                                                \
    "  - {type: arbitrageur, name: arb, venue: pool, reference: reference_ETH}\n"

static const struct bad_token bad_tokens[] = {
    { "cycle",
      "  - {name: A, kind: receipt, underlying: B, issuer: lender}\n"
      "  - {name: B, kind: receipt, underlying: A, issuer: lender}\n",
      5, "tokens.2.underlying", "token cycle: A -> B -> A" },
    { "missing_underlying",
      "  - {name: stETH, kind: lst, underlying: ETTH}\n",
      5, "tokens.2.underlying", "unknown token 'ETTH' (did you mean 'ETH'?)" },
    { "issuer_wrong_type",
      "  - {name: vETH, kind: vault_share, underlying: ETH, issuer: arb}\n",
      5, "tokens.2.issuer", "agent 'arb' is of type arbitrageur; expected one of: vault" },
    { "underlying_on_base",
      "  - {name: WBTC, kind: base, underlying: ETH}\n",
      5, "tokens.2.underlying", "`underlying` does not apply to kind base" },
    { "lst_of_stable",
      "  - {name: sUSDC, kind: lst, underlying: USDC}\n",
      5, "tokens.2.underlying", "the underlying of lst 'sUSDC' must be a base token; 'USDC' "
      "is of kind stable" },
    { "unknown_issuer",
      "  - {name: LP, kind: lp, issuer: pol}\n",
      5, "tokens.2.issuer", "unknown market 'pol' (did you mean 'pool'?)" },
    { "missing_issuer",
      "  - {name: aETH, kind: receipt, underlying: ETH}\n",
      5, "tokens.2", "missing required key 'issuer'" },
};

static void bad_yaml(char *buf, size_t size, const struct bad_token *c)
{
    /* The cycle goes through receipts of the test protocol. */
    if (!strcmp(c->name, "cycle"))
        snprintf(buf, size, "horizon: 1d\ntokens:\n  - {name: ETH, kind: base}\n"
                 "  - {name: USDC, kind: stable}\n%s" BAD_REST
                 "protocols:\n  - {type: test_pool, name: lender}\n", c->tokens);
    else
        snprintf(buf, size, "horizon: 1d\ntokens:\n  - {name: ETH, kind: base}\n"
                 "  - {name: USDC, kind: stable}\n%s" BAD_REST, c->tokens);
}

static void test_token_bad_input_is_reported_with_line_key_and_hint(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_tokens / sizeof bad_tokens[0]; i++) {
        const struct bad_token *c = &bad_tokens[i];
        char yaml[2048], where[1200];
        bad_yaml(yaml, sizeof yaml, c);
        struct tw_world w;
        int rc = world_bind(&w, c->name, yaml);
        const char *text = tw_diag(&w);
        snprintf(where, sizeof where, "%s:%d:", w.yaml, c->line);
        if (rc != SP_ECONFIG || !strstr(text, where) || !strstr(text, c->key) ||
            !strstr(text, c->message)) {
            fprintf(stderr, "case %s: rc %d, want '%s' '%s' '%s', got:\n%s\n", c->name, rc,
                    where, c->key, c->message, text);
            failures++;
        }
        if (!strcmp(c->name, "cycle")) {            /* reported once */
            const char *first = strstr(text, "token cycle");
            if (!first || strstr(first + 1, "token cycle")) {
                fprintf(stderr, "case cycle: reported %s\n", first ? "twice" : "never");
                failures++;
            }
        }
        tw_release(&w);
    }
    assert_int_equal(failures, 0);
}

/* An oracle `value` source names a token, with a did-you-mean. */
static void test_token_oracle_value_source_names_a_token(void **state)
{
    (void)state;
    struct tw_world w;
    int rc = world_bind(&w, "oracle_bad",
                        "horizon: 1d\n"
                        "tokens:\n"
                        "  - {name: ETH, kind: base}\n"
                        "  - {name: stETH, kind: lst, underlying: ETH}\n"
                        "references:\n"
                        "  - {type: gbm, asset: ETH, initial: 2000}\n"
                        "oracles:\n"
                        "  - {type: heartbeat, name: o, source: {type: value, of: stETh}}\n");
    const char *text = tw_diag(&w);
    char where[1200];
    snprintf(where, sizeof where, "%s:8:", w.yaml);
    if (rc != SP_ECONFIG || !strstr(text, where) || !strstr(text, "oracles.0.source.of") ||
        !strstr(text, "unknown token 'stETh' (did you mean 'stETH'?)"))
        fail_msg("rc %d, got:\n%s", rc, text);
    tw_release(&w);
}

/* Through the CLI: exit code 2 and the same message.  The binary has no
 * test_pool protocol, so its cycle goes through an lp token instead. */
static void test_token_bad_input_exits_2_from_the_cli(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("token");
    int failures = 0;
    for (size_t i = 1; i < sizeof bad_tokens / sizeof bad_tokens[0]; i++) {
        const struct bad_token *c = &bad_tokens[i];
        char yaml[2048], scn[1024], out[1024], log[1024], where[1200];
        bad_yaml(yaml, sizeof yaml, c);
        snprintf(scn, sizeof scn, "%s/%s.yaml", dir, c->name);
        snprintf(out, sizeof out, "%s/%s.h5", dir, c->name);
        snprintf(log, sizeof log, "%s/%s.log", dir, c->name);
        tu_write(scn, yaml);
        char *argv[] = { "spiral", "run", scn, "-o", out, NULL };
        int code = tu_run(argv, log);
        char *text = tu_read(log);
        snprintf(where, sizeof where, "%s.yaml:%d:", c->name, c->line);
        if (code != 2 || !strstr(text, where) || !strstr(text, c->message)) {
            fprintf(stderr, "case %s: exit %d (want 2), output:\n%s\n", c->name, code, text);
            failures++;
        }
        free(text);
    }
    /* a cycle through lp tokens and an lst, with builtin types only */
    char scn[1024], out[1024], log[1024];
    snprintf(scn, sizeof scn, "%s/lp_cycle.yaml", dir);
    snprintf(out, sizeof out, "%s/lp_cycle.h5", dir);
    snprintf(log, sizeof log, "%s/lp_cycle.log", dir);
    tu_write(scn, "horizon: 1d\n"
                  "tokens:\n"
                  "  - {name: ETH, kind: base}\n"
                  "  - {name: LP, kind: lp, issuer: pool}\n"
                  "references:\n"
                  "  - {type: gbm, asset: ETH, initial: 2000}\n"
                  "markets:\n"
                  "  - {type: cpmm, name: pool, base: LP, quote: ETH, reserve_base: 1,\n"
                  "     reserve_quote: 2000}\n");
    char *argv[] = { "spiral", "run", scn, "-o", out, NULL };
    int code = tu_run(argv, log);
    char *text = tu_read(log);
    if (code != 2 || !strstr(text, "lp_cycle.yaml:4:") ||
        !strstr(text, "token cycle: LP -> LP")) {
        fprintf(stderr, "case lp_cycle: exit %d (want 2), output:\n%s\n", code, text);
        failures++;
    }
    free(text);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_kinds_and_layers_follow_the_graph),
        cmocka_unit_test(test_token_lst_accrues_its_apr_continuously),
        cmocka_unit_test(test_token_lp_value_is_reserves_over_supply),
        cmocka_unit_test(test_token_rate_fn_runs_once_per_event_until_values_change),
        cmocka_unit_test(test_token_lst_redemption_burns_now_and_mints_at_ready_time),
        cmocka_unit_test(test_token_redemption_in_a_world_keeps_the_ledger_conserved),
        cmocka_unit_test(test_token_bad_input_is_reported_with_line_key_and_hint),
        cmocka_unit_test(test_token_oracle_value_source_names_a_token),
        cmocka_unit_test(test_token_bad_input_exits_2_from_the_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
