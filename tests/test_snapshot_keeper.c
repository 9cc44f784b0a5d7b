/*
 * test_snapshot_keeper.c — checkpoints of the "keeper" agent
 * (agents/keeper.c) while it is busy, in the three worlds of
 * tests/test_keeper.c made self-running (loopers open the positions):
 *   - fixed spread on an Aave-like pool: a population on a fixed fee cap
 *     with finite capital, failures and a tx_timeout (transactions wait
 *     and are dropped in a base-fee spike), and flash keepers on an
 *     adaptive gas policy with a minimum profit;
 *   - Dutch auctions on a cdp with `kick: keeper`: barks, takes and redos
 *     (cusp 0.7), capital-bound takers on a fixed cap;
 *   - English auctions on a cdp behind an OSM: incremental raisers and
 *     jump bidders holding standing bids (capital locked) through a spike.
 * At each snapshot time the keepers hold opportunities in flight (slots in
 * use, a free stack, decide events and mempool transactions naming slots)
 * or standing bids — read from their payloads in the encoded state.
 *
 * The proof is snapcheck_run (tests/snapcheck.h): one run to T equals a run
 * to t1, snapshot, restore in a fresh world in another process, run to T —
 * state bytes, every dataset and /summary — at several t1 per world; and
 * the snapshot of a restored state is the same bytes.  Then damaged
 * keeper payloads (a free slot out of range or in use, an unknown action or
 * protocol, a standing bid's token, a bad slot count) are refused with a
 * message naming the keeper, and random damage never crashes.  Also: the
 * resolved scenario a snapshot stores (every default written out) binds —
 * a keeper without flash carries the default flash_fee there.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "snapcheck.h"
#include "snapshot-internal.h"
#include "testutil.h"
#include "snaptest.h"

/* ---- the worlds ------------------------------------------------------------------ */

/* Shared: a 12 s eip1559 chain whose background demand (fee caps around
 * 60 gwei) sits at the 20 gwei floor and spikes tenfold: the base fee
 * climbs to where only the highest caps fit (~200 gwei), so fixed-cap
 * keepers wait and are dropped (slots: spike start, length). */
#define CHAIN(at, over)                                                                   \
    "chain:\n"                                                                             \
    "  type: eip1559\n"                                                                    \
    "  block_time: 12s\n"                                                                  \
    "  initial_base_fee: 20\n"                                                             \
    "  min_base_fee: 20\n"                                                                 \
    "  gas_token: ETH\n"                                                                   \
    "  background: {rate: 2, gas: 100000, tip: 1,\n"                                       \
    "               fee_cap: {dist: lognormal, mean: 60, sd: 60}}\n"                       \
    "  spikes: [{at: " at ", over: " over ", rate_factor: 10, tip_factor: 5}]\n"

#define ARBS_AND_VAULTS(proto, debt, lev_lo, lev_hi)                                      \
    "  - {type: arbitrageur, name: arbs, count: 2, venue: pool, poll: 12s, reaction: 12s,\n" \
    "     inventory: {dist: lognormal, mean: 800, sd: 200},\n"                             \
    "     cash: {dist: lognormal, mean: 1500000, sd: 300000}}\n"                           \
    "  - {type: looper, name: vaults, count: 60, protocol: " proto ", collateral: ETH,\n"  \
    "     debt: " debt ", venue: pool, capital: {dist: lognormal, mean: 6, sd: 8},\n"      \
    "     target_leverage: {dist: uniform, low: " lev_lo ", high: " lev_hi "},\n"          \
    "     safety: 99%, max_slippage: 3%, start: 1m, start_spread: 30m, hf_low: 0,\n"       \
    "     inattentive: 100%}\n"

