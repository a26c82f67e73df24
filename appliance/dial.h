/*
 * Upstream connections by name, for the explicit proxy and for reconnecting a transparent
 * stream: asynchronous DNS (libevent's evdns, with /etc/resolv.conf and /etc/hosts; answers
 * kept a minute), then a non-blocking connect on the host stack carrying [routing] mark, each
 * address in turn.
 */
#ifndef MITMTUN_DIAL_H
#define MITMTUN_DIAL_H

#include "netstack/netstack.h"

#include <stdint.h>

struct dial;
struct dial_names;
struct worker;

enum dial_error {
    DIAL_OK,
    DIAL_DNS,       /* the name does not resolve */
    DIAL_REFUSED,   /* refused, unreachable, or any other connect error */
    DIAL_TIMEOUT,   /* no answer within [tcp] connect_timeout */
    DIAL_FORBIDDEN, /* the appliance itself or loopback, without [proxy] allow_local */
};

/*
 * fd is a connected socket (the callee's now) and peer its address, or fd is -1 and why/message
 * say what failed ("cannot resolve 'x': ..."). The dial is freed after the callback.
 */
typedef void (*dial_cb)(void *arg, int fd, const struct netstack_endpoint *peer,
                        enum dial_error why, const char *message);

/*
 * Asked before connecting to each address (one the proxy may use): 1 when the caller has, or
 * may find, an idle upstream connection there. The dial then ends without connecting: cb gets
 * fd -1 with DIAL_OK and that address as peer.
 */
typedef int (*dial_parked_fn)(void *arg, const struct netstack_endpoint *addr);

/* Starts connecting to host (a name or an address literal) and port; parked may be NULL. cb
 * always runs later, never inside this call. Returns NULL when out of memory. */
struct dial *dial_start(struct worker *w, const char *host, uint16_t port, int allow_local,
                        dial_parked_fn parked, dial_cb cb, void *arg);
/* Abandons a dial; cb will not run. */
void dial_cancel(struct dial *d);

/* A worker's names resolved within the last minute (dial.c), reused by every dial. */
struct dial_names *dial_names_new(void);
void dial_names_free(struct dial_names *n);

#endif
