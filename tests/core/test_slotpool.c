/* The slot pool and its counting core (lib/core/slotpool.c), linked from their
 * sources (hidden in the library): the bound, affinity, validate and close,
 * idle reaping, shutdown, and deadlines on the fake clock, which wake a waiter
 * when the test advances the clock past them and not before.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <check.h>

#include "check_main.h"

#include "core/error_int.h"
#include "core/slotpool_int.h"

#define MS BK_NSEC_PER_MSEC
#define SEC BK_NSEC_PER_SEC

/* Resources: numbered ints; "broken" ones fail validate. */
struct res_log {
    atomic_int created, closed, next_id;
    bool fail_create;
};

struct res {
    int id;
    bool broken;
};

static int res_create(void **out, void *ud, bk_error_t *err)
{
    struct res_log *l = ud;
    if (l->fail_create)
        return bk__error(err, BK_EUNAVAIL, "no server");
    struct res *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    r->id = atomic_fetch_add(&l->next_id, 1);
    atomic_fetch_add(&l->created, 1);
    *out = r;
    return BK_OK;
}

static bool res_validate(void *res, void *ud)
{
    (void)ud;
    return !((struct res *)res)->broken;
}

static void res_close(void *res, void *ud)
{
    struct res_log *l = ud;
    atomic_fetch_add(&l->closed, 1);
    free(res);
}

static bk__slotpool_t *new_pool(struct res_log *l, unsigned size, bool affinity, const bk_clock_t *clock)
{
    bk__slotpool_opts_t o = {.size = size, .affinity = affinity, .clock = clock};
    bk__slotpool_ops_t ops = {res_create, res_validate, res_close, l};
    bk__slotpool_t *p;
    bk_error_t err;
    ck_assert_int_eq(bk__slotpool_new(&o, &ops, &p, &err), BK_OK);
    return p;
}

static bk__slotpool_stats_t stats(bk__slotpool_t *p)
{
    bk__slotpool_stats_t st;
    bk__slotpool_stats(p, &st);
    return st;
}

START_TEST(acquire_release_reuses_and_bounds)
{
    struct res_log l = {0};
    bk__slotpool_t *p = new_pool(&l, 2, false, NULL);
    ck_assert_int_eq(l.created, 0); /* lazily */
    unsigned a, b, c;
    void *ra, *rb, *rc;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &a, &ra, NULL), BK_OK);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &b, &rb, NULL), BK_OK);
    ck_assert_uint_ne(a, b);
    ck_assert_ptr_ne(ra, rb);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &c, &rc, NULL), BK_ETIMEDOUT); /* full, no wait */
    bk__slotpool_stats_t st = stats(p);
    ck_assert_uint_eq(st.in_use, 2);
    ck_assert_uint_eq(st.open, 2);
    ck_assert_uint_eq(st.timeouts, 1);
    ck_assert_uint_eq(st.waits, 0);
    bk__slotpool_release(p, a, false);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &c, &rc, NULL), BK_OK);
    ck_assert_ptr_eq(rc, ra); /* the same resource, reused */
    ck_assert_int_eq(l.created, 2);
    bk__slotpool_release(p, b, true); /* broken: closed, slot emptied */
    ck_assert_int_eq(l.closed, 1);
    ck_assert_uint_eq(stats(p).open, 1);
    bk__slotpool_release(p, c, false);
    bk__slotpool_free(p);
    ck_assert_int_eq(l.closed, 2);
}
END_TEST

struct bound_run {
    bk__slotpool_t *p;
    atomic_int holders, max_holders;
};

static void *bound_worker(void *arg)
{
    struct bound_run *r = arg;
    for (int i = 0; i < 3000; i++) {
        unsigned s;
        void *res;
        ck_assert_int_eq(bk__slotpool_acquire(r->p, BK__CLOCK_NEVER, &s, &res, NULL), BK_OK);
        int h = atomic_fetch_add(&r->holders, 1) + 1;
        int m = atomic_load(&r->max_holders);
        while (h > m && !atomic_compare_exchange_weak(&r->max_holders, &m, h))
            ;
        sched_yield();
        atomic_fetch_sub(&r->holders, 1);
        bk__slotpool_release(r->p, s, false);
    }
    return NULL;
}

