/*
 * Unit tests for tls_send (tls/intercept.c): a TLS client bufferevent and a TLS server on the
 * two ends of a socket pair, in one event loop. The client is either TLS on its socket, as the
 * upstream leg is, or a TLS filter over a socket bufferevent whose output has a high-water
 * mark, as the client leg is over its raw bufferevent. What tls_send writes at once, and what it
 * leaves to libevent when the socket or the raw output is full, must reach the server whole and
 * in order.
 */
#include "tls/intercept.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

struct pair {
    struct event_base *base;
    SSL_CTX *server_ctx, *client_ctx;
    struct bufferevent *client, *server;
    struct evbuffer *received; /* what the server read */
    int connected;             /* both ends finished the handshake */
    int errors;                /* error or EOF events on either end */
};

static void server_readcb(struct bufferevent *bev, void *arg)
{
    struct pair *p = arg;

    evbuffer_add_buffer(p->received, bufferevent_get_input(bev));
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct pair *p = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        p->connected++;
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        p->errors++;
}

/* A server context with a fresh self-signed certificate. */
static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"server", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

/* Runs the loop until done(p) or 2000 rounds (each waits 10 ms at most). */
static void run_until(struct pair *p, int (*done)(struct pair *, size_t), size_t arg)
{
    struct timeval tick = {0, 10000};

    for (int i = 0; i < 2000 && !done(p, arg); i++) {
        event_base_loopexit(p->base, &tick);
        event_base_loop(p->base, EVLOOP_ONCE);
    }
}

static int both_connected(struct pair *p, size_t unused)
{
    (void)unused;
    return p->connected == 2 || p->errors > 0;
}

static int received_at_least(struct pair *p, size_t n)
{
    return evbuffer_get_length(p->received) >= n || p->errors > 0;
}

/*
 * A handshaken pair; the client's socket send buffer is sndbuf bytes (0: the default). With
 * raw_high, the client is a TLS filter over a socket bufferevent whose output takes raw_high
 * bytes before the filter waits.
 */
