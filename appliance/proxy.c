#include "proxy.h"

#include "conn.h"
#include "localaddr.h"
#include "log.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_MAX_SOCKETS  16  /* listening sockets, after tun/lan expand to their addresses */
#define PROXY_MAX_NETWORKS 32  /* networks whose clients are admitted */
#define ACCEPT_PAUSE_MS    500 /* listening stops this long after a failed accept() */

struct proxy_network {
    int family;
    uint8_t addr[16];
    int prefix;
};

struct proxy_listener {
    struct proxy *p;
    struct evconnlistener *l;
    struct event *resume; /* re-enables l after a failed accept() */
    enum conn_kind kind;  /* CONN_EXPLICIT, or CONN_ONBOARD for the CA page */
};

struct proxy {
    struct worker *w;
    struct proxy_listener listeners[PROXY_MAX_SOCKETS];
    int nlisteners;
    struct proxy_network nets[PROXY_MAX_NETWORKS];
    int nnets;
    int open_to_all; /* a wildcard listen address */
};

static void proxy_add_net(struct proxy *p, int family, const void *addr, int prefix)
{
    struct proxy_network *n;

    if (p->nnets == PROXY_MAX_NETWORKS)
        return;
    n = &p->nets[p->nnets++];
    n->family = family;
    memset(n->addr, 0, sizeof(n->addr));
    memcpy(n->addr, addr, family == AF_INET ? 4 : 16);
    n->prefix = prefix;
}

static int prefix_of(const struct sockaddr *mask)
{
    const uint8_t *b = mask->sa_family == AF_INET
                           ? (const uint8_t *)&((const struct sockaddr_in *)mask)->sin_addr
                           : (const uint8_t *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
    int len = mask->sa_family == AF_INET ? 4 : 16, bits = 0;

    for (int i = 0; i < len; i++)
        bits += __builtin_popcount(b[i]);
    return bits;
}

static const void *sockaddr_addr(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                    : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
}

/* The networks of interface ifname (every address when addr is NULL, else the interface that
 * holds addr) join the admitted ones; with want_addrs, its addresses are returned too. */
static int proxy_interface(struct proxy *p, const char *ifname, int family, const uint8_t *addr,
                           struct sockaddr_storage *found, int max)
{
    struct ifaddrs *ifa, *i;
    char owner[IF_NAMESIZE] = "";
    int n = 0;

    if (getifaddrs(&ifa) < 0)
        return 0;
    if (!ifname) { /* the interface that holds addr */
        for (i = ifa; i; i = i->ifa_next)
            if (i->ifa_addr && i->ifa_addr->sa_family == family &&
                memcmp(sockaddr_addr(i->ifa_addr), addr, family == AF_INET ? 4 : 16) == 0)
                snprintf(owner, sizeof(owner), "%s", i->ifa_name);
        ifname = owner;
    }
    for (i = ifa; i; i = i->ifa_next) {
        if (!*ifname || strcmp(i->ifa_name, ifname) != 0 || !i->ifa_addr || !i->ifa_netmask)
            continue;
        if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)
            continue;
        proxy_add_net(p, i->ifa_addr->sa_family, sockaddr_addr(i->ifa_addr),
                      prefix_of(i->ifa_netmask));
        if (found && n < max &&
            !(i->ifa_addr->sa_family == AF_INET6 &&
              IN6_IS_ADDR_LINKLOCAL(sockaddr_addr(i->ifa_addr))))
            memcpy(&found[n++], i->ifa_addr,
                   i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6));
    }
    freeifaddrs(ifa);
    return n;
}

