/* The worker pool: fixed threads, a preallocated ring of jobs, completions posted
 * back to the submitter's libevent loop.
 *
 * One mutex guards the ring and the counters; it is never held while user code
 * (work or done) runs, so callbacks may call back into the pool (submit, stats).
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <backend/workers.h>

#include "core/abi_int.h"

#define DEFAULT_NAME "bk-work"
#define DEFAULT_QUEUE_MAX 1024
#define NAME_PREFIX_MAX 10 /* "prefix-N" must fit the kernel's 15 bytes */
#define THREAD_NAME_MAX 16 /* with the NUL */

struct job {
    bk_work_fn work;
    bk_done_fn done;
    void *arg;
    struct event_base *base;
};

/* A completion in flight to its event_base; freed by the callback that runs it. */
struct completion {
    bk_done_fn done;
    void *arg;
    int status;
};

struct bk_workers {
    pthread_mutex_t mu;
    pthread_cond_t nonempty; /* a job was queued, or shutdown began */
    struct job *ring;        /* queue_max slots; ring[head] is the oldest job */
    size_t queue_max, head, count;
    size_t running;
    bool closed; /* shutdown began: no new jobs */
    bool cancel; /* shutdown mode CANCEL: workers stop taking queued jobs */
    bool joined; /* shutdown finished: every thread joined */
    uint64_t completed, rejected, canceled;
    unsigned nthreads;
    pthread_t *threads;
    char prefix[NAME_PREFIX_MAX + 1];
};

/* What a new thread needs before it reads the pool: its index, for its name. */
struct start {
    bk_workers_t *w;
    unsigned index;
};

/* The pool the calling thread works for (NULL off the pool), so that shutdown and
 * free from one of the pool's own threads are refused instead of deadlocking. */
static _Thread_local const bk_workers_t *current_pool;

static void run_completion(evutil_socket_t fd, short events, void *ctx)
{
    (void)fd;
    (void)events;
    struct completion c = *(struct completion *)ctx;
    free(ctx);
    c.done(c.status, c.arg);
}

/* Delivers done(status, arg) on the job's loop, or on this thread when it has none.
 * A completion that cannot be posted (no memory for it or inside libevent) runs
 * here rather than being lost. Called without the pool's lock. */
static void finish(const struct job *job, int status)
{
    if (job->done == NULL)
        return;
    if (job->base != NULL) {
        struct completion *c = malloc(sizeof *c);
        if (c != NULL) {
            *c = (struct completion){job->done, job->arg, status};
            /* A zero timeout makes the event active at once, in posting order. */
            static const struct timeval now = {0, 0};
            if (event_base_once(job->base, -1, EV_TIMEOUT, run_completion, c, &now) == 0)
                return;
            free(c);
        }
    }
    job->done(status, job->arg);
}

static void *worker_main(void *ctx)
{
    struct start *st = ctx;
    bk_workers_t *w = st->w;
    char name[THREAD_NAME_MAX];
    snprintf(name, sizeof name, "%s-%u", w->prefix, st->index);
    free(st);
    pthread_setname_np(pthread_self(), name); /* cosmetic: failure is harmless */
    current_pool = w;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->count == 0 && !w->closed)
            pthread_cond_wait(&w->nonempty, &w->mu);
        if (w->count == 0 || w->cancel)
            break; /* closed and drained, or canceled (shutdown takes the rest) */
        struct job job = w->ring[w->head];
        w->head = (w->head + 1) % w->queue_max;
        w->count--;
        w->running++;
        pthread_mutex_unlock(&w->mu);

        job.work(job.arg);

        /* Count the job before its completion can run, so a done callback that
         * reads the stats sees itself counted. */
        pthread_mutex_lock(&w->mu);
        w->running--;
        w->completed++;
        pthread_mutex_unlock(&w->mu);
        finish(&job, BK_OK);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

BK__ASSERT_ABI_SIZE(bk_workers_opts_t, 88);

void bk_workers_opts_init(bk_workers_opts_t *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts); /* the reserved_ tail too */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    opts->threads = cpus > 0 && (unsigned long)cpus <= UINT_MAX ? (unsigned)cpus : 1;
    opts->queue_max = DEFAULT_QUEUE_MAX;
    opts->name = DEFAULT_NAME;
}

static void join_threads(bk_workers_t *w, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        pthread_join(w->threads[i], NULL);
}

static void destroy(bk_workers_t *w)
{
    pthread_cond_destroy(&w->nonempty);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w->ring);
    free(w);
}

/* Starts thread i with every signal blocked (the mask is inherited from the
 * caller, whose own mask is set around this). Returns 0 or an errno value. */
