/*
 * depositor.c — the "depositor" agent: retail money in a lending pool or a
 * yield vault, and the run on it (DESIGN §2, "Agents").
 *
 * Depositing.  At `at` it puts all of its `amount` of `token` (drawn per
 * member, minted at init) either into a lending `pool` (sp_lending_supply:
 * it gets the token's receipt) or into a `vault` agent (sp_vault_deposit: it
 * gets vault shares).  Exactly one of the two keys.
 *
 * Watching.  Every `watch_every` from then on it reads the price of what it
 * holds — a pool's receipt exchange rate (underlying per receipt: it falls
 * when bad debt is socialised to suppliers), a vault's share price (NAV per
 * share at the protocol's oracle prices) — and keeps the highest it has
 * seen since its deposit.  When the drawdown 1 − price / peak exceeds its
 * `run_threshold` (strictly; drawn per member) it runs: it withdraws
 * everything `delay` later (drawn per member, seconds).  The decision is not
 * re-checked: a run, once decided, happens.  An inattentive member (drawn
 * with probability `inattentive`) never looks.
 *
 * Running.  A pool pays out only from its cash (SP_ERANGE beyond): the
 * depositor takes what the cash allows and comes back for the rest at each
 * `watch_every` until it has it all — the bank-run queue of an illiquid
 * pool.  A vault pays what it can raise by deleveraging (sp_vault_redeem
 * pays in part when it cannot raise all) and the depositor likewise comes
 * back for the rest.  Runs force vaults to deleverage, which moves prices,
 * which moves other share prices: that is the contagion.
 *
 * /summary, per population (the last member sums them): n_runs_<name>
 * (members that decided to run), first_run_<name> (seconds; −1 if nobody
 * ran), withdrawn_<name> (token units paid back to runners),
 * n_unserved_<name> (runners still holding receipts or shares at the end).
 *
 * Snapshot.  Its draws come back from init (same stream, same config); its
 * receipts or shares are in the ledger and its deposit, watch and run
 * events in the queue.  The payload is its run state: deposited, ran,
 * pending (a run decided, its EV_RUN queued), the peak price it has seen,
 * when it decided to run (-1: never) and what it has been paid back.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/dist.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "lending.h"
#include "vault.h"

enum { EV_DEPOSIT = 1, EV_WATCH = 2, EV_RUN = 3 };

/* ---- config ---------------------------------------------------------------- */

struct depositor_cfg {
    const char *pool, *vault, *token;
    int64_t count;
    struct sp_dist amount, run_threshold, delay;
    sp_time at, watch_every;
    double inattentive;
};

static const char *const pool_types[] = { "pool", NULL };

static const char *node_text(const struct sp_node *map, const char *key)
{
    const struct sp_node *n = map ? sp_node_get(map, key) : NULL;
    return n && n->value ? n->value : NULL;
}

/* `vault` must name a vault agent.  The `agents` section is still being
 * bound when this runs (the bound world does not list it yet), so read its
 * items from the tree: this item's siblings. */
static int check_vault(const struct sp_check_ctx *ctx, const struct depositor_cfg *c)
{
    const struct sp_world_cfg *w = ctx->root;
    const struct sp_node *at = sp_node_get(ctx->node, "vault");
    const char *cands[256];
    size_t nc = 0;
    const struct sp_node *list = ctx->node->parent;
    for (const struct sp_node *it = list ? list->child : NULL; it; it = it->next) {
        const char *name = node_text(it, "name"), *type = node_text(it, "type");
        if (!name || !type || strcmp(type, "vault")) continue;
        if (strcmp(name, c->vault)) {
            if (nc < 256) cands[nc++] = name;
            continue;
        }
        /* The vault's asset: its `asset`, else its share token's underlying. */
        const char *asset = node_text(it, "asset"), *share = node_text(it, "share");
        for (size_t t = 0; !asset && share && t < w->n_tokens; t++)
            if (!strcmp(w->tokens[t].name, share)) asset = w->tokens[t].underlying;
        if (asset && strcmp(asset, c->token)) {
            sp_diag_error(ctx->diag, sp_node_get(ctx->node, "token"),
                          "vault '%s' takes %s, not %s", c->vault, asset, c->token);
            return SP_ECONFIG;
        }
        return SP_OK;
    }
    const char *near = sp_suggest(c->vault, cands, nc);
    if (near)
        sp_diag_error(ctx->diag, at, "unknown vault '%s' (did you mean '%s'?)", c->vault, near);
    else
        sp_diag_error(ctx->diag, at, "unknown vault '%s': no `agents` entry of type vault has "
                      "that name", c->vault);
    return SP_ECONFIG;
}

