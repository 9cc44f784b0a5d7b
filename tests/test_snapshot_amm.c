/*
 * test_snapshot_amm.c — checkpoints of the AMM venues (market/amm.c: types
 * "cpmm" and "stableswap").
 *
 * The world: a GBM ETH reference, a CPMM ETH/USDC pool whose LP shares are a
 * ledger token (kind lp), a StableSwap USDC/DAI pool with internal LP
 * holders, and "poker" agents defined here that, on their own random
 * streams, swap both ways (some as liquidation sales and propagating
 * arbitrage, so the venues' liquidation tags fill), size arbitrage against
 * the reference, add and remove liquidity, and read the TWAP (the price
 * cumulative) and the tag — so every part of the AMM payload is live at the
 * snapshot times and feeds back into the run.
 *
 * The proof is snapcheck_run (tests/snapcheck.h): one run to T equals a run
 * to t1, snapshot, restore in a fresh world (another process), run to T —
 * state bytes, datasets and /summary — at several t1.  Then damaged
 * payloads are refused with a message naming the venue.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "amm.h"
#include "reference.h"
#include "snapshot-internal.h"
#include "snapcheck.h"
#include "testutil.h"
#include "snaptest.h"

/* ---- a test agent that pokes an AMM ---------------------------------------------- */

enum { POKE = 1 };

struct poker_cfg {
    const char *venue;
    sp_time every;
};

struct poker {
    const struct poker_cfg *cfg;
    sp_id id, venue, ref;
    sp_token tok[2];
    sp_time every;
    uint64_t n_swaps, n_add, n_remove, n_fail;
    double twap_sum, gen_sum, shares;
    sp_time last_look;
    double last_cum;
};

static const struct sp_field poker_fields[] = {
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "The AMM.",
      offsetof(struct poker_cfg, venue), NULL, 0 },
    { "every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "30s", "time", "Poke interval.",
      offsetof(struct poker_cfg, every), NULL, 0 },
};

static const struct sp_schema poker_schema = {
    "agents[type: amm_poker]", "Test agent.", poker_fields, 2, sizeof(struct poker_cfg), NULL
};

static int poker_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    (void)sim;
    struct poker *p = self;
    p->cfg = cfg;
    p->id = id;
    p->every = p->cfg->every;
    return SP_OK;
}

static double frac(struct sp_rng *rng, double lo, double hi)
{
    return lo + (hi - lo) * sp_rng_uniform(rng);
}

