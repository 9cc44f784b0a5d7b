/*
 * scripted.c — the "scripted" agent: a timed list of actions taken from the
 * scenario, exactly at their times.  Used by tests and to reproduce an event
 * (a whale dumping into a pool, liquidity pulled at a given minute).
 *
 *   actions:
 *     - {at: 1h,  do: swap, venue: pool, side: sell, amount: 100}
 *     - {at: 2h,  do: add_liquidity, venue: pool, base: 10, quote: 20000}
 *     - {at: 3h,  do: remove_liquidity, venue: pool, shares: 50%}
 *     - {at: 4h,  do: limit, venue: book, side: buy, price: 1990, qty: 5}
 *     - {at: 5h,  do: cancel, order: 3}      # index of an earlier `limit` action
 *     - {at: 6h,  do: shock, reference: reference_ETH, drop: 30%, over: 1h}
 *
 * Each `do` takes its own keys and no others (validated at bind time, with
 * the file:line:col of the offending key):
 *   swap              venue (any market), side, amount (quote for buy, base
 *                     for sell), min_out (default 0)
 *   add_liquidity     venue (cpmm/stableswap), base, quote: at most these, at
 *                     the pool's ratio; the agent must hold both amounts
 *   remove_liquidity  venue (cpmm/stableswap), shares: fraction of the LP
 *                     shares it holds then (default 100%)
 *   limit             venue (lob), side, price, qty (base)
 *   cancel            order: index (0-based) of an earlier `limit` action;
 *                     if that order already filled there is nothing to cancel
 *                     (counted in /summary cancel_missed_<name>, not an error)
 *   shock             reference, drop, over (default 0): moves a reference
 *                     price from now on exactly as a scheduled shock would
 *                     (sp_reference_shock) — for reproducing an event whose
 *                     timing belongs with the other scripted actions
 * Actions at the same instant run in list order, at agent priority (after
 * the price processes, oracles and venues at that instant).  An action `at`
 * or after the horizon is an error (it would never run).
 *
 * Money: `holdings` are minted to it at init.  A swap or limit order it
 * cannot pay for, an add_liquidity beyond its balances, or a removal with no
 * LP shares is a failed run naming the action (the script asked for the
 * impossible), never clamped.  A swap below its min_out reverts (nothing
 * moves; counted in /summary reverted_<name>).  Trades are recorded by the
 * venues in /events/trades with cause "scripted".
 *
 * Snapshot: the order id of each `limit` action (0 = none or cancelled; one
 * bin of n_actions u64, so cancel finds the same order after a restore) and
 * the /summary counters.  The actions not yet run are queued events,
 * restored with the queue; the venues per action come from init.
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
#include "spiral/world.h"
#include "amm.h"
#include "book.h"
#include "reference.h"

enum { EV_ACTION = 1 };
enum { DO_SWAP, DO_ADD, DO_REMOVE, DO_LIMIT, DO_CANCEL, DO_SHOCK, DO_COUNT };

static const char *const do_names[] = { "swap", "add_liquidity", "remove_liquidity", "limit",
                                        "cancel", "shock", NULL };
static const char *const side_names[] = { "buy", "sell", NULL };

/* ---- config ---------------------------------------------------------------- */

struct holding_cfg {
    const char *token;
    struct sp_dist amount;
};

struct action_cfg {
    sp_time at;
    int what;                   /* DO_* */
    const char *venue;
    int side;                   /* enum sp_side */
    double amount, min_out;
    double base, quote;
    double shares;
    double price, qty;
    int64_t order;
    const char *reference;      /* shock */
    double drop;
    sp_time over;
};

struct scripted_cfg {
    struct holding_cfg *holdings;
    size_t n_holdings;
    struct action_cfg *actions;
    size_t n_actions;
};

/* Which keys each `do` takes, besides `at` and `do`; the first `n_req` are
 * required. */
struct do_keys {
    const char *keys[5];
    int n_req;
    const char *const *venue_types;     /* NULL: any market */
};

static const char *const amm_types[] = { "cpmm", "stableswap", NULL };
static const char *const book_types[] = { "lob", NULL };

