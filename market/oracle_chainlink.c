/*
 * oracle_chainlink.c — oracle type "chainlink": a deviation-threshold feed
 * with a heartbeat (Chainlink OCR aggregators).  At each poll it starts a
 * new round, publishing the price read, when
 *     |p - p_last| / p_last > deviation   or   now - t_last >= heartbeat,
 * whichever comes first (FORMULAS.md "Oracles"; ETH/USD: 0.5 %, 3600 s —
 * the defaults; stETH/ETH: 2 %, 86400 s).  The first poll always publishes.
 * Both tests use the last *published* price and time, so after a freeze the
 * first poll publishes as soon as either has been crossed.  Reads,
 * failures, latency and delivery are market/oracle.c.
 *
 * Snapshot: the rule's state [started, p_last, t_last] (the last published
 * price and time); the rest of the oracle is market/oracle.c's.
 */
#include <math.h>
#include <stddef.h>
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/snapshot.h"
#include "oracle.h"

struct chainlink {
    bool started;
    double p_last;
    sp_time t_last;
};

_Static_assert(sizeof(struct chainlink) <= SP_ORACLE_RULE_STATE_MAX, "rule state too large");

static bool chainlink_poll(void *rs, const struct sp_oracle_cfg *cfg, sp_time now, double p,
                           double *price, sp_time *read_t)
{
    struct chainlink *s = rs;
    if (s->started && !(fabs(p - s->p_last) / s->p_last > cfg->deviation) &&
        now - s->t_last < cfg->heartbeat)
        return false;
    s->started = true;
    s->p_last = p;
    s->t_last = now;
    *price = p;
    *read_t = now;
    return true;
}

static int chainlink_snapshot(const void *rs, struct sp_snapshot_writer *w)
{
    const struct chainlink *s = rs;
    sp_snap_put_array(w, 3);
    sp_snap_put_bool(w, s->started);
    sp_snap_put_f64(w, s->p_last);
    return sp_snap_put_i64(w, s->t_last);
}

static int chainlink_restore(void *rs, const struct sp_oracle_cfg *cfg,
                             struct sp_snapshot_reader *r)
{
    struct chainlink *s = rs;
    (void)cfg;
    sp_snap_get_array_n(r, 3);
    sp_snap_get_bool(r, &s->started);
    sp_snap_get_f64(r, &s->p_last);
    sp_snap_get_i64(r, &s->t_last);
    return sp_snap_get_end(r);
}

static const struct sp_oracle_rule chainlink_rule = { "chainlink", chainlink_poll,
                                                      chainlink_snapshot, chainlink_restore };

static const struct sp_field chainlink_fields[] = {
    SP_ORACLE_COMMON_FIELDS,
    { "deviation", SP_T_FRACTION, SP_F_MIN, 0, 0, "0.5%", "fraction",
      "Publish when the price read differs from the last published one by more than this "
      "(relative); 0 publishes on every change.",
      offsetof(struct sp_oracle_cfg, deviation), NULL, 0 },
    { "heartbeat", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "Publish at the first poll at least this long after the last publication.",
      offsetof(struct sp_oracle_cfg, heartbeat), NULL, 0 },
};

static const struct sp_schema chainlink_schema = {
    "oracles[type: chainlink]",
    "Deviation-threshold feed with a heartbeat (Chainlink): a new round when the price moves "
    "by more than `deviation` or `heartbeat` has elapsed, whichever comes first.",
    chainlink_fields, sizeof chainlink_fields / sizeof chainlink_fields[0],
    sizeof(struct sp_oracle_cfg), NULL
};

static int chainlink_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    return sp_oracle_init(self, sim, id, cfg, &chainlink_rule);
}

const struct sp_module_ops sp_oracle_chainlink_ops = {
    .kind = "oracle", .type = "chainlink",
    .summary = "Chainlink-style feed: publish on a deviation threshold or a heartbeat",
    .schema = &chainlink_schema, .state_size = sizeof(struct sp_oracle_state),
    .init = chainlink_init, .start = sp_oracle_start, .on_event = sp_oracle_on_event,
    .finish = sp_oracle_finish, .price = sp_oracle_current, .release = sp_oracle_release,
    .snapshot = sp_oracle_snapshot, .restore = sp_oracle_restore,
};
