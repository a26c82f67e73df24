#include "tun.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* linux/ipv6.h's struct in6_ifreq, which clashes with the libc headers. */
struct tun_in6_ifreq {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

int tun_open(const char *name, int multi_queue)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    /* Offloads we take on reads: partial checksums and TCP segments up to 64 KiB. */
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
        ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int tun_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *what,
                     const char **step)
{
    if (ioctl(sock, req, ifr) < 0) {
        *step = what;
        return -1;
    }
    return 0;
}

int tun_configure(const char *name, const struct in_addr *addr, int prefix,
                  const struct in6_addr *addr6, int prefix6, int mtu, const char **step)
{
    struct ifreq ifr;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = -1, saved;

    if (sock < 0) {
        *step = "socket";
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    sin->sin_family = AF_INET;
    sin->sin_addr = *addr;
    if (tun_ioctl(sock, SIOCSIFADDR, &ifr, "setting the IPv4 address", step) < 0)
        goto out;
    sin->sin_addr.s_addr = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
    if (tun_ioctl(sock, SIOCSIFNETMASK, &ifr, "setting the netmask", step) < 0)
        goto out;
    ifr.ifr_mtu = mtu;
    if (tun_ioctl(sock, SIOCSIFMTU, &ifr, "setting the MTU", step) < 0)
        goto out;
    if (tun_ioctl(sock, SIOCGIFFLAGS, &ifr, "reading the flags", step) < 0)
        goto out;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (tun_ioctl(sock, SIOCSIFFLAGS, &ifr, "bringing it up", step) < 0)
        goto out;
    if (prefix6 > 0) {
        struct tun_in6_ifreq req;
        int sock6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (sock6 < 0) {
            *step = "IPv6 socket";
            goto out;
        }
        memset(&req, 0, sizeof(req));
        req.addr = *addr6;
        req.prefixlen = (uint32_t)prefix6;
        req.ifindex = (int)if_nametoindex(name);
        if (ioctl(sock6, SIOCSIFADDR, &req) < 0 && errno != EEXIST) {
            saved = errno;
            close(sock6);
            errno = saved;
            *step = "setting the IPv6 address";
            goto out;
        }
        close(sock6);
    }
    rc = 0;
out:
    saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

struct tun_steer {
    int rps_fd;        /* the TUN's queues/rx-0/rps_cpus, open for writing */
    cpu_set_t allowed; /* the CPUs the thread may run on, inline */
    cpu_set_t pinned;  /* the one it runs on while spread */
    char mask[16];     /* the others, as rps_cpus takes them */
    int spread;
};

struct tun_steer *tun_steer_new(const char *name, int *cpu, char *others, size_t len)
{
    char path[128];
    uint32_t rps = 0;
    int last = -1, n = 0;
    struct tun_steer *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    if (sched_getaffinity(0, sizeof(st->allowed), &st->allowed) < 0)
        goto fail;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &st->allowed))
            continue;
        if (c >= 32)
            goto nothing;
        if (last >= 0)
            rps |= 1u << last;
        last = c;
        n++;
    }
    if (n < 2)
        goto nothing;
    snprintf(path, sizeof(path), "/sys/class/net/%s/queues/rx-0/rps_cpus", name);
    st->rps_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (st->rps_fd < 0)
        goto fail;
    snprintf(st->mask, sizeof(st->mask), "%x", rps);
    CPU_ZERO(&st->pinned);
    CPU_SET(last, &st->pinned);
    *cpu = last;
    snprintf(others, len, "mask 0x%s", st->mask);
    return st;

nothing:
    errno = 0;
fail:
    free(st);
    return NULL;
}

int tun_steer_set(struct tun_steer *st, int spread)
{
    const char *mask = spread ? st->mask : "0";

    if (st->spread == spread)
        return 0;
    if (pwrite(st->rps_fd, mask, strlen(mask), 0) < 0 ||
        sched_setaffinity(0, sizeof(cpu_set_t), spread ? &st->pinned : &st->allowed) < 0)
        return -1;
    st->spread = spread;
    return 0;
}

void tun_steer_free(struct tun_steer *st)
{
    if (!st)
        return;
    /* Unconditionally: a failed switch may have done half of its work. */
    (void)!pwrite(st->rps_fd, "0", 1, 0);
    sched_setaffinity(0, sizeof(cpu_set_t), &st->allowed);
    close(st->rps_fd);
    free(st);
}
