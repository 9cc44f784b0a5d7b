/*
 * liquidation.h — how positions of a lending protocol are liquidated: one
 * mechanism per protocol, chosen by the `liquidation:` mapping of its
 * scenario item (`mechanism:` fixed_spread | dutch_auction |
 * english_auction | amm_direct | none), and the calls keepers make.
 *
 *   fixed_spread     a liquidator repays up to close factor × debt and
 *                    receives debt·bonus worth of collateral at the oracle
 *                    price (Aave v3 LiquidationLogic; `variant: compound_v2`
 *                    for Compound's liquidateBorrow), then sells it where it
 *                    likes (market/liq_fixed.h has the arithmetic).
 *   dutch_auction    the protocol (or a keeper: `kick: keeper`) barks a
 *                    liquidatable position: its collateral goes to a falling-
 *                    price auction for tab = debt·chop; keepers take slices;
 *                    redo after tail or below cusp; leftover lot back to the
 *                    owner; limits Hole/hole (market/liq_dutch.h).
 *   english_auction  Maker flip: tend, then dent; each bid extends to now +
 *                    ttl; deal at expiry; restart with no bids
 *                    (market/liq_english.h).
 *   amm_direct       the protocol seizes the collateral and sells it itself
 *                    into `venue`, repays from the proceeds; surplus to the
 *                    owner, shortfall is bad debt.
 *
 * Every liquidation and every auction settlement is a row of
 * /events/liquidations; every auction a row of /events/auctions when it
 * closes.  Each carries the position's cascade GENERATION: 0 when the
 * oracle update that made the position liquidatable read no market moved by
 * liquidation sales, g + 1 when it read a market moved by generation-g sales
 * (a liquidation's sales are trades of its generation, cause
 * SP_CAUSE_LIQUIDATION).
 *
 * Calls return 0 or an SP_E* code and change nothing on error: SP_EINVAL
 * (not a protocol, wrong mechanism, bad amount), SP_ESTATE (position not
 * liquidatable, auction not live / not biddable / needs redo), SP_ERANGE (a
 * rule: close factor, beg, max price, dust, Hole), SP_ENOTFOUND (no such
 * position or auction); a payer short of funds is SP_ERANGE.
 */
#ifndef SPIRAL_LIQUIDATION_H
#define SPIRAL_LIQUIDATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "spiral/ledger.h"
#include "spiral/types.h"

struct sp_sim;

enum sp_liq_mechanism {
    SP_LIQ_NONE = 0,
    SP_LIQ_FIXED_SPREAD = 1,
    SP_LIQ_DUTCH = 2,
    SP_LIQ_ENGLISH = 3,
    SP_LIQ_AMM_DIRECT = 4,
};

/* The protocol's mechanism (SP_LIQ_NONE for a non-protocol). */
enum sp_liq_mechanism sp_liq_mechanism(const struct sp_sim *sim, sp_id proto);

/* The cascade generation of a liquidatable position (the update that made
 * it liquidatable), -1 if it is not liquidatable. */
int sp_liq_generation(struct sp_sim *sim, sp_id proto, sp_id owner);

/* ---- fixed spread --------------------------------------------------------- */

struct sp_liq_result {
    double debt_repaid;        /* debt token units, paid by the liquidator */
    double collateral_seized;  /* collateral leaving the position */
    double to_liquidator;      /* of it, to the liquidator */
    double protocol_fee;       /* of it, to the protocol (Aave liquidationProtocolFee) */
    double bad_debt;           /* numeraire written off because nothing was left */
    int capped;                /* the position's collateral was the limit */
    int generation;
};

/* liquidationCall: `liquidator` repays up to `debt_to_cover` of owner's debt
 * in `debt_tok` and receives `coll_tok`.  When the position has no
 * collateral left and still owes, its remaining debt is written off. */
int sp_liq_fixed(struct sp_sim *sim, sp_id proto, sp_id liquidator, sp_id owner,
                 sp_token debt_tok, sp_token coll_tok, double debt_to_cover,
                 struct sp_liq_result *out);

/* ---- auctions (dutch_auction, english_auction) ---------------------------- */

struct sp_auction_view {
    uint32_t id;
    sp_id owner;
    sp_token collateral, debt; /* what is sold, what it is paid in */
    bool live;
    int phase;                 /* english: 0 tend, 1 dent; dutch: 0 */
    double lot, tab;           /* collateral on offer, debt token still wanted */
    double price;              /* dutch: current price (debt per collateral) */
    double top;                /* dutch: price at the start of this run */
    bool needs_redo;           /* dutch */
    double bid;                /* english: the current bid */
    sp_id guy;                 /* english: the high bidder (SP_ID_NONE: none) */
    int n_bids;
    sp_time start, tic, end;   /* kick; dutch: run start, english: bid expiry; english end */
    double oracle_price;       /* the protocol's price of the collateral now, in
                                  debt token per collateral (as `price`) */
    int generation;
};

/* Open an auction for a liquidatable position (Dog.bark / Cat.bite);
 * `keeper` gets the incentive (dutch: tip + chip·tab, minted to it in the
 * debt token).  *id (may be NULL) gets the auction's id.
 * The auction takes ALL the position's collateral of its largest asset and
 * ALL its debt of its largest debt asset (a cdp vault: the vault); the debt
 * becomes the protocol's claim on the proceeds (liquidation.c).  The
 * protocol itself may be the keeper (no incentive then).  Auction ids are
 * 1, 2, ... per protocol and never reused. */
int sp_liq_bark(struct sp_sim *sim, sp_id proto, sp_id keeper, sp_id owner, uint32_t *id);
/* Ids of live auctions, oldest first: the count, up to n of them in ids. */
size_t sp_liq_auctions(struct sp_sim *sim, sp_id proto, uint32_t *ids, size_t n);
int sp_liq_auction(struct sp_sim *sim, sp_id proto, uint32_t id, struct sp_auction_view *out);
/* Dutch: buy up to `amt` collateral at the current price if it is <= max;
 * *bought / *paid (may be NULL) get what moved. */
int sp_liq_take(struct sp_sim *sim, sp_id proto, sp_id keeper, uint32_t id, double amt,
                double max_price, double *bought, double *paid);
/* Dutch: restart a run that needs it at the current oracle price·buf. */
int sp_liq_redo(struct sp_sim *sim, sp_id proto, sp_id keeper, uint32_t id);
/* English: raise the bid on the lot (tend) or, once bid == tab, lower the
 * lot (dent).  The bidder pays its bid now; the outbid bidder is refunded. */
int sp_liq_tend(struct sp_sim *sim, sp_id proto, sp_id bidder, uint32_t id, double bid);
int sp_liq_dent(struct sp_sim *sim, sp_id proto, sp_id bidder, uint32_t id, double lot);
/* English: settle (deal) an auction whose bid expired or that ended, or
 * restart (tick) one that ended without bids.  Anyone may call. */
int sp_liq_deal(struct sp_sim *sim, sp_id proto, uint32_t id);

/* Auctions are announced to subscribers: an event (kind) to `subscriber`
 * at each kick and redo, data.u[0] = auction id, data.u[1] = protocol. */
int sp_liq_subscribe_auctions(struct sp_sim *sim, sp_id proto, sp_id subscriber,
                              uint16_t kind);

#endif
