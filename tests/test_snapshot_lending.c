/*
 * test_snapshot_lending.c — snapshot/restore of the lending protocols
 * (protocol/pool, protocol/cdp) while busy: a run to T in one go equals a
 * run to T1, a snapshot, a restore in a new process and a run on to T
 * (tests/snapcheck.h), at several T1, with every liquidation mechanism
 * live at once:
 *   - a pool with two collaterals and two borrowable assets (positions
 *     owing both sit in the multi-debt group) and fixed_spread;
 *   - a cdp with dutch_auction kicked by the protocol, takes and redo;
 *   - a cdp with english_auction kicked by a keeper, tend, dent and deal;
 *   - a pool with amm_direct into a CPMM;
 * driven by two test agents (a custom registry): borrowers that open,
 * lever up, repay and top up through the lending API, and a liquidator
 * subscribed to every protocol that folds the notifications it gets into a
 * hash, in order, and acts on them first in, first out — so the order in
 * which the liquidation index reports crossings, after a restore, decides
 * who is liquidated and shows in the state compared.
 * Also: the restored liquidation index is checked (sp_lending_check), and
 * corrupted lending payloads (a bad owner id, an index entry) are refused
 * with a message instead of crashing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "liquidation.h"
#include "snapcheck.h"
#include "testutil.h"
#include "snaptest.h"

/* ---- a borrower ------------------------------------------------------------------ */

enum { B_OPEN = 1, B_ADJUST = 2 };

struct tb_cfg { const char *protocol; int64_t count; };

struct tborrower {
    sp_id id, proto;
    bool cdp;
    sp_token eth, btc, usdc, dai, usdx;
    sp_token debt;                 /* what it borrows (pool: USDC, some DAI too) */
    uint64_t n_actions;
};

static const struct sp_field tb_fields[] = {
    { "protocol", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "Protocol.",
      offsetof(struct tb_cfg, protocol), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN, 1, 0, "1", "agents", "Population.",
      offsetof(struct tb_cfg, count), NULL, 0 },
};

static const struct sp_schema tb_schema = {
    "agents[type: tborrower]", "Test borrower.", tb_fields, 2, sizeof(struct tb_cfg), NULL
};

static size_t tb_count(const void *cfg) { return (size_t)((const struct tb_cfg *)cfg)->count; }

static int tb_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct tborrower *b = self;
    const struct tb_cfg *c = cfg;
    b->id = id;
    b->proto = sp_sim_find(sim, c->protocol);
    b->eth = sp_token_find(sim, "ETH");
    b->btc = sp_token_find(sim, "BTC");
    b->usdc = sp_token_find(sim, "USDC");
    b->dai = sp_token_find(sim, "DAI");
    b->usdx = sp_token_find(sim, "USDX");
    return b->proto == SP_ID_NONE ? SP_EINVAL : SP_OK;
}

static int tb_start(void *self, struct sp_sim *sim)
{
    struct tborrower *b = self;
    enum sp_liq_mechanism m = sp_liq_mechanism(sim, b->proto);
    b->cdp = m == SP_LIQ_DUTCH || m == SP_LIQ_ENGLISH;
    b->debt = m == SP_LIQ_DUTCH ? b->dai : m == SP_LIQ_ENGLISH ? b->usdx : b->usdc;
    sp_time t = 1 + (sp_time)sp_rng_below(sp_sim_rng(sim, b->id), (uint64_t)SP_HOUR);
    return sp_sim_schedule(sim, t, SP_PRIO_AGENT, b->id, B_OPEN) ? SP_OK : SP_ENOMEM;
}

static void tb_borrow_share(struct tborrower *b, struct sp_sim *sim, sp_token tok, double share)
{
    double m = sp_lending_max_borrow(sim, b->proto, b->id, tok);
    if (m > 1) sp_lending_borrow(sim, b->proto, b->id, tok, m * share);
}

