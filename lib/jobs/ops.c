/* Operations on one job by id: cancel, retry, get.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "jobs/jobs_int.h"

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
