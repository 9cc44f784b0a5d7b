/*
 * test_chain.c — the chain module (market/chain.c): the EIP-1559 base-fee
 * update against the spec's formula; block building (order by tip, ties by
 * submission; the gas limit; fee caps below the base fee waiting; deadlines
 * and drop_kind); instant delivery; a congestion spike that locks out a
 * fixed fee cap but not an adaptive one; determinism; fee conservation in
 * the ledger; the blocks table; bad input.
 *
 * A test-only agent type "txbot" (registered in a registry of its own)
 * records every event it gets with the chain's "current tx" context; the
 * tests submit its transactions with sp_chain_submit between sp_sim_step
 * calls, or from its handler (kind K_SUBMIT).
 *
 * Reference: EIP-1559 (https://eips.ethereum.org/EIPS/eip-1559),
 * "Specification": BASE_FEE_MAX_CHANGE_DENOMINATOR = 8, ELASTICITY_MULTIPLIER
 * = 2, gas target = gas limit / 2; base fee of the next block =
 *   b + b·(used − target)/target/8  (at least +1 wei)  when used > target,
 *   b − b·(target − used)/target/8                       when used < target.
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
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/world.h"
#include "chain.h"

/* |a - b| <= eps, reporting both values. */
#define assert_double_equal(a, b, eps) check_close((a), (b), (eps), #a, __FILE__, __LINE__)
static void check_close(double a, double b, double eps, const char *what, const char *file,
                        int line)
{
    if (fabs(a - b) <= eps) return;
    fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g (+- %g)\n", file, line, what, a, b, eps);
    fail();
}

/* ---- the scripted test agent ------------------------------------------------- */

enum { K_TX = 7, K_DROP = 8, K_SUBMIT = 9, K_LATER = 10 };

struct seen {
    sp_time t;
    uint16_t kind;
    uint64_t tag;                 /* data.u[0] */
    uint64_t cur_tx;
    double cur_fee;
    sp_time cur_submitted;
};

struct bot {
    sp_id id;
    struct seen log[256];
    size_t n;
    size_t submit_done_at;        /* log length when the K_SUBMIT handler returned */
};

static void bot_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct bot *b = self;
    if (b->n < 256)
        b->log[b->n++] = (struct seen){ ev->t, ev->kind, ev->data.u[0], sp_chain_current_tx(sim),
                                        sp_chain_current_fee(sim),
                                        sp_chain_current_submitted(sim) };
    if (ev->kind == K_SUBMIT) {
        struct sp_tx tx = { .sender = b->id, .kind = K_TX, .gas = 1e5, .max_fee = 100,
                            .priority_fee = 1 };
        tx.data.u[0] = 42;
        assert_int_equal(sp_chain_submit(sim, &tx, NULL), 0);
        /* Something else at the same instant, in the agents' class: it runs
         * before the transaction (class 4 < 5). */
        assert_non_null(sp_sim_schedule(sim, ev->t, SP_PRIO_AGENT, b->id, K_LATER));
        b->submit_done_at = b->n;
    }
}

static int bot_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    (void)sim; (void)cfg;
    struct bot *b = self;
    b->id = id;
    return SP_OK;
}

struct bot_cfg { int unused; };
static const struct sp_schema bot_schema = { "agents[type: txbot]", "test agent", NULL, 0,
                                             sizeof(struct bot_cfg), NULL };
static const struct sp_module_ops bot_ops = {
    .kind = "agent", .type = "txbot", .summary = "test", .schema = &bot_schema,
    .state_size = sizeof(struct bot), .init = bot_init, .on_event = bot_on_event,
};

/* ---- running scenarios -------------------------------------------------------- */

/* A tw_world and the test agent in it; `sim` is tw.sim, for brevity. */
struct world {
    struct tw_world tw;
    struct sp_sim *sim;
    struct bot *bot;
    sp_id bot_id, chain_id;
};

