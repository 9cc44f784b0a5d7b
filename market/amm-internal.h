/*
 * amm-internal.h — the AMM venue shared by market/amm_cpmm.c (type "cpmm")
 * and market/amm_stableswap.c (type "stableswap"); private to market/.
 *
 * Both venues are one state struct (`struct amm`) whose pool is a union of
 * the two mechanics (market/cpmm.h, market/stableswap.h).  What differs
 * between them — the math — is a small const table of `struct amm_mech`
 * defined by each type's file; everything else (ledger moves, trade
 * records, the Uniswap v2 price cumulative, LP holders, sampling, /summary)
 * is written once in market/amm.c, which also implements market/amm.h.
 *
 * Invariants, after every call that returns 0:
 *   - the venue entity's ledger balances of (base, quote) equal the pool's
 *     reserves (0, 1) (asserted in debug builds); the arithmetic on both
 *     sides is the same, so they are equal to the last bit;
 *   - the pool is never empty: the venue holds the initial LP shares and
 *     only agents can withdraw, so lp_supply >= the initial shares;
 *   - sum of the holders' shares == pool lp_supply (up to rounding);
 *   - `price` is the pool's current marginal price (quote per base) and
 *     `cum` is the time integral of the price up to `cum_t`.
 * Ownership: cfg belongs to the scenario; the holder array to the venue
 * (freed in release).
 */
#ifndef SPIRAL_AMM_INTERNAL_H
#define SPIRAL_AMM_INTERNAL_H

#include <stdbool.h>
#include "spiral/market.h"
#include "spiral/scenario.h"
#include "cpmm.h"
#include "stableswap.h"

struct sp_rec_table;
struct sp_snapshot_writer;
struct sp_snapshot_reader;

/* The bound scenario item (both types; `amp` is stableswap only). */
struct amm_cfg {
    const char *name;
    const char *base, *quote;
    double reserve_base, reserve_quote;
    double fee;
    double amp;
    sp_time sample_every;
    bool record_every_trade;
};

struct amm_holder {
    sp_id holder;
    double shares;
};

struct amm;

/* The mechanics of one pool type.  Coin 0 is the base, coin 1 the quote;
 * `in` is the coin paid into the pool.  All leave the pool unchanged on error. */
struct amm_mech {
    int (*init)(struct amm *a, const struct amm_cfg *c);
    int (*price)(const struct amm *a, double *price);
    int (*swap)(struct amm *a, int in, double amount_in, double *amount_out);
    void (*reserves)(const struct amm *a, double r[2]);
    double (*lp_supply)(const struct amm *a);
    /* Deposit at most (max0, max1) at the pool's ratio. */
    int (*add)(struct amm *a, double max0, double max1, double used[2], double *minted);
    int (*remove)(struct amm *a, double shares, double out[2]);
    /* The arbitrage swap against P (quote per base): coin in and amount. */
    int (*arb)(const struct amm *a, double P, int *in, double *amount_in);
    /* Set reserves and LP supply (a snapshot's, already checked finite and
     * > 0); the parameters (fee, amp) stay the config's. */
    void (*load)(struct amm *a, const double r[2], double lp_supply);
};

struct amm {
    const struct amm_cfg *cfg;
    const struct amm_mech *mech;
    struct sp_sim *sim;
    sp_id id;
    sp_token tok[2];                  /* base, quote */
    union {
        struct sp_cpmm cpmm;
        struct sp_stableswap ss;
    } pool;
    double price;                     /* current marginal price, quote per base */
    double cum;                       /* integral of price dt over [0, cum_t], quote/base x s */
    sp_time cum_t;
    struct amm_holder *lp;            /* LP shares per holder (venue first) */
    size_t n_lp, cap_lp;
    struct sp_rec_table *tab;         /* /markets/<name>, NULL when not recorded */
    sp_time sample_every;
    double peak, max_drawdown, min_price, volume;
    struct sp_venue_tag tag;          /* liquidation tag and watchers (spiral/market.h) */
};

/* The shared lifecycle and market ops (market/amm.c); each type's ops table
 * points at these. */
int    sp_amm_venue_init(struct amm *a, const struct amm_mech *mech, struct sp_sim *sim,
                         sp_id id, const struct amm_cfg *cfg);
int    sp_amm_venue_start(void *self, struct sp_sim *sim);
void   sp_amm_venue_on_event(void *self, struct sp_sim *sim, struct sp_event *ev);
void   sp_amm_venue_finish(void *self, struct sp_sim *sim);
void   sp_amm_venue_release(void *self);
double sp_amm_venue_price(const void *self);
void   sp_amm_venue_pair(const void *self, sp_token *base, sp_token *quote);
int    sp_amm_venue_quote(const void *self, enum sp_side side, double amount_in,
                          double *amount_out);
int    sp_amm_venue_swap(void *self, struct sp_sim *sim, const struct sp_swap *req,
                         struct sp_swap_result *res);
double sp_amm_venue_cumulative(const void *self, sp_time now);
struct sp_venue_tag *sp_amm_venue_tag(void *self);
/* Checkpoints (docs/snapshot.md): both types share one payload. */
int    sp_amm_venue_snapshot(const void *self, struct sp_snapshot_writer *w);
int    sp_amm_venue_restore(void *self, struct sp_snapshot_reader *r);

/* The two venue types.  engine/registry.c declares these names as
 * `struct sp_module_ops`; they are defined as the full `struct sp_market_ops`
 * (which begins with that struct), so the registry reads the embedded base
 * and sp_market_ops_of() casts back to the whole table.  See amm_cpmm.c. */
extern const struct sp_market_ops sp_market_cpmm_ops;
extern const struct sp_market_ops sp_market_stableswap_ops;

/* Schema check shared by both types: tokens exist and differ. */
int sp_amm_check_pair(const struct sp_check_ctx *ctx, const struct amm_cfg *c);

#endif
