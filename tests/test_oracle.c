/*
 * test_oracle.c — oracle modules, in process: exact publication times and
 * values of the heartbeat, chainlink (deviation + heartbeat) and osm rules on
 * a scripted price path; latency; TWAP against a hand-computed time-weighted
 * mean (reference and AMM sources); median; freeze and offset failures;
 * subscription events at delivery time; and bind-time errors for bad input.
 *
 * The scripted path: a GBM reference with volatility 0 and drift 0 is
 * constant, and a shock {at, drop, over} ramps it linearly; the reference
 * updates on its `step` grid (1m), so the price is piecewise constant,
 * changing only at whole minutes:  path(t) = initial x prod over shocks of
 * (1 - drop x clamp((g - at)/over, 0, 1)), g = t rounded down to the minute.
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
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "oracle.h"
#include "reference.h"

/* ---- scripted path -------------------------------------------------------- */

struct shock { double at, drop, over; };   /* seconds, fraction, seconds */

static double path(double initial, const struct shock *s, size_t n, double t)
{
    double g = floor(t / 60.0) * 60.0, f = 1.0;
    for (size_t i = 0; i < n; i++) {
        if (g <= s[i].at) continue;
        double frac = g >= s[i].at + s[i].over ? 1.0 : (g - s[i].at) / s[i].over;
        f *= 1.0 - s[i].drop * frac;
    }
    return initial * f;
}

/* 1000, ramp down 10 % over [10m, 15m]: 1000 to 10m, 980 at 11m, ..., 900 from 15m. */
static const struct shock ramp[] = { { 600, 0.10, 300 } };
#define RAMP_REF                                                                             \
    "references:\n"                                                                          \
    "  - {type: gbm, asset: ETH, initial: 1000, step: 1m,\n"                                 \
    "     shocks: [{at: 10m, drop: 10%, over: 5m}]}\n"

static double ramp_at(double t) { return path(1000, ramp, 1, t); }

/* ---- running scenarios ---------------------------------------------------- */

/* Load tests/oracle-NAME.yaml and bind with `reg` (NULL: the built-in
 * one): the code, diagnostics in w->d. */
static int world_bind(struct tw_world *w, const char *name, const char *yaml,
                      const struct sp_registry *reg)
{
    char nm[256];
    snprintf(nm, sizeof nm, "oracle-%s", name);
    return tw_bind(w, &(struct tw_opts){ .name = nm, .text = yaml, .reg = reg });
}

/* Bind, build and start, without output: step it with tw_advance. */
static void world_start(struct tw_world *w, const char *name, const char *yaml,
                        const struct sp_registry *reg)
{
    int rc = world_bind(w, name, yaml, reg);
    if (rc) sp_diag_print(&w->d, stderr);
    assert_int_equal(rc, 0);
    tw_start(w, &(struct tw_opts){ 0 });
}

