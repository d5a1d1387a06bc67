/* The sharded bounded table of lib/core/table.c, linked into this program from
 * its sources (it is hidden in the library): insert, find, replace, delete,
 * CLOCK second-chance eviction, the entry and byte bounds, growth, spread of keys
 * that collide under an unseeded hash, and two threads at once.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "backend/core.h"
#include "core/table_int.h"

struct tent {
    bk__table_entry_t t;
    int value;
    char key[24];
};

/* What free_entry saw, in order: the evicted (or replaced, deleted) keys. */
static char freed[64][24];
static int nfreed;

static void free_tent(bk__table_entry_t *e, void *ud)
{
    (void)ud;
    if (nfreed < 64)
        snprintf(freed[nfreed++], sizeof freed[0], "%s", ((struct tent *)e)->key);
    free(e);
}

static void free_quiet(bk__table_entry_t *e, void *ud)
{
    (void)ud;
    free(e);
}

static bk__table_t *table(size_t shards, size_t max_entries, size_t max_bytes)
{
    bk__table_opts_t o = {.shards = shards, .max_entries = max_entries, .max_bytes = max_bytes,
                          .free_entry = free_tent};
    bk__table_t *t;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_OK);
    nfreed = 0;
    return t;
}

static int put(bk__table_t *t, const char *key, int value, size_t bytes)
{
    struct tent *e = calloc(1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->t.key = e->key;
    e->t.klen = strlen(key);
    e->t.bytes = bytes;
    e->value = value;
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(t, key, strlen(key), &h);
    int rc = bk__table_insert(s, &e->t, h);
    bk__table_unlock(s);
    if (rc != BK_OK)
        free(e);
    return rc;
}

/* The value of key (touching it, as a read), or -1. */
static int get(bk__table_t *t, const char *key)
{
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(t, key, strlen(key), &h);
    struct tent *e = (struct tent *)bk__table_find(s, key, strlen(key), h);
    if (e)
        bk__table_touch(&e->t);
    int v = e ? e->value : -1;
    bk__table_unlock(s);
    return v;
}

static bk__table_counts_t counts(bk__table_t *t)
{
    bk__table_counts_t n = {0};
    for (size_t i = 0; i < bk__table_shards(t); i++) {
        bk__table_shard_t *s = bk__table_shard(t, i);
        pthread_mutex_lock(bk__table_mutex(s));
        bk__table_counts(s, &n);
        pthread_mutex_unlock(bk__table_mutex(s));
    }
    return n;
}

START_TEST(insert_find_replace_delete)
{
    bk__table_t *t = table(4, 0, 0);
    ck_assert_int_eq(put(t, "a", 1, 10), BK_OK);
    ck_assert_int_eq(put(t, "b", 2, 10), BK_OK);
    ck_assert_int_eq(get(t, "a"), 1);
    ck_assert_int_eq(get(t, "b"), 2);
    ck_assert_int_eq(get(t, "c"), -1);
    /* Keys are bytes: a prefix is another key. */
    ck_assert_int_eq(get(t, ""), -1);
    ck_assert_int_eq(put(t, "a", 3, 20), BK_OK); /* replaces, freeing the old one */
    ck_assert_int_eq(nfreed, 1);
    ck_assert_str_eq(freed[0], "a");
    ck_assert_int_eq(get(t, "a"), 3);
    bk__table_counts_t n = counts(t);
    ck_assert_uint_eq(n.entries, 2);
    ck_assert_uint_eq(n.bytes, 30);
    ck_assert_uint_eq(n.evictions, 0);
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(t, "b", 1, &h);
    bk__table_delete(s, bk__table_find(s, "b", 1, h));
    ck_assert_ptr_null(bk__table_find(s, "b", 1, h));
    bk__table_unlock(s);
    ck_assert_int_eq(get(t, "b"), -1);
    ck_assert_uint_eq(counts(t).entries, 1);
    bk__table_free(t);
    ck_assert_int_eq(nfreed, 3); /* the old a, b, and the new a at free */
}
END_TEST

START_TEST(bad_options)
{
    bk__table_t *t = (bk__table_t *)1;
    bk__table_opts_t o = {.shards = 3, .free_entry = free_quiet};
    ck_assert_int_eq(bk__table_new(&o, &t), BK_EINVAL);
    ck_assert_ptr_null(t);
    o.shards = 0;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_EINVAL);
    o = (bk__table_opts_t){.shards = 8, .max_entries = 7, .free_entry = free_quiet};
    ck_assert_int_eq(bk__table_new(&o, &t), BK_EINVAL); /* a shard with no room */
    o.free_entry = NULL;
    o.max_entries = 8;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_EINVAL);
}
END_TEST

