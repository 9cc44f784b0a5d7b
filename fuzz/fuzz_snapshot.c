/*
 * fuzz_snapshot.c — libFuzzer target for the snapshot decoder
 * (sp_snapshot_load_buffer: header, checksum, bounds of every msgpack
 * value, engine state with the event queue's structure, entity records).
 *
 * Each input is decoded twice: as is (so the fixed header, the length and
 * the checksum checks are fuzzed), and with the body length and checksum
 * patched to match (so mutations reach the msgpack structure behind the
 * checksum, which random bytes would almost never get past).  Any result
 * is fine; a crash, a sanitizer report or a leak is a bug.
 *
 *   ./build.sh fuzz [SECONDS]      (builds with clang and runs on a scratch corpus)
 *
 * fuzz/corpus/ holds the seeds, snapshots of experiments: quickstart at 12h,
 * amm_arbitrage at 12h, steth_loop at 1w, vault_chain at 3d (regenerate with
 * `spiral run experiments/X.yaml --until T --checkpoint-at T` after a format
 * change).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/scenario.h"
#include "spiral/snapshot.h"
#include "snapshot-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const uint8_t *data, size_t size)
{
    struct sp_diag d = { 0 };
    d.max_errors = 4;
    struct sp_snapshot *s = NULL;
    if (sp_snapshot_load_buffer(&s, data, size, "fuzz", &d) == 0) {
        /* Exercise the accessors and `spiral info` of an accepted file,
         * and the comparison of two snapshots. */
        (void)sp_snapshot_scenario(s);
        (void)sp_snapshot_time(s);
        (void)sp_snapshot_entity_count(s);
        for (size_t i = 0; i < sp_snapshot_output_tables(s); i++)
            (void)sp_snapshot_output_table(s, i, NULL);
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            sp_snapshot_print_info(s, null);
            fclose(null);
        }
        char msg[256];
        (void)sp_snapshot_diff(s, s, msg, sizeof msg);
        (void)sp_snapshot_payload_offset(s, "fuzz");
    }
    sp_snapshot_destroy(s);
    sp_diag_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size);
    const size_t fixed = SP_SNAPSHOT_HEADER_SIZE + SP_SNAPSHOT_TRAILER_SIZE;
    if (size < fixed) return 0;
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    memcpy(copy, SP_SNAPSHOT_MAGIC, 8);
    uint64_t body = size - fixed;
    for (int i = 0; i < 8; i++) copy[16 + i] = (uint8_t)(body >> (8 * i));
    uint64_t h = sp_snapshot_checksum(copy + SP_SNAPSHOT_HEADER_SIZE, size - fixed);
    for (int i = 0; i < 8; i++) copy[size - 8 + i] = (uint8_t)(h >> (8 * i));
    decode(copy, size);
    free(copy);
    return 0;
}