/* Run to the horizon, recording to NAME.h5 in a fresh tests/tmp-oracle-PID (path in out). */
static void run_to_file(const char *name, const char *yaml, char *out, size_t size)
{
    struct tw_world w;
    int rc = world_bind(&w, name, yaml, NULL);
    if (rc) sp_diag_print(&w.d, stderr);
    assert_int_equal(rc, 0);
    snprintf(out, size, "%s/%s.h5", tu_tmpdir("oracle"), name);
    struct sp_world_run req = { .output = out, .command_line = "test_oracle" };
    enum sp_run_status st = SP_RUN_FAILED;
    rc = sp_world_run(w.sc, &w.cfg, &req, &st, &w.d);
    if (rc || w.d.n_errors) sp_diag_print(&w.d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(st, SP_RUN_COMPLETE);
    tw_release(&w);
}

struct rows { size_t n; double *t, *t_us, *price, *source, *delivered; };

static void rows_read(struct rows *r, const char *file, const char *oracle)
{
    char ds[256];
    size_t n[5], elem;
    snprintf(ds, sizeof ds, "/oracles/%s/t", oracle);
    r->t = tu_read_f64(file, ds, &n[0]);
    snprintf(ds, sizeof ds, "/oracles/%s/price", oracle);
    r->price = tu_read_f64(file, ds, &n[1]);
    snprintf(ds, sizeof ds, "/oracles/%s/source_price", oracle);
    r->source = tu_read_f64(file, ds, &n[2]);
    snprintf(ds, sizeof ds, "/oracles/%s/delivered_t", oracle);
    r->delivered = tu_read_f64(file, ds, &n[3]);
    snprintf(ds, sizeof ds, "/oracles/%s/t_us", oracle);
    r->t_us = tu_read_raw(file, ds, &n[4], &elem);
    assert_non_null(r->t);
    assert_int_equal(elem, 8);
    for (int i = 1; i < 5; i++) assert_int_equal(n[i], n[0]);
    r->n = n[0];
}

static void rows_release(struct rows *r)
{
    free(r->t); free(r->t_us); free(r->price); free(r->source); free(r->delivered);
}

/* Exactly these publications: times (s), prices and source prices. */
static void expect_rows(const struct rows *r, size_t n, const double *t, const double *price,
                        const double *source, double latency)
{
    if (r->n != n) {
        for (size_t i = 0; i < r->n; i++)
            fprintf(stderr, "  row %zu: t=%g price=%.17g source=%.17g\n", i, r->t[i],
                    r->price[i], r->source[i]);
    }
    assert_int_equal(r->n, n);
    const int64_t *tus = (const int64_t *)(const void *)r->t_us;
    for (size_t i = 0; i < n; i++) {
        assert_true(r->t[i] == t[i]);
        assert_true(tus[i] == (int64_t)llround(t[i] * 1e6));
        if (!(fabs(r->price[i] - price[i]) <= 1e-9 * price[i]) ||
            !(fabs(r->source[i] - source[i]) <= 1e-9 * source[i]))
            fail_msg("row %zu (t = %g): price %.17g source %.17g, expected %.17g and %.17g", i,
                     t[i], r->price[i], r->source[i], price[i], source[i]);
        assert_true(r->delivered[i] == t[i] + latency);
    }
}

/* ---- registry ------------------------------------------------------------- */

/* The built-in registry lists exactly these ops tables. */
extern const struct sp_module_ops sp_oracle_chainlink_ops, sp_oracle_osm_ops,
    sp_oracle_heartbeat_ops;

static void test_oracle_types_are_registered(void **state)
{
    (void)state;
    const struct sp_registry *reg = sp_registry_builtin();
    assert_ptr_equal(sp_registry_find(reg, "oracle", "chainlink"), &sp_oracle_chainlink_ops);
    assert_ptr_equal(sp_registry_find(reg, "oracle", "osm"), &sp_oracle_osm_ops);
    assert_ptr_equal(sp_registry_find(reg, "oracle", "heartbeat"), &sp_oracle_heartbeat_ops);
}

/* ---- update rules ---------------------------------------------------------- */

static void test_oracle_heartbeat_publishes_every_heartbeat_the_price_read(void **state)
{
    (void)state;
    char out[1024];
    run_to_file("heartbeat",
                "horizon: 30m\n"
                "tokens: [{name: ETH, kind: base}]\n"
                RAMP_REF
                "oracles:\n"
                "  - {type: heartbeat, name: hb, heartbeat: 4m,\n"
                "     source: {type: reference, of: reference_ETH}}\n", out, sizeof out);
    struct rows r;
    rows_read(&r, out, "hb");
    double t[8], p[8];
    for (int i = 0; i < 8; i++) {
        t[i] = 240.0 * i;
        p[i] = ramp_at(t[i]);
    }
    assert_true(p[3] == 960.0 || fabs(p[3] - 960.0) < 1e-9);   /* 12m: on the ramp */
    expect_rows(&r, 8, t, p, p, 0);
    rows_release(&r);
    assert_true(tu_attr_f64(out, "/summary", "n_updates_hb") == 8);
    /* Just before a publication the delivered price is 4 minutes old. */
    assert_true(tu_attr_f64(out, "/summary", "max_age_hb") == 240);
}

static void test_oracle_chainlink_publishes_on_deviation_or_heartbeat(void **state)
{
    (void)state;
    char out[1024];
    /* deviation 3 %: 11m (980, -2 %) no; 12m (960, -4 %) yes; 13m (940 vs 960,
     * -2.1 %) no; 14m (920, -4.2 %) yes; 15m (900 vs 920, -2.2 %) no; then the
     * heartbeat: 14m + 1h, 14m + 2h. */
    run_to_file("chainlink",
                "horizon: 3h\n"
                "tokens: [{name: ETH, kind: base}]\n"
                RAMP_REF
                "oracles:\n"
                "  - {type: chainlink, name: cl, deviation: 3%, heartbeat: 1h,\n"
                "     source: {type: reference, of: reference_ETH}}\n", out, sizeof out);
    struct rows r;
    rows_read(&r, out, "cl");
    const double t[] = { 0, 720, 840, 4440, 8040 };
    const double p[] = { 1000, 960, 920, 900, 900 };
    expect_rows(&r, 5, t, p, p, 0);
    rows_release(&r);
}

static void test_oracle_chainlink_defaults_are_eth_usd(void **state)
{
    (void)state;
    /* 0.5 %: every step of the ramp (2 %) publishes; 1h heartbeat after. */
    char out[1024];
    run_to_file("chainlink-defaults",
                "horizon: 2h\n"
                "tokens: [{name: ETH, kind: base}]\n"
                RAMP_REF
                "oracles:\n"
                "  - {type: chainlink, name: cl, source: {type: reference, of: reference_ETH}}\n",
                out, sizeof out);
    struct rows r;
    rows_read(&r, out, "cl");
    const double t[] = { 0, 660, 720, 780, 840, 900, 4500 };
    const double p[] = { 1000, 980, 960, 940, 920, 900, 900 };
    expect_rows(&r, 7, t, p, p, 0);
    rows_release(&r);
}

/* 1000; 900 from 31m; 450 from 91m. */
static const struct shock steps[] = { { 1800, 0.10, 60 }, { 5400, 0.50, 60 } };
#define STEPS_REF                                                                            \
    "references:\n"                                                                          \
    "  - {type: gbm, asset: ETH, initial: 1000, step: 1m,\n"                                 \
    "     shocks: [{at: 30m, drop: 10%, over: 1m}, {at: 90m, drop: 50%, over: 1m}]}\n"

static void test_oracle_osm_publishes_the_previous_hop_price(void **state)
{
    (void)state;
    char out[1024];
    const char yaml[] =
        "horizon: 4h\n"
        "tokens: [{name: ETH, kind: base}]\n"
        STEPS_REF
        "oracles:\n"
        "  - {type: osm, name: osm, hop: 1h, source: {type: reference, of: reference_ETH}}\n";
    run_to_file("osm", yaml, out, sizeof out);
    struct rows r;
    rows_read(&r, out, "osm");
    /* poke k: cur <- nxt (read at poke k-1), nxt <- source now. */
    const double t[] = { 0, 3600, 7200, 10800, 14400 };
    double p[5], s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = path(1000, steps, 2, t[i]);
        p[i] = path(1000, steps, 2, i ? t[i - 1] : 0);
    }
    assert_true(s[1] == 900 && s[2] == 450 && p[2] == 900);
    expect_rows(&r, 5, t, p, s, 0);
    rows_release(&r);

    /* What a consumer sees: at 1h59m the source has been 450 for 28 minutes,
     * the OSM still says 1000 (read at t = 0, published at 1h). */
    struct tw_world w;
    world_start(&w, "osm-live", yaml, NULL);
    sp_id osm = sp_sim_find(w.sim, "osm");
    assert_true(sp_is_oracle(w.sim, osm));
    tw_advance(&w, 7140 * SP_SEC);
    assert_true(sp_reference_price(w.sim, sp_sim_find(w.sim, "reference_ETH")) == 450);
    assert_true(sp_oracle_price(w.sim, osm) == 1000);
    assert_true(sp_oracle_updated_at(w.sim, osm) == SP_HOUR);
    tw_advance(&w, 2 * SP_HOUR);
    assert_true(sp_oracle_price(w.sim, osm) == 900);
    assert_true(sp_oracle_updated_at(w.sim, osm) == 2 * SP_HOUR);
    tw_release(&w);
    /* Just before the 2h poke, the delivered price (read at 0) is 2h old. */
    assert_true(tu_attr_f64(out, "/summary", "max_age_osm") == 7200);
}

