/*
 * The HTTP layer's own parts, shared by its three files and by nothing else:
 *   http.c        reads requests and responses, streams bodies, records each exchange;
 *   http_front.c  decides where a request goes (the explicit proxy's front end: CONNECT,
 *                 absolute-form, Basic auth, the CA page; a transparent stream's server) and
 *                 dials upstream for it;
 *   http_head.c   writes the heads that go out, hop-by-hop headers replaced by our own.
 */
#ifndef MITMTUN_HTTP_INT_H
#define MITMTUN_HTTP_INT_H

#include "conn.h"
#include "dial.h"
#include "httpmsg.h"

#include <stdint.h>
#include <time.h>

#define COALESCE_MAX  (16 * 1024) /* a response head and body sent as one TLS record up to here */
#define UP_GATHER_MAX (16 * 1024) /* request bytes gathered for one write (one record) upstream */

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
    int client_paused;         /* reading from the client stopped: its input is full */
    int upstream_paused;       /* the same for the upstream connection */
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
    struct evbuffer *up;                  /* what goes upstream, gathered (http_send_up) */
    struct event *idle_ev;                /* [proxy] idle_timeout between requests */
};

/* The front end of the explicit proxy (not a stream inside a CONNECT tunnel). */
static inline int http_front(const struct http *h)
{
    return h->c->kind == CONN_EXPLICIT && !h->tunnel;
}

/* http.c */
void http_client_read(struct http *h);
/* The upstream connection is ready: the request head goes out, its body follows. */
void http_upstream_ready(struct http *h);
void http_record(struct http *h, const char *error);
void http_close(struct http *h);
void http_reply(struct http *h, int status, const char *reason, const char *extra,
                const char *content_type, const char *body, size_t len, const char *error);
void http_fail(struct http *h, int status, const char *reason, const char *extra, const char *what);
int http_keep_alive(const struct httpmsg *m);
/* Whether the upstream connection sits idle between exchanges, fit for another client. */
int http_upstream_parkable(const struct http *h);

/* http_front.c */
void http_request_head(struct http *h);
void http_dial(struct http *h, const char *host, uint16_t port, int allow_local,
               dial_parked_fn parked);

/* http_head.c */
int http_connection_auth(const char *value);
/* Both return 0, or -1 when memory ran out and the connection was closed: return at once. */
int http_send_head(struct http *h);
int http_send_response_head(struct http *h, const struct httpmsg *m, int final);
void http_flush_response(struct http *h);

#endif
