/* podspec: a Pod's container resolved to argv, environment, mounts and limits; see podspec.h. */
#include "podspec.h"

#include "quantity.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_TERMINATION_PATH "/dev/termination-log"

/* A growable NULL-terminated list of "NAME=value" strings. */
struct envlist {
    char **v;
    size_t n, alloc;
};

/* ConfigMaps and Secrets fetched while building one container. */
struct objcache {
    const struct podspec_getter *get;
    const char *ns;
    struct { const char *resource; char *name; json_t *obj; } *items;
    size_t n;
};

/* Sets a PODSPEC_ECONFIG error: the pod cannot run as written. Returns -1. */
static int config_err(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int config_err(struct err *e, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    err_set(e, PODSPEC_ECONFIG, "%s", sb.buf);
    strbuf_release(&sb);
    return -1;
}

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int env_valid_name(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

static const char *env_lookup(char *const *v, size_t n, const char *name, size_t name_len)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strncmp(v[i], name, name_len) == 0 && v[i][name_len] == '=')
            return v[i] + name_len + 1;
    return NULL;
}

/* Sets name to len bytes of value, replacing an earlier entry. */
static int env_set(struct envlist *l, const char *name, const char *value, size_t len)
{
    struct strbuf sb = STRBUF_INIT;
    size_t nlen = strlen(name), i;

    if (strbuf_adds(&sb, name) || strbuf_addch(&sb, '=') || strbuf_add(&sb, value, len))
        goto fail;
    for (i = 0; i < l->n; i++) {
        if (strncmp(l->v[i], name, nlen) == 0 && l->v[i][nlen] == '=') {
            free(l->v[i]);
            l->v[i] = strbuf_detach(&sb, NULL);
            return 0;
        }
    }
    if (l->n + 2 > l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 16;
        char **nv = realloc(l->v, na * sizeof(*nv));

        if (!nv)
            goto fail;
        l->v = nv;
        l->alloc = na;
    }
    l->v[l->n++] = strbuf_detach(&sb, NULL);
    l->v[l->n] = NULL;
    return 0;
fail:
    strbuf_release(&sb);
    return -1;
}

