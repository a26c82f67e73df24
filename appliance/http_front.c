/*
 * Where a request goes. On the explicit proxy's front end: CONNECT opens a tunnel whose
 * contents are classified like a new stream, absolute-form requests go to the host they name
 * (the connection is dialled again when the host changes), Basic proxy authentication, and the
 * CA page. On a transparent stream (or inside a tunnel): the stream's server, the URL built from
 * Host. The upstream connection is dialled here when there is none.
 */
#include "http_int.h"

#include "dial.h"
#include "onboard.h"
#include "pool.h"
#include "tls/intercept.h"
#include "worker.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void http_onboard(struct http *h, const char *path)
{
    struct onboard_reply r;
    char extra[128] = "";

    if (!h->c->w->onboard) {
        http_fail(h, 404, "Not Found", NULL, "the CA page is not available");
        return;
    }
    onboard_get(h->c->w->onboard, path, &r);
    if (r.filename)
        snprintf(extra, sizeof(extra), "Content-Disposition: attachment; filename=\"%s\"\r\n",
                 r.filename);
    http_reply(h, r.status, r.reason, extra, r.content_type, r.body, r.len,
               r.status == 200 ? NULL : "no such page");
}

static void http_tls_reconnected(void *arg, struct bufferevent *upstream, const char *error)
{
    struct http *h = arg;
    struct conn *c = h->c;
    char msg[256];

    c->handshake = NULL;
    c->tls_ms = conn_ms_since(&c->tls_at);
    if (!upstream) {
        snprintf(msg, sizeof(msg), "TLS to the upstream server failed: %s", error);
        http_fail(h, 502, "Bad Gateway", NULL, msg);
        return;
    }
    c->ubev = upstream;
    http_upstream_ready(h);
}

/* dial_parked_fn for CONNECT: an idle connection from this client to addr may serve the
 * tunnel; the ClientHello (or the first bytes) will say whether one fits. */
static int http_tunnel_parked(void *arg, const struct netstack_endpoint *addr)
{
    struct http *h = arg;

    return pool_has(h->c->w->pool, &h->c->client, addr);
}

/* dial_parked_fn for an absolute-form request: takes an idle plain HTTP connection from this
 * client to addr, in place of the stream's upstream side. */
static int http_take_parked(void *arg, const struct netstack_endpoint *addr)
{
    struct http *h = arg;
    struct conn *c = h->c;
    struct pool_key k = {.client = c->client, .server = *addr};
    struct bufferevent *plain, *raw;

    if (!pool_take(c->w->pool, &k, &plain, &raw))
        return 0;
    conn_drop_upstream(c);
    c->ubev = c->u_raw = raw;
    return 1;
}

static void http_dialed(void *arg, int fd, const struct netstack_endpoint *peer,
                        enum dial_error why, const char *message)
{
    struct http *h = arg;
    struct conn *c = h->c;
    static const char established[] = "HTTP/1.1 200 Connection Established\r\n\r\n";

    h->dial = NULL;
    if (fd < 0 && why != DIAL_OK) {
        if (why == DIAL_TIMEOUT)
            http_fail(h, 504, "Gateway Timeout", NULL, message);
        else if (why == DIAL_FORBIDDEN)
            http_fail(h, 403, "Forbidden", NULL, message);
        else
            http_fail(h, 502, "Bad Gateway", NULL, message);
        return;
    }
    if (fd >= 0) {
        conn_drop_upstream(c);
        if (conn_set_upstream(c, fd) < 0) {
            http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
            return;
        }
        c->connect_ms = conn_ms_since(&h->m_start);
    } else { /* nothing dialled: http_take_parked took a connection, or the tunnel may */
        if (h->connecting)
            conn_drop_upstream(c);
        c->connect_ms = -1;
    }
    c->server = *peer;
    c->reused = fd < 0 && !h->connecting;
    if (fd >= 0 && !h->connecting && c->tls && c->tls->intercepted) {
        /* a decrypted stream's request goes out encrypted again: TLS as on the first leg */
        free(c->pkey); /* asked with other parameters: not parked */
        c->pkey = NULL;
        clock_gettime(CLOCK_MONOTONIC, &c->tls_at);
        c->handshake = tls_reconnect(c->w->tls, c->u_raw, c->tls, http_tls_reconnected, h);
        if (!c->handshake)
            http_fail(h, 502, "Bad Gateway", NULL, "cannot start TLS to the upstream server");
        return;
    }
    if (!h->connecting) {
        if (http_front(h)) { /* parked under this server when the client leaves */
            free(c->pkey);
            c->pkey = conn_pool_key(c, NULL);
        }
        http_upstream_ready(h);
        return;
    }
    /* CONNECT: the tunnel is open; what flows in it is classified like a new stream. */
    evbuffer_add(bufferevent_get_output(c->cbev), established, sizeof(established) - 1);
    c->bytes_down += sizeof(established) - 1;
    h->status = 200;
    h->reason = "Connection Established";
    h->connecting = 0;
    http_record(h, NULL);
    snprintf(c->connect_host, sizeof(c->connect_host), "%s", h->up_host);
    conn_classify(c);
}

