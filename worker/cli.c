/* cli: options with environment equivalents; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct cli_opt *find(struct cli_opt *opts, size_t n, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int cli_parse(struct cli_opt *opts, size_t n, int argc, char **argv, struct cli_args *args,
              struct err *e)
{
    int i;
    size_t k;

    memset(args, 0, sizeof(*args));
    args->pos = calloc((size_t)argc + 1, sizeof(*args->pos));
    if (!args->pos)
        return err_set(e, ENOMEM, "out of memory");
    for (k = 0; k < n; k++) {
        const char *v = opts[k].env ? getenv(opts[k].env) : NULL;

        if (v && *v)
            opts[k].value = v;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq;
        struct cli_opt *o;

        if (strcmp(a, "--") == 0) {
            args->rest = argv + i + 1;
            args->nrest = (size_t)(argc - i - 1);
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            args->pos[args->npos++] = argv[i];
            continue;
        }
        eq = strchr(a, '=');
        o = find(opts, n, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
        if (!o)
            return err_set(e, EINVAL, "unknown option '%s'", a);
        if (!o->metavar) {
            if (eq)
                return err_set(e, EINVAL, "option --%s takes no value", o->name);
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return err_set(e, EINVAL, "option --%s needs a value (%s)", o->name, o->metavar);
        }
    }
    return 0;
}

int cli_parse_or_help(struct cli_opt *opts, size_t n, int argc, char **argv, struct cli_args *args,
                      const char *synopsis, const char *footer, struct err *e)
{
    struct cli_opt *help;

    if (cli_parse(opts, n, argc, argv, args, e) < 0)
        return -1;
    help = find(opts, n, "help", 4);
    if (!help || !cli_bool(help->value))
        return 0;
    cli_usage(stdout, synopsis, opts, n);
    fputs(footer, stdout);
    return 1;
}

void cli_usage(FILE *out, const char *synopsis, const struct cli_opt *opts, size_t n)
{
    size_t i;

    fprintf(out, "usage: %s\n\noptions (each also read from its environment variable):\n",
            synopsis);
    for (i = 0; i < n; i++) {
        fprintf(out, "  --%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                opts[i].metavar ? opts[i].metavar : "");
        if (opts[i].env)
            fprintf(out, "  (env %s)", opts[i].env);
        fprintf(out, "\n      %s", opts[i].help);
        if (opts[i].value && opts[i].metavar)
            fprintf(out, " [default: %s]", opts[i].value);
        fputc('\n', out);
    }
}

int cli_bool(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
                 strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

int cli_duration(const char *v, double *seconds)
{
    char *end;
    double d;

    if (!v || !*v)
        return -1;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || d < 0)
        return -1;
    if (*end == 'm')
        d *= 60, end++;
    else if (*end == 'h')
        d *= 3600, end++;
    else if (*end == 's')
        end++;
    if (*end)
        return -1;
    *seconds = d;
    return 0;
}

int cli_wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}
