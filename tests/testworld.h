/*
 * testworld.h — the in-process test world shared by the integration tests
 * that build a simulation from scenario text and step it (test_keeper.c,
 * test_looper.c, test_liquidation.c, test_lending.c, test_counterfactual.c,
 * test_agents_arb.c, test_leverage_random.c, test_vault.c, test_chain.c,
 * test_token.c, test_oracle.c).
 *
 * Design: header-only (static inline functions, prefix tw_) so each test
 * stays one file, like testutil.h and snaptest.h; include it after
 * <cmocka.h> (and its prerequisites) and "testutil.h".  One struct tw_world
 * (scenario, bound configuration, sim, optional recorder, diagnostics,
 * optional registry of its own) and one struct tw_opts saying where the
 * differences between the tests lie: the scenario as text written to
 * <build>/tests/<name>.yaml (or read from memory, or a file path), a seed
 * or a --set override, the registry, and whether /events/trades is
 * recorded.  The pieces are split where the tests split them: tw_bind
 * (load and bind: what the bad-input tests need), tw_start (build, attach
 * the recorder, start), tw_open (both, asserted).  Stepping: tw_drain
 * (dispatch to t), tw_advance (and no failure), tw_step_to (and the ledger
 * balances); tw_check_lending adds the lending protocols' invariants.
 * Entity and token lookups fail the test naming what is missing.  A test
 * keeps its own helpers where it really differs (its own entity handles,
 * extra checks, how it reports a bad-input mismatch).
 */
#ifndef SPIRAL_TESTWORLD_H
#define SPIRAL_TESTWORLD_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/token.h"
#include "spiral/world.h"
#include "sim-internal.h"
#include "lending.h"

/* A scenario, its bound configuration and the sim built from it. */
struct tw_world {
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    struct sp_rec *rec;          /* with tw_opts.h5 or .record (NULL: none) */
    struct sp_registry *reg;     /* made by tw_opts.registry; destroyed by tw_close */
    struct sp_diag d;            /* diagnostics of the load, bind and build */
    char yaml[1024];             /* the scenario file written from tw_opts.text */
    char h5[1024];               /* the recording (with tw_opts.h5 or .record) */
};

struct tw_opts {
    const char *name;            /* written to <build>/tests/<name>.yaml; with
                                  * in_memory, the name in messages */
    const char *text;            /* the scenario text (NULL: load `path`) */
    const char *path;            /* a scenario file, when text is NULL */
    bool in_memory;              /* load `text` from memory (no file written) */
    uint64_t seed;               /* applied as --set seed=N (0: the scenario's own) */
    const char *set;             /* one more --set override (NULL: none) */
    const struct sp_registry *reg;          /* NULL: the built-in one */
    struct sp_registry *(*registry)(void);  /* or a registry made for this world */
    const char *h5;              /* record /events/trades to this file ... */
    const char *record;          /* ... or to <tu_tmpdir(record)>/<name>.h5 */
    const struct sp_rec_opts *rec_opts;     /* NULL: the recorder's defaults */
};

/* The diagnostics so far ("" when none). */
static inline const char *tw_diag(const struct tw_world *w)
{
    return w->d.text ? w->d.text : "";
}

/* Load and bind (no build): 0 or the first failing step's code, its message
 * in w->d.  `w` starts zeroed, so tw_close is safe whatever failed. */
static inline int tw_bind(struct tw_world *w, const struct tw_opts *o)
{
    memset(w, 0, sizeof *w);
    if (o->registry) w->reg = o->registry();
    const struct sp_registry *reg = w->reg ? w->reg : o->reg ? o->reg : sp_registry_builtin();
    int rc;
    if (o->text && o->in_memory) {
        rc = sp_scenario_load_string(&w->sc, o->name, o->text, strlen(o->text), &w->d);
    } else {
        const char *path = o->path;
        if (o->text) {
            snprintf(w->yaml, sizeof w->yaml, "%s/tests/%s.yaml", SP_BINARY_DIR, o->name);
            tu_write(w->yaml, o->text);
            path = w->yaml;
        }
        rc = sp_scenario_load(&w->sc, path, &w->d);
    }
    if (!rc && o->seed) {
        char set[64];
        snprintf(set, sizeof set, "seed=%llu", (unsigned long long)o->seed);
        rc = sp_scenario_set(w->sc, set, &w->d);
    }
    if (!rc && o->set) rc = sp_scenario_set(w->sc, o->set, &w->d);
    if (!rc) rc = sp_world_bind(w->sc, reg, &w->cfg, &w->d);
    return rc;
}

/* After tw_bind: build, attach the recorder (as sp_world_run does) and
 * start, each asserted. */
static inline void tw_start(struct tw_world *w, const struct tw_opts *o)
{
    int rc = sp_world_build(&w->sim, &w->cfg, &w->d);
    if (rc) sp_diag_print(&w->d, stderr);
    assert_int_equal(rc, 0);
    if (o->h5 || o->record) {
        if (o->h5) snprintf(w->h5, sizeof w->h5, "%s", o->h5);
        else snprintf(w->h5, sizeof w->h5, "%s/%s.h5", tu_tmpdir(o->record), o->name);
        assert_int_equal(sp_rec_create(&w->rec, w->h5, o->rec_opts), 0);
        assert_int_equal(sp_trades_open(w->sim, w->rec), 0);
        sp_sim_set_recorder(w->sim, w->rec);
    }
    assert_int_equal(sp_sim_start(w->sim), 0);
}

