/*
 * libbackend sagas: an operation of several steps across services, each step
 * with an action and a compensation, run in order; when a step fails for good,
 * the compensations of the completed steps run in reverse. Durable on the job
 * queue (backend/jobs.h): a saga runs in jobs, so leases, heartbeats, fencing
 * and rescue are the queue's, and each state change is committed only while
 * the job that caused it is still held (one statement per step while the
 * actions succeed): after a crash at any instant the saga goes on from the
 * last committed change.
 *
 * Layer 3 (flow), on jobs and db. Steps run on the engine's worker threads;
 * the callbacks block as long as they like (a remote call), holding no
 * connection and no transaction meanwhile.
 *
 * An action may run more than once for one step (a retry, or a rescue after a
 * worker stalled past its lease): it gets the same idempotency key on every
 * attempt ("<saga id>/<step name>"), to send to the service it calls
 * (bk_upstream_request_opts.idempotency_key), which then applies it once.
 *
 *   bk_saga_def_t *def;
 *   bk_saga_def_new("order", 1, &def, &err);
 *   bk_saga_def_step(def, "reserve", reserve, unreserve, NULL, ctx);
 *   bk_saga_def_step(def, "charge", charge, refund, NULL, ctx);
 *   bk_saga_engine_t *e;
 *   bk_saga_engine_new(jobs, NULL, &e, &err);
 *   bk_saga_register(e, def, &err);
 *   bk_saga_engine_start(e, &err);
 *   int64_t id;
 *   bk_saga_start(e, def, order_key, ctx_json, &id, &err);
 *   ...
 *   bk_saga_engine_free(e);
 *   bk_saga_def_free(def);
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_SAGA_H
#define BACKEND_SAGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>
#include <backend/db.h>
#include <backend/jobs.h>
#include <backend/log.h>
#include <backend/metrics.h>
#include <backend/resilience.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_saga_def bk_saga_def_t;       /* a definition: name, version, steps */
typedef struct bk_saga_engine bk_saga_engine_t; /* runs the sagas of its definitions */

/* What a step's callback is given; valid during the call only. */
typedef struct bk_saga_call {
    int64_t saga_id;
    const char *saga;            /* the definition's name */
    int version;                 /* the definition's version the saga started under */
    const char *step;            /* the step's name */
    const char *idempotency_key; /* "<saga id>/<step name>": the same on every attempt */
    const json_t *context;       /* the saga's context (borrowed): start's, merged with
                                    what the completed actions returned */
    int attempt;                 /* 1 on the first attempt of this action or compensation */
    bk_job_t *job;               /* the job running it: bk_job_cancelled(job) says stop soon */
} bk_saga_call_t;

/* An action: BK_OK completes the step; *out (may be left NULL; a new reference
 * to an object, taken) is merged into the context, key by key. Any other code
 * fails this attempt, err's message (cleared before the call; the code's name
 * when left empty) kept with it; BK_EUNAVAIL (an open breaker refused the
 * call) fails the step at once, without its retries, so that the saga
 * compensates promptly. An action that returns a failure must have taken no
 * effect (a refused call), or say before it returns that it may have
 * (bk_saga_maybe_applied: a call sent that got no answer). When a step fails
 * for good after such an attempt, or after one that never returned (its
 * worker died), the step's own compensation runs too: a compensation must
 * undo nothing when nothing was done. */
typedef int (*bk_saga_action_fn)(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud);
/* A compensation: undoes its step's action; BK_OK, or a failure (retried). */
typedef int (*bk_saga_compensate_fn)(const bk_saga_call_t *call, bk_error_t *err, void *ud);

/* Said by an action, during its call, before it returns a failure: this
 * attempt may have taken effect (its request was sent and no answer came: a
 * timeout, a lost connection). Should the step fail for good, its own
 * compensation then runs too. Nothing in a compensation, or when the action
 * returns BK_OK. */
BK_EXPORT void bk_saga_maybe_applied(const bk_saga_call_t *call);

typedef struct bk_saga_step_opts {
    unsigned max_attempts;        /* the action's attempts before the step fails; default 3 */
    unsigned compensate_attempts; /* the compensation's before the saga parks as stuck;
                                     default 10 */
    const bk_retry_opts_t *retry; /* the backoff between attempts (base_ns, cap_ns, jitter
                                     are read); NULL = 1 s to 1 min, full jitter; copied */
    int64_t timeout_ns;           /* per attempt, from its start: past it
                                     bk_job_cancelled(call->job) is true; 0 (default) = none */
    bool pivot;                   /* once this step has completed, the saga only rolls
                                     forward: a later step that fails for good parks the
                                     saga as stuck instead of compensating */
    uint64_t reserved_[8];        /* zeroed by bk_saga_step_opts_init; room to grow */
} bk_saga_step_opts_t;

