/* --dev: what a developer's first run needs and an operator's never gets: a
 * signing key made once into the state directory, sample products, and an
 * admin account whose password is printed once, when it is made.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"

#define DEV_ADMIN "admin@backendd.test"

int dev_key(const struct app *app, bk_jwt_keys_t *keys, bk_error_t *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/jwt-dev.key", app->conf.state_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) { /* the first run: 32 random bytes, an HS256 secret */
        unsigned char secret[32];
        int rc = bk_random_bytes(secret, sizeof secret);
        bool ok = rc == BK_OK && write(fd, secret, sizeof secret) == (ssize_t)sizeof secret;
        memset(secret, 0, sizeof secret);
        if (close(fd) != 0 || !ok) {
            unlink(path);
            return app_error(err, BK_ESYS, "%s: cannot write the development key", path);
        }
        bk_log(app->log, BK_LOG_INFO, json_pack("{s:s}", "file", path), "made a development signing key");
    } else if (errno != EEXIST) {
        return app_error(err, BK_ESYS, "%s: %s (the state directory: state_dir)", path, strerror(errno));
    }
    return bk_jwt_keys_add_file(keys, "dev", "HS256", path, true, err);
}

static const struct { const char *sku, *name, *description; const char *price; const char *stock; } SAMPLES[] = {
    {"TEA-001", "Green tea", "Sencha from Shizuoka, 100 g loose leaves.", "850", "120"},
    {"TEA-002", "Black tea", "Assam breakfast tea, 250 g.", "1290", "80"},
    {"MUG-001", "Stoneware mug", "A 350 ml mug, dishwasher safe.", "1500", "40"},
    {"POT-001", "Cast iron teapot", "Tetsubin, 800 ml, with a steel infuser.", "4900", "12"},
    {"KET-001", "Gooseneck kettle", "1 l, temperature control from 40 to 100 degrees.", "6900", "0"},
};

int dev_seed(struct app *app, bk_error_t *err)
{
    for (size_t i = 0; i < sizeof SAMPLES / sizeof *SAMPLES; i++) {
        int rc = app_query(app,
                           "INSERT INTO backendd.products (sku, name, description, price, stock)"
                           " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku) DO NOTHING",
                           (bk_db_param_t[]){BK_DB_TEXT(SAMPLES[i].sku), BK_DB_TEXT(SAMPLES[i].name),
                                             BK_DB_TEXT(SAMPLES[i].description), BK_DB_TEXT(SAMPLES[i].price),
                                             BK_DB_TEXT(SAMPLES[i].stock)},
                           5, NULL, err);
        if (rc != BK_OK)
            return rc;
    }
    /* A password of 24 hex digits: no spaces, easy to copy. */
    unsigned char b[12];
    char password[25], hash[BK_PASSWORD_HASH_MAX];
    int rc = bk_random_bytes(b, sizeof b);
    for (size_t i = 0; rc == BK_OK && i < sizeof b; i++)
        snprintf(password + 2 * i, 3, "%02x", b[i]);
    if (rc == BK_OK)
        rc = bk_password_hash(&app->password, password, strlen(password), hash, sizeof hash, err);
    json_t *rows;
    if (rc == BK_OK)
        rc = app_query(app,
                       "INSERT INTO backendd.users (email, name, password_hash, role) VALUES ($1, 'Admin', $2, 'admin')"
                       " ON CONFLICT DO NOTHING RETURNING id",
                       (bk_db_param_t[]){BK_DB_TEXT(DEV_ADMIN), BK_DB_TEXT(hash)}, 2, &rows, err);
    if (rc != BK_OK)
        return rc;
    if (json_array_size(rows) == 1) {
        /* Once, when made: a line of its own on standard output, not a log line. */
        printf("admin login: %s %s\n", DEV_ADMIN, password);
        fflush(stdout);
    }
    json_decref(rows);
    return BK_OK;
}