static const char fixed_yaml[] =
    "name: keeper_fixed_pool\n"
    "seed: 5\n"
    "horizon: 4h\n"
    "output: {sample_every: 10m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 60%, step: 12s,\n"
    "     shocks: [{at: 1h, drop: 35%, over: 40m}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 3000,\n"
    "     reserve_quote: 6000000, fee: 0.3%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, deviation: 0.5%, heartbeat: 1h,\n"
    "     source: {type: spot, of: pool}, poll: 12s}\n"
    "  - {type: heartbeat, name: usdc_usd, source: {type: value, of: USDC}}\n"
    CHAIN("1h10m", "30m")
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: {mechanism: fixed_spread, protocol_fee: 10%, close_factor: 50%}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: eth_usd, ltv: 0.8, liquidation_threshold: 0.85,\n"
    "         liquidation_bonus: 5%}\n"
    "      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true,\n"
    "         receipt: aUSDC, initial_supply: 50000000}\n"
    "agents:\n"
    ARBS_AND_VAULTS("aave", "USDC", "1.8", "4")
    "  - {type: keeper, name: fixedcap, count: 3, protocols: aave,\n"
    "     capital: {dist: uniform, low: 5000, high: 40000},\n"
    "     latency: {dist: uniform, low: 5, high: 60}, gas_policy: fixed, max_fee: 60,\n"
    "     priority_fee: 2, tx_timeout: 10m, failure_probability: 0.15, poll: 30s}\n"
    "  - {type: keeper, name: flashers, count: 2, protocols: aave, flash: true, capital: 1000,\n"
    "     latency: {dist: uniform, low: 1, high: 30}, gas_policy: adaptive, fee_multiple: 2,\n"
    "     priority_fee: 20, min_profit: {dist: uniform, low: 5, high: 50}, poll: 45s}\n";

static const char dutch_yaml[] =
    "name: keeper_dutch_cdp\n"
    "seed: 11\n"
    "horizon: 5h\n"
    "output: {sample_every: 10m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: DAI, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 60%, step: 12s,\n"
    "     shocks: [{at: 1h, drop: 40%, over: 30m}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 5000,\n"
    "     reserve_quote: 10000000, fee: 0.3%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, deviation: 0.5%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    CHAIN("1h5m", "40m")
    "protocols:\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    positions_every: 30m\n"
    "    liquidation: {mechanism: dutch_auction, kick: keeper, curve: stairstep_exponential,\n"
    "                  step: 60s, cut: 0.99, buf: 1.2, tail: 2h, cusp: 0.7, tip: 20,\n"
    "                  chip: 0.1%}\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: eth_usd, liquidation_ratio: 1.5, liquidation_penalty: 13%,\n"
    "         stability_fee: 0}\n"
    "agents:\n"
    ARBS_AND_VAULTS("maker", "DAI", "1.6", "2.9")
    "  - {type: keeper, name: takers, count: 3, capital: {dist: uniform, low: 20000,\n"
    "     high: 200000}, latency: {dist: uniform, low: 5, high: 60},\n"
    "     margin: {dist: uniform, low: 0.03, high: 0.3}, gas_policy: fixed, max_fee: 80,\n"
    "     tx_timeout: 15m, failure_probability: 0.1, poll: 30s}\n"
    "  - {type: keeper, name: flash, count: 2, flash: true, latency: {dist: uniform, low: 1,\n"
    "     high: 20}, margin: 0.05, min_profit: 10, gas_policy: adaptive, priority_fee: 15,\n"
    "     poll: 20s}\n";

static const char english_yaml[] =
    "name: keeper_english_cdp\n"
    "seed: 17\n"
    "horizon: 8h\n"
    "output: {sample_every: 10m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: DAI, kind: stable}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 60%, step: 12s,\n"
    "     shocks: [{at: 1h, drop: 40%, over: 30m}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 5000,\n"
    "     reserve_quote: 10000000, fee: 0.3%}\n"
    "oracles:\n"
    "  - {type: osm, name: eth_osm, source: {type: reference, of: reference_ETH}, hop: 30m}\n"
    CHAIN("1h30m", "1h")
    "protocols:\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    positions_every: 30m\n"
    "    liquidation: {mechanism: english_auction, beg: 1.03, ttl: 15m, tau: 3h,\n"
    "                  kick: protocol}\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: eth_osm, liquidation_ratio: 1.5, liquidation_penalty: 13%,\n"
    "         stability_fee: 0}\n"
    "agents:\n"
    ARBS_AND_VAULTS("maker", "DAI", "1.6", "2.9")
    "  - {type: keeper, name: raisers, count: 3, capital: {dist: uniform, low: 30000,\n"
    "     high: 300000}, latency: {dist: uniform, low: 5, high: 60},\n"
    "     margin: {dist: uniform, low: 0.03, high: 0.2}, open_bid: 1%, raise: 1.05,\n"
    "     gas_policy: fixed, max_fee: 150, tx_timeout: 20m, poll: 30s}\n"
    "  - {type: keeper, name: jumpers, count: 2, capital: 150000, bidding: jump, margin: 0.1,\n"
    "     latency: 20, gas_policy: adaptive, priority_fee: 10, failure_probability: 0.05,\n"
    "     poll: 1m}\n";

