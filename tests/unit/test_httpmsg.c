/* Unit tests for appliance/httpmsg.c: framing of requests and responses fed in pieces. */
#include "appliance/httpmsg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* What feeding a whole stream produced: events in order and the bytes each one used. */
struct trace {
    enum httpmsg_event ev[512];
    size_t used[512];
    int n;
    size_t body; /* bytes reported as BODY or DONE */
};

/* Feeds text in pieces of step bytes (the rest at once when step is 0). */
static struct trace feed_all(struct httpmsg_reader *r, const char *text, size_t step)
{
    struct trace t = {0};
    size_t len = strlen(text), off = 0, avail = step ? step : len;

    for (int guard = 0; guard < 10000 && t.n < 512; guard++) {
        size_t n = (off + avail <= len ? avail : len - off), used;
        enum httpmsg_event ev = httpmsg_feed(r, text + off, n, &used);
        off += used;
        if (ev == HTTPMSG_NEED_MORE && used == 0) {
            if (off == len)
                break;
            avail += step ? step : len;
            continue;
        }
        avail = step ? step : len;
        if (ev == HTTPMSG_NEED_MORE)
            continue;
        t.ev[t.n] = ev;
        t.used[t.n++] = used;
        if (ev == HTTPMSG_BODY || ev == HTTPMSG_DONE)
            t.body += used;
        if (ev == HTTPMSG_ERROR)
            break;
    }
    return t;
}

static void test_get_pieces(void **state)
{
    static const char req[] = "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  spaced \r\n"
                              "Connection: keep-alive, X-A\r\n\r\n";
    (void)state;
    for (size_t step = 0; step <= 7; step++) {
        struct httpmsg_reader *r = httpmsg_reader_new(1, 4096);
        struct trace t = feed_all(r, req, step);
        const struct httpmsg *m = httpmsg_current(r);

        assert_int_equal(t.n, 2);
        assert_int_equal(t.ev[0], HTTPMSG_HEAD);
        assert_int_equal(t.ev[1], HTTPMSG_DONE);
        assert_int_equal(t.body, 0);
        assert_string_equal(m->method, "GET");
        assert_string_equal(m->target, "/a?b=1");
        assert_int_equal(m->major * 10 + m->minor, 11);
        assert_int_equal(m->nheaders, 3);
        assert_string_equal(httpmsg_header(m, "host"), "example.com");
        assert_string_equal(httpmsg_header(m, "X-A"), "spaced ");
        assert_true(m->keep_alive);
        /* Connection names X-A: hop-by-hop like the fixed ones */
        assert_true(httpmsg_hop_by_hop(m, "x-a"));
        assert_true(httpmsg_hop_by_hop(m, "Proxy-Authorization"));
        assert_false(httpmsg_hop_by_hop(m, "Host"));
        /* the same, found once while the head was read */
        assert_false(m->headers[0].hop);
        assert_true(m->headers[1].hop);
        assert_true(m->headers[2].hop);
        assert_true(m->conn_keep_alive);
        assert_false(m->conn_close);
        httpmsg_reader_free(r);
    }
}

/* A second message on the reader starts clean: flags and headers are its own. */
static void test_second_message_is_fresh(void **state)
{
    static const char req[] = "GET /1 HTTP/1.1\r\nConnection: close, Te\r\nTE: trailers\r\n"
                              "Content-Length: 1\r\n\r\nx"
                              "GET /2 HTTP/1.0\r\nTe: x\r\n\r\n";
    struct httpmsg_reader *r = httpmsg_reader_new(1, 4096);
    const struct httpmsg *m = httpmsg_current(r);
    size_t off = 0, used;

    (void)state;
    assert_int_equal(httpmsg_feed(r, req, strlen(req), &used), HTTPMSG_HEAD);
    assert_true(m->conn_close && m->has_length && m->headers[1].hop);
    off += used;
    assert_int_equal(httpmsg_feed(r, req + off, strlen(req) - off, &used), HTTPMSG_DONE);
    off += used;
    assert_int_equal(httpmsg_feed(r, req + off, strlen(req) - off, &used), HTTPMSG_HEAD);
    assert_string_equal(m->target, "/2");
    assert_int_equal(m->nheaders, 1);
    assert_false(m->conn_close || m->conn_keep_alive || m->has_length);
    assert_true(m->headers[0].hop); /* TE, in any case */
    assert_int_equal(m->minor, 0);
    httpmsg_reader_free(r);
}

