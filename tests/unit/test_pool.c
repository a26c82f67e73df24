/* Unit tests for appliance/pool.c: which parked connection a key finds, the limit, shedding,
 * what happens when the server closes a parked connection, and plain HTTP connections. */
#include "appliance/pool.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static struct event_base *base;
static SSL_CTX *ctx;

/*
 * A stand-in for an upstream connection: a TLS bufferevent (never handshaken: parking does not
 * look inside) over one end of a socket pair, and the raw one beside it. *server is the other
 * end.
 */
static void connection(struct bufferevent **tls, struct bufferevent **raw, int *server)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    *raw = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    *tls = bufferevent_openssl_socket_new(base, sv[0], SSL_new(ctx), BUFFEREVENT_SSL_OPEN, 0);
    assert_non_null(*raw);
    assert_non_null(*tls);
    *server = sv[1];
}

/* Whether the appliance's end of server's socket pair is closed (nothing buffered). */
static int closed(int server)
{
    char c;

    return read(server, &c, 1) == 0;
}

static struct pool_key key(const char *client, const char *server, uint16_t port, const char *sni)
{
    struct pool_key k;

    memset(&k, 0, sizeof(k));
    k.client.family = k.server.family = AF_INET;
    inet_pton(AF_INET, client, k.client.addr);
    inet_pton(AF_INET, server, k.server.addr);
    k.server.port = port;
    snprintf(k.sni, sizeof(k.sni), "%s", sni);
    memcpy(k.alpn, "\x08http/1.1", 9);
    k.alpn_len = 9;
    k.min_version = TLS1_2_VERSION;
    k.max_version = TLS1_3_VERSION;
    k.tls = 1;
    return k;
}

/* Parks a new stand-in under k; returns its server end. */
static int park(struct pool *p, const struct pool_key *k, struct bufferevent **tls_out)
{
    struct bufferevent *tls, *raw;
    int server;

    connection(&tls, &raw, &server);
    assert_int_equal(pool_put(p, k, tls, raw, 30), 0);
    if (tls_out)
        *tls_out = tls;
    return server;
}

/* Takes what k finds and frees it: whether it was want (NULL: whether nothing was found). */
static int take(struct pool *p, const struct pool_key *k, const struct bufferevent *want)
{
    struct bufferevent *tls = NULL, *raw = NULL;
    int found = pool_take(p, k, &tls, &raw), same = found && tls == want;

    if (found) {
        SSL_free(bufferevent_openssl_get_ssl(tls));
        bufferevent_free(tls);
        bufferevent_free(raw);
    }
    return want ? same : !found;
}

static void test_only_the_whole_key_matches(void **state)
{
    struct pool *p = pool_new(base, 8);
    struct pool_key k = key("10.0.0.2", "10.0.1.2", 443, "a.example"), other;
    struct bufferevent *parked;
    int server = park(p, &k, &parked);

    (void)state;
    assert_true(pool_has(p, &k.client, &k.server));
    other = key("10.0.0.3", "10.0.1.2", 443, "a.example"); /* another device */
    assert_false(pool_has(p, &other.client, &other.server));
    assert_true(take(p, &other, NULL));
    other = key("10.0.0.2", "10.0.1.2", 8443, "a.example"); /* another port */
    assert_false(pool_has(p, &other.client, &other.server));
    assert_true(take(p, &other, NULL));
    other = key("10.0.0.2", "10.0.1.2", 443, "b.example"); /* another name: has, not take */
    assert_true(pool_has(p, &other.client, &other.server));
    assert_true(take(p, &other, NULL));
    other = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    other.alpn_len = 0; /* another ALPN offer */
    assert_true(take(p, &other, NULL));
    other = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    other.max_version = TLS1_2_VERSION; /* another version range */
    assert_true(take(p, &other, NULL));
    assert_int_equal(pool_count(p), 1);
    assert_true(take(p, &k, parked));
    assert_int_equal(pool_count(p), 0);
    assert_false(pool_has(p, &k.client, &k.server));
    pool_free(p);
    close(server);
}

