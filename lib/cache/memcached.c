/* The memcached store: a pool of libmemcached connections behind a breaker per
 * server, the entry format, and the cross-process fetch (read, lease, load,
 * guarded fill).
 *
 * The pool is ours, not libmemcachedutil's: a thread gets back the connection it
 * used last when it is idle. With memcached_pool() two threads kept trading
 * connections, each read's socket woke on another CPU than the last, and hits
 * ran at 0.55-0.85 of a thread with its own connection; with the affinity, at
 * 0.9-1.0 (measured, bench/bench_cache.c). Its wait is a semaphore, with a real
 * deadline (libmemcached's rounds it to whole seconds).
 *
 * An entry is a 22-byte header and the value: format version, flags (negative,
 * tombstone), the fresh and stale deadlines on the cache's wall clock, and how
 * long its load took (for XFetch). The deadlines, not memcached's expiry, decide
 * freshness, so tests run on a fake clock; memcached's expiry (a little later)
 * only frees the memory.
 *
 * The race a cache-aside must close: process A misses and reads the database;
 * B writes the database and deletes the key; A stores what it read, now stale
 * until its TTL. Here A's store is guarded: it is an add when A saw no entry and a
 * CAS on the entry A saw otherwise, and bk_cache_delete leaves a tombstone (for a
 * lease's lifetime) instead of nothing. Whatever B wrote after A's read changes
 * the CAS value or fills the slot, so A's store is refused, and the next reader
 * loads the new row. B's delete also drops the lease, so that reader need not
 * wait for A's doomed load.
 *
 * The lease itself is only an efficiency lock: an add of a lock key holding a
 * random token, released by its owner alone (read with its CAS value, then a CAS
 * with an expiry in the past). If it is lost or never granted, a load happens
 * twice; nothing is wrong.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmemcached/memcached.h>
#include <openssl/sha.h>

#include "cache_int.h"
#include "core/abi_int.h"
#include "core/error_int.h"

#define ENTRY_FLAGS 0xbc01u   /* memcached item flags of our entries: format 1 */
#define HDR 22
#define F_NEGATIVE 1u
#define F_TOMBSTONE 2u
#define MAX_KEY 250           /* memcached's limit */
#define MAX_DELTA (30 * 86400) /* memcached reads larger expiries as unix times */
#define EXPIRE_NOW (MAX_DELTA + 1) /* a unix time in 1970: already expired */

struct conn {
    memcached_st *mc;
    _Atomic int busy;
} __attribute__((aligned(64))); /* a line each: threads claim them at once */

struct bk__remote {
    struct conn *conns;    /* pool_size clones of master, each used by one thread at a time */
    unsigned pool_size;
    sem_t free_conns;      /* counts the idle ones */
    bool sem_ready;
    memcached_st *master;
    bk_breaker_t **breakers; /* one per server, in the order of the server list */
    uint32_t nservers;
    bk_clock_t *clock;
    char prefix[65];
    unsigned jitter_pct;
    int64_t negative_ttl_ns, lease_ttl_ns, lease_wait_ns, pool_wait_ns;
    double early;
    bk_counter_t *m_ok, *m_error, *m_refused, *m_busy;
    bk_histogram_t *m_duration;
    _Atomic uint64_t hits, stale_hits, misses, loads, lease_waits, errors;
};

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

static bool key_char_ok(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

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
        if (!key_char_ok((unsigned char)prefix[i]))
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
    r->pool_wait_ns = mo->pool_wait_ns;
    r->pool_size = mo->pool_size;
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
    rc = BK_ENOMEM;
    if (!(r->conns = aligned_alloc(64, mo->pool_size * sizeof *r->conns)))
        goto fail;
    memset(r->conns, 0, mo->pool_size * sizeof *r->conns);
    for (unsigned i = 0; i < mo->pool_size; i++) /* each connects at its first call */
        if (!(r->conns[i].mc = memcached_clone(NULL, m)))
            goto fail;
    if (sem_init(&r->free_conns, 0, mo->pool_size) != 0)
        goto fail;
    r->sem_ready = true;
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
    for (unsigned i = 0; r->conns && i < r->pool_size; i++)
        memcached_free(r->conns[i].mc);
    free(r->conns);
    memcached_free(r->master);
    if (r->sem_ready)
        sem_destroy(&r->free_conns);
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
    out->remote_errors = atomic_load(&r->errors);
}

