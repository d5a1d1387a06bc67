/* The connection pool: at most max_conns connections, min_conns kept open, a
 * bounded wait for a free one, and no connection handed out that we know is
 * broken. An idle connection the server dropped (pg_terminate_backend, a restart)
 * has its FATAL message and EOF waiting on the socket: a zero-timeout poll before
 * handing it out finds that, and the connection is replaced instead.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_int.h"

static const char *const OUTCOMES[] = {"ok", "conflict", "retry", "invalid", "timeout", "unavailable", "error"};

void bk_db_opts_init(bk_db_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->min_conns = 1;
    opts->max_conns = 10;
    opts->acquire_timeout_ms = 5000;
    opts->connect_timeout_ms = 5000;
    opts->max_lifetime_ms = 30 * 60 * 1000;
    opts->idle_timeout_ms = 10 * 60 * 1000;
    opts->application_name = "libbackend";
    opts->name = "default";
}

static int64_t now_ns(const bk_db_t *db)
{
    return bk_clock_mono_ns(db->o.clock);
}

static void conn_close(bk_db_conn_t *c)
{
    bk__db_statements_free(c);
    PQfinish(c->pg);
    free(c);
}

/* Notices and warnings are the server talking to a person; nobody reads a
 * library's stderr. A FATAL one outside a query (pg_terminate_backend, shutdown)
 * means the server is closing the connection: mark it. */
static void on_notice(void *arg, const PGresult *r)
{
    bk_db_conn_t *c = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->broken = true;
}

