/*
 * keeper.c — the "keeper" agent: a liquidator (DESIGN §2, "Agents:
 * Liquidator / keeper") for every liquidation mechanism of
 * market/liquidation.h, acting through the chain of market/chain.h.
 *
 * Seeing.  It subscribes to the liquidatable events of the protocols it
 * watches (sp_lending_subscribe; for auction protocols only when they are
 * barked by keepers, `kick: keeper`) and to their auction kicks and redos
 * (sp_liq_subscribe_auctions), and every `poll` it looks again at what is
 * still there: positions still liquidatable (a close factor leaves some
 * debt, a liquidation it skipped may have become profitable), live
 * auctions (a Dutch price falls, an English bid expires or is outbid), lots
 * it won that someone else settled.  Each OPPORTUNITY — a position or an
 * auction of a protocol — is handled once at a time: seen at t, decided at
 * t + latency (drawn per member), submitted as one transaction, executed
 * when the chain delivers it (at once without a chain), re-checked then;
 * only after that can the same opportunity be taken up again.
 *
 * Deciding and executing, per mechanism (FORMULAS.md):
 *   fixed_spread   for the (debt, collateral) pair with the best profit it
 *                  repays the most it may — close factor × debt (Aave v3:
 *                  `close_factor`, `close_factor_max` once HF <=
 *                  `hf_threshold`, read from the protocol's `liquidation:`
 *                  mapping for its estimate; the protocol applies the
 *                  rule), at most its capital — and sells what it seized
 *                  where the proceeds are best: every market trading
 *                  collateral against debt
 *                  (or those of `venues`) is quoted for the whole amount.
 *                  Estimated profit = proceeds − repaid (− flash fee) − gas;
 *                  below min_profit it tries the size with the best profit
 *                  (a thin pool pays less for more) and skips the position
 *                  when even that is short.  At execution sp_liq_fixed, then
 *                  the sale (cause liquidation, the liquidation's cascade
 *                  generation).  A call that would now lose (the pool moved
 *                  since) reverts, as a keeper contract would.
 *   dutch_auction  barks liquidatable positions itself when the protocol
 *                  says `kick: keeper` (the incentive tip + chip·tab is
 *                  its); redoes runs that need it (same incentive); takes
 *                  when the auction price is at most value·(1 − margin),
 *                  where value is what the slice fetches per unit on the
 *                  best venue now; slice = min(lot, tab/price, capital /
 *                  price); max price = value·(1 − margin); sells at once.
 *   english_auction  (Maker flip) values the lot at its best sale now, V,
 *                  and bids up to V·(1 − margin).  `bidding: increment`:
 *                  tend phase — the next bid is the current one ×
 *                  max(raise, beg) (the first: open_bid × tab), capped at
 *                  its maximum (still at least beg × the current bid) and
 *                  at tab; dent phase (bid == tab) — the lot it asks for is
 *                  the current lot / max(raise, beg), not below the least
 *                  lot worth tab to it.  `bidding: jump`: its maximum at
 *                  once (tend) or that least lot (dent), as Maker's
 *                  auction-keeper bid its model price; that bid's DAI is
 *                  locked until it is outbid or the lot is dealt, so
 *                  capital limits how many auctions it holds at once.  It
 *                  never outbids itself.  It values the lot now and sells
 *                  it when dealt (ttl later): a falling market is its
 *                  loss.  A bid whose expiry or whose auction's end has
 *                  passed is dealt (anyone's; a lot that ended without bids
 *                  is restarted the same way).
 *                  So two keepers raise each other until the lower
 *                  valuation stops, and a lone keeper — the others' bids
 *                  stuck in the mempool — wins at its opening bid (the
 *                  zero_bid of /events/auctions: Black Thursday).
 *   amm_direct, none: nothing for a keeper.
 *
 * Money.  `capital` (units of `capital_token`; default the watched
 * protocols' only stable debt token, else their only debt token) is minted
 * at init.  With `flash: true` it borrows the debt token inside the
 * transaction (minted before the call and burned after the sale, plus
 * flash_fee: a flash loan nets to zero in the ledger) for fixed-spread
 * liquidations and Dutch takes; it checks the sale covers the loan before
 * acting.  English bids are held for hours, so they need capital: a flash
 * keeper without capital leaves English auctions alone (n_capital_bound).
 *
 * Gas.  A transaction uses gas_per_call gas with fee cap max_fee (gas_policy
 * fixed) or fee_multiple × the next block's base fee + priority_fee
 * (adaptive) and tip priority_fee, all gwei per gas.  With a fixed cap below
 * the base fee its transactions wait in the mempool (and are dropped after
 * tx_timeout when that is set).  The fee it pays is the chain's
 * (sp_chain_current_fee, gas-token units; 0 when the chain is instant),
 * valued at the gas token's price: the chain's `gas_token` (else a token
 * called ETH) priced by the first watched protocol that lists it, else by
 * its reference process.  failure_probability: a delivered transaction
 * reverts with that probability (gas paid, nothing done).
 *
 * Profit (numeraire) is cash flow in the debt token of each action,
 * measured around the action in its own handler (so a fee the chain takes
 * from its wallet at inclusion is counted once, as gas): proceeds − repaid,
 * proceeds − paid for a take, incentives, − bids paid, + refunds when
 * outbid, + proceeds of lots won; minus gas.  At the end, bids still
 * standing count at face value and collateral it still holds at the
 * protocol's price.
 *
 * /summary per population (members summed by the last one; NAME without
 * the member suffix): see docs/output.md, n_liquidations_NAME and the rest.
 *
 * Snapshot (docs/snapshot.md).  The payload is what moves while running:
 * the opportunity serial, last_gen, the /summary counters and money
 * (profit, gas, repaid, latency and wait sums) as two bins; every
 * opportunity slot, used or not, as struct-of-arrays bins (flags, action
 * and serial; protocol and target; tokens; amount and limit; seen and
 * submitted) — queued decide events and the chain's transactions name a
 * slot and its serial — with the free stack in its exact order and the
 * table's capacity; and the standing English bids in array order (polls
 * review them last to first, removals swap in the last).  The hash table
 * is rebuilt from the used slots (only lookups read it, so its layout
 * does not matter); protocols, venues, the capital token and the member's
 * draws (capital, latency, min_profit, margin, inattentive) come back from
 * init, the mechanisms from start, the capital itself with the ledger.
 * Restore checks slot counts, the free stack (every slot used or free
 * exactly once), protocol indexes, tokens and duplicate targets.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "chain.h"
#include "lending.h"
#include "liquidation.h"
#include "reference.h"

enum { EV_POLL = 1, EV_LIQ, EV_KICK, EV_DECIDE, EV_TX, EV_DROP };
enum act { ACT_NONE, ACT_LIQ, ACT_BARK, ACT_TAKE, ACT_REDO, ACT_TEND, ACT_DENT, ACT_DEAL };
enum { GAS_FIXED, GAS_ADAPTIVE };
enum { BID_INCREMENT, BID_JUMP };

#define GWEI 1e-9                  /* gas token per gwei */
#define FLASH_FEE_DEFAULT "0.09%"  /* Aave v3's flash-loan premium */
#define SEARCH_ITERS 60            /* golden-section steps for the best liquidation size */

/* ---- config ---------------------------------------------------------------- */

struct keeper_cfg {
    const char *protocols, *venues, *capital_token;
    int64_t count;
    struct sp_dist latency, capital, min_profit;
    bool flash;
    double flash_fee;
    int gas_policy;
    double max_fee, priority_fee, fee_multiple, gas_per_call;
    struct sp_dist margin;
    double failure_probability, inattentive, open_bid, raise;
    int bidding;                   /* BID_INCREMENT or BID_JUMP */
    sp_time poll, tx_timeout;
    /* Filled by the check: the world's protocol items (their nodes carry
     * close_factor and the liquidation mapping) — scenario arena memory. */
    const struct sp_module_cfg *proto_items;
    size_t n_proto_items;
};

static const char *const gas_policies[] = { "fixed", "adaptive", NULL };
static const char *const biddings[] = { "increment", "jump", NULL };

/* Item name as the world names its entity. */
static const char *item_name(const struct sp_module_cfg *m, char *buf, size_t size)
{
    if (m->name) return m->name;
    if (m->ops && m->ops->default_name) return m->ops->default_name(m->cfg, buf, size);
    snprintf(buf, size, "%s_%s", m->ops ? m->ops->kind : "?", m->ops ? m->ops->type : "?");
    return buf;
}

/* Split "a, b c" into words: calls fn(word, len, arg) for each; stops at
 * a nonzero return. */
static int each_word(const char *s, int (*fn)(const char *, size_t, void *), void *arg)
{
    while (s && *s) {
        while (*s == ',' || *s == ' ' || *s == '\t') s++;
        size_t n = strcspn(s, ", \t");
        if (n) {
            int rc = fn(s, n, arg);
            if (rc) return rc;
        }
        s += n;
    }
    return 0;
}

struct check_word {
    const struct sp_check_ctx *ctx;
    const struct sp_module_cfg *items;
    size_t n;
    const char *key, *what;
    int rc;
};

/* One name of a list: check it as sp_world_check_entity checks a scalar,
 * through a stand-in map {key: word} located where the list is. */
static int check_one(const char *w, size_t len, void *arg)
{
    struct check_word *cw = arg;
    const struct sp_node *at = sp_node_get(cw->ctx->node, cw->key);
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)(len < 127 ? len : 127), w);
    struct sp_node map = { 0 }, val = *at;
    val.value = word;                 /* its parent stays the real item: the path */
    val.next = NULL;
    map = *at->parent;
    map.child = &val;
    map.n_children = 1;
    struct sp_check_ctx sub = *cw->ctx;
    sub.node = &map;
    if (sp_world_check_entity(&sub, cw->key, cw->items, cw->n, cw->what, NULL)) cw->rc = SP_ECONFIG;
    return 0;
}

