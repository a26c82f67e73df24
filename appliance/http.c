/*
 * One exchange at a time per client stream: the request's head is read and checked, sent
 * upstream (dialled first when needed), its body streamed; the response's head and body are
 * streamed back; then the record is written and the next (pipelined) request is read. Requests
 * that arrive early wait in the client's input, which the read watermark bounds.
 *
 * Errors the appliance answers itself (400, 403, 407, 431, 502, 504) carry a one-line body
 * saying what failed, are recorded like any exchange, and close the client connection.
 */
#include "http.h"
#include "http_int.h"

#include "bodycap.h"
#include "conn.h"
#include "dial.h"
#include "flowlog.h"
#include "httpmsg.h"
#include "log.h"
#include "tls/intercept.h"
#include "worker.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FEED_MAX (64 * 1024) /* bytes handed to the parser at once */

static void http_upstream_read(struct http *h);
static void http_client_ended(struct http *h);
static void http_idle_arm(struct http *h);

static const char *http_mode(const struct http *h)
{
    return h->c->kind == CONN_TRANSPARENT ? "transparent" : "explicit";
}

static void http_capture_request(void *arg, const char *data, size_t len)
{
    struct http *h = arg;
    const struct httpmsg *m = httpmsg_current(h->req);

    bodycap_add(h->req_body, data, len, httpmsg_header(m, "Content-Encoding"));
}

static void http_capture_response(void *arg, const char *data, size_t len)
{
    struct http *h = arg;
    const struct httpmsg *m = httpmsg_current(h->resp);

    bodycap_add(h->resp_body, data, len, httpmsg_header(m, "Content-Encoding"));
}

/* Writes the current exchange's record (once). */
void http_record(struct http *h, const char *error)
{
    struct conn *c = h->c;
    const struct httpmsg *rq = httpmsg_current(h->req);
    const struct httpmsg *rs = h->head_sent ? httpmsg_current(h->resp) : NULL;
    static const struct httpmsg none = {.method = "-", .target = "", .major = 1, .minor = 1};

    if (h->recorded)
        return;
    h->recorded = 1;
    if (!rq->method) { /* the head never parsed */
        rq = &none;
        clock_gettime(CLOCK_REALTIME, &h->start);
        clock_gettime(CLOCK_MONOTONIC, &h->m_start);
    }
    struct http_record r = {
        .id = c->id,
        .client = &c->client,
        .server = &c->server,
        .start = h->start,
        .mode = http_mode(h),
        .scheme = h->scheme,
        .url = h->url ? h->url : rq->target,
        .request = rq,
        .response = rs,
        .status = h->status,
        .reason = h->reason,
        .request_bytes = rq->body_bytes,
        .response_bytes = rs ? rs->body_bytes : h->local_bytes,
        .tls = (c->tls && c->tls->intercepted) ? c->tls : NULL,
        .connect_ms = c->connect_ms,
        .tls_ms = c->tls_ms,
        .ttfb_ms = h->ttfb_ms,
        .total_ms = conn_ms_since(&h->m_start),
        .error = error,
        .resent = h->retried,
        .upstream_reused = c->reused,
    };
    if (h->req_body && rq != &none)
        r.request_body =
            bodycap_get(h->req_body, httpmsg_header(rq, "Content-Encoding"), &r.request_body_len);
    if (h->resp_body && rs)
        r.response_body =
            bodycap_get(h->resp_body, httpmsg_header(rs, "Content-Encoding"), &r.response_body_len);
    flowlog_write_http(c->w->flows, &r);
    c->connect_ms = c->tls_ms = -1; /* a later exchange on this connection reuses it */
}

/* Whether the upstream connection sits idle between exchanges, fit for another client. */
int http_upstream_parkable(const struct http *h)
{
    const struct conn *c = h->c;

    return c->pkey && c->ubev && h->up_keep && !h->up_bound &&
           (h->state == H_IDLE || (h->state == H_ACTIVE && h->req_done && h->resp_done)) &&
           evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0;
}

/* Ends the client connection once what is queued for it has gone out; an idle upstream
 * connection goes to the pool. */
