/* The built-in meta-schemas (draft 2020-12 and draft-07): parsed once per
 * process, on first use, and kept for the life of the process.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <string.h>

#include "schema/schema_int.h"

static const struct {
    const char *uri;
    const char *text;
} META[] = {
#include "lib/schema/metaschemas.inc"
};
#define NMETA (sizeof META / sizeof META[0])

static json_t *docs[NMETA];
static pthread_once_t docs_once = PTHREAD_ONCE_INIT;

static void parse_docs(void)
{
    for (size_t i = 0; i < NMETA; i++)
        docs[i] = json_loads(META[i].text, 0, NULL); /* NULL only on ENOMEM */
}

json_t *bk__metaschema_doc(const char *uri, size_t len)
{
    pthread_once(&docs_once, parse_docs);
    for (size_t i = 0; i < NMETA; i++) {
        size_t n = strcspn(META[i].uri, "#"); /* draft-07's $id ends in an empty fragment */
        if (n == len && memcmp(META[i].uri, uri, len) == 0)
            return docs[i];
    }
    return NULL;
}

static bk_schema_t *compiled[2];
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;

static void compile_metaschemas(void)
{
    static const char *const uris[2] = {"https://json-schema.org/draft/2020-12/schema",
                                        "http://json-schema.org/draft-07/schema"};
    for (int i = 0; i < 2; i++) {
        json_t *doc = bk__metaschema_doc(uris[i], strlen(uris[i]));
        bk_schema_opts_t o;
        bk_schema_opts_init(&o);
        o.base_uri = uris[i];
        if (doc)
            bk_schema_compile(doc, &o, &compiled[i], NULL);
    }
}

const bk_schema_t *bk_schema_metaschema(int draft)
{
    if (draft != BK_SCHEMA_DRAFT_2020_12 && draft != BK_SCHEMA_DRAFT_7)
        return NULL;
    pthread_once(&compiled_once, compile_metaschemas);
    return compiled[draft == BK_SCHEMA_DRAFT_7];
}
