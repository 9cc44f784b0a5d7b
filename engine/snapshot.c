/*
 * snapshot.c — checkpoints of a whole simulation (spiral/snapshot.h; the
 * format is docs/snapshot.md).
 *
 * File = 24-byte header | msgpack body | 8-byte checksum:
 *   "SPIRALSN", u32 format version, u32 flags (0), u64 body length (all
 *   little-endian); the body is a sequence of msgpack values — the header
 *   map (entity names run-length coded), the engine map, then one
 *   [type index, payload] array per entity in id order; the trailer is a 64-bit checksum of the body
 *   (cks_* below).
 *
 * Writing streams the msgpack (msgpack-c's packer) through a 1 MiB buffer
 * into a temporary file beside the target, checksumming on the way, then
 * fsync + rename: atomic (sp_snapshot_encode builds the same bytes in
 * memory instead).  Bulk arrays — the
 * event pool, the random streams, the balance matrix — are little-endian
 * bins, so a 10^6-entity state costs a few bytes per value and a memcpy;
 * zeros are left out where they are common (event payload words, balances)
 * and population names (owner_0 .. owner_999999) are one run.
 *
 * Reading never trusts the file: the whole file is read (its size bounds
 * every length), the length and checksum are checked first, then each
 * top-level value is walked by a bounds checker (every container count and
 * string length must fit in the bytes left — so msgpack-c never allocates
 * for a count the file cannot hold) before msgpack_unpack() builds it in a
 * zone that is cleared after each value.  Values are read through the
 * typed reader below, the same one modules use: every type, length and
 * range is checked and the first error is recorded with where it happened.
 * Loading checks the whole structure without a world (the fuzz target calls
 * only that); restoring then applies it to a sim built from the scenario.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <msgpack.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/version.h"
#include "spiral/world.h"
#include "queue-internal.h"
#include "sim-internal.h"
#include "snapshot-internal.h"

#define EFORMAT SP_SNAPSHOT_EFORMAT
#define MAX_DEPTH 32                /* msgpack-c's own nesting limit */
#define EVENT_HEAD 23               /* t, k, target, kind, payload mask; then the payload words set in the mask */
#define REDEEM_BYTES 24             /* ready, tok, holder, amount */

/* ---- little-endian helpers ----------------------------------------------------- */

static void le64_put(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void le32_put(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t le32_get(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static double f64_of(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
static uint64_t u64_of(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* The checksum of the body: over its little-endian 64-bit words (the last
 * one zero-padded), h = mix((h ^ w) * K), mix(x) = x ^ (x >> 32), then the
 * length folded in the same way.  Each step is a bijection of h and of w,
 * so any change confined to one word is always detected; byte-at-a-time
 * FNV-1a was 8x slower (0.4 s per 124 MB here).  Incremental, so a file
 * can be checksummed while it streams out. */
#define CKS_K 0x9e3779b97f4a7c15ULL

struct cks {
    uint64_t h, n;
    unsigned char tail[8];
    unsigned nt;
};

static inline uint64_t cks_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * CKS_K;
    return h ^ (h >> 32);
}

static void cks_init(struct cks *c)
{
    c->h = 0xcbf29ce484222325ULL;
    c->n = 0;
    c->nt = 0;
}

static void cks_update(struct cks *c, const unsigned char *p, size_t len)
{
    c->n += len;
    while (c->nt && len) {
        c->tail[c->nt++ & 7] = *p++;
        len--;
        if (c->nt == 8) { c->h = cks_mix(c->h, le64_get(c->tail)); c->nt = 0; }
    }
    uint64_t h = c->h;
    for (; len >= 8; p += 8, len -= 8) h = cks_mix(h, le64_get(p));
    c->h = h;
    while (len--) c->tail[c->nt++ & 7] = *p++;    /* nt < 8 here: len < 8, nt == 0 */
}

static uint64_t cks_final(struct cks *c)
{
    uint64_t h = c->h;
    if (c->nt) {
        memset(c->tail + c->nt, 0, 8 - c->nt);
        h = cks_mix(h, le64_get(c->tail));
    }
    return cks_mix(h, c->n);
}

uint64_t sp_snapshot_checksum(const void *data, size_t len)
{
    struct cks c;
    cks_init(&c);
    cks_update(&c, data, len);
    return cks_final(&c);
}

/* ---- the writer ------------------------------------------------------------------ */

struct sp_snapshot_writer {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    int err;
    char msg[256];
    /* Payload shape check: values still owed by each open container; depth
     * 0 with counting on means the payload's one value is complete. */
    bool counting;
    int depth;
    uint64_t left[MAX_DEPTH + 1];
};

static int w_fail(struct sp_snapshot_writer *w, int code, const char *what)
{
    if (!w->err) {
        w->err = code;
        snprintf(w->msg, sizeof w->msg, "%s", what);
    }
    return w->err;
}

/* Account for one value (a container owes `owes` more). */
static int w_value(struct sp_snapshot_writer *w, uint64_t owes)
{
    if (w->err) return w->err;
    if (!w->counting) return SP_OK;
    if (w->depth == 0 || w->left[w->depth - 1] == 0)
        return w_fail(w, SP_EINVAL, "the payload has more values than declared (a snapshot op "
                      "must write exactly one value; containers exactly their count)");
    w->left[w->depth - 1]--;
    if (owes) {
        if (w->depth > MAX_DEPTH) return w_fail(w, SP_EINVAL, "payload nested too deeply");
        w->left[w->depth++] = owes;
    }
    while (w->depth > 1 && w->left[w->depth - 1] == 0) w->depth--;
    if (w->depth == 1 && w->left[0] == 0) w->depth = 0;
    return SP_OK;
}

static int w_rc(struct sp_snapshot_writer *w, int rc)
{
    return rc ? w_fail(w, SP_ENOMEM, "out of memory") : w->err;
}

int sp_snap_put_nil(struct sp_snapshot_writer *w)
{
    if (w_value(w, 0)) return w->err;
    return w_rc(w, msgpack_pack_nil(&w->pk));
}

int sp_snap_put_bool(struct sp_snapshot_writer *w, bool v)
{
    if (w_value(w, 0)) return w->err;
    return w_rc(w, v ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk));
}

int sp_snap_put_u64(struct sp_snapshot_writer *w, uint64_t v)
{
    if (w_value(w, 0)) return w->err;
    return w_rc(w, msgpack_pack_uint64(&w->pk, v));
}

int sp_snap_put_i64(struct sp_snapshot_writer *w, int64_t v)
{
    if (w_value(w, 0)) return w->err;
    return w_rc(w, msgpack_pack_int64(&w->pk, v));
}

int sp_snap_put_f64(struct sp_snapshot_writer *w, double v)
{
    if (w_value(w, 0)) return w->err;
    return w_rc(w, msgpack_pack_double(&w->pk, v));
}

int sp_snap_put_str(struct sp_snapshot_writer *w, const char *s)
{
    if (!s) return sp_snap_put_nil(w);
    if (w_value(w, 0)) return w->err;
    size_t n = strlen(s);
    return w_rc(w, msgpack_pack_str(&w->pk, n) || msgpack_pack_str_body(&w->pk, s, n));
}

int sp_snap_put_bytes(struct sp_snapshot_writer *w, const void *p, size_t n)
{
    if (w_value(w, 0)) return w->err;
    if (n > UINT32_MAX) return w_fail(w, SP_ERANGE, "a bin over 4 GiB");
    return w_rc(w, msgpack_pack_bin(&w->pk, n) || (n && msgpack_pack_bin_body(&w->pk, p, n)));
}

int sp_snap_put_array(struct sp_snapshot_writer *w, size_t n)
{
    if (n > UINT32_MAX) return w_fail(w, SP_ERANGE, "an array over 2^32 elements");
    if (w_value(w, n)) return w->err;
    return w_rc(w, msgpack_pack_array(&w->pk, n));
}

int sp_snap_put_map(struct sp_snapshot_writer *w, size_t n)
{
    if (n > UINT32_MAX) return w_fail(w, SP_ERANGE, "a map over 2^32 pairs");
    if (w_value(w, 2 * (uint64_t)n)) return w->err;
    return w_rc(w, msgpack_pack_map(&w->pk, n));
}

/* A bin of n 8-byte little-endian words, converted in chunks. */
static int put_words(struct sp_snapshot_writer *w, const void *v, size_t n)
{
    if (n > UINT32_MAX / 8) return w_fail(w, SP_ERANGE, "a bulk array over 2^29 values");
    if (w_value(w, 0)) return w->err;
    if (msgpack_pack_bin(&w->pk, 8 * n)) return w_rc(w, 1);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return w_rc(w, n && msgpack_pack_bin_body(&w->pk, v, 8 * n));
#else
    unsigned char tmp[4096];
    const unsigned char *src = v;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof tmp / 8 && i < n; k++, i++) {
            uint64_t u;
            memcpy(&u, src + 8 * i, 8);
            le64_put(tmp + 8 * k, u);
        }
        if (msgpack_pack_bin_body(&w->pk, tmp, 8 * k)) return w_rc(w, 1);
    }
    return SP_OK;
#endif
}

int sp_snap_put_f64s(struct sp_snapshot_writer *w, const double *v, size_t n) { return put_words(w, v, n); }
int sp_snap_put_u64s(struct sp_snapshot_writer *w, const uint64_t *v, size_t n) { return put_words(w, v, n); }
int sp_snap_put_i64s(struct sp_snapshot_writer *w, const int64_t *v, size_t n) { return put_words(w, v, n); }

int sp_snap_writer_error(const struct sp_snapshot_writer *w) { return w->err; }

/* ---- the reader ------------------------------------------------------------------ */

struct frame {
    const msgpack_object *items;     /* array elements, or */
    const msgpack_object_kv *kv;     /* map pairs (2 values each) */
    uint32_t n, i;                   /* values in the container, values read */
};

struct sp_snapshot_reader {
    struct sp_sim *sim;
    const char *where;               /* "entity 'x' (gbm)", "engine state" */
    const char *file;
    struct frame st[MAX_DEPTH + 2];
    int depth;
    int err;
    char msg[512];
};

static void r_init(struct sp_snapshot_reader *r, const msgpack_object *top, const char *file,
                   const char *where, struct sp_sim *sim)
{
    /* No memset of the whole reader: restore makes one per entity. */
    r->err = 0;
    r->msg[0] = '\0';
    r->sim = sim;
    r->file = file;
    r->where = where;
    r->st[0] = (struct frame){ top, NULL, 1, 0 };
    r->depth = 1;
}

__attribute__((format(printf, 2, 0)))
__attribute__((format(printf, 2, 0)))
static int r_failv(struct sp_snapshot_reader *r, const char *fmt, va_list ap)
{
    if (r->err) return r->err;
    r->err = EFORMAT;
    char buf[384];
    vsnprintf(buf, sizeof buf, fmt, ap);
    snprintf(r->msg, sizeof r->msg, "%s: %s", r->where, buf);
    return r->err;
}

int sp_snap_fail(struct sp_snapshot_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = r_failv(r, fmt, ap);
    va_end(ap);
    return rc;
}

int sp_snap_error(const struct sp_snapshot_reader *r) { return r->err; }
struct sp_sim *sp_snap_sim(struct sp_snapshot_reader *r) { return r->sim; }

static const char *type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "a non-negative integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "a bin";
    default: return "an ext";
    }
}

/* The next value of the current container, without consuming it. */
static const msgpack_object *r_peek(struct sp_snapshot_reader *r)
{
    if (r->err) return NULL;
    struct frame *f = &r->st[r->depth - 1];
    if (f->i >= f->n) {
        sp_snap_fail(r, "read past the end of a container of %u values (depth %d)", f->n,
                     r->depth - 1);
        return NULL;
    }
    if (f->kv) return f->i % 2 ? &f->kv[f->i / 2].val : &f->kv[f->i / 2].key;
    return &f->items[f->i];
}

