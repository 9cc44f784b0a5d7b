/*
 * scenario.c — the scenario tree: YAML in (libyaml's event parser), `--set`
 * overrides, YAML out (libyaml's emitter), and the arena that owns it all.
 *
 * The tree is a plain n-ary tree of struct sp_node: a map's children carry
 * their `key`, a sequence's children are in order, scalars keep their text
 * exactly as written (typing happens later, in schema.c, against the
 * schema).  Every node remembers where it came from so errors can point at
 * it: for a map entry that is the line:col of its *key* (the place a reader
 * looks for "sim.horizon"), for a list item and for the root the position of
 * the value itself.  Nodes made by `--set` have line 0 and the whole
 * "--set K=V" text as their file; defaults inserted by the binder have line 0
 * and the scenario path.
 *
 * Ownership: everything — nodes, strings, the bound config structs and
 * arrays — is carved out of one arena owned by struct sp_scenario, a list of
 * zeroed blocks freed together by sp_scenario_destroy.  Nothing is freed
 * piecemeal; a replaced `--set` subtree simply stays in the arena.
 *
 * The parser builds children by prepending (O(1) without a tail pointer) and
 * reverses each container's list when it closes.  Aliases and anchors are
 * rejected: a scenario is meant to be read by people, and every node must
 * have one location.  Duplicate keys are errors (libyaml accepts them).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "spiral/error.h"
#include "spiral/scenario.h"

/* ---- the arena ------------------------------------------------------------ */

struct scn_block {
    struct scn_block *next;
    size_t used, cap;             /* bytes of payload after the header */
};

#define SCN_ALIGN   alignof(max_align_t)
#define SCN_HDR     ((sizeof(struct scn_block) + SCN_ALIGN - 1) & ~(SCN_ALIGN - 1))
#define SCN_BLOCK   (64u * 1024u)

struct sp_scenario {
    struct scn_block *blocks;     /* head has the free space */
    struct sp_node *root;         /* always a map once loaded */
    const char *path;
    const char *dir;
};

void *sp_scenario_alloc(struct sp_scenario *sc, size_t size)
{
    if (!sc) return NULL;
    if (size == 0) size = 1;
    if (size > SIZE_MAX - 2 * SCN_ALIGN - SCN_HDR) return NULL;
    size = (size + SCN_ALIGN - 1) & ~(SCN_ALIGN - 1);
    struct scn_block *b = sc->blocks;
    if (b && b->cap - b->used >= size) {
        void *p = (char *)b + SCN_HDR + b->used;
        b->used += size;
        return p;
    }
    /* Large requests get a block of their own, linked behind the head so the
     * head keeps its free space for the small ones. */
    size_t cap = size > SCN_BLOCK / 4 ? size : SCN_BLOCK;
    struct scn_block *nb = calloc(1, SCN_HDR + cap);
    if (!nb) return NULL;
    nb->cap = cap;
    nb->used = size;
    if (cap == size && b) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        sc->blocks = nb;
    }
    return (char *)nb + SCN_HDR;
}

