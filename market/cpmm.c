/*
 * cpmm.c — Uniswap v2 constant-product pool, in double.
 *
 * State is four doubles (struct sp_cpmm); a swap is a handful of flops and
 * one well-predicted validity branch, so it can sit on the hot path of a
 * simulation that swaps millions of times.  Invariants after every
 * successful call: r0 > 0 and r1 > 0 (or both 0 with lp_supply == 0 after the
 * last share is burnt), fee in [0, 1), and k = r0·r1 never decreases through
 * a swap.  The input side is chosen with a conditional select, not a branch.
 *
 * Formulas (FORMULAS.md, "Uniswap v2 constant product"; UniswapV2Library.sol),
 * with γ = 1 − fee and (R_in, R_out) the reserves in the swap's direction:
 *     out = in·γ·R_out / (R_in + in·γ)            getAmountOut
 *     in  = R_in·out / ((R_out − out)·γ)           getAmountIn (no +1 wei)
 * The pool keeps the whole input, so after a swap
 *     k' = (R_in + in)·R_in·R_out / (R_in + γ·in) >= k.
 * On-chain integer math floors; here everything is double, exact to a few ulp.
 *
 * Optimal arbitrage against an external price P (token1 per token0), x = r0,
 * y = r1, s = y/x:
 *   Selling Δ of token0 into the pool pays out γΔy/(x + γΔ) of token1, worth
 *   Δ·P outside, so the profit in token1 is
 *       π(Δ) = γΔy/(x + γΔ) − PΔ,   π'(Δ) = γxy/(x + γΔ)² − P,
 *   concave, with the maximum where the marginal rate of the trade equals P:
 *       (x + γΔ)² = γxy/P   ⇒   Δ* = x·(sqrt(γ·s/P) − 1)/γ,
 *   positive iff s > P/γ.  Symmetrically, selling Δ of token1 (buying token0):
 *       π(Δ) = P·γΔx/(y + γΔ) − Δ   ⇒   Δ* = y·(sqrt(P·γ/s) − 1)/γ,
 *   positive iff s < P·γ.  Inside the band P·γ <= s <= P/γ no trade profits.
 *   FORMULAS.md's "target marginal price P/γ" is this condition read on the
 *   fee-free reserves: after the trade the *trade's* marginal rate is exactly
 *   P, and the mid price of the reserves net of the fee just paid,
 *   (y − out)/(x + γΔ), is exactly P/γ.  Because Uniswap v2 keeps the fee in
 *   the reserves, the pool's own mid price after the trade is
 *   (P/γ)·(x + γΔ)/(x + Δ) (selling token0): a hair inside the band, by a
 *   relative fee·Δ/(x + Δ), so no arbitrage remains in either direction.  Splitting the
 *   trade never does better (each piece leaves more fee in the pool), so Δ*
 *   is the optimum of any sequence of trades in one direction.
 */
#include <math.h>
#include "spiral/error.h"
#include "cpmm.h"

static inline int amount_ok(double a) { return a > 0.0 && a < INFINITY; }

static inline int pool_ok(const struct sp_cpmm *p)
{
    return (p->r0 > 0.0) & (p->r1 > 0.0) & (p->r0 < INFINITY) & (p->r1 < INFINITY) &
           (p->fee >= 0.0) & (p->fee < 1.0);
}

/* Cold path: which error a failed validity check means. */
static int args_error(const struct sp_cpmm *p, unsigned dir, double amount)
{
    if (dir > 1u || !amount_ok(amount)) return SP_EINVAL;
    if (!(p->fee >= 0.0 && p->fee < 1.0)) return SP_EINVAL;
    return SP_ESTATE;   /* an empty (or corrupt) pool */
}

int sp_cpmm_init(struct sp_cpmm *p, double r0, double r1, double fee)
{
    if (!p || !amount_ok(r0) || !amount_ok(r1) || !(fee >= 0.0 && fee < 1.0))
        return SP_EINVAL;
    p->r0 = r0;
    p->r1 = r1;
    p->fee = fee;
    p->lp_supply = sqrt(r0) * sqrt(r1);
    return 0;
}

int sp_cpmm_quote_in(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                     double *amount_out)
{
    unsigned d = (unsigned)dir;
    if (!(pool_ok(p) & amount_ok(amount_in) & (d <= 1u))) return args_error(p, d, amount_in);
    double rin = d ? p->r1 : p->r0, rout = d ? p->r0 : p->r1;
    double g = amount_in * (1.0 - p->fee);
    double out = g * rout / (rin + g);
    if (!(out < rout)) return SP_ERANGE;   /* only for inputs ~1e16 × the reserve */
    *amount_out = out;
    return 0;
}

int sp_cpmm_swap_in(struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                    double *amount_out)
{
    unsigned d = (unsigned)dir;
    if (!(pool_ok(p) & amount_ok(amount_in) & (d <= 1u))) return args_error(p, d, amount_in);
    double *rin = d ? &p->r1 : &p->r0, *rout = d ? &p->r0 : &p->r1;
    double g = amount_in * (1.0 - p->fee);
    double out = g * *rout / (*rin + g);
    if (!(out < *rout)) return SP_ERANGE;
    *rin += amount_in;
    *rout -= out;
    *amount_out = out;
    return 0;
}

