/* Periodic jobs against the private server the harness starts (BK_TEST_PG_DSN;
 * without it every case fails, none is skipped), each case in a database of
 * its own, on a fake clock that the test moves across period boundaries:
 * arguments checked, a name's first sight recorded without a job, one job per
 * period of an interval and of a cron line, exactly one per period with two
 * workers of one name, and one (not one per missed period) after a restart.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include <backend/jobs.h>

#include "check_main.h"
#include "pg_test.h"

#define SEC BK_NSEC_PER_SEC
/* The fake clock's start: 30 s into a minute, 2:30 into a five-minute period. */
#define T0 (INT64_C(1800000000) * SEC + 150 * SEC)

static char conninfo[2048];
static char dbname[40];
static bk_db_t *db;
static bk_clock_t *clk;
static bk_jobs_t *jobs;

static bk_jobs_t *new_jobs(void)
{
    bk_jobs_opts_t o;
    bk_jobs_opts_init(&o);
    o.clock = clk;
    bk_jobs_t *j;
    bk_error_t err;
    int rc = bk_jobs_new(db, &o, &j, &err);
    ck_assert_msg(rc == BK_OK, "bk_jobs_new: %s: %s", bk_err_name(rc), err.message);
    return j;
}

static void setup(void)
{
    bkt_pg_database_new("bk_periodic_", dbname, conninfo);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 8;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    ck_assert_int_eq(bk_clock_fake_new(T0, &clk), BK_OK);
    jobs = new_jobs();
}

static void teardown(void)
{
    bk_jobs_free(jobs);
    bk_db_free(db);
    bk_clock_free(clk);
    bkt_pg_database_drop(dbname);
}

#define scalar(...) bkt_pg_scalar(conninfo, __VA_ARGS__)

static int count(const char *sql)
{
    char *v = scalar("%s", sql);
    int n = v ? atoi(v) : -1;
    free(v);
    return n;
}

#define JOBS "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'report'"
#define KNOWN "SELECT count(*) FROM backend_jobs.periodic WHERE name = 'nightly'"

/* Waits (really) for sql to give want, at most 20 s: the worker's heartbeat
 * thread is real. */
static void wait_count(const char *sql, int want)
{
    int got = -1;
    for (int i = 0; i < 20000 && (got = count(sql)) != want; i++)
        usleep(1000);
    ck_assert_msg(got == want, "%s gave %d, want %d", sql, got, want);
}

/* A worker of q with the schedule "nightly" and no handler (it only enqueues). */
static bk_jobs_worker_t *scheduler(bk_jobs_t *q, const char *schedule)
{
    bk_jobs_worker_t *w;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_worker_new(q, NULL, &w, &err), BK_OK);
    json_t *args = json_pack("{s:s}", "report", "sales");
    bk_jobs_enqueue_opts_t eo;
    bk_jobs_enqueue_opts_init(&eo);
    eo.queue = "reports";
    eo.priority = -5;
    int rc = bk_jobs_periodic(w, "nightly", schedule, "report", args, &eo, &err);
    json_decref(args); /* copied */
    ck_assert_msg(rc == BK_OK, "bk_jobs_periodic: %s: %s", bk_err_name(rc), err.message);
    rc = bk_jobs_worker_start(w, &err);
    ck_assert_msg(rc == BK_OK, "start: %s: %s", bk_err_name(rc), err.message);
    wait_count(KNOWN, 1); /* its first look: the name recorded */
    return w;
}

/* Moves the clock on by n steps of step_ns, letting the heartbeat thread
 * enqueue each boundary's job (want: the count after each step). */
static void step_until(int64_t step_ns, int n, const int *want)
{
    for (int i = 0; i < n; i++) {
        bk_clock_fake_advance(clk, step_ns);
        wait_count(JOBS, want[i]);
    }
}