/* The built-in registry and the test agent. */
static struct sp_registry *registry(void)
{
    struct sp_registry *reg;
    assert_int_equal(sp_registry_create(&reg, sp_registry_builtin()), 0);
    assert_int_equal(sp_registry_add(reg, &bot_ops), 0);
    return reg;
}

/* Load tests/chain-NAME.yaml and bind: the code, diagnostics in w->tw.d. */
static int world_bind(struct world *w, const char *name, const char *yaml)
{
    char nm[256];
    memset(w, 0, sizeof *w);
    snprintf(nm, sizeof nm, "chain-%s", name);
    return tw_bind(&w->tw, &(struct tw_opts){ .name = nm, .text = yaml, .registry = registry });
}

static void world_release(struct world *w)
{
    tw_release(&w->tw);
}

static void world_start_seed(struct world *w, const char *name, const char *yaml, int64_t seed)
{
    int rc = world_bind(w, name, yaml);
    if (seed >= 0) w->tw.cfg.seed = seed;
    if (rc) sp_diag_print(&w->tw.d, stderr);
    assert_int_equal(rc, 0);
    tw_start(&w->tw, &(struct tw_opts){ 0 });
    w->sim = w->tw.sim;
    w->bot_id = sp_sim_find(w->sim, "bot");
    w->chain_id = sp_sim_find(w->sim, "chain");
    assert_int_not_equal(w->chain_id, SP_ID_NONE);
    if (w->bot_id != SP_ID_NONE) w->bot = sp_sim_entity_state(w->sim, w->bot_id);
}

static void world_start(struct world *w, const char *name, const char *yaml)
{
    world_start_seed(w, name, yaml, -1);
}

static void world_step(struct world *w, sp_time until)
{
    tw_advance(&w->tw, until);
}

static uint64_t submit(struct world *w, double gas, double max_fee, double tip, uint64_t tag,
                       sp_time deadline, uint16_t drop_kind)
{
    struct sp_tx tx = { .sender = w->bot_id, .kind = K_TX, .drop_kind = drop_kind, .gas = gas,
                        .max_fee = max_fee, .priority_fee = tip, .deadline = deadline };
    tx.data.u[0] = tag;
    uint64_t id = 0;
    assert_int_equal(sp_chain_submit(w->sim, &tx, &id), 0);
    return id;
}

#define HEAD "horizon: 1h\ntokens:\n  - {name: ETH, kind: base}\n"
#define BOT  "agents:\n  - {type: txbot, name: bot}\n"
/* No background demand: blocks hold only the bot's transactions. */
#define QUIET_CHAIN(extra) "chain: {type: eip1559" extra "}\n"

/* ---- EIP-1559 ---------------------------------------------------------------- */

/* The update rule itself, against the spec's formula (values worked by hand:
 * 20 gwei, target 15M gas, denominator 8). */
static void test_base_fee_formula_matches_eip1559(void **state)
{
    (void)state;
    assert_double_equal(sp_chain_next_base_fee(20, 30e6, 15e6, 8), 22.5, 1e-12);   /* +12.5 % */
    assert_double_equal(sp_chain_next_base_fee(20, 0, 15e6, 8), 17.5, 1e-12);      /* -12.5 % */
    assert_double_equal(sp_chain_next_base_fee(20, 15e6, 15e6, 8), 20, 0);         /* at target */
    assert_double_equal(sp_chain_next_base_fee(20, 22.5e6, 15e6, 8), 21.25, 1e-12); /* +6.25 % */
    assert_double_equal(sp_chain_next_base_fee(20, 7.5e6, 15e6, 8), 18.75, 1e-12);  /* -6.25 % */
    /* An increase is at least 1 wei (spec: max(..., 1)). */
    assert_double_equal(sp_chain_next_base_fee(0, 30e6, 15e6, 8), 1e-9, 0);
}

/* The same rule through blocks: full, empty and half blocks of the bot's
 * transactions (gas limit 30M; one tx of 30M gas fills a block). */
