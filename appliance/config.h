/*
 * The appliance's configuration: an INI file read with iniparser, overridden by --set, checked
 * whole before anything starts. Every key has a default; every value is validated, and an error
 * names the file, section, key, value and what was expected.
 */
#ifndef MITMTUN_CONFIG_H
#define MITMTUN_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_MAX_UID_RANGES 16
#define CONFIG_PATH_MAX       512
#define CONFIG_MAX_LISTEN     8
#define WORKERS_MAX           64

enum listen_kind { LISTEN_ADDR, LISTEN_TUN, LISTEN_LAN };

/* One [proxy] listen entry: an address, or the TUN's / the LAN interface's addresses. */
struct listen_entry {
    enum listen_kind kind;
    int family;       /* LISTEN_ADDR: AF_INET or AF_INET6 */
    uint8_t addr[16]; /* LISTEN_ADDR */
    uint16_t port;
};

enum routing_mode { ROUTING_NONE, ROUTING_GATEWAY, ROUTING_DEVICE };
enum icmp_echo_mode { ICMP_ECHO_RELAY, ICMP_ECHO_DROP };

struct uid_range {
    uid_t first, last; /* inclusive */
};

struct config {
    char path[CONFIG_PATH_MAX]; /* the file it came from, for messages */
    struct {
        char name[16];         /* interface name, IFNAMSIZ */
        struct in_addr addr;   /* appliance's IPv4 address on the TUN */
        int prefix;            /* its prefix length */
        struct in6_addr addr6; /* optional IPv6 address */
        int prefix6;           /* 0 when address6 is unset */
        int mtu;
        int steer;   /* pin the worker, steer the TUN's kernel work elsewhere */
        int workers; /* worker processes, each on a TUN queue; 0: one per CPU */
    } tun;
    struct {
        enum routing_mode mode;
        char lan_interface[16];                       /* gateway: the clients' interface */
        int table;                                    /* policy routing table id */
        uint32_t mark;                                /* SO_MARK of our upstream sockets */
        struct uid_range uids[CONFIG_MAX_UID_RANGES]; /* device: whose traffic */
        int nuids;                                    /* 0: every user's */
    } routing;
    struct {
        int connect_timeout; /* seconds before an unanswered upstream connect resets the client */
        int silent_client_timeout; /* seconds a client may not answer while data waits for it */
        int client_keepalive;      /* seconds of silence before keepalives check a client */
    } tcp;
    struct {
        int idle_timeout; /* seconds a UDP flow lives without traffic */
        int max_flows;    /* UDP flows at once, per worker */
        int relay_quic;   /* 0: UDP/443 gets ICMP port unreachable */
    } udp;
    struct {
        enum icmp_echo_mode echo;
    } icmp;
    struct {
        char ca_dir[CONFIG_PATH_MAX]; /* our CA: ca.key and ca.crt, made on first start */
        struct uid_range ports[CONFIG_MAX_UID_RANGES]; /* intercepted destination ports */
        int nports;
        char upstream_ca_file[CONFIG_PATH_MAX]; /* trusted besides the system store */
        int upstream_verify;                    /* 0: forge even for an unverifiable upstream */
        int cache_size;                         /* forged leaves kept */
        char keylog[CONFIG_PATH_MAX];           /* NSS key log file, "" for none */
        int auto_passthrough;                   /* pass through where a client refused our cert */
        int auto_passthrough_seconds;           /* for how long */
        int detect;                             /* look for a ClientHello on every port */
        int http2;                              /* 0: h2 out of offers with HTTP/1.x */
        char ignore_hosts[CONFIG_PATH_MAX];     /* passed through untouched: see hostmatch.h */
    } tls;
    struct {
        struct listen_entry listen[CONFIG_MAX_LISTEN]; /* explicit proxy listeners */
        int nlisten;
        char auth[256];  /* "user:password" for Basic proxy auth, "" for none */
        int allow_local; /* the proxy may connect to the appliance itself and loopback */
        struct uid_range http_ports[CONFIG_MAX_UID_RANGES]; /* transparent HTTP ports */
        int nhttp_ports;
        int detect;           /* look for HTTP/1.x requests on every port */
        int max_header_bytes; /* a request or response head above it gets 431 / 502 */
        int idle_timeout;     /* seconds a client connection may wait between requests; 0: ever */
        int upstream_reuse;   /* seconds an idle upstream TLS connection waits for reuse; 0: off */
        char onboarding_host[256]; /* HTTP requests for this host get the CA page */
    } proxy;
    struct {
        int level;                   /* enum log_level */
        char flows[CONFIG_PATH_MAX]; /* JSON Lines file of connection records; "" for none */
        int stats_interval;          /* seconds between stats lines; 0 for none */
        int body_max;                /* body bytes kept in each http record; 0 for none */
        int body_decode;             /* inflate gzip/deflate bodies before keeping them */
    } log;
};

/*
 * Loads path, applies the "section.key=value" overrides in sets, validates everything.
 * Returns 0, or -1 with a one-line message in err.
 */
int config_load(struct config *cfg, const char *path, char *const *sets, int nsets, char *err,
                size_t errlen);

/* "10.0.0.1/24" or "fd00::1/64" into addr (in_addr or in6_addr by family) and prefix. */
int config_parse_cidr(const char *text, int family, void *addr, int *prefix);

/* "1000, 2000-2999" into at most max ranges; returns their count or -1. */
int config_parse_uids(const char *text, struct uid_range *out, int max);

#endif
