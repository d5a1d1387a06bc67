/* The job queue across processes, on the harness's PostgreSQL (BK_TEST_PG_DSN),
 * with short real leases (one process cannot fake another's clock):
 * - crash: 2,000 jobs, a worker process killed with SIGKILL at CRASH_KILLS
 *   (default 20) random moments and restarted each time; every job ends
 *   completed, the kind completing in its handler's transaction left exactly one
 *   row per job, the kind that commits its row before returning at least one.
 * - fencing: a worker stopped (SIGSTOP) past its lease, the job rescued and
 *   completed by another, the first resumed (SIGCONT): its completion is refused
 *   and its row rolled back with it.
 * Every use of the library happens in forked children, each with its own pool:
 * the test process itself stays single-threaded (fork is safe) and checks the
 * outcome with plain libpq. It asserts outcomes, never durations: the waits are
 * bounded polls of the database that fail loudly.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>

#include <backend/jobs.h>

#include "check_main.h"
#include "pg_test.h"
#include "proc_test.h"

#define MS INT64_C(1000000)
#define N_JOBS 2000
#define LEASE_MS 300

static char conninfo[2048];
static char dbname[40];

static void setup(void)
{
    bkt_pg_database_new("bk_crash_", dbname, conninfo);
}

static void teardown(void)
{
    bkt_children_kill();
    bkt_pg_database_drop(dbname);
}

/* ------------------------------------------------------------------ the test's side (libpq) */

#define COMPLETED "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'completed'"

/* ------------------------------------------------------------------ the children's side */

/* What a child's handlers read: set before its worker starts. */
static bk_db_t *cdb;
static int release_fd = -1;         /* fencing: the handler waits for a byte here first */
static int started_fd = -1;         /* fencing: after writing one here */
static atomic_int fence_rc = -1;    /* fencing: what bk_job_complete_in returned */

static int child_open(int64_t lease_ns, bk_jobs_t **jobs)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.max_conns = 8;
    bk_error_t err;
    if (bk_db_new(conninfo, &o, &cdb, &err) != BK_OK) {
        fprintf(stderr, "child %d: bk_db_new: %s\n", (int)getpid(), err.message);
        return -1;
    }
    bk_jobs_opts_t jo;
    bk_jobs_opts_init(&jo);
    jo.lease_ns = lease_ns;
    int rc = bk_jobs_new(cdb, &jo, jobs, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "child %d: bk_jobs_new: %s: %s\n", (int)getpid(), bk_err_name(rc), err.message);
        bk_db_free(cdb);
        return -1;
    }
    return 0;
}

static void child_close(bk_jobs_t *jobs)
{
    bk_jobs_free(jobs);
    bk_db_free(cdb);
}

static int insert_effect(bk_db_conn_t *c, bk_job_t *job)
{
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO effects (job, attempt, pid) VALUES (%lld, %d, %d)",
             (long long)bk_job_id(job), bk_job_attempt(job), (int)getpid());
    return bk_db_query(c, sql, NULL, 0, NULL, NULL);
}

/* Some work after the row, so that kills land while rows are uncommitted (tx)
 * or committed but the job not completed yet (plain). */
static void some_work(void)
{
    usleep(1000 + (useconds_t)(random() % 8000));
}

static int tx_body(bk_db_conn_t *c, void *ud)
{
    bk_job_t *job = ud;
    int rc = insert_effect(c, job);
    if (rc != BK_OK)
        return rc;
    some_work();
    return bk_job_complete_in(job, c, NULL);
}

/* Completes in its own transaction: the row exists exactly when the job is completed. */
static int tx_handler(bk_job_t *job, void *ud)
{
    (void)ud;
    return bk_db_tx(cdb, BK_DB_READ_COMMITTED, NULL, tx_body, job, NULL);
}

/* Commits its row, then returns BK_OK: a crash in between runs it again. */
static int plain_handler(bk_job_t *job, void *ud)
{
    (void)ud;
    bk_db_conn_t *c;
    int rc = bk_db_acquire(cdb, &c, NULL);
    if (rc != BK_OK)
        return rc;
    rc = insert_effect(c, job);
    bk_db_release(c);
    some_work();
    return rc;
}

