/*
 * recorder.c — the streaming HDF5 writer behind spiral/recorder.h.
 *
 * Structure.  A `struct sp_rec` owns one HDF5 file id and every table made on
 * it.  A `struct sp_rec_table` owns one HDF5 group and one chunked 1-D dataset
 * per column, plus one malloc'd block that holds, for each column, a buffer
 * of exactly `chunk_rows` values in the column's native C type (double,
 * int64_t, int32_t, int16_t, int8_t), so H5Dwrite never converts.
 *
 *     sp_rec ──tables[]──> sp_rec_table ──cols[]──> rec_col { ds, buf }
 *        │                      │
 *        file, str_type,        group, file_space, mem_space, block
 *        scalar, lcpl
 *
 * Invariants, between calls:
 *   - every column dataset of a table holds `n_written` rows (writer side),
 *     a multiple of chunk_rows until sp_rec_close() writes the tail (so HDF5
 *     only ever sees whole, aligned chunks on the hot path); n_queued >=
 *     n_written counts rows handed to the writer;
 *   - 0 <= n_buf < chunk_rows rows wait in the current block;
 *   - `file_space` has the datasets' current extent (one dataspace shared by
 *     all columns of the table; its extent and selection are reset per chunk
 *     write rather than re-created), `mem_space` has chunk_rows elements and
 *     everything selected;
 *   - `err` is the first error met (sticky).  HDF5 and I/O failures are
 *     recorded there by every function; argument errors (SP_EINVAL,
 *     SP_EEXISTS, SP_ERANGE from a bad table spec) are only returned, because
 *     they leave the file untouched.  Once `err` is set, sp_rec_append() drops
 *     rows, and sp_rec_close() writes status "failed" whatever it was asked.
 *
 * Ownership: everything hangs off the sp_rec; sp_rec_close() writes each
 * table's tail, sets `status`, closes every HDF5 id it opened (it checks with
 * H5Fget_obj_count that none leaked) and frees all memory.  There are no
 * mutable globals, so several recorders can be open in one process.  HDF5's
 * automatic error printing is switched off at create; that switch is
 * process-wide state inside HDF5, the one exception, and it is idempotent.
 *
 * Hot path: sp_rec_append() copies the row into the current block of
 * column buffers; when a block holds chunk_rows rows it is queued to the
 * writer thread and the table moves on to its next block (REC_NBLOCKS = 3
 * per table: one filling, up to two in flight).  The simulation thread
 * waits only when the writer is two whole chunks behind.  The writer extends
 * the datasets by one chunk and writes it: uncompressed whole chunks go
 * through H5Dwrite_chunk (no copy through HDF5's chunk cache), compressed
 * ones through H5Dwrite so HDF5 runs shuffle + deflate — on the writer's
 * core, not the simulation's.  Every HDF5 call, from either thread, holds
 * h5_mu (this HDF5 is not built thread-safe; serialised calls are fine).
 * The writer starts on the first full chunk, so short runs never start a
 * thread; sp_rec_flush() waits for the queue to drain first, and
 * sp_rec_close() joins the writer before writing the tails.
 * Inline mode: with SPIRAL_RECORDER_THREADS=0 in the environment (read at
 * sp_rec_create) no writer thread is ever started; hand_off() writes the
 * full block itself, on the simulation's thread, and the table keeps
 * filling the same block.  `spiral sweep` / `spiral stress` set it for their
 * workers: with N workers on N cores a second thread per run only competes
 * for the cores.  The datasets are the same either way (same chunks, same
 * order, same write_block()).  The bytes
 * written do not depend on thread timing: each table's chunks are written
 * in order, so datasets are bit-identical run to run.  Every dataset's chunk
 * cache is sized to two chunks (TOOLCHAIN.md: a cache smaller than a chunk
 * made compressed appends 100x slower).
 * Integer values are narrowed to the column type by a plain C conversion:
 * the caller keeps codes and counts in range.
 *
 * Choices the header leaves open: a NULL status means "complete"; a NULL
 * `units` is written as "" and a NULL `long_name` as the column name; a code
 * list on an F64 column is SP_EINVAL, more codes than the integer type holds
 * SP_ERANGE, and an empty code list writes no flag attributes.  A table may
 * be created in an existing group (e.g. one made for attributes) but not over
 * an existing column.  sp_rec_text replaces an earlier string dataset at the
 * same path, never a group or a column.  sp_rec_flush also fsyncs the file.
 */
#include "spiral/recorder.h"
#include "spiral/error.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_DEFAULT_CHUNK_ROWS 16384
#define REC_DEFAULT_COMPRESSION 1
/* HDF5 limits a chunk to 4 GiB - 1; the widest column is 8 bytes. */
#define REC_MAX_CHUNK_ROWS ((size_t)(UINT32_MAX / 8))
#define REC_CACHE_SLOTS 521 /* a prime, as H5Pset_chunk_cache advises */
#define REC_BUF_ALIGN 64
#define REC_NBLOCKS 3       /* per table: one filling, two in flight */

