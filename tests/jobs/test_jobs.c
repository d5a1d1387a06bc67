/* The job queue against the private server the harness starts (BK_TEST_PG_DSN;
 * without it every case fails, none is skipped). Each case gets a database of
 * its own. Scheduling, retries, snoozes and leases run on a fake clock with
 * claims by hand (bk_jobs_claim, bk_job_finish): scheduled jobs, priorities,
 * unique keys, the retry schedule and discard, snooze, cancel, transactional
 * enqueue, completion in the handler's transaction, rescue of an expired lease
 * with fencing of the old attempt. The worker's threads then run handlers, renew
 * leases on the fake clock and see a cancel at their heartbeat.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>

#include <backend/jobs.h>

#include "check_main.h"
#include "pg_test.h"

#define T0 INT64_C(1800000000000000000) /* the fake clock's wall start: a whole microsecond */
#define SEC BK_NSEC_PER_SEC

static char conninfo[2048];
static char dbname[40];
static bk_db_t *db;
static bk_clock_t *clk;
static bk_jobs_t *jobs;

/* ------------------------------------------------------------------ fixtures */

static bk_retry_opts_t retry; /* 1 s, 2 s, 4 s ... up to 60 s, no jitter: run_at is exact */

static bk_jobs_t *new_jobs(bk_clock_t *clock, const char *schema)
{
    bk_jobs_opts_t o;
    bk_jobs_opts_init(&o);
    o.clock = clock;
    o.schema = schema;
    bk_retry_opts_init(&retry);
    retry.base_ns = SEC;
    retry.cap_ns = 60 * SEC;
    retry.jitter = BK_JITTER_NONE;
    o.retry = &retry;
    bk_jobs_t *j;
    bk_error_t err;
    int rc = bk_jobs_new(db, &o, &j, &err);
    ck_assert_msg(rc == BK_OK, "bk_jobs_new: %s: %s", bk_err_name(rc), err.message);
    return j;
}

static void setup(void)
{
    bkt_pg_database_new("bk_jobs_", dbname, conninfo);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 8;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    ck_assert_int_eq(bk_clock_fake_new(T0, &clk), BK_OK);
    jobs = new_jobs(clk, NULL);
}

static void teardown(void)
{
    bk_jobs_free(jobs);
    jobs = NULL;
    bk_db_free(db);
    db = NULL;
    bk_clock_free(clk);
    clk = NULL;
    bkt_pg_database_drop(dbname);
}

/* ------------------------------------------------------------------ helpers */

/* The first value of sql's first row, formatted, as a new string (NULL for SQL NULL). */
static char *scalar(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *scalar(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_result_t *r;
    bk_error_t err;
    int rc = bk_db_query(c, sql, NULL, 0, &r, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s (%s)", sql, bk_err_name(rc), err.message);
    ck_assert_uint_eq(bk_db_rows(r), 1);
    const char *v = bk_db_value(r, 0, 0);
    char *out = v ? strdup(v) : NULL;
    bk_db_result_free(r);
    bk_db_release(c);
    return out;
}

#define ck_sql_eq(want, ...)                                                                                   \
    do {                                                                                                       \
        char *got_ = scalar(__VA_ARGS__);                                                                      \
        ck_assert_msg(got_ != NULL && strcmp(got_, (want)) == 0, "got \"%s\", want \"%s\"",                    \
                      got_ ? got_ : "(null)", (want));                                                         \
        free(got_);                                                                                            \
    } while (0)

static void ck_state(int64_t id, const char *want)
{
    ck_sql_eq(want, "SELECT state FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
}

/* run_at as ns since the epoch. */
static int64_t run_at(int64_t id)
{
    char *v = scalar("SELECT (extract(epoch FROM run_at) * 1000000)::bigint FROM backend_jobs.jobs WHERE id = %lld",
                     (long long)id);
    int64_t ns = strtoll(v, NULL, 10) * 1000;
    free(v);
    return ns;
}

static int64_t enqueue(const char *kind, const bk_jobs_enqueue_opts_t *o)
{
    int64_t id = 0;
    bk_error_t err;
    int rc = bk_jobs_enqueue(jobs, NULL, kind, NULL, o, &id, &err);
    ck_assert_msg(rc == BK_OK, "enqueue: %s: %s", bk_err_name(rc), err.message);
    ck_assert_int_gt(id, 0);
    return id;
}

/* Claims at most one job of the default queue; NULL when none is ready. */
static bk_job_t *claim1(void)
{
    bk_job_t *j = NULL;
    size_t n = 99;
    bk_error_t err;
    int rc = bk_jobs_claim(jobs, NULL, NULL, 0, 1, &j, &n, &err);
    ck_assert_msg(rc == BK_OK, "claim: %s: %s", bk_err_name(rc), err.message);
    ck_assert_uint_le(n, 1);
    return n ? j : NULL;
}

static void finish(bk_job_t *j, int rc, int want)
{
    bk_error_t err;
    int got = bk_job_finish(j, rc, &err);
    ck_assert_msg(got == want, "finish: %s, want %s (%s)", bk_err_name(got), bk_err_name(want), err.message);
}

/* ------------------------------------------------------------------ the tables */

START_TEST(migrations_create_the_tables_once_in_their_schema)
{
    ck_sql_eq("1,2", "SELECT string_agg(version::text, ',' ORDER BY version) FROM backend_jobs.bk_schema_migrations");
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_migrate(jobs, &err), BK_OK); /* again: nothing to do */
    ck_sql_eq("2", "SELECT count(*) FROM backend_jobs.bk_schema_migrations");
    ck_sql_eq("t", "SELECT to_regclass('backend_jobs.jobs_finished') IS NOT NULL AND "
                   "to_regclass('backend_jobs.periodic') IS NOT NULL");
    /* Another schema is another queue, with tables of its own. */
    bk_jobs_t *other = new_jobs(clk, "tenant_b");
    ck_sql_eq("t", "SELECT to_regclass('tenant_b.jobs') IS NOT NULL");
    int64_t id;
    ck_assert_int_eq(bk_jobs_enqueue(other, NULL, "k", NULL, NULL, &id, &err), BK_OK);
    ck_sql_eq("0", "SELECT count(*) FROM backend_jobs.jobs");
    ck_sql_eq("1", "SELECT count(*) FROM tenant_b.jobs");
    bk_jobs_free(other);
    /* Spliced into SQL: only plain identifiers. */
    bk_jobs_opts_t o;
    bk_jobs_opts_init(&o);
    bk_jobs_t *bad;
    const char *names[] = {"Jobs", "1jobs", "a-b", "x\"; DROP TABLE t; --", "",
                           "a234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        o.schema = names[i];
        ck_assert_int_eq(bk_jobs_new(db, &o, &bad, &err), BK_EINVAL);
    }
    /* A state outside the list is refused by the table itself. */
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "UPDATE backend_jobs.jobs SET state = 'scheduled'", NULL, 0, NULL, NULL),
                     BK_OK); /* no rows */
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO backend_jobs.jobs (queue, kind, state, max_attempts, run_at, "
                                    "created_at) VALUES ('q', 'k', 'scheduled', 1, now(), now())",
                                 NULL, 0, NULL, NULL),
                     BK_EINVAL);
    bk_db_release(c);
}
END_TEST

