/*
 * test_snapshot_cli.c — checkpoints from the command line: `spiral run
 * --checkpoint-every/--checkpoint-at`, `spiral resume` (a continuation and a
 * branch), and what resume does with damaged or unfitting snapshots
 * (docs/snapshot.md, docs/cli.md).  Runs the real binary in new processes.
 *
 * The world is experiments/quickstart.yaml (a GBM path with jumps and a 40 %
 * crash on day 1, sampled every 5 minutes), short and fully deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "spiral/scenario.h"
#include "spiral/snapshot.h"
#include "testutil.h"

#define PRICE "/markets/reference_ETH/price"
#define TIME "/markets/reference_ETH/t"

static char dir[600], quick[1024], full[1024], ckpt[1024], snap1d[1100];

static int spiral(const char *log, ...)
{
    char *argv[32] = { "spiral" };
    int n = 1;
    va_list ap;
    va_start(ap, log);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int rc = tu_run(argv, log);
    if (rc != 0 && rc != 2) {
        char *text = tu_read(log);
        fprintf(stderr, "spiral exited %d:\n%s\n", rc, text);
        free(text);
    }
    return rc;
}

/* One run to the horizon with a checkpoint every day: the parent of everything. */
static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("snapshot_cli"));
    snprintf(quick, sizeof quick, "%s/experiments/quickstart.yaml", SP_SOURCE_DIR);
    snprintf(full, sizeof full, "%s/full.h5", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    snprintf(snap1d, sizeof snap1d, "%s/quickstart@1d.snap", ckpt);
    char log[700];
    snprintf(log, sizeof log, "%s/full.log", dir);
    return spiral(log, "run", quick, "-o", full, "--checkpoint-every", "1d", "--checkpoint-dir",
                  ckpt, NULL);
}

static void test_checkpoints_are_named_by_time_and_announced(void **state)
{
    (void)state;
    char path[1200], log[700], buf[32];
    for (int d = 1; d <= 3; d++) {
        snprintf(path, sizeof path, "%s/quickstart@%dd.snap", ckpt, d);
        assert_int_equal(access(path, R_OK), 0);
    }
    snprintf(log, sizeof log, "%s/full.log", dir);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "checkpoint "));
    assert_non_null(strstr(text, "quickstart@1d.snap (t = 1d)"));
    free(text);
    assert_string_equal(tu_status(full, buf, sizeof buf), "complete");
    /* --checkpoint-at, default directory OUTPUT.ckpt next to the output. */
    char out[700];
    snprintf(out, sizeof out, "%s/at.h5", dir);
    snprintf(log, sizeof log, "%s/at.log", dir);
    assert_int_equal(spiral(log, "run", quick, "-o", out, "--until", "12h", "--checkpoint-at",
                            "90m", "--checkpoint-at", "10h", "-q", NULL), 0);
    snprintf(path, sizeof path, "%s/at.ckpt/quickstart@1h30m.snap", dir);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/at.ckpt/quickstart@10h.snap", dir);
    assert_int_equal(access(path, R_OK), 0);
    /* spiral info on a snapshot. */
    snprintf(log, sizeof log, "%s/info.log", dir);
    assert_int_equal(spiral(log, "info", path, NULL), 0);
    text = tu_read(log);
    assert_non_null(strstr(text, "spiral snapshot, format 1"));
    assert_non_null(strstr(text, "time         10h of horizon 3d"));
    assert_non_null(strstr(text, "reference  gbm"));
    assert_non_null(strstr(text, "at.h5 ("));                /* the recorder's position */
    assert_non_null(strstr(text, "spiral resume"));
    free(text);
    /* What the file says about itself. */
    struct sp_snapshot *s;
    struct sp_diag d = { 0 };
    assert_int_equal(sp_snapshot_load(&s, path, &d), 0);
    assert_true(sp_snapshot_time(s) <= 10 * SP_HOUR && sp_snapshot_time(s) > 9 * SP_HOUR);
    assert_int_equal(sp_snapshot_seed(s), 42);
    assert_non_null(strstr(sp_snapshot_scenario(s), "volatility"));
    sp_snapshot_destroy(s);
    sp_diag_release(&d);
}