static void test_blocks_update_base_fee_per_eip1559(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "fee", HEAD QUIET_CHAIN("") BOT);
    assert_false(sp_chain_instant(w.sim));
    assert_double_equal(sp_chain_base_fee(w.sim), 20, 0);
    submit(&w, 30e6, 1000, 1, 1, 0, 0);                      /* full block at 12 s */
    world_step(&w, 12 * SP_SEC);
    double b = 20 * (1 + (30e6 - 15e6) / 15e6 / 8);
    assert_double_equal(sp_chain_base_fee(w.sim), b, 1e-12);
    world_step(&w, 24 * SP_SEC);                             /* empty */
    b = b * (1 - 15e6 / 15e6 / 8);
    assert_double_equal(sp_chain_base_fee(w.sim), b, 1e-12);
    submit(&w, 15e6, 1000, 1, 2, 0, 0);                      /* at target */
    world_step(&w, 36 * SP_SEC);
    assert_double_equal(sp_chain_base_fee(w.sim), b, 1e-12);
    submit(&w, 20e6, 1000, 1, 3, 0, 0);                      /* 2/3 full */
    world_step(&w, 48 * SP_SEC);
    b = b * (1 + (20e6 - 15e6) / 15e6 / 8);
    assert_double_equal(sp_chain_base_fee(w.sim), b, 1e-12);
    assert_int_equal(w.bot->n, 3);
    world_release(&w);
}

/* ---- block building ---------------------------------------------------------- */

static void test_block_orders_by_tip_ties_by_submission(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "order", HEAD QUIET_CHAIN("") BOT);
    static const double tips[] = { 1, 3, 2, 3, 1 };
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) ids[i] = submit(&w, 1e5, 100, tips[i], (uint64_t)i, 0, 0);
    for (int i = 0; i < 5; i++) assert_int_equal(ids[i], (uint64_t)i + 1);
    assert_int_equal(sp_chain_pending(w.sim), 5);
    world_step(&w, 11 * SP_SEC);
    assert_int_equal(w.bot->n, 0);                           /* nothing before the block */
    world_step(&w, 12 * SP_SEC);
    assert_int_equal(w.bot->n, 5);
    static const uint64_t order[] = { 1, 3, 2, 0, 4 };       /* tips 3,3,2,1,1 */
    for (int i = 0; i < 5; i++) {
        const struct seen *s = &w.bot->log[i];
        assert_int_equal(s->t, 12 * SP_SEC);
        assert_int_equal(s->kind, K_TX);
        assert_int_equal(s->tag, order[i]);
        assert_int_equal(s->cur_tx, ids[order[i]]);
        assert_int_equal(s->cur_submitted, 0);
        /* fee = gas x (base + tip) gwei */
        assert_double_equal(s->cur_fee, 1e5 * (20 + tips[order[i]]) * 1e-9, 1e-15);
    }
    assert_int_equal(sp_chain_pending(w.sim), 0);
    /* outside a delivery there is no context */
    assert_int_equal(sp_chain_current_tx(w.sim), 0);
    assert_int_equal(sp_chain_current_submitted(w.sim), -1);
    world_release(&w);
}

/* The effective tip min(tip, max_fee - base) orders, not the stated tip. */
static void test_block_orders_by_effective_tip(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "efftip", HEAD QUIET_CHAIN("") BOT);
    submit(&w, 1e5, 21, 5, 0, 0, 0);                         /* effective 1 */
    submit(&w, 1e5, 100, 2, 1, 0, 0);                        /* effective 2 */
    world_step(&w, 12 * SP_SEC);
    assert_int_equal(w.bot->n, 2);
    assert_int_equal(w.bot->log[0].tag, 1);
    assert_int_equal(w.bot->log[1].tag, 0);
    assert_double_equal(w.bot->log[1].cur_fee, 1e5 * 21 * 1e-9, 1e-15);
    world_release(&w);
}

