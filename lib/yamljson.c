/* yamljson: YAML document -> jansson value, on libyaml's document API. */
#include "yamljson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "strbuf.h"

/* Nesting beyond this is refused rather than risking the stack. */
#define MAX_DEPTH 64

static json_t *plain_scalar(const char *s, size_t len)
{
    char *end;
    long long ll;
    double d;

    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    if (strchr("+-0123456789.", s[0])) {
        errno = 0;
        ll = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0)
            return json_integer(ll);
        errno = 0;
        d = strtod(s, &end);
        if (*end == '\0' && errno == 0 && strpbrk(s, "0123456789"))
            return json_real(d);
    }
    return json_stringn(s, len);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *node, int depth, struct err *e)
{
    json_t *out = NULL, *v;
    yaml_node_item_t *item;
    yaml_node_pair_t *pair;

    if (depth > MAX_DEPTH) {
        err_set(e, EINVAL, "line %lu: nested deeper than %d levels",
                (unsigned long)node->start_mark.line + 1, MAX_DEPTH);
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            out = plain_scalar((const char *)node->data.scalar.value, node->data.scalar.length);
        else
            out = json_stringn((const char *)node->data.scalar.value, node->data.scalar.length);
        break;
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (item = node->data.sequence.items.start; out && item < node->data.sequence.items.top;
             item++) {
            v = convert(doc, yaml_document_get_node(doc, *item), depth + 1, e);
            if (!v || json_array_append_new(out, v) < 0)
                goto fail;
        }
        break;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (pair = node->data.mapping.pairs.start; out && pair < node->data.mapping.pairs.top;
             pair++) {
            yaml_node_t *k = yaml_document_get_node(doc, pair->key);

            if (!k || k->type != YAML_SCALAR_NODE) {
                err_set(e, EINVAL, "line %lu: a mapping key must be a scalar",
                        (unsigned long)node->start_mark.line + 1);
                goto fail;
            }
            v = convert(doc, yaml_document_get_node(doc, pair->value), depth + 1, e);
            if (!v || json_object_set_new(out, (const char *)k->data.scalar.value, v) < 0)
                goto fail;
        }
        break;
    default:
        err_set(e, EINVAL, "line %lu: unsupported YAML node",
                (unsigned long)node->start_mark.line + 1);
        return NULL;
    }
    if (!out)
        err_set(e, ENOMEM, "out of memory");
    return out;
fail:
    if (!err_isset(e))
        err_set(e, ENOMEM, "out of memory");
    json_decref(out);
    return NULL;
}

json_t *yamljson_parse(const char *yaml, size_t len, const char *what, struct err *e)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    json_t *out = NULL;

    if (!yaml_parser_initialize(&parser)) {
        err_set(e, ENOMEM, "%s: cannot initialise the YAML parser", what);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err_set(e, EINVAL, "%s: line %lu column %lu: %s", what,
                (unsigned long)parser.problem_mark.line + 1,
                (unsigned long)parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "malformed YAML");
        goto out_parser;
    }
    root = yaml_document_get_root_node(&doc);
    if (!root)
        out = json_null();
    else if (!(out = convert(&doc, root, 0, e)))
        err_prefix(e, "%s", what);
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&parser);
    return out;
}

json_t *yamljson_load_file(const char *path, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    char buf[65536];
    json_t *out = NULL;
    size_t n;
    FILE *f;

    f = fopen(path, "r");
    if (!f) {
        err_errno(e, errno, "open %s", path);
        return NULL;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (strbuf_add(&sb, buf, n) < 0) {
            err_set(e, ENOMEM, "read %s: out of memory", path);
            goto out;
        }
    }
    if (ferror(f)) {
        err_errno(e, EIO, "read %s", path);
        goto out;
    }
    out = yamljson_parse(sb.buf, sb.len, path, e);
out:
    fclose(f);
    strbuf_release(&sb);
    return out;
}
