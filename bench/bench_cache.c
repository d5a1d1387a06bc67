/* Benchmark of the cache (bk_cache_fetch), beside what an application would
 * write without it, in the same run. Why: a cache earns its place by costing
 * next to nothing on a hit (the common case) and by sparing the origin when a
 * hot key is cold (the case it exists for).
 *
 *   cache_hit_memcached: a hit on a memcached cache (no near cache, ttl_jitter_pct
 *         0, fresh 3600 s), 2 threads fetching one key holding 100 bytes, set once.
 *         ours: bk_cache_fetch, the copy checked and freed;
 *         base: memcached_get of a key of its own holding the same 100 bytes, each
 *         thread on its own memcached_st with the library's behaviours (TCP_NODELAY,
 *         SUPPORT_CAS, NO_BLOCK, ketama, text protocol, same timeouts).
 *         This is the price of the cache's hit path: one gets plus the entry
 *         header, the breaker, the connection pool and the copy (a hit takes no
 *         single-flight; the bench prints how many fetches shared a read, which
 *         should be none).
 *   cache_hit_memory: a hit on an in-process cache (bk_cache_memory_new), 2
 *         threads, a random key of NKEYS per fetch, each holding 100 bytes.
 *         base: the naive cache: one hash table (FNV-1a, chained, strcmp) behind
 *         one pthread mutex, the value copied with malloc + memcpy (no TTL, no LRU).
 *   stampede_loads, stampede_p99: STAMPEDE requests (threads started and released
 *         together by a barrier) for one cold key whose origin load takes 50 ms.
 *         ours: bk_cache_fetch on a memcached cache (a fresh random prefix per
 *         round, so every round starts cold);
 *         base: naive cache-aside: memcached_get, on a miss the load, then
 *         memcached_set (a fresh key per round; one memcached_st per thread,
 *         connected before the round).
 *         Figures: the origin's loads in the round, and the 99th percentile of the
 *         requests' latencies (from the barrier's release to the answer).
 *
 * Hit rates are hits per second over all threads during a round of at least
 * ROUND_SECONDS (wall time from the first thread's start to the last one's end;
 * the clock read every 16 hits).
 * Rounds of base and ours alternate (their order flips every round), ROUNDS times;
 * the best round of each counts (the highest rate; the fewest loads, the lowest
 * p99). Every answer is checked (the 100 bytes, no origin load on a hit): a wrong
 * one fails the bench.
 *
 * The server: BK_TEST_MEMCACHED ("host:port"), which tests/harness/services.sh
 * exports (`make bench` runs this program under it). Not set: the bench says so
 * and fails.
 *
 *   BENCH cache_hit_memcached ours=<hits/s> base=<hits/s> unit=hits/s ratio=<ours/base>
 *   BENCH cache_hit_memory ours=<hits/s> base=<hits/s> unit=hits/s ratio=<ours/base>
 *   BENCH stampede_loads ours=<loads> base=<loads> unit=loads ratio=<ours/base>
 *   BENCH stampede_p99 ours=<ms> base=<ms> unit=ms ratio=<ours/base>
 *
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmemcached/memcached.h>

#include <backend/cache.h>

enum {
    ROUNDS = 5,
    THREADS = 2,
    VLEN = 100,
    NKEYS = 1000,
    NBUCKETS = 2048,
    STAMPEDE = 500,
    LOAD_MS = 50,
};
#define ROUND_SECONDS 1.0

static const char *servers;
static char value[VLEN];                      /* what every key holds */
static char hit_key[80], raw_key[80];         /* cache_hit_memcached: ours, base */
static char mem_keys[NKEYS][16];              /* cache_hit_memory */
static const bk_cache_ttl_t HIT_TTL = {3600 * BK_NSEC_PER_SEC, 0};
static const bk_cache_ttl_t STAMPEDE_TTL = {60 * BK_NSEC_PER_SEC, 0};
static atomic_ulong loads;                    /* origin loads, by every loader below */
static int slow;                              /* the loader's ctx: sleep LOAD_MS */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_cache: %s: %s\n", what, why);
    exit(EXIT_FAILURE);
}

/* "bkb<16 hex>/": keys nobody else has, so a round starts cold. */
static void random_prefix(char *buf, size_t size)
{
    uint64_t r;
    if (bk_random_bytes(&r, sizeof r) != BK_OK)
        die("bk_random_bytes", "failed");
    snprintf(buf, size, "bkb%016llx/", (unsigned long long)r);
}

