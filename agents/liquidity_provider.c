/*
 * liquidity_provider.c — the "liquidity_provider" agent: deposits into an
 * AMM, and flees when the venue turns violent (liquidity flight), thinning
 * the pool exactly when liquidations need it; optionally comes back once
 * things are calm.
 *
 * Watching.  Every `sample` (from t = 0) it reads the venue price into a
 * ring of the samples of the last `window` (window/sample + 1 prices, both
 * ends included).  Two triggers, either or both:
 *   - realised volatility: sqrt(sum of squared log returns between the
 *     samples in the window / time they span), annualised (365-day year),
 *     above `max_volatility`;
 *   - drawdown: 1 − price / (highest sample in the window) above
 *     `max_drawdown`.
 * A trigger is a strict "above": a drawdown of exactly the threshold does
 * not fire.  Before the ring is full, the samples so far are the window.
 *
 * Acting.  At `enter_at` it deposits `base` and `quote` at the pool's ratio
 * (default: all it holds of the pair).  While in, the first sample whose
 * window crosses a threshold makes it burn `withdraw` of its LP shares (the
 * pro-rata reserves come back to its wallet).  While out, if `return_after`
 * is set, it re-deposits everything it holds of the pair once no trigger has
 * fired for `return_after` continuously.  It never swaps: adding and
 * removing at the pool's ratio leaves the price unchanged, so it causes no
 * trades (a swap by it would carry cause "liquidity").
 *
 * Money: `inventory` (the venue's base token) and `cash` (its quote token)
 * are minted at init, each drawn per member of a population; deposits and withdrawals go through
 * sp_amm_add_liquidity / sp_amm_remove_liquidity (ledger moves, LP shares
 * kept by the venue).  Output: /agents/<name> (one row per enter, exit and
 * return: the amounts and the volatility and drawdown it saw), and /summary
 * first_exit_<name> (seconds; −1 if it never left), n_exits_<name>,
 * n_returns_<name>.
 *
 * Snapshot: the sample ring as it is (one bin of window/sample + 1 prices,
 * its size fixed by init, with head and length), in/entered, the start of
 * the calm spell, and the /summary values.  The enter and sample events
 * are restored with the queue, the endowment with the ledger.
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
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "amm.h"

enum { EV_ENTER = 1, EV_SAMPLE = 2 };
enum { ACT_ENTER, ACT_EXIT, ACT_RETURN };

static const char *const act_names[] = { "enter", "exit", "return", NULL };

/* ---- config ---------------------------------------------------------------- */

struct lp_cfg {
    const char *venue;
    int64_t count;
    struct sp_dist cash, inventory;
    sp_time enter_at;
    double base, quote;           /* 0: all it holds */
    sp_time sample, window;
    double max_volatility, max_drawdown;   /* 0: off */
    double withdraw;
    sp_time return_after;         /* 0: never */
};


static const char *const amm_types[] = { "cpmm", "stableswap", NULL };

