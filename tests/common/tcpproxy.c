/* tcpproxy: a cuttable TCP forwarder for tests; see tcpproxy.h. */
#include "tcpproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 32

struct tcpproxy {
    int listen_fd, port, target_port;
    int wake[2];                    /* commands to the thread: 'c' cut, 'q' quit */
    int pair[MAX_PAIRS][2];         /* client fd, server fd; -1 when unused */
    pthread_t thread;
};

static void close_pair(struct tcpproxy *p, int i)
{
    close(p->pair[i][0]);
    close(p->pair[i][1]);
    p->pair[i][0] = p->pair[i][1] = -1;
}

static void cut_all(struct tcpproxy *p)
{
    int i;

    for (i = 0; i < MAX_PAIRS; i++)
        if (p->pair[i][0] >= 0)
            close_pair(p, i);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    p->listen_fd = -1;
}

static int connect_target(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void accept_one(struct tcpproxy *p)
{
    int c = accept(p->listen_fd, NULL, NULL), s, i;

    if (c < 0)
        return;
    s = connect_target(p->target_port);
    for (i = 0; s >= 0 && i < MAX_PAIRS; i++) {
        if (p->pair[i][0] < 0) {
            p->pair[i][0] = c;
            p->pair[i][1] = s;
            return;
        }
    }
    close(c);
    if (s >= 0)
        close(s);
}

/* Moves what is readable on from to to; 0, or -1 when the pair is finished. */
static int forward(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf)), off, w;

    if (n <= 0)
        return -1;
    for (off = 0; off < n; off += w) {
        w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return -1;
    }
    return 0;
}

static void *run(void *arg)
{
    struct tcpproxy *p = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    int map[2 + 2 * MAX_PAIRS], n, i, k;
    char cmd;

    for (;;) {
        n = 0;
        fds[n++] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
        fds[n++] = (struct pollfd){ .fd = p->listen_fd, .events = POLLIN };
        for (i = 0; i < MAX_PAIRS; i++) {
            for (k = 0; k < 2 && p->pair[i][0] >= 0; k++) {
                map[n] = i * 2 + k;
                fds[n++] = (struct pollfd){ .fd = p->pair[i][k], .events = POLLIN };
            }
        }
        if (poll(fds, (nfds_t)n, -1) < 0)
            continue;
        if (fds[0].revents) {
            if (read(p->wake[0], &cmd, 1) != 1 || cmd == 'q')
                break;
            cut_all(p);
            continue;
        }
        if (fds[1].revents)
            accept_one(p);
        for (i = 2; i < n; i++) {
            int pi = map[i] / 2, side = map[i] % 2;

            if (fds[i].revents && p->pair[pi][side] == fds[i].fd &&
                forward(fds[i].fd, p->pair[pi][1 - side]) < 0)
                close_pair(p, pi);
        }
    }
    cut_all(p);
    return NULL;
}

struct tcpproxy *tcpproxy_start(int target_port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    struct tcpproxy *p = calloc(1, sizeof(*p));
    int i;

    if (!p)
        return NULL;
    for (i = 0; i < MAX_PAIRS; i++)
        p->pair[i][0] = p->pair[i][1] = -1;
    p->target_port = target_port;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(p->listen_fd, 16) < 0 || getsockname(p->listen_fd, (struct sockaddr *)&a, &len) < 0 ||
        pipe(p->wake) < 0)
        goto fail;
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->thread, NULL, run, p) == 0)
        return p;
    close(p->wake[0]);
    close(p->wake[1]);
fail:
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    free(p);
    return NULL;
}

int tcpproxy_port(const struct tcpproxy *p)
{
    return p->port;
}

void tcpproxy_cut(struct tcpproxy *p)
{
    if (write(p->wake[1], "c", 1) != 1)
        return;
}

void tcpproxy_stop(struct tcpproxy *p)
{
    if (!p)
        return;
    if (write(p->wake[1], "q", 1) == 1)
        pthread_join(p->thread, NULL);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p);
}
