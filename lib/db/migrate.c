/* Versioned migrations: the files <version>_<name>.sql of a directory, applied in
 * version order, each in its own transaction together with its row in
 * bk_schema_migrations (version, file name, SHA-256 of the file, applied_at).
 * Migrators that start together (several replicas of a service) queue on a
 * session advisory lock, so each file runs once; the later ones find it recorded.
 * Through a pooler in transaction mode a session lock would stay on whichever
 * server connection took it: there each transaction (the table's, each file's)
 * takes a transaction lock instead and looks again, under it, at what is
 * recorded, as bk_db_migrate_list does.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "db/db_int.h"

#define MAX_FILE_BYTES (16u << 20) /* a migration larger than this is surely a mistake */
#define TABLE "bk_schema_migrations"

struct migration {
    uint64_t version;
    char *file; /* "0001_users.sql" */
};

struct applied {
    uint64_t version;
    char *checksum;
};

typedef struct run {
    bk_error_t *err;
    const char *path;     /* the directory, as the caller named it */
    DIR *dir;
    struct migration *m;
    size_t n, cap;
    struct applied *done; /* sorted by version */
    size_t ndone;
    char *table;          /* "schema".bk_schema_migrations */
    char *sql_insert, *sql_select, *sql_recorded;
    bool pooled;          /* through a transaction pooler: a lock per transaction */
} run_t;

/* Fills r->err: code, the formatted message, and err->file = the directory's
 * path joined with file (the directory alone when file is NULL). */