static void strv_free(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int podspec_expand(const char *s, char *const *envp, size_t n_env, struct strbuf *out)
{
    while (*s) {
        const char *close, *val;

        if (s[0] != '$') {
            if (strbuf_addch(out, *s++))
                return -1;
            continue;
        }
        if (s[1] == '$') {
            if (strbuf_addch(out, '$'))
                return -1;
            s += 2;
            continue;
        }
        close = s[1] == '(' ? strchr(s + 2, ')') : NULL;
        val = close ? env_lookup(envp, n_env, s + 2, (size_t)(close - s - 2)) : NULL;
        if (val) {
            if (strbuf_adds(out, val))
                return -1;
            s = close + 1;
        } else if (close) {
            if (strbuf_add(out, s, (size_t)(close + 1 - s)))
                return -1;
            s = close + 1;
        } else {
            if (strbuf_addch(out, *s++))
                return -1;
        }
    }
    return 0;
}

static int base64_decode(const char *in, struct strbuf *out)
{
    size_t len = strlen(in), pad = 0;
    int n;

    if (len % 4)
        return -1;
    if (strbuf_grow(out, len / 4 * 3 + 1) < 0)
        return -1;
    if (len == 0)
        return 0;
    n = EVP_DecodeBlock((unsigned char *)out->buf + out->len, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the bytes the '=' padding stands for. */
    while (pad < 2 && in[len - 1 - pad] == '=')
        pad++;
    strbuf_setlen(out, out->len + (size_t)n - pad);
    return 0;
}

int podspec_key_value(const json_t *obj, int is_secret, const char *key, struct strbuf *out,
                      struct err *e)
{
    const char *v = is_secret ? NULL : str(json_object_get(obj, "data"), key);

    if (v)
        return strbuf_adds(out, v) < 0 ? err_set(e, ENOMEM, "out of memory") : 1;
    v = str(json_object_get(obj, is_secret ? "data" : "binaryData"), key);
    if (!v)
        return 0;
    if (base64_decode(v, out) < 0) {
        config_err(e, "key %s is not valid base64", key);
        return -1;
    }
    return 1;
}

/* Fetches (once per build) the ConfigMap or Secret `name`; NULL with *missing or e. */
static json_t *cache_get(struct objcache *oc, const char *resource, const char *name,
                         int *missing, struct err *e)
{
    size_t i;
    json_t *obj;
    void *ni;

    *missing = 0;
    for (i = 0; i < oc->n; i++)
        if (oc->items[i].resource == resource && strcmp(oc->items[i].name, name) == 0) {
            *missing = !oc->items[i].obj;
            return oc->items[i].obj;
        }
    obj = oc->get->get(oc->get->arg, resource, oc->ns, name, missing, e);
    if (!obj && !*missing)
        return NULL;
    ni = realloc(oc->items, (oc->n + 1) * sizeof(*oc->items));
    if (!ni) {
        json_decref(obj);
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    oc->items = ni;
    oc->items[oc->n].resource = resource;
    oc->items[oc->n].name = strdup(name);
    oc->items[oc->n].obj = obj;
    oc->n++;
    return obj;
}

static void cache_free(struct objcache *oc)
{
    size_t i;

    for (i = 0; i < oc->n; i++) {
        free(oc->items[i].name);
        json_decref(oc->items[i].obj);
    }
    free(oc->items);
}

/* A {name, key?, optional} reference to a ConfigMap or a Secret. */
struct objref {
    const char *resource;      /* "configmaps" or "secrets" */
    const char *kind;          /* for messages */
    const char *name;
    int optional;
};

static void objref_parse(struct objref *r, const json_t *ref, int is_secret)
{
    r->resource = is_secret ? "secrets" : "configmaps";
    r->kind = is_secret ? "secret" : "configmap";
    r->name = str(ref, "name");
    r->optional = json_is_true(json_object_get(ref, "optional"));
}

/* Returns the object, or NULL: with *skip when optional and absent, else with e. */
static json_t *objref_get(struct objcache *oc, const struct objref *r, int *skip, struct err *e)
{
    int missing;
    json_t *obj;

    *skip = 0;
    if (!r->name) {
        config_err(e, "a %s reference without a name", r->kind);
        return NULL;
    }
    obj = cache_get(oc, r->resource, r->name, &missing, e);
    if (obj || !missing)
        return obj;
    if (r->optional)
        *skip = 1;
    else
        config_err(e, "%s \"%s\" not found", r->kind, r->name);
    return NULL;
}

static int add_env_from(struct envlist *env, struct objcache *oc, const json_t *from,
                        struct err *e)
{
    const json_t *cm = json_object_get(from, "configMapRef");
    const json_t *sec = json_object_get(from, "secretRef");
    const char *prefix = str(from, "prefix"), *key;
    struct strbuf name = STRBUF_INIT, val = STRBUF_INIT;
    struct objref ref;
    json_t *obj, *v;
    int skip, rc = -1;

    if (!cm && !sec)
        return config_err(e, "envFrom: only configMapRef and secretRef are supported");
    objref_parse(&ref, cm ? cm : sec, sec != NULL);
    obj = objref_get(oc, &ref, &skip, e);
    if (!obj) {
        rc = skip ? 0 : -1;
        goto out;
    }
    json_object_foreach(json_object_get(obj, "data"), key, v) {
        strbuf_reset(&name);
        strbuf_reset(&val);
        if (strbuf_adds(&name, prefix ? prefix : "") || strbuf_adds(&name, key))
            goto oom;
        /* The kubelet skips keys that are not valid variable names. */
        if (!env_valid_name(name.buf))
            continue;
        if (podspec_key_value(obj, sec != NULL, key, &val, e) < 0)
            goto out;
        if (env_set(env, name.buf, val.buf, val.len))
            goto oom;
    }
    rc = 0;
    goto out;
oom:
    err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&name);
    strbuf_release(&val);
    return rc;
}

/* Reads "metadata.labels['key']" style paths: the key between [' and ']. */
static const char *subscript(const char *path, const char *prefix, char *key, size_t keysz)
{
    size_t plen = strlen(prefix), klen;

    if (strncmp(path, prefix, plen) != 0 || strncmp(path + plen, "['", 2) != 0)
        return NULL;
    klen = strlen(path + plen + 2);
    if (klen < 2 || strcmp(path + plen + 2 + klen - 2, "']") != 0 || klen - 2 >= keysz)
        return NULL;
    memcpy(key, path + plen + 2, klen - 2);
    key[klen - 2] = '\0';
    return key;
}

/* Resolves a fieldRef path; NULL with e when unsupported. "" for an absent label. */
static const char *field_value(const json_t *pod, const struct podspec_host *host,
                               const char *path, struct err *e)
{
    const json_t *meta = json_object_get(pod, "metadata");
    const json_t *spec = json_object_get(pod, "spec");
    char key[256];
    const char *v;

    if (strcmp(path, "metadata.name") == 0)
        return str(meta, "name");
    if (strcmp(path, "metadata.namespace") == 0)
        return str(meta, "namespace");
    if (strcmp(path, "metadata.uid") == 0)
        return str(meta, "uid");
    if (strcmp(path, "spec.nodeName") == 0)
        return str(spec, "nodeName");
    if (strcmp(path, "spec.serviceAccountName") == 0)
        return (v = str(spec, "serviceAccountName")) ? v : "";
    if (strcmp(path, "status.podIP") == 0 || strcmp(path, "status.podIPs") == 0 ||
        strcmp(path, "status.hostIP") == 0)
        return host->pod_ip;
    if (subscript(path, "metadata.labels", key, sizeof(key)))
        return (v = str(json_object_get(meta, "labels"), key)) ? v : "";
    if (subscript(path, "metadata.annotations", key, sizeof(key)))
        return (v = str(json_object_get(meta, "annotations"), key)) ? v : "";
    config_err(e, "fieldRef %s is not supported by the node agent", path);
    return NULL;
}

/* Sets one env[] entry from its value or valueFrom. */
static int add_env_var(struct envlist *env, struct objcache *oc, const json_t *pod,
                       const struct podspec_host *host, const json_t *var, struct err *e)
{
    const char *name = str(var, "name"), *v;
    const json_t *from = json_object_get(var, "valueFrom"), *ref;
    struct strbuf val = STRBUF_INIT;
    struct objref oref;
    json_t *obj;
    int rc = -1, skip, found;

    if (!name)
        return config_err(e, "an env entry without a name");
    if (!from) {
        v = str(var, "value");
        if (podspec_expand(v ? v : "", env->v, env->n, &val))
            goto oom;
    } else if ((ref = json_object_get(from, "fieldRef"))) {
        v = field_value(pod, host, str(ref, "fieldPath") ? str(ref, "fieldPath") : "", e);
        if (!v)
            goto out;
        if (strbuf_adds(&val, v))
            goto oom;
    } else if ((ref = json_object_get(from, "configMapKeyRef")) ||
               (ref = json_object_get(from, "secretKeyRef"))) {
        int is_secret = json_object_get(from, "secretKeyRef") != NULL;
        const char *key = str(ref, "key");

        objref_parse(&oref, ref, is_secret);
        obj = objref_get(oc, &oref, &skip, e);
        if (!obj) {
            rc = skip ? 0 : -1;
            goto out;
        }
        found = podspec_key_value(obj, is_secret, key ? key : "", &val, e);
        if (found < 0)
            goto out;
        if (!found) {
            if (oref.optional) {
                rc = 0;
                goto out;
            }
            config_err(e, "env %s: key \"%s\" not found in %s \"%s\"", name,
                    key ? key : "", oref.kind, oref.name);
            goto out;
        }
    } else {
        config_err(e, "env %s: only fieldRef, configMapKeyRef and secretKeyRef are supported",
                   name);
        goto out;
    }
    if (env_set(env, name, val.buf, val.len))
        goto oom;
    rc = 0;
    goto out;
oom:
    err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&val);
    return rc;
}

/* Searches PATH (from the container's environment) for a program name without a '/'. */
static char *resolve_exec(const char *prog, const struct envlist *env)
{
    const char *path = env_lookup(env->v, env->n, "PATH", 4), *p, *colon;
    struct strbuf sb = STRBUF_INIT;

    if (strchr(prog, '/') || !path)
        return strdup(prog);
    for (p = path; *p; p = *colon ? colon + 1 : colon) {
        colon = strchrnul(p, ':');
        strbuf_reset(&sb);
        strbuf_add(&sb, p, (size_t)(colon - p));
        strbuf_addch(&sb, '/');
        strbuf_adds(&sb, prog);
        if (access(sb.buf, X_OK) == 0)
            return strbuf_detach(&sb, NULL);
    }
    strbuf_release(&sb);
    return strdup(prog);
}

/* Builds argv from command + args, each expanded with the final environment. */
static int build_argv(struct podspec_container *c, const json_t *container,
                      const struct envlist *env, struct err *e)
{
    const json_t *lists[2] = { json_object_get(container, "command"),
                               json_object_get(container, "args") };
    struct strbuf sb = STRBUF_INIT;
    size_t n = json_array_size(lists[0]) + json_array_size(lists[1]), k = 0, i, j;
    const json_t *item;

    if (json_array_size(lists[0]) == 0)
        return config_err(e, "container %s has no command: the node agent runs commands, "
                          "not images", c->name);
    c->argv = calloc(n + 1, sizeof(char *));
    if (!c->argv)
        return err_set(e, ENOMEM, "out of memory");
    for (i = 0; i < 2; i++) {
        json_array_foreach(lists[i], j, item) {
            strbuf_reset(&sb);
            if (podspec_expand(json_string_value(item) ? json_string_value(item) : "", env->v,
                               env->n, &sb) ||
                !(c->argv[k++] = strbuf_detach(&sb, NULL))) {
                strbuf_release(&sb);
                return err_set(e, ENOMEM, "out of memory");
            }
        }
    }
    c->exec_path = resolve_exec(c->argv[0], env);
    return c->exec_path ? 0 : err_set(e, ENOMEM, "out of memory");
}

static int build_mounts(struct podspec_container *c, const json_t *container, struct err *e)
{
    const json_t *mounts = json_object_get(container, "volumeMounts"), *m;
    size_t i;

    c->mounts = calloc(json_array_size(mounts) + 1, sizeof(*c->mounts));
    if (!c->mounts)
        return err_set(e, ENOMEM, "out of memory");
    json_array_foreach(mounts, i, m) {
        struct podspec_mount *pm = &c->mounts[c->n_mounts++];
        const char *sub = str(m, "subPath");

        if (!str(m, "name") || !str(m, "mountPath") || str(m, "mountPath")[0] != '/')
            return config_err(e, "container %s: a volumeMount needs a name and an absolute "
                              "mountPath", c->name);
        if (sub && (sub[0] == '/' || strstr(sub, "..")))
            return config_err(e, "container %s: subPath %s must be relative, without ..",
                              c->name, sub);
        pm->volume = strdup(str(m, "name"));
        pm->path = strdup(str(m, "mountPath"));
        pm->sub_path = sub && *sub ? strdup(sub) : NULL;
        pm->read_only = json_is_true(json_object_get(m, "readOnly"));
        if (!pm->volume || !pm->path || (sub && *sub && !pm->sub_path))
            return err_set(e, ENOMEM, "out of memory");
    }
    return 0;
}

/* A securityContext integer from the container, else the pod. */
static const json_t *sec_field(const json_t *pod_sc, const json_t *c_sc, const char *key)
{
    const json_t *v = json_object_get(c_sc, key);

    return v ? v : json_object_get(pod_sc, key);
}

static int build_security(struct podspec_container *c, const json_t *pod,
                          const json_t *container, struct err *e)
{
    const json_t *pod_sc = json_object_get(json_object_get(pod, "spec"), "securityContext");
    const json_t *c_sc = json_object_get(container, "securityContext");
    const json_t *uid = sec_field(pod_sc, c_sc, "runAsUser");
    const json_t *gid = sec_field(pod_sc, c_sc, "runAsGroup");
    const json_t *sup = json_object_get(pod_sc, "supplementalGroups"), *g;
    const json_t *fs = json_object_get(pod_sc, "fsGroup");
    size_t i;

    c->run_as_user_set = json_is_integer(uid);
    c->run_as_user = (uid_t)json_integer_value(uid);
    c->run_as_group_set = json_is_integer(gid);
    c->run_as_group = (gid_t)json_integer_value(gid);
    if (json_is_true(sec_field(pod_sc, c_sc, "runAsNonRoot")) &&
        (!c->run_as_user_set || c->run_as_user == 0))
        return config_err(e, "container %s has runAsNonRoot and would run as root", c->name);
    c->groups = calloc(json_array_size(sup) + 1, sizeof(gid_t));
    if (!c->groups)
        return err_set(e, ENOMEM, "out of memory");
    json_array_foreach(sup, i, g)
        c->groups[c->n_groups++] = (gid_t)json_integer_value(g);
    if (json_is_integer(fs))
        c->groups[c->n_groups++] = (gid_t)json_integer_value(fs);
    return 0;
}

static int base_env(struct envlist *env, const json_t *pod, const struct podspec_host *host,
                    const struct podspec_container *c)
{
    const char *hostname = str(json_object_get(pod, "spec"), "hostname");
    const char *home = c->run_as_user_set && c->run_as_user != 0 ? "/" : "/root";

    if (!hostname)
        hostname = str(json_object_get(pod, "metadata"), "name");
    if (env_set(env, "PATH", DEFAULT_PATH, strlen(DEFAULT_PATH)) ||
        env_set(env, "HOSTNAME", hostname ? hostname : "", hostname ? strlen(hostname) : 0) ||
        env_set(env, "HOME", home, strlen(home)))
        return -1;
    if (host->api_host && host->api_port &&
        (env_set(env, "KUBERNETES_SERVICE_HOST", host->api_host, strlen(host->api_host)) ||
         env_set(env, "KUBERNETES_SERVICE_PORT", host->api_port, strlen(host->api_port))))
        return -1;
    return 0;
}

static int dup_field(char **dst, const json_t *obj, const char *key, const char *dflt,
                     struct err *e)
{
    const char *v = str(obj, key);

    *dst = strdup(v && *v ? v : dflt);
    return *dst ? 0 : err_set(e, ENOMEM, "out of memory");
}

int podspec_container_build(struct podspec_container *c, const json_t *pod,
                            const json_t *container, const struct podspec_host *host,
                            const struct podspec_getter *get, struct err *e)
{
    unsigned long long limit = 0;
    struct objcache oc = { get, str(json_object_get(pod, "metadata"), "namespace"), NULL, 0 };
    struct envlist env = { NULL, 0, 0 };
    const json_t *list, *item;
    const char *mem;
    size_t i;
    int rc = -1;

    memset(c, 0, sizeof(*c));
    if (dup_field(&c->name, container, "name", "", e) ||
        dup_field(&c->image, container, "image", "", e) ||
        dup_field(&c->working_dir, container, "workingDir", "/", e) ||
        dup_field(&c->termination_path, container, "terminationMessagePath",
                  DEFAULT_TERMINATION_PATH, e))
        goto out;
    mem = str(json_object_get(json_object_get(container, "resources"), "limits"), "memory");
    if (mem && quantity_parse(mem, &limit) < 0) {
        config_err(e, "container %s: memory limit %s is not a quantity", c->name, mem);
        goto out;
    }
    c->memory_limit = mem ? (long long)limit : 0;
    if (build_security(c, pod, container, e) || build_mounts(c, container, e))
        goto out;
    if (base_env(&env, pod, host, c)) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    list = json_object_get(container, "envFrom");
    json_array_foreach(list, i, item)
        if (add_env_from(&env, &oc, item, e))
            goto out;
    list = json_object_get(container, "env");
    json_array_foreach(list, i, item)
        if (add_env_var(&env, &oc, pod, host, item, e))
            goto out;
    if (build_argv(c, container, &env, e))
        goto out;
    c->envp = env.v;
    env.v = NULL;
    rc = 0;
out:
    strv_free(env.v);
    cache_free(&oc);
    if (rc)
        err_prefix(e, "container %s", c->name ? c->name : "?");
    return rc;
}

void podspec_container_free(struct podspec_container *c)
{
    size_t i;

    for (i = 0; i < c->n_mounts; i++) {
        free(c->mounts[i].volume);
        free(c->mounts[i].path);
        free(c->mounts[i].sub_path);
    }
    free(c->mounts);
    strv_free(c->argv);
    strv_free(c->envp);
    free(c->name);
    free(c->image);
    free(c->exec_path);
    free(c->working_dir);
    free(c->termination_path);
    free(c->groups);
    memset(c, 0, sizeof(*c));
}

