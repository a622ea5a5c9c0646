/*
 * idb: the lab's ImageDB (PostgreSQL) through libpq.
 *
 * Reads plate acquisitions, channel maps, images (streamed) and new analysis
 * rows; writes the start / finish / error timestamps, status and result of
 * sub-analyses and rolls them up into the parent image_analyses row. Every
 * statement is fixed text with parameters (PQexecParams): no caller's text
 * is ever part of SQL.
 *
 * Connection. From a conninfo string or URI (idb_config.conninfo), else
 * $PLATEOP_IMAGEDB_URI, else libpq's PG* environment (PGHOST, PGPORT, ...).
 * The password, if any, is read from a file (a mounted Kubernetes Secret:
 * idb_config.password_file, else $PLATEOP_IMAGEDB_PASSWORD_FILE), again on
 * each reconnect so a rotated secret is picked up; otherwise libpq's own
 * PGPASSWORD / ~/.pgpass apply. idb_open() tries once and reports a refusal
 * at once. Afterwards, an operation that finds the connection lost
 * reconnects with exponential backoff (100 ms doubling to 2 s, with jitter)
 * for up to reconnect_budget_ms, then repeats itself once; every statement
 * is idempotent, so a repeat after a lost reply is harmless. A stream that
 * already delivered rows is not repeated: it fails.
 *
 * One struct idb is one connection; it is not thread-safe. Calls block.
 *
 * Errors: -1 or NULL with a struct err whose code is one of IDB_ERR_* and
 * whose message names the database target (never the password) or the row.
 */
#ifndef PLATEOP_IDB_H
#define PLATEOP_IDB_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "err.h"

enum idb_errcode {
    IDB_ERR_CONNECT = 4501, /* cannot connect, or the connection stayed lost */
    IDB_ERR_QUERY,          /* the server rejected a statement */
    IDB_ERR_NOTFOUND,       /* no such plate acquisition or sub-analysis */
    IDB_ERR_DATA,           /* the database holds something unusable here */
    IDB_ERR_CONFIG,         /* bad configuration, e.g. an unreadable password file */
};

struct idb_config {
    const char *conninfo;           /* NULL: $PLATEOP_IMAGEDB_URI, else PG* env */
    const char *password_file;      /* NULL: $PLATEOP_IMAGEDB_PASSWORD_FILE, else none */
    int connect_timeout_s;          /* <= 0: 5 */
    int reconnect_budget_ms;        /* <= 0: 30000; how long to keep reconnecting */
    const char *application_name;   /* NULL: "plateop" */
};

struct idb;

/*
 * Connects once. Returns NULL with e (IDB_ERR_CONNECT, e.g. "connect to
 * ImageDB host=127.0.0.1 port=5 dbname=imagedb user=plateop: connection
 * refused ...") or IDB_ERR_CONFIG. cfg may be NULL (all defaults); its
 * strings are copied.
 */
struct idb *idb_open(const struct idb_config *cfg, struct err *e);

/* Closes the connection and frees db. Safe on NULL. */
void idb_close(struct idb *db);

/*
 * Makes sure the connection is up, reconnecting with backoff within the
 * budget if it is not. Returns 0, or -1 with e: IDB_ERR_CONNECT ("ImageDB
 * connection lost; gave up after 7 attempts in 2000 ms: connect to ImageDB
 * host=...: ...") once the budget is spent, IDB_ERR_CONFIG at once for an
 * unreadable password file. Cost: blocks up to reconnect_budget_ms plus one
 * connect timeout while the server is away.
 */
int idb_ensure(struct idb *db, struct err *e);

/*
 * Connects once more now (no backoff), replacing the connection on success
 * and keeping the old one otherwise. Returns 0, or -1 with e as idb_open().
 */
int idb_reconnect(struct idb *db, struct err *e);

/*
 * "host=... port=... dbname=... user=...": where db points, for messages.
 * Owned by db, valid until idb_close() (a reconnect may rewrite it).
 */