static int in_network(const struct proxy_network *n, int family, const uint8_t *addr)
{
    int full = n->prefix / 8, rest = n->prefix % 8;

    if (n->family != family)
        return 0;
    if (memcmp(n->addr, addr, (size_t)full) != 0)
        return 0;
    return rest == 0 || ((n->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static int proxy_admits(const struct proxy *p, const struct netstack_endpoint *client)
{
    if (p->open_to_all || localaddr_has(p->w->local, client->family, client->addr))
        return 1;
    for (int i = 0; i < p->nnets; i++)
        if (in_network(&p->nets[i], client->family, client->addr))
            return 1;
    return 0;
}

static void endpoint_of(const struct sockaddr *sa, struct netstack_endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = sa->sa_family;
    memcpy(ep->addr, sockaddr_addr(sa), sa->sa_family == AF_INET ? 4 : 16);
    ep->port = ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                              : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

static void proxy_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    struct proxy_listener *pl = arg;
    struct proxy *p = pl->p;
    struct netstack_endpoint client, local;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char who[64], reply[256];
    int n;

    (void)l;
    (void)salen;
    endpoint_of(sa, &client);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        close(fd);
        return;
    }
    endpoint_of((struct sockaddr *)&ss, &local);
    if (!proxy_admits(p, &client)) {
        netstack_endpoint_str(&client, who, sizeof(who));
        log_warn("proxy: refused %s: not on the TUN's or a listening interface's network", who);
        n = snprintf(reply, sizeof(reply),
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\nmitmtun: clients from %s may not use this "
                     "proxy\n",
                     strlen("mitmtun: clients from  may not use this proxy\n") + strlen(who), who);
        if (send(fd, reply, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_errno(LOG_DEBUG, "proxy: answering %s", who);
        close(fd);
        return;
    }
    conn_explicit(p->w, fd, &client, &local, pl->kind);
}

/*
 * accept() failed for want of file descriptors or memory: the client stays queued and the
 * socket readable, so listening stops for a moment instead of spinning on it.
 */
static void proxy_accept_error(struct evconnlistener *l, void *arg)
{
    struct proxy_listener *pl = arg;
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
    int err = EVUTIL_SOCKET_ERROR();

    if (err == EMFILE || err == ENFILE)
        worker_socket_failed(pl->p->w, err);
    else
        log_warn("explicit proxy: accepting a client: %s", strerror(err));
    evconnlistener_disable(l);
    evtimer_add(pl->resume, &pause);
}

static void proxy_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_listener *pl = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(pl->l);
}

static int proxy_listen(struct proxy *p, const struct sockaddr *sa, enum conn_kind kind, char *err,
                        size_t errlen)
{
    struct proxy_listener *pl = &p->listeners[p->nlisteners];
    struct worker *w = p->w;
    struct netstack_endpoint ep;
    socklen_t len =
        sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int one = 1, fd;
    char where[64];

    endpoint_of(sa, &ep);
    netstack_endpoint_str(&ep, where, sizeof(where));
    if (p->nlisteners == PROXY_MAX_SOCKETS) {
        snprintf(err, errlen, "[proxy] listen: more than %d addresses", PROXY_MAX_SOCKETS);
        return -1;
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Each worker process listens on its own socket; the kernel spreads the clients. */
    if (w->cfg->tun.workers > 1)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* The TUN's IPv6 address may still be tentative at start. */
    if (sa->sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    } else {
        setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    }
    if (bind(fd, sa, len) < 0 || listen(fd, 511) < 0)
        goto fail;
    pl->p = p;
    pl->kind = kind;
    pl->resume = evtimer_new(w->base, proxy_accept_resume, pl);
    pl->l = NULL;
    if (pl->resume)
        pl->l = evconnlistener_new(w->base, proxy_accept, pl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!pl->l) {
        if (pl->resume)
            event_free(pl->resume);
        errno = ENOMEM;
        goto fail;
    }
    evconnlistener_set_error_cb(pl->l, proxy_accept_error);
    p->nlisteners++;
    log_info("%s on %s", kind == CONN_ONBOARD ? "CA page" : "explicit proxy listening", where);
    return 0;

fail:
    snprintf(err, errlen, "%s %s: %s",
             kind == CONN_ONBOARD ? "CA page on" : "[proxy] listen:", where, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void sockaddr_make(struct sockaddr_storage *ss, int family, const void *addr, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    ss->ss_family = (sa_family_t)family;
    if (family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
        memcpy(&((struct sockaddr_in *)ss)->sin_addr, addr, 4);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
        memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, addr, 16);
    }
}

struct proxy *proxy_new(struct worker *w, char *err, size_t errlen)
{
    const struct config *cfg = w->cfg;
    struct proxy *p = calloc(1, sizeof(*p));
    struct sockaddr_storage addrs[PROXY_MAX_SOCKETS];
    static const uint8_t any[16];

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->w = w;
    proxy_add_net(p, AF_INET, &cfg->tun.addr, cfg->tun.prefix);
    if (cfg->tun.prefix6)
        proxy_add_net(p, AF_INET6, &cfg->tun.addr6, cfg->tun.prefix6);
    for (int i = 0; i < cfg->proxy.nlisten; i++) {
        const struct listen_entry *e = &cfg->proxy.listen[i];
        int n = 0;

        if (e->kind == LISTEN_TUN) {
            sockaddr_make(&addrs[n++], AF_INET, &cfg->tun.addr, e->port);
            if (cfg->tun.prefix6)
                sockaddr_make(&addrs[n++], AF_INET6, &cfg->tun.addr6, e->port);
        } else if (e->kind == LISTEN_LAN) {
            if (!cfg->routing.lan_interface[0])
                continue; /* no hotspot side (device mode): nothing to listen on */
            n = proxy_interface(p, cfg->routing.lan_interface, 0, NULL, addrs, PROXY_MAX_SOCKETS);
            for (int k = 0; k < n; k++)
                ((struct sockaddr_in *)&addrs[k])->sin_port = htons(e->port); /* same offset */
            if (n == 0) {
                snprintf(err, errlen, "[proxy] listen: lan:%u: %s has no address", e->port,
                         cfg->routing.lan_interface);
                goto fail;
            }
        } else {
            sockaddr_make(&addrs[n++], e->family, e->addr, e->port);
            if (memcmp(e->addr, any, e->family == AF_INET ? 4 : 16) == 0)
                p->open_to_all = 1;
            else
                proxy_interface(p, NULL, e->family, e->addr, NULL, 0);
        }
        for (int k = 0; k < n; k++)
            if (proxy_listen(p, (struct sockaddr *)&addrs[k], CONN_EXPLICIT, err, errlen) < 0)
                goto fail;
    }
    /* http://<TUN address>/: the CA page, for a phone on the hotspot. */
    sockaddr_make(&addrs[0], AF_INET, &cfg->tun.addr, 80);
    if (cfg->tun.prefix6)
        sockaddr_make(&addrs[1], AF_INET6, &cfg->tun.addr6, 80);
    for (int k = 0; k < (cfg->tun.prefix6 ? 2 : 1); k++)
        if (proxy_listen(p, (struct sockaddr *)&addrs[k], CONN_ONBOARD, err, errlen) < 0)
            log_warn("%s (another server has the port?); %s%s%s", err,
                     *cfg->proxy.onboarding_host ? "the page stays reachable as http://" : "",
                     cfg->proxy.onboarding_host,
                     *cfg->proxy.onboarding_host ? "/ through the appliance" : "no CA page there");
    err[0] = '\0';
    return p;

fail:
    proxy_free(p);
    return NULL;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nlisteners; i++) {
        evconnlistener_free(p->listeners[i].l);
        event_free(p->listeners[i].resume);
    }
    free(p);
}
