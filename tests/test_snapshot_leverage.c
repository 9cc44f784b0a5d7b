/*
 * test_snapshot_leverage.c — checkpoints of the leverage agents: looper,
 * vault and depositor (agents/looper.c, vault.c, depositor.c; the restore
 * model is docs/snapshot.md).
 *
 * The world is a small vault chain with all three busy: a stETH vault
 * looping on `aave` (hourly keeper), ten holders that deposit into it and
 * run on it (delays drawn per holder, so runs are decided and pending at
 * once), five borrowers looping ETH against the vault's shares on `fuse`
 * (spread start: some have looped, some not), eight stETH loopers on aave
 * that deleverage below hf_low and loop up again above hf_high (with
 * reaction delays: pending reactions), and scripted sales of stETH that
 * make the discount, then a buy-back.
 *
 * What is checked:
 *   - snapshot → restore into a fresh world → snapshot again gives the same
 *     bytes, at times when the agents are mid-activity (looping, runs
 *     pending, reactions pending, after the buy-back);
 *   - a run to T in one go equals a run to T1, snapshot, restore, run to T:
 *     the encoded states are identical, in-process here, and through
 *     snapcheck_run (tests/snapcheck.h: the restore in a new process, the
 *     CLI's sp_world_run / sp_world_resume) also every dataset of the
 *     output and /summary;
 *   - a corrupted payload of each type is refused with a message naming the
 *     entity (sp_snap_fail), never a crash: the corruption is written by a
 *     copy of the real module whose `snapshot` lies, into a world built from
 *     a registry holding that copy, and restored with the built-in one.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "snapcheck.h"
#include "snapshot-internal.h"
#include "testutil.h"
#include "snaptest.h"
#include "vault.h"

extern const struct sp_module_ops sp_agent_looper_ops;
extern const struct sp_module_ops sp_agent_vault_ops;
extern const struct sp_module_ops sp_agent_depositor_ops;

#define T_END (48 * SP_HOUR)

static const char *const CHAIN_YAML =
    "name: leverage_snap\n"
    "seed: 3\n"
    "horizon: 2d\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: stETH, kind: lst, underlying: ETH, apr: 4%}\n"
    "  - {name: aWETH, kind: receipt, underlying: ETH, issuer: aave}\n"
    "  - {name: icETH, kind: vault_share, underlying: stETH, issuer: icvault}\n"
    "  - {name: fWETH, kind: receipt, underlying: ETH, issuer: fuse}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 1800, volatility: 30%, step: 10m}\n"
    "markets:\n"
    "  - {type: stableswap, name: curve, base: stETH, quote: ETH, reserve_base: 22000,\n"
    "     reserve_quote: 18000, amp: 50, fee: 0.04%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, poll: 1m, deviation: 0.5%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: chainlink, name: steth_eth, poll: 1m, deviation: 0.2%, heartbeat: 2h,\n"
    "     source: {type: spot, of: curve}}\n"
    "  - {type: heartbeat, name: iceth_usd, poll: 1m, heartbeat: 1m,\n"
    "     source: {type: value, of: icETH}}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    positions_every: 6h\n"
    "    assets:\n"
    "      - {token: stETH, oracle: steth_eth, quoted_in: eth_usd,\n"
    "         ltv: 69%, liquidation_threshold: 81%, liquidation_bonus: 7.5%}\n"
    "      - {token: ETH, oracle: eth_usd, borrowable: true, receipt: aWETH,\n"
    "         ltv: 82.5%, liquidation_threshold: 86%, liquidation_bonus: 5%,\n"
    "         initial_supply: 50000}\n"
    "  - type: pool\n"
    "    name: fuse\n"
    "    positions_every: 6h\n"
    "    assets:\n"
    "      - {token: icETH, oracle: iceth_usd, ltv: 70%, liquidation_threshold: 75%,\n"
    "         liquidation_bonus: 8%}\n"
    "      - {token: ETH, oracle: eth_usd, collateral: false, borrowable: true,\n"
    "         receipt: fWETH, initial_supply: 10000}\n"
    "agents:\n"
    "  - {type: vault, name: icvault, share: icETH, protocol: aave, debt: ETH, venue: curve,\n"
    "     target_leverage: 2.5, band: 0.2, rebalance_every: 1h, safety: 90%,\n"
    "     max_slippage: 1%, seed_capital: 100}\n"
    "  - type: depositor\n"
    "    name: holders\n"
    "    count: 10\n"
    "    vault: icvault\n"
    "    token: stETH\n"
    "    amount: {dist: lognormal, mean: 50, sd: 50}\n"
    "    watch_every: 10m\n"
    "    run_threshold: {dist: uniform, low: 0.01, high: 0.04}\n"
    "    delay: {dist: exponential, mean: 3600}\n"
    "    inattentive: 20%\n"
    "  - type: looper\n"
    "    name: borrowers\n"
    "    count: 5\n"
    "    protocol: fuse\n"
    "    collateral: icETH\n"
    "    debt: ETH\n"
    "    venue: curve\n"
    "    capital: {dist: lognormal, mean: 30, sd: 30}\n"
    "    spare: {dist: exponential, mean: 3}\n"
    "    target_leverage: {dist: uniform, low: 1.5, high: 2.9}\n"
    "    safety: 95%\n"
    "    max_slippage: 15%\n"
    "    start: 2h\n"
    "    start_spread: 6h\n"
    "    watch_every: 10m\n"
    "    reaction: {dist: exponential, mean: 1800}\n"
    "    hf_low: 1.12\n"
    "  - type: looper\n"
    "    name: loopers\n"
    "    count: 8\n"
    "    protocol: aave\n"
    "    collateral: stETH\n"
    "    debt: ETH\n"
    "    venue: curve\n"
    "    capital: {dist: lognormal, mean: 40, sd: 40}\n"
    "    spare: {dist: exponential, mean: 1}\n"
    "    target_leverage: {dist: uniform, low: 1.9, high: 2.2}\n"
    "    safety: 99%\n"
    "    start: 1m\n"
    "    start_spread: 6h\n"
    "    watch_every: 10m\n"
    "    reaction: {dist: exponential, mean: 1800}\n"
    "    hf_low: 1.45\n"
    "    hf_high: 1.62\n"
    "  - type: scripted\n"
    "    name: sellers\n"
    "    holdings: [{token: stETH, amount: 50000}, {token: ETH, amount: 20000}]\n"
    "    actions:\n"
    "      - {at: 12h, do: swap, venue: curve, side: sell, amount: 3000}\n"
    "      - {at: 18h, do: swap, venue: curve, side: sell, amount: 3500}\n"
    "      - {at: 24h, do: swap, venue: curve, side: sell, amount: 4500}\n"
    "      - {at: 30h, do: swap, venue: curve, side: buy, amount: 10000}\n";

/* The vault alone (no depositors or share loopers: their init checks the
 * vault's ops by address, which the corrupting copy does not have). */