static void poke(struct poker *p, struct sp_sim *sim, sp_time now)
{
    struct sp_rng *rng = sp_sim_rng(sim, p->id);
    const struct sp_market_ops *m = sp_market_ops_of(sim, p->venue);
    void *vs = sp_sim_entity_state(sim, p->venue);
    /* Read the TWAP since the last look and the liquidation tag. */
    double cum = m->cumulative(vs, now);
    if (now > p->last_look) p->twap_sum += (cum - p->last_cum) / sp_time_sec(now - p->last_look);
    p->last_cum = cum;
    int gen = sp_venue_liq_generation(sim, p->venue, p->last_look);
    if (gen > 0) p->gen_sum += gen;
    p->last_look = now;

    double u = sp_rng_uniform(rng);
    struct sp_swap req = { .agent = p->id, .cause = SP_CAUSE_NOISE };
    if (u < 0.55) {                                   /* a swap, some cascade-driven */
        req.side = sp_rng_uniform(rng) < 0.5 ? SP_BUY : SP_SELL;
        int in = req.side == SP_BUY ? 1 : 0;
        req.amount_in = sp_balance(sim, p->id, p->tok[in]) * frac(rng, 0.001, 0.03);
        double c = sp_rng_uniform(rng);
        if (c < 0.2) {
            req.cause = SP_CAUSE_LIQUIDATION;
            req.generation = 1 + (int)(3 * sp_rng_uniform(rng));
        } else if (c < 0.3) {
            req.cause = SP_CAUSE_ARBITRAGE;
            req.generation = 1 + (int)(2 * sp_rng_uniform(rng));
            req.propagates = true;
        }
    } else if (u < 0.7 && p->ref >= 0) {              /* arbitrage against the reference */
        enum sp_side side;
        double amt;
        if (sp_amm_arb_size(sim, p->venue, sp_reference_price(sim, p->ref), &side, &amt) == 0 &&
            amt > 0.0) {
            req.side = side;
            int in = side == SP_BUY ? 1 : 0;
            double have = sp_balance(sim, p->id, p->tok[in]);
            req.amount_in = amt < have ? amt : have;
            req.cause = SP_CAUSE_ARBITRAGE;
        }
    } else if (u < 0.85) {                            /* add liquidity */
        double s;
        double b = sp_balance(sim, p->id, p->tok[0]) * frac(rng, 0.01, 0.1);
        double q = sp_balance(sim, p->id, p->tok[1]) * frac(rng, 0.01, 0.1);
        if (sp_amm_add_liquidity(sim, p->venue, p->id, b, q, &s) == 0) {
            p->n_add++;
            p->shares += s;
        } else {
            p->n_fail++;
        }
    } else {                                          /* remove some */
        double have = sp_amm_lp_shares(sim, p->venue, p->id);
        double b, q;
        if (have > 0.0 &&
            sp_amm_remove_liquidity(sim, p->venue, p->id, have * frac(rng, 0.1, 0.9), &b, &q) == 0)
            p->n_remove++;
        else
            p->n_fail++;
    }
    if (req.amount_in > 0.0) {
        struct sp_swap_result res;
        if (sp_market_swap(sim, p->venue, &req, &res) == 0) p->n_swaps++;
        else p->n_fail++;
    }
}

static void poker_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct poker *p = self;
    if (ev->kind != POKE) return;
    poke(p, sim, ev->t);
    if (ev->t + p->every <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, ev->t + p->every);
}

static int poker_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct poker *p = self;
    sp_snap_put_array(w, 3);
    sp_snap_put_u64s(w, (const uint64_t[]){ p->n_swaps, p->n_add, p->n_remove, p->n_fail }, 4);
    sp_snap_put_f64s(w, (const double[]){ p->twap_sum, p->gen_sum, p->shares, p->last_cum }, 4);
    return sp_snap_put_i64(w, p->last_look);
}

static int poker_restore(void *self, struct sp_snapshot_reader *r)
{
    struct poker *p = self;
    uint64_t u[4];
    double f[4];
    sp_snap_get_array_n(r, 3);
    sp_snap_get_u64s(r, u, 4);
    sp_snap_get_f64s(r, f, 4);
    sp_snap_get_i64(r, &p->last_look);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    p->n_swaps = u[0], p->n_add = u[1], p->n_remove = u[2], p->n_fail = u[3];
    p->twap_sum = f[0], p->gen_sum = f[1], p->shares = f[2], p->last_cum = f[3];
    return SP_OK;
}

/* Resolve the venue and fund the wallet in start (every entity exists;
 * a restore then replaces the ledger). */
static int poker_start(void *self, struct sp_sim *sim)
{
    struct poker *p = self;
    p->venue = sp_sim_find(sim, p->cfg->venue);
    p->ref = sp_sim_find(sim, "reference_ETH");
    const struct sp_market_ops *m = p->venue >= 0 ? sp_market_ops_of(sim, p->venue) : NULL;
    if (!m) return SP_ECONFIG;
    m->pair(sp_sim_entity_state(sim, p->venue), &p->tok[0], &p->tok[1]);
    double price = m->price(sp_sim_entity_state(sim, p->venue));
    int rc = sp_mint(sim, p->tok[0], p->id, 200.0);
    if (!rc) rc = sp_mint(sim, p->tok[1], p->id, 200.0 * price);
    if (!rc && !sp_sim_schedule(sim, p->every, SP_PRIO_AGENT, p->id, POKE)) rc = SP_ENOMEM;
    return rc;
}

