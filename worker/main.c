/*
 * plateop-worker: the container entrypoint of batch Jobs (`run`: one batch
 * through CellProfiler) and of the merge Job (`merge`: concatenate tables).
 * A thin dispatcher: each command lives in its own module.
 */
#include <stdio.h>
#include <string.h>

#include "exit.h"
#include "log.h"
#include "merge.h"
#include "run.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: plateop-worker run [options]     one batch through CellProfiler\n"
          "       plateop-worker merge [options]   merge the batches' tables\n"
          "       plateop-worker --help | --version\n"
          "'plateop-worker COMMAND --help' lists a command's options and environment variables.\n",
          out);
    fputs(worker_exit_help, out);
}

int main(int argc, char **argv)
{
    log_set_component("worker");
    if (argc < 2) {
        usage(stderr);
        return WORKER_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("plateop-worker %s\n", PLATEOP_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return run_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "merge") == 0)
        return merge_main(argc - 1, argv + 1);
    fprintf(stderr, "plateop-worker: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return WORKER_USAGE;
}
