/* Starting a saga (idempotent by key), reading one, and what operators do:
 * cancel, retry a stuck one, resolve it by hand.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_int.h"
#include "db/sql_int.h"
#include "saga/saga_int.h"

struct start {
    bk_saga_engine_t *e;
    const bk_saga_def_t *def;
    const char *key, *ctx, *names;
    int64_t id;
    bool existed;
    bk_error_t *err;
};

static int start_tx(bk_db_conn_t *c, void *ud)
{
    struct start *s = ud;
    char version[16], now[24];
    snprintf(version, sizeof version, "%d", s->def->version);
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(s->e->clock));
    bk_db_param_t p[] = {BK_DB_TEXT(s->def->name), BK_DB_TEXT(version),
                         s->key ? BK_DB_TEXT(s->key) : BK_DB_NULL, BK_DB_TEXT(s->ctx),
                         BK_DB_TEXT(now), BK_DB_TEXT(s->names)};
    bk_db_result_t *res;
    int rc = bk__saga_query(s->e, c, SAGA_INSERT, p, 6, &res, s->err);
    if (rc)
        return rc;
    const char *v = bk_db_value(res, 0, 0);
    s->id = v ? strtoll(v, NULL, 10) : 0;
    bk_db_result_free(res);
    if (s->id) /* its first step, in the transaction that creates it */
        return bk__saga_enqueue(s->e, c, s->def->kind, s->id, 0, s->err);
    /* The key is taken: the saga holding it (committed, since the INSERT waited
     * for a concurrent holder to end). */
    bk_db_param_t k[] = {BK_DB_TEXT(s->def->name), BK_DB_TEXT(s->key)};
    if ((rc = bk__saga_query(s->e, c, SAGA_BY_KEY, k, 2, &res, s->err)) != BK_OK)
        return rc;
    v = bk_db_value(res, 0, 0);
    s->id = v ? strtoll(v, NULL, 10) : 0;
    bk_db_result_free(res);
    s->existed = true;
    /* Gone between the two statements (retention): try again. */
    return s->id ? BK_OK : BK_ERETRY;
}

/* bk_saga_start (conn NULL: a transaction of its own, retried on a conflict)
 * and bk_saga_start_in (inside the caller's, on conn). */
static int start(bk_saga_engine_t *e, bk_db_conn_t *conn, const bk_saga_def_t *def, const char *key,
                 const json_t *ctx, int64_t *id, bk_error_t *err)
{
    bk__error_clear(err);
    if (id)
        *id = 0;
    if (!e || !def || def->n == 0)
        return bk__error(err, BK_EINVAL, "saga start: no engine, or a definition without steps");
    if (ctx && !json_is_object(ctx))
        return bk__error(err, BK_EINVAL, "saga start: the context must be a JSON object");
    if (key && (!*key || strlen(key) > 1024))
        return bk__error(err, BK_EINVAL, "saga start: the key must be 1 to 1024 bytes");
    char *text = ctx ? bk__json_dump(ctx, JSON_COMPACT) : NULL;
    bk__sql_arr_t a = {0};
    for (size_t i = 0; i < def->n; i++)
        bk__sql_arr_str(&a, def->steps[i].name);
    char *names = bk__sql_arr_end(&a);
    int rc;
    if ((ctx && !text) || !names) {
        rc = bk__error(err, BK_ENOMEM, "out of memory");
    } else {
        struct start s = {e, def, key, text ? text : "{}", names, 0, false, err};
        rc = conn ? start_tx(conn, &s) : bk_db_tx(e->db, BK_DB_READ_COMMITTED, NULL, start_tx, &s, err);
        if (rc == BK_ERETRY && conn) /* the caller's transaction runs again, or says why it could not */
            bk__error(err, rc, "saga start: the saga holding the key was deleted meanwhile: run the transaction again");
        if (rc == BK_OK && id)
            *id = s.id;
        if (rc == BK_OK && s.existed)
            rc = bk__error(err, BK_EEXIST, "saga start: saga %" PRId64 " of %s holds the key", s.id, def->name);
    }
    bk__json_free(text);
    free(names);
    return rc;
}