START_TEST(eviction_is_clock_second_chance)
{
    bk__table_t *t = table(1, 3, 0);
    ck_assert_int_eq(put(t, "a", 1, 1), BK_OK);
    ck_assert_int_eq(put(t, "b", 2, 1), BK_OK);
    ck_assert_int_eq(put(t, "c", 3, 1), BK_OK);
    ck_assert_int_eq(get(t, "a"), 1); /* a read: a second chance */
    ck_assert_int_eq(put(t, "d", 4, 1), BK_OK);
    /* a was the oldest but read: it moves to the new end, and b goes. */
    ck_assert_int_eq(nfreed, 1);
    ck_assert_str_eq(freed[0], "b");
    ck_assert_int_eq(put(t, "e", 5, 1), BK_OK);
    ck_assert_str_eq(freed[1], "c"); /* c was never read */
    /* Old to new: d a e, no marks left (a's was spent on its second chance). */
    ck_assert_int_eq(put(t, "f", 6, 1), BK_OK);
    ck_assert_str_eq(freed[2], "d");
    ck_assert_int_eq(put(t, "g", 7, 1), BK_OK);
    ck_assert_str_eq(freed[3], "a");
    ck_assert_int_eq(get(t, "e"), 5);
    ck_assert_int_eq(get(t, "f"), 6);
    ck_assert_int_eq(get(t, "g"), 7);
    ck_assert_uint_eq(counts(t).evictions, 4);
    ck_assert_uint_eq(counts(t).entries, 3);
    bk__table_free(t);
}
END_TEST

START_TEST(every_entry_read_still_evicts)
{
    bk__table_t *t = table(1, 2, 0);
    ck_assert_int_eq(put(t, "a", 1, 1), BK_OK);
    ck_assert_int_eq(put(t, "b", 2, 1), BK_OK);
    get(t, "a");
    get(t, "b");
    ck_assert_int_eq(put(t, "c", 3, 1), BK_OK); /* both lose their mark; a goes */
    ck_assert_int_eq(nfreed, 1);
    ck_assert_str_eq(freed[0], "a");
    ck_assert_int_eq(get(t, "c"), 3); /* the new entry is never evicted */
    bk__table_free(t);
}
END_TEST

START_TEST(byte_bound_holds)
{
    bk__table_t *t = table(2, 0, 200); /* 100 bytes a shard */
    ck_assert_int_eq(put(t, "big", 1, 101), BK_ERANGE);
    ck_assert_int_eq(get(t, "big"), -1);
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(put(t, key, i, 30), BK_OK);
        for (size_t j = 0; j < bk__table_shards(t); j++) {
            bk__table_counts_t n = {0};
            bk__table_counts(bk__table_shard(t, j), &n);
            ck_assert_uint_le(n.bytes, 100);
            ck_assert_uint_le(n.entries, 3);
        }
        ck_assert_int_eq(get(t, key), i); /* the newest is kept */
    }
    bk__table_counts_t n = counts(t);
    ck_assert_uint_eq(n.evictions + n.entries, 100);
    ck_assert_uint_eq(n.bytes, n.entries * 30);
    bk__table_free(t);
}
END_TEST

