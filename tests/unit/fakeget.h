/*
 * A podspec_getter over objects held in memory, for the node agent's unit
 * tests: objects are added under "resource/namespace/name" (namespace empty
 * for cluster-scoped ones) and looked up the way the API server would.
 */
#ifndef TEST_NODEAGENT_FAKEGET_H
#define TEST_NODEAGENT_FAKEGET_H

#include <jansson.h>

#include "../../hack/nodeagent/podspec.h"

/* A getter whose arg is a JSON object (borrowed) mapping keys to objects. */
static inline json_t *fakeget_get(void *arg, const char *resource, const char *ns,
                                  const char *name, int *missing, struct err *e)
{
    char key[512];
    json_t *obj;

    (void)e;
    snprintf(key, sizeof(key), "%s/%s/%s", resource, ns ? ns : "", name);
    obj = json_object_get(arg, key);
    *missing = obj == NULL;
    return json_incref(obj);
}

#endif
