/*
 * test_liq_english.c — Maker Liquidations 1.0 English auction mechanics.
 *
 * Reference values come from FORMULAS.md, "Maker Liquidations 1.0 (dss
 * flip.sol) — English auction": the beg vectors (1.00 → 1.01 fails, 1.00 →
 * 1.07 passes; dent 100 → 99 fails, 100 → 95 passes), the ttl/tau timing and
 * restart rules (strict comparisons as in dss src/flip.sol), and the Black
 * Thursday lone bidder.  A randomized run checks after every call that no
 * collateral or DAI is created or lost through tend/dent/deal/tick.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "spiral/error.h"
#include "spiral/rng.h"
#include "spiral/types.h"
#include "liq_english.h"

/* FORMULAS.md defaults: beg 1.05, ttl 3 h, tau 2 days. */
static const struct sp_english_params flip_defaults = { .beg = 1.05, .ttl = 3 * SP_HOUR,
                                                        .tau = 2 * SP_DAY };

static void test_english_tend_beg_vectors(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 1.0: "raising 1.00 → 1.01 fails, 1.00 → 1.07 passes". */
    struct sp_english_auction a;
    struct sp_english_flow f;
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 1, 1, 1.00, &f), 0);
    struct sp_english_auction before = a;
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 2, 2, 1.01, &f), SP_ERANGE);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 2, 2, 1.07, &f), 0);
    assert_true(a.bid == 1.07 && a.guy == 2);
    /* the new bidder pays 1.07: 1.00 back to bidder 1, 0.07 to the protocol */
    assert_true(f.refund == 1.00 && f.refund_to == 1);
    assert_true(fabs(f.to_gal - 0.07) < 1e-15 && f.paid == f.refund + f.to_gal);

    /* exactly beg·bid passes (bid ≥ beg·previous) */
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 1, 1, 2.0, &f), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 2, 2, 2.1, &f), 0);   /* 1.05·2 */
    /* not above the current bid, or above tab: refused */
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 3, 3, 2.1, &f), SP_ERANGE);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 3, 3, 10.5, &f), SP_ERANGE);
    /* bid == tab is accepted below beg·bid: 9.8 → 10 (< 10.29) */
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 3, 3, 9.8, &f), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 4, 4, 9.9, &f), SP_ERANGE);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 4, 4, 10.0, &f), 0);
    /* the same bidder raising pays only the increment */
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 1, 5, 4.0, &f), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 2, 5, 5.0, &f), 0);
    assert_true(f.paid == 1.0 && f.refund == 0.0 && f.to_gal == 1.0);
}

static void test_english_dent_beg_vectors(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 1.0: "dent 100 → 99 fails, 100 → 95 passes";
     * dent only once bid == tab; collateral given up returns to the owner. */
    struct sp_english_auction a;
    struct sp_english_flow f;
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 1, 1, 9.0, &f), 0);
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 2, 2, 95.0, &f), SP_ESTATE);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 2, 1, 10.0, &f), 0);   /* == tab */
    struct sp_english_auction before = a;
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 3, 2, 99.0, &f), SP_ERANGE);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 3, 2, 100.0, &f), SP_ERANGE);
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 3, 2, 95.0, &f), 0);
    assert_true(a.lot == 95.0 && a.guy == 2 && a.bid == 10.0);
    assert_true(f.lot_to_owner == 5.0);
    /* bidder 2 pays the full tab to bidder 1; nothing more reaches the protocol */
    assert_true(f.paid == 10.0 && f.refund == 10.0 && f.refund_to == 1 && f.to_gal == 0.0);
    /* next cut must again be a factor beg: 95 → 90.5 fails (1.05·90.5 > 95), 90 passes */
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 4, 3, 90.5, &f), SP_ERANGE);
    assert_int_equal(sp_english_dent(&flip_defaults, &a, 4, 3, 90.0, &f), 0);
    assert_true(f.lot_to_owner == 5.0);
    /* tend is over once bid == tab */
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 5, 4, 10.0, &f), SP_ERANGE);
}

