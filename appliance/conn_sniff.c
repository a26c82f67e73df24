/*
 * What a new stream is, decided from its first bytes: a TLS ClientHello goes to the
 * interceptor (tls/intercept.h), on an idle upstream connection from the pool when one fits
 * or on a connect made then (a "late" connection, see conn_syn), an HTTP/1.x request to the
 * HTTP layer, anything else to the raw relay. A decrypted stream is classified again: its
 * ALPN, or its plaintext, decides.
 */
#include "conn.h"
#include "conn_int.h"

#include "hostmatch.h"
#include "httpmsg.h"
#include "log.h"
#include "pool.h"
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
#include <time.h>

#define SNIFF_AMBIGUOUS_MS 200 /* wait for more after bytes that may begin a method */
#define SNIFF_MAX          (CLIENTHELLO_MAX_MESSAGE + 64) /* bytes read looking for a ClientHello */

static void conn_dial_late(struct conn *c);

/* Accepted, or a CONNECT tunnel opened, without an upstream connect (an idle one was in the
 * pool, see conn_syn and http_front.c): one is taken from the pool or dialled once the first
 * bytes say which (conn_start_tls). */
static int conn_late(const struct conn *c)
{
    return (c->kind == CONN_TRANSPARENT || c->connect_host[0]) && !c->u_raw;
}

/* The name a pin is kept under: the SNI, else the destination address. */
static const char *conn_tls_host(const struct conn *c, const char *sni, char *buf, size_t len)
{
    if (sni[0])
        return sni;
    return inet_ntop(c->server.family, c->server.addr, buf, (socklen_t)len);
}

static void conn_tls_ready(void *arg, struct bufferevent *client, struct bufferevent *upstream,
                           const char *error)
{
    struct conn *c = arg;

    c->handshake = NULL;
    c->tls_ms = conn_ms_since(&c->tls_at);
    if (error) {
        char host[64];
        if (c->tls->refused_cert && c->w->cfg->tls.auto_passthrough)
            worker_pin_add(c->w, c->client.family, c->client.addr,
                           conn_tls_host(c, c->tls->sni, host, sizeof(host)));
        /* Whatever the TLS layer queued (an alert) goes out before the FIN. */
        conn_end_raw_client(c);
        conn_close(c, "tls_error", error);
        return;
    }
    c->cbev = client;
    c->ubev = upstream;
    log_debug("tcp #%" PRIu64 ": TLS intercepted (%s, %s)", c->id, c->tls->sni, c->tls->version);
    if (strcmp(c->tls->alpn, "h2") == 0) {
        conn_start_relay(c); /* HTTP/2 stays a byte relay for now */
        return;
    }
    if (strcmp(c->tls->alpn, "http/1.1") == 0 || strcmp(c->tls->alpn, "http/1.0") == 0) {
        conn_start_http(c, "https");
        return;
    }
    conn_classify(c); /* no ALPN: look at the plaintext */
}

/* While the TLS legs handshake, the client can only go away. */
static void conn_handshake_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    conn_close(c, (what & BEV_EVENT_ERROR) ? conn_client_error_end(c, what) : "tls_error",
               "the client left during the TLS handshake");
}

static void conn_sniff_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    event_free(c->ev);
    c->ev = NULL;
    if (conn_late(c))
        conn_dial_late(c);
    else
        conn_start_relay(c); /* a protocol where the server speaks first */
}

static int conn_port_in(const struct uid_range *ranges, int n, uint16_t port)
{
    for (int i = 0; i < n; i++)
        if (port >= ranges[i].first && port <= ranges[i].last)
            return 1;
    return 0;
}

static int conn_tls_port(const struct conn *c)
{
    const struct config *cfg = c->w->cfg;

    return conn_port_in(cfg->tls.ports, cfg->tls.nports, c->server.port);
}

static int conn_http_port(const struct conn *c)
{
    const struct config *cfg = c->w->cfg;

    return conn_port_in(cfg->proxy.http_ports, cfg->proxy.nhttp_ports, c->server.port);
}

/* A late connection's client went away before it had an upstream connection: a close is a
 * clean end (a browser's unused preconnect), nothing having been sent anywhere. */
static void conn_late_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_ERROR)
        conn_close(c, conn_client_error_end(c, what), NULL);
    else
        conn_close(c, "closed", NULL);
}

/* A late connection's upstream connect finished (writable) or timed out. */
static void conn_late_connected(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int err = conn_connect_result(c, what);

    (void)fd;
    if (err) {
        conn_close(c, conn_connect_end(err), strerror(err));
        return;
    }
    c->connect_ms = conn_ms_since(&c->tls_at);
    conn_classify(c); /* the first bytes again, now with an upstream */
}

/*
 * A late connection (accepted for a pooled upstream, see conn_syn) needs one of its own after
 * all: connect now, and classify the waiting first bytes again once connected.
 */
