/* A claimed attempt of a job: the claim (ready jobs and expired leases in one
 * statement), its accessors, and its outcomes. Every outcome is fenced on (id,
 * attempt, state = running): a holder whose lease expired and whose job was
 * claimed again changes nothing.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_int.h"
#include "resilience/resilience_int.h"

int bk_jobs_claim(bk_jobs_t *jobs, const char *queue, const char *const *kinds, size_t n_kinds, size_t max,
                  bk_job_t **out, size_t *n, bk_error_t *err)
{
    bk__error_clear(err);
    if (n)
        *n = 0;
    if (!jobs || !out || !n || (n_kinds && !kinds))
        return bk__error(err, BK_EINVAL, "claim: no queue, out or n");
    if (max == 0)
        return BK_OK;
    char *karr = n_kinds ? bk__jobs_text_array(kinds, n_kinds) : NULL;
    if (n_kinds && !karr)
        return bk__error(err, BK_ENOMEM, "out of memory");
    char now[24], lease[24], lim[24];
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(jobs->clock));
    snprintf(lease, sizeof lease, "%" PRId64, jobs->lease_ns);
    snprintf(lim, sizeof lim, "%zu", max);
    bk_db_param_t p[] = {BK_DB_TEXT(now), BK_DB_TEXT(lease), BK_DB_TEXT(queue ? queue : "default"),
                         karr ? BK_DB_TEXT(karr) : BK_DB_NULL, BK_DB_TEXT(lim)};
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, NULL, SQL_CLAIM, p, 5, &res, err);
    free(karr);
    if (rc)
        return rc;
    size_t rows = bk_db_rows(res);
    int64_t mono = bk_clock_mono_ns(jobs->clock);
    for (size_t r = 0; r < rows && r < max; r++) {
        bk_job_t *j = calloc(1, sizeof *j);
        const char *args = bk_db_value(res, r, 2);
        if (j) {
            j->jobs = jobs;
            j->id = strtoll(bk_db_value(res, r, 0), NULL, 10);
            j->kind = strdup(bk_db_value(res, r, 1));
            j->queue = strdup(queue ? queue : "default");
            j->run_at_ns = strtoll(bk_db_value(res, r, 9), NULL, 10);
            j->args = json_loads(args ? args : "{}", JSON_DECODE_ANY, NULL);
            j->attempt = atoi(bk_db_value(res, r, 3));
            j->max_attempts = atoi(bk_db_value(res, r, 4));
            j->timeout_ns = strtoll(bk_db_value(res, r, 5), NULL, 10);
            atomic_init(&j->cancelled, strcmp(bk_db_value(res, r, 6), "t") == 0);
            j->started_ns = mono;
        }
        if (!j || !j->kind || !j->queue || !j->args) {
            /* Claimed but cannot be run: its lease expires and another claim takes it. */
            bk_job_free(j);
            rc = bk__error(err, BK_ENOMEM, "out of memory");
            continue;
        }
        out[(*n)++] = j;
    }
    bk_db_result_free(res);
    return *n ? BK_OK : rc;
}

int64_t bk_job_id(const bk_job_t *job) { return job->id; }
const char *bk_job_kind(const bk_job_t *job) { return job->kind; }
const json_t *bk_job_args(const bk_job_t *job) { return job->args; }
int bk_job_attempt(const bk_job_t *job) { return job->attempt; }
int bk_job_max_attempts(const bk_job_t *job) { return job->max_attempts; }
bool bk_job_cancelled(const bk_job_t *job) { return atomic_load(&((bk_job_t *)job)->cancelled); }

void bk_job_error(bk_job_t *job, const char *msg)
{
    if (!job)
        return;
    free(job->error);
    job->error = msg ? strdup(msg) : NULL;
}

void bk_job_snooze(bk_job_t *job, int64_t delay_ns)
{
    if (!job)
        return;
    job->snoozed = true;
    job->snooze_ns = delay_ns < 0 ? 0 : delay_ns;
}