/* Connects upstream for the current request, to host:port (parked: see dial.h, or NULL). */
void http_dial(struct http *h, const char *host, uint16_t port, int allow_local,
               dial_parked_fn parked)
{
    struct conn *c = h->c;

    snprintf(h->up_host, sizeof(h->up_host), "%s", host);
    h->up_port = port;
    h->state = H_DIALING;
    h->dial = dial_start(c->w, host, port, allow_local, parked, http_dialed, h);
    if (!h->dial)
        http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
}

/* Sets the exchange's path, url and host. Returns 0 or -1 (out of memory). */
static int http_set_target(struct http *h, const char *scheme, const char *host, uint16_t port,
                           const char *path)
{
    int default_port = (strcmp(scheme, "http") == 0 && port == 80) ||
                       (strcmp(scheme, "https") == 0 && port == 443);
    int v6 = strchr(host, ':') != NULL;
    size_t slen = strlen(scheme), hlen, plen = strlen(path);
    char *p;

    if (default_port)
        snprintf(h->host, sizeof(h->host), v6 ? "[%s]" : "%s", host);
    else
        snprintf(h->host, sizeof(h->host), v6 ? "[%s]:%u" : "%s:%u", host, port);
    hlen = strlen(h->host);
    /* "path\0scheme://host path\0", in a buffer the next exchange reuses */
    if (plen + slen + hlen + plen + 5 > h->target_cap) {
        size_t cap = plen + slen + hlen + plen + 5 + 256;
        char *grown = realloc(h->target, cap);
        if (!grown)
            return -1;
        h->target = grown;
        h->target_cap = cap;
    }
    p = h->path = h->target;
    memcpy(p, path, plen + 1);
    p = h->url = p + plen + 1;
    memcpy(p, scheme, slen);
    memcpy(p + slen, "://", 3);
    memcpy(p + slen + 3, h->host, hlen);
    memcpy(p + slen + 3 + hlen, path, plen + 1);
    return 0;
}

/* The host part of a Host header value ("example.com:8080", "[::1]:80") into buf. */
static void http_host_name(const char *value, char *buf, size_t len)
{
    const char *end;

    if (value[0] == '[') {
        end = strchr(value, ']');
        snprintf(buf, len, "%.*s", end ? (int)(end - value - 1) : 0, value + 1);
        return;
    }
    end = strchr(value, ':');
    size_t n = end ? (size_t)(end - value) : strlen(value);
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(value[i] >= 'A' && value[i] <= 'Z' ? value[i] + 32 : value[i]);
    buf[n] = '\0';
}

static int http_is_onboarding(const struct http *h, const char *host)
{
    const char *name = h->c->w->cfg->proxy.onboarding_host;
    char buf[256];

    if (!*name || !host)
        return 0;
    http_host_name(host, buf, sizeof(buf));
    return strcmp(buf, name) == 0;
}

/* Basic credentials in Proxy-Authorization match [proxy] auth. */
static int http_auth_ok(const struct http *h, const struct httpmsg *m)
{
    const char *want = h->c->w->cfg->proxy.auth;
    const char *got = httpmsg_header(m, "Proxy-Authorization");
    char encoded[400];

    if (!*want)
        return 1;
    if (!got || strncasecmp(got, "Basic ", 6) != 0)
        return 0;
    got += 6;
    while (*got == ' ')
        got++;
    httpmsg_base64(want, strlen(want), encoded, sizeof(encoded));
    /* in time that does not tell how much of a guess was right */
    size_t n = strlen(encoded), glen = strlen(got);
    unsigned diff = glen != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)encoded[i] ^ (unsigned char)(i < glen ? got[i] : 0);
    return diff == 0;
}

