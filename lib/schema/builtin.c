/* The built-in registry: the draft 2020-12 (with its vocabulary meta-schemas) and
 * draft-07 meta-schema documents, embedded at build time (embed.sh), parsed into
 * a process-wide registry once, on first use, and only read from then on (so any
 * number of threads may search it). compile.c searches it after the caller's
 * registry; meta.c compiles its documents.
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

static bk_schema_registry_t *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* A document that does not parse or register (only on ENOMEM) is missing, as if
 * it were not built in; the others are still there. */
static void fill(void)
{
    bk_schema_registry_t *reg;
    if (bk_schema_registry_new(&reg) != BK_OK)
        return;
    for (size_t i = 0; i < NMETA; i++) {
        char uri[128];
        size_t n = strcspn(META[i].uri, "#"); /* draft-07's $id ends in an empty fragment */
        if (n >= sizeof uri)
            continue;
        memcpy(uri, META[i].uri, n);
        uri[n] = '\0';
        json_t *doc = json_loads(META[i].text, 0, NULL);
        if (doc)
            bk_schema_registry_add(reg, uri, doc);
        json_decref(doc);
    }
    builtin = reg;
}

const bk_schema_registry_t *bk__registry_builtin(void)
{
    pthread_once(&builtin_once, fill);
    return builtin;
}
