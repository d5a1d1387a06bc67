/* Enqueue, one job or a batch in one statement, on the caller's transaction or
 * on a connection of its own. A unique key is an INSERT ... ON CONFLICT on the
 * partial index of pending keys.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "core/json_int.h"
#include "jobs/jobs_int.h"

BK__ASSERT_ABI_SIZE(bk_jobs_enqueue_opts_t, 112);

void bk_jobs_enqueue_opts_init(bk_jobs_enqueue_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->queue = "default";
}

static int check(const bk_jobs_t *jobs, const char *kind, const bk_jobs_enqueue_opts_t *o, bk_error_t *err)
{
    if (!kind || !*kind)
        return bk__error(err, BK_EINVAL, "enqueue: no kind");
    if (o->priority < INT16_MIN || o->priority > INT16_MAX)
        return bk__error(err, BK_EINVAL, "enqueue: priority %d is out of -32768..32767", o->priority);
    if (o->run_at_ns < 0 || o->timeout_ns < 0 || o->max_attempts > INT32_MAX)
        return bk__error(err, BK_EINVAL, "enqueue: negative run_at_ns or timeout_ns, or max_attempts too large");
    (void)jobs;
    return BK_OK;
}

int bk_jobs_enqueue(bk_jobs_t *jobs, bk_db_conn_t *conn, const char *kind, const json_t *args,
                    const bk_jobs_enqueue_opts_t *opts, int64_t *id, bk_error_t *err)
{
    bk__error_clear(err);
    if (id)
        *id = 0;
    bk_jobs_enqueue_opts_t d;
    if (!opts) {
        bk_jobs_enqueue_opts_init(&d);
        opts = &d;
    }
    if (!jobs)
        return bk__error(err, BK_EINVAL, "enqueue: no queue");
    int rc = check(jobs, kind, opts, err);
    if (rc)
        return rc;
    if (args && !json_is_object(args) && !json_is_array(args))
        return bk__error(err, BK_EINVAL, "enqueue: args must be a JSON object or array");
    char *text = args ? bk__json_dump(args, JSON_COMPACT) : NULL;
    if (args && !text)
        return bk__error(err, BK_ENOMEM, "out of memory");
    int64_t now = bk_clock_wall_ns(jobs->clock);
    char prio[16], max[16], run_at[24], timeout[24], created[24];
    snprintf(prio, sizeof prio, "%d", opts->priority);
    snprintf(max, sizeof max, "%u", opts->max_attempts ? opts->max_attempts : jobs->max_attempts);
    snprintf(run_at, sizeof run_at, "%" PRId64, opts->run_at_ns ? opts->run_at_ns : now);
    snprintf(timeout, sizeof timeout, "%" PRId64, opts->timeout_ns);
    snprintf(created, sizeof created, "%" PRId64, now);
    bk_db_param_t p[] = {
        BK_DB_TEXT(opts->queue ? opts->queue : "default"),
        BK_DB_TEXT(kind),
        BK_DB_TEXT(text ? text : "{}"),
        BK_DB_TEXT(prio),
        BK_DB_TEXT(max),
        BK_DB_TEXT(run_at),
        BK_DB_TEXT(timeout),
        opts->unique_key ? BK_DB_TEXT(opts->unique_key) : BK_DB_NULL,
        BK_DB_TEXT(created),
        BK_DB_TEXT(jobs->channel),
    };
    /* A conflict that finished between the INSERT and the SELECT frees the key:
     * try again, a few times. */
    for (int tries = 0; tries < 3; tries++) {
        bk_db_result_t *res;
        rc = bk__jobs_query(jobs, conn, SQL_ENQUEUE, p, sizeof p / sizeof *p, &res, err);
        if (rc)
            break;
        const char *v = bk_db_value(res, 0, 0);
        if (v) {
            if (id)
                *id = strtoll(v, NULL, 10);
            bk_db_result_free(res);
            break;
        }
        bk_db_result_free(res);
        bk_db_param_t k[] = {BK_DB_TEXT(opts->unique_key)};
        if ((rc = bk__jobs_query(jobs, conn, SQL_UNIQUE_ID, k, 1, &res, err)) != BK_OK)
            break;
        v = bk_db_value(res, 0, 0);
        if (v) {
            int64_t existing = strtoll(v, NULL, 10);
            if (id)
                *id = existing;
            bk_db_result_free(res);
            rc = bk__error(err, BK_EEXIST, "enqueue: job %" PRId64 " with unique key \"%s\" is pending", existing,
                           opts->unique_key);
            break;
        }
        bk_db_result_free(res);
        rc = bk__error(err, BK_ERETRY, "enqueue: the unique key \"%s\" kept changing hands", opts->unique_key);
    }
    bk__json_free(text);
    return rc;
}

