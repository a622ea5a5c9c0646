/*
 * plateop-nodeagent: the test bed's and the demo's kubelet. Registers a
 * Node, runs the Pods bound to it as local processes (no container runtime:
 * images are ignored, commands run on the host in private mount
 * namespaces), reports their status, and serves their logs to `kubectl logs`.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent.h"
#include "fileutil.h"
#include "kube.h"
#include "kube_config.h"
#include "log.h"
#include "logserver.h"
#include "memlimit.h"
#include "node.h"
#include "version.h"

struct options {
    const char *kubeconfig;
    char *node;
    char *state_dir;
    const char *volume_map;
    int port;
    char *cpu;
    char *memory;
    int max_pods;
};

static void usage(FILE *out)
{
    fputs("usage: plateop-nodeagent [options]\n"
          "\n"
          "Plays the kubelet for a local Kubernetes control plane: registers a Node,\n"
          "runs the Pods bound to it as local processes, reports their status and\n"
          "serves their logs to `kubectl logs`. Stops its pods and exits on SIGTERM.\n"
          "\n"
          "  --kubeconfig FILE     API server credentials (default: $KUBECONFIG, in-cluster,\n"
          "                        ~/.kube/config)\n"
          "  --node-name NAME      the Node to register (default: the host name)\n"
          "  --state-dir DIR       pod directories and logs (default: /tmp/plateop-nodeagent-NAME)\n"
          "  --volume-map FILE     PersistentVolumeClaims as local directories: lines\n"
          "                        claimName=/dir or namespace/claimName=/dir\n"
          "  --port N              HTTPS port for the containerLogs endpoint (0: any free one;\n"
          "                        default 0)\n"
          "  --cpu Q               CPU capacity to advertise (default: online CPUs)\n"
          "  --memory Q            memory capacity to advertise (default: physical memory)\n"
          "  --max-pods N          pod capacity to advertise (default 110)\n"
          "  --log-level LEVEL     debug, info, warn or error (default info)\n"
          "  --help, --version\n",
          out);
}

/* The host's memory in the Ki form the kubelet reports. */
static char *host_memory(void)
{
    long long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    struct strbuf sb = STRBUF_INIT;

    strbuf_addf(&sb, "%lldKi", pages * page / 1024);
    return strbuf_detach(&sb, NULL);
}

