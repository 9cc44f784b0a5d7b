/*
 * lending.h — lending protocols (scenario section `protocols`, kind
 * "protocol"): what agents and liquidation mechanisms can do with them.
 *
 * Two types share this API and market/lending.c (positions, the
 * liquidation-price index, accrual, bad debt, recording):
 *   - `pool` (Aave/Compound-like): per-asset reserves.  Suppliers of a
 *     borrowable asset get its receipt token (a ledger token of kind
 *     receipt, issued by the pool); borrowers post several collaterals and
 *     borrow several assets.  Kinked utilization interest accrues to
 *     suppliers through the receipt's exchange rate.
 *   - `cdp` (Maker-like vaults): one stablecoin, minted when borrowed and
 *     burned when repaid; per-collateral liquidation ratio, penalty (chop),
 *     debt ceiling (line), stability fee.
 *
 * Positions: at most one per (protocol, owner).  Collateral is held by the
 * protocol entity in the ledger (custody), not lent out (as Compound v3);
 * the position records the amounts.  Debt is stored scaled by a per-asset
 * borrow index (Aave's variable debt), so interest needs no per-position
 * update.  Amounts are token units; values are in the numeraire at the
 * protocol's oracle prices (an asset's `oracle`, times its `quoted_in`
 * oracle when the feed is priced in another token, e.g. stETH/ETH × ETH/USD).
 *
 *   HF = Σ_a c_a·p_a·(1 − haircut_a)·LT_a / Σ_j d_j·p_j   (FORMULAS.md, Aave v3)
 *   liquidatable iff HF < 1; a cdp's LT is 1 / liquidation_ratio.
 *
 * Liquidatable positions are tracked without scanning (market/liq_index.h):
 * see lending.c.
 *
 * Every call returns 0 or an SP_E* code and changes nothing on error:
 * SP_EINVAL (not a protocol, asset not listed for that use, amount < 0 or
 * not finite), SP_ERANGE (a limit: borrowing power, HF, cap, ceiling, cash),
 * SP_ENOTFOUND (no position), SP_ESTATE (no oracle price yet).
 */
#ifndef SPIRAL_LENDING_H
#define SPIRAL_LENDING_H

#include <stdbool.h>
#include <stddef.h>
#include "spiral/ledger.h"
#include "spiral/types.h"

struct sp_sim;

/* Whether entity `proto` is a lending protocol. */
bool sp_lending_is(const struct sp_sim *sim, sp_id proto);

/* ---- assets ---------------------------------------------------------------- */

struct sp_lending_asset {
    sp_token token;
    sp_token receipt;          /* pool, borrowable: its receipt token; else -1 */
    bool collateral, borrowable;
    double ltv, lt, bonus, haircut;   /* fractions; cdp: ltv = lt = 1/mat, bonus = chop − 1 */
    double supply_cap, borrow_cap;    /* token units, 0 = none (cdp: borrow_cap = line) */
};

/* Number of assets listed; asset i's parameters; the index of `tok` (-1). */
size_t sp_lending_asset_count(const struct sp_sim *sim, sp_id proto);
int    sp_lending_asset_info(const struct sp_sim *sim, sp_id proto, size_t i,
                             struct sp_lending_asset *out);
int    sp_lending_asset_index(const struct sp_sim *sim, sp_id proto, sp_token tok);
/* The protocol's price of `tok` in the numeraire (NAN before its oracle
 * delivered; NAN for a token not listed). */
double sp_lending_price(struct sp_sim *sim, sp_id proto, sp_token tok);
/* Pool: cash available to borrow or withdraw, total debt, utilization,
 * borrow APR now, receipt exchange rate (underlying per receipt). */
double sp_lending_cash(struct sp_sim *sim, sp_id proto, sp_token tok);
double sp_lending_total_debt(struct sp_sim *sim, sp_id proto, sp_token tok);
double sp_lending_borrow_rate(struct sp_sim *sim, sp_id proto, sp_token tok);
double sp_lending_exchange_rate(struct sp_sim *sim, sp_id proto, sp_token tok);

/* ---- suppliers (pool) ------------------------------------------------------- */

/* `agent` pays `amount` of borrowable `tok`, receives receipt tokens. */
int sp_lending_supply(struct sp_sim *sim, sp_id proto, sp_id agent, sp_token tok,
                      double amount, double *receipts);
/* `agent` returns `receipts` of tok's receipt token for the underlying
 * (SP_ERANGE beyond the pool's cash). */
int sp_lending_withdraw(struct sp_sim *sim, sp_id proto, sp_id agent, sp_token tok,
                        double receipts, double *amount);

