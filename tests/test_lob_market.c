/*
 * test_lob_market.c — the "lob" market module (market/lob_market.c) and the
 * agent API of market/book.h: escrow and settlement conserve every token
 * over randomized limit / cancel / market sequences from several agents,
 * every fill is a row of /events/trades, the book is never crossed, the
 * venue's balances equal the resting orders' escrow, cancels refund, best
 * and depth agree, market orders spend what they are given, and scenario
 * errors name file:line and key.
 *
 * The sim is built from a scenario (the venue only) and the traders are
 * bare entities added by hand, driven directly through book.h and
 * sp_market_swap at t = 0; a recorder is attached so the trades table can
 * be read back.
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
#include "spiral/recorder.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "sim-internal.h"
#include "book.h"

#define N_AGENTS 5
#define TICK 0.01
#define LOT 0.001

static const char header[] =
    "horizon: 1h\n"
    "output: {sample_every: 1m, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USD, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 100}\n";

static const char venue_yaml[] =
    "markets:\n"
    "  - {type: lob, name: book, base: ETH, quote: USD, tick_size: 0.01, lot_size: 0.001,\n"
    "     initial_price: 100, window: 20%, max_orders: 4000, depth_levels: 3}\n";

static const struct sp_module_ops bare_ops = {
    .kind = "agent", .type = "lob_test_bare", .summary = "test", .state_size = 8,
};

struct fixture {
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    struct sp_rec *rec;
    sp_id venue, agent[N_AGENTS];
    sp_token eth, usd;
    char path[1024];
};

static void setup(struct fixture *fx, bool record)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", header, venue_yaml);
    struct sp_diag d = { 0 };
    assert_int_equal(sp_scenario_load_string(&fx->sc, "lob.yaml", yaml, strlen(yaml), &d), 0);
    int rc = sp_world_bind(fx->sc, sp_registry_builtin(), &fx->cfg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(sp_world_build(&fx->sim, &fx->cfg, &d), 0);
    sp_diag_release(&d);
    fx->venue = sp_sim_find(fx->sim, "book");
    assert_true(sp_book_is(fx->sim, fx->venue));
    assert_false(sp_book_is(fx->sim, sp_sim_find(fx->sim, "reference_ETH")));
    fx->eth = sp_token_find(fx->sim, "ETH");
    fx->usd = sp_token_find(fx->sim, "USD");
    for (int i = 0; i < N_AGENTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "trader_%d", i);
        assert_int_equal(sp_sim_add_entity(fx->sim, name, &bare_ops, NULL, &fx->agent[i]), 0);
        assert_int_equal(sp_mint(fx->sim, fx->eth, fx->agent[i], 50.0), 0);
        assert_int_equal(sp_mint(fx->sim, fx->usd, fx->agent[i], 5000.0), 0);
    }
    if (record) {
        snprintf(fx->path, sizeof fx->path, "%s/lob_market.h5", tu_tmpdir("lob_market"));
        struct sp_rec_opts ro = { 0, 256 };
        assert_int_equal(sp_rec_create(&fx->rec, fx->path, &ro), 0);
        assert_int_equal(sp_trades_open(fx->sim, fx->rec), 0);
        sp_sim_set_recorder(fx->sim, fx->rec);
    }
    assert_int_equal(sp_sim_start(fx->sim), 0);
}

static void teardown(struct fixture *fx)
{
    sp_sim_finish(fx->sim);
    if (fx->rec) {
        for (size_t i = 0; i < sp_sim_summary_count(fx->sim); i++) {
            double v;
            const char *name = sp_sim_summary_get(fx->sim, i, &v);
            sp_rec_attr_f64(fx->rec, "/summary", name, v);
        }
        assert_int_equal(sp_rec_close(fx->rec, "complete"), 0);
    }
    sp_sim_destroy(fx->sim);
    sp_scenario_destroy(fx->sc);
}

static double summary(const struct sp_sim *sim, const char *key)
{
    for (size_t i = 0; i < sp_sim_summary_count(sim); i++) {
        double v;
        const char *name = sp_sim_summary_get(sim, i, &v);
        if (!strcmp(name, key)) return v;
    }
    return -1;
}

/* The book's invariants, and the venue's escrow against its resting orders. */
static void check_book(struct fixture *fx, const sp_order_id *ids, size_t n_ids)
{
    struct sp_sim *sim = fx->sim;
    assert_int_equal(sp_ledger_check(sim), 0);
    double bid, bq, ask, aq;
    assert_int_equal(sp_book_best(sim, fx->venue, &bid, &bq, &ask, &aq), 0);
    if (!isnan(bid) && !isnan(ask)) assert_true(bid < ask);
    double p[64], q[64];
    size_t nb = sp_book_depth(sim, fx->venue, SP_BUY, p, q, 64);
    if (nb) {
        assert_float_equal(p[0], bid, 1e-12);
        assert_float_equal(q[0], bq, 1e-12);
    } else {
        assert_true(isnan(bid));
    }
    for (size_t i = 1; i < nb; i++) assert_true(p[i] < p[i - 1]);
    size_t na = sp_book_depth(sim, fx->venue, SP_SELL, p, q, 64);
    if (na) {
        assert_float_equal(p[0], ask, 1e-12);
        assert_float_equal(q[0], aq, 1e-12);
    } else {
        assert_true(isnan(ask));
    }
    for (size_t i = 1; i < na; i++) assert_true(p[i] > p[i - 1]);
    double price = sp_market_ops_of(sim, fx->venue)->price(sp_sim_entity_state(sim, fx->venue));
    if (nb && na) assert_float_equal(price, 0.5 * (bid + ask), 1e-9);
    else assert_true(isnan(price));
    /* Supply: nothing minted or burned after setup. */
    assert_float_equal(sp_supply(sim, fx->eth), 50.0 * N_AGENTS, 1e-9);
    assert_float_equal(sp_supply(sim, fx->usd), 5000.0 * N_AGENTS, 1e-9);
    /* The venue holds exactly the escrow of what rests. */
    double esc_eth = 0, esc_usd = 0;
    for (size_t i = 0; i < n_ids; i++) assert_true(sp_book_order_qty(sim, fx->venue, ids[i]) >= 0);
    double all_p[4096], all_q[4096];
    size_t n = sp_book_depth(sim, fx->venue, SP_BUY, all_p, all_q, 4096);
    for (size_t i = 0; i < n; i++) esc_usd += all_p[i] * all_q[i];
    n = sp_book_depth(sim, fx->venue, SP_SELL, all_p, all_q, 4096);
    for (size_t i = 0; i < n; i++) esc_eth += all_q[i];
    assert_float_equal(sp_balance(sim, fx->venue, fx->eth), esc_eth, 1e-8);
    assert_float_equal(sp_balance(sim, fx->venue, fx->usd), esc_usd, 1e-7);
}

