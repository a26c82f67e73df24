/* mitmtun: the program. Arguments, configuration, privileges, lifecycle. */
#include "config.h"
#include "flowlog.h"
#include "har.h"
#include "log.h"
#include "onboard.h"
#include "routing.h"
#include "worker.h"
#include "netstack/tun.h"
#include "tls/ca.h"
#include "tls/intercept.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef MITMTUN_VERSION
#define MITMTUN_VERSION "0.0.0"
#endif

#define MAX_SETS 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mitmtun -c FILE [--set section.key=value]... [--check]\n"
            "       mitmtun -c FILE ca export DIR\n"
            "       mitmtun har FLOWS.jsonl > flows.har\n"
            "\n"
            "Transparent TLS/HTTP interception appliance: terminates the TCP connections routed\n"
            "into a TUN device and relays them over the host's network stack.\n"
            "\n"
            "  -c, --config FILE   configuration (INI); configs/mitmtun.ini documents every key\n"
            "      --set S.K=V     override key K of section S (repeatable)\n"
            "      --check         validate the configuration and exit\n"
            "  -h, --help          this text\n"
            "  -V, --version       the version\n"
            "  ca export DIR       write the CA certificate into DIR in every form device\n"
            "                      installers take (PEM, DER, PKCS#12, Android), with a how-to\n"
            "  har FLOWS.jsonl     the HTTP records of a flows file as HAR 1.2 on stdout\n"
            "\n"
            "Signals: SIGINT/SIGTERM stop cleanly, SIGUSR1 logs a stats line, SIGUSR2 reopens\n"
            "the flows file (after logrotate moved it).\n"
            "Exit status: 0 stopped cleanly, 1 runtime failure, 2 bad configuration or usage.\n");
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    worker_log_stats(arg);
}

/* After logrotate moved the flows file away. */
static void on_usr2(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    flowlog_reopen(arg);
}

/* Opens and configures the TUN; explains a missing privilege in one line. */
static int open_tun(const struct config *cfg)
{
    const char *step = "";
    int fd = tun_open(cfg->tun.name);

    if (fd < 0) {
        if (errno == EPERM || errno == EACCES)
            log_error("creating TUN device '%s' needs CAP_NET_ADMIN: run mitmtun as root, or "
                      "grant it with 'setcap cap_net_admin,cap_net_raw+ep mitmtun'",
                      cfg->tun.name);
        else
            log_errno(LOG_ERROR, "creating TUN device '%s' (/dev/net/tun)", cfg->tun.name);
        return -1;
    }
    if (tun_configure(cfg->tun.name, &cfg->tun.addr, cfg->tun.prefix, &cfg->tun.addr6,
                      cfg->tun.prefix6, cfg->tun.mtu, &step) < 0) {
        log_errno(LOG_ERROR, "configuring TUN device '%s': %s", cfg->tun.name, step);
        close(fd);
        return -1;
    }
    return fd;
}

/* Loads our CA, making it on first start. */
static struct ca *open_ca(const struct config *cfg)
{
    char err[1024], fp[100];
    int created;
    struct ca *ca = ca_open(cfg->tls.ca_dir, &created, err, sizeof(err));

    if (!ca) {
        log_error("%s: [tls] ca_dir: %s", cfg->path, err);
        return NULL;
    }
    if (created)
        log_info("made a new CA in %s (install %s/ca.crt on your test devices; 'mitmtun -c %s "
                 "ca export DIR' writes every installer's format)",
                 cfg->tls.ca_dir, cfg->tls.ca_dir, cfg->path);
    log_info("CA %s/ca.crt, SHA-256 %s", cfg->tls.ca_dir, ca_fingerprint(ca, fp, sizeof(fp)));
    return ca;
}

static int ca_export_command(const struct config *cfg, const char *dir)
{
    struct ca *ca = open_ca(cfg);
    char err[1024];
    int rc = 0;

    if (!ca)
        return 1;
    if (ca_export(ca, dir, err, sizeof(err)) < 0) {
        log_error("ca export: %s", err);
        rc = 1;
    } else {
        printf("CA certificate written to %s (see %s/README.txt for which file goes where)\n", dir,
               dir);
    }
    ca_free(ca);
    return rc;
}

/*
 * Every TCP connection and UDP flow holds a socket on the host stack: take the hard limit of
 * open files rather than the soft one (often 1,024, a few busy phones' worth).
 */
static void raise_open_files(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_errno(LOG_WARN, "raising the open files limit to %llu",
                      (unsigned long long)rl.rlim_max);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 4096)
        log_warn("open files limit %llu: at most about that many connections and UDP flows at "
                 "once (raise it: ulimit -n, or LimitNOFILE= for a systemd service)",
                 (unsigned long long)rl.rlim_cur);
    else
        log_debug("open files limit %llu", (unsigned long long)rl.rlim_cur);
}