static void test_english_ttl_and_tau_timing(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 1.0: "Each bid sets the expiry to now + ttl; settle
     * when the expiry or the auction end has passed"; strict as in flip.sol. */
    const sp_time t0 = 5 * SP_MIN;
    struct sp_english_auction a;
    struct sp_english_flow f;
    sp_id w = 0;
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, t0, &a), 0);
    assert_int_equal(a.end, t0 + 2 * SP_DAY);
    assert_int_equal(sp_english_deal(&a, t0 + 3 * SP_DAY, &w, &f), SP_ESTATE);  /* no bid */
    sp_time tb = t0 + SP_HOUR;
    assert_int_equal(sp_english_tend(&flip_defaults, &a, tb, 1, 1.0, &f), 0);
    assert_int_equal(a.tic, tb + 3 * SP_HOUR);
    /* at exactly tic: no more bids, and no deal yet */
    assert_int_equal(sp_english_tend(&flip_defaults, &a, a.tic, 2, 2.0, &f), SP_ESTATE);
    assert_int_equal(sp_english_deal(&a, a.tic, &w, &f), SP_ESTATE);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, a.tic - 1, 2, 2.0, &f), 0);
    assert_int_equal(a.tic, tb + 6 * SP_HOUR - 1);               /* extended */
    assert_int_equal(sp_english_deal(&a, a.tic, &w, &f), SP_ESTATE);
    assert_int_equal(sp_english_deal(&a, a.tic + 1, &w, &f), 0);
    assert_int_equal(w, 2);
    assert_true(f.lot_to_winner == 100.0 && !a.live);

    /* bids keep extending tic, but the auction end still caps the auction */
    assert_int_equal(sp_english_kick(&flip_defaults, 1000.0, 100.0, 0.0, t0, &a), 0);
    double bid = 1.0;
    sp_time t = t0;
    sp_id who = 1;
    while (t + 2 * SP_HOUR < a.end) {
        t += 2 * SP_HOUR;
        assert_int_equal(sp_english_tend(&flip_defaults, &a, t, who, bid, &f), 0);
        bid *= 1.05;
        who = 3 - who;
    }
    assert_int_equal(sp_english_tend(&flip_defaults, &a, a.end - 1, who, bid, &f), 0);
    assert_true(a.tic > a.end);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, a.end, 3 - who, bid * 1.05, &f),
                     SP_ESTATE);
    assert_int_equal(sp_english_deal(&a, a.end, &w, &f), SP_ESTATE);   /* end not passed */
    assert_int_equal(sp_english_deal(&a, a.end + 1, &w, &f), 0);      /* end < now */
    assert_int_equal(w, who);
}

static void test_english_tick_restarts_only_an_ended_auction_without_bids(void **state)
{
    (void)state;
    /* FORMULAS.md, Maker Liquidations 1.0: "an auction with no bids after its end
     * restarts" (flip.sol tick: end < now and tic == 0). */
    struct sp_english_auction a;
    struct sp_english_flow f;
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 100.0, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tick(&flip_defaults, &a, a.end), SP_ESTATE);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, a.end, 1, 1.0, &f), SP_ESTATE);
    assert_int_equal(sp_english_tick(&flip_defaults, &a, a.end + 7), 0);
    assert_int_equal(a.end, 2 * SP_DAY + 7 + 2 * SP_DAY);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 3 * SP_DAY, 1, 1.0, &f), 0);
    assert_int_equal(sp_english_tick(&flip_defaults, &a, a.end + 1), SP_ESTATE);  /* has a bid */
}

