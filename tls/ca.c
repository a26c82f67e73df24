#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS (10 * 365 + 3)

struct ca {
    EVP_PKEY *key;
    X509 *cert;
};

static int ca_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ca_fail(char *err, size_t errlen, const char *fmt, ...)
{
    char ssl[160] = "";
    unsigned long e = ERR_peek_last_error();
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (e) {
        ERR_error_string_n(e, ssl, sizeof(ssl));
        n = strlen(err);
        snprintf(err + n, errlen > n ? errlen - n : 0, " (%s)", ssl);
    }
    ERR_clear_error();
    return -1;
}

int ca_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A new self-signed CA: EC P-256 (one cheap signature per forged leaf), ten years. */
static int ca_generate(struct ca *ca)
{
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    X509_NAME *name;
    int rc = -1;

    ca->key = EVP_EC_gen("P-256");
    ca->cert = X509_new();
    if (!ca->key || !ca->cert || RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(ca->cert)))
        goto out;
    X509_set_version(ca->cert, X509_VERSION_3);
    X509_gmtime_adj(X509_getm_notBefore(ca->cert), -24 * 3600);
    X509_gmtime_adj(X509_getm_notAfter(ca->cert), (long)CA_DAYS * 24 * 3600);
    name = X509_get_subject_name(ca->cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"mitmtun", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)"mitmtun interception CA", -1, -1, 0);
    X509_set_issuer_name(ca->cert, name);
    X509_set_pubkey(ca->cert, ca->key);
    if (ca_add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        ca_add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        ca_add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0)
        goto out;
    rc = 0;
out:
    BN_free(bn);
    return rc;
}

/* Writes PEM through write_pem into path, created with mode. */
static int write_file(const char *path, mode_t mode, int (*write_pem)(BIO *, const void *),
                      const void *obj)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    BIO *bio;
    int ok;

    if (fd < 0)
        return -1;
    fchmod(fd, mode);
    bio = BIO_new_fd(fd, BIO_CLOSE);
    if (!bio) {
        close(fd);
        return -1;
    }
    ok = write_pem(bio, obj) && BIO_flush(bio) == 1;
    BIO_free(bio);
    return ok ? 0 : -1;
}

static int pem_key(BIO *bio, const void *key)
{
    return PEM_write_bio_PrivateKey(bio, (EVP_PKEY *)key, NULL, NULL, 0, NULL, NULL);
}

static int pem_cert(BIO *bio, const void *cert)
{
    return PEM_write_bio_X509(bio, (X509 *)cert);
}

static int der_cert(BIO *bio, const void *cert)
{
    return i2d_X509_bio(bio, (X509 *)cert);
}

static int p12_cert(BIO *bio, const void *cert)
{
    /* Certificate only, no key; no encryption, an empty password for the MAC. */
    PKCS12 *p12 = PKCS12_create("", "mitmtun interception CA", NULL, (X509 *)cert, NULL, 0, -1, 0,
                                PKCS12_DEFAULT_ITER, 0);
    int ok = p12 && i2d_PKCS12_bio(bio, p12);

    PKCS12_free(p12);
    return ok;
}

/* mkdir -p: parents with 0755, dir itself with mode. */
static int make_dirs(const char *dir, mode_t mode)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* Loads and checks an existing pair. */
static int ca_load(struct ca *ca, const char *keypath, const char *certpath, char *err,
                   size_t errlen)
{
    FILE *f;
    BASIC_CONSTRAINTS *bc;
    int is_ca;

    f = fopen(certpath, "r");
    if (!f)
        return ca_fail(err, errlen, "%s: cannot open: %s", certpath, strerror(errno));
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->cert)
        return ca_fail(err, errlen, "%s: not a PEM certificate", certpath);
    f = fopen(keypath, "r");
    if (!f)
        return ca_fail(err, errlen, "%s: cannot open: %s", keypath, strerror(errno));
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->key)
        return ca_fail(err, errlen, "%s: not a PEM private key (or it is encrypted)", keypath);
    if (X509_check_private_key(ca->cert, ca->key) != 1)
        return ca_fail(err, errlen, "%s does not belong to %s: remove both to make a new CA",
                       keypath, certpath);
    bc = X509_get_ext_d2i(ca->cert, NID_basic_constraints, NULL, NULL);
    is_ca = bc && bc->ca;
    BASIC_CONSTRAINTS_free(bc);
    if (!is_ca)
        return ca_fail(err, errlen, "%s: not a CA certificate (basicConstraints CA:TRUE missing)",
                       certpath);
    if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0)
        return ca_fail(err, errlen, "%s: expired: remove it and ca.key to make a new CA", certpath);
    return 0;
}

struct ca *ca_open(const char *dir, int *created, char *err, size_t errlen)
{
    char keypath[1024], certpath[1024];
    struct ca *ca = calloc(1, sizeof(*ca));
    int have_key, have_cert;

