/*
 * test_counterfactual.c — the counterfactual without feedback
 * (`counterfactual: no-feedback`, engine/trades.c) and `spiral run
 * --amplification` (engine/main.c):
 *   - the cascade of test_liquidation.c (amm_direct into a fee-less CPMM
 *     read by an on_trade oracle, a scripted dump as the exogenous move),
 *     run twice from the same text: with feedback the fixed point computed
 *     from x·y = k (a real cascade, generations 0..rounds−1); without, the
 *     positions crossed by the dump alone and no others, the CPMM price
 *     never moves after the dump, no venue tag, cascade_depth 0, each sale
 *     a row of /events/trades at the reference price exactly (price_before =
 *     price_after = the venue's price) and its proceeds = seized × reference
 *     price; the ledger is conserved throughout (sp_ledger_check);
 *   - the CLI: --amplification writes the twin beside the output, the
 *     /summary ratios are exactly max_drawdown with / without, both runs see
 *     the same reference path, the twin equals a plain no-feedback run of
 *     the same seed, `--counterfactual no-feedback` and `--set
 *     counterfactual=no-feedback` give bit-identical datasets, the root
 *     attribute `counterfactual`, --discard-twin;
 *   - bad input: `counterfactual: nofeedback` (file:line, did-you-mean,
 *     exit 2), bad option combinations (exit 2).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "testutil.h"
#include "testworld.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/market.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "sim-internal.h"
#include "lending.h"
#include "liquidation.h"
#include "oracle.h"
#include "reference.h"

#define assert_near(a, b, eps)                                                          \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps)))                                                   \
            fail_msg("%s = %.17g, expected %.17g (within %g)", #a, a_, b_, (double)(eps)); \
    } while (0)
#define assert_rel(a, b, r) assert_near(a, b, (r) * fabs(b) + 1e-300)

/* ---- in-process worlds -------------------------------------------------------------- */

static double amm_price(struct tw_world *w)
{
    sp_id amm = tw_id(w, "amm");
    return sp_market_ops_of(w->sim, amm)->price(sp_sim_entity_state(w->sim, amm));
}

/* ---- the cascade, with and without feedback ------------------------------------------- */

#define N_POS 12

static char *owners(int n)
{
    char *s = calloc(1, 1);
    for (int i = 0; i < n; i++) {
        char *t = tw_fmt("%s  - {type: scripted, name: u_%d, holdings: [{token: ETH, amount: 2}], "
                         "actions: []}\n", s, i);
        free(s);
        s = t;
    }
    return s;
}

/* test_liquidation.c's cascade without the arbitrageur: after the dump,
 * only liquidation sales could move the pool. */
static const char *const cascade_yaml =
    "seed: 7\n"
    "horizon: 1d\n"
    "output: {sample_every: 1h}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1h}\n"
    "markets:\n"
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: 1000,\n"
    "     reserve_quote: 2000000, fee: 0}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: spot, of: amm}, poll: 1h,\n"
    "     deviation: 0, heartbeat: 1h, on_trade: true}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%%, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: {mechanism: amm_direct, venue: amm}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%%, liquidation_threshold: 80%%,\n"
    "         liquidation_bonus: 5%%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 10000000, base_rate: 0, slope1: 0, slope2: 0}\n"
    "agents:\n"
    "%s"
    "  - {type: scripted, name: seller, holdings: [{token: ETH, amount: 10}],\n"
    "     actions: [{at: 10m, do: swap, venue: amm, side: sell, amount: %g}]}\n";

struct cascade_run {
    int liquidated[N_POS];       /* 1 if its collateral was sold */
    int gen_seen[N_POS];         /* generation while liquidatable, -1 never */
    double price_end, dd, depth, n_liq;
    double usdc[N_POS];          /* owner's USDC at the end */
    double ref_price;            /* reference ETH price during the cascade */
};

static const double SHOCK = 5, LT = 0.8, X0 = 1000, Y0 = 2000000;

static double debt_of(int i) { return 2 * LT * (1995 - 10.0 * i); }

