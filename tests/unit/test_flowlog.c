/* Unit tests for appliance/flowlog.c: records are valid JSON whatever the strings hold, with
 * every field as given, and console lines stay one line. */
#include "appliance/flowlog.h"
#include "appliance/httpmsg.h"
#include "appliance/log.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static char dir[] = "/tmp/test_flowlog.XXXXXX";
static char path[64], console_path[64];

static struct netstack_endpoint endpoint(int family, const char *addr, uint16_t port)
{
    struct netstack_endpoint ep = {.family = family, .port = port};

    assert_int_equal(inet_pton(family, addr, ep.addr), 1);
    return ep;
}

/* Runs write_fn with the console on a file; returns the file's record (one line) parsed, and
 * the console's text in console (NUL-terminated). */
static json_t *record_of(void (*write_fn)(struct flowlog *, const void *), const void *r,
                         char *console, size_t console_len)
{
    char err[256];
    struct flowlog *fl;
    int saved = dup(STDERR_FILENO), fd;
    FILE *f;
    json_error_t jerr;
    json_t *j;

    unlink(path);
    fd = open(console_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    fl = flowlog_open(path, err, sizeof(err));
    assert_non_null(fl);
    write_fn(fl, r);
    flowlog_close(fl);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);

    f = fopen(console_path, "r");
    assert_non_null(f);
    console[fread(console, 1, console_len - 1, f)] = '\0';
    fclose(f);
    j = json_load_file(path, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!j)
        fail_msg("record is not JSON: %s at %d", jerr.text, jerr.position);
    return j;
}

static void write_http(struct flowlog *fl, const void *r)
{
    flowlog_write_http(fl, r);
}

