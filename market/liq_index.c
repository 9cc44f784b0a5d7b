/*
 * liq_index.c — liquidatable positions indexed by per-asset price bounds.
 *
 * The problem.  A single-collateral position in asset a is liquidatable iff
 * p_a < p* = D/(c_a·LT_a), a key that no other price changes: sort those
 * positions by p* and a fall of p_a touches exactly the ones it crosses.  A
 * multi-collateral position has no such key: its liquidation price in a,
 * p*_a = (D − Σ_{b≠a} c_b·p_b·LT_b)/(c_a·LT_a), moves whenever any other
 * price moves, so keying on it means re-keying every multi-collateral
 * position holding b on every update of b — work proportional to how many
 * positions hold b, not to how many are near liquidation.
 *
 * The scheme: a certificate per position, re-derived only when broken.
 * When a position is (re-)checked at prices p⁰ it gets, for every asset a
 * it holds, one bound, stored in a heap of asset a:
 *
 *   healthy (W >= D):       L_a = p⁰_a · min(1, (D + m)/W)
 *       Claim: while p_a >= L_a for every held a, the position is healthy.
 *       W(p) = Σ c_a·p_a·LT_a >= Σ c_a·L_a·LT_a = (D + m)/W·W = D + m.
 *   liquidatable (W < D):   U_a = p⁰_a · max(1, (D − m)/W)        (W > 0)
 *                           U_a = p⁰_a + (D − m)/(k·c_a·LT_a)      (W = 0,
 *                                                   k = number of held assets)
 *       Claim: while p_a <= U_a for every held a, it stays liquidatable:
 *       W(p) <= D − m.
 *
 * (When the slack or deficit is below m the bound is the current price
 * itself: the next move of any held asset in the bad direction re-checks.)
 * Splitting the slack in proportion to each asset's share of W makes every
 * bound the same *relative* move: a healthy position with HF h at its last
 * check is touched only when one of its assets has fallen by more than
 * about 1 − 1/h since then.  For single collateral L_a = (D + m)/(c·LT) =
 * p*·(1 + m/D), the exact liquidation price: such keys never change with
 * other prices, and a price move touches only the positions it crosses
 * (plus any within the relative margin m/D = 2^-30 of their price).
 *
 * Invariants (after every public call; sp_liq_index_check verifies them):
 *   I1  every stored position's `liq` flag equals W < D at current prices,
 *       with W in the canonical order of liq_index.h;
 *   I2  a position with D > 0 has one heap entry per held asset (c_a > 0
 *       and LT_a > 0), in the healthy heap of that asset when not `liq`,
 *       in the liquidatable heap when `liq`; other positions have none;
 *       slot[] is the back-pointer of every entry;
 *   I3  every healthy entry has L_a <= p_a, every liquidatable entry
 *       U_a >= p_a, and the certificate above holds at current prices;
 *   I4  the liquidatable list holds exactly the `liq` positions.
 *
 * Why a price update of a is exact: the certificates of all other
 * positions still hold (I3 only needs p_a on the right side of its own
 * bound, and for a fall only healthy entries with L_a > p_a are broken; by
 * monotonicity of W a fall cannot heal anyone, a rise cannot hurt).  So
 * set_price pops the broken entries of asset a — min-heap tops, in O(log n)
 * each — re-checks each broken position exactly, reports it if its state
 * changed and gives it a fresh certificate (k re-keys, k <= A held
 * assets).  The fresh bound of a is on the safe side of the new price, so
 * each position is touched at most once per update.  The work is
 * O(touched · k · log n), where touched = positions whose bound for a is
 * crossed: for single collateral, those crossing their liquidation price;
 * for multi-collateral, those for which p_a has now fallen (risen), since
 * their last check, by more than the fraction 1 − 1/HF₀ (1/HF₀ − 1) of
 * their HF₀ at that check — a 1 % fall from the last check touches no
 * position that had HF₀ > 1/0.99 ≈ 1.0101, however many hold a.  The
 * price of exactness is that a multi-collateral position may be touched
 * without crossing (its other assets' share of the slack is not used);
 * bench/bench_liq_index.c measures about 2 touched per crossing on a book
 * with 40 % multi-collateral positions.
 *
 * Floating point: rounding is monotone, so the computed W is monotone in
 * every price, and the bounds are exact up to a few ulps relative to D;
 * the margin m = D·2^-30 absorbs that, so a certificate that holds in
 * floating point guarantees the floating-point test W < D (I1) too.
 * (Assumes amounts and prices in the normal range, far from 1e±300.)
 *
 * Layout: one flat array of fixed-size records indexed by position id —
 * debt, flags and list slot (16 bytes), coll[A], slot[A]: 56 bytes for
 * A = 3, so a re-check reads one or two cache lines — and per asset two
 * 4-ary min-heaps of (key, id) in split arrays: healthy stores −L_a (so
 * the top is the highest lower bound), liquidatable stores U_a.  Heap
 * capacity for asset a is kept >= the number of positions holding a, and
 * the liquidatable list >= the number of positions, so moving a position
 * between sides never allocates.  The index owns all its memory; ids and
 * amounts are copied in.
 *
 * Snapshots (liq_index.h) save the heaps and the liquidatable list
 * verbatim — their order is history and decides the order of reports —
 * and take the positions' amounts from the owner, with the ids whose
 * stored amounts differ (a lending protocol's multi-debt group stores a
 * debt value the protocol does not keep) as exceptions.  Payload: [prices,
 * exception ids, their live flags (bytes), their amounts (c[A], debt
 * each), the liquidatable list, the 2A heaps as [keys, ids], the
 * statistics].  Back-pointers, held counts and flags are re-derived, then
 * sp_liq_index_check must pass.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/snapshot.h"
#include "liq_index.h"

#define NONE UINT32_MAX
#define MARGIN 0x1p-30          /* m = D·MARGIN */
#define ARITY 4u                /* d-ary heaps: half the depth of binary ones */

