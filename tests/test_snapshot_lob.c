/*
 * test_snapshot_lob.c — checkpoints of the order book venue (markets type
 * lob) and its agents (market_maker, noise, value, momentum).
 *
 * The world: a GBM fundamental, one book with a small price window and a
 * few hundred order slots (so slots are reused many times and the free
 * list is well shuffled), noise traders whose limit orders expire (cancel
 * events carrying order ids), value traders (an open order each), momentum
 * traders with short windows (a full ring early) and two market makers
 * (ladders cancelled and replaced every refresh).  At any time the book
 * holds resting orders at many levels with several orders per level.
 *
 * The proof: a run to T in one go equals a run to T1, snapshot, restore in
 * a fresh world, run to T — the encoded state at T byte for byte (in this
 * process, at several T1), and every output dataset and /summary through
 * tests/snapcheck.h.  Then the module checks: payloads damaged behind a
 * valid checksum (an order id that does not match its slot, a free-list
 * slot out of range, a momentum ring position past its window) are
 * refused with a message naming the entity.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "book.h"
#include "lob.h"
#include "snapshot-internal.h"
#include "snapcheck.h"
#include "testutil.h"
#include "snaptest.h"

#define MIN ((sp_time)60 * 1000000)
#define T_END (90 * MIN)

static const char scenario[] =
    "name: snap_lob\n"
    "seed: 7\n"
    "horizon: 90m\n"
    "output: {sample_every: 1m, chunk_rows: 256}\n"
    "tokens:\n"
    "  - {name: ABM, kind: base}\n"
    "  - {name: USD, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, name: fundamental, asset: ABM, initial: 100, volatility: 30%, step: 5s}\n"
    "markets:\n"
    "  - {type: lob, name: abm, base: ABM, quote: USD, tick_size: 0.01, lot_size: 1,\n"
    "     initial_price: 100, window: 20%, max_orders: 400, sample_every: 30s,\n"
    "     depth_levels: 3, depth_every: 45s}\n"
    "agents:\n"
    "  - {type: noise, name: noise, count: 40, venue: abm, reference: fundamental,\n"
    "     cash: 100000, inventory: 500, mean_interval: 40, size: {dist: uniform, low: 1, high: 20},\n"
    "     market_fraction: 30%, offset: {dist: uniform, low: 0, high: 0.003}, order_life: 4m}\n"
    "  - {type: value, name: value, count: 8, venue: abm, reference: fundamental,\n"
    "     cash: 1000000, inventory: 2000, mean_interval: 30,\n"
    "     noise: {dist: uniform, low: 0.0005, high: 0.003}, size: {dist: uniform, low: 5, high: 30},\n"
    "     aggression: 20%}\n"
    "  - {type: momentum, name: mom, count: 3, venue: abm, cash: 1000000, inventory: 2000,\n"
    "     mean_interval: 15, size: {dist: uniform, low: 1, high: 5}, short_window: 3,\n"
    "     long_window: 8}\n"
    "  - {type: market_maker, name: mm, count: 2, venue: abm, reference: fundamental,\n"
    "     cash: 10000000, inventory: 5000, refresh: 20s, levels: 4, spread: 0.001,\n"
    "     level_spacing: 0.0005, size: 10, skew: 0.001, max_inventory: 3000}\n";

static char yaml_path[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(yaml_path, sizeof yaml_path, "%s/snap_lob.yaml", tu_tmpdir("snapshot_lob"));
    tu_write(yaml_path, scenario);
    return 0;
}

/* Restore `buf` into a new world; returns the restore's code, message in *d. */
static int restore(struct st_world *w, const void *buf, size_t len, struct sp_diag *d)
{
    return st_restore_buffer(w, buf, len, "lob.snap", sp_registry_builtin(), d);
}

static struct sp_lob_stats book_stats(struct sp_sim *sim)
{
    /* Through the public book API: resting orders per side. */
    struct sp_lob_stats st = { 0 };
    sp_id v = sp_sim_find(sim, "abm");
    double p[400], q[400];
    for (int s = 0; s < 2; s++) {
        size_t n = sp_book_depth(sim, v, s ? SP_SELL : SP_BUY, p, q, 400);
        for (size_t i = 0; i < n; i++) st.resting[s] += (int64_t)q[i];
    }
    return st;
}

