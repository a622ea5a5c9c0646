/*
 * plateop-worker: the container entrypoint of batch Jobs (`run`: one batch
 * through CellProfiler) and of the merge Job (`merge`: concatenate tables).
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: plateop-worker run [options]\n"
          "       plateop-worker merge [options]\n"
          "       plateop-worker --help | --version\n",
          out);
}

int main(int argc, char **argv)
{
    log_set_component("worker");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("plateop-worker %s\n", PLATEOP_VERSION);
        return 0;
    }
    fprintf(stderr, "plateop-worker: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
