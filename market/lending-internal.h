/*
 * lending-internal.h — the state shared by the lending protocol files
 * (private to market/): lending.c (positions, index, accrual, the API of
 * lending.h), lending_pool.c and lending_cdp.c (the two types: schema,
 * checks, how their config becomes the common state), lending_record.c
 * (/protocols/<name>, /positions, /system, /exposure).
 *
 * One protocol is COLLATERAL ASSETS a = 0..na−1 (what positions post) and
 * DEBT SLOTS j = 0..nd−1 (what positions owe).  A pool's debt slot is a
 * borrowable asset (cash lent by suppliers, a receipt token, a kinked rate
 * model); a cdp's debt slot is a collateral type (Maker's ilk: its own rate
 * accumulator, ceiling and fee), all owing the one stablecoin, which is
 * minted and burned.  So a cdp position with ETH collateral owes slot
 * "ETH"; the same machinery serves both.
 *
 * Positions live in flat arrays indexed by slot (coll[slot·na + a],
 * scaled debt dsc[slot·nd + j]); debt in token units = scaled · index_j.
 */
#ifndef SPIRAL_LENDING_INTERNAL_H
#define SPIRAL_LENDING_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "lending.h"
#include "liq_index.h"

struct sp_rec_table;
struct sp_event;
struct liq_state;

/* One item of a pool's `assets:` or a cdp's `collaterals:` (the keys a
 * type does not have stay zero). */
struct lend_asset_cfg {
    const char *token, *oracle, *quoted_in, *receipt;
    bool collateral, borrowable;
    double ltv, lt, bonus, haircut;
    double supply_cap, borrow_cap;
    double reserve_factor, base_rate, slope1, slope2, optimal;
    double initial_supply, reserve;
    /* cdp */
    double mat, chop, line, fee, dust;
};

/* The `liquidation:` mapping of a pool or a cdp (market/liquidation.c
 * defines its schema, lend_liq_schema, and its checks). */
enum { LIQ_VARIANT_AAVE_V3, LIQ_VARIANT_COMPOUND_V2 };
enum { LIQ_KICK_PROTOCOL, LIQ_KICK_KEEPER };
struct liq_cfg {
    int mechanism;                 /* enum sp_liq_mechanism; resolved by the type's check */
    int variant;                   /* fixed_spread: LIQ_VARIANT_* */
    double close_factor, close_factor_max, hf_threshold, protocol_fee, seize_share;
    int curve;                     /* dutch: enum sp_dutch_curve */
    sp_time duration, step, tail;
    double cut, buf, cusp, tip, chip, hole;
    int kick;                      /* auctions: LIQ_KICK_* */
    double beg;                    /* english */
    sp_time ttl, tau;
    const char *venue;             /* amm_direct */
    double max_slippage;
};

struct lend_cfg {
    const char *name;
    struct lend_asset_cfg *assets;
    size_t n_assets;
    const char *stablecoin, *stable_oracle;   /* cdp */
    double line, surplus;                      /* cdp */
    struct liq_cfg liq;
    sp_time accrue_every, sample_every, positions_every;
};

enum lend_kind { LEND_POOL, LEND_CDP };

struct lend_coll {                 /* a collateral asset */
    sp_token token;
    sp_id oracle, quoted_in;       /* quoted_in = SP_ID_NONE when absent */
    double ltv, lt, bonus, haircut, cap;
    double price;                  /* numeraire, at the last refresh */
    double total;                  /* Σ positions' amounts (token units) */
    double auction;                /* in custody for live auctions (token units) */
    double treasury;               /* owned by the protocol (Aave's liquidation fee) */
    int cfg_index;                 /* item in cfg->assets */
};

struct lend_debt {                 /* a debt slot */
    sp_token token;
    sp_token receipt;              /* pool: the receipt token; cdp: -1 */
    sp_id oracle, quoted_in;       /* pool: the asset's oracle; cdp: stable_oracle or NONE */
    double price;                  /* numeraire, at the last refresh (cdp without oracle: 1) */
    double index;                  /* borrow index / rate accumulator, starts at 1 */
    double scaled_total;           /* Σ positions' scaled debt */
    double cash;                   /* pool: underlying held for suppliers */
    double reserve;                /* pool: protocol's claim; cdp: surplus share */
    double reserve_factor, base_rate, slope1, slope2, optimal;   /* pool */
    double fee;                    /* cdp: stability fee, APR continuous */
    double cap, dust;              /* borrow cap / ilk line; cdp dust */
    double auction;                /* debt moved into live auctions, still to raise
                                      (token units; no interest; counted in the pool's
                                      receipt exchange rate like debt) */
    double bad_debt;               /* written off, token units */
    double socialized;             /* of which beyond the reserve, token units */
    int coll;                      /* cdp: its collateral asset; pool: the asset's
                                      collateral index when also collateral, else -1 */
    int cfg_index;
};

#define LEND_GROUP_NONE 0u
#define LEND_GROUP_MULTI 255u

