/*
 * lwIP glue. lwIP (Debian's liblwip, built with NO_SYS=0 for the Hurd) is driven entirely from
 * the libevent thread: lwip_init() once, sys_check_timeouts() from a timer, TUN packets straight
 * into the netif's input. Its core thread, mailboxes and sockets API are never used.
 *
 * To terminate connections to any address, the destination of each packet is written into the
 * netif's address (IPv4) or address slot 0 (IPv6) just before input: netif_set_ipaddr would
 * abort every connection on the old address. To terminate any port, a listener is created for a
 * port when its first SYN is passed to lwIP (lwIP 2.1 listeners match one port exactly).
 *
 * A SYN is held here until the appliance knows whether the upstream connect succeeds, so that a
 * refused upstream looks refused to the client (RST to its SYN) instead of accepted-then-closed.
 */
#include "netstack.h"

#include "gso.h"

#include "appliance/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lwip/init.h>
#include <lwip/ip.h>
#include <lwip/netif.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

#define TUN_BATCH       64          /* packets read per readiness event */
#define SYN_BUCKETS     1024        /* held-SYN hash table size */
#define STREAM_SND_HIGH (64 * 1024) /* pair bytes queued for lwIP before the pair pauses */
#define TIMER_MS        100         /* lwIP timers' granularity is 250 ms */
#define BULK_BYTES      (1u << 20)  /* a tick moving this much through the TUN may be bulk */
#define BULK_TICKS      3           /* bulk ends this many ticks after the last bulk tick */
#define SILENCE_TICKS   10          /* silent clients are looked for every this many ticks */
#define PROBE_GRACE_MS  3000        /* a silent client's last chance to answer a keepalive */
#define KEEP_INTVL_MS   15000       /* between the keepalives of an idle client... */
#define KEEP_PROBES     4           /* ...of which it must answer one */
/*
 * lwIP keeps a connection it closed first in TIME_WAIT for 2 MSL (120 s) on a list that it, and
 * ns_tcp_input's look for a reused port, scan for every new SYN: at a few thousand connections
 * a second that list grows to hundreds of thousands and the scans take most of the CPU. Like
 * Linux's tcp_max_tw_buckets, only the newest are kept; a late segment of an older one gets a
 * reset.
 */
#define TIME_WAIT_MAX 1024

struct netstack_syn {
    struct netstack *ns;
    struct netstack_syn *next; /* hash chain */
    struct packet_info pi;     /* the SYN's parse */
    void *ctx;                 /* the appliance's, from netstack_syn_accept */
    int injected;              /* handed to lwIP, waiting for the handshake to finish */
    size_t len;
    uint8_t pkt[]; /* the SYN as it arrived */
};

/* One accepted TCP connection: an lwIP pcb and our end of the bufferevent pair. */
struct ns_stream {
    struct netstack *ns;
    struct tcp_pcb *pcb;           /* NULL once lwIP has freed it */
    struct bufferevent *bev;       /* our end; the appliance holds the partner */
    struct evbuffer_cb_entry *rcb; /* reopens lwIP's window as the appliance takes bytes */
    struct ns_stream *prev, *next;
    unsigned fin_in : 1;  /* the client sent FIN */
    unsigned fin_out : 1; /* we sent FIN */
    unsigned app_eof : 1; /* the appliance will write no more */
    unsigned probed : 1;  /* silent too long: a keepalive went out at probe_tick */
    uint32_t probe_tick;  /* tcp_ticks then */
};

struct netstack {
    struct event_base *base;
    int tun_fd;
    int mtu;
    struct event *tun_ev;
    struct event *timer_ev;
    struct netif netif;
    struct netstack_handlers h;
    struct netstack_syn *syns[SYN_BUCKETS];
    struct ns_stream *streams;
    uint8_t listening[65536 / 8]; /* ports with an lwIP listener */
    struct netstack_counters counters;
    uint8_t *rxbuf;                /* vnet header + one packet of up to 64 KiB */
    uint8_t *txbuf;                /* flattens the rare chained pbuf */
    struct gso_batch *gso;         /* lwIP's segments, merged until the next ns_flush */
    struct netstack_counters tick; /* the counters at the last timer tick */
    int bulk_ticks;                /* ticks left before bulk traffic counts as ended; 0: none */
    uint32_t silence_ms;           /* netstack_set_silence_timeout; 0: off */
    unsigned silence_tick;         /* counts ticks up to SILENCE_TICKS */
    uint32_t keepalive_ms;         /* netstack_set_idle_keepalive; 0: off */
};

