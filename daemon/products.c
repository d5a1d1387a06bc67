/* The catalogue: a public list straight from PostgreSQL (pages, full-text search,
 * RFC 8288 links), a public read served cache-aside (one load per cold key across
 * processes, ETag and 304), and writes for editors, each guarded by If-Match and
 * invalidating the product's key before it answers.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define PRODUCT_COLUMNS "id, sku, name, description, price, currency, stock, version, created_at, updated_at"

static const char PRODUCT_PROPERTIES[] =
    "\"properties\":{"
    "\"sku\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64,\"pattern\":\"^[A-Za-z0-9._-]+$\"},"
    "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
    "\"description\":{\"type\":\"string\",\"maxLength\":10000},"
    "\"price\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000000000000,"
    "\"description\":\"In minor units (cents).\"},"
    "\"currency\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}$\"},"
    "\"stock\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":2147483647}}";

/* An id of the path: digits that fit a bigint; anything else names no product. */
static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= 18 && strspn(id, "0123456789") == n;
}

/* The cache keeps a product as it is answered: its ETag, a newline, then the
 * JSON body, so that a hit is answered without parsing or encoding anything. */
static void product_key(const char *id, char *key, size_t size)
{
    snprintf(key, size, "product-answer:%s", id);
}

void product_invalidate(struct app *app, bk_req_t *req, const char *id)
{
    char key[48];
    product_key(id, key, sizeof key);
    int rc = bk_cache_delete(app->cache, key);
    if (rc == BK_OK)
        return;
    /* The entry then lives out its fresh time at most. */
    json_t *fields = json_pack("{s:s, s:s}", "code", bk_err_name(rc), "product", id);
    static const char msg[] = "the cache did not take the invalidation of a product";
    if (req != NULL)
        bk_req_log(req, app->log, BK_LOG_WARN, fields, "%s", msg);
    else
        bk_log(app->log, BK_LOG_WARN, fields, "%s", msg);
}

/* The entity tag of a product row: its id and version. */
static void product_etag(const json_t *p, char *etag, size_t size)
{
    snprintf(etag, size, "\"%lld-%lld\"", (long long)json_integer_value(json_object_get(p, "id")),
             (long long)json_integer_value(json_object_get(p, "version")));
}

/* Answers status with product p (version and all): ETag, and version dropped. */
static void answer_product(bk_req_t *req, int status, json_t *p)
{
    char etag[64];
    product_etag(p, etag, sizeof etag);
    bk_res_header(req, "ETag", etag);
    json_t *out = json_deep_copy(p);
    json_object_del(out, "version");
    bk_res_json(req, status, out);
}

/* ------------------------------------------------------------------ read */
struct load {
    struct app *app;
    const char *id;
};

/* The row of id as the cache keeps it (product_key): malloc'ed "ETAG\nJSON". */
static int load_product(const char *key, void **value, size_t *len, void *ud)
{
    (void)key;
    struct load *l = ud;
    json_t *rows;
    int rc = app_query(l->app, "SELECT " PRODUCT_COLUMNS " FROM backendd.products WHERE id = $1",
                       (bk_db_param_t[]){BK_DB_TEXT(l->id)}, 1, &rows, NULL);
    if (rc != BK_OK)
        return rc;
    json_t *p = json_array_get(rows, 0);
    char etag[64];
    char *body = NULL;
    if (p != NULL) {
        product_etag(p, etag, sizeof etag);
        json_object_del(p, "version");
        body = json_dumps(p, JSON_COMPACT);
    }
    json_decref(rows);
    if (p == NULL)
        return BK_ENOTFOUND;
    if (body == NULL)
        return BK_ENOMEM;
    size_t n = strlen(etag) + 1 + strlen(body);
    char *text = malloc(n + 1);
    if (text != NULL)
        snprintf(text, n + 1, "%s\n%s", etag, body);
    free(body);
    *value = text;
    *len = n;
    return text ? BK_OK : BK_ENOMEM;
}

/* Answers the product the cache gave (rc, text[0..len), freed here): 200 with
 * its ETag, 304, 404, or the failure. */
