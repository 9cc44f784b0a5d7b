/*
 * world.c — the root schema of a scenario and the world builder.
 *
 * Order of a run (sp_world_run):
 *   build entities (init) -> create the output file (root attributes,
 *   /config.yaml, /agents) -> start every entity (tables, first events) ->
 *   run (loop.c) -> finish every entity (/summary) -> close with status.
 * Everything that can be checked before the output exists is checked before,
 * so bad input never leaves a file behind; once the file exists it is always
 * closed with an honest status ("complete" only after a clean close).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "spiral/world.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/rng.h"
#include "spiral/error.h"
#include "spiral/version.h"
#include "spiral/snapshot.h"
#include <errno.h>
#include <sys/stat.h>
#include "sim-internal.h"

static int token_check(void *bound, const struct sp_check_ctx *ctx);

static const struct sp_field token_fields[] = {
    { "name", SP_T_NAME, SP_F_REQUIRED, 0, 0, NULL, NULL, "Token symbol, e.g. ETH.",
      offsetof(struct sp_token_cfg, name), NULL, 0 },
    { "kind", SP_T_ENUM, SP_F_REQUIRED, 0, 0, NULL, NULL,
      "base (priced by a reference process), stable (the numeraire, worth 1), lst (liquid "
      "staking token: rate x its base underlying), receipt (a lending pool's supply token), "
      "vault_share (a vault's share), lp (an AMM's liquidity token).",
      offsetof(struct sp_token_cfg, kind), sp_token_kind_names, 0 },
    { "description", SP_T_STRING, 0, 0, 0, NULL, NULL, "Free text.",
      offsetof(struct sp_token_cfg, description), NULL, 0 },
    { "underlying", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The token this one is a claim on: required for lst (a base token), receipt and "
      "vault_share; not allowed for the other kinds.",
      offsetof(struct sp_token_cfg, underlying), NULL, 0 },
    { "issuer", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "The entity that mints it: receipt: an item of `protocols`; vault_share: an agent of "
      "type vault; lp: a market of type cpmm or stableswap. Required for those kinds, not "
      "allowed for base, stable and lst.",
      offsetof(struct sp_token_cfg, issuer), NULL, 0 },
    { "apr", SP_T_FRACTION, 0, 0, 0, NULL, "per year",
      "lst only: staking APR, accrued continuously into the rate (default 0).",
      offsetof(struct sp_token_cfg, apr), NULL, 0 },
    { "rate", SP_T_NUMBER, SP_F_MIN_EXCL, 0, 0, NULL, "underlying per token",
      "lst only: exchange rate at t = 0 (default 1).",
      offsetof(struct sp_token_cfg, rate), NULL, 0 },
    { "redemption_delay", SP_T_DURATION, SP_F_MIN, 0, 0, NULL, "time",
      "lst only: delay of the redemption queue (default 7d).",
      offsetof(struct sp_token_cfg, redemption_delay), NULL, 0 },
};

static const struct sp_schema token_schema = {
    "tokens[]", "A token of the world and its place in the valuation graph (see "
    "docs/engine.md): base and stable are layer 0, every other kind one above its "
    "underlyings.",
    token_fields, sizeof token_fields / sizeof token_fields[0], sizeof(struct sp_token_cfg),
    token_check
};

#define TOKEN_DEFAULT_REDEMPTION_DELAY (7 * SP_DAY)

static bool kind_has_underlying(int kind)
{
    return kind == SP_TOKEN_LST || kind == SP_TOKEN_RECEIPT || kind == SP_TOKEN_VAULT_SHARE;
}

static bool kind_has_issuer(int kind)
{
    return kind == SP_TOKEN_RECEIPT || kind == SP_TOKEN_VAULT_SHARE || kind == SP_TOKEN_LP;
}

/* Per-token rules that need no other part of the scenario; the names an
 * underlying or issuer points at are checked in world_check. */
static int token_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct sp_token_cfg *t = bound;
    const char *kind = sp_token_kind_names[t->kind];
    int rc = SP_OK;
    const struct sp_node *under = sp_node_get(ctx->node, "underlying");
    const struct sp_node *issuer = sp_node_get(ctx->node, "issuer");
    if (kind_has_underlying(t->kind) && !under) {
        sp_diag_error(ctx->diag, ctx->node, "missing required key 'underlying': a token of "
                      "kind %s is a claim on another token (e.g. underlying: %s)", kind,
                      t->kind == SP_TOKEN_LST ? "ETH" : "USDC");
        rc = SP_ECONFIG;
    } else if (!kind_has_underlying(t->kind) && under) {
        sp_diag_error(ctx->diag, under, "`underlying` does not apply to kind %s%s", kind,
                      t->kind == SP_TOKEN_LP ? ": an lp's underlyings are its market's pair"
                                             : ": only lst, receipt and vault_share have one");
        rc = SP_ECONFIG;
    }
    if (kind_has_issuer(t->kind) && !issuer) {
        sp_diag_error(ctx->diag, ctx->node, "missing required key 'issuer': a token of kind %s "
                      "names the %s that mints it", kind,
                      t->kind == SP_TOKEN_RECEIPT ? "protocol"
                      : t->kind == SP_TOKEN_VAULT_SHARE ? "vault agent" : "AMM market");
        rc = SP_ECONFIG;
    } else if (!kind_has_issuer(t->kind) && issuer) {
        sp_diag_error(ctx->diag, issuer, "`issuer` does not apply to kind %s: only receipt, "
                      "vault_share and lp tokens have one", kind);
        rc = SP_ECONFIG;
    }
    static const char *const lst_keys[] = { "apr", "rate", "redemption_delay" };
    for (size_t k = 0; k < 3; k++) {
        const struct sp_node *n = sp_node_get(ctx->node, lst_keys[k]);
        if (n && t->kind != SP_TOKEN_LST) {
            sp_diag_error(ctx->diag, n, "`%s` applies only to kind lst (this token is %s)",
                          lst_keys[k], kind);
            rc = SP_ECONFIG;
        }
    }
    if (t->kind == SP_TOKEN_LST) {
        if (!sp_node_get(ctx->node, "rate")) t->rate = 1.0;
        if (!sp_node_get(ctx->node, "redemption_delay"))
            t->redemption_delay = TOKEN_DEFAULT_REDEMPTION_DELAY;
    } else {
        t->rate = 1.0;
    }
    return rc;
}

