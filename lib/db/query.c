/* Queries: parameters only, each SQL text prepared once per connection and then
 * executed by name, so the server parses and plans it once. Through a pooler in
 * transaction mode a statement prepared on one server connection is not there
 * on the next: every query is unnamed (parsed and planned each time), and one
 * outside a transaction carries the pool's per-transaction settings with it.
 * Errors keep the server's SQLSTATE, message, detail and constraint, and map to
 * our codes.
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

int bk__db_begin(bk_db_conn_t *c, const char *begin_sql)
{
    const bk_db_t *db = c->db;
    if (!db->ntx_set)
        return bk__db_exec(c, begin_sql);
    char sql[128 + sizeof db->tx_set];
    int len = snprintf(sql, sizeof sql, "%s", begin_sql);
    for (unsigned i = 0; i < db->ntx_set && len > 0 && (size_t)len < sizeof sql; i++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, "; %s", db->tx_set[i]);
    return bk__db_exec(c, sql);
}

int bk__db_pooled_reset(bk_db_conn_t *c)
{
    return c->db->o.transaction_pooling ? bk__db_exec(c, "RESET ALL") : BK_OK;
}

/* A prepared statement the server no longer knows (or knows already): the
 * connection is not one session, as through a pooler in transaction mode. */
static void statement_lost(bk_db_conn_t *c, const char *name)
{
    if (strcmp(c->last.sqlstate, "26000") != 0 && strcmp(c->last.sqlstate, "42P05") != 0)
        return;
    c->broken = true; /* its statement cache is wrong */
    bk__error(&c->last, c->last.code, "%s (prepared statement %s: is conninfo a pooler in transaction mode? then "
              "set bk_db_opts_t.transaction_pooling)", c->last.message, name);
}

/* The cached statement for sql, prepared now if new; NULL when the cache is full
 * or the pool is behind a transaction pooler (then the query runs unnamed). *rc
 * is set on a failure to prepare. */
static struct bk__stmt *statement(bk_db_conn_t *c, const char *sql, int n, int *rc)
{
    if (c->db->o.transaction_pooling)
        return NULL;
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
        statement_lost(c, s->name);
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

/*
 * A query outside a transaction, through a transaction pooler, with the pool's
 * per-transaction settings (SET LOCAL statement_timeout ...) before it: sent
 * together in one pipeline, they run in the one implicit transaction that ends
 * at its Sync, on one server connection, in one round trip as without them.
 * Returns what the query's own result would be: its result, or the first
 * failure (a setting's, then the query is not run); NULL when the connection
 * failed (c is then broken).
 */
static PGresult *exec_with_settings(bk_db_conn_t *c, const char *sql, int n, const char *const *values,
                                    const int *lengths, const int *formats)
{
    PGconn *pg = c->pg;
    const bk_db_t *db = c->db;
    unsigned queries = db->ntx_set + 1, ends = 0;
    bool sent = PQenterPipelineMode(pg);
    for (unsigned i = 0; sent && i < db->ntx_set; i++)
        sent = PQsendQueryParams(pg, db->tx_set[i], 0, NULL, NULL, NULL, NULL, 0);
    sent = sent && PQsendQueryParams(pg, sql, n, NULL, values, lengths, formats, 0) && PQpipelineSync(pg);
    PGresult *out = NULL;
    while (sent) {
        PGresult *r = PQgetResult(pg);
        if (!r) { /* the end of one query's results */
            if (++ends > queries || PQstatus(pg) != CONNECTION_OK)
                break; /* lost: no Sync will come */
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        /* A setting that worked, or a query skipped after a failure: not the answer. */
        if (out || st == PGRES_PIPELINE_ABORTED || (ends + 1 < queries && result_ok(r)))
            PQclear(r);
        else
            out = r;
    }
    if (!sent || !PQexitPipelineMode(pg)) {
        c->broken = true; /* the pipeline could not be sent or ended: nothing of it can be trusted */
        PQclear(out);
        return NULL;
    }
    return out;
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
        if (s)
            r = PQexecPrepared(c->pg, s->name, (int)n, values, lengths, formats, 0);
        else if (c->db->ntx_set && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
            r = exec_with_settings(c, sql, (int)n, values, lengths, formats);
        else
            r = PQexecParams(c->pg, sql, (int)n, NULL, values, lengths, formats, 0);
        if (r && result_ok(r)) {
            count(c, OUT_OK);
        } else {
            rc = bk__db_fail(c, r);
            if (s)
                statement_lost(c, s->name);
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
    if (c && !xact && c->db->o.transaction_pooling) {
        bk__error_clear(err);
        return bk__error(err, BK_EINVAL, "bk_db_advisory_lock: a session lock through a transaction pooler "
                         "would stay on whichever server connection took it: take a transaction lock (xact)");
    }
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