/* ------------------------------------------------------------------ scheduling */

START_TEST(scheduled_job_is_claimed_only_once_its_time_has_come)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.run_at_ns = T0 + 60 * SEC;
    int64_t id = enqueue("later", &o);
    int64_t now_id = enqueue("now", NULL);
    bk_job_t *j = claim1();
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(bk_job_id(j), now_id); /* the one due now, not the scheduled one */
    finish(j, BK_OK, BK_OK);
    bk_job_free(j);
    ck_assert_ptr_null(claim1());
    bk_clock_fake_advance(clk, 59 * SEC);
    ck_assert_ptr_null(claim1());
    bk_clock_fake_advance(clk, SEC);
    j = claim1();
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(bk_job_id(j), id);
    ck_assert_str_eq(bk_job_kind(j), "later");
    ck_assert_int_eq(bk_job_attempt(j), 1);
    ck_assert_int_eq(bk_job_max_attempts(j), 25);
    ck_assert(json_is_object(bk_job_args(j)) && json_object_size(bk_job_args(j)) == 0);
    ck_assert(!bk_job_cancelled(j));
    ck_state(id, "running");
    finish(j, BK_OK, BK_OK);
    ck_state(id, "completed");
    bk_job_free(j);
}
END_TEST

START_TEST(priorities_then_run_at_then_id)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.priority = 5;
    int64_t a = enqueue("a", &o);
    o.priority = 0;
    int64_t b = enqueue("b", &o);
    o.priority = 5;
    int64_t c = enqueue("c", &o);
    o.priority = -1;
    o.run_at_ns = T0 - SEC; /* in the past: due */
    int64_t d = enqueue("d", &o);
    o.queue = "other";
    o.priority = -100;
    enqueue("elsewhere", &o); /* another queue: never claimed from "default" */
    int64_t want[] = {d, b, a, c};
    for (size_t i = 0; i < 4; i++) {
        bk_job_t *j = claim1();
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(bk_job_id(j), want[i]);
        bk_job_free(j);
    }
    ck_assert_ptr_null(claim1());
    /* Only the kinds asked for. */
    bk_job_t *out[4];
    size_t n;
    const char *kinds[] = {"nope"};
    ck_assert_int_eq(bk_jobs_claim(jobs, "other", kinds, 1, 4, out, &n, NULL), BK_OK);
    ck_assert_uint_eq(n, 0);
    kinds[0] = "elsewhere";
    ck_assert_int_eq(bk_jobs_claim(jobs, "other", kinds, 1, 4, out, &n, NULL), BK_OK);
    ck_assert_uint_eq(n, 1);
    bk_job_free(out[0]);
}
END_TEST

START_TEST(unique_key_returns_the_pending_job)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.unique_key = "report:42";
    int64_t first = enqueue("report", &o), again = 0;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_enqueue(jobs, NULL, "report", NULL, &o, &again, &err), BK_EEXIST);
    ck_assert_int_eq(again, first);
    ck_sql_eq("1", "SELECT count(*) FROM backend_jobs.jobs");
    /* Still pending while it runs. */
    bk_job_t *j = claim1();
    ck_assert_int_eq(bk_jobs_enqueue(jobs, NULL, "report", NULL, &o, &again, &err), BK_EEXIST);
    ck_assert_int_eq(again, first);
    finish(j, BK_OK, BK_OK);
    bk_job_free(j);
    /* Finished: the key is free again. */
    int64_t second = enqueue("report", &o);
    ck_assert_int_ne(second, first);
    /* In a batch: a pending key is skipped (id 0), the others enqueued, in order. */
    bk_jobs_enqueue_opts_t other;
    bk_jobs_enqueue_opts_init(&other);
    other.unique_key = "report:43";
    json_t *args = json_pack("{s:i}", "n", 7);
    bk_jobs_batch_item_t items[] = {{"report", NULL, &o}, {"x", args, NULL}, {"report", NULL, &other},
                                    {"report", NULL, &other}};
    int64_t ids[4];
    size_t made;
    int rc = bk_jobs_enqueue_batch(jobs, NULL, items, 4, ids, &made, &err);
    ck_assert_msg(rc == BK_OK, "batch: %s: %s", bk_err_name(rc), err.message);
    json_decref(args);
    ck_assert_uint_eq(made, 2);
    ck_assert_int_eq(ids[0], 0);
    ck_assert_int_gt(ids[1], second);
    ck_assert_int_gt(ids[2], 0);
    ck_assert_int_eq(ids[3], 0);
    ck_sql_eq("{\"n\": 7}", "SELECT args::text FROM backend_jobs.jobs WHERE id = %lld", (long long)ids[1]);
    ck_sql_eq("report:43", "SELECT unique_key FROM backend_jobs.jobs WHERE id = %lld", (long long)ids[2]);
}
END_TEST

/* ------------------------------------------------------------------ outcomes */

