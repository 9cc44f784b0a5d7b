/*
 * lending.c — what every lending protocol does, whichever its type: the
 * positions, the liquidation-price index, interest accrual, bad debt and
 * the API of lending.h.  The types (lending_pool.c, lending_cdp.c) only
 * turn their config into collateral assets and debt slots
 * (lending-internal.h explains the two).
 *
 * Prices.  A collateral asset's price is its oracle's delivered price
 * (times its `quoted_in` oracle's); a debt slot's is its asset's oracle (a
 * cdp's stablecoin: `stable_oracle`, else 1).  The protocol subscribes to
 * every oracle it reads; at each delivery it accrues interest to now,
 * re-reads all prices and pushes them to the indexes (lend_refresh).  API
 * calls refresh first when time has moved since the last refresh, so an
 * action sees debt accrued to the instant it happens.
 *
 * Accrual.  Debt slot j has an index I_j (Aave's variable borrow index,
 * Maker's `rate`): a position owes scaled_j·I_j.  Over dt at APR r the
 * index grows by exp(r·dt/yr) — continuous compounding.  Of the interest, a
 * pool keeps reserve_factor as reserve and the rest accrues to suppliers
 * through the receipt's exchange rate
 *
 *     rate_receipt = (cash + Σ debt − reserve) / receipt supply;
 *
 * a cdp adds all of it to its surplus buffer.  Accrual happens at oracle
 * deliveries, at every `accrue_every` tick, and before any action.
 *
 * Finding liquidatable positions without scanning.  The index
 * (liq_index.h) wants one debt number per position and a price per
 * collateral asset.  A position owing ONE debt slot j sits in index j,
 * with debt = its scaled debt and asset prices expressed relative to the
 * slot: q_a = p_a·(1 − haircut_a) / (p_j·I_j), so that
 *
 *     Σ c_a·q_a·LT_a < scaled_j   ⇔   Σ c_a·p_a·(1−h_a)·LT_a < scaled_j·I_j·p_j   ⇔   HF < 1.
 *
 * A move of a collateral price, of the debt price, or of the index (accrual)
 * is a set_price per asset of that index, which touches only the positions
 * it crosses.  Positions owing SEVERAL slots (rare: Aave allows it, loopers
 * do not do it) sit in one more index priced in the numeraire with their
 * debt value as the debt; a move of any debt price or index re-inserts
 * them, so its cost is proportional to their number.  Positions without
 * debt are in no index (never liquidatable).
 *
 * Bad debt.  sp_lending_write_off zeroes a position's debt: the protocol
 * reserve (cdp: surplus) absorbs what it can, and the rest — a pool's
 * supplier haircut — shows up as a lower receipt exchange rate, hence a
 * lower value of every position elsewhere that posts that receipt token
 * (sp_token_values_changed tells the valuation graph at once).  Debt taken
 * into a liquidation auction (market/liquidation.c) leaves the position for
 * the slot's `auction` claim, which the receipt exchange rate counts like
 * debt until the auction recovers it or books the rest as bad debt.
 *
 * Cascade generations.  A refresh reads the generation of the oracles that
 * delivered at that instant (the highest; 0 if none); a position crossing
 * to HF < 1 during it records it (pgen, one byte per position); crossings
 * from actions (reindex) record 0.  The index callback then tells
 * liquidation.c (liq_crossed), which only queues work.
 *
 * Snapshot.  The payload is what runs change: per collateral asset price,
 * total, auction and treasury; per debt slot price, index, scaled total,
 * cash, reserve, auction, bad debt and socialised; surplus, bad-debt value,
 * accrual and refresh times, the liquidatable counts; the positions as
 * struct-of-arrays bins (owners as 4-byte ids, collateral, scaled debt,
 * group and generation bytes: about 40 bytes for one collateral and one
 * debt); the multi group in its order; the subscribers; each index
 * (liq_index.h: heaps and liquidatable list verbatim, amounts taken from
 * the positions, so crossings are reported in the same order after a
 * restore); then liquidation.c's part (auctions, counters) and
 * lending_record.c's (the summary peak).  Restore rebuilds the owner map
 * and checks every count, id, amount and the index against the positions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "lending-internal.h"
#include "oracle.h"

extern const struct sp_module_ops sp_protocol_pool_ops;
extern const struct sp_module_ops sp_protocol_cdp_ops;

struct lending *lend_of(const struct sp_sim *sim, sp_id proto)
{
    const struct sp_module_ops *ops = sp_sim_entity_ops(sim, proto);
    if (ops != &sp_protocol_pool_ops && ops != &sp_protocol_cdp_ops) return NULL;
    return sp_sim_entity_state((struct sp_sim *)sim, proto);
}

bool sp_lending_is(const struct sp_sim *sim, sp_id proto) { return lend_of(sim, proto) != NULL; }

/* ---- prices, rates, accrual ------------------------------------------------ */

static double read_oracle(struct sp_sim *sim, sp_id o, sp_id q)
{
    if (o == SP_ID_NONE) return 1.0;
    double p = sp_oracle_price(sim, o);
    if (q != SP_ID_NONE) p *= sp_oracle_price(sim, q);
    return p;
}

double lend_utilization(const struct lending *L, size_t j)
{
    const struct lend_debt *d = &L->debt[j];
    double debt = d->scaled_total * d->index;
    double tot = d->cash + debt;
    return tot > 0 ? debt / tot : 0.0;
}

double lend_borrow_rate(const struct lending *L, size_t j)
{
    const struct lend_debt *d = &L->debt[j];
    if (L->kind == LEND_CDP) return d->fee;
    double u = lend_utilization(L, j);
    if (u <= d->optimal) return d->base_rate + (d->optimal > 0 ? d->slope1 * u / d->optimal : 0);
    return d->base_rate + d->slope1 + d->slope2 * (u - d->optimal) / (1.0 - d->optimal);
}

/* Index of slot j projected to `now` without changing state. */
static double index_at(const struct lending *L, size_t j, sp_time now)
{
    const struct lend_debt *d = &L->debt[j];
    if (now <= L->last_accrue) return d->index;
    double dt = (double)(now - L->last_accrue) / (double)SP_YEAR;
    return d->index * exp(lend_borrow_rate(L, j) * dt);
}

static double exchange_rate_at(const struct lending *L, size_t j, sp_time now)
{
    const struct lend_debt *d = &L->debt[j];
    if (d->receipt < 0) return 1.0;
    double supply = sp_supply(L->sim, d->receipt);
    if (!(supply > 0)) return 1.0;
    double I = index_at(L, j, now);
    double interest = d->scaled_total * (I - d->index);
    double reserve = d->reserve + interest * d->reserve_factor;
    double r = (d->cash + d->scaled_total * I + d->auction - reserve) / supply;
    return r > 0 ? r : 0.0;
}

double lend_exchange_rate(const struct lending *L, size_t j)
{
    return exchange_rate_at(L, j, sp_sim_now(L->sim));
}

static double receipt_rate_fn(void *self, struct sp_sim *sim, sp_token tok)
{
    struct lending *L = self;
    for (size_t j = 0; j < L->nd; j++)
        if (L->debt[j].receipt == tok) return exchange_rate_at(L, j, sp_sim_now(sim));
    return 1.0;
}

static void accrue(struct lending *L, sp_time now)
{
    if (now <= L->last_accrue) return;
    double dt = (double)(now - L->last_accrue) / (double)SP_YEAR;
    for (size_t j = 0; j < L->nd; j++) {
        struct lend_debt *d = &L->debt[j];
        double g = exp(lend_borrow_rate(L, j) * dt);
        double interest = d->scaled_total * d->index * (g - 1.0);
        d->index *= g;
        if (L->kind == LEND_POOL) d->reserve += interest * d->reserve_factor;
        else L->surplus += interest;
    }
    L->last_accrue = now;
}

