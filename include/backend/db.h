/*
 * libbackend db: PostgreSQL through libpq. A thread-safe connection pool,
 * parameterised queries only (there is no call that puts values into SQL text),
 * results as rows or as JSON, transactions retried on serialization failures,
 * advisory locks and versioned migrations.
 *
 * Layer 2 (services): does blocking I/O. Call it from worker threads (a
 * BK_HTTP_BLOCKING route, the worker pool), never from an event loop.
 *
 *   bk_db_t *db;
 *   bk_db_opts_t o;
 *   bk_db_opts_init(&o);
 *   o.conninfo = "host=/run/postgresql dbname=shop";
 *   char err[256];
 *   if (bk_db_new(&o, &db, err, sizeof err) != BK_OK) ... err says why
 *   bk_db_conn_t *c;
 *   if (bk_db_acquire(db, &c) == BK_OK) {
 *       bk_db_param_t p[] = {BK_DB_TEXT("42")};
 *       bk_db_result_t *r;
 *       if (bk_db_query(c, "SELECT name FROM users WHERE id = $1", p, 1, &r) == BK_OK) ...
 *       bk_db_release(c);
 *   }
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_DB_H
#define BACKEND_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>
#include <backend/metrics.h>
#include <backend/resilience.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_db bk_db_t;               /* a pool; thread-safe */
typedef struct bk_db_conn bk_db_conn_t;     /* one acquired connection; one thread at a time */
typedef struct bk_db_result bk_db_result_t; /* the rows of one query */

/* ------------------------------------------------------------------ pool */
typedef struct bk_db_opts {
    const char *conninfo;         /* libpq conninfo or URI, multi-host and target_session_attrs
                                     included; required; copied */
    const char *read_conninfo;    /* replicas for bk_db_acquire_read (their own pool of up to
                                     max_conns, read-only sessions); NULL = none; copied */
    unsigned min_conns;           /* opened by bk_db_new and kept; default 1 */
    unsigned max_conns;           /* default 10 */
    int64_t acquire_timeout_ms;   /* wait for a free connection at most; default 5000 */
    int64_t connect_timeout_ms;   /* per connection attempt; default 5000 */
    int64_t max_lifetime_ms;      /* older connections are closed when released; 0 = none;
                                     default 30 min */
    int64_t idle_timeout_ms;      /* idle connections above min_conns are closed; 0 = none;
                                     default 10 min */
    int64_t statement_timeout_ms; /* set on each connection; 0 (default) = the server's */
    const char *application_name; /* set on each connection; default "libbackend" */
    bk_metrics_t *metrics;        /* db_pool_connections, db_pool_wait_seconds,
                                     db_queries_total; borrowed; NULL = none */
    const char *name;             /* the pool's "pool" label; default "default" */
    bk_clock_t *clock;            /* NULL = system; borrowed */
} bk_db_opts_t;

BK_EXPORT void bk_db_opts_init(bk_db_opts_t *opts);
/* Creates a pool and opens min_conns connections. BK_EUNAVAIL (with the server's
 * message in err, may be NULL) when they cannot be opened; BK_EINVAL. */
BK_EXPORT int bk_db_new(const bk_db_opts_t *opts, bk_db_t **out, char *err, size_t errsz);
/* Closes every connection; none may still be acquired. */
BK_EXPORT void bk_db_free(bk_db_t *db);

/*
 * A connection for this thread's exclusive use, until bk_db_release(). Waits at
 * most acquire_timeout_ms for one to be free (BK_ETIMEDOUT). A connection found
 * broken is closed and replaced, never handed out; BK_EUNAVAIL when no new one
 * can be opened.
 */
BK_EXPORT int bk_db_acquire(bk_db_t *db, bk_db_conn_t **out);
/*
 * A connection for read-only work: from the replica pool when read_conninfo is
 * set and a replica is reachable, else from the primary pool (as
 * bk_db_acquire). Replica sessions are read-only (default_transaction_read_only):
 * a write there fails instead of going to a server that must not take it.
 */
BK_EXPORT int bk_db_acquire_read(bk_db_t *db, bk_db_conn_t **out);
/* Gives the connection back. One left inside a transaction is rolled back; one
 * that broke, or outlived max_lifetime_ms, is closed. */
BK_EXPORT void bk_db_release(bk_db_conn_t *c);

/* ------------------------------------------------------------------ queries */
typedef struct bk_db_param {
    const char *value; /* NULL: SQL NULL */
    size_t len;        /* bytes of a binary value; text is NUL-terminated */
    bool binary;       /* bytea and other binary-format values */
} bk_db_param_t;

#define BK_DB_TEXT(s) ((bk_db_param_t){(s), 0, false})
#define BK_DB_BYTES(p, n) ((bk_db_param_t){(const char *)(p), (n), true})
#define BK_DB_NULL ((bk_db_param_t){NULL, 0, false})

