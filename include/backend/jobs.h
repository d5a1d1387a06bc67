/*
 * libbackend jobs: durable background jobs in the PostgreSQL the service already
 * has. Transactional enqueue (a job enqueued on the caller's connection exists
 * exactly when the caller commits), workers that claim jobs with FOR UPDATE SKIP
 * LOCKED under a lease renewed by a heartbeat, fencing (every outcome names the
 * attempt that claimed the job, so a worker rescued past its lease cannot
 * complete it twice), retries on the resilience backoff, a dead-letter state,
 * snooze, cancel, and completion inside the handler's own transaction.
 *
 * Layer 3 (flow), on db. Blocking I/O: call it from worker threads, never from
 * an event loop. Every statement names its schema (never search_path) and keeps
 * no session state, so it works through a pooler in transaction mode. Every
 * "now" is bk_clock_wall_ns(opts.clock), sent as a parameter: a fake clock
 * drives scheduling, leases and retries.
 *
 *   bk_jobs_t *jobs;
 *   if (bk_jobs_new(db, NULL, &jobs, &err) != BK_OK) ...      (creates its tables)
 *   int64_t id;
 *   bk_jobs_enqueue(jobs, NULL, "email", args, NULL, &id, &err);
 *   bk_jobs_worker_t *w;
 *   bk_jobs_worker_new(jobs, NULL, &w, &err);
 *   bk_jobs_handle(w, "email", send_email, ctx);
 *   bk_jobs_worker_start(w, &err);
 *   ...
 *   bk_jobs_worker_stop(w, 10 * BK_NSEC_PER_SEC);
 *   bk_jobs_worker_free(w);
 *   bk_jobs_free(jobs);
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_JOBS_H
#define BACKEND_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>
#include <backend/db.h>
#include <backend/log.h>
#include <backend/metrics.h>
#include <backend/resilience.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_jobs bk_jobs_t;               /* a queue's tables over a pool; thread-safe */
typedef struct bk_jobs_worker bk_jobs_worker_t; /* threads running handlers */
typedef struct bk_job bk_job_t;                 /* one claimed attempt of a job */

/* ------------------------------------------------------------------ the queue */
typedef struct bk_jobs_opts {
    const char *schema;           /* the tables' schema: [a-z_][a-z0-9_]{0,62}; default (and
                                     NULL) "backend_jobs"; copied */
    bk_clock_t *clock;            /* every "now": scheduling, leases, retries; NULL = system;
                                     borrowed, must outlive the queue and its workers */
    int64_t lease_ns;             /* a claim's lease, renewed every lease_ns / 3 while the
                                     handler runs; default 30 s */
    const bk_retry_opts_t *retry; /* the backoff after a failed attempt: base_ns, cap_ns and
                                     jitter are read (max_attempts, deadline, budget are not);
                                     NULL = 1 s to 1 h, full jitter; copied */
    unsigned max_attempts;        /* a job's attempts unless its enqueue says; default 25 */
    bool migrate;                 /* bk_jobs_new applies the library's migrations; default
                                     true (false: call bk_jobs_migrate, e.g. from a deploy step) */
    bk_log_t *log;                /* fenced outcomes and handler failures; NULL = none; borrowed */
    int64_t retention_ns;         /* bk_jobs_prune deletes completed and cancelled jobs finished
                                     longer ago; default (and 0) 24 h; negative = never */
    int64_t discarded_retention_ns; /* ... and discarded ones (the dead letters, kept longer for
                                       operators); default (and 0) 7 days; negative = never */
    bk_metrics_t *metrics;        /* jobs_total{queue,kind,outcome}, jobs_wait_seconds{queue,kind}
                                     (run_at to the attempt's start), jobs_duration_seconds{queue,
                                     kind} (the handler), jobs{queue,state} (refreshed at each
                                     prune of a worker); NULL = none; borrowed */
    uint64_t reserved_[5];        /* zeroed by bk_jobs_opts_init; room to grow (HACKING.md) */
} bk_jobs_opts_t;

