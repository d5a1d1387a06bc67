/* Benchmark of a primary-key SELECT through the db pool, beside raw libpq in the
 * same run:
 *
 *   SELECT id, name, email FROM bench_users WHERE id = $1
 *
 * on a table of ROWS rows the bench creates and fills at start and drops at the
 * end, for a random id per query, from 2 threads and from 16 threads:
 *
 *   ours: per query, what a request handler does: bk_db_acquire on a pool of
 *         max_conns = threads (min_conns the same, so no connection is opened
 *         while timing), bk_db_query with the id as a text parameter (a prepared
 *         statement cached on the connection), the name read with bk_db_value,
 *         bk_db_result_free, bk_db_release;
 *   base: one dedicated libpq connection per thread, the statement prepared once
 *         on it (PQprepare), per query PQexecPrepared with the same text
 *         parameter, the name read with PQgetvalue, PQclear.
 *
 * and what bk_db_opts_t.transaction_pooling costs, beside that pool (base):
 *
 *   unnamed:   the same pool in transaction_pooling mode, straight to the
 *              server: every query unnamed (parsed and planned each time);
 *   pgbouncer: that pool through PgBouncer in transaction mode, when
 *              BK_BENCH_PG_POOLER_DSN (else BK_TEST_PG_POOLER_DSN, which `make
 *              bench` exports from tests/harness/pgbouncer.sh) names one: the
 *              unnamed statements and the pooler's hop.
 *
 * Each figure is queries per second over all threads during a round of at least
 * ROUND_SECONDS (wall time from the first thread's start to the last one's end).
 * Rounds of base and ours alternate (their order flips every round), ROUNDS times
 * for each thread count; the best round of each counts. Every answer is checked
 * (one row, the name the id was filled with): a failed query fails the bench.
 *
 * The server: conninfo from BK_BENCH_PG_DSN, else BK_TEST_PG_DSN (which
 * tests/harness/services.sh exports; `make bench` runs this program under it).
 * Neither set: the bench says so and fails. The table is bench_users; an existing
 * table of that name is replaced.
 *
 *   BENCH db_select_2t ours=<q/s> base=<q/s> unit=queries/s ratio=<ours/base>
 *   BENCH db_select_16t ours=<q/s> base=<q/s> unit=queries/s ratio=<ours/base>
 *   BENCH db_unnamed_2t ours=<unnamed q/s> base=<pool q/s> unit=queries/s ratio=...
 *   BENCH db_unnamed_16t ...
 *   BENCH db_pgbouncer_2t ours=<pgbouncer q/s> base=<pool q/s> unit=queries/s ratio=...
 *   BENCH db_pgbouncer_16t ...
 *
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include <backend/db.h>

enum {
    ROWS = 10000,
    ROUNDS = 3,
    MAX_THREADS = 16,
    NCASES = 2,
};
#define ROUND_SECONDS 1.0

static const int THREADS[NCASES] = {2, 16};

static const char SQL[] = "SELECT id, name, email FROM bench_users WHERE id = $1";
static const char STMT[] = "bench_select";

static const char *conninfo, *pooler;

/* One per thread, on its own cache lines. */
struct worker {
    _Alignas(64) PGconn *pg; /* base: the thread's own connection */
    bk_db_t *db;             /* ours: the pool shared by the threads */
    bk_db_t *unnamed;        /* the same in transaction_pooling mode */
    bk_db_t *bouncer;        /* that through PgBouncer; NULL without one */
    pthread_barrier_t *start;
    uint64_t rng;
    unsigned long queries, failures;
    double t0, t1;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: a random id in 1..ROWS, and its text. */
static long next_id(struct worker *w, char *buf, size_t bufsz)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    long id = (long)((w->rng * 2685821657736338717ULL) >> 33) % ROWS + 1;
    snprintf(buf, bufsz, "%ld", id);
    return id;
}

/* The name the row of id was filled with: "user-<id>". */
static int name_ok(const char *name, const char *id)
{
    return name && strncmp(name, "user-", 5) == 0 && strcmp(name + 5, id) == 0;
}

static void base_query(struct worker *w)
{
    char id[16];
    next_id(w, id, sizeof id);
    const char *values[1] = {id};
    PGresult *r = PQexecPrepared(w->pg, STMT, 1, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || !name_ok(PQgetvalue(r, 0, 1), id))
        w->failures++;
    PQclear(r);
}

static void pool_query(struct worker *w, bk_db_t *db)
{
    char id[16];
    next_id(w, id, sizeof id);
    bk_db_conn_t *c;
    if (bk_db_acquire(db, &c, NULL) != BK_OK) {
        w->failures++;
        return;
    }
    bk_db_param_t p[] = {BK_DB_TEXT(id)};
    bk_db_result_t *r;
    if (bk_db_query(c, SQL, p, 1, &r, NULL) == BK_OK) {
        if (bk_db_rows(r) != 1 || !name_ok(bk_db_value(r, 0, 1), id))
            w->failures++;
        bk_db_result_free(r);
    } else {
        w->failures++;
    }
    bk_db_release(c);
}

