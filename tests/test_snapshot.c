/*
 * test_snapshot.c — checkpoints (engine/snapshot.c, docs/snapshot.md).
 *
 * The world: a GBM reference with jumps and two shocks, a CSV replay, an
 * EIP-1559 chain with background demand and a congestion spike, and two
 * "pinger" agents defined here that submit transactions with fee caps drawn
 * from their streams (some wait, some are dropped at their deadline) and
 * keep a tracked watchdog event they move on every ping — so the snapshot
 * carries a mempool, deliveries in flight and live event handles.
 *
 * The proof of a restore is bytes: the encoded state (engine + every
 * module's payload) at T of a run in one go equals that of a run to T/2,
 * snapshot, destroy, restore into a new sim (or a new process), run to T.
 * Then the file's defences: truncation, bit flips, wrong version and magic,
 * structural damage behind a valid checksum, and an interrupted write.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "chain.h"
#include "reference.h"
#include "snapshot-internal.h"
#include "testutil.h"
#include "snaptest.h"

/* ---- a test agent that uses the chain and a tracked event ------------------------ */

enum { PING = 1, INCLUDED = 2, DROPPED = 3, WATCHDOG = 4 };

struct pinger_cfg { sp_time every; };

struct pinger {
    sp_id id;
    sp_time every;
    uint64_t n_sent, n_in, n_drop, n_watchdog;
    double fees;
    sp_event_handle watchdog;
};

static const struct sp_field pinger_fields[] = {
    { "every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "30s", "time", "Ping interval.",
      offsetof(struct pinger_cfg, every), NULL, 0 },
};

static const struct sp_schema pinger_schema = {
    "agents[type: pinger]", "Test agent.", pinger_fields, 1, sizeof(struct pinger_cfg), NULL
};

static int pinger_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct pinger *p = self;
    p->id = id;
    p->every = ((const struct pinger_cfg *)cfg)->every;
    return SP_OK;
}

static int pinger_start(void *self, struct sp_sim *sim)
{
    struct pinger *p = self;
    if (!sp_sim_schedule(sim, p->every, SP_PRIO_AGENT, p->id, PING)) return SP_ENOMEM;
    return sp_sim_schedule_tracked(sim, 10 * p->every, SP_PRIO_AGENT, p->id, WATCHDOG,
                                   &p->watchdog) ? SP_OK : SP_ENOMEM;
}

static void pinger_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct pinger *p = self;
    struct sp_rng *rng = sp_sim_rng(sim, p->id);
    switch (ev->kind) {
    case PING: {
        struct sp_tx tx = { .sender = p->id, .kind = INCLUDED, .drop_kind = DROPPED,
                            .gas = 1e5 + 1e5 * sp_rng_uniform(rng),
                            .max_fee = 2 + 30 * sp_rng_uniform(rng),
                            .priority_fee = 3 * sp_rng_uniform(rng),
                            .deadline = ev->t + 36 * SP_SEC };
        tx.data.u[0] = p->n_sent;
        if (sp_chain_submit(sim, &tx, NULL) == SP_OK) p->n_sent++;
        /* Move the watchdog: a handle kept across the snapshot. */
        if (sp_sim_reschedule(sim, p->watchdog, ev->t + 3 * p->every)) abort();
        if (ev->t + p->every <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, ev->t + p->every);
        break;
    }
    case INCLUDED:
        p->n_in++;
        p->fees += sp_chain_current_fee(sim);
        break;
    case DROPPED:
        p->n_drop++;
        break;
    case WATCHDOG:
        p->n_watchdog++;
        break;
    }
}

static int pinger_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct pinger *p = self;
    sp_snap_put_array(w, 3);
    sp_snap_put_u64s(w, (const uint64_t[]){ p->n_sent, p->n_in, p->n_drop, p->n_watchdog,
                                            p->watchdog }, 5);
    sp_snap_put_f64(w, p->fees);
    return sp_snap_put_str(w, "pinger");
}

static int pinger_restore(void *self, struct sp_snapshot_reader *r)
{
    struct pinger *p = self;
    uint64_t v[5];
    char tag[16];
    sp_snap_get_array_n(r, 3);
    sp_snap_get_u64s(r, v, 5);
    sp_snap_get_f64(r, &p->fees);
    sp_snap_get_str(r, tag, sizeof tag);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    p->n_sent = v[0], p->n_in = v[1], p->n_drop = v[2], p->n_watchdog = v[3];
    p->watchdog = v[4];
    return strcmp(tag, "pinger") ? sp_snap_fail(r, "bad tag") : SP_OK;
}