BK_EXPORT void bk_saga_step_opts_init(bk_saga_step_opts_t *opts);

/*
 * A definition of name ([A-Za-z0-9_.-]{1,64}) and version (>= 1), without
 * steps. BK_EINVAL; BK_ENOMEM.
 */
BK_EXPORT int bk_saga_def_new(const char *name, int version, bk_saga_def_t **out, bk_error_t *err);
/*
 * Appends a step: name ([A-Za-z0-9_.-]{1,64}, unique in the definition),
 * action (required), compensate (NULL: nothing to undo), opts (NULL: the
 * defaults; copied), ud given to both. Not once the definition is registered.
 * BK_EINVAL; BK_EEXIST (the name); BK_EBUSY (registered); BK_ENOMEM.
 */
BK_EXPORT int bk_saga_def_step(bk_saga_def_t *def, const char *name, bk_saga_action_fn action,
                               bk_saga_compensate_fn compensate, const bk_saga_step_opts_t *opts, void *ud);
/* What a finish hook is given; valid during the call only. */
typedef struct bk_saga_outcome {
    int64_t saga_id;
    const char *saga;      /* the definition's name */
    int version;
    const char *status;    /* "completed", "compensated" or "stuck" */
    const json_t *context; /* the saga's context as it ends (borrowed) */
    const char *error;     /* why it turned (compensated, stuck), or NULL */
} bk_saga_outcome_t;
/* A finish hook: runs on conn inside the transaction that gives the saga its
 * outcome, so that what it writes (the caller's own rows, a job enqueued with
 * bk_jobs_enqueue(3) on conn) commits exactly when the outcome does. BK_OK, or
 * a failure, which rolls that transaction back: the outcome is not recorded,
 * and the job retries the attempt that reached it. */
typedef int (*bk_saga_finish_fn)(const bk_saga_outcome_t *outcome, bk_db_conn_t *conn, bk_error_t *err, void *ud);
/*
 * Sets def's finish hook (NULL: none), called once per saga as it reaches
 * completed, compensated or stuck (not bk_saga_resolve: an operator who
 * settles a saga settles what it touched). Not once the definition is
 * registered. BK_EINVAL; BK_EBUSY (registered).
 */
BK_EXPORT int bk_saga_def_on_finish(bk_saga_def_t *def, bk_saga_finish_fn fn, void *ud);
/* Frees a definition; the engines it is registered with must be freed first. */
BK_EXPORT void bk_saga_def_free(bk_saga_def_t *def);

typedef struct bk_saga_opts {
    const char *schema;   /* the tables' schema: [a-z_][a-z0-9_]{0,62}; default (and NULL)
                             "backend_saga"; copied */
    const char *queue;    /* the job queue's queue its jobs go to; default (and NULL) "saga" */
    unsigned threads;     /* steps running at once; default (and 0) 4 */
    int64_t poll_interval_ns; /* the worker's (bk_jobs_worker_opts_t); 0 = its default */
    bool poll_only;       /* the worker's */
    bool migrate;         /* bk_saga_engine_new applies the migrations; default true */
    bk_log_t *log;        /* NULL = none */
    bk_metrics_t *metrics; /* sagas_total{saga,outcome} (completed, compensated, stuck,
                              resolved), saga_step_duration_seconds{saga,step} (every attempt
                              of its action or compensation), sagas{saga,status} (refreshed
                              by bk_saga_prune); NULL = none; borrowed */
    int64_t retention_ns; /* bk_saga_prune deletes sagas finished longer ago (their steps
                             and attempts with them); default 7 days; negative = never */
    uint64_t reserved_[6]; /* zeroed by bk_saga_opts_init; room to grow */
} bk_saga_opts_t;

BK_EXPORT void bk_saga_opts_init(bk_saga_opts_t *opts);
/*
 * An engine on jobs (borrowed: it must outlive the engine; its clock is the
 * engine's), not started. With opts.migrate creates or upgrades its tables
 * (additive, safe when several processes start together). BK_EINVAL; the
 * codes of bk_db_migrate_list(3).
 */
BK_EXPORT int bk_saga_engine_new(bk_jobs_t *jobs, const bk_saga_opts_t *opts, bk_saga_engine_t **out,
                                 bk_error_t *err);
/*
 * Lets the engine run the sagas of def (borrowed: it must outlive the engine;
 * no steps may be added any more), before bk_saga_engine_start. Several
 * versions of one name may be registered side by side: each saga runs only
 * under the version it started with, and the jobs of a version no process has
 * registered wait for one. BK_EINVAL (no steps); BK_EEXIST (that name and
 * version); BK_EBUSY (started).
 */
