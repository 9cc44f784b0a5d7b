/*
 * liq_english.h — Maker Liquidations 1.0 (dss flip.sol): a two-phase
 * English collateral auction, in double.
 *
 * tend phase: the lot is fixed and bidders raise the DAI bid, each raise at
 * least a factor beg unless it reaches tab exactly.  dent phase (once bid ==
 * tab): the bid is fixed at tab and bidders lower the collateral they accept,
 * each cut at least a factor beg; what they give up goes back to the vault
 * owner.  Each bid expires ttl later; the auction ends at `end` (kick + tau);
 * `deal` settles once the live bid has expired or the auction has ended, and
 * `tick` restarts an auction that ended with no bid.  A lone bidder can win
 * the whole lot for a near-zero bid (Black Thursday, 12–13 March 2020).
 *
 * Pure mechanics: no simulation state, no allocation.  Bidders are named by
 * sp_id; every bid reports the DAI and collateral it moves (struct
 * sp_english_flow) so the caller can post them.  Every fallible function
 * returns 0 or a negative SP_E* code and leaves the auction unchanged on
 * error.
 */
#ifndef SPIRAL_LIQ_ENGLISH_H
#define SPIRAL_LIQ_ENGLISH_H

#include <stddef.h>
#include "spiral/types.h"

struct sp_english_params {
    double beg;         /* minimum bid increase / lot decrease factor, > 1 (flip: 1.05) */
    sp_time ttl;        /* bid lifetime, > 0 and <= tau (flip: 3 h) */
    sp_time tau;        /* auction length, > 0 (flip: 2 days) */
};

struct sp_english_auction {
    double bid;         /* DAI bid (paid in already) */
    double lot;         /* collateral on offer */
    double tab;         /* DAI wanted */
    sp_id guy;          /* high bidder; SP_ID_NONE = the kicker (no bid yet) */
    int n_bids;         /* bids so far; 0 ⇔ flip's tic == 0 */
    sp_time tic;        /* expiry of the live bid (valid when n_bids > 0) */
    sp_time end;        /* auction end */
    int live;
};

/* DAI and collateral one call moves.  The bidder pays `paid`; `refund` of
 * it goes to the previous high bidder `refund_to` (SP_ID_NONE: the kicker's
 * opening bid), `to_gal` to the protocol; `lot_to_owner` collateral goes back
 * to the vault owner (dent), `lot_to_winner` to the winner (deal).
 * Always paid == refund + to_gal. */
struct sp_english_flow {
    double paid, refund, to_gal;
    sp_id refund_to;
    double lot_to_owner, lot_to_winner;
};

/* 0 if in range; SP_EINVAL (NULL, NaN) or SP_ERANGE (beg <= 1, ttl <= 0,
 * tau <= 0, ttl > tau) with a message naming the parameter (if msg_len > 0). */
int sp_english_params_check(const struct sp_english_params *p, char *msg, size_t msg_len);

/* Flipper.kick: lot > 0 for tab > 0 DAI with an opening bid 0 <= bid < tab
 * held by the kicker (Cat.bite opens at 0); end = now + tau. */
int sp_english_kick(const struct sp_english_params *p, double tab, double lot, double bid,
                    sp_time now, struct sp_english_auction *a);

/* Whether a bid is still accepted at `now`: (no bid yet or tic > now) and
 * end > now (flip.sol, both strict). */
int sp_english_biddable(const struct sp_english_auction *a, sp_time now);

/* Flipper.tend: raise the bid on the fixed lot.  Requires bid <= tab, bid >
 * the current bid, and bid >= beg·bid or bid == tab (SP_ERANGE otherwise);
 * SP_ESTATE once the auction is no longer biddable.  Sets tic = now + ttl. */
int sp_english_tend(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now, sp_id bidder, double bid, struct sp_english_flow *f);

/* Flipper.dent: accept less collateral for the full tab.  SP_ESTATE unless
 * bid == tab (or not biddable); SP_ERANGE unless 0 <= lot < current lot and
 * beg·lot <= current lot.  The collateral given up goes to the owner. */
int sp_english_dent(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now, sp_id bidder, double lot, struct sp_english_flow *f);

/* Flipper.deal: once there is a bid and tic < now or end < now (strict):
 * the lot goes to the high bidder, the auction closes.  *winner may be NULL.
 * The auction keeps bid and tab, so the caller can book tab − bid as unraised. */
int sp_english_deal(struct sp_english_auction *a, sp_time now, sp_id *winner,
                    struct sp_english_flow *f);

/* Flipper.tick: restart an auction that ended (end < now) with no bid:
 * end = now + tau.  SP_ESTATE otherwise. */
int sp_english_tick(const struct sp_english_params *p, struct sp_english_auction *a,
                    sp_time now);

#endif
