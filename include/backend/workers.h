/*
 * libbackend workers: a fixed-size pool of threads with a bounded queue, for work
 * that blocks (database, memcached, password hashing) and must not run on an
 * event loop. A finished job's completion callback is posted back to the libevent
 * event_base of the submitter's choice and runs on that loop's thread.
 *
 * Layer 0. The queue never grows past its bound and submit never blocks: a full
 * queue answers BK_EBUSY at once, so callers can shed load (HTTP 503).
 *
 * An event_base that receives completions from worker threads must have been
 * created after evthread_use_pthreads() (libevent_pthreads) was called, so that
 * libevent can be woken from another thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_WORKERS_H
#define BACKEND_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct bk_workers bk_workers_t;

/* Runs on a worker thread; arg is the job's user data. */
typedef void (*bk_work_fn)(void *arg);
/*
 * Runs once per accepted job: on the job's event_base thread when one was given,
 * otherwise on the thread that ran or canceled the job. status is BK_OK when work
 * ran, BK_ECANCELED when the job was dropped by bk_workers_shutdown(..., CANCEL).
 * arg, the job's user data, comes last, as in every callback of the library.
 */
typedef void (*bk_done_fn)(int status, void *arg);

typedef struct bk_workers_opts {
    unsigned threads;   /* worker threads; default: the number of online CPUs */
    size_t queue_max;   /* jobs waiting (not yet running) at most; default 1024 */
    const char *name;   /* thread name prefix (at most 10 bytes used); default "bk-work" */
    uint64_t reserved_[8]; /* room to grow (HACKING.md); zeroed by bk_workers_opts_init */
} bk_workers_opts_t;

typedef enum bk_workers_shutdown_mode {
    BK_WORKERS_DRAIN = 0, /* run every queued job, then stop */
    BK_WORKERS_CANCEL = 1 /* finish running jobs; queued ones get done(BK_ECANCELED, arg) */
} bk_workers_shutdown_mode_t;

typedef struct bk_workers_stats {
    unsigned threads;
    size_t queued;       /* waiting now */
    size_t running;      /* running now */
    uint64_t completed;  /* ran to the end, since creation */
    uint64_t rejected;   /* refused with BK_EBUSY, since creation */
    uint64_t canceled;   /* dropped at shutdown, since creation */
} bk_workers_stats_t;

/* Clears *opts (the reserved_ tail too) and sets the defaults. */
BK_EXPORT void bk_workers_opts_init(bk_workers_opts_t *opts);
/* opts NULL: all defaults. */
BK_EXPORT int bk_workers_new(const bk_workers_opts_t *opts, bk_workers_t **out);

/*
 * Queues work(arg) and, after it, done(status, arg) (done may be NULL; base may be
 * NULL). Thread-safe. Never blocks. Returns BK_EBUSY when queue_max jobs are
 * waiting, BK_ECLOSED once shutdown has begun; in both cases nothing was queued
 * and neither callback will run.
 */
BK_EXPORT int bk_workers_submit(bk_workers_t *w, bk_work_fn work, bk_done_fn done, void *arg,
                                struct event_base *base);

/*
 * Stops the pool: refuses new jobs, drains or cancels the queue, waits for running
 * jobs and joins the threads. Completions already posted to an event_base run when
 * that loop next runs. Must not be called from a worker thread. A second call
 * returns BK_ECLOSED.
 */
BK_EXPORT int bk_workers_shutdown(bk_workers_t *w, bk_workers_shutdown_mode_t mode);
/* Shuts down with BK_WORKERS_DRAIN if that has not been done, then frees. */
BK_EXPORT void bk_workers_free(bk_workers_t *w);

BK_EXPORT void bk_workers_stats(bk_workers_t *w, bk_workers_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_WORKERS_H */