enum { SIDE_HEALTHY = 0, SIDE_LIQ = 1 };

struct heap {
    double *key;
    uint32_t *id;
    uint32_t n, cap;
};

struct pos {
    double debt;
    uint32_t lpos;              /* index in the liquidatable list, NONE if healthy */
    uint8_t live;
    uint8_t liq;
    uint16_t n_held;            /* heap entries (assets indexed) */
};

struct sp_liq_index {
    uint32_t n_assets;
    double *lt;                 /* [A] */
    double *price;              /* [A] */
    uint32_t *n_held;           /* [A] positions with an entry in asset a's heaps */
    struct heap *heap;          /* [2A]: heap[2a + side] */
    unsigned char *rec;         /* [cap_id] records of `stride` bytes: struct pos,
                                   double coll[A], uint32_t slot[A] (heap index or NONE) */
    size_t stride;
    uint32_t cap_id;
    uint32_t *liq;              /* liquidatable ids */
    uint32_t n_liq, cap_liq;
    uint32_t n_live;
    struct sp_liq_index_stats st;
};

/* ---- heaps (4-ary min-heaps; slot[] is the back-pointer) ----------------- */

/* One record per id, so re-checking a position reads one or two cache lines. */
static inline struct pos *pos_of(const struct sp_liq_index *ix, uint32_t id)
{
    return (struct pos *)(void *)(ix->rec + (size_t)id * ix->stride);
}

static inline double *coll_of(const struct sp_liq_index *ix, uint32_t id)
{
    return (double *)(void *)(ix->rec + (size_t)id * ix->stride + sizeof(struct pos));
}

static inline uint32_t *slot_of(const struct sp_liq_index *ix, uint32_t id, uint32_t a)
{
    return (uint32_t *)(void *)(ix->rec + (size_t)id * ix->stride + sizeof(struct pos) +
                                ix->n_assets * sizeof(double)) + a;
}

static inline void heap_place(struct sp_liq_index *ix, uint32_t a, struct heap *h, uint32_t i,
                              double key, uint32_t id)
{
    h->key[i] = key;
    h->id[i] = id;
    *slot_of(ix, id, a) = i;
}

static void sift_up(struct sp_liq_index *ix, uint32_t a, struct heap *h, uint32_t i)
{
    double key = h->key[i];
    uint32_t id = h->id[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (!(key < h->key[parent])) break;
        heap_place(ix, a, h, i, h->key[parent], h->id[parent]);
        i = parent;
    }
    heap_place(ix, a, h, i, key, id);
}

static void sift_down(struct sp_liq_index *ix, uint32_t a, struct heap *h, uint32_t i)
{
    double key = h->key[i];
    uint32_t id = h->id[i];
    uint32_t n = h->n;
    for (;;) {
        uint32_t first = ARITY * i + 1, child = first;
        if (first >= n) break;
        uint32_t end = n - first < ARITY ? n : first + ARITY;
        for (uint32_t j = first + 1; j < end; j++)
            if (h->key[j] < h->key[child]) child = j;
        if (!(h->key[child] < key)) break;
        heap_place(ix, a, h, i, h->key[child], h->id[child]);
        i = child;
    }
    heap_place(ix, a, h, i, key, id);
}

static void heap_push(struct sp_liq_index *ix, uint32_t a, int side, uint32_t id, double key)
{
    struct heap *h = &ix->heap[2 * a + (uint32_t)side];
    uint32_t i = h->n++;        /* capacity reserved by upsert */
    heap_place(ix, a, h, i, key, id);
    sift_up(ix, a, h, i);
}

