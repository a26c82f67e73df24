/* Unit tests for tls/clienthello.c, on ClientHellos built here and captured from real clients. */
#include "tls/clienthello.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static uint8_t hello[4096];

static size_t put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

/* A ClientHello handshake message (no record header) with the given extensions block. */
static size_t message(uint8_t *out, const uint8_t *exts, size_t extlen, int with_exts)
{
    size_t n = 4;

    n += put16(out + n, 0x0303);
    memset(out + n, 0x42, 32), n += 32;
    out[n++] = 0;                                        /* session id */
    n += put16(out + n, 2), n += put16(out + n, 0x1301); /* one cipher suite */
    out[n++] = 1, out[n++] = 0;                          /* null compression */
    if (with_exts) {
        n += put16(out + n, extlen);
        if (extlen)
            memcpy(out + n, exts, extlen), n += extlen;
    }
    out[0] = 1;
    out[1] = 0;
    put16(out + 2, n - 4);
    return n;
}

/* Wraps a handshake message into records of at most frag bytes each. */
static size_t records(uint8_t *out, const uint8_t *msg, size_t len, size_t frag)
{
    size_t n = 0;

    for (size_t off = 0; off < len; off += frag) {
        size_t chunk = len - off < frag ? len - off : frag;
        out[n++] = 22;
        out[n++] = 3;
        out[n++] = 1;
        n += put16(out + n, chunk);
        memcpy(out + n, msg + off, chunk), n += chunk;
    }
    return n;
}

/* Extensions: SNI www.example.com, ALPN h2 + http/1.1, supported_versions 1.3 and 1.2. */
static size_t standard_exts(uint8_t *e, const char *host)
{
    size_t n = 0, hl = strlen(host);
    static const uint8_t alpn[] = {0, 16,  0,   14,  0,   12,  2,   'h', '2',
                                   8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    static const uint8_t versions[] = {0, 43, 0, 7, 6, 0x3a, 0x3a, 3, 4, 3, 3};

    n += put16(e + n, 0);
    n += put16(e + n, hl + 5);
    n += put16(e + n, hl + 3);
    e[n++] = 0;
    n += put16(e + n, hl);
    memcpy(e + n, host, hl), n += hl;
    memcpy(e + n, alpn, sizeof(alpn)), n += sizeof(alpn);
    memcpy(e + n, versions, sizeof(versions)), n += sizeof(versions);
    return n;
}

static void test_sni_alpn_versions(void **state)
{
    uint8_t exts[512], msg[1024];
    struct clienthello ch;
    size_t n;

    (void)state;
    n = message(msg, exts, standard_exts(exts, "www.example.com"), 1);
    n = records(hello, msg, n, 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
    assert_string_equal(ch.sni, "www.example.com");
    assert_int_equal(ch.alpn_len, 12);
    assert_memory_equal(ch.alpn, "\x02h2\x08http/1.1", 12);
    assert_int_equal(ch.legacy_version, 0x0303);
    assert_int_equal(ch.max_version, 0x0304); /* GREASE ignored */
    assert_int_equal(ch.min_version, 0x0303);
}

static void test_every_prefix_needs_more(void **state)
{
    uint8_t exts[512], msg[1024];
    struct clienthello ch;
    size_t n;

    (void)state;
    n = message(msg, exts, standard_exts(exts, "a.example"), 1);
    n = records(hello, msg, n, 16384);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(clienthello_parse(hello, cut, &ch), CLIENTHELLO_NEED_MORE);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
}

static void test_split_over_records(void **state)
{
    size_t frags[] = {1, 3, 7, 100};
    uint8_t exts[512], msg[1024];
    struct clienthello ch;

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        size_t n = message(msg, exts, standard_exts(exts, "split.example"), 1);
        n = records(hello, msg, n, frags[i]);
        assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
        assert_string_equal(ch.sni, "split.example");
        assert_int_equal(clienthello_parse(hello, n - 1, &ch), CLIENTHELLO_NEED_MORE);
    }
}

static void test_no_extensions_no_sni(void **state)
{
    uint8_t msg[256];
    struct clienthello ch;
    size_t n;

    (void)state;
    n = records(hello, msg, message(msg, NULL, 0, 0), 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
    assert_string_equal(ch.sni, "");
    assert_int_equal(ch.alpn_len, 0);
    assert_int_equal(ch.max_version, 0x0303);
    n = records(hello, msg, message(msg, NULL, 0, 1), 16384); /* an empty extensions block */
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
}

static void test_not_tls(void **state)
{
    struct clienthello ch;
    const char *http = "GET / HTTP/1.1\r\n\r\n";
    const uint8_t ssh[] = "SSH-2.0-OpenSSH_9.2\r\n";
    const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    const uint8_t v4[] = {22, 4, 0, 0, 5};

    (void)state;
    assert_int_equal(clienthello_parse((const uint8_t *)http, strlen(http), &ch),
                     CLIENTHELLO_NOT_TLS);
    assert_int_equal(clienthello_parse(ssh, sizeof(ssh) - 1, &ch), CLIENTHELLO_NOT_TLS);
    assert_int_equal(clienthello_parse(alert, sizeof(alert), &ch), CLIENTHELLO_NOT_TLS);
    assert_int_equal(clienthello_parse(v4, sizeof(v4), &ch), CLIENTHELLO_NOT_TLS);
    assert_int_equal(clienthello_parse(v4, 1, &ch), CLIENTHELLO_NEED_MORE);
}

static void test_invalid(void **state)
{
    uint8_t exts[512], msg[1024];
    struct clienthello ch;
    size_t n, e;

    (void)state;
    /* a host name with a slash */
    n = records(hello, msg, message(msg, exts, standard_exts(exts, "evil/x"), 1), 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_INVALID);
    /* the SNI extension twice */
    e = standard_exts(exts, "a.example");
    memcpy(exts + e, exts, 14), e += 14;
    n = records(hello, msg, message(msg, exts, e, 1), 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_INVALID);
    /* an extension longer than its block */
    e = standard_exts(exts, "a.example");
    n = message(msg, exts, e, 1);
    msg[n - e + 3] = 0xff;
    n = records(hello, msg, n, 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_INVALID);
    /* a handshake record holding a ServerHello */
    n = message(msg, NULL, 0, 0);
    msg[0] = 2;
    n = records(hello, msg, n, 16384);
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_INVALID);
    /* a second record that is not a handshake */
    n = message(msg, exts, standard_exts(exts, "a.example"), 1);
    n = records(hello, msg, n, 20);
    hello[25] = 23;
    assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_INVALID);
}

