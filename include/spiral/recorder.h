/*
 * spiral/recorder.h — streaming HDF5 output, one file per run.
 *
 * Layout (DESIGN §3): a *table* is an HDF5 group of equal-length 1-D datasets,
 * one per column.  Column 0 is the group's dimension scale (normally `t`,
 * float64 seconds); every other column has that scale attached, so
 * `xarray.open_dataset(path, engine="h5netcdf", group=...)` opens it.  Every
 * column carries `units` and `long_name` attributes; category columns carry
 * CF `flag_values` / `flag_meanings` attributes mapping code -> name.
 *
 * Writing: `sp_rec_append` only copies values into chunk-sized column
 * buffers; when they fill, the whole chunk is handed to a writer thread that
 * extends the datasets by one chunk and writes it (compression runs there,
 * off the simulation's core), so HDF5 never sees a partial chunk until
 * close.  With SPIRAL_RECORDER_THREADS=0 in the environment (read when the
 * recorder is created) there is no writer thread: the chunk is compressed
 * and written inline by the appending thread — what `spiral sweep` and
 * `spiral stress` workers use, since N workers on N cores have no spare core
 * for it.  The datasets written are identical either way.  Memory is bounded by 3 x (chunk_rows x row bytes) per table
 * whatever the run length.  The chunk cache of every dataset is sized to
 * hold a chunk (a too-small cache made compressed appends 100x slower on
 * these machines).
 *
 * Status: the root attribute `status` is "running" from creation and becomes
 * "complete", "interrupted" or "failed" only in sp_rec_close(), after every
 * buffered row has been written — a reader never mistakes a partial file for
 * a complete one.
 *
 * Errors on the hot path are sticky: sp_rec_append() records the first error
 * and drops further rows; sp_rec_error() and sp_rec_close() report it.
 */
#ifndef SPIRAL_RECORDER_H
#define SPIRAL_RECORDER_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sp_rec;
struct sp_rec_table;

enum sp_rec_type { SP_REC_F64, SP_REC_I64, SP_REC_I32, SP_REC_I16, SP_REC_I8 };

struct sp_rec_col {
    const char *name;
    enum sp_rec_type type;
    const char *units;          /* "s", "USD", "1" (dimensionless), ... */
    const char *long_name;
    const char *const *codes;   /* category names for codes 0..n-1, NULL-terminated; or NULL */
};

/* One value of a row; the member used is the column's type (f for F64). */
union sp_rec_val { double f; int64_t i; };

struct sp_rec_opts {
    int compression;      /* deflate level 0..9 (0 = none); shuffle when > 0. Default 1. */
    size_t chunk_rows;    /* rows per chunk; 0 = default (16384) */
};

/* Create (truncate) `path`; sets root attribute status = "running". */
int sp_rec_create(struct sp_rec **out, const char *path, const struct sp_rec_opts *opts);

/* Attributes on the object at `obj` ("/" or a group path; groups are created
 * as needed).  Strings are stored as variable-length UTF-8. */
int sp_rec_attr_str(struct sp_rec *r, const char *obj, const char *name, const char *value);
int sp_rec_attr_f64(struct sp_rec *r, const char *obj, const char *name, double value);
int sp_rec_attr_i64(struct sp_rec *r, const char *obj, const char *name, int64_t value);

/* A scalar variable-length string dataset (e.g. "/config.yaml"). */
int sp_rec_text(struct sp_rec *r, const char *path, const char *text);

/* Create the table at `group` (intermediate groups created) with `ncols`
 * columns; column 0 becomes the dimension scale.  The table is owned by `r`. */
int sp_rec_table_create(struct sp_rec *r, const char *group, const struct sp_rec_col *cols,
                        size_t ncols, struct sp_rec_table **out);

/* Append one row: `row[c]` for column c.  Never allocates; waits only when
 * the writer thread is two whole chunks behind. */
void sp_rec_append(struct sp_rec_table *t, const union sp_rec_val *row);

/* Rows appended so far (buffered ones included). */
uint64_t sp_rec_table_rows(const struct sp_rec_table *t);

/* The file's path as given to sp_rec_create; the tables created so far, in
 * creation order, and each one's group path as given (a checkpoint records
 * where the output stood: docs/snapshot.md). */
const char *sp_rec_path(const struct sp_rec *r);
size_t sp_rec_table_count(const struct sp_rec *r);
const struct sp_rec_table *sp_rec_table_at(const struct sp_rec *r, size_t i);
const char *sp_rec_table_name(const struct sp_rec_table *t);

/* Flush HDF5's metadata and the OS buffers for what is written so far (full
 * chunks only; partial chunks stay buffered until close).  Call on a timer,
 * never per row. */
int sp_rec_flush(struct sp_rec *r);

/* First error met, or 0. */
int sp_rec_error(const struct sp_rec *r);

/* Bytes of row buffers held in memory now (for the benchmark's flat-memory check). */
size_t sp_rec_buffer_bytes(const struct sp_rec *r);

/* Write buffered rows, set `status`, close.  Returns the first error met. */
int sp_rec_close(struct sp_rec *r, const char *status);

#ifdef __cplusplus
}
#endif
#endif
