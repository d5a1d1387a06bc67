/* bk_schema_metaschema: the built-in meta-schemas (draft 2020-12 and draft-07),
 * compiled from the documents of the built-in registry (builtin.c) once per
 * process, on first use, and kept for the life of the process.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <string.h>

#include "schema/schema_int.h"

static bk_schema_t *compiled[2];
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;

static void compile_metaschemas(void)
{
    static const char *const uris[2] = {"https://json-schema.org/draft/2020-12/schema",
                                        "http://json-schema.org/draft-07/schema"};
    for (int i = 0; i < 2; i++) {
        const bk_schema_registry_t *builtin = bk__registry_builtin();
        json_t *doc = builtin ? bk__registry_get(builtin, uris[i], strlen(uris[i])) : NULL;
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