/* ------------------------------------------------------------------ keys */

/* prefix, kind, ':' and key; or, for a key memcached cannot take (too long,
 * spaces, control or non-ASCII bytes), prefix, kind, '#' and its SHA-256. */
static size_t make_key(const struct bk__remote *r, char kind, const char *key, char out[MAX_KEY + 1])
{
    size_t plen = strlen(r->prefix), klen = strlen(key);
    bool plain = plen + 2 + klen <= MAX_KEY;
    for (size_t i = 0; plain && i < klen; i++)
        plain = key_char_ok((unsigned char)key[i]);
    if (plain) {
        memcpy(out, r->prefix, plen);
        out[plen] = kind;
        out[plen + 1] = ':';
        memcpy(out + plen + 2, key, klen + 1);
        return plen + 2 + klen;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, klen, md);
    size_t n = (size_t)snprintf(out, MAX_KEY + 1, "%s%c#", r->prefix, kind);
    for (size_t i = 0; i < sizeof md; i++)
        n += (size_t)snprintf(out + n, MAX_KEY + 1 - n, "%02x", md[i]);
    return n;
}

/* ------------------------------------------------------------------ calls, behind the breaker */

struct call {
    struct conn *conn;
    memcached_st *mc;
    bk_breaker_t *breaker; /* that of the key's server */
    bk_breaker_permit_t permit;
    int64_t start;
};

/* The connection this thread used last, while the same remote's (its socket and
 * buffers are warm on this CPU). */
static _Thread_local struct {
    const struct bk__remote *remote;
    unsigned index;
} last_conn;

/* An idle connection; the caller holds one count of free_conns, so one exists. */
static struct conn *conn_claim(struct bk__remote *r)
{
    unsigned start = last_conn.remote == r && last_conn.index < r->pool_size ? last_conn.index : 0;
    for (;;) {
        for (unsigned n = 0; n < r->pool_size; n++) {
            unsigned i = (start + n) % r->pool_size;
            int idle = 0;
            if (atomic_compare_exchange_strong_explicit(&r->conns[i].busy, &idle, 1, memory_order_acquire,
                                                        memory_order_relaxed)) {
                last_conn.remote = r;
                last_conn.index = i;
                return &r->conns[i];
            }
        }
    }
}

/* Takes the breaker of the server that holds k, then a connection. */
static int call_begin(struct bk__remote *r, struct call *c, const char *k, size_t klen)
{
    /* The master's server list and continuum never change (no auto-eject), so
     * reading them from any thread is safe. */
    uint32_t server = r->nservers > 1 ? memcached_generate_hash(r->master, k, klen) : 0;
    c->breaker = r->breakers[server < r->nservers ? server : 0];
    if (bk_breaker_acquire(c->breaker, &c->permit) != BK_OK) {
        atomic_fetch_add(&r->errors, 1);
        if (r->m_refused)
            bk_counter_inc(r->m_refused);
        return BK_EUNAVAIL;
    }
    /* An idle connection, or a wait of up to pool_wait_ns for one; the pool then
     * has one for us. */
    int w = sem_trywait(&r->free_conns);
    if (w != 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline); /* sem_timedwait's clock */
        int64_t ns = deadline.tv_nsec + r->pool_wait_ns % BK_NSEC_PER_SEC;
        deadline.tv_sec += (time_t)(r->pool_wait_ns / BK_NSEC_PER_SEC + ns / BK_NSEC_PER_SEC);
        deadline.tv_nsec = (long)(ns % BK_NSEC_PER_SEC);
        while ((w = sem_timedwait(&r->free_conns, &deadline)) != 0 && errno == EINTR)
            ;
    }
    c->conn = w == 0 ? conn_claim(r) : NULL;
    if (!c->conn) {
        bk_breaker_record(c->breaker, &c->permit, BK_OUTCOME_IGNORED, 0); /* our congestion, not memcached's */
        atomic_fetch_add(&r->errors, 1);
        if (r->m_busy)
            bk_counter_inc(r->m_busy);
        return BK_EUNAVAIL;
    }
    c->mc = c->conn->mc;
    c->start = bk_clock_mono_ns(NULL);
    return BK_OK;
}

