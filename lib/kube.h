/*
 * kube: a thread-safe Kubernetes API client on libcurl and jansson.
 *
 * One struct kube_client per process is enough: every function below may be
 * called from any thread at the same time. Connections are kept alive and
 * reused (HTTP/2 over TLS when the server offers it, which the API server
 * does, so concurrent requests share one connection); TLS sessions are
 * cached. A token file named by the configuration is re-read when it
 * changes (checked at most once a second) and at least once a minute.
 *
 * Requests name a resource with struct kube_res (any group/version/resource,
 * namespaced or cluster-scoped, an object or a collection, a subresource such
 * as "status") and options with struct kube_query (selectors, paging,
 * resourceVersion, fieldManager/force, propagationPolicy, dryRun).
 *
 * Errors are values: struct kube_error extends struct err with the HTTP code
 * and the API server's Status (reason, message, field causes). Its err.msg
 * reads like
 *   POST /api/v1/namespaces/x/configmaps: 403 Forbidden: configmaps "b" is
 *   forbidden: exceeded quota: q, requested: configmaps=1, used: ...
 * and the kube_is_*() predicates classify it. A 401's message ends with
 * "the credentials were refused (expired or invalid token, or unknown
 * certificate)", as the API server itself says only "Unauthorized".
 * Retries happen inside:
 *   - 429 waits for Retry-After (else the backoff) and retries;
 *   - 5xx and network errors retry with capped exponential backoff;
 *   - other 4xx (including 409 Conflict/AlreadyExists) are returned at once.
 * Retried POSTs may therefore report AlreadyExists for an object the first
 * attempt created; callers creating with deterministic names treat that as
 * success.
 *
 * JSON ownership: functions returning json_t * return a new reference the
 * caller must json_decref(); bodies passed in are borrowed.
 */
#ifndef PLATEOP_KUBE_H
#define PLATEOP_KUBE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "err.h"
#include "kube_config.h"
#include "strbuf.h"

/* ---- errors ---------------------------------------------------------- */

/*
 * kube_error.err.code: the HTTP status (400..599) when the server answered,
 * else one of these (distinct from errno values and HTTP codes).
 */
enum {
    KUBE_E_TRANSPORT = 1001,       /* connect, TLS, timeout, reset: see curl_code */
    KUBE_E_DECODE = 1002,          /* a 2xx body that is not the JSON expected */
    KUBE_E_STREAM = 1003,          /* a watch stream that is garbage or truncated */
    KUBE_E_INVALID_ARG = 1004,     /* the caller's request cannot be expressed */
    KUBE_E_NOMEM = 1005,
    KUBE_E_CONFIG = 1006,          /* credentials unusable (e.g. token file unreadable) */
    KUBE_E_STOPPED = 1007,         /* cancelled through a stop flag */
};

#define KUBE_REASON_MAX 64
#define KUBE_CAUSES_MAX 8

/* One entry of Status.details.causes, e.g. Invalid's per-field complaints. */
struct kube_cause {
    char reason[KUBE_REASON_MAX];  /* "FieldValueInvalid", ... */
    char field[256];               /* "metadata.name" */
    char message[512];
};

struct kube_error {
    struct err err;                /* code and full message (see above) */
    int http;                      /* HTTP status; 0 when none was received */
    char reason[KUBE_REASON_MAX];  /* Status.reason: "NotFound", "AlreadyExists",
                                      "Conflict", "Forbidden", "Invalid", "Expired",
                                      "Gone", "Unauthorized", "TooManyRequests", ...
                                      or "" when the body carried none */
    char message[ERR_MSG_MAX];     /* Status.message, verbatim ("" if none) */
    int ncauses;                   /* entries used in causes[] */
    struct kube_cause causes[KUBE_CAUSES_MAX];
    int curl_code;                 /* CURLcode of a transport failure, else 0 */
    int attempts;                  /* how many times the request was sent */
};

/* Resets to "no error". Safe on NULL. */
void kube_error_clear(struct kube_error *ke);

/*
 * Fills ke from an HTTP status and a response body (a metav1 Status when the
 * server sent one; anything else is kept as the message, shortened).
 * `what` prefixes the message ("GET /api/v1/..."). Returns -1. Used by the
 * client itself and by tests that feed recorded bodies.
 */
int kube_error_from_response(struct kube_error *ke, const char *what, long http,
                             const char *body, size_t len);