static void test_lob_random_sequences_conserve_tokens_and_record_every_fill(void **state)
{
    (void)state;
    struct fixture fx = { 0 };
    setup(&fx, true);
    struct sp_rng rng;
    sp_rng_init(&rng, 42, 7);
    enum { MAX_IDS = 4096 };
    static sp_order_id ids[MAX_IDS];
    size_t n_ids = 0;
    int n_limits = 0, n_cancels = 0, n_swaps = 0, n_rejected = 0;
    for (int step = 0; step < 3000; step++) {
        sp_id a = fx.agent[sp_rng_below(&rng, N_AGENTS)];
        double u = sp_rng_uniform(&rng);
        if (u < 0.55 || n_ids == 0) {
            enum sp_side side = sp_rng_below(&rng, 2) ? SP_SELL : SP_BUY;
            double price = 100.0 + (side == SP_BUY ? -1.0 : 1.0) * (sp_rng_uniform(&rng) - 0.3) * 2.0;
            double qty = 0.0005 + sp_rng_uniform(&rng) * 3.0;
            sp_order_id id;
            double filled;
            int rc = sp_book_limit(fx.sim, fx.venue, a, side, price, qty, SP_CAUSE_NOISE, &id,
                                   &filled);
            if (rc == SP_ERANGE || rc == SP_EINVAL) { n_rejected++; continue; }
            assert_int_equal(rc, 0);
            n_limits++;
            assert_true(filled >= 0 && filled <= qty + 1e-12);
            if (id) {
                assert_true(sp_book_order_qty(fx.sim, fx.venue, id) > 0);
                if (n_ids < MAX_IDS) ids[n_ids++] = id;
            }
        } else if (u < 0.8) {
            size_t k = sp_rng_below(&rng, n_ids);
            int rc = sp_book_cancel(fx.sim, fx.venue, ids[k]);
            assert_true(rc == 0 || rc == SP_ENOTFOUND);
            if (rc == 0) n_cancels++;
            assert_int_equal(sp_book_cancel(fx.sim, fx.venue, ids[k]), SP_ENOTFOUND);
            ids[k] = ids[--n_ids];
        } else {
            struct sp_swap req = { .agent = a, .side = sp_rng_below(&rng, 2) ? SP_SELL : SP_BUY,
                                   .cause = SP_CAUSE_NOISE };
            req.amount_in = req.side == SP_BUY ? sp_rng_uniform(&rng) * 300 : sp_rng_uniform(&rng) * 3;
            double before_in = sp_balance(fx.sim, a, req.side == SP_BUY ? fx.usd : fx.eth);
            double quoted;
            const struct sp_market_ops *m = sp_market_ops_of(fx.sim, fx.venue);
            assert_int_equal(m->quote(sp_sim_entity_state(fx.sim, fx.venue), req.side,
                                      req.amount_in, &quoted), 0);
            struct sp_swap_result res;
            int rc = sp_market_swap(fx.sim, fx.venue, &req, &res);
            if (rc == SP_ERANGE) { n_rejected++; continue; }
            assert_int_equal(rc, 0);
            n_swaps++;
            assert_true(res.amount_in <= req.amount_in * (1 + 1e-12));
            assert_float_equal(res.amount_out, quoted, 1e-9);
            double after_in = sp_balance(fx.sim, a, req.side == SP_BUY ? fx.usd : fx.eth);
            /* Less when the agent met its own resting orders (self-trades are allowed). */
            assert_true(before_in - after_in <= res.amount_in + 1e-9);
        }
        check_book(&fx, ids, n_ids);
    }
    assert_true(n_limits > 1000 && n_cancels > 100 && n_swaps > 200);
    (void)n_rejected;
    /* Cancel everything: the venue must hold nothing (up to dust). */
    for (size_t i = 0; i < n_ids; i++) sp_book_cancel(fx.sim, fx.venue, ids[i]);
    double p[1], q[1];
    if (sp_book_depth(fx.sim, fx.venue, SP_BUY, p, q, 1) == 0 &&
        sp_book_depth(fx.sim, fx.venue, SP_SELL, p, q, 1) == 0) {
        assert_true(sp_balance(fx.sim, fx.venue, fx.eth) < 1e-9);
        assert_true(sp_balance(fx.sim, fx.venue, fx.usd) < 1e-7);
    }
    assert_int_equal(sp_ledger_check(fx.sim), 0);
    uint64_t n_trades = fx.sim->n_trades;
    bool drained;
    sp_sim_step(fx.sim, 0, 100, &drained);     /* the t = 0 samples */
    teardown(&fx);
    size_t n;
    double *t = tu_read_f64(fx.path, "/events/trades/t", &n);
    assert_true(n > 0);
    assert_int_equal(n, n_trades);
    assert_float_equal(tu_attr_f64(fx.path, "/summary", "n_fills_book"), (double)n, 0);
    free(t);
    double *ain = tu_read_f64(fx.path, "/events/trades/amount_in", &n);
    for (size_t i = 0; i < n; i++) assert_true(ain[i] > 0);
    free(ain);
    double *d1 = tu_read_f64(fx.path, "/markets/book_depth/bid_price_3", &n);
    assert_true(n >= 1);
    free(d1);
    double *bb = tu_read_f64(fx.path, "/markets/book/best_bid", &n);
    assert_true(n >= 1);
    free(bb);
}