START_TEST(failures_follow_the_backoff_then_discard)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.max_attempts = 3;
    int64_t id = enqueue("flaky", &o);
    int64_t delays[] = {SEC, 2 * SEC}; /* after attempts 1 and 2 */
    for (int a = 1; a <= 3; a++) {
        bk_job_t *j = claim1();
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(bk_job_attempt(j), a);
        char msg[32];
        snprintf(msg, sizeof msg, "boom %d", a);
        bk_job_error(j, msg);
        int64_t now = bk_clock_wall_ns(clk);
        finish(j, BK_EIO, BK_OK);
        bk_job_free(j);
        if (a == 3)
            break;
        ck_state(id, "retryable");
        ck_assert_int_eq(run_at(id), now + delays[a - 1]);
        bk_clock_fake_advance(clk, delays[a - 1] - 1000); /* a microsecond early: not yet */
        ck_assert_ptr_null(claim1());
        bk_clock_fake_advance(clk, 1000);
    }
    ck_state(id, "discarded");
    ck_sql_eq("3", "SELECT jsonb_array_length(errors) FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    ck_sql_eq("boom 3", "SELECT errors->-1->>'error' FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    ck_sql_eq("3", "SELECT errors->-1->>'attempt' FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    ck_sql_eq("t", "SELECT finished_at IS NOT NULL FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    bk_clock_fake_advance(clk, 3600 * SEC);
    ck_assert_ptr_null(claim1()); /* dead: never claimed again */
    /* An operator retries it: one more attempt, the errors kept. */
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_retry(jobs, id, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_retry(jobs, id, &err), BK_ECONFLICT); /* available now */
    ck_assert_int_eq(bk_jobs_retry(jobs, id + 1000, &err), BK_ENOTFOUND);
    bk_job_t *j = claim1();
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(bk_job_attempt(j), 4);
    finish(j, BK_ETIMEDOUT, BK_OK); /* no message: the code's name */
    bk_job_free(j);
    ck_state(id, "discarded");
    ck_sql_eq("BK_ETIMEDOUT: operation timed out", "SELECT errors->-1->>'error' FROM backend_jobs.jobs WHERE id = %lld",
              (long long)id);
}
END_TEST

START_TEST(snooze_runs_later_without_counting_an_attempt)
{
    int64_t id = enqueue("poll", NULL);
    bk_job_t *j = claim1();
    ck_assert_int_eq(bk_job_attempt(j), 1);
    bk_job_snooze(j, 10 * SEC);
    finish(j, BK_EIO, BK_OK); /* the snooze wins over the code */
    bk_job_free(j);
    ck_state(id, "available");
    ck_sql_eq("0", "SELECT attempt FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    ck_sql_eq("0", "SELECT jsonb_array_length(errors) FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    ck_assert_int_eq(run_at(id), T0 + 10 * SEC);
    bk_clock_fake_advance(clk, 9 * SEC);
    ck_assert_ptr_null(claim1());
    bk_clock_fake_advance(clk, SEC);
    j = claim1();
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(bk_job_attempt(j), 1);
    bk_job_free(j);
}
END_TEST

START_TEST(cancel_queued_and_running)
{
    int64_t queued = enqueue("q", NULL);
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_cancel(jobs, queued, &err), BK_OK);
    ck_state(queued, "cancelled");
    ck_assert_ptr_null(claim1()); /* never runs */
    ck_assert_int_eq(bk_jobs_cancel(jobs, queued, &err), BK_ECONFLICT);
    ck_assert_int_eq(bk_jobs_cancel(jobs, 999999, &err), BK_ENOTFOUND);
    /* Running: asked, and a failure then makes it cancelled, not retried. */
    int64_t running = enqueue("r", NULL);
    bk_job_t *j = claim1();
    ck_assert_int_eq(bk_job_id(j), running);
    ck_assert_int_eq(bk_jobs_cancel(jobs, running, &err), BK_OK);
    ck_state(running, "running");
    finish(j, BK_ECANCELED, BK_OK);
    bk_job_free(j);
    ck_state(running, "cancelled");
    /* A cancelled job can be retried. */
    ck_assert_int_eq(bk_jobs_retry(jobs, queued, &err), BK_OK);
    j = claim1();
    ck_assert_int_eq(bk_job_id(j), queued);
    bk_job_free(j);
}
END_TEST

/* ------------------------------------------------------------------ transactions */

struct tx_ctx {
    int64_t id;
    int rc;
    bk_job_t *job;
};

static int enqueue_in_tx(bk_db_conn_t *c, void *ud)
{
    struct tx_ctx *t = ud;
    int rc = bk_jobs_enqueue(jobs, c, "outbox", NULL, NULL, &t->id, NULL);
    return rc ? rc : t->rc;
}

START_TEST(transactional_enqueue_exists_only_when_committed)
{
    struct tx_ctx t = {.rc = BK_EIO};
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, enqueue_in_tx, &t, NULL), BK_EIO);
    ck_assert_int_gt(t.id, 0); /* it was enqueued in the transaction ... */
    ck_sql_eq("0", "SELECT count(*) FROM backend_jobs.jobs");
    ck_assert_ptr_null(claim1()); /* ... which rolled back: no job */
    t.rc = BK_OK;
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, enqueue_in_tx, &t, NULL), BK_OK);
    bk_job_t *j = claim1();
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(bk_job_id(j), t.id);
    bk_job_free(j);
}
END_TEST

static int work_and_complete(bk_db_conn_t *c, void *ud)
{
    struct tx_ctx *t = ud;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO effects VALUES (%lld)", (long long)bk_job_id(t->job));
    int rc = bk_db_query(c, sql, NULL, 0, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_job_complete_in(t->job, c, NULL);
    return rc ? rc : t->rc;
}

START_TEST(complete_in_the_handlers_transaction)
{
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "CREATE TABLE effects (job bigint PRIMARY KEY)", NULL, 0, NULL, NULL), BK_OK);
    bk_db_release(c);
    int64_t id = enqueue("effect", NULL);
    /* The work fails after the completion: both roll back, the attempt fails. */
    struct tx_ctx t = {.rc = BK_EIO, .job = claim1()};
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, work_and_complete, &t, NULL), BK_EIO);
    ck_state(id, "running");
    finish(t.job, BK_EIO, BK_OK);
    bk_job_free(t.job);
    ck_state(id, "retryable");
    ck_sql_eq("0", "SELECT count(*) FROM effects");
    /* The work commits with the completion: exactly one effect, and the
     * handler's BK_OK afterwards changes nothing. */
    bk_clock_fake_advance(clk, SEC);
    t.rc = BK_OK;
    t.job = claim1();
    ck_assert_ptr_nonnull(t.job);
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, work_and_complete, &t, NULL), BK_OK);
    ck_state(id, "completed");
    finish(t.job, BK_OK, BK_OK);
    ck_state(id, "completed");
    ck_sql_eq("1", "SELECT count(*) FROM effects");
    bk_job_free(t.job);
}
END_TEST

/* ------------------------------------------------------------------ leases */

START_TEST(expired_lease_is_rescued_and_the_old_attempt_fenced)
{
    int64_t id = enqueue("slow", NULL);
    bk_job_t *a = claim1();
    ck_assert_int_eq(bk_job_attempt(a), 1);
    bk_clock_fake_advance(clk, 29 * SEC);
    ck_assert_ptr_null(claim1()); /* within A's lease: nobody takes it */
    bk_clock_fake_advance(clk, SEC + 1000);
    bk_job_t *b = claim1(); /* past it: rescued */
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(bk_job_id(b), id);
    ck_assert_int_eq(bk_job_attempt(b), 2);
    /* A wakes up: none of its outcomes applies. */
    finish(a, BK_OK, BK_ECONFLICT);
    finish(a, BK_EIO, BK_ECONFLICT);
    bk_job_snooze(a, SEC);
    finish(a, BK_OK, BK_ECONFLICT);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_job_complete_in(a, c, NULL), BK_ECONFLICT);
    bk_db_release(c);
    ck_state(id, "running");
    ck_sql_eq("2", "SELECT attempt FROM backend_jobs.jobs WHERE id = %lld", (long long)id);
    finish(b, BK_OK, BK_OK);
    ck_state(id, "completed");
    finish(b, BK_OK, BK_ECONFLICT); /* and once only */
    bk_job_free(a);
    bk_job_free(b);
}
END_TEST

