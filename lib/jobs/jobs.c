/* The queue: its options, its statements (the schema spliced in once, quoted),
 * its embedded migrations, and the retry schedule.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "db/sql_int.h"
#include "jobs/jobs_int.h"

BK__ASSERT_ABI_SIZE(bk_jobs_opts_t, 112);

#define TS BK__JOBS_TS
/* Finished states leave the unique index: a key is taken while its job may still run. */
#define PENDING_KEY "unique_key IS NOT NULL AND state NOT IN ('completed', 'discarded', 'cancelled')"
#define FENCE BK__JOBS_FENCE

/* A batch as parallel arrays, unnested (cheaper to send and to read than a
 * jsonb document): $1 queues, $2 kinds, $3 args (jsonb[]), $4 priorities, $5
 * max_attempts, $6 run_at (ns), $7 timeouts, $8 unique keys, $9 now, $10 the
 * NOTIFY channel. The ids are drawn first (the sequence looked up once, not
 * per row), so that each item's row (or none, for a key pending already) is
 * found by a join. ON CONFLICT only when an item
 * has a unique key: its speculative insertion costs every row. */
#define BATCH(on_conflict)                                                                                          \
    "WITH src AS MATERIALIZED (SELECT s.*, nextval((SELECT pg_get_serial_sequence('{S}.jobs', 'id'))::regclass) " \
    "AS id "                                                                                                        \
    "FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::int[], $6::bigint[], $7::bigint[], "    \
    "$8::text[]) WITH ORDINALITY AS s(queue, kind, args, priority, max_attempts, run_at, timeout_ns, unique_key, " \
    "i)), ins AS (INSERT INTO {S}.jobs (id, queue, kind, args, priority, max_attempts, run_at, timeout_ns, "      \
    "unique_key, created_at) OVERRIDING SYSTEM VALUE SELECT id, queue, kind, args, priority, max_attempts, "       \
    "'epoch'::timestamptz + (run_at / 1000) * interval '1 microsecond', timeout_ns, unique_key, " TS(9)          \
    " FROM src ORDER BY i " on_conflict "RETURNING id, queue) "                                                    \
    "SELECT src.i, ins.id FROM src LEFT JOIN ins ON ins.id = src.id "                                              \
    /* one wake-up hint per queue that got a job */                                                                 \
    "CROSS JOIN (SELECT count(*) FROM (SELECT pg_notify($10, q) FROM (SELECT DISTINCT queue AS q FROM ins) d) "   \
    "x) n ORDER BY src.i"

/* A job as bk_jobs_get and bk_jobs_list give it. */
#define JOB_COLUMNS                                                                                            \
    "id, queue, kind, args, state, priority, attempt, max_attempts, run_at, lease_until, created_at, "         \
    "attempted_at, finished_at, timeout_ns, unique_key, cancel_requested, errors"