static int keeper_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct keeper_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = SP_OK;
    c->proto_items = w->protocols;
    c->n_proto_items = w->n_protocols;
    if (c->protocols) {
        struct check_word cw = { ctx, w->protocols, w->n_protocols, "protocols", "protocol", 0 };
        each_word(c->protocols, check_one, &cw);
        if (cw.rc) rc = SP_ECONFIG;
    } else if (w->n_protocols == 0) {
        sp_diag_error(ctx->diag, ctx->node, "a keeper needs a lending protocol to watch: the "
                      "scenario defines none");
        rc = SP_ECONFIG;
    }
    if (c->venues) {
        struct check_word cw = { ctx, w->markets, w->n_markets, "venues", "venue", 0 };
        each_word(c->venues, check_one, &cw);
        if (cw.rc) rc = SP_ECONFIG;
    }
    if (c->capital_token && sp_world_check_token(ctx, "capital_token", -1)) rc = SP_ECONFIG;
    if (c->gas_policy == GAS_FIXED && !sp_node_get(ctx->node, "max_fee")) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "gas_policy"),
                      "gas_policy fixed needs `max_fee` (its fee cap, gwei per gas); or use "
                      "gas_policy: adaptive with fee_multiple");
        rc = SP_ECONFIG;
    }
    if (c->gas_policy == GAS_FIXED && sp_node_get(ctx->node, "max_fee") &&
        c->priority_fee > c->max_fee) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "priority_fee"),
                      "priority_fee %g is above max_fee %g", c->priority_fee, c->max_fee);
        rc = SP_ECONFIG;
    }
    if (sp_dist_check_nonneg(ctx, "capital", &c->capital)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "latency", &c->latency)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "min_profit", &c->min_profit)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "margin", &c->margin)) rc = SP_ECONFIG;
    if (!c->flash && c->capital.kind == SP_DIST_CONST && c->capital.value == 0) {
        sp_diag_error(ctx->diag, ctx->node, "a keeper needs `capital` (debt-token units) or "
                      "`flash: true`");
        rc = SP_ECONFIG;
    }
    /* A resolved scenario (/config.yaml, a snapshot's) writes the default
     * out: only another value without flash is a mistake. */
    const struct sp_node *ff = sp_node_get(ctx->node, "flash_fee");
    double ff_default = 0;
    if (sp_parse_fraction(FLASH_FEE_DEFAULT, &ff_default)) ff_default = NAN;
    if (!c->flash && ff && !(ff->flags & SP_NODE_DEFAULT) && c->flash_fee != ff_default) {
        sp_diag_error(ctx->diag, ff, "flash_fee applies with `flash: true` only");
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field keeper_fields[] = {
    { "protocols", SP_T_STRING, 0, 0, 0, NULL, NULL,
      "Lending protocols it watches, by name, separated by commas or spaces (\"aave, maker\"); "
      "default all.", offsetof(struct keeper_cfg, protocols), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1e6, "1", "agents",
      "Population size: N > 1 makes NAME_0 .. NAME_{N-1}, each with its own draws.",
      offsetof(struct keeper_cfg, count), NULL, 0 },
    { "latency", SP_T_DIST, SP_F_MIN, 0, 0, "0", "seconds",
      "Reaction delay between seeing an opportunity and submitting its transaction (drawn "
      "per member).", offsetof(struct keeper_cfg, latency), NULL, 0 },
    { "capital", SP_T_DIST, SP_F_MIN, 0, 0, "0", "capital token",
      "Debt-token units it holds, minted at init: caps repayments, takes and bids.",
      offsetof(struct keeper_cfg, capital), NULL, 0 },
    { "capital_token", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The token of its capital; default the watched protocols' only stable debt token, "
      "else their only debt token.", offsetof(struct keeper_cfg, capital_token), NULL, 0 },
    { "flash", SP_T_BOOL, 0, 0, 0, "false", NULL,
      "Unlimited flash liquidity for fixed-spread liquidations and Dutch takes: borrows the "
      "debt token inside the transaction, repays it from the sale.",
      offsetof(struct keeper_cfg, flash), NULL, 0 },
    { "flash_fee", SP_T_FRACTION, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, FLASH_FEE_DEFAULT,
      "fraction",
      "Fee on a flash loan (Aave v3: 0.05-0.09 %).", offsetof(struct keeper_cfg, flash_fee),
      NULL, 0 },
    { "gas_policy", SP_T_ENUM, 0, 0, 0, "adaptive", NULL,
      "fixed: a constant fee cap `max_fee` (waits while the base fee is above it); adaptive: "
      "fee_multiple × base fee + priority_fee.", offsetof(struct keeper_cfg, gas_policy),
      gas_policies, 0 },
    { "max_fee", SP_T_NUMBER, SP_F_MIN, 0, 0, NULL, "gwei per gas",
      "gas_policy fixed: its fee cap (maxFeePerGas); ignored by an adaptive keeper.",
      offsetof(struct keeper_cfg, max_fee), NULL, 0 },
    { "priority_fee", SP_T_NUMBER, SP_F_MIN, 0, 0, "2", "gwei per gas",
      "Tip (maxPriorityFeePerGas): orders it within a block.",
      offsetof(struct keeper_cfg, priority_fee), NULL, 0 },
    { "fee_multiple", SP_T_NUMBER, SP_F_MIN, 1, 0, "2", "x base fee",
      "gas_policy adaptive: fee cap = this × the next block's base fee + priority_fee.",
      offsetof(struct keeper_cfg, fee_multiple), NULL, 0 },
    { "gas_per_call", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, "500000", "gas",
      "Gas one liquidation, bark, take, bid or deal uses.",
      offsetof(struct keeper_cfg, gas_per_call), NULL, 0 },
    { "min_profit", SP_T_DIST, SP_F_MIN, 0, 0, "0", "numeraire",
      "Least expected profit after gas (and flash fee) for a liquidation or take.",
      offsetof(struct keeper_cfg, min_profit), NULL, 0 },
    { "failure_probability", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "0", "probability",
      "Chance that a delivered transaction reverts anyway (gas paid, nothing done).",
      offsetof(struct keeper_cfg, failure_probability), NULL, 0 },
    { "margin", SP_T_DIST, SP_F_MIN | SP_F_MAX_EXCL, 0, 1, "0.02", "fraction",
      "Auctions: takes when the price is <= value·(1 − margin); bids up to "
      "value·(1 − margin) (drawn per member).",
      offsetof(struct keeper_cfg, margin), NULL, 0 },
    { "venues", SP_T_STRING, 0, 0, 0, NULL, NULL,
      "Markets it may sell seized collateral on (names separated by commas or spaces); "
      "default every market trading the pair.", offsetof(struct keeper_cfg, venues), NULL, 0 },
    { "open_bid", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "0.1%", "fraction of tab",
      "English: its first bid on an auction nobody has bid on.",
      offsetof(struct keeper_cfg, open_bid), NULL, 0 },
    { "raise", SP_T_NUMBER, SP_F_MIN, 1, 0, "1.05", "x",
      "English: factor of each raise of the bid (tend) or cut of the lot (dent); at least the "
      "auction's beg.", offsetof(struct keeper_cfg, raise), NULL, 0 },
    { "bidding", SP_T_ENUM, 0, 0, 0, "increment", NULL,
      "English: increment raises the standing bid by `raise` (opening at open_bid × tab) up "
      "to its maximum; jump bids its maximum at once (Maker's auction-keeper bidding its "
      "model price), locking that much capital until outbid or dealt.",
      offsetof(struct keeper_cfg, bidding), biddings, 0 },
    { "poll", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",
      "How often it looks again at liquidatable positions and live auctions.",
      offsetof(struct keeper_cfg, poll), NULL, 0 },
    { "tx_timeout", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "A transaction not included this long after submission is dropped (0: never).",
      offsetof(struct keeper_cfg, tx_timeout), NULL, 0 },
    { "inattentive", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "0", "probability",
      "Chance that a member never acts (an offline keeper).",
      offsetof(struct keeper_cfg, inattentive), NULL, 0 },
};

static const struct sp_schema keeper_schema = {
    "agents[type: keeper]",
    "A liquidator: watches lending protocols, liquidates fixed-spread positions, barks, "
    "takes and redoes Dutch auctions, bids in English auctions; finite capital or flash "
    "loans, a gas policy on the chain, a minimum profit, a failure probability.",
    keeper_fields, sizeof keeper_fields / sizeof keeper_fields[0], sizeof(struct keeper_cfg),
    keeper_check
};

/* ---- state ----------------------------------------------------------------- */

struct kproto {                    /* a watched protocol */
    sp_id id;
    enum sp_liq_mechanism mech;
    bool kick_keeper;              /* auctions: keepers bark */
    double close_factor, close_factor_max, hf_threshold, beg;
    double protocol_fee;           /* fixed_spread: share of the bonus to the treasury */
    double seize_share;            /* compound_v2: share of the seizure to the reserves */
    bool compound;
    sp_token debts[16];            /* what it lends: borrowable assets, or the stablecoin */
    size_t n_debts;
};

struct pend {                      /* an opportunity being acted on */
    bool used, auction;
    uint8_t act;
    uint32_t serial;
    size_t pi;                     /* index in protos */
    uint32_t target;               /* owner (position) or auction id */
    sp_token debt, coll;
    double amount, limit;
    sp_time seen, submitted;
};

struct engage {                    /* an English auction it is the high bidder of */
    size_t pi;
    uint32_t id;
    sp_token debt, coll;
    double paid;                   /* debt token it paid in */
    int generation;
};

struct keeper {
    const struct keeper_cfg *cfg;
    sp_id id, pop_first;
    size_t member;
    struct kproto *protos;
    size_t n_protos;
    sp_id *venues;
    size_t n_venues;
    sp_token cash;                 /* capital token, -1 when none */
    double latency_s, min_profit, capital, margin;
    bool inattentive, subscribed;
    sp_token gas_tok;
    struct pend *pend;
    size_t n_pend, n_used;
    uint32_t *free_slots;          /* unused pend slots (a stack) */
    size_t n_free;
    uint32_t *ht;                  /* (protocol, kind, target) -> pend slot + 1 */
    size_t ht_cap;
    uint32_t serial;
    struct engage *eng;
    size_t n_eng;
    sp_id *owners;                 /* scratch for sp_lending_liquidatable */
    size_t n_owners_cap;
    uint32_t *ids;                 /* scratch for sp_liq_auctions */
    size_t n_ids_cap;
    int last_gen;                  /* generation of the last lot it bought */
    /* metrics */
    int64_t n_liq, n_bark, n_take, n_redo, n_bid, n_deal, n_win;
    int64_t n_tx, n_included, n_failed, n_reverted, n_dropped, n_skipped, n_capital_bound;
    double profit, gas_spent, repaid, latency_sum, wait_sum;
    int64_t n_exec;
};

static size_t keeper_count(const void *cfg)
{
    const struct keeper_cfg *c = cfg;
    return (size_t)c->count;
}

static size_t member_index(const char *name, size_t count)
{
    if (count <= 1) return 0;
    const char *u = strrchr(name, '_');
    return u ? (size_t)strtoull(u + 1, NULL, 10) : 0;
}

/* The scalar `key` of the protocol item's `liquidation` map (or of the item
 * itself when sub is NULL), or NULL. */
static const char *proto_text(const struct keeper_cfg *c, const char *proto, const char *sub,
                              const char *key)
{
    for (size_t i = 0; i < c->n_proto_items; i++) {
        char buf[128];
        const struct sp_module_cfg *m = &c->proto_items[i];
        if (strcmp(item_name(m, buf, sizeof buf), proto)) continue;
        const struct sp_node *n = m->node;
        if (sub) n = n ? sp_node_get(n, sub) : NULL;
        n = n ? sp_node_get(n, key) : NULL;
        return n && n->value ? n->value : NULL;
    }
    return NULL;
}

static double proto_number(const struct keeper_cfg *c, const char *proto, const char *sub,
                           const char *key, double def)
{
    const char *t = proto_text(c, proto, sub, key);
    double v;
    if (t && !sp_parse_fraction(t, &v) && isfinite(v)) return v;
    return def;
}

struct add_ctx { struct keeper *k; struct sp_sim *sim; int rc; bool venues; };

static int add_name(const char *w, size_t len, void *arg)
{
    struct add_ctx *a = arg;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(len < 127 ? len : 127), w);
    sp_id e = sp_sim_find(a->sim, name);
    const char *me = sp_sim_entity_name(a->sim, a->k->id);
    if (a->venues) {
        if (e == SP_ID_NONE || !sp_market_ops_of(a->sim, e)) {
            sp_sim_fail(a->sim, SP_EINVAL, "%s: '%s' is not a market", me, name);
            a->rc = SP_EINVAL;
            return 1;
        }
        a->k->venues[a->k->n_venues++] = e;
        return 0;
    }
    if (e == SP_ID_NONE || !sp_lending_is(a->sim, e)) {
        sp_sim_fail(a->sim, SP_EINVAL, "%s: '%s' is not a lending protocol", me, name);
        a->rc = SP_EINVAL;
        return 1;
    }
    a->k->protos[a->k->n_protos++].id = e;
    return 0;
}

