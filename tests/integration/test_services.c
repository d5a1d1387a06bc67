/* Proves the service harness: the private PostgreSQL and memcached that
 * tests/harness/services.sh starts are reachable and round-trip data. Later suites
 * (db, cache, saga) stand on the same servers.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_main.h"
#include <libmemcached/memcached.h>
#include <libpq-fe.h>

#include <backend/core.h>

/* The servers are not optional: without them the suite fails, it never skips. */
static const char *require_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        ck_abort_msg("%s is not set: run `make check` from the top of the tree, which "
                     "starts PostgreSQL and memcached (tests/harness/services.sh)",
                     name);
    return v;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    ck_assert_uint_le(nbytes, sizeof raw);
    ck_assert_int_eq(bk_random_bytes(raw, nbytes), BK_OK);
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

START_TEST(postgres_round_trip)
{
    PGconn *conn = PQconnectdb(require_env("BK_TEST_PG_DSN"));
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connect: %s", PQerrorMessage(conn));

    PGresult *r = PQexec(conn, "CREATE TEMP TABLE harness (id int PRIMARY KEY, note text NOT NULL)");
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(conn));
    PQclear(r);

    char note[33];
    random_hex(note, 16);
    const char *params[2] = {"7", note};
    r = PQexecParams(conn, "INSERT INTO harness (id, note) VALUES ($1, $2)", 2, NULL, params,
                     NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(conn));
    ck_assert_str_eq(PQcmdTuples(r), "1");
    PQclear(r);

    const char *id = "7";
    r = PQexecParams(conn, "SELECT note, current_setting('server_version_num')::int >= 150000 "
                           "FROM harness WHERE id = $1",
                     1, NULL, &id, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), note);
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    PQfinish(conn);
}
END_TEST

START_TEST(memcached_round_trip)
{
    char config[256];
    snprintf(config, sizeof config, "--SERVER=%s --BINARY-PROTOCOL --TCP-NODELAY",
             require_env("BK_TEST_MEMCACHED"));
    memcached_st *mc = memcached(config, strlen(config));
    ck_assert_ptr_nonnull(mc);

    char key[48] = "harness:";
    char value[65];
    random_hex(key + strlen(key), 16);
    random_hex(value, 32);

    memcached_return_t rc = memcached_set(mc, key, strlen(key), value, strlen(value), 60, 0);
    ck_assert_msg(rc == MEMCACHED_SUCCESS, "set: %s", memcached_strerror(mc, rc));

    size_t len = 0;
    uint32_t flags = 0;
    char *got = memcached_get(mc, key, strlen(key), &len, &flags, &rc);
    ck_assert_msg(rc == MEMCACHED_SUCCESS, "get: %s", memcached_strerror(mc, rc));
    ck_assert_uint_eq(len, strlen(value));
    ck_assert_int_eq(memcmp(got, value, len), 0);
    free(got);

    rc = memcached_delete(mc, key, strlen(key), 0);
    ck_assert_msg(rc == MEMCACHED_SUCCESS, "delete: %s", memcached_strerror(mc, rc));
    got = memcached_get(mc, key, strlen(key), &len, &flags, &rc);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(rc, MEMCACHED_NOTFOUND);
    memcached_free(mc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("services");
    TCase *tc = tcase_create("harness");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, postgres_round_trip);
    tcase_add_test(tc, memcached_round_trip);
    suite_add_tcase(s, tc);
    return bk_test_run(s);
}