#define RXBUF_SIZE (GSO_VNET_HDR + 65536)

static int lwip_initialized;

/*
 * lwIP's checksum over plain memory (inet_chksum.c's LWIP_CHKSUM), replaced: lwIP computes it
 * over every byte it sends (checksum on copy) and receives, two bytes a step, which was 4 % of
 * a keep-alive HTTPS request's instructions. lwIP calls it through its PLT, so this definition
 * takes its place; should a build of lwIP bind it internally, lwIP keeps its own, slower and
 * equal (test_packet compares the two).
 */
u16_t lwip_standard_chksum(const void *dataptr, int len);
u16_t lwip_standard_chksum(const void *dataptr, int len)
{
    return len > 0 ? packet_csum_native(dataptr, (size_t)len) : 0;
}

static err_t ns_accept(void *arg, struct tcp_pcb *pcb, err_t err);

char *netstack_endpoint_str(const struct netstack_endpoint *ep, char *buf, size_t len)
{
    char addr[INET6_ADDRSTRLEN];

    inet_ntop(ep->family, ep->addr, addr, sizeof(addr));
    snprintf(buf, len, ep->family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, ep->port);
    return buf;
}

/* Addresses and ports in lwIP's form and ours. */
static void ipaddr_to_bytes(const ip_addr_t *ip, int *family, uint8_t *out)
{
    if (IP_IS_V4(ip)) {
        *family = AF_INET;
        memcpy(out, &ip_2_ip4(ip)->addr, 4);
    } else {
        *family = AF_INET6;
        memcpy(out, ip_2_ip6(ip)->addr, 16);
    }
}

static uint32_t syn_hash(int family, const uint8_t *src, uint16_t sport, const uint8_t *dst,
                         uint16_t dport)
{
    size_t alen = packet_addr_len(family);
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < alen; i++)
        h = (h ^ src[i]) * 16777619u;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ dst[i]) * 16777619u;
    h = (h ^ sport) * 16777619u;
    h = (h ^ dport) * 16777619u;
    return h % SYN_BUCKETS;
}

static struct netstack_syn **syn_slot(struct netstack *ns, int family, const uint8_t *src,
                                      uint16_t sport, const uint8_t *dst, uint16_t dport)
{
    size_t alen = packet_addr_len(family);
    struct netstack_syn **pp = &ns->syns[syn_hash(family, src, sport, dst, dport)];

    for (; *pp; pp = &(*pp)->next) {
        const struct packet_info *pi = &(*pp)->pi;
        if (pi->family == family && pi->sport == sport && pi->dport == dport &&
            memcmp(pi->src, src, alen) == 0 && memcmp(pi->dst, dst, alen) == 0)
            return pp;
    }
    return pp;
}

static void syn_unlink(struct netstack_syn *syn)
{
    const struct packet_info *pi = &syn->pi;
    struct netstack_syn **pp =
        syn_slot(syn->ns, pi->family, pi->src, pi->sport, pi->dst, pi->dport);

    if (*pp == syn)
        *pp = syn->next;
}

/* Writes the merged segments out. Every entry point that may make lwIP send calls it last. */
static void ns_flush(struct netstack *ns)
{
    int segs = ns->gso->segs;
    size_t n = gso_finish(ns->gso);

    if (n == 0)
        return;
    if (write(ns->tun_fd, ns->gso->buf, n) < 0) {
        ns->counters.tun_write_errors++;
        return;
    }
    ns->counters.packets_out++;
    ns->counters.bytes_out += n - GSO_VNET_HDR;
    if (segs > 1)
        ns->counters.segments_merged += (uint64_t)segs;
}