static const msgpack_object *r_next(struct sp_snapshot_reader *r, msgpack_object_type want,
                                    const char *what)
{
    const msgpack_object *o = r_peek(r);
    if (!o) return NULL;
    bool ok = o->type == want ||
              (want == MSGPACK_OBJECT_FLOAT64 && (o->type == MSGPACK_OBJECT_FLOAT32 ||
                                                  o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                                                  o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)) ||
              (want == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
               o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) ||
              (want == MSGPACK_OBJECT_BIN && o->type == MSGPACK_OBJECT_STR);
    if (!ok) {
        struct frame *f = &r->st[r->depth - 1];
        sp_snap_fail(r, "value %u at depth %d: expected %s, found %s", f->i, r->depth - 1, what,
                     type_name(o->type));
        return NULL;
    }
    r->st[r->depth - 1].i++;
    return o;
}

int sp_snap_get_nil(struct sp_snapshot_reader *r)
{
    return r_next(r, MSGPACK_OBJECT_NIL, "nil") ? SP_OK : r->err;
}

int sp_snap_get_bool(struct sp_snapshot_reader *r, bool *v)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_BOOLEAN, "a bool");
    if (!o) return r->err;
    *v = o->via.boolean;
    return SP_OK;
}

int sp_snap_get_u64(struct sp_snapshot_reader *r, uint64_t *v)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_POSITIVE_INTEGER, "a non-negative integer");
    if (!o) return r->err;
    *v = o->via.u64;
    return SP_OK;
}

int sp_snap_get_u32(struct sp_snapshot_reader *r, uint32_t *v)
{
    uint64_t u = 0;
    if (sp_snap_get_u64(r, &u)) return r->err;
    if (u > UINT32_MAX) return sp_snap_fail(r, "%llu is out of range (32 bits)", (unsigned long long)u);
    *v = (uint32_t)u;
    return SP_OK;
}

int sp_snap_get_i64(struct sp_snapshot_reader *r, int64_t *v)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_NEGATIVE_INTEGER, "an integer");
    if (!o) return r->err;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) return sp_snap_fail(r, "integer out of range (int64)");
        *v = (int64_t)o->via.u64;
    } else {
        *v = o->via.i64;
    }
    return SP_OK;
}

int sp_snap_get_f64(struct sp_snapshot_reader *r, double *v)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_FLOAT64, "a number");
    if (!o) return r->err;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; break;
    default: *v = o->via.f64; break;
    }
    return SP_OK;
}

int sp_snap_get_bytes(struct sp_snapshot_reader *r, const void **p, size_t *n)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_BIN, "a bin or string");
    if (!o) return r->err;
    if (o->type == MSGPACK_OBJECT_STR) { *p = o->via.str.ptr; *n = o->via.str.size; }
    else { *p = o->via.bin.ptr; *n = o->via.bin.size; }
    return SP_OK;
}

int sp_snap_get_str(struct sp_snapshot_reader *r, char *buf, size_t size)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_STR, "a string");
    if (!o) return r->err;
    if (o->via.str.size >= size)
        return sp_snap_fail(r, "a string of %u bytes does not fit (max %zu)", o->via.str.size,
                            size ? size - 1 : 0);
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    if (strlen(buf) != o->via.str.size) return sp_snap_fail(r, "a string with a NUL byte");
    return SP_OK;
}

static int r_enter(struct sp_snapshot_reader *r, const msgpack_object *o, size_t *n)
{
    if (r->depth > MAX_DEPTH) return sp_snap_fail(r, "nested too deeply");
    struct frame *f = &r->st[r->depth++];
    if (o->type == MSGPACK_OBJECT_ARRAY) *f = (struct frame){ o->via.array.ptr, NULL, o->via.array.size, 0 };
    else *f = (struct frame){ NULL, o->via.map.ptr, 2 * o->via.map.size, 0 };
    if (n) *n = o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : o->via.map.size;
    return SP_OK;
}

int sp_snap_get_array(struct sp_snapshot_reader *r, size_t *n)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_ARRAY, "an array");
    return o ? r_enter(r, o, n) : r->err;
}

int sp_snap_get_map(struct sp_snapshot_reader *r, size_t *n)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_MAP, "a map");
    return o ? r_enter(r, o, n) : r->err;
}

int sp_snap_get_array_n(struct sp_snapshot_reader *r, size_t n)
{
    size_t got = 0;
    if (sp_snap_get_array(r, &got)) return r->err;
    if (got != n) return sp_snap_fail(r, "expected an array of %zu values, found %zu", n, got);
    return SP_OK;
}

int sp_snap_get_end(struct sp_snapshot_reader *r)
{
    if (r->err) return r->err;
    if (r->depth <= 1) return sp_snap_fail(r, "get_end without an open container");
    struct frame *f = &r->st[r->depth - 1];
    if (f->i != f->n) return sp_snap_fail(r, "%u of %u values left unread", f->n - f->i, f->n);
    r->depth--;
    return SP_OK;
}

int sp_snap_peek_count(struct sp_snapshot_reader *r, size_t *n)
{
    const msgpack_object *o = r_peek(r);
    if (!o) return r->err;
    if (o->type == MSGPACK_OBJECT_BIN) {
        if (o->via.bin.size % 8) return sp_snap_fail(r, "a bulk bin of %u bytes (not 8-byte values)", o->via.bin.size);
        *n = o->via.bin.size / 8;
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        *n = o->via.array.size;
    } else {
        return sp_snap_fail(r, "expected a bin or an array, found %s", type_name(o->type));
    }
    return SP_OK;
}

static int get_words(struct sp_snapshot_reader *r, void *v, size_t n)
{
    const void *p = NULL;
    size_t len = 0;
    if (sp_snap_get_bytes(r, &p, &len)) return r->err;
    if (n > SIZE_MAX / 8 || len != 8 * n)
        return sp_snap_fail(r, "expected a bin of %zu 8-byte values, found %zu bytes", n, len);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n) memcpy(v, p, 8 * n);
#else
    for (size_t i = 0; i < n; i++) {
        uint64_t u = le64_get((const unsigned char *)p + 8 * i);
        memcpy((unsigned char *)v + 8 * i, &u, 8);
    }
#endif
    return SP_OK;
}

int sp_snap_get_f64s(struct sp_snapshot_reader *r, double *v, size_t n) { return get_words(r, v, n); }
int sp_snap_get_u64s(struct sp_snapshot_reader *r, uint64_t *v, size_t n) { return get_words(r, v, n); }
int sp_snap_get_i64s(struct sp_snapshot_reader *r, int64_t *v, size_t n) { return get_words(r, v, n); }

/* Framework helpers: a map key that must be `key`; a bin of exactly `len`
 * bytes (`len` = SIZE_MAX: any length, returned in *got). */
static int get_key(struct sp_snapshot_reader *r, const char *key)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_STR, "a key");
    if (!o) return r->err;
    size_t n = strlen(key);
    if (o->via.str.size != n || memcmp(o->via.str.ptr, key, n))
        return sp_snap_fail(r, "expected the key '%s', found '%.*s'", key,
                            (int)(o->via.str.size < 64 ? o->via.str.size : 64), o->via.str.ptr);
    return SP_OK;
}

static int get_bin(struct sp_snapshot_reader *r, const char *key, size_t elem, size_t count,
                   const unsigned char **p, size_t *got)
{
    const void *v = NULL;
    size_t len = 0;
    if (get_key(r, key) || sp_snap_get_bytes(r, &v, &len)) return r->err;
    if (count == SIZE_MAX) {
        if (len % elem) return sp_snap_fail(r, "%s: %zu bytes is not a multiple of %zu", key, len, elem);
        *got = len / elem;
    } else if (count > SIZE_MAX / elem || len != elem * count) {
        return sp_snap_fail(r, "%s: expected %zu bytes, found %zu", key, elem * count, len);
    }
    *p = v;
    return SP_OK;
}

static int get_kv_u64(struct sp_snapshot_reader *r, const char *key, uint64_t *v)
{
    return get_key(r, key) ? r->err : sp_snap_get_u64(r, v);
}

static int get_kv_i64(struct sp_snapshot_reader *r, const char *key, int64_t *v)
{
    return get_key(r, key) ? r->err : sp_snap_get_i64(r, v);
}

/* A malloc'd copy of a string value. */
static int get_strdup(struct sp_snapshot_reader *r, char **out)
{
    const msgpack_object *o = r_next(r, MSGPACK_OBJECT_STR, "a string");
    if (!o) return r->err;
    if (memchr(o->via.str.ptr, 0, o->via.str.size)) return sp_snap_fail(r, "a string with a NUL byte");
    char *s = malloc((size_t)o->via.str.size + 1);
    if (!s) return sp_snap_fail(r, "out of memory");
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    *out = s;
    return SP_OK;
}

/* ---- bounds check of one msgpack value ------------------------------------------- */

/* Walk the value at data[*off] without allocating: every length must fit in
 * the bytes left and every container count too (each value takes at least
 * one byte), so msgpack_unpack can never be asked to allocate for more than
 * the file holds.  Advances *off past it; -1 if malformed or truncated. */
static int mp_check(const unsigned char *data, size_t len, size_t *off)
{
    size_t p = *off;
    uint64_t pending = 1;
    while (pending) {
        if (p >= len || pending > len - p) return -1;
        pending--;
        unsigned b = data[p++];
        uint64_t skip = 0, add = 0;
        size_t hdr = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) add = 2 * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f) add = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf) skip = b & 0x1f;
        else switch (b) {
        case 0xc4: case 0xd9: hdr = 1; break;               /* bin8, str8 */
        case 0xc5: case 0xda: hdr = 2; break;               /* bin16, str16 */
        case 0xc6: case 0xdb: hdr = 4; break;               /* bin32, str32 */
        case 0xc7: hdr = 1; skip = 1; break;                /* ext8: len, type */
        case 0xc8: hdr = 2; skip = 1; break;
        case 0xc9: hdr = 4; skip = 1; break;
        case 0xca: skip = 4; break;
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;                         /* fixext 1..16 */
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: case 0xde: hdr = 2; break;               /* array16, map16 */
        case 0xdd: case 0xdf: hdr = 4; break;               /* array32, map32 */
        default: return -1;                                 /* 0xc1: never used */
        }
        if (hdr) {
            if (len - p < hdr) return -1;
            uint64_t n = 0;
            for (size_t i = 0; i < hdr; i++) n = (n << 8) | data[p + i];
            p += hdr;
            if (b == 0xdc || b == 0xdd) add = n;
            else if (b == 0xde || b == 0xdf) add = 2 * n;
            else skip += n;
        }
        if (skip > len - p) return -1;
        p += skip;
        if (add > len - p) return -1;
        pending += add;
    }
    *off = p;
    return 0;
}

/* ---- the snapshot in memory --------------------------------------------------------- */

struct snap_event {
    sp_time t;
    uint64_t k;
    uint32_t target;
    uint16_t kind;
    uint64_t data[4];
};

