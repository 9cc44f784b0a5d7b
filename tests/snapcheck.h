/*
 * snapcheck.h — the restore check of the snapshot issue, for tests and the
 * spiral-snapcheck program: a run to T in one go must equal a run to T1,
 * a snapshot, a restore in a NEW PROCESS and a run on to T.
 *
 *   A: scenario -> sp_world_run to T             -> a.h5, a snapshot at T
 *   B: scenario -> sp_world_run to T1, checkpoint -> b1.h5, NAME@T1.snap
 *   C: (forked child) sp_world_resume(NAME@T1.snap) to T -> b2.h5, snapshot at T
 *
 * Passes when (1) the snapshots of A and C at T are the same bytes (the whole
 * state: engine, queue, streams, ledger, every module's payload) and (2)
 * every dataset of a.h5 is b1's rows followed by b2's (tables), or equal to
 * b2's (per-run tables such as /entities), and /summary's attributes of a.h5
 * and b2.h5 are equal.  It goes through the same sp_world_run /
 * sp_world_resume calls as `spiral run --checkpoint-at` and `spiral resume`.
 *
 * Header-only (static functions); needs hdf5 and spiral's internal headers.
 */
#ifndef SPIRAL_SNAPCHECK_H
#define SPIRAL_SNAPCHECK_H

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "snapshot-internal.h"

struct snapcheck {
    const char *scenario;              /* YAML path */
    const struct sp_registry *reg;     /* NULL: built-in */
    const char *const *sets;           /* --set overrides for all runs */
    size_t n_sets;
    sp_time until;                     /* T (0: the horizon) */
    sp_time at;                        /* T1 (0: T/2) */
    const char *workdir;               /* where files go (must exist) */
    bool keep;                         /* keep the files */
    char msg[1024];                    /* the first difference, or why it failed */
};

static int snapcheck_fail(struct snapcheck *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int snapcheck_fail(struct snapcheck *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->msg, sizeof k->msg, fmt, ap);
    va_end(ap);
    return 1;
}

static int snapcheck_load(struct snapcheck *k, struct sp_scenario **sc, struct sp_world_cfg *cfg)
{
    struct sp_diag d = { 0 };
    int rc = sp_scenario_load(sc, k->scenario, &d);
    for (size_t i = 0; !rc && i < k->n_sets; i++) rc = sp_scenario_set(*sc, k->sets[i], &d);
    if (!rc) rc = sp_world_bind(*sc, k->reg ? k->reg : sp_registry_builtin(), cfg, &d);
    if (rc) {
        snprintf(k->msg, sizeof k->msg, "scenario: %s", d.text ? d.text : "invalid");
        sp_diag_release(&d);
        return 1;
    }
    sp_diag_release(&d);
    return 0;
}

