/* The PostgreSQL pool, queries and transactions against the private server the
 * harness starts (BK_TEST_PG_DSN): exhaustion and acquire timeouts, a killed
 * backend replaced on the next acquire, a multi-host conninfo past a server that
 * is down, error mapping, parameters that are never SQL, and SERIALIZABLE
 * transactions that really are retried.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/db.h>
#include <backend/metrics.h>

#include "check_main.h"
#include "pg_test.h"

static const char *dsn(void)
{
    return bkt_pg_dsn();
}

static bk_db_t *pool(unsigned max, int64_t acquire_timeout_ns)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = max;
    o.acquire_timeout_ns = acquire_timeout_ns;
    bk_db_t *db;
    bk_error_t err;
    ck_assert_msg(bk_db_new(dsn(), &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    return db;
}

static void exec_ok(bk_db_conn_t *c, const char *sql)
{
    bk_error_t err;
    int rc = bk_db_query(c, sql, NULL, 0, NULL, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s (%s)", sql, bk_err_name(rc), err.message);
}

/* A bk_error_t full of garbage, as a caller's stack would hold it. */
static bk_error_t dirty(void)
{
    bk_error_t e;
    memset(&e, 0x5a, sizeof e);
    return e;
}

static void ck_err_clear(const bk_error_t *e)
{
    ck_assert_int_eq(e->code, BK_OK);
    ck_assert_str_eq(e->message, "");
    ck_assert_str_eq(e->sqlstate, "");
    ck_assert_str_eq(e->constraint, "");
    ck_assert_str_eq(e->detail, "");
}

START_TEST(exhaustion_times_out_and_release_frees)
{
    bk_db_t *db = pool(2, 50 * BK_NSEC_PER_MSEC);
    bk_db_conn_t *a, *b, *c;
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &b, NULL), BK_OK);
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_acquire(db, &c, &err), BK_ETIMEDOUT);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err.code, BK_ETIMEDOUT);
    ck_assert_msg(strstr(err.message, "all 2 connections stayed busy") != NULL, "%s", err.message);
    ck_assert_str_eq(err.sqlstate, "");
    bk_db_release(a);
    ck_assert_int_eq(bk_db_acquire(db, &c, &err), BK_OK);
    ck_assert_ptr_eq(c, a); /* the same connection, reused */
    ck_err_clear(&err);
    bk_db_release(b);
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

/* A waiter on a full pool whose clock is fake: its acquire_timeout_ns runs on
 * that clock, so only the test's advances end it. */
struct fake_waiter {
    bk_db_t *db;
    bk_clock_t *clock;
    int64_t started_at, returned_at;
    atomic_bool started, done;
    int rc;
};

static void *fake_waiter_thread(void *arg)
{
    struct fake_waiter *w = arg;
    bk_db_conn_t *c;
    w->started_at = bk_clock_mono_ns(w->clock);
    atomic_store(&w->started, true);
    w->rc = bk_db_acquire(w->db, &c, NULL);
    w->returned_at = bk_clock_mono_ns(w->clock);
    if (w->rc == BK_OK)
        bk_db_release(c);
    atomic_store(&w->done, true);
    return NULL;
}

START_TEST(acquire_deadline_runs_on_the_fake_clock)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 1;
    o.acquire_timeout_ns = 30 * BK_NSEC_PER_SEC;
    o.clock = clock;
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, NULL), BK_OK);
    bk_db_conn_t *a;
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    struct fake_waiter w = {.db = db, .clock = clock};
    pthread_t t;
    pthread_create(&t, NULL, fake_waiter_thread, &w);
    /* Real time alone never ends the wait, however long (30 s of fake time would
     * be 30 s of real time on the system clock). The deadline counts from when
     * the waiter begins to wait, which on a loaded machine may be after some of
     * the advances below: hence a bound well past 30 s, not at it. */
    while (!atomic_load(&w.started))
        sched_yield();
    int64_t advanced = 0;
    while (!atomic_load(&w.done)) {
        ck_assert_int_lt(advanced, 600 * BK_NSEC_PER_SEC);
        bk_clock_fake_advance(clock, BK_NSEC_PER_SEC);
        advanced += BK_NSEC_PER_SEC;
        for (int i = 0; i < 200 && !atomic_load(&w.done); i++)
            sched_yield();
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, BK_ETIMEDOUT);
    /* Not before the deadline: 30 s of the fake clock after the call began. */
    ck_assert_int_ge(w.returned_at - w.started_at, 30 * BK_NSEC_PER_SEC);
    ck_assert_int_ge(advanced, 30 * BK_NSEC_PER_SEC);
    bk_db_release(a);
    bk_db_free(db);
    bk_clock_free(clock);
}
END_TEST

START_TEST(killed_backend_is_replaced_on_acquire)
{
    bk_db_t *db = pool(1, BK_NSEC_PER_SEC);
    bk_db_conn_t *c, *admin;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r, NULL), BK_OK);
    char pid[16];
    snprintf(pid, sizeof pid, "%s", bk_db_value(r, 0, 0));
    bk_db_result_free(r);
    bk_db_release(c);

    /* Kill the idle pooled connection's server process from a connection of
     * another pool, straight to the server (through a pooler, that pool could be
     * given the very server connection it kills). */
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.max_conns = 1;
    bk_db_t *other;
    ck_assert_int_eq(bk_db_new(bkt_pg_server_dsn(), &o, &other, NULL), BK_OK);
    ck_assert_int_eq(bk_db_acquire(other, &admin, NULL), BK_OK);
    bk_db_param_t p[] = {BK_DB_TEXT(pid)};
    ck_assert_int_eq(bk_db_query(admin, "SELECT pg_terminate_backend($1::int)", p, 1, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "t");
    bk_db_result_free(r);
    /* Wait until the backend is really gone (the server's exit is asynchronous). */
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(bk_db_query(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", p, 1, &r, NULL),
                         BK_OK);
        bool gone = strcmp(bk_db_value(r, 0, 0), "0") == 0;
        bk_db_result_free(r);
        if (gone)
            break;
    }
    bk_db_release(admin);
    bk_db_free(other);

    /* The next acquire hands out a working connection, not the dead one (through
     * a pooler: the pooler's next server connection). */
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_ne(bk_db_value(r, 0, 0), pid);
    bk_db_result_free(r);
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

/* A multi-host conninfo (libpq's host=a,b port=x,y) with the first server down
 * and target_session_attrs=read-write: the pool's connections reach the next
 * server that is up and writable, in the order given. The harness's two clusters
 * (BK_TEST_PG_DSN, BK_TEST_PG_RESTART_DSN) stand behind a port nothing listens on. */
static char *conn_value(const char *conninfo, const char *key)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    ck_assert_ptr_nonnull(opts);
    char *v = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val)
            v = strdup(o->val);
    PQconninfoFree(opts);
    ck_assert_msg(v != NULL, "no %s in %s", key, conninfo);
    return v;
}