static const struct sp_module_ops poker_ops = {
    .kind = "agent", .type = "amm_poker", .summary = "test", .schema = &poker_schema,
    .state_size = sizeof(struct poker), .init = poker_init, .start = poker_start,
    .on_event = poker_on_event, .snapshot = poker_snapshot, .restore = poker_restore,
};

/* ---- fixtures ----------------------------------------------------------------------- */

#define T_END (6 * SP_HOUR)

static struct sp_registry *reg;
static char yaml_path[1024];

static void make_scenario(void)
{
    const char *dir = tu_tmpdir("snapshot_amm");
    snprintf(yaml_path, sizeof yaml_path, "%s/amm.yaml", dir);
    tu_write(yaml_path,
             "name: snap_amm\n"
             "seed: 11\n"
             "horizon: 6h\n"
             "output: {sample_every: 5m}\n"
             "tokens:\n"
             "  - {name: ETH, kind: base}\n"
             "  - {name: USDC, kind: stable}\n"
             "  - {name: DAI, kind: stable}\n"
             "  - {name: POOL_LP, kind: lp, issuer: pool}\n"
             "references:\n"
             "  - {type: gbm, asset: ETH, initial: 2000, volatility: 90%, step: 1m,\n"
             "     shocks: [{at: 2h, drop: 25%, over: 30m}]}\n"
             "markets:\n"
             "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 1000,\n"
             "     reserve_quote: 2000000, fee: 0.3%}\n"
             "  - {type: stableswap, name: curve, base: USDC, quote: DAI, reserve_base: 1e6,\n"
             "     reserve_quote: 1.2e6, amp: 80, fee: 0.04%, sample_every: 7m,\n"
             "     record_every_trade: true}\n"
             "agents:\n"
             "  - {type: amm_poker, name: a, venue: pool, every: 41s}\n"
             "  - {type: amm_poker, name: b, venue: pool, every: 67s}\n"
             "  - {type: amm_poker, name: c, venue: curve, every: 53s}\n"
             "  - {type: amm_poker, name: d, venue: curve, every: 97s}\n");
}

static int setup(void **state)
{
    (void)state;
    if (sp_registry_create(&reg, sp_registry_builtin()) || sp_registry_add(reg, &poker_ops))
        return -1;
    make_scenario();
    return 0;
}

/* Remove the scratch directory (scenario, checkpoints, outputs). */
static int teardown(void **state)
{
    (void)state;
    sp_registry_destroy(reg);
    st_rmdir_files(tu_tmpdir("snapshot_amm"));
    return 0;
}

/* ---- round trips --------------------------------------------------------------------- */

/* The pools are busy: trades both ways, liquidity moves, tags set. */
static void test_amm_world_is_busy(void **state)
{
    (void)state;
    struct st_world w;
    st_open(&w, yaml_path, reg);
    st_run_to(w.sim, T_END / 2);
    for (int k = 0; k < 4; k++) {
        char name[2] = { (char)('a' + k), 0 };
        const struct poker *p = sp_sim_entity_state(w.sim, sp_sim_find(w.sim, name));
        assert_true(p->n_swaps > 20 && p->n_add > 5 && p->n_remove > 2);
        assert_true(p->gen_sum > 0);
    }
    sp_id pool = sp_sim_find(w.sim, "pool"), curve = sp_sim_find(w.sim, "curve");
    assert_true(sp_amm_lp_shares(w.sim, curve, sp_sim_find(w.sim, "c")) > 0.0);
    assert_true(sp_amm_lp_shares(w.sim, pool, sp_sim_find(w.sim, "a")) > 0.0);
    st_close(&w);
}

