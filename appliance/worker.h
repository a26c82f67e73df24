/*
 * A worker: one event loop with its netstack, its connections and UDP flows, and its counters.
 * Everything per worker lives here, never in globals, so that one worker per TUN queue can come.
 */
#ifndef MITMTUN_WORKER_H
#define MITMTUN_WORKER_H

#include "config.h"
#include "log.h"

#include <stdint.h>

struct conn;
struct event;
struct event_base;
struct flowlog;
struct netstack;
struct udprelay;
struct echorelay;
struct tls_engine;
struct evdns_base;
struct onboard;
struct pool;
struct proxy;
struct tun_steer;

/*
 * [tls] auto_passthrough's memory of clients that refused our certificate for a host, shared
 * by every worker process (mapped before they fork): whichever worker a client's next
 * connection lands on passes it through.
 */
struct worker_pins;
struct worker_pins *worker_pins_new(void);
void worker_pins_free(struct worker_pins *pins);

struct worker {
    struct event_base *base;
    const struct config *cfg;
    struct netstack *ns;
    struct flowlog *flows;
    struct udprelay *udp;
    struct echorelay *echo;
    struct tls_engine *tls;   /* intercepts [tls] ports; not owned */
    struct onboard *onboard;  /* the CA page; not owned */
    struct evdns_base *dns;   /* resolves names for the explicit proxy */
    struct dial_names *names; /* what dns answered lately */
    struct localaddr *local;  /* this host's addresses, for the explicit proxy */
    struct proxy *proxy;      /* the explicit proxy's listening sockets */
    struct tun_steer *steer;  /* [tun] steer; NULL: off */
    struct conn *conns;       /* live TCP connections */
    struct conn *dead;        /* closed, freed by the reaper outside any callback */
    struct event *reaper;
    struct event *stats_ev;
    uint64_t next_id;  /* connection ids, for log lines and records: worker_new_id */
    uint64_t id_step;  /* the number of workers: each takes every id_step-th id */
    unsigned index;    /* this worker's place among them, from 0 */
    uint64_t tcp_open; /* from SYN to record */
    uint64_t tcp_total;
    uint64_t udp_open;
    uint64_t udp_total;
    uint64_t udp_dropped; /* datagrams refused: QUIC blocked, flow table full, send errors */
    uint64_t udp_evicted; /* flows closed for new ones, the table full */
    uint64_t fd_refused;  /* connections and flows refused for lack of file descriptors */
    struct log_every fd_warning;
    struct worker_pins *pins; /* [tls] auto_passthrough; not owned */
    struct pool *pool;        /* [proxy] upstream_reuse: idle upstream connections */
};

/* Starts a worker on tun_fd. Returns 0 or -1 (logged). */
int worker_init(struct worker *w, struct event_base *base, const struct config *cfg, int tun_fd,
                struct flowlog *flows, struct tls_engine *tls, struct onboard *onboard,
                struct worker_pins *pins);
/* The next connection or flow id. */
uint64_t worker_new_id(struct worker *w);
/* Closes every flow (recording each) and frees the worker's resources. */
void worker_cleanup(struct worker *w);
/* [tls] auto_passthrough: remember, or look up, a client that refused our certificate. */
void worker_pin_add(struct worker *w, int family, const uint8_t *client, const char *host);
int worker_pin_find(struct worker *w, int family, const uint8_t *client, const char *host);

/*
 * A socket() or accept() failed with err: when that is for lack of file descriptors (EMFILE,
 * ENFILE), counts it and warns, at most every few seconds, with the limit and how to raise it.
 */
void worker_socket_failed(struct worker *w, int err);
/*
 * A host socket for the upstream side (upstream_socket); when file descriptors run out, idle
 * pooled upstream connections are closed to make room. -1 with errno set (and an exhaustion
 * counted, see worker_socket_failed) when there is none.
 */
int worker_socket(struct worker *w, int family, int type);

/* Logs one stats line: open and total flows, drops, memory. */
void worker_log_stats(struct worker *w);

#endif