/* {S} stands for the quoted schema. */
static const char *const templates[SQL_COUNT_] = {
    /* The NOTIFY (on channel $10, payload the queue) is a wake-up hint for the
     * workers: sent at commit, only when a job was inserted. */
    [SQL_ENQUEUE] = "WITH ins AS (INSERT INTO {S}.jobs (queue, kind, args, priority, max_attempts, run_at, "
                    "timeout_ns, unique_key, created_at) VALUES ($1, $2, $3::jsonb, $4::smallint, $5::int, " TS(6)
                    ", $7::bigint, $8, " TS(9) ") ON CONFLICT (unique_key) WHERE " PENDING_KEY
                    " DO NOTHING RETURNING id, queue) SELECT id, pg_notify($10, queue) FROM ins",
    [SQL_UNIQUE_ID] = "SELECT id FROM {S}.jobs WHERE unique_key = $1 AND state NOT IN ('completed', "
                      "'discarded', 'cancelled')",
    [SQL_BATCH] = BATCH(""),
    [SQL_BATCH_UNIQUE] = BATCH("ON CONFLICT (unique_key) WHERE " PENDING_KEY " DO NOTHING "),
    /* Running jobs whose lease expired (rescued: attempt + 1 fences the old
     * holder) first, then ready ones by priority, run_at, id: two branches, so
     * that each walks its own partial index (an OR of the two sorted the whole
     * queue at every claim). One whose lease expired on its last attempt is
     * discarded instead, so that a job that kills its worker every time ends. */
    [SQL_CLAIM] = "WITH dead AS (UPDATE {S}.jobs SET state = 'discarded', finished_at = " TS(1) ", "
                  "lease_until = NULL, errors = errors || jsonb_build_array(jsonb_build_object('attempt', "
                  "attempt, 'at', " TS(1) ", 'error', 'the lease expired on the last attempt')) "
                  "WHERE id IN (SELECT id FROM {S}.jobs WHERE queue = $3 AND state = 'running' "
                  "AND lease_until < " TS(1) " AND attempt >= max_attempts "
                  "AND ($4::text[] IS NULL OR kind = ANY($4::text[])) FOR UPDATE SKIP LOCKED) RETURNING id), "
                  "rescued AS (SELECT id FROM {S}.jobs WHERE queue = $3 AND state = 'running' "
                  "AND lease_until < " TS(1) " AND attempt < max_attempts "
                  "AND ($4::text[] IS NULL OR kind = ANY($4::text[])) "
                  "ORDER BY lease_until LIMIT $5 FOR UPDATE SKIP LOCKED), "
                  "ready AS (SELECT id FROM {S}.jobs WHERE queue = $3 AND state IN ('available', 'retryable') "
                  "AND run_at <= " TS(1) " AND ($4::text[] IS NULL OR kind = ANY($4::text[])) "
                  "ORDER BY priority, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), "
                  /* ready is read only when rescued leaves room */
                  "pick AS (SELECT id FROM rescued UNION ALL SELECT id FROM ready LIMIT $5) "
                  "UPDATE {S}.jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = " TS(1) ", "
                  "lease_until = " TS(1) " + ($2::bigint / 1000) * interval '1 microsecond' "
                  "WHERE j.id IN (SELECT id FROM pick) "
                  "RETURNING j.id, j.kind, j.args::text, j.attempt, j.max_attempts, j.timeout_ns, "
                  "j.cancel_requested, j.priority, j.run_at, "
                  "(extract(epoch FROM j.run_at) * 1000000)::bigint * 1000",
    /* $3 is unused: the signature of every fenced statement */
    [SQL_HOLD] = BK__JOBS_HOLD_SQL("{S}"),
    [SQL_COMPLETE] = BK__JOBS_COMPLETE_SQL("{S}"),
    [SQL_FAIL] = "UPDATE {S}.jobs SET "
                 "state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempt >= max_attempts "
                 "THEN 'discarded' ELSE 'retryable' END, "
                 "run_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN run_at ELSE " TS(4) " END, "
                 "finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN " TS(3) " END, "
                 "lease_until = NULL, errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, "
                 "'at', " TS(3) ", 'error', $5::text))" FENCE " RETURNING state",
    [SQL_SNOOZE] = "UPDATE {S}.jobs SET state = CASE WHEN attempt > 1 THEN 'retryable' ELSE 'available' END, "
                   "attempt = attempt - 1, run_at = " TS(3) ", lease_until = NULL" FENCE,
    [SQL_HEARTBEAT] = "UPDATE {S}.jobs j SET lease_until = " TS(1) " + ($2::bigint / 1000) * interval "
                      "'1 microsecond' FROM unnest($3::bigint[], $4::int[]) AS h(id, attempt) "
                      "WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running' "
                      "RETURNING j.id, j.cancel_requested",
    [SQL_CANCEL] = "UPDATE {S}.jobs SET cancel_requested = true, "
                   "state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END, "
                   "finished_at = CASE WHEN state = 'running' THEN finished_at ELSE " TS(2) " END "
                   "WHERE id = $1 AND state IN ('available', 'retryable', 'running') RETURNING state",
    [SQL_EXISTS] = "SELECT state FROM {S}.jobs WHERE id = $1",
    [SQL_RETRY] = "UPDATE {S}.jobs SET state = 'available', run_at = " TS(2) ", finished_at = NULL, "
                  "cancel_requested = false, max_attempts = GREATEST(max_attempts, attempt + 1) "
                  "WHERE id = $1 AND state IN ('discarded', 'cancelled') RETURNING id",
    [SQL_GET] = "SELECT " JOB_COLUMNS " FROM {S}.jobs WHERE id = $1",
    [SQL_DELETE] = "DELETE FROM {S}.jobs WHERE id = $1 AND state <> 'running' AND $2::bigint IS NOT NULL "
                   "RETURNING id",
    /* At most 1000 of the states $3 finished before now ($1) - $2 ns, oldest
     * first, on the index of finished jobs. */
    [SQL_PRUNE] = "DELETE FROM {S}.jobs WHERE id IN (SELECT id FROM {S}.jobs WHERE state = ANY($3::text[]) "
                  "AND finished_at < " TS(1) " - ($2::bigint / 1000) * interval '1 microsecond' "
                  "ORDER BY finished_at LIMIT 1000 FOR UPDATE SKIP LOCKED)",
    /* The period $2 of schedule $1, taken by the first process to get here:
     * a row when it was taken now, its inserted flag true when the name was
     * new (recorded, nothing to enqueue). */
    [SQL_PERIOD] = "INSERT INTO {S}.periodic AS p (name, last_period) VALUES ($1, " TS(2) ") ON CONFLICT (name) "
                   "DO UPDATE SET last_period = EXCLUDED.last_period WHERE p.last_period < EXCLUDED.last_period "
                   "RETURNING (xmax = 0) AS inserted",
    [SQL_STATES] = "SELECT queue, state, count(*) FROM {S}.jobs GROUP BY queue, state",
    [SQL_LIST] = "SELECT " JOB_COLUMNS " FROM {S}.jobs WHERE ($1::text IS NULL OR queue = $1) "
                 "AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3) AND id > $4::bigint "
                 "ORDER BY id LIMIT $5::int",
};

