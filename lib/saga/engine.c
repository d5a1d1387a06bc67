/* The engine: its options, its statements (the schema spliced in once), its
 * embedded migrations, and the worker that runs the sagas' jobs.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/abi_int.h"
#include "core/json_int.h"
#include "db/sql_int.h"
#include "jobs/jobs_int.h"
#include "saga/saga_int.h"

BK__ASSERT_ABI_SIZE(bk_saga_opts_t, 112);

#define TS BK__SAGA_TS
#define FINISHED "('completed', 'compensated', 'resolved')"

/* {S} stands for the quoted schema. */
static const char *const templates[SAGA_SQL_COUNT_] = {
    /* The saga and its steps, all pending, in one statement; nothing when a
     * saga of that name holds the key. */
    [SAGA_INSERT] = "WITH s AS (INSERT INTO {S}.sagas (name, version, key, context, created_at, updated_at) "
                    "VALUES ($1, $2::int, $3, $4::jsonb, " TS(5) ", " TS(5) ") "
                    "ON CONFLICT (name, key) WHERE key IS NOT NULL DO NOTHING RETURNING id), "
                    "st AS (INSERT INTO {S}.steps (saga_id, idx, name) SELECT s.id, n.i - 1, n.name "
                    "FROM s, unnest($6::text[]) WITH ORDINALITY AS n(name, i)) SELECT id FROM s",
    [SAGA_BY_KEY] = "SELECT id FROM {S}.sagas WHERE name = $1 AND key = $2",
    [SAGA_LOCK] = "SELECT status, phase, step, context::text, pivoted, cancel_requested FROM {S}.sagas "
                  "WHERE id = $1 FOR UPDATE",
    /* One more attempt of the phase; returns it counted from the last retry by
     * an operator (the budget), then in all (the attempt's number). */
    [SAGA_STEP_BEGIN] = "UPDATE {S}.steps SET status = CASE WHEN $4::text = 'action' THEN 'running' ELSE "
                        "'compensating' END, attempts = attempts + ($4::text = 'action')::int, "
                        "compensate_attempts = compensate_attempts + ($4::text = 'compensate')::int, "
                        "started_at = COALESCE(started_at, " TS(3) ") WHERE saga_id = $1 AND idx = $2::int "
                        "RETURNING CASE WHEN $4::text = 'action' THEN attempts - attempts_base ELSE "
                        "compensate_attempts - compensate_base END, CASE WHEN $4::text = 'action' THEN attempts "
                        "ELSE compensate_attempts END",
    [SAGA_ATTEMPT] = "INSERT INTO {S}.attempts (saga_id, idx, phase, attempt, job_id, job_attempt, worker, "
                     "started_at) VALUES ($1, $2::int, $3, $4::int, $5, $6::int, $7, " TS(8) ")",
    [SAGA_ATTEMPT_END] = "UPDATE {S}.attempts SET outcome = $5, finished_at = " TS(6) " WHERE saga_id = $1 "
                         "AND idx = $2::int AND phase = $3 AND attempt = $4::int",
    [SAGA_STEP_ERROR] = "UPDATE {S}.steps SET status = $7, errors = errors || jsonb_build_array("
                        "jsonb_build_object('attempt', $5::int, 'phase', $4::text, 'at', " TS(3) ", 'error', "
                        "$6::text)) WHERE saga_id = $1 AND idx = $2::int",
    [SAGA_STEP_DONE] = "UPDATE {S}.steps SET status = $4, output = COALESCE($5::jsonb, output), finished_at = " TS(3)
                       " WHERE saga_id = $1 AND idx = $2::int",
    [SAGA_ADVANCE] = "UPDATE {S}.sagas SET status = $3, phase = $4, step = $5::int, "
                     "context = context || COALESCE($6::jsonb, '{}'), pivoted = pivoted OR $7::boolean, "
                     "error = COALESCE($8, error), updated_at = " TS(2) ", "
                     "finished_at = CASE WHEN $3 IN " FINISHED " THEN " TS(2) " END WHERE id = $1 RETURNING error, context",
    [SAGA_GET] = "SELECT id, name AS saga, version, key, status, step, pivoted, cancel_requested, error, context, "
                 "created_at, updated_at, finished_at FROM {S}.sagas WHERE id = $1",
    [SAGA_GET_STEPS] = "SELECT name, status, attempts, compensate_attempts, output, errors, started_at, "
                       "finished_at FROM {S}.steps WHERE saga_id = $1 ORDER BY idx",
    [SAGA_CANCEL] = "UPDATE {S}.sagas SET cancel_requested = true, updated_at = " TS(2)
                    " WHERE id = $1 AND status = 'running' AND NOT pivoted RETURNING id",
    [SAGA_STATE] = "SELECT status, pivoted FROM {S}.sagas WHERE id = $1",
    [SAGA_RESOLVE] = "UPDATE {S}.sagas SET status = 'resolved', error = COALESCE($3, error), finished_at = " TS(2)
                     ", updated_at = " TS(2) " WHERE id = $1 AND status = 'stuck' RETURNING name, version",
    /* The stuck phase goes on, its attempts counted afresh from here. */
    [SAGA_RETRY] = "WITH s AS (UPDATE {S}.sagas SET status = CASE WHEN phase = 'action' THEN 'running' ELSE "
                   "'compensating' END, updated_at = " TS(2) " WHERE id = $1 AND status = 'stuck' "
                   "RETURNING id, name, version, phase, step), "
                   "st AS (UPDATE {S}.steps t SET attempts_base = CASE WHEN s.phase = 'action' THEN t.attempts "
                   "ELSE t.attempts_base END, compensate_base = CASE WHEN s.phase = 'compensate' THEN "
                   "t.compensate_attempts ELSE t.compensate_base END FROM s WHERE t.saga_id = s.id "
                   "AND t.idx = s.step) SELECT name, version FROM s",
    /* At most 1000 finished sagas past their retention ($2 ns); their steps and
     * attempts go with them (ON DELETE CASCADE). */
    [SAGA_PRUNE] = "DELETE FROM {S}.sagas WHERE id IN (SELECT id FROM {S}.sagas WHERE status IN " FINISHED
                   " AND finished_at < " TS(1) " - ($2::bigint / 1000) * interval '1 microsecond' "
                   "ORDER BY finished_at LIMIT 1000 FOR UPDATE SKIP LOCKED)",
    [SAGA_COUNT] = "SELECT name, status, count(*) FROM {S}.sagas GROUP BY name, status",
    /* Whether an attempt of the action may have taken effect: it never
     * returned (its worker died), or it said so (outcome 'unknown'). */
    [SAGA_MAYBE_APPLIED] = "SELECT count(*) FROM {S}.attempts WHERE saga_id = $1 AND idx = $2::int "
                           "AND phase = 'action' AND (outcome IS NULL OR outcome = 'unknown')",
    /* The action the saga is at, begun in a fresh job: nothing (and the
     * general begin decides) unless the saga runs its actions, no cancel came
     * and the step has attempts left. */
    [SAGA_FAST_BEGIN] = "WITH j AS (" BK__JOBS_HOLD_SQL("{J}") "), "
                        "s AS (SELECT id, step, context::text AS context, pivoted FROM {S}.sagas WHERE id = $4 "
                        "AND status = 'running' AND phase = 'action' AND NOT cancel_requested "
                        "AND EXISTS (SELECT 1 FROM j) FOR UPDATE), "
                        "t AS (UPDATE {S}.steps t SET status = 'running', attempts = t.attempts + 1, "
                        "started_at = COALESCE(t.started_at, " TS(3) ") FROM s WHERE t.saga_id = s.id "
                        "AND t.idx = s.step AND t.attempts - t.attempts_base < ($5::int[])[s.step + 1] "
                        "RETURNING t.idx, t.attempts - t.attempts_base AS budget, t.attempts), "
                        "a AS (INSERT INTO {S}.attempts (saga_id, idx, phase, attempt, job_id, job_attempt, worker, "
                        "started_at) SELECT $4, t.idx, 'action', t.attempts, $1, $2::int, $6, " TS(3) " FROM t) "
                        "SELECT t.idx, t.budget, t.attempts, s.context, s.pivoted FROM s, t",
    /* Action idx succeeded: it is completed and the next begun, in the same
     * job; nothing when a cancel came (the general end takes it). */
    [SAGA_FAST_NEXT] = "WITH j AS (" BK__JOBS_HOLD_SQL("{J}") "), "
                       "s AS (UPDATE {S}.sagas SET step = $5::int + 1, context = context || COALESCE($7::jsonb, '{}'), "
                       "pivoted = pivoted OR $8::boolean, updated_at = " TS(3) " WHERE id = $4 AND status = 'running' "
                       "AND phase = 'action' AND step = $5::int AND NOT cancel_requested AND EXISTS (SELECT 1 FROM j) "
                       "RETURNING context::text AS context, pivoted), "
                       "t AS (UPDATE {S}.steps SET status = CASE WHEN idx = $5::int THEN 'completed' ELSE 'running' END, "
                       "output = CASE WHEN idx = $5::int THEN COALESCE($7::jsonb, output) ELSE output END, "
                       "finished_at = CASE WHEN idx = $5::int THEN " TS(3) " ELSE finished_at END, "
                       "attempts = attempts + (idx = $5::int + 1)::int, "
                       "started_at = CASE WHEN idx = $5::int THEN started_at ELSE COALESCE(started_at, " TS(3) ") END "
                       "WHERE saga_id = $4 AND idx IN ($5::int, $5::int + 1) AND EXISTS (SELECT 1 FROM s) "
                       "RETURNING idx, attempts - attempts_base AS budget, attempts), "
                       "e AS (UPDATE {S}.attempts SET outcome = 'ok', finished_at = " TS(3) " WHERE saga_id = $4 "
                       "AND idx = $5::int AND phase = 'action' AND attempt = $6::int AND EXISTS (SELECT 1 FROM s)), "
                       "a AS (INSERT INTO {S}.attempts (saga_id, idx, phase, attempt, job_id, job_attempt, worker, "
                       "started_at) SELECT $4, t.idx, 'action', t.attempts, $1, $2::int, $9, " TS(3) " FROM t "
                       "WHERE t.idx = $5::int + 1) "
                       "SELECT t.budget, t.attempts, s.context, s.pivoted FROM s, t WHERE t.idx = $5::int + 1",
    /* The last action succeeded: the saga is completed and its job with it. */
    [SAGA_FAST_DONE] = "WITH j AS (" BK__JOBS_HOLD_SQL("{J}") "), "
                       "s AS (UPDATE {S}.sagas SET status = 'completed', context = context || COALESCE($7::jsonb, "
                       "'{}'), pivoted = pivoted OR $8::boolean, updated_at = " TS(3) ", finished_at = " TS(3)
                       " WHERE id = $4 AND status = 'running' AND phase = 'action' AND step = $5::int "
                       "AND EXISTS (SELECT 1 FROM j) RETURNING id, context), "
                       "c AS (" BK__JOBS_COMPLETE_SQL("{J}") " AND EXISTS (SELECT 1 FROM s) RETURNING id), "
                       "t AS (UPDATE {S}.steps SET status = 'completed', output = COALESCE($7::jsonb, output), "
                       "finished_at = " TS(3) " WHERE saga_id = $4 AND idx = $5::int AND EXISTS (SELECT 1 FROM s)), "
                       "e AS (UPDATE {S}.attempts SET outcome = 'ok', finished_at = " TS(3) " WHERE saga_id = $4 "
                       "AND idx = $5::int AND phase = 'action' AND attempt = $6::int AND EXISTS (SELECT 1 FROM s)) "
                       "SELECT c.id, s.context FROM c, s",
};

