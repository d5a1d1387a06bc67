/* The saga module's internals, shared by the files of lib/saga/. Hidden.
 * SPDX-License-Identifier: MIT */
#ifndef BK_SAGA_INT_H
#define BK_SAGA_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <backend/saga.h>

#include "core/clock_int.h"
#include "core/error_int.h"

#if defined(__GNUC__)
#define BK__SAGA_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__SAGA_HIDDEN
#endif

/* A wall instant sent as $n (ns since the epoch), as a timestamptz. */
#define BK__SAGA_TS(n) "('epoch'::timestamptz + ($" #n "::bigint / 1000) * interval '1 microsecond')"

struct bk__saga_step {
    char *name;
    bk_saga_action_fn action;
    bk_saga_compensate_fn compensate; /* NULL: nothing to undo */
    bk_saga_step_opts_t opts;
    bk_retry_opts_t retry;            /* opts.retry's copy, or the default */
    void *ud;
};

struct bk_saga_def {
    char *name;
    int version;
    char kind[96]; /* its jobs' kind: "saga:<name>:<version>" */
    struct bk__saga_step *steps;
    size_t n;
    bk_saga_finish_fn finish; /* NULL: none */
    void *finish_ud;
    atomic_bool registered;
};

/* The statements, with the schema spliced in once by bk_saga_engine_new. */
enum bk__saga_sql {
    SAGA_INSERT,      /* $1 name, $2 version, $3 key, $4 context, $5 now, $6 step names (text[]) */
    SAGA_BY_KEY,      /* $1 name, $2 key */
    SAGA_LOCK,        /* $1 id */
    SAGA_STEP_BEGIN,  /* $1 id, $2 idx, $3 now, $4 phase */
    SAGA_ATTEMPT,     /* $1 id, $2 idx, $3 phase, $4 attempt, $5 job, $6 job attempt, $7 worker, $8 now */
    SAGA_ATTEMPT_END, /* $1 id, $2 idx, $3 phase, $4 attempt, $5 outcome, $6 now */
    SAGA_STEP_ERROR,  /* $1 id, $2 idx, $3 now, $4 phase, $5 attempt, $6 error, $7 step status */
    SAGA_STEP_DONE,   /* $1 id, $2 idx, $3 now, $4 status, $5 output (jsonb or NULL) */
    SAGA_ADVANCE,     /* $1 id, $2 now, $3 status, $4 phase, $5 step, $6 output to merge, $7 pivoted, $8 error;
                         returns error, context */
    SAGA_GET,         /* $1 id */
    SAGA_GET_STEPS,   /* $1 id */
    SAGA_CANCEL,      /* $1 id, $2 now */
    SAGA_STATE,       /* $1 id */
    SAGA_RESOLVE,     /* $1 id, $2 now, $3 note */
    SAGA_RETRY,       /* $1 id, $2 now */
    SAGA_MAYBE_APPLIED, /* $1 id, $2 idx */
    SAGA_PRUNE,       /* $1 now, $2 retention */
    SAGA_COUNT,       /* (none) */
    /* One statement each, the job's fence inside ($1 job, $2 its attempt, $3
     * now, $4 saga id): the way of a saga whose steps succeed. */
    SAGA_FAST_BEGIN,  /* $5 each step's max_attempts (int[]), $6 worker */
    SAGA_FAST_NEXT,   /* $5 idx, $6 attempt, $7 output (jsonb or NULL), $8 pivot, $9 worker */
    SAGA_FAST_DONE,   /* $5 idx, $6 attempt, $7 output (jsonb or NULL), $8 pivot; returns the job's id
                         and the saga's final context */
    SAGA_SQL_COUNT_
};

/* The outcomes counted in sagas_total. */
enum bk__saga_outcome { OUT_COMPLETED, OUT_COMPENSATED, OUT_STUCK, OUT_RESOLVED, OUT_COUNT_ };

struct bk__saga_reg {
    bk_saga_engine_t *e;
    bk_saga_def_t *def;
    bk_counter_t *outcomes[OUT_COUNT_]; /* NULL without metrics */
    bk_histogram_t **durations;         /* [def->n], NULL without metrics */
};

struct bk_saga_engine {
    bk_jobs_t *jobs;
    bk_db_t *db;
    bk_clock_t *clock;
    bk_log_t *log;
    bk_metrics_t *metrics;
    bk_metric_t *m_total, *m_duration, *m_status;
    int64_t retention_ns;
    char schema[64];
    char *queue;
    char worker_id[96]; /* "<host>:<pid>", in every attempt row */
    char prune_kind[96]; /* "saga-prune:<schema>": the hourly prune's schedule and job kind */
    bk_jobs_worker_t *worker;
    struct bk__saga_reg *regs;
    size_t nregs;
    bool started;
    char *sql[SAGA_SQL_COUNT_];
    /* bk_saga_wait: moves counts the changes this engine committed. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bk__clock_watch_t watch;
    uint64_t moves;
};

/* The registration of the definition of name and version; NULL when none. */
BK__SAGA_HIDDEN struct bk__saga_reg *bk__saga_reg_of(bk_saga_engine_t *e, const char *name, int version);
/* Counts a saga of reg that reached the outcome of status ("completed", ...). */
BK__SAGA_HIDDEN void bk__saga_count(struct bk__saga_reg *reg, const char *status);
/* Tells the waiters (bk_saga_wait) that this engine moved a saga on. */
BK__SAGA_HIDDEN void bk__saga_moved(bk_saga_engine_t *e);

/* The job handler of every saga kind (ud: a struct bk__saga_reg). */
BK__SAGA_HIDDEN int bk__saga_run_job(bk_job_t *job, void *ud);
/* Enqueues on conn the job (of kind, the definition's) that runs saga id
 * from where it is, at run_at_ns (0 = now). */
BK__SAGA_HIDDEN int bk__saga_enqueue(bk_saga_engine_t *e, bk_db_conn_t *conn, const char *kind, int64_t id,
                                     int64_t run_at_ns, bk_error_t *err);
/* Runs sql on conn (or a pooled connection of its own when NULL). */
BK__SAGA_HIDDEN int bk__saga_query(bk_saga_engine_t *e, bk_db_conn_t *conn, enum bk__saga_sql which,
                                   const bk_db_param_t *p, size_t n, bk_db_result_t **res, bk_error_t *err);

#endif
