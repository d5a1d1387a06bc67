/* Building the answer: JSON, bytes, headers, RFC 9457 problem details, and the
 * serialisation of status line, headers and body onto the connection.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/utf8_int.h"
#include "http/http_int.h"

const char *bk_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static bool status_ok(int status)
{
    return status >= 200 && status <= 599;
}

int bk_res_bytes(bk_req_t *req, int status, const char *content_type, const void *data,
                 size_t len)
{
    if (req == NULL || !status_ok(status) || (data == NULL && len > 0))
        return BK_EINVAL;
    if (req->status != 0)
        return BK_EBUSY;
    if (content_type != NULL) {
        for (const char *c = content_type; *c; c++)
            if (*c == '\r' || *c == '\n')
                return BK_EINVAL;
        if ((content_type = bk__arena_strndup(&req->arena, content_type, strlen(content_type))) == NULL)
            return BK_ENOMEM;
    }
    if (len > 0 && evbuffer_add(req->res_body, data, len) != 0)
        return BK_ENOMEM;
    req->ctype = content_type;
    req->status = status;
    return BK_OK;
}

/* Writes doc into the body as compact JSON: straight into the evbuffer, no copy. */
static int dump_cb(const char *buf, size_t size, void *data)
{
    return evbuffer_add(data, buf, size);
}

