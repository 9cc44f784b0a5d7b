/*
 * test_lob_agents.c — the order-book agents (agents/noise.c, market_maker.c,
 * value.c, momentum.c) on a "lob" venue in short lob_day-like runs: the run
 * completes, every token is conserved at every step, every agent type
 * trades, the same seed gives an identical /events/trades, market makers
 * keep |inventory deviation| within max_inventory, and noise traders also
 * trade on an AMM venue.
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
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "book.h"


static const char day[] =
    "horizon: 30m\n"
    "output: {sample_every: 1m, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ABM, kind: base}\n"
    "  - {name: USD, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, name: fundamental, asset: ABM, initial: 1000, volatility: 20%, step: 10s}\n"
    "markets:\n"
    "  - {type: lob, name: abm, base: ABM, quote: USD, tick_size: 0.01, lot_size: 1,\n"
    "     initial_price: 1000, window: 20%, max_orders: 20000, depth_levels: 3}\n"
    "agents:\n"
    "  - {type: noise, name: noise, count: 60, venue: abm, reference: fundamental,\n"
    "     cash: 100000, inventory: 100, mean_interval: {dist: uniform, low: 60, high: 180},\n"
    "     size: {dist: uniform, low: 1, high: 20}, offset: {dist: uniform, low: 0, high: 0.001}}\n"
    "  - {type: value, name: value, count: 10, venue: abm, reference: fundamental,\n"
    "     cash: 1000000, inventory: 1000, mean_interval: 30, noise: 0.002,\n"
    "     size: {dist: uniform, low: 5, high: 50}, aggression: 30%}\n"
    "  - {type: momentum, name: momentum, count: 3, venue: abm, cash: 1000000,\n"
    "     inventory: 1000, mean_interval: 5, size: {dist: uniform, low: 1, high: 10},\n"
    "     short_window: 3, long_window: 8}\n"
    "  - {type: market_maker, name: mm, count: 2, venue: abm, reference: fundamental,\n"
    "     cash: 10000000, inventory: 500, refresh: 10s, levels: 4, spread: 0.0003,\n"
    "     level_spacing: 0.0001, size: {dist: uniform, low: 20, high: 40}, max_inventory: 150}\n";

static struct sp_scenario *load(const char *yaml, struct sp_world_cfg *cfg)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/lob_agents.yaml", SP_BINARY_DIR);
    tu_write(path, yaml);
    int rc = sp_scenario_load(&sc, path, &d);
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), cfg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    sp_diag_release(&d);
    return sc;
}

static enum sp_run_status run_to(const char *yaml, const char *out)
{
    struct sp_world_cfg cfg;
    struct sp_scenario *sc = load(yaml, &cfg);
    struct sp_diag d = { 0 };
    struct sp_world_run req = { .output = out, .command_line = "test" };
    enum sp_run_status st = SP_RUN_FAILED;
    int rc = sp_world_run(sc, &cfg, &req, &st, &d);
    if (rc || d.n_errors) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
    return st;
}

static int same_dataset(const char *a, const char *b, const char *ds)
{
    size_t na, nb, ea, eb;
    void *x = tu_read_raw(a, ds, &na, &ea), *y = tu_read_raw(b, ds, &nb, &eb);
    int same = x && y && na == nb && ea == eb && na > 0 && !memcmp(x, y, na * ea);
    free(x);
    free(y);
    return same;
}

static void test_lob_day_run_completes_and_every_agent_type_trades(void **state)
{
    (void)state;
    static const char *const types[][2] = { { "market", "lob" }, { "agent", "noise" },
        { "agent", "market_maker" }, { "agent", "value" }, { "agent", "momentum" } };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        assert_non_null(sp_registry_find(sp_registry_builtin(), types[i][0], types[i][1]));
    const char *dir = tu_tmpdir("lob_agents");
    char a[1024], b[1024], c[1024];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    snprintf(c, sizeof c, "%s/c.h5", dir);
    assert_int_equal(run_to(day, a), SP_RUN_COMPLETE);
    char st[32];
    assert_string_equal(tu_status(a, st, sizeof st), "complete");
    /* Causes present: noise, value, momentum (takers); makers are hit. */
    size_t n, elem;
    int8_t *cause = tu_read_raw(a, "/events/trades/cause", &n, &elem);
    assert_int_equal(elem, 1);
    assert_true(n > 100);
    int seen[SP_CAUSE_COUNT] = { 0 };
    for (size_t i = 0; i < n; i++) {
        assert_true(cause[i] >= 0 && cause[i] < SP_CAUSE_COUNT);
        seen[cause[i]]++;
    }
    free(cause);
    assert_true(seen[SP_CAUSE_NOISE] > 0);
    assert_true(seen[SP_CAUSE_VALUE] > 0);
    assert_true(seen[SP_CAUSE_MOMENTUM] > 0);
    for (int k = 0; k < 2; k++) {
        char key[64];
        snprintf(key, sizeof key, "max_inventory_dev_mm_%d", k);
        double maxdev = tu_attr_f64(a, "/summary", key);
        snprintf(key, sizeof key, "inventory_dev_mm_%d", k);
        double dev = tu_attr_f64(a, "/summary", key);
        assert_true(maxdev > 0);                  /* its quotes were hit */
        assert_true(maxdev <= 150 + 1e-9);
        assert_true(fabs(dev) <= 150 + 1e-9);
    }
    assert_true(tu_attr_f64(a, "/summary", "n_orders_abm") > 100);
    assert_true(tu_attr_f64(a, "/summary", "n_cancels_abm") > 10);
    assert_float_equal(tu_attr_f64(a, "/summary", "n_fills_abm"), (double)n, 0);
    /* Same seed: identical trades; another seed: different ones. */
    assert_int_equal(run_to(day, b), SP_RUN_COMPLETE);
    static const char *const cols[] = { "t", "agent", "cause", "side", "amount_in", "amount_out",
                                        "price_before", "price_after", NULL };
    for (int i = 0; cols[i]; i++) {
        char ds[128];
        snprintf(ds, sizeof ds, "/events/trades/%s", cols[i]);
        assert_true(same_dataset(a, b, ds));
    }
    assert_true(same_dataset(a, b, "/markets/abm_depth/ask_qty_2"));
    char other[sizeof day + 32];
    snprintf(other, sizeof other, "seed: 2\n%s", day);
    assert_int_equal(run_to(other, c), SP_RUN_COMPLETE);
    assert_false(same_dataset(a, c, "/events/trades/amount_in"));
}

