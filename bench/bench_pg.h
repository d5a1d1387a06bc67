/* What the benchmarks on PostgreSQL share: the server (BK_BENCH_PG_DSN, else
 * BK_TEST_PG_DSN), a database of their own with a random name, and plain libpq
 * calls that say what failed. `who` prefixes every message.
 * SPDX-License-Identifier: MIT */
#ifndef BK_BENCH_PG_H
#define BK_BENCH_PG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <backend/core.h>

static inline PGconn *bench_pg_connect(const char *who, const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect: %s", who, PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* 1 when sql ran (a command or rows), 0 after saying why not. */
static inline int bench_pg_exec(const char *who, PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s: %s", who, sql, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

/* The server's conninfo, or NULL after saying how to give one. */
static inline const char *bench_pg_server(const char *who)
{
    const char *server = getenv("BK_BENCH_PG_DSN");
    if (!server || !*server)
        server = getenv("BK_TEST_PG_DSN");
    if (!server || !*server) {
        fprintf(stderr, "%s: no PostgreSQL server: set BK_BENCH_PG_DSN (or BK_TEST_PG_DSN) to a libpq conninfo, "
                        "or run it under tests/harness/services.sh run -- (as `make bench` does)\n", who);
        return NULL;
    }
    return server;
}

/* Creates a database named prefix + 16 random hex digits (into dbname[40])
 * on server, through admin, and puts the server's conninfo with that dbname
 * into conninfo[2048]. 0, or -1 after saying why. */
static inline int bench_pg_database(const char *who, const char *server, PGconn *admin, const char *prefix,
                                    char dbname[40], char conninfo[2048])
{
    unsigned char raw[8];
    if (bk_random_bytes(raw, sizeof raw) != BK_OK || strlen(prefix) > 40 - 17)
        return -1;
    snprintf(dbname, 40, "%s", prefix);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(dbname + strlen(dbname), 40 - strlen(dbname), "%02x", raw[i]);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    if (!bench_pg_exec(who, admin, sql))
        return -1;
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(server, &msg);
    if (!opts) {
        fprintf(stderr, "%s: the server's conninfo: %s\n", who, msg ? msg : "out of memory");
        PQfreemem(msg);
        return -1;
    }
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
        if (n > 2048 - 64) {
            PQconninfoFree(opts);
            fprintf(stderr, "%s: the server's conninfo is too long\n", who);
            return -1;
        }
    }
    snprintf(conninfo + n, 2048 - n, "dbname=%s", dbname);
    PQconninfoFree(opts);
    return 0;
}

/* Drops the database, whoever is still connected: 1 when it went. */
static inline int bench_pg_drop(const char *who, PGconn *admin, const char *dbname)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    return bench_pg_exec(who, admin, sql);
}

#endif