static int lp_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct lp_cfg *c = bound;
    const struct sp_world_cfg *w = ctx->root;
    int rc = sp_world_check_entity(ctx, "venue", w->markets, w->n_markets, "venue", amm_types);
    if (sp_dist_check_nonneg(ctx, "cash", &c->cash)) rc = SP_ECONFIG;
    if (sp_dist_check_nonneg(ctx, "inventory", &c->inventory)) rc = SP_ECONFIG;
    if (!(c->max_volatility > 0) && !(c->max_drawdown > 0)) {
        sp_diag_error(ctx->diag, ctx->node, "a liquidity provider needs a trigger: "
                      "max_volatility or max_drawdown (or both)");
        rc = SP_ECONFIG;
    }
    if (c->window < c->sample) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "window"),
                      "window must be at least one sample long");
        rc = SP_ECONFIG;
    } else if (c->window / c->sample > 1000000) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "window"),
                      "window holds more than 10^6 samples: raise `sample`");
        rc = SP_ECONFIG;
    }
    if (c->enter_at >= w->horizon) {
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "enter_at"),
                      "enter_at is not before the horizon: it would never deposit");
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field lp_fields[] = {
    { "venue", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "The AMM it provides liquidity to (a `markets` entry: cpmm or stableswap).",
      offsetof(struct lp_cfg, venue), NULL, 0 },
    { "count", SP_T_INT, SP_F_MIN | SP_F_MAX, 1, 1e7, "1", "agents",
      "Population size: N > 1 makes NAME_0 .. NAME_{N-1}, each drawing its cash and inventory.",
      offsetof(struct lp_cfg, count), NULL, 0 },
    { "cash", SP_T_DIST, SP_F_MIN, 0, 0, "0", "quote token",
      "Endowment of the venue's quote token, minted at init.",
      offsetof(struct lp_cfg, cash), NULL, 0 },
    { "inventory", SP_T_DIST, SP_F_MIN, 0, 0, "0", "base token",
      "Endowment of the venue's base token, minted at init.",
      offsetof(struct lp_cfg, inventory), NULL, 0 },
    { "enter_at", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "When it deposits.", offsetof(struct lp_cfg, enter_at), NULL, 0 },
    { "base", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, NULL, "base token",
      "Most base deposited at enter_at (at the pool's ratio); default all it holds.",
      offsetof(struct lp_cfg, base), NULL, 0 },
    { "quote", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, NULL, "quote token",
      "Most quote deposited at enter_at (at the pool's ratio); default all it holds.",
      offsetof(struct lp_cfg, quote), NULL, 0 },
    { "sample", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",
      "How often it reads the venue price.", offsetof(struct lp_cfg, sample), NULL, 0 },
    { "window", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "Window of the realised volatility and of the peak for the drawdown.",
      offsetof(struct lp_cfg, window), NULL, 0 },
    { "max_volatility", SP_T_FRACTION, SP_F_MIN_EXCL, 0, 0, NULL, "per sqrt(year)",
      "Leave when the annualised realised volatility over the window exceeds this.",
      offsetof(struct lp_cfg, max_volatility), NULL, 0 },
    { "max_drawdown", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX_EXCL, 0, 1, NULL, "fraction",
      "Leave when the price is more than this below the window's highest sample.",
      offsetof(struct lp_cfg, max_drawdown), NULL, 0 },
    { "withdraw", SP_T_FRACTION, SP_F_MIN_EXCL | SP_F_MAX, 0, 1, "100%", "fraction",
      "Fraction of its LP shares it burns when it leaves.",
      offsetof(struct lp_cfg, withdraw), NULL, 0 },
    { "return_after", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",
      "Re-deposit everything it holds of the pair after this long without a trigger; "
      "0 = never return.", offsetof(struct lp_cfg, return_after), NULL, 0 },
};

static const struct sp_schema lp_schema = {
    "agents[type: liquidity_provider]",
    "Deposits into an AMM and withdraws when realised volatility or drawdown of the venue "
    "price passes a threshold (liquidity flight); optionally returns after a calm period.",
    lp_fields, sizeof lp_fields / sizeof lp_fields[0], sizeof(struct lp_cfg), lp_check
};

/* ---- state ----------------------------------------------------------------- */

struct lp {
    const struct lp_cfg *cfg;
    sp_id id, venue;
    sp_token base, quote;
    double *ring;                 /* the last n_ring samples, oldest at head */
    size_t n_ring, head, len;
    bool in;                      /* has deposited and not left */
    bool entered;                 /* enter_at has passed */
    sp_time calm_since;           /* -1: not calm (or not out) */
    sp_time first_exit;
    int64_t n_exits, n_returns;
    struct sp_rec_table *tab;
};

static size_t lp_count(const void *cfg)
{
    const struct lp_cfg *c = cfg;
    return (size_t)c->count;
}

static int lp_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    struct lp *l = self;
    const struct lp_cfg *c = cfg;
    l->cfg = c;
    l->id = id;
    l->venue = sp_sim_find(sim, c->venue);
    if (l->venue == SP_ID_NONE || !sp_amm_is(sim, l->venue)) {
        sp_sim_fail(sim, SP_EINVAL, "%s: '%s' is not an AMM", sp_sim_entity_name(sim, id),
                    c->venue);
        return SP_EINVAL;
    }
    const struct sp_market_ops *m = sp_market_ops_of(sim, l->venue);
    m->pair(sp_sim_entity_state(sim, l->venue), &l->base, &l->quote);
    l->n_ring = (size_t)(c->window / c->sample) + 1;
    l->ring = calloc(l->n_ring, sizeof *l->ring);
    if (!l->ring) return SP_ENOMEM;
    l->calm_since = -1;
    l->first_exit = -1;
    struct sp_rng *rng = sp_sim_rng(sim, id);
    double cash = sp_dist_draw(&c->cash, rng), inventory = sp_dist_draw(&c->inventory, rng);
    if (!(cash >= 0 && inventory >= 0 && isfinite(cash) && isfinite(inventory))) {
        sp_sim_fail(sim, SP_EMODEL, "%s: drew cash %g, inventory %g (both must be >= 0)",
                    sp_sim_entity_name(sim, id), cash, inventory);
        return SP_EMODEL;
    }
    int rc = sp_mint(sim, l->quote, id, cash);
    if (!rc) rc = sp_mint(sim, l->base, id, inventory);
    if (rc) sp_sim_fail(sim, rc, "%s: cannot mint its endowment: %s", sp_sim_entity_name(sim, id),
                        sp_strerror(rc));
    return rc;
}