/* In process: step the run and check the ledger and the book after every
 * batch; supply never changes after the endowments. */
static void test_lob_agents_conserve_every_token_and_keep_the_book_uncrossed(void **state)
{
    (void)state;
    struct sp_world_cfg cfg;
    struct sp_scenario *sc = load(day, &cfg);
    struct sp_diag d = { 0 };
    struct sp_sim *sim;
    assert_int_equal(sp_world_build(&sim, &cfg, &d), 0);
    assert_int_equal(sp_sim_start(sim), 0);
    sp_token abm = sp_token_find(sim, "ABM"), usd = sp_token_find(sim, "USD");
    double s0 = sp_supply(sim, abm), s1 = sp_supply(sim, usd);
    assert_true(s0 > 0 && s1 > 0);
    sp_id venue = sp_sim_find(sim, "abm");
    sp_id mm[2] = { sp_sim_find(sim, "mm_0"), sp_sim_find(sim, "mm_1") };
    assert_true(mm[0] != SP_ID_NONE && mm[1] != SP_ID_NONE);
    bool drained = false;
    uint64_t total = 0;
    while (!drained) {
        total += sp_sim_step(sim, sp_sim_horizon(sim), 50, &drained);
        assert_int_equal(sp_sim_failure(sim, NULL), 0);
        assert_int_equal(sp_ledger_check(sim), 0);
        assert_float_equal(sp_supply(sim, abm), s0, 1e-9 * s0);
        assert_float_equal(sp_supply(sim, usd), s1, 1e-9 * s1);
        double bid, ask;
        sp_book_best(sim, venue, &bid, NULL, &ask, NULL);
        if (!isnan(bid) && !isnan(ask)) assert_true(bid < ask);
        /* A maker's wallet excludes the base escrowed in its asks, so it
         * bounds its inventory from above: never more than 500 + 150. */
        for (int k = 0; k < 2; k++) assert_true(sp_balance(sim, mm[k], abm) <= 650 + 1e-9);
    }
    assert_true(total > 1000);
    sp_sim_finish(sim);
    sp_sim_destroy(sim);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
}