struct sp_snapshot {
    char *name;                      /* for messages */
    unsigned char *data;             /* malloc'd, or mapped when `mapped` */
    bool mapped;
    size_t len, body_end;            /* body = [HEADER_SIZE, body_end) */
    msgpack_zone zone;
    /* header */
    uint32_t version;
    char *spiral_version, *scenario, *scenario_path;
    uint64_t seed, n_ents, n_tokens;
    char *out_path;                  /* the output being written (NULL: none) */
    size_t n_out;                    /* its tables and their rows at the snapshot */
    char **out_name;
    uint64_t *out_rows;
    size_t n_runs;                   /* entity names: runs of (prefix, count) */
    char **run_name;                 /* count 0: a literal name; else prefix0 .. prefix{count-1} */
    uint64_t *run_count;
    size_t n_types;
    char **type_kind, **type_name;   /* the module types, [kind, type] */
    sp_time now, horizon;
    /* engine */
    uint64_t n_events, n_trades, value_epoch;
    uint32_t pool, seq;
    size_t n_free, n_heap, n_redeem, bal_rows, n_summary;
    const unsigned char *gen, *free, *rng, *supply, *redeem;
    struct snap_event *events;       /* decoded, heap order */
    double *bal;                     /* decoded, bal_rows x n_tokens */
    char **token_names;
    uint64_t *tok_cache;             /* 4 per token: value_epoch, rate_epoch, value, rate bits */
    char **sum_names;
    double *sum_values;
    size_t ents_off;                 /* offset of the first entity record */
};

void sp_snapshot_destroy(struct sp_snapshot *s)
{
    if (!s) return;
    for (size_t i = 0; s->token_names && i < s->n_tokens; i++) free(s->token_names[i]);
    for (size_t i = 0; s->sum_names && i < s->n_summary; i++) free(s->sum_names[i]);
    for (size_t i = 0; s->type_kind && i < s->n_types; i++) free(s->type_kind[i]);
    for (size_t i = 0; s->type_name && i < s->n_types; i++) free(s->type_name[i]);
    for (size_t i = 0; s->run_name && i < s->n_runs; i++) free(s->run_name[i]);
    for (size_t i = 0; s->out_name && i < s->n_out; i++) free(s->out_name[i]);
    free(s->out_name);
    free(s->out_rows);
    free(s->out_path);
    free(s->run_name);
    free(s->run_count);
    free(s->events);
    free(s->bal);
    free(s->type_kind);
    free(s->type_name);
    free(s->token_names);
    free(s->sum_names);
    free(s->sum_values);
    free(s->tok_cache);
    free(s->spiral_version);
    free(s->scenario);
    free(s->scenario_path);
    msgpack_zone_destroy(&s->zone);
    if (s->mapped) munmap(s->data, s->len);
    else free(s->data);
    free(s->name);
    free(s);
}

const char *sp_snapshot_scenario(const struct sp_snapshot *s) { return s->scenario; }
const char *sp_snapshot_scenario_path(const struct sp_snapshot *s) { return s->scenario_path; }
const char *sp_snapshot_spiral_version(const struct sp_snapshot *s) { return s->spiral_version; }
uint64_t sp_snapshot_seed(const struct sp_snapshot *s) { return s->seed; }
sp_time sp_snapshot_time(const struct sp_snapshot *s) { return s->now; }
size_t sp_snapshot_entity_count(const struct sp_snapshot *s) { return (size_t)s->n_ents; }

/* Unpack the next top-level value at *off (bounds-checked first). */
static int next_value(struct sp_snapshot *s, size_t *off, msgpack_object *obj, const char *what,
                      struct sp_diag *d)
{
    size_t start = *off, end = start;
    if (mp_check(s->data, s->body_end, &end)) {
        sp_diag_error_at(d, s->name, 0, 0, "corrupt snapshot: the %s at byte %zu is malformed "
                         "or runs past the end of the body", what, start);
        return EFORMAT;
    }
    msgpack_zone_clear(&s->zone);
    size_t o = start;
    msgpack_unpack_return ret = msgpack_unpack((const char *)s->data, end, &o, &s->zone, obj);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
        sp_diag_error_at(d, s->name, 0, 0, "out of memory reading the %s", what);
        return SP_ENOMEM;
    }
    if ((ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES) || o != end) {
        sp_diag_error_at(d, s->name, 0, 0, "corrupt snapshot: cannot decode the %s at byte %zu",
                         what, start);
        return EFORMAT;
    }
    *off = end;
    return SP_OK;
}

static int reader_done(struct sp_snapshot *s, struct sp_snapshot_reader *r, struct sp_diag *d)
{
    if (!r->err && (r->depth != 1 || r->st[0].i != 1))
        sp_snap_fail(r, "%s", r->depth != 1 ? "a container was not closed (sp_snap_get_end)"
                                             : "the value was not read");
    /* While loading, the file is at fault; while restoring into a world, it
     * may be the world (a branch whose --set does not fit the state). */
    if (r->err) sp_diag_error_at(d, s->name, 0, 0, "%s: %s", r->sim ? "cannot restore" : "bad snapshot",
                                 r->msg);
    return r->err;
}

static int parse_header(struct sp_snapshot *s, size_t *off, struct sp_diag *d)
{
    msgpack_object o;
    int rc = next_value(s, off, &o, "header", d);
    if (rc) return rc;
    struct sp_snapshot_reader r;
    r_init(&r, &o, s->name, "header", NULL);
    size_t n;
    if (!sp_snap_get_map(&r, &n) && n != 11) sp_snap_fail(&r, "expected 11 keys, found %zu", n);
    if (!get_key(&r, "spiral")) get_strdup(&r, &s->spiral_version);
    if (!get_key(&r, "scenario_path")) get_strdup(&r, &s->scenario_path);
    if (!get_key(&r, "scenario")) get_strdup(&r, &s->scenario);
    get_kv_u64(&r, "seed", &s->seed);
    get_kv_i64(&r, "time", &s->now);
    get_kv_i64(&r, "horizon", &s->horizon);
    get_kv_u64(&r, "entities", &s->n_ents);
    get_kv_u64(&r, "tokens", &s->n_tokens);
    if (!get_key(&r, "types") && !sp_snap_get_array(&r, &s->n_types)) {
        s->type_kind = calloc(s->n_types + 1, sizeof *s->type_kind);
        s->type_name = calloc(s->n_types + 1, sizeof *s->type_name);
        if (!s->type_kind || !s->type_name) sp_snap_fail(&r, "out of memory");
        for (size_t i = 0; !r.err && i < s->n_types; i++) {
            sp_snap_get_array_n(&r, 2);
            get_strdup(&r, &s->type_kind[i]);
            get_strdup(&r, &s->type_name[i]);
            sp_snap_get_end(&r);
        }
        sp_snap_get_end(&r);
    }
    /* entity names: "name" or [prefix, count] for prefix0 .. prefix{count-1} */
    if (!get_key(&r, "names") && !sp_snap_get_array(&r, &s->n_runs)) {
        s->run_name = calloc(s->n_runs + 1, sizeof *s->run_name);
        s->run_count = calloc(s->n_runs + 1, sizeof *s->run_count);
        if (!s->run_name || !s->run_count) sp_snap_fail(&r, "out of memory");
        uint64_t total = 0;
        for (size_t i = 0; !r.err && i < s->n_runs; i++) {
            const msgpack_object *run = r_peek(&r);
            if (run && run->type == MSGPACK_OBJECT_ARRAY) {
                sp_snap_get_array_n(&r, 2);
                get_strdup(&r, &s->run_name[i]);
                sp_snap_get_u64(&r, &s->run_count[i]);
                sp_snap_get_end(&r);
                if (!r.err && (s->run_count[i] < 2 || s->run_count[i] > s->n_ents))
                    sp_snap_fail(&r, "names: a run of %llu names",
                                 (unsigned long long)s->run_count[i]);
            } else {
                get_strdup(&r, &s->run_name[i]);
            }
            total += s->run_count[i] ? s->run_count[i] : 1;
            if (!r.err && total > s->n_ents) sp_snap_fail(&r, "names: more names than entities");
        }
        sp_snap_get_end(&r);
        if (!r.err && total != s->n_ents)
            sp_snap_fail(&r, "names: %llu names for %llu entities", (unsigned long long)total,
                         (unsigned long long)s->n_ents);
    }
    /* the recorder's position: nil, or [path, [[table, rows], ...]] */
    if (!get_key(&r, "output")) {
        const msgpack_object *ov = r_peek(&r);
        if (ov && ov->type == MSGPACK_OBJECT_NIL) {
            sp_snap_get_nil(&r);
        } else if (!sp_snap_get_array_n(&r, 2) && !get_strdup(&r, &s->out_path) &&
                   !sp_snap_get_array(&r, &s->n_out)) {
            s->out_name = calloc(s->n_out + 1, sizeof *s->out_name);
            s->out_rows = calloc(s->n_out + 1, sizeof *s->out_rows);
            if (!s->out_name || !s->out_rows) sp_snap_fail(&r, "out of memory");
            for (size_t i = 0; !r.err && i < s->n_out; i++) {
                sp_snap_get_array_n(&r, 2);
                get_strdup(&r, &s->out_name[i]);
                sp_snap_get_u64(&r, &s->out_rows[i]);
                sp_snap_get_end(&r);
            }
            sp_snap_get_end(&r);
            sp_snap_get_end(&r);
        }
    }
    sp_snap_get_end(&r);
    if (!r.err && s->now < 0) sp_snap_fail(&r, "negative time");
    /* Each entity and token takes bytes in the file: bound the counts. */
    if (!r.err && (s->n_ents > s->len || s->n_tokens > s->len || s->n_ents >= SP_ID_NONE))
        sp_snap_fail(&r, "%llu entities and %llu tokens cannot fit in %zu bytes",
                     (unsigned long long)s->n_ents, (unsigned long long)s->n_tokens, s->len);
    return reader_done(s, &r, d);
}

/* The queue's structure, checked without building it: every index in the
 * pool either queued once or free once, keys well-formed, the heap ordered,
 * targets existing. */
static int check_queue(struct sp_snapshot *s, struct sp_snapshot_reader *r)
{
    if (s->pool % SP_QBLOCK || s->pool > MAX_EVENTS)
        return sp_snap_fail(r, "queue: a pool of %u events (must be a multiple of %u)", s->pool, SP_QBLOCK);
    if (s->seq > SEQ_LIMIT) return sp_snap_fail(r, "queue: sequence counter %u out of range", s->seq);
    if (s->n_heap + s->n_free != s->pool)
        return sp_snap_fail(r, "queue: %zu pending + %zu free events != pool of %u", s->n_heap,
                            s->n_free, s->pool);
    unsigned char *seen = calloc(s->pool / 8 + 1, 1);
    if (!seen) return sp_snap_fail(r, "out of memory");
    for (size_t i = 0; i < s->n_free && !r->err; i++) {
        uint32_t x = le32_get(s->free + 4 * i);
        if (x >= s->pool || seen[x / 8] & (1u << (x % 8)))
            sp_snap_fail(r, "queue: free list entry %zu (%u) out of range or repeated", i, x);
        else seen[x / 8] |= (unsigned char)(1u << (x % 8));
    }
    sp_time prev_t = 0;
    uint64_t prev_k = 0;
    for (size_t i = 0; i < s->n_heap && !r->err; i++) {
        const struct snap_event *e = &s->events[i];
        sp_time t = e->t;
        uint64_t k = e->k;
        uint32_t x = INDEX(K_INDEX(k));
        uint32_t seq = (uint32_t)(k >> 32) & (SEQ_LIMIT - 1);
        uint32_t target = e->target;
        if (x >= s->pool || seen[x / 8] & (1u << (x % 8)))
            { sp_snap_fail(r, "queue: event %zu has index %u, out of range or repeated", i, x); break; }
        seen[x / 8] |= (unsigned char)(1u << (x % 8));
        if (seq >= s->seq)
            sp_snap_fail(r, "queue: event %zu has sequence %u >= the counter %u", i, seq, s->seq);
        else if (target >= s->n_ents)
            sp_snap_fail(r, "queue: event %zu is for entity %u, but there are %llu", i, target,
                         (unsigned long long)s->n_ents);
        else if (t < 0)
            sp_snap_fail(r, "queue: event %zu at a negative time", i);
        else if (i > 0) {
            const struct snap_event *pe = &s->events[(i - 1) / 2];
            prev_t = pe->t;
            prev_k = pe->k;
            if (t < prev_t || (t == prev_t && k < prev_k))
                sp_snap_fail(r, "queue: the heap is out of order at %zu", i);
        }
        if (!r->err && t < s->now) sp_snap_fail(r, "queue: event %zu is in the past", i);
    }
    free(seen);
    return r->err;
}