static const struct do_keys do_keys[DO_COUNT] = {
    [DO_SWAP]   = { { "venue", "side", "amount", "min_out", NULL }, 3, NULL },
    [DO_ADD]    = { { "venue", "base", "quote", NULL, NULL }, 3, amm_types },
    [DO_REMOVE] = { { "venue", "shares", NULL, NULL, NULL }, 1, amm_types },
    [DO_LIMIT]  = { { "venue", "side", "price", "qty", NULL }, 4, book_types },
    [DO_CANCEL] = { { "order", NULL, NULL, NULL, NULL }, 1, NULL },
    [DO_SHOCK]  = { { "reference", "drop", "over", NULL, NULL }, 2, NULL },
};

static int mint_holdings(struct sp_sim *sim, sp_id id, const struct holding_cfg *h, size_t n)
{
    struct sp_rng *rng = sp_sim_rng(sim, id);
    for (size_t i = 0; i < n; i++) {
        double amt = sp_dist_draw(&h[i].amount, rng);
        if (!(amt >= 0) || !isfinite(amt)) {
            sp_sim_fail(sim, SP_EMODEL, "%s: holdings %s drew %g (must be >= 0)",
                        sp_sim_entity_name(sim, id), h[i].token, amt);
            return SP_EMODEL;
        }
        sp_token tok = sp_token_find(sim, h[i].token);
        int rc = tok < 0 ? SP_EINVAL : sp_mint(sim, tok, id, amt);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: cannot mint %g %s: %s", sp_sim_entity_name(sim, id), amt,
                        h[i].token, sp_strerror(rc));
            return rc;
        }
    }
    return SP_OK;
}

static int holding_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct holding_cfg *h = bound;
    int rc = sp_world_check_token(ctx, "token", -1);
    if (sp_dist_check_nonneg(ctx, "amount", &h->amount)) rc = SP_ECONFIG;
    return rc;
}

static const struct sp_field holding_fields[] = {
    { "token", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "A `tokens` entry.",
      offsetof(struct holding_cfg, token), NULL, 0 },
    { "amount", SP_T_DIST, SP_F_REQUIRED | SP_F_MIN, 0, 0, NULL, "token",
      "Amount minted to the agent at t = 0 (a number or a distribution).",
      offsetof(struct holding_cfg, amount), NULL, 0 },
};

static const struct sp_schema holding_schema = {
    "holdings[]", "An initial holding, minted to the agent's wallet at t = 0.",
    holding_fields, sizeof holding_fields / sizeof holding_fields[0],
    sizeof(struct holding_cfg), holding_check
};

static bool takes_key(int what, const char *key)
{
    if (!strcmp(key, "at") || !strcmp(key, "do")) return true;
    for (size_t k = 0; k < 5 && do_keys[what].keys[k]; k++)
        if (!strcmp(do_keys[what].keys[k], key)) return true;
    return false;
}

