/* Statements of the library's own modules in a schema of the caller's choice
 * (jobs, sagas, migrations): the one check of the name, the one splice, and
 * the array literals that carry lists to a statement. Hidden; for lib/ only.
 * SPDX-License-Identifier: MIT */
#ifndef BK_DB_SQL_INT_H
#define BK_DB_SQL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/db.h>

#if defined(__GNUC__)
#define BK__SQL_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__SQL_HIDDEN
#endif

/* s is a plain identifier: [a-z_][a-z0-9_]{0,62}, safe to quote into SQL
 * and the same name unquoted. */
BK__SQL_HIDDEN bool bk__sql_plain_ident(const char *s);
/* tmpl with every {S} replaced by "schema" (quoted; schema a plain
 * identifier); malloc'd, NULL on ENOMEM. */
BK__SQL_HIDDEN char *bk__sql_splice(const char *tmpl, const char *schema);
/* The same with another mark than {S} (a second schema: the saga's
 * statements name the jobs schema {J}). */
BK__SQL_HIDDEN char *bk__sql_splice_as(const char *tmpl, const char *mark, const char *schema);

/* Runs sql on conn, or on a pooled connection of db's for this statement
 * alone when conn is NULL (bk_db_query's codes). */
BK__SQL_HIDDEN int bk__sql_query(bk_db_t *db, bk_db_conn_t *conn, const char *sql, const bk_db_param_t *p, size_t n,
                                 bk_db_result_t **res, bk_error_t *err);

/* Whether db reaches its server through a pooler in transaction mode
 * (bk_db_opts_t.transaction_pooling): then no listener (the job queue polls). */
BK__SQL_HIDDEN bool bk__sql_transaction_pooling(const bk_db_t *db);
/* An array literal ({"a",NULL,"b"} or {1,2}) built element by element, sent
 * as one text parameter: how every list reaches a statement (a batch's
 * columns, kinds, the ids of a heartbeat, a saga's step names).
 * Zero-initialise; an allocation failure is remembered and reported by
 * bk__sql_arr_end. */
typedef struct bk__sql_arr {
    char *s;
    size_t len, cap;
    bool oom;
} bk__sql_arr_t;
/* Appends a string (quoted, escaped), or NULL for a NULL element. */
BK__SQL_HIDDEN void bk__sql_arr_str(bk__sql_arr_t *a, const char *v);
BK__SQL_HIDDEN void bk__sql_arr_int(bk__sql_arr_t *a, int64_t v);
/* The literal (malloc'd, the caller frees; "{}" when empty), or NULL on ENOMEM
 * (what was built is freed). */
BK__SQL_HIDDEN char *bk__sql_arr_end(bk__sql_arr_t *a);

#endif
