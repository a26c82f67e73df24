#include "config.h"

#include "hostmatch.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <iniparser.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_kind {
    K_INT,
    K_UINT32,
    K_BOOL,
    K_IFNAME,
    K_PATH,
    K_CIDR4,
    K_CIDR6,
    K_UIDS,
    K_PORTS,
    K_HOSTS,
    K_CHOICE,
    K_LISTEN,
    K_AUTH,
    K_HOSTNAME,
};

struct key {
    const char *section, *name;
    enum key_kind kind;
    size_t offset;        /* of the field in struct config */
    long min, max;        /* K_INT range */
    const char *choices;  /* K_CHOICE: "a|b|c", stored as the index; ranges: an example */
    const char *fallback; /* default, parsed like a user's value */
};

#define F(field) offsetof(struct config, field)

/* Every key the appliance knows; configs/mitmtun.ini documents each. */
static const struct key config_keys[] = {
    {"tun", "name", K_IFNAME, F(tun.name), 0, 0, NULL, "mitm0"},
    {"tun", "address", K_CIDR4, F(tun.addr), 0, 0, NULL, "10.200.0.1/24"},
    {"tun", "address6", K_CIDR6, F(tun.addr6), 0, 0, NULL, ""},
    {"tun", "mtu", K_INT, F(tun.mtu), 1280, 65535, NULL, "1500"},
    {"tun", "steer", K_BOOL, F(tun.steer), 0, 0, NULL, "yes"},
    {"tun", "workers", K_INT, F(tun.workers), 0, WORKERS_MAX, NULL, "1"},
    {"routing", "mode", K_CHOICE, F(routing.mode), 0, 0, "none|gateway|device", "none"},
    {"routing", "lan_interface", K_IFNAME, F(routing.lan_interface), 0, 0, NULL, ""},
    {"routing", "table", K_INT, F(routing.table), 1, 252, NULL, "200"},
    {"routing", "mark", K_UINT32, F(routing.mark), 1, 0, NULL, "0x6d74"},
    {"routing", "uids", K_UIDS, F(routing.uids), 0, 4294967294L, "1000, 2000-2099", ""},
    {"tcp", "connect_timeout", K_INT, F(tcp.connect_timeout), 1, 600, NULL, "10"},
    {"tcp", "silent_client_timeout", K_INT, F(tcp.silent_client_timeout), 0, 86400, NULL, "120"},
    {"tcp", "client_keepalive", K_INT, F(tcp.client_keepalive), 0, 86400, NULL, "600"},
    {"udp", "idle_timeout", K_INT, F(udp.idle_timeout), 1, 86400, NULL, "60"},
    {"udp", "max_flows", K_INT, F(udp.max_flows), 1, 1000000, NULL, "4096"},
    {"udp", "relay_quic", K_BOOL, F(udp.relay_quic), 0, 0, NULL, "no"},
    {"icmp", "echo", K_CHOICE, F(icmp.echo), 0, 0, "relay|drop", "relay"},
    {"tls", "ca_dir", K_PATH, F(tls.ca_dir), 0, 0, NULL, "/var/lib/mitmtun/ca"},
    {"tls", "ports", K_PORTS, F(tls.ports), 1, 65535, "443, 8443, 9000-9100", "443, 8443"},
    {"tls", "upstream_ca_file", K_PATH, F(tls.upstream_ca_file), 0, 0, NULL, ""},
    {"tls", "upstream_verify", K_BOOL, F(tls.upstream_verify), 0, 0, NULL, "yes"},
    {"tls", "cache_size", K_INT, F(tls.cache_size), 1, 1000000, NULL, "1024"},
    {"tls", "keylog", K_PATH, F(tls.keylog), 0, 0, NULL, ""},
    {"tls", "auto_passthrough", K_BOOL, F(tls.auto_passthrough), 0, 0, NULL, "no"},
    {"tls", "auto_passthrough_seconds", K_INT, F(tls.auto_passthrough_seconds), 1, 2592000, NULL,
     "3600"},
    {"tls", "detect", K_BOOL, F(tls.detect), 0, 0, NULL, "yes"},
    {"tls", "http2", K_BOOL, F(tls.http2), 0, 0, NULL, "no"},
    {"tls", "ignore_hosts", K_HOSTS, F(tls.ignore_hosts), 0, 0, NULL, ""},
    {"proxy", "listen", K_LISTEN, F(proxy.listen), 0, 0, NULL, "tun:8080, lan:8080"},
    {"proxy", "auth", K_AUTH, F(proxy.auth), 0, 0, NULL, ""},
    {"proxy", "allow_local", K_BOOL, F(proxy.allow_local), 0, 0, NULL, "no"},
    {"proxy", "http_ports", K_PORTS, F(proxy.http_ports), 1, 65535, "80, 8080-8089", "80"},
    {"proxy", "detect", K_BOOL, F(proxy.detect), 0, 0, NULL, "yes"},
    {"proxy", "max_header_bytes", K_INT, F(proxy.max_header_bytes), 1024, 1048576, NULL, "65536"},
    {"proxy", "idle_timeout", K_INT, F(proxy.idle_timeout), 0, 86400, NULL, "120"},
    {"proxy", "upstream_reuse", K_INT, F(proxy.upstream_reuse), 0, 3600, NULL, "10"},
    {"proxy", "onboarding_host", K_HOSTNAME, F(proxy.onboarding_host), 0, 0, NULL, "mitm.it"},
    {"log", "level", K_CHOICE, F(log.level), 0, 0, "error|warn|info|debug", "info"},
    {"log", "flows", K_PATH, F(log.flows), 0, 0, NULL, "flows.jsonl"},
    {"log", "stats_interval", K_INT, F(log.stats_interval), 0, 86400, NULL, "60"},
    {"log", "body_max", K_INT, F(log.body_max), 0, 16777216, NULL, "0"},
    {"log", "body_decode", K_BOOL, F(log.body_decode), 0, 0, NULL, "no"},
};