static int res_json_type(bk_req_t *req, int status, json_t *doc, const char *ctype)
{
    int rc = BK_OK;
    if (req == NULL || doc == NULL || !status_ok(status))
        rc = BK_EINVAL;
    else if (req->status != 0)
        rc = BK_EBUSY;
    else if (json_dump_callback(doc, dump_cb, req->res_body, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        rc = BK_ENOMEM;
    if (rc == BK_OK) {
        req->ctype = ctype;
        req->status = status;
    } else if (req != NULL && req->status == 0) {
        evbuffer_drain(req->res_body, evbuffer_get_length(req->res_body));
    }
    json_decref(doc);
    return rc;
}

int bk_res_json(bk_req_t *req, int status, json_t *doc)
{
    return res_json_type(req, status, doc, "application/json");
}

int bk_res_header(bk_req_t *req, const char *name, const char *value)
{
    if (req == NULL || name == NULL || value == NULL || *name == '\0')
        return BK_EINVAL;
    for (const char *c = name; *c; c++)
        if (!bk__is_tchar((unsigned char)*c))
            return BK_EINVAL;
    for (const char *c = value; *c; c++)
        if (*c == '\r' || *c == '\n')
            return BK_EINVAL;
    /* Framing is the server's: a handler cannot desynchronise the connection. */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0)
        return BK_EINVAL;
    if (strcasecmp(name, "Content-Type") == 0) {
        const char *t = bk__arena_strndup(&req->arena, value, strlen(value));
        if (t == NULL)
            return BK_ENOMEM;
        req->ctype = t;
        return BK_OK;
    }
    if (strcasecmp(name, "ETag") == 0) { /* one per answer: the head writes it (gzip.c) */
        const char *t = bk__arena_strndup(&req->arena, value, strlen(value));
        if (t == NULL)
            return BK_ENOMEM;
        req->etag = t;
        return BK_OK;
    }
    if (strcasecmp(name, "Cache-Control") == 0)
        req->has_cache_control = true;
    if (strcasecmp(name, "Content-Encoding") == 0)
        req->has_content_encoding = true;
    if (evbuffer_add_printf(req->res_headers, "%s: %s\r\n", name, value) < 0)
        return BK_ENOMEM;
    return BK_OK;
}

/* bk_res_problem, with a "code" member (a BK_E* name) last when code is not NULL,
 * and members (taken; NULL = none): extension members, under the problem's own. */
static int res_problem_code(bk_req_t *req, int status, const char *detail, json_t *errors,
                            const char *code, json_t *members)
{
    if (req == NULL || status < 400 || status > 599 || (errors != NULL && !json_is_array(errors)) ||
        (members != NULL && !json_is_object(members))) {
        json_decref(errors);
        json_decref(members);
        return BK_EINVAL;
    }
    const char *instance = req->path != NULL && *req->path != '\0' ? req->path : NULL;
    json_t *doc = json_pack("{s:s, s:s, s:i, s:s*, s:s}", "type", "about:blank", "title",
                            bk_http_reason(status), "status", status, "instance", instance,
                            "request_id", req->id);
    if (doc != NULL && detail != NULL) {
        /* Details may quote client input: never let bad UTF-8 lose the answer. */
        char *d = bk__utf8_repair(detail, strlen(detail), NULL);
        json_object_set_new(doc, "detail", d ? json_string(d) : NULL);
        free(d);
    }
    if (doc != NULL && errors != NULL)
        json_object_set(doc, "errors", errors);
    json_decref(errors);
    if (doc != NULL && code != NULL && json_object_set_new(doc, "code", json_string(code)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    if (doc != NULL && members != NULL && json_object_update_missing(doc, members) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    json_decref(members);
    if (doc == NULL)
        return BK_ENOMEM;
    return res_json_type(req, status, doc, "application/problem+json");
}

int bk_res_problem(bk_req_t *req, int status, const char *detail, json_t *errors)
{
    return res_problem_code(req, status, detail, errors, NULL, NULL);
}

int bk_res_error(bk_req_t *req, int code, const char *detail)
{
    return bk_res_error_ext(req, code, detail, NULL);
}

int bk_res_error_ext(bk_req_t *req, int code, const char *detail, json_t *members)
{
    if (req == NULL || code >= 0 || (members != NULL && !json_is_object(members))) {
        json_decref(members);
        return BK_EINVAL; /* BK_OK is not an error to answer */
    }
    if (req->status != 0) {
        json_decref(members);
        return BK_EBUSY;
    }
    int status = bk_http_status_of(code);
    if (status == 503) { /* busy, shut down, unavailable: worth another try soon */
        int rc = bk_res_header(req, "Retry-After", "1");
        if (rc != BK_OK) {
            json_decref(members);
            return rc;
        }
    }
    return res_problem_code(req, status, detail ? detail : bk_strerror(code), NULL,
                            bk_err_name(code), members);
}

int bk_res_status(const bk_req_t *req)
{
    return req ? req->status : 0;
}

/* The Date header value, on the server's clock's wall time (a fake clock in
 * tests), formatted once per second per loop. */
static const char *date_now(const bk_http_server_t *srv, struct loop *loop)
{
    int64_t ns = bk_clock_wall_ns(srv->o.clock);
    int64_t sec = ns / BK_NSEC_PER_SEC - (ns % BK_NSEC_PER_SEC < 0); /* floor */
    if (sec != loop->date_sec || loop->date[0] == '\0') {
        bk__http_date(sec, loop->date);
        loop->date_sec = sec;
    }
    return loop->date;
}

/* The response head is built in one buffer and added to the connection at once. */
struct head {
    struct evbuffer *out;
    size_t n;
    char buf[1024];
};

static void put(struct head *h, const char *s, size_t len)
{
    if (h->n + len > sizeof h->buf) {
        evbuffer_add(h->out, h->buf, h->n);
        h->n = 0;
        if (len > sizeof h->buf) {
            evbuffer_add(h->out, s, len);
            return;
        }
    }
    memcpy(h->buf + h->n, s, len);
    h->n += len;
}

/* A string literal, its length known at compile time. */
#define PUT_LIT(h, lit) put((h), (lit), sizeof(lit) - 1)

static void puts_(struct head *h, const char *s)
{
    put(h, s, strlen(s));
}

static void put_uint(struct head *h, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(h, d + i, sizeof d - i);
}

void bk__res_serialize(struct bk_req *req, struct evbuffer *out)
{
    const bk_http_server_t *srv = req->srv;
    /* 204 and 304 carry no body; HEAD gets the headers a GET would. */
    bool no_body = req->status == 204 || req->status == 304;
    bool gzipped = !no_body && bk__gzip_answer(req->loop, req);
    size_t blen = evbuffer_get_length(req->res_body);
    if (no_body) {
        evbuffer_drain(req->res_body, blen);
        blen = 0;
    }
    struct head h = {.out = out};
    PUT_LIT(&h, "HTTP/1.1 ");
    put_uint(&h, (uint64_t)req->status);
    PUT_LIT(&h, " ");
    puts_(&h, bk_http_reason(req->status));
    PUT_LIT(&h, "\r\nDate: ");
    puts_(&h, date_now(srv, req->loop));
    if (!no_body) {
        if (req->ctype != NULL) {
            PUT_LIT(&h, "\r\nContent-Type: ");
            puts_(&h, req->ctype);
        }
        PUT_LIT(&h, "\r\nContent-Length: ");
        put_uint(&h, blen);
    }
    if (!req->keep_alive)
        PUT_LIT(&h, "\r\nConnection: close");
    else if (req->minor == 0)
        PUT_LIT(&h, "\r\nConnection: keep-alive");
    if (req->etag != NULL) {
        PUT_LIT(&h, "\r\nETag: ");
        /* Gzipped bytes are another representation: a strong tag would say they
         * are the same (nginx does the same). If-None-Match compares weakly. */
        if (gzipped && req->etag[0] == '"')
            PUT_LIT(&h, "W/");
        puts_(&h, req->etag);
    }
    PUT_LIT(&h, "\r\nX-Request-ID: ");
    puts_(&h, req->id);
    PUT_LIT(&h, "\r\n");
    evbuffer_add(out, h.buf, h.n);
    evbuffer_add_buffer(out, req->res_headers);
    evbuffer_add(out, "\r\n", 2);
    if (req->head_method)
        evbuffer_drain(req->res_body, blen);
    else
        evbuffer_add_buffer(out, req->res_body);
}
