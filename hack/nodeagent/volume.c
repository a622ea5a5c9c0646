/* volume: a Pod's volumes as host directories; see volume.h. */
#include "volume.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileutil.h"
#include "fsutil.h"

#define DEFAULT_FILE_MODE 0644

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Sets a PODSPEC_ECONFIG error naming the volume. Returns -1. */
static int config_err(struct err *e, const char *vol, const char *what, const char *detail)
{
    return err_set(e, PODSPEC_ECONFIG, "volume %s: %s%s", vol, what, detail);
}

/* Writes the bytes of one key to dir/rel (rel may contain subdirectories). */
static int write_key(const json_t *obj, int is_secret, const char *key, const char *dir,
                     const char *rel, int mode, const char *vol, struct err *e)
{
    struct strbuf path = STRBUF_INIT, val = STRBUF_INIT;
    char *slash;
    int rc = -1, found;

    if (!*rel || rel[0] == '/' || strstr(rel, "..")) {
        config_err(e, vol, "item path must be relative, without ..: ", rel);
        goto out;
    }
    found = podspec_key_value(obj, is_secret, key, &val, e);
    if (found < 0)
        goto out;
    if (!found) {
        config_err(e, vol, "no such key: ", key);
        goto out;
    }
    if (strbuf_addf(&path, "%s/%s", dir, rel) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    slash = strrchr(path.buf, '/');
    *slash = '\0';
    if (fileutil_mkdir_p(path.buf, e) < 0)
        goto out;
    *slash = '/';
    rc = fsutil_write_file(path.buf, val.buf, val.len, (mode_t)mode & 07777, e);
out:
    strbuf_release(&path);
    strbuf_release(&val);
    return rc;
}

/* Writes a ConfigMap's or Secret's keys (all, or `items`) into dir. */
static int materialise(const json_t *src, const json_t *obj, int is_secret, const char *dir,
                       const char *vol, struct err *e)
{
    const json_t *items = json_object_get(src, "items"), *item, *dm;
    const char *sections[2] = { "data", is_secret ? NULL : "binaryData" }, *key;
    int mode = DEFAULT_FILE_MODE;
    json_t *v;
    size_t i;

    dm = json_object_get(src, "defaultMode");
    if (json_is_integer(dm))
        mode = (int)json_integer_value(dm);
    if (json_array_size(items) > 0) {
        json_array_foreach(items, i, item) {
            const json_t *im = json_object_get(item, "mode");

            if (write_key(obj, is_secret, str(item, "key") ? str(item, "key") : "", dir,
                          str(item, "path") ? str(item, "path") : "",
                          json_is_integer(im) ? (int)json_integer_value(im) : mode, vol, e) < 0)
                return -1;
        }
        return 0;
    }
    for (i = 0; i < 2; i++) {
        if (!sections[i])
            continue;
        json_object_foreach(json_object_get(obj, sections[i]), key, v)
            if (write_key(obj, is_secret, key, dir, key, mode, vol, e) < 0)
                return -1;
    }
    return 0;
}

/* Fetches the ConfigMap/Secret of a volume and writes it into dir. */
static int prepare_object(const json_t *src, int is_secret, const char *ns, const char *dir,
                          const char *vol, const struct podspec_getter *get, struct err *e)
{
    const char *name = str(src, is_secret ? "secretName" : "name");
    int missing = 0, rc;
    json_t *obj;

    if (!name)
        return config_err(e, vol, is_secret ? "no secretName" : "no configMap name", "");
    obj = get->get(get->arg, is_secret ? "secrets" : "configmaps", ns, name, &missing, e);
    if (!obj && !missing)
        return err_prefix(e, "volume %s", vol);
    if (!obj)
        return json_is_true(json_object_get(src, "optional"))
                   ? 0
                   : config_err(e, vol, is_secret ? "secret not found: " : "configmap not found: ",
                                name);
    rc = materialise(src, obj, is_secret, dir, vol, e);
    json_decref(obj);
    return rc;
}

static int prepare_host_path(const json_t *src, const char *vol, struct strbuf *out,
                             struct err *e)
{
    const char *path = str(src, "path"), *type = str(src, "type");
    struct stat st;
    int exists;

    if (!path || path[0] != '/')
        return config_err(e, vol, "hostPath needs an absolute path", "");
    exists = stat(path, &st) == 0;
    if (type && strcmp(type, "DirectoryOrCreate") == 0 && !exists) {
        if (fileutil_mkdir_p(path, e) < 0)
            return err_prefix(e, "volume %s", vol);
    } else if (type && strcmp(type, "FileOrCreate") == 0 && !exists) {
        if (fsutil_write_file(path, "", 0, 0644, e) < 0)
            return err_prefix(e, "volume %s", vol);
    } else if (type && *type && !exists) {
        return config_err(e, vol, "hostPath does not exist: ", path);
    } else if (type && strcmp(type, "Directory") == 0 && !S_ISDIR(st.st_mode)) {
        return config_err(e, vol, "hostPath is not a directory: ", path);
    } else if (type && strcmp(type, "File") == 0 && !S_ISREG(st.st_mode)) {
        return config_err(e, vol, "hostPath is not a file: ", path);
    }
    return strbuf_adds(out, path) < 0 ? err_set(e, ENOMEM, "out of memory") : 0;
}

/* A claim's directory: from the volume map, else from its bound PersistentVolume. */
static int prepare_claim(const json_t *src, const char *ns, const char *map, const char *vol,
                         const struct podspec_getter *get, struct strbuf *out, struct err *e)
{
    const char *claim = str(src, "claimName"), *pv_name, *path;
    json_t *pvc = NULL, *pv = NULL;
    int missing = 0, rc = -1, found;
    const json_t *spec;

    if (!claim)
        return config_err(e, vol, "persistentVolumeClaim without claimName", "");
    if (map) {
        found = vol_map_lookup(map, ns, claim, out, e);
        if (found != 0)
            return found < 0 ? err_prefix(e, "volume %s", vol) : 0;
    }
    pvc = get->get(get->arg, "persistentvolumeclaims", ns, claim, &missing, e);
    if (!pvc) {
        if (missing)
            config_err(e, vol, "claim not found: ", claim);
        goto out;
    }
    pv_name = str(json_object_get(pvc, "spec"), "volumeName");
    if (!pv_name || !*pv_name) {
        config_err(e, vol, "claim is not bound and not in the volume map: ", claim);
        goto out;
    }
    pv = get->get(get->arg, "persistentvolumes", NULL, pv_name, &missing, e);
    if (!pv) {
        if (missing)
            config_err(e, vol, "persistent volume not found: ", pv_name);
        goto out;
    }
    spec = json_object_get(pv, "spec");
    path = str(json_object_get(spec, "hostPath"), "path");
    if (!path)
        path = str(json_object_get(spec, "local"), "path");
    if (!path) {
        config_err(e, vol, "volume is neither hostPath nor local and the claim is not in the "
                   "volume map: ", claim);
        goto out;
    }
    rc = strbuf_adds(out, path) < 0 ? err_set(e, ENOMEM, "out of memory") : 0;
out:
    json_decref(pvc);
    json_decref(pv);
    return rc;
}

/* Prepares one volume, appending its host path to out. */
static int prepare_one(const json_t *v, const char *ns, const char *pod_dir, const char *map,
                       const struct podspec_getter *get, struct strbuf *out, struct err *e)
{
    const char *name = str(v, "name");
    const json_t *src;
    int is_secret;

    if ((src = json_object_get(v, "hostPath")))
        return prepare_host_path(src, name, out, e);
    if ((src = json_object_get(v, "persistentVolumeClaim")))
        return prepare_claim(src, ns, map, name, get, out, e);
    if (strbuf_addf(out, "%s/volumes/%s", pod_dir, name) < 0)
        return err_set(e, ENOMEM, "out of memory");
    if (!json_object_get(v, "emptyDir") && !json_object_get(v, "configMap") &&
        !json_object_get(v, "secret"))
        return config_err(e, name, "volume type not supported by the node agent", "");
    if (fileutil_rm_rf(out->buf, e) < 0 || fileutil_mkdir_p(out->buf, e) < 0)
        return err_prefix(e, "volume %s", name);
    if (json_object_get(v, "emptyDir"))
        return chmod(out->buf, 0777) < 0 ? err_errno(e, errno, "volume %s: chmod", name) : 0;
    is_secret = json_object_get(v, "secret") != NULL;
    src = json_object_get(v, is_secret ? "secret" : "configMap");
    return prepare_object(src, is_secret, ns, out->buf, name, get, e);
}

int vol_prepare(struct vol_set *vs, const json_t *pod, const char *pod_dir,
                const char *volume_map, const struct podspec_getter *get, struct err *e)
{
    const json_t *vols = json_object_get(json_object_get(pod, "spec"), "volumes"), *v;
    const char *ns = str(json_object_get(pod, "metadata"), "namespace");
    struct strbuf path = STRBUF_INIT;
    size_t i;
    int rc = -1;

    memset(vs, 0, sizeof(*vs));
    vs->v = calloc(json_array_size(vols) + 1, sizeof(*vs->v));
    if (!vs->v) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(vols, i, v) {
        const char *name = str(v, "name");

        if (!name || !*name || strchr(name, '/') || strcmp(name, "..") == 0) {
            config_err(e, name ? name : "?", "invalid volume name", "");
            goto out;
        }
        strbuf_reset(&path);
        if (prepare_one(v, ns, pod_dir, volume_map, get, &path, e) < 0)
            goto out;
        vs->v[vs->n].name = strdup(name);
        vs->v[vs->n].host_path = strbuf_detach(&path, NULL);
        if (!vs->v[vs->n++].name) {
            err_set(e, ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    strbuf_release(&path);
    if (rc)
        vol_set_free(vs);
    return rc;
}

const char *vol_find(const struct vol_set *vs, const char *name)
{
    size_t i;

    for (i = 0; i < vs->n; i++)
        if (strcmp(vs->v[i].name, name) == 0)
            return vs->v[i].host_path;
    return NULL;
}

void vol_set_free(struct vol_set *vs)
{
    size_t i;

    for (i = 0; i < vs->n; i++) {
        free(vs->v[i].name);
        free(vs->v[i].host_path);
    }
    free(vs->v);
    memset(vs, 0, sizeof(*vs));
}

/* Trims spaces and tabs at both ends of [*s, *end). */
static void trim(const char **s, const char **end)
{
    while (*s < *end && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*end > *s && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
        (*end)--;
}

int vol_map_lookup(const char *map_file, const char *ns, const char *claim, struct strbuf *out,
                   struct err *e)
{
    struct strbuf text = STRBUF_INIT, plain = STRBUF_INIT, nsd = STRBUF_INIT;
    const char *line, *next;
    int rc = -1;

    if (fileutil_read(map_file, &text, 1 << 20, e) < 0) {
        err_prefix(e, "volume map");
        goto out;
    }
    if (strbuf_addf(&nsd, "%s/%s", ns ? ns : "", claim) < 0)
        goto oom;
    for (line = text.buf; *line; line = next) {
        const char *end = strchrnul(line, '\n'), *eq, *k, *kend, *val;

        next = *end ? end + 1 : end;
        trim(&line, &end);
        eq = memchr(line, '=', (size_t)(end - line));
        if (line == end || *line == '#' || !eq)
            continue;
        k = line;
        kend = eq;
        val = eq + 1;
        trim(&k, &kend);
        trim(&val, &end);
        if ((size_t)(kend - k) == nsd.len && memcmp(k, nsd.buf, nsd.len) == 0) {
            strbuf_reset(&plain);
            if (strbuf_add(&plain, val, (size_t)(end - val)) < 0)
                goto oom;
            break;
        }
        if (!plain.len && (size_t)(kend - k) == strlen(claim) && memcmp(k, claim, strlen(claim)) == 0 &&
            strbuf_add(&plain, val, (size_t)(end - val)) < 0)
            goto oom;
    }
    rc = plain.len > 0;
    if (rc && strbuf_add(out, plain.buf, plain.len) < 0)
        goto oom;
    goto out;
oom:
    rc = err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&text);
    strbuf_release(&plain);
    strbuf_release(&nsd);
    return rc;
}
