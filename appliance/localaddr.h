/*
 * This host's own addresses, for the explicit proxy's checks (never connect to the appliance
 * itself, admit local clients): read with getifaddrs() once, and again only after the kernel
 * reports an address change on a routing socket, instead of a netlink dump for every check.
 */
#ifndef MITMTUN_LOCALADDR_H
#define MITMTUN_LOCALADDR_H

#include <stdint.h>

struct localaddr;

/* Never NULL for want of a routing socket (each check then reads the addresses); NULL: out of
 * memory. */
struct localaddr *localaddr_new(void);
void localaddr_free(struct localaddr *l);

/* Whether addr (AF_INET or AF_INET6) is loopback, unspecified or one of this host's. l may be
 * NULL: the addresses are read for this check alone. */
int localaddr_has(struct localaddr *l, int family, const uint8_t *addr);

#endif
