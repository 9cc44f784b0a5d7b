/*
 * test_liq_index.c — the liquidation index against a brute-force scan.
 *
 * The oracle is the Aave v3 health factor as restated in
 * /work/shared/reference/FORMULAS.md ("Aave v3 health factor and
 * liquidation", GenericLogic.sol):
 *
 *     HF = Σ_i collateral_i·price_i·LT_i / Σ_j debt_j·price_j,
 *     liquidatable iff HF < 1
 *
 * computed for every position after every operation, written here from the
 * formula and independent of the index (debt is already in the numeraire,
 * zero debt is HF = +inf).  The sum runs over the assets in order 0, 1, 2,
 * which is the evaluation order liq_index.h documents, so the two agree
 * bit for bit even at HF == 1.  Randomized streams of upserts, removes and
 * price moves (small and large, up and down, to zero and back, onto exact
 * boundaries), single- and multi-collateral, three assets: after each, the
 * index's liquidatable set equals the scan's, the state changes reported by
 * set_price are exactly the positions whose state changed, and the index's
 * own invariant check passes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "liq_index.h"

#define NA 3

/* ---- change capture ------------------------------------------------------- */

struct changes {
    uint32_t *id;
    int *liq;
    size_t n, cap;
};

static void log_change(void *ctx, uint32_t id, int liquidatable)
{
    struct changes *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->id = realloc(c->id, c->cap * sizeof *c->id);
        c->liq = realloc(c->liq, c->cap * sizeof *c->liq);
        assert_non_null(c->id);
        assert_non_null(c->liq);
    }
    c->id[c->n] = id;
    c->liq[c->n++] = liquidatable;
}

static void changes_free(struct changes *c)
{
    free(c->id);
    free(c->liq);
}

/* ---- brute-force reference ------------------------------------------------ */

struct ref_pos {
    double c[NA], debt;
    int live;
};

struct ref {
    double lt[NA], price[NA];
    struct ref_pos *p;
    uint32_t n;                 /* id space */
};

/* FORMULAS.md, Aave v3: HF = Σ collateral·price·LT / debt (debt in numeraire). */
static double ref_hf(const struct ref *r, const struct ref_pos *p)
{
    double coll = 0.0;
    for (int a = 0; a < NA; a++) coll += p->c[a] * r->price[a] * r->lt[a];
    return p->debt > 0.0 ? coll / p->debt : INFINITY;
}

static int ref_liq(const struct ref *r, const struct ref_pos *p)
{
    return p->live && ref_hf(r, p) < 1.0;
}

