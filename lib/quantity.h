/*
 * quantity: Kubernetes resource quantities for memory ("512Mi", "2G",
 * "1.5Gi", "1048576", "128974848", "129e6") as byte counts, and back.
 */
#ifndef PLATEOP_QUANTITY_H
#define PLATEOP_QUANTITY_H

#include <stddef.h>

/*
 * Parses a quantity into bytes (rounded up). Binary suffixes Ki Mi Gi Ti Pi
 * Ei, decimal n u m k M G T P E, exponents (129e6), a leading '+', and plain
 * numbers. Returns 0, or -1 when s is not a quantity or exceeds 9.2e18.
 */
int quantity_parse(const char *s, unsigned long long *bytes);

/*
 * Writes bytes as the largest binary unit that divides it, else in Mi
 * rounded up ("768Mi", "2Gi"), into out (size >= 32).
 */
void quantity_format(unsigned long long bytes, char *out, size_t size);

#endif