const char *idb_target(const struct idb *db);

/*
 * The libpq connection, for lib modules that need it (idb_notify); owned by
 * db. NULL while disconnected (after a failed probe, for instance).
 */
PGconn *idb_pgconn(struct idb *db);

/* Number of (re)connections made so far, 1 after idb_open(). Cheap. */
unsigned idb_connections(const struct idb *db);

/*
 * A backoff delay with jitter: 75% to 125% of delay_ms, drawn from a
 * generator seeded per process, so that many clients that lost the same
 * server do not come back in step. Thread-safe.
 */
int idb_jitter_ms(int delay_ms);

/*
 * One round trip ("SELECT 1") on the connection as it is, for a readiness
 * check: no reconnect and no retry, and the wait for the answer is bounded
 * by timeout_ms, so a server that accepts but never answers costs no more
 * than that. A connection that did not answer in time, or was lost, is
 * dropped (idb_pgconn() is then NULL): the next idb_ensure() or
 * idb_reconnect() makes a new one. Returns 0, or -1 with e: IDB_ERR_CONNECT
 * ("ImageDB host=... did not answer within 2000 ms", "not connected to
 * ImageDB ...", "connection to ImageDB ... lost: ...") or IDB_ERR_QUERY (the
 * server answered with an error).
 */
int idb_probe(struct idb *db, int timeout_ms, struct err *e);

/* ---- plate acquisitions and channel maps ---- */

struct idb_acquisition {
    long long id;
    char *plate_barcode;
    int has_channel_map;
    int channel_map_id;
    int finished;           /* finished IS NOT NULL (imaging complete) */
    char *finished_at;      /* finished as text, or NULL */
    int timepoint;
    char *folder;           /* NULL when unset */
};

/*
 * Reads one plate acquisition. Returns 0, or -1 with e: IDB_ERR_NOTFOUND
 * ("plate acquisition 42 not found"), IDB_ERR_CONNECT, IDB_ERR_QUERY.
 * Release *out with idb_acquisition_release().
 */
int idb_acquisition_get(struct idb *db, long long id, struct idb_acquisition *out,
                        struct err *e);

/* Frees the strings of *a (not a itself) and zeroes it. Safe on a zeroed one. */
void idb_acquisition_release(struct idb_acquisition *a);

struct idb_channel {
    int channel;
    char *dye;
};

/*
 * Reads channel map map_id, ordered by channel. An empty or missing map is
 * an error (IDB_ERR_DATA, "channel map 7 is empty"). Free *out with
 * idb_channels_free().
 */
int idb_channel_map_get(struct idb *db, int map_id, struct idb_channel **out, size_t *n,
                        struct err *e);

/* Frees an array of n channels from idb_channel_map_get(). Safe on NULL. */
void idb_channels_free(struct idb_channel *c, size_t n);

/* ---- images ---- */

/* One image row; strings point into libpq's result, valid during the callback. */
struct idb_image {
    long long id;
    int timepoint;
    const char *well;
    int site;
    int z;
    int channel;
    const char *path;
};

/* Called once per image row; returns 0 to go on, or -1 with e to stop the stream. */
typedef int (*idb_image_fn)(const struct idb_image *img, void *arg, struct err *e);

/*
 * Streams the images of a plate acquisition to fn in the order (well,
 * timepoint, site, z, channel), the order plan_add() wants. Images that
 * tie on all of these (duplicates) come in no set order: the planner
 * rejects their image set whichever comes first, so the plan stays the
 * same, and the server need not sort within the index order. Rows come
 * one at a time (libpq's single-row mode) as the server sends them, so
 * memory stays small whatever the plate's size and the caller's work
 * overlaps the server's scan; fn returning -1 cancels the query. When the acquisition has one timepoint (the
 * usual case) the order comes straight from the images_acq_idx index;
 * otherwise the server sorts. fn returns 0, or -1 with e set to stop.
 * *count (may be NULL) receives the rows delivered. Returns 0 or -1.
 * Cost: one pass over the acquisition's index entries and rows.
 */
