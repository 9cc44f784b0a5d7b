/*
 * schema.c — validate a scenario tree against const schema tables and bind
 * it into plain C config structs, in one recursive pass; and write the same
 * tables out as the Markdown reference (docs/scenario.md).
 *
 * bind_map() walks one YAML map against one struct sp_schema:
 *   1. every key present must be a field (else a typo suggestion, or the list
 *      of valid keys),
 *   2. every field is bound from its node, or — when absent — reported if
 *      required, or given its default (scalar fields only; an absent list is
 *      empty): the default text becomes a scalar node
 *      in the tree (SP_NODE_DEFAULT, line 0) and is bound exactly like user
 *      text, so the emitted scenario shows every value the run used.  An
 *      absent nested map is bound as an empty map so its own defaults and
 *      required keys apply; its node joins the tree only if it has defaults,
 *   3. if nothing in the map (or below it) failed, the schema's check()
 *      callback runs cross-field rules on the bound struct.
 * Errors never stop the walk: the user gets every problem in one go (up to
 * the diag's cap), and the result is SP_ECONFIG if there was any.
 *
 * Values are written at the field's offset with memcpy in the field's C type
 * (double, int64_t, bool, int, sp_time, const char *); strings and arrays
 * live in the scenario's arena.  A node whose value is YAML null ("key:" with
 * nothing after it) is an empty map where a map is expected, an empty list
 * where a list is, and "nothing" (an error) for scalar fields.
 *
 * The binder mutates the tree (defaults, null → map); sp_scenario_bind takes
 * a non-const scenario for that reason, and the const root from
 * sp_scenario_root() is cast back to what it is: memory the scenario owns.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/dist.h"

struct bnd {
    struct sp_scenario *sc;
    const struct sp_registry *reg;
    struct sp_diag *d;
    void *root;                   /* the root bound struct, for check() */
    const char *dir;
    const char *file;             /* what default nodes record as their file */
    int errors;
    bool nomem;
};

static void bnd_error(struct bnd *b, const struct sp_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bnd_error(struct bnd *b, const struct sp_node *at, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->errors++;
    sp_diag_error(b->d, at, "%s", msg);
}

static bool bnd_is_null(const struct sp_node *n)
{
    if (n->kind != SP_NODE_SCALAR || (n->flags & SP_NODE_QUOTED)) return false;
    const char *v = n->value ? n->value : "";
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

/* "'text'", "nothing", "a map" or "a list": what the user wrote. */
static const char *bnd_got(const struct sp_node *n, char *buf, size_t size)
{
    if (n->kind == SP_NODE_MAP) return "a map";
    if (n->kind == SP_NODE_SEQ) return "a list";
    if (bnd_is_null(n)) return "nothing";
    snprintf(buf, size, "'%s'", n->value);
    return buf;
}

/* "a, b, c" from a NULL-terminated or counted list of names. */
static void bnd_join(char *buf, size_t size, const char *const *names, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && names[i]; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= size - len) {
            if (size > 4) memcpy(buf + size - 4, "...", 4);
            return;
        }
        len += (size_t)w;
    }
}

static void bnd_enum_list(const struct sp_field *f, char *buf, size_t size)
{
    const char *const *names = f->sub;
    size_t n = 0;
    while (names && names[n]) n++;
    bnd_join(buf, size, names ? names : (const char *const[]){ NULL }, n);
}

static const char *bnd_expected(const struct sp_field *f, char *buf, size_t size)
{
    switch (f->type) {
    case SP_T_NUMBER:   return "a number";
    case SP_T_INT:      return "an integer";
    case SP_T_BOOL:     return "true or false";
    case SP_T_STRING:   return "a string";
    case SP_T_NAME:     return "a name (letters, digits, '_', '.' or '-', "
                               "starting with a letter or '_')";
    case SP_T_DURATION: return "a duration such as 12s, 5m, 6h or 2d";
    case SP_T_FRACTION: return "a percentage such as 80% or a fraction such as 0.8";
    case SP_T_PATH:     return "a file path";
    case SP_T_MAP:      return "a map";
    case SP_T_LIST:     return "a list";
    case SP_T_MODULES:  return "a list";
    case SP_T_DIST:     return "a number or a map {dist: uniform|normal|lognormal|exponential, ...}";
    case SP_T_ENUM: {
        char list[768];
        bnd_enum_list(f, list, sizeof list);
        snprintf(buf, size, "one of: %s", list);
        return buf;
    }
    }
    return "a value";
}

