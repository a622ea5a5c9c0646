/*
 * kube: the Kubernetes API client; see kube.h.
 *
 * Every request, single or batched or streamed, is a `struct xfer` run by
 * one loop over a curl multi handle (run_xfers). Multi handles are pooled so
 * their kept-alive (HTTP/2) connections serve the next request; DNS and TLS
 * sessions are shared across them through a curl share handle.
 */
#include "kube.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fileutil.h"
#include "log.h"
#include "monotime.h"
#include "version.h"

void kube_error_clear(struct kube_error *ke)
{
    if (!ke)
        return;
    memset(ke, 0, sizeof(*ke));
}

/* Copies a JSON string member into a fixed buffer, truncating; "" if absent. */
static void copy_member(char *dst, size_t cap, const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    snprintf(dst, cap, "%s", s ? s : "");
}

static void parse_causes(struct kube_error *ke, const json_t *status)
{
    const json_t *causes = json_object_get(json_object_get(status, "details"), "causes");
    const json_t *c;
    size_t i;

    json_array_foreach(causes, i, c) {
        struct kube_cause *kc;

        if (ke->ncauses >= KUBE_CAUSES_MAX)
            break;
        kc = &ke->causes[ke->ncauses++];
        copy_member(kc->reason, sizeof(kc->reason), c, "reason");
        copy_member(kc->field, sizeof(kc->field), c, "field");
        copy_member(kc->message, sizeof(kc->message), c, "message");
    }
}

/* A body that is not a Status is quoted, shortened, without control characters. */
static void quote_body(char *dst, size_t cap, const char *body, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len && n + 1 < cap && n < 200; i++)
        dst[n++] = isprint((unsigned char)body[i]) ? body[i] : ' ';
    dst[n] = '\0';
}

/* Formats err.msg from the filled-in fields. Returns -1. */
static int format_error(struct kube_error *ke, const char *what)
{
    if (!ke->reason[0] && ke->http == 410)
        snprintf(ke->reason, sizeof(ke->reason), "Gone");
    return err_set(&ke->err, ke->http, "%s: %d %s%s%s", what ? what : "request", ke->http,
                   ke->reason[0] ? ke->reason : "error", ke->message[0] ? ": " : "",
                   ke->message);
}

int kube_error_from_status(struct kube_error *ke, const char *what, long http,
                           const json_t *status)
{
    int code;

    if (!ke)
        return -1;
    kube_error_clear(ke);
    ke->http = (int)http;
    copy_member(ke->reason, sizeof(ke->reason), status, "reason");
    copy_member(ke->message, sizeof(ke->message), status, "message");
    parse_causes(ke, status);
    /* An ERROR event inside a 200 watch stream carries the real code. */
    code = (int)json_integer_value(json_object_get(status, "code"));
    if (code >= 400 && http < 400)
        ke->http = code;
    return format_error(ke, what);
}

int kube_error_from_response(struct kube_error *ke, const char *what, long http,
                             const char *body, size_t len)
{
    json_t *status = NULL;
    json_error_t jerr;
    const char *kind;
    int rc;

    if (!ke)
        return -1;
    if (body && len)
        status = json_loadb(body, len, 0, &jerr);
    kind = json_string_value(json_object_get(status, "kind"));
    if (kind && strcmp(kind, "Status") == 0) {
        rc = kube_error_from_status(ke, what, http, status);
    } else {
        kube_error_clear(ke);
        ke->http = (int)http;
        if (body && len)
            quote_body(ke->message, sizeof(ke->message), body, len);
        rc = format_error(ke, what);
    }
    json_decref(status);
    return rc;
}

static int reason_is(const struct kube_error *ke, int http, const char *reason)
{
    if (!ke || ke->http != http)
        return 0;
    return !reason || strcmp(ke->reason, reason) == 0;
}

int kube_is_not_found(const struct kube_error *ke)
{
    return reason_is(ke, 404, NULL);
}

int kube_is_already_exists(const struct kube_error *ke)
{
    return reason_is(ke, 409, "AlreadyExists");
}

int kube_is_conflict(const struct kube_error *ke)
{
    return reason_is(ke, 409, "Conflict");
}

int kube_is_forbidden(const struct kube_error *ke)
{
    return reason_is(ke, 403, NULL);
}

int kube_is_invalid(const struct kube_error *ke)
{
    return reason_is(ke, 422, NULL);
}

int kube_is_gone(const struct kube_error *ke)
{
    return reason_is(ke, 410, NULL);
}

int kube_is_unauthorized(const struct kube_error *ke)
{
    return reason_is(ke, 401, NULL);
}

int kube_is_transport(const struct kube_error *ke)
{
    return ke && ke->err.code == KUBE_E_TRANSPORT;
}