/* List keys (ranges, listen entries) store their count right after their array (key_parse). */
#define COUNT_FOLLOWS(array, count)                                                                \
    _Static_assert(offsetof(struct config, count) ==                                               \
                       offsetof(struct config, array) + sizeof(((struct config *)0)->array),       \
                   #count " must follow " #array)
COUNT_FOLLOWS(routing.uids, routing.nuids);
COUNT_FOLLOWS(tls.ports, tls.nports);
COUNT_FOLLOWS(proxy.http_ports, proxy.nhttp_ports);
COUNT_FOLLOWS(proxy.listen, proxy.nlisten);

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

int config_parse_cidr(const char *text, int family, void *addr, int *prefix)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    int max = family == AF_INET ? 32 : 128;
    char *end;
    long len;

    if (!slash || (size_t)(slash - text) >= sizeof(buf) || slash == text)
        return -1;
    memcpy(buf, text, (size_t)(slash - text));
    buf[slash - text] = '\0';
    if (inet_pton(family, buf, addr) != 1)
        return -1;
    errno = 0;
    len = strtol(slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || len < 1 || len > max)
        return -1;
    *prefix = (int)len;
    return 0;
}

static int parse_ulong(const char **p, unsigned long *out)
{
    char *end;

    if (!isdigit((unsigned char)**p))
        return -1;
    errno = 0;
    *out = strtoul(*p, &end, 10);
    if (errno || *out > UINT32_MAX - 1)
        return -1;
    *p = end;
    return 0;
}

int config_parse_uids(const char *text, struct uid_range *out, int max)
{
    const char *p = text;
    int n = 0;

    while (*p) {
        unsigned long first, last;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (n == max || parse_ulong(&p, &first) < 0)
            return -1;
        last = first;
        if (*p == '-') {
            p++;
            if (parse_ulong(&p, &last) < 0 || last < first)
                return -1;
        }
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
        out[n].first = (uid_t)first;
        out[n].last = (uid_t)last;
        n++;
    }
    return n;
}