/* One dataset's raw bytes (native type); NULL if absent, *vlen if strings. */
static void *snapcheck_read(hid_t f, const char *path, size_t *n, size_t *elem, bool *skip)
{
    *n = *elem = 0;
    *skip = false;
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return NULL;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
    void *buf = NULL;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Tis_variable_str(ft) > 0 ||
        H5Tget_class(ft) == H5T_STRING) {
        *skip = true;
        buf = malloc(1);
    } else {
        hsize_t dims[1] = { 0 };
        H5Sget_simple_extent_dims(sp, dims, NULL);
        hid_t mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
        *elem = H5Tget_size(mt);
        *n = (size_t)dims[0];
        buf = malloc(*n * *elem + 1);
        if (*n && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) { free(buf); buf = NULL; }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

struct snapcheck_walk {
    struct snapcheck *k;
    hid_t b1, b2;
    int bad;
    size_t n_checked;
};

static herr_t snapcheck_visit(hid_t fa, const char *name, const H5O_info_t *info, void *arg)
{
    struct snapcheck_walk *w = arg;
    if (info->type != H5O_TYPE_DATASET || w->bad) return 0;
    char path[1024];
    snprintf(path, sizeof path, "/%s", name);
    size_t na, n1, n2, ea, e1, e2;
    bool sa, s1, s2;
    unsigned char *va = snapcheck_read(fa, path, &na, &ea, &sa);
    unsigned char *v1 = snapcheck_read(w->b1, path, &n1, &e1, &s1);
    unsigned char *v2 = snapcheck_read(w->b2, path, &n2, &e2, &s2);
    if (!va || !v1 || !v2) {
        w->bad = snapcheck_fail(w->k, "dataset %s: missing or unreadable in %s", path,
                                !va ? "the one-go run" : !v1 ? "the first part" : "the resumed part");
    } else if (!sa) {
        bool concat = na == n1 + n2 && ea == e1 && ea == e2 && !memcmp(va, v1, n1 * ea) &&
                      !memcmp(va + n1 * ea, v2, n2 * ea);
        bool same = na == n2 && ea == e2 && !memcmp(va, v2, na * ea);
        if (!concat && !same) {
            /* Describe the first row that differs in the concatenation. */
            size_t row = 0;
            while (row < na && row < n1 + n2 &&
                   !memcmp(va + row * ea, row < n1 ? v1 + row * ea : v2 + (row - n1) * ea, ea))
                row++;
            double x = 0, y = 0;
            if (ea == 8 && row < na && row < n1 + n2) {
                memcpy(&x, va + row * ea, 8);
                memcpy(&y, row < n1 ? v1 + row * ea : v2 + (row - n1) * ea, 8);
            }
            w->bad = snapcheck_fail(w->k, "dataset %s: one go has %zu rows, the parts %zu + %zu; "
                                    "first difference at row %zu%s (as f64: %.17g vs %.17g)",
                                    path, na, n1, n2, row, row < n1 ? " (first part)" : " (resumed part)",
                                    x, y);
        }
        w->n_checked++;
    }
    free(va);
    free(v1);
    free(v2);
    return 0;
}

/* /summary attributes of a and b2: the same names and the same values. */
static int snapcheck_summary(struct snapcheck *k, hid_t fa, hid_t fb)
{
    if (H5Lexists(fa, "/summary", H5P_DEFAULT) <= 0) return 0;
    hid_t ga = H5Gopen2(fa, "/summary", H5P_DEFAULT), gb = H5Gopen2(fb, "/summary", H5P_DEFAULT);
    if (ga < 0 || gb < 0) return snapcheck_fail(k, "/summary missing in the resumed file");
    H5O_info_t ia, ib;   /* HDF5 1.10 (Debian 12): H5Oget_info2, H5Ovisit2 */
    H5Oget_info2(ga, &ia, H5O_INFO_NUM_ATTRS);
    H5Oget_info2(gb, &ib, H5O_INFO_NUM_ATTRS);
    int bad = 0;
    if (ia.num_attrs != ib.num_attrs)
        bad = snapcheck_fail(k, "/summary: %llu metrics in one go, %llu resumed",
                             (unsigned long long)ia.num_attrs, (unsigned long long)ib.num_attrs);
    for (hsize_t i = 0; !bad && i < ia.num_attrs; i++) {
        char name[256];
        H5Aget_name_by_idx(ga, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        if (H5Aexists(gb, name) <= 0) { bad = snapcheck_fail(k, "/summary: %s missing resumed", name); break; }
        hid_t aa = H5Aopen(ga, name, H5P_DEFAULT), ab = H5Aopen(gb, name, H5P_DEFAULT);
        double x = 0, y = 0;
        H5Aread(aa, H5T_NATIVE_DOUBLE, &x);
        H5Aread(ab, H5T_NATIVE_DOUBLE, &y);
        if (memcmp(&x, &y, sizeof x) && !(x != x && y != y))
            bad = snapcheck_fail(k, "/summary: %s is %.17g in one go, %.17g resumed", name, x, y);
        H5Aclose(aa);
        H5Aclose(ab);
    }
    H5Gclose(ga);
    H5Gclose(gb);
    return bad;
}

static int snapcheck_files(struct snapcheck *k, const char *a, const char *b1, const char *b2)
{
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t f1 = H5Fopen(b1, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t f2 = H5Fopen(b2, H5F_ACC_RDONLY, H5P_DEFAULT);
    int bad = 0;
    if (fa < 0 || f1 < 0 || f2 < 0) {
        bad = snapcheck_fail(k, "cannot open the output files");
    } else {
        struct snapcheck_walk w = { k, f1, f2, 0, 0 };
        H5Ovisit2(fa, H5_INDEX_NAME, H5_ITER_INC, snapcheck_visit, &w, H5O_INFO_BASIC);
        bad = w.bad;
        if (!bad && !w.n_checked) bad = snapcheck_fail(k, "no datasets compared");
        if (!bad) bad = snapcheck_summary(k, fa, f2);
    }
    if (fa >= 0) H5Fclose(fa);
    if (f1 >= 0) H5Fclose(f1);
    if (f2 >= 0) H5Fclose(f2);
    return bad;
}

/* 0 when the check passes; else 1 with k->msg saying what differs. */
static int snapcheck_run(struct snapcheck *k)
{
    char a[1024], b1[1024], b2[1024], sa[1024], sc_[1024], half[1200];
    snprintf(a, sizeof a, "%s/a.h5", k->workdir);
    snprintf(b1, sizeof b1, "%s/b1.h5", k->workdir);
    snprintf(b2, sizeof b2, "%s/b2.h5", k->workdir);
    snprintf(sa, sizeof sa, "%s/a-end.snap", k->workdir);
    snprintf(sc_, sizeof sc_, "%s/c-end.snap", k->workdir);
    k->msg[0] = 0;
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    enum sp_run_status st;
    struct sp_diag d = { 0 };
    /* A: one go */
    if (snapcheck_load(k, &sc, &cfg)) return 1;
    sp_time until = k->until ? k->until : cfg.horizon;
    sp_time at = k->at ? k->at : until / 2;
    if (at <= 0 || at >= until) {
        sp_scenario_destroy(sc);
        return snapcheck_fail(k, "the snapshot time must be inside (0, T)");
    }
    struct sp_world_run req = { 0 };
    req.output = a;
    req.run.until = until;
    req.final_snapshot = sa;
    int rc = sp_world_run(sc, &cfg, &req, &st, &d);
    snprintf(half, sizeof half, "%s/%s@", k->workdir, cfg.name);
    sp_scenario_destroy(sc);
    if (rc || st != SP_RUN_COMPLETE) {
        snapcheck_fail(k, "the one-go run failed: %s", d.text ? d.text : "?");
        sp_diag_release(&d);
        return 1;
    }
    /* B: to T1 with a checkpoint there */
    if (snapcheck_load(k, &sc, &cfg)) return 1;
    struct sp_world_run rb = { 0 };
    rb.output = b1;
    rb.run.until = at;
    rb.checkpoint_at = &at;
    rb.n_checkpoint_at = 1;
    rb.checkpoint_dir = k->workdir;
    rc = sp_world_run(sc, &cfg, &rb, &st, &d);
    sp_scenario_destroy(sc);
    if (rc || st != SP_RUN_COMPLETE) {
        snapcheck_fail(k, "the first part failed: %s", d.text ? d.text : "?");
        sp_diag_release(&d);
        return 1;
    }
    char dur[64];
    strncat(half, sp_format_duration(at, dur, sizeof dur), sizeof half - strlen(half) - 8);
    strcat(half, ".snap");
    /* C: resume in a new process */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct sp_snapshot *s;
        struct sp_diag cd = { 0 };
        int crc = sp_snapshot_load(&s, half, &cd);
        struct sp_world_run rc2 = { 0 };
        rc2.output = b2;
        rc2.run.until = until;
        rc2.final_snapshot = sc_;
        rc2.resume_path = half;
        rc2.sets = k->sets;
        rc2.n_sets = 0;
        enum sp_run_status cst = SP_RUN_FAILED;
        if (!crc) crc = sp_world_resume(s, k->reg ? k->reg : sp_registry_builtin(), &rc2, &cst, &cd);
        if (crc || cst != SP_RUN_COMPLETE) sp_diag_print(&cd, stderr);
        _exit(crc || cst != SP_RUN_COMPLETE ? 1 : 0);
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    if (!WIFEXITED(wst) || WEXITSTATUS(wst))
        return snapcheck_fail(k, "the resumed run failed (%s %d; its message is above)",
                              WIFEXITED(wst) ? "exit" : "signal",
                              WIFEXITED(wst) ? WEXITSTATUS(wst) : WTERMSIG(wst));
    /* (1) the state at T */
    struct sp_snapshot *s1 = NULL, *s2 = NULL;
    int bad = 0;
    if (sp_snapshot_load(&s1, sa, &d) || sp_snapshot_load(&s2, sc_, &d))
        bad = snapcheck_fail(k, "cannot load the final snapshots: %s", d.text ? d.text : "?");
    else if (sp_snapshot_diff(s1, s2, k->msg, sizeof k->msg))
        bad = 1;
    sp_snapshot_destroy(s1);
    sp_snapshot_destroy(s2);
    sp_diag_release(&d);
    /* (2) the datasets */
    if (!bad) bad = snapcheck_files(k, a, b1, b2);
    if (!k->keep) {
        remove(a); remove(b1); remove(b2); remove(sa); remove(sc_); remove(half);
    }
    return bad;
}

#endif
