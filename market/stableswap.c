/*
 * stableswap.c — Curve StableSwap, n = 2, in double.
 *
 * The invariant, in the contracts' parametrisation (Ann = A·n, n = 2,
 * S = x0 + x1, D_P = D^(n+1) / (n^n·x0·x1)):
 *     F(x0, x1, D) = Ann·S + D − Ann·D − D_P = 0.
 * (The whitepaper writes A·n^n·S + D = A·D·n^n + D^(n+1)/(n^n·Πx); the
 * contracts' A is the whitepaper's A·n^(n−1).  We follow the contracts.)
 *
 * get_D and get_y are the contracts' Newton iterations (StableSwap3Pool
 * get_D / get_y, restated in FORMULAS.md), started where the contracts start
 * them (D = S, y = D).  Two regroupings for double precision, identical in
 * exact arithmetic: get_D takes the step D − f(D)/f'(D) with
 * f = (D_P − D) + Ann·(D − S), which is exactly 0 at balance (so [1000,
 * 1000]e18 gives 2000e18 exactly), instead of the contracts' quotient form;
 * get_y forms b − D as (x − D) + D/Ann, so a small y is not lost in the
 * cancellation of x against D.  f is convex in D and y² + (b − D)·y − c in y,
 * so after at most one step both iterates fall monotonically to the root.
 * They stop when a step is below SP_STABLESWAP_TOL relative (1e-15, about
 * 4.5 ulp), or when the descent stalls (the iterate stops falling: the
 * rounding floor, reached before 1e-15 when the root is tiny against D), and
 * fail with SP_ERANGE after SP_STABLESWAP_MAX_ITER steps or on overflow.
 * D_P is formed as D·(D/2x0)·(D/2x1) so 1e18-scaled balances stay far from
 * overflow.
 *
 * Swaps recompute D from the balances (as the contracts do), move coin i to
 * x_i + dx, solve the other balance y at that D, and pay dy = x_j − y less the
 * fee; the fee stays in the pool, so D never falls through a swap (up to the
 * 1e-15 tolerance of the iterations).
 *
 * The marginal price is implicit differentiation of F at fixed D:
 *     ∂F/∂x_k = Ann + D_P/x_k,   price (coin1 per coin0) = −dx1/dx0
 *             = (Ann + D_P/x0) / (Ann + D_P/x1),
 * 1 at balance, below 1 when coin0 is abundant.
 *
 * Liquidity: deposits mint lp_supply·(D1 − D0)/D0 with no imbalance fee (the
 * contracts charge one on the part of a deposit that moves the pool off
 * balance; we do not model it, so an unbalanced deposit followed by a
 * balanced withdrawal is a fee-free swap); withdrawals are balanced only.
 *
 * Arbitrage against an external price p of coin i in coin j: selling dx of
 * coin i earns π(dx) = dy(dx) − p·dx, with dy'(dx) = (1 − fee)·m(dx), where
 * m(dx) is the marginal price of coin i on the pre-trade invariant at the
 * trade's end point (x_i + dx, y(x_i + dx)).  m falls with dx (the curve is
 * convex), so π is concave and the optimum solves (1 − fee)·m(dx) = p,
 * positive iff (1 − fee)·m(0) > p.  We bracket the root by doubling and
 * close it with Illinois false position to 1e-12 relative.  This is the best
 * *single* swap.  Because the fee stays in the pool as coin j, it moves the
 * pool's price back toward the trade (unlike Uniswap v2, whose fee on the
 * input pushes it on), so after the swap a residual arbitrage of order fee·dx
 * remains in the same direction; calling again shrinks it geometrically (by
 * about the fee each round) to the band edge.
 */
#include <math.h>
#include "spiral/error.h"
#include "stableswap.h"

#define N_COINS 2.0

static inline int finite_pos(double a) { return a > 0.0 && a < INFINITY; }