BK_EXPORT void bk_jobs_opts_init(bk_jobs_opts_t *opts);
/*
 * A queue over db (borrowed: it must outlive the queue). With opts.migrate (the
 * default) applies the library's migrations first (bk_jobs_migrate). BK_EINVAL
 * (err: which option); the migration's codes.
 */
BK_EXPORT int bk_jobs_new(bk_db_t *db, const bk_jobs_opts_t *opts, bk_jobs_t **out, bk_error_t *err);
/* Frees the queue; its workers must be freed first. NULL is a no-op. */
BK_EXPORT void bk_jobs_free(bk_jobs_t *jobs);
/*
 * Creates or upgrades the tables in opts.schema (bk_db_migrate_list(3) with
 * the library's embedded list: additive, safe when several processes start
 * together). The codes of bk_db_migrate_list.
 */
BK_EXPORT int bk_jobs_migrate(bk_jobs_t *jobs, bk_error_t *err);
/* The pool and the clock the queue was made with (for a module built on the
 * queue, such as backend/saga.h): borrowed. */
BK_EXPORT bk_db_t *bk_jobs_db(const bk_jobs_t *jobs);
BK_EXPORT bk_clock_t *bk_jobs_clock(const bk_jobs_t *jobs);

/* ------------------------------------------------------------------ enqueue */
typedef struct bk_jobs_enqueue_opts {
    const char *queue;      /* default (and NULL) "default"; copied */
    int priority;           /* lower runs first, -32768..32767; default 0 */
    int64_t run_at_ns;      /* wall time to run at (scheduled); 0 = now */
    unsigned max_attempts;  /* 0 (default) = the queue's */
    int64_t timeout_ns;     /* per attempt: the job's cancelled flag is raised at the first
                               heartbeat past it; 0 (default) = none */
    const char *unique_key; /* while a job with this key is not completed, discarded or
                               cancelled, another enqueue returns its id; NULL = none; copied */
    uint64_t reserved_[8];  /* zeroed by bk_jobs_enqueue_opts_init; room to grow (HACKING.md) */
} bk_jobs_enqueue_opts_t;

BK_EXPORT void bk_jobs_enqueue_opts_init(bk_jobs_enqueue_opts_t *opts);
/*
 * Enqueues a job of kind with args (borrowed; NULL = {}). conn NULL: on a pooled
 * connection of its own, committed when it returns. conn inside the caller's
 * open transaction: the job exists exactly when that transaction commits.
 * Either way a NOTIFY on "<schema>_jobs" (the schema cut to 58 bytes), payload
 * the queue, wakes the workers at commit (a hint: none on rollback).
 * *id (may be NULL): the job's id. BK_OK: enqueued. BK_EEXIST: opts.unique_key
 * names a job not finished yet, whose id is in *id; nothing was enqueued.
 * BK_EINVAL (err: which argument); the codes of bk_db_query.
 */
BK_EXPORT int bk_jobs_enqueue(bk_jobs_t *jobs, bk_db_conn_t *conn, const char *kind, const json_t *args,
                              const bk_jobs_enqueue_opts_t *opts, int64_t *id, bk_error_t *err);

/* One job of a batch: a value type (no reserved_ tail), like bk_db_param_t. */
typedef struct bk_jobs_batch_item {
    const char *kind;
    const json_t *args;                 /* borrowed; NULL = {} */
    const bk_jobs_enqueue_opts_t *opts; /* NULL = the defaults */
} bk_jobs_batch_item_t;

/*
 * Enqueues n jobs in one statement (conn as bk_jobs_enqueue). ids (may be NULL;
 * else room for n): each item's new id, or 0 for an item whose unique_key names
 * a job not finished yet (skipped). *enqueued (may be NULL): how many were.
 */
BK_EXPORT int bk_jobs_enqueue_batch(bk_jobs_t *jobs, bk_db_conn_t *conn, const bk_jobs_batch_item_t *items, size_t n,
                                    int64_t *ids, size_t *enqueued, bk_error_t *err);

/* ------------------------------------------------------------------ operations */
/*
 * Cancels job id: a queued one (available, scheduled, retryable) is cancelled
 * and never runs; a running one has its cancelled flag raised at its worker's
 * next heartbeat, and a failure it returns then makes it cancelled (a success
 * still completes it). BK_ENOTFOUND; BK_ECONFLICT when it is already finished.
 */
