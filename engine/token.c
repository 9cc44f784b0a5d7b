/*
 * token.c — the valuation graph (spiral/token.h): what each token is, what
 * it is worth now, and the LST redemption queue.
 *
 * Data: sim->tok_info[tok] (sim-internal.h) holds the static facts of every
 * token — kind, underlying, issuer, an lst's APR, initial rate and
 * redemption delay — set by sp_token_define once the entities exist (the
 * world builder does it between adding and initialising them), plus what is
 * learned later: the rate function an issuer registers, the reference
 * process that prices a base or stable token, the layer.  A token never
 * defined is a base token, so hand-built sims keep working.
 *
 * Values are a recursive walk down the graph:
 *   base         price of the reference process whose asset it is (NAN if none)
 *   stable       1, or its reference process if one prices it (a scripted depeg)
 *   lst, receipt, vault_share   rate · value(underlying)
 *   lp           (r0·v(base) + r1·v(quote)) / ledger supply of the lp token
 * Each token keeps (value, epoch) and (rate, epoch): a read is cached while
 * its epoch equals sim->value_epoch, which the engine bumps before every
 * dispatched event and sp_token_values_changed bumps within one.  So an
 * issuer's rate function runs at most once per event however many protocols
 * price its token.  `busy` guards the recursion: the scenario checker
 * rejects cycles, so meeting a busy token is a bug and reads NAN.
 *
 * References are matched to tokens by asset name once (tok_refs_ok), not per
 * read; adding or initialising an entity clears the flag.  Layers are
 * memoised once the graph can be read (an lp's layer needs its market's pair,
 * known after the market's init).
 *
 * Redemption queue: sp_lst_redeem burns the lst at once and queues (ready,
 * tok, holder, underlying amount).  The queue is an array sorted by ready
 * time, ties in insertion order (FIFO), consumed from `redeem_head`;
 * sim->redeem_next caches the head's ready time (SP_TIME_MAX when empty) so
 * the dispatch loop pays one comparison per event.  sp_lst_settle mints each
 * due entry with the clock at its ready time.  Between the burn and the mint
 * the amount is in no balance, so the ledger's per-token conservation holds
 * at every instant.  No mutable globals: everything hangs off the sim.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "sim-internal.h"
#include "amm.h"
#include "reference.h"

const char *const sp_token_kind_names[] = {
    "base", "stable", "lst", "receipt", "vault_share", "lp", NULL
};

int sp_token_info_alloc(struct sp_sim *sim)
{
    free(sim->tok_info);
    sim->tok_info = calloc(sim->n_tokens ? sim->n_tokens : 1, sizeof *sim->tok_info);
    if (!sim->tok_info) return SP_ENOMEM;
    for (size_t i = 0; i < sim->n_tokens; i++) {
        struct sp_token_info *t = &sim->tok_info[i];
        t->kind = SP_TOKEN_BASE;
        t->underlying = -1;
        t->issuer = SP_ID_NONE;
        t->rate0 = 1.0;
        t->reference = SP_ID_NONE;
        t->layer = -1;
    }
    sim->tok_refs_ok = false;
    return SP_OK;
}

static struct sp_token_info *info(const struct sp_sim *sim, sp_token tok)
{
    if (tok < 0 || (size_t)tok >= sim->n_tokens || !sim->tok_info) return NULL;
    return &sim->tok_info[tok];
}

static int has_underlying(int kind)
{
    return kind == SP_TOKEN_LST || kind == SP_TOKEN_RECEIPT || kind == SP_TOKEN_VAULT_SHARE;
}

int sp_token_define(struct sp_sim *sim, sp_token tok, const struct sp_token_def *def)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t || !def || def->kind < 0 || def->kind >= SP_TOKEN_KIND_COUNT) return SP_EINVAL;
    if (has_underlying(def->kind) ? !info(sim, def->underlying) || def->underlying == tok
                                  : def->underlying != -1)
        return SP_EINVAL;
    bool issued = def->kind == SP_TOKEN_RECEIPT || def->kind == SP_TOKEN_VAULT_SHARE ||
                  def->kind == SP_TOKEN_LP;
    if (issued ? def->issuer >= sim->n_ents : def->issuer != SP_ID_NONE) return SP_EINVAL;
    if (!isfinite(def->apr) || !isfinite(def->rate) || def->redemption_delay < 0)
        return SP_EINVAL;
    t->kind = def->kind;
    t->underlying = def->underlying;
    t->issuer = def->issuer;
    t->apr = def->apr;
    t->rate0 = def->rate > 0 ? def->rate : 1.0;
    t->redemption_delay = def->redemption_delay;
    t->rate_fn = NULL;
    t->rate_self = NULL;
    for (size_t i = 0; i < sim->n_tokens; i++) sim->tok_info[i].layer = -1;
    sim->tok_refs_ok = false;
    sim->value_epoch++;
    return SP_OK;
}

/* ---- static facts ----------------------------------------------------------- */

