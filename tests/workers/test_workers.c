/* Unit tests of the worker pool: completions on the right thread, the bounded
 * queue, drain and cancel at shutdown. No sleeps: gates and the event loop.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <backend/workers.h>

/* A gate that jobs wait on until the test opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int gate_waiting; /* jobs currently blocked at the gate */

static void gate_reset(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = false;
    gate_waiting = 0;
    pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_wait_for_waiters(int n)
{
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < n)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

struct rec {
    atomic_int ran;      /* work calls */
    atomic_int done;     /* done calls */
    int status;          /* last status */
    pthread_t work_thread, done_thread;
    bool gated;          /* work blocks at the gate */
};

static void work(void *arg)
{
    struct rec *r = arg;
    r->work_thread = pthread_self();
    if (r->gated) {
        pthread_mutex_lock(&gate_mu);
        gate_waiting++;
        pthread_cond_broadcast(&gate_cv);
        while (!gate_open)
            pthread_cond_wait(&gate_cv, &gate_mu);
        pthread_mutex_unlock(&gate_mu);
    }
    atomic_fetch_add(&r->ran, 1);
}

static atomic_int total_done;

static void done(void *arg, int status)
{
    struct rec *r = arg;
    r->status = status;
    r->done_thread = pthread_self();
    atomic_fetch_add(&r->done, 1);
    atomic_fetch_add(&total_done, 1);
}

/* Runs the loop until want completions have arrived. A persistent timer keeps the
 * loop blocking (instead of returning at once when nothing is pending yet); the
 * 60 s bound makes a lost completion fail the test instead of hanging it. */
static struct event *keepalive;

static void tick(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
}

static void loop_until(struct event_base *base, int want)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (atomic_load(&total_done) >= want)
            break;
        event_base_loop(base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - start.tv_sec < 60);
    ck_assert_int_eq(atomic_load(&total_done), want);
}

static struct event_base *new_base(void)
{
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    keepalive = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval ms10 = {0, 10000};
    event_add(keepalive, &ms10);
    atomic_store(&total_done, 0);
    gate_reset();
    return base;
}

static void free_base(struct event_base *base)
{
    event_free(keepalive);
    event_base_free(base);
}

static bk_workers_t *new_pool(unsigned threads, size_t queue_max)
{
    bk_workers_opts_t o;
    bk_workers_opts_init(&o);
    o.threads = threads;
    o.queue_max = queue_max;
    bk_workers_t *w = NULL;
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_OK);
    ck_assert_ptr_nonnull(w);
    return w;
}

START_TEST(opts_defaults)
{
    bk_workers_opts_t o;
    memset(&o, 0xAB, sizeof o);
    bk_workers_opts_init(&o);
    ck_assert_uint_ge(o.threads, 1);
    ck_assert_uint_eq(o.queue_max, 1024);
    ck_assert_str_eq(o.name, "bk-work");

    bk_workers_t *w = NULL;
    ck_assert_int_eq(bk_workers_new(NULL, &w), BK_OK);
    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.threads, o.threads);
    ck_assert_uint_eq(st.queued, 0);
    bk_workers_free(w);
}
END_TEST

START_TEST(invalid_arguments)
{
    bk_workers_opts_t o;
    bk_workers_opts_init(&o);
    bk_workers_t *w = (bk_workers_t *)&o;
    ck_assert_int_eq(bk_workers_new(&o, NULL), BK_EINVAL);
    o.threads = 0;
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_EINVAL);
    ck_assert_ptr_null(w);
    bk_workers_opts_init(&o);
    o.queue_max = 0;
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_EINVAL);

    w = new_pool(1, 4);
    ck_assert_int_eq(bk_workers_submit(NULL, work, done, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_workers_submit(w, NULL, done, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_workers_shutdown(NULL, BK_WORKERS_DRAIN), BK_EINVAL);
    ck_assert_int_eq(bk_workers_shutdown(w, (bk_workers_shutdown_mode_t)7), BK_EINVAL);
    bk_workers_free(w);
    bk_workers_free(NULL);
}
END_TEST

START_TEST(done_runs_on_the_loop_thread)
{
    struct event_base *base = new_base();
    bk_workers_t *w = new_pool(4, 256);
    enum { N = 200 };
    struct rec *r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);
    loop_until(base, N);
    pthread_t me = pthread_self();
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&r[i].ran), 1);
        ck_assert_int_eq(atomic_load(&r[i].done), 1);
        ck_assert_int_eq(r[i].status, BK_OK);
        ck_assert(pthread_equal(r[i].done_thread, me));
        ck_assert(!pthread_equal(r[i].work_thread, me));
    }
    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.completed, N);
    ck_assert_uint_eq(st.rejected, 0);
    bk_workers_free(w);
    free_base(base);
    free(r);
}
END_TEST

START_TEST(done_without_base_runs_on_the_worker)
{
    struct event_base *base = new_base();
    bk_workers_t *w = new_pool(2, 8);
    struct rec r = {0};
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    ck_assert_int_eq(atomic_load(&r.done), 1);
    ck_assert(pthread_equal(r.done_thread, r.work_thread));
    ck_assert(!pthread_equal(r.done_thread, pthread_self()));
    bk_workers_free(w);
    free_base(base);
}
END_TEST

