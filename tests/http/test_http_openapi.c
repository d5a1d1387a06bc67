/* The OpenAPI 3.1 document of the routes (bk_http_openapi, bk_http_mount_openapi):
 * what each operation says comes from the route (parameters, schemas, auth, the
 * guards' answers) and from its bk_http_operation_t; the routes' schemas appear
 * as they are, their local references moved; the mounts stay out; mistakes are
 * refused. `test_http_openapi --dump FILE` writes the document of the shop below
 * for tests/http/openapi.sh, which checks it against the official meta-schema
 * and with an independent linter.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    ck_assert_msg(v != NULL, "%s: %s", text, e.text);
    return v;
}

static bk_schema_t *compile(const char *text, int draft)
{
    json_t *doc = load(text);
    bk_schema_opts_t so;
    bk_schema_opts_init(&so);
    so.draft = draft;
    bk_schema_t *s;
    ck_assert_int_eq(bk_schema_compile(doc, &so, &s, NULL), BK_OK);
    json_decref(doc);
    return s;
}

static void h_ok(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static int h_owner(bk_req_t *req, const json_t *claims, void *ud)
{
    (void)req, (void)claims, (void)ud;
    return BK_OK;
}

static bk_http_server_t *new_server(void)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    return s;
}

/* ------------------------------------------------------------------ the shop */
/* A small shop with every kind of route: a guarded order creation with a body
 * schema whose items are a local $ref, a product list with a query schema, a
 * product read sharing its answer's schema with the list's items, an owned
 * resource, a file tail, a deprecated and a hidden route, and the mounts (static,
 * health, metrics, the document itself), which the document leaves out. */
static struct shop {
    bk_http_server_t *srv;
    bk_jwt_keys_t *keys;
    bk_rbac_t *rbac;
    bk_ratelimit_t *rl;
    bk_schema_t *order, *query;
    json_t *product, *product_list;
    bk_http_auth_t auth;
    char dir[64];
} shop;

static const bk_http_openapi_info_t SHOP_INFO = {
    .title = "Shop",
    .version = "1.2.0",
    .description = "The shop of the libbackend tests.",
    .servers = (const char *const[]){"https://shop.test/v1", NULL},
    .contact_name = "Shop team",
    .contact_email = "shop@shop.test",
    .license_name = "MIT",
    .license_identifier = "MIT",
};

