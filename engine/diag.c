/*
 * diag.c — collected error messages for scenario loading and validation.
 *
 * An sp_diag is a growable text buffer, one message per line, in the form
 * compilers use so editors can jump to it:
 *
 *     scenario.yaml:12:5: error: references.0.volatility: must be >= 0, got -1
 *     --set sim.horizon=abc: error: sim.horizon: expected a duration ...
 *     scenario.yaml: error: sim: missing required key 'horizon'
 *
 * The location comes from the node: its file and line:col when it was read
 * from a file; just the "file" text when the line is unknown (0), which is the
 * case for nodes made by `--set` (the file is then the whole "--set K=V"
 * argument) and for schema defaults (the file is the scenario's path).
 *
 * Every error is counted in n_errors, but only the first max_errors
 * (0 = 50) are written; the first one past the cap adds a single
 * "(more errors omitted)" line.  A NULL diag swallows everything, so callers
 * that do not want messages may pass NULL.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/scenario.h"

enum { SP_DIAG_DEFAULT_MAX = 50 };

static void diag_append(struct sp_diag *d, const char *s, size_t n)
{
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->len + n + 1) cap *= 2;
        char *p = realloc(d->text, cap);
        if (!p) return;           /* out of memory: the message is lost */
        d->text = p;
        d->cap = cap;
    }
    memcpy(d->text + d->len, s, n);
    d->len += n;
    d->text[d->len] = '\0';
}

/* Counts the error; false when it is past the cap and must not be written. */
static bool diag_admit(struct sp_diag *d)
{
    int max = d->max_errors > 0 ? d->max_errors : SP_DIAG_DEFAULT_MAX;
    d->n_errors++;
    if (d->n_errors <= max) return true;
    if (d->n_errors == max + 1) {
        static const char more[] = "(more errors omitted)\n";
        diag_append(d, more, sizeof more - 1);
    }
    return false;
}

/* "prefix: error: [path: ]message\n" with message from fmt/ap. */
static void diag_vwrite(struct sp_diag *d, const char *prefix, const char *path,
                        const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void diag_vwrite(struct sp_diag *d, const char *prefix, const char *path,
                        const char *fmt, va_list ap)
{
    char head[1024], msg[2048];
    int hn;
    if (prefix && *prefix)
        hn = snprintf(head, sizeof head, "%s: error: ", prefix);
    else
        hn = snprintf(head, sizeof head, "error: ");
    if (hn < 0) return;
    if ((size_t)hn >= sizeof head) hn = (int)sizeof head - 1;
    diag_append(d, head, (size_t)hn);
    if (path && *path) {
        diag_append(d, path, strlen(path));
        diag_append(d, ": ", 2);
    }
    int mn = vsnprintf(msg, sizeof msg, fmt, ap);
    if (mn < 0) mn = 0;
    if ((size_t)mn >= sizeof msg) mn = (int)sizeof msg - 1;
    diag_append(d, msg, (size_t)mn);
    diag_append(d, "\n", 1);
}

static void diag_location(char *buf, size_t size, const char *file, int line, int col)
{
    if (!file) file = "";
    if (line > 0 && col > 0)
        snprintf(buf, size, "%s:%d:%d", file, line, col);
    else if (line > 0)
        snprintf(buf, size, "%s:%d", file, line);
    else
        snprintf(buf, size, "%s", file);
}

void sp_diag_error(struct sp_diag *d, const struct sp_node *at, const char *fmt, ...)
{
    if (!d || !diag_admit(d)) return;
    char loc[768], path[512];
    loc[0] = path[0] = '\0';
    if (at) {
        diag_location(loc, sizeof loc, at->file, at->line, at->col);
        sp_node_path(at, path, sizeof path);
    }
    va_list ap;
    va_start(ap, fmt);
    diag_vwrite(d, loc, path, fmt, ap);
    va_end(ap);
}

void sp_diag_error_at(struct sp_diag *d, const char *file, int line, int col,
                      const char *fmt, ...)
{
    if (!d || !diag_admit(d)) return;
    char loc[768];
    diag_location(loc, sizeof loc, file, line, col);
    va_list ap;
    va_start(ap, fmt);
    diag_vwrite(d, loc, NULL, fmt, ap);
    va_end(ap);
}

void sp_diag_print(const struct sp_diag *d, FILE *out)
{
    if (d && d->text && d->len) fwrite(d->text, 1, d->len, out);
}

void sp_diag_release(struct sp_diag *d)
{
    if (!d) return;
    free(d->text);
    d->text = NULL;
    d->len = d->cap = 0;
    d->n_errors = 0;
}