/* RFC 3986 unreserved characters pass; everything else is %XX. */
static int add_escaped(struct strbuf *sb, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int rc;

        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = strbuf_addch(sb, (char)ch);
        } else {
            char enc[3] = { '%', hex[ch >> 4], hex[ch & 15] };

            rc = strbuf_add(sb, enc, 3);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Appends "/" + escaped component; a component containing '/' is refused. */
static int add_segment(struct strbuf *sb, const char *what, const char *s, struct kube_error *ke)
{
    if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return err_set(ke ? &ke->err : NULL, KUBE_E_INVALID_ARG,
                       "bad %s \"%s\" in a resource path", what, s);
    if (strbuf_addch(sb, '/') < 0 || add_escaped(sb, s) < 0)
        return err_set(ke ? &ke->err : NULL, KUBE_E_NOMEM, "out of memory");
    return 0;
}

/* Appends "?key=value" or "&key=value", value escaped. */
static int add_param(struct strbuf *sb, int *first, const char *key, const char *value)
{
    if (strbuf_addch(sb, *first ? '?' : '&') < 0 || strbuf_adds(sb, key) < 0
        || strbuf_addch(sb, '=') < 0 || add_escaped(sb, value) < 0)
        return -1;
    *first = 0;
    return 0;
}

static int add_query(struct strbuf *sb, const struct kube_query *q, int watch)
{
    char num[32];
    int first = 1, rc = 0;

    if (watch)
        rc |= add_param(sb, &first, "watch", "true");
    if (!q)
        return rc;
    if (q->label_selector && *q->label_selector)
        rc |= add_param(sb, &first, "labelSelector", q->label_selector);
    if (q->field_selector && *q->field_selector)
        rc |= add_param(sb, &first, "fieldSelector", q->field_selector);
    if (q->limit > 0) {
        snprintf(num, sizeof(num), "%ld", q->limit);
        rc |= add_param(sb, &first, "limit", num);
    }
    if (q->continue_token && *q->continue_token)
        rc |= add_param(sb, &first, "continue", q->continue_token);
    if (q->resource_version && *q->resource_version)
        rc |= add_param(sb, &first, "resourceVersion", q->resource_version);
    if (q->field_manager && *q->field_manager)
        rc |= add_param(sb, &first, "fieldManager", q->field_manager);
    if (q->force)
        rc |= add_param(sb, &first, "force", "true");
    if (q->propagation_policy && *q->propagation_policy)
        rc |= add_param(sb, &first, "propagationPolicy", q->propagation_policy);
    if (q->dry_run)
        rc |= add_param(sb, &first, "dryRun", "All");
    if (q->timeout_seconds > 0) {
        snprintf(num, sizeof(num), "%d", q->timeout_seconds);
        rc |= add_param(sb, &first, "timeoutSeconds", num);
    }
    if (q->allow_watch_bookmarks)
        rc |= add_param(sb, &first, "allowWatchBookmarks", "true");
    return rc;
}

int kube_res_path(struct strbuf *sb, const struct kube_res *res, const struct kube_query *q,
                  int watch, struct kube_error *ke)
{
    struct err *e = ke ? &ke->err : NULL;
    int core = !res->group || !*res->group;

    if (!res->version || !res->resource)
        return err_set(e, KUBE_E_INVALID_ARG, "resource path needs a version and a resource");
    if (res->subresource && !res->name)
        return err_set(e, KUBE_E_INVALID_ARG, "subresource \"%s\" without an object name",
                       res->subresource);
    if (strbuf_adds(sb, core ? "/api" : "/apis") < 0)
        return err_set(e, KUBE_E_NOMEM, "out of memory");
    if ((!core && add_segment(sb, "group", res->group, ke) < 0)
        || add_segment(sb, "version", res->version, ke) < 0
        || (res->ns && (add_segment(sb, "namespaces", "namespaces", ke) < 0
                        || add_segment(sb, "namespace", res->ns, ke) < 0))
        || add_segment(sb, "resource", res->resource, ke) < 0
        || (res->name && add_segment(sb, "name", res->name, ke) < 0)
        || (res->subresource && add_segment(sb, "subresource", res->subresource, ke) < 0))
        return -1;
    if (add_query(sb, q, watch) < 0)
        return err_set(e, KUBE_E_NOMEM, "out of memory");
    return 0;
}


/* ---- the client ------------------------------------------------------ */

#define POOL_MAX 8                 /* idle multi handles (each keeps its connections) */
#define TOKEN_CHECK_MS 1000        /* stat the token file at most this often */
#define TOKEN_MAX_AGE_MS 60000     /* and re-read it at least this often */
#define STREAM_IDLE_S 300          /* a stream silent this long is dropped (default) */

struct kube_client {
    struct kube_config cfg;
    struct kube_client_opts opts;   /* defaults applied */
    char *user_agent;
    char *connect_to;               /* "name:port:host:port" for tls-server-name, or NULL */
    struct curl_slist *connect_to_list;
    char *base;                     /* URL prefix requests are made against */
    kube_observer_fn observer;      /* may be NULL */
    void *observer_ud;

    CURLSH *share;                  /* DNS cache and TLS sessions, across handles */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

    pthread_mutex_t lock;           /* guards everything below */
    CURLM *idle[POOL_MAX];
    int nidle;
    char *token;                    /* current bearer token */
    long long token_checked_ms, token_read_ms;
    struct stat token_st;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static long long now_ms(void)
{
    return (long long)(monotime_now() * 1000);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct kube_client *c = ud;

    (void)h;
    (void)access;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    struct kube_client *c = ud;

    (void)h;
    pthread_mutex_unlock(&c->share_locks[data]);
}

/* Reads the token file into c->token when it changed or is a minute old. Locked. */
static int refresh_token(struct kube_client *c, int force, struct kube_error *ke)
{
    struct strbuf sb = STRBUF_INIT;
    long long now = now_ms();
    struct stat st;
    int changed, rc = -1;

    if (!c->cfg.token_file)
        return 0;
    if (!force && c->token && now - c->token_checked_ms < TOKEN_CHECK_MS)
        return 0;
    c->token_checked_ms = now;
    if (stat(c->cfg.token_file, &st) < 0)
        goto fail_errno;
    changed = st.st_ino != c->token_st.st_ino || st.st_size != c->token_st.st_size
              || st.st_mtim.tv_sec != c->token_st.st_mtim.tv_sec
              || st.st_mtim.tv_nsec != c->token_st.st_mtim.tv_nsec;
    if (!force && c->token && !changed && now - c->token_read_ms < TOKEN_MAX_AGE_MS)
        return 0;
    if (fileutil_read(c->cfg.token_file, &sb, 65536, &ke->err) < 0)
        goto fail;
    while (sb.len && isspace((unsigned char)sb.buf[sb.len - 1]))
        strbuf_setlen(&sb, sb.len - 1);
    if (sb.len == 0) {
        err_set(&ke->err, KUBE_E_CONFIG, "token file %s: empty", c->cfg.token_file);
        goto fail;
    }
    free(c->token);
    c->token = strbuf_detach(&sb, NULL);
    c->token_st = st;
    c->token_read_ms = now;
    rc = 0;
    goto out;
fail_errno:
    err_errno(&ke->err, errno, "token file %s", c->cfg.token_file);
fail:
    /* A token that was readable before keeps working until the file is back. */
    if (c->token) {
        log_warn(NULL, "kube: keeping the previous token: %s", ke->err.msg);
        kube_error_clear(ke);
        rc = 0;
    } else {
        ke->err.code = KUBE_E_CONFIG;
    }
out:
    strbuf_release(&sb);
    return rc;
}

/* Builds the base URL and, for tls-server-name, the CONNECT_TO mapping. */
static int setup_server(struct kube_client *c, struct kube_error *ke)
{
    CURLU *u = NULL;
    char *host = NULL, *port = NULL, *url = NULL;
    struct strbuf sb = STRBUF_INIT;
    int rc = -1;

    if (!c->cfg.tls_server_name) {
        c->base = strdup(c->cfg.server);
        return c->base ? 0 : err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
    }
    /* Ask for the certificate's name in the URL, but connect to the real host. */
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, c->cfg.server, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK
        || curl_url_set(u, CURLUPART_HOST, c->cfg.tls_server_name, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        err_set(&ke->err, KUBE_E_CONFIG, "server %s: cannot apply tls-server-name %s",
                c->cfg.server, c->cfg.tls_server_name);
        goto out;
    }
    if (strbuf_addf(&sb, "%s:%s:%s:%s", c->cfg.tls_server_name, port, host, port) < 0
        || !(c->connect_to = strbuf_detach(&sb, NULL))
        || !(c->connect_to_list = curl_slist_append(NULL, c->connect_to))
        || !(c->base = strdup(url))) {
        err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        goto out;
    }
    /* curl_url_get adds a "/" path; requests add their own. */
    if (c->base[0] && c->base[strlen(c->base) - 1] == '/')
        c->base[strlen(c->base) - 1] = '\0';
    rc = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    strbuf_release(&sb);
    return rc;
}

struct kube_client *kube_client_new(const struct kube_config *cfg,
                                    const struct kube_client_opts *opts,
                                    struct kube_error *ke)
{
    struct kube_error local;
    struct kube_client *c;
    struct strbuf ua = STRBUF_INIT;
    int i;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        err_set(&ke->err, KUBE_E_TRANSPORT, "curl_global_init: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    if (!cfg->server) {
        err_set(&ke->err, KUBE_E_CONFIG, "Kubernetes configuration names no server");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    if (opts)
        c->opts = *opts;
    c->opts.timeout_ms = c->opts.timeout_ms > 0 ? c->opts.timeout_ms : 30000;
    c->opts.connect_timeout_ms = c->opts.connect_timeout_ms > 0 ? c->opts.connect_timeout_ms
                                                                : 10000;
    c->opts.max_retries = c->opts.max_retries == 0 ? 5 : c->opts.max_retries;
    c->opts.backoff_base_ms = c->opts.backoff_base_ms > 0 ? c->opts.backoff_base_ms : 100;
    c->opts.backoff_cap_ms = c->opts.backoff_cap_ms > 0 ? c->opts.backoff_cap_ms : 10000;
    c->opts.max_parallel = c->opts.max_parallel > 0 ? c->opts.max_parallel : 64;
    c->opts.user_agent = NULL;
    if (strbuf_addf(&ua, "%s", opts && opts->user_agent ? opts->user_agent
                                                        : "plateop/" PLATEOP_VERSION) < 0)
        goto nomem;
    c->user_agent = strbuf_detach(&ua, NULL);
    if (kube_config_copy(&c->cfg, cfg, &ke->err) < 0)
        goto fail;
    if (setup_server(c, ke) < 0)
        goto fail;
    c->share = curl_share_init();
    if (!c->share)
        goto nomem;
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (refresh_token(c, 1, ke) < 0)
        goto fail;
    return c;
nomem:
    err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
fail:
    strbuf_release(&ua);
    kube_client_free(c);
    return NULL;
}

void kube_client_free(struct kube_client *c)
{
    int i;

    if (!c)
        return;
    for (i = 0; i < c->nidle; i++)
        curl_multi_cleanup(c->idle[i]);
    if (c->share)
        curl_share_cleanup(c->share);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    pthread_mutex_destroy(&c->lock);
    kube_config_release(&c->cfg);
    curl_slist_free_all(c->connect_to_list);
    free(c->connect_to);
    free(c->base);
    free(c->user_agent);
    free(c->token);
    free(c);
}

const char *kube_client_namespace(const struct kube_client *c)
{
    return c->cfg.namespace ? c->cfg.namespace : "default";
}

const char *kube_client_server(const struct kube_client *c)
{
    return c->cfg.server;
}

void kube_client_set_observer(struct kube_client *c, kube_observer_fn fn, void *ud)
{
    c->observer = fn;
    c->observer_ud = ud;
}

/* A multi handle from the pool (keeping its warm connections), or a new one. */
static CURLM *multi_get(struct kube_client *c)
{
    CURLM *m = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->nidle > 0)
        m = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->lock);
    if (m)
        return m;
    m = curl_multi_init();
    if (m) {
        /* Concurrent requests share one HTTP/2 connection where offered. */
        curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, 250L);
        /* Over HTTP/1.1 a batch opens one connection per request in flight.
         * curl's default cache (4 per handle still added) would close some
         * as the batch's last transfers finish; keep them for the next. */
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)c->opts.max_parallel);
    }
    return m;
}

