/*
 * chain.h — the chain: a mempool, blocks and an EIP-1559 base fee (scenario
 * section `chain:`, one entity named "chain").
 *
 * Agents that act on protocols (liquidations, auction bids and takes,
 * rebalances, loops) do not act at once when a chain is configured: they
 * submit a transaction that names an event — (kind, data), addressed to the
 * sender itself — with gas terms.  At each block (every `block_time`) the
 * chain includes pending transactions, highest priority fee first (the
 * effective tip min(priority_fee, max_fee − base fee); ties: submission
 * order), while their gas fits the block's gas limit and their
 * fee cap is at least the block's base fee; each included transaction is
 * delivered to its sender as its event at the block's time, in block order,
 * priority class SP_PRIO_CHAIN, and the sender performs the action then.
 * The world may have changed since it decided: the handler must re-check
 * (a contract call that no longer applies reverts; gas is still paid).  A
 * transaction still pending at its deadline is dropped; its sender then
 * gets `drop_kind` (when non-zero) with the same data.
 *
 * Base fee (EIP-1559): b' = b·(1 + (gas_used − target)/target/8), target =
 * gas_limit/2 (`elasticity`, `max_change_denominator`), never below
 * `min_base_fee`.  Background demand (Poisson
 * transactions with their own fee terms; `spikes` scale their rate and tips
 * over a window) competes for block space: that is how keepers with fixed
 * fee caps fail to get in during congestion.
 *
 * Without a `chain:` section, or with `type: instant`, a submitted
 * transaction is delivered at the current time (priority SP_PRIO_CHAIN, so
 * after the submitting handler returns), with no fee and no waiting.
 *
 * Delivery: each delivered transaction is its own dispatched event; the
 * chain entity receives it, sets the "current transaction" context below,
 * turns the event into the sender's (target, kind, data) and calls the
 * sender's on_event with it.  A handler may re-queue that event
 * (sp_sim_again): it comes back as a plain event of its own, outside any
 * transaction.  See the top of market/chain.c.
 *
 * Fees: gas × (base fee + tip) gwei, 1 gwei = 1e-9 of the chain's
 * `gas_token` (ETH).  When the chain has a gas token the fee is moved from
 * the sender to the chain entity at inclusion (the sender may go without:
 * then the fee is recorded, not moved — keepers account for it anyway).
 */
#ifndef SPIRAL_CHAIN_H
#define SPIRAL_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/types.h"

struct sp_sim;

struct sp_tx {
    sp_id sender;              /* receives the event */
    uint16_t kind;             /* event kind delivered at inclusion */
    uint16_t drop_kind;        /* event kind delivered if dropped (0: none) */
    union sp_event_data data;  /* the event's payload, copied */
    double gas;                /* gas units the call uses, > 0 */
    double max_fee;            /* fee cap, gwei per gas (EIP-1559 maxFeePerGas) */
    double priority_fee;       /* tip, gwei per gas (maxPriorityFeePerGas) */
    sp_time deadline;          /* dropped when not included by then; 0 = never */
};

/* Submit.  SP_EINVAL for a malformed tx (sender not an entity with an
 * on_event, gas not > 0 or above the gas limit, a fee cap or tip negative or
 * not finite, a negative deadline); SP_ENOMEM.  *tx_id (may be NULL) gets an
 * id unique in the run: 1, 2, ... in submission order (0 in a hand-built sim
 * without a chain entity, where the event is simply scheduled at now).
 * A tx whose deadline comes before the next block is dropped at once: its
 * drop_kind is delivered at the deadline (or now, if that has passed). */
int sp_chain_submit(struct sp_sim *sim, const struct sp_tx *tx, uint64_t *tx_id);

/* Whether transactions execute at once (no chain, or `type: instant`). */
bool sp_chain_instant(struct sp_sim *sim);
/* The base fee of the next block, gwei per gas (0 when instant). */
double sp_chain_base_fee(struct sp_sim *sim);
/* Transactions waiting in the mempool (the agents', not background demand). */
size_t sp_chain_pending(struct sp_sim *sim);
/* Inside the handler of a delivered transaction: its id, the fee it paid
 * (gas token units) and the time it was submitted.  0 / 0 / -1 elsewhere. */
uint64_t sp_chain_current_tx(struct sp_sim *sim);
double sp_chain_current_fee(struct sp_sim *sim);
sp_time sp_chain_current_submitted(struct sp_sim *sim);
/* (The context is also set, with fee 0, while a dropped transaction's
 * drop_kind is handled.) */

/* Time of the next block (now when instant) and the block interval (0 when
 * instant): keepers set deadlines and adaptive fee caps with them. */
sp_time sp_chain_next_block(struct sp_sim *sim);
sp_time sp_chain_block_time(struct sp_sim *sim);
/* The token fees are paid in, or -1 (instant, or no `gas_token`). */
sp_token sp_chain_gas_token(struct sp_sim *sim);

/* The EIP-1559 base-fee update, in gwei per gas, without the chain's floor
 * (https://eips.ethereum.org/EIPS/eip-1559): unchanged when gas_used equals
 * the target; else b ± b·|gas_used − target|/target/denominator, an
 * increase being at least 1 wei (1e-9 gwei).  Real arithmetic, no wei
 * rounding. */
double sp_chain_next_base_fee(double base, double gas_used, double gas_target,
                              double denominator);

#endif
