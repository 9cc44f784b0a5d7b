/*
 * chain.c — the chain entity (scenario section `chain:`, kind "chain"): a
 * mempool of agent transactions, blocks every `block_time` with an EIP-1559
 * base fee, Poisson background demand with congestion spikes; or `instant`,
 * where a transaction executes at once.  The model is docs/chain.md.
 *
 * Delivery and the "current transaction" context.  Every delivery — an
 * included transaction, a dropped one's `drop_kind`, an instant one — is a
 * real queue event addressed to the CHAIN entity (kind EV_TX / EV_DROP,
 * priority SP_PRIO_CHAIN, data.u[0] = a slot in `dl`, the table of
 * deliveries in flight).  Its handler takes the slot, moves the fee, sets
 * the context (tx id, fee, submission time) that sp_chain_current_* read,
 * rewrites the event it is handling into the sender's own event (target =
 * sender, kind = tx.kind, data = tx.data) and calls the sender's on_event
 * with it synchronously, then clears the context.  So:
 *   - the included transactions of a block are delivered in block order
 *     (they are pushed in that order at the block's time and priority; the
 *     queue breaks ties by insertion order), each as its own dispatched
 *     event: token value caches are fresh for each, and an event a handler
 *     schedules at the same instant in a lower priority class (a market
 *     notifying an oracle) runs before the next transaction of the block;
 *   - a handler that re-queues the event it got (sp_sim_again) re-queues a
 *     plain event of its own, with no chain context — "retry later";
 *   - the context is exact and needs no bookkeeping in the sender.
 * Nothing here is a pointer into the queue; slots are indices, so the state
 * stays snapshot-friendly.
 *
 * Blocks (type eip1559), at t = k·block_time, k >= 1, up to the horizon:
 *   candidates  = pending agent txs with max_fee >= base fee (the others
 *                 wait) + Poisson(rate·block_time·spike rate factor)
 *                 background txs drawn now from the chain's own stream
 *                 (gas and tip from their distributions, tip × spike tip
 *                 factor, fee cap = fee_cap_multiple × base fee);
 *   order       = effective tip min(priority_fee, max_fee − base) descending,
 *                 ties by submission (agent txs by id, then background);
 *   include     greedily while gas fits the gas limit (a tx that does not
 *                 fit is skipped, smaller ones after it may still fit);
 *                 background txs not included leave (they are the marginal
 *                 demand of that block, not carried over);
 *   drops       pending agent txs whose deadline falls before the next
 *                 block are dropped, their drop_kind delivered AT the
 *                 deadline;
 *   record      one row of /events/blocks;
 *   base fee    EIP-1559 update from the block's gas used (below).
 * Fees of an included agent tx: gas × (base + effective tip) gwei, 1 gwei =
 * 1e-9 gas token.  With a gas token and a sender that holds the fee, the
 * base part is burned and the tip goes to the chain entity at delivery;
 * otherwise the fee is only reported (sp_chain_current_fee).
 *
 * Without a chain entity at all (a hand-built sim) sp_chain_submit
 * schedules the sender's event at now directly; there is then no context
 * and the tx id is 0.  Scenarios always have one (instant by default).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "chain.h"

enum { EV_BLOCK = 1, EV_TX = 2, EV_DROP = 3 };
enum chain_type { CHAIN_INSTANT, CHAIN_EIP1559 };

#define GWEI 1e-9                 /* gas token units per gwei */
#define MIN_INCREASE GWEI         /* EIP-1559: an increase is at least 1 wei */

/* ---- configuration ----------------------------------------------------------- */

struct spike_cfg {
    sp_time at, over;
    double rate_factor, tip_factor;
};

struct background_cfg {
    double rate;                  /* tx per second */
    struct sp_dist gas;           /* gas per tx */
    struct sp_dist tip;           /* gwei per gas */
    double fee_cap_multiple;
    struct sp_dist fee_cap;       /* gwei per gas; used when has_fee_cap */
    bool has_fee_cap;
};

struct chain_cfg {
    sp_time block_time;
    double gas_limit;
    double initial_base_fee, min_base_fee;  /* gwei per gas */
    double elasticity, denominator;
    const char *gas_token;
    struct background_cfg background;
    struct spike_cfg *spikes;
    size_t n_spikes;
};

struct instant_cfg { int unused; };

static const struct sp_field spike_fields[] = {
    { "at", SP_T_DURATION, SP_F_REQUIRED | SP_F_MIN, 0, 0, NULL, "time",
      "When the congestion episode starts.", offsetof(struct spike_cfg, at), NULL, 0 },
    { "over", SP_T_DURATION, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "How long it lasts: blocks with at <= t < at + over are affected.",
      offsetof(struct spike_cfg, over), NULL, 0 },
    { "rate_factor", SP_T_NUMBER, SP_F_MIN, 0, 0, "1", "x",
      "Multiplies the background arrival rate.", offsetof(struct spike_cfg, rate_factor),
      NULL, 0 },
    { "tip_factor", SP_T_NUMBER, SP_F_MIN, 0, 0, "1", "x",
      "Multiplies the background tips (priority fees).",
      offsetof(struct spike_cfg, tip_factor), NULL, 0 },
};

