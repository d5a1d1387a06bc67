/* The memcached cache against real memcached servers: the harness's (shared,
 * BK_TEST_MEMCACHED) and, for the outage test, one this test starts and kills.
 * Hit, miss and stale paths on the fake clock, leases (single-flight across
 * threads, cache instances and forked processes), the delete-vs-fill race,
 * negative caching, namespaces, a dead server, and a rate limit shared by two
 * processes. Each case uses its own key prefix, so cases never see each other's
 * keys. Both protocols where they differ (add and cas answers).
 * SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <libmemcached/memcached.h>

#include <backend/cache.h>

#include "check_main.h"
#include "gate.h"

#define SEC BK_NSEC_PER_SEC
#define MSEC BK_NSEC_PER_MSEC

static const bk_cache_ttl_t TTL = {10 * SEC, 60 * SEC};
static bk_clock_t *clk;
static char prefix[32];
static double early_refresh; /* XFetch in the caches opened next */

static const char *servers(void)
{
    const char *s = getenv("BK_TEST_MEMCACHED");
    ck_assert_msg(s && *s, "BK_TEST_MEMCACHED is not set: run under tests/harness/services.sh (make check)");
    return s;
}

static int64_t real_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void setup(void)
{
    ck_assert_int_eq(bk_clock_fake_new(real_wall_ns(), &clk), BK_OK);
    unsigned r;
    ck_assert_int_eq(bk_random_bytes(&r, sizeof r), BK_OK);
    snprintf(prefix, sizeof prefix, "t%08x/", r);
    gate_reset();
    early_refresh = 0;
}

static void teardown(void)
{
    gate_release();
    bk_clock_free(clk);
}

static bk_cache_t *open_cache_at(const char *where, bool binary, int64_t near_ttl)
{
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.clock = clk;
    o.early_refresh = early_refresh;
    o.ttl_jitter_pct = 0; /* exact expiry in these tests */
    o.negative_ttl_ns = 5 * SEC;
    bk_cache_memcached_opts_t m;
    bk_cache_memcached_opts_init(&m);
    m.prefix = prefix;
    m.binary_protocol = binary;
    m.near_ttl_ns = near_ttl;
    m.lease_wait_ns = 20 * SEC; /* generous: valgrind is slow, and the count must be exact */
    m.retry_timeout_ns = 0;     /* the breaker paces retries, on the fake clock */
    m.io_timeout_ns = 5 * SEC;  /* a loaded machine (sanitizers, valgrind, parallel
                                   suites) must not turn a slow answer into a second load */
    m.connect_timeout_ns = 5 * SEC;
    bk_cache_t *c = NULL;
    ck_assert_int_eq(bk_cache_memcached_new(where, &o, &m, &c, NULL), BK_OK);
    return c;
}

static bk_cache_t *open_cache(bool binary)
{
    return open_cache_at(servers(), binary, 0);
}

/* ------------------------------------------------------------------ the origin */

struct origin {
    atomic_int calls;
    int rc;              /* what a load answers */
    const char *value;   /* ... with this value */
    bool wait;           /* block on the gate while loading */
    int64_t sleep_ns;    /* a slow origin (for other processes to run into) */
    int64_t takes_ns;    /* how long a load takes, on the fake clock */
    void (*during)(void *); /* called inside the load: a concurrent write */
    void *during_arg;
};

static int load(const char *key, void **value, size_t *len, void *ctx)
{
    struct origin *o = ctx;
    (void)key;
    atomic_fetch_add(&o->calls, 1);
    if (o->wait)
        gate_pass();
    if (o->takes_ns)
        bk_clock_fake_advance(clk, o->takes_ns);
    if (o->sleep_ns) {
        struct timespec ts = {o->sleep_ns / SEC, o->sleep_ns % SEC};
        nanosleep(&ts, NULL);
    }
    const char *row = o->value; /* read the database ... */
    if (o->during)
        o->during(o->during_arg); /* ... while a writer changes it */
    if (o->rc != BK_OK)
        return o->rc;
    *len = strlen(row);
    *value = malloc(*len);
    memcpy(*value, row, *len);
    return BK_OK;
}

static void expect(bk_cache_t *c, const char *key, struct origin *o, int rc, const char *value)
{
    void *v = NULL;
    size_t n = 0;
    ck_assert_int_eq(bk_cache_fetch(c, key, &TTL, load, o, &v, &n), rc);
    if (value) {
        ck_assert_uint_eq(n, strlen(value));
        ck_assert_str_eq(v, value);
    } else {
        ck_assert_ptr_null(v);
    }
    free(v);
}

/* Raw libmemcached, to look at and tamper with what the cache stored. */
static memcached_st *raw(const char *where)
{
    char cfg[300];
    snprintf(cfg, sizeof cfg, "--SERVER=%s --TCP-NODELAY", where);
    memcached_st *m = memcached(cfg, strlen(cfg));
    ck_assert_ptr_nonnull(m);
    return m;
}