/* ---- the index --------------------------------------------------------------- */

static void notify(struct lending *L, sp_id owner, int liquidatable)
{
    for (size_t s = 0; s < L->n_subs; s++) {
        struct sp_event *ev = sp_sim_schedule(L->sim, sp_sim_now(L->sim), SP_PRIO_AGENT,
                                              L->subs[s].who, L->subs[s].kind);
        if (!ev) { sp_sim_fail(L->sim, SP_ENOMEM, "out of memory"); return; }
        ev->data.u[0] = owner;
        ev->data.u[1] = L->id;
        ev->data.i[2] = liquidatable;
    }
}

static void on_change(void *ctx, uint32_t slot, int liquidatable)
{
    struct lending *L = ctx;
    if (liquidatable) {
        L->n_liquidatable++;
        if (L->n_liquidatable > L->max_liquidatable) L->max_liquidatable = L->n_liquidatable;
        L->pgen[slot] = (uint8_t)(L->cur_gen > 255 ? 255 : L->cur_gen);
    } else {
        L->n_liquidatable--;
    }
    notify(L, L->owner[slot], liquidatable);
    if (liquidatable) liq_crossed(L, slot);
}

/* Debt value of a multi-group position (numeraire), fixed summation order. */
static double multi_debt(const struct lending *L, size_t slot)
{
    double D = 0;
    for (size_t j = 0; j < L->nd; j++)
        D += L->pd[slot * L->nd + j] * L->debt[j].index * L->debt[j].price;
    return D;
}

static double index_price(const struct lending *L, size_t g, size_t a)
{
    const struct lend_coll *c = &L->coll[a];
    double p = c->price * (1.0 - c->haircut);
    if (!(p >= 0) || !isfinite(p)) p = 0;
    if (g == L->nd) return p;
    double den = L->debt[g].price * L->debt[g].index;
    if (!(den > 0) || !isfinite(den)) return 0;     /* debt unpriced: no borrowing yet */
    return p / den;
}

static int liq_state(const struct lending *L, size_t slot)
{
    uint8_t g = L->group[slot];
    if (g == LEND_GROUP_NONE) return 0;
    size_t ix = g == LEND_GROUP_MULTI ? L->nd : (size_t)g - 1;
    int r = sp_liq_index_is_liquidatable(L->ix[ix], (uint32_t)slot);
    return r == 1;
}

static void multi_remove(struct lending *L, uint32_t slot)
{
    for (size_t i = 0; i < L->n_multi; i++)
        if (L->multi[i] == slot) { L->multi[i] = L->multi[--L->n_multi]; return; }
}

/* Re-file `slot` after its amounts changed.  A state change here is
 * counted and notified like one from a price move. */
static int reindex(struct lending *L, size_t slot)
{
    int before = liq_state(L, slot);
    uint8_t old = L->group[slot];
    size_t owing = 0, which = 0;
    for (size_t j = 0; j < L->nd; j++)
        if (L->pd[slot * L->nd + j] > 0) { owing++; which = j; }
    uint8_t g = owing == 0 ? LEND_GROUP_NONE
              : owing == 1 ? (uint8_t)(which + 1) : LEND_GROUP_MULTI;
    if (old != LEND_GROUP_NONE && old != g) {
        size_t ix = old == LEND_GROUP_MULTI ? L->nd : (size_t)old - 1;
        sp_liq_index_remove(L->ix[ix], (uint32_t)slot);
        if (old == LEND_GROUP_MULTI) multi_remove(L, (uint32_t)slot);
    }
    int after = 0, rc = SP_OK;
    if (g != LEND_GROUP_NONE) {
        size_t ix = g == LEND_GROUP_MULTI ? L->nd : (size_t)g - 1;
        double D = g == LEND_GROUP_MULTI ? multi_debt(L, slot) : L->pd[slot * L->nd + which];
        rc = sp_liq_index_upsert(L->ix[ix], (uint32_t)slot, &L->pc[slot * L->na], D, &after);
        if (rc) { L->group[slot] = LEND_GROUP_NONE; }
        if (!rc && g == LEND_GROUP_MULTI && old != LEND_GROUP_MULTI) {
            if (L->n_multi == L->cap_multi) {
                size_t cap = L->cap_multi ? 2 * L->cap_multi : 16;
                uint32_t *m = realloc(L->multi, cap * sizeof *m);
                if (!m) return SP_ENOMEM;
                L->multi = m;
                L->cap_multi = cap;
            }
            L->multi[L->n_multi++] = (uint32_t)slot;
        }
    }
    if (!rc) L->group[slot] = g;
    if (rc) after = 0;
    if (after != before) on_change(L, (uint32_t)slot, after);
    return rc;
}

/* The cascade generation of the prices read now: the highest generation
 * among the protocol's oracles that delivered at this instant, 0 if none
 * did (a crossing from accrual alone is exogenous). */
static int delivery_generation(const struct lending *L, sp_time now)
{
    int g = 0;
    for (size_t i = 0; i < L->n_oracles; i++) {
        if (sp_oracle_delivered_at(L->sim, L->oracles[i]) != now) continue;
        int x = sp_oracle_generation(L->sim, L->oracles[i]);
        if (x > g) g = x;
    }
    return g;
}

void lend_refresh(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    sp_time now = sp_sim_now(sim);
    bool accrued = now > L->last_accrue;
    L->cur_gen = delivery_generation(L, now);
    accrue(L, now);
    bool debt_moved = accrued;
    for (size_t a = 0; a < L->na; a++)
        L->coll[a].price = read_oracle(sim, L->coll[a].oracle, L->coll[a].quoted_in);
    for (size_t j = 0; j < L->nd; j++) {
        double p = read_oracle(sim, L->debt[j].oracle, L->debt[j].quoted_in);
        if (!(p == L->debt[j].price)) debt_moved = true;
        L->debt[j].price = p;
    }
    for (size_t g = 0; g <= L->nd; g++) {
        for (size_t a = 0; a < L->na; a++) {
            double q = index_price(L, g, a);
            if (q != sp_liq_index_price(L->ix[g], (uint32_t)a))
                sp_liq_index_set_price(L->ix[g], (uint32_t)a, q, on_change, L);
        }
    }
    if (debt_moved)
        for (size_t i = 0; i < L->n_multi; i++) reindex(L, L->multi[i]);
    L->cur_gen = 0;
    L->refreshed_at = now;
    L->fresh = true;
}

static void refresh_if_stale(struct lending *L)
{
    if (!L->fresh || L->refreshed_at != sp_sim_now(L->sim)) lend_refresh(L);
}

/* ---- positions ------------------------------------------------------------- */

static long slot_find(const struct lending *L, sp_id owner)
{
    if (owner >= L->n_slot_of || !L->slot_of[owner]) return -1;
    return (long)L->slot_of[owner] - 1;
}