static const struct sp_schema spike_schema = {
    "chain.spikes[]", "A congestion episode: background demand scaled over a window "
    "(overlapping spikes multiply).",
    spike_fields, sizeof spike_fields / sizeof spike_fields[0], sizeof(struct spike_cfg), NULL
};

static int background_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct background_cfg *b = bound;
    int rc = SP_OK;
    if (sp_dist_check_nonneg(ctx, "gas", &b->gas)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "tip", &b->tip)) rc = SP_ECONFIG;
    b->has_fee_cap = sp_node_get(ctx->node, "fee_cap") != NULL;
    if (b->has_fee_cap && sp_dist_check_nonneg(ctx, "fee_cap", &b->fee_cap)) rc = SP_ECONFIG;
    return rc;
}

static const struct sp_field background_fields[] = {
    { "rate", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "tx per second",
      "Mean arrival rate of background transactions; each block draws Poisson(rate x "
      "block_time) of them. 0: no background demand.",
      offsetof(struct background_cfg, rate), NULL, 0 },
    { "gas", SP_T_DIST, SP_F_MIN_EXCL, 0, 0, "100000", "gas",
      "Gas used by one background transaction, drawn per transaction (draws below 1 count "
      "as 1).", offsetof(struct background_cfg, gas), NULL, 0 },
    { "tip", SP_T_DIST, SP_F_MIN, 0, 0, "1", "gwei per gas",
      "Priority fee of one background transaction, drawn per transaction (negative draws "
      "count as 0), times the tip_factor of any active spike.",
      offsetof(struct background_cfg, tip), NULL, 0 },
    { "fee_cap_multiple", SP_T_NUMBER, SP_F_MIN, 1, 0, "2", "x base fee",
      "Fee cap of a background transaction as a multiple of the base fee of its block "
      "(so it always fits the base fee: demand does not respond to the price).",
      offsetof(struct background_cfg, fee_cap_multiple), NULL, 0 },
    { "fee_cap", SP_T_DIST, SP_F_MIN, 0, 0, NULL, "gwei per gas",
      "Optional: an absolute fee cap drawn per transaction (times the tip_factor of any "
      "active spike), replacing fee_cap_multiple; a transaction whose cap is below the "
      "base fee is not included and leaves. This makes demand price-elastic: the base fee "
      "settles where the demand that can pay it fills the gas target.",
      offsetof(struct background_cfg, fee_cap), NULL, 0 },
};

static const struct sp_schema background_schema = {
    "chain.background", "Other users' transactions competing for block space.",
    background_fields, sizeof background_fields / sizeof background_fields[0],
    sizeof(struct background_cfg), background_check
};

static int no_name_check(const struct sp_check_ctx *ctx)
{
    const struct sp_node *n = sp_node_get(ctx->node, "name");
    if (!n) return SP_OK;
    sp_diag_error(ctx->diag, n, "the chain is always the entity 'chain': remove `name`");
    return SP_ECONFIG;
}

static int eip1559_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct chain_cfg *c = bound;
    int rc = no_name_check(ctx);
    if (c->gas_token && sp_world_check_token(ctx, "gas_token", -1)) rc = SP_ECONFIG;
    if (c->min_base_fee > c->initial_base_fee) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "min_base_fee"),
                      "min_base_fee (%g gwei) must be <= initial_base_fee (%g gwei)",
                      c->min_base_fee, c->initial_base_fee);
        rc = SP_ECONFIG;
    }
    if (c->gas_limit / c->elasticity < 1) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "elasticity"),
                      "the gas target gas_limit / elasticity = %g is below 1 gas",
                      c->gas_limit / c->elasticity);
        rc = SP_ECONFIG;
    }
    return rc;
}

static int instant_check(void *bound, const struct sp_check_ctx *ctx)
{
    (void)bound;
    return no_name_check(ctx);
}

