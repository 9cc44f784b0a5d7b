/*
 * cpmm.h — Uniswap v2 constant-product pool mechanics, in double.
 *
 * A pool holds reserves r0 (token0) and r1 (token1) and charges `fee` on the
 * input amount; the fee stays in the pool, so k = r0·r1 never falls.  Prices
 * are token1 per token0 (the numeraire is token1).  These are the pure
 * mechanics: no simulation state, no allocation.  Every fallible function
 * returns 0 or a negative SP_E* code and never writes NaN to an output;
 * on error the pool is unchanged.
 */
#ifndef SPIRAL_CPMM_H
#define SPIRAL_CPMM_H

struct sp_cpmm {
    double r0, r1;      /* reserves, token units */
    double fee;         /* fee on input, in [0, 1) (Uniswap v2: 0.003) */
    double lp_supply;   /* LP shares outstanding */
};

/* Direction of a swap: which token goes *into* the pool. */
enum sp_cpmm_dir { SP_CPMM_0TO1 = 0, SP_CPMM_1TO0 = 1 };

/* A pool with reserves (r0, r1) > 0 and fee in [0, 1); mints sqrt(r0·r1)
 * LP shares (Uniswap v2's first deposit, without MINIMUM_LIQUIDITY). */
int sp_cpmm_init(struct sp_cpmm *p, double r0, double r1, double fee);

/* Output for an exact input, without changing the pool:
 * out = in·γ·Rout / (Rin + in·γ), γ = 1 − fee (UniswapV2Library.getAmountOut). */
int sp_cpmm_quote_in(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                     double *amount_out);
/* Input needed for an exact output (< Rout), without changing the pool:
 * in = Rin·out / ((Rout − out)·γ) (UniswapV2Library.getAmountIn, no +1 wei). */
int sp_cpmm_quote_out(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_out,
                      double *amount_in);
/* Swap an exact input; the pool keeps the whole input (fee included). */
int sp_cpmm_swap_in(struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                    double *amount_out);
/* Swap for an exact output; reports the input charged. */
int sp_cpmm_swap_out(struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_out,
                     double *amount_in);

/* Marginal (mid) price r1/r0, token1 per token0, fee excluded; SP_ESTATE
 * on an empty pool. */
int sp_cpmm_price(const struct sp_cpmm *p, double *price);
/* Mid price after a hypothetical exact-input swap (the pool is unchanged). */
int sp_cpmm_price_after(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                        double *price);
/* Price impact of that swap: price_after / price − 1 (signed). */
int sp_cpmm_price_impact(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                         double *impact);

/* Deposit at most (max0, max1) in the pool's proportion; reports what was
 * used and the shares minted.  An empty pool (lp_supply == 0) takes both
 * amounts and mints sqrt(max0·max1). */
int sp_cpmm_add_liquidity(struct sp_cpmm *p, double max0, double max1, double *used0,
                          double *used1, double *minted);
/* Burn `shares` (0 < shares <= lp_supply) for the pro-rata reserves. */
int sp_cpmm_remove_liquidity(struct sp_cpmm *p, double shares, double *out0, double *out1);

/* The arbitrage trade that maximises profit against an external price
 * `price_ref` (token1 per token0), fee included: direction and exact input.
 * *amount_in = 0 (direction SP_CPMM_0TO1) when price_ref·γ <= r1/r0 <=
 * price_ref/γ, the no-arbitrage band.  Derivation in cpmm.c. */
int sp_cpmm_arb_size(const struct sp_cpmm *p, double price_ref, enum sp_cpmm_dir *dir,
                     double *amount_in);

#endif