static const char *const VAULT_YAML =
    "name: vault_only\n"
    "seed: 5\n"
    "horizon: 6h\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: stETH, kind: lst, underlying: ETH, apr: 4%}\n"
    "  - {name: aWETH, kind: receipt, underlying: ETH, issuer: aave}\n"
    "  - {name: icETH, kind: vault_share, underlying: stETH, issuer: icvault}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 1800, volatility: 30%, step: 10m}\n"
    "markets:\n"
    "  - {type: stableswap, name: curve, base: stETH, quote: ETH, reserve_base: 22000,\n"
    "     reserve_quote: 18000, amp: 50, fee: 0.04%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: eth_usd, poll: 1m, deviation: 0.5%, heartbeat: 1h,\n"
    "     source: {type: reference, of: reference_ETH}}\n"
    "  - {type: chainlink, name: steth_eth, poll: 1m, deviation: 0.2%, heartbeat: 2h,\n"
    "     source: {type: spot, of: curve}}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    assets:\n"
    "      - {token: stETH, oracle: steth_eth, quoted_in: eth_usd,\n"
    "         ltv: 69%, liquidation_threshold: 81%, liquidation_bonus: 7.5%}\n"
    "      - {token: ETH, oracle: eth_usd, borrowable: true, receipt: aWETH,\n"
    "         ltv: 82.5%, liquidation_threshold: 86%, liquidation_bonus: 5%,\n"
    "         initial_supply: 50000}\n"
    "agents:\n"
    "  - {type: vault, name: icvault, share: icETH, protocol: aave, debt: ETH, venue: curve,\n"
    "     target_leverage: 2.5, band: 0.2, rebalance_every: 1h, seed_capital: 100}\n";

