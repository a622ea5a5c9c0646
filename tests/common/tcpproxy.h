/*
 * tcpproxy: a TCP forwarder on 127.0.0.1 that a test can cut, to see how
 * code behaves when the API server becomes unreachable mid-way (a network
 * partition) while the server itself keeps running for everyone else.
 *
 * Bytes are forwarded as they are (TLS passes through untouched). One
 * thread serves all connections.
 */
#ifndef PLATEOP_TCPPROXY_H
#define PLATEOP_TCPPROXY_H

struct tcpproxy;

/* Starts forwarding a free local port to 127.0.0.1:target_port. NULL on failure. */
struct tcpproxy *tcpproxy_start(int target_port);

/* The local port to connect to instead of the target. */
int tcpproxy_port(const struct tcpproxy *p);

/* Closes every forwarded connection and refuses new ones from now on. */
void tcpproxy_cut(struct tcpproxy *p);

/* Stops the thread and frees everything. Safe on NULL. */
void tcpproxy_stop(struct tcpproxy *p);

#endif
