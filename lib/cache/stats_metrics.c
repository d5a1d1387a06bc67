/* A cache's outcomes as metrics (bk_cache_opts_t.metrics): a collector of the
 * registry reads bk_cache_stats at each render and adds what changed since the
 * last one to the counters, so the fetch paths count once, in the stats.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "cache_int.h"

struct bk__cache_metrics {
    bk_cache_t *cache;
    bk_metrics_t *reg;
    bk_counter_t *hit, *stale, *miss, *loads, *coalesced;
    /* The stats at the last render. Only collect() touches them, and the
     * registry runs its collectors one at a time: no lock of our own. */
    uint64_t last_hit, last_stale, last_miss, last_loads, last_coalesced;
};

/* Adds now - *last (when it grew) and remembers now. */
static void add_delta(bk_counter_t *c, uint64_t now, uint64_t *last)
{
    if (now > *last) {
        bk_counter_add(c, (double)(now - *last));
        *last = now;
    }
}

static void collect(void *ud)
{
    struct bk__cache_metrics *m = ud;
    bk_cache_stats_t s;
    bk_cache_stats(m->cache, &s);
    add_delta(m->hit, s.hits, &m->last_hit);
    add_delta(m->stale, s.stale_hits, &m->last_stale);
    add_delta(m->miss, s.misses, &m->last_miss);
    add_delta(m->loads, s.loads, &m->last_loads);
    add_delta(m->coalesced, s.coalesced, &m->last_coalesced);
}

int bk__cache_metrics_new(bk_cache_t *cache, bk_metrics_t *reg, struct bk__cache_metrics **out)
{
    *out = NULL;
    struct bk__cache_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return BK_ENOMEM;
    m->cache = cache;
    m->reg = reg;
    bk_metric_t *requests, *loads, *coalesced;
    int rc = bk_metrics_counter(reg, "cache_requests_total",
                                "Cache fetches by what the cache had: a fresh value (hit), a stale one it "
                                "served (stale), or none (miss).",
                                (const char *const[]){"result", NULL}, &requests);
    if (rc == BK_OK)
        rc = bk_metrics_counter(reg, "cache_loads_total", "Loader calls: reads of the origin.", NULL, &loads);
    if (rc == BK_OK)
        rc = bk_metrics_counter(reg, "cache_coalesced_total",
                                "Misses answered by another caller's load instead of one of their own.", NULL,
                                &coalesced);
    if (rc == BK_OK)
        rc = bk_metric_counter(requests, (const char *const[]){"hit", NULL}, &m->hit);
    if (rc == BK_OK)
        rc = bk_metric_counter(requests, (const char *const[]){"stale", NULL}, &m->stale);
    if (rc == BK_OK)
        rc = bk_metric_counter(requests, (const char *const[]){"miss", NULL}, &m->miss);
    if (rc == BK_OK)
        rc = bk_metric_counter(loads, NULL, &m->loads);
    if (rc == BK_OK)
        rc = bk_metric_counter(coalesced, NULL, &m->coalesced);
    if (rc == BK_OK)
        rc = bk_metrics_add_collector(reg, collect, m);
    if (rc != BK_OK) {
        free(m);
        return rc;
    }
    *out = m;
    return BK_OK;
}

void bk__cache_metrics_free(struct bk__cache_metrics *m)
{
    if (m == NULL)
        return;
    bk_metrics_remove_collector(m->reg, collect, m); /* no render reads the cache after this */
    free(m);
}