START_TEST(multi_host_conninfo_skips_a_server_down)
{
    const char *second_dsn = getenv("BK_TEST_PG_RESTART_DSN");
    ck_assert_msg(second_dsn != NULL, "BK_TEST_PG_RESTART_DSN is not set (tests/harness/services.sh)");
    char *host1 = conn_value(dsn(), "host"), *port1 = conn_value(dsn(), "port");
    char *host2 = conn_value(second_dsn, "host"), *port2 = conn_value(second_dsn, "port");
    char *user = conn_value(dsn(), "user");
    char conninfo[1024];
    /* Port 1 on the same socket directory: no server, no socket file. */
    snprintf(conninfo, sizeof conninfo,
             "host=%s,%s,%s port=1,%s,%s user=%s dbname=postgres target_session_attrs=read-write connect_timeout=5",
             host1, host2, host1, port2, port1, user);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 2;
    bk_db_t *db;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    bk_db_conn_t *c[2]; /* two connections, each made the same way */
    for (int j = 0; j < 2; j++)
        ck_assert_int_eq(bk_db_acquire(db, &c[j], NULL), BK_OK);
    for (int j = 0; j < 2; j++) {
        bk_db_result_t *r;
        ck_assert_int_eq(bk_db_query(c[j], "SELECT current_setting('port'), pg_is_in_recovery()", NULL, 0, &r, NULL),
                         BK_OK);
        ck_assert_str_eq(bk_db_value(r, 0, 0), port2); /* the first server up, not the last */
        ck_assert_str_eq(bk_db_value(r, 0, 1), "f");
        bk_db_result_free(r);
        exec_ok(c[j], "CREATE TEMP TABLE t (x int)"); /* writable */
    }
    for (int j = 0; j < 2; j++)
        bk_db_release(c[j]);
    bk_db_free(db);
    free(host1), free(port1), free(host2), free(port2), free(user);
}
END_TEST

