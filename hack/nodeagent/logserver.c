/* logserver: the kubelet containerLogs endpoint on HTTPS with OpenSSL; see logserver.h. */
#include "logserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "podlog.h"
#include "strbuf.h"
#include "timefmt.h"

#define MAX_REQUEST 16384
#define FOLLOW_POLL_MS 200
#define IO_TIMEOUT_S 30

struct logsrv {
    int fd;
    int port;
    SSL_CTX *ctx;
    struct logsrv_source src;
    pthread_t acceptor;
    atomic_int stop;
    atomic_int active;     /* connection threads running */
};

struct conn {
    struct logsrv *srv;
    int fd;
    SSL *ssl;
};

/* Parsed query of a containerLogs request. */
struct log_query {
    int follow;
    int previous;
    struct podlog_opts opts;
};

static int ssl_error(struct err *e, const char *what)
{
    unsigned long code = ERR_get_error();
    char buf[256];

    ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    return err_set(e, EPROTO, "%s: %s", what, code ? buf : "unknown TLS error");
}

/* A self-signed certificate for name and 127.0.0.1, installed in ctx. */
static int make_cert(SSL_CTX *ctx, const char *name, struct err *e)
{
    struct strbuf san = STRBUF_INIT;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *ext = NULL;
    X509_NAME *subj;
    X509V3_CTX v3;
    int rc = -1;

    if (!key || !x) {
        ssl_error(e, "generate key");
        goto out;
    }
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
    X509_set_pubkey(x, key);
    subj = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, subj);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    strbuf_addf(&san, "IP:127.0.0.1,DNS:%s", name);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san.buf);
    if (!ext || !X509_add_ext(x, ext, -1) || !X509_sign(x, key, EVP_sha256()) ||
        SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        ssl_error(e, "make certificate");
        goto out;
    }
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    X509_free(x);
    EVP_PKEY_free(key);
    strbuf_release(&san);
    return rc;
}

static int send_all(struct conn *c, const char *p, size_t len)
{
    while (len > 0) {
        int n = SSL_write(c->ssl, p, len > 65536 ? 65536 : (int)len);

        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void send_status(struct conn *c, int code, const char *text, const char *body)
{
    struct strbuf sb = STRBUF_INIT;

    strbuf_addf(&sb, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                code, text, strlen(body), body);
    send_all(c, sb.buf, sb.len);
    strbuf_release(&sb);
}

static int send_chunk(struct conn *c, const char *p, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "%zx\r\n", len);

    return send_all(c, head, (size_t)n) || send_all(c, p, len) || send_all(c, "\r\n", 2) ? -1 : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+' in place. */
static void url_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *o++ = *s == '+' ? ' ' : *s;
        }
    }
    *o = '\0';
}

static int truthy(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "True") == 0;
}

/* Parses the query string (modified in place). Returns 0, or -1 with e (400). */
static int parse_query(char *q, struct log_query *lq, struct err *e)
{
    struct podlog_opts dflt = PODLOG_OPTS_INIT;
    char *kv;

    memset(lq, 0, sizeof(*lq));
    lq->opts = dflt;
    while ((kv = strsep(&q, "&"))) {
        char *v = strchr(kv, '='), *end;

        if (!v)
            continue;
        *v++ = '\0';
        url_decode(v);
        errno = 0;
        if (strcmp(kv, "follow") == 0)
            lq->follow = truthy(v);
        else if (strcmp(kv, "previous") == 0)
            lq->previous = truthy(v);
        else if (strcmp(kv, "timestamps") == 0)
            lq->opts.timestamps = truthy(v);
        else if (strcmp(kv, "tailLines") == 0)
            lq->opts.tail_lines = strtol(v, &end, 10);
        else if (strcmp(kv, "limitBytes") == 0)
            lq->opts.limit_bytes = strtoll(v, &end, 10);
        else if (strcmp(kv, "sinceSeconds") == 0)
            lq->opts.since.tv_sec = time(NULL) - strtol(v, &end, 10);
        else if (strcmp(kv, "sinceTime") == 0) {
            if (timefmt_parse(v, &lq->opts.since, NULL) < 0)
                return err_set(e, 400, "sinceTime %s is not an RFC 3339 time", v);
            continue;
        } else
            continue;
        if (errno || (strcmp(kv, "follow") && strcmp(kv, "previous") &&
                      strcmp(kv, "timestamps") && *end))
            return err_set(e, 400, "bad value for %s: %s", kv, v);
    }
    return 0;
}

/* Non-zero when the client closed its side (or sent something we will not read). */
static int client_gone(struct conn *c, int wait_ms)
{
    struct pollfd p = { c->fd, POLLIN, 0 };
    char b;

    if (SSL_pending(c->ssl) > 0)
        return 0;
    if (poll(&p, 1, wait_ms) <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR))
        return 1;
    return SSL_peek(c->ssl, &b, 1) <= 0;
}

