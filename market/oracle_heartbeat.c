/*
 * oracle_heartbeat.c — oracle type "heartbeat": publish the price read at
 * the first poll and then at the first poll at least `heartbeat` after the
 * last publication (every `heartbeat` exactly when it is a multiple of
 * `poll`).  The plainest feed: staleness bounded by heartbeat + latency,
 * blind to moves in between.  Reads, failures, latency and delivery are
 * market/oracle.c.
 *
 * Snapshot: the rule's state [started, t_last] (the last publication time);
 * the rest of the oracle is market/oracle.c's.
 */
#include <stddef.h>
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/snapshot.h"
#include "oracle.h"

struct heartbeat {
    bool started;
    sp_time t_last;
};

_Static_assert(sizeof(struct heartbeat) <= SP_ORACLE_RULE_STATE_MAX, "rule state too large");

static bool heartbeat_poll(void *rs, const struct sp_oracle_cfg *cfg, sp_time now, double p,
                           double *price, sp_time *read_t)
{
    struct heartbeat *s = rs;
    if (s->started && now - s->t_last < cfg->heartbeat) return false;
    s->started = true;
    s->t_last = now;
    *price = p;
    *read_t = now;
    return true;
}

static int heartbeat_snapshot(const void *rs, struct sp_snapshot_writer *w)
{
    const struct heartbeat *s = rs;
    sp_snap_put_array(w, 2);
    sp_snap_put_bool(w, s->started);
    return sp_snap_put_i64(w, s->t_last);
}

static int heartbeat_restore(void *rs, const struct sp_oracle_cfg *cfg,
                             struct sp_snapshot_reader *r)
{
    struct heartbeat *s = rs;
    (void)cfg;
    sp_snap_get_array_n(r, 2);
    sp_snap_get_bool(r, &s->started);
    sp_snap_get_i64(r, &s->t_last);
    return sp_snap_get_end(r);
}

static const struct sp_oracle_rule heartbeat_rule = { "heartbeat", heartbeat_poll,
                                                      heartbeat_snapshot, heartbeat_restore };

static const struct sp_field heartbeat_fields[] = {
    SP_ORACLE_COMMON_FIELDS,
    { "heartbeat", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "Time between publications.", offsetof(struct sp_oracle_cfg, heartbeat), NULL, 0 },
};

static const struct sp_schema heartbeat_schema = {
    "oracles[type: heartbeat]",
    "Publishes the price read every `heartbeat`, whatever it does in between.",
    heartbeat_fields, sizeof heartbeat_fields / sizeof heartbeat_fields[0],
    sizeof(struct sp_oracle_cfg), NULL
};

static int heartbeat_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    return sp_oracle_init(self, sim, id, cfg, &heartbeat_rule);
}

const struct sp_module_ops sp_oracle_heartbeat_ops = {
    .kind = "oracle", .type = "heartbeat",
    .summary = "fixed-cadence feed: publish every heartbeat",
    .schema = &heartbeat_schema, .state_size = sizeof(struct sp_oracle_state),
    .init = heartbeat_init, .start = sp_oracle_start, .on_event = sp_oracle_on_event,
    .finish = sp_oracle_finish, .price = sp_oracle_current, .release = sp_oracle_release,
    .snapshot = sp_oracle_snapshot, .restore = sp_oracle_restore,
};