/* Answers the server gave (found or not, stored or not) versus failures to talk. */
static bool answered(memcached_return_t mrc)
{
    switch (mrc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_NOTFOUND:
    case MEMCACHED_NOTSTORED:
    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
    case MEMCACHED_E2BIG:
        return true;
    default:
        return false;
    }
}

static void call_end(struct bk__remote *r, struct call *c, memcached_return_t mrc)
{
    int64_t took = bk_clock_mono_ns(NULL) - c->start;
    atomic_store_explicit(&c->conn->busy, 0, memory_order_release);
    sem_post(&r->free_conns);
    bool ok = answered(mrc);
    bk_breaker_record(c->breaker, &c->permit, ok ? BK_OUTCOME_SUCCESS : BK_OUTCOME_FAILURE, took);
    if (!ok)
        atomic_fetch_add(&r->errors, 1);
    if (r->m_ok)
        bk_counter_inc(ok ? r->m_ok : r->m_error);
    if (r->m_duration)
        bk_histogram_observe(r->m_duration, (double)took / 1e9);
}

/* A read with the CAS value: BK_OK (*val malloc'ed), BK_ENOTFOUND, BK_EUNAVAIL. */
static int mc_gets(struct bk__remote *r, const char *k, size_t klen, char **val, size_t *vlen, uint32_t *flags,
                   uint64_t *cas)
{
    *val = NULL;
    struct call c;
    int rc = call_begin(r, &c, k, klen);
    if (rc != BK_OK)
        return rc;
    const char *keys[1] = {k};
    size_t lens[1] = {klen};
    memcached_return_t mrc = memcached_mget(c.mc, keys, lens, 1);
    rc = BK_ENOTFOUND;
    if (mrc == MEMCACHED_SUCCESS) {
        memcached_result_st res;
        memcached_result_create(c.mc, &res);
        while (memcached_fetch_result(c.mc, &res, &mrc)) {
            if (*val)
                continue; /* one key asked: drain anything else */
            *vlen = memcached_result_length(&res);
            *flags = memcached_result_flags(&res);
            *cas = memcached_result_cas(&res);
            if ((*val = malloc(*vlen + 1)) == NULL) {
                rc = BK_ENOMEM;
                continue;
            }
            memcpy(*val, memcached_result_value(&res), *vlen);
            (*val)[*vlen] = '\0';
            rc = BK_OK;
        }
        memcached_result_free(&res);
        if (mrc == MEMCACHED_NOTFOUND)
            mrc = MEMCACHED_END;
    }
    call_end(r, &c, mrc);
    if (!answered(mrc)) {
        free(*val);
        *val = NULL;
        return BK_EUNAVAIL;
    }
    return rc;
}

enum store_op { OP_SET, OP_ADD, OP_CAS };

/* BK_OK; BK_EEXIST (add: the key exists; cas: it changed or went); BK_ERANGE (too
 * big for memcached); BK_EUNAVAIL. */
static int mc_store(struct bk__remote *r, enum store_op op, const char *k, size_t klen, const void *val,
                    size_t vlen, time_t exp, uint32_t flags, uint64_t cas)
{
    struct call c;
    int rc = call_begin(r, &c, k, klen);
    if (rc != BK_OK)
        return rc;
    memcached_return_t mrc;
    if (op == OP_SET)
        mrc = memcached_set(c.mc, k, klen, val, vlen, exp, flags);
    else if (op == OP_ADD)
        mrc = memcached_add(c.mc, k, klen, val, vlen, exp, flags);
    else
        mrc = memcached_cas(c.mc, k, klen, val, vlen, exp, flags, cas);
    call_end(r, &c, mrc);
    switch (mrc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
        return BK_OK;
    case MEMCACHED_NOTSTORED:   /* add over the text protocol, or cas on a gone key */
    case MEMCACHED_DATA_EXISTS: /* add over binary, or cas on a changed key */
    case MEMCACHED_NOTFOUND:    /* cas on a gone key */
        return BK_EEXIST;
    case MEMCACHED_E2BIG:
        return BK_ERANGE;
    default:
        return BK_EUNAVAIL;
    }
}

