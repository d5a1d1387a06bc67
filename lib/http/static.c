/* Static files: GET and HEAD of the files under a directory, opened one path
 * component at a time below a directory fd held since the mount (O_NOFOLLOW
 * at every step: no "..", no symbolic link, leads out), with validators
 * (ETag, Last-Modified, 304), single byte ranges (206, 416), index files, and
 * the file sent from the page cache (an evbuffer file segment: sendfile), never
 * read into memory whole.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/pct_int.h"
#include "core/utf8_int.h"
#include "http/http_int.h"

BK__ASSERT_ABI_SIZE(bk_http_static_opts_t, 88);

void bk_http_static_opts_init(bk_http_static_opts_t *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->index = "index.html";
    opts->cache_control = "no-cache";
}

struct bk__static_mount {
    int dirfd;
    char *prefix; /* without a trailing slash; "" for "/" */
    size_t plen;
    char *index;  /* NULL: none */
    char *cache_control;
    bool dotfiles;
    struct bk__static_mount *next;
};

void bk__static_free(struct bk__static_mount *m)
{
    while (m != NULL) {
        struct bk__static_mount *next = m->next;
        close(m->dirfd);
        free(m->prefix);
        free(m->index);
        free(m->cache_control);
        free(m);
        m = next;
    }
}

/* ------------------------------------------------------------------ the path */

/* A segment we never open: ".", "..", and, unless dotfiles, any other name
 * that begins with a dot. */
static bool refused_segment(const char *s, size_t n, bool dotfiles)
{
    if (n == 0 || s[0] != '.')
        return false;
    return !dotfiles || n == 1 || (n == 2 && s[1] == '.');
}

int bk__static_resolve(const char *raw, size_t len, bool dotfiles, char *out, size_t cap, bool *dir)
{
    if (len >= cap || len >= PATH_MAX)
        return 404;
    size_t n;
    /* No NUL (a C string would end there) and valid UTF-8 (an overlong "."
     * or "/" is not valid UTF-8): else 400. */
    if (!bk__pct_decode_into(raw, len, BK__PCT_NO_NUL, out, &n) || !bk__utf8_valid(out, n))
        return 400;
    *dir = n > 0 && out[n - 1] == '/'; /* the mount itself, "/static", is redirected to "/static/" */
    /* Segments joined by single slashes, empty ones dropped ("a//b" is
     * "a/b"); ".", ".." and dotfiles refused, never resolved. */
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && out[j] != '/')
            j++;
        if (j > i) {
            if (refused_segment(out + i, j - i, dotfiles))
                return 404;
            if (w > 0)
                out[w++] = '/';
            memmove(out + w, out + i, j - i);
            w += j - i;
        }
        i = j + 1;
    }
    out[w] = '\0';
    return 0;
}

/* Opens path (segments by '/') below dirfd, never following a symbolic link:
 * an fd, or -1 with errno. */
static int open_beneath(int dirfd, const char *path)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    const char *p = path;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        char seg[NAME_MAX + 1];
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n > NAME_MAX) {
            close(fd);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        /* O_NONBLOCK: a FIFO opens at once (and is then no regular file). */
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (slash ? O_DIRECTORY : 0);
        int next = openat(fd, seg, flags);
        int e = errno;
        close(fd);
        if (next < 0) {
            errno = e;
            return -1;
        }
        fd = next;
        p = slash ? slash + 1 : p + n;
    }
    return fd;
}

/* ------------------------------------------------------------------ the answer */