/* The origin: a copy of value, after LOAD_MS when slow. */
static int load(const char *key, void **v, size_t *n, void *sleep_first)
{
    (void)key;
    atomic_fetch_add(&loads, 1);
    if (sleep_first) {
        struct timespec ts = {0, LOAD_MS * BK_NSEC_PER_MSEC};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    if (!(*v = malloc(VLEN)))
        return BK_ENOMEM;
    memcpy(*v, value, VLEN);
    *n = VLEN;
    return BK_OK;
}

/* A raw connection with the behaviours bk_cache_memcached_new sets. */
static memcached_st *raw_connect(void)
{
    memcached_st *m = memcached_create(NULL);
    memcached_server_list_st list = memcached_servers_parse(servers);
    if (!m || !list || memcached_server_push(m, list) != MEMCACHED_SUCCESS)
        die("memcached_create", servers);
    memcached_server_list_free(list);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 250);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 250);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
    /* Connected now, not while timing: a read of a key nobody has. */
    size_t n;
    uint32_t flags;
    memcached_return_t rc;
    free(memcached_get(m, "bkb-connect", 11, &n, &flags, &rc));
    if (rc != MEMCACHED_NOTFOUND)
        die("memcached_get", memcached_strerror(m, rc));
    return m;
}

static bk_cache_t *memcached_cache(const char *prefix)
{
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.ttl_jitter_pct = 0;
    bk_cache_memcached_opts_t m;
    bk_cache_memcached_opts_init(&m);
    m.prefix = prefix;
    bk_cache_t *c;
    int rc = bk_cache_memcached_new(servers, &o, &m, &c, NULL);
    if (rc != BK_OK)
        die("bk_cache_memcached_new", bk_strerror(rc));
    return c;
}

/* ------------------------------------------------------------------ the naive in-process cache */

struct naive_entry {
    struct naive_entry *next;
    char *key;
    size_t len;
    char value[];
};

static struct naive {
    pthread_mutex_t lock;
    struct naive_entry *buckets[NBUCKETS];
} naive = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t fnv1a(const char *k)
{
    uint64_t h = 1469598103934665603u;
    while (*k)
        h = (h ^ (unsigned char)*k++) * 1099511628211u;
    return h;
}

static void naive_put(const char *key, const void *v, size_t len)
{
    struct naive_entry *e = malloc(sizeof *e + len);
    if (!e || !(e->key = strdup(key)))
        die("naive_put", "out of memory");
    memcpy(e->value, v, len);
    e->len = len;
    struct naive_entry **b = &naive.buckets[fnv1a(key) % NBUCKETS];
    e->next = *b;
    *b = e;
}

static void *naive_get(const char *key, size_t *len)
{
    uint64_t h = fnv1a(key);
    void *copy = NULL;
    pthread_mutex_lock(&naive.lock);
    for (struct naive_entry *e = naive.buckets[h % NBUCKETS]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            if ((copy = malloc(e->len)))
                memcpy(copy, e->value, *len = e->len);
            break;
        }
    }
    pthread_mutex_unlock(&naive.lock);
    return copy;
}

static void naive_free(void)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        for (struct naive_entry *e = naive.buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e);
        }
}

/* ------------------------------------------------------------------ hit rates */

/* One per thread, on its own cache lines. */
struct worker {
    _Alignas(64) memcached_st *mc; /* base: the thread's own connection */
    bk_cache_t *cache;             /* ours: shared by the threads */
    pthread_barrier_t *start;
    uint64_t rng;
    unsigned long hits, failures;
    unsigned long fetches; /* ours: bk_cache_fetch calls */
    double t0, t1;
};

static void check(struct worker *w, int ok, void *v, size_t n)
{
    if (!ok || !v || n != VLEN || memcmp(v, value, VLEN) != 0)
        w->failures++;
    free(v);
}

static const char *random_mem_key(struct worker *w)
{
    w->rng ^= w->rng >> 12; /* xorshift64* */
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return mem_keys[((w->rng * 2685821657736338717ULL) >> 33) % NKEYS];
}

static void ours_hit(struct worker *w, const char *key)
{
    void *v;
    size_t n;
    int rc = bk_cache_fetch(w->cache, key, &HIT_TTL, load, NULL, &v, &n);
    w->fetches++;
    check(w, rc == BK_OK, v, n);
}

