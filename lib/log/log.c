/* Structured logging: one JSON object per line, written whole under one mutex.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <backend/log.h>

#include "utf8_int.h"

struct bk_log {
    _Atomic int level;
    bk_clock_t *clock;
    bk_log_sink_fn sink;
    void *sink_ud;
    char *path; /* file sink: owned fd, reopened by bk_log_reopen */
    int fd;
    pthread_mutex_t mu; /* one line at a time, whatever the sink */
};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *bk_log_level_name(bk_log_level_t level)
{
    if ((unsigned)level > BK_LOG_OFF)
        return "unknown";
    return level_names[level];
}

int bk_log_level_parse(const char *name, bk_log_level_t *out)
{
    if (name == NULL || out == NULL)
        return BK_EINVAL;
    for (int l = BK_LOG_DEBUG; l <= BK_LOG_OFF; l++) {
        if (strcasecmp(name, level_names[l]) == 0) {
            *out = (bk_log_level_t)l;
            return BK_OK;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = BK_LOG_WARN;
        return BK_OK;
    }
    return BK_EINVAL;
}

void bk_log_opts_init(bk_log_opts_t *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->level = BK_LOG_INFO;
    opts->fd = STDERR_FILENO;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int bk_log_new(const bk_log_opts_t *opts, bk_log_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    if (opts != NULL)
        o = *opts;
    if ((unsigned)o.level > BK_LOG_OFF || (o.sink == NULL && o.path == NULL && o.fd < 0))
        return BK_EINVAL;

    bk_log_t *log = calloc(1, sizeof *log);
    if (log == NULL)
        return BK_ENOMEM;
    atomic_init(&log->level, (int)o.level);
    log->clock = o.clock;
    log->sink = o.sink;
    log->sink_ud = o.sink_ud;
    log->fd = o.fd;
    if (o.sink == NULL && o.path != NULL) {
        log->path = strdup(o.path);
        if (log->path == NULL) {
            free(log);
            return BK_ENOMEM;
        }
        log->fd = open_path(log->path);
        if (log->fd < 0) {
            int saved = errno;
            free(log->path);
            free(log);
            errno = saved;
            return BK_ESYS;
        }
    }
    pthread_mutex_init(&log->mu, NULL);
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

void bk_log_set_level(bk_log_t *log, bk_log_level_t level)
{
    if (log != NULL && (unsigned)level <= BK_LOG_OFF)
        atomic_store(&log->level, (int)level);
}

bool bk_log_enabled(const bk_log_t *log, bk_log_level_t level)
{
    return log != NULL && (unsigned)level < BK_LOG_OFF &&
           (int)level >= atomic_load(&((bk_log_t *)log)->level);
}

int bk_log_reopen(bk_log_t *log)
{
    if (log == NULL)
        return BK_EINVAL;
    if (log->path == NULL)
        return BK_OK;
    /* Open the new file first: if that fails, keep writing to the old one. */
    int fd = open_path(log->path);
    if (fd < 0)
        return BK_ESYS;
    pthread_mutex_lock(&log->mu);
    int old = log->fd;
    log->fd = fd;
    pthread_mutex_unlock(&log->mu);
    close(old);
    return BK_OK;
}

/* "2026-11-22T21:26:35.123Z": RFC 3339, UTC, milliseconds rounded down. */
static void format_ts(int64_t wall_ns, char buf[64])
{
    int64_t sec = wall_ns / BK_NSEC_PER_SEC;
    int64_t ns = wall_ns % BK_NSEC_PER_SEC;
    if (ns < 0) { /* floor, for times before 1970 */
        ns += BK_NSEC_PER_SEC;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
        return;
    }
    snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns / BK_NSEC_PER_MSEC));
}

/* printf into a malloc'ed string of any length. */
static char *format_msg(const char *fmt, va_list ap, size_t *len)
{
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0)
        n = 0, small[0] = '\0';
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

/* A JSON string from bytes that may not be UTF-8: ill-formed parts become U+FFFD. */
static json_t *safe_string(const char *s, size_t len)
{
    if (bk__utf8_valid(s, len))
        return json_stringn(s, len);
    size_t fixed_len;
    char *fixed = bk__utf8_repair(s, len, &fixed_len);
    if (fixed == NULL)
        return NULL;
    json_t *j = json_stringn(fixed, fixed_len);
    free(fixed);
    return j;
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
        p += n;
        len -= (size_t)n;
    }
}

void bk_logv(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, va_list ap)
{
    if (!bk_log_enabled(log, level) || fmt == NULL) {
        json_decref(fields);
        return;
    }
    char ts[64];
    format_ts(bk_clock_wall_ns(log->clock), ts);
    size_t msg_len = 0;
    char *msg = format_msg(fmt, ap, &msg_len);

    json_t *line = json_object();
    if (line == NULL || msg == NULL) {
        free(msg);
        json_decref(line);
        json_decref(fields);
        return;
    }
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(bk_log_level_name(level)));
    json_object_set_new(line, "msg", safe_string(msg, msg_len));
    free(msg);
    if (json_is_object(fields)) {
        const char *key;
        json_t *value;
        json_object_foreach(fields, key, value)
        {
            if (strcmp(key, "ts") != 0 && strcmp(key, "level") != 0 && strcmp(key, "msg") != 0)
                json_object_set(line, key, value);
        }
    }
    json_decref(fields);

    /* JSON escapes control characters, so the only newline is the one we add. */
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* overwrite the NUL: the line is written by length */

    pthread_mutex_lock(&log->mu);
    if (log->sink != NULL)
        log->sink(log->sink_ud, level, text, len + 1);
    else
        write_all(log->fd, text, len + 1);
    pthread_mutex_unlock(&log->mu);
    free(text);
}

void bk_log(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bk_logv(log, level, fields, fmt, ap);
    va_end(ap);
}