static void test_oracle_osm_pokes_at_the_first_poll_after_each_hop(void **state)
{
    (void)state;
    /* poll 25m, hop 1h: polls at 0, 25m, 50m, 75m, 100m, 125m, 150m, 175m;
     * pokes when now >= zzz + hop with zzz the hop boundary of the last poke:
     * 75m (zzz <- 1h), 125m (zzz <- 2h); not 175m (< 2h + 1h). */
    char out[1024];
    run_to_file("osm-poll",
                "horizon: 3h\n"
                "tokens: [{name: ETH, kind: base}]\n"
                STEPS_REF
                "oracles:\n"
                "  - {type: osm, name: osm, poll: 25m, source: {type: reference, of: reference_ETH}}\n",
                out, sizeof out);
    struct rows r;
    rows_read(&r, out, "osm");
    const double t[] = { 0, 4500, 7500 };
    const double p[] = { 1000, 1000, 900 };
    const double s[] = { 1000, 900, 450 };
    expect_rows(&r, 3, t, p, s, 0);
    rows_release(&r);
}

/* ---- latency and subscriptions --------------------------------------------- */

/* A test consumer: subscribes to `oracle` in start, logs every event. */
struct listener_cfg { const char *oracle; };
enum { LISTEN_KIND = 7 };
struct listener {
    sp_id id;
    const struct listener_cfg *cfg;
    size_t n;
    sp_time t[16], pub[16];
    double price[16], seen[16];
    uint64_t from[16];
    unsigned prio[16];
};