static void answer_read(struct app *app, bk_req_t *req, int rc, char *text, size_t len)
{
    const char *body = rc == BK_OK ? memchr(text, '\n', len) : NULL;
    if (rc == BK_OK && body == NULL)
        rc = BK_EIO; /* not what load_product writes: someone else's bytes */
    if (rc == BK_ENOTFOUND)
        bk_res_error(req, BK_ENOTFOUND, "no such product");
    else if (rc != BK_OK)
        app_fail(app, req, rc, NULL, "reading a product");
    else {
        text[body - text] = '\0'; /* the ETag */
        body++;
        if (!bk_req_if_none_match(req, text)) /* else answered 304 */
            bk_res_bytes(req, 200, "application/json", body, len - (size_t)(body - text));
    }
    free(text);
}

/* On a worker: the cache-aside fetch, which may wait for memcached or load. */
static void h_get_fetch(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    const char *id = bk_req_param(req, "id");
    char key[48];
    product_key(id, key, sizeof key);
    const bk_cache_ttl_t ttl = {.fresh_ns = app->conf.product_cache_ttl_ns, .stale_ns = app->conf.product_cache_ttl_ns};
    void *text;
    size_t len;
    int rc = bk_cache_fetch(app->cache, key, &ttl, load_product, &(struct load){app, id}, &text, &len);
    answer_read(app, req, rc, text, len);
}

/* On the loop: a copy in process memory (the near cache) answers at once;
 * anything else goes to a worker. */
static void h_get(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    const char *id = bk_req_param(req, "id");
    if (!id_ok(id)) {
        bk_res_error(req, BK_ENOTFOUND, "no such product");
        return;
    }
    char key[48];
    product_key(id, key, sizeof key);
    void *text;
    size_t len;
    int rc = bk_cache_peek(app->cache, key, &text, &len);
    if (rc == BK_OK || rc == BK_ENOTFOUND)
        answer_read(app, req, rc, text, len);
    else
        bk_req_offload(req, h_get_fetch, app); /* answers 503 itself when refused */
}

/* ------------------------------------------------------------------ list */
static const struct { const char *name, *order; } SORTS[] = {
    {"id", "id"}, {"name", "name, id"}, {"-name", "name DESC, id"}, {"price", "price, id"},
    {"-price", "price DESC, id"}, {"created_at", "created_at, id"}, {"-created_at", "created_at DESC, id"},
};

/* Link: the first, previous, next and last pages (RFC 8288), with the query's
 * other parameters kept. */
static void page_links(bk_req_t *req, long long page, long long per_page, long long pages, const char *q,
                       const char *sort)
{
    char extra[600] = "";
    if (q != NULL) {
        size_t o = (size_t)snprintf(extra, sizeof extra, "&q=");
        for (const unsigned char *s = (const unsigned char *)q; *s && o + 4 < sizeof extra; s++) {
            bool plain = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                         strchr("-._~", *s);
            o += (size_t)snprintf(extra + o, sizeof extra - o, plain ? "%c" : "%%%02X", *s);
        }
    }
    if (sort != NULL)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "&sort=%s", sort);
    char links[2048] = "";
    const struct { const char *rel; long long page; bool on; } rels[] = {
        {"first", 1, true}, {"prev", page - 1, page > 1}, {"next", page + 1, page < pages},
        {"last", pages > 0 ? pages : 1, true}};
    for (size_t i = 0; i < 4; i++) {
        if (!rels[i].on)
            continue;
        size_t o = strlen(links);
        snprintf(links + o, sizeof links - o, "%s</api/v1/products?page=%lld&per_page=%lld%s>; rel=\"%s\"",
                 o ? ", " : "", rels[i].page, per_page, extra, rels[i].rel);
    }
    bk_res_header(req, "Link", links);
}

