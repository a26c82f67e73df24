#include "worker.h"

#include "conn.h"
#include "dial.h"
#include "echorelay.h"
#include "localaddr.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "netstack/netstack.h"
#include "netstack/tun.h"
#include "udprelay.h"
#include "upstream.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* evdns speaks through our log. */
static void worker_dns_log(int is_warn, const char *msg)
{
    if (is_warn)
        log_warn("dns: %s", msg);
    else
        log_debug("dns: %s", msg);
}

static void worker_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_reap(arg);
}

static void worker_stats_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_log_stats(arg);
}

static long now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

#define FD_WARN_SECONDS 10

int worker_socket(struct worker *w, int family, int type)
{
    int fd, err;

    while ((fd = upstream_socket(family, type, w->cfg->routing.mark)) < 0 &&
           (errno == EMFILE || errno == ENFILE) && pool_shed(w->pool))
        ; /* bounded: the pool empties */
    if (fd >= 0)
        return fd;
    err = errno;
    worker_socket_failed(w, err);
    errno = err;
    return -1;
}

void worker_socket_failed(struct worker *w, int err)
{
    struct rlimit rl;

    if (err != EMFILE && err != ENFILE)
        return;
    w->fd_refused++;
    if (!log_every_due(&w->fd_warning, FD_WARN_SECONDS))
        return;
    if (err == ENFILE) {
        log_warn("out of file descriptors system-wide (sysctl fs.file-max): new connections "
                 "and UDP flows are refused until others close (%" PRIu64 " so far)",
                 w->fd_refused);
        return;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = 0;
    log_warn("out of file descriptors (open files limit %llu): new connections and UDP flows "
             "are refused until others close (%" PRIu64 " so far); raise the limit: ulimit -n, "
             "or LimitNOFILE= for a systemd service",
             (unsigned long long)rl.rlim_cur, w->fd_refused);
}

#define PINS 256

/* A client that refused our certificate for a host: passed through until expires. */
struct worker_pin {
    int family;         /* 0: free */
    uint8_t client[16]; /* the client's address */
    char host[256];     /* the SNI, or the destination address as text */
    long expires;       /* CLOCK_MONOTONIC seconds */
};

struct worker_pins {
    pthread_mutex_t lock; /* process-shared and robust: a worker may die holding it */
    struct worker_pin pin[PINS];
};

struct worker_pins *worker_pins_new(void)
{
    struct worker_pins *pins =
        mmap(NULL, sizeof(*pins), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t attr;
    int rc;

    if (pins == MAP_FAILED)
        return NULL;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&pins->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        munmap(pins, sizeof(*pins));
        return NULL;
    }
    return pins;
}

void worker_pins_free(struct worker_pins *pins)
{
    if (!pins)
        return;
    pthread_mutex_destroy(&pins->lock);
    munmap(pins, sizeof(*pins));
}

static void pins_lock(struct worker_pins *pins)
{
    /* Its last holder died: at worst one slot is torn, which only misses a match. */
    if (pthread_mutex_lock(&pins->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&pins->lock);
}

static struct worker_pin *pin_slot(struct worker_pins *pins, int family, const uint8_t *client,
                                   const char *host)
{
    for (int i = 0; i < PINS; i++) {
        struct worker_pin *p = &pins->pin[i];
        if (p->family == family && memcmp(p->client, client, family == AF_INET ? 4 : 16) == 0 &&
            strcmp(p->host, host) == 0)
            return p;
    }
    return NULL;
}

void worker_pin_add(struct worker *w, int family, const uint8_t *client, const char *host)
{
    struct worker_pins *pins = w->pins;
    struct worker_pin *p;

    pins_lock(pins);
    p = pin_slot(pins, family, client, host);
    if (!p) { /* a free slot, else the one expiring first */
        p = &pins->pin[0];
        for (int i = 1; i < PINS && p->family; i++)
            if (!pins->pin[i].family || pins->pin[i].expires < p->expires)
                p = &pins->pin[i];
    }
    p->family = family;
    memcpy(p->client, client, family == AF_INET ? 4 : 16);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->expires = now_seconds() + w->cfg->tls.auto_passthrough_seconds;
    pthread_mutex_unlock(&pins->lock);
}

int worker_pin_find(struct worker *w, int family, const uint8_t *client, const char *host)
{
    struct worker_pins *pins = w->pins;
    struct worker_pin *p;
    int found = 0;

    pins_lock(pins);
    p = pin_slot(pins, family, client, host);
    if (p && p->expires > now_seconds())
        found = 1;
    else if (p)
        p->family = 0;
    pthread_mutex_unlock(&pins->lock);
    return found;
}

/* Resident set size in KiB, from /proc/self/statm. */
static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

uint64_t worker_new_id(struct worker *w)
{
    uint64_t id = w->next_id;

    w->next_id += w->id_step;
    return id;
}

void worker_log_stats(struct worker *w)
{
    struct netstack_counters nc;

    netstack_get_counters(w->ns, &nc);
    log_info("stats: tcp open=%" PRIu64 " total=%" PRIu64 " time_wait=%" PRIu64 " (cut %" PRIu64
             ") udp open=%" PRIu64 " total=%" PRIu64 " dropped=%" PRIu64 " evicted=%" PRIu64
             " packets in=%" PRIu64 " out=%" PRIu64 " (merged segments %" PRIu64
             ") dropped=%" PRIu64 " refused for want of fds=%" PRIu64
             " rss=%ld KiB upstream idle=%d",
             w->tcp_open, w->tcp_total, nc.time_wait, nc.time_wait_cut, w->udp_open, w->udp_total,
             w->udp_dropped, w->udp_evicted, nc.packets_in, nc.packets_out, nc.segments_merged,
             nc.dropped_malformed + nc.dropped_fragments + nc.dropped_other + nc.tun_write_errors,
             w->fd_refused, rss_kib(), pool_count(w->pool));
}

/* The netstack's bulk traffic began or ended: spread the TUN's kernel work or take it back
 * inline (see tun.h). A failed switch turns steering off for good, inline. */
static void worker_bulk(void *arg, int on)
{
    struct worker *w = arg;

    if (!w->steer)
        return;
    if (tun_steer_set(w->steer, on) == 0) {
        log_debug("[tun] steer: %s", on ? "bulk traffic, TUN work spread" : "TUN work inline");
        return;
    }
    log_errno(LOG_WARN, "[tun] steer: cannot switch to %s; steering stays off",
              on ? "spread" : "inline");
    tun_steer_free(w->steer);
    w->steer = NULL;
}

/* [tun] steer: ready to spread the TUN's kernel work while bulk traffic flows. */
static void worker_steer(struct worker *w)
{
    char others[32];
    int cpu;

    w->steer = tun_steer_new(w->cfg->tun.name, &cpu, others, sizeof(others));
    if (w->steer)
        log_info("[tun] steer: while bulk traffic flows, the worker will run on CPU %d and the "
                 "TUN's receive processing on CPUs %s",
                 cpu, others);
    else if (errno)
        log_errno(LOG_WARN, "[tun] steer: cannot steer '%s'", w->cfg->tun.name);
}

int worker_init(struct worker *w, struct event_base *base, const struct config *cfg, int tun_fd,
                struct flowlog *flows, struct tls_engine *tls, struct onboard *onboard,
                struct worker_pins *pins)
{
    char err[512];
    struct netstack_handlers h = {
        .arg = w,
        .tcp_syn = conn_syn,
        .tcp_established = conn_accepted,
        .udp = udprelay_packet,
        .echo = echorelay_packet,
    };

    memset(w, 0, sizeof(*w));
    w->next_id = w->id_step = 1;
    w->base = base;
    w->cfg = cfg;
    w->flows = flows;
    w->tls = tls;
    w->onboard = onboard;
    w->pins = pins;
    w->reaper = event_new(base, -1, 0, worker_reap, w);
    w->udp = udprelay_new(w);
    w->pool = pool_new(base, tls && cfg->proxy.upstream_reuse > 0 ? POOL_MAX : 0);
    if (!w->reaper || !w->udp || !w->pool)
        goto fail;
    w->echo = echorelay_new(w);
    if (cfg->tun.steer)
        worker_steer(w);
    if (w->steer)
        h.bulk = worker_bulk;
    w->ns = netstack_new(base, tun_fd, cfg->tun.mtu, &h);
    if (!w->ns)
        goto fail;
    netstack_set_silence_timeout(w->ns, cfg->tcp.silent_client_timeout);
    netstack_set_idle_keepalive(w->ns, cfg->tcp.client_keepalive);
    /* /etc/resolv.conf and /etc/hosts; without them names fail with a clear 502. */
    evdns_set_log_fn(worker_dns_log);
    w->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!w->dns) {
        log_warn("explicit proxy: no DNS resolver from /etc/resolv.conf; only addresses and "
                 "/etc/hosts names will work");
        w->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (w->dns)
            evdns_base_load_hosts(w->dns, NULL);
    }
    w->local = localaddr_new();
    w->names = dial_names_new();
    if (!w->local || !w->names)
        goto fail;
    w->proxy = proxy_new(w, err, sizeof(err));
    if (!w->proxy) {
        log_error("%s: %s", cfg->path, err);
        worker_cleanup(w);
        return -1;
    }
    if (cfg->log.stats_interval > 0) {
        struct timeval tv = {cfg->log.stats_interval, 0};
        w->stats_ev = event_new(base, -1, EV_PERSIST, worker_stats_tick, w);
        if (!w->stats_ev || event_add(w->stats_ev, &tv) < 0)
            goto fail;
    }
    return 0;

fail:
    log_error("worker: cannot start (out of memory)");
    worker_cleanup(w);
    return -1;
}

void worker_cleanup(struct worker *w)
{
    proxy_free(w->proxy);
    w->proxy = NULL;
    conn_close_all(w);
    conn_reap(w);
    pool_free(w->pool);
    if (w->dns)
        evdns_base_free(w->dns, 1);
    localaddr_free(w->local);
    w->local = NULL;
    dial_names_free(w->names);
    w->names = NULL;
    udprelay_free(w->udp);
    echorelay_free(w->echo);
    if (w->ns)
        netstack_free(w->ns);
    tun_steer_free(w->steer);
    if (w->stats_ev)
        event_free(w->stats_ev);
    if (w->reaper)
        event_free(w->reaper);
    memset(w, 0, sizeof(*w));
}