static void tb_open(struct tborrower *b, struct sp_sim *sim)
{
    struct sp_rng *rng = sp_sim_rng(sim, b->id);
    bool btc = sp_rng_uniform(rng) < 0.3;
    sp_token coll = btc ? b->btc : b->eth;
    double amt = (btc ? 0.1 : 1.0) * (1 + 20 * sp_rng_uniform(rng));
    sp_mint(sim, coll, b->id, amt);
    if (sp_lending_deposit(sim, b->proto, b->id, coll, amt)) return;
    if (!b->cdp && sp_rng_uniform(rng) < 0.4) {           /* a second collateral */
        sp_mint(sim, b->btc, b->id, 0.5);
        sp_lending_deposit(sim, b->proto, b->id, b->btc, 0.5);
    }
    double share = 0.55 + 0.44 * sp_rng_uniform(rng);
    if (!b->cdp && sp_rng_uniform(rng) < 0.3) {           /* owes two assets: multi group */
        tb_borrow_share(b, sim, b->dai, share / 2);
        tb_borrow_share(b, sim, b->usdc, share);
    } else {
        tb_borrow_share(b, sim, b->debt, share);
    }
}

static void tb_adjust(struct tborrower *b, struct sp_sim *sim)
{
    struct sp_rng *rng = sp_sim_rng(sim, b->id);
    sp_token d = b->debt;
    double u = sp_rng_uniform(rng);
    if (u < 0.3) {
        double owe = sp_lending_debt(sim, b->proto, b->id, d);
        double have = sp_balance(sim, b->id, d);
        double pay = 0.3 * (owe < have ? owe : have);
        if (pay > 0) sp_lending_repay(sim, b->proto, b->id, b->id, d, pay, NULL);
    } else if (u < 0.6) {
        tb_borrow_share(b, sim, d, 0.5 * sp_rng_uniform(rng));
    } else if (u < 0.7) {
        sp_mint(sim, b->eth, b->id, 0.5);
        sp_lending_deposit(sim, b->proto, b->id, b->eth, 0.5);
    }
    b->n_actions++;
}

static void tb_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct tborrower *b = self;
    if (ev->kind == B_OPEN) tb_open(b, sim);
    else tb_adjust(b, sim);
    sp_time next = ev->t + 10 * SP_MIN +
                   (sp_time)sp_rng_below(sp_sim_rng(sim, b->id), (uint64_t)(40 * SP_MIN));
    if (next <= sp_sim_horizon(sim)) {
        ev->kind = B_ADJUST;
        sp_sim_again(sim, ev, next);
    }
}

static int tb_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct tborrower *b = self;
    return sp_snap_put_u64(w, b->n_actions);
}

static int tb_restore(void *self, struct sp_snapshot_reader *r)
{
    struct tborrower *b = self;
    return sp_snap_get_u64(r, &b->n_actions);
}

static const struct sp_module_ops tborrower_ops = {
    .kind = "agent", .type = "tborrower", .summary = "test borrower", .schema = &tb_schema,
    .state_size = sizeof(struct tborrower), .count = tb_count, .init = tb_init,
    .start = tb_start, .on_event = tb_on_event, .snapshot = tb_snapshot, .restore = tb_restore,
};

/* ---- a liquidator ---------------------------------------------------------------- */

enum { L_CHANGE = 1, L_KICK = 2, L_ACT = 3, L_POLL = 4 };

struct tl_cfg { int64_t unused; };

struct tliq {
    sp_id id;
    sp_id protos[8];
    size_t n_protos;
    sp_token tok[5];
    /* FIFO of (proto, owner) notified liquidatable; watched auctions (proto, id) */
    uint64_t *fifo, *watch;
    size_t n_fifo, head, n_watch, cap_fifo, cap_watch;
    uint64_t hash, n_notes, n_done;
};

static const struct sp_field tl_fields[] = {
    { "unused", SP_T_INT, 0, 0, 0, "0", "1", "Nothing.", offsetof(struct tl_cfg, unused), NULL, 0 },
};

static const struct sp_schema tl_schema = {
    "agents[type: tliq]", "Test liquidator.", tl_fields, 1, sizeof(struct tl_cfg), NULL
};

static int push(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        uint64_t *p = realloc(*a, c * sizeof *p);
        if (!p) return SP_ENOMEM;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return SP_OK;
}