static int fence_body(bk_db_conn_t *c, void *ud)
{
    bk_job_t *job = ud;
    int rc = insert_effect(c, job);
    if (rc != BK_OK)
        return rc;
    rc = bk_job_complete_in(job, c, NULL);
    atomic_store(&fence_rc, rc);
    return rc;
}

static int fence_handler(bk_job_t *job, void *ud)
{
    (void)ud;
    if (release_fd >= 0) {
        char b = 's';
        if (write(started_fd, &b, 1) != 1)
            return BK_EIO;
        while (read(release_fd, &b, 1) < 0 && errno == EINTR)
            ;
    }
    return bk_db_tx(cdb, BK_DB_READ_COMMITTED, NULL, fence_body, job, NULL);
}

/* A worker process: runs the handlers until stop_fd reaches EOF (the test
 * closed it), then stops gracefully. Returns its exit status. */
static int child_worker(int stop_fd, int64_t lease_ns, unsigned threads)
{
    srandom((unsigned)getpid());
    bk_jobs_t *jobs;
    if (child_open(lease_ns, &jobs) != 0)
        return 10;
    bk_jobs_worker_opts_t wo;
    bk_jobs_worker_opts_init(&wo);
    wo.threads = threads;
    wo.poll_interval_ns = 20 * MS;
    bk_jobs_worker_t *w;
    bk_error_t err;
    int st = 11;
    if (bk_jobs_worker_new(jobs, &wo, &w, &err) != BK_OK)
        goto out;
    bk_jobs_handle(w, "tx", tx_handler, NULL);
    bk_jobs_handle(w, "plain", plain_handler, NULL);
    bk_jobs_handle(w, "fence", fence_handler, NULL);
    if (bk_jobs_worker_start(w, &err) != BK_OK) {
        fprintf(stderr, "child %d: start: %s\n", (int)getpid(), err.message);
        bk_jobs_worker_free(w);
        goto out;
    }
    char b;
    ssize_t r;
    while ((r = read(stop_fd, &b, 1)) != 0 && (r > 0 || errno == EINTR))
        ;
    bk_jobs_worker_stop(w, bk_clock_mono_ns(NULL) + 60 * BK_NSEC_PER_SEC);
    bk_jobs_worker_free(w);
    st = 0;
out:
    child_close(jobs);
    return st;
}

/* Forks a worker process; *stop_w: the pipe end whose close stops it. */
static pid_t spawn_worker(int *stop_w, int64_t lease_ns, unsigned threads, int rel_fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[1]);
        release_fd = rel_fd;
        _exit(child_worker(p[0], lease_ns, threads));
    }
    close(p[0]);
    *stop_w = p[1];
    bkt_track(pid, true);
    return pid;
}

static void exec_admin(const char *sql)
{
    PGconn *pg = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
}

/* ------------------------------------------------------------------ crash */

/* The enqueuing process: N_JOBS in one batch, tx and plain alternating. Room for
 * many attempts: every kill costs the jobs it interrupted one (their rescue). */
static int child_enqueue(void)
{
    bk_jobs_t *jobs;
    if (child_open(LEASE_MS * MS, &jobs) != 0)
        return 10;
    bk_jobs_enqueue_opts_t eo;
    bk_jobs_enqueue_opts_init(&eo);
    eo.max_attempts = 1000;
    static bk_jobs_batch_item_t items[N_JOBS];
    for (size_t i = 0; i < N_JOBS; i++)
        items[i] = (bk_jobs_batch_item_t){.kind = i % 2 ? "plain" : "tx", .args = NULL, .opts = &eo};
    size_t n = 0;
    bk_error_t err;
    int rc = bk_jobs_enqueue_batch(jobs, NULL, items, N_JOBS, NULL, &n, &err);
    if (rc != BK_OK)
        fprintf(stderr, "enqueue_batch: %s: %s\n", bk_err_name(rc), err.message);
    child_close(jobs);
    return rc == BK_OK && n == N_JOBS ? 0 : 12;
}

static int crash_kills(void)
{
    const char *v = getenv("CRASH_KILLS");
    return v && *v ? atoi(v) : 20;
}