static void write_tcp(struct flowlog *fl, const void *r)
{
    flowlog_write(fl, r);
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static void test_http_record_fields(void **state)
{
    struct netstack_endpoint client = endpoint(AF_INET, "10.0.0.2", 50000);
    struct netstack_endpoint server = endpoint(AF_INET6, "fd00::1", 443);
    struct httpmsg rq = {.method = "GET", .target = "/", .major = 1, .minor = 1, .nheaders = 2};
    struct httpmsg rs = {.status = 200, .reason = "OK", .major = 1, .minor = 1, .nheaders = 1};
    struct tls_info tls = {.sni = "example.com",
                           .version = "TLSv1.3",
                           .alpn = "http/1.1",
                           .intercepted = 1,
                           .upstream_resumed = 1};
    static const char binary[] = {0, 1, 2, (char)0xff, (char)0xfe};
    char console[4096];

    (void)state;
    rq.headers[0] = (struct httpmsg_header){"Host", "example.com", 0};
    rq.headers[1] = (struct httpmsg_header){"X-Odd", "q\"b\\s\x01\xff\xc3\xa9", 0};
    rs.headers[0] = (struct httpmsg_header){"Content-Length", "1536", 0};
    struct http_record r = {
        .id = 7,
        .client = &client,
        .server = &server,
        .start = {.tv_sec = 1796437007, .tv_nsec = 45000000},
        .mode = "transparent",
        .scheme = "https",
        .url = "https://example.com/a\x1b[2Jb",
        .request = &rq,
        .response = &rs,
        .status = 200,
        .reason = "OK",
        .request_bytes = 0,
        .response_bytes = 1536,
        .tls = &tls,
        .connect_ms = -1,
        .tls_ms = 2.0004,
        .ttfb_ms = 0.5,
        .total_ms = 12.3456,
        .request_body = "text \xc3\xa9",
        .request_body_len = 7,
        .response_body = binary,
        .response_body_len = sizeof(binary),
    };
    json_t *j = record_of(write_http, &r, console, sizeof(console));

    assert_string_equal(str(j, "type"), "http");
    assert_string_equal(str(j, "ts"), "2026-12-05T02:16:47.045Z");
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 7);
    assert_string_equal(str(j, "client"), "10.0.0.2:50000");
    assert_string_equal(str(j, "server"), "[fd00::1]:443");
    assert_string_equal(str(j, "mode"), "transparent");
    assert_string_equal(str(j, "url"), "https://example.com/a\x1b[2Jb");
    assert_string_equal(str(j, "http_version"), "HTTP/1.1");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    /* the header value: escapes kept, the stray 0xff read as Latin-1 (U+00FF) */
    json_t *h = json_array_get(json_object_get(j, "request_headers"), 1);
    assert_string_equal(json_string_value(json_array_get(h, 0)), "X-Odd");
    assert_string_equal(json_string_value(json_array_get(h, 1)), "q\"b\\s\x01\xc3\xbf\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(j, "response_bytes")), 1536);
    assert_string_equal(str(j, "request_body"), "text \xc3\xa9");
    assert_string_equal(str(j, "response_body"), "AAEC//4=");
    assert_string_equal(str(j, "response_body_encoding"), "base64");
    json_t *t = json_object_get(j, "tls");
    assert_string_equal(str(t, "sni"), "example.com");
    assert_true(json_is_true(json_object_get(t, "upstream_resumed")));
    assert_true(json_is_false(json_object_get(t, "upstream_reused")));
    assert_null(json_object_get(j, "resent"));          /* only when it was */
    assert_null(json_object_get(j, "upstream_reused")); /* with TLS, inside "tls" */
    json_t *ms = json_object_get(j, "timings");
    assert_int_equal(json_integer_value(json_object_get(ms, "connect_ms")), -1);
    assert_true(json_real_value(json_object_get(ms, "tls_ms")) == 2.0);
    assert_true(json_real_value(json_object_get(ms, "ttfb_ms")) == 0.5);
    assert_true(json_real_value(json_object_get(ms, "total_ms")) == 12.346);
    assert_null(json_object_get(j, "error"));
    json_decref(j);

    /* one line, the escape sequence defused */
    assert_non_null(strstr(console,
                           " info  10.0.0.2:50000 GET https://example.com/a?[2Jb << 200 OK "
                           "1.5 KiB 12 ms\n"));
    assert_int_equal(strchr(console, '\n') - console, strlen(console) - 1);
}

static void test_long_escaped_strings(void **state)
{
    struct netstack_endpoint ep = endpoint(AF_INET, "10.0.0.2", 1);
    struct httpmsg rq = {.method = "POST", .target = "/", .major = 1, .minor = 0};
    char url[20001], want[60001], console[8192];
    size_t w = 0;

    (void)state;
    /* every escape kind, across the writer's 4 KiB blocks; a 2-byte sequence straddles some */
    for (size_t i = 0; i < sizeof(url) - 1; i++) {
        static const char cycle[] = "a\"\\\n\xff\xc3\xa9";
        url[i] = cycle[i % 7];
    }
    url[sizeof(url) - 1] = '\0';
    for (size_t i = 0; i < sizeof(url) - 1; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch == 0xff) {
            want[w++] = (char)0xc3;
            want[w++] = (char)0xbf;
        } else {
            want[w++] = (char)ch;
        }
    }
    want[w] = '\0';
    struct http_record r = {.client = &ep,
                            .server = &ep,
                            .mode = "explicit",
                            .scheme = "http",
                            .url = url,
                            .request = &rq,
                            .error = "cut \"short\"",
                            .upstream_reused = 1, /* plain HTTP: at the top level */
                            .connect_ms = -1,
                            .tls_ms = -1,
                            .ttfb_ms = -1,
                            .total_ms = 0};
    json_t *j = record_of(write_http, &r, console, sizeof(console));

    assert_string_equal(str(j, "url"), want);
    assert_string_equal(str(j, "error"), "cut \"short\"");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 0);
    assert_true(json_is_true(json_object_get(j, "upstream_reused")));
    json_decref(j);
    /* the console line is cut, and still one line */
    assert_non_null(strstr(console, "... << no response: cut \"short\"\n"));
    assert_int_equal(strchr(console, '\n') - console, strlen(console) - 1);
}

/* UTF-8 of code point cp at w; returns its length. */
static size_t utf8_put(unsigned char *w, uint32_t cp)
{
    size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0x00, 0xc0, 0xe0, 0xf0};

    for (size_t k = len - 1; k > 0; k--, cp >>= 6)
        w[k] = (unsigned char)(0x80 | (cp & 0x3f));
    w[0] = (unsigned char)(lead[len] | cp);
    return len;
}

/* What a string of bytes should read as in the record: each valid UTF-8 sequence as it is
 * (decoded, encoded again and compared: no overlong forms, no surrogates), any other byte as
 * the Latin-1 character of that value. */