/* Load, bind, build and start: the world must come up. */
static inline void tw_open(struct tw_world *w, const struct tw_opts *o)
{
    int rc = tw_bind(w, o);
    if (rc) sp_diag_print(&w->d, stderr);
    assert_int_equal(rc, 0);
    tw_start(w, o);
}

/* Finish the run (summary metrics) and close the recording, if any. */
static inline void tw_finish(struct tw_world *w)
{
    sp_sim_finish(w->sim);
    if (w->rec) {
        assert_int_equal(sp_rec_close(w->rec, "complete"), 0);
        w->rec = NULL;
    }
}

/* Destroy the sim, the scenario, the diagnostics and an own registry. */
static inline void tw_close(struct tw_world *w)
{
    sp_sim_destroy(w->sim);
    sp_scenario_destroy(w->sc);
    sp_diag_release(&w->d);
    sp_registry_destroy(w->reg);
}

/* The same for worlds that may not have been built (after tw_bind alone):
 * finish the run when there is one, then tw_close. */
static inline void tw_release(struct tw_world *w)
{
    if (w->sim) sp_sim_finish(w->sim);
    tw_close(w);
}

/* Bad input: load and bind `o`, which must fail with SP_ECONFIG (with
 * `load_ok`, at the bind: the load must succeed).  The diagnostics,
 * malloc'd. */
static inline char *tw_config_error(const struct tw_opts *o, bool load_ok)
{
    struct tw_world w;
    int rc = tw_bind(&w, o);
    char *msg = strdup(tw_diag(&w));
    if (load_ok && !w.sc) fail_msg("the load failed (rc %d), diagnostics:\n%s", rc, msg);
    if (rc != SP_ECONFIG) fail_msg("rc %d, diagnostics:\n%s", rc, msg);
    tw_close(&w);
    return msg;
}

/* The same, expecting every one of the NULL-terminated needles in the
 * diagnostics. */
static inline void tw_expect_config_error(const struct tw_opts *o, bool load_ok, ...)
{
    char *msg = tw_config_error(o, load_ok);
    va_list ap;
    va_start(ap, load_ok);
    for (const char *n; (n = va_arg(ap, const char *));)
        if (!strstr(msg, n)) fail_msg("expected '%s' in:\n%s", n, msg);
    va_end(ap);
    free(msg);
}

/* One needle, reported at line `line` of the scenario file (".yaml:LINE:"). */
static inline void tw_expect_config_error_at(const struct tw_opts *o, const char *needle, int line)
{
    char at[64];
    snprintf(at, sizeof at, ".yaml:%d:", line);
    tw_expect_config_error(o, false, needle, at, (const char *)NULL);
}

/* Dispatch every event with t <= until. */
static inline void tw_drain(struct tw_world *w, sp_time until)
{
    bool drained = false;
    while (!drained) sp_sim_step(w->sim, until, 1u << 20, &drained);
}

/* The run has not failed. */
static inline void tw_check_run(struct tw_world *w)
{
    const char *msg = NULL;
    if (sp_sim_failure(w->sim, &msg)) fail_msg("run failed: %s", msg);
}

/* Dispatch to `until`; the run must not have failed. */
static inline void tw_advance(struct tw_world *w, sp_time until)
{
    tw_drain(w, until);
    tw_check_run(w);
}

/* The run has not failed and every token is conserved (sp_ledger_check). */
static inline void tw_check(struct tw_world *w)
{
    tw_check_run(w);
    assert_int_equal(sp_ledger_check(w->sim), 0);
}

/* Dispatch to `until`, then tw_check. */
static inline void tw_step_to(struct tw_world *w, sp_time until)
{
    tw_drain(w, until);
    tw_check(w);
}

/* tw_check, and every lending protocol's own invariants (sp_lending_check). */
static inline void tw_check_lending(struct tw_world *w)
{
    tw_check(w);
    for (sp_id i = 0; i < sp_sim_entity_count(w->sim); i++)
        if (sp_lending_is(w->sim, i)) assert_int_equal(sp_lending_check(w->sim, i), 0);
}

static inline sp_id tw_id(struct tw_world *w, const char *name)
{
    sp_id id = sp_sim_find(w->sim, name);
    if (id == SP_ID_NONE) fail_msg("no entity %s", name);
    return id;
}

static inline sp_token tw_tok(struct tw_world *w, const char *name)
{
    sp_token t = sp_token_find(w->sim, name);
    if (t < 0) fail_msg("no token %s", name);
    return t;
}

/* A summary metric (after sp_sim_finish). */
static inline double tw_summary(struct sp_sim *sim, const char *name)
{
    for (size_t i = 0; i < sp_sim_summary_count(sim); i++) {
        double v;
        const char *k = sp_sim_summary_get(sim, i, &v);
        if (!strcmp(k, name)) return v;
    }
    fail_msg("no summary metric %s", name);
    return NAN;
}

/* Scenario text with printf formatting, malloc'd. */
static inline char *tw_fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

#endif
