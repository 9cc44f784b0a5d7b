/*
 * lending_record.c — what the lending protocols write to the run's HDF5
 * file (docs/output.md has every column):
 *
 *   /protocols/<name>   each protocol, every sample: aggregates (collateral
 *                       value, debt, bad debt, reserve, positions,
 *                       liquidatable) plus per debt asset utilization,
 *                       borrow rate and receipt exchange rate (pool) or
 *                       debt per collateral type (cdp);
 *   /positions          every position of every protocol, at each
 *                       protocol's `positions_every`: value, debt, HF;
 *   /system             system-wide, at the leader's samples: total
 *                       collateral and debt, bad debt, the Collateral
 *                       Multiplier, leverage by layer;
 *   /exposure           at the leader's samples, one row per (protocol,
 *                       collateral token issued by an entity) pair held:
 *                       the exposure graph.
 *
 * The "leader" is the protocol entity with the lowest id: it creates the
 * shared tables and writes the system-wide rows.  Aggregates per protocol
 * are O(assets) (kept totals); /positions and /system's leverage by layer
 * visit every position, so their cost is O(positions) per row set.
 *
 * Collateral Multiplier.  C = Σ over all protocols of collateral value
 * posted (at the protocols' prices), D = Σ of debt.  C − D is the net
 * equity behind all positions: what the holders' own base assets back.
 * The multiplier is C / (C − D): 1 when nothing is borrowed against
 * collateral; a loop at LTV λ with n loops gives (1 − λⁿ⁺¹)/(1 − λ); a
 * vault's shares posted elsewhere count again (the vault's collateral and
 * its shares are both in C), which is the re-hypothecation the metric is
 * for.  Recorded as +inf when C ≤ D.
 *
 * Snapshot: only the leader's peak multiplier (for /summary); the tables
 * are created again by start and rows go on where the recorder left them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/event.h"
#include "spiral/ledger.h"
#include "spiral/recorder.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/token.h"
#include "lending-internal.h"

#define MAX_LAYERS 16

struct lend_system {
    struct sp_rec_table *positions, *system, *exposure;
    const char **proto_names;      /* NULL-terminated, protocol code order */
    sp_id *protos;
    size_t n_protos;
    const char **token_names;
    char **layer_cols;
    size_t n_layers;
    double max_multiplier;
};

static struct lending *leader_of(struct lending *L)
{
    for (sp_id i = 0; i <= L->id; i++) {
        struct lending *o = lend_of(L->sim, i);
        if (o) return o;
    }
    return L;
}

static int proto_code(const struct lend_system *S, sp_id id)
{
    for (size_t i = 0; i < S->n_protos; i++) if (S->protos[i] == id) return (int)i;
    return -1;
}