static int action_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct action_cfg *a = bound;
    const struct sp_world_cfg *w = ctx->root;
    const struct do_keys *dk = &do_keys[a->what];
    int rc = SP_OK;
    char list[128] = "";
    for (size_t k = 0; k < 5 && dk->keys[k]; k++) {
        if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, dk->keys[k], sizeof list - strlen(list) - 1);
    }
    for (const struct sp_node *c = ctx->node->child; c; c = c->next)
        if (!takes_key(a->what, c->key)) {
            sp_diag_error(ctx->diag, c, "key '%s' does not apply to do: %s (it takes: %s)",
                          c->key, do_names[a->what], list);
            rc = SP_ECONFIG;
        }
    for (int k = 0; k < dk->n_req; k++)
        if (!sp_node_get(ctx->node, dk->keys[k])) {
            sp_diag_error(ctx->diag, ctx->node, "do: %s needs '%s'", do_names[a->what],
                          dk->keys[k]);
            rc = SP_ECONFIG;
        }
    if (rc) return rc;
    if (a->at >= w->horizon) {
        char b1[32], b2[32];
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "at"),
                      "at %s is not before the horizon (%s): the action would never run",
                      sp_format_duration(a->at, b1, sizeof b1),
                      sp_format_duration(w->horizon, b2, sizeof b2));
        rc = SP_ECONFIG;
    }
    if (sp_node_get(ctx->node, "venue") &&
        sp_world_check_entity(ctx, "venue", w->markets, w->n_markets, "venue", dk->venue_types))
        rc = SP_ECONFIG;
    if (sp_node_get(ctx->node, "reference") &&
        sp_world_check_entity(ctx, "reference", w->references, w->n_references, "reference", NULL))
        rc = SP_ECONFIG;
    struct { const char *key; double v; } pos[] = {
        { "amount", a->amount }, { "base", a->base }, { "quote", a->quote },
        { "price", a->price }, { "qty", a->qty },
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (takes_key(a->what, pos[i].key) && !(pos[i].v > 0)) {
            sp_diag_error(ctx->diag, sp_node_get(ctx->node, pos[i].key), "must be > 0, got %g",
                          pos[i].v);
            rc = SP_ECONFIG;
        }
    if (a->what == DO_REMOVE && sp_node_get(ctx->node, "shares") &&
        !(a->shares > 0 && a->shares <= 1)) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "shares"),
                      "must be a fraction of the held LP shares in (0, 100%%], got %g", a->shares);
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field action_fields[] = {
    { "at", SP_T_DURATION, SP_F_REQUIRED | SP_F_MIN, 0, 0, NULL, "time",
      "When the action happens.", offsetof(struct action_cfg, at), NULL, 0 },
    { "do", SP_T_ENUM, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "What to do, with its own keys only: swap (venue, side, amount, min_out), "
      "add_liquidity (venue, base, quote), remove_liquidity (venue, shares), "
      "limit (venue, side, price, qty), cancel (order), shock (reference, drop, over).",
      offsetof(struct action_cfg, what), do_names, 0 },
    { "venue", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The market (swap: any; add/remove_liquidity: an AMM; limit: an order book).",
      offsetof(struct action_cfg, venue), NULL, 0 },
    { "side", SP_T_ENUM, 0, 0, 0, NULL, NULL,
      "swap, limit: buy (pay quote, get base) or sell (pay base, get quote).",
      offsetof(struct action_cfg, side), side_names, 0 },
    { "amount", SP_T_NUMBER, 0, 0, 0, NULL, "token",
      "swap: amount paid in (quote for a buy, base for a sell).",
      offsetof(struct action_cfg, amount), NULL, 0 },
    { "min_out", SP_T_NUMBER, SP_F_MIN, 0, 0, NULL, "token",
      "swap: least amount out, else the swap reverts (default 0).",
      offsetof(struct action_cfg, min_out), NULL, 0 },
    { "base", SP_T_NUMBER, 0, 0, 0, NULL, "base token",
      "add_liquidity: most base deposited (at the pool's ratio).",
      offsetof(struct action_cfg, base), NULL, 0 },
    { "quote", SP_T_NUMBER, 0, 0, 0, NULL, "quote token",
      "add_liquidity: most quote deposited (at the pool's ratio).",
      offsetof(struct action_cfg, quote), NULL, 0 },
    { "shares", SP_T_FRACTION, 0, 0, 0, NULL, "fraction",
      "remove_liquidity: fraction of the LP shares it holds at that time (default 100%).",
      offsetof(struct action_cfg, shares), NULL, 0 },
    { "price", SP_T_NUMBER, 0, 0, 0, NULL, "quote per base",
      "limit: limit price.", offsetof(struct action_cfg, price), NULL, 0 },
    { "qty", SP_T_NUMBER, 0, 0, 0, NULL, "base token",
      "limit: quantity.", offsetof(struct action_cfg, qty), NULL, 0 },
    { "order", SP_T_INT, SP_F_MIN, 0, 0, NULL, NULL,
      "cancel: index (0-based) in `actions` of an earlier `limit` action.",
      offsetof(struct action_cfg, order), NULL, 0 },
    { "reference", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "shock: the reference process to move (e.g. reference_ETH).",
      offsetof(struct action_cfg, reference), NULL, 0 },
    { "drop", SP_T_FRACTION, SP_F_MAX_EXCL, 0, 1, NULL, "fraction",
      "shock: fall of the reference price by the end of the ramp (negative: a rise).",
      offsetof(struct action_cfg, drop), NULL, 0 },
    { "over", SP_T_DURATION, 0, 0, 0, NULL, "time",
      "shock: length of the linear ramp (default 0: at once).",
      offsetof(struct action_cfg, over), NULL, 0 },
};

