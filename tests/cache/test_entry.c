/* The entry codec of lib/cache/entry.c, linked into this program from its source
 * (it is hidden in the library): the header's bytes on the wire (memcached holds
 * entries written by other processes, maybe other builds, so they must not
 * change), round trips, and what is refused as not an entry of ours.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "cache/remote_int.h"

/* Format 1: version, flags, fresh_until and stale_until (big-endian), load in us
 * (big-endian, 32 bits). */
START_TEST(header_bytes_are_format_1)
{
    struct bk__entry_header h = {.flags = BK__ENTRY_NEGATIVE,
                                 .fresh_until = INT64_C(0x0102030405060708),
                                 .stale_until = INT64_C(0x1112131415161718),
                                 .load_ns = INT64_C(0x0a0b0c0d) * 1000 + 999}; /* the ns below a us are dropped */
    static const unsigned char want[BK__ENTRY_HDR] = {1,    1,    1,    2,    3,    4,    5,    6,
                                                      7,    8,    0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
                                                      0x17, 0x18, 0x0a, 0x0b, 0x0c, 0x0d};
    unsigned char buf[BK__ENTRY_HDR];
    memset(buf, 0xee, sizeof buf);
    bk__entry_encode(buf, &h);
    ck_assert_mem_eq(buf, want, sizeof want);
    ck_assert_uint_eq(BK__ENTRY_FLAGS, 0xbc01u);
    ck_assert_uint_eq(BK__ENTRY_TOMBSTONE, 2u);
}
END_TEST

START_TEST(round_trip)
{
    static const struct bk__entry_header cases[] = {
        {0, 0, 0, 0},
        {BK__ENTRY_TOMBSTONE, INT64_C(1764000000000000000), INT64_C(1764000030000000000), 1000},
        {BK__ENTRY_NEGATIVE, -5, INT64_MAX, INT64_C(4294967295) * 1000}, /* the largest load */
        {BK__ENTRY_NEGATIVE | BK__ENTRY_TOMBSTONE, INT64_MIN, -1, 123456000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[BK__ENTRY_HDR + 3];
        bk__entry_encode((unsigned char *)buf, &cases[i]);
        memcpy(buf + BK__ENTRY_HDR, "abc", 3); /* a value after the header changes nothing */
        for (size_t len = BK__ENTRY_HDR; len <= sizeof buf; len += 3) {
            struct bk__entry_header got;
            memset(&got, 0x55, sizeof got);
            ck_assert_msg(bk__entry_decode(buf, len, BK__ENTRY_FLAGS, &got), "case %zu", i);
            ck_assert_uint_eq(got.flags, cases[i].flags);
            ck_assert_int_eq(got.fresh_until, cases[i].fresh_until);
            ck_assert_int_eq(got.stale_until, cases[i].stale_until);
            ck_assert_int_eq(got.load_ns, cases[i].load_ns);
        }
    }
}
END_TEST

/* A load too long for 32 bits of us is kept as the longest one. */
START_TEST(long_load_is_capped)
{
    struct bk__entry_header h = {.load_ns = INT64_C(5000000000) * 1000}, got;
    unsigned char buf[BK__ENTRY_HDR];
    bk__entry_encode(buf, &h);
    ck_assert(bk__entry_decode((const char *)buf, sizeof buf, BK__ENTRY_FLAGS, &got));
    ck_assert_int_eq(got.load_ns, INT64_C(4294967295) * 1000);
}
END_TEST

START_TEST(not_ours_is_refused)
{
    struct bk__entry_header h = {.flags = 0, .fresh_until = 10, .stale_until = 20, .load_ns = 0}, got;
    char buf[BK__ENTRY_HDR];
    bk__entry_encode((unsigned char *)buf, &h);
    for (size_t len = 0; len < BK__ENTRY_HDR; len++) /* truncated */
        ck_assert_msg(!bk__entry_decode(buf, len, BK__ENTRY_FLAGS, &got), "len %zu", len);
    ck_assert(!bk__entry_decode(buf, sizeof buf, 0, &got));                   /* another writer's item */
    ck_assert(!bk__entry_decode(buf, sizeof buf, BK__ENTRY_FLAGS + 1, &got)); /* another format's flags */
    for (int v = 0; v < 256; v++) {                                          /* another version byte */
        buf[0] = (char)v;
        ck_assert_msg(bk__entry_decode(buf, sizeof buf, BK__ENTRY_FLAGS, &got) == (v == 1), "version %d", v);
    }
    const char *text = "just some text someone stored here";
    ck_assert(!bk__entry_decode(text, strlen(text), BK__ENTRY_FLAGS, &got));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cache_entry");
    TCase *tc = tcase_create("entry");
    tcase_add_test(tc, header_bytes_are_format_1);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, long_load_is_capped);
    tcase_add_test(tc, not_ours_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(suite());
}
