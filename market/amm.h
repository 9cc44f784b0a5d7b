/*
 * amm.h — what agents can do with an AMM venue beyond swapping (which goes
 * through sp_market_swap): quotes, sizes for arbitrage, and liquidity.
 * Implemented by market/amm_cpmm.c (type "cpmm") and market/amm_stableswap.c
 * (type "stableswap"); the mechanics are market/cpmm.h and market/stableswap.h.
 *
 * Token convention: the pool's token 0 is the market's *base*, token 1 its
 * *quote*; price = quote per base (reserve_1 / reserve_0 for a CPMM).  The
 * venue entity holds the reserves in the ledger; LP shares are kept by the
 * venue per holder (not a ledger token until the lending issue adds LP
 * tokens), and sp_amm_lp_shares() reads them.
 */
#ifndef SPIRAL_AMM_H
#define SPIRAL_AMM_H

#include "spiral/market.h"

struct sp_sim;

/* Whether `venue` is an AMM (cpmm or stableswap). */
int sp_amm_is(const struct sp_sim *sim, sp_id venue);
/* Reserves of base (0) and quote (1). */
int sp_amm_reserves(const struct sp_sim *sim, sp_id venue, double *r_base, double *r_quote);
/* Fee fraction charged on input. */
double sp_amm_fee(const struct sp_sim *sim, sp_id venue);
/* The profit-maximising single trade against an external price P (quote per
 * base), fees included: *side and *amount_in (0 when P is inside the fee
 * band).  Closed form for the CPMM, numeric for StableSwap. */
int sp_amm_arb_size(const struct sp_sim *sim, sp_id venue, double P, enum sp_side *side,
                    double *amount_in);
/* Add liquidity from `agent`'s balances at the pool's ratio (at most the
 * amounts given); *shares receives the LP shares minted. */
int sp_amm_add_liquidity(struct sp_sim *sim, sp_id venue, sp_id agent, double max_base,
                         double max_quote, double *shares);
/* Burn `shares` of `agent`'s LP shares; the pro-rata reserves go to `agent`. */
int sp_amm_remove_liquidity(struct sp_sim *sim, sp_id venue, sp_id agent, double shares,
                            double *out_base, double *out_quote);
/* LP shares held by `holder`, and in total. */
double sp_amm_lp_shares(const struct sp_sim *sim, sp_id venue, sp_id holder);
double sp_amm_lp_supply(const struct sp_sim *sim, sp_id venue);

#endif