static void ours_query(struct worker *w)
{
    pool_query(w, w->db);
}

static void unnamed_query(struct worker *w)
{
    pool_query(w, w->unnamed);
}

static void bouncer_query(struct worker *w)
{
    pool_query(w, w->bouncer);
}

struct run {
    struct worker *w;
    void (*op)(struct worker *);
};

/* The workers read the clock themselves (see bench_resilience.c). */
static void *thread_main(void *arg)
{
    struct run *r = arg;
    struct worker *w = r->w;
    unsigned long n = 0;
    pthread_barrier_wait(w->start);
    double t0 = now_s(), t;
    do {
        r->op(w);
        n++;
    } while ((t = now_s()) - t0 < ROUND_SECONDS);
    w->t0 = t0;
    w->t1 = t;
    w->queries += n;
    return NULL;
}

/* Queries per second of op run by threads workers over one round. */
static double round_rate(struct worker *ws, int threads, void (*op)(struct worker *))
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_t th[MAX_THREADS];
    struct run runs[MAX_THREADS];
    unsigned long before = 0, after = 0;
    for (int t = 0; t < threads; t++) {
        before += ws[t].queries;
        ws[t].start = &start;
        runs[t] = (struct run){&ws[t], op};
        if (pthread_create(&th[t], NULL, thread_main, &runs[t]) != 0) {
            perror("bench_db: pthread_create");
            exit(EXIT_FAILURE);
        }
    }
    pthread_barrier_wait(&start);
    double t0 = 0, t1 = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        after += ws[t].queries;
        if (t == 0 || ws[t].t0 < t0)
            t0 = ws[t].t0;
        if (t == 0 || ws[t].t1 > t1)
            t1 = ws[t].t1;
    }
    pthread_barrier_destroy(&start);
    return (double)(after - before) / (t1 - t0);
}

static int exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_db: %s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static PGconn *connect_raw(void)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_db: cannot connect to \"%s\": %s", conninfo, PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Per thread count: the pool (ours) and the dedicated connections (base). */
enum { OP_BASE, OP_OURS, OP_UNNAMED, OP_BOUNCER, NOPS };
static void (*const OPS[NOPS])(struct worker *) = {base_query, ours_query, unnamed_query, bouncer_query};
static const char *const OP_NAMES[NOPS] = {"libpq", "pool", "unnamed", "pgbouncer"};

struct bench_case {
    int threads;
    bk_db_t *db, *unnamed, *bouncer;
    struct worker ws[MAX_THREADS];
    double best[NOPS];
};

/* A pool of threads connections, all opened now. */
static bk_db_t *pool_open(const char *where, int threads, bool transaction_pooling)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.min_conns = (unsigned)threads;
    o.max_conns = (unsigned)threads;
    o.transaction_pooling = transaction_pooling;
    bk_db_t *db;
    bk_error_t err;
    int rc = bk_db_new(where, &o, &db, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "bench_db: bk_db_new: %s: %s\n", bk_strerror(rc), err.message);
        return NULL;
    }
    return db;
}

