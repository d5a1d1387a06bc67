/* libFuzzer target: stored password hashes. The input is a PHC string as a
 * database row would hold it, tampered or imported: bk_password_needs_rehash
 * reads it, and bk_password_verify checks a password against it, which must
 * answer BK_OK or BK_EMISMATCH only for a well-formed hash within the caps,
 * BK_EINVAL otherwise, and never anything else. Verification is run only for
 * strings whose cost is small (m <= 256 KiB, t <= 3, p <= 4, read here), so that
 * each input stays fast; the parser sees every input either way.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/auth.h>

#include "fuzz.h"

static bk_password_policy_t policy;

BK_FUZZ_INIT
{
    bk_password_policy_init(&policy);
    policy.memory_kib = 64;
    policy.iterations = 1;
}

/* The number after key ("m=") in s, or a large one when there is none. */
static unsigned long param(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? strtoul(p + strlen(key), NULL, 10) : ~0ul;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *phc = malloc(size + 1);
    if (!phc)
        return 0;
    memcpy(phc, data, size);
    phc[size] = '\0'; /* a NUL inside ends the string, as a C caller's would */
    (void)bk_password_needs_rehash(&policy, phc);
    if (param(phc, "m=") <= 256 && param(phc, "t=") <= 3 && param(phc, "p=") <= 4) {
        bk_error_t err;
        int rc = bk_password_verify(&policy, "correct horse", 13, phc, &err);
        if (rc != BK_OK && rc != BK_EMISMATCH && rc != BK_EINVAL && rc != BK_ENOMEM)
            abort(); /* no other code is documented */
        if (rc != BK_OK && err.code != rc)
            abort(); /* err says the same */
    }
    free(phc);
    return 0;
}