static void test_english_lone_bidder_wins_at_near_zero_bid(void **state)
{
    (void)state;
    /* FORMULAS.md, Real events, Black Thursday: "English auctions cleared at or near
     * zero bids".  With the opening bid 0 (Cat.bite), beg·0 = 0 lets any positive bid
     * through, and with no competitor it stands until ttl. */
    struct sp_english_auction a;
    struct sp_english_flow f;
    sp_id w = 0;
    const double tab = 50000.0, lot = 100.0, dust_bid = 1e-18;
    assert_int_equal(sp_english_kick(&flip_defaults, tab, lot, 0.0, 0, &a), 0);
    assert_int_equal(sp_english_tend(&flip_defaults, &a, 10 * SP_MIN, 9, dust_bid, &f), 0);
    assert_true(f.paid == dust_bid && f.to_gal == dust_bid && f.refund == 0.0);
    assert_int_equal(f.refund_to, SP_ID_NONE);
    assert_int_equal(sp_english_deal(&a, 10 * SP_MIN + 3 * SP_HOUR + 1, &w, &f), 0);
    assert_int_equal(w, 9);
    assert_true(f.lot_to_winner == lot);
    /* the protocol raised a dust bid for the whole lot: tab − bid is unraised */
    assert_true(a.bid == dust_bid && a.tab - a.bid > 0.999999 * tab);
}

static void test_english_params_check_names_the_bad_parameter(void **state)
{
    (void)state;
    char msg[160];
    struct sp_english_params p = flip_defaults;
    assert_int_equal(sp_english_params_check(&p, msg, sizeof msg), 0);
    static const struct { const char *key; int code; } cases[] = {
        { "beg", SP_ERANGE }, { "beg", SP_ERANGE }, { "ttl", SP_ERANGE }, { "ttl", SP_ERANGE },
        { "tau", SP_ERANGE }, { "beg", SP_EINVAL },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        p = flip_defaults;
        switch (k) {
        case 0: p.beg = 1.0; break;
        case 1: p.beg = 0.5; break;
        case 2: p.ttl = 3 * SP_DAY; break;        /* ttl > tau */
        case 3: p.ttl = 0; break;
        case 4: p.tau = 0; break;
        default: p.beg = NAN; break;
        }
        assert_int_equal(sp_english_params_check(&p, msg, sizeof msg), cases[k].code);
        if (!strstr(msg, cases[k].key)) fail_msg("case %zu: '%s' lacks '%s'", k, msg, cases[k].key);
    }
    p = flip_defaults;
    p.ttl = p.tau;                                 /* ttl == tau is allowed */
    assert_int_equal(sp_english_params_check(&p, msg, sizeof msg), 0);
    assert_int_equal(sp_english_params_check(NULL, msg, sizeof msg), SP_EINVAL);
    /* kick validates its amounts */
    struct sp_english_auction a;
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 0.0, 0.0, 0, &a), SP_EINVAL);
    assert_int_equal(sp_english_kick(&flip_defaults, 10.0, 1.0, 10.0, 0, &a), SP_EINVAL);
}

enum { N_BIDDERS = 6 };