struct rec_col {
    void *buf;              /* chunk_rows values of the native type, in the current block */
    size_t off;             /* offset of this column's buffer within a block */
    hid_t ds;
    enum sp_rec_type type;
};

/* One set of column buffers.  A table has REC_NBLOCKS of them: the main
 * thread fills one while the writer thread writes the others. */
struct rec_block {
    char *base;
    bool busy;              /* queued for, or being written by, the writer */
    size_t rows;
    uint64_t start;         /* first row's index in the datasets */
    struct sp_rec_table *table;
    struct rec_block *next; /* writer queue link */
};

struct sp_rec_table {
    struct sp_rec *rec;     /* owner */
    size_t chunk_rows;
    size_t n_buf;           /* rows waiting in the buffers */
    uint64_t n_written;     /* rows already in the datasets */
    hid_t group;
    hid_t file_space;       /* extent == datasets' extent */
    hid_t mem_space;        /* chunk_rows elements */
    void *block;            /* all column buffers of all blocks */
    size_t block_bytes;     /* bytes of one block (padded) */
    struct rec_block blocks[REC_NBLOCKS];
    unsigned cur;           /* block being filled by sp_rec_append */
    uint64_t n_queued;      /* rows handed to the writer (or written) */
    bool all8;              /* every column F64 or I64: rows copied without a switch */
    size_t buf_bytes;
    char *name;             /* the group path as given, e.g. "/markets/pool" */
    size_t ncols;
    struct rec_col cols[];
};

struct sp_rec {
    hid_t file;
    hid_t str_type;         /* variable-length UTF-8 string */
    hid_t scalar;           /* scalar dataspace */
    hid_t lcpl;             /* link creation: intermediate groups, UTF-8 names */
    _Atomic int err;
    /* The writer thread: full chunks are queued to it, so HDF5 I/O and
     * compression run on another core while the simulation goes on.  h5_mu
     * serialises every HDF5 call (the library is not thread-safe); q_mu
     * guards the queue and the blocks' busy flags. */
    pthread_t writer;
    bool writer_running, stopping;
    bool inline_writes;     /* SPIRAL_RECORDER_THREADS=0: never start the writer */
    pthread_mutex_t q_mu, h5_mu;
    pthread_cond_t q_cv, free_cv;
    struct rec_block *q_head, *q_tail;
    size_t inflight;        /* blocks queued or being written */
    int compression;
    size_t chunk_rows;
    struct sp_rec_table **tables;
    size_t n_tables, a_tables;
    char *path;             /* the file, as given to sp_rec_create */
};

/* ---- small helpers ------------------------------------------------------ */

static void rec_fail(struct sp_rec *r, int code)
{
    int none = 0;
    atomic_compare_exchange_strong(&r->err, &none, code);   /* the first one sticks */
}

static herr_t classify_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    if (e->maj_num == H5E_IO || e->maj_num == H5E_VFL)
        *(int *)data = 1;
    return 0;
}

/* The spiral code for the HDF5 call that just failed: SP_EIO when the error
 * stack shows a low-level I/O failure (disk full, file size limit), else
 * SP_EHDF5.  Must be called before the next HDF5 API call clears the stack. */
static int hdf5_error(void)
{
    int io = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, classify_cb, &io);
    return io ? SP_EIO : SP_EHDF5;
}

/* Record and return the error of the HDF5 call that just failed. */
static int rec_hdf5_fail(struct sp_rec *r)
{
    int code = hdf5_error();
    rec_fail(r, code);
    return code;
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        closer(*id);
    *id = H5I_INVALID_HID;
}

static size_t type_size(enum sp_rec_type t)
{
    switch (t) {
    case SP_REC_F64: return sizeof(double);
    case SP_REC_I64: return sizeof(int64_t);
    case SP_REC_I32: return sizeof(int32_t);
    case SP_REC_I16: return sizeof(int16_t);
    case SP_REC_I8:  return sizeof(int8_t);
    }
    return 0;
}

static hid_t file_type(enum sp_rec_type t)
{
    switch (t) {
    case SP_REC_F64: return H5T_IEEE_F64LE;
    case SP_REC_I64: return H5T_STD_I64LE;
    case SP_REC_I32: return H5T_STD_I32LE;
    case SP_REC_I16: return H5T_STD_I16LE;
    case SP_REC_I8:  return H5T_STD_I8LE;
    }
    return H5I_INVALID_HID;
}

static hid_t mem_type(enum sp_rec_type t)
{
    switch (t) {
    case SP_REC_F64: return H5T_NATIVE_DOUBLE;
    case SP_REC_I64: return H5T_NATIVE_INT64;
    case SP_REC_I32: return H5T_NATIVE_INT32;
    case SP_REC_I16: return H5T_NATIVE_INT16;
    case SP_REC_I8:  return H5T_NATIVE_INT8;
    }
    return H5I_INVALID_HID;
}

/* Largest category code a column of integer type `t` can hold. */
static uint64_t type_max_code(enum sp_rec_type t)
{
    switch (t) {
    case SP_REC_F64: return 0;
    case SP_REC_I64: return INT64_MAX;
    case SP_REC_I32: return INT32_MAX;
    case SP_REC_I16: return INT16_MAX;
    case SP_REC_I8:  return INT8_MAX;
    }
    return 0;
}

