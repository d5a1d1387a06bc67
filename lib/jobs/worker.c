/* A worker: handler threads that claim for themselves, and a heartbeat
 * thread. A thread with nothing to run claims as many jobs as the worker has
 * idle threads (one statement; the extra ones wait in the ready list for the
 * others) and claims again as soon as its job is done, so that a busy queue
 * costs one claim and one outcome per job and no hand-over between threads.
 * When a claim finds fewer jobs than it asked for the queue is drained: one
 * idle thread, the scout, waits for a wake-up (the poll interval on the
 * queue's clock; on the system clock and unless poll_only, a NOTIFY of an
 * enqueue on the queue's channel, or a reset of the listener, when
 * notifications may have been lost), then claims; the other idle threads wait
 * for what it finds. A fake clock keeps the poll only: the listener waits in
 * real time, which a test driving the fake clock cannot advance.
 * The heartbeat thread renews the leases of every job the worker holds (one
 * statement, every lease / 3) and raises the cancelled flag of jobs cancelled,
 * timed out, or whose lease was lost.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "core/clock_int.h"
#include "jobs/jobs_int.h"

BK__ASSERT_ABI_SIZE(bk_jobs_worker_opts_t, 88);
BK__ASSERT_ABI_SIZE(bk_jobs_worker_stats_t, 128);

struct handler {
    char *kind;
    bk_jobs_handler_fn fn;
    void *ud;
};

struct bk_jobs_worker {
    bk_jobs_t *jobs;
    char *queue;
    unsigned threads;
    int64_t poll_ns;
    int64_t prune_ns; /* < 0: never */
    bool poll_only;
    bk_db_listener_t *listener; /* NULL when polling only */
    struct handler *h;
    size_t nh;
    const char **kinds;
    bk__periodic_t *periodic; /* its schedules, run by the heartbeat thread */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* every change: a job claimed, a handler done, a wake-up, stop */
    bk__clock_watch_t watch;
    bk_job_t *ready, *ready_tail; /* claimed, not started */
    size_t nready;
    bk_job_t **running; /* [threads]: the job of each handler thread, or NULL */
    size_t nrunning;
    size_t inflight;    /* jobs asked for by the claims in progress */
    bool drained;       /* the last claim found fewer than it asked: wait for a wake-up */
    bool scouting;      /* a thread waits for that wake-up */
    bool started, stopping, joined;
    int64_t started_ns; /* when bk_jobs_worker_start ran: the heartbeat's schedule counts from it */
    pthread_t heartbeat, *th;
    size_t nth;
    bk_jobs_worker_stats_t stats; /* counters under mu */
};

void bk_jobs_worker_opts_init(bk_jobs_worker_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->queue = "default";
    opts->threads = 1;
    opts->poll_interval_ns = BK_NSEC_PER_SEC;
    opts->prune_interval_ns = 60 * BK_NSEC_PER_SEC;
}

int bk_jobs_worker_new(bk_jobs_t *jobs, const bk_jobs_worker_opts_t *opts, bk_jobs_worker_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    bk_jobs_worker_opts_t d;
    if (!opts) {
        bk_jobs_worker_opts_init(&d);
        opts = &d;
    }
    if (!jobs || !out)
        return bk__error(err, BK_EINVAL, "worker: no queue or no out");
    *out = NULL;
    if (opts->poll_interval_ns <= 0)
        return bk__error(err, BK_EINVAL, "worker: poll_interval_ns must be positive");
    bk_jobs_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return bk__error(err, BK_ENOMEM, "out of memory");
    w->jobs = jobs;
    w->threads = opts->threads ? opts->threads : 1;
    w->poll_ns = opts->poll_interval_ns;
    w->prune_ns = opts->prune_interval_ns ? opts->prune_interval_ns : 60 * BK_NSEC_PER_SEC;
    w->poll_only = opts->poll_only || jobs->clock != NULL || bk__sql_transaction_pooling(jobs->db);
    w->queue = strdup(opts->queue ? opts->queue : "default");
    w->running = calloc(w->threads, sizeof *w->running);
    w->th = calloc(w->threads, sizeof *w->th);
    if (!w->queue || !w->running || !w->th || pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w->queue);
        free(w->running);
        free(w->th);
        free(w);
        return bk__error(err, BK_ENOMEM, "out of memory");
    }
    if (bk__clock_cond_init(&w->cv) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w->queue);
        free(w->running);
        free(w->th);
        free(w);
        return bk__error(err, BK_ESYS, "worker: cannot create a condition variable");
    }
    w->watch.mu = &w->mu;
    w->watch.cv = &w->cv;
    bk__clock_watch(jobs->clock, &w->watch);
    *out = w;
    return BK_OK;
}