START_TEST(full_queue_answers_busy)
{
    struct event_base *base = new_base();
    enum { Q = 5 };
    bk_workers_t *w = new_pool(1, Q);
    struct rec blocker = {.gated = true};
    ck_assert_int_eq(bk_workers_submit(w, work, done, &blocker, base), BK_OK);
    gate_wait_for_waiters(1); /* the one thread is busy, the queue is empty */

    struct rec r[Q + 1];
    memset(r, 0, sizeof r);
    for (int i = 0; i < Q; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r[Q], base), BK_EBUSY);
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r[Q], base), BK_EBUSY);

    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.queued, Q);
    ck_assert_uint_eq(st.running, 1);
    ck_assert_uint_eq(st.rejected, 2);

    gate_release();
    loop_until(base, Q + 1);
    for (int i = 0; i < Q; i++)
        ck_assert_int_eq(atomic_load(&r[i].done), 1);
    /* The refused job never ran and never completed. */
    ck_assert_int_eq(atomic_load(&r[Q].ran), 0);
    ck_assert_int_eq(atomic_load(&r[Q].done), 0);
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.completed, Q + 1);
    ck_assert_uint_eq(st.queued, 0);
    bk_workers_free(w);
    free_base(base);
}
END_TEST

START_TEST(shutdown_drain_runs_everything)
{
    struct event_base *base = new_base();
    enum { N = 50 };
    bk_workers_t *w = new_pool(1, N + 1);
    struct rec blocker = {.gated = true};
    ck_assert_int_eq(bk_workers_submit(w, work, done, &blocker, base), BK_OK);
    gate_wait_for_waiters(1);
    struct rec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);
    gate_release();
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    /* Every queued job ran before the threads stopped; completions wait on the loop. */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(atomic_load(&r[i].ran), 1);
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r[0], base), BK_ECLOSED);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_ECLOSED);
    loop_until(base, N + 1);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(r[i].status, BK_OK);
    bk_workers_free(w);
    free_base(base);
}
END_TEST

static void *cancel_thread(void *arg)
{
    return (void *)(intptr_t)bk_workers_shutdown(arg, BK_WORKERS_CANCEL);
}

START_TEST(shutdown_cancel_drops_the_queue)
{
    struct event_base *base = new_base();
    enum { N = 20 };
    bk_workers_t *w = new_pool(1, N);
    struct rec running = {.gated = true};
    ck_assert_int_eq(bk_workers_submit(w, work, done, &running, base), BK_OK);
    gate_wait_for_waiters(1);
    struct rec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);

    /* Shutdown waits for the running job, so it runs on its own thread while this
     * one opens the gate once the queue has been taken. */
    pthread_t stopper;
    ck_assert_int_eq(pthread_create(&stopper, NULL, cancel_thread, w), 0);
    bk_workers_stats_t st;
    do {
        sched_yield();
        bk_workers_stats(w, &st);
    } while (st.canceled < N);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r[0], base), BK_ECLOSED);
    gate_release();
    void *rc;
    pthread_join(stopper, &rc);
    ck_assert_int_eq((int)(intptr_t)rc, BK_OK);
    bk_workers_free(w);
    loop_until(base, N + 1);
    ck_assert_int_eq(running.status, BK_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&r[i].ran), 0);
        ck_assert_int_eq(atomic_load(&r[i].done), 1);
        ck_assert_int_eq(r[i].status, BK_ECANCELED);
    }
    free_base(base);
}
END_TEST

static bk_workers_t *self_pool;
static atomic_int self_rc;

static void shutdown_self(void *arg)
{
    (void)arg;
    atomic_store(&self_rc, bk_workers_shutdown(self_pool, BK_WORKERS_DRAIN));
}

START_TEST(shutdown_from_a_worker_is_refused)
{
    struct event_base *base = new_base();
    self_pool = new_pool(1, 4);
    atomic_store(&self_rc, 1);
    ck_assert_int_eq(bk_workers_submit(self_pool, shutdown_self, NULL, NULL, NULL), BK_OK);
    bk_workers_free(self_pool);
    ck_assert_int_eq(atomic_load(&self_rc), BK_EINVAL);
    free_base(base);
}
END_TEST

struct submitter {
    bk_workers_t *w;
    struct event_base *base;
    struct rec *recs;
    int n, accepted;
};

static void *submit_many(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < s->n; i++)
        if (bk_workers_submit(s->w, work, done, &s->recs[i], s->base) == BK_OK)
            s->accepted++;
    return NULL;
}

START_TEST(concurrent_submitters)
{
    struct event_base *base = new_base();
    enum { T = 4, N = 2000 };
    bk_workers_t *w = new_pool(3, 64);
    struct submitter sub[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        sub[t] = (struct submitter){w, base, calloc(N, sizeof(struct rec)), N, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, submit_many, &sub[t]), 0);
    }
    int accepted = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        accepted += sub[t].accepted;
    }
    /* Every accepted job completes exactly once; every refused one is counted. */
    loop_until(base, accepted);
    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.completed, (uint64_t)accepted);
    ck_assert_uint_eq(st.rejected, (uint64_t)(T * N - accepted));
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(atomic_load(&sub[t].recs[i].done), atomic_load(&sub[t].recs[i].ran));
            ck_assert_int_le(atomic_load(&sub[t].recs[i].done), 1);
        }
        free(sub[t].recs);
    }
    bk_workers_free(w);
    free_base(base);
}
END_TEST

static Suite *workers_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, opts_defaults);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, done_runs_on_the_loop_thread);
    tcase_add_test(tc, done_without_base_runs_on_the_worker);
    tcase_add_test(tc, full_queue_answers_busy);
    tcase_add_test(tc, shutdown_drain_runs_everything);
    tcase_add_test(tc, shutdown_cancel_drops_the_queue);
    tcase_add_test(tc, shutdown_from_a_worker_is_refused);
    tcase_add_test(tc, concurrent_submitters);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    evthread_use_pthreads();
    SRunner *sr = srunner_create(workers_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