static const struct sp_module_ops pinger_ops = {
    .kind = "agent", .type = "pinger", .summary = "test", .schema = &pinger_schema,
    .state_size = sizeof(struct pinger), .init = pinger_init, .start = pinger_start,
    .on_event = pinger_on_event, .snapshot = pinger_snapshot, .restore = pinger_restore,
};

/* ---- fixtures ----------------------------------------------------------------------- */

#define T_END (4 * SP_HOUR)

static struct sp_registry *reg;
static char yaml_path[1024];

static void make_scenario(void)
{
    const char *dir = tu_tmpdir("snapshot");
    char text[4096];
    snprintf(text, sizeof text,
             "name: snap\n"
             "seed: 7\n"
             "horizon: 4h\n"
             "output: {sample_every: 5m}\n"
             "tokens:\n"
             "  - {name: ETH, kind: base}\n"
             "  - {name: BTC, kind: base}\n"
             "references:\n"
             "  - {type: gbm, asset: ETH, initial: 2000, volatility: 80%%, drift: 5%%, step: 1m,\n"
             "     jump_rate: 2000, jump_mean: -2%%, jump_stdev: 3%%,\n"
             "     shocks: [{at: 1h, drop: 20%%, over: 30m}, {at: 3h, drop: 10%%}]}\n"
             "  - {type: replay, asset: BTC, file: '%s/experiments/data/eth_usd_coinbase_1h_2020-03.csv',\n"
             "     time_column: unix_ts, price_column: close, step: 7m, scale: 30}\n"
             "chain:\n"
             "  type: eip1559\n"
             "  block_time: 12s\n"
             "  gas_limit: 2e6\n"
             "  initial_base_fee: 10\n"
             "  background: {rate: 0.8, gas: {dist: uniform, low: 5e4, high: 2e5},\n"
             "               tip: {dist: exponential, mean: 2}}\n"
             "  spikes: [{at: 90m, over: 40m, rate_factor: 3, tip_factor: 2}]\n"
             "agents:\n"
             "  - {type: pinger, name: p_0, every: 25s}\n"
             "  - {type: pinger, name: p_1, every: 40s}\n", SP_SOURCE_DIR);
    snprintf(yaml_path, sizeof yaml_path, "%s/snap.yaml", dir);
    tu_write(yaml_path, text);
}

static int setup(void **state)
{
    (void)state;
    if (sp_registry_create(&reg, sp_registry_builtin()) || sp_registry_add(reg, &pinger_ops))
        return -1;
    make_scenario();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sp_registry_destroy(reg);
    return 0;
}

static void path_in_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tu_tmpdir("snapshot"), name);
}

/* ---- round trips --------------------------------------------------------------------- */

static void test_snapshot_restore_then_run_equals_one_run(void **state)
{
    (void)state;
    struct st_world a, b;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, T_END);
    size_t la;
    void *sa = st_state_bytes(a.sim, &la);

    st_open(&b, yaml_path, reg);
    st_run_to(b.sim, T_END / 2);
    char path[1024];
    path_in_dir(path, sizeof path, "half.snap");
    st_snapshot_to(&b, path);
    sp_time mid = sp_sim_now(b.sim);
    st_close(&b);

    struct st_world c;
    st_restore(&c, path, reg);
    assert_int_equal(sp_sim_now(c.sim), mid);
    st_run_to(c.sim, T_END);
    size_t lc;
    void *sc = st_state_bytes(c.sim, &lc);
    /* Everything the state holds: prices, streams, queue, chain, agents. */
    assert_int_equal(la, lc);
    assert_memory_equal(sa, sc, la);
    sp_id eth = sp_sim_find(a.sim, "reference_ETH"), btc = sp_sim_find(a.sim, "reference_BTC");
    assert_true(sp_reference_price(a.sim, eth) == sp_reference_price(c.sim, eth));
    assert_true(sp_reference_price(a.sim, btc) == sp_reference_price(c.sim, btc));
    assert_int_equal(sp_sim_events(a.sim), sp_sim_events(c.sim));
    assert_true(sp_chain_base_fee(a.sim) == sp_chain_base_fee(c.sim));
    const struct pinger *pa = sp_sim_entity_state(a.sim, sp_sim_find(a.sim, "p_0"));
    const struct pinger *pc = sp_sim_entity_state(c.sim, sp_sim_find(c.sim, "p_0"));
    assert_true(pa->n_in > 0 && pa->n_drop > 0);       /* the mempool was exercised */
    assert_int_equal(pa->n_in, pc->n_in);
    assert_int_equal(pa->n_drop, pc->n_drop);
    assert_true(pa->fees == pc->fees);
    assert_int_equal(sp_queue_verify(sp_sim_queue(c.sim)), 0);
    free(sa);
    free(sc);
    st_close(&a);
    st_close(&c);
}