static long slot_get(struct lending *L, sp_id owner)
{
    long s = slot_find(L, owner);
    if (s >= 0) return s;
    if (owner >= sp_sim_entity_count(L->sim)) return -1;
    if (owner >= L->n_slot_of) {
        size_t n = sp_sim_entity_count(L->sim);
        uint32_t *p = realloc(L->slot_of, n * sizeof *p);
        if (!p) return -1;
        memset(p + L->n_slot_of, 0, (n - L->n_slot_of) * sizeof *p);
        L->slot_of = p;
        L->n_slot_of = n;
    }
    if (L->n_pos == L->cap_pos) {
        size_t cap = L->cap_pos ? 2 * L->cap_pos : 64;
        sp_id *o = realloc(L->owner, cap * sizeof *o);
        if (o) L->owner = o;
        double *pc = realloc(L->pc, cap * L->na * sizeof *pc);
        if (pc) L->pc = pc;
        double *pd = realloc(L->pd, cap * L->nd * sizeof *pd);
        if (pd) L->pd = pd;
        uint8_t *g = realloc(L->group, cap * sizeof *g);
        if (g) L->group = g;
        uint8_t *pg = realloc(L->pgen, cap * sizeof *pg);
        if (pg) L->pgen = pg;
        if (!o || !pc || !pd || !g || !pg) return -1;
        L->cap_pos = cap;
    }
    size_t slot = L->n_pos++;
    L->owner[slot] = owner;
    memset(&L->pc[slot * L->na], 0, L->na * sizeof *L->pc);
    memset(&L->pd[slot * L->nd], 0, L->nd * sizeof *L->pd);
    L->group[slot] = LEND_GROUP_NONE;
    L->pgen[slot] = 0;
    L->slot_of[owner] = (uint32_t)slot + 1;
    return (long)slot;
}

void lend_position_state(const struct lending *L, size_t slot, struct sp_lending_position *out)
{
    double cv = 0, w = 0, bp = 0, dv = 0;
    for (size_t a = 0; a < L->na; a++) {
        const struct lend_coll *c = &L->coll[a];
        double amt = L->pc[slot * L->na + a];
        if (amt == 0) continue;
        double v = amt * c->price;
        double hv = v * (1.0 - c->haircut);
        cv += v;
        w += hv * c->lt;
        bp += hv * c->ltv;
    }
    for (size_t j = 0; j < L->nd; j++)
        dv += L->pd[slot * L->nd + j] * L->debt[j].index * L->debt[j].price;
    out->collateral_value = cv;
    out->weighted_value = w;
    out->borrow_power = bp;
    out->debt_value = dv;
    out->hf = dv > 0 ? w / dv : INFINITY;
    out->liquidatable = liq_state(L, slot);
}

static int coll_index(const struct lending *L, sp_token tok)
{
    for (size_t a = 0; a < L->na; a++) if (L->coll[a].token == tok) return (int)a;
    return -1;
}

/* The debt slot an owner's borrow/repay of `tok` goes to, or -1. */
static int debt_slot(const struct lending *L, long slot, sp_token tok)
{
    if (L->kind == LEND_POOL) {
        for (size_t j = 0; j < L->nd; j++) if (L->debt[j].token == tok) return (int)j;
        return -1;
    }
    if (tok != L->stable || slot < 0) return -1;
    for (size_t j = 0; j < L->nd; j++)          /* the ilk it owes, else the one it posts */
        if (L->pd[(size_t)slot * L->nd + j] > 0) return (int)j;
    for (size_t a = 0; a < L->na; a++)
        if (L->pc[(size_t)slot * L->na + a] > 0) return (int)a;
    return -1;
}

static bool bad_amount(double x) { return !(x >= 0) || !isfinite(x); }

/* ---- the API ------------------------------------------------------------------ */

size_t sp_lending_asset_count(const struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    return L ? L->cfg->n_assets : 0;
}

int sp_lending_asset_info(const struct sp_sim *sim, sp_id proto, size_t i,
                          struct sp_lending_asset *out)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || i >= L->cfg->n_assets) return SP_EINVAL;
    memset(out, 0, sizeof *out);
    out->token = sp_token_find(sim, L->cfg->assets[i].token);
    out->receipt = -1;
    for (size_t a = 0; a < L->na; a++)
        if (L->coll[a].cfg_index == (int)i) {
            const struct lend_coll *c = &L->coll[a];
            out->collateral = true;
            out->ltv = c->ltv; out->lt = c->lt; out->bonus = c->bonus;
            out->haircut = c->haircut; out->supply_cap = c->cap;
        }
    for (size_t j = 0; j < L->nd; j++)
        if (L->debt[j].cfg_index == (int)i) {
            out->borrowable = L->kind == LEND_POOL;
            out->receipt = L->debt[j].receipt;
            out->borrow_cap = L->debt[j].cap;
        }
    return SP_OK;
}

int sp_lending_asset_index(const struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return -1;
    for (size_t i = 0; i < L->cfg->n_assets; i++)
        if (sp_token_find(sim, L->cfg->assets[i].token) == tok) return (int)i;
    return -1;
}

double sp_lending_price(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return NAN;
    refresh_if_stale(L);
    int a = coll_index(L, tok);
    if (a >= 0) return L->coll[a].price;
    for (size_t j = 0; j < L->nd; j++) if (L->debt[j].token == tok) return L->debt[j].price;
    return NAN;
}

static int pool_slot(struct lending *L, sp_token tok)
{
    if (L->kind != LEND_POOL) return -1;
    for (size_t j = 0; j < L->nd; j++) if (L->debt[j].token == tok) return (int)j;
    return -1;
}

double sp_lending_cash(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    int j = L ? pool_slot(L, tok) : -1;
    return j < 0 ? 0.0 : L->debt[j].cash;
}

double sp_lending_total_debt(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return 0.0;
    refresh_if_stale(L);
    double D = 0;
    for (size_t j = 0; j < L->nd; j++)
        if (L->debt[j].token == tok) D += L->debt[j].scaled_total * L->debt[j].index;
    return D;
}

double sp_lending_borrow_rate(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    int j = L ? pool_slot(L, tok) : -1;
    if (j < 0) return NAN;
    refresh_if_stale(L);
    return lend_borrow_rate(L, (size_t)j);
}

double sp_lending_exchange_rate(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    int j = L ? pool_slot(L, tok) : -1;
    return j < 0 ? NAN : lend_exchange_rate(L, (size_t)j);
}

int sp_lending_supply(struct sp_sim *sim, sp_id proto, sp_id agent, sp_token tok,
                      double amount, double *receipts)
{
    struct lending *L = lend_of(sim, proto);
    int j = L ? pool_slot(L, tok) : -1;
    if (j < 0 || bad_amount(amount)) return SP_EINVAL;
    refresh_if_stale(L);
    struct lend_debt *d = &L->debt[j];
    if (d->receipt < 0) return SP_EINVAL;
    double er = lend_exchange_rate(L, (size_t)j);
    if (!(er > 0)) return SP_ESTATE;              /* wiped out: no new supply */
    double r = amount / er;
    int rc = sp_transfer(sim, tok, agent, proto, amount);
    if (rc) return rc;
    d->cash += amount;
    if ((rc = sp_mint(sim, d->receipt, agent, r))) return rc;
    if (receipts) *receipts = r;
    sp_token_values_changed(sim);
    return SP_OK;
}

int sp_lending_withdraw(struct sp_sim *sim, sp_id proto, sp_id agent, sp_token tok,
                        double receipts, double *amount)
{
    struct lending *L = lend_of(sim, proto);
    int j = L ? pool_slot(L, tok) : -1;
    if (j < 0 || bad_amount(receipts)) return SP_EINVAL;
    refresh_if_stale(L);
    struct lend_debt *d = &L->debt[j];
    if (d->receipt < 0) return SP_EINVAL;
    if (receipts > sp_balance(sim, agent, d->receipt) * (1 + SP_LEDGER_DUST)) return SP_ERANGE;
    double out = receipts * lend_exchange_rate(L, (size_t)j);
    if (out > d->cash) return SP_ERANGE;
    int rc = sp_burn(sim, d->receipt, agent, receipts);
    if (rc) return rc;
    d->cash -= out;
    if ((rc = sp_transfer(sim, tok, proto, agent, out))) return rc;
    if (amount) *amount = out;
    sp_token_values_changed(sim);
    return SP_OK;
}

