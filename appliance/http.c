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

#include "bodycap.h"
#include "conn.h"
#include "dial.h"
#include "flowlog.h"
#include "hostmatch.h"
#include "httpmsg.h"
#include "log.h"
#include "onboard.h"
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

#define FEED_MAX     (64 * 1024) /* bytes handed to the parser at once */
#define COALESCE_MAX (16 * 1024) /* a response head and body sent as one TLS record up to here */

enum http_state {
    H_IDLE,    /* waiting for a request head */
    H_DIALING, /* the head is read; the upstream connection is being made */
    H_ACTIVE,  /* the head went upstream; bodies flow */
    H_LOCAL,   /* answered by the appliance; the connection closes */
};

struct http {
    struct conn *c;
    const char *scheme; /* of the stream: "http" or "https" */
    struct httpmsg_reader *req, *resp;
    struct dial *dial;
    char up_host[256]; /* explicit proxy: the host the upstream connection leads to */
    uint16_t up_port;
    enum http_state state;
    unsigned stopped : 1;       /* http_stop: touch nothing */
    unsigned tunnel : 1;        /* inside a CONNECT tunnel */
    unsigned connecting : 1;    /* the dial is for CONNECT */
    unsigned req_done : 1;      /* the request's last byte went upstream */
    unsigned req_keep : 1;      /* the client allows another request after this one */
    unsigned upgrade_asked : 1; /* the request asked to switch protocols */
    unsigned head_sent : 1;     /* the final response head went to the client */
    unsigned resp_done : 1;
    unsigned close_after : 1;  /* the client connection ends with this exchange */
    unsigned closing : 1;      /* it is ending: drain, then close */
    unsigned recorded : 1;     /* this exchange's record is written */
    unsigned head_pending : 1; /* a final response head waits in head (http_flush_response) */
    unsigned up_keep : 1;      /* the upstream connection may carry another exchange */
    unsigned up_bound : 1;     /* it carries connection-bound auth (NTLM, Negotiate): not shared */
    unsigned retried : 1;      /* the request went out again after a reused connection failed */
    int up_idle;               /* seconds it may idle in the pool (pool.h) */
    uint64_t down_at_send;     /* c->bytes_down when the request head went upstream */
    /* the exchange under way */
    char *path;   /* origin-form target sent upstream (in target) */
    char *url;    /* for the record (in target) */
    char *target; /* path and url, kept for the next exchange */
    size_t target_cap;
    char host[300];          /* host[:port] the request is for */
    struct timespec start;   /* CLOCK_REALTIME */
    struct timespec m_start; /* CLOCK_MONOTONIC: the request head arrived */
    struct timespec m_sent;  /* CLOCK_MONOTONIC: it went upstream */
    double ttfb_ms;
    int status;
    const char *reason;
    uint64_t local_bytes;                 /* the body of a reply the appliance made */
    struct bodycap *req_body, *resp_body; /* [log] body_max captures, or NULL */
    struct evbuffer *head;                /* a head being built, moved out in one piece */
    struct event *idle_ev;                /* [proxy] idle_timeout between requests */
};

static void http_client_read(struct http *h);
static void http_upstream_read(struct http *h);
static void http_client_ended(struct http *h);
static void http_idle_arm(struct http *h);

static const char *http_mode(const struct http *h)
{
    return h->c->kind == CONN_TRANSPARENT ? "transparent" : "explicit";
}

/* The front end of the explicit proxy (not a stream inside a CONNECT tunnel). */
static int http_front(const struct http *h)
{
    return h->c->kind == CONN_EXPLICIT && !h->tunnel;
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
static void http_record(struct http *h, const char *error)
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
static int http_upstream_parkable(const struct http *h)
{
    const struct conn *c = h->c;

    return c->pkey && c->ubev && !h->tunnel && h->up_keep && !h->up_bound &&
           (h->state == H_IDLE || (h->state == H_ACTIVE && h->req_done && h->resp_done)) &&
           evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0;
}

/* Ends the client connection once what is queued for it has gone out; an idle upstream
 * connection goes to the pool. */
static void http_close(struct http *h)
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
static void http_reply(struct http *h, int status, const char *reason, const char *extra,
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
static void http_fail(struct http *h, int status, const char *reason, const char *extra,
                      const char *what)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "mitmtun: %d %s: %s\n", status, reason, what);

    log_debug("tcp #%" PRIu64 ": %d %s: %s", h->c->id, status, reason, what);
    http_reply(h, status, reason, extra, "text/plain; charset=utf-8", body,
               n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1, what);
}

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

/* Whether the message lets the connection carry another one (RFC 9112 9.3). */
static int http_keep_alive(const struct httpmsg *m)
{
    if (m->conn_close)
        return 0;
    return m->major > 1 || (m->major == 1 && m->minor >= 1) || m->conn_keep_alive;
}

