/*
 * sim.c — the simulation object: clock, queue, entity table, summary.
 *
 * The entity table is a dense array indexed by sp_id; an entity's state is
 * owned by the sim unless the caller passed its own.  The clock only moves
 * forward: it is set to each event's time as the event is dispatched, and
 * scheduling into the past is a bug (asserted).  Before each dispatch the
 * value-cache epoch is bumped and any LST redemption due by then is settled
 * (token.c), which may set the clock to its ready time first.  The run loop
 * itself is in loop.c; building a sim from a scenario is in world.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/sim.h"
#include "spiral/module.h"
#include "spiral/recorder.h"
#include "spiral/error.h"
#include "sim-internal.h"

static int ensure_entities(struct sp_sim *sim)
{
    if (sim->n_ents < sim->cap_ents) return SP_OK;
    size_t cap = sim->cap_ents ? 2 * sim->cap_ents : 16;
    struct sp_entity *e = realloc(sim->ents, cap * sizeof *e);
    if (!e) return SP_ENOMEM;
    sim->ents = e;
    sim->cap_ents = cap;
    return SP_OK;
}

/* Entity names are found through a hash table (linear probing on the FNV-1a
 * key that also seeds the entity's stream), so building a world with 10^6
 * owners costs O(n), not O(n^2) string compares. */