/*
 * As kube_error_from_response(), from an already decoded metav1 Status
 * (borrowed). When the Status's code is an error and http is not (an ERROR
 * event in a 200 stream), http becomes the Status's code. Returns -1.
 */
int kube_error_from_status(struct kube_error *ke, const char *what, long http,
                           const json_t *status);

/* Classification; each is false on NULL or an empty error. */
int kube_is_not_found(const struct kube_error *ke);       /* 404 */
int kube_is_already_exists(const struct kube_error *ke);  /* 409 AlreadyExists */
int kube_is_conflict(const struct kube_error *ke);        /* 409 Conflict (stale resourceVersion) */
int kube_is_forbidden(const struct kube_error *ke);       /* 403, quota refusals included */
int kube_is_invalid(const struct kube_error *ke);         /* 422 Invalid */
int kube_is_gone(const struct kube_error *ke);            /* 410, reason Expired or Gone */
int kube_is_unauthorized(const struct kube_error *ke);    /* 401 */
int kube_is_transport(const struct kube_error *ke);       /* no usable HTTP answer */

/* ---- naming resources ------------------------------------------------ */

/*
 * A resource path. group NULL or "" is the core group (/api/v1/...), any
 * other is /apis/GROUP/VERSION/.... ns NULL means cluster-scoped, or all
 * namespaces for a list/watch of a namespaced resource. name NULL means the
 * collection. subresource (NULL or e.g. "status", "log", "scale") follows
 * the name. All strings are borrowed for the duration of the call.
 */
struct kube_res {
    const char *group;
    const char *version;
    const char *resource;    /* plural, lower case: "configmaps", "analyses" */
    const char *ns;
    const char *name;
    const char *subresource;
};

/* Common resources; copy and set .ns/.name, e.g.
 *   struct kube_res r = KUBE_RES_CONFIGMAPS; r.ns = "x"; r.name = "y"; */
#define KUBE_RES_CONFIGMAPS  { .version = "v1", .resource = "configmaps" }
#define KUBE_RES_PODS        { .version = "v1", .resource = "pods" }
#define KUBE_RES_NODES       { .version = "v1", .resource = "nodes" }
#define KUBE_RES_EVENTS      { .version = "v1", .resource = "events" }
#define KUBE_RES_SECRETS     { .version = "v1", .resource = "secrets" }
#define KUBE_RES_NAMESPACES  { .version = "v1", .resource = "namespaces" }
#define KUBE_RES_JOBS        { .group = "batch", .version = "v1", .resource = "jobs" }
#define KUBE_RES_LEASES      { .group = "coordination.k8s.io", .version = "v1", .resource = "leases" }
#define KUBE_RES_ANALYSES    { .group = "plateop.io", .version = "v1alpha1", .resource = "analyses" }

/* Query options; zero means "not set". Strings are borrowed. */
struct kube_query {
    const char *label_selector;      /* "plateop.io/analysis=x,tier!=db" */
    const char *field_selector;      /* "spec.nodeName=n1" */
    long limit;                      /* list page size */
    const char *continue_token;      /* list: the previous page's metadata.continue */
    const char *resource_version;    /* list/get/watch: opaque */
    const char *field_manager;       /* POST/PUT/PATCH; required by apply */
    int force;                       /* apply: take ownership of conflicting fields */
    const char *propagation_policy;  /* DELETE: "Foreground", "Background", "Orphan" */
    int dry_run;                     /* POST/PUT/PATCH/DELETE: dryRun=All */
    int timeout_seconds;             /* list/watch: server-side timeoutSeconds */
    int allow_watch_bookmarks;       /* watch: allowWatchBookmarks=true */
};

/*
 * Appends the URL path and query string of (res, q, watch) to sb, percent-
 * encoding every component, e.g. "/apis/batch/v1/namespaces/x/jobs?limit=5".
 * Returns 0, or -1 with ke (KUBE_E_INVALID_ARG: missing version/resource, a
 * subresource without a name, a name with '/') or on allocation failure.
 * Pure; thread-safe.
 */
int kube_res_path(struct strbuf *sb, const struct kube_res *res, const struct kube_query *q,
                  int watch, struct kube_error *ke);

/* ---- the client ------------------------------------------------------ */

struct kube_client;

