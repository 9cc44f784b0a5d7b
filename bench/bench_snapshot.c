/*
 * bench_snapshot.c — checkpoint speed at scale (issue 7's targets): the
 * book of bench_lending (a pool with n positions, one owner entity each),
 * then the time to encode a snapshot, write it atomically, load and check
 * it, rebuild the world from its scenario and restore it, and the bytes
 * per position on disk (targets: under 1 s to write and to read, at most
 * 100 bytes per position at 10^6 positions).
 *
 *   spiral-bench-snapshot [n_positions]      (default 1000000)
 *
 * Every module of that world implements snapshot/restore; if one ever does
 * not, it says which and exits 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "spiral/error.h"
#include "spiral/ledger.h"
#include "spiral/module.h"
#include "spiral/rng.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"
#include "spiral/world.h"
#include "bench_book.h"
#include "lending.h"
#include "snapshot-internal.h"

static void die(const char *what, int rc, struct sp_diag *d)
{
    if (d) sp_diag_print(d, stderr);
    fprintf(stderr, "bench_snapshot: %s: %s\n", what, sp_strerror(rc));
    exit(1);
}

/* The module types of `sim` without snapshot/restore, comma-separated. */
static size_t missing_types(struct sp_sim *sim, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sp_sim_entity_count(sim); i++) {
        const struct sp_module_ops *ops = sp_sim_entity_ops(sim, (sp_id)i);
        if (ops->snapshot && ops->restore) continue;
        char name[128];
        snprintf(name, sizeof name, "%s/%s", ops->kind, ops->type);
        if (strstr(buf, name)) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", n ? ", " : "", name);
        n++;
    }
    return n;
}

/* ---- the engine's share, measured today ----------------------------------------- */

/* An idle entity: one pending event, an empty payload (nil). */
static void idle_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    (void)self; (void)sim; (void)ev;
}
static int idle_snapshot(const void *self, struct sp_snapshot_writer *w)
{
    (void)self;
    return sp_snap_put_nil(w);
}
static int idle_restore(void *self, struct sp_snapshot_reader *r)
{
    (void)self;
    return sp_snap_get_nil(r);
}
static const struct sp_module_ops idle_ops = {
    .kind = "agent", .type = "idle", .state_size = 1, .on_event = idle_on_event,
    .snapshot = idle_snapshot, .restore = idle_restore,
};

static struct sp_sim *idle_world(size_t n)
{
    struct sp_sim *sim;
    static const char *const toks[] = { "ETH", "USDC", "aUSDC" };
    if (sp_sim_create(&sim, 1) || sp_sim_set_tokens(sim, toks, 3)) die("sim", SP_ENOMEM, NULL);
    char name[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "owner_%zu", i);
        if (sp_sim_add_entity(sim, name, &idle_ops, NULL, NULL)) die("entity", SP_ENOMEM, NULL);
    }
    return sim;
}

/* n entities, each with a pending event, a random stream and a ledger row
 * of 3 tokens: the bytes and seconds the engine costs before any module. */