static const struct sp_rec_col lp_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "action", SP_REC_I8, "1", "what it did", act_names },
    { "base", SP_REC_F64, "base token", "base deposited (+) or withdrawn (-)", NULL },
    { "quote", SP_REC_F64, "quote token", "quote deposited (+) or withdrawn (-)", NULL },
    { "volatility", SP_REC_F64, "per sqrt(year)", "realised volatility over the window", NULL },
    { "drawdown", SP_REC_F64, "1", "drawdown from the window's highest sample", NULL },
};

static int lp_start(void *self, struct sp_sim *sim)
{
    struct lp *l = self;
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        char group[300];
        snprintf(group, sizeof group, "/agents/%s", sp_sim_entity_name(sim, l->id));
        int rc = sp_rec_table_create(rec, group, lp_cols, sizeof lp_cols / sizeof lp_cols[0],
                                     &l->tab);
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
        sp_rec_attr_str(rec, group, "venue", l->cfg->venue);
    }
    if (!sp_sim_schedule(sim, l->cfg->enter_at, SP_PRIO_AGENT, l->id, EV_ENTER)) return SP_ENOMEM;
    if (!sp_sim_schedule(sim, 0, SP_PRIO_AGENT, l->id, EV_SAMPLE)) return SP_ENOMEM;
    return SP_OK;
}

static void record(struct lp *l, struct sp_sim *sim, int act, double base, double quote,
                   double vol, double dd)
{
    if (!l->tab) return;
    union sp_rec_val row[6];
    row[0].f = sp_time_sec(sp_sim_now(sim));
    row[1].i = act;
    row[2].f = base;
    row[3].f = quote;
    row[4].f = vol;
    row[5].f = dd;
    sp_rec_append(l->tab, row);
}

/* Deposit up to (max_base, max_quote) at the pool's ratio. */
static int deposit(struct lp *l, struct sp_sim *sim, double max_base, double max_quote, int act,
                   double vol, double dd)
{
    double b0 = sp_balance(sim, l->id, l->base), q0 = sp_balance(sim, l->id, l->quote);
    if (!(max_base > 0) || !(max_quote > 0) || b0 < max_base || q0 < max_quote) {
        sp_sim_fail(sim, SP_EMODEL, "%s: cannot deposit %.17g %s + %.17g %s into %s: holds "
                    "%.17g and %.17g", sp_sim_entity_name(sim, l->id), max_base,
                    sp_token_name(sim, l->base), max_quote, sp_token_name(sim, l->quote),
                    l->cfg->venue, b0, q0);
        return SP_EMODEL;
    }
    int rc = sp_amm_add_liquidity(sim, l->venue, l->id, max_base, max_quote, NULL);
    if (rc) {
        sp_sim_fail(sim, rc, "%s: add_liquidity on %s failed: %s",
                    sp_sim_entity_name(sim, l->id), l->cfg->venue, sp_strerror(rc));
        return rc;
    }
    l->in = true;
    record(l, sim, act, b0 - sp_balance(sim, l->id, l->base),
           q0 - sp_balance(sim, l->id, l->quote), vol, dd);
    return SP_OK;
}

/* Realised volatility (annualised) and drawdown of the window. */
static void window_stats(const struct lp *l, double *vol, double *dd)
{
    double sum2 = 0, peak = 0, prev = NAN, last = NAN;
    for (size_t k = 0; k < l->len; k++) {
        double p = l->ring[(l->head + k) % l->n_ring];
        if (k > 0 && prev > 0 && p > 0) { double r = log(p / prev); sum2 += r * r; }
        if (p > peak) peak = p;
        prev = last = p;
    }
    double span = (double)(l->len > 1 ? l->len - 1 : 1) * (double)l->cfg->sample / (double)SP_YEAR;
    *vol = l->len > 1 ? sqrt(sum2 / span) : 0.0;
    *dd = peak > 0 ? 1.0 - last / peak : 0.0;
}