static int depositor_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct depositor_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = sp_world_check_token(ctx, "token", -1);
    if (!c->pool == !c->vault) {
        sp_diag_error(ctx->diag, ctx->node, "a depositor needs exactly one of `pool` (a lending "
                      "pool) and `vault` (a vault agent)");
        rc = SP_ECONFIG;
    } else if (c->pool) {
        if (sp_world_check_entity(ctx, "pool", w->protocols, w->n_protocols, "pool", pool_types))
            rc = SP_ECONFIG;
    } else if (check_vault(ctx, c) != SP_OK) {
        rc = SP_ECONFIG;
    }
    if (sp_dist_check_nonneg(ctx, "amount", &c->amount)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "run_threshold", &c->run_threshold)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "delay", &c->delay)) rc = SP_ECONFIG;
    if (c->at >= w->horizon) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "at"),
                      "at is not before the horizon: it would never deposit");
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field depositor_fields[] = {
    { "pool", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The lending pool it supplies (a `protocols` entry of type pool); or `vault`.",
      offsetof(struct depositor_cfg, pool), NULL, 0 },
    { "vault", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The vault it deposits into (an `agents` entry of type vault); or `pool`.",
      offsetof(struct depositor_cfg, vault), NULL, 0 },
    { "token", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "What it deposits: a token the pool lends, or the vault's asset.",
      offsetof(struct depositor_cfg, token), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1e7, "1", "agents",
      "Population size: N > 1 makes NAME_0 .. NAME_{N-1}, each with its own draws.",
      offsetof(struct depositor_cfg, count), NULL, 0 },
    { "amount", SP_T_DIST, SP_F_REQUIRED | SP_F_MIN, 0, 0, NULL, "token",
      "How much it deposits (minted at init).", offsetof(struct depositor_cfg, amount), NULL, 0 },
    { "at", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "When it deposits.", offsetof(struct depositor_cfg, at), NULL, 0 },
    { "watch_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",
      "How often it reads the share price (and retries an unfinished withdrawal).",
      offsetof(struct depositor_cfg, watch_every), NULL, 0 },
    { "run_threshold", SP_T_DIST, SP_F_MIN, 0, 0, "0.01", "fraction",
      "Runs when the share price is more than this below its peak since the deposit.",
      offsetof(struct depositor_cfg, run_threshold), NULL, 0 },
    { "delay", SP_T_DIST, SP_F_MIN, 0, 0, "0", "seconds",
      "Time between deciding to run and withdrawing.",
      offsetof(struct depositor_cfg, delay), NULL, 0 },
    { "inattentive", SP_T_FRACTION, SP_F_MIN | SP_F_MAX, 0, 1, "0", "probability",
      "Chance that a member never watches (and so never runs).",
      offsetof(struct depositor_cfg, inattentive), NULL, 0 },
};

static const struct sp_schema depositor_schema = {
    "agents[type: depositor]",
    "Deposits into a lending pool or a vault and runs — withdraws everything after a delay — "
    "when the share price draws down past a threshold.",
    depositor_fields, sizeof depositor_fields / sizeof depositor_fields[0],
    sizeof(struct depositor_cfg), depositor_check
};

/* ---- state ----------------------------------------------------------------- */

struct depositor {
    const struct depositor_cfg *cfg;
    sp_id id, target;             /* the pool or the vault */
    bool is_vault;
    sp_token tok, claim;          /* what it deposits; the receipt or share it gets */
    double amount, threshold, delay_s;
    bool inattentive, deposited, ran, pending;
    double peak;
    sp_time run_at;               /* when it decided; -1 */
    double withdrawn;
    sp_id pop_first;
    size_t member;
};

static size_t depositor_count(const void *cfg)
{
    const struct depositor_cfg *c = cfg;
    return (size_t)c->count;
}

