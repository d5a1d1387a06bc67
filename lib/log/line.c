/* The text of a log line, written straight into a buffer (line_int.h).
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "core/utf8_int.h"
#include "log/line_int.h"

void bk__line_init(struct bk__line *l)
{
    l->p = l->small;
    l->len = 0;
    l->cap = sizeof l->small;
    l->failed = false;
}

void bk__line_free(struct bk__line *l)
{
    if (l->p != l->small)
        free(l->p);
    bk__line_init(l);
}

/* Room for n more bytes (and a newline), or failed. */
static bool room(struct bk__line *l, size_t n)
{
    if (l->failed)
        return false;
    if (n < l->cap - l->len)
        return true;
    size_t cap = l->cap;
    while (n >= cap - l->len) {
        if (cap > SIZE_MAX / 2) {
            l->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = l->p == l->small ? malloc(cap) : realloc(l->p, cap);
    if (p == NULL) {
        l->failed = true;
        return false;
    }
    if (l->p == l->small)
        memcpy(p, l->small, l->len);
    l->p = p;
    l->cap = cap;
    return true;
}

void bk__line_raw(struct bk__line *l, const char *s, size_t n)
{
    if (room(l, n)) {
        memcpy(l->p + l->len, s, n);
        l->len += n;
    }
}

/* The escapes of jansson's encoder (dump.c), so that a line reads the same
 * whichever way it was made. */
static void escaped(struct bk__line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t plain = 0; /* bytes since the last escape, copied in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        bk__line_raw(l, s + plain, i - plain);
        plain = i + 1;
        char e[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            elen = 6;
        }
        bk__line_raw(l, e, elen);
    }
    bk__line_raw(l, s + plain, n - plain);
}

void bk__line_str(struct bk__line *l, const char *s, size_t n)
{
    bk__line_raw(l, "\"", 1);
    if (bk__utf8_valid(s, n)) {
        escaped(l, s, n);
    } else {
        size_t rlen;
        char *r = bk__utf8_repair(s, n, &rlen);
        if (r == NULL)
            l->failed = true;
        else
            escaped(l, r, rlen);
        free(r);
    }
    bk__line_raw(l, "\"", 1);
}

void bk__line_int(struct bk__line *l, int64_t v)
{
    char buf[24], *p = buf + sizeof buf;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    bk__line_raw(l, p, (size_t)(buf + sizeof buf - p));
}

void bk__line_key(struct bk__line *l, const char *name, size_t n)
{
    bk__line_raw(l, ",", 1);
    bk__line_str(l, name, n);
    bk__line_raw(l, ":", 1);
}

void bk__log_fields(bk_log_t *log, bk_log_level_t level, const char *msg, const struct bk__log_field *f,
                    size_t n)
{
    if (!bk_log_enabled(log, level))
        return;
    struct bk__line l;
    bk__line_init(&l);
    bk__line_begin(&l, log, level, msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        if (f[i].kind == BK__LOG_STR_OPT && f[i].str == NULL)
            continue;
        bk__line_raw(&l, ",\"", 2);
        bk__line_raw(&l, f[i].name, strlen(f[i].name));
        bk__line_raw(&l, "\":", 2);
        if (f[i].kind == BK__LOG_INT)
            bk__line_int(&l, f[i].num);
        else if (f[i].str == NULL)
            bk__line_raw(&l, "null", 4);
        else
            bk__line_str(&l, f[i].str, strlen(f[i].str));
    }
    bk__line_emit(log, level, &l);
}