START_TEST(bound_holds_under_four_threads)
{
    struct res_log l = {0};
    struct bound_run r = {.p = new_pool(&l, 2, true, NULL)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bound_worker, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_le(r.max_holders, 2);
    ck_assert_int_ge(r.max_holders, 1);
    ck_assert_int_le(l.created, 2); /* never more resources than slots */
    bk__slotpool_stats_t st = stats(r.p);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.timeouts, 0);
    bk__slotpool_free(r.p);
}
END_TEST

/* The other thread: takes a slot while main holds one, releases it after main
 * released its own, so that the other's slot is the most recently released. */
struct other {
    bk__slotpool_t *p;
    pthread_barrier_t took, main_released;
    void *res;
};

static void *other_thread(void *arg)
{
    struct other *o = arg;
    unsigned s;
    ck_assert_int_eq(bk__slotpool_acquire(o->p, 0, &s, &o->res, NULL), BK_OK);
    pthread_barrier_wait(&o->took);
    pthread_barrier_wait(&o->main_released);
    bk__slotpool_release(o->p, s, false);
    return NULL;
}

/* Which resource main gets back after the dance above. */
static void *after_dance(bool affinity, void **mine, void **others)
{
    struct res_log l = {0};
    struct other o = {.p = new_pool(&l, 4, affinity, NULL)};
    pthread_barrier_init(&o.took, NULL, 2);
    pthread_barrier_init(&o.main_released, NULL, 2);
    unsigned s;
    ck_assert_int_eq(bk__slotpool_acquire(o.p, 0, &s, mine, NULL), BK_OK);
    pthread_t t;
    pthread_create(&t, NULL, other_thread, &o);
    pthread_barrier_wait(&o.took);
    bk__slotpool_release(o.p, s, false);
    pthread_barrier_wait(&o.main_released);
    pthread_join(t, NULL);
    void *got;
    ck_assert_int_eq(bk__slotpool_acquire(o.p, 0, &s, &got, NULL), BK_OK);
    *others = o.res;
    bk__slotpool_release(o.p, s, false);
    bk__slotpool_free(o.p);
    pthread_barrier_destroy(&o.took);
    pthread_barrier_destroy(&o.main_released);
    return got;
}

START_TEST(affinity_gives_a_thread_its_slot_back)
{
    void *mine, *others;
    /* Pointers compared after the pool is gone: only their identity matters. */
    ck_assert_ptr_eq(after_dance(true, &mine, &others), mine);
    /* Without affinity, the most recently released (the other's) comes first:
     * the assertion above is not true by accident. */
    ck_assert_ptr_eq(after_dance(false, &mine, &others), others);
}
END_TEST

START_TEST(validate_replaces_a_broken_resource)
{
    struct res_log l = {0};
    bk__slotpool_t *p = new_pool(&l, 1, false, NULL);
    unsigned s;
    void *r;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    int first = ((struct res *)r)->id;
    ((struct res *)r)->broken = true; /* broke while idle, as a dropped connection */
    bk__slotpool_release(p, s, false);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    ck_assert_int_ne(((struct res *)r)->id, first);
    ck_assert_int_eq(l.closed, 1);
    ck_assert_int_eq(l.created, 2);
    bk__slotpool_release(p, s, false);

    /* A create that fails: its code and err, and the slot is not lost. */
    ((struct res *)r)->broken = true;
    l.fail_create = true;
    bk_error_t err;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, &err), BK_EUNAVAIL);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_uint_eq(stats(p).in_use, 0);
    ck_assert_uint_eq(stats(p).open, 0);
    l.fail_create = false;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    bk__slotpool_release(p, s, false);
    bk__slotpool_free(p);
    ck_assert_int_eq(l.closed, l.created);
}
END_TEST

START_TEST(idle_resources_are_reaped_on_the_clock)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    struct res_log l = {0};
    bk__slotpool_opts_t o = {.size = 3, .min_open = 1, .idle_timeout_ns = 10 * SEC, .clock = clock};
    bk__slotpool_ops_t ops = {res_create, res_validate, res_close, &l};
    bk__slotpool_t *p;
    ck_assert_int_eq(bk__slotpool_new(&o, &ops, &p, NULL), BK_OK);
    ck_assert_int_eq(l.created, 1); /* min_open, up front */
    unsigned s[3];
    void *r;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s[i], &r, NULL), BK_OK);
    for (int i = 0; i < 3; i++)
        bk__slotpool_release(p, s[i], false);
    bk_clock_fake_advance(clock, 9 * SEC);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s[0], &r, NULL), BK_OK);
    ck_assert_int_eq(l.closed, 0); /* not idle long enough yet */
    bk__slotpool_release(p, s[0], false);
    bk_clock_fake_advance(clock, 10 * SEC);
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s[0], &r, NULL), BK_OK);
    ck_assert_int_eq(l.closed, 2); /* down to min_open; the one acquired survives */
    ck_assert_uint_eq(stats(p).open, 1);
    bk__slotpool_release(p, s[0], false);
    bk__slotpool_free(p);
    bk_clock_free(clock);
}
END_TEST