/* "a//b/" -> "/a/b"; "" or "/" -> "/".  Caller frees.  NULL on no memory. */
static char *path_normalize(const char *path)
{
    size_t len = strlen(path);
    char *out = malloc(len + 2);
    if (!out)
        return NULL;
    size_t o = 0;
    out[o++] = '/';
    for (const char *s = path; *s; s++) {
        if (*s == '/' && out[o - 1] == '/')
            continue;
        out[o++] = *s;
    }
    if (o > 1 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return out;
}

/* 1 if the normalized absolute `path` names an object, 0 if some component
 * is missing, < 0 on an HDF5 error.  (H5Lexists alone fails when an
 * intermediate group is missing, so walk the components.) */
static int path_exists(hid_t file, char *path)
{
    if (path[1] == '\0')
        return 1;
    for (char *s = path + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        htri_t e = H5Lexists(file, path, H5P_DEFAULT);
        *s = saved;
        if (e <= 0)
            return e < 0 ? -1 : 0;
        if (saved == '\0')
            return 1;
    }
}

/* Open the object at `path`, creating it (and intermediate groups) as a
 * group when it does not exist.  Returns 0 and the id in *id, or an error. */
static int open_or_create(struct sp_rec *r, const char *path, hid_t *id)
{
    *id = H5I_INVALID_HID;
    char *p = path_normalize(path);
    if (!p)
        return SP_ENOMEM;
    int rc = 0;
    int e = path_exists(r->file, p);
    if (e < 0)
        rc = rec_hdf5_fail(r);
    else if (e > 0)
        *id = H5Oopen(r->file, p, H5P_DEFAULT);
    else
        *id = H5Gcreate2(r->file, p, r->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (rc == 0 && *id < 0)
        rc = rec_hdf5_fail(r);
    free(p);
    return rc;
}

/* Create (or replace) attribute `name` on `loc` and write `buf` to it. */
static int attr_write(struct sp_rec *r, hid_t loc, const char *name, hid_t ftype,
                      hid_t mtype, hid_t space, const void *buf)
{
    htri_t e = H5Aexists(loc, name);
    if (e < 0 || (e > 0 && H5Adelete(loc, name) < 0))
        return rec_hdf5_fail(r);
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return rec_hdf5_fail(r);
    int rc = 0;
    if (H5Awrite(a, mtype, buf) < 0)
        rc = rec_hdf5_fail(r);
    if (H5Aclose(a) < 0 && rc == 0)
        rc = rec_hdf5_fail(r);
    return rc;
}

static int attr_write_str(struct sp_rec *r, hid_t loc, const char *name, const char *value)
{
    return attr_write(r, loc, name, r->str_type, r->str_type, r->scalar, &value);
}

/* The variable-length UTF-8 string type used for every string we write. */
static hid_t make_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---- the recorder ------------------------------------------------------- */

static void rec_free(struct sp_rec *r)
{
    pthread_mutex_destroy(&r->q_mu);
    pthread_mutex_destroy(&r->h5_mu);
    pthread_cond_destroy(&r->q_cv);
    pthread_cond_destroy(&r->free_cv);
    close_id(&r->lcpl, H5Pclose);
    close_id(&r->scalar, H5Sclose);
    close_id(&r->str_type, H5Tclose);
    free(r->tables);
    free(r->path);
    free(r);
}

int sp_rec_create(struct sp_rec **out, const char *path, const struct sp_rec_opts *opts)
{
    if (!out)
        return SP_EINVAL;
    *out = NULL;
    if (!path || !*path)
        return SP_EINVAL;
    int compression = opts ? opts->compression : REC_DEFAULT_COMPRESSION;
    size_t chunk_rows = opts && opts->chunk_rows ? opts->chunk_rows : REC_DEFAULT_CHUNK_ROWS;
    if (compression < 0 || compression > 9 || chunk_rows > REC_MAX_CHUNK_ROWS)
        return SP_EINVAL;

    /* Errors come back as codes; HDF5 must not print its stack to stderr. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    struct sp_rec *r = calloc(1, sizeof *r);
    if (!r)
        return SP_ENOMEM;
    r->file = r->str_type = r->scalar = r->lcpl = H5I_INVALID_HID;
    pthread_mutex_init(&r->q_mu, NULL);
    pthread_mutex_init(&r->h5_mu, NULL);
    pthread_cond_init(&r->q_cv, NULL);
    pthread_cond_init(&r->free_cv, NULL);
    r->compression = compression;
    r->chunk_rows = chunk_rows;
    r->path = strdup(path);
    if (!r->path) {
        rec_free(r);
        return SP_ENOMEM;
    }
    const char *thr = getenv("SPIRAL_RECORDER_THREADS");
    r->inline_writes = thr && strcmp(thr, "0") == 0;

    r->str_type = make_str_type();
    r->scalar = H5Screate(H5S_SCALAR);
    r->lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (r->str_type < 0 || r->scalar < 0 || r->lcpl < 0
        || H5Pset_create_intermediate_group(r->lcpl, 1) < 0
        || H5Pset_char_encoding(r->lcpl, H5T_CSET_UTF8) < 0) {
        rec_free(r);
        return SP_EHDF5;
    }

    struct stat st;
    int existed = stat(path, &st) == 0;
    r->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (r->file < 0) {
        /* Whatever HDF5 managed to create before failing must not stay. */
        if (!existed && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            remove(path);
        rec_free(r);
        return SP_EIO;
    }
    int rc = attr_write_str(r, r->file, "status", "running");
    if (rc) {
        H5Fclose(r->file);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            remove(path);
        rec_free(r);
        return rc;
    }
    *out = r;
    return SP_OK;
}

int sp_rec_error(const struct sp_rec *r)
{
    return r ? r->err : SP_EINVAL;
}

size_t sp_rec_buffer_bytes(const struct sp_rec *r)
{
    size_t n = 0;
    if (r)
        for (size_t i = 0; i < r->n_tables; i++)
            n += r->tables[i]->buf_bytes;
    return n;
}

/* ---- attributes and text ------------------------------------------------ */

static int attr_set(struct sp_rec *r, const char *obj, const char *name, hid_t ftype,
                    hid_t mtype, const void *buf)
{
    if (!r || !obj || !name || !*name)
        return SP_EINVAL;
    hid_t id;
    int rc = open_or_create(r, obj, &id);
    if (rc)
        return rc;
    rc = attr_write(r, id, name, ftype, mtype, r->scalar, buf);
    if (H5Oclose(id) < 0 && rc == 0)
        rc = rec_hdf5_fail(r);
    return rc;
}

static int sp_rec_attr_str_unlocked(struct sp_rec *r, const char *obj, const char *name, const char *value)
{
    if (!r || !value)
        return SP_EINVAL;
    return attr_set(r, obj, name, r->str_type, r->str_type, &value);
}

static int sp_rec_attr_f64_unlocked(struct sp_rec *r, const char *obj, const char *name, double value)
{
    return attr_set(r, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

static int sp_rec_attr_i64_unlocked(struct sp_rec *r, const char *obj, const char *name, int64_t value)
{
    return attr_set(r, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

/* Is the object at `p` a string dataset (one sp_rec_text may replace)? */
static int is_string_dataset(hid_t file, const char *p)
{
    hid_t o = H5Oopen(file, p, H5P_DEFAULT);
    if (o < 0)
        return -1;
    int yes = 0;
    if (H5Iget_type(o) == H5I_DATASET) {
        hid_t t = H5Dget_type(o);
        if (t < 0) {
            H5Oclose(o);
            return -1;
        }
        yes = H5Tget_class(t) == H5T_STRING;
        H5Tclose(t);
    }
    H5Oclose(o);
    return yes;
}

static int sp_rec_text_unlocked(struct sp_rec *r, const char *path, const char *text)
{
    if (!r || !path || !text)
        return SP_EINVAL;
    char *p = path_normalize(path);
    if (!p)
        return SP_ENOMEM;
    int rc = 0;
    hid_t ds = H5I_INVALID_HID;
    int e = path_exists(r->file, p);
    if (p[1] == '\0') {
        rc = SP_EINVAL;
    } else if (e < 0) {
        rc = rec_hdf5_fail(r);
    } else if (e > 0) {
        /* Replace an earlier text; refuse to unlink a group or a table column. */
        int s = is_string_dataset(r->file, p);
        if (s < 0)
            rc = rec_hdf5_fail(r);
        else if (s == 0)
            rc = SP_EEXISTS;
        else if (H5Ldelete(r->file, p, H5P_DEFAULT) < 0)
            rc = rec_hdf5_fail(r);
    }
    if (rc == 0) {
        ds = H5Dcreate2(r->file, p, r->str_type, r->scalar, r->lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0 || H5Dwrite(ds, r->str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) < 0)
            rc = rec_hdf5_fail(r);
    }
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0)
        rc = rec_hdf5_fail(r);
    free(p);
    return rc;
}

/* ---- tables ------------------------------------------------------------- */

static size_t count_codes(const char *const *codes)
{
    size_t n = 0;
    while (codes[n])
        n++;
    return n;
}

static int valid_col_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0;
}

/* Argument checks, before anything touches the file. */
static int validate_cols(const struct sp_rec_col *cols, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        if (!valid_col_name(cols[c].name) || type_size(cols[c].type) == 0)
            return SP_EINVAL;
        for (size_t d = 0; d < c; d++)
            if (strcmp(cols[c].name, cols[d].name) == 0)
                return SP_EINVAL;
        if (cols[c].codes) {
            if (cols[c].type == SP_REC_F64)
                return SP_EINVAL;   /* category codes are integers */
            size_t n = count_codes(cols[c].codes);
            if (n > 0 && (uint64_t)(n - 1) > type_max_code(cols[c].type))
                return SP_ERANGE;
        }
    }
    return 0;
}

/* CF `flag_values` (0..n-1 in the column's type) and `flag_meanings` (the
 * names joined by spaces; whitespace inside a name becomes '_').  A column
 * whose code list is empty gets neither: there is nothing to map. */
static int write_flags(struct sp_rec *r, hid_t ds, enum sp_rec_type type,
                       const char *const *codes)
{
    size_t n = count_codes(codes);
    if (n == 0)
        return 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (codes[i][0] ? strlen(codes[i]) : 1) + 1;
    int64_t *values = malloc(n * sizeof *values);
    char *meanings = malloc(len);
    if (!values || !meanings) {
        free(values);
        free(meanings);
        return SP_ENOMEM;
    }
    char *m = meanings;
    for (size_t i = 0; i < n; i++) {
        values[i] = (int64_t)i;
        if (i > 0)
            *m++ = ' ';
        if (!codes[i][0])
            *m++ = '_';
        for (const char *s = codes[i]; *s; s++)
            *m++ = isspace((unsigned char)*s) ? '_' : *s;
    }
    *m = '\0';

    int rc = 0;
    hsize_t dim = n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    if (space < 0)
        rc = rec_hdf5_fail(r);
    if (rc == 0)
        rc = attr_write(r, ds, "flag_values", file_type(type), H5T_NATIVE_INT64, space, values);
    if (rc == 0)
        rc = attr_write_str(r, ds, "flag_meanings", meanings);
    if (space >= 0)
        H5Sclose(space);
    free(values);
    free(meanings);
    return rc;
}

/* Close every id of `t` and free it (the table is not in r->tables). */
static void table_free(struct sp_rec_table *t)
{
    for (size_t c = 0; c < t->ncols; c++)
        close_id(&t->cols[c].ds, H5Dclose);
    close_id(&t->mem_space, H5Sclose);
    close_id(&t->file_space, H5Sclose);
    close_id(&t->group, H5Oclose);   /* H5Oclose: may be a non-group on a failed create */
    free(t->block);
    free(t->name);
    free(t);
}

static struct sp_rec_table *table_alloc(struct sp_rec *r, const struct sp_rec_col *cols,
                                        size_t ncols)
{
    if (ncols > (SIZE_MAX - sizeof(struct sp_rec_table)) / sizeof(struct rec_col))
        return NULL;
    struct sp_rec_table *t = calloc(1, sizeof *t + ncols * sizeof t->cols[0]);
    if (!t)
        return NULL;
    t->rec = r;
    t->chunk_rows = r->chunk_rows;
    t->ncols = ncols;
    t->group = t->file_space = t->mem_space = H5I_INVALID_HID;

    /* Each block holds every column's buffer, each starting on a
     * REC_BUF_ALIGN boundary.  chunk_rows * 8 < 4 GiB was checked at create. */
    size_t total = 0;
    for (size_t c = 0; c < ncols; c++) {
        size_t bytes = t->chunk_rows * type_size(cols[c].type);
        size_t padded = (bytes + REC_BUF_ALIGN - 1) / REC_BUF_ALIGN * REC_BUF_ALIGN;
        if (padded > (SIZE_MAX / REC_NBLOCKS) - total) {
            free(t);
            return NULL;
        }
        t->cols[c].ds = H5I_INVALID_HID;
        t->cols[c].type = cols[c].type;
        t->cols[c].off = total;
        total += padded;
        t->buf_bytes += bytes * REC_NBLOCKS;
    }
    t->block_bytes = total;
    t->all8 = true;
    for (size_t c = 0; c < ncols; c++)
        t->all8 = t->all8 && (cols[c].type == SP_REC_F64 || cols[c].type == SP_REC_I64);
    t->block = aligned_alloc(REC_BUF_ALIGN, total * REC_NBLOCKS);
    if (!t->block) {
        free(t);
        return NULL;
    }
    for (unsigned b = 0; b < REC_NBLOCKS; b++) {
        t->blocks[b].base = (char *)t->block + b * total;
        t->blocks[b].table = t;
    }
    for (size_t c = 0; c < ncols; c++)
        t->cols[c].buf = t->blocks[0].base + t->cols[c].off;
    return t;
}

/* Create the datasets of `t` in t->group: chunked, unlimited, empty. */
static int table_create_datasets(struct sp_rec *r, struct sp_rec_table *t,
                                 const struct sp_rec_col *cols)
{
    int rc = 0;
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = t->chunk_rows;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dcpl < 0 || dapl < 0
        || H5Pset_chunk(dcpl, 1, &chunk) < 0
        || (r->compression > 0
            && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)r->compression) < 0))
        || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0
        || H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR) < 0
        /* Two chunks of the widest type; w0 = 1: evict fully written chunks first. */
        || H5Pset_chunk_cache(dapl, REC_CACHE_SLOTS, 2 * t->chunk_rows * sizeof(double), 1.0) < 0)
        rc = rec_hdf5_fail(r);

    if (rc == 0) {
        t->file_space = H5Screate_simple(1, &zero, &unlimited);
        t->mem_space = H5Screate_simple(1, &chunk, NULL);
        if (t->file_space < 0 || t->mem_space < 0)
            rc = rec_hdf5_fail(r);
    }
    for (size_t c = 0; rc == 0 && c < t->ncols; c++) {
        const struct sp_rec_col *col = &cols[c];
        hid_t ds = H5Dcreate2(t->group, col->name, file_type(col->type), t->file_space,
                              H5P_DEFAULT, dcpl, dapl);
        t->cols[c].ds = ds;
        if (ds < 0) {
            rc = rec_hdf5_fail(r);
            break;
        }
        rc = attr_write_str(r, ds, "units", col->units ? col->units : "");
        if (rc == 0)
            rc = attr_write_str(r, ds, "long_name", col->long_name ? col->long_name : col->name);
        if (rc == 0 && col->codes)
            rc = write_flags(r, ds, col->type, col->codes);
    }
    /* Column 0 is the dimension scale of the group; xarray needs every other
     * column attached to it. */
    if (rc == 0 && H5DSset_scale(t->cols[0].ds, cols[0].name) < 0)
        rc = rec_hdf5_fail(r);
    for (size_t c = 1; rc == 0 && c < t->ncols; c++)
        if (H5DSattach_scale(t->cols[c].ds, t->cols[0].ds, 0) < 0)
            rc = rec_hdf5_fail(r);

    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (dapl >= 0)
        H5Pclose(dapl);
    return rc;
}

