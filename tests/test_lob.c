/*
 * test_lob.c — the limit order book against a brute-force reference.
 *
 * The reference book below is the textbook definition, written for
 * obviousness rather than speed: per side one array sorted best price first
 * and, within a price, by arrival; a taker eats the front of the opposite
 * array.  Randomized streams of limit / IOC / market / cancel messages (with
 * some invalid ones) go to both books; after every message the fills must be
 * identical (maker, taker, price, qty, in order), and the resting orders,
 * level by level in FIFO order, the same; the book must be uncrossed and its
 * totals equal the sums.  At the end every order's lots are accounted for
 * (filled + resting + cancelled + dropped = submitted) and the quote
 * currency paid by buyers equals what sellers received.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "lob.h"

/* ---- fill capture --------------------------------------------------------- */

struct fill_log {
    struct sp_lob_fill *f;
    size_t n, cap;
};

static void log_fill(void *ctx, const struct sp_lob_fill *fill)
{
    struct fill_log *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->f = realloc(l->f, l->cap * sizeof *l->f);
        assert_non_null(l->f);
    }
    l->f[l->n++] = *fill;
}

/* ---- reference book ------------------------------------------------------- */

struct ref_ord {
    uint64_t id;
    int64_t price, qty;
    size_t msg;                 /* index into the per-message accounts */
};

struct account {                /* what became of one submitted order */
    int64_t qty, filled, cancelled, dropped;
    int64_t cash;               /* quote currency received (tick-lots), < 0 if paid */
    int side;
};

struct ref_book {
    struct ref_ord *o[2];       /* [0] bids, price descending; [1] asks, ascending */
    size_t n[2], cap;
    struct fill_log fills;
    struct account *acct;
    size_t n_acct, cap_acct;
};

static int better(int side, int64_t a, int64_t b) { return side == SP_LOB_BUY ? a > b : a < b; }

static void ref_init(struct ref_book *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->o[0] = calloc(cap, sizeof(struct ref_ord));
    r->o[1] = calloc(cap, sizeof(struct ref_ord));
}

static void ref_free(struct ref_book *r)
{
    free(r->o[0]);
    free(r->o[1]);
    free(r->fills.f);
    free(r->acct);
}

static size_t ref_new_account(struct ref_book *r, int side, int64_t qty)
{
    if (r->n_acct == r->cap_acct) {
        r->cap_acct = r->cap_acct ? 2 * r->cap_acct : 1024;
        r->acct = realloc(r->acct, r->cap_acct * sizeof *r->acct);
        assert_non_null(r->acct);
    }
    r->acct[r->n_acct] = (struct account){ .qty = qty, .side = side };
    return r->n_acct++;
}

/* kind: 0 limit, 1 IOC, 2 market.  Matches, rests, logs fills. */
static void ref_submit(struct ref_book *r, int side, int64_t price, int64_t qty, int kind,
                       uint64_t taker_id)
{
    size_t msg = ref_new_account(r, side, qty);
    int opp = side ^ 1;
    while (qty > 0 && r->n[opp] > 0) {
        /* a buy crosses an ask <= its limit; a sell a bid >= its limit */
        struct ref_ord *m = &r->o[opp][0];
        if (kind != 2 && (side == SP_LOB_BUY ? m->price > price : m->price < price)) break;
        int64_t q = m->qty < qty ? m->qty : qty;
        struct sp_lob_fill f = { m->id, taker_id, m->price, q, (enum sp_lob_side)side };
        log_fill(&r->fills, &f);
        qty -= q;
        m->qty -= q;
        r->acct[msg].filled += q;
        r->acct[m->msg].filled += q;
        /* the buyer pays price·q, the seller receives it */
        r->acct[side == SP_LOB_BUY ? msg : m->msg].cash -= m->price * q;
        r->acct[side == SP_LOB_BUY ? m->msg : msg].cash += m->price * q;
        if (m->qty == 0) {
            memmove(&r->o[opp][0], &r->o[opp][1], (r->n[opp] - 1) * sizeof(struct ref_ord));
            r->n[opp]--;
        }
    }
    if (qty == 0) return;
    if (kind != 0) {
        r->acct[msg].dropped = qty;
        return;
    }
    /* rest behind every order at an equal or better price */
    size_t pos = 0, n = r->n[side];
    while (pos < n && !better(side, price, r->o[side][pos].price)) pos++;
    assert_true(n < r->cap);
    memmove(&r->o[side][pos + 1], &r->o[side][pos], (n - pos) * sizeof(struct ref_ord));
    r->o[side][pos] = (struct ref_ord){ taker_id, price, qty, msg };
    r->n[side]++;
}