static void heap_delete(struct sp_liq_index *ix, uint32_t a, int side, uint32_t i)
{
    struct heap *h = &ix->heap[2 * a + (uint32_t)side];
    uint32_t last = --h->n;
    if (i == last) return;
    double old = h->key[i];
    heap_place(ix, a, h, i, h->key[last], h->id[last]);
    if (h->key[i] < old) sift_up(ix, a, h, i);
    else sift_down(ix, a, h, i);
}

static void heap_rekey(struct sp_liq_index *ix, uint32_t a, int side, uint32_t i, double key)
{
    struct heap *h = &ix->heap[2 * a + (uint32_t)side];
    double old = h->key[i];
    h->key[i] = key;
    if (key < old) sift_up(ix, a, h, i);
    else sift_down(ix, a, h, i);
}

/* ---- the model ------------------------------------------------------------ */

/* W = Σ c_a·p_a·LT_a in the canonical order (liq_index.h). */
static double weighted(const struct sp_liq_index *ix, uint32_t id)
{
    const double *c = coll_of(ix, id);
    double w = 0.0;
    for (uint32_t a = 0; a < ix->n_assets; a++) w += c[a] * ix->price[a] * ix->lt[a];
    return w;
}

static inline int held(const struct sp_liq_index *ix, uint32_t id, uint32_t a)
{
    return coll_of(ix, id)[a] > 0.0 && ix->lt[a] > 0.0;
}

/* The heap key of asset a for position id whose weighted collateral is w
 * and whose state is liq (see the certificate at the top). */
static double bound_key(const struct sp_liq_index *ix, uint32_t id, uint32_t a, double w, int liq)
{
    const struct pos *p = pos_of(ix, id);
    double d = p->debt, m = d * MARGIN, pa = ix->price[a];
    if (!liq) {
        double r = (d + m) / w;             /* w >= d > 0 */
        return -(pa * (r < 1.0 ? r : 1.0));
    }
    if (w > 0.0) {
        double r = (d - m) / w;
        return pa * (r > 1.0 ? r : 1.0);
    }
    double c = coll_of(ix, id)[a];
    return pa + (d - m) / ((double)p->n_held * c * ix->lt[a]);
}

static void liq_list_add(struct sp_liq_index *ix, uint32_t id)
{
    pos_of(ix, id)->lpos = ix->n_liq;
    ix->liq[ix->n_liq++] = id;          /* capacity >= n_live, reserved by upsert */
}

static void liq_list_del(struct sp_liq_index *ix, uint32_t id)
{
    uint32_t i = pos_of(ix, id)->lpos, last = ix->liq[--ix->n_liq];
    ix->liq[i] = last;
    pos_of(ix, last)->lpos = i;
    pos_of(ix, id)->lpos = NONE;
}

/* Put a stored position (coll, debt, live set) into the heaps and list. */
static void index_in(struct sp_liq_index *ix, uint32_t id)
{
    struct pos *p = pos_of(ix, id);
    double w = weighted(ix, id);
    p->liq = p->debt > 0.0 && w < p->debt;
    p->n_held = 0;
    p->lpos = NONE;
    if (p->liq) liq_list_add(ix, id);
    if (!(p->debt > 0.0)) return;        /* zero debt: never liquidatable, no keys */
    for (uint32_t a = 0; a < ix->n_assets; a++)
        if (held(ix, id, a)) p->n_held++;
    for (uint32_t a = 0; a < ix->n_assets; a++) {
        if (!held(ix, id, a)) continue;
        ix->n_held[a]++;
        heap_push(ix, a, p->liq, id, bound_key(ix, id, a, w, p->liq));
    }
}

/* Take a position out of the heaps and list (its data stays). */
static void index_out(struct sp_liq_index *ix, uint32_t id)
{
    struct pos *p = pos_of(ix, id);
    for (uint32_t a = 0; a < ix->n_assets && p->n_held; a++) {
        uint32_t *s = slot_of(ix, id, a);
        if (*s == NONE) continue;
        heap_delete(ix, a, p->liq, *s);
        *s = NONE;
        ix->n_held[a]--;
    }
    p->n_held = 0;
    if (p->liq) liq_list_del(ix, id);
    p->liq = 0;
}

/* Re-check a position whose certificate broke; new state and fresh bounds. */
static void recheck(struct sp_liq_index *ix, uint32_t id, sp_liq_change_fn fn, void *ctx)
{
    struct pos *p = pos_of(ix, id);
    double w = weighted(ix, id);
    int liq = w < p->debt;                  /* debt > 0: it has heap entries */
    ix->st.n_touched++;
    ix->st.n_touched_multi += p->n_held > 1;
    if (liq == p->liq) {
        for (uint32_t a = 0; a < ix->n_assets; a++) {
            uint32_t s = *slot_of(ix, id, a);
            if (s != NONE) heap_rekey(ix, a, liq, s, bound_key(ix, id, a, w, liq));
        }
        return;
    }
    for (uint32_t a = 0; a < ix->n_assets; a++) {
        uint32_t s = *slot_of(ix, id, a);
        if (s == NONE) continue;
        heap_delete(ix, a, p->liq, s);
        heap_push(ix, a, liq, id, bound_key(ix, id, a, w, liq));
    }
    p->liq = (uint8_t)liq;
    if (liq) liq_list_add(ix, id);
    else liq_list_del(ix, id);
    ix->st.n_changed++;
    if (fn) fn(ctx, id, liq);
}

