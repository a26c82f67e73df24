#include "dial.h"

#include "localaddr.h"
#include "log.h"
#include "upstream.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DIAL_MAX_ADDRS 8   /* addresses of one name tried in turn */
#define NAMES_MAX      128 /* names whose addresses a worker keeps */
#define NAME_SECONDS   60  /* for as long as this (Chromium's host cache keeps them a minute) */

/* A name's addresses from a resolution that worked: the next dial within NAME_SECONDS, and
 * the next client of the explicit proxy, skip the DNS round trip. */
struct dial_name {
    char host[256];
    time_t until; /* CLOCK_MONOTONIC seconds; 0: a free slot */
    int naddrs;
    struct netstack_endpoint addrs[DIAL_MAX_ADDRS];
};

struct dial_names {
    struct dial_name slot[NAMES_MAX];
    unsigned next; /* with no slot free, the one a new name takes, in turn */
};

struct dial {
    struct worker *w;
    char host[256];
    uint16_t port;
    int allow_local;
    dial_parked_fn parked;
    dial_cb cb;
    void *arg;
    struct evdns_getaddrinfo_request *dns; /* while resolving */
    struct event *ev;                      /* connect watch, or the deferred callback */
    int fd;
    struct netstack_endpoint addrs[DIAL_MAX_ADDRS];
    int naddrs, next;
    enum dial_error why;
    char message[512];
};

static time_t names_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

struct dial_names *dial_names_new(void)
{
    return calloc(1, sizeof(struct dial_names));
}

void dial_names_free(struct dial_names *n)
{
    free(n);
}

static struct dial_name *names_find(struct dial_names *n, const char *host)
{
    time_t now = names_now();

    for (int i = 0; n && i < NAMES_MAX; i++)
        if (n->slot[i].until > now && strcasecmp(n->slot[i].host, host) == 0)
            return &n->slot[i];
    return NULL;
}

static void names_keep(struct dial_names *n, const struct dial *d)
{
    unsigned char literal[16];
    time_t now = names_now();
    struct dial_name *e;

    if (!n || d->naddrs == 0 || strlen(d->host) >= sizeof(e->host) ||
        evutil_inet_pton(AF_INET, d->host, literal) == 1 ||
        evutil_inet_pton(AF_INET6, d->host, literal) == 1)
        return; /* an address needs no keeping */
    e = names_find(n, d->host);
    for (int i = 0; !e && i < NAMES_MAX; i++)
        if (n->slot[i].until <= now)
            e = &n->slot[i]; /* expired or forgotten */
    if (!e)
        e = &n->slot[n->next++ % NAMES_MAX];
    snprintf(e->host, sizeof(e->host), "%s", d->host);
    e->until = now + NAME_SECONDS;
    e->naddrs = d->naddrs;
    memcpy(e->addrs, d->addrs, sizeof(e->addrs));
}

/* None of a name's kept addresses took a connection: ask DNS again next time. */
static void names_forget(struct dial_names *n, const char *host)
{
    struct dial_name *e = names_find(n, host);

    if (e)
        e->until = 0;
}

static void dial_free(struct dial *d)
{
    if (d->dns)
        evdns_getaddrinfo_cancel(d->dns); /* runs the callback with EVUTIL_EAI_CANCEL */
    if (d->ev)
        event_free(d->ev);
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

void dial_cancel(struct dial *d)
{
    if (d)
        dial_free(d);
}

/* Reports the outcome and frees d. */
static void dial_finish(struct dial *d)
{
    struct netstack_endpoint peer = {0};
    int fd = d->fd;

    if (d->why == DIAL_OK)
        peer = d->addrs[d->next - 1];
    d->fd = -1;
    d->cb(d->arg, d->why == DIAL_OK ? fd : -1, &peer, d->why, d->message);
    if (d->why != DIAL_OK && fd >= 0)
        close(fd);
    dial_free(d);
}

static void dial_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dial_finish(arg);
}

/* Reports from the event loop, so that no callback runs inside dial_start. */
static void dial_report_later(struct dial *d, enum dial_error why)
{
    d->why = why;
    if (d->ev)
        event_free(d->ev);
    d->ev = event_new(d->w->base, -1, 0, dial_deferred, d);
    if (!d->ev) {
        dial_finish(d); /* out of memory: better now than never */
        return;
    }
    event_active(d->ev, EV_TIMEOUT, 0);
}

static void dial_next(struct dial *d);

