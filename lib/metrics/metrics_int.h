/* Metrics internals shared by the registry (metrics.c) and the renderer (render.c).
 * SPDX-License-Identifier: MIT */
#ifndef BK_METRICS_INT_H
#define BK_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <backend/metrics.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

/* One series. Counters and gauges use value; histograms use buckets (one count per
 * bound, not cumulative, plus one for +Inf) and sum. Doubles are kept as their bit
 * patterns in atomic 64-bit words and updated with compare-and-swap. The public
 * handle types (bk_counter_t, ...) are this struct. */
struct series {
    struct series *next_hash;  /* family hash chain */
    struct series *next_order; /* creation order */
    uint64_t hash;
    const struct bk_metric *family;
    char **values;        /* label values, nlabels of them */
    _Atomic uint64_t value;   /* double bits */
    _Atomic uint64_t sum;     /* double bits (histograms) */
    _Atomic uint64_t *buckets; /* nbounds + 1 counts (histograms) */
};

struct bk_metric {
    struct bk_metric *next; /* registration order */
    metric_kind kind;
    char *name;
    char *help;
    char **labels;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    pthread_rwlock_t lock; /* guards the series set, not the series' values */
    struct series **table;
    size_t table_size, nseries;
    struct series *first, *last;
};

struct bk_metrics {
    pthread_mutex_t lock; /* guards the family list */
    struct bk_metric *first, *last;
};

double bk__metrics_load(const _Atomic uint64_t *bits);

#endif