/* $1 id, $2 attempt, $3 now, then extra. */
static int fenced(bk_job_t *job, bk_db_conn_t *conn, enum bk__jobs_sql which, int64_t at_ns, const char *retry_at,
                  const char *msg, const char *what, bk_error_t *err)
{
    bk_jobs_t *jobs = job->jobs;
    char id[24], attempt[16], now[24];
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(now, sizeof now, "%" PRId64, at_ns);
    bk_db_param_t p[] = {BK_DB_TEXT(id), BK_DB_TEXT(attempt), BK_DB_TEXT(now), BK_DB_TEXT(retry_at),
                         BK_DB_TEXT(msg)};
    size_t np = which == SQL_FAIL ? 5 : 3;
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, conn, which, p, np, &res, err);
    if (rc)
        return rc;
    int64_t n = which == SQL_HOLD ? (int64_t)bk_db_rows(res) : bk_db_affected(res);
    if (which == SQL_FAIL && n > 0) /* what the failure made of it */
        bk__jobs_count(job, strcmp(bk_db_value(res, 0, 0), "retryable") == 0 ? "retried" : bk_db_value(res, 0, 0));
    bk_db_result_free(res);
    if (n == 0) {
        bk_log(jobs->log, BK_LOG_WARN, json_pack("{s:I, s:i, s:s}", "job", (json_int_t)job->id, "attempt",
                                                 job->attempt, "kind", job->kind),
               "job %" PRId64 " attempt %d: %s refused: the attempt no longer holds the job", job->id, job->attempt,
               what);
        return bk__error(err, BK_ECONFLICT, "job %" PRId64 " attempt %d no longer holds the job (fenced)", job->id,
                         job->attempt);
    }
    return BK_OK;
}

int bk_job_complete_in(bk_job_t *job, bk_db_conn_t *conn, bk_error_t *err)
{
    bk__error_clear(err);
    if (!job || !conn)
        return bk__error(err, BK_EINVAL, "complete_in: no job or no connection");
    int rc = fenced(job, conn, SQL_COMPLETE, bk_clock_wall_ns(job->jobs->clock), NULL, NULL, "completion", err);
    if (rc == BK_OK)
        job->completed_in = true;
    return rc;
}

int bk_job_hold(bk_job_t *job, bk_db_conn_t *conn, bk_error_t *err)
{
    bk__error_clear(err);
    if (!job || !conn)
        return bk__error(err, BK_EINVAL, "hold: no job or no connection");
    return fenced(job, conn, SQL_HOLD, bk_clock_wall_ns(job->jobs->clock), NULL, NULL, "hold", err);
}

void bk__job_completed(bk_job_t *job) { job->completed_in = true; }

void bk__job_rearm(bk_job_t *job, int64_t timeout_ns)
{
    /* started first: a beat that reads the new timeout reads the new start */
    job->started_ns = bk_clock_mono_ns(job->jobs->clock);
    job->timeout_ns = timeout_ns;
}

/* The outcome of the attempt (bk_job_finish), before it is counted. */
static int finish(bk_job_t *job, int rc, bk_error_t *err)
{
    int64_t now = bk_clock_wall_ns(job->jobs->clock);
    if (job->snoozed) { /* the statement's "now" ($3) is the new run_at */
        int out = fenced(job, NULL, SQL_SNOOZE, now + job->snooze_ns, NULL, NULL, "snooze", err);
        if (out == BK_OK)
            bk__jobs_count(job, "snoozed");
        return out;
    }
    if (rc == BK_OK) {
        /* completed_in: counted here, once its transaction is known to have
         * committed (the handler returned BK_OK). */
        int out = job->completed_in ? BK_OK : fenced(job, NULL, SQL_COMPLETE, now, NULL, NULL, "completion", err);
        if (out == BK_OK)
            bk__jobs_count(job, "completed");
        return out;
    }
    char retry_at[24], msg[256];
    snprintf(retry_at, sizeof retry_at, "%" PRId64, now + bk__retry_delay(&job->jobs->retry, job->attempt));
    if (!job->error)
        snprintf(msg, sizeof msg, "%s: %s", bk_err_name(rc), bk_strerror(rc));
    return fenced(job, NULL, SQL_FAIL, now, retry_at, job->error ? job->error : msg, "failure", err);
}

int bk_job_finish(bk_job_t *job, int rc, bk_error_t *err)
{
    bk__error_clear(err);
    if (!job)
        return bk__error(err, BK_EINVAL, "finish: no job");
    int out = finish(job, rc, err);
    if (out == BK_ECONFLICT)
        bk__jobs_count(job, "fenced");
    return out;
}

int bk__job_give_back(bk_job_t *job, bk_error_t *err)
{
    /* As a snooze of no delay: ready again at once, the attempt not counted. */
    return fenced(job, NULL, SQL_SNOOZE, bk_clock_wall_ns(job->jobs->clock), NULL, NULL, "give-back", err);
}

void bk_job_free(bk_job_t *job)
{
    if (!job)
        return;
    free(job->kind);
    free(job->queue);
    json_decref(job->args);
    free(job->error);
    free(job);
}