/* ---- growth (upsert only) ------------------------------------------------- */

static int grow(void **p, size_t n, size_t size)
{
    void *q = realloc(*p, n * size);
    if (!q) return SP_ENOMEM;
    *p = q;
    return 0;
}

static uint32_t next_cap(uint32_t have, uint64_t need)
{
    uint64_t c = have ? have : need > 16 ? need : 16;     /* a first reservation is exact */
    while (c < need) c *= 2;
    return c > (uint64_t)SP_LIQ_INDEX_MAX_ID + 1 ? SP_LIQ_INDEX_MAX_ID + 1 : (uint32_t)c;
}

static int reserve_ids(struct sp_liq_index *ix, uint64_t need)
{
    if (need <= ix->cap_id) return 0;
    uint32_t cap = next_cap(ix->cap_id, need), old = ix->cap_id;
    if (grow((void **)&ix->rec, cap, ix->stride)) return SP_ENOMEM;
    memset(ix->rec + (size_t)old * ix->stride, 0, (size_t)(cap - old) * ix->stride);
    for (uint32_t id = old; id < cap; id++)
        for (uint32_t a = 0; a < ix->n_assets; a++) *slot_of(ix, id, a) = NONE;
    ix->cap_id = cap;
    return 0;
}

static int reserve_heaps(struct sp_liq_index *ix, uint32_t a, uint64_t need)
{
    for (int side = 0; side < 2; side++) {
        struct heap *h = &ix->heap[2 * a + (uint32_t)side];
        if (need <= h->cap) continue;
        uint32_t cap = next_cap(h->cap, need);
        if (grow((void **)&h->key, cap, sizeof *h->key) ||
            grow((void **)&h->id, cap, sizeof *h->id))
            return SP_ENOMEM;
        h->cap = cap;
    }
    return 0;
}