/* The library's migrations: additive within a major version. */
static const char *const migration_1 =
    "CREATE TABLE {S}.sagas ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name text NOT NULL,"
    " version int NOT NULL,"
    " key text,"
    " status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'compensating', 'completed', "
    "'compensated', 'stuck', 'resolved')),"
    " phase text NOT NULL DEFAULT 'action' CHECK (phase IN ('action', 'compensate')),"
    " step int NOT NULL DEFAULT 0,"
    " context jsonb NOT NULL DEFAULT '{}',"
    " pivoted boolean NOT NULL DEFAULT false,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " error text,"
    " created_at timestamptz NOT NULL,"
    " updated_at timestamptz NOT NULL,"
    " finished_at timestamptz);\n"
    "CREATE UNIQUE INDEX sagas_key ON {S}.sagas (name, key) WHERE key IS NOT NULL;\n"
    "CREATE INDEX sagas_finished ON {S}.sagas (finished_at) WHERE finished_at IS NOT NULL;\n"
    "CREATE TABLE {S}.steps ("
    " saga_id bigint NOT NULL REFERENCES {S}.sagas (id) ON DELETE CASCADE,"
    " idx int NOT NULL,"
    " name text NOT NULL,"
    " status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed', "
    "'compensating', 'compensated')),"
    " attempts int NOT NULL DEFAULT 0,"
    " attempts_base int NOT NULL DEFAULT 0,"
    " compensate_attempts int NOT NULL DEFAULT 0,"
    " compensate_base int NOT NULL DEFAULT 0,"
    " output jsonb,"
    " errors jsonb NOT NULL DEFAULT '[]',"
    " started_at timestamptz,"
    " finished_at timestamptz,"
    " PRIMARY KEY (saga_id, idx));\n"
    /* One row per attempt, keyed by its number: two processes can never both
     * start attempt n of a step. */
    "CREATE TABLE {S}.attempts ("
    " saga_id bigint NOT NULL,"
    " idx int NOT NULL,"
    " phase text NOT NULL CHECK (phase IN ('action', 'compensate')),"
    " attempt int NOT NULL,"
    " job_id bigint NOT NULL,"
    " job_attempt int NOT NULL,"
    " worker text NOT NULL,"
    " outcome text,"
    " started_at timestamptz NOT NULL,"
    " finished_at timestamptz,"
    " PRIMARY KEY (saga_id, idx, phase, attempt),"
    " FOREIGN KEY (saga_id, idx) REFERENCES {S}.steps (saga_id, idx) ON DELETE CASCADE);\n";