static const struct sp_field eip1559_fields[] = {
    { "block_time", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "12s", "time",
      "Time between blocks; blocks are at block_time, 2 block_time, ...",
      offsetof(struct chain_cfg, block_time), NULL, 0 },
    { "gas_limit", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "30e6", "gas",
      "Block gas limit; the gas target is gas_limit / elasticity.",
      offsetof(struct chain_cfg, gas_limit), NULL, 0 },
    { "initial_base_fee", SP_T_NUMBER, SP_F_MIN, 0, 0, "20", "gwei per gas",
      "Base fee of the first block.", offsetof(struct chain_cfg, initial_base_fee), NULL, 0 },
    { "min_base_fee", SP_T_NUMBER, SP_F_MIN, 0, 0, "0", "gwei per gas",
      "Floor of the base fee (not in EIP-1559; 0 = none).",
      offsetof(struct chain_cfg, min_base_fee), NULL, 0 },
    { "elasticity", SP_T_NUMBER, SP_F_MIN, 1, 0, "2", "x",
      "EIP-1559 ELASTICITY_MULTIPLIER: gas limit / gas target.",
      offsetof(struct chain_cfg, elasticity), NULL, 0 },
    { "max_change_denominator", SP_T_NUMBER, SP_F_MIN, 1, 0, "8", "x",
      "EIP-1559 BASE_FEE_MAX_CHANGE_DENOMINATOR: a full block raises the base fee by "
      "(elasticity - 1) / this (12.5 % with the defaults), an empty one lowers it by 1 / this.",
      offsetof(struct chain_cfg, denominator), NULL, 0 },
    { "gas_token", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Token fees are paid in (e.g. ETH): the base fee part is burned, the tip goes to the "
      "entity 'chain'. Without it fees are only recorded.",
      offsetof(struct chain_cfg, gas_token), NULL, 0 },
    { "background", SP_T_MAP, 0, 0, 0, NULL, NULL, "Background demand (see its keys).",
      offsetof(struct chain_cfg, background), &background_schema, 0 },
    { "spikes", SP_T_LIST, 0, 0, 0, NULL, NULL,
      "Congestion episodes scaling the background demand.",
      offsetof(struct chain_cfg, spikes), &spike_schema, offsetof(struct chain_cfg, n_spikes) },
};

static const struct sp_schema eip1559_schema = {
    "chain[type: eip1559]", "Blocks every block_time with an EIP-1559 base fee and a mempool "
    "ordered by priority fee (docs/chain.md).",
    eip1559_fields, sizeof eip1559_fields / sizeof eip1559_fields[0], sizeof(struct chain_cfg),
    eip1559_check
};

static const struct sp_schema instant_schema = {
    "chain[type: instant]", "Transactions execute at once, with no fee.",
    NULL, 0, sizeof(struct instant_cfg), instant_check
};

/* ---- state ---------------------------------------------------------------------- */

struct ptx {                      /* a pending agent transaction */
    struct sp_tx tx;
    uint64_t id;
    sp_time submitted;
};

struct cand {                     /* a candidate of one block */
    double tip, gas;              /* effective tip (gwei per gas), gas */
    uint64_t seq;                 /* agent: tx id; background: 2^63 + k */
    int64_t agent;                /* index into pend, or -1 */
};

struct delivery {                 /* a delivery in flight (an EV_TX/EV_DROP event) */
    struct sp_tx tx;
    uint64_t id;
    sp_time submitted;
    double base_part, tip_part;   /* gas token units */
    uint32_t next_free;
    bool used;
};

struct chain {
    struct sp_sim *sim;
    sp_id id;
    int type;
    const struct chain_cfg *cfg;  /* NULL when instant */
    sp_token gas_token;
    double base_fee;              /* of the next block, gwei per gas */
    sp_time next_block;
    uint64_t next_id;             /* last tx id handed out */
    struct ptx *pend;
    size_t n_pend, cap_pend;
    struct cand *cand;
    size_t cap_cand;
    struct delivery *dl;
    size_t n_dl, cap_dl;
    uint32_t free_dl;             /* head of the free list, UINT32_MAX: none */
    /* context of the delivery being handled */
    uint64_t cur_id;
    double cur_fee;
    sp_time cur_submitted;
    /* output and metrics */
    struct sp_rec_table *tab;
    uint64_t n_blocks, n_dropped, n_delayed;
    double sum_delay, max_delay, max_base_fee;
};

static void chain_on_event(void *self, struct sp_sim *sim, struct sp_event *ev);

static struct chain *chain_of(struct sp_sim *sim)
{
    sp_id id = sp_sim_find(sim, "chain");
    if (id == SP_ID_NONE) return NULL;
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    if (!ops || ops->on_event != chain_on_event) return NULL;
    return sp_sim_entity_state(sim, id);
}

static const char *chain_default_name(const void *cfg, char *buf, size_t size)
{
    (void)cfg;
    snprintf(buf, size, "chain");
    return buf;
}

static int chain_setup(struct chain *c, struct sp_sim *sim, sp_id id)
{
    c->sim = sim;
    c->id = id;
    c->gas_token = -1;
    c->free_dl = UINT32_MAX;
    c->cur_submitted = -1;
    return SP_OK;
}

static int instant_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    (void)cfg;
    struct chain *c = self;
    c->type = CHAIN_INSTANT;
    return chain_setup(c, sim, id);
}

static int eip1559_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct chain *c = self;
    chain_setup(c, sim, id);
    c->type = CHAIN_EIP1559;
    c->cfg = cfg;
    c->base_fee = c->cfg->initial_base_fee;
    c->max_base_fee = c->base_fee;
    c->next_block = c->cfg->block_time;
    if (c->cfg->gas_token) {
        c->gas_token = sp_token_find(sim, c->cfg->gas_token);
        if (c->gas_token < 0) {
            sp_sim_fail(sim, SP_ECONFIG, "chain: unknown gas token '%s'", c->cfg->gas_token);
            return SP_ECONFIG;
        }
    }
    return SP_OK;
}