int idb_images_stream(struct idb *db, long long acq_id, idb_image_fn fn, void *arg,
                      size_t *count, struct err *e);

/* ---- analyses ---- */

/* A sub-analysis row with its parent's pipeline name and meta. */
struct idb_sub_analysis {
    long long sub_id;
    long long analysis_id;
    long long plate_acquisition_id;
    int priority;
    json_t *meta;               /* NULL when SQL NULL */
    long long *depends_on;      /* depends_on_sub_id as numbers */
    size_t ndepends;
    int depends_invalid;        /* depends_on_sub_id is not a list of integers */
    char *pipeline_name;        /* of the parent image_analyses row; may be NULL */
    json_t *analysis_meta;      /* of the parent; may be NULL */
    char *start;                /* timestamps as text; NULL when SQL NULL */
    char *finish;
    char *error;
    json_t *status;
    json_t *result;
};

/*
 * Reads the sub-analyses that are new (start, finish and error all NULL),
 * in the old system's priority order: ascending priority, then sub_id.
 * Returns 0 with *out (free with idb_sub_analyses_free()) and *n, or -1.
 */
int idb_sub_analyses_new(struct idb *db, struct idb_sub_analysis **out, size_t *n,
                         struct err *e);

/*
 * Reads one sub-analysis into *out. Returns 0, or -1 with e
 * (IDB_ERR_NOTFOUND if absent, IDB_ERR_CONNECT, IDB_ERR_QUERY). Release
 * *out with idb_sub_analysis_release().
 */
int idb_sub_analysis_get(struct idb *db, long long sub_id, struct idb_sub_analysis *out,
                         struct err *e);

/* Frees what *a holds (not a itself) and zeroes it. Safe on a zeroed one. */
void idb_sub_analysis_release(struct idb_sub_analysis *a);

/* Frees an array of n sub-analyses from idb_sub_analyses_new(). Safe on NULL. */
void idb_sub_analyses_free(struct idb_sub_analysis *a, size_t n);

/* What a write-back marks, besides status and result. */
enum idb_mark {
    IDB_MARK_NONE,      /* status / result only */
    IDB_MARK_START,     /* start = now() if still NULL */
    IDB_MARK_FINISH,    /* finish = now() if still NULL */
    IDB_MARK_ERROR,     /* error = now() if still NULL */
};

/*
 * Writes back one change to sub-analysis sub_id in one transaction: the mark,
 * status (jsonb, replaced; NULL keeps it) and result (jsonb, replaced; NULL
 * keeps it). In the same transaction the parent image_analyses row is
 * rolled up: start when its first sub-analysis has started, finish when all
 * have finished, error when any has failed (each only if still NULL), and
 * status {state: Pending, Running, Succeeded or Failed; progress: "1 / 2
 * steps done"; error_message: "step <sub_id>: <that step's error_message>"
 * of the first step that failed}. The parent row is locked first, so
 * concurrent writers of sibling rows see each other; the parent is written
 * only when it changes. Timestamps never move once set, so a repeat is
 * harmless. Returns 0, or -1 with e (IDB_ERR_NOTFOUND if sub_id does not
 * exist; nothing is written then). Cost: one transaction of four
 * statements, plus a scan of the parent's sub-analyses.
 */
int idb_sub_analysis_update(struct idb *db, long long sub_id, enum idb_mark mark,
                            const json_t *status, const json_t *result, struct err *e);

/*
 * A status object: {"state": state, "progress": progress, "error_message":
 * error_message}, members with NULL values left out. New reference; NULL on
 * allocation failure.
 */
json_t *idb_status_new(const char *state, const char *progress, const char *error_message);

/* A result object: {"job_folder": job_folder, "file_list": [files...]}. New reference. */
json_t *idb_result_new(const char *job_folder, const char *const *files, size_t nfiles);

#endif
