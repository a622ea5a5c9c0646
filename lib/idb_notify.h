/*
 * idb_notify: change notification from ImageDB (LISTEN/NOTIFY), with a slow
 * fallback poll so that a lost notification never loses an analysis.
 *
 * The migration (idb_notify_migrate()) is safe to run against the lab's
 * existing database, any number of times, by any number of controllers at
 * once: it only adds what is missing of
 *   - trigger functions plateop_notify_row_v1() and plateop_notify_images_v1(),
 *   - trigger plateop_notify_v1 on image_analyses and on image_sub_analyses
 *     (AFTER INSERT OR UPDATE, per row),
 *   - trigger plateop_notify_v1 on images (AFTER INSERT, per statement, with
 *     a transition table: one notification per plate acquisition and
 *     statement, not one per image),
 *   - trigger plateop_notify_v1 on plate_acquisition (AFTER UPDATE OF
 *     finished, per row, when it changes: imaging has finished),
 * in one transaction under an advisory lock, and reports what it added. It
 * never changes or drops anything, and never touches the tables' columns.
 * A later, different trigger gets a new name (_v2) rather than replacing
 * this one.
 *
 * Notifications arrive on channel IDB_NOTIFY_CHANNEL with a JSON payload:
 *   {"table":"image_sub_analyses","op":"INSERT","id":12,"analysis_id":3}
 *   {"table":"image_analyses","op":"UPDATE","id":3}
 *   {"table":"plate_acquisition","op":"UPDATE","id":7}
 *   {"table":"images","op":"INSERT","plate_acquisition_id":7,"count":2160,
 *    "min_id":100,"max_id":2259}
 *
 * The listener has its own connection, made for a poll() loop:
 *
 *   for (;;) {
 *       struct pollfd p = { idb_listener_fd(l), POLLIN, 0 };   // fd may be -1
 *       poll(&p, 1, idb_listener_timeout_ms(l));
 *       idb_listener_service(l, on_event, ctx, &e);
 *   }
 *
 * idb_listener_service() reads what arrived and calls back once per
 * notification (IDB_EVENT_NOTIFY). It also calls back with IDB_EVENT_RESYNC
 * - after every (re)connection (its LISTEN came after anything that
 *   happened while it was away: rescan the new rows),
 * - every poll interval (the slow fallback poll),
 * on which the caller rescans (idb_sub_analyses_new()). When the connection
 * drops it reconnects with exponential backoff (100 ms doubling to 5 s)
 * and LISTENs again; the fd changes, so ask for it on every loop. A
 * reconnection attempt blocks for at most the connect timeout.
 */
#ifndef PLATEOP_IDB_NOTIFY_H
#define PLATEOP_IDB_NOTIFY_H

#include "err.h"
#include "idb.h"

struct strbuf;

#define IDB_NOTIFY_CHANNEL "plateop_imagedb"

/*
 * Adds the trigger functions and triggers that are missing (see above).
 * Appends one line per addition to report (may be NULL), or "nothing to
 * add: ..." when all are present; *added (may be NULL) gets the number of
 * objects added. Returns 0, or -1 with e (nothing added then): e.g. a
 * missing table, or a role not allowed to create functions or triggers.
 */
int idb_notify_migrate(struct idb *db, struct strbuf *report, int *added, struct err *e);

enum idb_event_kind {
    IDB_EVENT_NOTIFY,   /* a notification arrived */
    IDB_EVENT_RESYNC,   /* rescan: (re)connected, or the fallback poll is due */
};

struct idb_event {
    enum idb_event_kind kind;
    /* NOTIFY: parsed from the payload (absent members are NULL / 0) */
    const char *table;
    const char *op;
    long long id;
    long long analysis_id;
    long long plate_acquisition_id;
    const char *payload;    /* the raw payload */
    /* RESYNC: "connected", "reconnected" or "poll" */
    const char *reason;
};

/* Called once per event; ev and the strings it points to live only during the call. */
typedef void (*idb_event_fn)(const struct idb_event *ev, void *arg);

struct idb_listener;

/*
 * Connects (once; a refusal is an error) and LISTENs. poll_interval_ms <= 0
 * means 60000. The first idb_listener_service() delivers RESYNC
 * "connected". NULL with e on failure.
 */
struct idb_listener *idb_listener_open(const struct idb_config *cfg, int poll_interval_ms,
                                       struct err *e);

/* The socket to poll for POLLIN, or -1 while disconnected. */
int idb_listener_fd(const struct idb_listener *l);

/* Milliseconds until idb_listener_service() is due even without input (>= 0). */
int idb_listener_timeout_ms(const struct idb_listener *l);

/*
 * Reads input without blocking, delivers events, and reconnects or polls
 * when due. Returns 0; -1 with e only for a failure that will not heal by
 * retrying (e.g. out of memory). Connection trouble is handled here and
 * shown by idb_listener_connected() and logs, not returned.
 */
int idb_listener_service(struct idb_listener *l, idb_event_fn fn, void *arg, struct err *e);

/* Whether the listener is connected and listening. Cheap. */
int idb_listener_connected(const struct idb_listener *l);

/* Number of successful reconnections after the first connection. Cheap. */
unsigned idb_listener_reconnects(const struct idb_listener *l);

/* Closes the listener's connection (its LISTEN ends with it) and frees l. Safe on NULL. */
void idb_listener_close(struct idb_listener *l);

#endif
