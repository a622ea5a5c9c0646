/*
 * timefmt: the two time formats the node agent speaks.
 *
 * Kubernetes object times (startTime, lastHeartbeatTime, ...) are RFC 3339
 * in UTC with whole seconds; container log lines carry RFC 3339 with
 * nanoseconds, like the CRI log format, so `kubectl logs --timestamps`
 * shows them as the kubelet would.
 */
#ifndef NODEAGENT_TIMEFMT_H
#define NODEAGENT_TIMEFMT_H

#include <time.h>

#define TIMEFMT_MAX 40  /* room for either format plus NUL */

/* Writes "2006-01-02T15:04:05Z" for t into buf (TIMEFMT_MAX bytes). Returns buf. */
char *timefmt_seconds(char *buf, time_t t);

/* Writes "2006-01-02T15:04:05.000000000Z" for ts into buf (TIMEFMT_MAX bytes). Returns buf. */
char *timefmt_nanos(char *buf, const struct timespec *ts);

/* The current wall-clock time in the seconds format. Returns buf. */
char *timefmt_now(char *buf);

/*
 * Parses RFC 3339 ("Z" or a "+hh:mm"/"-hh:mm" offset, optional fraction of
 * up to 9 digits) into *ts. Returns 0, or -1 when s is not such a time.
 * `end`, if not NULL, receives a pointer past the parsed text.
 */
int timefmt_parse(const char *s, struct timespec *ts, const char **end);

#endif
