/* The metrics registry: families, their series, and lock-free updates.
 * SPDX-License-Identifier: MIT */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writer-preferring rwlocks */
#endif
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/map_int.h"
#include "core/utf8_int.h"
#include "metrics_int.h"

/* Stripes are aligned to this so no two share a cache line. */
#define CACHE_LINE 64

static const double default_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* ------------------------------------------------------------------ atomics */

static double load_double(const _Atomic uint64_t *bits)
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

/* ------------------------------------------------------------------ strings */

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'. */
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

static bool valid_utf8(const char *s)
{
    return bk__utf8_valid(s, strlen(s));
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

/* ------------------------------------------------------------------ locks */

static int rwlock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;
    bool have_attr = pthread_rwlockattr_init(&attr) == 0;
#if defined(__GLIBC__)
    /* Lookups take the read lock on every request; without this, glibc lets a
     * steady stream of readers starve the writer that adds a new series. No
     * thread ever takes this lock recursively, so the non-recursive kind is safe. */
    if (have_attr)
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    int rc = pthread_rwlock_init(lock, have_attr ? &attr : NULL);
    if (have_attr)
        pthread_rwlockattr_destroy(&attr);
    return rc == 0 ? BK_OK : BK_ENOMEM;
}

/* ------------------------------------------------------------------ series */

/* The series key: the label values joined by NULs, which no value holds, so
 * ("ab", "c") and ("a", "bc") differ. It goes in buf when it fits, else in a
 * malloc'ed block (NULL when out of memory); *len is its length. */
static char *join(const char *const *values, size_t n, char *buf, size_t size, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(values[i]) + 1;
    *len = total ? total - 1 : 0;
    char *k = total <= size ? buf : malloc(total);
    if (k == NULL)
        return NULL;
    char *p = k;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(values[i]);
        memcpy(p, values[i], l);
        p += l;
        *p++ = '\0';
    }
    return k;
}

/* Caller holds f->lock (read or write). */
static struct bk__series *find(const bk_metric_t *f, const char *key, size_t klen)
{
    return bk__map_get(&f->series, key, klen);
}

static void free_series(const bk_metric_t *f, struct bk__series *s)
{
    free_strings(s->values, f->nlabels);
    free(s->key);
    free(s->cells);
    free(s);
}

/* Adds s to the map and to the end of the creation order. Caller holds the
 * write lock. On failure nothing changed. */
static int insert(bk_metric_t *f, struct bk__series *s)
{
    int rc = bk__map_put(&f->series, s->key, s->klen, s);
    if (rc != BK_OK)
        return rc;
    if (f->last)
        f->last->next_order = s;
    else
        f->first = s;
    f->last = s;
    f->nseries++;
    return BK_OK;
}

static struct bk__series *new_series(const bk_metric_t *f, const char *const *values, const char *key,
                                     size_t klen)
{
    struct bk__series *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->family = f;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* wall time: what a scraper compares */
    s->created = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1e3; /* whole ms */
    s->values = copy_strings(values, f->nlabels);
    s->key = malloc(klen + 1);
    if (s->key != NULL) {
        memcpy(s->key, key, klen);
        s->key[klen] = '\0';
        s->klen = klen;
    }
    if (s->values == NULL || s->key == NULL) {
        free_series(f, s);
        return NULL;
    }
    if (f->kind != BK__METRIC_GAUGE) {
        size_t words = f->kind == BK__METRIC_COUNTER ? 2 : f->nbounds + 2;
        const size_t line = CACHE_LINE / sizeof *s->cells;
        if (words > SIZE_MAX / sizeof *s->cells / BK__METRIC_STRIPES - line) {
            free_series(f, s);
            return NULL;
        }
        s->stride = (words + line - 1) / line * line;
        size_t bytes = BK__METRIC_STRIPES * s->stride * sizeof *s->cells;
        s->cells = aligned_alloc(CACHE_LINE, bytes);
        if (s->cells == NULL) {
            free_series(f, s);
            return NULL;
        }
        memset((void *)s->cells, 0, bytes);
    }
    return s; /* zero bits are 0.0 and count 0 */
}

static int get_series(bk_metric_t *f, bk__metric_kind kind, const char *const *values,
                      struct bk__series **out)
{
    *out = NULL;
    if (f == NULL || f->kind != kind || count_strings(values) != f->nlabels)
        return BK_EINVAL;
    /* A family without labels has its one series from registration on, and
     * f->first never changes afterwards: no lock needed. */
    if (f->nlabels == 0) {
        *out = f->first;
        return BK_OK;
    }
    char buf[256];
    size_t klen;
    char *key = join(values, f->nlabels, buf, sizeof buf, &klen);
    if (key == NULL)
        return BK_ENOMEM;