static void h_list(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *query = bk_req_query_json(req); /* borrowed: coerced, defaults filled */
    long long page = json_integer_value(json_object_get(query, "page"));
    long long per_page = json_integer_value(json_object_get(query, "per_page"));
    const char *q = json_string_value(json_object_get(query, "q"));
    const char *sort = json_string_value(json_object_get(query, "sort"));
    const char *order = "id";
    for (size_t i = 0; sort && i < sizeof SORTS / sizeof *SORTS; i++)
        if (strcmp(SORTS[i].name, sort) == 0)
            order = SORTS[i].order;
    char sql[512], limit[32], offset[32];
    /* The order is one of the table's, never the client's text. */
    snprintf(sql, sizeof sql,
             "SELECT " PRODUCT_COLUMNS ", count(*) OVER () AS total FROM backendd.products"
             " WHERE $3::text IS NULL OR search @@ plainto_tsquery('simple', $3)"
             " ORDER BY %s LIMIT $1 OFFSET $2", order);
    snprintf(limit, sizeof limit, "%lld", per_page);
    snprintf(offset, sizeof offset, "%lld", (page - 1) * per_page);
    json_t *rows;
    bk_error_t err;
    int rc = app_query_read(app, sql, (bk_db_param_t[]){BK_DB_TEXT(limit), BK_DB_TEXT(offset), BK_DB_TEXT(q)}, 3,
                       &rows, &err);
    if (rc != BK_OK) {
        app_fail(app, req, rc, &err, "listing the products");
        return;
    }
    long long total = json_integer_value(json_object_get(json_array_get(rows, 0), "total"));
    if (json_array_size(rows) == 0 && page > 1) {
        /* Past the end: count what there is, for the links. */
        json_t *count;
        if ((rc = app_query_read(app, "SELECT count(*) AS n FROM backendd.products WHERE $1::text IS NULL OR"
                                 " search @@ plainto_tsquery('simple', $1)",
                                 (bk_db_param_t[]){BK_DB_TEXT(q)}, 1, &count, &err)) != BK_OK) {
            json_decref(rows);
            app_fail(app, req, rc, &err, "counting the products");
            return;
        }
        total = json_integer_value(json_object_get(json_array_get(count, 0), "n"));
        json_decref(count);
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_object_del(row, "total");
        json_object_del(row, "version");
    }
    long long pages = (total + per_page - 1) / per_page;
    page_links(req, page, per_page, pages, q, sort);
    bk_res_json(req, 200, json_pack("{s:o, s:I, s:I, s:I, s:I}", "items", rows, "total", (json_int_t)total, "page",
                                    (json_int_t)page, "per_page", (json_int_t)per_page, "total_pages",
                                    (json_int_t)pages));
}

/* ------------------------------------------------------------------ writes */
static const char *str_or_null(const json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

static const char *num_or_null(const json_t *body, const char *name, char *buf, size_t size)
{
    const json_t *v = json_object_get(body, name);
    if (!json_is_integer(v))
        return NULL;
    snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    return buf;
}

static void h_create(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    char price[32], stock[32];
    json_t *rows;
    bk_error_t err;
    int rc = app_query(app,
                       "INSERT INTO backendd.products (sku, name, description, price, currency, stock)"
                       " VALUES ($1, $2, coalesce($3, ''), $4, coalesce($5, 'EUR'), coalesce($6::int, 0))"
                       " RETURNING " PRODUCT_COLUMNS,
                       (bk_db_param_t[]){BK_DB_TEXT(str_or_null(body, "sku")), BK_DB_TEXT(str_or_null(body, "name")),
                                         BK_DB_TEXT(str_or_null(body, "description")),
                                         BK_DB_TEXT(num_or_null(body, "price", price, sizeof price)),
                                         BK_DB_TEXT(str_or_null(body, "currency")),
                                         BK_DB_TEXT(num_or_null(body, "stock", stock, sizeof stock))},
                       6, &rows, &err);
    json_decref(body);
    if (rc == BK_ECONFLICT) {
        bk_res_error(req, BK_ECONFLICT, "a product with that sku exists");
        return;
    }
    if (rc != BK_OK) {
        app_fail(app, req, rc, &err, "creating a product");
        return;
    }
    json_t *p = json_array_get(rows, 0);
    char location[64], id[32];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(p, "id")));
    snprintf(location, sizeof location, "/api/v1/products/%s", id);
    product_invalidate(app, req, id); /* a "not found" remembered for this id */
    bk_res_header(req, "Location", location);
    answer_product(req, 201, p);
    json_decref(rows);
}

/* PUT, PATCH and DELETE: in one transaction, the row locked, If-Match checked
 * against its current entity tag, then the change. */