static char *default_node_name(void)
{
    char host[256];
    char *p;

    if (gethostname(host, sizeof(host)) < 0)
        return strdup("plateop-node");
    host[sizeof(host) - 1] = '\0';
    for (p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return strdup(host);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "kubeconfig", required_argument, NULL, 'k' },
        { "node-name", required_argument, NULL, 'n' },
        { "state-dir", required_argument, NULL, 's' },
        { "volume-map", required_argument, NULL, 'v' },
        { "port", required_argument, NULL, 'p' },
        { "cpu", required_argument, NULL, 'c' },
        { "memory", required_argument, NULL, 'm' },
        { "max-pods", required_argument, NULL, 'x' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    enum log_level level;
    char *end;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'k': o->kubeconfig = optarg; break;
        case 'n': free(o->node); o->node = strdup(optarg); break;
        case 's': free(o->state_dir); o->state_dir = strdup(optarg); break;
        case 'v': o->volume_map = optarg; break;
        case 'c': free(o->cpu); o->cpu = strdup(optarg); break;
        case 'm': free(o->memory); o->memory = strdup(optarg); break;
        case 'p':
        case 'x':
            errno = 0;
            *(ch == 'p' ? &o->port : &o->max_pods) = (int)strtol(optarg, &end, 10);
            if (errno || *end || (ch == 'p' && (o->port < 0 || o->port > 65535))) {
                fprintf(stderr, "plateop-nodeagent: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'l':
            if (log_parse_level(optarg, &level) < 0) {
                fprintf(stderr, "plateop-nodeagent: unknown log level '%s'\n", optarg);
                return 2;
            }
            log_set_level(level);
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("plateop-nodeagent %s\n", PLATEOP_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "plateop-nodeagent: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* Fills the defaults that depend on the host and makes the state directory absolute. */
static int complete_options(struct options *o, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    char *abs;

    if (!o->node)
        o->node = default_node_name();
    if (!o->cpu) {
        strbuf_addf(&sb, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        o->cpu = strbuf_detach(&sb, NULL);
    }
    if (!o->memory)
        o->memory = host_memory();
    if (!o->state_dir) {
        strbuf_addf(&sb, "/tmp/plateop-nodeagent-%s", o->node);
        o->state_dir = strbuf_detach(&sb, NULL);
    }
    if (fileutil_mkdir_p(o->state_dir, e) < 0)
        return err_prefix(e, "state directory");
    abs = realpath(o->state_dir, NULL);
    if (!abs)
        return err_errno(e, errno, "state directory %s", o->state_dir);
    free(o->state_dir);
    o->state_dir = abs;
    return 0;
}

/* Splits "https://host:port/..." into host and port for KUBERNETES_SERVICE_*. */
static void split_server(const char *url, struct strbuf *host, struct strbuf *port)
{
    const char *p = strstr(url, "://"), *end, *colon;

    p = p ? p + 3 : url;
    end = strchrnul(p, '/');
    if (*p == '[') {
        colon = memchr(p, ']', (size_t)(end - p));
        if (colon) {
            strbuf_add(host, p + 1, (size_t)(colon - p - 1));
            if (colon[1] == ':')
                strbuf_add(port, colon + 2, (size_t)(end - colon - 2));
        }
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        strbuf_add(host, p, (size_t)((colon ? colon : end) - p));
        if (colon)
            strbuf_add(port, colon + 1, (size_t)(end - colon - 1));
    }
    if (port->len == 0)
        strbuf_adds(port, strncmp(url, "http://", 7) == 0 ? "80" : "443");
}

int main(int argc, char **argv)
{
    struct options o = { .max_pods = 110 };
    struct kube_config cfg;
    struct kube_client *kc = NULL;
    struct kube_error ke;
    struct agent_config ac;
    struct agent *agent = NULL;
    struct logsrv *srv = NULL;
    struct logsrv_source src;
    struct node_config nc;
    struct node_heartbeat *hb = NULL;
    struct strbuf api_host = STRBUF_INIT, api_port = STRBUF_INIT;
    struct err e;
    sigset_t mask;
    int sigfd = -1, rc = 1;

    log_set_component("nodeagent");
    memset(&cfg, 0, sizeof(cfg));
    rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        goto out;
    rc = 1;
    /* Signals arrive through a signalfd on the supervising thread; every thread inherits the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        log_error(NULL, "signalfd: %s", strerror(errno));
        goto out;
    }
    if (complete_options(&o, &e) < 0) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (kube_config_load(&cfg, o.kubeconfig, NULL, &e) < 0) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    kc = kube_client_new(&cfg, NULL, &ke);
    if (!kc) {
        log_error(NULL, "%s", ke.err.msg);
        goto out;
    }
    split_server(kube_client_server(kc), &api_host, &api_port);
    memlimit_init(o.node);
    ac = (struct agent_config){ o.node, o.state_dir, o.volume_map, api_host.buf, api_port.buf };
    agent = agent_new(kc, &ac, &e);
    if (!agent) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    src = (struct logsrv_source){ agent_find_log, agent_log_growing, agent };
    srv = logsrv_start(o.port, o.node, &src, &e);
    if (!srv) {
        log_error(NULL, "log server: %s", e.msg);
        goto out;
    }
    nc = (struct node_config){ o.node, o.cpu, o.memory, o.max_pods, logsrv_port(srv) };
    if (node_register(kc, &nc, &e) < 0) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    hb = node_heartbeat_start(kc, &nc, &e);
    if (!hb) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    log_info(NULL, "node %s registered and Ready; logs served on https://127.0.0.1:%d; state in %s",
             o.node, logsrv_port(srv), o.state_dir);
    if (agent_run(agent, sigfd, &e) < 0) {
        log_error(NULL, "%s", e.msg);
        goto out;
    }
    rc = 0;
out:
    node_heartbeat_stop(hb);
    if (hb && node_mark_stopped(kc, &nc, &e) < 0)
        log_warn(NULL, "%s", e.msg);
    logsrv_stop(srv);
    agent_free(agent);
    memlimit_shutdown();
    kube_client_free(kc);
    kube_config_release(&cfg);
    if (sigfd >= 0)
        close(sigfd);
    strbuf_release(&api_host);
    strbuf_release(&api_port);
    free(o.node);
    free(o.state_dir);
    free(o.cpu);
    free(o.memory);
    if (rc == 0 && agent)
        log_info(NULL, "stopped");
    return rc;
}
