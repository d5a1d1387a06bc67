/* Benchmark of the jobs module (lib/jobs), beside floors measured in the same run,
 * on a database of its own (created with a random name at start, dropped at the
 * end; the queue's tables in its default schema backend_jobs):
 *
 *   jobs_run_1t, jobs_run_2t: jobs/s through claim -> run (an empty handler) ->
 *     complete of N jobs enqueued beforehand (one batch statement, untimed),
 *     timed from the worker's start until all N are completed;
 *     ours: a bk_jobs worker of 1 and 2 handler threads (each claims for
 *           the idle threads, 1 job at a time once busy, as the floor does);
 *     base: the floor: the worker's own claim and complete statements (copied
 *           from lib/jobs/jobs.c below: keep them in step), prepared once and
 *           issued by hand with libpq, one connection per thread, claiming 1
 *           job at a time as the worker does, until the queue is empty.
 *   jobs_enqueue_batch: jobs/s of bk_jobs_enqueue_batch, BATCH jobs per call (each
 *     call its own transaction), against base = bk_jobs_enqueue of one job per
 *     call. The goal of issue 18 is >= 5x.
 *   jobs_latency_notify_p50/_p99, jobs_latency_poll_p50/_p99: pickup latency in
 *     ms, from the return of bk_jobs_enqueue (its commit) to the start of the
 *     handler, of a worker woken by the enqueue's NOTIFY, then of one in
 *     poll_only mode polling every POLL_MS; base = POLL_MS (a poll's expected
 *     p50 is about half of it, p99 about all of it; NOTIFY should be far below).
 *     The enqueues are spaced by a random pause so that they do not keep one
 *     phase of the poll.
 *
 * Rounds of base and ours alternate (their order flips every round), ROUNDS times
 * per figure; the best round of each counts (as in bench_db.c). Every round is
 * checked: all N jobs completed, no other state; a failure fails the bench. The
 * system clock throughout (the queue's clock NULL).
 *
 * The server: conninfo from BK_BENCH_PG_DSN, else BK_TEST_PG_DSN (which
 * tests/harness/services.sh exports; `make bench` runs this program under it).
 *
 *   BENCH jobs_run_1t ours=<jobs/s> base=<jobs/s> unit=jobs/s ratio=<ours/base>
 *   BENCH jobs_run_2t ...
 *   BENCH jobs_enqueue_batch ours=<jobs/s> base=<jobs/s> unit=jobs/s ratio=<ours/base>
 *   BENCH jobs_latency_notify_p50 ours=<ms> base=<ms> unit=ms ratio=<ours/base>
 *   BENCH jobs_latency_notify_p99, jobs_latency_poll_p50, jobs_latency_poll_p99 ...
 *
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include <backend/db.h>
#include <backend/jobs.h>

#include "bench_pg.h"

enum {
    N_JOBS = 1000,   /* per round of jobs_run_* */
    N_WARMUP = 200,  /* per untimed warm-up round */
    ROUNDS = 3,
    MAX_THREADS = 2,
    BATCH = 1000,    /* jobs per bk_jobs_enqueue_batch call */
    POLL_MS = 50,
    LAT_SAMPLES = 200,
};
#define ENQ_ROUND_SECONDS 0.5

static const char KIND[] = "bench";
static const char KINDS_ARRAY[] = "{\"bench\"}"; /* what the worker sends as $4 */
static const char QUEUE[] = "default";

/* The statements of lib/jobs/jobs.c (SQL_CLAIM, SQL_COMPLETE) for the schema
 * backend_jobs, as the floor issues them. */
#define TS(n) "('epoch'::timestamptz + ($" #n "::bigint / 1000) * interval '1 microsecond')"
#define S "\"backend_jobs\""
static const char CLAIM_SQL[] =
    "WITH dead AS (UPDATE " S ".jobs SET state = 'discarded', finished_at = " TS(1) ", "
    "lease_until = NULL, errors = errors || jsonb_build_array(jsonb_build_object('attempt', "
    "attempt, 'at', " TS(1) ", 'error', 'the lease expired on the last attempt')) "
    "WHERE id IN (SELECT id FROM " S ".jobs WHERE queue = $3 AND state = 'running' "
    "AND lease_until < " TS(1) " AND attempt >= max_attempts "
    "AND ($4::text[] IS NULL OR kind = ANY($4::text[])) FOR UPDATE SKIP LOCKED) RETURNING id), "
    "rescued AS (SELECT id FROM " S ".jobs WHERE queue = $3 AND state = 'running' "
    "AND lease_until < " TS(1) " AND attempt < max_attempts "
    "AND ($4::text[] IS NULL OR kind = ANY($4::text[])) "
    "ORDER BY lease_until LIMIT $5 FOR UPDATE SKIP LOCKED), "
    "ready AS (SELECT id FROM " S ".jobs WHERE queue = $3 AND state IN ('available', 'retryable') "
    "AND run_at <= " TS(1) " AND ($4::text[] IS NULL OR kind = ANY($4::text[])) "
    "ORDER BY priority, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), "
    "pick AS (SELECT id FROM rescued UNION ALL SELECT id FROM ready LIMIT $5) "
    "UPDATE " S ".jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = " TS(1) ", "
    "lease_until = " TS(1) " + ($2::bigint / 1000) * interval '1 microsecond' "
    "WHERE j.id IN (SELECT id FROM pick) "
    "RETURNING j.id, j.kind, j.args::text, j.attempt, j.max_attempts, j.timeout_ns, "
    "j.cancel_requested, j.priority, j.run_at";