static void test_block_respects_gas_limit(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "limit", HEAD QUIET_CHAIN(", gas_limit: 1e6") BOT);
    submit(&w, 4e5, 100, 4, 0, 0, 0);
    submit(&w, 4e5, 100, 3, 1, 0, 0);
    submit(&w, 4e5, 100, 2, 2, 0, 0);                        /* does not fit: 1.2M */
    submit(&w, 1.5e5, 100, 0.5, 3, 0, 0);                    /* fits after the skip */
    struct sp_tx big = { .sender = w.bot_id, .kind = K_TX, .gas = 2e6, .max_fee = 100 };
    assert_int_equal(sp_chain_submit(w.sim, &big, NULL), SP_EINVAL);   /* never fits */
    world_step(&w, 12 * SP_SEC);
    assert_int_equal(w.bot->n, 3);
    assert_int_equal(w.bot->log[0].tag, 0);
    assert_int_equal(w.bot->log[1].tag, 1);
    assert_int_equal(w.bot->log[2].tag, 3);
    assert_int_equal(sp_chain_pending(w.sim), 1);
    world_step(&w, 24 * SP_SEC);
    assert_int_equal(w.bot->n, 4);
    assert_int_equal(w.bot->log[3].tag, 2);
    assert_int_equal(w.bot->log[3].t, 24 * SP_SEC);
    world_release(&w);
}

/* A fee cap below the base fee waits; empty blocks lower the base fee by
 * 1/8 each (20 -> 17.5), and then it gets in. */
static void test_low_fee_cap_waits_until_base_fee_falls(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "wait", HEAD QUIET_CHAIN("") BOT);
    uint64_t id = submit(&w, 1e5, 19, 1, 5, 0, 0);
    world_step(&w, 12 * SP_SEC);
    assert_int_equal(w.bot->n, 0);
    assert_int_equal(sp_chain_pending(w.sim), 1);
    assert_double_equal(sp_chain_base_fee(w.sim), 17.5, 1e-12);
    world_step(&w, 24 * SP_SEC);
    assert_int_equal(w.bot->n, 1);
    assert_int_equal(w.bot->log[0].t, 24 * SP_SEC);
    assert_int_equal(w.bot->log[0].cur_tx, id);
    /* effective tip min(1, 19 - 17.5) = 1 */
    assert_double_equal(w.bot->log[0].cur_fee, 1e5 * 18.5 * 1e-9, 1e-15);
    sp_sim_finish(w.sim);
    assert_double_equal(tw_summary(w.sim, "mean_inclusion_delay"), 24, 0);
    assert_double_equal(tw_summary(w.sim, "max_inclusion_delay"), 24, 0);
    assert_double_equal(tw_summary(w.sim, "max_base_fee"), 20, 0);
    world_release(&w);
}

/* A tx that cannot get in by its deadline is dropped: its drop_kind is
 * delivered at the deadline, with the same data and its id in context. */
static void test_deadline_drop_delivers_drop_kind(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "drop", HEAD QUIET_CHAIN("") BOT);
    uint64_t a = submit(&w, 1e5, 1, 1, 77, 30 * SP_SEC, K_DROP);  /* cap 1 << base 20 */
    submit(&w, 1e5, 1, 1, 78, 30 * SP_SEC, 0);                     /* dropped silently */
    uint64_t c = submit(&w, 1e5, 1, 1, 79, 5 * SP_SEC, K_DROP);    /* before the 1st block */
    world_step(&w, 24 * SP_SEC);
    assert_int_equal(w.bot->n, 1);
    assert_int_equal(w.bot->log[0].t, 5 * SP_SEC);
    assert_int_equal(w.bot->log[0].kind, K_DROP);
    assert_int_equal(w.bot->log[0].tag, 79);
    assert_int_equal(w.bot->log[0].cur_tx, c);
    assert_int_equal(sp_chain_pending(w.sim), 0);            /* both dropped at the 24 s block */
    world_step(&w, 40 * SP_SEC);
    assert_int_equal(w.bot->n, 2);
    assert_int_equal(w.bot->log[1].t, 30 * SP_SEC);
    assert_int_equal(w.bot->log[1].kind, K_DROP);
    assert_int_equal(w.bot->log[1].tag, 77);
    assert_int_equal(w.bot->log[1].cur_tx, a);
    assert_double_equal(w.bot->log[1].cur_fee, 0, 0);
    assert_int_equal(w.bot->log[1].cur_submitted, 0);
    sp_sim_finish(w.sim);
    assert_double_equal(tw_summary(w.sim, "n_dropped_tx"), 3, 0);
    world_release(&w);
}

