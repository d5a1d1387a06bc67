/* The jobs module's internals, shared by the files of lib/jobs/. Hidden.
 * SPDX-License-Identifier: MIT */
#ifndef BK_JOBS_INT_H
#define BK_JOBS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <backend/jobs.h>

#include "core/error_int.h"
#include "db/sql_int.h"

#if defined(__GNUC__)
#define BK__JOBS_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__JOBS_HIDDEN
#endif

/* A wall instant sent as $n (ns since the epoch, a bigint), as a timestamptz:
 * exact to the microsecond, which is what PostgreSQL keeps. */
#define BK__JOBS_TS(n) "('epoch'::timestamptz + ($" #n "::bigint / 1000) * interval '1 microsecond')"

/* The statements, with the schema spliced in once by bk_jobs_new. */
enum bk__jobs_sql {
    SQL_ENQUEUE,
    SQL_UNIQUE_ID,
    SQL_BATCH,
    SQL_BATCH_UNIQUE,
    SQL_CLAIM,
    SQL_COMPLETE,
    SQL_HOLD,
    SQL_FAIL,
    SQL_SNOOZE,
    SQL_HEARTBEAT,
    SQL_CANCEL,
    SQL_EXISTS,
    SQL_RETRY,
    SQL_GET,
    SQL_DELETE,
    SQL_PRUNE,
    SQL_LIST,
    SQL_PERIOD,
    SQL_STATES,
    SQL_COUNT_
};

struct bk_jobs {
    bk_db_t *db;
    char schema[64];
    char channel[64]; /* the NOTIFY channel of wake-up hints: "<schema>_jobs" */
    bk_clock_t *clock;
    int64_t lease_ns;
    bk_retry_opts_t retry;
    unsigned max_attempts;
    bk_log_t *log;
    int64_t retention_ns, discarded_retention_ns;
    bk_metric_t *m_total, *m_wait, *m_duration, *m_state; /* NULL without metrics */
    char *sql[SQL_COUNT_];
};

struct bk_job {
    bk_jobs_t *jobs;
    int64_t id;
    int attempt, max_attempts;
    char *kind, *queue;
    json_t *args;
    int64_t run_at_ns;       /* wall: when it was due (jobs_wait_seconds) */
    /* Atomic: bk__job_rearm writes them on the handler's thread while the
     * heartbeat reads them (timeout first, then started: see beat). */
    _Atomic int64_t timeout_ns;
    _Atomic int64_t started_ns; /* monotonic, when its handler (or its rearm) began; 0 before */
    atomic_bool cancelled;
    char *error;
    bool snoozed;
    int64_t snooze_ns;
    bool completed_in;       /* bk_job_complete_in succeeded */
    struct bk_job *next;     /* a worker's list of claimed jobs not started */
};

/* Counts an outcome in jobs_total (completed, retried, discarded, cancelled,
 * snoozed, fenced); no-op without metrics. */
BK__JOBS_HIDDEN void bk__jobs_count(const bk_job_t *job, const char *outcome);
/* Observes seconds in the histogram family for the job's queue and kind. */
BK__JOBS_HIDDEN void bk__jobs_observe(const bk_job_t *job, bk_metric_t *family, double seconds);
/* Refreshes the jobs_in_state{queue,state} gauge with one GROUP BY (a worker's prune tick). */
BK__JOBS_HIDDEN void bk__jobs_gauge(bk_jobs_t *jobs);

/* A worker's periodic schedules (lib/jobs/periodic.c). */
typedef struct bk__periodic bk__periodic_t;
/* Adds one to *list (see bk_jobs_periodic). */
BK__JOBS_HIDDEN int bk__periodic_add(bk__periodic_t **list, const char *name, const char *schedule, const char *kind,
                                     const json_t *args, const bk_jobs_enqueue_opts_t *opts, bk_error_t *err);
/* Enqueues what is due in every schedule of list at the queue's wall time,
 * once per period across processes; returns the monotonic time (on the
 * queue's clock) of the next firing, BK__CLOCK_NEVER when none. Blocking I/O;
 * failures are logged and tried again a poll later. */
BK__JOBS_HIDDEN int64_t bk__periodic_run(bk_jobs_t *jobs, bk__periodic_t *list);
BK__JOBS_HIDDEN void bk__periodic_free(bk__periodic_t *list);

/* The fence of an attempt, for a statement of a module above (the saga's)
 * that holds or completes its job within one statement of its own: S is the
 * jobs schema as the statement names it; $1 the job's id, $2 its attempt,
 * $3 now (ns since the epoch). The jobs module's own SQL_HOLD and
 * SQL_COMPLETE are these. */
#define BK__JOBS_FENCE " WHERE id = $1 AND attempt = $2 AND state = 'running'"
#define BK__JOBS_HOLD_SQL(S) "SELECT id FROM " S ".jobs" BK__JOBS_FENCE " AND $3::bigint IS NOT NULL FOR UPDATE"
#define BK__JOBS_COMPLETE_SQL(S)                                                                                     \
    "UPDATE " S ".jobs SET state = 'completed', finished_at = " BK__JOBS_TS(3) ", lease_until = NULL" BK__JOBS_FENCE
/* The job was completed by such a statement, which committed: the worker
 * counts it and writes nothing more (as after bk_job_complete_in). */
BK__JOBS_HIDDEN void bk__job_completed(bk_job_t *job);
/* Starts the job's timeout afresh, of timeout_ns (0: none), from now: for a
 * handler that runs several units of work, each with its own timeout (a
 * saga's steps). Called on the handler's thread. */
BK__JOBS_HIDDEN void bk__job_rearm(bk_job_t *job, int64_t timeout_ns);

/* Runs sql on conn, or on a pooled connection of its own when conn is NULL. */
BK__JOBS_HIDDEN int bk__jobs_query(bk_jobs_t *jobs, bk_db_conn_t *conn, enum bk__jobs_sql which,
                                   const bk_db_param_t *p, size_t n, bk_db_result_t **res, bk_error_t *err);
/* Gives a claimed job back, not started: ready again, its attempt not counted. */
BK__JOBS_HIDDEN int bk__job_give_back(bk_job_t *job, bk_error_t *err);
/* A text[] literal of n strings; NULL on ENOMEM. */
BK__JOBS_HIDDEN char *bk__jobs_text_array(const char *const *s, size_t n);

#endif