static void test_english_conserves_collateral_and_dai_over_random_runs(void **state)
{
    (void)state;
    /* Conservation (STYLE.md, randomized invariants) through tend/dent/deal/tick:
     * collateral owner + winner + lot = kicked lot; each call pays = refund + to_gal;
     * the high bidder has exactly the bid in, everyone else is made whole; the
     * protocol holds bid − opening bid. */
    struct sp_rng r;
    sp_rng_init(&r, 1312, sp_rng_key("liq_english_conservation"));
    int n_deals = 0, n_dents = 0, n_ticks = 0;
    for (int run = 0; run < 2000; run++) {
        struct sp_english_params p = flip_defaults;
        p.beg = 1.0 + 0.1 * sp_rng_uniform(&r) + 1e-3;
        p.tau = (sp_time)(1 + sp_rng_below(&r, 48)) * SP_HOUR;
        p.ttl = 1 + (sp_time)sp_rng_below(&r, (uint64_t)p.tau);
        assert_int_equal(sp_english_params_check(&p, NULL, 0), 0);
        double tab = 1.0 + 1e4 * sp_rng_uniform(&r), lot0 = 1.0 + 100.0 * sp_rng_uniform(&r);
        double bid0 = sp_rng_uniform(&r) < 0.7 ? 0.0 : tab * 0.1 * sp_rng_uniform(&r);
        sp_time now = (sp_time)sp_rng_below(&r, 1000) * SP_SEC;
        struct sp_english_auction a;
        assert_int_equal(sp_english_kick(&p, tab, lot0, bid0, now, &a), 0);
        double net[N_BIDDERS + 1] = { 0 };   /* DAI each party has put in; [N_BIDDERS] = kicker */
        net[N_BIDDERS] = bid0;
        double gal = 0, owner = 0, winner_lot = 0;
        for (int step = 0; step < 100 && a.live; step++) {
            now += (sp_time)sp_rng_below(&r, (uint64_t)p.ttl + (uint64_t)p.ttl / 4 + 1);
            sp_id who = (sp_id)sp_rng_below(&r, N_BIDDERS);
            struct sp_english_flow f = { 0 };   /* tick moves nothing */
            int rc;
            double u = sp_rng_uniform(&r);
            if (!sp_english_biddable(&a, now)) {
                rc = sp_english_deal(&a, now, NULL, &f);
                if (rc == SP_ESTATE) {
                    rc = sp_english_tick(&p, &a, now);
                    if (rc == 0) n_ticks++;
                } else {
                    n_deals++;
                }
                if (rc == SP_ESTATE) continue;   /* at exactly tic or end */
            } else if (a.bid < a.tab) {
                double bid = u < 0.2 ? a.tab : a.bid * (1.0 + 0.2 * sp_rng_uniform(&r)) + 0.1 * u;
                if (bid > a.tab) bid = a.tab;
                rc = sp_english_tend(&p, &a, now, who, bid, &f);
            } else {
                rc = sp_english_dent(&p, &a, now, who, a.lot * (0.7 + 0.35 * u), &f);
                if (rc == 0) n_dents++;
            }
            if (rc == SP_ERANGE) continue;       /* an increment/decrement too small */
            assert_int_equal(rc, 0);
            assert_true(fabs(f.paid - f.refund - f.to_gal) <= 1e-12 * tab);
            if (f.paid > 0) net[a.guy] += f.paid;
            if (f.refund > 0) net[f.refund_to == SP_ID_NONE ? N_BIDDERS : f.refund_to] -= f.refund;
            gal += f.to_gal;
            owner += f.lot_to_owner;
            winner_lot += f.lot_to_winner;
            /* invariants after every step */
            assert_true(fabs(owner + winner_lot + a.lot - lot0) <= 1e-12 * lot0);
            assert_true(fabs(gal - (a.bid - bid0)) <= 1e-12 * tab);
            for (int k = 0; k <= N_BIDDERS; k++) {
                int holds = (a.guy == SP_ID_NONE) ? k == N_BIDDERS : (sp_id)k == a.guy;
                double want = holds ? a.bid : 0.0;
                if (!(fabs(net[k] - want) <= 1e-12 * tab))
                    fail_msg("run %d step %d: party %d has %.17g in, want %.17g", run, step, k,
                             net[k], want);
            }
            assert_true(a.bid <= a.tab && a.lot >= 0.0);
        }
    }
    assert_true(n_deals > 1000 && n_dents > 500 && n_ticks > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_english_tend_beg_vectors),
        cmocka_unit_test(test_english_dent_beg_vectors),
        cmocka_unit_test(test_english_ttl_and_tau_timing),
        cmocka_unit_test(test_english_tick_restarts_only_an_ended_auction_without_bids),
        cmocka_unit_test(test_english_lone_bidder_wins_at_near_zero_bid),
        cmocka_unit_test(test_english_params_check_names_the_bad_parameter),
        cmocka_unit_test(test_english_conserves_collateral_and_dai_over_random_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
