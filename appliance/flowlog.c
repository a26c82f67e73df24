#include "flowlog.h"

#include "httpmsg.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Records are batched: appended to file (JSON Lines) and console (lines for people), and
 * written once per event-loop pass by flush_ev, so that a burst of short HTTP exchanges costs
 * two writes, not two per exchange. Unattached (no loop), each record is written at once.
 */
struct flowlog {
    int fd;                /* -1: console only */
    struct evbuffer *file; /* JSON Lines waiting for fd */
    struct evbuffer *console;
    struct event *flush_ev; /* NULL: unattached */
};

/* Writes out what waits, whole lines. */
static void flowlog_flush(struct flowlog *fl)
{
    while (evbuffer_get_length(fl->console) > 0)
        if (evbuffer_write(fl->console, STDERR_FILENO) <= 0) {
            evbuffer_drain(fl->console, evbuffer_get_length(fl->console));
            break;
        }
    while (fl->fd >= 0 && evbuffer_get_length(fl->file) > 0)
        if (evbuffer_write(fl->file, fl->fd) <= 0) {
            log_errno(LOG_WARN, "[log] flows: writing %zu bytes of records",
                      evbuffer_get_length(fl->file));
            evbuffer_drain(fl->file, evbuffer_get_length(fl->file));
            break;
        }
}

static void flowlog_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flowlog_flush(arg);
}

/* Queues what r's writer built; writes at once when unattached. */
static void flowlog_queue(struct flowlog *fl)
{
    if (!fl->flush_ev) {
        flowlog_flush(fl);
        return;
    }
    if (!event_pending(fl->flush_ev, EV_TIMEOUT, NULL))
        event_active(fl->flush_ev, EV_TIMEOUT, 0);
}

int flowlog_attach(struct flowlog *fl, struct event_base *base)
{
    fl->flush_ev = event_new(base, -1, 0, flowlog_flush_cb, fl);
    return fl->flush_ev ? 0 : -1;
}

void flowlog_detach(struct flowlog *fl)
{
    if (!fl || !fl->flush_ev)
        return;
    event_free(fl->flush_ev);
    fl->flush_ev = NULL;
    flowlog_flush(fl);
}

/* A console line for a record, when info is shown. */
static void flowlog_console(struct flowlog *fl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void flowlog_console(struct flowlog *fl, const char *fmt, ...)
{
    char line[1200], text[1024];
    va_list ap;

    if (!log_enabled(LOG_INFO))
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    evbuffer_add(fl->console, line, log_format(line, sizeof(line), LOG_INFO, "%s", text));
}

struct flowlog *flowlog_open(const char *path, char *err, size_t errlen)
{
    struct flowlog *fl = calloc(1, sizeof(*fl));

    if (!fl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fl->fd = -1;
    fl->file = evbuffer_new();
    fl->console = evbuffer_new();
    if (!fl->file || !fl->console) {
        snprintf(err, errlen, "out of memory");
        flowlog_close(fl);
        return NULL;
    }
    if (path && *path) {
        /* O_APPEND: each record is one write(), whole even if several processes share it. */
        fl->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fl->fd < 0) {
            snprintf(err, errlen, "[log] flows: cannot open '%s': %s", path, strerror(errno));
            flowlog_close(fl);
            return NULL;
        }
    }
    return fl;
}

void flowlog_close(struct flowlog *fl)
{
    if (!fl)
        return;
    flowlog_detach(fl);
    if (fl->file && fl->console)
        flowlog_flush(fl);
    if (fl->fd >= 0)
        close(fl->fd);
    if (fl->file)
        evbuffer_free(fl->file);
    if (fl->console)
        evbuffer_free(fl->console);
    free(fl);
}

/* "64.0 MiB" style, for people. */
static const char *human_bytes(uint64_t n, char *buf, size_t len)
{
    if (n < 1024)
        snprintf(buf, len, "%" PRIu64 " B", n);
    else if (n < 1024 * 1024)
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else if (n < 1024ull * 1024 * 1024)
        snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
    else
        snprintf(buf, len, "%.2f GiB", (double)n / (1024.0 * 1024 * 1024));
    return buf;
}

/* Length of the valid UTF-8 sequence at p (of n bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq((const unsigned char *)s + i, n - i)))
            return 0;
    return 1;
}

/* s (n bytes) as a JSON string; bytes that are not UTF-8 are read as Latin-1. Runs of bytes
 * that need no escape go out in one add. */
static void json_str(struct evbuffer *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the pending run of plain bytes */

    evbuffer_add(b, "\"", 1);
    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_seq(p + i, n - i);
        if (k > 1 || (k == 1 && p[i] >= 0x20 && p[i] != 0x7f && p[i] != '"' && p[i] != '\\'))
            continue;
        evbuffer_add(b, p + run, i - run);
        if (k == 0) {
            evbuffer_add_printf(b, "\\u%04x", p[i]);
            k = 1;
        } else if (p[i] == '"' || p[i] == '\\') {
            char esc[2] = {'\\', (char)p[i]};
            evbuffer_add(b, esc, 2);
        } else {
            evbuffer_add_printf(b, "\\u%04x", p[i]);
        }
        run = i + k;
    }
    evbuffer_add(b, p + run, n - run);
    evbuffer_add(b, "\"", 1);
}