/* The index must agree with a full scan on every position. */
static void assert_matches_scan(const struct sp_liq_index *ix, const struct ref *r)
{
    size_t n_liq = 0, n_live = 0;
    for (uint32_t id = 0; id < r->n; id++) {
        const struct ref_pos *p = &r->p[id];
        if (!p->live) {
            assert_int_equal(sp_liq_index_is_liquidatable(ix, id), SP_ENOTFOUND);
            continue;
        }
        n_live++;
        int want = ref_liq(r, p);
        n_liq += (size_t)want;
        assert_int_equal(sp_liq_index_is_liquidatable(ix, id), want);
        double hf = 0.0;
        assert_int_equal(sp_liq_index_health(ix, id, &hf), 0);
        double rhf = ref_hf(r, p);
        assert_true(hf == rhf);
    }
    assert_int_equal(sp_liq_index_count(ix), n_live);
    uint32_t *ids = malloc((n_liq + 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(sp_liq_index_liquidatable(ix, ids, n_liq + 1), n_liq);
    for (size_t k = 0; k < n_liq; k++) {
        assert_true(ids[k] < r->n);
        assert_true(ref_liq(r, &r->p[ids[k]]));
    }
    free(ids);
    assert_int_equal(sp_liq_index_check(ix), 0);
}

static const double LT3[NA] = { 0.825, 0.78, 0.70 };   /* ETH, USDC, WBTC-like */

static struct sp_liq_index *make_index(struct ref *r, uint32_t n_ids, uint32_t cap)
{
    struct sp_liq_index *ix = NULL;
    assert_int_equal(sp_liq_index_create(NA, LT3, cap, &ix), 0);
    assert_non_null(ix);
    memcpy(r->lt, LT3, sizeof LT3);
    memset(r->price, 0, sizeof r->price);
    r->n = n_ids;
    r->p = calloc(n_ids, sizeof *r->p);
    assert_non_null(r->p);
    return ix;
}

static void set_price(struct sp_liq_index *ix, struct ref *r, uint32_t a, double p,
                      struct changes *ch)
{
    ch->n = 0;
    int *before = malloc(r->n * sizeof *before);
    assert_non_null(before);
    for (uint32_t id = 0; id < r->n; id++) before[id] = ref_liq(r, &r->p[id]);
    assert_int_equal(sp_liq_index_set_price(ix, a, p, log_change, ch), 0);
    r->price[a] = p;
    /* exactly the positions whose state changed, each once, right direction */
    size_t n_changed = 0;
    for (uint32_t id = 0; id < r->n; id++) {
        int now = ref_liq(r, &r->p[id]);
        if (now == before[id]) continue;
        n_changed++;
        size_t hits = 0;
        for (size_t k = 0; k < ch->n; k++)
            if (ch->id[k] == id) {
                hits++;
                assert_int_equal(ch->liq[k], now);
            }
        assert_int_equal(hits, 1);
    }
    assert_int_equal(ch->n, n_changed);
    free(before);
}

static void upsert(struct sp_liq_index *ix, struct ref *r, uint32_t id, const double *c,
                   double debt)
{
    int liq = -1;
    assert_int_equal(sp_liq_index_upsert(ix, id, c, debt, &liq), 0);
    memcpy(r->p[id].c, c, sizeof r->p[id].c);
    r->p[id].debt = debt;
    r->p[id].live = 1;
    assert_int_equal(liq, ref_liq(r, &r->p[id]));
}

/* ---- worked examples and edge cases --------------------------------------- */

static void test_liq_index_health_factor_matches_aave_formula(void **state)
{
    (void)state;
    struct ref r;
    struct sp_liq_index *ix = make_index(&r, 4, 0);
    struct changes ch = { 0 };
    set_price(ix, &r, 0, 2000.0, &ch);
    set_price(ix, &r, 1, 1.0, &ch);
    set_price(ix, &r, 2, 30000.0, &ch);
    /* FORMULAS.md Aave v3 HF: collateral 10 ETH·2000·0.825 + 10000 USDC·1·0.78
     * + 0.5 BTC·30000·0.70 = 16500 + 7800 + 10500 = 34800; debt 20000 USDC·1
     * + 2 ETH·2000 = 24000 (the caller folds debt prices in) → HF = 1.45. */
    const double c[NA] = { 10.0, 10000.0, 0.5 };
    upsert(ix, &r, 0, c, 20000.0 * 1.0 + 2.0 * 2000.0);
    double hf = 0.0;
    assert_int_equal(sp_liq_index_health(ix, 0, &hf), 0);
    assert_true(fabs(hf - 1.45) <= 1e-12 * 1.45);
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 0), 0);
    /* single collateral: p* = D/(c·LT) = 16500/(10·0.825) = 2000 */
    const double e[NA] = { 10.0, 0.0, 0.0 };
    upsert(ix, &r, 1, e, 16500.0 * 0.999);
    set_price(ix, &r, 0, 1998.5, &ch);          /* 0.999·2000 = 1998 < 1998.5 */
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 1), 0);
    set_price(ix, &r, 0, 1997.5, &ch);
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 1), 1);
    assert_int_equal(ch.n, 1);
    assert_true(ch.id[0] == 1 && ch.liq[0] == 1);
    assert_matches_scan(ix, &r);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

static void test_liq_index_zero_debt_is_never_liquidatable(void **state)
{
    (void)state;
    struct ref r;
    struct sp_liq_index *ix = make_index(&r, 4, 0);
    struct changes ch = { 0 };
    const double c[NA] = { 1.0, 2.0, 0.0 }, none[NA] = { 0 };
    upsert(ix, &r, 0, c, 0.0);
    upsert(ix, &r, 1, none, 0.0);
    double hf = 0.0;
    assert_int_equal(sp_liq_index_health(ix, 1, &hf), 0);
    assert_true(isinf(hf) && hf > 0);
    for (uint32_t a = 0; a < NA; a++) set_price(ix, &r, a, 5.0, &ch);
    for (uint32_t a = 0; a < NA; a++) set_price(ix, &r, a, 0.0, &ch);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 0);
    assert_matches_scan(ix, &r);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