static void test_snapshot_of_a_restored_state_is_identical(void **state)
{
    (void)state;
    struct st_world a, b;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, 77 * SP_MIN);
    char path[1024];
    path_in_dir(path, sizeof path, "same.snap");
    st_snapshot_to(&a, path);
    st_restore(&b, path, reg);
    size_t la, lb;
    void *sa = st_state_bytes(a.sim, &la), *sb = st_state_bytes(b.sim, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    free(sa);
    free(sb);
    st_close(&a);
    st_close(&b);
}

static void test_snapshot_restore_in_a_new_process_equals_one_run(void **state)
{
    (void)state;
    char half[1024], out[1024];
    path_in_dir(half, sizeof half, "proc-half.snap");
    path_in_dir(out, sizeof out, "proc-final.bin");
    struct st_world a;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, T_END / 2);
    st_snapshot_to(&a, half);
    st_run_to(a.sim, T_END);
    size_t la;
    void *sa = st_state_bytes(a.sim, &la);
    st_close(&a);
    pid_t pid = fork();
    if (pid == 0) {                       /* a fresh sim in another process */
        struct st_world c;
        st_restore(&c, half, reg);
        st_run_to(c.sim, T_END);
        size_t lc;
        void *sc = st_state_bytes(c.sim, &lc);
        FILE *f = fopen(out, "wb");
        int ok = f && fwrite(sc, 1, lc, f) == lc;
        if (f) fclose(f);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(tu_wait(pid), 0);
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    unsigned char *sc = malloc(la + 1);
    size_t lc = fread(sc, 1, la + 1, f);
    fclose(f);
    assert_int_equal(lc, la);
    assert_memory_equal(sa, sc, la);
    free(sa);
    free(sc);
}

/* Datasets: one run to T ≡ (run to T/2, snapshot) then (restore, run to T)
 * with the second part recorded to a new file — the columns of the two
 * files, concatenated, equal the uninterrupted run's bit for bit. */
static struct sp_rec *recorder(const char *path)
{
    struct sp_rec *rec;
    struct sp_rec_opts ro = { 4, 256 };
    assert_int_equal(sp_rec_create(&rec, path, &ro), 0);
    return rec;
}

static void test_snapshot_datasets_concatenate_to_the_uninterrupted_run(void **state)
{
    (void)state;
    char a[1024], b1[1024], b2[1024], half[1024];
    path_in_dir(a, sizeof a, "a.h5");
    path_in_dir(b1, sizeof b1, "b1.h5");
    path_in_dir(b2, sizeof b2, "b2.h5");
    path_in_dir(half, sizeof half, "ds-half.snap");
    struct st_world w;
    struct sp_diag d = { 0 };
    /* one go */
    st_open_rec(&w, yaml_path, reg, recorder(a));
    st_run_to(w.sim, T_END);
    assert_int_equal(sp_rec_close(sp_sim_recorder(w.sim), "complete"), 0);
    st_close(&w);
    /* first half, snapshot */
    st_open_rec(&w, yaml_path, reg, recorder(b1));
    st_run_to(w.sim, T_END / 2);
    st_snapshot_to(&w, half);
    assert_int_equal(sp_rec_close(sp_sim_recorder(w.sim), "complete"), 0);
    st_close(&w);
    /* restore with a new output, second half */
    struct sp_snapshot *s;
    assert_int_equal(sp_snapshot_load(&s, half, &d), 0);
    assert_int_equal(sp_snapshot_build_world(s, reg, NULL, 0, &w.sc, &w.cfg, &w.sim, &d), 0);
    sp_sim_set_recorder(w.sim, recorder(b2));
    assert_int_equal(sp_sim_start(w.sim), 0);
    assert_int_equal(sp_snapshot_restore(s, w.sim, &d), 0);
    sp_snapshot_destroy(s);
    st_run_to(w.sim, T_END);
    assert_int_equal(sp_rec_close(sp_sim_recorder(w.sim), "complete"), 0);
    st_close(&w);
    static const char *const cols[] = {
        "/markets/reference_ETH/t_us", "/markets/reference_ETH/price",
        "/markets/reference_ETH/shock_factor", "/markets/reference_BTC/price",
        "/events/blocks/t_us", "/events/blocks/base_fee", "/events/blocks/n_tx",
        "/events/blocks/gas_used", "/events/blocks/n_pending", "/events/blocks/min_tip_included",
    };
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        size_t na, n1, n2, ea, e1, e2;
        unsigned char *va = tu_read_raw(a, cols[c], &na, &ea);
        unsigned char *v1 = tu_read_raw(b1, cols[c], &n1, &e1);
        unsigned char *v2 = tu_read_raw(b2, cols[c], &n2, &e2);
        assert_non_null(va);
        assert_true(n1 > 0 && n2 > 0);
        assert_int_equal(na, n1 + n2);
        assert_int_equal(ea, e1);
        assert_memory_equal(va, v1, n1 * ea);
        assert_memory_equal(va + n1 * ea, v2, n2 * ea);
        free(va);
        free(v1);
        free(v2);
    }
    sp_diag_release(&d);
}

