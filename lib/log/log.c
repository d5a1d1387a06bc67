/* Structured logging: one JSON object per line, written whole under one mutex.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <backend/log.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/json_int.h"
#include "core/utf8_int.h"
#include "log/line_int.h"

struct bk_log {
    _Atomic int level;  /* threshold; read and written without the lock */
    bk_clock_t *clock;  /* borrowed; NULL = system clock */
    bk_log_sink_fn sink;
    void *sink_ud;
    char *path;         /* file sink: the logger owns fd and reopens path */
    int fd;             /* fd sink (borrowed) or file sink (owned); guarded by mu */
    pthread_mutex_t mu; /* one line at a time, whatever the sink */
};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static bool valid_level(bk_log_level_t level)
{
    return (unsigned)level <= (unsigned)BK_LOG_OFF;
}

const char *bk_log_level_name(bk_log_level_t level)
{
    if (!valid_level(level))
        return "unknown";
    return level_names[level];
}

/* ASCII-only case-insensitive equality: strcasecmp follows the locale, and in a
 * Turkish one "INFO" would not match "info". */
static bool name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (x != y)
            return false;
        if (x == '\0')
            return true;
    }
}

int bk_log_level_parse(const char *name, bk_log_level_t *out)
{
    if (name == NULL || out == NULL)
        return BK_EINVAL;
    for (int l = BK_LOG_DEBUG; l <= BK_LOG_OFF; l++) {
        if (name_eq(name, level_names[l])) {
            *out = (bk_log_level_t)l;
            return BK_OK;
        }
    }
    if (name_eq(name, "warning")) {
        *out = BK_LOG_WARN;
        return BK_OK;
    }
    return BK_EINVAL;
}

BK__ASSERT_ABI_SIZE(bk_log_opts_t, 112);

void bk_log_opts_init(bk_log_opts_t *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts); /* no clock, sink or path; the reserved_ tail */
    opts->level = BK_LOG_INFO;
    opts->fd = STDERR_FILENO;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* The detail of a file sink that cannot be opened: which file and why. */
static int open_failed(bk_error_t *err, const char *path, int saved_errno)
{
    bk__error(err, BK_ESYS, "cannot open the log file: %s", strerror(saved_errno));
    if (err != NULL)
        bk__error_field(err->file, sizeof err->file, path);
    errno = saved_errno;
    return BK_ESYS;
}

int bk_log_new(const bk_log_opts_t *opts, bk_log_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out == NULL)
        return bk__error(err, BK_EINVAL, "out is NULL");
    *out = NULL;
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    if (opts != NULL)
        o = *opts;
    if (!valid_level(o.level))
        return bk__error(err, BK_EINVAL, "level %d is not a log level", (int)o.level);
    if (o.sink == NULL && o.path == NULL && o.fd < 0)
        return bk__error(err, BK_EINVAL, "no sink: sink, path and fd are all unset");

    bk_log_t *log = calloc(1, sizeof *log);
    if (log == NULL)
        return bk__error(err, BK_ENOMEM, NULL);
    atomic_init(&log->level, (int)o.level);
    log->clock = o.clock;
    log->sink = o.sink;
    log->sink_ud = o.sink_ud;
    log->fd = o.sink != NULL ? -1 : o.fd;
    if (o.sink == NULL && o.path != NULL) {
        log->path = strdup(o.path);
        if (log->path == NULL) {
            free(log);
            return bk__error(err, BK_ENOMEM, NULL);
        }
        log->fd = open_path(log->path);
        if (log->fd < 0) {
            int saved = errno;
            free(log->path);
            free(log);
            return open_failed(err, o.path, saved);
        }
    }
    if (pthread_mutex_init(&log->mu, NULL) != 0) {
        if (log->path != NULL) {
            close(log->fd);
            free(log->path);
        }
        free(log);
        return bk__error(err, BK_ENOMEM, NULL);
    }
    *out = log;
    return BK_OK;
}

void bk_log_free(bk_log_t *log)
{
    if (log == NULL)
        return;
    if (log->path != NULL) {
        close(log->fd);
        free(log->path);
    }
    pthread_mutex_destroy(&log->mu);
    free(log);
}

/* The threshold orders nothing else, so relaxed atomics suffice: a change is seen
 * by other threads promptly, and a line racing with it may go either way. */
void bk_log_set_level(bk_log_t *log, bk_log_level_t level)
{
    if (log != NULL && valid_level(level))
        atomic_store_explicit(&log->level, (int)level, memory_order_relaxed);
}

