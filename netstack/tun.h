/* The TUN device: one .c per operating system behind this header (tun_linux.c for now). */
#ifndef MITMTUN_TUN_H
#define MITMTUN_TUN_H

#include <netinet/in.h>

/*
 * Opens or creates the TUN device called name, non-blocking: IFF_TUN without packet
 * information, with a virtio_net_hdr before every packet both ways (IFF_VNET_HDR) and TCP
 * segmentation offload (reads may return TCP packets up to 64 KiB with partial checksums).
 * Returns the fd, or -1 with errno set (EPERM: the process lacks CAP_NET_ADMIN).
 */
int tun_open(const char *name);

/*
 * Gives the device its IPv4 address and prefix, the IPv6 address when prefix6 > 0, the MTU, and
 * brings it up. Returns 0, or -1 with errno set and what failed in *step.
 */
int tun_configure(const char *name, const struct in_addr *addr, int prefix,
                  const struct in6_addr *addr6, int prefix6, int mtu, const char **step);

/*
 * Spreads the kernel's work for what we write into the TUN (forwarding, the client's TCP receive)
 * away from our own thread: pins the calling thread to the last CPU it may run on and steers the
 * TUN's receive processing (RPS) to the other allowed CPUs. Returns the CPU pinned to, 0 with
 * nothing done when fewer than two CPUs (or more than 32) are allowed, -1 with errno on failure.
 */
int tun_steer(const char *name, char *others, size_t len);

#endif
