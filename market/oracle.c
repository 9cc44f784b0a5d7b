/*
 * oracle.c — the machinery shared by every oracle type: the source spec and
 * its validation, polling, TWAP observations, failures, latency, delivery to
 * subscribers, /oracles/<name> and the /summary metrics.  A type
 * (oracle_chainlink.c, oracle_osm.c, oracle_heartbeat.c) only supplies the
 * update rule: given the price read at a poll, publish or not.
 *
 * Time line of one oracle:
 *   poll (every `poll` from t = 0, priority SP_PRIO_ORACLE, so it sees the
 *   reference updates of the same instant but not the trades):
 *     source price s <- read the source (every poll, frozen or not, so TWAP
 *                       observations have no holes);
 *     metrics        <- |delivered - s| / s and the age of the delivered
 *                       price, before this poll's publication;
 *     frozen?        -> nothing more;
 *     p = s x prod(1 + offset of each active offset failure);
 *     rule(p)        -> publish price q (a row of /oracles/<name>):
 *   delivery at t + latency (inline when latency = 0, else a queued event;
 *   deliveries keep publication order): the oracle's price becomes q and
 *   each subscriber gets an event at that instant.
 * A freeze stops publications only; what was published before still
 * arrives.  Failure intervals are [from, to).
 *
 * `on_trade: true` adds polls: each trade on a market the oracle reads
 * (spot, mid) calls its watcher (sp_venue_watch), which queues one extra
 * poll at the same instant, priority SP_PRIO_ORACLE — after the event that
 * traded, before the agents of that instant; several trades in one event
 * make one poll.  With chainlink deviation 0 this is a feed that follows its
 * venue at once: a liquidation sale reaches the protocol in the same
 * instant, round after round (a cascade), without waiting for `poll`.
 *
 * Cascade generation.  Each poll asks its market legs for the highest
 * liquidation tag since the previous poll (spiral/market.h); the
 * publication carries 1 + that, or 0 when none (reference and value legs are
 * exogenous), through latency to delivery and to subscribers (data.i[3]).
 *
 * Sources (`source.type`):
 *   reference       the price of a reference process (`of`);
 *   spot, mid       the price of a market (ops->price: the AMM's spot, the
 *                   book's mid); the two names differ only for the reader;
 *   twap            (C(t) - C(t - window)) / window.  For a market with a
 *                   `cumulative` op, C is its price cumulative (Uniswap v2),
 *                   observed at every poll; for any other source (or a market
 *                   without one), C is accumulated here from the polled
 *                   prices, each held until the next poll (sampled TWAP: exact
 *                   when the source only changes at poll instants, as a
 *                   reference whose step is a multiple of `poll`).  C(t -
 *                   window) comes from a ring of (t, C) observations,
 *                   linearly interpolated between two polls (exact when
 *                   `window` is a multiple of `poll`).  Until a whole window
 *                   has passed the mean runs from t = 0; at t = 0 it is the
 *                   current price;
 *   median          the median of `sources` (each one of the above but
 *                   median and value; an even count takes the mean of the
 *                   middle two);
 *   value           the fundamental value of a token (`of` names a TOKEN,
 *                   spiral/token.h): how a protocol prices a receipt token or
 *                   a vault share of another protocol, or an lst at its
 *                   redemption rate rather than its market.
 * A poll whose source is not a positive finite number publishes nothing.
 *
 * State: `struct oracle` lives in the engine-allocated `struct
 * sp_oracle_state` (checked at compile time); the legs, their TWAP rings
 * and the subscriber list are heap arrays owned by it, freed in release.
 * The subscriber list is never touched by init, so a consumer may subscribe
 * before or after the oracle's own init.
 *
 * Snapshot (sp_oracle_snapshot): what changes while running — the delivered
 * price and its times and generation, the previous read, whether an
 * on_trade poll is queued, the summary metrics, per leg the sampled
 * cumulative and the TWAP ring as it is (head, count, both arrays: a bin
 * each, its size fixed by init), and the rule's state through the rule's
 * own snapshot/restore (struct sp_oracle_rule).  Deliveries in flight are queued
 * events (their payload carries price, times and generation), restored with
 * the queue.  Legs, watchers, subscribers and the output table come from
 * init and start, which never change them later; `vals` is scratch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "oracle.h"
#include "reference.h"

enum { EV_POLL = 1, EV_DELIVER = 2, EV_TRADE = 3 };

struct leg {
    int type;                   /* enum sp_oracle_source_type, never median */
    sp_id entity;
    sp_token token;             /* value only */
    const struct sp_market_ops *market;   /* cumulative source, or NULL: sampled */
    sp_time window;
    /* twap: ring of observations (t, C); `head` is the newest */
    sp_time *obs_t;
    double *obs_c;
    size_t cap, head, n;
    /* sampled cumulative */
    double cum, last_p;
    sp_time last_t;
};

struct sub { sp_id who; uint16_t kind; };