/* Debt tokens of a protocol: its borrowable assets (pool) or its stablecoin
 * (cdp: minted, not a listed asset — read from its scenario item). */
static void find_debts(struct keeper *k, struct sp_sim *sim, struct kproto *p)
{
    p->n_debts = 0;
    for (size_t i = 0; i < sp_lending_asset_count(sim, p->id); i++) {
        struct sp_lending_asset a;
        if (sp_lending_asset_info(sim, p->id, i, &a) || !a.borrowable) continue;
        if (p->n_debts < 16) p->debts[p->n_debts++] = a.token;
    }
    const char *st = proto_text(k->cfg, sp_sim_entity_name(sim, p->id), NULL, "stablecoin");
    sp_token t = st ? sp_token_find(sim, st) : -1;
    if (t >= 0 && p->n_debts < 16) p->debts[p->n_debts++] = t;
}

static int keeper_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct keeper *k = self;
    const struct keeper_cfg *c = cfg;
    const char *me = sp_sim_entity_name(sim, id);
    k->cfg = c;
    k->id = id;
    k->member = member_index(me, (size_t)c->count);
    k->pop_first = id - (sp_id)k->member;
    size_t ne = sp_sim_entity_count(sim);
    k->protos = calloc(ne ? ne : 1, sizeof *k->protos);
    k->venues = calloc(ne ? ne : 1, sizeof *k->venues);
    if (!k->protos || !k->venues) return SP_ENOMEM;
    struct add_ctx a = { k, sim, 0, false };
    if (c->protocols) {
        each_word(c->protocols, add_name, &a);
    } else {
        for (sp_id e = 0; e < ne; e++)
            if (sp_lending_is(sim, e)) k->protos[k->n_protos++].id = e;
    }
    if (a.rc) return a.rc;
    if (!k->n_protos) {
        sp_sim_fail(sim, SP_EINVAL, "%s: no lending protocol to watch", me);
        return SP_EINVAL;
    }
    a.venues = true;
    if (c->venues) each_word(c->venues, add_name, &a);
    else
        for (sp_id e = 0; e < ne; e++)
            if (sp_market_ops_of(sim, e)) k->venues[k->n_venues++] = e;
    if (a.rc) return a.rc;
    for (size_t i = 0; i < k->n_protos; i++) find_debts(k, sim, &k->protos[i]);
    /* The capital token. */
    k->cash = -1;
    if (c->capital_token) {
        k->cash = sp_token_find(sim, c->capital_token);
    } else {
        sp_token all[64], stable = -1;
        size_t n = 0;
        int n_stable = 0;
        for (size_t i = 0; i < k->n_protos; i++) {
            const sp_token *t = k->protos[i].debts;
            size_t m = k->protos[i].n_debts;
            for (size_t j = 0; j < m; j++) {
                bool seen = false;
                for (size_t q = 0; q < n; q++) seen |= all[q] == t[j];
                if (seen || n == 64) continue;
                all[n++] = t[j];
                if (sp_token_kind(sim, t[j]) == SP_TOKEN_STABLE) { stable = t[j]; n_stable++; }
            }
        }
        if (n_stable == 1) k->cash = stable;
        else if (n == 1) k->cash = all[0];
        else if (!c->flash || sp_dist_mean(&c->capital) > 0) {
            sp_sim_fail(sim, SP_EINVAL, "%s: its protocols lend %zu tokens: say which one its "
                        "capital is in with `capital_token`", me, n);
            return SP_EINVAL;
        }
    }
    /* Draws, in a fixed order. */
    struct sp_rng *rng = sp_sim_rng(sim, id);
    k->capital = sp_dist_draw(&c->capital, rng);
    k->latency_s = sp_dist_draw(&c->latency, rng);
    k->min_profit = sp_dist_draw(&c->min_profit, rng);
    k->inattentive = sp_rng_uniform(rng) < c->inattentive;
    k->margin = sp_dist_draw(&c->margin, rng);
    if (!(k->capital >= 0) || !isfinite(k->capital) || !(k->latency_s >= 0) ||
        !isfinite(k->latency_s) || !(k->min_profit >= 0) || !isfinite(k->min_profit) ||
        !(k->margin >= 0 && k->margin < 1)) {
        sp_sim_fail(sim, SP_EMODEL, "%s: drew capital %g, latency %g, min_profit %g, margin %g "
                    "(need >= 0, margin < 1)", me, k->capital, k->latency_s, k->min_profit,
                    k->margin);
        return SP_EMODEL;
    }
    if (k->capital > 0) {
        int rc = sp_mint(sim, k->cash, id, k->capital);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: cannot mint its capital: %s", me, sp_strerror(rc));
            return rc;
        }
    }
    k->last_gen = 0;
    return SP_OK;
}

static void keeper_release(void *self)
{
    struct keeper *k = self;
    free(k->protos);
    free(k->venues);
    free(k->pend);
    free(k->free_slots);
    free(k->ht);
    free(k->eng);
    free(k->owners);
    free(k->ids);
}

static int keeper_start(void *self, struct sp_sim *sim)
{
    struct keeper *k = self;
    const struct keeper_cfg *c = k->cfg;
    /* Mechanisms exist once the protocols are initialised. */
    for (size_t i = 0; i < k->n_protos; i++) {
        struct kproto *p = &k->protos[i];
        const char *pn = sp_sim_entity_name(sim, p->id);
        p->mech = sp_liq_mechanism(sim, p->id);
        const char *kick = proto_text(c, pn, "liquidation", "kick");
        p->kick_keeper = kick && !strcmp(kick, "keeper");
        p->close_factor = proto_number(c, pn, "liquidation", "close_factor",
                                       proto_number(c, pn, NULL, "close_factor", 0.5));
        p->close_factor_max = proto_number(c, pn, "liquidation", "close_factor_max", 1.0);
        p->hf_threshold = proto_number(c, pn, "liquidation", "hf_threshold", 0.95);
        p->beg = proto_number(c, pn, "liquidation", "beg", 1.05);
        const char *variant = proto_text(c, pn, "liquidation", "variant");
        p->compound = variant && !strcmp(variant, "compound_v2");
        p->protocol_fee = proto_number(c, pn, "liquidation", "protocol_fee", 0);
        p->seize_share = proto_number(c, pn, "liquidation", "seize_share", 0);
    }
    k->gas_tok = sp_chain_gas_token(sim);
    if (k->gas_tok < 0) k->gas_tok = sp_token_find(sim, "ETH");
    if (k->inattentive) return SP_OK;
    for (size_t i = 0; i < k->n_protos; i++) {
        struct kproto *p = &k->protos[i];
        int rc = SP_OK;
        bool auction = p->mech == SP_LIQ_DUTCH || p->mech == SP_LIQ_ENGLISH;
        if (p->mech == SP_LIQ_FIXED_SPREAD || (auction && p->kick_keeper))
            rc = sp_lending_subscribe(sim, p->id, k->id, EV_LIQ);
        if (!rc && auction) rc = sp_liq_subscribe_auctions(sim, p->id, k->id, EV_KICK);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: cannot subscribe to '%s': %s",
                        sp_sim_entity_name(sim, k->id), sp_sim_entity_name(sim, p->id),
                        sp_strerror(rc));
            return rc;
        }
    }
    /* Polls on a grid of `poll`; members of a population at random phases. */
    sp_time phase = c->count > 1 ? (sp_time)sp_rng_below(sp_sim_rng(sim, k->id),
                                                         (uint64_t)c->poll) : 0;
    if (phase > sp_sim_horizon(sim)) return SP_OK;
    return sp_sim_schedule(sim, phase, SP_PRIO_AGENT, k->id, EV_POLL) ? SP_OK : SP_ENOMEM;
}

/* ---- prices, venues, gas -------------------------------------------------- */