static const struct {
    const char *ext, *type;
} TYPES[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"}, {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"map", "application/json"}, {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
    {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"},
    {"avif", "image/avif"}, {"ico", "image/vnd.microsoft.icon"}, {"wasm", "application/wasm"},
    {"pdf", "application/pdf"}, {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"},
    {"otf", "font/otf"}, {"mp4", "video/mp4"}, {"webm", "video/webm"}, {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"}, {"zip", "application/zip"}, {"gz", "application/gzip"},
    {"tar", "application/x-tar"}, {"yaml", "application/yaml"}, {"yml", "application/yaml"},
};

const char *bk__static_type(const char *name)
{
    const char *slash = strrchr(name, '/'), *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base)
        for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
            if (strcasecmp(dot + 1, TYPES[i].ext) == 0)
                return TYPES[i].type;
    return "application/octet-stream";
}

/* One "bytes=first-last", "bytes=first-" or "bytes=-suffix" of size bytes:
 * 1 with [*from, *to] when satisfiable, 0 when not (416), -1 when the field is
 * to be ignored (another unit, several ranges, not a range). */
static int parse_range(const char *v, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (strncmp(v, "bytes=", 6) != 0)
        return -1;
    const char *p = v + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t a = 0, b = 0;
    bool has_a = false, has_b = false;
    while (*p >= '0' && *p <= '9') {
        if (a > (UINT64_MAX - 9) / 10)
            return -1;
        a = a * 10 + (uint64_t)(*p++ - '0');
        has_a = true;
    }
    if (*p++ != '-')
        return -1;
    while (*p >= '0' && *p <= '9') {
        if (b > (UINT64_MAX - 9) / 10)
            return -1;
        b = b * 10 + (uint64_t)(*p++ - '0');
        has_b = true;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0' || (!has_a && !has_b) || (has_a && has_b && b < a))
        return -1; /* several ranges, junk, or an invalid range: ignored (RFC 9110, 14.2) */
    if (!has_a) { /* the last b bytes */
        if (b == 0 || size == 0)
            return 0;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (a >= size)
        return 0;
    *from = a;
    *to = has_b && b < size ? b : size - 1;
    return 1;
}

static void answer(bk_req_t *req, int status, const char *detail)
{
    if (status == 404)
        bk_res_error(req, BK_ENOTFOUND, detail);
    else
        bk_res_problem(req, status, detail, NULL);
}

/* Redirects a directory named without its slash to the name with it, so that
 * the index's relative links resolve (as nginx does). */
static void to_directory(bk_req_t *req)
{
    const char *path = bk_req_path(req);
    const char *q = req->query;
    size_t n = strlen(path) + (q ? strlen(q) + 1 : 0) + 2;
    char *loc = bk__arena_alloc(&req->arena, n);
    if (loc == NULL) {
        bk_res_error(req, BK_ENOMEM, NULL);
        return;
    }
    snprintf(loc, n, "%s/%s%s", path, q ? "?" : "", q ? q : "");
    bk_res_header(req, "Location", loc);
    bk_res_bytes(req, 301, NULL, NULL, 0);
}

static void serve(bk_req_t *req, struct bk__static_mount *m, int fd, const struct stat *st, const char *name)
{
    char etag[48], modified[BK__HTTP_DATE_LEN + 1];
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_size,
             (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec);
    bk__http_date((int64_t)st->st_mtim.tv_sec, modified);
    if (m->cache_control != NULL)
        bk_res_header(req, "Cache-Control", m->cache_control);
    bk_res_header(req, "Last-Modified", modified);
    bk_res_header(req, "Accept-Ranges", "bytes");
    /* If-None-Match (weak comparison) first; If-Modified-Since only without it. */
    bool has_inm = bk_req_header(req, "If-None-Match") != NULL;
    if (bk_req_if_none_match(req, etag)) {
        close(fd);
        return;
    }
    int64_t since;
    if (!has_inm && bk__http_date_parse(bk_req_header(req, "If-Modified-Since"), &since) &&
        (int64_t)st->st_mtim.tv_sec <= since) {
        close(fd);
        bk_res_bytes(req, 304, NULL, NULL, 0);
        return;
    }
    uint64_t size = (uint64_t)st->st_size, from = 0, to = size ? size - 1 : 0;
    int status = 200;
    const char *range = bk_req_header(req, "Range"), *if_range = bk_req_header(req, "If-Range");
    /* If-Range: the range only when the client's copy is this one (the same
     * strong tag, or the same date). */
    if (range != NULL && (if_range == NULL || strcmp(if_range, etag) == 0 || strcmp(if_range, modified) == 0)) {
        int r = parse_range(range, size, &from, &to);
        if (r == 0) {
            close(fd);
            char cr[48];
            snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
            bk_res_header(req, "Content-Range", cr);
            bk_res_problem(req, 416, "the range is beyond the end of the file", NULL);
            return;
        }
        if (r == 1) {
            status = 206;
            char cr[80];
            snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, to, size);
            bk_res_header(req, "Content-Range", cr);
        }
    }
    uint64_t len = size ? to - from + 1 : 0;
    /* The file goes out from the page cache: the evbuffer owns fd from here. */
    if (len > 0 && evbuffer_add_file(req->res_body, fd, (ev_off_t)from, (ev_off_t)len) != 0) {
        close(fd);
        bk_res_error(req, BK_ENOMEM, NULL);
        return;
    }
    if (len == 0)
        close(fd);
    req->ctype = bk__static_type(name);
    req->status = status;
    req->no_gzip = true;
}

static void static_handler(bk_req_t *req, void *ud)
{
    struct bk__static_mount *m = ud;
    const char *path = bk_req_path(req);
    size_t len = strlen(path);
    /* The route is prefix + "/{path...}": what follows the prefix. */
    const char *tail = path + (len >= m->plen ? m->plen : len);
    char *rel = bk__arena_alloc(&req->arena, strlen(tail) + 1 + (m->index ? strlen(m->index) + 1 : 0));
    if (rel == NULL) {
        bk_res_error(req, BK_ENOMEM, NULL);
        return;
    }
    bool dir;
    int bad = bk__static_resolve(tail, strlen(tail), m->dotfiles, rel, strlen(tail) + 1, &dir);
    if (bad) {
        answer(req, bad, bad == 400 ? "the path is not valid (NUL, bad escape or not UTF-8)" : "no such file");
        return;
    }
    int fd = rel[0] ? open_beneath(m->dirfd, rel) : fcntl(m->dirfd, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        fd = -1;
        if (!dir) {
            to_directory(req);
            return;
        }
        if (m->index == NULL) {
            answer(req, 404, "no such file"); /* no listings */
            return;
        }
        size_t n = strlen(rel);
        snprintf(rel + n, strlen(m->index) + 2, "%s%s", n ? "/" : "", m->index);
        if ((fd = open_beneath(m->dirfd, rel)) >= 0 && fstat(fd, &st) != 0) {
            close(fd);
            fd = -1;
        }
    } else if (fd >= 0 && dir) { /* "file.txt/" */
        close(fd);
        fd = -1;
        errno = ENOTDIR;
    }
    if (fd < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (fd < 0 && (e == EMFILE || e == ENFILE || e == ENOMEM))
            bk_res_error(req, BK_EUNAVAIL, "out of file descriptors");
        else
            answer(req, 404, "no such file");
        return;
    }
    serve(req, m, fd, &st, rel);
}

int bk_http_mount_static(bk_http_server_t *srv, const char *prefix, const char *dir,
                         const bk_http_static_opts_t *opts, bk_error_t *err)
{
    bk__error_clear(err);
    bk_http_static_opts_t o;
    if (opts == NULL)
        bk_http_static_opts_init(&o);
    else
        o = *opts;
    if (srv == NULL || prefix == NULL || dir == NULL || prefix[0] != '/')
        return bk__error(err, BK_EINVAL, "mount static: a server, a prefix beginning with '/' and a directory");
    if (srv->started)
        return bk__error(err, BK_EBUSY, "mount static: the server has started");
    if (o.index != NULL && (o.index[0] == '\0' || strchr(o.index, '/') != NULL || o.index[0] == '.'))
        return bk__error(err, BK_EINVAL, "mount static: the index \"%s\" is not a plain file name", o.index);
    if (o.cache_control != NULL && strpbrk(o.cache_control, "\r\n") != NULL)
        return bk__error(err, BK_EINVAL, "mount static: the Cache-Control value has a line break");
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        bk__error(err, BK_ESYS, "mount static: %s: %s", dir, strerror(e));
        errno = e;
        return BK_ESYS;
    }
    struct bk__static_mount *m = calloc(1, sizeof *m);
    if (m == NULL) {
        close(dirfd);
        return bk__error(err, BK_ENOMEM, "out of memory");
    }
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    char *tmpl = malloc(plen + sizeof "/{path...}");
    int rc = BK_OK;
    if (tmpl == NULL || (m->prefix = strndup(prefix, plen)) == NULL ||
        (o.index && (m->index = strdup(o.index)) == NULL) ||
        (o.cache_control && (m->cache_control = strdup(o.cache_control)) == NULL))
        rc = bk__error(err, BK_ENOMEM, "out of memory");
    if (rc == BK_OK) {
        m->dirfd = dirfd;
        m->plen = plen;
        m->dotfiles = o.dotfiles;
        snprintf(tmpl, plen + sizeof "/{path...}", "%s/{path...}", m->prefix);
        bk_http_route_opts_t ro;
        bk_http_route_opts_init(&ro);
        ro.flags = BK_HTTP_RAW_PARAMS | (o.flags & BK_HTTP_BLOCKING);
        ro.doc = &(bk_http_operation_t){.hidden = true}; /* files, not the API */
        rc = bk_http_route(srv, "GET", tmpl, static_handler, m, &ro);
        if (rc == BK_OK)
            rc = bk_http_route(srv, "HEAD", tmpl, static_handler, m, &ro);
        if (rc != BK_OK)
            bk__error(err, rc, "mount static: the route %s: %s", tmpl, bk_strerror(rc));
        /* A route added before a failure keeps m: it is the server's either way. */
        m->next = srv->static_mounts;
        srv->static_mounts = m;
        m = NULL;
    }
    free(tmpl);
    if (m != NULL) {
        close(dirfd);
        free(m->prefix);
        free(m->index);
        free(m->cache_control);
        free(m);
    }
    return rc;
}
