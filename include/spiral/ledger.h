/*
 * spiral/ledger.h — who holds how much of every token.
 *
 * Every balance in the simulation lives here: agents' wallets, AMM reserves,
 * order-book escrow, protocol vaults.  A balance is a double in token units,
 * indexed by (entity, token); tokens are the scenario's `tokens` list, in
 * order (sp_token is the index).  Value only moves through transfer, mint
 * and burn, which keep a running supply per token, so conservation is
 * checkable at any time: sp_ledger_check() verifies that every token's
 * supply equals the sum of its balances (1e-9 relative) and that no balance
 * is negative.  The engine runs that check after every batch of events in
 * debug and test builds.
 *
 * A transfer larger than the sender's balance is a model bug, not a
 * clamp: it fails with SP_EMODEL and the run fails with a message naming
 * the entity and token.  Amounts below SP_LEDGER_DUST of the sender's
 * balance in excess are forgiven as floating-point noise.
 */
#ifndef SPIRAL_LEDGER_H
#define SPIRAL_LEDGER_H

#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_sim;
typedef int sp_token;               /* index into the scenario's tokens; -1 = none */

#define SP_LEDGER_DUST 1e-9         /* relative tolerance of transfers and checks */

/* Token by name, or -1.  Names and count of tokens. */
sp_token sp_token_find(const struct sp_sim *sim, const char *name);
size_t sp_token_count(const struct sp_sim *sim);
const char *sp_token_name(const struct sp_sim *sim, sp_token tok);

double sp_balance(const struct sp_sim *sim, sp_id holder, sp_token tok);
double sp_supply(const struct sp_sim *sim, sp_token tok);

/* Move `amount` >= 0 of `tok` from one holder to another. */
int sp_transfer(struct sp_sim *sim, sp_token tok, sp_id from, sp_id to, double amount);
/* Create / destroy `amount` >= 0 of `tok` (initial endowments, LP shares,
 * receipt tokens, minted stablecoins). */
int sp_mint(struct sp_sim *sim, sp_token tok, sp_id to, double amount);
int sp_burn(struct sp_sim *sim, sp_token tok, sp_id from, double amount);

/* Conservation and non-negativity over every token: 0, or SP_EMODEL with
 * the first violation reported through sp_sim_fail. */
int sp_ledger_check(struct sp_sim *sim);

#ifdef __cplusplus
}
#endif
#endif
