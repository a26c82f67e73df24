/*
 * The heads the HTTP layer sends: a request head upstream in origin-form, a response head to
 * the client, each with hop-by-hop headers replaced by our own (RFC 9110 7.6.1).
 */
#include "http_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <string.h>
#include <strings.h>

/*
 * A head is written into space reserved at the end of an evbuffer, with plain copies: an
 * evbuffer_add for each word (a call and a look at the last chain) cost more than the rest of
 * building it. The space reserved for a response head has room for a small body behind it, so
 * that sending both as one record needs no copy into a new chain.
 */
struct head_out {
    struct evbuffer *b;
    struct evbuffer_iovec v; /* reserved, v.iov_base NULL when none */
    size_t used;             /* of v */
    int failed;              /* out of memory: the head is not whole */
};

#define HEAD_RESERVE 1024 /* bytes reserved at a time, at least */

static void head_commit(struct head_out *o)
{
    if (!o->v.iov_base)
        return;
    o->v.iov_len = o->used;
    evbuffer_commit_space(o->b, &o->v, 1);
    o->v.iov_base = NULL;
}

/* Reserves room for n bytes (in one piece), committing what was written before. */
static int head_reserve(struct head_out *o, size_t n)
{
    ev_ssize_t size = (ev_ssize_t)(n > HEAD_RESERVE ? n : HEAD_RESERVE);

    head_commit(o);
    o->used = 0;
    if (evbuffer_reserve_space(o->b, size, &o->v, 1) < 1) {
        o->v.iov_base = NULL;
        o->failed = 1;
        return -1;
    }
    return 0;
}

/* Where n more bytes go (counted as written), or NULL out of memory. */
static inline char *head_room(struct head_out *o, size_t n)
{
    char *w;

    if ((!o->v.iov_base || o->v.iov_len - o->used < n) && head_reserve(o, n) < 0)
        return NULL;
    w = (char *)o->v.iov_base + o->used;
    o->used += n;
    return w;
}

static inline void head_put(struct head_out *o, const void *s, size_t n)
{
    char *w = head_room(o, n);

    if (w)
        memcpy(w, s, n);
}

#define head_lit(o, s) head_put(o, s, sizeof(s) - 1)

static void head_str(struct head_out *o, const char *s)
{
    head_put(o, s, strlen(s));
}

/* Appends the decimal digits of v. */
static void head_uint(struct head_out *o, unsigned v)
{
    char digits[10], *p = digits + sizeof(digits);

    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    head_put(o, p, (size_t)(digits + sizeof(digits) - p));
}

/* Appends "HTTP/major.minor". */
static void head_version(struct head_out *o, int major, int minor)
{
    char v[] = "HTTP/x.y";

    if (major >= 0 && major <= 9 && minor >= 0 && minor <= 9) {
        v[5] = (char)('0' + major);
        v[7] = (char)('0' + minor);
        head_put(o, v, 8);
        return;
    }
    head_lit(o, "HTTP/");
    head_uint(o, (unsigned)major);
    head_lit(o, ".");
    head_uint(o, (unsigned)minor);
}

/* Appends "name: value\r\n". */
static void head_line(struct head_out *o, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    char *w = head_room(o, n + v + 4);

    if (!w)
        return;
    memcpy(w, name, n);
    memcpy(w + n, ": ", 2);
    memcpy(w + n + 2, value, v);
    memcpy(w + n + 2 + v, "\r\n", 2);
}

/* Appends m's end-to-end headers. */
static void head_headers(struct head_out *o, const struct httpmsg *m)
{
    for (int i = 0; i < m->nheaders; i++)
        if (!m->headers[i].hop)
            head_line(o, m->headers[i].name, m->headers[i].value);
}

/* Whether an Authorization or WWW-Authenticate value is a scheme bound to the connection. */
int http_connection_auth(const char *value)
{
    return value && (strncasecmp(value, "NTLM", 4) == 0 || strncasecmp(value, "Negotiate", 9) == 0);
}

