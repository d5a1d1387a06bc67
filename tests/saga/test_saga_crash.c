/* Sagas across processes, on the harness's PostgreSQL (BK_TEST_PG_DSN), with
 * short real leases (one process cannot fake another's clock), against three
 * table-backed services that honour idempotency keys (inventory, payment,
 * shipping: a key's effect applies once) and refuse 15% of calls at random,
 * even the repeat of a key whose first call took effect before its caller was
 * killed (harsher than a service that answers a repeat as it answered first:
 * the saga must then compensate a step whose effect it never saw):
 * - crash: 200 sagas of four steps (reserve, charge, order, ship) while the
 *   process running them is killed with SIGKILL at SAGA_KILLS (default 20)
 *   random moments and restarted each time; at the end every saga is completed
 *   or compensated, and the SQL invariants hold: stock + reserved = initial,
 *   reserved = the live reservations, every charge has a refund or a live order,
 *   a completed saga has all four effects and a compensated one none, and no
 *   effect was applied twice for one idempotency key.
 * - two processes: both run sagas from one database, one is killed mid-stream:
 *   the survivor finishes every saga; every attempt is recorded with the process
 *   that claimed it and no attempt of a step was started by both; no effect twice.
 * Every use of the library happens in forked children, each with its own pool;
 * the test process checks the outcome with plain libpq. It asserts outcomes,
 * never durations: the waits are bounded polls of the database that fail loudly.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>

#include <backend/saga.h>

#include "check_main.h"
#include "pg_test.h"
#include "proc_test.h"

#define MS INT64_C(1000000)
#define N_SAGAS 200
#define STOCK 100000
#define LEASE_MS 300

static char conninfo[2048];
static char dbname[40];

static void setup(void)
{
    bkt_pg_database_new("bk_sagacrash_", dbname, conninfo);
}

static void teardown(void)
{
    bkt_children_kill();
    bkt_pg_database_drop(dbname);
}

/* ------------------------------------------------------------------ the test's side (libpq) */

static void exec_admin(const char *sql)
{
    ck_assert_int_ge(bkt_sql_ll(conninfo, sql), -1);
}

/* The services' tables. Each effect is keyed by its idempotency key (a
 * repeated call changes nothing) and logged in effects when it took effect:
 * a key twice in effects is an effect applied twice. */
static void create_services(void)
{
    exec_admin("CREATE TABLE inventory (item text PRIMARY KEY, stock int NOT NULL, reserved int NOT NULL)");
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO inventory VALUES ('widget', %d, 0)", STOCK);
    exec_admin(sql);
    exec_admin("CREATE TABLE reservations (key text PRIMARY KEY, saga bigint NOT NULL, qty int NOT NULL, "
               "released boolean NOT NULL DEFAULT false)");
    exec_admin("CREATE TABLE payments (key text PRIMARY KEY, saga bigint NOT NULL, amount int NOT NULL, "
               "refunded boolean NOT NULL DEFAULT false)");
    exec_admin("CREATE TABLE orders (key text PRIMARY KEY, saga bigint NOT NULL, "
               "cancelled boolean NOT NULL DEFAULT false)");
    exec_admin("CREATE TABLE shipments (key text PRIMARY KEY, saga bigint NOT NULL, "
               "cancelled boolean NOT NULL DEFAULT false)");
    exec_admin("CREATE TABLE effects (key text NOT NULL, op text NOT NULL)");
}

/* ------------------------------------------------------------------ the children's side */

static bk_db_t *cdb;