static char chain_path[1024], vault_path[1024];

static int setup(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("snapshot_leverage");
    snprintf(chain_path, sizeof chain_path, "%s/chain.yaml", dir);
    snprintf(vault_path, sizeof vault_path, "%s/vault.yaml", dir);
    tu_write(chain_path, CHAIN_YAML);
    tu_write(vault_path, VAULT_YAML);
    return 0;
}

/* ---- worlds ----------------------------------------------------------------------- */

static struct sp_snapshot *load(const void *buf, size_t len)
{
    struct sp_diag d = { 0 };
    struct sp_snapshot *s = NULL;
    int rc = sp_snapshot_load_buffer(&s, buf, len, "leverage.snap", &d);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    assert_int_equal(rc, 0);
    return s;
}

/* Restore `buf` into a fresh world built from its scenario; the restore's
 * code, its message in *d (release it). */
static int restore_into(struct st_world *w, const void *buf, size_t len, struct sp_diag *d)
{
    return st_restore_buffer(w, buf, len, "leverage.snap", sp_registry_builtin(), d);
}

/* Same bytes, or fail with the first difference (part, entity, byte). */
static void assert_same_state(const void *a, size_t la, const void *b, size_t lb)
{
    if (la == lb && !memcmp(a, b, la)) return;
    struct sp_snapshot *sa = load(a, la), *sb = load(b, lb);
    char msg[1024] = "";
    sp_snapshot_diff(sa, sb, msg, sizeof msg);
    sp_snapshot_destroy(sa);
    sp_snapshot_destroy(sb);
    fail_msg("states differ (%zu vs %zu bytes): %s", la, lb, msg);
}

/* ---- what is going on at a time ------------------------------------------------------ */

struct activity {
    int loopers_with_debt, borrowers_with_debt, holders_out, holders_in;
};

static struct activity activity(struct sp_sim *sim)
{
    struct activity a = { 0 };
    sp_id aave = sp_sim_find(sim, "aave"), fuse = sp_sim_find(sim, "fuse");
    sp_token eth = sp_token_find(sim, "ETH"), share = sp_token_find(sim, "icETH");
    char name[64];
    for (int k = 0; k < 8; k++) {
        snprintf(name, sizeof name, "loopers_%d", k);
        if (sp_lending_debt(sim, aave, sp_sim_find(sim, name), eth) > 0) a.loopers_with_debt++;
    }
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "borrowers_%d", k);
        if (sp_lending_debt(sim, fuse, sp_sim_find(sim, name), eth) > 0) a.borrowers_with_debt++;
    }
    for (int k = 0; k < 10; k++) {
        snprintf(name, sizeof name, "holders_%d", k);
        if (sp_balance(sim, sp_sim_find(sim, name), share) > 0) a.holders_in++;
        else a.holders_out++;
    }
    return a;
}

/* ---- round trips ------------------------------------------------------------------- */

/* Snapshot at t, restore into a fresh world, snapshot again: same bytes. */
static void roundtrip_at(sp_time t, struct activity *act)
{
    struct st_world a, b;
    st_open(&a, chain_path, sp_registry_builtin());
    st_run_to(a.sim, t);
    if (act) *act = activity(a.sim);
    size_t la, lb;
    void *sa = st_encode(&a, &la);
    struct sp_diag d = { 0 };
    int rc = restore_into(&b, sa, la, &d);
    if (rc) fail_msg("restore at %g s: %s", sp_time_sec(t), d.text ? d.text : "?");
    sp_diag_release(&d);
    assert_int_equal(sp_sim_now(b.sim), sp_sim_now(a.sim));
    void *sb = st_encode(&b, &lb);
    assert_same_state(sa, la, sb, lb);
    /* Both continue alike for a while (the restored world is live). */
    st_run_to(a.sim, t + 3 * SP_HOUR);
    st_run_to(b.sim, t + 3 * SP_HOUR);
    free(sa);
    free(sb);
    sa = st_encode(&a, &la);
    sb = st_encode(&b, &lb);
    assert_same_state(sa, la, sb, lb);
    free(sa);
    free(sb);
    st_close(&a);
    st_close(&b);
}

