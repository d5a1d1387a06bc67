/* Queries: parameters only, each SQL text prepared once per connection and then
 * executed by name, so the server parses and plans it once. Errors keep the
 * server's SQLSTATE, message, detail and constraint, and map to our codes.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

#define MAX_STATEMENTS 256 /* per connection; SQL built at run time must not grow it without end */
#define STACK_PARAMS 16

struct bk__stmt {
    struct bk__stmt *next;
    char name[16];
    char sql[];
};

void bk__db_statements_free(bk_db_conn_t *c)
{
    for (struct bk__stmt *s = c->stmts, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    c->stmts = NULL;
    c->nstatements = 0;
    bk__map_free(&c->statements);
}

static void count(bk_db_conn_t *c, enum bk__db_outcome o)
{
    if (c->db->queries[o])
        bk_counter_inc(c->db->queries[o]);
}

int bk__db_libpq_error(bk_error_t *err, int rc, const char *msg)
{
    size_t len = msg ? strlen(msg) : 0;
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--; /* libpq ends its messages with a newline */
    if (len == 0)
        return bk__error(err, rc, NULL);
    return bk__error(err, rc, "%.*s", (int)(len > INT32_MAX ? INT32_MAX : len), msg);
}

int bk__db_report(const bk_db_conn_t *c, int rc, bk_error_t *err)
{
    if (err) {
        *err = c->last;
        err->code = rc;
    }
    return rc;
}

int bk__db_fail(bk_db_conn_t *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int rc;
    enum bk__db_outcome o;
    if (PQstatus(c->pg) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0) {
        c->broken = true; /* lost, or the server is going away: never reuse it */
        rc = BK_EUNAVAIL, o = OUT_UNAVAILABLE;
    } else if (strcmp(state, "23505") == 0) {
        rc = BK_ECONFLICT, o = OUT_CONFLICT;
    } else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        rc = BK_ERETRY, o = OUT_RETRY;
    } else if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0) {
        rc = BK_EINVAL, o = OUT_INVALID;
    } else if (strcmp(state, "57014") == 0) {
        rc = BK_ETIMEDOUT, o = OUT_TIMEOUT;
    } else {
        rc = BK_EIO, o = OUT_ERROR;
    }
    count(c, o);
    bk_error_t *e = &c->last;
    bk__error_clear(e);
    if (msg)
        bk__error(e, rc, "%s", msg);
    else
        bk__db_libpq_error(e, rc, PQerrorMessage(c->pg));
    bk__error_field(e->sqlstate, sizeof e->sqlstate, state);
    bk__error_field(e->detail, sizeof e->detail, r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL);
    bk__error_field(e->constraint, sizeof e->constraint, r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL);
    return rc;
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

int bk__db_exec(bk_db_conn_t *c, const char *sql)
{
    if (c->last.code)
        bk__error_clear(&c->last);
    PGresult *r = PQexec(c->pg, sql);
    int rc = r && result_ok(r) ? BK_OK : bk__db_fail(c, r);
    PQclear(r);
    return rc;
}

/* The cached statement for sql, prepared now if new; NULL when the cache is full
 * (then the query runs unnamed). *rc is set on a failure to prepare. */
static struct bk__stmt *statement(bk_db_conn_t *c, const char *sql, int n, int *rc)
{
    size_t len = strlen(sql);
    struct bk__stmt *s = bk__map_get(&c->statements, sql, len);
    if (s || c->nstatements >= MAX_STATEMENTS)
        return s;
    s = malloc(sizeof *s + len + 1);
    if (!s) {
        *rc = bk__error(&c->last, BK_ENOMEM, NULL);
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "bk_%u", c->nstatements);
    memcpy(s->sql, sql, len + 1);
    PGresult *r = PQprepare(c->pg, s->name, sql, n, NULL);
    if (!r || !result_ok(r)) {
        *rc = bk__db_fail(c, r);
        PQclear(r);
        free(s);
        return NULL;
    }
    PQclear(r);
    if (bk__map_put(&c->statements, s->sql, len, s)) {
        /* Prepared but not remembered: the next call prepares under a new name. */
        c->nstatements++;
        free(s);
        *rc = bk__error(&c->last, BK_ENOMEM, NULL);
        return NULL;
    }
    s->next = c->stmts;
    c->stmts = s;
    c->nstatements++;
    return s;
}