/* In this process: the state bytes at T of one run and of a restore at t1. */
static void check_in_process(sp_time t1)
{
    struct st_world a, c;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, t1);
    size_t lh;
    void *half = st_encoded_at(yaml_path, reg, t1, &lh);
    st_run_to(a.sim, T_END);
    size_t la, lc;
    void *sa = st_state_bytes(a.sim, &la);
    struct sp_diag d = { 0 };
    int rc = st_restore_buffer(&c, half, lh, "half", reg, &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    st_run_to(c.sim, T_END);
    void *sc = st_state_bytes(c.sim, &lc);
    assert_int_equal(la, lc);
    assert_memory_equal(sa, sc, la);
    sp_diag_release(&d);
    free(sa); free(sc); free(half);
    st_close(&a);
    st_close(&c);
}

/* The acceptance check: another process, datasets and /summary too. */
static void check_at(sp_time t1)
{
    check_in_process(t1);
    struct snapcheck k = { .scenario = yaml_path, .reg = reg, .until = T_END, .at = t1,
                           .workdir = tu_tmpdir("snapshot_amm") };
    int rc = snapcheck_run(&k);
    if (rc) fprintf(stderr, "snapcheck at %lld us: %s\n", (long long)t1, k.msg);
    assert_int_equal(rc, 0);
}

static void test_amm_snapcheck_early(void **state) { (void)state; check_at(17 * SP_MIN); }
static void test_amm_snapcheck_mid(void **state) { (void)state; check_at(2 * SP_HOUR + 10 * SP_MIN); }
static void test_amm_snapcheck_late(void **state) { (void)state; check_at(4 * SP_HOUR + 41 * SP_SEC); }
static void test_amm_snapcheck_odd(void **state) { (void)state; check_at(17 * SP_MIN + 3 * SP_SEC); }

/* ---- damaged payloads ---------------------------------------------------------------- */

/* Restore `buf` and expect the venue's restore to refuse it with `needle`. */
static void expect_refused(unsigned char *buf, size_t len, const char *who, const char *needle)
{
    struct sp_diag d = { 0 };
    struct st_world w;
    st_fix_checksum(buf, len);
    assert_int_equal(st_restore_buffer(&w, buf, len, "amm.snap", reg, &d), SP_SNAPSHOT_EFORMAT);
    if (!strstr(d.text, who) || !strstr(d.text, needle)) fprintf(stderr, "%s", d.text);
    assert_non_null(strstr(d.text, who));
    assert_non_null(strstr(d.text, needle));
    st_close(&w);
    sp_diag_release(&d);
}

/* The venue's payload is an array whose first element is a bin of 9 f64,
 * reserves first: that bin (checked against the reserve r0). */
static unsigned char *payload_of(unsigned char *buf, size_t len, const char *venue,
                                 double r0)
{
    unsigned char head[11] = { 0xc4, 72 };
    memcpy(head + 2, &r0, 8);          /* little-endian hosts only, as the format */
    unsigned char *p = st_payload(buf, len, venue);
    assert_true(p[0] >= 0x90 && p[0] <= 0x9f);     /* a fixarray */
    assert_memory_equal(p + 1, head, 10);
    return p + 1;
}

