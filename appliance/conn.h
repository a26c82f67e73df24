/*
 * The TCP connection pipeline: a client stream (from the netstack, or later the explicit proxy)
 * and an upstream socket on the host stack, relayed both ways with bounded buffers.
 */
#ifndef MITMTUN_CONN_H
#define MITMTUN_CONN_H

#include "netstack/netstack.h"

struct bufferevent;
struct worker;

/* netstack_handlers.tcp_syn: starts the upstream connect for a held SYN. arg is the worker. */
void conn_syn(void *arg, struct netstack_syn *syn, const struct netstack_endpoint *client,
              const struct netstack_endpoint *server);
/* netstack_handlers.tcp_established: the client's handshake is done; start relaying. */
void conn_accepted(void *ctx, struct bufferevent *bev);

/* Closes every connection of w with end "shutdown". */
void conn_close_all(struct worker *w);
/* Frees connections closed since the last call. */
void conn_reap(struct worker *w);

#endif