struct oracle {
    const struct sp_oracle_cfg *cfg;
    const struct sp_oracle_rule *rule;
    struct sp_sim *sim;
    sp_id id;
    struct leg *legs;
    double *vals;
    size_t n_legs;
    bool median;
    /* delivered */
    bool have;
    double delivered;
    sp_time pub_t, read_t;
    int gen;                    /* cascade generation of the delivered price */
    sp_time delivered_t;
    sp_time last_poll;          /* previous read (-1: none): tags since then count */
    bool trade_pending;         /* an EV_TRADE is queued for now */
    /* consumers */
    struct sub *subs;
    size_t n_subs, cap_subs;
    /* output and metrics */
    struct sp_rec_table *tab;
    uint64_t n_updates;
    double max_dev;
    sp_time max_age;
    _Alignas(16) unsigned char rule_state[SP_ORACLE_RULE_STATE_MAX];
};

_Static_assert(sizeof(struct oracle) <= sizeof(struct sp_oracle_state),
               "struct sp_oracle_state is too small for struct oracle");
_Static_assert(_Alignof(struct oracle) <= _Alignof(struct sp_oracle_state),
               "struct sp_oracle_state is not aligned enough for struct oracle");

static const char *const source_types[] = { "reference", "spot", "mid", "twap", "median",
                                            "value", NULL };
static const char *const leg_types[] = { "reference", "spot", "mid", "twap", NULL };
static const char *const failure_modes[] = { "freeze", "offset", NULL };

/* ---- validation ------------------------------------------------------------ */

/* Entity kinds an oracle can read. */
enum { ENT_REFERENCE, ENT_MARKET };

struct entities {
    char **name;
    int *kind;
    size_t n;
};

static void entities_release(struct entities *e)
{
    for (size_t i = 0; i < e->n; i++) free(e->name[i]);
    free(e->name);
    free(e->kind);
}

static int entities_add(struct entities *e, size_t *cap, const char *name, int kind)
{
    if (e->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        char **nn = realloc(e->name, nc * sizeof *nn);
        if (!nn) return SP_ENOMEM;
        e->name = nn;
        int *nk = realloc(e->kind, nc * sizeof *nk);
        if (!nk) return SP_ENOMEM;
        e->kind = nk;
        *cap = nc;
    }
    char *s = strdup(name);
    if (!s) return SP_ENOMEM;
    e->name[e->n] = s;
    e->kind[e->n++] = kind;
    return SP_OK;
}

/* Every reference and market entity the world will have, named as
 * sp_world_build names them (name:, default name, population members). */
static int entities_collect(const struct sp_world_cfg *w, struct entities *e)
{
    memset(e, 0, sizeof *e);
    size_t cap = 0;
    const struct { const struct sp_module_cfg *items; size_t n; int kind; } sec[2] = {
        { w->references, w->n_references, ENT_REFERENCE },
        { w->markets, w->n_markets, ENT_MARKET },
    };
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < sec[s].n; i++) {
            const struct sp_module_cfg *m = &sec[s].items[i];
            if (!m->ops || !m->cfg) continue;        /* already reported */
            char buf[128], member[160];
            const char *name = m->name;
            if (!name && m->ops->default_name) name = m->ops->default_name(m->cfg, buf, sizeof buf);
            if (!name) {
                snprintf(buf, sizeof buf, "%s_%s", m->ops->kind, m->ops->type);
                name = buf;
            }
            size_t count = m->ops->count ? m->ops->count(m->cfg) : 1;
            for (size_t k = 0; k < count; k++) {
                const char *nm = name;
                if (count > 1) {
                    snprintf(member, sizeof member, "%s_%zu", name, k);
                    nm = member;
                }
                int rc = entities_add(e, &cap, nm, sec[s].kind);
                if (rc) return rc;
            }
        }
    return SP_OK;
}

static int check_entity(const struct sp_oracle_source_cfg *s, const struct sp_check_ctx *ctx)
{
    const struct sp_node *at = sp_node_get(ctx->node, "of");
    struct entities e;
    int rc = entities_collect(ctx->root, &e);
    if (rc) { entities_release(&e); return rc; }
    size_t i = 0;
    while (i < e.n && strcmp(e.name[i], s->of)) i++;
    if (i == e.n) {
        const char *near = sp_suggest(s->of, (const char *const *)e.name, e.n);
        if (near)
            sp_diag_error(ctx->diag, at, "unknown source entity '%s' (did you mean '%s'?)",
                          s->of, near);
        else
            sp_diag_error(ctx->diag, at, "unknown source entity '%s': no reference process or "
                          "market has that name", s->of);
        rc = SP_ECONFIG;
    } else if (s->type == SP_SOURCE_REFERENCE && e.kind[i] != ENT_REFERENCE) {
        sp_diag_error(ctx->diag, at, "'%s' is a market, not a reference process: use type spot, "
                      "mid or twap to read it", s->of);
        rc = SP_ECONFIG;
    } else if ((s->type == SP_SOURCE_SPOT || s->type == SP_SOURCE_MID) &&
               e.kind[i] != ENT_MARKET) {
        sp_diag_error(ctx->diag, at, "'%s' is a reference process, not a market: type %s reads "
                      "a market; use type reference", s->of, source_types[s->type]);
        rc = SP_ECONFIG;
    }
    entities_release(&e);
    return rc;
}

