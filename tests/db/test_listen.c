/* The LISTEN/NOTIFY listener against the harness's PostgreSQL (BK_TEST_PG_DSN):
 * notifications with their channel and payload, the timeout, a wake from another
 * thread, several channels, rolled-back and duplicate NOTIFYs, and a backend
 * killed under the listener (a reset, then notifications again). The only waits
 * are the listener's own, each bounded by a generous timeout.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/db.h>

#include "check_main.h"
#include "pg_test.h"

#define LONG_NS (10 * BK_NSEC_PER_SEC) /* far longer than anything should take */

static const char *dsn(void)
{
    return bkt_pg_server_dsn();
}

static bk_db_t *pool_on(const char *conninfo, bk_clock_t *clock)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.min_conns = 0;
    o.clock = clock;
    bk_db_t *db;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    return db;
}

static bk_db_listener_t *listener(bk_db_t *db, const char *const *channels, size_t n)
{
    bk_db_listener_t *l;
    bk_error_t err;
    int rc = bk_db_listener_new(db, channels, n, NULL, &l, &err);
    ck_assert_msg(rc == BK_OK, "bk_db_listener_new: %s (%s)", bk_err_name(rc), err.message);
    return l;
}

static void exec_ok(bk_db_t *db, const char *sql)
{
    bk_db_conn_t *c;
    bk_error_t err;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    int rc = bk_db_query(c, sql, NULL, 0, NULL, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s (%s)", sql, bk_err_name(rc), err.message);
    bk_db_release(c);
}

/* pg_notify from a pooled connection (a session of its own, committed at once);
 * returns that session's pid. */
static int notify(bk_db_t *db, const char *channel, const char *payload)
{
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_param_t p[] = {BK_DB_TEXT(channel), BK_DB_TEXT(payload)};
    bk_db_result_t *r;
    bk_error_t err;
    int rc = bk_db_query(c, "SELECT pg_notify($1, $2), pg_backend_pid()", p, 2, &r, &err);
    ck_assert_msg(rc == BK_OK, "pg_notify: %s", err.message);
    int pid = atoi(bk_db_value(r, 0, 1));
    bk_db_result_free(r);
    bk_db_release(c);
    return pid;
}

/* The next event, which must be a notification on channel with payload. */
static void expect_note(bk_db_listener_t *l, const char *channel, const char *payload)
{
    bk_db_notification_t *n;
    bk_error_t err;
    int rc = bk_db_listener_wait(l, LONG_NS, &n, &err);
    ck_assert_msg(rc == BK_OK, "wait for %s/%s: %s (%s)", channel, payload, bk_err_name(rc), err.message);
    ck_assert(!n->reset);
    ck_assert_str_eq(n->channel, channel);
    ck_assert_str_eq(n->payload, payload);
    bk_db_notification_free(n);
}

static void expect_nothing(bk_db_listener_t *l)
{
    bk_db_notification_t *n = (void *)1;
    bk_error_t err;
    ck_assert_int_eq(bk_db_listener_wait(l, 50 * BK_NSEC_PER_MSEC, &n, &err), BK_ETIMEDOUT);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(err.code, BK_ETIMEDOUT);
}

START_TEST(notify_is_received_with_channel_and_payload)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_a"}, 1);
    int pid = notify(db, "lst_a", "hello");
    bk_db_notification_t *n;
    bk_error_t err;
    ck_assert_int_eq(bk_db_listener_wait(l, LONG_NS, &n, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(n->channel, "lst_a");
    ck_assert_str_eq(n->payload, "hello");
    ck_assert_int_eq(n->sender_pid, pid);
    ck_assert(!n->reset);
    bk_db_notification_free(n);
    /* No payload is "", and the listener's pid is not the sender's. */
    exec_ok(db, "NOTIFY lst_a");
    expect_note(l, "lst_a", "");
    ck_assert_int_ne(bk_db_listener_backend_pid(l), 0);
    ck_assert_int_ne(bk_db_listener_backend_pid(l), pid);
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

START_TEST(timeout_returns_etimedout_and_nothing)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_t"}, 1);
    int64_t t0 = bk_clock_mono_ns(NULL);
    expect_nothing(l);
    ck_assert_int_ge(bk_clock_mono_ns(NULL) - t0, 50 * BK_NSEC_PER_MSEC); /* not before its time */
    bk_db_notification_t *n = (void *)1;
    ck_assert_int_eq(bk_db_listener_wait(l, 0, &n, NULL), BK_ETIMEDOUT); /* 0: a look, no wait */
    ck_assert_ptr_null(n);
    /* What came before the wait began is there at once, even with timeout 0. */
    notify(db, "lst_t", "early");
    expect_note(l, "lst_t", "early");
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

struct waiter {
    bk_db_listener_t *l;
    int rc;
    int64_t took_ns;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    bk_db_notification_t *n;
    int64_t t0 = bk_clock_mono_ns(NULL);
    w->rc = bk_db_listener_wait(w->l, 60 * BK_NSEC_PER_SEC, &n, NULL);
    w->took_ns = bk_clock_mono_ns(NULL) - t0;
    bk_db_notification_free(n);
    return NULL;
}

START_TEST(wake_from_another_thread_ends_a_wait)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_w"}, 1);
    struct waiter w = {.l = l};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
    /* Whether the wake comes before the wait begins or during it, the wait ends
     * with BK_ECANCELED, long before its 60 s. */
    bk_db_listener_wake(l);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, BK_ECANCELED);
    ck_assert_int_lt(w.took_ns, 30 * BK_NSEC_PER_SEC);
    /* Drained: the next wait waits again. Several wakes count as one. */
    expect_nothing(l);
    bk_db_listener_wake(l);
    bk_db_listener_wake(l);
    bk_db_notification_t *n = (void *)1;
    bk_error_t err;
    ck_assert_int_eq(bk_db_listener_wait(l, LONG_NS, &n, &err), BK_ECANCELED);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(err.code, BK_ECANCELED);
    expect_nothing(l);
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

START_TEST(two_channels_and_only_those)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_x", "lst_y"}, 2);
    notify(db, "lst_y", "1");
    notify(db, "lst_z", "not listened");
    notify(db, "lst_x", "2");
    expect_note(l, "lst_y", "1");
    expect_note(l, "lst_x", "2");
    expect_nothing(l);
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

START_TEST(names_are_quoted_not_sql)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    const char *odd = "Mixed Case\"; DROP TABLE x; --";
    bk_db_listener_t *l = listener(db, (const char *[]){odd}, 1);
    notify(db, odd, "ok");
    expect_note(l, odd, "ok");
    notify(db, "mixed case\"; drop table x; --", "folded"); /* another channel: names are exact */
    expect_nothing(l);
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

START_TEST(rolled_back_never_and_duplicates_once)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_r"}, 1);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "BEGIN", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "NOTIFY lst_r, 'rolled back'", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "ROLLBACK", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "BEGIN", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "NOTIFY lst_r, 'dup'", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "NOTIFY lst_r, 'dup'", NULL, 0, NULL, NULL), BK_OK);
    /* Not delivered before the commit. */
    expect_nothing(l);
    ck_assert_int_eq(bk_db_query(c, "COMMIT", NULL, 0, NULL, NULL), BK_OK);
    bk_db_release(c);
    notify(db, "lst_r", "end");
    /* Notifications keep their order: the rolled-back one would have come first. */
    expect_note(l, "lst_r", "dup");
    expect_note(l, "lst_r", "end");
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

/* Kills the backend pid from a session of db's and waits until it is gone. */
static void terminate(bk_db_t *db, int pid)
{
    char s[16];
    snprintf(s, sizeof s, "%d", pid);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_param_t p[] = {BK_DB_TEXT(s)};
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT pg_terminate_backend($1::int)", p, 1, &r, NULL), BK_OK);
    ck_assert_str_eq(bk_db_value(r, 0, 0), "t");
    bk_db_result_free(r);
    bk_db_release(c);
}

START_TEST(killed_backend_is_a_reset_then_listens_again)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = listener(db, (const char *[]){"lst_k1", "lst_k2"}, 2);
    int before = bk_db_listener_backend_pid(l);
    terminate(db, before);
    bk_db_notification_t *n;
    bk_error_t err;
    int rc = bk_db_listener_wait(l, LONG_NS, &n, &err);
    ck_assert_msg(rc == BK_OK, "%s (%s)", bk_err_name(rc), err.message);
    ck_assert(n->reset);
    ck_assert_str_eq(n->channel, "");
    ck_assert_str_eq(n->payload, "");
    bk_db_notification_free(n);
    int after = bk_db_listener_backend_pid(l);
    ck_assert_int_ne(after, 0);
    ck_assert_int_ne(after, before);
    /* Every channel is LISTENed again. */
    notify(db, "lst_k2", "again");
    notify(db, "lst_k1", "again");
    expect_note(l, "lst_k2", "again");
    expect_note(l, "lst_k1", "again");
    bk_db_listener_free(l);
    bk_db_free(db);
}
END_TEST

/* A listener whose database refuses connections for a while: the reconnect
 * backoff sleeps on the db's fake clock (no real sleep), the wait reports
 * BK_EUNAVAIL, and the next one, once connections are allowed, the reset. */
START_TEST(reconnect_backs_off_on_the_db_clock)
{
    bk_db_t *admin = pool_on(dsn(), NULL);
    exec_ok(admin, "DROP DATABASE IF EXISTS bk_listen_test");
    exec_ok(admin, "CREATE DATABASE bk_listen_test");
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s dbname=bk_listen_test", dsn());
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(0, &clock), BK_OK);
    bk_db_t *db = pool_on(conninfo, clock);
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.max_attempts = 3;
    ro.base_ns = ro.cap_ns = BK_NSEC_PER_SEC;
    ro.jitter = BK_JITTER_NONE;
    bk_db_listener_opts_t lo;
    bk_db_listener_opts_init(&lo);
    lo.reconnect = &ro;
    bk_db_listener_t *l;
    ck_assert_int_eq(bk_db_listener_new(db, (const char *[]){"lst_b"}, 1, &lo, &l, NULL), BK_OK);

    exec_ok(admin, "ALTER DATABASE bk_listen_test ALLOW_CONNECTIONS false");
    terminate(admin, bk_db_listener_backend_pid(l));
    bk_db_notification_t *n = (void *)1;
    bk_error_t err;
    ck_assert_int_eq(bk_db_listener_wait(l, LONG_NS, &n, &err), BK_EUNAVAIL);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_msg(strstr(err.message, "bk_listen_test") != NULL, "%s", err.message);
    ck_assert_int_eq(bk_clock_mono_ns(clock), 2 * BK_NSEC_PER_SEC); /* 3 attempts, 2 sleeps of 1 s */
    ck_assert_int_eq(bk_db_listener_backend_pid(l), 0);

    exec_ok(admin, "ALTER DATABASE bk_listen_test ALLOW_CONNECTIONS true");
    ck_assert_int_eq(bk_db_listener_wait(l, LONG_NS, &n, &err), BK_OK);
    ck_assert(n->reset);
    bk_db_notification_free(n);
    notify(db, "lst_b", "back");
    expect_note(l, "lst_b", "back");
    bk_db_listener_free(l);
    bk_db_free(db);
    bk_clock_free(clock);
    exec_ok(admin, "DROP DATABASE bk_listen_test");
    bk_db_free(admin);
}
END_TEST