void bk_saga_opts_init(bk_saga_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->schema = "backend_saga";
    opts->queue = "saga";
    opts->threads = 4;
    opts->migrate = true;
    opts->retention_ns = 7 * 24 * 3600 * BK_NSEC_PER_SEC;
}

static int migrate(bk_saga_engine_t *e, bk_error_t *err)
{
    char *m1 = bk__sql_splice(migration_1, e->schema);
    if (!m1)
        return bk__error(err, BK_ENOMEM, "out of memory");
    const bk_db_migration_t list[] = {{1, "sagas, steps, attempts", m1}};
    int rc = bk_db_migrate_list(e->db, e->schema, list, sizeof list / sizeof *list, NULL, err);
    free(m1);
    return rc;
}

/* tmpl with {S} the saga schema and {J} the jobs schema. */
static char *splice(const char *tmpl, const char *schema, const char *jobs_schema)
{
    char *half = bk__sql_splice(tmpl, schema);
    char *out = half ? bk__sql_splice_as(half, "{J}", jobs_schema) : NULL;
    free(half);
    return out;
}

int bk_saga_engine_new(bk_jobs_t *jobs, const bk_saga_opts_t *opts, bk_saga_engine_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    bk_saga_opts_t d;
    if (!opts) {
        bk_saga_opts_init(&d);
        opts = &d;
    }
    if (!jobs || !out)
        return bk__error(err, BK_EINVAL, "saga engine: no queue or no out");
    *out = NULL;
    const char *schema = opts->schema ? opts->schema : "backend_saga";
    if (!bk__sql_plain_ident(schema))
        return bk__error(err, BK_EINVAL, "saga engine: schema \"%s\" is not a plain identifier "
                         "([a-z_][a-z0-9_]{0,62})", schema);
    if (opts->poll_interval_ns < 0)
        return bk__error(err, BK_EINVAL, "saga engine: negative poll_interval_ns");
    bk_saga_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return bk__error(err, BK_ENOMEM, "out of memory");
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        free(e);
        return bk__error(err, BK_ESYS, "saga engine: cannot create a mutex");
    }
    if (bk__clock_cond_init(&e->cv) != 0) {
        pthread_mutex_destroy(&e->mu);
        free(e);
        return bk__error(err, BK_ESYS, "saga engine: cannot create a condition variable");
    }
    e->jobs = jobs;
    e->db = bk_jobs_db(jobs);
    e->clock = bk_jobs_clock(jobs);
    e->watch.mu = &e->mu;
    e->watch.cv = &e->cv;
    bk__clock_watch(e->clock, &e->watch);
    e->log = opts->log;
    e->metrics = opts->metrics;
    e->retention_ns = opts->retention_ns;
    snprintf(e->schema, sizeof e->schema, "%s", schema);
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(e->worker_id, sizeof e->worker_id, "%s:%ld", host, (long)getpid());
    e->queue = strdup(opts->queue ? opts->queue : "saga");
    int rc = e->queue ? BK_OK : bk__error(err, BK_ENOMEM, "out of memory");
    for (int i = 0; rc == BK_OK && i < SAGA_SQL_COUNT_; i++)
        if (!(e->sql[i] = splice(templates[i], e->schema, jobs->schema)))
            rc = bk__error(err, BK_ENOMEM, "out of memory");
    bk_jobs_worker_opts_t wo;
    bk_jobs_worker_opts_init(&wo);
    wo.queue = e->queue;
    wo.threads = opts->threads ? opts->threads : 4;
    wo.poll_only = opts->poll_only;
    if (opts->poll_interval_ns)
        wo.poll_interval_ns = opts->poll_interval_ns;
    if (rc == BK_OK)
        rc = bk_jobs_worker_new(jobs, &wo, &e->worker, err);
    if (rc == BK_OK && e->metrics &&
        (bk_metrics_counter(e->metrics, "sagas_total", "Sagas by the outcome they reached.",
                            (const char *[]){"saga", "outcome", NULL}, &e->m_total) != BK_OK ||
         bk_metrics_histogram(e->metrics, "saga_step_duration_seconds", "Attempts of saga steps by how long "
                              "their callback ran.", (const char *[]){"saga", "step", NULL}, NULL, 0,
                              &e->m_duration) != BK_OK ||
         bk_metrics_gauge(e->metrics, "sagas_in_state", "Sagas by status, as of the last bk_saga_prune.",
                          (const char *[]){"saga", "status", NULL}, &e->m_status) != BK_OK))
        rc = bk__error(err, BK_EEXIST, "saga engine: its metrics clash with families of the registry");
    if (rc == BK_OK && opts->migrate)
        rc = migrate(e, err);
    /* Retention by itself: one prune an hour, by one of the engines sharing
     * the schema (a periodic job of the queue). */
    snprintf(e->prune_kind, sizeof e->prune_kind, "saga-prune:%s", e->schema);
    if (rc == BK_OK) {
        bk_jobs_enqueue_opts_t po;
        bk_jobs_enqueue_opts_init(&po);
        po.queue = e->queue;
        rc = bk_jobs_periodic(e->worker, e->prune_kind, "@every 1h", e->prune_kind, NULL, &po, err);
    }
    if (rc) {
        bk_saga_engine_free(e);
        return rc;
    }
    *out = e;
    return BK_OK;
}