/* ---- instant ------------------------------------------------------------------- */

static void check_instant(const char *name, const char *yaml)
{
    struct world w;
    world_start(&w, name, yaml);
    assert_true(sp_chain_instant(w.sim));
    assert_double_equal(sp_chain_base_fee(w.sim), 0, 0);
    struct sp_event *ev = sp_sim_schedule(w.sim, 5 * SP_SEC, SP_PRIO_AGENT, w.bot_id, K_SUBMIT);
    assert_non_null(ev);
    world_step(&w, 5 * SP_SEC);
    /* K_SUBMIT, then K_LATER (class 4) it scheduled, then the tx (class 5). */
    assert_int_equal(w.bot->n, 3);
    assert_int_equal(w.bot->submit_done_at, 1);
    assert_int_equal(w.bot->log[1].kind, K_LATER);
    const struct seen *s = &w.bot->log[2];
    assert_int_equal(s->kind, K_TX);
    assert_int_equal(s->t, 5 * SP_SEC);
    assert_int_equal(s->tag, 42);
    assert_int_equal(s->cur_tx, 1);
    assert_double_equal(s->cur_fee, 0, 0);
    assert_int_equal(s->cur_submitted, 5 * SP_SEC);
    world_release(&w);
}

static void test_instant_delivers_at_now_after_the_handler(void **state)
{
    (void)state;
    check_instant("instant_default", HEAD BOT);                      /* no chain: section */
    check_instant("instant_scalar", HEAD "chain: instant\n" BOT);
    check_instant("instant_map", HEAD "chain: {type: instant}\n" BOT);
}

/* A hand-built sim has no chain entity: the event is scheduled directly. */
static void test_no_chain_entity_schedules_directly(void **state)
{
    (void)state;
    struct sp_sim *sim;
    assert_int_equal(sp_sim_create(&sim, 1), 0);
    sp_id id;
    assert_int_equal(sp_sim_add_entity(sim, "bot", &bot_ops, NULL, &id), 0);
    assert_int_equal(sp_sim_init_entity(sim, id, NULL), 0);
    assert_int_equal(sp_sim_start(sim), 0);
    struct sp_tx tx = { .sender = id, .kind = K_TX, .gas = 1, .max_fee = 0 };
    uint64_t txid = 99;
    assert_true(sp_chain_instant(sim));
    assert_int_equal(sp_chain_submit(sim, &tx, &txid), 0);
    assert_int_equal(txid, 0);
    tx.gas = 0;
    assert_int_equal(sp_chain_submit(sim, &tx, NULL), SP_EINVAL);
    bool drained;
    sp_sim_step(sim, 0, UINT64_MAX, &drained);
    struct bot *b = sp_sim_entity_state(sim, id);
    assert_int_equal(b->n, 1);
    assert_int_equal(b->log[0].kind, K_TX);
    sp_sim_destroy(sim);
}

/* ---- congestion ---------------------------------------------------------------- */

/* Background: 10 tx/s x 12 s x 100k gas = 12M gas per block, under the 15M
 * target, with the base fee held at its 20 gwei floor.  A spike from 60 s
 * triples it (36M > the 30M limit): full blocks, +12.5 % a block.  At 100 s
 * a keeper with a fixed 25 gwei cap waits; one with cap 2 x base + tip gets
 * into the next block (its 2 gwei tip beats the background's 1 gwei). */
