/* Metrics internals shared by the registry (metrics.c) and the renderer (render.c).
 * Nothing here is exported: the library builds with -fvisibility=hidden.
 * SPDX-License-Identifier: MIT */
#ifndef BK_METRICS_INT_H
#define BK_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <backend/metrics.h>

#include "core/map_int.h"

typedef enum { BK__METRIC_COUNTER, BK__METRIC_GAUGE, BK__METRIC_HISTOGRAM } bk__metric_kind;

/*
 * One series. Gauges keep one value (set must be a single word). Counters and
 * histograms are striped: each thread adds to one of BK__METRIC_STRIPES stripes of
 * cells, each stripe on cache lines of its own, so threads updating the same series
 * do not fight over one line; reads sum the stripes.
 *   counter stripe:   [0] count of bk_counter_inc, [1] double bits of bk_counter_add
 *   histogram stripe: [0..nbounds] bucket counts (not cumulative; the last is +Inf),
 *                     [nbounds + 1] double bits of the sum
 * Doubles are kept as their bit patterns in atomic 64-bit words and updated with
 * compare-and-swap. The public handle types (bk_counter_t, bk_gauge_t,
 * bk_histogram_t) point at this struct. Everything but the atomics is immutable
 * once the series is published.
 */
#define BK__METRIC_STRIPES 8

struct bk__series {
    struct bk__series *next_order; /* creation order */
    char *key;                     /* the label values joined by NULs: its key in the family's map */
    size_t klen;
    const struct bk_metric *family;
    char **values;           /* label values, family->nlabels of them */
    _Atomic uint64_t value;  /* double bits (gauges) */
    _Atomic uint64_t *cells; /* BK__METRIC_STRIPES * stride words (counters, histograms) */
    size_t stride;           /* words per stripe, a multiple of a cache line */
    double created;          /* when it was made, Unix seconds (OpenMetrics' _created) */
};

/* A family. Everything but the series set is immutable after registration. */
struct bk_metric {
    struct bk_metric *next; /* registration order */
    bk__metric_kind kind;
    char *name;
    size_t om_len; /* its OpenMetrics family name: name's first om_len bytes (bk__metric_om_len) */
    char *help;
    char **labels;
    size_t nlabels;
    double *bounds; /* strictly increasing, finite; +Inf implicit */
    size_t nbounds;
    pthread_rwlock_t lock; /* guards the series set (map, order list), not values */
    bk__map_t series;      /* key → series (core/map_int.h); readers under the read lock */
    size_t nseries;
    struct bk__series *first, *last;
};

/* A function bk_metrics_render calls first (bk_metrics_add_collector). */
struct bk__collector {
    struct bk__collector *next;
    bk_metrics_collect_fn fn;
    void *ud;
};

struct bk_metrics {
    pthread_mutex_t lock; /* guards the family list */
    struct bk_metric *first, *last;
    /* Held while the collectors run, and to add or remove one: removal waits for
     * a render's call to end. Apart from lock, so that a collector may register. */
    pthread_mutex_t collect_lock;
    struct bk__collector *collectors;
};

#if defined(__GNUC__)
#define BK__METRICS_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__METRICS_HIDDEN
#endif

/* How much of a family's name names it in OpenMetrics: a counter's without its
 * _total suffix, which its samples write (x_total is the family x there). */
static inline size_t bk__metric_om_len(const char *name, bk__metric_kind kind)
{
    size_t len = strlen(name);
    return kind == BK__METRIC_COUNTER && len > 6 && strcmp(name + len - 6, "_total") == 0 ? len - 6 : len;
}

/* A counter's or gauge's current value (a counter's stripes summed). */
BK__METRICS_HIDDEN double bk__series_value(const struct bk__series *s);
/* Word i of every stripe, summed as counts or as doubles. */
BK__METRICS_HIDDEN uint64_t bk__series_count(const struct bk__series *s, size_t i);
BK__METRICS_HIDDEN double bk__series_sum(const struct bk__series *s, size_t i);
/* Calls every collector (render.c, before it writes). */
BK__METRICS_HIDDEN void bk__metrics_collect(bk_metrics_t *reg);

#endif
