/* The in-process cache on the fake clock: hit, miss, stale-while-revalidate,
 * negative caching, errors not cached, LRU eviction by bytes, and single-flight:
 * 64 threads on one cold key make exactly one load.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/cache.h>

#include "check_main.h"
#include "gate.h"

#define SEC BK_NSEC_PER_SEC

static bk_clock_t *clk;
static bk_cache_t *cache;

struct origin {
    atomic_int calls;
    int rc;              /* what the next load answers */
    const char *value;   /* ... with this value */
    bool wait;           /* block on the gate while loading */
    int64_t takes_ns;    /* how long a load takes, on the fake clock */
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
    if (o->rc != BK_OK)
        return o->rc;
    *len = strlen(o->value);
    *value = malloc(*len);
    memcpy(*value, o->value, *len);
    return BK_OK;
}

static const bk_cache_ttl_t TTL = {10 * SEC, 60 * SEC};

static void setup(void)
{
    ck_assert_int_eq(bk_clock_fake_new(0, &clk), BK_OK);
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.clock = clk;
    o.ttl_jitter_pct = 0; /* exact expiry in these tests */
    o.negative_ttl_ns = 5 * SEC;
    ck_assert_int_eq(bk_cache_memory_new(&o, &cache), BK_OK);
    gate_reset();
}

static void teardown(void)
{
    gate_release();
    bk_cache_free(cache);
    bk_clock_free(clk);
}

static void expect(const char *key, struct origin *o, int rc, const char *value)
{
    void *v = NULL;
    size_t n = 0;
    ck_assert_int_eq(bk_cache_fetch(cache, key, &TTL, load, o, &v, &n), rc);
    if (value) {
        ck_assert_uint_eq(n, strlen(value));
        ck_assert_str_eq(v, value); /* NUL-terminated */
    } else {
        ck_assert_ptr_null(v);
    }
    free(v);
}

START_TEST(hit_miss_stale_and_gone)
{
    struct origin o = {0, BK_OK, "v1", false, 0};
    expect("k", &o, BK_OK, "v1"); /* miss: loads */
    expect("k", &o, BK_OK, "v1"); /* hit */
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    bk_clock_fake_advance(clk, 10 * SEC); /* stale: this caller refreshes */
    o.value = "v2";
    expect("k", &o, BK_OK, "v2");
    ck_assert_int_eq(atomic_load(&o.calls), 2);
    expect("k", &o, BK_OK, "v2"); /* fresh again */
    bk_clock_fake_advance(clk, 70 * SEC); /* past stale: gone, loads */
    o.value = "v3";
    expect("k", &o, BK_OK, "v3");
    ck_assert_int_eq(atomic_load(&o.calls), 3);
    bk_cache_stats_t st;
    bk_cache_stats(cache, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.loads, 3);
    ck_assert_uint_eq(st.entries, 1);
}
END_TEST

struct fetcher {
    const char *key;
    struct origin *o;
    int rc;
    char value[16];
};

static void *fetch_thread(void *arg)
{
    struct fetcher *f = arg;
    void *v = NULL;
    f->rc = bk_cache_fetch(cache, f->key, &TTL, load, f->o, &v, NULL);
    if (v)
        snprintf(f->value, sizeof f->value, "%s", (char *)v);
    free(v);
    return NULL;
}

START_TEST(stale_served_while_one_refreshes)
{
    struct origin o = {0, BK_OK, "old", false, 0};
    expect("k", &o, BK_OK, "old");
    bk_clock_fake_advance(clk, 11 * SEC);
    /* One caller refreshes, held inside the loader... */
    o.value = "new";
    o.wait = true;
    struct fetcher f = {"k", &o, -1, ""};
    pthread_t t;
    pthread_create(&t, NULL, fetch_thread, &f);
    gate_wait_for(1);
    /* ... while everyone else gets the stale copy at once, with no load. */
    struct origin other = {0, BK_OK, "unused", false, 0};
    expect("k", &other, BK_OK, "old");
    expect("k", &other, BK_OK, "old");
    ck_assert_int_eq(atomic_load(&other.calls), 0);
    gate_release();
    pthread_join(t, NULL);
    ck_assert_int_eq(f.rc, BK_OK);
    ck_assert_str_eq(f.value, "new");
    expect("k", &other, BK_OK, "new");
    bk_cache_stats_t st;
    bk_cache_stats(cache, &st);
    ck_assert_uint_eq(st.stale_hits, 2);
}
END_TEST