/* Run the cascade scenario (with `set` applied) to 2h; the price after the
 * dump is checked unchanged when `frozen`. */
static void run_cascade(const char *name, const char *set, bool frozen, struct cascade_run *out,
                        const char *h5)
{
    struct tw_world w;
    char *own_yaml = owners(N_POS);
    char *y = tw_fmt(cascade_yaml, own_yaml, SHOCK);
    free(own_yaml);
    /* `set` applied as --set would; recorded to h5 as sp_world_run does */
    tw_open(&w, &(struct tw_opts){ .name = name, .text = y, .set = set, .h5 = h5 });
    free(y);
    tw_drain(&w, SP_MIN);
    tw_check_lending(&w);
    sp_id aave = tw_id(&w, "aave"), amm = tw_id(&w, "amm");
    sp_token ETH = sp_token_find(w.sim, "ETH"), USDC = sp_token_find(w.sim, "USDC");
    sp_id own[N_POS];
    for (int i = 0; i < N_POS; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "u_%d", i);
        own[i] = tw_id(&w, nm);
        assert_int_equal(sp_lending_deposit(w.sim, aave, own[i], ETH, 2), 0);
        assert_int_equal(sp_lending_borrow(w.sim, aave, own[i], USDC, debt_of(i)), 0);
        out->gen_seen[i] = -1;
    }
    /* Event by event to 2h: generations, the ledger, and (frozen) the pool
     * price from the dump on. */
    double p_dump = NAN;
    bool drained = false;
    while (!drained) {
        sp_sim_step(w.sim, 2 * SP_HOUR, 1, &drained);
        tw_check_lending(&w);
        for (int i = 0; i < N_POS; i++) {
            int g = sp_liq_generation(w.sim, aave, own[i]);
            if (g >= 0 && out->gen_seen[i] < 0) out->gen_seen[i] = g;
        }
        double p = amm_price(&w);
        if (sp_sim_now(w.sim) < 10 * SP_MIN) {
            assert_true(p == Y0 / X0);
        } else if (isnan(p_dump)) {
            p_dump = p;                                   /* the dump is the first event at 10m */
            out->ref_price = sp_reference_price(w.sim, tw_id(&w, "reference_ETH"));
        } else if (frozen) {
            assert_true(p == p_dump);                     /* bit for bit */
        }
    }
    assert_rel(p_dump, X0 * Y0 / (X0 + SHOCK) / (X0 + SHOCK), 1e-12);
    if (frozen) assert_int_equal(sp_venue_liq_generation(w.sim, amm, 0), -1);   /* no tag */
    for (int i = 0; i < N_POS; i++) {
        double c = sp_lending_collateral(w.sim, aave, own[i], ETH);
        out->liquidated[i] = c == 0;
        if (!out->liquidated[i]) assert_near(c, 2, 0);
        out->usdc[i] = sp_balance(w.sim, own[i], USDC);
    }
    assert_int_equal(sp_lending_liquidatable(w.sim, aave, NULL, 0), 0);
    out->price_end = amm_price(&w);
    sp_sim_finish(w.sim);
    out->dd = tw_summary(w.sim, "max_drawdown_amm");
    out->depth = tw_summary(w.sim, "cascade_depth");
    out->n_liq = tw_summary(w.sim, "n_liquidations");
    tw_check_lending(&w);
    assert_int_equal(sp_rec_close(w.rec, "complete"), 0);
    tw_close(&w);
}

