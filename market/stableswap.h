/*
 * stableswap.h — Curve StableSwap mechanics for two coins, in double.
 *
 * Balances bal[0], bal[1] (token units), amplification `amp` (the contracts'
 * A; Ann = A·n), a fee taken from the output, and LP shares.  Prices are coin1
 * per coin0.  Pure mechanics: no simulation state, no allocation.  Every
 * fallible function returns 0 or a negative SP_E* code, never writes NaN to
 * an output, and leaves the pool unchanged on error.  SP_ERANGE means a Newton
 * iteration did not converge (or a result left the representable range).
 */
#ifndef SPIRAL_STABLESWAP_H
#define SPIRAL_STABLESWAP_H

struct sp_stableswap {
    double bal[2];      /* balances, token units */
    double amp;         /* amplification A (> 0), as in the contracts */
    double fee;         /* fraction of the output kept by the pool, [0, 1) */
    double lp_supply;   /* LP shares outstanding */
};

/* Newton iterations stop at a relative step below this, or fail with
 * SP_ERANGE after SP_STABLESWAP_MAX_ITER steps (the contracts' 255). */
#define SP_STABLESWAP_TOL 1e-15
#define SP_STABLESWAP_MAX_ITER 255

/* A pool with balances > 0; mints D LP shares (the contracts' first deposit). */
int sp_stableswap_init(struct sp_stableswap *p, double b0, double b1, double amp, double fee);

/* The invariant D of balances `bal` (both > 0, or both 0 giving D = 0). */
int sp_stableswap_get_D(const double bal[2], double amp, double *D);
/* The balance y of one coin that keeps invariant D when the other holds x. */
int sp_stableswap_get_y(double x, double D, double amp, double *y);

/* Output of coin 1−i for dx of coin i, fee deducted, pool unchanged. */
int sp_stableswap_quote(const struct sp_stableswap *p, int i, double dx, double *dy);
/* Swap dx of coin i for coin 1−i; the fee stays in the pool. */
int sp_stableswap_swap(struct sp_stableswap *p, int i, double dx, double *dy);

/* Marginal price −dx1/dx0 on the invariant (coin1 per coin0, fee excluded),
 * from the partial derivatives of the invariant. */
int sp_stableswap_price(const struct sp_stableswap *p, double *price);
/* The marginal price of the pool after a hypothetical swap of dx of coin i. */
int sp_stableswap_price_after(const struct sp_stableswap *p, int i, double dx, double *price);

/* Deposit (a0, a1) (each >= 0, not both 0); mints lp_supply·(D1 − D0)/D0
 * (D1 on an empty pool).  No imbalance fee is charged. */
int sp_stableswap_add_liquidity(struct sp_stableswap *p, double a0, double a1, double *minted);
/* Burn `shares` (0 < shares <= lp_supply) for the pro-rata balances. */
int sp_stableswap_remove_liquidity(struct sp_stableswap *p, double shares, double *out0,
                                   double *out1);

/* The profit-maximising arbitrage against an external price `price_ref`
 * (coin1 per coin0), fee included: the coin *i to sell into the pool and the
 * amount *dx (0 inside the no-arbitrage band, *i = 0).  Found numerically:
 * the trade's marginal output rate (1 − fee)·price at the trade's end is
 * solved equal to the external price, to relative 1e-12 in dx.  This is the
 * best single swap; the fee it leaves in the pool reopens a gap of order
 * fee·dx, which repeated calls close geometrically. */
int sp_stableswap_arb_size(const struct sp_stableswap *p, double price_ref, int *i, double *dx);

#endif