/* Index of value in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int i = 0;

    for (const char *c = choices; *c; i++) {
        size_t clen = strcspn(c, "|");
        if (clen == vlen && strncmp(c, value, clen) == 0)
            return i;
        c += clen;
        if (*c == '|')
            c++;
    }
    return -1;
}

/* One "tun:8080", "lan:8080", "10.0.0.1:8080" or "[fd00::1]:8080". */
static int listen_parse_one(const char *item, size_t len, struct listen_entry *e)
{
    char buf[80], *colon, *end;
    const char *host;
    unsigned long port;

    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, item, len);
    buf[len] = '\0';
    colon = strrchr(buf, ':');
    if (!colon || colon == buf)
        return -1;
    *colon = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
        return -1;
    e->port = (uint16_t)port;
    host = buf;
    memset(e->addr, 0, sizeof(e->addr));
    if (strcmp(host, "tun") == 0) {
        e->kind = LISTEN_TUN;
        return 0;
    }
    if (strcmp(host, "lan") == 0) {
        e->kind = LISTEN_LAN;
        return 0;
    }
    e->kind = LISTEN_ADDR;
    if (host[0] == '[' && colon[-1] == ']') {
        colon[-1] = '\0';
        e->family = AF_INET6;
        return inet_pton(AF_INET6, host + 1, e->addr) == 1 ? 0 : -1;
    }
    e->family = AF_INET;
    return inet_pton(AF_INET, host, e->addr) == 1 ? 0 : -1;
}

/* A comma-separated list of listen entries; "" or "off" for none. Returns the count or -1. */
static int listen_parse(const char *text, struct listen_entry *out, int max)
{
    const char *p = text;
    int n = 0;

    if (strcmp(text, "off") == 0)
        return 0;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        if (n == max || listen_parse_one(p, len, &out[n]) < 0)
            return -1;
        n++;
        p += len;
    }
    return n;
}

