/*
 * spiral/world.h — from a validated scenario to a running, recorded sim.
 *
 * The world builder owns the root schema of a scenario file (name, seed,
 * horizon, output, tokens and the module sections), builds a `struct sp_sim`
 * with one entity per module item, opens the HDF5 output and writes its root
 * attributes and /config.yaml, runs, and closes the file with the right
 * status.  Both the CLI and in-process users (tests, sweeps) go through it.
 */
#ifndef SPIRAL_WORLD_H
#define SPIRAL_WORLD_H

#include "spiral/types.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One `tokens:` item (see spiral/token.h for the kinds). */
struct sp_token_cfg {
    const char *name;
    int kind;                  /* enum sp_token_kind */
    const char *description;
    const char *underlying;    /* lst, receipt, vault_share */
    const char *issuer;        /* receipt: protocol; vault_share: vault agent; lp: market */
    double apr;                /* lst: staking APR, continuous */
    double rate;               /* lst: exchange rate at t = 0 */
    sp_time redemption_delay;  /* lst: redemption queue delay */
};

struct sp_output_cfg {
    sp_time sample_every;
    int64_t compression;
    int64_t chunk_rows;
};

/* `counterfactual:` (DESIGN §2 "Shocks and counterfactuals").  NO_FEEDBACK:
 * every liquidation sale (a swap of cause SP_CAUSE_LIQUIDATION) goes to an
 * infinitely deep sink at the reference price of the venue's pair instead
 * of the venue (engine/trades.c), so no slippage reaches the oracles. */
enum sp_counterfactual { SP_CF_NONE, SP_CF_NO_FEEDBACK, SP_CF_COUNT };

/* NULL-terminated names, in enum order: "none", "no-feedback". */
extern const char *const sp_counterfactual_names[];

/* The bound root of a scenario file. */
struct sp_world_cfg {
    const char *name;
    const char *description;
    int64_t seed;
    sp_time horizon;
    struct sp_output_cfg output;
    struct sp_token_cfg *tokens;
    size_t n_tokens;
    struct sp_module_cfg *references;
    size_t n_references;
    struct sp_module_cfg *markets;
    size_t n_markets;
    struct sp_module_cfg *oracles;
    size_t n_oracles;
    struct sp_module_cfg *protocols;
    size_t n_protocols;
    struct sp_module_cfg *agents;
    size_t n_agents;
    /* `chain:` — a single map {type: instant | eip1559, ...} (or just the
     * type name); bound as one module item of kind "chain", entity "chain".
     * sp_world_bind fills in `type: instant` when the section is absent, so
     * n_chain is 1 after a successful bind (0 only if the registry has no
     * chain types). */
    struct sp_module_cfg *chain;
    size_t n_chain;
    int counterfactual;        /* enum sp_counterfactual */
};

const struct sp_schema *sp_world_schema(void);

/* Validate and bind `sc` (after any --set) into *out.  `out->name` defaults
 * to the scenario file's stem. */
int sp_world_bind(struct sp_scenario *sc, const struct sp_registry *reg,
                  struct sp_world_cfg *out, struct sp_diag *d);

/* For module checks: the scalar at `key` of ctx->node must name a token of
 * `kind` (an enum sp_token_kind, or -1 for any).  Reports and returns
 * SP_ECONFIG if not. */
int sp_world_check_token(const struct sp_check_ctx *ctx, const char *key, int kind);

/* For module checks: the scalar at `key` of ctx->node must name an item of
 * `items` (a section of the bound world, e.g. w->markets) whose type is one
 * of `types` (NULL: any); `what` names it in messages ("venue").  Reports
 * with a did-you-mean and returns SP_ECONFIG if not. */
int sp_world_check_entity(const struct sp_check_ctx *ctx, const char *key,
                          const struct sp_module_cfg *items, size_t n, const char *what,
                          const char *const *types);

/* Build a sim with every module entity created and initialised. */
int sp_world_build(struct sp_sim **out, const struct sp_world_cfg *cfg, struct sp_diag *d);

struct sp_world_run {
    const char *output;        /* HDF5 path, or NULL to record nothing */
    const char *command_line;  /* for the root attribute */
    struct sp_run_opts run;    /* until = 0 means the scenario's horizon */
    /* Optional: called once the run has finished (every entity's /summary
     * metrics are in), before /summary is written and the file closed; it
     * may read the metrics and add more with sp_sim_summary (`spiral run
     * --amplification` reads the no-feedback twin's and adds its ratios). */
    void (*on_summary)(void *arg, struct sp_sim *sim);
    void *on_summary_arg;
    /* Checkpoints (docs/snapshot.md): a snapshot DIR/NAME@T.snap at every
     * multiple T of checkpoint_every (0: none) and at each of checkpoint_at,
     * up to and including the end of the run.  DIR is created if missing
     * (NULL: "."); on_checkpoint (optional) is told each file written.  A failed write fails the run. */
    sp_time checkpoint_every;
    const sp_time *checkpoint_at;
    size_t n_checkpoint_at;
    const char *checkpoint_dir;
    void (*on_checkpoint)(void *arg, const char *path, sp_time t);
    void *on_checkpoint_arg;
    /* A snapshot of the final state, written before `finish` (optional). */
    const char *final_snapshot;
    /* sp_world_resume only: the snapshot's path (for the output's
     * parent_snapshot attribute) and the --set overrides (a branch). */
    const char *resume_path;
    const char *const *sets;
    size_t n_sets;
    const struct sp_snapshot *resume;   /* set by sp_world_resume */
};

/* Build, open the output, run, finish and close.  Errors before the run
 * starts (including an output that cannot be created) go to `d` and return
 * SP_ECONFIG / SP_EIO with *status untouched; otherwise returns 0 and sets
 * *status.  A failed run's message is in d too. */
int sp_world_run(struct sp_scenario *sc, const struct sp_world_cfg *cfg,
                 const struct sp_world_run *req, enum sp_run_status *status,
                 struct sp_diag *d);

/* Continue from a snapshot: rebuild the world from its scenario with
 * req->sets applied (a branch), open req->output, start, restore the state,
 * run from the snapshot's time to req->run.until (0: the horizon), finish
 * and close — the output holds the rows after the snapshot (docs/snapshot.md).
 * Returns like sp_world_run; a snapshot that does not fit the rebuilt world
 * is SP_ECONFIG (bad input), and its output file is removed. */
struct sp_snapshot;
int sp_world_resume(const struct sp_snapshot *s, const struct sp_registry *reg,
                    const struct sp_world_run *req, enum sp_run_status *status,
                    struct sp_diag *d);

#ifdef __cplusplus
}
#endif
#endif