static int run(const struct config *cfg)
{
    struct event_base *base = NULL;
    struct event *sigs[4] = {NULL, NULL, NULL, NULL};
    struct flowlog *flows = NULL;
    struct routing routing = {0};
    struct worker w;
    struct tls_engine *tls = NULL;
    struct onboard *onboard = NULL;
    struct ca *ca;
    char err[512];
    int tun_fd, rc = 1;

    /*
     * Keep freed heap for reuse: at glibc's default (128 KiB) the buffers of each request,
     * freed at the top of the heap, went back to the kernel and were taken again (brk and page
     * faults) about once every four keep-alive requests.
     */
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
    tun_fd = open_tun(cfg); /* first: it says so when privileges are missing */
    if (tun_fd < 0)
        return 1;
    raise_open_files();
    ca = open_ca(cfg);
    if (!ca) {
        close(tun_fd);
        return 1;
    }
    tls = tls_engine_new(ca, cfg->tls.upstream_ca_file, cfg->tls.upstream_verify,
                         cfg->tls.cache_size, cfg->tls.keylog, err, sizeof(err));
    if (!tls) {
        log_error("%s: %s", cfg->path, err);
        goto out;
    }
    onboard = onboard_new(ca);
    if (!onboard) {
        log_error("cannot prepare the CA page (out of memory)");
        goto out;
    }
    flows = flowlog_open(cfg->log.flows, err, sizeof(err));
    if (!flows) {
        log_error("%s: %s", cfg->path, err);
        goto out;
    }
    base = event_base_new();
    if (!base || flowlog_attach(flows, base) < 0 ||
        worker_init(&w, base, cfg, tun_fd, flows, tls, onboard) < 0)
        goto out;
    if (routing_setup(&routing, cfg) < 0) {
        worker_cleanup(&w);
        goto out;
    }
    sigs[0] = evsignal_new(base, SIGINT, on_stop, base);
    sigs[1] = evsignal_new(base, SIGTERM, on_stop, base);
    sigs[2] = evsignal_new(base, SIGUSR1, on_usr1, &w);
    sigs[3] = evsignal_new(base, SIGUSR2, on_usr2, flows);
    for (int i = 0; i < 4; i++)
        if (!sigs[i] || evsignal_add(sigs[i], NULL) < 0)
            goto stop;

    log_info("mitmtun %s: TUN %s up, mtu %d, routing %s, flow records in %s", MITMTUN_VERSION,
             cfg->tun.name, cfg->tun.mtu,
             (const char *[]){"none", "gateway", "device"}[cfg->routing.mode],
             cfg->log.flows[0] ? cfg->log.flows : "(console only)");
    event_base_dispatch(base);
    rc = 0;
stop:
    routing_teardown(&routing);
    worker_cleanup(&w);
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
out:
    flowlog_detach(flows);
    if (base)
        event_base_free(base);
    flowlog_close(flows);
    tls_engine_free(tls);
    onboard_free(onboard);
    close(tun_fd);
    ca_free(ca);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    char *sets[MAX_SETS];
    const char *path = NULL;
    int nsets = 0, check = 0, opt;
    struct config cfg;
    char err[1024];

    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 's':
            if (nsets == MAX_SETS) {
                fprintf(stderr, "mitmtun: at most %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("mitmtun %s\n", MITMTUN_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc && strcmp(argv[optind], "har") == 0) { /* needs no configuration */
        if (optind + 2 != argc) {
            fprintf(stderr, "mitmtun: usage: mitmtun har FLOWS.jsonl > flows.har\n");
            return 2;
        }
        return har_convert(argv[optind + 1], stdout) == 0 ? 0 : 1;
    }
    int export = optind + 3 == argc && strcmp(argv[optind], "ca") == 0 &&
                 strcmp(argv[optind + 1], "export") == 0;
    if (!path || (optind != argc && !export)) {
        if (!path)
            fprintf(stderr, "mitmtun: no configuration given (-c FILE)\n");
        else
            fprintf(stderr, "mitmtun: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (config_load(&cfg, path, sets, nsets, err, sizeof(err)) < 0) {
        fprintf(stderr, "mitmtun: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: configuration OK\n", path);
        return 0;
    }
    log_set_level((enum log_level)cfg.log.level);
    if (export)
        return ca_export_command(&cfg, argv[argc - 1]);
    signal(SIGPIPE, SIG_IGN);
    return run(&cfg);
}