START_TEST(bad_arguments)
{
    bk_db_t *db = pool_on(dsn(), NULL);
    bk_db_listener_t *l = (void *)1;
    bk_error_t err;
    ck_assert_int_eq(bk_db_listener_new(NULL, (const char *[]){"a"}, 1, NULL, &l, &err), BK_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(bk_db_listener_new(db, (const char *[]){"a"}, 0, NULL, &l, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_listener_new(db, (const char *[]){"a", ""}, 2, NULL, &l, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_listener_new(db, (const char *[]){NULL}, 1, NULL, &l, &err), BK_EINVAL);
    char longname[65];
    memset(longname, 'c', 64);
    longname[64] = '\0';
    ck_assert_int_eq(bk_db_listener_new(db, (const char *[]){longname}, 1, NULL, &l, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "63") != NULL, "%s", err.message);
    longname[63] = '\0'; /* 63 bytes is a name */
    l = listener(db, (const char *[]){longname}, 1);
    bk_db_notification_t *n;
    ck_assert_int_eq(bk_db_listener_wait(l, -1, &n, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_listener_wait(NULL, 0, &n, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_listener_wait(l, 0, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_listener_backend_pid(NULL), 0);
    bk_db_listener_wake(NULL);
    bk_db_listener_free(NULL);
    bk_db_notification_free(NULL);
    bk_db_listener_free(l);

    /* A server that is not there: BK_EUNAVAIL with libpq's reason, no retry. */
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.min_conns = 0;
    bk_db_t *gone;
    ck_assert_int_eq(bk_db_new("host=/nonexistent port=1", &o, &gone, NULL), BK_OK);
    ck_assert_int_eq(bk_db_listener_new(gone, (const char *[]){"a"}, 1, NULL, &l, &err), BK_EUNAVAIL);
    ck_assert_ptr_null(l);
    ck_assert_str_ne(err.message, "");
    bk_db_free(gone);
    bk_db_free(db);
}
END_TEST

START_TEST(opts_init_clears_garbage)
{
    bk_db_listener_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_db_listener_opts_init(&o);
    ck_assert_ptr_null(o.reconnect);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
}
END_TEST

static Suite *listen_suite(void)
{
    Suite *s = suite_create("db_listen");
    TCase *tc = tcase_create("listen");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, notify_is_received_with_channel_and_payload);
    tcase_add_test(tc, timeout_returns_etimedout_and_nothing);
    tcase_add_test(tc, wake_from_another_thread_ends_a_wait);
    tcase_add_test(tc, two_channels_and_only_those);
    tcase_add_test(tc, names_are_quoted_not_sql);
    tcase_add_test(tc, rolled_back_never_and_duplicates_once);
    tcase_add_test(tc, killed_backend_is_a_reset_then_listens_again);
    tcase_add_test(tc, reconnect_backs_off_on_the_db_clock);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, opts_init_clears_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(listen_suite());
}