static int sp_rec_table_create_unlocked(struct sp_rec *r, const char *group, const struct sp_rec_col *cols,
                        size_t ncols, struct sp_rec_table **out)
{
    if (!out)
        return SP_EINVAL;
    *out = NULL;
    if (!r || !group || !cols || ncols == 0)
        return SP_EINVAL;
    int rc = validate_cols(cols, ncols);
    if (rc)
        return rc;
    if (r->n_tables == r->a_tables) {
        size_t a = r->a_tables ? 2 * r->a_tables : 8;
        struct sp_rec_table **tables = realloc(r->tables, a * sizeof *tables);
        if (!tables)
            return SP_ENOMEM;
        r->tables = tables;
        r->a_tables = a;
    }
    struct sp_rec_table *t = table_alloc(r, cols, ncols);
    if (!t)
        return SP_ENOMEM;
    t->name = strdup(group);
    if (!t->name) {
        table_free(t);
        return SP_ENOMEM;
    }

    rc = open_or_create(r, group, &t->group);
    if (rc == 0 && H5Iget_type(t->group) != H5I_GROUP)
        rc = SP_EEXISTS;   /* a dataset lives at that path */
    for (size_t c = 0; rc == 0 && c < ncols; c++) {
        htri_t e = H5Lexists(t->group, cols[c].name, H5P_DEFAULT);
        if (e < 0)
            rc = rec_hdf5_fail(r);
        else if (e > 0)
            rc = SP_EEXISTS;
    }
    if (rc == 0)
        rc = table_create_datasets(r, t, cols);
    if (rc) {
        table_free(t);
        return rc;
    }
    r->tables[r->n_tables++] = t;
    *out = t;
    return SP_OK;
}

