/* The TUN device: one .c per operating system behind this header (tun_linux.c for now). */
#ifndef MITMTUN_TUN_H
#define MITMTUN_TUN_H

#include <netinet/in.h>

/*
 * Opens or creates the TUN device called name, non-blocking: IFF_TUN without packet
 * information, with a virtio_net_hdr before every packet both ways (IFF_VNET_HDR) and TCP
 * segmentation offload (reads may return TCP packets up to 64 KiB with partial checksums).
 * With multi_queue, every call opens one more queue of the device: the kernel spreads the
 * flows it sends over them, each flow always to the same queue.
 * Returns the fd, or -1 with errno set (EPERM: the process lacks CAP_NET_ADMIN).
 */
int tun_open(const char *name, int multi_queue);

/*
 * Gives the device its IPv4 address and prefix, the IPv6 address when prefix6 > 0, the MTU, and
 * brings it up. Returns 0, or -1 with errno set and what failed in *step.
 */
int tun_configure(const char *name, const struct in_addr *addr, int prefix,
                  const struct in6_addr *addr6, int prefix6, int mtu, const char **step);

/*
 * Where the kernel does its work for what we write into the TUN (forwarding, the client's TCP
 * receive). Inline, the default, it runs inside our write(): cheapest for small packets, which
 * it answers at once. For bulk traffic (64 KiB offloaded writes) that work is most of our
 * thread's time, so "spread" pins our thread to one CPU and steers the TUN's receive processing
 * (RPS) to the others, and the two run in parallel; it costs an interprocessor interrupt per
 * packet written, which request/response traffic pays in full. The worker switches between the
 * two as its netstack reports bulk traffic.
 */
struct tun_steer;

/*
 * Prepares steering for the calling thread and the TUN called name, inline for now. On success
 * *cpu is the CPU the thread will be pinned to and others (len bytes) the mask of the rest.
 * NULL with errno 0: nothing to spread to (fewer than two CPUs allowed, or over 32); NULL with
 * errno set: the device's rps_cpus cannot be opened for writing.
 */
struct tun_steer *tun_steer_new(const char *name, int *cpu, char *others, size_t len);

/* Spread (1) or inline (0); a no-op if already so. Returns 0, or -1 with errno. */
int tun_steer_set(struct tun_steer *st, int spread);

/* Back to inline, and frees st (NULL is fine). */
void tun_steer_free(struct tun_steer *st);

#endif
