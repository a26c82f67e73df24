/*
 * One TCP connection: the client side is a bufferevent (a netstack pair end), the upstream side a
 * socket bufferevent. Lifecycle:
 *   SYN held -> upstream connect -> SYN passed to lwIP -> handshake done -> relay -> record,
 * or, when the pool (pool.h) holds an idle upstream connection from this client to this
 * server, SYN passed at once -> first bytes -> the pooled connection, or a connect then.
 * The first bytes decide what the stream is (conn_sniff.c): TLS, HTTP/1.x, or a raw relay.
 * Every way out goes through conn_close(), which writes the record and hands the struct to the
 * worker's reaper, so callers up the stack may still look at it safely.
 *
 * Buffering: each direction holds at most CONN_BUFFER_LIMIT bytes in the receiving side's output;
 * above that the sending side stops reading, which closes lwIP's window (client) or the kernel
 * socket's window (upstream).
 */
#include "conn.h"
#include "conn_int.h"

#include "flowlog.h"
#include "http.h"
#include "tls/intercept.h"
#include "pool.h"
#include "upstream.h"
#include "worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UPSTREAM_IO_MAX (256 * 1024) /* bytes one socket read or write may move */
#define LINGER_SECONDS  30           /* a closed client socket may take this long to drain */

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

static void conn_linger_writecb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_free(bev);
}

static void conn_linger_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}

/*
 * Frees a socket bufferevent once what is queued has gone out (or after LINGER_SECONDS), so
 * that a graceful close never cuts the last bytes of a response.
 */
static void conn_linger(struct bufferevent *bev)
{
    struct timeval tv = {LINGER_SECONDS, 0};

    if (bufferevent_getfd(bev) < 0 || evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        bufferevent_free(bev);
        return;
    }
    bufferevent_setcb(bev, NULL, conn_linger_writecb, conn_linger_eventcb, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(bev, NULL, &tv);
    bufferevent_disable(bev, EV_READ);
    bufferevent_enable(bev, EV_WRITE);
}

double conn_ms_since(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1000 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

void conn_close(struct conn *c, const char *end, const char *error)
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
    if (c->http)
        http_stop(c->http);
    if (c->cbev && c->cbev != c->c_raw)
        tls_filter_free(c->cbev);
    if (c->ubev && c->ubev != c->u_raw)
        tls_filter_free(c->ubev);
    c->cbev = c->ubev = NULL;
    if (c->c_raw) {
        if (!graceful) {
            stream_reset(c->c_raw);
            bufferevent_free(c->c_raw);
        } else {
            conn_linger(c->c_raw);
        }
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
        .upstream_reused = c->reused,
    };
    flowlog_write(w->flows, &r);

    conn_list_remove(&w->conns, c);
    conn_list_push(&w->dead, c);
    event_active(w->reaper, EV_TIMEOUT, 0);
    w->tcp_open--;
}

/* The record's end for an upstream connect that failed with err. */
const char *conn_connect_end(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return "refused";
    case ETIMEDOUT:
        return "timeout";
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
        return "unreachable";
    }
    return "error";
}

/* Refuses the held SYN as the upstream refused us, then closes. */
static void conn_refuse(struct conn *c, int err)
{
    const char *end = conn_connect_end(err);

    netstack_syn_reject(c->syn, strcmp(end, "unreachable") == 0 ? NETSTACK_REJECT_UNREACHABLE
                                                                : NETSTACK_REJECT_RST);
    c->syn = NULL;
    conn_close(c, end, strerror(err));
}

void conn_reap(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->next;
        http_free(c->http);
        free(c->tls);
        free(c->pkey);
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
    if (evbuffer_get_length(out) >= CONN_BUFFER_LIMIT) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, CONN_BUFFER_LIMIT / 2, 0);
    }
}

/* Resumes from once to has drained (from's EOF aside: it has nothing more to read). */
static void conn_resume(struct bufferevent *from, struct bufferevent *to, int from_eof)
{
    if (!from_eof && !(bufferevent_get_enabled(from) & EV_READ)) {
        bufferevent_setwatermark(to, EV_WRITE, 0, 0);
        bufferevent_enable(from, EV_READ);
        tls_kick(from);
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
    /* TLS has no half-close: close_notify, then the FIN, and the server closes in answer */
    if (c->ubev != c->u_raw)
        tls_close_notify(c->ubev);
    shutdown(bufferevent_getfd(c->u_raw), SHUT_WR);
    c->c_done = 1;
    conn_maybe_done(c);
}

/* FIN to the client once its raw output is out. Returns 1 when sent, 0 to call again. */
int conn_end_raw_client(struct conn *c)
{
    int fd = bufferevent_getfd(c->c_raw);

    if (fd < 0) {
        /* A pair flushes what is queued, then delivers EOF: the netstack sends FIN after it. */
        bufferevent_flush(c->c_raw, EV_WRITE, BEV_FINISHED);
        return 1;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->c_raw)) > 0) {
        if (c->c_raw != c->cbev)
            return 1; /* under TLS (no half-close): conn_close lingers until it is out */
        bufferevent_setwatermark(c->c_raw, EV_WRITE, 0, 0);
        return 0; /* the client write callback comes back */
    }
    shutdown(fd, SHUT_WR);
    return 1;
}

