/*
 * spiral/snapshot.h — checkpoints: the whole state of a running simulation
 * in one msgpack file, and the way back (docs/snapshot.md).
 *
 * A snapshot holds the resolved scenario, the engine state (the event pool
 * exactly: indexes, generations, free list, insertion counter and heap
 * order; every entity's random stream; ledger balances and supplies; token
 * caches and the LST redemption queue; summary items; time and counters)
 * and one record per entity with its module's payload.  It is taken
 * between events (at a batch boundary), never inside a handler.
 *
 * Restore model: the world is rebuilt from the scenario stored in the file
 * (bind, build, init, start — so configs, tables and pointers are made the
 * normal way), then the engine state is replaced by the snapshot's and each
 * module's `restore` is called with its payload.  A module therefore saves
 * only what changes while running (prices, positions, counters), never
 * pointers or what init derives from its config.
 *
 * Module authors: `snapshot` writes exactly ONE msgpack value (usually an
 * array) through the sp_snap_put_* calls; `restore` reads it back in the
 * same order through sp_snap_get_*, which check every type and length and
 * record the first error (with the entity's name) instead of crashing; a
 * module checks its own invariants too and reports with sp_snap_fail.
 * Arrays and maps are closed on read with sp_snap_get_end (it checks
 * nothing is left unread).  Every put/get returns 0 or an SP_E* code, and
 * errors are sticky, so a module may test only the last call:
 *
 *     static int thing_snapshot(const void *self, struct sp_snapshot_writer *w)
 *     {
 *         const struct thing *t = self;
 *         sp_snap_put_array(w, 3);
 *         sp_snap_put_f64(w, t->price);
 *         sp_snap_put_u64(w, t->n_trades);
 *         return sp_snap_put_f64s(w, t->hist, t->n_hist);   // bulk: a bin
 *     }
 *     static int thing_restore(void *self, struct sp_snapshot_reader *r)
 *     {
 *         struct thing *t = self;
 *         size_t n;
 *         sp_snap_get_array_n(r, 3);
 *         sp_snap_get_f64(r, &t->price);
 *         sp_snap_get_u64(r, &t->n_trades);
 *         if (sp_snap_peek_count(r, &n)) return sp_snap_error(r);
 *         if (thing_reserve(t, n)) return sp_snap_fail(r, "out of memory");
 *         sp_snap_get_f64s(r, t->hist, n);
 *         t->n_hist = n;
 *         return sp_snap_get_end(r);
 *     }
 */
#ifndef SPIRAL_SNAPSHOT_H
#define SPIRAL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "spiral/error.h"
#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_sim;
struct sp_diag;
struct sp_scenario;
struct sp_registry;
struct sp_world_cfg;
struct sp_snapshot_writer;
struct sp_snapshot_reader;

#define SP_SNAPSHOT_MAGIC "SPIRALSN"   /* 8 bytes, no NUL */
#define SP_SNAPSHOT_VERSION 1u         /* the format version this build writes and reads */

/* A malformed, truncated, corrupted or incompatible snapshot: bad input,
 * so the CLI exits 2.  (An alias until error.h grows an SP_EFORMAT.) */
#define SP_SNAPSHOT_EFORMAT SP_ECONFIG

/* ---- taking and restoring snapshots -------------------------------------------- */

/* Write the state of `sim` to `path`, atomically: a temporary file in the
 * same directory, fsync, rename, fsync of the directory — a crash or a
 * SIGTERM during the write leaves any previous file at `path` intact.
 * `sc` is the bound scenario the sim was built from (its resolved YAML and
 * path go into the file).  Fails (message in d) when an entity's module has
 * no `snapshot` op, when called inside a handler, or on a failed sim. */
int sp_snapshot_write(struct sp_sim *sim, const struct sp_scenario *sc, const char *path,
                      struct sp_diag *d);

/* The same, into a malloc'd buffer (*out, *len; free() it). */
int sp_snapshot_encode(struct sp_sim *sim, const struct sp_scenario *sc, void **out,
                       size_t *len, struct sp_diag *d);

/* A snapshot read into memory and checked: magic, version, length,
 * checksum, and the structure of every part (the queue is rebuilt and
 * verified, every length bounded by the file) — all without a world. */
struct sp_snapshot;

int sp_snapshot_load(struct sp_snapshot **out, const char *path, struct sp_diag *d);
/* Same, from memory (copied; `name` is used in messages). */
int sp_snapshot_load_buffer(struct sp_snapshot **out, const void *buf, size_t len,
                            const char *name, struct sp_diag *d);
void sp_snapshot_destroy(struct sp_snapshot *s);

/* What the header says. */
const char *sp_snapshot_scenario(const struct sp_snapshot *s);       /* resolved YAML */
const char *sp_snapshot_scenario_path(const struct sp_snapshot *s);  /* for relative paths */
const char *sp_snapshot_spiral_version(const struct sp_snapshot *s);
uint64_t sp_snapshot_seed(const struct sp_snapshot *s);
sp_time sp_snapshot_time(const struct sp_snapshot *s);
size_t sp_snapshot_entity_count(const struct sp_snapshot *s);

/* The recorder's position: the output file the run was writing (NULL if
 * none) and, for each of its tables, the rows it held at the snapshot. */