struct wdef {
    const char *name, *yaml;
    const char *keepers[5];         /* every keeper entity */
};

static const struct wdef W_FIXED = { "fixed", fixed_yaml,
    { "fixedcap_0", "fixedcap_1", "fixedcap_2", "flashers_0", "flashers_1" } };
static const struct wdef W_DUTCH = { "dutch", dutch_yaml,
    { "takers_0", "takers_1", "takers_2", "flash_0", "flash_1" } };
static const struct wdef W_ENGLISH = { "english", english_yaml,
    { "raisers_0", "raisers_1", "raisers_2", "jumpers_0", "jumpers_1" } };

static const char *dir(void) { return tu_tmpdir("snapshot_keeper"); }

static const char *yaml_of(const struct wdef *w)
{
    static char path[1100];
    snprintf(path, sizeof path, "%s/%s.yaml", dir(), w->name);
    tu_write(path, w->yaml);
    return path;
}

static int teardown(void **state)
{
    (void)state;
    st_rmdir_files(dir());
    return 0;
}

static unsigned char *encoded_at(const struct wdef *def, sp_time t, size_t *len)
{
    struct st_world w;
    st_open(&w, yaml_of(def), sp_registry_builtin());
    st_run_to(w.sim, t);
    unsigned char *buf = st_encode(&w, len);
    st_close(&w);
    return buf;
}

/* ---- reading a keeper's payload ----------------------------------------------------- */

/* The payload (keeper.c, keeper_snapshot) is a 14-array: serial, last_gen,
 * ht_cap, then bins: counters, money, slot meta, slot ref, slot tokens,
 * slot values, slot times, free stack, bid refs, bid ints, bid paid. */
enum { B_COUNTS, B_MONEY, B_META, B_REF, B_TOK, B_VAL, B_TIME, B_FREE, B_EREF, B_EINT, B_PAID,
       N_BINS };

struct kview {
    uint64_t ht_cap;
    unsigned char *bin[N_BINS];      /* the data of each bin, in the buffer */
    size_t n[N_BINS];                /* its 8-byte values */
};

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* A msgpack integer at *p (advanced past it) into *v; false if there is none. */
static bool get_int(unsigned char **p, uint64_t *v)
{
    unsigned char c = **p;
    static const int width[] = { 1, 2, 4, 8 };
    int n;
    if (c <= 0x7f || c >= 0xe0) {
        *v = (uint64_t)(int64_t)(int8_t)c;
        (*p)++;
        return true;
    }
    if (c >= 0xcc && c <= 0xcf) n = width[c - 0xcc];
    else if (c >= 0xd0 && c <= 0xd3) n = width[c - 0xd0];
    else return false;
    uint64_t x = be(*p + 1, n);
    if (c >= 0xd0 && n < 8) x = (uint64_t)((int64_t)(x << (64 - 8 * n)) >> (64 - 8 * n));
    *v = x;
    *p += 1 + n;
    return true;
}

static unsigned char *get_bin(unsigned char **p, size_t *n)
{
    unsigned char c = *(*p)++;
    int w = c == 0xc4 ? 1 : c == 0xc5 ? 2 : c == 0xc6 ? 4 : 0;
    if (!w) fail_msg("not a bin: 0x%02x", c);
    size_t len = (size_t)be(*p, w);
    *p += w;
    assert_int_equal(len % 8, 0);
    *n = len / 8;
    unsigned char *d = *p;
    *p += len;
    return d;
}

/* The payload of the k-th keeper of `def` in an encoded state: a 14-array
 * whose fourth element is a bin of 15 counters and whose fifth is a bin of
 * 5 doubles.  *ht points at ht_cap. */