/* Rows of `parent` with t <= t_cut, then all of `child`: equal to `whole`? */
static bool prefix_plus_child_is(const char *parent, const char *child, const char *whole,
                                 const char *ds, double t_cut, size_t *n_child)
{
    size_t np, nc, nw, nt, e1, e2, e3;
    double *t = tu_read_f64(parent, TIME, &nt);
    unsigned char *p = tu_read_raw(parent, ds, &np, &e1);
    unsigned char *c = tu_read_raw(child, ds, &nc, &e2);
    unsigned char *w = tu_read_raw(whole, ds, &nw, &e3);
    size_t cut = 0;
    while (cut < nt && t[cut] <= t_cut) cut++;
    bool eq = p && c && w && e1 == e2 && e2 == e3 && cut + nc == nw &&
              !memcmp(w, p, cut * e1) && !memcmp(w + cut * e1, c, nc * e1);
    *n_child = nc;
    free(t); free(p); free(c); free(w);
    return eq;
}

static void test_resume_continues_the_run_exactly(void **state)
{
    (void)state;
    char out[700], log[700], buf[32];
    snprintf(out, sizeof out, "%s/resumed.h5", dir);
    snprintf(log, sizeof log, "%s/resumed.log", dir);
    assert_int_equal(spiral(log, "resume", snap1d, "-o", out, NULL), 0);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "resumed from t = "));
    free(text);
    assert_string_equal(tu_status(out, buf, sizeof buf), "complete");
    double at = tu_attr_f64(out, "/", "resumed_at");
    assert_true(at > 23 * 3600.0 && at <= 86400.0);
    assert_true(tu_attr_f64(out, "/", "branch") == 0);
    size_t n;
    assert_true(prefix_plus_child_is(full, out, full, PRICE, at, &n));
    assert_true(n > 500);
    /* The recorder's position, from the snapshot: the parent's rows then. */
    size_t nt;
    double *t = tu_read_f64(full, TIME, &nt);
    size_t upto = 0;
    while (upto < nt && t[upto] <= at) upto++;
    free(t);
    assert_true(tu_attr_f64(out, "/markets/reference_ETH", "parent_rows") == (double)upto);
    assert_true(prefix_plus_child_is(full, out, full, TIME, at, &n));
    assert_true(prefix_plus_child_is(full, out, full, "/markets/reference_ETH/shock_factor", at, &n));
    /* The whole-run metrics too (the max drawdown spans the two parts). */
    assert_true(tu_attr_f64(out, "/summary", "max_drawdown_reference_ETH") ==
                tu_attr_f64(full, "/summary", "max_drawdown_reference_ETH"));
    assert_true(tu_attr_f64(out, "/summary", "min_price_reference_ETH") ==
                tu_attr_f64(full, "/summary", "min_price_reference_ETH"));
    /* --until stops earlier: a prefix of the same continuation. */
    char early[700];
    snprintf(early, sizeof early, "%s/early.h5", dir);
    assert_int_equal(spiral(log, "resume", snap1d, "-o", early, "--until", "2d", "-q", NULL), 0);
    size_t ne, nr, e1, e2;
    unsigned char *pe = tu_read_raw(early, PRICE, &ne, &e1);
    unsigned char *pr = tu_read_raw(out, PRICE, &nr, &e2);
    assert_true(ne > 0 && ne < nr);
    assert_memory_equal(pe, pr, ne * e1);
    free(pe);
    free(pr);
}