static void test_lob_limit_escrows_fills_settle_and_cancel_refunds(void **state)
{
    (void)state;
    struct fixture fx = { 0 };
    setup(&fx, false);
    struct sp_sim *sim = fx.sim;
    sp_id a = fx.agent[0], b = fx.agent[1];
    sp_order_id id;
    double filled;
    /* A buy of 10 at 99.005 rounds down to 99.00 and escrows 990 USD. */
    assert_int_equal(sp_book_limit(sim, fx.venue, a, SP_BUY, 99.005, 10, SP_CAUSE_NOISE, &id,
                                   &filled), 0);
    assert_true(id != 0);
    assert_float_equal(filled, 0, 0);
    assert_float_equal(sp_balance(sim, a, fx.usd), 5000 - 990, 1e-9);
    assert_float_equal(sp_balance(sim, fx.venue, fx.usd), 990, 1e-9);
    double bid, bq, ask, aq;
    sp_book_best(sim, fx.venue, &bid, &bq, &ask, &aq);
    assert_float_equal(bid, 99.0, 1e-12);
    assert_float_equal(bq, 10, 1e-12);
    assert_true(isnan(ask));
    /* A sell of 4 at 98.995 (rounds up to 99.00) fills against it at 99. */
    sp_order_id id2;
    assert_int_equal(sp_book_limit(sim, fx.venue, b, SP_SELL, 98.995, 4, SP_CAUSE_VALUE, &id2,
                                   &filled), 0);
    assert_true(id2 == 0);
    assert_float_equal(filled, 4, 1e-12);
    assert_float_equal(sp_balance(sim, b, fx.eth), 46, 1e-9);
    assert_float_equal(sp_balance(sim, b, fx.usd), 5000 + 396, 1e-9);
    assert_float_equal(sp_balance(sim, a, fx.eth), 54, 1e-9);
    assert_float_equal(sp_book_order_qty(sim, fx.venue, id), 6, 1e-12);
    assert_float_equal(sp_balance(sim, fx.venue, fx.usd), 594, 1e-9);
    /* Cancel refunds the unfilled 6 x 99. */
    assert_int_equal(sp_book_cancel(sim, fx.venue, id), 0);
    assert_float_equal(sp_balance(sim, a, fx.usd), 5000 - 396, 1e-9);
    assert_float_equal(sp_balance(sim, fx.venue, fx.usd), 0, 1e-9);
    assert_int_equal(sp_book_cancel(sim, fx.venue, id), SP_ENOTFOUND);
    assert_float_equal(sp_book_order_qty(sim, fx.venue, id), 0, 0);
    /* Refusals move nothing: no funds, outside the window, below a lot. */
    assert_int_equal(sp_book_limit(sim, fx.venue, a, SP_BUY, 99, 1000, SP_CAUSE_NOISE, &id,
                                   &filled), SP_ERANGE);
    assert_int_equal(sp_book_limit(sim, fx.venue, a, SP_BUY, 150, 1, SP_CAUSE_NOISE, &id,
                                   &filled), SP_ERANGE);
    assert_int_equal(sp_book_limit(sim, fx.venue, a, SP_BUY, 99, 0.0001, SP_CAUSE_NOISE, &id,
                                   &filled), SP_EINVAL);
    assert_float_equal(sp_balance(sim, a, fx.usd), 5000 - 396, 1e-9);
    /* A market buy of 250 USD walks two ask levels (1 @ 101, 2 @ 102). */
    assert_int_equal(sp_book_limit(sim, fx.venue, b, SP_SELL, 101, 1, SP_CAUSE_NOISE, &id,
                                   &filled), 0);
    assert_int_equal(sp_book_limit(sim, fx.venue, b, SP_SELL, 102, 2, SP_CAUSE_NOISE, &id,
                                   &filled), 0);
    struct sp_swap req = { .agent = a, .side = SP_BUY, .amount_in = 250, .cause = SP_CAUSE_NOISE };
    struct sp_swap_result res;
    req.min_out = 10;
    assert_int_equal(sp_market_swap(sim, fx.venue, &req, &res), SP_ERANGE);   /* nothing moves */
    assert_float_equal(sp_balance(sim, a, fx.usd), 5000 - 396, 1e-9);
    req.min_out = 0;
    assert_int_equal(sp_market_swap(sim, fx.venue, &req, &res), 0);
    /* 101 + floor(149 / 0.102) lots at 102 = 1.46 ETH: 101 + 148.92 USD. */
    assert_float_equal(res.amount_out, 1 + 1.46, 1e-9);
    assert_float_equal(res.amount_in, 101 + 1.46 * 102, 1e-9);
    assert_true(isnan(res.price_before));          /* no bid: mid undefined */
    assert_int_equal(sp_ledger_check(sim), 0);
    /* IOC: a buy of 3 at 102 takes the 0.54 left at 102, and the rest is
     * dropped: nothing rests, nothing stays escrowed. */
    double usd_before = sp_balance(sim, a, fx.usd);
    assert_int_equal(sp_book_ioc(sim, fx.venue, a, SP_BUY, 102, 3, SP_CAUSE_ARBITRAGE, &filled), 0);
    assert_float_equal(filled, 0.54, 1e-9);
    assert_float_equal(sp_balance(sim, a, fx.usd), usd_before - 0.54 * 102, 1e-9);
    assert_float_equal(sp_balance(sim, fx.venue, fx.usd), 0, 1e-9);
    sp_book_best(sim, fx.venue, &bid, &bq, &ask, &aq);
    assert_true(isnan(ask) && isnan(bid));         /* the book is empty again */
    assert_int_equal(sp_ledger_check(sim), 0);
    teardown(&fx);
}

