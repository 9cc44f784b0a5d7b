/*
 * snaptest.h — helpers shared by the snapshot tests (test_snapshot*.c):
 * open a world from a scenario file, run it, encode its state, write and
 * restore snapshots, and the pieces the damage tests need (the payload of
 * one entity, the trailer checksum after an edit, a byte search).
 *
 * Design: header-only (static inline functions, prefix st_) so each test
 * stays one file, like testutil.h.  Every helper that cannot fail in a
 * healthy world asserts (cmocka), printing the diagnostic first; the ones a
 * test expects to fail return the code and leave the message in a
 * caller-owned sp_diag.  Include it after <cmocka.h> (and its prerequisites
 * <setjmp.h>, <stdarg.h>, <stddef.h>, <stdint.h>).
 */
#ifndef SPIRAL_SNAPTEST_H
#define SPIRAL_SNAPTEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "snapshot-internal.h"

/* A scenario, its bound configuration and the sim built from it. */
struct st_world {
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
};

/* Load `yaml_path`, bind with `reg`, build and start; `rec` (NULL: none)
 * is attached before start, as the CLI does. */
static inline void st_open_rec(struct st_world *w, const char *yaml_path,
                               const struct sp_registry *reg, struct sp_rec *rec)
{
    struct sp_diag d = { 0 };
    int rc = sp_scenario_load(&w->sc, yaml_path, &d);
    if (!rc) rc = sp_world_bind(w->sc, reg, &w->cfg, &d);
    if (!rc) rc = sp_world_build(&w->sim, &w->cfg, &d);
    if (!rc && rec) sp_sim_set_recorder(w->sim, rec);
    if (!rc) rc = sp_sim_start(w->sim);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    assert_int_equal(rc, 0);
}

static inline void st_open(struct st_world *w, const char *yaml_path,
                           const struct sp_registry *reg)
{
    st_open_rec(w, yaml_path, reg, NULL);
}

/* Destroy the sim and the scenario (either may be NULL). */
static inline void st_close(struct st_world *w)
{
    sp_sim_destroy(w->sim);
    sp_scenario_destroy(w->sc);
}

/* Run to t (`pause`: stop at the last event before it, as a checkpoint
 * does): the run completes and the sim records no failure. */
static inline void st_run(struct sp_sim *sim, sp_time t, bool pause)
{
    struct sp_run_opts o = { .until = t, .pause = pause };
    assert_int_equal(sp_sim_run(sim, &o), SP_RUN_COMPLETE);
    const char *msg = NULL;
    if (sp_sim_failure(sim, &msg)) fail_msg("run failed: %s", msg ? msg : "?");
}

static inline void st_run_to(struct sp_sim *sim, sp_time t)
{
    st_run(sim, t, false);
}

static inline void *st_encode_sc(struct sp_sim *sim, const struct sp_scenario *sc, size_t *len)
{
    struct sp_diag d = { 0 };
    void *buf = NULL;
    int rc = sp_snapshot_encode(sim, sc, &buf, len, &d);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    assert_int_equal(rc, 0);
    return buf;
}

/* The state as bytes, malloc'd (no scenario text: for comparing worlds). */
static inline void *st_state_bytes(struct sp_sim *sim, size_t *len)
{
    return st_encode_sc(sim, NULL, len);
}

/* The whole snapshot as bytes, malloc'd (with the scenario: restorable). */
static inline void *st_encode(struct st_world *w, size_t *len)
{
    return st_encode_sc(w->sim, w->sc, len);
}

/* A fresh world of `yaml` run to t, encoded with its scenario (malloc'd). */
static inline void *st_encoded_at(const char *yaml, const struct sp_registry *reg, sp_time t,
                                  size_t *len)
{
    struct st_world w;
    st_open(&w, yaml, reg);
    st_run_to(w.sim, t);
    void *buf = st_encode(&w, len);
    st_close(&w);
    return buf;
}

/* Write the snapshot of `w` to `path`. */
static inline void st_snapshot_to(struct st_world *w, const char *path)
{
    struct sp_diag d = { 0 };
    int rc = sp_snapshot_write(w->sim, w->sc, path, &d);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    assert_int_equal(rc, 0);
}