static void bnd_mismatch(struct bnd *b, const struct sp_field *f, const struct sp_node *n)
{
    char e[1024], g[512];
    bnd_error(b, n, "expected %s, got %s", bnd_expected(f, e, sizeof e),
              bnd_got(n, g, sizeof g));
}

static void bnd_store(void *out, const struct sp_field *f, const void *v, size_t size)
{
    memcpy((char *)out + f->offset, v, size);
}

static char *bnd_strdup(struct bnd *b, const char *s)
{
    size_t n = strlen(s);
    char *p = sp_scenario_alloc(b->sc, n + 1);
    if (!p) { b->nomem = true; return NULL; }
    memcpy(p, s, n);
    return p;
}

/* A bound value in the field's own units, for range messages. */
static void bnd_format(const struct sp_field *f, double v, char *buf, size_t size)
{
    if (f->type == SP_T_DURATION)
        sp_format_duration((sp_time)llround(v * 1e6), buf, size);
    else if (f->type == SP_T_FRACTION)
        snprintf(buf, size, "%.10g%%", v * 100.0);
    else
        snprintf(buf, size, "%.10g", v);
}

/* Checks `v` (canonical units) against the field's bounds. */
static bool bnd_range(struct bnd *b, const struct sp_field *f, const struct sp_node *n, double v)
{
    const char *op = NULL;
    double lim = 0;
    if ((f->flags & SP_F_MIN) && !(v >= f->min)) { op = ">="; lim = f->min; }
    else if ((f->flags & SP_F_MIN_EXCL) && !(v > f->min)) { op = ">"; lim = f->min; }
    else if ((f->flags & SP_F_MAX) && !(v <= f->max)) { op = "<="; lim = f->max; }
    else if ((f->flags & SP_F_MAX_EXCL) && !(v < f->max)) { op = "<"; lim = f->max; }
    if (!op) return true;
    char ls[64], vs[64];
    bnd_format(f, lim, ls, sizeof ls);
    bnd_format(f, v, vs, sizeof vs);
    bnd_error(b, n, "must be %s %s, got %s", op, ls, vs);
    return false;
}

static bool bnd_parse_number(const char *s, double *out)
{
    if (strpbrk(s, "xX")) return false;     /* no hex floats: "0x1p3" */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return false;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return false;
    *out = v;
    return true;
}

static bool bnd_is_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-')) return false;
    return true;
}

static int bnd_bool(const char *s)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) return 1;
        if (!strcasecmp(s, no[i])) return 0;
    }
    return -1;
}

static void bnd_duration(struct bnd *b, const struct sp_field *f, const struct sp_node *n,
                         void *out)
{
    const char *v = n->value;
    sp_time t;
    if (sp_parse_duration(v, &t)) {
        const char *s = v;
        double x;
        while (isspace((unsigned char)*s)) s++;
        if (*s == '-')
            bnd_error(b, n, "a duration cannot be negative, got '%s'", v);
        else if (bnd_parse_number(v, &x) && isfinite(x) && x != 0.0)
            bnd_error(b, n, "duration '%s' needs a unit (us, ms, s, m, h, d, w)", v);
        else
            bnd_mismatch(b, f, n);
        return;
    }
    if (!bnd_range(b, f, n, sp_time_sec(t))) return;
    bnd_store(out, f, &t, sizeof t);
}

static void bnd_path(struct bnd *b, const struct sp_field *f, const struct sp_node *n, void *out)
{
    const char *v = n->value;
    const char *p;
    if (v[0] == '/' || !strcmp(b->dir, ".")) {
        p = bnd_strdup(b, v);
    } else {
        size_t dl = strlen(b->dir), vl = strlen(v);
        char *j = sp_scenario_alloc(b->sc, dl + vl + 2);
        if (j) {
            memcpy(j, b->dir, dl);
            j[dl] = dl && b->dir[dl - 1] == '/' ? '\0' : '/';
            strcat(j, v);
        } else {
            b->nomem = true;
        }
        p = j;
    }
    if (p) bnd_store(out, f, &p, sizeof p);
}