static const struct sp_rec_col block_cols[] = {
    { "t", SP_REC_F64, "s", "block time", NULL },
    { "t_us", SP_REC_I64, "us", "block time, exact", NULL },
    { "base_fee", SP_REC_F64, "gwei", "base fee of the block, per gas", NULL },
    { "n_tx", SP_REC_I32, "1", "transactions included (agents' and background)", NULL },
    { "n_agent_tx", SP_REC_I32, "1", "agent transactions included", NULL },
    { "gas_used", SP_REC_F64, "gas", "gas used by the included transactions", NULL },
    { "n_pending", SP_REC_I32, "1", "agent transactions still waiting after the block", NULL },
    { "min_tip_included", SP_REC_F64, "gwei",
      "smallest effective tip per gas included (NaN for an empty block)", NULL },
};

static int chain_start(void *self, struct sp_sim *sim)
{
    struct chain *c = self;
    if (c->type != CHAIN_EIP1559) return SP_OK;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        int rc = sp_rec_table_create(rec, "/events/blocks", block_cols,
                                     sizeof block_cols / sizeof block_cols[0], &c->tab);
        if (rc) {
            sp_sim_fail(sim, rc, "cannot create /events/blocks: %s", sp_strerror(rc));
            return rc;
        }
        sp_rec_attr_str(rec, "/events/blocks", "type", "eip1559");
        sp_rec_attr_f64(rec, "/events/blocks", "block_time", sp_time_sec(c->cfg->block_time));
        sp_rec_attr_f64(rec, "/events/blocks", "gas_limit", c->cfg->gas_limit);
        sp_rec_attr_str(rec, "/events/blocks", "gas_token",
                        c->cfg->gas_token ? c->cfg->gas_token : "");
    }
    if (c->next_block <= sp_sim_horizon(sim) &&
        !sp_sim_schedule(sim, c->next_block, SP_PRIO_CHAIN, c->id, EV_BLOCK))
        return SP_ENOMEM;
    return SP_OK;
}

/* ---- deliveries ----------------------------------------------------------------- */

static int delivery_new(struct chain *c, uint32_t *slot)
{
    if (c->free_dl != UINT32_MAX) {
        *slot = c->free_dl;
        c->free_dl = c->dl[*slot].next_free;
    } else {
        if (c->n_dl == c->cap_dl) {
            size_t cap = c->cap_dl ? 2 * c->cap_dl : 64;
            if (cap > UINT32_MAX) return SP_ENOMEM;
            struct delivery *p = realloc(c->dl, cap * sizeof *p);
            if (!p) return SP_ENOMEM;
            c->dl = p;
            c->cap_dl = cap;
        }
        *slot = (uint32_t)c->n_dl++;
    }
    c->dl[*slot].used = true;
    return SP_OK;
}

/* Queue the delivery of `tx` (kind EV_TX or EV_DROP) at time t. */
static int deliver_at(struct chain *c, sp_time t, int kind, const struct sp_tx *tx, uint64_t id,
                      sp_time submitted, double base_part, double tip_part)
{
    uint32_t slot;
    if (delivery_new(c, &slot)) return SP_ENOMEM;
    struct delivery *d = &c->dl[slot];
    d->tx = *tx;
    d->id = id;
    d->submitted = submitted;
    d->base_part = base_part;
    d->tip_part = tip_part;
    struct sp_event *ev = sp_sim_schedule(c->sim, t, SP_PRIO_CHAIN, c->id, (uint16_t)kind);
    if (!ev) {
        d->used = false;
        d->next_free = c->free_dl;
        c->free_dl = slot;
        return SP_ENOMEM;
    }
    ev->data.u[0] = slot;
    return SP_OK;
}

static void handle_delivery(struct chain *c, struct sp_sim *sim, struct sp_event *ev)
{
    uint32_t slot = (uint32_t)ev->data.u[0];
    if (slot >= c->n_dl || !c->dl[slot].used) {
        sp_sim_fail(sim, SP_EMODEL, "chain: delivery of an unknown transaction slot %u", slot);
        return;
    }
    struct delivery d = c->dl[slot];
    c->dl[slot].used = false;
    c->dl[slot].next_free = c->free_dl;
    c->free_dl = slot;
    uint16_t kind = ev->kind == EV_TX ? d.tx.kind : d.tx.drop_kind;
    if (ev->kind == EV_DROP && !kind) return;
    double fee = d.base_part + d.tip_part;
    if (fee > 0 && c->gas_token >= 0 && sp_balance(sim, d.tx.sender, c->gas_token) >= fee) {
        if (d.base_part > 0) sp_burn(sim, c->gas_token, d.tx.sender, d.base_part);
        if (d.tip_part > 0) sp_transfer(sim, c->gas_token, d.tx.sender, c->id, d.tip_part);
    }
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, d.tx.sender);
    if (!ops || !ops->on_event) return;
    uint64_t save_id = c->cur_id;
    double save_fee = c->cur_fee;
    sp_time save_sub = c->cur_submitted;
    c->cur_id = d.id;
    c->cur_fee = fee;
    c->cur_submitted = d.submitted;
    /* The sender handles this very event, now its own (see the top). */
    ev->target = d.tx.sender;
    ev->kind = kind;
    ev->data = d.tx.data;
    ops->on_event(sp_sim_entity_state(sim, d.tx.sender), sim, ev);
    c->cur_id = save_id;
    c->cur_fee = save_fee;
    c->cur_submitted = save_sub;
}