static void test_chunked_body_is_raw(void **state)
{
    static const char req[] = "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
                              "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *body = strstr(req, "\r\n\r\n") + 4;
    size_t framed = (size_t)(strstr(body, "GET /next") - body);
    (void)state;
    for (size_t step = 0; step <= 5; step++) {
        struct httpmsg_reader *r = httpmsg_reader_new(1, 4096);
        struct trace t = feed_all(r, req, step);

        /* the first message: its framed body bytes exactly, then the pipelined one */
        assert_int_equal(t.ev[0], HTTPMSG_HEAD);
        assert_int_equal(t.ev[t.n - 1], HTTPMSG_DONE);
        assert_int_equal(t.ev[t.n - 2], HTTPMSG_HEAD);
        assert_int_equal(t.body, framed);
        assert_string_equal(httpmsg_current(r)->target, "/next");
        httpmsg_reader_free(r);
    }
    {
        struct httpmsg_reader *r = httpmsg_reader_new(1, 4096);
        size_t used;
        assert_int_equal(httpmsg_feed(r, req, sizeof(req) - 1, &used), HTTPMSG_HEAD);
        assert_true(httpmsg_current(r)->chunked);
        assert_int_equal(httpmsg_feed(r, req + used, sizeof(req) - 1 - used, &used), HTTPMSG_DONE);
        assert_int_equal(used, framed);
        assert_int_equal(httpmsg_current(r)->body_bytes, 11); /* decoded */
        httpmsg_reader_free(r);
    }
}

static void test_response_framing(void **state)
{
    struct httpmsg_reader *r = httpmsg_reader_new(0, 4096);
    struct trace t;
    (void)state;

    /* Content-Length, then 100 Continue interim, then a 204 and a 304 without bodies */
    t = feed_all(r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0);
    assert_int_equal(t.n, 2); /* HEAD, then DONE with the body */
    assert_int_equal(t.body, 3);
    assert_int_equal(httpmsg_current(r)->status, 200);
    assert_string_equal(httpmsg_current(r)->reason, "OK");
    t = feed_all(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 0);
    assert_int_equal(t.n, 4); /* HEAD DONE HEAD DONE */
    assert_int_equal(httpmsg_current(r)->status, 204);
    t = feed_all(r, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[1], HTTPMSG_DONE);
    /* HEAD: a Content-Length, but no body follows */
    httpmsg_expect_no_body(r);
    t = feed_all(r, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[1], HTTPMSG_DONE);
    /* no length: the body runs to the end of the stream */
    t = feed_all(r, "HTTP/1.0 200 OK\r\n\r\nuntil the end", 0);
    assert_int_equal(t.ev[0], HTTPMSG_HEAD);
    assert_true(httpmsg_current(r)->until_eof);
    assert_int_equal(httpmsg_eof(r), HTTPMSG_DONE);
    assert_false(httpmsg_current(r)->keep_alive);
    httpmsg_reader_free(r);
}

static void test_upgrade(void **state)
{
    struct httpmsg_reader *q = httpmsg_reader_new(1, 4096), *s = httpmsg_reader_new(0, 4096);
    struct trace t;
    (void)state;

    t = feed_all(
        q, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0);
    assert_int_equal(t.ev[0], HTTPMSG_HEAD);
    assert_true(httpmsg_current(q)->upgrade);
    t = feed_all(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0);
    assert_int_equal(t.ev[t.n - 1], HTTPMSG_DONE);
    assert_true(httpmsg_current(s)->upgrade);
    httpmsg_reader_free(q);
    httpmsg_reader_free(s);
}

