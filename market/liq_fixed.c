/*
 * liq_fixed.c — fixed-spread liquidation: Aave v3 and Compound v2, in double.
 *
 * No state of its own: each call maps (position, prices, request) to what
 * moves.  Collateral is conserved by construction — collateral_seized =
 * to_liquidator + protocol_fee, and never more than the user holds — and the
 * debt repaid never exceeds closeFactor·debt.
 *
 * Aave v3 (aave/aave-v3-core, contracts/protocol/libraries/logic/
 * LiquidationLogic.sol at e0bfed13):
 *   _calculateDebt: closeFactor = healthFactor > CLOSE_FACTOR_HF_THRESHOLD
 *       (0.95e18) ? DEFAULT_LIQUIDATION_CLOSE_FACTOR (0.5e4)
 *       : MAX_LIQUIDATION_CLOSE_FACTOR (1e4) — the full close factor applies
 *       at HF <= 0.95, including exactly 0.95 (the NatSpec and the Aave docs
 *       say "below"; the code, and FORMULAS.md, say <=).
 *   _calculateAvailableCollateralToLiquidate: baseCollateral = debtPrice·
 *       debtToCover/collPrice; max = baseCollateral·bonus; if max > balance:
 *       collateral = balance, debtNeeded = collPrice·balance/debtPrice/bonus;
 *       fee = (collateral − collateral/bonus)·liquidationProtocolFee, and the
 *       liquidator gets collateral − fee.
 *   ValidationLogic: liquidatable iff HF < 1e18 (strict).
 * Aave v3.3+ (aave-dao/aave-v3-origin) adds a size rule — the full close
 * factor also when the reserve's collateral or debt is below
 * MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD — and a leftover-dust rule; neither is
 * modelled here.
 *
 * Toxic liquidation.  One collateral, one debt, both valued in the
 * numeraire: C = collateral value, D = debt value, LT the liquidation
 * threshold, b the bonus, so HF = C·LT/D.  Repaying d (0 < d < D) takes b·d
 * of collateral value (the protocol fee is part of it: it leaves the user
 * too), so
 *     HF' = (C − b·d)·LT / (D − d).
 *     HF' < HF  ⇔  (C − b·d)·D < C·(D − d)  ⇔  −b·d·D < −C·d  ⇔  C < b·D,
 * i.e. C/D < b, equivalently HF = C·LT/D < LT·b; at C = b·D the step leaves
 * HF unchanged.  Below that line every further liquidation makes the position
 * worse, and the last one (collateral capped) leaves bad debt.
 *
 * Compound v2 (compound-finance/compound-protocol, Comptroller.sol
 * liquidateCalculateSeizeTokens, liquidateBorrowAllowed; CToken.sol
 * seizeInternal): seizeTokens = repay·incentive·priceBorrowed /
 * (priceCollateral·exchangeRate); repay > closeFactor·borrowBalance is
 * refused (TOO_MUCH_REPAY), as is seizeTokens > the borrower's cTokens; a
 * protocolSeizeShare of the seized cTokens goes to reserves.
 */
#include <math.h>
#include <stdio.h>
#include "spiral/error.h"
#include "liq_fixed.h"

static int is_finite(double x) { return x == x && x > -INFINITY && x < INFINITY; }
static int amount_ok(double a) { return a > 0.0 && a < INFINITY; }

static int bad(char *msg, size_t n, int code, const char *who, const char *name,
               const char *want, double got)
{
    if (msg && n > 0) snprintf(msg, n, "%s: %s must be %s (got %g)", who, name, want, got);
    return code;
}

/* lo < v <= hi (lo_open) or lo <= v <= hi. */
static int check_range(char *msg, size_t n, const char *who, const char *name, double v,
                       double lo, int lo_open, double hi, const char *want)
{
    if (!is_finite(v)) return bad(msg, n, SP_EINVAL, who, name, "a finite number", v);
    if ((lo_open ? !(v > lo) : !(v >= lo)) || !(v <= hi))
        return bad(msg, n, SP_ERANGE, who, name, want, v);
    return 0;
}

struct sp_fixed_params sp_fixed_params_aave_v3(double bonus, double protocol_fee)
{
    struct sp_fixed_params p = { .close_factor = 0.5, .close_factor_max = 1.0,
                                 .hf_threshold = 0.95, .bonus = bonus,
                                 .protocol_fee = protocol_fee };
    return p;
}

int sp_fixed_params_check(const struct sp_fixed_params *p, char *msg, size_t n)
{
    static const char who[] = "fixed spread";
    int rc;
    if (msg && n > 0) msg[0] = '\0';
    if (!p) return bad(msg, n, SP_EINVAL, who, "params", "non-NULL", 0.0);
    if ((rc = check_range(msg, n, who, "close_factor", p->close_factor, 0.0, 1, 1.0,
                          "in (0, 1]")))
        return rc;
    if ((rc = check_range(msg, n, who, "close_factor_max", p->close_factor_max, 0.0, 1, 1.0,
                          "in (0, 1]")))
        return rc;
    if ((rc = check_range(msg, n, who, "hf_threshold", p->hf_threshold, 0.0, 1, 1.0,
                          "in (0, 1]")))
        return rc;
    if ((rc = check_range(msg, n, who, "bonus", p->bonus, 1.0, 0, INFINITY, ">= 1"))) return rc;
    if ((rc = check_range(msg, n, who, "protocol_fee", p->protocol_fee, 0.0, 0, 1.0,
                          "in [0, 1]")))
        return rc;
    return 0;
}

