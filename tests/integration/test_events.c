/*
 * Events against the test bed's API server, about a ConfigMap in a
 * namespace of the test's own. Proves: three identical records make one
 * Event with count 3; a different message makes a second Event; both are
 * found the way `kubectl describe` finds them (field selector on the
 * involved object) and kubectl describe shows them; repeats outside the
 * window, repeats evicted from the cache and repeats of a deleted Event
 * create new Events; a cluster-scoped object's Events go to "default".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kube_events.h"
#include "strbuf.h"
#include "testkube.h"

/* The test bed connection and namespace; tk.ns is the namespace. */
static struct testkube tk;
static json_t *subject;     /* the ConfigMap the Events are about */

static struct kube_event_recorder *recorder(double window_s, int cache_size)
{
    struct kube_event_opts o = { .component = "plateop-test", .host = "testhost",
                                 .window_s = window_s, .cache_size = cache_size };
    struct err e;
    struct kube_event_recorder *r = kube_event_recorder_new(tk.c, &o, &e);

    if (!r)
        printf("# recorder: %s\n", e.msg);
    assert_non_null(r);
    return r;
}

/* A fresh ConfigMap to be the involved object of one test's Events. */
static json_t *new_subject(const char *name)
{
    struct kube_res res = KUBE_RES_CONFIGMAPS;
    struct kube_error ke;
    json_t *obj, *got;

    res.ns = tk.ns;
    obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                    "metadata", "name", name);
    got = kube_create(tk.c, &res, obj, NULL, &ke);
    json_decref(obj);
    if (!got)
        printf("# create configmap %s: %s\n", name, ke.err.msg);
    assert_non_null(got);
    /* The API server leaves apiVersion/kind out of some answers; put them back. */
    json_object_set_new(got, "apiVersion", json_string("v1"));
    json_object_set_new(got, "kind", json_string("ConfigMap"));
    return got;
}

/*
 * The Events about obj, as kubectl describe finds them: a field selector
 * on involvedObject name, namespace and uid, in the Event namespace.
 */
static json_t *events_about(const char *event_ns, const struct kube_event_ref *ref)
{
    struct kube_res res = KUBE_RES_EVENTS;
    struct strbuf sel = STRBUF_INIT;
    struct kube_query q = { 0 };
    struct kube_error ke;
    json_t *list, *items;

    res.ns = event_ns;
    strbuf_addf(&sel, "involvedObject.name=%s,involvedObject.kind=%s", ref->name, ref->kind);
    if (ref->ns)
        strbuf_addf(&sel, ",involvedObject.namespace=%s", ref->ns);
    if (ref->uid)
        strbuf_addf(&sel, ",involvedObject.uid=%s", ref->uid);
    q.field_selector = sel.buf;
    list = kube_get(tk.c, &res, &q, &ke);
    strbuf_release(&sel);
    if (!list)
        printf("# list events: %s\n", ke.err.msg);
    assert_non_null(list);
    items = json_incref(json_object_get(list, "items"));
    json_decref(list);
    return items;
}

/* The one Event in items with this message; fails the test if not exactly one. */
static json_t *event_with_message(json_t *items, const char *message)
{
    json_t *ev, *found = NULL;
    size_t i;
    int n = 0;

    json_array_foreach(items, i, ev) {
        if (strcmp(json_string_value(json_object_get(ev, "message")), message) == 0) {
            found = ev;
            n++;
        }
    }
    assert_int_equal(n, 1);
    return found;
}

static json_int_t count_of(const json_t *ev)
{
    return json_integer_value(json_object_get(ev, "count"));
}

static void check_stats(struct kube_event_recorder *r, unsigned long created, unsigned long patched)
{
    struct kube_event_stats st;

    kube_event_stats(r, &st);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.created, created);
    assert_int_equal(st.patched, patched);
}

/* Runs kubectl with argv (no shell) and returns its stdout. */
static void run_kubectl(char *const argv[], struct strbuf *out)
{
    int fds[2], status;
    char buf[4096];
    ssize_t n;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        strbuf_add(out, buf, (size_t)n);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int setup(void **state)
{
    (void)state;
    return testkube_open(&tk, "test-events");
}

static int teardown(void **state)
{
    (void)state;
    json_decref(subject);
    testkube_close(&tk);
    return 0;
}

static void test_repeats_aggregate_and_describe_shows_them(void **state)
{
    struct kube_event_recorder *r = recorder(0, 0);
    struct kube_event_ref ref;
    struct strbuf out = STRBUF_INIT;
    json_t *items, *ev, *src, *inv;
    int i;

    (void)state;
    subject = new_subject("subject");
    assert_int_equal(kube_event_ref_from_object(&ref, subject), 0);
    assert_non_null(ref.uid);
    for (i = 0; i < 3; i++)
        assert_int_equal(kube_event_record(r, &ref, KUBE_EVENT_WARNING, "BatchFailed",
                                           "batch %s failed: exit code %d", "b0001", 1), 0);
    kube_event_flush(r);
    check_stats(r, 1, 2);
    items = events_about(tk.ns, &ref);
    assert_int_equal(json_array_size(items), 1);
    ev = event_with_message(items, "batch b0001 failed: exit code 1");
    assert_int_equal(count_of(ev), 3);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
    assert_string_equal(json_string_value(json_object_get(ev, "reason")), "BatchFailed");
    src = json_object_get(ev, "source");
    assert_string_equal(json_string_value(json_object_get(src, "component")), "plateop-test");
    assert_string_equal(json_string_value(json_object_get(src, "host")), "testhost");
    inv = json_object_get(ev, "involvedObject");
    assert_string_equal(json_string_value(json_object_get(inv, "uid")), ref.uid);
    assert_string_equal(json_string_value(json_object_get(inv, "apiVersion")), "v1");
    assert_true(strcmp(json_string_value(json_object_get(ev, "firstTimestamp")),
                       json_string_value(json_object_get(ev, "lastTimestamp"))) <= 0);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(ev, "metadata"), "name")),
                           "subject."));
    json_decref(items);

    /* Same object and reason, another message: a second Event. */
    assert_int_equal(kube_event_record(r, &ref, KUBE_EVENT_NORMAL, "BatchFailed",
                                       "batch b0002 failed: exit code 2"), 0);
    kube_event_flush(r);
    check_stats(r, 2, 2);
    items = events_about(tk.ns, &ref);
    assert_int_equal(json_array_size(items), 2);
    assert_int_equal(count_of(event_with_message(items, "batch b0002 failed: exit code 2")), 1);
    assert_int_equal(count_of(event_with_message(items, "batch b0001 failed: exit code 1")), 3);
    json_decref(items);

    {
        char *argv[] = { "kubectl", "describe", "configmap", "subject", "-n", tk.ns, NULL };

        run_kubectl(argv, &out);
    }
    assert_non_null(strstr(out.buf, "batch b0001 failed: exit code 1"));
    assert_non_null(strstr(out.buf, "(x3 over"));
    assert_non_null(strstr(out.buf, "batch b0002 failed: exit code 2"));
    strbuf_release(&out);
    kube_event_recorder_free(r);
}