struct hold_ctx {
    bk_job_t *job;
    int hold_rc;
    bk_job_t *rival; /* what a claim found while the hold was held */
};

static int hold_then_claim(bk_db_conn_t *c, void *ud)
{
    struct hold_ctx *h = ud;
    h->hold_rc = bk_job_hold(h->job, c, NULL);
    /* On another connection, past the lease: the held row is skipped. */
    h->rival = claim1();
    return BK_OK;
}

START_TEST(hold_locks_the_job_for_its_holder_only)
{
    ck_assert_ptr_eq(bk_jobs_db(jobs), db);
    ck_assert_ptr_eq(bk_jobs_clock(jobs), clk);
    int64_t id = enqueue("slow", NULL);
    struct hold_ctx h = {.job = claim1()};
    bk_clock_fake_advance(clk, 31 * SEC); /* its lease expired, not yet rescued */
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, hold_then_claim, &h, NULL), BK_OK);
    ck_assert_int_eq(h.hold_rc, BK_OK);
    ck_assert_ptr_null(h.rival);
    /* Once the hold's transaction ended the rescue takes it, and the old
     * attempt's hold is refused. */
    bk_job_t *b = claim1();
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(bk_job_id(b), id);
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, hold_then_claim, &h, NULL), BK_OK);
    ck_assert_int_eq(h.hold_rc, BK_ECONFLICT);
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_job_hold(NULL, c, NULL), BK_EINVAL);
    bk_db_release(c);
    bk_job_free(h.job);
    bk_job_free(b);
}
END_TEST

START_TEST(lease_expired_on_the_last_attempt_discards)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.max_attempts = 1;
    int64_t id = enqueue("crashy", &o);
    bk_job_t *a = claim1();
    ck_assert_ptr_nonnull(a);
    bk_clock_fake_advance(clk, 31 * SEC);
    ck_assert_ptr_null(claim1()); /* not rescued for an attempt it does not have */
    ck_state(id, "discarded");
    ck_sql_eq("the lease expired on the last attempt", "SELECT errors->-1->>'error' FROM backend_jobs.jobs "
              "WHERE id = %lld", (long long)id);
    finish(a, BK_OK, BK_ECONFLICT); /* and its holder is fenced */
    bk_job_free(a);
}
END_TEST

START_TEST(get_tells_the_jobs_story)
{
    json_t *args = json_pack("{s:s}", "to", "a@example.org");
    int64_t id;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_enqueue(jobs, NULL, "email", args, NULL, &id, &err), BK_OK);
    json_decref(args);
    bk_job_t *j = claim1();
    bk_job_error(j, "smtp said no");
    finish(j, BK_EUPSTREAM, BK_OK);
    bk_job_free(j);
    json_t *got;
    ck_assert_int_eq(bk_jobs_get(jobs, id, &got, &err), BK_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "id")), id);
    ck_assert_str_eq(json_string_value(json_object_get(got, "state")), "retryable");
    ck_assert_str_eq(json_string_value(json_object_get(got, "kind")), "email");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "args"), "to")), "a@example.org");
    ck_assert_int_eq(json_integer_value(json_object_get(got, "attempt")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(got, "created_at")), "2027-01-15T08:00:00Z");
    json_t *e = json_array_get(json_object_get(got, "errors"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "error")), "smtp said no");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "attempt")), 1);
    json_decref(got);
    ck_assert_int_eq(bk_jobs_get(jobs, id + 1, &got, &err), BK_ENOTFOUND);
}
END_TEST

/* ------------------------------------------------------------------ workers */

struct run_ctx {
    pthread_mutex_t mu;
    atomic_int ran, started;
    atomic_bool release;
    bool use_tx;
};

static int count_handler(bk_job_t *job, void *ud)
{
    struct run_ctx *r = ud;
    (void)job;
    atomic_fetch_add(&r->ran, 1);
    return BK_OK;
}

/* Waits (really) for cond, at most 20 s: the worker's threads are real. */
#define WAIT_FOR(cond)                                                                                         \
    do {                                                                                                       \
        int i_;                                                                                                \
        for (i_ = 0; i_ < 20000 && !(cond); i_++)                                                              \
            usleep(1000);                                                                                      \
        ck_assert_msg((cond), "timed out waiting for " #cond);                                                 \
    } while (0)

static int count_state(const char *state)
{
    char *v = scalar("SELECT count(*) FROM backend_jobs.jobs WHERE state = '%s'", state);
    int n = atoi(v);
    free(v);
    return n;
}

START_TEST(worker_runs_handlers_on_its_threads)
{
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    o.threads = 3;
    o.poll_interval_ns = SEC;
    bk_jobs_worker_t *w;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, &o, &w, &err), BK_OK);
    struct run_ctx r = {0};
    ck_assert_int_eq(bk_jobs_worker_start(w, &err), BK_EINVAL); /* no handler */
    ck_assert_int_eq(bk_jobs_handle(w, "count", count_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "count", count_handler, &r), BK_EEXIST);
    for (int i = 0; i < 10; i++)
        enqueue("count", NULL);
    enqueue("unhandled", NULL);
    ck_assert_int_eq(bk_jobs_worker_start(w, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "late", count_handler, &r), BK_EBUSY);
    WAIT_FOR(count_state("completed") == 10);
    ck_assert_int_eq(atomic_load(&r.ran), 10);
    ck_assert_int_eq(bk_jobs_worker_stop(w, bk_clock_mono_ns(clk) + SEC), BK_OK);
    bk_jobs_worker_free(w);
    ck_assert_int_eq(count_state("available"), 1); /* a kind it does not handle is left alone */
}
END_TEST

static int blocking_handler(bk_job_t *job, void *ud)
{
    struct run_ctx *r = ud;
    atomic_fetch_add(&r->started, 1);
    for (int i = 0; i < 20000 && !atomic_load(&r->release) && !bk_job_cancelled(job); i++)
        usleep(1000);
    return bk_job_cancelled(job) ? BK_ECANCELED : BK_OK;
}

static int64_t lease_until(int64_t id)
{
    char *v = scalar("SELECT (extract(epoch FROM lease_until) * 1000000)::bigint FROM backend_jobs.jobs "
                     "WHERE id = %lld", (long long)id);
    int64_t ns = v ? strtoll(v, NULL, 10) * 1000 : 0;
    free(v);
    return ns;
}