static int ref_cancel(struct ref_book *r, uint64_t id, int64_t *remaining)
{
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < r->n[s]; k++)
            if (r->o[s][k].id == id) {
                *remaining = r->o[s][k].qty;
                r->acct[r->o[s][k].msg].cancelled = r->o[s][k].qty;
                memmove(&r->o[s][k], &r->o[s][k + 1], (r->n[s] - k - 1) * sizeof(struct ref_ord));
                r->n[s]--;
                return 0;
            }
    return SP_ENOTFOUND;
}

static int ref_crosses(const struct ref_book *r, int side, int64_t price)
{
    int opp = side ^ 1;
    if (!r->n[opp]) return 0;
    return side == SP_LOB_BUY ? r->o[opp][0].price <= price : r->o[opp][0].price >= price;
}

/* ---- comparison ----------------------------------------------------------- */

static void check_same_book(const struct sp_lob *b, const struct ref_book *r)
{
    static struct sp_lob_level lv[8192];
    static uint64_t ids[8192];
    static int64_t qtys[8192];
    struct sp_lob_stats st;
    sp_lob_stats(b, &st);
    assert_int_equal(st.n_orders, r->n[0] + r->n[1]);
    for (int s = 0; s < 2; s++) {
        size_t nl = sp_lob_depth(b, (enum sp_lob_side)s, lv, 8192), g = 0, k = 0;
        int64_t total = 0;
        while (k < r->n[s]) {                     /* one reference price group */
            int64_t price = r->o[s][k].price, qty = 0;
            size_t start = k;
            while (k < r->n[s] && r->o[s][k].price == price) qty += r->o[s][k++].qty;
            assert_true(g < nl);
            assert_int_equal(lv[g].price, price);
            assert_int_equal(lv[g].qty, qty);
            assert_int_equal(lv[g].n_orders, k - start);
            size_t cnt = sp_lob_level_orders(b, (enum sp_lob_side)s, price, ids, qtys, 8192);
            assert_int_equal(cnt, k - start);
            for (size_t j = 0; j < cnt; j++) {    /* FIFO within the level */
                assert_int_equal(ids[j], r->o[s][start + j].id);
                assert_int_equal(qtys[j], r->o[s][start + j].qty);
            }
            total += qty;
            g++;
        }
        assert_int_equal(g, nl);
        assert_int_equal(st.resting[s], total);
    }
    int64_t bid, ask, q;
    int hb = sp_lob_best_bid(b, &bid, &q) == 0, ha = sp_lob_best_ask(b, &ask, &q) == 0;
    assert_int_equal(hb, r->n[0] > 0);
    assert_int_equal(ha, r->n[1] > 0);
    if (hb && ha) assert_true(bid < ask);        /* never left crossed */
}

static void check_same_fills(const struct fill_log *got, const struct fill_log *want, size_t from)
{
    assert_int_equal(got->n, want->n);
    for (size_t k = from; k < got->n; k++) {
        assert_int_equal(got->f[k].maker_id, want->f[k].maker_id);
        assert_int_equal(got->f[k].taker_id, want->f[k].taker_id);
        assert_int_equal(got->f[k].price, want->f[k].price);
        assert_int_equal(got->f[k].qty, want->f[k].qty);
        assert_int_equal(got->f[k].taker_side, want->f[k].taker_side);
        assert_true(got->f[k].qty > 0);
    }
}

/* ---- randomized streams --------------------------------------------------- */

#define MIN_TICK 10000
#define N_TICKS 1024
#define MAX_ORDERS 4000

