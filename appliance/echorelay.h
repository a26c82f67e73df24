/*
 * ICMP echo (ping) to any address behind the TUN: the appliance pings the real destination over
 * the host stack (raw ICMP sockets, carrying [routing] mark) and returns its replies, so a ping
 * through the appliance answers exactly when the destination does. [icmp] echo = drop ignores
 * echo requests instead.
 */
#ifndef MITMTUN_ECHORELAY_H
#define MITMTUN_ECHORELAY_H

#include "netstack/packet.h"

#include <stddef.h>
#include <stdint.h>

struct echorelay;
struct worker;

/* NULL when echo is off or raw sockets are not allowed (logged once). */
struct echorelay *echorelay_new(struct worker *w);
void echorelay_free(struct echorelay *e);

/* netstack_handlers.echo; arg is the worker. */
void echorelay_packet(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi);

#endif