static void test_errors(void **state)
{
    struct httpmsg_reader *r;
    struct trace t;
    char big[3000];
    (void)state;

    r = httpmsg_reader_new(1, 4096);
    t = feed_all(r, "GET / HTTP/1.1\r\nno colon\r\n\r\n", 0);
    assert_int_equal(t.ev[t.n - 1], HTTPMSG_ERROR);
    assert_false(httpmsg_too_large(r));
    assert_true(strlen(httpmsg_error(r)) > 0);
    httpmsg_reader_free(r);

    r = httpmsg_reader_new(1, 1024);
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %02000d\r\n\r\n", 0);
    for (size_t step = 0; step <= 300; step += 100) {
        httpmsg_reader_free(r);
        r = httpmsg_reader_new(1, 1024);
        t = feed_all(r, big, step);
        assert_int_equal(t.ev[t.n - 1], HTTPMSG_ERROR);
        assert_true(httpmsg_too_large(r));
    }
    httpmsg_reader_free(r);

    /* a stream cut inside a message */
    r = httpmsg_reader_new(0, 4096);
    t = feed_all(r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0);
    assert_int_equal(httpmsg_eof(r), HTTPMSG_ERROR);
    httpmsg_reader_free(r);
    /* and a clean end between messages */
    r = httpmsg_reader_new(1, 4096);
    feed_all(r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    assert_int_equal(httpmsg_eof(r), HTTPMSG_NEED_MORE);
    httpmsg_reader_free(r);
}

static void test_split_target(void **state)
{
    char scheme[16], host[256], path[256];
    uint16_t port;
    (void)state;

    assert_int_equal(httpmsg_split_target("http://Example.com/a/b?c=d#frag", scheme, sizeof(scheme),
                                          host, sizeof(host), &port, path, sizeof(path)),
                     0);
    assert_string_equal(scheme, "http");
    assert_string_equal(host, "Example.com");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/a/b?c=d");
    assert_int_equal(httpmsg_split_target("http://[fd00::1]:8080", scheme, sizeof(scheme), host,
                                          sizeof(host), &port, path, sizeof(path)),
                     0);
    assert_string_equal(host, "fd00::1");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/");
    assert_int_equal(httpmsg_split_target("HTTPS://h?q", scheme, sizeof(scheme), host, sizeof(host),
                                          &port, path, sizeof(path)),
                     0);
    assert_int_equal(port, 443);
    assert_string_equal(path, "/?q");
    assert_int_equal(httpmsg_split_target("ftp://h/", scheme, sizeof(scheme), host, sizeof(host),
                                          &port, path, sizeof(path)),
                     -1);
    /* authority-form, for CONNECT */
    assert_int_equal(
        httpmsg_split_target("10.1.1.1:443", NULL, 0, host, sizeof(host), &port, NULL, 0), 0);
    assert_string_equal(host, "10.1.1.1");
    assert_int_equal(port, 443);
    assert_int_equal(httpmsg_split_target("nohost", NULL, 0, host, sizeof(host), &port, NULL, 0),
                     -1);
    assert_int_equal(httpmsg_split_target("h:0", NULL, 0, host, sizeof(host), &port, NULL, 0), -1);
}

static void test_sniff_and_base64(void **state)
{
    char out[64];
    (void)state;

    assert_int_equal(httpmsg_sniff("GET / HTTP/1.1", 14), 1);
    assert_int_equal(httpmsg_sniff("OPTIONS * HTTP/1.1", 18), 1);
    assert_int_equal(httpmsg_sniff("GE", 2), -1);
    assert_int_equal(httpmsg_sniff("SSH-2.0-x", 9), 0);
    assert_int_equal(httpmsg_sniff("HELO x", 6), 0);
    assert_int_equal(httpmsg_sniff("\x16\x03\x01", 3), 0);
    assert_int_equal(httpmsg_base64("user:pass", 9, out, sizeof(out)), 12);
    assert_string_equal(out, "dXNlcjpwYXNz");
    httpmsg_base64("ab", 2, out, sizeof(out));
    assert_string_equal(out, "YWI=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_pieces),
        cmocka_unit_test(test_second_message_is_fresh),
        cmocka_unit_test(test_chunked_body_is_raw),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_split_target),
        cmocka_unit_test(test_sniff_and_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