static int setup(void **state, int sndbuf, size_t raw_high)
{
    struct pair *p = calloc(1, sizeof(*p));
    int fds[2];

    assert_non_null(p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    if (sndbuf)
        assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    p->base = event_base_new();
    p->received = evbuffer_new();
    p->server_ctx = server_ctx();
    p->client_ctx = SSL_CTX_new(TLS_client_method());
    if (raw_high) {
        struct bufferevent *raw = bufferevent_socket_new(p->base, fds[0], BEV_OPT_CLOSE_ON_FREE);
        assert_non_null(raw);
        bufferevent_setwatermark(raw, EV_WRITE, 0, raw_high);
        p->client =
            bufferevent_openssl_filter_new(p->base, raw, SSL_new(p->client_ctx),
                                           BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    } else {
        p->client =
            bufferevent_openssl_socket_new(p->base, fds[0], SSL_new(p->client_ctx),
                                           BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    }
    p->server = bufferevent_openssl_socket_new(p->base, fds[1], SSL_new(p->server_ctx),
                                               BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(p->client);
    assert_non_null(p->server);
    bufferevent_setcb(p->client, NULL, NULL, eventcb, p);
    bufferevent_setcb(p->server, server_readcb, NULL, eventcb, p);
    bufferevent_enable(p->client, EV_READ | EV_WRITE);
    bufferevent_enable(p->server, EV_READ | EV_WRITE);
    run_until(p, both_connected, 0);
    assert_int_equal(p->connected, 2);
    *state = p;
    return 0;
}

static int setup_default(void **state)
{
    return setup(state, 0, 0);
}

static int setup_small(void **state)
{
    return setup(state, 4096, 0);
}

static int setup_filter(void **state)
{
    return setup(state, 0, 128 * 1024);
}

static int setup_filter_small(void **state)
{
    return setup(state, 4096, 4096);
}

static int teardown(void **state)
{
    struct pair *p = *state;

    bufferevent_free(p->client);
    bufferevent_free(p->server);
    evbuffer_free(p->received);
    SSL_CTX_free(p->server_ctx);
    SSL_CTX_free(p->client_ctx);
    event_base_free(p->base);
    free(p);
    return 0;
}

/* Sends len bytes of pattern seed through tls_send. */
static void send_pattern(struct pair *p, size_t len, unsigned seed)
{
    struct evbuffer *b = evbuffer_new();
    unsigned char chunk[256];

    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (unsigned char)(i * 7 + seed);
    for (size_t done = 0; done < len; done += sizeof(chunk))
        evbuffer_add(b, chunk, len - done < sizeof(chunk) ? len - done : sizeof(chunk));
    tls_send(p->client, b);
    assert_int_equal(evbuffer_get_length(b), 0); /* all of it taken, one way or the other */
    evbuffer_free(b);
}

/* Checks len bytes of pattern seed at the front of what the server received, and drains them. */
static void expect_pattern(struct pair *p, size_t len, unsigned seed)
{
    const unsigned char *got;

    assert_true(evbuffer_get_length(p->received) >= len);
    got = evbuffer_pullup(p->received, (ev_ssize_t)len);
    for (size_t i = 0; i < len; i++)
        if (got[i] != (unsigned char)((i % 256) * 7 + seed))
            fail_msg("byte %zu of %zu differs", i, len);
    evbuffer_drain(p->received, len);
}

/* A small piece on an idle connection is written at once: nothing waits in the output. */
static void test_written_at_once(void **state)
{
    struct pair *p = *state;

    send_pattern(p, 100, 1);
    assert_int_equal(evbuffer_get_length(bufferevent_get_output(p->client)), 0);
    run_until(p, received_at_least, 100);
    expect_pattern(p, 100, 1);
    send_pattern(p, 16 * 1024, 2); /* the largest piece written at once */
    assert_int_equal(evbuffer_get_length(bufferevent_get_output(p->client)), 0);
    run_until(p, received_at_least, 16 * 1024);
    expect_pattern(p, 16 * 1024, 2);
    assert_int_equal(p->errors, 0);
}

/*
 * The server does not read and the socket fills: OpenSSL cannot finish the record, the bytes
 * wait in the output, and libevent's retry sends them whole once the server reads; what follows
 * comes after them.
 */
static void test_socket_full(void **state)
{
    struct pair *p = *state;

    bufferevent_disable(p->server, EV_READ);
    send_pattern(p, 16 * 1024, 3);
    assert_true(evbuffer_get_length(bufferevent_get_output(p->client)) > 0);
    send_pattern(p, 5000, 4); /* behind the first, in the output */
    bufferevent_enable(p->server, EV_READ);
    run_until(p, received_at_least, 16 * 1024 + 5000);
    assert_int_equal(p->errors, 0);
    expect_pattern(p, 16 * 1024, 3);
    expect_pattern(p, 5000, 4);
    assert_int_equal(evbuffer_get_length(bufferevent_get_output(p->client)), 0);
    send_pattern(p, 300, 5); /* at once again */
    assert_int_equal(evbuffer_get_length(bufferevent_get_output(p->client)), 0);
    run_until(p, received_at_least, 300);
    expect_pattern(p, 300, 5);
    assert_int_equal(evbuffer_get_length(p->received), 0);
}

/* More than one record's worth goes to the output, for libevent to write. */
static void test_large_piece_queued(void **state)
{
    struct pair *p = *state;

    send_pattern(p, 100000, 6);
    run_until(p, received_at_least, 100000);
    assert_int_equal(p->errors, 0);
    expect_pattern(p, 100000, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_written_at_once, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_socket_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_large_piece_queued, setup_default, teardown),
        /* the same over a filter: its raw output full stops OpenSSL as a full socket does */
        cmocka_unit_test_setup_teardown(test_written_at_once, setup_filter, teardown),
        cmocka_unit_test_setup_teardown(test_socket_full, setup_filter_small, teardown),
        cmocka_unit_test_setup_teardown(test_large_piece_queued, setup_filter, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