/* A waiter on a full pool. */
struct waiter {
    bk__slotpool_t *p;
    bk__slotcount_t *count; /* or the counting core alone */
    const bk_clock_t *clock;
    int64_t timeout_ns;
    atomic_bool done;
    int rc;
    int64_t returned_at; /* on the fake clock */
};

static void *waiter_thread(void *arg)
{
    struct waiter *w = arg;
    if (w->p != NULL) {
        unsigned s;
        void *r;
        w->rc = bk__slotpool_acquire(w->p, w->timeout_ns, &s, &r, NULL);
        if (w->rc == BK_OK)
            bk__slotpool_release(w->p, s, false);
    } else {
        w->rc = bk__slotcount_enter(w->count, w->timeout_ns);
        if (w->rc == BK_OK)
            bk__slotcount_leave(w->count);
    }
    w->returned_at = bk_clock_mono_ns(w->clock);
    atomic_store(&w->done, true);
    return NULL;
}

/* Until the waiter is inside its wait: waits is counted under the lock the wait
 * releases, so once we see it the waiter is blocked (or about to be, lock held). */
static void until_waiting(struct waiter *w, uint64_t n)
{
    for (;;) {
        uint64_t waits;
        if (w->p != NULL) {
            waits = stats(w->p).waits;
        } else {
            pthread_mutex_lock(&w->count->mu);
            waits = w->count->waits;
            pthread_mutex_unlock(&w->count->mu);
        }
        if (waits >= n)
            return;
        sched_yield();
    }
}

/* A waiter that ran after an advance had every chance to return by now. */
static void ck_still_waiting(struct waiter *w)
{
    for (int i = 0; i < 2000; i++) {
        ck_assert_msg(!atomic_load(&w->done), "the waiter returned %s before its deadline", bk_err_name(w->rc));
        sched_yield();
    }
}

START_TEST(deadline_times_out_when_the_fake_clock_passes_it)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    bk_clock_fake_advance(clock, 1000 * SEC); /* a deadline is not an offset from 0 */
    struct res_log l = {0};
    bk__slotpool_t *p = new_pool(&l, 1, false, clock);
    unsigned s;
    void *r;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    struct waiter w = {.p = p, .clock = clock, .timeout_ns = 30 * SEC};
    pthread_t t;
    pthread_create(&t, NULL, waiter_thread, &w);
    until_waiting(&w, 1);
    ck_still_waiting(&w); /* real time passing moves nothing */
    bk_clock_fake_advance(clock, 29 * SEC);
    ck_still_waiting(&w);
    bk_clock_sleep_ns(clock, SEC - 1); /* a sleep on the clock advances it too */
    ck_still_waiting(&w);
    bk_clock_fake_advance(clock, 1);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, BK_ETIMEDOUT);
    ck_assert_int_eq(w.returned_at, 1030 * SEC); /* exactly at the deadline, not before */
    ck_assert_uint_eq(stats(p).timeouts, 1);
    ck_assert_uint_eq(stats(p).waits, 1);

    /* A release within the deadline hands the slot over. */
    struct waiter w2 = {.p = p, .clock = clock, .timeout_ns = 30 * SEC};
    pthread_create(&t, NULL, waiter_thread, &w2);
    until_waiting(&w2, 2);
    bk_clock_fake_advance(clock, 10 * SEC);
    ck_still_waiting(&w2);
    bk__slotpool_release(p, s, false);
    pthread_join(t, NULL);
    ck_assert_int_eq(w2.rc, BK_OK);
    ck_assert_int_eq(w2.returned_at, 1040 * SEC);
    bk__slotpool_free(p);
    bk_clock_free(clock);
}
END_TEST