static void ours_hit_memcached(struct worker *w) { ours_hit(w, hit_key); }
static void ours_hit_memory(struct worker *w) { ours_hit(w, random_mem_key(w)); }

static void base_hit_memcached(struct worker *w)
{
    size_t n = 0;
    uint32_t flags;
    memcached_return_t rc;
    char *v = memcached_get(w->mc, raw_key, strlen(raw_key), &n, &flags, &rc);
    check(w, rc == MEMCACHED_SUCCESS, v, n);
}

static void base_hit_memory(struct worker *w)
{
    size_t n = 0;
    void *v = naive_get(random_mem_key(w), &n);
    check(w, 1, v, n);
}

struct run {
    struct worker *w;
    void (*op)(struct worker *);
};

static void *hit_thread(void *arg)
{
    struct run *r = arg;
    struct worker *w = r->w;
    unsigned long n = 0;
    pthread_barrier_wait(w->start);
    double t0 = now_s(), t;
    do { /* an in-process hit costs less than a clock read or two */
        for (int i = 0; i < 16; i++)
            r->op(w);
        n += 16;
    } while ((t = now_s()) - t0 < ROUND_SECONDS);
    w->t0 = t0;
    w->t1 = t;
    w->hits += n;
    return NULL;
}

/* Hits per second of op run by THREADS workers over one round. */
static double hit_round(struct worker *ws, void (*op)(struct worker *))
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS + 1);
    pthread_t th[THREADS];
    struct run runs[THREADS];
    unsigned long before = 0, after = 0;
    for (int t = 0; t < THREADS; t++) {
        before += ws[t].hits;
        ws[t].start = &start;
        runs[t] = (struct run){&ws[t], op};
        if (pthread_create(&th[t], NULL, hit_thread, &runs[t]) != 0)
            die("pthread_create", "failed");
    }
    pthread_barrier_wait(&start);
    double t0 = 0, t1 = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        after += ws[t].hits;
        t0 = t == 0 || ws[t].t0 < t0 ? ws[t].t0 : t0;
        t1 = t == 0 || ws[t].t1 > t1 ? ws[t].t1 : t1;
    }
    pthread_barrier_destroy(&start);
    return (double)(after - before) / (t1 - t0);
}

/* ------------------------------------------------------------------ the stampede */

struct stampede {
    bk_cache_t *cache;          /* ours */
    memcached_st **mcs;         /* base: one per thread */
    const char *key;
    pthread_barrier_t start;
    double lat_ms[STAMPEDE];
    atomic_ulong failures;
};

struct req {
    struct stampede *s;
    int i;
};

