/*
 * One TCP connection: the client side is a bufferevent (a netstack pair end), the upstream side a
 * socket bufferevent. Lifecycle:
 *   SYN held -> upstream connect -> SYN passed to lwIP -> handshake done -> relay -> record.
 * Every way out goes through conn_close(), which writes the record and hands the struct to the
 * worker's reaper, so callers up the stack may still look at it safely.
 *
 * Buffering: each direction holds at most RELAY_LIMIT bytes in the receiving side's output;
 * above that the sending side stops reading, which closes lwIP's window (client) or the kernel
 * socket's window (upstream).
 */
#include "conn.h"

#include "flowlog.h"
#include "hostmatch.h"
#include "tls/intercept.h"
#include "log.h"
#include "upstream.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAY_LIMIT     (128 * 1024) /* bytes queued towards one side before the other pauses */
#define UPSTREAM_IO_MAX (256 * 1024) /* bytes one socket read or write may move */
#define SNIFF_MAX       (CLIENTHELLO_MAX_MESSAGE + 64) /* bytes read looking for a ClientHello */

struct conn {
    struct worker *w;
    struct conn *prev, *next; /* the worker's live list, or its dead list */
    uint64_t id;
    struct netstack_endpoint client;
    struct netstack_endpoint server; /* the original destination */
    struct netstack_syn *syn;        /* the client's SYN until its handshake completes */
    int fd;                          /* upstream socket while connecting */
    struct event *ev;                /* connect watch, then handshake deadline */
    struct bufferevent *cbev;        /* client stream */
    struct bufferevent *ubev;        /* upstream socket */
    struct bufferevent *c_raw;       /* the netstack's stream (cbev may be a TLS filter over it) */
    struct bufferevent *u_raw;       /* the upstream socket (ubev likewise) */
    struct tls_info *tls;            /* the stream began with a ClientHello */
    struct tls_session *handshake;   /* the TLS legs while they handshake */
    uint64_t bytes_up, bytes_down;
    struct timespec start; /* CLOCK_REALTIME, for the record */
    struct timespec mono;  /* CLOCK_MONOTONIC, for durations */
    unsigned c_eof : 1;    /* the client sent FIN */
    unsigned u_eof : 1;    /* upstream sent FIN */
    unsigned c_done : 1;   /* the client's FIN was passed upstream */
    unsigned u_done : 1;   /* upstream's FIN was passed to the client */
    unsigned closed : 1;
};

static void conn_list_remove(struct conn **head, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_list_push(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

/* Resets a client stream (netstack pair end) or a socket. */
static void stream_reset(struct bufferevent *bev)
{
    int fd = bufferevent_getfd(bev);

    if (fd >= 0) {
        upstream_set_reset_on_close(fd);
        return;
    }
    struct bufferevent *partner = bufferevent_pair_get_partner(bev);
    if (partner)
        bufferevent_trigger_event(partner, BEV_EVENT_ERROR, 0);
}

/*
 * The single way out. end says how the connection ended ("closed" is the only graceful one: any
 * other resets whatever side is still open); error adds detail. c stays readable until the
 * reaper runs.
 */
static void conn_close(struct conn *c, const char *end, const char *error)
{
    struct worker *w = c->w;
    int graceful = strcmp(end, "closed") == 0;

    if (c->closed)
        return;
    c->closed = 1;
    if (c->syn)
        netstack_syn_reject(c->syn, NETSTACK_REJECT_SILENT);
    c->syn = NULL;
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->handshake)
        tls_cancel(c->handshake);
    c->handshake = NULL;
    if (c->cbev && c->cbev != c->c_raw)
        tls_filter_free(c->cbev);
    if (c->ubev && c->ubev != c->u_raw)
        tls_filter_free(c->ubev);
    c->cbev = c->ubev = NULL;
    if (c->c_raw) {
        if (!graceful)
            stream_reset(c->c_raw);
        bufferevent_free(c->c_raw);
        c->c_raw = NULL;
    }
    if (c->u_raw) {
        if (!graceful)
            stream_reset(c->u_raw);
        bufferevent_free(c->u_raw);
        c->u_raw = NULL;
    }

    struct flow_record r = {
        .type = "tcp",
        .id = c->id,
        .client = &c->client,
        .server = &c->server,
        .bytes_up = c->bytes_up,
        .bytes_down = c->bytes_down,
        .start = c->start,
        .mono_start = c->mono,
        .end = end,
        .error = error,
        .tls = c->tls,
    };
    flowlog_write(w->flows, &r);

    conn_list_remove(&w->conns, c);
    conn_list_push(&w->dead, c);
    event_active(w->reaper, EV_TIMEOUT, 0);
    w->tcp_open--;
}

/* Refuses the held SYN as the upstream refused us, then closes. */
static void conn_refuse(struct conn *c, int err)
{
    enum netstack_reject how = NETSTACK_REJECT_RST;
    const char *end = "error";

    switch (err) {
    case ECONNREFUSED:
        end = "refused";
        break;
    case ETIMEDOUT:
        end = "timeout";
        break;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
        how = NETSTACK_REJECT_UNREACHABLE;
        end = "unreachable";
        break;
    }
    netstack_syn_reject(c->syn, how);
    c->syn = NULL;
    conn_close(c, end, strerror(err));
}

void conn_reap(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->next;
        free(c->tls);
        free(c);
    }
}

