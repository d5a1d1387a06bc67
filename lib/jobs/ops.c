/* Operations on jobs: cancel, retry, delete, get, list, prune.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "jobs/jobs_int.h"

BK__ASSERT_ABI_SIZE(bk_jobs_list_opts_t, 104);

/* BK_ENOTFOUND, or BK_ECONFLICT naming the state the job is in. */
static int not_in_state(bk_jobs_t *jobs, const bk_db_param_t *id, const char *what, bk_error_t *err)
{
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, NULL, SQL_EXISTS, id, 1, &res, err);
    if (rc)
        return rc;
    const char *state = bk_db_value(res, 0, 0);
    rc = state ? bk__error(err, BK_ECONFLICT, "%s: job %s is %s", what, id->value, state)
               : bk__error(err, BK_ENOTFOUND, "%s: no job %s", what, id->value);
    bk_db_result_free(res);
    return rc;
}

/* Moves job id by sql (parameters: id, now); when no row moved, says why. */
static int transition(bk_jobs_t *jobs, int64_t id, enum bk__jobs_sql sql, const char *what, bk_error_t *err)
{
    bk__error_clear(err);
    if (!jobs)
        return bk__error(err, BK_EINVAL, "%s: no queue", what);
    char ids[24], now[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(jobs->clock));
    bk_db_param_t p[] = {BK_DB_TEXT(ids), BK_DB_TEXT(now)};
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, NULL, sql, p, 2, &res, err);
    if (rc)
        return rc; /* retry: BK_ECONFLICT when another job holds its unique key */
    bool done = bk_db_rows(res) > 0;
    bk_db_result_free(res);
    return done ? BK_OK : not_in_state(jobs, p, what, err);
}

int bk_jobs_cancel(bk_jobs_t *jobs, int64_t id, bk_error_t *err)
{
    return transition(jobs, id, SQL_CANCEL, "cancel", err);
}

int bk_jobs_retry(bk_jobs_t *jobs, int64_t id, bk_error_t *err)
{
    return transition(jobs, id, SQL_RETRY, "retry", err);
}

int bk_jobs_delete(bk_jobs_t *jobs, int64_t id, bk_error_t *err)
{
    return transition(jobs, id, SQL_DELETE, "delete", err);
}

int bk_jobs_prune(bk_jobs_t *jobs, size_t *deleted, bk_error_t *err)
{
    bk__error_clear(err);
    if (deleted)
        *deleted = 0;
    if (!jobs)
        return bk__error(err, BK_EINVAL, "prune: no queue");
    const struct {
        int64_t keep;
        const char *states;
    } pass[] = {{jobs->retention_ns, "{completed,cancelled}"}, {jobs->discarded_retention_ns, "{discarded}"}};
    char now[24];
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(jobs->clock));
    for (size_t i = 0; i < sizeof pass / sizeof *pass; i++) {
        if (pass[i].keep < 0)
            continue;
        char keep[24];
        snprintf(keep, sizeof keep, "%" PRId64, pass[i].keep);
        bk_db_param_t p[] = {BK_DB_TEXT(now), BK_DB_TEXT(keep), BK_DB_TEXT(pass[i].states)};
        for (;;) { /* batches of 1000, each its own transaction */
            bk_db_result_t *res;
            int rc = bk__jobs_query(jobs, NULL, SQL_PRUNE, p, 3, &res, err);
            if (rc)
                return rc;
            int64_t n = bk_db_affected(res);
            bk_db_result_free(res);
            if (deleted)
                *deleted += (size_t)n;
            if (n < 1000)
                break;
        }
    }
    return BK_OK;
}

void bk_jobs_list_opts_init(bk_jobs_list_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->limit = 100;
}

int bk_jobs_list(bk_jobs_t *jobs, const bk_jobs_list_opts_t *opts, json_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!jobs || !out)
        return bk__error(err, BK_EINVAL, "list: no queue or no out");
    *out = NULL;
    bk_jobs_list_opts_t d;
    if (!opts) {
        bk_jobs_list_opts_init(&d);
        opts = &d;
    }
    static const char *const STATES[] = {"available", "running", "completed", "retryable", "discarded", "cancelled"};
    bool known = !opts->state;
    for (size_t i = 0; !known && i < sizeof STATES / sizeof *STATES; i++)
        known = strcmp(opts->state, STATES[i]) == 0;
    if (!known)
        return bk__error(err, BK_EINVAL, "list: no state \"%s\"", opts->state);
    if (opts->limit > 1000 || opts->after_id < 0)
        return bk__error(err, BK_EINVAL, "list: limit over 1000, or a negative after_id");
    char after[24], limit[24];
    snprintf(after, sizeof after, "%" PRId64, opts->after_id);
    snprintf(limit, sizeof limit, "%zu", opts->limit ? opts->limit : 100);
    bk_db_param_t p[] = {opts->queue ? BK_DB_TEXT(opts->queue) : BK_DB_NULL,
                         opts->state ? BK_DB_TEXT(opts->state) : BK_DB_NULL,
                         opts->kind ? BK_DB_TEXT(opts->kind) : BK_DB_NULL, BK_DB_TEXT(after), BK_DB_TEXT(limit)};
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, NULL, SQL_LIST, p, 5, &res, err);
    if (rc)
        return rc;
    *out = bk_db_result_json(res, 0);
    bk_db_result_free(res);
    return *out ? BK_OK : bk__error(err, BK_ENOMEM, "out of memory");
}

int bk_jobs_get(bk_jobs_t *jobs, int64_t id, json_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!jobs || !out)
        return bk__error(err, BK_EINVAL, "get: no queue or no out");
    *out = NULL;
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    bk_db_param_t p[] = {BK_DB_TEXT(ids)};
    bk_db_result_t *res;
    int rc = bk__jobs_query(jobs, NULL, SQL_GET, p, 1, &res, err);
    if (rc)
        return rc;
    if (bk_db_rows(res) == 0) {
        bk_db_result_free(res);
        return bk__error(err, BK_ENOTFOUND, "get: no job %" PRId64, id);
    }
    json_t *rows = bk_db_result_json(res, 0);
    bk_db_result_free(res);
    json_t *row = rows ? json_array_get(rows, 0) : NULL;
    if (!row) {
        json_decref(rows);
        return bk__error(err, BK_ENOMEM, "out of memory");
    }
    *out = json_incref(row);
    json_decref(rows);
    return BK_OK;
}
