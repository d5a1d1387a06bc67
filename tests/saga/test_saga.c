/* Sagas against the private server the harness starts (BK_TEST_PG_DSN; without
 * it every case fails, none is skipped). Each case gets a database of its own;
 * the job queue runs on a fake clock (poll-only), which the test moves on until
 * the saga it watches reaches the state it expects: the success path, a failure
 * at each step compensating exactly the completed steps in reverse, a failing
 * compensation retried and parked as stuck, then retried and resolved by an
 * operator, idempotent start, a pivot, version gating, cancel, an open breaker,
 * and one attempts row per attempt.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include <backend/saga.h>

#include "check_main.h"
#include "pg_test.h"

#define T0 INT64_C(1800000000000000000)
#define SEC BK_NSEC_PER_SEC
#define NSTEPS 4

static char conninfo[2048];
static char dbname[40];
static bk_db_t *db;
static bk_clock_t *clk;
static bk_jobs_t *jobs;

/* ------------------------------------------------------------------ a scripted saga */

static const char *const NAMES[NSTEPS] = {"reserve", "charge", "order", "ship"};

struct script {
    int fail_action[NSTEPS];   /* the first n attempts of the action fail */
    int fail_comp[NSTEPS];     /* the first n attempts of the compensation fail */
    int unavail[NSTEPS];       /* the action answers BK_EUNAVAIL */
    bool cancel_in[NSTEPS];    /* the action cancels its own saga */
    unsigned maybe[NSTEPS];    /* bit n-1: attempt n of the action says it may have applied */
    bool maybe_in_comp;        /* the compensations say so too (which does nothing) */
    atomic_int action_calls[NSTEPS], comp_calls[NSTEPS];
    atomic_int order[64];      /* +(i + 1): action of step i; -(i + 1): its compensation */
    atomic_int norder;
    char keys[NSTEPS][128];
    bk_saga_engine_t *engine;  /* for cancel_in */
};

static struct script sc;

static void record(int v)
{
    int n = atomic_fetch_add(&sc.norder, 1);
    if (n < 64)
        atomic_store(&sc.order[n], v);
}

static int index_of(const char *step)
{
    for (int i = 0; i < NSTEPS; i++)
        if (strcmp(NAMES[i], step) == 0)
            return i;
    return -1;
}

static int action(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    int *version = ud;
    int i = index_of(call->step);
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(call->version, *version);
    int n = atomic_fetch_add(&sc.action_calls[i], 1) + 1;
    record(i + 1);
    if (n <= 32 && (sc.maybe[i] >> (n - 1) & 1u))
        bk_saga_maybe_applied(call);
    snprintf(sc.keys[i], sizeof sc.keys[i], "%s", call->idempotency_key);
    if (sc.cancel_in[i])
        ck_assert_int_eq(bk_saga_cancel(sc.engine, call->saga_id, NULL), BK_OK);
    if (sc.unavail[i]) {
        snprintf(err->message, sizeof err->message, "breaker open");
        return BK_EUNAVAIL;
    }
    if (n <= sc.fail_action[i]) {
        snprintf(err->message, sizeof err->message, "%s failed (attempt %d)", call->step, call->attempt);
        return BK_EUPSTREAM;
    }
    /* What the earlier steps returned is in the context. */
    for (int k = 0; k < i; k++)
        ck_assert_msg(json_object_get(call->context, NAMES[k]) != NULL, "step %s missing in the context", NAMES[k]);
    *out = json_pack("{s:i}", call->step, call->attempt);
    return BK_OK;
}

static int compensate(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    (void)ud;
    int i = index_of(call->step);
    int n = atomic_fetch_add(&sc.comp_calls[i], 1) + 1;
    record(-(i + 1));
    if (sc.maybe_in_comp)
        bk_saga_maybe_applied(call);
    if (n <= sc.fail_comp[i]) {
        snprintf(err->message, sizeof err->message, "undo %s failed", call->step);
        return BK_EIO;
    }
    return BK_OK;
}

static int version1 = 1, version2 = 2;

/* Four steps: up to 2 action attempts and 3 compensation attempts each, 1 s to
 * 4 s apart without jitter; pivot_at >= 0 makes that step the pivot. */
static bk_saga_def_t *new_def(int version, int pivot_at)
{
    bk_saga_def_t *d;
    ck_assert_int_eq(bk_saga_def_new("order", version, &d, NULL), BK_OK);
    static bk_retry_opts_t r;
    bk_retry_opts_init(&r);
    r.base_ns = SEC;
    r.cap_ns = 4 * SEC;
    r.jitter = BK_JITTER_NONE;
    for (int i = 0; i < NSTEPS; i++) {
        bk_saga_step_opts_t o;
        bk_saga_step_opts_init(&o);
        o.max_attempts = 2;
        o.compensate_attempts = 3;
        o.retry = &r;
        o.pivot = i == pivot_at;
        ck_assert_int_eq(bk_saga_def_step(d, NAMES[i], action, compensate, &o, version == 1 ? &version1 : &version2),
                         BK_OK);
    }
    return d;
}

