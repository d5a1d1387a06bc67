/* The worker pool: fixed threads, a preallocated ring of jobs, completions posted
 * back to the submitter's libevent loop.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <backend/workers.h>

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
    struct job *ring;        /* queue_max slots; head is the oldest job */
    size_t queue_max, head, count;
    size_t running;
    bool closed; /* shutdown began: no new jobs */
    bool cancel; /* shutdown mode CANCEL: workers stop taking queued jobs */
    bool joined;
    uint64_t completed, rejected, canceled;
    unsigned nthreads;
    pthread_t *threads;
};

/* The pool a worker thread belongs to, so shutdown from a worker can be refused. */
static _Thread_local const bk_workers_t *current_pool;

static void run_completion(evutil_socket_t fd, short events, void *ctx)
{
    (void)fd;
    (void)events;
    struct completion *c = ctx;
    c->done(c->arg, c->status);
    free(c);
}

/* Delivers done(arg, status) on the job's loop, or here when it has none. If the
 * completion cannot be posted (no memory), it runs here rather than being lost. */
static void finish(const struct job *job, int status)
{
    if (job->done == NULL)
        return;
    if (job->base != NULL) {
        struct completion *c = malloc(sizeof *c);
        if (c != NULL) {
            *c = (struct completion){job->done, job->arg, status};
            static const struct timeval now = {0, 0};
            if (event_base_once(job->base, -1, EV_TIMEOUT, run_completion, c, &now) == 0)
                return;
            free(c);
        }
    }
    job->done(job->arg, status);
}

static void *worker_main(void *ctx)
{
    bk_workers_t *w = ctx;
    current_pool = w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->count == 0 && !w->closed)
            pthread_cond_wait(&w->nonempty, &w->mu);
        if (w->count == 0 || w->cancel)
            break; /* closed and drained, or canceled (shutdown hands out the rest) */
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

void bk_workers_opts_init(bk_workers_opts_t *opts)
{
    if (opts == NULL)
        return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    opts->threads = cpus > 0 ? (unsigned)cpus : 1;
    opts->queue_max = 1024;
    opts->name = "bk-work";
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
        o.name = "bk-work";

    bk_workers_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return BK_ENOMEM;
    w->queue_max = o.queue_max;
    w->nthreads = o.threads;
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
        err = pthread_create(&w->threads[started], NULL, worker_main, w);
        if (err != 0)
            break;
        char name[32];
        snprintf(name, sizeof name, "%.10s-%u", o.name, started);
        name[15] = '\0'; /* the kernel's limit, with the NUL */
        pthread_setname_np(w->threads[started], name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (err != 0) {
        pthread_mutex_lock(&w->mu);
        w->closed = true;
        pthread_cond_broadcast(&w->nonempty);
        pthread_mutex_unlock(&w->mu);
        join_threads(w, started);
        destroy(w);
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
    pthread_mutex_lock(&w->mu);
    int rc = BK_OK;
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
    /* Under CANCEL, take the queued jobs out now, so no worker starts one. */
    size_t n = w->cancel ? w->count : 0;
    struct job *dropped = NULL;
    if (n > 0 && (dropped = malloc(n * sizeof *dropped)) == NULL) {
        /* No memory to hold them outside the lock: cancel them from the ring as it is,
         * still under the lock, which only delays the workers' exit. */
        for (size_t i = 0; i < n; i++)
            finish(&w->ring[(w->head + i) % w->queue_max], BK_ECANCELED);
        n = 0;
    } else {
        for (size_t i = 0; i < n; i++)
            dropped[i] = w->ring[(w->head + i) % w->queue_max];
    }
    w->canceled += w->cancel ? w->count : 0;
    if (w->cancel)
        w->count = 0;
    pthread_cond_broadcast(&w->nonempty);
    pthread_mutex_unlock(&w->mu);

    for (size_t i = 0; i < n; i++)
        finish(&dropped[i], BK_ECANCELED);
    free(dropped);

    join_threads(w, w->nthreads);
    w->joined = true;
    return BK_OK;
}

void bk_workers_free(bk_workers_t *w)
{
    if (w == NULL)
        return;
    if (!w->joined)
        bk_workers_shutdown(w, BK_WORKERS_DRAIN);
    destroy(w);
}

void bk_workers_stats(bk_workers_t *w, bk_workers_stats_t *out)
{
    if (w == NULL || out == NULL)
        return;
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