static void shop_build(void)
{
    struct shop *s = &shop;
    s->srv = new_server();
    ck_assert_int_eq(bk_jwt_keys_new(&s->keys), BK_OK);
    ck_assert_int_eq(bk_jwt_keys_add(s->keys, "k1", "HS256", "0123456789abcdef0123456789abcdef", 32, true, NULL),
                     BK_OK);
    json_t *policy = load("{\"roles\":{\"buyer\":{\"permissions\":[\"orders:create\",\"orders:read\"]}}}");
    ck_assert_int_eq(bk_rbac_load(policy, &s->rbac, NULL), BK_OK);
    json_decref(policy);
    bk_ratelimit_store_t st;
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &st), BK_OK);
    ck_assert_int_eq(bk_ratelimit_new(10, &st, NULL, &s->rl), BK_OK);
    s->auth = (bk_http_auth_t){.keys = s->keys, .rbac = s->rbac};
    s->order = compile("{\"title\":\"Order\",\"type\":\"object\",\"required\":[\"items\"],"
                       "\"properties\":{\"items\":{\"type\":\"array\",\"minItems\":1,"
                       "\"items\":{\"$ref\":\"#/$defs/item\"}},"
                       "\"meta\":{\"type\":\"object\",\"examples\":[{\"$ref\":\"#/not/a/schema\"}]}},"
                       "\"$defs\":{\"item\":{\"type\":\"object\",\"required\":[\"product_id\",\"quantity\"],"
                       "\"properties\":{\"product_id\":{\"type\":\"integer\"},"
                       "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}}}}}",
                       BK_SCHEMA_DRAFT_2020_12);
    s->query = compile("{\"type\":\"object\",\"required\":[\"page\"],\"properties\":{"
                       "\"page\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"From 1.\"},"
                       "\"q\":{\"type\":\"string\"}}}",
                       BK_SCHEMA_DRAFT_2020_12);
    s->product = load("{\"title\":\"Product\",\"type\":\"object\",\"required\":[\"id\",\"name\"],"
                      "\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"}}}");
    s->product_list = json_pack("{s:s, s:O}", "type", "array", "items", s->product);

    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_JSON | BK_HTTP_BLOCKING;
    ro.body_schema = s->order;
    ro.auth = &s->auth;
    ro.permission = "orders:create";
    ro.ratelimit = s->rl;
    ro.doc = &(bk_http_operation_t){
        .summary = "Place an order",
        .description = "Runs the order's saga.",
        .operation_id = "createOrder",
        .tags = (const char *const[]){"orders", NULL},
        .responses = (const bk_http_response_doc_t[]){
            {.status = 201, .description = "The order, completed.", .schema = s->product},
            {.status = 409, .description = "Out of stock."},
        },
        .nresponses = 2,
    };
    ck_assert_int_eq(bk_http_route(s->srv, "POST", "/api/v1/orders", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.query_schema = s->query;
    ro.doc = &(bk_http_operation_t){
        .summary = "List the products",
        .tags = (const char *const[]){"products", NULL},
        .responses = (const bk_http_response_doc_t[]){{.status = 200, .schema = s->product_list}},
        .nresponses = 1,
    };
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/api/v1/products", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){
        .tags = (const char *const[]){"products", NULL},
        .responses = (const bk_http_response_doc_t[]){{.status = 200, .schema = s->product},
                                                      {.status = 404, .description = "No such product."}},
        .nresponses = 2,
    };
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/api/v1/products/{id}", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.auth = &s->auth;
    ro.permission = "orders:read";
    ro.owner = h_owner;
    ro.doc = &(bk_http_operation_t){.summary = "Read an order", .operation_id = "getOrder",
                                    .tags = (const char *const[]){"orders", NULL}};
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/api/v1/orders/{order_id}", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){.summary = "The old product list", .deprecated = true,
                                    .tags = (const char *const[]){"products", NULL}};
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/api/v0/products", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_RAW_PARAMS;
    ro.doc = &(bk_http_operation_t){.summary = "A report", .tags = (const char *const[]){"reports", NULL}};
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/reports/{name...}", h_ok, NULL, &ro), BK_OK);

    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){.hidden = true};
    ck_assert_int_eq(bk_http_route(s->srv, "GET", "/internal/debug", h_ok, NULL, &ro), BK_OK);

    snprintf(s->dir, sizeof s->dir, "/tmp/bk-openapi-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    ck_assert_int_eq(bk_http_mount_static(s->srv, "/assets", s->dir, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s->srv), BK_OK);
    ck_assert_int_eq(bk_http_mount_metrics(s->srv, "/metrics"), BK_OK);
    ck_assert_int_eq(bk_http_mount_openapi(s->srv, "/openapi.json", &SHOP_INFO), BK_OK);
}

static void shop_free(void)
{
    struct shop *s = &shop;
    bk_http_server_free(s->srv);
    bk_jwt_keys_free(s->keys);
    bk_rbac_free(s->rbac);
    bk_ratelimit_free(s->rl);
    bk_schema_free(s->order);
    bk_schema_free(s->query);
    json_decref(s->product);
    json_decref(s->product_list);
    rmdir(s->dir);
    memset(s, 0, sizeof *s);
}

static json_t *shop_doc(void)
{
    json_t *doc;
    bk_error_t err;
    ck_assert_msg(bk_http_openapi(shop.srv, &SHOP_INFO, &doc, &err) == BK_OK, "%s", err.message);
    return doc;
}

