/*
 * kube_config: kubeconfig and in-cluster configuration; see kube_config.h.
 *
 * The kubeconfig YAML is first turned into a jansson tree by yamljson (every
 * scalar then made a string), then read by name. Several files are merged
 * by looking names up in each in order, as client-go does.
 */
#include "kube_config.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fileutil.h"
#include "strbuf.h"
#include "yamljson.h"

#define KUBECONFIG_MAX_BYTES (16u << 20)
#define KUBECONFIG_MAX_FILES 16

/* ---- YAML ------------------------------------------------------------ */

/*
 * kubeconfig values are all strings to client-go; yamljson types plain
 * scalars, so numbers and booleans are turned back into their text (a
 * numeric token or a context named 1 must still match).
 */
static int stringify_scalars(json_t *v)
{
    const char *key;
    json_t *child;
    size_t i;
    void *tmp;
    char buf[64];

    if (json_is_array(v)) {
        json_array_foreach(v, i, child) {
            if (stringify_scalars(child) < 0)
                return -1;
        }
        return 0;
    }
    json_object_foreach_safe(v, tmp, key, child) {
        if (json_is_integer(child))
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(child));
        else if (json_is_real(child))
            snprintf(buf, sizeof(buf), "%.17g", json_real_value(child));
        else if (json_is_boolean(child))
            snprintf(buf, sizeof(buf), "%s", json_is_true(child) ? "true" : "false");
        else if (stringify_scalars(child) < 0)
            return -1;
        else
            continue;
        if (json_object_set_new(v, key, json_string(buf)) < 0)
            return -1;
    }
    return 0;
}

/* Parses a kubeconfig text; an empty document is an empty mapping. */
static json_t *yaml_to_json(const char *text, size_t len, struct err *e)
{
    json_t *out = yamljson_parse(text, len, "malformed YAML", e);

    if (!out)
        return NULL;
    if (json_is_null(out)) {
        json_decref(out);
        out = json_object();
    }
    if (!json_is_object(out)) {
        json_decref(out);
        err_set(e, EINVAL, "not a kubeconfig (the top level is not a mapping)");
        return NULL;
    }
    if (stringify_scalars(out) < 0) {
        json_decref(out);
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    return out;
}

/* ---- helpers --------------------------------------------------------- */

static int set_str(char **dst, const char *s, struct err *e)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    if (s && !*dst)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/* Decodes standard base64, ignoring whitespace. Result NUL-terminated. */
static int base64_decode(const char *in, char **out, size_t *out_len)
{
    struct strbuf sb = STRBUF_INIT;
    unsigned int acc = 0;
    int bits = 0, pad = 0, rc = -1;
    const char *s;

    for (s = in; *s; s++) {
        const char *pos;
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            continue;
        if (*s == '=') {
            pad++;
            continue;
        }
        pos = strchr(alphabet, *s);
        if (!pos || pad)
            goto out;
        acc = (acc << 6) | (unsigned int)(pos - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (strbuf_addch(&sb, (char)((acc >> bits) & 0xff)) < 0)
                goto out;
        }
    }
    if (pad > 2 || bits >= 6)
        goto out;
    *out_len = sb.len;
    *out = strbuf_detach(&sb, NULL);
    rc = *out ? 0 : -1;
out:
    strbuf_release(&sb);
    return rc;
}

/* Makes p absolute against dir (when relative) and checks it is readable. */
static int resolve_file(char **dst, const char *p, const char *dir, const char *what,
                        struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    int rc = -1;

    if (p[0] != '/' && dir && *dir && (strbuf_adds(&sb, dir) < 0 || strbuf_addch(&sb, '/') < 0))
        goto nomem;
    if (strbuf_adds(&sb, p) < 0)
        goto nomem;
    if (access(sb.buf, R_OK) < 0) {
        err_errno(e, errno, "%s %s", what, sb.buf);
        goto out;
    }
    rc = set_str(dst, sb.buf, e);
    goto out;
nomem:
    err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&sb);
    return rc;
}