void http_close(struct http *h)
{
    struct conn *c = h->c;

    if (http_upstream_parkable(h))
        conn_park_upstream(c, h->up_idle);
    h->closing = 1;
    bufferevent_disable(c->cbev, EV_READ);
    if (conn_end_client(c))
        conn_close(c, "closed", NULL);
}

/* The appliance answers the request itself, then closes. */
void http_reply(struct http *h, int status, const char *reason, const char *extra,
                const char *content_type, const char *body, size_t len, const char *error)
{
    struct conn *c = h->c;
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    const struct httpmsg *rq = httpmsg_current(h->req);
    int head_only = rq->method && strcmp(rq->method, "HEAD") == 0;

    if (h->head_sent) { /* too late for an answer: cut the response short */
        http_record(h, error);
        conn_close(c, "error", error);
        return;
    }
    if (h->dial)
        dial_cancel(h->dial);
    h->dial = NULL;
    h->state = H_LOCAL;
    h->status = status;
    h->reason = reason;
    h->local_bytes = len;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n%s\r\n",
                        status, reason, content_type, len, extra ? extra : "");
    if (!head_only)
        evbuffer_add(out, body, len);
    c->bytes_down += evbuffer_get_length(out);
    http_record(h, error);
    http_close(h);
}

/* An error reply: a one-line plain-text body saying what failed. */
void http_fail(struct http *h, int status, const char *reason, const char *extra, const char *what)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "mitmtun: %d %s: %s\n", status, reason, what);

    log_debug("tcp #%" PRIu64 ": %d %s: %s", h->c->id, status, reason, what);
    http_reply(h, status, reason, extra, "text/plain; charset=utf-8", body,
               n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1, what);
}

/* Whether the message lets the connection carry another one (RFC 9112 9.3). */
int http_keep_alive(const struct httpmsg *m)
{
    if (m->conn_close)
        return 0;
    return m->major > 1 || (m->major == 1 && m->minor >= 1) || m->conn_keep_alive;
}

/* Sets callbacks and bounds on the upstream side. */
static void http_wire_upstream(struct http *h);

/* The upstream connection is ready: the request head goes out, its body follows. */
void http_upstream_ready(struct http *h)
{
    http_wire_upstream(h);
    if (http_send_head(h) == 0)
        http_client_read(h);
}

/* The exchange is over: record it, then read the next request or close. */
static void http_exchange_done(struct http *h)
{
    struct conn *c = h->c;

    http_record(h, NULL);
    if (h->close_after || (c->c_eof && evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)) {
        http_close(h);
        return;
    }
    h->path = h->url = NULL;
    h->state = H_IDLE;
    h->req_done = h->resp_done = h->head_sent = h->recorded = 0;
    h->upgrade_asked = 0;
    h->retried = 0;
    h->status = 0;
    h->reason = NULL;
    h->ttfb_ms = -1;
    h->local_bytes = 0;
    if (h->req_body)
        bodycap_reset(h->req_body);
    if (h->resp_body)
        bodycap_reset(h->resp_body);
    http_idle_arm(h);
    http_client_read(h); /* a pipelined request may be waiting */
    http_client_ended(h);
}

static int http_live(const struct http *h)
{
    return !h->stopped && !h->c->closed && !h->closing;
}

/*
 * What goes upstream gathers in h->up while the client's input is read: the request head, then
 * the body bytes read with it, written as one piece (one TLS record) when the request ends or
 * the reading stops, or on the way once UP_GATHER_MAX bytes wait. conn_send_up writes at once
 * what the upstream takes when nothing waits before it, where libevent would wait for epoll to
 * say writable.
 */
static void http_send_up(struct http *h)
{
    if (http_live(h) && h->state == H_ACTIVE && h->c->ubev && evbuffer_get_length(h->up) > 0)
        conn_send_up(h->c, h->up);
}

/* Moves n bytes of the client's input upstream (or drops them for a local answer). */
static void http_forward_up(struct http *h, size_t n)
{
    struct conn *c = h->c;
    struct evbuffer *in = bufferevent_get_input(c->cbev);

    c->bytes_up += n;
    if (h->state == H_ACTIVE && c->ubev) {
        evbuffer_remove_buffer(in, h->up, n);
        if (evbuffer_get_length(h->up) >= UP_GATHER_MAX)
            http_send_up(h);
    } else {
        evbuffer_drain(in, n);
    }
}