/* The library's migrations: additive within a major version, so that two
 * adjacent releases can share one database during a rolling deploy. */
static const char *const migration_1 =
    "CREATE TABLE {S}.jobs ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " queue text NOT NULL,"
    " kind text NOT NULL,"
    " args jsonb NOT NULL DEFAULT '{}',"
    " state text NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'running', 'completed', "
    "'retryable', 'discarded', 'cancelled')),"
    " priority smallint NOT NULL DEFAULT 0,"
    " attempt int NOT NULL DEFAULT 0,"
    " max_attempts int NOT NULL CHECK (max_attempts > 0),"
    " run_at timestamptz NOT NULL,"
    " lease_until timestamptz,"
    " timeout_ns bigint NOT NULL DEFAULT 0,"
    " unique_key text,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " created_at timestamptz NOT NULL,"
    " attempted_at timestamptz,"
    " finished_at timestamptz,"
    " errors jsonb NOT NULL DEFAULT '[]');\n"
    "CREATE UNIQUE INDEX jobs_unique_key ON {S}.jobs (unique_key) WHERE " PENDING_KEY ";\n"
    "CREATE INDEX jobs_claim ON {S}.jobs (queue, priority, run_at, id) "
    "WHERE state IN ('available', 'retryable');\n"
    "CREATE INDEX jobs_lease ON {S}.jobs (queue, lease_until) WHERE state = 'running';\n";

/* Retention walks the finished jobs by age; periodic schedules remember the
 * last period they enqueued. */
static const char *const migration_2 =
    "CREATE INDEX jobs_finished ON {S}.jobs (finished_at) WHERE state IN ('completed', 'cancelled', "
    "'discarded');\n"
    "CREATE TABLE {S}.periodic (name text PRIMARY KEY, last_period timestamptz NOT NULL);\n";

void bk_jobs_opts_init(bk_jobs_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->schema = "backend_jobs";
    opts->lease_ns = 30 * BK_NSEC_PER_SEC;
    opts->max_attempts = 25;
    opts->migrate = true;
    opts->retention_ns = 24 * 3600 * BK_NSEC_PER_SEC;
    opts->discarded_retention_ns = 7 * 24 * 3600 * BK_NSEC_PER_SEC;
}