static void conn_dial_late(struct conn *c)
{
    int err;

    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    bufferevent_disable(c->cbev, EV_READ);
    bufferevent_setcb(c->cbev, NULL, NULL, conn_late_eventcb, c);
    clock_gettime(CLOCK_MONOTONIC, &c->tls_at);
    err = conn_connect(c, conn_late_connected);
    if (err)
        conn_close(c, conn_connect_end(err), strerror(err));
}

/* The name asked upstream and verified for ch: its SNI; without one, CONNECT's host name. */
static const char *conn_upstream_name(const struct conn *c, const struct clienthello *ch)
{
    if (!ch->sni[0] && c->connect_host[0] && !hostmatch_is_address(c->connect_host))
        return c->connect_host;
    return ch->sni;
}

struct pool_key *conn_pool_key(const struct conn *c, const struct clienthello *ch)
{
    struct pool_key *k;

    if (c->kind == CONN_ONBOARD || c->w->cfg->proxy.upstream_reuse < 1 ||
        (ch && ch->alpn_len > sizeof(k->alpn)) || !(k = calloc(1, sizeof(*k))))
        return NULL;
    k->client = c->client;
    k->server = c->server;
    if (!ch)
        return k;
    k->tls = 1;
    snprintf(k->sni, sizeof(k->sni), "%s", conn_upstream_name(c, ch));
    memcpy(k->alpn, ch->alpn, ch->alpn_len);
    k->alpn_len = ch->alpn_len;
    k->min_version = ch->min_version;
    k->max_version = ch->max_version;
    return k;
}

void conn_park_upstream(struct conn *c, int idle_s)
{
    struct pool_key *k = c->pkey;

    c->pkey = NULL;
    /* a TLS leg parks with its filter, plain HTTP without one */
    if (k && c->ubev && (c->ubev != c->u_raw) == k->tls && !c->u_eof &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->u_raw)) == 0) {
        log_debug("tcp #%" PRIu64 ": upstream connection kept for reuse (%d s)", c->id, idle_s);
        pool_put(c->w->pool, k, c->ubev, c->u_raw, idle_s);
        c->ubev = c->u_raw = NULL;
    }
    free(k);
}

/* A late plain HTTP stream takes a parked connection under its key: 1, or 0 with the key
 * dropped (a connect follows). */
static int conn_take_pooled(struct conn *c)
{
    struct bufferevent *plain, *raw;

    if (c->pkey && pool_take(c->w->pool, c->pkey, &plain, &raw)) {
        log_debug("tcp #%" PRIu64 ": an idle upstream connection reused", c->id);
        c->ubev = c->u_raw = raw;
        c->reused = 1;
        return 1;
    }
    free(c->pkey);
    c->pkey = NULL;
    return 0;
}

/* Starts the TLS legs on a stream that began with ch. */
static void conn_start_tls(struct conn *c, struct clienthello *ch)
{
    struct bufferevent *pooled = NULL, *raw = NULL;
    char addr[64];
    int ignored, pinned;

    if (!c->w->cfg->tls.http2 && clienthello_drop_h2(ch))
        log_debug("tcp #%" PRIu64 ": h2 taken out of the client's ALPN offer ([tls] http2 = no)",
                  c->id);
    ignored = hostmatch(c->w->cfg->tls.ignore_hosts, ch->sni, c->server.family, c->server.addr);
    pinned = c->w->cfg->tls.auto_passthrough &&
             worker_pin_find(c->w, c->client.family, c->client.addr,
                             conn_tls_host(c, ch->sni, addr, sizeof(addr)));
    c->pkey = conn_pool_key(c, ch);
    if (conn_late(c)) {
        if (ignored < 0 && !pinned && c->pkey && pool_take(c->w->pool, c->pkey, &pooled, &raw)) {
            c->u_raw = c->ubev = raw;
            c->reused = 1;
        } else {
            free(c->pkey);
            c->pkey = NULL;
            conn_dial_late(c); /* then this runs again */
            return;
        }
    }
    c->tls = calloc(1, sizeof(*c->tls));
    if (!c->tls) {
        if (pooled)
            tls_filter_free(pooled);
        conn_close(c, "error", "out of memory");
        return;
    }
    snprintf(c->tls->sni, sizeof(c->tls->sni), "%s", ch->sni);
    if (ignored >= 0) {
        snprintf(c->tls->error, sizeof(c->tls->error), "[tls] ignore_hosts entry %d", ignored + 1);
        conn_start_relay(c);
        return;
    }
    if (pinned) {
        snprintf(c->tls->error, sizeof(c->tls->error),
                 "auto_passthrough: this client refused our certificate for this host");
        conn_start_relay(c);
        return;
    }
    if (ch->sni != conn_upstream_name(c, ch)) /* no SNI: CONNECT's host, asked and verified */
        snprintf(ch->sni, sizeof(ch->sni), "%s", c->connect_host);
    bufferevent_setcb(c->cbev, NULL, NULL, conn_handshake_eventcb, c);
    clock_gettime(CLOCK_MONOTONIC, &c->tls_at);
    if (pooled) {
        log_debug("tcp #%" PRIu64 ": an idle upstream connection reused", c->id);
        c->handshake =
            tls_intercept_reuse(c->w->tls, c->c_raw, pooled, ch, c->tls, conn_tls_ready, c);
    } else {
        c->handshake = tls_intercept(c->w->tls, c->c_raw, c->u_raw, ch, c->tls, conn_tls_ready, c);
    }
    if (!c->handshake)
        conn_close(c, "error", "cannot start the TLS legs");
}

