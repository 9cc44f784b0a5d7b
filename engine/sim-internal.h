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
    struct sp_rec *rec;
    struct sp_summary_item *summary;
    size_t n_summary, cap_summary;
    /* ledger.c: balances[holder * n_tokens + token] */
    char **tokens;
    size_t n_tokens;
    double *bal;
    size_t bal_rows;               /* holders with a row in bal */
    double *supply;
    struct sp_rec_table *trades;   /* /events/trades, NULL when not recorded */
    uint64_t n_trades;
    volatile sig_atomic_t stop_requested;
    int fail_code;
    char *fail_msg;
    bool finished;
};

/* trades.c: create /events/trades (entity names become the code maps). */
int sp_trades_open(struct sp_sim *sim, struct sp_rec *rec);

#endif
