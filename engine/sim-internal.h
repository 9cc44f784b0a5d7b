/*
 * sim-internal.h — the layout of struct sp_sim, shared by sim.c, loop.c and
 * world.c only.  Modules use the accessors in spiral/sim.h.
 */
#ifndef SPIRAL_SIM_INTERNAL_H
#define SPIRAL_SIM_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include "spiral/sim.h"
#include "spiral/rng.h"
#include "spiral/token.h"

/* Internal invariants: on unless NDEBUG (Release builds define it). */
#ifdef NDEBUG
#define SP_ASSERT(x) ((void)0)
#else
#include <assert.h>
#define SP_ASSERT(x) assert(x)
/* trades.c: create /events/trades (entity names become the code maps). */
int sp_trades_open(struct sp_sim *sim, struct sp_rec *rec);

#endif

struct sp_entity {
    char *name;
    const struct sp_module_ops *ops;
    void *state;
    struct sp_rng rng;
    bool owns_state;
    bool initialised;
};

/* token.c: one per token, the static facts of the valuation graph and the
 * per-event value cache (valid while epoch == sim->value_epoch). */
struct sp_token_info {
    int kind;                      /* enum sp_token_kind */
    sp_token underlying;
    sp_id issuer;
    double apr, rate0;
    sp_time redemption_delay;
    sp_token_rate_fn rate_fn;      /* receipt, vault_share: from the issuer */
    void *rate_self;
    sp_id reference;               /* base/stable: the reference pricing it */
    int layer;                     /* -1 until computed */
    bool busy;                     /* recursion guard of sp_token_value */
    uint64_t value_epoch, rate_epoch;
    double value, rate;
};

/* token.c: an LST redemption waiting in the queue. */
struct sp_redemption {
    sp_time ready;
    sp_token tok;                  /* the lst; its underlying is minted */
    sp_id holder;
    double amount;                 /* underlying units */
};

struct sp_summary_item {
    char *name;
    double value;
};

struct sp_sim {
    sp_time now;
    sp_time horizon;
    sp_time sample_every;
    uint64_t seed;
    uint64_t n_events;
    struct sp_queue *queue;
    struct sp_entity *ents;
    size_t n_ents, cap_ents;
    uint32_t *name_ht;             /* open addressing: id + 1, 0 = empty */
    size_t name_ht_cap;            /* a power of two, at least 2 * n_ents */
    struct sp_rec *rec;
    struct sp_summary_item *summary;
    size_t n_summary, cap_summary;
    /* ledger.c: balances[holder * n_tokens + token] */
    char **tokens;
    size_t n_tokens;
    double *bal;
    size_t bal_rows;               /* holders with a row in bal */
    double *supply;
    /* token.c: the valuation graph and the LST redemption queue */
    struct sp_token_info *tok_info;   /* n_tokens entries */
    uint64_t value_epoch;          /* bumped before each dispatched event */
    bool tok_refs_ok;              /* tok_info[].reference resolved */
    struct sp_redemption *redeem;  /* sorted by (ready, insertion): FIFO */
    size_t redeem_head, n_redeem, cap_redeem;
    sp_time redeem_next;           /* ready time of the head; SP_TIME_MAX if none */
    struct sp_rec_table *trades;   /* /events/trades, NULL when not recorded */
    uint64_t n_trades;
    volatile sig_atomic_t stop_requested;
    bool pausing;                 /* sp_run_opts.pause of the current sp_sim_run */
    int fail_code;
    char *fail_msg;
    bool finished;
    /* world.c sets it (counterfactual: no-feedback); trades.c routes liquidation
     * sales to the sink at the reference price instead of the venue. */
    bool no_feedback;
};

/* trades.c: create /events/trades (entity names become the code maps). */
int sp_trades_open(struct sp_sim *sim, struct sp_rec *rec);

/* token.c: allocate tok_info for sim->n_tokens tokens (all base). */
int sp_token_info_alloc(struct sp_sim *sim);
/* token.c: mint every redemption ready at or before `until`, in queue
 * order, the clock set to each one's ready time. */
void sp_lst_settle(struct sp_sim *sim, sp_time until);

#endif
