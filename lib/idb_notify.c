/* idb_notify: the notification migration and the LISTEN helper; see idb_notify.h. */
#include "idb_notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "strbuf.h"

/* ---- migration ---- */

/* The key of pg_advisory_xact_lock: the bytes of "plateop" as a big-endian integer. */
#define MIGRATE_LOCK_KEY "31644363212025712"

static const char sql_fn_row[] =
    "CREATE FUNCTION plateop_notify_row_v1() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
    "BEGIN\n"
    "  -- Added by plateop: tells its controller about new and changed analyses.\n"
    "  IF TG_TABLE_NAME = 'image_sub_analyses' THEN\n"
    "    PERFORM pg_notify('" IDB_NOTIFY_CHANNEL "', json_build_object('table', TG_TABLE_NAME,"
    " 'op', TG_OP, 'id', NEW.sub_id, 'analysis_id', NEW.analysis_id)::text);\n"
    "  ELSE\n"
    "    PERFORM pg_notify('" IDB_NOTIFY_CHANNEL "', json_build_object('table', TG_TABLE_NAME,"
    " 'op', TG_OP, 'id', NEW.id)::text);\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END\n"
    "$f$";

static const char sql_fn_images[] =
    "CREATE FUNCTION plateop_notify_images_v1() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
    "DECLARE r record;\n"
    "BEGIN\n"
    "  -- Added by plateop: one notification per plate acquisition and statement.\n"
    "  FOR r IN SELECT plate_acquisition_id AS acq, count(*) AS n, min(id) AS lo,"
    " max(id) AS hi FROM plateop_new_images GROUP BY plate_acquisition_id ORDER BY 1 LOOP\n"
    "    PERFORM pg_notify('" IDB_NOTIFY_CHANNEL "', json_build_object('table', 'images',"
    " 'op', 'INSERT', 'plate_acquisition_id', r.acq, 'count', r.n, 'min_id', r.lo,"
    " 'max_id', r.hi)::text);\n"
    "  END LOOP;\n"
    "  RETURN NULL;\n"
    "END\n"
    "$f$";

struct mig_obj {
    const char *kind;       /* "function" or "trigger" */
    const char *name;
    const char *table;      /* trigger: its table */
    const char *sql;
};

static const struct mig_obj objs[] = {
    { "function", "plateop_notify_row_v1", NULL, sql_fn_row },
    { "function", "plateop_notify_images_v1", NULL, sql_fn_images },
    { "trigger", "plateop_notify_v1", "image_analyses",
      "CREATE TRIGGER plateop_notify_v1 AFTER INSERT OR UPDATE ON image_analyses"
      " FOR EACH ROW EXECUTE PROCEDURE plateop_notify_row_v1()" },
    { "trigger", "plateop_notify_v1", "image_sub_analyses",
      "CREATE TRIGGER plateop_notify_v1 AFTER INSERT OR UPDATE ON image_sub_analyses"
      " FOR EACH ROW EXECUTE PROCEDURE plateop_notify_row_v1()" },
    { "trigger", "plateop_notify_v1", "images",
      "CREATE TRIGGER plateop_notify_v1 AFTER INSERT ON images"
      " REFERENCING NEW TABLE AS plateop_new_images"
      " FOR EACH STATEMENT EXECUTE PROCEDURE plateop_notify_images_v1()" },
    { "trigger", "plateop_notify_v1", "plate_acquisition",
      "CREATE TRIGGER plateop_notify_v1 AFTER UPDATE OF finished ON plate_acquisition"
      " FOR EACH ROW WHEN (OLD.finished IS DISTINCT FROM NEW.finished)"
      " EXECUTE PROCEDURE plateop_notify_row_v1()" },
};

#define NOBJS (sizeof(objs) / sizeof(objs[0]))

/* Runs sql; returns the result with status want, or NULL with e set. */
static PGresult *q(PGconn *c, const char *what, const char *sql, int n, const char *const *p,
                   ExecStatusType want, struct err *e)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    const char *msg;
    size_t len;

    if (r && PQresultStatus(r) == want)
        return r;
    msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    len = strcspn(msg, "\n");
    err_set(e, PQstatus(c) == CONNECTION_OK ? IDB_ERR_QUERY : IDB_ERR_CONNECT, "%s: %.*s",
            what, (int)len, msg);
    PQclear(r);
    return NULL;
}

