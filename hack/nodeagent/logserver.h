/*
 * logserver: the kubelet's containerLogs endpoint over HTTPS, so that
 * `kubectl logs` (the API server proxies to the Node's advertised port)
 * reads the node agent's container logs.
 *
 *   GET /containerLogs/NAMESPACE/POD/CONTAINER?follow=&tailLines=&timestamps=
 *       &limitBytes=&previous=&sinceSeconds=&sinceTime=
 *   GET /healthz
 *
 * The certificate is self-signed, made at start (EC P-256, 127.0.0.1 and
 * the node name as subject alternative names); the API server does not
 * verify kubelet certificates unless told to. Clients are not
 * authenticated: the server listens on 127.0.0.1 only. Each connection is
 * served by its own thread with blocking TLS; a followed log streams as
 * chunked HTTP/1.1 until the container's log is complete or the client
 * goes away.
 */
#ifndef NODEAGENT_LOGSERVER_H
#define NODEAGENT_LOGSERVER_H

#include "err.h"

/* How the server finds logs; both callbacks run on connection threads. */
struct logsrv_source {
    /*
     * The log file of ns/pod/container (its current run, or the one before
     * when previous). Returns a malloc'd path, or NULL with e->code an HTTP
     * status (404, 400) and e->msg the text to send.
     */
    char *(*find)(void *arg, const char *ns, const char *pod, const char *container,
                  int previous, struct err *e);
    /* Non-zero while the file at path may still grow (its container runs). */
    int (*growing)(void *arg, const char *path);
    void *arg;
};

struct logsrv;

/*
 * Listens on 127.0.0.1:port (0: any free port) and starts serving.
 * `name` goes into the certificate. src is copied. Returns the server, or
 * NULL with e (port taken, key generation failed, ...).
 */
struct logsrv *logsrv_start(int port, const char *name, const struct logsrv_source *src,
                            struct err *e);

/* The port actually bound. */
int logsrv_port(const struct logsrv *s);

/*
 * Stops accepting, ends followed streams, waits (up to about 2 s) for
 * connection threads, and frees the server. Safe on NULL.
 */
void logsrv_stop(struct logsrv *s);

#endif