static const char COMPLETE_SQL[] = "UPDATE " S ".jobs SET state = 'completed', finished_at = " TS(3)
                                   ", lease_until = NULL WHERE id = $1 AND attempt = $2 AND state = 'running'";
#undef S
#undef TS

static char conninfo[2048];
static bk_db_t *db;
static bk_jobs_t *jobs;
static PGconn *bench_admin; /* on the bench's database: checks and truncation */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * BK_NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Empties the queue between rounds, so that every round starts alike. */
static int truncate_jobs(void)
{
    return bench_pg_exec("bench_jobs", bench_admin, "TRUNCATE backend_jobs.jobs") &&
           bench_pg_exec("bench_jobs", bench_admin, "VACUUM ANALYZE backend_jobs.jobs");
}

/* n jobs of KIND, args {}, in batches (untimed). */
static int enqueue_n(size_t n)
{
    static bk_jobs_batch_item_t items[500];
    for (size_t i = 0; i < 500; i++)
        items[i] = (bk_jobs_batch_item_t){KIND, NULL, NULL};
    while (n > 0) {
        size_t k = n < 500 ? n : 500;
        size_t done = 0;
        bk_error_t err;
        int rc = bk_jobs_enqueue_batch(jobs, NULL, items, k, NULL, &done, &err);
        if (rc != BK_OK || done != k) {
            fprintf(stderr, "bench_jobs: enqueue_batch: %s: %s\n", bk_strerror(rc), err.message);
            return -1;
        }
        n -= k;
    }
    return 0;
}

/* Every one of n jobs completed, none in another state. */
static int all_completed(size_t n)
{
    PGresult *r = PQexec(bench_admin, "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) "
                                      "FROM backend_jobs.jobs");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && strtoull(PQgetvalue(r, 0, 0), NULL, 10) == n &&
             strtoull(PQgetvalue(r, 0, 1), NULL, 10) == n;
    if (!ok)
        fprintf(stderr, "bench_jobs: expected %zu completed jobs, found %s of %s\n", n,
                PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?",
                PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 1) : "?");
    PQclear(r);
    return ok;
}

/* ------------------------------------------------------------------ jobs_run: ours */
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t run_cv = PTHREAD_COND_INITIALIZER;
static size_t run_count, run_target;

static int empty_handler(bk_job_t *job, void *ud)
{
    (void)job;
    (void)ud;
    pthread_mutex_lock(&run_mu);
    if (++run_count == run_target)
        pthread_cond_signal(&run_cv);
    pthread_mutex_unlock(&run_mu);
    return BK_OK;
}

/* jobs/s of a worker of threads threads over n jobs enqueued beforehand;
 * < 0 on a failure. The clock stops when bk_jobs_worker_stop returns: every
 * handler's completion recorded. */
static double ours_run(unsigned threads, size_t n)
{
    if (!truncate_jobs() || enqueue_n(n) != 0)
        return -1;
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    o.threads = threads;
    o.poll_interval_ns = POLL_MS * BK_NSEC_PER_MSEC;
    bk_jobs_worker_t *w;
    bk_error_t err;
    if (bk_jobs_worker_new(jobs, &o, &w, &err) != BK_OK || bk_jobs_handle(w, KIND, empty_handler, NULL) != BK_OK) {
        fprintf(stderr, "bench_jobs: worker: %s\n", err.message);
        return -1;
    }
    run_count = 0;
    run_target = n;
    double t0 = mono_s();
    if (bk_jobs_worker_start(w, &err) != BK_OK) {
        fprintf(stderr, "bench_jobs: worker start: %s\n", err.message);
        bk_jobs_worker_free(w);
        return -1;
    }
    pthread_mutex_lock(&run_mu);
    while (run_count < n)
        pthread_cond_wait(&run_cv, &run_mu);
    pthread_mutex_unlock(&run_mu);
    int rc = bk_jobs_worker_stop(w, bk_clock_mono_ns(NULL) + 10 * BK_NSEC_PER_SEC);
    double t1 = mono_s();
    bk_jobs_worker_free(w);
    if (rc != BK_OK || !all_completed(n))
        return -1;
    return (double)n / (t1 - t0);
}