/* A string member, NULL if absent, null or empty. */
static const char *member(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s && *s ? s : NULL;
}

/* ---- kubeconfig ------------------------------------------------------ */

/* One parsed file of a (possibly merged) kubeconfig. */
struct kc_file {
    json_t *doc;
    char *dir;     /* directory, for relative paths */
};

struct kc {
    struct kc_file files[KUBECONFIG_MAX_FILES];
    int n;
};

/*
 * Finds the entry named `want` in list `section` ("clusters", ...) of the
 * first file that has it. Returns 1 and sets *m to its `inner` map (NULL if
 * it has none: every lookup in it then finds nothing) and *dir to the
 * directory of the file that held it; 0 when no file has it.
 */
static int kc_find(const struct kc *kc, const char *section, const char *inner,
                   const char *want, const json_t **m, const char **dir)
{
    const json_t *item;
    size_t i;
    int f;

    for (f = 0; f < kc->n; f++) {
        json_array_foreach(json_object_get(kc->files[f].doc, section), i, item) {
            const char *n = member(item, "name");

            if (!n || strcmp(n, want) != 0)
                continue;
            *dir = kc->files[f].dir;
            *m = json_object_get(item, inner);
            return 1;
        }
    }
    return 0;
}

/* Reads KEY-data (base64) or KEY (a file), whichever is present. */
static int kc_pem(const json_t *m, const char *file_key, const char *data_key, char **file,
                  char **data, size_t *data_len, const char *dir, struct err *e)
{
    const char *v;

    if ((v = member(m, data_key))) {
        if (base64_decode(v, data, data_len) < 0)
            return err_set(e, EINVAL, "%s is not valid base64", data_key);
        return 0;
    }
    if ((v = member(m, file_key)))
        return resolve_file(file, v, dir, file_key, e);
    return 0;
}

static int kc_cluster(struct kube_config *cfg, const struct kc *kc, const char *cname,
                      struct err *e)
{
    const char *dir = NULL, *server, *skip;
    const json_t *cl = NULL;
    size_t len;

    if (!kc_find(kc, "clusters", "cluster", cname, &cl, &dir))
        return err_set(e, EINVAL, "cluster \"%s\" not found", cname);
    server = member(cl, "server");
    if (!server)
        return err_set(e, EINVAL, "cluster \"%s\" has no server", cname);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return err_set(e, EINVAL, "cluster \"%s\": server \"%s\" is not an http(s) URL",
                       cname, server);
    if (set_str(&cfg->server, server, e) < 0)
        return -1;
    len = strlen(cfg->server);
    while (len > 0 && cfg->server[len - 1] == '/')
        cfg->server[--len] = '\0';
    skip = member(cl, "insecure-skip-tls-verify");
    cfg->insecure_skip_tls_verify = skip && strcmp(skip, "true") == 0;
    if (set_str(&cfg->tls_server_name, member(cl, "tls-server-name"), e) < 0)
        return -1;
    if (kc_pem(cl, "certificate-authority", "certificate-authority-data", &cfg->ca_file,
               &cfg->ca_data, &cfg->ca_data_len, dir, e) < 0)
        return err_prefix(e, "cluster \"%s\"", cname);
    return 0;
}

static int kc_user(struct kube_config *cfg, const struct kc *kc, const char *uname,
                   struct err *e)
{
    const char *dir = NULL, *v;
    const json_t *u = NULL;