void conn_close_all(struct worker *w)
{
    while (w->conns)
        conn_close(w->conns, "shutdown", "the appliance is stopping");
}

/* Moves what from has received to to's output; pauses from when to is backed up. */
static void conn_relay(struct bufferevent *from, struct bufferevent *to, uint64_t *count)
{
    struct evbuffer *in = bufferevent_get_input(from);
    struct evbuffer *out = bufferevent_get_output(to);

    *count += evbuffer_get_length(in);
    evbuffer_add_buffer(out, in);
    if (evbuffer_get_length(out) >= RELAY_LIMIT) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, RELAY_LIMIT / 2, 0);
    }
}

/* Resumes from once to has drained (from's EOF aside: it has nothing more to read). */
static void conn_resume(struct bufferevent *from, struct bufferevent *to, int from_eof)
{
    if (!from_eof && !(bufferevent_get_enabled(from) & EV_READ)) {
        bufferevent_setwatermark(to, EV_WRITE, 0, 0);
        bufferevent_enable(from, EV_READ);
    }
}

static void conn_maybe_done(struct conn *c)
{
    if (c->c_done && c->u_done)
        conn_close(c, "closed", NULL);
}

/* Passes the client's FIN upstream once everything before it has been written. */
static void conn_finish_upstream(struct conn *c)
{
    if (c->c_done || !c->c_eof)
        return;
    if (evbuffer_get_length(bufferevent_get_output(c->ubev)) > 0) {
        bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
        return;
    }
    if (c->ubev != c->u_raw)
        tls_close_notify(c->ubev); /* TLS has no half-close: the server closes in answer */
    else
        shutdown(bufferevent_getfd(c->u_raw), SHUT_WR);
    c->c_done = 1;
    conn_maybe_done(c);
}

/* Passes upstream's FIN to the client once everything before it has been handed on. */
static void conn_finish_client(struct conn *c)
{
    if (c->u_done || !c->u_eof)
        return;
    if (c->cbev != c->c_raw) {
        if (evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0) {
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            return;
        }
        tls_close_notify(c->cbev);
    }
    /* A pair flushes what is queued, then delivers EOF: the netstack sends FIN after it. */
    bufferevent_flush(c->c_raw, EV_WRITE, BEV_FINISHED);
    c->u_done = 1;
    conn_maybe_done(c);
}

static void conn_client_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_relay(bev, c->ubev, &c->bytes_up);
}

static void conn_upstream_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_relay(bev, c->cbev, &c->bytes_down);
}

static void conn_client_writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_resume(c->ubev, bev, c->u_eof);
    conn_finish_client(c);
}

static void conn_upstream_writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_resume(c->cbev, bev, c->c_eof);
    conn_finish_upstream(c);
}

static void conn_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_ERROR) {
        conn_close(c, (what & BEV_EVENT_READING) ? "client_reset" : "client_timeout", NULL);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->c_eof = 1;
        c->bytes_up += evbuffer_get_length(in);
        evbuffer_add_buffer(bufferevent_get_output(c->ubev), in);
        conn_finish_upstream(c);
    }
}