static void bnd_enum(struct bnd *b, const struct sp_field *f, const struct sp_node *n, void *out)
{
    const char *const *names = f->sub;
    size_t count = 0;
    while (names && names[count]) count++;
    for (size_t i = 0; i < count; i++)
        if (!strcmp(names[i], n->value)) {
            int idx = (int)i;
            bnd_store(out, f, &idx, sizeof idx);
            return;
        }
    char list[768], g[512];
    bnd_enum_list(f, list, sizeof list);
    const char *s = count ? sp_suggest(n->value, names, count) : NULL;
    if (s)
        bnd_error(b, n, "expected one of: %s (got %s; did you mean '%s'?)", list,
                  bnd_got(n, g, sizeof g), s);
    else
        bnd_error(b, n, "expected one of: %s (got %s)", list, bnd_got(n, g, sizeof g));
}

/* Binds one scalar-typed field from scalar node n. */
static void bnd_scalar(struct bnd *b, const struct sp_field *f, const struct sp_node *n, void *out)
{
    if (n->kind != SP_NODE_SCALAR || bnd_is_null(n)) {
        bnd_mismatch(b, f, n);
        return;
    }
    const char *v = n->value;
    switch (f->type) {
    case SP_T_NUMBER: {
        double x;
        if (!bnd_parse_number(v, &x)) { bnd_mismatch(b, f, n); return; }
        if (!isfinite(x)) {
            bnd_error(b, n, "expected a finite number, got '%s'", v);
            return;
        }
        if (bnd_range(b, f, n, x)) bnd_store(out, f, &x, sizeof x);
        return;
    }
    case SP_T_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        while (end != v && isspace((unsigned char)*end)) end++;
        if (end == v || *end) { bnd_mismatch(b, f, n); return; }
        if (errno == ERANGE) {
            bnd_error(b, n, "integer '%s' is too large", v);
            return;
        }
        int64_t i = x;
        if (bnd_range(b, f, n, (double)i)) bnd_store(out, f, &i, sizeof i);
        return;
    }
    case SP_T_BOOL: {
        int x = bnd_bool(v);
        if (x < 0) { bnd_mismatch(b, f, n); return; }
        bool t = x;
        bnd_store(out, f, &t, sizeof t);
        return;
    }
    case SP_T_NAME:
        if (!bnd_is_name(v)) { bnd_mismatch(b, f, n); return; }
        /* fall through */
    case SP_T_STRING:
        bnd_store(out, f, &v, sizeof v);     /* the node's text is in the arena */
        return;
    case SP_T_PATH:
        bnd_path(b, f, n, out);
        return;
    case SP_T_DURATION:
        bnd_duration(b, f, n, out);
        return;
    case SP_T_FRACTION: {
        double x;
        if (sp_parse_fraction(v, &x)) { bnd_mismatch(b, f, n); return; }
        if (bnd_range(b, f, n, x)) bnd_store(out, f, &x, sizeof x);
        return;
    }
    case SP_T_ENUM:
        bnd_enum(b, f, n, out);
        return;
    case SP_T_MAP: case SP_T_LIST: case SP_T_MODULES: case SP_T_DIST:
        break;
    }
}

static struct sp_node *bnd_new_node(struct bnd *b, enum sp_node_kind kind, struct sp_node *parent,
                                    const char *key, bool link)
{
    struct sp_node *n = sp_scenario_alloc(b->sc, sizeof *n);
    if (!n) { b->nomem = true; return NULL; }
    n->kind = kind;
    n->flags = SP_NODE_DEFAULT;
    n->file = b->file;
    n->key = key;
    n->parent = parent;
    if (link) {
        struct sp_node **pp = &parent->child;
        while (*pp) pp = &(*pp)->next;
        *pp = n;
        parent->n_children++;
    }
    return n;
}

static bool bnd_has_defaults(const struct sp_schema *s, int depth)
{
    if (!s || depth > 32) return false;
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sp_field *f = &s->fields[i];
        if (f->def) return true;
        if (f->type == SP_T_MAP && bnd_has_defaults(f->sub, depth + 1)) return true;
    }
    return false;
}

static void bind_map(struct bnd *b, const struct sp_schema *s, struct sp_node *map,
                     void *out, bool module);

static bool bnd_declares(const struct sp_schema *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (!strcmp(s->fields[i].key, key)) return true;
    return false;
}