static const struct sp_field output_fields[] = {
    { "sample_every", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1m", "time",
      "Default cadence of sampled time series.",
      offsetof(struct sp_output_cfg, sample_every), NULL, 0 },
    { "compression", SP_T_INT, SP_F_MIN | SP_F_MAX, 0, 9, "1", NULL,
      "Deflate level of every dataset (with shuffle); 0 writes uncompressed.",
      offsetof(struct sp_output_cfg, compression), NULL, 0 },
    { "chunk_rows", SP_T_INT, SP_F_MIN | SP_F_MAX, 256, 1 << 22, "16384", "rows",
      "Rows per HDF5 chunk; also the rows each table buffers in memory.",
      offsetof(struct sp_output_cfg, chunk_rows), NULL, 0 },
};

static const struct sp_schema output_schema = {
    "output", "How the run is recorded (the file itself is chosen with -o).",
    output_fields, sizeof output_fields / sizeof output_fields[0],
    sizeof(struct sp_output_cfg), NULL
};

static int world_check(void *bound, const struct sp_check_ctx *ctx);

const char *const sp_counterfactual_names[] = { "none", "no-feedback", NULL };

static const struct sp_field world_fields[] = {
    { "name", SP_T_NAME, 0, 0, 0, NULL, NULL,
      "Name of the scenario; default the file name without extension.",
      offsetof(struct sp_world_cfg, name), NULL, 0 },
    { "description", SP_T_STRING, 0, 0, 0, NULL, NULL, "Free text: the question this run asks.",
      offsetof(struct sp_world_cfg, description), NULL, 0 },
    { "seed", SP_T_INT, SP_F_MIN, 0, 0, "1", NULL,
      "Seed of every random stream (overridden by --seed).",
      offsetof(struct sp_world_cfg, seed), NULL, 0 },
    { "horizon", SP_T_DURATION, SP_F_REQUIRED | SP_F_MIN_EXCL, 0, 0, NULL, "time",
      "Simulated length of the run.", offsetof(struct sp_world_cfg, horizon), NULL, 0 },
    { "counterfactual", SP_T_ENUM, 0, 0, 0, "none", NULL,
      "none: the world as written. no-feedback: every liquidation sale (keepers' sales of "
      "seized or won collateral, amm_direct sales by the protocol) goes to an infinitely "
      "deep sink at the reference price of its venue's pair (fundamental value of base / of "
      "quote, sp_token_value: a reference process's price, 1 for a stable without one, rate "
      "x underlying for an lst) instead of the venue: no fee, no slippage, the venue and "
      "its oracles do not move. The sale is still a row of /events/trades (price_before = "
      "price_after = the venue's price). Same seed, same reference paths: `spiral run "
      "--amplification` compares the two (docs/lending.md).",
      offsetof(struct sp_world_cfg, counterfactual), sp_counterfactual_names, 0 },
    { "output", SP_T_MAP, 0, 0, 0, NULL, NULL, "Recording options.",
      offsetof(struct sp_world_cfg, output), &output_schema, 0 },
    { "tokens", SP_T_LIST, SP_F_REQUIRED, 0, 0, NULL, NULL, "The tokens of the world.",
      offsetof(struct sp_world_cfg, tokens), &token_schema,
      offsetof(struct sp_world_cfg, n_tokens) },
    { "references", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "Reference price processes, one per base asset.",
      offsetof(struct sp_world_cfg, references), "reference",
      offsetof(struct sp_world_cfg, n_references) },
    { "markets", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "Trading venues: AMMs and order books, one pair each.",
      offsetof(struct sp_world_cfg, markets), "market",
      offsetof(struct sp_world_cfg, n_markets) },
    { "oracles", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "Price feeds read by protocols: a source and an update rule each.",
      offsetof(struct sp_world_cfg, oracles), "oracle",
      offsetof(struct sp_world_cfg, n_oracles) },
    { "chain", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "The chain transactions go through: ONE map (not a list), e.g. `chain: {type: "
      "eip1559, block_time: 12s}`, or just `chain: eip1559`; its keys are those of "
      "`chain[] type ...` below. Absent: instant. The entity is always named 'chain' "
      "(docs/chain.md).",
      offsetof(struct sp_world_cfg, chain), "chain",
      offsetof(struct sp_world_cfg, n_chain) },
    { "protocols", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "Lending protocols: pools (Aave/Compound-like) and CDPs (Maker-like).",
      offsetof(struct sp_world_cfg, protocols), "protocol",
      offsetof(struct sp_world_cfg, n_protocols) },
    { "agents", SP_T_MODULES, 0, 0, 0, NULL, NULL,
      "Who acts: arbitrageurs, traders, market makers, liquidity providers, scripted agents.",
      offsetof(struct sp_world_cfg, agents), "agent",
      offsetof(struct sp_world_cfg, n_agents) },
};

/* The module sections in entity order: ids are dense in this order. */
struct section { const struct sp_module_cfg *items; size_t n; };

#define N_SECTIONS 6

/* The chain comes before protocols and agents: they find it at init. */
static size_t sections_of(const struct sp_world_cfg *w, struct section out[N_SECTIONS])
{
    out[0] = (struct section){ w->references, w->n_references };
    out[1] = (struct section){ w->markets, w->n_markets };
    out[2] = (struct section){ w->oracles, w->n_oracles };
    out[3] = (struct section){ w->chain, w->n_chain };
    out[4] = (struct section){ w->protocols, w->n_protocols };
    out[5] = (struct section){ w->agents, w->n_agents };
    return N_SECTIONS;
}