int conn_end_client(struct conn *c)
{
    if (c->cbev != c->c_raw) {
        if (evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0) {
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            return 0;
        }
        if (!c->u_done)
            tls_close_notify(c->cbev);
        c->u_done = 1;
    }
    return conn_end_raw_client(c);
}

/* Passes upstream's FIN to the client once everything before it has been handed on. */
static void conn_finish_client(struct conn *c)
{
    if (c->u_done || !c->u_eof)
        return;
    if (!conn_end_client(c))
        return;
    c->u_done = 1;
    conn_maybe_done(c);
}

static void conn_client_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_relay(bev, c->ubev, &c->bytes_up);
}

void conn_upstream_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    tls_take_pending(bev);
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

const char *conn_client_error_end(const struct conn *c, short what)
{
    /* A netstack stream says how (see ns_err); a socket has the error itself. */
    if (bufferevent_getfd(c->c_raw) < 0)
        return (what & BEV_EVENT_READING) ? "client_reset" : "client_timeout";
    return EVUTIL_SOCKET_ERROR() == ETIMEDOUT ? "client_timeout" : "client_reset";
}

void conn_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_ERROR) {
        conn_close(c, conn_client_error_end(c, what), NULL);
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

void conn_upstream_eventcb(struct bufferevent *bev, short what, void *arg)
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
void conn_start_relay(struct conn *c)
{
    if (c->http)
        http_stop(c->http);
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    bufferevent_setwatermark(c->cbev, EV_READ | EV_WRITE, 0, 0);
    bufferevent_setwatermark(c->ubev, EV_READ | EV_WRITE, 0, 0);
    bufferevent_setcb(c->cbev, conn_client_readcb, conn_client_writecb, conn_client_eventcb, c);
    bufferevent_setcb(c->ubev, conn_upstream_readcb, conn_upstream_writecb, conn_upstream_eventcb,
                      c);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        conn_relay(c->cbev, c->ubev, &c->bytes_up);
    if (!c->closed && evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0)
        conn_relay(c->ubev, c->cbev, &c->bytes_down);
    if (!c->closed)
        tls_kick(c->ubev);
}

/* The HTTP layer takes the stream; scheme is "https" for a decrypted one. */
void conn_start_http(struct conn *c, const char *scheme)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    if (http_start(c, scheme) < 0)
        conn_close(c, "error", "out of memory");
}

/*
 * Starts a non-blocking connect to c->server on c->fd; done (writable) or timed out, it calls
 * done, which takes the result with conn_connect_result. Returns 0, or an errno.
 */
int conn_connect(struct conn *c, event_callback_fn done)
{
    struct timeval timeout = {c->w->cfg->tcp.connect_timeout, 0};
    struct sockaddr_storage ss;
    socklen_t sslen = upstream_sockaddr(&c->server, &ss);

    c->fd = worker_socket(c->w, c->server.family, SOCK_STREAM);
    if (c->fd < 0)
        return errno;
    if (connect(c->fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS)
        return errno;
    c->ev = event_new(c->w->base, c->fd, EV_WRITE, done, c);
    if (!c->ev || event_add(c->ev, &timeout) < 0)
        return ENOMEM;
    return 0;
}

/* How conn_connect's connect ended (what: its event): 0 with c's upstream side set, or an
 * errno. */
int conn_connect_result(struct conn *c, short what)
{
    int err = upstream_connect_result(c->fd, what & EV_TIMEOUT);

    event_free(c->ev);
    c->ev = NULL;
    if (err)
        return err;
    err = conn_set_upstream(c, c->fd) < 0 ? ENOMEM : 0;
    c->fd = -1; /* the bufferevent owns it now, or it is closed */
    return err;
}

static void conn_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    conn_close(c, "handshake_timeout", "the client did not complete the TCP handshake");
}

int conn_set_upstream(struct conn *c, int fd)
{
    c->ubev = bufferevent_socket_new(c->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->ubev) {
        close(fd);
        return -1;
    }
    c->u_raw = c->ubev;
    c->u_eof = 0;
    bufferevent_set_max_single_read(c->ubev, UPSTREAM_IO_MAX);
    bufferevent_set_max_single_write(c->ubev, UPSTREAM_IO_MAX);
    return 0;
}