static void run_stream(uint64_t seed, int n_msgs)
{
    struct fill_log got = { 0 };
    struct sp_lob_config cfg = { MIN_TICK, N_TICKS, MAX_ORDERS, 0.01, log_fill, &got };
    struct sp_lob *b;
    assert_int_equal(sp_lob_create(&cfg, &b), 0);
    struct ref_book r;
    ref_init(&r, MAX_ORDERS + 1);
    struct sp_rng g;
    sp_rng_init(&g, seed, sp_rng_key("lob_stream"));
    int64_t mid = MIN_TICK + N_TICKS / 2, lots_in = 0;
    uint64_t *dead = calloc((size_t)n_msgs + 1, sizeof *dead);   /* ids no longer resting */
    size_t n_dead = 0;
    int counts[6] = { 0 };

    for (int i = 0; i < n_msgs; i++) {
        if (sp_rng_below(&g, 10) == 0) mid += (int64_t)sp_rng_below(&g, 3) - 1;
        if (mid < MIN_TICK + 40) mid = MIN_TICK + 40;
        if (mid > MIN_TICK + N_TICKS - 40) mid = MIN_TICK + N_TICKS - 40;
        size_t before = got.n, n_rest = r.n[0] + r.n[1];
        double u = sp_rng_uniform(&g);
        int side = (int)sp_rng_below(&g, 2);
        int64_t qty = 1 + (int64_t)sp_rng_below(&g, 100);
        if (u < 0.30 || (n_rest > 400 && u < 0.85)) {          /* cancel */
            uint64_t id;
            if (n_rest > 0 && sp_rng_below(&g, 10) != 0) {
                int s = r.n[0] && (!r.n[1] || sp_rng_below(&g, 2)) ? 0 : 1;
                id = r.o[s][sp_rng_below(&g, r.n[s])].id;
            } else {                                           /* filled / cancelled / bogus */
                id = n_dead && sp_rng_below(&g, 2) ? dead[sp_rng_below(&g, n_dead)]
                                                    : sp_rng_next(&g);
            }
            int64_t rem_got = -1, rem_want = -1;
            int rc = sp_lob_cancel(b, id, &rem_got);
            assert_int_equal(rc, ref_cancel(&r, id, &rem_want));
            if (rc == 0) {
                assert_int_equal(rem_got, rem_want);
                dead[n_dead++] = id;
            }
            counts[3 + (rc != 0)]++;
        } else {
            int kind = u < 0.80 ? 0 : u < 0.90 ? 1 : 2;
            /* limits straddle the touch; some cross, a few leave the window */
            int64_t off = (int64_t)sp_rng_below(&g, 24) - 4;
            int64_t price = side == SP_LOB_BUY ? mid - off : mid + off;
            if (sp_rng_below(&g, 500) == 0) price = sp_rng_below(&g, 2) ? MIN_TICK - 1 : MIN_TICK + N_TICKS;
            uint64_t id = 0;
            int64_t filled = -1;
            int rc = kind == 0 ? sp_lob_limit(b, (enum sp_lob_side)side, price, qty, &id, &filled)
                   : kind == 1 ? sp_lob_ioc(b, (enum sp_lob_side)side, price, qty, &id, &filled)
                               : sp_lob_market(b, (enum sp_lob_side)side, qty, &id, &filled);
            int want_rc = 0;
            if (kind != 2 && (price < MIN_TICK || price >= MIN_TICK + N_TICKS)) want_rc = SP_ERANGE;
            else if (kind == 0 && n_rest >= MAX_ORDERS && !ref_crosses(&r, side, price)) want_rc = SP_ENOMEM;
            assert_int_equal(rc, want_rc);
            if (rc == 0) {
                assert_true(id != 0);
                size_t f0 = r.fills.n;
                ref_submit(&r, side, price, qty, kind, id);
                int64_t want_filled = 0;
                for (size_t k = f0; k < r.fills.n; k++) want_filled += r.fills.f[k].qty;
                assert_int_equal(filled, want_filled);
                lots_in += qty;
                if (kind != 0 || filled == qty) dead[n_dead++] = id;
                counts[kind]++;
            } else {
                assert_int_equal(got.n, before);       /* refused: nothing traded */
                counts[5]++;
            }
        }
        check_same_fills(&got, &r.fills, before);
        check_same_book(b, &r);
    }

    /* conservation: every submitted lot is filled, resting, cancelled or dropped */
    int64_t resting[2] = { 0, 0 }, filled_total = 0, lots_total = 0;
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < r.n[s]; k++) resting[s] += r.o[s][k].qty;
    int64_t per_msg_rest[2] = { 0, 0 }, cash_net = 0, cash_paid = 0, cash_got = 0;
    for (size_t m = 0; m < r.n_acct; m++) {
        const struct account *a = &r.acct[m];
        int64_t rest = a->qty - a->filled - a->cancelled - a->dropped;
        assert_true(rest >= 0 && a->filled >= 0);
        per_msg_rest[a->side] += rest;
        filled_total += a->filled;
        lots_total += a->qty;
        cash_net += a->cash;
        if (a->side == SP_LOB_BUY) { assert_true(a->cash <= 0); cash_paid -= a->cash; }
        else                       { assert_true(a->cash >= 0); cash_got += a->cash; }
    }
    assert_int_equal(lots_total, lots_in);
    assert_int_equal(per_msg_rest[0], resting[0]);
    assert_int_equal(per_msg_rest[1], resting[1]);
    struct sp_lob_stats st;
    sp_lob_stats(b, &st);
    assert_int_equal(filled_total, 2 * st.volume);             /* one maker, one taker lot */
    assert_int_equal(st.n_fills, got.n);
    int64_t vol = 0, notional = 0;
    for (size_t k = 0; k < got.n; k++) {
        vol += got.f[k].qty;
        notional += got.f[k].price * got.f[k].qty;
    }
    assert_int_equal(vol, st.volume);
    assert_int_equal(notional, st.notional);
    assert_int_equal(cash_net, 0);                 /* buyers paid what sellers got */
    assert_int_equal(cash_paid, st.notional);
    assert_int_equal(cash_got, st.notional);
    /* the stream exercised every kind of message */
    for (int k = 0; k < 5; k++) assert_true(counts[k] > n_msgs / 100);
    assert_true(got.n > (size_t)n_msgs / 10);

    free(dead);
    free(got.f);
    ref_free(&r);
    sp_lob_destroy(b);
}