START_TEST(failed_refresh_serves_stale_and_retries_later)
{
    struct origin o = {0, BK_OK, "old", false, 0};
    expect("k", &o, BK_OK, "old");
    bk_clock_fake_advance(clk, 11 * SEC);
    o.rc = BK_EUNAVAIL; /* the origin is down: the stale copy is still served */
    expect("k", &o, BK_OK, "old");
    o.rc = BK_OK;
    o.value = "new";
    expect("k", &o, BK_OK, "new"); /* the next caller tries again, and succeeds */
    ck_assert_int_eq(atomic_load(&o.calls), 3);
    bk_clock_fake_advance(clk, 11 * SEC);
    o.rc = BK_ENOTFOUND; /* gone at the origin: not served stale */
    expect("k", &o, BK_ENOTFOUND, NULL);
    expect("k", &o, BK_ENOTFOUND, NULL); /* and remembered */
    ck_assert_int_eq(atomic_load(&o.calls), 4);
}
END_TEST

START_TEST(gone_without_negative_caching_is_forgotten)
{
    bk_cache_t *c;
    bk_cache_opts_t opts;
    bk_cache_opts_init(&opts);
    opts.clock = clk;
    opts.negative_ttl_ns = 0;
    ck_assert_int_eq(bk_cache_memory_new(&opts, &c), BK_OK);
    struct origin o = {0, BK_OK, "old", false, 0};
    void *v;
    ck_assert_int_eq(bk_cache_fetch(c, "k", &TTL, load, &o, &v, NULL), BK_OK);
    free(v);
    bk_clock_fake_advance(clk, 20 * SEC);
    o.rc = BK_ENOTFOUND;
    ck_assert_int_eq(bk_cache_fetch(c, "k", &TTL, load, &o, &v, NULL), BK_ENOTFOUND);
    ck_assert_int_eq(bk_cache_fetch(c, "k", &TTL, load, &o, &v, NULL), BK_ENOTFOUND);
    ck_assert_int_eq(atomic_load(&o.calls), 3); /* asked each time, never served the old copy */
    bk_cache_free(c);
}
END_TEST

START_TEST(not_found_is_remembered_errors_are_not)
{
    struct origin o = {0, BK_ENOTFOUND, NULL, false, 0};
    expect("missing", &o, BK_ENOTFOUND, NULL);
    expect("missing", &o, BK_ENOTFOUND, NULL);
    ck_assert_int_eq(atomic_load(&o.calls), 1); /* remembered */
    bk_clock_fake_advance(clk, 5 * SEC);
    o.rc = BK_OK;
    o.value = "now here";
    expect("missing", &o, BK_OK, "now here");
    ck_assert_int_eq(atomic_load(&o.calls), 2);

    struct origin bad = {0, BK_EIO, NULL, false, 0};
    expect("flaky", &bad, BK_EIO, NULL);
    expect("flaky", &bad, BK_EIO, NULL);
    ck_assert_int_eq(atomic_load(&bad.calls), 2); /* a failure is not cached */
}
END_TEST

START_TEST(set_and_delete)
{
    struct origin o = {0, BK_OK, "loaded", false, 0};
    ck_assert_int_eq(bk_cache_set(cache, "k", "written", 7, &TTL), BK_OK);
    expect("k", &o, BK_OK, "written");
    ck_assert_int_eq(bk_cache_delete(cache, "k"), BK_OK);
    expect("k", &o, BK_OK, "loaded");
    ck_assert_int_eq(atomic_load(&o.calls), 1);
    ck_assert_int_eq(bk_cache_set(cache, "k", NULL, 3, &TTL), BK_EINVAL);
    bk_cache_ttl_t bad = {0, 0};
    ck_assert_int_eq(bk_cache_set(cache, "k", "x", 1, &bad), BK_EINVAL);
}
END_TEST