START_TEST(heartbeat_renews_the_lease_and_carries_a_cancel)
{
    int64_t id = enqueue("block", NULL);
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, NULL, &w, NULL), BK_OK);
    struct run_ctx r = {0};
    ck_assert_int_eq(bk_jobs_handle(w, "block", blocking_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    WAIT_FOR(atomic_load(&r.started) == 1);
    ck_assert_int_eq(lease_until(id), T0 + 30 * SEC);
    /* Past a third of the lease, the heartbeat renews it from the new now. */
    bk_clock_fake_advance(clk, 20 * SEC);
    WAIT_FOR(lease_until(id) == T0 + 50 * SEC);
    bk_clock_fake_advance(clk, 20 * SEC); /* past the first lease: still held */
    WAIT_FOR(lease_until(id) == T0 + 70 * SEC);
    ck_assert_ptr_null(claim1());
    /* A cancel reaches the handler at the next heartbeat. */
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_cancel(jobs, id, &err), BK_OK);
    ck_assert(!atomic_load(&r.release));
    bk_clock_fake_advance(clk, 11 * SEC);
    WAIT_FOR(count_state("cancelled") == 1);
    ck_assert_int_eq(bk_jobs_worker_stop(w, bk_clock_mono_ns(clk) + SEC), BK_OK);
    bk_jobs_worker_free(w);
}
END_TEST

START_TEST(timeout_raises_the_flag_at_a_heartbeat)
{
    bk_jobs_enqueue_opts_t o;
    bk_jobs_enqueue_opts_init(&o);
    o.timeout_ns = 5 * SEC;
    int64_t id = enqueue("block", &o);
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, NULL, &w, NULL), BK_OK);
    struct run_ctx r = {0};
    ck_assert_int_eq(bk_jobs_handle(w, "block", blocking_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    WAIT_FOR(atomic_load(&r.started) == 1);
    bk_clock_fake_advance(clk, 11 * SEC); /* the heartbeat at 10 s sees 11 s > 5 s */
    WAIT_FOR(count_state("retryable") == 1); /* the handler gave up: a failed attempt */
    ck_sql_eq("BK_ECANCELED: operation canceled", "SELECT errors->-1->>'error' FROM backend_jobs.jobs "
              "WHERE id = %lld", (long long)id);
    ck_assert_int_eq(bk_jobs_worker_stop(w, bk_clock_mono_ns(clk) + SEC), BK_OK);
    bk_jobs_worker_free(w);
}
END_TEST

struct advancer {
    pthread_t t;
    atomic_bool done;
};

/* Moves the fake clock on while the test thread waits in bk_jobs_worker_stop. */
static void *advance_main(void *arg)
{
    struct advancer *a = arg;
    for (int i = 0; i < 20000 && !atomic_load(&a->done); i++) {
        bk_clock_fake_advance(clk, SEC);
        usleep(1000);
    }
    return NULL;
}

START_TEST(stop_past_its_deadline_flags_the_running_handlers)
{
    int64_t id = enqueue("block", NULL);
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, NULL, &w, NULL), BK_OK);
    struct run_ctx r = {0};
    ck_assert_int_eq(bk_jobs_handle(w, "block", blocking_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    WAIT_FOR(atomic_load(&r.started) == 1);
    struct advancer a = {0};
    ck_assert_int_eq(pthread_create(&a.t, NULL, advance_main, &a), 0);
    int rc = bk_jobs_worker_stop(w, bk_clock_mono_ns(clk) + 5 * SEC);
    atomic_store(&a.done, true);
    pthread_join(a.t, NULL);
    ck_assert_int_eq(rc, BK_ETIMEDOUT);
    bk_jobs_worker_free(w); /* waits for the handler, which saw the flag */
    ck_state(id, "retryable");
}
END_TEST

static int complete_in_handler(bk_job_t *job, void *ud)
{
    (void)ud;
    struct tx_ctx t = {.rc = BK_OK, .job = job};
    return bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, work_and_complete, &t, NULL);
}

START_TEST(worker_handler_completes_in_its_transaction_and_stop_waits)
{
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "CREATE TABLE effects (job bigint PRIMARY KEY)", NULL, 0, NULL, NULL), BK_OK);
    bk_db_release(c);
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    o.threads = 2;
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, &o, &w, NULL), BK_OK);
    struct run_ctx r = {0};
    ck_assert_int_eq(bk_jobs_handle(w, "effect", complete_in_handler, NULL), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "block", blocking_handler, &r), BK_OK);
    for (int i = 0; i < 5; i++)
        enqueue("effect", NULL);
    int64_t blocked = enqueue("block", NULL);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    WAIT_FOR(count_state("completed") == 5 && atomic_load(&r.started) == 1);
    ck_sql_eq("5", "SELECT count(*) FROM effects");
    ck_sql_eq("5", "SELECT count(*) FROM backend_jobs.jobs j JOIN effects e ON e.job = j.id "
                   "WHERE j.state = 'completed'");
    /* The graceful stop lets the running handler finish. */
    atomic_store(&r.release, true);
    ck_assert_int_eq(bk_jobs_worker_stop(w, bk_clock_mono_ns(clk) + 60 * SEC), BK_OK);
    ck_state(blocked, "completed");
    ck_assert_int_eq(bk_jobs_worker_stop(w, 0), BK_OK); /* idempotent */
    bk_jobs_worker_free(w);
}
END_TEST

/* ------------------------------------------------------------------ wake-up */

/* A worker of "count" on q (system clock or not) polling every poll_ns. */
static bk_jobs_worker_t *count_worker(bk_jobs_t *q, int64_t poll_ns, bool poll_only, struct run_ctx *r)
{
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    o.poll_interval_ns = poll_ns;
    o.poll_only = poll_only;
    bk_jobs_worker_t *w;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_worker_new(q, &o, &w, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "count", count_handler, r), BK_OK);
    int rc = bk_jobs_worker_start(w, &err);
    ck_assert_msg(rc == BK_OK, "start: %s: %s", bk_err_name(rc), err.message);
    return w;
}

static bk_jobs_worker_stats_t stats_of(bk_jobs_worker_t *w)
{
    bk_jobs_worker_stats_t st;
    memset(&st, 0xa5, sizeof st);
    bk_jobs_worker_stats(w, &st);
    return st;
}

/* Waits until the worker has found its queue drained and a thread waits for
 * a wake-up: what happens next cannot be a claim already under way. */
static void settle(bk_jobs_worker_t *w)
{
    WAIT_FOR(stats_of(w).idle);
}