static void raw_key(char *out, size_t size, char kind, const char *key)
{
    snprintf(out, size, "%s%c:%s", prefix, kind, key);
}

/* ------------------------------------------------------------------ cases */

START_TEST(hit_miss_stale_and_gone)
{
    bool binary = _i;
    bk_cache_t *c = open_cache(binary);
    struct origin o = {.value = "v1"};
    expect(c, "k", &o, BK_OK, "v1"); /* miss: loads */
    expect(c, "k", &o, BK_OK, "v1"); /* hit */
    ck_assert_int_eq(atomic_load(&o.calls), 1);

    /* Stale while another process holds the lease: served the stale copy. */
    bk_clock_fake_advance(clk, 11 * SEC);
    memcached_st *m = raw(servers());
    char lk[128];
    raw_key(lk, sizeof lk, 'l', "k");
    ck_assert_int_eq(memcached_add(m, lk, strlen(lk), "someone", 7, 30, 0), MEMCACHED_SUCCESS);
    o.value = "v2";
    expect(c, "k", &o, BK_OK, "v1");
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    /* Their lease is theirs: nothing of ours released it. */
    size_t n;
    uint32_t fl;
    memcached_return_t mrc;
    char *held = memcached_get(m, lk, strlen(lk), &n, &fl, &mrc);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(memcmp(held, "someone", 7), 0);
    free(held);
    ck_assert_int_eq(memcached_delete(m, lk, strlen(lk), 0), MEMCACHED_SUCCESS);

    /* Stale and no lease held: this caller refreshes, and releases its lease. */
    expect(c, "k", &o, BK_OK, "v2");
    ck_assert_int_eq(atomic_load(&o.calls), 2);
    ck_assert_ptr_null(memcached_get(m, lk, strlen(lk), &n, &fl, &mrc));
    expect(c, "k", &o, BK_OK, "v2"); /* fresh again */

    /* Past the stale time: gone, loads. */
    bk_clock_fake_advance(clk, 71 * SEC);
    o.value = "v3";
    expect(c, "k", &o, BK_OK, "v3");
    ck_assert_int_eq(atomic_load(&o.calls), 3);

    /* The origin failing on a stale refresh: the stale copy, and the error is not stored. */
    bk_clock_fake_advance(clk, 11 * SEC);
    o.rc = BK_EIO;
    expect(c, "k", &o, BK_OK, "v3");
    ck_assert_int_eq(atomic_load(&o.calls), 4);

    bk_cache_stats_t st;
    bk_cache_stats(c, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.stale_hits, 2); /* served stale: the lease was taken, the origin failed */
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.loads, 4);
    ck_assert_uint_eq(st.remote_errors, 0);
    memcached_free(m);
    bk_cache_free(c);
}
END_TEST

START_TEST(early_refresh_as_expiry_nears)
{
    /* XFetch, with the load time kept in the entry: a load that took 20 s, 1 ms
     * before the fresh time ends, is due early with probability ~0.99995. */
    early_refresh = 1.0;
    bk_cache_t *c = open_cache(_i);
    struct origin o = {.value = "v1", .takes_ns = 20 * SEC};
    expect(c, "k", &o, BK_OK, "v1");
    bk_clock_fake_advance(clk, 10 * SEC - MSEC);
    o.value = "v2";
    expect(c, "k", &o, BK_OK, "v2");
    ck_assert_int_eq(atomic_load(&o.calls), 2);
    bk_cache_free(c);
}
END_TEST

START_TEST(negative_caching_and_errors)
{
    bk_cache_t *c = open_cache(_i);
    struct origin o = {.rc = BK_ENOTFOUND};
    expect(c, "absent", &o, BK_ENOTFOUND, NULL);
    expect(c, "absent", &o, BK_ENOTFOUND, NULL); /* remembered */
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    bk_clock_fake_advance(clk, 6 * SEC); /* negative_ttl_ns is 5 s */
    o.rc = BK_OK;
    o.value = "now here";
    expect(c, "absent", &o, BK_OK, "now here");
    ck_assert_int_eq(atomic_load(&o.calls), 2);

    struct origin bad = {.rc = BK_EIO};
    expect(c, "failing", &bad, BK_EIO, NULL);
    expect(c, "failing", &bad, BK_EIO, NULL); /* errors are not remembered */
    ck_assert_int_eq(atomic_load(&bad.calls), 2);
    bk_cache_free(c);
}
END_TEST

