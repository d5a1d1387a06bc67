/* The memcached store's setup: the server list, the options, the pool, a breaker
 * per server and the metrics; its teardown and its stats. The other files of the
 * store are listed in remote_int.h.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"
#include "core/abi_int.h"
#include "core/error_int.h"

void bk_cache_memcached_opts_init(bk_cache_memcached_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->prefix = "";
    o->pool_size = 8;
    o->pool_wait_ns = 100 * BK_NSEC_PER_MSEC;
    o->connect_timeout_ns = 250 * BK_NSEC_PER_MSEC;
    o->io_timeout_ns = 250 * BK_NSEC_PER_MSEC;
    o->retry_timeout_ns = BK_NSEC_PER_SEC;
    o->lease_ttl_ns = 10 * BK_NSEC_PER_SEC;
    o->lease_wait_ns = 2 * BK_NSEC_PER_SEC;
}
BK__ASSERT_ABI_SIZE(bk_cache_memcached_opts_t, 152);

/* ------------------------------------------------------------------ setup */

/* Says which entry of the server list is wrong, and why. Entries are host names
 * and ports: no secret, so the entry is quoted. */
static int bad_server(bk_error_t *err, unsigned index, const char *entry, const char *why)
{
    bk__error(err, BK_EINVAL, "memcached server list, entry %u (\"%s\"): %s", index, entry, why);
    if (err)
        bk__error_field(err->detail, sizeof err->detail, entry);
    return BK_EINVAL;
}

/* "host:port[,host:port...]", IPv6 hosts in brackets. */
static int add_servers(memcached_st *m, const char *list, bk_error_t *err)
{
    if (!list || !*list)
        return bk__error(err, BK_EINVAL, "the memcached server list is empty");
    const char *p = list;
    for (unsigned index = 1; *p; index++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[300], entry[300];
        if (n == 0)
            return bad_server(err, index, "", "empty");
        if (n >= sizeof item)
            return bad_server(err, index, "...", "longer than 299 bytes");
        memcpy(item, p, n);
        item[n] = '\0';
        memcpy(entry, item, n + 1); /* item is cut up below */
        char *host = item, *colon;
        if (*host == '[') {
            char *close = strchr(host, ']');
            if (!close)
                return bad_server(err, index, entry, "no ] after an IPv6 address");
            *close = '\0';
            host++;
            colon = close[1] == ':' ? close + 1 : NULL;
            if (close[1] && !colon)
                return bad_server(err, index, entry, "something other than :port after ]");
        } else {
            colon = strchr(host, ':');
            if (colon && strchr(colon + 1, ':'))
                return bad_server(err, index, entry, "an IPv6 address needs brackets: [::1]:11211");
        }
        unsigned long port = 11211;
        if (colon) {
            *colon = '\0';
            char *e;
            port = strtoul(colon + 1, &e, 10);
            if (*e || e == colon + 1 || port == 0 || port > 65535)
                return bad_server(err, index, entry, "the port is not a number from 1 to 65535");
        }
        if (!*host)
            return bad_server(err, index, entry, "no host");
        if (memcached_server_add(m, host, (in_port_t)port) != MEMCACHED_SUCCESS)
            return bad_server(err, index, entry, "libmemcached refused it");
        p += n;
        if (*p == ',')
            p++;
    }
    return BK_OK;
}

static int register_metrics(struct bk__remote *r, bk_metrics_t *m)
{
    static const char *const labels[] = {"outcome", NULL};
    static const double bounds[] = {.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25};
    bk_metric_t *ops, *dur;
    int rc = bk_metrics_counter(m, "cache_memcached_operations_total",
                                "memcached calls by outcome: ok, error, refused (breaker open), pool_timeout.",
                                labels, &ops);
    if (rc == BK_OK)
        rc = bk_metrics_histogram(m, "cache_memcached_duration_seconds", "memcached call latency.", NULL, bounds,
                                  sizeof bounds / sizeof *bounds, &dur);
    const char *ok[] = {"ok", NULL}, *err[] = {"error", NULL}, *ref[] = {"refused", NULL},
               *busy[] = {"pool_timeout", NULL};
    if (rc == BK_OK)
        rc = bk_metric_counter(ops, ok, &r->m_ok);
    if (rc == BK_OK)
        rc = bk_metric_counter(ops, err, &r->m_error);
    if (rc == BK_OK)
        rc = bk_metric_counter(ops, ref, &r->m_refused);
    if (rc == BK_OK)
        rc = bk_metric_counter(ops, busy, &r->m_busy);
    if (rc == BK_OK)
        rc = bk_metric_histogram(dur, NULL, &r->m_duration);
    return rc;
}

/* The option out of its range, or NULL. */
static const char *mopts_problem(const bk_cache_memcached_opts_t *mo, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < plen; i++)
        if (!bk__remote_key_char_ok((unsigned char)prefix[i]))
            return "prefix";
    return plen > 64                                        ? "prefix"
           : mo->pool_size == 0 || mo->pool_size > 1024     ? "pool_size"
           : mo->pool_wait_ns < 0                           ? "pool_wait_ns"
           : mo->connect_timeout_ns <= 0                    ? "connect_timeout_ns"
           : mo->io_timeout_ns <= 0                         ? "io_timeout_ns"
           : mo->retry_timeout_ns < 0                       ? "retry_timeout_ns"
           : mo->lease_ttl_ns < BK_NSEC_PER_SEC ||
                   mo->lease_ttl_ns > (int64_t)MAX_DELTA * BK_NSEC_PER_SEC ? "lease_ttl_ns"
           : mo->lease_wait_ns < 0 || mo->lease_wait_ns > INT64_MAX / 4 ? "lease_wait_ns"
                                                            : NULL;
}