static void test_repeat_after_window_creates_new_event(void **state)
{
    struct kube_event_recorder *r = recorder(1.0, 0);
    json_t *obj = new_subject("windowed"), *items;
    struct kube_event_ref ref;

    (void)state;
    kube_event_ref_from_object(&ref, obj);
    kube_event_record(r, &ref, KUBE_EVENT_NORMAL, "Planned", "planned 4 batches");
    kube_event_flush(r);
    sleep(2);
    kube_event_record(r, &ref, KUBE_EVENT_NORMAL, "Planned", "planned 4 batches");
    kube_event_flush(r);
    check_stats(r, 2, 0);
    items = events_about(tk.ns, &ref);
    assert_int_equal(json_array_size(items), 2);
    json_decref(items);
    kube_event_recorder_free(r);
    json_decref(obj);
}

/* Deletes an Event found by events_about(), behind the recorder's back. */
static void delete_event(const char *event_ns, const json_t *ev)
{
    struct kube_res res = KUBE_RES_EVENTS;
    struct kube_error ke;
    json_t *gone;

    res.ns = event_ns;
    res.name = json_string_value(json_object_get(json_object_get(ev, "metadata"), "name"));
    gone = kube_delete(tk.c, &res, NULL, &ke);
    if (!gone)
        printf("# delete event: %s\n", ke.err.msg);
    assert_non_null(gone);
    json_decref(gone);
}

/*
 * Records a "Step" Event with this message, waits for it to be sent, and
 * checks the recorder's totals and the count the API server now shows.
 */
static void record_step(struct kube_event_recorder *r, const struct kube_event_ref *ref,
                        const char *message, unsigned long created, unsigned long patched,
                        json_int_t count)
{
    json_t *items;

    assert_int_equal(kube_event_record(r, ref, KUBE_EVENT_NORMAL, "Step", "%s", message), 0);
    kube_event_flush(r);
    check_stats(r, created, patched);
    items = events_about(tk.ns, ref);
    assert_int_equal(count_of(event_with_message(items, message)), count);
    json_decref(items);
}

static void test_evicted_and_deleted_events_are_recreated(void **state)
{
    struct kube_event_recorder *r = recorder(0, 2);
    json_t *obj = new_subject("evicted"), *items;
    struct kube_event_ref ref;

    (void)state;
    kube_event_ref_from_object(&ref, obj);
    /* Cache of 2: C evicts A, so A's repeat is a new Event. */
    record_step(r, &ref, "A", 1, 0, 1);
    record_step(r, &ref, "B", 2, 0, 1);
    record_step(r, &ref, "C", 3, 0, 1);
    assert_int_equal(kube_event_record(r, &ref, KUBE_EVENT_NORMAL, "Step", "A"), 0);
    kube_event_flush(r);
    check_stats(r, 4, 0);
    items = events_about(tk.ns, &ref);
    assert_int_equal(json_array_size(items), 4);

    /* C is cached; its Event disappears (as Events do after an hour). */
    delete_event(tk.ns, event_with_message(items, "C"));
    json_decref(items);
    record_step(r, &ref, "C", 5, 0, 1);
    /* And its next repeat folds into the recreated Event. */
    record_step(r, &ref, "C", 5, 1, 2);
    kube_event_recorder_free(r);
    json_decref(obj);
}

static void test_cluster_scoped_object_events_go_to_default(void **state)
{
    struct kube_event_recorder *r = recorder(0, 0);
    struct kube_event_ref ref = { .api_version = "v1", .kind = "Namespace", .name = tk.ns };
    json_t *items;

    (void)state;
    assert_int_equal(kube_event_record(r, &ref, KUBE_EVENT_NORMAL, "Seen", "%s", tk.ns), 0);
    kube_event_flush(r);
    check_stats(r, 1, 0);
    items = events_about("default", &ref);
    delete_event("default", event_with_message(items, tk.ns));
    json_decref(items);
    kube_event_recorder_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeats_aggregate_and_describe_shows_them),
        cmocka_unit_test(test_repeat_after_window_creates_new_event),
        cmocka_unit_test(test_evicted_and_deleted_events_are_recreated),
        cmocka_unit_test(test_cluster_scoped_object_events_go_to_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