/* The pending events: EVENT_HEAD bytes each (t i64, key u64, target u32,
 * kind u16, mask u8) then one u64 per payload word whose mask bit is set. */
static int decode_events(struct sp_snapshot *s, struct sp_snapshot_reader *r,
                         const unsigned char *p, size_t len)
{
    size_t n = 0;
    for (size_t at = 0; at < len; n++) {              /* count, checking sizes */
        if (len - at < EVENT_HEAD || p[at + 22] > 15)
            return sp_snap_fail(r, "queue: event %zu is truncated or has a bad payload mask", n);
        unsigned m = p[at + 22];
        size_t size = EVENT_HEAD + 8 * (size_t)((m & 1) + (m >> 1 & 1) + (m >> 2 & 1) + (m >> 3));
        if (len - at < size) return sp_snap_fail(r, "queue: event %zu is truncated", n);
        at += size;
    }
    s->events = calloc(n + 1, sizeof *s->events);
    if (!s->events) return sp_snap_fail(r, "out of memory");
    s->n_heap = n;
    for (size_t i = 0, at = 0; i < n; i++) {
        struct snap_event *e = &s->events[i];
        e->t = (sp_time)le64_get(p + at);
        e->k = le64_get(p + at + 8);
        e->target = le32_get(p + at + 16);
        e->kind = (uint16_t)(p[at + 20] | p[at + 21] << 8);
        unsigned m = p[at + 22];
        at += EVENT_HEAD;
        for (int j = 0; j < 4; j++)
            if (m >> j & 1) { e->data[j] = le64_get(p + at); at += 8; }
    }
    return SP_OK;
}

/* The balances: a bitmap per holder row (bit t: token t's balance is not
 * +0.0) and the f64 values of the set bits, row-major. */
static int decode_balances(struct sp_snapshot *s, struct sp_snapshot_reader *r,
                           const unsigned char *nz, const unsigned char *val, size_t n_val)
{
    size_t nt = s->n_tokens, mb = (nt + 7) / 8, cells = s->bal_rows * nt;
    s->bal = calloc(cells + 1, sizeof *s->bal);
    if (!s->bal) return sp_snap_fail(r, "out of memory");
    size_t v = 0;
    for (size_t row = 0; row < s->bal_rows; row++) {
        const unsigned char *m = nz + mb * row;
        for (size_t t = 0; t < nt; t++) {
            if (!(m[t / 8] >> (t % 8) & 1)) continue;
            if (v == n_val) return sp_snap_fail(r, "ledger: fewer values than the bitmap says");
            s->bal[row * nt + t] = f64_of(le64_get(val + 8 * v++));
        }
        if (nt % 8 && m[mb - 1] >> (nt % 8))
            return sp_snap_fail(r, "ledger: bits set for tokens that do not exist");
    }
    if (v != n_val) return sp_snap_fail(r, "ledger: more values than the bitmap says");
    return SP_OK;
}

static int parse_engine(struct sp_snapshot *s, size_t *off, struct sp_diag *d)
{
    msgpack_object o;
    int rc = next_value(s, off, &o, "engine state", d);
    if (rc) return rc;
    struct sp_snapshot_reader r;
    r_init(&r, &o, s->name, "engine state", NULL);
    size_t n = 0, got = 0;
    uint64_t u = 0;
    sp_snap_get_map(&r, &n);
    if (!r.err && n != 9) sp_snap_fail(&r, "expected 9 keys, found %zu", n);
    get_kv_u64(&r, "n_events", &s->n_events);
    get_kv_u64(&r, "n_trades", &s->n_trades);
    get_kv_u64(&r, "value_epoch", &s->value_epoch);
    /* queue */
    if (!get_key(&r, "queue") && !sp_snap_get_map(&r, &n) && n != 5)
        sp_snap_fail(&r, "queue: expected 5 keys, found %zu", n);
    if (!get_kv_u64(&r, "pool", &u) && u > MAX_EVENTS) sp_snap_fail(&r, "queue: pool too large");
    s->pool = (uint32_t)u;
    if (!get_kv_u64(&r, "seq", &u) && u > SEQ_LIMIT) sp_snap_fail(&r, "queue: seq out of range");
    s->seq = (uint32_t)u;
    get_bin(&r, "gen", 2, s->pool, &s->gen, &got);
    get_bin(&r, "free", 4, SIZE_MAX, &s->free, &s->n_free);
    const unsigned char *ev = NULL;
    size_t ev_len = 0;
    get_bin(&r, "events", 1, SIZE_MAX, &ev, &ev_len);
    if (!r.err) decode_events(s, &r, ev, ev_len);
    sp_snap_get_end(&r);
    if (!r.err) check_queue(s, &r);
    /* random streams */
    get_bin(&r, "rng", 32, s->n_ents, &s->rng, &got);
    for (size_t i = 0; !r.err && i < s->n_ents; i++) {
        const unsigned char *p = s->rng + 32 * i;
        if (!(le64_get(p) | le64_get(p + 8) | le64_get(p + 16) | le64_get(p + 24)))
            sp_snap_fail(&r, "rng: the stream of entity %zu is all zero", i);
    }
    /* tokens */
    if (!get_key(&r, "tokens") && !sp_snap_get_array(&r, &n) && n != s->n_tokens)
        sp_snap_fail(&r, "tokens: %zu entries for %llu tokens", n, (unsigned long long)s->n_tokens);
    if (!r.err) {
        s->token_names = calloc(s->n_tokens + 1, sizeof *s->token_names);
        s->tok_cache = calloc(4 * s->n_tokens + 1, sizeof *s->tok_cache);
        if (!s->token_names || !s->tok_cache) sp_snap_fail(&r, "out of memory");
    }
    for (size_t i = 0; !r.err && i < s->n_tokens; i++) {
        double v = 0, rt = 0;
        sp_snap_get_array_n(&r, 5);
        get_strdup(&r, &s->token_names[i]);
        sp_snap_get_u64(&r, &s->tok_cache[4 * i]);
        sp_snap_get_u64(&r, &s->tok_cache[4 * i + 1]);
        if (!sp_snap_get_f64(&r, &v)) s->tok_cache[4 * i + 2] = u64_of(v);
        if (!sp_snap_get_f64(&r, &rt)) s->tok_cache[4 * i + 3] = u64_of(rt);
        sp_snap_get_end(&r);
    }
    if (!r.err) sp_snap_get_end(&r);
    /* ledger */
    if (!get_key(&r, "ledger") && !sp_snap_get_map(&r, &n) && n != 4)
        sp_snap_fail(&r, "ledger: expected 4 keys, found %zu", n);
    if (!get_kv_u64(&r, "rows", &u) && u > s->n_ents)
        sp_snap_fail(&r, "ledger: %llu rows for %llu entities", (unsigned long long)u,
                     (unsigned long long)s->n_ents);
    s->bal_rows = (size_t)u;
    if (!r.err && s->n_tokens && s->bal_rows > s->len / 8 / s->n_tokens)
        sp_snap_fail(&r, "ledger: too many rows for the file");
    size_t mask_bytes = (s->n_tokens + 7) / 8;
    const unsigned char *nz = NULL, *val = NULL;
    size_t n_val = 0;
    get_bin(&r, "nz", 1, r.err ? 0 : s->bal_rows * mask_bytes, &nz, &got);
    get_bin(&r, "val", 8, SIZE_MAX, &val, &n_val);
    if (!r.err) decode_balances(s, &r, nz, val, n_val);
    get_bin(&r, "supply", 8, s->n_tokens, &s->supply, &got);
    sp_snap_get_end(&r);
    /* LST redemption queue */
    get_bin(&r, "redeem", REDEEM_BYTES, SIZE_MAX, &s->redeem, &s->n_redeem);
    for (size_t i = 0; !r.err && i < s->n_redeem; i++) {
        const unsigned char *p = s->redeem + REDEEM_BYTES * i;
        if (le32_get(p + 8) >= s->n_tokens || le32_get(p + 12) >= s->n_ents)
            sp_snap_fail(&r, "redeem: entry %zu names a token or holder that does not exist", i);
        else if (i > 0 && (sp_time)le64_get(p) < (sp_time)le64_get(p - REDEEM_BYTES))
            sp_snap_fail(&r, "redeem: the queue is out of order at %zu", i);
    }
    /* summary */
    if (!get_key(&r, "summary")) sp_snap_get_array(&r, &s->n_summary);
    if (!r.err) {
        s->sum_names = calloc(s->n_summary + 1, sizeof *s->sum_names);
        s->sum_values = calloc(s->n_summary + 1, sizeof *s->sum_values);
        if (!s->sum_names || !s->sum_values) sp_snap_fail(&r, "out of memory");
    }
    for (size_t i = 0; !r.err && i < s->n_summary; i++) {
        sp_snap_get_array_n(&r, 2);
        get_strdup(&r, &s->sum_names[i]);
        sp_snap_get_f64(&r, &s->sum_values[i]);
        sp_snap_get_end(&r);
    }
    if (!r.err) sp_snap_get_end(&r);
    sp_snap_get_end(&r);
    return reader_done(s, &r, d);
}

/* One entity record: [type index, payload]. */
static int open_record(struct sp_snapshot *s, size_t *off, size_t id, msgpack_object *o,
                       struct sp_diag *d)
{
    char what[64];
    snprintf(what, sizeof what, "record of entity %zu", id);
    int rc = next_value(s, off, o, what, d);
    if (rc) return rc;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[0].via.u64 >= s->n_types) {
        sp_diag_error_at(d, s->name, 0, 0, "bad snapshot: the %s is not [type index, payload] "
                         "with one of the %zu types", what, s->n_types);
        return EFORMAT;
    }
    return SP_OK;
}

/* The type index of the record at p (one that passed mp_check), read
 * without unpacking: a fixarray of 2, then an unsigned int (big-endian);
 * UINT64_MAX if it is not that.  *head: where the payload starts. */
static uint64_t record_type(const unsigned char *p, size_t *head)
{
    *head = 0;
    if (p[0] != 0x92) return UINT64_MAX;
    switch (p[1]) {
    case 0xcc: *head = 3; return p[2];
    case 0xcd: *head = 4; return (uint64_t)p[2] << 8 | p[3];
    case 0xce:
        *head = 6;
        return (uint64_t)p[2] << 24 | (uint64_t)p[3] << 16 | (uint64_t)p[4] << 8 | p[5];
    default:
        if (p[1] > 0x7f) return UINT64_MAX;
        *head = 2;
        return p[1];
    }
}

/* The same check while loading, without unpacking: bounds (mp_check), the
 * array header and the type index. */
static int check_record(struct sp_snapshot *s, size_t *off, size_t id, struct sp_diag *d)
{
    size_t start = *off;
    if (mp_check(s->data, s->body_end, off)) {
        sp_diag_error_at(d, s->name, 0, 0, "corrupt snapshot: the record of entity %zu at byte "
                         "%zu is malformed or runs past the end of the body", id, start);
        return EFORMAT;
    }
    size_t head;
    if (record_type(s->data + start, &head) >= s->n_types) {
        sp_diag_error_at(d, s->name, 0, 0, "bad snapshot: the record of entity %zu is not [type "
                         "index, payload] with one of the %zu types", id, s->n_types);
        return EFORMAT;
    }
    return SP_OK;
}

