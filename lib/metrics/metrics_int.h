/* Metrics internals shared by the registry (metrics.c) and the renderer (render.c).
 * Nothing here is exported: the library builds with -fvisibility=hidden.
 * SPDX-License-Identifier: MIT */
#ifndef BK_METRICS_INT_H
#define BK_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/metrics.h>

typedef enum { BK__METRIC_COUNTER, BK__METRIC_GAUGE, BK__METRIC_HISTOGRAM } bk__metric_kind;

/*
 * One series. Counters and gauges use value; histograms use buckets (one count per
 * bound, not cumulative, then one for +Inf) and sum. Doubles are kept as their bit
 * patterns in atomic 64-bit words and updated with compare-and-swap. The public
 * handle types (bk_counter_t, bk_gauge_t, bk_histogram_t) point at this struct.
 * Everything but the atomics is immutable once the series is published.
 */
struct bk__series {
    struct bk__series *next_hash;  /* family hash chain */
    struct bk__series *next_order; /* creation order */
    uint64_t hash;
    const struct bk_metric *family;
    char **values;             /* label values, family->nlabels of them */
    _Atomic uint64_t value;    /* double bits (counters, gauges) */
    _Atomic uint64_t sum;      /* double bits (histograms) */
    _Atomic uint64_t *buckets; /* family->nbounds + 1 counts (histograms) */
};

/* A family. Everything but the series set is immutable after registration. */
struct bk_metric {
    struct bk_metric *next; /* registration order */
    bk__metric_kind kind;
    char *name;
    char *help;
    char **labels;
    size_t nlabels;
    double *bounds; /* strictly increasing, finite; +Inf implicit */
    size_t nbounds;
    pthread_rwlock_t lock; /* guards the series set (table, order list), not values */
    struct bk__series **table; /* table_size (a power of two) chains */
    size_t table_size, nseries;
    struct bk__series *first, *last;
};

struct bk_metrics {
    pthread_mutex_t lock; /* guards the family list */
    struct bk_metric *first, *last;
};

#if defined(__GNUC__)
#define BK__METRICS_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__METRICS_HIDDEN
#endif

/* The double whose bits *bits holds (relaxed load). */
BK__METRICS_HIDDEN double bk__metrics_load(const _Atomic uint64_t *bits);

#endif