static int check_source(const struct sp_oracle_source_cfg *s, const struct sp_check_ctx *ctx)
{
    int rc = SP_OK;
    const struct sp_node *of = sp_node_get(ctx->node, "of");
    const struct sp_node *win = sp_node_get(ctx->node, "window");
    const struct sp_node *srcs = sp_node_get(ctx->node, "sources");
    if (s->type == SP_SOURCE_MEDIAN) {
        if (!s->n_sources) {
            sp_diag_error(ctx->diag, srcs ? srcs : ctx->node,
                          "type median needs `sources`: a list of one or more sources");
            rc = SP_ECONFIG;
        }
        if (of) {
            sp_diag_error(ctx->diag, of, "`of` does not apply to type median: give each "
                          "source under `sources`");
            rc = SP_ECONFIG;
        }
    } else {
        if (srcs) {
            sp_diag_error(ctx->diag, srcs, "`sources` applies only to type median");
            rc = SP_ECONFIG;
        }
        if (!s->of) {
            sp_diag_error(ctx->diag, ctx->node, "missing required key 'of' (the %s "
                          "type %s reads)", s->type == SP_SOURCE_VALUE ? "token" : "entity",
                          source_types[s->type]);
            rc = SP_ECONFIG;
        } else if (s->type == SP_SOURCE_VALUE) {
            if (sp_world_check_token(ctx, "of", -1)) rc = SP_ECONFIG;
        } else {
            int r = check_entity(s, ctx);
            if (r) rc = r;
        }
    }
    if (s->type == SP_SOURCE_TWAP && !win) {
        sp_diag_error(ctx->diag, ctx->node, "type twap needs `window` (e.g. window: 30m)");
        rc = SP_ECONFIG;
    } else if (s->type != SP_SOURCE_TWAP && win) {
        sp_diag_error(ctx->diag, win, "`window` applies only to type twap");
        rc = SP_ECONFIG;
    }
    return rc;
}

static int source_check(void *bound, const struct sp_check_ctx *ctx)
{
    return check_source(bound, ctx);
}

#define SOURCE_LEG_FIELDS(types_, doc_)                                                     \
    { "type", SP_T_ENUM, SP_F_REQUIRED, 0, 0, NULL, NULL, doc_,                             \
      offsetof(struct sp_oracle_source_cfg, type), types_, 0 },                             \
    { "of", SP_T_NAME, 0, 0, 0, NULL, NULL,                                                 \
      "The entity read: a reference process (type reference; default name "                 \
      "reference_<asset>) or a market (spot, mid, twap). Twap also reads a reference. "     \
      "Type value names a token instead.",                                                  \
      offsetof(struct sp_oracle_source_cfg, of), NULL, 0 },                                 \
    { "window", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, NULL, "time",                           \
      "TWAP window (type twap only; required there). Exact when a multiple of `poll`.",     \
      offsetof(struct sp_oracle_source_cfg, window), NULL, 0 }

static const struct sp_field leg_fields[] = {
    SOURCE_LEG_FIELDS(leg_types, "What to read of `of`: reference, spot, mid or twap."),
};

static const struct sp_schema leg_schema = {
    "oracle source of a median",
    "One input of a median source: a source as above, except median.",
    leg_fields, sizeof leg_fields / sizeof leg_fields[0], sizeof(struct sp_oracle_source_cfg),
    source_check
};

static const struct sp_field source_fields[] = {
    SOURCE_LEG_FIELDS(source_types,
                      "reference: a reference process's price; spot: an AMM's price; mid: an "
                      "order book's mid; twap: time-weighted mean of a market's price (or of "
                      "the polled price of any source) over `window`; median: median of "
                      "`sources`; value: the fundamental value of the token `of` (rate x "
                      "underlying for lst, receipt and vault_share; reserves / supply for "
                      "lp)."),
    { "sources", SP_T_LIST, 0, 0, 0, NULL, NULL,
      "The inputs of a median (type median only).",
      offsetof(struct sp_oracle_source_cfg, sources), &leg_schema,
      offsetof(struct sp_oracle_source_cfg, n_sources) },
};

const struct sp_schema sp_oracle_source_schema = {
    "oracle source",
    "What an oracle reads. Spot and mid read the market's price (ops->price); twap keeps "
    "(time, price cumulative) observations at every poll.",
    source_fields, sizeof source_fields / sizeof source_fields[0],
    sizeof(struct sp_oracle_source_cfg), source_check
};

static int failure_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct sp_oracle_failure_cfg *f = bound;
    int rc = SP_OK;
    if (!(f->from < f->to)) {
        char a[64], b[64];
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "to"),
                      "the failure must end after it starts: to (%s) <= from (%s)",
                      sp_format_duration(f->to, a, sizeof a),
                      sp_format_duration(f->from, b, sizeof b));
        rc = SP_ECONFIG;
    }
    /* A resolved scenario (/config.yaml, a snapshot's) spells the default
     * offset 0 out: only a non-zero offset on a freeze is a mistake. */
    const struct sp_node *off = sp_node_get(ctx->node, "offset");
    if (f->mode == SP_ORACLE_FREEZE && off && !(off->flags & SP_NODE_DEFAULT) && f->offset != 0) {
        sp_diag_error(ctx->diag, off, "`offset` applies only to mode offset");
        rc = SP_ECONFIG;
    }
    return rc;
}