static void expected_text(const unsigned char *s, size_t n, unsigned char *want)
{
    size_t w = 0;

    for (size_t i = 0; i < n;) {
        size_t len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc0 ? 2 : 1;
        uint32_t cp = len == 1 ? s[i] : (uint32_t)(s[i] & (0x7f >> len));
        unsigned char again[4];
        int ok = s[i] < 0x80 || (s[i] >= 0xc0 && i + len <= n);

        for (size_t k = 1; ok && k < len; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        ok = ok && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) && utf8_put(again, cp) == len &&
             memcmp(again, s + i, len) == 0;
        if (ok) {
            memcpy(want + w, s + i, len);
            w += len;
            i += len;
        } else {
            w += utf8_put(want + w, s[i++]);
        }
    }
    want[w] = '\0';
}

/* Header values of random runs: plain text of every length, next to quotes, backslashes,
 * control bytes, DEL, valid and broken UTF-8, so that the writer's eight-byte steps meet each
 * kind at every offset and at the end of a string. */
static void test_escaping_random(void **state)
{
    static const char *specials[] = {"\"",
                                     "\\",
                                     "\x01",
                                     "\x1f",
                                     "\t",
                                     "\x7f",
                                     "\xc3\xa9",
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80",
                                     "\xff",
                                     "\x80",
                                     "\xc3",
                                     "\xe2\x82",
                                     "\xc0\xaf",
                                     "\xed\xa0\x80",
                                     "\xf4\x90\x80\x80"};
    struct netstack_endpoint ep = endpoint(AF_INET, "10.0.0.2", 1);
    static char values[HTTPMSG_MAX_HEADERS][128];
    static unsigned char want[HTTPMSG_MAX_HEADERS][256];
    uint32_t seed = 12345;
    char console[8192];

    (void)state;
    for (int round = 0; round < 8; round++) {
        struct httpmsg rq = {.method = "GET",
                             .target = "/",
                             .major = 1,
                             .minor = 1,
                             .nheaders = HTTPMSG_MAX_HEADERS};
        for (int h = 0; h < HTTPMSG_MAX_HEADERS; h++) {
            size_t len = 0, runs;

            seed = seed * 1103515245 + 12345;
            runs = seed >> 16 & 7;
            for (size_t k = 0; k < runs; k++) {
                seed = seed * 1103515245 + 12345;
                size_t plain = seed >> 16 & 15;
                for (size_t c = 0; c < plain; c++)
                    values[h][len++] = (char)('A' + (c * 7 + k) % 26);
                const char *sp = specials[(seed >> 24) % (sizeof(specials) / sizeof(*specials))];
                memcpy(values[h] + len, sp, strlen(sp));
                len += strlen(sp);
            }
            values[h][len] = '\0';
            expected_text((const unsigned char *)values[h], len, want[h]);
            rq.headers[h].name = "X";
            rq.headers[h].value = values[h];
        }
        struct http_record r = {.client = &ep,
                                .server = &ep,
                                .mode = "explicit",
                                .scheme = "http",
                                .url = "http://a/",
                                .request = &rq,
                                .connect_ms = -1,
                                .tls_ms = -1,
                                .ttfb_ms = -1};
        json_t *j = record_of(write_http, &r, console, sizeof(console));
        json_t *list = json_object_get(j, "request_headers");

        assert_int_equal(json_array_size(list), HTTPMSG_MAX_HEADERS);
        for (int h = 0; h < HTTPMSG_MAX_HEADERS; h++) {
            const char *got = json_string_value(json_array_get(json_array_get(list, h), 1));
            if (!got || strcmp(got, (const char *)want[h]) != 0)
                fail_msg("round %d header %d: %s", round, h, got ? got : "(not a string)");
        }
        json_decref(j);
    }
}

static void test_tcp_record(void **state)
{
    struct netstack_endpoint client = endpoint(AF_INET, "192.168.4.20", 40000);
    struct netstack_endpoint server = endpoint(AF_INET, "93.184.216.34", 443);
    struct tls_info tls = {.sni = "a.test", .error = "client handshake: \x01"};
    struct flow_record r = {
        .type = "tcp",
        .id = 123456789012ull,
        .client = &client,
        .server = &server,
        .bytes_up = 1023,
        .bytes_down = 5ull << 30,
        .start = {.tv_sec = 0, .tv_nsec = 999999999},
        .end = "error",
        .error = "reset\nby peer",
        .tls = &tls,
    };
    char console[4096];

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &r.mono_start);
    json_t *j = record_of(write_tcp, &r, console, sizeof(console));

    assert_string_equal(str(j, "type"), "tcp");
    assert_string_equal(str(j, "ts"), "1970-01-01T00:00:00.999Z");
    assert_true(json_integer_value(json_object_get(j, "id")) == 123456789012ll);
    assert_string_equal(str(j, "server"), "93.184.216.34:443");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_up")), 1023);
    assert_true(json_integer_value(json_object_get(j, "bytes_down")) == (json_int_t)5 << 30);
    assert_string_equal(str(j, "error"), "reset\nby peer");
    json_t *t = json_object_get(j, "tls");
    assert_true(json_is_false(json_object_get(t, "intercepted")));
    assert_string_equal(str(t, "reason"), "client handshake: \x01");
    assert_null(json_object_get(j, "upstream_reused"));
    json_decref(j);
    assert_non_null(strstr(console, "tcp #123456789012 192.168.4.20:40000 -> "
                                    "93.184.216.34:443 error: reset?by peer up 1023 B down "
                                    "5.00 GiB in 0.00 s\n"));
}

