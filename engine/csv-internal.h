/*
 * csv-internal.h — a (time, value) series read from a CSV file (csv.c).
 */
#ifndef SPIRAL_CSV_INTERNAL_H
#define SPIRAL_CSV_INTERNAL_H

#include <stddef.h>

struct sp_series {
    double *t;     /* strictly increasing, as in the file */
    double *v;
    size_t n;      /* >= 1 on success */
};

/* Read columns `time_col` and `value_col` of `path`.  On error writes a
 * message naming file:line into err and returns SP_EIO / SP_ECONFIG. */
int sp_csv_read_series(const char *path, const char *time_col, const char *value_col,
                       struct sp_series *out, char *err, size_t errsize);
void sp_series_release(struct sp_series *s);

#endif
