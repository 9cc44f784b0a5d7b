/*
 * liq_dutch.h — Maker Liquidations 2.0 (dss clip.sol, abaci.sol, dog.sol):
 * a falling-price (Dutch) collateral auction, in double.
 *
 * `bark` opens an auction for `lot` collateral that must raise `tab` DAI
 * (debt·chop); its price starts at top = feed price·buf and falls along one
 * of the abaci curves; keepers `take` slices at the current price; an auction
 * too old (dur > tail) or too cheap (price/top < cusp) must be `redo`ne
 * (restarted at the current feed price) before anyone can take again.  When
 * tab reaches 0 the collateral left over goes back to the vault owner; when
 * lot reaches 0 first, the tab still open is the auction's shortfall.
 *
 * Pure mechanics: no simulation state, no allocation.  Every fallible
 * function returns 0 or a negative SP_E* code and leaves the auction
 * unchanged on error.  Amounts are token units, prices DAI per collateral,
 * times sp_time.  Elapsed time is counted in whole seconds, as
 * block.timestamp is: an event at tic + 30.7 s sees dur = 30 s.
 */
#ifndef SPIRAL_LIQ_DUTCH_H
#define SPIRAL_LIQ_DUTCH_H

#include <stddef.h>
#include "spiral/types.h"

/* The abaci.sol price curves. */
enum sp_dutch_curve {
    SP_DUTCH_LINEAR = 0,        /* LinearDecrease: top·(tau − dur)/tau, 0 once dur ≥ tau */
    SP_DUTCH_STAIRSTEP_EXP = 1, /* StairstepExponentialDecrease: top·cut^floor(dur/step) */
    SP_DUTCH_EXP = 2,           /* ExponentialDecrease: top·cut^dur (dur in seconds) */
};

struct sp_dutch_params {
    enum sp_dutch_curve curve;
    sp_time tau;        /* linear: time for the price to reach 0, > 0 */
    sp_time step;       /* stairstep: time between drops, > 0 */
    double cut;         /* exponential curves: factor per step / per second, in (0, 1) */
    double buf;         /* top = feed price·buf, >= 1 */
    sp_time tail;       /* redo once dur > tail, > 0 */
    double cusp;        /* redo once price/top < cusp, in [0, 1) */
    double chop;        /* liquidation penalty: tab = debt·chop, >= 1 */
    double tip;         /* flat keeper reward (DAI), >= 0 */
    double chip;        /* keeper reward as a share of tab, >= 0 */
    double dust;        /* vault dust (DAI); chost = dust·chop, >= 0 */
};

struct sp_dutch_auction {
    double tab;         /* DAI still to raise */
    double lot;         /* collateral still for sale */
    double top;         /* starting price of the current run (since the last kick/redo) */
    sp_time tic;        /* start of the current run */
    int live;           /* 1 while running, 0 once closed (or never opened) */
};

/* What one take did.  price is the auction price paid; slice collateral went
 * to the taker for owe DAI; when the auction closed, lot_returned went back
 * to the vault owner (tab reached 0) or shortfall DAI was left unraised (lot
 * reached 0 with tab > 0). */
struct sp_dutch_take {
    double price, slice, owe;
    double lot_returned, shortfall;
    int closed;
};

/* 0 if the parameters are in range; otherwise SP_EINVAL (NULL, NaN, unknown
 * curve) or SP_ERANGE, with a message naming the parameter written to msg
 * (if msg_len > 0).  Only the fields the curve uses are checked for it. */
int sp_dutch_params_check(const struct sp_dutch_params *p, char *msg, size_t msg_len);

/* chost = dust·chop (Clipper.upchost): the least tab a partial take may leave. */
double sp_dutch_chost(const struct sp_dutch_params *p);

/* The curve's price after dur >= 0 of a run that started at top >= 0
 * (Abacus.price(top, dur)); dur is floored to whole seconds. */
int sp_dutch_price(const struct sp_dutch_params *p, double top, sp_time dur, double *price);

/* Dog.bark + Clipper.kick for a whole vault: tab = debt·chop, lot =
 * collateral, top = feed_price·buf, tic = now.  *keeper_reward = tip +
 * chip·tab (0 when both are 0).  Debt, collateral and feed price > 0. */
int sp_dutch_bark(const struct sp_dutch_params *p, double debt, double collateral,
                  double feed_price, sp_time now, struct sp_dutch_auction *a,
                  double *keeper_reward);

/* Clipper.status: the current price and whether the run needs a redo
 * (dur > tail or price/top < cusp, both strict).  now >= tic. */
int sp_dutch_status(const struct sp_dutch_params *p, const struct sp_dutch_auction *a,
                    sp_time now, int *needs_redo, double *price);

/* Clipper.redo: only when status says so (SP_ESTATE otherwise).  Restarts
 * the run at tic = now, top = feed_price·buf; the keeper reward tip +
 * chip·tab is paid only if tab >= chost and lot·feed_price >= chost. */
int sp_dutch_redo(const struct sp_dutch_params *p, struct sp_dutch_auction *a, sp_time now,
                  double feed_price, double *keeper_reward);

/* Clipper.take: buy up to amt > 0 collateral if the price is <= max
 * (SP_ERANGE "too expensive" otherwise; SP_ESTATE if the auction needs a redo,
 * is closed, or its price is 0).  slice = min(lot, amt), owe = slice·price;
 * if owe > tab the slice shrinks to tab/price and owe = tab; a partial take
 * that would leave 0 < tab < chost is cut down to leave exactly chost, and is
 * refused (SP_ERANGE) when tab <= chost already. */
int sp_dutch_take(const struct sp_dutch_params *p, struct sp_dutch_auction *a, sp_time now,
                  double amt, double max, struct sp_dutch_take *out);

#endif