static void conn_upstream_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        if (err == ECONNRESET || err == EPIPE)
            conn_close(c, "server_reset", NULL);
        else
            conn_close(c, "error", strerror(err));
        return;
    }
    if (what & BEV_EVENT_EOF) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->u_eof = 1;
        c->bytes_down += evbuffer_get_length(in);
        evbuffer_add_buffer(bufferevent_get_output(c->cbev), in);
        conn_finish_client(c);
    }
}

/* Both sides known: relay, starting with whatever the client sent already. */
static void conn_start_relay(struct conn *c)
{
    bufferevent_setcb(c->cbev, conn_client_readcb, conn_client_writecb, conn_client_eventcb, c);
    bufferevent_setcb(c->ubev, conn_upstream_readcb, conn_upstream_writecb, conn_upstream_eventcb,
                      c);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        conn_relay(c->cbev, c->ubev, &c->bytes_up);
}

/* The name a pin is kept under: the SNI, else the destination address. */
static const char *conn_tls_host(const struct conn *c, char *buf, size_t len)
{
    if (c->tls->sni[0])
        return c->tls->sni;
    return inet_ntop(c->server.family, c->server.addr, buf, (socklen_t)len);
}

static void conn_tls_ready(void *arg, struct bufferevent *client, struct bufferevent *upstream,
                           const char *error)
{
    struct conn *c = arg;

    c->handshake = NULL;
    if (error) {
        char host[64];
        if (c->tls->refused_cert && c->w->cfg->tls.auto_passthrough)
            worker_pin_add(c->w, c->client.family, c->client.addr,
                           conn_tls_host(c, host, sizeof(host)));
        /* Whatever the TLS layer queued (an alert) goes out before the FIN. */
        bufferevent_flush(c->c_raw, EV_WRITE, BEV_FINISHED);
        conn_close(c, "tls_error", error);
        return;
    }
    c->cbev = client;
    c->ubev = upstream;
    log_debug("tcp #%" PRIu64 ": TLS intercepted (%s, %s)", c->id, c->tls->sni, c->tls->version);
    conn_start_relay(c);
}

/* While the TLS legs handshake, the client can only go away. */
static void conn_handshake_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    conn_close(c, (what & BEV_EVENT_ERROR) ? "client_reset" : "tls_error",
               "the client left during the TLS handshake");
}

static void conn_sniff_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    event_free(c->ev);
    c->ev = NULL;
    conn_start_relay(c); /* a protocol where the server speaks first */
}

/* The first bytes on an intercepted port: a ClientHello is intercepted, anything else relayed. */
static void conn_sniff_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in), look = len < SNIFF_MAX ? len : SNIFF_MAX;
    enum clienthello_result r;
    struct clienthello ch;
    char host[64];
    int ignored;

    r = clienthello_parse(evbuffer_pullup(in, (ssize_t)look), look, &ch);
    if (r == CLIENTHELLO_NEED_MORE && len >= SNIFF_MAX)
        r = CLIENTHELLO_INVALID;
    if (r == CLIENTHELLO_NEED_MORE)
        return;
    event_free(c->ev);
    c->ev = NULL;
    if (r == CLIENTHELLO_NOT_TLS) {
        conn_start_relay(c);
        return;
    }
    if (r == CLIENTHELLO_INVALID) {
        conn_close(c, "error", "invalid TLS ClientHello");
        return;
    }
    c->tls = calloc(1, sizeof(*c->tls));
    if (!c->tls) {
        conn_close(c, "error", "out of memory");
        return;
    }
    snprintf(c->tls->sni, sizeof(c->tls->sni), "%s", ch.sni);
    ignored = hostmatch(c->w->cfg->tls.ignore_hosts, ch.sni, c->server.family, c->server.addr);
    if (ignored >= 0) {
        snprintf(c->tls->error, sizeof(c->tls->error), "[tls] ignore_hosts entry %d", ignored + 1);
        conn_start_relay(c);
        return;
    }
    if (c->w->cfg->tls.auto_passthrough && worker_pin_find(c->w, c->client.family, c->client.addr,
                                                           conn_tls_host(c, host, sizeof(host)))) {
        snprintf(c->tls->error, sizeof(c->tls->error),
                 "auto_passthrough: this client refused our certificate for this host");
        conn_start_relay(c);
        return;
    }
    bufferevent_setcb(bev, NULL, NULL, conn_handshake_eventcb, c);
    c->handshake = tls_intercept(c->w->tls, c->c_raw, c->u_raw, &ch, c->tls, conn_tls_ready, c);
    if (!c->handshake)
        conn_close(c, "error", "cannot start the TLS legs");
}

