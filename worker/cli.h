/*
 * cli: the worker's command-line options, each with an environment
 * variable equivalent, so a Kubernetes Job can pass settings as args or env.
 *
 * Precedence: flag, then environment variable, then the default the caller
 * put in `value` before parsing.
 */
#ifndef PLATEOP_WORKER_CLI_H
#define PLATEOP_WORKER_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

struct cli_opt {
    const char *name;       /* long flag without "--" */
    const char *env;        /* environment variable, or NULL */
    const char *metavar;    /* NULL for a boolean flag (value becomes "1") */
    const char *help;
    const char *value;      /* in: default (may be NULL); out: the value; borrowed
                               from argv, the environment or the default */
};

struct cli_args {
    char **pos;             /* positional arguments (array owned, strings borrowed) */
    size_t npos;
    char **rest;            /* what follows "--" (borrowed from argv) */
    size_t nrest;
};

/*
 * Parses argv[1..argc-1] (argv[0] is the subcommand): --name VALUE,
 * --name=VALUE, boolean --name; positionals; "--" ends options. Returns 0,
 * or -1 with e naming the unknown or incomplete flag. The caller frees
 * args->pos.
 */
int cli_parse(struct cli_opt *opts, size_t n, int argc, char **argv, struct cli_args *args,
              struct err *e);

/*
 * cli_parse(), then, if --help was given (an option named "help"), prints
 * cli_usage() and footer to stdout. Returns 1 after help, 0 to go on, -1
 * on a parse error.
 */
int cli_parse_or_help(struct cli_opt *opts, size_t n, int argc, char **argv, struct cli_args *args,
                      const char *synopsis, const char *footer, struct err *e);

/* Prints "usage: SYNOPSIS", then every option with its env name and default. */
void cli_usage(FILE *out, const char *synopsis, const struct cli_opt *opts, size_t n);

/* 1 for "1", "true", "yes", "on" (any case), else 0; NULL is 0. */
int cli_bool(const char *v);

/*
 * Parses a duration: a non-negative number with an optional unit s, m or h
 * ("90", "90s", "1.5m", "2h"). Returns 0 or -1.
 */
int cli_duration(const char *v, double *seconds);

/* Returns 1 if the flag --help or -h is among argv[1..]. */
int cli_wants_help(int argc, char **argv);

#endif