static void test_cascade_without_feedback(void **state)
{
    (void)state;
    char h5_fb[1024], h5_nf[1024];
    snprintf(h5_fb, sizeof h5_fb, "%s/tests/cf_cascade_fb.h5", SP_BINARY_DIR);
    snprintf(h5_nf, sizeof h5_nf, "%s/tests/cf_cascade_nf.h5", SP_BINARY_DIR);
    struct cascade_run fb, nf;
    run_cascade("cf_cascade_fb", NULL, false, &fb, h5_fb);
    run_cascade("cf_cascade_nf", "counterfactual=no-feedback", true, &nf, h5_nf);

    /* With feedback: the fixed point from x·y = k (test_liquidation.c). */
    int round_of[N_POS];
    double k = X0 * Y0, x = X0 + SHOCK, P = k / x / x;
    const double P1 = P;                                  /* the dump alone */
    int rounds = 0;
    for (int i = 0; i < N_POS; i++) round_of[i] = -1;
    for (;;) {
        double sold = 0;
        for (int i = 0; i < N_POS; i++)
            if (round_of[i] < 0 && 2 * P * LT < debt_of(i)) { round_of[i] = rounds; sold += 2; }
        if (sold == 0) break;
        x += sold;
        P = k / x / x;
        rounds++;
    }
    assert_true(rounds >= 3);
    int n_fb = 0, n_nf = 0;
    for (int i = 0; i < N_POS; i++) {
        assert_int_equal(fb.liquidated[i], round_of[i] >= 0);
        assert_int_equal(fb.gen_seen[i], round_of[i]);
        n_fb += fb.liquidated[i];
    }
    assert_rel(fb.price_end, P, 1e-12);
    assert_near(fb.depth, rounds - 1, 0);
    assert_near(fb.n_liq, n_fb, 0);
    assert_rel(fb.dd, 1 - P / (Y0 / X0), 1e-12);

    /* Without: exactly the positions the dump alone crosses, all in
     * generation 0, sold at the reference price (2000, the pool never moves). */
    assert_near(nf.ref_price, 2000, 0);
    for (int i = 0; i < N_POS; i++) {
        bool crossed = 2 * P1 * LT < debt_of(i);
        assert_int_equal(nf.liquidated[i], crossed);
        assert_int_equal(nf.gen_seen[i], crossed ? 0 : -1);
        n_nf += nf.liquidated[i];
        /* amm_direct: proceeds 2 ETH × 2000 repay the debt, the surplus goes
         * to the owner, who kept the borrowed USDC: 4000 in all. */
        if (crossed) assert_rel(nf.usdc[i], 2 * nf.ref_price, 1e-12);
        else assert_rel(nf.usdc[i], debt_of(i), 1e-12);
    }
    assert_true(n_nf >= 1);
    assert_true(n_fb > n_nf);                             /* feedback goes deeper */
    assert_near(nf.depth, 0, 0);
    assert_near(nf.n_liq, n_nf, 0);
    assert_rel(nf.price_end, P1, 1e-12);
    assert_rel(nf.dd, 1 - P1 / (Y0 / X0), 1e-12);
    assert_true(fb.dd > nf.dd);

    /* The sales in /events/trades: the venue it would have hit, the pool's
     * price before = after, proceeds = seized × reference price exactly. */
    size_t n, el, n2, el2;
    int8_t *cause = tu_read_raw(h5_nf, "/events/trades/cause", &n, &el);
    double *ain = tu_read_raw(h5_nf, "/events/trades/amount_in", &n2, &el2);
    double *aout = tu_read_f64(h5_nf, "/events/trades/amount_out", &n2);
    double *pb = tu_read_f64(h5_nf, "/events/trades/price_before", &n2);
    double *pa = tu_read_f64(h5_nf, "/events/trades/price_after", &n2);
    int32_t *gen = tu_read_raw(h5_nf, "/events/trades/generation", &n2, &el2);
    int8_t *side = tu_read_raw(h5_nf, "/events/trades/side", &n2, &el2);
    assert_int_equal(n, n2);
    size_t n_sales = 0;
    for (size_t r = 0; r < n; r++) {
        if (cause[r] != SP_CAUSE_LIQUIDATION) continue;
        n_sales++;
        assert_int_equal(side[r], SP_SELL);
        assert_near(ain[r], 2, 0);
        assert_true(aout[r] == ain[r] * 2000);
        assert_true(pb[r] == pa[r]);
        assert_rel(pb[r], P1, 1e-12);
        assert_int_equal(gen[r], 0);
    }
    assert_int_equal(n_sales, (size_t)n_nf);
    free(cause); free(ain); free(aout); free(pb); free(pa); free(gen); free(side);
    /* /events/liquidations: executed at the reference price. */
    double *px = tu_read_f64(h5_nf, "/events/liquidations/exec_price", &n);
    double *seized = tu_read_f64(h5_nf, "/events/liquidations/collateral_seized", &n2);
    assert_int_equal(n, (size_t)n_nf);
    for (size_t r = 0; r < n; r++) {
        assert_rel(px[r], 2000, 1e-12);
        assert_near(seized[r], 2, 0);
    }
    free(px);
    free(seized);
}

