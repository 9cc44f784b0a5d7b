/*
 * reference.h — the reference price of a base asset (the deep off-chain
 * market), for the modules that read it: arbitrageurs, oracles, samplers.
 */
#ifndef SPIRAL_REFERENCE_H
#define SPIRAL_REFERENCE_H

#include "spiral/types.h"

struct sp_sim;

/* The price now of the reference process entity `id` (numeraire per unit).
 * Returns NAN if `id` is not a reference process. */
double sp_reference_price(struct sp_sim *sim, sp_id id);
/* The asset it prices. */
const char *sp_reference_asset(struct sp_sim *sim, sp_id id);
/* A shock from now on, as a scheduled one (`drop` over `over`), for scripted
 * agents: the price moves at once for an instant shock; a ramp is sampled
 * at the process's steps and lands exactly at now + over. */
int sp_reference_shock(struct sp_sim *sim, sp_id id, double drop, sp_time over);
/* Whether `id` is a reference process. */
int sp_is_reference(struct sp_sim *sim, sp_id id);

#endif