START_TEST(bounded_by_bytes_least_recent_first)
{
    bk_cache_t *small;
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.clock = clk;
    o.max_bytes = 16 * 1024; /* 1 KiB per shard */
    ck_assert_int_eq(bk_cache_memory_new(&o, &small), BK_OK);
    char big[2048] = {0};
    ck_assert_int_eq(bk_cache_set(small, "huge", big, sizeof big, &TTL), BK_ERANGE);
    char key[32], value[100];
    memset(value, 'x', sizeof value);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_int_eq(bk_cache_set(small, key, value, sizeof value, &TTL), BK_OK);
        if (i % 2 == 0) { /* keep key-0 recently used: it must survive */
            void *v;
            struct origin unused = {0, BK_EIO, NULL, false, 0};
            ck_assert_int_eq(bk_cache_fetch(small, "key-0", &TTL, load, &unused, &v, NULL), BK_OK);
            free(v);
        }
    }
    bk_cache_stats_t st;
    bk_cache_stats(small, &st);
    ck_assert_uint_le(st.bytes, 16 * 1024);
    ck_assert_uint_gt(st.evictions, 1500);
    ck_assert_uint_lt(st.entries, 200);
    struct origin o2 = {0, BK_OK, "reloaded", false, 0};
    void *v;
    ck_assert_int_eq(bk_cache_fetch(small, "key-0", &TTL, load, &o2, &v, NULL), BK_OK);
    ck_assert_str_eq(v, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxx");
    free(v);
    ck_assert_int_eq(bk_cache_fetch(small, "key-1", &TTL, load, &o2, &v, NULL), BK_OK);
    ck_assert_str_eq(v, "reloaded"); /* evicted long ago */
    free(v);
    bk_cache_free(small);
}
END_TEST

#define THREADS 64

START_TEST(single_flight_64_threads_one_load)
{
    struct origin o = {0, BK_OK, "loaded once", true, 0};
    struct fetcher f[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        f[i] = (struct fetcher){"cold", &o, -1, ""};
        pthread_create(&t[i], NULL, fetch_thread, &f[i]);
    }
    gate_wait_for(1); /* the loader is running */
    /* Every caller has missed and all but the loader wait for its answer. */
    for (bk_cache_stats_t st = {0}; st.misses < THREADS; sched_yield())
        bk_cache_stats(cache, &st);
    gate_release();
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(f[i].rc, BK_OK);
        ck_assert_str_eq(f[i].value, "loaded once");
    }
    ck_assert_int_eq(atomic_load(&o.calls), 1);
}
END_TEST

/* The metrics's text has the line, whole. */
static void ck_assert_metric(bk_metrics_t *reg, const char *line)
{
    char *text;
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    char want[256];
    snprintf(want, sizeof want, "\n%s\n", line);
    ck_assert_msg(strstr(text, want) != NULL, "no line \"%s\" in:\n%s", line, text);
    free(text);
}