static void test_liq_index_debt_without_collateral_is_always_liquidatable(void **state)
{
    (void)state;
    struct ref r;
    struct sp_liq_index *ix = make_index(&r, 4, 0);
    struct changes ch = { 0 };
    const double none[NA] = { 0 };
    upsert(ix, &r, 2, none, 1.0);
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 2), 1);
    for (uint32_t a = 0; a < NA; a++) set_price(ix, &r, a, 1e6, &ch);
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 2), 1);
    /* an asset with LT = 0 counts for nothing */
    const double lt0[NA] = { 0.0, 0.5, 0.5 };
    struct sp_liq_index *iz = NULL;
    assert_int_equal(sp_liq_index_create(NA, lt0, 0, &iz), 0);
    assert_int_equal(sp_liq_index_set_price(iz, 0, 1e9, NULL, NULL), 0);
    const double eth[NA] = { 1e6, 0.0, 0.0 };
    int liq = 0;
    assert_int_equal(sp_liq_index_upsert(iz, 0, eth, 1.0, &liq), 0);
    assert_int_equal(liq, 1);
    assert_int_equal(sp_liq_index_check(iz), 0);
    sp_liq_index_destroy(iz);
    assert_matches_scan(ix, &r);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

static void test_liq_index_health_factor_exactly_one_is_not_liquidatable(void **state)
{
    (void)state;
    const double lt[NA] = { 0.5, 0.25, 0.75 };
    struct ref r;
    struct sp_liq_index *ix = NULL;
    assert_int_equal(sp_liq_index_create(NA, lt, 0, &ix), 0);
    memcpy(r.lt, lt, sizeof lt);
    memset(r.price, 0, sizeof r.price);
    r.n = 4;
    r.p = calloc(r.n, sizeof *r.p);
    struct changes ch = { 0 };
    set_price(ix, &r, 0, 2.0, &ch);
    set_price(ix, &r, 1, 1.0, &ch);
    set_price(ix, &r, 2, 4.0, &ch);
    const double single[NA] = { 1.0, 0.0, 0.0 };       /* W = 1·2·0.5 = 1 */
    const double multi[NA] = { 0.5, 2.0, 0.0 };        /* W = 0.5 + 0.5 = 1 */
    upsert(ix, &r, 0, single, 1.0);
    upsert(ix, &r, 1, multi, 1.0);
    double hf = 0.0;
    assert_int_equal(sp_liq_index_health(ix, 0, &hf), 0);
    assert_true(hf == 1.0);
    assert_int_equal(sp_liq_index_health(ix, 1, &hf), 0);
    assert_true(hf == 1.0);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 0);
    /* a few ulps below: both liquidatable (one ulp of ETH would move the
     * multi-collateral W by half an ulp of 1, which rounds back to 1 — and
     * index and scan agree on that too); back to the boundary: healthy */
    set_price(ix, &r, 0, nextafter(2.0, 0.0), &ch);
    assert_int_equal(ch.n, 1);
    assert_true(ch.id[0] == 0 && ch.liq[0] == 1);
    set_price(ix, &r, 0, 2.0 - 0x1p-50, &ch);
    assert_int_equal(ch.n, 1);
    assert_true(ch.id[0] == 1 && ch.liq[0] == 1);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 2);
    set_price(ix, &r, 0, 2.0, &ch);
    assert_int_equal(ch.n, 2);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 0);
    /* the other asset of the multi-collateral position, a few ulps down */
    set_price(ix, &r, 1, 1.0 - 0x1p-51, &ch);
    assert_int_equal(ch.n, 1);
    assert_true(ch.id[0] == 1 && ch.liq[0] == 1);
    set_price(ix, &r, 1, 1.0, &ch);
    assert_int_equal(ch.n, 1);
    assert_matches_scan(ix, &r);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