/* cumulative() integrates the mid in force: 100 over [0, 60 s), 99.75 over
 * [60 s, 120 s); the clock is advanced by the venue's own sample events. */
static void test_lob_cumulative_is_the_time_weighted_mid(void **state)
{
    (void)state;
    struct fixture fx = { 0 };
    setup(&fx, false);
    struct sp_sim *sim = fx.sim;
    const struct sp_market_ops *m = sp_market_ops_of(sim, fx.venue);
    const void *self = sp_sim_entity_state(sim, fx.venue);
    sp_order_id id;
    assert_int_equal(sp_book_limit(sim, fx.venue, fx.agent[0], SP_BUY, 99, 1, SP_CAUSE_NOISE, &id,
                                   NULL), 0);
    assert_int_equal(sp_book_limit(sim, fx.venue, fx.agent[1], SP_SELL, 101, 1, SP_CAUSE_NOISE, &id,
                                   NULL), 0);
    assert_float_equal(m->price(self), 100, 1e-12);
    bool drained;
    sp_sim_step(sim, 60 * SP_SEC, 1000, &drained);
    assert_int_equal(sp_sim_now(sim), 60 * SP_SEC);
    assert_float_equal(m->cumulative(self, 60 * SP_SEC), 6000, 1e-9);
    assert_int_equal(sp_book_limit(sim, fx.venue, fx.agent[1], SP_SELL, 100.5, 1, SP_CAUSE_NOISE,
                                   &id, NULL), 0);
    assert_float_equal(m->price(self), 99.75, 1e-12);
    sp_sim_step(sim, 120 * SP_SEC, 1000, &drained);
    double twap = m->cumulative(self, 120 * SP_SEC) / 120.0;   /* cumulative(0) = 0 */
    assert_float_equal(twap, (100 * 60 + 99.75 * 60) / 120.0, 1e-9);
    teardown(&fx);
}