static int pool_ok(const struct sp_stableswap *p)
{
    return finite_pos(p->bal[0]) && finite_pos(p->bal[1]) && finite_pos(p->amp) &&
           p->fee >= 0.0 && p->fee < 1.0;
}

/* D_P = D^3 / (4·x0·x1), ordered to avoid overflow at 1e18 scales. */
static inline double d_p(double D, double x0, double x1)
{
    return D * (D / (N_COINS * x0)) * (D / (N_COINS * x1));
}

static int get_D(double x0, double x1, double amp, double *out)
{
    double S = x0 + x1, Ann = amp * N_COINS, D = S;
    for (int it = 0; it < SP_STABLESWAP_MAX_ITER; it++) {
        double Dp = d_p(D, x0, x1);
        /* Newton on f(D) = D_P + (Ann − 1)·D − Ann·S, grouped so that f is
         * exactly 0 at balance (D_P = D = S). */
        double f = (Dp - D) + Ann * (D - S);
        double fp = (N_COINS + 1.0) * Dp / D + (Ann - 1.0);
        double step = f / fp, next = D - step;
        if (!(next > 0.0 && next < INFINITY)) return SP_ERANGE;
        if (fabs(step) <= SP_STABLESWAP_TOL * next) {
            *out = next;
            return 0;
        }
        if (it > 0 && next >= D) {      /* the descent stalled: rounding floor */
            *out = D;
            return 0;
        }
        D = next;
    }
    return SP_ERANGE;
}

static int get_y(double x, double D, double amp, double *out)
{
    double Ann = amp * N_COINS;
    double c = D * (D / (N_COINS * x)) * (D / (Ann * N_COINS));
    double b_D = (x - D) + D / Ann;     /* b − D, without cancelling x against D */
    double y = D;
    for (int it = 0; it < SP_STABLESWAP_MAX_ITER; it++) {
        double prev = y;
        y = (y * y + c) / (2.0 * y + b_D);
        if (!(y > 0.0 && y < INFINITY)) return SP_ERANGE;
        if (fabs(y - prev) <= SP_STABLESWAP_TOL * y) {
            *out = y;
            return 0;
        }
        if (it > 0 && y >= prev) {      /* the descent stalled: rounding floor */
            *out = prev;
            return 0;
        }
    }
    return SP_ERANGE;
}

/* Marginal price of coin i in coin j at balances (xi, xj) on invariant D. */
static inline double marginal(double xi, double xj, double D, double amp)
{
    double Ann = amp * N_COINS, Dp = d_p(D, xi, xj);
    return (Ann + Dp / xi) / (Ann + Dp / xj);
}

int sp_stableswap_get_D(const double bal[2], double amp, double *D)
{
    if (!bal || !finite_pos(amp) || !(bal[0] >= 0.0 && bal[0] < INFINITY) ||
        !(bal[1] >= 0.0 && bal[1] < INFINITY))
        return SP_EINVAL;
    if (bal[0] == 0.0 && bal[1] == 0.0) { *D = 0.0; return 0; }
    if (bal[0] == 0.0 || bal[1] == 0.0) return SP_EINVAL;   /* D_P undefined */
    return get_D(bal[0], bal[1], amp, D);
}

int sp_stableswap_get_y(double x, double D, double amp, double *y)
{
    if (!finite_pos(x) || !finite_pos(D) || !finite_pos(amp)) return SP_EINVAL;
    return get_y(x, D, amp, y);
}

int sp_stableswap_init(struct sp_stableswap *p, double b0, double b1, double amp, double fee)
{
    if (!p || !finite_pos(b0) || !finite_pos(b1) || !finite_pos(amp) ||
        !(fee >= 0.0 && fee < 1.0))
        return SP_EINVAL;
    double D;
    int rc = get_D(b0, b1, amp, &D);
    if (rc) return rc;
    p->bal[0] = b0;
    p->bal[1] = b1;
    p->amp = amp;
    p->fee = fee;
    p->lp_supply = D;
    return 0;
}