/* memcached's expiry for a lifetime: relative seconds, rounded up, plus one for
 * clocks that disagree; an absolute time beyond memcached's 30-day limit. */
static time_t expiry(int64_t ns)
{
    int64_t s = (ns + BK_NSEC_PER_SEC - 1) / BK_NSEC_PER_SEC + 1;
    if (s > MAX_DELTA)
        return time(NULL) + (time_t)s;
    return (time_t)s;
}

/* ------------------------------------------------------------------ entries */

struct header {
    unsigned flags;
    int64_t fresh_until, stale_until; /* wall ns */
    int64_t load_ns;
};

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static bool decode(const char *buf, size_t len, uint32_t flags, struct header *h)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (flags != ENTRY_FLAGS || len < HDR || p[0] != 1)
        return false;
    h->flags = p[1];
    h->fresh_until = (int64_t)get_be64(p + 2);
    h->stale_until = (int64_t)get_be64(p + 10);
    h->load_ns = (int64_t)((uint64_t)p[18] << 24 | (uint64_t)p[19] << 16 | (uint64_t)p[20] << 8 | p[21]) * 1000;
    return true;
}

/* Writes an entry: set (cas 0, !guarded), add (cas 0, guarded) or cas. */
static int write_entry(struct bk__remote *r, const char *k, size_t klen, const void *value, size_t len,
                       int64_t fresh_ns, int64_t stale_ns, unsigned flags, int64_t load_ns, bool guarded,
                       uint64_t cas)
{
    unsigned char *buf = malloc(HDR + len);
    if (!buf)
        return BK_ENOMEM;
    if (!(flags & F_TOMBSTONE))
        fresh_ns = (int64_t)((double)fresh_ns * bk__cache_jitter(r->jitter_pct));
    int64_t now = bk_clock_wall_ns(r->clock);
    uint64_t load_us = (uint64_t)(load_ns / 1000);
    if (load_us > UINT32_MAX)
        load_us = UINT32_MAX;
    buf[0] = 1;
    buf[1] = (unsigned char)flags;
    put_be64(buf + 2, (uint64_t)(now + fresh_ns));
    put_be64(buf + 10, (uint64_t)(now + fresh_ns + stale_ns));
    buf[18] = (unsigned char)(load_us >> 24);
    buf[19] = (unsigned char)(load_us >> 16);
    buf[20] = (unsigned char)(load_us >> 8);
    buf[21] = (unsigned char)load_us;
    if (len)
        memcpy(buf + HDR, value, len);
    enum store_op op = !guarded ? OP_SET : cas ? OP_CAS : OP_ADD;
    int rc = mc_store(r, op, k, klen, buf, HDR + len, expiry(fresh_ns + stale_ns), ENTRY_FLAGS, cas);
    free(buf);
    return rc;
}

int bk__remote_set(struct bk__remote *r, const char *key, const void *value, size_t len, const bk_cache_ttl_t *ttl)
{
    char k[MAX_KEY + 1];
    size_t klen = make_key(r, 'v', key, k);
    return write_entry(r, k, klen, value, len, ttl->fresh_ns, ttl->stale_ns, 0, 0, false, 0);
}

int bk__remote_delete(struct bk__remote *r, const char *key)
{
    char k[MAX_KEY + 1], lk[MAX_KEY + 1];
    size_t klen = make_key(r, 'v', key, k), lklen = make_key(r, 'l', key, lk);
    int rc = write_entry(r, k, klen, NULL, 0, r->lease_ttl_ns, 0, F_TOMBSTONE, 0, false, 0);
    if (rc == BK_OK) { /* the load in flight cannot store: let the next reader start anew */
        struct call c;
        if (call_begin(r, &c, lk, lklen) == BK_OK)
            call_end(r, &c, memcached_delete(c.mc, lk, lklen, 0));
    }
    return rc;
}