static int tl_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct tliq *q = self;
    (void)cfg;
    q->id = id;
    q->hash = 1469598103934665603ull;
    const char *names[5] = { "ETH", "BTC", "USDC", "DAI", "USDX" };
    for (int i = 0; i < 5; i++) q->tok[i] = sp_token_find(sim, names[i]);
    for (sp_id i = 0; i < sp_sim_entity_count(sim) && q->n_protos < 8; i++)
        if (sp_lending_is(sim, i)) q->protos[q->n_protos++] = i;
    return SP_OK;
}

static int tl_start(void *self, struct sp_sim *sim)
{
    struct tliq *q = self;
    for (size_t i = 0; i < q->n_protos; i++) {
        sp_id p = q->protos[i];
        enum sp_liq_mechanism m = sp_liq_mechanism(sim, p);
        if (sp_lending_subscribe(sim, p, q->id, L_CHANGE)) return SP_EINVAL;
        if ((m == SP_LIQ_DUTCH || m == SP_LIQ_ENGLISH) &&
            sp_liq_subscribe_auctions(sim, p, q->id, L_KICK))
            return SP_EINVAL;
        for (int t = 2; t < 5; t++) sp_mint(sim, q->tok[t], q->id, 1e9);
    }
    return sp_sim_schedule(sim, 45 * SP_SEC, SP_PRIO_AGENT, q->id, L_POLL) ? SP_OK : SP_ENOMEM;
}

static void fold(struct tliq *q, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        q->hash ^= (v >> (8 * i)) & 0xff;
        q->hash *= 1099511628211ull;
    }
}

static void tl_act(struct tliq *q, struct sp_sim *sim)
{
    if (q->head >= q->n_fifo) return;
    uint64_t v = q->fifo[q->head++];
    sp_id proto = (sp_id)(v >> 32), owner = (sp_id)v;
    enum sp_liq_mechanism m = sp_liq_mechanism(sim, proto);
    if (m == SP_LIQ_ENGLISH) {
        if (sp_liq_bark(sim, proto, q->id, owner, NULL) == SP_OK) q->n_done++;
        return;
    }
    if (m != SP_LIQ_FIXED_SPREAD) return;
    sp_token best_d = -1, best_c = -1;
    double bd = 0, bc = 0;
    for (int t = 0; t < 5; t++) {
        double d = sp_lending_debt(sim, proto, owner, q->tok[t]);
        double c = sp_lending_collateral(sim, proto, owner, q->tok[t]) *
                   sp_lending_price(sim, proto, q->tok[t]);
        if (d > bd) { bd = d; best_d = q->tok[t]; }
        if (c > bc) { bc = c; best_c = q->tok[t]; }
    }
    if (best_d < 0 || best_c < 0) return;
    struct sp_liq_result res;
    if (sp_liq_fixed(sim, proto, q->id, owner, best_d, best_c, 0.6 * bd, &res) == SP_OK) {
        q->n_done++;
        fold(q, (uint64_t)(res.debt_repaid * 1e6));
    }
}

/* Look at every watched auction: dutch take / redo, english tend / dent / deal. */
static void tl_poll(struct tliq *q, struct sp_sim *sim)
{
    struct sp_rng *rng = sp_sim_rng(sim, q->id);
    size_t keep = 0;
    for (size_t i = 0; i < q->n_watch; i++) {
        uint64_t v = q->watch[i];
        sp_id proto = (sp_id)(v >> 32);
        uint32_t aid = (uint32_t)v;
        struct sp_auction_view a;
        if (sp_liq_auction(sim, proto, aid, &a) || !a.live) continue;
        if (sp_liq_mechanism(sim, proto) == SP_LIQ_DUTCH) {
            if (a.needs_redo) sp_liq_redo(sim, proto, q->id, aid);
            else if (a.price <= a.oracle_price * (0.9 + 0.08 * sp_rng_uniform(rng)))
                sp_liq_take(sim, proto, q->id, aid, a.lot * (0.3 + 0.7 * sp_rng_uniform(rng)),
                            a.price, NULL, NULL);
        } else {
            sp_time now = sp_sim_now(sim);
            if ((a.n_bids > 0 && a.tic < now) || a.end < now) {
                sp_liq_deal(sim, proto, aid);
            } else if (a.bid < a.tab) {
                double bid = a.bid * 1.06 + a.lot * a.oracle_price * 0.2;
                sp_liq_tend(sim, proto, q->id, aid, bid < a.tab ? bid : a.tab);
            } else if (sp_rng_uniform(rng) < 0.5) {
                sp_liq_dent(sim, proto, q->id, aid, a.lot / 1.08);
            }
        }
        if (sp_liq_auction(sim, proto, aid, &a) == SP_OK && a.live) q->watch[keep++] = v;
    }
    q->n_watch = keep;
}

