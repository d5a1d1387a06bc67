/*
 * libbackend db: PostgreSQL through libpq. A thread-safe connection pool,
 * parameterised queries only (there is no call that puts values into SQL text),
 * results as rows or as JSON, transactions retried on serialization failures,
 * advisory locks, versioned migrations, and a LISTEN/NOTIFY listener.
 *
 * Layer 2 (services): does blocking I/O. Call it from worker threads (a
 * BK_HTTP_BLOCKING route, the worker pool), never from an event loop.
 *
 * Error detail: every call that can fail with something to say beyond its code
 * takes a caller-owned bk_error_t *err last (NULL allowed): the server's message,
 * DETAIL, SQLSTATE and constraint name, or the pool's reason.
 *
 *   bk_db_t *db;
 *   bk_error_t err;
 *   if (bk_db_new("host=/run/postgresql dbname=shop", NULL, &db, &err) != BK_OK) ... err.message says why
 *   bk_db_conn_t *c;
 *   if (bk_db_acquire(db, &c, &err) == BK_OK) {
 *       bk_db_param_t p[] = {BK_DB_TEXT("42")};
 *       bk_db_result_t *r;
 *       if (bk_db_query(c, "SELECT name FROM users WHERE id = $1", p, 1, &r, &err) == BK_OK) ...
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
    const char *read_conninfo;    /* replicas for bk_db_acquire_read (their own pool of up to
                                     max_conns, read-only sessions); NULL = none; copied */
    unsigned min_conns;           /* opened by bk_db_new and kept; default 1 (0: none) */
    unsigned max_conns;           /* default (and 0) 10 */
    int64_t acquire_timeout_ns;   /* wait for a free connection at most; default 5 s; 0: no wait */
    int64_t connect_timeout_ns;   /* per connection attempt; default (and 0) 5 s; libpq counts
                                     whole seconds, at least 2: rounded up */
    int64_t max_lifetime_ns;      /* older connections are closed when released; default 30 min;
                                     0 = none */
    int64_t idle_timeout_ns;      /* idle connections above min_conns are closed; default 10 min;
                                     0 = none */
    int64_t statement_timeout_ns; /* set on each connection, rounded up to whole milliseconds;
                                     0 (default) = the server's */
    const char *application_name; /* set on each connection; default (and NULL) "libbackend"; copied */
    bk_metrics_t *metrics;        /* db_pool_connections, db_pool_wait_seconds,
                                     db_queries_total; borrowed; NULL = none */
    const char *name;             /* the pool's "pool" label; default (and NULL) "default"; copied */
    bk_clock_t *clock;            /* acquire_timeout_ns, idle and lifetime limits: on a fake
                                     clock the acquire wait ends when the clock is advanced
                                     past it (man bk_clock); NULL = system; borrowed */
    bool transaction_pooling;     /* conninfo reaches the server through a pooler in transaction
                                     mode (PgBouncer pool_mode = transaction), which gives each
                                     transaction whichever server connection is free: no named
                                     statements (each query is parsed and planned again), no
                                     startup options, the session settings kept per transaction,
                                     no session advisory locks, no listener; default false */
    uint64_t reserved_[7];        /* zeroed by bk_db_opts_init; room to grow (HACKING.md) */
} bk_db_opts_t;

/* Clears *opts (reserved_ included) and sets the defaults. */
BK_EXPORT void bk_db_opts_init(bk_db_opts_t *opts);
/* Creates a pool on conninfo (a libpq conninfo or URI, multi-host and
 * target_session_attrs included; copied) and opens min_conns connections; opts
 * NULL = all defaults. BK_EUNAVAIL (err: libpq's message) when they cannot be
 * opened; BK_EINVAL (err: which option). */
BK_EXPORT int bk_db_new(const char *conninfo, const bk_db_opts_t *opts, bk_db_t **out, bk_error_t *err);
/* Closes every connection; none may still be acquired. */
BK_EXPORT void bk_db_free(bk_db_t *db);

/*
 * A connection for this thread's exclusive use, until bk_db_release(). Waits at
 * most acquire_timeout_ns for one to be free (BK_ETIMEDOUT). A connection found
 * broken is closed and replaced, never handed out; BK_EUNAVAIL (err: libpq's
 * message) when no new one can be opened.
 */
BK_EXPORT int bk_db_acquire(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err);
/*
 * A connection for read-only work: from the replica pool when read_conninfo is
 * set and a replica is reachable, else from the primary pool (as
 * bk_db_acquire; err then tells of the primary). Replica sessions are read-only
 * (default_transaction_read_only): a write there fails instead of going to a
 * server that must not take it.
 */