/*
 * The first contiguous bytes of in (at most FEED_MAX), without copying: the reader keeps
 * partial heads itself, so feeding chain by chain is enough. "" with *n = 0 when empty.
 */
static const char *http_first_chunk(struct evbuffer *in, size_t *n)
{
    struct evbuffer_iovec v;

    if (evbuffer_peek(in, FEED_MAX, NULL, &v, 1) < 1 || v.iov_len == 0) {
        *n = 0;
        return "";
    }
    *n = v.iov_len < FEED_MAX ? v.iov_len : FEED_MAX;
    return v.iov_base;
}

/*
 * After the client's FIN, once everything it sent has been read: between requests, a clean
 * end; inside one, a request cut short. While a request is dialled or still being read (the
 * upstream side is backed up), nothing yet: this runs again when that is done.
 */
static void http_client_ended(struct http *h)
{
    struct conn *c = h->c;

    if (!c->c_eof || !http_live(h) || h->state == H_DIALING || h->state == H_LOCAL)
        return;
    if (h->req_done)
        return; /* the response is still coming; the exchange's end closes */
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        return; /* not all read yet */
    if (h->state == H_IDLE && httpmsg_eof(h->req) == HTTPMSG_NEED_MORE) {
        http_close(h);
        return;
    }
    http_record(h, "the client closed the connection mid-request");
    conn_close(c, "error", "the client closed the connection mid-request");
}

static void http_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;

    (void)fd;
    (void)what;
    if (h->state != H_IDLE || !http_live(h))
        return;
    log_debug("tcp #%" PRIu64 ": no request for [proxy] idle_timeout: closing", h->c->id);
    http_close(h);
}

/* Waits [proxy] idle_timeout for the next request head (0: forever). */
static void http_idle_arm(struct http *h)
{
    struct timeval tv = {h->c->w->cfg->proxy.idle_timeout, 0};

    if (h->idle_ev && tv.tv_sec > 0)
        evtimer_add(h->idle_ev, &tv);
}

/*
 * Reading from a side stops while CONN_BUFFER_LIMIT bytes of its input wait to be taken, and
 * starts again once they are; TCP's window then holds the sender back. (A read watermark does
 * the same, but libevent 2.1 then enables the bufferevent again at each change of its input,
 * and an OpenSSL filter tries an SSL_read each time: 7 % of a keep-alive request's
 * instructions.)
 */
static void http_pace(struct http *h, struct bufferevent *bev, int *paused)
{
    int full;

    if (!bev || !http_live(h))
        return;
    full = evbuffer_get_length(bufferevent_get_input(bev)) >= CONN_BUFFER_LIMIT;
    if (full != *paused) {
        *paused = full;
        if (full) {
            bufferevent_disable(bev, EV_READ);
        } else {
            bufferevent_enable(bev, EV_READ);
            tls_kick(bev);
        }
    }
}