int sp_cpmm_quote_out(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_out,
                      double *amount_in)
{
    unsigned d = (unsigned)dir;
    if (!(pool_ok(p) & amount_ok(amount_out) & (d <= 1u)))
        return args_error(p, d, amount_out);
    double rin = d ? p->r1 : p->r0, rout = d ? p->r0 : p->r1;
    if (!(amount_out < rout)) return SP_ERANGE;
    double in = rin * amount_out / ((rout - amount_out) * (1.0 - p->fee));
    if (!(in < INFINITY)) return SP_ERANGE;
    *amount_in = in;
    return 0;
}

int sp_cpmm_swap_out(struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_out,
                     double *amount_in)
{
    double in;
    int rc = sp_cpmm_quote_out(p, dir, amount_out, &in);
    if (rc) return rc;
    if (dir == SP_CPMM_0TO1) { p->r0 += in; p->r1 -= amount_out; }
    else                     { p->r1 += in; p->r0 -= amount_out; }
    *amount_in = in;
    return 0;
}

int sp_cpmm_price(const struct sp_cpmm *p, double *price)
{
    if (!p) return SP_EINVAL;
    if (!pool_ok(p)) return args_error(p, 0, 1.0);
    *price = p->r1 / p->r0;
    return 0;
}

int sp_cpmm_price_after(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                        double *price)
{
    struct sp_cpmm q = *p;
    double out;
    int rc = sp_cpmm_swap_in(&q, dir, amount_in, &out);
    if (rc) return rc;
    *price = q.r1 / q.r0;
    return 0;
}

int sp_cpmm_price_impact(const struct sp_cpmm *p, enum sp_cpmm_dir dir, double amount_in,
                         double *impact)
{
    double after;
    int rc = sp_cpmm_price_after(p, dir, amount_in, &after);
    if (rc) return rc;
    *impact = after / (p->r1 / p->r0) - 1.0;
    return 0;
}

int sp_cpmm_add_liquidity(struct sp_cpmm *p, double max0, double max1, double *used0,
                          double *used1, double *minted)
{
    if (!p || !amount_ok(max0) || !amount_ok(max1) || !(p->fee >= 0.0 && p->fee < 1.0))
        return SP_EINVAL;
    if (p->lp_supply == 0.0) {          /* first deposit: mint sqrt(x·y) */
        if (p->r0 != 0.0 || p->r1 != 0.0) return SP_ESTATE;
        p->r0 = max0;
        p->r1 = max1;
        p->lp_supply = sqrt(max0) * sqrt(max1);
        *used0 = max0;
        *used1 = max1;
        *minted = p->lp_supply;
        return 0;
    }
    if (!pool_ok(p) || !(p->lp_supply > 0.0)) return SP_ESTATE;
    double f0 = max0 / p->r0, f1 = max1 / p->r1;
    double u0, u1, f;
    if (f0 <= f1) { f = f0; u0 = max0; u1 = p->r1 * f0; }
    else          { f = f1; u1 = max1; u0 = p->r0 * f1; }
    double m = p->lp_supply * f;
    if (!(m > 0.0 && m < INFINITY)) return SP_ERANGE;
    p->r0 += u0;
    p->r1 += u1;
    p->lp_supply += m;
    *used0 = u0;
    *used1 = u1;
    *minted = m;
    return 0;
}

int sp_cpmm_remove_liquidity(struct sp_cpmm *p, double shares, double *out0, double *out1)
{
    if (!p || !amount_ok(shares)) return SP_EINVAL;
    if (!(p->lp_supply > 0.0)) return SP_ESTATE;
    if (shares > p->lp_supply) return SP_ERANGE;
    double o0, o1;
    if (shares == p->lp_supply) {       /* the last share takes everything */
        o0 = p->r0;
        o1 = p->r1;
        p->r0 = p->r1 = p->lp_supply = 0.0;
    } else {
        double f = shares / p->lp_supply;
        o0 = p->r0 * f;
        o1 = p->r1 * f;
        p->r0 -= o0;
        p->r1 -= o1;
        p->lp_supply -= shares;
    }
    *out0 = o0;
    *out1 = o1;
    return 0;
}

int sp_cpmm_arb_size(const struct sp_cpmm *p, double price_ref, enum sp_cpmm_dir *dir,
                     double *amount_in)
{
    if (!p || !amount_ok(price_ref) || !(p->fee >= 0.0 && p->fee < 1.0)) return SP_EINVAL;
    if (!pool_ok(p)) return SP_ESTATE;
    double g = 1.0 - p->fee;
    double s = p->r1 / p->r0;
    *dir = SP_CPMM_0TO1;
    *amount_in = 0.0;
    if (g * s > price_ref) {            /* pool overprices token0: sell it */
        double d = p->r0 * (sqrt(g * s / price_ref) - 1.0) / g;
        if (d > 0.0) *amount_in = d;
    } else if (price_ref * g > s) {     /* pool underprices token0: buy it */
        double d = p->r1 * (sqrt(price_ref * g / s) - 1.0) / g;
        if (d > 0.0) { *dir = SP_CPMM_1TO0; *amount_in = d; }
    }
    return 0;
}
