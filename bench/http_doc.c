/* The server of bench/http_json.sh's gzip figure: GET /doc answers the same
 * 20 KB JSON document (232 products) on libbackend, with gzip on (--gzip) or
 * off, so that the cost of compressing is measured by itself.
 *
 *   http_doc --port N [--threads N] [--gzip]
 *
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/backend.h>

static char *doc;
static size_t doc_len;

static void h_doc(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_bytes(req, 200, "application/json", doc, doc_len);
}

int main(int argc, char **argv)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = (uint16_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--gzip") == 0)
            o.gzip_min_bytes = 1024;
        else if (strncmp(argv[i], "--access-log=", 13) != 0) {
            fprintf(stderr, "usage: %s --port N [--threads N] [--gzip]\n", argv[0]);
            return 2;
        }
    }
    json_t *items = json_array();
    for (int i = 0; i < 232; i++)
        json_array_append_new(items, json_pack("{s:i, s:s, s:s, s:i, s:b}", "id", i, "name", "a product name",
                                               "sku", "SKU-000000", "price_cents", 100 + i, "in_stock", i % 2));
    doc = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    if (doc == NULL)
        return 1;
    doc_len = strlen(doc);
    bk_http_server_t *srv;
    bk_error_t err;
    if (bk_http_server_new(&o, &srv, &err) != BK_OK || bk_http_route(srv, "GET", "/doc", h_doc, NULL, NULL) != BK_OK ||
        bk_http_server_start(srv, &err) != BK_OK) {
        fprintf(stderr, "http_doc: %s\n", err.message);
        return 1;
    }
    bk_http_server_wait(srv);
    bk_http_server_free(srv);
    free(doc);
    return 0;
}
