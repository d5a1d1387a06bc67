/* A log line's text, written straight into a buffer: JSON without building
 * jansson values for it (what every access line would otherwise allocate), and
 * the one place that writes a line to its sink. Internal: hidden, never part of
 * the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_LOG_LINE_INT_H
#define BK_LOG_LINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/log.h>

#if defined(__GNUC__)
#define BK__LOG_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__LOG_HIDDEN
#endif

/* Text that grows from an inline buffer to the heap; failed once memory ran out
 * (the line is then dropped). */
struct bk__line {
    char *p;
    size_t len, cap;
    bool failed;
    char small[1024];
};

BK__LOG_HIDDEN void bk__line_init(struct bk__line *l);
BK__LOG_HIDDEN void bk__line_free(struct bk__line *l);
BK__LOG_HIDDEN void bk__line_raw(struct bk__line *l, const char *s, size_t n);
/* A JSON string of s[0..n): escaped as jansson escapes, ill-formed UTF-8 as U+FFFD. */
BK__LOG_HIDDEN void bk__line_str(struct bk__line *l, const char *s, size_t n);
BK__LOG_HIDDEN void bk__line_int(struct bk__line *l, int64_t v);
/* {"ts":"...","level":"...","msg":"..." : the start of every line. */
BK__LOG_HIDDEN void bk__line_begin(struct bk__line *l, const bk_log_t *log, bk_log_level_t level,
                                   const char *msg, size_t msg_len);
/* ,"name": before a member's value. */
BK__LOG_HIDDEN void bk__line_key(struct bk__line *l, const char *name, size_t n);
/* Closes the object, adds the newline and writes the line whole to log's sink
 * (log.c); frees l. */
BK__LOG_HIDDEN void bk__line_emit(bk_log_t *log, bk_log_level_t level, struct bk__line *l);

/* A member of a line made without jansson (bk__log_fields). */
enum bk__log_kind {
    BK__LOG_STR,      /* str; NULL = null */
    BK__LOG_STR_OPT,  /* str; NULL = the member is left out */
    BK__LOG_INT       /* num */
};
struct bk__log_field {
    const char *name; /* a literal: written as it is, no escaping */
    enum bk__log_kind kind;
    const char *str;
    int64_t num;
};
/* bk_log with these members after ts, level and msg (a plain string, not a
 * format), for a caller that logs on every request. */
BK__LOG_HIDDEN void bk__log_fields(bk_log_t *log, bk_log_level_t level, const char *msg,
                                   const struct bk__log_field *f, size_t n);

#endif