START_TEST(errors_map_to_codes)
{
    bk_db_t *db = pool(1, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_users");
    exec_ok(c, "CREATE TABLE t_users (id serial PRIMARY KEY, email text NOT NULL CONSTRAINT t_users_email_key UNIQUE,"
               " age int CHECK (age >= 0))");
    bk_db_param_t p[] = {BK_DB_TEXT("a@example.com"), BK_DB_TEXT("30")};
    const char *ins = "INSERT INTO t_users (email, age) VALUES ($1, $2::int)";
    ck_assert_int_eq(bk_db_query(c, ins, p, 2, NULL, NULL), BK_OK);
    bk_error_t e = dirty();
    ck_assert_int_eq(bk_db_query(c, ins, p, 2, NULL, &e), BK_ECONFLICT);
    ck_assert_int_eq(e.code, BK_ECONFLICT);
    ck_assert_str_eq(e.sqlstate, "23505");
    ck_assert_str_eq(e.constraint, "t_users_email_key");
    ck_assert_str_eq(e.message, "duplicate key value violates unique constraint \"t_users_email_key\"");
    ck_assert_str_eq(e.detail, "Key (email)=(a@example.com) already exists.");
    ck_assert_str_eq(e.file, "");
    ck_assert_uint_eq(e.line, 0);
    /* A success clears it. */
    ck_assert_int_eq(bk_db_query(c, "SELECT 1", NULL, 0, NULL, &e), BK_OK);
    ck_err_clear(&e);

    bk_db_param_t neg[] = {BK_DB_TEXT("b@example.com"), BK_DB_TEXT("-1")};
    ck_assert_int_eq(bk_db_query(c, ins, neg, 2, NULL, &e), BK_EINVAL); /* check violation */
    ck_assert_str_eq(e.sqlstate, "23514");
    ck_assert_str_eq(e.constraint, "t_users_age_check");
    bk_db_param_t bad[] = {BK_DB_TEXT("c@example.com"), BK_DB_TEXT("thirty")};
    ck_assert_int_eq(bk_db_query(c, ins, bad, 2, NULL, &e), BK_EINVAL); /* invalid input (22P02) */
    ck_assert_str_eq(e.sqlstate, "22P02");
    ck_assert_str_eq(e.constraint, "");
    ck_assert_int_eq(bk_db_query(c, "SELEC 1", NULL, 0, NULL, &e), BK_EIO);
    ck_assert_str_eq(e.sqlstate, "42601");
    ck_assert_str_eq(e.message, "syntax error at or near \"SELEC\"");
    ck_assert_str_eq(e.detail, "");
    exec_ok(c, "SET statement_timeout = 10");
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_sleep(1)", NULL, 0, NULL, &e), BK_ETIMEDOUT);
    ck_assert_str_eq(e.sqlstate, "57014");
    /* Bad arguments: the code and a message, nothing of the server's. */
    ck_assert_int_eq(bk_db_query(c, NULL, NULL, 0, NULL, &e), BK_EINVAL);
    ck_assert_int_eq(e.code, BK_EINVAL);
    ck_assert_str_ne(e.message, "");
    ck_assert_str_eq(e.sqlstate, "");
    exec_ok(c, "SET statement_timeout = 0");
    exec_ok(c, "DROP TABLE t_users");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(parameters_are_never_sql)
{
    bk_db_t *db = pool(1, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_notes");
    exec_ok(c, "CREATE TABLE t_notes (id int PRIMARY KEY, body text, blob bytea)");
    const char *evil = "x'); DROP TABLE t_notes; --";
    const unsigned char bytes[] = {0, 1, 2, 0xff, '\'', 0};
    bk_db_param_t p[] = {BK_DB_TEXT("1"), BK_DB_TEXT(evil), BK_DB_BYTES(bytes, sizeof bytes)};
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO t_notes VALUES ($1::int, $2, $3)", p, 3, NULL, NULL), BK_OK);
    bk_db_param_t q[] = {BK_DB_TEXT("2"), BK_DB_NULL, BK_DB_NULL};
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO t_notes VALUES ($1::int, $2, $3)", q, 3, NULL, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT body, blob, length(blob) FROM t_notes ORDER BY id", NULL, 0, &r, NULL), BK_OK);
    ck_assert_uint_eq(bk_db_rows(r), 2);
    ck_assert_uint_eq(bk_db_cols(r), 3);
    ck_assert_str_eq(bk_db_col_name(r, 0), "body");
    ck_assert_str_eq(bk_db_value(r, 0, 0), evil); /* stored literally */
    ck_assert_str_eq(bk_db_value(r, 0, 1), "\\x000102ff2700");
    ck_assert_str_eq(bk_db_value(r, 0, 2), "6");
    ck_assert_ptr_null(bk_db_value(r, 1, 0)); /* NULL */
    ck_assert_ptr_null(bk_db_value(r, 5, 0));
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "UPDATE t_notes SET body = 'y'", NULL, 0, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 2);
    bk_db_result_free(r);
    exec_ok(c, "DROP TABLE t_notes");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(release_rolls_back_an_open_transaction)
{
    bk_db_t *db = pool(1, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_tx");
    exec_ok(c, "CREATE TABLE t_tx (v int)");
    exec_ok(c, "BEGIN");
    exec_ok(c, "INSERT INTO t_tx VALUES (1)");
    bk_db_release(c); /* forgot to commit */
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT count(*) FROM t_tx", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "0");
    bk_db_result_free(r);
    exec_ok(c, "DROP TABLE t_tx");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

/* ------------------------------------------------------------------ serializable retry */
struct race {
    bk_db_t *db;
    pthread_barrier_t *both_read; /* each reads before either writes: a real conflict */
    atomic_int attempts;
    int id;
};

/* Reads the sum, then writes it into its own row: two such transactions
 * overlapping at SERIALIZABLE cannot both commit. */
static int sum_into_row(bk_db_conn_t *c, void *ud)
{
    struct race *r = ud;
    int n = atomic_fetch_add(&r->attempts, 1);
    bk_db_result_t *res;
    int rc = bk_db_query(c, "SELECT sum(v) FROM t_race", NULL, 0, &res, NULL);
    if (rc)
        return rc;
    char sum[32];
    snprintf(sum, sizeof sum, "%s", bk_db_value(res, 0, 0));
    bk_db_result_free(res);
    if (n == 0)
        pthread_barrier_wait(r->both_read);
    char id[8];
    snprintf(id, sizeof id, "%d", r->id);
    bk_db_param_t p[] = {BK_DB_TEXT(sum), BK_DB_TEXT(id)};
    return bk_db_query(c, "UPDATE t_race SET v = v + $1::int WHERE id = $2::int", p, 2, NULL, NULL);
}

static void *run_race(void *arg)
{
    struct race *r = arg;
    bk_error_t err = dirty();
    int rc = bk_db_tx(r->db, BK_DB_SERIALIZABLE, NULL, sum_into_row, r, &err);
    /* The lost race left nothing in err once the retry succeeded. */
    if (rc == BK_OK && (err.code != BK_OK || err.sqlstate[0] || err.message[0]))
        rc = BK_EIO;
    return (void *)(intptr_t)rc;
}

START_TEST(serialization_failures_are_retried)
{
    bk_db_t *db = pool(4, 2 * BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_race");
    exec_ok(c, "CREATE TABLE t_race (id int PRIMARY KEY, v int)");
    exec_ok(c, "INSERT INTO t_race VALUES (1, 1), (2, 1)");
    bk_db_release(c);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct race a = {db, &barrier, 0, 1}, b = {db, &barrier, 0, 2};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_race, &a);
    pthread_create(&tb, NULL, run_race, &b);
    void *ra, *rb;
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    pthread_barrier_destroy(&barrier);
    ck_assert_int_eq((int)(intptr_t)ra, BK_OK);
    ck_assert_int_eq((int)(intptr_t)rb, BK_OK);
    /* One of them lost the race and ran again. */
    ck_assert_int_eq(atomic_load(&a.attempts) + atomic_load(&b.attempts), 3);
    /* And the result is that of one after the other: the first makes its row
     * 1 + 2 = 3, the second then reads 4 and makes its row 1 + 4 = 5. */
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT sum(v) FROM t_race", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "8");
    bk_db_result_free(r);
    exec_ok(c, "DROP TABLE t_race");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

static int fails_invalid(bk_db_conn_t *c, void *ud)
{
    (void)ud;
    bk_db_query(c, "INSERT INTO t_rb VALUES (1)", NULL, 0, NULL, NULL);
    return BK_EINVAL;
}

static int lose_three_races(bk_db_conn_t *c, void *ud)
{
    (void)c;
    int *attempts = ud;
    return ++*attempts <= 3 ? BK_ERETRY : BK_OK;
}

START_TEST(tx_backoff_sleeps_on_the_retry_clock)
{
    /* The backoff between attempts is a bk_clock_sleep_ns on the retry's clock:
     * on a fake one it advances the clock by the delays (100 + 200 + 400 s, no
     * jitter) instead of sleeping, which would time the test out. */
    bk_db_t *db = pool(2, BK_NSEC_PER_SEC);
    bk_clock_t *fake;
    ck_assert_int_eq(bk_clock_fake_new(0, &fake), BK_OK);
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.max_attempts = 5;
    ro.base_ns = 100 * BK_NSEC_PER_SEC;
    ro.cap_ns = 1000 * BK_NSEC_PER_SEC;
    ro.jitter = BK_JITTER_NONE;
    ro.clock = fake;
    int attempts = 0;
    bk_error_t err;
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, &ro, lose_three_races, &attempts, &err), BK_OK);
    ck_assert_int_eq(attempts, 4);
    ck_assert_int_eq(bk_clock_mono_ns(fake), 700 * BK_NSEC_PER_SEC);
    bk_db_free(db);
    bk_clock_free(fake);
}
END_TEST

START_TEST(failed_body_rolls_back_without_retry)
{
    bk_db_t *db = pool(2, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_rb");
    exec_ok(c, "CREATE TABLE t_rb (v int)");
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, fails_invalid, NULL, &err), BK_EINVAL);
    /* No query failed: err names fn's code, and nothing of a server's. */
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_str_eq(err.message, "the transaction's function returned BK_EINVAL");
    ck_assert_str_eq(err.sqlstate, "");
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT count(*) FROM t_rb", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "0");
    bk_db_result_free(r);
    exec_ok(c, "DROP TABLE t_rb");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

/* ------------------------------------------------------------------ timeouts, metrics, locks */
static char *backend_pid(bk_db_conn_t *c)
{
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r, NULL), BK_OK);
    char *pid = strdup(bk_db_value(r, 0, 0));
    bk_db_result_free(r);
    return pid;
}