BK_EXPORT int bk_jobs_cancel(bk_jobs_t *jobs, int64_t id, bk_error_t *err);
/*
 * Makes a discarded or cancelled job available now, with room for one more
 * attempt at least (max_attempts raised to attempt + 1 if needed); its errors
 * are kept. BK_ENOTFOUND; BK_ECONFLICT when it is in another state, or another
 * job with its unique key is pending.
 */
BK_EXPORT int bk_jobs_retry(bk_jobs_t *jobs, int64_t id, bk_error_t *err);
/*
 * Deletes a job that is not running (the row and its history). BK_ENOTFOUND;
 * BK_ECONFLICT when it runs (cancel it first).
 */
BK_EXPORT int bk_jobs_delete(bk_jobs_t *jobs, int64_t id, bk_error_t *err);
/*
 * Deletes the finished jobs past their retention (retention_ns for completed
 * and cancelled ones, discarded_retention_ns for discarded ones), oldest
 * first, in statements of at most 1,000 rows, each its own transaction (no
 * long transaction holds back vacuum), until none is left. Workers call it
 * every prune_interval_ns; concurrent calls are harmless (SKIP LOCKED).
 * *deleted (may be NULL): how many. The codes of bk_db_query.
 */
BK_EXPORT int bk_jobs_prune(bk_jobs_t *jobs, size_t *deleted, bk_error_t *err);

typedef struct bk_jobs_list_opts {
    const char *queue;     /* NULL = any */
    const char *state;     /* available, running, completed, retryable, discarded, cancelled;
                              NULL = any */
    const char *kind;      /* NULL = any */
    int64_t after_id;      /* only ids above it: the last id of the page before; 0 = from the start */
    size_t limit;          /* 1..1000; default (and 0) 100 */
    uint64_t reserved_[8]; /* zeroed by bk_jobs_list_opts_init; room to grow (HACKING.md) */
} bk_jobs_list_opts_t;

BK_EXPORT void bk_jobs_list_opts_init(bk_jobs_list_opts_t *opts);
/*
 * The jobs that match opts (NULL = the defaults), by id ascending, as a JSON
 * array (a new reference) of objects shaped as bk_jobs_get's. The next page:
 * after_id = the last id. BK_EINVAL (an unknown state, a limit over 1,000).
 */
BK_EXPORT int bk_jobs_list(bk_jobs_t *jobs, const bk_jobs_list_opts_t *opts, json_t **out, bk_error_t *err);
/*
 * The job as a JSON object (a new reference, the caller decrefs): id, queue,
 * kind, args, state, priority, attempt, max_attempts, run_at, lease_until,
 * created_at, attempted_at, finished_at (RFC 3339 or null), timeout_ns,
 * unique_key, cancel_requested, errors ([{attempt, at, error}], oldest first).
 * BK_ENOTFOUND.
 */
BK_EXPORT int bk_jobs_get(bk_jobs_t *jobs, int64_t id, json_t **out, bk_error_t *err);

/* ------------------------------------------------------------------ claims by hand */
/*
 * Claims up to max jobs of queue (NULL = "default") whose kind is one of kinds
 * (n_kinds; 0 = any kind), in one statement: the ready ones (available or
 * retryable, run_at come) by priority, run_at, id, and those whose lease
 * expired (rescued: their attempt counts again, so the old holder is fenced;
 * one whose lease expired on its last attempt is discarded instead).
 * Each becomes running with attempt + 1 and a lease of lease_ns. out[0..*n):
 * the claimed jobs, to finish with bk_job_finish and free with bk_job_free.
 * The worker does this for its threads; a program with its own loop (or a
 * test) may too. No heartbeat renews these leases.
 */
BK_EXPORT int bk_jobs_claim(bk_jobs_t *jobs, const char *queue, const char *const *kinds, size_t n_kinds, size_t max,
                            bk_job_t **out, size_t *n, bk_error_t *err);

