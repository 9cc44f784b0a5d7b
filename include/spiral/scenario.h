/*
 * spiral/scenario.h — scenario files: YAML tree, schema tables, validation.
 *
 * A scenario is read by libyaml into a tree of `sp_node`s that remember where
 * each value came from (file, line, column — or the `--set` argument that put
 * it there).  Overrides (`--set a.b.c=value`) are applied to the tree, then the
 * tree is validated *and bound* against const schema tables in one pass:
 *
 *   - every key must be in the schema (else: "unknown key 'volatilty'
 *     (did you mean 'volatility'?)"),
 *   - every scalar must parse as its declared type and unit and lie in range,
 *   - required keys must be present; absent keys take the schema's default,
 *     which is *inserted into the tree* (flag SP_NODE_DEFAULT) so the resolved
 *     scenario written to the output shows every value that was used,
 *   - the schema's `check` callback runs cross-field rules on the bound struct.
 *
 * Binding writes each value into a plain C config struct at the field's
 * `offset`, so modules read typed values (`cfg->volatility`), never strings.
 * Errors are collected into an `sp_diag` (all of them, up to a limit), each
 * as "file:line:col: error: key.path: message".
 *
 * Ownership: the tree, its strings and every bound array live in the
 * scenario's arena and die with sp_scenario_destroy().
 */
#ifndef SPIRAL_SCENARIO_H
#define SPIRAL_SCENARIO_H

#include <stdbool.h>
#include <stdio.h>
#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- diagnostics ------------------------------------------------------ */

struct sp_node;

/* Collected error messages.  Zero-initialise, use, then sp_diag_release(). */
struct sp_diag {
    char *text;          /* all messages, one per line, NUL-terminated */
    size_t len, cap;
    int n_errors;
    int max_errors;      /* stop recording after this many (0 = 50) */
};