static const struct sp_schema world_schema = {
    "scenario", "The top level of a scenario file.",
    world_fields, sizeof world_fields / sizeof world_fields[0], sizeof(struct sp_world_cfg),
    world_check
};

const struct sp_schema *sp_world_schema(void) { return &world_schema; }

static const char *entity_name(const struct sp_module_cfg *m, char *buf, size_t size)
{
    if (m->name) return m->name;
    if (m->ops->default_name) return m->ops->default_name(m->cfg, buf, size);
    snprintf(buf, size, "%s_%s", m->ops->kind, m->ops->type);
    return buf;
}

static const struct sp_token_cfg *find_token(const struct sp_world_cfg *w, const char *name)
{
    for (size_t i = 0; i < w->n_tokens; i++)
        if (!strcmp(w->tokens[i].name, name)) return &w->tokens[i];
    return NULL;
}

int sp_world_check_token(const struct sp_check_ctx *ctx, const char *key, int kind)
{
    const struct sp_world_cfg *w = ctx->root;
    const struct sp_node *at = sp_node_get(ctx->node, key);
    const char *name = at ? at->value : NULL;
    if (!name) return SP_ECONFIG;
    const struct sp_token_cfg *t = find_token(w, name);
    if (!t) {
        const char *cands[256];
        size_t n = 0;
        for (size_t i = 0; i < w->n_tokens && n < 256; i++) cands[n++] = w->tokens[i].name;
        const char *near = sp_suggest(name, cands, n);
        if (near) sp_diag_error(ctx->diag, at, "unknown token '%s' (did you mean '%s'?)", name, near);
        else sp_diag_error(ctx->diag, at, "unknown token '%s': add it to `tokens`", name);
        return SP_ECONFIG;
    }
    if (kind >= 0 && t->kind != kind) {
        sp_diag_error(ctx->diag, at, "token '%s' is of kind %s, expected kind %s", name,
                      sp_token_kind_names[t->kind], sp_token_kind_names[kind]);
        return SP_ECONFIG;
    }
    return SP_OK;
}

int sp_world_check_entity(const struct sp_check_ctx *ctx, const char *key,
                          const struct sp_module_cfg *items, size_t n, const char *what,
                          const char *const *types)
{
    const struct sp_node *at = sp_node_get(ctx->node, key);
    if (!at || !at->value) return SP_ECONFIG;
    const char *cands[256];
    char bufs[256][128];
    size_t nc = 0;
    for (size_t i = 0; i < n && nc < 256; i++) {
        if (!items[i].ops && !items[i].name) continue;
        const char *nm = items[i].ops ? entity_name(&items[i], bufs[nc], sizeof bufs[nc])
                                      : items[i].name;
        if (!strcmp(nm, at->value)) {
            if (!items[i].ops || !types) return SP_OK;   /* a bad type is reported there */
            for (size_t k = 0; types[k]; k++)
                if (!strcmp(items[i].ops->type, types[k])) return SP_OK;
            char list[256] = "";
            for (size_t k = 0; types[k]; k++) {
                if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, types[k], sizeof list - strlen(list) - 1);
            }
            sp_diag_error(ctx->diag, at, "%s '%s' is of type %s; expected one of: %s", what,
                          at->value, items[i].ops->type, list);
            return SP_ECONFIG;
        }
        cands[nc++] = nm;
    }
    const char *near = sp_suggest(at->value, cands, nc);
    if (near)
        sp_diag_error(ctx->diag, at, "unknown %s '%s' (did you mean '%s'?)", what, at->value, near);
    else
        sp_diag_error(ctx->diag, at, "unknown %s '%s'%s", what, at->value,
                      nc ? "" : ": the scenario defines none");
    return SP_ECONFIG;
}

static const char *const vault_types[] = { "vault", NULL };
static const char *const lp_market_types[] = { "cpmm", "stableswap", NULL };

/* The market item called `name`, or NULL. */
static const struct sp_module_cfg *find_market(const struct sp_world_cfg *w, const char *name)
{
    for (size_t i = 0; i < w->n_markets; i++) {
        char buf[128];
        if (w->markets[i].ops && !strcmp(entity_name(&w->markets[i], buf, sizeof buf), name))
            return &w->markets[i];
    }
    return NULL;
}

static size_t token_index(const struct sp_world_cfg *w, const char *name)
{
    const struct sp_token_cfg *t = name ? find_token(w, name) : NULL;
    return t ? (size_t)(t - w->tokens) : SIZE_MAX;
}

/* The valuation graph: token i depends on to[2*i], to[2*i+1] (SIZE_MAX:
 * none) through the node via[i] (its `underlying`, or an lp's `issuer`). */
struct token_graph {
    size_t *to;
    const struct sp_node **via;
    int *color;                   /* 0 unseen, 1 on the stack, 2 done */
    size_t *stack, depth;
    int errors;
};

static void report_cycle(const struct sp_world_cfg *w, struct token_graph *g, size_t from,
                         const struct sp_check_ctx *ctx)
{
    /* The cycle is stack[from..depth-1]; spell it from its first token in
     * scenario order, where it is reported. */
    size_t n = g->depth - from, start = from;
    for (size_t k = from; k < g->depth; k++)
        if (g->stack[k] < g->stack[start]) start = k;
    char text[1024];
    size_t used = 0;
    for (size_t k = 0; k <= n && used < sizeof text; k++) {
        size_t tok = g->stack[from + (start - from + k) % n];
        int c = snprintf(text + used, sizeof text - used, "%s%s", k ? " -> " : "",
                         w->tokens[tok].name);
        if (c < 0) break;
        used += (size_t)c;
    }
    sp_diag_error(ctx->diag, g->via[g->stack[start]], "token cycle: %s (a token's value cannot "
                  "depend on itself)", text);
    g->errors++;
}