int bk_jobs_new(bk_db_t *db, const bk_jobs_opts_t *opts, bk_jobs_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    bk_jobs_opts_t d;
    if (!opts) {
        bk_jobs_opts_init(&d);
        opts = &d;
    }
    if (!out)
        return bk__error(err, BK_EINVAL, "bk_jobs_new: no out");
    *out = NULL;
    const char *schema = opts->schema ? opts->schema : "backend_jobs";
    if (!db)
        return bk__error(err, BK_EINVAL, "bk_jobs_new: no pool");
    if (!bk__sql_plain_ident(schema))
        return bk__error(err, BK_EINVAL, "bk_jobs_new: schema \"%s\" is not a plain identifier "
                         "([a-z_][a-z0-9_]{0,62})", schema);
    if (opts->lease_ns < 3 * BK_NSEC_PER_MSEC)
        return bk__error(err, BK_EINVAL, "bk_jobs_new: lease_ns must be at least 3 ms");
    if (opts->max_attempts == 0 || opts->max_attempts > INT32_MAX)
        return bk__error(err, BK_EINVAL, "bk_jobs_new: max_attempts must be in 1..INT32_MAX");
    bk_retry_opts_t retry;
    bk_retry_opts_init(&retry);
    retry.base_ns = BK_NSEC_PER_SEC;
    retry.cap_ns = 3600 * BK_NSEC_PER_SEC;
    if (opts->retry) {
        retry.base_ns = opts->retry->base_ns;
        retry.cap_ns = opts->retry->cap_ns;
        retry.jitter = opts->retry->jitter;
    }
    bk_retry_t probe;
    if (bk_retry_begin(&probe, &retry, true, 1) != BK_OK)
        return bk__error(err, BK_EINVAL, "bk_jobs_new: retry: base_ns > 0, cap_ns >= base_ns and a known jitter");
    bk_jobs_t *j = calloc(1, sizeof *j);
    if (!j)
        return bk__error(err, BK_ENOMEM, "out of memory");
    j->db = db;
    snprintf(j->schema, sizeof j->schema, "%s", schema);
    /* 63 bytes at most (NAMEDATALEN): a long schema is cut to fit. */
    snprintf(j->channel, sizeof j->channel, "%.58s_jobs", schema);
    j->clock = opts->clock;
    j->lease_ns = opts->lease_ns;
    j->retry = retry;
    j->retry.clock = opts->clock;
    j->max_attempts = opts->max_attempts;
    j->log = opts->log;
    /* Zero means the default (HACKING.md): never "delete at once" by omission. */
    j->retention_ns = opts->retention_ns ? opts->retention_ns : 24 * 3600 * BK_NSEC_PER_SEC;
    j->discarded_retention_ns =
        opts->discarded_retention_ns ? opts->discarded_retention_ns : 7 * 24 * 3600 * BK_NSEC_PER_SEC;
    if (opts->metrics &&
        (bk_metrics_counter(opts->metrics, "jobs_total", "Outcomes of job attempts.",
                            (const char *[]){"queue", "kind", "outcome", NULL}, &j->m_total) != BK_OK ||
         bk_metrics_histogram(opts->metrics, "jobs_wait_seconds", "From when a job was due to the start of "
                              "its attempt.", (const char *[]){"queue", "kind", NULL}, NULL, 0, &j->m_wait) != BK_OK ||
         bk_metrics_histogram(opts->metrics, "jobs_duration_seconds", "How long handlers ran.",
                              (const char *[]){"queue", "kind", NULL}, NULL, 0, &j->m_duration) != BK_OK ||
         bk_metrics_gauge(opts->metrics, "jobs_in_state", "Jobs by queue and state, as of a worker's last prune.",
                          (const char *[]){"queue", "state", NULL}, &j->m_state) != BK_OK)) {
        bk_jobs_free(j);
        return bk__error(err, BK_EEXIST, "bk_jobs_new: its metrics clash with families of the registry");
    }
    for (int i = 0; i < SQL_COUNT_; i++) {
        if (!(j->sql[i] = bk__sql_splice(templates[i], j->schema))) {
            bk_jobs_free(j);
            return bk__error(err, BK_ENOMEM, "out of memory");
        }
    }
    if (opts->migrate) {
        int rc = bk_jobs_migrate(j, err);
        if (rc) {
            bk_jobs_free(j);
            return rc;
        }
    }
    *out = j;
    return BK_OK;
}