/* Record an error at `at` (may be NULL): "file:line:col: error: path: msg". */
void sp_diag_error(struct sp_diag *d, const struct sp_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record an error with an explicit location (file may be NULL; line 0 = none). */
void sp_diag_error_at(struct sp_diag *d, const char *file, int line, int col,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void sp_diag_print(const struct sp_diag *d, FILE *out);
void sp_diag_release(struct sp_diag *d);

/* ---- the tree ----------------------------------------------------------- */

enum sp_node_kind { SP_NODE_SCALAR, SP_NODE_MAP, SP_NODE_SEQ };

enum {
    SP_NODE_DEFAULT  = 1u << 0, /* inserted from a schema default */
    SP_NODE_OVERRIDE = 1u << 1, /* set by --set */
    SP_NODE_QUOTED   = 1u << 2  /* scalar was quoted in YAML: always a string */
};

struct sp_node {
    enum sp_node_kind kind;
    unsigned flags;
    const char *file;          /* scenario path, or "--set KEY=VALUE" */
    int line, col;             /* 1-based; 0 when unknown (defaults) */
    const char *key;           /* key in the parent map, else NULL */
    const char *value;         /* scalar text, else NULL */
    struct sp_node *parent;
    struct sp_node *child;     /* first child (map entries or seq items) */
    struct sp_node *next;      /* next sibling */
    size_t n_children;
};

/* The child of map `n` with key `key`, or NULL. */
struct sp_node *sp_node_get(const struct sp_node *n, const char *key);
/* The i-th child of `n`, or NULL. */
struct sp_node *sp_node_at(const struct sp_node *n, size_t i);
/* Writes the dotted key path of `n` ("references.0.volatility") into buf. */
const char *sp_node_path(const struct sp_node *n, char *buf, size_t size);

/* ---- schema tables ------------------------------------------------------ */

enum sp_ftype {
    SP_T_NUMBER,   /* double */
    SP_T_INT,      /* int64_t */
    SP_T_BOOL,     /* bool: true/false/yes/no/on/off */
    SP_T_STRING,   /* const char * */
    SP_T_NAME,     /* const char *, identifier: [A-Za-z_][A-Za-z0-9_.-]* */
    SP_T_DURATION, /* sp_time; "500ms", "12s", "5m", "6h", "2d", "1w"; a unit is
                      required except for 0 */
    SP_T_FRACTION, /* double; "80%" or 0.8 */
    SP_T_ENUM,     /* int index into the NULL-terminated names in `sub` */
    SP_T_PATH,     /* const char *, resolved relative to the scenario's directory */
    SP_T_MAP,      /* embedded struct at offset; `sub` is a const struct sp_schema * */
    SP_T_LIST,     /* list of maps: `sub` is the element schema; binds
                      `void *` array at offset and size_t count at count_offset */
    SP_T_MODULES   /* list of maps each with `type:` naming a registered module of
                      kind `sub` (a const char *); binds struct sp_module_cfg *
                      array at offset and size_t count at count_offset */
    ,SP_T_DIST     /* struct sp_dist (spiral/dist.h): a number (a constant) or a
                      map {dist: uniform|normal|lognormal|exponential, ...} */
};

enum {
    SP_F_REQUIRED = 1u << 0,
    SP_F_MIN      = 1u << 1,   /* value >= min (canonical units: seconds for */
    SP_F_MAX      = 1u << 2,   /*   durations, fraction for %) */
    SP_F_MIN_EXCL = 1u << 3,   /* value > min */
    SP_F_MAX_EXCL = 1u << 4,   /* value < max */
    SP_F_HIDDEN   = 1u << 5    /* not documented (internal/test keys) */
};

struct sp_schema;

struct sp_field {
    const char *key;
    enum sp_ftype type;
    unsigned flags;
    double min, max;           /* used with SP_F_MIN/MAX(_EXCL) */
    const char *def;           /* default as scenario text, NULL = none */
    const char *units;         /* for docs, e.g. "USD", "per year" */
    const char *doc;           /* one or two sentences, for docs/scenario.md */
    size_t offset;             /* where the bound value goes */
    const void *sub;           /* see enum sp_ftype */
    size_t count_offset;       /* SP_T_LIST / SP_T_MODULES */
};

/* Context handed to cross-field checks. */
struct sp_check_ctx {
    struct sp_diag *diag;
    const struct sp_node *node;    /* the map being checked */
    const char *scenario_dir;      /* for modules that open files */
    void *root;                    /* the root bound struct (for lookups) */
};

struct sp_schema {
    const char *name;          /* for docs, e.g. "references[type: gbm]" */
    const char *doc;
    const struct sp_field *fields;
    size_t n_fields;
    size_t struct_size;        /* size of the bound struct */
    /* Cross-field rules, called after the fields of one map are bound without
     * error.  Report with sp_diag_error(ctx->diag, sp_node_get(ctx->node,
     * "key"), ...).  Returns 0 or SP_ECONFIG. */
    int (*check)(void *bound, const struct sp_check_ctx *ctx);
};

/* The bound form of one SP_T_MODULES item. */
struct sp_module_cfg {
    const struct sp_module_ops *ops;  /* from the registry, by `type:` */
    const char *name;                 /* the item's `name:` value, or NULL */
    void *cfg;                        /* bound struct (ops->schema->struct_size) */
    const struct sp_node *node;       /* the item's map, for later errors */
};

/* ---- scenarios ---------------------------------------------------------- */

struct sp_scenario;
struct sp_registry;

/* Parse a YAML file.  YAML errors go to `d` with line:column.  Returns 0,
 * SP_EIO (unreadable: the message names the path and errno text) or
 * SP_ECONFIG. */
int sp_scenario_load(struct sp_scenario **out, const char *path, struct sp_diag *d);
/* Same from memory; `name` stands in for the path in messages. */
int sp_scenario_load_string(struct sp_scenario **out, const char *name,
                            const char *text, size_t len, struct sp_diag *d);

/* Apply "a.b.c=value".  Path segments name map keys, list indices (0-based)
 * or list items by their `name:` (or `asset:`) value; missing map keys are
 * created.  `value` is parsed as YAML ("[1, 2]" is a list).  Errors: no '=',
 * empty segment, index out of range, descending into a scalar. */
int sp_scenario_set(struct sp_scenario *sc, const char *assignment, struct sp_diag *d);

/* Validate and bind the whole tree against `root` into `out` (a zeroed
 * struct of root->struct_size).  Module types resolve through `reg`. */
int sp_scenario_bind(struct sp_scenario *sc, const struct sp_schema *root,
                     const struct sp_registry *reg, void *out, struct sp_diag *d);

/* The resolved scenario (defaults included) as YAML text; caller frees. */
char *sp_scenario_emit(const struct sp_scenario *sc);

const struct sp_node *sp_scenario_root(const struct sp_scenario *sc);
const char *sp_scenario_path(const struct sp_scenario *sc);
const char *sp_scenario_dir(const struct sp_scenario *sc);
/* Arena allocation tied to the scenario's lifetime (zeroed). */
void *sp_scenario_alloc(struct sp_scenario *sc, size_t size);
void sp_scenario_destroy(struct sp_scenario *sc);

/* ---- scalar parsers (shared with --set and the CLI) ---------------------- */

/* Parse a duration ("12s", "1.5h", "2d", "0"); returns 0 or SP_EINVAL. */
int sp_parse_duration(const char *s, sp_time *out);
/* Parse "80%" or "0.8". */
int sp_parse_fraction(const char *s, double *out);
/* Format a duration compactly ("1d6h", "90s", "250ms"). */
const char *sp_format_duration(sp_time t, char *buf, size_t size);

/* Damerau-Levenshtein (optimal string alignment) distance. */
size_t sp_edit_distance(const char *a, const char *b);
/* The candidate closest to `word` if near enough to be a typo, else NULL. */
const char *sp_suggest(const char *word, const char *const *candidates, size_t n);

/* Write the Markdown reference for `root` and every registered module type. */
void sp_schema_markdown(FILE *out, const struct sp_schema *root,
                        const struct sp_registry *reg);

#ifdef __cplusplus
}
#endif
#endif
