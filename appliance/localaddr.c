#include "localaddr.h"

#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct local_one {
    int family;
    uint8_t addr[16];
};

struct localaddr {
    int fd;    /* routing socket, told of every address added or removed; -1: none */
    int stale; /* read the addresses before the next answer */
    int n, cap;
    struct local_one *a;
};

struct localaddr *localaddr_new(void)
{
    struct localaddr *l = calloc(1, sizeof(*l));
    struct sockaddr_nl groups = {.nl_family = AF_NETLINK,
                                 .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR};

    if (!l)
        return NULL;
    l->stale = 1;
    l->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (l->fd >= 0 && bind(l->fd, (struct sockaddr *)&groups, sizeof(groups)) < 0) {
        close(l->fd);
        l->fd = -1;
    }
    return l;
}

void localaddr_free(struct localaddr *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->a);
    free(l);
}

/* Whether the kernel has reported a change since the last look (or may have: a full socket).
 * Empties the socket. */
static int localaddr_changed(struct localaddr *l)
{
    char buf[8192];
    int changed = 0;

    if (l->fd < 0)
        return 1;
    for (int i = 0; i < 1024; i++) {
        ssize_t r = recv(l->fd, buf, sizeof(buf), 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return changed;
        if (r < 0 && errno == EINTR)
            continue;
        changed = 1; /* a message, or an error such as ENOBUFS (some were lost) */
    }
    return 1;
}

static void localaddr_read(struct localaddr *l)
{
    struct ifaddrs *ifa;

    l->n = 0;
    l->stale = 1; /* until all were read: tried again next time */
    if (getifaddrs(&ifa) < 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        int family = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
        struct local_one *one;

        if (family != AF_INET && family != AF_INET6)
            continue;
        if (l->n == l->cap) {
            int cap = l->cap ? 2 * l->cap : 16;
            struct local_one *a = realloc(l->a, (size_t)cap * sizeof(*a));
            if (!a) {
                freeifaddrs(ifa);
                return;
            }
            l->a = a;
            l->cap = cap;
        }
        one = &l->a[l->n++];
        memset(one, 0, sizeof(*one));
        one->family = family;
        if (family == AF_INET)
            memcpy(one->addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        else
            memcpy(one->addr, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
    }
    freeifaddrs(ifa);
    l->stale = 0;
}

int localaddr_has(struct localaddr *l, int family, const uint8_t *addr)
{
    static const uint8_t zero[16];
    size_t len = family == AF_INET ? 4 : 16;
    struct localaddr once = {.fd = -1};
    int found = 0;

    if (family == AF_INET && (addr[0] == 127 || memcmp(addr, zero, 4) == 0))
        return 1;
    if (family == AF_INET6 &&
        (IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)addr) || memcmp(addr, zero, 16) == 0))
        return 1;
    if (!l)
        l = &once;
    if (localaddr_changed(l) || l->stale)
        localaddr_read(l);
    for (int i = 0; i < l->n && !found; i++)
        found = l->a[i].family == family && memcmp(l->a[i].addr, addr, len) == 0;
    if (l == &once)
        free(once.a);
    return found;
}
