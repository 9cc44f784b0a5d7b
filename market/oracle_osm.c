/*
 * oracle_osm.c — oracle type "osm": Maker's Oracle Security Module.
 *
 * The OSM holds two prices, `cur` (what consumers read) and `nxt` (queued).
 * `poke` is allowed once per hop: at the first poll with now >= zzz + hop,
 *     cur <- nxt,  nxt <- source,  zzz <- now rounded down to a hop boundary
 * (osm.sol: `require(era() >= add(zzz, hop))`, `zzz = prev(era())`), and
 * the OSM publishes cur.  So consumers always see a price read one hop
 * before the poke that published it: between 1 and 2 hops old
 * (FORMULAS.md "Maker OSM", hop = 3600 s).  The first poll (t = 0) starts
 * the module with cur = nxt = the price read and publishes it (a deployed
 * OSM would be empty until its second poke; a run starts from a live one).
 * A freeze skips pokes, so after it the first poke publishes the nxt read
 * before the freeze.  Reads, failures, latency and delivery are
 * market/oracle.c.
 *
 * Snapshot: the rule's state [started, cur, nxt, cur_t, nxt_t, zzz] — the
 * current and queued prices, when each was read, the last poke's hop
 * boundary; the rest of the oracle is market/oracle.c's.
 */
#include <stddef.h>
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/snapshot.h"
#include "oracle.h"

struct osm {
    bool started;
    double cur, nxt;
    sp_time cur_t, nxt_t;    /* when each was read from the source */
    sp_time zzz;             /* hop boundary of the last poke */
};

_Static_assert(sizeof(struct osm) <= SP_ORACLE_RULE_STATE_MAX, "rule state too large");

static bool osm_poll(void *rs, const struct sp_oracle_cfg *cfg, sp_time now, double p,
                     double *price, sp_time *read_t)
{
    struct osm *s = rs;
    if (!s->started) {
        s->started = true;
        s->cur = s->nxt = p;
        s->cur_t = s->nxt_t = now;
    } else if (now >= s->zzz + cfg->hop) {
        s->cur = s->nxt;
        s->cur_t = s->nxt_t;
        s->nxt = p;
        s->nxt_t = now;
    } else {
        return false;
    }
    s->zzz = now - now % cfg->hop;
    *price = s->cur;
    *read_t = s->cur_t;
    return true;
}

static int osm_snapshot(const void *rs, struct sp_snapshot_writer *w)
{
    const struct osm *s = rs;
    sp_snap_put_array(w, 4);
    sp_snap_put_bool(w, s->started);
    sp_snap_put_f64(w, s->cur);
    sp_snap_put_f64(w, s->nxt);
    return sp_snap_put_i64s(w, (const int64_t[]){ s->cur_t, s->nxt_t, s->zzz }, 3);
}

static int osm_restore(void *rs, const struct sp_oracle_cfg *cfg, struct sp_snapshot_reader *r)
{
    struct osm *s = rs;
    int64_t t[3];
    (void)cfg;
    sp_snap_get_array_n(r, 4);
    sp_snap_get_bool(r, &s->started);
    sp_snap_get_f64(r, &s->cur);
    sp_snap_get_f64(r, &s->nxt);
    sp_snap_get_i64s(r, t, 3);
    if (sp_snap_get_end(r)) return sp_snap_error(r);
    s->cur_t = t[0];
    s->nxt_t = t[1];
    s->zzz = t[2];
    return SP_OK;
}

static const struct sp_oracle_rule osm_rule = { "osm", osm_poll, osm_snapshot, osm_restore };

static const struct sp_field osm_fields[] = {
    SP_ORACLE_COMMON_FIELDS,
    { "hop", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "1h", "time",
      "Minimum time between pokes; consumers see a price one to two hops old.",
      offsetof(struct sp_oracle_cfg, hop), NULL, 0 },
};

static const struct sp_schema osm_schema = {
    "oracles[type: osm]",
    "Maker Oracle Security Module: at each hop, cur <- nxt and nxt <- source; consumers "
    "read cur, the price of the previous hop.",
    osm_fields, sizeof osm_fields / sizeof osm_fields[0], sizeof(struct sp_oracle_cfg), NULL
};

static int osm_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg)
{
    return sp_oracle_init(self, sim, id, cfg, &osm_rule);
}

const struct sp_module_ops sp_oracle_osm_ops = {
    .kind = "oracle", .type = "osm",
    .summary = "Maker OSM: publishes the previous hop's price (1-2 hops old)",
    .schema = &osm_schema, .state_size = sizeof(struct sp_oracle_state),
    .init = osm_init, .start = sp_oracle_start, .on_event = sp_oracle_on_event,
    .finish = sp_oracle_finish, .price = sp_oracle_current, .release = sp_oracle_release,
    .snapshot = sp_oracle_snapshot, .restore = sp_oracle_restore,
};