static const struct sp_field failure_fields[] = {
    { "from", SP_T_DURATION, SP_F_REQUIRED, 0, 0, NULL, "time",
      "Start of the failure.", offsetof(struct sp_oracle_failure_cfg, from), NULL, 0 },
    { "to", SP_T_DURATION, SP_F_REQUIRED, 0, 0, NULL, "time",
      "End of the failure (after `from`); the interval is [from, to).",
      offsetof(struct sp_oracle_failure_cfg, to), NULL, 0 },
    { "mode", SP_T_ENUM, 0, 0, 0, "freeze", NULL,
      "freeze: no publications, consumers keep the last delivered price; offset: every "
      "price read is multiplied by 1 + offset.",
      offsetof(struct sp_oracle_failure_cfg, mode), failure_modes, 0 },
    { "offset", SP_T_FRACTION, SP_F_MIN_EXCL, -1, 0, "0%", "fraction",
      "Relative error of the reads in mode offset (e.g. -5%).",
      offsetof(struct sp_oracle_failure_cfg, offset), NULL, 0 },
};

const struct sp_schema sp_oracle_failure_schema = {
    "oracle failure",
    "An interval during which the oracle is frozen or reads an offset price. Overlapping "
    "offsets multiply; any active freeze wins.",
    failure_fields, sizeof failure_fields / sizeof failure_fields[0],
    sizeof(struct sp_oracle_failure_cfg), failure_check
};

/* ---- sources --------------------------------------------------------------- */

static double entity_price(struct sp_sim *sim, sp_id id)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    const void *st = sp_sim_entity_state(sim, id);
    if (ops && ops->price) return ops->price(st);
    const struct sp_market_ops *m = sp_market_ops_of(sim, id);
    if (m && m->price) return m->price(st);
    return sp_reference_price(sim, id);      /* NAN if not a reference */
}

static void ring_push(struct leg *l, sp_time t, double c)
{
    if (l->n && l->obs_t[l->head] == t) {
        l->obs_c[l->head] = c;
        return;
    }
    l->head = l->n ? (l->head + 1) % l->cap : 0;
    l->obs_t[l->head] = t;
    l->obs_c[l->head] = c;
    if (l->n < l->cap) l->n++;
}

/* TWAP at t given C(t) = c and the current price p. */
static double twap(const struct leg *l, sp_time t, double c, double p)
{
    size_t oldest = (l->head + l->cap - (l->n - 1)) % l->cap;
    sp_time a = t - l->window;
    double ca;
    if (l->obs_t[oldest] >= t) return p;                /* no history yet */
    if (a <= l->obs_t[oldest]) {                         /* less than a window: since then */
        a = l->obs_t[oldest];
        ca = l->obs_c[oldest];
    } else {
        size_t i = oldest, j = oldest;
        for (size_t k = 0; k + 1 < l->n; k++) {
            i = (oldest + k) % l->cap;
            j = (i + 1) % l->cap;
            if (l->obs_t[j] >= a) break;
        }
        if (l->obs_t[j] == a) ca = l->obs_c[j];
        else
            ca = l->obs_c[i] + (l->obs_c[j] - l->obs_c[i]) *
                                   ((double)(a - l->obs_t[i]) / (double)(l->obs_t[j] - l->obs_t[i]));
    }
    return (c - ca) / sp_time_sec(t - a);
}

static double leg_read(struct oracle *o, struct leg *l, sp_time t)
{
    if (l->type == SP_SOURCE_VALUE) return sp_token_value(o->sim, l->token);
    double p = entity_price(o->sim, l->entity);
    if (l->type != SP_SOURCE_TWAP) return p;
    double c;
    if (l->market) {
        c = l->market->cumulative(sp_sim_entity_state(o->sim, l->entity), t);
    } else {
        c = l->n ? l->cum + l->last_p * sp_time_sec(t - l->last_t) : 0.0;
        l->cum = c;
        if (isfinite(p) || !l->n) l->last_p = p;     /* a bad read holds the last good one */
        l->last_t = t;
    }
    ring_push(l, t, c);
    return twap(l, t, c, p);
}

static double read_source(struct oracle *o, sp_time t)
{
    for (size_t i = 0; i < o->n_legs; i++) o->vals[i] = leg_read(o, &o->legs[i], t);
    if (!o->median) return o->vals[0];
    double *v = o->vals;
    size_t n = o->n_legs;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] > 0) || !isfinite(v[i])) return NAN;
    for (size_t i = 1; i < n; i++)                       /* a few values: insertion sort */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Whether a freeze is active at t; *factor = product of active offsets. */