int bk_jobs_enqueue_batch(bk_jobs_t *jobs, bk_db_conn_t *conn, const bk_jobs_batch_item_t *items, size_t n,
                          int64_t *ids, size_t *enqueued, bk_error_t *err)
{
    bk__error_clear(err);
    if (enqueued)
        *enqueued = 0;
    if (!jobs || (n && !items))
        return bk__error(err, BK_EINVAL, "enqueue_batch: no queue or no items");
    if (n == 0)
        return BK_OK;
    int64_t now = bk_clock_wall_ns(jobs->clock);
    /* The columns, one array each: $1..$8 of SQL_BATCH. */
    enum { QUEUE, KIND, ARGS, PRIO, MAX, RUN_AT, TIMEOUT, KEY, NCOL };
    bk__sql_arr_t col[NCOL] = {{0}};
    bool any_key = false;
    int rc = BK_OK;
    for (size_t i = 0; i < n && rc == BK_OK; i++) {
        bk_jobs_enqueue_opts_t d;
        const bk_jobs_enqueue_opts_t *o = items[i].opts;
        if (!o) {
            bk_jobs_enqueue_opts_init(&d);
            o = &d;
        }
        if ((rc = check(jobs, items[i].kind, o, err)) != BK_OK)
            break;
        const json_t *a = items[i].args;
        if (a && !json_is_object(a) && !json_is_array(a)) {
            rc = bk__error(err, BK_EINVAL, "enqueue_batch: item %zu: args must be a JSON object or array", i);
            break;
        }
        char *text = a ? bk__json_dump(a, JSON_COMPACT) : NULL;
        if (a && !text) {
            rc = bk__error(err, BK_ENOMEM, "out of memory");
            break;
        }
        bk__sql_arr_str(&col[QUEUE], o->queue ? o->queue : "default");
        bk__sql_arr_str(&col[KIND], items[i].kind);
        bk__sql_arr_str(&col[ARGS], text ? text : "{}");
        bk__json_free(text);
        bk__sql_arr_int(&col[PRIO], o->priority);
        bk__sql_arr_int(&col[MAX], o->max_attempts ? o->max_attempts : jobs->max_attempts);
        bk__sql_arr_int(&col[RUN_AT], o->run_at_ns ? o->run_at_ns : now);
        bk__sql_arr_int(&col[TIMEOUT], o->timeout_ns);
        bk__sql_arr_str(&col[KEY], o->unique_key);
        any_key |= o->unique_key != NULL;
    }
    char *lit[NCOL];
    bool oom = false;
    for (int c = 0; c < NCOL; c++)
        oom |= !(lit[c] = bk__sql_arr_end(&col[c]));
    if (rc == BK_OK && oom)
        rc = bk__error(err, BK_ENOMEM, "out of memory");
    char created[24];
    snprintf(created, sizeof created, "%" PRId64, now);
    bk_db_param_t p[NCOL + 2];
    for (int c = 0; c < NCOL; c++)
        p[c] = BK_DB_TEXT(lit[c]);
    p[NCOL] = BK_DB_TEXT(created);
    p[NCOL + 1] = BK_DB_TEXT(jobs->channel);
    bk_db_result_t *res = NULL;
    if (rc == BK_OK)
        rc = bk__jobs_query(jobs, conn, any_key ? SQL_BATCH_UNIQUE : SQL_BATCH, p, NCOL + 2, &res, err);
    for (int c = 0; c < NCOL; c++)
        free(lit[c]);
    if (rc)
        return rc;
    size_t got = 0;
    for (size_t r = 0; r < bk_db_rows(res) && r < n; r++) {
        const char *v = bk_db_value(res, r, 1);
        if (ids)
            ids[r] = v ? strtoll(v, NULL, 10) : 0;
        got += v != NULL;
    }
    bk_db_result_free(res);
    if (enqueued)
        *enqueued = got;
    return BK_OK;
}