static void cycle_visit(const struct sp_world_cfg *w, struct token_graph *g, size_t u,
                        const struct sp_check_ctx *ctx)
{
    g->color[u] = 1;
    g->stack[g->depth++] = u;
    for (int e = 0; e < 2; e++) {
        size_t v = g->to[2 * u + (size_t)e];
        if (v == SIZE_MAX) continue;
        if (g->color[v] == 1) {
            size_t from = g->depth;
            while (from > 0 && g->stack[from - 1] != v) from--;
            report_cycle(w, g, from - 1, ctx);
        } else if (g->color[v] == 0) {
            cycle_visit(w, g, v, ctx);
        }
    }
    g->depth--;
    g->color[u] = 2;
}

/* Underlyings and issuers name what they must, and the graph has no cycle. */
static int check_token_graph(const struct sp_world_cfg *w, const struct sp_check_ctx *ctx)
{
    const struct sp_node *tokens = sp_node_get(ctx->node, "tokens");
    size_t n = w->n_tokens;
    int rc = SP_OK;
    struct token_graph g = { 0 };
    g.to = malloc((2 * n + 1) * sizeof *g.to);
    g.via = calloc(n + 1, sizeof *g.via);
    g.color = calloc(n + 1, sizeof *g.color);
    g.stack = malloc((n + 1) * sizeof *g.stack);
    if (!g.to || !g.via || !g.color || !g.stack) { rc = SP_ENOMEM; goto out; }
    for (size_t i = 0; i < n; i++) {
        const struct sp_token_cfg *t = &w->tokens[i];
        struct sp_check_ctx sub = *ctx;
        sub.node = sp_node_at(tokens, i);
        g.to[2 * i] = g.to[2 * i + 1] = SIZE_MAX;
        if (t->underlying) {
            g.via[i] = sp_node_get(sub.node, "underlying");
            if (sp_world_check_token(&sub, "underlying", -1)) {
                rc = SP_ECONFIG;
            } else {
                size_t u = token_index(w, t->underlying);
                g.to[2 * i] = u;
                if (t->kind == SP_TOKEN_LST && w->tokens[u].kind != SP_TOKEN_BASE) {
                    sp_diag_error(ctx->diag, g.via[i], "the underlying of lst '%s' must be a "
                                  "base token; '%s' is of kind %s", t->name, t->underlying,
                                  sp_token_kind_names[w->tokens[u].kind]);
                    rc = SP_ECONFIG;
                }
            }
        }
        if (!t->issuer) continue;
        const struct sp_node *at = sp_node_get(sub.node, "issuer");
        int r = SP_OK;
        if (t->kind == SP_TOKEN_RECEIPT)
            r = sp_world_check_entity(&sub, "issuer", w->protocols, w->n_protocols, "protocol",
                                      NULL);
        else if (t->kind == SP_TOKEN_VAULT_SHARE)
            r = sp_world_check_entity(&sub, "issuer", w->agents, w->n_agents, "agent",
                                      vault_types);
        else if (t->kind == SP_TOKEN_LP)
            r = sp_world_check_entity(&sub, "issuer", w->markets, w->n_markets, "market",
                                      lp_market_types);
        if (r) { rc = SP_ECONFIG; continue; }
        /* One token per issuer (per underlying for a pool's receipts). */
        for (size_t j = 0; j < i; j++) {
            const struct sp_token_cfg *o = &w->tokens[j];
            if (o->kind != t->kind || !o->issuer || strcmp(o->issuer, t->issuer)) continue;
            if (t->kind == SP_TOKEN_RECEIPT &&
                (!o->underlying || !t->underlying || strcmp(o->underlying, t->underlying)))
                continue;
            sp_diag_error(ctx->diag, at, "'%s' already issues %s token '%s'%s", t->issuer,
                          sp_token_kind_names[t->kind], o->name,
                          t->kind == SP_TOKEN_RECEIPT ? " for the same underlying" : "");
            rc = SP_ECONFIG;
            break;
        }
        if (t->kind == SP_TOKEN_LP) {
            const struct sp_module_cfg *m = find_market(w, t->issuer);
            if (m && m->node) {
                g.via[i] = at;
                g.to[2 * i] = token_index(w, sp_node_get(m->node, "base") ?
                                             sp_node_get(m->node, "base")->value : NULL);
                g.to[2 * i + 1] = token_index(w, sp_node_get(m->node, "quote") ?
                                                 sp_node_get(m->node, "quote")->value : NULL);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!g.color[i]) cycle_visit(w, &g, i, ctx);
    if (g.errors) rc = SP_ECONFIG;
out:
    free(g.to);
    free(g.via);
    free(g.color);
    free(g.stack);
    return rc;
}

static int world_check(void *bound, const struct sp_check_ctx *ctx)
{
    struct sp_world_cfg *w = bound;
    int rc = SP_OK;
    const struct sp_node *tokens = sp_node_get(ctx->node, "tokens");
    for (size_t i = 0; i < w->n_tokens; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(w->tokens[i].name, w->tokens[j].name)) {
                sp_diag_error(ctx->diag, sp_node_get(sp_node_at(tokens, i), "name"),
                              "duplicate token '%s'", w->tokens[i].name);
                rc = SP_ECONFIG;
            }
    if (rc == SP_OK) {
        int r = check_token_graph(w, ctx);
        if (r) rc = r;
    }
    /* Entity names must be unique across every module section. */
    struct section sec[N_SECTIONS];
    size_t ns = sections_of(w, sec);
    for (size_t a = 0; a < ns; a++)
        for (size_t i = 0; i < sec[a].n; i++) {
            char bi[128], bj[128];
            const char *ni = entity_name(&sec[a].items[i], bi, sizeof bi);
            bool dup = false;
            for (size_t b = 0; b <= a && !dup; b++)
                for (size_t j = 0; j < (b == a ? i : sec[b].n) && !dup; j++)
                    dup = !strcmp(entity_name(&sec[b].items[j], bj, sizeof bj), ni);
            if (dup) {
                sp_diag_error(ctx->diag, sec[a].items[i].node, "duplicate entity name '%s'", ni);
                rc = SP_ECONFIG;
            }
        }
    return rc;
}

/* ---- the `chain:` section ---------------------------------------------------
 *
 * `chain:` is ONE map with a `type:` (or a bare type name), while the binder
 * knows module items only as members of a list (SP_T_MODULES).  So for the
 * bind the map is wrapped in a one-item list node, and unwrapped after:
 *   chain: eip1559          -> the scalar becomes the map {type: eip1559};
 *   chain: {type: ..., ...} -> bound as the list [ {type: ..., ...} ];
 *   a list                  -> an error (one chain per world).
 * The map keeps whatever defaults the bind inserted, so the resolved
 * scenario shows `chain:` as the map it is; messages produced meanwhile say
 * "chain.0.key", rewritten to "chain.key".  Absent (or `chain:` with
 * nothing): an instant chain, added to the bound config only. */

struct chain_wrap {
    struct sp_node *item, *list;
    const char *key;
};

static int chain_wrap(struct sp_scenario *sc, struct chain_wrap *cw, struct sp_diag *d)
{
    memset(cw, 0, sizeof *cw);
    struct sp_node *root = (struct sp_node *)sp_scenario_root(sc);   /* sc's own tree */
    struct sp_node *n = root ? sp_node_get(root, "chain") : NULL;
    if (!n) return SP_OK;
    if (n->kind == SP_NODE_SEQ) {
        sp_diag_error(d, n, "expected one map such as {type: eip1559, block_time: 12s} "
                      "(or a type name: instant, eip1559), got a list: a world has one chain");
        return SP_ECONFIG;
    }
    if (n->kind == SP_NODE_SCALAR) {
        const char *v = n->value ? n->value : "";
        if (!(n->flags & SP_NODE_QUOTED) &&
            (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
             !strcmp(v, "NULL")))
            return SP_OK;                         /* "chain:" with nothing: absent */
        struct sp_node *t = sp_scenario_alloc(sc, sizeof *t);
        if (!t) return SP_ENOMEM;
        *t = (struct sp_node){ .kind = SP_NODE_SCALAR, .flags = n->flags, .file = n->file,
                               .line = n->line, .col = n->col, .key = "type", .value = v,
                               .parent = n };
        n->kind = SP_NODE_MAP;
        n->flags &= ~(unsigned)SP_NODE_QUOTED;
        n->value = NULL;
        n->child = t;
        n->n_children = 1;
    }
    struct sp_node *list = sp_scenario_alloc(sc, sizeof *list);
    if (!list) return SP_ENOMEM;
    *list = (struct sp_node){ .kind = SP_NODE_SEQ, .flags = n->flags, .file = n->file,
                              .line = n->line, .col = n->col, .key = n->key,
                              .parent = root, .child = n, .next = n->next, .n_children = 1 };
    for (struct sp_node **pp = &root->child; *pp; pp = &(*pp)->next)
        if (*pp == n) { *pp = list; break; }
    cw->item = n;
    cw->list = list;
    cw->key = n->key;
    n->parent = list;
    n->key = NULL;
    n->next = NULL;
    return SP_OK;
}

static void chain_unwrap(struct chain_wrap *cw, struct sp_diag *d, size_t diag_from)
{
    if (!cw->list) return;
    struct sp_node *root = cw->list->parent;
    for (struct sp_node **pp = &root->child; *pp; pp = &(*pp)->next)
        if (*pp == cw->list) { *pp = cw->item; break; }
    cw->item->next = cw->list->next;
    cw->item->parent = root;
    cw->item->key = cw->key;
    if (!d || !d->text) return;
    /* "error: chain.0.x: ..." -> "error: chain.x: ...", "error: chain.0: " -> "error: chain: " */
    static const char pat[] = "error: chain.0";
    for (char *p = d->text + diag_from; (p = strstr(p, pat)); ) {
        char *after = p + sizeof pat - 1;
        if (*after == '.' || *after == ':') {
            memmove(p + sizeof pat - 3, after, strlen(after) + 1);
            d->len -= 2;
        }
        p += sizeof pat - 3;
    }
}

/* The default: `type: instant`, in the bound config only. */
static int chain_default(struct sp_scenario *sc, const struct sp_registry *reg,
                         struct sp_world_cfg *out)
{
    const struct sp_module_ops *ops = sp_registry_find(reg ? reg : sp_registry_builtin(),
                                                       "chain", "instant");
    if (!ops) return SP_OK;
    struct sp_module_cfg *m = sp_scenario_alloc(sc, sizeof *m);
    size_t size = ops->schema && ops->schema->struct_size ? ops->schema->struct_size : 1;
    void *cfg = sp_scenario_alloc(sc, size);
    if (!m || !cfg) return SP_ENOMEM;
    m->ops = ops;
    m->cfg = cfg;
    out->chain = m;
    out->n_chain = 1;
    return SP_OK;
}

int sp_world_bind(struct sp_scenario *sc, const struct sp_registry *reg,
                  struct sp_world_cfg *out, struct sp_diag *d)
{
    memset(out, 0, sizeof *out);
    struct chain_wrap cw;
    size_t diag_from = d ? d->len : 0;
    int rc = chain_wrap(sc, &cw, d);
    if (rc) return rc;
    rc = sp_scenario_bind(sc, &world_schema, reg, out, d);
    chain_unwrap(&cw, d, diag_from);
    if (rc) return rc;
    if (!out->n_chain) {
        if ((rc = chain_default(sc, reg, out))) return rc;
        /* world_check ran without it: the name 'chain' is taken now. */
        struct section sec[N_SECTIONS];
        size_t ns = sections_of(out, sec);
        for (size_t a = 0; a < ns; a++)
            for (size_t i = 0; i < sec[a].n && sec[a].items != out->chain; i++) {
                char buf[128];
                if (!sec[a].items[i].ops ||
                    strcmp(entity_name(&sec[a].items[i], buf, sizeof buf), "chain"))
                    continue;
                sp_diag_error(d, sec[a].items[i].node, "duplicate entity name 'chain': the "
                              "chain (instant by default) is the entity 'chain'");
                rc = SP_ECONFIG;
            }
        if (rc) return rc;
    }
    if (!out->name) {
        const char *path = sp_scenario_path(sc);
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strcspn(base, ".");
        char *name = sp_scenario_alloc(sc, n + 1);
        if (!name) return SP_ENOMEM;
        memcpy(name, base, n);
        out->name = name;
    }
    return SP_OK;
}

static int define_tokens(struct sp_sim *sim, const struct sp_world_cfg *cfg, struct sp_diag *d)
{
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        const struct sp_token_cfg *t = &cfg->tokens[i];
        struct sp_token_def def = {
            .kind = t->kind,
            .underlying = t->underlying ? sp_token_find(sim, t->underlying) : -1,
            .issuer = t->issuer ? sp_sim_find(sim, t->issuer) : SP_ID_NONE,
            .apr = t->apr, .rate = t->rate, .redemption_delay = t->redemption_delay,
        };
        int rc = sp_token_define(sim, (sp_token)i, &def);
        if (rc) {
            sp_diag_error(d, NULL, "cannot place token '%s' in the valuation graph: %s "
                          "(its underlying or issuer is missing)", t->name, sp_strerror(rc));
            return SP_ECONFIG;
        }
    }
    return SP_OK;
}

int sp_world_build(struct sp_sim **out, const struct sp_world_cfg *cfg, struct sp_diag *d)
{
    struct sp_sim *sim;
    int rc = sp_sim_create(&sim, (uint64_t)cfg->seed);
    if (rc) { sp_diag_error(d, NULL, "cannot create the simulation: %s", sp_strerror(rc)); return rc; }
    sp_sim_set_horizon(sim, cfg->horizon);
    sp_sim_set_sample_every(sim, cfg->output.sample_every);
    sim->no_feedback = cfg->counterfactual == SP_CF_NO_FEEDBACK;
    const char **tokens = calloc(cfg->n_tokens + 1, sizeof *tokens);
    if (!tokens) { sp_sim_destroy(sim); return SP_ENOMEM; }
    for (size_t i = 0; i < cfg->n_tokens; i++) tokens[i] = cfg->tokens[i].name;
    rc = sp_sim_set_tokens(sim, tokens, cfg->n_tokens);
    free(tokens);
    if (rc) { sp_sim_destroy(sim); return rc; }
    /* One entity per module item, in section then scenario order; ids are
     * dense.  All exist before any init, so modules can look each other up. */
    struct section sec[N_SECTIONS];
    size_t ns = sections_of(cfg, sec);
    for (int pass = 0; pass < 2; pass++) {
        sp_id id = 0;
        /* Every entity exists: place the tokens in the valuation graph
         * before any init, so issuers find their tokens there. */
        if (pass == 1 && (rc = define_tokens(sim, cfg, d))) { sp_sim_destroy(sim); return rc; }
        for (size_t s = 0; s < ns; s++)
            for (size_t i = 0; i < sec[s].n; i++) {
                const struct sp_module_cfg *m = &sec[s].items[i];
                size_t count = m->ops->count ? m->ops->count(m->cfg) : 1;
                for (size_t k = 0; k < count; k++, id++) {
                    char buf[128], member[160];
                    const char *name = entity_name(m, buf, sizeof buf);
                    if (count > 1) {              /* a population: NAME_0 .. NAME_{n-1} */
                        snprintf(member, sizeof member, "%s_%zu", name, k);
                        name = member;
                    }
                    rc = pass == 0 ? sp_sim_add_entity(sim, name, m->ops, NULL, NULL)
                                   : sp_sim_init_entity(sim, id, m->cfg);
                    if (rc) {
                        const char *msg;
                        if (!sp_sim_failure(sim, &msg)) msg = sp_strerror(rc);
                        sp_diag_error(d, m->node, "cannot set up '%s': %s", name,
                                      rc == SP_EEXISTS ? "duplicate entity name" : msg);
                        sp_sim_destroy(sim);
                        return rc;
                    }
                }
            }
    }
    *out = sim;
    return SP_OK;
}

static const char *status_name(enum sp_run_status st)
{
    switch (st) {
    case SP_RUN_COMPLETE: return "complete";
    case SP_RUN_INTERRUPTED: return "interrupted";
    default: return "failed";
    }
}

/* /entities: every entity with its module kind and type, as codes. */
static int write_entities(struct sp_rec *rec, struct sp_sim *sim)
{
    size_t n = sp_sim_entity_count(sim);
    const char **names = calloc(n + 1, sizeof *names);
    const char **types = calloc(n + 1, sizeof *types);
    int rc = (!names || !types) ? SP_ENOMEM : SP_OK;
    size_t n_types = 0;
    int64_t *type_of = calloc(n + 1, sizeof *type_of);
    if (!type_of) rc = SP_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        names[i] = sp_sim_entity_name(sim, (sp_id)i);
        const char *ty = sp_sim_entity_ops(sim, (sp_id)i)->type;
        const char *kind = sp_sim_entity_ops(sim, (sp_id)i)->kind;
        (void)kind;
        size_t k = 0;
        while (k < n_types && strcmp(types[k], ty)) k++;
        if (k == n_types) types[n_types++] = ty;
        type_of[i] = (int64_t)k;
    }
    struct sp_rec_table *t = NULL;
    if (!rc) {
        const struct sp_rec_col cols[] = {
            { "id", SP_REC_I32, "1", "entity id (used by event columns)", NULL },
            { "name", SP_REC_I32, "1", "entity name", names },
            { "type", SP_REC_I32, "1", "module type", types },
        };
        rc = sp_rec_table_create(rec, "/entities", cols, 3, &t);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        union sp_rec_val row[3] = { { .i = (int64_t)i }, { .i = (int64_t)i }, { .i = type_of[i] } };
        sp_rec_append(t, row);
    }
    free(names);
    free(types);
    free(type_of);
    return rc;
}