/* ------------------------------------------------------------------ jobs_run: the floor */
struct floor_thread {
    _Alignas(64) PGconn *pg;
    pthread_barrier_t *start;
    unsigned long done, failures;
    double t0, t1;
};

/* Claim 1, complete it, until a claim finds nothing. */
static void *floor_main(void *arg)
{
    struct floor_thread *f = arg;
    char now[24], lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, (int64_t)30 * BK_NSEC_PER_SEC);
    pthread_barrier_wait(f->start);
    f->t0 = mono_s();
    for (;;) {
        snprintf(now, sizeof now, "%" PRId64, wall_ns());
        const char *cp[5] = {now, lease, QUEUE, KINDS_ARRAY, "1"};
        PGresult *r = PQexecPrepared(f->pg, "claim", 5, cp, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            f->failures++;
            PQclear(r);
            break;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows; i++) {
            snprintf(now, sizeof now, "%" PRId64, wall_ns());
            const char *pp[3] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 3), now};
            PGresult *c = PQexecPrepared(f->pg, "complete", 3, pp, NULL, NULL, 0);
            if (PQresultStatus(c) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(c), "1") != 0)
                f->failures++;
            else
                f->done++;
            PQclear(c);
        }
        PQclear(r);
        if (rows == 0)
            break;
    }
    f->t1 = mono_s();
    return NULL;
}

static struct floor_thread floor_th[MAX_THREADS];

static double floor_run(unsigned threads, size_t n)
{
    if (!truncate_jobs() || enqueue_n(n) != 0)
        return -1;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, threads);
    pthread_t th[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++) {
        floor_th[t].start = &start;
        floor_th[t].done = floor_th[t].failures = 0;
        if (pthread_create(&th[t], NULL, floor_main, &floor_th[t]) != 0) {
            perror("bench_jobs: pthread_create");
            exit(EXIT_FAILURE);
        }
    }
    double t0 = 0, t1 = 0;
    unsigned long done = 0, failures = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        done += floor_th[t].done;
        failures += floor_th[t].failures;
        if (t == 0 || floor_th[t].t0 < t0)
            t0 = floor_th[t].t0;
        if (t == 0 || floor_th[t].t1 > t1)
            t1 = floor_th[t].t1;
    }
    pthread_barrier_destroy(&start);
    if (failures || done != n || !all_completed(n)) {
        fprintf(stderr, "bench_jobs: the floor failed %lu statements, completed %lu\n", failures, done);
        return -1;
    }
    return (double)n / (t1 - t0);
}

/* ------------------------------------------------------------------ jobs_enqueue_batch */
static double enqueue_rate(int batch)
{
    static bk_jobs_batch_item_t items[BATCH];
    json_t *args = json_pack("{s:i}", "n", 1);
    for (int i = 0; i < BATCH; i++)
        items[i] = (bk_jobs_batch_item_t){KIND, args, NULL};
    unsigned long n = 0;
    double t0 = mono_s(), t;
    int failed = 0;
    do {
        bk_error_t err;
        int rc;
        if (batch) {
            size_t done = 0;
            rc = bk_jobs_enqueue_batch(jobs, NULL, items, BATCH, NULL, &done, &err);
            n += done;
        } else {
            rc = bk_jobs_enqueue(jobs, NULL, KIND, args, NULL, NULL, &err);
            n += rc == BK_OK;
        }
        if (rc != BK_OK) {
            fprintf(stderr, "bench_jobs: enqueue: %s: %s\n", bk_strerror(rc), err.message);
            failed = 1;
            break;
        }
    } while ((t = mono_s()) - t0 < ENQ_ROUND_SECONDS);
    json_decref(args);
    return failed ? -1 : (double)n / (t - t0);
}

/* ------------------------------------------------------------------ jobs_latency_poll */
static pthread_mutex_t lat_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lat_cv = PTHREAD_COND_INITIALIZER;
static double lat_started; /* the handler's start, monotonic; 0 before */