void conn_send_up(struct conn *c, struct evbuffer *b)
{
    struct evbuffer *out = bufferevent_get_output(c->ubev);

    if (c->ubev != c->u_raw) {
        tls_send(c->ubev, b);
        return;
    }
    /* libevent would wait for epoll to say writable first (see tls_send) */
    if (evbuffer_get_length(out) == 0)
        evbuffer_write(b, bufferevent_getfd(c->ubev));
    evbuffer_add_buffer(out, b);
}

void conn_send_client(struct conn *c, struct evbuffer *b)
{
    if (c->cbev != c->c_raw)
        tls_send(c->cbev, b);
    else
        evbuffer_add_buffer(bufferevent_get_output(c->cbev), b);
}

void conn_drop_upstream(struct conn *c)
{
    if (c->ubev && c->ubev != c->u_raw)
        tls_filter_free(c->ubev);
    if (c->u_raw)
        bufferevent_free(c->u_raw);
    c->ubev = c->u_raw = NULL;
}

/* The upstream connect finished (writable) or timed out. */
static void conn_connected(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct timeval deadline = {c->w->cfg->tcp.connect_timeout, 0};
    int err = conn_connect_result(c, what);

    (void)fd;
    if (err) {
        conn_refuse(c, err);
        return;
    }
    c->connect_ms = conn_ms_since(&c->mono);
    c->ev = evtimer_new(c->w->base, conn_handshake_timeout, c);
    if (!c->ev || evtimer_add(c->ev, &deadline) < 0) {
        conn_refuse(c, ENOMEM);
        return;
    }
    netstack_syn_accept(c->syn, c);
}

static struct conn *conn_new(struct worker *w, enum conn_kind kind,
                             const struct netstack_endpoint *client,
                             const struct netstack_endpoint *server)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->w = w;
    c->id = worker_new_id(w);
    c->kind = kind;
    c->client = *client;
    c->server = *server;
    c->fd = -1;
    c->connect_ms = c->tls_ms = -1;
    clock_gettime(CLOCK_REALTIME, &c->start);
    clock_gettime(CLOCK_MONOTONIC, &c->mono);
    conn_list_push(&w->conns, c);
    w->tcp_open++;
    w->tcp_total++;
    return c;
}

/* What the appliance's own TUN address serves: the proxy port, and the CA page on 80. */
static enum conn_kind conn_local_kind(const struct worker *w, const struct netstack_endpoint *ep)
{
    const struct config *cfg = w->cfg;
    int own =
        (ep->family == AF_INET && memcmp(ep->addr, &cfg->tun.addr, 4) == 0) ||
        (ep->family == AF_INET6 && cfg->tun.prefix6 && memcmp(ep->addr, &cfg->tun.addr6, 16) == 0);

    if (!own)
        return CONN_TRANSPARENT;
    if (ep->port == 80)
        return CONN_ONBOARD;
    for (int i = 0; i < cfg->proxy.nlisten; i++)
        if (cfg->proxy.listen[i].kind == LISTEN_TUN && cfg->proxy.listen[i].port == ep->port)
            return CONN_EXPLICIT;
    return CONN_TRANSPARENT;
}

void conn_syn(void *arg, struct netstack_syn *syn, const struct netstack_endpoint *client,
              const struct netstack_endpoint *server)
{
    struct worker *w = arg;
    struct timeval timeout = {w->cfg->tcp.connect_timeout, 0};
    enum conn_kind kind = conn_local_kind(w, server);
    struct conn *c = conn_new(w, kind, client, server);
    int err;

    if (!c) {
        netstack_syn_reject(syn, NETSTACK_REJECT_RST);
        return;
    }
    c->syn = syn;
    /*
     * Served here, or an idle upstream connection from this client to this server waits in the
     * pool: no connect yet. The ClientHello decides whether the pooled one fits
     * (conn_start_tls); if not, the connect follows then (conn_dial_late).
     */
    if (kind != CONN_TRANSPARENT || pool_has(w->pool, client, server)) {
        c->ev = evtimer_new(w->base, conn_handshake_timeout, c);
        if (!c->ev || evtimer_add(c->ev, &timeout) < 0) {
            conn_refuse(c, ENOMEM);
            return;
        }
        netstack_syn_accept(c->syn, c);
        return;
    }
    err = conn_connect(c, conn_connected);
    if (err)
        conn_refuse(c, err);
}

void conn_explicit(struct worker *w, int fd, const struct netstack_endpoint *client,
                   const struct netstack_endpoint *local, enum conn_kind kind)
{
    struct conn *c = conn_new(w, kind, client, local);

    if (!c) {
        close(fd);
        return;
    }
    c->cbev = c->c_raw = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->cbev) {
        close(fd);
        conn_close(c, "error", "out of memory");
        return;
    }
    bufferevent_set_max_single_read(c->cbev, UPSTREAM_IO_MAX);
    bufferevent_set_max_single_write(c->cbev, UPSTREAM_IO_MAX);
    conn_start_http(c, "http");
}