static const struct sp_rec_col base_cols[] = {
    { "t", SP_REC_F64, "s", "simulated time", NULL },
    { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
    { "collateral_value", SP_REC_F64, "USD", "collateral posted, at the protocol's prices", NULL },
    { "debt", SP_REC_F64, "USD", "debt outstanding (accrued), at the protocol's prices", NULL },
    { "bad_debt", SP_REC_F64, "USD", "bad debt written off so far (valued at write-off)", NULL },
    { "reserve", SP_REC_F64, "USD", "protocol reserve (cdp: surplus buffer)", NULL },
    { "n_positions", SP_REC_I64, "1", "positions with collateral or debt", NULL },
    { "n_liquidatable", SP_REC_I64, "1", "positions with HF < 1", NULL },
};
#define N_BASE (sizeof base_cols / sizeof base_cols[0])

static int leader_start(struct lending *L, struct sp_rec *rec)
{
    struct sp_sim *sim = L->sim;
    struct lend_system *S = calloc(1, sizeof *S);
    if (!S) return SP_ENOMEM;
    L->sys = S;
    size_t n = sp_sim_entity_count(sim);
    S->protos = calloc(n, sizeof *S->protos);
    S->proto_names = calloc(n + 1, sizeof *S->proto_names);
    size_t nt = sp_token_count(sim);
    S->token_names = calloc(nt + 1, sizeof *S->token_names);
    if (!S->protos || !S->proto_names || !S->token_names) return SP_ENOMEM;
    for (sp_id i = 0; i < n; i++)
        if (lend_of(sim, i)) {
            S->proto_names[S->n_protos] = sp_sim_entity_name(sim, i);
            S->protos[S->n_protos++] = i;
        }
    for (size_t t = 0; t < nt; t++) S->token_names[t] = sp_token_name(sim, (sp_token)t);
    int ml = sp_token_max_layer(sim);
    S->n_layers = (size_t)(ml < 0 ? 0 : ml) + 1;
    if (S->n_layers > MAX_LAYERS) S->n_layers = MAX_LAYERS;
    if (!rec) return SP_OK;
    const struct sp_rec_col pcols[] = {
        { "t", SP_REC_F64, "s", "simulated time of the snapshot", NULL },
        { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
        { "protocol", SP_REC_I32, "1", "protocol", S->proto_names },
        { "owner", SP_REC_I32, "1", "owner's entity id (see /entities)", NULL },
        { "collateral_value", SP_REC_F64, "USD", "collateral at the protocol's prices", NULL },
        { "debt_value", SP_REC_F64, "USD", "debt (accrued) at the protocol's prices", NULL },
        { "hf", SP_REC_F64, "1", "health factor (inf without debt)", NULL },
        { "liquidatable", SP_REC_I8, "1", "1 when HF < 1", NULL },
        { "layer", SP_REC_I8, "1", "largest layer of the tokens it posts", NULL },
    };
    int rc = sp_rec_table_create(rec, "/positions", pcols, sizeof pcols / sizeof pcols[0],
                                 &S->positions);
    if (rc) return rc;
    struct sp_rec_col scols[6 + MAX_LAYERS] = {
        { "t", SP_REC_F64, "s", "simulated time", NULL },
        { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
        { "total_collateral", SP_REC_F64, "USD", "collateral posted in all protocols", NULL },
        { "total_debt", SP_REC_F64, "USD", "debt in all protocols", NULL },
        { "total_bad_debt", SP_REC_F64, "USD", "bad debt written off in all protocols", NULL },
        { "collateral_multiplier", SP_REC_F64, "1",
          "total collateral / (total collateral - total debt)", NULL },
    };
    S->layer_cols = calloc(S->n_layers, sizeof *S->layer_cols);
    if (!S->layer_cols) return SP_ENOMEM;
    for (size_t l = 0; l < S->n_layers; l++) {
        char buf[64];
        snprintf(buf, sizeof buf, "leverage_layer_%zu", l);
        S->layer_cols[l] = strdup(buf);
        if (!S->layer_cols[l]) return SP_ENOMEM;
        scols[6 + l] = (struct sp_rec_col){ S->layer_cols[l], SP_REC_F64, "1",
            "collateral / (collateral - debt) of the positions whose largest posted token "
            "layer is this one (NaN: none)", NULL };
    }
    rc = sp_rec_table_create(rec, "/system", scols, 6 + S->n_layers, &S->system);
    if (rc) return rc;
    const struct sp_rec_col ecols[] = {
        { "t", SP_REC_F64, "s", "simulated time", NULL },
        { "t_us", SP_REC_I64, "us", "simulated time, exact", NULL },
        { "holder", SP_REC_I32, "1", "protocol holding the collateral", S->proto_names },
        { "issuer", SP_REC_I32, "1", "entity id of the token's issuer (see /entities)", NULL },
        { "token", SP_REC_I32, "1", "collateral token", S->token_names },
        { "value", SP_REC_F64, "USD", "collateral value of the token held by the protocol", NULL },
    };
    return sp_rec_table_create(rec, "/exposure", ecols, sizeof ecols / sizeof ecols[0],
                               &S->exposure);
}

int lend_record_start(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    struct sp_rec *rec = sp_sim_recorder(sim);
    int rc = SP_OK;
    if (L->leader && (rc = leader_start(L, rec))) {
        sp_sim_fail(sim, rc, "cannot create the lending tables: %s", sp_strerror(rc));
        return rc;
    }
    if (rec) {
        size_t per = L->kind == LEND_POOL ? 3 : 1;
        L->n_colnames = L->nd * per;
        L->colnames = calloc(L->n_colnames + 1, sizeof *L->colnames);
        struct sp_rec_col *cols = calloc(N_BASE + L->n_colnames, sizeof *cols);
        if (!L->colnames || !cols) { free(cols); return SP_ENOMEM; }
        memcpy(cols, base_cols, sizeof base_cols);
        size_t k = 0;
        for (size_t j = 0; j < L->nd; j++) {
            char buf[200];
            if (L->kind == LEND_POOL) {
                const char *tn = sp_token_name(sim, L->debt[j].token);
                static const char *const what[3][3] = {
                    { "utilization", "1", "borrowed / (cash + borrowed)" },
                    { "borrow_rate", "1/year", "borrow APR (kinked in utilization)" },
                    { "exchange_rate", "token per receipt",
                      "receipt exchange rate (falls when bad debt is socialised)" },
                };
                for (int w = 0; w < 3; w++, k++) {
                    snprintf(buf, sizeof buf, "%s_%s", what[w][0], tn);
                    L->colnames[k] = strdup(buf);
                    cols[N_BASE + k] = (struct sp_rec_col){ L->colnames[k], SP_REC_F64,
                                                            what[w][1], what[w][2], NULL };
                }
            } else {
                snprintf(buf, sizeof buf, "debt_%s", sp_token_name(sim, L->coll[j].token));
                L->colnames[k] = strdup(buf);
                cols[N_BASE + k] = (struct sp_rec_col){ L->colnames[k], SP_REC_F64, "stablecoin",
                                                        "debt against this collateral type", NULL };
                k++;
            }
        }
        for (size_t i = 0; i < k; i++)
            if (!L->colnames[i]) { free(cols); return SP_ENOMEM; }
        char group[300];
        snprintf(group, sizeof group, "/protocols/%s", sp_sim_entity_name(sim, L->id));
        rc = sp_rec_table_create(rec, group, cols, N_BASE + k, &L->tab);
        free(cols);
        if (rc) { sp_sim_fail(sim, rc, "cannot create %s: %s", group, sp_strerror(rc)); return rc; }
        sp_rec_attr_str(rec, group, "type", L->kind == LEND_POOL ? "pool" : "cdp");
    }
    if (!sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_RECORD, L->id, LEND_EV_SAMPLE))
        return SP_ENOMEM;
    if (L->cfg->positions_every > 0 && rec &&
        !sp_sim_schedule(sim, sp_sim_now(sim), SP_PRIO_RECORD, L->id, LEND_EV_POSITIONS))
        return SP_ENOMEM;
    return SP_OK;
}

static double num(double x) { return isfinite(x) ? x : 0.0; }

/* Aggregates of one protocol (O(assets)). */
static void totals(const struct lending *L, double *coll, double *debt, double *reserve)
{
    double c = 0, d = 0, r = 0;
    for (size_t a = 0; a < L->na; a++) c += L->coll[a].total * num(L->coll[a].price);
    for (size_t j = 0; j < L->nd; j++) {
        d += L->debt[j].scaled_total * L->debt[j].index * num(L->debt[j].price);
        if (L->kind == LEND_POOL) r += L->debt[j].reserve * num(L->debt[j].price);
    }
    if (L->kind == LEND_CDP) r = L->surplus * (L->nd ? num(L->debt[0].price) : 1.0);
    *coll = c;
    *debt = d;
    *reserve = r;
}

static size_t live_positions(const struct lending *L)
{
    size_t n = 0;
    for (size_t s = 0; s < L->n_pos; s++) {
        bool live = false;
        for (size_t a = 0; a < L->na && !live; a++) live = L->pc[s * L->na + a] > 0;
        for (size_t j = 0; j < L->nd && !live; j++) live = L->pd[s * L->nd + j] > 0;
        n += live;
    }
    return n;
}

static int position_layer(const struct lending *L, size_t s)
{
    int layer = 0;
    for (size_t a = 0; a < L->na; a++)
        if (L->pc[s * L->na + a] > 0) {
            int l = sp_token_layer(L->sim, L->coll[a].token);
            if (l > layer) layer = l;
        }
    return layer;
}

static void system_sample(struct lending *L, sp_time t)
{
    struct lend_system *S = L->sys;
    double C = 0, D = 0, B = 0;
    double lc[MAX_LAYERS] = { 0 }, ld[MAX_LAYERS] = { 0 };
    for (size_t i = 0; i < S->n_protos; i++) {
        struct lending *P = lend_of(L->sim, S->protos[i]);
        if (P != L) lend_refresh(P);
        double c, d, r;
        totals(P, &c, &d, &r);
        C += c;
        D += d;
        B += P->bad_debt_value;
        for (size_t s = 0; s < P->n_pos; s++) {
            struct sp_lending_position st;
            lend_position_state(P, s, &st);
            int l = position_layer(P, s);
            if (l >= (int)S->n_layers) l = (int)S->n_layers - 1;
            lc[l] += num(st.collateral_value);
            ld[l] += num(st.debt_value);
        }
        if (S->exposure)
            for (size_t a = 0; a < P->na; a++) {
                sp_id iss = sp_token_issuer(L->sim, P->coll[a].token);
                if (iss == SP_ID_NONE || !(P->coll[a].total > 0)) continue;
                union sp_rec_val row[6];
                row[0].f = sp_time_sec(t);
                row[1].i = t;
                row[2].i = (int64_t)i;
                row[3].i = (int64_t)iss;
                row[4].i = P->coll[a].token;
                row[5].f = P->coll[a].total * num(P->coll[a].price);
                sp_rec_append(S->exposure, row);
            }
    }
    double mult = C > D ? C / (C - D) : (C > 0 ? INFINITY : 1.0);
    if (mult > S->max_multiplier) S->max_multiplier = mult;
    if (!S->system) return;
    union sp_rec_val row[6 + MAX_LAYERS];
    row[0].f = sp_time_sec(t);
    row[1].i = t;
    row[2].f = C;
    row[3].f = D;
    row[4].f = B;
    row[5].f = mult;
    for (size_t l = 0; l < S->n_layers; l++)
        row[6 + l].f = lc[l] > 0 ? (lc[l] > ld[l] ? lc[l] / (lc[l] - ld[l]) : INFINITY) : NAN;
    sp_rec_append(S->system, row);
}

void lend_record_sample(struct lending *L, sp_time t)
{
    if (L->tab) {
        union sp_rec_val row[N_BASE + 3 * 64];
        double c, d, r;
        totals(L, &c, &d, &r);
        row[0].f = sp_time_sec(t);
        row[1].i = t;
        row[2].f = c;
        row[3].f = d;
        row[4].f = L->bad_debt_value;
        row[5].f = r;
        row[6].i = (int64_t)live_positions(L);
        row[7].i = (int64_t)L->n_liquidatable;
        size_t k = N_BASE;
        for (size_t j = 0; j < L->nd && k + 3 <= sizeof row / sizeof row[0]; j++) {
            if (L->kind == LEND_POOL) {
                row[k++].f = lend_utilization(L, j);
                row[k++].f = lend_borrow_rate(L, j);
                row[k++].f = lend_exchange_rate(L, j);
            } else {
                row[k++].f = L->debt[j].scaled_total * L->debt[j].index;
            }
        }
        sp_rec_append(L->tab, row);
    }
    if (L->leader && L->sys) system_sample(L, t);
}

void lend_record_positions(struct lending *L, sp_time t)
{
    struct lending *ld = leader_of(L);
    if (!ld->sys || !ld->sys->positions) return;
    lend_refresh(L);
    int code = proto_code(ld->sys, L->id);
    for (size_t s = 0; s < L->n_pos; s++) {
        struct sp_lending_position st;
        lend_position_state(L, s, &st);
        if (st.collateral_value == 0 && st.debt_value == 0) continue;
        union sp_rec_val row[9];
        row[0].f = sp_time_sec(t);
        row[1].i = t;
        row[2].i = code;
        row[3].i = (int64_t)L->owner[s];
        row[4].f = st.collateral_value;
        row[5].f = st.debt_value;
        row[6].f = st.hf;
        row[7].i = st.liquidatable;
        row[8].i = position_layer(L, s);
        sp_rec_append(ld->sys->positions, row);
    }
}

void lend_record_finish(struct lending *L)
{
    struct sp_sim *sim = L->sim;
    const char *name = sp_sim_entity_name(sim, L->id);
    char key[300];
    double soc = 0;
    for (size_t j = 0; j < L->nd; j++) soc += L->debt[j].socialized * num(L->debt[j].price);
    snprintf(key, sizeof key, "bad_debt_%s", name);
    sp_sim_summary(sim, key, L->bad_debt_value);
    snprintf(key, sizeof key, "socialized_%s", name);
    sp_sim_summary(sim, key, soc);
    snprintf(key, sizeof key, "n_positions_%s", name);
    sp_sim_summary(sim, key, (double)live_positions(L));
    snprintf(key, sizeof key, "max_liquidatable_%s", name);
    sp_sim_summary(sim, key, (double)L->max_liquidatable);
    snprintf(key, sizeof key, "liquidatable_%s", name);
    sp_sim_summary(sim, key, (double)L->n_liquidatable);
    if (L->leader && L->sys) {
        struct lend_system *S = L->sys;
        double total = 0;
        for (size_t i = 0; i < S->n_protos; i++) {
            struct lending *P = lend_of(sim, S->protos[i]);
            if (P) total += P->bad_debt_value;
        }
        sp_sim_summary(sim, "bad_debt_total", total);
        sp_sim_summary(sim, "max_collateral_multiplier", S->max_multiplier);
    }
}

void lend_record_release(struct lending *L)
{
    if (L->colnames)
        for (size_t i = 0; i < L->n_colnames; i++) free(L->colnames[i]);
    free(L->colnames);
    struct lend_system *S = L->sys;
    if (S) {
        if (S->layer_cols)
            for (size_t l = 0; l < S->n_layers; l++) free(S->layer_cols[l]);
        free(S->layer_cols);
        free(S->protos);
        free(S->proto_names);
        free(S->token_names);
        free(S);
    }
}

int lend_record_snapshot(const struct lending *L, struct sp_snapshot_writer *w)
{
    return L->sys ? sp_snap_put_f64(w, L->sys->max_multiplier) : sp_snap_put_nil(w);
}

int lend_record_restore(struct lending *L, struct sp_snapshot_reader *r)
{
    return L->sys ? sp_snap_get_f64(r, &L->sys->max_multiplier) : sp_snap_get_nil(r);
}