static int write_header(struct sp_rec *rec, struct sp_scenario *sc, const struct sp_world_cfg *cfg,
                        const struct sp_world_run *req, struct sp_sim *sim)
{
    char buf[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int rc = 0;
    snprintf(buf, sizeof buf, "spiral %s (git %s)", SPIRAL_VERSION, SPIRAL_GIT_SHA);
    rc |= sp_rec_attr_str(rec, "/", "software", buf);
    rc |= sp_rec_attr_i64(rec, "/", "seed", cfg->seed);
    rc |= sp_rec_attr_str(rec, "/", "scenario", sp_scenario_path(sc));
    rc |= sp_rec_attr_str(rec, "/", "name", cfg->name);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc |= sp_rec_attr_str(rec, "/", "created_utc", buf);
    rc |= sp_rec_attr_str(rec, "/", "command_line", req->command_line ? req->command_line : "");
    rc |= sp_rec_attr_f64(rec, "/", "horizon", sp_time_sec(cfg->horizon));
    rc |= sp_rec_attr_str(rec, "/", "counterfactual",
                          sp_counterfactual_names[cfg->counterfactual]);
    char *yaml = sp_scenario_emit(sc);
    if (!yaml) return SP_ENOMEM;
    rc |= sp_rec_text(rec, "/config.yaml", yaml);
    /* FNV-1a 64 of /config.yaml: `spiral sweep` reuses a complete run only
     * when this equals the hash of the run it is about to launch. */
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)sp_rng_key(yaml));
    rc |= sp_rec_attr_str(rec, "/", "config_hash", buf);
    free(yaml);
    if (req->resume) {
        /* A continuation or a branch: where it comes from (docs/snapshot.md). */
        rc |= sp_rec_attr_str(rec, "/", "parent_snapshot", req->resume_path ? req->resume_path : "");
        rc |= sp_rec_attr_f64(rec, "/", "resumed_at", sp_time_sec(sp_snapshot_time(req->resume)));
        rc |= sp_rec_attr_i64(rec, "/", "branch", req->n_sets > 0);
        size_t len = 1;
        for (size_t i = 0; i < req->n_sets; i++) len += strlen(req->sets[i]) + 1;
        char *ov = calloc(len, 1);
        if (!ov) return SP_ENOMEM;
        for (size_t i = 0; i < req->n_sets; i++) {
            if (i) strcat(ov, "\n");
            strcat(ov, req->sets[i]);
        }
        rc |= sp_rec_attr_str(rec, "/", "overrides", ov);
        free(ov);
        const char *po = sp_snapshot_output(req->resume);
        rc |= sp_rec_attr_str(rec, "/", "parent_output", po ? po : "");
    }
    rc |= write_entities(rec, sim);
    rc |= sp_trades_open(sim, rec);
    return rc ? SP_EHDF5 : SP_OK;
}