START_TEST(notify_wakes_the_worker_long_before_its_poll)
{
    bk_jobs_t *sys = new_jobs(NULL, NULL); /* the listener runs on the system clock */
    struct run_ctx r = {0};
    bk_jobs_worker_t *w = count_worker(sys, 3600 * SEC, false, &r);
    settle(w);
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_enqueue(sys, NULL, "count", NULL, NULL, NULL, &err), BK_OK);
    WAIT_FOR(atomic_load(&r.ran) == 1); /* within 20 s, the next poll being an hour away */
    settle(w);
    bk_jobs_batch_item_t items[] = {{"count", NULL, NULL}, {"count", NULL, NULL}};
    ck_assert_int_eq(bk_jobs_enqueue_batch(sys, NULL, items, 2, NULL, NULL, &err), BK_OK);
    WAIT_FOR(atomic_load(&r.ran) == 3);
    WAIT_FOR(stats_of(w).finished == 3); /* recorded after the handler returned */
    bk_jobs_worker_stats_t st = stats_of(w);
    ck_assert_uint_eq(st.claimed, 3);
    ck_assert_uint_eq(st.finished, 3);
    ck_assert_uint_eq(st.fenced, 0);
    ck_assert_uint_ge(st.notifications, 2); /* one per enqueue statement */
    ck_assert_uint_eq(st.reserved_[0], 0);
    int64_t t0 = bk_clock_mono_ns(NULL);
    ck_assert_int_eq(bk_jobs_worker_stop(w, t0 + 10 * SEC), BK_OK);
    ck_assert_int_lt(bk_clock_mono_ns(NULL) - t0, 5 * SEC); /* the listener's wait was woken */
    bk_jobs_worker_free(w);
    bk_jobs_free(sys);
}
END_TEST

static int enqueue_then_fail(bk_db_conn_t *c, void *ud)
{
    bk_jobs_t *q = ud;
    int rc = bk_jobs_enqueue(q, c, "count", NULL, NULL, NULL, NULL);
    return rc ? rc : BK_EIO;
}

START_TEST(rolled_back_enqueue_wakes_nobody)
{
    bk_jobs_t *sys = new_jobs(NULL, NULL);
    struct run_ctx r = {0};
    bk_jobs_worker_t *w = count_worker(sys, 3600 * SEC, false, &r);
    settle(w);
    bk_jobs_worker_stats_t before = stats_of(w);
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, enqueue_then_fail, sys, NULL), BK_EIO);
    /* A job inserted behind the library's back (no NOTIFY) would be found by a
     * wake-up. Then a committed NOTIFY for another queue: notifications arrive
     * in commit order, so once the worker has it, one from the rolled-back
     * enqueue would have come first. */
    ck_sql_eq("1", "WITH i AS (INSERT INTO backend_jobs.jobs (queue, kind, max_attempts, run_at, created_at) "
                   "VALUES ('default', 'count', 1, now(), now()) RETURNING id) SELECT count(*) FROM i");
    ck_sql_eq("1", "SELECT count(pg_notify('backend_jobs_jobs', 'elsewhere'))");
    WAIT_FOR(stats_of(w).notifications == before.notifications + 1);
    bk_jobs_worker_stats_t after = stats_of(w);
    ck_assert_uint_eq(after.wakeups, before.wakeups);
    ck_assert_uint_eq(after.claims, before.claims);
    ck_assert(after.idle);
    ck_assert_int_eq(atomic_load(&r.ran), 0);
    ck_assert_int_eq(count_state("available"), 1);
    bk_jobs_worker_free(w);
    bk_jobs_free(sys);
}
END_TEST

START_TEST(a_lost_listener_catches_up_after_reconnecting)
{
    bk_jobs_t *sys = new_jobs(NULL, NULL);
    struct run_ctx r = {0};
    bk_jobs_worker_t *w = count_worker(sys, 3600 * SEC, false, &r);
    settle(w);
    /* A job whose NOTIFY the worker never sees (inserted without one), then the
     * listener's session killed: only the catch-up claim after it LISTENs again
     * can find the job, the poll being an hour away. */
    ck_sql_eq("1", "WITH i AS (INSERT INTO backend_jobs.jobs (queue, kind, max_attempts, run_at, created_at) "
                   "VALUES ('default', 'count', 1, now(), now()) RETURNING id) SELECT count(*) FROM i");
    ck_sql_eq("1", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                   "current_database() AND query LIKE 'LISTEN%%'");
    WAIT_FOR(atomic_load(&r.ran) == 1);
    bk_jobs_worker_free(w);
    bk_jobs_free(sys);
}
END_TEST

START_TEST(poll_only_claims_at_the_interval_only)
{
    /* On the system clock: no LISTEN session, so nothing but the poll an hour
     * away can wake it. */
    bk_jobs_t *sys = new_jobs(NULL, NULL);
    struct run_ctx r = {0};
    bk_jobs_worker_t *w = count_worker(sys, 3600 * SEC, true, &r);
    settle(w);
    ck_sql_eq("0", "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                   "query LIKE 'LISTEN%%'");
    bk_jobs_worker_free(w);
    bk_jobs_free(sys);
    /* On the fake clock: an enqueue waits for the clock to pass the interval. */
    struct run_ctx f = {0};
    w = count_worker(jobs, 10 * SEC, true, &f);
    settle(w);
    bk_jobs_worker_stats_t before = stats_of(w);
    enqueue("count", NULL);
    bk_clock_fake_advance(clk, 9 * SEC); /* wakes the wait, which goes on: 1 s left */
    bk_clock_fake_advance(clk, SEC);
    WAIT_FOR(atomic_load(&f.ran) == 1);
    settle(w); /* the job's outcome recorded, and the queue found drained again */
    /* One wake-up, at 10 s, and its claims only: the one that found the job
     * and the one that found the queue drained again. Had the 9 s advance
     * ended the wait, there would be two wake-ups. */
    bk_jobs_worker_stats_t after = stats_of(w);
    ck_assert_uint_eq(after.wakeups - before.wakeups, 1);
    ck_assert_uint_eq(after.claims - before.claims, 2);
    ck_assert_uint_eq(after.notifications, 0);
    bk_jobs_worker_free(w);
}
END_TEST

START_TEST(a_queue_behind_a_pooler_polls_only)
{
    /* A pool with transaction_pooling (through PgBouncer in tests/db/pgbouncer.sh's
     * run, on the server itself in the others), on the system clock: the worker
     * was not asked to poll only, yet opens no LISTEN session, which a pooler in
     * transaction mode could not keep. */
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.transaction_pooling = true;
    bk_db_t *pdb;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &pdb, &err) == BK_OK, "bk_db_new: %s", err.message);
    bk_jobs_opts_t jo;
    bk_jobs_opts_init(&jo);
    bk_jobs_t *pj;
    ck_assert_int_eq(bk_jobs_new(pdb, &jo, &pj, &err), BK_OK);
    struct run_ctx r = {0};
    bk_jobs_worker_t *w = count_worker(pj, 3600 * SEC, false, &r);
    settle(w);
    ck_assert_int_eq(bk_jobs_enqueue(pj, NULL, "count", NULL, NULL, NULL, &err), BK_OK);
    ck_sql_eq("0", "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                   "query LIKE 'LISTEN%%'");
    ck_assert_uint_eq(stats_of(w).notifications, 0);
    bk_jobs_worker_free(w);
    bk_jobs_free(pj);
    bk_db_free(pdb);
}
END_TEST

