/*
 * snapcheck.c — spiral-snapcheck: the restore check of tests/snapcheck.h
 * from the command line, for any scenario.
 *
 *   spiral-snapcheck SCENARIO.yaml [--until T] [--at T1 ...] [--set K=V ...] [--keep DIR]
 *
 * --at may be repeated (each is a separate check; default T/2); --at F%
 * is a fraction of T.
 *
 * Runs SCENARIO to T in one go, and to T1 + snapshot + restore in a new
 * process + on to T, and compares the final state (byte for byte, naming the
 * first entity whose payload differs) and every dataset.  Exit 0 when equal,
 * 1 with the first difference on stderr, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "snapcheck.h"

int main(int argc, char **argv)
{
    struct snapcheck k = { 0 };
    const char **sets = calloc((size_t)argc, sizeof *sets);
    const char **ats = calloc((size_t)argc, sizeof *ats);
    size_t n_at = 0;
    char dir[512];
    snprintf(dir, sizeof dir, "/tmp/spiral-snapcheck-%d", (int)getpid());
    k.workdir = dir;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--until") && i + 1 < argc) {
            if (sp_parse_duration(argv[++i], &k.until) || k.until <= 0) {
                fprintf(stderr, "spiral-snapcheck: --until: expected a duration, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--at") && i + 1 < argc) {
            ats[n_at++] = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            sets[k.n_sets++] = argv[++i];
        } else if (!strcmp(a, "--keep") && i + 1 < argc) {
            k.workdir = argv[++i];
            k.keep = true;
        } else if (a[0] != '-' && !k.scenario) {
            k.scenario = a;
        } else {
            fprintf(stderr, "usage: spiral-snapcheck SCENARIO.yaml [--until T] [--at T1] "
                            "[--set K=V ...] [--keep DIR]\n");
            return 2;
        }
    }
    if (!k.scenario) {
        fprintf(stderr, "spiral-snapcheck: missing SCENARIO.yaml\n");
        return 2;
    }
    k.sets = sets;
    mkdir(k.workdir, 0777);
    int bad = 0;
    for (size_t j = 0; j < (n_at ? n_at : 1) && !bad; j++) {
        const char *at = n_at ? ats[j] : NULL;
        size_t len = at ? strlen(at) : 0;
        k.at = 0;
        if (at && len > 1 && at[len - 1] == '%') {
            /* A fraction of T: needs T, so of --until or the horizon. */
            struct sp_scenario *sc;
            struct sp_world_cfg cfg;
            if (snapcheck_load(&k, &sc, &cfg)) { bad = 1; break; }
            sp_time T = k.until ? k.until : cfg.horizon;
            sp_scenario_destroy(sc);
            k.at = (sp_time)((double)T * strtod(at, NULL) / 100);
        } else if (at && (sp_parse_duration(at, &k.at) || k.at <= 0)) {
            fprintf(stderr, "spiral-snapcheck: --at: expected a duration or N%%, got '%s'\n", at);
            return 2;
        }
        bad = snapcheck_run(&k);
        char buf[64];
        if (!bad) printf("spiral-snapcheck: %s: snapshot at %s: identical (state at T and every "
                         "dataset)\n", k.scenario, at ? at : "T/2");
        else fprintf(stderr, "spiral-snapcheck: %s: snapshot at %s: DIFFERS: %s\n", k.scenario,
                     at ? at : sp_format_duration(k.at, buf, sizeof buf), k.msg);
    }
    if (!k.keep) rmdir(k.workdir);
    free(sets);
    free(ats);
    return bad;
}