/* Checkpoint files: DIR/NAME@T.snap, T as a duration ("36h", "1d2h30m"). */
static int checkpoint_path(char *buf, size_t size, const struct sp_world_cfg *cfg,
                           const struct sp_world_run *req, sp_time t)
{
    char dur[64];
    sp_format_duration(t, dur, sizeof dur);
    int n = snprintf(buf, size, "%s/%s@%s.snap", req->checkpoint_dir ? req->checkpoint_dir : ".",
                     cfg->name, dur);
    return n < 0 || (size_t)n >= size ? SP_EINVAL : SP_OK;
}

/* The next checkpoint strictly after `now` and at most `end`, or 0. */
static sp_time next_checkpoint(const struct sp_world_run *req, sp_time now, sp_time end)
{
    sp_time best = 0;
    if (req->checkpoint_every > 0) {
        sp_time k = now / req->checkpoint_every + 1;
        if (k <= end / req->checkpoint_every) best = k * req->checkpoint_every;
    }
    for (size_t i = 0; i < req->n_checkpoint_at; i++) {
        sp_time t = req->checkpoint_at[i];
        if (t > now && t <= end && (!best || t < best)) best = t;
    }
    return best;
}

/* Run to the end, stopping at each checkpoint to write a snapshot. */
static enum sp_run_status run_segments(struct sp_sim *sim, struct sp_scenario *sc,
                                       const struct sp_world_cfg *cfg,
                                       const struct sp_world_run *req, struct sp_diag *d)
{
    struct sp_run_opts o = req->run;
    sp_time end = o.until ? o.until : sp_sim_horizon(sim);
    if (req->checkpoint_dir && (req->checkpoint_every > 0 || req->n_checkpoint_at) &&
        mkdir(req->checkpoint_dir, 0777) && errno != EEXIST) {
        sp_sim_fail(sim, SP_EIO, "cannot create the checkpoint directory '%s': %s",
                    req->checkpoint_dir, strerror(errno));
        return SP_RUN_FAILED;
    }
    for (;;) {
        sp_time next = next_checkpoint(req, sp_sim_now(sim), end);
        o.until = next ? next : end;
        o.pause = next != 0;      /* a checkpoint is taken between events */
        enum sp_run_status st = sp_sim_run(sim, &o);
        if (st != SP_RUN_COMPLETE || !next) return st;
        char path[4096];
        if (checkpoint_path(path, sizeof path, cfg, req, next)) {
            sp_sim_fail(sim, SP_EINVAL, "checkpoint path too long");
            return SP_RUN_FAILED;
        }
        if (sp_snapshot_write(sim, sc, path, d)) {
            sp_sim_fail(sim, SP_EIO, "cannot write the checkpoint '%s' (see above)", path);
            return SP_RUN_FAILED;
        }
        if (req->on_checkpoint) req->on_checkpoint(req->on_checkpoint_arg, path, next);
        if (next >= end) {       /* the end of the run: the clock runs on to it */
            o.pause = false;
            return sp_sim_run(sim, &o);
        }
    }
}

