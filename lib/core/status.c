/* Status codes: names, descriptions and HTTP statuses, all from the one
 * BK_ERRNO_MAP table.
 * SPDX-License-Identifier: MIT */
#include <backend/core.h>

const char *bk_strerror(int code)
{
    switch (code) {
    case BK_OK:
        return "success";
#define BK_STRERROR_CASE_(name, value, text, http) \
    case BK_##name:                          \
        return text;
        BK_ERRNO_MAP(BK_STRERROR_CASE_)
#undef BK_STRERROR_CASE_
    default:
        return "unknown error";
    }
}

const char *bk_err_name(int code)
{
    switch (code) {
    case BK_OK:
        return "BK_OK";
#define BK_ERR_NAME_CASE_(name, value, text, http) \
    case BK_##name:                          \
        return "BK_" #name;
        BK_ERRNO_MAP(BK_ERR_NAME_CASE_)
#undef BK_ERR_NAME_CASE_
    default:
        return "BK_UNKNOWN";
    }
}

int bk_http_status_of(int code)
{
    switch (code) {
    case BK_OK:
        return 200;
#define BK_HTTP_STATUS_CASE_(name, value, text, http) \
    case BK_##name:                                   \
        return http;
        BK_ERRNO_MAP(BK_HTTP_STATUS_CASE_)
#undef BK_HTTP_STATUS_CASE_
    default:
        return 500;
    }
}