static void bnd_unknown_key(struct bnd *b, const struct sp_schema *s, const struct sp_node *n,
                            bool module)
{
    size_t nf = s ? s->n_fields : 0;
    const char **all = malloc((nf + 2) * sizeof *all);
    const char **shown = malloc((nf + 2) * sizeof *shown);
    if (!all || !shown) {
        free(all);
        free(shown);
        bnd_error(b, n, "unknown key '%s'", n->key);
        return;
    }
    size_t na = 0, ns = 0;
    if (module) {
        all[na++] = shown[ns++] = "type";
        if (!bnd_declares(s, "name")) all[na++] = shown[ns++] = "name";
    }
    for (size_t i = 0; i < nf; i++) {
        all[na++] = s->fields[i].key;
        if (!(s->fields[i].flags & SP_F_HIDDEN)) shown[ns++] = s->fields[i].key;
    }
    const char *sug = sp_suggest(n->key, all, na);
    if (sug) {
        bnd_error(b, n, "unknown key '%s' (did you mean '%s'?)", n->key, sug);
    } else if (ns) {
        char list[1024];
        bnd_join(list, sizeof list, shown, ns);
        bnd_error(b, n, "unknown key '%s'; expected one of: %s", n->key, list);
    } else {
        bnd_error(b, n, "unknown key '%s'; this section takes no keys", n->key);
    }
    free(all);
    free(shown);
}

static void bnd_list(struct bnd *b, const struct sp_field *f, struct sp_node *n, void *out)
{
    if (bnd_is_null(n)) return;                     /* "key:" = empty list */
    if (n->kind != SP_NODE_SEQ) { bnd_mismatch(b, f, n); return; }
    const struct sp_schema *sub = f->sub;
    size_t count = n->n_children, size = sub ? sub->struct_size : 0;
    void *arr = NULL;
    if (count) {
        if (size && count > SIZE_MAX / size) { b->nomem = true; return; }
        arr = sp_scenario_alloc(b->sc, count * size);
        if (!arr) { b->nomem = true; return; }
    }
    size_t i = 0;
    for (struct sp_node *c = n->child; c; c = c->next, i++)
        bind_map(b, sub, c, (char *)arr + i * size, false);
    bnd_store(out, f, &arr, sizeof arr);
    memcpy((char *)out + f->count_offset, &count, sizeof count);
}

/* The registered types of `kind`, as "a, b" and as an array for sp_suggest. */
static size_t bnd_types(const struct sp_registry *reg, const char *kind,
                        const char ***names)
{
    size_t total = sp_registry_count(reg), n = 0;
    *names = malloc((total + 1) * sizeof **names);
    if (!*names) return 0;
    for (size_t i = 0; i < total; i++) {
        const struct sp_module_ops *o = sp_registry_get(reg, i);
        if (o && !strcmp(o->kind, kind)) (*names)[n++] = o->type;
    }
    (*names)[n] = NULL;
    return n;
}

static void bnd_module(struct bnd *b, const char *kind, struct sp_node *item,
                       struct sp_module_cfg *m)
{
    m->node = item;
    if (item->kind != SP_NODE_MAP) {
        char g[512];
        bnd_error(b, item, "expected a map with a 'type:' key, got %s",
                  bnd_got(item, g, sizeof g));
        return;
    }
    const char **types;
    size_t nt = bnd_types(b->reg, kind, &types);
    char list[1024];
    if (types) bnd_join(list, sizeof list, types, nt);
    else list[0] = '\0';

    const struct sp_node *tn = sp_node_get(item, "type");
    const struct sp_module_ops *ops = NULL;
    if (!tn) {
        bnd_error(b, item, "missing required key 'type'%s%s%s", nt ? " (one of: " : "",
                  nt ? list : "", nt ? ")" : "");
    } else if (tn->kind != SP_NODE_SCALAR || bnd_is_null(tn)) {
        char g[512];
        bnd_error(b, tn, "expected a %s type name, got %s", kind, bnd_got(tn, g, sizeof g));
    } else if (!(ops = sp_registry_find(b->reg, kind, tn->value))) {
        const char *sug = nt ? sp_suggest(tn->value, types, nt) : NULL;
        if (sug)
            bnd_error(b, tn, "unknown %s type '%s' (did you mean '%s'?)", kind, tn->value, sug);
        else if (nt)
            bnd_error(b, tn, "unknown %s type '%s'; expected one of: %s", kind, tn->value, list);
        else
            bnd_error(b, tn, "unknown %s type '%s' (no %s types are registered)", kind,
                      tn->value, kind);
    }
    free(types);