static int depositor_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct depositor *d = self;
    const struct depositor_cfg *c = cfg;
    const char *me = sp_sim_entity_name(sim, id);
    d->cfg = c;
    d->id = id;
    d->run_at = -1;
    if (c->count > 1) {
        const char *u = strrchr(me, '_');
        d->member = u ? (size_t)strtoull(u + 1, NULL, 10) : 0;
    }
    d->pop_first = id - (sp_id)d->member;
    d->tok = sp_token_find(sim, c->token);
    d->is_vault = c->vault != NULL;
    d->target = sp_sim_find(sim, d->is_vault ? c->vault : c->pool);
    d->claim = -1;
    if (d->is_vault) {
        if (d->target == SP_ID_NONE || !sp_vault_is(sim, d->target)) {
            sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not a vault", me, c->vault);
            return SP_EINVAL;
        }
        for (sp_token t = 0; t < (sp_token)sp_token_count(sim); t++)
            if (sp_token_kind(sim, t) == SP_TOKEN_VAULT_SHARE &&
                sp_token_issuer(sim, t) == d->target)
                d->claim = t;
        if (d->claim < 0) {
            sp_sim_fail(sim, SP_EINVAL, "%s: vault '%s' issues no vault_share token", me,
                        c->vault);
            return SP_EINVAL;
        }
    } else {
        struct sp_lending_asset a;
        int i = d->target == SP_ID_NONE || !sp_lending_is(sim, d->target)
                    ? -1 : sp_lending_asset_index(sim, d->target, d->tok);
        if (i < 0 || sp_lending_asset_info(sim, d->target, (size_t)i, &a) || a.receipt < 0) {
            sp_sim_fail(sim, SP_EINVAL, "%s: pool '%s' takes no deposits of %s", me, c->pool,
                        c->token);
            return SP_EINVAL;
        }
        d->claim = a.receipt;
    }
    struct sp_rng *rng = sp_sim_rng(sim, id);
    d->amount = sp_dist_draw(&c->amount, rng);
    d->threshold = sp_dist_draw(&c->run_threshold, rng);
    d->delay_s = sp_dist_draw(&c->delay, rng);
    d->inattentive = sp_rng_uniform(rng) < c->inattentive;
    if (!(d->amount >= 0 && isfinite(d->amount)) || !(d->threshold >= 0) ||
        !(d->delay_s >= 0 && isfinite(d->delay_s))) {
        sp_sim_fail(sim, SP_EMODEL, "%s: drew amount %g, run_threshold %g, delay %g (all must "
                    "be >= 0)", me, d->amount, d->threshold, d->delay_s);
        return SP_EMODEL;
    }
    int rc = sp_mint(sim, d->tok, id, d->amount);
    if (rc) sp_sim_fail(sim, rc, "%s: cannot mint its deposit: %s", me, sp_strerror(rc));
    return rc;
}

static int depositor_start(void *self, struct sp_sim *sim)
{
    struct depositor *d = self;
    return sp_sim_schedule(sim, d->cfg->at, SP_PRIO_AGENT, d->id, EV_DEPOSIT) ? SP_OK
                                                                              : SP_ENOMEM;
}

static double share_price(struct depositor *d, struct sp_sim *sim)
{
    return d->is_vault ? sp_vault_share_price(sim, d->target)
                       : sp_lending_exchange_rate(sim, d->target, d->tok);
}

/* Withdraw what it can of what it holds; true when nothing is left. */
static bool withdraw(struct depositor *d, struct sp_sim *sim)
{
    double held = sp_balance(sim, d->id, d->claim);
    if (!(held > 0)) return true;
    double got = 0;
    int rc;
    if (d->is_vault) {
        rc = sp_vault_redeem(sim, d->target, d->id, held, &got);
    } else {
        rc = sp_lending_withdraw(sim, d->target, d->id, d->tok, held, &got);
        if (rc == SP_ERANGE) {                  /* short of cash: what the cash allows */
            double rate = sp_lending_exchange_rate(sim, d->target, d->tok);
            double r = sp_lending_cash(sim, d->target, d->tok) / rate * (1 - 1e-9);
            if (!(rate > 0) || !(r > 0)) return false;
            rc = sp_lending_withdraw(sim, d->target, d->id, d->tok, r < held ? r : held, &got);
        }
    }
    if (rc == SP_ERANGE) return false;
    if (rc) {
        sp_sim_fail(sim, rc, "%s: withdrawal from '%s' failed: %s", sp_sim_entity_name(sim, d->id),
                    d->is_vault ? d->cfg->vault : d->cfg->pool, sp_strerror(rc));
        return true;
    }
    d->withdrawn += got;
    return !(sp_balance(sim, d->id, d->claim) > 0);
}