static struct kview view_at(const struct wdef *def, unsigned char *buf, size_t len, int k,
                            unsigned char **ht)
{
    unsigned char *p = st_payload(buf, len, def->keepers[k]);
    uint64_t serial, gen;
    struct kview v;
    if (*p++ != 0x9e) fail_msg("payload of %s: not a 14-array", def->keepers[k]);
    assert_true(get_int(&p, &serial) && get_int(&p, &gen));
    unsigned char *at_cap = p;
    assert_true(get_int(&p, &v.ht_cap));
    for (int i = 0; i < N_BINS; i++) v.bin[i] = get_bin(&p, &v.n[i]);
    assert_int_equal(v.n[B_COUNTS], 15);
    assert_int_equal(v.n[B_MONEY], 5);
    if (ht) *ht = at_cap;
    return v;
}

static struct kview view_of(const struct wdef *def, unsigned char *buf, size_t len, int k)
{
    return view_at(def, buf, len, k, NULL);
}

static uint64_t word(const struct kview *v, int b, size_t i)
{
    uint64_t x;
    assert_true(i < v->n[b]);
    memcpy(&x, v->bin[b] + 8 * i, 8);            /* little-endian hosts, as the format */
    return x;
}

static void set_word(struct kview *v, int b, size_t i, uint64_t x)
{
    assert_true(i < v->n[b]);
    memcpy(v->bin[b] + 8 * i, &x, 8);
}

/* Opportunities in flight and standing bids of all the world's keepers. */
static void activity(const struct wdef *def, unsigned char *buf, size_t len, size_t *used,
                     size_t *bids)
{
    *used = *bids = 0;
    for (int k = 0; k < 5; k++) {
        struct kview v = view_of(def, buf, len, k);
        for (size_t i = 0; i < v.n[B_META]; i++) *used += word(&v, B_META, i) & 1;
        *bids += v.n[B_EREF];
    }
}

/* ---- round trips --------------------------------------------------------------------- */

/* In this process: restore the state at t1 into a fresh world and encode it
 * again: the same bytes (nothing lost, nothing added by start). */
static void check_restored_reencodes(const struct wdef *def, unsigned char *buf, size_t len)
{
    struct sp_diag d = { 0 };
    struct st_world w;
    int rc = st_restore_buffer(&w, buf, len, def->name, sp_registry_builtin(), &d);
    if (rc) sp_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    size_t l2;
    void *again = st_encode(&w, &l2);
    assert_int_equal(l2, len);
    assert_memory_equal(again, buf, len);
    free(again);
    st_close(&w);
    sp_diag_release(&d);
}

/* At t1 the keepers are busy (at least `min_used` opportunities in flight
 * and `min_bids` standing bids); the snapshot re-encodes after a restore;
 * and the acceptance check passes. */
static void check_at(const struct wdef *def, sp_time t1, size_t min_used, size_t min_bids)
{
    size_t len, used, bids;
    unsigned char *buf = encoded_at(def, t1, &len);
    activity(def, buf, len, &used, &bids);
    if (used < min_used || bids < min_bids)
        fail_msg("%s at %lld s: %zu opportunities in flight, %zu standing bids", def->name,
                 (long long)(t1 / SP_SEC), used, bids);
    check_restored_reencodes(def, buf, len);
    free(buf);
    struct snapcheck k = { .scenario = yaml_of(def), .at = t1, .workdir = dir() };
    int rc = snapcheck_run(&k);
    if (rc) fprintf(stderr, "snapcheck %s at %lld s: %s\n", def->name,
                    (long long)(t1 / SP_SEC), k.msg);
    assert_int_equal(rc, 0);
}

#define T(h, m, s) ((sp_time)(h) * SP_HOUR + (sp_time)(m) * SP_MIN + (sp_time)(s) * SP_SEC)

static void test_keeper_snapshot_fixed_spread(void **state)
{
    (void)state;
    check_at(&W_FIXED, T(1, 15, 0), 1, 0);        /* the first liquidations */
    check_at(&W_FIXED, T(1, 31, 0), 20, 0);       /* in the spike: waiting, dropped */
    check_at(&W_FIXED, T(1, 40, 0), 20, 0);
    check_at(&W_FIXED, T(2, 30, 0), 0, 0);        /* quiet again */
}