static double price_of(struct keeper *k, struct sp_sim *sim, sp_token tok)
{
    for (size_t i = 0; i < k->n_protos; i++) {
        double p = sp_lending_price(sim, k->protos[i].id, tok);
        if (isfinite(p)) return p;
    }
    const char *name = sp_token_name(sim, tok);
    for (sp_id e = 0; name && e < sp_sim_entity_count(sim); e++) {
        if (!sp_is_reference(sim, e)) continue;
        const char *a = sp_reference_asset(sim, e);
        if (a && !strcmp(a, name)) return sp_reference_price(sim, e);
    }
    return NAN;
}

/* Gas-token units -> numeraire. */
static double gas_value(struct keeper *k, struct sp_sim *sim, double fee)
{
    if (!(fee > 0)) return 0;
    double p = k->gas_tok >= 0 ? price_of(k, sim, k->gas_tok) : NAN;
    if (!isfinite(p)) {
        sp_sim_fail(sim, SP_EMODEL, "%s: it paid %g in gas but has no price for the gas token "
                    "(give the chain a `gas_token` that a protocol or reference prices)",
                    sp_sim_entity_name(sim, k->id), fee);
        return 0;
    }
    return fee * p;
}

/* Fee cap and the gas cost it expects now (numeraire). */
static double fee_cap(struct keeper *k, struct sp_sim *sim)
{
    const struct keeper_cfg *c = k->cfg;
    if (c->gas_policy == GAS_FIXED) return c->max_fee;
    return c->fee_multiple * sp_chain_base_fee(sim) + c->priority_fee;
}

static double gas_estimate(struct keeper *k, struct sp_sim *sim)
{
    if (sp_chain_instant(sim)) return 0;
    double base = sp_chain_base_fee(sim);
    double per = base + fmin(k->cfg->priority_fee, fmax(fee_cap(k, sim) - base, 0));
    double p = k->gas_tok >= 0 ? price_of(k, sim, k->gas_tok) : NAN;
    return isfinite(p) ? k->cfg->gas_per_call * per * GWEI * p : 0;
}

/* The best sale of `amt` of `coll` for `debt`: *out, the venue and side. */
static int best_sale(struct keeper *k, struct sp_sim *sim, sp_token coll, sp_token debt,
                     double amt, double *out, sp_id *venue, enum sp_side *side)
{
    double best = -1;
    *out = 0;
    for (size_t i = 0; i < k->n_venues; i++) {
        const struct sp_market_ops *m = sp_market_ops_of(sim, k->venues[i]);
        const void *st = sp_sim_entity_state(sim, k->venues[i]);
        sp_token b, q;
        m->pair(st, &b, &q);
        enum sp_side s;
        if (b == coll && q == debt) s = SP_SELL;
        else if (b == debt && q == coll) s = SP_BUY;
        else continue;
        double o;
        if (m->quote(st, s, amt, &o) || !(o > best) || !isfinite(o)) continue;
        best = o;
        *venue = k->venues[i];
        *side = s;
    }
    if (best < 0) return SP_ENOTFOUND;
    *out = best;
    return SP_OK;
}

static bool has_venue(struct keeper *k, struct sp_sim *sim, sp_token coll, sp_token debt)
{
    double o;
    sp_id v;
    enum sp_side s;
    return best_sale(k, sim, coll, debt, 1e-9, &o, &v, &s) == SP_OK;
}

/* Sell `amt` of coll for debt on the best venue (cause liquidation). *got
 * gets the proceeds (0 if there is no venue: it keeps the collateral). */
static int sell(struct keeper *k, struct sp_sim *sim, sp_token coll, sp_token debt, double amt,
                int generation, double *got)
{
    *got = 0;
    if (!(amt > 0)) return SP_OK;
    double out;
    sp_id v;
    enum sp_side side;
    if (best_sale(k, sim, coll, debt, amt, &out, &v, &side) || !(out > 0)) return SP_OK;
    struct sp_swap req = { .agent = k->id, .side = side, .amount_in = amt,
                           .min_out = out * (1 - 1e-9), .cause = SP_CAUSE_LIQUIDATION,
                           .generation = generation };
    struct sp_swap_result res;
    int rc = sp_market_swap(sim, v, &req, &res);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: sale of %g %s on '%s' failed: %s",
                    sp_sim_entity_name(sim, k->id), amt, sp_token_name(sim, coll),
                    sp_sim_entity_name(sim, v), sp_strerror(rc));
        return rc;
    }
    *got = res.amount_out;
    return SP_OK;
}

/* ---- opportunities ----------------------------------------------------------- */

/* Opportunities are found by (protocol, kind, target) through a hash table
 * (open addressing, linear probing, backward-shift deletion) and their slots
 * recycled through a free stack, so a cascade of 10^5 liquidatable
 * positions costs O(1) per observation, not a scan of everything pending. */
static uint64_t pend_key(size_t pi, bool auction, uint32_t target)
{
    return ((uint64_t)pi << 33) | ((uint64_t)auction << 32) | target;
}

static size_t pend_hash(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static struct pend *find_pend(struct keeper *k, size_t pi, bool auction, uint32_t target)
{
    if (!k->ht_cap) return NULL;
    uint64_t key = pend_key(pi, auction, target);
    for (size_t i = pend_hash(key, k->ht_cap); k->ht[i]; i = (i + 1) & (k->ht_cap - 1)) {
        struct pend *p = &k->pend[k->ht[i] - 1];
        if (pend_key(p->pi, p->auction, p->target) == key) return p;
    }
    return NULL;
}

static void ht_put(uint32_t *ht, size_t cap, uint64_t key, uint32_t slot)
{
    size_t i = pend_hash(key, cap);
    while (ht[i]) i = (i + 1) & (cap - 1);
    ht[i] = slot + 1;
}

/* Room for one more entry in the table (load <= 1/2). */
static int ht_reserve(struct keeper *k)
{
    if (2 * (k->n_used + 1) <= k->ht_cap) return SP_OK;
    size_t cap = k->ht_cap ? 2 * k->ht_cap : 16;
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return SP_ENOMEM;
    for (size_t i = 0; i < k->ht_cap; i++)
        if (k->ht[i]) {
            const struct pend *p = &k->pend[k->ht[i] - 1];
            ht_put(ht, cap, pend_key(p->pi, p->auction, p->target), k->ht[i] - 1);
        }
    free(k->ht);
    k->ht = ht;
    k->ht_cap = cap;
    return SP_OK;
}

static struct pend *new_pend(struct keeper *k)
{
    if (ht_reserve(k)) return NULL;
    if (k->n_free) return &k->pend[k->free_slots[--k->n_free]];
    size_t n = k->n_pend ? 2 * k->n_pend : 8;
    struct pend *p = realloc(k->pend, n * sizeof *p);
    uint32_t *f = p ? realloc(k->free_slots, n * sizeof *f) : NULL;
    if (p) k->pend = p;
    if (!f) return NULL;
    k->free_slots = f;
    memset(p + k->n_pend, 0, (n - k->n_pend) * sizeof *p);
    for (size_t i = n; i-- > k->n_pend + 1;) k->free_slots[k->n_free++] = (uint32_t)i;
    struct pend *r = &p[k->n_pend];
    k->n_pend = n;
    return r;
}

/* Take a used opportunity into the table (after its fields are set). */
static void pend_index(struct keeper *k, struct pend *p)
{
    p->used = true;
    k->n_used++;
    ht_put(k->ht, k->ht_cap, pend_key(p->pi, p->auction, p->target), (uint32_t)(p - k->pend));
}

/* The opportunity is over (done, refused, dropped): out of the table. */
static void pend_free(struct keeper *k, struct pend *p)
{
    if (!p->used) return;
    uint32_t slot = (uint32_t)(p - k->pend);
    size_t mask = k->ht_cap - 1, i = pend_hash(pend_key(p->pi, p->auction, p->target), k->ht_cap);
    while (k->ht[i] != slot + 1) i = (i + 1) & mask;
    /* backward-shift deletion: pull later entries of the run into the hole */
    for (size_t j = (i + 1) & mask; k->ht[j]; j = (j + 1) & mask) {
        const struct pend *q = &k->pend[k->ht[j] - 1];
        size_t home = pend_hash(pend_key(q->pi, q->auction, q->target), k->ht_cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            k->ht[i] = k->ht[j];
            i = j;
        }
    }
    k->ht[i] = 0;
    p->used = false;
    k->n_used--;
    k->free_slots[k->n_free++] = slot;
}

static struct pend *pend_of(struct keeper *k, const struct sp_event *ev)
{
    size_t slot = ev->data.id[0];
    if (slot >= k->n_pend) return NULL;
    struct pend *p = &k->pend[slot];
    return p->used && p->serial == ev->data.id[1] ? p : NULL;
}

static size_t proto_index(struct keeper *k, sp_id proto)
{
    for (size_t i = 0; i < k->n_protos; i++)
        if (k->protos[i].id == proto) return i;
    return SIZE_MAX;
}

/* Take up an opportunity seen now: decide after the latency. */
static void observe(struct keeper *k, struct sp_sim *sim, size_t pi, bool auction,
                    uint32_t target)
{
    if (k->inattentive || find_pend(k, pi, auction, target)) return;
    sp_time at = sp_sim_now(sim) + (sp_time)llround(k->latency_s * (double)SP_SEC);
    if (at > sp_sim_horizon(sim)) return;
    struct pend *p = new_pend(k);
    struct sp_event *ev = p ? sp_sim_schedule(sim, at, SP_PRIO_AGENT, k->id, EV_DECIDE) : NULL;
    if (!ev) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
    memset(p, 0, sizeof *p);
    p->serial = ++k->serial;
    p->pi = pi;
    p->auction = auction;
    p->target = target;
    p->seen = sp_sim_now(sim);
    pend_index(k, p);
    ev->data.id[0] = (uint32_t)(p - k->pend);
    ev->data.id[1] = p->serial;
}

static void submit(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    const struct keeper_cfg *c = k->cfg;
    struct sp_tx tx = { 0 };
    tx.sender = k->id;
    tx.kind = EV_TX;
    tx.drop_kind = EV_DROP;
    tx.data.id[0] = (uint32_t)(p - k->pend);
    tx.data.id[1] = p->serial;
    tx.gas = c->gas_per_call;
    tx.max_fee = fee_cap(k, sim);
    tx.priority_fee = fmin(c->priority_fee, tx.max_fee);
    tx.deadline = c->tx_timeout > 0 ? sp_sim_now(sim) + c->tx_timeout : 0;
    p->submitted = sp_sim_now(sim);
    int rc = sp_chain_submit(sim, &tx, NULL);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: cannot submit a transaction: %s",
                    sp_sim_entity_name(sim, k->id), sp_strerror(rc));
        pend_free(k, p);
        return;
    }
    k->n_tx++;
}

