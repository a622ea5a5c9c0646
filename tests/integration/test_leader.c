/*
 * Leader election against the test bed's API server, with short durations
 * (lease 4 s, renew deadline 3 s, retry 1 s). Contenders run in this
 * process, each with its own client and identity, on Leases in a namespace
 * of the test's own. Throughout, the test samples every contender's
 * leader_is_leader() every 10 ms, and the callbacks count how many lead at
 * once: neither may ever see two leaders.
 *
 * Proves: exactly one of two contenders leads; a leader that stops without
 * releasing is replaced within the lease duration plus two jittered retry
 * periods, and the Lease then names the new holder with its duration,
 * acquire and renew times and one more transition; a released lease is
 * taken over at once; a leader cut off from the API server steps down by
 * its renew deadline, says so in a log line, and is replaced only after
 * that; a leader whose Lease another holder took steps down at its next
 * renewal and says it lost the lease.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "leader.h"
#include "log.h"
#include "monotime.h"
#include "strbuf.h"
#include "tcpproxy.h"
#include "testkube.h"

#define LEASE_S 4.0
#define DEADLINE_S 3.0
#define RETRY_S 1.0
/* Slack for a loaded machine on top of the protocol's own bounds. */
#define SLACK_S 2.0
/*
 * The longest a contender can take to replace a leader that stopped without
 * releasing: it sees the leader's last renewal at its next poll (polls are
 * one retry period apart, stretched by up to 20 % of jitter), waits out the
 * lease duration from that moment, and takes the Lease at its first poll
 * after that (another jittered period). 0.5 s covers the requests
 * themselves (a GET and a PUT per poll, milliseconds each when idle, some
 * hundreds of ms on a loaded two-core machine).
 */
#define TAKEOVER_MAX_S (LEASE_S + 2 * 1.2 * RETRY_S + 0.5)

/* The test bed connection and namespace; tk.ns is the namespace. */
static struct testkube tk;

/* Callback bookkeeping shared by all contenders. */
static atomic_int leading_now;
static atomic_int overlap_seen;

struct contender {
    char identity[64];
    struct kube_client *client;   /* own client, or tk.c */
    struct leader *l;
    atomic_int started, stopped, new_leader_calls;
};

static void on_started(void *ud)
{
    struct contender *c = ud;

    atomic_fetch_add(&c->started, 1);
    if (atomic_fetch_add(&leading_now, 1) != 0)
        atomic_store(&overlap_seen, 1);
}

static void on_stopped(void *ud)
{
    struct contender *c = ud;

    atomic_fetch_add(&c->stopped, 1);
    atomic_fetch_sub(&leading_now, 1);
}

static void on_new_leader(const char *identity, void *ud)
{
    struct contender *c = ud;

    (void)identity;
    atomic_fetch_add(&c->new_leader_calls, 1);
}

static void start(struct contender *c, const char *lease, const char *who,
                  struct kube_client *client)
{
    struct leader_config cfg = {
        .ns = tk.ns, .name = lease, .identity = c->identity,
        .lease_duration_s = LEASE_S, .renew_deadline_s = DEADLINE_S, .retry_period_s = RETRY_S,
        .cb = { on_started, on_stopped, on_new_leader, c },
    };
    struct err e;

    snprintf(c->identity, sizeof(c->identity), "%s-%d", who, (int)getpid());
    c->client = client;
    c->l = leader_start(client, &cfg, &e);
    if (!c->l)
        printf("# leader_start %s: %s\n", c->identity, e.msg);
    assert_non_null(c->l);
}

/*
 * One sample of the running contenders (l != NULL): the one that leads, or
 * NULL. Fails the test if two lead at once, by is_leader or by callbacks.
 */
static struct contender *sample(struct contender *all, int n)
{
    struct contender *who = NULL;
    int i, leaders = 0;