START_TEST(set_delete_and_odd_keys)
{
    bk_cache_t *c = open_cache(_i);
    struct origin o = {.value = "from origin"};
    ck_assert_int_eq(bk_cache_set(c, "w", "written", 7, &TTL), BK_OK);
    expect(c, "w", &o, BK_OK, "written"); /* write-through: no load */
    ck_assert_int_eq(bk_cache_delete(c, "w"), BK_OK);
    expect(c, "w", &o, BK_OK, "from origin"); /* the tombstone is a miss */
    expect(c, "w", &o, BK_OK, "from origin");
    ck_assert_int_eq(atomic_load(&o.calls), 1);

    /* Keys memcached cannot take as they are: spaces, control bytes, UTF-8, 1000 bytes. */
    char longkey[1001];
    memset(longkey, 'x', 1000);
    longkey[1000] = '\0';
    const char *odd[] = {"with space", "tab\there", "caf\xc3\xa9", longkey};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        struct origin p = {.value = odd[i]};
        expect(c, odd[i], &p, BK_OK, odd[i]);
        expect(c, odd[i], &p, BK_OK, odd[i]);
        ck_assert_int_eq(atomic_load(&p.calls), 1);
    }
    /* Binary values with NULs survive. */
    ck_assert_int_eq(bk_cache_set(c, "bin", "a\0b\0", 4, &TTL), BK_OK);
    void *v;
    size_t n;
    ck_assert_int_eq(bk_cache_fetch(c, "bin", &TTL, load, &o, &v, &n), BK_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(v, "a\0b\0", 5), 0); /* and a NUL after them */
    free(v);
    /* Too big for memcached's 1 MiB items: refused, the fetch still works. */
    size_t big = 2u << 20;
    char *huge = calloc(1, big);
    ck_assert_int_eq(bk_cache_set(c, "huge", huge, big, &TTL), BK_ERANGE);
    free(huge);
    bk_cache_stats_t st;
    bk_cache_stats(c, &st);
    ck_assert_uint_eq(st.remote_errors, 0);
    bk_cache_free(c);
}
END_TEST

/* The race: a load reads the database, a writer changes the row and deletes the
 * key, then the load would store the old row. It must not. */
struct writer {
    bk_cache_t *cache;
    struct origin *origin;
};

static void write_row(void *arg)
{
    struct writer *w = arg;
    w->origin->value = "new row";      /* the database changes ... */
    ck_assert_int_eq(bk_cache_delete(w->cache, "row"), BK_OK); /* ... and the key is deleted */
}

START_TEST(delete_during_load_is_not_undone)
{
    bk_cache_t *reader = open_cache(_i), *writer_cache = open_cache(_i);
    struct origin o = {.value = "old row"};
    struct writer w = {writer_cache, &o};
    /* Cold key: the load reads "old row", then the write happens. */
    o.during = write_row;
    o.during_arg = &w;
    expect(reader, "row", &o, BK_OK, "old row");
    o.during = NULL;
    expect(reader, "row", &o, BK_OK, "new row"); /* the old row was not stored */
    ck_assert_int_eq(atomic_load(&o.calls), 2);

    /* The same when a stale entry is being refreshed (a cas, not an add). */
    o.value = "old row 2";
    ck_assert_int_eq(bk_cache_set(reader, "row", "older", 5, &TTL), BK_OK);
    bk_clock_fake_advance(clk, 11 * SEC);
    o.during = write_row;
    expect(reader, "row", &o, BK_OK, "old row 2");
    o.during = NULL;
    expect(reader, "row", &o, BK_OK, "new row");
    ck_assert_int_eq(atomic_load(&o.calls), 4);
    bk_cache_free(reader);
    bk_cache_free(writer_cache);
}
END_TEST

/* ---- single-flight: threads and cache instances in one process */

static atomic_int started;

struct fetcher {
    bk_cache_t *cache;
    struct origin *o;
    int rc;
    char value[16];
};

static void *fetch_thread(void *arg)
{
    struct fetcher *f = arg;
    void *v = NULL;
    atomic_fetch_add(&started, 1);
    f->rc = bk_cache_fetch(f->cache, "cold", &TTL, load, f->o, &v, NULL);
    if (v)
        snprintf(f->value, sizeof f->value, "%s", (char *)v);
    free(v);
    return NULL;
}

START_TEST(single_flight_64_threads_two_instances)
{
    /* Two cache instances in one process share nothing but memcached: within an
     * instance the threads single-flight, across them the lease decides. The
     * waiters wait real time for the gated load: on the system clock (on the fake
     * one, each lease-wait nap would advance it, bk_clock(3)). */
    bk_clock_t *fake = clk;
    clk = NULL;
    bk_cache_t *a = open_cache(false), *b = open_cache(false);
    clk = fake;
    struct origin o = {.value = "loaded once", .wait = true};
    enum { N = 64 };
    pthread_t t[N];
    struct fetcher f[N];
    atomic_store(&started, 0);
    for (int i = 0; i < N; i++) {
        f[i] = (struct fetcher){.cache = i % 2 ? a : b, .o = &o};
        ck_assert_int_eq(pthread_create(&t[i], NULL, fetch_thread, &f[i]), 0);
    }
    gate_wait_for(1); /* the one load is in flight */
    while (atomic_load(&started) < N)
        sched_yield();
    gate_release();
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(f[i].rc, BK_OK);
        ck_assert_str_eq(f[i].value, "loaded once");
    }
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    bk_cache_stats_t sa, sb;
    bk_cache_stats(a, &sa);
    bk_cache_stats(b, &sb);
    ck_assert_uint_eq(sa.loads + sb.loads, 1);
    /* Every miss but the loader's was answered by its load: in-process waits in
     * one instance, lease waits (and their in-process waiters) in the other. */
    ck_assert_uint_eq(sa.coalesced + sb.coalesced, sa.misses + sb.misses - 1);
    bk_cache_free(a);
    bk_cache_free(b);
}
END_TEST