int bk_db_query(bk_db_conn_t *c, const char *sql, const bk_db_param_t *params, size_t n, bk_db_result_t **res,
                bk_error_t *err)
{
    bk__error_clear(err);
    if (res)
        *res = NULL;
    if (!c || !sql || (n && !params) || n > 65535)
        return bk__error(err, BK_EINVAL, "bk_db_query: no connection, no SQL, or parameters missing or over 65535");
    if (c->last.code)
        bk__error_clear(&c->last); /* c->last tells of this call only */
    const char *vs[STACK_PARAMS];
    int ls[STACK_PARAMS], fs[STACK_PARAMS];
    const char **values = n <= STACK_PARAMS ? vs : malloc(n * sizeof *values);
    int *lengths = n <= STACK_PARAMS ? ls : malloc(n * sizeof *lengths);
    int *formats = n <= STACK_PARAMS ? fs : malloc(n * sizeof *formats);
    int rc = values && lengths && formats ? BK_OK : bk__error(&c->last, BK_ENOMEM, NULL);
    for (size_t i = 0; rc == BK_OK && i < n; i++) {
        if (params[i].binary && params[i].len > INT32_MAX)
            rc = bk__error(&c->last, BK_EINVAL, "bk_db_query: parameter $%zu is over 2 GiB", i + 1);
        values[i] = params[i].value;
        lengths[i] = params[i].binary ? (int)params[i].len : 0;
        formats[i] = params[i].binary;
    }
    struct bk__stmt *s = rc == BK_OK ? statement(c, sql, (int)n, &rc) : NULL;
    PGresult *r = NULL;
    if (rc == BK_OK) {
        r = s ? PQexecPrepared(c->pg, s->name, (int)n, values, lengths, formats, 0)
              : PQexecParams(c->pg, sql, (int)n, NULL, values, lengths, formats, 0);
        if (r && result_ok(r)) {
            count(c, OUT_OK);
        } else {
            rc = bk__db_fail(c, r);
        }
    }
    if (values != vs)
        free(values);
    if (lengths != ls)
        free(lengths);
    if (formats != fs)
        free(formats);
    if (rc != BK_OK || !res) {
        PQclear(r);
        return rc ? bk__db_report(c, rc, err) : BK_OK;
    }
    bk_db_result_t *out = malloc(sizeof *out);
    if (!out) {
        PQclear(r);
        return bk__db_report(c, bk__error(&c->last, BK_ENOMEM, NULL), err);
    }
    out->pg = r;
    *res = out;
    return BK_OK;
}

int bk_db_advisory_lock(bk_db_conn_t *c, int64_t key, bool xact, bk_error_t *err)
{
    char k[24];
    snprintf(k, sizeof k, "%" PRId64, key);
    bk_db_param_t p[] = {BK_DB_TEXT(k)};
    int rc = bk_db_query(c, xact ? "SELECT pg_advisory_xact_lock($1::bigint)" : "SELECT pg_advisory_lock($1::bigint)",
                         p, 1, NULL, err);
    if (rc == BK_OK && !xact)
        c->session_locks = true;
    return rc;
}

int bk_db_advisory_unlock(bk_db_conn_t *c, int64_t key, bk_error_t *err)
{
    char k[24];
    snprintf(k, sizeof k, "%" PRId64, key);
    bk_db_param_t p[] = {BK_DB_TEXT(k)};
    return bk_db_query(c, "SELECT pg_advisory_unlock($1::bigint)", p, 1, NULL, err);
}
