/*
 * test_snapshot_coverage.c — every built-in module type takes part in
 * snapshots: it implements both `snapshot` and `restore` (issue 7: "a new
 * module that forgets them fails a test").  A module type added to
 * engine/registry.c without the two ops fails here, named.
 *
 * And the engine refuses to snapshot a world with a module that lacks them
 * (a user's own module), naming the type and the entity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <cmocka.h>
#include "spiral/module.h"
#include "spiral/scenario.h"
#include "spiral/sim.h"
#include "spiral/snapshot.h"

static void test_every_builtin_module_implements_snapshot_and_restore(void **state)
{
    (void)state;
    const struct sp_registry *reg = sp_registry_builtin();
    int bad = 0;
    assert_true(sp_registry_count(reg) >= 20);
    for (size_t i = 0; i < sp_registry_count(reg); i++) {
        const struct sp_module_ops *ops = sp_registry_get(reg, i);
        if (!ops->snapshot || !ops->restore) {
            fprintf(stderr, "module %s/%s lacks %s%s%s: implement both (docs/snapshot.md)\n",
                    ops->kind, ops->type, ops->snapshot ? "" : "snapshot",
                    !ops->snapshot && !ops->restore ? " and " : "", ops->restore ? "" : "restore");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* A user's module without the ops: the snapshot is refused, named. */
static void forgetful_on_event(void *self, struct sp_sim *sim, struct sp_event *ev)
{
    (void)self; (void)sim; (void)ev;
}

static const struct sp_module_ops forgetful_ops = {
    .kind = "agent", .type = "forgetful", .state_size = 8, .on_event = forgetful_on_event,
};

static void test_a_module_without_the_ops_cannot_be_snapshotted(void **state)
{
    (void)state;
    struct sp_sim *sim;
    static const char *const toks[] = { "ETH" };
    assert_int_equal(sp_sim_create(&sim, 1), 0);
    assert_int_equal(sp_sim_set_tokens(sim, toks, 1), 0);
    assert_int_equal(sp_sim_add_entity(sim, "mine", &forgetful_ops, NULL, NULL), 0);
    assert_int_equal(sp_sim_start(sim), 0);
    struct sp_diag d = { 0 };
    void *buf = NULL;
    size_t len = 0;
    assert_int_not_equal(sp_snapshot_encode(sim, NULL, &buf, &len, &d), 0);
    assert_null(buf);
    assert_non_null(d.text);
    assert_non_null(strstr(d.text, "'forgetful'"));
    assert_non_null(strstr(d.text, "'mine'"));
    assert_non_null(strstr(d.text, "does not implement snapshot"));
    sp_diag_release(&d);
    sp_sim_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_builtin_module_implements_snapshot_and_restore),
        cmocka_unit_test(test_a_module_without_the_ops_cannot_be_snapshotted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