static int latency_handler(bk_job_t *job, void *ud)
{
    (void)job;
    (void)ud;
    double t = mono_s();
    pthread_mutex_lock(&lat_mu);
    lat_started = t;
    pthread_cond_signal(&lat_cv);
    pthread_mutex_unlock(&lat_mu);
    return BK_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 in ms of LAT_SAMPLES pickups by a worker of 1 thread polling
 * every POLL_MS, woken by NOTIFY too unless poll_only. */
static int latency(bool poll_only, double *p50, double *p99)
{
    if (!truncate_jobs())
        return -1;
    bk_jobs_worker_opts_t o;
    bk_jobs_worker_opts_init(&o);
    o.poll_interval_ns = POLL_MS * BK_NSEC_PER_MSEC;
    o.poll_only = poll_only;
    bk_jobs_worker_t *w;
    bk_error_t err;
    if (bk_jobs_worker_new(jobs, &o, &w, &err) != BK_OK || bk_jobs_handle(w, KIND, latency_handler, NULL) != BK_OK ||
        bk_jobs_worker_start(w, &err) != BK_OK) {
        fprintf(stderr, "bench_jobs: latency worker: %s\n", err.message);
        bk_jobs_worker_free(w);
        return -1;
    }
    static double ms[LAT_SAMPLES];
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    int rc = 0;
    for (int i = 0; i < LAT_SAMPLES && rc == 0; i++) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        sleep_ms((double)((rng * 2685821657736338717ULL) >> 40 & 0xffff) / 65536.0 * POLL_MS);
        pthread_mutex_lock(&lat_mu);
        lat_started = 0;
        pthread_mutex_unlock(&lat_mu);
        if (bk_jobs_enqueue(jobs, NULL, KIND, NULL, NULL, NULL, &err) != BK_OK) {
            fprintf(stderr, "bench_jobs: enqueue: %s\n", err.message);
            rc = -1;
            break;
        }
        double committed = mono_s();
        pthread_mutex_lock(&lat_mu);
        while (lat_started == 0)
            pthread_cond_wait(&lat_cv, &lat_mu);
        /* A handler quicker than our clock read after the commit: count 0. */
        ms[i] = lat_started > committed ? (lat_started - committed) * 1e3 : 0;
        pthread_mutex_unlock(&lat_mu);
    }
    if (bk_jobs_worker_stop(w, bk_clock_mono_ns(NULL) + 10 * BK_NSEC_PER_SEC) != BK_OK)
        rc = -1;
    bk_jobs_worker_free(w);
    if (rc == 0 && !all_completed(LAT_SAMPLES))
        rc = -1;
    if (rc == 0) {
        qsort(ms, LAT_SAMPLES, sizeof *ms, cmp_double);
        *p50 = ms[LAT_SAMPLES / 2];
        *p99 = ms[(LAT_SAMPLES * 99) / 100 - 1];
    }
    return rc;
}

/* ------------------------------------------------------------------ main */
static int prepare_floor(PGconn *pg)
{
    PGresult *r = PQprepare(pg, "claim", CLAIM_SQL, 5, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) {
        r = PQprepare(pg, "complete", COMPLETE_SQL, 3, NULL);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok)
        fprintf(stderr, "bench_jobs: PQprepare: %s", PQerrorMessage(pg));
    return ok ? 0 : -1;
}

static double max2(double a, double b) { return a > b ? a : b; }