static void test_noise_traders_swap_on_an_amm(void **state)
{
    (void)state;
    static const char amm[] =
        "horizon: 1h\n"
        "output: {sample_every: 5m, chunk_rows: 256}\n"
        "tokens:\n"
        "  - {name: ETH, kind: base}\n"
        "  - {name: USD, kind: stable}\n"
        "markets:\n"
        "  - {type: cpmm, name: pool, base: ETH, quote: USD, reserve_base: 1000,\n"
        "     reserve_quote: 2000000}\n"
        "agents:\n"
        "  - {type: noise, name: noise, count: 5, venue: pool, cash: 100000, inventory: 50,\n"
        "     mean_interval: 60, size: {dist: uniform, low: 0.1, high: 2}}\n";
    /* Through the CLI, which links every module: the AMM is another file. */
    const char *dir = tu_tmpdir("lob_agents_amm");
    char path[1024], out[1024], log[1024];
    snprintf(path, sizeof path, "%s/amm.yaml", dir);
    snprintf(out, sizeof out, "%s/amm.h5", dir);
    snprintf(log, sizeof log, "%s/amm.log", dir);
    tu_write(path, amm);
    char *const argv[] = { "spiral", "run", path, "-o", out, NULL };
    int code = tu_run(argv, log);
    char *text = tu_read(log);
    if (code == 2 && strstr(text, "cpmm")) { free(text); skip(); }   /* AMM not landed */
    if (code) fprintf(stderr, "%s", text);
    free(text);
    assert_int_equal(code, 0);
    size_t n, elem;
    int8_t *cause = tu_read_raw(out, "/events/trades/cause", &n, &elem);
    assert_true(n > 50);
    for (size_t i = 0; i < n; i++) assert_int_equal(cause[i], SP_CAUSE_NOISE);
    free(cause);
}

static void test_lob_agents_bad_venue_names_the_item(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        { "{type: noise, name: n, count: 3, venue: nope}", "venue 'nope' is not a market" },
        { "{type: market_maker, name: m, venue: fundamental}", "not an order book" },
        { "{type: value, name: v, venue: abm, reference: abm}", "not a reference process" },
        { "{type: momentum, name: x, venue: abm, short_window: 9, long_window: 5}",
          "short_window (9) must be less than long_window (5)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[4096];
        const char *agents = strstr(day, "agents:\n");
        snprintf(yaml, sizeof yaml, "%.*sagents:\n  - %s\n", (int)(agents - day), day, bad[i][0]);
        struct sp_diag d = { 0 };
        struct sp_scenario *sc;
        struct sp_world_cfg cfg;
        struct sp_sim *sim = NULL;
        assert_int_equal(sp_scenario_load_string(&sc, "bad.yaml", yaml, strlen(yaml), &d), 0);
        int rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, &d);
        if (!rc) rc = sp_world_build(&sim, &cfg, &d);
        assert_true(rc != 0);
        int ok = d.text && strstr(d.text, "bad.yaml:12:") && strstr(d.text, bad[i][1]);
        if (!ok) fprintf(stderr, "case %zu: %s\n", i, d.text ? d.text : "(none)");
        assert_true(ok);
        sp_diag_release(&d);
        sp_scenario_destroy(sc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lob_day_run_completes_and_every_agent_type_trades),
        cmocka_unit_test(test_lob_agents_conserve_every_token_and_keep_the_book_uncrossed),
        cmocka_unit_test(test_noise_traders_swap_on_an_amm),
        cmocka_unit_test(test_lob_agents_bad_venue_names_the_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
