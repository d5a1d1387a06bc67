/* PostgreSQL internals shared by the files of lib/db/. Hidden, never part of the
 * public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_DB_INT_H
#define BK_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <backend/db.h>

#include "core/error_int.h"
#include "core/map_int.h"
#include "core/slotpool_int.h"

#if defined(__GNUC__)
#define BK__DB_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__DB_HIDDEN
#endif

struct bk_db_conn {
    bk_db_t *db;
    PGconn *pg;
    unsigned slot;            /* its slot in db->pool while acquired */
    int64_t created_ns;       /* monotonic, on the pool's clock */
    bool broken;              /* lost, or in a state we cannot vouch for: close on release */
    bool session_locks;       /* took a session advisory lock: all are released on release */
    bk__map_t statements;     /* SQL text -> struct bk__stmt */
    struct bk__stmt *stmts;   /* the same, as a list to free */
    unsigned nstatements;
    bk_error_t last;          /* the error of the last query or statement run on c, cleared
                                 when one succeeds; bk_db_tx copies it into its caller's err
                                 when fn fails, so that a query's detail reaches it though
                                 fn's queries took errs of their own */
};

struct bk_db_result {
    PGresult *pg;
};

/* db_queries_total outcomes, in the order pool.c names them. */
enum bk__db_outcome { OUT_OK, OUT_CONFLICT, OUT_RETRY, OUT_INVALID, OUT_TIMEOUT, OUT_UNAVAILABLE, OUT_ERROR };
#define BK__DB_OUTCOMES 7

struct bk_db {
    char *conninfo;
    bk_db_opts_t o;           /* the options, defaults filled in */
    char *app_name, *name;
    bk__slotpool_t *pool;     /* max_conns slots, each a bk_db_conn_t, with affinity */
    bk_gauge_t *idle_gauge, *busy_gauge;
    bk_histogram_t *wait_hist;
    bk_counter_t *queries[BK__DB_OUTCOMES];
    bool read_only;           /* a replica pool: sessions default to read-only */
    char options[160];        /* the startup packet's options (direct only; pool.c's settings) */
    char tx_set[2][48];       /* through a transaction pooler: the settings each transaction
                                 begins with (SET LOCAL statement_timeout, read-only) */
    unsigned ntx_set;
    struct bk_db *replicas;   /* read_conninfo's pool, or NULL */
    _Atomic int64_t replicas_down_until; /* monotonic ns: skip replicas until then */
};

/* Opens one connection of db's, outside its pool's count: db's conninfo, then the
 * pool's settings (application_name, connect timeout, UTC, statement_timeout,
 * read-only on a replica pool), its notice receiver marking it broken on a FATAL
 * notice. The pool's slots and the listener (listen.c) open theirs here, so that
 * both talk to the server alike. BK_EUNAVAIL (err: libpq's message), BK_ENOMEM. */
BK__DB_HIDDEN int bk__db_conn_open(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err);
/* Closes a connection of bk__db_conn_open's and frees it. */
BK__DB_HIDDEN void bk__db_conn_close(bk_db_conn_t *c);
/* Records r's error (or the connection's) in c->last and returns the code for it;
 * r may be NULL (a failure before the server answered). */
BK__DB_HIDDEN int bk__db_fail(bk_db_conn_t *c, const PGresult *r);
/* Copies c->last into err (NULL allowed) with err->code = rc; returns rc. */
BK__DB_HIDDEN int bk__db_report(const bk_db_conn_t *c, int rc, bk_error_t *err);
/* Sets err's message to libpq's msg without its trailing newline. */
BK__DB_HIDDEN int bk__db_libpq_error(bk_error_t *err, int rc, const char *msg);
/* Frees the prepared-statement cache of c (not the statements: they die with
 * the connection). */
BK__DB_HIDDEN void bk__db_statements_free(bk_db_conn_t *c);
/* Runs a statement with no parameters and no rows (BEGIN, COMMIT, SET ...); a
 * failure is in c->last. */
BK__DB_HIDDEN int bk__db_exec(bk_db_conn_t *c, const char *sql);

/* Runs begin_sql (BEGIN ...) and, through a transaction pooler, the pool's
 * per-transaction settings after it in the same round trip (pool.c's
 * settings): every transaction the library begins, bk_db_tx's and the
 * migrators', begins here. A failure is in c->last. */
BK__DB_HIDDEN int bk__db_begin(bk_db_conn_t *c, const char *begin_sql);

/* Through a transaction pooler, what a migration's SQL changed in the session
 * (pg_dump's empty search_path) would stay on the server connection for the
 * pooler's next client: RESET ALL, inside the migration's transaction, undoes
 * it as the transaction commits. Directly, the connection is closed instead
 * (BK_OK at once). */
BK__DB_HIDDEN int bk__db_pooled_reset(bk_db_conn_t *c);

/* The advisory lock key of every migrator (bk_db_migrate's session lock,
 * bk_db_migrate_list's transaction locks), in every process and release: see
 * migrate.c's lock_key. */
#define BK__DB_MIGRATE_LOCK_KEY ((int64_t)UINT64_C(0xdd2b19ec7b7381b0))

#endif
