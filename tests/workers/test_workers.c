/* Unit tests of the worker pool: completions on the right thread, the bounded
 * queue, drain and cancel at shutdown. No sleeps: gates and the event loop.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* pthread_getname_np */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "check_main.h"
#include "gate.h"
#include <event2/event.h>
#include <event2/thread.h>

#include <backend/workers.h>

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
    if (r->gated)
        gate_pass();
    atomic_fetch_add(&r->ran, 1);
}

static atomic_int total_done;

static void done(int status, void *arg)
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

/* Waits (bounded) until shutdown has taken n queued jobs out of the pool. */
static void wait_canceled(bk_workers_t *w, uint64_t n)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    bk_workers_stats_t st;
    for (;;) {
        bk_workers_stats(w, &st);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (st.canceled >= n || now.tv_sec - start.tv_sec >= 60)
            break;
        sched_yield();
    }
    ck_assert_uint_eq(st.canceled, n);
}

START_TEST(opts_defaults)
{
    bk_workers_opts_t o;
    memset(&o, 0xAB, sizeof o);
    bk_workers_opts_init(&o);
    ck_assert_uint_ge(o.threads, 1);
    ck_assert_uint_eq(o.queue_max, 1024);
    ck_assert_str_eq(o.name, "bk-work");
    /* It clears the struct first: the reserved_ tail is zero. */
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);

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
    ck_assert_ptr_null(w);
    o.queue_max = SIZE_MAX; /* a ring that size cannot even be addressed */
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_EINVAL);
    ck_assert_ptr_null(w);
    bk_workers_opts_init(NULL);

    /* A NULL name means the default. */
    bk_workers_opts_init(&o);
    o.threads = 1;
    o.name = NULL;
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_OK);
    bk_workers_free(w);

    bk_workers_stats_t st;
    memset(&st, 0xAB, sizeof st);
    bk_workers_stats(NULL, &st);
    ck_assert_uint_eq(st.threads, 0);
    ck_assert_uint_eq(st.completed, 0);

    w = new_pool(1, 4);
    bk_workers_stats(w, NULL);
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
    enum { Q = 5, ROUNDS = 3 };
    bk_workers_t *w = new_pool(1, Q);
    /* Several rounds, so the ring's head wraps around with jobs in it. */
    for (int round = 0; round < ROUNDS; round++) {
        gate_reset();
        atomic_store(&total_done, 0);
        struct rec blocker = {.gated = true};
        ck_assert_int_eq(bk_workers_submit(w, work, done, &blocker, base), BK_OK);
        gate_wait_for(1); /* the one thread is busy, the queue is empty */

        struct rec r[Q + 1];
        memset(r, 0, sizeof r);
        for (int i = 0; i < Q; i++)
            ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[Q], base), BK_EBUSY);
        ck_assert_int_eq(bk_workers_submit(w, work, NULL, &r[Q], NULL), BK_EBUSY);

        bk_workers_stats_t st;
        bk_workers_stats(w, &st);
        ck_assert_uint_eq(st.queued, Q);
        ck_assert_uint_eq(st.running, 1);
        ck_assert_uint_eq(st.rejected, 2 * (round + 1));
        ck_assert_uint_eq(st.completed, (Q + 1) * round);

        gate_release();
        loop_until(base, Q + 1);
        ck_assert_int_eq(atomic_load(&blocker.done), 1);
        for (int i = 0; i < Q; i++) {
            ck_assert_int_eq(atomic_load(&r[i].ran), 1);
            ck_assert_int_eq(atomic_load(&r[i].done), 1);
            ck_assert_int_eq(r[i].status, BK_OK);
        }
        /* The refused job never ran and never completed. */
        ck_assert_int_eq(atomic_load(&r[Q].ran), 0);
        ck_assert_int_eq(atomic_load(&r[Q].done), 0);
        bk_workers_stats(w, &st);
        ck_assert_uint_eq(st.completed, (Q + 1) * (round + 1));
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
    }
    bk_workers_free(w);
    free_base(base);
}
END_TEST

/* One thread takes the queue in submission order. */
static atomic_int order_next;

static void record_order(void *arg)
{
    *(int *)arg = atomic_fetch_add(&order_next, 1);
}