/* ClientHellos captured from openssl s_client and curl (tests/fuzz/corpus_clienthello). */
static void test_real_clients(void **state)
{
    static const struct {
        const char *file, *sni, *alpn;
        unsigned max;
    } cases[] = {
        {"openssl_tls13_sni_alpn", "www.example.com", "\x02h2\x08http/1.1", 0x0304},
        {"openssl_tls12_only", "v12.example.org", "", 0x0303},
        {"curl_sni", "curl.example.net", "\x02h2\x08http/1.1", 0x0304},
    };

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        struct clienthello ch;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "%s/%s", TEST_CORPUS_DIR, cases[i].file);
        f = fopen(path, "rb");
        assert_non_null(f);
        n = fread(hello, 1, sizeof(hello), f);
        fclose(f);
        assert_int_equal(clienthello_parse(hello, n, &ch), CLIENTHELLO_OK);
        assert_string_equal(ch.sni, cases[i].sni);
        assert_int_equal(ch.alpn_len, strlen(cases[i].alpn));
        assert_memory_equal(ch.alpn, cases[i].alpn, ch.alpn_len);
        assert_int_equal(ch.max_version, cases[i].max);
    }
}

/* h2 leaves the offer only when an HTTP/1.x protocol stays in it; the others keep their order. */
static void test_drop_h2(void **state)
{
    static const struct {
        const char *in, *out;
        int dropped;
    } cases[] = {
        {"\x02h2\x08http/1.1", "\x08http/1.1", 1},
        {"\x08http/1.1\x02h2", "\x08http/1.1", 1},
        {"\003foo\x02h2\x08http/1.0\x02h2", "\003foo\x08http/1.0", 1},
        {"\x02h2", "\x02h2", 0}, /* h2 only: kept, or the server picks nothing */
        {"\x02h2\x08spdy/3.1", "\x02h2\x08spdy/3.1", 0}, /* nothing recordable instead */
        {"\x08http/1.1", "\x08http/1.1", 0},
        {"\x03h2c\x08http/1.1", "\x03h2c\x08http/1.1", 0},
        {"", "", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct clienthello ch = {0};
        ch.alpn_len = strlen(cases[i].in);
        memcpy(ch.alpn, cases[i].in, ch.alpn_len);
        assert_int_equal(clienthello_drop_h2(&ch), cases[i].dropped);
        assert_int_equal(ch.alpn_len, strlen(cases[i].out));
        assert_memory_equal(ch.alpn, cases[i].out, ch.alpn_len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_alpn_versions),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_split_over_records),
        cmocka_unit_test(test_no_extensions_no_sni),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_real_clients),
        cmocka_unit_test(test_drop_h2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