static bool failures_at(const struct sp_oracle_cfg *c, sp_time t, double *factor)
{
    bool frozen = false;
    *factor = 1.0;
    for (size_t i = 0; i < c->n_failures; i++) {
        const struct sp_oracle_failure_cfg *f = &c->failures[i];
        if (t < f->from || t >= f->to) continue;
        if (f->mode == SP_ORACLE_FREEZE) frozen = true;
        else *factor *= 1.0 + f->offset;
    }
    return frozen;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void legs_free(struct oracle *o)
{
    for (size_t i = 0; o->legs && i < o->n_legs; i++) {
        free(o->legs[i].obs_t);
        free(o->legs[i].obs_c);
    }
    free(o->legs);
    free(o->vals);
    o->legs = NULL;
    o->vals = NULL;
    o->n_legs = 0;
}

static int leg_setup(struct oracle *o, struct leg *l, const struct sp_oracle_source_cfg *s)
{
    const char *name = sp_sim_entity_name(o->sim, o->id);
    l->type = s->type;
    l->window = s->window;
    l->token = -1;
    if (s->type == SP_SOURCE_VALUE) {
        l->token = s->of ? sp_token_find(o->sim, s->of) : -1;
        if (l->token < 0) {
            sp_sim_fail(o->sim, SP_ENOTFOUND, "oracle %s: no token '%s'", name,
                        s->of ? s->of : "(none)");
            return SP_ENOTFOUND;
        }
        return SP_OK;
    }
    l->entity = s->of ? sp_sim_find(o->sim, s->of) : SP_ID_NONE;
    if (l->entity == SP_ID_NONE) {
        sp_sim_fail(o->sim, SP_ENOTFOUND, "oracle %s: no source entity '%s'", name,
                    s->of ? s->of : "(none)");
        return SP_ENOTFOUND;
    }
    const struct sp_market_ops *m = sp_market_ops_of(o->sim, l->entity);
    bool is_ref = sp_is_reference(o->sim, l->entity);
    if ((s->type == SP_SOURCE_REFERENCE && !is_ref) ||
        ((s->type == SP_SOURCE_SPOT || s->type == SP_SOURCE_MID) && !m)) {
        sp_sim_fail(o->sim, SP_EINVAL, "oracle %s: '%s' cannot be read as %s", name, s->of,
                    source_types[s->type]);
        return SP_EINVAL;
    }
    if (s->type == SP_SOURCE_TWAP) {
        if (s->window <= 0) {
            sp_sim_fail(o->sim, SP_EINVAL, "oracle %s: twap window must be > 0", name);
            return SP_EINVAL;
        }
        l->market = (m && m->cumulative) ? m : NULL;
        l->cap = (size_t)(s->window / o->cfg->poll) + 3;
        l->obs_t = calloc(l->cap, sizeof *l->obs_t);
        l->obs_c = calloc(l->cap, sizeof *l->obs_c);
        if (!l->obs_t || !l->obs_c) return SP_ENOMEM;
    }
    return SP_OK;
}

int sp_oracle_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg,
                   const struct sp_oracle_rule *rule)
{
    struct oracle *o = self;
    const struct sp_oracle_cfg *c = cfg;
    o->cfg = c;
    o->rule = rule;
    o->sim = sim;
    o->id = id;
    o->have = false;
    o->delivered = NAN;
    o->pub_t = o->read_t = -1;
    o->gen = -1;
    o->delivered_t = -1;
    o->last_poll = -1;
    o->trade_pending = false;
    memset(o->rule_state, 0, sizeof o->rule_state);
    if (c->poll <= 0) {
        sp_sim_fail(sim, SP_EINVAL, "oracle %s: poll must be > 0", sp_sim_entity_name(sim, id));
        return SP_EINVAL;
    }
    o->median = c->source.type == SP_SOURCE_MEDIAN;
    size_t n = o->median ? c->source.n_sources : 1;
    if (!n) {
        sp_sim_fail(sim, SP_EINVAL, "oracle %s: median of no sources", sp_sim_entity_name(sim, id));
        return SP_EINVAL;
    }
    o->legs = calloc(n, sizeof *o->legs);
    o->vals = calloc(n, sizeof *o->vals);
    if (!o->legs || !o->vals) { legs_free(o); return SP_ENOMEM; }
    o->n_legs = n;
    for (size_t i = 0; i < n; i++) {
        int rc = leg_setup(o, &o->legs[i], o->median ? &c->source.sources[i] : &c->source);
        if (rc) { legs_free(o); return rc; }
        if (c->on_trade && o->legs[i].type == SP_SOURCE_TWAP) {
            /* extra observations would overflow the TWAP ring */
            sp_sim_fail(sim, SP_EINVAL, "oracle %s: on_trade does not apply to a twap source",
                        sp_sim_entity_name(sim, id));
            legs_free(o);
            return SP_EINVAL;
        }
    }
    return SP_OK;
}

static const struct sp_rec_col oracle_cols[] = {
    { "t", SP_REC_F64, "s", "publication time", NULL },
    { "t_us", SP_REC_I64, "us", "publication time, exact", NULL },
    { "price", SP_REC_F64, "numeraire", "published price", NULL },
    { "source_price", SP_REC_F64, "numeraire",
      "source price read at the publication (before any failure offset)", NULL },
    { "delivered_t", SP_REC_F64, "s", "delivery time to consumers (t + latency)", NULL },
};

