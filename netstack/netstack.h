/*
 * The user-space network stack behind the TUN device. It reads IP packets from the TUN, hands
 * TCP to lwIP (which terminates every connection, whatever its destination) and UDP and ICMP echo
 * to the appliance, and writes what lwIP and the appliance answer back into the TUN.
 *
 * Every accepted TCP connection reaches the appliance as one end of a libevent bufferevent pair,
 * so the layers above see an ordinary bufferevent whatever the transport:
 *   - bytes the client sends arrive as input; bytes written to it go to the client;
 *   - BEV_EVENT_EOF: the client half-closed (FIN);
 *   - BEV_EVENT_ERROR|BEV_EVENT_READING: the client reset the connection;
 *   - BEV_EVENT_ERROR|BEV_EVENT_WRITING: lwIP gave up on it (retransmission timeout);
 *   - bufferevent_flush(bev, EV_WRITE, BEV_FINISHED) sends a FIN once the queued bytes are out;
 *   - bufferevent_trigger_event(partner, BEV_EVENT_ERROR, 0) resets the client.
 * Window flow control: lwIP's receive window is reopened only as the appliance takes bytes out
 * of the pair, and the pair stops delivering while lwIP's send buffer is full.
 *
 * Everything here runs on the thread of the event_base it was created with. No lwIP type or
 * header leaks out of netstack/.
 */
#ifndef MITMTUN_NETSTACK_H
#define MITMTUN_NETSTACK_H

#include "packet.h"

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct netstack;
struct netstack_syn; /* a client's SYN, held until the upstream connect is decided */

struct netstack_endpoint {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint16_t port; /* host order */
};

struct netstack_handlers {
    void *arg;
    /*
     * A SYN for a new connection from client to server. The SYN is held (retransmissions
     * dropped) until the handler calls netstack_syn_accept or netstack_syn_reject, which it may
     * do at once or later; it must do one of them.
     */
    void (*tcp_syn)(void *arg, struct netstack_syn *syn, const struct netstack_endpoint *client,
                    const struct netstack_endpoint *server);
    /* The client completed the handshake of an accepted SYN; ctx is what netstack_syn_accept
     * was given, bev the stream (see above), now the handler's. */
    void (*tcp_established)(void *ctx, struct bufferevent *bev);
    /* A UDP datagram; pkt/len is the whole IP packet, pi its parse. */
    void (*udp)(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi);
    /* An ICMP or ICMPv6 echo request. */
    void (*echo)(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi);
    /*
     * Optional. Bulk traffic through the TUN began (on = 1: a download or an upload moving
     * offloaded 64 KiB packets) or ended (on = 0: none for a few hundred milliseconds).
     */
    void (*bulk)(void *arg, int on);
};

enum netstack_reject {
    NETSTACK_REJECT_RST,         /* as a closed port answers */
    NETSTACK_REJECT_UNREACHABLE, /* ICMP host / address unreachable */
    NETSTACK_REJECT_SILENT,      /* forget the SYN */
};

struct netstack_counters {
    uint64_t packets_in, packets_out;
    uint64_t bytes_in, bytes_out; /* IP bytes of those packets */
    uint64_t segments_merged;     /* lwIP segments sent inside larger offloaded packets */
    uint64_t dropped_malformed;   /* could not be parsed */
    uint64_t dropped_fragments;   /* IP fragments (not reassembled) */
    uint64_t dropped_other;       /* protocols we do not relay */
    uint64_t tun_write_errors;    /* TUN queue full: TCP retransmits, UDP is lost */
    uint64_t time_wait;           /* connections lwIP holds in TIME_WAIT (as of the last tick) */
    uint64_t time_wait_cut;       /* ended early in TIME_WAIT, over TIME_WAIT_MAX */
};

/*
 * Starts the stack on an open, non-blocking TUN fd (see tun_open). lwIP keeps global state, so
 * there is one netstack per process for now. Returns NULL on failure (logged).
 */
struct netstack *netstack_new(struct event_base *base, int tun_fd, int mtu,
                              const struct netstack_handlers *handlers);
/* Aborts every connection and releases everything. */
void netstack_free(struct netstack *ns);
/*
 * A client that sends nothing for seconds while data waits for it (it left the Wi-Fi) loses its
 * connection, as one lwIP gives up on: tcp_established's stream gets an error. 0: only lwIP's
 * own retransmission limits, which take many minutes.
 */
void netstack_set_silence_timeout(struct netstack *ns, int seconds);
/*
 * A client that sends nothing for seconds, busy or idle, gets TCP keepalives: 4 of them, 15 s
 * apart (or seconds apart, if that is shorter). One that answers none (it left the Wi-Fi while
 * its connection idled) loses its connection like a silent one. 0: never. Applies to
 * connections accepted afterwards.
 */
void netstack_set_idle_keepalive(struct netstack *ns, int seconds);

/*
 * The upstream is connected: pass the SYN to lwIP, which answers it; tcp_established gets ctx when
 * the handshake completes. Until then syn stays valid and may still be rejected (silently, to
 * give up on a client that never completes the handshake).
 */
void netstack_syn_accept(struct netstack_syn *syn, void *ctx);
/* Refuse the SYN as the upstream did, and forget it: syn is freed. */
void netstack_syn_reject(struct netstack_syn *syn, enum netstack_reject how);

/* Writes one IP packet into the TUN. Returns 0 or -1 (counted, not logged). */
int netstack_send(struct netstack *ns, const uint8_t *pkt, size_t len);

void netstack_get_counters(const struct netstack *ns, struct netstack_counters *out);

/* "1.2.3.4:80" or "[2001:db8::1]:443"; buf must hold 64 bytes. Returns buf. */
char *netstack_endpoint_str(const struct netstack_endpoint *ep, char *buf, size_t len);

#endif