static void test_liq_index_price_to_zero_and_back(void **state)
{
    (void)state;
    struct ref r;
    struct sp_liq_index *ix = make_index(&r, 8, 0);
    struct changes ch = { 0 };
    set_price(ix, &r, 0, 2000.0, &ch);
    set_price(ix, &r, 1, 1.0, &ch);
    set_price(ix, &r, 2, 30000.0, &ch);
    const double eth[NA] = { 1.0, 0.0, 0.0 }, mix[NA] = { 1.0, 2000.0, 0.0 },
                 btc[NA] = { 0.0, 0.0, 1.0 };
    upsert(ix, &r, 0, eth, 1000.0);     /* HF 1.65 */
    upsert(ix, &r, 1, mix, 1000.0);     /* W 1650 + 1560: survives ETH at 0 */
    upsert(ix, &r, 2, mix, 2000.0);     /* needs ETH: 1560 < 2000 at ETH = 0 */
    upsert(ix, &r, 3, btc, 1000.0);
    set_price(ix, &r, 0, 0.0, &ch);
    assert_int_equal(ch.n, 2);
    assert_matches_scan(ix, &r);
    set_price(ix, &r, 1, 0.0, &ch);     /* now 1 fails too */
    assert_int_equal(ch.n, 1);
    set_price(ix, &r, 2, 0.0, &ch);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 4);
    /* re-inserting at zero prices: bounds from W = 0 */
    upsert(ix, &r, 4, mix, 10.0);
    set_price(ix, &r, 1, 1.0, &ch);
    set_price(ix, &r, 0, 2000.0, &ch);
    set_price(ix, &r, 2, 30000.0, &ch);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 0);
    assert_matches_scan(ix, &r);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

/* A price move touches only the positions it crosses: single-collateral
 * positions by their exact liquidation price, multi-collateral ones only
 * when the move ate their share of the slack. */
static void test_liq_index_price_move_touches_only_crossing_positions(void **state)
{
    (void)state;
    const double lt[NA] = { 0.5, 0.8, 0.7 };
    struct sp_liq_index *ix = NULL;
    assert_int_equal(sp_liq_index_create(NA, lt, 0, &ix), 0);
    assert_int_equal(sp_liq_index_set_price(ix, 0, 2100.0, NULL, NULL), 0);
    assert_int_equal(sp_liq_index_set_price(ix, 1, 1.0, NULL, NULL), 0);
    const double one[NA] = { 1.0, 0.0, 0.0 };
    for (uint32_t k = 1; k <= 1000; k++)         /* p* = D/(1·0.5) = 2k */
        assert_int_equal(sp_liq_index_upsert(ix, k, one, (double)k, NULL), 0);
    /* 1000 multi-collateral positions, HF from 1.1 to 3 */
    const double two[NA] = { 1.0, 10000.0, 0.0 };   /* W = 1050 + 8000 */
    for (uint32_t k = 0; k < 1000; k++) {
        double hf = 1.1 + 1.9 * k / 999.0;
        assert_int_equal(sp_liq_index_upsert(ix, 2000 + k, two, 9050.0 / hf, NULL), 0);
    }
    struct sp_liq_index_stats s0, s1;
    sp_liq_index_stats(ix, &s0);
    /* a 1 % fall: nothing crosses, nothing is touched (no single p* is above
     * 2079, no multi-collateral HF below 1/0.99) */
    assert_int_equal(sp_liq_index_set_price(ix, 0, 2100.0 * 0.99, NULL, NULL), 0);
    sp_liq_index_stats(ix, &s1);
    assert_true(s1.n_touched == s0.n_touched);
    /* to 1000.5: exactly k = 501..1000 cross (p* = 1002..2000) */
    assert_int_equal(sp_liq_index_set_price(ix, 0, 1000.5, NULL, NULL), 0);
    sp_liq_index_stats(ix, &s0);
    /* the multi-collateral ones lost 549.75/9050 = 6 % of W, so none crosses
     * (HF >= 1.1·0.94); their ETH bound is touched when HF < ~2.1 */
    uint64_t touched = s0.n_touched - s1.n_touched;
    assert_int_equal(s0.n_changed - s1.n_changed, 500);
    assert_true(touched >= 500 && touched < 500 + 1000);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 500);
    /* back up: exactly the 500 liquidatable ones are touched */
    assert_int_equal(sp_liq_index_set_price(ix, 0, 2100.0, NULL, NULL), 0);
    sp_liq_index_stats(ix, &s1);
    assert_int_equal(s1.n_touched - s0.n_touched, 500);
    assert_int_equal(sp_liq_index_liquidatable(ix, NULL, 0), 0);
    assert_int_equal(sp_liq_index_check(ix), 0);
    sp_liq_index_destroy(ix);
}