static void *stampede_thread(void *arg)
{
    struct req *q = arg;
    struct stampede *s = q->s;
    void *v = NULL;
    size_t n = 0;
    int ok;
    pthread_barrier_wait(&s->start);
    double t0 = now_s();
    if (s->cache) {
        ok = bk_cache_fetch(s->cache, s->key, &STAMPEDE_TTL, load, &slow, &v, &n) == BK_OK;
    } else { /* cache-aside, as written by hand */
        memcached_st *m = s->mcs[q->i];
        uint32_t flags;
        memcached_return_t rc;
        v = memcached_get(m, s->key, strlen(s->key), &n, &flags, &rc);
        ok = rc == MEMCACHED_SUCCESS;
        if (rc == MEMCACHED_NOTFOUND && (ok = load(s->key, &v, &n, &slow) == BK_OK))
            memcached_set(m, s->key, strlen(s->key), v, n, 60, 0);
    }
    s->lat_ms[q->i] = (now_s() - t0) * 1e3;
    if (!ok || !v || n != VLEN || memcmp(v, value, VLEN) != 0)
        atomic_fetch_add(&s->failures, 1);
    free(v);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One cold stampede, ours (mcs NULL) or base: the origin's loads and the p99 (ms). */
static void stampede_round(memcached_st **mcs, unsigned long *nloads, double *p99)
{
    static struct stampede s;
    static pthread_t th[STAMPEDE];
    static struct req reqs[STAMPEDE];
    char prefix[32], key[64];
    random_prefix(prefix, sizeof prefix);
    s = (struct stampede){.mcs = mcs, .key = key};
    if (mcs) {
        snprintf(key, sizeof key, "%sstampede", prefix);
    } else {
        snprintf(key, sizeof key, "stampede");
        s.cache = memcached_cache(prefix);
        void *v; /* a pooled connection up before timing, as base's are */
        size_t n;
        if (bk_cache_fetch(s.cache, "warm-up", &STAMPEDE_TTL, load, NULL, &v, &n) != BK_OK)
            die("bk_cache_fetch", "warm-up failed");
        free(v);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_barrier_init(&s.start, NULL, STAMPEDE);
    unsigned long before = atomic_load(&loads);
    for (int i = 0; i < STAMPEDE; i++) {
        reqs[i] = (struct req){&s, i};
        if (pthread_create(&th[i], &attr, stampede_thread, &reqs[i]) != 0)
            die("pthread_create", "failed (500 threads)");
    }
    for (int i = 0; i < STAMPEDE; i++)
        pthread_join(th[i], NULL);
    *nloads = atomic_load(&loads) - before;
    pthread_barrier_destroy(&s.start);
    pthread_attr_destroy(&attr);
    bk_cache_free(s.cache);
    if (atomic_load(&s.failures))
        die("stampede", mcs ? "base requests failed" : "bk_cache_fetch failed or answered wrong");
    qsort(s.lat_ms, STAMPEDE, sizeof *s.lat_ms, cmp_double);
    *p99 = s.lat_ms[(STAMPEDE * 99 + 99) / 100 - 1];
}

/* ------------------------------------------------------------------ main */

static double max_d(double a, double b) { return a > b ? a : b; }
static double min_d(double a, double b) { return a < b ? a : b; }

int main(void)
{
    servers = getenv("BK_TEST_MEMCACHED");
    if (!servers || !*servers) {
        fprintf(stderr, "bench_cache: no memcached server: set BK_TEST_MEMCACHED to host:port, or run it under "
                        "tests/harness/services.sh run -- (as `make bench` does)\n");
        return EXIT_FAILURE;
    }
    for (int i = 0; i < VLEN; i++)
        value[i] = (char)('a' + i % 26);

    /* cache_hit_memcached: the key set once, through each side's own write. */
    char prefix[32], raw_prefix[32];
    random_prefix(prefix, sizeof prefix);
    random_prefix(raw_prefix, sizeof raw_prefix);
    snprintf(hit_key, sizeof hit_key, "user:42");
    snprintf(raw_key, sizeof raw_key, "%sv:user:42", raw_prefix); /* as long as ours is in memcached */
    bk_cache_t *mc_cache = memcached_cache(prefix);
    struct worker mc_ws[THREADS] = {0}, mem_ws[THREADS] = {0};
    for (int t = 0; t < THREADS; t++) {
        mc_ws[t].cache = mc_cache;
        mc_ws[t].mc = raw_connect();
    }
    int rc = bk_cache_set(mc_cache, hit_key, value, VLEN, &HIT_TTL);
    memcached_return_t mrc = memcached_set(mc_ws[0].mc, raw_key, strlen(raw_key), value, VLEN, 3600, 0);
    if (rc != BK_OK || mrc != MEMCACHED_SUCCESS)
        die("set the hit key", rc != BK_OK ? bk_strerror(rc) : memcached_strerror(mc_ws[0].mc, mrc));

    /* cache_hit_memory: NKEYS keys in both. */
    bk_cache_t *mem_cache;
    if ((rc = bk_cache_memory_new(NULL, &mem_cache)) != BK_OK)
        die("bk_cache_memory_new", bk_strerror(rc));
    for (int i = 0; i < NKEYS; i++) {
        snprintf(mem_keys[i], sizeof mem_keys[i], "user:%d", i);
        naive_put(mem_keys[i], value, VLEN);
        if ((rc = bk_cache_set(mem_cache, mem_keys[i], value, VLEN, &HIT_TTL)) != BK_OK)
            die("bk_cache_set", bk_strerror(rc));
    }
    for (int t = 0; t < THREADS; t++) {
        mem_ws[t].cache = mem_cache;
        mem_ws[t].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
    }

    /* stampede: base's connections, one per request, up before timing. */
    memcached_st **mcs = calloc(STAMPEDE, sizeof *mcs);
    if (!mcs)
        die("calloc", "out of memory");
    for (int i = 0; i < STAMPEDE; i++)
        mcs[i] = raw_connect();

    /* Warm-up, untimed: every connection used, the code paths hot. */
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < 200; i++) {
            ours_hit_memcached(&mc_ws[t]);
            base_hit_memcached(&mc_ws[t]);
            ours_hit_memory(&mem_ws[t]);
            base_hit_memory(&mem_ws[t]);
        }
    hit_round(mc_ws, ours_hit_memcached);

    printf("bench_cache: memcached at %s; %d threads for hits, %d-byte values; %d cold requests for a %d ms load; "
           "best of %d interleaved rounds\n",
           servers, THREADS, VLEN, STAMPEDE, LOAD_MS, ROUNDS);
    double hm_o = 0, hm_b = 0, mem_o = 0, mem_b = 0, p99_o = 1e30, p99_b = 1e30;
    unsigned long ld_o = ~0ul, ld_b = ~0ul;
    for (int r = 0; r < ROUNDS; r++) {
        double o1 = 0, b1 = 0, o2 = 0, b2 = 0, po = 0, pb = 0;
        unsigned long lo = 0, lb = 0;
        for (int turn = 0; turn < 2; turn++) {
            if ((turn == 0) == (r % 2 == 0)) {
                b1 = hit_round(mc_ws, base_hit_memcached);
                b2 = hit_round(mem_ws, base_hit_memory);
                stampede_round(mcs, &lb, &pb);
            } else {
                o1 = hit_round(mc_ws, ours_hit_memcached);
                o2 = hit_round(mem_ws, ours_hit_memory);
                stampede_round(NULL, &lo, &po);
            }
        }
        printf("  round %d: memcached hits ours %.0f/s base %.0f/s; memory hits ours %.0f/s base %.0f/s; "
               "stampede ours %lu loads p99 %.1f ms, base %lu loads p99 %.1f ms\n",
               r + 1, o1, b1, o2, b2, lo, po, lb, pb);
        fflush(stdout);
        hm_o = max_d(hm_o, o1);
        hm_b = max_d(hm_b, b1);
        mem_o = max_d(mem_o, o2);
        mem_b = max_d(mem_b, b2);
        p99_o = min_d(p99_o, po);
        p99_b = min_d(p99_b, pb);
        ld_o = lo < ld_o ? lo : ld_o;
        ld_b = lb < ld_b ? lb : ld_b;
    }

    unsigned long failures = 0, hit_loads = 0, fetches = 0;
    for (int t = 0; t < THREADS; t++) {
        failures += mc_ws[t].failures + mem_ws[t].failures;
        fetches += mc_ws[t].fetches;
    }
    /* Its hits are memcached reads that hit: fewer than the fetches when a
     * fetch joined another thread's read of the key (single-flight). */
    bk_cache_stats_t st;
    bk_cache_stats(mc_cache, &st);
    hit_loads += st.loads;
    printf("  memcached cache: %lu fetches, %llu memcached reads (%.0f%% served by another thread's read)\n",
           fetches, (unsigned long long)st.hits, 100.0 * (1.0 - (double)st.hits / (double)fetches));
    bk_cache_stats(mem_cache, &st);
    hit_loads += st.loads;

    for (int i = 0; i < STAMPEDE; i++)
        memcached_free(mcs[i]);
    free(mcs);
    for (int t = 0; t < THREADS; t++)
        memcached_free(mc_ws[t].mc);
    bk_cache_free(mc_cache);
    bk_cache_free(mem_cache);
    naive_free();

    if (failures || hit_loads) {
        fprintf(stderr, "bench_cache: %lu hits answered wrong, %lu origin loads on the hit path\n", failures,
                hit_loads);
        return EXIT_FAILURE;
    }
    printf("BENCH cache_hit_memcached ours=%.0f base=%.0f unit=hits/s ratio=%.3f\n", hm_o, hm_b, hm_o / hm_b);
    printf("BENCH cache_hit_memory ours=%.0f base=%.0f unit=hits/s ratio=%.3f\n", mem_o, mem_b, mem_o / mem_b);
    printf("BENCH stampede_loads ours=%lu base=%lu unit=loads ratio=%.4f\n", ld_o, ld_b, (double)ld_o / (double)ld_b);
    printf("BENCH stampede_p99 ours=%.1f base=%.1f unit=ms ratio=%.3f\n", p99_o, p99_b, p99_o / p99_b);
    return EXIT_SUCCESS;
}