/* ---- the CLI ------------------------------------------------------------------------ */

/* A leveraged market: loopers on an Aave-like pool, amm_direct into the
 * CPMM its oracle reads, arbitrageurs, a 30 % fall of a 60 %-vol GBM. */
static const char *const amp_yaml =
    "seed: 11\n"
    "horizon: 6h\n"
    "output: {sample_every: 5m}\n"
    "tokens:\n"
    "  - {name: ETH, kind: base}\n"
    "  - {name: USDC, kind: stable}\n"
    "  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}\n"
    "references:\n"
    "  - {type: gbm, asset: ETH, initial: 2000, volatility: 60%, step: 12s,\n"
    "     shocks: [{at: 2h, drop: 30%, over: 1h}]}\n"
    "markets:\n"
    "  - {type: cpmm, name: amm, base: ETH, quote: USDC, reserve_base: 3000,\n"
    "     reserve_quote: 6000000, fee: 0.3%}\n"
    "oracles:\n"
    "  - {type: chainlink, name: o_eth, source: {type: spot, of: amm}, poll: 12s,\n"
    "     deviation: 0.5%, heartbeat: 1h}\n"
    "  - {type: chainlink, name: o_usdc, source: {type: value, of: USDC}, poll: 1h,\n"
    "     deviation: 1%, heartbeat: 1d}\n"
    "protocols:\n"
    "  - type: pool\n"
    "    name: aave\n"
    "    liquidation: {mechanism: amm_direct, venue: amm}\n"
    "    assets:\n"
    "      - {token: ETH, oracle: o_eth, ltv: 80%, liquidation_threshold: 82.5%,\n"
    "         liquidation_bonus: 5%}\n"
    "      - {token: USDC, oracle: o_usdc, collateral: false, borrowable: true, receipt: aUSDC,\n"
    "         initial_supply: 50000000, base_rate: 0, slope1: 0, slope2: 0}\n"
    "agents:\n"
    "  - {type: arbitrageur, name: arbs, count: 2, venue: amm, poll: 12s, reaction: 12s,\n"
    "     cash: 20000000, inventory: 3000}\n"
    "  - {type: looper, name: vaults, count: 60, protocol: aave, collateral: ETH, debt: USDC,\n"
    "     venue: amm, capital: {dist: lognormal, mean: 6, sd: 8},\n"
    "     target_leverage: {dist: uniform, low: 1.6, high: 4.5}, safety: 99%,\n"
    "     max_slippage: 3%, start: 1m, start_spread: 1h, hf_low: 0, inattentive: 100%}\n";

static char *read_str_attr(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return strdup("");
    char *out = NULL;
    if (H5Aexists(f, name) > 0) {
        hid_t a = H5Aopen(f, name, H5P_DEFAULT);
        hid_t ft = H5Aget_type(a);
        if (H5Tis_variable_str(ft) > 0) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5Tget_cset(ft));
            char *s = NULL;
            if (H5Aread(a, t, &s) >= 0 && s) { out = strdup(s); H5free_memory(s); }
            H5Tclose(t);
        } else {
            size_t sz = H5Tget_size(ft);
            out = calloc(1, sz + 1);
            H5Aread(a, ft, out);
        }
        H5Tclose(ft);
        H5Aclose(a);
    }
    H5Fclose(f);
    return out ? out : strdup("");
}

static bool has_attr(const char *path, const char *obj, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return false;
    bool yes = H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0;
    H5Fclose(f);
    return yes;
}