START_TEST(lease_wait_bounded_by_the_fake_clock)
{
    /* A holds the lease, its load stopped at the gate; B waits lease_wait_ns
     * (20 s) of the fake clock, which its naps advance, then loads itself: in no
     * real time, and the clock moved by the whole wait. */
    bk_cache_t *a = open_cache(false), *b = open_cache(false);
    struct origin held = {.value = "from a", .wait = true};
    struct fetcher fa = {.cache = a, .o = &held};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fetch_thread, &fa), 0);
    gate_wait_for(1); /* a's load is in flight, the lease is a's */
    int64_t t0 = bk_clock_mono_ns(clk), w0 = bk_clock_wall_ns(clk);
    struct origin own = {.value = "from b"};
    void *v = NULL;
    ck_assert_int_eq(bk_cache_fetch(b, "cold", &TTL, load, &own, &v, NULL), BK_OK);
    ck_assert_str_eq(v, "from b");
    free(v);
    ck_assert_int_eq(atomic_load(&own.calls), 1);
    ck_assert_int_ge(bk_clock_mono_ns(clk) - t0, 20 * SEC);
    ck_assert_int_eq(bk_clock_wall_ns(clk) - w0, bk_clock_mono_ns(clk) - t0);
    bk_cache_stats_t sb;
    bk_cache_stats(b, &sb);
    ck_assert_uint_eq(sb.lease_waits, 1);
    ck_assert_uint_eq(sb.coalesced, 0); /* it waited, then loaded by itself */
    gate_release();
    pthread_join(t, NULL);
    ck_assert_int_eq(fa.rc, BK_OK);
    bk_cache_free(a);
    bk_cache_free(b);
}
END_TEST

/* ---- two processes */

/* Forks a child that runs fn(arg) and exits with its return value. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fn(arg));
    return pid;
}

static int reap(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died");
    return WEXITSTATUS(status);
}

struct shared {
    atomic_int loads, ready, go;
    atomic_int allowed, denied, errors;
};

static struct shared *shared_new(void)
{
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(s, MAP_FAILED);
    memset(s, 0, sizeof *s);
    return s;
}

static void start_together(struct shared *s, int parties)
{
    atomic_fetch_add(&s->ready, 1);
    while (atomic_load(&s->ready) < parties)
        sched_yield();
}

static int counting_load(const char *key, void **value, size_t *len, void *ctx)
{
    struct shared *s = ctx;
    (void)key;
    atomic_fetch_add(&s->loads, 1);
    struct timespec ts = {0, 100 * MSEC}; /* a slow origin, for the other process to run into */
    nanosleep(&ts, NULL);
    *value = strdup("shared");
    *len = 6;
    return BK_OK;
}

struct proc_arg {
    struct shared *s;
    bool binary;
};

static int counting_load_shared(const char *key, void **value, size_t *len, void *ctx)
{
    return counting_load(key, value, len, ctx);
}

struct thread_arg {
    bk_cache_t *c;
    struct shared *s;
};

static void *process_fetch_thread_shared(void *arg)
{
    struct thread_arg *t = arg;
    void *v = NULL;
    if (bk_cache_fetch(t->c, "cold", &TTL, counting_load_shared, t->s, &v, NULL) != BK_OK ||
        strcmp(v, "shared") != 0)
        atomic_fetch_add(&t->s->errors, 1);
    free(v);
    return NULL;
}

static int fetching_process_shared(void *arg)
{
    struct proc_arg *p = arg;
    /* The waiters wait for another process's real 100 ms load, so this child runs
     * on the system clock: on the fake one, each lease-wait nap advances the clock
     * (bk_clock_sleep_ns), and 31 waiters would use up lease_wait_ns of fake time
     * long before the load is done. The child frees its copy of the fake clock
     * (the parent's own is freed by teardown). */
    bk_clock_free(clk);
    clk = NULL;
    bk_cache_t *c = open_cache(p->binary);
    start_together(p->s, 2);
    enum { N = 16 };
    pthread_t t[N];
    struct thread_arg ta = {c, p->s};
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, process_fetch_thread_shared, &ta);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    bk_cache_free(c);
    return 0;
}