static void http_client_parse(struct http *h)
{
    struct conn *c = h->c;
    struct evbuffer *in = bufferevent_get_input(c->cbev);

    while (http_live(h) && h->state != H_DIALING && h->state != H_LOCAL && !h->req_done) {
        size_t n, used;
        const char *data = http_first_chunk(in, &n);
        enum httpmsg_event ev;

        if (h->state == H_ACTIVE &&
            evbuffer_get_length(bufferevent_get_output(c->ubev)) >= CONN_BUFFER_LIMIT) {
            bufferevent_setwatermark(c->ubev, EV_WRITE, CONN_BUFFER_LIMIT / 2, 0);
            return; /* the upstream write callback resumes */
        }
        ev = httpmsg_feed(h->req, data, n, &used);
        switch (ev) {
        case HTTPMSG_NEED_MORE:
            evbuffer_drain(in, used);
            c->bytes_up += used;
            if (used == 0) {
                http_client_ended(h);
                return;
            }
            break;
        case HTTPMSG_HEAD:
            evbuffer_drain(in, used);
            c->bytes_up += used;
            if (h->idle_ev)
                evtimer_del(h->idle_ev);
            http_request_head(h);
            break;
        case HTTPMSG_BODY:
            http_forward_up(h, used);
            break;
        case HTTPMSG_DONE:
            http_forward_up(h, used);
            http_send_up(h); /* the whole request, before the exchange may end */
            h->req_done = 1;
            if (h->resp_done)
                http_exchange_done(h);
            break;
        case HTTPMSG_ERROR:
            if (h->state == H_ACTIVE) {
                http_record(h, httpmsg_error(h->req));
                conn_close(c, "error", "malformed request body");
            } else if (httpmsg_too_large(h->req)) {
                http_fail(h, 431, "Request Header Fields Too Large", NULL,
                          "request head over [proxy] max_header_bytes");
            } else {
                char why[200];
                snprintf(why, sizeof(why), "malformed request: %s", httpmsg_error(h->req));
                http_fail(h, 400, "Bad Request", NULL, why);
            }
            return;
        }
    }
}

static void http_client_take(struct http *h)
{
    http_client_parse(h);
    http_send_up(h);
}

void http_client_read(struct http *h)
{
    http_client_take(h);
    http_pace(h, h->c->cbev, &h->client_paused);
}

/*
 * Whether the request may go out again on a new connection: the server closed a reused one as
 * the request went out (nothing answered yet), and the request has no body (as browsers do).
 */
static int http_may_send_again(const struct http *h)
{
    const struct conn *c = h->c;

    return h->state == H_ACTIVE && !h->resp_done && !h->retried && h->req_done && c->reused &&
           c->bytes_down == h->down_at_send && httpmsg_current(h->req)->body_bytes == 0;
}

/* The response ended with the upstream connection. */
static void http_upstream_gone(struct http *h, const char *why)
{
    struct conn *c = h->c;

    if (http_may_send_again(h)) {
        char addr[64];
        log_debug("tcp #%" PRIu64 ": the reused upstream connection %s: sending again", c->id, why);
        h->retried = 1;
        conn_drop_upstream(c);
        inet_ntop(c->server.family, c->server.addr, addr, sizeof(addr));
        http_dial(h, addr, c->server.port, 1, NULL);
        return;
    }
    if (h->state == H_ACTIVE && !h->resp_done) {
        if (httpmsg_eof(h->resp) == HTTPMSG_DONE) { /* delimited by the close */
            h->resp_done = 1;
            h->close_after = 1;
            if (!h->req_done) /* the server has answered: the rest of the request is moot */
                h->req_done = 1;
            http_exchange_done(h);
            return;
        }
        if (!h->head_sent) {
            char msg[160];
            snprintf(msg, sizeof(msg), "the upstream server %s before responding", why);
            http_fail(h, 502, "Bad Gateway", NULL, msg);
        } else {
            char msg[160];
            snprintf(msg, sizeof(msg), "the upstream server %s mid-response", why);
            http_record(h, msg);
            conn_close(c, "error", msg);
        }
        return;
    }
    conn_drop_upstream(c); /* between exchanges: the next request connects again */
    h->up_host[0] = '\0';
}

/* What a final response head says about reusing the upstream connection (looked at only when
 * it may be parked). */
static void http_upstream_keep(struct http *h, const struct httpmsg *m)
{
    const char *ka, *t;

    if (!h->c->pkey)
        return;
    ka = httpmsg_header(m, "Keep-Alive");
    h->up_keep = http_keep_alive(m) && !m->until_eof && m->status != 101;
    if (m->status == 401 && http_connection_auth(httpmsg_header(m, "WWW-Authenticate")))
        h->up_bound = 1;
    /* "Keep-Alive: timeout=5, max=100": the server closes an idle connection after 5 s */
    if (ka && (t = strcasestr(ka, "timeout=")) != NULL) {
        long s = strtol(t + 8, NULL, 10);
        if (s - 1 < h->up_idle)
            h->up_idle = s > 1 ? (int)(s - 1) : 0;
    }
}