int sp_lending_deposit(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                       double amount)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || bad_amount(amount)) return SP_EINVAL;
    int a = coll_index(L, tok);
    if (a < 0) return SP_EINVAL;
    refresh_if_stale(L);
    struct lend_coll *c = &L->coll[a];
    if (c->cap > 0 && c->total + amount > c->cap * (1 + 1e-12)) return SP_ERANGE;
    long s = slot_find(L, owner);
    if (L->kind == LEND_CDP && s >= 0)           /* a Maker vault holds one ilk */
        for (size_t b = 0; b < L->na; b++)
            if ((int)b != a && (L->pc[(size_t)s * L->na + b] > 0 || L->pd[(size_t)s * L->nd + b] > 0))
                return SP_EINVAL;
    if (amount > sp_balance(sim, owner, tok) * (1 + SP_LEDGER_DUST)) return SP_ERANGE;
    if ((s = slot_get(L, owner)) < 0) return owner >= sp_sim_entity_count(sim) ? SP_EINVAL : SP_ENOMEM;
    int rc = sp_transfer(sim, tok, owner, proto, amount);
    if (rc) return rc;
    L->pc[(size_t)s * L->na + a] += amount;
    c->total += amount;
    return reindex(L, (size_t)s);
}

int sp_lending_withdraw_collateral(struct sp_sim *sim, sp_id proto, sp_id owner,
                                   sp_token tok, double amount)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || bad_amount(amount)) return SP_EINVAL;
    int a = coll_index(L, tok);
    if (a < 0) return SP_EINVAL;
    long s = slot_find(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    refresh_if_stale(L);
    double *c = &L->pc[(size_t)s * L->na + a];
    if (amount > *c * (1 + 1e-12)) return SP_ERANGE;
    if (amount > *c) amount = *c;
    double keep = *c;
    *c -= amount;
    struct sp_lending_position st;
    lend_position_state(L, (size_t)s, &st);
    if (st.debt_value > 0 && !(st.borrow_power >= st.debt_value * (1 - 1e-12))) {
        *c = keep;
        return SP_ERANGE;
    }
    L->coll[a].total -= amount;
    int rc = sp_transfer(sim, tok, proto, owner, amount);
    if (rc) return rc;
    return reindex(L, (size_t)s);
}

double sp_lending_max_borrow(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return 0.0;
    long s = slot_find(L, owner);
    int j = debt_slot(L, s, tok);
    if (s < 0 || j < 0) return 0.0;
    refresh_if_stale(L);
    struct lend_debt *d = &L->debt[j];
    if (!(d->price > 0)) return 0.0;
    struct sp_lending_position st;
    lend_position_state(L, (size_t)s, &st);
    double m = (st.borrow_power - st.debt_value) / d->price;
    if (!(m > 0) || !isfinite(m)) return 0.0;
    double total = d->scaled_total * d->index;
    if (L->kind == LEND_POOL && m > d->cash) m = d->cash;
    if (d->cap > 0 && m > d->cap - total) m = d->cap - total;
    if (L->kind == LEND_CDP && L->cfg->line > 0) {
        double all = 0;
        for (size_t k = 0; k < L->nd; k++) all += L->debt[k].scaled_total * L->debt[k].index;
        if (m > L->cfg->line - all) m = L->cfg->line - all;
    }
    return m > 0 ? m : 0.0;
}

int sp_lending_borrow(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                      double amount)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || bad_amount(amount)) return SP_EINVAL;
    long s = slot_find(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    int j = debt_slot(L, s, tok);
    if (j < 0) return L->kind == LEND_CDP && tok == L->stable ? SP_ERANGE : SP_EINVAL;
    refresh_if_stale(L);
    struct lend_debt *d = &L->debt[j];
    if (!(d->price > 0) || !isfinite(d->price)) return SP_ESTATE;
    for (size_t a = 0; a < L->na; a++)
        if (L->pc[(size_t)s * L->na + a] > 0 && !(L->coll[a].price >= 0)) return SP_ESTATE;
    if (amount > sp_lending_max_borrow(sim, proto, owner, tok) * (1 + 1e-12)) return SP_ERANGE;
    if (L->kind == LEND_CDP && d->dust > 0) {
        double after = L->pd[(size_t)s * L->nd + j] * d->index + amount;
        if (after < d->dust) return SP_ERANGE;
    }
    double sc = amount / d->index;
    L->pd[(size_t)s * L->nd + j] += sc;
    d->scaled_total += sc;
    int rc;
    if (L->kind == LEND_POOL) {
        if (amount > d->cash) amount = d->cash;   /* rounding only: checked above */
        d->cash -= amount;
        rc = sp_transfer(sim, tok, proto, owner, amount);
    } else {
        rc = sp_mint(sim, tok, owner, amount);
    }
    if (rc) return rc;
    sp_token_values_changed(sim);
    return reindex(L, (size_t)s);
}

/* Remove `amount` (token units, <= debt) of slot j's debt from position s. */
static void reduce_debt(struct lending *L, size_t s, size_t j, double amount, double debt)
{
    struct lend_debt *d = &L->debt[j];
    double *p = &L->pd[s * L->nd + j];
    double sc = amount >= debt ? *p : amount / d->index;
    if (sc > *p) sc = *p;
    *p -= sc;
    d->scaled_total -= sc;
    if (d->scaled_total < 0) d->scaled_total = 0;
}

int sp_lending_repay(struct sp_sim *sim, sp_id proto, sp_id payer, sp_id owner,
                     sp_token tok, double amount, double *repaid)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || bad_amount(amount)) return SP_EINVAL;
    long s = slot_find(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    int j = debt_slot(L, s, tok);
    if (j < 0) return SP_EINVAL;
    refresh_if_stale(L);
    struct lend_debt *d = &L->debt[j];
    double debt = L->pd[(size_t)s * L->nd + j] * d->index;
    double pay = amount < debt ? amount : debt;
    if (L->kind == LEND_CDP && d->dust > 0 && pay < debt && debt - pay < d->dust)
        return SP_ERANGE;                         /* Maker: leave 0 or >= dust */
    int rc = L->kind == LEND_POOL ? sp_transfer(sim, tok, payer, proto, pay)
                                  : sp_burn(sim, tok, payer, pay);
    if (rc) return rc;
    if (L->kind == LEND_POOL) d->cash += pay;
    reduce_debt(L, (size_t)s, (size_t)j, pay, debt);
    if (repaid) *repaid = pay;
    sp_token_values_changed(sim);
    return reindex(L, (size_t)s);
}

int sp_lending_position(struct sp_sim *sim, sp_id proto, sp_id owner,
                        struct sp_lending_position *out)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return SP_EINVAL;
    long s = slot_find(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    refresh_if_stale(L);
    lend_position_state(L, (size_t)s, out);
    return SP_OK;
}

double sp_lending_collateral(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    long s = L ? slot_find(L, owner) : -1;
    int a = s >= 0 ? coll_index(L, tok) : -1;
    return a < 0 ? 0.0 : L->pc[(size_t)s * L->na + a];
}

double sp_lending_debt(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    long s = L ? slot_find(L, owner) : -1;
    if (s < 0) return 0.0;
    refresh_if_stale(L);
    double D = 0;
    for (size_t j = 0; j < L->nd; j++)
        if (L->debt[j].token == tok) D += L->pd[(size_t)s * L->nd + j] * L->debt[j].index;
    return D;
}