static void multi_put(struct kube_client *c, CURLM *m)
{
    pthread_mutex_lock(&c->lock);
    if (c->nidle < POOL_MAX) {
        c->idle[c->nidle++] = m;
        m = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (m)
        curl_multi_cleanup(m);
}

/* ---- transfers ------------------------------------------------------- */

/* One request in flight or waiting, with everything needed to retry it. */
struct xfer {
    char *method;              /* "GET", ... */
    char *path;                /* path and query, for the URL and messages */
    char *body;                /* NULL: none */
    size_t body_len;
    const char *content_type;
    long timeout_ms;           /* 0: no overall timeout (streams) ... */
    long idle_s;               /* ... but this long without a byte ends it */
    int max_retries;

    CURL *easy;                /* while running */
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    struct strbuf resp;        /* the body (error bodies, for streams) */
    long http;
    int attempts;
    int token_retried;         /* a 401 has already forced a token re-read */
    long long next_ms;         /* when a retry may start */
    int slot;                  /* index in the array run_xfers works on */

    /* streaming */
    kube_chunk_fn chunk_fn;
    void *chunk_ud;
    int consumer_ended;        /* chunk_fn asked to stop */

    int done;                  /* finished */
    int failed;                /* ... unsuccessfully */
    struct kube_error *ke;     /* the failure (NULL if even that allocation failed) */
};

static void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->method);
    free(x->path);
    free(x->body);
    free(x->ke);
    strbuf_release(&x->resp);
    free(x);
}

