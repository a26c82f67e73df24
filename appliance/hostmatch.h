/*
 * Host patterns, as [tls] ignore_hosts lists them: "*.bank.example" (any name below
 * bank.example), "pay.example" (that name), "10.0.0.0/8" or "2001:db8::/32" (the destination
 * address). Names compare case-insensitively.
 */
#ifndef MITMTUN_HOSTMATCH_H
#define MITMTUN_HOSTMATCH_H

#include <stddef.h>
#include <stdint.h>

/* Checks a comma-separated list; returns 0, or -1 with the bad entry named in err. */
int hostmatch_check(const char *list, char *err, size_t errlen);

/*
 * Does name (may be "") or the address (family AF_INET/AF_INET6, network order) match an entry
 * of list? Returns the matching entry's index, or -1.
 */
int hostmatch(const char *list, const char *name, int family, const uint8_t *addr);

/* Whether s is an IPv4 or IPv6 address literal (not a name). */
int hostmatch_is_address(const char *s);

#endif
