/*
 * ledger.c — balances of every token held by every entity (spiral/ledger.h).
 *
 * A dense row-major matrix bal[holder][token] that grows a row per entity on
 * demand (entities are few: agents, venues, protocols — positions live
 * inside protocols), plus the running supply of each token.  Every change
 * goes through transfer/mint/burn, which keep supply == sum of balances up
 * to rounding; sp_ledger_check() verifies it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/ledger.h"
#include "spiral/error.h"
#include "sim-internal.h"

int sp_sim_set_tokens(struct sp_sim *sim, const char *const *names, size_t n)
{
    if (sim->tokens || sim->bal) return SP_ESTATE;
    sim->tokens = calloc(n ? n : 1, sizeof *sim->tokens);
    sim->supply = calloc(n ? n : 1, sizeof *sim->supply);
    if (!sim->tokens || !sim->supply) return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        sim->tokens[i] = strdup(names[i]);
        if (!sim->tokens[i]) return SP_ENOMEM;
        sim->n_tokens = i + 1;
    }
    return sp_token_info_alloc(sim);
}

sp_token sp_token_find(const struct sp_sim *sim, const char *name)
{
    for (size_t i = 0; i < sim->n_tokens; i++)
        if (!strcmp(sim->tokens[i], name)) return (sp_token)i;
    return -1;
}

size_t sp_token_count(const struct sp_sim *sim) { return sim->n_tokens; }

const char *sp_token_name(const struct sp_sim *sim, sp_token tok)
{
    return tok >= 0 && (size_t)tok < sim->n_tokens ? sim->tokens[tok] : NULL;
}

/* The balance cell, growing the matrix to cover `holder`. */
static double *cell(struct sp_sim *sim, sp_id holder, sp_token tok)
{
    if (tok < 0 || (size_t)tok >= sim->n_tokens || holder >= sim->n_ents) return NULL;
    if (holder >= sim->bal_rows) {
        size_t rows = sim->n_ents > 2 * sim->bal_rows ? sim->n_ents : 2 * sim->bal_rows;
        if (rows <= holder) rows = holder + 1;
        double *b = realloc(sim->bal, rows * sim->n_tokens * sizeof *b);
        if (!b) return NULL;
        memset(b + sim->bal_rows * sim->n_tokens, 0,
               (rows - sim->bal_rows) * sim->n_tokens * sizeof *b);
        sim->bal = b;
        sim->bal_rows = rows;
    }
    return &sim->bal[(size_t)holder * sim->n_tokens + (size_t)tok];
}

double sp_balance(const struct sp_sim *sim, sp_id holder, sp_token tok)
{
    if (tok < 0 || (size_t)tok >= sim->n_tokens || holder >= sim->bal_rows) return 0.0;
    return sim->bal[(size_t)holder * sim->n_tokens + (size_t)tok];
}

double sp_supply(const struct sp_sim *sim, sp_token tok)
{
    return tok >= 0 && (size_t)tok < sim->n_tokens ? sim->supply[tok] : 0.0;
}

/* Take `amount` from *b, forgiving float dust; SP_EMODEL if it is not there. */
static int debit(struct sp_sim *sim, double *b, sp_id holder, sp_token tok, double amount)
{
    double left = *b - amount;
    if (left < 0) {
        if (left < -SP_LEDGER_DUST * (amount > 1.0 ? amount : 1.0)) {
            sp_sim_fail(sim, SP_EMODEL, "%s would hold a negative balance of %s: has %.17g, owes %.17g",
                        sp_sim_entity_name(sim, holder), sim->tokens[tok], *b, amount);
            return SP_EMODEL;
        }
        sim->supply[tok] -= left;           /* the dust was never there */
        left = 0;
    }
    *b = left;
    return SP_OK;
}

int sp_transfer(struct sp_sim *sim, sp_token tok, sp_id from, sp_id to, double amount)
{
    if (!(amount >= 0) || !isfinite(amount)) return SP_EINVAL;
    double *a = cell(sim, from, tok), *b = cell(sim, to, tok);
    if (!a || !b) return SP_EINVAL;
    a = cell(sim, from, tok);               /* `to` may have grown the matrix */
    int rc = debit(sim, a, from, tok, amount);
    if (rc) return rc;
    *b += amount;
    return SP_OK;
}

int sp_mint(struct sp_sim *sim, sp_token tok, sp_id to, double amount)
{
    if (!(amount >= 0) || !isfinite(amount)) return SP_EINVAL;
    double *b = cell(sim, to, tok);
    if (!b) return SP_EINVAL;
    *b += amount;
    sim->supply[tok] += amount;
    return SP_OK;
}

int sp_burn(struct sp_sim *sim, sp_token tok, sp_id from, double amount)
{
    if (!(amount >= 0) || !isfinite(amount)) return SP_EINVAL;
    double *b = cell(sim, from, tok);
    if (!b) return SP_EINVAL;
    int rc = debit(sim, b, from, tok, amount);
    if (rc) return rc;
    sim->supply[tok] -= amount;
    return SP_OK;
}

int sp_ledger_check(struct sp_sim *sim)
{
    for (size_t k = 0; k < sim->n_tokens; k++) {
        double sum = 0, mag = 0;
        for (size_t h = 0; h < sim->bal_rows; h++) {
            double v = sim->bal[h * sim->n_tokens + k];
            if (v < 0) {
                sp_sim_fail(sim, SP_EMODEL, "%s holds a negative balance of %s: %.17g",
                            sp_sim_entity_name(sim, (sp_id)h), sim->tokens[k], v);
                return SP_EMODEL;
            }
            sum += v;
            mag += fabs(v);
        }
        if (fabs(sum - sim->supply[k]) > SP_LEDGER_DUST * (mag > 1.0 ? mag : 1.0)) {
            sp_sim_fail(sim, SP_EMODEL, "%s not conserved: supply %.17g, balances sum to %.17g",
                        sim->tokens[k], sim->supply[k], sum);
            return SP_EMODEL;
        }
    }
    return SP_OK;
}