/* The names of enum bk__saga_outcome: sagas_total's outcome label. */
static const char *const OUTCOMES[OUT_COUNT_] = {"completed", "compensated", "stuck", "resolved"};

struct bk__saga_reg *bk__saga_reg_of(bk_saga_engine_t *e, const char *name, int version)
{
    for (size_t i = 0; i < e->nregs; i++)
        if (e->regs[i].def->version == version && strcmp(e->regs[i].def->name, name) == 0)
            return &e->regs[i];
    return NULL;
}

void bk__saga_count(struct bk__saga_reg *reg, const char *status)
{
    for (int i = 0; reg && status && i < OUT_COUNT_; i++)
        if (strcmp(OUTCOMES[i], status) == 0 && reg->outcomes[i])
            bk_counter_inc(reg->outcomes[i]);
}

int bk_saga_prune(bk_saga_engine_t *e, size_t *deleted, bk_error_t *err)
{
    bk__error_clear(err);
    if (deleted)
        *deleted = 0;
    if (!e)
        return bk__error(err, BK_EINVAL, "saga prune: no engine");
    int rc = BK_OK;
    if (e->retention_ns >= 0) {
        char now[24], keep[24];
        snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(e->clock));
        snprintf(keep, sizeof keep, "%" PRId64, e->retention_ns);
        bk_db_param_t p[] = {BK_DB_TEXT(now), BK_DB_TEXT(keep)};
        for (;;) {
            bk_db_result_t *res;
            if ((rc = bk__saga_query(e, NULL, SAGA_PRUNE, p, 2, &res, err)) != BK_OK)
                return rc;
            int64_t n = bk_db_affected(res);
            bk_db_result_free(res);
            if (deleted)
                *deleted += (size_t)n;
            if (n < 1000)
                break;
        }
    }
    if (!e->metrics)
        return BK_OK;
    bk_db_result_t *res;
    if ((rc = bk__saga_query(e, NULL, SAGA_COUNT, NULL, 0, &res, err)) != BK_OK)
        return rc;
    /* Every status of every registered name, 0 unless counted. */
    static const char *const STATUSES[] = {"running", "compensating", "completed", "compensated", "stuck",
                                           "resolved"};
    for (size_t i = 0; i < e->nregs; i++)
        for (size_t s = 0; s < sizeof STATUSES / sizeof *STATUSES; s++) {
            bk_gauge_t *g;
            if (bk_metric_gauge(e->m_status, (const char *[]){e->regs[i].def->name, STATUSES[s], NULL}, &g) != BK_OK)
                continue;
            double v = 0;
            for (size_t r = 0; r < bk_db_rows(res); r++)
                if (strcmp(bk_db_value(res, r, 0), e->regs[i].def->name) == 0 &&
                    strcmp(bk_db_value(res, r, 1), STATUSES[s]) == 0)
                    v = strtod(bk_db_value(res, r, 2), NULL);
            bk_gauge_set(g, v);
        }
    bk_db_result_free(res);
    return BK_OK;
}

