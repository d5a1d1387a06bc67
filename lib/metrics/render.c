/* Prometheus text exposition format 0.0.4, and OpenMetrics 1.0 text, which
 * differs in a counter's family name (without _total), _created samples, UNIT
 * lines, HELP escaping the quote, and the closing # EOF.
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 * https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md
 * SPDX-License-Identifier: MIT */
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values (and OpenMetrics' HELP)
 * also escape the quote. */
static void put_escaped(struct buf *b, const char *s, bool quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            puts_(b, "\\\\");
        else if (*p == '\n')
            puts_(b, "\\n");
        else if (quote && *p == '"')
            puts_(b, "\\\"");
        else
            put(b, p, 1);
    }
}

/* The shortest of %.15g, %.16g and %.17g that reads back as the same double (%.17g
 * always does), so integral values have no decimal point ("42", "1e+21") and 0.1
 * stays "0.1"; +Inf, -Inf and NaN as Prometheus spells them. -0 renders as 0. */
static void put_number(struct buf *b, double v)
{
    if (isnan(v)) {
        puts_(b, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0)
        v = 0.0; /* no "-0" */
    char text[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v)
            break;
    }
    puts_(b, text);
}

static void put_u64(struct buf *b, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    puts_(b, text);
}

/* name{l1="v1",...[,le="x"]}, name being the family name's first blen bytes and
 * suffix. */
static void put_sample_name(struct buf *b, const bk_metric_t *f, const struct bk__series *s, size_t blen,
                            const char *suffix, const double *le)
{
    put(b, f->name, blen);
    puts_(b, suffix);
    if (f->nlabels == 0 && le == NULL)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i > 0)
            puts_(b, ",");
        puts_(b, f->labels[i]);
        puts_(b, "=\"");
        put_escaped(b, s->values[i], true);
        puts_(b, "\"");
    }
    if (le != NULL) {
        puts_(b, f->nlabels > 0 ? ",le=\"" : "le=\"");
        put_number(b, *le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

static void put_histogram(struct buf *b, const bk_metric_t *f, const struct bk__series *s, size_t blen)
{
    /* Cumulative counts; _count is their total, so +Inf always equals _count even
     * while other threads observe. */
    uint64_t total = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        total += bk__series_count(s, i);
        double le = i < f->nbounds ? f->bounds[i] : INFINITY;
        put_sample_name(b, f, s, blen, "_bucket", &le);
        puts_(b, " ");
        put_u64(b, total);
        puts_(b, "\n");
    }
    put_sample_name(b, f, s, blen, "_sum", NULL);
    puts_(b, " ");
    put_number(b, bk__series_sum(s, f->nbounds + 1));
    puts_(b, "\n");
    put_sample_name(b, f, s, blen, "_count", NULL);
    puts_(b, " ");
    put_u64(b, total);
    puts_(b, "\n");
}

static const char *type_name(bk__metric_kind kind)
{
    switch (kind) {
    case BK__METRIC_COUNTER:
        return "counter";
    case BK__METRIC_GAUGE:
        return "gauge";
    case BK__METRIC_HISTOGRAM:
        break;
    }
    return "histogram";
}

/* One sample line: name (its first blen bytes), suffix, {labels}, value. */
static void put_sample(struct buf *b, const bk_metric_t *f, const struct bk__series *s, size_t blen,
                       const char *suffix, double v)
{
    put_sample_name(b, f, s, blen, suffix, NULL);
    puts_(b, " ");
    put_number(b, v);
    puts_(b, "\n");
}

/* The unit OpenMetrics names for a family whose name (its first len bytes) ends in one: only
 * the base units Prometheus's conventions use as suffixes. NULL: none. */
static const char *unit_of(const char *name, size_t len)
{
    static const char *const units[] = {"seconds", "bytes", "ratio", "celsius", "volts", "amperes",
                                        "joules", "grams", "meters"};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        size_t n = strlen(units[i]);
        if (len > n + 1 && name[len - n - 1] == '_' && memcmp(name + len - n, units[i], n) == 0)
            return units[i];
    }
    return NULL;
}

/* what, the family's name (its first blen bytes) and a space: a metadata line begun. */
static void put_meta(struct buf *b, const char *what, const bk_metric_t *f, size_t blen)
{
    puts_(b, what);
    put(b, f->name, blen);
    puts_(b, " ");
}

static void put_family(struct buf *b, bk_metric_t *f, bool om)
{
    /* OpenMetrics names a counter's family without _total, which its samples add. */
    size_t blen = om ? f->om_len : strlen(f->name);
    const char *unit = om ? unit_of(f->name, blen) : NULL;
    put_meta(b, "# HELP ", f, blen);
    put_escaped(b, f->help, om);
    put_meta(b, "\n# TYPE ", f, blen);
    puts_(b, type_name(f->kind));
    if (unit != NULL) {
        put_meta(b, "\n# UNIT ", f, blen);
        puts_(b, unit);
    }
    puts_(b, "\n");
    pthread_rwlock_rdlock(&f->lock);
    for (const struct bk__series *s = f->first; s; s = s->next_order) {
        switch (f->kind) {
        case BK__METRIC_HISTOGRAM:
            put_histogram(b, f, s, blen);
            if (om)
                put_sample(b, f, s, blen, "_created", s->created);
            break;
        case BK__METRIC_COUNTER:
            put_sample(b, f, s, blen, om ? "_total" : "", bk__series_value(s));
            if (om)
                put_sample(b, f, s, blen, "_created", s->created);
            break;
        case BK__METRIC_GAUGE:
            put_sample(b, f, s, blen, "", bk__series_value(s));
            break;
        }
    }
    pthread_rwlock_unlock(&f->lock);
}

static int render(bk_metrics_t *reg, bool om, char **out, size_t *len)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    if (reg == NULL)
        return BK_EINVAL;
    bk__metrics_collect(reg); /* values kept elsewhere, brought up to date first */
    /* snprintf and strtod follow LC_NUMERIC; the format wants "0.5" whatever locale
     * the application chose, so this thread formats in the C locale meanwhile. */
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0)
        return BK_ENOMEM;
    locale_t saved = uselocale(c_locale);

    struct buf b = {0};
    put(&b, "", 0); /* an empty registry renders as "" (Prometheus text) */

    pthread_mutex_lock(&reg->lock);
    for (bk_metric_t *f = reg->first; f; f = f->next)
        put_family(&b, f, om);
    pthread_mutex_unlock(&reg->lock);
    if (om)
        puts_(&b, "# EOF\n");
    uselocale(saved);
    freelocale(c_locale);

    if (b.failed) {
        free(b.data);
        return BK_ENOMEM;
    }
    *out = b.data;
    if (len != NULL)
        *len = b.len;
    return BK_OK;
}

int bk_metrics_render(bk_metrics_t *reg, char **out, size_t *len)
{
    return render(reg, false, out, len);
}

int bk_metrics_render_openmetrics(bk_metrics_t *reg, char **out, size_t *len)
{
    return render(reg, true, out, len);
}
