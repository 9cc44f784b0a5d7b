/*
 * liq_fixed.h — fixed-spread liquidation (Aave v3 LiquidationLogic,
 * Compound v2 Comptroller.liquidateCalculateSeizeTokens), in double.
 *
 * A liquidator repays part of an unhealthy position's debt and receives
 * collateral worth that repayment times a fixed bonus (incentive) at the
 * oracle price.  One collateral and one debt asset per call, as in
 * liquidationCall / liquidateBorrow; health factors and prices come from the
 * caller (the lending module).  Amounts are token units, prices numeraire per
 * unit.  Pure mechanics: no simulation state, no allocation; every fallible
 * function returns 0 or a negative SP_E* code and writes nothing on error.
 *
 * The toxic-liquidation condition (derivation in liq_fixed.c): a liquidation
 * step lowers the health factor iff collateral value / debt value < bonus,
 * equivalently HF < LT·bonus; at equality HF is unchanged.
 */
#ifndef SPIRAL_LIQ_FIXED_H
#define SPIRAL_LIQ_FIXED_H

#include <stddef.h>

/* ---- Aave v3 ------------------------------------------------------------ */

struct sp_fixed_params {
    double close_factor;        /* share of the debt repayable at once, (0, 1] (0.5) */
    double close_factor_max;    /* ... when HF <= hf_threshold, (0, 1] (1.0) */
    double hf_threshold;        /* CLOSE_FACTOR_HF_THRESHOLD, (0, 1] (0.95) */
    double bonus;               /* liquidation bonus, >= 1 (e.g. 1.05) */
    double protocol_fee;        /* share of the bonus collateral to the treasury, [0, 1] */
};

/* Aave v3's constants with the given bonus and protocol fee. */
struct sp_fixed_params sp_fixed_params_aave_v3(double bonus, double protocol_fee);

/* What one liquidation call does.  collateral_seized leaves the user:
 * to_liquidator + protocol_fee of it.  capped: the user's collateral was the
 * limit and debt_repaid was recomputed from it. */
struct sp_fixed_result {
    double close_factor;
    double debt_repaid;
    double collateral_seized;
    double to_liquidator;
    double protocol_fee;
    int capped;
};

/* 0 if in range; SP_EINVAL (NULL, NaN) or SP_ERANGE (close factors outside
 * (0, 1], threshold outside (0, 1], bonus < 1, fee outside [0, 1]) with a
 * message naming the parameter (if msg_len > 0). */
int sp_fixed_params_check(const struct sp_fixed_params *p, char *msg, size_t msg_len);

/* HF = collateral·coll_price·lt / (debt·debt_price) (GenericLogic, one
 * asset each); +∞ when debt == 0. */
int sp_fixed_health_factor(double collateral, double coll_price, double lt, double debt,
                           double debt_price, double *hf);

/* close_factor if hf > hf_threshold, else close_factor_max (LiquidationLogic
 * _calculateDebt: `healthFactor > CLOSE_FACTOR_HF_THRESHOLD ? DEFAULT : MAX`). */
double sp_fixed_close_factor(const struct sp_fixed_params *p, double hf);

/* liquidationCall for a position with health factor hf < 1 (SP_ESTATE
 * otherwise), total_debt > 0 of the debt asset, user_collateral > 0:
 *   debt_repaid = min(debt_to_cover, total_debt·closeFactor)
 *   seized      = debt_repaid·debt_price/coll_price·bonus
 *   if seized > user_collateral: seized = user_collateral,
 *                                debt_repaid = seized·coll_price/debt_price/bonus
 *   protocol_fee = (seized − seized/bonus)·protocol_fee share */
int sp_fixed_liquidate(const struct sp_fixed_params *p, double hf, double total_debt,
                       double user_collateral, double debt_price, double coll_price,
                       double debt_to_cover, struct sp_fixed_result *out);

/* 1 if a liquidation step at this bonus lowers HF (collateral_value <
 * bonus·debt_value), 0 if it raises it or leaves it unchanged.  Values in
 * the numeraire, unweighted by LT. */
int sp_fixed_is_toxic(double collateral_value, double debt_value, double bonus);

/* ---- Compound v2 -------------------------------------------------------- */

struct sp_fixed_compound_params {
    double close_factor;        /* closeFactorMantissa, (0, 1] (0.5) */
    double incentive;           /* liquidationIncentiveMantissa, >= 1 (1.08) */
    double protocol_seize_share;/* protocolSeizeShareMantissa, [0, 1) (0.028; 0 before 2021) */
};

struct sp_fixed_compound_result {
    double seize_tokens;        /* cTokens leaving the borrower */
    double to_liquidator;       /* seize_tokens·(1 − protocol_seize_share) */
    double to_reserves;         /* the protocol's share, in cTokens */
};

int sp_fixed_compound_params_check(const struct sp_fixed_compound_params *p, char *msg,
                                   size_t msg_len);

/* seizeTokens = repay·incentive·price_borrowed / (price_collateral·exchange_rate)
 * (Comptroller.liquidateCalculateSeizeTokens); exchange_rate is underlying per
 * cToken. */
int sp_fixed_compound_seize_tokens(const struct sp_fixed_compound_params *p, double repay,
                                   double price_borrowed, double price_collateral,
                                   double exchange_rate, double *seize_tokens);

/* liquidateBorrow for a borrower already in shortfall: SP_ERANGE if repay >
 * close_factor·borrow_balance (TOO_MUCH_REPAY) or the seizure exceeds the
 * borrower's cTokens (LIQUIDATE_SEIZE_TOO_MUCH) — Compound refuses rather
 * than clamps. */
int sp_fixed_compound_liquidate(const struct sp_fixed_compound_params *p,
                                double borrow_balance, double borrower_ctokens, double repay,
                                double price_borrowed, double price_collateral,
                                double exchange_rate, struct sp_fixed_compound_result *out);

#endif