static void json_cstr(struct evbuffer *b, const char *s)
{
    json_str(b, s ? s : "", s ? strlen(s) : 0);
}

static void json_headers(struct evbuffer *b, const char *key, const struct httpmsg *m)
{
    evbuffer_add_printf(b, ",\"%s\":[", key);
    for (int i = 0; m && i < m->nheaders; i++) {
        evbuffer_add(b, i ? ",[" : "[", i ? 2 : 1);
        json_cstr(b, m->headers[i].name);
        evbuffer_add(b, ",", 1);
        json_cstr(b, m->headers[i].value);
        evbuffer_add(b, "]", 1);
    }
    evbuffer_add(b, "]", 1);
}

static void json_body(struct evbuffer *b, const char *key, const char *body, size_t len)
{
    char chunk[4 * 1024 + 1];

    if (!body)
        return;
    evbuffer_add_printf(b, ",\"%s\":", key);
    if (utf8_valid(body, len)) {
        json_str(b, body, len);
        return;
    }
    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < len; i += 3 * 1024) {
        size_t n = len - i < 3 * 1024 ? len - i : 3 * 1024;
        evbuffer_add(b, chunk, httpmsg_base64(body + i, n, chunk, sizeof(chunk)));
    }
    evbuffer_add_printf(b, "\",\"%s_encoding\":\"base64\"", key);
}

static void json_ms(struct evbuffer *b, const char *key, double ms)
{
    if (ms < 0)
        evbuffer_add_printf(b, "\"%s\":-1", key);
    else
        evbuffer_add_printf(b, "\"%s\":%.3f", key, ms);
}

/* The "tls" object of a record, as the TLS issue defined it; nothing for NULL. */
static void json_tls(struct evbuffer *b, const struct tls_info *tls)
{
    if (!tls)
        return;
    evbuffer_add_printf(b, ",\"tls\":{\"sni\":");
    json_cstr(b, tls->sni);
    evbuffer_add_printf(b, ",\"version\":");
    json_cstr(b, tls->version);
    evbuffer_add_printf(b, ",\"alpn\":");
    json_cstr(b, tls->alpn);
    evbuffer_add_printf(b, ",\"intercepted\":%s", tls->intercepted ? "true" : "false");
    if (tls->intercepted)
        evbuffer_add_printf(b, ",\"upstream_resumed\":%s",
                            tls->upstream_resumed ? "true" : "false");
    if (!tls->intercepted && tls->error[0]) {
        evbuffer_add_printf(b, ",\"reason\":");
        json_cstr(b, tls->error);
    }
    evbuffer_add(b, "}", 1);
}