/* In a resumed output, each table that the parent's output also had gets
 * `parent_rows`: the rows the parent held when the snapshot was taken, so
 * the parent's first parent_rows rows + these rows = the whole history. */
static void mark_parent_rows(struct sp_rec *rec, const struct sp_snapshot *s)
{
    for (size_t i = 0; i < sp_snapshot_output_tables(s); i++) {
        uint64_t rows;
        const char *name = sp_snapshot_output_table(s, i, &rows);
        if (!strcmp(name, "/entities")) continue;          /* whole in every file */
        for (size_t k = 0; k < sp_rec_table_count(rec); k++)
            if (!strcmp(sp_rec_table_name(sp_rec_table_at(rec, k)), name)) {
                sp_rec_attr_i64(rec, name, "parent_rows", (int64_t)rows);
                break;
            }
    }
}

/* Open the output, start (and restore), run, finish, close: the part of a
 * run after the sim is built.  Takes ownership of `sim`. */
static int world_run_sim(struct sp_sim *sim, struct sp_scenario *sc,
                         const struct sp_world_cfg *cfg, const struct sp_world_run *req,
                         enum sp_run_status *status, struct sp_diag *d)
{
    int rc;
    struct sp_rec *rec = NULL;
    if (req->output) {
        struct sp_rec_opts ro = { (int)cfg->output.compression, (size_t)cfg->output.chunk_rows };
        rc = sp_rec_create(&rec, req->output, &ro);
        if (rc) {
            sp_diag_error(d, NULL, "cannot create output file '%s': %s", req->output,
                          rc == SP_EIO ? "not writable (does the directory exist?)"
                                       : sp_strerror(rc));
            sp_sim_destroy(sim);
            return SP_EIO;
        }
        rc = write_header(rec, sc, cfg, req, sim);
        if (rc) sp_sim_fail(sim, rc, "cannot write the output header: %s", sp_strerror(rc));
        sp_sim_set_recorder(sim, rec);
    }
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    enum sp_run_status st = SP_RUN_FAILED;
    bool started = !sp_sim_failure(sim, NULL) && sp_sim_start(sim) == SP_OK;
    if (started && req->resume && (rc = sp_snapshot_restore(req->resume, sim, d))) {
        /* A snapshot that loads but does not fit this world: bad input.
         * The new output holds nothing of value: remove it. */
        if (rec) {
            sp_rec_close(rec, "failed");
            remove(req->output);
        }
        sp_sim_destroy(sim);
        return rc == SP_ENOMEM ? SP_ENOMEM : SP_ECONFIG;
    }
    if (started && req->resume && rec) mark_parent_rows(rec, req->resume);
    if (started) st = run_segments(sim, sc, cfg, req, d);
    if (started && st == SP_RUN_COMPLETE && req->final_snapshot &&
        sp_snapshot_write(sim, sc, req->final_snapshot, d)) {
        sp_sim_fail(sim, SP_EIO, "cannot write the snapshot '%s' (see above)", req->final_snapshot);
        st = SP_RUN_FAILED;
    }
    sp_sim_finish(sim);
    if (req->on_summary) req->on_summary(req->on_summary_arg, sim);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    const char *msg;
    if (sp_sim_failure(sim, &msg)) {
        st = SP_RUN_FAILED;
        sp_diag_error(d, NULL, "run failed at t = %.6f s: %s", sp_time_sec(sp_sim_now(sim)), msg);
    }
    if (rec) {
        int r2 = 0;
        for (size_t i = 0; i < sp_sim_summary_count(sim); i++) {
            double v;
            const char *name = sp_sim_summary_get(sim, i, &v);
            r2 |= sp_rec_attr_f64(rec, "/summary", name, v);
        }
        r2 |= sp_rec_attr_i64(rec, "/summary", "n_trades", (int64_t)sim->n_trades);
        r2 |= sp_rec_attr_f64(rec, "/", "t_end", sp_time_sec(sp_sim_now(sim)));
        r2 |= sp_rec_attr_i64(rec, "/", "n_events", (int64_t)sp_sim_events(sim));
        r2 |= sp_rec_attr_f64(rec, "/", "wall_seconds",
                              (double)(w1.tv_sec - w0.tv_sec) + 1e-9 * (double)(w1.tv_nsec - w0.tv_nsec));
        if (r2 && st == SP_RUN_COMPLETE) {
            st = SP_RUN_FAILED;
            sp_diag_error(d, NULL, "cannot write the run summary to '%s'", req->output);
        }
        int rc2 = sp_rec_close(rec, status_name(st));
        if (rc2) {
            sp_diag_error(d, NULL, "error writing '%s': %s", req->output, sp_strerror(rc2));
            st = SP_RUN_FAILED;
        }
    }
    *status = st;
    sp_sim_destroy(sim);
    return SP_OK;
}