static void tl_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct tliq *q = self;
    switch (ev->kind) {
    case L_CHANGE: {
        uint64_t v = (uint64_t)ev->data.u[1] << 32 | (uint32_t)ev->data.u[0];
        fold(q, v ^ ((uint64_t)ev->data.i[2] << 63));
        q->n_notes++;
        if (ev->data.i[2] == 1 && !push(&q->fifo, &q->n_fifo, &q->cap_fifo, v)) {
            sp_time d = 5 * SP_SEC + (sp_time)sp_rng_below(sp_sim_rng(sim, q->id), 55 * SP_SEC);
            if (ev->t + d <= sp_sim_horizon(sim))
                sp_sim_schedule(sim, ev->t + d, SP_PRIO_AGENT, q->id, L_ACT);
        }
        break;
    }
    case L_KICK:
        fold(q, ev->data.u[0]);
        push(&q->watch, &q->n_watch, &q->cap_watch,
             (uint64_t)ev->data.u[1] << 32 | (uint32_t)ev->data.u[0]);
        break;
    case L_ACT:
        tl_act(q, sim);
        break;
    case L_POLL:
        tl_poll(q, sim);
        if (ev->t + 45 * SP_SEC <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, ev->t + 45 * SP_SEC);
        break;
    }
}

static void tl_finish(void *self, struct sp_sim *sim)
{
    struct tliq *q = self;
    sp_sim_summary(sim, "tliq_notes", (double)q->n_notes);
    sp_sim_summary(sim, "tliq_done", (double)q->n_done);
    sp_sim_summary(sim, "tliq_hash", (double)(q->hash >> 11));
}

static void tl_release(void *self)
{
    struct tliq *q = self;
    free(q->fifo);
    free(q->watch);
}

static int tl_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct tliq *q = self;
    sp_snap_put_array(w, 3);
    sp_snap_put_u64s(w, (const uint64_t[]){ q->hash, q->n_notes, q->n_done, q->head }, 4);
    sp_snap_put_u64s(w, q->fifo, q->n_fifo);
    return sp_snap_put_u64s(w, q->watch, q->n_watch);
}

static int tl_restore(void *self, struct sp_snapshot_reader *r)
{
    struct tliq *q = self;
    uint64_t v[4];
    size_t n;
    sp_snap_get_array_n(r, 3);
    sp_snap_get_u64s(r, v, 4);
    q->hash = v[0], q->n_notes = v[1], q->n_done = v[2];
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    q->n_fifo = 0;
    for (size_t i = 0; i < n; i++) push(&q->fifo, &q->n_fifo, &q->cap_fifo, 0);
    sp_snap_get_u64s(r, q->fifo, n);
    if (v[3] > n) return sp_snap_fail(r, "bad head");
    q->head = (size_t)v[3];
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    q->n_watch = 0;
    for (size_t i = 0; i < n; i++) push(&q->watch, &q->n_watch, &q->cap_watch, 0);
    sp_snap_get_u64s(r, q->watch, n);
    return sp_snap_get_end(r);
}

static const struct sp_module_ops tliq_ops = {
    .kind = "agent", .type = "tliq", .summary = "test liquidator", .schema = &tl_schema,
    .state_size = sizeof(struct tliq), .init = tl_init, .start = tl_start,
    .on_event = tl_on_event, .finish = tl_finish, .release = tl_release,
    .snapshot = tl_snapshot, .restore = tl_restore,
};

/* ---- the scenario ------------------------------------------------------------------ */

static struct sp_registry *reg;
static char yaml_path[1024];