START_TEST(single_flight_across_processes)
{
    struct shared *s = shared_new();
    struct proc_arg p = {s, _i};
    pid_t a = spawn(fetching_process_shared, &p), b = spawn(fetching_process_shared, &p);
    ck_assert_int_eq(reap(a), 0);
    ck_assert_int_eq(reap(b), 0);
    ck_assert_int_eq(atomic_load(&s->errors), 0);
    ck_assert_int_eq(atomic_load(&s->loads), 1); /* 32 fetches, two processes, one load */
    munmap(s, sizeof *s);
}
END_TEST

START_TEST(rate_limit_shared_by_two_processes)
{
    struct shared *s = shared_new();
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            bk_cache_t *c = open_cache(i == 1); /* one process on each protocol */
            bk_ratelimit_store_t store;
            if (bk_cache_ratelimit_store(c, &store) != BK_OK)
                _exit(2);
            bk_ratelimit_opts_t ro;
            bk_ratelimit_opts_init(&ro);
            ro.period_ns = 60 * SEC;
            ro.burst = 10;
            ro.clock = clk; /* both at the same wall time: no refill during the test */
            bk_ratelimit_t *rl;
            if (bk_ratelimit_new(10, &store, &ro, &rl) != BK_OK)
                _exit(3);
            start_together(s, 2);
            for (int n = 0; n < 50; n++) {
                bk_ratelimit_result_t res;
                int rc = bk_ratelimit_check(rl, "client-1", 0, &res);
                if (rc != BK_OK) {
                    fprintf(stderr, "ratelimit check: %s\n", bk_err_name(rc));
                    atomic_fetch_add(&s->errors, 1);
                }
                else
                    atomic_fetch_add(res.allowed ? &s->allowed : &s->denied, 1);
            }
            bk_ratelimit_free(rl);
            bk_cache_free(c);
            _exit(0);
        }
        pids[i] = pid;
    }
    ck_assert_int_eq(reap(pids[0]), 0);
    ck_assert_int_eq(reap(pids[1]), 0);
    ck_assert_int_eq(atomic_load(&s->errors), 0);
    ck_assert_int_eq(atomic_load(&s->allowed), 10); /* exactly the limit, across both */
    ck_assert_int_eq(atomic_load(&s->denied), 90);
    munmap(s, sizeof *s);
}
END_TEST

START_TEST(rate_limit_store_takes_over_foreign_data)
{
    bk_cache_t *c = open_cache(_i);
    memcached_st *m = raw(servers());
    char k[128];
    raw_key(k, sizeof k, 'r', "client-2");
    ck_assert_int_eq(memcached_set(m, k, strlen(k), "garbage", 7, 60, 0), MEMCACHED_SUCCESS);
    bk_ratelimit_store_t store;
    ck_assert_int_eq(bk_cache_ratelimit_store(c, &store), BK_OK);
    bk_ratelimit_opts_t ro;
    bk_ratelimit_opts_init(&ro);
    ro.period_ns = 60 * SEC;
    ro.burst = 1;
    ro.clock = clk;
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &store, &ro, &rl), BK_OK);
    bk_ratelimit_result_t res;
    ck_assert_int_eq(bk_ratelimit_check(rl, "client-2", 0, &res), BK_OK);
    ck_assert(res.allowed);
    ck_assert_int_eq(bk_ratelimit_check(rl, "client-2", 0, &res), BK_OK);
    ck_assert(!res.allowed);
    bk_ratelimit_free(rl);
    memcached_free(m);
    bk_cache_free(c);
}
END_TEST

START_TEST(namespace_invalidation)
{
    bk_cache_t *a = open_cache(_i), *b = open_cache(_i);
    struct origin o = {.value = "v1"};
    char k1[256], k2[256];
    ck_assert_int_eq(bk_cache_ns_key(a, "users", "42", k1, sizeof k1), BK_OK);
    ck_assert_int_eq(bk_cache_ns_key(b, "users", "42", k2, sizeof k2), BK_OK);
    ck_assert_str_eq(k1, k2); /* one generation, shared */
    ck_assert_int_eq(strncmp(k1, "users@", 6), 0);
    expect(a, k1, &o, BK_OK, "v1");
    expect(b, k2, &o, BK_OK, "v1");
    ck_assert_int_eq(atomic_load(&o.calls), 1);

    ck_assert_int_eq(bk_cache_ns_invalidate(b, "users"), BK_OK);
    ck_assert_int_eq(bk_cache_ns_key(a, "users", "42", k2, sizeof k2), BK_OK);
    ck_assert_str_ne(k1, k2);
    o.value = "v2";
    expect(a, k2, &o, BK_OK, "v2"); /* the whole namespace reloads */
    ck_assert_int_eq(atomic_load(&o.calls), 2);

    /* Other namespaces are untouched; a small buffer is refused. */
    char other[256], tiny[8];
    ck_assert_int_eq(bk_cache_ns_key(a, "orders", "42", other, sizeof other), BK_OK);
    ck_assert_str_ne(other, k2);
    ck_assert_int_eq(bk_cache_ns_key(a, "users", "42", tiny, sizeof tiny), BK_ERANGE);
    ck_assert_int_eq(bk_cache_ns_key(a, "bad@ns", "42", other, sizeof other), BK_EINVAL);
    bk_cache_free(a);
    bk_cache_free(b);
}
END_TEST

