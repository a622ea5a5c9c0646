/* quantity: memory quantities; see quantity.h. */
#include "quantity.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int quantity_parse(const char *s, unsigned long long *bytes)
{
    static const struct { const char *suffix; long double mult; } units[] = {
        { "Ki", 1024.0L }, { "Mi", 1048576.0L }, { "Gi", 1073741824.0L },
        { "Ti", 1099511627776.0L }, { "Pi", 1125899906842624.0L },
        { "Ei", 1152921504606846976.0L }, { "n", 1e-9L }, { "u", 1e-6L }, { "m", 1e-3L },
        { "k", 1e3L }, { "M", 1e6L }, { "G", 1e9L }, { "T", 1e12L }, { "P", 1e15L },
        { "E", 1e18L }, { "", 1.0L },
    };
    const char *p = s;
    long double v = 0, scale = 1, mult = -1;
    size_t i;
    int any = 0;

    if (!p)
        return -1;
    if (*p == '+')
        p++;
    for (; isdigit((unsigned char)*p); p++, any = 1)
        v = v * 10 + (*p - '0');
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++, any = 1)
            v += (*p - '0') * (scale /= 10);
    if (!any)
        return -1;
    if ((*p == 'e' || *p == 'E') && p[1] &&
        (isdigit((unsigned char)p[1]) || p[1] == '-' || p[1] == '+')) {
        char *end;
        long ex = strtol(p + 1, &end, 10);

        if (*end || ex > 18 || ex < -18)
            return -1;
        mult = powl(10.0L, (long double)ex);
    } else {
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strcmp(p, units[i].suffix) == 0)
                mult = units[i].mult;
    }
    /* Quantities the API accepts fit a signed 64-bit count of bytes. */
    if (mult < 0 || v * mult > 9.2e18L)
        return -1;
    *bytes = (unsigned long long)ceill(v * mult);
    return 0;
}

void quantity_format(unsigned long long bytes, char *out, size_t size)
{
    static const char *const units[] = { "Ei", "Pi", "Ti", "Gi", "Mi", "Ki" };
    unsigned long long unit = 1ULL << 60;
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++, unit >>= 10) {
        if (bytes >= unit && bytes % unit == 0) {
            snprintf(out, size, "%llu%s", bytes / unit, units[i]);
            return;
        }
    }
    snprintf(out, size, "%lluMi", (bytes + (1ULL << 20) - 1) >> 20);
}