/* ------------------------------------------------------------------ leases */

enum lease { LEASE_GOT, LEASE_TAKEN, LEASE_FAILED };

static enum lease lease_take(struct bk__remote *r, const char *lk, size_t lklen, char token[33])
{
    unsigned char raw[16];
    if (bk_random_bytes(raw, sizeof raw) != BK_OK)
        return LEASE_FAILED;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    int rc = mc_store(r, OP_ADD, lk, lklen, token, 32, expiry(r->lease_ttl_ns), 0, 0);
    return rc == BK_OK ? LEASE_GOT : rc == BK_EEXIST ? LEASE_TAKEN : LEASE_FAILED;
}

/* Only while it still holds our token: never someone else's lease. */
static void lease_release(struct bk__remote *r, const char *lk, size_t lklen, const char token[33])
{
    char *val;
    size_t vlen;
    uint32_t flags;
    uint64_t cas;
    if (mc_gets(r, lk, lklen, &val, &vlen, &flags, &cas) != BK_OK)
        return;
    if (vlen == 32 && memcmp(val, token, 32) == 0)
        mc_store(r, OP_CAS, lk, lklen, "", 0, EXPIRE_NOW, 0, cas);
    free(val);
}

/* ------------------------------------------------------------------ the fetch */

/* Loads from the origin and stores the answer, guarded (add when cas is 0, else
 * cas): a write since our read wins. The value goes to the caller either way. */
static int load_and_fill(struct bk__remote *r, struct bk__remote_call *call, const char *key, const char *k,
                         size_t klen, uint64_t cas, void **value, size_t *len)
{
    atomic_fetch_add(&r->loads, 1);
    int64_t start = bk_clock_mono_ns(r->clock);
    int rc = call->loader(key, value, len, call->ctx);
    int64_t took = bk_clock_mono_ns(r->clock) - start;
    if (rc == BK_OK && *value == NULL && *len != 0)
        rc = BK_EINVAL; /* a loader bug: no bytes for a length */
    if (rc == BK_OK)
        write_entry(r, k, klen, *value, *len, call->ttl->fresh_ns, call->ttl->stale_ns, 0, took, true, cas);
    else if (rc == BK_ENOTFOUND && r->negative_ttl_ns > 0)
        write_entry(r, k, klen, NULL, 0, r->negative_ttl_ns, 0, F_NEGATIVE, took, true, cas);
    else if (rc == BK_ENOTFOUND && cas) /* gone, and not remembered as such: forget the old copy */
        write_entry(r, k, klen, NULL, 0, r->lease_ttl_ns, 0, F_TOMBSTONE, took, true, cas);
    if (rc != BK_OK) {
        free(*value);
        *value = NULL;
        *len = 0;
    }
    return rc;
}

/* Hands out the value of an entry read by mc_gets (header, value, NUL) in place. */
static void *take_value(char *buf, size_t blen, size_t *len)
{
    memmove(buf, buf + HDR, blen - HDR + 1);
    *len = blen - HDR;
    return buf;
}

/* What memcached holds for a key, judged now. */
enum state {
    S_UNAVAIL,  /* memcached could not be read */
    S_ABSENT,   /* nothing usable: absent, past its stale time, a tombstone, not ours */
    S_FRESH,    /* a fresh value */
    S_NOTFOUND, /* a fresh "not found" */
    S_STALE     /* a stale value, or a fresh one due for an early refresh */
};

struct reading {
    char *buf; /* S_FRESH, S_STALE: the entry as read (header, value, NUL) */
    size_t blen;
    uint64_t cas; /* of what is there, whatever it is; 0: nothing */
    bool fresh;
};