size_t sp_lending_liquidatable(struct sp_sim *sim, sp_id proto, sp_id *owners, size_t n)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return 0;
    refresh_if_stale(L);
    size_t total = 0;
    for (size_t g = 0; g <= L->nd; g++) total += sp_liq_index_liquidatable(L->ix[g], NULL, 0);
    if (!n || !owners) return total;
    uint32_t *ids = malloc((total ? total : 1) * sizeof *ids);
    sp_id *all = malloc((total ? total : 1) * sizeof *all);
    if (!ids || !all) { free(ids); free(all); return total; }
    size_t k = 0;
    for (size_t g = 0; g <= L->nd; g++) {
        size_t m = sp_liq_index_liquidatable(L->ix[g], ids, total);
        for (size_t i = 0; i < m && k < total; i++) all[k++] = L->owner[ids[i]];
    }
    for (size_t i = 1; i < k; i++) {              /* owner-id order (insertion sort: small) */
        sp_id v = all[i];
        size_t q = i;
        while (q > 0 && all[q - 1] > v) { all[q] = all[q - 1]; q--; }
        all[q] = v;
    }
    for (size_t i = 0; i < k && i < n; i++) owners[i] = all[i];
    free(ids);
    free(all);
    return total;
}

int sp_lending_subscribe(struct sp_sim *sim, sp_id proto, sp_id subscriber, uint16_t kind)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || subscriber >= sp_sim_entity_count(sim)) return SP_EINVAL;
    void *p = realloc(L->subs, (L->n_subs + 1) * sizeof *L->subs);
    if (!p) return SP_ENOMEM;
    L->subs = p;
    L->subs[L->n_subs].who = subscriber;
    L->subs[L->n_subs].kind = kind;
    L->n_subs++;
    return SP_OK;
}

int sp_lending_seize(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                     double amount, sp_id to)
{
    struct lending *L = lend_of(sim, proto);
    if (!L || bad_amount(amount)) return SP_EINVAL;
    int a = coll_index(L, tok);
    long s = slot_find(L, owner);
    if (a < 0) return SP_EINVAL;
    if (s < 0) return SP_ENOTFOUND;
    refresh_if_stale(L);
    double *c = &L->pc[(size_t)s * L->na + a];
    if (amount > *c * (1 + 1e-12)) return SP_ERANGE;
    if (amount > *c) amount = *c;
    int rc = sp_transfer(sim, tok, proto, to, amount);
    if (rc) return rc;
    *c -= amount;
    L->coll[a].total -= amount;
    return reindex(L, (size_t)s);
}

int sp_lending_write_off(struct sp_sim *sim, sp_id proto, sp_id owner, double *bad_debt)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return SP_EINVAL;
    long s = slot_find(L, owner);
    if (s < 0) return SP_ENOTFOUND;
    refresh_if_stale(L);
    double value = 0;
    for (size_t j = 0; j < L->nd; j++) {
        struct lend_debt *d = &L->debt[j];
        double b = L->pd[(size_t)s * L->nd + j] * d->index;
        if (!(b > 0)) continue;
        reduce_debt(L, (size_t)s, j, b, b);
        value += lend_book_bad_debt(L, j, b);
    }
    if (bad_debt) *bad_debt = value;
    sp_token_values_changed(sim);
    return reindex(L, (size_t)s);
}

double lend_book_bad_debt(struct lending *L, size_t j, double b)
{
    struct lend_debt *d = &L->debt[j];
    if (!(b > 0)) return 0.0;
    double *buffer = L->kind == LEND_POOL ? &d->reserve : &L->surplus;
    double absorbed = *buffer > 0 ? (*buffer < b ? *buffer : b) : 0;
    *buffer -= absorbed;
    d->bad_debt += b;
    d->socialized += b - absorbed;
    double value = b * (isfinite(d->price) ? d->price : 0);
    L->bad_debt_value += value;
    L->n_writeoffs++;
    return value;
}

double sp_lending_bad_debt(struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    return L ? L->bad_debt_value : 0.0;
}

double sp_lending_reserve(struct sp_sim *sim, sp_id proto, sp_token tok)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return 0.0;
    refresh_if_stale(L);
    if (L->kind == LEND_CDP) return tok == L->stable ? L->surplus : 0.0;
    int j = pool_slot(L, tok);
    return j < 0 ? 0.0 : L->debt[j].reserve;
}

size_t sp_lending_position_count(const struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    return L ? L->n_pos : 0;
}

sp_id sp_lending_position_owner(const struct sp_sim *sim, sp_id proto, size_t i)
{
    struct lending *L = lend_of(sim, proto);
    return L && i < L->n_pos ? L->owner[i] : SP_ID_NONE;
}

size_t sp_lending_bytes(const struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return 0;
    size_t b = L->cap_pos * (sizeof *L->owner + L->na * sizeof *L->pc + L->nd * sizeof *L->pd +
                             sizeof *L->group + sizeof *L->pgen);
    b += L->n_slot_of * sizeof *L->slot_of + L->cap_multi * sizeof *L->multi;
    for (size_t g = 0; g <= L->nd; g++) b += sp_liq_index_bytes(L->ix[g]);
    return b;
}

static bool close_to(double a, double b)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= 1e-9 * (m > 1 ? m : 1);
}

