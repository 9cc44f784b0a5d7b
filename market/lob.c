/*
 * lob.c — limit order book, price-time priority, int64 ticks and lots.
 *
 * Layout (built for the matching loop, no allocation after creation):
 *   levels   one array per side indexed by tick offset (price − min_tick);
 *            a level holds the FIFO of its orders as an intrusive doubly
 *            linked list through the order pool (head = oldest), plus its
 *            aggregate lots and order count.  A level is empty iff n == 0
 *            (head/tail are meaningless then, so the array starts zeroed).
 *   bitmaps  per side, one bit per level that has orders (l1) and one bit
 *            per non-zero l1 word (l2); finding the next best level after
 *            the best one empties is a couple of ctz/clz, not a scan.
 *   pool     a fixed array of orders with a free list; an order's id is
 *            (generation << 32) | slot, the generation bumped each time the
 *            slot is reused, so cancel by id is an O(1) index plus a check
 *            that the slot still holds that id.
 *   best[s]  the level index of the best bid (highest) / ask (lowest), −1
 *            when the side is empty.
 *
 * Invariants after every call: best[BUY] < best[SELL] whenever both exist
 * (an incoming order matches first and rests only what cannot cross, so the
 * book is never left crossed); each level's qty and n equal the sums over
 * its list; the bitmaps mark exactly the non-empty levels; resting[] and
 * n_orders equal the sums over all levels.  Every lot a taker gets comes off
 * one maker, and volume/notional count each fill once.
 *
 * Every placing message takes a pool slot first (for its id); it goes back
 * to the free list unless the order rests.  The pool therefore has
 * max_orders + 1 slots.  A limit order that would have to rest into a full
 * book without trading is refused before anything changes; one that trades
 * first frees at least one maker slot, so it can always rest what is left.
 *
 * Snapshot (sp_lob_snapshot, one msgpack array): the pool's high-water mark
 * hw (slots ever handed out) is implied by the ids of slots 0..hw (their
 * generations; slots >= hw are untouched: id = slot, and they are always
 * the tail hw, hw+1, .. of the free list, because slots are taken from the
 * head and given back to the head); the free list's prefix before that
 * tail (slots < hw, in list order); the resting orders as (slot << 1 |
 * side, price in ticks, qty) triples in a canonical order (buys then sells,
 * price ascending, time priority within a level); volume, notional,
 * n_fills.  Restore validates all of it (every slot < hw free once or
 * resting once, prices in the window — absolute ticks, so a branch may
 * move the window —, quantities positive without overflow, the book not
 * crossed) before touching the book, then rebuilds levels, bitmaps, best
 * and the resting totals by resting the orders in that order (so each
 * level's FIFO is the same), and relinks the free list exactly: the next
 * ids handed out and every later iteration are the same as in the original.
 */
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/snapshot.h"
#include "lob.h"

#define MAX_TICKS ((int64_t)1 << 24)

struct level {
    int64_t qty;
    int32_t head, tail;
    uint32_t n;
};

struct order {
    uint64_t id;
    int64_t qty;                /* remaining lots */
    int32_t next, prev;         /* FIFO links within the level, −1 at ends */
    uint32_t lvl;               /* level index (price − min_tick) */
    uint8_t side;
    uint8_t live;               /* resting in the book */
};

struct bits {
    uint64_t *l1, *l2;
};

struct sp_lob {
    int64_t min_tick, n_ticks;
    double tick_size;
    sp_lob_fill_fn on_fill;
    void *ctx;
    struct level *lv[2];
    struct bits bm[2];
    size_t n_l1, n_l2;
    struct order *ord;
    uint32_t cap, max_orders;
    uint32_t hw;                /* slots ever taken: those >= hw are pristine */
    int32_t free_head;
    int64_t best[2];
    struct sp_lob_stats st;
};

/* ---- bitmaps ------------------------------------------------------------ */

static inline void bit_set(struct bits *s, uint64_t i)
{
    uint64_t w = i >> 6;
    s->l1[w] |= 1ULL << (i & 63);
    s->l2[w >> 6] |= 1ULL << (w & 63);
}

static inline void bit_clear(struct bits *s, uint64_t i)
{
    uint64_t w = i >> 6;
    s->l1[w] &= ~(1ULL << (i & 63));
    if (!s->l1[w]) s->l2[w >> 6] &= ~(1ULL << (w & 63));
}

