/* HTTP-date (RFC 9110, 5.6.7) in IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT":
 * written and read by hand, so that a host's LC_TIME never changes what goes
 * on the wire (strftime's %a and %b are the locale's).
 * SPDX-License-Identifier: MIT */
#include <string.h>
#include <time.h>

#include "http/http_int.h"

static const char DAYS[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void bk__http_date(int64_t sec, char out[BK__HTTP_DATE_LEN + 1])
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        memset(&tm, 0, sizeof tm), tm.tm_mday = 1, tm.tm_year = 70, tm.tm_wday = 4; /* the epoch */
    memcpy(out, DAYS[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    two(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, MONTHS[tm.tm_mon], 3);
    out[11] = ' ';
    int y = tm.tm_year + 1900;
    two(out + 12, y / 100);
    two(out + 14, y % 100);
    out[16] = ' ';
    two(out + 17, tm.tm_hour);
    out[19] = ':';
    two(out + 20, tm.tm_min);
    out[22] = ':';
    two(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 5); /* and the NUL */
}

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

bool bk__http_date_parse(const char *s, int64_t *sec)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters, exactly. */
    if (s == NULL || strlen(s) != BK__HTTP_DATE_LEN || memcmp(s + 3, ", ", 2) != 0 || s[7] != ' ' ||
        s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0)
        return false;
    int day = digits(s + 5, 2), year = digits(s + 12, 4), h = digits(s + 17, 2), m = digits(s + 20, 2),
        sc = digits(s + 23, 2), mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(s + 8, MONTHS[i], 3) == 0)
            mon = i;
    bool day_name = false;
    for (int i = 0; i < 7; i++)
        day_name |= memcmp(s, DAYS[i], 3) == 0;
    if (!day_name || mon < 0 || day < 1 || day > 31 || year < 1900 || h > 23 || m > 59 || sc > 60 || h < 0 ||
        m < 0 || sc < 0)
        return false;
    /* Days from the civil date (proleptic Gregorian), no timegm and no TZ. */
    int y = year - (mon < 2);
    int era = y / 400, yoe = y - era * 400, mp = (mon + 10) % 12; /* March is 0 */
    int doy = (153 * mp + 2) / 5 + day - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    *sec = days * 86400 + h * 3600 + m * 60 + sc;
    return true;
}