/* The first bytes the client sent decide: a ClientHello, an HTTP/1.x request, or anything. */
static void conn_sniff_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in), look = len < SNIFF_MAX ? len : SNIFF_MAX;
    const char *data = (const char *)evbuffer_pullup(in, (ssize_t)look);
    enum clienthello_result r = CLIENTHELLO_NOT_TLS;
    struct clienthello ch;
    int http, to_http;

    if (c->w->tls && !c->tls) /* not inside TLS already */
        r = clienthello_parse((const uint8_t *)data, look, &ch);
    if (r == CLIENTHELLO_NEED_MORE && len >= SNIFF_MAX)
        r = CLIENTHELLO_INVALID;
    http = r == CLIENTHELLO_NOT_TLS ? httpmsg_sniff(data, look) : 0;
    if (r == CLIENTHELLO_NEED_MORE)
        return;
    if (http < 0) {
        /*
         * A few upper-case letters, like the start of a method: HTTP clients send the request
         * line whole, so wait only briefly for more before relaying (a protocol whose client
         * sends "D" and waits must not stall).
         */
        struct timeval brief = {0, SNIFF_AMBIGUOUS_MS * 1000};
        evtimer_add(c->ev, &brief);
        return;
    }
    event_free(c->ev);
    c->ev = NULL;
    if (r == CLIENTHELLO_INVALID) {
        conn_close(c, "error", "invalid TLS ClientHello");
        return;
    }
    if (r == CLIENTHELLO_OK) {
        conn_start_tls(c, &ch);
        return;
    }
    to_http =
        http > 0 && (c->w->cfg->proxy.detect || conn_http_port(c) || c->kind == CONN_EXPLICIT);
    if (to_http && !c->tls && !c->pkey) /* plain HTTP: its upstream connection may be parked */
        c->pkey = conn_pool_key(c, NULL);
    if (conn_late(c) && !(to_http && conn_take_pooled(c))) {
        conn_dial_late(c);
        return;
    }
    if (to_http)
        conn_start_http(c, c->tls ? "https" : "http");
    else
        conn_start_relay(c);
}

/*
 * While sniffing, the client went away: a reset ends the connection; a close (after nothing,
 * or after bytes that decided nothing yet) is relayed as it is, like any other stream.
 */
static void conn_sniff_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (conn_late(c)) {
        conn_late_eventcb(bev, what, c);
        return;
    }
    if (!(what & BEV_EVENT_ERROR))
        conn_start_relay(c);
    if (!c->closed)
        conn_client_eventcb(bev, what, c);
}

/* While sniffing, a server that speaks first is no TLS or HTTP server: relay. */
static void conn_sniff_upstream_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    event_free(c->ev);
    c->ev = NULL;
    conn_start_relay(c);
    if (!c->closed && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        conn_upstream_readcb(bev, c);
}

void conn_classify(struct conn *c)
{
    struct timeval sniff = {c->w->cfg->tcp.connect_timeout, 0};

    if (c->ev)
        event_free(c->ev);
    bufferevent_setcb(c->cbev, conn_sniff_readcb, NULL, conn_sniff_eventcb, c);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    if (c->ubev) {
        bufferevent_setcb(c->ubev, conn_sniff_upstream_readcb, NULL, conn_upstream_eventcb, c);
        bufferevent_enable(c->ubev, EV_READ);
        tls_kick(c->ubev);
    }
    c->ev = evtimer_new(c->w->base, conn_sniff_timeout, c);
    if (!c->ev || evtimer_add(c->ev, &sniff) < 0) {
        conn_close(c, "error", "out of memory");
        return;
    }
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        conn_sniff_readcb(c->cbev, c);
}

void conn_accepted(void *ctx, struct bufferevent *bev)
{
    struct conn *c = ctx;
    const struct config *cfg = c->w->cfg;

    c->syn = NULL;
    event_free(c->ev);
    c->ev = NULL;
    c->cbev = c->c_raw = bev;
    log_debug("tcp #%" PRIu64 ": client handshake done", c->id);
    if (c->kind != CONN_TRANSPARENT) {
        conn_start_http(c, "http");
        return;
    }
    if (conn_late(c) || (c->w->tls && (conn_tls_port(c) || cfg->tls.detect)) || conn_http_port(c) ||
        cfg->proxy.detect)
        conn_classify(c);
    else
        conn_start_relay(c);
}