/*
 * Runs sql with $1..$n bound to params (never spliced into the text), as a
 * prepared statement cached on the connection by its text. *res (may be NULL)
 * receives the rows. Codes: BK_OK; BK_ECONFLICT for a unique violation (23505);
 * BK_ERETRY for a serialization failure or deadlock (40001, 40P01); BK_EINVAL
 * for another integrity violation (class 23) or a data error (class 22);
 * BK_ETIMEDOUT for statement_timeout (57014); BK_EUNAVAIL when the connection is
 * lost; BK_EIO for another server error. bk_db_error() tells the details.
 */
BK_EXPORT int bk_db_query(bk_db_conn_t *c, const char *sql, const bk_db_param_t *params, size_t n,
                          bk_db_result_t **res);

/* The last server error on c: SQLSTATE ("23505"), message, detail, constraint
 * name; "" for what the server did not say. Valid until the next call on c. */
typedef struct bk_db_error {
    char sqlstate[6];
    const char *message;
    const char *detail;
    const char *constraint;
} bk_db_error_t;
BK_EXPORT const bk_db_error_t *bk_db_error(const bk_db_conn_t *c);

/* ------------------------------------------------------------------ results */
BK_EXPORT size_t bk_db_rows(const bk_db_result_t *r);
BK_EXPORT size_t bk_db_cols(const bk_db_result_t *r);
/* The column's name; NULL when col is out of range. */
BK_EXPORT const char *bk_db_col_name(const bk_db_result_t *r, size_t col);
/* The value as text (bytea as "\x..." hex); NULL for SQL NULL or out of range. */
BK_EXPORT const char *bk_db_value(const bk_db_result_t *r, size_t row, size_t col);
/* Rows an INSERT, UPDATE or DELETE touched. */
BK_EXPORT int64_t bk_db_affected(const bk_db_result_t *r);

/* Flags of bk_db_result_json(). */
enum {
    BK_DB_NUMERIC_AS_NUMBER = 1 << 0, /* numeric as a JSON number (may round), not a string */
};
/*
 * The rows as a JSON array of objects keyed by column name: integers as
 * integers, float4/float8 as reals, numeric as strings (exact) or numbers by
 * flag, booleans, json/jsonb parsed, timestamptz as RFC 3339 in UTC, NULL as
 * null, anything else as its text. A new reference; NULL on ENOMEM.
 */
BK_EXPORT json_t *bk_db_result_json(const bk_db_result_t *r, unsigned flags);
BK_EXPORT void bk_db_result_free(bk_db_result_t *r);

/* ------------------------------------------------------------------ transactions */
typedef enum bk_db_isolation {
    BK_DB_READ_COMMITTED,
    BK_DB_REPEATABLE_READ,
    BK_DB_SERIALIZABLE,
} bk_db_isolation_t;

/* The body of a transaction: BK_OK commits, anything else rolls back and is
 * returned (BK_ERETRY from a query retries the whole transaction). */
typedef int (*bk_db_tx_fn)(bk_db_conn_t *c, void *ud);

/*
 * Runs fn in a transaction at isolation on a pooled connection: BEGIN, fn,
 * COMMIT; ROLLBACK when fn fails. A serialization failure or deadlock (in fn or at
 * COMMIT) runs the whole transaction again, after the backoff of retry (NULL: up
 * to 5 attempts, 10 ms to 500 ms with full jitter). Returns fn's code, the
 * commit's, or the last attempt's BK_ERETRY.
 */
BK_EXPORT int bk_db_tx(bk_db_t *db, bk_db_isolation_t isolation, const bk_retry_opts_t *retry, bk_db_tx_fn fn,
                       void *ud);

/* Advisory locks on key: for the session (until bk_db_advisory_unlock, or the
 * connection's release, which unlocks them all) or, with xact, until the current
 * transaction ends.
 * Blocks until the lock is granted (bounded by statement_timeout). */
BK_EXPORT int bk_db_advisory_lock(bk_db_conn_t *c, int64_t key, bool xact);
BK_EXPORT int bk_db_advisory_unlock(bk_db_conn_t *c, int64_t key);

/* ------------------------------------------------------------------ migrations */
/*
 * Applies the migrations in dir: files named <version>_<name>.sql (0001_users.sql)
 * in version order, each in its own transaction, each recorded in
 * bk_schema_migrations (version, name, SHA-256 checksum, applied_at). A file
 * already applied whose checksum changed is refused (BK_ECONFLICT) and nothing
 * after it runs. Concurrent migrators (processes starting together) are
 * serialised by an advisory lock: each migration runs once. *applied (may be
 * NULL) receives how many this call applied. A message in err (may be NULL).
 */
BK_EXPORT int bk_db_migrate(bk_db_t *db, const char *dir, unsigned *applied, char *err, size_t errsz);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_DB_H */