static const struct sp_field listener_fields[] = {
    { "oracle", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "oracle to follow",
      offsetof(struct listener_cfg, oracle), NULL, 0 },
};
static const struct sp_schema listener_schema = {
    "agents[type: oracle_listener]", "test consumer", listener_fields, 1,
    sizeof(struct listener_cfg), NULL
};

static int listener_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    (void)sim;
    struct listener *l = self;
    l->id = id;
    l->cfg = cfg;
    return SP_OK;
}

static int listener_start(void *self, struct sp_sim *sim)
{
    struct listener *l = self;
    return sp_oracle_subscribe(sim, sp_sim_find(sim, l->cfg->oracle), l->id, LISTEN_KIND);
}

static void listener_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct listener *l = self;
    if (ev->kind != LISTEN_KIND || l->n == 16) return;
    l->t[l->n] = ev->t;
    l->price[l->n] = ev->data.f[0];
    l->from[l->n] = ev->data.u[1];
    l->pub[l->n] = ev->data.i[2];
    l->prio[l->n] = (unsigned)(ev->key >> 60);
    l->seen[l->n] = sp_oracle_price(sim, (sp_id)ev->data.u[1]);
    l->n++;
}

static const struct sp_module_ops listener_ops = {
    .kind = "agent", .type = "oracle_listener", .summary = "test consumer",
    .schema = &listener_schema, .state_size = sizeof(struct listener),
    .init = listener_init, .start = listener_start, .on_event = listener_on_event,
};

static void test_oracle_latency_delays_delivery_not_publication(void **state)
{
    (void)state;
    const char yaml[] =
        "horizon: 1h\n"
        "tokens: [{name: ETH, kind: base}]\n"
        RAMP_REF
        "oracles:\n"
        "  - {type: heartbeat, name: hb, heartbeat: 20m, latency: 30s,\n"
        "     source: {type: reference, of: reference_ETH}}\n";
    char out[1024];
    run_to_file("latency", yaml, out, sizeof out);
    struct rows r;
    rows_read(&r, out, "hb");
    const double t[] = { 0, 1200, 2400, 3600 };
    const double p[] = { 1000, 900, 900, 900 };
    expect_rows(&r, 4, t, p, p, 30);
    rows_release(&r);

    struct tw_world w;
    world_start(&w, "latency-live", yaml, NULL);
    sp_id hb = sp_sim_find(w.sim, "hb");
    tw_advance(&w, 29 * SP_SEC);
    assert_true(isnan(sp_oracle_price(w.sim, hb)));       /* nothing delivered yet */
    assert_true(sp_oracle_updated_at(w.sim, hb) == -1);
    tw_advance(&w, 30 * SP_SEC);
    assert_true(sp_oracle_price(w.sim, hb) == 1000);
    assert_true(sp_oracle_updated_at(w.sim, hb) == 0);
    tw_advance(&w, 20 * SP_MIN + 29 * SP_SEC);            /* published at 20m, in flight */
    assert_true(sp_oracle_price(w.sim, hb) == 1000);
    tw_advance(&w, 20 * SP_MIN + 30 * SP_SEC);
    assert_true(sp_oracle_price(w.sim, hb) == 900);
    assert_true(sp_oracle_updated_at(w.sim, hb) == 20 * SP_MIN);
    tw_release(&w);
}