START_TEST(stats_as_metrics)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_cache_free(cache); /* the fixture's, replaced by one that counts into reg */
    bk_cache_opts_t co;
    bk_cache_opts_init(&co);
    co.clock = clk;
    co.ttl_jitter_pct = 0;
    co.metrics = reg;
    ck_assert_int_eq(bk_cache_memory_new(&co, &cache), BK_OK);
    struct origin o = {0, BK_OK, "v1", false, 0};
    expect("k", &o, BK_OK, "v1"); /* miss: loads */
    expect("k", &o, BK_OK, "v1");
    expect("k", &o, BK_OK, "v1");
    ck_assert_metric(reg, "cache_requests_total{result=\"hit\"} 2");
    ck_assert_metric(reg, "cache_requests_total{result=\"miss\"} 1");
    ck_assert_metric(reg, "cache_loads_total 1");
    ck_assert_metric(reg, "cache_coalesced_total 0");
    /* Stale: served while this caller refreshes it. */
    bk_clock_fake_advance(clk, 11 * SEC);
    struct origin held = {0, BK_OK, "v2", true, 0};
    struct fetcher f = {"k", &held, -1, ""};
    pthread_t t;
    pthread_create(&t, NULL, fetch_thread, &f);
    gate_wait_for(1);
    expect("k", &o, BK_OK, "v1");
    gate_release();
    pthread_join(t, NULL);
    ck_assert_metric(reg, "cache_requests_total{result=\"stale\"} 1"); /* the refresher: a load */
    ck_assert_metric(reg, "cache_loads_total 2");
    /* Eight callers of a cold key: one loads, seven are answered by its load. */
    gate_reset();
    struct origin cold = {0, BK_OK, "once", true, 0};
    struct fetcher fs[8];
    pthread_t ts[8];
    for (int i = 0; i < 8; i++) {
        fs[i] = (struct fetcher){"cold", &cold, -1, ""};
        pthread_create(&ts[i], NULL, fetch_thread, &fs[i]);
    }
    gate_wait_for(1);
    for (bk_cache_stats_t st = {0}; st.misses < 9; sched_yield())
        bk_cache_stats(cache, &st);
    gate_release();
    for (int i = 0; i < 8; i++)
        pthread_join(ts[i], NULL);
    ck_assert_metric(reg, "cache_requests_total{result=\"miss\"} 9");
    ck_assert_metric(reg, "cache_loads_total 3");
    ck_assert_metric(reg, "cache_coalesced_total 7");
    bk_cache_stats_t st;
    bk_cache_stats(cache, &st);
    ck_assert_uint_eq(st.coalesced, 7);
    /* A second render adds nothing new; a freed cache is no longer read. */
    ck_assert_metric(reg, "cache_coalesced_total 7");
    bk_cache_free(cache);
    cache = NULL;
    ck_assert_metric(reg, "cache_loads_total 3");
    /* A family of the same name but another shape is refused. */
    bk_metrics_t *other;
    ck_assert_int_eq(bk_metrics_new(&other), BK_OK);
    bk_metric_t *fam;
    ck_assert_int_eq(bk_metrics_gauge(other, "cache_loads_total", "Not a counter.", NULL, &fam), BK_OK);
    co.metrics = other;
    ck_assert_int_eq(bk_cache_memory_new(&co, &cache), BK_EEXIST);
    ck_assert_ptr_null(cache);
    bk_metrics_free(other);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(early_refresh_as_expiry_nears)
{
    /* XFetch: a load that took 20 s, 1 ms before the fresh time ends, is due
     * early with probability 1 - e^(-1ms/20s) ~ 0.99995. */
    bk_cache_free(cache);
    bk_cache_opts_t o;
    bk_cache_opts_init(&o);
    o.clock = clk;
    o.ttl_jitter_pct = 0;
    o.early_refresh = 1.0;
    ck_assert_int_eq(bk_cache_memory_new(&o, &cache), BK_OK);
    struct origin slow = {0, BK_OK, "v1", false, 20 * SEC};
    expect("k", &slow, BK_OK, "v1");
    bk_clock_fake_advance(clk, 10 * SEC - BK_NSEC_PER_MSEC);
    slow.value = "v2";
    expect("k", &slow, BK_OK, "v2"); /* refreshed before it went stale */
    ck_assert_int_eq(atomic_load(&slow.calls), 2);
    bk_cache_stats_t st;
    bk_cache_stats(cache, &st);
    ck_assert_uint_eq(st.stale_hits, 0);

    /* Off (the default): fresh until the end. */
    bk_cache_t *plain;
    o.early_refresh = 0;
    ck_assert_int_eq(bk_cache_memory_new(&o, &plain), BK_OK);
    bk_cache_t *saved = cache;
    cache = plain;
    struct origin p = {0, BK_OK, "p1", false, 20 * SEC};
    expect("k", &p, BK_OK, "p1");
    bk_clock_fake_advance(clk, 10 * SEC - BK_NSEC_PER_MSEC);
    expect("k", &p, BK_OK, "p1");
    ck_assert_int_eq(atomic_load(&p.calls), 1);
    cache = saved;
    bk_cache_free(plain);
}
END_TEST

START_TEST(namespace_invalidation)
{
    struct origin o = {0, BK_OK, "v1", false, 0};
    char k1[64], k2[64], other[64];
    ck_assert_int_eq(bk_cache_ns_key(cache, "users", "42", k1, sizeof k1), BK_OK);
    ck_assert_int_eq(bk_cache_ns_key(cache, "users", "42", k2, sizeof k2), BK_OK);
    ck_assert_str_eq(k1, k2);
    ck_assert_int_eq(bk_cache_ns_key(cache, "orders", "42", other, sizeof other), BK_OK);
    expect(k1, &o, BK_OK, "v1");
    expect(other, &o, BK_OK, "v1");
    expect(k1, &o, BK_OK, "v1");
    ck_assert_int_eq(atomic_load(&o.calls), 2);
    ck_assert_int_eq(bk_cache_ns_invalidate(cache, "users"), BK_OK);
    ck_assert_int_eq(bk_cache_ns_key(cache, "users", "42", k2, sizeof k2), BK_OK);
    ck_assert_str_ne(k1, k2);
    o.value = "v2";
    expect(k2, &o, BK_OK, "v2");
    expect(other, &o, BK_OK, "v1"); /* another namespace keeps its entries */
    ck_assert_int_eq(atomic_load(&o.calls), 3);
    char tiny[10];
    ck_assert_int_eq(bk_cache_ns_key(cache, "users", "42", tiny, sizeof tiny), BK_ERANGE);
    ck_assert_str_eq(tiny, "");
    ck_assert_int_eq(bk_cache_ns_key(cache, "a@b", "42", k2, sizeof k2), BK_EINVAL);
    ck_assert_int_eq(bk_cache_ns_invalidate(cache, NULL), BK_EINVAL);
}
END_TEST