static const struct sp_schema action_schema = {
    "actions[]", "One scripted action: `at` and `do`, plus the keys that `do` takes.",
    action_fields, sizeof action_fields / sizeof action_fields[0], sizeof(struct action_cfg),
    action_check
};

static int scripted_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct scripted_cfg *c = bound;
    const struct sp_node *list = sp_node_get(ctx->node, "actions");
    int rc = SP_OK;
    for (size_t i = 0; i < c->n_actions; i++) {
        const struct action_cfg *a = &c->actions[i];
        if (a->what != DO_CANCEL) continue;
        const struct sp_node *at = sp_node_get(sp_node_at(list, i), "order");
        if (a->order >= (int64_t)i) {
            sp_diag_error(ctx->diag, at, "order %lld is not an earlier action (this is action %zu)",
                          (long long)a->order, i);
            rc = SP_ECONFIG;
        } else if (c->actions[a->order].what != DO_LIMIT) {
            sp_diag_error(ctx->diag, at, "order %lld is a '%s' action, not a 'limit'",
                          (long long)a->order, do_names[c->actions[a->order].what]);
            rc = SP_ECONFIG;
        } else if (c->actions[a->order].at > a->at) {
            sp_diag_error(ctx->diag, at, "order %lld is placed after this cancel",
                          (long long)a->order);
            rc = SP_ECONFIG;
        }
    }
    return rc;
}

static const struct sp_field scripted_fields[] = {
    { "holdings", SP_T_LIST, 0, 0, 0, NULL, NULL,
      "Initial wallet (list of {token, amount}), minted at t = 0.",
      offsetof(struct scripted_cfg, holdings), &holding_schema,
      offsetof(struct scripted_cfg, n_holdings) },
    { "actions", SP_T_LIST, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The timed actions, run exactly at their `at` (same instant: list order).",
      offsetof(struct scripted_cfg, actions), &action_schema,
      offsetof(struct scripted_cfg, n_actions) },
};

static const struct sp_schema scripted_schema = {
    "agents[type: scripted]",
    "Performs a timed list of actions (swap, add/remove liquidity, limit, cancel) exactly at "
    "their times. Price shocks belong to references[].shocks, not here.",
    scripted_fields, sizeof scripted_fields / sizeof scripted_fields[0],
    sizeof(struct scripted_cfg), scripted_check
};

/* ---- state ----------------------------------------------------------------- */

struct scripted {
    const struct scripted_cfg *cfg;
    sp_id id;
    sp_id *venue;                 /* per action (SP_ID_NONE for cancel) */
    sp_order_id *orders;          /* per limit action: its resting order (0 = none) */
    int64_t n_done, n_reverted, n_cancel_missed;
};

static int scripted_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct scripted *s = self;
    const struct scripted_cfg *c = cfg;
    s->cfg = c;
    s->id = id;
    size_t n = c->n_actions ? c->n_actions : 1;
    s->venue = calloc(n, sizeof *s->venue);
    s->orders = calloc(n, sizeof *s->orders);
    if (!s->venue || !s->orders) return SP_ENOMEM;
    for (size_t i = 0; i < c->n_actions; i++) {
        const struct action_cfg *a = &c->actions[i];
        s->venue[i] = SP_ID_NONE;
        if (a->what == DO_CANCEL) continue;
        if (a->what == DO_SHOCK) {              /* the "venue" of a shock is its reference */
            sp_id ref = sp_sim_find(sim, a->reference);
            if (ref == SP_ID_NONE || !sp_is_reference(sim, ref)) {
                sp_sim_fail(sim, SP_EINVAL, "%s: action %zu (shock): '%s' is not a reference",
                            sp_sim_entity_name(sim, id), i, a->reference);
                return SP_EINVAL;
            }
            s->venue[i] = ref;
            continue;
        }
        sp_id v = sp_sim_find(sim, a->venue);
        bool ok = v != SP_ID_NONE && sp_market_ops_of(sim, v);
        if (ok && (a->what == DO_ADD || a->what == DO_REMOVE)) ok = sp_amm_is(sim, v);
        if (ok && a->what == DO_LIMIT) ok = sp_book_is(sim, v);
        if (!ok) {
            sp_sim_fail(sim, SP_EINVAL, "%s: action %zu (%s): '%s' is not a suitable venue",
                        sp_sim_entity_name(sim, id), i, do_names[a->what], a->venue);
            return SP_EINVAL;
        }
        s->venue[i] = v;
    }
    return mint_holdings(sim, id, c->holdings, c->n_holdings);
}