/* What the keeper can pay in `tok` now (flash: unlimited). */
static double can_pay(struct keeper *k, struct sp_sim *sim, sp_token tok)
{
    if (k->cfg->flash) return INFINITY;
    return tok == k->cash ? sp_balance(sim, k->id, tok) : 0;
}

/* ---- fixed spread ------------------------------------------------------------ */

struct fixed_plan {
    sp_token debt, coll;
    double repay, profit;          /* debt units; numeraire after gas */
    bool capital_bound;
};

/* Collateral to the liquidator for repaying r (liq_fixed.h arithmetic). */
static double seized_for(double r, double p_d, double p_c, double bonus, double held,
                         const struct kproto *kp, double *repaid)
{
    double s = r * p_d / p_c * bonus;
    if (s > held) { s = held; r = s * p_c / p_d / bonus; }
    *repaid = r;
    return kp->compound ? s * (1 - kp->seize_share) : s - (s - s / bonus) * kp->protocol_fee;
}

/* Profit (numeraire, before gas) of repaying r. */
static double fixed_profit(struct keeper *k, struct sp_sim *sim, sp_token coll, sp_token debt,
                           double r, double p_d, double p_c, double bonus, double held,
                           const struct kproto *kp, double *repaid)
{
    double rr, out, to = seized_for(r, p_d, p_c, bonus, held, kp, &rr);
    sp_id v;
    enum sp_side s;
    if (best_sale(k, sim, coll, debt, to, &out, &v, &s)) return -INFINITY;
    *repaid = rr;
    double cost = rr * (k->cfg->flash && debt != k->cash ? 1 + k->cfg->flash_fee : 1);
    if (k->cfg->flash && debt == k->cash && rr > sp_balance(sim, k->id, debt))
        cost = rr + (rr - sp_balance(sim, k->id, debt)) * k->cfg->flash_fee;
    return (out - cost) * p_d;
}

static int plan_fixed(struct keeper *k, struct sp_sim *sim, struct kproto *kp, sp_id owner,
                      struct fixed_plan *best)
{
    struct sp_lending_position pos;
    if (sp_lending_position(sim, kp->id, owner, &pos) || !pos.liquidatable) return SP_ESTATE;
    double cf = kp->compound || pos.hf > kp->hf_threshold ? kp->close_factor
                                                          : kp->close_factor_max;
    double gas = gas_estimate(k, sim);
    bool found = false, bound = false;
    best->profit = -INFINITY;
    size_t na = sp_lending_asset_count(sim, kp->id);
    for (size_t j = 0; j < kp->n_debts; j++) {
        struct sp_lending_asset da = { .token = kp->debts[j] };
        double debt = sp_lending_debt(sim, kp->id, owner, da.token);
        double pay = can_pay(k, sim, da.token);
        if (!(debt > 0)) continue;
        if (!(pay > 0)) { bound = true; continue; }
        double p_d = sp_lending_price(sim, kp->id, da.token);
        for (size_t a = 0; a < na; a++) {
            struct sp_lending_asset ca;
            if (sp_lending_asset_info(sim, kp->id, a, &ca) || !ca.collateral) continue;
            double held = sp_lending_collateral(sim, kp->id, owner, ca.token);
            if (!(held > 0) || ca.token == da.token || !has_venue(k, sim, ca.token, da.token))
                continue;
            double p_c = sp_lending_price(sim, kp->id, ca.token);
            double bonus = 1 + ca.bonus;
            if (!(p_c > 0) || !(p_d > 0)) continue;
            double hi = debt * cf, rr;
            bool capped = false;
            if (hi > pay) { hi = pay; capped = true; }
            double r = hi;
            double pr = fixed_profit(k, sim, ca.token, da.token, hi, p_d, p_c, bonus, held,
                                     kp, &rr) - gas;
            if (pr < k->min_profit) {
                /* A thin venue pays less per unit for more: the best size. */
                double lo = 0, up = hi, g = (sqrt(5.0) - 1) / 2;
                for (int it = 0; it < SEARCH_ITERS; it++) {
                    double x1 = up - g * (up - lo), x2 = lo + g * (up - lo), d1, d2;
                    double f1 = fixed_profit(k, sim, ca.token, da.token, x1, p_d, p_c, bonus,
                                             held, kp, &d1);
                    double f2 = fixed_profit(k, sim, ca.token, da.token, x2, p_d, p_c, bonus,
                                             held, kp, &d2);
                    if (f1 < f2) lo = x1;
                    else up = x2;
                }
                double pm = fixed_profit(k, sim, ca.token, da.token, 0.5 * (lo + up), p_d, p_c,
                                         bonus, held, kp, &rr) - gas;
                if (pm > pr) { pr = pm; r = 0.5 * (lo + up); capped = false; }
            }
            if (pr > best->profit) {
                best->profit = pr;
                best->repay = r;
                best->debt = da.token;
                best->coll = ca.token;
                best->capital_bound = capped;
                found = true;
            }
        }
    }
    if (!found) {
        if (bound) k->n_capital_bound++;
        return SP_ENOTFOUND;
    }
    if (best->capital_bound) k->n_capital_bound++;
    return SP_OK;
}

/* Flash: borrow `amt` of tok inside the transaction (what it lacks of it). */
static double flash_borrow(struct keeper *k, struct sp_sim *sim, sp_token tok, double amt)
{
    if (!k->cfg->flash) return 0;
    double have = tok == k->cash ? sp_balance(sim, k->id, tok) : 0;
    double need = amt - have;
    if (!(need > 0)) return 0;
    if (sp_mint(sim, tok, k->id, need)) return -1;
    return need;
}

/* Repay a flash loan of `loan` (the unused part of `borrowed` fee-free). */
static int flash_repay(struct keeper *k, struct sp_sim *sim, sp_token tok, double borrowed,
                       double used)
{
    if (!(borrowed > 0)) return SP_OK;
    if (used > borrowed) used = borrowed;
    double owe = (borrowed - used) + used * (1 + k->cfg->flash_fee);
    double bal = sp_balance(sim, k->id, tok);
    if (owe > bal * (1 + 1e-12)) {
        sp_sim_fail(sim, SP_EMODEL, "%s: flash loan of %g %s not covered (holds %g)",
                    sp_sim_entity_name(sim, k->id), owe, sp_token_name(sim, tok), bal);
        return SP_EMODEL;
    }
    return sp_burn(sim, tok, k->id, fmin(owe, bal));
}

static bool exec_fixed(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    struct kproto *kp = &k->protos[p->pi];
    struct sp_lending_position pos;
    if (sp_lending_position(sim, kp->id, p->target, &pos) || !pos.liquidatable) return false;
    double p_d = sp_lending_price(sim, kp->id, p->debt);
    double p_c = sp_lending_price(sim, kp->id, p->coll);
    int ic = sp_lending_asset_index(sim, kp->id, p->coll);
    struct sp_lending_asset ca;
    if (ic < 0 || sp_lending_asset_info(sim, kp->id, (size_t)ic, &ca)) return false;
    double held = sp_lending_collateral(sim, kp->id, p->target, p->coll);
    double cover = fmin(p->amount, can_pay(k, sim, p->debt));
    cover = fmin(cover, sp_lending_debt(sim, kp->id, p->target, p->debt));
    if (!(cover > 0) || !(held > 0)) return false;
    double rr;
    /* A keeper contract reverts a call that would lose now. */
    if (!(fixed_profit(k, sim, p->coll, p->debt, cover, p_d, p_c, 1 + ca.bonus, held,
                       kp, &rr) >= 0))
        return false;
    double cash0 = sp_balance(sim, k->id, p->debt);
    double loan = flash_borrow(k, sim, p->debt, cover);
    if (loan < 0) return false;
    struct sp_liq_result res;
    int rc = sp_liq_fixed(sim, kp->id, k->id, p->target, p->debt, p->coll, cover, &res);
    if (rc) {
        if (loan > 0) sp_burn(sim, p->debt, k->id, loan);
        if (rc != SP_ESTATE && rc != SP_ERANGE && rc != SP_EINVAL && rc != SP_ENOTFOUND)
            sp_sim_fail(sim, rc, "%s: liquidation on '%s' failed: %s",
                        sp_sim_entity_name(sim, k->id), sp_sim_entity_name(sim, kp->id),
                        sp_strerror(rc));
        return false;
    }
    double got;
    if (sell(k, sim, p->coll, p->debt, res.to_liquidator, res.generation, &got)) return true;
    k->last_gen = res.generation;
    double used = loan > 0 ? fmax(0, res.debt_repaid - (cash0 > 0 ? cash0 : 0)) : 0;
    if (flash_repay(k, sim, p->debt, loan, used)) return true;
    k->profit += (sp_balance(sim, k->id, p->debt) - cash0) * p_d;
    k->repaid += res.debt_repaid * p_d;
    k->n_liq++;
    return true;
}

/* ---- auctions ----------------------------------------------------------------- */

static double step_of(struct keeper *k, const struct kproto *kp)
{
    return fmax(k->cfg->raise, kp->beg);
}