static const char *const patch_types[] = {
    [KUBE_PATCH_MERGE] = "application/merge-patch+json",
    [KUBE_PATCH_JSON] = "application/json-patch+json",
    [KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
    [KUBE_PATCH_APPLY] = "application/apply-patch+yaml",
};

static const char *const verbs[] = {
    [KUBE_GET] = "GET", [KUBE_POST] = "POST", [KUBE_PUT] = "PUT",
    [KUBE_PATCH] = "PATCH", [KUBE_DELETE] = "DELETE",
};

/* Prepares a transfer from a request: path, serialised body, content type. */
static struct xfer *xfer_new(struct kube_client *c, const struct kube_request *req, int watch,
                             struct kube_error *ke)
{
    struct strbuf path = STRBUF_INIT;
    struct xfer *x;

    if ((unsigned)req->verb > KUBE_DELETE || (unsigned)req->patch > KUBE_PATCH_APPLY) {
        err_set(&ke->err, KUBE_E_INVALID_ARG, "unknown verb or patch type");
        return NULL;
    }
    if (req->verb == KUBE_PATCH && req->patch == KUBE_PATCH_APPLY
        && !(req->q.field_manager && *req->q.field_manager)) {
        err_set(&ke->err, KUBE_E_INVALID_ARG, "server-side apply needs a fieldManager");
        return NULL;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        goto nomem;
    strbuf_init(&x->resp);
    if (kube_res_path(&path, &req->res, &req->q, watch, ke) < 0)
        goto fail;
    x->path = strbuf_detach(&path, NULL);
    x->method = strdup(verbs[req->verb]);
    if (!x->path || !x->method)
        goto nomem;
    if (req->raw_body) {
        x->body = strdup(req->raw_body);
        if (!x->body)
            goto nomem;
        x->body_len = strlen(x->body);
    } else if (req->body) {
        x->body = json_dumps(req->body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!x->body)
            goto nomem;
        x->body_len = strlen(x->body);
    }
    x->content_type = req->verb == KUBE_PATCH ? patch_types[req->patch] : "application/json";
    x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->opts.timeout_ms;
    x->max_retries = (req->flags & KUBE_REQ_NO_RETRY) || c->opts.max_retries < 0
                         ? 0 : c->opts.max_retries;
    return x;
nomem:
    err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
fail:
    strbuf_release(&path);
    xfer_free(x);
    return NULL;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    long http = 0;

    if (x->chunk_fn) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &http);
        if (http >= 200 && http < 300) {
            if (x->chunk_fn(data, len, x->chunk_ud) != 0) {
                x->consumer_ended = 1;
                return 0;   /* makes curl end the transfer */
            }
            return len;
        }
    }
    return strbuf_add(&x->resp, data, len) < 0 ? 0 : len;
}