static void test_lob_random_streams_match_reference_book(void **state)
{
    (void)state;
    static const uint64_t seeds[] = { 1, 2, 3, 20240613 };
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) run_stream(seeds[k], 100000);
}

/* ---- targeted ------------------------------------------------------------- */

static struct sp_lob *small_book(struct fill_log *log)
{
    struct sp_lob_config cfg = { 100, 100, 16, 0.5, log_fill, log };
    struct sp_lob *b;
    assert_int_equal(sp_lob_create(&cfg, &b), 0);
    return b;
}

static void test_lob_partial_fill_rests_remainder(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);
    uint64_t a1, a2, t;
    int64_t filled, p, q;
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 150, 10, &a1, &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 151, 10, &a2, &filled), 0);
    /* buy 15 up to 151: 10 at 150 then 5 at 151; nothing left to rest */
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 151, 15, &t, &filled), 0);
    assert_int_equal(filled, 15);
    assert_int_equal(log.n, 2);
    assert_true(log.f[0].maker_id == a1 && log.f[0].price == 150 && log.f[0].qty == 10);
    assert_true(log.f[1].maker_id == a2 && log.f[1].price == 151 && log.f[1].qty == 5);
    assert_true(log.f[0].taker_id == t && log.f[0].taker_side == SP_LOB_BUY);
    assert_int_equal(sp_lob_order(b, a2, NULL, NULL, &q), 0);
    assert_int_equal(q, 5);
    assert_int_equal(sp_lob_order(b, a1, NULL, NULL, &q), SP_ENOTFOUND);
    assert_int_equal(sp_lob_order(b, t, NULL, NULL, &q), SP_ENOTFOUND);
    /* buy 8 up to 151: fills 5, rests 3 at 151 as the new best bid */
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 151, 8, &t, &filled), 0);
    assert_int_equal(filled, 5);
    assert_int_equal(sp_lob_best_bid(b, &p, &q), 0);
    assert_true(p == 151 && q == 3);
    assert_int_equal(sp_lob_best_ask(b, &p, &q), SP_ENOTFOUND);
    assert_true(sp_lob_price(b, 151) == 75.5);
    sp_lob_destroy(b);
    free(log.f);
}

