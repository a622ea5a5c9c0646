/*
 * proctree: the processes of a container, found through /proc.
 *
 * Each container runs as its own session (its first process calls
 * setsid()), so "the container" is every process whose session id is that
 * first pid. A process that starts a session of its own escapes; the node
 * agent is also a child subreaper, so such escapees are at least reaped.
 */
#ifndef NODEAGENT_PROCTREE_H
#define NODEAGENT_PROCTREE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Sums the resident memory of each session in sids[0..n) into rss[i]
 * (bytes; 0 when nothing runs). Cost: one pass over /proc.
 */
void proctree_rss(const pid_t *sids, size_t n, long long *rss);

/*
 * Sends sig to every process of session sid (its process group first).
 * Returns the number of processes signalled. Cost: one pass over /proc.
 */
int proctree_kill(pid_t sid, int sig);

/*
 * The start time of pid (clock ticks since boot, /proc/PID/stat field 22),
 * or 0 when pid does not exist. Tells a process from a later one that
 * reused its pid.
 */
unsigned long long proctree_start_time(pid_t pid);

#endif
