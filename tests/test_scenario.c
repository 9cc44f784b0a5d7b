/*
 * test_scenario.c — scenario files: the scalar parsers, the YAML tree, --set,
 * schema validation and binding, the resolved-scenario writer and the docs.
 *
 * The schemas here are test-local tables shaped like the real ones (a sim
 * section with durations, a list of tokens, a list of `reference` modules
 * registered in a test registry) so the engine's binder is exercised without
 * depending on any real module.  Expected messages are spelled out in full
 * where the text is part of the contract (STYLE.md: file, line, column, key,
 * what was expected, a suggestion for typos).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"

/* ---- test schemas --------------------------------------------------------- */

struct t_sim {
    sp_time horizon, step;
    int64_t seed;
    bool quiet;
    double fee;
};

struct t_token {
    const char *name;
    double price;
};

struct t_inner { double x; };
struct t_nested {
    struct t_inner inner;
    int64_t y;
};

struct t_root {
    const char *title;
    struct t_sim sim;
    struct t_token *tokens;
    size_t n_tokens;
    struct sp_module_cfg *refs;
    size_t n_refs;
    int mode;
    const char *data;
    double ltv;
    struct t_nested nested;
    double internal;
};

struct t_gbm {
    double volatility, drift;
    sp_time dt;
    const char *asset;
};

struct t_replay { const char *file; };

static int t_sim_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct t_sim *s = bound;
    if (s->step > s->horizon) {
        char a[32], b[32];
        sp_diag_error(ctx->diag, sp_node_get(ctx->node, "step"),
                      "step (%s) must not exceed horizon (%s)",
                      sp_format_duration(s->step, a, sizeof a),
                      sp_format_duration(s->horizon, b, sizeof b));
        return SP_ECONFIG;
    }
    return 0;
}

static const struct sp_field t_sim_fields[] = {
    { .key = "horizon", .type = SP_T_DURATION, .flags = SP_F_REQUIRED | SP_F_MIN_EXCL,
      .doc = "How long the run lasts.", .offset = offsetof(struct t_sim, horizon) },
    { .key = "step", .type = SP_T_DURATION, .flags = SP_F_MIN_EXCL, .def = "1s",
      .doc = "Tick.", .offset = offsetof(struct t_sim, step) },
    { .key = "seed", .type = SP_T_INT, .flags = SP_F_MIN, .def = "42",
      .doc = "Seed.", .offset = offsetof(struct t_sim, seed) },
    { .key = "quiet", .type = SP_T_BOOL, .def = "false", .doc = "Quiet.",
      .offset = offsetof(struct t_sim, quiet) },
    { .key = "fee", .type = SP_T_NUMBER, .flags = SP_F_MIN, .def = "0.003",
      .units = "fraction of notional", .doc = "Fee | with a pipe.",
      .offset = offsetof(struct t_sim, fee) },
};
static const struct sp_schema t_sim_schema = {
    "sim", "Clock settings.", t_sim_fields, 5, sizeof(struct t_sim), t_sim_check
};

static const struct sp_field t_token_fields[] = {
    { .key = "name", .type = SP_T_NAME, .flags = SP_F_REQUIRED, .doc = "Symbol.",
      .offset = offsetof(struct t_token, name) },
    { .key = "price", .type = SP_T_NUMBER, .flags = SP_F_REQUIRED | SP_F_MIN_EXCL,
      .units = "USD", .doc = "Initial price.", .offset = offsetof(struct t_token, price) },
};
static const struct sp_schema t_token_schema = {
    "tokens[]", "A token.", t_token_fields, 2, sizeof(struct t_token), NULL
};

static const struct sp_field t_inner_fields[] = {
    { .key = "x", .type = SP_T_NUMBER, .def = "1.5", .doc = "x.",
      .offset = offsetof(struct t_inner, x) },
};
static const struct sp_schema t_inner_schema = {
    "inner", NULL, t_inner_fields, 1, sizeof(struct t_inner), NULL
};
static const struct sp_field t_nested_fields[] = {
    { .key = "inner", .type = SP_T_MAP, .doc = "Inner.", .sub = &t_inner_schema,
      .offset = offsetof(struct t_nested, inner) },
    { .key = "y", .type = SP_T_INT, .doc = "y.", .offset = offsetof(struct t_nested, y) },
};
static const struct sp_schema t_nested_schema = {
    "nested", NULL, t_nested_fields, 2, sizeof(struct t_nested), NULL
};

static const char *const t_modes[] = { "fast", "paced", NULL };

static const struct sp_field t_root_fields[] = {
    { .key = "title", .type = SP_T_STRING, .def = "untitled", .doc = "Title.",
      .offset = offsetof(struct t_root, title) },
    { .key = "sim", .type = SP_T_MAP, .doc = "Clock.", .sub = &t_sim_schema,
      .offset = offsetof(struct t_root, sim) },
    { .key = "tokens", .type = SP_T_LIST, .doc = "Tokens.", .sub = &t_token_schema,
      .offset = offsetof(struct t_root, tokens),
      .count_offset = offsetof(struct t_root, n_tokens) },
    { .key = "references", .type = SP_T_MODULES, .doc = "Price processes.",
      .sub = "reference", .offset = offsetof(struct t_root, refs),
      .count_offset = offsetof(struct t_root, n_refs) },
    { .key = "mode", .type = SP_T_ENUM, .def = "fast", .doc = "Mode.", .sub = t_modes,
      .offset = offsetof(struct t_root, mode) },
    { .key = "data", .type = SP_T_PATH, .doc = "Data file.",
      .offset = offsetof(struct t_root, data) },
    { .key = "ltv", .type = SP_T_FRACTION, .flags = SP_F_MIN | SP_F_MAX_EXCL, .min = 0,
      .max = 1, .def = "80%", .doc = "Loan to value.", .offset = offsetof(struct t_root, ltv) },
    { .key = "nested", .type = SP_T_MAP, .doc = "Nested.", .sub = &t_nested_schema,
      .offset = offsetof(struct t_root, nested) },
    { .key = "internal_knob", .type = SP_T_NUMBER, .flags = SP_F_HIDDEN, .doc = "Secret.",
      .offset = offsetof(struct t_root, internal) },
};
static const struct sp_schema t_root_schema = {
    "Test scenario", "The root.", t_root_fields, 9, sizeof(struct t_root), NULL
};