/* ---- what the file says ------------------------------------------------------------- */

static void test_snapshot_header_names_scenario_seed_and_time(void **state)
{
    (void)state;
    struct st_world a;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, SP_HOUR);
    size_t len;
    void *buf;
    struct sp_diag d = { 0 };
    assert_int_equal(sp_snapshot_encode(a.sim, a.sc, &buf, &len, &d), 0);
    assert_memory_equal(buf, "SPIRALSN", 8);
    /* The streamed file and the in-memory encoding are the same bytes. */
    char path[1024];
    path_in_dir(path, sizeof path, "header.snap");
    st_snapshot_to(&a, path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *file = malloc(len + 1);
    assert_int_equal(fread(file, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(file, buf, len);
    free(file);
    struct sp_snapshot *s;
    assert_int_equal(sp_snapshot_load_buffer(&s, buf, len, "mem", &d), 0);
    assert_int_equal(sp_snapshot_seed(s), 7);
    assert_int_equal(sp_snapshot_time(s), SP_HOUR);
    assert_int_equal(sp_snapshot_entity_count(s), sp_sim_entity_count(a.sim));
    assert_non_null(strstr(sp_snapshot_scenario(s), "eip1559"));
    assert_string_equal(sp_snapshot_scenario_path(s), yaml_path);
    sp_snapshot_destroy(s);
    sp_diag_release(&d);
    free(buf);
    st_close(&a);
}

/* Load `buf` and expect a failure whose message contains `needle`. */
static void expect_rejected(const void *buf, size_t len, const char *needle)
{
    struct sp_diag d = { 0 };
    struct sp_snapshot *s = NULL;
    int rc = sp_snapshot_load_buffer(&s, buf, len, "bad.snap", &d);
    if (rc == 0 || (needle && (!d.text || !strstr(d.text, needle))))
        fprintf(stderr, "rc %d, message: %s\n", rc, d.text ? d.text : "(none)");
    assert_int_equal(rc, SP_SNAPSHOT_EFORMAT);
    assert_null(s);
    assert_non_null(d.text);
    assert_non_null(strstr(d.text, "bad.snap"));
    if (needle) assert_non_null(strstr(d.text, needle));
    sp_diag_release(&d);
}

static void test_snapshot_rejects_truncated_files(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = st_encoded_at(yaml_path, reg, 50 * SP_MIN, &len);
    expect_rejected(buf, 0, "truncated");
    expect_rejected(buf, 20, "truncated");
    expect_rejected(buf, len / 2, "truncated");
    expect_rejected(buf, len - 1, "truncated");
    free(buf);
}

static void test_snapshot_rejects_bit_flips_by_checksum(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = st_encoded_at(yaml_path, reg, 50 * SP_MIN, &len);
    struct sp_rng rng;
    sp_rng_init(&rng, 3, 4);
    for (int k = 0; k < 200; k++) {
        size_t at = SP_SNAPSHOT_HEADER_SIZE + sp_rng_below(&rng, len - SP_SNAPSHOT_HEADER_SIZE);
        unsigned bit = 1u << sp_rng_below(&rng, 8);
        buf[at] ^= (unsigned char)bit;
        expect_rejected(buf, len, "checksum mismatch");
        buf[at] ^= (unsigned char)bit;
    }
    free(buf);
}

static void test_snapshot_rejects_wrong_version_and_magic(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = st_encoded_at(yaml_path, reg, 50 * SP_MIN, &len);
    buf[8] = 99;
    expect_rejected(buf, len, "unsupported snapshot format version 99");
    buf[8] = 1;
    buf[0] = 'X';
    expect_rejected(buf, len, "wrong magic");
    buf[0] = 'S';
    const char *hdf5 = "\x89HDF\r\n\x1a\n";
    memcpy(buf, hdf5, 8);
    expect_rejected(buf, len, "not a spiral snapshot");
    free(buf);
}

/* Damage behind a valid checksum (a buggy writer, or a forged file): the
 * structure checks must catch it without crashing or leaking (ASan). */
static void test_snapshot_survives_structural_damage_with_valid_checksum(void **state)
{
    (void)state;
    size_t len;
    unsigned char *orig = st_encoded_at(yaml_path, reg, 50 * SP_MIN, &len);
    unsigned char *buf = malloc(len);
    struct sp_rng rng;
    sp_rng_init(&rng, 5, 6);
    int rejected = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(buf, orig, len);
        int n = 1 + (int)sp_rng_below(&rng, 4);
        for (int j = 0; j < n; j++) {
            size_t at = SP_SNAPSHOT_HEADER_SIZE +
                        sp_rng_below(&rng, len - SP_SNAPSHOT_HEADER_SIZE - 8);
            buf[at] = (unsigned char)sp_rng_next(&rng);
        }
        st_fix_checksum(buf, len);
        struct sp_diag d = { 0 };
        struct sp_snapshot *s = NULL;
        int rc = sp_snapshot_load_buffer(&s, buf, len, "forged.snap", &d);
        if (rc) {
            rejected++;
            assert_non_null(d.text);
        }
        sp_snapshot_destroy(s);
        sp_diag_release(&d);
    }
    assert_true(rejected > 100);
    free(buf);
    free(orig);
}

static void test_snapshot_payload_type_mismatch_names_the_entity(void **state)
{
    (void)state;
    /* A payload the module cannot accept, behind a valid checksum: the load
     * (world-independent) passes, the module's restore fails, and the
     * message names the entity. */
    size_t len;
    unsigned char *buf = st_encoded_at(yaml_path, reg, 50 * SP_MIN, &len);
    struct sp_diag d = { 0 };
    /* The "pinger" tag of p_0's payload, after its record's type string. */
    unsigned char *tag = st_find_bytes(buf, len, "\xa6pinger", 7);   /* the record's type */
    assert_non_null(tag);
    tag = st_find_bytes(tag + 7, (size_t)(buf + len - tag - 7), "\xa6pinger", 7);
    assert_non_null(tag);
    tag[1] = 'P';                         /* same type, wrong content: module check */
    st_fix_checksum(buf, len);
    struct st_world w;
    assert_int_equal(st_restore_buffer(&w, buf, len, "m.snap", reg, &d), SP_SNAPSHOT_EFORMAT);
    assert_non_null(strstr(d.text, "entity 'p_0' (agent pinger)"));
    assert_non_null(strstr(d.text, "bad tag"));
    st_close(&w);
    sp_diag_release(&d);
    /* A type mismatch: the tag becomes an integer. */
    tag[0] = 0x07;
    memmove(tag + 1, tag + 7, (size_t)(buf + len - (tag + 7)));
    len -= 6;
    for (int i = 0; i < 8; i++) buf[16 + i] = (unsigned char)((len - 32) >> (8 * i));
    st_fix_checksum(buf, len);
    /* The record array is still well formed; the payload reads a number. */
    assert_int_equal(st_restore_buffer(&w, buf, len, "m.snap", reg, &d), SP_SNAPSHOT_EFORMAT);
    assert_non_null(strstr(d.text, "expected a string, found a non-negative integer"));
    st_close(&w);
    sp_diag_release(&d);
    free(buf);
}

static void test_snapshot_write_fails_for_a_module_without_snapshot(void **state)
{
    (void)state;
    static const struct sp_module_ops bare = { .kind = "agent", .type = "bare",
                                               .on_event = pinger_on_event };
    struct sp_sim *sim;
    assert_int_equal(sp_sim_create(&sim, 1), 0);
    assert_int_equal(sp_sim_add_entity(sim, "b", &bare, NULL, NULL), 0);
    struct sp_diag d = { 0 };
    void *buf;
    size_t len;
    assert_int_equal(sp_snapshot_encode(sim, NULL, &buf, &len, &d), SP_ESTATE);
    assert_non_null(strstr(d.text, "module type 'bare' (agent)"));
    assert_non_null(strstr(d.text, "does not implement snapshot"));
    sp_diag_release(&d);
    sp_sim_destroy(sim);
}

/* ---- atomic writes -------------------------------------------------------------------- */

static void slow_chunk(void *arg, size_t written, size_t total)
{
    (void)arg;
    (void)written;
    (void)total;
    usleep(2000);
}

static bool temp_exists(const char *dir, const char *prefix)
{
    DIR *dp = opendir(dir);
    bool found = false;
    struct dirent *de;
    while (dp && (de = readdir(dp)))
        if (!strncmp(de->d_name, prefix, strlen(prefix)) && strstr(de->d_name, ".tmp.")) found = true;
    if (dp) closedir(dp);
    return found;
}

static void test_snapshot_sigterm_during_write_keeps_the_previous_file(void **state)
{
    (void)state;
    char path[1024];
    path_in_dir(path, sizeof path, "atomic.snap");
    struct st_world a;
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, 30 * SP_MIN);
    st_snapshot_to(&a, path);
    size_t l0;
    void *s0 = st_state_bytes(a.sim, &l0);
    st_run_to(a.sim, 90 * SP_MIN);
    void *next;
    size_t lnext;
    struct sp_diag d = { 0 };
    assert_int_equal(sp_snapshot_encode(a.sim, a.sc, &next, &lnext, &d), 0);
    pid_t pid = fork();
    if (pid == 0) {                       /* ~lnext/256 chunks, 2 ms each */
        sp_snapshot_write_file(path, next, lnext, 256, slow_chunk, NULL, NULL);
        _exit(0);
    }
    for (int i = 0; i < 2000 && !temp_exists(tu_tmpdir("snapshot"), "atomic.snap"); i++)
        usleep(1000);
    usleep(20000);                        /* well inside the write */
    kill(pid, SIGTERM);
    assert_int_equal(tu_wait(pid), 128 + SIGTERM);
    /* The file at `path` is still the first snapshot, whole. */
    struct st_world b;
    st_restore(&b, path, reg);
    size_t lb;
    void *sb = st_state_bytes(b.sim, &lb);
    assert_int_equal(lb, l0);
    assert_memory_equal(sb, s0, l0);
    /* And a completed write replaces it. */
    assert_int_equal(sp_snapshot_write_file(path, next, lnext, 0, NULL, NULL, &d), 0);
    struct sp_snapshot *s;
    assert_int_equal(sp_snapshot_load(&s, path, &d), 0);
    assert_int_equal(sp_snapshot_time(s), 90 * SP_MIN);
    sp_snapshot_destroy(s);
    sp_diag_release(&d);
    free(s0);
    free(sb);
    free(next);
    st_close(&a);
    st_close(&b);
}

