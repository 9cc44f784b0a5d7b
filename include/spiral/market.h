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

#include <stdbool.h>
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
    bool propagates;      /* not a liquidation sale, but driven by one (an arbitrage
                             that follows a liquidation-moved venue): it tags the
                             venue like a liquidation sale of `generation` does */
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
    /* The venue's liquidation tag (struct sp_venue_tag, embedded in its
     * state), or NULL: a venue without one is never tagged or watched. */
    struct sp_venue_tag *(*tag)(void *self);
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
    bool propagates;      /* as struct sp_swap */
};

/* Record a trade at the current time (venues call this from swap): a row
 * of /events/trades, the venue's liquidation tag (below), and a call to
 * every watcher of the venue. */
void sp_trade_record(struct sp_sim *sim, const struct sp_trade *tr);

/* ---- cascade tags ------------------------------------------------------------
 * A venue remembers the generations of the LIQUIDATION-DRIVEN trades on it:
 * liquidation sales (cause SP_CAUSE_LIQUIDATION, whatever their generation)
 * and trades marked `propagates` (arbitrage that follows such a venue).
 * Whoever reads the venue's price later (an oracle at its next poll, an
 * arbitrageur) asks for the highest generation since its previous read:
 *
 *   oracle delivery generation = 1 + max tag of its source venues since its
 *                                previous poll, 0 when none;
 *   arbitrage generation       = max tag of its venue since its last look
 *                                (and the trade propagates the tag).
 *
 * The tag keeps (time, generation) pairs with generations strictly falling
 * as time rises (a max-queue: a new pair drops every older pair with a
 * generation not above its own), so "the highest generation at or after
 * `since`" is the first pair at or after `since`.  Bounded: past
 * SP_VENUE_TAG_MAX pairs the oldest (highest) is dropped, which can only
 * happen with that many generations in flight on one venue. */
#define SP_VENUE_TAG_MAX 8
#define SP_VENUE_WATCH_MAX 8

/* Called after each trade on a watched venue (from sp_trade_record, inside
 * the venue's swap): it must not trade; schedule an event instead. */
typedef void (*sp_venue_watch_fn)(void *arg, struct sp_sim *sim, sp_id venue);

struct sp_venue_tag {
    int n;                               /* pairs held */
    sp_time t[SP_VENUE_TAG_MAX];         /* oldest first */
    int gen[SP_VENUE_TAG_MAX];
    int n_watch;
    sp_venue_watch_fn watch[SP_VENUE_WATCH_MAX];
    void *watch_arg[SP_VENUE_WATCH_MAX];
};

/* The highest generation of liquidation-driven trades on `venue` at or
 * after `since`; -1 when there was none (or `venue` keeps no tag). */
int sp_venue_liq_generation(struct sp_sim *sim, sp_id venue, sp_time since);
/* Call fn(arg, sim, venue) after every trade on `venue` (from init or
 * start).  SP_EINVAL if it is not a market with a tag; SP_ERANGE past
 * SP_VENUE_WATCH_MAX watchers. */
int sp_venue_watch(struct sp_sim *sim, sp_id venue, sp_venue_watch_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