/* Restore `path` into a new world, built from the file's own scenario. */
static inline void st_restore(struct st_world *w, const char *path,
                              const struct sp_registry *reg)
{
    struct sp_diag d = { 0 };
    struct sp_snapshot *s = NULL;
    int rc = sp_snapshot_load(&s, path, &d);
    if (!rc) rc = sp_snapshot_build_world(s, reg, NULL, 0, &w->sc, &w->cfg, &w->sim, &d);
    if (!rc) rc = sp_sim_start(w->sim);
    if (!rc) rc = sp_snapshot_restore(s, w->sim, &d);
    if (rc) sp_diag_print(&d, stderr);
    sp_diag_release(&d);
    sp_snapshot_destroy(s);
    assert_int_equal(rc, 0);
}

/* Load `buf` (named `name` in messages), build a new world from its
 * scenario and start it — each asserted — then restore: the restore's
 * code, its message in *d (release it).  Close `w` in any case. */
static inline int st_restore_buffer(struct st_world *w, const void *buf, size_t len,
                                    const char *name, const struct sp_registry *reg,
                                    struct sp_diag *d)
{
    struct sp_snapshot *s = NULL;
    int rc = sp_snapshot_load_buffer(&s, buf, len, name, d);
    if (rc) sp_diag_print(d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(sp_snapshot_build_world(s, reg, NULL, 0, &w->sc, &w->cfg, &w->sim, d), 0);
    assert_int_equal(sp_sim_start(w->sim), 0);
    rc = sp_snapshot_restore(s, w->sim, d);
    sp_snapshot_destroy(s);
    return rc;
}

/* The same without asserting any step, with `n_sets` overrides (a branch):
 * 0 or the first failing step's code, its message in *d.  `w` starts
 * zeroed, so st_close is safe whatever failed. */
static inline int st_try_restore_buffer(struct st_world *w, const void *buf, size_t len,
                                        const char *name, const struct sp_registry *reg,
                                        const char *const *sets, size_t n_sets,
                                        struct sp_diag *d)
{
    struct sp_snapshot *s = NULL;
    memset(w, 0, sizeof *w);
    int rc = sp_snapshot_load_buffer(&s, buf, len, name, d);
    if (!rc) rc = sp_snapshot_build_world(s, reg, sets, n_sets, &w->sc, &w->cfg, &w->sim, d);
    if (!rc) rc = sp_sim_start(w->sim);
    if (!rc) rc = sp_snapshot_restore(s, w->sim, d);
    sp_snapshot_destroy(s);
    return rc;
}

/* Recompute the trailer checksum of an encoded snapshot after an edit
 * (the body: between the header and the trailer). */
static inline void st_fix_checksum(unsigned char *buf, size_t len)
{
    uint64_t h = sp_snapshot_checksum(buf + SP_SNAPSHOT_HEADER_SIZE,
                                      len - SP_SNAPSHOT_HEADER_SIZE - SP_SNAPSHOT_TRAILER_SIZE);
    for (int i = 0; i < 8; i++) buf[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

/* The start of the payload of entity `name` in an encoded snapshot (its
 * record is [type index, payload]; names are in the header). */
static inline unsigned char *st_payload(unsigned char *buf, size_t len, const char *name)
{
    struct sp_snapshot *s;
    struct sp_diag d = { 0 };
    assert_int_equal(sp_snapshot_load_buffer(&s, buf, len, "payload.snap", &d), 0);
    long off = sp_snapshot_payload_offset(s, name);
    sp_snapshot_destroy(s);
    sp_diag_release(&d);
    if (off <= 0) fail_msg("no payload of entity '%s'", name);
    return buf + off;
}

/* The first occurrence of needle[0..m) in hay[0..n), or NULL (memmem is a
 * GNU extension). */
static inline unsigned char *st_find_bytes(unsigned char *hay, size_t n, const void *needle,
                                           size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m)) return hay + i;
    return NULL;
}

/* Remove the files in `dir` (not recursive), then `dir` itself. */
static inline void st_rmdir_files(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    char path[1300];
    while (dp && (e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    if (dp) closedir(dp);
    rmdir(dir);
}

#endif