START_TEST(killed_workers_lose_no_job)
{
    double t0 = bkt_now_s();
    /* No unique key on job: only the queue may keep the rows to one a job. */
    exec_admin("CREATE TABLE effects (job bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL)");
    fflush(NULL);
    pid_t e = fork();
    ck_assert_int_ge(e, 0);
    if (e == 0)
        _exit(child_enqueue());
    bkt_ck_exited_ok(e, "enqueue");
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs"), N_JOBS);

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srandom(seed);
    int kills = crash_kills();
    int done = 0, killed_midway = 0;
    for (; done < kills; done++) {
        long long completed = bkt_sql_ll(conninfo, COMPLETED);
        int stop_w;
        pid_t w = spawn_worker(&stop_w, LEASE_MS * MS, 4, -1);
        /* A random moment of its working life: once it has completed a job
         * (however slowly it starts, under valgrind too), 0 to 150 ms more. */
        bkt_wait_progress(conninfo, COMPLETED, completed);
        usleep((useconds_t)(random() % 150000));
        ck_assert_int_eq(kill(w, SIGKILL), 0);
        int st = bkt_wait_child(w);
        close(stop_w);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "worker %d ended before its kill: status %d",
                      (int)w, st);
        if (bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs WHERE state <> 'completed'") > 0)
            killed_midway++;
    }
    long long before_last = bkt_sql_ll(conninfo, COMPLETED);
    int stop_w;
    pid_t w = spawn_worker(&stop_w, LEASE_MS * MS, 4, -1);
    bkt_wait_sql(conninfo, COMPLETED, N_JOBS);
    close(stop_w);
    bkt_ck_exited_ok(w, "the last worker");

    long long jobs_n = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs");
    long long lost = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs WHERE state <> 'completed'");
    long long tx_not_one = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs j WHERE kind = 'tx' AND "
                                  "(SELECT count(*) FROM effects e WHERE e.job = j.id) <> 1");
    long long plain_none = bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs j WHERE kind = 'plain' AND "
                                  "NOT EXISTS (SELECT 1 FROM effects e WHERE e.job = j.id)");
    long long tx_dup = bkt_sql_ll(conninfo, "SELECT count(*) - count(DISTINCT e.job) FROM effects e JOIN backend_jobs.jobs j "
                              "ON j.id = e.job WHERE j.kind = 'tx'");
    long long plain_dup = bkt_sql_ll(conninfo, "SELECT count(*) - count(DISTINCT e.job) FROM effects e JOIN backend_jobs.jobs j "
                                 "ON j.id = e.job WHERE j.kind = 'plain'");
    long long rows = bkt_sql_ll(conninfo, "SELECT count(*) FROM effects");
    long long strays = bkt_sql_ll(conninfo, "SELECT count(*) FROM effects e WHERE NOT EXISTS "
                              "(SELECT 1 FROM backend_jobs.jobs j WHERE j.id = e.job)");
    long long extra = bkt_sql_ll(conninfo, "SELECT sum(attempt) - count(*) FROM backend_jobs.jobs");
    printf("crash: seed %u, %d kills (%d with jobs left), %lld jobs completed before the last worker; "
           "%lld jobs, %lld not completed; rows %lld: tx duplicates %lld, plain duplicates %lld; "
           "attempts beyond the first %lld; %.1f s\n",
           seed, done, killed_midway, before_last, jobs_n, lost, rows, tx_dup, plain_dup, extra, bkt_now_s() - t0);
    ck_assert_int_eq(done, kills);
    ck_assert_msg(killed_midway == kills, "only %d kills found jobs left: the test proved less", killed_midway);
    ck_assert_int_eq(jobs_n, N_JOBS);
    ck_assert_int_eq(lost, 0);
    ck_assert_int_eq(tx_not_one, 0);
    ck_assert_int_eq(tx_dup, 0);
    ck_assert_int_eq(plain_none, 0);
    ck_assert_int_eq(strays, 0);
    ck_assert_int_eq(rows, N_JOBS + plain_dup);
}
END_TEST

/* ------------------------------------------------------------------ fencing */

/* The fenced worker: its handler waits for release_fd, then completes in its
 * transaction; exits 0 when that completion was refused (BK_ECONFLICT), 2 when
 * it was accepted, 3 for another code, 4 when the handler never got that far. */