/* ---- blocks ------------------------------------------------------------------------ */

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->tip != y->tip) return x->tip > y->tip ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cand_reserve(struct chain *c, size_t n)
{
    if (n <= c->cap_cand) return SP_OK;
    size_t cap = c->cap_cand ? c->cap_cand : 256;
    while (cap < n) cap *= 2;
    struct cand *p = realloc(c->cand, cap * sizeof *p);
    if (!p) return SP_ENOMEM;
    c->cand = p;
    c->cap_cand = cap;
    return SP_OK;
}

/* EIP-1559 (https://eips.ethereum.org/EIPS/eip-1559, "Specification"):
 *   used == target: unchanged;
 *   used >  target: b + max(b·(used − target)/target/denominator, 1 wei);
 *   used <  target: b − b·(target − used)/target/denominator.
 * In real numbers (no wei rounding but the 1-wei minimum increase), floored
 * at min_base_fee. */
double sp_chain_next_base_fee(double base, double gas_used, double gas_target,
                              double denominator)
{
    double next = base;
    if (gas_used > gas_target) {
        double delta = base * (gas_used - gas_target) / gas_target / denominator;
        next = base + (delta > MIN_INCREASE ? delta : MIN_INCREASE);
    } else if (gas_used < gas_target) {
        next = base - base * (gas_target - gas_used) / gas_target / denominator;
    }
    return next;
}

static void spike_factors(const struct chain_cfg *cfg, sp_time t, double *rate, double *tip)
{
    *rate = *tip = 1.0;
    for (size_t i = 0; i < cfg->n_spikes; i++) {
        const struct spike_cfg *s = &cfg->spikes[i];
        if (t >= s->at && t - s->at < s->over) {
            *rate *= s->rate_factor;
            *tip *= s->tip_factor;
        }
    }
}

static void build_block(struct chain *c, struct sp_sim *sim, sp_time t)
{
    const struct chain_cfg *cfg = c->cfg;
    double base = c->base_fee;
    double rate_f, tip_f;
    spike_factors(cfg, t, &rate_f, &tip_f);
    struct sp_rng *rng = sp_sim_rng(sim, c->id);
    double lambda = cfg->background.rate * sp_time_sec(cfg->block_time) * rate_f;
    uint64_t n_bg = lambda > 0 ? sp_rng_poisson(rng, lambda) : 0;
    if (cand_reserve(c, c->n_pend + n_bg)) {
        sp_sim_fail(sim, SP_ENOMEM, "chain: out of memory building a block");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->n_pend; i++) {
        const struct sp_tx *tx = &c->pend[i].tx;
        if (tx->max_fee < base) continue;                  /* waits */
        double room = tx->max_fee - base;
        c->cand[n++] = (struct cand){ tx->priority_fee < room ? tx->priority_fee : room,
                                      tx->gas, c->pend[i].id, (int64_t)i };
    }
    const struct background_cfg *bg = &cfg->background;
    double bg_room = base * (bg->fee_cap_multiple - 1.0);
    for (uint64_t k = 0; k < n_bg; k++) {
        double gas = sp_dist_draw(&bg->gas, rng);
        double tip = sp_dist_draw(&bg->tip, rng) * tip_f;
        double room = bg_room;
        if (bg->has_fee_cap) room = sp_dist_draw(&bg->fee_cap, rng) * tip_f - base;
        if (!(gas >= 1)) gas = 1;
        if (!(tip >= 0)) tip = 0;
        if (!(room >= 0)) continue;                        /* cannot pay the base fee */
        c->cand[n++] = (struct cand){ tip < room ? tip : room, gas,
                                      (UINT64_C(1) << 63) + k, -1 };
    }
    if (n > 1) qsort(c->cand, n, sizeof *c->cand, cand_cmp);
    double left = cfg->gas_limit, used = 0, min_tip = NAN;
    int n_tx = 0, n_agent = 0;
    for (size_t i = 0; i < n; i++) {
        struct cand *x = &c->cand[i];
        if (x->gas > left) continue;
        left -= x->gas;
        used += x->gas;
        n_tx++;
        min_tip = x->tip;                                  /* sorted: the last is the least */
        if (x->agent < 0) continue;
        struct ptx *p = &c->pend[x->agent];
        n_agent++;
        double delay = sp_time_sec(t - p->submitted);
        c->sum_delay += delay;
        c->n_delayed++;
        if (delay > c->max_delay) c->max_delay = delay;
        if (deliver_at(c, t, EV_TX, &p->tx, p->id, p->submitted, p->tx.gas * base * GWEI,
                       p->tx.gas * x->tip * GWEI)) {
            sp_sim_fail(sim, SP_ENOMEM, "chain: out of memory delivering a transaction");
            return;
        }
        p->tx.gas = -1;                                    /* included: removed below */
    }
    /* Keep the waiting ones, in submission order; drop those whose deadline
     * comes before the next block, delivering drop_kind at the deadline. */
    sp_time next = t + cfg->block_time;
    size_t w = 0;
    for (size_t i = 0; i < c->n_pend; i++) {
        struct ptx *p = &c->pend[i];
        if (p->tx.gas < 0) continue;
        if (p->tx.deadline && p->tx.deadline < next) {
            c->n_dropped++;
            if (deliver_at(c, p->tx.deadline > t ? p->tx.deadline : t, EV_DROP, &p->tx, p->id,
                           p->submitted, 0, 0)) {
                sp_sim_fail(sim, SP_ENOMEM, "chain: out of memory dropping a transaction");
                return;
            }
            continue;
        }
        c->pend[w++] = *p;
    }
    c->n_pend = w;
    c->n_blocks++;
    if (c->tab) {
        union sp_rec_val row[8];
        row[0].f = sp_time_sec(t);
        row[1].i = t;
        row[2].f = base;
        row[3].i = n_tx;
        row[4].i = n_agent;
        row[5].f = used;
        row[6].i = (int64_t)c->n_pend;
        row[7].f = min_tip;
        sp_rec_append(c->tab, row);
    }
    double nb = sp_chain_next_base_fee(base, used, cfg->gas_limit / cfg->elasticity,
                                       cfg->denominator);
    c->base_fee = nb > cfg->min_base_fee ? nb : cfg->min_base_fee;
    if (c->base_fee > c->max_base_fee) c->max_base_fee = c->base_fee;
    c->next_block = next;
}