int bk__remote_new(const char *servers, const bk_cache_opts_t *opts, const bk_cache_memcached_opts_t *mo,
                   struct bk__remote **out, bk_error_t *err)
{
    const char *prefix = mo->prefix ? mo->prefix : "";
    size_t plen = strlen(prefix);
    const char *bad = mopts_problem(mo, prefix);
    if (bad)
        return bk__error(err, BK_EINVAL, "memcached option %s out of range", bad);
    struct bk__remote *r = calloc(1, sizeof *r);
    if (!r)
        return bk__error(err, BK_ENOMEM, NULL);
    memcpy(r->prefix, prefix, plen + 1);
    r->clock = opts->clock;
    r->jitter_pct = opts->ttl_jitter_pct;
    r->negative_ttl_ns = opts->negative_ttl_ns;
    r->early = opts->early_refresh;
    r->lease_ttl_ns = mo->lease_ttl_ns;
    r->lease_wait_ns = mo->lease_wait_ns;
    int rc = BK_ENOMEM;
    if (!(r->master = memcached_create(NULL)))
        goto fail;
    if ((rc = add_servers(r->master, servers, err)) != BK_OK) {
        bk__remote_free(r);
        return rc; /* err says which entry */
    }
    /* TCP_NODELAY: without it a miss stalls ~40 ms (Nagle and delayed ACK). CAS
     * support makes text-protocol reads "gets". Never NOREPLY or BUFFER_REQUESTS
     * (reads of existing keys can then answer NOTFOUND). */
    memcached_st *m = r->master;
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, mo->binary_protocol ? 1 : 0);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
                           (uint64_t)((mo->connect_timeout_ns + BK_NSEC_PER_MSEC - 1) / BK_NSEC_PER_MSEC));
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
                           (uint64_t)((mo->io_timeout_ns + BK_NSEC_PER_MSEC - 1) / BK_NSEC_PER_MSEC));
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, (uint64_t)(mo->retry_timeout_ns / BK_NSEC_PER_SEC));
    if ((rc = bk__remote_pool_init(&r->pool, m, mo->pool_size, mo->pool_wait_ns, r->clock)) != BK_OK)
        goto fail;
    rc = BK_ENOMEM;
    /* A breaker per server: one dead server of several must not take the healthy
     * ones out of use. Each is named "<name>:<host>:<port>" (metrics label). */
    bk_breaker_opts_t bo;
    if (mo->breaker) {
        bo = *mo->breaker;
    } else {
        bk_breaker_opts_init(&bo);
        bo.name = "memcached";
        bo.window_size = 20;
        bo.min_calls = 5;
        bo.open_ns = BK_NSEC_PER_SEC;
        bo.half_open_calls = 1;
        bo.metrics = mo->metrics;
    }
    if (!bo.clock)
        bo.clock = opts->clock;
    const char *base = bo.name ? bo.name : "memcached";
    r->nservers = memcached_server_count(m);
    if (!(r->breakers = calloc(r->nservers, sizeof *r->breakers)))
        goto fail;
    for (uint32_t i = 0; i < r->nservers; i++) {
        const memcached_instance_st *inst = memcached_server_instance_by_position(m, i);
        char name[400];
        snprintf(name, sizeof name, "%s:%s:%u", base, memcached_server_name(inst),
                 (unsigned)memcached_server_port(inst));
        bo.name = name;
        if ((rc = bk_breaker_new(&bo, &r->breakers[i])) != BK_OK)
            goto fail;
    }
    if (mo->metrics && (rc = register_metrics(r, mo->metrics)) != BK_OK)
        goto fail;
    *out = r;
    return BK_OK;
fail:
    bk__remote_free(r);
    return bk__error(err, rc, rc == BK_EEXIST   ? "memcached metrics: a family of the same name has another shape"
                              : rc == BK_EINVAL ? "memcached option breaker: bad breaker options"
                                                : NULL);
}

void bk__remote_free(struct bk__remote *r)
{
    if (!r)
        return;
    bk__remote_pool_free(&r->pool);
    memcached_free(r->master);
    for (uint32_t i = 0; r->breakers && i < r->nservers; i++)
        bk_breaker_free(r->breakers[i]);
    free(r->breakers);
    free(r);
}

void bk__remote_stats(struct bk__remote *r, bk_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->hits = atomic_load(&r->hits);
    out->stale_hits = atomic_load(&r->stale_hits);
    out->misses = atomic_load(&r->misses);
    out->loads = atomic_load(&r->loads);
    out->lease_waits = atomic_load(&r->lease_waits);
    out->coalesced = atomic_load(&r->coalesced);
    out->remote_errors = atomic_load(&r->errors);
}

bk_breaker_t *bk_cache_breaker(bk_cache_t *cache, size_t server)
{
    if (cache == NULL || cache->remote == NULL || server >= cache->remote->nservers)
        return NULL;
    return cache->remote->breakers[server];
}