static void dial_connected(evutil_socket_t fd, short what, void *arg)
{
    struct dial *d = arg;
    char addr[64];
    int err = upstream_connect_result(fd, what & EV_TIMEOUT);

    event_free(d->ev);
    d->ev = NULL;
    if (!err) {
        d->why = DIAL_OK;
        dial_finish(d);
        return;
    }
    close(d->fd);
    d->fd = -1;
    netstack_endpoint_str(&d->addrs[d->next - 1], addr, sizeof(addr));
    d->why = err == ETIMEDOUT ? DIAL_TIMEOUT : DIAL_REFUSED;
    snprintf(d->message, sizeof(d->message), "connecting to %s (%s): %s", addr, d->host,
             err == ETIMEDOUT ? "no answer (timed out)" : strerror(err));
    dial_next(d);
}

/* Tries the next address; when none is left, reports the last failure. */
static void dial_next(struct dial *d)
{
    const struct config *cfg = d->w->cfg;
    struct timeval timeout = {cfg->tcp.connect_timeout, 0};
    struct sockaddr_storage ss;
    char addr[64];

    while (d->next < d->naddrs) {
        const struct netstack_endpoint *ep = &d->addrs[d->next++];
        if (!d->allow_local && localaddr_has(d->w->local, ep->family, ep->addr)) {
            d->why = DIAL_FORBIDDEN;
            snprintf(d->message, sizeof(d->message),
                     "%s is the appliance itself or loopback: refused (see [proxy] allow_local)",
                     netstack_endpoint_str(ep, addr, sizeof(addr)));
            continue;
        }
        if (d->parked && d->parked(d->arg, ep)) { /* no connection needed: DIAL_OK, fd -1 */
            dial_report_later(d, DIAL_OK);
            return;
        }
        d->fd = worker_socket(d->w, ep->family, SOCK_STREAM);
        if (d->fd >= 0 && connect(d->fd, (struct sockaddr *)&ss, upstream_sockaddr(ep, &ss)) < 0 &&
            errno != EINPROGRESS) {
            d->why = DIAL_REFUSED;
            snprintf(d->message, sizeof(d->message), "connecting to %s (%s): %s",
                     netstack_endpoint_str(ep, addr, sizeof(addr)), d->host, strerror(errno));
            close(d->fd);
            d->fd = -1;
            continue;
        }
        if (d->fd < 0)
            break;
        d->ev = event_new(d->w->base, d->fd, EV_WRITE, dial_connected, d);
        if (!d->ev || event_add(d->ev, &timeout) < 0)
            break;
        return;
    }
    if (d->why == DIAL_OK) { /* nothing tried: out of sockets or memory */
        d->why = DIAL_REFUSED;
        snprintf(d->message, sizeof(d->message), "connecting to %s: %s", d->host,
                 strerror(errno ? errno : ENOMEM));
    }
    if (d->why != DIAL_FORBIDDEN)
        names_forget(d->w->names, d->host);
    dial_report_later(d, d->why);
}

static void dial_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct dial *d = arg;

    d->dns = NULL;
    if (result == EVUTIL_EAI_CANCEL)
        return; /* dial_free is under way */
    if (result != 0) {
        snprintf(d->message, sizeof(d->message), "cannot resolve '%s': %s", d->host,
                 evutil_gai_strerror(result));
        dial_report_later(d, DIAL_DNS);
        return;
    }
    for (struct evutil_addrinfo *ai = res; ai && d->naddrs < DIAL_MAX_ADDRS; ai = ai->ai_next) {
        struct netstack_endpoint *ep = &d->addrs[d->naddrs];
        ep->port = d->port;
        ep->family = ai->ai_family;
        if (ai->ai_family == AF_INET)
            memcpy(ep->addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
        else if (ai->ai_family == AF_INET6)
            memcpy(ep->addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
        else
            continue;
        d->naddrs++;
    }
    evutil_freeaddrinfo(res);
    names_keep(d->w->names, d);
    dial_next(d);
}

struct dial *dial_start(struct worker *w, const char *host, uint16_t port, int allow_local,
                        dial_parked_fn parked, dial_cb cb, void *arg)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct dial *d = calloc(1, sizeof(*d));
    const struct dial_name *known;

    if (!d)
        return NULL;
    d->w = w;
    d->fd = -1;
    d->port = port;
    d->allow_local = allow_local;
    d->parked = parked;
    d->cb = cb;
    d->arg = arg;
    snprintf(d->host, sizeof(d->host), "%s", host);
    if ((known = names_find(w->names, host)) != NULL) {
        d->naddrs = known->naddrs;
        memcpy(d->addrs, known->addrs, sizeof(d->addrs));
        for (int i = 0; i < d->naddrs; i++)
            d->addrs[i].port = port;
        dial_next(d);
        return d;
    }
    if (!w->dns) {
        snprintf(d->message, sizeof(d->message), "cannot resolve '%s': no DNS resolver", host);
        dial_report_later(d, DIAL_DNS);
        return d;
    }
    /* Answers from /etc/hosts and address literals come back inside this call. */
    d->dns = evdns_getaddrinfo(w->dns, host, NULL, &hints, dial_resolved, d);
    return d;
}