START_TEST(counting_core_waits_on_the_fake_clock)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    bk__slotcount_t c;
    ck_assert_int_eq(bk__slotcount_init(&c, 0, clock), BK_EINVAL);
    ck_assert_int_eq(bk__slotcount_init(&c, 1, clock), BK_OK);
    ck_assert_int_eq(bk__slotcount_enter(&c, 0), BK_OK);
    ck_assert_int_eq(bk__slotcount_enter(&c, 0), BK_ETIMEDOUT);
    struct waiter w = {.count = &c, .clock = clock, .timeout_ns = 5 * SEC};
    pthread_t t;
    pthread_create(&t, NULL, waiter_thread, &w);
    until_waiting(&w, 1);
    bk_clock_fake_advance(clock, 5 * SEC - 1);
    ck_still_waiting(&w);
    bk_clock_fake_advance(clock, 2); /* past it */
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, BK_ETIMEDOUT);
    ck_assert_int_eq(w.returned_at, 5 * SEC + 1);
    ck_assert_uint_eq(bk__slotcount_in_use(&c), 1);
    bk__slotcount_leave(&c);
    ck_assert_uint_eq(bk__slotcount_in_use(&c), 0);
    bk__slotcount_destroy(&c);
    bk_clock_free(clock);
}
END_TEST

START_TEST(system_clock_deadline_is_bounded)
{
    struct res_log l = {0};
    bk__slotpool_t *p = new_pool(&l, 1, false, NULL);
    unsigned s, s2;
    void *r;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    int64_t t0 = bk_clock_mono_ns(NULL);
    ck_assert_int_eq(bk__slotpool_acquire(p, 20 * MS, &s2, &r, NULL), BK_ETIMEDOUT);
    ck_assert_int_ge(bk_clock_mono_ns(NULL) - t0, 20 * MS);
    bk__slotpool_release(p, s, false);
    bk__slotpool_free(p);
}
END_TEST

START_TEST(shutdown_wakes_waiters)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    struct res_log l = {0};
    bk__slotpool_t *p = new_pool(&l, 1, false, clock);
    unsigned s;
    void *r;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    struct waiter w[2] = {{.p = p, .clock = clock, .timeout_ns = BK__CLOCK_NEVER},
                          {.p = p, .clock = clock, .timeout_ns = 60 * SEC}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, waiter_thread, &w[i]);
    until_waiting(&w[0], 2);
    ck_still_waiting(&w[0]);
    bk__slotpool_shutdown(p);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].rc, BK_ECLOSED);
        ck_assert_int_eq(w[i].returned_at, 0); /* woken by the shutdown, not by time */
    }
    unsigned s2;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s2, &r, NULL), BK_ECLOSED);
    bk__slotpool_release(p, s, false); /* a holder still gives its slot back */
    bk__slotpool_free(p);
    ck_assert_int_eq(l.closed, 1);
    bk_clock_free(clock);
}
END_TEST

START_TEST(bad_options_are_refused)
{
    bk__slotpool_t *p;
    bk__slotpool_opts_t o = {.size = 0};
    ck_assert_int_eq(bk__slotpool_new(&o, NULL, &p, NULL), BK_EINVAL);
    o.size = 2;
    o.min_open = 3;
    ck_assert_int_eq(bk__slotpool_new(&o, NULL, &p, NULL), BK_EINVAL);
    /* No callbacks: a bound with NULL resources. */
    o.min_open = 0;
    ck_assert_int_eq(bk__slotpool_new(&o, NULL, &p, NULL), BK_OK);
    unsigned s;
    void *r = &o;
    ck_assert_int_eq(bk__slotpool_acquire(p, 0, &s, &r, NULL), BK_OK);
    ck_assert_ptr_null(r);
    bk__slotpool_release(p, s, false);
    bk__slotpool_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slotpool");
    TCase *tc = tcase_create("slotpool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, acquire_release_reuses_and_bounds);
    tcase_add_test(tc, bound_holds_under_four_threads);
    tcase_add_test(tc, affinity_gives_a_thread_its_slot_back);
    tcase_add_test(tc, validate_replaces_a_broken_resource);
    tcase_add_test(tc, idle_resources_are_reaped_on_the_clock);
    tcase_add_test(tc, deadline_times_out_when_the_fake_clock_passes_it);
    tcase_add_test(tc, counting_core_waits_on_the_fake_clock);
    tcase_add_test(tc, system_clock_deadline_is_bounded);
    tcase_add_test(tc, shutdown_wakes_waiters);
    tcase_add_test(tc, bad_options_are_refused);
    suite_add_tcase(s, tc);
    return bk_test_run(s);
}