static void test_snapshot_load_reports_a_missing_file(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_snapshot *s;
    assert_int_equal(sp_snapshot_load(&s, "/nonexistent/x.snap", &d), SP_EIO);
    assert_non_null(strstr(d.text, "/nonexistent/x.snap"));
    sp_diag_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_restore_then_run_equals_one_run),
        cmocka_unit_test(test_snapshot_of_a_restored_state_is_identical),
        cmocka_unit_test(test_snapshot_restore_in_a_new_process_equals_one_run),
        cmocka_unit_test(test_snapshot_datasets_concatenate_to_the_uninterrupted_run),
        cmocka_unit_test(test_snapshot_header_names_scenario_seed_and_time),
        cmocka_unit_test(test_snapshot_rejects_truncated_files),
        cmocka_unit_test(test_snapshot_rejects_bit_flips_by_checksum),
        cmocka_unit_test(test_snapshot_rejects_wrong_version_and_magic),
        cmocka_unit_test(test_snapshot_survives_structural_damage_with_valid_checksum),
        cmocka_unit_test(test_snapshot_payload_type_mismatch_names_the_entity),
        cmocka_unit_test(test_snapshot_write_fails_for_a_module_without_snapshot),
        cmocka_unit_test(test_snapshot_sigterm_during_write_keeps_the_previous_file),
        cmocka_unit_test(test_snapshot_load_reports_a_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
