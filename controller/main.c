/*
 * plateop-controller: watches Analysis resources and ImageDB, plans well
 * batches, runs them as Kubernetes Jobs and merges their tables.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: plateop-controller [--help] [--version]\n"
          "\n"
          "Reconciles plateop.io/v1alpha1 Analysis resources: plans well batches\n"
          "from ImageDB, runs one Kubernetes Job per batch and merges the results.\n",
          out);
}

int main(int argc, char **argv)
{
    int i;

    log_set_component("controller");
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("plateop-controller %s\n", PLATEOP_VERSION);
            return 0;
        }
        fprintf(stderr, "plateop-controller: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    log_error(NULL, "the reconcile loop is not built yet");
    return 1;
}