START_TEST(near_cache_in_front)
{
    bk_cache_t *c = open_cache_at(servers(), false, 2 * SEC);
    struct origin o = {.value = "v1"};
    expect(c, "n", &o, BK_OK, "v1");
    /* Another process changes memcached: the near copy is served until its TTL. */
    bk_cache_t *other = open_cache(false);
    ck_assert_int_eq(bk_cache_set(other, "n", "v2", 2, &TTL), BK_OK);
    expect(c, "n", &o, BK_OK, "v1");
    bk_clock_fake_advance(clk, 3 * SEC);
    expect(c, "n", &o, BK_OK, "v2");
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    /* A write through this instance is seen at once. */
    ck_assert_int_eq(bk_cache_set(c, "n", "v3", 2, &TTL), BK_OK);
    expect(c, "n", &o, BK_OK, "v3");
    bk_cache_stats_t st;
    bk_cache_stats(c, &st);
    ck_assert_uint_ge(st.entries, 1);
    bk_cache_free(other);
    bk_cache_free(c);
}
END_TEST

/* A peek reads the near cache alone: never memcached, never the origin. */
START_TEST(peek_reads_the_near_cache_only)
{
    bk_cache_t *c = open_cache_at(servers(), false, 2 * SEC);
    bk_cache_t *plain = open_cache(false); /* no near cache */
    void *v = NULL;
    size_t n = 0;
    ck_assert_int_eq(bk_cache_set(plain, "p", "v1", 2, &TTL), BK_OK);
    /* In memcached, not yet in c's near cache, and never in plain's. */
    ck_assert_int_eq(bk_cache_peek(c, "p", &v, &n), BK_EUNAVAIL);
    ck_assert_int_eq(bk_cache_peek(plain, "p", &v, &n), BK_EUNAVAIL);
    struct origin o = {.value = "origin"};
    expect(c, "p", &o, BK_OK, "v1"); /* the fetch fills the near cache */
    ck_assert_int_eq(bk_cache_peek(c, "p", &v, &n), BK_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v, "v1");
    free(v);
    expect(plain, "p", &o, BK_OK, "v1");
    ck_assert_int_eq(bk_cache_peek(plain, "p", &v, &n), BK_EUNAVAIL);
    ck_assert_ptr_null(v);
    /* A delete through c empties its near copy at once; its TTL ends another's. */
    ck_assert_int_eq(bk_cache_delete(c, "p"), BK_OK);
    ck_assert_int_eq(bk_cache_peek(c, "p", &v, &n), BK_EUNAVAIL);
    ck_assert_int_eq(bk_cache_set(plain, "p", "v2", 2, &TTL), BK_OK);
    expect(c, "p", &o, BK_OK, "v2");
    bk_clock_fake_advance(clk, 3 * SEC);
    ck_assert_int_eq(bk_cache_peek(c, "p", &v, &n), BK_EUNAVAIL);
    ck_assert_int_eq(atomic_load(&o.calls), 0);
    bk_cache_free(plain);
    bk_cache_free(c);
}
END_TEST

/* ---- a memcached of our own, killed and restarted */

static pid_t mc_pid = -1; /* ours, killed at exit even when a case fails */

static void mc_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (pid == mc_pid)
        mc_pid = -1;
}

static void mc_cleanup(void)
{
    if (mc_pid > 0)
        mc_kill(mc_pid);
}