static int case_open(struct bench_case *k, int threads, uint64_t seed)
{
    k->threads = threads;
    if (!(k->db = pool_open(conninfo, threads, false)) || !(k->unnamed = pool_open(conninfo, threads, true)) ||
        (pooler && !(k->bouncer = pool_open(pooler, threads, true))))
        return -1;
    for (int t = 0; t < threads; t++) {
        struct worker *w = &k->ws[t];
        w->db = k->db;
        w->unnamed = k->unnamed;
        w->bouncer = k->bouncer;
        w->rng = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
        if (!(w->pg = connect_raw()))
            return -1;
        PGresult *r = PQprepare(w->pg, STMT, SQL, 1, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "bench_db: PQprepare: %s", PQerrorMessage(w->pg));
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static void case_close(struct bench_case *k)
{
    for (int t = 0; t < k->threads; t++)
        PQfinish(k->ws[t].pg);
    bk_db_free(k->db);
    bk_db_free(k->unnamed);
    bk_db_free(k->bouncer);
}

static unsigned long case_failures(const struct bench_case *k)
{
    unsigned long f = 0;
    for (int t = 0; t < k->threads; t++)
        f += k->ws[t].failures;
    return f;
}

int main(void)
{
    conninfo = getenv("BK_BENCH_PG_DSN");
    if (!conninfo || !*conninfo)
        conninfo = getenv("BK_TEST_PG_DSN");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "bench_db: no PostgreSQL server: set BK_BENCH_PG_DSN (or BK_TEST_PG_DSN) to a libpq "
                        "conninfo, or run it under tests/harness/services.sh run -- (as `make bench` does)\n");
        return EXIT_FAILURE;
    }
    pooler = getenv("BK_BENCH_PG_POOLER_DSN");
    if (!pooler || !*pooler)
        pooler = getenv("BK_BENCH_PG_DSN") && *getenv("BK_BENCH_PG_DSN") ? NULL : getenv("BK_TEST_PG_POOLER_DSN");
    if (pooler && !*pooler)
        pooler = NULL;

    PGconn *admin = connect_raw();
    if (!admin)
        return EXIT_FAILURE;
    char fill[256];
    snprintf(fill, sizeof fill,
             "INSERT INTO bench_users SELECT g, 'user-' || g, 'user' || g || '@example.com' "
             "FROM generate_series(1, %d) g",
             ROWS);
    if (!exec_ok(admin, "SET client_min_messages = warning") ||
        !exec_ok(admin, "DROP TABLE IF EXISTS bench_users") ||
        !exec_ok(admin, "CREATE TABLE bench_users (id integer PRIMARY KEY, name text NOT NULL, "
                        "email text NOT NULL)") ||
        !exec_ok(admin, fill) || !exec_ok(admin, "VACUUM ANALYZE bench_users")) {
        PQfinish(admin);
        return EXIT_FAILURE;
    }

    static struct bench_case cases[NCASES];
    int status = EXIT_SUCCESS;
    for (int i = 0; i < NCASES && status == EXIT_SUCCESS; i++)
        if (case_open(&cases[i], THREADS[i], 0x2545F4914F6CDD1DULL * (uint64_t)(i + 1)) != 0)
            status = EXIT_FAILURE;

    if (status == EXIT_SUCCESS) {
        /* Warm-up, untimed: every pooled connection prepares the statement, the
         * table and its index are in the server's cache. */
        for (int i = 0; i < NCASES; i++) {
            struct bench_case *k = &cases[i];
            for (int t = 0; t < k->threads; t++)
                for (int q = 0; q < 200; q++)
                    base_query(&k->ws[t]);
            for (int op = OP_OURS; op < NOPS; op++) {
                if (op == OP_BOUNCER && !k->bouncer)
                    continue;
                for (int t = 0; t < k->threads * 200; t++)
                    OPS[op](&k->ws[0]);
                round_rate(k->ws, k->threads, OPS[op]); /* every pooled connection in use */
            }
        }
        for (int i = 0; i < NCASES; i++)
            if (case_failures(&cases[i]))
                status = EXIT_FAILURE;
        if (status != EXIT_SUCCESS)
            fprintf(stderr, "bench_db: the warm-up queries failed\n");
    }

    if (status == EXIT_SUCCESS) {
        printf("bench_db: SELECT by primary key of %d rows, random ids; pool (max_conns = threads) vs one libpq "
               "connection per thread, and the pool in transaction_pooling mode straight to the server (unnamed) "
               "and %s; best of %d interleaved rounds of %.1f s\n",
               ROWS, pooler ? "through PgBouncer (pgbouncer)" : "(no pooler given: no pgbouncer figures)", ROUNDS,
               ROUND_SECONDS);
        for (int r = 0; r < ROUNDS; r++) {
            for (int i = 0; i < NCASES; i++) {
                struct bench_case *k = &cases[i];
                printf("  round %d, %2d threads:", r + 1, k->threads);
                for (int j = 0; j < NOPS; j++) {
                    int op = (j + r) % NOPS; /* each goes first in turn */
                    if (op == OP_BOUNCER && !k->bouncer)
                        continue;
                    double q = round_rate(k->ws, k->threads, OPS[op]);
                    printf("  %s %.0f q/s", OP_NAMES[op], q);
                    k->best[op] = q > k->best[op] ? q : k->best[op];
                }
                printf("\n");
                fflush(stdout);
            }
        }
        for (int i = 0; i < NCASES; i++) {
            unsigned long f = case_failures(&cases[i]);
            if (f) {
                fprintf(stderr, "bench_db: %lu queries failed with %d threads\n", f, cases[i].threads);
                status = EXIT_FAILURE;
            }
        }
    }

    for (int i = 0; i < NCASES; i++)
        if (cases[i].threads)
            case_close(&cases[i]);
    if (!exec_ok(admin, "DROP TABLE IF EXISTS bench_users"))
        status = EXIT_FAILURE;
    PQfinish(admin);

    if (status != EXIT_SUCCESS)
        return status;
    for (int i = 0; i < NCASES; i++) {
        const struct bench_case *k = &cases[i];
        const double *b = k->best;
        printf("BENCH db_select_%dt ours=%.0f base=%.0f unit=queries/s ratio=%.3f\n", k->threads, b[OP_OURS],
               b[OP_BASE], b[OP_OURS] / b[OP_BASE]);
        printf("BENCH db_unnamed_%dt ours=%.0f base=%.0f unit=queries/s ratio=%.3f\n", k->threads, b[OP_UNNAMED],
               b[OP_OURS], b[OP_UNNAMED] / b[OP_OURS]);
        if (k->bouncer)
            printf("BENCH db_pgbouncer_%dt ours=%.0f base=%.0f unit=queries/s ratio=%.3f\n", k->threads,
                   b[OP_BOUNCER], b[OP_OURS], b[OP_BOUNCER] / b[OP_OURS]);
    }
    return EXIT_SUCCESS;
}