/* Engine state and every entity's payload the same bytes (sp_snapshot_diff). */
static void expect_same_state(const void *a, size_t la, const void *b, size_t lb)
{
    struct sp_snapshot *sa, *sb;
    struct sp_diag d = { 0 };
    char msg[1024] = "";
    assert_int_equal(sp_snapshot_load_buffer(&sa, a, la, "a.snap", &d), 0);
    assert_int_equal(sp_snapshot_load_buffer(&sb, b, lb, "b.snap", &d), 0);
    int diff = sp_snapshot_diff(sa, sb, msg, sizeof msg);
    if (diff) fprintf(stderr, "%s\n", msg);
    assert_int_equal(diff, 0);
    sp_snapshot_destroy(sa);
    sp_snapshot_destroy(sb);
}

/* ---- round trips --------------------------------------------------------------------- */

/* Run to t1 (paused), encode, restore in a fresh world: its state
 * re-encodes to the same bytes; run it to T: the same state as the run in
 * one go (`one`). */
static void roundtrip_at(sp_time t1, const unsigned char *one, size_t lone)
{
    struct st_world b, c;
    st_open(&b, yaml_path, sp_registry_builtin());
    st_run(b.sim, t1, true);
    struct sp_lob_stats st = book_stats(b.sim);
    assert_true(st.resting[0] > 0 && st.resting[1] > 0);   /* a busy book */
    size_t lb;
    unsigned char *sb = st_encode(&b, &lb);
    st_close(&b);

    struct sp_diag d = { 0 };
    int rc = restore(&c, sb, lb, &d);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    assert_int_equal(rc, 0);
    size_t lr;
    unsigned char *sr = st_encode(&c, &lr);
    expect_same_state(sb, lb, sr, lr);
    st_run_to(c.sim, T_END);
    size_t lc;
    unsigned char *sc = st_encode(&c, &lc);
    expect_same_state(one, lone, sc, lc);
    free(sb);
    free(sr);
    free(sc);
    st_close(&c);
}

static void test_snapshot_lob_restore_then_run_equals_one_run(void **state)
{
    (void)state;
    struct st_world a;
    st_open(&a, yaml_path, sp_registry_builtin());
    st_run_to(a.sim, T_END);
    size_t la;
    unsigned char *sa = st_encode(&a, &la);
    st_close(&a);
    static const sp_time at[] = { 3 * MIN + 17, 20 * MIN, 44 * MIN + 123457, 71 * MIN + 1 };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) roundtrip_at(at[i], sa, la);
    free(sa);
}

/* The acceptance check (tests/snapcheck.h): the restore in a new process,
 * through sp_world_run / sp_world_resume, and every dataset and /summary;
 * at sample times and between events. */
static void test_snapshot_lob_snapcheck(void **state)
{
    (void)state;
    static const sp_time at[] = { 90 * 1000000, 10 * MIN, 37 * MIN + 29999999, 66 * MIN + 1 };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        struct snapcheck k = { .scenario = yaml_path, .at = at[i],
                               .workdir = tu_tmpdir("snapshot_lob") };
        int bad = snapcheck_run(&k);
        if (bad) fprintf(stderr, "at %lld us: %s\n", (long long)at[i], k.msg);
        assert_int_equal(bad, 0);
    }
}

/* ---- damaged payloads -------------------------------------------------------------- */

/* The data of the bin at p; *n its length. */
static unsigned char *bin_data(unsigned char *p, size_t *n)
{
    if (p[0] == 0xc4) { *n = p[1]; return p + 2; }
    if (p[0] == 0xc5) { *n = (size_t)p[1] << 8 | p[2]; return p + 3; }
    assert_int_equal(p[0], 0xc6);
    *n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    return p + 5;
}

static void expect_refused(unsigned char *buf, size_t len, const char *entity, const char *msg)
{
    st_fix_checksum(buf, len);
    struct st_world w;
    struct sp_diag d = { 0 };
    assert_int_equal(restore(&w, buf, len, &d), SP_SNAPSHOT_EFORMAT);
    if (!strstr(d.text, entity) || !strstr(d.text, msg)) fprintf(stderr, "%s\n", d.text);
    assert_non_null(strstr(d.text, entity));
    assert_non_null(strstr(d.text, msg));
    sp_diag_release(&d);
    st_close(&w);
}

