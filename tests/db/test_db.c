/* The PostgreSQL pool, queries and transactions against the private server the
 * harness starts (BK_TEST_PG_DSN): exhaustion and acquire timeouts, a killed
 * backend replaced on the next acquire, error mapping, parameters that are never
 * SQL, and SERIALIZABLE transactions that really are retried.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/db.h>
#include <backend/metrics.h>

#include "check_main.h"

static const char *dsn(void)
{
    const char *d = getenv("BK_TEST_PG_DSN");
    ck_assert_msg(d != NULL && *d, "BK_TEST_PG_DSN is not set: run under tests/harness/services.sh");
    return d;
}

static bk_db_t *pool(unsigned max, int64_t acquire_timeout_ms)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.conninfo = dsn();
    o.max_conns = max;
    o.acquire_timeout_ms = acquire_timeout_ms;
    bk_db_t *db;
    char err[256];
    ck_assert_msg(bk_db_new(&o, &db, err, sizeof err) == BK_OK, "bk_db_new: %s", err);
    return db;
}

static void exec_ok(bk_db_conn_t *c, const char *sql)
{
    int rc = bk_db_query(c, sql, NULL, 0, NULL);
    ck_assert_msg(rc == BK_OK, "%s: %s (%s)", sql, bk_err_name(rc), bk_db_error(c)->message);
}

START_TEST(exhaustion_times_out_and_release_frees)
{
    bk_db_t *db = pool(2, 50);
    bk_db_conn_t *a, *b, *c;
    ck_assert_int_eq(bk_db_acquire(db, &a), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &b), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_ETIMEDOUT);
    ck_assert_ptr_null(c);
    bk_db_release(a);
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    ck_assert_ptr_eq(c, a); /* the same connection, reused */
    bk_db_release(b);
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(killed_backend_is_replaced_on_acquire)
{
    bk_db_t *db = pool(1, 1000);
    bk_db_conn_t *c, *admin;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r), BK_OK);
    char pid[16];
    snprintf(pid, sizeof pid, "%s", bk_db_value(r, 0, 0));
    bk_db_result_free(r);
    bk_db_release(c);

    /* Kill the idle pooled connection from another pool's connection. */
    bk_db_t *other = pool(1, 1000);
    ck_assert_int_eq(bk_db_acquire(other, &admin), BK_OK);
    bk_db_param_t p[] = {BK_DB_TEXT(pid)};
    ck_assert_int_eq(bk_db_query(admin, "SELECT pg_terminate_backend($1::int)", p, 1, &r), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "t");
    bk_db_result_free(r);
    /* Wait until the backend is really gone (the server's exit is asynchronous). */
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(bk_db_query(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", p, 1, &r),
                         BK_OK);
        bool gone = strcmp(bk_db_value(r, 0, 0), "0") == 0;
        bk_db_result_free(r);
        if (gone)
            break;
    }
    bk_db_release(admin);
    bk_db_free(other);

    /* The next acquire hands out a working connection, not the dead one. */
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r), BK_OK);
    ck_assert_str_ne(bk_db_value(r, 0, 0), pid);
    bk_db_result_free(r);
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(errors_map_to_codes)
{
    bk_db_t *db = pool(1, 1000);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_users");
    exec_ok(c, "CREATE TABLE t_users (id serial PRIMARY KEY, email text NOT NULL CONSTRAINT t_users_email_key UNIQUE,"
               " age int CHECK (age >= 0))");
    bk_db_param_t p[] = {BK_DB_TEXT("a@example.com"), BK_DB_TEXT("30")};
    const char *ins = "INSERT INTO t_users (email, age) VALUES ($1, $2::int)";
    ck_assert_int_eq(bk_db_query(c, ins, p, 2, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, ins, p, 2, NULL), BK_ECONFLICT);
    const bk_db_error_t *e = bk_db_error(c);
    ck_assert_str_eq(e->sqlstate, "23505");
    ck_assert_str_eq(e->constraint, "t_users_email_key");
    ck_assert_ptr_nonnull(strstr(e->detail, "a@example.com"));

    bk_db_param_t neg[] = {BK_DB_TEXT("b@example.com"), BK_DB_TEXT("-1")};
    ck_assert_int_eq(bk_db_query(c, ins, neg, 2, NULL), BK_EINVAL); /* check violation */
    ck_assert_str_eq(bk_db_error(c)->sqlstate, "23514");
    bk_db_param_t bad[] = {BK_DB_TEXT("c@example.com"), BK_DB_TEXT("thirty")};
    ck_assert_int_eq(bk_db_query(c, ins, bad, 2, NULL), BK_EINVAL); /* invalid input (22P02) */
    ck_assert_int_eq(bk_db_query(c, "SELEC 1", NULL, 0, NULL), BK_EIO);
    ck_assert_str_eq(bk_db_error(c)->sqlstate, "42601");
    exec_ok(c, "SET statement_timeout = 10");
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_sleep(1)", NULL, 0, NULL), BK_ETIMEDOUT);
    exec_ok(c, "SET statement_timeout = 0");
    exec_ok(c, "DROP TABLE t_users");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(parameters_are_never_sql)
{
    bk_db_t *db = pool(1, 1000);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_notes");
    exec_ok(c, "CREATE TABLE t_notes (id int PRIMARY KEY, body text, blob bytea)");
    const char *evil = "x'); DROP TABLE t_notes; --";
    const unsigned char bytes[] = {0, 1, 2, 0xff, '\'', 0};
    bk_db_param_t p[] = {BK_DB_TEXT("1"), BK_DB_TEXT(evil), BK_DB_BYTES(bytes, sizeof bytes)};
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO t_notes VALUES ($1::int, $2, $3)", p, 3, NULL), BK_OK);
    bk_db_param_t q[] = {BK_DB_TEXT("2"), BK_DB_NULL, BK_DB_NULL};
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO t_notes VALUES ($1::int, $2, $3)", q, 3, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT body, blob, length(blob) FROM t_notes ORDER BY id", NULL, 0, &r), BK_OK);
    ck_assert_uint_eq(bk_db_rows(r), 2);
    ck_assert_uint_eq(bk_db_cols(r), 3);
    ck_assert_str_eq(bk_db_col_name(r, 0), "body");
    ck_assert_str_eq(bk_db_value(r, 0, 0), evil); /* stored literally */
    ck_assert_str_eq(bk_db_value(r, 0, 1), "\\x000102ff2700");
    ck_assert_str_eq(bk_db_value(r, 0, 2), "6");
    ck_assert_ptr_null(bk_db_value(r, 1, 0)); /* NULL */
    ck_assert_ptr_null(bk_db_value(r, 5, 0));
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "UPDATE t_notes SET body = 'y'", NULL, 0, &r), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 2);
    bk_db_result_free(r);
    exec_ok(c, "DROP TABLE t_notes");
    bk_db_release(c);
    bk_db_free(db);
}
END_TEST