/* The swap without the state change: new balances of coin i and coin j. */
static int swap_calc(const struct sp_stableswap *p, int i, double dx, double *xi_new,
                     double *xj_new, double *dy_out)
{
    if (!p || (i != 0 && i != 1) || !finite_pos(dx)) return SP_EINVAL;
    if (!pool_ok(p)) return p->fee >= 0.0 && p->fee < 1.0 ? SP_ESTATE : SP_EINVAL;
    int j = 1 - i;
    double D, y;
    int rc = get_D(p->bal[0], p->bal[1], p->amp, &D);
    if (rc) return rc;
    double x = p->bal[i] + dx;
    if (!(x < INFINITY)) return SP_ERANGE;
    if ((rc = get_y(x, D, p->amp, &y))) return rc;
    double dy = p->bal[j] - y;
    if (dy < 0.0) dy = 0.0;             /* rounding on a dust-sized dx */
    double out = dy - dy * p->fee;
    *xi_new = x;
    *xj_new = p->bal[j] - out;
    *dy_out = out;
    return 0;
}

int sp_stableswap_quote(const struct sp_stableswap *p, int i, double dx, double *dy)
{
    double xi, xj;
    return swap_calc(p, i, dx, &xi, &xj, dy);
}

int sp_stableswap_swap(struct sp_stableswap *p, int i, double dx, double *dy)
{
    double xi, xj, out;
    int rc = swap_calc(p, i, dx, &xi, &xj, &out);
    if (rc) return rc;
    p->bal[i] = xi;
    p->bal[1 - i] = xj;
    *dy = out;
    return 0;
}

int sp_stableswap_price(const struct sp_stableswap *p, double *price)
{
    if (!p) return SP_EINVAL;
    if (!pool_ok(p)) return p->fee >= 0.0 && p->fee < 1.0 ? SP_ESTATE : SP_EINVAL;
    double D;
    int rc = get_D(p->bal[0], p->bal[1], p->amp, &D);
    if (rc) return rc;
    *price = marginal(p->bal[0], p->bal[1], D, p->amp);
    return 0;
}

int sp_stableswap_price_after(const struct sp_stableswap *p, int i, double dx, double *price)
{
    if (!p) return SP_EINVAL;
    struct sp_stableswap q = *p;
    double dy;
    int rc = sp_stableswap_swap(&q, i, dx, &dy);
    if (rc) return rc;
    return sp_stableswap_price(&q, price);
}

int sp_stableswap_add_liquidity(struct sp_stableswap *p, double a0, double a1, double *minted)
{
    if (!p || !(a0 >= 0.0 && a0 < INFINITY) || !(a1 >= 0.0 && a1 < INFINITY) ||
        (a0 == 0.0 && a1 == 0.0) || !finite_pos(p->amp) || !(p->fee >= 0.0 && p->fee < 1.0))
        return SP_EINVAL;
    double n0 = p->bal[0] + a0, n1 = p->bal[1] + a1, D1;
    if (p->lp_supply == 0.0) {          /* first deposit mints D */
        if (p->bal[0] != 0.0 || p->bal[1] != 0.0) return SP_ESTATE;
        if (a0 == 0.0 || a1 == 0.0) return SP_EINVAL;
        int rc = get_D(n0, n1, p->amp, &D1);
        if (rc) return rc;
        p->bal[0] = n0;
        p->bal[1] = n1;
        p->lp_supply = D1;
        *minted = D1;
        return 0;
    }
    if (!pool_ok(p) || !(p->lp_supply > 0.0)) return SP_ESTATE;
    double D0;
    int rc = get_D(p->bal[0], p->bal[1], p->amp, &D0);
    if (rc || (rc = get_D(n0, n1, p->amp, &D1))) return rc;
    double m = p->lp_supply * (D1 - D0) / D0;
    if (!(m > 0.0 && m < INFINITY)) return SP_ERANGE;
    p->bal[0] = n0;
    p->bal[1] = n1;
    p->lp_supply += m;
    *minted = m;
    return 0;
}