/* {"type":…,"ts":…,"id":…,"client":…,"server":… — what every record begins with. */
static void json_record_start(struct evbuffer *b, const char *type, const struct timespec *start,
                              uint64_t id, const char *client, const char *server)
{
    char ts[40];
    struct tm tm;

    gmtime_r(&start->tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    evbuffer_add_printf(b,
                        "{\"type\":\"%s\",\"ts\":\"%s.%03ldZ\",\"id\":%" PRIu64
                        ",\"client\":\"%s\",\"server\":\"%s\"",
                        type, ts, start->tv_nsec / 1000000L, id, client, server);
}

void flowlog_write(struct flowlog *fl, const struct flow_record *r)
{
    char client[64], server[64], up[32], down[32];
    struct evbuffer *b = fl->file;
    struct timespec now;
    int64_t duration_ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    duration_ms = (int64_t)(now.tv_sec - r->mono_start.tv_sec) * 1000 +
                  (now.tv_nsec - r->mono_start.tv_nsec) / 1000000;

    netstack_endpoint_str(r->client, client, sizeof(client));
    netstack_endpoint_str(r->server, server, sizeof(server));
    flowlog_console(fl, "%s #%" PRIu64 " %s -> %s %s%s%s up %s down %s in %.2f s", r->type, r->id,
                    client, server, r->end, r->error ? ": " : "", r->error ? r->error : "",
                    human_bytes(r->bytes_up, up, sizeof(up)),
                    human_bytes(r->bytes_down, down, sizeof(down)), (double)duration_ms / 1000);
    if (fl->fd >= 0) {
        json_record_start(b, r->type, &r->start, r->id, client, server);
        evbuffer_add_printf(b,
                            ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64
                            ",\"duration_ms\":%" PRId64 ",\"end\":",
                            r->bytes_up, r->bytes_down, duration_ms);
        json_cstr(b, r->end);
        if (r->error) {
            evbuffer_add_printf(b, ",\"error\":");
            json_cstr(b, r->error);
        }
        json_tls(b, r->tls);
        evbuffer_add(b, "}\n", 2);
    }
    flowlog_queue(fl);
}

void flowlog_write_http(struct flowlog *fl, const struct http_record *r)
{
    const struct httpmsg *rq = r->request;
    char client[64], server[64], size[32];
    struct evbuffer *b;

    netstack_endpoint_str(r->client, client, sizeof(client));
    netstack_endpoint_str(r->server, server, sizeof(server));
    if (r->status)
        flowlog_console(fl, "%s %s %s << %d %s %s %.0f ms%s%s", client, rq->method, r->url,
                        r->status, r->reason ? r->reason : "",
                        human_bytes(r->response_bytes, size, sizeof(size)), r->total_ms,
                        r->error ? " - " : "", r->error ? r->error : "");
    else
        flowlog_console(fl, "%s %s %s << no response: %s", client, rq->method, r->url,
                        r->error ? r->error : "closed");
    if (fl->fd < 0) {
        flowlog_queue(fl);
        return;
    }
    b = fl->file;

    json_record_start(b, "http", &r->start, r->id, client, server);
    evbuffer_add_printf(b, ",\"mode\":\"%s\",\"scheme\":\"%s\"", r->mode, r->scheme);
    evbuffer_add_printf(b, ",\"method\":");
    json_cstr(b, rq->method);
    evbuffer_add_printf(b, ",\"url\":");
    json_cstr(b, r->url);
    evbuffer_add_printf(b, ",\"http_version\":\"HTTP/%d.%d\",\"status\":%d", rq->major, rq->minor,
                        r->status);
    evbuffer_add_printf(b, ",\"reason\":");
    json_cstr(b, r->reason);
    json_headers(b, "request_headers", rq);
    json_headers(b, "response_headers", r->response);
    evbuffer_add_printf(b, ",\"request_bytes\":%" PRIu64 ",\"response_bytes\":%" PRIu64,
                        r->request_bytes, r->response_bytes);
    json_body(b, "request_body", r->request_body, r->request_body_len);
    json_body(b, "response_body", r->response_body, r->response_body_len);
    json_tls(b, r->tls);
    evbuffer_add_printf(b, ",\"timings\":{");
    json_ms(b, "connect_ms", r->connect_ms);
    evbuffer_add(b, ",", 1);
    json_ms(b, "tls_ms", r->tls_ms);
    evbuffer_add(b, ",", 1);
    json_ms(b, "ttfb_ms", r->ttfb_ms);
    evbuffer_add(b, ",", 1);
    json_ms(b, "total_ms", r->total_ms);
    evbuffer_add(b, "}", 1);
    if (r->error) {
        evbuffer_add_printf(b, ",\"error\":");
        json_cstr(b, r->error);
    }
    evbuffer_add(b, "}\n", 2);
    flowlog_queue(fl);
}