static void test_keeper_snapshot_dutch_auctions(void **state)
{
    (void)state;
    check_at(&W_DUTCH, T(1, 7, 13), 20, 0);       /* barks */
    check_at(&W_DUTCH, T(1, 33, 0), 50, 0);       /* takes, redos */
    check_at(&W_DUTCH, T(2, 10, 3), 50, 0);
    check_at(&W_DUTCH, T(3, 3, 0), 0, 0);
}

static void test_keeper_snapshot_english_auctions(void **state)
{
    (void)state;
    check_at(&W_ENGLISH, T(2, 3, 0), 50, 10);     /* bids standing */
    check_at(&W_ENGLISH, T(2, 17, 11), 50, 10);
    check_at(&W_ENGLISH, T(2, 33, 0), 1, 1);      /* deals */
    check_at(&W_ENGLISH, T(2, 43, 0), 10, 1);
    check_at(&W_ENGLISH, T(3, 3, 0), 0, 0);       /* over */
}

/* ---- damaged payloads ---------------------------------------------------------------- */

/* Restore `buf` and expect the keeper's restore to refuse it with `needle`. */
static void expect_refused(unsigned char *buf, size_t len, const char *who, const char *needle)
{
    struct sp_diag d = { 0 };
    struct st_world w;
    st_fix_checksum(buf, len);
    assert_int_equal(st_restore_buffer(&w, buf, len, "keeper.snap", sp_registry_builtin(), &d),
                     SP_SNAPSHOT_EFORMAT);
    if (!strstr(d.text, who) || !strstr(d.text, needle)) fprintf(stderr, "%s", d.text);
    assert_non_null(strstr(d.text, who));
    assert_non_null(strstr(d.text, needle));
    st_close(&w);
    sp_diag_release(&d);
}

/* The first keeper with a slot in use and a free slot, and that slot. */
static int busy_keeper(const struct wdef *def, unsigned char *buf, size_t len, size_t *slot)
{
    for (int k = 0; k < 5; k++) {
        struct kview v = view_of(def, buf, len, k);
        if (!v.n[B_FREE]) continue;
        for (size_t i = 0; i < v.n[B_META]; i++)
            if (word(&v, B_META, i) & 1) { *slot = i; return k; }
    }
    fail_msg("no keeper with a slot in use and a free one");
    return -1;
}

static void test_keeper_damaged_payloads_are_refused(void **state)
{
    (void)state;
    size_t len, slot;
    unsigned char *orig = encoded_at(&W_FIXED, T(1, 31, 0), &len), *buf = malloc(len);
    assert_non_null(buf);
    int k = busy_keeper(&W_FIXED, orig, len, &slot);
    char who[64];
    snprintf(who, sizeof who, "entity '%s' (agent keeper)", W_FIXED.keepers[k]);
    struct kview v;

    /* A free slot out of range. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_FREE, 0, v.n[B_META] + 3);
    expect_refused(buf, len, who, "free opportunity slot");

    /* A free slot that is in use. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_FREE, 0, slot);
    expect_refused(buf, len, who, "free opportunity slot");

    /* An unknown action. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_META, slot, (word(&v, B_META, slot) & ~0xff00ull) | 0x4000);
    expect_refused(buf, len, who, "bad flags, action");

    /* A protocol index past the watched ones. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_REF, slot, (word(&v, B_REF, slot) & 0xffffffffull) | 7ull << 32);
    expect_refused(buf, len, who, "protocol or token");

    /* A token that does not exist. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_TOK, 2 * slot, 99);
    expect_refused(buf, len, who, "protocol or token");

    /* A used slot marked free: the counts no longer add up. */
    memcpy(buf, orig, len);
    v = view_of(&W_FIXED, buf, len, k);
    set_word(&v, B_META, slot, word(&v, B_META, slot) & ~1ull);
    expect_refused(buf, len, who, "free of");

    /* A table too small for the slots in use. */
    memcpy(buf, orig, len);
    unsigned char *p;
    view_at(&W_FIXED, buf, len, k, &p);
    if (*p == 0xcc) p++;                         /* ht_cap: a fixint or a uint8 */
    assert_true(*p >= 16 && *p <= 128 && !(*p & (*p - 1)));
    *p = 8;
    expect_refused(buf, len, who, "opportunity table");

    free(buf);
    free(orig);

    /* A standing bid's token out of range (English world). */
    orig = encoded_at(&W_ENGLISH, T(2, 3, 0), &len);
    buf = malloc(len);
    assert_non_null(buf);
    bool hit = false;
    for (k = 0; k < 5 && !hit; k++) {
        memcpy(buf, orig, len);
        v = view_of(&W_ENGLISH, buf, len, k);
        if (!v.n[B_EREF]) continue;
        set_word(&v, B_EINT, 1, 1000);
        snprintf(who, sizeof who, "entity '%s' (agent keeper)", W_ENGLISH.keepers[k]);
        expect_refused(buf, len, who, "standing bid 0");
        hit = true;
    }
    assert_true(hit);
    free(buf);
    free(orig);
}