static bk_saga_engine_t *new_engine(bk_saga_def_t *const *defs, size_t n)
{
    bk_saga_opts_t o;
    bk_saga_opts_init(&o);
    o.threads = 2;
    o.poll_interval_ns = SEC;
    bk_saga_engine_t *e;
    bk_error_t err;
    int rc = bk_saga_engine_new(jobs, &o, &e, &err);
    ck_assert_msg(rc == BK_OK, "bk_saga_engine_new: %s: %s", bk_err_name(rc), err.message);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(bk_saga_register(e, defs[i], NULL), BK_OK);
    ck_assert_int_eq(bk_saga_engine_start(e, &err), BK_OK);
    sc.engine = e;
    return e;
}

/* ------------------------------------------------------------------ fixtures */

static void setup(void)
{
    memset(&sc, 0, sizeof sc);
    bkt_pg_database_new("bk_saga_", dbname, conninfo);
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 8;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &db, &err) == BK_OK, "bk_db_new: %s", err.message);
    ck_assert_int_eq(bk_clock_fake_new(T0, &clk), BK_OK);
    bk_jobs_opts_t jo;
    bk_jobs_opts_init(&jo);
    jo.clock = clk;
    ck_assert_int_eq(bk_jobs_new(db, &jo, &jobs, &err), BK_OK);
}

static void teardown(void)
{
    bk_jobs_free(jobs);
    bk_db_free(db);
    bk_clock_free(clk);
    bkt_pg_database_drop(dbname);
}

/* ------------------------------------------------------------------ helpers */

#define scalar(...) bkt_pg_scalar(conninfo, __VA_ARGS__)
#define ck_sql_eq(want, ...) BKT_PG_EQ(conninfo, want, __VA_ARGS__)

static bool has_status(int64_t id, const char *status)
{
    char *s = scalar("SELECT status FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    bool ok = s && strcmp(s, status) == 0;
    free(s);
    return ok;
}

/* Moves the fake clock on, a second at a time (the poll interval), until the
 * saga has status; at most 10 minutes of fake time. */
static void drive(int64_t id, const char *status)
{
    for (int i = 0; i < 600 && !has_status(id, status); i++) {
        /* let the worker's threads take what is due before time moves again */
        for (int k = 0; k < 20 && !has_status(id, status); k++)
            usleep(1000);
        bk_clock_fake_advance(clk, SEC);
    }
    char *s = scalar("SELECT status FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    ck_assert_msg(s && strcmp(s, status) == 0, "saga %lld is %s, want %s", (long long)id, s ? s : "(gone)", status);
    free(s);
}

static int64_t start(bk_saga_engine_t *e, const bk_saga_def_t *def, const char *key)
{
    json_t *ctx = json_pack("{s:s}", "customer", "c-1");
    int64_t id = 0;
    bk_error_t err;
    int rc = bk_saga_start(e, def, key, ctx, &id, &err);
    json_decref(ctx);
    ck_assert_msg(rc == BK_OK, "bk_saga_start: %s: %s", bk_err_name(rc), err.message);
    ck_assert_int_gt(id, 0);
    return id;
}

static void ck_order(const int *want, int n)
{
    int got = atomic_load(&sc.norder);
    ck_assert_msg(got == n, "%d calls, want %d", got, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(atomic_load(&sc.order[i]) == want[i], "call %d was %d, want %d", i, atomic_load(&sc.order[i]),
                      want[i]);
}

static const char *step_status(int64_t id, int idx)
{
    static char buf[32];
    char *s = scalar("SELECT status FROM backend_saga.steps WHERE saga_id = %lld AND idx = %d", (long long)id, idx);
    snprintf(buf, sizeof buf, "%s", s ? s : "(null)");
    free(s);
    return buf;
}

/* ------------------------------------------------------------------ cases */

START_TEST(the_success_path_runs_every_step_once_in_order)
{
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "completed");
    static const int want[] = {1, 2, 3, 4};
    ck_order(want, 4);
    for (int i = 0; i < NSTEPS; i++) {
        char key[64];
        snprintf(key, sizeof key, "%lld/%s", (long long)id, NAMES[i]);
        ck_assert_str_eq(sc.keys[i], key);
        ck_assert_str_eq(step_status(id, i), "completed");
    }
    json_t *got;
    ck_assert_int_eq(bk_saga_get(e, id, &got, NULL), BK_OK);
    ck_assert_str_eq(json_string_value(json_object_get(got, "status")), "completed");
    ck_assert_str_eq(json_string_value(json_object_get(got, "saga")), "order");
    ck_assert_int_eq(json_integer_value(json_object_get(got, "version")), 1);
    json_t *ctx = json_object_get(got, "context");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "customer")), "c-1");
    for (int i = 0; i < NSTEPS; i++)
        ck_assert_int_eq(json_integer_value(json_object_get(ctx, NAMES[i])), 1);
    json_t *steps = json_object_get(got, "steps");
    ck_assert_uint_eq(json_array_size(steps), NSTEPS);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(steps, 2), "name")), "order");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(steps, 2), "attempts")), 1);
    ck_assert(json_is_string(json_object_get(got, "finished_at")));
    json_decref(got);
    ck_assert_int_eq(bk_saga_get(e, id + 100, &got, NULL), BK_ENOTFOUND);
    /* One attempts row per action, by this process; one job ran them all. */
    ck_sql_eq("4", "SELECT count(*) FROM backend_saga.attempts WHERE saga_id = %lld AND outcome = 'ok' "
                   "AND worker LIKE '%%:%d'", (long long)id, (int)getpid());
    ck_sql_eq("1 completed", "SELECT count(*) || ' ' || string_agg(state, ',') FROM backend_jobs.jobs "
                             "WHERE kind = 'saga:order:1'");
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