static void chain_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct chain *c = self;
    switch (ev->kind) {
    case EV_BLOCK:
        build_block(c, sim, ev->t);
        if (c->next_block <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, c->next_block);
        break;
    case EV_TX:
    case EV_DROP:
        handle_delivery(c, sim, ev);
        break;
    default:
        break;
    }
}

static void chain_finish(void *self, struct sp_sim *sim)
{
    struct chain *c = self;
    if (c->type != CHAIN_EIP1559) return;
    sp_sim_summary(sim, "max_base_fee", c->max_base_fee);
    sp_sim_summary(sim, "n_blocks", (double)c->n_blocks);
    sp_sim_summary(sim, "n_dropped_tx", (double)c->n_dropped);
    sp_sim_summary(sim, "mean_inclusion_delay",
                   c->n_delayed ? c->sum_delay / (double)c->n_delayed : 0.0);
    sp_sim_summary(sim, "max_inclusion_delay", c->max_delay);
}

static void chain_release(void *self)
{
    struct chain *c = self;
    free(c->pend);
    free(c->cand);
    free(c->dl);
    c->pend = NULL;
    c->cand = NULL;
    c->dl = NULL;
    c->n_pend = c->cap_pend = c->cap_cand = c->n_dl = c->cap_dl = 0;
}

/* ---- snapshot ------------------------------------------------------------------------ */

/* The mempool, the deliveries in flight (their slots are named by queued
 * events, so they keep their indexes and the free list its order), the base
 * fee and the counters.  The candidate array is scratch of one block. */
static void put_tx(struct sp_snapshot_writer *w, const struct sp_tx *tx, uint64_t id,
                   sp_time submitted)
{
    sp_snap_put_array(w, 10);
    sp_snap_put_u64(w, tx->sender);
    sp_snap_put_u64(w, tx->kind);
    sp_snap_put_u64(w, tx->drop_kind);
    sp_snap_put_u64s(w, tx->data.u, 4);
    sp_snap_put_f64(w, tx->gas);
    sp_snap_put_f64(w, tx->max_fee);
    sp_snap_put_f64(w, tx->priority_fee);
    sp_snap_put_i64(w, tx->deadline);
    sp_snap_put_u64(w, id);
    sp_snap_put_i64(w, submitted);
}