/* Smallest marked index >= i, or −1. */
static int64_t next_up(const struct sp_lob *b, const struct bits *s, int64_t i)
{
    if (i >= b->n_ticks) return -1;
    uint64_t w = (uint64_t)i >> 6;
    uint64_t m = s->l1[w] & (~0ULL << (i & 63));
    if (m) return (int64_t)(w * 64 + (uint64_t)__builtin_ctzll(m));
    uint64_t w2 = w + 1;
    if (w2 >= b->n_l1) return -1;
    uint64_t u = w2 >> 6;
    uint64_t m2 = s->l2[u] & (~0ULL << (w2 & 63));
    while (!m2) {
        if (++u >= b->n_l2) return -1;
        m2 = s->l2[u];
    }
    w = u * 64 + (uint64_t)__builtin_ctzll(m2);
    return (int64_t)(w * 64 + (uint64_t)__builtin_ctzll(s->l1[w]));
}

/* Largest marked index <= i, or −1. */
static int64_t next_down(const struct bits *s, int64_t i)
{
    if (i < 0) return -1;
    uint64_t w = (uint64_t)i >> 6;
    uint64_t m = s->l1[w] & (~0ULL >> (63 - (i & 63)));
    if (m) return (int64_t)(w * 64 + 63 - (uint64_t)__builtin_clzll(m));
    if (w == 0) return -1;
    uint64_t w2 = w - 1, u = w2 >> 6;
    uint64_t m2 = s->l2[u] & (~0ULL >> (63 - (w2 & 63)));
    while (!m2) {
        if (u == 0) return -1;
        m2 = s->l2[--u];
    }
    w = u * 64 + 63 - (uint64_t)__builtin_clzll(m2);
    return (int64_t)(w * 64 + 63 - (uint64_t)__builtin_clzll(s->l1[w]));
}

/* ---- lifecycle ---------------------------------------------------------- */

int sp_lob_create(const struct sp_lob_config *cfg, struct sp_lob **out)
{
    if (!out) return SP_EINVAL;
    *out = NULL;
    if (!cfg || cfg->n_ticks < 1 || cfg->n_ticks > MAX_TICKS || cfg->max_orders < 1 ||
        cfg->max_orders > (uint32_t)INT32_MAX - 1 ||
        cfg->min_tick > INT64_MAX - cfg->n_ticks || !(cfg->tick_size > 0.0))
        return SP_EINVAL;
    struct sp_lob *b = calloc(1, sizeof *b);
    if (!b) return SP_ENOMEM;
    b->min_tick = cfg->min_tick;
    b->n_ticks = cfg->n_ticks;
    b->tick_size = cfg->tick_size;
    b->on_fill = cfg->on_fill;
    b->ctx = cfg->ctx;
    b->max_orders = cfg->max_orders;
    b->cap = cfg->max_orders + 1;
    b->n_l1 = ((size_t)cfg->n_ticks + 63) / 64;
    b->n_l2 = (b->n_l1 + 63) / 64;
    int ok = 1;
    for (int s = 0; s < 2; s++) {
        b->lv[s] = calloc((size_t)cfg->n_ticks, sizeof *b->lv[s]);
        b->bm[s].l1 = calloc(b->n_l1, sizeof(uint64_t));
        b->bm[s].l2 = calloc(b->n_l2, sizeof(uint64_t));
        ok &= b->lv[s] && b->bm[s].l1 && b->bm[s].l2;
        b->best[s] = -1;
    }
    b->ord = malloc((size_t)b->cap * sizeof *b->ord);
    if (!ok || !b->ord) {
        sp_lob_destroy(b);
        return SP_ENOMEM;
    }
    for (uint32_t i = 0; i < b->cap; i++) {
        b->ord[i] = (struct order){ .id = i, .next = (int32_t)i + 1, .prev = -1 };
    }
    b->ord[b->cap - 1].next = -1;
    b->free_head = 0;
    *out = b;
    return 0;
}

void sp_lob_destroy(struct sp_lob *b)
{
    if (!b) return;
    for (int s = 0; s < 2; s++) {
        free(b->lv[s]);
        free(b->bm[s].l1);
        free(b->bm[s].l2);
    }
    free(b->ord);
    free(b);
}

/* ---- matching ----------------------------------------------------------- */

static inline int price_index(const struct sp_lob *b, int64_t price, uint64_t *idx)
{
    if (price < b->min_tick) return 0;
    uint64_t d = (uint64_t)price - (uint64_t)b->min_tick;
    *idx = d;
    return d < (uint64_t)b->n_ticks;
}