static void test_liq_index_refuses_bad_input(void **state)
{
    (void)state;
    struct sp_liq_index *ix = (struct sp_liq_index *)&ix;
    const double bad_lt[NA] = { 0.5, -0.1, 0.5 }, nan_lt[NA] = { 0.5, NAN, 0.5 };
    assert_int_equal(sp_liq_index_create(0, LT3, 0, &ix), SP_EINVAL);
    assert_null(ix);
    assert_int_equal(sp_liq_index_create(NA, bad_lt, 0, &ix), SP_EINVAL);
    assert_int_equal(sp_liq_index_create(NA, nan_lt, 0, &ix), SP_EINVAL);
    assert_int_equal(sp_liq_index_create(NA, NULL, 0, &ix), SP_EINVAL);
    assert_int_equal(sp_liq_index_create(NA, LT3, 0, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_create(NA, LT3, 0, &ix), 0);
    const double ok[NA] = { 1, 1, 1 }, neg[NA] = { 1, -1, 1 }, inf[NA] = { 1, INFINITY, 1 };
    assert_int_equal(sp_liq_index_upsert(ix, 0, neg, 1.0, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_upsert(ix, 0, inf, 1.0, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_upsert(ix, 0, ok, -1.0, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_upsert(ix, 0, ok, NAN, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_upsert(ix, SP_LIQ_INDEX_MAX_ID + 1, ok, 1.0, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_count(ix), 0);
    assert_int_equal(sp_liq_index_set_price(ix, NA, 1.0, NULL, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_set_price(ix, 0, -1.0, NULL, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_set_price(ix, 0, NAN, NULL, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_set_price(ix, 0, INFINITY, NULL, NULL), SP_EINVAL);
    assert_int_equal(sp_liq_index_remove(ix, 7), SP_ENOTFOUND);
    assert_int_equal(sp_liq_index_is_liquidatable(ix, 7), SP_ENOTFOUND);
    double hf;
    assert_int_equal(sp_liq_index_health(ix, 7, &hf), SP_ENOTFOUND);
    assert_int_equal(sp_liq_index_upsert(ix, 7, ok, 1.0, NULL), 0);
    assert_int_equal(sp_liq_index_remove(ix, 7), 0);
    assert_int_equal(sp_liq_index_remove(ix, 7), SP_ENOTFOUND);
    assert_int_equal(sp_liq_index_check(ix), 0);
    sp_liq_index_destroy(ix);
    sp_liq_index_destroy(NULL);
}

static void test_liq_index_memory_per_position_is_bounded(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct sp_liq_index *ix = NULL;
    assert_int_equal(sp_liq_index_create(NA, LT3, N, &ix), 0);
    size_t before = sp_liq_index_bytes(ix);
    for (uint32_t a = 0; a < NA; a++)
        assert_int_equal(sp_liq_index_set_price(ix, a, 1.0, NULL, NULL), 0);
    const double c[NA] = { 1, 1, 1 };
    for (uint32_t id = 0; id < N; id++)
        assert_int_equal(sp_liq_index_upsert(ix, id, c, 1.0 + id % 7, NULL), 0);
    /* reserved at creation: nothing grew, all three assets held everywhere */
    assert_int_equal(sp_liq_index_bytes(ix), before);
    assert_true(sp_liq_index_bytes(ix) <= 256u * N);
    sp_liq_index_destroy(ix);
}

/* ---- randomized against the scan ------------------------------------------ */

static double draw_price(struct sp_rng *g, double base)
{
    return base * exp(0.5 * sp_rng_normal(g));
}

static void random_position(struct sp_rng *g, const struct ref *r, double *c, double *debt)
{
    memset(c, 0, NA * sizeof *c);
    uint64_t shape = sp_rng_below(g, 10);
    if (shape < 5) {
        c[sp_rng_below(g, NA)] = exp(2.0 * sp_rng_normal(g));         /* single */
    } else if (shape < 9) {
        for (int a = 0; a < NA; a++)                                    /* multi */
            if (sp_rng_below(g, 3)) c[a] = exp(2.0 * sp_rng_normal(g));
    }                                                                   /* else none */
    double w = 0.0;
    for (int a = 0; a < NA; a++) w += c[a] * r->price[a] * r->lt[a];
    uint64_t d = sp_rng_below(g, 20);
    if (d == 0) *debt = 0.0;
    else if (d == 1) *debt = w;                                         /* HF == 1 */
    else if (w > 0.0) *debt = w * (0.5 + sp_rng_uniform(g));
    else *debt = exp(sp_rng_normal(g));
}

static void test_liq_index_random_operations_match_brute_force_scan(void **state)
{
    (void)state;
    enum { N_IDS = 400, N_OPS = 100000 };
    const double base[NA] = { 2000.0, 1.0, 30000.0 };
    struct ref r;
    struct sp_liq_index *ix = make_index(&r, N_IDS, 0);
    struct changes ch = { 0 };
    struct sp_rng g;
    sp_rng_init(&g, 20261125, sp_rng_key("test_liq_index"));
    for (uint32_t a = 0; a < NA; a++) set_price(ix, &r, a, base[a], &ch);
    uint64_t n_changed = 0;
    for (int op = 0; op < N_OPS; op++) {
        uint64_t kind = sp_rng_below(&g, 100);
        uint32_t id = (uint32_t)sp_rng_below(&g, N_IDS);
        uint32_t a = (uint32_t)sp_rng_below(&g, NA);
        if (kind < 35) {
            double c[NA], debt;
            random_position(&g, &r, c, &debt);
            upsert(ix, &r, id, c, debt);
        } else if (kind < 45) {
            int rc = sp_liq_index_remove(ix, id);
            assert_int_equal(rc, r.p[id].live ? 0 : SP_ENOTFOUND);
            r.p[id].live = 0;
        } else {
            double p = r.price[a];
            uint64_t move = sp_rng_below(&g, 100);
            if (move < 70) p *= 1.0 + 0.02 * sp_rng_normal(&g);        /* ±2 % */
            else if (move < 85) p *= sp_rng_below(&g, 2) ? 1.5 : 0.5;    /* ±50 % */
            else if (move < 88) p = 0.0;
            else if (move < 92) p = draw_price(&g, base[a]);
            else if (r.p[id].live && r.p[id].c[a] > 0.0) {
                /* onto this position's boundary in a, others held fixed */
                double rest = 0.0;
                for (uint32_t b = 0; b < NA; b++)
                    if (b != a) rest += r.p[id].c[b] * r.price[b] * r.lt[b];
                double q = (r.p[id].debt - rest) / (r.p[id].c[a] * r.lt[a]);
                if (q > 0.0 && isfinite(q)) p = q;
            }
            if (!(p >= 0.0) || !isfinite(p)) p = base[a];
            if (p > 0.0 && (p > 100.0 * base[a] || p < base[a] / 100.0)) p = base[a];
            set_price(ix, &r, a, p, &ch);
            n_changed += ch.n;
        }
        assert_matches_scan(ix, &r);
    }
    assert_true(n_changed > 1000);      /* the stream did move states around */
    struct sp_liq_index_stats st;
    sp_liq_index_stats(ix, &st);
    assert_true(st.n_changed == n_changed);
    changes_free(&ch);
    free(r.p);
    sp_liq_index_destroy(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liq_index_health_factor_matches_aave_formula),
        cmocka_unit_test(test_liq_index_zero_debt_is_never_liquidatable),
        cmocka_unit_test(test_liq_index_debt_without_collateral_is_always_liquidatable),
        cmocka_unit_test(test_liq_index_health_factor_exactly_one_is_not_liquidatable),
        cmocka_unit_test(test_liq_index_price_to_zero_and_back),
        cmocka_unit_test(test_liq_index_price_move_touches_only_crossing_positions),
        cmocka_unit_test(test_liq_index_refuses_bad_input),
        cmocka_unit_test(test_liq_index_memory_per_position_is_bounded),
        cmocka_unit_test(test_liq_index_random_operations_match_brute_force_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