static char *scn_strndup(struct sp_scenario *sc, const char *s, size_t n)
{
    char *p = sp_scenario_alloc(sc, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

static char *scn_strdup(struct sp_scenario *sc, const char *s)
{
    return scn_strndup(sc, s, strlen(s));
}

static struct sp_scenario *scn_create(const char *path)
{
    struct sp_scenario *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    const char *slash = strrchr(path, '/');
    sc->path = scn_strdup(sc, path);
    if (!slash)
        sc->dir = scn_strdup(sc, ".");
    else if (slash == path)
        sc->dir = scn_strdup(sc, "/");
    else
        sc->dir = scn_strndup(sc, path, (size_t)(slash - path));
    if (!sc->path || !sc->dir) {
        sp_scenario_destroy(sc);
        return NULL;
    }
    return sc;
}

void sp_scenario_destroy(struct sp_scenario *sc)
{
    if (!sc) return;
    for (struct scn_block *b = sc->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(sc);
}

const struct sp_node *sp_scenario_root(const struct sp_scenario *sc) { return sc ? sc->root : NULL; }
const char *sp_scenario_path(const struct sp_scenario *sc) { return sc ? sc->path : NULL; }
const char *sp_scenario_dir(const struct sp_scenario *sc) { return sc ? sc->dir : NULL; }

/* ---- node access ------------------------------------------------------------ */

struct sp_node *sp_node_get(const struct sp_node *n, const char *key)
{
    if (!n || n->kind != SP_NODE_MAP || !key) return NULL;
    for (struct sp_node *c = n->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key)) return c;
    return NULL;
}

struct sp_node *sp_node_at(const struct sp_node *n, size_t i)
{
    if (!n || n->kind == SP_NODE_SCALAR) return NULL;
    struct sp_node *c = n->child;
    while (c && i--) c = c->next;
    return c;
}

/* Writes the path of `n` at buf[len..]; returns the new length (which may
 * exceed size: the text is then truncated but stays NUL-terminated). */
static size_t scn_path_write(const struct sp_node *n, char *buf, size_t size, int depth)
{
    if (!n || !n->parent || depth > 256) return 0;
    size_t len = scn_path_write(n->parent, buf, size, depth + 1);
    char seg[32];
    const char *s = n->key;
    if (!s || n->parent->kind == SP_NODE_SEQ) {
        size_t i = 0;
        const struct sp_node *c = n->parent->child;
        while (c && c != n) { c = c->next; i++; }
        if (c) {
            snprintf(seg, sizeof seg, "%zu", i);
            s = seg;
        } else if (!s) {
            s = "?";
        }
    }
    int w = snprintf(buf + (len < size ? len : size), len < size ? size - len : 0,
                     "%s%s", len ? "." : "", s);
    return len + (w > 0 ? (size_t)w : 0);
}

const char *sp_node_path(const struct sp_node *n, char *buf, size_t size)
{
    if (!buf || !size) return buf;
    buf[0] = '\0';
    scn_path_write(n, buf, size, 0);
    return buf;
}

/* ---- the YAML reader -------------------------------------------------------- */

struct scn_builder {
    struct sp_scenario *sc;
    struct sp_diag *d;
    const char *file;             /* what nodes record as their file */
    const char *text;             /* the input, for reader-error offsets */
    size_t len;
    bool is_set;                  /* parsing a --set value: line 0, OVERRIDE */
    struct sp_node *root, *cur;   /* cur: the open container, or NULL */
    const char *key;              /* pending key of the open map */
    int key_line, key_col;
    int n_docs;
    int errors;
};

static void scn_error(struct scn_builder *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void scn_error(struct scn_builder *b, int line, int col, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->errors++;
    if (b->is_set)
        sp_diag_error_at(b->d, b->file, 0, 0, "in the value: %s", msg);
    else
        sp_diag_error_at(b->d, b->file, line, col, "%s", msg);
}

static void scn_reverse_children(struct sp_node *n)
{
    struct sp_node *prev = NULL, *c = n->child;
    while (c) {
        struct sp_node *next = c->next;
        c->next = prev;
        prev = c;
        c = next;
    }
    n->child = prev;
}

/* Creates a node at `mark` and links it under the open container (taking the
 * pending key if that is a map).  NULL only when out of memory. */
static struct sp_node *scn_add(struct scn_builder *b, enum sp_node_kind kind, yaml_mark_t mark)
{
    struct sp_node *n = sp_scenario_alloc(b->sc, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->file = b->file;
    if (b->is_set) {
        n->flags = SP_NODE_OVERRIDE;
    } else {
        n->line = (int)mark.line + 1;
        n->col = (int)mark.column + 1;
    }
    struct sp_node *p = b->cur;
    if (!p) {
        b->root = n;
        return n;
    }
    if (p->kind == SP_NODE_MAP) {
        n->key = b->key;
        if (!b->is_set) {
            n->line = b->key_line;
            n->col = b->key_col;
        }
        b->key = NULL;
    }
    n->parent = p;
    n->next = p->child;           /* prepended; reversed when p closes */
    p->child = n;
    p->n_children++;
    return n;
}

static bool scn_awaits_key(const struct scn_builder *b)
{
    return b->cur && b->cur->kind == SP_NODE_MAP && !b->key;
}

static void scn_reject_anchor(struct scn_builder *b, const yaml_char_t *anchor, yaml_mark_t m)
{
    if (anchor)
        scn_error(b, (int)m.line + 1, (int)m.column + 1,
                  "anchors (&%s) are not supported; write the value out in full",
                  (const char *)anchor);
}

static void scn_key(struct scn_builder *b, const yaml_event_t *ev)
{
    const char *k = (const char *)ev->data.scalar.value;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    for (const struct sp_node *c = b->cur->child; c; c = c->next)
        if (c->key && !strcmp(c->key, k)) {
            if (c->line > 0)
                scn_error(b, line, col, "duplicate key '%s' (first at line %d)", k, c->line);
            else
                scn_error(b, line, col, "duplicate key '%s'", k);
            break;
        }
    b->key = scn_strndup(b->sc, k, ev->data.scalar.length);
    b->key_line = line;
    b->key_col = col;
}

static bool scn_is_str_tag(const yaml_char_t *tag)
{
    return tag && !strcmp((const char *)tag, YAML_STR_TAG);
}

/* Converts a reader error's byte offset into line:col. */
static void scn_offset_mark(const struct scn_builder *b, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < b->len; i++) {
        if (b->text[i] == '\n') { ++*line; *col = 1; }
        else ++*col;
    }
}

static void scn_syntax_error(struct scn_builder *b, const yaml_parser_t *p)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        scn_offset_mark(b, p->problem_offset, &line, &col);
    } else {
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context && b->is_set)
        scn_error(b, line, col, "%s %s (at column %d)", p->context, problem, col);
    else if (p->context)
        scn_error(b, line, col, "%s (%s at line %d, column %d)", problem, p->context,
                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else if (b->is_set)
        scn_error(b, line, col, "%s (at column %d)", problem, col);
    else
        scn_error(b, line, col, "%s", problem);
}

/* Parses `text` into a tree; *root is NULL for an empty stream.  Structural
 * errors (syntax, a second document, a map as a key) stop the parse; the
 * others (duplicates, anchors) are collected. */
static int scn_parse(struct scn_builder *b)
{
    yaml_parser_t p;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&p)) return SP_ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)b->text, b->len);
    int rc = SP_OK;
    for (bool done = false; !done && rc == SP_OK;) {
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR) {
                rc = SP_ENOMEM;
            } else {
                scn_syntax_error(b, &p);
                rc = SP_ECONFIG;
            }
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct sp_node *n;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b->n_docs > 1) {
                scn_error(b, line, col, "a second YAML document starts here; "
                          "a scenario is a single document");
                rc = SP_ECONFIG;
            }
            break;
        case YAML_ALIAS_EVENT:
            scn_error(b, line, col, "aliases (*%s) are not supported; write the value "
                      "out in full", (const char *)ev.data.alias.anchor);
            if (scn_awaits_key(b)) {
                rc = SP_ECONFIG;      /* an alias as a key: nothing sane to build */
                break;
            }
            if (!scn_add(b, SP_NODE_SCALAR, ev.start_mark)) rc = SP_ENOMEM;
            break;
        case YAML_SCALAR_EVENT:
            scn_reject_anchor(b, ev.data.scalar.anchor, ev.start_mark);
            if (scn_awaits_key(b)) {
                scn_key(b, &ev);
                if (!b->key) rc = SP_ENOMEM;
                break;
            }
            n = scn_add(b, SP_NODE_SCALAR, ev.start_mark);
            if (!n || !(n->value = scn_strndup(b->sc, (const char *)ev.data.scalar.value,
                                               ev.data.scalar.length))) {
                rc = SP_ENOMEM;
                break;
            }
            if (ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                scn_is_str_tag(ev.data.scalar.tag))
                n->flags |= SP_NODE_QUOTED;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (scn_awaits_key(b)) {
                scn_error(b, line, col, "a key must be a plain value, not a %s",
                          ev.type == YAML_MAPPING_START_EVENT ? "map" : "list");
                rc = SP_ECONFIG;
                break;
            }
            scn_reject_anchor(b, ev.type == YAML_MAPPING_START_EVENT
                                     ? ev.data.mapping_start.anchor
                                     : ev.data.sequence_start.anchor, ev.start_mark);
            n = scn_add(b, ev.type == YAML_MAPPING_START_EVENT ? SP_NODE_MAP : SP_NODE_SEQ,
                        ev.start_mark);
            if (!n) rc = SP_ENOMEM;
            else b->cur = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            scn_reverse_children(b->cur);
            b->cur = b->cur->parent;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == SP_OK && b->errors) rc = SP_ECONFIG;
    return rc;
}