    if (!kc_find(kc, "users", "user", uname, &u, &dir))
        return err_set(e, EINVAL, "user \"%s\" not found", uname);
    if (kc_pem(u, "client-certificate", "client-certificate-data", &cfg->cert_file,
               &cfg->cert_data, &cfg->cert_data_len, dir, e) < 0
        || kc_pem(u, "client-key", "client-key-data", &cfg->key_file, &cfg->key_data,
                  &cfg->key_data_len, dir, e) < 0)
        return err_prefix(e, "user \"%s\"", uname);
    if (!!(cfg->cert_file || cfg->cert_data) != !!(cfg->key_file || cfg->key_data))
        return err_set(e, EINVAL, "user \"%s\": a client certificate needs its key and a "
                       "key its certificate", uname);
    if (set_str(&cfg->token, member(u, "token"), e) < 0)
        return -1;
    if (!cfg->token && (v = member(u, "tokenFile"))
        && resolve_file(&cfg->token_file, v, dir, "tokenFile", e) < 0)
        return err_prefix(e, "user \"%s\"", uname);
    if (set_str(&cfg->username, member(u, "username"), e) < 0
        || set_str(&cfg->password, member(u, "password"), e) < 0)
        return -1;
    if (!cfg->token && !cfg->token_file && !cfg->cert_file && !cfg->cert_data
        && !cfg->username && (json_object_get(u, "exec") || json_object_get(u, "auth-provider")))
        return err_set(e, EINVAL, "user \"%s\": exec and auth-provider credential plugins "
                       "are not supported", uname);
    return 0;
}

/* Resolves the context, its cluster and its user from parsed files. */
static int kc_resolve(struct kube_config *cfg, const struct kc *kc, const char *context,
                      struct err *e)
{
    const char *dir = NULL, *name = context, *cluster, *user;
    const json_t *ctx = NULL;
    int f;

    for (f = 0; !name && f < kc->n; f++)
        name = member(kc->files[f].doc, "current-context");
    if (!name)
        return err_set(e, EINVAL, "no current-context is set and no context was named");
    if (!kc_find(kc, "contexts", "context", name, &ctx, &dir))
        return err_set(e, EINVAL, "context \"%s\" not found", name);
    cluster = member(ctx, "cluster");
    user = member(ctx, "user");
    if (!cluster)
        return err_set(e, EINVAL, "context \"%s\" names no cluster", name);
    if (set_str(&cfg->context, name, e) < 0
        || set_str(&cfg->namespace, member(ctx, "namespace") ?: "default", e) < 0)
        return -1;
    if (kc_cluster(cfg, kc, cluster, e) < 0 || (user && kc_user(cfg, kc, user, e) < 0))
        return err_prefix(e, "context \"%s\"", name);
    return 0;
}

static void kc_release(struct kc *kc)
{
    int f;

    for (f = 0; f < kc->n; f++) {
        json_decref(kc->files[f].doc);
        free(kc->files[f].dir);
    }
    kc->n = 0;
}