void bk_jobs_free(bk_jobs_t *jobs)
{
    if (!jobs)
        return;
    for (int i = 0; i < SQL_COUNT_; i++)
        free(jobs->sql[i]);
    free(jobs);
}

int bk_jobs_migrate(bk_jobs_t *jobs, bk_error_t *err)
{
    bk__error_clear(err);
    if (!jobs)
        return bk__error(err, BK_EINVAL, "bk_jobs_migrate: no queue");
    char *m1 = bk__sql_splice(migration_1, jobs->schema), *m2 = bk__sql_splice(migration_2, jobs->schema);
    int rc;
    if (!m1 || !m2) {
        rc = bk__error(err, BK_ENOMEM, "out of memory");
    } else {
        const bk_db_migration_t list[] = {{1, "jobs table", m1}, {2, "retention index, periodic schedules", m2}};
        rc = bk_db_migrate_list(jobs->db, jobs->schema, list, sizeof list / sizeof *list, NULL, err);
    }
    free(m1);
    free(m2);
    return rc;
}

void bk__jobs_count(const bk_job_t *job, const char *outcome)
{
    bk_counter_t *c;
    if (job->jobs->m_total &&
        bk_metric_counter(job->jobs->m_total, (const char *[]){job->queue, job->kind, outcome, NULL}, &c) == BK_OK)
        bk_counter_inc(c);
}

void bk__jobs_observe(const bk_job_t *job, bk_metric_t *family, double seconds)
{
    bk_histogram_t *h;
    if (family && bk_metric_histogram(family, (const char *[]){job->queue, job->kind, NULL}, &h) == BK_OK)
        bk_histogram_observe(h, seconds);
}

void bk__jobs_gauge(bk_jobs_t *jobs)
{
    if (!jobs->m_state)
        return;
    bk_db_result_t *res;
    bk_error_t err;
    if (bk__jobs_query(jobs, NULL, SQL_STATES, NULL, 0, &res, &err) != BK_OK) {
        bk_log(jobs->log, BK_LOG_WARN, NULL, "jobs: counting by state failed: %s", err.message);
        return;
    }
    /* Every state of every queue seen, 0 unless counted now: a state that
     * emptied must not keep its last count. */
    static const char *const STATES[] = {"available", "running", "completed", "retryable", "discarded", "cancelled"};
    for (size_t r = 0; r < bk_db_rows(res); r++) {
        const char *queue = bk_db_value(res, r, 0);
        bool first = true; /* the first row of its queue sets them all */
        for (size_t k = 0; k < r && first; k++)
            first = strcmp(bk_db_value(res, k, 0), queue) != 0;
        if (!first)
            continue;
        for (size_t i = 0; i < sizeof STATES / sizeof *STATES; i++) {
            double v = 0;
            for (size_t k = r; k < bk_db_rows(res); k++)
                if (strcmp(bk_db_value(res, k, 0), queue) == 0 && strcmp(bk_db_value(res, k, 1), STATES[i]) == 0)
                    v = strtod(bk_db_value(res, k, 2), NULL);
            bk_gauge_t *g;
            if (bk_metric_gauge(jobs->m_state, (const char *[]){queue, STATES[i], NULL}, &g) == BK_OK)
                bk_gauge_set(g, v);
        }
    }
    bk_db_result_free(res);
}

bk_db_t *bk_jobs_db(const bk_jobs_t *jobs) { return jobs ? jobs->db : NULL; }
bk_clock_t *bk_jobs_clock(const bk_jobs_t *jobs) { return jobs ? jobs->clock : NULL; }

int bk__jobs_query(bk_jobs_t *jobs, bk_db_conn_t *conn, enum bk__jobs_sql which, const bk_db_param_t *p,
                   size_t n, bk_db_result_t **res, bk_error_t *err)
{
    return bk__sql_query(jobs->db, conn, jobs->sql[which], p, n, res, err);
}

char *bk__jobs_text_array(const char *const *s, size_t n)
{
    bk__sql_arr_t a = {0};
    for (size_t i = 0; i < n; i++)
        bk__sql_arr_str(&a, s[i]);
    return bk__sql_arr_end(&a);
}