static enum state read_entry(struct bk__remote *r, const char *k, size_t klen, struct reading *e)
{
    uint32_t flags = 0;
    *e = (struct reading){0};
    int rc = mc_gets(r, k, klen, &e->buf, &e->blen, &flags, &e->cas);
    if (rc != BK_OK)
        return rc == BK_ENOTFOUND ? S_ABSENT : S_UNAVAIL;
    struct header h;
    int64_t now = bk_clock_wall_ns(r->clock);
    enum state st = S_ABSENT;
    if (decode(e->buf, e->blen, flags, &h) && !(h.flags & F_TOMBSTONE) && now < h.stale_until) {
        e->fresh = now < h.fresh_until; /* a "not found" has no stale time: always fresh here */
        if (h.flags & F_NEGATIVE)
            st = S_NOTFOUND;
        else
            st = e->fresh && !bk__cache_early(r->early, h.load_ns, now, h.fresh_until) ? S_FRESH : S_STALE;
    }
    if (st != S_FRESH && st != S_STALE) {
        free(e->buf);
        e->buf = NULL;
    }
    return st;
}

int bk__remote_peek(struct bk__remote *r, const char *key, void **value, size_t *len)
{
    char k[MAX_KEY + 1];
    size_t klen = make_key(r, 'v', key, k);
    struct reading e;
    enum state st = read_entry(r, k, klen, &e);
    if (st == S_FRESH || st == S_NOTFOUND) {
        atomic_fetch_add(&r->hits, 1);
        if (st == S_NOTFOUND)
            return BK_ENOTFOUND;
        *value = take_value(e.buf, e.blen, len);
        return BK_OK;
    }
    free(e.buf);
    return BK__CACHE_MISS; /* stale, absent, or memcached failing: the fill decides */
}

/* The lease is asked for before the entry is read: a holder that stored and
 * released just before is then seen, and never loaded for twice. */