/* Least lot worth `tab` to it (dent), by bisection on the sale quote. */
static double least_lot(struct keeper *k, struct sp_sim *sim, sp_token coll, sp_token debt,
                        double tab, double lot)
{
    double lo = 0, hi = lot, out;
    sp_id v;
    enum sp_side s;
    if (best_sale(k, sim, coll, debt, lot, &out, &v, &s) ||
        out * (1 - k->margin) < tab)
        return INFINITY;
    for (int i = 0; i < 80; i++) {
        double mid = 0.5 * (lo + hi);
        if (best_sale(k, sim, coll, debt, mid, &out, &v, &s) == SP_OK &&
            out * (1 - k->margin) >= tab)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static struct engage *find_eng(struct keeper *k, size_t pi, uint32_t id)
{
    for (size_t i = 0; i < k->n_eng; i++)
        if (k->eng[i].pi == pi && k->eng[i].id == id) return &k->eng[i];
    return NULL;
}

static void drop_eng(struct keeper *k, struct engage *e)
{
    *e = k->eng[--k->n_eng];
}

/* Its standing bid on (pi, id): refunded if someone else now holds the
 * auction, settled (the lot its) if it closed with it on top. */
static void review_eng(struct keeper *k, struct sp_sim *sim, struct engage *e)
{
    struct kproto *kp = &k->protos[e->pi];
    struct sp_auction_view v;
    int rc = sp_liq_auction(sim, kp->id, e->id, &v);
    double p_d = sp_lending_price(sim, kp->id, e->debt);
    if (rc == SP_OK && v.live) {
        if (v.guy == k->id) return;
        k->profit += e->paid * p_d;                  /* outbid: refunded */
        drop_eng(k, e);
        return;
    }
    bool won = rc == SP_OK ? v.guy == k->id : sp_balance(sim, k->id, e->coll) > 0;
    if (won) k->n_win++;
    else k->profit += e->paid * p_d;
    k->last_gen = e->generation;
    drop_eng(k, e);
}

static int decide_auction(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    struct kproto *kp = &k->protos[p->pi];
    struct sp_auction_view v;
    if (sp_liq_auction(sim, kp->id, p->target, &v) || !v.live) return SP_ESTATE;
    sp_time now = sp_sim_now(sim);
    p->debt = v.debt;
    p->coll = v.collateral;
    double out;
    sp_id ven;
    enum sp_side side;
    if (kp->mech == SP_LIQ_DUTCH) {
        if (v.needs_redo) { p->act = ACT_REDO; return SP_OK; }
        if (!(v.price > 0)) return SP_ESTATE;
        double amt = fmin(v.lot, v.tab / v.price);
        double pay = can_pay(k, sim, v.debt);
        if (pay < amt * v.price) {
            k->n_capital_bound++;
            amt = pay / v.price;
        }
        if (!(amt > 0) || best_sale(k, sim, v.collateral, v.debt, amt, &out, &ven, &side))
            return SP_ESTATE;
        double value = out / amt, max = value * (1 - k->margin);
        if (v.price > max) return SP_ESTATE;       /* not yet */
        double fee = k->cfg->flash ? amt * v.price * k->cfg->flash_fee : 0;
        double p_d = sp_lending_price(sim, kp->id, v.debt);
        double profit = (out - amt * v.price - fee) * (isfinite(p_d) ? p_d : 1) -
                        gas_estimate(k, sim);
        if (profit < k->min_profit) { k->n_skipped++; return SP_ESTATE; }
        p->act = ACT_TAKE;
        p->amount = amt;
        p->limit = max;
        return SP_OK;
    }
    /* English. */
    if ((v.n_bids > 0 && (v.tic < now || v.end < now)) || (v.n_bids == 0 && v.end < now)) {
        p->act = ACT_DEAL;
        return SP_OK;
    }
    if (v.guy == k->id) return SP_ESTATE;
    double step = step_of(k, kp);
    if (best_sale(k, sim, v.collateral, v.debt, v.lot, &out, &ven, &side)) return SP_ESTATE;
    double max = out * (1 - k->margin);
    double pay = k->cfg->flash ? (k->cash == v.debt ? sp_balance(sim, k->id, v.debt) : 0)
                               : can_pay(k, sim, v.debt);
    if (v.phase == 0) {
        double next = v.n_bids == 0 || !(v.bid > 0) ? k->cfg->open_bid * v.tab : v.bid * step;
        if (k->cfg->bidding == BID_JUMP) next = max;
        if (next > max) next = max;
        if (next > v.tab) next = v.tab;
        if (v.bid > 0 && next < v.bid * kp->beg && next != v.tab) return SP_ESTATE;
        if (!(next > v.bid)) return SP_ESTATE;
        if (next > pay) { k->n_capital_bound++; return SP_ESTATE; }
        p->act = ACT_TEND;
        p->amount = next;
        return SP_OK;
    }
    double lmin = least_lot(k, sim, v.collateral, v.debt, v.tab, v.lot);
    double lot = k->cfg->bidding == BID_JUMP ? lmin : fmax(v.lot / step, lmin);
    if (!(lot * kp->beg <= v.lot)) return SP_ESTATE;
    if (v.guy != k->id && v.tab > pay) { k->n_capital_bound++; return SP_ESTATE; }
    p->act = ACT_DENT;
    p->amount = lot;
    return SP_OK;
}

static bool exec_auction(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    struct kproto *kp = &k->protos[p->pi];
    struct sp_auction_view v;
    if (sp_liq_auction(sim, kp->id, p->target, &v) || !v.live) return false;
    double p_d = sp_lending_price(sim, kp->id, v.debt);
    if (!isfinite(p_d)) p_d = 1;
    double cash0 = sp_balance(sim, k->id, v.debt);
    int rc;
    switch (p->act) {
    case ACT_REDO:
        if ((rc = sp_liq_redo(sim, kp->id, k->id, p->target))) return false;
        k->profit += (sp_balance(sim, k->id, v.debt) - cash0) * p_d;
        k->n_redo++;
        return true;
    case ACT_TAKE: {
        if (v.needs_redo || v.price > p->limit) return false;
        double amt = fmin(p->amount, v.lot), out;
        sp_id ven;
        enum sp_side side;
        if (!k->cfg->flash) amt = fmin(amt, sp_balance(sim, k->id, v.debt) / v.price);
        if (!(amt > 0) || best_sale(k, sim, v.collateral, v.debt, amt, &out, &ven, &side))
            return false;
        double owe = fmin(amt * v.price, v.tab);
        double loan = flash_borrow(k, sim, v.debt, owe * (1 + 1e-12));
        if (loan < 0) return false;
        if (loan > 0 && out < owe + loan * k->cfg->flash_fee) {   /* would not cover */
            sp_burn(sim, v.debt, k->id, loan);
            return false;
        }
        double coll0 = sp_balance(sim, k->id, v.collateral), bought = 0, paid = 0;
        rc = sp_liq_take(sim, kp->id, k->id, p->target, amt, p->limit, &bought, &paid);
        if (rc) {
            if (loan > 0) sp_burn(sim, v.debt, k->id, loan);
            return false;
        }
        double got;
        double have = sp_balance(sim, k->id, v.collateral) - coll0;
        if (sell(k, sim, v.collateral, v.debt, fmin(bought, have), v.generation, &got))
            return true;
        k->last_gen = v.generation;
        double used = loan > 0 ? fmax(0, paid - fmax(cash0, 0)) : 0;
        if (flash_repay(k, sim, v.debt, loan, used)) return true;
        k->profit += (sp_balance(sim, k->id, v.debt) - cash0) * p_d;
        k->repaid += paid * p_d;
        k->n_take++;
        return true;
    }
    case ACT_TEND:
    case ACT_DENT: {
        if (v.guy == k->id) return false;
        struct engage *old = find_eng(k, p->pi, p->target);
        if (old) review_eng(k, sim, old);            /* outbid since: its refund */
        cash0 = sp_balance(sim, k->id, v.debt);
        rc = p->act == ACT_TEND ? sp_liq_tend(sim, kp->id, k->id, p->target, p->amount)
                                : sp_liq_dent(sim, kp->id, k->id, p->target, p->amount);
        if (rc) return false;
        double paid = cash0 - sp_balance(sim, k->id, v.debt);
        k->profit -= paid * p_d;
        struct engage *e = realloc(k->eng, (k->n_eng + 1) * sizeof *e);
        if (!e) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return true; }
        k->eng = e;
        k->eng[k->n_eng++] = (struct engage){ p->pi, p->target, v.debt, v.collateral, paid,
                                              v.generation };
        k->n_bid++;
        return true;
    }
    case ACT_DEAL: {
        double coll0 = sp_balance(sim, k->id, v.collateral);
        if ((rc = sp_liq_deal(sim, kp->id, p->target))) return false;
        k->n_deal++;
        struct engage *e = find_eng(k, p->pi, p->target);
        if (e) review_eng(k, sim, e);
        double won = sp_balance(sim, k->id, v.collateral) - coll0, got;
        if (won > 0 && k->cash >= 0) {
            double c0 = sp_balance(sim, k->id, k->cash);
            if (sell(k, sim, v.collateral, k->cash, won, v.generation, &got)) return true;
            k->profit += (sp_balance(sim, k->id, k->cash) - c0) *
                         fmax(0, price_of(k, sim, k->cash));
        }
        return true;
    }
    default:
        return false;
    }
}

static bool exec_bark(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    struct kproto *kp = &k->protos[p->pi];
    struct sp_lending_position pos;
    if (sp_lending_position(sim, kp->id, p->target, &pos) || !pos.liquidatable) return false;
    /* The incentive is paid in the debt token: the tokens the protocol lends. */
    const sp_token *t = kp->debts;
    size_t n = kp->n_debts;
    double before = 0;
    for (size_t i = 0; i < n; i++)
        before += sp_balance(sim, k->id, t[i]) * sp_lending_price(sim, kp->id, t[i]);
    uint32_t id;
    if (sp_liq_bark(sim, kp->id, k->id, p->target, &id)) return false;
    double after = 0;
    for (size_t i = 0; i < n; i++)
        after += sp_balance(sim, k->id, t[i]) * sp_lending_price(sim, kp->id, t[i]);
    if (isfinite(after - before)) k->profit += after - before;
    k->n_bark++;
    return true;
}

/* Decide at the end of the latency: plan, then submit or let go. */
static void decide(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    struct kproto *kp = &k->protos[p->pi];
    int rc = SP_ESTATE;
    if (p->auction) {
        rc = decide_auction(k, sim, p);
    } else if (kp->mech == SP_LIQ_FIXED_SPREAD) {
        struct fixed_plan pl;
        rc = plan_fixed(k, sim, kp, p->target, &pl);
        if (rc == SP_OK && pl.profit < k->min_profit) {
            k->n_skipped++;
            rc = SP_ERANGE;
        }
        if (rc == SP_OK) {
            p->act = ACT_LIQ;
            p->debt = pl.debt;
            p->coll = pl.coll;
            p->amount = pl.repay;
        }
    } else if ((kp->mech == SP_LIQ_DUTCH || kp->mech == SP_LIQ_ENGLISH) && kp->kick_keeper) {
        struct sp_lending_position pos;
        if (!sp_lending_position(sim, kp->id, p->target, &pos) && pos.liquidatable) {
            p->act = ACT_BARK;
            rc = SP_OK;
        }
    }
    if (rc != SP_OK) { pend_free(k, p); return; }
    submit(k, sim, p);
}

/* A delivered transaction: gas, failure, re-check, act. */
static void execute(struct keeper *k, struct sp_sim *sim, struct pend *p)
{
    sp_time now = sp_sim_now(sim);
    double gv = gas_value(k, sim, sp_chain_current_fee(sim));
    k->gas_spent += gv;
    k->profit -= gv;
    k->n_included++;
    k->wait_sum += sp_time_sec(now - p->submitted);
    struct pend done = *p;
    pend_free(k, p);                              /* the opportunity is open again */
    if (k->cfg->failure_probability > 0 &&
        sp_rng_uniform(sp_sim_rng(sim, k->id)) < k->cfg->failure_probability) {
        k->n_failed++;
        return;
    }
    bool ok;
    switch (done.act) {
    case ACT_LIQ: ok = exec_fixed(k, sim, &done); break;
    case ACT_BARK: ok = exec_bark(k, sim, &done); break;
    default: ok = exec_auction(k, sim, &done); break;
    }
    if (!ok) { k->n_reverted++; return; }
    k->n_exec++;
    k->latency_sum += sp_time_sec(now - done.seen);
    /* What is left of a position (close factor, capital) is taken up again. */
    if (done.act == ACT_LIQ) {
        struct sp_lending_position pos;
        if (!sp_lending_position(sim, k->protos[done.pi].id, done.target, &pos) &&
            pos.liquidatable)
            observe(k, sim, done.pi, false, done.target);
    }
}

/* Sell collateral it holds (lots won and settled by someone else). */
static void sell_inventory(struct keeper *k, struct sp_sim *sim)
{
    if (k->cash < 0) return;
    double p_cash = price_of(k, sim, k->cash);
    for (sp_token t = 0; t < (sp_token)sp_token_count(sim); t++) {
        if (t == k->cash) continue;
        double amt = sp_balance(sim, k->id, t);
        if (!(amt > 0) || !has_venue(k, sim, t, k->cash)) continue;
        double c0 = sp_balance(sim, k->id, k->cash), got;
        if (sell(k, sim, t, k->cash, amt, k->last_gen, &got)) return;
        k->profit += (sp_balance(sim, k->id, k->cash) - c0) * (isfinite(p_cash) ? p_cash : 1);
    }
}

static void poll(struct keeper *k, struct sp_sim *sim)
{
    for (size_t e = k->n_eng; e-- > 0;) review_eng(k, sim, &k->eng[e]);
    sell_inventory(k, sim);
    for (size_t i = 0; i < k->n_protos; i++) {
        struct kproto *kp = &k->protos[i];
        bool auction = kp->mech == SP_LIQ_DUTCH || kp->mech == SP_LIQ_ENGLISH;
        if (kp->mech == SP_LIQ_FIXED_SPREAD || (auction && kp->kick_keeper)) {
            size_t n = sp_lending_liquidatable(sim, kp->id, NULL, 0);
            if (n > k->n_owners_cap) {
                sp_id *o = realloc(k->owners, n * sizeof *o);
                if (!o) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
                k->owners = o;
                k->n_owners_cap = n;
            }
            n = sp_lending_liquidatable(sim, kp->id, k->owners, n);
            for (size_t j = 0; j < n; j++) observe(k, sim, i, false, k->owners[j]);
        }
        if (auction) {
            size_t n = sp_liq_auctions(sim, kp->id, NULL, 0);
            if (n > k->n_ids_cap) {
                uint32_t *o = realloc(k->ids, n * sizeof *o);
                if (!o) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
                k->ids = o;
                k->n_ids_cap = n;
            }
            n = sp_liq_auctions(sim, kp->id, k->ids, n);
            for (size_t j = 0; j < n; j++) observe(k, sim, i, true, k->ids[j]);
        }
    }
}

static void keeper_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct keeper *k = self;
    switch (ev->kind) {
    case EV_POLL: {
        poll(k, sim);
        sp_time next = ev->t + k->cfg->poll;
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
        return;
    }
    case EV_LIQ: {
        size_t pi = proto_index(k, (sp_id)ev->data.u[1]);
        if (pi != SIZE_MAX && ev->data.i[2] == 1)
            observe(k, sim, pi, false, (uint32_t)ev->data.u[0]);
        return;
    }
    case EV_KICK: {
        size_t pi = proto_index(k, (sp_id)ev->data.u[1]);
        if (pi != SIZE_MAX) observe(k, sim, pi, true, (uint32_t)ev->data.u[0]);
        return;
    }
    case EV_DECIDE: {
        struct pend *p = pend_of(k, ev);
        if (p) decide(k, sim, p);
        return;
    }
    case EV_TX: {
        struct pend *p = pend_of(k, ev);
        if (p) execute(k, sim, p);
        return;
    }
    case EV_DROP: {
        struct pend *p = pend_of(k, ev);
        if (p) { pend_free(k, p); k->n_dropped++; }
        return;
    }
    }
}