static void test_snapshot_lob_refuses_damaged_payloads(void **state)
{
    (void)state;
    struct st_world a;
    st_open(&a, yaml_path, sp_registry_builtin());
    st_run(a.sim, 30 * MIN, true);
    size_t len;
    unsigned char *orig = st_encode(&a, &len);
    st_close(&a);
    unsigned char *buf = malloc(len);

    /* The venue: [book = [ids, free, live, volume, notional, n_fills], owners, ...]. */
    memcpy(buf, orig, len);
    unsigned char *p = st_payload(buf, len, "abm");
    assert_int_equal(p[0], 0x97);
    assert_int_equal(p[1], 0x96);
    size_t n;
    unsigned char *ids = bin_data(p + 2, &n);
    assert_true(n >= 16 && n % 8 == 0);
    ids[8] ^= 0x5;                              /* slot 1's id names another slot */
    expect_refused(buf, len, "entity 'abm' (market lob)", "does not match its slot");

    memcpy(buf, orig, len);
    p = st_payload(buf, len, "abm");
    ids = bin_data(p + 2, &n);
    unsigned char *fr = bin_data(ids + n, &n);
    assert_true(n >= 8);
    fr[3] = 0x40;                               /* a free slot far past the pool */
    expect_refused(buf, len, "entity 'abm' (market lob)", "free list slot out of range");

    memcpy(buf, orig, len);
    p = st_payload(buf, len, "abm");
    ids = bin_data(p + 2, &n);
    fr = bin_data(ids + n, &n);
    unsigned char *live = bin_data(fr + n, &n);
    assert_true(n >= 48);
    memcpy(live + 24, live, 8);                 /* the second order in the first's slot */
    expect_refused(buf, len, "entity 'abm' (market lob)", "slot out of range or repeated");

    /* A momentum trader: [head, ring]; head past the window of 8. */
    memcpy(buf, orig, len);
    p = st_payload(buf, len, "mom_0");
    assert_int_equal(p[0], 0x92);
    assert_true(p[1] < 8);
    p[1] = 9;
    expect_refused(buf, len, "entity 'mom_0' (agent momentum)", "price ring");

    free(buf);
    free(orig);
}

/* Random damage inside the venue's and the agents' payloads, behind a
 * valid checksum: refused at load or at restore, or accepted as some other
 * valid state that then runs — never a crash (run it under the sanitizers). */
static void test_snapshot_lob_survives_random_damage(void **state)
{
    (void)state;
    struct st_world a;
    st_open(&a, yaml_path, sp_registry_builtin());
    st_run(a.sim, 25 * MIN, true);
    size_t len;
    unsigned char *orig = st_encode(&a, &len);
    st_close(&a);
    unsigned char *buf = malloc(len);
    static const char *const names[] = { "abm", "mm_1", "mom_2", "value_3", "noise_4" };
    struct sp_rng rng;
    sp_rng_init(&rng, 11, 12);
    int refused = 0, ran = 0;
    for (int k = 0; k < 400; k++) {
        memcpy(buf, orig, len);
        const char *name = names[k % 5];
        size_t at = (size_t)(st_payload(buf, len, name) - buf);
        size_t span = !strcmp(name, "abm") ? 600 : 40;
        if (at + span > len - 8) span = len - 8 - at;
        for (int j = 0, n = 1 + (int)sp_rng_below(&rng, 3); j < n; j++)
            buf[at + sp_rng_below(&rng, span)] = (unsigned char)sp_rng_next(&rng);
        st_fix_checksum(buf, len);
        struct sp_diag d = { 0 };
        struct sp_snapshot *s = NULL;
        if (sp_snapshot_load_buffer(&s, buf, len, "damaged.snap", &d)) {
            refused++;
            sp_diag_release(&d);
            continue;
        }
        struct st_world w;
        int rc = sp_snapshot_build_world(s, sp_registry_builtin(), NULL, 0, &w.sc, &w.cfg,
                                         &w.sim, &d);
        assert_int_equal(rc, 0);
        assert_int_equal(sp_sim_start(w.sim), 0);
        if (sp_snapshot_restore(s, w.sim, &d)) {
            refused++;
            assert_non_null(d.text);
        } else {
            struct sp_run_opts o = { .until = 30 * MIN };
            sp_sim_run(w.sim, &o);                    /* any outcome but a crash */
            ran++;
        }
        sp_snapshot_destroy(s);
        sp_diag_release(&d);
        st_close(&w);
    }
    assert_true(refused > 100 && ran > 20);   /* both kinds happened */
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_lob_restore_then_run_equals_one_run),
        cmocka_unit_test(test_snapshot_lob_snapcheck),
        cmocka_unit_test(test_snapshot_lob_refuses_damaged_payloads),
        cmocka_unit_test(test_snapshot_lob_survives_random_damage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