/* Creates the easy handle for the next attempt. */
static int xfer_start(struct kube_client *c, struct xfer *x, CURLM *m, struct kube_error *ke)
{
    struct strbuf url = STRBUF_INIT, hdr = STRBUF_INIT;
    struct curl_blob blob;
    CURL *h;
    int rc = -1;

    strbuf_reset(&x->resp);
    x->http = 0;
    x->errbuf[0] = '\0';
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    h = x->easy = curl_easy_init();
    if (!h)
        goto nomem;
    if (strbuf_addf(&url, "%s%s", c->base, x->path) < 0)
        goto nomem;
    x->headers = curl_slist_append(x->headers, "Accept: application/json");
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (x->body) {
        strbuf_addf(&hdr, "Content-Type: %s", x->content_type);
        x->headers = curl_slist_append(x->headers, hdr.buf);
    }
    pthread_mutex_lock(&c->lock);
    rc = refresh_token(c, 0, ke);
    strbuf_reset(&hdr);
    if (rc == 0 && (c->token || c->cfg.token))
        strbuf_addf(&hdr, "Authorization: Bearer %s", c->token ? c->token : c->cfg.token);
    pthread_mutex_unlock(&c->lock);
    if (rc < 0)
        goto out;
    rc = -1;
    if (hdr.len)
        x->headers = curl_slist_append(x->headers, hdr.buf);
    if (!x->headers)
        goto nomem;

    curl_easy_setopt(h, CURLOPT_URL, url.buf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    if (!x->timeout_ms) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, x->idle_s);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    if (strcmp(x->method, "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    if (x->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    }
    if (c->connect_to_list)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to_list);
    if (c->cfg.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
    if (c->cfg.ca_data) {
        blob = (struct curl_blob){ c->cfg.ca_data, c->cfg.ca_data_len, CURL_BLOB_NOCOPY };
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (c->cfg.cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cfg.cert_file);
    if (c->cfg.cert_data) {
        blob = (struct curl_blob){ c->cfg.cert_data, c->cfg.cert_data_len, CURL_BLOB_NOCOPY };
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
    }
    if (c->cfg.key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->cfg.key_file);
    if (c->cfg.key_data) {
        blob = (struct curl_blob){ c->cfg.key_data, c->cfg.key_data_len, CURL_BLOB_NOCOPY };
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    }
    if (c->cfg.insecure_skip_tls_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->cfg.username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->cfg.username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->cfg.password ? c->cfg.password : "");
    }
    x->attempts++;
    if (curl_multi_add_handle(m, h) != CURLM_OK)
        goto nomem;
    rc = 0;
    goto out;
nomem:
    err_set(&ke->err, KUBE_E_NOMEM, "out of memory starting %s %s", x->method, x->path);
out:
    strbuf_release(&url);
    strbuf_release(&hdr);
    return rc;
}

/* Transport failures that another attempt cannot fix. */
static int permanent_transport(CURLcode cc)
{
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return 1;
    default:
        return 0;
    }
}

/* Explains a transport failure, naming the cause in the terms of the configuration. */
static void transport_error(struct kube_client *c, struct xfer *x, CURLcode cc,
                            struct kube_error *ke)
{
    const char *hint = "";
    char detail[512];

    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        hint = "the server's TLS certificate is not trusted by the configured CA "
               "(wrong certificate-authority?): ";
        break;
    case CURLE_SSL_CACERT_BADFILE:
        hint = "the configured CA cannot be read: ";
        break;
    case CURLE_SSL_CERTPROBLEM:
        hint = "the client certificate or key cannot be used: ";
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
        hint = "the API server is unreachable: ";
        break;
    default:
        break;
    }
    snprintf(detail, sizeof(detail), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
    kube_error_clear(ke);
    ke->curl_code = (int)cc;
    err_set(&ke->err, KUBE_E_TRANSPORT, "%s %s: %s%s (server %s, %d attempt%s)", x->method,
            x->path, hint, detail, c->cfg.server, x->attempts, x->attempts == 1 ? "" : "s");
}

/* Backoff before attempt n+1: base * 2^(n-1), capped, with +-25 % jitter. */
static long backoff_ms(const struct kube_client *c, int attempts)
{
    static __thread unsigned int seed;
    long d = c->opts.backoff_base_ms;
    int i;

    for (i = 1; i < attempts && d < c->opts.backoff_cap_ms; i++)
        d *= 2;
    if (d > c->opts.backoff_cap_ms)
        d = c->opts.backoff_cap_ms;
    if (!seed)
        seed = (unsigned int)now_ms() ^ (unsigned int)(uintptr_t)&seed;
    return d * 3 / 4 + (long)(rand_r(&seed) % (unsigned int)(d / 2 + 1));
}

/* Appends text to an error message, truncating. */
static void append_msg(struct err *e, const char *text)
{
    size_t len = strlen(e->msg);

    snprintf(e->msg + len, sizeof(e->msg) - len, "%s", text);
}

/* Seconds of a Retry-After header (delta-seconds form), or -1. */
static long retry_after_ms(CURL *h)
{
    struct curl_header *hd;
    char *end;
    long s;

    if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
        return -1;
    s = strtol(hd->value, &end, 10);
    return end != hd->value && s >= 0 ? s * 1000 : -1;
}

/*
 * Decides what a finished attempt means: done (success or final failure) or
 * retry at x->next_ms. Frees the easy handle.
 */
static void xfer_finish(struct kube_client *c, struct xfer *x, CURLcode cc)
{
    struct kube_error tmp;
    struct strbuf what = STRBUF_INIT;
    long wait = -1;
    int retry = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->http);
    if (c->observer)
        c->observer(x->method, (int)x->http, c->observer_ud);
    if (cc == CURLE_OK && x->http >= 200 && x->http < 300) {
        x->done = 1;
        goto out;
    }
    if (cc == CURLE_WRITE_ERROR && x->consumer_ended) {
        x->done = 1;
        goto out;
    }
    if (cc != CURLE_OK) {
        transport_error(c, x, cc, &tmp);
        retry = !permanent_transport(cc);
    } else {
        strbuf_addf(&what, "%s %s", x->method, x->path);
        kube_error_from_response(&tmp, what.buf, x->http, x->resp.buf, x->resp.len);
        if (x->http == 429) {
            retry = 1;
            wait = retry_after_ms(x->easy);
        } else if (x->http >= 500) {
            retry = 1;
        } else if (x->http == 401 && c->cfg.token_file && !x->token_retried) {
            /* The token may have rotated since it was last read. */
            struct kube_error ignored;

            pthread_mutex_lock(&c->lock);
            refresh_token(c, 1, &ignored);
            pthread_mutex_unlock(&c->lock);
            x->token_retried = 1;
            retry = 1;
            wait = 0;
        }
        /* The API server's own text is just "Unauthorized"; name the likely causes. */
        if (x->http == 401)
            append_msg(&tmp.err, ": the credentials were refused (expired or invalid token, "
                                 "or unknown certificate)");
    }
    tmp.attempts = x->attempts;
    if (retry && x->attempts <= x->max_retries) {
        if (wait < 0)
            wait = backoff_ms(c, x->attempts);
        if (wait > c->opts.backoff_cap_ms)
            wait = c->opts.backoff_cap_ms;
        log_emit(x->http == 429 ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, NULL, NULL,
                 "kube: retrying in %ld ms: %s", wait, tmp.err.msg);
        x->next_ms = now_ms() + wait;
        goto out;
    }
    x->ke = malloc(sizeof(*x->ke));
    if (x->ke)
        *x->ke = tmp;
    x->failed = 1;
    x->done = 1;
out:
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    strbuf_release(&what);
}

