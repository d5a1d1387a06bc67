/* Fixtures of the tests that use the harness's PostgreSQL (BK_TEST_PG_DSN, set by
 * tests/harness/services.sh): the server's DSN, a statement run as the admin, and
 * a database of a test's own, created with a random name and dropped after.
 *
 * When BK_TEST_PG_POOLER_DSN is set (tests/db/pgbouncer.sh), the suite runs
 * through PgBouncer in transaction pooling mode: the library under test
 * connects through it (bkt_pg_dsn, bkt_pg_database_new's conninfo) with
 * bk_db_opts_t.transaction_pooling (bkt_db_opts_init), while the fixtures'
 * own statements still go to the server directly.
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_PG_TEST_H
#define BK_TESTS_PG_TEST_H

#include <check.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/core.h>
#include <backend/db.h>

static inline const char *bkt_pg_server_dsn(void)
{
    const char *d = getenv("BK_TEST_PG_DSN");
    if (d == NULL || *d == '\0')
        ck_abort_msg("BK_TEST_PG_DSN is not set: run `make check` from the top of the tree, which starts "
                     "PostgreSQL (tests/harness/services.sh)");
    return d;
}

/* Whether the suite runs through the pooler (BK_TEST_PG_POOLER_DSN). */
static inline bool bkt_pg_pooled(void)
{
    const char *d = getenv("BK_TEST_PG_POOLER_DSN");
    return d != NULL && *d != '\0';
}

/* What the library under test connects to: the pooler, or the server. */
static inline const char *bkt_pg_dsn(void)
{
    return bkt_pg_pooled() ? getenv("BK_TEST_PG_POOLER_DSN") : bkt_pg_server_dsn();
}

/* bk_db_opts_init, and transaction_pooling when the suite runs through the pooler. */
static inline void bkt_db_opts_init(bk_db_opts_t *o)
{
    bk_db_opts_init(o);
    o->transaction_pooling = bkt_pg_pooled();
}

/* Runs sql (a command, no rows) on the server's own database. */
static inline void bkt_pg_admin(const char *sql)
{
    PGconn *pg = PQconnectdb(bkt_pg_server_dsn());
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
}

/* A new database named prefix + 16 random hex digits into dbname[40], and
 * bkt_pg_dsn's conninfo (keywords or URI) with dbname replaced by it into
 * conninfo[2048]. */
static inline void bkt_pg_database_new(const char *prefix, char dbname[40], char conninfo[2048])
{
    unsigned char raw[8];
    ck_assert_int_eq(bk_random_bytes(raw, sizeof raw), BK_OK);
    int len = snprintf(dbname, 40, "%s", prefix);
    ck_assert_int_lt(len, 40 - 16);
    for (size_t i = 0; i < sizeof raw; i++)
        len += snprintf(dbname + len, 40 - (size_t)len, "%02x", raw[i]);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    bkt_pg_admin(sql);

    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(bkt_pg_dsn(), &msg);
    ck_assert_msg(opts != NULL, "%s: %s", bkt_pg_dsn(), msg ? msg : "out of memory");
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        n += (size_t)snprintf(conninfo + n, 2048 - n, "%s='", o->keyword);
        for (const char *v = o->val; *v && n + 4 < 2048; v++) {
            if (*v == '\'' || *v == '\\')
                conninfo[n++] = '\\';
            conninfo[n++] = *v;
        }
        n += (size_t)snprintf(conninfo + n, 2048 - n, "' ");
        ck_assert_uint_lt(n, 2048 - 64);
    }
    snprintf(conninfo + n, 2048 - n, "dbname=%s", dbname);
    PQconninfoFree(opts);
}

/* Drops the database of bkt_pg_database_new, whoever is still connected. */
static inline void bkt_pg_database_drop(const char *dbname)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    bkt_pg_admin(sql);
}

/* The first value of the first row of the statement fmt formats, run on
 * conninfo, as a new string (the caller frees it; NULL for SQL NULL); the
 * statement must yield exactly one row. */
static inline char *bkt_pg_scalar(const char *conninfo, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline char *bkt_pg_scalar(const char *conninfo, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGconn *pg = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s (%d rows)", sql,
                  PQerrorMessage(pg), PQntuples(r));
    char *out = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return out;
}

/* Asserts that the statement (formatted) yields want, on conninfo. */
#define BKT_PG_EQ(conninfo, want, ...)                                                                         \
    do {                                                                                                       \
        char *got_ = bkt_pg_scalar((conninfo), __VA_ARGS__);                                                   \
        ck_assert_msg(got_ != NULL && strcmp(got_, (want)) == 0, "got \"%s\", want \"%s\"",                    \
                      got_ ? got_ : "(null)", (want));                                                         \
        free(got_);                                                                                            \
    } while (0)

#endif