int sp_stableswap_remove_liquidity(struct sp_stableswap *p, double shares, double *out0,
                                   double *out1)
{
    if (!p || !finite_pos(shares)) return SP_EINVAL;
    if (!(p->lp_supply > 0.0)) return SP_ESTATE;
    if (shares > p->lp_supply) return SP_ERANGE;
    double o0, o1;
    if (shares == p->lp_supply) {
        o0 = p->bal[0];
        o1 = p->bal[1];
        p->bal[0] = p->bal[1] = p->lp_supply = 0.0;
    } else {
        double f = shares / p->lp_supply;
        o0 = p->bal[0] * f;
        o1 = p->bal[1] * f;
        p->bal[0] -= o0;
        p->bal[1] -= o1;
        p->lp_supply -= shares;
    }
    *out0 = o0;
    *out1 = o1;
    return 0;
}

/* g(dx) = (1 − fee)·m(dx) − p_ext for selling coin i; decreasing in dx. */
static int arb_gap(const struct sp_stableswap *p, int i, double D, double p_ext, double dx,
                   double *g)
{
    double x = p->bal[i] + dx, y;
    int rc = get_y(x, D, p->amp, &y);
    if (rc) return rc;
    *g = (1.0 - p->fee) * marginal(x, y, D, p->amp) - p_ext;
    return 0;
}

int sp_stableswap_arb_size(const struct sp_stableswap *p, double price_ref, int *i_out,
                           double *dx_out)
{
    if (!p || !finite_pos(price_ref)) return SP_EINVAL;
    if (!pool_ok(p)) return p->fee >= 0.0 && p->fee < 1.0 ? SP_ESTATE : SP_EINVAL;
    double D;
    int rc = get_D(p->bal[0], p->bal[1], p->amp, &D);
    if (rc) return rc;
    *i_out = 0;
    *dx_out = 0.0;
    int i;
    double p_ext, g0;
    double m01 = marginal(p->bal[0], p->bal[1], D, p->amp);
    double gamma = 1.0 - p->fee;
    if (gamma * m01 > price_ref)             { i = 0; p_ext = price_ref; g0 = gamma * m01 - p_ext; }
    else if (gamma / m01 > 1.0 / price_ref)  { i = 1; p_ext = 1.0 / price_ref; g0 = gamma / m01 - p_ext; }
    else return 0;                          /* inside the fee band */

    /* Bracket: g(lo) > 0 >= g(hi). */
    double lo = 0.0, glo = g0, hi = p->bal[i], ghi;
    for (int k = 0;; k++) {
        if ((rc = arb_gap(p, i, D, p_ext, hi, &ghi))) return rc;
        if (ghi <= 0.0) break;
        if (k == 200) return SP_ERANGE;
        lo = hi;
        glo = ghi;
        hi *= 2.0;
    }
    /* Illinois false position: keeps the bracket, superlinear convergence. */
    int side = 0;
    for (int it = 0; it < 400; it++) {
        if (hi - lo <= 1e-13 * hi) break;
        double mid = (lo * ghi - hi * glo) / (ghi - glo);
        if (!(mid > lo && mid < hi)) mid = 0.5 * (lo + hi);
        double gm;
        if ((rc = arb_gap(p, i, D, p_ext, mid, &gm))) return rc;
        if (gm > 0.0) {
            lo = mid; glo = gm;
            if (side == 1) ghi *= 0.5;
            side = 1;
        } else if (gm < 0.0) {
            hi = mid; ghi = gm;
            if (side == -1) glo *= 0.5;
            side = -1;
        } else {
            lo = hi = mid;
            break;
        }
    }
    *i_out = i;
    *dx_out = 0.5 * (lo + hi);
    return 0;
}