/* Writes one pbuf (chain) into the TUN. Only TCP comes from lwIP: see netstack_new. */
static err_t ns_output(struct netif *netif, struct pbuf *p)
{
    struct netstack *ns = netif->state;
    const uint8_t *pkt = p->payload;
    size_t len = p->tot_len;

    if (p->next) {
        if (len > (size_t)ns->mtu)
            return ERR_OK;
        pbuf_copy_partial(p, ns->txbuf, (u16_t)len, 0);
        pkt = ns->txbuf;
    }
    /* lwIP would also send IGMP/MLD reports and ICMP answers; only TCP is ours to send. */
    if (len < 40 || ((pkt[0] >> 4) == 4 ? pkt[9] : pkt[6]) != IPPROTO_TCP)
        return ERR_OK;
    if (!gso_add(ns->gso, pkt, len)) {
        ns_flush(ns);
        if (!gso_add(ns->gso, pkt, len))
            netstack_send(ns, pkt, len);
    }
    return ERR_OK;
}

static err_t ns_output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst)
{
    (void)dst;
    return ns_output(netif, p);
}

static err_t ns_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *dst)
{
    (void)dst;
    return ns_output(netif, p);
}

static err_t ns_netif_init(struct netif *netif)
{
    struct netstack *ns = netif->state;

    netif->name[0] = 'm';
    netif->name[1] = 't';
    netif->mtu = (u16_t)ns->mtu;
#if LWIP_ND6_ALLOW_RA_UPDATES
    netif->mtu6 = (u16_t)ns->mtu;
#endif
    netif->output = ns_output4;
    netif->output_ip6 = ns_output6;
    netif->flags = NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

/* Passes a TCP packet to lwIP as if its destination were our own address. */
static void ns_lwip_input(struct netstack *ns, const uint8_t *pkt, size_t len,
                          const struct packet_info *pi)
{
    struct netif *netif = &ns->netif;
    struct pbuf *p;

    if (pi->family == AF_INET) {
        ip4_addr_t dst;
        memcpy(&dst.addr, pi->dst, 4);
        ip_addr_copy_from_ip4(netif->ip_addr, dst);
    } else {
        ip6_addr_t *slot = ip_2_ip6(&netif->ip6_addr[0]);
        memcpy(slot->addr, pi->dst, 16);
        IP_SET_TYPE_VAL(netif->ip6_addr[0], IPADDR_TYPE_V6);
        ip6_addr_clear_zone(slot);
        ip6_addr_assign_zone(slot, IP6_UNKNOWN, netif);
        netif->ip6_addr_state[0] = IP6_ADDR_VALID;
    }
    p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
    if (!p)
        return;
    pbuf_take(p, pkt, (u16_t)len);
    if (netif->input(p, netif) != ERR_OK)
        pbuf_free(p);
}

static int ns_listen(struct netstack *ns, uint16_t port)
{
    struct tcp_pcb *pcb, *lpcb;
    err_t err;

    if (ns->listening[port / 8] & (1u << (port % 8)))
        return 0;
    pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
    if (!pcb)
        return -1;
    ip_set_option(pcb, SOF_REUSEADDR);
    err = tcp_bind(pcb, IP_ANY_TYPE, port);
    if (err != ERR_OK) {
        log_warn("netstack: cannot listen on port %u: lwIP error %d", port, err);
        tcp_close(pcb);
        return -1;
    }
    lpcb = tcp_listen(pcb);
    if (!lpcb) {
        tcp_close(pcb);
        return -1;
    }
    tcp_arg(lpcb, ns);
    tcp_accept(lpcb, ns_accept);
    ns->listening[port / 8] |= (uint8_t)(1u << (port % 8));
    return 1;
}

static void stream_clear_pcb(struct ns_stream *s)
{
    tcp_arg(s->pcb, NULL);
    tcp_recv(s->pcb, NULL);
    tcp_sent(s->pcb, NULL);
    tcp_err(s->pcb, NULL);
}

static void stream_free(struct ns_stream *s)
{
    struct netstack *ns = s->ns;

    evbuffer_remove_cb_entry(bufferevent_get_output(s->bev), s->rcb);
    bufferevent_free(s->bev);
    if (s->prev)
        s->prev->next = s->next;
    else
        ns->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* Resets the client and frees the stream. */
static void stream_abort(struct ns_stream *s)
{
    if (s->pcb) {
        stream_clear_pcb(s);
        tcp_abort(s->pcb);
        s->pcb = NULL;
    }
    stream_free(s);
}

/*
 * Once FINs went both ways lwIP finishes the close alone; the stream is freed. Returns ERR_ABRT
 * if the pcb had to be aborted (an lwIP callback must then return it), else ERR_OK.
 */
static err_t stream_maybe_close(struct ns_stream *s)
{
    err_t rc = ERR_OK;

    if (!s->fin_in || !s->fin_out)
        return ERR_OK;
    stream_clear_pcb(s);
    if (tcp_close(s->pcb) != ERR_OK) {
        tcp_abort(s->pcb);
        rc = ERR_ABRT;
    }
    s->pcb = NULL;
    stream_free(s);
    return rc;
}

/*
 * Moves what the appliance wrote into lwIP's send buffer, as much as it takes, and sends the FIN
 * once the appliance has finished and everything is queued. May free s: see stream_maybe_close.
 */
static err_t stream_push(struct ns_stream *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct tcp_pcb *pcb = s->pcb;
    size_t len;
    int wrote = 0;

    while ((len = evbuffer_get_length(in)) > 0) {
        struct evbuffer_iovec v;
        size_t n = tcp_sndbuf(pcb);
        err_t err;

        if (n == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN)
            break;
        evbuffer_peek(in, -1, NULL, &v, 1);
        if (n > v.iov_len)
            n = v.iov_len;
        if (n > 0xffff)
            n = 0xffff;
        err = tcp_write(pcb, v.iov_base, (u16_t)n,
                        TCP_WRITE_FLAG_COPY | (n < len ? TCP_WRITE_FLAG_MORE : 0));
        if (err == ERR_MEM)
            break;
        if (err != ERR_OK) {
            stream_abort(s);
            return ERR_ABRT;
        }
        evbuffer_drain(in, n);
        wrote = 1;
    }
    if (s->app_eof && !s->fin_out && evbuffer_get_length(in) == 0) {
        if (tcp_shutdown(pcb, 0, 1) == ERR_OK)
            s->fin_out = 1;
        wrote = 1;
    }
    if (wrote)
        tcp_output(pcb);
    return stream_maybe_close(s);
}

static err_t ns_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct ns_stream *s = arg;
    struct evbuffer *out;

    (void)err;
    if (!s) {
        if (p) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    if (!p) {
        if (s->fin_in)
            return ERR_OK;
        s->fin_in = 1;
        /* Hands the appliance all that is queued, then EOF. */
        bufferevent_flush(s->bev, EV_WRITE, BEV_FINISHED);
        return stream_maybe_close(s);
    }
    out = bufferevent_get_output(s->bev);
    for (struct pbuf *q = p; q; q = q->next)
        evbuffer_add(out, q->payload, q->len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t ns_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct ns_stream *s = arg;

    (void)pcb;
    (void)len;
    return s ? stream_push(s) : ERR_OK;
}

/* lwIP has already freed the pcb: forget it, tell the appliance, free the stream. */
static void ns_err(void *arg, err_t err)
{
    struct ns_stream *s = arg;
    struct bufferevent *partner;

    if (!s)
        return;
    s->pcb = NULL;
    partner = bufferevent_pair_get_partner(s->bev);
    if (partner)
        bufferevent_trigger_event(
            partner, BEV_EVENT_ERROR | (err == ERR_RST ? BEV_EVENT_READING : BEV_EVENT_WRITING), 0);
    stream_free(s);
}

/* The appliance took bytes out of the pair: reopen that much of lwIP's receive window. */
static void stream_taken(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct ns_stream *s = arg;
    size_t n = info->n_deleted;

    (void)buf;
    if (!s->pcb)
        return;
    while (n > 0) {
        u16_t chunk = n > 0xffff ? 0xffff : (u16_t)n;
        tcp_recved(s->pcb, chunk);
        n -= chunk;
    }
    ns_flush(s->ns); /* tcp_recved may have sent a window update, and queued data with it */
}

static void stream_readcb(struct bufferevent *bev, void *arg)
{
    struct ns_stream *s = arg;
    struct netstack *ns = s->ns;

    (void)bev;
    if (s->pcb)
        stream_push(s);
    ns_flush(ns);
}

static void stream_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct ns_stream *s = arg;
    struct netstack *ns = s->ns;

    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        stream_abort(s);
    } else if (what & BEV_EVENT_EOF) {
        s->app_eof = 1;
        if (s->pcb)
            stream_push(s);
    }
    ns_flush(ns);
}

static struct ns_stream *stream_new(struct netstack *ns, struct tcp_pcb *pcb,
                                    struct bufferevent **app_end)
{
    struct bufferevent *pair[2];
    struct ns_stream *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (bufferevent_pair_new(ns->base, BEV_OPT_DEFER_CALLBACKS, pair) < 0) {
        free(s);
        return NULL;
    }
    s->ns = ns;
    s->pcb = pcb;
    s->bev = pair[0];
    s->rcb = evbuffer_add_cb(bufferevent_get_output(s->bev), stream_taken, s);
    bufferevent_setcb(s->bev, stream_readcb, NULL, stream_eventcb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, STREAM_SND_HIGH);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    tcp_arg(pcb, s);
    tcp_recv(pcb, ns_recv);
    tcp_sent(pcb, ns_sent);
    tcp_err(pcb, ns_err);
    tcp_nagle_disable(pcb);
    s->next = ns->streams;
    if (s->next)
        s->next->prev = s;
    ns->streams = s;
    *app_end = pair[1];
    return s;
}

static err_t ns_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct netstack *ns = arg;
    struct netstack_syn **pp, *syn;
    struct bufferevent *app_end;
    uint8_t client[16], server[16];
    int family;
    void *ctx;

    if (err != ERR_OK || !pcb)
        return ERR_VAL;
    ipaddr_to_bytes(&pcb->remote_ip, &family, client);
    ipaddr_to_bytes(&pcb->local_ip, &family, server);
    pp = syn_slot(ns, family, client, pcb->remote_port, server, pcb->local_port);
    syn = *pp;
    if (!syn || !syn->injected || !stream_new(ns, pcb, &app_end)) {
        /* The appliance gave up on this connection before the handshake finished. */
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    if (ns->keepalive_ms) { /* lwIP's tcp_slowtmr sends them and aborts on silence */
        ip_set_option(pcb, SOF_KEEPALIVE);
        pcb->keep_idle = ns->keepalive_ms;
        pcb->keep_intvl = ns->keepalive_ms < KEEP_INTVL_MS ? ns->keepalive_ms : KEEP_INTVL_MS;
        pcb->keep_cnt = KEEP_PROBES;
    }
    ctx = syn->ctx;
    *pp = syn->next;
    free(syn);
    ns->h.tcp_established(ctx, app_end);
    return ERR_OK;
}

/* The pcb of list for this packet's connection, or NULL. */
static struct tcp_pcb *pcb_find(struct tcp_pcb *list, const struct packet_info *pi)
{
    for (struct tcp_pcb *pcb = list; pcb; pcb = pcb->next) {
        uint8_t a[16];
        int family;

        if (pcb->remote_port != pi->sport || pcb->local_port != pi->dport)
            continue;
        ipaddr_to_bytes(&pcb->remote_ip, &family, a);
        if (family != pi->family || memcmp(a, pi->src, packet_addr_len(family)) != 0)
            continue;
        ipaddr_to_bytes(&pcb->local_ip, &family, a);
        if (memcmp(a, pi->dst, packet_addr_len(family)) == 0)
            return pcb;
    }
    return NULL;
}

static void endpoint_set(struct netstack_endpoint *ep, int family, const uint8_t *addr,
                         uint16_t port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = family;
    memcpy(ep->addr, addr, packet_addr_len(family));
    ep->port = port;
}

static void ns_tcp_input(struct netstack *ns, const uint8_t *pkt, size_t len,
                         const struct packet_info *pi)
{
    struct netstack_endpoint client, server;
    struct netstack_syn **pp, *syn;

    if ((pi->tcp_flags & (PACKET_TCP_SYN | PACKET_TCP_ACK | PACKET_TCP_RST)) == PACKET_TCP_SYN) {
        pp = syn_slot(ns, pi->family, pi->src, pi->sport, pi->dst, pi->dport);
        if (*pp && !(*pp)->injected)
            return; /* a retransmission while the upstream connect is under way */
        if (!*pp && !pcb_find(tcp_active_pcbs, pi)) {
            /* A client may reuse its port at once when we closed first: our TIME_WAIT pcb for
             * the old connection would answer the new SYN with RST. Forget it (RFC 6191). */
            struct tcp_pcb *old = pcb_find(tcp_tw_pcbs, pi);
            if (old)
                tcp_abort(old);
            syn = calloc(1, sizeof(*syn) + len);
            if (!syn)
                return;
            syn->ns = ns;
            syn->pi = *pi;
            syn->len = len;
            memcpy(syn->pkt, pkt, len);
            *pp = syn;
            endpoint_set(&client, pi->family, pi->src, pi->sport);
            endpoint_set(&server, pi->family, pi->dst, pi->dport);
            /* May accept or reject at once: syn is not ours to touch after this. */
            ns->h.tcp_syn(ns->h.arg, syn, &client, &server);
            return;
        }
    }
    ns_lwip_input(ns, pkt, len, pi);
}

static void ns_input(struct netstack *ns, const uint8_t *pkt, size_t len)
{
    struct packet_info pi;

    ns->counters.packets_in++;
    ns->counters.bytes_in += len;
    if (packet_parse(pkt, len, &pi) < 0) {
        ns->counters.dropped_malformed++;
        return;
    }
    if (pi.fragment) {
        ns->counters.dropped_fragments++;
        return;
    }
    switch (pi.proto) {
    case IPPROTO_TCP:
        ns_tcp_input(ns, pkt, len, &pi);
        return;
    case IPPROTO_UDP:
        ns->h.udp(ns->h.arg, pkt, len, &pi);
        return;
    case IPPROTO_ICMP:
        if (pi.family == AF_INET && pi.icmp_type == 8 && pi.icmp_code == 0) {
            ns->h.echo(ns->h.arg, pkt, len, &pi);
            return;
        }
        break;
    case IPPROTO_ICMPV6:
        if (pi.icmp_type == 128 && pi.icmp_code == 0) {
            ns->h.echo(ns->h.arg, pkt, len, &pi);
            return;
        }
        break;
    }
    ns->counters.dropped_other++;
}

static void ns_tun_readable(evutil_socket_t fd, short what, void *arg)
{
    struct netstack *ns = arg;

    (void)what;
    for (int i = 0; i < TUN_BATCH; i++) {
        ssize_t n = read(fd, ns->rxbuf, RXBUF_SIZE);
        uint8_t *pkt = ns->rxbuf + GSO_VNET_HDR;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                log_errno(LOG_WARN, "netstack: reading the TUN device");
            break;
        }
        if (n <= GSO_VNET_HDR || gso_complete_csum(ns->rxbuf, pkt, (size_t)n - GSO_VNET_HDR) < 0) {
            ns->counters.dropped_malformed++;
            continue;
        }
        ns_input(ns, pkt, (size_t)n - GSO_VNET_HDR);
    }
    ns_flush(ns);
}

