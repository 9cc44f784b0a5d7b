/*
 * vault.h — what other agents (depositors, scripted actions, tests) can do
 * with a yield vault (agents/vault.c, scenario `agents` entry of type
 * "vault"): an ERC-4626 vault over one `asset` token that issues a
 * vault_share token and runs a leveraged loop on a lending protocol.
 *
 * Units: `assets` are units of the vault's asset token, `shares` units of its
 * share token.  NAV is in asset units, valued at the lending protocol's
 * oracle prices (see vault.c); share price = NAV / shares, 1 before the first
 * deposit.
 *
 * Every call returns 0 or an SP_E* code and changes nothing on error:
 * SP_EINVAL (not a vault, agent not an entity, amount <= 0 or not finite),
 * SP_ERANGE (the agent holds too little, or the vault has no positive NAV to
 * price shares against), SP_ESTATE (no oracle price yet while the vault has
 * debt).  A redemption the vault cannot raise in full is paid in part
 * (returns 0; see sp_vault_redeem).
 */
#ifndef SPIRAL_VAULT_H
#define SPIRAL_VAULT_H

#include <stdbool.h>
#include "spiral/types.h"

struct sp_sim;

/* Whether entity `id` is a vault agent. */
int sp_vault_is(const struct sp_sim *sim, sp_id id);

/* ERC-4626 deposit: `agent` pays `assets` of the vault's asset and receives
 * shares = assets · supply / NAV (1:1 for the first deposit) into *shares
 * (may be NULL).  The assets stay idle in the vault until its next keeper
 * rebalance puts them to work. */
int sp_vault_deposit(struct sp_sim *sim, sp_id vault, sp_id agent, double assets,
                     double *shares);

/* ERC-4626 redeem: burns `shares` of `agent`'s shares and pays
 * shares · NAV / supply of the asset, NAV taken *before* any unwinding.  If
 * the vault's idle asset is short it first deleverages through its venue
 * (withdraw collateral within borrowing power, sell for the debt token,
 * repay; repeat) so that the leverage of what stays is unchanged; the
 * slippage it pays lowers NAV for those who stay.  If the venue will not
 * take the unwind within max_slippage, it pays only what it can without
 * raising the leverage of those who stay, and burns only that fraction of
 * `shares` (the rest stays with the holder).  *assets (may be NULL)
 * receives what was paid; compare it with shares · share price. */
int sp_vault_redeem(struct sp_sim *sim, sp_id vault, sp_id agent, double shares,
                    double *assets);

/* Now, at the protocol's oracle prices (NAN for a non-vault, or while it has
 * debt and no oracle price has arrived): */
double sp_vault_nav(struct sp_sim *sim, sp_id vault);          /* asset units */
double sp_vault_share_price(struct sp_sim *sim, sp_id vault);  /* asset per share */
double sp_vault_leverage(struct sp_sim *sim, sp_id vault);     /* collateral value / NAV */

/* Run the keeper's check now, as at a `rebalance_every` tick: deposit idle
 * asset as collateral and, if leverage is outside [target − band, target +
 * band], trade to the target.  Returns 1 if it traded, 0 if not, or an
 * SP_E* code. */
int sp_vault_rebalance(struct sp_sim *sim, sp_id vault);

#endif
