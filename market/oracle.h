/*
 * oracle.h — price feeds (scenario section `oracles`, kind "oracle").
 *
 * An oracle reads a SOURCE every `poll`, decides by its UPDATE RULE whether
 * to publish, and DELIVERS what it published `latency` later.  Protocols and
 * agents never read markets or reference processes for valuation: they read
 * the last delivered oracle price (sp_oracle_price), or subscribe and get an
 * event at each delivery (sp_oracle_subscribe).
 *
 * Two audiences:
 *   1. consumers (protocols, agents, tests): the first block below;
 *   2. oracle types (market/oracle_<type>.c): the second block — the bound
 *      config shared by every type, the schema fields every type embeds, and
 *      `struct sp_oracle_rule`, the one function that makes a type.  The
 *      polling, source reading, failures, latency, subscriptions, recording
 *      and summary metrics are market/oracle.c, the same for every type.
 * A new oracle type is a new file (its rule, its extra schema fields, its
 * ops wired to the sp_oracle_* lifecycle below) plus one registry line.
 */
#ifndef SPIRAL_ORACLE_H
#define SPIRAL_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "spiral/types.h"

struct sp_sim;
struct sp_event;
struct sp_schema;
struct sp_snapshot_writer;
struct sp_snapshot_reader;

/* ---- for consumers -------------------------------------------------------- */

/* Whether entity `id` is an oracle built on market/oracle.c. */
int sp_is_oracle(struct sp_sim *sim, sp_id id);

/* The last delivered price (numeraire per unit of the source's base); NAN
 * before the first delivery, and for an entity that is not an oracle. */
double sp_oracle_price(struct sp_sim *sim, sp_id id);

/* Publication time of the delivered price (Chainlink's `updatedAt`: when the
 * round was published, not when it reached the consumer); -1 before the
 * first delivery or for an entity that is not an oracle. */
sp_time sp_oracle_updated_at(struct sp_sim *sim, sp_id id);

/* Cascade generation of the delivered price: 1 + the highest liquidation
 * tag (spiral/market.h) its source markets carried since its previous
 * poll, 0 when none (reference and value sources are exogenous: 0); -1
 * before the first delivery or for an entity that is not an oracle. */
int sp_oracle_generation(struct sp_sim *sim, sp_id id);
/* When the delivered price reached consumers (-1 before the first). */
sp_time sp_oracle_delivered_at(struct sp_sim *sim, sp_id id);

/* From now on, every delivery of `oracle` also schedules an event of `kind`
 * for `subscriber` at the delivery time, priority SP_PRIO_ORACLE (after the
 * delivery itself, so sp_oracle_price already returns the new price), with
 *   data.f[0] = the delivered price,
 *   data.u[1] = the oracle's id,
 *   data.i[2] = its publication time (sp_time),
 *   data.i[3] = its cascade generation (sp_oracle_generation).
 * Call from init or start.  SP_EINVAL if `oracle` is not an oracle or
 * `subscriber` is not an entity; SP_ENOMEM. */
int sp_oracle_subscribe(struct sp_sim *sim, sp_id oracle, sp_id subscriber, uint16_t kind);

/* ---- for oracle types ------------------------------------------------------ */

/* Source types (`source.type`). */
enum sp_oracle_source_type {
    SP_SOURCE_REFERENCE,   /* a reference process's price */
    SP_SOURCE_SPOT,        /* a market's price (AMM spot) */
    SP_SOURCE_MID,         /* a market's price (order-book mid) */
    SP_SOURCE_TWAP,        /* time-weighted mean over `window` */
    SP_SOURCE_MEDIAN,      /* median of `sources` */
    SP_SOURCE_VALUE        /* a token's fundamental value (sp_token_value) */
};

/* `source:` and each item of `source.sources:` (legs never nest). */
struct sp_oracle_source_cfg {
    int type;                                /* enum sp_oracle_source_type */
    const char *of;                          /* entity name; token name for value */
    sp_time window;                          /* twap only */
    struct sp_oracle_source_cfg *sources;    /* median only */
    size_t n_sources;
};

enum sp_oracle_failure_mode { SP_ORACLE_FREEZE, SP_ORACLE_OFFSET };

/* One `failures:` item: active for from <= t < to. */
struct sp_oracle_failure_cfg {
    sp_time from, to;
    int mode;                                /* enum sp_oracle_failure_mode */
    double offset;                           /* read price x (1 + offset) */
};

/* The bound config of every oracle type; each type's schema binds the rule
 * parameters it uses and leaves the others zero. */