static long file_size(void)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Attached to a loop, records wait for the batch to age (50 ms) or fill (64 KiB); detaching
 * writes what waits. Every line arrives whole. */
static const struct netstack_endpoint rec1_ep = {.family = AF_INET, .port = 1};
static const struct httpmsg rec1_rq = {.method = "GET", .target = "/", .major = 1, .minor = 1};
static const struct http_record rec1 = {.client = &rec1_ep,
                                        .server = &rec1_ep,
                                        .mode = "transparent",
                                        .scheme = "http",
                                        .url = "http://x/",
                                        .request = &rec1_rq,
                                        .status = 200,
                                        .reason = "OK",
                                        .connect_ms = -1,
                                        .tls_ms = -1,
                                        .ttfb_ms = -1};

static void test_batches(void **state)
{
    const struct http_record *r = &rec1;
    struct event_base *base = event_base_new();
    struct timeval wait = {0, 200 * 1000};
    char err[256];
    struct flowlog *fl;
    long one, n = 0;
    FILE *f;
    char line[2048];

    (void)state;
    log_set_level(LOG_WARN); /* no console lines */
    unlink(path);
    fl = flowlog_open(path, err, sizeof(err));
    assert_non_null(fl);
    assert_int_equal(flowlog_attach(fl, base), 0);
    flowlog_write_http(fl, r);
    flowlog_write_http(fl, r);
    assert_int_equal(file_size(), 0); /* waiting in the batch */
    event_base_loopexit(base, &wait);
    event_base_dispatch(base);
    one = file_size() / 2;
    assert_true(one > 100 && file_size() == 2 * one); /* written once the batch aged */

    while (file_size() == 2 * one && n < 1000) { /* until 64 KiB have gathered */
        flowlog_write_http(fl, r);
        n++;
    }
    assert_true(n * one >= 64 * 1024 - one && n * one <= 64 * 1024 + one);
    assert_int_equal(file_size(), (2 + n) * one);
    flowlog_write_http(fl, r);
    flowlog_detach(fl); /* the appliance stops: what waits is written */
    assert_int_equal(file_size(), (3 + n) * one);
    flowlog_close(fl);
    event_base_free(base);

    f = fopen(path, "r");
    assert_non_null(f);
    for (n = 0; fgets(line, sizeof(line), f); n++) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        assert_non_null(j);
        json_decref(j);
    }
    fclose(f);
    assert_true(n * one == file_size());
    log_set_level(LOG_INFO);
}

/*
 * The console's batch goes out in writes of whole lines of at most PIPE_BUF bytes, which a
 * pipe keeps apart from other workers' writes. A SOCK_SEQPACKET socket as stderr keeps every
 * write() one message.
 */
static void test_console_writes(void **state)
{
    struct event_base *base = event_base_new();
    int sv[2], saved = dup(STDERR_FILENO), writes = 0;
    char err[256], msg[65536];
    struct flowlog *fl;
    size_t total = 0;
    ssize_t n;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_true(saved >= 0);
    dup2(sv[0], STDERR_FILENO);
    unlink(path);
    fl = flowlog_open(path, err, sizeof(err));
    assert_non_null(fl);
    assert_int_equal(flowlog_attach(fl, base), 0);
    for (int i = 0; i < 200; i++)
        flowlog_write_http(fl, &rec1);
    flowlog_detach(fl); /* one batch, written now */
    flowlog_close(fl);
    event_base_free(base);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(sv[0]);
    while ((n = recv(sv[1], msg, sizeof(msg), MSG_DONTWAIT)) > 0) {
        if (n > PIPE_BUF || msg[n - 1] != '\n')
            fail_msg("a write of %zd bytes, ending in 0x%02x", n, (unsigned char)msg[n - 1]);
        total += (size_t)n;
        writes++;
    }
    close(sv[1]);
    /* The batch took several writes, each of them nearly full. */
    assert_true(total > 3 * PIPE_BUF);
    assert_true((size_t)writes <= total / (PIPE_BUF / 2) + 1);
}