int bk__remote_fill(const char *key, void **value, size_t *len, void *arg)
{
    struct bk__remote_call *call = arg;
    struct bk__remote *r = call->remote;
    char k[MAX_KEY + 1], lk[MAX_KEY + 1], token[33];
    size_t klen = make_key(r, 'v', key, k), lklen = make_key(r, 'l', key, lk);
    /* The wait for another holder's value is bounded by lease_wait_ns of the
     * cache's clock (its monotonic time), read, not summed from the naps. */
    int64_t start = bk_clock_mono_ns(r->clock), pause = 2 * BK_NSEC_PER_MSEC;
    bool counted = false; /* as a miss */
    bool waiting = false; /* counted as a lease wait */
    for (;;) {
        int64_t waited = bk_clock_mono_ns(r->clock) - start;
        enum lease l = waited >= r->lease_wait_ns ? LEASE_FAILED : lease_take(r, lk, lklen, token);
        struct reading e;
        enum state st = read_entry(r, k, klen, &e);
        if (st == S_FRESH || st == S_NOTFOUND) { /* stored by another: nothing to load */
            if (l == LEASE_GOT)
                lease_release(r, lk, lklen, token);
            if (!counted)
                atomic_fetch_add(&r->hits, 1);
            if (st == S_NOTFOUND)
                return BK_ENOTFOUND;
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        if (st == S_UNAVAIL) { /* memcached down: the origin answers, nothing is stored */
            if (l == LEASE_GOT)
                lease_release(r, lk, lklen, token);
            if (!counted)
                atomic_fetch_add(&r->misses, 1);
            atomic_fetch_add(&r->loads, 1);
            return call->loader(key, value, len, call->ctx);
        }
        if (st == S_STALE && l != LEASE_GOT) { /* another process refreshes it */
            atomic_fetch_add(e.fresh ? &r->hits : &r->stale_hits, 1);
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        if (st == S_ABSENT && !counted) {
            atomic_fetch_add(&r->misses, 1);
            counted = true;
        }
        if (l == LEASE_TAKEN) { /* wait for the holder's value */
            if (!waiting)
                atomic_fetch_add(&r->lease_waits, 1);
            waiting = true;
            int64_t left = r->lease_wait_ns - (bk_clock_mono_ns(r->clock) - start);
            if (left > 0) /* else the next round gives up the wait and loads */
                bk_clock_sleep_ns(r->clock, pause < left ? pause : left);
            pause = pause * 2 < 50 * BK_NSEC_PER_MSEC ? pause * 2 : 50 * BK_NSEC_PER_MSEC;
            continue;
        }
        /* The lease is ours, or none is to be had (memcached failing, or waited
         * long enough): load; the guarded store keeps a newer value safe. */
        int rc = load_and_fill(r, call, key, k, klen, e.cas, value, len);
        if (l == LEASE_GOT)
            lease_release(r, lk, lklen, token);
        if (rc != BK_OK && rc != BK_ENOTFOUND && st == S_STALE) { /* the origin failed: the copy we have */
            atomic_fetch_add(e.fresh ? &r->hits : &r->stale_hits, 1);
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        free(e.buf);
        return rc;
    }
}

/* ------------------------------------------------------------------ namespace generations */

int bk__remote_generation(struct bk__remote *r, const char *ns, char text[GEN_LEN + 1])
{
    char k[MAX_KEY + 1];
    size_t klen = make_key(r, 'g', ns, k);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *val;
        size_t vlen;
        uint32_t flags;
        uint64_t cas;
        int rc = mc_gets(r, k, klen, &val, &vlen, &flags, &cas);
        if (rc == BK_OK) {
            bool ok = vlen == GEN_LEN && strspn(val, "0123456789abcdef") == GEN_LEN;
            if (ok)
                memcpy(text, val, GEN_LEN + 1);
            free(val);
            if (ok)
                return BK_OK;
            rc = BK_ENOTFOUND; /* not ours: replace it */
        }
        if (rc != BK_ENOTFOUND)
            return rc;
        if ((rc = bk__cache_new_generation(text)) != BK_OK)
            return rc;
        rc = mc_store(r, OP_ADD, k, klen, text, GEN_LEN, 0, 0, 0);
        if (rc != BK_EEXIST)
            return rc; /* BK_OK: ours is the generation */
    }
    return BK_EUNAVAIL;
}

int bk__remote_set_generation(struct bk__remote *r, const char *ns, const char text[GEN_LEN + 1])
{
    char k[MAX_KEY + 1];
    size_t klen = make_key(r, 'g', ns, k);
    return mc_store(r, OP_SET, k, klen, text, GEN_LEN, 0, 0, 0);
}

/* ------------------------------------------------------------------ the rate-limit store */

/* A key's state is its TAT in decimal; its version is memcached's CAS value (never
 * 0 for a stored item). A new key is an add, a change a cas: of two processes
 * that read the same state only one stores, the other reloads, so no request is
 * admitted twice. */
static int rl_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    struct bk__remote *r = ud;
    char k[MAX_KEY + 1], *val, *end;
    size_t klen = make_key(r, 'r', key, k), vlen;
    uint32_t flags;
    int rc = mc_gets(r, k, klen, &val, &vlen, &flags, version);
    if (rc != BK_OK)
        return rc;
    long long v = strtoll(val, &end, 10);
    bool ok = vlen > 0 && end == val + vlen;
    free(val);
    *tat = ok ? (int64_t)v : 0; /* not a state of ours: as if idle, and the cas replaces it */
    return BK_OK;
}

static int rl_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    struct bk__remote *r = ud;
    char k[MAX_KEY + 1], text[24];
    size_t klen = make_key(r, 'r', key, k);
    int n = snprintf(text, sizeof text, "%lld", (long long)tat);
    int rc = mc_store(r, version ? OP_CAS : OP_ADD, k, klen, text, (size_t)n, expiry(ttl_ns), 0, version);
    return rc == BK_EEXIST ? BK_ECONFLICT : rc;
}

int bk__remote_ratelimit_store(struct bk__remote *r, bk_ratelimit_store_t *out)
{
    *out = (bk_ratelimit_store_t){.load = rl_load, .store = rl_store, .destroy = NULL, .ud = r};
    return BK_OK;
}
