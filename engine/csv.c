/*
 * csv.c — reading a (time, value) series from a CSV file.
 *
 * Small and strict: the first non-comment line is a header of column names;
 * lines starting with '#' and blank lines are skipped; fields are separated by
 * commas (no quoting: price files do not need it).  Both chosen columns must
 * parse fully as numbers and times must strictly increase, else the error
 * names the file, line and column.  The whole file is read into memory.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "csv-internal.h"

static char *field(char *line, int index)
{
    char *p = line;
    for (int i = 0; i < index; i++) {
        p = strchr(p, ',');
        if (!p) return NULL;
        p++;
    }
    return p;
}

static size_t field_len(const char *f)
{
    size_t n = strcspn(f, ",\r\n");
    return n;
}

static int find_column(char *header, const char *name)
{
    int idx = 0;
    for (char *p = header;; idx++) {
        size_t n = field_len(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
        if (n == strlen(name) && !strncmp(p, name, n)) return idx;
        p = strchr(p, ',');
        if (!p) return -1;
        p++;
    }
}

static int parse_num(const char *f, double *out)
{
    char buf[64];
    size_t n = field_len(f);
    while (n && (*f == ' ' || *f == '\t')) { f++; n--; }
    while (n && (f[n - 1] == ' ' || f[n - 1] == '\t')) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, f, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

void sp_series_release(struct sp_series *s)
{
    free(s->t);
    free(s->v);
    s->t = s->v = NULL;
    s->n = 0;
}

int sp_csv_read_series(const char *path, const char *time_col, const char *value_col,
                       struct sp_series *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsize, "cannot open '%s': %s", path, strerror(errno));
        return SP_EIO;
    }
    char *line = NULL;
    size_t cap = 0, n_alloc = 0;
    ssize_t len;
    int lineno = 0, tcol = -1, vcol = -1, rc = SP_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0) continue;
        if (tcol < 0) {
            tcol = find_column(p, time_col);
            vcol = find_column(p, value_col);
            if (tcol < 0 || vcol < 0) {
                snprintf(err, errsize, "%s:%d: header has no column '%s'", path, lineno,
                         tcol < 0 ? time_col : value_col);
                rc = SP_ECONFIG;
                break;
            }
            continue;
        }
        double t, v;
        char *ft = field(p, tcol), *fv = field(p, vcol);
        if (!ft || parse_num(ft, &t)) {
            snprintf(err, errsize, "%s:%d: column '%s': expected a number (seconds)", path,
                     lineno, time_col);
            rc = SP_ECONFIG;
            break;
        }
        if (!fv || parse_num(fv, &v)) {
            snprintf(err, errsize, "%s:%d: column '%s': expected a number", path, lineno,
                     value_col);
            rc = SP_ECONFIG;
            break;
        }
        if (out->n && t <= out->t[out->n - 1]) {
            snprintf(err, errsize, "%s:%d: time %.17g does not increase (previous row: %.17g)",
                     path, lineno, t, out->t[out->n - 1]);
            rc = SP_ECONFIG;
            break;
        }
        if (out->n == n_alloc) {
            n_alloc = n_alloc ? 2 * n_alloc : 256;
            double *nt = realloc(out->t, n_alloc * sizeof *nt);
            if (nt) out->t = nt;
            double *nv = nt ? realloc(out->v, n_alloc * sizeof *nv) : NULL;
            if (nv) out->v = nv;
            if (!nt || !nv) { snprintf(err, errsize, "out of memory"); rc = SP_ENOMEM; break; }
        }
        out->t[out->n] = t;
        out->v[out->n] = v;
        out->n++;
    }
    if (rc == SP_OK && ferror(f)) {
        snprintf(err, errsize, "cannot read '%s': %s", path, strerror(errno));
        rc = SP_EIO;
    }
    if (rc == SP_OK && tcol < 0) {
        snprintf(err, errsize, "%s: no header line", path);
        rc = SP_ECONFIG;
    }
    if (rc == SP_OK && out->n < 1) {
        snprintf(err, errsize, "%s: no data rows", path);
        rc = SP_ECONFIG;
    }
    free(line);
    fclose(f);
    if (rc) sp_series_release(out);
    return rc;
}
