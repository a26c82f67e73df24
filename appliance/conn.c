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
#include "log.h"
#include "upstream.h"
#include "worker.h"

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
    if (c->cbev) {
        if (!graceful)
            stream_reset(c->cbev);
        bufferevent_free(c->cbev);
        c->cbev = NULL;
    }
    if (c->ubev) {
        if (!graceful)
            stream_reset(c->ubev);
        bufferevent_free(c->ubev);
        c->ubev = NULL;
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
    shutdown(bufferevent_getfd(c->ubev), SHUT_WR);
    c->c_done = 1;
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
        /* A pair flushes what is queued, then delivers EOF: the netstack sends FIN after it. */
        bufferevent_flush(c->cbev, EV_WRITE, BEV_FINISHED);
        c->u_done = 1;
        conn_maybe_done(c);
    }
}

void conn_accepted(void *ctx, struct bufferevent *bev)
{
    struct conn *c = ctx;

    c->syn = NULL;
    event_free(c->ev);
    c->ev = NULL;
    c->cbev = bev;
    bufferevent_setcb(c->cbev, conn_client_readcb, conn_client_writecb, conn_client_eventcb, c);
    bufferevent_setcb(c->ubev, conn_upstream_readcb, conn_upstream_writecb, conn_upstream_eventcb,
                      c);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    log_debug("tcp #%" PRIu64 ": client handshake done, relaying", c->id);
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