int bk_saga_start(bk_saga_engine_t *e, const bk_saga_def_t *def, const char *key, const json_t *ctx, int64_t *id,
                  bk_error_t *err)
{
    return start(e, NULL, def, key, ctx, id, err);
}

int bk_saga_start_in(bk_saga_engine_t *e, bk_db_conn_t *conn, const bk_saga_def_t *def, const char *key,
                     const json_t *ctx, int64_t *id, bk_error_t *err)
{
    if (!conn) {
        bk__error_clear(err);
        if (id)
            *id = 0;
        return bk__error(err, BK_EINVAL, "saga start: no connection");
    }
    return start(e, conn, def, key, ctx, id, err);
}

int bk_saga_get(bk_saga_engine_t *e, int64_t id, json_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!e || !out)
        return bk__error(err, BK_EINVAL, "saga get: no engine or no out");
    *out = NULL;
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    bk_db_param_t p[] = {BK_DB_TEXT(ids)};
    bk_db_conn_t *c;
    int rc = bk_db_acquire(e->db, &c, err);
    if (rc)
        return rc;
    /* One snapshot for the saga and its steps. */
    bk_db_result_t *sres = NULL, *tres = NULL;
    rc = bk_db_query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, 0, NULL, err);
    if (rc == BK_OK)
        rc = bk__saga_query(e, c, SAGA_GET, p, 1, &sres, err);
    if (rc == BK_OK)
        rc = bk__saga_query(e, c, SAGA_GET_STEPS, p, 1, &tres, err);
    bk_db_query(c, "COMMIT", NULL, 0, NULL, NULL);
    bk_db_release(c);
    if (rc == BK_OK && bk_db_rows(sres) == 0)
        rc = bk__error(err, BK_ENOTFOUND, "saga %" PRId64 ": no such saga", id);
    if (rc == BK_OK) {
        json_t *rows = bk_db_result_json(sres, 0), *steps = bk_db_result_json(tres, 0);
        json_t *obj = rows ? json_incref(json_array_get(rows, 0)) : NULL;
        if (!obj || !steps || json_object_set(obj, "steps", steps) != 0) {
            json_decref(obj);
            rc = bk__error(err, BK_ENOMEM, "out of memory");
        } else {
            *out = obj;
        }
        json_decref(rows);
        json_decref(steps);
    }
    bk_db_result_free(sres);
    bk_db_result_free(tres);
    return rc;
}

/* BK_ENOTFOUND, or BK_ECONFLICT naming the saga's state. */
static int not_now(bk_saga_engine_t *e, int64_t id, const char *what, bk_error_t *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    bk_db_param_t p[] = {BK_DB_TEXT(ids)};
    bk_db_result_t *res;
    int rc = bk__saga_query(e, NULL, SAGA_STATE, p, 1, &res, err);
    if (rc)
        return rc;
    const char *st = bk_db_value(res, 0, 0);
    if (!st)
        rc = bk__error(err, BK_ENOTFOUND, "saga %" PRId64 ": no such saga", id);
    else
        rc = bk__error(err, BK_ECONFLICT, "saga %" PRId64 " is %s%s: cannot %s it", id, st,
                       strcmp(bk_db_value(res, 0, 1), "t") == 0 ? " past its pivot" : "", what);
    bk_db_result_free(res);
    return rc;
}

/* Runs an UPDATE ... RETURNING of the saga: BK_OK when a row came back. */
static int change(bk_saga_engine_t *e, int64_t id, enum bk__saga_sql which, const char *note, const char *what,
                  bk_error_t *err)
{
    bk__error_clear(err);
    if (!e)
        return bk__error(err, BK_EINVAL, "saga %s: no engine", what);
    char ids[24], now[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(e->clock));
    bk_db_param_t p[] = {BK_DB_TEXT(ids), BK_DB_TEXT(now), note ? BK_DB_TEXT(note) : BK_DB_NULL};
    bk_db_result_t *res;
    int rc = bk__saga_query(e, NULL, which, p, which == SAGA_RESOLVE ? 3 : 2, &res, err);
    if (rc)
        return rc;
    size_t n = bk_db_rows(res);
    if (n && which == SAGA_RESOLVE)
        bk__saga_count(bk__saga_reg_of(e, bk_db_value(res, 0, 0), atoi(bk_db_value(res, 0, 1))), "resolved");
    bk_db_result_free(res);
    return n ? BK_OK : not_now(e, id, what, err);
}

