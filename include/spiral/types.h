/*
 * spiral/types.h — the few scalar conventions every module shares.
 *
 * Time: `sp_time` is simulated time in int64 microseconds since the start of
 * the run.  It is exact (no float drift across a multi-day run) and totally
 * ordered; outputs also carry it as float64 seconds in a column named `t`.
 * Amounts are token units as `double`; prices are numeraire per unit.
 * Entities (markets, agents, processes, ...) are named by a dense `sp_id`,
 * never by pointer, so the state can be written to a snapshot.
 */
#ifndef SPIRAL_TYPES_H
#define SPIRAL_TYPES_H

#include <stdint.h>
#include <stddef.h>

typedef int64_t sp_time;
typedef uint32_t sp_id;

#define SP_US   ((sp_time)1)
#define SP_MS   ((sp_time)1000)
#define SP_SEC  ((sp_time)1000000)
#define SP_MIN  (60 * SP_SEC)
#define SP_HOUR (60 * SP_MIN)
#define SP_DAY  (24 * SP_HOUR)
#define SP_YEAR (365 * SP_DAY)          /* for annualised rates: 365 days */

#define SP_TIME_MAX INT64_MAX
#define SP_ID_NONE  UINT32_MAX

/* Seconds as a double, for outputs and rate arithmetic. */
static inline double sp_time_sec(sp_time t) { return (double)t / 1e6; }

#endif