/* ---- borrowers ---------------------------------------------------------------- */

/* Move `amount` of collateral `tok` from the owner's wallet into its
 * position (created on first deposit). */
int sp_lending_deposit(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                       double amount);
/* Take collateral back, if the position stays within its borrowing power
 * (Σ c·p·(1−h)·LTV >= debt value) afterwards. */
int sp_lending_withdraw_collateral(struct sp_sim *sim, sp_id proto, sp_id owner,
                                   sp_token tok, double amount);
/* Borrow `amount` of `tok` to the owner's wallet, within borrowing power,
 * caps (cdp: ceiling) and (pool) cash. */
int sp_lending_borrow(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                      double amount);
/* `payer` repays up to `amount` of owner's debt in `tok`; *repaid (may be
 * NULL) gets what was repaid (at most the debt). */
int sp_lending_repay(struct sp_sim *sim, sp_id proto, sp_id payer, sp_id owner,
                     sp_token tok, double amount, double *repaid);

/* A position's state at the protocol's prices now. */
struct sp_lending_position {
    double collateral_value;   /* Σ c·p */
    double weighted_value;     /* Σ c·p·(1−h)·LT   (HF numerator) */
    double borrow_power;       /* Σ c·p·(1−h)·LTV */
    double debt_value;         /* Σ d·p */
    double hf;                 /* +inf without debt */
    bool liquidatable;
};
int sp_lending_position(struct sp_sim *sim, sp_id proto, sp_id owner,
                        struct sp_lending_position *out);
/* Collateral and (accrued) debt of one asset; 0 without a position. */
double sp_lending_collateral(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok);
double sp_lending_debt(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok);
/* How much more of `tok` the owner could borrow now (power, caps, cash). */
double sp_lending_max_borrow(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok);

/* ---- liquidation hooks (used by the mechanisms of the liquidation issue) ---- */

/* Number of liquidatable positions; up to n of their owners into `owners`
 * (may be NULL when n = 0), in owner-id order. */
size_t sp_lending_liquidatable(struct sp_sim *sim, sp_id proto, sp_id *owners, size_t n);
/* Events when a position becomes liquidatable (data.u[0] = owner,
 * data.u[1] = protocol, data.i[2] = 1) or healthy again (data.i[2] = 0),
 * addressed to `subscriber` with `kind`, at the time of the price update
 * that changed it, priority SP_PRIO_AGENT. */
int sp_lending_subscribe(struct sp_sim *sim, sp_id proto, sp_id subscriber, uint16_t kind);
/* Move `amount` of collateral `tok` out of a position to `to`, no health
 * check (the mechanism has checked liquidatability and its rules). */
int sp_lending_seize(struct sp_sim *sim, sp_id proto, sp_id owner, sp_token tok,
                     double amount, sp_id to);
/* The owner's collateral is gone (or the mechanism is done): its remaining
 * debt becomes bad debt — absorbed by the reserve first, then (pool)
 * socialised to suppliers by lowering the receipt exchange rate.
 * *bad_debt (may be NULL) gets the value written off (numeraire). */
int sp_lending_write_off(struct sp_sim *sim, sp_id proto, sp_id owner, double *bad_debt);
/* Bad debt written off so far (numeraire, valued at write-off) and the
 * reserve of `tok` now (token units). */
double sp_lending_bad_debt(struct sp_sim *sim, sp_id proto);
double sp_lending_reserve(struct sp_sim *sim, sp_id proto, sp_token tok);

/* ---- iteration (metrics, snapshots) ---------------------------------------- */

/* Number of open positions; the owner of the i-th, in creation order
 * (SP_ID_NONE past the end).  Positions closed to zero stay listed. */
size_t sp_lending_position_count(const struct sp_sim *sim, sp_id proto);
sp_id  sp_lending_position_owner(const struct sp_sim *sim, sp_id proto, size_t i);

/* Bytes allocated for positions: the position arrays at capacity, the
 * owner map and the liquidation indexes (benchmarks). */
size_t sp_lending_bytes(const struct sp_sim *sim, sp_id proto);

/* Debug: verify the protocol's invariants in O(positions · assets) — the
 * protocol's ledger balance of each token equals its cash plus collateral in
 * custody; totals equal the sums over positions; the index agrees with
 * HF < 1 recomputed from the amounts (away from HF = 1 by 1e-9); the
 * liquidatable count.  0 or SP_EMODEL (reported through sp_sim_fail). */
int sp_lending_check(struct sp_sim *sim, sp_id proto);

#endif