static void xfer_fail_now(struct xfer *x, const struct kube_error *why)
{
    x->ke = malloc(sizeof(*x->ke));
    if (x->ke)
        *x->ke = *why;
    x->failed = 1;
    x->done = 1;
}

/*
 * Runs xs[0..n) (skipping finished ones) with at most `parallel` in flight
 * on one pooled multi handle, retrying as xfer_finish decides, until every
 * one is done or *stop becomes non-zero (the rest then fail with
 * KUBE_E_STOPPED).
 */
static void run_xfers(struct kube_client *c, struct xfer **xs, int n, int parallel,
                      const atomic_int *stop)
{
    struct kube_error ke;
    CURLM *m = multi_get(c);
    int *retry = NULL, nretry = 0, next = 0, active = 0, remaining = 0, i, running;
    CURLMsg *msg;

    for (i = 0; i < n; i++) {
        xs[i]->slot = i;
        remaining += !xs[i]->done;
    }
    retry = malloc(sizeof(*retry) * (size_t)(n ? n : 1));
    kube_error_clear(&ke);
    if (!m || !retry) {
        err_set(&ke.err, KUBE_E_NOMEM, "out of memory");
        for (i = 0; i < n; i++)
            if (!xs[i]->done)
                xfer_fail_now(xs[i], &ke);
        goto out;
    }
    while (remaining > 0) {
        long long now = now_ms(), wake = now + 250;

        if (stop && atomic_load(stop))
            break;
        for (i = 0; i < nretry && active < parallel;) {
            struct xfer *x = xs[retry[i]];

            if (x->next_ms > now) {
                i++;
                continue;
            }
            retry[i] = retry[--nretry];
            if (xfer_start(c, x, m, &ke) < 0) {
                xfer_fail_now(x, &ke);
                remaining--;
            } else {
                active++;
            }
        }
        while (active < parallel && next < n) {
            struct xfer *x = xs[next++];

            if (x->done)
                continue;
            if (xfer_start(c, x, m, &ke) < 0) {
                xfer_fail_now(x, &ke);
                remaining--;
            } else {
                active++;
            }
        }
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &running))) {
            struct xfer *x = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(m, msg->easy_handle);
            xfer_finish(c, x, msg->data.result);
            active--;
            if (x->done)
                remaining--;
            else
                retry[nretry++] = x->slot;
        }
        if (remaining > 0 && (active > 0 || nretry > 0)) {
            long wait;

            for (i = 0; i < nretry; i++)
                wake = xs[retry[i]]->next_ms < wake ? xs[retry[i]]->next_ms : wake;
            wait = (long)(wake - now_ms());

            curl_multi_poll(m, NULL, 0, wait > 0 ? (int)wait : 0, NULL);
        }
    }
    /* Stopped: whatever is still running or waiting ends now. */
    err_set(&ke.err, KUBE_E_STOPPED, "stopped");
    for (i = 0; i < n; i++) {
        if (xs[i]->done)
            continue;
        if (xs[i]->easy) {
            curl_multi_remove_handle(m, xs[i]->easy);
            curl_easy_cleanup(xs[i]->easy);
            xs[i]->easy = NULL;
        }
        xfer_fail_now(xs[i], &ke);
    }
out:
    free(retry);
    if (m)
        multi_put(c, m);
}