START_TEST(arguments_are_checked)
{
    bk_jobs_worker_t *w;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, NULL, &w, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "*/0 * * * *", "k", NULL, NULL, &err), BK_EINVAL);
    ck_assert_msg(strlen(err.message) > 0, "no message");
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@every 0s", "k", NULL, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_jobs_periodic(w, "bad name", "@hourly", "k", NULL, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@hourly", NULL, NULL, NULL, &err), BK_EINVAL);
    json_t *str = json_string("x");
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@hourly", "k", str, NULL, &err), BK_EINVAL);
    json_decref(str);
    bk_jobs_enqueue_opts_t eo;
    bk_jobs_enqueue_opts_init(&eo);
    eo.unique_key = "mine";
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@hourly", "k", NULL, &eo, &err), BK_EINVAL);
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@hourly", "k", NULL, NULL, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_periodic(w, "a", "@daily", "k", NULL, NULL, &err), BK_EEXIST);
    ck_assert_int_eq(bk_jobs_worker_start(w, &err), BK_OK); /* schedules and no handler */
    ck_assert_int_eq(bk_jobs_periodic(w, "b", "@hourly", "k", NULL, NULL, &err), BK_EBUSY);
    bk_jobs_worker_free(w);
    ck_assert_int_eq(bk_jobs_worker_new(jobs, NULL, &w, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, &err), BK_EINVAL); /* nothing to do */
    bk_jobs_worker_free(w);
}
END_TEST

START_TEST(an_interval_enqueues_one_job_per_period)
{
    bk_jobs_worker_t *w = scheduler(jobs, "@every 1m");
    ck_assert_int_eq(count(JOBS), 0); /* first sight: recorded, no job */
    /* 30 s to the first boundary, then a minute each */
    static const int want[] = {1, 1, 2, 2, 3, 3};
    step_until(30 * SEC, 6, want);
    bk_jobs_worker_free(w);
    ck_assert_int_eq(count(JOBS), 3);
    char *v = scalar("SELECT queue || ' ' || priority || ' ' || (args->>'report') || ' ' || state FROM "
                     "backend_jobs.jobs WHERE kind = 'report' ORDER BY id LIMIT 1");
    ck_assert_str_eq(v, "reports -5 sales available");
    free(v);
}
END_TEST

START_TEST(a_cron_line_enqueues_at_its_boundaries)
{
    bk_jobs_worker_t *w = scheduler(jobs, "*/5 * * * *");
    /* 2:30 into a period: boundaries after 2.5, 7.5 and 12.5 minutes */
    static const int want[] = {0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3};
    for (int i = 0; i < 15; i++) {
        bk_clock_fake_advance(clk, i == 0 ? 30 * SEC : 60 * SEC);
        wait_count(JOBS, want[i]);
    }
    bk_jobs_worker_free(w);
    ck_assert_int_eq(count("SELECT count(DISTINCT run_at) FROM backend_jobs.jobs WHERE kind = 'report'"), 3);
}
END_TEST

START_TEST(two_processes_of_one_name_enqueue_once_per_period)
{
    bk_jobs_t *other = new_jobs(); /* another process's queue over the same tables */
    bk_jobs_worker_t *a = scheduler(jobs, "@every 1m"), *b = scheduler(other, "@every 1m");
    for (int i = 0; i < 4; i++) {
        bk_clock_fake_advance(clk, i == 0 ? 30 * SEC : 60 * SEC);
        wait_count(JOBS, i + 1);
    }
    bk_jobs_worker_free(a);
    bk_jobs_worker_free(b);
    bk_jobs_free(other);
    ck_assert_int_eq(count(JOBS), 4);
}
END_TEST

START_TEST(a_restart_enqueues_the_missed_period_once)
{
    bk_jobs_worker_t *w = scheduler(jobs, "@every 1m");
    bk_clock_fake_advance(clk, 30 * SEC);
    wait_count(JOBS, 1);
    bk_jobs_worker_free(w);
    /* Down for three boundaries, then up again: one job, for the period it
     * is in now. */
    bk_clock_fake_advance(clk, 3 * 60 * SEC + 10 * SEC);
    w = scheduler(jobs, "@every 1m");
    wait_count(JOBS, 2);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)((T0 + 30 * SEC + 3 * 60 * SEC) / SEC));
    char *v = scalar("SELECT extract(epoch FROM last_period)::bigint FROM backend_jobs.periodic");
    ck_assert_str_eq(v, want);
    free(v);
    bk_jobs_worker_free(w);
    ck_assert_int_eq(count(JOBS), 2);
}
END_TEST

static Suite *periodic_suite(void)
{
    Suite *s = suite_create("periodic");
    TCase *t = tcase_create("periodic");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, arguments_are_checked);
    tcase_add_test(t, an_interval_enqueues_one_job_per_period);
    tcase_add_test(t, a_cron_line_enqueues_at_its_boundaries);
    tcase_add_test(t, two_processes_of_one_name_enqueue_once_per_period);
    tcase_add_test(t, a_restart_enqueues_the_missed_period_once);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return bk_test_run(periodic_suite());
}