static const char SCENARIO[] =
    "name: snap_lending\n"
    "seed: 11\n"
    "horizon: 8h\n"
    "output: {sample_every: 10m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: BTC, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: DAI, kind: stable}\n"
    "  - {name: USDX, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: pool}\n"
    "  - {name: aDAI, kind: receipt, underlying: DAI, issuer: pool}\n"
    "  - {name: bUSDC, kind: receipt, underlying: USDC, issuer: ammpool}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 90%, step: 1m,\n"
    "     shocks: [{at: 2h, drop: 25%, over: 40m}, {at: 5h, drop: 15%, over: 20m}]}\n"
    "  - {type: gbm, asset: BTC, initial: 30000, volatility: 70%, step: 1m,\n"
    "     shocks: [{at: 2h30m, drop: 20%, over: 30m}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: 20000,\n"
    "     reserve_quote: 40000000}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: reference, of: reference_ETH}, poll: 1m,\n"
    "     deviation: 0.5%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_btc, source: {type: reference, of: reference_BTC}, poll: 1m,\n"
    "     deviation: 0.5%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1d, heartbeat: 1d}\n"
    "  - {type: chainlink, name: o_dai, source: {type: value, of: DAI}, poll: 1d, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: pool\n"
    "    positions_every: 30m\n"
    "    accrue_every: 10m\n"
    "    liquidation: {mechanism: fixed_spread}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%, liquidation_threshold: 85%}\n"
    "      - {token: BTC, oracle: o_btc, ltv: 70%, liquidation_threshold: 75%, haircut: 2%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 1e8, reserve: 1e4, slope1: 8%, slope2: 100%}\n"
    "      - {token: DAI, oracle: o_dai, collateral: false, borrowable: true, receipt: aDAI,\n"
    "         initial_supply: 1e8, reserve: 1e3}\n"
    "  - type: cdp\n"
    "    name: maker\n"
    "    stablecoin: DAI\n"
    "    surplus: 1000\n"
    "    liquidation: {mechanism: dutch_auction, kick: protocol, step: 60s, cut: 0.98,\n"
    "                  tail: 40m, cusp: 50%, tip: 5, chip: 0.1%, hole: 3e6}\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: o_eth, liquidation_ratio: 1.5, stability_fee: 5%}\n"
    "      - {token: BTC, oracle: o_btc, liquidation_ratio: 1.4, stability_fee: 3%, dust: 100}\n"
    "  - type: cdp\n"
    "    name: flipper\n"
    "    stablecoin: USDX\n"
    "    liquidation: {mechanism: english_auction, kick: keeper, beg: 1.05, ttl: 10m, tau: 2h}\n"
    "    collaterals:\n"
    "      - {token: ETH, oracle: o_eth, liquidation_ratio: 1.5}\n"
    "      - {token: BTC, oracle: o_btc, liquidation_ratio: 1.5}\n"
    "  - type: pool\n"
    "    name: ammpool\n"
    "    liquidation: {mechanism: amm_direct, venue: amm}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%, liquidation_threshold: 85%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: bUSDC,\n"
    "         initial_supply: 1e8}\n"
    "agents:\n"
    "  - {type: tliq, name: liq}\n"
    "  - {type: tborrower, name: bp, count: 40, protocol: pool}\n"
    "  - {type: tborrower, name: bm, count: 30, protocol: maker}\n"
    "  - {type: tborrower, name: bf, count: 20, protocol: flipper}\n"
    "  - {type: tborrower, name: ba, count: 20, protocol: ammpool}\n";

