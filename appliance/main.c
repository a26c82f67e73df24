/* mitmtun: the program. Arguments, configuration, privileges, lifecycle (one worker, or a
 * main process supervising several). */
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
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
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

/*
 * Opens and configures the TUN, with n queues (n > 1: one per worker) into fds; explains a
 * missing privilege in one line.
 */
static int open_tun(const struct config *cfg, int *fds, int n)
{
    const char *step = "";
    int opened;

    for (opened = 0; opened < n; opened++) {
        fds[opened] = tun_open(cfg->tun.name, n > 1);
        if (fds[opened] >= 0)
            continue;
        if (errno == EPERM || errno == EACCES)
            log_error("creating TUN device '%s' needs CAP_NET_ADMIN: run mitmtun as root, or "
                      "grant it with 'setcap cap_net_admin,cap_net_raw+ep mitmtun'",
                      cfg->tun.name);
        else if (errno == EINVAL)
            log_error("TUN device '%s' exists with %s queue: delete it (ip link del %s) or "
                      "change [tun] workers",
                      cfg->tun.name, n > 1 ? "a single" : "more than one", cfg->tun.name);
        else
            log_errno(LOG_ERROR, "creating TUN device '%s' (/dev/net/tun)", cfg->tun.name);
        goto fail;
    }
    if (tun_configure(cfg->tun.name, &cfg->tun.addr, cfg->tun.prefix, &cfg->tun.addr6,
                      cfg->tun.prefix6, cfg->tun.mtu, &step) < 0) {
        log_errno(LOG_ERROR, "configuring TUN device '%s': %s", cfg->tun.name, step);
        goto fail;
    }
    return 0;
fail:
    while (opened > 0)
        close(fds[--opened]);
    return -1;
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

/* What every worker shares, made once before any starts. */
struct shared {
    const struct config *cfg; /* the workers': [tun] workers resolved */
    struct flowlog *flows;
    struct tls_engine *tls;
    struct onboard *onboard;
    struct worker_pins *pins;
};

static void log_started(const struct config *cfg)
{
    char workers[32] = "";

    if (cfg->tun.workers > 1)
        snprintf(workers, sizeof(workers), ", %d workers", cfg->tun.workers);
    log_info("mitmtun %s: TUN %s up, mtu %d%s, routing %s, flow records in %s", MITMTUN_VERSION,
             cfg->tun.name, cfg->tun.mtu, workers,
             (const char *[]){"none", "gateway", "device"}[cfg->routing.mode],
             cfg->log.flows[0] ? cfg->log.flows : "(console only)");
}

/*
 * One worker's life on tun_fd, until SIGINT or SIGTERM. The only worker (index 0) also sets
 * up routing once it is ready and removes it at the end; worker index of several writes one
 * byte to ready instead (-1: none, a worker started again), and its parent routes. life counts
 * the times worker index started before, so that its connection ids stay unique.
 */
static int serve(const struct shared *sh, int tun_fd, int index, unsigned life, int ready)
{
    const struct config *cfg = sh->cfg;
    struct event_base *base = event_base_new();
    struct event *sigs[4] = {NULL, NULL, NULL, NULL};
    struct routing routing = {0};
    struct worker w;
    int rc = 1;

    if (index) {
        char name[16];
        snprintf(name, sizeof(name), "worker %d", index);
        log_set_source(name);
    }
    if (!base || flowlog_attach(sh->flows, base) < 0 ||
        worker_init(&w, base, cfg, tun_fd, sh->flows, sh->tls, sh->onboard, sh->pins) < 0)
        goto out;
    if (index) { /* ids index, index + n, ...; each life gets 2^32 of them */
        w.id_step = (uint64_t)cfg->tun.workers;
        w.index = (unsigned)index - 1;
        w.next_id = (uint64_t)index + w.id_step * ((uint64_t)life << 32);
    }
    if (!index && routing_setup(&routing, cfg) < 0) {
        worker_cleanup(&w);
        goto out;
    }
    sigs[0] = evsignal_new(base, SIGINT, on_stop, base);
    sigs[1] = evsignal_new(base, SIGTERM, on_stop, base);
    sigs[2] = evsignal_new(base, SIGUSR1, on_usr1, &w);
    sigs[3] = evsignal_new(base, SIGUSR2, on_usr2, sh->flows);
    for (int i = 0; i < 4; i++)
        if (!sigs[i] || evsignal_add(sigs[i], NULL) < 0)
            goto stop;
    if (index) {
        if (ready >= 0 && write(ready, "", 1) != 1)
            goto stop;
    } else {
        log_started(cfg);
    }
    event_base_dispatch(base);
    rc = 0;
stop:
    if (!index)
        routing_teardown(&routing);
    worker_cleanup(&w);
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
out:
    flowlog_detach(sh->flows);
    if (base)
        event_base_free(base);
    return rc;
}

/* Starts worker index (1-based) on tun_fd in a child process; its pid, or -1 (logged). */
static pid_t spawn(const struct shared *sh, int tun_fd, int index, unsigned life, int ready,
                   const sigset_t *mask)
{
    pid_t parent = getpid(), pid = fork();

    if (pid < 0) {
        log_errno(LOG_ERROR, "starting worker %d", index);
        return -1;
    }
    if (pid > 0)
        return pid;
    /* A parent killed outright takes its workers along, also one killed before this call. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(1);
    sigprocmask(SIG_SETMASK, mask, NULL);
    int rc = serve(sh, tun_fd, index, life, ready);
    fflush(NULL);
    _exit(rc); /* the parent owns routing and the shared state */
}

/* Signals every live worker; pids[i] 0: none. */
static void signal_workers(const pid_t *pids, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], sig);
}