static size_t describe(char *buf, size_t size, const struct sp_oracle_source_cfg *s)
{
    int k;
    if (s->type == SP_SOURCE_TWAP) {
        char w[64];
        k = snprintf(buf, size, "twap(%s, %s)", s->of, sp_format_duration(s->window, w, sizeof w));
    } else if (s->type != SP_SOURCE_MEDIAN) {
        k = snprintf(buf, size, "%s(%s)", source_types[s->type], s->of);
    } else {
        size_t used = (size_t)snprintf(buf, size, "median(");
        for (size_t i = 0; i < s->n_sources && used < size; i++) {
            if (i && used + 2 < size) used += (size_t)snprintf(buf + used, size - used, ", ");
            if (used < size) used += describe(buf + used, size - used, &s->sources[i]);
        }
        if (used < size) used += (size_t)snprintf(buf + used, size - used, ")");
        return used;
    }
    return k < 0 ? 0 : (size_t)k;
}

/* A trade on a market it reads (on_trade): poll once more at this instant,
 * after the trading event (one poll however many trades it made). */
static void on_trade(void *arg, struct sp_sim *sim, sp_id venue)
{
    struct oracle *o = arg;
    (void)venue;
    if (o->trade_pending) return;
    if (!sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_ORACLE, o->id, EV_TRADE)) return;
    o->trade_pending = true;
}

int sp_oracle_start(void *self, struct sp_sim *sim)
{
    struct oracle *o = self;
    for (size_t i = 0; o->cfg->on_trade && i < o->n_legs; i++) {
        const struct leg *l = &o->legs[i];
        if (l->type != SP_SOURCE_SPOT && l->type != SP_SOURCE_MID) continue;
        int rc = sp_venue_watch(sim, l->entity, on_trade, o);
        if (rc) {
            sp_sim_fail(sim, rc, "oracle %s: cannot watch the trades of %s: %s",
                        sp_sim_entity_name(sim, o->id), sp_sim_entity_name(sim, l->entity),
                        sp_strerror(rc));
            return rc;
        }
    }
    struct sp_rec *rec = sp_sim_recorder(sim);
    if (rec) {
        char group[300], src[512];
        snprintf(group, sizeof group, "/oracles/%s", sp_sim_entity_name(sim, o->id));
        int rc = sp_rec_table_create(rec, group, oracle_cols,
                                     sizeof oracle_cols / sizeof oracle_cols[0], &o->tab);
        if (rc) {
            sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc));
            return rc;
        }
        describe(src, sizeof src, &o->cfg->source);
        sp_rec_attr_str(rec, group, "type", o->rule->type);
        sp_rec_attr_str(rec, group, "source", src);
        sp_rec_attr_f64(rec, group, "poll", sp_time_sec(o->cfg->poll));
        sp_rec_attr_f64(rec, group, "latency", sp_time_sec(o->cfg->latency));
    }
    if (!sp_sim_schedule(sim, 0, SP_PRIO_ORACLE, o->id, EV_POLL)) return SP_ENOMEM;
    return SP_OK;
}

static void deliver(struct oracle *o, double price, sp_time pub_t, sp_time read_t, int gen)
{
    sp_time now = sp_sim_now(o->sim);
    o->have = true;
    o->delivered = price;
    o->pub_t = pub_t;
    o->read_t = read_t;
    o->gen = gen;
    o->delivered_t = now;
    for (size_t i = 0; i < o->n_subs; i++) {
        struct sp_event *ev = sp_sim_schedule(o->sim, now, SP_PRIO_ORACLE, o->subs[i].who,
                                              o->subs[i].kind);
        if (!ev) {
            sp_sim_fail(o->sim, SP_ENOMEM, "oracle %s: cannot notify subscribers",
                        sp_sim_entity_name(o->sim, o->id));
            return;
        }
        ev->data.f[0] = price;
        ev->data.u[1] = o->id;
        ev->data.i[2] = pub_t;
        ev->data.i[3] = gen;
    }
}

static void publish(struct oracle *o, sp_time t, double price, double source, sp_time read_t,
                    int gen)
{
    sp_time at = t + o->cfg->latency;
    o->n_updates++;
    if (o->tab) {
        union sp_rec_val row[5];
        row[0].f = sp_time_sec(t);
        row[1].i = t;
        row[2].f = price;
        row[3].f = source;
        row[4].f = sp_time_sec(at);
        sp_rec_append(o->tab, row);
    }
    if (at == t) {
        deliver(o, price, t, read_t, gen);
        return;
    }
    struct sp_event *ev = sp_sim_schedule(o->sim, at, SP_PRIO_ORACLE, o->id, EV_DELIVER);
    if (!ev) {
        sp_sim_fail(o->sim, SP_ENOMEM, "oracle %s: cannot schedule a delivery",
                    sp_sim_entity_name(o->sim, o->id));
        return;
    }
    ev->data.f[0] = price;
    ev->data.i[1] = t;
    ev->data.i[2] = read_t;
    ev->data.i[3] = gen;
}

