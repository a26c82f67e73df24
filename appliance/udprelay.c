#include "udprelay.h"

#include "flowlog.h"
#include "log.h"
#include "upstream.h"
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UDP_BUCKETS       4096
#define UDP_BATCH         32 /* datagrams read per readiness event */
#define UDP_MAX           65535
#define FULL_WARN_SECONDS 10

struct udp_flow {
    struct udprelay *r;
    struct udp_flow *hnext;         /* hash chain */
    struct udp_flow *newer, *older; /* by their last datagram, either way */
    uint64_t id;
    struct netstack_endpoint client;
    struct netstack_endpoint server;
    int fd;                        /* connected to server over the host stack */
    struct event *ev;              /* readable, or idle for idle_timeout */
    uint64_t bytes_up, bytes_down; /* UDP payload bytes */
    struct timespec start, mono;
};

struct udprelay {
    struct worker *w;
    struct timeval idle;
    struct udp_flow *buckets[UDP_BUCKETS];
    struct udp_flow *newest, *oldest; /* the one to evict when the table is full */
    struct log_every full_warning;
    uint8_t payload[UDP_MAX];
    uint8_t packet[UDP_MAX + 64];
};

static unsigned flow_hash(const struct packet_info *pi)
{
    size_t alen = packet_addr_len(pi->family);
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < alen; i++)
        h = (h ^ pi->src[i] ^ (uint32_t)pi->dst[i] << 8) * 16777619u;
    h = (h ^ pi->sport ^ (uint32_t)pi->dport << 16) * 16777619u;
    return h % UDP_BUCKETS;
}

static int flow_matches(const struct udp_flow *f, const struct packet_info *pi)
{
    size_t alen = packet_addr_len(pi->family);

    return f->client.family == pi->family && f->client.port == pi->sport &&
           f->server.port == pi->dport && memcmp(f->client.addr, pi->src, alen) == 0 &&
           memcmp(f->server.addr, pi->dst, alen) == 0;
}

static void lru_unlink(struct udprelay *r, struct udp_flow *f)
{
    if (f->newer)
        f->newer->older = f->older;
    else
        r->newest = f->older;
    if (f->older)
        f->older->newer = f->newer;
    else
        r->oldest = f->newer;
    f->newer = f->older = NULL;
}

static void lru_push(struct udprelay *r, struct udp_flow *f)
{
    f->older = r->newest;
    f->newer = NULL;
    if (r->newest)
        r->newest->newer = f;
    else
        r->oldest = f;
    r->newest = f;
}

/* A datagram went through f: it becomes the last to be evicted. */
static void lru_touch(struct udprelay *r, struct udp_flow *f)
{
    if (f != r->newest) {
        lru_unlink(r, f);
        lru_push(r, f);
    }
}

static void flow_close(struct udp_flow *f, const char *end, const char *error)
{
    struct udprelay *r = f->r;
    struct udp_flow **pp;
    struct packet_info key = {
        .family = f->client.family, .sport = f->client.port, .dport = f->server.port};

    memcpy(key.src, f->client.addr, sizeof(key.src));
    memcpy(key.dst, f->server.addr, sizeof(key.dst));
    for (pp = &r->buckets[flow_hash(&key)]; *pp; pp = &(*pp)->hnext)
        if (*pp == f) {
            *pp = f->hnext;
            break;
        }
    lru_unlink(r, f);
    struct flow_record rec = {
        .type = "udp",
        .id = f->id,
        .client = &f->client,
        .server = &f->server,
        .bytes_up = f->bytes_up,
        .bytes_down = f->bytes_down,
        .start = f->start,
        .mono_start = f->mono,
        .end = end,
        .error = error,
    };
    flowlog_write(r->w->flows, &rec);
    event_free(f->ev);
    close(f->fd);
    free(f);
    r->w->udp_open--;
}

/* Datagrams from the server: back into the TUN, from the server's address to the client. */
static void flow_readable(evutil_socket_t fd, short what, void *arg)
{
    struct udp_flow *f = arg;
    struct udprelay *r = f->r;

    if (what & EV_TIMEOUT) {
        flow_close(f, "idle", NULL);
        return;
    }
    for (int i = 0; i < UDP_BATCH; i++) {
        ssize_t n = recv(fd, r->payload, sizeof(r->payload), 0);
        size_t plen;

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            /* ECONNREFUSED and the like: an ICMP error for an earlier datagram. */
            log_debug("udp #%" PRIu64 ": %s", f->id, strerror(errno));
            return;
        }
        plen =
            packet_build_udp(r->packet, sizeof(r->packet), f->client.family, f->server.addr,
                             f->server.port, f->client.addr, f->client.port, r->payload, (size_t)n);
        if (plen == 0 || netstack_send(r->w->ns, r->packet, plen) < 0) {
            r->w->udp_dropped++;
            continue;
        }
        f->bytes_down += (uint64_t)n;
        lru_touch(r, f);
    }
}