/* Every dataset of `a` exists in `b` with the same type, shape and bytes
 * (variable-length strings compared as strings), and `b` has no other. */
struct cmp { hid_t other; int n, diff; char first[256]; };

/* A link visitor (the info argument, whose type depends on the HDF5
 * version, is not used): datasets only. */
static herr_t cmp_visit(hid_t obj, const char *name, const void *info, void *arg)
{
    (void)info;
    struct cmp *c = arg;
    hid_t d1 = H5Dopen2(obj, name, H5P_DEFAULT);           /* a group: not a dataset */
    if (d1 < 0) return 0;
    c->n++;
    hid_t d2 = H5Lexists(c->other, name, H5P_DEFAULT) > 0 ? H5Dopen2(c->other, name, H5P_DEFAULT)
                                                          : -1;
    bool same = d2 >= 0;
    hid_t t1 = H5Dget_type(d1), t2 = same ? H5Dget_type(d2) : -1;
    hid_t s1 = H5Dget_space(d1), s2 = same ? H5Dget_space(d2) : -1;
    hssize_t n1 = H5Sget_simple_extent_npoints(s1);
    if (same) same = H5Tequal(t1, t2) > 0 && n1 == H5Sget_simple_extent_npoints(s2);
    if (same && n1 > 0) {
        if (H5Tget_class(t1) == H5T_STRING && H5Tis_variable_str(t1) > 0) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5Tget_cset(t1));
            char **x = calloc((size_t)n1, sizeof *x), **y = calloc((size_t)n1, sizeof *y);
            H5Dread(d1, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
            H5Dread(d2, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
            for (hssize_t i = 0; i < n1; i++) {
                if (!x[i] || !y[i] || strcmp(x[i], y[i])) same = false;
                if (x[i]) H5free_memory(x[i]);
                if (y[i]) H5free_memory(y[i]);
            }
            free(x);
            free(y);
            H5Tclose(t);
        } else {
            size_t sz = H5Tget_size(t1) * (size_t)n1;
            char *x = malloc(sz), *y = malloc(sz);
            H5Dread(d1, t1, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
            H5Dread(d2, t1, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
            same = memcmp(x, y, sz) == 0;
            free(x);
            free(y);
        }
    }
    if (!same && !c->diff++) snprintf(c->first, sizeof c->first, "%s", name);
    H5Sclose(s1);
    H5Tclose(t1);
    if (d2 >= 0) { H5Sclose(s2); H5Tclose(t2); H5Dclose(d2); }
    H5Dclose(d1);
    return 0;
}

static int count_datasets(hid_t f)
{
    struct cmp c = { f, 0, 0, "" };
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, (H5L_iterate_t)cmp_visit, &c);
    return c.n;
}

static void assert_same_datasets(const char *a, const char *b)
{
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fa >= 0 && fb >= 0);
    struct cmp c = { fb, 0, 0, "" };
    H5Lvisit(fa, H5_INDEX_NAME, H5_ITER_NATIVE, (H5L_iterate_t)cmp_visit, &c);
    if (c.diff) fail_msg("%s and %s differ: %d datasets, first %s", a, b, c.diff, c.first);
    assert_true(c.n > 10);
    assert_int_equal(count_datasets(fb), c.n);
    H5Fclose(fa);
    H5Fclose(fb);
}

static void run_ok(char **argv, const char *log)
{
    int rc = tu_run(argv, log);
    if (rc) {
        char *t = tu_read(log);
        fail_msg("exit %d:\n%s", rc, t);
    }
}