static int load_user(const char *key, json_t **value, void *ctx)
{
    atomic_int *calls = ctx;
    atomic_fetch_add(calls, 1);
    if (strcmp(key, "user:0") == 0)
        return BK_ENOTFOUND;
    *value = json_pack("{s:s, s:i, s:[s,s]}", "name", key, "age", 42, "roles", "a", "b");
    return *value ? BK_OK : BK_ENOMEM;
}

START_TEST(json_values)
{
    atomic_int calls = 0;
    json_t *a = NULL, *b = NULL;
    ck_assert_int_eq(bk_cache_fetch_json(cache, "user:1", &TTL, load_user, &calls, &a), BK_OK);
    ck_assert_int_eq(bk_cache_fetch_json(cache, "user:1", &TTL, load_user, &calls, &b), BK_OK);
    ck_assert_int_eq(atomic_load(&calls), 1);
    ck_assert(json_equal(a, b));
    ck_assert_ptr_ne(a, b); /* each caller its own */
    ck_assert_int_eq(json_integer_value(json_object_get(b, "age")), 42);
    json_decref(a);
    json_decref(b);
    ck_assert_int_eq(bk_cache_fetch_json(cache, "user:0", &TTL, load_user, &calls, &a), BK_ENOTFOUND);
    ck_assert_ptr_null(a);

    /* Any JSON value, including a string holding a NUL. */
    json_t *scalar = json_stringn("a\0b", 3);
    ck_assert_int_eq(bk_cache_set_json(cache, "s", scalar, &TTL), BK_OK);
    ck_assert_int_eq(bk_cache_fetch_json(cache, "s", &TTL, load_user, &calls, &a), BK_OK);
    ck_assert(json_equal(a, scalar));
    json_decref(a);
    json_decref(scalar);

    /* Bytes that are not JSON (someone else's) are an error, not a crash. */
    ck_assert_int_eq(bk_cache_set(cache, "bad", "{not json", 9, &TTL), BK_OK);
    ck_assert_int_eq(bk_cache_fetch_json(cache, "bad", &TTL, load_user, &calls, &a), BK_EIO);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(bk_cache_set_json(cache, "x", NULL, &TTL), BK_EINVAL);
    ck_assert_int_eq(atomic_load(&calls), 2);
}
END_TEST

/* What a peek answers: a copy of a fresh entry, a remembered "not found", or
 * BK_EUNAVAIL (absent or stale), never a load. */
static void expect_peek(const char *key, int rc, const char *value)
{
    void *v = (void *)1;
    size_t n = 12345;
    ck_assert_int_eq(bk_cache_peek(cache, key, &v, &n), rc);
    if (value) {
        ck_assert_uint_eq(n, strlen(value));
        ck_assert_str_eq(v, value);
    } else {
        ck_assert_ptr_null(v);
        ck_assert_uint_eq(n, 0);
    }
    free(v);
}