static void engine_share(size_t n)
{
    struct sp_sim *sim = idle_world(n);
    struct sp_rng rng;
    sp_rng_init(&rng, 1, 2);
    for (size_t i = 0; i < n; i++) {
        sp_sim_schedule(sim, SP_HOUR + (sp_time)sp_rng_below(&rng, SP_HOUR), SP_PRIO_AGENT,
                        (sp_id)i, 1);
        sp_mint(sim, 0, (sp_id)i, 1 + sp_rng_uniform(&rng));
        sp_mint(sim, 1, (sp_id)i, 1000 * sp_rng_uniform(&rng));
    }
    struct sp_diag d = { 0 };
    char path[] = "/tmp/bench_snapshot_XXXXXX.snap";
    int fd = mkstemps(path, 5);
    if (fd < 0) die("temp file", SP_EIO, NULL);
    close(fd);
    double t0 = bench_now();
    int rc = sp_snapshot_write(sim, NULL, path, &d);
    if (rc) die("write", rc, &d);
    double t_enc = bench_now() - t0;
    t0 = bench_now();
    struct sp_snapshot *s;
    if ((rc = sp_snapshot_load(&s, path, &d))) die("load", rc, &d);
    double t_load = bench_now() - t0;
    size_t len;
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fclose(f);
    remove(path);
    struct sp_sim *sim2 = idle_world(n);
    t0 = bench_now();
    if ((rc = sp_snapshot_restore(s, sim2, &d))) die("restore", rc, &d);
    double t_restore = bench_now() - t0;
    printf("spiral-bench-snapshot: engine share, %zu idle entities (1 pending event, 3-token "
           "ledger row, nil payload each)\n", n);
    printf("  %.1f MiB = %.1f bytes/entity; write (streamed, fsync'd) %.3f s, load+check %.3f s, "
           "restore %.3f s\n", (double)len / 1048576.0, (double)len / (double)n, t_enc, t_load,
           t_restore);
    sp_snapshot_destroy(s);
    sp_sim_destroy(sim);
    sp_sim_destroy(sim2);
    sp_diag_release(&d);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    engine_share(n);
    struct sp_diag d = { 0 };
    struct sp_scenario *sc;
    struct sp_world_cfg cfg;
    struct sp_sim *sim;
    int rc = bench_book_world(n, "bench_snapshot", &sc, &cfg, &sim, &d);
    if (rc) die("scenario", rc, &d);
    char missing[1024];
    if (missing_types(sim, missing, sizeof missing)) {
        printf("spiral-bench-snapshot: module types without snapshot/restore: %s\n", missing);
        sp_sim_destroy(sim);
        sp_scenario_destroy(sc);
        sp_diag_release(&d);
        return 1;
    }
    if ((rc = sp_sim_start(sim))) die("start", rc, NULL);
    bool drained;
    sp_sim_step(sim, SP_MIN, UINT64_MAX, &drained);
    if ((rc = bench_book_fill(sim, n))) die("book", rc, NULL);
    char snap[] = "/tmp/bench_snapshot_XXXXXX.snap";
    int sfd = mkstemps(snap, 5);
    if (sfd < 0) die("temp file", SP_EIO, NULL);
    close(sfd);
    double t0 = bench_now();
    if ((rc = sp_snapshot_write(sim, sc, snap, &d))) die("write", rc, &d);
    double t_write = bench_now() - t0;
    void *buf;
    size_t len;
    if ((rc = sp_snapshot_encode(sim, sc, &buf, &len, &d))) die("encode", rc, &d);
    t0 = bench_now();
    struct sp_snapshot *s;
    if ((rc = sp_snapshot_load(&s, snap, &d))) die("load", rc, &d);
    double t_load = bench_now() - t0;
    t0 = bench_now();
    struct sp_scenario *sc2;
    struct sp_world_cfg cfg2;
    struct sp_sim *sim2;
    if ((rc = sp_snapshot_build_world(s, sp_registry_builtin(), NULL, 0, &sc2, &cfg2, &sim2, &d)) ||
        (rc = sp_sim_start(sim2)))
        die("rebuild", rc, &d);
    double t_build = bench_now() - t0;
    t0 = bench_now();
    if ((rc = sp_snapshot_restore(s, sim2, &d))) die("restore", rc, &d);
    double t_restore = bench_now() - t0;
    void *buf2;
    size_t len2;
    if ((rc = sp_snapshot_encode(sim2, sc, &buf2, &len2, &d))) die("re-encode", rc, &d);
    bool same = len2 == len && !memcmp(buf, buf2, len);
    printf("spiral-bench-snapshot: %zu positions (pool, ETH collateral, USDC debt)\n", n);
    printf("  file %.1f MiB = %.1f bytes/position (target <= 100)\n", (double)len / 1048576.0,
           (double)len / (double)n);
    printf("  write (streamed, atomic, fsync'd): %.3f s (target < 1 s)\n", t_write);
    printf("  read:  load+check %.3f s + restore %.3f s = %.3f s (target < 1 s); "
           "rebuilding the world from the scenario %.3f s\n", t_load, t_restore,
           t_load + t_restore, t_build);
    printf("  restored state re-encodes %s\n", same ? "identically" : "DIFFERENTLY (bug)");
    free(buf);
    free(buf2);
    remove(snap);
    sp_snapshot_destroy(s);
    sp_sim_destroy(sim2);
    sp_scenario_destroy(sc2);
    sp_sim_destroy(sim);
    sp_scenario_destroy(sc);
    sp_diag_release(&d);
    return same ? 0 : 1;
}