/* Parses value into cfg for key k; on error writes what was expected into why. */
static int key_parse(const struct key *k, const char *value, struct config *cfg, char *why,
                     size_t whylen)
{
    char *field = (char *)cfg + k->offset;
    char *end;
    long l;
    unsigned long ul;
    int b;

    switch (k->kind) {
    case K_INT:
        errno = 0;
        l = strtol(value, &end, 10);
        if (errno || end == value || *end || l < k->min || l > k->max) {
            snprintf(why, whylen, "expected a whole number from %ld to %ld", k->min, k->max);
            return -1;
        }
        *(int *)field = (int)l;
        return 0;
    case K_UINT32:
        errno = 0;
        ul = strtoul(value, &end, 0);
        if (errno || end == value || *end || value[0] == '-' || ul < (unsigned long)k->min ||
            ul > UINT32_MAX) {
            snprintf(why, whylen, "expected a number from %ld to 4294967295 (0x prefix for hex)",
                     k->min);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)ul;
        return 0;
    case K_BOOL:
        if (choice_index("yes|true|on|1", value) >= 0)
            b = 1;
        else if (choice_index("no|false|off|0", value) >= 0)
            b = 0;
        else {
            snprintf(why, whylen, "expected yes or no");
            return -1;
        }
        *(int *)field = b;
        return 0;
    case K_IFNAME:
        if (strlen(value) >= 16 || strpbrk(value, " /:\t")) {
            snprintf(why, whylen, "expected an interface name of at most 15 characters");
            return -1;
        }
        strcpy(field, value);
        return 0;
    case K_PATH:
        if (strlen(value) >= CONFIG_PATH_MAX) {
            snprintf(why, whylen, "expected a path shorter than %d characters", CONFIG_PATH_MAX);
            return -1;
        }
        strcpy(field, value);
        return 0;
    case K_CIDR4:
        if (config_parse_cidr(value, AF_INET, field, (int *)(field + sizeof(struct in_addr))) < 0) {
            snprintf(why, whylen,
                     "expected an IPv4 address with prefix length, like 10.200.0.1/24");
            return -1;
        }
        return 0;
    case K_CIDR6:
        if (!*value) {
            *(int *)(field + sizeof(struct in6_addr)) = 0;
            return 0;
        }
        if (config_parse_cidr(value, AF_INET6, field, (int *)(field + sizeof(struct in6_addr))) <
            0) {
            snprintf(why, whylen,
                     "expected an IPv6 address with prefix length, like fd00:6d74::1/64");
            return -1;
        }
        return 0;
    case K_UIDS:
    case K_PORTS:
        /* The range array, then its count (struct config keeps them side by side). */
        l = config_parse_uids(value, (struct uid_range *)field, CONFIG_MAX_UID_RANGES);
        for (long i = 0; i < l; i++)
            if (((struct uid_range *)field)[i].first < (uid_t)k->min ||
                ((struct uid_range *)field)[i].last > (uid_t)k->max)
                l = -1;
        if (l < 0) {
            snprintf(why, whylen,
                     "expected a list of numbers or ranges from %ld to %ld, like %s "
                     "(at most %d)",
                     k->min, k->max, k->choices, CONFIG_MAX_UID_RANGES);
            return -1;
        }
        *(int *)(field + sizeof(struct uid_range) * CONFIG_MAX_UID_RANGES) = (int)l;
        return 0;
    case K_HOSTS:
        if (strlen(value) >= CONFIG_PATH_MAX || hostmatch_check(value, why, whylen) < 0) {
            if (strlen(value) >= CONFIG_PATH_MAX)
                snprintf(why, whylen, "longer than %d characters", CONFIG_PATH_MAX - 1);
            return -1;
        }
        strcpy(field, value);
        return 0;
    case K_LISTEN:
        l = listen_parse(value, (struct listen_entry *)field, CONFIG_MAX_LISTEN);
        if (l < 0) {
            snprintf(why, whylen,
                     "expected a list of address:port, [IPv6]:port, tun:port or lan:port "
                     "(at most %d), or off",
                     CONFIG_MAX_LISTEN);
            return -1;
        }
        *(int *)(field + sizeof(struct listen_entry) * CONFIG_MAX_LISTEN) = (int)l;
        return 0;
    case K_AUTH:
        if (*value && (!strchr(value, ':') || strlen(value) >= 256 || value[0] == ':')) {
            snprintf(why, whylen, "expected user:password (or nothing, for no authentication)");
            return -1;
        }
        strcpy(field, value);
        return 0;
    case K_HOSTNAME:
        if (strlen(value) >= 256 ||
            strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(value)) {
            snprintf(why, whylen, "expected a lower-case host name, like mitm.it (or nothing)");
            return -1;
        }
        strcpy(field, value);
        return 0;
    case K_CHOICE:
        b = choice_index(k->choices, value);
        if (b < 0) {
            snprintf(why, whylen, "expected one of %s", k->choices);
            return -1;
        }
        *(int *)field = b;
        return 0;
    }
    return -1;
}