/* Uses ctx->root: the asset must be one of the tokens bound before. */
static int t_gbm_check(void *bound, const struct sp_check_ctx *ctx)
{
    const struct t_gbm *g = bound;
    const struct t_root *root = ctx->root;
    if (!root->n_tokens) return 0;
    for (size_t i = 0; i < root->n_tokens; i++)
        if (!strcmp(root->tokens[i].name, g->asset)) return 0;
    sp_diag_error(ctx->diag, sp_node_get(ctx->node, "asset"),
                  "asset '%s' is not among the tokens", g->asset);
    return SP_ECONFIG;
}

static const struct sp_field t_gbm_fields[] = {
    { .key = "volatility", .type = SP_T_NUMBER, .flags = SP_F_REQUIRED | SP_F_MIN,
      .units = "per sqrt(year)", .doc = "Annualised volatility.",
      .offset = offsetof(struct t_gbm, volatility) },
    { .key = "drift", .type = SP_T_NUMBER, .def = "0", .doc = "Drift.",
      .offset = offsetof(struct t_gbm, drift) },
    { .key = "dt", .type = SP_T_DURATION, .flags = SP_F_MIN_EXCL, .def = "1m", .doc = "Step.",
      .offset = offsetof(struct t_gbm, dt) },
    { .key = "asset", .type = SP_T_NAME, .def = "ETH", .doc = "Asset.",
      .offset = offsetof(struct t_gbm, asset) },
};
static const struct sp_schema t_gbm_schema = {
    "references[type: gbm]", NULL, t_gbm_fields, 4, sizeof(struct t_gbm), t_gbm_check
};
static const struct sp_field t_replay_fields[] = {
    { .key = "file", .type = SP_T_PATH, .flags = SP_F_REQUIRED, .doc = "CSV of prices.",
      .offset = offsetof(struct t_replay, file) },
};
static const struct sp_schema t_replay_schema = {
    "references[type: replay]", NULL, t_replay_fields, 1, sizeof(struct t_replay), NULL
};

static const struct sp_module_ops t_gbm_ops = {
    .kind = "reference", .type = "gbm", .summary = "Geometric Brownian motion.",
    .schema = &t_gbm_schema,
};
static const struct sp_module_ops t_replay_ops = {
    .kind = "reference", .type = "replay", .summary = "Replays a price series.",
    .schema = &t_replay_schema,
};
static const struct sp_module_ops t_other_kind_ops = {
    .kind = "oracle", .type = "gbx", .summary = "Another kind.", .schema = NULL,
};

/* ---- helpers ----------------------------------------------------------------- */

struct t_fix {
    struct sp_registry *reg;
};

static int group_setup(void **state)
{
    struct t_fix *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (sp_registry_create(&f->reg, NULL) || sp_registry_add(f->reg, &t_gbm_ops) ||
        sp_registry_add(f->reg, &t_replay_ops) || sp_registry_add(f->reg, &t_other_kind_ops))
        return -1;
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct t_fix *f = *state;
    sp_registry_destroy(f->reg);
    free(f);
    return 0;
}

static const struct sp_registry *reg_of(void **state)
{
    return ((struct t_fix *)*state)->reg;
}

static int load(struct sp_scenario **sc, const char *yaml, struct sp_diag *d)
{
    return sp_scenario_load_string(sc, "t.yaml", yaml, strlen(yaml), d);
}

/* Loads, applies the --set arguments (NULL-terminated) and binds. */
static int load_bind(void **state, const char *yaml, const char *const *sets,
                     struct t_root *out, struct sp_diag *d, struct sp_scenario **sc)
{
    memset(out, 0, sizeof *out);
    int rc = load(sc, yaml, d);
    if (rc) return rc;
    for (size_t i = 0; sets && sets[i]; i++)
        if ((rc = sp_scenario_set(*sc, sets[i], d))) return rc;
    return sp_scenario_bind(*sc, &t_root_schema, reg_of(state), out, d);
}

#define assert_diag_has(d, s)                                                      \
    do {                                                                           \
        if (!(d).text || !strstr((d).text, (s))) {                                 \
            print_error("diag lacks \"%s\"; it is:\n%s\n", (s),                    \
                        (d).text ? (d).text : "(empty)");                          \
            fail();                                                                \
        }                                                                          \
    } while (0)

#define MIN_OK "sim:\n  horizon: 1d\n"

/* ---- units -------------------------------------------------------------------- */

static void test_duration_parses_units_decimals_and_compounds(void **state)
{
    (void)state;
    static const struct { const char *s; sp_time us; } good[] = {
        { "12s", 12 * SP_SEC },          { "500ms", 500 * SP_MS },
        { "250us", 250 },                { "5m", 5 * SP_MIN },
        { "6h", 6 * SP_HOUR },           { "2d", 2 * SP_DAY },
        { "1w", 7 * SP_DAY },            { "1.5h", 90 * SP_MIN },
        { "0", 0 },                      { "0s", 0 },
        { "0.0", 0 },                    { " 5 m ", 5 * SP_MIN },
        { "1h30m", 90 * SP_MIN },        { "1d6h", 30 * SP_HOUR },
        { "0.1s", 100 * SP_MS },         { "1.0000004s", SP_SEC },
        { "1.0000006s", SP_SEC + 1 },    { ".5s", 500 * SP_MS },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sp_time t = -1;
        if (sp_parse_duration(good[i].s, &t) != 0 || t != good[i].us) {
            print_error("'%s' -> %lld\n", good[i].s, (long long)t);
            fail();
        }
    }
    static const char *const bad[] = {
        "", "90", "1.5", "abc", "-5s", "5x", "s", "1.2.3s", "5 mins", "nan", "inf",
        "1e3s", "5s 3", "99999999999999d", "0 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_time t = 0;
        if (sp_parse_duration(bad[i], &t) != SP_EINVAL) {
            print_error("'%s' accepted as %lld\n", bad[i], (long long)t);
            fail();
        }
    }
}