/* The explicit proxy's front end: CONNECT, absolute-form, or a request for the CA page. */
static void http_front_head(struct http *h, const struct httpmsg *m)
{
    char scheme[16], host[256], *path = NULL;
    size_t plen = strlen(m->target) + 2;
    uint16_t port;

    if (!http_auth_ok(h, m)) {
        http_fail(h, 407, "Proxy Authentication Required",
                  "Proxy-Authenticate: Basic realm=\"mitmtun\"\r\n",
                  "this proxy needs a user name and password ([proxy] auth)");
        return;
    }
    if (strcmp(m->method, "CONNECT") == 0) {
        if (httpmsg_split_target(m->target, NULL, 0, host, sizeof(host), &port, NULL, 0) < 0) {
            http_fail(h, 400, "Bad Request", NULL, "CONNECT needs host:port");
            return;
        }
        if (http_set_target(h, "tcp", host, port, "") < 0) {
            http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
            return;
        }
        snprintf(h->url, strlen(h->url) + 1, "%s", h->host);
        h->connecting = 1;
        h->close_after = 0;
        http_dial(h, host, port, h->c->w->cfg->proxy.allow_local, http_tunnel_parked);
        return;
    }
    if (m->target[0] == '/') {
        if (http_is_onboarding(h, httpmsg_header(m, "Host"))) {
            if (http_set_target(h, "http", h->c->w->cfg->proxy.onboarding_host, 80, m->target) < 0)
                http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
            else
                http_onboard(h, m->target);
            return;
        }
        http_fail(h, 400, "Bad Request", NULL,
                  "this is a proxy: send absolute-form requests (GET http://host/path) or "
                  "CONNECT");
        return;
    }
    path = malloc(plen);
    if (!path || httpmsg_split_target(m->target, scheme, sizeof(scheme), host, sizeof(host), &port,
                                      path, plen) < 0) {
        free(path);
        http_fail(h, 400, "Bad Request", NULL, "malformed request target");
        return;
    }
    if (strcmp(scheme, "http") != 0) {
        free(path);
        http_fail(h, 400, "Bad Request", NULL, "only http:// URLs here; use CONNECT for https");
        return;
    }
    if (http_set_target(h, "http", host, port, path) < 0) {
        free(path);
        http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
        return;
    }
    free(path);
    if (strcmp(host, h->c->w->cfg->proxy.onboarding_host) == 0) {
        http_onboard(h, h->path);
        return;
    }
    if (h->c->ubev && h->up_port == port && strcmp(h->up_host, host) == 0) {
        http_send_head(h);
        return;
    }
    if (http_upstream_parkable(h)) /* the last host's connection may serve a later request */
        conn_park_upstream(h->c, h->up_idle);
    http_dial(h, host, port, h->c->w->cfg->proxy.allow_local, http_take_parked);
}

/* A transparent request (or one inside a CONNECT tunnel): it goes to the stream's server. */
static void http_transparent_head(struct http *h, const struct httpmsg *m)
{
    struct conn *c = h->c;
    const char *host = httpmsg_header(m, "Host");
    char name[256], addr[64], scheme[16], other[256], *path = NULL;
    size_t plen = strlen(m->target) + 2;
    uint16_t port;

    if (host && *host)
        http_host_name(host, name, sizeof(name));
    else /* no Host: the address the client connected to names it */
        inet_ntop(c->server.family, c->server.addr, name, sizeof(name));
    if (m->target[0] != '/' && m->target[0] != '*') {
        /* absolute-form on a transparent stream: its path, still to this server */
        path = malloc(plen);
        if (!path || httpmsg_split_target(m->target, scheme, sizeof(scheme), other, sizeof(other),
                                          &port, path, plen) < 0) {
            free(path);
            http_fail(h, 400, "Bad Request", NULL, "malformed request target");
            return;
        }
    }
    if (http_set_target(h, h->scheme, name, c->server.port, path ? path : m->target) < 0) {
        free(path);
        http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
        return;
    }
    free(path);
    if (http_is_onboarding(h, host)) {
        http_onboard(h, h->path);
        return;
    }
    if (c->ubev) {
        http_send_head(h);
        return;
    }
    /* upstream closed after the last exchange: connect again to the same destination */
    inet_ntop(c->server.family, c->server.addr, addr, sizeof(addr));
    http_dial(h, addr, c->server.port, 1, NULL);
}

/* A request head is complete: decide where it goes. */
void http_request_head(struct http *h)
{
    struct conn *c = h->c;
    const struct httpmsg *m = httpmsg_current(h->req);

    clock_gettime(CLOCK_REALTIME, &h->start);
    clock_gettime(CLOCK_MONOTONIC, &h->m_start);
    h->req_keep = http_keep_alive(m);
    h->upgrade_asked = m->upgrade && strcmp(m->method, "CONNECT") != 0;
    h->close_after = !h->req_keep;
    if (c->kind == CONN_ONBOARD) {
        char addr[64];
        inet_ntop(c->server.family, c->server.addr, addr, sizeof(addr));
        if (http_set_target(h, "http", addr, 80, m->target) < 0)
            http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
        else
            http_onboard(h, m->target);
    } else if (http_front(h)) {
        http_front_head(h, m);
    } else if (strcmp(m->method, "CONNECT") == 0) {
        http_fail(h, 405, "Method Not Allowed", NULL, "CONNECT is for the explicit proxy port");
    } else {
        http_transparent_head(h, m);
    }
}