int bk_saga_register(bk_saga_engine_t *e, bk_saga_def_t *def, bk_error_t *err)
{
    bk__error_clear(err);
    if (!e || !def)
        return bk__error(err, BK_EINVAL, "saga register: no engine or no definition");
    if (def->n == 0)
        return bk__error(err, BK_EINVAL, "saga register: %s has no steps", def->kind);
    if (e->started)
        return bk__error(err, BK_EBUSY, "saga register: the engine is started");
    if (bk__saga_reg_of(e, def->name, def->version))
        return bk__error(err, BK_EEXIST, "saga register: %s is registered already", def->kind);
    /* The handlers' ud must not move: a fixed array, grown before any is given out. */
    struct bk__saga_reg *r = malloc((e->nregs + 1) * sizeof *r);
    if (!r)
        return bk__error(err, BK_ENOMEM, "out of memory");
    if (e->nregs)
        memcpy(r, e->regs, e->nregs * sizeof *r);
    r[e->nregs] = (struct bk__saga_reg){e, def, {NULL}, NULL};
    int rc = BK_OK;
    if (e->metrics) {
        for (int i = 0; rc == BK_OK && i < OUT_COUNT_; i++)
            rc = bk_metric_counter(e->m_total, (const char *[]){def->name, OUTCOMES[i], NULL},
                                   &r[e->nregs].outcomes[i]);
        if (rc == BK_OK && !(r[e->nregs].durations = calloc(def->n, sizeof *r[e->nregs].durations)))
            rc = BK_ENOMEM;
        for (size_t i = 0; rc == BK_OK && i < def->n; i++)
            rc = bk_metric_histogram(e->m_duration, (const char *[]){def->name, def->steps[i].name, NULL},
                                     &r[e->nregs].durations[i]);
    }
    if (rc != BK_OK) {
        free(r[e->nregs].durations);
        free(r);
        return bk__error(err, rc, "saga register: its metrics");
    }
    free(e->regs);
    e->regs = r;
    e->nregs++;
    atomic_store(&def->registered, true);
    return BK_OK;
}