static const char *scn_kind_name(const struct sp_node *n)
{
    return n->kind == SP_NODE_MAP ? "map" : n->kind == SP_NODE_SEQ ? "list" : "single value";
}

int sp_scenario_load_string(struct sp_scenario **out, const char *name,
                            const char *text, size_t len, struct sp_diag *d)
{
    if (!out) return SP_EINVAL;
    *out = NULL;
    if (!text && len) return SP_EINVAL;
    struct sp_scenario *sc = scn_create(name ? name : "<string>");
    if (!sc) return SP_ENOMEM;
    struct scn_builder b = { .sc = sc, .d = d, .file = sc->path,
                             .text = text ? text : "", .len = len };
    int rc = scn_parse(&b);
    if (rc == SP_OK && !b.root) {
        /* An empty file is an empty map: the binder then names what is missing. */
        b.root = sp_scenario_alloc(sc, sizeof *b.root);
        if (!b.root) rc = SP_ENOMEM;
        else {
            b.root->kind = SP_NODE_MAP;
            b.root->file = sc->path;
        }
    }
    if (rc == SP_OK && b.root->kind != SP_NODE_MAP) {
        sp_diag_error_at(d, sc->path, b.root->line, b.root->col,
                         "the document must be a map of 'key: value' lines, "
                         "not a %s", scn_kind_name(b.root));
        rc = SP_ECONFIG;
    }
    if (rc) {
        sp_scenario_destroy(sc);
        return rc;
    }
    sc->root = b.root;
    *out = sc;
    return SP_OK;
}