static inline void free_slot(struct sp_lob *b, int32_t slot)
{
    b->ord[slot].live = 0;
    b->ord[slot].next = b->free_head;
    b->free_head = slot;
}

/* Match a taker on `side` (whose opposite side is the book it eats) with a
 * limit level index `lim` (inclusive; any level for a market order). */
static int64_t match(struct sp_lob *b, int side, int64_t lim, int64_t qty, uint64_t taker_id)
{
    int opp = side ^ 1;
    struct level *lvs = b->lv[opp];
    struct order *ord = b->ord;
    int64_t rem = qty;
    struct sp_lob_fill f = { .taker_id = taker_id, .taker_side = (enum sp_lob_side)side };
    for (;;) {
        int64_t bi = b->best[opp];
        if (bi < 0 || (side == SP_LOB_BUY ? bi > lim : bi < lim) || rem == 0) break;
        struct level *l = &lvs[bi];
        f.price = b->min_tick + bi;
        int64_t traded = 0;
        while (rem > 0 && l->n > 0) {
            int32_t slot = l->head;
            struct order *m = &ord[slot];
            int64_t q = m->qty < rem ? m->qty : rem;
            f.maker_id = m->id;
            f.qty = q;
            rem -= q;
            traded += q;
            m->qty -= q;
            b->st.notional += f.price * q;
            b->st.n_fills++;
            if (b->on_fill) b->on_fill(b->ctx, &f);
            if (m->qty == 0) {
                l->head = m->next;
                if (m->next >= 0) ord[m->next].prev = -1;
                l->n--;
                b->st.n_orders--;
                free_slot(b, slot);
            }
        }
        l->qty -= traded;
        b->st.resting[opp] -= traded;
        b->st.volume += traded;
        if (l->n == 0) {
            bit_clear(&b->bm[opp], (uint64_t)bi);
            b->best[opp] = opp == SP_LOB_SELL ? next_up(b, &b->bm[opp], bi + 1)
                                              : next_down(&b->bm[opp], bi - 1);
        }
    }
    return qty - rem;
}

static void rest(struct sp_lob *b, int32_t slot, int side, uint64_t idx, int64_t qty)
{
    struct order *o = &b->ord[slot];
    struct level *l = &b->lv[side][idx];
    o->qty = qty;
    o->lvl = (uint32_t)idx;
    o->side = (uint8_t)side;
    o->live = 1;
    o->next = -1;
    if (l->n == 0) {
        o->prev = -1;
        l->head = l->tail = slot;
        bit_set(&b->bm[side], idx);
        int64_t best = b->best[side];
        if (best < 0 || (side == SP_LOB_BUY ? (int64_t)idx > best : (int64_t)idx < best))
            b->best[side] = (int64_t)idx;
    } else {
        o->prev = l->tail;
        b->ord[l->tail].next = slot;
        l->tail = slot;
    }
    l->n++;
    l->qty += qty;
    b->st.resting[side] += qty;
    b->st.n_orders++;
}

/* kind: 0 limit, 1 IOC, 2 market. */
static int submit(struct sp_lob *b, int side, int64_t price, int64_t qty, int kind,
                  uint64_t *id_out, int64_t *filled_out)
{
    if (!b || (side != SP_LOB_BUY && side != SP_LOB_SELL) || qty <= 0) return SP_EINVAL;
    uint64_t idx = 0;
    int64_t lim;
    if (kind == 2) {
        lim = side == SP_LOB_BUY ? b->n_ticks - 1 : 0;
    } else {
        if (!price_index(b, price, &idx)) return SP_ERANGE;
        lim = (int64_t)idx;
    }
    if (kind == 0 && b->st.n_orders >= b->max_orders) {
        int64_t bo = b->best[side ^ 1];
        int crosses = bo >= 0 && (side == SP_LOB_BUY ? bo <= lim : bo >= lim);
        if (!crosses) return SP_ENOMEM;
    }
    int32_t slot = b->free_head;
    struct order *o = &b->ord[slot];
    b->free_head = o->next;
    if ((uint32_t)slot >= b->hw) b->hw = (uint32_t)slot + 1;
    o->id = (((o->id >> 32) + 1) << 32) | (uint32_t)slot;
    uint64_t id = o->id;
    int64_t filled = match(b, side, lim, qty, id);
    if (kind == 0 && filled < qty) rest(b, slot, side, idx, qty - filled);
    else free_slot(b, slot);
    if (id_out) *id_out = id;
    if (filled_out) *filled_out = filled;
    return 0;
}

