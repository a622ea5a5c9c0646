/*
 * yamljson: reads a YAML document into a jansson value.
 *
 * Used for the controller's configuration file and for manifests, so the
 * rest of the code works on one representation (json_t). Mappings become
 * objects, sequences arrays. Scalars: quoted ones are strings; plain ones
 * are null (`null`, `~`, empty), booleans (`true`/`false`), integers,
 * reals, or else strings -- YAML 1.2's core schema. Aliases are expanded
 * (inputs are trusted configuration, not user data); only the first
 * document is read.
 */
#ifndef PLATEOP_YAMLJSON_H
#define PLATEOP_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

/*
 * Parses len bytes of YAML. Returns a new reference (an empty document is
 * JSON null), or NULL with e naming `what` (e.g. a file name), the line and
 * the problem. Cost: O(len); the document is held in memory once.
 */
json_t *yamljson_parse(const char *yaml, size_t len, const char *what, struct err *e);

/* As yamljson_parse() on a whole file. Errors name the path. */
json_t *yamljson_load_file(const char *path, struct err *e);

#endif
