/* The metrics registry: families, their series, and lock-free updates.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

static const double default_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

double bk__metrics_load(const _Atomic uint64_t *bits)
{
    uint64_t b = atomic_load_explicit((_Atomic uint64_t *)bits, memory_order_relaxed);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed), new;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&new, &d, sizeof new);
    } while (!atomic_compare_exchange_weak_explicit(bits, &old, new, memory_order_relaxed,
                                                    memory_order_relaxed));
}

static void atomic_store_double(_Atomic uint64_t *bits, double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    atomic_store_explicit(bits, b, memory_order_relaxed);
}

/* ------------------------------------------------------------------ names */

static bool valid_name(const char *s, bool colons)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colons && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static size_t count_strings(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static char **copy_strings(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((out[i] = strdup(v[i])) == NULL) {
            free_strings(out, i);
            return NULL;
        }
    }
    return out;
}

/* ------------------------------------------------------------------ series */

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a, with a separator between values */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211u;
        h = (h ^ 0xFF) * 1099511628211u;
    }
    return h;
}

static struct series *find(const bk_metric_t *f, const char *const *values, uint64_t h)
{
    if (f->table == NULL)
        return NULL;
    for (struct series *s = f->table[h & (f->table_size - 1)]; s; s = s->next_hash) {
        if (s->hash != h)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

static void free_series(const bk_metric_t *f, struct series *s)
{
    free_strings(s->values, f->nlabels);
    free(s->buckets);
    free(s);
}

/* Adds s to the hash table, doubling it when the load passes 1. Caller holds the write lock. */
static int insert(bk_metric_t *f, struct series *s)
{
    if (f->nseries + 1 > f->table_size) {
        size_t size = f->table_size ? f->table_size * 2 : 16;
        struct series **t = calloc(size, sizeof *t);
        if (t == NULL)
            return BK_ENOMEM;
        for (struct series *o = f->first; o; o = o->next_order) {
            o->next_hash = t[o->hash & (size - 1)];
            t[o->hash & (size - 1)] = o;
        }
        free(f->table);
        f->table = t;
        f->table_size = size;
    }
    s->next_hash = f->table[s->hash & (f->table_size - 1)];
    f->table[s->hash & (f->table_size - 1)] = s;
    if (f->last)
        f->last->next_order = s;
    else
        f->first = s;
    f->last = s;
    f->nseries++;
    return BK_OK;
}

static int get_series(bk_metric_t *f, metric_kind kind, const char *const *values,
                      struct series **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    if (f == NULL || f->kind != kind || count_strings(values) != f->nlabels)
        return BK_EINVAL;
    static const char *const none[] = {NULL};
    if (values == NULL)
        values = none;
    uint64_t h = hash_values(values, f->nlabels);

    pthread_rwlock_rdlock(&f->lock);
    struct series *s = find(f, values, h);
    pthread_rwlock_unlock(&f->lock);
    if (s != NULL) {
        *out = s;
        return BK_OK;
    }

    pthread_rwlock_wrlock(&f->lock);
    s = find(f, values, h); /* another thread may have made it meanwhile */
    int rc = BK_OK;
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s != NULL) {
            s->hash = h;
            s->family = f;
            s->values = copy_strings(values, f->nlabels);
            if (kind == KIND_HISTOGRAM)
                s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets);
        }
        if (s == NULL || s->values == NULL || (kind == KIND_HISTOGRAM && s->buckets == NULL) ||
            insert(f, s) != BK_OK) {
            if (s != NULL)
                free_series(f, s);
            s = NULL;
            rc = BK_ENOMEM;
        }
    }
    pthread_rwlock_unlock(&f->lock);
    *out = s;
    return rc;
}

int bk_metric_counter(bk_metric_t *family, const char *const *label_values, bk_counter_t **out)
{
    return get_series(family, KIND_COUNTER, label_values, (struct series **)out);
}

int bk_metric_gauge(bk_metric_t *family, const char *const *label_values, bk_gauge_t **out)
{
    return get_series(family, KIND_GAUGE, label_values, (struct series **)out);
}

int bk_metric_histogram(bk_metric_t *family, const char *const *label_values,
                        bk_histogram_t **out)
{
    return get_series(family, KIND_HISTOGRAM, label_values, (struct series **)out);
}

/* ------------------------------------------------------------------ updates */

void bk_counter_inc(bk_counter_t *c)
{
    bk_counter_add(c, 1.0);
}

void bk_counter_add(bk_counter_t *c, double v)
{
    if (c != NULL && v >= 0) /* also refuses NaN */
        atomic_add_double(&((struct series *)c)->value, v);
}

double bk_counter_value(const bk_counter_t *c)
{
    return c ? bk__metrics_load(&((const struct series *)c)->value) : 0.0;
}

void bk_gauge_set(bk_gauge_t *g, double v)
{
    if (g != NULL)
        atomic_store_double(&((struct series *)g)->value, v);
}