/* ------------------------------------------------------------------ a claimed job */
/* Accessors: valid until bk_job_free (the worker frees a job after its handler). */
BK_EXPORT int64_t bk_job_id(const bk_job_t *job);
BK_EXPORT const char *bk_job_kind(const bk_job_t *job);
BK_EXPORT const json_t *bk_job_args(const bk_job_t *job); /* borrowed */
BK_EXPORT int bk_job_attempt(const bk_job_t *job);        /* 1 on the first run */
BK_EXPORT int bk_job_max_attempts(const bk_job_t *job);
/* Whether the job was cancelled, ran past its timeout_ns, or lost its lease:
 * the handler should return soon (any thread). */
BK_EXPORT bool bk_job_cancelled(const bk_job_t *job);
/* The failure's message, kept in the job's errors (copied; the last call wins). */
BK_EXPORT void bk_job_error(bk_job_t *job, const char *msg);
/* Asks to run again after delay_ns without counting this attempt (the handler
 * then returns anything: the snooze wins over its code). */
BK_EXPORT void bk_job_snooze(bk_job_t *job, int64_t delay_ns);
/*
 * Marks the job completed on conn, inside the handler's open transaction: it is
 * completed exactly when the handler's work commits. BK_ECONFLICT: this attempt
 * no longer holds the job (fenced; roll back); the codes of bk_db_query.
 */
BK_EXPORT int bk_job_complete_in(bk_job_t *job, bk_db_conn_t *conn, bk_error_t *err);
/*
 * Checks on conn, inside the handler's open transaction, that this attempt
 * still holds the job, and locks the job until that transaction ends, so that
 * no rescue takes it meanwhile: what the transaction writes is written by the
 * holder. BK_ECONFLICT: fenced (roll back); the codes of bk_db_query.
 */
BK_EXPORT int bk_job_hold(bk_job_t *job, bk_db_conn_t *conn, bk_error_t *err);
/*
 * Records the outcome of the attempt, as the worker does when a handler returns
 * rc: a snooze asked for: available again at now + delay, the attempt not
 * counted; BK_OK: completed (nothing more when bk_job_complete_in did it); a
 * failure: the message of bk_job_error (or rc's name) appended to errors, and
 * retryable at now + backoff(attempt), or discarded once attempt >= max_attempts,
 * or cancelled when a cancel was asked for. Every outcome is fenced on (id,
 * attempt, running): BK_ECONFLICT when this attempt no longer holds the job (it
 * was rescued after its lease expired, or cancelled): nothing is changed.
 */
BK_EXPORT int bk_job_finish(bk_job_t *job, int rc, bk_error_t *err);
BK_EXPORT void bk_job_free(bk_job_t *job);

/* ------------------------------------------------------------------ workers */
/* A handler: BK_OK completes the job, anything else fails this attempt. It runs
 * on one of the worker's threads. */
typedef int (*bk_jobs_handler_fn)(bk_job_t *job, void *ud);

typedef struct bk_jobs_worker_opts {
    const char *queue;         /* default (and NULL) "default"; copied */
    unsigned threads;          /* handlers running at once; default (and 0) 1 */
    bool poll_only;            /* no LISTEN: claim every poll_interval_ns only; default
                                  false. Implied by an injected clock (bk_jobs_opts.clock)
                                  and by a pool behind a transaction pooler
                                  (bk_db_opts_t.transaction_pooling) */
    int64_t poll_interval_ns;  /* between claims that found nothing (the floor when a
                                  NOTIFY of an enqueue wakes the worker sooner); default 1 s */
    int64_t prune_interval_ns; /* between its calls of bk_jobs_prune (on its heartbeat
                                  thread, on the queue's clock); default (and 0) 60 s;
                                  negative = never */
    uint64_t reserved_[7];     /* zeroed by bk_jobs_worker_opts_init; room to grow (HACKING.md) */
} bk_jobs_worker_opts_t;

BK_EXPORT void bk_jobs_worker_opts_init(bk_jobs_worker_opts_t *opts);
/* A worker on jobs (borrowed: it must outlive the worker), not started. Unless
 * poll_only (or implied), bk_jobs_worker_start opens a listener
 * (bk_db_listener_new(3)) on the channel "<schema>_jobs" that enqueues NOTIFY,
 * and the worker claims as soon as a job of its queue is enqueued. */
