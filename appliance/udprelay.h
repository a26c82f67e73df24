/*
 * UDP through the TUN: each (client, server) pair is a flow with its own connected host socket,
 * alive until idle for [udp] idle_timeout. Replies are written back into the TUN as IP packets
 * from the original server address. UDP to port 443 (QUIC) gets ICMP port unreachable unless
 * [udp] relay_quic is set, so browsers fall back to TCP (and so to TLS interception) at once.
 */
#ifndef MITMTUN_UDPRELAY_H
#define MITMTUN_UDPRELAY_H

#include "netstack/packet.h"

#include <stddef.h>
#include <stdint.h>

struct udprelay;
struct worker;

struct udprelay *udprelay_new(struct worker *w);
/* Closes every flow, recording each. */
void udprelay_free(struct udprelay *r);

/* netstack_handlers.udp; arg is the worker. */
void udprelay_packet(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi);

#endif