int sp_scenario_load(struct sp_scenario **out, const char *path, struct sp_diag *d)
{
    if (!out || !path) return SP_EINVAL;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sp_diag_error_at(d, path, 0, 0, "cannot open scenario: %s", strerror(errno));
        return SP_EIO;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int err = 0;
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? 2 * cap : 16384;
            char *p = realloc(text, ncap);
            if (!p) { free(text); fclose(f); return SP_ENOMEM; }
            text = p;
            cap = ncap;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) err = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (err) {
        sp_diag_error_at(d, path, 0, 0, "cannot read scenario: %s", strerror(err));
        free(text);
        return SP_EIO;
    }
    int rc = sp_scenario_load_string(out, path, text, len, d);
    free(text);
    return rc;
}

/* ---- --set ----------------------------------------------------------------- */

static bool scn_is_null(const struct sp_node *n)
{
    if (n->kind != SP_NODE_SCALAR || (n->flags & SP_NODE_QUOTED)) return false;
    const char *v = n->value ? n->value : "";
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static bool scn_all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static void scn_append_child(struct sp_node *parent, struct sp_node *n)
{
    n->parent = parent;
    n->next = NULL;
    struct sp_node **pp = &parent->child;
    while (*pp) pp = &(*pp)->next;
    *pp = n;
    parent->n_children++;
}

/* The list item whose `name:` (or else `asset:`) scalar is `seg`. */
static struct sp_node *scn_find_named(const struct sp_node *seq, const char *seg)
{
    static const char *const keys[] = { "name", "asset" };
    for (size_t k = 0; k < 2; k++)
        for (struct sp_node *c = seq->child; c; c = c->next) {
            const struct sp_node *v = sp_node_get(c, keys[k]);
            if (v && v->kind == SP_NODE_SCALAR && v->value && !strcmp(v->value, seg))
                return c;
        }
    return NULL;
}

int sp_scenario_set(struct sp_scenario *sc, const char *assignment, struct sp_diag *d)
{
    if (!sc || !assignment) return SP_EINVAL;
    size_t alen = strlen(assignment);
    char *settext = sp_scenario_alloc(sc, alen + sizeof "--set ");
    if (!settext) return SP_ENOMEM;
    memcpy(settext, "--set ", 6);
    memcpy(settext + 6, assignment, alen + 1);

    const char *eq = strchr(assignment, '=');
    if (!eq) {
        sp_diag_error_at(d, settext, 0, 0, "expected KEY=VALUE, e.g. sim.horizon=2d "
                         "(there is no '=')");
        return SP_EINVAL;
    }
    char *key = scn_strndup(sc, assignment, (size_t)(eq - assignment));
    if (!key) return SP_ENOMEM;
    if (!*key) {
        sp_diag_error_at(d, settext, 0, 0, "the key before '=' is empty");
        return SP_EINVAL;
    }
    size_t klen = strlen(key);
    if (key[0] == '.' || key[klen - 1] == '.' || strstr(key, "..")) {
        sp_diag_error_at(d, settext, 0, 0, "empty path segment in '%s'", key);
        return SP_EINVAL;
    }

    /* Parse the value first, so a bad value leaves the tree untouched. */
    const char *vtext = eq + 1;
    struct scn_builder b = { .sc = sc, .d = d, .file = settext, .text = vtext,
                             .len = strlen(vtext), .is_set = true };
    int rc = scn_parse(&b);
    if (rc) return rc;
    struct sp_node *val = b.root;
    if (!val) {                       /* "key=" sets an empty (null) value */
        val = sp_scenario_alloc(sc, sizeof *val);
        if (!val || !(val->value = scn_strdup(sc, ""))) return SP_ENOMEM;
        val->kind = SP_NODE_SCALAR;
        val->flags = SP_NODE_OVERRIDE;
        val->file = settext;
    }

    struct sp_node *n = sc->root;
    char *seg = key;
    for (;;) {
        char *dot = strchr(seg, '.');
        bool last = !dot;
        if (dot) *dot = '\0';
        /* `key` now ends at this segment: it is the path so far. */
        if (n->kind == SP_NODE_SCALAR) {
            if (!scn_is_null(n)) {
                char where[512];
                sp_node_path(n, where, sizeof where);
                sp_diag_error_at(d, settext, 0, 0, "cannot set '%s': '%s' is a single "
                                 "value ('%s'), not a map or list", key, where,
                                 n->value ? n->value : "");
                return SP_ECONFIG;
            }
            n->kind = SP_NODE_MAP;    /* "sim:" with nothing under it */
            n->value = NULL;
            n->flags = (n->flags & ~SP_NODE_QUOTED) | SP_NODE_OVERRIDE;
        }
        struct sp_node *c;
        if (n->kind == SP_NODE_MAP) {
            c = sp_node_get(n, seg);
            if (!c) {
                const char *k = scn_strdup(sc, seg);
                if (!k) return SP_ENOMEM;
                if (last) {
                    val->key = k;
                    scn_append_child(n, val);
                    return SP_OK;
                }
                c = sp_scenario_alloc(sc, sizeof *c);
                if (!c) return SP_ENOMEM;
                c->kind = SP_NODE_MAP;
                c->flags = SP_NODE_OVERRIDE;
                c->file = settext;
                c->key = k;
                scn_append_child(n, c);
            }
        } else if (scn_all_digits(seg)) {
            errno = 0;
            unsigned long long i = strtoull(seg, NULL, 10);
            if (errno || i >= n->n_children) {
                char where[512];
                sp_node_path(n, where, sizeof where);
                sp_diag_error_at(d, settext, 0, 0, "index %s is out of range: '%s' has "
                                 "%zu item%s (indices start at 0)", seg, where,
                                 n->n_children, n->n_children == 1 ? "" : "s");
                return SP_ECONFIG;
            }
            c = sp_node_at(n, (size_t)i);
        } else {
            c = scn_find_named(n, seg);
            if (!c) {
                char where[512];
                sp_node_path(n, where, sizeof where);
                sp_diag_error_at(d, settext, 0, 0, "no item named '%s' in the list '%s' "
                                 "(use a 0-based index, or the value of an item's "
                                 "name: or asset: key)", seg, where);
                return SP_ECONFIG;
            }
        }
        if (last) {
            /* Replace in place: c keeps its key, parent and position. */
            c->kind = val->kind;
            c->flags = val->flags;
            c->file = val->file;
            c->line = c->col = 0;
            c->value = val->value;
            c->child = val->child;
            c->n_children = val->n_children;
            for (struct sp_node *ch = c->child; ch; ch = ch->next) ch->parent = c;
            return SP_OK;
        }
        *dot = '.';
        seg = dot + 1;
        n = c;
    }
}

/* ---- the YAML writer --------------------------------------------------------- */

struct scn_out {
    char *buf;
    size_t len, cap;
};

static int scn_write(void *data, unsigned char *buf, size_t size)
{
    struct scn_out *o = data;
    if (o->len + size + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + size + 1) cap *= 2;
        char *p = realloc(o->buf, cap);
        if (!p) return 0;
        o->buf = p;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, buf, size);
    o->len += size;
    o->buf[o->len] = '\0';
    return 1;
}

