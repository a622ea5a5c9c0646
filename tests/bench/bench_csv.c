/*
 * bench_csv: the CSV reader's speed, for tests/bench/bench_csv.sh.
 *
 *   bench_csv gen FILE MB   writes a CellProfiler-shaped table of about MB
 *                           megabytes: 303 columns (ImageNumber, ObjectNumber,
 *                           Metadata_Plate quoted with a comma, Metadata_Well,
 *                           Metadata_Site, 298 measurements of 8 to 12 bytes)
 *   bench_csv read FILE     parses FILE once, timed, and prints
 *                           "SECONDS BYTES RECORDS FIELDS"
 *
 * `read` uses lib/csv: fields decoded in place and NUL-terminated, 1 MiB
 * reads. Built with -DBENCH_LIBCSV and -lcsv instead (bench_csv.sh does so
 * where libcsv-dev is installed, without -Ilib, so that <csv.h> is
 * libcsv's), `read` parses with Debian's libcsv: csv_parse() over 1 MiB
 * reads, CSV_STRICT and CSV_APPEND_NULL (the same checks and NUL-terminated
 * fields), callbacks that only count. Both time the parse alone, in CPU
 * time of the (single-threaded) process, so that other load on the machine
 * skews the figure less; the file is expected in the page cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct counts {
    uint64_t bytes, records, fields;
};

static double cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#ifdef BENCH_LIBCSV
#include <csv.h>

static void count_field(void *s, size_t len, void *ctx)
{
    (void)s;
    (void)len;
    ((struct counts *)ctx)->fields++;
}

static void count_record(int c, void *ctx)
{
    (void)c;
    ((struct counts *)ctx)->records++;
}

/* Parses path with libcsv. 0, or -1 after printing why. */
static int read_file(const char *path, struct counts *n)
{
    static char buf[1 << 20];
    struct csv_parser p;
    int fd = open(path, O_RDONLY), rc = 0;
    ssize_t got;

    if (fd < 0 || csv_init(&p, CSV_STRICT | CSV_APPEND_NULL) != 0) {
        fprintf(stderr, "bench_csv: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (got = read(fd, buf, sizeof(buf))) > 0) {
        n->bytes += (uint64_t)got;
        if (csv_parse(&p, buf, (size_t)got, count_field, count_record, n) != (size_t)got) {
            fprintf(stderr, "bench_csv: %s: %s\n", path, csv_strerror(csv_error(&p)));
            rc = -1;
        }
    }
    if (rc == 0 && csv_fini(&p, count_field, count_record, n) != 0)
        rc = -1;
    csv_free(&p);
    close(fd);
    return rc;
}

#else
#include "csv.h"

static int read_file(const char *path, struct counts *n)
{
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;
    int got;

    r = csv_reader_open(path, CSV_REQUIRE_EOL, &e);
    if (!r) {
        fprintf(stderr, "bench_csv: %s\n", e.msg);
        return -1;
    }
    while ((got = csv_read(r, &rec, &e)) == 1) {
        n->records++;
        n->fields += rec->nfields;
    }
    n->bytes = csv_reader_bytes(r);
    csv_reader_free(r);
    if (got < 0)
        fprintf(stderr, "bench_csv: %s\n", e.msg);
    return got < 0 ? -1 : 0;
}

#define MEASUREMENTS 298

/* Writes the table; measurements vary in length as CellProfiler's do. */
static int generate(const char *path, long mb)
{
    uint64_t x = 88172645463325252ULL, target = (uint64_t)mb << 20;
    struct csv_writer *w;
    struct err e;
    FILE *f = fopen(path, "w");
    long row, k;
    int rc = 0;

    w = f ? csv_writer_file(f, path, 0, &e) : NULL;
    if (!w) {
        fprintf(stderr, "bench_csv: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    rc |= csv_write_str(w, "ImageNumber", &e) | csv_write_str(w, "ObjectNumber", &e) |
          csv_write_str(w, "Metadata_Plate", &e) | csv_write_str(w, "Metadata_Well", &e) |
          csv_write_str(w, "Metadata_Site", &e);
    for (k = 0; k < MEASUREMENTS; k++)
        rc |= csv_write_fmt(w, &e, "Intensity_Measurement_%ld", k);
    rc |= csv_write_eol(w, &e);
    for (row = 0; rc == 0 && csv_writer_bytes(w) < target; row++) {
        rc |= csv_write_fmt(w, &e, "%ld", row / 100 + 1) | csv_write_fmt(w, &e, "%ld", row % 100 + 1) |
              csv_write_str(w, "Plate, 1", &e) | csv_write_str(w, "C03", &e) |
              csv_write_fmt(w, &e, "%ld", row % 9 + 1);
        for (k = 0; k < MEASUREMENTS; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rc |= csv_write_fmt(w, &e, "%.*g", (int)(x % 5) + 6, (double)(x >> 11) / 9007199254740992.0);
        }
        rc |= csv_write_eol(w, &e);
    }
    if (csv_writer_close(w, &e) < 0 || rc != 0) {
        fprintf(stderr, "bench_csv: %s\n", e.msg);
        rc = -1;
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
#endif

int main(int argc, char **argv)
{
    struct counts n = { 0, 0, 0 };
    double t0;      /* CPU seconds */

#ifndef BENCH_LIBCSV
    if (argc == 4 && strcmp(argv[1], "gen") == 0)
        return generate(argv[2], strtol(argv[3], NULL, 10)) < 0 ? 1 : 0;
#endif
    if (argc != 3 || strcmp(argv[1], "read") != 0) {
        fprintf(stderr, "usage: bench_csv gen FILE MB | bench_csv read FILE\n");
        return 2;
    }
    t0 = cpu_s();
    if (read_file(argv[2], &n) < 0)
        return 1;
    printf("%.4f %llu %llu %llu\n", cpu_s() - t0, (unsigned long long)n.bytes,
           (unsigned long long)n.records, (unsigned long long)n.fields);
    return 0;
}