/*
 * Bulk traffic, for the bulk handler: a tick that moved BULK_BYTES or more through the TUN, where
 * the packets of one direction were larger than the MTU on average (the kernel's offloaded
 * segments in, our merged ones out). Request/response traffic moves MTU-sized packets or less,
 * however fast; a download or an upload moves mostly 64 KiB ones. It ends BULK_TICKS quiet
 * ticks later, so a pause in a transfer does not flip the steering back and forth.
 */
static void ns_bulk_tick(struct netstack *ns)
{
    const struct netstack_counters *now = &ns->counters, *was = &ns->tick;
    uint64_t in = now->bytes_in - was->bytes_in, out = now->bytes_out - was->bytes_out;
    int bulk =
        in + out >= BULK_BYTES && (in > (now->packets_in - was->packets_in) * (uint64_t)ns->mtu ||
                                   out > (now->packets_out - was->packets_out) * (uint64_t)ns->mtu);

    ns->tick = *now;
    if (bulk) {
        if (ns->bulk_ticks == 0)
            ns->h.bulk(ns->h.arg, 1);
        ns->bulk_ticks = BULK_TICKS;
    } else if (ns->bulk_ticks > 0 && --ns->bulk_ticks == 0) {
        ns->h.bulk(ns->h.arg, 0);
    }
}