    for (i = 0; i < n; i++) {
        if (all[i].l && leader_is_leader(all[i].l)) {
            leaders++;
            who = &all[i];
        }
    }
    assert_true(leaders <= 1);
    assert_int_equal(atomic_load(&overlap_seen), 0);
    return who;
}

/*
 * Samples every 10 ms until `want` leads (want NULL: until any leads) or
 * `timeout` seconds pass. Returns the seconds waited, or -1 on timeout.
 */
static double await_leader(struct contender *all, int n, struct contender *want, double timeout)
{
    double t0 = monotime_now();
    struct contender *who;

    for (;;) {
        who = sample(all, n);
        if (who && (!want || who == want))
            return monotime_now() - t0;
        if (monotime_now() - t0 > timeout)
            return -1;
        usleep(10000);
    }
}

/* Samples for `secs` seconds; returns the one leader seen throughout, or NULL. */
static struct contender *steady_leader(struct contender *all, int n, double secs)
{
    struct contender *first = sample(all, n), *who = first;
    double t0 = monotime_now();

    while (who && who == first && monotime_now() - t0 < secs) {
        usleep(10000);
        who = sample(all, n);
    }
    return who == first ? first : NULL;
}

/* The Lease's spec as the API server has it (a new reference). */
static json_t *lease_spec(const char *lease)
{
    struct kube_res r = KUBE_RES_LEASES;
    struct kube_error ke;
    json_t *got, *spec;

    r.ns = tk.ns;
    r.name = lease;
    got = kube_get(tk.c, &r, NULL, &ke);
    if (!got)
        fail_msg("GET lease %s: %s", lease, ke.err.msg);
    spec = json_incref(json_object_get(got, "spec"));
    json_decref(got);
    assert_non_null(spec);
    return spec;
}

static const char *spec_str(const json_t *spec, const char *key)
{
    const char *v = json_string_value(json_object_get(spec, key));

    if (!v)
        fail_msg("lease spec lacks %s", key);
    return v;
}

static json_int_t spec_int(const json_t *spec, const char *key)
{
    return json_integer_value(json_object_get(spec, key));
}

static int setup(void **state)
{
    (void)state;
    return testkube_open(&tk, "test-leader");
}

static int teardown(void **state)
{
    (void)state;
    testkube_close(&tk);
    return 0;
}

static void test_one_leads_and_other_takes_over_after_stop(void **state)
{
    struct contender c[2] = { 0 };
    struct contender *leader, *other;
    json_t *before, *after;
    char *holder;
    double waited;

    (void)state;
    c[0].client = testkube_client(NULL);
    c[1].client = testkube_client(NULL);
    assert_non_null(c[0].client);
    assert_non_null(c[1].client);
    start(&c[0], "takeover", "a", c[0].client);
    start(&c[1], "takeover", "b", c[1].client);

    assert_true(await_leader(c, 2, NULL, LEASE_S + SLACK_S) >= 0);
    /* Exactly one, and it stays the one for a few renewals. */
    leader = steady_leader(c, 2, 3 * RETRY_S);
    assert_non_null(leader);
    other = leader == &c[0] ? &c[1] : &c[0];
    holder = leader_holder(other->l);
    assert_string_equal(holder, leader->identity);
    free(holder);
    assert_true(atomic_load(&other->new_leader_calls) >= 1);
    assert_int_equal(atomic_load(&other->started), 0);

    before = lease_spec("takeover");
    assert_string_equal(spec_str(before, "holderIdentity"), leader->identity);

    /* The leader dies without releasing: the other waits out the lease. */
    leader_stop(leader->l, 0);
    leader->l = NULL;
    assert_int_equal(atomic_load(&leader->stopped), 1);
    waited = await_leader(c, 2, other, TAKEOVER_MAX_S + 1);
    printf("# takeover after stop without release: %.2f s (bound %.2f s)\n", waited,
           TAKEOVER_MAX_S);
    assert_true(waited >= 0);
    assert_true(waited <= TAKEOVER_MAX_S);
    /* Not before the lease can have expired from its point of view. */
    assert_true(waited >= LEASE_S - RETRY_S * 1.5);

    /* The record says who holds it since when, for how long, and counts the change. */
    after = lease_spec("takeover");
    assert_string_equal(spec_str(after, "holderIdentity"), other->identity);
    assert_int_equal(spec_int(after, "leaseDurationSeconds"), (json_int_t)LEASE_S);
    /* MicroTimes of one format compare as strings. */
    assert_true(strcmp(spec_str(after, "acquireTime"), spec_str(before, "renewTime")) > 0);
    assert_true(strcmp(spec_str(after, "renewTime"), spec_str(after, "acquireTime")) >= 0);
    assert_int_equal(spec_int(after, "leaseTransitions"),
                     spec_int(before, "leaseTransitions") + 1);
    json_decref(before);
    json_decref(after);
    leader_stop(other->l, 1);
    kube_client_free(c[0].client);
    kube_client_free(c[1].client);
}

