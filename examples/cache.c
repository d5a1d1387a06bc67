/*
 * cache: cache-aside over memcached with libbackend's cache module, as a service
 * reading a slow origin would use it. THREADS threads fetch KEY at once; the
 * origin (here a function that takes 100 ms and answers "value of KEY") is asked
 * once, whatever the number of threads and of processes running this at the
 * same time; a later run, in another process, finds the value in memcached.
 *
 *   cache SERVERS PREFIX KEY [THREADS]   fetches KEY (default 16 threads)
 *   cache SERVERS PREFIX KEY --delete    forgets KEY (after the origin changed)
 *
 * SERVERS is "host:port[,host:port...]"; PREFIX keeps this program's keys apart
 * from other users of the servers. Prints one JSON line:
 *
 *   $ cache 127.0.0.1:11211 demo: user:42 16
 *   {"value": "value of user:42", "fetches": 16, "loads": 1, "errors": 0}
 *
 * If memcached is down the values still come, from the origin. Exits 2, with a
 * "cache: ..." message on stderr, on a usage error.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <backend/cache.h>

enum { MAX_THREADS = 256 };

static atomic_int loads, errors;
static bk_cache_t *cache;
static const char *key;
static char value[256];

/* The origin: slow, and counted. */
static int load_from_origin(const char *k, void **out, size_t *len, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&loads, 1);
    struct timespec pause = {0, 100 * BK_NSEC_PER_MSEC};
    nanosleep(&pause, NULL);
    char *v = malloc(strlen(k) + 10);
    if (!v)
        return BK_ENOMEM;
    *len = (size_t)sprintf(v, "value of %s", k);
    *out = v;
    return BK_OK;
}

static void *fetch(void *arg)
{
    (void)arg;
    const bk_cache_ttl_t ttl = {.fresh_ns = 60 * BK_NSEC_PER_SEC, .stale_ns = 600 * BK_NSEC_PER_SEC};
    void *v;
    size_t n;
    int rc = bk_cache_fetch(cache, key, &ttl, load_from_origin, NULL, &v, &n);
    if (rc != BK_OK) {
        fprintf(stderr, "cache: %s: %s\n", key, bk_strerror(rc));
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    snprintf(value, sizeof value, "%s", (char *)v); /* every thread gets the same */
    free(v);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: cache SERVERS PREFIX KEY [THREADS]\n"
                    "       cache SERVERS PREFIX KEY --delete\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5)
        return usage();
    key = argv[3];
    bool forget = argc == 5 && strcmp(argv[4], "--delete") == 0;
    long threads = 16;
    if (argc == 5 && !forget) {
        char *end;
        threads = strtol(argv[4], &end, 10);
        if (*end || threads < 1 || threads > MAX_THREADS)
            return usage();
    }
    bk_cache_memcached_opts_t m;
    bk_cache_memcached_opts_init(&m);
    m.prefix = argv[2];
    bk_error_t err;
    int rc = bk_cache_memcached_new(argv[1], NULL, &m, &cache, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "cache: %s %s: %s\n", argv[1], argv[2], err.message);
        return 2;
    }
    if (forget) {
        rc = bk_cache_delete(cache, key);
        bk_cache_free(cache);
        if (rc != BK_OK) {
            fprintf(stderr, "cache: delete %s: %s\n", key, bk_strerror(rc));
            return 1;
        }
        return 0;
    }
    pthread_t t[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fetch, NULL);
    for (long i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    bk_cache_free(cache);
    printf("{\"value\": \"%s\", \"fetches\": %ld, \"loads\": %d, \"errors\": %d}\n", value, threads,
           atomic_load(&loads), atomic_load(&errors));
    return atomic_load(&errors) ? 1 : 0;
}
