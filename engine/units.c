/*
 * units.c — the scalar parsers shared by the scenario binder, --set and the
 * CLI: durations, fractions, and the typo helpers behind "did you mean".
 *
 * Durations are text such as "500ms", "1.5h" or "1h30m": one or more
 * (number, unit) parts with units us, ms, s, m, h, d, w.  The sum is taken in
 * double microseconds and rounded once, so "1.5h" is exact and "0.1s" does not
 * drift.  A bare number is accepted only when it is zero: "90" is ambiguous
 * (seconds? minutes?) and the binder tells the user to add a unit.  Negative
 * durations are rejected here; the binder reports them with its own message.
 *
 * sp_format_duration is the inverse for messages: the largest units first,
 * zero parts left out ("1d6h", "1m30s", "250ms", "0s").
 *
 * The edit distance is the optimal-string-alignment variant of
 * Damerau-Levenshtein (a transposition of adjacent letters costs 1, which is
 * the typo people make: "gmb" for "gbm"), compared case-insensitively.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "spiral/scenario.h"

/* Longest run of characters that can make up one unsigned decimal number
 * ("12", "1.5", ".5", "2."): digits with at most one '.', at least one digit.
 * No exponent, no sign, no "inf"/"nan": a duration is written by a person. */
static size_t units_number_span(const char *s)
{
    size_t i = 0, digits = 0;
    bool dot = false;
    for (;; i++) {
        if (isdigit((unsigned char)s[i])) digits++;
        else if (s[i] == '.' && !dot) dot = true;
        else break;
    }
    return digits ? i : 0;
}

static double units_per_us(const char *u, size_t n)
{
    static const struct { const char *name; double us; } table[] = {
        { "us", 1.0 },          { "ms", 1e3 },           { "s", 1e6 },
        { "m", 60e6 },          { "h", 3600e6 },         { "d", 86400e6 },
        { "w", 604800e6 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].name) == n && !memcmp(table[i].name, u, n))
            return table[i].us;
    return 0.0;
}

int sp_parse_duration(const char *s, sp_time *out)
{
    if (!s || !out) return SP_EINVAL;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '+') s++;
    double total = 0.0;
    int parts = 0;
    for (;;) {
        while (isspace((unsigned char)*s)) s++;
        if (!*s) break;
        size_t n = units_number_span(s);
        if (!n) return SP_EINVAL;
        char num[64];
        if (n >= sizeof num) return SP_EINVAL;
        memcpy(num, s, n);
        num[n] = '\0';
        double v = strtod(num, NULL);
        s += n;
        while (*s == ' ' || *s == '\t') s++;
        size_t ulen = 0;
        while (isalpha((unsigned char)s[ulen])) ulen++;
        if (!ulen) {
            /* A bare number: only "0" (alone) needs no unit. */
            while (isspace((unsigned char)*s)) s++;
            if (*s || parts || v != 0.0) return SP_EINVAL;
            *out = 0;
            return SP_OK;
        }
        double mul = units_per_us(s, ulen);
        if (mul == 0.0) return SP_EINVAL;
        total += v * mul;
        s += ulen;
        parts++;
    }
    if (!parts || !isfinite(total) || total >= 9.2e18) return SP_EINVAL;
    *out = (sp_time)llround(total);
    return SP_OK;
}

int sp_parse_fraction(const char *s, double *out)
{
    if (!s || !out) return SP_EINVAL;
    while (isspace((unsigned char)*s)) s++;
    if (!*s || isspace((unsigned char)*s)) return SP_EINVAL;
    /* Reject words strtod would take ("nan", "inf", "0x1p3"). */
    for (const char *p = s; *p && *p != '%'; p++)
        if (isalpha((unsigned char)*p) && *p != 'e' && *p != 'E') return SP_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE) return SP_EINVAL;
    while (isspace((unsigned char)*end)) end++;
    if (*end == '%') {
        v /= 100.0;
        end++;
        while (isspace((unsigned char)*end)) end++;
    }
    if (*end || !isfinite(v)) return SP_EINVAL;
    *out = v;
    return SP_OK;
}

const char *sp_format_duration(sp_time t, char *buf, size_t size)
{
    static const struct { const char *name; sp_time us; } parts[] = {
        { "d", SP_DAY }, { "h", SP_HOUR }, { "m", SP_MIN },
        { "s", SP_SEC }, { "ms", SP_MS },  { "us", SP_US },
    };
    if (!buf || !size) return buf;
    buf[0] = '\0';
    if (t == 0) {
        snprintf(buf, size, "0s");
        return buf;
    }
    size_t len = 0;
    uint64_t u = t < 0 ? (uint64_t)(-(t + 1)) + 1 : (uint64_t)t;  /* INT64_MIN safe */
    if (t < 0) len = (size_t)snprintf(buf, size, "-");
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && u && len < size; i++) {
        uint64_t q = u / (uint64_t)parts[i].us;
        if (!q) continue;
        u -= q * (uint64_t)parts[i].us;
        int w = snprintf(buf + len, size - len, "%llu%s", (unsigned long long)q,
                         parts[i].name);
        if (w < 0) break;
        len += (size_t)w;
    }
    return buf;
}

size_t sp_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (!la) return lb;
    if (!lb) return la;
    /* Three rows: two back (for transpositions), previous, current. */
    size_t stack[3 * 64];
    size_t *rows = stack;
    if (lb + 1 > 64) {
        rows = malloc(3 * (lb + 1) * sizeof *rows);
        if (!rows) return (size_t)-1;
    }
    size_t *pp = rows, *prev = rows + (lb + 1), *cur = rows + 2 * (lb + 1);
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        int ca = tolower((unsigned char)a[i - 1]);
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca != cb;
            size_t best = prev[j] + 1;                    /* deletion */
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;   /* insertion */
            if (prev[j - 1] + cost < best) best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;                     /* transposition */
            cur[j] = best;
        }
        size_t *t = pp; pp = prev; prev = cur; cur = t;
    }
    size_t d = prev[lb];
    if (rows != stack) free(rows);
    return d;
}

static bool units_has_prefix_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix)) return false;
    return true;
}

const char *sp_suggest(const char *word, const char *const *candidates, size_t n)
{
    if (!word || !*word || !candidates) return NULL;
    size_t wl = strlen(word);
    size_t limit = wl / 3 > 1 ? wl / 3 : 1;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (!candidates[i]) continue;
        size_t d = sp_edit_distance(word, candidates[i]);
        if (d <= limit && d < best_d) { best = candidates[i]; best_d = d; }
    }
    if (best) return best;
    /* No close spelling: a truncated or extended word ("vol" for
     * "volatility", "horizon_days" for "horizon"), if at least 3 letters
     * agree and only one candidate fits. */
    const char *only = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c) continue;
        size_t cl = strlen(c);
        bool fits = (wl >= 3 && cl > wl && units_has_prefix_ci(c, word)) ||
                    (cl >= 3 && wl > cl && units_has_prefix_ci(word, c));
        if (!fits) continue;
        if (only) return NULL;
        only = c;
    }
    return only;
}