int bk_jobs_handle(bk_jobs_worker_t *w, const char *kind, bk_jobs_handler_fn fn, void *ud)
{
    if (!w || !kind || !*kind || !fn)
        return BK_EINVAL;
    if (w->started)
        return BK_EBUSY;
    for (size_t i = 0; i < w->nh; i++)
        if (strcmp(w->h[i].kind, kind) == 0)
            return BK_EEXIST;
    struct handler *h = realloc(w->h, (w->nh + 1) * sizeof *h);
    if (!h)
        return BK_ENOMEM;
    w->h = h;
    const char **k = realloc(w->kinds, (w->nh + 1) * sizeof *k);
    if (k)
        w->kinds = k;
    char *copy = strdup(kind);
    if (!k || !copy) {
        free(copy);
        return BK_ENOMEM;
    }
    h[w->nh] = (struct handler){copy, fn, ud};
    w->kinds[w->nh] = copy;
    w->nh++;
    return BK_OK;
}

int bk_jobs_periodic(bk_jobs_worker_t *w, const char *name, const char *schedule, const char *kind,
                     const json_t *args, const bk_jobs_enqueue_opts_t *opts, bk_error_t *err)
{
    bk__error_clear(err);
    if (!w)
        return bk__error(err, BK_EINVAL, "periodic: no worker");
    if (w->started)
        return bk__error(err, BK_EBUSY, "periodic: the worker is started");
    return bk__periodic_add(&w->periodic, name, schedule, kind, args, opts, err);
}

static const struct handler *handler_of(const bk_jobs_worker_t *w, const char *kind)
{
    for (size_t i = 0; i < w->nh; i++)
        if (strcmp(w->h[i].kind, kind) == 0)
            return &w->h[i];
    return NULL;
}

static void give_back(bk_jobs_worker_t *w, bk_job_t *list)
{
    while (list) {
        bk_job_t *next = list->next;
        bk_error_t err;
        if (bk__job_give_back(list, &err) != BK_OK && err.code != BK_ECONFLICT)
            bk_log(w->jobs->log, BK_LOG_WARN, NULL, "job %" PRId64 ": cannot give it back: %s", list->id,
                   err.message); /* its lease expires and another claim takes it */
        bk_job_free(list);
        list = next;
    }
}

/* The scout's wait for a wake-up, on the listener: up to the poll interval
 * for a hint about our queue, a reset of the listener (catch up: claim now),
 * stop (bk_db_listener_wake), or an error (then the rest of the interval on
 * the clock). Called and returns with w->mu held. */