static int scripted_start(void *self, struct sp_sim *sim)
{
    struct scripted *s = self;
    for (size_t i = 0; i < s->cfg->n_actions; i++) {
        struct sp_event *ev = sp_sim_schedule(sim, s->cfg->actions[i].at, SP_PRIO_AGENT, s->id,
                                              EV_ACTION);
        if (!ev) return SP_ENOMEM;
        ev->data.u[0] = i;
    }
    return SP_OK;
}

/* The balance of the token a side pays on `venue`. */
static double pays(struct sp_sim *sim, sp_id agent, sp_id venue, int side, sp_token *tok)
{
    sp_token b, q;
    sp_market_ops_of(sim, venue)->pair(sp_sim_entity_state(sim, venue), &b, &q);
    *tok = side == SP_BUY ? q : b;
    return sp_balance(sim, agent, *tok);
}

static void act(struct scripted *s, struct sp_sim *sim, size_t i)
{
    const struct action_cfg *a = &s->cfg->actions[i];
    const char *me = sp_sim_entity_name(sim, s->id);
    sp_id v = s->venue[i];
    sp_token tok;
    double have;
    int rc = SP_OK;
    switch (a->what) {
    case DO_SWAP: {
        have = pays(sim, s->id, v, a->side, &tok);
        if (have < a->amount) goto short_of;
        struct sp_swap req = { .agent = s->id, .side = (enum sp_side)a->side,
                               .amount_in = a->amount, .min_out = a->min_out,
                               .cause = SP_CAUSE_SCRIPTED };
        struct sp_swap_result res;
        rc = sp_market_swap(sim, v, &req, &res);
        if (rc == SP_ERANGE) { s->n_reverted++; return; }   /* below min_out */
        break;
    }
    case DO_ADD: {
        sp_token b, q;
        sp_market_ops_of(sim, v)->pair(sp_sim_entity_state(sim, v), &b, &q);
        if ((have = sp_balance(sim, s->id, b)) < a->base) { tok = b; goto short_of_add; }
        if ((have = sp_balance(sim, s->id, q)) < a->quote) { tok = q; goto short_of_add; }
        rc = sp_amm_add_liquidity(sim, v, s->id, a->base, a->quote, NULL);
        break;
    short_of_add:
        sp_sim_fail(sim, SP_EMODEL, "%s: action %zu (add_liquidity at %.6g s): holds %.17g %s, "
                    "asked to deposit up to %.17g", me, i, sp_time_sec(a->at), have,
                    sp_token_name(sim, tok), tok == b ? a->base : a->quote);
        return;
    }
    case DO_REMOVE: {
        double held = sp_amm_lp_shares(sim, v, s->id);
        if (!(held > 0)) {
            sp_sim_fail(sim, SP_EMODEL, "%s: action %zu (remove_liquidity at %.6g s): holds no "
                        "LP shares of %s", me, i, sp_time_sec(a->at), a->venue);
            return;
        }
        double frac = a->shares > 0 ? a->shares : 1.0;     /* absent: 100% */
        rc = sp_amm_remove_liquidity(sim, v, s->id, held * frac, NULL, NULL);
        break;
    }
    case DO_LIMIT: {
        have = pays(sim, s->id, v, a->side, &tok);
        double need = a->side == SP_BUY ? a->price * a->qty : a->qty;
        if (have < need) goto short_of_limit;
        rc = sp_book_limit(sim, v, s->id, (enum sp_side)a->side, a->price, a->qty,
                           SP_CAUSE_SCRIPTED, &s->orders[i], NULL);
        break;
    short_of_limit:
        sp_sim_fail(sim, SP_EMODEL, "%s: action %zu (limit at %.6g s): holds %.17g %s, needs "
                    "%.17g", me, i, sp_time_sec(a->at), have, sp_token_name(sim, tok), need);
        return;
    }
    case DO_CANCEL: {
        size_t o = (size_t)a->order;
        if (!s->orders[o]) { s->n_cancel_missed++; break; }
        rc = sp_book_cancel(sim, s->venue[o], s->orders[o]);
        s->orders[o] = 0;
        if (rc == SP_ENOTFOUND) { s->n_cancel_missed++; rc = SP_OK; }
        break;
    }
    case DO_SHOCK:
        rc = sp_reference_shock(sim, v, a->drop, a->over);
        break;
    default:
        rc = SP_EINVAL;
    }
    if (rc) {
        sp_sim_fail(sim, rc, "%s: action %zu (%s at %.6g s) failed: %s", me, i, do_names[a->what],
                    sp_time_sec(a->at), sp_strerror(rc));
        return;
    }
    s->n_done++;
    return;
short_of:
    sp_sim_fail(sim, SP_EMODEL, "%s: action %zu (swap at %.6g s): holds %.17g %s, needs %.17g",
                me, i, sp_time_sec(a->at), have, sp_token_name(sim, tok), a->amount);
}