/* The generation a read at t carries: 1 + the highest liquidation tag of
 * the market legs since the previous read, 0 if none. */
static int read_generation(struct oracle *o, sp_time t)
{
    sp_time since = o->last_poll < 0 ? 0 : o->last_poll;
    int g = -1;
    for (size_t i = 0; i < o->n_legs; i++) {
        const struct leg *l = &o->legs[i];
        if (l->type == SP_SOURCE_VALUE || l->type == SP_SOURCE_REFERENCE) continue;
        int x = sp_venue_liq_generation(o->sim, l->entity, since);
        if (x > g) g = x;
    }
    o->last_poll = t;
    return g >= 0 ? g + 1 : 0;
}

static void poll_source(struct oracle *o, sp_time t)
{
    double s = read_source(o, t);
    int gen = read_generation(o, t);
    /* The delivered price ages even while the source has no usable price
     * (a worthless vault share reads 0): a feed does not publish <= 0 —
     * Aave's AaveOracle falls back on answers <= 0 — so it goes stale. */
    if (o->have && t - o->read_t > o->max_age) o->max_age = t - o->read_t;
    if (!(s > 0) || !isfinite(s)) return;
    if (o->have) {
        double dev = fabs(o->delivered - s) / s;
        if (dev > o->max_dev) o->max_dev = dev;
    }
    double factor;
    if (failures_at(o->cfg, t, &factor)) return;
    double p = s * factor, price = p;
    sp_time read_t = t;
    if (o->rule->poll(o->rule_state, o->cfg, t, p, &price, &read_t))
        publish(o, t, price, s, read_t, gen);
}

void sp_oracle_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct oracle *o = self;
    if (ev->kind == EV_POLL) {
        poll_source(o, ev->t);
        sp_time next = ev->t + o->cfg->poll;
        if (next <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, next);
    } else if (ev->kind == EV_DELIVER) {
        deliver(o, ev->data.f[0], ev->data.i[1], ev->data.i[2], (int)ev->data.i[3]);
    } else if (ev->kind == EV_TRADE) {
        o->trade_pending = false;
        poll_source(o, ev->t);
    }
}

void sp_oracle_finish(void *self, struct sp_sim *sim)
{
    struct oracle *o = self;
    char key[300];
    const char *name = sp_sim_entity_name(sim, o->id);
    snprintf(key, sizeof key, "n_updates_%s", name);
    sp_sim_summary(sim, key, (double)o->n_updates);
    snprintf(key, sizeof key, "max_deviation_%s", name);
    sp_sim_summary(sim, key, o->max_dev);
    snprintf(key, sizeof key, "max_age_%s", name);
    sp_sim_summary(sim, key, sp_time_sec(o->max_age));
}

double sp_oracle_current(const void *self)
{
    const struct oracle *o = self;
    return o->delivered;
}

void sp_oracle_release(void *self)
{
    struct oracle *o = self;
    legs_free(o);
    free(o->subs);
    o->subs = NULL;
    o->n_subs = o->cap_subs = 0;
}

/* ---- snapshot ------------------------------------------------------------------ */

enum { SNAP_ORACLE_N = 8, SNAP_LEG_N = 5 };

static void leg_snapshot(const struct leg *l, struct sp_snapshot_writer *w)
{
    sp_snap_put_array(w, SNAP_LEG_N);
    sp_snap_put_f64s(w, (const double[]){ l->cum, l->last_p }, 2);
    sp_snap_put_i64(w, l->last_t);
    sp_snap_put_u64s(w, (const uint64_t[]){ l->head, l->n }, 2);
    sp_snap_put_i64s(w, l->obs_t, l->cap);        /* the ring as it is (cap 0: not twap) */
    sp_snap_put_f64s(w, l->obs_c, l->cap);
}

int sp_oracle_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct oracle *o = self;
    sp_snap_put_array(w, SNAP_ORACLE_N);
    sp_snap_put_bool(w, o->have);
    sp_snap_put_f64s(w, (const double[]){ o->delivered, o->max_dev }, 2);
    sp_snap_put_i64s(w, (const int64_t[]){ o->pub_t, o->read_t, o->delivered_t, o->last_poll,
                                           o->max_age }, 5);
    sp_snap_put_i64(w, o->gen);
    sp_snap_put_bool(w, o->trade_pending);
    sp_snap_put_u64(w, o->n_updates);
    sp_snap_put_array(w, o->n_legs);
    for (size_t i = 0; i < o->n_legs; i++) leg_snapshot(&o->legs[i], w);
    if (o->rule->snapshot) return o->rule->snapshot(o->rule_state, w);
    return sp_snap_put_nil(w);
}

/* A leg's ring must be the size init made it, with head and count inside it
 * and its observations in increasing time order from the oldest. */