struct sp_oracle_cfg {
    struct sp_oracle_source_cfg source;
    sp_time poll;
    sp_time latency;
    bool on_trade;                           /* also poll right after each trade */
    struct sp_oracle_failure_cfg *failures;
    size_t n_failures;
    /* rule parameters */
    double deviation;                        /* chainlink */
    sp_time heartbeat;                       /* chainlink, heartbeat */
    sp_time hop;                             /* osm */
};

extern const struct sp_schema sp_oracle_source_schema;
extern const struct sp_schema sp_oracle_failure_schema;

/* The fields every oracle type's schema starts with. */
#define SP_ORACLE_COMMON_FIELDS                                                             \
    { "source", SP_T_MAP, SP_F_REQUIRED, 0, 0, NULL, NULL,                                  \
      "What the oracle reads (see its keys below).",                                         \
      offsetof(struct sp_oracle_cfg, source), &sp_oracle_source_schema, 0 },                \
    { "poll", SP_T_DURATION, SP_F_MIN_EXCL, 0, 0, "12s", "time",                            \
      "How often it reads the source and applies its update rule (one block by default); "  \
      "polls fall on multiples of `poll` from t = 0.",                                      \
      offsetof(struct sp_oracle_cfg, poll), NULL, 0 },                                      \
    { "latency", SP_T_DURATION, SP_F_MIN, 0, 0, "0s", "time",                               \
      "Delay between a publication and its delivery to consumers.",                         \
      offsetof(struct sp_oracle_cfg, latency), NULL, 0 },                                   \
    { "on_trade", SP_T_BOOL, 0, 0, 0, "false", NULL,                                        \
      "Also read the source right after every trade on a market it reads (spot or mid, "    \
      "not twap), at the same instant (priority oracle, before the agents), and apply the " \
      "update rule: with chainlink deviation 0 a feed that follows its venue instantly, "   \
      "so a liquidation sale reaches the protocol in the same instant (cascades).",          \
      offsetof(struct sp_oracle_cfg, on_trade), NULL, 0 },                                  \
    { "failures", SP_T_LIST, 0, 0, 0, NULL, NULL,                                           \
      "Intervals of failure: frozen (no publications) or offset (reads scaled).",           \
      offsetof(struct sp_oracle_cfg, failures), &sp_oracle_failure_schema,                  \
      offsetof(struct sp_oracle_cfg, n_failures) }

/* Upper bound of a rule's private state (kept inside the oracle's state). */
#define SP_ORACLE_RULE_STATE_MAX 64

struct sp_oracle_rule {
    const char *type;
    /* Called at every poll outside a freeze.  `p` is the price read now
     * (failure offset applied; always finite and > 0); `rs` is the rule's
     * zeroed private state (SP_ORACLE_RULE_STATE_MAX bytes, max-aligned).
     * Return true to publish *price now, a value the source showed at
     * *read_t (now, unless the rule publishes an older read, as the OSM). */
    bool (*poll)(void *rs, const struct sp_oracle_cfg *cfg, sp_time now, double p,
                 double *price, sp_time *read_t);
    /* Checkpoints: write the rule's private state as exactly one msgpack
     * value (spiral/snapshot.h), and read it back into `rs` (zeroed by
     * init); restore validates what it reads (sp_snap_fail). */
    int (*snapshot)(const void *rs, struct sp_snapshot_writer *w);
    int (*restore)(void *rs, const struct sp_oracle_cfg *cfg, struct sp_snapshot_reader *r);
};

/* The state every oracle type's ops declares (state_size = sizeof this);
 * opaque: market/oracle.c casts it to its own struct. */
struct sp_oracle_state {
    _Alignas(16) unsigned char opaque[768];
};

/* The lifecycle every oracle type's ops uses.  A type's init calls
 * sp_oracle_init with its rule; the other ops point at these directly. */
int    sp_oracle_init(void *self, struct sp_sim *sim, sp_id id, const void *cfg,
                      const struct sp_oracle_rule *rule);
int    sp_oracle_start(void *self, struct sp_sim *sim);
void   sp_oracle_on_event(void *self, struct sp_sim *sim, struct sp_event *ev);
void   sp_oracle_finish(void *self, struct sp_sim *sim);
double sp_oracle_current(const void *self);   /* ops->price: the delivered price */
void   sp_oracle_release(void *self);
int    sp_oracle_snapshot(const void *self, struct sp_snapshot_writer *w);
int    sp_oracle_restore(void *self, struct sp_snapshot_reader *r);

#endif