/* ------------------------------------------------------------------ operations */

START_TEST(delete_and_list_by_state)
{
    bk_jobs_enqueue_opts_t other;
    bk_jobs_enqueue_opts_init(&other);
    other.queue = "other";
    int64_t a = enqueue("mail", NULL), b = enqueue("mail", NULL), c = enqueue("report", NULL);
    int64_t d = enqueue("mail", &other), e = enqueue("mail", NULL);
    bk_job_t *run = claim1(); /* a */
    ck_assert_int_eq(bk_job_id(run), a);
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_delete(jobs, a, &err), BK_ECONFLICT);
    ck_assert_int_eq(bk_jobs_delete(jobs, e, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_delete(jobs, e, &err), BK_ENOTFOUND);
    json_t *got;
    ck_assert_int_eq(bk_jobs_list(jobs, NULL, &got, &err), BK_OK);
    int64_t want_all[] = {a, b, c, d};
    ck_assert_uint_eq(json_array_size(got), 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(got, i), "id")), want_all[i]);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "state")), "running");
    json_decref(got);
    bk_jobs_list_opts_t o;
    bk_jobs_list_opts_init(&o);
    ck_assert_uint_eq(o.limit, 100);
    o.state = "available";
    o.queue = "default";
    o.kind = "mail";
    ck_assert_int_eq(bk_jobs_list(jobs, &o, &got, &err), BK_OK);
    ck_assert_uint_eq(json_array_size(got), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(got, 0), "id")), b);
    json_decref(got);
    /* Pages of 3: every id once. */
    bk_jobs_list_opts_init(&o);
    o.limit = 3;
    size_t seen = 0;
    for (int page = 0; page < 3; page++) {
        ck_assert_int_eq(bk_jobs_list(jobs, &o, &got, &err), BK_OK);
        for (size_t i = 0; i < json_array_size(got); i++) {
            int64_t id = json_integer_value(json_object_get(json_array_get(got, i), "id"));
            ck_assert_int_eq(id, want_all[seen++]);
            o.after_id = id;
        }
        json_decref(got);
    }
    ck_assert_uint_eq(seen, 4);
    o.state = "sleeping";
    ck_assert_int_eq(bk_jobs_list(jobs, &o, &got, &err), BK_EINVAL);
    o.state = NULL;
    o.limit = 1001;
    ck_assert_int_eq(bk_jobs_list(jobs, &o, &got, &err), BK_EINVAL);
    bk_job_free(run);
}
END_TEST

/* n jobs in state, finished age_s seconds before the fake clock's start. */
static void insert_finished(int n, const char *state, long age_s)
{
    ck_sql_eq("", "WITH i AS (INSERT INTO backend_jobs.jobs (queue, kind, state, max_attempts, run_at, created_at, "
                  "finished_at) SELECT 'default', 'old', '%s', 1, now(), now(), to_timestamp(%lld) - %ld * interval "
                  "'1 second' FROM generate_series(1, %d) RETURNING 1) SELECT ''",
              state, (long long)(T0 / SEC), age_s, n);
}

START_TEST(prune_deletes_what_is_past_its_retention_only)
{
    insert_finished(1200, "completed", 25 * 3600); /* past 24 h: two batches and a bit */
    insert_finished(3, "cancelled", 25 * 3600);
    insert_finished(4, "completed", 3600);           /* kept */
    insert_finished(5, "discarded", 25 * 3600);      /* kept: 7 days for dead letters */
    insert_finished(6, "discarded", 8 * 24 * 3600);
    enqueue("mail", NULL);
    bk_job_free(claim1());                           /* running: kept */
    enqueue("mail", NULL);                           /* available: kept */
    size_t n = 0;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_prune(jobs, &n, &err), BK_OK);
    ck_assert_uint_eq(n, 1200 + 3 + 6);
    ck_sql_eq("4", "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'completed'");
    ck_sql_eq("5", "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'discarded'");
    ck_sql_eq("2", "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'mail'");
    ck_assert_int_eq(bk_jobs_prune(jobs, &n, &err), BK_OK);
    ck_assert_uint_eq(n, 0);
    /* Negative: kept forever. */
    bk_jobs_opts_t o;
    bk_jobs_opts_init(&o);
    o.clock = clk;
    o.retention_ns = -1;
    o.discarded_retention_ns = -1;
    bk_jobs_t *keep;
    ck_assert_int_eq(bk_jobs_new(db, &o, &keep, &err), BK_OK);
    insert_finished(2, "completed", 30 * 24 * 3600);
    ck_assert_int_eq(bk_jobs_prune(keep, &n, &err), BK_OK);
    ck_assert_uint_eq(n, 0);
    bk_jobs_free(keep);
}
END_TEST

START_TEST(the_worker_prunes_on_its_interval)
{
    insert_finished(10, "completed", 24 * 3600 - 5); /* past its retention 5 s from now */
    struct run_ctx r = {0};
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    ck_assert_int_eq(o.prune_interval_ns, 60 * SEC);
    o.prune_interval_ns = 10 * SEC;
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(jobs, &o, &w, NULL), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "count", count_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    /* Interval by interval (the heartbeat thread may start after the first
     * advance), until the prune has run. */
    for (int i = 0; i < 2000 && count_state("completed") > 0; i++) {
        bk_clock_fake_advance(clk, 10 * SEC);
        usleep(1000);
    }
    ck_assert_int_eq(count_state("completed"), 0);
    bk_jobs_worker_stats_t st;
    for (int i = 0; i < 20000; i++) { /* counted once the prune returned */
        bk_jobs_worker_stats(w, &st);
        if (st.pruned == 10)
            break;
        usleep(1000);
    }
    ck_assert_uint_eq(st.pruned, 10);
    bk_jobs_worker_free(w);
}
END_TEST

static void ck_line(const char *text, const char *line)
{
    if (!strstr(text, line))
        fprintf(stderr, "%s", text);
    ck_assert_msg(strstr(text, line) != NULL, "no line \"%s\" (the text is on stderr)", line);
}