    /* Fast path: the series exists (the common case once warmed up). */
    pthread_rwlock_rdlock(&f->lock);
    struct bk__series *s = find(f, key, klen);
    pthread_rwlock_unlock(&f->lock);
    if (s != NULL) {
        if (key != buf)
            free(key);
        *out = s;
        return BK_OK;
    }

    /* Validate only what is about to be stored (lookups of existing series stay cheap). */
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!valid_utf8(values[i])) {
            if (key != buf)
                free(key);
            return BK_EINVAL;
        }
    }

    int rc = BK_OK;
    pthread_rwlock_wrlock(&f->lock);
    s = find(f, key, klen); /* another thread may have made it meanwhile */
    if (s == NULL) {
        s = new_series(f, values, key, klen);
        if (s == NULL || insert(f, s) != BK_OK) {
            if (s != NULL)
                free_series(f, s);
            s = NULL;
            rc = BK_ENOMEM;
        }
    }
    pthread_rwlock_unlock(&f->lock);
    if (key != buf)
        free(key);
    *out = s;
    return rc;
}

int bk_metric_counter(bk_metric_t *family, const char *const *label_values, bk_counter_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    struct bk__series *s;
    int rc = get_series(family, BK__METRIC_COUNTER, label_values, &s);
    *out = (bk_counter_t *)s;
    return rc;
}

int bk_metric_gauge(bk_metric_t *family, const char *const *label_values, bk_gauge_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    struct bk__series *s;
    int rc = get_series(family, BK__METRIC_GAUGE, label_values, &s);
    *out = (bk_gauge_t *)s;
    return rc;
}

int bk_metric_histogram(bk_metric_t *family, const char *const *label_values,
                        bk_histogram_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    struct bk__series *s;
    int rc = get_series(family, BK__METRIC_HISTOGRAM, label_values, &s);
    *out = (bk_histogram_t *)s;
    return rc;
}

/* ------------------------------------------------------------------ updates */

/* The stripe of the calling thread: threads are dealt stripes round-robin on
 * their first update, so up to BK__METRIC_STRIPES threads never share one. */
static _Atomic uint64_t *my_stripe(const struct bk__series *s)
{
    static atomic_uint next_stripe;
    static _Thread_local unsigned stripe = UINT_MAX;
    if (stripe == UINT_MAX)
        stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) %
                 BK__METRIC_STRIPES;
    return s->cells + stripe * s->stride;
}

uint64_t bk__series_count(const struct bk__series *s, size_t i)
{
    uint64_t n = 0;
    for (size_t k = 0; k < BK__METRIC_STRIPES; k++)
        n += atomic_load_explicit(&s->cells[k * s->stride + i], memory_order_relaxed);
    return n;
}

double bk__series_sum(const struct bk__series *s, size_t i)
{
    double d = 0;
    for (size_t k = 0; k < BK__METRIC_STRIPES; k++)
        d += load_double(&s->cells[k * s->stride + i]);
    return d;
}

double bk__series_value(const struct bk__series *s)
{
    if (s->family->kind == BK__METRIC_GAUGE)
        return load_double(&s->value);
    return (double)bk__series_count(s, 0) + bk__series_sum(s, 1);
}

void bk_counter_inc(bk_counter_t *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&my_stripe((struct bk__series *)c)[0], 1,
                                  memory_order_relaxed);
}

void bk_counter_add(bk_counter_t *c, double v)
{
    if (c != NULL && v >= 0) /* also refuses NaN */
        atomic_add_double(&my_stripe((struct bk__series *)c)[1], v);
}

double bk_counter_value(const bk_counter_t *c)
{
    return c ? bk__series_value((const struct bk__series *)c) : 0.0;
}

void bk_gauge_set(bk_gauge_t *g, double v)
{
    if (g != NULL)
        atomic_store_double(&((struct bk__series *)g)->value, v);
}

void bk_gauge_add(bk_gauge_t *g, double v)
{
    if (g != NULL)
        atomic_add_double(&((struct bk__series *)g)->value, v);
}

double bk_gauge_value(const bk_gauge_t *g)
{
    return g ? bk__series_value((const struct bk__series *)g) : 0.0;
}

