/*
 * The two TLS legs of an intercepted stream, on libevent's OpenSSL filter bufferevents: a
 * client leg towards upstream with the client's SNI and ALPN offer, verified against the system
 * trust store (plus [tls] upstream_ca_file); then a server leg towards the client with a leaf
 * forged from the upstream's certificate and the ALPN protocol upstream chose. OpenSSL stays
 * behind this header.
 */
#ifndef MITMTUN_INTERCEPT_H
#define MITMTUN_INTERCEPT_H

#include "ca.h"
#include "clienthello.h"

#include <stddef.h>

struct bufferevent;
struct evbuffer;
struct tls_engine;
struct tls_session;

/* What the connection record says about a TLS stream. */
struct tls_info {
    char sni[256];
    char version[16]; /* the client leg's, e.g. "TLSv1.3" */
    char alpn[64];    /* negotiated on both legs, "" for none */
    int intercepted;
    int refused_cert;     /* the client refused our certificate (alert, or closed after it) */
    int upstream_resumed; /* the upstream leg resumed an earlier session */
    char error[192];      /* why not, when not */
};

/*
 * Handshakes done: client is the plaintext filter over client_raw, upstream the plaintext side
 * of TLS run straight on upstream_raw's socket (upstream_raw stays, disabled, to close it); free
 * both with tls_filter_free before the raw ones. Or error says why not; the TLS bufferevents
 * are gone and the raw ones have no callbacks (upstream_raw is disabled); for an upstream
 * certificate that failed verification a TLS alert already waits in the client's output.
 */
typedef void (*tls_ready_cb)(void *arg, struct bufferevent *client, struct bufferevent *upstream,
                             const char *error);

/* keylog: a file to append both legs' secrets to (NSS key log format), or NULL/"" for none. */
struct tls_engine *tls_engine_new(const struct ca *ca, const char *upstream_ca_file, int verify,
                                  int cache_size, const char *keylog, char *err, size_t errlen);
void tls_engine_free(struct tls_engine *e);

/*
 * Starts intercepting: client_raw holds the client's ClientHello (ch) in its input, undrained;
 * upstream_raw is connected. Both stay the caller's. info must live until cb runs. Returns the
 * handshake's handle (for tls_cancel), or NULL if it could not start (cb is not called).
 */
struct tls_session *tls_intercept(struct tls_engine *e, struct bufferevent *client_raw,
                                  struct bufferevent *upstream_raw, const struct clienthello *ch,
                                  struct tls_info *info, tls_ready_cb cb, void *arg);
/*
 * Like tls_intercept, but upstream is an upstream leg already up (the plaintext side from an
 * earlier tls_ready_cb, over a socket still the caller's): only the client leg handshakes, with
 * a leaf for upstream's certificate. upstream is the session's now (on failure too). Returns
 * NULL if it could not start (cb is not called).
 */
struct tls_session *tls_intercept_reuse(struct tls_engine *e, struct bufferevent *client_raw,
                                        struct bufferevent *upstream, const struct clienthello *ch,
                                        struct tls_info *info, tls_ready_cb cb, void *arg);
/*
 * A later upstream connection for an intercepted stream (the server closed the first between
 * two HTTP exchanges): TLS on upstream_raw, which is connected, with info's SNI and ALPN and
 * the same verification. cb gets the plaintext bufferevent (free it with tls_filter_free before
 * upstream_raw), or NULL and why. info->upstream_resumed is updated.
 */
typedef void (*tls_upstream_cb)(void *arg, struct bufferevent *upstream, const char *error);
struct tls_session *tls_reconnect(struct tls_engine *e, struct bufferevent *upstream_raw,
                                  struct tls_info *info, tls_upstream_cb cb, void *arg);

/*
 * Moves all of b to the output of bev, a TLS bufferevent of either leg (from tls_ready_cb or
 * tls_upstream_cb), writing at once what the socket (upstream leg) or the raw bufferevent's
 * output (client leg) takes when that output is empty.
 */
void tls_send(struct bufferevent *bev, struct evbuffer *b);

/*
 * An upstream leg's records that OpenSSL has read but libevent has not asked for: every read
 * callback of one calls tls_take_pending first (they go to the input); whoever sets new
 * callbacks on one or enables its reading calls tls_kick (the read callback runs if any wait).
 * Both do nothing on other bufferevents.
 */
void tls_take_pending(struct bufferevent *bev);
void tls_kick(struct bufferevent *bev);

/* Abandons a handshake in progress; cb will not run. */
void tls_cancel(struct tls_session *s);

/* Queues close_notify on a TLS bufferevent (client leg: in the raw bufferevent's output;
 * upstream leg: written to the socket). */
void tls_close_notify(struct bufferevent *filter);
/* Frees a filter from tls_ready_cb and its SSL; the raw bufferevent under it stays. */
void tls_filter_free(struct bufferevent *filter);

#endif