int sp_lob_limit(struct sp_lob *b, enum sp_lob_side side, int64_t price, int64_t qty,
                 uint64_t *id, int64_t *filled)
{
    return submit(b, (int)side, price, qty, 0, id, filled);
}

int sp_lob_ioc(struct sp_lob *b, enum sp_lob_side side, int64_t price, int64_t qty,
               uint64_t *id, int64_t *filled)
{
    return submit(b, (int)side, price, qty, 1, id, filled);
}

int sp_lob_market(struct sp_lob *b, enum sp_lob_side side, int64_t qty, uint64_t *id,
                  int64_t *filled)
{
    return submit(b, (int)side, 0, qty, 2, id, filled);
}

static struct order *lookup(const struct sp_lob *b, uint64_t id)
{
    uint32_t slot = (uint32_t)id;
    if (!b || slot >= b->cap) return NULL;
    struct order *o = &b->ord[slot];
    return o->live && o->id == id ? o : NULL;
}

int sp_lob_cancel(struct sp_lob *b, uint64_t id, int64_t *remaining)
{
    struct order *o = lookup(b, id);
    if (!o) return b ? SP_ENOTFOUND : SP_EINVAL;
    int side = o->side;
    struct level *l = &b->lv[side][o->lvl];
    int32_t slot = (int32_t)(o - b->ord);
    if (o->prev >= 0) b->ord[o->prev].next = o->next;
    else l->head = o->next;
    if (o->next >= 0) b->ord[o->next].prev = o->prev;
    else l->tail = o->prev;
    l->n--;
    l->qty -= o->qty;
    b->st.resting[side] -= o->qty;
    b->st.n_orders--;
    if (remaining) *remaining = o->qty;
    if (l->n == 0) {
        bit_clear(&b->bm[side], o->lvl);
        if ((int64_t)o->lvl == b->best[side])
            b->best[side] = side == SP_LOB_SELL ? next_up(b, &b->bm[side], (int64_t)o->lvl + 1)
                                                : next_down(&b->bm[side], (int64_t)o->lvl - 1);
    }
    o->qty = 0;
    free_slot(b, slot);
    return 0;
}

/* ---- queries ------------------------------------------------------------ */

static int best_of(const struct sp_lob *b, int side, int64_t *price, int64_t *qty)
{
    if (!b) return SP_EINVAL;
    int64_t i = b->best[side];
    if (i < 0) return SP_ENOTFOUND;
    if (price) *price = b->min_tick + i;
    if (qty) *qty = b->lv[side][i].qty;
    return 0;
}

int sp_lob_best_bid(const struct sp_lob *b, int64_t *price, int64_t *qty)
{
    return best_of(b, SP_LOB_BUY, price, qty);
}

int sp_lob_best_ask(const struct sp_lob *b, int64_t *price, int64_t *qty)
{
    return best_of(b, SP_LOB_SELL, price, qty);
}

size_t sp_lob_depth(const struct sp_lob *b, enum sp_lob_side side, struct sp_lob_level *out,
                    size_t n)
{
    if (!b || (side != SP_LOB_BUY && side != SP_LOB_SELL) || (!out && n)) return 0;
    const struct bits *s = &b->bm[side];
    size_t k = 0;
    for (int64_t i = b->best[side]; i >= 0 && k < n;
         i = side == SP_LOB_SELL ? next_up(b, s, i + 1) : next_down(s, i - 1)) {
        const struct level *l = &b->lv[side][i];
        out[k++] = (struct sp_lob_level){ b->min_tick + i, l->qty, l->n };
    }
    return k;
}

size_t sp_lob_level_orders(const struct sp_lob *b, enum sp_lob_side side, int64_t price,
                           uint64_t *ids, int64_t *qtys, size_t n)
{
    uint64_t idx;
    if (!b || (side != SP_LOB_BUY && side != SP_LOB_SELL) || !price_index(b, price, &idx))
        return 0;
    const struct level *l = &b->lv[side][idx];
    size_t k = 0;
    for (int32_t s = l->n ? l->head : -1; s >= 0 && k < n; s = b->ord[s].next, k++) {
        if (ids) ids[k] = b->ord[s].id;
        if (qtys) qtys[k] = b->ord[s].qty;
    }
    return l->n;
}

