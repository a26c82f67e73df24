/* The TUN device: one .c per operating system behind this header (tun_linux.c for now). */
#ifndef MITMTUN_TUN_H
#define MITMTUN_TUN_H

#include <netinet/in.h>

/*
 * Opens or creates the TUN device called name (IFF_TUN without packet information), non-blocking.
 * Returns the fd, or -1 with errno set (EPERM: the process lacks CAP_NET_ADMIN).
 */
int tun_open(const char *name);

/*
 * Gives the device its IPv4 address and prefix, the IPv6 address when prefix6 > 0, the MTU, and
 * brings it up. Returns 0, or -1 with errno set and what failed in *step.
 */
int tun_configure(const char *name, const struct in_addr *addr, int prefix,
                  const struct in6_addr *addr6, int prefix6, int mtu, const char **step);

#endif