static int setup(void **state)
{
    (void)state;
    if (sp_registry_create(&reg, sp_registry_builtin()) ||
        sp_registry_add(reg, &tborrower_ops) || sp_registry_add(reg, &tliq_ops))
        return -1;
    snprintf(yaml_path, sizeof yaml_path, "%s/snap_lending.yaml", tu_tmpdir("snaplending"));
    tu_write(yaml_path, SCENARIO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sp_registry_destroy(reg);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Restore `buf` into a new world; the return code (message in *msg). */
static int restore(const void *buf, size_t len, struct st_world *w, char *msg, size_t size)
{
    struct sp_diag d = { 0 };
    int rc = st_try_restore_buffer(w, buf, len, "test", reg, NULL, 0, &d);
    snprintf(msg, size, "%s", d.text ? d.text : "");
    sp_diag_release(&d);
    return rc;
}

/* ---- tests ------------------------------------------------------------------------- */

/* The world is busy: positions in every protocol, multi-debt ones, live
 * dutch and english auctions with bids, liquidations by every mechanism. */
static void test_world_is_busy(void **state)
{
    (void)state;
    struct st_world w;
    st_open(&w, yaml_path, reg);
    sp_id pool = sp_sim_find(w.sim, "pool"), maker = sp_sim_find(w.sim, "maker");
    sp_id flip = sp_sim_find(w.sim, "flipper"), amm = sp_sim_find(w.sim, "ammpool");
    size_t live_dutch = 0, live_english = 0, english_bids = 0, multi = 0;
    for (sp_time t = 30 * SP_MIN; t <= 8 * SP_HOUR; t += 5 * SP_MIN) {
        st_run_to(w.sim, t);
        uint32_t ids[256];
        size_t n = sp_liq_auctions(w.sim, maker, ids, 256);
        live_dutch += n;
        n = sp_liq_auctions(w.sim, flip, ids, 256);
        live_english += n;
        for (size_t i = 0; i < n && i < 256; i++) {
            struct sp_auction_view a;
            assert_int_equal(sp_liq_auction(w.sim, flip, ids[i], &a), 0);
            english_bids += a.n_bids > 0;
        }
        for (size_t i = 0; i < sp_lending_position_count(w.sim, pool); i++) {
            sp_id o = sp_lending_position_owner(w.sim, pool, i);
            multi += sp_lending_debt(w.sim, pool, o, sp_token_find(w.sim, "USDC")) > 0 &&
                     sp_lending_debt(w.sim, pool, o, sp_token_find(w.sim, "DAI")) > 0;
        }
        for (sp_id p = pool; p <= amm; p++) assert_int_equal(sp_lending_check(w.sim, p), 0);
    }
    const struct tliq *q = sp_sim_entity_state(w.sim, sp_sim_find(w.sim, "liq"));
    assert_true(q->n_notes > 0);
    assert_true(q->n_done > 0);
    assert_true(live_dutch > 0);
    assert_true(live_english > 0);
    assert_true(english_bids > 0);
    assert_true(multi > 0);
    st_close(&w);
}

static void check_at(sp_time at)
{
    struct snapcheck k = { 0 };
    k.scenario = yaml_path;
    k.reg = reg;
    k.until = 8 * SP_HOUR;
    k.at = at;
    k.workdir = tu_tmpdir("snaplending");
    int rc = snapcheck_run(&k);
    if (rc) fail_msg("snapshot at %lld s: %s", (long long)(at / SP_SEC), k.msg);
}

/* Before the shocks: positions and accrual only. */
static void test_snapcheck_1h(void **state) { (void)state; check_at(1 * SP_HOUR); }
/* In the first shock: crossings, fixed-spread liquidations, auctions kicked. */
static void test_snapcheck_2h20m(void **state) { (void)state; check_at(2 * SP_HOUR + 20 * SP_MIN); }
/* Auctions in flight (takes, redo, bids, dents). */
static void test_snapcheck_2h47m(void **state) { (void)state; check_at(2 * SP_HOUR + 47 * SP_MIN + 13 * SP_SEC); }
/* The second shock. */
static void test_snapcheck_5h10m(void **state) { (void)state; check_at(5 * SP_HOUR + 10 * SP_MIN); }

/* In process: restore, the index agrees with the positions, and running on
 * equals running in one go. */
static void test_restore_in_process(void **state)
{
    (void)state;
    struct st_world a, b;
    char msg[1024];
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, 2 * SP_HOUR + 35 * SP_MIN);
    size_t len;
    void *buf = st_encode(&a, &len);
    int rc = restore(buf, len, &b, msg, sizeof msg);
    if (rc) fail_msg("%s", msg);
    for (sp_id p = 0; p < sp_sim_entity_count(b.sim); p++)
        if (sp_lending_is(b.sim, p)) assert_int_equal(sp_lending_check(b.sim, p), 0);
    size_t l2;
    void *again = st_encode(&b, &l2);
    assert_int_equal(l2, len);
    assert_memory_equal(again, buf, len);
    st_run_to(a.sim, 6 * SP_HOUR);
    st_run_to(b.sim, 6 * SP_HOUR);
    size_t la, lb;
    void *ea = st_encode(&a, &la), *eb = st_encode(&b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ea, eb, la);
    free(ea);
    free(eb);
    free(again);
    free(buf);
    st_close(&a);
    st_close(&b);
}

/* Corrupted payloads are refused with the entity's name, never a crash: a
 * repeated position owner, an owner id past the entities. */
static void test_corrupt_payload(void **state)
{
    (void)state;
    struct st_world a, b;
    char msg[1024];
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, 3 * SP_HOUR);
    sp_id pool = sp_sim_find(a.sim, "pool");
    size_t n = sp_lending_position_count(a.sim, pool);
    assert_true(n >= 4);
    unsigned char owners[16];
    for (size_t i = 0; i < 4; i++) {
        sp_id o = sp_lending_position_owner(a.sim, pool, i);
        for (int k = 0; k < 4; k++) owners[4 * i + k] = (unsigned char)(o >> (8 * k));
    }
    size_t len;
    unsigned char *buf = st_encode(&a, &len);
    unsigned char *at = st_find_bytes(buf, len, owners, sizeof owners);
    assert_non_null(at);
    memset(&b, 0, sizeof b);
    for (int variant = 0; variant < 2; variant++) {
        unsigned char *copy = malloc(len);
        memcpy(copy, buf, len);
        unsigned char *p = copy + (at - buf);
        if (variant == 0) memcpy(p + 4, p, 4);                      /* a repeated owner */
        else p[3] = 0x7f;                                           /* a huge owner id */
        st_fix_checksum(copy, len);      /* the checksum covers the body */
        int rc = restore(copy, len, &b, msg, sizeof msg);
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(msg, "pool"));
        assert_non_null(strstr(msg, "owner"));
        st_close(&b);
        memset(&b, 0, sizeof b);
        free(copy);
    }
    free(buf);
    st_close(&a);
}