/* Random damage to the busiest keeper's payload behind a valid checksum:
 * the restore accepts it or refuses it with a message; it never crashes
 * (run it under -DSPIRAL_SANITIZE=ON). */
static void test_keeper_random_payload_damage_never_crashes(void **state)
{
    (void)state;
    size_t len, slot;
    unsigned char *orig = encoded_at(&W_FIXED, T(1, 31, 0), &len), *buf = malloc(len);
    assert_non_null(buf);
    struct kview v = view_of(&W_FIXED, orig, len, busy_keeper(&W_FIXED, orig, len, &slot));
    unsigned char *lo = v.bin[B_COUNTS] - 4, *hi = v.bin[B_PAID] + 8 * v.n[B_PAID];
    size_t span = (size_t)(hi - lo), off = (size_t)(lo - orig);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int refused = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(buf, orig, len);
        for (int j = 0; j < 1 + it % 3; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[off + x % span] ^= (unsigned char)(1u << (x >> 32) % 8);
        }
        st_fix_checksum(buf, len);
        struct sp_diag d = { 0 };
        struct sp_snapshot *s;
        if (sp_snapshot_load_buffer(&s, buf, len, "keeper.snap", &d) == SP_OK) {
            struct st_world w;
            assert_int_equal(sp_snapshot_build_world(s, sp_registry_builtin(), NULL, 0, &w.sc,
                                                     &w.cfg, &w.sim, &d), 0);
            assert_int_equal(sp_sim_start(w.sim), 0);
            int rc = sp_snapshot_restore(s, w.sim, &d);
            if (rc) {
                assert_int_equal(rc, SP_SNAPSHOT_EFORMAT);
                assert_non_null(d.text);
                refused++;
            }
            st_close(&w);
            sp_snapshot_destroy(s);
        } else {
            refused++;
        }
        sp_diag_release(&d);
    }
    assert_true(refused > 30);
    free(buf);
    free(orig);
}

/* The resolved scenario a snapshot holds writes every default out, so a
 * keeper without flash carries `flash_fee: 0.09%`: that binds; another
 * value without flash is still refused. */
static int bind_with_flash_fee(const char *fee, struct sp_diag *d)
{
    static char yaml[8192], path[1100];
    const char *at = strstr(fixed_yaml, "  - {type: keeper, name: fixedcap");
    snprintf(yaml, sizeof yaml, "%.*s  - {type: keeper, name: k, protocols: aave, capital: 1000,\n"
             "     flash_fee: %s}\n", (int)(at - fixed_yaml), fixed_yaml, fee);
    snprintf(path, sizeof path, "%s/flash_fee.yaml", dir());
    tu_write(path, yaml);
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    int rc = sp_scenario_load(&sc, path, d);
    if (!rc) {
        rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, d);
        sp_scenario_destroy(sc);
    }
    return rc;
}

static void test_keeper_default_flash_fee_without_flash_binds(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    assert_int_equal(bind_with_flash_fee("0.09%", &d), 0);
    sp_diag_release(&d);
    memset(&d, 0, sizeof d);
    assert_int_equal(bind_with_flash_fee("0.05%", &d), SP_ECONFIG);
    assert_non_null(strstr(d.text, "flash_fee applies with `flash: true` only"));
    sp_diag_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeper_default_flash_fee_without_flash_binds),
        cmocka_unit_test(test_keeper_snapshot_fixed_spread),
        cmocka_unit_test(test_keeper_snapshot_dutch_auctions),
        cmocka_unit_test(test_keeper_snapshot_english_auctions),
        cmocka_unit_test(test_keeper_damaged_payloads_are_refused),
        cmocka_unit_test(test_keeper_random_payload_damage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