START_TEST(peek_never_loads)
{
    struct origin o = {0, BK_OK, "v1", false, 0};
    expect_peek("k", BK_EUNAVAIL, NULL); /* absent */
    expect("k", &o, BK_OK, "v1");
    expect_peek("k", BK_OK, "v1");
    bk_clock_fake_advance(clk, 10 * SEC); /* stale: only a fetch serves (and refreshes) it */
    expect_peek("k", BK_EUNAVAIL, NULL);
    o.value = "v2";
    expect("k", &o, BK_OK, "v2");
    expect_peek("k", BK_OK, "v2");
    o.rc = BK_ENOTFOUND;
    expect("gone", &o, BK_ENOTFOUND, NULL);
    expect_peek("gone", BK_ENOTFOUND, NULL); /* remembered */
    bk_clock_fake_advance(clk, 5 * SEC);     /* ... for negative_ttl_ns */
    expect_peek("gone", BK_EUNAVAIL, NULL);
    ck_assert_int_eq(atomic_load(&o.calls), 3); /* the fetches' loads, none of a peek */
    ck_assert_int_eq(bk_cache_delete(cache, "k"), BK_OK);
    expect_peek("k", BK_EUNAVAIL, NULL);

    bk_cache_stats_t st;
    bk_cache_stats(cache, &st);
    ck_assert_uint_eq(st.hits, 3);   /* the peeks that answered */
    ck_assert_uint_eq(st.misses, 2); /* the fetches' (a stale refresh is none): a peek that finds nothing counts none */

    json_t *doc = NULL;
    json_t *one = json_pack("{s:i}", "a", 1);
    ck_assert_int_eq(bk_cache_set_json(cache, "j", one, &TTL), BK_OK); /* copies it */
    json_decref(one);
    ck_assert_int_eq(bk_cache_peek_json(cache, "j", &doc), BK_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "a")), 1);
    json_decref(doc);
    ck_assert_int_eq(bk_cache_set(cache, "bad", "{not json", 9, &TTL), BK_OK);
    ck_assert_int_eq(bk_cache_peek_json(cache, "bad", &doc), BK_EIO);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(bk_cache_peek_json(cache, "nothing", &doc), BK_EUNAVAIL);
    ck_assert_ptr_null(doc);

    void *v = NULL;
    ck_assert_int_eq(bk_cache_peek(NULL, "k", &v, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_cache_peek(cache, NULL, &v, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_cache_peek(cache, "k", NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_cache_peek_json(cache, "j", NULL), BK_EINVAL);
    ck_assert_int_eq(bk_cache_peek_json(NULL, "j", &doc), BK_EINVAL);
}
END_TEST

START_TEST(opts_init_and_null_options)
{
    bk_cache_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_cache_opts_init(&o);
    ck_assert_uint_eq(o.max_bytes, 64u << 20);
    ck_assert_uint_eq(o.ttl_jitter_pct, 10);
    ck_assert_int_eq(o.negative_ttl_ns, 30 * SEC);
    ck_assert(o.early_refresh == 0);
    ck_assert_ptr_null(o.clock);
    ck_assert_ptr_null(o.metrics);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof *o.reserved_; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
    /* NULL options: the defaults; the loader gets its user data last. */
    bk_cache_t *c;
    ck_assert_int_eq(bk_cache_memory_new(NULL, &c), BK_OK);
    struct origin org = {.value = "v"};
    void *v;
    size_t n;
    ck_assert_int_eq(bk_cache_fetch(c, "k", &TTL, load, &org, &v, &n), BK_OK);
    ck_assert_str_eq(v, "v");
    free(v);
    ck_assert_int_eq(bk_cache_fetch(c, "k", &TTL, load, &org, &v, &n), BK_OK);
    free(v);
    ck_assert_int_eq(atomic_load(&org.calls), 1);
    bk_cache_stats_t st;
    memset(&st, 0x5a, sizeof st);
    bk_cache_stats(c, &st);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.coalesced, 0);
    for (size_t i = 0; i < sizeof st.reserved_ / sizeof *st.reserved_; i++)
        ck_assert_uint_eq(st.reserved_[i], 0);
    bk_cache_free(c);
    o.max_bytes = 1;
    c = (bk_cache_t *)&o;
    ck_assert_int_eq(bk_cache_memory_new(&o, &c), BK_EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hit_miss_stale_and_gone);
    tcase_add_test(tc, stale_served_while_one_refreshes);
    tcase_add_test(tc, failed_refresh_serves_stale_and_retries_later);
    tcase_add_test(tc, not_found_is_remembered_errors_are_not);
    tcase_add_test(tc, gone_without_negative_caching_is_forgotten);
    tcase_add_test(tc, set_and_delete);
    tcase_add_test(tc, bounded_by_bytes_least_recent_first);
    tcase_add_test(tc, single_flight_64_threads_one_load);
    tcase_add_test(tc, early_refresh_as_expiry_nears);
    tcase_add_test(tc, namespace_invalidation);
    tcase_add_test(tc, json_values);
    tcase_add_test(tc, peek_never_loads);
    tcase_add_test(tc, stats_as_metrics);
    tcase_add_test(tc, opts_init_and_null_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(cache_suite());
}