static int child_fenced(int stop_fd, int rel_fd, int start_fd)
{
    release_fd = rel_fd;
    started_fd = start_fd;
    int st = child_worker(stop_fd, LEASE_MS * MS, 1);
    if (st != 0)
        return st;
    int rc = atomic_load(&fence_rc);
    return rc == BK_ECONFLICT ? 0 : rc == BK_OK ? 2 : rc == -1 ? 4 : 3;
}

START_TEST(stopped_worker_past_its_lease_is_fenced)
{
    double t0 = bkt_now_s();
    /* No unique key on job: A's insert succeeds, only the fencing refuses it. */
    exec_admin("CREATE TABLE effects (job bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL)");
    /* The tables (and the job) come from a process of their own. */
    fflush(NULL);
    pid_t e = fork();
    ck_assert_int_ge(e, 0);
    if (e == 0) {
        bk_jobs_t *jobs;
        if (child_open(LEASE_MS * MS, &jobs) != 0)
            _exit(10);
        int rc = bk_jobs_enqueue(jobs, NULL, "fence", NULL, NULL, NULL, NULL);
        child_close(jobs);
        _exit(rc == BK_OK ? 0 : 12);
    }
    bkt_ck_exited_ok(e, "enqueue");

    int rel[2], stop_a[2], started[2];
    ck_assert_int_eq(pipe(rel), 0);
    ck_assert_int_eq(pipe(started), 0);
    ck_assert_int_eq(pipe(stop_a), 0);
    fflush(NULL);
    pid_t a = fork();
    ck_assert_int_ge(a, 0);
    if (a == 0) {
        close(rel[1]);
        close(stop_a[1]);
        close(started[0]);
        _exit(child_fenced(stop_a[0], rel[0], started[1]));
    }
    bkt_track(a, true);
    close(rel[0]);
    close(stop_a[0]);
    close(started[1]);
    /* A holds the job (attempt 1) and its handler runs: it waits for rel.
     * (Claimed but not started, the job would be given back at A's stop.) */
    struct pollfd pf = {.fd = started[0], .events = POLLIN};
    ck_assert_msg(poll(&pf, 1, BKT_LIMIT_S * 1000) == 1, "A's handler did not start in %d s", BKT_LIMIT_S);
    char sb;
    ck_assert_int_eq(read(started[0], &sb, 1), 1);
    close(started[0]);
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'running' AND attempt = 1"), 1);
    ck_assert_int_eq(kill(a, SIGSTOP), 0);
    /* B's lease is long: only A's may expire here, however slow B runs. */
    int stop_b;
    pid_t b = spawn_worker(&stop_b, 600 * BK_NSEC_PER_SEC / 10, 1, -1);
    bkt_wait_sql(conninfo, "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'completed' AND attempt = 2", 1);
    close(stop_b);
    bkt_ck_exited_ok(b, "worker B");
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM effects WHERE attempt = 2"), 1);

    /* A resumes and tries to complete its attempt 1. */
    ck_assert_int_eq(write(rel[1], "x", 1), 1);
    ck_assert_int_eq(kill(a, SIGCONT), 0);
    close(stop_a[1]); /* A stops once its handler returned */
    int st = bkt_wait_child(a);
    close(rel[1]);
    long long attempt = bkt_sql_ll(conninfo, "SELECT attempt FROM backend_jobs.jobs");
    long long rows = bkt_sql_ll(conninfo, "SELECT count(*) FROM effects");
    printf("fencing: A (pid %d) exit %d (0 = its completion refused), final attempt %lld, rows %lld; %.1f s\n",
           (int)a, WIFEXITED(st) ? WEXITSTATUS(st) : -1, attempt, rows, bkt_now_s() - t0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker A: status %d (2: its completion was accepted)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM backend_jobs.jobs WHERE state = 'completed'"), 1);
    ck_assert_int_eq(attempt, 2);
    ck_assert_int_eq(rows, 1);
    ck_assert_int_eq(bkt_sql_ll(conninfo, "SELECT count(*) FROM effects WHERE attempt = 2"), 1);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("jobs_crash");
    TCase *tc = tcase_create("processes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * BKT_LIMIT_S + 60);
    tcase_add_test(tc, killed_workers_lose_no_job);
    tcase_add_test(tc, stopped_worker_past_its_lease_is_fenced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* A child killed mid-write must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    return bk_test_run(crash_suite());
}