int sp_lending_check(struct sp_sim *sim, sp_id proto)
{
    struct lending *L = lend_of(sim, proto);
    if (!L) return SP_EINVAL;
    refresh_if_stale(L);
    const char *name = sp_sim_entity_name(sim, proto);
    size_t nt = sp_token_count(sim);
    for (size_t t = 0; t < nt; t++) {
        double held = 0;
        bool listed = false;
        for (size_t a = 0; a < L->na; a++)
            if (L->coll[a].token == (sp_token)t) {
                held += L->coll[a].total + L->coll[a].auction + L->coll[a].treasury;
                listed = true;
            }
        if (L->kind == LEND_POOL)
            for (size_t j = 0; j < L->nd; j++)
                if (L->debt[j].token == (sp_token)t) { held += L->debt[j].cash; listed = true; }
        if (listed && !close_to(held, sp_balance(sim, proto, (sp_token)t))) {
            sp_sim_fail(sim, SP_EMODEL, "%s: holds %.17g %s but cash + custody is %.17g", name,
                        sp_balance(sim, proto, (sp_token)t), sp_token_name(sim, (sp_token)t), held);
            return SP_EMODEL;
        }
    }
    size_t liq = 0;
    for (size_t a = 0; a < L->na; a++) {
        double s = 0;
        for (size_t p = 0; p < L->n_pos; p++) {
            if (L->pc[p * L->na + a] < 0) goto negative;
            s += L->pc[p * L->na + a];
        }
        if (!close_to(s, L->coll[a].total)) {
            sp_sim_fail(sim, SP_EMODEL, "%s: collateral total %.17g != sum %.17g", name,
                        L->coll[a].total, s);
            return SP_EMODEL;
        }
    }
    for (size_t j = 0; j < L->nd; j++) {
        double s = 0;
        for (size_t p = 0; p < L->n_pos; p++) {
            if (L->pd[p * L->nd + j] < 0) goto negative;
            s += L->pd[p * L->nd + j];
        }
        if (!close_to(s, L->debt[j].scaled_total)) {
            sp_sim_fail(sim, SP_EMODEL, "%s: scaled debt total %.17g != sum %.17g", name,
                        L->debt[j].scaled_total, s);
            return SP_EMODEL;
        }
    }
    for (size_t p = 0; p < L->n_pos; p++) {
        struct sp_lending_position st;
        lend_position_state(L, p, &st);
        liq += st.liquidatable;
        if (st.debt_value > 0 && fabs(st.hf - 1.0) > 1e-9 && st.liquidatable != (st.hf < 1.0)) {
            sp_sim_fail(sim, SP_EMODEL, "%s: position of %s has HF %.17g but the index says %s",
                        name, sp_sim_entity_name(sim, L->owner[p]), st.hf,
                        st.liquidatable ? "liquidatable" : "healthy");
            return SP_EMODEL;
        }
    }
    if (liq != L->n_liquidatable) {
        sp_sim_fail(sim, SP_EMODEL, "%s: %zu liquidatable positions, counted %zu", name, liq,
                    L->n_liquidatable);
        return SP_EMODEL;
    }
    for (size_t g = 0; g <= L->nd; g++)
        if (sp_liq_index_check(L->ix[g])) {
            sp_sim_fail(sim, SP_EMODEL, "%s: liquidation index %zu inconsistent", name, g);
            return SP_EMODEL;
        }
    return SP_OK;
negative:
    sp_sim_fail(sim, SP_EMODEL, "%s: a negative position amount", name);
    return SP_EMODEL;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static int add_oracle(struct lending *L, sp_id o)
{
    if (o == SP_ID_NONE) return SP_OK;
    for (size_t i = 0; i < L->n_oracles; i++) if (L->oracles[i] == o) return SP_OK;
    sp_id *p = realloc(L->oracles, (L->n_oracles + 1) * sizeof *p);
    if (!p) return SP_ENOMEM;
    L->oracles = p;
    L->oracles[L->n_oracles++] = o;
    return sp_oracle_subscribe(L->sim, o, L->id, LEND_EV_ORACLE);
}

int lend_init_common(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    int rc = SP_OK;
    L->last_accrue = 0;
    for (size_t j = 0; j < L->nd; j++) {
        if (L->debt[j].index == 0) L->debt[j].index = 1.0;
        L->debt[j].price = NAN;
    }
    for (size_t a = 0; a < L->na; a++) L->coll[a].price = NAN;
    double *lt = calloc(L->na ? L->na : 1, sizeof *lt);
    L->ix = calloc(L->nd + 1, sizeof *L->ix);
    if (!lt || !L->ix) { free(lt); return SP_ENOMEM; }
    for (size_t a = 0; a < L->na; a++) lt[a] = L->coll[a].lt;
    for (size_t g = 0; g <= L->nd && !rc; g++)
        rc = sp_liq_index_create((uint32_t)(L->na ? L->na : 1), lt, 64, &L->ix[g]);
    free(lt);
    if (rc) return rc;
    size_t n = sp_sim_entity_count(sim);
    L->slot_of = calloc(n ? n : 1, sizeof *L->slot_of);
    if (!L->slot_of) return SP_ENOMEM;
    L->n_slot_of = n;
    for (size_t a = 0; a < L->na && !rc; a++) {
        rc = add_oracle(L, L->coll[a].oracle);
        if (!rc) rc = add_oracle(L, L->coll[a].quoted_in);
    }
    for (size_t j = 0; j < L->nd && !rc; j++) {
        rc = add_oracle(L, L->debt[j].oracle);
        if (!rc) rc = add_oracle(L, L->debt[j].quoted_in);
        if (!rc && L->debt[j].receipt >= 0)
            rc = sp_token_set_rate_fn(sim, L->debt[j].receipt, L->id, receipt_rate_fn, L);
    }
    if (rc) sp_sim_fail(sim, rc, "%s: cannot set up the protocol: %s",
                        sp_sim_entity_name(sim, L->id), sp_strerror(rc));
    return rc;
}

int lend_start(void *self, struct sp_sim *sim)
{
    struct lending *L = self;
    /* The protocol with the lowest id records the system-wide tables. */
    L->leader = true;
    for (sp_id i = 0; i < L->id; i++)
        if (lend_of(sim, i)) { L->leader = false; break; }
    int rc = lend_record_start(L);
    if (!rc) rc = liq_start(L);
    if (rc) return rc;
    if (L->cfg->accrue_every > 0 &&
        !sp_sim_schedule(sim, L->cfg->accrue_every, SP_PRIO_MARKET, L->id, LEND_EV_ACCRUE))
        return SP_ENOMEM;
    return SP_OK;
}

void lend_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    struct lending *L = self;
    switch (ev->kind) {
    case LEND_EV_ORACLE:
        lend_refresh(L);
        break;
    case LEND_EV_ACCRUE:
        lend_refresh(L);
        if (ev->t + L->cfg->accrue_every <= sp_sim_horizon(sim))
            sp_sim_again(sim, ev, ev->t + L->cfg->accrue_every);
        break;
    case LEND_EV_SAMPLE: {
        refresh_if_stale(L);
        lend_record_sample(L, ev->t);
        sp_time every = L->cfg->sample_every ? L->cfg->sample_every : sp_sim_sample_every(sim);
        if (every > 0 && ev->t + every <= sp_sim_horizon(sim)) sp_sim_again(sim, ev, ev->t + every);
        break;
    }
    case LEND_EV_LIQUIDATE:
        liq_on_event(L, ev);
        break;
    case LEND_EV_POSITIONS:
        lend_record_positions(L, ev->t);
        if (ev->t + L->cfg->positions_every <= sp_sim_horizon(sim))
            sp_sim_again(sim, ev, ev->t + L->cfg->positions_every);
        break;
    default:
        break;
    }
}

void lend_finish(void *self, struct sp_sim *sim)
{
    struct lending *L = self;
    lend_refresh(L);
    (void)sim;
    lend_record_finish(L);
    liq_finish(L);
}

void lend_release(void *self)
{
    struct lending *L = self;
    if (L->ix)
        for (size_t g = 0; g <= L->nd; g++) sp_liq_index_destroy(L->ix[g]);
    free(L->ix);
    free(L->coll);
    free(L->debt);
    free(L->owner);
    free(L->pc);
    free(L->pd);
    free(L->group);
    free(L->pgen);
    free(L->slot_of);
    free(L->multi);
    free(L->subs);
    free(L->oracles);
    lend_record_release(L);
    liq_release(L);
}

/* ---- for the liquidation mechanisms ---------------------------------------- */

long lend_slot(const struct lending *L, sp_id owner) { return slot_find(L, owner); }
int  lend_coll_index(const struct lending *L, sp_token tok) { return coll_index(L, tok); }
int  lend_debt_slot(const struct lending *L, long slot, sp_token tok)
{
    return debt_slot(L, slot, tok);
}
void lend_refresh_if_stale(struct lending *L) { refresh_if_stale(L); }
int  lend_is_liquidatable(const struct lending *L, size_t slot) { return liq_state(L, slot); }
int  lend_reindex(struct lending *L, size_t slot) { return reindex(L, slot); }
void lend_reduce_debt(struct lending *L, size_t s, size_t j, double amount, double debt)
{
    reduce_debt(L, s, j, amount, debt);
}

/* ---- snapshots ------------------------------------------------------------------ */

#define COLL_F64 4
#define DEBT_F64 8
#define POS_CAP0 64

struct ix_ctx { const struct lending *L; size_t g; };

/* The amounts index g holds for position `id` (liq_index.h). */
static int ix_amounts(void *ctx, uint32_t id, double *c, double *debt)
{
    const struct ix_ctx *x = ctx;
    const struct lending *L = x->L;
    uint8_t want = x->g == L->nd ? LEND_GROUP_MULTI : (uint8_t)(x->g + 1);
    if (id >= L->n_pos || L->group[id] != want) return 0;
    if (L->na) memcpy(c, &L->pc[(size_t)id * L->na], L->na * sizeof *c);
    *debt = x->g == L->nd ? multi_debt(L, id) : L->pd[(size_t)id * L->nd + x->g];
    return 1;
}

/* The group a position's debts put it in (reindex; it differs only after
 * a failed upsert). */
static uint8_t owed_group(const struct lending *L, size_t s)
{
    size_t owing = 0, which = 0;
    for (size_t j = 0; j < L->nd; j++)
        if (L->pd[s * L->nd + j] > 0) { owing++; which = j; }
    return owing == 0 ? LEND_GROUP_NONE : owing == 1 ? (uint8_t)(which + 1) : LEND_GROUP_MULTI;
}