static void test_newest_first_and_the_limit(void **state)
{
    struct pool *p = pool_new(base, 2);
    struct pool_key k = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    struct bufferevent *second, *third;
    int s1 = park(p, &k, NULL), s2 = park(p, &k, &second), s3;

    (void)state;
    assert_false(closed(s1));
    s3 = park(p, &k, &third); /* over the limit: the oldest goes, now */
    assert_int_equal(pool_count(p), 2);
    assert_true(closed(s1));
    assert_false(closed(s2));
    assert_true(take(p, &k, third));
    assert_true(take(p, &k, second));
    assert_true(take(p, &k, NULL));
    pool_free(p);
    close(s1);
    close(s2);
    close(s3);
}

static void test_shed_frees_the_oldest_descriptor_at_once(void **state)
{
    struct pool *p = pool_new(base, 8);
    struct pool_key k = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    int s1 = park(p, &k, NULL), s2 = park(p, &k, NULL);

    (void)state;
    assert_int_equal(pool_shed(p), 1);
    assert_true(closed(s1)); /* without running the loop */
    assert_false(closed(s2));
    assert_int_equal(pool_shed(p), 1);
    assert_true(closed(s2));
    assert_int_equal(pool_shed(p), 0);
    assert_int_equal(pool_count(p), 0);
    pool_free(p);
    close(s1);
    close(s2);
}

static void test_server_close_unparks(void **state)
{
    struct pool *p = pool_new(base, 8);
    struct pool_key k = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    int s1 = park(p, &k, NULL);

    (void)state;
    close(s1);
    for (int i = 0; i < 50 && pool_count(p) > 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(pool_count(p), 0);
    assert_false(pool_has(p, &k.client, &k.server));
    pool_free(p);
}

static void test_refused_connections_are_closed(void **state)
{
    struct pool *p = pool_new(base, 8), *off = pool_new(base, 0);
    struct pool_key k = key("10.0.0.2", "10.0.1.2", 443, "a.example");
    struct bufferevent *tls, *raw;
    int server;

    (void)state;
    connection(&tls, &raw, &server);
    assert_int_equal(pool_put(p, &k, tls, raw, 0), -1); /* no idle time left */
    assert_true(closed(server));
    close(server);
    connection(&tls, &raw, &server);
    assert_int_equal(pool_put(off, &k, tls, raw, 30), -1); /* reuse off */
    assert_true(closed(server));
    close(server);
    assert_int_equal(pool_count(p), 0);
    pool_free(p);
    pool_free(off);
}

/* A plain HTTP connection parks as its socket alone, apart from TLS ones to the same server. */
static void test_plain_connections(void **state)
{
    struct pool *p = pool_new(base, 8);
    struct pool_key tls = key("10.0.0.2", "10.0.1.2", 80, ""), plain = tls;
    struct bufferevent *raw, *got_plain = NULL, *got_raw = NULL;
    int sv[2];

    (void)state;
    memset(plain.alpn, 0, sizeof(plain.alpn));
    plain.alpn_len = 0;
    plain.min_version = plain.max_version = 0;
    plain.tls = 0;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    raw = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    assert_int_equal(pool_put(p, &plain, raw, raw, 30), 0);
    assert_true(pool_has(p, &plain.client, &plain.server));
    assert_true(take(p, &tls, NULL)); /* a TLS stream never gets it */
    tls.alpn_len = 0;
    tls.min_version = tls.max_version = 0;
    assert_true(take(p, &tls, NULL)); /* not even one with nothing else to tell them apart */
    assert_int_equal(pool_take(p, &plain, &got_plain, &got_raw), 1);
    assert_ptr_equal(got_plain, raw);
    assert_ptr_equal(got_raw, raw);
    assert_int_equal(pool_put(p, &plain, raw, raw, 30), 0);
    assert_int_equal(pool_shed(p), 1); /* closes the socket, with no TLS to end */
    assert_true(closed(sv[1]));
    assert_int_equal(pool_count(p), 0);
    pool_free(p);
    close(sv[1]);
}

static int setup(void **state)
{
    (void)state;
    base = event_base_new();
    ctx = SSL_CTX_new(TLS_client_method());
    return base && ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    /* let libevent finalize what was freed */
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    SSL_CTX_free(ctx);
    event_base_free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_the_whole_key_matches),
        cmocka_unit_test(test_newest_first_and_the_limit),
        cmocka_unit_test(test_shed_frees_the_oldest_descriptor_at_once),
        cmocka_unit_test(test_server_close_unparks),
        cmocka_unit_test(test_refused_connections_are_closed),
        cmocka_unit_test(test_plain_connections),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