BK_EXPORT int bk_saga_register(bk_saga_engine_t *e, bk_saga_def_t *def, bk_error_t *err);
/* Starts the engine's worker (bk_jobs_worker_start(3)). */
BK_EXPORT int bk_saga_engine_start(bk_saga_engine_t *e, bk_error_t *err);
/* Stops the worker gracefully (bk_jobs_worker_stop(3)): a step cut short runs
 * again after restart (the same idempotency key). */
BK_EXPORT int bk_saga_engine_stop(bk_saga_engine_t *e, int64_t deadline_ns);
/* Stops and frees. NULL is a no-op. */
BK_EXPORT void bk_saga_engine_free(bk_saga_engine_t *e);

/*
 * Starts a saga of def (registered or not: any process running its version
 * will run it) with context ctx (an object, borrowed; NULL = {}), in one
 * transaction with its first job. key (NULL = none) makes the start
 * idempotent: while a saga of def's name with that key exists, another start
 * starts nothing and answers BK_EEXIST with its id in *id (its outcome through
 * bk_saga_get). *id (may be NULL): the saga's id. BK_EINVAL; the codes of
 * bk_db_tx(3).
 */
BK_EXPORT int bk_saga_start(bk_saga_engine_t *e, const bk_saga_def_t *def, const char *key, const json_t *ctx,
                            int64_t *id, bk_error_t *err);
/*
 * The same inside the caller's open transaction on conn (bk_db_tx's body, of
 * the engine's database): the saga and its first job exist exactly when that
 * transaction commits, with what the caller wrote in it (an order and its
 * saga, or neither). BK_ERETRY when a saga holding the key was deleted
 * meanwhile: bk_db_tx runs the body again. BK_EINVAL (conn NULL too); the
 * codes of bk_db_query.
 */
BK_EXPORT int bk_saga_start_in(bk_saga_engine_t *e, bk_db_conn_t *conn, const bk_saga_def_t *def, const char *key,
                               const json_t *ctx, int64_t *id, bk_error_t *err);
/*
 * The saga as a JSON object (a new reference): id, saga, version, key, status
 * (running, compensating, completed, compensated, stuck, resolved), context,
 * step (the current step's index), pivoted, cancel_requested, error (the last,
 * or null), created_at, updated_at, finished_at, and steps: [{name, status
 * (pending, running, completed, failed, compensating, compensated), attempts,
 * compensate_attempts, errors ([{attempt, phase, at, error}]), started_at,
 * finished_at}], in order. BK_ENOTFOUND.
 */
BK_EXPORT int bk_saga_get(bk_saga_engine_t *e, int64_t id, json_t **out, bk_error_t *err);
/*
 * Waits until saga id has finished (completed, compensated, resolved) or is
 * stuck, or until deadline_ns (monotonic, on the queue's clock:
 * bk_clock_mono_ns(clock) + budget), for a request handler that answers when
 * the saga has. Wakes as soon as this process's engine moves the saga on; one
 * run by another process is seen within 100 ms (a read by primary key).
 * *out (may be NULL): the saga as bk_saga_get gives it. BK_OK; BK_ETIMEDOUT;
 * BK_ENOTFOUND; the codes of bk_db_query. Any thread but the engine's.
 */
BK_EXPORT int bk_saga_wait(bk_saga_engine_t *e, int64_t id, int64_t deadline_ns, json_t **out, bk_error_t *err);
/*
 * Asks a running saga to stop and compensate: at its next step (the step
 * running now finishes first), unless it has passed its pivot.
 * BK_ENOTFOUND; BK_ECONFLICT when it is not running, or has passed its pivot.
 */
BK_EXPORT int bk_saga_cancel(bk_saga_engine_t *e, int64_t id, bk_error_t *err);
/*
 * A stuck saga goes on: the step it is stuck at (a compensation, or a step
 * after the pivot) is tried again with a fresh count of attempts.
 * BK_ENOTFOUND; BK_ECONFLICT when it is not stuck.
 */
BK_EXPORT int bk_saga_retry(bk_saga_engine_t *e, int64_t id, bk_error_t *err);
/*
 * An operator settled a stuck saga by hand: it becomes resolved (finished),
 * note (may be NULL) kept as its error. BK_ENOTFOUND; BK_ECONFLICT when it is
 * not stuck.
 */
BK_EXPORT int bk_saga_resolve(bk_saga_engine_t *e, int64_t id, const char *note, bk_error_t *err);

/*
 * Deletes the sagas finished (completed, compensated, resolved) more than
 * retention_ns ago, with their steps and attempts, in statements of 1,000 at
 * most (each its own transaction), until none is left; stuck ones are kept
 * until resolved. Then refreshes the sagas{saga,status} gauge. Engines run it
 * once an hour (a periodic job "saga-prune:<schema>" on their queue);
 * concurrent calls are harmless. *deleted (may be
 * NULL): how many. The codes of bk_db_query.
 */
BK_EXPORT int bk_saga_prune(bk_saga_engine_t *e, size_t *deleted, bk_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_SAGA_H */