static void test_branch_differs_only_after_the_branch_point(void **state)
{
    (void)state;
    char out[700], noop[700], log[700];
    snprintf(out, sizeof out, "%s/branch.h5", dir);
    snprintf(noop, sizeof noop, "%s/noop.h5", dir);
    snprintf(log, sizeof log, "%s/branch.log", dir);
    assert_int_equal(spiral(log, "resume", snap1d, "-o", out, "--set",
                            "references.0.volatility=300%", NULL), 0);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "branched from t = "));
    free(text);
    assert_true(tu_attr_f64(out, "/", "branch") == 1);
    double at = tu_attr_f64(out, "/", "resumed_at");
    /* Every row of the branch is after the branch point ... */
    size_t nb, nf;
    double *tb = tu_read_f64(out, TIME, &nb);
    double *tf = tu_read_f64(full, TIME, &nf);
    assert_true(nb > 0);
    for (size_t i = 0; i < nb; i++) assert_true(tb[i] > at);
    /* ... on the same clock as the parent ... */
    size_t cut = 0;
    while (cut < nf && tf[cut] <= at) cut++;
    assert_int_equal(cut + nb, nf);
    assert_memory_equal(tb, tf + cut, nb * sizeof *tb);
    /* ... and the prices differ from the parent's after it (the first
     * step after the branch point already uses the new volatility). */
    double *pb = tu_read_f64(out, PRICE, &nb);
    double *pf = tu_read_f64(full, PRICE, &nf);
    size_t differ = 0;
    for (size_t i = 0; i < nb; i++) differ += pb[i] != pf[cut + i];
    assert_true(differ > nb * 9 / 10);
    /* An override that changes nothing in the model (the compression of
     * the output) continues exactly like the parent. */
    assert_int_equal(spiral(log, "resume", snap1d, "-o", noop, "--set", "output.compression=0",
                            "-q", NULL), 0);
    size_t n;
    assert_true(tu_attr_f64(noop, "/", "branch") == 1);
    assert_true(prefix_plus_child_is(full, noop, full, PRICE, at, &n));
    free(tb); free(tf); free(pb); free(pf);
}

/* Damage a copy of the day-1 snapshot and expect exit 2, a message naming
 * the file and the fault, and no output file. */
static void expect_refused(const unsigned char *data, size_t len, const char *name,
                           const char *needle)
{
    char path[700], out[700], log[700];
    snprintf(path, sizeof path, "%s/%s.snap", dir, name);
    snprintf(out, sizeof out, "%s/%s.h5", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    assert_int_equal(spiral(log, "resume", path, "-o", out, NULL), 2);
    char *text = tu_read(log);
    if (!strstr(text, needle) || !strstr(text, path)) fprintf(stderr, "%s\n", text);
    assert_non_null(strstr(text, needle));
    assert_non_null(strstr(text, path));
    free(text);
    assert_int_not_equal(access(out, F_OK), 0);
}

static void test_resume_refuses_damaged_snapshots_with_exit_2(void **state)
{
    (void)state;
    size_t len;
    FILE *f = fopen(snap1d, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
    expect_refused(buf, len / 2, "truncated", "truncated");
    expect_refused(buf, 10, "stub", "truncated");
    buf[len / 3] ^= 0x10;
    expect_refused(buf, len, "bitflip", "checksum mismatch");
    buf[len / 3] ^= 0x10;
    buf[8] = 7;
    expect_refused(buf, len, "version", "unsupported snapshot format version 7");
    buf[8] = 1;
    buf[0] = 'X';
    expect_refused(buf, len, "magic", "not a spiral snapshot");
    /* spiral info checks the file too. */
    char info_log[700], damaged[700];
    buf[0] = 'S';
    buf[len / 3] ^= 0x10;
    snprintf(damaged, sizeof damaged, "%s/bitflip.snap", dir);
    snprintf(info_log, sizeof info_log, "%s/info-bad.log", dir);
    assert_int_equal(spiral(info_log, "info", damaged, NULL), 2);
    char *text = tu_read(info_log);
    assert_non_null(strstr(text, "checksum mismatch"));
    free(text);
    free(buf);
    char log[700], out[700];
    snprintf(log, sizeof log, "%s/missing.log", dir);
    snprintf(out, sizeof out, "%s/missing.h5", dir);
    assert_int_equal(spiral(log, "resume", "/nonexistent/x.snap", "-o", out, NULL), 2);
}

static void test_resume_refuses_what_does_not_fit(void **state)
{
    (void)state;
    char log[700], out[700];
    snprintf(out, sizeof out, "%s/unfit.h5", dir);
    snprintf(log, sizeof log, "%s/unfit.log", dir);
    /* An override that renames an entity: the state no longer fits. */
    assert_int_equal(spiral(log, "resume", snap1d, "-o", out, "--set", "references.0.name=other",
                            NULL), 2);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "other"));
    free(text);
    assert_int_not_equal(access(out, F_OK), 0);
    /* A bad override is a scenario error with its key. */
    assert_int_equal(spiral(log, "resume", snap1d, "-o", out, "--set", "references.0.volatilty=1",
                            NULL), 2);
    text = tu_read(log);
    assert_non_null(strstr(text, "volatility"));    /* did you mean */
    free(text);
    /* Nothing to run: --until before the snapshot. */
    assert_int_equal(spiral(log, "resume", snap1d, "-o", out, "--until", "12h", NULL), 2);
    text = tu_read(log);
    assert_non_null(strstr(text, "nothing to run"));
    free(text);
    assert_int_not_equal(access(out, F_OK), 0);
    /* Usage. */
    assert_int_equal(spiral(log, "resume", NULL), 2);
    assert_int_equal(spiral(log, "resume", snap1d, "--until", "soon", NULL), 2);
}