static void test_oracle_subscribers_get_an_event_at_each_delivery(void **state)
{
    (void)state;
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    assert_int_equal(sp_registry_add(reg, &listener_ops), 0);
    struct tw_world w;
    world_start(&w, "subscribe",
                "horizon: 1h\n"
                "tokens: [{name: ETH, kind: base}]\n"
                RAMP_REF
                "oracles:\n"
                "  - {type: heartbeat, name: hb, heartbeat: 20m, latency: 30s,\n"
                "     source: {type: reference, of: reference_ETH}}\n"
                "  - {type: heartbeat, name: other, heartbeat: 5m,\n"
                "     source: {type: reference, of: reference_ETH}}\n"
                "agents:\n"
                "  - {type: oracle_listener, name: fan, oracle: hb}\n", reg);
    sp_id hb = sp_sim_find(w.sim, "hb");
    assert_int_equal(sp_oracle_subscribe(w.sim, sp_sim_find(w.sim, "fan"), hb, 1), SP_EINVAL);
    tw_advance(&w, SP_HOUR);
    const struct listener *l = sp_sim_entity_state(w.sim, sp_sim_find(w.sim, "fan"));
    /* Published at 0, 20m, 40m, 60m; delivered 30 s later; the last one
     * falls after the horizon. */
    assert_int_equal(l->n, 3);
    for (size_t i = 0; i < 3; i++) {
        sp_time pub = (sp_time)i * 20 * SP_MIN;
        assert_true(l->t[i] == pub + 30 * SP_SEC);
        assert_true(l->pub[i] == pub);
        assert_true(l->price[i] == ramp_at(sp_time_sec(pub)));
        assert_true(l->seen[i] == l->price[i]);          /* delivered before the event */
        assert_true(l->from[i] == hb);
        assert_true(l->prio[i] == SP_PRIO_ORACLE);
    }
    tw_release(&w);
    sp_registry_destroy(reg);
}

/* ---- sources ----------------------------------------------------------------- */

static void test_oracle_twap_of_a_reference_is_the_time_weighted_mean(void **state)
{
    (void)state;
    /* window 10m, published every 5m.  Per-minute prices of the ramp:
     *   [0, 11m): 1000; [11m, 12m): 980; 960; 940; 920; [15m, ...): 900.
     *   t = 5m, 10m: 1000 (less than a window at 5m: the mean since 0);
     *   t = 15m: [5m, 15m]  = (6 x 1000 + 980 + 960 + 940 + 920) / 10 = 980;
     *   t = 20m: [10m, 20m] = (1000 + 980 + 960 + 940 + 920 + 5 x 900) / 10 = 930;
     *   t = 25m: [15m, 25m] = 900. */
    char out[1024];
    run_to_file("twap",
                "horizon: 25m\n"
                "tokens: [{name: ETH, kind: base}]\n"
                RAMP_REF
                "oracles:\n"
                "  - {type: heartbeat, name: tw, heartbeat: 5m,\n"
                "     source: {type: twap, of: reference_ETH, window: 10m}}\n"
                "  - {type: heartbeat, name: tw20, heartbeat: 5m, poll: 20s,\n"
                "     source: {type: twap, of: reference_ETH, window: 10m}}\n"
                "  - {type: heartbeat, name: med, heartbeat: 5m, source: {type: median,\n"
                "     sources: [{type: reference, of: reference_ETH},\n"
                "               {type: twap, of: reference_ETH, window: 10m}]}}\n",
                out, sizeof out);
    const double t[] = { 0, 300, 600, 900, 1200, 1500 };
    const double p[] = { 1000, 1000, 1000, 980, 930, 900 };
    struct rows r;
    rows_read(&r, out, "tw");
    expect_rows(&r, 6, t, p, p, 0);
    rows_release(&r);
    rows_read(&r, out, "tw20");         /* poll 20 s divides both the window and the steps */
    expect_rows(&r, 6, t, p, p, 0);
    rows_release(&r);
    /* median of two = mean of (spot, twap) */
    double m[6];
    for (int i = 0; i < 6; i++) m[i] = 0.5 * (ramp_at(t[i]) + p[i]);
    rows_read(&r, out, "med");
    expect_rows(&r, 6, t, m, m, 0);
    rows_release(&r);
}