START_TEST(release_rolls_back_an_open_transaction)
{
    bk_db_t *db = pool(1, 1000);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_tx");
    exec_ok(c, "CREATE TABLE t_tx (v int)");
    exec_ok(c, "BEGIN");
    exec_ok(c, "INSERT INTO t_tx VALUES (1)");
    bk_db_release(c); /* forgot to commit */
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT count(*) FROM t_tx", NULL, 0, &r), BK_OK);
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
    int rc = bk_db_query(c, "SELECT sum(v) FROM t_race", NULL, 0, &res);
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
    return bk_db_query(c, "UPDATE t_race SET v = v + $1::int WHERE id = $2::int", p, 2, NULL);
}

static void *run_race(void *arg)
{
    struct race *r = arg;
    return (void *)(intptr_t)bk_db_tx(r->db, BK_DB_SERIALIZABLE, NULL, sum_into_row, r);
}

START_TEST(serialization_failures_are_retried)
{
    bk_db_t *db = pool(4, 2000);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
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
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT sum(v) FROM t_race", NULL, 0, &r), BK_OK);
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
    bk_db_query(c, "INSERT INTO t_rb VALUES (1)", NULL, 0, NULL);
    return BK_EINVAL;
}

START_TEST(failed_body_rolls_back_without_retry)
{
    bk_db_t *db = pool(2, 1000);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK);
    exec_ok(c, "DROP TABLE IF EXISTS t_rb");
    exec_ok(c, "CREATE TABLE t_rb (v int)");
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, fails_invalid, NULL), BK_EINVAL);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT count(*) FROM t_rb", NULL, 0, &r), BK_OK);
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
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_backend_pid()", NULL, 0, &r), BK_OK);
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
    bk_db_opts_init(&o);
    o.conninfo = dsn();
    o.min_conns = 1;
    o.max_conns = 3;
    o.idle_timeout_ms = 10000;
    o.max_lifetime_ms = 60000;
    o.clock = clock;
    o.metrics = m;
    o.name = "t";
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(&o, &db, NULL, 0), BK_OK);
    bk_db_conn_t *c[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bk_db_acquire(db, &c[i]), BK_OK);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"busy\"} 3"));
    char *first = backend_pid(c[0]);
    for (int i = 0; i < 3; i++)
        bk_db_release(c[i]);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"idle\"} 3"));
    ck_assert(rendered(m, "db_queries_total{pool=\"t\",outcome=\"ok\"} 1"));

    /* Idle past idle_timeout_ms: closed down to min_conns on the next acquire. */
    bk_clock_fake_advance(clock, 11 * BK_NSEC_PER_SEC);
    bk_db_conn_t *a;
    ck_assert_int_eq(bk_db_acquire(db, &a), BK_OK);
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"busy\"} 1"));
    ck_assert(rendered(m, "db_pool_connections{pool=\"t\",state=\"idle\"} 0"));
    bk_db_release(a);

    /* Past max_lifetime_ms: replaced by a new connection (a new server process). */
    bk_clock_fake_advance(clock, 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(bk_db_acquire(db, &a), BK_OK);
    char *later = backend_pid(a);
    ck_assert_str_ne(later, first);
    /* A session advisory lock does not outlive the release. */
    ck_assert_int_eq(bk_db_advisory_lock(a, 4242, false), BK_OK);
    bk_db_release(a);
    bk_db_t *other = pool(1, 1000);
    bk_db_conn_t *b;
    ck_assert_int_eq(bk_db_acquire(other, &b), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(b, "SELECT pg_try_advisory_lock(4242)", NULL, 0, &r), BK_OK);
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
    int rc = bk_db_query(c, "SELECT 41 + 1", NULL, 0, &r);
    ck_assert_msg(rc == BK_OK, "%s: %s", bk_err_name(rc), bk_db_error(c)->message);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "42");
    bk_db_result_free(r);
}