/* Copies a failed transfer's error into ke. Returns -1. */
static int xfer_error(const struct xfer *x, struct kube_error *ke)
{
    if (x->ke)
        *ke = *x->ke;
    else
        err_set(&ke->err, KUBE_E_NOMEM, "%s %s: out of memory", x->method, x->path);
    return -1;
}

/* The decoded body of a finished transfer, or NULL with its error in ke. */
static json_t *xfer_result(const struct xfer *x, struct kube_error *ke)
{
    json_error_t jerr;
    json_t *out;

    if (x->failed) {
        xfer_error(x, ke);
        return NULL;
    }
    if (x->resp.len == 0)
        return json_object();
    out = json_loadb(x->resp.buf, x->resp.len, 0, &jerr);
    if (!out)
        err_set(&ke->err, KUBE_E_DECODE, "%s %s: the response is not JSON: %s", x->method,
                x->path, jerr.text);
    return out;
}

/* Performs req; on success hands the raw body to *body (released and replaced). */
static int do_raw(struct kube_client *c, const struct kube_request *req, struct strbuf *body,
                  struct kube_error *ke)
{
    struct xfer *x = xfer_new(c, req, 0, ke);
    int rc = -1;

    if (!x)
        return -1;
    run_xfers(c, &x, 1, 1, NULL);
    if (x->failed) {
        xfer_error(x, ke);
    } else {
        strbuf_release(body);
        *body = x->resp;
        strbuf_init(&x->resp);
        rc = 0;
    }
    xfer_free(x);
    return rc;
}

json_t *kube_do(struct kube_client *c, const struct kube_request *req, struct kube_error *ke)
{
    struct kube_error local;
    struct xfer *x;
    json_t *out;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    x = xfer_new(c, req, 0, ke);
    if (!x)
        return NULL;
    run_xfers(c, &x, 1, 1, NULL);
    out = xfer_result(x, ke);
    xfer_free(x);
    return out;
}

/* Runs a request on (res, q) with an optional body. */
static json_t *simple(struct kube_client *c, enum kube_verb verb, const struct kube_res *res,
                      const json_t *body, enum kube_patch_type patch, const struct kube_query *q,
                      struct kube_error *ke)
{
    struct kube_request req = { .verb = verb, .res = *res, .body = body, .patch = patch };

    if (q)
        req.q = *q;
    return kube_do(c, &req, ke);
}

json_t *kube_get(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                 struct kube_error *ke)
{
    return simple(c, KUBE_GET, res, NULL, KUBE_PATCH_MERGE, q, ke);
}

json_t *kube_create(struct kube_client *c, const struct kube_res *res, const json_t *obj,
                    const struct kube_query *q, struct kube_error *ke)
{
    return simple(c, KUBE_POST, res, obj, KUBE_PATCH_MERGE, q, ke);
}

json_t *kube_replace(struct kube_client *c, const struct kube_res *res, const json_t *obj,
                     const struct kube_query *q, struct kube_error *ke)
{
    return simple(c, KUBE_PUT, res, obj, KUBE_PATCH_MERGE, q, ke);
}

json_t *kube_patch(struct kube_client *c, const struct kube_res *res, enum kube_patch_type type,
                   const json_t *patch, const struct kube_query *q, struct kube_error *ke)
{
    return simple(c, KUBE_PATCH, res, patch, type, q, ke);
}

json_t *kube_delete(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                    struct kube_error *ke)
{
    return simple(c, KUBE_DELETE, res, NULL, KUBE_PATCH_MERGE, q, ke);
}

/* A read position in a JSON text being walked value by value. */
struct cursor {
    const char *p, *end;
};

static char peek(struct cursor *cur)
{
    while (cur->p < cur->end && (*cur->p == ' ' || *cur->p == '\n' || *cur->p == '\r'
                                 || *cur->p == '\t'))
        cur->p++;
    return cur->p < cur->end ? *cur->p : '\0';
}

static int expect(struct cursor *cur, char ch)
{
    if (peek(cur) != ch)
        return -1;
    cur->p++;
    return 0;
}

/* Decodes the one JSON value at the cursor and moves past it. */
static json_t *next_value(struct cursor *cur)
{
    json_error_t jerr;
    json_t *v;

    peek(cur);
    v = json_loadb(cur->p, (size_t)(cur->end - cur->p), JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY,
                   &jerr);
    if (v)
        cur->p += jerr.position;
    return v;
}

/*
 * Walks a List's text, decoding its items one at a time (a page of 500
 * objects is never one tree) and handing each to fn. Sets *metadata to the
 * List's metadata. Returns 0, fn's non-zero value, or -1 on malformed text.
 */
static int each_item(const char *text, size_t len, kube_item_fn fn, void *ud, json_t **metadata)
{
    struct cursor cur = { text, text + len };
    json_t *key = NULL, *v;
    int rc = -1;

    if (expect(&cur, '{') < 0)
        return -1;
    while (peek(&cur) != '}') {
        key = next_value(&cur);
        if (!json_is_string(key) || expect(&cur, ':') < 0)
            goto out;
        if (strcmp(json_string_value(key), "items") == 0 && peek(&cur) == '[') {
            cur.p++;
            while (peek(&cur) != ']') {
                if (!(v = next_value(&cur)))
                    goto out;
                rc = fn(v, ud);
                json_decref(v);
                if (rc)
                    goto out;
                rc = -1;
                if (peek(&cur) == ',')
                    cur.p++;
                else if (peek(&cur) != ']')
                    goto out;
            }
            cur.p++;
        } else if (!(v = next_value(&cur))) {
            goto out;
        } else if (strcmp(json_string_value(key), "metadata") == 0) {
            json_decref(*metadata);
            *metadata = v;
        } else {
            json_decref(v);
        }
        json_decref(key);
        key = NULL;
        if (peek(&cur) == ',')
            cur.p++;
        else if (peek(&cur) != '}')
            goto out;
    }
    rc = 0;
out:
    json_decref(key);
    return rc;
}