int sp_token_kind(const struct sp_sim *sim, sp_token tok)
{
    const struct sp_token_info *t = info(sim, tok);
    return t ? t->kind : -1;
}

sp_token sp_token_underlying(const struct sp_sim *sim, sp_token tok)
{
    const struct sp_token_info *t = info(sim, tok);
    return t ? t->underlying : -1;
}

sp_id sp_token_issuer(const struct sp_sim *sim, sp_token tok)
{
    const struct sp_token_info *t = info(sim, tok);
    return t ? t->issuer : SP_ID_NONE;
}

double sp_token_apr(const struct sp_sim *sim, sp_token tok)
{
    const struct sp_token_info *t = info(sim, tok);
    return t && t->kind == SP_TOKEN_LST ? t->apr : 0.0;
}

sp_time sp_token_redemption_delay(const struct sp_sim *sim, sp_token tok)
{
    const struct sp_token_info *t = info(sim, tok);
    return t && t->kind == SP_TOKEN_LST ? t->redemption_delay : 0;
}

sp_token sp_token_find_issued(const struct sp_sim *sim, sp_id issuer, sp_token underlying)
{
    if (issuer == SP_ID_NONE || !sim->tok_info) return -1;
    for (size_t i = 0; i < sim->n_tokens; i++) {
        const struct sp_token_info *t = &sim->tok_info[i];
        if (t->issuer == issuer && (underlying < 0 || t->underlying == underlying))
            return (sp_token)i;
    }
    return -1;
}

/* An lp's two underlyings, from its market's pair; false while the market
 * is not initialised (its pair is not known yet). */
static bool lp_pair(const struct sp_sim *sim, const struct sp_token_info *t, sp_token pair[2])
{
    if (t->issuer >= sim->n_ents || !sim->ents[t->issuer].initialised) return false;
    const struct sp_market_ops *m = sp_market_ops_of(sim, t->issuer);
    if (!m || !m->pair) return false;
    m->pair(sim->ents[t->issuer].state, &pair[0], &pair[1]);
    return info(sim, pair[0]) && info(sim, pair[1]);
}

/* Layer with memoisation; *known is cleared when a part of the graph could
 * not be read yet (then nothing above it is memoised). */
static int layer_of(const struct sp_sim *sim, sp_token tok, int depth, bool *known)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t) return -1;
    if (t->layer >= 0) return t->layer;
    if (depth > (int)sim->n_tokens) { *known = false; return 0; }   /* a cycle: a bug */
    int layer = 0;
    if (has_underlying(t->kind)) {
        layer = 1 + layer_of(sim, t->underlying, depth + 1, known);
    } else if (t->kind == SP_TOKEN_LP) {
        sp_token pair[2];
        if (lp_pair(sim, t, pair)) {
            int a = layer_of(sim, pair[0], depth + 1, known);
            int b = layer_of(sim, pair[1], depth + 1, known);
            layer = 1 + (a > b ? a : b);
        } else {
            *known = false;
            layer = 1;
        }
    }
    if (*known) t->layer = layer;
    return layer;
}

int sp_token_layer(const struct sp_sim *sim, sp_token tok)
{
    bool known = true;
    return layer_of(sim, tok, 0, &known);
}