const char *sp_snapshot_output(const struct sp_snapshot *s);
size_t sp_snapshot_output_tables(const struct sp_snapshot *s);
const char *sp_snapshot_output_table(const struct sp_snapshot *s, size_t i, uint64_t *rows);

/* The scenario's `name` (for default file names), into buf. */
const char *sp_snapshot_name(const struct sp_snapshot *s, char *buf, size_t size);
/* A human summary (`spiral info FILE.snap`): versions, scenario, seed,
 * time, entities per module type, tokens, pending events. */
void sp_snapshot_print_info(const struct sp_snapshot *s, FILE *out);

/* Rebuild the world from the snapshot's scenario: load it (as if from its
 * original path, so relative files resolve), apply `sets` (--set k=v, may
 * be NULL; n_sets of them), bind and build.  The sim is NOT started: attach
 * a recorder if wanted, sp_sim_start(), then sp_snapshot_restore().  *sc
 * owns *cfg's strings: destroy it after the sim. */
int sp_snapshot_build_world(const struct sp_snapshot *s, const struct sp_registry *reg,
                            const char *const *sets, size_t n_sets, struct sp_scenario **sc,
                            struct sp_world_cfg *cfg, struct sp_sim **sim, struct sp_diag *d);

/* Replace the state of `sim` — built from the same scenario and started —
 * with the snapshot's: engine state first, then each entity's `restore`.
 * Entity names and types must match the file's, in id order.  On failure
 * (message in d) the sim is half-restored: destroy it. */
int sp_snapshot_restore(const struct sp_snapshot *s, struct sp_sim *sim, struct sp_diag *d);

/* ---- the writer (modules' `snapshot` op) ------------------------------------------- */

int sp_snap_put_nil(struct sp_snapshot_writer *w);
int sp_snap_put_bool(struct sp_snapshot_writer *w, bool v);
int sp_snap_put_u64(struct sp_snapshot_writer *w, uint64_t v);
int sp_snap_put_i64(struct sp_snapshot_writer *w, int64_t v);
int sp_snap_put_f64(struct sp_snapshot_writer *w, double v);
int sp_snap_put_str(struct sp_snapshot_writer *w, const char *s);     /* NULL: nil */
int sp_snap_put_bytes(struct sp_snapshot_writer *w, const void *p, size_t n);
/* A container of n elements (a map: n key/value pairs = 2n values) follows. */
int sp_snap_put_array(struct sp_snapshot_writer *w, size_t n);
int sp_snap_put_map(struct sp_snapshot_writer *w, size_t n);
/* Bulk arrays as one little-endian bin (8 bytes each): fast and compact. */
int sp_snap_put_f64s(struct sp_snapshot_writer *w, const double *v, size_t n);
int sp_snap_put_u64s(struct sp_snapshot_writer *w, const uint64_t *v, size_t n);
int sp_snap_put_i64s(struct sp_snapshot_writer *w, const int64_t *v, size_t n);
/* The first error so far (0 if none). */
int sp_snap_writer_error(const struct sp_snapshot_writer *w);

/* ---- the reader (modules' `restore` op) -------------------------------------------- */

int sp_snap_get_nil(struct sp_snapshot_reader *r);
int sp_snap_get_bool(struct sp_snapshot_reader *r, bool *v);
int sp_snap_get_u64(struct sp_snapshot_reader *r, uint64_t *v);
int sp_snap_get_u32(struct sp_snapshot_reader *r, uint32_t *v);   /* range-checked */
int sp_snap_get_i64(struct sp_snapshot_reader *r, int64_t *v);
int sp_snap_get_f64(struct sp_snapshot_reader *r, double *v);     /* any number */
/* A string into buf (NUL-terminated; too long is an error). */
int sp_snap_get_str(struct sp_snapshot_reader *r, char *buf, size_t size);
/* A string or bin, in place (not NUL-terminated; valid during restore). */
int sp_snap_get_bytes(struct sp_snapshot_reader *r, const void **p, size_t *n);
/* Enter a container: *n elements (a map: *n pairs) follow, until get_end. */
int sp_snap_get_array(struct sp_snapshot_reader *r, size_t *n);
int sp_snap_get_map(struct sp_snapshot_reader *r, size_t *n);
/* Enter an array that must have exactly n elements. */
int sp_snap_get_array_n(struct sp_snapshot_reader *r, size_t n);
/* Leave the container entered last; an error if elements are left. */
int sp_snap_get_end(struct sp_snapshot_reader *r);
/* Bulk arrays: the number of 8-byte values in the next bin (or elements of
 * the next array), without consuming it; then read exactly that many. */
int sp_snap_peek_count(struct sp_snapshot_reader *r, size_t *n);
int sp_snap_get_f64s(struct sp_snapshot_reader *r, double *v, size_t n);
int sp_snap_get_u64s(struct sp_snapshot_reader *r, uint64_t *v, size_t n);
int sp_snap_get_i64s(struct sp_snapshot_reader *r, int64_t *v, size_t n);
/* Report a semantic error (a count out of range, an unknown id): recorded
 * like a type error, with the entity's name; returns SP_SNAPSHOT_EFORMAT. */
int sp_snap_fail(struct sp_snapshot_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The first error so far (0 if none). */
int sp_snap_error(const struct sp_snapshot_reader *r);
/* The sim being restored (to look up entities, tokens). */
struct sp_sim *sp_snap_sim(struct sp_snapshot_reader *r);

#ifdef __cplusplus
}
#endif
#endif
