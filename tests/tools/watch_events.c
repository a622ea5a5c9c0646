/*
 * watch_events: a watch that tests and benchmarks can trust, on the
 * project's own resilient watcher (lib/kube_watch).
 *
 *   watch_events [-n NAMESPACE] [-l SELECTOR] RESOURCE
 *
 * RESOURCE is one of jobs, pods, configmaps, analyses, events. Prints one
 * line per event, the wall-clock time it arrived (seconds since the epoch,
 * to the microsecond), a tab, then the event as `kubectl get -w
 * --output-watch-events -o json` would, on one line:
 * {"type":"ADDED","object":{...}}. The first list comes as ADDED events.
 *
 * Why not kubectl: `kubectl get -w` ends, silently and with status 0, when
 * the API server closes its watch, which a busy server does to a watcher
 * that falls behind; a test counting events from it then undercounts.
 * Here a closed stream is resumed from the last resourceVersion, and a 410
 * relists and delivers the differences, so no creation goes unseen.
 *
 * Runs until killed, or until the API server has failed it eight times in a
 * row (about a minute and a half of backoff): a watcher a test forgot to
 * stop ends with its test bed. Each line is flushed as it is written.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "kube.h"
#include "kube_config.h"
#include "kube_watch.h"

static const struct {
    const char *name;
    struct kube_res res;
} resources[] = {
    { "jobs", KUBE_RES_JOBS },
    { "pods", KUBE_RES_PODS },
    { "configmaps", KUBE_RES_CONFIGMAPS },
    { "analyses", KUBE_RES_ANALYSES },
    { "events", KUBE_RES_EVENTS },
};

#define GIVE_UP_AFTER 8

static void on_event(void *ud, enum kube_watch_type type, json_t *obj)
{
    int *failures = ud;
    struct timeval tv;
    json_t *ev = json_pack("{s:s,s:O}", "type", kube_watch_type_name(type), "object", obj);
    char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;

    *failures = 0;
    gettimeofday(&tv, NULL);
    if (line)
        printf("%lld.%06ld\t%s\n", (long long)tv.tv_sec, (long)tv.tv_usec, line);
    else
        fprintf(stderr, "watch_events: out of memory formatting an event\n");
    fflush(stdout);
    free(line);
    json_decref(ev);
}

static int on_error(void *ud, const struct kube_error *ke)
{
    int *failures = ud;

    fprintf(stderr, "watch_events: %s%s\n", ke->err.msg,
            ++*failures < GIVE_UP_AFTER ? "; retrying" : "; giving up");
    return *failures >= GIVE_UP_AFTER;
}

static int usage(void)
{
    fprintf(stderr, "usage: watch_events [-n NAMESPACE] [-l SELECTOR] "
                    "jobs|pods|configmaps|analyses|events\n");
    return 2;
}

int main(int argc, char **argv)
{
    int failures = 0;
    struct kube_watch_opts o = { .h = { .on_event = on_event, .on_error = on_error },
                                 .ud = &failures };
    struct kube_config cfg;
    struct kube_client *c = NULL;
    struct kube_watch *w = NULL;
    struct kube_error ke;
    struct err e;
    const char *ns = NULL;
    size_t i;
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "n:l:")) != -1) {
        if (opt == 'n')
            ns = optarg;
        else if (opt == 'l')
            o.label_selector = optarg;
        else
            return usage();
    }
    if (optind != argc - 1)
        return usage();
    for (i = 0; i < sizeof(resources) / sizeof(resources[0]); i++) {
        if (strcmp(argv[optind], resources[i].name) == 0)
            break;
    }
    if (i == sizeof(resources) / sizeof(resources[0]))
        return usage();
    o.res = resources[i].res;
    o.res.ns = ns;

    if (kube_config_load(&cfg, NULL, NULL, &e) < 0) {
        fprintf(stderr, "watch_events: %s\n", e.msg);
        return 1;
    }
    c = kube_client_new(&cfg, NULL, &ke);
    if (c)
        w = kube_watch_new(c, &o, &ke);
    if (w && kube_watch_run(w, &ke) == 0)
        rc = 0;
    else
        fprintf(stderr, "watch_events: %s\n", ke.err.msg);
    kube_watch_free(w);
    kube_client_free(c);
    kube_config_release(&cfg);
    return rc;
}