START_TEST(one_thread_runs_jobs_in_fifo_order)
{
    struct event_base *base = new_base();
    enum { N = 40 };
    bk_workers_t *w = new_pool(1, N);
    struct rec blocker = {.gated = true};
    ck_assert_int_eq(bk_workers_submit(w, work, NULL, &blocker, NULL), BK_OK);
    gate_wait_for(1);
    int seen[N];
    atomic_store(&order_next, 0);
    for (int i = 0; i < N; i++) {
        seen[i] = -1;
        ck_assert_int_eq(bk_workers_submit(w, record_order, NULL, &seen[i], NULL), BK_OK);
    }
    gate_release();
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], i);
    bk_workers_free(w);
    free_base(base);
}
END_TEST

/* Thread names: "<prefix>-<index>", the prefix cut to 10 bytes. */
struct named {
    char name[32];
};

static void read_name(void *arg)
{
    struct named *n = arg;
    pthread_getname_np(pthread_self(), n->name, sizeof n->name);
    struct rec r = {.gated = true};
    work(&r); /* hold this thread until every thread has a job */
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static void check_names(const char *prefix, const char *want_prefix)
{
    gate_reset();
    enum { T = 3 };
    bk_workers_opts_t o;
    bk_workers_opts_init(&o);
    o.threads = T;
    o.queue_max = T;
    if (prefix != NULL)
        o.name = prefix;
    bk_workers_t *w = NULL;
    ck_assert_int_eq(bk_workers_new(&o, &w), BK_OK);
    struct named n[T];
    memset(n, 0, sizeof n);
    for (int i = 0; i < T; i++)
        ck_assert_int_eq(bk_workers_submit(w, read_name, NULL, &n[i], NULL), BK_OK);
    gate_wait_for(T); /* each job is on its own thread */
    gate_release();
    bk_workers_free(w);
    qsort(n, T, sizeof n[0], cmp_str);
    for (int i = 0; i < T; i++) {
        char want[32];
        snprintf(want, sizeof want, "%s-%d", want_prefix, i);
        ck_assert_str_eq(n[i].name, want);
        ck_assert_uint_le(strlen(n[i].name), 15);
    }
}

START_TEST(threads_are_named)
{
    check_names(NULL, "bk-work");
    check_names("db", "db");
    check_names("abcdefghijklmnopqrstuvwxyz", "abcdefghij");
}
END_TEST

/* Worker threads block every signal; the caller's mask is left as it was. */
struct masks {
    int sigint, sigterm, sighup, sigusr1;
};

static void read_mask(void *arg)
{
    struct masks *m = arg;
    sigset_t cur;
    sigemptyset(&cur);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    m->sigint = sigismember(&cur, SIGINT);
    m->sigterm = sigismember(&cur, SIGTERM);
    m->sighup = sigismember(&cur, SIGHUP);
    m->sigusr1 = sigismember(&cur, SIGUSR1);
}

START_TEST(workers_block_signals)
{
    sigset_t usr2, before, after;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, &before);
    pthread_sigmask(SIG_BLOCK, NULL, &before);

    bk_workers_t *w = new_pool(2, 4);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ck_assert_int_eq(sigismember(&after, SIGUSR2), 1);
    ck_assert_int_eq(sigismember(&after, SIGINT), sigismember(&before, SIGINT));
    ck_assert_int_eq(sigismember(&after, SIGTERM), sigismember(&before, SIGTERM));
    ck_assert_int_eq(sigismember(&after, SIGUSR1), sigismember(&before, SIGUSR1));

    struct masks m = {0};
    ck_assert_int_eq(bk_workers_submit(w, read_mask, NULL, &m, NULL), BK_OK);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    ck_assert_int_eq(m.sigint, 1);
    ck_assert_int_eq(m.sigterm, 1);
    ck_assert_int_eq(m.sighup, 1);
    ck_assert_int_eq(m.sigusr1, 1);
    bk_workers_free(w);
    pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
}
END_TEST

/* Callbacks may use the pool: the lock is not held while work or done runs, and a
 * done callback sees its own job counted in the stats. */
struct chain {
    bk_workers_t *w;
    struct event_base *base;
    int left, steps;
    bool counted; /* every done saw completed == steps so far */
    pthread_t loop_thread;
    bool on_loop;  /* every done ran on the loop thread (when base is set) */
};

static void chain_work(void *arg)
{
    (void)arg;
}