static int run_benches(void)
{
    static const unsigned THREADS[2] = {1, 2};
    double ours[2] = {0}, base[2] = {0};
    /* Warm-up, untimed: every pooled connection and floor connection has its
     * statements prepared, the table and its indexes are in the server's cache. */
    for (int i = 0; i < 2; i++)
        if (ours_run(THREADS[i], N_WARMUP) < 0 || floor_run(THREADS[i], N_WARMUP) < 0)
            return -1;

    printf("bench_jobs: %d jobs per round, empty handler; worker (its threads claim, poll %d ms) vs the same "
           "claim/complete statements by hand, one libpq connection per thread, 1 job per claim; best of %d "
           "interleaved rounds\n",
           N_JOBS, POLL_MS, ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < 2; i++) {
            double o, b;
            if (r % 2 == 0) {
                b = floor_run(THREADS[i], N_JOBS);
                o = ours_run(THREADS[i], N_JOBS);
            } else {
                o = ours_run(THREADS[i], N_JOBS);
                b = floor_run(THREADS[i], N_JOBS);
            }
            if (o < 0 || b < 0)
                return -1;
            printf("  round %d, %u threads: worker %.0f jobs/s  floor %.0f jobs/s\n", r + 1, THREADS[i], o, b);
            fflush(stdout);
            ours[i] = max2(ours[i], o);
            base[i] = max2(base[i], b);
        }
    }

    double eo = 0, eb = 0;
    printf("bench_jobs: enqueue, %d jobs per bk_jobs_enqueue_batch vs 1 per bk_jobs_enqueue, each call its own "
           "transaction; best of %d interleaved rounds of %.1f s\n",
           BATCH, ROUNDS, ENQ_ROUND_SECONDS);
    for (int r = 0; r < ROUNDS; r++) {
        double o, b;
        if (!truncate_jobs())
            return -1;
        if (r % 2 == 0) {
            b = enqueue_rate(0);
            o = enqueue_rate(1);
        } else {
            o = enqueue_rate(1);
            b = enqueue_rate(0);
        }
        if (o < 0 || b < 0)
            return -1;
        printf("  round %d: batch %.0f jobs/s  single %.0f jobs/s\n", r + 1, o, b);
        fflush(stdout);
        eo = max2(eo, o);
        eb = max2(eb, b);
    }

    double p50[2], p99[2]; /* [0] NOTIFY, [1] poll-only */
    printf("bench_jobs: pickup latency, woken by NOTIFY, then poll-only (every %d ms), %d jobs enqueued one at a "
           "time at random moments\n",
           POLL_MS, LAT_SAMPLES);
    fflush(stdout);
    for (int i = 0; i < 2; i++)
        if (latency(i == 1, &p50[i], &p99[i]) != 0)
            return -1;

    for (int i = 0; i < 2; i++)
        printf("BENCH jobs_run_%ut ours=%.0f base=%.0f unit=jobs/s ratio=%.3f\n", THREADS[i], ours[i], base[i],
               ours[i] / base[i]);
    printf("BENCH jobs_enqueue_batch ours=%.0f base=%.0f unit=jobs/s ratio=%.3f\n", eo, eb, eo / eb);
    static const char *const WAKE[2] = {"notify", "poll"};
    for (int i = 0; i < 2; i++) {
        printf("BENCH jobs_latency_%s_p50 ours=%.1f base=%d unit=ms ratio=%.3f\n", WAKE[i], p50[i], POLL_MS,
               p50[i] / POLL_MS);
        printf("BENCH jobs_latency_%s_p99 ours=%.1f base=%d unit=ms ratio=%.3f\n", WAKE[i], p99[i], POLL_MS,
               p99[i] / POLL_MS);
    }
    return 0;
}

int main(void)
{
    const char *server = bench_pg_server("bench_jobs");
    if (!server)
        return EXIT_FAILURE;
    PGconn *server_admin = bench_pg_connect("bench_jobs", server);
    char dbname[40];
    if (!server_admin ||
        bench_pg_database("bench_jobs", server, server_admin, "bench_jobs_", dbname, conninfo) != 0) {
        PQfinish(server_admin);
        return EXIT_FAILURE;
    }

    int status = EXIT_FAILURE;
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    /* handlers + heartbeat + a spare at most at once: all opened before timing */
    o.min_conns = MAX_THREADS + 2;
    o.max_conns = MAX_THREADS + 2;
    bk_error_t err;
    int rc = bk_db_new(conninfo, &o, &db, &err);
    if (rc != BK_OK)
        fprintf(stderr, "bench_jobs: bk_db_new: %s: %s\n", bk_strerror(rc), err.message);
    else if ((rc = bk_jobs_new(db, NULL, &jobs, &err)) != BK_OK)
        fprintf(stderr, "bench_jobs: bk_jobs_new: %s: %s\n", bk_strerror(rc), err.message);
    else if ((bench_admin = bench_pg_connect("bench_jobs", conninfo)) != NULL &&
             bench_pg_exec("bench_jobs", bench_admin, "SET client_min_messages = warning")) {
        int ok = 1;
        for (int t = 0; t < MAX_THREADS && ok; t++)
            ok = (floor_th[t].pg = bench_pg_connect("bench_jobs", conninfo)) != NULL &&
                 prepare_floor(floor_th[t].pg) == 0;
        if (ok && run_benches() == 0)
            status = EXIT_SUCCESS;
    }
    for (int t = 0; t < MAX_THREADS; t++)
        PQfinish(floor_th[t].pg);
    PQfinish(bench_admin);
    bk_jobs_free(jobs);
    bk_db_free(db);
    if (!bench_pg_drop("bench_jobs", server_admin, dbname))
        status = EXIT_FAILURE;
    PQfinish(server_admin);
    return status;
}