/* Opens a connection: the caller's conninfo first, then our settings, which win. */
static int conn_open(bk_db_t *db, bk_db_conn_t **out, char *err, size_t errsz)
{
    char timeout[24], options[160];
    int64_t secs = (db->o.connect_timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof timeout, "%lld", (long long)(secs < 2 ? 2 : secs)); /* libpq's minimum is 2 */
    /* UTC and ISO dates make timestamptz text RFC 3339-ready (bk_db_result_json). */
    char timeout_opt[48] = ""; /* 0: leave the server's (or role's) setting alone */
    if (db->o.statement_timeout_ms > 0)
        snprintf(timeout_opt, sizeof timeout_opt, " -c statement_timeout=%lld", (long long)db->o.statement_timeout_ms);
    snprintf(options, sizeof options, "-c TimeZone=UTC -c DateStyle=ISO,YMD%s%s", timeout_opt,
             db->read_only ? " -c default_transaction_read_only=on" : "");
    const char *const keys[] = {"dbname", "application_name", "connect_timeout", "client_encoding", "options", NULL};
    const char *const values[] = {db->conninfo, db->app_name, timeout, "UTF8", options, NULL};
    bk_db_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return BK_ENOMEM;
    c->db = db;
    c->err.message = c->err.detail = c->err.constraint = "";
    c->pg = PQconnectdbParams(keys, values, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        int rc = c->pg ? BK_EUNAVAIL : BK_ENOMEM;
        if (err && errsz)
            snprintf(err, errsz, "%s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
        PQfinish(c->pg);
        free(c);
        return rc;
    }
    PQsetNoticeReceiver(c->pg, on_notice, c);
    c->created_ns = now_ns(db);
    *out = c;
    return BK_OK;
}

/* True when the connection can be handed out: the socket holds nothing (an idle
 * connection is never sent anything but notifications) or what it holds leaves
 * the connection usable. */
static bool conn_healthy(bk_db_conn_t *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return false;
    struct pollfd p = {PQsocket(c->pg), POLLIN, 0};
    int n = poll(&p, 1, 0);
    if (n == 0)
        return true;
    if (n < 0 || !PQconsumeInput(c->pg))
        return false;
    bool busy = PQisBusy(c->pg); /* parses what came: a FATAL notice marks c broken */
    PGnotify *nt;
    while ((nt = PQnotifies(c->pg)) != NULL)
        PQfreemem(nt);
    return !busy && !c->broken && PQstatus(c->pg) == CONNECTION_OK;
}

static void update_gauges(bk_db_t *db)
{
    if (db->idle_gauge)
        bk_gauge_set(db->idle_gauge, db->open - db->busy);
    if (db->busy_gauge)
        bk_gauge_set(db->busy_gauge, db->busy);
}

static int register_metrics(bk_db_t *db)
{
    bk_metrics_t *m = db->o.metrics;
    if (!m)
        return BK_OK;
    bk_metric_t *conns, *wait;
    int rc = bk_metrics_gauge(m, "db_pool_connections", "Pool connections by state.",
                              (const char *[]){"pool", "state", NULL}, &conns);
    if (!rc)
        rc = bk_metric_gauge(conns, (const char *[]){db->name, "idle", NULL}, &db->idle_gauge);
    if (!rc)
        rc = bk_metric_gauge(conns, (const char *[]){db->name, "busy", NULL}, &db->busy_gauge);
    if (!rc)
        rc = bk_metrics_histogram(m, "db_pool_wait_seconds", "Time to acquire a pool connection.",
                                  (const char *[]){"pool", NULL}, NULL, 0, &wait);
    if (!rc)
        rc = bk_metric_histogram(wait, (const char *[]){db->name, NULL}, &db->wait_hist);
    bk_metric_t *q;
    if (!rc)
        rc = bk_metrics_counter(m, "db_queries_total", "Queries by outcome.",
                                (const char *[]){"pool", "outcome", NULL}, &q);
    for (size_t i = 0; !rc && i < BK__DB_OUTCOMES; i++)
        rc = bk_metric_counter(q, (const char *[]){db->name, OUTCOMES[i], NULL}, &db->queries[i]);
    return rc;
}

static int pool_new(const bk_db_opts_t *opts, bool read_only, bk_db_t **out, char *err, size_t errsz);

int bk_db_new(const bk_db_opts_t *opts, bk_db_t **out, char *err, size_t errsz)
{
    if (out)
        *out = NULL;
    if (!opts || !out)
        return BK_EINVAL;
    int rc = pool_new(opts, false, out, err, errsz);
    if (rc || !opts->read_conninfo)
        return rc;
    /* Replicas may be down when we start: their pool opens connections on demand. */
    bk_db_opts_t ro = *opts;
    ro.conninfo = opts->read_conninfo;
    ro.read_conninfo = NULL;
    ro.min_conns = 0;
    char name[128];
    snprintf(name, sizeof name, "%s:read", opts->name ? opts->name : "default");
    ro.name = name;
    rc = pool_new(&ro, true, &(*out)->replicas, NULL, 0);
    if (rc) {
        bk_db_free(*out);
        *out = NULL;
    }
    return rc;
}

#define REPLICA_RETRY_NS (5 * BK_NSEC_PER_SEC)

int bk_db_acquire_read(bk_db_t *db, bk_db_conn_t **out)
{
    if (!db || !out)
        return BK_EINVAL;
    /* A replica that could not be reached is not tried again for a while: each
     * try may cost a connect timeout, and the primary can serve reads meanwhile. */
    if (db->replicas && now_ns(db) >= atomic_load(&db->replicas_down_until)) {
        int rc = bk_db_acquire(db->replicas, out);
        if (rc == BK_OK)
            return BK_OK;
        if (rc == BK_EUNAVAIL)
            atomic_store(&db->replicas_down_until, now_ns(db) + REPLICA_RETRY_NS);
    }
    return bk_db_acquire(db, out);
}

static int pool_new(const bk_db_opts_t *opts, bool read_only, bk_db_t **out, char *err, size_t errsz)
{
    if (err && errsz)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!opts || !out || !opts->conninfo || opts->max_conns == 0 || opts->min_conns > opts->max_conns ||
        opts->acquire_timeout_ms < 0 || opts->connect_timeout_ms <= 0 || opts->max_lifetime_ms < 0 ||
        opts->idle_timeout_ms < 0 || opts->statement_timeout_ms < 0)
        return BK_EINVAL;
    *out = NULL;
    bk_db_t *db = calloc(1, sizeof *db);
    if (!db)
        return BK_ENOMEM;
    db->o = *opts;
    db->read_only = read_only;
    db->conninfo = strdup(opts->conninfo);
    db->app_name = strdup(opts->application_name ? opts->application_name : "libbackend");
    db->name = strdup(opts->name ? opts->name : "default");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = db->conninfo && db->app_name && db->name ? BK_OK : BK_ENOMEM;
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->freed, &ca);
    pthread_condattr_destroy(&ca);
    if (!rc)
        rc = register_metrics(db);
    for (unsigned i = 0; !rc && i < opts->min_conns; i++) {
        bk_db_conn_t *c;
        rc = conn_open(db, &c, err, errsz);
        if (!rc) {
            c->idle_since_ns = c->created_ns;
            c->next = db->idle;
            db->idle = c;
            db->open++;
        }
    }
    if (rc) {
        bk_db_free(db);
        return rc;
    }
    update_gauges(db);
    *out = db;
    return BK_OK;
}

void bk_db_free(bk_db_t *db)
{
    if (!db)
        return;
    bk_db_free(db->replicas);
    for (bk_db_conn_t *c = db->idle, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&db->lock);
    pthread_cond_destroy(&db->freed);
    free(db->conninfo);
    free(db->app_name);
    free(db->name);
    free(db);
}