static void chain_done(int status, void *arg)
{
    struct chain *c = arg;
    c->steps++;
    bk_workers_stats_t st;
    bk_workers_stats(c->w, &st);
    if (status != BK_OK || st.completed != (uint64_t)c->steps)
        c->counted = false;
    if (c->base != NULL && !pthread_equal(pthread_self(), c->loop_thread))
        c->on_loop = false;
    if (--c->left > 0) {
        if (bk_workers_submit(c->w, chain_work, chain_done, c, c->base) != BK_OK)
            c->counted = false;
        return;
    }
    atomic_fetch_add(&total_done, 1);
}

START_TEST(callbacks_may_resubmit)
{
    struct event_base *base = new_base();
    enum { STEPS = 50 };
    /* done on the worker thread: it submits the next job from there */
    bk_workers_t *w = new_pool(2, 4);
    struct chain c = {w, NULL, STEPS, 0, true, pthread_self(), true};
    ck_assert_int_eq(bk_workers_submit(w, chain_work, chain_done, &c, NULL), BK_OK);
    loop_until(base, 1); /* the loop only times the wait here */
    /* Joining the workers also orders their writes to c before the reads below. */
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    ck_assert_int_eq(c.steps, STEPS);
    ck_assert(c.counted);
    bk_workers_free(w);

    /* done on the loop thread */
    atomic_store(&total_done, 0);
    w = new_pool(2, 4);
    c = (struct chain){w, base, STEPS, 0, true, pthread_self(), true};
    ck_assert_int_eq(bk_workers_submit(w, chain_work, chain_done, &c, base), BK_OK);
    loop_until(base, 1);
    ck_assert_int_eq(c.steps, STEPS);
    ck_assert(c.counted);
    ck_assert(c.on_loop);
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
    gate_wait_for(1);
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
    gate_wait_for(1);
    struct rec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], base), BK_OK);

    /* Shutdown waits for the running job, so it runs on its own thread while this
     * one opens the gate once the queue has been taken. */
    pthread_t stopper;
    ck_assert_int_eq(pthread_create(&stopper, NULL, cancel_thread, w), 0);
    wait_canceled(w, N);
    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.running, 1);
    ck_assert_uint_eq(st.canceled, N);
    ck_assert_int_eq(bk_workers_submit(w, work, done, &r[0], base), BK_ECLOSED);
    gate_release();
    void *rc;
    pthread_join(stopper, &rc);
    ck_assert_int_eq((int)(intptr_t)rc, BK_OK);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_CANCEL), BK_ECLOSED);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_ECLOSED);
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.canceled, N);
    ck_assert_uint_eq(st.running, 0);
    bk_workers_free(w);
    loop_until(base, N + 1);
    ck_assert_int_eq(atomic_load(&running.ran), 1);
    ck_assert_int_eq(atomic_load(&running.done), 1);
    ck_assert_int_eq(running.status, BK_OK);
    ck_assert(pthread_equal(running.done_thread, pthread_self()));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&r[i].ran), 0);
        ck_assert_int_eq(atomic_load(&r[i].done), 1);
        ck_assert_int_eq(r[i].status, BK_ECANCELED);
        ck_assert(pthread_equal(r[i].done_thread, pthread_self()));
    }
    free_base(base);
}
END_TEST

/* Without an event_base, canceled jobs complete on the thread that called shutdown. */
START_TEST(shutdown_cancel_without_base_runs_done_on_the_caller)
{
    struct event_base *base = new_base();
    enum { N = 7 };
    bk_workers_t *w = new_pool(1, N);
    struct rec running = {.gated = true};
    ck_assert_int_eq(bk_workers_submit(w, work, done, &running, NULL), BK_OK);
    gate_wait_for(1);
    struct rec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(bk_workers_submit(w, work, done, &r[i], NULL), BK_OK);
    pthread_t stopper;
    ck_assert_int_eq(pthread_create(&stopper, NULL, cancel_thread, w), 0);
    wait_canceled(w, N);
    gate_release();
    void *rc;
    pthread_join(stopper, &rc);
    ck_assert_int_eq((int)(intptr_t)rc, BK_OK);
    /* Everything has completed by the time shutdown returns: nothing was posted. */
    ck_assert_int_eq(atomic_load(&total_done), N + 1);
    ck_assert_int_eq(running.status, BK_OK);
    ck_assert(pthread_equal(running.done_thread, running.work_thread));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&r[i].ran), 0);
        ck_assert_int_eq(atomic_load(&r[i].done), 1);
        ck_assert_int_eq(r[i].status, BK_ECANCELED);
        ck_assert(pthread_equal(r[i].done_thread, stopper));
    }
    bk_workers_free(w);
    free_base(base);
}
END_TEST