struct lending {
    const struct lend_cfg *cfg;
    enum lend_kind kind;
    struct sp_sim *sim;
    sp_id id;
    size_t na, nd;
    struct lend_coll *coll;
    struct lend_debt *debt;
    sp_token stable;               /* cdp: the stablecoin */
    double surplus;                /* cdp: the surplus buffer (stablecoin units) */
    /* positions, by slot */
    size_t n_pos, cap_pos;
    sp_id *owner;                  /* slot -> owner */
    double *pc;                    /* slot·na + a: collateral */
    double *pd;                    /* slot·nd + j: scaled debt */
    uint8_t *group;                /* LEND_GROUP_NONE, 1 + j, LEND_GROUP_MULTI */
    uint8_t *pgen;                 /* cascade generation of the last crossing to HF < 1 */
    int cur_gen;                   /* generation of the refresh running (0 outside) */
    uint32_t *slot_of;             /* owner id -> slot + 1 (0 = none) */
    size_t n_slot_of;
    /* liquidation index: one per debt slot (prices relative to the slot's
     * debt price x index) plus one for positions owing several slots */
    struct sp_liq_index **ix;      /* nd + 1; ix[nd] is the multi group */
    uint32_t *multi;               /* slots in the multi group */
    size_t n_multi, cap_multi;
    size_t n_liquidatable;
    size_t max_liquidatable;
    /* subscribers to state changes */
    struct { sp_id who; uint16_t kind; } *subs;
    size_t n_subs;
    /* oracles read (distinct) */
    sp_id *oracles;
    size_t n_oracles;
    sp_time last_accrue;
    sp_time refreshed_at;
    bool fresh;                    /* refreshed at least once */
    double bad_debt_value;         /* numeraire at write-off */
    uint64_t n_writeoffs;
    /* recording */
    struct sp_rec_table *tab;
    char **colnames;
    size_t n_colnames;
    bool leader;                   /* records /positions, /system, /exposure */
    struct lend_system *sys;       /* leader only */
    struct liq_state *liq;         /* market/liquidation.c */
};

/* lending.c: set up the common state once the type filled coll/debt from
 * its config (tokens, oracles, parameters).  Registers the receipt rate
 * functions, subscribes to the oracles, creates the indexes. */
int  lend_init_common(struct lending *L);
int  lend_start(void *self, struct sp_sim *sim);
void lend_on_event(void *self, struct sp_sim *sim, struct sp_event *ev);
void lend_finish(void *self, struct sp_sim *sim);
void lend_release(void *self);
/* Accrue interest to now and re-read every price; push changes to the
 * indexes.  Cheap when nothing changed since the last call at this time. */
void lend_refresh(struct lending *L);
/* Position state from the arrays (same order as the index). */
void lend_position_state(const struct lending *L, size_t slot, struct sp_lending_position *out);
/* Debt slot j's borrow APR now (pool: kinked in utilization; cdp: fee). */
double lend_borrow_rate(const struct lending *L, size_t j);
double lend_utilization(const struct lending *L, size_t j);
/* Pool receipt exchange rate of slot j (underlying per receipt). */
double lend_exchange_rate(const struct lending *L, size_t j);
/* The lending state of entity `proto`, or NULL. */
struct lending *lend_of(const struct sp_sim *sim, sp_id proto);

/* lending.c, for the liquidation mechanisms (market/liquidation.c) */
long lend_slot(const struct lending *L, sp_id owner);           /* -1: none */
int  lend_coll_index(const struct lending *L, sp_token tok);
int  lend_debt_slot(const struct lending *L, long slot, sp_token tok);
void lend_refresh_if_stale(struct lending *L);
int  lend_is_liquidatable(const struct lending *L, size_t slot);
int  lend_reindex(struct lending *L, size_t slot);
/* Remove `amount` (<= debt, token units) of slot j's debt from position s. */
void lend_reduce_debt(struct lending *L, size_t s, size_t j, double amount, double debt);
/* Book `amount` (token units) of slot j as bad debt: the reserve (cdp:
 * surplus) absorbs first, the rest is socialised.  Returns its value. */
double lend_book_bad_debt(struct lending *L, size_t j, double amount);

/* Snapshots (lending.c: the protocol's payload; liquidation.c and
 * lending_record.c write their parts inside it). */
struct sp_snapshot_writer;
struct sp_snapshot_reader;
int  lend_snapshot(const void *self, struct sp_snapshot_writer *w);
int  lend_restore(void *self, struct sp_snapshot_reader *r);
int  liq_snapshot(const struct lending *L, struct sp_snapshot_writer *w);
int  liq_restore(struct lending *L, struct sp_snapshot_reader *r);
int  lend_record_snapshot(const struct lending *L, struct sp_snapshot_writer *w);
int  lend_record_restore(struct lending *L, struct sp_snapshot_reader *r);

/* liquidation.c: the mechanism of one protocol (liquidation.h). */
extern const struct sp_schema lend_liq_schema;
/* Resolve the default mechanism (pool: fixed_spread, cdp: dutch_auction)
 * and check what depends on the protocol (venue, its pair). */
int  liq_check(struct lend_cfg *c, const struct sp_check_ctx *ctx, enum lend_kind kind);
int  liq_init(struct lending *L);
int  liq_start(struct lending *L);
/* A position of slot `slot` became liquidatable (from the index callback):
 * queue the protocol's own work (amm_direct, kick: protocol). */
void liq_crossed(struct lending *L, size_t slot);
void liq_on_event(struct lending *L, struct sp_event *ev);
void liq_finish(struct lending *L);
void liq_release(struct lending *L);

/* lending_record.c */
int  lend_record_start(struct lending *L);
void lend_record_sample(struct lending *L, sp_time t);
void lend_record_positions(struct lending *L, sp_time t);
void lend_record_finish(struct lending *L);
void lend_record_release(struct lending *L);

/* Shared schema pieces and checks (lending_pool.c / lending_cdp.c). */
int lend_check_oracle(const struct sp_check_ctx *ctx, const char *key);

/* Event kinds of a protocol entity. */
enum { LEND_EV_ORACLE = 1, LEND_EV_ACCRUE, LEND_EV_SAMPLE, LEND_EV_POSITIONS, LEND_EV_LIQUIDATE };

#endif