static void http_upstream_take(struct http *h)
{
    struct conn *c = h->c;

    while (http_live(h) && c->ubev) {
        struct evbuffer *in = bufferevent_get_input(c->ubev);
        size_t len = evbuffer_get_length(in), n, used;
        const char *data;
        const struct httpmsg *m;
        enum httpmsg_event ev;

        if (h->state != H_ACTIVE || h->resp_done) {
            http_flush_response(h);
            if (len > 0) { /* nothing was asked: a server's parting words, dropped */
                log_debug("tcp #%" PRIu64 ": %zu unsolicited bytes from upstream", c->id, len);
                evbuffer_drain(in, len);
            }
            if (c->u_eof)
                http_upstream_gone(h, "closed the connection");
            return;
        }
        if (evbuffer_get_length(bufferevent_get_output(c->cbev)) >= CONN_BUFFER_LIMIT) {
            bufferevent_setwatermark(c->cbev, EV_WRITE, CONN_BUFFER_LIMIT / 2, 0);
            http_flush_response(h);
            return; /* the client write callback resumes */
        }
        data = http_first_chunk(in, &n);
        ev = httpmsg_feed(h->resp, data, n, &used);
        m = httpmsg_current(h->resp);
        switch (ev) {
        case HTTPMSG_NEED_MORE:
            evbuffer_drain(in, used);
            c->bytes_down += used;
            if (used == 0) {
                http_flush_response(h);
                if (c->u_eof)
                    http_upstream_gone(h, "closed the connection");
                return;
            }
            break;
        case HTTPMSG_HEAD:
            evbuffer_drain(in, used);
            c->bytes_down += used;
            if (m->status < 200 && m->status != 101) { /* interim: 100 Continue and the like */
                if (http_send_response_head(h, m, 0) < 0)
                    return;
                break;
            }
            h->ttfb_ms = conn_ms_since(&h->m_sent);
            h->status = m->status;
            h->reason = m->reason;
            if (!(m->status == 101 && h->upgrade_asked))
                h->close_after |= !http_keep_alive(m) || m->until_eof || !h->req_keep;
            http_upstream_keep(h, m);
            if (http_send_response_head(h, m, 1) < 0)
                return;
            h->head_sent = 1;
            break;
        case HTTPMSG_BODY:
        case HTTPMSG_DONE:
            if (h->head_pending && evbuffer_get_length(h->head) + used <= COALESCE_MAX) {
                evbuffer_remove_buffer(in, h->head, used); /* counted when it goes */
            } else {
                http_flush_response(h);
                evbuffer_remove_buffer(in, bufferevent_get_output(c->cbev), used);
                c->bytes_down += used;
            }
            if (ev == HTTPMSG_BODY || (m->status < 200 && m->status != 101))
                break;
            http_flush_response(h);
            if (m->status == 101 && h->upgrade_asked) { /* WebSocket and the like: raw bytes */
                http_record(h, NULL);
                conn_start_relay(c);
                return;
            }
            h->resp_done = 1;
            if (h->req_done)
                http_exchange_done(h);
            break;
        case HTTPMSG_ERROR: {
            char why[200];
            snprintf(why, sizeof(why), "malformed response from upstream: %s",
                     httpmsg_error(h->resp));
            if (h->head_sent) {
                http_record(h, why);
                conn_close(c, "error", why);
            } else {
                http_fail(h, 502, "Bad Gateway", NULL, why);
            }
            return;
        }
        }
    }
}

static void http_upstream_read(struct http *h)
{
    http_upstream_take(h);
    http_pace(h, h->c->ubev, &h->upstream_paused);
}

static void http_client_readcb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    http_client_read(arg);
}

static void http_client_writecb(struct bufferevent *bev, void *arg)
{
    struct http *h = arg;

    (void)bev;
    if (h->closing) {
        if (conn_end_client(h->c))
            conn_close(h->c, "closed", NULL);
        return;
    }
    bufferevent_setwatermark(h->c->cbev, EV_WRITE, 0, 0);
    http_upstream_read(h);
}