static void scripted_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct scripted *s = self;
    if (ev->kind == EV_ACTION && ev->data.u[0] < s->cfg->n_actions)
        act(s, sim, (size_t)ev->data.u[0]);
}

static void scripted_finish(void *self, struct sp_sim *sim)
{
    struct scripted *s = self;
    const char *name = sp_sim_entity_name(sim, s->id);
    char key[300];
    snprintf(key, sizeof key, "actions_done_%s", name);
    sp_sim_summary(sim, key, (double)s->n_done);
    snprintf(key, sizeof key, "reverted_%s", name);
    sp_sim_summary(sim, key, (double)s->n_reverted);
    snprintf(key, sizeof key, "cancel_missed_%s", name);
    sp_sim_summary(sim, key, (double)s->n_cancel_missed);
}

static void scripted_release(void *self)
{
    struct scripted *s = self;
    free(s->venue);
    free(s->orders);
    s->venue = NULL;
    s->orders = NULL;
}

static int scripted_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct scripted *s = self;
    sp_snap_put_array(w, 2);
    sp_snap_put_i64s(w, (const int64_t[]){ s->n_done, s->n_reverted, s->n_cancel_missed }, 3);
    return sp_snap_put_u64s(w, s->orders, s->cfg->n_actions);
}

static int scripted_restore(void *self, struct sp_snapshot_reader *r)
{
    struct scripted *s = self;
    int64_t n[3];
    size_t n_orders;
    sp_snap_get_array_n(r, 2);
    sp_snap_get_i64s(r, n, 3);
    if (sp_snap_peek_count(r, &n_orders)) return sp_snap_error(r);
    if (n_orders != s->cfg->n_actions)
        return sp_snap_fail(r, "%zu actions in the snapshot, %zu in the scenario", n_orders,
                            s->cfg->n_actions);
    sp_snap_get_u64s(r, s->orders, n_orders);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    for (size_t i = 0; i < n_orders; i++)
        if (s->orders[i] && s->cfg->actions[i].what != DO_LIMIT)
            return sp_snap_fail(r, "an order id for action %zu, which is not a limit", i);
    s->n_done = n[0];
    s->n_reverted = n[1];
    s->n_cancel_missed = n[2];
    return SP_OK;
}

const struct sp_module_ops sp_agent_scripted_ops = {
    .kind = "agent", .type = "scripted",
    .summary = "a timed list of actions from the scenario: swaps, liquidity, limit orders, cancels",
    .schema = &scripted_schema, .state_size = sizeof(struct scripted),
    .init = scripted_init, .start = scripted_start, .on_event = scripted_on_event,
    .finish = scripted_finish, .release = scripted_release,
    .snapshot = scripted_snapshot, .restore = scripted_restore,
};