/* Client tuning; zero fields take the defaults shown. */
struct kube_client_opts {
    long timeout_ms;          /* whole request (per attempt), default 30000 */
    long connect_timeout_ms;  /* default 10000 */
    int max_retries;          /* retries after the first attempt, default 5; <0: none */
    long backoff_base_ms;     /* first retry delay, default 100; doubles per retry */
    long backoff_cap_ms;      /* backoff ceiling, default 10000 (also caps Retry-After) */
    int max_parallel;         /* kube_batch default concurrency, default 64; also the
                                 connections kept open for reuse (HTTP/1.1 servers) */
    const char *user_agent;   /* default "plateop/VERSION"; copied */
};

/*
 * Creates a client for cfg (deep-copied; cfg may be released afterwards).
 * opts may be NULL. Returns NULL with ke when the configuration names no
 * server, its tls-server-name cannot be applied, or its token file cannot
 * be read. CA, certificate and key files are read by libcurl when the first
 * connection is made, so their problems come back from the first request.
 * Cost: reads the token file; no network I/O.
 */
struct kube_client *kube_client_new(const struct kube_config *cfg,
                                    const struct kube_client_opts *opts,
                                    struct kube_error *ke);

/* Frees the client. No request may be in flight. Safe on NULL. */
void kube_client_free(struct kube_client *c);

/* The configuration's default namespace (borrowed; lives as long as c). */
const char *kube_client_namespace(const struct kube_client *c);

/* The server URL (borrowed; lives as long as c). */
const char *kube_client_server(const struct kube_client *c);

/*
 * Called after every attempt of every request (retries, batch members and
 * streams included) with the method ("GET", "POST", ...) and the HTTP status,
 * or 0 when no answer came (a transport failure). Runs on the requesting
 * thread, so it must be quick and thread-safe (e.g. a metrics counter).
 */
typedef void (*kube_observer_fn)(const char *verb, int http, void *ud);

/*
 * Installs fn (NULL: none) with its ud. Not synchronised with requests:
 * call it before the client is used (right after kube_client_new()).
 */
void kube_client_set_observer(struct kube_client *c, kube_observer_fn fn, void *ud);

/* ---- requests -------------------------------------------------------- */

enum kube_verb {
    KUBE_GET,
    KUBE_POST,       /* create: res names the collection */
    KUBE_PUT,        /* replace: res names the object */
    KUBE_PATCH,
    KUBE_DELETE,
};

enum kube_patch_type {
    KUBE_PATCH_MERGE,       /* application/merge-patch+json */
    KUBE_PATCH_JSON,        /* application/json-patch+json (an array of ops) */
    KUBE_PATCH_STRATEGIC,   /* application/strategic-merge-patch+json (built-ins only) */
    KUBE_PATCH_APPLY,       /* application/apply-patch+yaml; needs q.field_manager */
};

/* Flags for struct kube_request. */
enum {
    KUBE_REQ_NO_RETRY = 1 << 0,   /* one attempt only (e.g. leader election renewals) */
};

struct kube_request {
    enum kube_verb verb;
    struct kube_res res;
    struct kube_query q;
    enum kube_patch_type patch;   /* KUBE_PATCH only */
    const json_t *body;           /* POST/PUT/PATCH body (borrowed), or: */
    const char *raw_body;         /* a body sent verbatim (e.g. YAML for apply) */
    long timeout_ms;              /* per attempt; 0: the client's */
    unsigned flags;               /* KUBE_REQ_* */
};

/*
 * Performs one request, with retries as described at the top. Returns the
 * decoded response body (a new reference; for DELETE either the object or
 * a Status), or NULL with ke filled. Blocks the calling thread; cost: one
 * round trip per attempt on a kept-alive connection.
 */
json_t *kube_do(struct kube_client *c, const struct kube_request *req, struct kube_error *ke);

/*
 * Shorthands for kube_do() with the same ownership and errors (a new
 * reference, or NULL with ke); q may be NULL. kube_get reads an object or a
 * whole collection (prefer kube_list_each for large ones); kube_create
 * POSTs obj to the collection res; kube_replace PUTs obj over the object res
 * (its metadata.resourceVersion, if set, guards against a lost update:
 * 409 Conflict); kube_patch sends patch as `type`; kube_delete deletes and
 * returns the object (or a Status) the server answers with.
 */