static int get_tx(struct sp_snapshot_reader *r, struct sp_tx *tx, uint64_t *id, sp_time *submitted)
{
    uint32_t sender, kind, drop;
    sp_snap_get_array_n(r, 10);
    sp_snap_get_u32(r, &sender);
    sp_snap_get_u32(r, &kind);
    sp_snap_get_u32(r, &drop);
    sp_snap_get_u64s(r, tx->data.u, 4);
    sp_snap_get_f64(r, &tx->gas);
    sp_snap_get_f64(r, &tx->max_fee);
    sp_snap_get_f64(r, &tx->priority_fee);
    sp_snap_get_i64(r, &tx->deadline);
    sp_snap_get_u64(r, id);
    sp_snap_get_i64(r, submitted);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    if (sender >= sp_sim_entity_count(sp_snap_sim(r)) || kind > UINT16_MAX || drop > UINT16_MAX)
        return sp_snap_fail(r, "a transaction with sender %u, kind %u", sender, kind);
    tx->sender = sender;
    tx->kind = (uint16_t)kind;
    tx->drop_kind = (uint16_t)drop;
    return SP_OK;
}

static int chain_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct chain *c = self;
    sp_snap_put_array(w, 14);
    sp_snap_put_f64(w, c->base_fee);
    sp_snap_put_i64(w, c->next_block);
    sp_snap_put_u64(w, c->next_id);
    sp_snap_put_u64(w, c->cur_id);
    sp_snap_put_f64(w, c->cur_fee);
    sp_snap_put_i64(w, c->cur_submitted);
    sp_snap_put_u64s(w, (const uint64_t[]){ c->n_blocks, c->n_dropped, c->n_delayed }, 3);
    sp_snap_put_f64(w, c->sum_delay);
    sp_snap_put_f64(w, c->max_delay);
    sp_snap_put_f64(w, c->max_base_fee);
    sp_snap_put_array(w, c->n_pend);
    for (size_t i = 0; i < c->n_pend; i++) put_tx(w, &c->pend[i].tx, c->pend[i].id, c->pend[i].submitted);
    sp_snap_put_array(w, c->n_dl);
    for (size_t i = 0; i < c->n_dl; i++) {
        const struct delivery *d = &c->dl[i];
        sp_snap_put_array(w, 5);
        put_tx(w, &d->tx, d->id, d->submitted);
        sp_snap_put_f64(w, d->base_part);
        sp_snap_put_f64(w, d->tip_part);
        sp_snap_put_u64(w, d->next_free);
        sp_snap_put_bool(w, d->used);
    }
    sp_snap_put_u64(w, c->free_dl);
    return sp_snap_put_u64(w, c->type);
}

static int chain_restore(void *self, struct sp_snapshot_reader *r)
{
    struct chain *c = self;
    uint64_t counts[3], type, free_dl;
    size_t n_pend, n_dl;
    sp_snap_get_array_n(r, 14);
    sp_snap_get_f64(r, &c->base_fee);
    sp_snap_get_i64(r, &c->next_block);
    sp_snap_get_u64(r, &c->next_id);
    sp_snap_get_u64(r, &c->cur_id);
    sp_snap_get_f64(r, &c->cur_fee);
    sp_snap_get_i64(r, &c->cur_submitted);
    sp_snap_get_u64s(r, counts, 3);
    sp_snap_get_f64(r, &c->sum_delay);
    sp_snap_get_f64(r, &c->max_delay);
    sp_snap_get_f64(r, &c->max_base_fee);
    if (sp_snap_get_array(r, &n_pend)) return sp_snap_error(r);
    struct ptx *pend = malloc((n_pend ? n_pend : 1) * sizeof *pend);
    if (!pend) return sp_snap_fail(r, "out of memory");
    for (size_t i = 0; i < n_pend && !sp_snap_error(r); i++)
        get_tx(r, &pend[i].tx, &pend[i].id, &pend[i].submitted);
    if (sp_snap_get_end(r) || sp_snap_get_array(r, &n_dl) || n_dl >= UINT32_MAX) {
        free(pend);
        return sp_snap_error(r) ? sp_snap_error(r) : sp_snap_fail(r, "too many deliveries");
    }
    struct delivery *dl = calloc(n_dl ? n_dl : 1, sizeof *dl);
    if (!dl) { free(pend); return sp_snap_fail(r, "out of memory"); }
    for (size_t i = 0; i < n_dl && !sp_snap_error(r); i++) {
        uint64_t next;
        sp_snap_get_array_n(r, 5);
        get_tx(r, &dl[i].tx, &dl[i].id, &dl[i].submitted);
        sp_snap_get_f64(r, &dl[i].base_part);
        sp_snap_get_f64(r, &dl[i].tip_part);
        sp_snap_get_u64(r, &next);
        sp_snap_get_bool(r, &dl[i].used);
        sp_snap_get_end(r);
        if (next != UINT32_MAX && next >= n_dl) sp_snap_fail(r, "delivery free list out of range");
        dl[i].next_free = (uint32_t)next;
    }
    sp_snap_get_end(r);
    sp_snap_get_u64(r, &free_dl);
    sp_snap_get_u64(r, &type);
    if (!sp_snap_error(r) && type != (uint64_t)c->type) sp_snap_fail(r, "chain type changed");
    if (!sp_snap_error(r) && free_dl != UINT32_MAX && (free_dl >= n_dl || dl[free_dl].used))
        sp_snap_fail(r, "delivery free list head out of range");
    if (sp_snap_get_end(r)) {
        free(pend);
        free(dl);
        return sp_snap_error(r);
    }
    free(c->pend);
    free(c->dl);
    c->pend = pend;
    c->n_pend = c->cap_pend = n_pend;
    c->dl = dl;
    c->n_dl = c->cap_dl = n_dl;
    c->free_dl = (uint32_t)free_dl;
    c->n_blocks = counts[0];
    c->n_dropped = counts[1];
    c->n_delayed = counts[2];
    return SP_OK;
}