/* Closes idle connections above min_conns idle longer than idle_timeout_ms; with
 * the lock held. Returns them in a list to close outside the lock. */
static bk_db_conn_t *take_stale(bk_db_t *db, int64_t now)
{
    bk_db_conn_t *stale = NULL, **p = &db->idle;
    while (*p && db->o.idle_timeout_ms > 0) {
        bk_db_conn_t *c = *p;
        if (db->open > db->o.min_conns && now - c->idle_since_ns >= db->o.idle_timeout_ms * BK_NSEC_PER_MSEC) {
            *p = c->next;
            c->next = stale;
            stale = c;
            db->open--;
        } else {
            p = &c->next;
        }
    }
    return stale;
}

static void close_list(bk_db_conn_t *c)
{
    for (bk_db_conn_t *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

int bk_db_acquire(bk_db_t *db, bk_db_conn_t **out)
{
    if (!db || !out)
        return BK_EINVAL;
    *out = NULL;
    struct timespec start, deadline;
    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline = start;
    deadline.tv_sec += db->o.acquire_timeout_ms / 1000;
    deadline.tv_nsec += (db->o.acquire_timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L)
        deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&db->lock);
    bk_db_conn_t *stale = take_stale(db, now_ns(db));
    int rc = BK_OK;
    bk_db_conn_t *c = NULL;
    for (;;) {
        if (db->idle) {
            /* The connection this thread used last, if idle: a thread that keeps
             * its connection keeps its server process on the same CPU as itself,
             * where trading connections between threads costs cross-CPU wakeups. */
            bk_db_conn_t **p = &db->idle;
            pthread_t self = pthread_self();
            while (*p && !pthread_equal((*p)->last_user, self))
                p = &(*p)->next;
            if (!*p)
                p = &db->idle;
            c = *p;
            *p = c->next;
            db->busy++;
            pthread_mutex_unlock(&db->lock);
            bool expired = db->o.max_lifetime_ms > 0 &&
                           now_ns(db) - c->created_ns >= db->o.max_lifetime_ms * BK_NSEC_PER_MSEC;
            if (!expired && conn_healthy(c))
                break;
            conn_close(c); /* broken or too old: replace it */
            c = NULL;
            pthread_mutex_lock(&db->lock);
            db->busy--;
            db->open--;
            continue;
        }
        if (db->open < db->o.max_conns) {
            db->open++;
            db->busy++;
            pthread_mutex_unlock(&db->lock);
            rc = conn_open(db, &c, NULL, 0);
            if (rc == BK_OK)
                break;
            pthread_mutex_lock(&db->lock);
            db->open--;
            db->busy--;
            pthread_cond_signal(&db->freed);
            pthread_mutex_unlock(&db->lock);
            break;
        }
        int w = pthread_cond_timedwait(&db->freed, &db->lock, &deadline);
        if (w == ETIMEDOUT && !db->idle && db->open >= db->o.max_conns) {
            pthread_mutex_unlock(&db->lock);
            rc = BK_ETIMEDOUT;
            break;
        }
    }
    close_list(stale);
    if (db->idle_gauge) {
        pthread_mutex_lock(&db->lock);
        update_gauges(db);
        pthread_mutex_unlock(&db->lock);
    }
    if (db->wait_hist) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        bk_histogram_observe(db->wait_hist, (double)(end.tv_sec - start.tv_sec) +
                                                (double)(end.tv_nsec - start.tv_nsec) / 1e9);
    }
    if (rc)
        return rc;
    c->err.sqlstate[0] = '\0'; /* nothing of the previous holder's */
    c->err.message = c->err.detail = c->err.constraint = "";
    *out = c;
    return BK_OK;
}

void bk_db_release(bk_db_conn_t *c)
{
    if (!c)
        return;
    bk_db_t *db = c->db;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    /* A transaction left open would hold locks and leak into the next user; so
     * would session advisory locks. */
    if (!c->broken && (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) && bk__db_exec(c, "ROLLBACK") != BK_OK)
        c->broken = true;
    if (!c->broken && c->session_locks && bk__db_exec(c, "SELECT pg_advisory_unlock_all()") != BK_OK)
        c->broken = true;
    c->session_locks = false;
    bool keep = !c->broken && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE &&
                !(db->o.max_lifetime_ms > 0 &&
                  now_ns(db) - c->created_ns >= db->o.max_lifetime_ms * BK_NSEC_PER_MSEC);
    pthread_mutex_lock(&db->lock);
    db->busy--;
    if (keep) {
        c->last_user = pthread_self();
        c->idle_since_ns = now_ns(db);
        c->next = db->idle;
        db->idle = c;
    } else {
        db->open--;
    }
    update_gauges(db);
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
    if (!keep)
        conn_close(c);
}
