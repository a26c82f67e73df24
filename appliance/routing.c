#include "routing.h"

#include "command.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#define RULE_PRIO_BASE 5000

/* Our three rule priorities: keep-specific-routes, marked sockets, into the TUN. */
static int prio_first(const struct config *cfg)
{
    return RULE_PRIO_BASE + 3 * cfg->routing.table;
}

/* Runs "ip FAMILY args..." and logs a failure with the whole command. */
static int ip(const char *family, const char *const args[], int quiet)
{
    const char *argv[24] = {"ip", family};
    char line[256];
    int i, rc;

    for (i = 0; args[i] && i < 21; i++)
        argv[i + 2] = args[i];
    argv[i + 2] = NULL;
    rc = command_run(argv, quiet);
    if (rc != 0 && !quiet)
        log_error("routing: '%s' failed (%s)", command_str(argv, line, sizeof(line)),
                  rc < 0 ? "cannot run ip: is iproute2 installed?" : "see its message above");
    return rc == 0 ? 0 : -1;
}

static int sysctl_read(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");

    if (!f)
        return -1;
    if (!fgets(buf, (int)len, f))
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
    return 0;
}

static int sysctl_write(const char *path, const char *value)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (!f) {
        log_errno(LOG_WARN, "routing: cannot write %s", path);
        return -1;
    }
    rc = fputs(value, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Deletes every rule and route a previous run may have left; failures are expected. */
static void routing_clean(const struct config *cfg)
{
    static const char *const families[] = {"-4", "-6"};
    char prio[3][16], table[16];

    for (int p = 0; p < 3; p++)
        snprintf(prio[p], sizeof(prio[p]), "%d", prio_first(cfg) + p);
    snprintf(table, sizeof(table), "%d", cfg->routing.table);
    for (int f = 0; f < 2; f++) {
        for (int p = 0; p < 3; p++)
            for (int n = 0; n < 32; n++) {
                const char *del[] = {"rule", "del", "priority", prio[p], NULL};
                if (ip(families[f], del, 1) < 0)
                    break;
            }
        const char *flush[] = {"route", "flush", "table", table, NULL};
        ip(families[f], flush, 1);
    }
}

static int routing_family(const struct config *cfg, const char *family)
{
    char prio[3][16], table[16], mark[16], uids[32];
    const char *tun = cfg->tun.name;

    for (int p = 0; p < 3; p++)
        snprintf(prio[p], sizeof(prio[p]), "%d", prio_first(cfg) + p);
    snprintf(table, sizeof(table), "%d", cfg->routing.table);
    snprintf(mark, sizeof(mark), "0x%x", cfg->routing.mark);

    const char *route[] = {"route", "replace", "default", "dev", tun, "table", table, NULL};
    if (ip(family, route, 0) < 0)
        return -1;
    if (cfg->routing.mode == ROUTING_GATEWAY) {
        const char *rule[] = {"rule",   "add", "priority",
                              prio[2],  "iif", cfg->routing.lan_interface,
                              "lookup", table, NULL};
        return ip(family, rule, 0);
    }
    /* device: more specific routes of the main table (LAN, loopback) win over our default. */
    const char *keep[] = {
        "rule", "add", "priority", prio[0], "lookup", "main", "suppress_prefixlength", "0", NULL};
    if (ip(family, keep, 0) < 0)
        return -1;
    /* The appliance's own sockets never enter the TUN. One "not fwmark M uidrange U" rule would
     * not do: "not" negates the whole selector, uid range included. */
    const char *own[] = {"rule", "add",    "priority", prio[1], "fwmark",
                         mark,   "lookup", "main",     NULL};
    if (ip(family, own, 0) < 0)
        return -1;
    for (int i = 0; i < (cfg->routing.nuids ? cfg->routing.nuids : 1); i++) {
        const char *rule[] = {"rule", "add", "priority", prio[2], "lookup",
                              table,  NULL,  NULL,       NULL};
        if (cfg->routing.nuids) {
            snprintf(uids, sizeof(uids), "%u-%u", (unsigned)cfg->routing.uids[i].first,
                     (unsigned)cfg->routing.uids[i].last);
            rule[6] = "uidrange";
            rule[7] = uids;
        }
        if (ip(family, rule, 0) < 0)
            return -1;
    }
    return 0;
}

static void forwarding_on(const char *path, char *saved, size_t len)
{
    if (sysctl_read(path, saved, len) < 0) {
        saved[0] = '\0';
        return;
    }
    if (strcmp(saved, "1") == 0) {
        saved[0] = '\0';
        return;
    }
    if (sysctl_write(path, "1") == 0)
        log_info("routing: enabled forwarding (%s) while running", path);
    else
        saved[0] = '\0';
}

int routing_setup(struct routing *r, const struct config *cfg)
{
    char path[128];

    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    /* Replies leave the TUN with the servers' addresses as source: a strict reverse-path
     * filter would drop them. Loose mode keeps spoofed sources out. */
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/rp_filter", cfg->tun.name);
    sysctl_write(path, "2");
    if (cfg->routing.mode == ROUTING_NONE)
        return 0;

    routing_clean(cfg);
    r->installed = 1;
    if (routing_family(cfg, "-4") < 0)
        goto fail;
    if (routing_family(cfg, "-6") < 0) {
        if (cfg->tun.prefix6 > 0)
            goto fail;
        log_warn("routing: IPv6 routing not installed (is IPv6 disabled?); IPv4 only");
    }
    if (cfg->routing.mode == ROUTING_GATEWAY) {
        forwarding_on("/proc/sys/net/ipv4/ip_forward", r->forward4, sizeof(r->forward4));
        forwarding_on("/proc/sys/net/ipv6/conf/all/forwarding", r->forward6, sizeof(r->forward6));
    }
    log_info("routing: %s mode installed (table %d, rule priorities %d-%d)",
             cfg->routing.mode == ROUTING_GATEWAY ? "gateway" : "device", cfg->routing.table,
             prio_first(cfg), prio_first(cfg) + 2);
    return 0;

fail:
    routing_teardown(r);
    return -1;
}

void routing_teardown(struct routing *r)
{
    if (!r->installed)
        return;
    routing_clean(r->cfg);
    if (r->forward4[0])
        sysctl_write("/proc/sys/net/ipv4/ip_forward", r->forward4);
    if (r->forward6[0])
        sysctl_write("/proc/sys/net/ipv6/conf/all/forwarding", r->forward6);
    r->installed = 0;
}