json_t *kube_get(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                 struct kube_error *ke);
json_t *kube_create(struct kube_client *c, const struct kube_res *res, const json_t *obj,
                    const struct kube_query *q, struct kube_error *ke);
json_t *kube_replace(struct kube_client *c, const struct kube_res *res, const json_t *obj,
                     const struct kube_query *q, struct kube_error *ke);
json_t *kube_patch(struct kube_client *c, const struct kube_res *res, enum kube_patch_type type,
                   const json_t *patch, const struct kube_query *q, struct kube_error *ke);
json_t *kube_delete(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                    struct kube_error *ke);

/*
 * Lists a collection page by page (q->limit per page, default 500) and
 * calls fn for every item in order; fn returns 0 to continue or non-zero to
 * stop early (kube_list_each then returns that value). The item is borrowed
 * for the call (json_incref to keep it). If rv_out is not NULL it receives
 * the list's resourceVersion (malloc'd, caller frees) for a following watch.
 * Returns 0, fn's non-zero value, or -1 with ke. A continue token that
 * expires mid-way (410) is an error: the caller relists. Memory: one page's
 * text plus one decoded item at a time (items are decoded as fn consumes
 * them, never the whole page as one tree).
 */
typedef int (*kube_item_fn)(json_t *item, void *ud);
int kube_list_each(struct kube_client *c, const struct kube_res *res, const struct kube_query *q,
                   kube_item_fn fn, void *ud, char **rv_out, struct kube_error *ke);

/* ---- concurrent requests --------------------------------------------- */

/*
 * A batch runs many requests concurrently through curl's multi interface,
 * multiplexed over HTTP/2 (or several HTTP/1.1 connections), each with the
 * same retry policy as kube_do(). Use it to create hundreds of Jobs and
 * ConfigMaps at once. A batch belongs to one thread at a time; several
 * batches (and kube_do calls) may run concurrently on one client.
 */
struct kube_batch;

/* New empty batch with at most max_parallel requests in flight (<=0: the
 * client's default). Returns NULL with ke on allocation failure. */
struct kube_batch *kube_batch_new(struct kube_client *c, int max_parallel,
                                  struct kube_error *ke);

/*
 * Queues a copy of req (the body is serialised now; strings are copied).
 * Returns the request's index (0, 1, ...) or -1 with ke.
 */
int kube_batch_add(struct kube_batch *b, const struct kube_request *req, struct kube_error *ke);

/*
 * Runs every queued request not yet run and waits until all have finished
 * (succeeded, or failed after their retries). Returns the number that
 * failed (0 when all succeeded). May be called again after more adds.
 */
int kube_batch_run(struct kube_batch *b);

/*
 * Outcome of request i after kube_batch_run(): the decoded body as a new
 * reference, or NULL with ke filled (ke may be NULL when only success
 * matters). Decoding happens here, so callers that ignore bodies pay
 * nothing for them.
 */
json_t *kube_batch_result(struct kube_batch *b, int i, struct kube_error *ke);

/* Number of requests queued so far. */
int kube_batch_count(const struct kube_batch *b);

/* Frees the batch and every stored response. Safe on NULL. */
void kube_batch_free(struct kube_batch *b);

/* ---- streaming ------------------------------------------------------- */

/*
 * Called with each chunk of a streamed 2xx response body as it arrives
 * (chunks have arbitrary boundaries). Returns 0 to continue, non-zero to end
 * the stream (kube_stream then returns 0).
 */
typedef int (*kube_chunk_fn)(const char *data, size_t len, void *ud);

/*
 * Performs a GET whose body is delivered to fn as it arrives: the base of
 * watches (set `watch` to request ?watch=true). No overall timeout applies
 * (q.timeout_seconds asks the server to end it); a connection silent for
 * q.timeout_seconds + 30 s (5 minutes when unset) is dropped. `stop`, if not NULL, is polled at least once a second:
 * when non-zero the stream ends and kube_stream fails with KUBE_E_STOPPED.
 * A non-2xx answer is returned as an error with its Status (for example 410
 * Expired for a watch from a compacted resourceVersion). Not retried: the
 * caller decides how to resume. Returns 0 when the server closed the stream
 * or fn asked to end it; -1 with ke otherwise.
 */
int kube_stream(struct kube_client *c, const struct kube_request *req, int watch,
                kube_chunk_fn fn, void *ud, const atomic_int *stop, struct kube_error *ke);

#endif
