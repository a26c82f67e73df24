#include "forge.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LEAF_DAYS     365 /* under the 397 days browsers accept */
#define FORGE_BUCKETS 1024

/* One cached leaf; the key is SHA-256 over the upstream certificate's DER and the SNI. */
struct forged {
    unsigned char key[32];
    X509 *leaf;
    struct forged *hnext;       /* hash chain */
    struct forged *prev, *next; /* LRU list, most recent first */
};

struct forge {
    const struct ca *ca;
    EVP_PKEY *key; /* shared by every forged leaf */
    int capacity, count;
    struct forged *buckets[FORGE_BUCKETS];
    struct forged *newest, *oldest;
    struct forge_stats stats;
};

struct forge *forge_new(const struct ca *ca, int cache_size, char *err, size_t errlen)
{
    struct forge *f = calloc(1, sizeof(*f));

    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->ca = ca;
    f->capacity = cache_size > 0 ? cache_size : 1;
    f->key = EVP_EC_gen("P-256");
    if (!f->key) {
        snprintf(err, errlen, "cannot generate the leaf key");
        free(f);
        return NULL;
    }
    return f;
}

static void lru_unlink(struct forge *f, struct forged *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        f->newest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        f->oldest = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct forge *f, struct forged *e)
{
    e->next = f->newest;
    if (f->newest)
        f->newest->prev = e;
    f->newest = e;
    if (!f->oldest)
        f->oldest = e;
}

static struct forged **bucket_of(struct forge *f, const unsigned char *key)
{
    unsigned b = ((unsigned)key[0] << 8 | key[1]) % FORGE_BUCKETS;

    return &f->buckets[b];
}

static void evict_oldest(struct forge *f)
{
    struct forged *e = f->oldest, **pp;

    lru_unlink(f, e);
    for (pp = bucket_of(f, e->key); *pp != e; pp = &(*pp)->hnext)
        ;
    *pp = e->hnext;
    X509_free(e->leaf);
    free(e);
    f->count--;
    f->stats.evictions++;
}

void forge_free(struct forge *f)
{
    if (!f)
        return;
    while (f->oldest)
        evict_oldest(f);
    EVP_PKEY_free(f->key);
    free(f);
}

static int cache_key(X509 *upstream, const char *sni, unsigned char *key)
{
    unsigned char *der = NULL;
    int len = i2d_X509(upstream, &der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = len > 0 && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, der, (size_t)len) && EVP_DigestUpdate(md, sni, strlen(sni) + 1) &&
             EVP_DigestFinal_ex(md, key, NULL);

    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

/* Does names hold a DNS entry equal (case-insensitively) to name? */
static int has_dns(const GENERAL_NAMES *names, const char *name)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS && (size_t)ASN1_STRING_length(gn->d.dNSName) == strlen(name) &&
            strncasecmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName), name, strlen(name)) ==
                0)
            return 1;
    }
    return 0;
}

static int push_dns(GENERAL_NAMES *names, const char *name)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();

    if (!gn || !s || !ASN1_STRING_set(s, name, (int)strlen(name))) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    if (!sk_GENERAL_NAME_push(names, gn)) {
        GENERAL_NAME_free(gn);
        return -1;
    }
    return 0;
}

/* The SAN list: upstream's DNS and IP entries, then the SNI and the CN if missing. */
static GENERAL_NAMES *leaf_names(X509 *upstream, const char *sni, const char *cn)
{
    GENERAL_NAMES *theirs = X509_get_ext_d2i(upstream, NID_subject_alt_name, NULL, NULL);
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();

    if (!names)
        goto fail;
    for (int i = 0; i < sk_GENERAL_NAME_num(theirs); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(theirs, i);
        GENERAL_NAME *copy;
        if (gn->type != GEN_DNS && gn->type != GEN_IPADD)
            continue;
        copy = GENERAL_NAME_dup(gn);
        if (!copy || !sk_GENERAL_NAME_push(names, copy)) {
            GENERAL_NAME_free(copy);
            goto fail;
        }
    }
    if (*sni && !has_dns(names, sni) && push_dns(names, sni) < 0)
        goto fail;
    if (sk_GENERAL_NAME_num(names) == 0 && *cn && push_dns(names, cn) < 0)
        goto fail;
    GENERAL_NAMES_free(theirs);
    return names;

fail:
    GENERAL_NAMES_free(theirs);
    GENERAL_NAMES_free(names);
    return NULL;
}