/* A test trader: at `at`, mints `amount` of the quote token and buys on `market`. */
struct trader_cfg { const char *market, *quote; sp_time at; double amount; };
struct trader { sp_id id; const struct trader_cfg *cfg; double price_after; };

static const struct sp_field trader_fields[] = {
    { "market", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "venue",
      offsetof(struct trader_cfg, market), NULL, 0 },
    { "quote", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "token paid",
      offsetof(struct trader_cfg, quote), NULL, 0 },
    { "at", SP_T_DURATION, SP_F_REQUIRED, 0, 0, NULL, NULL, "when",
      offsetof(struct trader_cfg, at), NULL, 0 },
    { "amount", SP_T_NUMBER, SP_F_REQUIRED, 0, 0, NULL, NULL, "quote paid",
      offsetof(struct trader_cfg, amount), NULL, 0 },
};
static const struct sp_schema trader_schema = {
    "agents[type: test_trader]", "test trader", trader_fields, 4,
    sizeof(struct trader_cfg), NULL
};

static int trader_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    (void)sim;
    struct trader *tr = self;
    tr->id = id;
    tr->cfg = cfg;
    return SP_OK;
}

static int trader_start(void *self, struct sp_sim *sim)
{
    struct trader *tr = self;
    return sp_sim_schedule(sim, tr->cfg->at, SP_PRIO_AGENT, tr->id, 1) ? SP_OK : SP_ENOMEM;
}

static void trader_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    (void)ev;
    struct trader *tr = self;
    assert_int_equal(sp_mint(sim, sp_token_find(sim, tr->cfg->quote), tr->id, tr->cfg->amount), 0);
    struct sp_swap req = { .agent = tr->id, .side = SP_BUY, .amount_in = tr->cfg->amount,
                           .cause = SP_CAUSE_SCRIPTED };
    struct sp_swap_result res;
    assert_int_equal(sp_market_swap(sim, sp_sim_find(sim, tr->cfg->market), &req, &res), 0);
    tr->price_after = res.price_after;
}

static const struct sp_module_ops trader_ops = {
    .kind = "agent", .type = "test_trader", .summary = "test trader",
    .schema = &trader_schema, .state_size = sizeof(struct trader),
    .init = trader_init, .start = trader_start, .on_event = trader_on_event,
};

static void test_oracle_twap_of_an_amm_uses_its_price_cumulative(void **state)
{
    (void)state;
    if (!sp_registry_find(sp_registry_builtin(), "market", "cpmm")) skip();
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    assert_int_equal(sp_registry_add(reg, &trader_ops), 0);
    struct tw_world w;
    world_start(&w, "twap-amm",
                "horizon: 30m\n"
                "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
                "markets:\n"
                "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 100,\n"
                "     reserve_quote: 100000, fee: 0.3%}\n"
                "oracles:\n"
                "  - {type: heartbeat, name: tw, heartbeat: 1m, poll: 10s,\n"
                "     source: {type: twap, of: pool, window: 10m}}\n"
                "  - {type: heartbeat, name: spot, heartbeat: 1m, source: {type: spot, of: pool}}\n"
                "agents:\n"
                "  - {type: test_trader, name: buyer, market: pool, quote: USDC, at: 10m,\n"
                "     amount: 10000}\n", reg);
    /* Uniswap v2 getAmountOut: out = in (1 - f) R_out / (R_in + in (1 - f)); the
     * fee stays in the pool, so the price after is (R_q + in) / (R_b - out). */
    double in = 10000, net = in * (1 - 0.003), out = net * 100 / (100000 + net);
    double p1 = (100000 + in) / (100 - out);
    sp_id tw = sp_sim_find(w.sim, "tw"), spot = sp_sim_find(w.sim, "spot");
    /* The 10m poll runs before the 10m trade (oracle priority < agent). */
    tw_advance(&w, 10 * SP_MIN);
    assert_true(sp_oracle_price(w.sim, tw) == 1000);
    assert_true(sp_oracle_price(w.sim, spot) == 1000);
    tw_advance(&w, 11 * SP_MIN);
    assert_true(fabs(sp_oracle_price(w.sim, spot) - p1) < 1e-9 * p1);
    double want = (9 * 1000.0 + 1 * p1) / 10;
    assert_true(fabs(sp_oracle_price(w.sim, tw) - want) < 1e-9 * want);
    tw_advance(&w, 15 * SP_MIN);
    want = (1000.0 + p1) / 2;                             /* 5 minutes at each price */
    assert_true(fabs(sp_oracle_price(w.sim, tw) - want) < 1e-9 * want);
    tw_advance(&w, 20 * SP_MIN);
    assert_true(fabs(sp_oracle_price(w.sim, tw) - p1) < 1e-9 * p1);
    tw_release(&w);
    sp_registry_destroy(reg);
}

