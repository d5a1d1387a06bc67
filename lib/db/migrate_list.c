/* Embedded migrations: a program's or library's list of versioned SQL, applied in
 * order into its own schema's history ("schema".bk_schema_migrations). Unlike
 * the directory migrator, each migration takes a transaction advisory lock
 * inside its own transaction, so nothing outlives the transaction: it works
 * through a pooler in transaction mode, and a crash mid-way leaves no lock.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "db/db_int.h"
#include "db/sql_int.h"

static bool sha256_hex(const char *s, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) || len != 32)
        return false;
    for (unsigned i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return true;
}

/* err for a statement the server refused: our message, the server's fields. */
static int fail_server(bk_db_conn_t *c, int rc, bk_error_t *err, const char *what, const bk_db_migration_t *m)
{
    bk__db_report(c, rc, err);
    if (err) {
        char msg[2 * sizeof err->message];
        snprintf(msg, sizeof msg, "migration %" PRId64 " (%s): %s: %s", m->version, m->name ? m->name : "",
                 what, *c->last.message ? c->last.message : "no message");
        bk__error_field(err->message, sizeof err->message, msg);
    }
    return rc;
}

/* One migration in one transaction; *ran tells whether its SQL ran. */
static int one(bk_db_conn_t *c, const char *schema, const bk_db_migration_t *m, bool *ran, bk_error_t *err)
{
    char sum[65], version[24], key[24];
    if (!sha256_hex(m->sql, sum))
        return bk__error(err, BK_ENOMEM, "migration %" PRId64 ": SHA-256 failed", m->version);
    snprintf(version, sizeof version, "%" PRId64, m->version);
    snprintf(key, sizeof key, "%" PRId64, BK__DB_MIGRATE_LOCK_KEY);
    char create[512], select[256], insert[256];
    snprintf(create, sizeof create,
             "CREATE SCHEMA IF NOT EXISTS \"%s\"; CREATE TABLE IF NOT EXISTS \"%s\".bk_schema_migrations "
             "(version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())",
             schema, schema);
    snprintf(select, sizeof select, "SELECT checksum FROM \"%s\".bk_schema_migrations WHERE version = $1", schema);
    snprintf(insert, sizeof insert,
             "INSERT INTO \"%s\".bk_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", schema);

    int rc = bk__db_begin(c, "BEGIN");
    if (rc)
        return fail_server(c, rc, err, "BEGIN failed", m);
    bk_db_param_t kp[] = {BK_DB_TEXT(key)};
    if ((rc = bk_db_query(c, "SELECT pg_advisory_xact_lock($1::bigint)", kp, 1, NULL, NULL)) != BK_OK) {
        fail_server(c, rc, err, "cannot take the advisory lock", m);
        goto rollback;
    }
    /* Under the lock: no other migrator races the creation. */
    if ((rc = bk__db_exec(c, create)) != BK_OK) {
        fail_server(c, rc, err, "cannot create the history table", m);
        goto rollback;
    }
    bk_db_param_t vp[] = {BK_DB_TEXT(version)};
    bk_db_result_t *res;
    if ((rc = bk_db_query(c, select, vp, 1, &res, NULL)) != BK_OK) {
        fail_server(c, rc, err, "cannot read the history table", m);
        goto rollback;
    }
    const char *before = bk_db_value(res, 0, 0);
    if (before && strcmp(before, sum) != 0) {
        rc = bk__error(err, BK_ECONFLICT, "migration %" PRId64 " (%s) changed after it was applied (checksum %s, was %s)",
                       m->version, m->name ? m->name : "", sum, before);
        bk_db_result_free(res);
        goto rollback;
    }
    bool done = before != NULL;
    bk_db_result_free(res);
    if (done)
        return bk__db_exec(c, "COMMIT") == BK_OK ? BK_OK : fail_server(c, BK_EIO, err, "COMMIT failed", m);

    *ran = true;
    /* The SQL is the component's own, trusted like its C code, and is several
     * statements of DDL: PQexec, as the directory migrator does. */
    PGresult *pr = PQexec(c->pg, m->sql);
    ExecStatusType st = pr ? PQresultStatus(pr) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = bk__db_fail(c, pr);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            c->broken = true;
        PQclear(pr);
        fail_server(c, rc ? rc : BK_EIO, err, "failed", m);
        rc = rc ? rc : BK_EIO;
        goto rollback;
    }
    PQclear(pr);
    if (PQtransactionStatus(c->pg) != PQTRANS_INTRANS) {
        rc = bk__error(err, BK_EINVAL, "migration %" PRId64 " (%s) ended its transaction itself", m->version,
                       m->name ? m->name : "");
        goto rollback;
    }
    if ((rc = bk__db_pooled_reset(c)) != BK_OK) {
        fail_server(c, rc, err, "RESET ALL failed", m);
        goto rollback;
    }
    bk_db_param_t ip[] = {BK_DB_TEXT(version), BK_DB_TEXT(m->name ? m->name : ""), BK_DB_TEXT(sum)};
    if ((rc = bk_db_query(c, insert, ip, 3, NULL, NULL)) != BK_OK) {
        fail_server(c, rc, err, "cannot record it", m);
        goto rollback;
    }
    if ((rc = bk__db_exec(c, "COMMIT")) != BK_OK)
        return fail_server(c, rc, err, "COMMIT failed", m);
    return BK_OK;

rollback:
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE && bk__db_exec(c, "ROLLBACK") != BK_OK)
        c->broken = true;
    return rc;
}

int bk_db_migrate_list(bk_db_t *db, const char *schema, const bk_db_migration_t *list, size_t n, unsigned *applied,
                       bk_error_t *err)
{
    bk__error_clear(err);
    if (applied)
        *applied = 0;
    if (!db || (n && !list))
        return bk__error(err, BK_EINVAL, "migrations: no pool or no list");
    if (!bk__sql_plain_ident(schema))
        return bk__error(err, BK_EINVAL, "migrations: schema \"%s\" is not a plain identifier ([a-z_][a-z0-9_]{0,62})",
                         schema ? schema : "(null)");
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= 0 || !list[i].sql || (i && list[i].version <= list[i - 1].version))
            return bk__error(err, BK_EINVAL, "migrations: entry %zu (version %" PRId64 ") is out of order, not "
                             "positive or has no SQL", i, list[i].version);
    }
    bk_db_conn_t *c;
    int rc = bk_db_acquire(db, &c, err);
    if (rc)
        return rc;
    bool ran = false;
    for (size_t i = 0; rc == BK_OK && i < n; i++) {
        bool this_ran = false;
        rc = one(c, schema, &list[i], &this_ran, err);
        ran = ran || this_ran;
        if (rc == BK_OK && this_ran && applied)
            (*applied)++;
    }
    if (ran)
        c->broken = true; /* its SQL may have changed the session: not handed to the next user */
    bk_db_release(c);
    return rc;
}