int sp_token_max_layer(const struct sp_sim *sim)
{
    int max = 0;
    for (size_t i = 0; i < sim->n_tokens; i++) {
        int l = sp_token_layer(sim, (sp_token)i);
        if (l > max) max = l;
    }
    return max;
}

/* ---- rates and values -------------------------------------------------------- */

int sp_token_set_rate_fn(struct sp_sim *sim, sp_token tok, sp_id issuer, sp_token_rate_fn fn,
                         void *self)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t || !fn || (t->kind != SP_TOKEN_RECEIPT && t->kind != SP_TOKEN_VAULT_SHARE) ||
        t->issuer != issuer)
        return SP_EINVAL;
    t->rate_fn = fn;
    t->rate_self = self;
    sim->value_epoch++;
    return SP_OK;
}

void sp_token_values_changed(struct sp_sim *sim) { sim->value_epoch++; }

double sp_token_rate(struct sp_sim *sim, sp_token tok)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t) return NAN;
    switch (t->kind) {
    case SP_TOKEN_BASE:
    case SP_TOKEN_STABLE:
        return 1.0;
    case SP_TOKEN_LP:
        return NAN;
    default:
        break;
    }
    if (t->rate_epoch == sim->value_epoch) return t->rate;
    double r;
    if (t->kind == SP_TOKEN_LST) {
        r = t->rate0 * exp(t->apr * ((double)sim->now / (double)SP_YEAR));
    } else if (t->rate_fn) {
        r = t->rate_fn(t->rate_self, sim, tok);
        if (!(r >= 0) || !isfinite(r)) {
            sp_sim_fail(sim, SP_EMODEL, "the rate of %s from %s is %g (must be finite and >= 0)",
                        sim->tokens[tok], sp_sim_entity_name(sim, t->issuer), r);
            r = NAN;
        }
    } else {
        r = 1.0;
    }
    t->rate = r;
    t->rate_epoch = sim->value_epoch;
    return r;
}

/* Match base and stable tokens to the reference processes pricing them (the
 * first initialised one whose asset is the token's name). */
static void resolve_references(struct sp_sim *sim)
{
    bool complete = true;
    for (size_t i = 0; i < sim->n_tokens; i++) sim->tok_info[i].reference = SP_ID_NONE;
    for (size_t e = 0; e < sim->n_ents; e++) {
        const char *kind = sim->ents[e].ops->kind;
        if (!kind || strcmp(kind, "reference") != 0) continue;
        if (!sim->ents[e].initialised) { complete = false; continue; }
        const char *asset = sp_reference_asset(sim, (sp_id)e);
        sp_token tok = asset ? sp_token_find(sim, asset) : -1;
        if (tok >= 0 && sim->tok_info[tok].reference == SP_ID_NONE)
            sim->tok_info[tok].reference = (sp_id)e;
    }
    sim->tok_refs_ok = complete;
}

static double reference_value(struct sp_sim *sim, const struct sp_token_info *t)
{
    return t->reference == SP_ID_NONE ? NAN : sp_reference_price(sim, t->reference);
}

static double compute_value(struct sp_sim *sim, sp_token tok, struct sp_token_info *t)
{
    switch (t->kind) {
    case SP_TOKEN_BASE:
        return reference_value(sim, t);
    case SP_TOKEN_STABLE:
        return t->reference == SP_ID_NONE ? 1.0 : reference_value(sim, t);
    case SP_TOKEN_LST:
    case SP_TOKEN_RECEIPT:
    case SP_TOKEN_VAULT_SHARE:
        return sp_token_rate(sim, tok) * sp_token_value(sim, t->underlying);
    case SP_TOKEN_LP: {
        sp_token pair[2];
        double r0, r1, supply = sp_supply(sim, tok);
        if (!lp_pair(sim, t, pair) || sp_amm_reserves(sim, t->issuer, &r0, &r1) ||
            !(supply > 0))
            return NAN;
        return (r0 * sp_token_value(sim, pair[0]) + r1 * sp_token_value(sim, pair[1])) / supply;
    }
    default:
        return NAN;
    }
}