/* Lines of file p (up to max), each parsed or NULL when it is not JSON. Returns their count. */
static int lines_of(const char *p, json_t **lines, int max)
{
    char line[4096];
    int n = 0;
    FILE *f = fopen(p, "r");

    assert_non_null(f);
    while (n < max && fgets(line, sizeof(line), f))
        lines[n++] = json_loads(line, 0, NULL);
    fclose(f);
    return n;
}

static void free_lines(json_t **lines, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(lines[i]);
}

/* SIGUSR2 after a rotation: later records go to a new file at the configured path. */
static void test_reopen(void **state)
{
    char rotated[80], err[256];
    struct flowlog *fl;
    json_t *lines[4];

    (void)state;
    log_set_level(LOG_WARN);
    unlink(path);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    fl = flowlog_open(path, err, sizeof(err));
    assert_non_null(fl);
    flowlog_write_http(fl, &rec1);
    assert_int_equal(rename(path, rotated), 0);
    flowlog_write_http(fl, &rec1); /* still into the rotated file */
    assert_int_equal(flowlog_reopen(fl), 0);
    flowlog_write_http(fl, &rec1);
    flowlog_close(fl);
    assert_int_equal(lines_of(rotated, lines, 4), 2);
    assert_non_null(lines[0]);
    assert_non_null(lines[1]);
    free_lines(lines, 2);
    assert_int_equal(lines_of(path, lines, 4), 1);
    assert_string_equal(str(lines[0], "url"), "http://x/");
    free_lines(lines, 1);
    unlink(rotated);
    log_set_level(LOG_INFO);
}

/*
 * A full disk (here a file size limit): records are lost and said so once, a line cut short is
 * ended before the next, and writing resumes when there is room again.
 */
static void test_write_failure(void **state)
{
    struct rlimit saved, small;
    char err[256], console[2048];
    struct flowlog *fl;
    json_t *lines[8];
    long one_len;
    int n, fd, saved_err = dup(STDERR_FILENO);
    FILE *f;

    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    unlink(path);
    fd = open(console_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved_err >= 0);
    dup2(fd, STDERR_FILENO);
    log_set_level(LOG_INFO);
    fl = flowlog_open(path, err, sizeof(err));
    assert_non_null(fl);
    flowlog_write_http(fl, &rec1);
    one_len = file_size();
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = (rlim_t)(one_len + one_len / 2); /* room for half a record more */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    flowlog_write_http(fl, &rec1); /* cut short */
    flowlog_write_http(fl, &rec1); /* lost */
    flowlog_write_http(fl, &rec1); /* lost */
    assert_int_equal(file_size(), one_len + one_len / 2);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    flowlog_write_http(fl, &rec1);
    flowlog_close(fl);
    dup2(saved_err, STDERR_FILENO);
    close(saved_err);
    close(fd);

    n = lines_of(path, lines, 8);
    assert_int_equal(n, 3); /* the first record, the torn one ended, the one after */
    assert_non_null(lines[0]);
    assert_null(lines[1]);
    assert_non_null(lines[2]);
    free_lines(lines, n);
    f = fopen(console_path, "r");
    assert_non_null(f);
    console[fread(console, 1, sizeof(console) - 1, f)] = '\0';
    fclose(f);
    /* one warning with the cause, one line when it works again, with the bytes lost */
    assert_non_null(strstr(console, "cannot write to"));
    assert_null(strstr(strstr(console, "cannot write to") + 1, "cannot write to"));
    assert_non_null(strstr(console, "File too large"));
    assert_non_null(strstr(console, "again; "));
    assert_non_null(strstr(console, " bytes of records were lost"));
    signal(SIGXFSZ, SIG_DFL);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/flows.jsonl", dir);
    snprintf(console_path, sizeof(console_path), "%s/console", dir);
    log_set_level(LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unlink(console_path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_record_fields),
        cmocka_unit_test(test_long_escaped_strings),
        cmocka_unit_test(test_escaping_random),
        cmocka_unit_test(test_tcp_record),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_console_writes), /* stderr shared by several workers */
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_write_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