void bk_gauge_add(bk_gauge_t *g, double v)
{
    if (g != NULL)
        atomic_add_double(&((struct series *)g)->value, v);
}

double bk_gauge_value(const bk_gauge_t *g)
{
    return g ? bk__metrics_load(&((const struct series *)g)->value) : 0.0;
}

void bk_histogram_observe(bk_histogram_t *h, double v)
{
    struct series *s = (struct series *)h;
    if (s == NULL || isnan(v))
        return;
    const bk_metric_t *f = s->family;
    /* The first bound >= v (Prometheus buckets are "le"); nbounds when none. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
}

/* ------------------------------------------------------------------ families */

static void free_family(bk_metric_t *f)
{
    struct series *s = f->first;
    while (s != NULL) {
        struct series *next = s->next_order;
        free_series(f, s);
        s = next;
    }
    pthread_rwlock_destroy(&f->lock);
    free(f->table);
    free(f->name);
    free(f->help);
    free_strings(f->labels, f->nlabels);
    free(f->bounds);
    free(f);
}

static bool same_shape(const bk_metric_t *f, metric_kind kind, const char *help,
                       const char *const *labels, size_t nlabels, const double *bounds,
                       size_t nbounds)
{
    if (f->kind != kind || strcmp(f->help, help) != 0 || f->nlabels != nlabels ||
        f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    return nbounds == 0 || memcmp(f->bounds, bounds, nbounds * sizeof *bounds) == 0;
}

static int add_family(bk_metrics_t *reg, metric_kind kind, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t nbounds,
                      bk_metric_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    if (reg == NULL || !valid_name(name, true) || help == NULL)
        return BK_EINVAL;
    size_t nlabels = count_strings(labels);
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0 ||
            (kind == KIND_HISTOGRAM && strcmp(labels[i], "le") == 0))
            return BK_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return BK_EINVAL;
    }
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return BK_EINVAL;

    pthread_mutex_lock(&reg->lock);
    for (bk_metric_t *f = reg->first; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            int rc = same_shape(f, kind, help, labels, nlabels, bounds, nbounds) ? BK_OK
                                                                                  : BK_EEXIST;
            if (rc == BK_OK)
                *out = f;
            pthread_mutex_unlock(&reg->lock);
            return rc;
        }
    }
    bk_metric_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        goto nomem;
    pthread_rwlock_init(&f->lock, NULL);
    f->kind = kind;
    f->nlabels = nlabels;
    f->nbounds = nbounds;
    f->name = strdup(name);
    f->help = strdup(help);
    f->labels = copy_strings(labels, nlabels);
    if (nbounds > 0 && (f->bounds = malloc(nbounds * sizeof *bounds)) != NULL)
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
    if (f->name == NULL || f->help == NULL || f->labels == NULL ||
        (nbounds > 0 && f->bounds == NULL))
        goto nomem;
    /* A family without labels has exactly one series: make it now, so it renders 0. */
    if (nlabels == 0) {
        struct series *s;
        if (get_series(f, kind, NULL, &s) != BK_OK)
            goto nomem;
    }
    if (reg->last)
        reg->last->next = f;
    else
        reg->first = f;
    reg->last = f;
    pthread_mutex_unlock(&reg->lock);
    *out = f;
    return BK_OK;

nomem:
    if (f != NULL)
        free_family(f);
    pthread_mutex_unlock(&reg->lock);
    return BK_ENOMEM;
}

int bk_metrics_counter(bk_metrics_t *reg, const char *name, const char *help,
                       const char *const *label_names, bk_metric_t **out)
{
    return add_family(reg, KIND_COUNTER, name, help, label_names, NULL, 0, out);
}

int bk_metrics_gauge(bk_metrics_t *reg, const char *name, const char *help,
                     const char *const *label_names, bk_metric_t **out)
{
    return add_family(reg, KIND_GAUGE, name, help, label_names, NULL, 0, out);
}

int bk_metrics_histogram(bk_metrics_t *reg, const char *name, const char *help,
                         const char *const *label_names, const double *bounds, size_t nbounds,
                         bk_metric_t **out)
{
    if (bounds == NULL) {
        if (nbounds != 0)
            return BK_EINVAL;
        bounds = default_bounds;
        nbounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    return add_family(reg, KIND_HISTOGRAM, name, help, label_names, bounds, nbounds, out);
}

int bk_metrics_new(bk_metrics_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    bk_metrics_t *reg = calloc(1, sizeof *reg);
    *out = reg;
    if (reg == NULL)
        return BK_ENOMEM;
    pthread_mutex_init(&reg->lock, NULL);
    return BK_OK;
}

void bk_metrics_free(bk_metrics_t *reg)
{
    if (reg == NULL)
        return;
    bk_metric_t *f = reg->first;
    while (f != NULL) {
        bk_metric_t *next = f->next;
        free_family(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}