int bk_saga_cancel(bk_saga_engine_t *e, int64_t id, bk_error_t *err)
{
    return change(e, id, SAGA_CANCEL, NULL, "cancel", err);
}

int bk_saga_resolve(bk_saga_engine_t *e, int64_t id, const char *note, bk_error_t *err)
{
    return change(e, id, SAGA_RESOLVE, note, "resolve", err);
}

#define WAIT_POLL_NS (100 * BK_NSEC_PER_MSEC)

int bk_saga_wait(bk_saga_engine_t *e, int64_t id, int64_t deadline_ns, json_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out)
        *out = NULL;
    if (!e)
        return bk__error(err, BK_EINVAL, "saga wait: no engine");
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    bk_db_param_t p[] = {BK_DB_TEXT(ids)};
    for (;;) {
        /* The count before the read: a move between the read and the wait
         * ends the wait at once. */
        pthread_mutex_lock(&e->mu);
        uint64_t seen = e->moves;
        pthread_mutex_unlock(&e->mu);
        bk_db_result_t *res;
        int rc = bk__saga_query(e, NULL, SAGA_STATE, p, 1, &res, err);
        if (rc)
            return rc;
        char st[16] = "";
        const char *v = bk_db_value(res, 0, 0);
        if (v)
            snprintf(st, sizeof st, "%s", v);
        bool gone = !v, over = v && strcmp(st, "running") != 0 && strcmp(st, "compensating") != 0;
        bk_db_result_free(res);
        if (gone)
            return bk__error(err, BK_ENOTFOUND, "saga %" PRId64 ": no such saga", id);
        if (over)
            return out ? bk_saga_get(e, id, out, err) : BK_OK;
        int64_t now = bk_clock_mono_ns(e->clock);
        if (now >= deadline_ns)
            return bk__error(err, BK_ETIMEDOUT, "saga %" PRId64 " is still %s", id, st);
        int64_t until = deadline_ns - now > WAIT_POLL_NS ? now + WAIT_POLL_NS : deadline_ns;
        pthread_mutex_lock(&e->mu);
        while (e->moves == seen && bk__clock_wait(e->clock, &e->cv, &e->mu, until) != BK_ETIMEDOUT)
            ;
        pthread_mutex_unlock(&e->mu);
    }
}

struct retry {
    bk_saga_engine_t *e;
    int64_t id;
    bool found;
    bk_error_t *err;
};

static int retry_tx(bk_db_conn_t *c, void *ud)
{
    struct retry *r = ud;
    char ids[24], now[24];
    snprintf(ids, sizeof ids, "%" PRId64, r->id);
    snprintf(now, sizeof now, "%" PRId64, bk_clock_wall_ns(r->e->clock));
    bk_db_param_t p[] = {BK_DB_TEXT(ids), BK_DB_TEXT(now)};
    bk_db_result_t *res;
    int rc = bk__saga_query(r->e, c, SAGA_RETRY, p, 2, &res, r->err);
    if (rc)
        return rc;
    r->found = bk_db_rows(res) == 1;
    if (r->found) {
        /* The job's kind from the saga's row: its version need not be
         * registered here, only somewhere. */
        char kind[96];
        snprintf(kind, sizeof kind, "saga:%s:%s", bk_db_value(res, 0, 0), bk_db_value(res, 0, 1));
        rc = bk__saga_enqueue(r->e, c, kind, r->id, 0, r->err);
    }
    bk_db_result_free(res);
    return rc;
}

int bk_saga_retry(bk_saga_engine_t *e, int64_t id, bk_error_t *err)
{
    bk__error_clear(err);
    if (!e)
        return bk__error(err, BK_EINVAL, "saga retry: no engine");
    struct retry r = {e, id, false, err};
    int rc = bk_db_tx(e->db, BK_DB_READ_COMMITTED, NULL, retry_tx, &r, err);
    if (rc)
        return rc;
    return r.found ? BK_OK : not_now(e, id, "retry", err);
}
