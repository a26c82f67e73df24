/*
 * Our certificate authority: the key and certificate that sign every forged leaf, kept in
 * [tls] ca_dir as ca.key (PEM, mode 0600) and ca.crt (PEM). Generated on first start; an
 * existing pair is loaded and checked (a bad or mismatched one is refused). OpenSSL stays
 * behind this header.
 */
#ifndef MITMTUN_CA_H
#define MITMTUN_CA_H

#include <stddef.h>

struct ca;

/*
 * Loads the CA from dir, or creates dir (mode 0700) and a new CA in it when it holds neither
 * file. *created tells which. Returns NULL with a message naming the file and the problem.
 */
struct ca *ca_open(const char *dir, int *created, char *err, size_t errlen);
void ca_free(struct ca *ca);

/* The CA certificate's SHA-256 fingerprint as "AB:CD:...", for log lines. */
const char *ca_fingerprint(const struct ca *ca, char *buf, size_t len);

/*
 * Writes the CA certificate into dir (created if missing) in every form a device's installer
 * takes: mitmtun-ca.pem (PEM), mitmtun-ca.crt and mitmtun-ca.cer (DER), mitmtun-ca.p12
 * (PKCS#12 without key), <subject_hash_old>.0 (Android system store), and README.txt saying
 * which goes where. Returns 0, or -1 with a message.
 */
int ca_export(const struct ca *ca, const char *dir, char *err, size_t errlen);

enum ca_form {
    CA_FORM_PEM,     /* mitmtun-ca.pem */
    CA_FORM_DER,     /* mitmtun-ca.cer */
    CA_FORM_P12,     /* mitmtun-ca.p12, certificate only */
    CA_FORM_ANDROID, /* <subject_hash_old>.0, PEM */
};

/* The CA certificate in one form, in memory (malloc'd *data, the caller's) with the file name
 * it goes by. Returns 0 or -1. */
int ca_blob(const struct ca *ca, enum ca_form form, char **data, size_t *len, char *name,
            size_t namelen);

/* For tls/ only: the CA's parsed key and certificate (OpenSSL's EVP_PKEY and X509). */
struct evp_pkey_st;
struct x509_st;
struct evp_pkey_st *ca_key(const struct ca *ca);
struct x509_st *ca_cert(const struct ca *ca);
/* Adds an X509v3 extension given in OpenSSL's configuration syntax ("critical,CA:TRUE"). */
int ca_add_ext(struct x509_st *cert, struct x509_st *issuer, int nid, const char *value);

#endif