/*
 * Aborts the connections of clients that have sent nothing for silence_ms while data waits for
 * them (they left the Wi-Fi): lwIP's own retransmission limits take many minutes. lwIP stamps
 * pcb->tmr with tcp_ticks at every segment the client sends. A client that only stopped
 * reading answers window probes, but lwIP spaces those up to a minute apart: so a client
 * silent that long first gets a keepalive, which any live TCP answers at once, and is aborted
 * only if PROBE_GRACE_MS pass without a word.
 */
static void ns_silence_tick(struct netstack *ns)
{
    struct ns_stream *s, *next;

    for (s = ns->streams; s; s = next) {
        struct tcp_pcb *pcb = s->pcb;
        uint64_t silent_ms;

        next = s->next;
        if (!pcb)
            continue;
        silent_ms = (uint64_t)(tcp_ticks - pcb->tmr) * TCP_SLOW_INTERVAL;
        if ((!pcb->unacked && !pcb->unsent) || silent_ms < ns->silence_ms) {
            s->probed = 0;
            continue;
        }
        if (!s->probed) {
            log_debug("netstack: a client silent for %u s with data waiting for it: a keepalive",
                      (unsigned)(silent_ms / 1000));
            s->probed = 1;
            s->probe_tick = tcp_ticks;
            tcp_keepalive(pcb);
            continue;
        }
        if ((uint64_t)(tcp_ticks - s->probe_tick) * TCP_SLOW_INTERVAL < PROBE_GRACE_MS)
            continue;
        log_debug("netstack: a client silent for %u s with %u bytes waiting for it: aborted",
                  (unsigned)(silent_ms / 1000), (unsigned)(pcb->snd_lbb - pcb->lastack));
        tcp_abort(pcb); /* ns_err tells the appliance (a timeout) and frees s */
    }
}

