/*
 * kube: the Kubernetes API client; see kube.h.
 * Work in progress: request entry points not yet written fail with
 * KUBE_E_NOT_IMPLEMENTED.
 */
#include "kube.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

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

int kube_error_from_response(struct kube_error *ke, const char *what, long http,
                             const char *body, size_t len)
{
    json_t *status = NULL;
    json_error_t jerr;
    int code;

    if (!ke)
        return -1;
    kube_error_clear(ke);
    ke->http = (int)http;
    if (body && len)
        status = json_loadb(body, len, 0, &jerr);
    if (json_is_object(status) && json_object_get(status, "kind")
        && strcmp(json_string_value(json_object_get(status, "kind")) ?: "", "Status") == 0) {
        copy_member(ke->reason, sizeof(ke->reason), status, "reason");
        copy_member(ke->message, sizeof(ke->message), status, "message");
        parse_causes(ke, status);
        /* An ERROR event inside a 200 watch stream carries the real code. */
        code = (int)json_integer_value(json_object_get(status, "code"));
        if (code >= 400 && http < 400)
            ke->http = code;
    } else if (body && len) {
        quote_body(ke->message, sizeof(ke->message), body, len);
    }
    json_decref(status);
    if (!ke->reason[0] && ke->http == 410)
        snprintf(ke->reason, sizeof(ke->reason), "Gone");
    return err_set(&ke->err, ke->http, "%s: %d %s%s%s", what ? what : "request", ke->http,
                   ke->reason[0] ? ke->reason : "error", ke->message[0] ? ": " : "",
                   ke->message);
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


struct kube_client *kube_client_new(const struct kube_config *cfg, const struct kube_client_opts *opts, struct kube_error *ke)
{
    (void)cfg;
    (void)opts;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_client_new: not implemented");
    return NULL;
}

void kube_client_free(struct kube_client *c)
{
    (void)c;
}

const char *kube_client_namespace(const struct kube_client *c)
{
    (void)c;
    return NULL;
}

const char *kube_client_server(const struct kube_client *c)
{
    (void)c;
    return NULL;
}

json_t *kube_do(struct kube_client *c, const struct kube_request *req, struct kube_error *ke)
{
    (void)c;
    (void)req;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_do: not implemented");
    return NULL;
}

json_t *kube_get(struct kube_client *c, const struct kube_res *res, const struct kube_query *q, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)q;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_get: not implemented");
    return NULL;
}

json_t *kube_create(struct kube_client *c, const struct kube_res *res, const json_t *obj, const struct kube_query *q, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)obj;
    (void)q;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_create: not implemented");
    return NULL;
}

json_t *kube_replace(struct kube_client *c, const struct kube_res *res, const json_t *obj, const struct kube_query *q, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)obj;
    (void)q;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_replace: not implemented");
    return NULL;
}

json_t *kube_patch(struct kube_client *c, const struct kube_res *res, enum kube_patch_type type, const json_t *patch, const struct kube_query *q, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)type;
    (void)patch;
    (void)q;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_patch: not implemented");
    return NULL;
}

json_t *kube_delete(struct kube_client *c, const struct kube_res *res, const struct kube_query *q, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)q;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_delete: not implemented");
    return NULL;
}

int kube_list_each(struct kube_client *c, const struct kube_res *res, const struct kube_query *q, kube_item_fn fn, void *ud, char **rv_out, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)q;
    (void)fn;
    (void)ud;
    (void)rv_out;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_list_each: not implemented");
    return -1;
}

struct kube_batch *kube_batch_new(struct kube_client *c, int max_parallel, struct kube_error *ke)
{
    (void)c;
    (void)max_parallel;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_batch_new: not implemented");
    return NULL;
}

int kube_batch_add(struct kube_batch *b, const struct kube_request *req, struct kube_error *ke)
{
    (void)b;
    (void)req;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_batch_add: not implemented");
    return -1;
}

int kube_batch_run(struct kube_batch *b)
{
    (void)b;
    return -1;
}

json_t *kube_batch_result(struct kube_batch *b, int i, struct kube_error *ke)
{
    (void)b;
    (void)i;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_batch_result: not implemented");
    return NULL;
}

int kube_batch_count(const struct kube_batch *b)
{
    (void)b;
    return -1;
}

void kube_batch_free(struct kube_batch *b)
{
    (void)b;
}

int kube_stream(struct kube_client *c, const struct kube_request *req, int watch, kube_chunk_fn fn, void *ud, const atomic_int *stop, struct kube_error *ke)
{
    (void)c;
    (void)req;
    (void)watch;
    (void)fn;
    (void)ud;
    (void)stop;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_stream: not implemented");
    return -1;
}