static void test_amm_damaged_payloads_are_refused(void **state)
{
    (void)state;
    sp_time t = 3 * SP_HOUR;
    struct st_world w;
    st_open(&w, yaml_path, reg);
    st_run_to(w.sim, t);
    double rp[2], rc[2];
    sp_id pool = sp_sim_find(w.sim, "pool"), curve = sp_sim_find(w.sim, "curve");
    sp_amm_reserves(w.sim, pool, &rp[0], &rp[1]);
    sp_amm_reserves(w.sim, curve, &rc[0], &rc[1]);
    st_close(&w);
    size_t len;
    unsigned char *orig = st_encoded_at(yaml_path, reg, t, &len), *buf = malloc(len);

    /* A reserve that disagrees with the venue's ledger balance. */
    memcpy(buf, orig, len);
    unsigned char *p = payload_of(buf, len, "pool", rp[0]);
    double x = rp[0] * 1.5;
    memcpy(p + 2, &x, 8);
    expect_refused(buf, len, "entity 'pool' (market cpmm)", "ledger balance");

    /* A negative reserve. */
    memcpy(buf, orig, len);
    p = payload_of(buf, len, "curve", rc[0]);
    x = -1.0;
    memcpy(p + 2, &x, 8);
    expect_refused(buf, len, "entity 'curve' (market stableswap)", "not positive");

    /* An LP holder that does not exist: the holder ids follow the f64 bin
     * and cum_t (an int), in a 2-array: 0x92 0xc4 <8n> ids... */
    memcpy(buf, orig, len);
    p = payload_of(buf, len, "curve", rc[0]);
    unsigned char *ids = st_find_bytes(p + 74, 32, "\x92\xc4", 2);
    assert_non_null(ids);
    assert_true(ids[2] >= 16 && ids[2] % 8 == 0);   /* the venue and the pokers */
    uint64_t bad = 4000000;
    memcpy(ids + 3 + 8, &bad, 8);
    expect_refused(buf, len, "entity 'curve' (market stableswap)", "LP holder 1: entity 4000000");

    /* The venue is not the first holder. */
    memcpy(buf, orig, len);
    p = payload_of(buf, len, "pool", rp[0]);
    ids = st_find_bytes(p + 74, 32, "\x92\xc4\x08", 3);
    assert_non_null(ids);
    bad = 0;
    memcpy(ids + 3, &bad, 8);
    expect_refused(buf, len, "entity 'pool' (market cpmm)", "LP holder 0");

    free(buf);
    free(orig);
}

/* Random damage to a venue's payload behind a valid checksum: the restore
 * either accepts it or refuses it with a message; it never crashes. */
static void test_amm_random_payload_damage_never_crashes(void **state)
{
    (void)state;
    sp_time t = 2 * SP_HOUR + 20 * SP_MIN;
    struct st_world w;
    st_open(&w, yaml_path, reg);
    st_run_to(w.sim, t);
    double rp[2], rc[2];
    sp_amm_reserves(w.sim, sp_sim_find(w.sim, "pool"), &rp[0], &rp[1]);
    sp_amm_reserves(w.sim, sp_sim_find(w.sim, "curve"), &rc[0], &rc[1]);
    st_close(&w);
    size_t len;
    unsigned char *orig = st_encoded_at(yaml_path, reg, t, &len), *buf = malloc(len);
    size_t off[2] = {
        (size_t)(payload_of(orig, len, "pool", rp[0]) - orig),
        (size_t)(payload_of(orig, len, "curve", rc[0]) - orig),
    };
    struct sp_rng rng;
    sp_rng_init(&rng, 99, 0);
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(buf, orig, len);
        size_t base = off[i % 2] - 1;             /* the payload's array marker too */
        for (int k = 0; k < 1 + i % 3; k++) {
            size_t at = base + (size_t)(sp_rng_uniform(&rng) * 140);
            if (at < len - 8) buf[at] = (unsigned char)sp_rng_next(&rng);
        }
        st_fix_checksum(buf, len);
        struct sp_diag d = { 0 };
        struct sp_snapshot *s = NULL;
        if (sp_snapshot_load_buffer(&s, buf, len, "r.snap", &d) == 0) {
            struct st_world v;
            if (sp_snapshot_build_world(s, reg, NULL, 0, &v.sc, &v.cfg, &v.sim, &d) == 0) {
                assert_int_equal(sp_sim_start(v.sim), 0);
                if (sp_snapshot_restore(s, v.sim, &d)) {
                    refused++;
                    assert_non_null(d.text);
                }
                st_close(&v);
            }
        }
        sp_snapshot_destroy(s);
        sp_diag_release(&d);
    }
    assert_true(refused > 50);
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amm_world_is_busy),
        cmocka_unit_test(test_amm_snapcheck_early),
        cmocka_unit_test(test_amm_snapcheck_mid),
        cmocka_unit_test(test_amm_snapcheck_late),
        cmocka_unit_test(test_amm_snapcheck_odd),
        cmocka_unit_test(test_amm_damaged_payloads_are_refused),
        cmocka_unit_test(test_amm_random_payload_damage_never_crashes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