    /* `name:` is the same for every module: bind it as a name unless the
     * module's schema declares it itself. */
    struct sp_node *nn = sp_node_get(item, "name");
    if (nn && !(ops && bnd_declares(ops->schema, "name"))) {
        static const struct sp_field name_field = { .key = "name", .type = SP_T_NAME };
        const char *name = NULL;
        bnd_scalar(b, &name_field, nn, &name);
        m->name = name;
    } else if (nn && nn->kind == SP_NODE_SCALAR) {
        m->name = nn->value;
    }
    if (!ops) return;
    m->ops = ops;
    size_t size = ops->schema ? ops->schema->struct_size : 0;
    m->cfg = sp_scenario_alloc(b->sc, size);
    if (!m->cfg) { b->nomem = true; return; }
    bind_map(b, ops->schema, item, m->cfg, true);
}

static void bnd_modules(struct bnd *b, const struct sp_field *f, struct sp_node *n, void *out)
{
    if (bnd_is_null(n)) return;
    if (n->kind != SP_NODE_SEQ) { bnd_mismatch(b, f, n); return; }
    size_t count = n->n_children;
    struct sp_module_cfg *arr = NULL;
    if (count) {
        if (count > SIZE_MAX / sizeof *arr) { b->nomem = true; return; }
        arr = sp_scenario_alloc(b->sc, count * sizeof *arr);
        if (!arr) { b->nomem = true; return; }
    }
    size_t i = 0;
    for (struct sp_node *c = n->child; c; c = c->next, i++)
        bnd_module(b, (const char *)f->sub, c, &arr[i]);
    bnd_store(out, f, &arr, sizeof arr);
    memcpy((char *)out + f->count_offset, &count, sizeof count);
}

static void bind_field(struct bnd *b, const struct sp_field *f, struct sp_node *n, void *out)
{
    switch (f->type) {
    case SP_T_MAP:
        bind_map(b, f->sub, n, (char *)out + f->offset, false);
        return;
    case SP_T_LIST:
        bnd_list(b, f, n, out);
        return;
    case SP_T_MODULES:
        bnd_modules(b, f, n, out);
        return;
    case SP_T_DIST: {
        struct sp_dist *d = (struct sp_dist *)((char *)out + f->offset);
        if (n->kind == SP_NODE_MAP) {
            bind_map(b, &sp_dist_schema, n, d, false);
            return;
        }
        /* A plain number: a constant, range-checked like a number field. */
        struct sp_field num = *f;
        num.type = SP_T_NUMBER;
        num.offset = offsetof(struct sp_dist, value);
        bnd_scalar(b, &num, n, d);
        d->kind = SP_DIST_CONST;
        return;
    }
    default:
        bnd_scalar(b, f, n, out);
        return;
    }
}

/* Binds an absent field: required → error, default → node, map → empty map. */
static void bind_absent(struct bnd *b, const struct sp_field *f, struct sp_node *map, void *out)
{
    if (f->flags & SP_F_REQUIRED) {
        bnd_error(b, map, "missing required key '%s'", f->key);
        return;
    }
    if (f->def && f->type != SP_T_MAP && f->type != SP_T_LIST && f->type != SP_T_MODULES) {
        struct sp_node *n = bnd_new_node(b, SP_NODE_SCALAR, map, f->key, true);
        if (!n) return;
        n->value = f->def;
        bind_field(b, f, n, out);
        return;
    }
    if (f->type == SP_T_MAP) {   /* a map's defaults are its fields' defaults */
        /* Linked into the tree only if it will hold defaults; otherwise it
         * still gives errors below it a path ("sim: missing required key"). */
        bool link = bnd_has_defaults(f->sub, 0);
        struct sp_node *n = bnd_new_node(b, SP_NODE_MAP, map, f->key, link);
        if (n) bind_map(b, f->sub, n, (char *)out + f->offset, false);
    }
}

