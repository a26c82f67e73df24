/*
 * Policy routing for the two deployments, installed at start and removed at exit:
 *   gateway: packets arriving on [routing] lan_interface (a hotspot's wlan0) are routed into the
 *            TUN; forwarding is switched on while the appliance runs.
 *   device:  this machine's own traffic (only [routing] uids' if set) is routed into the TUN,
 *            except sockets carrying [routing] mark (the appliance's own upstream sockets) and
 *            destinations with a more specific route than the default (LAN, loopback).
 *   none:    nothing is installed; the user routes into the TUN.
 * Rules carry fixed priorities derived from [routing] table, and every start first deletes what
 * a crashed run may have left, so nothing piles up.
 */
#ifndef MITMTUN_ROUTING_H
#define MITMTUN_ROUTING_H

#include "config.h"

struct routing {
    const struct config *cfg;
    int installed;
    char forward4[8]; /* net.ipv4.ip_forward before we set it, "" if untouched */
    char forward6[8]; /* net.ipv6.conf.all.forwarding likewise */
};

/* Returns 0, or -1 after logging the command that failed (and undoing what was done). */
int routing_setup(struct routing *r, const struct config *cfg);
void routing_teardown(struct routing *r);

#endif