static int start_thread(bk_workers_t *w, unsigned i)
{
    struct start *st = malloc(sizeof *st);
    if (st == NULL)
        return ENOMEM;
    *st = (struct start){w, i};
    int err = pthread_create(&w->threads[i], NULL, worker_main, st);
    if (err != 0)
        free(st);
    return err;
}

int bk_workers_new(const bk_workers_opts_t *opts, bk_workers_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_workers_opts_t o;
    bk_workers_opts_init(&o);
    if (opts != NULL)
        o = *opts;
    if (o.threads == 0 || o.queue_max == 0 || o.queue_max > SIZE_MAX / sizeof(struct job))
        return BK_EINVAL;
    if (o.name == NULL)
        o.name = DEFAULT_NAME;

    bk_workers_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return BK_ENOMEM;
    w->queue_max = o.queue_max;
    w->nthreads = o.threads;
    snprintf(w->prefix, sizeof w->prefix, "%s", o.name); /* truncates to 10 bytes */
    w->ring = malloc(o.queue_max * sizeof *w->ring);
    w->threads = calloc(o.threads, sizeof *w->threads);
    if (w->ring == NULL || w->threads == NULL) {
        free(w->ring);
        free(w->threads);
        free(w);
        return BK_ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->nonempty, NULL);

    /* Workers inherit a full signal mask: the host's handlers run on its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    unsigned started = 0;
    int err = 0;
    for (; started < o.threads; started++) {
        if ((err = start_thread(w, started)) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (err != 0) {
        pthread_mutex_lock(&w->mu);
        w->closed = true;
        pthread_cond_broadcast(&w->nonempty);
        pthread_mutex_unlock(&w->mu);
        join_threads(w, started);
        destroy(w);
        if (err == ENOMEM)
            return BK_ENOMEM;
        errno = err;
        return BK_ESYS;
    }
    *out = w;
    return BK_OK;
}

int bk_workers_submit(bk_workers_t *w, bk_work_fn work, bk_done_fn done, void *arg,
                      struct event_base *base)
{
    if (w == NULL || work == NULL)
        return BK_EINVAL;
    int rc = BK_OK;
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        rc = BK_ECLOSED;
    } else if (w->count == w->queue_max) {
        w->rejected++;
        rc = BK_EBUSY;
    } else {
        w->ring[(w->head + w->count) % w->queue_max] = (struct job){work, done, arg, base};
        w->count++;
        pthread_cond_signal(&w->nonempty);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int bk_workers_shutdown(bk_workers_t *w, bk_workers_shutdown_mode_t mode)
{
    if (w == NULL || (mode != BK_WORKERS_DRAIN && mode != BK_WORKERS_CANCEL))
        return BK_EINVAL;
    if (current_pool == w)
        return BK_EINVAL; /* a worker cannot join itself */
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        pthread_mutex_unlock(&w->mu);
        return BK_ECLOSED;
    }
    w->closed = true;
    w->cancel = mode == BK_WORKERS_CANCEL;
    /* Under CANCEL, take the queued jobs out of the queue now, so no worker starts
     * one. Their slots stay untouched afterwards: submit refuses (closed) and the
     * workers take nothing more (cancel), so they are read below without the lock. */
    size_t first = w->head, n = 0;
    if (w->cancel) {
        n = w->count;
        w->canceled += n;
        w->count = 0;
    }
    pthread_cond_broadcast(&w->nonempty);
    pthread_mutex_unlock(&w->mu);

    for (size_t i = 0; i < n; i++)
        finish(&w->ring[(first + i) % w->queue_max], BK_ECANCELED);

    join_threads(w, w->nthreads);
    pthread_mutex_lock(&w->mu);
    w->joined = true;
    pthread_mutex_unlock(&w->mu);
    return BK_OK;
}

void bk_workers_free(bk_workers_t *w)
{
    if (w == NULL)
        return;
    if (current_pool == w)
        return; /* misuse: a worker cannot join itself; leak rather than crash */
    pthread_mutex_lock(&w->mu);
    bool joined = w->joined;
    pthread_mutex_unlock(&w->mu);
    if (!joined)
        bk_workers_shutdown(w, BK_WORKERS_DRAIN);
    destroy(w);
}

void bk_workers_stats(bk_workers_t *w, bk_workers_stats_t *out)
{
    if (out == NULL)
        return;
    if (w == NULL) {
        *out = (bk_workers_stats_t){0};
        return;
    }
    pthread_mutex_lock(&w->mu);
    *out = (bk_workers_stats_t){
        .threads = w->nthreads,
        .queued = w->count,
        .running = w->running,
        .completed = w->completed,
        .rejected = w->rejected,
        .canceled = w->canceled,
    };
    pthread_mutex_unlock(&w->mu);
}