int sp_lob_order(const struct sp_lob *b, uint64_t id, enum sp_lob_side *side, int64_t *price,
                 int64_t *qty)
{
    const struct order *o = lookup(b, id);
    if (!o) return b ? SP_ENOTFOUND : SP_EINVAL;
    if (side) *side = (enum sp_lob_side)o->side;
    if (price) *price = b->min_tick + (int64_t)o->lvl;
    if (qty) *qty = o->qty;
    return 0;
}

void sp_lob_stats(const struct sp_lob *b, struct sp_lob_stats *st)
{
    if (b && st) *st = b->st;
}

double sp_lob_price(const struct sp_lob *b, int64_t ticks)
{
    return (double)ticks * b->tick_size;
}

size_t sp_lob_resting(const struct sp_lob *b, uint64_t *ids, size_t n)
{
    if (!b) return 0;
    size_t k = 0;
    for (int s = 0; s < 2; s++)
        for (int64_t i = next_up(b, &b->bm[s], 0); i >= 0; i = next_up(b, &b->bm[s], i + 1))
            for (int32_t o = b->lv[s][i].head; o >= 0; o = b->ord[o].next, k++)
                if (ids && k < n) ids[k] = b->ord[o].id;
    return k;
}

/* ---- snapshot ----------------------------------------------------------- */

int sp_lob_snapshot(const struct sp_lob *b, struct sp_snapshot_writer *w)
{
    uint32_t hw = b->hw, n = b->st.n_orders;
    uint64_t *ids = malloc(((size_t)hw + 1) * sizeof *ids);
    uint64_t *fr = malloc(((size_t)hw + 1) * sizeof *fr);
    uint64_t *live = malloc(((size_t)n * 3 + 1) * sizeof *live);
    if (!ids || !fr || !live) {
        free(ids);
        free(fr);
        free(live);
        return SP_ENOMEM;
    }
    for (uint32_t i = 0; i < hw; i++) ids[i] = b->ord[i].id;
    size_t nf = 0;
    for (int32_t s = b->free_head; s >= 0 && (uint32_t)s < hw && nf < hw; s = b->ord[s].next)
        fr[nf++] = (uint64_t)s;
    size_t k = 0;
    for (int s = 0; s < 2; s++)
        for (int64_t i = next_up(b, &b->bm[s], 0); i >= 0; i = next_up(b, &b->bm[s], i + 1))
            for (int32_t o = b->lv[s][i].head; o >= 0 && k < n; o = b->ord[o].next) {
                live[3 * k] = (uint64_t)o << 1 | (uint64_t)s;
                live[3 * k + 1] = (uint64_t)(b->min_tick + i);
                live[3 * k + 2] = (uint64_t)b->ord[o].qty;
                k++;
            }
    sp_snap_put_array(w, 6);
    sp_snap_put_u64s(w, ids, hw);
    sp_snap_put_u64s(w, fr, nf);
    sp_snap_put_u64s(w, live, 3 * k);
    sp_snap_put_i64(w, b->st.volume);
    sp_snap_put_i64(w, b->st.notional);
    int rc = sp_snap_put_u64(w, b->st.n_fills);
    free(ids);
    free(fr);
    free(live);
    return rc;
}