static void test_release_hands_over_at_once(void **state)
{
    struct contender c[2] = { 0 };
    double waited;

    (void)state;
    start(&c[0], "release", "first", tk.c);
    assert_true(await_leader(c, 2, &c[0], LEASE_S + SLACK_S) >= 0);
    start(&c[1], "release", "second", tk.c);
    /* The second sees a live holder and waits. */
    assert_true(steady_leader(c, 2, 2 * RETRY_S) == &c[0]);

    leader_stop(c[0].l, 1);
    c[0].l = NULL;
    waited = await_leader(c, 2, &c[1], LEASE_S + SLACK_S);
    printf("# takeover after release: %.2f s\n", waited);
    assert_true(waited >= 0);
    /* Well before the 4 s lease would have run out. */
    assert_true(waited < 1.2 * RETRY_S + 1.5);
    leader_stop(c[1].l, 1);
}

/* Reads the whole log file written so far. */
static void read_log(int fd, struct strbuf *sb)
{
    char buf[4096];
    ssize_t n;
    off_t off = 0;

    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
        strbuf_add(sb, buf, (size_t)n);
        off += n;
    }
}

static void test_cut_off_leader_steps_down_by_deadline(void **state)
{
    struct contender c[2] = { 0 };
    struct strbuf logs = STRBUF_INIT, url = STRBUF_INIT;
    struct tcpproxy *proxy;
    const char *server = kube_client_server(tk.c), *colon;
    char path[] = "/tmp/plateop-test-leader-log.XXXXXX";
    double t_cut, down, waited;
    int log_fd;

    (void)state;
    colon = strrchr(server, ':');
    assert_non_null(colon);
    proxy = tcpproxy_start(atoi(colon + 1));
    assert_non_null(proxy);
    strbuf_addf(&url, "https://127.0.0.1:%d", tcpproxy_port(proxy));
    log_fd = mkstemp(path);
    assert_true(log_fd >= 0);
    unlink(path);
    log_set_fd(log_fd);

    c[0].client = testkube_client(url.buf);
    assert_non_null(c[0].client);
    start(&c[0], "partition", "cutoff", c[0].client);
    assert_true(await_leader(c, 2, &c[0], LEASE_S + SLACK_S) >= 0);
    start(&c[1], "partition", "survivor", tk.c);
    assert_true(steady_leader(c, 2, 2 * RETRY_S) == &c[0]);

    tcpproxy_cut(proxy);
    t_cut = monotime_now();
    /* Its last renewal was sent before the cut, so it stops leading by the deadline. */
    while (sample(c, 2) == &c[0] && monotime_now() - t_cut < DEADLINE_S + SLACK_S)
        usleep(10000);
    down = monotime_now() - t_cut;
    printf("# cut-off leader stopped leading after %.2f s\n", down);
    assert_false(leader_is_leader(c[0].l));
    assert_true(down <= DEADLINE_S + 0.2);
    /* The survivor waits for the lease to expire from its own point of view. */
    waited = await_leader(c, 2, &c[1], LEASE_S + 2 * RETRY_S + SLACK_S);
    printf("# survivor took over %.2f s after the cut\n", waited + down);
    assert_true(waited >= 0);
    assert_true(waited + down >= LEASE_S - RETRY_S * 1.5);

    /* The step-down was reported once the election thread gave up. */
    while (atomic_load(&c[0].stopped) == 0 && monotime_now() - t_cut < DEADLINE_S + SLACK_S + 5)
        usleep(10000);
    assert_int_equal(atomic_load(&c[0].stopped), 1);
    read_log(log_fd, &logs);
    log_set_fd(2);
    close(log_fd);
    assert_non_null(strstr(logs.buf, "stepping down as leader"));
    assert_non_null(strstr(logs.buf, c[0].identity));

    leader_stop(c[0].l, 0);
    leader_stop(c[1].l, 1);
    kube_client_free(c[0].client);
    tcpproxy_stop(proxy);
    strbuf_release(&logs);
    strbuf_release(&url);
}