START_TEST(entry_bound_spreads_the_remainder)
{
    bk__table_t *t = table(4, 10, 0); /* 3 3 2 2 */
    char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(put(t, key, i, 1), BK_OK);
    }
    ck_assert_uint_eq(counts(t).entries, 10);
    bk__table_free(t);
}
END_TEST

START_TEST(grows_and_finds_everything)
{
    bk__table_opts_t o = {.shards = 2, .free_entry = free_quiet};
    bk__table_t *t;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_OK);
    char key[16];
    for (int i = 0; i < 20000; i++) { /* 10000 a shard: many doublings past 64 buckets */
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(put(t, key, i, 1), BK_OK);
    }
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(get(t, key), i);
    }
    ck_assert_uint_eq(counts(t).entries, 20000);
    bk__table_free(t);
}
END_TEST

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    return h;
}

START_TEST(keys_colliding_unseeded_still_spread)
{
    /* 1600 keys that FNV-1a (unseeded) would all put in one of 16 shards. */
    bk__table_opts_t o = {.shards = 16, .free_entry = free_quiet};
    bk__table_t *t;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_OK);
    char key[24];
    int n = 0;
    for (unsigned i = 0; n < 1600; i++) {
        snprintf(key, sizeof key, "user:%u", i);
        if ((fnv1a(key) & 15) != 0)
            continue;
        ck_assert_int_eq(put(t, key, n++, 1), BK_OK);
    }
    size_t max = 0;
    for (size_t i = 0; i < 16; i++) {
        bk__table_counts_t c = {0};
        bk__table_counts(bk__table_shard(t, i), &c);
        if (c.entries > max)
            max = c.entries;
    }
    ck_assert_msg(max <= 200, "max shard %zu (mean 100)", max);
    bk__table_free(t);
}
END_TEST

/* About 170 keys in all (a0..a99, b0..b99, shared0..shared99, a third each),
 * under the bound of 256 (64 a shard): revisits find their keys. */
struct worker {
    bk__table_t *t;
    int id;
    int found;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char key[24];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "%s%d", i % 3 == 0 ? "shared" : w->id ? "b" : "a", i % 100);
        size_t klen = strlen(key);
        uint64_t h;
        bk__table_shard_t *s = bk__table_lock(w->t, key, klen, &h);
        bk__table_entry_t *e = bk__table_find(s, key, klen, h);
        if (e && i % 7 == 0) {
            bk__table_delete(s, e);
        } else if (e) {
            bk__table_touch(e);
            w->found++;
        } else {
            struct tent *n = calloc(1, sizeof *n);
            if (n) {
                memcpy(n->key, key, klen + 1);
                n->t = (bk__table_entry_t){.key = n->key, .klen = klen, .bytes = 8};
                if (bk__table_insert(s, &n->t, h) != BK_OK)
                    free(n);
            }
        }
        bk__table_unlock(s);
    }
    return NULL;
}

START_TEST(two_threads)
{
    bk__table_opts_t o = {.shards = 4, .max_entries = 256, .max_bytes = 4 * 800, .spin_first = true,
                          .free_entry = free_quiet};
    bk__table_t *t;
    ck_assert_int_eq(bk__table_new(&o, &t), BK_OK);
    struct worker w[2] = {{t, 0, 0}, {t, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    bk__table_counts_t n = counts(t);
    ck_assert_uint_le(n.entries, 256);
    ck_assert_uint_eq(n.bytes, n.entries * 8);
    ck_assert_int_gt(w[0].found + w[1].found, 0);
    bk__table_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, insert_find_replace_delete);
    tcase_add_test(tc, bad_options);
    tcase_add_test(tc, eviction_is_clock_second_chance);
    tcase_add_test(tc, every_entry_read_still_evicts);
    tcase_add_test(tc, byte_bound_holds);
    tcase_add_test(tc, entry_bound_spreads_the_remainder);
    tcase_add_test(tc, grows_and_finds_everything);
    tcase_add_test(tc, keys_colliding_unseeded_still_spread);
    tcase_add_test(tc, two_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(suite());
}