START_TEST(metrics_count_outcomes_waits_and_states)
{
    bk_metrics_t *m;
    ck_assert_int_eq(bk_metrics_new(&m), BK_OK);
    bk_jobs_opts_t o;
    bk_jobs_opts_init(&o);
    o.clock = clk;
    o.retry = &retry;
    o.metrics = m;
    bk_jobs_t *q;
    bk_error_t err;
    ck_assert_int_eq(bk_jobs_new(db, &o, &q, &err), BK_OK);
    bk_jobs_enqueue_opts_t eo;
    bk_jobs_enqueue_opts_init(&eo);
    eo.max_attempts = 2;
    int64_t id;
    ck_assert_int_eq(bk_jobs_enqueue(q, NULL, "flaky", NULL, &eo, &id, &err), BK_OK);
    ck_assert_int_eq(bk_jobs_enqueue(q, NULL, "sleepy", NULL, NULL, &id, &err), BK_OK);
    bk_job_t *j[2];
    size_t n;
    ck_assert_int_eq(bk_jobs_claim(q, NULL, NULL, 0, 2, j, &n, &err), BK_OK);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(bk_job_kind(j[i]), "sleepy") == 0)
            bk_job_snooze(j[i], SEC);
        ck_assert_int_eq(bk_job_finish(j[i], BK_EIO, &err), BK_OK); /* flaky: retried */
        ck_assert_int_eq(bk_job_finish(j[i], BK_OK, &err), BK_ECONFLICT);
        bk_job_free(j[i]);
    }
    bk_clock_fake_advance(clk, 2 * SEC);
    ck_assert_int_eq(bk_jobs_claim(q, NULL, (const char *[]){"flaky"}, 1, 1, j, &n, &err), BK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(bk_job_finish(j[0], BK_EIO, &err), BK_OK); /* its last attempt: discarded */
    bk_job_free(j[0]);
    /* A worker runs the sleepy one, due 1 s ago: a wait of 1 s. */
    struct run_ctx r = {0};
    bk_jobs_worker_opts_t wo;
    bk_jobs_worker_opts_init(&wo);
    wo.prune_interval_ns = 10 * SEC;
    bk_jobs_worker_t *w;
    ck_assert_int_eq(bk_jobs_worker_new(q, &wo, &w, NULL), BK_OK);
    ck_assert_int_eq(bk_jobs_handle(w, "sleepy", count_handler, &r), BK_OK);
    ck_assert_int_eq(bk_jobs_worker_start(w, NULL), BK_OK);
    WAIT_FOR(atomic_load(&r.ran) == 1);
    WAIT_FOR(count_state("completed") == 1);
    char *text;
    for (int i = 0; i < 2000; i++) { /* until a prune tick has refreshed the gauge */
        ck_assert_int_eq(bk_metrics_render(m, &text, NULL), BK_OK);
        bool fresh = strstr(text, "jobs_in_state{queue=\"default\",state=\"completed\"} 1\n") != NULL;
        if (fresh)
            break;
        free(text);
        text = NULL;
        bk_clock_fake_advance(clk, 10 * SEC);
        usleep(1000);
    }
    ck_assert_ptr_nonnull(text);
    bk_jobs_worker_free(w);
    ck_line(text, "jobs_total{queue=\"default\",kind=\"flaky\",outcome=\"retried\"} 1\n");
    ck_line(text, "jobs_total{queue=\"default\",kind=\"flaky\",outcome=\"discarded\"} 1\n");
    ck_line(text, "jobs_total{queue=\"default\",kind=\"flaky\",outcome=\"fenced\"} 1\n");
    ck_line(text, "jobs_total{queue=\"default\",kind=\"sleepy\",outcome=\"snoozed\"} 1\n");
    ck_line(text, "jobs_total{queue=\"default\",kind=\"sleepy\",outcome=\"completed\"} 1\n");
    ck_line(text, "jobs_wait_seconds_count{queue=\"default\",kind=\"sleepy\"} 1\n");
    ck_line(text, "jobs_wait_seconds_bucket{queue=\"default\",kind=\"sleepy\",le=\"0.5\"} 0\n");
    ck_line(text, "jobs_wait_seconds_bucket{queue=\"default\",kind=\"sleepy\",le=\"1\"} 1\n");
    ck_line(text, "jobs_duration_seconds_count{queue=\"default\",kind=\"sleepy\"} 1\n");
    ck_line(text, "jobs_in_state{queue=\"default\",state=\"discarded\"} 1\n");
    ck_line(text, "jobs_in_state{queue=\"default\",state=\"running\"} 0\n");
    free(text);
    bk_jobs_free(q);
    bk_metrics_free(m);
}
END_TEST

static Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, migrations_create_the_tables_once_in_their_schema);
    tcase_add_test(tc, scheduled_job_is_claimed_only_once_its_time_has_come);
    tcase_add_test(tc, priorities_then_run_at_then_id);
    tcase_add_test(tc, unique_key_returns_the_pending_job);
    tcase_add_test(tc, failures_follow_the_backoff_then_discard);
    tcase_add_test(tc, snooze_runs_later_without_counting_an_attempt);
    tcase_add_test(tc, cancel_queued_and_running);
    tcase_add_test(tc, transactional_enqueue_exists_only_when_committed);
    tcase_add_test(tc, complete_in_the_handlers_transaction);
    tcase_add_test(tc, expired_lease_is_rescued_and_the_old_attempt_fenced);
    tcase_add_test(tc, hold_locks_the_job_for_its_holder_only);
    tcase_add_test(tc, lease_expired_on_the_last_attempt_discards);
    tcase_add_test(tc, get_tells_the_jobs_story);
    tcase_add_test(tc, delete_and_list_by_state);
    tcase_add_test(tc, prune_deletes_what_is_past_its_retention_only);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("worker");
    tcase_add_checked_fixture(tw, setup, teardown);
    tcase_set_timeout(tw, 90);
    tcase_add_test(tw, worker_runs_handlers_on_its_threads);
    tcase_add_test(tw, heartbeat_renews_the_lease_and_carries_a_cancel);
    tcase_add_test(tw, worker_handler_completes_in_its_transaction_and_stop_waits);
    tcase_add_test(tw, timeout_raises_the_flag_at_a_heartbeat);
    tcase_add_test(tw, stop_past_its_deadline_flags_the_running_handlers);
    tcase_add_test(tw, the_worker_prunes_on_its_interval);
    tcase_add_test(tw, metrics_count_outcomes_waits_and_states);
    suite_add_tcase(s, tw);
    TCase *tk = tcase_create("wake");
    tcase_add_checked_fixture(tk, setup, teardown);
    tcase_set_timeout(tk, 90);
    if (!bkt_pg_pooled()) { /* through the pooler the worker polls only (a_queue_behind_a_pooler_polls_only) */
        tcase_add_test(tk, notify_wakes_the_worker_long_before_its_poll);
        tcase_add_test(tk, rolled_back_enqueue_wakes_nobody);
        tcase_add_test(tk, a_lost_listener_catches_up_after_reconnecting);
    }
    tcase_add_test(tk, poll_only_claims_at_the_interval_only);
    tcase_add_test(tk, a_queue_behind_a_pooler_polls_only);
    suite_add_tcase(s, tk);
    return s;
}

int main(void)
{
    return bk_test_run(jobs_suite());
}