void bk_histogram_observe(bk_histogram_t *h, double v)
{
    struct bk__series *s = (struct bk__series *)h;
    if (s == NULL || isnan(v))
        return;
    const bk_metric_t *f = s->family;
    /* The first bound >= v (buckets are "less than or equal"); nbounds (+Inf) if none. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    _Atomic uint64_t *stripe = my_stripe(s);
    atomic_fetch_add_explicit(&stripe[lo], 1, memory_order_relaxed);
    atomic_add_double(&stripe[f->nbounds + 1], v);
}

/* ------------------------------------------------------------------ families */

static void free_family(bk_metric_t *f, bool lock_initialized)
{
    struct bk__series *s = f->first;
    while (s != NULL) {
        struct bk__series *next = s->next_order;
        free_series(f, s);
        s = next;
    }
    if (lock_initialized)
        pthread_rwlock_destroy(&f->lock);
    bk__map_free(&f->series);
    free(f->name);
    free(f->help);
    free_strings(f->labels, f->nlabels);
    free(f->bounds);
    free(f);
}

static bool same_definition(const bk_metric_t *f, bk__metric_kind kind, const char *help,
                            const char *const *labels, size_t nlabels, const double *bounds,
                            size_t nbounds)
{
    if (f->kind != kind || strcmp(f->help, help) != 0 || f->nlabels != nlabels ||
        f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    for (size_t i = 0; i < nbounds; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return true;
}

/* The names a family (name, kind) writes, in either format, as stem + suffix
 * pairs: its samples in Prometheus text (a histogram "x" also writes x_bucket,
 * x_sum and x_count), and in OpenMetrics its family name and samples (a counter
 * "x_total" is the family "x" with samples x_total and x_created; a histogram
 * adds x_created). At most 5; returns how many. */
struct owned {
    const char *stem;
    size_t stem_len;
    const char *suffix;
};
static size_t owned_names(const char *name, bk__metric_kind kind, struct owned out[5])
{
    size_t len = strlen(name), n = 0;
    out[n++] = (struct owned){name, len, ""};
    if (kind == BK__METRIC_HISTOGRAM) {
        static const char *const hist[] = {"_bucket", "_sum", "_count", "_created"};
        for (size_t i = 0; i < 4; i++)
            out[n++] = (struct owned){name, len, hist[i]};
    } else if (kind == BK__METRIC_COUNTER) {
        size_t base = bk__metric_om_len(name, kind);
        out[n++] = (struct owned){name, base, base != len ? "" : "_total"};
        out[n++] = (struct owned){name, base, "_created"};
    }
    return n;
}

/* The i-th character of stem + suffix (i below its length). */
static char owned_at(const struct owned *o, size_t i)
{
    return i < o->stem_len ? o->stem[i] : o->suffix[i - o->stem_len];
}

static bool owned_eq(const struct owned *a, const struct owned *b)
{
    size_t la = a->stem_len + strlen(a->suffix), lb = b->stem_len + strlen(b->suffix);
    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++)
        if (owned_at(a, i) != owned_at(b, i))
            return false;
    return true;
}

/* True if family f and a new family (name, kind) would write a name in common,
 * in Prometheus text or in OpenMetrics (owned_names). */
static bool names_clash(const bk_metric_t *f, const char *name, bk__metric_kind kind)
{
    struct owned a[5], b[5];
    size_t na = owned_names(f->name, f->kind, a), nb = owned_names(name, kind, b);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (owned_eq(&a[i], &b[j]))
                return true;
    return false;
}

static int check_definition(bk__metric_kind kind, const char *name, const char *help,
                            const char *const *labels, size_t nlabels, const double *bounds,
                            size_t nbounds)
{
    if (!valid_name(name, true) || help == NULL || !valid_utf8(help))
        return BK_EINVAL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0 ||
            (kind == BK__METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0))
            return BK_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return BK_EINVAL;
    }
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return BK_EINVAL;
    return BK_OK;
}

static bk_metric_t *new_family(bk__metric_kind kind, const char *name, const char *help,
                               const char *const *labels, size_t nlabels, const double *bounds,
                               size_t nbounds)
{
    bk_metric_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    if (rwlock_init(&f->lock) != BK_OK) {
        free(f);
        return NULL;
    }
    f->kind = kind;
    f->nlabels = nlabels;
    f->nbounds = nbounds;
    f->name = strdup(name);
    f->om_len = bk__metric_om_len(name, kind);
    f->help = strdup(help);
    f->labels = copy_strings(labels, nlabels);
    if (nbounds > 0 && (f->bounds = malloc(nbounds * sizeof *bounds)) != NULL)
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
    if (f->name == NULL || f->help == NULL || f->labels == NULL ||
        (nbounds > 0 && f->bounds == NULL))
        goto fail;
    /* A family without labels has exactly one series: make it now, so it renders 0. */
    if (nlabels == 0) {
        static const char *const none[] = {NULL};
        struct bk__series *s = new_series(f, none, "", 0);
        if (s == NULL)
            goto fail;
        if (insert(f, s) != BK_OK) {
            free_series(f, s);
            goto fail;
        }
    }
    return f;
fail:
    free_family(f, true);
    return NULL;
}

