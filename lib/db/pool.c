/* The connection pool: at most max_conns connections, min_conns kept open, a
 * bounded wait for a free one, and no connection handed out that we know is
 * broken. An idle connection the server dropped (pg_terminate_backend, a restart)
 * has its FATAL message and EOF waiting on the socket: a zero-timeout poll before
 * handing it out finds that, and the connection is replaced instead.
 * SPDX-License-Identifier: MIT */
#include <stdatomic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "db/db_int.h"

static const char *const OUTCOMES[] = {"ok", "conflict", "retry", "invalid", "timeout", "unavailable", "error"};

#define DEFAULT_MAX_CONNS 10u
#define DEFAULT_CONNECT_TIMEOUT_NS (5 * BK_NSEC_PER_SEC)

BK__ASSERT_ABI_SIZE(bk_db_opts_t, 152);

void bk_db_opts_init(bk_db_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->min_conns = 1;
    opts->max_conns = DEFAULT_MAX_CONNS;
    opts->acquire_timeout_ns = 5 * BK_NSEC_PER_SEC;
    opts->connect_timeout_ns = DEFAULT_CONNECT_TIMEOUT_NS;
    opts->max_lifetime_ns = 30 * 60 * BK_NSEC_PER_SEC;
    opts->idle_timeout_ns = 10 * 60 * BK_NSEC_PER_SEC;
    opts->application_name = "libbackend";
    opts->name = "default";
}

/* ns in whole units, rounded up: libpq and the server count seconds and
 * milliseconds, and a non-zero duration must not become 0 ("none") there. */
static int64_t ceil_units(int64_t ns, int64_t unit)
{
    return ns / unit + (ns % unit != 0);
}

static int64_t now_ns(const bk_db_t *db)
{
    return bk_clock_mono_ns(db->o.clock);
}

void bk__db_conn_close(bk_db_conn_t *c)
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

/* The session settings every connection of db's runs with: UTC and ISO dates
 * make timestamptz text RFC 3339-ready (bk_db_result_json); statement_timeout
 * (0: the server's, or the role's); read-only sessions on a replica pool.
 * Directly, all go in the startup packet's options. Through a transaction
 * pooler they cannot (PgBouncer 1.18 refuses options, and would lose a session
 * SET of anything but the parameters it tracks): TimeZone and DateStyle, which
 * it tracks and sets again on whichever server connection runs a transaction,
 * are SET once per connection (POOLED_SET_SQL); the others are per
 * transaction (db->tx_set: query.c's pipeline, tx.c's BEGIN). */
#define POOLED_SET_SQL "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'"

static void settings(bk_db_t *db)
{
    long long ms = db->o.statement_timeout_ns > 0 ? ceil_units(db->o.statement_timeout_ns, BK_NSEC_PER_MSEC) : 0;
    if (!db->o.transaction_pooling) {
        char timeout[48] = "";
        if (ms)
            snprintf(timeout, sizeof timeout, " -c statement_timeout=%lld", ms);
        snprintf(db->options, sizeof db->options, "-c TimeZone=UTC -c DateStyle=ISO,YMD%s%s", timeout,
                 db->read_only ? " -c default_transaction_read_only=on" : "");
        return;
    }
    if (ms)
        snprintf(db->tx_set[db->ntx_set++], sizeof db->tx_set[0], "SET LOCAL statement_timeout = %lld", ms);
    if (db->read_only)
        snprintf(db->tx_set[db->ntx_set++], sizeof db->tx_set[0], "SET TRANSACTION READ ONLY");
}