/* The name of entity i in the file, into buf. */
static const char *snap_entity_name(const struct sp_snapshot *s, size_t i, char *buf, size_t size)
{
    for (size_t r = 0; r < s->n_runs; r++) {
        uint64_t c = s->run_count[r] ? s->run_count[r] : 1;
        if (i < c) {
            if (s->run_count[r]) snprintf(buf, size, "%s%zu", s->run_name[r], i);
            else snprintf(buf, size, "%s", s->run_name[r]);
            return buf;
        }
        i -= (size_t)c;
    }
    snprintf(buf, size, "?");
    return buf;
}

static int parse(struct sp_snapshot *s, struct sp_diag *d)
{
    if (s->len < SP_SNAPSHOT_HEADER_SIZE + SP_SNAPSHOT_TRAILER_SIZE) {
        sp_diag_error_at(d, s->name, 0, 0, "not a spiral snapshot: only %zu bytes (truncated?)", s->len);
        return EFORMAT;
    }
    if (memcmp(s->data, SP_SNAPSHOT_MAGIC, 8)) {
        sp_diag_error_at(d, s->name, 0, 0, "not a spiral snapshot: wrong magic (expected "
                         "\"%s\")", SP_SNAPSHOT_MAGIC);
        return EFORMAT;
    }
    s->version = le32_get(s->data + 8);
    if (s->version != SP_SNAPSHOT_VERSION) {
        sp_diag_error_at(d, s->name, 0, 0, "unsupported snapshot format version %u (this spiral "
                         "%s reads version %u)", s->version, SPIRAL_VERSION, SP_SNAPSHOT_VERSION);
        return EFORMAT;
    }
    if (le32_get(s->data + 12) != 0) {
        sp_diag_error_at(d, s->name, 0, 0, "unsupported snapshot flags 0x%x", le32_get(s->data + 12));
        return EFORMAT;
    }
    uint64_t body = le64_get(s->data + 16);
    if (body != s->len - SP_SNAPSHOT_HEADER_SIZE - SP_SNAPSHOT_TRAILER_SIZE) {
        sp_diag_error_at(d, s->name, 0, 0, "corrupt snapshot: the header says %llu bytes of "
                         "data, the file has %zu (truncated or extended)",
                         (unsigned long long)body,
                         s->len - SP_SNAPSHOT_HEADER_SIZE - SP_SNAPSHOT_TRAILER_SIZE);
        return EFORMAT;
    }
    s->body_end = s->len - SP_SNAPSHOT_TRAILER_SIZE;
    uint64_t want = le64_get(s->data + s->body_end);
    uint64_t have = sp_snapshot_checksum(s->data + SP_SNAPSHOT_HEADER_SIZE,
                                         s->body_end - SP_SNAPSHOT_HEADER_SIZE);
    if (want != have) {
        sp_diag_error_at(d, s->name, 0, 0, "corrupt snapshot: checksum mismatch (stored "
                         "%016llx, computed %016llx)", (unsigned long long)want,
                         (unsigned long long)have);
        return EFORMAT;
    }
    size_t off = SP_SNAPSHOT_HEADER_SIZE;
    int rc = parse_header(s, &off, d);
    if (!rc) rc = parse_engine(s, &off, d);
    if (rc) return rc;
    s->ents_off = off;
    for (size_t i = 0; i < s->n_ents; i++)
        if ((rc = check_record(s, &off, i, d))) return rc;
    if (off != s->body_end) {
        sp_diag_error_at(d, s->name, 0, 0, "bad snapshot: %zu bytes after the last entity record",
                         s->body_end - off);
        return EFORMAT;
    }
    msgpack_zone_clear(&s->zone);
    return SP_OK;
}

static int load_owned(struct sp_snapshot **out, unsigned char *data, size_t len, bool mapped,
                      const char *name, struct sp_diag *d)
{
    *out = NULL;
    struct sp_snapshot *s = calloc(1, sizeof *s);
    if (!s || !msgpack_zone_init(&s->zone, 64 * 1024)) {
        free(s);
        if (mapped) munmap(data, len);
        else free(data);
        return SP_ENOMEM;
    }
    s->data = data;
    s->mapped = mapped;
    s->len = len;
    s->name = strdup(name ? name : "<snapshot>");
    int rc = s->name ? parse(s, d) : SP_ENOMEM;
    if (rc) { sp_snapshot_destroy(s); return rc; }
    *out = s;
    return SP_OK;
}

int sp_snapshot_load_buffer(struct sp_snapshot **out, const void *buf, size_t len,
                            const char *name, struct sp_diag *d)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) return SP_ENOMEM;
    if (len) memcpy(copy, buf, len);
    return load_owned(out, copy, len, false, name, d);
}

int sp_snapshot_load(struct sp_snapshot **out, const char *path, struct sp_diag *d)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        sp_diag_error_at(d, path, 0, 0, "cannot open the snapshot: %s", strerror(errno));
        return SP_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        sp_diag_error_at(d, path, 0, 0, "not a regular file");
        close(fd);
        return SP_EIO;
    }
    size_t len = (size_t)st.st_size;
    if (len >= SP_SNAPSHOT_HEADER_SIZE + SP_SNAPSHOT_TRAILER_SIZE) {
        /* Mapped and populated in one call: far cheaper than faulting in a
         * 100 MB buffer page by page (and no copy). */
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            return load_owned(out, m, len, true, path, d);
        }
    }
    unsigned char *data = malloc(len ? len : 1);
    if (!data) { close(fd); return SP_ENOMEM; }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, data + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got != len) {
        sp_diag_error_at(d, path, 0, 0, "cannot read the snapshot: %s", got < len ? "short read" : "");
        free(data);
        return SP_EIO;
    }
    return load_owned(out, data, len, false, path, d);
}

/* ---- writing ------------------------------------------------------------------------ */

static void put_key(struct sp_snapshot_writer *w, const char *k)
{
    if (!w->err) w_rc(w, msgpack_pack_str_with_body(&w->pk, k, strlen(k)));
}

static void put_kv_u64(struct sp_snapshot_writer *w, const char *k, uint64_t v)
{
    put_key(w, k);
    sp_snap_put_u64(w, v);
}

/* A bin whose body the caller then appends with w_body. */
static void put_bin_head(struct sp_snapshot_writer *w, const char *k, size_t n)
{
    put_key(w, k);
    if (n > UINT32_MAX) { w_fail(w, SP_ERANGE, "a part over 4 GiB"); return; }
    if (!w->err) w_rc(w, msgpack_pack_bin(&w->pk, n));
}

static void w_body(struct sp_snapshot_writer *w, const void *p, size_t n)
{
    if (!w->err && n) w_rc(w, msgpack_pack_bin_body(&w->pk, p, n));
}

static void write_queue(struct sp_snapshot_writer *w, const struct sp_queue *q)
{
    size_t pool = q->n_blocks * SP_QBLOCK;
    msgpack_pack_map(&w->pk, 5);
    put_kv_u64(w, "pool", pool);
    put_kv_u64(w, "seq", q->seq);
    unsigned char buf[4096];
    put_bin_head(w, "gen", 2 * pool);
    for (size_t i = 0; i < pool;) {
        size_t k = 0;
        for (; k < sizeof buf / 2 && i < pool; k++, i++) {
            uint16_t g = sp_queue_event_at(q, (uint32_t)i)->gen;
            buf[2 * k] = (unsigned char)g;
            buf[2 * k + 1] = (unsigned char)(g >> 8);
        }
        w_body(w, buf, 2 * k);
    }
    size_t n_free = pool - q->n;
    put_bin_head(w, "free", 4 * n_free);
    uint32_t x = q->free_head;
    for (size_t i = 0; i < n_free;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n_free; k++, i++) {
            le32_put(buf + 4 * k, x);
            x = sp_queue_event_at(q, x)->target;
        }
        w_body(w, buf, 4 * k);
    }
    size_t bytes = 0;
    for (size_t i = 0; i < q->n; i++) {
        const struct sp_event *ev = sp_queue_event_at(q, K_INDEX(q->heap[i].k));
        bytes += EVENT_HEAD;
        for (int j = 0; j < 4; j++) bytes += ev->data.u[j] ? 8 : 0;
    }
    put_bin_head(w, "events", bytes);
    for (size_t i = 0; i < q->n; i++) {
        unsigned char *e = buf;
        const struct sp_event *ev = sp_queue_event_at(q, K_INDEX(q->heap[i].k));
        le64_put(e, (uint64_t)q->heap[i].t);
        le64_put(e + 8, q->heap[i].k);
        le32_put(e + 16, ev->target);
        e[20] = (unsigned char)ev->kind;
        e[21] = (unsigned char)(ev->kind >> 8);
        unsigned m = 0;
        size_t at = EVENT_HEAD;
        for (int j = 0; j < 4; j++)
            if (ev->data.u[j]) { m |= 1u << j; le64_put(e + at, ev->data.u[j]); at += 8; }
        e[22] = (unsigned char)m;
        w_body(w, e, at);
    }
}

/* Sparse balances: "nz", a bitmap per row (bit t set: the balance of token
 * t is not +0.0 — a -0.0 is kept), then "val", the set values in order. */
static void write_balances(struct sp_snapshot_writer *w, const double *bal, size_t rows, size_t nt)
{
    size_t mb = (nt + 7) / 8, n_val = 0;
    unsigned char buf[4096];
    for (size_t i = 0; i < rows * nt; i++) n_val += u64_of(bal[i]) != 0;
    put_bin_head(w, "nz", rows * mb);
    for (size_t row = 0; row < rows;) {
        size_t k = 0;
        for (; row < rows && k + mb <= sizeof buf; row++, k += mb) {
            memset(buf + k, 0, mb);
            for (size_t t = 0; t < nt; t++)
                if (u64_of(bal[row * nt + t])) buf[k + t / 8] |= (unsigned char)(1u << (t % 8));
        }
        w_body(w, buf, k);
    }
    put_bin_head(w, "val", 8 * n_val);
    size_t k = 0;
    for (size_t i = 0; i < rows * nt; i++) {
        uint64_t u = u64_of(bal[i]);
        if (!u) continue;
        le64_put(buf + k, u);
        k += 8;
        if (k == sizeof buf) { w_body(w, buf, k); k = 0; }
    }
    w_body(w, buf, k);
}

static void write_engine(struct sp_snapshot_writer *w, struct sp_sim *sim)
{
    msgpack_pack_map(&w->pk, 9);
    put_kv_u64(w, "n_events", sim->n_events);
    put_kv_u64(w, "n_trades", sim->n_trades);
    put_kv_u64(w, "value_epoch", sim->value_epoch);
    put_key(w, "queue");
    write_queue(w, sim->queue);
    unsigned char buf[REDEEM_BYTES > 32 ? REDEEM_BYTES : 32];
    put_bin_head(w, "rng", 32 * sim->n_ents);
    for (size_t i = 0; i < sim->n_ents; i++) {
        for (int j = 0; j < 4; j++) le64_put(buf + 8 * j, sim->ents[i].rng.s[j]);
        w_body(w, buf, 32);
    }
    put_key(w, "tokens");
    msgpack_pack_array(&w->pk, sim->n_tokens);
    for (size_t i = 0; i < sim->n_tokens; i++) {
        const struct sp_token_info *t = &sim->tok_info[i];
        msgpack_pack_array(&w->pk, 5);
        put_key(w, sim->tokens[i]);
        sp_snap_put_u64(w, t->value_epoch);
        sp_snap_put_u64(w, t->rate_epoch);
        sp_snap_put_f64(w, t->value);
        sp_snap_put_f64(w, t->rate);
    }
    put_key(w, "ledger");
    msgpack_pack_map(&w->pk, 4);
    size_t rows = sim->bal_rows < sim->n_ents ? sim->bal_rows : sim->n_ents;
    put_kv_u64(w, "rows", rows);
    write_balances(w, sim->bal, rows, sim->n_tokens);
    put_key(w, "supply");
    put_words(w, sim->supply, sim->n_tokens);
    put_bin_head(w, "redeem", REDEEM_BYTES * (sim->n_redeem - sim->redeem_head));
    for (size_t i = sim->redeem_head; i < sim->n_redeem; i++) {
        const struct sp_redemption *e = &sim->redeem[i];
        le64_put(buf, (uint64_t)e->ready);
        le32_put(buf + 8, (uint32_t)e->tok);
        le32_put(buf + 12, e->holder);
        le64_put(buf + 16, u64_of(e->amount));
        w_body(w, buf, REDEEM_BYTES);
    }
    put_key(w, "summary");
    msgpack_pack_array(&w->pk, sim->n_summary);
    for (size_t i = 0; i < sim->n_summary; i++) {
        msgpack_pack_array(&w->pk, 2);
        put_key(w, sim->summary[i].name);
        sp_snap_put_f64(w, sim->summary[i].value);
    }
}