static int kc_add(struct kc *kc, const char *yaml, size_t len, const char *dir, struct err *e)
{
    struct kc_file *f;

    if (kc->n >= KUBECONFIG_MAX_FILES)
        return err_set(e, EINVAL, "more than %d kubeconfig files", KUBECONFIG_MAX_FILES);
    f = &kc->files[kc->n];
    f->doc = yaml_to_json(yaml, len, e);
    if (!f->doc)
        return -1;
    f->dir = strdup(dir && *dir ? dir : ".");
    kc->n++;
    if (!f->dir)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/*
 * Finishes a load: resolves the context, names the source in an error, and
 * on failure releases the half-filled config.
 */
static int finish(struct kube_config *cfg, struct kc *kc, int rc, const char *context,
                  const char *source, struct err *e)
{
    if (rc == 0)
        rc = kc_resolve(cfg, kc, context, e);
    if (rc == 0)
        rc = set_str(&cfg->source, source, e);
    kc_release(kc);
    if (rc < 0) {
        kube_config_release(cfg);
        return err_prefix(e, "kubeconfig %s", source);
    }
    return 0;
}

int kube_config_parse(struct kube_config *cfg, const char *yaml, size_t len, const char *name,
                      const char *base_dir, const char *context, struct err *e)
{
    struct kc kc = { .n = 0 };

    memset(cfg, 0, sizeof(*cfg));
    return finish(cfg, &kc, kc_add(&kc, yaml, len, base_dir, e), context,
                  name ? name : "(memory)", e);
}

/* Adds one file to kc. In a list, a file that does not exist is skipped. */
static int kc_add_file(struct kc *kc, const char *path, int optional, struct err *e)
{
    struct strbuf text = STRBUF_INIT, dir = STRBUF_INIT;
    const char *slash = strrchr(path, '/');
    int rc = 0;

    if (optional && access(path, F_OK) < 0 && errno == ENOENT)
        return 0;
    if (slash && strbuf_add(&dir, path, slash == path ? 1 : (size_t)(slash - path)) < 0)
        rc = err_set(e, ENOMEM, "out of memory");
    if (rc == 0)
        rc = fileutil_read(path, &text, KUBECONFIG_MAX_BYTES, e);
    if (rc == 0 && kc_add(kc, text.buf, text.len, dir.buf, e) < 0)
        rc = kc->n > 1 || optional ? err_prefix(e, "%s", path) : -1;
    strbuf_release(&text);
    strbuf_release(&dir);
    return rc;
}

int kube_config_from_file(struct kube_config *cfg, const char *paths, const char *context,
                          struct err *e)
{
    struct kc kc = { .n = 0 };
    struct strbuf one = STRBUF_INIT;
    const char *p = paths, *colon;
    int rc = 0, several = strchr(paths, ':') != NULL;

    memset(cfg, 0, sizeof(*cfg));
    while (rc == 0 && *p) {
        colon = strchr(p, ':');
        strbuf_reset(&one);
        if (strbuf_add(&one, p, colon ? (size_t)(colon - p) : strlen(p)) < 0)
            rc = err_set(e, ENOMEM, "out of memory");
        else if (one.len)
            rc = kc_add_file(&kc, one.buf, several, e);
        p = colon ? colon + 1 : p + strlen(p);
    }
    if (rc == 0 && kc.n == 0)
        rc = err_set(e, ENOENT, "none of the files exists");
    strbuf_release(&one);
    return finish(cfg, &kc, rc, context, paths, e);
}

/* ---- in-cluster ------------------------------------------------------ */

int kube_config_in_cluster(struct kube_config *cfg, const char *sa_dir, struct err *e)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    struct strbuf sb = STRBUF_INIT, ns = STRBUF_INIT;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    sa_dir = sa_dir ? sa_dir : KUBE_CONFIG_SA_DIR;
    if (!host || !*host || !port || !*port) {
        err_set(e, EINVAL, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both "
                "be set");
        goto out;
    }
    /* An IPv6 literal needs brackets in a URL. */
    if (strbuf_addf(&sb, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
                    port) < 0 || set_str(&cfg->server, sb.buf, e) < 0)
        goto nomem;
    if (resolve_file(&cfg->token_file, "token", sa_dir, "service-account token", e) < 0
        || resolve_file(&cfg->ca_file, "ca.crt", sa_dir, "service-account CA", e) < 0)
        goto out;
    strbuf_reset(&sb);
    if (strbuf_addf(&sb, "%s/namespace", sa_dir) < 0)
        goto nomem;
    if (access(sb.buf, R_OK) == 0 && fileutil_read(sb.buf, &ns, 4096, e) < 0)
        goto out;
    while (ns.len && (ns.buf[ns.len - 1] == '\n' || ns.buf[ns.len - 1] == ' '))
        strbuf_setlen(&ns, ns.len - 1);
    if (set_str(&cfg->namespace, ns.len ? ns.buf : "default", e) < 0
        || set_str(&cfg->source, "in-cluster", e) < 0)
        goto out;
    rc = 0;
    goto out;
nomem:
    err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&sb);
    strbuf_release(&ns);
    if (rc < 0) {
        kube_config_release(cfg);
        err_prefix(e, "in-cluster configuration");
    }
    return rc;
}

