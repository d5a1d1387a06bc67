/*
 * passwd: Argon2id password hashes with libbackend's auth module, as a login
 * service would make and check them. The password is read on stdin (one trailing
 * newline removed), never from the command line, where ps and shell history see it.
 *
 *   passwd hash                 prints the PHC string of the password
 *   passwd verify HASH          exits 0 when the password matches HASH, 1 when not
 *   passwd needs-rehash HASH    exits 0 when HASH is not what the default policy
 *                               makes (rehash it at the next login), 1 otherwise
 *
 * HASH may be any Argon2 PHC string (argon2id, argon2i, argon2d), e.g. one made by
 * another library. Exits 2, with a "passwd: ..." message on stderr, on a usage
 * error, a malformed HASH or a password over 1024 bytes.
 *
 *   $ printf 'hunter2' | passwd hash
 *   $argon2id$v=19$m=19456,t=2,p=1$...$...
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/auth.h>

enum { EXIT_YES = 0, EXIT_NO = 1, EXIT_TROUBLE = 2 };

static int usage(void)
{
    fprintf(stderr, "usage: passwd hash\n"
                    "       passwd verify HASH\n"
                    "       passwd needs-rehash HASH\n"
                    "The password is read on stdin; one trailing newline is removed.\n");
    return EXIT_TROUBLE;
}

/* Reads all of stdin into buf (at most max bytes after the newline is removed);
 * false, with a message, when it is longer or cannot be read. */
static bool read_password(char *buf, size_t bufsz, size_t max, size_t *len)
{
    size_t n = 0, r;
    while (n < bufsz && (r = fread(buf + n, 1, bufsz - n, stdin)) > 0)
        n += r;
    if (ferror(stdin)) {
        fprintf(stderr, "passwd: cannot read the password from stdin\n");
        return false;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > max) { /* buf holds max + 2 bytes: a longer input shows here */
        fprintf(stderr, "passwd: %s: the password is over %zu bytes\n", bk_strerror(BK_ERANGE), max);
        return false;
    }
    *len = n;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    bool hash = strcmp(cmd, "hash") == 0;
    if (!(hash && argc == 2) &&
        !((strcmp(cmd, "verify") == 0 || strcmp(cmd, "needs-rehash") == 0) && argc == 3))
        return usage();
    bk_password_policy_t policy;
    bk_password_policy_init(&policy);
    if (strcmp(cmd, "needs-rehash") == 0)
        return bk_password_needs_rehash(&policy, argv[2]) ? EXIT_YES : EXIT_NO;

    /* Room for the longest password, its newline and one byte to see it is longer. */
    char buf[1024 + 2];
    size_t len;
    int status = EXIT_TROUBLE, rc;
    bk_error_t err;
    if (!read_password(buf, sizeof buf, policy.max_password_len, &len)) {
        rc = BK_OK;
    } else if (hash) {
        char out[BK_PASSWORD_HASH_MAX];
        rc = bk_password_hash(&policy, buf, len, out, sizeof out, &err);
        if (rc == BK_OK) {
            puts(out);
            status = EXIT_YES;
        }
    } else {
        rc = bk_password_verify(&policy, buf, len, argv[2], &err);
        if (rc == BK_OK || rc == BK_EMISMATCH)
            status = rc == BK_OK ? EXIT_YES : EXIT_NO;
    }
    explicit_bzero(buf, sizeof buf); /* the password, from this copy at least */
    /* err says why: a malformed hash, or one whose cost is beyond the caps. */
    if (rc != BK_OK && rc != BK_EMISMATCH)
        fprintf(stderr, "passwd: %s\n", err.message);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "passwd: cannot write the hash\n");
        return EXIT_TROUBLE;
    }
    return status;
}