/* doc at the JSON pointer ptr (RFC 6901, without escapes but "~1"). */
static json_t *at(json_t *doc, const char *ptr)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ptr);
    json_t *v = doc;
    for (char *save, *tok = strtok_r(buf, "/", &save); v && tok; tok = strtok_r(NULL, "/", &save)) {
        char name[256];
        size_t n = 0;
        for (const char *p = tok; *p && n + 1 < sizeof name; p++) {
            if (p[0] == '~' && p[1] == '1')
                name[n++] = '/', p++;
            else
                name[n++] = *p;
        }
        name[n] = '\0';
        v = json_is_array(v) ? json_array_get(v, strtoul(name, NULL, 10)) : json_object_get(v, name);
    }
    return v;
}

static const char *str_at(json_t *doc, const char *ptr)
{
    return json_string_value(at(doc, ptr));
}

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = load(want_text);
    char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_msg(json_equal(got, want), "got %s, want %s", g ? g : "(null)", want_text);
    free(g);
    json_decref(want);
}

/* The fixture of the cases that read the shop's document. */
static json_t *shop_json;

static void shop_setup(void)
{
    shop_build();
    shop_json = shop_doc();
}

static void shop_teardown(void)
{
    json_decref(shop_json);
    shop_free();
}

/* ------------------------------------------------------------------ cases */
START_TEST(the_mount_serves_the_document_rendered_at_start)
{
    shop_build();
    ck_assert_int_eq(bk_http_server_start(shop.srv, NULL), BK_OK);
    /* Routes cannot change after start, so the document served is the one of now. */
    json_t *now = shop_doc();
    struct bkt_response r;
    const char raw[] = "GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_request(bk_http_server_port(shop.srv), raw, sizeof raw - 1, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char ctype[64];
    ck_assert_str_eq(bkt_header(&r, "Content-Type", ctype, sizeof ctype), "application/json");
    json_t *served = json_loadb(r.body, r.body_len, 0, NULL);
    ck_assert_ptr_nonnull(served);
    ck_assert(json_equal(served, now));
    ck_assert_str_eq(str_at(served, "/openapi"), "3.1.0");
    assert_json(at(served, "/info"), "{\"title\":\"Shop\",\"version\":\"1.2.0\","
                                     "\"description\":\"The shop of the libbackend tests.\","
                                     "\"contact\":{\"name\":\"Shop team\",\"email\":\"shop@shop.test\"},"
                                     "\"license\":{\"name\":\"MIT\",\"identifier\":\"MIT\"}}");
    assert_json(at(served, "/servers"), "[{\"url\":\"https://shop.test/v1\"}]");
    /* The default dialect (2020-12 with OpenAPI's vocabulary) is the one the
     * routes' schemas are read in: no jsonSchemaDialect to override it. */
    ck_assert_ptr_null(at(served, "/jsonSchemaDialect"));
    json_decref(served);
    json_decref(now);
    bkt_response_free(&r);
    shop_free();
}
END_TEST

START_TEST(the_document_has_the_routes_and_not_the_mounts)
{
    json_t *doc = shop_json;
    json_t *paths = at(doc, "/paths");
    const char *want[] = {"/api/v1/orders", "/api/v1/products", "/api/v1/products/{id}",
                          "/api/v1/orders/{order_id}", "/api/v0/products", "/reports/{name}"};
    ck_assert_uint_eq(json_object_size(paths), sizeof want / sizeof *want);
    /* In the order of registration, as the author grouped them. */
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(paths, key, v)
        ck_assert_str_eq(key, want[i++]);
    ck_assert_ptr_nonnull(at(doc, "/paths/~1api~1v1~1orders/post"));
    ck_assert_uint_eq(json_object_size(at(doc, "/paths/~1api~1v1~1orders")), 1);
    assert_json(at(doc, "/tags"), "[{\"name\":\"orders\"},{\"name\":\"products\"},{\"name\":\"reports\"}]");
}
END_TEST