/* ---- default loading rules ------------------------------------------- */

int kube_config_load(struct kube_config *cfg, const char *kubeconfig_flag, const char *context,
                     struct err *e)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    struct strbuf path = STRBUF_INIT;
    struct passwd *pw;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if (kubeconfig_flag && *kubeconfig_flag)
        return kube_config_from_file(cfg, kubeconfig_flag, context, e);
    if (env && *env)
        return kube_config_from_file(cfg, env, context, e);
    if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST"))
        return kube_config_in_cluster(cfg, NULL, e);
    if (!home || !*home) {
        pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home)
        return err_set(e, ENOENT, "no Kubernetes configuration: no --kubeconfig, "
                       "$KUBECONFIG or KUBERNETES_SERVICE_HOST, and no home directory");
    if (strbuf_addf(&path, "%s/.kube/config", home) < 0)
        return err_set(e, ENOMEM, "out of memory");
    if (access(path.buf, F_OK) < 0)
        rc = err_set(e, ENOENT, "no Kubernetes configuration: no --kubeconfig, $KUBECONFIG "
                     "or KUBERNETES_SERVICE_HOST, and no %s", path.buf);
    else
        rc = kube_config_from_file(cfg, path.buf, context, e);
    strbuf_release(&path);
    return rc;
}

void kube_config_release(struct kube_config *cfg)
{
    char **fields[] = { &cfg->source, &cfg->context, &cfg->server, &cfg->namespace,
                        &cfg->ca_file, &cfg->ca_data, &cfg->tls_server_name,
                        &cfg->cert_file, &cfg->key_file, &cfg->cert_data, &cfg->key_data,
                        &cfg->token, &cfg->token_file, &cfg->username, &cfg->password };
    size_t i;

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        free(*fields[i]);
    memset(cfg, 0, sizeof(*cfg));
}

/* Copies len bytes (+NUL) of binary-safe PEM data. */
static int dup_data(char **dst, const char *src, size_t len)
{
    if (!src)
        return 0;
    *dst = malloc(len + 1);
    if (!*dst)
        return -1;
    memcpy(*dst, src, len);
    (*dst)[len] = '\0';
    return 0;
}

int kube_config_copy(struct kube_config *dst, const struct kube_config *src, struct err *e)
{
    int rc = 0;

    memset(dst, 0, sizeof(*dst));
    dst->insecure_skip_tls_verify = src->insecure_skip_tls_verify;
    dst->ca_data_len = src->ca_data_len;
    dst->cert_data_len = src->cert_data_len;
    dst->key_data_len = src->key_data_len;
    rc |= set_str(&dst->source, src->source, e);
    rc |= set_str(&dst->context, src->context, e);
    rc |= set_str(&dst->server, src->server, e);
    rc |= set_str(&dst->namespace, src->namespace, e);
    rc |= set_str(&dst->ca_file, src->ca_file, e);
    rc |= set_str(&dst->tls_server_name, src->tls_server_name, e);
    rc |= set_str(&dst->cert_file, src->cert_file, e);
    rc |= set_str(&dst->key_file, src->key_file, e);
    rc |= set_str(&dst->token, src->token, e);
    rc |= set_str(&dst->token_file, src->token_file, e);
    rc |= set_str(&dst->username, src->username, e);
    rc |= set_str(&dst->password, src->password, e);
    rc |= dup_data(&dst->ca_data, src->ca_data, src->ca_data_len);
    rc |= dup_data(&dst->cert_data, src->cert_data, src->cert_data_len);
    rc |= dup_data(&dst->key_data, src->key_data, src->key_data_len);
    if (rc) {
        kube_config_release(dst);
        return err_set(e, ENOMEM, "out of memory copying a Kubernetes configuration");
    }
    return 0;
}
