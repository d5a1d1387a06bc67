/*
 * libbackend metrics: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * Layer 0. A registry holds metric families (a name, help text, type and label
 * names); a family holds series (one per set of label values). Look a series up
 * once and keep the handle: updating it is lock-free (atomic operations only).
 *
 *   bk_metric_t *fam;
 *   bk_counter_t *ok;
 *   bk_metrics_counter(reg, "http_requests_total", "Requests served.",
 *                      (const char *[]){"method", "status", NULL}, &fam);
 *   bk_metric_counter(fam, (const char *[]){"GET", "200", NULL}, &ok);
 *   bk_counter_inc(ok);
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_METRICS_H
#define BACKEND_METRICS_H

#include <stddef.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_metrics bk_metrics_t;     /* a registry */
typedef struct bk_metric bk_metric_t;       /* a family */
typedef struct bk_counter bk_counter_t;     /* one series of a counter family */
typedef struct bk_gauge bk_gauge_t;         /* one series of a gauge family */
typedef struct bk_histogram bk_histogram_t; /* one series of a histogram family */

BK_EXPORT int bk_metrics_new(bk_metrics_t **out);
/* Frees the registry and every family and series handle it gave out. */
BK_EXPORT void bk_metrics_free(bk_metrics_t *reg);

/*
 * Register a family. label_names is a NULL-terminated array (NULL for none). Names
 * must match [a-zA-Z_:][a-zA-Z0-9_:]* (metrics) and [a-zA-Z_][a-zA-Z0-9_]* (labels,
 * not starting with "__"; histograms may not use "le"). Registering a name again
 * with the same type, help and label names returns the existing family; with any
 * difference it fails with BK_EEXIST, as does a name whose samples would clash with
 * another family's (a histogram "x" also writes x_bucket, x_sum and x_count), in
 * Prometheus text or in OpenMetrics (a counter "x_total" is the family "x" there,
 * with x_created). help must be valid UTF-8. Strings are copied.
 */
BK_EXPORT int bk_metrics_counter(bk_metrics_t *reg, const char *name, const char *help,
                                 const char *const *label_names, bk_metric_t **out);
BK_EXPORT int bk_metrics_gauge(bk_metrics_t *reg, const char *name, const char *help,
                               const char *const *label_names, bk_metric_t **out);
/* bounds: nbounds strictly increasing finite upper bounds (+Inf is implicit);
 * NULL for the default {.005,.01,.025,.05,.1,.25,.5,1,2.5,5,10}. */
BK_EXPORT int bk_metrics_histogram(bk_metrics_t *reg, const char *name, const char *help,
                                   const char *const *label_names, const double *bounds,
                                   size_t nbounds, bk_metric_t **out);

/*
 * Get or create the series of family for label_values (NULL-terminated, as many as
 * the family has label names; NULL for a family without labels). Values are any
 * valid UTF-8 and are copied. Fails with BK_EINVAL when the family is of another
 * type, the count differs or a value is not valid UTF-8. The handle lives as long
 * as the registry.
 */
BK_EXPORT int bk_metric_counter(bk_metric_t *family, const char *const *label_values,
                                bk_counter_t **out);
BK_EXPORT int bk_metric_gauge(bk_metric_t *family, const char *const *label_values,
                              bk_gauge_t **out);
BK_EXPORT int bk_metric_histogram(bk_metric_t *family, const char *const *label_values,
                                  bk_histogram_t **out);

/* Updates: lock-free, safe from any thread. */
BK_EXPORT void bk_counter_inc(bk_counter_t *c);
/* v must be >= 0 (a counter never goes down); other values are ignored. */
BK_EXPORT void bk_counter_add(bk_counter_t *c, double v);
BK_EXPORT double bk_counter_value(const bk_counter_t *c);

BK_EXPORT void bk_gauge_set(bk_gauge_t *g, double v);
BK_EXPORT void bk_gauge_add(bk_gauge_t *g, double v); /* v may be negative */
BK_EXPORT double bk_gauge_value(const bk_gauge_t *g);

/* Counts v in the first bucket whose bound is >= v (+Inf if none); NaN is ignored. */
BK_EXPORT void bk_histogram_observe(bk_histogram_t *h, double v);

/*
 * A collector: a function bk_metrics_render calls before it writes, for values
 * kept elsewhere than in the registry (a cache's counters, a pool's size), which
 * it brings up to date with bk_gauge_set and bk_counter_add. Collectors run one
 * at a time, on the rendering thread, newest first; one may register families and
 * series but must not render or add or remove a collector. Adding the same fn
 * and ud twice calls it twice. BK_EINVAL (reg or fn NULL), BK_ENOMEM.
 */
typedef void (*bk_metrics_collect_fn)(void *ud);
BK_EXPORT int bk_metrics_add_collector(bk_metrics_t *reg, bk_metrics_collect_fn fn, void *ud);
/* Removes one collector added with fn and ud (none: nothing happens). When it
 * returns, that collector is not running and will not run again: ud may be freed. */
BK_EXPORT void bk_metrics_remove_collector(bk_metrics_t *reg, bk_metrics_collect_fn fn, void *ud);

/*
 * Renders every family, in registration order, series in creation order, as
 * Prometheus text format 0.0.4 (Content-Type: text/plain; version=0.0.4). A family
 * with no series yet renders its HELP and TYPE lines only, except that a family
 * without labels always has its one series. *out is NUL-terminated and the caller
 * frees it with free(3); *len (may be NULL) receives its length.
 */
BK_EXPORT int bk_metrics_render(bk_metrics_t *reg, char **out, size_t *len);
/*
 * The same as OpenMetrics 1.0 text (Content-Type: application/openmetrics-text;
 * version=1.0.0): a counter's family is named without _total and each series
 * adds a _total and a _created sample (when the series was made, Unix seconds),
 * a histogram's too; a family whose name ends in a base unit (_seconds, _bytes,
 * ...) has a UNIT line; HELP also escapes the quote; it ends with "# EOF".
 */
BK_EXPORT int bk_metrics_render_openmetrics(bk_metrics_t *reg, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_METRICS_H */
