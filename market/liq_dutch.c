/*
 * liq_dutch.c — Maker Liquidations 2.0 Dutch auction (dss clip.sol,
 * abaci.sol, dog.sol), in double.
 *
 * State is struct sp_dutch_auction: what is left to raise (tab) and to sell
 * (lot), and the current run (tic, top).  Invariants while live: tab > 0,
 * lot > 0, top > 0.  Collateral only moves out — to a taker (slice) or, when
 * tab hits 0, back to the owner (lot_returned) — so slices + returned + lot
 * is the kicked lot throughout (tests/test_liq_dutch.c checks it over random
 * runs).  DAI raised is Σ owe <= the kicked tab; the keeper rewards are new
 * DAI (vat.suck from the vow), not paid out of the auction.
 *
 * Semantics follow the contracts, not just FORMULAS.md's summary
 * (makerdao/dss, src/clip.sol and src/abaci.sol at 3f30552a / c8d4c806):
 *   - status: done = dur > tail || rdiv(price, top) < cusp, both strict;
 *     take requires !done, redo requires done.
 *   - take: slice = min(lot, amt); owe = slice·price; if owe > tab then
 *     owe = tab, slice = owe/price; else if owe < tab and slice < lot and
 *     tab − owe < chost: require tab > chost, then owe = tab − chost and
 *     slice = owe/price.  So the contract *shrinks* an over-large partial
 *     take to leave exactly chost (FORMULAS.md's "must leave tab >= chost or
 *     take everything"), and refuses only when tab <= chost already.
 *   - lot == 0 after a take closes the auction whatever tab is left (dog.digs
 *     clears tab + owe: the remainder is unraised, here `shortfall`); else
 *     tab == 0 closes it and the leftover lot goes to the owner.
 *   - kick pays tip + chip·tab whenever tip or chip > 0; redo pays it only
 *     if tab >= chost and lot·feedPrice >= chost.
 *   - LinearDecrease: dur >= tau gives 0.  Stairstep: cut^(dur/step) with
 *     integer division.  ExponentialDecrease: cut^dur, dur in seconds.
 *   - abaci.sol accepts cut == 1 (cut <= RAY); params_check rejects it
 *     (a price that never falls is a configuration error for a scenario).
 * bark here liquidates the whole vault: Dog's Hole/hole room and the dusty
 * partial-liquidation rules belong to the module that wraps this.
 *
 * On chain, price = 0 makes rdiv(price, top) = 0 < cusp, so the auction needs
 * a redo unless cusp = 0; with cusp = 0 a take at price 0 would hand over
 * collateral for nothing (or divide by zero), so take refuses price 0.
 */
#include <math.h>
#include <stdio.h>
#include "spiral/error.h"
#include "liq_dutch.h"

static int is_finite(double x) { return x == x && x > -INFINITY && x < INFINITY; }

static int bad(char *msg, size_t n, int code, const char *name, const char *want, double got)
{
    if (msg && n > 0) snprintf(msg, n, "dutch auction: %s must be %s (got %g)", name, want, got);
    return code;
}

