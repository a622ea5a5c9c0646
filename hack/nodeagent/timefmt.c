/* timefmt: RFC 3339 formatting and parsing for Kubernetes and log times; see timefmt.h. */
#include "timefmt.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

char *timefmt_seconds(char *buf, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, TIMEFMT_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

char *timefmt_nanos(char *buf, const struct timespec *ts)
{
    struct tm tm;
    size_t n;

    gmtime_r(&ts->tv_sec, &tm);
    n = strftime(buf, TIMEFMT_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, TIMEFMT_MAX - n, ".%09ldZ", ts->tv_nsec);
    return buf;
}

char *timefmt_now(char *buf)
{
    return timefmt_seconds(buf, time(NULL));
}

/* Reads exactly n digits at *p into *out, advancing *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

int timefmt_parse(const char *s, struct timespec *ts, const char **end)
{
    const char *p = s;
    struct tm tm;
    int y, mo, d, h, mi, sec, oh, om, sign;
    long nsec = 0, scale = 100000000;
    time_t t;

    if (digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) || expect(&p, '-') ||
        digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &mi) || expect(&p, ':') ||
        digits(&p, 2, &sec))
        return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++) {
            nsec += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
        oh = om = 0;
        sign = 1;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om))
            return -1;
    } else {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    ts->tv_sec = t - sign * (oh * 3600 + om * 60);
    ts->tv_nsec = nsec;
    if (end)
        *end = p;
    return 0;
}