static void test_lob_cancel_of_partially_filled_order_returns_remainder(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);
    uint64_t m, t;
    int64_t filled, rem = 0;
    struct sp_lob_stats st;
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 120, 50, &m, &filled), 0);
    assert_int_equal(sp_lob_market(b, SP_LOB_SELL, 20, &t, &filled), 0);
    assert_int_equal(filled, 20);
    assert_int_equal(sp_lob_cancel(b, m, &rem), 0);
    assert_int_equal(rem, 30);
    sp_lob_stats(b, &st);
    assert_true(st.resting[0] == 0 && st.resting[1] == 0 && st.n_orders == 0);
    assert_true(st.volume == 20 && st.notional == 20 * 120);
    assert_int_equal(sp_lob_cancel(b, m, &rem), SP_ENOTFOUND);   /* twice */
    assert_int_equal(sp_lob_cancel(b, t, &rem), SP_ENOTFOUND);   /* a taker id */
    assert_int_equal(sp_lob_best_bid(b, NULL, NULL), SP_ENOTFOUND);
    /* the slot is reused under a new id; the old id stays dead */
    uint64_t m2;
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 120, 5, &m2, &filled), 0);
    assert_true(m2 != m);
    assert_int_equal(sp_lob_cancel(b, m, &rem), SP_ENOTFOUND);
    assert_int_equal(sp_lob_cancel(b, m2, &rem), 0);
    sp_lob_destroy(b);
    free(log.f);
}

static void test_lob_market_order_against_empty_side_fills_nothing(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);
    uint64_t id, bid;
    int64_t filled = -1;
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 110, 7, &bid, &filled), 0);
    assert_int_equal(sp_lob_market(b, SP_LOB_BUY, 10, &id, &filled), 0);
    assert_int_equal(filled, 0);
    assert_int_equal(log.n, 0);
    assert_int_equal(sp_lob_order(b, id, NULL, NULL, NULL), SP_ENOTFOUND);   /* never rests */
    /* a market sell bigger than the book takes it all and drops the rest */
    assert_int_equal(sp_lob_market(b, SP_LOB_SELL, 10, &id, &filled), 0);
    assert_int_equal(filled, 7);
    assert_int_equal(sp_lob_best_bid(b, NULL, NULL), SP_ENOTFOUND);
    assert_int_equal(sp_lob_best_ask(b, NULL, NULL), SP_ENOTFOUND);
    sp_lob_destroy(b);
    free(log.f);
}

static void test_lob_ioc_remainder_is_dropped(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);
    uint64_t a, t;
    int64_t filled, p, q;
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 130, 4, &a, &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 135, 4, &a, &filled), 0);
    assert_int_equal(sp_lob_ioc(b, SP_LOB_BUY, 132, 10, &t, &filled), 0);
    assert_int_equal(filled, 4);                     /* only the level within its limit */
    assert_int_equal(sp_lob_best_bid(b, &p, &q), SP_ENOTFOUND);
    assert_int_equal(sp_lob_best_ask(b, &p, &q), 0);
    assert_true(p == 135 && q == 4);
    assert_int_equal(sp_lob_ioc(b, SP_LOB_BUY, 131, 10, &t, &filled), 0);   /* no cross */
    assert_int_equal(filled, 0);
    struct sp_lob_stats st;
    sp_lob_stats(b, &st);
    assert_true(st.n_orders == 1 && st.resting[SP_LOB_BUY] == 0);
    sp_lob_destroy(b);
    free(log.f);
}