const struct sp_module_ops sp_chain_instant_ops = {
    .kind = "chain",
    .type = "instant",
    .summary = "Transactions execute at once (at the submission time, after the submitting "
               "handler), with no fee: the default without a `chain:` section.",
    .schema = &instant_schema,
    .state_size = sizeof(struct chain),
    .default_name = chain_default_name,
    .init = instant_init,
    .start = chain_start,
    .on_event = chain_on_event,
    .finish = chain_finish,
    .release = chain_release,
    .snapshot = chain_snapshot,
    .restore = chain_restore,
};

const struct sp_module_ops sp_chain_eip1559_ops = {
    .kind = "chain",
    .type = "eip1559",
    .summary = "A mempool and blocks every block_time: transactions ordered by priority fee "
               "up to the gas limit, an EIP-1559 base fee, background demand and congestion "
               "spikes (docs/chain.md).",
    .schema = &eip1559_schema,
    .state_size = sizeof(struct chain),
    .default_name = chain_default_name,
    .init = eip1559_init,
    .start = chain_start,
    .on_event = chain_on_event,
    .finish = chain_finish,
    .release = chain_release,
    .snapshot = chain_snapshot,
    .restore = chain_restore,
};

/* ---- the API ------------------------------------------------------------------------ */

static bool tx_valid(struct sp_sim *sim, const struct sp_tx *tx)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, tx->sender);
    return ops && ops->on_event && isfinite(tx->gas) && tx->gas > 0 &&
           isfinite(tx->max_fee) && tx->max_fee >= 0 && isfinite(tx->priority_fee) &&
           tx->priority_fee >= 0 && tx->deadline >= 0;
}

int sp_chain_submit(struct sp_sim *sim, const struct sp_tx *tx, uint64_t *tx_id)
{
    if (!sim || !tx || !tx_valid(sim, tx)) return SP_EINVAL;
    struct chain *c = chain_of(sim);
    sp_time now = sp_sim_now(sim);
    if (!c) {                                   /* hand-built sim: no chain entity */
        struct sp_event *ev = sp_sim_schedule(sim, now, SP_PRIO_CHAIN, tx->sender, tx->kind);
        if (!ev) return SP_ENOMEM;
        ev->data = tx->data;
        if (tx_id) *tx_id = 0;
        return SP_OK;
    }
    if (c->type == CHAIN_EIP1559 && tx->gas > c->cfg->gas_limit) return SP_EINVAL;
    uint64_t id = c->next_id + 1;
    int rc = SP_OK;
    if (c->type == CHAIN_INSTANT) {
        rc = deliver_at(c, now, EV_TX, tx, id, now, 0, 0);
    } else if (tx->deadline && tx->deadline < c->next_block) {
        c->n_dropped++;                         /* cannot make the next block */
        rc = deliver_at(c, tx->deadline > now ? tx->deadline : now, EV_DROP, tx, id, now, 0, 0);
    } else {
        if (c->n_pend == c->cap_pend) {
            size_t cap = c->cap_pend ? 2 * c->cap_pend : 64;
            struct ptx *p = realloc(c->pend, cap * sizeof *p);
            if (!p) return SP_ENOMEM;
            c->pend = p;
            c->cap_pend = cap;
        }
        c->pend[c->n_pend++] = (struct ptx){ *tx, id, now };
    }
    if (rc) return rc;
    c->next_id = id;
    if (tx_id) *tx_id = id;
    return SP_OK;
}

bool sp_chain_instant(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    if (!c) return true;
    return sp_sim_entity_ops(sim, c->id) != &sp_chain_eip1559_ops;
}

double sp_chain_base_fee(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c && c->type == CHAIN_EIP1559 ? c->base_fee : 0.0;
}

size_t sp_chain_pending(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c ? c->n_pend : 0;
}

sp_time sp_chain_next_block(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c && c->type == CHAIN_EIP1559 ? c->next_block : sp_sim_now(sim);
}

sp_time sp_chain_block_time(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c && c->type == CHAIN_EIP1559 ? c->cfg->block_time : 0;
}

sp_token sp_chain_gas_token(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c ? c->gas_token : -1;
}

uint64_t sp_chain_current_tx(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c ? c->cur_id : 0;
}

double sp_chain_current_fee(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c ? c->cur_fee : 0.0;
}

sp_time sp_chain_current_submitted(struct sp_sim *sim)
{
    struct chain *c = chain_of(sim);
    return c ? c->cur_submitted : -1;
}