static void test_amplification_cli(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("counterfactual");
    char scen[1024], out[1024], twin[1024], log[1024], direct[1024], viaset[1024];
    snprintf(scen, sizeof scen, "%s/amp.yaml", dir);
    snprintf(out, sizeof out, "%s/amp.h5", dir);
    snprintf(twin, sizeof twin, "%s/amp_nofeedback.h5", dir);
    snprintf(log, sizeof log, "%s/amp.log", dir);
    snprintf(direct, sizeof direct, "%s/direct.h5", dir);
    snprintf(viaset, sizeof viaset, "%s/viaset.h5", dir);
    tu_write(scen, amp_yaml);
    char *run_amp[] = { "spiral", "run", scen, "-o", out, "--seed", "5", "--amplification", NULL };
    run_ok(run_amp, log);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "amp_nofeedback.h5"));
    free(text);
    char st[32];
    assert_string_equal(tu_status(out, st, sizeof st), "complete");
    assert_string_equal(tu_status(twin, st, sizeof st), "complete");
    char *cf = read_str_attr(out, "counterfactual");
    assert_string_equal(cf, "none");
    free(cf);
    cf = read_str_attr(twin, "counterfactual");
    assert_string_equal(cf, "no-feedback");
    free(cf);

    /* The ratios, exactly. */
    double dd = tu_attr_f64(out, "/summary", "max_drawdown_amm");
    double dd_nf = tu_attr_f64(twin, "/summary", "max_drawdown_amm");
    assert_true(dd > 0 && dd_nf > 0);
    assert_true(tu_attr_f64(out, "/summary", "drawdown_nofeedback_amm") == dd_nf);
    assert_true(tu_attr_f64(out, "/summary", "amplification_amm") == dd / dd_nf);
    /* o_eth, aave's first collateral oracle, reads amm. */
    assert_true(tu_attr_f64(out, "/summary", "amplification") == dd / dd_nf);
    assert_true(dd / dd_nf > 1);                         /* liquidations deepen the fall */
    /* Only markets get ratios (the reference is not one). */
    assert_false(has_attr(out, "/summary", "amplification_reference_ETH"));
    assert_false(has_attr(twin, "/summary", "amplification"));
    assert_true(tu_attr_f64(out, "/summary", "cascade_depth") > 0);
    assert_true(tu_attr_f64(twin, "/summary", "cascade_depth") == 0);
    assert_true(tu_attr_f64(twin, "/summary", "n_liquidations") > 0);

    /* Same seed: the same reference path. */
    size_t n1, n2, e1, e2;
    char *r1 = tu_read_raw(out, "/markets/reference_ETH/price", &n1, &e1);
    char *r2 = tu_read_raw(twin, "/markets/reference_ETH/price", &n2, &e2);
    assert_true(n1 > 10 && n1 == n2 && e1 == e2);
    assert_memory_equal(r1, r2, n1 * e1);
    free(r1);
    free(r2);
    /* The no-feedback sales went to the sink: every liquidation row of the
     * twin leaves the venue's price as it was. */
    int8_t *cause = tu_read_raw(twin, "/events/trades/cause", &n1, &e1);
    double *pb = tu_read_f64(twin, "/events/trades/price_before", &n2);
    double *pa = tu_read_f64(twin, "/events/trades/price_after", &n2);
    size_t sales = 0;
    for (size_t r = 0; r < n1; r++)
        if (cause[r] == SP_CAUSE_LIQUIDATION) { sales++; assert_true(pb[r] == pa[r]); }
    assert_true(sales > 0);
    free(cause);
    free(pb);
    free(pa);

    /* The twin is a plain no-feedback run of the same seed; the flag is the
     * --set, bit for bit. */
    char *run_flag[] = { "spiral", "run", scen, "-o", direct, "--seed", "5", "-q",
                         "--counterfactual", "no-feedback", NULL };
    run_ok(run_flag, log);
    char *run_set[] = { "spiral", "run", scen, "-o", viaset, "--seed", "5", "-q",
                        "--set", "counterfactual=no-feedback", NULL };
    run_ok(run_set, log);
    assert_same_datasets(direct, viaset);
    assert_same_datasets(viaset, direct);
    assert_same_datasets(twin, direct);
    assert_true(tu_attr_f64(direct, "/summary", "max_drawdown_amm") == dd_nf);

    /* --discard-twin: the same summary, no twin file. */
    char out2[1024], twin2[1024];
    snprintf(out2, sizeof out2, "%s/amp2.h5", dir);
    snprintf(twin2, sizeof twin2, "%s/amp2_nofeedback.h5", dir);
    char *run_discard[] = { "spiral", "run", scen, "-o", out2, "--seed", "5", "-q",
                            "--amplification", "--discard-twin", NULL };
    run_ok(run_discard, log);
    assert_int_not_equal(access(twin2, F_OK), 0);
    assert_true(tu_attr_f64(out2, "/summary", "amplification") == dd / dd_nf);
    assert_same_datasets(out, out2);
    /* Two sims in one process share nothing: the run after its twin is the
     * plain run. */
    char plain[1024];
    snprintf(plain, sizeof plain, "%s/plain.h5", dir);
    char *run_plain[] = { "spiral", "run", scen, "-o", plain, "--seed", "5", "-q", NULL };
    run_ok(run_plain, log);
    assert_same_datasets(out, plain);
    assert_false(has_attr(plain, "/summary", "amplification"));
}