/* Streams the log at path per lq. */
static void serve_log(struct conn *c, const char *path, const struct log_query *lq)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    struct podlog_reader r;
    struct strbuf out = STRBUF_INIT;
    struct err e;
    long n;
    int last = 0;

    if (podlog_reader_open(&r, path, &lq->opts, &e) < 0) {
        send_status(c, e.code == ENOENT ? 404 : 500, e.code == ENOENT ? "Not Found" : "Error",
                    e.msg);
        return;
    }
    if (send_all(c, head, sizeof(head) - 1) < 0)
        goto out;
    for (;;) {
        strbuf_reset(&out);
        n = podlog_read(&r, &out, 65536, &e);
        if (n < 0) {
            log_warn(NULL, "serve log %s: %s", path, e.msg);
            break;
        }
        if (n > 0) {
            if (send_chunk(c, out.buf, out.len) < 0)
                goto out;
            continue;
        }
        /* One read after the writer finished, so nothing written just before is lost. */
        if (!lq->follow || r.done || last || atomic_load(&c->srv->stop))
            break;
        last = !c->srv->src.growing(c->srv->src.arg, path);
        if (!last && client_gone(c, FOLLOW_POLL_MS))
            goto out;
    }
    send_all(c, "0\r\n\r\n", 5);
out:
    podlog_reader_close(&r);
    strbuf_release(&out);
}

/* Reads the request head (up to the blank line). Returns 0 or -1. */
static int read_head(struct conn *c, struct strbuf *req)
{
    char buf[2048];

    while (!strstr(req->buf, "\r\n\r\n")) {
        int n = SSL_read(c->ssl, buf, sizeof(buf));

        if (n <= 0 || req->len + (size_t)n > MAX_REQUEST || strbuf_add(req, buf, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

static void handle(struct conn *c)
{
    struct strbuf req = STRBUF_INIT;
    char *method, *target, *query, *parts[4], *rest, *path;
    struct log_query lq;
    struct err e;
    int i;

    if (read_head(c, &req) < 0)
        goto out;
    rest = req.buf;
    method = strsep(&rest, " ");
    target = strsep(&rest, " ");
    if (!method || !target || strcmp(method, "GET") != 0) {
        send_status(c, 405, "Method Not Allowed", "only GET is served\n");
        goto out;
    }
    query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    if (strcmp(target, "/healthz") == 0) {
        send_status(c, 200, "OK", "ok");
        goto out;
    }
    if (strncmp(target, "/containerLogs/", 15) != 0) {
        send_status(c, 404, "Not Found", "not found\n");
        goto out;
    }
    rest = target + 15;
    for (i = 0; i < 4; i++)
        parts[i] = strsep(&rest, "/");
    if (!parts[2] || parts[3] || !*parts[0] || !*parts[1] || !*parts[2]) {
        send_status(c, 400, "Bad Request", "expected /containerLogs/NAMESPACE/POD/CONTAINER\n");
        goto out;
    }
    for (i = 0; i < 3; i++)
        url_decode(parts[i]);
    if (parse_query(query, &lq, &e) < 0) {
        send_status(c, 400, "Bad Request", e.msg);
        goto out;
    }
    path = c->srv->src.find(c->srv->src.arg, parts[0], parts[1], parts[2], lq.previous, &e);
    if (!path) {
        send_status(c, e.code == 400 ? 400 : 404, e.code == 400 ? "Bad Request" : "Not Found",
                    e.msg);
        goto out;
    }
    serve_log(c, path, &lq);
    free(path);
out:
    strbuf_release(&req);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct timeval tv = { IO_TIMEOUT_S, 0 };

    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->ssl = SSL_new(c->srv->ctx);
    if (c->ssl && SSL_set_fd(c->ssl, c->fd) == 1 && SSL_accept(c->ssl) == 1) {
        handle(c);
        SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    close(c->fd);
    atomic_fetch_sub(&c->srv->active, 1);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct logsrv *s = arg;
    struct pollfd p = { s->fd, POLLIN, 0 };
    pthread_attr_t attr;
    pthread_t t;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!atomic_load(&s->stop)) {
        struct conn *c;
        int fd;

        if (poll(&p, 1, 250) <= 0)
            continue;
        fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->srv = s;
        c->fd = fd;
        atomic_fetch_add(&s->active, 1);
        if (pthread_create(&t, &attr, conn_main, c) != 0) {
            atomic_fetch_sub(&s->active, 1);
            close(fd);
            free(c);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

struct logsrv *logsrv_start(int port, const char *name, const struct logsrv_source *src,
                            struct err *e)
{
    struct logsrv *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;

    if (!s) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    s->fd = -1;
    s->src = *src;
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (!s->ctx) {
        ssl_error(e, "TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
    if (make_cert(s->ctx, name, e) < 0)
        goto fail;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->fd, 64) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&sa, &len) < 0) {
        err_errno(e, errno, "listen on 127.0.0.1:%d", port);
        goto fail;
    }
    s->port = ntohs(sa.sin_port);
    if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
        err_set(e, EAGAIN, "cannot start the log server thread");
        goto fail;
    }
    return s;
fail:
    if (s->fd >= 0)
        close(s->fd);
    SSL_CTX_free(s->ctx);
    free(s);
    return NULL;
}

int logsrv_port(const struct logsrv *s)
{
    return s->port;
}

void logsrv_stop(struct logsrv *s)
{
    int i;

    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->acceptor, NULL);
    close(s->fd);
    for (i = 0; i < 100 && atomic_load(&s->active) > 0; i++)
        usleep(20000);
    /* A connection still stuck in TLS I/O keeps its reference to s: leak rather than free under it. */
    if (atomic_load(&s->active) > 0)
        return;
    SSL_CTX_free(s->ctx);
    free(s);
}