/* Owners: [0, ids] or, when shorter, [1, (first id, run length) pairs] of
 * runs of consecutive ids (a population opening positions in turn). */
static int put_owners(const struct lending *L, struct sp_snapshot_writer *w)
{
    size_t n = L->n_pos, runs = 0;
    for (size_t s = 0; s < n; s++) runs += s == 0 || L->owner[s] != L->owner[s - 1] + 1;
    if (2 * runs >= n) {
        sp_snap_put_u64(w, 0);
        return sp_liq_snap_put_u32s(w, L->owner, n);
    }
    uint32_t *p = malloc(2 * runs * sizeof *p);
    if (!p) return SP_ENOMEM;
    size_t k = 0;
    for (size_t s = 0; s < n; s++) {
        if (s == 0 || L->owner[s] != L->owner[s - 1] + 1) { p[k++] = L->owner[s]; p[k++] = 0; }
        p[k - 1]++;
    }
    sp_snap_put_u64(w, 1);
    int rc = sp_liq_snap_put_u32s(w, p, k);
    free(p);
    return rc;
}

/* A byte per position as (slot, value) pairs where it differs from the
 * usual: the group its debts give (group) or 0 (pgen). */
static int put_sparse(const struct lending *L, const uint8_t *v, bool group,
                      struct sp_snapshot_writer *w)
{
    size_t k = 0, cap = 0;
    uint32_t *p = NULL;
    for (size_t s = 0; s < L->n_pos; s++) {
        if (v[s] == (group ? owed_group(L, s) : 0)) continue;
        if (k + 2 > cap) {
            cap = cap ? 2 * cap : 16;
            uint32_t *q = realloc(p, cap * sizeof *q);
            if (!q) { free(p); return SP_ENOMEM; }
            p = q;
        }
        p[k++] = (uint32_t)s;
        p[k++] = v[s];
    }
    int rc = sp_liq_snap_put_u32s(w, p, k);
    free(p);
    return rc;
}

static int get_sparse(struct lending *L, uint8_t *v, bool group, struct sp_snapshot_reader *r)
{
    const unsigned char *p;
    size_t k;
    if (sp_liq_snap_get_u32s(r, &p, &k)) return sp_snap_error(r);
    if (k % 2) return sp_snap_fail(r, "an odd %s list", group ? "group" : "generation");
    for (size_t s = 0; s < L->n_pos; s++) v[s] = group ? owed_group(L, s) : 0;
    for (size_t i = 0; i < k; i += 2) {
        uint32_t s = sp_liq_u32_at(p, i), x = sp_liq_u32_at(p, i + 1);
        if (s >= L->n_pos || x > 255)
            return sp_snap_fail(r, "%s of position %u: bad", group ? "group" : "generation", s);
        v[s] = (uint8_t)x;
    }
    return SP_OK;
}

int lend_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    const struct lending *L = self;
    size_t na = L->na, nd = L->nd, n = L->n_pos;
    double *cd = malloc((na * COLL_F64 + nd * DEBT_F64 + 1) * sizeof *cd);
    uint64_t *subs = malloc((2 * L->n_subs + 1) * sizeof *subs);
    if (!cd || !subs) { free(cd); free(subs); return SP_ENOMEM; }
    double *x = cd;
    for (size_t a = 0; a < na; a++) {
        const struct lend_coll *c = &L->coll[a];
        *x++ = c->price; *x++ = c->total; *x++ = c->auction; *x++ = c->treasury;
    }
    for (size_t j = 0; j < nd; j++) {
        const struct lend_debt *d = &L->debt[j];
        *x++ = d->price; *x++ = d->index; *x++ = d->scaled_total; *x++ = d->cash;
        *x++ = d->reserve; *x++ = d->auction; *x++ = d->bad_debt; *x++ = d->socialized;
    }
    for (size_t i = 0; i < L->n_subs; i++) {
        subs[2 * i] = L->subs[i].who;
        subs[2 * i + 1] = L->subs[i].kind;
    }
    double f[2] = { L->surplus, L->bad_debt_value };
    int64_t k[6] = { L->last_accrue, L->refreshed_at, L->fresh, (int64_t)L->n_liquidatable,
                     (int64_t)L->max_liquidatable, (int64_t)L->n_writeoffs };
    sp_snap_put_array(w, 15);
    sp_snap_put_f64s(w, cd, na * COLL_F64);
    sp_snap_put_f64s(w, cd + na * COLL_F64, nd * DEBT_F64);
    sp_snap_put_f64s(w, f, 2);
    sp_snap_put_i64s(w, k, 6);
    int rc = put_owners(L, w);
    sp_snap_put_f64s(w, L->pc, n * na);
    sp_snap_put_f64s(w, L->pd, n * nd);
    if (!rc) rc = put_sparse(L, L->group, true, w);
    if (!rc) rc = put_sparse(L, L->pgen, false, w);
    if (!rc) rc = sp_liq_snap_put_u32s(w, L->multi, L->n_multi);
    sp_snap_put_u64s(w, subs, 2 * L->n_subs);
    free(cd);
    free(subs);
    sp_snap_put_array(w, nd + 1);
    for (size_t g = 0; g <= nd && !rc; g++) {
        struct ix_ctx c = { L, g };
        rc = sp_liq_index_snapshot(L->ix[g], (uint32_t)n, ix_amounts, &c, w);
    }
    if (!rc) rc = liq_snapshot(L, w);
    if (!rc) rc = lend_record_snapshot(L, w);
    return rc ? rc : sp_snap_writer_error(w);
}

/* Room for n positions, grown as slot_get grows it. */
static int reserve_positions(struct lending *L, size_t n)
{
    if (n <= L->cap_pos) return SP_OK;
    size_t cap = L->cap_pos ? L->cap_pos : POS_CAP0;
    while (cap < n) cap *= 2;
    sp_id *o = realloc(L->owner, cap * sizeof *o);
    if (o) L->owner = o;
    double *pc = realloc(L->pc, (L->na ? cap * L->na : 1) * sizeof *pc);
    if (pc) L->pc = pc;
    double *pd = realloc(L->pd, (L->nd ? cap * L->nd : 1) * sizeof *pd);
    if (pd) L->pd = pd;
    uint8_t *g = realloc(L->group, cap * sizeof *g);
    if (g) L->group = g;
    uint8_t *pg = realloc(L->pgen, cap * sizeof *pg);
    if (pg) L->pgen = pg;
    if (!o || !pc || !pd || !g || !pg) return SP_ENOMEM;
    L->cap_pos = cap;
    return SP_OK;
}

static int get_f64s_n(struct sp_snapshot_reader *r, double *v, size_t n, const char *what)
{
    size_t m;
    if (sp_snap_peek_count(r, &m)) return sp_snap_error(r);
    if (m != n) return sp_snap_fail(r, "%s: %zu values, expected %zu", what, m, n);
    return sp_snap_get_f64s(r, v, n);
}

static bool bad_value(double x) { return !(x >= 0) || !isfinite(x); }