static void sample(struct lp *l, struct sp_sim *sim)
{
    const struct lp_cfg *c = l->cfg;
    const struct sp_market_ops *m = sp_market_ops_of(sim, l->venue);
    double p = m->price(sp_sim_entity_state(sim, l->venue));
    if (l->len < l->n_ring) {
        l->ring[(l->head + l->len++) % l->n_ring] = p;
    } else {
        l->ring[l->head] = p;
        l->head = (l->head + 1) % l->n_ring;
    }
    double vol, dd;
    window_stats(l, &vol, &dd);
    bool fire = (c->max_volatility > 0 && vol > c->max_volatility) ||
                (c->max_drawdown > 0 && dd > c->max_drawdown);
    sp_time now = sp_sim_now(sim);
    if (l->in && fire) {
        double shares = sp_amm_lp_shares(sim, l->venue, l->id) * c->withdraw;
        double ob, oq;
        int rc = sp_amm_remove_liquidity(sim, l->venue, l->id, shares, &ob, &oq);
        if (rc) {
            sp_sim_fail(sim, rc, "%s: remove_liquidity on %s failed: %s",
                        sp_sim_entity_name(sim, l->id), c->venue, sp_strerror(rc));
            return;
        }
        l->in = false;
        l->calm_since = -1;
        l->n_exits++;
        if (l->first_exit < 0) l->first_exit = now;
        record(l, sim, ACT_EXIT, -ob, -oq, vol, dd);
    } else if (!l->in && l->entered && c->return_after > 0) {
        if (fire) {
            l->calm_since = -1;
        } else if (l->calm_since < 0) {
            l->calm_since = now;
        } else if (now - l->calm_since >= c->return_after) {
            if (deposit(l, sim, sp_balance(sim, l->id, l->base),
                        sp_balance(sim, l->id, l->quote), ACT_RETURN, vol, dd) == SP_OK)
                l->n_returns++;
        }
    }
}

static void lp_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct lp *l = self;
    if (ev->kind == EV_ENTER) {
        const struct lp_cfg *c = l->cfg;
        double b = c->base > 0 ? c->base : sp_balance(sim, l->id, l->base);
        double q = c->quote > 0 ? c->quote : sp_balance(sim, l->id, l->quote);
        l->entered = true;
        deposit(l, sim, b, q, ACT_ENTER, NAN, NAN);
        return;
    }
    sample(l, sim);
    sp_time next = ev->t + l->cfg->sample;
    if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
}

static void lp_finish(void *self, struct sp_sim *sim)
{
    struct lp *l = self;
    const char *name = sp_sim_entity_name(sim, l->id);
    char key[300];
    snprintf(key, sizeof key, "first_exit_%s", name);
    sp_sim_summary(sim, key, l->first_exit < 0 ? -1.0 : sp_time_sec(l->first_exit));
    snprintf(key, sizeof key, "n_exits_%s", name);
    sp_sim_summary(sim, key, (double)l->n_exits);
    snprintf(key, sizeof key, "n_returns_%s", name);
    sp_sim_summary(sim, key, (double)l->n_returns);
}

static void lp_release(void *self)
{
    struct lp *l = self;
    free(l->ring);
    l->ring = NULL;
}

static int lp_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct lp *l = self;
    sp_snap_put_array(w, 5);
    sp_snap_put_bool(w, l->in);
    sp_snap_put_bool(w, l->entered);
    sp_snap_put_i64s(w, (const int64_t[]){ l->calm_since, l->first_exit, l->n_exits,
                                           l->n_returns }, 4);
    sp_snap_put_u64s(w, (const uint64_t[]){ l->head, l->len }, 2);
    return sp_snap_put_f64s(w, l->ring, l->n_ring);
}

static int lp_restore(void *self, struct sp_snapshot_reader *r)
{
    struct lp *l = self;
    int64_t t[4];
    uint64_t hl[2];
    size_t n;
    sp_snap_get_array_n(r, 5);
    sp_snap_get_bool(r, &l->in);
    sp_snap_get_bool(r, &l->entered);
    sp_snap_get_i64s(r, t, 4);
    sp_snap_get_u64s(r, hl, 2);
    if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
    if (n != l->n_ring)
        return sp_snap_fail(r, "a window of %zu samples, the scenario makes %zu", n, l->n_ring);
    if (hl[0] >= n || hl[1] > n || (hl[1] < n && hl[0] != 0))
        return sp_snap_fail(r, "sample ring head %llu, length %llu out of range",
                            (unsigned long long)hl[0], (unsigned long long)hl[1]);
    sp_snap_get_f64s(r, l->ring, n);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    l->calm_since = t[0];
    l->first_exit = t[1];
    l->n_exits = t[2];
    l->n_returns = t[3];
    l->head = (size_t)hl[0];
    l->len = (size_t)hl[1];
    return SP_OK;
}

const struct sp_module_ops sp_agent_liquidity_provider_ops = {
    .kind = "agent", .type = "liquidity_provider",
    .summary = "deposits into an AMM and flees when volatility or drawdown passes a threshold",
    .schema = &lp_schema, .state_size = sizeof(struct lp),
    .count = lp_count, .init = lp_init, .start = lp_start, .on_event = lp_on_event,
    .finish = lp_finish, .release = lp_release,
    .snapshot = lp_snapshot, .restore = lp_restore,
};