/* Frees the TIME_WAIT pcbs beyond the newest TIME_WAIT_MAX (lwIP adds new ones first); no
 * stream refers to them any more (stream_maybe_close). */
static void ns_trim_time_wait(struct netstack *ns)
{
    struct tcp_pcb *pcb = tcp_tw_pcbs, *old;
    uint64_t n = pcb ? 1 : 0;

    for (; pcb && pcb->next && n < TIME_WAIT_MAX; n++)
        pcb = pcb->next;
    ns->counters.time_wait = n;
    if (!pcb || !pcb->next)
        return;
    old = pcb->next;
    pcb->next = NULL;
    while (old) {
        pcb = old;
        old = old->next;
        tcp_pcb_purge(pcb);
        tcp_free(pcb);
        ns->counters.time_wait_cut++;
    }
}

static void ns_timer(evutil_socket_t fd, short what, void *arg)
{
    struct netstack *ns = arg;

    (void)fd;
    (void)what;
    sys_check_timeouts();
    ns_trim_time_wait(ns);
    if (ns->silence_ms && ++ns->silence_tick >= SILENCE_TICKS) {
        ns->silence_tick = 0;
        ns_silence_tick(ns);
    }
    ns_flush(ns);
    if (ns->h.bulk)
        ns_bulk_tick(ns);
}