static bool rendered(bk_metrics_t *m, const char *line)
{
    char *text;
    ck_assert_int_eq(bk_metrics_render(m, &text, NULL), BK_OK);
    bool found = strstr(text, line) != NULL;
    if (!found)
        fprintf(stderr, "no \"%s\" in:\n%s", line, text);
    free(text);
    return found;
}

START_TEST(idle_timeout_lifetime_and_metrics)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    bk_metrics_t *m;
    ck_assert_int_eq(bk_metrics_new(&m), BK_OK);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.min_conns = 1;
    o.max_conns = 3;
    o.idle_timeout_ns = 10 * BK_NSEC_PER_SEC;
    o.max_lifetime_ns = 60 * BK_NSEC_PER_SEC;
    o.clock = clock;
    o.metrics = m;
    o.name = "t";
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, NULL), BK_OK);
    bk_db_conn_t *c[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bk_db_acquire(db, &c[i], NULL), BK_OK);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"busy\"} 3"));
    char *first = backend_pid(c[0]);
    for (int i = 0; i < 3; i++)
        bk_db_release(c[i]);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"idle\"} 3"));
    ck_assert(rendered(m, "db_queries_total{pool=\"t\",outcome=\"ok\"} 1"));

    /* Idle past idle_timeout_ns: closed down to min_conns on the next acquire. */
    bk_clock_fake_advance(clock, 11 * BK_NSEC_PER_SEC);
    bk_db_conn_t *a;
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"busy\"} 1"));
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"idle\"} 0"));
    bk_db_release(a);

    /* Past max_lifetime_ns: replaced by a new connection (a new server process). */
    bk_clock_fake_advance(clock, 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    char *later = backend_pid(a);
    if (!bkt_pg_pooled()) /* through a pooler, the server process is the pooler's choice */
        ck_assert_str_ne(later, first);
    if (bkt_pg_pooled()) {
        /* No session lock through a pooler (advisory_lock_reports_the_server). */
        ck_assert_int_eq(bk_db_advisory_lock(a, 4242, false, NULL), BK_EINVAL);
        bk_db_release(a);
        free(first);
        free(later);
        bk_db_free(db);
        bk_metrics_free(m);
        bk_clock_free(clock);
        return;
    }
    /* A session advisory lock does not outlive the release. */
    ck_assert_int_eq(bk_db_advisory_lock(a, 4242, false, NULL), BK_OK);
    bk_db_release(a);
    bk_db_t *other = pool(1, BK_NSEC_PER_SEC);
    bk_db_conn_t *b;
    ck_assert_int_eq(bk_db_acquire(other, &b, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(b, "SELECT pg_try_advisory_lock(4242)", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "t");
    bk_db_result_free(r);
    bk_db_release(b);
    bk_db_free(other);
    free(first);
    free(later);
    bk_db_free(db);
    bk_metrics_free(m);
    bk_clock_free(clock);
}
END_TEST

/* ------------------------------------------------------------------ server restart */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v != NULL && *v, "%s is not set: run under tests/harness/services.sh", name);
    return v;
}

static void expect_select(bk_db_conn_t *c)
{
    bk_db_result_t *r;
    bk_error_t err;
    int rc = bk_db_query(c, "SELECT 41 + 1", NULL, 0, &r, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s", bk_err_name(rc), err.message);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "42");
    bk_db_result_free(r);
}

START_TEST(pool_recovers_after_server_restart)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.min_conns = 2;
    o.max_conns = 3;
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(env("BK_TEST_PG_RESTART_DSN"), &o, &db, NULL), BK_OK);
    bk_db_conn_t *a, *b, *held;
    ck_assert_int_eq(bk_db_acquire(db, &held, NULL), BK_OK);
    expect_select(held);

    /* The server goes away and comes back while two connections sit idle and one
     * is held by a caller. */
    ck_assert_int_eq(system(env("BK_TEST_PG_RESTART")), 0);

    /* The held one fails once, as a lost connection, and is not pooled again. */
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_query(held, "SELECT 1", NULL, 0, NULL, &err), BK_EUNAVAIL);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_str_ne(err.message, ""); /* the server's FATAL, or libpq's lost connection */
    bk_db_release(held);
    /* The idle ones are found dead and replaced: every acquire works. */
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &b, NULL), BK_OK);
    expect_select(a);
    expect_select(b);
    bk_db_release(a);
    bk_db_release(b);
    bk_db_free(db);
}
END_TEST

