/* Migrations and results against the private server the harness starts
 * (BK_TEST_PG_DSN; without it every case fails, none is skipped). Each case gets
 * a database of its own, created in setup and dropped in teardown, so suites
 * sharing the server never see each other's tables, and a directory of migration
 * files from mkdtemp. Covers order by numeric version, re-runs, a file changed
 * after it was applied, a failing file rolled back, ignored names, duplicate
 * versions, migrators racing from several processes, and every type of
 * bk_db_result_json.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>

#include <backend/db.h>

#include "check_main.h"
#include "pg_test.h"

static char conninfo[2048]; /* the harness's server, our database */
static char dbname[40];
static char dir[64];
static bk_db_t *db;

/* ------------------------------------------------------------------ fixtures */

static bk_db_t *new_pool(void)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 4;
    bk_db_t *p;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &p, &err) == BK_OK, "bk_db_new: %s", err.message);
    return p;
}

static void setup(void)
{
    bkt_pg_database_new("bk_migrate_", dbname, conninfo);
    snprintf(dir, sizeof dir, "/tmp/bk-migrate.XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    db = new_pool();
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static void teardown(void)
{
    bk_db_free(db);
    db = NULL;
    remove_tree(dir);
    bkt_pg_database_drop(dbname);
}

/* ------------------------------------------------------------------ helpers */

static void put(const char *name, const char *sql)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "%s: %s", p, strerror(errno));
    ck_assert_int_eq(fputs(sql, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The first value of the first row of sql (run on the suite's pool) as a new
 * string; NULL for SQL NULL. */
static char *scalar(const char *sql)
{
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

#define ck_scalar_eq(sql, want)                                                                                    \
    do {                                                                                                       \
        char *got_ = scalar(sql);                                                                              \
        ck_assert_msg(got_ != NULL && strcmp(got_, (want)) == 0, "%s: \"%s\", want \"%s\"", (sql),             \
                      got_ ? got_ : "(null)", (want));                                                         \
        free(got_);                                                                                            \
    } while (0)

/* What bk_schema_migrations records, "1:1_log.sql,2:2_b.sql", or "none" when
 * there is no such table. */
static void ck_recorded(const char *want)
{
    char *exists = scalar("SELECT to_regclass('bk_schema_migrations') IS NOT NULL");
    bool yes = strcmp(exists, "t") == 0;
    free(exists);
    if (!yes) {
        ck_assert_msg(strcmp(want, "none") == 0, "no bk_schema_migrations, want \"%s\"", want);
        return;
    }
    ck_scalar_eq("SELECT coalesce(string_agg(version || ':' || name, ',' ORDER BY version), '') "
                 "FROM bk_schema_migrations",
                 want);
}

/* err starts full of garbage, as a caller's stack would hold it. */
static int migrate(unsigned *applied, bk_error_t *err)
{
    if (err)
        memset(err, 0x5a, sizeof *err);
    return bk_db_migrate(db, dir, applied, err);
}

static void migrate_ok(unsigned want_applied)
{
    unsigned applied = 12345;
    bk_error_t err;
    int rc = migrate(&applied, &err);
    ck_assert_msg(rc == BK_OK, "bk_db_migrate: %s: %s", bk_err_name(rc), err.message);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    ck_assert_str_eq(err.file, "");
    ck_assert_uint_eq(applied, want_applied);
}

/* dir/name, as err->file names a migration. */
static const char *path_of(const char *name)
{
    static char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Three migrations whose versions sort differently as text ("10" < "2"); each
 * appends its version to a log, so the log shows the order they ran in. */
static void three(void)
{
    put("1_log.sql", "CREATE TABLE log (seq serial PRIMARY KEY, v int NOT NULL);\n"
                     "INSERT INTO log (v) VALUES (1);\n");
    put("2_items.sql", "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n"
                       "INSERT INTO log (v) VALUES (2);\n");
    put("10_items_note.sql", "-- a comment, then two statements\n"
                             "ALTER TABLE items ADD COLUMN note text;\n"
                             "CREATE INDEX items_name ON items (name); INSERT INTO log (v) VALUES (10);\n");
}

/* ------------------------------------------------------------------ migrations */

START_TEST(applies_in_numeric_order_and_records)
{
    three();
    ck_recorded("none");
    migrate_ok(3);
    ck_recorded("1:1_log.sql,2:2_items.sql,10:10_items_note.sql");
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1,2,10");
    ck_scalar_eq("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'",
                 "1");
    ck_scalar_eq("SELECT to_regclass('items_name') IS NOT NULL", "t");
    /* The checksum is the file's SHA-256 in hex; applied_at is set. */
    char *want = scalar("SELECT encode(sha256(convert_to('CREATE TABLE log (seq serial PRIMARY KEY, v int NOT "
                        "NULL);' || chr(10) || 'INSERT INTO log (v) VALUES (1);' || chr(10), 'UTF8')), 'hex')");
    ck_assert_uint_eq(strlen(want), 64);
    ck_scalar_eq("SELECT checksum FROM bk_schema_migrations WHERE version = 1", want);
    free(want);
    ck_scalar_eq("SELECT count(*) FROM bk_schema_migrations WHERE applied_at > now() - interval '1 hour'", "3");
}
END_TEST

START_TEST(second_run_applies_nothing_and_a_new_file_applies_alone)
{
    three();
    migrate_ok(3);
    migrate_ok(0);
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1,2,10");
    put("11_more.sql", "INSERT INTO log (v) VALUES (11);");
    migrate_ok(1);
    migrate_ok(0);
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1,2,10,11");
    ck_recorded("1:1_log.sql,2:2_items.sql,10:10_items_note.sql,11:11_more.sql");
}
END_TEST

START_TEST(changed_file_is_refused_and_stops_the_run)
{
    three();
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/10_items_note.sql", dir);
    ck_assert_int_eq(unlink(p), 0);
    migrate_ok(2);
    put("2_items.sql", "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, extra int);\n"
                       "INSERT INTO log (v) VALUES (2);\n");
    put("10_items_note.sql", "INSERT INTO log (v) VALUES (10);");
    unsigned applied = 12345;
    bk_error_t err;
    ck_assert_int_eq(migrate(&applied, &err), BK_ECONFLICT);
    ck_assert_uint_eq(applied, 0);
    ck_assert_int_eq(err.code, BK_ECONFLICT);
    ck_assert_msg(strstr(err.message, "migration 2_items.sql changed after it was applied (checksum ") == err.message,
                  "%s", err.message);
    ck_assert_str_eq(err.file, path_of("2_items.sql"));
    ck_assert_uint_eq(err.line, 0);
    ck_assert_str_eq(err.sqlstate, "");
    /* Nothing after it ran. */
    ck_recorded("1:1_log.sql,2:2_items.sql");
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1,2");
    /* Still refused on the next run. */
    ck_assert_int_eq(migrate(&applied, NULL), BK_ECONFLICT);
}
END_TEST

START_TEST(failing_file_is_rolled_back_and_not_recorded)
{
    put("1_log.sql", "CREATE TABLE log (seq serial PRIMARY KEY, v int NOT NULL);\n"
                     "INSERT INTO log (v) VALUES (1);\n");
    put("2_bad.sql", "CREATE TABLE bad (id int);\n"
                     "INSERT INTO log (v) VALUES (2);\n"
                     "SELEC 1;\n");
    put("3_after.sql", "INSERT INTO log (v) VALUES (3);");
    unsigned applied = 12345;
    bk_error_t err;
    int rc = migrate(&applied, &err);
    ck_assert_msg(rc == BK_EIO, "%s: %s", bk_err_name(rc), err.message);
    ck_assert_uint_eq(applied, 1);
    ck_assert_str_eq(err.message, "migration 2_bad.sql failed (line 3, SQLSTATE 42601): syntax error at or near "
                                  "\"SELEC\"");
    ck_assert_int_eq(err.code, BK_EIO);
    ck_assert_str_eq(err.file, path_of("2_bad.sql"));
    ck_assert_uint_eq(err.line, 3);
    ck_assert_str_eq(err.sqlstate, "42601");
    ck_scalar_eq("SELECT to_regclass('bad') IS NULL", "t");
    ck_recorded("1:1_log.sql");
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1");

    /* A failed file was never recorded: fixed, it runs. */
    put("2_bad.sql", "CREATE TABLE bad (id int);\nINSERT INTO log (v) VALUES (2);\n");
    migrate_ok(2);
    ck_recorded("1:1_log.sql,2:2_bad.sql,3:3_after.sql");
    ck_scalar_eq("SELECT string_agg(v::text, ',' ORDER BY seq) FROM log", "1,2,3");
}
END_TEST

START_TEST(a_constraint_error_maps_to_its_code)
{
    put("1_t.sql", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    put("2_dup.sql", "INSERT INTO t VALUES (2); INSERT INTO t VALUES (1);");
    bk_error_t err;
    unsigned applied;
    ck_assert_int_eq(migrate(&applied, &err), BK_ECONFLICT);
    ck_assert_uint_eq(applied, 1);
    /* The server gives no position for a constraint: no line. */
    ck_assert_msg(strstr(err.message, "migration 2_dup.sql failed (SQLSTATE 23505): duplicate key value") == err.message,
                  "%s", err.message);
    ck_assert_str_eq(err.file, path_of("2_dup.sql"));
    ck_assert_uint_eq(err.line, 0);
    ck_assert_str_eq(err.sqlstate, "23505");
    ck_assert_str_eq(err.constraint, "t_pkey");
    ck_assert_str_eq(err.detail, "Key (id)=(1) already exists.");
    ck_scalar_eq("SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1");
}
END_TEST

START_TEST(other_names_are_ignored)
{
    put("1_a.sql", "CREATE TABLE a (id int);");
    put("2_.sql", "CREATE TABLE b (id int);");
    put("README.md", "not SQL");
    put("3_c.txt", "not SQL");
    put("4_d.SQL", "not SQL");
    put("5_e.sql.bak", "not SQL");
    put("x_6.sql", "not SQL");
    put("_7.sql", "not SQL");
    put("8-f.sql", "not SQL");
    put(".9_hidden.sql", "not SQL");
    put("10.sql", "not SQL");
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/11_dir.sql", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    migrate_ok(2);
    ck_recorded("1:1_a.sql,2:2_.sql");
}
END_TEST

START_TEST(duplicate_versions_are_refused_before_anything_runs)
{
    put("1_a.sql", "CREATE TABLE a (id int);");
    put("2_b.sql", "CREATE TABLE b (id int);");
    put("002_c.sql", "CREATE TABLE c (id int);");
    unsigned applied = 12345;
    bk_error_t err;
    ck_assert_int_eq(migrate(&applied, &err), BK_EINVAL);
    ck_assert_uint_eq(applied, 0);
    ck_assert_msg(strstr(err.message, "002_c.sql") && strstr(err.message, "2_b.sql") &&
                      strstr(err.message, "same version 2"),
                  "%s", err.message);
    ck_assert_msg(strcmp(err.file, path_of("002_c.sql")) == 0 || strcmp(err.file, path_of("2_b.sql")) == 0, "%s",
                  err.file);
    ck_recorded("none");
    ck_scalar_eq("SELECT to_regclass('a') IS NULL", "t");
}
END_TEST

START_TEST(bad_arguments_and_directories)
{
    bk_error_t err;
    unsigned applied = 12345;
    ck_assert_int_eq(bk_db_migrate(NULL, dir, &applied, &err), BK_EINVAL);
    ck_assert_uint_eq(applied, 0);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_int_eq(bk_db_migrate(db, NULL, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_db_migrate(db, "/nonexistent/bk-migrations", &applied, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "/nonexistent/bk-migrations") != NULL, "%s", err.message);
    ck_assert_str_eq(err.file, "/nonexistent/bk-migrations");
    put("99999999999999999999_big.sql", "SELECT 1;");
    ck_assert_int_eq(migrate(&applied, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "does not fit a bigint") != NULL, "%s", err.message);
    ck_assert_str_eq(err.file, path_of("99999999999999999999_big.sql"));
}
END_TEST

START_TEST(empty_directory_creates_the_table_only)
{
    migrate_ok(0);
    ck_recorded("");
}
END_TEST

START_TEST(session_changes_of_a_file_do_not_misplace_the_records)
{
    /* pg_dump's output empties search_path; later records still go to public. */
    put("1_dump.sql", "SELECT pg_catalog.set_config('search_path', '', false);\n"
                      "CREATE TABLE public.a (id int);\n");
    put("2_b.sql", "CREATE TABLE public.b (id int);\n");
    /* A file with its own BEGIN and COMMIT (the server warns) is recorded too. */
    put("3_own_tx.sql", "BEGIN;\nCREATE TABLE public.c (id int);\nCOMMIT;\n");
    put("4_d.sql", "CREATE TABLE public.d (id int);\n");
    migrate_ok(4);
    ck_recorded("1:1_dump.sql,2:2_b.sql,3:3_own_tx.sql,4:4_d.sql");
    ck_scalar_eq("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a','b','c','d')", "4");
    migrate_ok(0);
}
END_TEST

/* One migrator process: its own pool, then the start barrier (EOF on the pipe),
 * then bk_db_migrate. Exits with how many it applied, or 100 + -code. */
static void migrator(int start)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 2;
    bk_db_t *mine = NULL;
    int rc = bk_db_new(conninfo, &o, &mine, NULL);
    char b;
    while (read(start, &b, 1) < 0 && errno == EINTR)
        ;
    unsigned applied = 0;
    if (rc == BK_OK)
        rc = bk_db_migrate(mine, dir, &applied, NULL);
    bk_db_free(mine);
    close(start);
    _exit(rc == BK_OK ? (int)applied : 100 - rc); /* not exit(): the parent's Check state stays its own */
}

#define MIGRATORS 4

/* Forks MIGRATORS children running child(start), releases them together once
 * each has opened its pool, and answers the sum of their exit codes (how many
 * migrations each applied; a failure, 100 - code, fails the test). */
static int run_migrators(void (*child)(int start))
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pids[MIGRATORS];
    for (int i = 0; i < MIGRATORS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(p[1]);
            child(p[0]);
        }
    }
    close(p[0]);
    usleep(100 * 1000); /* let every child open its pool */
    close(p[1]);        /* go */
    int total = 0;
    for (int i = 0; i < MIGRATORS; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status), "migrator %d did not exit", i);
        int code = WEXITSTATUS(status);
        ck_assert_msg(code <= 3, "migrator %d: %s (exit %d)", i, code >= 100 ? bk_err_name(100 - code) : "?", code);
        total += code;
    }
    return total;
}

START_TEST(concurrent_migrators_apply_each_file_once)
{
    put("1_counter.sql", "CREATE TABLE counter (ran int NOT NULL);\n"
                         "SELECT pg_sleep(0.2);\n"); /* hold the lock while the others arrive */
    put("2_count.sql", "INSERT INTO counter VALUES (2);");
    put("3_count.sql", "INSERT INTO counter VALUES (3);\nSELECT pg_sleep(0.05);");
    int total = run_migrators(migrator);
    ck_assert_int_eq(total, 3); /* between them, each file once */
    ck_recorded("1:1_counter.sql,2:2_count.sql,3:3_count.sql");
    ck_scalar_eq("SELECT string_agg(ran::text, ',' ORDER BY ran) FROM counter", "2,3");
    /* The lock is free again. */
    ck_scalar_eq("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                 "database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                 "0");
}
END_TEST

/* ------------------------------------------------------------------ embedded lists */

static const bk_db_migration_t list3[] = {
    {1, "counter", "CREATE TABLE lib_x.counter (ran int NOT NULL); SELECT pg_sleep(0.2);"},
    {2, "two", "INSERT INTO lib_x.counter VALUES (2)"},
    {5, "five", "INSERT INTO lib_x.counter VALUES (5); SELECT pg_sleep(0.05);"},
};

/* Through a pooler (transaction_pooling, on the server itself in the plain
 * runs) statement_timeout_ns is no session setting: it comes with each
 * migration's BEGIN, for both migrators. */
START_TEST(pooled_migrations_keep_the_statement_timeout)
{
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.transaction_pooling = true;
    o.statement_timeout_ns = 100 * BK_NSEC_PER_MSEC;
    bk_db_t *p;
    bk_error_t err;
    ck_assert_msg(bk_db_new(conninfo, &o, &p, &err) == BK_OK, "bk_db_new: %s", err.message);
    put("1_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(5);\n");
    ck_assert_int_eq(bk_db_migrate(p, dir, NULL, &err), BK_ETIMEDOUT);
    ck_assert_str_eq(err.sqlstate, "57014");
    ck_scalar_eq("SELECT to_regclass('slow') IS NULL", "t");
    const bk_db_migration_t slow[] = {{1, "slow", "SELECT pg_sleep(5)"}};
    ck_assert_int_eq(bk_db_migrate_list(p, "lib_slow", slow, 1, NULL, &err), BK_ETIMEDOUT);
    bk_db_free(p);
}
END_TEST

START_TEST(list_applies_into_its_schema_once)
{
    unsigned applied = 99;
    bk_error_t err;
    int rc = bk_db_migrate_list(db, "lib_x", list3, 2, &applied, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s", bk_err_name(rc), err.message);
    ck_assert_uint_eq(applied, 2);
    ck_scalar_eq("SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM lib_x.bk_schema_migrations",
                 "1:counter,2:two");
    /* Its history is its schema's own: the directory migrator's table is not touched. */
    ck_scalar_eq("SELECT to_regclass('public.bk_schema_migrations') IS NULL", "t");
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_x", list3, 3, &applied, &err), BK_OK);
    ck_assert_uint_eq(applied, 1);
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_x", list3, 3, &applied, &err), BK_OK);
    ck_assert_uint_eq(applied, 0);
    ck_scalar_eq("SELECT string_agg(ran::text, ',' ORDER BY ran) FROM lib_x.counter", "2,5");
    /* No lock outlives the calls (in this database: suites running beside this
     * one on the same server take advisory locks of their own). */
    ck_scalar_eq("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                 "database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                 "0");
}
END_TEST

START_TEST(list_changed_or_bad_is_refused)
{
    bk_error_t err;
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_x", list3, 2, NULL, &err), BK_OK);
    bk_db_migration_t changed[] = {list3[0], {2, "two", "INSERT INTO lib_x.counter VALUES (22)"}, list3[2]};
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_x", changed, 3, NULL, &err), BK_ECONFLICT);
    ck_assert_ptr_nonnull(strstr(err.message, "changed"));
    ck_scalar_eq("SELECT count(*) FROM lib_x.counter", "1"); /* 5 did not run after it */
    bk_db_migration_t order[] = {list3[2], list3[1]};
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_x", order, 2, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_migrate_list(db, "Lib-X", list3, 1, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_migrate_list(db, "x\"; DROP", list3, 1, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_db_migrate_list(db, NULL, list3, 1, NULL, &err), BK_EINVAL);
    /* A failing one is rolled back whole, and not recorded. */
    bk_db_migration_t bad[] = {{1, "bad", "CREATE TABLE lib_y.t (a int); SELECT no_such_column FROM lib_y.t"}};
    ck_assert_int_eq(bk_db_migrate_list(db, "lib_y", bad, 1, NULL, &err), BK_EIO);
    ck_assert_str_eq(err.sqlstate, "42703");
    ck_scalar_eq("SELECT to_regclass('lib_y.t') IS NULL", "t");
}
END_TEST

static void list_migrator(int start)
{
    bk_db_opts_t o;
    bkt_db_opts_init(&o);
    o.max_conns = 2;
    bk_db_t *mine = NULL;
    int rc = bk_db_new(conninfo, &o, &mine, NULL);
    char b;
    while (read(start, &b, 1) < 0 && errno == EINTR)
        ;
    unsigned applied = 0;
    if (rc == BK_OK)
        rc = bk_db_migrate_list(mine, "lib_x", list3, 3, &applied, NULL);
    bk_db_free(mine);
    close(start);
    _exit(rc == BK_OK ? (int)applied : 100 - rc);
}

START_TEST(concurrent_list_migrators_apply_each_once)
{
    int total = run_migrators(list_migrator);
    ck_assert_int_eq(total, 3);
    ck_scalar_eq("SELECT string_agg(ran::text, ',' ORDER BY ran) FROM lib_x.counter", "2,5");
}
END_TEST

/* ------------------------------------------------------------------ results */

static json_t *query_json(bk_db_conn_t *c, const char *sql, unsigned flags)
{
    bk_db_result_t *r;
    bk_error_t err;
    int rc = bk_db_query(c, sql, NULL, 0, &r, &err);
    ck_assert_msg(rc == BK_OK, "%s: %s (%s)", sql, bk_err_name(rc), err.message);
    json_t *j = bk_db_result_json(r, flags);
    ck_assert_ptr_nonnull(j);
    bk_db_result_free(r);
    return j;
}

static void json_is(bk_db_conn_t *c, const char *sql, unsigned flags, const char *want)
{
    json_t *got = query_json(c, sql, flags);
    json_error_t e;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    ck_assert_msg(w != NULL, "bad expected JSON: %s", e.text);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    ck_assert_msg(json_equal(got, w), "%s\n got  %s\n want %s", sql, g, want);
    free(g);
    json_decref(got);
    json_decref(w);
}

START_TEST(result_json_types)
{
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    const char *every = "SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float8 AS f8, 'NaN'::float8 AS nan, "
                        "12.345::numeric AS num, true AS b, '{\"a\":[1,2]}'::jsonb AS j, "
                        "'2026-11-23 12:00:00.5+02'::timestamptz AS tstz, '2026-11-23 12:00:00'::timestamp AS ts, "
                        "'2026-11-23'::date AS d, NULL::text AS n, 'h\xc3\xa9llo'::text AS t, '\\x0102'::bytea AS by";
    json_is(c, every, 0,
            "[{\"i2\":1,\"i4\":2,\"i8\":3,\"f8\":1.5,\"nan\":\"NaN\",\"num\":\"12.345\",\"b\":true,"
            "\"j\":{\"a\":[1,2]},\"tstz\":\"2026-11-23T10:00:00.5Z\",\"ts\":\"2026-11-23T12:00:00\","
            "\"d\":\"2026-11-23\",\"n\":null,\"t\":\"h\xc3\xa9llo\",\"by\":\"\\\\x0102\"}]");
    /* The exact text of a few, key order kept. */
    json_t *j = query_json(c, every, 0);
    char *s = json_dumps(json_array_get(j, 0), JSON_COMPACT);
    ck_assert_str_eq(s, "{\"i2\":1,\"i4\":2,\"i8\":3,\"f8\":1.5,\"nan\":\"NaN\",\"num\":\"12.345\",\"b\":true,"
                        "\"j\":{\"a\":[1,2]},\"tstz\":\"2026-11-23T10:00:00.5Z\",\"ts\":\"2026-11-23T12:00:00\","
                        "\"d\":\"2026-11-23\",\"n\":null,\"t\":\"h\xc3\xa9llo\",\"by\":\"\\\\x0102\"}");
    free(s);
    json_decref(j);

    /* Numeric as a number by flag; its NaN and infinities stay strings, as float's do. */
    json_is(c,
            "SELECT 12.345::numeric AS num, 'NaN'::numeric AS nan, 'Infinity'::numeric AS inf, "
            "'-Infinity'::float8 AS ninf, 'Infinity'::float4 AS finf, 1.25::float4 AS f4",
            BK_DB_NUMERIC_AS_NUMBER,
            "[{\"num\":12.345,\"nan\":\"NaN\",\"inf\":\"Infinity\",\"ninf\":\"-Infinity\",\"finf\":\"Infinity\","
            "\"f4\":1.25}]");
    /* Integer limits, oid, false, json (not jsonb) of every kind, microseconds. */
    json_is(c,
            "SELECT 9223372036854775807::int8 AS max, (-9223372036854775807 - 1)::int8 AS min, "
            "(-32768)::int2 AS s, 4294967295::oid AS o, false AS f, '[1, \"x\", null, {\"k\": 1.5}]'::json AS arr, "
            "'\"scalar\"'::json AS str, 'null'::jsonb AS jn, '{\"k\": 1, \"k\": 2}'::json AS dupkey, "
            "'2026-01-02 03:04:05.123456'::timestamp AS us, '2026-01-02 03:04:05.000001+00'::timestamptz AS tus, "
            "'infinity'::timestamptz AS inf, '-infinity'::timestamp AS ninf, "
            "'0044-03-15 12:00:00 BC'::timestamp AS bc, "
            "'12345-01-01 00:00:00+00'::timestamptz AS far, '12:30:00'::time AS tm, '1 day'::interval AS iv, "
            "'{1,2}'::int[] AS ints, 'a1b2c3d4-0000-4000-8000-000000000000'::uuid AS id",
            0,
            "[{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"s\":-32768,\"o\":4294967295,\"f\":false,"
            "\"arr\":[1,\"x\",null,{\"k\":1.5}],\"str\":\"scalar\",\"jn\":null,\"dupkey\":{\"k\":2},"
            "\"us\":\"2026-01-02T03:04:05.123456\",\"tus\":\"2026-01-02T03:04:05.000001Z\",\"inf\":\"infinity\","
            "\"ninf\":\"-infinity\",\"bc\":\"0044-03-15 12:00:00 BC\",\"far\":\"12345-01-01T00:00:00Z\","
            "\"tm\":\"12:30:00\",\"iv\":\"1 day\",\"ints\":\"{1,2}\","
            "\"id\":\"a1b2c3d4-0000-4000-8000-000000000000\"}]");
    /* Several rows; none; the same column name twice (the later wins). */
    json_is(c, "SELECT n FROM generate_series(1, 3) AS n", 0, "[{\"n\":1},{\"n\":2},{\"n\":3}]");
    json_is(c, "SELECT 1 AS n WHERE false", 0, "[]");
    json_is(c, "SELECT 1 AS x, 2 AS x", 0, "[{\"x\":2}]");

    /* Offsets other than UTC (the pool sets UTC; a session may change it). */
    ck_assert_int_eq(bk_db_query(c, "SET TimeZone = 'Asia/Kolkata'", NULL, 0, NULL, NULL), BK_OK);
    json_is(c, "SELECT '2026-11-23 12:00:00+00'::timestamptz AS t", 0, "[{\"t\":\"2026-11-23T17:30:00+05:30\"}]");
    ck_assert_int_eq(bk_db_query(c, "SET TimeZone = 'America/St_Johns'", NULL, 0, NULL, NULL), BK_OK);
    json_is(c, "SELECT '2026-11-23 12:00:00+00'::timestamptz AS t", 0, "[{\"t\":\"2026-11-23T08:30:00-03:30\"}]");
    ck_assert_int_eq(bk_db_query(c, "SET TimeZone = 'Europe/Amsterdam'", NULL, 0, NULL, NULL), BK_OK);
    json_is(c, "SELECT '1800-01-01 00:00:00+00'::timestamptz AS t", 0, "[{\"t\":\"1800-01-01T00:19:32+00:19:32\"}]");
    ck_assert_int_eq(bk_db_query(c, "SET TimeZone = 'UTC'", NULL, 0, NULL, NULL), BK_OK);

    json_t *empty = bk_db_result_json(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    ck_assert_uint_eq(json_array_size(empty), 0);
    json_decref(empty);
    bk_db_release(c);
}
END_TEST

START_TEST(result_accessors)
{
    bk_db_conn_t *c;
    ck_assert_int_eq(bk_db_acquire(db, &c, NULL), BK_OK);
    bk_db_result_t *r;
    ck_assert_int_eq(bk_db_query(c, "SELECT 'a' AS first, NULL::int AS second UNION ALL SELECT 'b', 7", NULL, 0, &r, NULL),
                     BK_OK);
    ck_assert_uint_eq(bk_db_rows(r), 2);
    ck_assert_uint_eq(bk_db_cols(r), 2);
    ck_assert_str_eq(bk_db_col_name(r, 0), "first");
    ck_assert_str_eq(bk_db_col_name(r, 1), "second");
    ck_assert_ptr_null(bk_db_col_name(r, 2));
    ck_assert_str_eq(bk_db_value(r, 0, 0), "a");
    ck_assert_ptr_null(bk_db_value(r, 0, 1)); /* SQL NULL */
    ck_assert_str_eq(bk_db_value(r, 1, 1), "7");
    ck_assert_ptr_null(bk_db_value(r, 2, 0));
    ck_assert_ptr_null(bk_db_value(r, 0, 2));
    bk_db_result_free(r);

    ck_assert_int_eq(bk_db_query(c, "CREATE TEMP TABLE acc (x int)", NULL, 0, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 0);
    ck_assert_uint_eq(bk_db_rows(r), 0);
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "INSERT INTO acc SELECT generate_series(1, 3)", NULL, 0, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 3);
    bk_db_result_free(r);
    bk_db_param_t p[] = {BK_DB_TEXT("2")};
    ck_assert_int_eq(bk_db_query(c, "UPDATE acc SET x = x + 10 WHERE x >= $1::int", p, 1, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 2);
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "DELETE FROM acc WHERE x < 0", NULL, 0, &r, NULL), BK_OK);
    ck_assert_int_eq(bk_db_affected(r), 0);
    bk_db_result_free(r);
    ck_assert_int_eq(bk_db_query(c, "DROP TABLE acc", NULL, 0, NULL, NULL), BK_OK);

    ck_assert_uint_eq(bk_db_rows(NULL), 0);
    ck_assert_uint_eq(bk_db_cols(NULL), 0);
    ck_assert_ptr_null(bk_db_col_name(NULL, 0));
    ck_assert_ptr_null(bk_db_value(NULL, 0, 0));
    ck_assert_int_eq(bk_db_affected(NULL), 0);
    bk_db_result_free(NULL);
    bk_db_release(c);
}
END_TEST

static Suite *migrate_suite(void)
{
    Suite *s = suite_create("db_migrate");
    TCase *tc = tcase_create("migrations");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, applies_in_numeric_order_and_records);
    tcase_add_test(tc, second_run_applies_nothing_and_a_new_file_applies_alone);
    tcase_add_test(tc, changed_file_is_refused_and_stops_the_run);
    tcase_add_test(tc, failing_file_is_rolled_back_and_not_recorded);
    tcase_add_test(tc, a_constraint_error_maps_to_its_code);
    tcase_add_test(tc, other_names_are_ignored);
    tcase_add_test(tc, duplicate_versions_are_refused_before_anything_runs);
    tcase_add_test(tc, bad_arguments_and_directories);
    tcase_add_test(tc, empty_directory_creates_the_table_only);
    tcase_add_test(tc, session_changes_of_a_file_do_not_misplace_the_records);
    tcase_add_test(tc, concurrent_migrators_apply_each_file_once);
    tcase_add_test(tc, list_applies_into_its_schema_once);
    tcase_add_test(tc, list_changed_or_bad_is_refused);
    tcase_add_test(tc, concurrent_list_migrators_apply_each_once);
    tcase_add_test(tc, pooled_migrations_keep_the_statement_timeout);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("results");
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, result_json_types);
    tcase_add_test(tr, result_accessors);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    return bk_test_run(migrate_suite());
}