/* The service's statement for one call: $1 the idempotency key, $2 the saga. */
static const char *const DO[4] = {
    "WITH ins AS (INSERT INTO reservations (key, saga, qty) VALUES ($1, $2::bigint, 1) ON CONFLICT DO NOTHING "
    "RETURNING key, qty), inv AS (UPDATE inventory SET stock = stock - (SELECT qty FROM ins), "
    "reserved = reserved + (SELECT qty FROM ins) WHERE item = 'widget' AND EXISTS (SELECT 1 FROM ins)) "
    "INSERT INTO effects SELECT key, 'reserve' FROM ins",
    "WITH ins AS (INSERT INTO payments (key, saga, amount) VALUES ($1, $2::bigint, 42) ON CONFLICT DO NOTHING "
    "RETURNING key) INSERT INTO effects SELECT key, 'charge' FROM ins",
    "WITH ins AS (INSERT INTO orders (key, saga) VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING RETURNING key) "
    "INSERT INTO effects SELECT key, 'order' FROM ins",
    "WITH ins AS (INSERT INTO shipments (key, saga) VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING "
    "RETURNING key) INSERT INTO effects SELECT key, 'ship' FROM ins",
};
/* Undoing, with the same key: nothing when there is nothing (or nothing left) to undo. */
static const char *const UNDO[4] = {
    "WITH rel AS (UPDATE reservations SET released = true WHERE key = $1 AND NOT released AND $2::bigint > 0 "
    "RETURNING key, qty), inv AS (UPDATE inventory SET stock = stock + (SELECT qty FROM rel), "
    "reserved = reserved - (SELECT qty FROM rel) WHERE item = 'widget' AND EXISTS (SELECT 1 FROM rel)) "
    "INSERT INTO effects SELECT key, 'release' FROM rel",
    "WITH r AS (UPDATE payments SET refunded = true WHERE key = $1 AND NOT refunded AND $2::bigint > 0 "
    "RETURNING key) INSERT INTO effects SELECT key, 'refund' FROM r",
    "WITH r AS (UPDATE orders SET cancelled = true WHERE key = $1 AND NOT cancelled AND $2::bigint > 0 "
    "RETURNING key) INSERT INTO effects SELECT key, 'cancel' FROM r",
    "WITH r AS (UPDATE shipments SET cancelled = true WHERE key = $1 AND NOT cancelled AND $2::bigint > 0 "
    "RETURNING key) INSERT INTO effects SELECT key, 'unship' FROM r",
};

static int call_service(const char *sql, const bk_saga_call_t *call, bk_error_t *err)
{
    /* 15% of calls are refused before they do anything. */
    if (random() % 100 < 15) {
        snprintf(err->message, sizeof err->message, "%s: refused", call->step);
        return BK_EUPSTREAM;
    }
    char saga[24];
    snprintf(saga, sizeof saga, "%lld", (long long)call->saga_id);
    bk_db_param_t p[] = {BK_DB_TEXT(call->idempotency_key), BK_DB_TEXT(saga)};
    bk_db_conn_t *c;
    int rc = bk_db_acquire(cdb, &c, err);
    if (rc == BK_OK) {
        rc = bk_db_query(c, sql, p, 2, NULL, err);
        bk_db_release(c);
    }
    /* Some work after the call, so that kills land between the effect and
     * the step's outcome being recorded. */
    usleep(500 + (useconds_t)(random() % 4000));
    return rc;
}

static int step_index(const char *name)
{
    static const char *const N[4] = {"reserve", "charge", "order", "ship"};
    for (int i = 0; i < 4; i++)
        if (strcmp(N[i], name) == 0)
            return i;
    return 0;
}

static int act(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    (void)out;
    (void)ud;
    return call_service(DO[step_index(call->step)], call, err);
}

static int undo(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    (void)ud;
    return call_service(UNDO[step_index(call->step)], call, err);
}

static bk_saga_def_t *order_def(void)
{
    bk_saga_def_t *d;
    if (bk_saga_def_new("order", 1, &d, NULL) != BK_OK)
        return NULL;
    static bk_retry_opts_t r;
    bk_retry_opts_init(&r);
    r.base_ns = 5 * MS;
    r.cap_ns = 40 * MS;
    static const char *const N[4] = {"reserve", "charge", "order", "ship"};
    for (int i = 0; i < 4; i++) {
        bk_saga_step_opts_t o;
        bk_saga_step_opts_init(&o);
        o.max_attempts = 2; /* 15%^2: a few sagas fail a step for good and compensate */
        o.compensate_attempts = 50;
        o.retry = &r;
        if (bk_saga_def_step(d, N[i], act, undo, &o, NULL) != BK_OK) {
            bk_saga_def_free(d);
            return NULL;
        }
    }
    return d;
}