BK_EXPORT int bk_jobs_worker_new(bk_jobs_t *jobs, const bk_jobs_worker_opts_t *opts, bk_jobs_worker_t **out,
                                 bk_error_t *err);
/* Runs fn(job, ud) for the jobs of kind (copied); before bk_jobs_worker_start
 * only. A worker claims only the kinds it handles. BK_EEXIST; BK_EBUSY when
 * started. */
BK_EXPORT int bk_jobs_handle(bk_jobs_worker_t *w, const char *kind, bk_jobs_handler_fn fn, void *ud);
/*
 * Enqueues a job of kind with args (borrowed, copied; NULL = {}) and opts
 * (NULL = the defaults; copied; its unique_key must be NULL) once per period
 * of schedule, however many processes run a worker with the same name
 * ([A-Za-z0-9_.:-]{1,128}, the schedule's identity across processes and
 * restarts): a cron line ("*\/5 * * * *", five fields, UTC), a macro (@hourly,
 * @daily, @weekly, @monthly, @yearly) or "@every 15m" (periods aligned to the
 * epoch). Before bk_jobs_worker_start only; a worker may have schedules and no
 * handler. The first time any process sees a name it records the current
 * period without enqueueing (the first job comes at the next boundary); a
 * period that passed while no process ran is enqueued once when one starts;
 * older missed periods are not. BK_EINVAL (err: the schedule's problem);
 * BK_EEXIST (the name, on this worker); BK_EBUSY (started).
 */
BK_EXPORT int bk_jobs_periodic(bk_jobs_worker_t *w, const char *name, const char *schedule, const char *kind,
                               const json_t *args, const bk_jobs_enqueue_opts_t *opts, bk_error_t *err);
/* Starts the handler and heartbeat threads (the heartbeat thread also
 * prunes and enqueues the periodic jobs). BK_EINVAL without a handler or a
 * periodic schedule; BK_EBUSY when started already; BK_ESYS; the codes of
 * bk_db_listener_new (unless poll_only). */
BK_EXPORT int bk_jobs_worker_start(bk_jobs_worker_t *w, bk_error_t *err);
/*
 * Graceful stop: claims no more, gives back the leases of jobs claimed but not
 * started (available again, attempt not counted), waits for running handlers
 * until deadline_ns (monotonic, on the queue's clock: bk_clock_mono_ns(clock) +
 * budget) and raises their cancelled flag then. BK_OK when every handler
 * returned; BK_ETIMEDOUT when some still run (bk_jobs_worker_free waits for
 * them). Idempotent.
 */
BK_EXPORT int bk_jobs_worker_stop(bk_jobs_worker_t *w, int64_t deadline_ns);
/* Stops (waiting for every handler) and frees. NULL is a no-op. */
BK_EXPORT void bk_jobs_worker_free(bk_jobs_worker_t *w);

/* What a worker has done since it was created: a value type, filled by
 * bk_jobs_worker_stats (its reserved_ tail zeroed). */
typedef struct bk_jobs_worker_stats {
    uint64_t claims;        /* claim statements issued */
    uint64_t claimed;       /* jobs they claimed */
    uint64_t finished;      /* outcomes recorded (completed, retried, discarded, snoozed, cancelled) */
    uint64_t fenced;        /* outcomes refused: the attempt no longer held the job */
    uint64_t wakeups;       /* waits for a wake-up that ended (NOTIFY, reset, poll interval, stop) */
    uint64_t notifications; /* NOTIFYs received on the queue's channel, for any queue */
    uint64_t pruned;        /* finished jobs its prunes deleted (bk_jobs_prune) */
    unsigned running;       /* handlers running now */
    unsigned ready;         /* jobs claimed and waiting for a thread now */
    bool idle;              /* a thread is waiting for a wake-up now: the queue was found drained */
    uint64_t reserved_[7];  /* zeroed by bk_jobs_worker_stats (the caller allocates it) */
} bk_jobs_worker_stats_t;

/* A snapshot of w's counters into *out (any thread, while w exists). */
BK_EXPORT void bk_jobs_worker_stats(bk_jobs_worker_t *w, bk_jobs_worker_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_JOBS_H */