/* ---- bad input ------------------------------------------------------------------------ */

static void test_bad_input(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("counterfactual_bad");
    char scen[1024], bad[1024], log[1024], out[1024];
    snprintf(scen, sizeof scen, "%s/ok.yaml", dir);
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
    snprintf(log, sizeof log, "%s/bad.log", dir);
    snprintf(out, sizeof out, "%s/bad.h5", dir);
    tu_write(scen, amp_yaml);
    /* line 3 of the file */
    char *y = tw_fmt("seed: 11\nhorizon: 6h\ncounterfactual: nofeedback\n%s",
                     strstr(amp_yaml, "output:"));
    tu_write(bad, y);
    free(y);
    char *validate[] = { "spiral", "validate", bad, NULL };
    assert_int_equal(tu_run(validate, log), 2);
    char *text = tu_read(log);
    if (!strstr(text, "bad.yaml:3:") || !strstr(text, "counterfactual") ||
        !strstr(text, "did you mean 'no-feedback'?"))
        fail_msg("unexpected message:\n%s", text);
    free(text);
    char *run[] = { "spiral", "run", bad, "-o", out, NULL };
    assert_int_equal(tu_run(run, log), 2);
    assert_int_not_equal(access(out, F_OK), 0);          /* nothing written */
    /* The flag and the --set: the same message. */
    char *flag[] = { "spiral", "run", scen, "-o", out, "--counterfactual", "nofeedback", NULL };
    assert_int_equal(tu_run(flag, log), 2);
    text = tu_read(log);
    if (!strstr(text, "did you mean 'no-feedback'?")) fail_msg("unexpected message:\n%s", text);
    free(text);
    char *set[] = { "spiral", "run", scen, "-o", out, "--set", "counterfactual=no_feedback", NULL };
    assert_int_equal(tu_run(set, log), 2);
    text = tu_read(log);
    if (!strstr(text, "did you mean 'no-feedback'?")) fail_msg("unexpected message:\n%s", text);
    free(text);
    /* Option combinations. */
    char *discard[] = { "spiral", "run", scen, "-o", out, "--discard-twin", NULL };
    assert_int_equal(tu_run(discard, log), 2);
    char *both[] = { "spiral", "run", scen, "-o", out, "--amplification",
                     "--counterfactual", "no-feedback", NULL };
    assert_int_equal(tu_run(both, log), 2);
    text = tu_read(log);
    if (!strstr(text, "counterfactual: none")) fail_msg("unexpected message:\n%s", text);
    free(text);
    assert_int_not_equal(access(out, F_OK), 0);
    /* In the library: bind fails with SP_ECONFIG. */
    struct sp_diag d = { 0 };
    struct sp_scenario *sc = NULL;
    struct sp_world_cfg cfg;
    int rc = sp_scenario_load(&sc, bad, &d);
    if (!rc) rc = sp_world_bind(sc, sp_registry_builtin(), &cfg, &d);
    assert_int_equal(rc, SP_ECONFIG);
    sp_diag_release(&d);
    sp_scenario_destroy(sc);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cascade_without_feedback),
        cmocka_unit_test(test_amplification_cli),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