struct child {
    bk_jobs_t *jobs;
    bk_saga_engine_t *engine;
    bk_saga_def_t *def;
};

static int child_open(struct child *ch, bool start)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.max_conns = 12;
    bk_error_t err;
    if (bk_db_new(conninfo, &o, &cdb, &err) != BK_OK) {
        fprintf(stderr, "child %d: bk_db_new: %s\n", (int)getpid(), err.message);
        return -1;
    }
    bk_jobs_opts_t jo;
    bk_jobs_opts_init(&jo);
    jo.lease_ns = LEASE_MS * MS;
    bk_saga_opts_t so;
    bk_saga_opts_init(&so);
    so.threads = 4;
    so.poll_interval_ns = 20 * MS;
    int rc = bk_jobs_new(cdb, &jo, &ch->jobs, &err);
    if (rc == BK_OK)
        rc = bk_saga_engine_new(ch->jobs, &so, &ch->engine, &err);
    if (rc == BK_OK && !(ch->def = order_def()))
        rc = BK_ENOMEM;
    if (rc == BK_OK)
        rc = bk_saga_register(ch->engine, ch->def, &err);
    if (rc == BK_OK && start)
        rc = bk_saga_engine_start(ch->engine, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "child %d: %s: %s\n", (int)getpid(), bk_err_name(rc), err.message);
        return -1;
    }
    return 0;
}

static void child_close(struct child *ch)
{
    bk_saga_engine_free(ch->engine);
    bk_saga_def_free(ch->def);
    bk_jobs_free(ch->jobs);
    bk_db_free(cdb);
}

/* Starts the sagas (each with its key: started once however often this runs). */
static int child_start_sagas(void)
{
    struct child ch = {0};
    if (child_open(&ch, false) != 0)
        return 10;
    int st = 0;
    for (int i = 0; i < N_SAGAS && st == 0; i++) {
        char key[32];
        snprintf(key, sizeof key, "order-%d", i);
        json_t *ctx = json_pack("{s:i}", "n", i);
        bk_error_t err;
        int rc = bk_saga_start(ch.engine, ch.def, key, ctx, NULL, &err);
        json_decref(ctx);
        if (rc != BK_OK) {
            fprintf(stderr, "start: %s: %s\n", bk_err_name(rc), err.message);
            st = 12;
        }
    }
    child_close(&ch);
    return st;
}

/* Runs sagas until stop_fd reaches EOF, then stops gracefully. */
static int child_worker(int stop_fd)
{
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    struct child ch = {0};
    if (child_open(&ch, true) != 0)
        return 10;
    char b;
    ssize_t r;
    while ((r = read(stop_fd, &b, 1)) != 0 && (r > 0 || errno == EINTR))
        ;
    bk_saga_engine_stop(ch.engine, bk_clock_mono_ns(NULL) + 60 * BK_NSEC_PER_SEC);
    child_close(&ch);
    return 0;
}

static pid_t spawn_worker(int *stop_w)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[1]);
        _exit(child_worker(p[0]));
    }
    close(p[0]);
    *stop_w = p[1];
    bkt_track(pid, true);
    return pid;
}

static void start_sagas(void)
{
    fflush(NULL);
    pid_t s = fork();
    ck_assert_int_ge(s, 0);
    if (s == 0)
        _exit(child_start_sagas());
    bkt_ck_exited_ok(s, "start");
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_saga.sagas"), N_SAGAS);
}

/* ------------------------------------------------------------------ the invariants */

#define FINISHED "SELECT count(*) FROM backend_saga.sagas WHERE status IN ('completed', 'compensated')"
#define PROGRESS "SELECT count(*) FROM backend_saga.attempts WHERE outcome IS NOT NULL"