static void listen_wait(bk_jobs_worker_t *w)
{
    int64_t deadline = bk_clock_mono_ns(NULL) + w->poll_ns;
    pthread_mutex_unlock(&w->mu);
    for (;;) {
        int64_t left = deadline - bk_clock_mono_ns(NULL);
        if (left <= 0)
            break;
        bk_db_notification_t *n = NULL;
        bk_error_t err;
        int rc = bk_db_listener_wait(w->listener, left, &n, &err);
        if (rc == BK_OK) {
            bool ours = n->reset || strcmp(n->payload, w->queue) == 0;
            bk_db_notification_free(n);
            pthread_mutex_lock(&w->mu);
            w->stats.notifications++;
            pthread_mutex_unlock(&w->mu);
            if (ours)
                break;
            continue;
        }
        if (rc == BK_ETIMEDOUT || rc == BK_ECANCELED)
            break;
        if (rc == BK_ENOMEM)
            continue;
        bk_log(w->jobs->log, BK_LOG_WARN, NULL, "jobs worker: listener: %s", err.message);
        pthread_mutex_lock(&w->mu);
        while (!w->stopping && bk__clock_wait(NULL, &w->cv, &w->mu, deadline) != BK_ETIMEDOUT)
            ;
        return;
    }
    pthread_mutex_lock(&w->mu);
}

/* The scout's wait: until the poll interval has passed on the queue's clock
 * (or the listener woke it), or stop. Called and returns with w->mu held. */
static void scout(bk_jobs_worker_t *w)
{
    w->scouting = true;
    w->stats.idle = true;
    if (w->listener) {
        listen_wait(w);
    } else {
        int64_t deadline = bk_clock_mono_ns(w->jobs->clock) + w->poll_ns;
        while (!w->stopping && bk__clock_wait(w->jobs->clock, &w->cv, &w->mu, deadline) != BK_ETIMEDOUT)
            ;
    }
    w->stats.idle = false;
    w->stats.wakeups++;
    w->scouting = false;
    w->drained = false;
    pthread_cond_broadcast(&w->cv); /* the scout's place is free, and stop may wait for it */
}

/* Claims up to want jobs into the ready list. Called and returns with w->mu held. */
static void claim(bk_jobs_worker_t *w, size_t want, bk_job_t **got)
{
    w->inflight += want;
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    bk_error_t err;
    int rc = bk_jobs_claim(w->jobs, w->queue, w->kinds, w->nh, want, got, &n, &err);
    if (rc != BK_OK)
        bk_log(w->jobs->log, BK_LOG_WARN, NULL, "jobs worker: claim failed: %s", err.message);
    pthread_mutex_lock(&w->mu);
    w->inflight -= want;
    w->stats.claims++;
    w->stats.claimed += n;
    for (size_t i = 0; i < n; i++) {
        got[i]->next = NULL;
        if (w->ready_tail)
            w->ready_tail->next = got[i];
        else
            w->ready = got[i];
        w->ready_tail = got[i];
        w->nready++;
    }
    /* A failed claim counts as drained too: wait for the poll before the next. */
    if (n < want)
        w->drained = true;
    pthread_cond_broadcast(&w->cv);
}

/* Runs job (taken from the ready list) on this thread's slot. Called and
 * returns with w->mu held. */
static void run(bk_jobs_worker_t *w, size_t slot, bk_job_t *job)
{
    w->running[slot] = job;
    w->nrunning++;
    job->started_ns = bk_clock_mono_ns(w->jobs->clock);
    pthread_mutex_unlock(&w->mu);

    const struct handler *h = handler_of(w, job->kind);
    int64_t wall = bk_clock_wall_ns(w->jobs->clock), mono = bk_clock_mono_ns(w->jobs->clock);
    if (wall > job->run_at_ns)
        bk__jobs_observe(job, w->jobs->m_wait, (double)(wall - job->run_at_ns) / 1e9);
    int rc = h ? h->fn(job, h->ud) : BK_EINVAL;
    bk__jobs_observe(job, w->jobs->m_duration, (double)(bk_clock_mono_ns(w->jobs->clock) - mono) / 1e9);
    bk_error_t err;
    int out = bk_job_finish(job, rc, &err);
    if (out != BK_OK && out != BK_ECONFLICT) /* a fenced outcome was logged by bk_job_finish */
        bk_log(w->jobs->log, BK_LOG_ERROR, NULL, "job %" PRId64 ": cannot record its outcome: %s", job->id,
               err.message);

    pthread_mutex_lock(&w->mu);
    w->stats.finished += out == BK_OK;
    w->stats.fenced += out == BK_ECONFLICT;
    w->running[slot] = NULL;
    w->nrunning--;
    bk_job_free(job);
    pthread_cond_broadcast(&w->cv);
}