/* Ends a head: 0 when it is whole; else, out of memory, the exchange ends and -1 says so. */
static int head_end(struct http *h, struct head_out *o)
{
    head_commit(o);
    if (!o->failed)
        return 0;
    evbuffer_drain(o->b, evbuffer_get_length(o->b));
    http_record(h, "out of memory");
    conn_close(h->c, "error", "out of memory");
    return -1;
}

/* The request head goes upstream: origin-form, hop-by-hop headers replaced by our own. */
int http_send_head(struct http *h)
{
    struct conn *c = h->c;
    const struct httpmsg *m = httpmsg_current(h->req);
    struct head_out o = {.b = h->head};

    head_str(&o, m->method);
    head_lit(&o, " ");
    head_str(&o, h->path);
    head_lit(&o, " ");
    head_version(&o, m->major, m->minor);
    head_lit(&o, "\r\n");
    if (http_front(h)) {
        /* absolute-form: the URL's authority is the Host (RFC 9112 3.2.2), first */
        head_line(&o, "Host", h->host);
        for (int i = 0; i < m->nheaders; i++)
            if (!m->headers[i].hop && strcasecmp(m->headers[i].name, "Host") != 0)
                head_line(&o, m->headers[i].name, m->headers[i].value);
    } else {
        head_headers(&o, m);
        if (!httpmsg_header(m, "Host"))
            head_line(&o, "Host", h->host);
    }
    if (h->upgrade_asked) {
        head_line(&o, "Connection", "Upgrade");
        head_line(&o, "Upgrade", httpmsg_header(m, "Upgrade"));
    } else if (!h->req_keep && !c->pkey) { /* the connection may serve another client */
        head_line(&o, "Connection", "close");
    }
    if (c->pkey && http_connection_auth(httpmsg_header(m, "Authorization")))
        h->up_bound = 1;
    h->down_at_send = c->bytes_down;
    head_lit(&o, "\r\n");
    if (head_end(h, &o) < 0)
        return -1;
    c->bytes_up += evbuffer_get_length(h->head);
    evbuffer_add_buffer(h->up, h->head); /* the body bytes read with it follow in one piece */
    if (strcmp(m->method, "HEAD") == 0)
        httpmsg_expect_no_body(h->resp);
    clock_gettime(CLOCK_MONOTONIC, &h->m_sent);
    h->state = H_ACTIVE;
    return 0;
}

/* A response head (final or interim) goes to the client. */
int http_send_response_head(struct http *h, const struct httpmsg *m, int final)
{
    struct conn *c = h->c;
    const struct httpmsg *rq = httpmsg_current(h->req);
    int upgrade = final && m->status == 101 && h->upgrade_asked;
    struct head_out o = {.b = h->head};

    if (final && m->has_length && m->content_length <= COALESCE_MAX) /* room for the body */
        head_reserve(&o, HEAD_RESERVE + (size_t)m->content_length);
    head_version(&o, m->major, m->minor);
    head_lit(&o, " ");
    head_uint(&o, (unsigned)m->status);
    head_lit(&o, " ");
    head_str(&o, m->reason);
    head_lit(&o, "\r\n");
    head_headers(&o, m);
    if (upgrade && httpmsg_header(m, "Upgrade")) {
        head_line(&o, "Connection", "Upgrade");
        head_line(&o, "Upgrade", httpmsg_header(m, "Upgrade"));
    } else if (final && h->close_after) {
        head_line(&o, "Connection", "close");
    } else if (final && rq->minor == 0) {
        head_line(&o, "Connection", "keep-alive");
    }
    head_lit(&o, "\r\n");
    if (head_end(h, &o) < 0)
        return -1;
    if (!final) { /* in one piece: one TLS record */
        c->bytes_down += evbuffer_get_length(h->head);
        evbuffer_add_buffer(bufferevent_get_output(c->cbev), h->head);
        return 0;
    }
    /* The final head waits for the first body bytes: both go out as one TLS record. */
    h->head_pending = 1;
    return 0;
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
    conn_send_client(h->c, h->head);
    h->c->bytes_down += n;
}