int sp_dutch_params_check(const struct sp_dutch_params *p, char *msg, size_t n)
{
    if (msg && n > 0) msg[0] = '\0';
    if (!p) return bad(msg, n, SP_EINVAL, "params", "non-NULL", 0.0);
    switch (p->curve) {
    case SP_DUTCH_LINEAR:
        if (!(p->tau > 0)) return bad(msg, n, SP_ERANGE, "tau", "> 0", sp_time_sec(p->tau));
        break;
    case SP_DUTCH_STAIRSTEP_EXP:
        if (!(p->step > 0)) return bad(msg, n, SP_ERANGE, "step", "> 0", sp_time_sec(p->step));
        if (!is_finite(p->cut)) return bad(msg, n, SP_EINVAL, "cut", "a finite number", p->cut);
        if (!(p->cut > 0.0 && p->cut < 1.0))
            return bad(msg, n, SP_ERANGE, "cut", "in (0, 1)", p->cut);
        break;
    case SP_DUTCH_EXP:
        if (!is_finite(p->cut)) return bad(msg, n, SP_EINVAL, "cut", "a finite number", p->cut);
        if (!(p->cut > 0.0 && p->cut < 1.0))
            return bad(msg, n, SP_ERANGE, "cut", "in (0, 1)", p->cut);
        break;
    default:
        return bad(msg, n, SP_EINVAL, "curve", "linear, stairstep_exp or exp", (double)p->curve);
    }
    const struct { const char *name; double v; double lo; int lo_open; double hi; int hi_open;
                   const char *want; } r[] = {
        { "buf",  p->buf,  1.0, 0, INFINITY, 1, ">= 1" },
        { "cusp", p->cusp, 0.0, 0, 1.0,      1, "in [0, 1)" },
        { "chop", p->chop, 1.0, 0, INFINITY, 1, ">= 1" },
        { "tip",  p->tip,  0.0, 0, INFINITY, 1, ">= 0" },
        { "chip", p->chip, 0.0, 0, INFINITY, 1, ">= 0" },
        { "dust", p->dust, 0.0, 0, INFINITY, 1, ">= 0" },
    };
    for (size_t k = 0; k < sizeof r / sizeof r[0]; k++) {
        if (!is_finite(r[k].v)) return bad(msg, n, SP_EINVAL, r[k].name, "a finite number", r[k].v);
        if (r[k].lo_open ? !(r[k].v > r[k].lo) : !(r[k].v >= r[k].lo))
            return bad(msg, n, SP_ERANGE, r[k].name, r[k].want, r[k].v);
        if (r[k].hi_open ? !(r[k].v < r[k].hi) : !(r[k].v <= r[k].hi))
            return bad(msg, n, SP_ERANGE, r[k].name, r[k].want, r[k].v);
    }
    if (!(p->tail > 0)) return bad(msg, n, SP_ERANGE, "tail", "> 0", sp_time_sec(p->tail));
    return 0;
}

double sp_dutch_chost(const struct sp_dutch_params *p) { return p->dust * p->chop; }

/* Elapsed time as block.timestamp sees it: whole seconds. */
static sp_time whole_seconds(sp_time dur) { return dur / SP_SEC * SP_SEC; }

/* The curve, for validated params and dur >= 0 already floored. */
static double curve_price(const struct sp_dutch_params *p, double top, sp_time dur)
{
    switch (p->curve) {
    case SP_DUTCH_LINEAR:
        if (dur >= p->tau) return 0.0;
        return top * ((double)(p->tau - dur) / (double)p->tau);
    case SP_DUTCH_STAIRSTEP_EXP:
        return top * pow(p->cut, (double)(dur / p->step));
    case SP_DUTCH_EXP:
    default:
        return top * pow(p->cut, (double)(dur / SP_SEC));
    }
}

int sp_dutch_price(const struct sp_dutch_params *p, double top, sp_time dur, double *price)
{
    if (!p || !price || sp_dutch_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!(top >= 0.0 && top < INFINITY) || dur < 0) return SP_EINVAL;
    *price = curve_price(p, top, whole_seconds(dur));
    return 0;
}

static double keeper_reward(const struct sp_dutch_params *p, double tab)
{
    return (p->tip > 0.0 || p->chip > 0.0) ? p->tip + p->chip * tab : 0.0;
}

static int amount_ok(double a) { return a > 0.0 && a < INFINITY; }

int sp_dutch_bark(const struct sp_dutch_params *p, double debt, double collateral,
                  double feed_price, sp_time now, struct sp_dutch_auction *a,
                  double *reward)
{
    if (!p || !a || !reward || sp_dutch_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!amount_ok(debt) || !amount_ok(collateral) || !amount_ok(feed_price))
        return SP_EINVAL;
    double tab = debt * p->chop, top = feed_price * p->buf;
    if (!(tab < INFINITY && top < INFINITY)) return SP_ERANGE;
    a->tab = tab;
    a->lot = collateral;
    a->top = top;
    a->tic = now;
    a->live = 1;
    *reward = keeper_reward(p, tab);
    return 0;
}