void netstack_set_silence_timeout(struct netstack *ns, int seconds)
{
    ns->silence_ms = seconds > 0 ? (uint32_t)seconds * 1000 : 0;
}

void netstack_set_idle_keepalive(struct netstack *ns, int seconds)
{
    ns->keepalive_ms = seconds > 0 ? (uint32_t)seconds * 1000 : 0;
}

int netstack_send(struct netstack *ns, const uint8_t *pkt, size_t len)
{
    static const uint8_t plain[GSO_VNET_HDR]; /* no offload asked */
    struct iovec iov[2] = {{(void *)plain, sizeof(plain)}, {(void *)pkt, len}};

    if (writev(ns->tun_fd, iov, 2) < 0) {
        ns->counters.tun_write_errors++;
        return -1;
    }
    ns->counters.packets_out++;
    ns->counters.bytes_out += len;
    return 0;
}

void netstack_syn_accept(struct netstack_syn *syn, void *ctx)
{
    struct netstack *ns = syn->ns;

    syn->ctx = ctx;
    syn->injected = 1;
    if (ns_listen(ns, syn->pi.dport) < 0) {
        netstack_syn_reject(syn, NETSTACK_REJECT_RST);
        return;
    }
    ns_lwip_input(ns, syn->pkt, syn->len, &syn->pi);
    ns_flush(ns);
}