static int restore_positions(struct lending *L, struct sp_snapshot_reader *r)
{
    struct sp_sim *sim = L->sim;
    const unsigned char *own, *mul;
    size_t n = 0, no, nm;
    uint64_t mode;
    size_t ne = sp_sim_entity_count(sim);
    if (sp_snap_get_u64(r, &mode) || sp_liq_snap_get_u32s(r, &own, &no)) return sp_snap_error(r);
    if (mode > 1 || (mode == 1 && no % 2)) return sp_snap_fail(r, "bad owner list");
    if (mode == 0) n = no;
    for (size_t i = 1; mode == 1 && i < no && n <= ne; i += 2) n += sp_liq_u32_at(own, i);
    if (n > ne || n > SP_LIQ_INDEX_MAX_ID)
        return sp_snap_fail(r, "%zu positions for %zu entities (a bad owner list)", n, ne);
    if (reserve_positions(L, n)) return sp_snap_fail(r, "out of memory");
    memset(L->slot_of, 0, L->n_slot_of * sizeof *L->slot_of);
    L->n_pos = 0;
    for (size_t i = 0, s = 0; s < n; i++) {
        size_t len = mode == 0 ? 1 : sp_liq_u32_at(own, 2 * i + 1);
        uint64_t first = mode == 0 ? sp_liq_u32_at(own, i) : sp_liq_u32_at(own, 2 * i);
        for (size_t q = 0; q < len; q++, s++) {
            uint64_t o = first + q;
            if (o >= L->n_slot_of || o >= ne || L->slot_of[o])
                return sp_snap_fail(r, "position %zu: bad or repeated owner %llu", s,
                                    (unsigned long long)o);
            L->owner[s] = (sp_id)o;
            L->slot_of[o] = (uint32_t)s + 1;
        }
    }
    L->n_pos = n;
    if (get_f64s_n(r, L->pc, n * L->na, "collateral amounts") ||
        get_f64s_n(r, L->pd, n * L->nd, "scaled debts"))
        return sp_snap_error(r);
    for (size_t i = 0; i < n * L->na; i++)
        if (bad_value(L->pc[i])) return sp_snap_fail(r, "a bad collateral amount");
    for (size_t i = 0; i < n * L->nd; i++)
        if (bad_value(L->pd[i])) return sp_snap_fail(r, "a bad scaled debt");
    if (get_sparse(L, L->group, true, r) || get_sparse(L, L->pgen, false, r))
        return sp_snap_error(r);
    size_t n_multi = 0;
    for (size_t s = 0; s < n; s++) {
        uint8_t g = L->group[s];
        if (g != LEND_GROUP_NONE && g != LEND_GROUP_MULTI && g > L->nd)
            return sp_snap_fail(r, "position %zu: bad group %u", s, g);
        n_multi += g == LEND_GROUP_MULTI;
    }
    if (sp_liq_snap_get_u32s(r, &mul, &nm)) return sp_snap_error(r);
    if (nm != n_multi) return sp_snap_fail(r, "%zu multi-debt positions listed, %zu marked", nm, n_multi);
    if (nm > L->cap_multi) {
        size_t cap = L->cap_multi ? L->cap_multi : 16;
        while (cap < nm) cap *= 2;
        uint32_t *p = realloc(L->multi, cap * sizeof *p);
        if (!p) return sp_snap_fail(r, "out of memory");
        L->multi = p;
        L->cap_multi = cap;
    }
    L->n_multi = 0;
    for (size_t i = 0; i < nm; i++) {
        uint32_t s = sp_liq_u32_at(mul, i);
        if (s >= n || L->group[s] != LEND_GROUP_MULTI)
            return sp_snap_fail(r, "multi-debt list: bad slot %u", s);
        L->group[s] = LEND_GROUP_MULTI - 1;           /* seen (restored below) */
        L->multi[L->n_multi++] = s;
    }
    for (size_t i = 0; i < nm; i++) L->group[L->multi[i]] = LEND_GROUP_MULTI;
    return SP_OK;
}

int lend_restore(void *self, struct sp_snapshot_reader *r)
{
    struct lending *L = self;
    struct sp_sim *sim = L->sim;
    size_t na = L->na, nd = L->nd, m;
    double *cd = malloc((na * COLL_F64 + nd * DEBT_F64 + 1) * sizeof *cd);
    if (!cd) return sp_snap_fail(r, "out of memory");
    double f[2];
    int64_t k[6];
    sp_snap_get_array_n(r, 15);
    get_f64s_n(r, cd, na * COLL_F64, "collateral assets");
    get_f64s_n(r, cd + na * COLL_F64, nd * DEBT_F64, "debt slots");
    get_f64s_n(r, f, 2, "protocol totals");
    sp_snap_get_i64s(r, k, 6);
    if (sp_snap_error(r)) { free(cd); return sp_snap_error(r); }
    const double *x = cd;
    for (size_t a = 0; a < na; a++) {
        struct lend_coll *c = &L->coll[a];
        c->price = *x++; c->total = *x++; c->auction = *x++; c->treasury = *x++;
    }
    for (size_t j = 0; j < nd; j++) {
        struct lend_debt *d = &L->debt[j];
        d->price = *x++; d->index = *x++; d->scaled_total = *x++; d->cash = *x++;
        d->reserve = *x++; d->auction = *x++; d->bad_debt = *x++; d->socialized = *x++;
        if (!(d->index > 0) || !isfinite(d->index)) { free(cd); return sp_snap_fail(r, "bad borrow index"); }
    }
    free(cd);
    L->surplus = f[0];
    L->bad_debt_value = f[1];
    if (k[2] < 0 || k[2] > 1 || k[3] < 0 || k[4] < 0 || k[5] < 0 || k[0] < 0)
        return sp_snap_fail(r, "bad protocol counters");
    L->last_accrue = k[0];
    L->refreshed_at = k[1];
    L->fresh = k[2] == 1;
    L->n_liquidatable = (size_t)k[3];
    L->max_liquidatable = (size_t)k[4];
    L->n_writeoffs = (uint64_t)k[5];
    L->cur_gen = 0;
    if (restore_positions(L, r)) return sp_snap_error(r);
    /* subscribers to liquidatability changes */
    if (sp_snap_peek_count(r, &m)) return sp_snap_error(r);
    if (m % 2) return sp_snap_fail(r, "bad subscriber list");
    uint64_t *subs = malloc((m ? m : 1) * sizeof *subs);
    void *ns = realloc(L->subs, (m / 2 ? m / 2 : 1) * sizeof *L->subs);
    if (ns) L->subs = ns;
    if (!subs || !ns) { free(subs); return sp_snap_fail(r, "out of memory"); }
    if (sp_snap_get_u64s(r, subs, m)) { free(subs); return sp_snap_error(r); }
    L->n_subs = 0;
    for (size_t i = 0; i < m / 2; i++) {
        if (subs[2 * i] >= sp_sim_entity_count(sim) || subs[2 * i + 1] > UINT16_MAX) {
            free(subs);
            return sp_snap_fail(r, "bad subscriber %zu", i);
        }
        L->subs[i].who = (sp_id)subs[2 * i];
        L->subs[i].kind = (uint16_t)subs[2 * i + 1];
        L->n_subs = i + 1;
    }
    free(subs);
    /* the indexes, exactly */
    sp_snap_get_array_n(r, nd + 1);
    size_t liq = 0;
    for (size_t g = 0; g <= nd; g++) {
        struct ix_ctx c = { L, g };
        if (sp_liq_index_restore(L->ix[g], (uint32_t)L->n_pos, ix_amounts, &c, r))
            return sp_snap_error(r);
        liq += sp_liq_index_liquidatable(L->ix[g], NULL, 0);
    }
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    for (size_t s = 0; s < L->n_pos; s++) {
        uint8_t g = L->group[s];
        if (g == LEND_GROUP_NONE) continue;
        size_t ix = g == LEND_GROUP_MULTI ? nd : (size_t)g - 1;
        if (sp_liq_index_is_liquidatable(L->ix[ix], (uint32_t)s) < 0)
            return sp_snap_fail(r, "position %zu is not in its liquidation index", s);
    }
    if (liq != L->n_liquidatable || L->max_liquidatable < L->n_liquidatable)
        return sp_snap_fail(r, "%zu liquidatable positions, counted %zu", liq, L->n_liquidatable);
    if (liq_restore(L, r) || lend_record_restore(L, r)) return sp_snap_error(r);
    return sp_snap_get_end(r);
}