/* status() for a validated, live auction and now >= tic. */
static int needs_redo(const struct sp_dutch_params *p, const struct sp_dutch_auction *a,
                      sp_time now, double *price)
{
    sp_time dur = whole_seconds(now - a->tic);
    *price = curve_price(p, a->top, dur);
    return dur > p->tail || *price / a->top < p->cusp;
}

static int auction_ok(const struct sp_dutch_auction *a)
{
    return a->live && amount_ok(a->tab) && amount_ok(a->lot) && amount_ok(a->top);
}

int sp_dutch_status(const struct sp_dutch_params *p, const struct sp_dutch_auction *a,
                    sp_time now, int *redo, double *price)
{
    if (!p || !a || !redo || !price || sp_dutch_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!auction_ok(a)) return SP_ESTATE;
    if (now < a->tic) return SP_EINVAL;
    *redo = needs_redo(p, a, now, price);
    return 0;
}

int sp_dutch_redo(const struct sp_dutch_params *p, struct sp_dutch_auction *a, sp_time now,
                  double feed_price, double *reward)
{
    if (!p || !a || !reward || sp_dutch_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!amount_ok(feed_price)) return SP_EINVAL;
    if (!auction_ok(a)) return SP_ESTATE;
    if (now < a->tic) return SP_EINVAL;
    double price;
    if (!needs_redo(p, a, now, &price)) return SP_ESTATE;   /* Clipper/cannot-reset */
    double top = feed_price * p->buf;
    if (!(top < INFINITY)) return SP_ERANGE;
    a->tic = now;
    a->top = top;
    double chost = sp_dutch_chost(p);
    *reward = (a->tab >= chost && a->lot * feed_price >= chost) ? keeper_reward(p, a->tab) : 0.0;
    return 0;
}

int sp_dutch_take(const struct sp_dutch_params *p, struct sp_dutch_auction *a, sp_time now,
                  double amt, double max, struct sp_dutch_take *out)
{
    if (!p || !a || !out || sp_dutch_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!amount_ok(amt) || !(max >= 0.0)) return SP_EINVAL;
    if (!auction_ok(a)) return SP_ESTATE;
    if (now < a->tic) return SP_EINVAL;
    double price;
    if (needs_redo(p, a, now, &price)) return SP_ESTATE;    /* Clipper/needs-reset */
    if (!(price > 0.0)) return SP_ESTATE;
    if (!(max >= price)) return SP_ERANGE;                   /* Clipper/too-expensive */

    double lot = a->lot, tab = a->tab;
    double slice = amt < lot ? amt : lot;
    double owe = slice * price;
    if (owe > tab) {
        owe = tab;
        slice = owe / price;
        if (slice > lot) slice = lot;   /* rounding only: tab/price < slice <= lot exactly */
    } else if (owe < tab && slice < lot) {
        double chost = sp_dutch_chost(p);
        if (tab - owe < chost) {
            if (!(tab > chost)) return SP_ERANGE;            /* Clipper/no-partial-purchase */
            owe = tab - chost;
            slice = owe / price;
        }
    }
    tab -= owe;
    lot -= slice;

    out->price = price;
    out->slice = slice;
    out->owe = owe;
    out->lot_returned = 0.0;
    out->shortfall = 0.0;
    out->closed = 0;
    if (lot <= 0.0) {
        out->shortfall = tab;
        out->closed = 1;
        lot = 0.0;
    } else if (tab <= 0.0) {
        out->lot_returned = lot;
        out->closed = 1;
        lot = 0.0;
        tab = 0.0;
    }
    a->tab = tab;
    a->lot = lot;
    if (out->closed) a->live = 0;
    return 0;
}