bool bk_log_enabled(const bk_log_t *log, bk_log_level_t level)
{
    if (log == NULL || (unsigned)level >= (unsigned)BK_LOG_OFF)
        return false;
    /* atomic_load takes a pointer to non-const in C11; the object is never const. */
    bk_log_t *l = (bk_log_t *)log;
    return (int)level >= atomic_load_explicit(&l->level, memory_order_relaxed);
}

int bk_log_reopen(bk_log_t *log, bk_error_t *err)
{
    bk__error_clear(err);
    if (log == NULL)
        return bk__error(err, BK_EINVAL, "log is NULL");
    if (log->path == NULL)
        return BK_OK;
    /* Open the new file first: if that fails, keep writing to the old one. */
    int fd = open_path(log->path);
    if (fd < 0)
        return open_failed(err, log->path, errno); /* errno from open(2) kept */
    pthread_mutex_lock(&log->mu);
    int old = log->fd;
    log->fd = fd;
    pthread_mutex_unlock(&log->mu);
    /* No writer can hold old any more: every write reads fd under mu. */
    close(old);
    return BK_OK;
}

/* Writes v as exactly n decimal digits (v < 10^n) and returns the end. */
static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* "2026-11-22T21:46:35.123Z": RFC 3339, UTC, milliseconds rounded down (towards
 * the past, also before 1970). Every int64_t is in range: 1677 to 2262. */
static void format_ts(int64_t wall_ns, char buf[32])
{
    int64_t sec = wall_ns / BK_NSEC_PER_SEC; /* divisor is not -1: no overflow */
    int64_t ns = wall_ns % BK_NSEC_PER_SEC;
    if (ns < 0) { /* C truncates towards zero; floor instead */
        ns += BK_NSEC_PER_SEC;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if ((int64_t)t != sec || gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 ||
        tm.tm_year > 9999 - 1900) {
        memcpy(buf, "1970-01-01T00:00:00.000Z", 25); /* unreachable with 64-bit time_t */
        return;
    }
    char *p = put_digits(buf, (unsigned)(tm.tm_year + 1900), 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)(tm.tm_mon + 1), 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(ns / BK_NSEC_PER_MSEC), 3);
    *p++ = 'Z';
    *p = '\0';
}

/* printf into a malloc'ed string of any length; NULL when out of memory. */
static char *format_msg(const char *fmt, va_list ap, size_t *len)
{
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0) { /* an encoding error or a result over INT_MAX: log the format */
        *len = strlen(fmt);
        return strdup(fmt);
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    if ((size_t)n < sizeof small)
        memcpy(s, small, (size_t)n + 1);
    else
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    *len = (size_t)n;
    return s;
}

/* s itself when it is valid UTF-8; otherwise a copy with ill-formed parts as
 * U+FFFD, stored in *owned for the caller to free. NULL when out of memory. */
static const char *valid_text(const char *s, size_t len, size_t *out_len, char **owned)
{
    *owned = NULL;
    *out_len = len;
    if (bk__utf8_valid(s, len))
        return s;
    return *owned = bk__utf8_repair(s, len, out_len);
}

/* A JSON string from bytes that may not be UTF-8. */
static json_t *safe_string(const char *s, size_t len)
{
    char *owned;
    const char *text = valid_text(s, len, &len, &owned);
    json_t *j = text != NULL ? json_stringn_nocheck(text, len) : NULL;
    free(owned);
    return j;
}

/* Sets object[key] = value (consumed), repairing a key that is not UTF-8. */
static int set_safe_key(json_t *object, const char *key, size_t key_len, json_t *value)
{
    char *owned;
    const char *text = valid_text(key, key_len, &key_len, &owned);
    int rc = text != NULL ? json_object_setn_new_nocheck(object, text, key_len, value) : -1;
    if (text == NULL)
        json_decref(value);
    free(owned);
    return rc;
}

/*
 * The slow path, taken only when json_dumps() refused a line: strings smuggled in
 * with json_*_nocheck() that are not UTF-8 (jansson will not encode them). Returns a
 * deep copy of v with every string and key repaired; a container that contains
 * itself, or nesting deeper than MAX_DEPTH, becomes null. NULL when out of memory.
 */
enum { MAX_DEPTH = 512 };