static const char *const VIOLATIONS[][2] = {
    {"sagas neither completed nor compensated",
     "SELECT count(*) FROM backend_saga.sagas WHERE status NOT IN ('completed', 'compensated')"},
    {"stock + reserved <> initial",
     "SELECT count(*) FROM inventory WHERE stock + reserved <> 100000"},
    {"reserved <> live reservations",
     "SELECT count(*) FROM inventory WHERE reserved <> (SELECT count(*) FROM reservations WHERE NOT released)"},
    {"charges with neither a refund nor a live order",
     "SELECT count(*) FROM payments p WHERE NOT p.refunded AND NOT EXISTS (SELECT 1 FROM orders o "
     "WHERE o.saga = p.saga AND NOT o.cancelled)"},
    {"completed sagas missing an effect",
     "SELECT count(*) FROM backend_saga.sagas s WHERE status = 'completed' AND NOT ("
     "EXISTS (SELECT 1 FROM reservations r WHERE r.saga = s.id AND NOT r.released) AND "
     "EXISTS (SELECT 1 FROM payments p WHERE p.saga = s.id AND NOT p.refunded) AND "
     "EXISTS (SELECT 1 FROM orders o WHERE o.saga = s.id AND NOT o.cancelled) AND "
     "EXISTS (SELECT 1 FROM shipments h WHERE h.saga = s.id AND NOT h.cancelled))"},
    {"compensated sagas with an effect left",
     "SELECT count(*) FROM backend_saga.sagas s WHERE status = 'compensated' AND ("
     "EXISTS (SELECT 1 FROM reservations r WHERE r.saga = s.id AND NOT r.released) OR "
     "EXISTS (SELECT 1 FROM payments p WHERE p.saga = s.id AND NOT p.refunded) OR "
     "EXISTS (SELECT 1 FROM orders o WHERE o.saga = s.id AND NOT o.cancelled) OR "
     "EXISTS (SELECT 1 FROM shipments h WHERE h.saga = s.id AND NOT h.cancelled))"},
    {"effects applied twice for one key",
     "SELECT count(*) FROM (SELECT key, op FROM effects GROUP BY key, op HAVING count(*) > 1) d"},
};

/* What a failing run needs to be understood: the sagas of the broken charges. */
static void diagnose(void)
{
    PGconn *pg = PQconnectdb(conninfo);
    PGresult *r = PQexec(pg, "SELECT s.id, s.status, s.error, (SELECT string_agg(t.name || '=' || t.status || '/' || "
                             "t.attempts || '/' || t.compensate_attempts, ' ' ORDER BY t.idx) FROM backend_saga.steps t "
                             "WHERE t.saga_id = s.id), (SELECT string_agg(a.idx || a.phase || a.attempt || ':' || "
                             "coalesce(a.outcome, 'DIED'), ' ' ORDER BY a.started_at) FROM backend_saga.attempts a "
                             "WHERE a.saga_id = s.id), (SELECT string_agg(e.op, ' ') FROM effects e WHERE e.key LIKE "
                             "s.id || '/%') FROM backend_saga.sagas s JOIN payments p ON p.saga = s.id WHERE NOT "
                             "p.refunded AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.saga = s.id AND NOT o.cancelled)");
    for (int i = 0; i < PQntuples(r); i++)
        printf("  saga %s %s (%s): steps %s; attempts %s; effects %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    fflush(stdout);
    PQclear(r);
    PQfinish(pg);
}

static void ck_invariants(const char *what, double t0)
{
    long long compensated = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_saga.sagas WHERE status = 'compensated'");
    long long attempts = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_saga.attempts");
    long long died = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_saga.attempts WHERE outcome IS NULL");
    long long workers = bkt_sql_ll(conninfo, "SELECT count(DISTINCT worker) FROM backend_saga.attempts");
    long long total = 0;
    char report[2048];
    size_t n = (size_t)snprintf(report, sizeof report, "%s: %d sagas, %lld compensated; %lld attempts (%lld cut "
                                "short by a kill) by %lld processes; %.1f s; violations:", what, N_SAGAS,
                                compensated, attempts, died, workers, bkt_now_s() - t0);
    long long v[sizeof VIOLATIONS / sizeof VIOLATIONS[0]];
    for (size_t i = 0; i < sizeof VIOLATIONS / sizeof VIOLATIONS[0]; i++) {
        v[i] = bkt_sql_ll(conninfo, VIOLATIONS[i][1]);
        total += v[i];
        n += (size_t)snprintf(report + n, sizeof report - n, " %s %lld;", VIOLATIONS[i][0], v[i]);
    }
    printf("%s\n", report);
    fflush(stdout);
    if (total)
        diagnose();
    for (size_t i = 0; i < sizeof VIOLATIONS / sizeof VIOLATIONS[0]; i++)
        ck_assert_msg(v[i] == 0, "%s: %lld", VIOLATIONS[i][0], v[i]);
    ck_assert_int_eq(total, 0);
}

static int saga_kills(void)
{
    const char *v = getenv("SAGA_KILLS");
    return v && *v ? atoi(v) : 20;
}

/* ------------------------------------------------------------------ cases */

START_TEST(killed_processes_leave_every_saga_whole)
{
    double t0 = bkt_now_s();
    create_services();
    start_sagas();
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srandom(seed);
    int kills = saga_kills(), done = 0, midway = 0;
    /* A kill once every saga is finished proves nothing: the kills stop there. */
    for (; done < kills && bkt_sql_ll(conninfo, FINISHED) < N_SAGAS; done++) {
        long long progress = bkt_sql_ll(conninfo, PROGRESS);
        int stop_w;
        pid_t w = spawn_worker(&stop_w);
        bkt_wait_progress(conninfo, PROGRESS, progress);
        usleep((useconds_t)(random() % 100000));
        ck_assert_int_eq(kill(w, SIGKILL), 0);
        int st = bkt_wait_child(w);
        close(stop_w);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "worker %d ended before its kill: status %d",
                      (int)w, st);
        if (bkt_sql_ll(conninfo, FINISHED) < N_SAGAS)
            midway++;
    }
    int stop_w;
    pid_t w = spawn_worker(&stop_w);
    bkt_wait_sql(conninfo, FINISHED, N_SAGAS);
    close(stop_w);
    bkt_ck_exited_ok(w, "the last worker");
    printf("crash: seed %u, %d kills (%d with sagas unfinished)\n", seed, done, midway);
    /* Each kill found sagas unfinished (midway counts those), and there were
     * enough of them: on a fast machine the last sagas may finish before the
     * last kills, which are then not made. */
    int enough = kills < 10 ? kills : 10;
    ck_assert_msg(midway >= enough, "only %d kills found sagas unfinished, fewer than %d: the test proved less",
                  midway, enough);
    ck_invariants("crash", t0);
}
END_TEST