/* ------------------------------------------------------------------ read pool */
START_TEST(reads_go_to_replicas_or_fall_back)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.read_conninfo = dsn(); /* the same server stands in for a replica */
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, NULL), BK_OK);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire_read(db, &c, NULL), BK_OK);
    expect_select(c);
    /* A replica session refuses writes (25006), instead of taking them. */
    bk_error_t err;
    ck_assert_int_eq(bk_db_query(c, "CREATE TEMP TABLE t_w (v int)", NULL, 0, NULL, &err), BK_EIO);
    ck_assert_str_eq(err.sqlstate, "25006");
    bk_db_release(c);
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK); /* the primary still writes */
    exec_ok(c, "CREATE TEMP TABLE t_w (v int)");
    bk_db_release(c);
    bk_db_free(db);

    /* No replica reachable: reads are served by the primary. */
    o.read_conninfo = "host=/nonexistent port=1 dbname=x";
    o.connect_timeout_ns = 2 * BK_NSEC_PER_SEC;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, NULL), BK_OK);
    for (int i = 0; i < 3; i++) {
        err = dirty();
        ck_assert_int_eq(bk_db_acquire_read(db, &c, &err), BK_OK);
        ck_err_clear(&err); /* the replica's failure is not the call's */
        expect_select(c);
        exec_ok(c, "CREATE TEMP TABLE IF NOT EXISTS t_w (v int)"); /* a primary session */
        bk_db_release(c);
    }
    bk_db_free(db);
}
END_TEST