static int scn_emit_scalar(yaml_emitter_t *e, const char *s, bool quoted)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s,
                                      (int)strlen(s), !quoted, 1,
                                      quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                             : YAML_ANY_SCALAR_STYLE))
        return 0;
    return yaml_emitter_emit(e, &ev);
}

static int scn_emit_node(yaml_emitter_t *e, const struct sp_node *n, int depth)
{
    yaml_event_t ev;
    if (depth > 1000) return 0;
    if (n->kind == SP_NODE_SCALAR)
        return scn_emit_scalar(e, n->value ? n->value : "", n->flags & SP_NODE_QUOTED);
    bool map = n->kind == SP_NODE_MAP;
    if (map ? !yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)
            : !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                     YAML_BLOCK_SEQUENCE_STYLE))
        return 0;
    if (!yaml_emitter_emit(e, &ev)) return 0;
    for (const struct sp_node *c = n->child; c; c = c->next) {
        if (map && !scn_emit_scalar(e, c->key ? c->key : "", false)) return 0;
        if (!scn_emit_node(e, c, depth + 1)) return 0;
    }
    if (map ? !yaml_mapping_end_event_initialize(&ev)
            : !yaml_sequence_end_event_initialize(&ev))
        return 0;
    return yaml_emitter_emit(e, &ev);
}

char *sp_scenario_emit(const struct sp_scenario *sc)
{
    if (!sc || !sc->root) return NULL;
    yaml_emitter_t e;
    yaml_event_t ev;
    struct scn_out o = { 0 };
    if (!yaml_emitter_initialize(&e)) return NULL;
    yaml_emitter_set_output(&e, scn_write, &o);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
             yaml_emitter_emit(&e, &ev) &&
             yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
             yaml_emitter_emit(&e, &ev) &&
             scn_emit_node(&e, sc->root, 0) &&
             yaml_document_end_event_initialize(&ev, 1) &&
             yaml_emitter_emit(&e, &ev) &&
             yaml_stream_end_event_initialize(&ev) &&
             yaml_emitter_emit(&e, &ev) &&
             yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    if (!ok) {
        free(o.buf);
        return NULL;
    }
    if (!o.buf) o.buf = calloc(1, 1);
    return o.buf;
}