#define SPIKE_CHAIN                                                                     \
    "chain:\n  type: eip1559\n  min_base_fee: 20\n"                                   \
    "  background: {rate: 10, gas: 100000, tip: 1}\n"                                 \
    "  spikes: [{at: 60s, over: 60s, rate_factor: 3}]\n"

static void test_spike_locks_out_fixed_cap_not_adaptive(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "spike", HEAD SPIKE_CHAIN BOT);
    world_step(&w, 59 * SP_SEC);
    assert_double_equal(sp_chain_base_fee(w.sim), 20, 1e-9);
    world_step(&w, 100 * SP_SEC);
    double base = sp_chain_base_fee(w.sim);
    assert_true(base > 30);                                  /* ~20 x 1.125^4 = 32 */
    submit(&w, 2e5, 25, 2, 1, 0, 0);                         /* fixed */
    uint64_t adaptive = submit(&w, 2e5, 2 * base + 2, 2, 2, 0, 0);
    world_step(&w, 108 * SP_SEC);
    assert_int_equal(w.bot->n, 1);
    assert_int_equal(w.bot->log[0].tag, 2);
    assert_int_equal(w.bot->log[0].cur_tx, adaptive);
    assert_int_equal(w.bot->log[0].t, 108 * SP_SEC);
    assert_int_equal(sp_chain_pending(w.sim), 1);
    /* After the spike the base fee decays and the fixed cap gets in. */
    world_step(&w, 30 * SP_MIN);
    assert_int_equal(w.bot->n, 2);
    assert_int_equal(w.bot->log[1].tag, 1);
    assert_true(w.bot->log[1].t > 120 * SP_SEC);
    world_release(&w);
}

/* ---- determinism --------------------------------------------------------------- */

#define NOISY_CHAIN                                                                      \
    "chain:\n  type: eip1559\n"                                                        \
    "  background: {rate: 12.5, gas: {dist: lognormal, mean: 120000, sd: 60000},\n"    \
    "               tip: {dist: exponential, mean: 2},\n"                              \
    "               fee_cap: {dist: lognormal, mean: 30, sd: 15}}\n"                   \
    "  spikes: [{at: 10m, over: 5m, rate_factor: 2, tip_factor: 4}]\n"

static void base_fees(int64_t seed, double *out, size_t n)
{
    struct world w;
    world_start_seed(&w, "det", HEAD NOISY_CHAIN BOT, seed);
    for (size_t i = 0; i < n; i++) {
        world_step(&w, (sp_time)(i + 1) * 12 * SP_SEC);
        out[i] = sp_chain_base_fee(w.sim);
    }
    world_release(&w);
}

static void test_same_seed_same_blocks(void **state)
{
    (void)state;
    enum { N = 150 };
    double a[N], b[N], c[N];
    base_fees(7, a, N);
    base_fees(7, b, N);
    base_fees(8, c, N);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    /* The spike (blocks 50..74) moves the base fee well above its level before. */
    double before = 0, peak = 0;
    for (int i = 30; i < 50; i++) before = fmax(before, a[i]);
    for (int i = 50; i < 80; i++) peak = fmax(peak, a[i]);
    assert_true(peak > 2 * before);
}

/* ---- fees in the ledger -------------------------------------------------------- */