/* ---- failures ------------------------------------------------------------------ */

static void test_oracle_freeze_and_offset_failures(void **state)
{
    (void)state;
    /* Path: 1000, 900 from 31m.  Heartbeat 10m.  Frozen [25m, 45m): 30m and
     * 40m are skipped, 45m publishes (25 min since the last).  Offset -5 %
     * over [50m, 70m): 55m and 65m publish 855 (source 900); 75m, 900. */
    const char yaml[] =
        "horizon: 80m\n"
        "tokens: [{name: ETH, kind: base}]\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 1000, shocks: [{at: 30m, drop: 10%, over: 1m}]}\n"
        "oracles:\n"
        "  - {type: heartbeat, name: hb, heartbeat: 10m, source: {type: reference, of: reference_ETH},\n"
        "     failures: [{from: 25m, to: 45m, mode: freeze},\n"
        "                {from: 50m, to: 70m, mode: offset, offset: -5%}]}\n";
    char out[1024];
    run_to_file("failures", yaml, out, sizeof out);
    struct rows r;
    rows_read(&r, out, "hb");
    const double t[] = { 0, 600, 1200, 2700, 3300, 3900, 4500 };
    const double p[] = { 1000, 1000, 1000, 900, 855, 855, 900 };
    const double s[] = { 1000, 1000, 1000, 900, 900, 900, 900 };
    expect_rows(&r, 7, t, p, s, 0);
    rows_release(&r);
    /* Frozen at 1000 while the source is 900: 1/9; offset: 45/900. */
    assert_true(fabs(tu_attr_f64(out, "/summary", "max_deviation_hb") - 100.0 / 900) < 1e-15);
    assert_true(tu_attr_f64(out, "/summary", "n_updates_hb") == 7);

    struct tw_world w;
    world_start(&w, "failures-live", yaml, NULL);
    sp_id hb = sp_sim_find(w.sim, "hb");
    tw_advance(&w, 44 * SP_MIN);                          /* frozen: the delivered price stays */
    assert_true(sp_oracle_price(w.sim, hb) == 1000);
    assert_true(sp_oracle_updated_at(w.sim, hb) == 20 * SP_MIN);
    tw_release(&w);
}

static void test_oracle_chainlink_after_a_freeze_publishes_at_once(void **state)
{
    (void)state;
    char out[1024];
    run_to_file("freeze-chainlink",
                "horizon: 1h\n"
                "tokens: [{name: ETH, kind: base}]\n"
                "references:\n"
                "  - {type: gbm, asset: ETH, initial: 1000, shocks: [{at: 30m, drop: 10%, over: 1m}]}\n"
                "oracles:\n"
                "  - {type: chainlink, name: cl, source: {type: reference, of: reference_ETH},\n"
                "     failures: [{from: 20m, to: 40m}]}\n", out, sizeof out);
    struct rows r;
    rows_read(&r, out, "cl");
    const double t[] = { 0, 2400 };
    const double p[] = { 1000, 900 };
    expect_rows(&r, 2, t, p, p, 0);
    rows_release(&r);
}

/* ---- bad input ------------------------------------------------------------------- */

