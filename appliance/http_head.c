/*
 * The heads the HTTP layer sends: a request head upstream in origin-form, a response head to
 * the client, each with hop-by-hop headers replaced by our own (RFC 9110 7.6.1), built in one
 * flat piece with plain adds (printf costs more than the rest of the head).
 */
#include "http_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <string.h>
#include <strings.h>

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
    char v[] = "HTTP/x.y";

    if (major >= 0 && major <= 9 && minor >= 0 && minor <= 9) { /* one add */
        v[5] = (char)('0' + major);
        v[7] = (char)('0' + minor);
        evbuffer_add(b, v, 8);
        return;
    }
    evbuffer_add(b, "HTTP/", 5);
    http_head_uint(b, (unsigned)major);
    evbuffer_add(b, ".", 1);
    http_head_uint(b, (unsigned)minor);
}

/* Appends "name: value\r\n", in one add when it is short, as most lines are. */
static void http_head_line(struct evbuffer *b, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    char line[256];

    if (n + v + 4 > sizeof(line)) {
        evbuffer_add(b, name, n);
        evbuffer_add(b, ": ", 2);
        evbuffer_add(b, value, v);
        evbuffer_add(b, "\r\n", 2);
        return;
    }
    memcpy(line, name, n);
    memcpy(line + n, ": ", 2);
    memcpy(line + n + 2, value, v);
    memcpy(line + n + 2 + v, "\r\n", 2);
    evbuffer_add(b, line, n + v + 4);
}

/* Appends m's end-to-end headers. */
static void http_head_headers(struct evbuffer *b, const struct httpmsg *m)
{
    for (int i = 0; i < m->nheaders; i++)
        if (!m->headers[i].hop)
            http_head_line(b, m->headers[i].name, m->headers[i].value);
}

/* Whether an Authorization or WWW-Authenticate value is a scheme bound to the connection. */
int http_connection_auth(const char *value)
{
    return value && (strncasecmp(value, "NTLM", 4) == 0 || strncasecmp(value, "Negotiate", 9) == 0);
}

/* The request head goes upstream: origin-form, hop-by-hop headers replaced by our own. */
void http_send_head(struct http *h)
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
    evbuffer_add(b, "\r\n", 2);
    c->bytes_up += evbuffer_get_length(b);
    conn_send_up(c, b);
    if (strcmp(m->method, "HEAD") == 0)
        httpmsg_expect_no_body(h->resp);
    clock_gettime(CLOCK_MONOTONIC, &h->m_sent);
    h->state = H_ACTIVE;
}

/* A response head (final or interim) goes to the client. */
void http_send_response_head(struct http *h, const struct httpmsg *m, int final)
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
    evbuffer_add(b, "\r\n", 2);
    if (!final) { /* in one piece: one TLS record */
        c->bytes_down += evbuffer_get_length(b);
        evbuffer_add_buffer(bufferevent_get_output(c->cbev), b);
        return;
    }
    /* The final head waits for the first body bytes: both go out as one TLS record. */
    h->head_pending = 1;
}

/* Sends a final head still waiting in h->head (with the body bytes gathered behind it) to the
 * client, in one contiguous piece when it is small: the TLS filter writes a record per piece. */
void http_flush_response(struct http *h)
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