int sp_fixed_health_factor(double collateral, double coll_price, double lt, double debt,
                           double debt_price, double *hf)
{
    if (!hf || !(collateral >= 0.0 && collateral < INFINITY) || !amount_ok(coll_price) ||
        !(lt >= 0.0 && lt <= 1.0) || !(debt >= 0.0 && debt < INFINITY) || !amount_ok(debt_price))
        return SP_EINVAL;
    *hf = debt == 0.0 ? INFINITY : collateral * coll_price * lt / (debt * debt_price);
    return 0;
}

double sp_fixed_close_factor(const struct sp_fixed_params *p, double hf)
{
    return hf > p->hf_threshold ? p->close_factor : p->close_factor_max;
}

int sp_fixed_liquidate(const struct sp_fixed_params *p, double hf, double total_debt,
                       double user_collateral, double debt_price, double coll_price,
                       double debt_to_cover, struct sp_fixed_result *out)
{
    if (!p || !out || sp_fixed_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!amount_ok(total_debt) || !amount_ok(user_collateral) || !amount_ok(debt_price) ||
        !amount_ok(coll_price) || !amount_ok(debt_to_cover) || !(hf >= 0.0))
        return SP_EINVAL;
    if (!(hf < 1.0)) return SP_ESTATE;    /* HEALTH_FACTOR_NOT_BELOW_THRESHOLD */
    double cf = sp_fixed_close_factor(p, hf);
    double max_debt = total_debt * cf;
    double repaid = debt_to_cover < max_debt ? debt_to_cover : max_debt;
    double seized = repaid * debt_price / coll_price * p->bonus;
    int capped = 0;
    if (seized > user_collateral) {
        seized = user_collateral;
        repaid = seized * coll_price / debt_price / p->bonus;
        capped = 1;
    }
    if (!(seized < INFINITY && repaid < INFINITY)) return SP_ERANGE;
    double fee = (seized - seized / p->bonus) * p->protocol_fee;
    out->close_factor = cf;
    out->debt_repaid = repaid;
    out->collateral_seized = seized;
    out->protocol_fee = fee;
    out->to_liquidator = seized - fee;
    out->capped = capped;
    return 0;
}

int sp_fixed_is_toxic(double collateral_value, double debt_value, double bonus)
{
    return collateral_value < bonus * debt_value;
}

int sp_fixed_compound_params_check(const struct sp_fixed_compound_params *p, char *msg,
                                   size_t n)
{
    static const char who[] = "compound";
    int rc;
    if (msg && n > 0) msg[0] = '\0';
    if (!p) return bad(msg, n, SP_EINVAL, who, "params", "non-NULL", 0.0);
    if ((rc = check_range(msg, n, who, "close_factor", p->close_factor, 0.0, 1, 1.0,
                          "in (0, 1]")))
        return rc;
    if ((rc = check_range(msg, n, who, "incentive", p->incentive, 1.0, 0, INFINITY, ">= 1")))
        return rc;
    if ((rc = check_range(msg, n, who, "protocol_seize_share", p->protocol_seize_share, 0.0, 0,
                          1.0, "in [0, 1)")))
        return rc;
    if (!(p->protocol_seize_share < 1.0))
        return bad(msg, n, SP_ERANGE, who, "protocol_seize_share", "in [0, 1)",
                   p->protocol_seize_share);
    return 0;
}

int sp_fixed_compound_seize_tokens(const struct sp_fixed_compound_params *p, double repay,
                                   double price_borrowed, double price_collateral,
                                   double exchange_rate, double *seize_tokens)
{
    if (!p || !seize_tokens || sp_fixed_compound_params_check(p, NULL, 0)) return SP_EINVAL;
    if (!amount_ok(repay) || !amount_ok(price_borrowed) || !amount_ok(price_collateral) ||
        !amount_ok(exchange_rate))
        return SP_EINVAL;
    /* Comptroller: numerator = incentive·priceBorrowed, denominator =
     * priceCollateral·exchangeRate, ratio = numerator/denominator, seize = ratio·repay. */
    double s = p->incentive * price_borrowed / (price_collateral * exchange_rate) * repay;
    if (!(s < INFINITY)) return SP_ERANGE;
    *seize_tokens = s;
    return 0;
}

int sp_fixed_compound_liquidate(const struct sp_fixed_compound_params *p,
                                double borrow_balance, double borrower_ctokens, double repay,
                                double price_borrowed, double price_collateral,
                                double exchange_rate, struct sp_fixed_compound_result *out)
{
    if (!out || !amount_ok(borrow_balance) || !(borrower_ctokens >= 0.0)) return SP_EINVAL;
    double seize;
    int rc = sp_fixed_compound_seize_tokens(p, repay, price_borrowed, price_collateral,
                                            exchange_rate, &seize);
    if (rc) return rc;
    if (repay > p->close_factor * borrow_balance) return SP_ERANGE;   /* TOO_MUCH_REPAY */
    if (seize > borrower_ctokens) return SP_ERANGE;         /* LIQUIDATE_SEIZE_TOO_MUCH */
    double prot = seize * p->protocol_seize_share;
    out->seize_tokens = seize;
    out->to_reserves = prot;
    out->to_liquidator = seize - prot;
    return 0;
}