static void bind_map(struct bnd *b, const struct sp_schema *s, struct sp_node *map,
                     void *out, bool module)
{
    if (bnd_is_null(map)) {                        /* "sim:" with nothing under it */
        map->kind = SP_NODE_MAP;
        map->value = NULL;
    }
    if (map->kind != SP_NODE_MAP) {
        char g[512];
        bnd_error(b, map, "expected a map, got %s", bnd_got(map, g, sizeof g));
        return;
    }
    int before = b->errors;
    for (struct sp_node *c = map->child; c; c = c->next) {
        if (module && (!strcmp(c->key, "type") ||
                       (!strcmp(c->key, "name") && !bnd_declares(s, "name"))))
            continue;
        if (!bnd_declares(s, c->key)) bnd_unknown_key(b, s, c, module);
    }
    for (size_t i = 0; s && i < s->n_fields; i++) {
        const struct sp_field *f = &s->fields[i];
        struct sp_node *n = sp_node_get(map, f->key);
        if (n) bind_field(b, f, n, out);
        else bind_absent(b, f, map, out);
    }
    if (b->errors == before && !b->nomem && s && s->check) {
        struct sp_check_ctx ctx = { .diag = b->d, .node = map, .scenario_dir = b->dir,
                                    .root = b->root };
        int seen = b->d->n_errors;
        int rc = s->check(out, &ctx);
        if (rc == SP_ENOMEM) b->nomem = true;
        else if (rc || b->d->n_errors != seen) b->errors++;
    }
}

int sp_scenario_bind(struct sp_scenario *sc, const struct sp_schema *root,
                     const struct sp_registry *reg, void *out, struct sp_diag *d)
{
    if (!sc || !root || !out || !sp_scenario_root(sc)) return SP_EINVAL;
    struct sp_diag local = { 0 };
    struct bnd b = {
        .sc = sc, .reg = reg ? reg : sp_registry_builtin(), .d = d ? d : &local,
        .root = out, .dir = sp_scenario_dir(sc), .file = sp_scenario_path(sc),
    };
    /* The tree belongs to `sc`, which we were handed non-const. */
    bind_map(&b, root, (struct sp_node *)sp_scenario_root(sc), out, false);
    sp_diag_release(&local);
    if (b.nomem) return SP_ENOMEM;
    return b.errors ? SP_ECONFIG : SP_OK;
}

/* ---- the Markdown reference ----------------------------------------------- */

/* Writes text for a table cell: '|' escaped, newlines as spaces. */
static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|') fputs("\\|", out);
        else if (*s == '\n' || *s == '\r') fputc(' ', out);
        else fputc(*s, out);
    }
}

static void md_type(FILE *out, const struct sp_field *f, const char *path,
                    const struct sp_registry *reg)
{
    char list[768];
    switch (f->type) {
    case SP_T_NUMBER:   fputs("number", out); break;
    case SP_T_INT:      fputs("integer", out); break;
    case SP_T_BOOL:     fputs("boolean", out); break;
    case SP_T_STRING:   fputs("string", out); break;
    case SP_T_NAME:     fputs("name", out); break;
    case SP_T_DURATION: fputs("duration", out); break;
    case SP_T_FRACTION: fputs("percentage", out); break;
    case SP_T_PATH:     fputs("path", out); break;
    case SP_T_ENUM:
        bnd_enum_list(f, list, sizeof list);
        fputs("one of: ", out);
        md_cell(out, list);
        break;
    case SP_T_MAP:      fprintf(out, "map (see `%s%s%s`)", path, *path ? "." : "", f->key); break;
    case SP_T_DIST:     fputs("number or distribution (see `distribution`)", out); break;
    case SP_T_LIST:     fprintf(out, "list of maps (see `%s%s%s[]`)", path, *path ? "." : "",
                                f->key); break;
    case SP_T_MODULES: {
        const char **types;
        size_t nt = bnd_types(reg, (const char *)f->sub, &types);
        if (types) bnd_join(list, sizeof list, types, nt);
        else list[0] = '\0';
        free(types);
        fprintf(out, "list of %s modules (`type:` ", (const char *)f->sub);
        md_cell(out, nt ? list : "none registered");
        fputs(")", out);
        break;
    }
    }
    if (f->units && *f->units) {
        fputs(" (", out);
        md_cell(out, f->units);
        fputs(")", out);
    }
}

static void md_range(FILE *out, const struct sp_field *f)
{
    char v[64];
    bool any = false;
    static const struct { unsigned flag; const char *op; bool max; } ops[] = {
        { SP_F_MIN, ">=", false }, { SP_F_MIN_EXCL, ">", false },
        { SP_F_MAX, "<=", true },  { SP_F_MAX_EXCL, "<", true },
    };
    for (size_t i = 0; i < 4; i++) {
        if (!(f->flags & ops[i].flag)) continue;
        bnd_format(f, ops[i].max ? f->max : f->min, v, sizeof v);
        fprintf(out, "%s%s %s", any ? ", " : "", ops[i].op, v);
        any = true;
    }
}