/* Opens a connection: the caller's conninfo first, then our settings, which win. */
int bk__db_conn_open(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err)
{
    char timeout[24];
    int64_t secs = ceil_units(db->o.connect_timeout_ns, BK_NSEC_PER_SEC);
    snprintf(timeout, sizeof timeout, "%lld", (long long)(secs < 2 ? 2 : secs)); /* libpq's minimum is 2 */
    const char *const keys[] = {"dbname", "application_name", "connect_timeout", "client_encoding", "options", NULL};
    const char *const values[] = {db->conninfo, db->app_name, timeout, "UTF8", db->options, NULL};
    bk_db_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return bk__error(err, BK_ENOMEM, NULL);
    c->db = db;
    /* Through a pooler, no options key at all (an empty one still reaches it). */
    const char *const *k = keys, *const *v = values;
    const char *const pooled_keys[] = {keys[0], keys[1], keys[2], keys[3], NULL};
    if (db->o.transaction_pooling)
        k = pooled_keys;
    c->pg = PQconnectdbParams(k, v, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        int rc = c->pg ? bk__db_libpq_error(err, BK_EUNAVAIL, PQerrorMessage(c->pg))
                       : bk__error(err, BK_ENOMEM, NULL);
        /* PgBouncer's answer to the options it does not take. */
        if (c->pg && err && strstr(err->message, "unsupported startup parameter: options"))
            bk__error(err, rc, "%s (a pooler in transaction mode? then set bk_db_opts_t.transaction_pooling)",
                      err->message);
        PQfinish(c->pg);
        free(c);
        return rc;
    }
    PQsetNoticeReceiver(c->pg, on_notice, c);
    c->created_ns = now_ns(db);
    if (db->o.transaction_pooling && bk__db_exec(c, POOLED_SET_SQL) != BK_OK) {
        int rc = bk__error(err, BK_EUNAVAIL, "cannot set the session's TimeZone and DateStyle: %s", c->last.message);
        bk__db_conn_close(c);
        return rc;
    }
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
    if (!db->idle_gauge && !db->busy_gauge)
        return;
    bk__slotpool_stats_t st;
    bk__slotpool_stats(db->pool, &st);
    if (db->idle_gauge)
        bk_gauge_set(db->idle_gauge, st.open - st.in_use);
    if (db->busy_gauge)
        bk_gauge_set(db->busy_gauge, st.in_use);
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

static int pool_new(const char *conninfo, const bk_db_opts_t *o, bool read_only, bk_db_t **out, bk_error_t *err);
static bool too_old(const bk_db_conn_t *c);

/* The slot pool's callbacks: a slot's resource is a connection. */
static int conn_create(void **res, void *ud, bk_error_t *err)
{
    bk_db_conn_t *c;
    int rc = bk__db_conn_open(ud, &c, err);
    *res = rc == BK_OK ? c : NULL;
    return rc;
}

static bool conn_usable(void *res, void *ud)
{
    (void)ud;
    return !too_old(res) && conn_healthy(res);
}

static void conn_destroy(void *res, void *ud)
{
    (void)ud;
    bk__db_conn_close(res);
}

int bk_db_new(const char *conninfo, const bk_db_opts_t *opts, bk_db_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out)
        *out = NULL;
    if (!conninfo || !out)
        return bk__error(err, BK_EINVAL, "bk_db_new: no conninfo or no out pointer");
    bk_db_opts_t o;
    if (opts)
        o = *opts;
    else
        bk_db_opts_init(&o);
    /* Zero means the default where zero means nothing else (HACKING.md). */
    if (o.max_conns == 0)
        o.max_conns = DEFAULT_MAX_CONNS;
    if (o.connect_timeout_ns == 0)
        o.connect_timeout_ns = DEFAULT_CONNECT_TIMEOUT_NS;
    if (o.min_conns > o.max_conns)
        return bk__error(err, BK_EINVAL, "bk_db_new: min_conns %u is above max_conns %u", o.min_conns, o.max_conns);
    if (o.acquire_timeout_ns < 0 || o.connect_timeout_ns < 0 || o.max_lifetime_ns < 0 || o.idle_timeout_ns < 0 ||
        o.statement_timeout_ns < 0)
        return bk__error(err, BK_EINVAL, "bk_db_new: a negative timeout, lifetime or idle time");
    int rc = pool_new(conninfo, &o, false, out, err);
    if (rc || !o.read_conninfo)
        return rc;
    /* Replicas may be down when we start: their pool opens connections on demand. */
    bk_db_opts_t ro = o;
    ro.read_conninfo = NULL;
    ro.min_conns = 0;
    char name[128];
    snprintf(name, sizeof name, "%s:read", o.name ? o.name : "default");
    ro.name = name;
    rc = pool_new(o.read_conninfo, &ro, true, &(*out)->replicas, err);
    if (rc) {
        bk_db_free(*out);
        *out = NULL;
    }
    return rc;
}

