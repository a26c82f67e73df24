/*
 * The TCP connection pipeline: a client stream (from the netstack, or the explicit proxy's
 * listening socket) and an upstream socket on the host stack. A stream is classified by its
 * first bytes: a TLS ClientHello goes through the interceptor, an HTTP/1.x request through the
 * HTTP layer (http.h), anything else is relayed both ways with bounded buffers.
 */
#ifndef MITMTUN_CONN_H
#define MITMTUN_CONN_H

#include "netstack/netstack.h"

#include <stdint.h>
#include <time.h>

/* Bytes queued towards one side before the other stops reading. */
#define CONN_BUFFER_LIMIT (128 * 1024)

struct bufferevent;
struct clienthello;
struct evbuffer;
struct http;
struct pool_key;
struct tls_info;
struct tls_session;
struct worker;

enum conn_kind {
    CONN_TRANSPARENT, /* through the TUN, to its original destination */
    CONN_EXPLICIT,    /* a client that set us as its proxy */
    CONN_ONBOARD,     /* http://<TUN address>/: the CA page */
};

struct conn {
    struct worker *w;
    struct conn *prev, *next; /* the worker's live list, or its dead list */
    uint64_t id;
    enum conn_kind kind;
    struct netstack_endpoint client;
    struct netstack_endpoint server; /* the original destination, or where CONNECT went */
    struct netstack_syn *syn;        /* the client's SYN until its handshake completes */
    int fd;                          /* upstream socket while connecting */
    struct event *ev;                /* connect watch, then handshake or sniff deadline */
    struct bufferevent *cbev;        /* client stream */
    struct bufferevent *ubev;        /* upstream socket, NULL while the HTTP layer has none */
    struct bufferevent *c_raw;       /* the client's stream (cbev may be a TLS filter over it) */
    struct bufferevent *u_raw;       /* the upstream socket (ubev likewise) */
    struct tls_info *tls;            /* the stream began with a ClientHello */
    struct tls_session *handshake;   /* the TLS legs while they handshake */
    struct http *http;               /* the HTTP layer while it runs the stream */
    char connect_host[256];          /* CONNECT's host: the upstream name without SNI */
    uint64_t bytes_up, bytes_down;
    struct timespec start;  /* CLOCK_REALTIME, for the record */
    struct timespec mono;   /* CLOCK_MONOTONIC, for durations */
    double connect_ms;      /* the upstream connect took; -1: none */
    double tls_ms;          /* the TLS legs took; -1: no TLS */
    struct timespec tls_at; /* CLOCK_MONOTONIC: interception began (or a late dial) */
    struct pool_key *pkey;  /* the upstream connection's pool key, when it may be parked */
    unsigned reused : 1;    /* the upstream connection came from the pool */
    unsigned c_eof : 1;     /* the client sent FIN */
    unsigned u_eof : 1;     /* upstream sent FIN */
    unsigned c_done : 1;    /* the client's FIN was passed upstream */
    unsigned u_done : 1;    /* upstream's FIN was passed to the client */
    unsigned closed : 1;
};

/* netstack_handlers.tcp_syn: starts the upstream connect for a held SYN. arg is the worker. */
void conn_syn(void *arg, struct netstack_syn *syn, const struct netstack_endpoint *client,
              const struct netstack_endpoint *server);
/* netstack_handlers.tcp_established: the client's handshake is done; start relaying. */
void conn_accepted(void *ctx, struct bufferevent *bev);
/* A client of a listening socket (explicit proxy, or the CA page): fd is accepted, now the
 * connection's. */
void conn_explicit(struct worker *w, int fd, const struct netstack_endpoint *client,
                   const struct netstack_endpoint *local, enum conn_kind kind);

/*
 * The single way out: writes the record, frees both sides (end "closed" is graceful; any other
 * resets what is still open) and hands c to the reaper: c stays readable until it runs.
 */
void conn_close(struct conn *c, const char *end, const char *error);
/* Relays raw bytes both ways from now on (the HTTP layer, if any, is gone). */
void conn_start_relay(struct conn *c);
/* Classifies the stream by its first bytes (TLS, HTTP or other), as for a new one. */
void conn_classify(struct conn *c);
/* Makes fd (connected to peer) the upstream side. Returns 0 or -1 (fd closed). */
int conn_set_upstream(struct conn *c, int fd);
/* Moves all of b to the upstream side (which c has), writing at once what the socket takes
 * when nothing waits before it. */
void conn_send_up(struct conn *c, struct evbuffer *b);
/* Moves all of b to the client; on a TLS client leg, small pieces are encrypted at once when
 * nothing waits before them, without a trip through libevent's write path. */
void conn_send_client(struct conn *c, struct evbuffer *b);
/* Drops the upstream side (it closed between HTTP exchanges). */
void conn_drop_upstream(struct conn *c);
/*
 * The key c's upstream connection is parked and found under ([proxy] upstream_reuse; NULL when
 * off or out of memory): for a TLS leg, what the interceptor asks upstream for ch; for plain
 * HTTP (ch NULL), the addresses alone. Only one client's connections are shared.
 */
struct pool_key *conn_pool_key(const struct conn *c, const struct clienthello *ch);
/*
 * Hands the idle upstream TLS connection to the worker's pool (pool.h) for idle_s seconds at
 * most, if c->pkey says it may; c has no upstream side afterwards either way.
 */
void conn_park_upstream(struct conn *c, int idle_s);
/*
 * Ends the client side once everything queued for it has gone out (close_notify, FIN).
 * Returns 1 when done, 0 when still draining: call again from the client's write callback.
 */
int conn_end_client(struct conn *c);
/*
 * The end an error event (what) on the client stream means: "client_reset", or
 * "client_timeout" for a client that stopped answering (the netstack gave up on it).
 */
const char *conn_client_error_end(const struct conn *c, short what);
/* Milliseconds since *since (CLOCK_MONOTONIC). */
double conn_ms_since(const struct timespec *since);

/* Closes every connection of w with end "shutdown". */
void conn_close_all(struct worker *w);
/* Frees connections closed since the last call. */
void conn_reap(struct worker *w);

#endif
