/*
 * lob.h — a limit order book for one pair, price-time priority.
 *
 * Units: prices are int64 *ticks*, price = ticks·tick_size (quote currency
 * per lot); quantities are int64 *lots*.  Integers make conservation exact:
 * every lot a taker receives leaves a maker, and the quote currency of a
 * fill is exactly price_ticks·qty (in tick-lots; multiply by tick_size for
 * quote units).  The book covers a fixed window of ticks [min_tick,
 * min_tick + n_ticks); orders priced outside it are refused (SP_ERANGE).
 *
 * Order ids are assigned by the book, one per message that places an order
 * (limit, IOC, market), unique for the book's life, never 0.  Fills are
 * reported in execution order through the callback given at creation.
 * Memory is allocated once at creation (about 48 bytes per tick of the
 * window plus 32 per order slot): no message allocates.  Notional totals are
 * int64 tick-lots; keep price·volume below 9.2e18.  Self-trades are not
 * prevented.
 */
#ifndef SPIRAL_LOB_H
#define SPIRAL_LOB_H

#include <stddef.h>
#include <stdint.h>

struct sp_lob;

enum sp_lob_side { SP_LOB_BUY = 0, SP_LOB_SELL = 1 };

struct sp_lob_fill {
    uint64_t maker_id;
    uint64_t taker_id;
    int64_t price;              /* ticks: the maker's price */
    int64_t qty;                /* lots, > 0 */
    enum sp_lob_side taker_side;
};

typedef void (*sp_lob_fill_fn)(void *ctx, const struct sp_lob_fill *fill);

struct sp_lob_config {
    int64_t min_tick;           /* lowest price in ticks the book accepts */
    int64_t n_ticks;            /* width of the price window, 1 .. 2^26 */
    uint32_t max_orders;        /* resting orders the book can hold, >= 1 */
    double tick_size;           /* quote currency per tick (for reporting) */
    sp_lob_fill_fn on_fill;     /* may be NULL */
    void *ctx;                  /* passed to on_fill */
};

/* One aggregated price level. */
struct sp_lob_level {
    int64_t price;              /* ticks */
    int64_t qty;                /* lots resting at this price */
    uint32_t n_orders;
};

/* Totals for conservation checks. */
struct sp_lob_stats {
    int64_t resting[2];         /* lots resting per side (SP_LOB_BUY, SP_LOB_SELL) */
    uint32_t n_orders;          /* resting orders */
    int64_t volume;             /* lots traded, all time */
    int64_t notional;           /* Σ price·qty over fills, tick-lots, all time */
    uint64_t n_fills;
};

/* Create a book; *out is NULL on failure (SP_EINVAL, SP_ENOMEM). */
int sp_lob_create(const struct sp_lob_config *cfg, struct sp_lob **out);
/* Free a book; NULL is a no-op. */
void sp_lob_destroy(struct sp_lob *b);

/* Limit order: match against the opposite side up to `price`, rest the rest.
 * *id gets the order's id, *filled the lots executed now (either may be
 * NULL).  SP_ERANGE for a price outside the window, SP_EINVAL for qty <= 0,
 * SP_ENOMEM when the book is full and the order would rest (no state change:
 * the check happens before matching). */
int sp_lob_limit(struct sp_lob *b, enum sp_lob_side side, int64_t price, int64_t qty,
                 uint64_t *id, int64_t *filled);
/* Immediate-or-cancel: as a limit order, but the remainder is dropped. */
int sp_lob_ioc(struct sp_lob *b, enum sp_lob_side side, int64_t price, int64_t qty,
               uint64_t *id, int64_t *filled);
/* Market order: match at any price until filled or the side is empty; the
 * remainder is dropped. */
int sp_lob_market(struct sp_lob *b, enum sp_lob_side side, int64_t qty, uint64_t *id,
                  int64_t *filled);
/* Cancel a resting order; *remaining gets its unfilled lots (may be NULL).
 * SP_ENOTFOUND if `id` is not resting (filled, cancelled or unknown). */
int sp_lob_cancel(struct sp_lob *b, uint64_t id, int64_t *remaining);

/* Best bid / best ask: price and the lots at it.  SP_ENOTFOUND when empty. */
int sp_lob_best_bid(const struct sp_lob *b, int64_t *price, int64_t *qty);
int sp_lob_best_ask(const struct sp_lob *b, int64_t *price, int64_t *qty);
/* The top `n` levels of one side, best first; returns how many were written. */
size_t sp_lob_depth(const struct sp_lob *b, enum sp_lob_side side, struct sp_lob_level *out,
                    size_t n);
/* The resting orders at one price of one side in time priority: up to `n`
 * ids and remaining quantities (either array may be NULL); returns the
 * number of orders at the level (which may exceed n). */
size_t sp_lob_level_orders(const struct sp_lob *b, enum sp_lob_side side, int64_t price,
                           uint64_t *ids, int64_t *qtys, size_t n);
/* A resting order's side, price and remaining lots; SP_ENOTFOUND if none. */
int sp_lob_order(const struct sp_lob *b, uint64_t id, enum sp_lob_side *side, int64_t *price,
                 int64_t *qty);
/* Totals (resting lots, traded volume and notional). */
void sp_lob_stats(const struct sp_lob *b, struct sp_lob_stats *st);
/* Price in quote currency of a tick count: ticks·tick_size. */
double sp_lob_price(const struct sp_lob *b, int64_t ticks);
/* The ids of all resting orders in a canonical order (buys, then sells;
 * price ascending; time priority within a price): up to `n` into `ids`
 * (may be NULL); returns the number of resting orders. */
size_t sp_lob_resting(const struct sp_lob *b, uint64_t *ids, size_t n);

/* Checkpoints (spiral/snapshot.h): the book's whole mutable state as one
 * msgpack value — order ids and generations, the free list, the resting
 * orders in price-time priority, the totals.  Restore into a book created
 * with the same config; it validates everything first (a bad payload
 * leaves the book unchanged) and makes the book behave exactly as the
 * saved one: same fills, same ids handed out next. */
struct sp_snapshot_writer;
struct sp_snapshot_reader;
int sp_lob_snapshot(const struct sp_lob *b, struct sp_snapshot_writer *w);
int sp_lob_restore(struct sp_lob *b, struct sp_snapshot_reader *r);

#endif