static bk_workers_t *self_pool;
static atomic_int self_rc;

static void shutdown_self(void *arg)
{
    (void)arg;
    atomic_store(&self_rc, bk_workers_shutdown(self_pool, BK_WORKERS_DRAIN));
    /* Freeing the pool from its own worker is refused too (it would join itself). */
    bk_workers_free(self_pool);
    /* The pool is intact: it still takes work. */
    if (bk_workers_submit(self_pool, work, NULL, arg, NULL) != BK_OK)
        atomic_store(&self_rc, 1);
    /* Tell the test this job is over (it must not close the pool before the submit). */
    struct rec r = {.gated = true};
    work(&r);
}

START_TEST(shutdown_from_a_worker_is_refused)
{
    struct event_base *base = new_base();
    self_pool = new_pool(1, 4);
    atomic_store(&self_rc, 1);
    struct rec r = {0};
    ck_assert_int_eq(bk_workers_submit(self_pool, shutdown_self, NULL, &r, NULL), BK_OK);
    gate_wait_for(1);
    gate_release();
    bk_workers_free(self_pool);
    ck_assert_int_eq(atomic_load(&self_rc), BK_EINVAL);
    ck_assert_int_eq(atomic_load(&r.ran), 1); /* the job it queued ran at drain */
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

enum { SUB_T = 4, SUB_N = 2000 };

/* SUB_T threads submit SUB_N jobs each; returns how many were accepted. */
static void run_submitters(size_t queue_max, int *accepted_out)
{
    struct event_base *base = new_base();
    bk_workers_t *w = new_pool(3, queue_max);
    struct submitter sub[SUB_T];
    pthread_t th[SUB_T];
    for (int t = 0; t < SUB_T; t++) {
        sub[t] = (struct submitter){w, base, calloc(SUB_N, sizeof(struct rec)), SUB_N, 0};
        ck_assert_ptr_nonnull(sub[t].recs);
        ck_assert_int_eq(pthread_create(&th[t], NULL, submit_many, &sub[t]), 0);
    }
    int accepted = 0;
    for (int t = 0; t < SUB_T; t++) {
        pthread_join(th[t], NULL);
        accepted += sub[t].accepted;
    }
    /* Every accepted job completes exactly once; every refused one is counted. */
    loop_until(base, accepted);
    bk_workers_stats_t st;
    bk_workers_stats(w, &st);
    ck_assert_uint_eq(st.completed, (uint64_t)accepted);
    ck_assert_uint_eq(st.rejected, (uint64_t)(SUB_T * SUB_N - accepted));
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.running, 0);
    int ran = 0;
    for (int t = 0; t < SUB_T; t++) {
        for (int i = 0; i < SUB_N; i++) {
            struct rec *r = &sub[t].recs[i];
            ck_assert_int_eq(atomic_load(&r->done), atomic_load(&r->ran));
            ck_assert_int_le(atomic_load(&r->done), 1);
            ran += atomic_load(&r->ran);
        }
        free(sub[t].recs);
    }
    ck_assert_int_eq(ran, accepted);
    bk_workers_free(w);
    free_base(base);
    *accepted_out = accepted;
}

START_TEST(concurrent_submitters)
{
    /* A small queue: some are refused, the totals still add up exactly. */
    int accepted;
    run_submitters(64, &accepted);
    ck_assert_int_gt(accepted, 0);
    /* Room for everything: nothing is refused. */
    run_submitters(SUB_T * SUB_N, &accepted);
    ck_assert_int_eq(accepted, SUB_T * SUB_N);
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
    tcase_add_test(tc, shutdown_cancel_without_base_runs_done_on_the_caller);
    tcase_add_test(tc, one_thread_runs_jobs_in_fifo_order);
    tcase_add_test(tc, threads_are_named);
    tcase_add_test(tc, workers_block_signals);
    tcase_add_test(tc, callbacks_may_resubmit);
    tcase_add_test(tc, shutdown_from_a_worker_is_refused);
    tcase_add_test(tc, concurrent_submitters);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    evthread_use_pthreads();
    return bk_test_run(workers_suite());
}
