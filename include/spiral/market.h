/*
 * spiral/market.h — trading venues and the trades between agents and them.
 *
 * A market module (scenario section `markets`, kind "market") is a venue for
 * one pair: a *base* token priced in a *quote* token (ETH/USDC: base ETH,
 * quote USDC; stETH/ETH: base stETH, quote ETH).  Its ops table embeds
 * `struct sp_module_ops` first and adds what every venue can do:
 *   - price: the mid/spot price, quote per base (also ops->base.price);
 *   - quote: what a market order of a given size would get, no state change;
 *   - swap:  execute a market order for an agent, moving tokens through the
 *            ledger (the venue's own balances are its reserves/escrow).
 * Kind-specific operations (limit orders, liquidity) are in the venue's own
 * header (market/cpmm_market.h, market/lob_market.h, ...).
 *
 * Every executed trade is recorded in /events/trades through
 * sp_trade_record(), with its cause and cascade generation.
 */
#ifndef SPIRAL_MARKET_H
#define SPIRAL_MARKET_H

#include "spiral/ledger.h"
#include "spiral/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* BUY: pay quote, receive base.  SELL: pay base, receive quote. */
enum sp_side { SP_BUY = 0, SP_SELL = 1 };

/* Why a trade happened (the /events/trades `cause` codes; append only). */
#define SP_CAUSE_MAP(X)                                                        \
    X(ARBITRAGE, "arbitrage") X(LIQUIDATION, "liquidation") X(LOOP, "loop")     \
    X(DELEVERAGE, "deleverage") X(NOISE, "noise") X(REDEMPTION, "redemption")   \
    X(SCRIPTED, "scripted") X(EXTERNAL, "external") X(MARKET_MAKING, "market_making") \
    X(VALUE, "value") X(MOMENTUM, "momentum") X(LIQUIDITY, "liquidity")

enum sp_cause {
#define SP_CAUSE_ENUM_(name, text) SP_CAUSE_##name,
    SP_CAUSE_MAP(SP_CAUSE_ENUM_)
#undef SP_CAUSE_ENUM_
    SP_CAUSE_COUNT
};

/* NULL-terminated cause names, in code order. */
extern const char *const sp_cause_names[];

struct sp_swap {
    sp_id agent;          /* who trades (pays and receives through the ledger) */
    enum sp_side side;
    double amount_in;     /* quote paid for BUY, base paid for SELL */
    double min_out;       /* fail with SP_ERANGE (nothing moves) below this */
    int cause;            /* enum sp_cause */
    int generation;       /* cascade generation (0 = exogenous) */
};

struct sp_swap_result {
    double amount_in;     /* actually paid (a book may fill less) */
    double amount_out;    /* received */
    double price_before, price_after;   /* venue price, quote per base */
};

struct sp_market_ops {
    struct sp_module_ops base;
    /* The pair: base and quote token ids. */
    void (*pair)(const void *self, sp_token *base, sp_token *quote);
    double (*price)(const void *self);
    int (*quote)(const void *self, enum sp_side side, double amount_in, double *amount_out);
    int (*swap)(void *self, struct sp_sim *sim, const struct sp_swap *req,
                struct sp_swap_result *res);
    /* Time integral of the price since t = 0 (quote per base x seconds) up to
     * `now`, as Uniswap v2's price0CumulativeLast: TWAP over [a, b] =
     * (cumulative(b) - cumulative(a)) / (b - a).  The price counted over an
     * interval is the one in force during it (set by the last trade before). */
    double (*cumulative)(const void *self, sp_time now);
};

/* The market ops of entity `id`, or NULL if it is not a market. */
const struct sp_market_ops *sp_market_ops_of(const struct sp_sim *sim, sp_id id);

/* Execute a swap on market `venue`: dispatches to its ops (which move the
 * tokens and record the trade).  SP_EINVAL if `venue` is not a market. */
int sp_market_swap(struct sp_sim *sim, sp_id venue, const struct sp_swap *req,
                   struct sp_swap_result *res);

/* One row of /events/trades. */
struct sp_trade {
    sp_id venue, agent;
    int cause, side, generation;
    double amount_in, amount_out, price_before, price_after;
};

/* Record a trade at the current time (venues call this from swap). */
void sp_trade_record(struct sp_sim *sim, const struct sp_trade *tr);

#ifdef __cplusplus
}
#endif
#endif
