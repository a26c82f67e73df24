/*
 * Idle upstream connections kept for the same device's next connection to the same server
 * ([proxy] upstream_reuse). When a client closes an HTTP stream (intercepted HTTPS, or plain
 * HTTP; through the TUN, or through the explicit proxy) whose upstream connection sits idle
 * and reusable (the last exchange complete, the server keeping it open), the connection is
 * parked here; a new connection from that client to that server address and port, with the
 * same SNI, ALPN offer and version range (plain HTTP: the addresses alone), takes it instead
 * of connecting (and handshaking) upstream again. A parked connection leaves on its idle
 * deadline, or when the server closes it or sends anything.
 *
 * Only one device's connections are ever shared (the key holds the client's address), so one
 * app cannot inherit another device's connection state.
 */
#ifndef MITMTUN_POOL_H
#define MITMTUN_POOL_H

#include "netstack/netstack.h"

#include <stddef.h>
#include <stdint.h>

#define POOL_MAX 256 /* parked connections per worker */

struct bufferevent;
struct event_base;
struct pool;

/* What must match for a parked connection to serve a new one. */
struct pool_key {
    struct netstack_endpoint client; /* its port is ignored */
    struct netstack_endpoint server;
    char sni[256];
    uint8_t alpn[512]; /* the ALPN offer sent upstream, wire format */
    size_t alpn_len;
    int min_version, max_version; /* the version range asked upstream, 0: any */
    int tls;                      /* 0: plain HTTP (the rest of the key is empty) */
};

/* A pool of at most max connections (0: none are kept). */
struct pool *pool_new(struct event_base *base, int max);
/* Closes every parked connection. */
void pool_free(struct pool *p);

/*
 * Parks tls (the plaintext side; raw itself for plain HTTP) over raw, idle, for at most idle_s
 * seconds under k; the pool owns both from now on (when full, the oldest parked connection
 * closes). Returns 0, or -1 when it would not keep them (pool off, idle_s < 1, out of memory):
 * they are closed then.
 */
int pool_put(struct pool *p, const struct pool_key *k, struct bufferevent *tls,
             struct bufferevent *raw, int idle_s);
/* Whether any connection from client's address to server is parked (the rest of the key is
 * only known from the ClientHello). */
int pool_has(const struct pool *p, const struct netstack_endpoint *client,
             const struct netstack_endpoint *server);
/* Takes the most recently parked connection matching k: 1 with *tls and *raw now the caller's
 * (no callbacks, reading off), or 0. */
int pool_take(struct pool *p, const struct pool_key *k, struct bufferevent **tls,
              struct bufferevent **raw);
/* Closes the connection parked longest, to free its file descriptor: 1, or 0 when none. */
int pool_shed(struct pool *p);
/* Parked connections now. */
int pool_count(const struct pool *p);

#endif
