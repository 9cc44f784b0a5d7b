/*
 * snapshot-internal.h — pieces of engine/snapshot.c for tests and the fuzz
 * target (not public API).
 */
#ifndef SPIRAL_SNAPSHOT_INTERNAL_H
#define SPIRAL_SNAPSHOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct sp_diag;

/* Called after each chunk of an atomic write (tests slow the write down
 * with it to land a SIGTERM in the middle). */
typedef void (*sp_snapshot_chunk_fn)(void *arg, size_t written, size_t total);

/* The atomic file write behind sp_snapshot_write: `path`.tmp.XXXXXX in the
 * same directory, written in chunks of `chunk` bytes (0: 1 MiB), fsync,
 * rename over `path`, fsync of the directory. */
int sp_snapshot_write_file(const char *path, const void *data, size_t len, size_t chunk,
                           sp_snapshot_chunk_fn fn, void *arg, struct sp_diag *d);

/* The file's checksum, of its body (docs/snapshot.md). */
uint64_t sp_snapshot_checksum(const void *data, size_t len);

/* Sizes of the fixed parts: header (magic, version, flags, body length)
 * and the trailing checksum. */
#define SP_SNAPSHOT_HEADER_SIZE 24
#define SP_SNAPSHOT_TRAILER_SIZE 8

struct sp_snapshot;

/* Compare two loaded snapshots part by part: 0 if their engine state and
 * every entity record are the same bytes, else 1 with the first difference
 * described in msg (which part, which entity, which byte). */
int sp_snapshot_diff(const struct sp_snapshot *a, const struct sp_snapshot *b, char *msg,
                     size_t size);

/* Where the payload of entity `name` starts in the file's bytes (the
 * record is [type, payload]), or -1: for tests that damage one payload. */
long sp_snapshot_payload_offset(const struct sp_snapshot *s, const char *name);

#endif