    *created = 0;
    if (!ca) {
        ca_fail(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(keypath, sizeof(keypath), "%s/ca.key", dir);
    snprintf(certpath, sizeof(certpath), "%s/ca.crt", dir);
    have_key = access(keypath, F_OK) == 0;
    have_cert = access(certpath, F_OK) == 0;
    if (have_key && have_cert) {
        if (ca_load(ca, keypath, certpath, err, errlen) < 0)
            goto fail;
        return ca;
    }
    if (have_key || have_cert) {
        ca_fail(err, errlen, "%s: has %s but not %s: restore it, or remove both to make a new CA",
                dir, have_key ? "ca.key" : "ca.crt", have_key ? "ca.crt" : "ca.key");
        goto fail;
    }
    if (make_dirs(dir, 0700) < 0) {
        ca_fail(err, errlen, "%s: cannot create the CA directory: %s", dir, strerror(errno));
        goto fail;
    }
    if (ca_generate(ca) < 0) {
        ca_fail(err, errlen, "generating the CA");
        goto fail;
    }
    if (write_file(keypath, 0600, pem_key, ca->key) < 0 ||
        write_file(certpath, 0644, pem_cert, ca->cert) < 0) {
        ca_fail(err, errlen, "%s: cannot write the new CA: %s", dir, strerror(errno));
        unlink(keypath);
        unlink(certpath);
        goto fail;
    }
    *created = 1;
    return ca;

fail:
    ca_free(ca);
    return NULL;
}

void ca_free(struct ca *ca)
{
    if (!ca)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca);
}

const char *ca_fingerprint(const struct ca *ca, char *buf, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t pos = 0;

    buf[0] = '\0';
    X509_digest(ca->cert, EVP_sha256(), md, &n);
    for (unsigned int i = 0; i < n && pos + 3 < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, i ? ":%02X" : "%02X", md[i]);
    return buf;
}

static const char export_readme[] =
    "mitmtun interception CA: which file goes where\n"
    "\n"
    "Install the CA only on devices you are testing: whoever holds ca.key can read\n"
    "their TLS traffic.\n"
    "\n"
    "mitmtun-ca.pem   PEM. Linux (copy to /usr/local/share/ca-certificates/mitmtun-ca.crt,\n"
    "                 then update-ca-certificates), Firefox (Settings > Privacy & Security >\n"
    "                 Certificates > View Certificates > Authorities > Import), curl --cacert.\n"
    "mitmtun-ca.crt   DER. Android (Settings > Security > Encryption & credentials > Install a\n"
    "mitmtun-ca.cer   certificate > CA certificate), Windows (double-click > Install Certificate\n"
    "                 > Local Machine > Trusted Root Certification Authorities).\n"
    "mitmtun-ca.p12   PKCS#12, certificate only, empty password. iOS (AirDrop or mail it,\n"
    "                 install the profile, then Settings > General > About > Certificate Trust\n"
    "                 Settings > enable full trust), macOS (Keychain Access > System > import,\n"
    "                 then set \"Always Trust\").\n"
    "%s       Android system store (rooted devices or emulators): apps trust only the\n"
    "                 system store by default since Android 7, and the user store from the\n"
    "                 Android installer above is then honoured only by apps that opt in.\n"
    "                 Android 7 to 13: copy to /system/etc/security/cacerts/ (mode 644).\n"
    "                 Android 14+: the store lives in the Conscrypt APEX\n"
    "                 (/apex/com.android.conscrypt/cacerts); mount a tmpfs copy of that directory\n"
    "                 with this file added over it in every app's mount namespace.\n";

int ca_export(const struct ca *ca, const char *dir, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int (*write)(BIO *, const void *);
    } forms[] = {
        {"mitmtun-ca.pem", pem_cert},
        {"mitmtun-ca.crt", der_cert},
        {"mitmtun-ca.cer", der_cert},
        {"mitmtun-ca.p12", p12_cert},
    };
    char path[1024], hashname[16];
    FILE *f;
    int failed;

    if (make_dirs(dir, 0755) < 0)
        return ca_fail(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, forms[i].name);
        if (write_file(path, 0644, forms[i].write, ca->cert) < 0)
            return ca_fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    }
    snprintf(hashname, sizeof(hashname), "%08lx.0", X509_subject_name_hash_old(ca->cert));
    snprintf(path, sizeof(path), "%s/%s", dir, hashname);
    if (write_file(path, 0644, pem_cert, ca->cert) < 0)
        return ca_fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s/README.txt", dir);
    f = fopen(path, "w");
    if (!f)
        return ca_fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    failed = fprintf(f, export_readme, hashname) < 0;
    if (fclose(f) != 0 || failed)
        return ca_fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

int ca_blob(const struct ca *ca, enum ca_form form, char **data, size_t *len, char *name,
            size_t namelen)
{
    static int (*const writers[])(BIO *, const void *) = {pem_cert, der_cert, p12_cert, pem_cert};
    static const char *const names[] = {"mitmtun-ca.pem", "mitmtun-ca.cer", "mitmtun-ca.p12"};
    BIO *bio = BIO_new(BIO_s_mem());
    char *mem;
    long n;

    *data = NULL;
    if (!bio || !writers[form](bio, ca->cert) || (n = BIO_get_mem_data(bio, &mem)) <= 0 ||
        !(*data = malloc((size_t)n))) {
        BIO_free(bio);
        ERR_clear_error();
        return -1;
    }
    memcpy(*data, mem, (size_t)n);
    *len = (size_t)n;
    BIO_free(bio);
    if (form == CA_FORM_ANDROID)
        snprintf(name, namelen, "%08lx.0", X509_subject_name_hash_old(ca->cert));
    else
        snprintf(name, namelen, "%s", names[form]);
    return 0;
}

EVP_PKEY *ca_key(const struct ca *ca)
{
    return ca->key;
}

X509 *ca_cert(const struct ca *ca)
{
    return ca->cert;
}