static struct udp_flow *flow_new(struct udprelay *r, const struct packet_info *pi)
{
    struct worker *w = r->w;
    struct sockaddr_storage ss;
    struct udp_flow *f;
    unsigned b = flow_hash(pi);

    if (w->udp_open >= (uint64_t)w->cfg->udp.max_flows && r->oldest) {
        w->udp_evicted++;
        if (log_every_due(&r->full_warning, FULL_WARN_SECONDS))
            log_warn("udp: flow table full ([udp] max_flows = %d): each new flow closes the one "
                     "idle longest (%" PRIu64 " so far)",
                     w->cfg->udp.max_flows, w->udp_evicted);
        flow_close(r->oldest, "evicted", NULL);
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->r = r;
    f->id = worker_new_id(w);
    f->client.family = f->server.family = pi->family;
    memcpy(f->client.addr, pi->src, sizeof(f->client.addr));
    memcpy(f->server.addr, pi->dst, sizeof(f->server.addr));
    f->client.port = pi->sport;
    f->server.port = pi->dport;
    clock_gettime(CLOCK_REALTIME, &f->start);
    clock_gettime(CLOCK_MONOTONIC, &f->mono);
    f->fd = worker_socket(w, pi->family, SOCK_DGRAM);
    if (f->fd < 0) {
        if (errno != EMFILE && errno != ENFILE)
            log_errno(LOG_WARN, "udp #%" PRIu64 ": socket", f->id);
        free(f);
        return NULL;
    }
    if (connect(f->fd, (struct sockaddr *)&ss, upstream_sockaddr(&f->server, &ss)) < 0) {
        log_errno(LOG_DEBUG, "udp #%" PRIu64 ": connect", f->id);
        close(f->fd);
        free(f);
        return NULL;
    }
    f->ev = event_new(w->base, f->fd, EV_READ | EV_PERSIST, flow_readable, f);
    if (!f->ev) {
        close(f->fd);
        free(f);
        return NULL;
    }
    f->hnext = r->buckets[b];
    r->buckets[b] = f;
    lru_push(r, f);
    w->udp_open++;
    w->udp_total++;
    return f;
}

void udprelay_packet(void *arg, const uint8_t *pkt, size_t len, const struct packet_info *pi)
{
    struct worker *w = arg;
    struct udprelay *r = w->udp;
    const uint8_t *payload = pkt + pi->l4_offset + 8;
    size_t plen = pi->l4_len - 8;
    struct udp_flow *f;

    if (pi->dport == 443 && !w->cfg->udp.relay_quic) {
        size_t n =
            packet_build_unreach(r->packet, sizeof(r->packet), pkt, len, pi, PACKET_UNREACH_PORT);
        if (n > 0)
            netstack_send(w->ns, r->packet, n);
        w->udp_dropped++;
        return;
    }
    for (f = r->buckets[flow_hash(pi)]; f; f = f->hnext)
        if (flow_matches(f, pi))
            break;
    if (!f && !(f = flow_new(r, pi))) {
        w->udp_dropped++;
        return;
    }
    /* Re-adding restarts the idle timer (as the server's datagrams do, the event persisting). */
    event_add(f->ev, &r->idle);
    lru_touch(r, f);
    if (send(f->fd, payload, plen, 0) < 0) {
        log_errno(LOG_DEBUG, "udp #%" PRIu64 ": send", f->id);
        w->udp_dropped++;
        return;
    }
    f->bytes_up += plen;
}

struct udprelay *udprelay_new(struct worker *w)
{
    struct udprelay *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->w = w;
    r->idle.tv_sec = w->cfg->udp.idle_timeout;
    return r;
}

void udprelay_free(struct udprelay *r)
{
    if (!r)
        return;
    for (int i = 0; i < UDP_BUCKETS; i++)
        while (r->buckets[i])
            flow_close(r->buckets[i], "shutdown", NULL);
    free(r);
}
