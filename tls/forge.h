/*
 * Forged leaf certificates: for an upstream server's certificate, a leaf with the same subject
 * CN and every SAN (DNS names and IP addresses), plus the client's SNI when it is missing,
 * signed by our CA, in the form Chromium, Firefox, curl and Android accept (SAN always present,
 * extendedKeyUsage serverAuth, at most 397 days, random serial, SHA-256, AKI/SKI). One leaf key
 * pair serves every forged leaf, so a cache miss costs one signature; forged leaves are kept,
 * parsed, in an LRU cache keyed by the upstream certificate and the SNI.
 */
#ifndef MITMTUN_FORGE_H
#define MITMTUN_FORGE_H

#include "ca.h"

#include <stddef.h>
#include <stdint.h>

struct forge;

struct forge_stats {
    uint64_t hits, misses, evictions;
};

/* cache_size: forged leaves kept (at least 1). The CA must outlive the forge. */
struct forge *forge_new(const struct ca *ca, int cache_size, char *err, size_t errlen);
void forge_free(struct forge *f);

/*
 * The leaf for upstream (an X509 *) as seen under sni (NULL or "" without SNI). Returns a new
 * reference the caller frees with X509_free, or NULL if OpenSSL fails.
 */
struct x509_st *forge_leaf(struct forge *f, struct x509_st *upstream, const char *sni);

/* The private key of every forged leaf. */
struct evp_pkey_st *forge_key(const struct forge *f);

void forge_get_stats(const struct forge *f, struct forge_stats *out);

#endif
