/*
 * spiral/module.h — how a module plugs into the engine: a const ops table
 * plus an instance (curl's Curl_cftype/Curl_cfilter, libevent's eventop).
 *
 * Every scenario section that lists entities with a `type:` key ("references",
 * later "markets", "oracles", "agents", ...) is a module *kind*.  A type is one
 * const `struct sp_module_ops`: its schema (which keys the scenario may give,
 * bound into a config struct of schema->struct_size bytes) and its lifecycle.
 * The engine allocates `state_size` zeroed bytes per instance and passes them
 * back as `self`; modules cast inside and never cast function pointers.
 *
 * Kind-specific operations (a market's swap and quote, an oracle's read, ...)
 * live in larger ops structs that embed `struct sp_module_ops` as their first
 * member, so the registry and the engine treat all of them alike.
 *
 * A new module is a new file plus one line in engine/registry.c.
 */
#ifndef SPIRAL_MODULE_H
#define SPIRAL_MODULE_H

#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_sim;
struct sp_event;
struct sp_schema;
struct sp_snapshot_writer;   /* spiral/snapshot.h */
struct sp_snapshot_reader;

struct sp_module_ops {
    const char *kind;      /* scenario section, e.g. "reference" */
    const char *type;      /* the `type:` string, e.g. "gbm" */
    const char *summary;   /* one line, for docs and `spiral types` */
    const struct sp_schema *schema;
    size_t state_size;

    /* Name for an item without `name:` (e.g. "reference_ETH"). Optional. */
    const char *(*default_name)(const void *cfg, char *buf, size_t size);
    /* Populations: how many entities this item makes (its `count:` key).
     * NULL or 1 = one entity named as above; N > 1 = entities NAME_0 ..
     * NAME_{N-1}, all with the same config, each with its own random stream
     * (draw per-agent parameters from it in init). */
    size_t (*count)(const void *cfg);
    /* Set up the instance from its bound config.  No events yet. */
    int (*init)(void *self, struct sp_sim *sim, sp_id id, const void *cfg);
    /* All instances exist: create output tables, schedule first events. */
    int (*start)(void *self, struct sp_sim *sim);
    /* An event addressed to this entity fired. */
    void (*on_event)(void *self, struct sp_sim *sim, struct sp_event *ev);
    /* The run ended (complete or interrupted): final rows, /summary metrics. */
    void (*finish)(void *self, struct sp_sim *sim);
    /* The entity's current price in the numeraire per unit, for entities
     * that have one (reference processes, markets, oracles); NULL if none.
     * Oracles read their sources through it. */
    double (*price)(const void *self);
    /* Free what init allocated (not `self` itself).  Optional. */
    void (*release)(void *self);
    /* Checkpoints (spiral/snapshot.h, docs/snapshot.md).  `snapshot` writes
     * exactly one msgpack value holding what changes while running (never
     * pointers, nothing init derives from the config); `restore` reads it
     * back into an instance that was init'ed and started from the same
     * config, without scheduling events (the queue is restored as a whole).
     * Both return 0 or an SP_E* code.  Every built-in type implements both
     * (tests/test_snapshot_coverage.c); a sim with a module lacking either
     * cannot be snapshotted. */
    int (*snapshot)(const void *self, struct sp_snapshot_writer *w);
    int (*restore)(void *self, struct sp_snapshot_reader *r);
};

/* A set of module types.  The built-in one is immutable; users who add their
 * own C modules make a registry, add the built-ins and theirs. */
struct sp_registry;

const struct sp_registry *sp_registry_builtin(void);
int  sp_registry_create(struct sp_registry **out, const struct sp_registry *base);
int  sp_registry_add(struct sp_registry *reg, const struct sp_module_ops *ops);
void sp_registry_destroy(struct sp_registry *reg);

/* The ops for (kind, type), or NULL. */
const struct sp_module_ops *sp_registry_find(const struct sp_registry *reg,
                                             const char *kind, const char *type);
/* Number of registered types; the i-th one. */
size_t sp_registry_count(const struct sp_registry *reg);
const struct sp_module_ops *sp_registry_get(const struct sp_registry *reg, size_t i);

#ifdef __cplusplus
}
#endif
#endif
