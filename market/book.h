/*
 * book.h — what agents can do with a limit-order-book venue (type "lob",
 * market/lob_market.c) beyond market orders (sp_market_swap): resting limit
 * orders, cancels, and reading the book.  The matching engine is market/lob.h.
 *
 * Prices here are in quote per base (doubles) at the API; the venue converts
 * to integer ticks (its `tick_size`) and quantities to integer lots
 * (`lot_size` base units), rounding limit prices to the tick (buys down,
 * sells up) and quantities down to the lot.  Resting orders escrow their
 * tokens at the venue entity in the ledger (a buy escrows quote, a sell
 * base); fills settle between maker and taker through the ledger; cancels
 * return the unfilled escrow.  Every fill is a row of /events/trades.
 */
#ifndef SPIRAL_BOOK_H
#define SPIRAL_BOOK_H

#include <stdint.h>
#include "spiral/market.h"

struct sp_sim;
typedef uint64_t sp_order_id;          /* 0 = none */

int sp_book_is(const struct sp_sim *sim, sp_id venue);
/* Place a limit order for `agent` (cause for the trade records of any
 * immediate fill).  *id is 0 if it filled completely; *filled_base is what
 * traded immediately. */
int sp_book_limit(struct sp_sim *sim, sp_id venue, sp_id agent, enum sp_side side,
                  double price, double qty_base, int cause, sp_order_id *id,
                  double *filled_base);
/* Immediate-or-cancel: trade what crosses at `price` or better now; the rest
 * is dropped (nothing rests, nothing stays escrowed). */
int sp_book_ioc(struct sp_sim *sim, sp_id venue, sp_id agent, enum sp_side side, double price,
                double qty_base, int cause, double *filled_base);
/* Cancel; SP_ENOTFOUND if it already filled or was cancelled. */
int sp_book_cancel(struct sp_sim *sim, sp_id venue, sp_order_id id);
/* Best bid / ask (NAN when that side is empty) and the quantity there. */
int sp_book_best(const struct sp_sim *sim, sp_id venue, double *bid, double *bid_qty,
                 double *ask, double *ask_qty);
/* Top `n` levels of one side (SP_BUY = bids), best first; returns levels filled. */
size_t sp_book_depth(const struct sp_sim *sim, sp_id venue, enum sp_side side,
                     double *prices, double *qtys, size_t n);
/* Remaining base quantity of a resting order (0 if gone). */
double sp_book_order_qty(const struct sp_sim *sim, sp_id venue, sp_order_id id);

#endif