static void test_oracle_bad_input_is_reported_with_file_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *oracle;       /* one line, line 6 of the file */
        const char *key, *message;
    } cases[] = {
        { "{type: chainlink, source: {type: twap, of: reference_ETH, window: 0}}",
          "oracles.0.source.window", "must be > 0" },
        { "{type: chainlink, source: {type: twap, of: reference_ETH}}",
          "oracles.0.source", "type twap needs `window`" },
        { "{type: chainlink, source: {type: reference, of: reference_ETX}}",
          "oracles.0.source.of", "unknown source entity 'reference_ETX' (did you mean 'reference_ETH'?)" },
        { "{type: osm, source: {type: reference, of: nothing_like_it}}",
          "oracles.0.source.of", "no reference process or market has that name" },
        { "{type: osm, source: {type: spot, of: reference_ETH}}",
          "oracles.0.source.of", "is a reference process, not a market" },
        { "{type: osm, source: {type: median, sources: [{type: twap, of: reference_ETH, window: 1m}, {type: mid, of: reference_ET}]}}",
          "oracles.0.source.sources.1.of", "did you mean 'reference_ETH'?" },
        { "{type: osm, source: {type: median}}",
          "oracles.0.source", "type median needs `sources`" },
        { "{type: osm, source: {of: reference_ETH}}",
          "oracles.0.source", "missing required key 'type'" },
        { "{type: osm}", "oracles.0", "missing required key 'source'" },
        { "{type: heartbeat, source: {type: reference, of: reference_ETH}, failures: [{from: 2h, to: 1h}]}",
          "oracles.0.failures.0.to", "must end after it starts" },
        { "{type: heartbeat, source: {type: reference, of: reference_ETH}, failures: [{from: 1h, to: 1h, mode: offset, offset: 1%}]}",
          "oracles.0.failures.0.to", "must end after it starts" },
        { "{type: heartbeat, source: {type: reference, of: reference_ETH}, failures: [{from: 1h, to: 2h, offset: 5%}]}",
          "oracles.0.failures.0.offset", "applies only to mode offset" },
        { "{type: chainlink, source: {type: reference, of: reference_ETH}, latency: -1s}",
          "oracles.0.latency", "negative" },
        { "{type: chainlink, source: {type: reference, of: reference_ETH}, deviation: -1%}",
          "oracles.0.deviation", "must be >= 0" },
        { "{type: chainlink, source: {type: reference, of: reference_ETH}, poll: 0}",
          "oracles.0.poll", "must be > 0" },
        { "{type: osm, source: {type: reference, of: reference_ETH}, hop: 0}",
          "oracles.0.hop", "must be > 0" },
        { "{type: chainlink, source: {type: reference, of: reference_ETH, window: 5m}}",
          "oracles.0.source.window", "applies only to type twap" },
        { "{type: chainlink, source: {type: reference, of: reference_ETH}, heartbaet: 1h}",
          "oracles.0.heartbaet", "did you mean 'heartbeat'?" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024], where[1200];
        snprintf(yaml, sizeof yaml,
                 "horizon: 1h\n"
                 "tokens: [{name: ETH, kind: base}]\n"
                 "references:\n"
                 "  - {type: gbm, asset: ETH, initial: 1000}\n"
                 "oracles:\n"
                 "  - %s\n", cases[i].oracle);
        struct tw_world w;
        int rc = world_bind(&w, "bad", yaml, NULL);
        const char *text = tw_diag(&w);
        snprintf(where, sizeof where, "%s/tests/oracle-bad.yaml:6:", SP_BINARY_DIR);
        if (rc != SP_ECONFIG || !strstr(text, where) || !strstr(text, cases[i].key) ||
            !strstr(text, cases[i].message))
            fail_msg("case %zu (%s): rc %d, got:\n%s", i, cases[i].oracle, rc, text);
        tw_release(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_types_are_registered),
        cmocka_unit_test(test_oracle_heartbeat_publishes_every_heartbeat_the_price_read),
        cmocka_unit_test(test_oracle_chainlink_publishes_on_deviation_or_heartbeat),
        cmocka_unit_test(test_oracle_chainlink_defaults_are_eth_usd),
        cmocka_unit_test(test_oracle_osm_publishes_the_previous_hop_price),
        cmocka_unit_test(test_oracle_osm_pokes_at_the_first_poll_after_each_hop),
        cmocka_unit_test(test_oracle_latency_delays_delivery_not_publication),
        cmocka_unit_test(test_oracle_subscribers_get_an_event_at_each_delivery),
        cmocka_unit_test(test_oracle_twap_of_a_reference_is_the_time_weighted_mean),
        cmocka_unit_test(test_oracle_twap_of_an_amm_uses_its_price_cumulative),
        cmocka_unit_test(test_oracle_freeze_and_offset_failures),
        cmocka_unit_test(test_oracle_chainlink_after_a_freeze_publishes_at_once),
        cmocka_unit_test(test_oracle_bad_input_is_reported_with_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