void netstack_syn_reject(struct netstack_syn *syn, enum netstack_reject how)
{
    struct netstack *ns = syn->ns;
    uint8_t out[1400];
    size_t n = 0;

    if (how == NETSTACK_REJECT_RST)
        n = packet_build_tcp_rst(out, sizeof(out), &syn->pi);
    else if (how == NETSTACK_REJECT_UNREACHABLE)
        n = packet_build_unreach(out, sizeof(out), syn->pkt, syn->len, &syn->pi,
                                 PACKET_UNREACH_HOST);
    if (n > 0)
        netstack_send(ns, out, n);
    syn_unlink(syn);
    free(syn);
}

void netstack_get_counters(const struct netstack *ns, struct netstack_counters *out)
{
    *out = ns->counters;
}

struct netstack *netstack_new(struct event_base *base, int tun_fd, int mtu,
                              const struct netstack_handlers *handlers)
{
    struct timeval tick = {0, TIMER_MS * 1000};
    struct netstack *ns = calloc(1, sizeof(*ns));

    if (!ns)
        return NULL;
    ns->base = base;
    ns->tun_fd = tun_fd;
    ns->mtu = mtu;
    ns->h = *handlers;
    ns->rxbuf = malloc(RXBUF_SIZE);
    ns->txbuf = malloc((size_t)mtu);
    ns->gso = calloc(1, sizeof(*ns->gso));
    if (!ns->rxbuf || !ns->txbuf || !ns->gso)
        goto fail;
    if (!lwip_initialized) {
        lwip_init();
        lwip_initialized = 1;
    }
    if (!netif_add_noaddr(&ns->netif, ns, ns_netif_init, ip_input))
        goto fail;
    netif_set_default(&ns->netif);
    netif_set_up(&ns->netif);
#if LWIP_IPV6_SEND_ROUTER_SOLICIT
    ns->netif.rs_count = 0; /* we are no host on a link: no router solicitations */
#endif
    ns->tun_ev = event_new(base, tun_fd, EV_READ | EV_PERSIST, ns_tun_readable, ns);
    ns->timer_ev = event_new(base, -1, EV_PERSIST, ns_timer, ns);
    if (!ns->tun_ev || !ns->timer_ev || event_add(ns->tun_ev, NULL) < 0 ||
        event_add(ns->timer_ev, &tick) < 0)
        goto fail_netif;
    return ns;

fail_netif:
    netif_remove(&ns->netif);
fail:
    if (ns->tun_ev)
        event_free(ns->tun_ev);
    if (ns->timer_ev)
        event_free(ns->timer_ev);
    free(ns->rxbuf);
    free(ns->txbuf);
    free(ns->gso);
    free(ns);
    log_error("netstack: cannot start (out of memory)");
    return NULL;
}

void netstack_free(struct netstack *ns)
{
    while (ns->streams)
        stream_abort(ns->streams);
    ns_flush(ns);
    for (int i = 0; i < SYN_BUCKETS; i++)
        while (ns->syns[i]) {
            struct netstack_syn *syn = ns->syns[i];
            ns->syns[i] = syn->next;
            free(syn);
        }
    event_free(ns->tun_ev);
    event_free(ns->timer_ev);
    netif_remove(&ns->netif);
    free(ns->rxbuf);
    free(ns->txbuf);
    free(ns->gso);
    free(ns);
}