static pid_t mc_start(int port)
{
    static bool registered;
    if (!registered)
        registered = atexit(mc_cleanup) == 0;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR); /* not the test's stdout: make would wait for it */
        dup2(null, 1);
        dup2(null, 2);
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        if (getuid() == 0)
            execlp("memcached", "memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", p, "-U", "0", "-m", "16",
                   (char *)NULL);
        else
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", p, "-U", "0", "-m", "16", (char *)NULL);
        _exit(127);
    }
    mc_pid = pid;
    /* Wait until it accepts connections (a server starting, not a TTL). */
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return pid;
        ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0); /* still running */
        struct timespec ts = {0, 10 * MSEC};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("memcached did not start on port %d", port);
    return -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(memcached_killed_and_back)
{
    int port = free_port();
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    pid_t mc = mc_start(port);
    bk_cache_t *c = open_cache_at(where, _i, 0);
    struct origin o = {.value = "v"};
    expect(c, "k", &o, BK_OK, "v");
    expect(c, "k", &o, BK_OK, "v");
    ck_assert_int_eq(atomic_load(&o.calls), 1);

    mc_kill(mc);
    /* Every read is still answered, by the origin; writes are dropped. */
    for (int i = 0; i < 50; i++)
        expect(c, "k", &o, BK_OK, "v");
    ck_assert_int_eq(atomic_load(&o.calls), 51);
    ck_assert_int_eq(bk_cache_set(c, "k", "x", 1, &TTL), BK_EUNAVAIL);
    char key[256];
    ck_assert_int_eq(bk_cache_ns_key(c, "ns", "k", key, sizeof key), BK_OK); /* a one-off generation */
    bk_cache_stats_t st;
    bk_cache_stats(c, &st);
    ck_assert_uint_ge(st.remote_errors, 50);
    /* The breaker opened: a read now costs no memcached call at all. */
    int64_t t0 = real_wall_ns();
    for (int i = 0; i < 1000; i++)
        expect(c, "k", &o, BK_OK, "v");
    int64_t per_read = (real_wall_ns() - t0) / 1000;
    ck_assert_msg(per_read < 5 * MSEC, "a read with memcached down took %lld ns", (long long)per_read);

    /* Back. libmemcached keeps a failed server disabled for whole seconds of real
     * time (its own timer, which no clock of ours drives), so poll: each round
     * moves the breaker's fake clock past its open wait and reads twice, until
     * the first read stores again and the second is a hit. */
    mc = mc_start(port);
    bool back = false;
    for (int round = 0; round < 100 && !back; round++) {
        bk_clock_fake_advance(clk, 2 * SEC);
        int calls = atomic_load(&o.calls);
        expect(c, "k", &o, BK_OK, "v");
        expect(c, "k", &o, BK_OK, "v");
        back = atomic_load(&o.calls) == calls + 1;
        if (!back) {
            struct timespec ts = {0, 50 * MSEC};
            nanosleep(&ts, NULL);
        }
    }
    ck_assert_msg(back, "values were not cached again after memcached came back");
    bk_cache_free(c);
    mc_kill(mc);
}
END_TEST

START_TEST(one_dead_server_of_two)
{
    /* Keys spread over a live server and a dead one: each server has its own
     * breaker, so the dead one's keys go to the loader and the live one's stay
     * cached, however long the dead one stays dead. */
    char where[128];
    snprintf(where, sizeof where, "%s,127.0.0.1:%d", servers(), free_port());
    bk_cache_t *c = open_cache_at(where, false, 0);
    enum { KEYS = 20, ROUNDS = 30 };
    struct origin o[KEYS];
    char key[KEYS][16];
    for (int i = 0; i < KEYS; i++) {
        o[i] = (struct origin){.value = "v"};
        snprintf(key[i], sizeof key[i], "spread-%d", i);
        expect(c, key[i], &o[i], BK_OK, "v");
    }
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < KEYS; i++)
            expect(c, key[i], &o[i], BK_OK, "v"); /* never an error to the caller */
    int cached = 0, dead = 0;
    for (int i = 0; i < KEYS; i++) {
        int calls = atomic_load(&o[i].calls);
        if (calls == 1)
            cached++; /* on the live server: loaded once, then hits */
        else if (calls == ROUNDS + 1)
            dead++;   /* on the dead server: loaded every time */
        else
            ck_abort_msg("key %s loaded %d times", key[i], calls);
    }
    ck_assert_int_gt(cached, 0); /* 20 keys on one server: 2^-19 */
    ck_assert_int_gt(dead, 0);
    ck_assert_int_eq(cached + dead, KEYS);
    /* The breakers, in the order of the list: the live server's closed, the
     * dead one's not. */
    ck_assert_int_eq(bk_breaker_state(bk_cache_breaker(c, 0)), BK_BREAKER_CLOSED);
    ck_assert_int_ne(bk_breaker_state(bk_cache_breaker(c, 1)), BK_BREAKER_CLOSED);
    ck_assert_ptr_null(bk_cache_breaker(c, 2));
    ck_assert_ptr_null(bk_cache_breaker(NULL, 0));
    bk_cache_free(c);
    ck_assert_int_eq(bk_cache_memory_new(NULL, &c), BK_OK);
    ck_assert_ptr_null(bk_cache_breaker(c, 0)); /* in process: no server, no breaker */
    bk_cache_free(c);
}
END_TEST

START_TEST(unreachable_from_the_start)
{
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", free_port());
    bk_cache_t *c = open_cache_at(where, false, 0);
    struct origin o = {.value = "v"};
    for (int i = 0; i < 10; i++)
        expect(c, "k", &o, BK_OK, "v");
    ck_assert_int_eq(atomic_load(&o.calls), 10);
    ck_assert_int_eq(bk_cache_delete(c, "k"), BK_EUNAVAIL);
    bk_cache_free(c);
}
END_TEST