/* Write block `blk` (rows at blk->start) to every column: extend, then one
 * direct chunk write per column when the block is a whole, aligned,
 * unfiltered chunk (no copy through HDF5's cache), else select + H5Dwrite,
 * which runs the filters.  Called with h5_mu held. */
static int write_block(struct sp_rec_table *t, const struct rec_block *blk)
{
    struct sp_rec *r = t->rec;
    hsize_t start = blk->start, count = blk->rows, ext = blk->start + blk->rows;
    hsize_t unlimited = H5S_UNLIMITED, zero = 0;
    int rc = 0;
    bool direct = r->compression == 0 && blk->rows == t->chunk_rows;
    if (!direct
        && (H5Sset_extent_simple(t->file_space, 1, &ext, &unlimited) < 0
            || H5Sselect_hyperslab(t->file_space, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0
            || (blk->rows != t->chunk_rows
                && H5Sselect_hyperslab(t->mem_space, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0)))
        return rec_hdf5_fail(r);
    for (size_t c = 0; c < t->ncols; c++) {
        struct rec_col *col = &t->cols[c];
        const void *buf = blk->base + col->off;
        if (H5Dset_extent(col->ds, &ext) < 0) {
            rc = rec_hdf5_fail(r);
            break;
        }
        herr_t w = direct
            ? H5Dwrite_chunk(col->ds, H5P_DEFAULT, 0, &start, blk->rows * type_size(col->type), buf)
            : H5Dwrite(col->ds, mem_type(col->type), t->mem_space, t->file_space, H5P_DEFAULT, buf);
        if (w < 0) {
            rc = rec_hdf5_fail(r);
            break;
        }
    }
    if (!direct && blk->rows != t->chunk_rows && H5Sselect_all(t->mem_space) < 0 && rc == 0)
        rc = rec_hdf5_fail(r);
    if (rc == 0)
        t->n_written = ext;
    return rc;
}

static void *writer_main(void *arg)
{
    struct sp_rec *r = arg;
    pthread_mutex_lock(&r->q_mu);
    for (;;) {
        while (!r->q_head && !r->stopping)
            pthread_cond_wait(&r->q_cv, &r->q_mu);
        struct rec_block *blk = r->q_head;
        if (!blk)
            break;                              /* stopping and drained */
        r->q_head = blk->next;
        if (!r->q_head)
            r->q_tail = NULL;
        pthread_mutex_unlock(&r->q_mu);

        pthread_mutex_lock(&r->h5_mu);
        write_block(blk->table, blk);           /* an error sticks in r->err */
        pthread_mutex_unlock(&r->h5_mu);

        pthread_mutex_lock(&r->q_mu);
        blk->busy = false;
        r->inflight--;
        pthread_cond_broadcast(&r->free_cv);
    }
    pthread_mutex_unlock(&r->q_mu);
    return NULL;
}

/* Wait until the writer has written everything queued so far. */
static void writer_drain(struct sp_rec *r)
{
    if (!r->writer_running)
        return;
    pthread_mutex_lock(&r->q_mu);
    while (r->inflight > 0)
        pthread_cond_wait(&r->free_cv, &r->q_mu);
    pthread_mutex_unlock(&r->q_mu);
}

/* Stop the writer after it has written everything queued. */
static void writer_stop(struct sp_rec *r)
{
    if (!r->writer_running)
        return;
    pthread_mutex_lock(&r->q_mu);
    r->stopping = true;
    pthread_cond_signal(&r->q_cv);
    pthread_mutex_unlock(&r->q_mu);
    pthread_join(r->writer, NULL);
    r->writer_running = false;
}

/* The current block of `t` is full: queue it and move to a free one. */
static void hand_off(struct sp_rec_table *t)
{
    struct sp_rec *r = t->rec;
    if (!r->writer_running) {
        /* Started on the first full chunk: short runs never pay for a thread.
         * Inline mode (or no thread to be had): write the block here and
         * refill it.  No lock contention: the writer never runs. */
        if (r->inline_writes || pthread_create(&r->writer, NULL, writer_main, r) != 0) {
            struct rec_block *blk = &t->blocks[t->cur];          /* write inline */
            blk->rows = t->n_buf;
            blk->start = t->n_queued;
            pthread_mutex_lock(&r->h5_mu);
            write_block(t, blk);
            pthread_mutex_unlock(&r->h5_mu);
            t->n_queued += t->n_buf;
            t->n_buf = 0;
            return;
        }
        r->writer_running = true;
    }
    struct rec_block *blk = &t->blocks[t->cur];
    blk->rows = t->n_buf;
    blk->start = t->n_queued;
    blk->next = NULL;
    t->n_queued += t->n_buf;
    t->n_buf = 0;
    unsigned next = (t->cur + 1) % REC_NBLOCKS;
#if defined(__SSE2__) && defined(__x86_64__)
    _mm_sfence();                               /* streamed rows visible first */
#endif
    pthread_mutex_lock(&r->q_mu);
    blk->busy = true;
    r->inflight++;
    if (r->q_tail)
        r->q_tail->next = blk;
    else
        r->q_head = blk;
    r->q_tail = blk;
    pthread_cond_signal(&r->q_cv);
    while (t->blocks[next].busy)                /* the writer is behind: wait */
        pthread_cond_wait(&r->free_cv, &r->q_mu);
    pthread_mutex_unlock(&r->q_mu);
    t->cur = next;
    for (size_t c = 0; c < t->ncols; c++)
        t->cols[c].buf = t->blocks[next].base + t->cols[c].off;
}

void sp_rec_append(struct sp_rec_table *t, const union sp_rec_val *row)
{
    if (!t || t->rec->err)
        return;
    if (!row) {
        rec_fail(t->rec, SP_EINVAL);
        return;
    }
    size_t n = t->n_buf;
    if (t->all8 && t->rec->inline_writes) {
        /* Inline: this thread compresses the block, so keep it in cache. */
        for (size_t c = 0; c < t->ncols; c++)
            memcpy((char *)t->cols[c].buf + 8 * n, &row[c], 8);
        goto stored;
    }
    if (t->all8) {
        for (size_t c = 0; c < t->ncols; c++) {
#if defined(__SSE2__) && defined(__x86_64__)
            /* Non-temporal: the writer thread reads these lines on another
             * core; streaming them past the cache spares the read-for-
             * ownership of lines that core last touched. */
            long long v;
            memcpy(&v, &row[c], 8);
            _mm_stream_si64((long long *)((char *)t->cols[c].buf + 8 * n), v);
#else
            memcpy((char *)t->cols[c].buf + 8 * n, &row[c], 8);
#endif
        }
        goto stored;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        void *buf = t->cols[c].buf;
        switch (t->cols[c].type) {
        case SP_REC_F64: ((double *)buf)[n] = row[c].f; break;
        case SP_REC_I64: ((int64_t *)buf)[n] = row[c].i; break;
        case SP_REC_I32: ((int32_t *)buf)[n] = (int32_t)row[c].i; break;
        case SP_REC_I16: ((int16_t *)buf)[n] = (int16_t)row[c].i; break;
        case SP_REC_I8:  ((int8_t *)buf)[n] = (int8_t)row[c].i; break;
        }
    }
stored:
    t->n_buf = n + 1;
    if (t->n_buf == t->chunk_rows)
        hand_off(t);
}

uint64_t sp_rec_table_rows(const struct sp_rec_table *t)
{
    return t ? t->n_queued + t->n_buf : 0;
}

int sp_rec_flush(struct sp_rec *r)
{
    if (!r)
        return SP_EINVAL;
    writer_drain(r);                 /* every full chunk so far reaches the file */
    pthread_mutex_lock(&r->h5_mu);
    herr_t f = H5Fflush(r->file, H5F_SCOPE_GLOBAL);
    void *handle = NULL;
    herr_t h = f < 0 ? -1 : H5Fget_vfd_handle(r->file, H5P_DEFAULT, &handle);
    pthread_mutex_unlock(&r->h5_mu);
    if (f < 0) {
        rec_fail(r, SP_EIO);
        return SP_EIO;
    }
    /* H5Fflush hands the bytes to the kernel; fsync puts them on disk. */
    if (h < 0 || !handle)
        return rec_hdf5_fail(r);
    if (fsync(*(int *)handle) != 0 && errno != EINVAL && errno != EROFS) {
        rec_fail(r, SP_EIO);
        return SP_EIO;
    }
    return SP_OK;
}

int sp_rec_close(struct sp_rec *r, const char *status)
{
    if (!r)
        return SP_OK;
    /* Everything queued, then the tails: the status must never claim rows
     * that are not there. */
    writer_stop(r);
    for (size_t i = 0; i < r->n_tables; i++) {
        struct sp_rec_table *t = r->tables[i];
        if (t->n_buf > 0) {                      /* rows before an error are kept */
            struct rec_block *blk = &t->blocks[t->cur];
            blk->rows = t->n_buf;
            blk->start = t->n_queued;
            write_block(t, blk);
            t->n_queued += t->n_buf;
            t->n_buf = 0;
        }
    }
    const char *st = r->err ? "failed" : status ? status : "complete";
    attr_write_str(r, r->file, "status", st);

    for (size_t i = 0; i < r->n_tables; i++)
        table_free(r->tables[i]);
    r->n_tables = 0;
    /* Only the file id itself may still be open. */
    if (H5Fget_obj_count(r->file, H5F_OBJ_ALL | H5F_OBJ_LOCAL) != 1)
        rec_fail(r, SP_EHDF5);
    if (H5Fclose(r->file) < 0)
        rec_fail(r, SP_EIO);
    int rc = r->err;
    rec_free(r);
    return rc;
}

int sp_rec_attr_str(struct sp_rec *r, const char *obj, const char *name, const char *value)
{
    if (!r)
        return SP_EINVAL;
    pthread_mutex_lock(&r->h5_mu);
    int rc = sp_rec_attr_str_unlocked(r, obj, name, value);
    pthread_mutex_unlock(&r->h5_mu);
    return rc;
}

int sp_rec_attr_f64(struct sp_rec *r, const char *obj, const char *name, double value)
{
    if (!r)
        return SP_EINVAL;
    pthread_mutex_lock(&r->h5_mu);
    int rc = sp_rec_attr_f64_unlocked(r, obj, name, value);
    pthread_mutex_unlock(&r->h5_mu);
    return rc;
}

int sp_rec_attr_i64(struct sp_rec *r, const char *obj, const char *name, int64_t value)
{
    if (!r)
        return SP_EINVAL;
    pthread_mutex_lock(&r->h5_mu);
    int rc = sp_rec_attr_i64_unlocked(r, obj, name, value);
    pthread_mutex_unlock(&r->h5_mu);
    return rc;
}

int sp_rec_text(struct sp_rec *r, const char *path, const char *text)
{
    if (!r)
        return SP_EINVAL;
    pthread_mutex_lock(&r->h5_mu);
    int rc = sp_rec_text_unlocked(r, path, text);
    pthread_mutex_unlock(&r->h5_mu);
    return rc;
}

int sp_rec_table_create(struct sp_rec *r, const char *group, const struct sp_rec_col *cols,
                        size_t ncols, struct sp_rec_table **out)
{
    if (!r)
        return SP_EINVAL;
    pthread_mutex_lock(&r->h5_mu);
    int rc = sp_rec_table_create_unlocked(r, group, cols, ncols, out);
    pthread_mutex_unlock(&r->h5_mu);
    return rc;
}

const char *sp_rec_path(const struct sp_rec *r) { return r ? r->path : NULL; }
size_t sp_rec_table_count(const struct sp_rec *r) { return r ? r->n_tables : 0; }
const struct sp_rec_table *sp_rec_table_at(const struct sp_rec *r, size_t i)
{
    return r && i < r->n_tables ? r->tables[i] : NULL;
}
const char *sp_rec_table_name(const struct sp_rec_table *t) { return t->name; }