BK_EXPORT int bk_db_acquire_read(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err);
/* Gives the connection back. One left inside a transaction is rolled back; one
 * that broke, or outlived max_lifetime_ns, is closed. */
BK_EXPORT void bk_db_release(bk_db_conn_t *c);

/* ------------------------------------------------------------------ queries */
/* A parameter: a value type, built in place by the macros below (a compound
 * literal), never allocated by the library and never grown: it has no reserved_
 * tail, unlike the options. */
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
 * lost; BK_EIO for another server error. err: message = the server's primary
 * message (libpq's when the server said nothing), detail = its DETAIL, sqlstate,
 * constraint; "" for what the server did not say.
 */
BK_EXPORT int bk_db_query(bk_db_conn_t *c, const char *sql, const bk_db_param_t *params, size_t n,
                          bk_db_result_t **res, bk_error_t *err);

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
 * commit's (a DEFERRABLE constraint checked at COMMIT: mapped as bk_db_query
 * maps it), or the last attempt's BK_ERETRY.
 *
 * err tells of the failure that ended the transaction: a failed COMMIT (or
 * BEGIN) with its SQLSTATE, constraint, message and detail; when fn fails, the
 * detail of the last query fn ran on c if that query failed (the connection
 * remembers its last query's error; a query that succeeded after it, such as a
 * ROLLBACK TO SAVEPOINT, forgets it), else a message naming fn's code. err->code
 * is always what bk_db_tx returns, even when fn turned the query's code into
 * another.
 */
BK_EXPORT int bk_db_tx(bk_db_t *db, bk_db_isolation_t isolation, const bk_retry_opts_t *retry, bk_db_tx_fn fn,
                       void *ud, bk_error_t *err);

/* Advisory locks on key: for the session (until bk_db_advisory_unlock, or the
 * connection's release, which unlocks them all) or, with xact, until the current
 * transaction ends.
 * Blocks until the lock is granted (bounded by statement_timeout). */
BK_EXPORT int bk_db_advisory_lock(bk_db_conn_t *c, int64_t key, bool xact, bk_error_t *err);
BK_EXPORT int bk_db_advisory_unlock(bk_db_conn_t *c, int64_t key, bk_error_t *err);

/* ------------------------------------------------------------------ notifications */
/*
 * A listener: a connection of its own (outside the pool's max_conns, opened
 * from db's conninfo with the pool's settings) that LISTENs on some channels
 * and waits for their NOTIFYs. One thread uses a listener at a time
 * (bk_db_listener_wait, bk_db_listener_backend_pid, bk_db_listener_free);
 * bk_db_listener_wake may be called from any thread while it exists.
 *
 * PostgreSQL delivers a NOTIFY when its transaction commits (never one that
 * rolls back), and the same channel and payload sent twice in one transaction
 * once. LISTEN needs a session of its own: it does not work through PgBouncer's
 * transaction pooling (poll the table instead, with no listener). man
 * bk_db_listener_new.
 */
typedef struct bk_db_listener bk_db_listener_t;

typedef struct bk_db_listener_opts {
    /* The backoff between attempts to reconnect after the connection was lost;
     * copied by bk_db_listener_new; NULL = 5 attempts, 100 ms to 5 s, full
     * jitter. Its retryable is not used (a refused connection is retried, nothing
     * else); its clock NULL = db's: the backoff sleeps on it (bk_clock_sleep_ns). */
    const bk_retry_opts_t *reconnect;
    uint64_t reserved_[8]; /* zeroed by bk_db_listener_opts_init; room to grow (HACKING.md) */
} bk_db_listener_opts_t;

/* One event of bk_db_listener_wait: allocated by the library (it may grow at its
 * end: never allocate or copy one), freed with bk_db_notification_free. */
typedef struct bk_db_notification {
    const char *channel; /* the channel it came on, as LISTENed; "" for a reset */
    const char *payload; /* the NOTIFY's payload; "" when it had none, and for a reset */
    int32_t sender_pid;  /* the server process of the session that sent it; 0 for a reset */
    bool reset;          /* not a NOTIFY: the connection was lost and is back, LISTENing on
                            every channel again; what was sent meanwhile is lost: catch up */
} bk_db_notification_t;