static void *handler_main(void *arg)
{
    bk_jobs_worker_t *w = arg;
    bk_job_t **got = calloc(w->threads, sizeof *got);
    pthread_mutex_lock(&w->mu);
    size_t slot = w->nth++;
    while (!w->stopping) { /* what is still ready at stop is given back by bk_jobs_worker_stop */
        if (w->ready) {
            bk_job_t *job = w->ready;
            w->ready = job->next;
            if (!w->ready)
                w->ready_tail = NULL;
            w->nready--;
            run(w, slot, job);
            continue;
        }
        size_t idle = w->threads - w->nrunning - w->nready - w->inflight;
        if (w->nh == 0) /* schedules only: no kind to claim (none would mean any) */
            pthread_cond_wait(&w->cv, &w->mu);
        else if (idle > 0 && !w->drained && got)
            claim(w, idle, got);
        else if (w->drained && !w->scouting)
            scout(w);
        else /* another thread claims or scouts, or every slot is taken */
            pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    free(got);
    return NULL;
}

/* Renews every lease the worker holds; raises the flag of the jobs that were
 * cancelled, ran past their timeout, or lost their lease. Called with mu held;
 * returns with it held. */
static void beat(bk_jobs_worker_t *w)
{
    size_t cap = w->threads + w->nready, n = 0;
    bk_job_t **held = calloc(cap ? cap : 1, sizeof *held);
    bk__sql_arr_t ida = {0}, atta = {0};
    char *ids = NULL, *att = NULL;
    int64_t *ids_v = NULL;
    int *att_v = NULL;
    if (!held)
        goto out;
    int64_t mono = bk_clock_mono_ns(w->jobs->clock);
    for (size_t i = 0; i < w->threads; i++) {
        bk_job_t *r = w->running[i];
        if (!r)
            continue;
        int64_t timeout = r->timeout_ns, started = r->started_ns; /* in this order: see bk__job_rearm */
        if (timeout > 0 && mono - started >= timeout)
            atomic_store(&r->cancelled, true);
        held[n++] = r;
    }
    for (bk_job_t *r = w->ready; r && n < cap; r = r->next)
        held[n++] = r;
    if (n == 0)
        goto out;
    /* held[] may be freed while we are unlocked (a handler finishes): copy what
     * the statement and the lookup afterwards need. */
    ids_v = calloc(n, sizeof *ids_v);
    att_v = calloc(n, sizeof *att_v);
    for (size_t i = 0; i < n; i++) {
        bk__sql_arr_int(&ida, held[i]->id);
        bk__sql_arr_int(&atta, held[i]->attempt);
    }
    ids = bk__sql_arr_end(&ida);
    att = bk__sql_arr_end(&atta);
    if (!ids_v || !att_v || !ids || !att)
        goto out;
    for (size_t i = 0; i < n; i++) {
        ids_v[i] = held[i]->id;
        att_v[i] = held[i]->attempt;
    }
    pthread_mutex_unlock(&w->mu);
    char now[24], lease[24];
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(w->jobs->clock));
    snprintf(lease, sizeof lease, "%" PRId64, w->jobs->lease_ns);
    bk_db_param_t p[] = {BK_DB_TEXT(now), BK_DB_TEXT(lease), BK_DB_TEXT(ids), BK_DB_TEXT(att)};
    bk_db_result_t *res;
    bk_error_t err;
    int rc = bk__jobs_query(w->jobs, NULL, SQL_HEARTBEAT, p, 4, &res, &err);
    pthread_mutex_lock(&w->mu);
    if (rc != BK_OK) {
        bk_log(w->jobs->log, BK_LOG_WARN, NULL, "jobs worker: heartbeat failed: %s", err.message);
    } else {
        /* Look the jobs up again: some may have finished while we were unlocked. */
        for (size_t i = 0; i < n; i++) {
            bool renewed = false, cancel = false;
            for (size_t r = 0; r < bk_db_rows(res); r++) {
                if (strtoll(bk_db_value(res, r, 0), NULL, 10) == ids_v[i]) {
                    renewed = true;
                    cancel = strcmp(bk_db_value(res, r, 1), "t") == 0;
                }
            }
            if (renewed && !cancel)
                continue;
            for (size_t t = 0; t < w->threads; t++)
                if (w->running[t] && w->running[t]->id == ids_v[i] && w->running[t]->attempt == att_v[i])
                    atomic_store(&w->running[t]->cancelled, true);
            for (bk_job_t *r = w->ready; r; r = r->next)
                if (r->id == ids_v[i] && r->attempt == att_v[i])
                    atomic_store(&r->cancelled, true);
        }
        bk_db_result_free(res);
    }
out:
    free(ids_v);
    free(att_v);
    free(held);
    free(ids);
    free(att);
}