static void test_leverage_roundtrip_while_looping(void **state)
{
    (void)state;
    struct activity act;
    /* 4h: the loopers' start spread (1m + 6h) is half done, the borrowers' (2h + 6h)
     * has begun; the holders have deposited, the vault has levered up. */
    roundtrip_at(4 * SP_HOUR + 7 * SP_MIN, &act);
    assert_true(act.loopers_with_debt > 0 && act.loopers_with_debt < 8);
    assert_true(act.borrowers_with_debt < 5);
    assert_int_equal(act.holders_out, 0);
}

static void test_leverage_roundtrip_during_the_run(void **state)
{
    (void)state;
    struct activity act;
    /* After the second and third sales: runs decided (some paid, some pending),
     * loopers below hf_low waiting out their reaction. */
    roundtrip_at(18 * SP_HOUR + 40 * SP_MIN, NULL);
    roundtrip_at(25 * SP_HOUR + 13 * SP_MIN, &act);
    assert_int_equal(act.loopers_with_debt, 8);
    assert_int_equal(act.borrowers_with_debt, 5);
    assert_true(act.holders_out > 0);
}

static void test_leverage_roundtrip_after_the_buyback(void **state)
{
    (void)state;
    roundtrip_at(30 * SP_HOUR + 20 * SP_MIN, NULL);
}

/* Run to T in one go ≡ run to t1, snapshot, restore in a fresh world, run to T. */
static void continuation(sp_time t1)
{
    struct st_world a, b, c;
    st_open(&a, chain_path, sp_registry_builtin());
    st_run_to(a.sim, T_END);
    size_t la, lc, lb;
    void *sa = st_encode(&a, &la);
    st_open(&b, chain_path, sp_registry_builtin());
    st_run_to(b.sim, t1);
    void *sb = st_encode(&b, &lb);
    st_close(&b);
    struct sp_diag d = { 0 };
    int rc = restore_into(&c, sb, lb, &d);
    if (rc) fail_msg("restore at %g s: %s", sp_time_sec(t1), d.text ? d.text : "?");
    sp_diag_release(&d);
    st_run_to(c.sim, T_END);
    void *sc = st_encode(&c, &lc);
    assert_same_state(sa, la, sc, lc);
    free(sa);
    free(sb);
    free(sc);
    st_close(&a);
    st_close(&c);
}

static void test_leverage_continuation_equals_one_run(void **state)
{
    (void)state;
    continuation(5 * SP_HOUR + 1 * SP_MIN);
    continuation(19 * SP_HOUR + 30 * SP_MIN);
    continuation(24 * SP_HOUR + 50 * SP_MIN);
}

/* The acceptance check of the snapshot issue, at times when every agent
 * type is mid-activity (the mid-loop start spread, pending runs and
 * reactions during the sales, loop-ups after the buy-back). */
static void test_leverage_snapcheck_outputs_concatenate(void **state)
{
    (void)state;
    static const sp_time at[] = { 3 * SP_HOUR + 30 * SP_MIN, 18 * SP_HOUR + 50 * SP_MIN,
                                  24 * SP_HOUR + 40 * SP_MIN, 31 * SP_HOUR };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        struct snapcheck k = { .scenario = chain_path, .at = at[i],
                               .workdir = tu_tmpdir("snapshot_leverage") };
        if (snapcheck_run(&k)) fail_msg("snapshot at %g s: %s", sp_time_sec(at[i]), k.msg);
    }
}

/* ---- corrupted payloads -------------------------------------------------------------- */