/* Population totals, written by the last member. */
static void keeper_finish(void *self, struct sp_sim *sim)
{
    struct keeper *k = self;
    const struct keeper_cfg *c = k->cfg;
    /* Bids still standing at face value, collateral still held at its price. */
    for (size_t e = 0; e < k->n_eng; e++) {
        double p = sp_lending_price(sim, k->protos[k->eng[e].pi].id, k->eng[e].debt);
        k->profit += k->eng[e].paid * (isfinite(p) ? p : 1);
    }
    k->n_eng = 0;
    for (sp_token t = 0; t < (sp_token)sp_token_count(sim); t++) {
        if (t == k->cash) continue;
        double amt = sp_balance(sim, k->id, t), p = amt > 0 ? price_of(k, sim, t) : 0;
        if (amt > 0 && isfinite(p)) k->profit += amt * p;
    }
    if (k->member + 1 != (size_t)c->count) return;
    int64_t liq = 0, bark = 0, take = 0, redo = 0, bid = 0, deal = 0, win = 0, tx = 0;
    int64_t failed = 0, reverted = 0, dropped = 0, skipped = 0, bound = 0, exec = 0, incl = 0;
    double profit = 0, gas = 0, repaid = 0, lat = 0, wait = 0;
    for (size_t i = 0; i < (size_t)c->count; i++) {
        const struct keeper *m = sp_sim_entity_state(sim, k->pop_first + (sp_id)i);
        liq += m->n_liq; bark += m->n_bark; take += m->n_take; redo += m->n_redo;
        bid += m->n_bid; deal += m->n_deal; win += m->n_win; tx += m->n_tx;
        failed += m->n_failed; reverted += m->n_reverted; dropped += m->n_dropped;
        skipped += m->n_skipped; bound += m->n_capital_bound; exec += m->n_exec;
        incl += m->n_included;
        profit += m->profit; gas += m->gas_spent; repaid += m->repaid;
        lat += m->latency_sum; wait += m->wait_sum;
    }
    char pop[200], key[300];
    snprintf(pop, sizeof pop, "%s", sp_sim_entity_name(sim, k->id));
    if (c->count > 1) { char *u = strrchr(pop, '_'); if (u) *u = 0; }
    struct { const char *k; double v; } out[] = {
        { "n_liquidations", (double)liq }, { "n_barks", (double)bark },
        { "n_takes", (double)take }, { "n_redos", (double)redo }, { "n_bids", (double)bid },
        { "n_deals", (double)deal }, { "n_wins", (double)win }, { "n_tx", (double)tx },
        { "n_failed", (double)failed }, { "n_reverted", (double)reverted },
        { "n_dropped", (double)dropped }, { "n_skipped_unprofitable", (double)skipped },
        { "n_capital_bound", (double)bound }, { "profit", profit }, { "gas_spent", gas },
        { "repaid", repaid },
        { "mean_latency", exec ? lat / (double)exec : NAN },
        { "mean_wait", incl ? wait / (double)incl : NAN },
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        snprintf(key, sizeof key, "%s_%s", out[i].k, pop);
        sp_sim_summary(sim, key, out[i].v);
    }
}

/* ---- snapshot ------------------------------------------------------------------- */

/* Counters and money for /summary, in payload order. */
#define KEEPER_COUNTS(X)                                                                   \
    X(n_liq) X(n_bark) X(n_take) X(n_redo) X(n_bid) X(n_deal) X(n_win) X(n_tx)              \
    X(n_included) X(n_failed) X(n_reverted) X(n_dropped) X(n_skipped) X(n_capital_bound)    \
    X(n_exec)
#define KEEPER_MONEY(X) X(profit) X(gas_spent) X(repaid) X(latency_sum) X(wait_sum)
#define KEEPER_ONE(f) +1
enum { N_COUNTS = 0 KEEPER_COUNTS(KEEPER_ONE), N_MONEY = 0 KEEPER_MONEY(KEEPER_ONE) };
enum { SNAP_FIELDS = 14 };

static uint64_t pend_meta(const struct pend *p)
{
    return (uint64_t)p->used | (uint64_t)p->auction << 1 | (uint64_t)p->act << 8 |
           (uint64_t)p->serial << 32;
}

static int keeper_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct keeper *k = self;
    size_t n = k->n_pend, ne = k->n_eng;
#define KEEPER_GET(f) k->f,
    const int64_t counts[N_COUNTS] = { KEEPER_COUNTS(KEEPER_GET) };
    const double money[N_MONEY] = { KEEPER_MONEY(KEEPER_GET) };