static void test_fees_burned_and_tipped_conserve_the_ledger(void **state)
{
    (void)state;
    struct world w;
    world_start(&w, "ledger",
                HEAD "chain: {type: eip1559, gas_token: ETH, background: {rate: 5}}\n"
                "agents:\n  - {type: txbot, name: bot}\n  - {type: txbot, name: poor}\n");
    sp_token eth = sp_token_find(w.sim, "ETH");
    assert_int_equal(sp_chain_gas_token(w.sim), eth);
    assert_int_equal(sp_mint(w.sim, eth, w.bot_id, 1.0), 0);
    submit(&w, 2e5, 100, 3, 1, 0, 0);
    submit(&w, 1e5, 100, 1, 2, 0, 0);
    sp_id poor = sp_sim_find(w.sim, "poor");
    struct sp_tx tx = { .sender = poor, .kind = K_TX, .gas = 1e5, .max_fee = 100,
                        .priority_fee = 2 };
    assert_int_equal(sp_chain_submit(w.sim, &tx, NULL), 0);
    world_step(&w, 12 * SP_SEC);
    struct bot *pb = sp_sim_entity_state(w.sim, poor);
    assert_int_equal(w.bot->n, 2);
    assert_int_equal(pb->n, 1);
    double base = 20, burned = (2e5 + 1e5) * base * 1e-9, tips = (2e5 * 3 + 1e5 * 1) * 1e-9;
    assert_double_equal(sp_balance(w.sim, w.bot_id, eth), 1.0 - burned - tips, 1e-15);
    assert_double_equal(sp_balance(w.sim, w.chain_id, eth), tips, 1e-15);
    assert_double_equal(sp_supply(w.sim, eth), 1.0 - burned, 1e-15);
    /* the poor sender is reported its fee, but nothing moved */
    assert_double_equal(pb->log[0].cur_fee, 1e5 * 22 * 1e-9, 1e-15);
    assert_double_equal(sp_balance(w.sim, poor, eth), 0, 0);
    assert_int_equal(sp_ledger_check(w.sim), 0);
    world_release(&w);
}

/* ---- output ------------------------------------------------------------------- */

static void test_blocks_table_recorded(void **state)
{
    (void)state;
    struct world w;
    int rc = world_bind(&w, "table",
                        "horizon: 2m\ntokens:\n  - {name: ETH, kind: base}\n"
                        "chain: eip1559\n");
    assert_int_equal(rc, 0);
    char out[1024];
    snprintf(out, sizeof out, "%s/table.h5", tu_tmpdir("chain"));
    struct sp_world_run req = { .output = out, .command_line = "test_chain" };
    enum sp_run_status st = SP_RUN_FAILED;
    rc = sp_world_run(w.tw.sc, &w.tw.cfg, &req, &st, &w.tw.d);
    if (rc || w.tw.d.n_errors) sp_diag_print(&w.tw.d, stderr);
    assert_int_equal(st, SP_RUN_COMPLETE);
    size_t n, nb;
    double *t = tu_read_f64(out, "/events/blocks/t", &n);
    double *bf = tu_read_f64(out, "/events/blocks/base_fee", &nb);
    assert_int_equal(n, 10);                                 /* 12 s .. 120 s */
    assert_int_equal(nb, 10);
    for (size_t i = 0; i < n; i++) {
        assert_double_equal(t[i], 12.0 * (double)(i + 1), 0);
        assert_double_equal(bf[i], 20 * pow(0.875, (double)i), 1e-9);   /* empty blocks */
    }
    assert_double_equal(tu_attr_f64(out, "/summary", "n_blocks"), 10, 0);
    /* the resolved scenario shows the chain as the map it is */
    char *emitted = sp_scenario_emit(w.tw.sc);
    assert_non_null(strstr(emitted, "chain:\n  type: eip1559\n  block_time: 12s"));
    free(emitted);
    free(t);
    free(bf);
    world_release(&w);
}

/* ---- bad input -------------------------------------------------------------------- */

static int n_mismatch;

static void expect_error(const char *name, const char *yaml, const char *needle)
{
    struct world w;
    int rc = world_bind(&w, name, yaml);
    if (rc != SP_ECONFIG || !strstr(tw_diag(&w.tw), needle)) {
        fprintf(stderr, "rc %d; expected '%s' in:\n%s", rc, needle, tw_diag(&w.tw));
        n_mismatch++;
    }
    world_release(&w);
}

