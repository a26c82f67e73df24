/*
 * Connection records: one line a flow when it ends, on the console for a person and as JSON
 * Lines in the [log] flows file for programs. Later layers add their own record types.
 */
#ifndef MITMTUN_FLOWLOG_H
#define MITMTUN_FLOWLOG_H

#include "netstack/netstack.h"
#include "tls/intercept.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct flowlog;

struct flow_record {
    const char *type;                       /* "tcp" or "udp" */
    uint64_t id;                            /* the connection id in log lines */
    const struct netstack_endpoint *client; /* as seen on the TUN */
    const struct netstack_endpoint *server; /* the original destination */
    uint64_t bytes_up, bytes_down;          /* client to server, server to client */
    struct timespec start;                  /* CLOCK_REALTIME, for the record's "ts" */
    struct timespec mono_start;             /* CLOCK_MONOTONIC, for its duration */
    const char *end;                        /* how it ended: "closed", "refused", ... */
    const char *error;                      /* detail, or NULL */
    const struct tls_info *tls;             /* a stream that began with a ClientHello */
    int upstream_reused;                    /* the upstream connection came from the pool */
};

struct httpmsg;

/* One HTTP exchange. Timings are milliseconds, -1 where they do not apply. */
struct http_record {
    uint64_t id;                            /* the connection's id */
    const struct netstack_endpoint *client; /* as seen by the appliance */
    const struct netstack_endpoint *server; /* the original destination, or the upstream */
    struct timespec start;                  /* CLOCK_REALTIME: the request began */
    const char *mode;                       /* "transparent" or "explicit" */
    const char *scheme;                     /* "http" or "https" */
    const char *url;
    const struct httpmsg *request;          /* method, version, headers */
    const struct httpmsg *response;         /* NULL: none came (error) */
    int status;                             /* the status sent to the client, 0 for none */
    const char *reason;                     /* its reason phrase */
    uint64_t request_bytes, response_bytes; /* bodies as sent */
    const struct tls_info *tls;
    double connect_ms, tls_ms, ttfb_ms, total_ms;
    const char *error;
    int resent;          /* the request went upstream twice: a reused connection closed under it */
    int upstream_reused; /* the upstream connection came from the pool */
    const char *request_body, *response_body; /* [log] body_max captures, or NULL */
    size_t request_body_len, response_body_len;
};

/* Opens path for appending (NULL or "" for console only). Returns NULL with err filled. */
struct flowlog *flowlog_open(const char *path, char *err, size_t errlen);
void flowlog_close(struct flowlog *fl);
/* Writes what waits, then opens the file's path anew (after a rotation). Returns 0, or -1
 * (logged) still writing to the old file. */
int flowlog_reopen(struct flowlog *fl);
/* Batches records per pass of base's loop from now on. Returns 0 or -1 (out of memory). */
struct event_base;
int flowlog_attach(struct flowlog *fl, struct event_base *base);
/* Writes what waits and stops batching (before base is freed). */
void flowlog_detach(struct flowlog *fl);

void flowlog_write(struct flowlog *fl, const struct flow_record *r);
/* One "http" record; the console line reads like mitmdump's. */
void flowlog_write_http(struct flowlog *fl, const struct http_record *r);

#endif