static void http_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct http *h = arg;
    struct conn *c = h->c;

    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        const char *end = conn_client_error_end(c, what);
        if (h->state != H_IDLE)
            http_record(h, strcmp(end, "client_reset") == 0 ? "the client reset the connection"
                                                            : "the client stopped answering");
        conn_close(c, end, NULL);
        return;
    }
    if (!(what & BEV_EVENT_EOF))
        return;
    c->c_eof = 1;
    http_client_read(h); /* what came before the FIN; it ends the stream when all is read */
    http_client_ended(h);
}

static void http_upstream_readcb(struct bufferevent *bev, void *arg)
{
    tls_take_pending(bev);
    http_upstream_read(arg);
}

static void http_upstream_writecb(struct bufferevent *bev, void *arg)
{
    struct http *h = arg;

    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    http_client_read(h);
}

static void http_upstream_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct http *h = arg;

    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        h->c->u_eof = 1;
        http_upstream_gone(h, "reset the connection");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        h->c->u_eof = 1;
        http_upstream_read(h); /* what is left, then the end */
    }
}

static void http_wire_upstream(struct http *h)
{
    struct bufferevent *u = h->c->ubev;

    bufferevent_setcb(u, http_upstream_readcb, http_upstream_writecb, http_upstream_eventcb, h);
    bufferevent_setwatermark(u, EV_READ | EV_WRITE, 0, 0); /* http_pace paces reading */
    bufferevent_enable(u, EV_READ | EV_WRITE);
    h->upstream_paused = 0;
    tls_kick(u);
}

/* Frees what h holds (not h). */
static void http_release(struct http *h)
{
    httpmsg_reader_free(h->req);
    httpmsg_reader_free(h->resp);
    bodycap_free(h->req_body);
    bodycap_free(h->resp_body);
    if (h->idle_ev)
        event_free(h->idle_ev);
    if (h->head)
        evbuffer_free(h->head);
    if (h->up)
        evbuffer_free(h->up);
    free(h->target);
}

int http_start(struct conn *c, const char *scheme)
{
    struct http *h = c->http;
    size_t max = (size_t)c->w->cfg->proxy.max_header_bytes;

    if (!h) {
        h = calloc(1, sizeof(*h));
        if (!h)
            return -1;
        c->http = h;
    } else { /* a CONNECT tunnel: the same layer on what flows inside */
        http_release(h);
        memset(h, 0, sizeof(*h));
        h->tunnel = 1;
    }
    h->c = c;
    h->scheme = scheme;
    h->ttfb_ms = -1;
    h->up_keep = 1;
    h->up_idle = c->w->cfg->proxy.upstream_reuse;
    h->req = httpmsg_reader_new(1, max);
    h->resp = httpmsg_reader_new(0, max);
    h->head = evbuffer_new();
    h->up = evbuffer_new();
    h->idle_ev = evtimer_new(c->w->base, http_idle_timeout, h);
    if (!h->req || !h->resp || !h->head || !h->up || !h->idle_ev)
        return -1;
    if (c->w->cfg->log.body_max > 0) {
        size_t keep = (size_t)c->w->cfg->log.body_max;
        h->req_body = bodycap_new(keep, c->w->cfg->log.body_decode);
        h->resp_body = bodycap_new(keep, c->w->cfg->log.body_decode);
        if (!h->req_body || !h->resp_body)
            return -1;
        httpmsg_set_body_sink(h->req, http_capture_request, h);
        httpmsg_set_body_sink(h->resp, http_capture_response, h);
    }
    bufferevent_setcb(c->cbev, http_client_readcb, http_client_writecb, http_client_eventcb, h);
    bufferevent_setwatermark(c->cbev, EV_READ | EV_WRITE, 0, 0); /* http_pace paces reading */
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    if (c->ubev)
        http_wire_upstream(h);
    http_idle_arm(h);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        http_client_read(h);
    return 0;
}

void http_stop(struct http *h)
{
    h->stopped = 1;
    if (h->idle_ev)
        evtimer_del(h->idle_ev);
    if (h->dial)
        dial_cancel(h->dial);
    h->dial = NULL;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    http_stop(h);
    http_release(h);
    free(h);
}