static json_t *repaired_copy(json_t *v, json_t **ancestors, size_t depth)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return safe_string(json_string_value(v), json_string_length(v));
    case JSON_OBJECT:
    case JSON_ARRAY:
        break;
    default: /* numbers, true, false, null: nothing to repair */
        return json_incref(v);
    }
    if (depth >= MAX_DEPTH)
        return json_null();
    for (size_t i = 0; i < depth; i++)
        if (ancestors[i] == v)
            return json_null();
    ancestors[depth] = v;

    json_t *copy;
    if (json_is_object(v)) {
        copy = json_object();
        const char *key;
        size_t key_len;
        json_t *member;
        json_object_keylen_foreach(v, key, key_len, member)
        {
            if (copy == NULL)
                break;
            json_t *m = repaired_copy(member, ancestors, depth + 1);
            if (m == NULL || set_safe_key(copy, key, key_len, m) != 0) {
                json_decref(copy);
                copy = NULL;
            }
        }
    } else {
        copy = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (copy == NULL)
                break;
            json_t *m = repaired_copy(item, ancestors, depth + 1);
            if (m == NULL || json_array_append_new(copy, m) != 0) {
                json_decref(copy);
                copy = NULL;
            }
        }
    }
    return copy;
}

static bool reserved(const char *key, size_t len)
{
    return (len == 2 && memcmp(key, "ts", 2) == 0) || (len == 5 && memcmp(key, "level", 5) == 0) ||
           (len == 3 && memcmp(key, "msg", 3) == 0);
}

void bk__line_begin(struct bk__line *l, const bk_log_t *log, bk_log_level_t level, const char *msg,
                    size_t msg_len)
{
    char ts[32];
    format_ts(bk_clock_wall_ns(log->clock), ts);
    bk__line_raw(l, "{\"ts\":\"", 7);
    bk__line_raw(l, ts, strlen(ts));
    bk__line_raw(l, "\",\"level\":\"", 11);
    bk__line_raw(l, level_names[level], strlen(level_names[level]));
    bk__line_raw(l, "\",\"msg\":", 8);
    bk__line_str(l, msg, msg_len);
}

/* A member's value: strings and integers written here, anything else by jansson
 * (repaired first when it holds strings that are not UTF-8). */
static void put_value(struct bk__line *l, json_t *v)
{
    if (json_is_string(v)) {
        bk__line_str(l, json_string_value(v), json_string_length(v));
        return;
    }
    if (json_is_integer(v)) {
        bk__line_int(l, json_integer_value(v));
        return;
    }
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    char *text = bk__json_dump(v, flags);
    if (text == NULL) {
        json_t **ancestors = malloc(MAX_DEPTH * sizeof *ancestors);
        json_t *fixed = ancestors != NULL ? repaired_copy(v, ancestors, 0) : NULL;
        free(ancestors);
        text = fixed != NULL ? bk__json_dump(fixed, flags) : NULL;
        json_decref(fixed);
    }
    if (text == NULL)
        l->failed = true;
    else
        bk__line_raw(l, text, strlen(text));
    bk__json_free(text);
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* a logger never takes the host down: the line is lost */
        }
        if (n == 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

void bk__line_emit(bk_log_t *log, bk_log_level_t level, struct bk__line *l)
{
    bk__line_raw(l, "}\n", 2);
    if (!l->failed) {
        pthread_mutex_lock(&log->mu);
        if (log->sink != NULL)
            log->sink(level, l->p, l->len, log->sink_ud);
        else
            write_all(log->fd, l->p, l->len);
        pthread_mutex_unlock(&log->mu);
    }
    bk__line_free(l);
}

void bk_logv(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, va_list ap)
{
    int saved_errno = errno; /* logging must not disturb the caller's errno */
    size_t msg_len = 0;
    char *msg = bk_log_enabled(log, level) && fmt != NULL ? format_msg(fmt, ap, &msg_len) : NULL;
    if (msg != NULL) {
        struct bk__line l;
        bk__line_init(&l);
        bk__line_begin(&l, log, level, msg, msg_len);
        free(msg);
        if (json_is_object(fields)) {
            const char *key;
            size_t key_len;
            json_t *value;
            json_object_keylen_foreach(fields, key, key_len, value)
            {
                if (!reserved(key, key_len)) {
                    bk__line_key(&l, key, key_len);
                    put_value(&l, value);
                }
            }
        }
        bk__line_emit(log, level, &l);
    }
    json_decref(fields); /* always: the caller's reference is ours */
    errno = saved_errno;
}

void bk_log(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bk_logv(log, level, fields, fmt, ap);
    va_end(ap);
}