static void md_row(FILE *out, const struct sp_field *f, const char *path,
                   const struct sp_registry *reg)
{
    fprintf(out, "| `%s`%s | ", f->key, (f->flags & SP_F_REQUIRED) ? " **(required)**" : "");
    md_type(out, f, path, reg);
    fputs(" | ", out);
    if (f->def) {
        fputs("`", out);
        md_cell(out, f->def);
        fputs("`", out);
    } else if (f->flags & SP_F_REQUIRED) {
        fputs("—", out);
    }
    fputs(" | ", out);
    md_range(out, f);
    fputs(" | ", out);
    md_cell(out, f->doc);
    fputs(" |\n", out);
}

static void md_section(FILE *out, const struct sp_schema *s, const char *path,
                       const struct sp_registry *reg, const struct sp_module_ops *ops,
                       int depth)
{
    if (depth > 16) return;
    if (ops) {
        fprintf(out, "## `%s` type `%s`\n\n", path, ops->type);
        if (ops->summary && *ops->summary) fprintf(out, "%s\n\n", ops->summary);
    } else if (!*path) {
        fprintf(out, "## %s\n\n", s && s->name ? s->name : "Top level");
    } else {
        fprintf(out, "## `%s`\n\n", path);
    }
    if (s && s->doc && *s->doc) fprintf(out, "%s\n\n", s->doc);
    fputs("| key | type | default | range | description |\n", out);
    fputs("|---|---|---|---|---|\n", out);
    if (ops) {
        fprintf(out, "| `type` **(required)** | `%s` | — |  | Selects this %s type. |\n",
                ops->type, ops->kind);
        if (!bnd_declares(s, "name"))
            fputs("| `name` | name |  |  | Names this item for references, outputs and "
                  "`--set`; optional. |\n", out);
    }
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (!(s->fields[i].flags & SP_F_HIDDEN)) md_row(out, &s->fields[i], path, reg);
    fputs("\n", out);

    char sub[512];
    for (size_t i = 0; s && i < s->n_fields; i++) {
        const struct sp_field *f = &s->fields[i];
        if (f->flags & SP_F_HIDDEN) continue;
        if (f->type != SP_T_MAP && f->type != SP_T_LIST) continue;
        snprintf(sub, sizeof sub, "%s%s%s%s", path, *path ? "." : "", f->key,
                 f->type == SP_T_LIST ? "[]" : "");
        md_section(out, f->sub, sub, reg, NULL, depth + 1);
    }
    for (size_t i = 0; s && i < s->n_fields; i++) {
        const struct sp_field *f = &s->fields[i];
        if (f->flags & SP_F_HIDDEN || f->type != SP_T_MODULES) continue;
        snprintf(sub, sizeof sub, "%s%s%s[]", path, *path ? "." : "", f->key);
        size_t n = sp_registry_count(reg);
        for (size_t k = 0; k < n; k++) {
            const struct sp_module_ops *o = sp_registry_get(reg, k);
            if (o && !strcmp(o->kind, (const char *)f->sub))
                md_section(out, o->schema, sub, reg, o, depth + 1);
        }
    }
}

void sp_schema_markdown(FILE *out, const struct sp_schema *root, const struct sp_registry *reg)
{
    if (!out || !root) return;
    if (!reg) reg = sp_registry_builtin();
    fputs("# Scenario reference\n\n"
          "Generated from spiral's schema tables (`spiral types --markdown`); do not "
          "edit by hand.\n\n"
          "Durations need a unit: `us`, `ms`, `s`, `m`, `h`, `d` or `w`, and may combine "
          "them (`1h30m`, `1.5h`); only `0` may be written without one.  Percentages may "
          "be written `80%` or as the fraction `0.8`.  Keys marked **(required)** have "
          "no default; every other key takes the default shown when absent.\n\n", out);
    md_section(out, root, "", reg, NULL, 0);
    /* Distributed parameters share one schema, documented once. */
    fputs("\n", out);
    md_section(out, &sp_dist_schema, "distribution", reg, NULL, 0);
}