static int add_family(bk_metrics_t *reg, bk__metric_kind kind, const char *name,
                      const char *help, const char *const *labels, const double *bounds,
                      size_t nbounds, bk_metric_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    if (reg == NULL)
        return BK_EINVAL;
    size_t nlabels = count_strings(labels);
    int rc = check_definition(kind, name, help, labels, nlabels, bounds, nbounds);
    if (rc != BK_OK)
        return rc;

    pthread_mutex_lock(&reg->lock);
    for (bk_metric_t *f = reg->first; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (same_definition(f, kind, help, labels, nlabels, bounds, nbounds))
                *out = f;
            pthread_mutex_unlock(&reg->lock);
            return *out != NULL ? BK_OK : BK_EEXIST;
        }
        if (names_clash(f, name, kind)) {
            pthread_mutex_unlock(&reg->lock);
            return BK_EEXIST;
        }
    }
    bk_metric_t *f = new_family(kind, name, help, labels, nlabels, bounds, nbounds);
    if (f != NULL) {
        if (reg->last)
            reg->last->next = f;
        else
            reg->first = f;
        reg->last = f;
    }
    pthread_mutex_unlock(&reg->lock);
    *out = f;
    return f != NULL ? BK_OK : BK_ENOMEM;
}

int bk_metrics_counter(bk_metrics_t *reg, const char *name, const char *help,
                       const char *const *label_names, bk_metric_t **out)
{
    return add_family(reg, BK__METRIC_COUNTER, name, help, label_names, NULL, 0, out);
}

int bk_metrics_gauge(bk_metrics_t *reg, const char *name, const char *help,
                     const char *const *label_names, bk_metric_t **out)
{
    return add_family(reg, BK__METRIC_GAUGE, name, help, label_names, NULL, 0, out);
}

int bk_metrics_histogram(bk_metrics_t *reg, const char *name, const char *help,
                         const char *const *label_names, const double *bounds, size_t nbounds,
                         bk_metric_t **out)
{
    if (bounds == NULL) {
        if (nbounds != 0) {
            if (out != NULL)
                *out = NULL;
            return BK_EINVAL;
        }
        bounds = default_bounds;
        nbounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    return add_family(reg, BK__METRIC_HISTOGRAM, name, help, label_names, bounds, nbounds, out);
}

/* ------------------------------------------------------------------ registry */

int bk_metrics_new(bk_metrics_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_metrics_t *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return BK_ENOMEM;
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg);
        return BK_ENOMEM;
    }
    if (pthread_mutex_init(&reg->collect_lock, NULL) != 0) {
        pthread_mutex_destroy(&reg->lock);
        free(reg);
        return BK_ENOMEM;
    }
    *out = reg;
    return BK_OK;
}

/* ------------------------------------------------------------------ collectors */

int bk_metrics_add_collector(bk_metrics_t *reg, bk_metrics_collect_fn fn, void *ud)
{
    if (reg == NULL || fn == NULL)
        return BK_EINVAL;
    struct bk__collector *c = malloc(sizeof *c);
    if (c == NULL)
        return BK_ENOMEM;
    *c = (struct bk__collector){.fn = fn, .ud = ud};
    pthread_mutex_lock(&reg->collect_lock);
    c->next = reg->collectors;
    reg->collectors = c;
    pthread_mutex_unlock(&reg->collect_lock);
    return BK_OK;
}

void bk_metrics_remove_collector(bk_metrics_t *reg, bk_metrics_collect_fn fn, void *ud)
{
    if (reg == NULL)
        return;
    pthread_mutex_lock(&reg->collect_lock);
    for (struct bk__collector **p = &reg->collectors; *p; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->ud == ud) {
            struct bk__collector *c = *p;
            *p = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&reg->collect_lock);
}

void bk__metrics_collect(bk_metrics_t *reg)
{
    pthread_mutex_lock(&reg->collect_lock);
    for (struct bk__collector *c = reg->collectors; c; c = c->next)
        c->fn(c->ud);
    pthread_mutex_unlock(&reg->collect_lock);
}

void bk_metrics_free(bk_metrics_t *reg)
{
    if (reg == NULL)
        return;
    bk_metric_t *f = reg->first;
    while (f != NULL) {
        bk_metric_t *next = f->next;
        free_family(f, true);
        f = next;
    }
    for (struct bk__collector *c = reg->collectors, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&reg->collect_lock);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}