START_TEST(a_survivor_finishes_what_a_killed_peer_left)
{
    double t0 = bkt_now_s();
    create_services();
    start_sagas();
    int stop_a, stop_b;
    pid_t a = spawn_worker(&stop_a), b = spawn_worker(&stop_b);
    /* Both at work, then a dies mid-stream. */
    bkt_wait_sql(conninfo, "SELECT least(count(DISTINCT worker), 2) FROM backend_saga.attempts", 2);
    ck_assert_int_lt(bkt_sql_ll(conninfo, FINISHED), N_SAGAS);
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    int st = bkt_wait_child(a);
    close(stop_a);
    ck_assert(WIFSIGNALED(st));
    bkt_wait_sql(conninfo, FINISHED, N_SAGAS);
    close(stop_b);
    bkt_ck_exited_ok(b, "the survivor");
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM backend_saga.attempts WHERE worker LIKE '%%:%d'", (int)b);
    ck_assert_int_gt(bkt_sql_ll(conninfo, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM backend_saga.attempts WHERE worker LIKE '%%:%d'", (int)a);
    ck_assert_int_gt(bkt_sql_ll(conninfo, sql), 0);
    /* The attempts' key is (saga, step, phase, number): a number is started by one process only. */
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) - count(DISTINCT (saga_id, idx, phase, attempt)) "
                            "FROM backend_saga.attempts"), 0);
    ck_invariants("two processes", t0);
}
END_TEST

static Suite *saga_crash_suite(void)
{
    Suite *s = suite_create("saga_crash");
    TCase *t = tcase_create("crash");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 900);
    tcase_add_test(t, killed_processes_leave_every_saga_whole);
    tcase_add_test(t, a_survivor_finishes_what_a_killed_peer_left);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return bk_test_run(saga_crash_suite());
}