/* Refuse what cannot be written: a failed, finished or mid-handler sim, or
 * a module without the two ops (named, so a new module's author knows). */
static int check_writable(struct sp_sim *sim, struct sp_diag *d)
{
    const char *msg;
    if (sp_sim_failure(sim, &msg)) {
        sp_diag_error_at(d, NULL, 0, 0, "cannot snapshot a failed run (%s)", msg);
        return SP_ESTATE;
    }
    if (sim->queue->running || sim->finished) {
        sp_diag_error_at(d, NULL, 0, 0, "a snapshot is taken between events of a running "
                         "simulation, not %s", sim->finished ? "after it finished" : "inside a handler");
        return SP_ESTATE;
    }
    for (size_t i = 0; i < sim->n_ents; i++) {
        const struct sp_module_ops *ops = sim->ents[i].ops;
        if (!ops->snapshot || !ops->restore) {
            sp_diag_error_at(d, NULL, 0, 0, "cannot snapshot: module type '%s' (%s) of entity "
                             "'%s' does not implement %s", ops->type ? ops->type : "?",
                             ops->kind ? ops->kind : "?", sim->ents[i].name,
                             !ops->snapshot ? "snapshot" : "restore");
            return SP_ESTATE;
        }
    }
    return SP_OK;
}

/* Length of the run of names P0, P1, ... starting at entity i (0 if the
 * name is not P0 with P ending in a non-digit), its prefix length in *pl. */
static size_t name_run(const struct sp_sim *sim, size_t i, size_t *pl)
{
    const char *a = sim->ents[i].name;
    size_t n = strlen(a);
    if (n < 2 || a[n - 1] != '0' || (a[n - 2] >= '0' && a[n - 2] <= '9')) return 0;
    *pl = n - 1;
    size_t c = 1;
    char want[32];
    while (i + c < sim->n_ents) {
        const char *b = sim->ents[i + c].name;
        int k = snprintf(want, sizeof want, "%zu", c);
        if (strncmp(b, a, *pl) || strcmp(b + *pl, want) || k <= 0) break;
        c++;
    }
    return c;
}

/* Entity names, run-length: a population owner_0 .. owner_999999 is one
 * ["owner_", 1000000]; other names are strings. */
static void write_names(struct sp_snapshot_writer *w, struct sp_sim *sim)
{
    size_t runs = 0, pl;
    for (size_t i = 0; i < sim->n_ents; runs++) {
        size_t c = name_run(sim, i, &pl);
        i += c > 1 ? c : 1;
    }
    put_key(w, "names");
    if (!w->err) msgpack_pack_array(&w->pk, runs);
    for (size_t i = 0; i < sim->n_ents && !w->err;) {
        size_t c = name_run(sim, i, &pl);
        if (c > 1) {
            msgpack_pack_array(&w->pk, 2);
            w_rc(w, msgpack_pack_str_with_body(&w->pk, sim->ents[i].name, pl));
            sp_snap_put_u64(w, c);
            i += c;
        } else {
            put_key(w, sim->ents[i].name);
            i++;
        }
    }
}

/* The recorder's position: the output file and how many rows each of its
 * tables holds at the snapshot (nil without a recorder). */
static void write_output(struct sp_snapshot_writer *w, const struct sp_rec *rec)
{
    put_key(w, "output");
    if (w->err) return;
    if (!rec) { sp_snap_put_nil(w); return; }
    size_t n = sp_rec_table_count(rec);
    msgpack_pack_array(&w->pk, 2);
    put_key(w, sp_rec_path(rec));
    msgpack_pack_array(&w->pk, n);
    for (size_t i = 0; i < n && !w->err; i++) {
        const struct sp_rec_table *t = sp_rec_table_at(rec, i);
        msgpack_pack_array(&w->pk, 2);
        put_key(w, sp_rec_table_name(t));
        sp_snap_put_u64(w, sp_rec_table_rows(t));
    }
}

/* The body (header map, engine map, entity records) through w->pk. */
static int encode_body(struct sp_snapshot_writer *w, struct sp_sim *sim, const char *yaml,
                       const char *scenario_path, struct sp_diag *d)
{
    msgpack_pack_map(&w->pk, 11);
    put_key(w, "spiral");
    put_key(w, SPIRAL_VERSION);
    put_key(w, "scenario_path");
    put_key(w, scenario_path ? scenario_path : "");
    put_key(w, "scenario");
    put_key(w, yaml ? yaml : "");
    put_kv_u64(w, "seed", sim->seed);
    put_key(w, "time");
    sp_snap_put_i64(w, sim->now);
    put_key(w, "horizon");
    sp_snap_put_i64(w, sim->horizon);
    put_kv_u64(w, "entities", sim->n_ents);
    put_kv_u64(w, "tokens", sim->n_tokens);
    /* The module types once; records name theirs by index (bytes per entity). */
    const struct sp_module_ops **types = calloc(sim->n_ents + 1, sizeof *types);
    uint32_t *type_of = calloc(sim->n_ents + 1, sizeof *type_of);
    size_t n_types = 0;
    if (!types || !type_of) w_fail(w, SP_ENOMEM, "out of memory");
    for (size_t i = 0; !w->err && i < sim->n_ents; i++) {
        const struct sp_module_ops *ops = sim->ents[i].ops;
        size_t k = 0;
        while (k < n_types && types[k] != ops) k++;
        if (k == n_types) types[n_types++] = ops;
        type_of[i] = (uint32_t)k;
    }
    put_key(w, "types");
    if (!w->err) msgpack_pack_array(&w->pk, n_types);
    for (size_t k = 0; !w->err && k < n_types; k++) {
        msgpack_pack_array(&w->pk, 2);
        put_key(w, types[k]->kind ? types[k]->kind : "");
        put_key(w, types[k]->type ? types[k]->type : "");
    }
    free(types);
    write_names(w, sim);
    write_output(w, sim->rec);
    write_engine(w, sim);
    /* one record per entity */
    for (size_t i = 0; i < sim->n_ents && !w->err; i++) {
        const struct sp_entity *e = &sim->ents[i];
        msgpack_pack_array(&w->pk, 2);
        msgpack_pack_uint32(&w->pk, type_of[i]);
        w->counting = true;
        w->depth = 1;
        w->left[0] = 1;
        int rc = e->ops->snapshot(e->state, w);
        if (!w->err && rc) w_fail(w, rc, "its snapshot op failed");
        if (!w->err && w->depth != 0)
            w_fail(w, SP_EINVAL, w->left[0] ? "it wrote no value" : "a container is missing values");
        w->counting = false;
        if (w->err && w->err != SP_ENOMEM && w->err != SP_EIO)
            sp_diag_error_at(d, NULL, 0, 0, "cannot snapshot entity '%s' (%s %s): %s", e->name,
                             e->ops->kind, e->ops->type, w->msg);
    }
    free(type_of);
    if (w->err == SP_ENOMEM) sp_diag_error_at(d, NULL, 0, 0, "out of memory writing a snapshot");
    return w->err;
}

/* The scenario's path made absolute (when it exists), so a resume from
 * another directory still finds the files it names relative to itself. */
static const char *scenario_path(const struct sp_scenario *sc, char *buf)
{
    if (!sc) return NULL;
    const char *p = sp_scenario_path(sc);
    return p && realpath(p, buf) ? buf : p;
}

static void fixed_header(unsigned char head[SP_SNAPSHOT_HEADER_SIZE], uint64_t body)
{
    memset(head, 0, SP_SNAPSHOT_HEADER_SIZE);
    memcpy(head, SP_SNAPSHOT_MAGIC, 8);
    le32_put(head + 8, SP_SNAPSHOT_VERSION);
    le64_put(head + 16, body);
}

int sp_snapshot_encode(struct sp_sim *sim, const struct sp_scenario *sc, void **out,
                       size_t *len, struct sp_diag *d)
{
    *out = NULL;
    *len = 0;
    int rc = check_writable(sim, d);
    if (rc) return rc;
    char *yaml = sc ? sp_scenario_emit(sc) : NULL;
    if (sc && !yaml) return SP_ENOMEM;
    struct sp_snapshot_writer *w = calloc(1, sizeof *w);
    if (!w) { free(yaml); return SP_ENOMEM; }
    msgpack_sbuffer_init(&w->buf);
    /* Size the buffer once for the engine's part plus ~96 bytes of payload
     * per entity: growing a 100 MB buffer by doubling copies it twice. */
    size_t est = 4096 + (yaml ? strlen(yaml) : 0) + sim->queue->n_blocks * SP_QBLOCK * 6 +
                 sim->queue->n * (EVENT_HEAD + 32) + sim->n_ents * (32 + 8 * sim->n_tokens + 96);
    w->buf.data = malloc(est);
    if (w->buf.data) w->buf.alloc = est;
    msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
    unsigned char head[SP_SNAPSHOT_HEADER_SIZE];
    fixed_header(head, 0);
    if (msgpack_sbuffer_write(&w->buf, (const char *)head, sizeof head)) w_rc(w, 1);
    char abs[PATH_MAX];
    rc = encode_body(w, sim, yaml, scenario_path(sc, abs), d);
    free(yaml);
    if (!rc) {
        /* Patch the body length, append the checksum. */
        unsigned char *p = (unsigned char *)w->buf.data;
        size_t body = w->buf.size - SP_SNAPSHOT_HEADER_SIZE;
        le64_put(p + 16, body);
        unsigned char sum[8];
        le64_put(sum, sp_snapshot_checksum(p + SP_SNAPSHOT_HEADER_SIZE, body));
        if (msgpack_sbuffer_write(&w->buf, (const char *)sum, sizeof sum)) rc = SP_ENOMEM;
    }
    if (rc) {
        msgpack_sbuffer_destroy(&w->buf);
    } else {
        *len = w->buf.size;
        *out = msgpack_sbuffer_release(&w->buf);
    }
    free(w);
    return rc;
}

/* ---- atomic files ----------------------------------------------------------------------- */