struct write {
    struct app *app;
    bk_req_t *req;
    const char *method, *id;
    json_t *body;
    json_t *after;  /* the row changed; NULL when deleted or answered */
    bool answered;  /* 404 or 412 already */
};

static int write_tx(bk_db_conn_t *c, void *ud)
{
    struct write *w = ud;
    bk_db_result_t *res;
    int rc = bk_db_query(c, "SELECT id, version FROM backendd.products WHERE id = $1 FOR UPDATE",
                         (bk_db_param_t[]){BK_DB_TEXT(w->id)}, 1, &res, NULL);
    if (rc != BK_OK)
        return rc;
    if (bk_db_rows(res) == 0) {
        bk_db_result_free(res);
        if (!w->answered)
            bk_res_error(w->req, BK_ENOTFOUND, "no such product");
        w->answered = true;
        return BK_OK;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%s-%s\"", bk_db_value(res, 0, 0), bk_db_value(res, 0, 1));
    bk_db_result_free(res);
    if (!w->answered && bk_req_if_match(w->req, etag)) { /* answered 412 */
        w->answered = true;
        return BK_OK;
    }
    if (w->answered)
        return BK_OK;
    if (strcmp(w->method, "DELETE") == 0)
        return bk_db_query(c, "DELETE FROM backendd.products WHERE id = $1", (bk_db_param_t[]){BK_DB_TEXT(w->id)}, 1,
                           NULL, NULL);
    bool put = strcmp(w->method, "PUT") == 0;
    char price[32], stock[32];
    /* PUT replaces (what it leaves out takes its default), PATCH changes what it names. */
    const char *sql = put ? "UPDATE backendd.products SET sku = $2, name = $3, description = coalesce($4, ''),"
                            " price = $5, currency = coalesce($6, 'EUR'), stock = coalesce($7::int, 0),"
                            " version = version + 1, updated_at = now() WHERE id = $1 RETURNING " PRODUCT_COLUMNS
                          : "UPDATE backendd.products SET sku = coalesce($2, sku), name = coalesce($3, name),"
                            " description = coalesce($4, description), price = coalesce($5::bigint, price),"
                            " currency = coalesce($6, currency), stock = coalesce($7::int, stock),"
                            " version = version + 1, updated_at = now() WHERE id = $1 RETURNING " PRODUCT_COLUMNS;
    rc = bk_db_query(c, sql,
                     (bk_db_param_t[]){BK_DB_TEXT(w->id), BK_DB_TEXT(str_or_null(w->body, "sku")),
                                       BK_DB_TEXT(str_or_null(w->body, "name")),
                                       BK_DB_TEXT(str_or_null(w->body, "description")),
                                       BK_DB_TEXT(num_or_null(w->body, "price", price, sizeof price)),
                                       BK_DB_TEXT(str_or_null(w->body, "currency")),
                                       BK_DB_TEXT(num_or_null(w->body, "stock", stock, sizeof stock))},
                     7, &res, NULL);
    if (rc == BK_OK) {
        json_decref(w->after);
        json_t *rows = bk_db_result_json(res, 0);
        w->after = json_incref(json_array_get(rows, 0));
        json_decref(rows);
        bk_db_result_free(res);
    }
    return rc;
}

static void h_write(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    struct write w = {.app = app, .req = req, .method = bk_req_method(req), .id = bk_req_param(req, "id")};
    if (!id_ok(w.id)) {
        bk_res_error(req, BK_ENOTFOUND, "no such product");
        return;
    }
    if (strcmp(w.method, "DELETE") != 0 && bk_req_json(req, &w.body) != BK_OK)
        return;
    bk_error_t err;
    int rc = bk_db_tx(app->db, BK_DB_READ_COMMITTED, NULL, write_tx, &w, &err);
    json_decref(w.body);
    if (rc == BK_ECONFLICT && !w.answered)
        bk_res_error(req, BK_ECONFLICT, "a product with that sku exists");
    else if (rc != BK_OK && !w.answered)
        app_fail(app, req, rc, &err, "changing a product");
    else if (!w.answered) {
        product_invalidate(app, req, w.id);
        if (w.after != NULL)
            answer_product(req, 200, w.after);
        else
            bk_res_bytes(req, 204, NULL, NULL, 0);
    }
    json_decref(w.after);
}