START_TEST(pool_recovers_after_server_restart)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.conninfo = env("BK_TEST_PG_RESTART_DSN");
    o.min_conns = 2;
    o.max_conns = 3;
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(&o, &db, NULL, 0), BK_OK);
    bk_db_conn_t *a, *b, *held;
    ck_assert_int_eq(bk_db_acquire(db, &held), BK_OK);
    expect_select(held);

    /* The server goes away and comes back while two connections sit idle and one
     * is held by a caller. */
    ck_assert_int_eq(system(env("BK_TEST_PG_RESTART")), 0);

    /* The held one fails once, as a lost connection, and is not pooled again. */
    ck_assert_int_eq(bk_db_query(held, "SELECT 1", NULL, 0, NULL), BK_EUNAVAIL);
    bk_db_release(held);
    /* The idle ones are found dead and replaced: every acquire works. */
    ck_assert_int_eq(bk_db_acquire(db, &a), BK_OK);
    ck_assert_int_eq(bk_db_acquire(db, &b), BK_OK);
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
    bk_db_opts_init(&o);
    o.conninfo = dsn();
    o.read_conninfo = dsn(); /* the same server stands in for a replica */
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(&o, &db, NULL, 0), BK_OK);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire_read(db, &c), BK_OK);
    expect_select(c);
    /* A replica session refuses writes (25006), instead of taking them. */
    ck_assert_int_eq(bk_db_query(c, "CREATE TEMP TABLE t_w (v int)", NULL, 0, NULL), BK_EIO);
    ck_assert_str_eq(bk_db_error(c)->sqlstate, "25006");
    bk_db_release(c);
    ck_assert_int_eq(bk_db_acquire(db, &c), BK_OK); /* the primary still writes */
    exec_ok(c, "CREATE TEMP TABLE t_w (v int)");
    bk_db_release(c);
    bk_db_free(db);

    /* No replica reachable: reads are served by the primary. */
    o.read_conninfo = "host=/nonexistent port=1 dbname=x";
    o.connect_timeout_ms = 2000;
    ck_assert_int_eq(bk_db_new(&o, &db, NULL, 0), BK_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(bk_db_acquire_read(db, &c), BK_OK);
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
    bk_db_opts_init(&o);
    bk_db_t *db;
    ck_assert_int_eq(bk_db_new(&o, &db, NULL, 0), BK_EINVAL); /* no conninfo */
    o.conninfo = "host=/nonexistent port=1 dbname=x";
    o.connect_timeout_ms = 2000;
    char err[256];
    ck_assert_int_eq(bk_db_new(&o, &db, err, sizeof err), BK_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent"));
    ck_assert_int_eq(bk_db_acquire(NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_db_query(NULL, "SELECT 1", NULL, 0, NULL), BK_EINVAL);
    bk_db_release(NULL);
    bk_db_free(NULL);
}
END_TEST

static Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("db");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exhaustion_times_out_and_release_frees);
    tcase_add_test(tc, killed_backend_is_replaced_on_acquire);
    tcase_add_test(tc, errors_map_to_codes);
    tcase_add_test(tc, parameters_are_never_sql);
    tcase_add_test(tc, release_rolls_back_an_open_transaction);
    tcase_add_test(tc, serialization_failures_are_retried);
    tcase_add_test(tc, failed_body_rolls_back_without_retry);
    tcase_add_test(tc, idle_timeout_lifetime_and_metrics);
    tcase_add_test(tc, pool_recovers_after_server_restart);
    tcase_add_test(tc, reads_go_to_replicas_or_fall_back);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(db_suite());
}