static void test_fraction_parses_percent_and_plain(void **state)
{
    (void)state;
    static const struct { const char *s; double v; } good[] = {
        { "80%", 0.8 }, { "0.8", 0.8 }, { "-5%", -0.05 }, { "100%", 1.0 },
        { " 12.5 % ", 0.125 }, { "0", 0.0 }, { "1", 1.0 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = -1;
        assert_int_equal(sp_parse_fraction(good[i].s, &v), 0);
        assert_float_equal(v, good[i].v, 1e-15);
    }
    static const char *const bad[] = { "", "abc", "80%%", "nan", "inf", "%", "8 0%", "0x10" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        if (sp_parse_fraction(bad[i], &v) != SP_EINVAL) {
            print_error("'%s' accepted\n", bad[i]);
            fail();
        }
    }
}

static void test_format_duration_is_compact(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(sp_format_duration(2 * SP_DAY, b, sizeof b), "2d");
    assert_string_equal(sp_format_duration(30 * SP_HOUR, b, sizeof b), "1d6h");
    assert_string_equal(sp_format_duration(90 * SP_SEC, b, sizeof b), "1m30s");
    assert_string_equal(sp_format_duration(250 * SP_MS, b, sizeof b), "250ms");
    assert_string_equal(sp_format_duration(0, b, sizeof b), "0s");
    assert_string_equal(sp_format_duration(1500, b, sizeof b), "1ms500us");
    assert_string_equal(sp_format_duration(-90 * SP_SEC, b, sizeof b), "-1m30s");
    assert_string_equal(sp_format_duration(14 * SP_DAY, b, sizeof b), "14d");
    /* The formatted text parses back to the same value. */
    sp_time t;
    sp_time samples[] = { 1, 999, SP_SEC + 1, 3 * SP_DAY + 4 * SP_HOUR + 5 * SP_MIN + 6 };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sp_parse_duration(sp_format_duration(samples[i], b, sizeof b), &t), 0);
        assert_int_equal(t, samples[i]);
    }
    char tiny[4];
    sp_format_duration(30 * SP_HOUR + 5, tiny, sizeof tiny);  /* truncates, terminated */
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_edit_distance_counts_transpositions_once(void **state)
{
    (void)state;
    assert_int_equal(sp_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(sp_edit_distance("gmb", "gbm"), 1);
    assert_int_equal(sp_edit_distance("", "abc"), 3);
    assert_int_equal(sp_edit_distance("abc", ""), 3);
    assert_int_equal(sp_edit_distance("ABC", "abc"), 0);
    assert_int_equal(sp_edit_distance("ca", "abc"), 3);      /* OSA, not true DL (2) */
    assert_int_equal(sp_edit_distance("volatilty", "volatility"), 1);
    char longa[200], longb[200];
    memset(longa, 'a', 150); longa[150] = '\0';
    memset(longb, 'a', 150); longb[150] = '\0';
    longb[75] = 'b';
    assert_int_equal(sp_edit_distance(longa, longb), 1);
}

static void test_suggest_finds_typos_and_prefixes_only(void **state)
{
    (void)state;
    const char *keys[] = { "drift", "volatility", "dt", "asset" };
    assert_string_equal(sp_suggest("volatilty", keys, 4), "volatility");
    assert_string_equal(sp_suggest("Volatility", keys, 4), "volatility");
    assert_string_equal(sp_suggest("drfit", keys, 4), "drift");
    assert_string_equal(sp_suggest("vol", keys, 4), "volatility");
    assert_null(sp_suggest("xyz", keys, 4));
    assert_null(sp_suggest("liquidity", keys, 4));
    assert_null(sp_suggest("", keys, 4));
    const char *types[] = { "gbm", "replay" };
    assert_string_equal(sp_suggest("gmb", types, 2), "gbm");
    assert_null(sp_suggest("heston", types, 2));
}

/* ---- the tree ------------------------------------------------------------------ */

static void test_yaml_syntax_error_reports_line_and_column(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc = (void *)1;
    /* The ':' after "b" on line 2 is at column 4. */
    assert_int_equal(load(&sc, "a: 1\n  b: 2\n", &d), SP_ECONFIG);
    assert_null(sc);
    assert_string_equal(d.text, "t.yaml:2:4: error: mapping values are not allowed "
                                "in this context\n");
    sp_diag_release(&d);
    /* An unclosed flow list: reported where the parser gives up (line 4). */
    assert_int_equal(load(&sc, "a:\n  - x\n  - [1, 2\nb: 1\n", &d), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:4:");
    assert_diag_has(d, "did not find expected ',' or ']'");
    assert_diag_has(d, "line 3, column 5");
    sp_diag_release(&d);
}

static void test_yaml_rejects_duplicates_aliases_non_map_roots(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    assert_int_equal(load(&sc, "a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", &d), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:4:3: error: duplicate key 'c' (first at line 3)\n");
    assert_diag_has(d, "t.yaml:5:1: error: duplicate key 'a' (first at line 1)\n");
    assert_int_equal(d.n_errors, 2);
    sp_diag_release(&d);

    assert_int_equal(load(&sc, "a: &x 1\nb: *x\n", &d), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:1:4: error: anchors (&x) are not supported");
    assert_diag_has(d, "t.yaml:2:4: error: aliases (*x) are not supported");
    sp_diag_release(&d);

    assert_int_equal(load(&sc, "- 1\n- 2\n", &d), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:1:1: error: the document must be a map");
    sp_diag_release(&d);

    assert_int_equal(load(&sc, "a: 1\n---\nb: 2\n", &d), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:2:1: error: a second YAML document");
    sp_diag_release(&d);

    /* Comments only: an empty map, so the binder can say what is missing. */
    assert_int_equal(load(&sc, "# nothing yet\n", &d), 0);
    assert_int_equal(sp_scenario_root(sc)->kind, SP_NODE_MAP);
    assert_int_equal(sp_scenario_root(sc)->n_children, 0);
    sp_scenario_destroy(sc);
    assert_null(d.text);
}

static void test_tree_nodes_keep_positions_and_paths(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    assert_int_equal(load(&sc, "sim:\n  horizon: 1d\nrefs:\n  - type: gbm\n    v: \"0.5\"\n",
                          &d), 0);
    const struct sp_node *root = sp_scenario_root(sc);
    const struct sp_node *h = sp_node_get(sp_node_get(root, "sim"), "horizon");
    assert_non_null(h);
    assert_int_equal(h->kind, SP_NODE_SCALAR);
    assert_string_equal(h->value, "1d");
    assert_int_equal(h->line, 2);
    assert_int_equal(h->col, 3);
    assert_string_equal(h->file, "t.yaml");
    const struct sp_node *item = sp_node_at(sp_node_get(root, "refs"), 0);
    assert_non_null(item);
    assert_null(sp_node_at(sp_node_get(root, "refs"), 1));
    const struct sp_node *v = sp_node_get(item, "v");
    assert_true(v->flags & SP_NODE_QUOTED);
    assert_false(sp_node_get(item, "type")->flags & SP_NODE_QUOTED);
    char buf[64];
    assert_string_equal(sp_node_path(v, buf, sizeof buf), "refs.0.v");
    assert_string_equal(sp_node_path(root, buf, sizeof buf), "");
    char small[6];
    assert_string_equal(sp_node_path(v, small, sizeof small), "refs.");
    assert_null(sp_node_get(h, "x"));
    assert_null(sp_node_at(h, 0));
    assert_string_equal(sp_scenario_path(sc), "t.yaml");
    assert_string_equal(sp_scenario_dir(sc), ".");
    sp_scenario_destroy(sc);
}

static void test_load_file_reports_missing_file_and_sets_dir(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc = (void *)1;
    assert_int_equal(sp_scenario_load(&sc, "/nonexistent/dir/x.yaml", &d), SP_EIO);
    assert_null(sc);
    assert_diag_has(d, "/nonexistent/dir/x.yaml: error: cannot open scenario: "
                       "No such file or directory");
    sp_diag_release(&d);

    char dir[] = "/tmp/spiral-scn-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("sim:\n  horizon: 2h\ndata: prices.csv\n", f);
    fclose(f);
    assert_int_equal(sp_scenario_load(&sc, path, &d), 0);
    assert_string_equal(sp_scenario_path(sc), path);
    assert_string_equal(sp_scenario_dir(sc), dir);
    struct t_root r = { 0 };
    assert_int_equal(sp_scenario_bind(sc, &t_root_schema, NULL, &r, &d), 0);
    char want[300];
    snprintf(want, sizeof want, "%s/prices.csv", dir);
    assert_string_equal(r.data, want);
    sp_scenario_destroy(sc);
    unlink(path);
    rmdir(dir);
    assert_null(d.text);
}

/* ---- binding --------------------------------------------------------------------- */

static void test_unknown_key_suggests_nearest_or_lists_keys(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, "sim:\n  horizon: 1d\n  stpe: 2s\nzzzzzz: 1\n", NULL,
                               &r, &d, &sc), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:3:3: error: sim.stpe: unknown key 'stpe' "
                       "(did you mean 'step'?)\n");
    /* Hidden keys are not advertised. */
    assert_diag_has(d, "t.yaml:4:1: error: zzzzzz: unknown key 'zzzzzz'; expected one of: "
                       "title, sim, tokens, references, mode, data, ltv, nested\n");
    assert_int_equal(d.n_errors, 2);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_wrong_types_say_what_was_expected(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml =
        "sim:\n"
        "  horizon: abc\n"          /* 2 */
        "  step: 90\n"              /* 3 */
        "  seed: 1.5\n"             /* 4 */
        "  quiet: maybe\n"          /* 5 */
        "  fee: x\n"                /* 6 */
        "mode: fsat\n"              /* 7 */
        "ltv: lots\n"               /* 8 */
        "tokens: 5\n"               /* 9 */
        "nested: [1]\n"             /* 10 */
        "title: [a]\n"              /* 11 */
        "internal_knob: nan\n";     /* 12 */
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:2:3: error: sim.horizon: expected a duration such as "
                       "12s, 5m, 6h or 2d, got 'abc'\n");
    assert_diag_has(d, "t.yaml:3:3: error: sim.step: duration '90' needs a unit "
                       "(us, ms, s, m, h, d, w)\n");
    assert_diag_has(d, "t.yaml:4:3: error: sim.seed: expected an integer, got '1.5'\n");
    assert_diag_has(d, "t.yaml:5:3: error: sim.quiet: expected true or false, got 'maybe'\n");
    assert_diag_has(d, "t.yaml:6:3: error: sim.fee: expected a number, got 'x'\n");
    assert_diag_has(d, "t.yaml:7:1: error: mode: expected one of: fast, paced "
                       "(got 'fsat'; did you mean 'fast'?)\n");
    assert_diag_has(d, "t.yaml:8:1: error: ltv: expected a percentage such as 80% or a "
                       "fraction such as 0.8, got 'lots'\n");
    assert_diag_has(d, "t.yaml:9:1: error: tokens: expected a list, got '5'\n");
    assert_diag_has(d, "t.yaml:10:1: error: nested: expected a map, got a list\n");
    assert_diag_has(d, "t.yaml:11:1: error: title: expected a string, got a list\n");
    assert_diag_has(d, "t.yaml:12:1: error: internal_knob: expected a finite number, "
                       "got 'nan'\n");
    assert_int_equal(d.n_errors, 11);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_out_of_range_values_name_the_bound(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml =
        "sim:\n"
        "  horizon: 0s\n"
        "  step: -5s\n"
        "  fee: -1\n"
        "  seed: 99999999999999999999\n"
        "ltv: 120%\n";
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:2:3: error: sim.horizon: must be > 0s, got 0s\n");
    assert_diag_has(d, "t.yaml:3:3: error: sim.step: a duration cannot be negative, "
                       "got '-5s'\n");
    assert_diag_has(d, "t.yaml:4:3: error: sim.fee: must be >= 0, got -1\n");
    assert_diag_has(d, "sim.seed: integer '99999999999999999999' is too large\n");
    assert_diag_has(d, "t.yaml:6:1: error: ltv: must be < 100%, got 120%\n");
    assert_int_equal(d.n_errors, 5);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_missing_required_key_is_reported_at_its_map(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, "title: x\nsim:\n  step: 1s\n", NULL, &r, &d, &sc),
                     SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml:2:1: error: sim: missing required key 'horizon'\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    /* No sim at all: its required key is still missing, reported at the file. */
    assert_int_equal(load_bind(state, "title: x\n", NULL, &r, &d, &sc), SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml: error: sim: missing required key 'horizon'\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    /* "sim:" with nothing under it is an empty map, not a type error. */
    assert_int_equal(load_bind(state, "sim:\n", NULL, &r, &d, &sc), SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml:1:1: error: sim: missing required key 'horizon'\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_defaults_are_inserted_bound_and_emitted(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, "sim:\n  horizon: 2d\n", NULL, &r, &d, &sc), 0);
    assert_null(d.text);
    assert_int_equal(r.sim.horizon, 2 * SP_DAY);
    assert_int_equal(r.sim.step, SP_SEC);
    assert_int_equal(r.sim.seed, 42);
    assert_false(r.sim.quiet);
    assert_float_equal(r.sim.fee, 0.003, 0);
    assert_string_equal(r.title, "untitled");
    assert_int_equal(r.mode, 0);
    assert_null(r.data);
    assert_float_equal(r.ltv, 0.8, 1e-15);
    assert_float_equal(r.nested.inner.x, 1.5, 0);
    assert_null(r.tokens);
    assert_int_equal(r.n_tokens, 0);
    assert_int_equal(r.n_refs, 0);

    const struct sp_node *step = sp_node_get(sp_node_get(sp_scenario_root(sc), "sim"), "step");
    assert_non_null(step);
    assert_true(step->flags & SP_NODE_DEFAULT);
    assert_int_equal(step->line, 0);
    assert_string_equal(step->file, "t.yaml");

    char *y = sp_scenario_emit(sc);
    assert_non_null(y);
    assert_string_equal(y,
        "sim:\n"
        "  horizon: 2d\n"
        "  step: 1s\n"
        "  seed: 42\n"
        "  quiet: false\n"
        "  fee: 0.003\n"
        "title: untitled\n"
        "mode: fast\n"
        "ltv: 80%\n"
        "nested:\n"
        "  inner:\n"
        "    x: 1.5\n");
    free(y);
    sp_scenario_destroy(sc);
}

static void test_nested_map_defaults_fill_partial_maps(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, MIN_OK "nested:\n  y: 3\n", NULL, &r, &d, &sc), 0);
    assert_int_equal(r.nested.y, 3);
    assert_float_equal(r.nested.inner.x, 1.5, 0);
    const struct sp_node *inner = sp_node_get(sp_node_get(sp_scenario_root(sc), "nested"),
                                              "inner");
    assert_non_null(inner);
    assert_true(inner->flags & SP_NODE_DEFAULT);
    assert_int_equal(inner->kind, SP_NODE_MAP);
    sp_scenario_destroy(sc);

    assert_int_equal(load_bind(state, MIN_OK "nested:\n  inner:\n    x: 7\n", NULL, &r, &d,
                               &sc), 0);
    assert_float_equal(r.nested.inner.x, 7, 0);
    assert_int_equal(r.nested.y, 0);                /* no default: stays zero */
    sp_scenario_destroy(sc);
    assert_null(d.text);
}

static void test_invalid_default_is_reported_at_the_file(void **state)
{
    (void)state;
    static const struct sp_field fields[] = {
        { .key = "d", .type = SP_T_DURATION, .def = "soon", .offset = 0 },
    };
    static const struct sp_schema s = { "bad", NULL, fields, 1, sizeof(sp_time), NULL };
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    sp_time t;
    assert_int_equal(load(&sc, "{}", &d), 0);
    assert_int_equal(sp_scenario_bind(sc, &s, NULL, &t, &d), SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml: error: d: expected a duration such as 12s, 5m, "
                                "6h or 2d, got 'soon'\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_lists_bind_items_with_counts(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml = MIN_OK
        "tokens:\n"
        "  - name: ETH\n"
        "    price: 2000\n"
        "  - {name: USDC, price: 1}\n"
        "  - name: stETH\n"
        "    price: \"1990.5\"\n";
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), 0);
    assert_int_equal(r.n_tokens, 3);
    assert_string_equal(r.tokens[0].name, "ETH");
    assert_float_equal(r.tokens[0].price, 2000, 0);
    assert_string_equal(r.tokens[1].name, "USDC");
    assert_float_equal(r.tokens[1].price, 1, 0);
    assert_float_equal(r.tokens[2].price, 1990.5, 0);   /* quoted numbers are accepted */
    sp_scenario_destroy(sc);

    yaml = MIN_OK
        "tokens:\n"
        "  - name: ETH\n"
        "    price: 2000\n"
        "  - name: 1bad name\n"
        "    price: 0\n"
        "  - 7\n";
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:6:5: error: tokens.1.name: expected a name");
    assert_diag_has(d, "t.yaml:7:5: error: tokens.1.price: must be > 0, got 0\n");
    assert_diag_has(d, "t.yaml:8:5: error: tokens.2: expected a map, got '7'\n");
    assert_int_equal(d.n_errors, 3);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_modules_bind_through_the_registry(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml =
        "sim:\n  horizon: 1d\n"
        "references:\n"
        "  - type: gbm\n"
        "    name: eth_gbm\n"
        "    volatility: 0.8\n"
        "  - type: replay\n"
        "    file: data/p.csv\n"
        "  - type: replay\n"
        "    file: /abs/p.csv\n";
    memset(&r, 0, sizeof r);
    assert_int_equal(sp_scenario_load_string(&sc, "exp/t.yaml", yaml, strlen(yaml), &d), 0);
    assert_string_equal(sp_scenario_dir(sc), "exp");
    assert_int_equal(sp_scenario_bind(sc, &t_root_schema, reg_of(state), &r, &d), 0);
    assert_null(d.text);
    assert_int_equal(r.n_refs, 3);
    assert_ptr_equal(r.refs[0].ops, &t_gbm_ops);
    assert_string_equal(r.refs[0].name, "eth_gbm");
    const struct t_gbm *g = r.refs[0].cfg;
    assert_float_equal(g->volatility, 0.8, 0);
    assert_float_equal(g->drift, 0, 0);
    assert_int_equal(g->dt, SP_MIN);
    assert_string_equal(g->asset, "ETH");
    assert_ptr_equal(r.refs[0].node, sp_node_at(sp_node_get(sp_scenario_root(sc),
                                                            "references"), 0));
    assert_ptr_equal(r.refs[1].ops, &t_replay_ops);
    assert_null(r.refs[1].name);
    assert_string_equal(((const struct t_replay *)r.refs[1].cfg)->file, "exp/data/p.csv");
    assert_string_equal(((const struct t_replay *)r.refs[2].cfg)->file, "/abs/p.csv");
    sp_scenario_destroy(sc);
}

static void test_unknown_module_type_suggests_registered_types(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml = MIN_OK
        "references:\n"
        "  - type: gmb\n"               /* 4 */
        "    volatility: 0.8\n"
        "  - type: heston\n"            /* 6 */
        "  - volatility: 1\n"           /* 7 */
        "  - type: gbm\n"               /* 8 */
        "    volatilty: 1\n"            /* 9 */
        "  - type: gbm\n"               /* 10 */
        "    name: bad name\n"          /* 11 */
        "    volatility: 1\n";
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), SP_ECONFIG);
    assert_diag_has(d, "t.yaml:4:5: error: references.0.type: unknown reference type 'gmb' "
                       "(did you mean 'gbm'?)\n");
    /* Only types of this kind are offered (not the oracle "gbx"). */
    assert_diag_has(d, "t.yaml:6:5: error: references.1.type: unknown reference type "
                       "'heston'; expected one of: gbm, replay\n");
    assert_diag_has(d, "t.yaml:7:5: error: references.2: missing required key 'type' "
                       "(one of: gbm, replay)\n");
    assert_diag_has(d, "t.yaml:9:5: error: references.3.volatilty: unknown key 'volatilty' "
                       "(did you mean 'volatility'?)\n");
    assert_diag_has(d, "t.yaml:8:5: error: references.3: missing required key 'volatility'\n");
    assert_diag_has(d, "t.yaml:11:5: error: references.4.name: expected a name");
    assert_int_equal(d.n_errors, 6);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_check_callbacks_run_after_clean_fields(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, "sim:\n  horizon: 1d\n  step: 2d\n", NULL, &r, &d, &sc),
                     SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml:3:3: error: sim.step: step (2d) must not exceed "
                                "horizon (1d)\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    /* A field error in the map: the cross-field check is skipped. */
    assert_int_equal(load_bind(state, "sim:\n  horizon: 1d\n  step: 2d\n  seed: x\n", NULL,
                               &r, &d, &sc), SP_ECONFIG);
    assert_int_equal(d.n_errors, 1);
    assert_diag_has(d, "sim.seed: expected an integer");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    /* Module checks see the root struct (tokens were bound before). */
    const char *yaml = MIN_OK
        "tokens:\n  - {name: ETH, price: 1}\n"
        "references:\n  - type: gbm\n    volatility: 1\n    asset: BTC\n";
    assert_int_equal(load_bind(state, yaml, NULL, &r, &d, &sc), SP_ECONFIG);
    assert_string_equal(d.text, "t.yaml:8:5: error: references.0.asset: asset 'BTC' is not "
                                "among the tokens\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_error_cap_truncates_once(void **state)
{
    struct sp_diag d = { .max_errors = 3 };
    struct sp_scenario *sc;
    struct t_root r;
    assert_int_equal(load_bind(state, MIN_OK "a1: 1\na2: 1\na3: 1\na4: 1\na5: 1\na6: 1\n",
                               NULL, &r, &d, &sc), SP_ECONFIG);
    assert_int_equal(d.n_errors, 6);
    size_t lines = 0;
    for (const char *p = d.text; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 4);
    const char *more = strstr(d.text, "(more errors omitted)\n");
    assert_non_null(more);
    assert_null(strstr(more + 1, "(more errors omitted)"));
    assert_null(strstr(d.text, "a4"));
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    /* 0 means 50. */
    struct sp_diag d50 = { 0 };
    for (int i = 0; i < 60; i++) sp_diag_error_at(&d50, "f", i + 1, 1, "e%d", i);
    assert_int_equal(d50.n_errors, 60);
    assert_non_null(strstr(d50.text, "f:50:1: error: e49\n(more errors omitted)\n"));
    assert_null(strstr(d50.text, "e50"));
    sp_diag_release(&d50);
}

static void test_diag_locations_for_files_sets_and_nothing(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    sp_diag_error_at(&d, "a.yaml", 3, 7, "x %d", 1);
    sp_diag_error_at(&d, "a.yaml", 0, 0, "y");
    sp_diag_error_at(&d, NULL, 0, 0, "z");
    sp_diag_error(&d, NULL, "w");
    assert_string_equal(d.text, "a.yaml:3:7: error: x 1\na.yaml: error: y\nerror: z\n"
                                "error: w\n");
    sp_diag_release(&d);
    assert_null(d.text);
    sp_diag_error(NULL, NULL, "ignored");       /* a NULL diag swallows */
    sp_diag_print(&d, stdout);                  /* empty: prints nothing */
}

/* ---- --set -------------------------------------------------------------------------- */

static void test_set_overrides_map_keys_indices_and_named_items(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *yaml =
        "sim:\n  horizon: 1d\n"
        "tokens:\n  - {name: ETH, price: 2000}\n  - {name: USDC, price: 1}\n"
        "references:\n"
        "  - {type: gbm, name: eth_gbm, volatility: 0.8}\n"
        "  - {type: gbm, asset: USDC, volatility: 0.01}\n";
    const char *sets[] = {
        "sim.horizon=3d",                    /* map key */
        "tokens.1.price=0.99",               /* list index */
        "references.eth_gbm.volatility=0.5", /* item by name */
        "references.USDC.drift=0.1",         /* item by asset, creating a key */
        "sim.quiet=yes",                     /* a default key given by --set */
        "title='quoted text'",
        NULL,
    };
    assert_int_equal(load_bind(state, yaml, sets, &r, &d, &sc), 0);
    assert_null(d.text);
    assert_int_equal(r.sim.horizon, 3 * SP_DAY);
    assert_float_equal(r.tokens[1].price, 0.99, 0);
    assert_float_equal(((const struct t_gbm *)r.refs[0].cfg)->volatility, 0.5, 0);
    assert_float_equal(((const struct t_gbm *)r.refs[1].cfg)->drift, 0.1, 0);
    assert_true(r.sim.quiet);
    assert_string_equal(r.title, "quoted text");

    const struct sp_node *h = sp_node_get(sp_node_get(sp_scenario_root(sc), "sim"), "horizon");
    assert_true(h->flags & SP_NODE_OVERRIDE);
    assert_int_equal(h->line, 0);
    assert_string_equal(h->file, "--set sim.horizon=3d");
    char buf[64];
    assert_string_equal(sp_node_path(h, buf, sizeof buf), "sim.horizon");
    const struct sp_node *t = sp_node_get(sp_scenario_root(sc), "title");
    assert_true(t->flags & SP_NODE_QUOTED);
    sp_scenario_destroy(sc);
}

static void test_set_parses_values_as_yaml_and_creates_keys(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct t_root r;
    const char *sets[] = {
        "tokens=[{name: A, price: 1}, {name: B, price: 2}]",
        "nested.inner={x: 9}",
        "nested.y=4",
        NULL,
    };
    assert_int_equal(load_bind(state, MIN_OK, sets, &r, &d, &sc), 0);
    assert_int_equal(r.n_tokens, 2);
    assert_string_equal(r.tokens[1].name, "B");
    assert_float_equal(r.nested.inner.x, 9, 0);
    assert_int_equal(r.nested.y, 4);
    const struct sp_node *tok = sp_node_get(sp_scenario_root(sc), "tokens");
    assert_int_equal(tok->kind, SP_NODE_SEQ);
    assert_true(sp_node_at(tok, 0)->flags & SP_NODE_OVERRIDE);
    assert_ptr_equal(sp_node_at(tok, 0)->parent, tok);
    sp_scenario_destroy(sc);

    /* A key the schema does not know, made by --set, is reported against it. */
    const char *bad[] = { "sim.hoirzon=2d", NULL };
    assert_int_equal(load_bind(state, MIN_OK, bad, &r, &d, &sc), SP_ECONFIG);
    assert_string_equal(d.text, "--set sim.hoirzon=2d: error: sim.hoirzon: unknown key "
                                "'hoirzon' (did you mean 'horizon'?)\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);

    const char *badval[] = { "sim.horizon=abc", NULL };
    assert_int_equal(load_bind(state, MIN_OK, badval, &r, &d, &sc), SP_ECONFIG);
    assert_string_equal(d.text, "--set sim.horizon=abc: error: sim.horizon: expected a "
                                "duration such as 12s, 5m, 6h or 2d, got 'abc'\n");
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
}

static void test_set_rejects_bad_paths(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    assert_int_equal(load(&sc, "sim:\n  horizon: 1d\nempty:\n"
                               "tokens:\n  - {name: ETH, price: 1}\n", &d), 0);
    char *before = sp_scenario_emit(sc);

    assert_int_equal(sp_scenario_set(sc, "sim.horizon", &d), SP_EINVAL);
    assert_string_equal(d.text, "--set sim.horizon: error: expected KEY=VALUE, e.g. "
                                "sim.horizon=2d (there is no '=')\n");
    sp_diag_release(&d);

    assert_int_equal(sp_scenario_set(sc, "sim..x=1", &d), SP_EINVAL);
    assert_diag_has(d, "--set sim..x=1: error: empty path segment in 'sim..x'");
    sp_diag_release(&d);
    assert_int_equal(sp_scenario_set(sc, "=1", &d), SP_EINVAL);
    assert_int_equal(sp_scenario_set(sc, "sim.=1", &d), SP_EINVAL);
    sp_diag_release(&d);

    assert_int_equal(sp_scenario_set(sc, "tokens.5.price=1", &d), SP_ECONFIG);
    assert_string_equal(d.text, "--set tokens.5.price=1: error: index 5 is out of range: "
                                "'tokens' has 1 item (indices start at 0)\n");
    sp_diag_release(&d);

    assert_int_equal(sp_scenario_set(sc, "sim.horizon.x=1", &d), SP_ECONFIG);
    assert_string_equal(d.text, "--set sim.horizon.x=1: error: cannot set 'sim.horizon.x': "
                                "'sim.horizon' is a single value ('1d'), not a map or list\n");
    sp_diag_release(&d);

    assert_int_equal(sp_scenario_set(sc, "tokens.BTC.price=1", &d), SP_ECONFIG);
    assert_diag_has(d, "no item named 'BTC' in the list 'tokens'");
    sp_diag_release(&d);

    assert_int_equal(sp_scenario_set(sc, "sim.step=[1,", &d), SP_ECONFIG);
    assert_diag_has(d, "--set sim.step=[1,: error: in the value: ");
    sp_diag_release(&d);

    /* Nothing above changed the tree. */
    char *after = sp_scenario_emit(sc);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* A null value ("empty:") may be descended into: it becomes a map. */
    assert_int_equal(sp_scenario_set(sc, "empty.a.b=1", &d), 0);
    const struct sp_node *b = sp_node_get(sp_node_get(sp_node_get(sp_scenario_root(sc),
                                                                  "empty"), "a"), "b");
    assert_non_null(b);
    assert_string_equal(b->value, "1");
    assert_null(d.text);
    sp_scenario_destroy(sc);
}

/* ---- round trip and independence ---------------------------------------------------- */

static void assert_roots_equal(const struct t_root *a, const struct t_root *b)
{
    assert_string_equal(a->title, b->title);
    assert_int_equal(a->sim.horizon, b->sim.horizon);
    assert_int_equal(a->sim.step, b->sim.step);
    assert_int_equal(a->sim.seed, b->sim.seed);
    assert_int_equal(a->sim.quiet, b->sim.quiet);
    assert_true(a->sim.fee == b->sim.fee);
    assert_int_equal(a->n_tokens, b->n_tokens);
    for (size_t i = 0; i < a->n_tokens; i++) {
        assert_string_equal(a->tokens[i].name, b->tokens[i].name);
        assert_true(a->tokens[i].price == b->tokens[i].price);
    }
    assert_int_equal(a->n_refs, b->n_refs);
    for (size_t i = 0; i < a->n_refs; i++) {
        assert_ptr_equal(a->refs[i].ops, b->refs[i].ops);
        if (a->refs[i].name) assert_string_equal(a->refs[i].name, b->refs[i].name);
        else assert_null(b->refs[i].name);
        if (a->refs[i].ops == &t_gbm_ops) {
            const struct t_gbm *x = a->refs[i].cfg, *y = b->refs[i].cfg;
            assert_true(x->volatility == y->volatility && x->drift == y->drift);
            assert_int_equal(x->dt, y->dt);
            assert_string_equal(x->asset, y->asset);
        }
    }
    assert_int_equal(a->mode, b->mode);
    assert_true(a->ltv == b->ltv);
    assert_true(a->nested.inner.x == b->nested.inner.x);
    assert_int_equal(a->nested.y, b->nested.y);
}

static void test_emit_then_reload_binds_the_same_values(void **state)
{
    struct sp_diag d = { 0 };
    struct sp_scenario *sc, *sc2;
    struct t_root a, b;
    const char *yaml =
        "# a comment that is not kept\n"
        "title: \"123\"\n"
        "sim:\n  horizon: 1d6h\n  fee: 1e-4\n"
        "tokens:\n  - name: ETH\n    price: 2000.125\n  - {name: 'USD.c', price: 1}\n"
        "references:\n  - type: gbm\n    name: g\n    volatility: 0.8\n    dt: 90s\n"
        "mode: paced\n"
        "ltv: 0.75\n";
    const char *sets[] = { "tokens.ETH.price=1999.5", "sim.seed=7", NULL };
    assert_int_equal(load_bind(state, yaml, sets, &a, &d, &sc), 0);
    char *text = sp_scenario_emit(sc);
    assert_non_null(text);
    assert_non_null(strstr(text, "title: \"123\"\n"));    /* quoted stays quoted */
    assert_non_null(strstr(text, "  seed: 7\n"));
    assert_int_equal(sp_scenario_load_string(&sc2, "resolved.yaml", text, strlen(text), &d), 0);
    memset(&b, 0, sizeof b);
    assert_int_equal(sp_scenario_bind(sc2, &t_root_schema, reg_of(state), &b, &d), 0);
    assert_null(d.text);
    assert_roots_equal(&a, &b);
    assert_string_equal(b.title, "123");
    /* Emitting the reloaded scenario changes nothing further. */
    char *text2 = sp_scenario_emit(sc2);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    sp_scenario_destroy(sc2);
    sp_scenario_destroy(sc);
}

static void test_two_scenarios_live_side_by_side(void **state)
{
    struct sp_diag d1 = { 0 }, d2 = { 0 };
    struct sp_scenario *s1, *s2;
    struct t_root r1, r2;
    assert_int_equal(load_bind(state, "sim:\n  horizon: 1h\ntokens:\n  - {name: A, price: 1}\n",
                               NULL, &r1, &d1, &s1), 0);
    assert_int_equal(load_bind(state, "sim:\n  horizon: 2h\n  stepp: 1s\n", NULL, &r2, &d2, &s2),
                     SP_ECONFIG);
    assert_null(d1.text);
    assert_non_null(d2.text);
    assert_int_equal(d2.n_errors, 1);
    assert_int_equal(r1.sim.horizon, SP_HOUR);
    assert_int_equal(r2.sim.horizon, 2 * SP_HOUR);
    sp_scenario_destroy(s2);
    /* s1 and its strings survive s2's end. */
    assert_string_equal(r1.tokens[0].name, "A");
    assert_int_equal(r1.n_tokens, 1);
    sp_scenario_destroy(s1);
    sp_diag_release(&d2);
    sp_scenario_destroy(NULL);
}

static void test_arena_serves_large_and_many_allocations_zeroed(void **state)
{
    (void)state;
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    assert_int_equal(load(&sc, "a: 1\n", &d), 0);
    unsigned char *big = sp_scenario_alloc(sc, 1 << 20);
    assert_non_null(big);
    for (size_t i = 0; i < (1u << 20); i += 4096) assert_int_equal(big[i], 0);
    for (int i = 0; i < 10000; i++) {
        double *p = sp_scenario_alloc(sc, sizeof(double) * 3);
        assert_non_null(p);
        assert_true(((uintptr_t)p % _Alignof(max_align_t)) == 0);
        assert_true(p[0] == 0 && p[2] == 0);
        p[2] = 1;
    }
    sp_scenario_destroy(sc);
}

static void test_markdown_documents_schema_and_module_types(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sp_schema_markdown(f, &t_root_schema, reg_of(state));
    fclose(f);
    assert_non_null(buf);
    const char *root = strstr(buf, "## Test scenario\n");
    const char *sim = strstr(buf, "## `sim`\n");
    const char *inner = strstr(buf, "## `nested.inner`\n");
    const char *toks = strstr(buf, "## `tokens[]`\n");
    const char *gbm = strstr(buf, "## `references[]` type `gbm`\n");
    const char *replay = strstr(buf, "## `references[]` type `replay`\n");
    assert_non_null(root);
    assert_non_null(sim);
    assert_non_null(inner);
    assert_non_null(toks);
    assert_non_null(gbm);
    assert_non_null(replay);
    assert_true(root < sim && sim < toks && toks < gbm && gbm < replay);
    assert_non_null(strstr(buf, "| `horizon` **(required)** | duration | — | > 0s | "
                                "How long the run lasts. |\n"));
    assert_non_null(strstr(buf, "| `fee` | number (fraction of notional) | `0.003` | >= 0 | "
                                "Fee \\| with a pipe. |\n"));
    assert_non_null(strstr(buf, "| `ltv` | percentage | `80%` | >= 0%, < 100% | "
                                "Loan to value. |\n"));
    assert_non_null(strstr(buf, "| `mode` | one of: fast, paced | `fast` |"));
    assert_non_null(strstr(buf, "| `references` | list of reference modules "
                                "(`type:` gbm, replay) |"));
    assert_non_null(strstr(buf, "Geometric Brownian motion."));
    assert_non_null(strstr(buf, "| `type` **(required)** | `gbm` |"));
    assert_null(strstr(buf, "internal_knob"));
    assert_null(strstr(buf, "gbx"));              /* other kinds are not listed here */
    /* Deterministic. */
    char *buf2 = NULL;
    size_t len2 = 0;
    f = open_memstream(&buf2, &len2);
    sp_schema_markdown(f, &t_root_schema, reg_of(state));
    fclose(f);
    assert_string_equal(buf, buf2);
    free(buf);
    free(buf2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parses_units_decimals_and_compounds),
        cmocka_unit_test(test_fraction_parses_percent_and_plain),
        cmocka_unit_test(test_format_duration_is_compact),
        cmocka_unit_test(test_edit_distance_counts_transpositions_once),
        cmocka_unit_test(test_suggest_finds_typos_and_prefixes_only),
        cmocka_unit_test(test_yaml_syntax_error_reports_line_and_column),
        cmocka_unit_test(test_yaml_rejects_duplicates_aliases_non_map_roots),
        cmocka_unit_test(test_tree_nodes_keep_positions_and_paths),
        cmocka_unit_test(test_load_file_reports_missing_file_and_sets_dir),
        cmocka_unit_test(test_unknown_key_suggests_nearest_or_lists_keys),
        cmocka_unit_test(test_wrong_types_say_what_was_expected),
        cmocka_unit_test(test_out_of_range_values_name_the_bound),
        cmocka_unit_test(test_missing_required_key_is_reported_at_its_map),
        cmocka_unit_test(test_defaults_are_inserted_bound_and_emitted),
        cmocka_unit_test(test_nested_map_defaults_fill_partial_maps),
        cmocka_unit_test(test_invalid_default_is_reported_at_the_file),
        cmocka_unit_test(test_lists_bind_items_with_counts),
        cmocka_unit_test(test_modules_bind_through_the_registry),
        cmocka_unit_test(test_unknown_module_type_suggests_registered_types),
        cmocka_unit_test(test_check_callbacks_run_after_clean_fields),
        cmocka_unit_test(test_error_cap_truncates_once),
        cmocka_unit_test(test_diag_locations_for_files_sets_and_nothing),
        cmocka_unit_test(test_set_overrides_map_keys_indices_and_named_items),
        cmocka_unit_test(test_set_parses_values_as_yaml_and_creates_keys),
        cmocka_unit_test(test_set_rejects_bad_paths),
        cmocka_unit_test(test_emit_then_reload_binds_the_same_values),
        cmocka_unit_test(test_two_scenarios_live_side_by_side),
        cmocka_unit_test(test_arena_serves_large_and_many_allocations_zeroed),
        cmocka_unit_test(test_markdown_documents_schema_and_module_types),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