static int leg_restore(struct leg *l, size_t i, struct sp_snapshot_reader *r)
{
    double cl[2];
    sp_time last_t;
    uint64_t hn[2];
    size_t cap;
    sp_snap_get_array_n(r, SNAP_LEG_N);
    sp_snap_get_f64s(r, cl, 2);
    sp_snap_get_i64(r, &last_t);
    sp_snap_get_u64s(r, hn, 2);
    if (sp_snap_peek_count(r, &cap)) return sp_snap_error(r);
    if (cap != l->cap)
        return sp_snap_fail(r, "source %zu: a TWAP ring of %zu, the scenario makes %zu", i, cap,
                            l->cap);
    if (hn[1] > cap || (cap ? hn[0] >= cap : hn[0] != 0))
        return sp_snap_fail(r, "source %zu: TWAP ring head %llu, count %llu out of range", i,
                            (unsigned long long)hn[0], (unsigned long long)hn[1]);
    sp_snap_get_i64s(r, l->obs_t, cap);
    if (sp_snap_peek_count(r, &cap)) return sp_snap_error(r);
    if (cap != l->cap) return sp_snap_fail(r, "source %zu: TWAP ring sizes differ", i);
    sp_snap_get_f64s(r, l->obs_c, cap);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    l->head = (size_t)hn[0];
    l->n = (size_t)hn[1];
    size_t oldest = l->n ? (l->head + l->cap - (l->n - 1)) % l->cap : 0;
    for (size_t k = 1; k < l->n; k++)
        if (!(l->obs_t[(oldest + k - 1) % l->cap] < l->obs_t[(oldest + k) % l->cap]))
            return sp_snap_fail(r, "source %zu: TWAP observation times not increasing", i);
    l->cum = cl[0];
    l->last_p = cl[1];
    l->last_t = last_t;
    return SP_OK;
}

int sp_oracle_restore(void *self, struct sp_snapshot_reader *r)
{
    struct oracle *o = self;
    double d[2];
    int64_t t[5], gen;
    uint64_t n_updates;
    bool have, pending;
    size_t n_legs;
    sp_snap_get_array_n(r, SNAP_ORACLE_N);
    sp_snap_get_bool(r, &have);
    sp_snap_get_f64s(r, d, 2);
    sp_snap_get_i64s(r, t, 5);
    sp_snap_get_i64(r, &gen);
    sp_snap_get_bool(r, &pending);
    sp_snap_get_u64(r, &n_updates);
    if (sp_snap_get_array(r, &n_legs)) return sp_snap_error(r);
    if (n_legs != o->n_legs)
        return sp_snap_fail(r, "%zu sources in the snapshot, %zu in the scenario", n_legs,
                            o->n_legs);
    if (gen < -1 || gen > INT32_MAX) return sp_snap_fail(r, "generation %lld", (long long)gen);
    for (size_t i = 0; i < n_legs; i++)
        if (leg_restore(&o->legs[i], i, r)) return sp_snap_error(r);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    memset(o->rule_state, 0, sizeof o->rule_state);
    if (o->rule->restore) o->rule->restore(o->rule_state, o->cfg, r);
    else sp_snap_get_nil(r);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    o->have = have;
    o->delivered = d[0];
    o->max_dev = d[1];
    o->pub_t = t[0];
    o->read_t = t[1];
    o->delivered_t = t[2];
    o->last_poll = t[3];
    o->max_age = t[4];
    o->gen = (int)gen;
    o->trade_pending = pending;
    o->n_updates = n_updates;
    return SP_OK;
}

/* ---- consumers -------------------------------------------------------------- */

int sp_is_oracle(struct sp_sim *sim, sp_id id)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, id);
    return ops && ops->on_event == sp_oracle_on_event;
}

double sp_oracle_price(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_oracle(sim, id)) return NAN;
    const struct oracle *o = sp_sim_entity_state(sim, id);
    return o->delivered;
}

sp_time sp_oracle_updated_at(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_oracle(sim, id)) return -1;
    const struct oracle *o = sp_sim_entity_state(sim, id);
    return o->have ? o->pub_t : -1;
}

int sp_oracle_generation(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_oracle(sim, id)) return -1;
    const struct oracle *o = sp_sim_entity_state(sim, id);
    return o->have ? o->gen : -1;
}

sp_time sp_oracle_delivered_at(struct sp_sim *sim, sp_id id)
{
    if (!sp_is_oracle(sim, id)) return -1;
    const struct oracle *o = sp_sim_entity_state(sim, id);
    return o->have ? o->delivered_t : -1;
}

int sp_oracle_subscribe(struct sp_sim *sim, sp_id oracle, sp_id subscriber, uint16_t kind)
{
    if (!sp_is_oracle(sim, oracle) || subscriber >= sp_sim_entity_count(sim)) return SP_EINVAL;
    struct oracle *o = sp_sim_entity_state(sim, oracle);
    if (o->n_subs == o->cap_subs) {
        size_t cap = o->cap_subs ? 2 * o->cap_subs : 4;
        struct sub *p = realloc(o->subs, cap * sizeof *p);
        if (!p) return SP_ENOMEM;
        o->subs = p;
        o->cap_subs = cap;
    }
    o->subs[o->n_subs++] = (struct sub){ subscriber, kind };
    return SP_OK;
}
