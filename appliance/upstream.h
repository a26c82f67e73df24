/* Sockets on the host's own network stack, for the upstream side of every relayed flow. */
#ifndef MITMTUN_UPSTREAM_H
#define MITMTUN_UPSTREAM_H

#include "netstack/netstack.h"

#include <stdint.h>
#include <sys/socket.h>

/*
 * A non-blocking socket of type (SOCK_STREAM or SOCK_DGRAM) for family, carrying SO_MARK mark so
 * that policy routing sends it out over the host stack instead of back into the TUN; TCP ones
 * have TCP_NODELAY. Returns the fd or -1 with errno set.
 */
int upstream_socket(int family, int type, uint32_t mark);

/* ep as a sockaddr; returns its length. */
socklen_t upstream_sockaddr(const struct netstack_endpoint *ep, struct sockaddr_storage *ss);

/* How a non-blocking connect on fd ended: 0, or its errno (ETIMEDOUT when timed_out). */
int upstream_connect_result(int fd, int timed_out);

/* Makes the next close() of a TCP socket send RST instead of FIN. */
void upstream_set_reset_on_close(int fd);

#endif
