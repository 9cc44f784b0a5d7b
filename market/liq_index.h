/*
 * liq_index.h — which lending positions are liquidatable, found without
 * scanning.
 *
 * Model (FORMULAS.md, "Aave v3 health factor"): assets a = 0..A−1 with
 * oracle prices p_a >= 0 and liquidation thresholds LT_a >= 0 (per asset,
 * shared by the protocol).  A position holds collateral amounts c_a >= 0 and
 * a debt D >= 0 in the numeraire (the caller folds debt-asset prices in).
 *
 *     W  = Σ_a c_a·p_a·LT_a        HF = W / D        liquidatable iff HF < 1
 *
 * Zero debt is never liquidatable (HF = +inf); debt with no weighted
 * collateral always is; HF == 1 exactly is not (strict <).  W is evaluated
 * in one fixed order — term (c_a·p_a)·LT_a, summed a = 0, 1, ... — so any
 * code using the same order gets bit-identical answers; for D > 0,
 * fl(W/D) < 1 exactly when W < D, so comparing W with D is the same test.
 *
 * A price update of asset a reports, through a callback, exactly the
 * positions whose state changed, and costs time proportional to the
 * positions it touches: those whose stored bound for a it crosses (see
 * liq_index.c for the bounds and why they are exact for multi-collateral
 * positions).  Nothing on the set_price path allocates; upsert allocates
 * only to grow (amortised), and not at all below the capacity given at
 * creation.
 *
 * Position ids are the caller's, dense small integers (a protocol's
 * position slots): storage grows to the largest id + 1.
 */
#ifndef SPIRAL_LIQ_INDEX_H
#define SPIRAL_LIQ_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct sp_liq_index;

/* A position changed state: liquidatable = 1 (it became liquidatable) or 0
 * (it became healthy).  Called during sp_liq_index_set_price; it must not
 * call back into the index. */
typedef void (*sp_liq_change_fn)(void *ctx, uint32_t id, int liquidatable);

/* Cumulative work counters (for benchmarks and tests). */
struct sp_liq_index_stats {
    uint64_t n_price_updates;   /* sp_liq_index_set_price calls that moved a price */
    uint64_t n_touched;         /* positions re-checked by price updates */
    uint64_t n_touched_multi;   /* of which multi-collateral (two or more assets) */
    uint64_t n_changed;         /* of which changed state (reported) */
    uint64_t n_upserts, n_removes;
};

#define SP_LIQ_INDEX_MAX_ASSETS 64u
#define SP_LIQ_INDEX_MAX_ID 0x7ffffffeu

/* Create an index over n_assets (1..SP_LIQ_INDEX_MAX_ASSETS) assets with
 * liquidation thresholds lt[n_assets] (finite, >= 0) and all prices 0.
 * capacity is a hint: ids below it and that many positions per asset are
 * stored without reallocating.  *out is NULL on failure (SP_EINVAL,
 * SP_ENOMEM). */
int sp_liq_index_create(uint32_t n_assets, const double *lt, uint32_t capacity,
                        struct sp_liq_index **out);
/* Free an index; NULL is a no-op. */
void sp_liq_index_destroy(struct sp_liq_index *ix);

/* Insert or replace position `id` (<= SP_LIQ_INDEX_MAX_ID) with collateral
 * c[n_assets] and debt `debt` (all finite, >= 0).  O(k log n), k = assets
 * held before and after.  *liquidatable (may be NULL) gets its state; a
 * state change by upsert is not reported through any callback.  SP_EINVAL
 * for bad input (nothing changes), SP_ENOMEM if growing failed (the old
 * position, if any, is still there). */
int sp_liq_index_upsert(struct sp_liq_index *ix, uint32_t id, const double *c, double debt,
                        int *liquidatable);
/* Remove position `id`; SP_ENOTFOUND if it is not in the index. */
int sp_liq_index_remove(struct sp_liq_index *ix, uint32_t id);

/* Set the price of `asset` (finite, >= 0).  Every position whose state
 * changes is reported once through fn (may be NULL).  A fall only makes
 * positions liquidatable, a rise only makes them healthy.  SP_EINVAL for a
 * bad asset or price (nothing changes). */
int sp_liq_index_set_price(struct sp_liq_index *ix, uint32_t asset, double price,
                           sp_liq_change_fn fn, void *ctx);
/* Current price of `asset` (0 for a bad asset). */
double sp_liq_index_price(const struct sp_liq_index *ix, uint32_t asset);

/* Number of liquidatable positions; up to n of their ids go to ids (may be
 * NULL when n is 0), in no particular order. */
size_t sp_liq_index_liquidatable(const struct sp_liq_index *ix, uint32_t *ids, size_t n);
/* 1 if `id` is liquidatable, 0 if healthy; SP_ENOTFOUND if absent. */
int sp_liq_index_is_liquidatable(const struct sp_liq_index *ix, uint32_t id);
/* Health factor of `id` at current prices (+inf for zero debt);
 * SP_ENOTFOUND if absent. */
int sp_liq_index_health(const struct sp_liq_index *ix, uint32_t id, double *hf);

/* Number of positions stored. */
size_t sp_liq_index_count(const struct sp_liq_index *ix);
/* Bytes allocated by the index (all arrays at their capacity + the handle). */
size_t sp_liq_index_bytes(const struct sp_liq_index *ix);
void sp_liq_index_stats(const struct sp_liq_index *ix, struct sp_liq_index_stats *st);

/* ---- snapshots (spiral/snapshot.h) -------------------------------------------
 *
 * The heaps hold certificates computed at the prices of each position's
 * last check, so their keys, their order and the order of the
 * liquidatable list depend on history, and the order in which a later
 * price update reports crossings follows them: an index rebuilt from the
 * positions would report in another order.  So the snapshot stores the
 * index exactly — prices, every heap (keys and ids, in array order), the
 * liquidatable list, the statistics — except the positions' amounts, which
 * the owner keeps anyway: `amounts` gives, for id < n, whether the id is in
 * the index and its collateral c[n_assets] and debt.  Ids whose stored
 * amounts differ bitwise from what it gives are saved as exceptions.
 * Restore rebuilds the records and back-pointers from that and verifies
 * every invariant (sp_liq_index_check); the statistics come back too. */
struct sp_snapshot_writer;
struct sp_snapshot_reader;
typedef int (*sp_liq_amounts_fn)(void *ctx, uint32_t id, double *c, double *debt);
int sp_liq_index_snapshot(const struct sp_liq_index *ix, uint32_t n, sp_liq_amounts_fn amounts,
                          void *ctx, struct sp_snapshot_writer *w);
int sp_liq_index_restore(struct sp_liq_index *ix, uint32_t n, sp_liq_amounts_fn amounts,
                         void *ctx, struct sp_snapshot_reader *r);

/* uint32 arrays in snapshots: one bin of 4-byte little-endian values. */
int sp_liq_snap_put_u32s(struct sp_snapshot_writer *w, const uint32_t *v, size_t n);
/* The next bin as *n values at *p (valid during restore); read them with
 * sp_liq_u32_at. */
int sp_liq_snap_get_u32s(struct sp_snapshot_reader *r, const unsigned char **p, size_t *n);
static inline uint32_t sp_liq_u32_at(const unsigned char *p, size_t i)
{
    p += 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Debug: verify every invariant in O(n·A) — heap order and back-pointers,
 * each position's state equals W < D at current prices, each stored bound
 * on the right side of the current price, the liquidatable list.  0 or
 * SP_EMODEL. */
int sp_liq_index_check(const struct sp_liq_index *ix);

#endif