static const struct key *key_find(const char *section, size_t seclen, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(config_keys[i].section) == seclen &&
            strncmp(config_keys[i].section, section, seclen) == 0 &&
            strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* iniparser reports syntax errors through a callback; keep the first for our message. */
static char ini_syntax_error[256];

static int ini_error(const char *fmt, ...)
{
    va_list ap;

    if (ini_syntax_error[0])
        return 0;
    va_start(ap, fmt);
    vsnprintf(ini_syntax_error, sizeof(ini_syntax_error), fmt, ap);
    va_end(ap);
    ini_syntax_error[strcspn(ini_syntax_error, "\n")] = ' ';
    return 0;
}

/* Every key in the file must be one we know: a typo must not silently become a default. */
static int check_unknown_keys(dictionary *d, const char *path, char *err, size_t errlen)
{
    int nsec = iniparser_getnsec(d);

    for (int s = 0; s < nsec; s++) {
        const char *sec = iniparser_getsecname(d, s);
        int nkeys = iniparser_getsecnkeys(d, sec);
        const char **keys;
        int known_section = 0;

        for (size_t i = 0; i < NKEYS; i++)
            known_section |= strcmp(config_keys[i].section, sec) == 0;
        if (!known_section)
            return fail(err, errlen,
                        "%s: [%s]: unknown section (known: tun, routing, tcp, udp, proxy, "
                        "icmp, tls, log)",
                        path, sec);
        if (nkeys <= 0)
            continue;
        keys = calloc((size_t)nkeys, sizeof(*keys));
        if (!keys)
            return fail(err, errlen, "out of memory");
        iniparser_getseckeys(d, sec, keys);
        for (int i = 0; i < nkeys; i++) {
            const char *name = keys[i] + strlen(sec) + 1;
            if (!key_find(sec, strlen(sec), name)) {
                fail(err, errlen, "%s: [%s] %s: unknown key", path, sec, name);
                free(keys);
                return -1;
            }
        }
        free(keys);
    }
    return 0;
}

/* Applies "section.key=value" overrides; they must name known keys. */
static int apply_sets(dictionary *d, char *const *sets, int nsets, char *err, size_t errlen)
{
    for (int i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        const char *dot = strchr(sets[i], '.');
        char entry[128];
        int seclen, keylen;

        if (!eq || !dot || dot > eq || eq - sets[i] >= 64)
            return fail(err, errlen, "--set %s: expected section.key=value", sets[i]);
        seclen = (int)(dot - sets[i]);
        keylen = (int)(eq - dot - 1);
        snprintf(entry, sizeof(entry), "%.*s", keylen, dot + 1);
        if (!key_find(sets[i], (size_t)seclen, entry))
            return fail(err, errlen, "--set %.*s: unknown key", (int)(eq - sets[i]), sets[i]);
        snprintf(entry, sizeof(entry), "%.*s", seclen, sets[i]);
        if (!iniparser_find_entry(d, entry))
            iniparser_set(d, entry, NULL);
        snprintf(entry, sizeof(entry), "%.*s:%.*s", seclen, sets[i], keylen, dot + 1);
        if (iniparser_set(d, entry, eq + 1) != 0)
            return fail(err, errlen, "--set %s: cannot store the value", sets[i]);
    }
    return 0;
}

/* Rules that tie keys together. */
static int check_consistency(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->routing.mode == ROUTING_GATEWAY && !cfg->routing.lan_interface[0])
        return fail(err, errlen,
                    "%s: [routing] lan_interface: required with mode = gateway "
                    "(the interface the clients are on, e.g. wlan0)",
                    cfg->path);
    if (cfg->routing.mode == ROUTING_GATEWAY &&
        strcmp(cfg->routing.lan_interface, cfg->tun.name) == 0)
        return fail(err, errlen, "%s: [routing] lan_interface: '%s' is the TUN device itself",
                    cfg->path, cfg->routing.lan_interface);
    if (cfg->routing.nuids > 0 && cfg->routing.mode != ROUTING_DEVICE)
        return fail(err, errlen, "%s: [routing] uids: only used with mode = device", cfg->path);
    return 0;
}

int config_load(struct config *cfg, const char *path, char *const *sets, int nsets, char *err,
                size_t errlen)
{
    dictionary *d;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);

    ini_syntax_error[0] = '\0';
    iniparser_set_error_callback(ini_error);
    d = iniparser_load(path);
    if (!d) {
        FILE *f = fopen(path, "r");
        if (!f)
            return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return fail(err, errlen, "%s: not a valid INI file: %s", path,
                    ini_syntax_error[0] ? ini_syntax_error : "parse error");
    }
    if (ini_syntax_error[0]) {
        fail(err, errlen, "%s: %s", path, ini_syntax_error);
        goto out;
    }
    if (check_unknown_keys(d, path, err, errlen) < 0 || apply_sets(d, sets, nsets, err, errlen) < 0)
        goto out;

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &config_keys[i];
        char entry[64], why[160];
        const char *value;

        snprintf(entry, sizeof(entry), "%s:%s", k->section, k->name);
        value = iniparser_getstring(d, entry, NULL);
        if (key_parse(k, value ? value : k->fallback, cfg, why, sizeof(why)) < 0) {
            fail(err, errlen, "%s: [%s] %s: '%s': %s", path, k->section, k->name,
                 value ? value : k->fallback, why);
            goto out;
        }
    }
    rc = check_consistency(cfg, err, errlen);
out:
    iniparser_freedict(d);
    return rc;
}