static int reserve_list(struct sp_liq_index *ix, uint64_t need)
{
    if (need <= ix->cap_liq) return 0;
    uint32_t cap = next_cap(ix->cap_liq, need);
    if (grow((void **)&ix->liq, cap, sizeof *ix->liq)) return SP_ENOMEM;
    ix->cap_liq = cap;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

int sp_liq_index_create(uint32_t n_assets, const double *lt, uint32_t capacity,
                        struct sp_liq_index **out)
{
    if (!out) return SP_EINVAL;
    *out = NULL;
    if (n_assets < 1 || n_assets > SP_LIQ_INDEX_MAX_ASSETS || !lt ||
        capacity > SP_LIQ_INDEX_MAX_ID)
        return SP_EINVAL;
    for (uint32_t a = 0; a < n_assets; a++)
        if (!isfinite(lt[a]) || lt[a] < 0.0) return SP_EINVAL;
    struct sp_liq_index *ix = calloc(1, sizeof *ix);
    if (!ix) return SP_ENOMEM;
    ix->n_assets = n_assets;
    ix->stride = (sizeof(struct pos) + n_assets * (sizeof(double) + sizeof(uint32_t)) + 7) &
                 ~(size_t)7;
    ix->lt = malloc(n_assets * sizeof *ix->lt);
    ix->price = calloc(n_assets, sizeof *ix->price);
    ix->n_held = calloc(n_assets, sizeof *ix->n_held);
    ix->heap = calloc(2 * (size_t)n_assets, sizeof *ix->heap);
    int rc = ix->lt && ix->price && ix->n_held && ix->heap ? 0 : SP_ENOMEM;
    if (!rc) {
        memcpy(ix->lt, lt, n_assets * sizeof *ix->lt);
        if (capacity) {
            rc = reserve_ids(ix, capacity);
            if (!rc) rc = reserve_list(ix, capacity);
            for (uint32_t a = 0; a < n_assets && !rc; a++)
                if (lt[a] > 0.0) rc = reserve_heaps(ix, a, capacity);
        }
    }
    if (rc) {
        sp_liq_index_destroy(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

void sp_liq_index_destroy(struct sp_liq_index *ix)
{
    if (!ix) return;
    if (ix->heap)
        for (uint32_t k = 0; k < 2 * ix->n_assets; k++) {
            free(ix->heap[k].key);
            free(ix->heap[k].id);
        }
    free(ix->heap);
    free(ix->lt);
    free(ix->price);
    free(ix->n_held);
    free(ix->rec);
    free(ix->liq);
    free(ix);
}

/* ---- updates -------------------------------------------------------------- */

int sp_liq_index_upsert(struct sp_liq_index *ix, uint32_t id, const double *c, double debt,
                        int *liquidatable)
{
    if (!ix || !c || id > SP_LIQ_INDEX_MAX_ID || !isfinite(debt) || debt < 0.0)
        return SP_EINVAL;
    uint32_t A = ix->n_assets;
    for (uint32_t a = 0; a < A; a++)
        if (!isfinite(c[a]) || c[a] < 0.0) return SP_EINVAL;
    /* Reserve everything first, so a failure leaves the old position. */
    int rc = reserve_ids(ix, (uint64_t)id + 1);
    if (!rc) rc = reserve_list(ix, (uint64_t)ix->n_live + 1);
    for (uint32_t a = 0; a < A && !rc; a++)
        if (c[a] > 0.0 && ix->lt[a] > 0.0 && debt > 0.0)
            rc = reserve_heaps(ix, a, (uint64_t)ix->n_held[a] + 1);
    if (rc) return rc;
    struct pos *p = pos_of(ix, id);
    if (p->live) index_out(ix, id);
    else ix->n_live++;
    memcpy(coll_of(ix, id), c, A * sizeof *c);
    p->debt = debt;
    p->live = 1;
    index_in(ix, id);
    ix->st.n_upserts++;
    if (liquidatable) *liquidatable = p->liq;
    return 0;
}

int sp_liq_index_remove(struct sp_liq_index *ix, uint32_t id)
{
    if (!ix) return SP_EINVAL;
    if (id >= ix->cap_id || !pos_of(ix, id)->live) return SP_ENOTFOUND;
    index_out(ix, id);
    pos_of(ix, id)->live = 0;
    ix->n_live--;
    ix->st.n_removes++;
    return 0;
}

int sp_liq_index_set_price(struct sp_liq_index *ix, uint32_t asset, double price,
                           sp_liq_change_fn fn, void *ctx)
{
    if (!ix || asset >= ix->n_assets || !isfinite(price) || price < 0.0) return SP_EINVAL;
    double old = ix->price[asset];
    if (price == old) return 0;
    ix->price[asset] = price;
    ix->st.n_price_updates++;
    if (price < old) {
        /* healthy entries store −L: broken while L > price, i.e. key < −price */
        struct heap *h = &ix->heap[2 * asset + SIDE_HEALTHY];
        while (h->n && h->key[0] < -price) recheck(ix, h->id[0], fn, ctx);
    } else {
        struct heap *h = &ix->heap[2 * asset + SIDE_LIQ];
        while (h->n && h->key[0] < price) recheck(ix, h->id[0], fn, ctx);
    }
    return 0;
}

/* ---- queries -------------------------------------------------------------- */

double sp_liq_index_price(const struct sp_liq_index *ix, uint32_t asset)
{
    return ix && asset < ix->n_assets ? ix->price[asset] : 0.0;
}

size_t sp_liq_index_liquidatable(const struct sp_liq_index *ix, uint32_t *ids, size_t n)
{
    if (!ix) return 0;
    size_t k = n < ix->n_liq ? n : ix->n_liq;
    if (ids && k) memcpy(ids, ix->liq, k * sizeof *ids);
    return ix->n_liq;
}

int sp_liq_index_is_liquidatable(const struct sp_liq_index *ix, uint32_t id)
{
    if (!ix) return SP_EINVAL;
    if (id >= ix->cap_id || !pos_of(ix, id)->live) return SP_ENOTFOUND;
    return pos_of(ix, id)->liq;
}

int sp_liq_index_health(const struct sp_liq_index *ix, uint32_t id, double *hf)
{
    if (!ix || !hf) return SP_EINVAL;
    if (id >= ix->cap_id || !pos_of(ix, id)->live) return SP_ENOTFOUND;
    double d = pos_of(ix, id)->debt;
    *hf = d > 0.0 ? weighted(ix, id) / d : INFINITY;
    return 0;
}

size_t sp_liq_index_count(const struct sp_liq_index *ix)
{
    return ix ? ix->n_live : 0;
}

size_t sp_liq_index_bytes(const struct sp_liq_index *ix)
{
    if (!ix) return 0;
    size_t A = ix->n_assets;
    size_t b = sizeof *ix + A * (2 * sizeof(double) + sizeof(uint32_t) + 2 * sizeof(struct heap));
    b += (size_t)ix->cap_id * ix->stride;
    b += (size_t)ix->cap_liq * sizeof(uint32_t);
    for (size_t k = 0; k < 2 * A; k++)
        b += (size_t)ix->heap[k].cap * (sizeof(double) + sizeof(uint32_t));
    return b;
}

void sp_liq_index_stats(const struct sp_liq_index *ix, struct sp_liq_index_stats *st)
{
    if (ix && st) *st = ix->st;
}

/* ---- invariant check ------------------------------------------------------ */

int sp_liq_index_check(const struct sp_liq_index *ix)
{
    if (!ix) return SP_EINVAL;
    uint32_t A = ix->n_assets, n_live = 0, n_liq = 0;
    for (uint32_t a = 0; a < A; a++) {
        uint32_t total = 0;
        for (int side = 0; side < 2; side++) {
            const struct heap *h = &ix->heap[2 * a + (uint32_t)side];
            total += h->n;
            for (uint32_t i = 0; i < h->n; i++) {
                uint32_t id = h->id[i];
                if (id >= ix->cap_id || !pos_of(ix, id)->live || pos_of(ix, id)->liq != side ||
                    *slot_of(ix, id, a) != i)
                    return SP_EMODEL;                               /* I2 */
                if (i > 0 && h->key[i] < h->key[(i - 1) / ARITY]) return SP_EMODEL;
                if (side == SIDE_HEALTHY ? -h->key[i] > ix->price[a]
                                         : h->key[i] < ix->price[a])
                    return SP_EMODEL;                               /* I3 */
            }
        }
        if (total != ix->n_held[a] || total > ix->heap[2 * a].cap ||
            total > ix->heap[2 * a + 1].cap)
            return SP_EMODEL;
    }
    for (uint32_t id = 0; id < ix->cap_id; id++) {
        const struct pos *p = pos_of(ix, id);
        const uint32_t *s = slot_of(ix, id, 0);
        if (!p->live) {
            for (uint32_t a = 0; a < A; a++)
                if (s[a] != NONE) return SP_EMODEL;
            continue;
        }
        n_live++;
        double w = weighted(ix, id);
        if (p->liq != (p->debt > 0.0 && w < p->debt)) return SP_EMODEL;   /* I1 */
        uint32_t k = 0;
        for (uint32_t a = 0; a < A; a++) {
            int want = p->debt > 0.0 && held(ix, id, a);
            if (want != (s[a] != NONE)) return SP_EMODEL;               /* I2 */
            k += (uint32_t)want;
        }
        if (k != p->n_held) return SP_EMODEL;
        if (p->liq) {
            n_liq++;
            if (p->lpos >= ix->n_liq || ix->liq[p->lpos] != id) return SP_EMODEL;   /* I4 */
        } else if (p->lpos != NONE) {
            return SP_EMODEL;
        }
    }
    if (n_live != ix->n_live || n_liq != ix->n_liq || ix->cap_liq < ix->n_live)
        return SP_EMODEL;
    return 0;
}

/* ---- snapshots ------------------------------------------------------------ */

int sp_liq_snap_put_u32s(struct sp_snapshot_writer *w, const uint32_t *v, size_t n)
{
    if (n > UINT32_MAX / 4) return SP_ERANGE;
    unsigned char *b = malloc(n ? 4 * n : 1);
    if (!b) return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b[4 * i] = (unsigned char)v[i];
        b[4 * i + 1] = (unsigned char)(v[i] >> 8);
        b[4 * i + 2] = (unsigned char)(v[i] >> 16);
        b[4 * i + 3] = (unsigned char)(v[i] >> 24);
    }
    int rc = sp_snap_put_bytes(w, b, 4 * n);
    free(b);
    return rc;
}

int sp_liq_snap_get_u32s(struct sp_snapshot_reader *r, const unsigned char **p, size_t *n)
{
    const void *v = NULL;
    size_t len = 0;
    *p = NULL;
    *n = 0;
    if (sp_snap_get_bytes(r, &v, &len)) return sp_snap_error(r);
    if (len % 4) return sp_snap_fail(r, "a bin of %zu bytes is not 4-byte values", len);
    *p = v;
    *n = len / 4;
    return SP_OK;
}

int sp_liq_index_snapshot(const struct sp_liq_index *ix, uint32_t n, sp_liq_amounts_fn amounts,
                          void *ctx, struct sp_snapshot_writer *w)
{
    uint32_t A = ix->n_assets, end = n > ix->cap_id ? n : ix->cap_id;
    double c[SP_LIQ_INDEX_MAX_ASSETS], debt;
    uint32_t *eid = NULL;
    unsigned char *elive = NULL;
    double *eamt = NULL;
    size_t ne = 0, cap = 0;
    int rc = SP_OK;
    for (uint32_t id = 0; id < end && !rc; id++) {
        int have = id < ix->cap_id && pos_of(ix, id)->live;
        int want = 0;
        if (id < n) {
            memset(c, 0, A * sizeof *c);
            debt = 0;
            want = amounts(ctx, id, c, &debt) == 1;
        }
        if (have == want && (!have || (!memcmp(c, coll_of(ix, id), A * sizeof *c) &&
                                       !memcmp(&debt, &pos_of(ix, id)->debt, sizeof debt))))
            continue;
        if (id >= n) { rc = SP_EMODEL; break; }   /* a position the owner does not have */
        if (ne == cap) {
            cap = cap ? 2 * cap : 8;
            uint32_t *e1 = realloc(eid, cap * sizeof *e1);
            if (e1) eid = e1;
            unsigned char *e2 = realloc(elive, cap);
            if (e2) elive = e2;
            double *e3 = realloc(eamt, cap * (A + 1) * sizeof *e3);
            if (e3) eamt = e3;
            if (!e1 || !e2 || !e3) { rc = SP_ENOMEM; break; }
        }
        eid[ne] = id;
        elive[ne] = (unsigned char)have;
        double *x = &eamt[ne * (A + 1)];
        if (have) {
            memcpy(x, coll_of(ix, id), A * sizeof *x);
            x[A] = pos_of(ix, id)->debt;
        } else {
            memset(x, 0, (A + 1) * sizeof *x);
        }
        ne++;
    }
    if (!rc) {
        sp_snap_put_array(w, 7);
        sp_snap_put_f64s(w, ix->price, A);
        sp_liq_snap_put_u32s(w, eid, ne);
        sp_snap_put_bytes(w, elive, ne);
        sp_snap_put_f64s(w, eamt, ne * (A + 1));
        sp_liq_snap_put_u32s(w, ix->liq, ix->n_liq);
        sp_snap_put_array(w, 2 * (size_t)A);
        for (uint32_t k = 0; k < 2 * A; k++) {
            sp_snap_put_array(w, 2);
            sp_snap_put_f64s(w, ix->heap[k].key, ix->heap[k].n);
            sp_liq_snap_put_u32s(w, ix->heap[k].id, ix->heap[k].n);
        }
        const struct sp_liq_index_stats *st = &ix->st;
        uint64_t s6[6] = { st->n_price_updates, st->n_touched, st->n_touched_multi,
                           st->n_changed, st->n_upserts, st->n_removes };
        rc = sp_snap_put_u64s(w, s6, 6);
    }
    free(eid);
    free(elive);
    free(eamt);
    return rc;
}

static int bad_amounts(const double *c, uint32_t A, double debt)
{
    for (uint32_t a = 0; a < A; a++)
        if (!isfinite(c[a]) || c[a] < 0.0) return 1;
    return !isfinite(debt) || debt < 0.0;
}

/* Empty every heap and list and make every record dead, keeping capacity. */
static void index_clear(struct sp_liq_index *ix)
{
    for (uint32_t id = 0; id < ix->cap_id; id++) {
        memset(pos_of(ix, id), 0, ix->stride);
        pos_of(ix, id)->lpos = NONE;
        for (uint32_t a = 0; a < ix->n_assets; a++) *slot_of(ix, id, a) = NONE;
    }
    for (uint32_t k = 0; k < 2 * ix->n_assets; k++) ix->heap[k].n = 0;
    memset(ix->n_held, 0, ix->n_assets * sizeof *ix->n_held);
    ix->n_liq = 0;
    ix->n_live = 0;
}

static int restore_heap(struct sp_liq_index *ix, uint32_t a, int side, uint32_t n,
                        struct sp_snapshot_reader *r)
{
    struct heap *h = &ix->heap[2 * a + (uint32_t)side];
    size_t m, m2;
    const unsigned char *ids;
    sp_snap_get_array_n(r, 2);
    if (sp_snap_peek_count(r, &m)) return sp_snap_error(r);
    if (m > n) return sp_snap_fail(r, "liquidation index: a heap of %zu entries for %u ids", m, n);
    if (reserve_heaps(ix, a, (uint64_t)ix->n_held[a] + m)) return sp_snap_fail(r, "out of memory");
    if (sp_snap_get_f64s(r, h->key, m) || sp_liq_snap_get_u32s(r, &ids, &m2))
        return sp_snap_error(r);
    if (m2 != m) return sp_snap_fail(r, "liquidation index: %zu keys but %zu ids", m, m2);
    for (size_t i = 0; i < m; i++) {
        uint32_t id = sp_liq_u32_at(ids, i);
        if (isnan(h->key[i]) || id >= n || !pos_of(ix, id)->live || !(pos_of(ix, id)->debt > 0) ||
            !held(ix, id, a) || *slot_of(ix, id, a) != NONE || pos_of(ix, id)->liq != side)
            return sp_snap_fail(r, "liquidation index: bad entry %zu (id %u) in a heap of "
                                "asset %u", i, id, a);
        h->id[i] = id;
        *slot_of(ix, id, a) = (uint32_t)i;
        pos_of(ix, id)->n_held++;
    }
    h->n = (uint32_t)m;
    ix->n_held[a] += (uint32_t)m;
    return sp_snap_get_end(r);
}

int sp_liq_index_restore(struct sp_liq_index *ix, uint32_t n, sp_liq_amounts_fn amounts,
                         void *ctx, struct sp_snapshot_reader *r)
{
    uint32_t A = ix->n_assets;
    double c[SP_LIQ_INDEX_MAX_ASSETS], debt;
    const unsigned char *p, *live;
    const void *lv;
    size_t m, k;
    if (n > SP_LIQ_INDEX_MAX_ID) return sp_snap_fail(r, "liquidation index: %u ids", n);
    if (n && (reserve_ids(ix, n) || reserve_list(ix, n))) return sp_snap_fail(r, "out of memory");
    index_clear(ix);
    for (uint32_t id = 0; id < n; id++) {
        memset(c, 0, A * sizeof *c);
        debt = 0;
        if (amounts(ctx, id, c, &debt) != 1) continue;
        if (bad_amounts(c, A, debt))
            return sp_snap_fail(r, "liquidation index: position %u has bad amounts", id);
        memcpy(coll_of(ix, id), c, A * sizeof *c);
        pos_of(ix, id)->debt = debt;
        pos_of(ix, id)->live = 1;
        ix->n_live++;
    }
    sp_snap_get_array_n(r, 7);
    if (sp_snap_peek_count(r, &m)) return sp_snap_error(r);
    if (m != A) return sp_snap_fail(r, "liquidation index: %zu prices for %u assets", m, A);
    if (sp_snap_get_f64s(r, ix->price, A)) return sp_snap_error(r);
    for (uint32_t a = 0; a < A; a++)
        if (!isfinite(ix->price[a]) || ix->price[a] < 0.0)
            return sp_snap_fail(r, "liquidation index: bad price of asset %u", a);
    /* exceptions: amounts the owner does not keep */
    if (sp_liq_snap_get_u32s(r, &p, &m) || sp_snap_get_bytes(r, &lv, &k)) return sp_snap_error(r);
    live = lv;
    if (k != m) return sp_snap_fail(r, "liquidation index: %zu exceptions, %zu flags", m, k);
    double *x = malloc((m ? m : 1) * (A + 1) * sizeof *x);
    if (!x) return sp_snap_fail(r, "out of memory");
    if (sp_snap_peek_count(r, &k) || k != m * (A + 1) || sp_snap_get_f64s(r, x, k)) {
        free(x);
        return sp_snap_error(r) ? sp_snap_error(r)
                                : sp_snap_fail(r, "liquidation index: exception amounts");
    }
    for (size_t i = 0; i < m; i++) {
        uint32_t id = sp_liq_u32_at(p, i);
        const double *e = &x[i * (A + 1)];
        if (id >= n || live[i] > 1 || bad_amounts(e, A, e[A])) {
            free(x);
            return sp_snap_fail(r, "liquidation index: bad exception %zu (id %u)", i, id);
        }
        struct pos *q = pos_of(ix, id);
        if (q->live && !live[i]) ix->n_live--;
        if (!q->live && live[i]) ix->n_live++;
        q->live = live[i];
        memcpy(coll_of(ix, id), e, A * sizeof *e);
        q->debt = e[A];
    }
    free(x);
    /* the liquidatable list, in order */
    if (sp_liq_snap_get_u32s(r, &p, &m)) return sp_snap_error(r);
    if (m > n) return sp_snap_fail(r, "liquidation index: %zu liquidatable of %u", m, n);
    for (size_t i = 0; i < m; i++) {
        uint32_t id = sp_liq_u32_at(p, i);
        if (id >= n || !pos_of(ix, id)->live || pos_of(ix, id)->liq)
            return sp_snap_fail(r, "liquidation index: bad liquidatable id %u", id);
        pos_of(ix, id)->liq = 1;
        pos_of(ix, id)->lpos = (uint32_t)i;
        ix->liq[i] = id;
    }
    ix->n_liq = (uint32_t)m;
    /* the heaps, in array order */
    sp_snap_get_array_n(r, 2 * (size_t)A);
    for (uint32_t a = 0; a < A; a++)
        for (int side = 0; side < 2; side++)
            if (restore_heap(ix, a, side, n, r)) return sp_snap_error(r);
    sp_snap_get_end(r);
    uint64_t s6[6];
    if (sp_snap_get_u64s(r, s6, 6)) return sp_snap_error(r);
    ix->st = (struct sp_liq_index_stats){ s6[0], s6[1], s6[2], s6[3], s6[4], s6[5] };
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    if (sp_liq_index_check(ix)) return sp_snap_fail(r, "liquidation index: inconsistent state");
    return SP_OK;
}