static int prune_job(bk_job_t *job, void *ud)
{
    bk_error_t err;
    int rc = bk_saga_prune(ud, NULL, &err);
    if (rc != BK_OK)
        bk_job_error(job, err.message);
    return rc;
}

int bk_saga_engine_start(bk_saga_engine_t *e, bk_error_t *err)
{
    bk__error_clear(err);
    if (!e)
        return bk__error(err, BK_EINVAL, "saga engine: none");
    if (e->started)
        return bk__error(err, BK_EBUSY, "saga engine: started already");
    if (e->nregs == 0)
        return bk__error(err, BK_EINVAL, "saga engine: no definition registered");
    /* The handlers are given their ud now that regs no longer moves. */
    for (size_t i = 0; i < e->nregs; i++) {
        int rc = bk_jobs_handle(e->worker, e->regs[i].def->kind, bk__saga_run_job, &e->regs[i]);
        if (rc != BK_OK)
            return bk__error(err, rc, "saga engine: cannot handle %s", e->regs[i].def->kind);
    }
    int rc = bk_jobs_handle(e->worker, e->prune_kind, prune_job, e);
    if (rc != BK_OK)
        return bk__error(err, rc, "saga engine: cannot handle %s", e->prune_kind);
    rc = bk_jobs_worker_start(e->worker, err);
    if (rc == BK_OK)
        e->started = true;
    return rc;
}