START_TEST(a_guarded_route_says_its_body_security_and_every_guards_answer)
{
    json_t *doc = shop_json;
    json_t *op = at(doc, "/paths/~1api~1v1~1orders/post");
    ck_assert_str_eq(str_at(op, "/operationId"), "createOrder");
    ck_assert_str_eq(str_at(op, "/summary"), "Place an order");
    ck_assert_str_eq(str_at(op, "/description"), "Runs the order's saga.");
    assert_json(at(op, "/tags"), "[\"orders\"]");
    assert_json(at(op, "/security"), "[{\"bearerAuth\":[]}]");
    ck_assert_str_eq(str_at(op, "/x-permission"), "orders:create");
    assert_json(at(op, "/requestBody"), "{\"required\":true,\"content\":{\"application/json\":"
                                        "{\"schema\":{\"$ref\":\"#/components/schemas/Order\"}}}}");
    assert_json(at(doc, "/components/securitySchemes"),
                "{\"bearerAuth\":{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\"}}");
    json_t *res = at(op, "/responses");
    const char *statuses[] = {"201", "409", "400", "401", "403", "413", "415", "422", "429", "503"};
    ck_assert_uint_eq(json_object_size(res), sizeof statuses / sizeof *statuses);
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
        ck_assert_msg(json_object_get(res, statuses[i]) != NULL, "no %s", statuses[i]);
    assert_json(at(res, "/409"), "{\"description\":\"Out of stock.\"}");
    assert_json(at(res, "/401"), "{\"$ref\":\"#/components/responses/Unauthorized\"}");
    assert_json(at(res, "/422"), "{\"$ref\":\"#/components/responses/ValidationFailed\"}");
    /* The shared answers: RFC 9457 problems, with the headers the guard sends. */
    ck_assert_str_eq(str_at(doc, "/components/responses/Unauthorized/content/application~1problem+json/schema/$ref"),
                     "#/components/schemas/Problem");
    ck_assert_ptr_nonnull(at(doc, "/components/responses/Unauthorized/headers/WWW-Authenticate"));
    ck_assert_ptr_nonnull(at(doc, "/components/responses/TooManyRequests/headers/Retry-After"));
    ck_assert_ptr_nonnull(at(doc, "/components/responses/TooManyRequests/headers/RateLimit-Policy"));
    ck_assert_str_eq(str_at(doc, "/components/responses/ValidationFailed/content/application~1problem+json/schema/$ref"),
                     "#/components/schemas/ValidationProblem");
    ck_assert_str_eq(str_at(doc, "/components/schemas/ValidationProblem/allOf/0/$ref"),
                     "#/components/schemas/Problem");
    assert_json(at(doc, "/components/schemas/Problem/required"), "[\"type\",\"title\",\"status\"]");
    /* The owned route adds 404; a plain one no guard answer at all. */
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1orders~1{order_id}/get/responses/404/$ref"),
                     "#/components/responses/NotFound");
    assert_json(at(doc, "/paths/~1api~1v0~1products/get/responses"), "{\"200\":{\"description\":\"OK\"}}");
}
END_TEST

START_TEST(a_schema_appears_as_it_is_with_its_local_references_moved)
{
    json_t *doc = shop_json;
    json_t *order = at(doc, "/components/schemas/Order");
    ck_assert_str_eq(str_at(order, "/properties/items/items/$ref"), "#/components/schemas/Order/$defs/item");
    /* Data is not a schema: an example that looks like a reference stays. */
    ck_assert_str_eq(str_at(order, "/properties/meta/examples/0/$ref"), "#/not/a/schema");
    /* Everything else as compiled. */
    json_t *moved = json_deep_copy(bk_schema_document(shop.order));
    json_object_set_new(at(moved, "/properties/items/items"), "$ref",
                        json_string("#/components/schemas/Order/$defs/item"));
    ck_assert(json_equal(order, moved));
    json_decref(moved);
}
END_TEST