/* Deletes the finished jobs past their retention (bk_jobs_prune). Called
 * and returns with mu held. */
static void prune(bk_jobs_worker_t *w)
{
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    bk_error_t err;
    if (bk_jobs_prune(w->jobs, &n, &err) != BK_OK)
        bk_log(w->jobs->log, BK_LOG_WARN, NULL, "jobs worker: prune failed: %s", err.message);
    bk__jobs_gauge(w->jobs);
    pthread_mutex_lock(&w->mu);
    w->stats.pruned += n;
}

static void *heartbeat_main(void *arg)
{
    bk_jobs_worker_t *w = arg;
    bk_clock_t *clock = w->jobs->clock;
    pthread_mutex_lock(&w->mu);
    /* From the start, not from when this thread first runs: a claim made
     * meanwhile has its lease from then, and a clock moved meanwhile (a fake
     * one) must not push the first beat out. */
    int64_t next_prune = w->prune_ns >= 0 ? w->started_ns + w->prune_ns : BK__CLOCK_NEVER;
    int64_t beat_at = w->started_ns + w->jobs->lease_ns / 3;
    int64_t next_fire = BK__CLOCK_NEVER;
    if (w->periodic) {
        pthread_mutex_unlock(&w->mu);
        next_fire = bk__periodic_run(w->jobs, w->periodic);
        pthread_mutex_lock(&w->mu);
    }
    /* Beats while anything is held: after a stop, until the last handler returns. */
    while (!w->stopping || w->nrunning > 0) {
        int64_t deadline = beat_at;
        if (!w->stopping && next_prune < deadline)
            deadline = next_prune;
        if (!w->stopping && next_fire < deadline)
            deadline = next_fire;
        while ((!w->stopping || w->nrunning > 0) && bk__clock_wait(clock, &w->cv, &w->mu, deadline) != BK_ETIMEDOUT)
            ;
        if (w->stopping && w->nrunning == 0)
            break;
        if (!w->stopping && bk_clock_mono_ns(clock) >= next_fire) {
            pthread_mutex_unlock(&w->mu);
            next_fire = bk__periodic_run(w->jobs, w->periodic);
            pthread_mutex_lock(&w->mu);
        }
        if (!w->stopping && bk_clock_mono_ns(clock) >= next_prune) {
            prune(w);
            next_prune = bk_clock_mono_ns(clock) + w->prune_ns;
        }
        int64_t now = bk_clock_mono_ns(clock);
        if (now >= beat_at) {
            /* The next beat is a third of a lease after this one's start: the
             * clock may move while the statement runs. */
            beat_at = now + w->jobs->lease_ns / 3;
            beat(w);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int bk_jobs_worker_start(bk_jobs_worker_t *w, bk_error_t *err)
{
    bk__error_clear(err);
    if (!w)
        return bk__error(err, BK_EINVAL, "worker: none");
    if (w->nh == 0 && !w->periodic)
        return bk__error(err, BK_EINVAL, "worker: no handler and no periodic schedule");
    if (w->started)
        return bk__error(err, BK_EBUSY, "worker: started already");
    if (!w->poll_only) {
        const char *ch = w->jobs->channel;
        int rc = bk_db_listener_new(w->jobs->db, &ch, 1, NULL, &w->listener, err);
        if (rc != BK_OK)
            return rc;
    }
    w->started = true;
    w->started_ns = bk_clock_mono_ns(w->jobs->clock);
    unsigned made = 0;
    for (; made < w->threads; made++)
        if (pthread_create(&w->th[made], NULL, handler_main, w) != 0)
            break;
    bool ok = made == w->threads && pthread_create(&w->heartbeat, NULL, heartbeat_main, w) == 0;
    if (!ok) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        for (unsigned i = 0; i < made; i++)
            pthread_join(w->th[i], NULL);
        w->joined = true;
        bk_db_listener_free(w->listener);
        w->listener = NULL;
        return bk__error(err, BK_ESYS, "worker: cannot start its threads");
    }
    return BK_OK;
}

int bk_jobs_worker_stop(bk_jobs_worker_t *w, int64_t deadline_ns)
{
    if (!w)
        return BK_EINVAL;
    if (!w->started || w->joined)
        return BK_OK;
    bk_clock_t *clock = w->jobs->clock;
    pthread_mutex_lock(&w->mu);
    bool first = !w->stopping;
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (first && w->listener)
        bk_db_listener_wake(w->listener); /* the scout may be waiting on it */
    pthread_mutex_lock(&w->mu);
    /* The claims in progress end and the scout wakes: then nothing is added to
     * the ready list, and nothing uses the listener any more. */
    while (w->inflight > 0 || w->scouting)
        pthread_cond_wait(&w->cv, &w->mu);
    bk_db_listener_t *listener = w->listener;
    w->listener = NULL;
    bk_job_t *list = w->ready;
    w->ready = w->ready_tail = NULL;
    w->nready = 0;
    pthread_mutex_unlock(&w->mu);
    bk_db_listener_free(listener);
    give_back(w, list);
    pthread_mutex_lock(&w->mu);
    int rc = BK_OK;
    while (w->nrunning > 0)
        if (bk__clock_wait(clock, &w->cv, &w->mu, deadline_ns) == BK_ETIMEDOUT && w->nrunning > 0) {
            for (size_t t = 0; t < w->threads; t++)
                if (w->running[t])
                    atomic_store(&w->running[t]->cancelled, true);
            rc = BK_ETIMEDOUT;
            break;
        }
    pthread_mutex_unlock(&w->mu);
    if (rc == BK_OK) {
        for (unsigned i = 0; i < w->threads; i++)
            pthread_join(w->th[i], NULL);
        pthread_join(w->heartbeat, NULL);
        w->joined = true;
    }
    return rc;
}

void bk_jobs_worker_stats(bk_jobs_worker_t *w, bk_jobs_worker_stats_t *out)
{
    if (!w || !out)
        return;
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->running = (unsigned)w->nrunning;
    out->ready = (unsigned)w->nready;
    pthread_mutex_unlock(&w->mu);
}

void bk_jobs_worker_free(bk_jobs_worker_t *w)
{
    if (!w)
        return;
    if (w->started && !w->joined)
        bk_jobs_worker_stop(w, BK__CLOCK_NEVER);
    bk__clock_unwatch(w->jobs->clock, &w->watch);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    for (size_t i = 0; i < w->nh; i++)
        free(w->h[i].kind);
    free(w->h);
    free(w->kinds);
    bk__periodic_free(w->periodic);
    free(w->queue);
    free(w->running);
    free(w->th);
    free(w);
}