/* Black Thursday (English auctions, 346 of them from 2 h on): switching
 * the liquidation mechanism at a branch works before the auctions start and
 * is refused, with the reason, while English auctions are live (they would
 * be stranded: Dutch takes do not serve them). */
static void test_branch_switching_the_mechanism_refuses_live_auctions(void **state)
{
    (void)state;
    char bt[1024], out[700], log[700], snap[1200];
    snprintf(bt, sizeof bt, "%s/experiments/black_thursday.yaml", SP_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/bt.h5", dir);
    snprintf(log, sizeof log, "%s/bt.log", dir);
    assert_int_equal(spiral(log, "run", bt, "-o", out, "--until", "1d", "--checkpoint-at", "1h",
                            "--checkpoint-at", "1d", "-q", NULL), 0);
    snprintf(snap, sizeof snap, "%s/bt.ckpt/black_thursday@1d.snap", dir);
    assert_int_equal(spiral(log, "resume", snap, "-o", out, "--until", "1d1h", "--set",
                            "protocols.0.liquidation.mechanism=dutch_auction", NULL), 2);
    char *text = tu_read(log);
    assert_non_null(strstr(text, "live english_auction auctions"));
    assert_non_null(strstr(text, "stranded"));
    free(text);
    assert_int_not_equal(access(out, F_OK), 0);
    /* From 1 h, before the first auction: every auction is a Dutch one. */
    snprintf(snap, sizeof snap, "%s/bt.ckpt/black_thursday@1h.snap", dir);
    assert_int_equal(spiral(log, "resume", snap, "-o", out, "--until", "1d", "--set",
                            "protocols.0.liquidation.mechanism=dutch_auction", "-q", NULL), 0);
    size_t n, e;
    unsigned char *mech = tu_read_raw(out, "/events/auctions/mechanism", &n, &e);
    assert_true(n > 50);
    assert_int_equal(e, 1);
    for (size_t i = 0; i < n; i++) assert_int_equal(mech[i], 2);     /* dutch_auction */
    free(mech);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoints_are_named_by_time_and_announced),
        cmocka_unit_test(test_resume_continues_the_run_exactly),
        cmocka_unit_test(test_branch_differs_only_after_the_branch_point),
        cmocka_unit_test(test_resume_refuses_damaged_snapshots_with_exit_2),
        cmocka_unit_test(test_resume_refuses_what_does_not_fit),
        cmocka_unit_test(test_branch_switching_the_mechanism_refuses_live_auctions),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