START_TEST(bad_arguments)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    bk_db_t *db = (bk_db_t *)&o;
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_new(NULL, &o, &db, &err), BK_EINVAL); /* no conninfo */
    ck_assert_ptr_null(db);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_msg(strstr(err.message, "conninfo") != NULL, "%s", err.message);
    o.min_conns = 5;
    o.max_conns = 2;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "min_conns 5 is above max_conns 2") != NULL, "%s", err.message);
    bkt_db_opts_init(&o);
    o.idle_timeout_ns = -1;
    ck_assert_int_eq(bk_db_new(dsn(), &o, &db, &err), BK_EINVAL);
    ck_assert_str_ne(err.message, "");
    bkt_db_opts_init(&o);
    o.connect_timeout_ns = 2 * BK_NSEC_PER_SEC;
    err = dirty();
    ck_assert_int_eq(bk_db_new("host=/nonexistent port=1 dbname=x", &o, &db, &err), BK_EUNAVAIL);
    ck_assert_ptr_null(db);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_msg(strstr(err.message, "/nonexistent") != NULL, "%s", err.message);
    ck_assert_msg(err.message[strlen(err.message) - 1] != '\n', "%s", err.message); /* libpq's newline cut */
    ck_assert_str_eq(err.sqlstate, "");
    ck_assert_int_eq(bk_db_acquire(NULL, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_int_eq(bk_db_acquire_read(NULL, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_db_query(NULL, "SELECT 1", NULL, 0, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_db_tx(NULL, BK_DB_READ_COMMITTED, NULL, fails_invalid, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    bk_db_release(NULL);
    bk_db_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ options */
START_TEST(opts_init_clears_garbage)
{
    bk_db_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_db_opts_init(&o);
    ck_assert_ptr_null(o.read_conninfo);
    ck_assert_uint_eq(o.min_conns, 1);
    ck_assert_uint_eq(o.max_conns, 10);
    ck_assert_int_eq(o.acquire_timeout_ns, 5 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.connect_timeout_ns, 5 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.max_lifetime_ns, 30 * 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.idle_timeout_ns, 10 * 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.statement_timeout_ns, 0);
    ck_assert_str_eq(o.application_name, "libbackend");
    ck_assert_ptr_null(o.metrics);
    ck_assert_str_eq(o.name, "default");
    ck_assert_ptr_null(o.clock);
    ck_assert(!o.transaction_pooling);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
}
END_TEST

/* current_setting(name) on c, as a new string. Under a statement_timeout of a
 * millisecond even this query can be cut short on a loaded machine (valgrind, a
 * shared CI host): a timeout is tried again, the answer is still asserted. */
static char *setting(bk_db_conn_t *c, const char *name)
{
    bk_db_param_t p[] = {BK_DB_TEXT(name)};
    bk_db_result_t *r;
    int rc = BK_ETIMEDOUT;
    for (int i = 0; i < 100 && rc == BK_ETIMEDOUT; i++)
        rc = bk_db_query(c, "SELECT current_setting($1)", p, 1, &r, NULL);
    ck_assert_int_eq(rc, BK_OK);
    char *v = strdup(bk_db_value(r, 0, 0));
    bk_db_result_free(r);
    return v;
}

#define ck_setting(c, name, want)                                                                                  \
    do {                                                                                                           \
        char *v_ = setting((c), (name));                                                                           \
        ck_assert_str_eq(v_, (want));                                                                              \
        free(v_);                                                                                                  \
    } while (0)

/* ------------------------------------------------------------------ transaction pooling */
static int settings_in_tx(bk_db_conn_t *c, void *ud)
{
    (void)ud;
    ck_setting(c, "statement_timeout", "250ms");
    ck_setting(c, "TimeZone", "UTC");
    bk_error_t err;
    int rc = bk_db_query(c, "SELECT pg_sleep(5)", NULL, 0, NULL, &err);
    ck_assert_int_eq(rc, BK_ETIMEDOUT);
    return BK_OK; /* the failed query is reported, not committed */
}

/* transaction_pooling, in every run: on the server itself here, through
 * PgBouncer in tests/db/pgbouncer.sh's. No prepared statement is left on the
 * session; the session settings hold in queries on their own, in bk_db_tx and
 * in a transaction begun by hand, and so does the replica pool's read-only;
 * session locks and listeners are refused. */
START_TEST(transaction_pooling_keeps_settings_per_transaction)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.transaction_pooling = true;
    o.statement_timeout_ns = 250 * BK_NSEC_PER_MSEC;
    o.read_conninfo = dsn();
    bk_db_t *db;
    bk_error_t err;
    ck_assert_msg(bk_db_new(dsn(), &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    for (int i = 0; i < 3; i++)
        ck_setting(c, "statement_timeout", "250ms");
    ck_setting(c, "TimeZone", "UTC");
    ck_setting(c, "DateStyle", "ISO, YMD");
    ck_setting(c, "application_name", "libbackend");
    ck_setting(c, "transaction_read_only", "off");
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT count(*) FROM pg_prepared_statements", NULL, 0, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "0");
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "SELECT '2026-01-02 03:04:05+02'::timestamptz AS t", NULL, 0, &r, NULL), BK_OK);
    json_t *rows = bk_db_result_json(r, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "t")), "2026-01-02T01:04:05Z");
    json_decref(rows);
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_sleep(5)", NULL, 0, NULL, &err), BK_ETIMEDOUT);
    ck_assert_str_eq(err.sqlstate, "57014");
    /* A transaction begun by hand, as the sagas' reads are: the settings come with its BEGIN. */
    exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    ck_setting(c, "statement_timeout", "250ms");
    ck_setting(c, "transaction_isolation", "repeatable read");
    exec_ok(c, "COMMIT");
    ck_assert_int_eq(bk_db_advisory_lock(c, 77, false, &err), BK_EINVAL);
    bk_db_release(c);
    ck_assert_int_eq(bk_db_tx(db, BK_DB_SERIALIZABLE, NULL, settings_in_tx, NULL, &err), BK_EIO);

    /* The replica pool: read-only per transaction. */
    ck_assert_int_eq(bk_db_acquire_read(db, &c, NULL), BK_OK);
    ck_setting(c, "transaction_read_only", "on");
    ck_setting(c, "statement_timeout", "250ms");
    ck_assert_int_eq(bk_db_query(c, "CREATE TEMP TABLE t (x int)", NULL, 0, NULL, &err), BK_EIO);
    ck_assert_str_eq(err.sqlstate, "25006"); /* read_only_sql_transaction */
    bk_db_release(c);

    const char *ch = "pooled";
    bk_db_listener_t *l;
    ck_assert_int_eq(bk_db_listener_new(db, &ch, 1, NULL, &l, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "LISTEN"));
    ck_assert_ptr_null(l);
    bk_db_free(db);
}
END_TEST

/* Through PgBouncer without transaction_pooling: the pooler refuses the
 * connection's options, and the error says what to set. */
START_TEST(a_pooler_without_transaction_pooling_says_why)
{
    bk_db_t *db;
    bk_error_t err;
    ck_assert_int_eq(bk_db_new(dsn(), NULL, &db, &err), BK_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(err.message, "unsupported startup parameter"));
    ck_assert_ptr_nonnull(strstr(err.message, "transaction_pooling"));
}
END_TEST

/* sql fails on c with sqlstate and a message naming transaction_pooling; c is
 * released, and the pool's next connection is another session: *c and *pid
 * become its. */
static void ck_statement_lost(bk_db_t *db, bk_db_conn_t **c, char **pid, const char *sql, const char *sqlstate)
{
    bk_error_t err;
    ck_assert_int_eq(bk_db_query(*c, sql, NULL, 0, NULL, &err), BK_EIO);
    ck_assert_str_eq(err.sqlstate, sqlstate);
    ck_assert_ptr_nonnull(strstr(err.message, "transaction_pooling"));
    bk_db_release(*c);
    ck_assert_int_eq(bk_db_acquire(db, c, NULL), BK_OK);
    char *next = backend_pid(*c);
    ck_assert_str_ne(next, *pid); /* a new session, its statements prepared afresh */
    free(*pid);
    *pid = next;
}

/* A prepared statement the session lost (as through a pooler that lets the
 * options by: ignore_startup_parameters = options) is an error that says what
 * to set, and the connection is not kept. */
START_TEST(a_lost_prepared_statement_says_why)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.max_conns = 1;
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(bkt_pg_server_dsn(), &o, &db, NULL), BK_OK);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    char *pid = backend_pid(c); /* prepared as bk_0 */
    /* A name the session lost (26000), where the statement is executed. */
    ck_assert_int_eq(bk_db_query(c, "DEALLOCATE ALL", NULL, 0, NULL, NULL), BK_OK);
    ck_statement_lost(db, &c, &pid, "SELECT pg_backend_pid()", "26000");
    /* A name the session holds already (a server connection another client
     * prepared on: 42P05), where the statement is prepared. */
    ck_assert_int_eq(bk_db_query(c, "PREPARE bk_2 AS SELECT 1", NULL, 0, NULL, NULL), BK_OK); /* as bk_1 */
    ck_statement_lost(db, &c, &pid, "SELECT 3", "42P05");
    bk_db_release(c);
    free(pid);
    bk_db_free(db);
}
END_TEST

START_TEST(null_options_are_the_defaults)
{
    /* The defaults are for a server, not a pooler: straight to it in every run. */
    bk_db_t *db;
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_new(bkt_pg_server_dsn(), NULL, &db, &err), BK_OK);
    ck_err_clear(&err);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, &err), BK_OK);
    ck_setting(c, "application_name", "libbackend");
    ck_setting(c, "TimeZone", "UTC");
    ck_setting(c, "statement_timeout", "0"); /* the server's */
    bk_db_release(c);
    bk_db_free(db);

    /* A struct cleared by other means: zero max_conns and connect_timeout_ns mean
     * their defaults, NULL names too. */
    bk_db_opts_t o;
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(bk_db_new(bkt_pg_server_dsn(), &o, &db, &err), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &c, &err), BK_OK);
    ck_setting(c, "application_name", "libbackend");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(statement_timeout_rounds_up_to_milliseconds)
{
    const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {1, "1ms"},                       /* not 0, which would mean none */
        {BK_NSEC_PER_MSEC + 1, "2ms"},    /* up, never down */
        {1500 * BK_NSEC_PER_MSEC, "1500ms"},
        {3 * BK_NSEC_PER_SEC, "3s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_db_opts_t o;
        bkt_db_opts_init(&o);
        o.statement_timeout_ns = cases[i].ns;
        o.min_conns = 0;
        o.max_conns = 1;
        bk_db_t *db;
        ck_assert_int_eq(bk_db_new(dsn(), &o, &db, NULL), BK_OK);
        bk_db_conn_t *c;
        ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
        ck_setting(c, "statement_timeout", cases[i].want);
        bk_db_release(c);
        bk_db_free(db);
    }
}
END_TEST