/*
 * Another holder writes itself into the Lease (as a contender that judged
 * it expired would): the leader notices at its next renewal, steps down at
 * once rather than at its deadline, and says it lost the lease.
 */
static void test_lost_lease_is_reported_as_lost(void **state)
{
    struct contender c[1] = { 0 };
    struct kube_res r = KUBE_RES_LEASES;
    struct strbuf logs = STRBUF_INIT;
    char path[] = "/tmp/plateop-test-leader-log.XXXXXX";
    struct kube_error ke;
    json_t *lease, *spec, *got = NULL;
    double t0, down;
    int log_fd, i;

    (void)state;
    log_fd = mkstemp(path);
    assert_true(log_fd >= 0);
    unlink(path);
    log_set_fd(log_fd);
    start(&c[0], "stolen", "victim", tk.c);
    assert_true(await_leader(c, 1, &c[0], LEASE_S + SLACK_S) >= 0);

    r.ns = tk.ns;
    r.name = "stolen";
    /* A renewal landing between our GET and PUT makes the PUT a 409: read again. */
    for (i = 0; i < 20 && !got; i++) {
        lease = kube_get(tk.c, &r, NULL, &ke);
        if (!lease)
            fail_msg("%s", ke.err.msg);
        spec = json_object_get(lease, "spec");
        json_object_set_new(spec, "holderIdentity", json_string("intruder"));
        json_object_set_new(spec, "leaseTransitions",
                            json_integer(spec_int(spec, "leaseTransitions") + 1));
        got = kube_replace(tk.c, &r, lease, NULL, &ke);
        json_decref(lease);
    }
    if (!got)
        fail_msg("%s", ke.err.msg);
    json_decref(got);
    t0 = monotime_now();
    while (leader_is_leader(c[0].l) && monotime_now() - t0 < DEADLINE_S + SLACK_S)
        usleep(10000);
    down = monotime_now() - t0;
    printf("# the leader stepped down %.2f s after losing the lease\n", down);
    assert_false(leader_is_leader(c[0].l));
    /* At its next renewal (one retry period, plus a GET), well before the deadline. */
    assert_true(down < RETRY_S + 1.0);
    while (atomic_load(&c[0].stopped) == 0 && monotime_now() - t0 < DEADLINE_S + SLACK_S)
        usleep(10000);
    assert_int_equal(atomic_load(&c[0].stopped), 1);

    read_log(log_fd, &logs);
    log_set_fd(2);
    close(log_fd);
    assert_non_null(strstr(logs.buf, "lost the lease to intruder: stepping down as leader"));
    assert_null(strstr(logs.buf, "could not renew"));
    leader_stop(c[0].l, 0);
    strbuf_release(&logs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_leads_and_other_takes_over_after_stop),
        cmocka_unit_test(test_release_hands_over_at_once),
        cmocka_unit_test(test_cut_off_leader_steps_down_by_deadline),
        cmocka_unit_test(test_lost_lease_is_reported_as_lost),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
