/*
 * The TCP pipeline's own parts, shared by its two files and by nothing else: conn.c (the
 * connection's life: connect, relay, close, record) and conn_sniff.c (what a new stream is).
 */
#ifndef MITMTUN_CONN_INT_H
#define MITMTUN_CONN_INT_H

#include <event2/event.h>

struct bufferevent;
struct conn;

/*
 * Starts a non-blocking connect to c->server on c->fd; done (writable) or timed out, it calls
 * done, which takes the result with conn_connect_result. Returns 0, or an errno.
 */
int conn_connect(struct conn *c, event_callback_fn done);
/* How conn_connect's connect ended (what: its event): 0 with c's upstream side set, or an
 * errno. */
int conn_connect_result(struct conn *c, short what);
/* The record's end for an upstream connect that failed with err. */
const char *conn_connect_end(int err);
/* FIN to the client once its raw output is out. Returns 1 when sent, 0 to call again. */
int conn_end_raw_client(struct conn *c);
/* The HTTP layer takes the stream; scheme is "https" for a decrypted one. */
void conn_start_http(struct conn *c, const char *scheme);
/* The relay's callbacks, which a stream being classified borrows. */
void conn_client_eventcb(struct bufferevent *bev, short what, void *arg);
void conn_upstream_readcb(struct bufferevent *bev, void *arg);
void conn_upstream_eventcb(struct bufferevent *bev, short what, void *arg);

#endif