static int bad_looper(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    sp_snap_put_array(w, 10);
    sp_snap_put_f64(w, -3.0);                      /* spare: negative */
    sp_snap_put_f64(w, 2.0);
    sp_snap_put_bool(w, true);
    sp_snap_put_bool(w, false);
    for (int i = 0; i < 5; i++) sp_snap_put_i64(w, 0);
    return sp_snap_put_f64(w, 0.0);
}

static int short_looper(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    sp_snap_put_array(w, 2);                       /* a payload of the wrong shape */
    sp_snap_put_f64(w, 1.0);
    return sp_snap_put_str(w, "x");
}

static int bad_depositor(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    sp_snap_put_array(w, 6);
    sp_snap_put_bool(w, true);
    sp_snap_put_bool(w, true);                     /* ran, but no run was ever pending */
    sp_snap_put_bool(w, false);
    sp_snap_put_f64(w, 1.0);
    sp_snap_put_i64(w, -1);
    return sp_snap_put_f64(w, 0.0);
}

static int bad_vault(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    sp_snap_put_array(w, 7);
    sp_snap_put_f64(w, NAN);                       /* last share price: the token's rate */
    sp_snap_put_f64(w, 1.0);
    sp_snap_put_f64(w, 0.0);
    sp_snap_put_f64(w, 0.0);
    for (int i = 0; i < 3; i++) sp_snap_put_i64(w, 0);
    return sp_snap_writer_error(w);
}

/* Encode `path`'s world at `t` with `type`'s snapshot replaced by `snap`,
 * restore it with the built-in modules: refused, naming `entity`, saying
 * `needle`. */
static void expect_refused(const char *path, sp_time t, const struct sp_module_ops *real,
                           int (*snap)(const void *, struct sp_snapshot_writer *),
                           const char *entity, const char *needle)
{
    struct sp_module_ops liar = *real;
    liar.snapshot = snap;
    const struct sp_registry *builtin = sp_registry_builtin();
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, NULL), 0);
    for (size_t i = 0; i < sp_registry_count(builtin); i++) {
        const struct sp_module_ops *o = sp_registry_get(builtin, i);
        assert_int_equal(sp_registry_add(reg, o == real ? &liar : o), 0);
    }
    struct st_world a, b;
    st_open(&a, path, reg);
    st_run_to(a.sim, t);
    size_t len;
    void *buf = st_encode(&a, &len);
    st_close(&a);
    struct sp_diag d = { 0 };
    assert_int_equal(restore_into(&b, buf, len, &d), SP_SNAPSHOT_EFORMAT);
    assert_non_null(d.text);
    if (!strstr(d.text, entity) || !strstr(d.text, needle))
        fail_msg("expected '%s' and '%s' in: %s", entity, needle, d.text);
    sp_diag_release(&d);
    st_close(&b);
    free(buf);
    sp_registry_destroy(reg);
}

static void test_leverage_corrupted_payloads_are_refused(void **state)
{
    (void)state;
    expect_refused(chain_path, SP_HOUR, &sp_agent_looper_ops, bad_looper,
                   "entity 'borrowers_0' (agent looper)", "spare");
    expect_refused(chain_path, SP_HOUR, &sp_agent_looper_ops, short_looper,
                   "entity 'borrowers_0' (agent looper)", "");
    expect_refused(chain_path, SP_HOUR, &sp_agent_depositor_ops, bad_depositor,
                   "entity 'holders_0' (agent depositor)", "inconsistent run state");
    expect_refused(vault_path, SP_HOUR, &sp_agent_vault_ops, bad_vault,
                   "entity 'icvault' (agent vault)", "last share price");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leverage_roundtrip_while_looping),
        cmocka_unit_test(test_leverage_roundtrip_during_the_run),
        cmocka_unit_test(test_leverage_roundtrip_after_the_buyback),
        cmocka_unit_test(test_leverage_continuation_equals_one_run),
        cmocka_unit_test(test_leverage_snapcheck_outputs_concatenate),
        cmocka_unit_test(test_leverage_corrupted_payloads_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