/* ------------------------------------------------------------------ error detail */
START_TEST(acquire_reports_the_connect_failure)
{
    /* min_conns 0: the pool opens nothing until asked. */
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.min_conns = 0;
    o.connect_timeout_ns = 2 * BK_NSEC_PER_SEC;
    o.read_conninfo = "host=/nonexistent-replica port=1 dbname=x";
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new("host=/nonexistent-primary port=1 dbname=x", &o, &db, NULL), BK_OK);
    bk_db_conn_t *c;
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_acquire(db, &c, &err), BK_EUNAVAIL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_msg(strstr(err.message, "/nonexistent-primary") != NULL, "%s", err.message);
    /* Replica and primary down: the primary's failure, the last one tried. */
    err = dirty();
    ck_assert_int_eq(bk_db_acquire_read(db, &c, &err), BK_EUNAVAIL);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_msg(strstr(err.message, "/nonexistent-primary") != NULL, "%s", err.message);
    bk_db_free(db);
}
END_TEST

/* Through a pooler in transaction mode: transaction locks only, held by the
 * transaction's server connection until it ends. */
static void advisory_lock_through_a_pooler(bk_db_t *db, bk_db_conn_t *a, bk_db_conn_t *b)
{
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_advisory_lock(a, 4343, false, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "transaction lock"));
    ck_assert_str_eq(err.sqlstate, "");
    exec_ok(a, "BEGIN");
    ck_assert_int_eq(bk_db_advisory_lock(a, 4343, true, &err), BK_OK);
    exec_ok(b, "BEGIN");
    exec_ok(b, "SET LOCAL statement_timeout = 20");
    ck_assert_int_eq(bk_db_advisory_lock(b, 4343, true, &err), BK_ETIMEDOUT); /* held by a's transaction */
    ck_assert_str_eq(err.sqlstate, "57014");
    exec_ok(b, "ROLLBACK");
    exec_ok(a, "COMMIT"); /* the lock ends with it */
    exec_ok(b, "BEGIN");
    ck_assert_int_eq(bk_db_advisory_lock(b, 4343, true, &err), BK_OK);
    exec_ok(b, "COMMIT");
    bk_db_release(a);
    bk_db_release(b);
    bk_db_free(db);
}

START_TEST(advisory_lock_reports_the_server)
{
    bk_db_t *db = pool(2, BK_NSEC_PER_SEC);
    bk_db_conn_t *a, *b;
    ck_assert_int_eq(bk_db_acquire(db, &a, NULL), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &b, NULL), BK_OK);
    if (bkt_pg_pooled()) {
        advisory_lock_through_a_pooler(db, a, b);
        return;
    }
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_advisory_lock(a, 4343, false, &err), BK_OK);
    ck_err_clear(&err);
    exec_ok(b, "SET statement_timeout = 20");
    ck_assert_int_eq(bk_db_advisory_lock(b, 4343, false, &err), BK_ETIMEDOUT); /* held by a */
    ck_assert_int_eq(err.code, BK_ETIMEDOUT);
    ck_assert_str_eq(err.sqlstate, "57014");
    ck_assert_str_ne(err.message, "");
    exec_ok(b, "SET statement_timeout = 0");
    ck_assert_int_eq(bk_db_advisory_unlock(a, 4343, &err), BK_OK);
    ck_err_clear(&err);
    ck_assert_int_eq(bk_db_advisory_lock(b, 4343, true, &err), BK_OK); /* free now */
    bk_db_release(a);
    bk_db_release(b);
    bk_db_free(db);
}
END_TEST

/* A deferred constraint is checked at COMMIT: the body's queries all succeed. */
static int insert_twice(bk_db_conn_t *c, void *ud)
{
    const char *sql = ud;
    bk_error_t err;
    int rc = bk_db_query(c, sql, NULL, 0, NULL, &err);
    if (rc == BK_OK)
        rc = bk_db_query(c, sql, NULL, 0, NULL, &err);
    return rc;
}

START_TEST(failed_commit_reports_its_sqlstate)
{
    bk_db_t *db = pool(2, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_child, t_parent, t_def");
    exec_ok(c, "CREATE TABLE t_def (id int, CONSTRAINT t_def_id_key UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)");
    exec_ok(c, "CREATE TABLE t_parent (id int PRIMARY KEY)");
    exec_ok(c, "CREATE TABLE t_child (parent int, CONSTRAINT t_child_parent_fkey FOREIGN KEY (parent) "
               "REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)");

    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, insert_twice, "INSERT INTO t_def VALUES (1)", &err),
                     BK_ECONFLICT);
    ck_assert_int_eq(err.code, BK_ECONFLICT);
    ck_assert_str_eq(err.sqlstate, "23505");
    ck_assert_str_eq(err.constraint, "t_def_id_key");
    ck_assert_str_eq(err.detail, "Key (id)=(1) already exists.");
    ck_assert_msg(strstr(err.message, "t_def_id_key") != NULL, "%s", err.message);

    err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, insert_twice, "INSERT INTO t_child VALUES (7)", &err),
                     BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_str_eq(err.sqlstate, "23503");
    ck_assert_str_eq(err.constraint, "t_child_parent_fkey");

    /* Rolled back, both times; and a transaction that commits clears err. */
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT (SELECT count(*) FROM t_def) + (SELECT count(*) FROM t_child)", NULL, 0,
                                 &r, NULL),
                     BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "0");
    bk_db_result_free(r);
    err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, insert_twice, "INSERT INTO t_child VALUES (NULL)", &err),
                     BK_OK);
    ck_err_clear(&err);
    exec_ok(c, "DROP TABLE t_child, t_parent, t_def");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