/* Index of the worker with pid, or -1. */
static int pid_index(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return i;
    return -1;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

#define READY_TIMEOUT_MS 30000 /* for every worker to be up */
#define STOP_TIMEOUT_MS  10000 /* for every worker to finish after SIGTERM */
#define RESPAWNS_MAX     5     /* a worker dying this often within a minute stops everything */

/* Waits until every worker wrote its byte to ready; -1 (logged) if one died or time ran out. */
static int wait_ready(pid_t *pids, int n, int ready)
{
    struct pollfd pfd = {.fd = ready, .events = POLLIN};
    int got = 0, status;
    char buf[WORKERS_MAX], why[96];

    for (int waited = 0; got < n; waited += 100) {
        pid_t pid = waitpid(-1, &status, WNOHANG);
        int i = pid > 0 ? pid_index(pids, n, pid) : -1;

        if (i >= 0) {
            pids[i] = 0;
            describe_exit(status, why, sizeof(why));
            log_error("worker %d %s while starting", i + 1, why);
            return -1;
        }
        if (waited >= READY_TIMEOUT_MS) {
            log_error("only %d of %d workers started within %d s", got, n, READY_TIMEOUT_MS / 1000);
            return -1;
        }
        if (poll(&pfd, 1, 100) == 1) {
            ssize_t r = read(ready, buf, sizeof(buf));
            if (r > 0)
                got += (int)r;
        }
    }
    return 0;
}

/* SIGTERM to every worker, then waits for them all (SIGKILL after STOP_TIMEOUT_MS). */
static void stop_workers(pid_t *pids, int n)
{
    int left = 0, status;

    signal_workers(pids, n, SIGTERM);
    for (int i = 0; i < n; i++)
        left += pids[i] > 0;
    for (int waited = 0; left > 0; waited += 50) {
        pid_t pid = waitpid(-1, &status, WNOHANG);
        int i = pid > 0 ? pid_index(pids, n, pid) : -1;

        if (i >= 0) {
            pids[i] = 0;
            left--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                char why[96];
                describe_exit(status, why, sizeof(why));
                log_warn("worker %d %s while stopping", i + 1, why);
            }
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (waited == STOP_TIMEOUT_MS) {
            log_warn("%d workers still running %d s after SIGTERM: killing them", left,
                     STOP_TIMEOUT_MS / 1000);
            signal_workers(pids, n, SIGKILL);
        }
        usleep(50 * 1000);
    }
}

/*
 * Several workers: each a child process on its own TUN queue. The parent routes, passes
 * SIGUSR1 and SIGUSR2 on, starts a worker that died again (giving up if it keeps dying), and
 * on SIGINT or SIGTERM stops them all.
 */
static int supervise(const struct shared *sh, const int *fds)
{
    const struct config *cfg = sh->cfg;
    int n = cfg->tun.workers, rc = 1, pipefd[2] = {-1, -1};
    pid_t pids[WORKERS_MAX] = {0};
    time_t starts[WORKERS_MAX][RESPAWNS_MAX] = {{0}}; /* each worker's latest starts */
    unsigned lives[WORKERS_MAX] = {0};                /* how often each has started */
    struct routing routing = {0};
    sigset_t set, old;
    int routed = 0;

    static const int handled[] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD};

    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        log_errno(LOG_ERROR, "starting workers");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        pids[i] = spawn(sh, fds[i], i + 1, 0, pipefd[1], &old);
        if (pids[i] < 0) {
            pids[i] = 0;
            goto stop;
        }
        starts[i][0] = time(NULL);
        lives[i] = 1;
    }
    if (wait_ready(pids, n, pipefd[0]) < 0 || routing_setup(&routing, cfg) < 0)
        goto stop;
    close(pipefd[0]); /* nobody reads it any more: a worker started again writes nothing */
    close(pipefd[1]);
    pipefd[0] = pipefd[1] = -1;
    routed = 1;
    log_started(cfg);
    for (;;) {
        int sig = sigwaitinfo(&set, NULL), status;
        pid_t pid;

        if (sig == SIGINT || sig == SIGTERM) {
            log_info("signal %d: stopping", sig);
            rc = 0;
            break;
        }
        if (sig == SIGUSR1 || sig == SIGUSR2) {
            signal_workers(pids, n, sig);
            continue;
        }
        if (sig != SIGCHLD)
            continue;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int i = pid_index(pids, n, pid);
            time_t now = time(NULL), *t;
            char why[96];

            if (i < 0)
                continue;
            t = starts[i];
            describe_exit(status, why, sizeof(why));
            if (now - t[RESPAWNS_MAX - 1] < 60) {
                log_error("worker %d %s, the %dth time within a minute: stopping", i + 1, why,
                          RESPAWNS_MAX);
                pids[i] = 0;
                goto stop;
            }
            log_error("worker %d %s: starting it again (its connections were lost)", i + 1, why);
            memmove(t + 1, t, (RESPAWNS_MAX - 1) * sizeof(*t));
            t[0] = now;
            pids[i] = spawn(sh, fds[i], i + 1, lives[i]++, -1, &old);
            if (pids[i] < 0) {
                pids[i] = 0;
                goto stop;
            }
        }
    }
