/* Results: the rows of one query as text (libpq's text format, which every query
 * of lib/db/ asks for), and as JSON typed by each column's type OID. The pool sets
 * client_encoding=UTF8 (so text is valid UTF-8, as jansson requires), TimeZone=UTC
 * and DateStyle=ISO (so timestamptz text is "2026-11-23 12:00:00.5+00", one step
 * from RFC 3339) on every connection.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

/* Built-in type OIDs (pg_type.oid; fixed since PostgreSQL 7, and not in the
 * client headers). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_DATE = 1082,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

size_t bk_db_rows(const bk_db_result_t *r)
{
    return r ? (size_t)PQntuples(r->pg) : 0;
}

size_t bk_db_cols(const bk_db_result_t *r)
{
    return r ? (size_t)PQnfields(r->pg) : 0;
}

const char *bk_db_col_name(const bk_db_result_t *r, size_t col)
{
    if (!r || col >= (size_t)PQnfields(r->pg))
        return NULL;
    return PQfname(r->pg, (int)col);
}

const char *bk_db_value(const bk_db_result_t *r, size_t row, size_t col)
{
    if (!r || row >= (size_t)PQntuples(r->pg) || col >= (size_t)PQnfields(r->pg) ||
        PQgetisnull(r->pg, (int)row, (int)col))
        return NULL;
    return PQgetvalue(r->pg, (int)row, (int)col);
}

int64_t bk_db_affected(const bk_db_result_t *r)
{
    if (!r)
        return 0;
    const char *s = PQcmdTuples(r->pg); /* "" for commands that touch no rows */
    if (!*s)
        return 0;
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    return errno || *end || n < 0 ? 0 : (int64_t)n;
}

void bk_db_result_free(bk_db_result_t *r)
{
    if (!r)
        return;
    PQclear(r->pg);
    free(r);
}

/* ------------------------------------------------------------------ JSON */

static json_t *text(const char *s, size_t len)
{
    return json_stringn(s, len);
}

/* int2, int4, int8, oid: all fit a json_int_t (long long). */
static json_t *integer(const char *s, size_t len)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return text(s, len); /* not what the server sends for these types */
    return json_integer((json_int_t)v);
}

/* float4, float8 and (by flag) numeric: a real, but NaN and ±Infinity, which JSON
 * cannot express, stay the server's text. */
static json_t *real(const char *s, size_t len)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v))
        return text(s, len);
    return json_real(v);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*
 * A timestamp's ISO text as RFC 3339: "2026-11-23 12:00:00.5+00" becomes
 * "2026-11-23T12:00:00.5Z"; a non-zero offset is kept as "+hh:mm" (or
 * "+hh:mm:ss", a historical local mean time offset, which RFC 3339 cannot say);
 * without tz (timestamp) there is no offset. Text of another shape (infinity,
 * -infinity, years BC) is returned as it is.
 */
static json_t *timestamp(const char *s, size_t len, bool tz)
{
    char out[64];
    size_t i = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    /* year (4 digits or more) "-MM-DD HH:MM:SS" */
    if (i < 4 || len - i < 15 || len > sizeof out - 8 || s[i] != '-' || !digits(s + i + 1, 2) ||
        s[i + 3] != '-' || !digits(s + i + 4, 2) || s[i + 6] != ' ' || !digits(s + i + 7, 2) ||
        s[i + 9] != ':' || !digits(s + i + 10, 2) || s[i + 12] != ':' || !digits(s + i + 13, 2))
        return text(s, len);
    i += 15;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return text(s, len);
    }
    size_t body = i; /* the date and time, up to the offset */
    memcpy(out, s, body);
    for (size_t k = 0; k < body; k++)
        if (out[k] == ' ')
            out[k] = 'T';
    size_t n = body;
    if (tz) {
        /* [+-]hh[:mm[:ss]] */
        if (len - i < 3 || (s[i] != '+' && s[i] != '-') || !digits(s + i + 1, 2))
            return text(s, len);
        char sign = s[i];
        const char *hh = s + i + 1, *mm = "00", *ss = NULL;
        i += 3;
        if (i < len) {
            if (len - i < 3 || s[i] != ':' || !digits(s + i + 1, 2))
                return text(s, len);
            mm = s + i + 1;
            i += 3;
        }
        if (i < len) {
            if (len - i != 3 || s[i] != ':' || !digits(s + i + 1, 2))
                return text(s, len);
            ss = s + i + 1;
            i += 3;
        }
        bool zero = memcmp(hh, "00", 2) == 0 && memcmp(mm, "00", 2) == 0 && (!ss || memcmp(ss, "00", 2) == 0);
        if (zero) {
            out[n++] = 'Z';
        } else {
            out[n++] = sign;
            memcpy(out + n, hh, 2);
            out[n + 2] = ':';
            memcpy(out + n + 3, mm, 2);
            n += 5;
            if (ss && memcmp(ss, "00", 2) != 0) {
                out[n] = ':';
                memcpy(out + n + 1, ss, 2);
                n += 3;
            }
        }
    } else if (i != len) {
        return text(s, len);
    }
    return json_stringn(out, n);
}

/* The JSON of one non-NULL value of the column of type oid. */
static json_t *value(const char *s, size_t len, Oid oid, unsigned flags)
{
    switch (oid) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return integer(s, len);
    case OID_FLOAT4:
    case OID_FLOAT8:
        return real(s, len);
    case OID_NUMERIC:
        return flags & BK_DB_NUMERIC_AS_NUMBER ? real(s, len) : text(s, len);
    case OID_BOOL:
        if (len == 1 && (s[0] == 't' || s[0] == 'f'))
            return json_boolean(s[0] == 't');
        return text(s, len);
    case OID_JSON:
    case OID_JSONB: {
        /* json keeps "\u0000" (jsonb refuses it): jansson holds it with
         * JSON_ALLOW_NUL. What jansson cannot hold (an integer beyond 64 bits)
         * is kept as the text. */
        json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return v ? v : text(s, len);
    }
    case OID_TIMESTAMPTZ:
        return timestamp(s, len, true);
    case OID_TIMESTAMP:
        return timestamp(s, len, false);
    case OID_DATE: /* "2026-11-23" already */
    default:
        return text(s, len);
    }
}

/*
 * One object per row, keyed by column name. Two columns of the same name
 * (SELECT a.id, b.id) share one key: the later column wins; alias them to keep
 * both. Text that is not valid UTF-8 (a connection not set to UTF8) cannot be a
 * JSON string: then, as on ENOMEM, the answer is NULL.
 */
json_t *bk_db_result_json(const bk_db_result_t *r, unsigned flags)
{
    json_t *rows = json_array();
    if (!rows || !r)
        return rows;
    int nrows = PQntuples(r->pg), ncols = PQnfields(r->pg);
    for (int i = 0; i < nrows; i++) {
        json_t *obj = json_object();
        if (!obj || json_array_append_new(rows, obj))
            goto fail;
        for (int j = 0; j < ncols; j++) {
            json_t *v = PQgetisnull(r->pg, i, j)
                            ? json_null()
                            : value(PQgetvalue(r->pg, i, j), (size_t)PQgetlength(r->pg, i, j), PQftype(r->pg, j),
                                    flags);
            if (!v || json_object_set_new(obj, PQfname(r->pg, j), v)) /* set_new frees v on failure */
                goto fail;
        }
    }
    return rows;
fail:
    json_decref(rows);
    return NULL;
}
