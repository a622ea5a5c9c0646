/* quantity: memory quantities; see quantity.h. */
#include "quantity.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct suffix {
    const char *s;
    long double mult;
};

static const struct suffix suffixes[] = {
    { "Ki", 1024.0L }, { "Mi", 1048576.0L }, { "Gi", 1073741824.0L },
    { "Ti", 1099511627776.0L }, { "Pi", 1125899906842624.0L }, { "Ei", 1152921504606846976.0L },
    { "k", 1e3L }, { "M", 1e6L }, { "G", 1e9L }, { "T", 1e12L }, { "P", 1e15L }, { "E", 1e18L },
    { "", 1.0L },
};

int quantity_parse(const char *s, unsigned long long *bytes)
{
    long double v, mult = 0;
    char *end;
    size_t i;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtold(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcmp(end, suffixes[i].s) == 0) {
            mult = suffixes[i].mult;
            break;
        }
    }
    if (mult == 0)
        return -1;
    v = ceill(v * mult);
    if (v > 18446744073709551615.0L)
        return -1;
    *bytes = (unsigned long long)v;
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
