/* idb: ImageDB access through libpq; see idb.h. */
#include "idb.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000

struct idb {
    PGconn *conn;
    char *conninfo;
    char *password_file;
    char *application_name;
    int connect_timeout_s;
    int reconnect_budget_ms;
    unsigned connections;
    char target[256];
};

/* ---- connection ---- */

static void notice_to_log(void *arg, const char *message)
{
    (void)arg;
    log_debug(NULL, "imagedb notice: %.*s", (int)strcspn(message, "\n"), message);
}

/* Copies a libpq message into e as one line: newlines and tabs become spaces. */
static int pq_error(struct err *e, int code, const char *what, const char *pqmsg)
{
    char line[ERR_MSG_MAX];
    size_t i, n = 0;
    int space = 0;

    for (i = 0; pqmsg && pqmsg[i] && n < sizeof(line) - 1; i++) {
        char c = pqmsg[i];

        if (c == '\n' || c == '\t' || c == '\r') {
            space = 1;
            continue;
        }
        if (space && n > 0)
            line[n++] = ' ';
        space = 0;
        if (n < sizeof(line) - 1)
            line[n++] = c;
    }
    line[n] = '\0';
    return err_set(e, code, "%s: %s", what, n ? line : "unknown libpq error");
}

static int read_password(const char *path, char **out, struct err *e)
{
    char buf[4097];
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return err_errno(e, errno, "read ImageDB password file %s", path);
    while (len < sizeof(buf) - 1) {
        n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;

            close(fd);
            return err_errno(e, saved, "read ImageDB password file %s", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len == sizeof(buf) - 1)
        return err_set(e, IDB_ERR_CONFIG, "ImageDB password file %s is larger than 4 KiB", path);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    *out = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    if (!*out)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

static void set_target(struct idb *db, PGconn *c)
{
    const char *host = c ? PQhost(c) : NULL, *port = c ? PQport(c) : NULL;
    const char *dbn = c ? PQdb(c) : NULL, *user = c ? PQuser(c) : NULL;

    snprintf(db->target, sizeof(db->target), "host=%s port=%s dbname=%s user=%s",
             host && *host ? host : "(default)", port && *port ? port : "(default)",
             dbn && *dbn ? dbn : "(default)", user && *user ? user : "(default)");
}

/* One connection attempt; on success replaces db->conn. */
static int connect_once(struct idb *db, struct err *e)
{
    const char *keys[6], *vals[6];
    char timeout[16], *password = NULL;
    PGconn *c;
    int n = 0;

    if (db->password_file && read_password(db->password_file, &password, e) < 0) {
        if (e && e->code != ENOMEM)
            e->code = IDB_ERR_CONFIG;
        return -1;
    }
    snprintf(timeout, sizeof(timeout), "%d", db->connect_timeout_s);
    keys[n] = "application_name", vals[n++] = db->application_name;
    keys[n] = "connect_timeout", vals[n++] = timeout;
    keys[n] = "client_encoding", vals[n++] = "UTF8";
    if (db->conninfo)
        keys[n] = "dbname", vals[n++] = db->conninfo;
    if (password)
        keys[n] = "password", vals[n++] = password;
    keys[n] = NULL, vals[n] = NULL;

    c = PQconnectdbParams(keys, vals, 1);
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    if (!c)
        return err_set(e, ENOMEM, "connect to ImageDB: out of memory");
    set_target(db, c);
    if (PQstatus(c) != CONNECTION_OK) {
        char what[320];

        snprintf(what, sizeof(what), "connect to ImageDB %s", db->target);
        pq_error(e, IDB_ERR_CONNECT, what, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PQsetNoticeProcessor(c, notice_to_log, NULL);
    if (db->conn)
        PQfinish(db->conn);
    db->conn = c;
    db->connections++;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct idb *idb_open(const struct idb_config *cfg, struct err *e)
{
    struct idb_config none = { 0 };
    struct idb *db = calloc(1, sizeof(*db));
    const char *ci, *pw;

    if (!db) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    if (!cfg)
        cfg = &none;
    ci = cfg->conninfo ? cfg->conninfo : getenv("PLATEOP_IMAGEDB_URI");
    pw = cfg->password_file ? cfg->password_file : getenv("PLATEOP_IMAGEDB_PASSWORD_FILE");
    if (ci && !*ci)
        ci = NULL;
    if (pw && !*pw)
        pw = NULL;
    db->conninfo = dup_or_null(ci);
    db->password_file = dup_or_null(pw);
    db->application_name = strdup(cfg->application_name ? cfg->application_name : "plateop");
    db->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 5;
    db->reconnect_budget_ms = cfg->reconnect_budget_ms > 0 ? cfg->reconnect_budget_ms : 30000;
    if ((ci && !db->conninfo) || (pw && !db->password_file) || !db->application_name) {
        err_set(e, ENOMEM, "out of memory");
        idb_close(db);
        return NULL;
    }
    if (connect_once(db, e) < 0) {
        idb_close(db);
        return NULL;
    }
    return db;
}

void idb_close(struct idb *db)
{
    if (!db)
        return;
    if (db->conn)
        PQfinish(db->conn);
    free(db->conninfo);
    free(db->password_file);
    free(db->application_name);
    free(db);
}

const char *idb_target(const struct idb *db)
{
    return db->target;
}

PGconn *idb_pgconn(struct idb *db)
{
    return db->conn;
}

unsigned idb_connections(const struct idb *db)
{
    return db->connections;
}

int idb_reconnect(struct idb *db, struct err *e)
{
    return connect_once(db, e);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int idb_jitter_ms(int delay_ms)
{
    static _Atomic unsigned long long state;
    unsigned long long x = state, seed;
    struct timespec ts;

    if (delay_ms <= 0)
        return 0;
    if (x == 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((unsigned long long)ts.tv_nsec << 20) ^ (unsigned long long)getpid() ^
               (unsigned long long)ts.tv_sec;
        x = seed | 1;
    }
    /* xorshift64: good enough to spread retries, and lock-free */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state = x;
    return delay_ms * 3 / 4 + (int)(x % (unsigned long long)(delay_ms / 2 + 1));
}

static int connected(const struct idb *db)
{
    return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

int idb_ensure(struct idb *db, struct err *e)
{
    long long deadline = now_ms() + db->reconnect_budget_ms, left, wait;
    int delay = BACKOFF_FIRST_MS, attempts = 0;

    if (connected(db))
        return 0;
    for (;;) {
        attempts++;
        if (connect_once(db, e) == 0) {
            log_info(NULL, "imagedb: reconnected to %s after %d attempt%s", db->target, attempts,
                     attempts == 1 ? "" : "s");
            return 0;
        }
        if (e && e->code == IDB_ERR_CONFIG)
            return -1;
        left = deadline - now_ms();
        if (left <= 0)
            return err_prefix(e, "ImageDB connection lost; gave up after %d attempts in %d ms",
                              attempts, db->reconnect_budget_ms);
        wait = idb_jitter_ms(delay);
        sleep_ms(wait < left ? wait : left);
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
}

/* Drops a connection that can no longer be trusted; the next idb_ensure() makes a new one. */
static void drop(struct idb *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
}

int idb_probe(struct idb *db, int timeout_ms, struct err *e)
{
    long long deadline = now_ms() + timeout_ms;
    PGresult *r;
    char what[320];
    int ok = 0, failed = 0;

    if (!connected(db))
        return err_set(e, IDB_ERR_CONNECT, "not connected to ImageDB %s", db->target);
    if (!PQsendQueryParams(db->conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0))
        goto lost;
    while (PQisBusy(db->conn)) {
        struct pollfd p = { PQsocket(db->conn), POLLIN, 0 };
        long long left = deadline - now_ms();
        int n;

        if (left <= 0) {
            /* The query is still in flight: this connection cannot run another. */
            drop(db);
            return err_set(e, IDB_ERR_CONNECT, "ImageDB %s did not answer within %d ms",
                           db->target, timeout_ms);
        }
        n = poll(&p, 1, (int)left);
        if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(db->conn)))
            goto lost;
    }
    while ((r = PQgetResult(db->conn))) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            ok = 1;
        else if (!failed++)
            pq_error(e, IDB_ERR_QUERY, "probe ImageDB", PQresultErrorMessage(r));
        PQclear(r);
    }
    if (ok && !failed)
        return 0;
    if (!connected(db))
        goto lost;
    if (!failed)
        err_set(e, IDB_ERR_QUERY, "probe ImageDB %s: no result", db->target);
    return -1;
lost:
    snprintf(what, sizeof(what), "connection to ImageDB %s lost", db->target);
    pq_error(e, IDB_ERR_CONNECT, what, PQerrorMessage(db->conn));
    drop(db);
    return -1;
}

/* ---- statements ---- */

/*
 * Runs one parameterised statement. Returns the result (caller PQclear()s)
 * with status `want`, or NULL with e set. The statement's text names it in
 * errors by `what`.
 */
static PGresult *run(struct idb *db, const char *what, const char *sql, int nparams,
                     const char *const *params, ExecStatusType want, struct err *e)
{
    PGresult *r;

    if (!db->conn) {
        err_set(e, IDB_ERR_CONNECT, "%s: not connected to ImageDB %s", what, db->target);
        return NULL;
    }
    r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (r && PQresultStatus(r) == want)
        return r;
    if (!connected(db)) {
        char ctx[384];

        snprintf(ctx, sizeof(ctx), "%s: connection to ImageDB %s lost", what, db->target);
        pq_error(e, IDB_ERR_CONNECT, ctx, PQerrorMessage(db->conn));
    } else {
        pq_error(e, IDB_ERR_QUERY, what,
                 r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
    }
    PQclear(r);
    return NULL;
}

/* Ends a failed transaction; the error reported stays the one that failed it. */
static void rollback(struct idb *db)
{
    if (connected(db))
        PQclear(PQexecParams(db->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
}

static int run_cmd(struct idb *db, const char *what, const char *sql, int nparams,
                   const char *const *params, struct err *e)
{
    PGresult *r = run(db, what, sql, nparams, params, PGRES_COMMAND_OK, e);

    PQclear(r);
    return r ? 0 : -1;
}

/*
 * Runs op(db, ctx, e), and once more after reconnecting if it failed because
 * the connection was lost and op says a repeat is safe (*repeatable left
 * non-zero). Every operation here is idempotent.
 */
typedef int (*op_fn)(struct idb *db, void *ctx, int *repeatable, struct err *e);

static int with_retry(struct idb *db, op_fn op, void *ctx, struct err *e)
{
    int repeatable = 1, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (idb_ensure(db, e) < 0)
            return -1;
        repeatable = 1;
        if (op(db, ctx, &repeatable, e) == 0)
            return 0;
        if (connected(db) || !repeatable || attempt == 1)
            return -1;
        log_warn(NULL, "imagedb: %s; reconnecting", e ? e->msg : "connection lost");
    }
    return -1;
}

static long long to_ll(const char *s)
{
    return strtoll(s, NULL, 10);
}

/* Fast decimal parse for the hot image loop; the server sends clean integers. */
static int to_int(const char *s)
{
    int neg = 0, v = 0;

    if (*s == '-') {
        neg = 1;
        s++;
    }
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

static char *col_dup(const PGresult *r, int row, int col, int *oom)
{
    char *s;

    if (PQgetisnull(r, row, col))
        return NULL;
    s = strdup(PQgetvalue(r, row, col));
    if (!s)
        *oom = 1;
    return s;
}

static json_t *col_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
}

/* ---- plate acquisitions ---- */

struct acq_ctx {
    long long id;
    struct idb_acquisition *out;
};

static int acq_op(struct idb *db, void *vctx, int *repeatable, struct err *e)
{
    struct acq_ctx *c = vctx;
    char id[24];
    const char *params[1] = { id };
    PGresult *r;
    int oom = 0;

    (void)repeatable;
    snprintf(id, sizeof(id), "%lld", c->id);
    r = run(db, "read plate acquisition",
            "SELECT id, plate_barcode, channel_map_id, finished IS NOT NULL, finished::text,"
            " timepoint, folder FROM plate_acquisition WHERE id = $1::bigint",
            1, params, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return err_set(e, IDB_ERR_NOTFOUND, "plate acquisition %lld not found", c->id);
    }
    memset(c->out, 0, sizeof(*c->out));
    c->out->id = to_ll(PQgetvalue(r, 0, 0));
    c->out->plate_barcode = col_dup(r, 0, 1, &oom);
    c->out->has_channel_map = !PQgetisnull(r, 0, 2);
    c->out->channel_map_id = c->out->has_channel_map ? to_int(PQgetvalue(r, 0, 2)) : 0;
    c->out->finished = PQgetvalue(r, 0, 3)[0] == 't';
    c->out->finished_at = col_dup(r, 0, 4, &oom);
    c->out->timepoint = PQgetisnull(r, 0, 5) ? 0 : to_int(PQgetvalue(r, 0, 5));
    c->out->folder = col_dup(r, 0, 6, &oom);
    PQclear(r);
    if (oom || !c->out->plate_barcode) {
        idb_acquisition_release(c->out);
        return err_set(e, ENOMEM, "read plate acquisition: out of memory");
    }
    return 0;
}

int idb_acquisition_get(struct idb *db, long long id, struct idb_acquisition *out,
                        struct err *e)
{
    struct acq_ctx c = { id, out };

    memset(out, 0, sizeof(*out));
    return with_retry(db, acq_op, &c, e);
}

void idb_acquisition_release(struct idb_acquisition *a)
{
    free(a->plate_barcode);
    free(a->finished_at);
    free(a->folder);
    memset(a, 0, sizeof(*a));
}

struct map_ctx {
    int map_id;
    struct idb_channel **out;
    size_t *n;
};

static int map_op(struct idb *db, void *vctx, int *repeatable, struct err *e)
{
    struct map_ctx *c = vctx;
    char id[16];
    const char *params[1] = { id };
    PGresult *r;
    struct idb_channel *ch;
    int i, nt, oom = 0;

    (void)repeatable;
    snprintf(id, sizeof(id), "%d", c->map_id);
    r = run(db, "read channel map",
            "SELECT channel, dye FROM channel_map WHERE map_id = $1::integer ORDER BY channel",
            1, params, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    nt = PQntuples(r);
    if (nt == 0) {
        PQclear(r);
        return err_set(e, IDB_ERR_DATA, "channel map %d is empty (no rows in channel_map)",
                       c->map_id);
    }
    ch = calloc((size_t)nt, sizeof(*ch));
    if (!ch) {
        PQclear(r);
        return err_set(e, ENOMEM, "read channel map: out of memory");
    }
    for (i = 0; i < nt; i++) {
        ch[i].channel = to_int(PQgetvalue(r, i, 0));
        ch[i].dye = col_dup(r, i, 1, &oom);
    }
    PQclear(r);
    if (oom) {
        idb_channels_free(ch, (size_t)nt);
        return err_set(e, ENOMEM, "read channel map: out of memory");
    }
    *c->out = ch;
    *c->n = (size_t)nt;
    return 0;
}

int idb_channel_map_get(struct idb *db, int map_id, struct idb_channel **out, size_t *n,
                        struct err *e)
{
    struct map_ctx c = { map_id, out, n };

    *out = NULL;
    *n = 0;
    return with_retry(db, map_op, &c, e);
}

void idb_channels_free(struct idb_channel *c, size_t n)
{
    size_t i;

    if (!c)
        return;
    for (i = 0; i < n; i++)
        free(c[i].dye);
    free(c);
}

/* ---- images ---- */

struct img_ctx {
    long long acq_id;
    idb_image_fn fn;
    void *arg;
    size_t count;
};

/*
 * The distinct timepoints of an acquisition, by a loose index scan (one
 * index probe per timepoint rather than a pass over every image).
 */
static const char sql_timepoints[] =
    "WITH RECURSIVE t(tp) AS ("
    " SELECT min(timepoint) FROM images WHERE plate_acquisition_id = $1::integer"
    " UNION ALL"
    " SELECT (SELECT min(timepoint) FROM images"
    "         WHERE plate_acquisition_id = $1::integer AND timepoint > t.tp)"
    " FROM t WHERE t.tp IS NOT NULL)"
    " SELECT count(tp), min(tp) FROM t";

static const char sql_images_one_tp[] =
    "SELECT id, timepoint, well, site, z, channel, path FROM images"
    " WHERE plate_acquisition_id = $1::integer AND timepoint = $2::integer"
    " ORDER BY well, site, z, channel";

static const char sql_images_any_tp[] =
    "SELECT id, timepoint, well, site, z, channel, path FROM images"
    " WHERE plate_acquisition_id = $1::integer"
    " ORDER BY well, timepoint, site, z, channel";

static int deliver(struct img_ctx *c, PGresult *r, struct err *e)
{
    struct idb_image img;
    int i, nt = PQntuples(r), j;

    for (i = 0; i < nt; i++) {
        for (j = 0; j < 7; j++)
            if (PQgetisnull(r, i, j))
                return err_set(e, IDB_ERR_DATA, "image %s of plate acquisition %lld has a NULL %s",
                               PQgetvalue(r, i, 0), c->acq_id, PQfname(r, j));
        img.id = to_ll(PQgetvalue(r, i, 0));
        img.timepoint = to_int(PQgetvalue(r, i, 1));
        img.well = PQgetvalue(r, i, 2);
        img.site = to_int(PQgetvalue(r, i, 3));
        img.z = to_int(PQgetvalue(r, i, 4));
        img.channel = to_int(PQgetvalue(r, i, 5));
        img.path = PQgetvalue(r, i, 6);
        c->count++;
        if (c->fn(&img, c->arg, e) < 0)
            return -1;
    }
    return 0;
}

/*
 * Runs the query in single-row mode: the server sends rows as its index scan
 * finds them and fn plans each as it comes, so the two overlap and memory
 * holds one row. A failure in fn cancels the query; either way the
 * connection is drained before returning.
 */
static int stream_rows(struct idb *db, struct img_ctx *c, const char *sql, int nparams,
                       const char *const *params, int *repeatable, struct err *e)
{
    PGresult *r;
    int rc = 0;

    if (!PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(db->conn))
        return pq_error(e, connected(db) ? IDB_ERR_QUERY : IDB_ERR_CONNECT, "read images",
                        PQerrorMessage(db->conn));
    while ((r = PQgetResult(db->conn))) {
        ExecStatusType st = PQresultStatus(r);

        if (rc == 0 && st == PGRES_SINGLE_TUPLE) {
            if (c->count > 0)
                *repeatable = 0;
            if (deliver(c, r, e) < 0) {
                PGcancel *cancel = PQgetCancel(db->conn);
                char why[256];

                *repeatable = 0;
                rc = -1;
                if (cancel) {
                    PQcancel(cancel, why, sizeof(why));
                    PQfreeCancel(cancel);
                }
            }
        } else if (rc == 0 && st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
            rc = pq_error(e, connected(db) ? IDB_ERR_QUERY : IDB_ERR_CONNECT, "read images",
                          PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    return rc;
}

static int images_op(struct idb *db, void *vctx, int *repeatable, struct err *e)
{
    struct img_ctx *c = vctx;
    char acq[24], tp[16];
    const char *params[2] = { acq, tp };
    PGresult *r;
    int ntp, rc = -1;

    snprintf(acq, sizeof(acq), "%lld", c->acq_id);
    if (run_cmd(db, "read images", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
                NULL, e) < 0)
        return -1;
    r = run(db, "read images: timepoints", sql_timepoints, 1, params, PGRES_TUPLES_OK, e);
    if (!r)
        goto out;
    ntp = to_int(PQgetvalue(r, 0, 0));
    snprintf(tp, sizeof(tp), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    if (ntp == 0) {
        rc = 0;
        goto out;
    }
    rc = stream_rows(db, c, ntp == 1 ? sql_images_one_tp : sql_images_any_tp, ntp == 1 ? 2 : 1,
                     params, repeatable, e);
out:
    /* Read-only: ending with ROLLBACK is the same as COMMIT and also ends a failed one. */
    rollback(db);
    return rc;
}

int idb_images_stream(struct idb *db, long long acq_id, idb_image_fn fn, void *arg,
                      size_t *count, struct err *e)
{
    struct img_ctx c = { acq_id, fn, arg, 0 };
    int rc = with_retry(db, images_op, &c, e);

    if (count)
        *count = c.count;
    return rc;
}

/* ---- analyses ---- */

static const char sql_sub_cols[] =
    "SELECT s.sub_id, s.analysis_id, s.plate_acquisition_id, s.priority, s.meta::text,"
    " s.depends_on_sub_id::text, a.pipeline_name, a.meta::text, s.start::text,"
    " s.finish::text, s.error::text, s.status::text, s.result::text"
    " FROM image_sub_analyses s JOIN image_analyses a ON a.id = s.analysis_id";

static void parse_depends(struct idb_sub_analysis *a, const PGresult *r, int row, int col,
                          int *oom)
{
    json_t *v, *x;
    size_t i;

    if (PQgetisnull(r, row, col))
        return;
    v = json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
    if (json_is_null(v)) {
        json_decref(v);
        return;
    }
    if (!json_is_array(v)) {
        a->depends_invalid = 1;
        json_decref(v);
        return;
    }
    a->depends_on = calloc(json_array_size(v) + 1, sizeof(*a->depends_on));
    if (!a->depends_on) {
        *oom = 1;
        json_decref(v);
        return;
    }
    json_array_foreach(v, i, x) {
        long long id;
        char *end = NULL;

        if (json_is_integer(x)) {
            a->depends_on[a->ndepends++] = json_integer_value(x);
            continue;
        }
        /* The GUI has been seen to store ids as strings: "12". */
        if (json_is_string(x) && json_string_length(x) > 0) {
            id = strtoll(json_string_value(x), &end, 10);
            if (*end == '\0') {
                a->depends_on[a->ndepends++] = id;
                continue;
            }
        }
        a->depends_invalid = 1;
    }
    json_decref(v);
}

static int fill_sub(struct idb_sub_analysis *a, const PGresult *r, int row)
{
    int oom = 0;

    memset(a, 0, sizeof(*a));
    a->sub_id = to_ll(PQgetvalue(r, row, 0));
    a->analysis_id = to_ll(PQgetvalue(r, row, 1));
    a->plate_acquisition_id = to_ll(PQgetvalue(r, row, 2));
    a->priority = PQgetisnull(r, row, 3) ? 0 : to_int(PQgetvalue(r, row, 3));
    a->meta = col_json(r, row, 4);
    parse_depends(a, r, row, 5, &oom);
    a->pipeline_name = col_dup(r, row, 6, &oom);
    a->analysis_meta = col_json(r, row, 7);
    a->start = col_dup(r, row, 8, &oom);
    a->finish = col_dup(r, row, 9, &oom);
    a->error = col_dup(r, row, 10, &oom);
    a->status = col_json(r, row, 11);
    a->result = col_json(r, row, 12);
    return oom ? -1 : 0;
}

struct subs_ctx {
    long long sub_id;   /* 0: the new ones */
    struct idb_sub_analysis **out;
    size_t *n;
};

static int subs_op(struct idb *db, void *vctx, int *repeatable, struct err *e)
{
    struct subs_ctx *c = vctx;
    struct strbuf sql = STRBUF_INIT;
    struct idb_sub_analysis *a = NULL;
    char id[24];
    const char *params[1] = { id };
    PGresult *r;
    int i, nt, rc = -1;

    (void)repeatable;
    strbuf_adds(&sql, sql_sub_cols);
    if (c->sub_id) {
        snprintf(id, sizeof(id), "%lld", c->sub_id);
        strbuf_adds(&sql, " WHERE s.sub_id = $1::bigint");
    } else {
        strbuf_adds(&sql, " WHERE s.start IS NULL AND s.finish IS NULL AND s.error IS NULL"
                          " ORDER BY s.priority ASC NULLS LAST, s.sub_id");
    }
    r = run(db, c->sub_id ? "read sub-analysis" : "read new sub-analyses", sql.buf,
            c->sub_id ? 1 : 0, params, PGRES_TUPLES_OK, e);
    strbuf_release(&sql);
    if (!r)
        return -1;
    nt = PQntuples(r);
    if (c->sub_id && nt == 0) {
        PQclear(r);
        return err_set(e, IDB_ERR_NOTFOUND, "sub-analysis %lld not found", c->sub_id);
    }
    a = calloc((size_t)nt + 1, sizeof(*a));
    if (!a)
        goto nomem;
    for (i = 0; i < nt; i++)
        if (fill_sub(&a[i], r, i) < 0) {
            idb_sub_analyses_free(a, (size_t)i + 1);
            a = NULL;
            goto nomem;
        }
    *c->out = a;
    *c->n = (size_t)nt;
    rc = 0;
    goto out;
nomem:
    err_set(e, ENOMEM, "read sub-analyses: out of memory");
out:
    PQclear(r);
    return rc;
}

int idb_sub_analyses_new(struct idb *db, struct idb_sub_analysis **out, size_t *n,
                         struct err *e)
{
    struct subs_ctx c = { 0, out, n };

    *out = NULL;
    *n = 0;
    return with_retry(db, subs_op, &c, e);
}

int idb_sub_analysis_get(struct idb *db, long long sub_id, struct idb_sub_analysis *out,
                         struct err *e)
{
    struct idb_sub_analysis *a = NULL;
    size_t n = 0;
    struct subs_ctx c = { sub_id, &a, &n };

    memset(out, 0, sizeof(*out));
    if (sub_id <= 0)
        return err_set(e, IDB_ERR_NOTFOUND, "sub-analysis %lld not found", sub_id);
    if (with_retry(db, subs_op, &c, e) < 0)
        return -1;
    *out = a[0];
    free(a);
    return 0;
}

void idb_sub_analysis_release(struct idb_sub_analysis *a)
{
    json_decref(a->meta);
    json_decref(a->analysis_meta);
    json_decref(a->status);
    json_decref(a->result);
    free(a->depends_on);
    free(a->pipeline_name);
    free(a->start);
    free(a->finish);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

void idb_sub_analyses_free(struct idb_sub_analysis *a, size_t n)
{
    size_t i;

    if (!a)
        return;
    for (i = 0; i < n; i++)
        idb_sub_analysis_release(&a[i]);
    free(a);
}

/* ---- write-backs ---- */

struct upd_ctx {
    long long sub_id;
    enum idb_mark mark;
    const char *status;     /* JSON text or NULL */
    const char *result;
};

/* Locks the parent row first: sibling write-backs then run one after another. */
static const char sql_lock_parent[] =
    "SELECT a.id FROM image_analyses a JOIN image_sub_analyses s ON s.analysis_id = a.id"
    " WHERE s.sub_id = $1::bigint FOR UPDATE OF a";

static const char sql_update_sub[] =
    "UPDATE image_sub_analyses SET"
    " start = CASE WHEN $2::int = 1 AND start IS NULL THEN now() ELSE start END,"
    " finish = CASE WHEN $2::int = 2 AND finish IS NULL THEN now() ELSE finish END,"
    " error = CASE WHEN $2::int = 3 AND error IS NULL THEN now() ELSE error END,"
    " status = COALESCE($3::jsonb, status),"
    " result = COALESCE($4::jsonb, result)"
    " WHERE sub_id = $1::bigint";

/*
 * The roll-up into the parent: start when a step has started, finish when
 * all have finished, error when one has failed (each set once), and a
 * status naming the overall state, the steps done and the first failure.
 * It writes (and so notifies) only when something changes.
 */
static const char sql_rollup_parent[] =
    "WITH k AS ("
    " SELECT bool_or(start IS NOT NULL) AS started, bool_and(finish IS NOT NULL) AS finished,"
    "        bool_or(error IS NOT NULL) AS failed,"
    "        jsonb_strip_nulls(jsonb_build_object("
    "         'state', CASE WHEN bool_or(error IS NOT NULL) THEN 'Failed'"
    "          WHEN bool_and(finish IS NOT NULL) THEN 'Succeeded'"
    "          WHEN bool_or(start IS NOT NULL) THEN 'Running' ELSE 'Pending' END,"
    "         'progress', count(finish) || ' / ' || count(*) || ' steps done',"
    "         'error_message', (array_agg('step ' || sub_id || ': '"
    "          || coalesce(status->>'error_message', 'failed') ORDER BY error, sub_id)"
    "          FILTER (WHERE error IS NOT NULL))[1])) AS st"
    " FROM image_sub_analyses WHERE analysis_id = $1::bigint)"
    " UPDATE image_analyses a SET"
    " start = CASE WHEN a.start IS NULL AND k.started THEN now() ELSE a.start END,"
    " finish = CASE WHEN a.finish IS NULL AND k.finished THEN now() ELSE a.finish END,"
    " error = CASE WHEN a.error IS NULL AND k.failed THEN now() ELSE a.error END,"
    " status = k.st"
    " FROM k WHERE a.id = $1::bigint AND ((a.start IS NULL AND k.started)"
    " OR (a.finish IS NULL AND k.finished) OR (a.error IS NULL AND k.failed)"
    " OR a.status IS DISTINCT FROM k.st)";

static int update_op(struct idb *db, void *vctx, int *repeatable, struct err *e)
{
    struct upd_ctx *c = vctx;
    char id[24], mark[4], parent[24];
    const char *params[4] = { id, mark, c->status, c->result };
    const char *pparams[1] = { parent };
    PGresult *r;
    int rc = -1;

    (void)repeatable;
    snprintf(id, sizeof(id), "%lld", c->sub_id);
    snprintf(mark, sizeof(mark), "%d", (int)c->mark);
    if (run_cmd(db, "update sub-analysis", "BEGIN", 0, NULL, e) < 0)
        return -1;
    r = run(db, "update sub-analysis: lock parent", sql_lock_parent, 1, params,
            PGRES_TUPLES_OK, e);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        PQclear(r);
        err_set(e, IDB_ERR_NOTFOUND, "sub-analysis %lld not found", c->sub_id);
        goto out;
    }
    snprintf(parent, sizeof(parent), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (run_cmd(db, "update sub-analysis", sql_update_sub, 4, params, e) < 0 ||
        run_cmd(db, "update parent analysis", sql_rollup_parent, 1, pparams, e) < 0 ||
        run_cmd(db, "update sub-analysis: commit", "COMMIT", 0, NULL, e) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        rollback(db);
    return rc;
}

int idb_sub_analysis_update(struct idb *db, long long sub_id, enum idb_mark mark,
                            const json_t *status, const json_t *result, struct err *e)
{
    struct upd_ctx c = { sub_id, mark, NULL, NULL };
    char *st = NULL, *rs = NULL;
    int rc = -1;

    if (status && !(st = json_dumps(status, JSON_COMPACT | JSON_ENCODE_ANY)))
        goto nomem;
    if (result && !(rs = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY)))
        goto nomem;
    c.status = st;
    c.result = rs;
    rc = with_retry(db, update_op, &c, e);
    if (rc < 0)
        err_prefix(e, "write back sub-analysis %lld", sub_id);
    goto out;
nomem:
    err_set(e, ENOMEM, "write back sub-analysis %lld: out of memory", sub_id);
out:
    free(st);
    free(rs);
    return rc;
}

json_t *idb_status_new(const char *state, const char *progress, const char *error_message)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    if ((state && json_object_set_new(o, "state", json_string(state)) < 0) ||
        (progress && json_object_set_new(o, "progress", json_string(progress)) < 0) ||
        (error_message &&
         json_object_set_new(o, "error_message", json_string(error_message)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *idb_result_new(const char *job_folder, const char *const *files, size_t nfiles)
{
    json_t *o = json_object(), *list = json_array();
    size_t i;

    if (!o || !list) {
        json_decref(list);
        goto fail;
    }
    for (i = 0; i < nfiles; i++)
        if (json_array_append_new(list, json_string(files[i])) < 0) {
            json_decref(list);
            goto fail;
        }
    /* json_object_set_new() takes the reference even when it fails. */
    if (json_object_set_new(o, "file_list", list) < 0 ||
        (job_folder && json_object_set_new(o, "job_folder", json_string(job_folder)) < 0))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}