/* PATH.tmp.XXXXXX beside `path`; *tmp is malloc'd. */
static int temp_open(const char *path, char **tmp, struct sp_diag *d)
{
    size_t pl = strlen(path);
    *tmp = malloc(pl + 16);
    if (!*tmp) return -1;
    memcpy(*tmp, path, pl);
    memcpy(*tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(*tmp);
    if (fd >= 0) {                /* mkstemp makes it 0600: give it the usual umask mode */
        mode_t mask = umask(0);
        umask(mask);
        fchmod(fd, 0666 & ~mask);
    }
    if (fd < 0) {
        sp_diag_error_at(d, path, 0, 0, "cannot create a temporary file beside it: %s",
                         strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return fd;
}

/* fsync, close, rename over `path`, fsync the directory; on failure (rc !=
 * 0 on entry, or any step) remove the temporary file.  Frees tmp. */
static int temp_commit(int fd, char *tmp, const char *path, int rc, struct sp_diag *d)
{
    if (!rc && fsync(fd)) rc = SP_EIO;
    if (close(fd) && !rc) rc = SP_EIO;
    if (!rc && rename(tmp, path)) rc = SP_EIO;
    if (rc) {
        if (rc == SP_EIO)
            sp_diag_error_at(d, path, 0, 0, "cannot write the snapshot: %s", strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    char *dir = strdup(path);               /* make the rename itself durable */
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *dn = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        int dfd = open(dn, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        free(dir);
    }
    return SP_OK;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return SP_EIO;
        p += k;
        n -= (size_t)k;
    }
    return SP_OK;
}

int sp_snapshot_write_file(const char *path, const void *data, size_t len, size_t chunk,
                           sp_snapshot_chunk_fn fn, void *arg, struct sp_diag *d)
{
    char *tmp;
    int fd = temp_open(path, &tmp, d);
    if (fd < 0) return tmp ? SP_EIO : SP_ENOMEM;
    if (!chunk) chunk = 1 << 20;
    const unsigned char *p = data;
    int rc = SP_OK;
    for (size_t done = 0; !rc && done < len;) {
        size_t n = len - done < chunk ? len - done : chunk;
        rc = write_all(fd, p + done, n);
        done += n;
        if (!rc && fn) fn(arg, done, len);
    }
    return temp_commit(fd, tmp, path, rc, d);
}

/* Streaming: the packer writes into a 1 MiB buffer flushed to the file, and
 * the checksum is computed on the way — no copy of the whole state in
 * memory (at 10^6 entities, first-touching a 100+ MB buffer cost more than
 * encoding it). */
struct stream {
    int fd;
    unsigned char *buf;
    size_t n, cap;
    uint64_t body;
    struct cks cks;
    int err;
};

static int stream_flush(struct stream *st)
{
    if (!st->err && st->n) st->err = write_all(st->fd, st->buf, st->n);
    st->n = 0;
    return st->err;
}

static int stream_write(void *data, const char *p, size_t len)
{
    struct stream *st = data;
    if (st->err) return -1;
    cks_update(&st->cks, (const unsigned char *)p, len);
    st->body += len;
    if (st->n + len > st->cap && stream_flush(st)) return -1;
    if (len >= st->cap) return write_all(st->fd, (const unsigned char *)p, len) ? (st->err = SP_EIO, -1) : 0;
    memcpy(st->buf + st->n, p, len);
    st->n += len;
    return 0;
}

int sp_snapshot_write(struct sp_sim *sim, const struct sp_scenario *sc, const char *path,
                      struct sp_diag *d)
{
    int rc = check_writable(sim, d);
    if (rc) return rc;
    char *yaml = sc ? sp_scenario_emit(sc) : NULL;
    struct sp_snapshot_writer *w = calloc(1, sizeof *w);
    struct stream st = { .fd = -1, .cap = 1 << 20 };
    st.buf = malloc(st.cap);
    if ((sc && !yaml) || !w || !st.buf) {
        free(yaml); free(w); free(st.buf);
        return SP_ENOMEM;
    }
    char *tmp;
    st.fd = temp_open(path, &tmp, d);
    if (st.fd < 0) {
        free(yaml); free(w); free(st.buf);
        return tmp ? SP_EIO : SP_ENOMEM;
    }
    unsigned char head[SP_SNAPSHOT_HEADER_SIZE];
    fixed_header(head, 0);
    rc = write_all(st.fd, head, sizeof head);
    cks_init(&st.cks);
    msgpack_packer_init(&w->pk, &st, stream_write);
    char abs[PATH_MAX];
    if (!rc) rc = encode_body(w, sim, yaml, scenario_path(sc, abs), d);
    if (!rc && stream_flush(&st)) rc = SP_EIO;
    if (!rc) {                               /* trailer, then the real length */
        unsigned char sum[8];
        le64_put(sum, cks_final(&st.cks));
        fixed_header(head, st.body);
        if (write_all(st.fd, sum, sizeof sum) || pwrite(st.fd, head, sizeof head, 0) != sizeof head)
            rc = SP_EIO;
    }
    if (st.err && rc != SP_EIO) rc = SP_EIO;
    free(yaml);
    free(w);
    free(st.buf);
    return temp_commit(st.fd, tmp, path, rc, d);
}

/* ---- restoring ------------------------------------------------------------------------ */

int sp_snapshot_build_world(const struct sp_snapshot *s, const struct sp_registry *reg,
                            const char *const *sets, size_t n_sets, struct sp_scenario **sc,
                            struct sp_world_cfg *cfg, struct sp_sim **sim, struct sp_diag *d)
{
    *sc = NULL;
    *sim = NULL;
    const char *path = s->scenario_path && *s->scenario_path ? s->scenario_path : s->name;
    int rc = sp_scenario_load_string(sc, path, s->scenario, strlen(s->scenario), d);
    for (size_t i = 0; !rc && i < n_sets; i++) rc = sp_scenario_set(*sc, sets[i], d);
    if (!rc) rc = sp_world_bind(*sc, reg, cfg, d);
    if (!rc) rc = sp_world_build(sim, cfg, d);
    if (rc) {
        sp_scenario_destroy(*sc);
        *sc = NULL;
    }
    return rc;
}

static int restore_queue(const struct sp_snapshot *s, struct sp_queue *q)
{
    int rc = sp_queue_reset_pool(q, s->pool, s->n_heap);
    if (rc) return rc;
    for (size_t i = 0; i < s->pool; i++)
        sp_queue_event_at(q, (uint32_t)i)->gen = (uint16_t)(s->gen[2 * i] | s->gen[2 * i + 1] << 8);
    q->free_head = UINT32_MAX;
    for (size_t i = s->n_free; i-- > 0;) {
        uint32_t x = le32_get(s->free + 4 * i);
        sp_queue_event_at(q, x)->target = q->free_head;
        q->free_head = x;
    }
    for (size_t i = 0; i < s->n_heap; i++) {
        const struct snap_event *e = &s->events[i];
        struct entry en = { e->t, e->k };
        struct sp_event *ev = sp_queue_event_at(q, K_INDEX(en.k));
        ev->t = en.t;
        ev->key = en.k & ~(uint64_t)TRACKED;
        ev->target = e->target;
        ev->kind = e->kind;
        for (int j = 0; j < 4; j++) ev->data.u[j] = e->data[j];
        q->heap[i] = en;
        if (en.k & TRACKED) q->slot[ev->index] = (uint32_t)i;
    }
    q->n = s->n_heap;
    q->seq = s->seq;
    return sp_queue_verify(q) ? SP_EMODEL : SP_OK;
}

static int restore_engine(const struct sp_snapshot *s, struct sp_sim *sim, struct sp_diag *d)
{
    /* The ledger and summary first (they allocate), so a failure leaves the
     * sim as it was built. */
    size_t nt = sim->n_tokens;
    double *bal = malloc((s->bal_rows * nt > 0 ? s->bal_rows * nt : 1) * sizeof *bal);
    struct sp_redemption *red = malloc((s->n_redeem ? s->n_redeem : 1) * sizeof *red);
    struct sp_summary_item *sum = calloc(s->n_summary ? s->n_summary : 1, sizeof *sum);
    bool ok = bal && red && sum;
    for (size_t i = 0; ok && i < s->n_summary; i++) ok = (sum[i].name = strdup(s->sum_names[i]));
    if (!ok) {
        for (size_t i = 0; sum && i < s->n_summary; i++) free(sum[i].name);
        free(bal); free(red); free(sum);
        return SP_ENOMEM;
    }
    for (size_t i = 0; i < s->n_redeem; i++) {
        const unsigned char *p = s->redeem + REDEEM_BYTES * i;
        red[i] = (struct sp_redemption){ (sp_time)le64_get(p), (sp_token)le32_get(p + 8),
                                         le32_get(p + 12), f64_of(le64_get(p + 16)) };
        if (sim->tok_info[red[i].tok].kind != SP_TOKEN_LST) {
            sp_diag_error_at(d, s->name, 0, 0, "bad snapshot: a redemption of %s, which is not "
                             "an lst", sim->tokens[red[i].tok]);
            for (size_t k = 0; k < s->n_summary; k++) free(sum[k].name);
            free(bal); free(red); free(sum);
            return EFORMAT;
        }
    }
    int rc = restore_queue(s, sim->queue);
    if (rc) {
        for (size_t k = 0; k < s->n_summary; k++) free(sum[k].name);
        free(bal); free(red); free(sum);
        sp_diag_error_at(d, s->name, 0, 0, "cannot rebuild the event queue: %s", sp_strerror(rc));
        return rc;
    }
    if (s->bal_rows && nt) memcpy(bal, s->bal, s->bal_rows * nt * sizeof *bal);
    free(sim->bal);
    sim->bal = bal;
    sim->bal_rows = s->bal_rows;
    for (size_t i = 0; i < nt; i++) sim->supply[i] = f64_of(le64_get(s->supply + 8 * i));
    free(sim->redeem);
    sim->redeem = red;
    sim->redeem_head = 0;
    sim->n_redeem = sim->cap_redeem = s->n_redeem;
    if (!s->n_redeem) sim->cap_redeem = 1;
    sim->redeem_next = s->n_redeem ? red[0].ready : SP_TIME_MAX;
    for (size_t i = 0; i < sim->n_summary; i++) free(sim->summary[i].name);
    free(sim->summary);
    sim->summary = sum;
    sim->n_summary = s->n_summary;
    sim->cap_summary = s->n_summary ? s->n_summary : 1;
    for (size_t i = 0; i < sim->n_ents; i++)
        for (int j = 0; j < 4; j++) sim->ents[i].rng.s[j] = le64_get(s->rng + 32 * i + 8 * j);
    for (size_t i = 0; i < nt; i++) {
        struct sp_token_info *t = &sim->tok_info[i];
        t->value_epoch = s->tok_cache[4 * i];
        t->rate_epoch = s->tok_cache[4 * i + 1];
        t->value = f64_of(s->tok_cache[4 * i + 2]);
        t->rate = f64_of(s->tok_cache[4 * i + 3]);
        t->busy = false;
    }
    sim->now = s->now;
    sim->n_events = s->n_events;
    sim->n_trades = s->n_trades;
    sim->value_epoch = s->value_epoch;
    return SP_OK;
}

/* Walking the name runs alongside the entities. */
struct name_cursor { size_t run; uint64_t j; };

static bool name_matches(const struct sp_snapshot *s, struct name_cursor *c, const char *name)
{
    if (c->run >= s->n_runs) return false;
    const char *p = s->run_name[c->run];
    bool ok;
    if (!s->run_count[c->run]) {
        ok = !strcmp(p, name);
        c->run++;
        return ok;
    }
    size_t pl = strlen(p);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)c->j);
    ok = !strncmp(name, p, pl) && !strcmp(name + pl, num);
    if (++c->j == s->run_count[c->run]) { c->run++; c->j = 0; }
    return ok;
}

int sp_snapshot_restore(const struct sp_snapshot *cs, struct sp_sim *sim, struct sp_diag *d)
{
    struct sp_snapshot *s = (struct sp_snapshot *)cs;     /* the zone is scratch */
    if (sim->queue->running || sim->finished || sim->fail_code) {
        sp_diag_error_at(d, NULL, 0, 0, "restore needs a started sim that is not running, "
                         "finished or failed");
        return SP_ESTATE;
    }
    /* The world must be the one in the file: same entities, same tokens. */
    if (sim->n_ents != s->n_ents || sim->n_tokens != s->n_tokens) {
        sp_diag_error_at(d, s->name, 0, 0, "the snapshot has %llu entities and %llu tokens, the "
                         "world built from its scenario %zu and %zu",
                         (unsigned long long)s->n_ents, (unsigned long long)s->n_tokens,
                         sim->n_ents, sim->n_tokens);
        return EFORMAT;
    }
    for (size_t i = 0; i < s->n_tokens; i++)
        if (strcmp(s->token_names[i], sim->tokens[i])) {
            sp_diag_error_at(d, s->name, 0, 0, "token %zu is '%s' in the snapshot, '%s' in the "
                             "world", i, s->token_names[i], sim->tokens[i]);
            return EFORMAT;
        }
    for (size_t i = 0; i < s->n_ents; i++)
        if (!sim->ents[i].ops->restore) {
            sp_diag_error_at(d, NULL, 0, 0, "cannot restore: module type '%s' (%s) does not "
                             "implement restore", sim->ents[i].ops->type, sim->ents[i].ops->kind);
            return SP_ESTATE;
        }
    /* One pass over the records: each is checked against the world's entity
     * (name, kind, type) just before its module reads it.  On any failure
     * the sim is half-restored: destroy it. */
    int rc = restore_engine(s, sim, d);
    if (rc) return rc;
    size_t off = s->ents_off;
    struct name_cursor cur = { 0, 0 };
    for (size_t i = 0; i < s->n_ents; i++) {
        msgpack_object o;
        if ((rc = open_record(s, &off, i, &o, d))) return rc;
        struct sp_entity *e = &sim->ents[i];
        size_t k = (size_t)o.via.array.ptr[0].via.u64;
        if (!name_matches(s, &cur, e->name) ||
            strcmp(s->type_kind[k], e->ops->kind ? e->ops->kind : "") ||
            strcmp(s->type_name[k], e->ops->type ? e->ops->type : "")) {
            char nm[256];
            sp_diag_error_at(d, s->name, 0, 0, "entity %zu is '%s' (%s %s) in the snapshot, '%s' "
                             "(%s %s) in the world", i, snap_entity_name(s, i, nm, sizeof nm),
                             s->type_kind[k], s->type_name[k], e->name, e->ops->kind, e->ops->type);
            return EFORMAT;
        }
        char where[300];
        snprintf(where, sizeof where, "entity '%s' (%s %s)", e->name, e->ops->kind, e->ops->type);
        struct sp_snapshot_reader r;
        r_init(&r, &o.via.array.ptr[1], s->name, where, sim);
        int mrc = e->ops->restore(e->state, &r);
        if (!r.err && mrc) sp_snap_fail(&r, "its restore op failed: %s", sp_strerror(mrc));
        if ((rc = reader_done(s, &r, d))) return rc;
    }
    msgpack_zone_clear(&s->zone);
    const char *msg;
    if ((rc = sp_sim_failure(sim, &msg))) {
        sp_diag_error_at(d, s->name, 0, 0, "restore failed: %s", msg);
        return rc;
    }
    return SP_OK;
}

/* ---- comparing two snapshots (tests, spiral-snapcheck) ---------------------------------- */

static int diff_bytes(const unsigned char *a, const unsigned char *b, size_t n, size_t elem)
{
    for (size_t i = 0; i < n * elem; i++)
        if (a[i] != b[i]) return (int)(i / elem);
    return -1;
}

int sp_snapshot_diff(const struct sp_snapshot *a, const struct sp_snapshot *b, char *msg,
                     size_t size)
{
#define DIFF(...) do { snprintf(msg, size, __VA_ARGS__); return 1; } while (0)
    if (a->n_ents != b->n_ents || a->n_tokens != b->n_tokens)
        DIFF("different worlds: %llu/%llu entities, %llu/%llu tokens",
             (unsigned long long)a->n_ents, (unsigned long long)b->n_ents,
             (unsigned long long)a->n_tokens, (unsigned long long)b->n_tokens);
    if (a->now != b->now) DIFF("time differs: %lld vs %lld us", (long long)a->now, (long long)b->now);
    if (a->n_events != b->n_events)
        DIFF("n_events differs: %llu vs %llu", (unsigned long long)a->n_events,
             (unsigned long long)b->n_events);
    if (a->n_trades != b->n_trades)
        DIFF("n_trades differs: %llu vs %llu", (unsigned long long)a->n_trades,
             (unsigned long long)b->n_trades);
    if (a->value_epoch != b->value_epoch) DIFF("token value epoch differs");
    int k;
    if ((k = diff_bytes(a->rng, b->rng, a->n_ents, 32)) >= 0)
        DIFF("random stream of entity %d differs", k);
    if (a->pool != b->pool || a->seq != b->seq || a->n_free != b->n_free || a->n_heap != b->n_heap)
        DIFF("event queue differs: pool %u/%u, seq %u/%u, free %zu/%zu, pending %zu/%zu",
             a->pool, b->pool, a->seq, b->seq, a->n_free, b->n_free, a->n_heap, b->n_heap);
    for (size_t i = 0; i < a->n_heap; i++) {
        const struct snap_event *ea = &a->events[i], *eb = &b->events[i];
        if (ea->t != eb->t || ea->k != eb->k || ea->target != eb->target || ea->kind != eb->kind ||
            memcmp(ea->data, eb->data, sizeof ea->data))
            DIFF("event queue differs at heap slot %zu: t %lld vs %lld, target %u vs %u, kind %u "
                 "vs %u", i, (long long)ea->t, (long long)eb->t, ea->target, eb->target,
                 ea->kind, eb->kind);
    }
    if ((k = diff_bytes(a->gen, b->gen, a->pool, 2)) >= 0) DIFF("event generation %d differs", k);
    if ((k = diff_bytes(a->free, b->free, a->n_free, 4)) >= 0) DIFF("event free list differs at %d", k);
    if (a->bal_rows != b->bal_rows) DIFF("ledger rows differ");
    if ((k = diff_bytes((const unsigned char *)a->bal, (const unsigned char *)b->bal,
                        a->bal_rows * a->n_tokens, 8)) >= 0)
        DIFF("ledger balance of holder %llu, token %s differs: %.17g vs %.17g",
             (unsigned long long)((size_t)k / a->n_tokens), a->token_names[(size_t)k % a->n_tokens],
             a->bal[k], b->bal[k]);
    if ((k = diff_bytes(a->supply, b->supply, a->n_tokens, 8)) >= 0)
        DIFF("supply of token %s differs", a->token_names[k]);
    if (memcmp(a->tok_cache, b->tok_cache, 32 * a->n_tokens)) DIFF("token value cache differs");
    if (a->n_redeem != b->n_redeem || (k = diff_bytes(a->redeem, b->redeem, a->n_redeem, 24)) >= 0)
        DIFF("lst redemption queue differs");
    if (a->n_summary != b->n_summary) DIFF("summary items differ in number");
    for (size_t i = 0; i < a->n_summary; i++)
        if (strcmp(a->sum_names[i], b->sum_names[i]) || u64_of(a->sum_values[i]) != u64_of(b->sum_values[i]))
            DIFF("summary item %s differs", a->sum_names[i]);
    size_t oa = a->ents_off, ob = b->ents_off;
    for (size_t i = 0; i < a->n_ents; i++) {
        size_t sa = oa, sb = ob;
        if (mp_check(a->data, a->body_end, &oa) || mp_check(b->data, b->body_end, &ob))
            DIFF("record %zu unreadable", i);
        if (oa - sa != ob - sb || memcmp(a->data + sa, b->data + sb, oa - sa)) {
            size_t n = oa - sa < ob - sb ? oa - sa : ob - sb, at = 0;
            while (at < n && a->data[sa + at] == b->data[sb + at]) at++;
            char nm[256];
            DIFF("entity %zu (%s) payload differs at byte %zu (records of %zu and %zu bytes)",
                 i, snap_entity_name(a, i, nm, sizeof nm), at, oa - sa, ob - sb);
        }
    }
    return 0;
#undef DIFF
}

long sp_snapshot_payload_offset(const struct sp_snapshot *s, const char *name)
{
    size_t off = s->ents_off;
    char nm[512];
    for (size_t i = 0; i < s->n_ents; i++) {
        size_t start = off;
        if (mp_check(s->data, s->body_end, &off)) return -1;
        if (strcmp(snap_entity_name(s, i, nm, sizeof nm), name)) continue;
        size_t head;
        return record_type(s->data + start, &head) < s->n_types ? (long)(start + head) : -1;
    }
    return -1;
}

/* ---- describing a snapshot (spiral info FILE.snap) ------------------------------- */

const char *sp_snapshot_name(const struct sp_snapshot *s, char *buf, size_t size)
{
    /* The resolved YAML (sp_scenario_emit) has `name: X` at the top level. */
    const char *y = s->scenario ? s->scenario : "";
    const char *p = !strncmp(y, "name: ", 6) ? y : strstr(y, "\nname: ");
    snprintf(buf, size, "run");
    if (!p) return buf;
    p += *p == '\n' ? 7 : 6;
    size_t n = strcspn(p, "\n");
    if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) { p++; n -= 2; }
    if (n && n < size && !memchr(p, '/', n)) snprintf(buf, size, "%.*s", (int)n, p);
    return buf;
}

void sp_snapshot_print_info(const struct sp_snapshot *s, FILE *out)
{
    char name[256], t[64], h[64];
    fprintf(out, "%s: spiral snapshot, format %u, %.1f kB, checksum ok\n", s->name, s->version,
            (double)s->len / 1024.0);
    fprintf(out, "  written by   spiral %s (this is %s)\n", s->spiral_version, SPIRAL_VERSION);
    fprintf(out, "  scenario     %s (name %s; the resolved text is inside)\n",
            s->scenario_path && *s->scenario_path ? s->scenario_path : "(none)",
            sp_snapshot_name(s, name, sizeof name));
    fprintf(out, "  seed         %llu\n", (unsigned long long)s->seed);
    if (s->out_path) {
        uint64_t rows = 0;
        for (size_t i = 0; i < s->n_out; i++) rows += s->out_rows[i];
        fprintf(out, "  output       %s (%llu rows in %zu tables up to here)\n", s->out_path,
                (unsigned long long)rows, s->n_out);
    } else {
        fprintf(out, "  output       none\n");
    }
    fprintf(out, "  time         %s of horizon %s\n", sp_format_duration(s->now, t, sizeof t),
            sp_format_duration(s->horizon, h, sizeof h));
    fprintf(out, "  entities     %llu\n", (unsigned long long)s->n_ents);
    /* per type: count the records (their type index is read in place) */
    size_t *count = calloc(s->n_types + 1, sizeof *count);
    size_t off = s->ents_off;
    for (size_t i = 0; count && i < s->n_ents; i++) {
        size_t start = off;
        if (mp_check(s->data, s->body_end, &off)) break;
        size_t head;
        uint64_t k = record_type(s->data + start, &head);
        if (k < s->n_types) count[k]++;
    }
    for (size_t k = 0; count && k < s->n_types; k++)
        fprintf(out, "    %-10s %-20s %zu\n", s->type_kind[k], s->type_name[k], count[k]);
    free(count);
    fprintf(out, "  tokens       %llu:", (unsigned long long)s->n_tokens);
    for (size_t i = 0; i < s->n_tokens; i++) fprintf(out, " %s", s->token_names[i]);
    fprintf(out, "\n  events       %zu pending, %llu dispatched\n", s->n_heap,
            (unsigned long long)s->n_events);
    if (s->n_redeem) fprintf(out, "  redemptions  %zu pending\n", s->n_redeem);
    fprintf(out, "Continue it with: spiral resume %s [--until T] [-o OUT.h5] [--set KEY=VAL ...]\n",
            s->name);
}

const char *sp_snapshot_output(const struct sp_snapshot *s) { return s->out_path; }
size_t sp_snapshot_output_tables(const struct sp_snapshot *s) { return s->n_out; }
const char *sp_snapshot_output_table(const struct sp_snapshot *s, size_t i, uint64_t *rows)
{
    if (i >= s->n_out) return NULL;
    if (rows) *rows = s->out_rows[i];
    return s->out_name[i];
}