#undef KEEPER_GET
    size_t words = 8 * n + 5 * ne;
    uint64_t *buf = malloc((words ? words : 1) * sizeof *buf);
    if (!buf) return SP_ENOMEM;
    uint64_t *meta = buf, *ref = meta + n, *eref = buf + 8 * n;
    int64_t *tok = (int64_t *)(ref + n), *tim = tok + 2 * n, *eint = (int64_t *)(eref + ne);
    double *val = (double *)(tim + 2 * n), *paid = (double *)(eint + 3 * ne);
    for (size_t i = 0; i < n; i++) {
        const struct pend *p = &k->pend[i];
        meta[i] = pend_meta(p);
        ref[i] = (uint64_t)p->pi << 32 | p->target;
        tok[2 * i] = p->debt;
        tok[2 * i + 1] = p->coll;
        val[2 * i] = p->amount;
        val[2 * i + 1] = p->limit;
        tim[2 * i] = p->seen;
        tim[2 * i + 1] = p->submitted;
    }
    for (size_t i = 0; i < ne; i++) {
        const struct engage *e = &k->eng[i];
        eref[i] = (uint64_t)e->pi << 32 | e->id;
        eint[3 * i] = e->debt;
        eint[3 * i + 1] = e->coll;
        eint[3 * i + 2] = e->generation;
        paid[i] = e->paid;
    }
    uint64_t *fr = malloc((k->n_free ? k->n_free : 1) * sizeof *fr);
    if (!fr) { free(buf); return SP_ENOMEM; }
    for (size_t i = 0; i < k->n_free; i++) fr[i] = k->free_slots[i];
    sp_snap_put_array(w, SNAP_FIELDS);
    sp_snap_put_u64(w, k->serial);
    sp_snap_put_i64(w, k->last_gen);
    sp_snap_put_u64(w, k->ht_cap);
    sp_snap_put_i64s(w, counts, N_COUNTS);
    sp_snap_put_f64s(w, money, N_MONEY);
    sp_snap_put_u64s(w, meta, n);
    sp_snap_put_u64s(w, ref, n);
    sp_snap_put_i64s(w, tok, 2 * n);
    sp_snap_put_f64s(w, val, 2 * n);
    sp_snap_put_i64s(w, tim, 2 * n);
    sp_snap_put_u64s(w, fr, k->n_free);
    sp_snap_put_u64s(w, eref, ne);
    sp_snap_put_i64s(w, eint, 3 * ne);
    int rc = sp_snap_put_f64s(w, paid, ne);
    free(buf);
    free(fr);
    return rc;
}

/* The opportunities read back: slots, free stack and table checked and
 * installed (the table rebuilt in slot order: only lookups read it). */
static int restore_pend(struct keeper *k, struct sp_snapshot_reader *r, const uint64_t *meta,
                        const uint64_t *ref, const int64_t *tok, const double *val,
                        const int64_t *tim, size_t n, const uint64_t *fr, size_t n_free,
                        uint64_t ht_cap)
{
    int64_t ntok = (int64_t)sp_token_count(sp_snap_sim(r));
    if (n && (n < 8 || (n & (n - 1)) || n > UINT32_MAX))
        return sp_snap_fail(r, "%zu opportunity slots (not 0 or 8 x a power of two)", n);
    if (n ? ht_cap < 16 || (ht_cap & (ht_cap - 1)) || ht_cap > 8 * (uint64_t)n + 16 : ht_cap)
        return sp_snap_fail(r, "opportunity table of %llu for %zu slots",
                            (unsigned long long)ht_cap, n);
    struct pend *pend = calloc(n ? n : 1, sizeof *pend);
    uint32_t *fs = malloc((n ? n : 1) * sizeof *fs);
    uint32_t *ht = calloc(ht_cap ? ht_cap : 1, sizeof *ht);
    bool *seen = calloc(n ? n : 1, sizeof *seen);
    size_t n_used = 0;
    if (!pend || !fs || !ht || !seen) {
        sp_snap_fail(r, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        struct pend *p = &pend[i];
        uint64_t m = meta[i];
        p->used = m & 1;
        p->auction = (m >> 1) & 1;
        p->act = (uint8_t)(m >> 8);
        p->serial = (uint32_t)(m >> 32);
        p->pi = (size_t)(ref[i] >> 32);
        p->target = (uint32_t)ref[i];
        p->amount = val[2 * i];
        p->limit = val[2 * i + 1];
        p->seen = tim[2 * i];
        p->submitted = tim[2 * i + 1];
        if ((m & 0xfffffffcu & ~0xff00u) || p->act > ACT_DEAL || p->pi >= k->n_protos ||
            tok[2 * i] < 0 || tok[2 * i] >= ntok || tok[2 * i + 1] < 0 || tok[2 * i + 1] >= ntok) {
            sp_snap_fail(r, "opportunity slot %zu: bad flags, action, protocol or token", i);
            goto fail;
        }
        p->debt = (sp_token)tok[2 * i];
        p->coll = (sp_token)tok[2 * i + 1];
        n_used += p->used;
    }
    if (n_used + n_free != n || 2 * n_used > ht_cap) {
        sp_snap_fail(r, "%zu opportunities in use and %zu free of %zu slots (table %llu)",
                     n_used, n_free, n, (unsigned long long)ht_cap);
        goto fail;
    }
    for (size_t i = 0; i < n_free; i++) {
        if (fr[i] >= n || pend[fr[i]].used || seen[fr[i]]) {
            sp_snap_fail(r, "free opportunity slot %llu: out of range, in use or twice",
                         (unsigned long long)fr[i]);
            goto fail;
        }
        seen[fr[i]] = true;
        fs[i] = (uint32_t)fr[i];
    }
    free(seen);
    seen = NULL;
    free(k->pend);
    free(k->free_slots);
    free(k->ht);
    k->pend = pend;
    k->n_pend = n;
    k->n_used = 0;
    k->free_slots = fs;
    k->n_free = n_free;
    k->ht = ht;
    k->ht_cap = (size_t)ht_cap;
    for (size_t i = 0; i < n; i++) {
        struct pend *p = &pend[i];
        if (!p->used) continue;
        p->used = false;
        if (find_pend(k, p->pi, p->auction, p->target)) {
            p->used = true;
            return sp_snap_fail(r, "opportunity slot %zu: a second entry for one target", i);
        }
        pend_index(k, p);
    }
    return SP_OK;
fail:
    free(pend);
    free(fs);
    free(ht);
    free(seen);
    return sp_snap_error(r);
}

static int restore_eng(struct keeper *k, struct sp_snapshot_reader *r, const uint64_t *eref,
                       const int64_t *eint, const double *paid, size_t ne)
{
    int64_t ntok = (int64_t)sp_token_count(sp_snap_sim(r));
    struct engage *eng = malloc((ne ? ne : 1) * sizeof *eng);
    if (!eng) return sp_snap_fail(r, "out of memory");
    for (size_t i = 0; i < ne; i++) {
        const int64_t *v = &eint[3 * i];
        if ((eref[i] >> 32) >= k->n_protos || v[0] < 0 || v[0] >= ntok || v[1] < 0 ||
            v[1] >= ntok || v[2] < INT32_MIN || v[2] > INT32_MAX) {
            free(eng);
            return sp_snap_fail(r, "standing bid %zu: bad protocol, token or generation", i);
        }
        eng[i] = (struct engage){ (size_t)(eref[i] >> 32), (uint32_t)eref[i], (sp_token)v[0],
                                  (sp_token)v[1], paid[i], (int)v[2] };
    }
    free(k->eng);
    k->eng = eng;
    k->n_eng = ne;
    return SP_OK;
}

static int keeper_restore(void *self, struct sp_snapshot_reader *r)
{
    struct keeper *k = self;
    uint64_t serial = 0, ht_cap = 0;
    int64_t last_gen = 0, counts[N_COUNTS];
    double money[N_MONEY];
    size_t n = 0, n_free = 0, ne = 0;
    sp_snap_get_array_n(r, SNAP_FIELDS);
    sp_snap_get_u64(r, &serial);
    sp_snap_get_i64(r, &last_gen);
    sp_snap_get_u64(r, &ht_cap);
    sp_snap_get_i64s(r, counts, N_COUNTS);
    sp_snap_get_f64s(r, money, N_MONEY);
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (serial > UINT32_MAX || last_gen < INT32_MIN || last_gen > INT32_MAX || n > UINT32_MAX)
        return sp_snap_fail(r, "serial %llu, generation %lld or %zu slots out of range",
                            (unsigned long long)serial, (long long)last_gen, n);
    /* Every count below comes with its data (a bin the file holds). */
    uint64_t *meta = malloc((n ? n : 1) * 8 * sizeof *meta), *fr = NULL, *eref = NULL;
    int64_t *tok = NULL, *tim = NULL, *eint = NULL;
    double *val = NULL, *paid = NULL;
    int rc = SP_OK;
    if (!meta) return sp_snap_fail(r, "out of memory");
    uint64_t *ref = meta + n;
    tok = (int64_t *)(ref + n);
    val = (double *)(tok + 2 * n);
    tim = (int64_t *)(val + 2 * n);
    sp_snap_get_u64s(r, meta, n);
    sp_snap_get_u64s(r, ref, n);
    sp_snap_get_i64s(r, tok, 2 * n);
    sp_snap_get_f64s(r, val, 2 * n);
    sp_snap_get_i64s(r, tim, 2 * n);
    if (sp_snap_peek_count(r, &n_free) || !(fr = malloc((n_free ? n_free : 1) * sizeof *fr)))
        goto out;
    sp_snap_get_u64s(r, fr, n_free);
    if (sp_snap_peek_count(r, &ne) || !(eref = malloc((ne ? ne : 1) * 5 * sizeof *eref)))
        goto out;
    eint = (int64_t *)(eref + ne);
    paid = (double *)(eint + 3 * ne);
    sp_snap_get_u64s(r, eref, ne);
    sp_snap_get_i64s(r, eint, 3 * ne);
    sp_snap_get_f64s(r, paid, ne);
    if (sp_snap_get_end(r)) goto out;
    if (restore_pend(k, r, meta, ref, tok, val, tim, n, fr, n_free, ht_cap) ||
        restore_eng(k, r, eref, eint, paid, ne))
        goto out;
    k->serial = (uint32_t)serial;
    k->last_gen = (int)last_gen;
    size_t ic = 0, im = 0;
#define KEEPER_SET_COUNT(f) k->f = counts[ic++];
#define KEEPER_SET_MONEY(f) k->f = money[im++];
    KEEPER_COUNTS(KEEPER_SET_COUNT)
    KEEPER_MONEY(KEEPER_SET_MONEY)
#undef KEEPER_SET_COUNT
#undef KEEPER_SET_MONEY
out:
    rc = sp_snap_error(r);
    if (!rc && (!fr || !eref)) rc = sp_snap_fail(r, "out of memory");
    free(meta);
    free(fr);
    free(eref);
    return rc;
}

const struct sp_module_ops sp_agent_keeper_ops = {
    .kind = "agent", .type = "keeper",
    .summary = "liquidator: fixed-spread liquidations, Dutch barks/takes/redos, English "
               "bids and deals, through the chain with a gas policy",
    .schema = &keeper_schema, .state_size = sizeof(struct keeper),
    .count = keeper_count, .init = keeper_init, .start = keeper_start,
    .on_event = keeper_on_event, .finish = keeper_finish, .release = keeper_release,
    .snapshot = keeper_snapshot, .restore = keeper_restore,
};