/* While sniffing, a server that speaks first is no TLS server: relay. */
static void conn_sniff_upstream_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    event_free(c->ev);
    c->ev = NULL;
    conn_start_relay(c);
    conn_upstream_readcb(bev, c);
}

static int conn_tls_port(const struct conn *c)
{
    const struct config *cfg = c->w->cfg;

    for (int i = 0; i < cfg->tls.nports; i++)
        if (c->server.port >= cfg->tls.ports[i].first && c->server.port <= cfg->tls.ports[i].last)
            return 1;
    return 0;
}

void conn_accepted(void *ctx, struct bufferevent *bev)
{
    struct conn *c = ctx;
    struct timeval sniff = {c->w->cfg->tcp.connect_timeout, 0};

    c->syn = NULL;
    event_free(c->ev);
    c->ev = NULL;
    c->cbev = c->c_raw = bev;
    log_debug("tcp #%" PRIu64 ": client handshake done", c->id);
    if (!c->w->tls || (!conn_tls_port(c) && !c->w->cfg->tls.detect)) {
        conn_start_relay(c);
        return;
    }
    bufferevent_setcb(c->cbev, conn_sniff_readcb, NULL, conn_handshake_eventcb, c);
    bufferevent_setcb(c->ubev, conn_sniff_upstream_readcb, NULL, conn_upstream_eventcb, c);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_enable(c->ubev, EV_READ);
    c->ev = evtimer_new(c->w->base, conn_sniff_timeout, c);
    if (!c->ev || evtimer_add(c->ev, &sniff) < 0)
        conn_close(c, "error", "out of memory");
}

static void conn_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    conn_close(c, "handshake_timeout", "the client did not complete the TCP handshake");
}

/* The upstream connect finished (writable) or timed out. */
static void conn_connected(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct timeval deadline = {c->w->cfg->tcp.connect_timeout, 0};
    int err = 0;
    socklen_t len = sizeof(err);

    event_free(c->ev);
    c->ev = NULL;
    if (what & EV_TIMEOUT)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_refuse(c, err);
        return;
    }
    c->ubev = bufferevent_socket_new(c->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->ubev) {
        conn_refuse(c, ENOMEM);
        return;
    }
    c->fd = -1; /* the bufferevent owns it now */
    c->u_raw = c->ubev;
    bufferevent_set_max_single_read(c->ubev, UPSTREAM_IO_MAX);
    bufferevent_set_max_single_write(c->ubev, UPSTREAM_IO_MAX);
    c->ev = evtimer_new(c->w->base, conn_handshake_timeout, c);
    if (!c->ev || evtimer_add(c->ev, &deadline) < 0) {
        conn_refuse(c, ENOMEM);
        return;
    }
    netstack_syn_accept(c->syn, c);
}

void conn_syn(void *arg, struct netstack_syn *syn, const struct netstack_endpoint *client,
              const struct netstack_endpoint *server)
{
    struct worker *w = arg;
    struct timeval timeout = {w->cfg->tcp.connect_timeout, 0};
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct conn *c = calloc(1, sizeof(*c));

    if (!c) {
        netstack_syn_reject(syn, NETSTACK_REJECT_RST);
        return;
    }
    c->w = w;
    c->id = ++w->next_id;
    c->client = *client;
    c->server = *server;
    c->syn = syn;
    c->fd = -1;
    clock_gettime(CLOCK_REALTIME, &c->start);
    clock_gettime(CLOCK_MONOTONIC, &c->mono);
    conn_list_push(&w->conns, c);
    w->tcp_open++;
    w->tcp_total++;

    c->fd = upstream_socket(server->family, SOCK_STREAM, w->cfg->routing.mark);
    if (c->fd < 0) {
        conn_refuse(c, errno);
        return;
    }
    sslen = upstream_sockaddr(server, &ss);
    if (connect(c->fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
        conn_refuse(c, errno);
        return;
    }
    c->ev = event_new(w->base, c->fd, EV_WRITE, conn_connected, c);
    if (!c->ev || event_add(c->ev, &timeout) < 0)
        conn_refuse(c, ENOMEM);
}