/* Steps that run until the test releases them, each noting whether its job's
 * cancellation (its timeout) was raised meanwhile. */
static atomic_int timed_started, timed_released;
static atomic_bool timed_cancelled[NSTEPS];

static int timed_action(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    (void)out, (void)err, (void)ud;
    int i = index_of(call->step);
    atomic_fetch_add(&timed_started, 1);
    while (atomic_load(&timed_released) <= i && !bk_job_cancelled(call->job))
        usleep(1000);
    atomic_store(&timed_cancelled[i], bk_job_cancelled(call->job));
    return BK_OK; /* the flag is all this test looks at */
}

#define WAIT_UNTIL(cond)                                                                                             \
    do {                                                                                                             \
        for (int w_ = 0; w_ < 10000 && !(cond); w_++)                                                                \
            usleep(1000);                                                                                            \
        ck_assert_msg(cond, "timed out waiting for " #cond);                                                         \
    } while (0)

/* The job's lease renewed at the heartbeat past now (a third of the 30 s
 * lease after the last): the beat has looked at the timeout. */
static bool beat_after(int64_t now)
{
    char *v = scalar("SELECT (extract(epoch FROM lease_until) * 1000000)::bigint * 1000 >= %lld FROM "
                     "backend_jobs.jobs WHERE kind = 'saga:timed:1'", (long long)(now + 30 * SEC));
    bool ok = v && strcmp(v, "t") == 0;
    free(v);
    return ok;
}

START_TEST(each_step_has_its_timeout_from_its_own_start)
{
    atomic_store(&timed_started, 0);
    atomic_store(&timed_released, 0);
    for (int i = 0; i < NSTEPS; i++)
        atomic_store(&timed_cancelled[i], false);
    bk_saga_def_t *def;
    ck_assert_int_eq(bk_saga_def_new("timed", 1, &def, NULL), BK_OK);
    for (int i = 0; i < 3; i++) {
        bk_saga_step_opts_t o;
        bk_saga_step_opts_init(&o);
        o.timeout_ns = 15 * SEC;
        ck_assert_int_eq(bk_saga_def_step(def, NAMES[i], timed_action, NULL, &o, NULL), BK_OK);
    }
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    /* Step 0 runs 11 s: within its 15 s. (Its job is claimed at a poll.) */
    for (int i = 0; i < 600 && atomic_load(&timed_started) == 0; i++) {
        for (int k = 0; k < 20 && atomic_load(&timed_started) == 0; k++)
            usleep(1000);
        if (atomic_load(&timed_started) == 0)
            bk_clock_fake_advance(clk, SEC);
    }
    WAIT_UNTIL(atomic_load(&timed_started) == 1);
    bk_clock_fake_advance(clk, 11 * SEC);
    WAIT_UNTIL(beat_after(bk_clock_wall_ns(clk)));
    atomic_store(&timed_released, 1);
    /* Step 1, in the same job, runs 11 s too: 22 s since the job began, 11 s
     * since the step did. */
    WAIT_UNTIL(atomic_load(&timed_started) == 2);
    bk_clock_fake_advance(clk, 11 * SEC);
    WAIT_UNTIL(beat_after(bk_clock_wall_ns(clk)));
    atomic_store(&timed_released, 2);
    /* Step 2 runs past its 15 s: the flag is raised. */
    WAIT_UNTIL(atomic_load(&timed_started) == 3);
    bk_clock_fake_advance(clk, 16 * SEC);
    drive(id, "completed");
    ck_assert(!atomic_load(&timed_cancelled[0]));
    ck_assert(!atomic_load(&timed_cancelled[1]));
    ck_assert(atomic_load(&timed_cancelled[2]));
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(a_failure_at_each_step_compensates_the_completed_steps_in_reverse)
{
    for (int k = 0; k < NSTEPS; k++) {
        memset(&sc, 0, sizeof sc);
        sc.fail_action[k] = 99;
        bk_saga_def_t *def = new_def(1, -1);
        bk_saga_engine_t *e = new_engine(&def, 1);
        int64_t id = start(e, def, NULL);
        drive(id, "compensated");
        /* actions 1..k, step k twice (its two attempts), then the
         * compensations of k-1..0 */
        int want[16], n = 0;
        for (int i = 0; i <= k; i++)
            want[n++] = i + 1;
        want[n++] = k + 1;
        for (int i = k - 1; i >= 0; i--)
            want[n++] = -(i + 1);
        ck_order(want, n);
        for (int i = 0; i < NSTEPS; i++)
            ck_assert_str_eq(step_status(id, i), i < k ? "compensated" : i == k ? "failed" : "pending");
        ck_sql_eq("2", "SELECT jsonb_array_length(errors) FROM backend_saga.steps WHERE saga_id = %lld AND idx = %d",
                  (long long)id, k);
        char want_err[64];
        snprintf(want_err, sizeof want_err, "%s failed (attempt 2)", NAMES[k]);
        ck_sql_eq(want_err, "SELECT error FROM backend_saga.sagas WHERE id = %lld", (long long)id);
        bk_saga_engine_free(e);
        bk_saga_def_free(def);
    }
}
END_TEST

START_TEST(a_failing_compensation_parks_the_saga_until_an_operator_acts)
{
    sc.fail_action[2] = 99;
    sc.fail_comp[1] = 4; /* 3 attempts fail: stuck; after the retry, the 4th fails and the 5th works */
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "stuck");
    ck_assert_int_eq(atomic_load(&sc.comp_calls[1]), 3);
    ck_assert_int_eq(atomic_load(&sc.comp_calls[0]), 0);
    ck_sql_eq("undo charge failed", "SELECT error FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    /* Nothing more happens by itself. */
    for (int i = 0; i < 30; i++)
        bk_clock_fake_advance(clk, 10 * SEC);
    ck_assert(has_status(id, "stuck"));
    bk_error_t err;
    ck_assert_int_eq(bk_saga_resolve(e, id + 100, NULL, &err), BK_ENOTFOUND);
    ck_assert_int_eq(bk_saga_retry(e, id, &err), BK_OK);
    drive(id, "compensated");
    ck_assert_int_eq(atomic_load(&sc.comp_calls[1]), 5);
    ck_assert_int_eq(atomic_load(&sc.comp_calls[0]), 1);
    ck_assert_int_eq(bk_saga_retry(e, id, &err), BK_ECONFLICT);
    ck_assert_int_eq(bk_saga_resolve(e, id, NULL, &err), BK_ECONFLICT);
    /* A second one, stuck, is resolved by hand. */
    memset(sc.comp_calls, 0, sizeof sc.comp_calls);
    sc.fail_comp[1] = 99;
    int64_t id2 = start(e, def, NULL);
    drive(id2, "stuck");
    ck_assert_int_eq(bk_saga_resolve(e, id2, "refunded by hand", &err), BK_OK);
    ck_assert(has_status(id2, "resolved"));
    ck_sql_eq("refunded by hand", "SELECT error FROM backend_saga.sagas WHERE id = %lld", (long long)id2);
    ck_sql_eq("t", "SELECT finished_at IS NOT NULL FROM backend_saga.sagas WHERE id = %lld", (long long)id2);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(a_start_with_a_known_key_returns_the_existing_saga)
{
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, "order-42");
    int64_t again = 0;
    bk_error_t err;
    ck_assert_int_eq(bk_saga_start(e, def, "order-42", NULL, &again, &err), BK_EEXIST);
    ck_assert_int_eq(again, id);
    drive(id, "completed");
    again = 0;
    ck_assert_int_eq(bk_saga_start(e, def, "order-42", NULL, &again, &err), BK_EEXIST);
    ck_assert_int_eq(again, id);
    ck_assert_int_eq(atomic_load(&sc.action_calls[0]), 1); /* ran once */
    ck_sql_eq("1", "SELECT count(*) FROM backend_saga.sagas");
    /* Another definition's name has keys of its own. */
    bk_saga_def_t *other;
    ck_assert_int_eq(bk_saga_def_new("refund", 1, &other, NULL), BK_OK);
    ck_assert_int_eq(bk_saga_def_step(other, "only", action, NULL, NULL, &version1), BK_OK);
    ck_assert_int_eq(bk_saga_start(e, other, "order-42", NULL, &again, &err), BK_OK);
    ck_assert_int_ne(again, id);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
    bk_saga_def_free(other);
}
END_TEST

START_TEST(past_the_pivot_a_failure_rolls_forward_only)
{
    sc.fail_action[2] = 3; /* both attempts fail: stuck; after the retry, the 3rd fails, the 4th works */
    bk_saga_def_t *def = new_def(1, 1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "stuck");
    for (int i = 0; i < NSTEPS; i++)
        ck_assert_int_eq(atomic_load(&sc.comp_calls[i]), 0);
    ck_sql_eq("t", "SELECT pivoted FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    bk_error_t err;
    ck_assert_int_eq(bk_saga_cancel(e, id, &err), BK_ECONFLICT);
    ck_assert_int_eq(bk_saga_retry(e, id, &err), BK_OK);
    drive(id, "completed");
    ck_assert_int_eq(atomic_load(&sc.action_calls[2]), 4);
    ck_assert_int_eq(atomic_load(&sc.action_calls[3]), 1);
    for (int i = 0; i < NSTEPS; i++)
        ck_assert_int_eq(atomic_load(&sc.comp_calls[i]), 0);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(a_saga_runs_only_under_the_version_it_started_with)
{
    bk_saga_def_t *v1 = new_def(1, -1), *v2 = new_def(2, -1);
    bk_saga_engine_t *e = new_engine(&v2, 1); /* a process with version 2 only */
    int64_t old = start(e, v1, NULL), cur = start(e, v2, NULL);
    drive(cur, "completed");
    for (int i = 0; i < 20; i++)
        bk_clock_fake_advance(clk, SEC);
    ck_assert(has_status(old, "running"));
    ck_assert_str_eq(step_status(old, 0), "pending");
    bk_saga_engine_free(e);
    /* A process with both drains the old one under version 1's code (action
     * asserts the version it runs under). */
    bk_saga_def_t *both[] = {v1, v2};
    e = new_engine(both, 2);
    drive(old, "completed");
    bk_error_t err;
    ck_assert_int_eq(bk_saga_register(e, v1, &err), BK_EBUSY);
    bk_saga_engine_free(e);
    bk_saga_def_free(v1);
    bk_saga_def_free(v2);
}
END_TEST

START_TEST(a_cancel_compensates_at_the_next_step)
{
    sc.cancel_in[1] = true;
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "compensated");
    static const int want[] = {1, 2, -2, -1};
    ck_order(want, 4);
    ck_assert_str_eq(step_status(id, 2), "pending");
    ck_sql_eq("cancelled", "SELECT error FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    bk_error_t err;
    ck_assert_int_eq(bk_saga_cancel(e, id, &err), BK_ECONFLICT);
    ck_assert_int_eq(bk_saga_cancel(e, id + 100, &err), BK_ENOTFOUND);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(an_open_breaker_fails_the_step_without_its_retries)
{
    sc.unavail[1] = 1;
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "compensated");
    ck_assert_int_eq(atomic_load(&sc.action_calls[1]), 1); /* max_attempts is 2 */
    ck_assert_int_eq(atomic_load(&sc.comp_calls[0]), 1);
    ck_sql_eq("breaker open", "SELECT error FROM backend_saga.sagas WHERE id = %lld", (long long)id);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(an_attempt_that_may_have_applied_is_compensated_with_the_steps_before)
{
    /* reserve says it may have applied, and succeeds: nothing changes. charge
     * fails twice, its first attempt unanswered (a timeout): its own
     * compensation runs before reserve's. */
    sc.maybe[0] = 1u;
    sc.fail_action[1] = 99;
    sc.maybe[1] = 1u;
    sc.maybe_in_comp = true;
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    int64_t id = start(e, def, NULL);
    drive(id, "compensated");
    ck_order((const int[]){1, 2, 2, -2, -1}, 5);
    ck_assert_str_eq(step_status(id, 0), "compensated");
    ck_assert_str_eq(step_status(id, 1), "compensated");
    ck_sql_eq("ok,unknown,failed", "SELECT string_agg(outcome, ',' ORDER BY idx, attempt) FROM backend_saga.attempts"
              " WHERE saga_id = %lld AND phase = 'action'", (long long)id);
    ck_sql_eq("ok,ok", "SELECT string_agg(outcome, ',' ORDER BY idx DESC) FROM backend_saga.attempts"
              " WHERE saga_id = %lld AND phase = 'compensate'", (long long)id);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);

    /* The same failures without the word: charge's compensation does not run. */
    memset(&sc, 0, sizeof sc);
    sc.fail_action[1] = 99;
    def = new_def(1, -1);
    e = new_engine(&def, 1);
    id = start(e, def, NULL);
    drive(id, "compensated");
    ck_order((const int[]){1, 2, 2, -1}, 4);
    ck_assert_str_eq(step_status(id, 1), "failed");
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

struct start_in {
    bk_saga_engine_t *e;
    const bk_saga_def_t *def;
    const char *key;
    int64_t id;
    int then; /* what the body returns after the start: BK_OK commits */
};

static int start_in_tx(bk_db_conn_t *c, void *ud)
{
    struct start_in *s = ud;
    ck_assert_int_eq(bk_db_query(c, "CREATE TABLE IF NOT EXISTS orders_made (key text)", NULL, 0, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO orders_made VALUES ($1)", (bk_db_param_t[]){BK_DB_TEXT(s->key)}, 1,
                                 NULL, NULL),
                     BK_OK);
    bk_error_t err;
    int rc = bk_saga_start_in(s->e, c, s->def, s->key, NULL, &s->id, &err);
    ck_assert_msg(rc == BK_OK, "bk_saga_start_in: %s: %s", bk_err_name(rc), err.message);
    return s->then;
}

START_TEST(a_start_in_a_transaction_exists_exactly_when_it_commits)
{
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_engine_t *e = new_engine(&def, 1);
    /* Rolled back with what the caller wrote: no saga, no job, nothing runs. */
    struct start_in s = {e, def, "order-1", 0, BK_ECONFLICT};
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, start_in_tx, &s, NULL), BK_ECONFLICT);
    ck_assert_int_gt(s.id, 0);
    ck_sql_eq("0", "SELECT count(*) FROM backend_saga.sagas");
    ck_sql_eq("0", "SELECT count(*) FROM backend_jobs.jobs");
    /* Committed: the saga, and the caller's row, and it runs. */
    s.then = BK_OK;
    ck_assert_int_eq(bk_db_tx(db, BK_DB_READ_COMMITTED, NULL, start_in_tx, &s, NULL), BK_OK);
    ck_sql_eq("order-1", "SELECT key FROM orders_made");
    drive(s.id, "completed");
    ck_assert_int_eq(atomic_load(&sc.action_calls[3]), 1);
    /* The key is the saga's: another start in a transaction finds it. */
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    int64_t again = 0;
    ck_assert_int_eq(bk_saga_start_in(e, c, def, "order-1", NULL, &again, NULL), BK_EEXIST);
    ck_assert_int_eq(again, s.id);
    bk_db_release(c);
    bk_error_t err;
    ck_assert_int_eq(bk_saga_start_in(e, NULL, def, "order-2", NULL, &again, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "saga start: no connection");
    ck_assert_int_eq(again, 0);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

START_TEST(definitions_and_arguments_are_checked)
{
    bk_saga_def_t *d;
    bk_error_t err;
    ck_assert_int_eq(bk_saga_def_new("bad name", 1, &d, &err), BK_EINVAL);
    ck_assert_int_eq(bk_saga_def_new("ok", 0, &d, &err), BK_EINVAL);
    ck_assert_int_eq(bk_saga_def_new("ok", 1, &d, &err), BK_OK);
    ck_assert_int_eq(bk_saga_def_step(d, "a", NULL, NULL, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_saga_def_step(d, "a/b", action, NULL, NULL, NULL), BK_EINVAL);
    bk_saga_step_opts_t o;
    bk_saga_step_opts_init(&o);
    ck_assert_uint_eq(o.max_attempts, 3);
    ck_assert_uint_eq(o.compensate_attempts, 10);
    o.max_attempts = 0;
    ck_assert_int_eq(bk_saga_def_step(d, "a", action, NULL, &o, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_saga_def_step(d, "a", action, NULL, NULL, &version1), BK_OK);
    ck_assert_int_eq(bk_saga_def_step(d, "a", action, NULL, NULL, &version1), BK_EEXIST);
    bk_saga_def_t *empty;
    ck_assert_int_eq(bk_saga_def_new("empty", 1, &empty, &err), BK_OK);
    bk_saga_engine_t *e;
    ck_assert_int_eq(bk_saga_engine_new(jobs, NULL, &e, &err), BK_OK);
    ck_assert_int_eq(bk_saga_engine_start(e, &err), BK_EINVAL); /* nothing registered */
    ck_assert_int_eq(bk_saga_register(e, empty, &err), BK_EINVAL);
    ck_assert_int_eq(bk_saga_register(e, d, &err), BK_OK);
    ck_assert_int_eq(bk_saga_register(e, d, &err), BK_EEXIST);
    ck_assert_int_eq(bk_saga_def_step(d, "b", action, NULL, NULL, &version1), BK_EBUSY);
    json_t *arr = json_array();
    int64_t id;
    ck_assert_int_eq(bk_saga_start(e, d, NULL, arr, &id, &err), BK_EINVAL);
    ck_assert_int_eq(bk_saga_start(e, d, "", NULL, &id, &err), BK_EINVAL);
    json_decref(arr);
    bk_saga_opts_t so;
    bk_saga_opts_init(&so);
    so.schema = "Bad";
    bk_saga_engine_t *bad;
    ck_assert_int_eq(bk_saga_engine_new(jobs, &so, &bad, &err), BK_EINVAL);
    bk_saga_engine_free(e);
    bk_saga_def_free(d);
    bk_saga_def_free(empty);
    bk_saga_engine_free(NULL);
    bk_saga_def_free(NULL);
}
END_TEST

struct waiter {
    bk_saga_engine_t *e;
    int64_t id, deadline;
    int rc;
    json_t *out;
    atomic_bool done;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = bk_saga_wait(w->e, w->id, w->deadline, &w->out, NULL);
    atomic_store(&w->done, true);
    return NULL;
}

START_TEST(wait_returns_when_the_saga_is_over_or_at_its_deadline)
{
    bk_saga_def_t *v1 = new_def(1, -1), *v2 = new_def(2, -1);
    bk_saga_engine_t *e = new_engine(&v2, 1);
    /* One this engine runs: the wait ends with it. */
    int64_t id = start(e, v2, NULL);
    struct waiter w = {.e = e, .id = id, .deadline = bk_clock_mono_ns(clk) + 3600 * SEC};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wait_main, &w), 0);
    drive(id, "completed");
    for (int i = 0; i < 20000 && !atomic_load(&w.done); i++)
        usleep(1000);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, BK_OK);
    ck_assert_str_eq(json_string_value(json_object_get(w.out, "status")), "completed");
    json_decref(w.out);
    /* One nobody runs (no engine has version 1): the deadline ends the wait,
     * on the queue's clock. */
    int64_t idle = start(e, v1, NULL);
    struct waiter x = {.e = e, .id = idle, .deadline = bk_clock_mono_ns(clk) + 5 * SEC};
    ck_assert_int_eq(pthread_create(&th, NULL, wait_main, &x), 0);
    for (int i = 0; i < 20000 && !atomic_load(&x.done); i++) {
        usleep(1000);
        bk_clock_fake_advance(clk, 100 * BK_NSEC_PER_MSEC);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(x.rc, BK_ETIMEDOUT);
    ck_assert_ptr_null(x.out);
    ck_assert(has_status(idle, "running"));
    ck_assert_int_eq(bk_saga_wait(e, idle + 100, bk_clock_mono_ns(clk), NULL, NULL), BK_ENOTFOUND);
    bk_saga_engine_free(e);
    bk_saga_def_free(v1);
    bk_saga_def_free(v2);
}
END_TEST

static void ck_metric(const char *text, const char *line)
{
    if (!strstr(text, line))
        fprintf(stderr, "%s", text);
    ck_assert_msg(strstr(text, line) != NULL, "no line \"%s\" (the text is on stderr)", line);
}

START_TEST(metrics_count_outcomes_and_prune_keeps_what_is_not_finished)
{
    bk_metrics_t *m;
    ck_assert_int_eq(bk_metrics_new(&m), BK_OK);
    bk_saga_def_t *def = new_def(1, -1);
    bk_saga_opts_t o;
    bk_saga_opts_init(&o);
    ck_assert_int_eq(o.retention_ns, 7 * 24 * 3600 * SEC);
    o.threads = 2;
    o.poll_interval_ns = SEC;
    o.metrics = m;
    o.retention_ns = 3600 * SEC;
    bk_saga_engine_t *e;
    ck_assert_int_eq(bk_saga_engine_new(jobs, &o, &e, NULL), BK_OK);
    ck_assert_int_eq(bk_saga_register(e, def, NULL), BK_OK);
    ck_assert_int_eq(bk_saga_engine_start(e, NULL), BK_OK);
    sc.engine = e;
    int64_t ok = start(e, def, NULL);
    drive(ok, "completed");
    sc.fail_action[1] = 99;
    int64_t undone = start(e, def, NULL);
    drive(undone, "compensated");
    sc.fail_action[1] = 0;
    sc.fail_action[2] = 99;
    sc.fail_comp[1] = 99;
    int64_t stuck = start(e, def, NULL), resolved = start(e, def, NULL);
    drive(stuck, "stuck");
    drive(resolved, "stuck");
    ck_assert_int_eq(bk_saga_resolve(e, resolved, NULL, NULL), BK_OK);
    char *text;
    ck_assert_int_eq(bk_metrics_render(m, &text, NULL), BK_OK);
    ck_metric(text, "sagas_total{saga=\"order\",outcome=\"completed\"} 1\n");
    ck_metric(text, "sagas_total{saga=\"order\",outcome=\"compensated\"} 1\n");
    ck_metric(text, "sagas_total{saga=\"order\",outcome=\"stuck\"} 2\n");
    ck_metric(text, "sagas_total{saga=\"order\",outcome=\"resolved\"} 1\n");
    /* Every attempt of an action or a compensation: reserve ran in each saga
     * and was undone in one; charge once, twice (failing), then once and 3
     * failing undos in each of the last two; order once, then twice (failing)
     * in each of the last two. */
    ck_metric(text, "saga_step_duration_seconds_count{saga=\"order\",step=\"reserve\"} 5\n");
    ck_metric(text, "saga_step_duration_seconds_count{saga=\"order\",step=\"charge\"} 11\n");
    ck_metric(text, "saga_step_duration_seconds_count{saga=\"order\",step=\"order\"} 5\n");
    ck_metric(text, "saga_step_duration_seconds_count{saga=\"order\",step=\"ship\"} 1\n");
    free(text);
    /* An hour and more later: the finished ones go, the stuck one stays. */
    bk_clock_fake_advance(clk, 3601 * SEC);
    size_t deleted = 0;
    ck_assert_int_eq(bk_saga_prune(e, &deleted, NULL), BK_OK);
    ck_assert_uint_eq(deleted, 3);
    ck_sql_eq("1", "SELECT count(*) FROM backend_saga.sagas");
    ck_assert(has_status(stuck, "stuck"));
    char want[64];
    snprintf(want, sizeof want, "%lld", (long long)stuck);
    ck_sql_eq(want, "SELECT string_agg(DISTINCT saga_id::text, ',') FROM backend_saga.steps");
    ck_sql_eq(want, "SELECT string_agg(DISTINCT saga_id::text, ',') FROM backend_saga.attempts");
    ck_assert_int_eq(bk_metrics_render(m, &text, NULL), BK_OK);
    ck_metric(text, "sagas_in_state{saga=\"order\",status=\"stuck\"} 1\n");
    ck_metric(text, "sagas_in_state{saga=\"order\",status=\"completed\"} 0\n");
    free(text);
    ck_assert_int_eq(bk_saga_prune(e, &deleted, NULL), BK_OK);
    ck_assert_uint_eq(deleted, 0);
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
    bk_metrics_free(m);
}
END_TEST

/* ------------------------------------------------------------------ the finish hook */

static atomic_int hook_fail; /* the next n calls write, then fail */
static atomic_int hook_calls;

/* Notes the outcome in a table of the test's, and for a completed saga
 * enqueues a job, both on the outcome's own transaction. */
static int on_finish(const bk_saga_outcome_t *o, bk_db_conn_t *c, bk_error_t *err, void *ud)
{
    ck_assert_ptr_eq(ud, &hook_calls);
    atomic_fetch_add(&hook_calls, 1);
    ck_assert_str_eq(o->saga, "order");
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)o->saga_id);
    const bk_db_param_t p[] = {BK_DB_TEXT(id), BK_DB_TEXT(o->status),
                               BK_DB_TEXT(json_object_get(o->context, "ship") ? "t" : "f"),
                               o->error ? BK_DB_TEXT(o->error) : BK_DB_NULL};
    int rc = bk_db_query(c, "INSERT INTO outcomes (saga_id, status, shipped, error) VALUES ($1, $2, $3, $4)", p, 4,
                         NULL, err);
    if (rc == BK_OK && strcmp(o->status, "completed") == 0) {
        json_t *args = json_pack("{s:I}", "saga", (json_int_t)o->saga_id);
        rc = bk_jobs_enqueue(jobs, c, "notify", args, NULL, NULL, err);
        json_decref(args);
    }
    if (rc == BK_OK && atomic_fetch_sub(&hook_fail, 1) > 0) {
        snprintf(err->message, sizeof err->message, "the hook refuses");
        return BK_EIO;
    }
    return rc;
}

START_TEST(the_finish_hook_writes_in_the_transaction_of_the_outcome)
{
    free(scalar("CREATE TABLE outcomes (saga_id bigint, status text, shipped boolean, error text); SELECT 1"));
    atomic_store(&hook_fail, 0);
    atomic_store(&hook_calls, 0);
    bk_saga_def_t *def = new_def(1, -1);
    ck_assert_int_eq(bk_saga_def_on_finish(NULL, on_finish, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_saga_def_on_finish(def, on_finish, &hook_calls), BK_OK);
    bk_saga_engine_t *e = new_engine(&def, 1);
    ck_assert_int_eq(bk_saga_def_on_finish(def, NULL, NULL), BK_EBUSY);

    /* Completed: the context has the last step's output; the job exists. */
    int64_t done = start(e, def, "done");
    drive(done, "completed");
    ck_sql_eq("completed true -", "SELECT status || ' ' || shipped || ' ' || coalesce(error, '-') FROM outcomes "
                               "WHERE saga_id = %lld", (long long)done);
    ck_sql_eq("1", "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'notify' AND args->>'saga' = '%lld'",
              (long long)done);

    /* Compensated: with the failure that turned it. */
    sc.fail_action[1] = 99;
    int64_t comp = start(e, def, "compensated");
    drive(comp, "compensated");
    ck_sql_eq("compensated false charge failed (attempt 2)",
              "SELECT status || ' ' || shipped || ' ' || error FROM outcomes WHERE saga_id = %lld", (long long)comp);

    /* Stuck: a compensation that always fails. */
    sc.fail_comp[0] = 99;
    int64_t stuck = start(e, def, "stuck");
    drive(stuck, "stuck");
    ck_sql_eq("stuck", "SELECT status FROM outcomes WHERE saga_id = %lld", (long long)stuck);

    /* A hook that fails rolls its writes and the outcome back; the attempt
     * runs again (the last action twice), and the outcome is written once. */
    memset(&sc, 0, sizeof sc);
    sc.engine = e;
    atomic_store(&hook_fail, 1);
    int before = atomic_load(&hook_calls);
    int64_t again = start(e, def, "again");
    drive(again, "completed");
    ck_assert_int_eq(atomic_load(&hook_calls) - before, 2);
    ck_assert_int_eq(atomic_load(&sc.action_calls[NSTEPS - 1]), 2);
    ck_sql_eq("1 1", "SELECT (SELECT count(*) FROM outcomes WHERE saga_id = %lld) || ' ' || (SELECT count(*) FROM "
                     "backend_jobs.jobs WHERE kind = 'notify' AND args->>'saga' = '%lld')",
              (long long)again, (long long)again);
    ck_sql_eq("4", "SELECT count(*) FROM outcomes");
    bk_saga_engine_free(e);
    bk_saga_def_free(def);
}
END_TEST

static Suite *saga_suite(void)
{
    Suite *s = suite_create("saga");
    TCase *t = tcase_create("saga");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, the_success_path_runs_every_step_once_in_order);
    tcase_add_test(t, each_step_has_its_timeout_from_its_own_start);
    tcase_add_test(t, a_failure_at_each_step_compensates_the_completed_steps_in_reverse);
    tcase_add_test(t, a_failing_compensation_parks_the_saga_until_an_operator_acts);
    tcase_add_test(t, a_start_with_a_known_key_returns_the_existing_saga);
    tcase_add_test(t, past_the_pivot_a_failure_rolls_forward_only);
    tcase_add_test(t, a_saga_runs_only_under_the_version_it_started_with);
    tcase_add_test(t, a_cancel_compensates_at_the_next_step);
    tcase_add_test(t, an_open_breaker_fails_the_step_without_its_retries);
    tcase_add_test(t, an_attempt_that_may_have_applied_is_compensated_with_the_steps_before);
    tcase_add_test(t, a_start_in_a_transaction_exists_exactly_when_it_commits);
    tcase_add_test(t, definitions_and_arguments_are_checked);
    tcase_add_test(t, wait_returns_when_the_saga_is_over_or_at_its_deadline);
    tcase_add_test(t, metrics_count_outcomes_and_prune_keeps_what_is_not_finished);
    tcase_add_test(t, the_finish_hook_writes_in_the_transaction_of_the_outcome);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return bk_test_run(saga_suite());
}