/* Appends the decimal digits of v. */
static void http_head_uint(struct evbuffer *b, unsigned v)
{
    char digits[10], *p = digits + sizeof(digits);

    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    evbuffer_add(b, p, (size_t)(digits + sizeof(digits) - p));
}

/* Appends "HTTP/major.minor". */
static void http_head_version(struct evbuffer *b, int major, int minor)
{
    evbuffer_add(b, "HTTP/", 5);
    http_head_uint(b, (unsigned)major);
    evbuffer_add(b, ".", 1);
    http_head_uint(b, (unsigned)minor);
}

/* Appends "name: value\r\n" (plain adds: printf costs more than the rest of the head). */
static void http_head_line(struct evbuffer *b, const char *name, const char *value)
{
    evbuffer_add(b, name, strlen(name));
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, value, strlen(value));
    evbuffer_add(b, "\r\n", 2);
}

/* Appends m's end-to-end headers. */
static void http_head_headers(struct evbuffer *b, const struct httpmsg *m)
{
    for (int i = 0; i < m->nheaders; i++)
        if (!m->headers[i].hop)
            http_head_line(b, m->headers[i].name, m->headers[i].value);
}

/* Moves a head built in h->head to out in one piece (one TLS record, one callback). */
static size_t http_head_flush(struct http *h, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(h->head);

    evbuffer_add(h->head, "\r\n", 2);
    n += 2;
    evbuffer_add_buffer(out, h->head);
    return n;
}

/* Whether an Authorization or WWW-Authenticate value is a scheme bound to the connection. */
static int http_connection_auth(const char *value)
{
    return value && (strncasecmp(value, "NTLM", 4) == 0 || strncasecmp(value, "Negotiate", 9) == 0);
}

/* The request head goes upstream: origin-form, hop-by-hop headers replaced by our own. */
static void http_send_head(struct http *h)
{
    struct conn *c = h->c;
    const struct httpmsg *m = httpmsg_current(h->req);
    struct evbuffer *b = h->head;

    evbuffer_add(b, m->method, strlen(m->method));
    evbuffer_add(b, " ", 1);
    evbuffer_add(b, h->path, strlen(h->path));
    evbuffer_add(b, " ", 1);
    http_head_version(b, m->major, m->minor);
    evbuffer_add(b, "\r\n", 2);
    if (http_front(h)) {
        /* absolute-form: the URL's authority is the Host (RFC 9112 3.2.2), first */
        http_head_line(b, "Host", h->host);
        for (int i = 0; i < m->nheaders; i++)
            if (!m->headers[i].hop && strcasecmp(m->headers[i].name, "Host") != 0)
                http_head_line(b, m->headers[i].name, m->headers[i].value);
    } else {
        http_head_headers(b, m);
        if (!httpmsg_header(m, "Host"))
            http_head_line(b, "Host", h->host);
    }
    if (h->upgrade_asked) {
        http_head_line(b, "Connection", "Upgrade");
        http_head_line(b, "Upgrade", httpmsg_header(m, "Upgrade"));
    } else if (!h->req_keep && !c->pkey) { /* the connection may serve another client */
        http_head_line(b, "Connection", "close");
    }
    if (c->pkey && http_connection_auth(httpmsg_header(m, "Authorization")))
        h->up_bound = 1;
    h->down_at_send = c->bytes_down;
    c->bytes_up += http_head_flush(h, bufferevent_get_output(c->ubev));
    if (strcmp(m->method, "HEAD") == 0)
        httpmsg_expect_no_body(h->resp);
    clock_gettime(CLOCK_MONOTONIC, &h->m_sent);
    h->state = H_ACTIVE;
}

/* A response head (final or interim) goes to the client. */
static void http_send_response_head(struct http *h, const struct httpmsg *m, int final)
{
    struct conn *c = h->c;
    const struct httpmsg *rq = httpmsg_current(h->req);
    int upgrade = final && m->status == 101 && h->upgrade_asked;
    struct evbuffer *b = h->head;

    http_head_version(b, m->major, m->minor);
    evbuffer_add(b, " ", 1);
    http_head_uint(b, (unsigned)m->status);
    evbuffer_add(b, " ", 1);
    evbuffer_add(b, m->reason, strlen(m->reason));
    evbuffer_add(b, "\r\n", 2);
    http_head_headers(b, m);
    if (upgrade && httpmsg_header(m, "Upgrade")) {
        http_head_line(b, "Connection", "Upgrade");
        http_head_line(b, "Upgrade", httpmsg_header(m, "Upgrade"));
    } else if (final && h->close_after) {
        http_head_line(b, "Connection", "close");
    } else if (final && rq->minor == 0) {
        http_head_line(b, "Connection", "keep-alive");
    }
    if (!final) {
        c->bytes_down += http_head_flush(h, bufferevent_get_output(c->cbev));
        return;
    }
    /* The final head waits for the first body bytes: both go out as one TLS record. */
    evbuffer_add(b, "\r\n", 2);
    h->head_pending = 1;
}

