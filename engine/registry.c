/*
 * registry.c — the table of module types, looked up by (kind, type).
 *
 * The built-in registry is a const array: adding a module type is one line
 * below.  A user registry copies the pointers of a base and appends; it never
 * owns the ops tables themselves (they are const statics).
 */
#include <stdlib.h>
#include <string.h>
#include "spiral/module.h"
#include "spiral/error.h"
#include "spiral/market.h"

extern const struct sp_module_ops sp_reference_gbm_ops;
extern const struct sp_module_ops sp_reference_replay_ops;
extern const struct sp_market_ops sp_market_cpmm_ops;
extern const struct sp_market_ops sp_market_stableswap_ops;
extern const struct sp_market_ops sp_market_lob_ops;
extern const struct sp_module_ops sp_oracle_chainlink_ops;
extern const struct sp_module_ops sp_oracle_osm_ops;
extern const struct sp_module_ops sp_oracle_heartbeat_ops;
extern const struct sp_module_ops sp_chain_instant_ops;
extern const struct sp_module_ops sp_chain_eip1559_ops;
extern const struct sp_module_ops sp_protocol_pool_ops;
extern const struct sp_module_ops sp_protocol_cdp_ops;
extern const struct sp_module_ops sp_agent_arbitrageur_ops;
extern const struct sp_module_ops sp_agent_scripted_ops;
extern const struct sp_module_ops sp_agent_liquidity_provider_ops;
extern const struct sp_module_ops sp_agent_noise_ops;
extern const struct sp_module_ops sp_agent_market_maker_ops;
extern const struct sp_module_ops sp_agent_value_ops;
extern const struct sp_module_ops sp_agent_momentum_ops;
extern const struct sp_module_ops sp_agent_looper_ops;
extern const struct sp_module_ops sp_agent_vault_ops;
extern const struct sp_module_ops sp_agent_depositor_ops;
extern const struct sp_module_ops sp_agent_keeper_ops;

static const struct sp_module_ops *const builtin_ops[] = {
    &sp_reference_gbm_ops,
    &sp_reference_replay_ops,
    &sp_market_cpmm_ops.base,
    &sp_market_stableswap_ops.base,
    &sp_market_lob_ops.base,
    &sp_oracle_chainlink_ops,
    &sp_oracle_osm_ops,
    &sp_oracle_heartbeat_ops,
    &sp_chain_instant_ops,
    &sp_chain_eip1559_ops,
    &sp_protocol_pool_ops,
    &sp_protocol_cdp_ops,
    &sp_agent_arbitrageur_ops,
    &sp_agent_scripted_ops,
    &sp_agent_liquidity_provider_ops,
    &sp_agent_noise_ops,
    &sp_agent_market_maker_ops,
    &sp_agent_value_ops,
    &sp_agent_momentum_ops,
    &sp_agent_looper_ops,
    &sp_agent_vault_ops,
    &sp_agent_depositor_ops,
    &sp_agent_keeper_ops,
};

struct sp_registry {
    const struct sp_module_ops *const *ops;
    size_t n, cap;
    const struct sp_module_ops **owned;   /* NULL for the built-in one */
};

static const struct sp_registry builtin = {
    builtin_ops, sizeof builtin_ops / sizeof builtin_ops[0], 0, NULL
};

const struct sp_registry *sp_registry_builtin(void) { return &builtin; }

int sp_registry_create(struct sp_registry **out, const struct sp_registry *base)
{
    struct sp_registry *r = calloc(1, sizeof *r);
    if (!r) return SP_ENOMEM;
    *out = r;
    if (base)
        for (size_t i = 0; i < base->n; i++) {
            int rc = sp_registry_add(r, base->ops[i]);
            if (rc) { sp_registry_destroy(r); *out = NULL; return rc; }
        }
    return SP_OK;
}

int sp_registry_add(struct sp_registry *r, const struct sp_module_ops *ops)
{
    if (!r->owned && r->n) return SP_ESTATE;         /* the built-in one */
    if (!ops || !ops->kind || !ops->type) return SP_EINVAL;
    if (sp_registry_find(r, ops->kind, ops->type)) return SP_EEXISTS;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        const struct sp_module_ops **p = realloc(r->owned, cap * sizeof *p);
        if (!p) return SP_ENOMEM;
        r->owned = p; r->cap = cap;
    }
    r->owned[r->n++] = ops;
    r->ops = r->owned;
    return SP_OK;
}

void sp_registry_destroy(struct sp_registry *r)
{
    if (!r || r == &builtin) return;
    free(r->owned);
    free(r);
}

const struct sp_module_ops *sp_registry_find(const struct sp_registry *r,
                                             const char *kind, const char *type)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->ops[i]->kind, kind) && !strcmp(r->ops[i]->type, type))
            return r->ops[i];
    return NULL;
}

size_t sp_registry_count(const struct sp_registry *r) { return r->n; }

const struct sp_module_ops *sp_registry_get(const struct sp_registry *r, size_t i)
{
    return i < r->n ? r->ops[i] : NULL;
}