static void depositor_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct depositor *d = self;
    const struct depositor_cfg *c = d->cfg;
    sp_time next = ev->t + c->watch_every;
    switch (ev->kind) {
    case EV_DEPOSIT: {
        int rc = SP_OK;
        if (d->amount > 0)
            rc = d->is_vault ? sp_vault_deposit(sim, d->target, d->id, d->amount, NULL)
                             : sp_lending_supply(sim, d->target, d->id, d->tok, d->amount, NULL);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: deposit of %g %s into '%s' failed: %s",
                        sp_sim_entity_name(sim, d->id), d->amount, c->token,
                        d->is_vault ? c->vault : c->pool, sp_strerror(rc));
            return;
        }
        d->deposited = true;
        d->peak = share_price(d, sim);
        if (!d->inattentive && next <= sp_sim_horizon(sim)) {
            ev->kind = EV_WATCH;
            sp_sim_again(sim, ev, next);
        }
        return;
    }
    case EV_WATCH:
        if (d->ran) {                               /* come back for the rest */
            if (withdraw(d, sim)) return;
        } else if (!d->pending) {
            double p = share_price(d, sim);
            if (p > d->peak || !(d->peak > 0)) d->peak = p;
            if (d->peak > 0 && isfinite(p) && 1 - p / d->peak > d->threshold) {
                d->pending = true;
                d->run_at = ev->t;
                sp_time at = ev->t + (sp_time)llround(d->delay_s * (double)SP_SEC);
                if (at <= sp_sim_horizon(sim) &&
                    !sp_sim_schedule(sim, at, SP_PRIO_AGENT, d->id, EV_RUN)) {
                    sp_sim_fail(sim, SP_ENOMEM, "out of memory");
                    return;
                }
            }
        }
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
        return;
    case EV_RUN:
        d->ran = true;
        withdraw(d, sim);
        return;
    }
}

static void depositor_finish(void *self, struct sp_sim *sim)
{
    struct depositor *d = self;
    const struct depositor_cfg *c = d->cfg;
    if (d->member + 1 != (size_t)c->count) return;
    int64_t runs = 0, unserved = 0;
    double withdrawn = 0;
    sp_time first = -1;
    for (size_t k = 0; k < (size_t)c->count; k++) {
        const struct depositor *m = sp_sim_entity_state(sim, d->pop_first + (sp_id)k);
        if (m->run_at < 0) continue;
        runs++;
        withdrawn += m->withdrawn;
        if (first < 0 || m->run_at < first) first = m->run_at;
        if (sp_balance(sim, m->id, m->claim) > 0) unserved++;
    }
    char pop[200], key[300];
    snprintf(pop, sizeof pop, "%s", sp_sim_entity_name(sim, d->id));
    if (c->count > 1) { char *u = strrchr(pop, '_'); if (u) *u = 0; }
    snprintf(key, sizeof key, "n_runs_%s", pop);
    sp_sim_summary(sim, key, (double)runs);
    snprintf(key, sizeof key, "first_run_%s", pop);
    sp_sim_summary(sim, key, first < 0 ? -1.0 : sp_time_sec(first));
    snprintf(key, sizeof key, "withdrawn_%s", pop);
    sp_sim_summary(sim, key, withdrawn);
    snprintf(key, sizeof key, "n_unserved_%s", pop);
    sp_sim_summary(sim, key, (double)unserved);
}

/* ---- snapshot --------------------------------------------------------------- */

static int depositor_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct depositor *d = self;
    sp_snap_put_array(w, 6);
    sp_snap_put_bool(w, d->deposited);
    sp_snap_put_bool(w, d->ran);
    sp_snap_put_bool(w, d->pending);
    sp_snap_put_f64(w, d->peak);
    sp_snap_put_i64(w, d->run_at);
    return sp_snap_put_f64(w, d->withdrawn);
}

static int depositor_restore(void *self, struct sp_snapshot_reader *r)
{
    struct depositor *d = self;
    bool deposited = false, ran = false, pending = false;
    double peak = 0, withdrawn = 0;
    int64_t run_at = -1;
    sp_snap_get_array_n(r, 6);
    sp_snap_get_bool(r, &deposited);
    sp_snap_get_bool(r, &ran);
    sp_snap_get_bool(r, &pending);
    sp_snap_get_f64(r, &peak);
    sp_snap_get_i64(r, &run_at);
    sp_snap_get_f64(r, &withdrawn);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    if (run_at < -1 || (run_at >= 0) != pending || (ran && !pending))
        return sp_snap_fail(r, "inconsistent run state (run_at %lld, pending %d, ran %d)",
                            (long long)run_at, pending, ran);
    d->deposited = deposited;
    d->ran = ran;
    d->pending = pending;
    d->peak = peak;
    d->run_at = run_at;
    d->withdrawn = withdrawn;
    return SP_OK;
}

const struct sp_module_ops sp_agent_depositor_ops = {
    .kind = "agent", .type = "depositor",
    .summary = "deposits into a lending pool or a vault; runs when the share price draws down "
               "past a threshold",
    .schema = &depositor_schema, .state_size = sizeof(struct depositor),
    .count = depositor_count, .init = depositor_init, .start = depositor_start,
    .on_event = depositor_on_event, .finish = depositor_finish,
    .snapshot = depositor_snapshot, .restore = depositor_restore,
};