int bk_saga_engine_stop(bk_saga_engine_t *e, int64_t deadline_ns)
{
    if (!e)
        return BK_EINVAL;
    return bk_jobs_worker_stop(e->worker, deadline_ns);
}

void bk_saga_engine_free(bk_saga_engine_t *e)
{
    if (!e)
        return;
    bk_jobs_worker_free(e->worker);
    bk__clock_unwatch(e->clock, &e->watch);
    for (size_t i = 0; i < e->nregs; i++)
        free(e->regs[i].durations);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    for (int i = 0; i < SAGA_SQL_COUNT_; i++)
        free(e->sql[i]);
    free(e->regs);
    free(e->queue);
    free(e);
}

void bk__saga_moved(bk_saga_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->moves++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int bk__saga_query(bk_saga_engine_t *e, bk_db_conn_t *conn, enum bk__saga_sql which, const bk_db_param_t *p, size_t n,
                   bk_db_result_t **res, bk_error_t *err)
{
    return bk__sql_query(e->db, conn, e->sql[which], p, n, res, err);
}

int bk__saga_enqueue(bk_saga_engine_t *e, bk_db_conn_t *conn, const char *kind, int64_t id, int64_t run_at_ns,
                     bk_error_t *err)
{
    json_t *args = json_pack("{s:I}", "saga", (json_int_t)id);
    if (!args)
        return bk__error(err, BK_ENOMEM, "out of memory");
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.queue = e->queue;
    o.run_at_ns = run_at_ns;
    /* The saga counts its steps' attempts itself (in its tables, so that a
     * crash counts too); the job's attempts only have to outlast rescues.
     * Its timeout is each step's, rearmed by the job before each callback. */
    o.max_attempts = 1000000;
    int rc = bk_jobs_enqueue(e->jobs, conn, kind, args, &o, NULL, err);
    json_decref(args);
    return rc;
}