/* ------------------------------------------------------------------ routes */
/* The schemas of the product routes, compiled once for every server. */
static void products_schemas(struct app *app)
{
    char text[2048];
    snprintf(text, sizeof text, "{\"title\":\"NewProduct\",\"type\":\"object\",\"required\":[\"sku\",\"name\",\"price\"],"
                                "\"additionalProperties\":false,%s}", PRODUCT_PROPERTIES);
    app->product_schema = app_schema(text);
    snprintf(text, sizeof text, "{\"title\":\"ProductChange\",\"type\":\"object\",\"minProperties\":1,"
                                "\"additionalProperties\":false,%s}", PRODUCT_PROPERTIES);
    app->product_patch_schema = app_schema(text);
    app->product_query_schema = app_schema(
        "{\"type\":\"object\",\"properties\":{"
        "\"page\":{\"type\":\"integer\",\"minimum\":1,\"default\":1},"
        "\"per_page\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":20},"
        "\"q\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,\"description\":\"Words of the name or the description.\"},"
        "\"sort\":{\"enum\":[\"id\",\"name\",\"-name\",\"price\",\"-price\",\"created_at\",\"-created_at\"]}}}");
}

int products_routes(struct app *app, bk_http_server_t *srv)
{
    if (app->product_schema == NULL)
        products_schemas(app);
    const char *const tags[] = {"products", NULL};
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING;
    ro.query_schema = app->product_query_schema;
    ro.doc = &(bk_http_operation_t){.summary = "The catalogue, a page at a time", .tags = tags};
    int rc = bk_http_route(srv, "GET", "/api/v1/products", h_list, app, &ro);
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_OFFLOAD; /* near-cache hits on the loop */
    ro.doc = &(bk_http_operation_t){.summary = "A product", .tags = tags,
                                    .responses = (const bk_http_response_doc_t[]){
                                        {.status = 200, .description = "The product, with its ETag."},
                                        {.status = 304, .description = "The client's copy is current."},
                                        {.status = 404, .description = "No such product."}},
                                    .nresponses = 3};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/api/v1/products/{id}", h_get, app, &ro);
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING | BK_HTTP_JSON;
    ro.auth = &app->auth;
    ro.permission = "products:write";
    ro.body_schema = app->product_schema;
    ro.doc = &(bk_http_operation_t){.summary = "Add a product", .tags = tags,
                                    .responses = (const bk_http_response_doc_t[]){
                                        {.status = 201, .description = "The product, with Location and ETag."},
                                        {.status = 409, .description = "The sku is taken."}},
                                    .nresponses = 2};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "POST", "/api/v1/products", h_create, app, &ro);
    static const bk_http_response_doc_t changed[] = {
        {.status = 200, .description = "The product as it is now, with its ETag."},
        {.status = 404, .description = "No such product."},
        {.status = 409, .description = "The sku is taken."},
        {.status = 412, .description = "If-Match does not match: the product changed since it was read."}};
    const struct { const char *method, *summary; const bk_schema_t *schema; } writes[] = {
        {"PUT", "Replace a product", app->product_schema},
        {"PATCH", "Change some of a product", app->product_patch_schema},
        {"DELETE", "Remove a product", NULL},
    };
    for (size_t i = 0; rc == BK_OK && i < 3; i++) {
        ro.body_schema = writes[i].schema;
        ro.flags = BK_HTTP_BLOCKING | (writes[i].schema ? BK_HTTP_JSON : 0);
        static const bk_http_response_doc_t deleted[] = {
            {.status = 204, .description = "Removed."},
            {.status = 404, .description = "No such product."},
            {.status = 412, .description = "If-Match does not match: the product changed since it was read."}};
        ro.doc = &(bk_http_operation_t){.summary = writes[i].summary, .tags = tags,
                                        .responses = writes[i].schema ? changed : deleted,
                                        .nresponses = writes[i].schema ? 4 : 3};
        rc = bk_http_route(srv, writes[i].method, "/api/v1/products/{id}", h_write, app, &ro);
    }
    return rc;
}
