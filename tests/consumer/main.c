/* A downstream program: one simulation with one entity, through the public API. */
#include <stdio.h>
#include <spiral/error.h>
#include <spiral/module.h>
#include <spiral/sim.h>
#include <spiral/version.h>

static int fired;

static void on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    (void)self;
    if (++fired < 10) sp_sim_again(sim, ev, ev->t + SP_SEC);
}

static const struct sp_module_ops ops = { .kind = "demo", .type = "tick", .on_event = on_event };

int main(void)
{
    struct sp_sim *sim;
    sp_id id;
    if (sp_sim_create(&sim, 1) || sp_sim_add_entity(sim, "tick", &ops, NULL, &id)) return 1;
    sp_sim_schedule(sim, 0, SP_PRIO_AGENT, id, 0);
    struct sp_run_opts o = { .until = SP_MIN };
    enum sp_run_status st = sp_sim_run(sim, &o);
    printf("spiral %s: %d events, status %d\n", SPIRAL_VERSION, fired, (int)st);
    sp_sim_destroy(sim);
    return fired == 10 && st == SP_RUN_COMPLETE ? 0 : 1;
}