START_TEST(bad_options)
{
    bk_cache_memcached_opts_t m;
    bk_cache_t *c = (bk_cache_t *)&m;
    bk_cache_memcached_opts_init(&m);
    bk_error_t err;
    ck_assert_int_eq(bk_cache_memcached_new(NULL, NULL, &m, &c, &err), BK_EINVAL); /* no servers */
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_str_eq(err.message, "the memcached server list is empty");
    const char *bad[] = {"", "host:0", "host:70000", "host:12x", "[::1", "a,,b", ":11211", "::1", "[::1]x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(bk_cache_memcached_new(bad[i], NULL, &m, &c, &err) == BK_EINVAL, "%s accepted",
                      bad[i]);
        ck_assert_int_eq(err.code, BK_EINVAL);
        ck_assert_msg(err.message[0] != '\0', "%s: no message", bad[i]);
    }
    /* Which entry, and why. */
    ck_assert_int_eq(bk_cache_memcached_new("127.0.0.1:11211,cache-2:70000", NULL, NULL, &c, &err),
                     BK_EINVAL);
    ck_assert_str_eq(err.message, "memcached server list, entry 2 (\"cache-2:70000\"): the port is not a "
                                  "number from 1 to 65535");
    ck_assert_str_eq(err.detail, "cache-2:70000");
    ck_assert_int_eq(bk_cache_memcached_new("a,,b", NULL, NULL, &c, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "memcached server list, entry 2 (\"\"): empty");
    ck_assert_int_eq(bk_cache_memcached_new("::1", NULL, NULL, &c, &err), BK_EINVAL);
    ck_assert_str_eq(err.message,
                     "memcached server list, entry 1 (\"::1\"): an IPv6 address needs brackets: [::1]:11211");
    ck_assert_int_eq(bk_cache_memcached_new("127.0.0.1:11211,[::1]:11211,localhost", NULL, &m, &c, &err),
                     BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    bk_cache_free(c);
    /* NULL options: the defaults. */
    ck_assert_int_eq(bk_cache_memcached_new("127.0.0.1:11211", NULL, NULL, &c, NULL), BK_OK);
    bk_cache_free(c);
    m.prefix = "has space";
    ck_assert_int_eq(bk_cache_memcached_new("localhost", NULL, &m, &c, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "memcached option prefix out of range");
    m.prefix = "";
    m.pool_size = 0;
    ck_assert_int_eq(bk_cache_memcached_new("localhost", NULL, &m, &c, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "memcached option pool_size out of range");
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.max_bytes = 1;
    ck_assert_int_eq(bk_cache_memcached_new("localhost", &o, NULL, &c, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "cache option max_bytes out of range");

    memset(&m, 0x5a, sizeof m);
    bk_cache_memcached_opts_init(&m);
    ck_assert_str_eq(m.prefix, "");
    ck_assert(!m.binary_protocol);
    ck_assert_uint_eq(m.pool_size, 8);
    ck_assert_int_eq(m.pool_wait_ns, 100 * MSEC);
    ck_assert_int_eq(m.near_ttl_ns, 0);
    ck_assert_int_eq(m.lease_ttl_ns, 10 * SEC);
    ck_assert_ptr_null(m.breaker);
    ck_assert_ptr_null(m.metrics);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(m.reserved_[i], 0);
    bk_cache_t *mem;
    ck_assert_int_eq(bk_cache_memory_new(NULL, &mem), BK_OK);
    bk_ratelimit_store_t store;
    ck_assert_int_eq(bk_cache_ratelimit_store(mem, &store), BK_EINVAL); /* memcached only */
    bk_cache_free(mem);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cache_memcached");
    TCase *tc = tcase_create("memcached");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, hit_miss_stale_and_gone, 0, 2); /* text, then binary protocol */
    tcase_add_loop_test(tc, negative_caching_and_errors, 0, 2);
    tcase_add_loop_test(tc, early_refresh_as_expiry_nears, 0, 2);
    tcase_add_loop_test(tc, set_delete_and_odd_keys, 0, 2);
    tcase_add_loop_test(tc, delete_during_load_is_not_undone, 0, 2);
    tcase_add_test(tc, single_flight_64_threads_two_instances);
    tcase_add_test(tc, lease_wait_bounded_by_the_fake_clock);
    tcase_add_loop_test(tc, single_flight_across_processes, 0, 2);
    tcase_add_test(tc, rate_limit_shared_by_two_processes);
    tcase_add_loop_test(tc, rate_limit_store_takes_over_foreign_data, 0, 2);
    tcase_add_loop_test(tc, namespace_invalidation, 0, 2);
    tcase_add_test(tc, near_cache_in_front);
    tcase_add_test(tc, peek_reads_the_near_cache_only);
    tcase_add_loop_test(tc, memcached_killed_and_back, 0, 2);
    tcase_add_test(tc, one_dead_server_of_two);
    tcase_add_test(tc, unreachable_from_the_start);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(suite());
}