/* Read the next bin of u64s into a fresh array of *n (at least 1) values. */
static uint64_t *get_words(struct sp_snapshot_reader *r, size_t *n)
{
    if (sp_snap_peek_count(r, n)) return NULL;
    uint64_t *p = malloc((*n + 1) * sizeof *p);
    if (!p) {
        sp_snap_fail(r, "out of memory");
        return NULL;
    }
    if (sp_snap_get_u64s(r, p, *n)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Check a decoded book against this one's window and pool; 0 or a message.
 * Turns the resting orders' prices into level indexes on the way. */
static const char *check_book(const struct sp_lob *b, const uint64_t *ids, size_t hw,
                              const uint64_t *fr, size_t nf, uint64_t *live, size_t n)
{
    if (hw > b->cap) return "more order slots used than the book has";
    if (n > b->max_orders) return "more resting orders than max_orders";
    if (nf + n != hw) return "free and resting orders do not cover the used slots";
    for (size_t i = 0; i < hw; i++)
        if ((uint32_t)ids[i] != i) return "an order id does not match its slot";
    uint8_t *seen = calloc(hw + 1, 1);
    if (!seen) return "out of memory";
    const char *err = NULL;
    for (size_t i = 0; i < nf && !err; i++) {
        if (fr[i] >= hw || seen[fr[i]]) err = "free list slot out of range or repeated";
        else seen[fr[i]] = 1;
    }
    int64_t sum[2] = { 0, 0 }, hi_bid = -1, lo_ask = -1;
    for (size_t i = 0; i < n && !err; i++) {
        uint64_t slot = live[3 * i] >> 1, idx = 0;
        int64_t q = (int64_t)live[3 * i + 2];
        int s = (int)(live[3 * i] & 1);
        if (slot >= hw || seen[slot]) err = "resting order slot out of range or repeated";
        else if (!price_index(b, (int64_t)live[3 * i + 1], &idx))
            err = "resting order price outside the window";
        else if (q <= 0 || __builtin_add_overflow(sum[s], q, &sum[s]))
            err = "resting order quantity out of range";
        else {
            int64_t lvl = (int64_t)idx;
            seen[slot] = 1;
            live[3 * i + 1] = idx;                        /* to a level index */
            if (s == SP_LOB_BUY && lvl > hi_bid) hi_bid = lvl;
            if (s == SP_LOB_SELL && (lo_ask < 0 || lvl < lo_ask)) lo_ask = lvl;
        }
    }
    if (!err && hi_bid >= 0 && lo_ask >= 0 && hi_bid >= lo_ask) err = "the book is crossed";
    free(seen);
    return err;
}

/* Empty the book and return the pool's slots below `upto` to their state
 * at creation (slots above were never touched). */
static void reset(struct sp_lob *b, uint32_t upto)
{
    for (int s = 0; s < 2; s++) {
        for (int64_t i = next_up(b, &b->bm[s], 0); i >= 0; i = next_up(b, &b->bm[s], i + 1))
            b->lv[s][i] = (struct level){ 0 };
        memset(b->bm[s].l1, 0, b->n_l1 * sizeof(uint64_t));
        memset(b->bm[s].l2, 0, b->n_l2 * sizeof(uint64_t));
        b->best[s] = -1;
    }
    for (uint32_t i = 0; i < upto; i++)
        b->ord[i] = (struct order){ .id = i, .next = (int32_t)i + 1, .prev = -1 };
    b->ord[b->cap - 1].next = -1;
    b->free_head = 0;
    b->hw = 0;
    memset(&b->st, 0, sizeof b->st);
}

int sp_lob_restore(struct sp_lob *b, struct sp_snapshot_reader *r)
{
    size_t hw = 0, nf = 0, n3 = 0;
    int64_t volume = 0, notional = 0;
    uint64_t n_fills = 0;
    uint64_t *ids = NULL, *fr = NULL, *live = NULL;
    if (!sp_snap_get_array_n(r, 6) && (ids = get_words(r, &hw)) && (fr = get_words(r, &nf)))
        live = get_words(r, &n3);
    sp_snap_get_i64(r, &volume);
    sp_snap_get_i64(r, &notional);
    sp_snap_get_u64(r, &n_fills);
    sp_snap_get_end(r);
    if (!sp_snap_error(r)) {
        const char *err = n3 % 3 ? "resting orders are not (slot, price, qty) triples"
                                 : check_book(b, ids, hw, fr, nf, live, n3 / 3);
        if (err) sp_snap_fail(r, "order book: %s", err);
    }
    if (!sp_snap_error(r)) {
        reset(b, b->hw > hw ? b->hw : (uint32_t)hw);
        for (size_t i = 0; i < hw; i++) b->ord[i].id = ids[i];
        for (size_t i = 0; i < n3 / 3; i++)
            rest(b, (int32_t)(live[3 * i] >> 1), (int)(live[3 * i] & 1), live[3 * i + 1],
                 (int64_t)live[3 * i + 2]);
        /* the free list: the saved prefix, then the pristine tail hw, hw+1, .. */
        int32_t tail = hw < b->cap ? (int32_t)hw : -1;
        for (size_t i = nf; i-- > 0;) {
            b->ord[fr[i]].next = tail;
            tail = (int32_t)fr[i];
        }
        b->free_head = tail;
        b->hw = (uint32_t)hw;
        b->st.volume = volume;
        b->st.notional = notional;
        b->st.n_fills = n_fills;
    }
    free(ids);
    free(fr);
    free(live);
    return sp_snap_error(r);
}