/* Random damage around the pool's payload (behind a valid checksum): the
 * restore fails with a message or succeeds, and a run goes on without a
 * crash (run it under -DSPIRAL_SANITIZE=ON). */
static void test_random_damage_never_crashes(void **state)
{
    (void)state;
    struct st_world a, b;
    char msg[1024];
    st_open(&a, yaml_path, reg);
    st_run_to(a.sim, 2 * SP_HOUR + 40 * SP_MIN);
    sp_id pool = sp_sim_find(a.sim, "pool");
    unsigned char owners[8];
    for (size_t i = 0; i < 2; i++) {
        sp_id o = sp_lending_position_owner(a.sim, pool, i);
        for (int k = 0; k < 4; k++) owners[4 * i + k] = (unsigned char)(o >> (8 * k));
    }
    size_t len;
    unsigned char *buf = st_encode(&a, &len);
    unsigned char *at = st_find_bytes(buf, len, owners, sizeof owners);
    assert_non_null(at);
    size_t lo = (size_t)(at - buf) > 300 ? (size_t)(at - buf) - 300 : SP_SNAPSHOT_HEADER_SIZE;
    size_t hi = (size_t)(at - buf) + 4000 < len - 8 ? (size_t)(at - buf) + 4000 : len - 8;
    uint64_t x = 88172645463325252ull;
    unsigned char *copy = malloc(len);
    size_t ok = 0;
    for (int trial = 0; trial < 200; trial++) {
        memcpy(copy, buf, len);
        for (int m = 0; m < 1 + trial % 3; m++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            copy[lo + x % (hi - lo)] ^= (unsigned char)(1u << (x >> 40) % 8);
        }
        st_fix_checksum(copy, len);
        memset(&b, 0, sizeof b);
        if (restore(copy, len, &b, msg, sizeof msg) == 0) {
            struct sp_run_opts o = { .until = 2 * SP_HOUR + 50 * SP_MIN };
            sp_sim_run(b.sim, &o);
            ok++;
        }
        st_close(&b);
    }
    assert_true(ok < 200);
    free(copy);
    free(buf);
    st_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_is_busy),
        cmocka_unit_test(test_restore_in_process),
        cmocka_unit_test(test_snapcheck_1h),
        cmocka_unit_test(test_snapcheck_2h20m),
        cmocka_unit_test(test_snapcheck_2h47m),
        cmocka_unit_test(test_snapcheck_5h10m),
        cmocka_unit_test(test_corrupt_payload),
        cmocka_unit_test(test_random_damage_never_crashes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