/* Clears *opts (reserved_ included) and sets the defaults. */
BK_EXPORT void bk_db_listener_opts_init(bk_db_listener_opts_t *opts);
/*
 * Opens the listener's connection and LISTENs on the nchannels (at least 1)
 * channels, names taken exactly as given (quoted: "Jobs" is not jobs; 1 to 63
 * bytes; copied). db is borrowed and must outlive the listener. BK_EINVAL (err:
 * which argument); BK_EUNAVAIL (err: libpq's message) when the connection
 * cannot be opened (no retry here); BK_EIO (err: the server's) when LISTEN fails.
 */
BK_EXPORT int bk_db_listener_new(bk_db_t *db, const char *const *channels, size_t nchannels,
                                 const bk_db_listener_opts_t *opts, bk_db_listener_t **out, bk_error_t *err);
/*
 * Waits up to timeout_ns (>= 0; 0: only what has come already), measured on the
 * system's monotonic clock, for one event, which *out receives (caller-owned,
 * freed with bk_db_notification_free). BK_OK with a notification, or with a reset
 * (out->reset) after the connection was lost and reopened; BK_ETIMEDOUT, BK_ECANCELED
 * (bk_db_listener_wake) and errors with *out NULL. BK_EUNAVAIL (err: libpq's message)
 * when the lost connection could not be reopened within the reconnect backoff:
 * the next call tries again (and reports a reset when it succeeds); BK_ENOMEM
 * (the event is kept for the next call).
 */
BK_EXPORT int bk_db_listener_wait(bk_db_listener_t *l, int64_t timeout_ns, bk_db_notification_t **out,
                                  bk_error_t *err);
/* Ends the wait in progress, or the next one, with BK_ECANCELED; wakes before a
 * wait count as one. Any thread; async-signal-safe. */
BK_EXPORT void bk_db_listener_wake(bk_db_listener_t *l);
/* The server process id of the listener's connection (pg_stat_activity.pid); 0
 * while it has none (lost, not reopened yet). */
BK_EXPORT int32_t bk_db_listener_backend_pid(const bk_db_listener_t *l);
/* Closes the connection; NULL allowed. No wait may be in progress. */
BK_EXPORT void bk_db_listener_free(bk_db_listener_t *l);
/* NULL allowed. */
BK_EXPORT void bk_db_notification_free(bk_db_notification_t *n);

/* ------------------------------------------------------------------ migrations */
/*
 * Applies the migrations in dir: files named <version>_<name>.sql (0001_users.sql)
 * in version order, each in its own transaction, each recorded in
 * bk_schema_migrations (version, name, SHA-256 checksum, applied_at). A file
 * already applied whose checksum changed is refused (BK_ECONFLICT) and nothing
 * after it runs. Concurrent migrators (processes starting together) are
 * serialised by an advisory lock: each migration runs once. *applied (may be
 * NULL) receives how many this call applied. err: file = the path of the
 * migration (or directory) at fault, line = the line of the server's error
 * position in it (0 when the server gave none), sqlstate, constraint and detail
 * of the server's error; the message names the file.
 */
BK_EXPORT int bk_db_migrate(bk_db_t *db, const char *dir, unsigned *applied, bk_error_t *err);

/*
 * A migration embedded in a program or library: a value type (no reserved_ tail,
 * like bk_db_param_t), usually a static array.
 */
typedef struct bk_db_migration {
    int64_t version;  /* > 0; the list is in increasing version order */
    const char *name; /* "create jobs": recorded, informative */
    const char *sql;  /* one or more statements, trusted like the program's own code */
} bk_db_migration_t;

/*
 * Applies the migrations list[0..n) that schema's history does not record yet,
 * each in its own transaction together with its row in
 * "schema".bk_schema_migrations (version, name, SHA-256 of sql, applied_at); the
 * schema and the table are created when missing. schema ([a-z_][a-z0-9_]{0,62})
 * names the component (a library's own schema), so that its versions never mix
 * with another component's. Each transaction takes a transaction advisory lock
 * (the key of bk_db_migrate's), so migrators starting together run each
 * migration once, and no session state is left behind (it works through a pooler
 * in transaction mode). A recorded version whose checksum differs is refused
 * (BK_ECONFLICT) and nothing after it runs; so is a list not in increasing
 * version order (BK_EINVAL). *applied (may be NULL): how many this call applied.
 * err: message names the migration, sqlstate, constraint, detail and line as
 * bk_db_migrate's.
 */
BK_EXPORT int bk_db_migrate_list(bk_db_t *db, const char *schema, const bk_db_migration_t *list, size_t n,
                                 unsigned *applied, bk_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_DB_H */
