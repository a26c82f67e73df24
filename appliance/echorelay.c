#include "echorelay.h"

#include "log.h"
#include "upstream.h"
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* linux/icmp.h has it but clashes with netinet/ip_icmp.h. */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif

#define ECHO_FLOWS   256  /* outstanding (client, destination, id) triples */
#define ECHO_TIMEOUT 30   /* seconds an unused triple is kept */
#define ECHO_MAX     2048 /* echo payload bytes relayed */

/* A client's ping to one destination, under an identifier of ours. */
struct echo_flow {
    int family; /* 0: free slot */
    uint8_t client[16];
    uint8_t server[16];
    uint16_t client_id; /* the client's identifier */
    uint16_t our_id;    /* the identifier we send with */
    time_t last;
};

struct echorelay {
    struct worker *w;
    int fd4, fd6;
    struct event *ev4, *ev6;
    uint16_t next_id; /* our ids are next_id * workers + the worker's index */
    struct echo_flow flows[ECHO_FLOWS];
    uint8_t buf[ECHO_MAX + 128];
    uint8_t packet[ECHO_MAX + 128];
};

static struct echo_flow *flow_for_request(struct echorelay *e, const struct packet_info *pi)
{
    size_t alen = packet_addr_len(pi->family);
    struct echo_flow *oldest = &e->flows[0];
    time_t now = time(NULL);

    for (int i = 0; i < ECHO_FLOWS; i++) {
        struct echo_flow *f = &e->flows[i];
        if (f->family == pi->family && f->client_id == pi->sport &&
            memcmp(f->client, pi->src, alen) == 0 && memcmp(f->server, pi->dst, alen) == 0) {
            f->last = now;
            return f;
        }
        if (f->last < oldest->last)
            oldest = f;
    }
    /* Reuse the least recently used slot (free slots have last == 0). */
    oldest->family = pi->family;
    memcpy(oldest->client, pi->src, alen);
    memcpy(oldest->server, pi->dst, alen);
    oldest->client_id = pi->sport;
    /* Every worker's raw socket sees every reply: each takes its own share of the ids. */
    e->next_id = (uint16_t)((e->next_id + 1) % (65536 / e->w->id_step));
    oldest->our_id = (uint16_t)(e->next_id * e->w->id_step + e->w->index);
    oldest->last = now;
    return oldest;
}

static struct echo_flow *flow_for_reply(struct echorelay *e, int family, const uint8_t *from,
                                        uint16_t id)
{
    time_t now = time(NULL);

    for (int i = 0; i < ECHO_FLOWS; i++) {
        struct echo_flow *f = &e->flows[i];
        if (f->family == family && f->our_id == id && now - f->last <= ECHO_TIMEOUT &&
            memcmp(f->server, from, packet_addr_len(family)) == 0)
            return f;
    }
    return NULL;
}

void echorelay_packet(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi)
{
    struct worker *w = arg;
    struct echorelay *e = w->echo;
    struct netstack_endpoint dst = {.family = pi->family};
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct echo_flow *f;
    uint8_t *icmp;
    size_t n = pi->l4_len;

    (void)len;
    if (!e || n > ECHO_MAX)
        return;
    f = flow_for_request(e, pi);
    icmp = e->buf;
    memcpy(icmp, pkt + pi->l4_offset, n);
    icmp[4] = (uint8_t)(f->our_id >> 8);
    icmp[5] = (uint8_t)f->our_id;
    icmp[2] = icmp[3] = 0;
    if (pi->family == AF_INET) {
        uint16_t sum = packet_csum_fold(packet_csum_add(0, icmp, n));
        icmp[2] = (uint8_t)(sum >> 8);
        icmp[3] = (uint8_t)sum;
    } /* the kernel computes ICMPv6 checksums on raw sockets */
    memcpy(dst.addr, pi->dst, packet_addr_len(pi->family));
    sslen = upstream_sockaddr(&dst, &ss);
    if (sendto(pi->family == AF_INET ? e->fd4 : e->fd6, icmp, n, 0, (struct sockaddr *)&ss, sslen) <
        0)
        log_errno(LOG_DEBUG, "icmp: echo request");
}

/* Echo replies from the host stack: match them to a client and write them into the TUN. */
static void echo_readable(evutil_socket_t fd, short what, void *arg)
{
    struct echorelay *e = arg;

    (void)what;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(fd, e->buf, sizeof(e->buf), 0, (struct sockaddr *)&from, &fromlen);
        const uint8_t *icmp = e->buf;
        const uint8_t *src;
        struct echo_flow *f;
        int family = from.ss_family;
        size_t plen;

        if (n < 0)
            return;
        if (family == AF_INET) {
            /* IPv4 raw sockets deliver the IP header too. */
            size_t ihl = (size_t)(e->buf[0] & 0x0f) * 4;
            if ((size_t)n < ihl + 8 || icmp[ihl] != ICMP_ECHOREPLY)
                continue;
            icmp += ihl;
            n -= (ssize_t)ihl;
            src = (const uint8_t *)&((struct sockaddr_in *)&from)->sin_addr;
        } else {
            if (n < 8 || icmp[0] != ICMP6_ECHO_REPLY)
                continue;
            src = (const uint8_t *)&((struct sockaddr_in6 *)&from)->sin6_addr;
        }
        f = flow_for_reply(e, family, src, (uint16_t)(icmp[4] << 8 | icmp[5]));
        if (!f)
            continue;
        plen = packet_build_echo_reply(e->packet, sizeof(e->packet), family, f->server, f->client,
                                       f->client_id, (uint16_t)(icmp[6] << 8 | icmp[7]), icmp + 8,
                                       (size_t)n - 8);
        if (plen > 0)
            netstack_send(e->w->ns, e->packet, plen);
    }
}

static int echo_socket(struct echorelay *e, int family, struct event **ev)
{
    int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
    uint32_t mark = e->w->cfg->routing.mark;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
    if (family == AF_INET) {
        uint32_t filter = ~(1u << ICMP_ECHOREPLY);
        setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter));
    } else {
        struct icmp6_filter filter;
        ICMP6_FILTER_SETBLOCKALL(&filter);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
        setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter));
    }
    *ev = event_new(e->w->base, fd, EV_READ | EV_PERSIST, echo_readable, e);
    if (!*ev || event_add(*ev, NULL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct echorelay *echorelay_new(struct worker *w)
{
    struct echorelay *e;

    if (w->cfg->icmp.echo == ICMP_ECHO_DROP)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->w = w;
    e->fd4 = echo_socket(e, AF_INET, &e->ev4);
    e->fd6 = echo_socket(e, AF_INET6, &e->ev6);
    if (e->fd4 < 0 || e->fd6 < 0) {
        log_errno(LOG_WARN, "icmp: cannot open raw ICMP sockets (CAP_NET_RAW?): pings through "
                            "the TUN go unanswered");
        echorelay_free(e);
        return NULL;
    }
    return e;
}

void echorelay_free(struct echorelay *e)
{
    if (!e)
        return;
    if (e->ev4)
        event_free(e->ev4);
    if (e->ev6)
        event_free(e->ev6);
    if (e->fd4 >= 0)
        close(e->fd4);
    if (e->fd6 >= 0)
        close(e->fd6);
    free(e);
}