static X509 *forge_new_leaf(struct forge *f, X509 *upstream, const char *sni)
{
    X509 *ca = ca_cert(f->ca), *leaf = X509_new();
    X509_NAME *subject = X509_NAME_new();
    GENERAL_NAMES *names = NULL;
    unsigned char serial[16];
    char cn[256] = "";
    BIGNUM *bn = NULL;

    if (!leaf || !subject || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    X509_NAME_get_text_by_NID(X509_get_subject_name(upstream), NID_commonName, cn, sizeof(cn));
    if (!*cn && *sni)
        snprintf(cn, sizeof(cn), "%s", sni);
    names = leaf_names(upstream, sni, cn);
    if (!names || sk_GENERAL_NAME_num(names) == 0)
        goto fail;
    if (!*cn) { /* no CN and no SNI: name the leaf after its first SAN */
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
        if (gn->type == GEN_DNS)
            snprintf(cn, sizeof(cn), "%.*s", ASN1_STRING_length(gn->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        else
            snprintf(cn, sizeof(cn), "mitmtun");
    }
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(leaf)) ||
        !X509_set_version(leaf, X509_VERSION_3) ||
        !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(leaf, subject) ||
        !X509_set_issuer_name(leaf, X509_get_subject_name(ca)) ||
        !X509_gmtime_adj(X509_getm_notBefore(leaf), -24 * 3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(leaf), (long)LEAF_DAYS * 24 * 3600) ||
        !X509_set_pubkey(leaf, f->key) ||
        !X509_add1_ext_i2d(leaf, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) ||
        ca_add_ext(leaf, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        ca_add_ext(leaf, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
        ca_add_ext(leaf, ca, NID_ext_key_usage, "serverAuth") < 0 ||
        ca_add_ext(leaf, ca, NID_subject_key_identifier, "hash") < 0 ||
        ca_add_ext(leaf, ca, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    /* Never valid beyond our CA. */
    if (ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(ca)) > 0)
        X509_set1_notAfter(leaf, X509_get0_notAfter(ca));
    if (X509_sign(leaf, ca_key(f->ca), EVP_sha256()) <= 0)
        goto fail;
    BN_free(bn);
    X509_NAME_free(subject);
    GENERAL_NAMES_free(names);
    return leaf;

fail:
    ERR_clear_error();
    BN_free(bn);
    X509_NAME_free(subject);
    GENERAL_NAMES_free(names);
    X509_free(leaf);
    return NULL;
}

X509 *forge_leaf(struct forge *f, X509 *upstream, const char *sni)
{
    unsigned char key[32];
    struct forged *e;

    /* A name the upstream certificate already covers (a wildcard, say) adds nothing: every
     * such name shares one leaf, so a new name costs no signature. */
    if (!sni || X509_check_host(upstream, sni, 0, 0, NULL) == 1)
        sni = "";
    if (cache_key(upstream, sni, key) < 0)
        return NULL;
    for (e = *bucket_of(f, key); e; e = e->hnext)
        if (memcmp(e->key, key, sizeof(key)) == 0) {
            f->stats.hits++;
            lru_unlink(f, e);
            lru_push(f, e);
            X509_up_ref(e->leaf);
            return e->leaf;
        }
    f->stats.misses++;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->leaf = forge_new_leaf(f, upstream, sni);
    if (!e->leaf) {
        free(e);
        return NULL;
    }
    memcpy(e->key, key, sizeof(key));
    if (f->count == f->capacity)
        evict_oldest(f);
    e->hnext = *bucket_of(f, key);
    *bucket_of(f, key) = e;
    lru_push(f, e);
    f->count++;
    X509_up_ref(e->leaf);
    return e->leaf;
}

EVP_PKEY *forge_key(const struct forge *f)
{
    return f->key;
}

void forge_get_stats(const struct forge *f, struct forge_stats *out)
{
    *out = f->stats;
}
