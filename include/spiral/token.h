/*
 * spiral/token.h — what a token is, and what it is worth: the valuation graph.
 *
 * Every token of the scenario has a kind (DESIGN §2, "Tokens and the
 * valuation graph"):
 *
 *   kind         underlying          issuer (entity)      fundamental value
 *   base         -                   -                    its reference process's price
 *   stable       -                   -                    1, or its reference if it has one
 *   lst          a base token        -                    rate(t) · value(underlying)
 *   receipt      the pooled token    a lending protocol   rate · value(underlying)
 *   vault_share  the vault's asset   a vault agent        rate · value(underlying)
 *   lp           the pool's two      an AMM market        (r0·v(t0) + r1·v(t1)) / LP supply
 *
 * `rate` is underlying units per token.  An lst's rate accrues its staking
 * APR continuously from `rate` at t = 0: rate(t) = rate0 · exp(apr · t/yr).
 * A receipt's and a vault share's rate come from their issuer, which
 * registers a rate function at init (sp_token_set_rate_fn): a lending pool
 * returns (cash + loans − reserve) / receipt supply, so bad debt socialised
 * to suppliers lowers it; a vault returns NAV / shares.
 *
 * Layers: base and stable are layer 0; a derivative is 1 + the largest layer
 * of its underlyings.  The scenario checker rejects a cycle in the graph,
 * an underlying or issuer that does not exist, and an issuer of the wrong
 * type, each at its file:line.
 *
 * Values are cached: sp_token_value computes each token at most once per
 * dispatched event (the cache is keyed by an epoch the engine bumps before
 * each event).  An issuer whose rate changes in the middle of an event (a
 * write-off, a vault deposit) calls sp_token_values_changed so later reads
 * in the same event see it.
 */
#ifndef SPIRAL_TOKEN_H
#define SPIRAL_TOKEN_H

#include "spiral/ledger.h"
#include "spiral/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_sim;

enum sp_token_kind {
    SP_TOKEN_BASE, SP_TOKEN_STABLE, SP_TOKEN_LST, SP_TOKEN_RECEIPT,
    SP_TOKEN_VAULT_SHARE, SP_TOKEN_LP, SP_TOKEN_KIND_COUNT
};

/* NULL-terminated kind names, in enum order ("base", "stable", ...). */
extern const char *const sp_token_kind_names[];

/* How the world builder (or a hand-built sim) declares a token's place in
 * the graph, after sp_sim_set_tokens and once the issuing entities exist
 * (before their init, so an issuer can find its token there).  A token never
 * defined is a base token.  rate <= 0 means 1.  SP_EINVAL for an
 * out-of-range token, kind, underlying or issuer. */
struct sp_token_def {
    int kind;                  /* enum sp_token_kind */
    sp_token underlying;       /* lst, receipt, vault_share; else -1 */
    sp_id issuer;              /* receipt, vault_share, lp; else SP_ID_NONE */
    double apr;                /* lst: staking APR, continuous */
    double rate;               /* lst: exchange rate at t = 0 */
    sp_time redemption_delay;  /* lst */
};
int sp_token_define(struct sp_sim *sim, sp_token tok, const struct sp_token_def *def);

/* Static facts (fixed once the world is built).  For an out-of-range token:
 * kind -1, underlying -1, layer -1, issuer SP_ID_NONE. */
int      sp_token_kind(const struct sp_sim *sim, sp_token tok);
/* The underlying token (lst, receipt, vault_share); -1 for base, stable and
 * lp (an lp has two: its market's pair). */
sp_token sp_token_underlying(const struct sp_sim *sim, sp_token tok);
int      sp_token_layer(const struct sp_sim *sim, sp_token tok);
/* The issuing entity (receipt: protocol; vault_share: vault; lp: market). */
sp_id    sp_token_issuer(const struct sp_sim *sim, sp_token tok);
/* Largest layer of any token (0 when all are base/stable). */
int      sp_token_max_layer(const struct sp_sim *sim);
/* The first token (in scenario order) issued by entity `issuer` whose
 * underlying is `underlying` (-1: any), or -1.  An AMM finds its LP token,
 * a pool the receipt token of each reserve, with this. */
sp_token sp_token_find_issued(const struct sp_sim *sim, sp_id issuer, sp_token underlying);
/* An lst's APR, initial rate and redemption delay (0, 1, 0 for other kinds). */
double   sp_token_apr(const struct sp_sim *sim, sp_token tok);
sp_time  sp_token_redemption_delay(const struct sp_sim *sim, sp_token tok);

/* Issuers: register the rate function of a receipt or vault_share token
 * (underlying units per token; must be finite and >= 0).  Call from init.
 * SP_EINVAL if tok is not of such a kind or `issuer` is not its issuer. */
typedef double (*sp_token_rate_fn)(void *self, struct sp_sim *sim, sp_token tok);
int sp_token_set_rate_fn(struct sp_sim *sim, sp_token tok, sp_id issuer,
                         sp_token_rate_fn fn, void *self);

/* Underlying units per token now: lst from its APR, receipt and
 * vault_share from the issuer (1 until one registered), 1 for base/stable;
 * NAN for lp.  Cached per event like values.  A rate function returning a
 * negative or non-finite rate fails the run (SP_EMODEL). */
double sp_token_rate(struct sp_sim *sim, sp_token tok);

/* Fundamental value in the numeraire per unit, now (cached per event); NAN
 * when a base token has no reference process or an lp pool is empty. */
double sp_token_value(struct sp_sim *sim, sp_token tok);

/* An issuer's rate changed within the current event: drop the cache. */
void sp_token_values_changed(struct sp_sim *sim);

/* LST redemption through the queue: burns `amount` of lst `tok` from
 * `holder` now and mints amount · rate(now) of its underlying to `holder`
 * at now + the token's redemption_delay (settled by the engine before any
 * event at or after that time, or when sp_sim_step's limit reaches it with
 * no event before: so the end of a run settles what is due by then; FIFO
 * among equal ready times).  *ready_at (may be NULL) gets that time.
 * SP_EINVAL if tok is not an lst, amount is not > 0 or holder is not an
 * entity; SP_EMODEL (nothing moves) if the holder has too little. */
int sp_lst_redeem(struct sp_sim *sim, sp_token tok, sp_id holder, double amount,
                  sp_time *ready_at);
/* Underlying units `holder` has waiting in the queue for lst `tok`. */
double sp_lst_pending(const struct sp_sim *sim, sp_token tok, sp_id holder);
/* Underlying units waiting in the queue for lst `tok`, all holders. */
double sp_lst_pending_total(const struct sp_sim *sim, sp_token tok);

#ifdef __cplusplus
}
#endif
#endif