static void test_lob_time_priority_within_level_and_depth(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);
    uint64_t id[5], t;
    int64_t filled;
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 140, 3, &id[0], &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 141, 2, &id[1], &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 140, 5, &id[2], &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 139, 1, &id[3], &filled), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 140, 7, &id[4], &filled), 0);
    struct sp_lob_level lv[2];
    assert_int_equal(sp_lob_depth(b, SP_LOB_BUY, lv, 2), 2);   /* top-2, aggregated */
    assert_true(lv[0].price == 141 && lv[0].qty == 2 && lv[0].n_orders == 1);
    assert_true(lv[1].price == 140 && lv[1].qty == 15 && lv[1].n_orders == 3);
    /* cancel the middle of the 140 queue; the others keep their places */
    assert_int_equal(sp_lob_cancel(b, id[2], NULL), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 140, 6, &t, &filled), 0);
    assert_int_equal(filled, 6);
    assert_int_equal(log.n, 3);
    assert_true(log.f[0].maker_id == id[1] && log.f[0].price == 141 && log.f[0].qty == 2);
    assert_true(log.f[1].maker_id == id[0] && log.f[1].price == 140 && log.f[1].qty == 3);
    assert_true(log.f[2].maker_id == id[4] && log.f[2].price == 140 && log.f[2].qty == 1);
    uint64_t ids[4];
    int64_t qs[4];
    assert_int_equal(sp_lob_level_orders(b, SP_LOB_BUY, 140, ids, qs, 4), 1);
    assert_true(ids[0] == id[4] && qs[0] == 6);
    sp_lob_destroy(b);
    free(log.f);
}

static void test_lob_refuses_bad_input_and_full_book(void **state)
{
    (void)state;
    struct fill_log log = { 0 };
    struct sp_lob *b = small_book(&log);   /* ticks [100, 200), 16 orders */
    uint64_t id = 0;
    int64_t filled = -1;
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 99, 1, &id, &filled), SP_ERANGE);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 200, 1, &id, &filled), SP_ERANGE);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, INT64_MIN, 1, &id, &filled), SP_ERANGE);
    assert_int_equal(sp_lob_ioc(b, SP_LOB_SELL, INT64_MAX, 1, &id, &filled), SP_ERANGE);
    assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 150, 0, &id, &filled), SP_EINVAL);
    assert_int_equal(sp_lob_market(b, SP_LOB_BUY, -3, &id, &filled), SP_EINVAL);
    assert_int_equal(sp_lob_limit(b, (enum sp_lob_side)2, 150, 1, &id, &filled), SP_EINVAL);
    assert_true(id == 0 && filled == -1);
    for (int k = 0; k < 16; k++)
        assert_int_equal(sp_lob_limit(b, SP_LOB_BUY, 100 + k, 1, NULL, NULL), 0);
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 160, 1, &id, &filled), SP_ENOMEM);
    /* a crossing order can still trade, and rest what is left once a slot frees */
    assert_int_equal(sp_lob_limit(b, SP_LOB_SELL, 115, 3, &id, &filled), 0);
    assert_int_equal(filled, 1);
    assert_int_equal(sp_lob_order(b, id, NULL, NULL, &filled), 0);
    assert_int_equal(filled, 2);
    assert_int_equal(sp_lob_market(b, SP_LOB_SELL, 1, NULL, NULL), 0);   /* full book, no rest */
    sp_lob_destroy(b);
    free(log.f);

    struct sp_lob *nb = (struct sp_lob *)&log;
    struct sp_lob_config bad = { 0, 0, 16, 1.0, NULL, NULL };
    assert_int_equal(sp_lob_create(&bad, &nb), SP_EINVAL);
    assert_null(nb);
    sp_lob_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lob_partial_fill_rests_remainder),
        cmocka_unit_test(test_lob_cancel_of_partially_filled_order_returns_remainder),
        cmocka_unit_test(test_lob_market_order_against_empty_side_fills_nothing),
        cmocka_unit_test(test_lob_ioc_remainder_is_dropped),
        cmocka_unit_test(test_lob_time_priority_within_level_and_depth),
        cmocka_unit_test(test_lob_refuses_bad_input_and_full_book),
        cmocka_unit_test(test_lob_random_streams_match_reference_book),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