static void test_bad_input_names_line_and_key(void **state)
{
    (void)state;
    expect_error("bt", HEAD "chain:\n  type: eip1559\n  block_time: 0s\n",
                 "chain-bt.yaml:6:3: error: chain.block_time: must be > 0s, got 0s");
    expect_error("gl", HEAD "chain:\n  type: eip1559\n  gas_limit: -5\n",
                 "chain-gl.yaml:6:3: error: chain.gas_limit: must be > 0, got -5");
    expect_error("ty", HEAD "chain:\n  type: eip1599\n",
                 "chain-ty.yaml:5:3: error: chain.type: unknown chain type 'eip1599' "
                 "(did you mean 'eip1559'?)");
    expect_error("ty2", HEAD "chain: instnt\n",
                 "chain-ty2.yaml:4:1: error: chain.type: unknown chain type 'instnt' "
                 "(did you mean 'instant'?)");
    expect_error("tok", HEAD "chain:\n  type: eip1559\n  gas_token: ETX\n",
                 "chain-tok.yaml:6:3: error: chain.gas_token: unknown token 'ETX' "
                 "(did you mean 'ETH'?)");
    expect_error("key", HEAD "chain: {type: eip1559, bakground: {rate: 1}}\n",
                 "error: chain.bakground: unknown key 'bakground' (did you mean 'background'?)");
    expect_error("list", HEAD "chain:\n  - {type: eip1559}\n",
                 "chain-list.yaml:4:1: error: chain: expected one map");
    expect_error("name", HEAD "chain: {type: eip1559, name: mainnet}\n",
                 "error: chain.name: the chain is always the entity 'chain'");
    expect_error("spk", HEAD "chain:\n  type: eip1559\n  spikes: [{at: 1m, over: 0s}]\n",
                 "error: chain.spikes.0.over: must be > 0s");
    expect_error("minfee", HEAD "chain: {type: eip1559, min_base_fee: 30}\n",
                 "error: chain.min_base_fee: min_base_fee (30 gwei) must be <= initial_base_fee");
    expect_error("dup", HEAD "agents:\n  - {type: txbot, name: chain}\n",
                 "duplicate entity name 'chain'");
    assert_int_equal(n_mismatch, 0);
}

static void test_cli_exits_2_on_bad_chain(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("chain");
    char yaml[1024], log[1024];
    snprintf(yaml, sizeof yaml, "%s/bad.yaml", dir);
    snprintf(log, sizeof log, "%s/bad.log", dir);
    tu_write(yaml, HEAD "chain:\n  type: eip1559\n  block_time: -1s\n  gas_token: USD\n");
    char *argv[] = { "spiral", "validate", yaml, NULL };
    assert_int_equal(tu_run(argv, log), 2);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "bad.yaml:6:3: error: chain.block_time: a duration cannot be "
                                 "negative"));
    free(text);
    tu_write(yaml, HEAD "chain: {type: eip1559, gas_token: USD}\n");
    assert_int_equal(tu_run(argv, log), 2);
    text = tu_read(log);
    assert_non_null(strstr(text, "bad.yaml:4:24: error: chain.gas_token: unknown token 'USD'"));
    free(text);
    tu_write(yaml, HEAD "chain: eip1559\n");
    assert_int_equal(tu_run(argv, log), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_fee_formula_matches_eip1559),
        cmocka_unit_test(test_blocks_update_base_fee_per_eip1559),
        cmocka_unit_test(test_block_orders_by_tip_ties_by_submission),
        cmocka_unit_test(test_block_orders_by_effective_tip),
        cmocka_unit_test(test_block_respects_gas_limit),
        cmocka_unit_test(test_low_fee_cap_waits_until_base_fee_falls),
        cmocka_unit_test(test_deadline_drop_delivers_drop_kind),
        cmocka_unit_test(test_instant_delivers_at_now_after_the_handler),
        cmocka_unit_test(test_no_chain_entity_schedules_directly),
        cmocka_unit_test(test_spike_locks_out_fixed_cap_not_adaptive),
        cmocka_unit_test(test_same_seed_same_blocks),
        cmocka_unit_test(test_fees_burned_and_tipped_conserve_the_ledger),
        cmocka_unit_test(test_blocks_table_recorded),
        cmocka_unit_test(test_bad_input_names_line_and_key),
        cmocka_unit_test(test_cli_exits_2_on_bad_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