stop:
    stop_workers(pids, n);
    if (routed)
        routing_teardown(&routing);
out:
    if (pipefd[0] >= 0) {
        close(pipefd[0]);
        close(pipefd[1]);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* The CPUs this process may run on (taskset, cgroup cpusets), for [tun] workers = 0. */
static int usable_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static int run(const struct config *cfg)
{
    struct config wcfg = *cfg;
    struct shared sh = {.cfg = &wcfg};
    struct ca *ca;
    char err[512];
    int fds[WORKERS_MAX], n, rc = 1;

    /*
     * Keep freed heap for reuse: at glibc's default (128 KiB) the buffers of each request,
     * freed at the top of the heap, went back to the kernel and were taken again (brk and page
     * faults) about once every four keep-alive requests.
     */
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
    n = cfg->tun.workers ? cfg->tun.workers : usable_cpus();
    if (n < 1)
        n = 1;
    if (n > WORKERS_MAX)
        n = WORKERS_MAX;
    wcfg.tun.workers = n;
    if (n > 1 && wcfg.tun.steer) {
        log_debug("[tun] steer is for a single worker: off with %d", n);
        wcfg.tun.steer = 0;
    }
    if (open_tun(cfg, fds, n) < 0) /* first: it says so when privileges are missing */
        return 1;
    raise_open_files();
    ca = open_ca(cfg);
    if (!ca)
        goto out;
    sh.tls = tls_engine_new(ca, cfg->tls.upstream_ca_file, cfg->tls.upstream_verify,
                            cfg->tls.cache_size, cfg->tls.keylog, err, sizeof(err));
    if (!sh.tls) {
        log_error("%s: %s", cfg->path, err);
        goto out;
    }
    sh.onboard = onboard_new(ca);
    if (!sh.onboard) {
        log_error("cannot prepare the CA page (out of memory)");
        goto out;
    }
    sh.pins = worker_pins_new();
    if (!sh.pins) {
        log_errno(LOG_ERROR, "cannot map the auto_passthrough table");
        goto out;
    }
    sh.flows = flowlog_open(cfg->log.flows, err, sizeof(err));
    if (!sh.flows) {
        log_error("%s: %s", cfg->path, err);
        goto out;
    }
    rc = n == 1 ? serve(&sh, fds[0], 0, 0, -1) : supervise(&sh, fds);
out:
    flowlog_close(sh.flows);
    tls_engine_free(sh.tls);
    onboard_free(sh.onboard);
    worker_pins_free(sh.pins);
    for (int i = 0; i < n; i++)
        close(fds[i]);
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