/* 1 if the object exists, 0 if not, -1 on error. */
static int exists(PGconn *c, const struct mig_obj *o, struct err *e)
{
    const char *p[2] = { o->table ? o->table : o->name, o->name };
    PGresult *r;
    int found;

    if (o->table) {
        r = q(c, "look up table",
              "SELECT to_regclass($1) IS NOT NULL", 1, p, PGRES_TUPLES_OK, e);
        if (!r)
            return -1;
        found = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!found)
            return err_set(e, IDB_ERR_DATA, "table %s not found (is this an ImageDB?)",
                           o->table);
        r = q(c, "look up trigger",
              "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
              2, p, PGRES_TUPLES_OK, e);
    } else {
        r = q(c, "look up function",
              "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
              " WHERE p.proname = $1 AND n.nspname = current_schema()",
              1, p + 1, PGRES_TUPLES_OK, e);
    }
    if (!r)
        return -1;
    found = PQgetvalue(r, 0, 0)[0] != '0';
    PQclear(r);
    return found;
}

int idb_notify_migrate(struct idb *db, struct strbuf *report, int *added, struct err *e)
{
    const char *lock[1] = { MIGRATE_LOCK_KEY };
    struct strbuf lines = STRBUF_INIT;
    PGconn *c;
    PGresult *r;
    size_t i;
    int n = 0, rc = -1, ex;

    if (added)
        *added = 0;
    if (idb_ensure(db, e) < 0)
        return err_prefix(e, "notification migration");
    c = idb_pgconn(db);
    r = q(c, "begin", "BEGIN", 0, NULL, PGRES_COMMAND_OK, e);
    if (!r)
        goto out;
    PQclear(r);
    /* Two controllers starting at once: the second waits, then finds everything. */
    r = q(c, "lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock, PGRES_TUPLES_OK, e);
    if (!r)
        goto out;
    PQclear(r);
    for (i = 0; i < NOBJS; i++) {
        ex = exists(c, &objs[i], e);
        if (ex < 0)
            goto out;
        if (ex)
            continue;
        r = q(c, "create", objs[i].sql, 0, NULL, PGRES_COMMAND_OK, e);
        if (!r) {
            err_prefix(e, "add %s %s%s%s", objs[i].kind, objs[i].name,
                       objs[i].table ? " on " : "()", objs[i].table ? objs[i].table : "");
            goto out;
        }
        PQclear(r);
        strbuf_addf(&lines, "added %s %s%s%s\n", objs[i].kind, objs[i].name,
                    objs[i].table ? " on " : "()", objs[i].table ? objs[i].table : "");
        n++;
    }
    r = q(c, "commit", "COMMIT", 0, NULL, PGRES_COMMAND_OK, e);
    if (!r)
        goto out;
    PQclear(r);
    rc = 0;
    if (report) {
        if (n)
            strbuf_add(report, lines.buf, lines.len);
        else
            strbuf_adds(report, "nothing to add: functions plateop_notify_row_v1() and "
                                "plateop_notify_images_v1() and trigger plateop_notify_v1 on "
                                "image_analyses, image_sub_analyses, images and "
                                "plate_acquisition are present\n");
    }
    if (added)
        *added = n;
out:
    if (rc < 0) {
        if (PQstatus(c) == CONNECTION_OK)
            PQclear(PQexecParams(c, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
        err_prefix(e, "notification migration (nothing was added)");
    }
    strbuf_release(&lines);
    return rc;
}

/* ---- listener ---- */

#define LISTEN_BACKOFF_FIRST_MS 100
#define LISTEN_BACKOFF_MAX_MS 5000

struct idb_listener {
    struct idb *db;
    int up;                 /* connected and listening */
    int greeted;            /* the first RESYNC was delivered */
    int poll_ms;
    long long next_poll;
    long long next_attempt;
    int delay_ms;
    unsigned reconnects;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int do_listen(struct idb_listener *l, struct err *e)
{
    PGresult *r = q(idb_pgconn(l->db), "listen", "LISTEN " IDB_NOTIFY_CHANNEL, 0, NULL,
                    PGRES_COMMAND_OK, e);

    PQclear(r);
    return r ? 0 : -1;
}

struct idb_listener *idb_listener_open(const struct idb_config *cfg, int poll_interval_ms,
                                       struct err *e)
{
    struct idb_listener *l = calloc(1, sizeof(*l));

    if (!l) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    l->poll_ms = poll_interval_ms > 0 ? poll_interval_ms : 60000;
    l->delay_ms = LISTEN_BACKOFF_FIRST_MS;
    l->db = idb_open(cfg, e);
    if (!l->db || do_listen(l, e) < 0) {
        err_prefix(e, "ImageDB listener");
        idb_listener_close(l);
        return NULL;
    }
    if (PQsetnonblocking(idb_pgconn(l->db), 1) != 0)
        log_warn(NULL, "imagedb listener: cannot make the connection non-blocking");
    l->up = 1;
    l->next_poll = now_ms() + l->poll_ms;
    return l;
}

void idb_listener_close(struct idb_listener *l)
{
    if (!l)
        return;
    idb_close(l->db);
    free(l);
}

int idb_listener_fd(const struct idb_listener *l)
{
    return l->up ? PQsocket(idb_pgconn(l->db)) : -1;
}

int idb_listener_connected(const struct idb_listener *l)
{
    return l->up;
}

unsigned idb_listener_reconnects(const struct idb_listener *l)
{
    return l->reconnects;
}

int idb_listener_timeout_ms(const struct idb_listener *l)
{
    long long now = now_ms(), due = l->next_poll;

    if (!l->greeted)
        return 0;
    if (!l->up && l->next_attempt < due)
        due = l->next_attempt;
    due -= now;
    if (due < 0)
        return 0;
    return due > 1000000000LL ? 1000000000 : (int)due;
}

static void resync(idb_event_fn fn, void *arg, const char *reason)
{
    struct idb_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = IDB_EVENT_RESYNC;
    ev.reason = reason;
    fn(&ev, arg);
}

static long long member_ll(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void deliver(PGnotify *n, idb_event_fn fn, void *arg)
{
    struct idb_event ev;
    json_t *o = json_loads(n->extra, 0, NULL);

    memset(&ev, 0, sizeof(ev));
    ev.kind = IDB_EVENT_NOTIFY;
    ev.payload = n->extra;
    if (json_is_object(o)) {
        ev.table = json_string_value(json_object_get(o, "table"));
        ev.op = json_string_value(json_object_get(o, "op"));
        ev.id = member_ll(o, "id");
        ev.analysis_id = member_ll(o, "analysis_id");
        ev.plate_acquisition_id = member_ll(o, "plate_acquisition_id");
    }
    fn(&ev, arg);
    json_decref(o);
}

static void lost(struct idb_listener *l, long long now)
{
    const char *msg = PQerrorMessage(idb_pgconn(l->db));

    log_warn(NULL, "imagedb listener: connection to %s lost: %.*s; reconnecting",
             idb_target(l->db), (int)strcspn(msg, "\n"), msg);
    l->up = 0;
    l->next_attempt = now;
    l->delay_ms = LISTEN_BACKOFF_FIRST_MS;
}

static void try_reconnect(struct idb_listener *l, idb_event_fn fn, void *arg)
{
    struct err e;

    err_clear(&e);
    if (idb_reconnect(l->db, &e) == 0 && do_listen(l, &e) == 0) {
        PQsetnonblocking(idb_pgconn(l->db), 1);
        l->up = 1;
        l->reconnects++;
        l->delay_ms = LISTEN_BACKOFF_FIRST_MS;
        l->next_poll = now_ms() + l->poll_ms;
        log_info(NULL, "imagedb listener: reconnected to %s and listening again",
                 idb_target(l->db));
        resync(fn, arg, "reconnected");
        return;
    }
    l->next_attempt = now_ms() + idb_jitter_ms(l->delay_ms);
    log_debug(NULL, "imagedb listener: reconnect failed (%s); next try in %d ms", e.msg,
              l->delay_ms);
    l->delay_ms = l->delay_ms * 2 > LISTEN_BACKOFF_MAX_MS ? LISTEN_BACKOFF_MAX_MS
                                                           : l->delay_ms * 2;
}

int idb_listener_service(struct idb_listener *l, idb_event_fn fn, void *arg, struct err *e)
{
    long long now = now_ms();
    PGconn *c;
    PGnotify *n;

    (void)e;
    if (!l->greeted) {
        l->greeted = 1;
        resync(fn, arg, "connected");
    }
    if (l->up) {
        c = idb_pgconn(l->db);
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
            /* Notifications that arrived before the loss are still delivered. */
            while ((n = PQnotifies(c)) != NULL) {
                deliver(n, fn, arg);
                PQfreemem(n);
            }
            lost(l, now);
        } else {
            while ((n = PQnotifies(c)) != NULL) {
                deliver(n, fn, arg);
                PQfreemem(n);
            }
        }
    }
    if (!l->up && now >= l->next_attempt)
        try_reconnect(l, fn, arg);
    now = now_ms();
    if (l->up && now >= l->next_poll) {
        l->next_poll = now + l->poll_ms;
        resync(fn, arg, "poll");
    }
    return 0;
}
