/* Unit tests for tls/forge.c: what a forged leaf says, that it verifies, and the cache. */
#include "tls/ca.h"
#include "tls/forge.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static struct ca *ca;
static char dir[] = "/tmp/mitmtun-forge-XXXXXX";

/* A self-signed stand-in for a server's certificate. sans: "DNS:a,IP:1.2.3.4" or NULL. */
static X509 *upstream(const char *cn, const char *sans)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX ctx;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    if (cn)
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
                               (const unsigned char *)"upstream", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3000L * 86400);
    X509_set_pubkey(x, key);
    if (sans) {
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, sans);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    EVP_PKEY_free(key);
    return x;
}

/* The leaf's SANs as "DNS:a,IP:1.2.3.4". */
static void sans_of(X509 *leaf, char *out, size_t len)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    size_t pos = 0;

    out[0] = '\0';
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const unsigned char *d;
        if (gn->type == GEN_DNS) {
            pos += (size_t)snprintf(out + pos, len - pos, "%sDNS:%.*s", i ? "," : "",
                                    ASN1_STRING_length(gn->d.dNSName),
                                    (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD && ASN1_STRING_length(gn->d.iPAddress) == 4) {
            d = ASN1_STRING_get0_data(gn->d.iPAddress);
            pos += (size_t)snprintf(out + pos, len - pos, "%sIP:%d.%d.%d.%d", i ? "," : "", d[0],
                                    d[1], d[2], d[3]);
        }
    }
    GENERAL_NAMES_free(names);
}

static void assert_cn(X509 *leaf, const char *want)
{
    char cn[256] = "";

    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, want);
}

/* The leaf chains to our CA as a TLS server certificate. */
static void assert_verifies(X509 *leaf)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();

    X509_STORE_add_cert(store, ca_cert(ca));
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
}

static void test_leaf_copies_names_and_verifies(void **state)
{
    struct forge *f = forge_new(ca, 16, NULL, 0);
    X509 *up = upstream("www.example.com", "DNS:www.example.com,DNS:example.com,IP:10.0.0.1");
    X509 *leaf = forge_leaf(f, up, "www.example.com");
    char sans[512];
    int days, secs;

    (void)state;
    assert_non_null(leaf);
    assert_cn(leaf, "www.example.com");
    sans_of(leaf, sans, sizeof(sans));
    assert_string_equal(sans, "DNS:www.example.com,DNS:example.com,IP:10.0.0.1");
    assert_verifies(leaf);
    assert_int_equal(X509_check_host(leaf, "example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "10.0.0.1", 0), 1);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
    assert_false(X509_check_ca(leaf));
    assert_non_null(X509_get0_subject_key_id(leaf));
    assert_non_null(X509_get0_authority_key_id(leaf));
    assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf));
    assert_true(days <= 397);
    assert_true(X509_check_private_key(leaf, forge_key(f)));
    X509_free(leaf);
    X509_free(up);
    forge_free(f);
}

static void test_sni_added_when_missing(void **state)
{
    struct forge *f = forge_new(ca, 16, NULL, 0);
    X509 *up = upstream("default.example", "DNS:default.example");
    X509 *leaf = forge_leaf(f, up, "other.example");
    char sans[512];

    (void)state;
    sans_of(leaf, sans, sizeof(sans));
    assert_string_equal(sans, "DNS:default.example,DNS:other.example");
    assert_cn(leaf, "default.example");
    X509_free(leaf);
    leaf = forge_leaf(f, up, "DEFAULT.example"); /* already there, in another case */
    sans_of(leaf, sans, sizeof(sans));
    assert_string_equal(sans, "DNS:default.example");
    X509_free(leaf);
    X509_free(up);
    forge_free(f);
}

static void test_bare_ip_without_sni(void **state)
{
    struct forge *f = forge_new(ca, 16, NULL, 0);
    X509 *ip_only = upstream("origin.example", "IP:10.99.2.2");
    X509 *cn_only = upstream("legacy.example", NULL);
    X509 *leaf;
    char sans[512];

    (void)state;
    leaf = forge_leaf(f, ip_only, NULL);
    sans_of(leaf, sans, sizeof(sans));
    assert_string_equal(sans, "IP:10.99.2.2");
    assert_cn(leaf, "origin.example");
    assert_verifies(leaf);
    X509_free(leaf);
    leaf = forge_leaf(f, cn_only, "");
    sans_of(leaf, sans, sizeof(sans));
    assert_string_equal(sans, "DNS:legacy.example"); /* SAN always present */
    X509_free(leaf);
    X509_free(ip_only);
    X509_free(cn_only);
    forge_free(f);
}

static void test_cache(void **state)
{
    struct forge *f = forge_new(ca, 2, NULL, 0);
    X509 *a = upstream("a.example", "DNS:a.example"), *b = upstream("b.example", "DNS:b.example");
    X509 *l1, *l2, *l3;
    struct forge_stats st;

    (void)state;
    l1 = forge_leaf(f, a, "a.example");
    l2 = forge_leaf(f, a, "a.example");
    assert_ptr_equal(l1, l2); /* the same parsed leaf */
    forge_get_stats(f, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    l3 = forge_leaf(f, b, "b.example");
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(l1), X509_get0_serialNumber(l3)),
                         0);
    X509_free(l2);
    X509_free(l3);
    X509_free(forge_leaf(f, a, "www.a.example")); /* a third entry evicts the oldest */
    forge_get_stats(f, &st);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.evictions, 1);
    X509_free(forge_leaf(f, a, "a.example")); /* evicted (least recently used): forged again */
    forge_get_stats(f, &st);
    assert_int_equal(st.misses, 4);
    /* names the certificate covers share one leaf */
    {
        X509 *wild = upstream("w.example", "DNS:*.w.example");
        X509 *x1 = forge_leaf(f, wild, "one.w.example"), *x2 = forge_leaf(f, wild, "two.w.example");
        assert_ptr_equal(x1, x2);
        assert_int_equal(X509_check_host(x1, "three.w.example", 0, 0, NULL), 1);
        X509_free(x1);
        X509_free(x2);
        X509_free(wild);
    }
    /* a reference held by a connection survives eviction */
    assert_cn(l1, "a.example");
    X509_free(l1);
    X509_free(a);
    X509_free(b);
    forge_free(f);
}

static int setup(void **state)
{
    char err[512];
    int created;

    (void)state;
    assert_non_null(mkdtemp(dir));
    ca = ca_open(dir, &created, err, sizeof(err));
    return ca && created ? 0 : -1;
}

static int teardown(void **state)
{
    char path[128];

    (void)state;
    ca_free(ca);
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_copies_names_and_verifies),
        cmocka_unit_test(test_sni_added_when_missing),
        cmocka_unit_test(test_bare_ip_without_sni),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
