/* W3C Trace Context (https://www.w3.org/TR/trace-context/): traceparent and
 * tracestate checked as the recommendation says, new ids from the CSPRNG.
 * Nothing a caller sent is kept unless it passed the check: these values are
 * logged and sent on to other services.
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include <backend/core.h>

#include "core/abi_int.h"
#include "core/random_int.h"

BK__ASSERT_ABI_SIZE(bk_trace_t, 616);

static const char HEX[] = "0123456789abcdef";

static bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* n lowercase hex digits, not all zeros (an all-zero id is invalid). */
static bool valid_id(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!lower_hex(s[i]))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* A random id of n bytes as 2n hex digits and a NUL into out; never all zeros. */
static int random_id(char *out, size_t n)
{
    unsigned char b[16];
    bool nonzero = false;
    while (!nonzero) {
        int rc = bk__random_id_bytes(b, n);
        if (rc != BK_OK)
            return rc;
        for (size_t i = 0; i < n; i++)
            nonzero |= b[i] != 0;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[b[i] >> 4];
        out[2 * i + 1] = HEX[b[i] & 15];
    }
    out[2 * n] = '\0';
    return BK_OK;
}

int bk_trace_new(bk_trace_t *out)
{
    if (out == NULL)
        return BK_EINVAL;
    bk_trace_t t;
    memset(&t, 0, sizeof t);
    int rc = random_id(t.trace_id, 16);
    if (rc == BK_OK)
        rc = random_id(t.span_id, 8);
    if (rc != BK_OK)
        return rc;
    t.flags = BK_TRACE_SAMPLED; /* the access log records every span */
    *out = t;
    return BK_OK;
}

int bk_trace_child(const bk_trace_t *parent, bk_trace_t *out)
{
    if (parent == NULL || out == NULL || !valid_id(parent->trace_id, 32) || !valid_id(parent->span_id, 16))
        return BK_EINVAL;
    bk_trace_t t = *parent;
    memcpy(t.parent_id, parent->span_id, sizeof t.parent_id);
    int rc = random_id(t.span_id, 8);
    if (rc != BK_OK)
        return rc;
    *out = t;
    return BK_OK;
}

/* ------------------------------------------------------------------ tracestate */

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* key = simple-key / tenant-id "@" system-id (lowercase letters, digits and
 * _-*\/; a simple key and a system id begin with a letter, a tenant id with a
 * letter or a digit). */
static bool valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    size_t tn = at ? (size_t)(at - k) : n; /* the tenant id, or the whole simple key */
    bool lead = at ? (k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9') : k[0] >= 'a' && k[0] <= 'z';
    if (n < 1 || tn < 1 || tn > (at ? 241u : 256u) || !lead)
        return false;
    if (at != NULL && (n - tn - 1 < 1 || n - tn - 1 > 14 || !(at[1] >= 'a' && at[1] <= 'z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (k + i != at && !key_char(k[i]))
            return false;
    return true;
}

/* value = 0*255(chr) nblk-chr: printable ASCII but ',' and '=', not ending
 * with a space. */
static bool valid_value(const char *v, size_t n)
{
    if (n < 1 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    return true;
}

struct member {
    const char *p;
    size_t n, klen;
};

/* Splits and checks s: at most 32 list members, each key=value, keys unique;
 * empty members (",,") are allowed and dropped. false when anything is wrong. */
static bool split_state(const char *s, struct member m[32], size_t *count)
{
    size_t k = 0;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a < b) {
            const char *eq = memchr(a, '=', (size_t)(b - a));
            if (eq == NULL || k == 32 || !valid_key(a, (size_t)(eq - a)) ||
                !valid_value(eq + 1, (size_t)(b - eq - 1)))
                return false;
            for (size_t i = 0; i < k; i++)
                if (m[i].klen == (size_t)(eq - a) && memcmp(m[i].p, a, m[i].klen) == 0)
                    return false;
            m[k++] = (struct member){a, (size_t)(b - a), (size_t)(eq - a)};
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *count = k;
    return true;
}

/* The members of s, joined by ',', into out[BK_TRACESTATE_MAX + 1]; "" when s
 * is not a valid tracestate. Too long, members over 128 characters go first,
 * then members from the end, as the recommendation says. */
static void keep_state(const char *s, char *out)
{
    out[0] = '\0';
    struct member m[32];
    size_t n;
    if (s == NULL || strlen(s) > 32 * 514 || !split_state(s, m, &n))
        return;
    bool keep[32];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = true;
        total += m[i].n + (i > 0);
    }
    for (size_t i = 0; i < n && total > BK_TRACESTATE_MAX; i++)
        if (m[i].n > 128) {
            keep[i] = false;
            total -= m[i].n + 1;
        }
    for (size_t i = n; i-- > 0 && total > BK_TRACESTATE_MAX;)
        if (keep[i]) {
            keep[i] = false;
            total -= m[i].n + 1;
        }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        if (len > 0)
            out[len++] = ',';
        memcpy(out + len, m[i].p, m[i].n);
        len += m[i].n;
    }
    out[len] = '\0';
}

/* ------------------------------------------------------------------ traceparent */

int bk_trace_parse(const char *traceparent, const char *tracestate, bk_trace_t *out)
{
    const char *s = traceparent;
    if (s == NULL || out == NULL)
        return BK_EINVAL;
    size_t len = strnlen(s, BK_TRACEPARENT_LEN + 1);
    if (len < BK_TRACEPARENT_LEN || !lower_hex(s[0]) || !lower_hex(s[1]) || (s[0] == 'f' && s[1] == 'f') ||
        s[2] != '-' || !valid_id(s + 3, 32) || s[35] != '-' || !valid_id(s + 36, 16) || s[52] != '-' ||
        !lower_hex(s[53]) || !lower_hex(s[54]))
        return BK_EINVAL;
    bool v00 = s[0] == '0' && s[1] == '0';
    /* Version 00 is exactly 55 characters; a later version may add fields
     * after a dash, and only its sampled bit is understood. */
    if (len > BK_TRACEPARENT_LEN && (v00 || s[55] != '-'))
        return BK_EINVAL;
    bk_trace_t t;
    memset(&t, 0, sizeof t);
    memcpy(t.trace_id, s + 3, 32);
    memcpy(t.parent_id, s + 36, 16);
    t.flags = (unsigned char)(hex_value(s[53]) << 4 | hex_value(s[54]));
    if (!v00)
        t.flags &= BK_TRACE_SAMPLED;
    int rc = random_id(t.span_id, 8);
    if (rc != BK_OK)
        return rc;
    keep_state(tracestate, t.state);
    *out = t;
    return BK_OK;
}

int bk_trace_format(const bk_trace_t *t, char *buf, size_t size)
{
    if (t == NULL || buf == NULL || !valid_id(t->trace_id, 32) || t->trace_id[32] != '\0' ||
        !valid_id(t->span_id, 16) || t->span_id[16] != '\0')
        return BK_EINVAL;
    if (size < BK_TRACEPARENT_LEN + 1)
        return BK_ERANGE;
    memcpy(buf, "00-", 3);
    memcpy(buf + 3, t->trace_id, 32);
    buf[35] = '-';
    memcpy(buf + 36, t->span_id, 16);
    buf[52] = '-';
    buf[53] = HEX[t->flags >> 4];
    buf[54] = HEX[t->flags & 15];
    buf[55] = '\0';
    return BK_OK;
}
