/*
 * liq_english.c — Maker Liquidations 1.0 English auction (dss flip.sol), in
 * double.
 *
 * State is struct sp_english_auction; the collateral sits in the auction
 * (lot) until deal hands it to the winner, except what dent gives back to the
 * owner.  Invariants while live: 0 <= bid <= tab, lot > 0 in tend, lot >= 0
 * in dent, end >= tic - ttl.  Collateral: lot_to_owner (Σ over dents) +
 * lot_to_winner + lot is the kicked lot.  DAI: every call has paid = refund +
 * to_gal, and Σ to_gal = the final bid − the opening bid, so the protocol
 * receives exactly the winning bid (the kicker's opening bid, if any, is
 * refunded to it).
 *
 * Semantics follow makerdao/dss src/flip.sol (c103b307):
 *   tend/dent: require (tic > now || tic == 0) && end > now;
 *   tend: bid <= tab, bid > bids.bid, bid·ONE >= beg·bids.bid || bid == tab;
 *         a new bidder refunds the old guy's bid, and bid − old bid goes to gal;
 *   dent: bid == bids.bid == tab, lot < bids.lot, beg·lot <= bids.lot;
 *         a new bidder refunds the old guy's bid (== tab), nothing to gal;
 *         bids.lot − lot goes to usr;
 *   deal: tic != 0 && (tic < now || end < now);
 *   tick: end < now && tic == 0, then end = now + tau.
 * Both deadlines are strict on both sides: at now == tic (or == end) the bid
 * can no longer be raised *and* cannot yet be dealt.  flip.sol's tic == 0
 * meaning "no bid" is n_bids == 0 here, because sp_time 0 is a valid time.
 * The first bid over an opening bid of 0 passes beg·0 <= bid for any bid > 0:
 * with no competitor, a keeper wins the lot for a dust bid — Black Thursday.
 * flip.sol takes the lot in tend and the bid in dent as arguments only to
 * check them against the stored values; here they are implied.
 */
#include <math.h>
#include <stdio.h>
#include "spiral/error.h"
#include "liq_english.h"

static int bad(char *msg, size_t n, int code, const char *name, const char *want, double got)
{
    if (msg && n > 0) snprintf(msg, n, "english auction: %s must be %s (got %g)", name, want, got);
    return code;
}

int sp_english_params_check(const struct sp_english_params *p, char *msg, size_t n)
{
    if (msg && n > 0) msg[0] = '\0';
    if (!p) return bad(msg, n, SP_EINVAL, "params", "non-NULL", 0.0);
    if (!(p->beg == p->beg && p->beg < INFINITY))
        return bad(msg, n, SP_EINVAL, "beg", "a finite number", p->beg);
    if (!(p->beg > 1.0)) return bad(msg, n, SP_ERANGE, "beg", "> 1", p->beg);
    if (!(p->tau > 0)) return bad(msg, n, SP_ERANGE, "tau", "> 0 s", sp_time_sec(p->tau));
    if (!(p->ttl > 0)) return bad(msg, n, SP_ERANGE, "ttl", "> 0 s", sp_time_sec(p->ttl));
    if (p->ttl > p->tau)
        return bad(msg, n, SP_ERANGE, "ttl", "<= tau", sp_time_sec(p->ttl));
    return 0;
}

static void flow_zero(struct sp_english_flow *f)
{
    f->paid = f->refund = f->to_gal = 0.0;
    f->refund_to = SP_ID_NONE;
    f->lot_to_owner = f->lot_to_winner = 0.0;
}

int sp_english_kick(const struct sp_english_params *p, double tab, double lot, double bid,
                    sp_time now, struct sp_english_auction *a)
{
    if (!p || !a || sp_english_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!(tab > 0.0 && tab < INFINITY) || !(lot > 0.0 && lot < INFINITY)) return SP_EINVAL;
    if (!(bid >= 0.0 && bid < tab)) return SP_EINVAL;
    if (now > SP_TIME_MAX - p->tau) return SP_ERANGE;
    a->bid = bid;
    a->lot = lot;
    a->tab = tab;
    a->guy = SP_ID_NONE;
    a->n_bids = 0;
    a->tic = 0;
    a->end = now + p->tau;
    a->live = 1;
    return 0;
}

int sp_english_biddable(const struct sp_english_auction *a, sp_time now)
{
    return a && a->live && (a->n_bids == 0 || a->tic > now) && a->end > now;
}

/* Common to tend and dent once the bid is accepted: pay off the old guy. */
static void take_over(struct sp_english_auction *a, sp_id bidder, struct sp_english_flow *f)
{
    if (bidder != a->guy) {
        f->refund = a->bid;
        f->refund_to = a->guy;
        a->guy = bidder;
    }
}

int sp_english_tend(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now, sp_id bidder, double bid, struct sp_english_flow *f)
{
    if (!p || !a || !f || sp_english_params_check(p, NULL, 0)) return SP_EINVAL;
    if (bidder == SP_ID_NONE || !(bid == bid)) return SP_EINVAL;
    if (!sp_english_biddable(a, now)) return SP_ESTATE;       /* already-finished-tic/end */
    if (now > SP_TIME_MAX - p->ttl) return SP_ERANGE;
    if (!(bid <= a->tab)) return SP_ERANGE;                   /* higher-than-tab */
    if (!(bid > a->bid)) return SP_ERANGE;                    /* bid-not-higher */
    if (!(bid >= p->beg * a->bid || bid == a->tab)) return SP_ERANGE; /* insufficient-increase */
    flow_zero(f);
    take_over(a, bidder, f);
    f->to_gal = bid - a->bid;
    f->paid = f->refund + f->to_gal;
    a->bid = bid;
    a->tic = now + p->ttl;
    a->n_bids++;
    return 0;
}

int sp_english_dent(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now, sp_id bidder, double lot, struct sp_english_flow *f)
{
    if (!p || !a || !f || sp_english_params_check(p, NULL, 0)) return SP_EINVAL;
    if (bidder == SP_ID_NONE || !(lot == lot)) return SP_EINVAL;
    if (!sp_english_biddable(a, now)) return SP_ESTATE;
    if (now > SP_TIME_MAX - p->ttl) return SP_ERANGE;
    if (!(a->bid == a->tab)) return SP_ESTATE;                /* tend-not-finished */
    if (!(lot >= 0.0 && lot < a->lot)) return SP_ERANGE;      /* lot-not-lower */
    if (!(p->beg * lot <= a->lot)) return SP_ERANGE;          /* insufficient-decrease */
    flow_zero(f);
    take_over(a, bidder, f);
    f->paid = f->refund;
    f->lot_to_owner = a->lot - lot;
    a->lot = lot;
    a->tic = now + p->ttl;
    a->n_bids++;
    return 0;
}

int sp_english_deal(struct sp_english_auction *a, sp_time now, sp_id *winner,
                    struct sp_english_flow *f)
{
    if (!a || !f) return SP_EINVAL;
    if (!a->live || a->n_bids == 0 || !(a->tic < now || a->end < now))
        return SP_ESTATE;                                     /* not-finished */
    flow_zero(f);
    f->lot_to_winner = a->lot;
    if (winner) *winner = a->guy;
    a->lot = 0.0;
    a->live = 0;
    return 0;
}

int sp_english_tick(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now)
{
    if (!p || !a || sp_english_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!a->live || !(a->end < now) || a->n_bids != 0) return SP_ESTATE;
    if (now > SP_TIME_MAX - p->tau) return SP_ERANGE;
    a->end = now + p->tau;
    return 0;
}
