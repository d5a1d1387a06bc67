/*
 * libbackend log: structured logging, one JSON object per line.
 *
 *   {"ts":"2026-11-22T21:26:35.123Z","level":"info","msg":"listening","port":8080}
 *
 * Layer 0. A logger is thread-safe: lines from many threads never interleave.
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_LOG_H
#define BACKEND_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bk_log_level {
    BK_LOG_DEBUG = 0,
    BK_LOG_INFO = 1,
    BK_LOG_WARN = 2,
    BK_LOG_ERROR = 3,
    BK_LOG_OFF = 4 /* as a threshold only: drops every line */
} bk_log_level_t;

typedef struct bk_log bk_log_t;

/*
 * A callback sink receives each complete line (a JSON object followed by '\n',
 * len bytes, not NUL-terminated beyond len) and, last, the sink_ud of the options.
 * Calls are serialised by the logger: never two at once for one logger. The line
 * is borrowed for the call only.
 */
typedef void (*bk_log_sink_fn)(bk_log_level_t level, const char *line, size_t len, void *ud);

typedef struct bk_log_opts {
    bk_log_level_t level; /* lines below this level are dropped; default BK_LOG_INFO */
    bk_clock_t *clock;    /* wall time for "ts"; NULL (default) = system clock */
    /* The sink: the first of sink, path, fd that is set wins. */
    bk_log_sink_fn sink;  /* callback sink; default NULL */
    void *sink_ud;        /* passed to sink */
    const char *path;     /* file sink, opened O_APPEND|O_CREAT, mode 0640; default NULL */
    int fd;               /* fd sink, borrowed (not closed); default 2 (stderr) */
    uint64_t reserved_[8]; /* room to grow (HACKING.md); zeroed by bk_log_opts_init */
} bk_log_opts_t;

/* Clears *opts (the reserved_ tail too) and sets the defaults. */
BK_EXPORT void bk_log_opts_init(bk_log_opts_t *opts);
/* opts NULL: all defaults (stderr, BK_LOG_INFO). A file sink that cannot be
 * opened is BK_ESYS (errno kept), with the reason in err->message and the path in
 * err->file; err may be NULL. */
BK_EXPORT int bk_log_new(const bk_log_opts_t *opts, bk_log_t **out, bk_error_t *err);
BK_EXPORT void bk_log_free(bk_log_t *log);

/* Changes the threshold at run time; safe while other threads log. */
BK_EXPORT void bk_log_set_level(bk_log_t *log, bk_log_level_t level);
/* True if a line at level would be written: guard expensive field building with it. */
BK_EXPORT bool bk_log_enabled(const bk_log_t *log, bk_log_level_t level);
/* For a file sink, reopens path (after log rotation); a no-op for other sinks.
 * When the file cannot be opened the logger keeps the old one and the call fails
 * as bk_log_new does (BK_ESYS, err->message, err->file). */
BK_EXPORT int bk_log_reopen(bk_log_t *log, bk_error_t *err);

/*
 * Writes one line. fields, if not NULL, must be a JSON object; its members follow
 * ts, level and msg (members named ts, level or msg are dropped). The logger takes
 * the caller's reference to fields, even on failure (it is consumed when the line
 * is dropped, when log is NULL and when fields is not an object), so json_pack()
 * can be passed directly. msg is a printf format. Invalid UTF-8 in
 * msg or string fields is written as U+FFFD. log may be NULL: nothing is written.
 */
BK_EXPORT void bk_log(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
BK_EXPORT void bk_logv(bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt,
                       va_list ap);

/* "debug", "info", "warn", "error", "off"; "unknown" for a value that is not a level. */
BK_EXPORT const char *bk_log_level_name(bk_log_level_t level);
/* Parses a name as bk_log_level_name() gives it (case-insensitive; "warning" too). */
BK_EXPORT int bk_log_level_parse(const char *name, bk_log_level_t *out);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_LOG_H */