START_TEST(parameters_come_from_the_template_and_the_query_schema)
{
    json_t *doc = shop_json;
    assert_json(at(doc, "/paths/~1api~1v1~1products/get/parameters"),
                "[{\"name\":\"page\",\"in\":\"query\",\"required\":true,\"description\":\"From 1.\","
                "\"schema\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"From 1.\"}},"
                "{\"name\":\"q\",\"in\":\"query\",\"required\":false,\"schema\":{\"type\":\"string\"}}]");
    /* Each parameter has its own schema: the query's is no component of its own. */
    ck_assert_ptr_null(at(doc, "/components/schemas/get_api_v1_products_query"));
    assert_json(at(doc, "/paths/~1api~1v1~1products~1{id}/get/parameters"),
                "[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}]");
    /* A tail is one OpenAPI parameter (its slashes are the client's to encode). */
    json_t *tail = at(doc, "/paths/~1reports~1{name}/get/parameters/0");
    ck_assert_str_eq(str_at(tail, "/name"), "name");
    ck_assert_str_eq(str_at(tail, "/in"), "path");
    ck_assert_ptr_nonnull(at(tail, "/description"));
    /* With parameters taken as raw bytes, no 400 for bad UTF-8. */
    ck_assert_ptr_null(at(doc, "/paths/~1reports~1{name}/get/responses/400"));
    ck_assert_ptr_nonnull(at(doc, "/paths/~1api~1v1~1products~1{id}/get/responses/400"));
    ck_assert_ptr_nonnull(at(doc, "/paths/~1api~1v1~1products/get/responses/422"));
    ck_assert_ptr_null(at(doc, "/paths/~1api~1v1~1products/get/requestBody"));
}
END_TEST

START_TEST(a_schema_shared_by_routes_is_one_component_named_by_its_title)
{
    json_t *doc = shop_json;
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1products~1{id}/get/responses/200/content/application~1json/schema/$ref"),
                     "#/components/schemas/Product");
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1orders/post/responses/201/content/application~1json/schema/$ref"),
                     "#/components/schemas/Product");
    ck_assert(json_equal(at(doc, "/components/schemas/Product"), shop.product));
    /* No title: named by its operation and status. */
    ck_assert(json_equal(at(doc, "/components/schemas/get_api_v1_products_200"), shop.product_list));
    /* A made operationId from the method and template; a description from the status. */
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1products~1{id}/get/operationId"), "get_api_v1_products_id");
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1products~1{id}/get/summary"), "GET /api/v1/products/{id}");
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1products~1{id}/get/responses/200/description"), "OK");
    ck_assert_str_eq(str_at(doc, "/paths/~1api~1v1~1products~1{id}/get/responses/404/description"),
                     "No such product.");
    ck_assert(json_is_true(at(doc, "/paths/~1api~1v0~1products/get/deprecated")));
    ck_assert_ptr_null(at(doc, "/paths/~1api~1v1~1products/get/deprecated"));
}
END_TEST