int sp_world_run(struct sp_scenario *sc, const struct sp_world_cfg *cfg,
                 const struct sp_world_run *req, enum sp_run_status *status,
                 struct sp_diag *d)
{
    struct sp_sim *sim;
    int rc = sp_world_build(&sim, cfg, d);
    if (rc) return rc;
    return world_run_sim(sim, sc, cfg, req, status, d);
}

int sp_world_resume(const struct sp_snapshot *s, const struct sp_registry *reg,
                    const struct sp_world_run *req, enum sp_run_status *status,
                    struct sp_diag *d)
{
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    int rc = sp_snapshot_build_world(s, reg, req->sets, req->n_sets, &sc, &cfg, &sim, d);
    if (rc) return rc;
    struct sp_world_run r = *req;
    r.resume = s;
    sp_time end = r.run.until ? r.run.until : sp_sim_horizon(sim);
    if (end <= sp_snapshot_time(s)) {
        char a[64], b[64];
        sp_diag_error(d, NULL, "nothing to run: the snapshot is at t = %s and the run ends at %s "
                      "(give --until, or --set horizon=... for a longer branch)",
                      sp_format_duration(sp_snapshot_time(s), a, sizeof a),
                      sp_format_duration(end, b, sizeof b));
        sp_sim_destroy(sim);
        sp_scenario_destroy(sc);
        return SP_ECONFIG;
    }
    rc = world_run_sim(sim, sc, &cfg, &r, status, d);
    sp_scenario_destroy(sc);
    return rc;
}
