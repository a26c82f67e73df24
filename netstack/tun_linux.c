#include "tun.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
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

int tun_open(const char *name)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
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

int tun_steer(const char *name, char *others, size_t len)
{
    char path[128], mask[16];
    cpu_set_t allowed, self;
    uint32_t rps = 0;
    int last = -1, n = 0;
    FILE *f;

    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (cpu >= 32)
            return 0;
        if (last >= 0)
            rps |= 1u << last;
        last = cpu;
        n++;
    }
    if (n < 2)
        return 0;
    snprintf(path, sizeof(path), "/sys/class/net/%s/queues/rx-0/rps_cpus", name);
    snprintf(mask, sizeof(mask), "%x", rps);
    f = fopen(path, "w");
    if (!f)
        return -1;
    if (fputs(mask, f) < 0 || fclose(f) != 0)
        return -1;
    CPU_ZERO(&self);
    CPU_SET(last, &self);
    if (sched_setaffinity(0, sizeof(self), &self) < 0)
        return -1;
    snprintf(others, len, "mask 0x%s", mask);
    return last;
}