#define REPLICA_RETRY_NS (5 * BK_NSEC_PER_SEC)

int bk_db_acquire_read(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!db || !out)
        return bk__error(err, BK_EINVAL, "bk_db_acquire_read: no pool or no out pointer");
    /* A replica that could not be reached is not tried again for a while: each
     * try may cost a connect timeout, and the primary can serve reads meanwhile. */
    if (db->replicas && now_ns(db) >= atomic_load(&db->replicas_down_until)) {
        int rc = bk_db_acquire(db->replicas, out, NULL);
        if (rc == BK_OK)
            return BK_OK;
        if (rc == BK_EUNAVAIL)
            atomic_store(&db->replicas_down_until, now_ns(db) + REPLICA_RETRY_NS);
    }
    return bk_db_acquire(db, out, err);
}

/* One pool on conninfo; o is checked, its defaults filled in. */
static int pool_new(const char *conninfo, const bk_db_opts_t *o, bool read_only, bk_db_t **out, bk_error_t *err)
{
    bk_db_t *db = calloc(1, sizeof *db);
    if (!db)
        return bk__error(err, BK_ENOMEM, NULL);
    db->o = *o;
    /* Copied below or not ours to keep: no pointer into the caller's memory. */
    db->o.read_conninfo = db->o.application_name = db->o.name = NULL;
    db->read_only = read_only;
    settings(db);
    db->conninfo = strdup(conninfo);
    db->app_name = strdup(o->application_name ? o->application_name : "libbackend");
    db->name = strdup(o->name ? o->name : "default");
    int rc = db->conninfo && db->app_name && db->name ? BK_OK : bk__error(err, BK_ENOMEM, NULL);
    if (!rc && (rc = register_metrics(db)) != BK_OK)
        bk__error(err, rc, "bk_db_new: cannot register the pool's metrics");
    /* A thread gets back the connection it used last, if idle: a thread that
     * keeps its connection keeps its server process on the same CPU as itself,
     * where trading connections between threads costs cross-CPU wakeups. */
    bk__slotpool_opts_t po = {.size = o->max_conns, .min_open = o->min_conns, .affinity = true,
                              .idle_timeout_ns = o->idle_timeout_ns, .clock = o->clock};
    bk__slotpool_ops_t ops = {conn_create, conn_usable, conn_destroy, db};
    if (!rc)
        rc = bk__slotpool_new(&po, &ops, &db->pool, err);
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
    bk__slotpool_free(db->pool);
    free(db->conninfo);
    free(db->app_name);
    free(db->name);
    free(db);
}

/* Whether c has outlived max_lifetime_ns. */
static bool too_old(const bk_db_conn_t *c)
{
    const bk_db_t *db = c->db;
    return db->o.max_lifetime_ns > 0 && now_ns(db) - c->created_ns >= db->o.max_lifetime_ns;
}

int bk_db_acquire(bk_db_t *db, bk_db_conn_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out)
        *out = NULL;
    if (!db || !out)
        return bk__error(err, BK_EINVAL, "bk_db_acquire: no pool or no out pointer");
    int64_t start = db->wait_hist ? bk_clock_mono_ns(NULL) : 0;
    unsigned slot;
    void *res = NULL;
    int rc = bk__slotpool_acquire(db->pool, db->o.acquire_timeout_ns, &slot, &res, err);
    if (rc == BK_ETIMEDOUT)
        rc = bk__error(err, BK_ETIMEDOUT, "pool \"%s\": all %u connections stayed busy for the acquire timeout",
                       db->name, db->o.max_conns);
    update_gauges(db);
    if (db->wait_hist)
        bk_histogram_observe(db->wait_hist, (double)(bk_clock_mono_ns(NULL) - start) / 1e9);
    bk_db_conn_t *c = res;
    if (rc)
        return rc;
    c->slot = slot;
    if (c->last.code)
        bk__error_clear(&c->last); /* nothing of the previous holder's */
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
                !too_old(c);
    bk__slotpool_release(db->pool, c->slot, !keep); /* not kept: closed */
    update_gauges(db);
}