static int fail(run_t *r, int rc, const char *file, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(run_t *r, int rc, const char *file, const char *fmt, ...)
{
    bk_error_t *e = r->err;
    if (!e)
        return rc;
    char msg[sizeof e->message], path[sizeof e->file];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bk__error(e, rc, "%s", msg);
    size_t len = strlen(r->path);
    if (file)
        snprintf(path, sizeof path, "%s%s%s", r->path, len && r->path[len - 1] == '/' ? "" : "/", file);
    else
        snprintf(path, sizeof path, "%s", r->path);
    bk__error_field(e->file, sizeof e->file, path);
    return rc;
}

/* The server's message for the last error on c. */
static const char *server_says(const bk_db_conn_t *c)
{
    return *c->last.message ? c->last.message : "no message";
}

/* fail() for a statement the server refused: the message is what, then what the
 * server said; sqlstate, constraint and detail are the server's; line is where
 * in file (0: not known). */
static int fail_server(run_t *r, int rc, const bk_db_conn_t *c, const char *file, unsigned line, const char *what)
{
    fail(r, rc, file, "%s: %s", what, server_says(c));
    if (r->err) {
        memcpy(r->err->sqlstate, c->last.sqlstate, sizeof r->err->sqlstate);
        memcpy(r->err->constraint, c->last.constraint, sizeof r->err->constraint);
        memcpy(r->err->detail, c->last.detail, sizeof r->err->detail);
        r->err->line = line;
    }
    return rc;
}

/* The advisory lock key of every migrator, in every process and every release:
 * a fixed constant, never the seeded hash of core/hash_int.h (that one changes
 * with each process, and two migrators must take the same lock). The value is
 * FNV-1a (64 bits) of "bk_schema_migrations", as earlier releases computed it,
 * so that old and new migrators still exclude each other: 0xdd2b19ec7b7381b0
 * (as pg_locks shows it: classid 3710589420, objid 2071167408). */
static int64_t lock_key(void)
{
    return BK__DB_MIGRATE_LOCK_KEY;
}

/* ------------------------------------------------------------------ the directory */

/* A decimal number of at most 63 bits (a bigint): digits s[0..len). */
static bool parse_version(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > ((uint64_t)INT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Whether name is a migration's (^[0-9]+_[^/]*\.sql$): the length of its version. */
static size_t version_digits(const char *name)
{
    size_t d = strspn(name, "0123456789"), len = strlen(name);
    if (d == 0 || name[d] != '_' || len < d + 1 + 4 || strcmp(name + len - 4, ".sql") != 0)
        return 0;
    return d;
}

static int cmp_migration(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* The migrations of the directory, sorted; two with one version are refused. */
static int scan(run_t *r, const char *path)
{
    r->dir = opendir(path);
    if (!r->dir)
        return fail(r, errno == ENOMEM ? BK_ENOMEM : BK_EINVAL, NULL, "cannot open the migrations directory %s: %s",
                    path, strerror(errno));
    struct dirent *e;
    errno = 0;
    while ((e = readdir(r->dir)) != NULL) {
        size_t d = version_digits(e->d_name);
        if (d == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(r->dir), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue; /* a directory or a dangling link named like a migration: not one */
        uint64_t v;
        if (!parse_version(e->d_name, d, &v))
            return fail(r, BK_EINVAL, e->d_name, "migration %s: the version does not fit a bigint", e->d_name);
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 16;
            struct migration *m = realloc(r->m, cap * sizeof *m);
            if (!m)
                return fail(r, BK_ENOMEM, NULL, "out of memory");
            r->m = m;
            r->cap = cap;
        }
        r->m[r->n].version = v;
        if (!(r->m[r->n].file = strdup(e->d_name)))
            return fail(r, BK_ENOMEM, NULL, "out of memory");
        r->n++;
        errno = 0;
    }
    if (errno)
        return fail(r, BK_EIO, NULL, "cannot read the migrations directory %s: %s", path, strerror(errno));
    if (r->n > 1) /* (qsort's base may not be NULL, even for no elements) */
        qsort(r->m, r->n, sizeof *r->m, cmp_migration);
    for (size_t i = 1; i < r->n; i++)
        if (r->m[i].version == r->m[i - 1].version)
            return fail(r, BK_EINVAL, r->m[i].file, "migrations %s and %s have the same version %" PRIu64,
                        r->m[i - 1].file, r->m[i].file, r->m[i].version);
    return BK_OK;
}

/* The file's bytes, NUL-terminated (for PQexec: a NUL inside is refused), and
 * their SHA-256 in hex. */
static int load(run_t *r, const char *file, char **body, char hex[65])
{
    *body = NULL;
    int fd = openat(dirfd(r->dir), file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(r, BK_EIO, file, "migration %s: %s", file, strerror(errno));
    struct stat st;
    size_t cap = 4096, len = 0;
    char *buf = NULL;
    int rc = BK_OK;
    if (fstat(fd, &st) == 0 && st.st_size > (off_t)MAX_FILE_BYTES)
        rc = fail(r, BK_EINVAL, file, "migration %s: larger than %u bytes", file, MAX_FILE_BYTES);
    else if (!(buf = malloc(cap)))
        rc = fail(r, BK_ENOMEM, file, "out of memory");
    while (rc == BK_OK) { /* to the end, whatever fstat said: the file may be growing */
        if (len + 1 == cap) {
            if (len > MAX_FILE_BYTES) {
                rc = fail(r, BK_EINVAL, file, "migration %s: larger than %u bytes", file, MAX_FILE_BYTES);
                break;
            }
            size_t grow = 2 * cap > MAX_FILE_BYTES + 2 ? MAX_FILE_BYTES + 2 : 2 * cap;
            char *grown = realloc(buf, grow);
            if (!grown) {
                rc = fail(r, BK_ENOMEM, file, "out of memory");
                break;
            }
            buf = grown;
            cap = grow;
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = fail(r, BK_EIO, file, "migration %s: %s", file, strerror(errno));
        else if (got == 0)
            break;
        else
            len += (size_t)got;
    }
    close(fd);
    if (rc == BK_OK && memchr(buf, '\0', len))
        rc = fail(r, BK_EINVAL, file, "migration %s: contains a NUL byte", file);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (rc == BK_OK && (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32))
        rc = fail(r, BK_ENOMEM, file, "migration %s: SHA-256 failed", file);
    if (rc != BK_OK) {
        free(buf);
        return rc;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    buf[len] = '\0';
    *body = buf;
    return BK_OK;
}

/* ------------------------------------------------------------------ the table */

/* Through a transaction pooler: BEGIN and the migrators' lock for this
 * transaction alone (what else to say goes in r->err). */
static int begin_locked(run_t *r, bk_db_conn_t *c, const char *file)
{
    char what[sizeof r->err->message];
    int rc = bk__db_begin(c, "BEGIN");
    if (rc == BK_OK && (rc = bk_db_advisory_lock(c, lock_key(), true, NULL)) != BK_OK)
        bk__db_exec(c, "ROLLBACK"); /* c->last keeps the lock's failure */
    if (rc) {
        snprintf(what, sizeof what, "migrations: cannot take the advisory lock%s%s", file ? " for " : "",
                 file ? file : "");
        return fail_server(r, rc, c, file, 0, what);
    }
    return BK_OK;
}

/*
 * Creates bk_schema_migrations if needed and reads what it records. The table is
 * named with the schema it is in when we start ("public".bk_schema_migrations):
 * a migration may change search_path (pg_dump's output empties it), and the rows
 * of the later ones must still go to the same table.
 */
static int read_table(run_t *r, bk_db_conn_t *c);

static int open_table(run_t *r, bk_db_conn_t *c)
{
    if (!r->pooled)
        return read_table(r, c); /* under bk_db_migrate's session lock */
    int rc = begin_locked(r, c, NULL);
    if (rc == BK_OK)
        rc = read_table(r, c);
    if (rc == BK_OK && (rc = bk__db_exec(c, "COMMIT")) != BK_OK)
        return fail_server(r, rc, c, NULL, 0, "migrations: COMMIT failed");
    if (rc != BK_OK && !c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        bk__db_exec(c, "ROLLBACK");
    return rc;
}

static int read_table(run_t *r, bk_db_conn_t *c)
{
    bk_db_result_t *res;
    int rc = bk_db_query(c, "SELECT current_schema()", NULL, 0, &res, NULL);
    if (rc)
        return fail_server(r, rc, c, NULL, 0, "migrations");
    const char *schema = bk_db_value(res, 0, 0);
    if (!schema) {
        bk_db_result_free(res);
        return fail(r, BK_EINVAL, NULL, "migrations: no schema to create " TABLE " in (search_path names none)");
    }
    char *ident = PQescapeIdentifier(c->pg, schema, strlen(schema));
    bk_db_result_free(res);
    if (!ident)
        return fail(r, BK_ENOMEM, NULL, "out of memory");
#define CREATE                                                                                                   \
    "CREATE TABLE IF NOT EXISTS %s (version bigint PRIMARY KEY, name text NOT NULL, "                            \
    "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
#define INSERT "INSERT INTO %s (version, name, checksum) VALUES ($1, $2, $3)"
#define SELECT "SELECT version, checksum FROM %s ORDER BY version"
#define RECORDED "SELECT checksum FROM %s WHERE version = $1"
    size_t tlen = strlen(ident) + sizeof "." TABLE;
    char *create = malloc(tlen + sizeof CREATE);
    r->table = malloc(tlen);
    r->sql_insert = malloc(tlen + sizeof INSERT);
    r->sql_select = malloc(tlen + sizeof SELECT);
    r->sql_recorded = malloc(tlen + sizeof RECORDED);
    if (!create || !r->table || !r->sql_insert || !r->sql_select || !r->sql_recorded) {
        PQfreemem(ident);
        free(create);
        return fail(r, BK_ENOMEM, NULL, "out of memory");
    }
    snprintf(r->table, tlen, "%s." TABLE, ident);
    PQfreemem(ident);
    snprintf(create, tlen + sizeof CREATE, CREATE, r->table);
    snprintf(r->sql_insert, tlen + sizeof INSERT, INSERT, r->table);
    snprintf(r->sql_select, tlen + sizeof SELECT, SELECT, r->table);
    snprintf(r->sql_recorded, tlen + sizeof RECORDED, RECORDED, r->table);
#undef CREATE
#undef INSERT
#undef SELECT
#undef RECORDED

    rc = bk__db_exec(c, create); /* under the lock: no other migrator races it */
    free(create);
    char what[sizeof r->err->message];
    if (rc) {
        snprintf(what, sizeof what, "migrations: cannot create %s", r->table);
        return fail_server(r, rc, c, NULL, 0, what);
    }

    rc = bk_db_query(c, r->sql_select, NULL, 0, &res, NULL);
    if (rc) {
        snprintf(what, sizeof what, "migrations: cannot read %s", r->table);
        return fail_server(r, rc, c, NULL, 0, what);
    }
    size_t rows = bk_db_rows(res);
    r->done = calloc(rows ? rows : 1, sizeof *r->done);
    if (!r->done) {
        bk_db_result_free(res);
        return fail(r, BK_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < rows; i++) {
        const char *v = bk_db_value(res, i, 0), *sum = bk_db_value(res, i, 1);
        uint64_t version;
        if (!v || !sum || !parse_version(v, strlen(v), &version))
            continue; /* a negative version: not one of our files */
        if (!(r->done[r->ndone].checksum = strdup(sum))) {
            bk_db_result_free(res);
            return fail(r, BK_ENOMEM, NULL, "out of memory");
        }
        r->done[r->ndone++].version = version;
    }
    bk_db_result_free(res);
    return BK_OK;
}

/* The checksum recorded for version, or NULL when it was never applied. */
static const char *recorded(const run_t *r, uint64_t version)
{
    size_t lo = 0, hi = r->ndone;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->done[mid].version == version)
            return r->done[mid].checksum;
        if (r->done[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------ applying */

/* The line of body at the server's 1-based character position pos; 0 when the
 * server named no position. */
static unsigned line_at(const char *body, const char *pos)
{
    long chars = pos ? strtol(pos, NULL, 10) : 0;
    if (chars < 1)
        return 0;
    unsigned line = 1;
    for (const char *p = body; *p && chars > 1; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue; /* a UTF-8 continuation byte: the same character */
        if (*p == '\n')
            line++;
        chars--;
    }
    return line;
}

/* Through a transaction pooler, under the lock: whether another migrator has
 * applied m since the table was read. BK_EEXIST when it has, with the same
 * checksum; BK_ECONFLICT when the file changed since; BK_OK when it has not. */
static int recorded_meanwhile(run_t *r, bk_db_conn_t *c, const struct migration *m, const char *sum)
{
    char version[24];
    snprintf(version, sizeof version, "%" PRIu64, m->version);
    bk_db_param_t p[] = {BK_DB_TEXT(version)};
    bk_db_result_t *res;
    int rc = bk_db_query(c, r->sql_recorded, p, 1, &res, NULL);
    if (rc) {
        char what[sizeof r->err->message];
        snprintf(what, sizeof what, "migrations: cannot read %s", r->table);
        return fail_server(r, rc, c, m->file, 0, what);
    }
    const char *before = bk_db_value(res, 0, 0);
    if (!before)
        rc = BK_OK;
    else if (strcmp(before, sum) == 0)
        rc = BK_EEXIST;
    else
        rc = fail(r, BK_ECONFLICT, m->file, "migration %s changed after it was applied (checksum %s, was %s)",
                  m->file, sum, before);
    bk_db_result_free(res);
    return rc;
}

/*
 * Runs the file's SQL and records it, in one transaction. The body goes to the
 * server as it is, through PQexec: the one place in lib/db/ where SQL text is
 * executed without parameters. That is sound because the text is the
 * application's own code, shipped with it and trusted like its C code (nothing of
 * a request or of the database ever gets into it), and it must be: a migration is
 * several statements of DDL, which take no parameters and which the extended
 * protocol of bk_db_query() cannot send in one message.
 */
static int apply(run_t *r, bk_db_conn_t *c, const struct migration *m, const char *body, const char *sum,
                 bool *ran)
{
    char what[sizeof r->err->message];
    int rc = r->pooled ? begin_locked(r, c, m->file) : bk__db_begin(c, "BEGIN");
    if (rc) {
        snprintf(what, sizeof what, "migration %s: BEGIN failed", m->file);
        return r->pooled ? rc : fail_server(r, rc, c, m->file, 0, what);
    }
    if (r->pooled && (rc = recorded_meanwhile(r, c, m, sum)) != BK_OK) {
        if (!c->broken)
            bk__db_exec(c, "ROLLBACK"); /* err keeps what was found */
        return rc == BK_EEXIST ? BK_OK : rc;
    }
    *ran = true;
    PGresult *res = PQexec(c->pg, body);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        /* The connection now waits for COPY data: never reuse it. Closing it rolls back. */
        PQclear(res);
        c->broken = true;
        return fail(r, BK_EINVAL, m->file, "migration %s: COPY FROM STDIN / TO STDOUT cannot run in a migration",
                    m->file);
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = bk__db_fail(c, res);
        unsigned line = line_at(body, res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL);
        PQclear(res);
        char where[24] = "";
        if (line)
            snprintf(where, sizeof where, "line %u, ", line);
        snprintf(what, sizeof what, "migration %s failed (%sSQLSTATE %s)", m->file, where,
                 *c->last.sqlstate ? c->last.sqlstate : "none");
        fail_server(r, rc, c, m->file, line, what);
        if (!c->broken)
            bk__db_exec(c, "ROLLBACK"); /* err keeps the migration's message */
        return rc;
    }
    PQclear(res);
    /* A file that ends the transaction itself (BEGIN; ... COMMIT;) has committed
     * its work: its record follows on its own, so that it is not run again. */
    bool in_tx = PQtransactionStatus(c->pg) == PQTRANS_INTRANS;
    if (in_tx && (rc = bk__db_pooled_reset(c)) != BK_OK) {
        snprintf(what, sizeof what, "migration %s: RESET ALL failed", m->file);
        fail_server(r, rc, c, m->file, 0, what);
        if (!c->broken)
            bk__db_exec(c, "ROLLBACK");
        return rc;
    }
    char version[24];
    snprintf(version, sizeof version, "%" PRIu64, m->version);
    bk_db_param_t p[] = {BK_DB_TEXT(version), BK_DB_TEXT(m->file), BK_DB_TEXT(sum)};
    rc = bk_db_query(c, r->sql_insert, p, 3, NULL, NULL);
    if (rc) {
        snprintf(what, sizeof what, "migration %s: cannot record it in %s", m->file, r->table);
        fail_server(r, rc, c, m->file, 0, what);
        if (in_tx && !c->broken)
            bk__db_exec(c, "ROLLBACK");
        return rc;
    }
    if (in_tx && (rc = bk__db_exec(c, "COMMIT")) != BK_OK) {
        snprintf(what, sizeof what, "migration %s: COMMIT failed", m->file);
        return fail_server(r, rc, c, m->file, 0, what);
    }
    return BK_OK;
}

static void run_free(run_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->m[i].file);
    free(r->m);
    for (size_t i = 0; i < r->ndone; i++)
        free(r->done[i].checksum);
    free(r->done);
    free(r->table);
    free(r->sql_insert);
    free(r->sql_select);
    free(r->sql_recorded);
    if (r->dir)
        closedir(r->dir);
}

int bk_db_migrate(bk_db_t *db, const char *dir, unsigned *applied, bk_error_t *err)
{
    bk__error_clear(err);
    if (applied)
        *applied = 0;
    run_t r = {.err = err, .path = dir ? dir : "", .pooled = db && db->o.transaction_pooling};
    if (!db || !dir)
        return fail(&r, BK_EINVAL, NULL, "migrations: no pool or no directory");
    int rc = scan(&r, dir);
    if (rc) {
        run_free(&r);
        return rc;
    }
    bk_db_conn_t *c;
    if ((rc = bk_db_acquire(db, &c, err)) != BK_OK) {
        run_free(&r);
        return rc; /* err: the pool's reason */
    }
    /* Other migrators wait here until this one is done, then find its work recorded. */
    const int64_t key = lock_key();
    if (!r.pooled && (rc = bk_db_advisory_lock(c, key, false, NULL)) != BK_OK) {
        fail_server(&r, rc, c, NULL, 0, "migrations: cannot take the advisory lock");
        bk_db_release(c);
        run_free(&r);
        return rc;
    }
    rc = open_table(&r, c);
    bool ran = false; /* a file ran: it may have changed the session (SET, temp tables) */
    for (size_t i = 0; rc == BK_OK && i < r.n; i++) {
        const struct migration *m = &r.m[i];
        char *body, sum[65];
        if ((rc = load(&r, m->file, &body, sum)) != BK_OK)
            break;
        const char *before = recorded(&r, m->version);
        if (before && strcmp(before, sum) != 0) {
            rc = fail(&r, BK_ECONFLICT, m->file, "migration %s changed after it was applied (checksum %s, was %s)",
                      m->file, sum, before);
        } else if (!before) {
            bool this_ran = false;
            rc = apply(&r, c, m, body, sum, &this_ran);
            ran = ran || this_ran;
            if (rc == BK_OK && this_ran && applied)
                (*applied)++;
        }
        free(body);
    }
    /* A lock we could not give back must not stay held by a pooled connection:
     * closing the connection releases it. */
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE && bk__db_exec(c, "ROLLBACK") != BK_OK)
        c->broken = true;
    if (!r.pooled && !c->broken && bk_db_advisory_unlock(c, key, NULL) != BK_OK)
        c->broken = true;
    if (ran)
        c->broken = true; /* closed on release, not handed to the next user as the files left it */
    bk_db_release(c);
    run_free(&r);
    return rc;
}