/* Sends a final head still waiting in h->head (with the body bytes gathered behind it) to the
 * client, in one contiguous piece when it is small: the TLS filter writes a record per piece. */
static void http_flush_response(struct http *h)
{
    size_t n = evbuffer_get_length(h->head);

    if (!h->head_pending)
        return;
    h->head_pending = 0;
    if (n <= COALESCE_MAX)
        evbuffer_pullup(h->head, -1);
    evbuffer_add_buffer(bufferevent_get_output(h->c->cbev), h->head);
    h->c->bytes_down += n;
}

/* Sets callbacks and bounds on the upstream side. */
static void http_wire_upstream(struct http *h);

/* The upstream connection is ready: the request head goes out, its body follows. */
static void http_upstream_ready(struct http *h)
{
    http_wire_upstream(h);
    http_send_head(h);
    http_client_read(h);
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

static void http_dialed(void *arg, int fd, const struct netstack_endpoint *peer,
                        enum dial_error why, const char *message)
{
    struct http *h = arg;
    struct conn *c = h->c;
    static const char established[] = "HTTP/1.1 200 Connection Established\r\n\r\n";

    h->dial = NULL;
    if (fd < 0) {
        if (why == DIAL_TIMEOUT)
            http_fail(h, 504, "Gateway Timeout", NULL, message);
        else if (why == DIAL_FORBIDDEN)
            http_fail(h, 403, "Forbidden", NULL, message);
        else
            http_fail(h, 502, "Bad Gateway", NULL, message);
        return;
    }
    conn_drop_upstream(c);
    if (conn_set_upstream(c, fd) < 0) {
        http_fail(h, 502, "Bad Gateway", NULL, "out of memory");
        return;
    }
    c->server = *peer;
    c->connect_ms = conn_ms_since(&h->m_start);
    if (!h->connecting && c->tls && c->tls->intercepted) {
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

/* Connects upstream for the current request, to host:port. */
static void http_dial(struct http *h, const char *host, uint16_t port, int allow_local)
{
    struct conn *c = h->c;

    snprintf(h->up_host, sizeof(h->up_host), "%s", host);
    h->up_port = port;
    h->state = H_DIALING;
    h->dial = dial_start(c->w, host, port, allow_local, http_dialed, h);
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
        http_dial(h, host, port, h->c->w->cfg->proxy.allow_local);
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
    http_dial(h, host, port, h->c->w->cfg->proxy.allow_local);
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
    http_dial(h, addr, c->server.port, 1);
}

/* A request head is complete: decide where it goes. */
static void http_request_head(struct http *h)
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

/* Moves n bytes of the client's input upstream (or drops them for a local answer). */
static void http_forward_up(struct http *h, size_t n)
{
    struct conn *c = h->c;
    struct evbuffer *in = bufferevent_get_input(c->cbev);

    c->bytes_up += n;
    if (h->state == H_ACTIVE && c->ubev)
        evbuffer_remove_buffer(in, bufferevent_get_output(c->ubev), n);
    else
        evbuffer_drain(in, n);
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

static int http_live(const struct http *h)
{
    return !h->stopped && !h->c->closed && !h->closing;
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

static void http_client_read(struct http *h)
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

/*
 * Whether the request may go out again on a new connection: the server closed a reused one as
 * the request went out (nothing answered yet), and the request has no body (as browsers do).
 */
static int http_may_send_again(const struct http *h)
{
    const struct conn *c = h->c;

    return h->state == H_ACTIVE && !h->resp_done && !h->retried && h->req_done && c->tls &&
           c->tls->upstream_reused && c->bytes_down == h->down_at_send &&
           httpmsg_current(h->req)->body_bytes == 0;
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
        http_dial(h, addr, c->server.port, 1);
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

static void http_upstream_read(struct http *h)
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
                http_send_response_head(h, m, 0);
                break;
            }
            h->ttfb_ms = conn_ms_since(&h->m_sent);
            h->status = m->status;
            h->reason = m->reason;
            if (!(m->status == 101 && h->upgrade_asked))
                h->close_after |= !http_keep_alive(m) || m->until_eof || !h->req_keep;
            http_upstream_keep(h, m);
            http_send_response_head(h, m, 1);
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
    (void)bev;
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
    bufferevent_setwatermark(u, EV_READ, 0, CONN_BUFFER_LIMIT);
    bufferevent_setwatermark(u, EV_WRITE, 0, 0);
    bufferevent_enable(u, EV_READ | EV_WRITE);
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
    h->idle_ev = evtimer_new(c->w->base, http_idle_timeout, h);
    if (!h->req || !h->resp || !h->head || !h->idle_ev)
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
    bufferevent_setwatermark(c->cbev, EV_READ, 0, CONN_BUFFER_LIMIT);
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
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
