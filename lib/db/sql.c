/* The schema check and splice, and the array literals, of lib/db/sql_int.h.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "db/sql_int.h"

bool bk__sql_plain_ident(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
    return n == strlen(s) && n <= 63;
}

char *bk__sql_splice_as(const char *tmpl, const char *mark, const char *schema)
{
    size_t n = 0, ml = strlen(mark), sl = strlen(schema) + 2;
    for (const char *p = tmpl; (p = strstr(p, mark)) != NULL; p += ml)
        n++;
    char *out = malloc(strlen(tmpl) + n * sl + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, mark, ml) == 0) {
            o += sprintf(o, "\"%s\"", schema);
            p += ml;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

char *bk__sql_splice(const char *tmpl, const char *schema) { return bk__sql_splice_as(tmpl, "{S}", schema); }

int bk__sql_query(bk_db_t *db, bk_db_conn_t *conn, const char *sql, const bk_db_param_t *p, size_t n,
                  bk_db_result_t **res, bk_error_t *err)
{
    if (res)
        *res = NULL;
    if (conn)
        return bk_db_query(conn, sql, p, n, res, err);
    bk_db_conn_t *c;
    int rc = bk_db_acquire(db, &c, err);
    if (rc)
        return rc;
    rc = bk_db_query(c, sql, p, n, res, err);
    bk_db_release(c);
    return rc;
}

/* Room for extra more bytes and the closing "}\0"; false on ENOMEM. */
static bool arr_room(bk__sql_arr_t *a, size_t extra)
{
    if (a->oom)
        return false;
    if (a->len + extra + 3 <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < a->len + extra + 3)
        cap *= 2;
    char *s = realloc(a->s, cap);
    if (!s) {
        a->oom = true;
        return false;
    }
    a->s = s;
    a->cap = cap;
    if (a->len == 0)
        a->s[a->len++] = '{';
    return true;
}

static void arr_sep(bk__sql_arr_t *a)
{
    if (a->len > 1)
        a->s[a->len++] = ',';
}

void bk__sql_arr_str(bk__sql_arr_t *a, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (!arr_room(a, v ? 2 * n + 3 : 5))
        return;
    arr_sep(a);
    if (!v) {
        memcpy(a->s + a->len, "NULL", 4);
        a->len += 4;
        return;
    }
    a->s[a->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            a->s[a->len++] = '\\';
        a->s[a->len++] = v[i];
    }
    a->s[a->len++] = '"';
}

void bk__sql_arr_int(bk__sql_arr_t *a, int64_t v)
{
    if (arr_room(a, 22)) {
        arr_sep(a);
        a->len += (size_t)sprintf(a->s + a->len, "%" PRId64, v);
    }
}

char *bk__sql_arr_end(bk__sql_arr_t *a)
{
    if (!arr_room(a, 0)) {
        free(a->s);
        *a = (bk__sql_arr_t){0};
        return NULL;
    }
    a->s[a->len++] = '}';
    a->s[a->len] = '\0';
    char *out = a->s;
    *a = (bk__sql_arr_t){0};
    return out;
}

bool bk__sql_transaction_pooling(const bk_db_t *db)
{
    return db && db->o.transaction_pooling;
}
