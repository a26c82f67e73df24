#include "hostmatch.h"

#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The next entry of a comma-separated list, trimmed, into buf; returns the rest or NULL. */
static const char *next_entry(const char *p, char *buf, size_t len)
{
    size_t n;

    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    if (!*p)
        return NULL;
    n = strcspn(p, ",");
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
    p += strcspn(p, ",");
    return p;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)bytes) != 0)
        return 0;
    return rest == 0 || ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return 0;
    return 1;
}

int hostmatch_check(const char *list, char *err, size_t errlen)
{
    char entry[300];
    uint8_t addr[16];
    int prefix;

    while ((list = next_entry(list, entry, sizeof(entry))) != NULL) {
        if (strchr(entry, '/')) {
            if (config_parse_cidr(entry, strchr(entry, ':') ? AF_INET6 : AF_INET, addr, &prefix) ==
                0)
                continue;
        } else if (valid_name(strncmp(entry, "*.", 2) == 0 ? entry + 2 : entry)) {
            continue;
        }
        snprintf(err, errlen,
                 "'%s' is neither a host name, a *.domain pattern nor an address/prefix", entry);
        return -1;
    }
    return 0;
}

int hostmatch(const char *list, const char *name, int family, const uint8_t *addr)
{
    char entry[300];
    uint8_t net[16];
    size_t nlen = strlen(name);
    int prefix, index = 0;

    for (; (list = next_entry(list, entry, sizeof(entry))) != NULL; index++) {
        if (strchr(entry, '/')) {
            int efamily = strchr(entry, ':') ? AF_INET6 : AF_INET;
            if (efamily == family && config_parse_cidr(entry, efamily, net, &prefix) == 0 &&
                prefix_match(net, addr, prefix))
                return index;
        } else if (strncmp(entry, "*.", 2) == 0) {
            size_t slen = strlen(entry + 1); /* ".bank.example" */
            if (nlen > slen && strcasecmp(name + nlen - slen, entry + 1) == 0)
                return index;
        } else if (nlen && strcasecmp(name, entry) == 0) {
            return index;
        }
    }
    return -1;
}

int hostmatch_is_address(const char *s)
{
    uint8_t buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}