static size_t name_slot(const char *name, size_t cap)
{
    /* FNV-1a's low bits cluster on "owner_0".."owner_999999": mix them up. */
    uint64_t h = sp_rng_key(name);
    h ^= h >> 29;
    return (size_t)((h * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static void name_ht_put(uint32_t *ht, size_t cap, const char *name, sp_id id)
{
    size_t i = name_slot(name, cap);
    while (ht[i]) i = (i + 1) & (cap - 1);
    ht[i] = id + 1;
}

static int name_ht_grow(struct sp_sim *sim)
{
    if (2 * (sim->n_ents + 1) <= sim->name_ht_cap) return SP_OK;
    size_t cap = sim->name_ht_cap ? 2 * sim->name_ht_cap : 64;
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return SP_ENOMEM;
    for (size_t i = 0; i < sim->n_ents; i++) name_ht_put(ht, cap, sim->ents[i].name, (sp_id)i);
    free(sim->name_ht);
    sim->name_ht = ht;
    sim->name_ht_cap = cap;
    return SP_OK;
}

int sp_sim_create(struct sp_sim **out, uint64_t seed)
{
    struct sp_sim *sim = calloc(1, sizeof *sim);
    if (!sim) return SP_ENOMEM;
    int rc = sp_queue_create(&sim->queue);
    if (rc) { free(sim); return rc; }
    sim->seed = seed;
    sim->horizon = SP_TIME_MAX;
    sim->sample_every = SP_MIN;
    sim->value_epoch = 1;
    sim->redeem_next = SP_TIME_MAX;
    *out = sim;
    return SP_OK;
}

void sp_sim_destroy(struct sp_sim *sim)
{
    if (!sim) return;
    for (size_t i = sim->n_ents; i-- > 0;) {
        struct sp_entity *e = &sim->ents[i];
        if (e->initialised && e->ops->release) e->ops->release(e->state);
        if (e->owns_state) free(e->state);
        free(e->name);
    }
    free(sim->ents);
    free(sim->name_ht);
    for (size_t i = 0; i < sim->n_tokens; i++) free(sim->tokens[i]);
    free(sim->tokens);
    free(sim->bal);
    free(sim->supply);
    free(sim->tok_info);
    free(sim->redeem);
    for (size_t i = 0; i < sim->n_summary; i++) free(sim->summary[i].name);
    free(sim->summary);
    free(sim->fail_msg);
    sp_queue_destroy(sim->queue);
    free(sim);
}

int sp_sim_add_entity(struct sp_sim *sim, const char *name, const struct sp_module_ops *ops,
                      void *state, sp_id *out_id)
{
    if (!name || !*name || !ops) return SP_EINVAL;
    if (sp_sim_find(sim, name) != SP_ID_NONE) return SP_EEXISTS;
    int rc = ensure_entities(sim);
    if (!rc) rc = name_ht_grow(sim);
    if (rc) return rc;
    struct sp_entity *e = &sim->ents[sim->n_ents];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return SP_ENOMEM;
    e->ops = ops;
    if (state) {
        e->state = state;
    } else {
        e->state = calloc(1, ops->state_size ? ops->state_size : 1);
        if (!e->state) { free(e->name); return SP_ENOMEM; }
        e->owns_state = true;
    }
    sp_rng_init(&e->rng, sim->seed, sp_rng_key(name));
    name_ht_put(sim->name_ht, sim->name_ht_cap, e->name, (sp_id)sim->n_ents);
    if (out_id) *out_id = (sp_id)sim->n_ents;
    sim->n_ents++;
    sim->tok_refs_ok = false;             /* it may be a reference process */
    return SP_OK;
}

int sp_sim_init_entity(struct sp_sim *sim, sp_id id, const void *cfg)
{
    if (id >= sim->n_ents) return SP_EINVAL;
    struct sp_entity *e = &sim->ents[id];
    int rc = e->ops->init ? e->ops->init(e->state, sim, id, cfg) : SP_OK;
    if (rc == SP_OK) e->initialised = true;
    sim->tok_refs_ok = false;             /* a reference now knows its asset */
    return rc;
}

int sp_sim_start(struct sp_sim *sim)
{
    for (size_t i = 0; i < sim->n_ents; i++) {
        struct sp_entity *e = &sim->ents[i];
        if (!e->ops->start) continue;
        int rc = e->ops->start(e->state, sim);
        if (rc) return rc;
    }
    return sp_sim_failure(sim, NULL);
}

void sp_sim_finish(struct sp_sim *sim)
{
    if (sim->finished) return;
    sim->finished = true;
    for (size_t i = 0; i < sim->n_ents; i++) {
        struct sp_entity *e = &sim->ents[i];
        if (e->ops->finish) e->ops->finish(e->state, sim);
    }
}

uint64_t sp_sim_step(struct sp_sim *sim, sp_time until, uint64_t max_events, bool *drained)
{
    struct sp_queue *q = sim->queue;
    uint64_t n = 0;
    bool done = false;
    while (n < max_events) {
        sp_time t = sp_queue_next_time(q);
        /* LST redemptions due before this event (or before `until` when no
         * event is left there) are minted first: one compare when none is. */
        if (t >= sim->redeem_next && !(t > until && sim->pausing))
            sp_lst_settle(sim, t <= until ? t : until);
        if (t > until) { done = true; break; }
        struct sp_event *ev = sp_queue_begin(q);
        SP_ASSERT(ev->t >= sim->now);
        sim->now = ev->t;
        sim->value_epoch++;               /* token values are cached per event */
        struct sp_entity *e = &sim->ents[ev->target];
        e->ops->on_event(e->state, sim, ev);
        sp_queue_end(q);
        n++;
        if (sim->fail_code) break;
    }
    sim->n_events += n;
    if (drained) *drained = done;
    return n;
}

void sp_sim_request_stop(struct sp_sim *sim) { sim->stop_requested = 1; }

sp_time sp_sim_now(const struct sp_sim *sim) { return sim->now; }
uint64_t sp_sim_seed(const struct sp_sim *sim) { return sim->seed; }
uint64_t sp_sim_events(const struct sp_sim *sim) { return sim->n_events; }
struct sp_queue *sp_sim_queue(struct sp_sim *sim) { return sim->queue; }

struct sp_event *sp_sim_schedule(struct sp_sim *sim, sp_time t, unsigned prio,
                                 sp_id target, uint16_t kind)
{
    SP_ASSERT(t >= sim->now);
    SP_ASSERT(target < sim->n_ents);
    struct sp_event *ev = sp_queue_push(sim->queue, t, prio, target, kind);
    if (!ev) sp_sim_fail(sim, SP_ENOMEM, "out of memory scheduling an event");
    return ev;
}

struct sp_event *sp_sim_schedule_tracked(struct sp_sim *sim, sp_time t, unsigned prio,
                                         sp_id target, uint16_t kind, sp_event_handle *h)
{
    SP_ASSERT(t >= sim->now);
    SP_ASSERT(target < sim->n_ents);
    struct sp_event *ev = sp_queue_push_tracked(sim->queue, t, prio, target, kind, h);
    if (!ev) sp_sim_fail(sim, SP_ENOMEM, "out of memory scheduling an event");
    return ev;
}

void sp_sim_again(struct sp_sim *sim, struct sp_event *ev, sp_time t)
{
    SP_ASSERT(t >= sim->now);
    sp_queue_reschedule_event(sim->queue, ev, t);
}

int sp_sim_cancel(struct sp_sim *sim, sp_event_handle h)
{
    return sp_queue_cancel(sim->queue, h);
}

int sp_sim_reschedule(struct sp_sim *sim, sp_event_handle h, sp_time t)
{
    SP_ASSERT(t >= sim->now);
    return sp_queue_reschedule(sim->queue, h, t);
}

struct sp_rng *sp_sim_rng(struct sp_sim *sim, sp_id id)
{
    SP_ASSERT(id < sim->n_ents);
    return &sim->ents[id].rng;
}

size_t sp_sim_entity_count(const struct sp_sim *sim) { return sim->n_ents; }

const char *sp_sim_entity_name(const struct sp_sim *sim, sp_id id)
{
    return id < sim->n_ents ? sim->ents[id].name : NULL;
}

const struct sp_module_ops *sp_sim_entity_ops(const struct sp_sim *sim, sp_id id)
{
    return id < sim->n_ents ? sim->ents[id].ops : NULL;
}

void *sp_sim_entity_state(struct sp_sim *sim, sp_id id)
{
    return id < sim->n_ents ? sim->ents[id].state : NULL;
}

sp_id sp_sim_find(const struct sp_sim *sim, const char *name)
{
    if (!sim->name_ht_cap) return SP_ID_NONE;
    size_t mask = sim->name_ht_cap - 1;
    for (size_t i = name_slot(name, sim->name_ht_cap); sim->name_ht[i]; i = (i + 1) & mask) {
        sp_id id = sim->name_ht[i] - 1;
        if (!strcmp(sim->ents[id].name, name)) return id;
    }
    return SP_ID_NONE;
}

struct sp_rec *sp_sim_recorder(struct sp_sim *sim) { return sim->rec; }
void sp_sim_set_recorder(struct sp_sim *sim, struct sp_rec *rec) { sim->rec = rec; }
sp_time sp_sim_sample_every(const struct sp_sim *sim) { return sim->sample_every; }
void sp_sim_set_sample_every(struct sp_sim *sim, sp_time dt) { sim->sample_every = dt; }
sp_time sp_sim_horizon(const struct sp_sim *sim) { return sim->horizon; }
void sp_sim_set_horizon(struct sp_sim *sim, sp_time t) { sim->horizon = t; }

void sp_sim_summary(struct sp_sim *sim, const char *name, double value)
{
    for (size_t i = 0; i < sim->n_summary; i++)
        if (!strcmp(sim->summary[i].name, name)) { sim->summary[i].value = value; return; }
    if (sim->n_summary == sim->cap_summary) {
        size_t cap = sim->cap_summary ? 2 * sim->cap_summary : 16;
        struct sp_summary_item *s = realloc(sim->summary, cap * sizeof *s);
        if (!s) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
        sim->summary = s;
        sim->cap_summary = cap;
    }
    char *copy = strdup(name);
    if (!copy) { sp_sim_fail(sim, SP_ENOMEM, "out of memory"); return; }
    sim->summary[sim->n_summary].name = copy;
    sim->summary[sim->n_summary].value = value;
    sim->n_summary++;
}

size_t sp_sim_summary_count(const struct sp_sim *sim) { return sim->n_summary; }

const char *sp_sim_summary_get(const struct sp_sim *sim, size_t i, double *value)
{
    if (i >= sim->n_summary) return NULL;
    if (value) *value = sim->summary[i].value;
    return sim->summary[i].name;
}

void sp_sim_fail(struct sp_sim *sim, int code, const char *fmt, ...)
{
    if (sim->fail_code) return;              /* keep the first failure */
    sim->fail_code = code ? code : SP_EMODEL;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sim->fail_msg = strdup(buf);
}

int sp_sim_failure(const struct sp_sim *sim, const char **message)
{
    if (message) *message = sim->fail_msg ? sim->fail_msg : "";
    return sim->fail_code;
}