double sp_token_value(struct sp_sim *sim, sp_token tok)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t) return NAN;
    if (t->value_epoch == sim->value_epoch) return t->value;
    if (t->busy) return NAN;              /* a cycle: the checker rejects these */
    if (!sim->tok_refs_ok) resolve_references(sim);
    t->busy = true;
    double v = compute_value(sim, tok, t);
    t->busy = false;
    t->value = v;
    t->value_epoch = sim->value_epoch;
    return v;
}

/* ---- LST redemption queue ---------------------------------------------------- */

int sp_lst_redeem(struct sp_sim *sim, sp_token tok, sp_id holder, double amount,
                  sp_time *ready_at)
{
    struct sp_token_info *t = info(sim, tok);
    if (!t || t->kind != SP_TOKEN_LST || holder >= sim->n_ents || !(amount > 0) ||
        !isfinite(amount))
        return SP_EINVAL;
    if (amount > sp_balance(sim, holder, tok)) return SP_EMODEL;
    double rate = sp_token_rate(sim, tok);
    sp_time ready = sim->now + t->redemption_delay;
    /* Make room first, so a failed allocation moves nothing. */
    if (sim->redeem_head > 0 && sim->n_redeem == sim->cap_redeem) {
        memmove(sim->redeem, sim->redeem + sim->redeem_head,
                (sim->n_redeem - sim->redeem_head) * sizeof *sim->redeem);
        sim->n_redeem -= sim->redeem_head;
        sim->redeem_head = 0;
    }
    if (sim->n_redeem == sim->cap_redeem) {
        size_t cap = sim->cap_redeem ? 2 * sim->cap_redeem : 16;
        struct sp_redemption *q = realloc(sim->redeem, cap * sizeof *q);
        if (!q) return SP_ENOMEM;
        sim->redeem = q;
        sim->cap_redeem = cap;
    }
    int rc = sp_burn(sim, tok, holder, amount);
    if (rc) return rc;
    /* After every entry ready at or before `ready`: FIFO among equal times. */
    size_t at = sim->n_redeem;
    while (at > sim->redeem_head && sim->redeem[at - 1].ready > ready) at--;
    memmove(sim->redeem + at + 1, sim->redeem + at, (sim->n_redeem - at) * sizeof *sim->redeem);
    sim->redeem[at] = (struct sp_redemption){ ready, tok, holder, amount * rate };
    sim->n_redeem++;
    sim->redeem_next = sim->redeem[sim->redeem_head].ready;
    if (ready_at) *ready_at = ready;
    return SP_OK;
}

void sp_lst_settle(struct sp_sim *sim, sp_time until)
{
    if (sim->redeem_next > until) return;
    while (sim->redeem_head < sim->n_redeem && sim->redeem[sim->redeem_head].ready <= until) {
        struct sp_redemption r = sim->redeem[sim->redeem_head++];
        if (r.ready > sim->now) sim->now = r.ready;
        int rc = sp_mint(sim, sim->tok_info[r.tok].underlying, r.holder, r.amount);
        if (rc) sp_sim_fail(sim, rc, "cannot settle a redemption of %s", sim->tokens[r.tok]);
    }
    if (sim->redeem_head == sim->n_redeem) sim->redeem_head = sim->n_redeem = 0;
    sim->redeem_next = sim->redeem_head < sim->n_redeem ? sim->redeem[sim->redeem_head].ready
                                                        : SP_TIME_MAX;
    sim->value_epoch++;
}

double sp_lst_pending(const struct sp_sim *sim, sp_token tok, sp_id holder)
{
    double sum = 0.0;
    for (size_t i = sim->redeem_head; i < sim->n_redeem; i++)
        if (sim->redeem[i].tok == tok && sim->redeem[i].holder == holder)
            sum += sim->redeem[i].amount;
    return sum;
}

double sp_lst_pending_total(const struct sp_sim *sim, sp_token tok)
{
    double sum = 0.0;
    for (size_t i = sim->redeem_head; i < sim->n_redeem; i++)
        if (sim->redeem[i].tok == tok) sum += sim->redeem[i].amount;
    return sum;
}