struct body {
    const char *sql;
    int returns; /* 0: the query's code */
    bool savepoint; /* the failure is rolled back to a savepoint before fn fails */
};

/* Runs sql (which fails) with an err of its own, then fails the transaction. */
static int failing_query(bk_db_conn_t *c, void *ud)
{
    const struct body *b = ud;
    bk_error_t mine;
    if (b->savepoint && bk_db_query(c, "SAVEPOINT s", NULL, 0, NULL, NULL) != BK_OK)
        return BK_EIO;
    int rc = bk_db_query(c, b->sql, NULL, 0, NULL, &mine);
    ck_assert_int_ne(rc, BK_OK);
    ck_assert_int_eq(mine.code, rc); /* fn's own err has it too */
    if (b->savepoint && bk_db_query(c, "ROLLBACK TO SAVEPOINT s", NULL, 0, NULL, NULL) != BK_OK)
        return BK_EIO;
    return b->returns ? b->returns : rc;
}

START_TEST(failed_query_in_body_reaches_the_tx_err)
{
    bk_db_t *db = pool(2, BK_NSEC_PER_SEC);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_body");
    exec_ok(c, "CREATE TABLE t_body (id int CONSTRAINT t_body_pkey PRIMARY KEY)");
    exec_ok(c, "INSERT INTO t_body VALUES (1)");

    /* The query's code and detail. */
    struct body dup = {"INSERT INTO t_body VALUES (1)", 0, false};
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_SERIALIZABLE, NULL, failing_query, &dup, &err), BK_ECONFLICT);
    ck_assert_int_eq(err.code, BK_ECONFLICT);
    ck_assert_str_eq(err.sqlstate, "23505");
    ck_assert_str_eq(err.constraint, "t_body_pkey");
    ck_assert_str_eq(err.detail, "Key (id)=(1) already exists.");
    ck_assert_str_eq(err.message, "duplicate key value violates unique constraint \"t_body_pkey\"");

    /* fn turns the code into another: err->code is what bk_db_tx returns, the
     * detail still the query's. */
    struct body mapped = {"INSERT INTO t_body VALUES (1)", BK_EEXIST, false};
    err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, failing_query, &mapped, &err), BK_EEXIST);
    ck_assert_int_eq(err.code, BK_EEXIST);
    ck_assert_str_eq(err.sqlstate, "23505");

    /* A syntax error. */
    struct body syntax = {"SELEC 1", 0, false};
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, failing_query, &syntax, &err), BK_EIO);
    ck_assert_str_eq(err.sqlstate, "42601");

    /* A failure fn recovered from (ROLLBACK TO SAVEPOINT succeeded after it) is
     * not the one that ended the transaction. */
    struct body recovered = {"INSERT INTO t_body VALUES (1)", BK_ENOTFOUND, true};
    err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, failing_query, &recovered, &err), BK_ENOTFOUND);
    ck_assert_int_eq(err.code, BK_ENOTFOUND);
    ck_assert_str_eq(err.sqlstate, "");
    ck_assert_str_eq(err.message, "the transaction's function returned BK_ENOTFOUND");
    exec_ok(c, "DROP TABLE t_body");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

/* Ignores the failure of its query and returns BK_OK. */
static int ignores_failure(bk_db_conn_t *c, void *ud)
{
    (void)ud;
    bk_db_query(c, "SELECT 1/0", NULL, 0, NULL, NULL);
    return BK_OK;
}

START_TEST(ignored_failure_is_reported_not_committed)
{
    bk_db_t *db = pool(1, BK_NSEC_PER_SEC);
    bk_error_t err = dirty();
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, ignores_failure, NULL, &err), BK_EIO);
    ck_assert_int_eq(err.code, BK_EIO);
    ck_assert_str_eq(err.sqlstate, "22012"); /* division by zero */
    bk_db_free(db);
}
END_TEST

static Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("db");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exhaustion_times_out_and_release_frees);
    tcase_add_test(tc, acquire_deadline_runs_on_the_fake_clock);
    tcase_add_test(tc, killed_backend_is_replaced_on_acquire);
    /* The two on the harness's second cluster run straight to it in the plain
     * run only: they would go nowhere near the pooler, and a second run
     * restarting the cluster would cut the first one's connections. */
    if (!bkt_pg_pooled())
        tcase_add_test(tc, multi_host_conninfo_skips_a_server_down);
    tcase_add_test(tc, errors_map_to_codes);
    tcase_add_test(tc, parameters_are_never_sql);
    tcase_add_test(tc, release_rolls_back_an_open_transaction);
    tcase_add_test(tc, serialization_failures_are_retried);
    tcase_add_test(tc, failed_body_rolls_back_without_retry);
    tcase_add_test(tc, tx_backoff_sleeps_on_the_retry_clock);
    tcase_add_test(tc, idle_timeout_lifetime_and_metrics);
    if (!bkt_pg_pooled())
        tcase_add_test(tc, pool_recovers_after_server_restart);
    tcase_add_test(tc, reads_go_to_replicas_or_fall_back);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, opts_init_clears_garbage);
    tcase_add_test(tc, null_options_are_the_defaults);
    tcase_add_test(tc, statement_timeout_rounds_up_to_milliseconds);
    tcase_add_test(tc, acquire_reports_the_connect_failure);
    tcase_add_test(tc, advisory_lock_reports_the_server);
    tcase_add_test(tc, failed_commit_reports_its_sqlstate);
    tcase_add_test(tc, failed_query_in_body_reaches_the_tx_err);
    tcase_add_test(tc, ignored_failure_is_reported_not_committed);
    tcase_add_test(tc, transaction_pooling_keeps_settings_per_transaction);
    tcase_add_test(tc, a_lost_prepared_statement_says_why);
    if (bkt_pg_pooled())
        tcase_add_test(tc, a_pooler_without_transaction_pooling_says_why);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(db_suite());
}