START_TEST(made_operation_ids_are_unique_and_never_take_a_given_one)
{
    bk_http_server_t *s = new_server();
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ck_assert_int_eq(bk_http_route(s, "GET", "/a-b", h_ok, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/a_b", h_ok, NULL, NULL), BK_OK);
    ro.doc = &(bk_http_operation_t){.operation_id = "get_c"};
    ck_assert_int_eq(bk_http_route(s, "GET", "/x", h_ok, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/c", h_ok, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/", h_ok, NULL, NULL), BK_OK);
    json_t *doc;
    ck_assert_int_eq(bk_http_openapi(s, &(bk_http_openapi_info_t){.title = "t", .version = "1"}, &doc, NULL),
                     BK_OK);
    ck_assert_str_eq(str_at(doc, "/paths/~1a-b/get/operationId"), "get_a_b");
    ck_assert_str_eq(str_at(doc, "/paths/~1a_b/get/operationId"), "get_a_b_2");
    ck_assert_str_eq(str_at(doc, "/paths/~1x/get/operationId"), "get_c");
    ck_assert_str_eq(str_at(doc, "/paths/~1c/get/operationId"), "get_c_2");
    ck_assert_str_eq(str_at(doc, "/paths/~1/get/operationId"), "get");
    ck_assert_ptr_null(at(doc, "/components")); /* nothing shared, nothing there */
    json_decref(doc);
    bk_http_server_free(s);
}
END_TEST

START_TEST(a_draft_07_schema_says_so_and_one_with_an_id_keeps_its_references)
{
    bk_http_server_t *s = new_server();
    bk_schema_t *d7 = compile("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/definitions/a\"}},"
                              "\"definitions\":{\"a\":{\"type\":\"integer\"}}}",
                              BK_SCHEMA_DRAFT_7);
    bk_schema_t *own = compile("{\"$id\":\"https://shop.test/q\",\"type\":\"object\",\"properties\":"
                               "{\"b\":{\"$ref\":\"#/$defs/b\"}},\"$defs\":{\"b\":{\"type\":\"string\"}}}",
                               BK_SCHEMA_DRAFT_2020_12);
    ck_assert_int_eq(bk_schema_draft(d7), BK_SCHEMA_DRAFT_7);
    ck_assert_int_eq(bk_schema_draft(own), BK_SCHEMA_DRAFT_2020_12);
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.body_schema = d7;
    ck_assert_int_eq(bk_http_route(s, "PUT", "/d7", h_ok, NULL, &ro), BK_OK);
    bk_http_route_opts_init(&ro);
    ro.query_schema = own;
    ck_assert_int_eq(bk_http_route(s, "GET", "/own", h_ok, NULL, &ro), BK_OK);
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_JSON;
    ck_assert_int_eq(bk_http_route(s, "POST", "/any", h_ok, NULL, &ro), BK_OK);
    json_t *doc;
    ck_assert_int_eq(bk_http_openapi(s, &(bk_http_openapi_info_t){.title = "t", .version = "1"}, &doc, NULL),
                     BK_OK);
    json_t *c7 = at(doc, "/components/schemas/put_d7_body");
    ck_assert_str_eq(str_at(c7, "/$schema"), "http://json-schema.org/draft-07/schema#");
    ck_assert_str_eq(str_at(c7, "/properties/a/$ref"), "#/components/schemas/put_d7_body/definitions/a");
    /* A parameter whose schema refers elsewhere in the query's schema refers to its
     * place in the query's component; one with its own $id keeps its references. */
    ck_assert_str_eq(str_at(doc, "/paths/~1own/get/parameters/0/schema/$ref"),
                     "#/components/schemas/get_own_query/properties/b");
    ck_assert(json_equal(at(doc, "/components/schemas/get_own_query"), bk_schema_document(own)));
    /* JSON of any shape: a body, not required, without a schema, and no 422. */
    assert_json(at(doc, "/paths/~1any/post/requestBody"), "{\"required\":false,\"content\":{\"application/json\":{}}}");
    ck_assert_ptr_null(at(doc, "/paths/~1any/post/responses/422"));
    ck_assert_ptr_nonnull(at(doc, "/paths/~1any/post/responses/415"));
    json_decref(doc);
    bk_http_server_free(s);
    bk_schema_free(d7);
    bk_schema_free(own);
}
END_TEST

START_TEST(mistakes_are_refused)
{
    bk_http_server_t *s = new_server();
    const bk_http_openapi_info_t ok = {.title = "t", .version = "1"};
    /* The info: title and version, a license with its name, an identifier or a URL. */
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", &(bk_http_openapi_info_t){.title = "t"}), BK_EINVAL);
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", &(bk_http_openapi_info_t){.title = "t", .version = "1",
                                                                               .license_url = "https://l"}),
                     BK_EINVAL);
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", &(bk_http_openapi_info_t){
                                                        .title = "t", .version = "1", .license_name = "MIT",
                                                        .license_identifier = "MIT", .license_url = "https://l"}),
                     BK_EINVAL);
    bk_error_t err;
    json_t *doc = (json_t *)1;
    ck_assert_int_eq(bk_http_openapi(s, &(bk_http_openapi_info_t){.title = "\xff", .version = "1"}, &doc, &err),
                     BK_EINVAL);
    ck_assert_ptr_null(doc);
    ck_assert_str_eq(err.message, "openapi info: title is not UTF-8");
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", &ok), BK_OK);
    ck_assert_int_eq(bk_http_mount_openapi(s, "/p", &ok), BK_EEXIST);
    /* The operation: statuses in range and once each, UTF-8, responses given. */
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){.responses = (const bk_http_response_doc_t[]){{.status = 700}},
                                    .nresponses = 1};
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, &ro), BK_EINVAL);
    ro.doc = &(bk_http_operation_t){.responses = (const bk_http_response_doc_t[]){{.status = 200}, {.status = 200}},
                                    .nresponses = 2};
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, &ro), BK_EINVAL);
    ro.doc = &(bk_http_operation_t){.nresponses = 1};
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, &ro), BK_EINVAL);
    ro.doc = &(bk_http_operation_t){.summary = "bad \xc0\xaf"};
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, &ro), BK_EINVAL);
    ro.doc = &(bk_http_operation_t){.tags = (const char *const[]){"\xff", NULL}};
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, &ro), BK_EINVAL);
    /* A refused route is not there: the path is still free. */
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_ok, NULL, NULL), BK_OK);
    /* Two routes given one operationId: the document would be wrong, so the
     * server does not start. */
    ro.doc = &(bk_http_operation_t){.operation_id = "same"};
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_ok, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/c", h_ok, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_openapi(s, &ok, &doc, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "openapi: the operationId same is given to two routes");
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "openapi: the operationId same is given to two routes");
    bk_http_server_free(s);

    /* A parameter and a tail are one path in OpenAPI's terms. */
    s = new_server();
    ck_assert_int_eq(bk_http_route(s, "GET", "/f/{p}", h_ok, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/f/{p...}", h_ok, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_openapi(s, &ok, &doc, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "openapi: GET /f/{p...} is the path of another route of that method in "
                                  "OpenAPI's terms");
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_openapi(s, "/o", &ok), BK_EBUSY); /* after start */
    bk_http_server_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_openapi");
    TCase *shop_tc = tcase_create("shop");
    tcase_add_checked_fixture(shop_tc, shop_setup, shop_teardown);
    tcase_add_test(shop_tc, the_document_has_the_routes_and_not_the_mounts);
    tcase_add_test(shop_tc, a_guarded_route_says_its_body_security_and_every_guards_answer);
    tcase_add_test(shop_tc, a_schema_appears_as_it_is_with_its_local_references_moved);
    tcase_add_test(shop_tc, parameters_come_from_the_template_and_the_query_schema);
    tcase_add_test(shop_tc, a_schema_shared_by_routes_is_one_component_named_by_its_title);
    suite_add_tcase(s, shop_tc);
    TCase *tc = tcase_create("openapi");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, the_mount_serves_the_document_rendered_at_start);
    tcase_add_test(tc, made_operation_ids_are_unique_and_never_take_a_given_one);
    tcase_add_test(tc, a_draft_07_schema_says_so_and_one_with_an_id_keeps_its_references);
    tcase_add_test(tc, mistakes_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

/* --dump FILE: a suite of one case, which writes the shop's document. */
static const char *dump_path;

START_TEST(dump)
{
    shop_build();
    json_t *doc = shop_doc();
    ck_assert_int_eq(json_dump_file(doc, dump_path, JSON_INDENT(2)), 0);
    json_decref(doc);
    shop_free();
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) { /* for tests/http/openapi.sh */
        dump_path = argv[2];
        Suite *s = suite_create("http_openapi_dump");
        TCase *tc = tcase_create("dump");
        tcase_add_test(tc, dump);
        suite_add_tcase(s, tc);
        return bk_test_run(s);
    }
    return bk_test_run(suite());
}