int kube_list_each(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                   kube_item_fn fn, void *ud, char **rv_out, struct kube_error *ke)
{
    struct kube_error local;
    struct kube_request req = { .verb = KUBE_GET, .res = *res };
    struct strbuf page = STRBUF_INIT;
    json_t *md = NULL;
    char *cont = NULL;
    const char *s;
    int rc = 0;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    if (q)
        req.q = *q;
    if (req.q.limit <= 0)
        req.q.limit = 500;
    if (rv_out)
        *rv_out = NULL;
    do {
        req.q.continue_token = cont;
        rc = do_raw(c, &req, &page, ke);
        if (rc < 0)
            break;
        /* Later pages come from the first page's snapshot. */
        req.q.resource_version = NULL;
        rc = each_item(page.buf, page.len, fn, ud, &md);
        if (rc < 0) {
            err_set(&ke->err, KUBE_E_DECODE, "list %s: the response is not a List",
                    res->resource);
            break;
        }
        s = json_string_value(json_object_get(md, "resourceVersion"));
        if (rv_out && !*rv_out && s && !(*rv_out = strdup(s)))
            rc = err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        free(cont);
        cont = NULL;
        s = json_string_value(json_object_get(md, "continue"));
        if (!rc && s && *s && !(cont = strdup(s)))
            rc = err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        json_decref(md);
        md = NULL;
    } while (!rc && cont);
    json_decref(md);
    free(cont);
    strbuf_release(&page);
    if (rc < 0 && rv_out) {
        free(*rv_out);
        *rv_out = NULL;
    }
    return rc;
}

/* ---- batches --------------------------------------------------------- */

struct kube_batch {
    struct kube_client *c;
    int parallel;
    struct xfer **xs;
    int n, cap;
};

struct kube_batch *kube_batch_new(struct kube_client *c, int max_parallel,
                                  struct kube_error *ke)
{
    struct kube_batch *b = calloc(1, sizeof(*b));

    if (!b) {
        if (ke)
            err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        return NULL;
    }
    b->c = c;
    b->parallel = max_parallel > 0 ? max_parallel : c->opts.max_parallel;
    return b;
}

int kube_batch_add(struct kube_batch *b, const struct kube_request *req, struct kube_error *ke)
{
    struct kube_error local;
    struct xfer *x, **nxs;
    int ncap;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    if (b->n == b->cap) {
        ncap = b->cap ? b->cap * 2 : 64;
        nxs = realloc(b->xs, sizeof(*nxs) * (size_t)ncap);
        if (!nxs)
            return err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        b->xs = nxs;
        b->cap = ncap;
    }
    x = xfer_new(b->c, req, 0, ke);
    if (!x)
        return -1;
    b->xs[b->n] = x;
    return b->n++;
}

int kube_batch_run(struct kube_batch *b)
{
    int i, failed = 0;

    run_xfers(b->c, b->xs, b->n, b->parallel, NULL);
    for (i = 0; i < b->n; i++)
        failed += b->xs[i]->failed;
    return failed;
}

json_t *kube_batch_result(struct kube_batch *b, int i, struct kube_error *ke)
{
    struct kube_error local;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    if (i < 0 || i >= b->n) {
        err_set(&ke->err, KUBE_E_INVALID_ARG, "batch has no request %d", i);
        return NULL;
    }
    if (!b->xs[i]->done) {
        err_set(&ke->err, KUBE_E_INVALID_ARG, "batch request %d has not run", i);
        return NULL;
    }
    return xfer_result(b->xs[i], ke);
}

int kube_batch_count(const struct kube_batch *b)
{
    return b->n;
}

void kube_batch_free(struct kube_batch *b)
{
    int i;

    if (!b)
        return;
    for (i = 0; i < b->n; i++)
        xfer_free(b->xs[i]);
    free(b->xs);
    free(b);
}

/* ---- streaming ------------------------------------------------------- */

int kube_stream(struct kube_client *c, const struct kube_request *req, int watch,
                kube_chunk_fn fn, void *ud, const atomic_int *stop, struct kube_error *ke)
{
    struct kube_error local;
    struct xfer *x;
    int rc = 0;

    ke = ke ? ke : &local;
    kube_error_clear(ke);
    if (req->verb != KUBE_GET)
        return err_set(&ke->err, KUBE_E_INVALID_ARG, "only GET can be streamed");
    x = xfer_new(c, req, watch, ke);
    if (!x)
        return -1;
    x->timeout_ms = 0;
    /* A watch the server ends after timeoutSeconds may be silent until then. */
    x->idle_s = req->q.timeout_seconds > 0 ? req->q.timeout_seconds + 30 : STREAM_IDLE_S;
    x->max_retries = 0;
    x->chunk_fn = fn;
    x->chunk_ud = ud;
    run_xfers(c, &x, 1, 1, stop);
    if (x->failed)
        rc = xfer_error(x, ke);
    xfer_free(x);
    return rc;
}