static void test_lob_bad_input_names_file_line_and_key(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        { "type: lob, name: b, base: ETH, quote: USD, tick_size: 0, initial_price: 100",
          "tick_size", "must be >" },
        { "type: lob, name: b, base: ETH, quote: USD, tick_size: -1, initial_price: 100",
          "tick_size", "must be >" },
        { "type: lob, name: b, base: ETH, quote: USD, lot_size: 0, initial_price: 100",
          "lot_size", "must be >" },
        { "type: lob, name: b, base: ETH, quote: USDT, initial_price: 100",
          "quote", "unknown token 'USDT'" },
        { "type: lob, name: b, base: WBTC, quote: USD, initial_price: 100",
          "base", "unknown token 'WBTC'" },
        { "type: lob, name: b, base: ETH, quote: USD, initial_price: 100, tick_size: 1e-9",
          "tick_size", "ticks" },
        { "type: lob, name: b, base: ETH, quote: USD, initial_price: 100, window: 100%",
          "window", "must be <" },
        { "type: lob, name: b, base: ETH, quote: USD, initial_price: 100, tick_sise: 1",
          "tick_sise", "did you mean 'tick_size'" },
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
        int ok = d.text && strstr(d.text, "bad.yaml:9:") && strstr(d.text, bad[i][2]) &&
                 strstr(d.text, key);
        if (!ok) fprintf(stderr, "case %zu: %s\n", i, d.text ? d.text : "(none)");
        assert_true(ok);
        sp_diag_release(&d);
        sp_scenario_destroy(sc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lob_random_sequences_conserve_tokens_and_record_every_fill),
        cmocka_unit_test(test_lob_limit_escrows_fills_settle_and_cancel_refunds),
        cmocka_unit_test(test_lob_cumulative_is_the_time_weighted_mid),
        cmocka_unit_test(test_lob_bad_input_names_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
