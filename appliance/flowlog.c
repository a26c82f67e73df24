#include "flowlog.h"

#include "httpmsg.h"
#include "log.h"

#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Records are batched: built straight into the file's batch (JSON Lines) and the console's
 * (lines for people), and written FLUSH_MS after the first of a batch, or at once when
 * FLUSH_BYTES wait, so that a burst of short HTTP exchanges costs two writes every fifty or so
 * records, not two per loop pass (which cost 2 us an exchange). The batches are flat buffers
 * kept from one batch to the next: no allocation per record. Unattached (no loop), each record
 * is written at once; detaching (the appliance stops) writes what waits.
 */
#define FLUSH_MS     50
#define FLUSH_BYTES  (64 * 1024)
#define KEEP_BYTES   (4 * FLUSH_BYTES) /* a batch grown past this (large bodies) is given back */
#define WARN_SECONDS 60                /* between warnings while the file cannot be written */

struct out {
    char *buf;
    size_t len, cap;
    size_t mark; /* where the line being built began */
    int failed;  /* out of memory: the line being built is dropped */
};

struct flowlog {
    int fd;        /* -1: console only */
    char *path;    /* the file, to reopen it */
    uint64_t lost; /* bytes of records not written since writing last worked */
    struct log_every lost_warning;
    int torn;               /* a failed write cut a line short: end it before the next */
    struct out file;        /* JSON Lines waiting for fd */
    struct out console;     /* lines waiting for stderr */
    struct event *flush_ev; /* NULL: unattached */
    time_t ts_second;       /* a record's "ts" is formatted once a second */
    char ts[20];            /* "2026-11-28T02:13:27" */
};

/*
 * Writes a batch to fd, whole; returns 0, or -1 with errno. The batch is emptied either way;
 * *done says how much of it went out. With lines, each write() is whole lines of at most
 * PIPE_BUF bytes where it can be: several worker processes share stderr, and a pipe keeps only
 * writes that small from mixing with others'.
 */
static int out_write(struct out *o, int fd, int lines, size_t *done)
{
    size_t off = 0;
    int ret = 0;

    while (off < o->len) {
        size_t len = o->len - off;
        ssize_t n;

        if (lines && len > PIPE_BUF) {
            const char *nl = memrchr(o->buf + off, '\n', PIPE_BUF);
            len = nl ? (size_t)(nl - (o->buf + off)) + 1 : PIPE_BUF;
        }
        n = write(fd, o->buf + off, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = -1;
            break;
        }
        off += (size_t)n;
    }
    *done = off;
    o->len = 0;
    if (o->cap > KEEP_BYTES) {
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
    return ret;
}

/*
 * Writes the file's batch. When that fails (a full disk), the batch is lost: counted, and said
 * once a minute until writing works again; a line the failure cut short is ended first.
 */
static void file_write(struct flowlog *fl)
{
    size_t len = fl->file.len, done = 0;
    int err = 0;

    if (fl->torn && write(fl->fd, "\n", 1) != 1)
        err = errno ? errno : EIO;
    else if (out_write(&fl->file, fl->fd, 0, &done) < 0)
        err = errno ? errno : EIO;
    fl->file.len = 0; /* dropped, also when the newline failed before it */
    if (!err) {
        fl->torn = 0;
        if (fl->lost)
            log_info("[log] flows: writing to %s again; %" PRIu64 " bytes of records were lost",
                     fl->path, fl->lost);
        fl->lost = 0;
        log_every_reset(&fl->lost_warning);
        return;
    }
    if (done > 0)
        fl->torn = 1;
    fl->lost += len - done;
    if (log_every_due(&fl->lost_warning, WARN_SECONDS))
        log_warn("[log] flows: cannot write to %s: %s; records are lost until it works again "
                 "(%" PRIu64 " bytes so far)",
                 fl->path, strerror(err), fl->lost);
}

/* Writes out what waits. */
static void flowlog_flush(struct flowlog *fl)
{
    size_t done;

    out_write(&fl->console, STDERR_FILENO, 1, &done);
    if (fl->fd >= 0 && fl->file.len > 0)
        file_write(fl);
}

static void flowlog_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flowlog_flush(arg);
}

/* A record was added: written when the batch is old or large enough. */
static void flowlog_queue(struct flowlog *fl)
{
    static const struct timeval later = {0, FLUSH_MS * 1000};

    if (!fl->flush_ev || fl->file.len + fl->console.len >= FLUSH_BYTES) {
        if (fl->flush_ev)
            event_del(fl->flush_ev);
        flowlog_flush(fl);
        return;
    }
    if (!event_pending(fl->flush_ev, EV_TIMEOUT, NULL))
        event_add(fl->flush_ev, &later);
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

struct flowlog *flowlog_open(const char *path, char *err, size_t errlen)
{
    struct flowlog *fl = calloc(1, sizeof(*fl));

    if (!fl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fl->fd = -1;
    if (path && *path) {
        fl->path = strdup(path);
        /* O_APPEND: every batch lands at the end, also when several processes share the file. */
        fl->fd = fl->path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
        if (fl->fd < 0) {
            snprintf(err, errlen, "[log] flows: cannot open '%s': %s", path,
                     strerror(fl->path ? errno : ENOMEM));
            flowlog_close(fl);
            return NULL;
        }
    }
    return fl;
}

int flowlog_reopen(struct flowlog *fl)
{
    int fd;

    if (fl->fd < 0)
        return 0;
    flowlog_flush(fl); /* what waits belongs to the old file */
    fd = open(fl->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_errno(LOG_WARN, "[log] flows: cannot reopen %s (still writing to the old file)",
                  fl->path);
        return -1;
    }
    close(fl->fd);
    fl->fd = fd;
    fl->torn = 0;
    log_info("[log] flows: reopened %s", fl->path);
    return 0;
}

void flowlog_close(struct flowlog *fl)
{
    if (!fl)
        return;
    flowlog_detach(fl);
    flowlog_flush(fl);
    if (fl->fd >= 0)
        close(fl->fd);
    free(fl->path);
    free(fl->file.buf);
    free(fl->console.buf);
    free(fl);
}

/*
 * Lines are built at the end of a batch by the appenders below, without printf: a keep-alive
 * HTTPS exchange costs a few tens of microseconds, and formatting its record with printf was a
 * tenth of that.
 */

/* Grows the batch for n more bytes; on failure the line is marked failed, appends dropped. */
static int out_grow(struct out *o, size_t n)
{
    size_t cap = o->cap ? o->cap : 1024;
    char *grown;

    if (o->failed)
        return -1;
    while (cap - o->len < n)
        cap *= 2;
    grown = realloc(o->buf, cap);
    if (!grown) {
        o->failed = 1;
        return -1;
    }
    o->buf = grown;
    o->cap = cap;
    return 0;
}

/* Room for n more bytes (a failed line has none). */
static inline int out_room(struct out *o, size_t n)
{
    return n <= o->cap - o->len && !o->failed ? 0 : out_grow(o, n);
}

static inline void out_mem(struct out *o, const void *s, size_t n)
{
    if (out_room(o, n) < 0)
        return;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define out_lit(o, s) out_mem(o, s, sizeof(s) - 1)

static void out_str(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

/* v in decimal at w (20 bytes at most); returns the end. */
static char *put_u64(char *w, uint64_t v)
{
    char digits[20], *p = digits + sizeof(digits);

    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    memcpy(w, p, (size_t)(digits + sizeof(digits) - p));
    return w + (digits + sizeof(digits) - p);
}

static void out_u64(struct out *o, uint64_t v)
{
    if (out_room(o, 20) == 0)
        o->len = (size_t)(put_u64(o->buf + o->len, v) - o->buf);
}

static void out_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        out_lit(o, "-");
        out_u64(o, (uint64_t)0 - (uint64_t)v);
        return;
    }
    out_u64(o, (uint64_t)v);
}

/* v with frac (1 to 3) decimals, rounded half away from zero; v >= 0. */
static void out_fixed(struct out *o, double v, int frac)
{
    static const unsigned scale[] = {1, 10, 100, 1000};
    uint64_t n = (uint64_t)(v * scale[frac] + 0.5);
    char digits[3];

    out_u64(o, n / scale[frac]);
    out_lit(o, ".");
    n %= scale[frac];
    for (int i = frac - 1; i >= 0; i--, n /= 10)
        digits[i] = (char)('0' + n % 10);
    out_mem(o, digits, (size_t)frac);
}

/* An address and port: "10.0.0.1:443", "[fd00::1]:443". */
static void out_endpoint(struct out *o, const struct netstack_endpoint *ep)
{
    char *w;

    if (out_room(o, INET6_ADDRSTRLEN + sizeof("[]:65535")) < 0)
        return;
    w = o->buf + o->len;
    if (ep->family == AF_INET) {
        for (int i = 0; i < 4; i++) {
            w = put_u64(w, ep->addr[i]);
            *w++ = i < 3 ? '.' : ':';
        }
    } else {
        *w++ = '[';
        if (!inet_ntop(ep->family, ep->addr, w, INET6_ADDRSTRLEN))
            *w = '\0'; /* not an address family: "[]:port" */
        w += strlen(w);
        *w++ = ']';
        *w++ = ':';
    }
    o->len = (size_t)(put_u64(w, ep->port) - o->buf);
}

#define TEXT_MAX 1000 /* bytes of one piece of text on a console line */

/* Text from the network on a console line: control bytes become '?', so a URL or a reason
 * phrase cannot move the cursor or end the line; over TEXT_MAX bytes, it is cut with "...". */
static void out_text(struct out *o, const char *s)
{
    size_t n = strnlen(s, TEXT_MAX + 1);

    if (out_room(o, TEXT_MAX + 3) < 0)
        return;
    for (size_t i = 0; i < n && i < TEXT_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        o->buf[o->len++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (n > TEXT_MAX)
        out_lit(o, "...");
}

/* "640 B", "1.0 KiB", "64.0 MiB", "1.50 GiB": sizes for people. */
static void out_size(struct out *o, uint64_t n)
{
    if (n < 1024) {
        out_u64(o, n);
        out_lit(o, " B");
    } else if (n < 1024 * 1024) {
        out_fixed(o, (double)n / 1024, 1);
        out_lit(o, " KiB");
    } else if (n < 1024ull * 1024 * 1024) {
        out_fixed(o, (double)n / (1024 * 1024), 1);
        out_lit(o, " MiB");
    } else {
        out_fixed(o, (double)n / (1024.0 * 1024 * 1024), 2);
        out_lit(o, " GiB");
    }
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

#define BYTES(c) (0x0101010101010101ull * (c)) /* c in each byte of a word */

/* Non-zero when a byte of v is below c (at most 0x80); from "Bit Twiddling Hacks". */
static inline uint64_t json_byte_below(uint64_t v, unsigned c)
{
    return (v - BYTES(c)) & ~v & BYTES(0x80);
}

/* Whether a byte of v needs more than copying into a JSON string: a control byte, '"', '\\',
 * DEL, or a byte of a UTF-8 sequence. */
static inline int json_word_special(uint64_t v)
{
    return (json_byte_below(v, 0x20) | (v & BYTES(0x80)) | json_byte_below(v ^ BYTES('"'), 1) |
            json_byte_below(v ^ BYTES('\\'), 1) | json_byte_below(v ^ BYTES(0x7f), 1)) != 0;
}

/* Whether byte c goes into a JSON string as it is: printable ASCII but '"' and '\\'. */
static inline int json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Whether all of p (n bytes) goes into a JSON string as it is, as most of a record does: a
 * word at a time, the last word overlapping the one before it. */
static int json_all_plain(const unsigned char *p, size_t n)
{
    uint64_t word;
    size_t i;

    if (n < 8) {
        for (i = 0; i < n; i++)
            if (!json_plain(p[i]))
                return 0;
        return 1;
    }
    for (i = 0; i + 8 < n; i += 8) {
        memcpy(&word, p + i, 8);
        if (json_word_special(word))
            return 0;
    }
    memcpy(&word, p + n - 8, 8);
    return !json_word_special(word);
}

/* Writes the byte at p (n left) that is not plain: a UTF-8 sequence as it is, '"' and '\\'
 * escaped, others as \u00XX (Latin-1). Returns the end of what was written; *k says how many
 * bytes of p it took. */
static char *json_special(char *w, const unsigned char *p, size_t n, size_t *k)
{
    static const char hex[] = "0123456789abcdef";

    *k = utf8_seq(p, n);
    if (*k > 1) {
        memcpy(w, p, *k);
        return w + *k;
    }
    *k = 1;
    if (p[0] == '"' || p[0] == '\\') {
        w[0] = '\\';
        w[1] = (char)p[0];
        return w + 2;
    }
    memcpy(w, "\\u00", 4);
    w[4] = hex[p[0] >> 4];
    w[5] = hex[p[0] & 15];
    return w + 6;
}

/* s (n bytes) as a JSON string; bytes that are not UTF-8 are read as Latin-1. A string that
 * needs no escaping is copied whole. Others are written in blocks, each with room for the most
 * escaping can make of it: eight bytes at a time where none needs escaping, the rest one by
 * one. */
static void json_str(struct out *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k;

    if (json_all_plain(p, n)) {
        if (out_room(o, n + 2) < 0)
            return;
        char *w = o->buf + o->len;
        w[0] = '"';
        memcpy(w + 1, p, n);
        w[n + 1] = '"';
        o->len += n + 2;
        return;
    }
    do {
        size_t stop = i + (n - i < 4096 ? n - i : 4096);
        if (out_room(o, 6 * (stop - i) + 5) < 0) /* + 2 quotes, + 3 of a sequence over stop */
            return;
        char *w = o->buf + o->len;
        if (i == 0)
            *w++ = '"';
        while (i < stop) {
            uint64_t word;

            if (stop - i >= 8) {
                memcpy(&word, p + i, 8);
                if (!json_word_special(word)) {
                    memcpy(w, &word, 8);
                    w += 8;
                    i += 8;
                    continue;
                }
            }
            if (json_plain(p[i])) {
                *w++ = (char)p[i++];
                continue;
            }
            w = json_special(w, p + i, n - i, &k);
            i += k;
        }
        if (i >= n)
            *w++ = '"';
        o->len = (size_t)(w - o->buf);
    } while (i < n);
}

static void json_cstr(struct out *o, const char *s)
{
    json_str(o, s ? s : "", s ? strlen(s) : 0);
}

/* ,"name": before a value; name is a string literal, so the key is written in one piece. */
#define json_key(o, name) out_lit(o, ",\"" name "\":")

static void out_bool(struct out *o, int value)
{
    if (value)
        out_lit(o, "true");
    else
        out_lit(o, "false");
}

#define json_field(o, name, value) (json_key(o, name), json_cstr(o, value))
#define json_bool(o, name, value)  (json_key(o, name), out_bool(o, value))
#define json_uint(o, name, value)  (json_key(o, name), out_u64(o, value))

/* The headers of m as a list of [name, value] pairs. */
static void out_headers(struct out *o, const struct httpmsg *m)
{
    out_lit(o, "[");
    for (int i = 0; m && i < m->nheaders; i++) {
        if (i)
            out_lit(o, ",");
        out_lit(o, "[");
        json_cstr(o, m->headers[i].name);
        out_lit(o, ",");
        json_cstr(o, m->headers[i].value);
        out_lit(o, "]");
    }
    out_lit(o, "]");
}

#define json_headers(o, name, m) (json_key(o, name), out_headers(o, m))

/* A captured body: as a string when it is UTF-8 text, else base64 with a "_encoding" key. */
static void json_body(struct out *o, const char *key, const char *body, size_t len)
{
    if (!body)
        return;
    out_lit(o, ",\"");
    out_str(o, key);
    out_lit(o, "\":");
    if (utf8_valid(body, len)) {
        json_str(o, body, len);
        return;
    }
    if (out_room(o, len / 3 * 4 + 8) < 0)
        return;
    out_lit(o, "\"");
    o->len += httpmsg_base64(body, len, o->buf + o->len, o->cap - o->len);
    out_lit(o, "\",\"");
    out_str(o, key);
    out_lit(o, "_encoding\":\"base64\"");
}

/* Milliseconds with three decimals, or -1 for "did not happen". */
static void out_ms(struct out *o, double ms)
{
    if (ms < 0)
        out_lit(o, "-1");
    else
        out_fixed(o, ms, 3);
}

/* "name":ms, the first of an object (no comma) */
#define json_ms(o, name, ms) (out_lit(o, "\"" name "\":"), out_ms(o, ms))

/* The "tls" object of a record, as the TLS issue defined it; reused (the upstream connection
 * came from the pool) goes inside it, or at the top level for plain HTTP, which has none. */
static void json_tls(struct out *o, const struct tls_info *tls, int reused)
{
    if (!tls) {
        if (reused)
            json_bool(o, "upstream_reused", 1);
        return;
    }
    out_lit(o, ",\"tls\":{\"sni\":");
    json_cstr(o, tls->sni);
    json_field(o, "version", tls->version);
    json_field(o, "alpn", tls->alpn);
    json_bool(o, "intercepted", tls->intercepted);
    if (tls->intercepted) {
        json_bool(o, "upstream_resumed", tls->upstream_resumed);
        json_bool(o, "upstream_reused", reused);
    }
    if (!tls->intercepted && tls->error[0])
        json_field(o, "reason", tls->error);
    out_lit(o, "}");
}

/* {"type":…,"ts":…,"id":…,"client":…,"server":… — what every record begins with. */
static void json_record_start(struct flowlog *fl, const char *type, const struct timespec *start,
                              uint64_t id, const struct netstack_endpoint *client,
                              const struct netstack_endpoint *server)
{
    struct out *o = &fl->file;
    long ms = start->tv_nsec / 1000000L;
    char frac[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                    'Z'};
    struct tm tm;

    if (start->tv_sec != fl->ts_second || !fl->ts[0]) {
        gmtime_r(&start->tv_sec, &tm);
        strftime(fl->ts, sizeof(fl->ts), "%Y-%m-%dT%H:%M:%S", &tm);
        fl->ts_second = start->tv_sec;
    }
    out_lit(o, "{\"type\":\"");
    out_str(o, type);
    out_lit(o, "\",\"ts\":\"");
    out_str(o, fl->ts);
    out_mem(o, frac, sizeof(frac));
    out_lit(o, "\",\"id\":");
    out_u64(o, id);
    out_lit(o, ",\"client\":\"");
    out_endpoint(o, client);
    out_lit(o, "\",\"server\":\"");
    out_endpoint(o, server);
    out_lit(o, "\"");
}

/* Starts a line at the end of batch o. */
static struct out *line_start(struct out *o)
{
    o->mark = o->len;
    o->failed = 0;
    return o;
}

/* Ends the line: kept whole, or, out of memory, taken back and said so. */
static void line_end(struct out *o, const char *what)
{
    if (!o->failed)
        return;
    o->len = o->mark;
    log_warn("out of memory: a %s was not written", what);
}

/* A console line (when info is shown) begins with the time and level, as log_msg's do. */
static struct out *console_start(struct flowlog *fl)
{
    struct out *o;

    if (!log_enabled(LOG_INFO))
        return NULL;
    o = line_start(&fl->console);
    if (out_room(o, LOG_PREFIX_LEN) == 0)
        o->len += log_prefix(o->buf + o->len, LOG_INFO);
    return o;
}

void flowlog_write(struct flowlog *fl, const struct flow_record *r)
{
    struct timespec now;
    int64_t duration_ms;
    struct out *o;

    clock_gettime(CLOCK_MONOTONIC, &now);
    duration_ms = (int64_t)(now.tv_sec - r->mono_start.tv_sec) * 1000 +
                  (now.tv_nsec - r->mono_start.tv_nsec) / 1000000;

    /* tcp #12 10.0.0.2:5000 -> 10.0.0.1:443 closed up 1.0 KiB down 3 B in 0.25 s */
    if ((o = console_start(fl))) {
        out_str(o, r->type);
        out_lit(o, " #");
        out_u64(o, r->id);
        out_lit(o, " ");
        out_endpoint(o, r->client);
        out_lit(o, " -> ");
        out_endpoint(o, r->server);
        out_lit(o, " ");
        out_str(o, r->end);
        if (r->error) {
            out_lit(o, ": ");
            out_text(o, r->error);
        }
        out_lit(o, " up ");
        out_size(o, r->bytes_up);
        out_lit(o, " down ");
        out_size(o, r->bytes_down);
        out_lit(o, " in ");
        out_fixed(o, duration_ms < 0 ? 0 : (double)duration_ms / 1000, 2);
        out_lit(o, " s\n");
        line_end(o, "console line");
    }
    if (fl->fd >= 0) {
        o = line_start(&fl->file);
        json_record_start(fl, r->type, &r->start, r->id, r->client, r->server);
        json_uint(o, "bytes_up", r->bytes_up);
        json_uint(o, "bytes_down", r->bytes_down);
        out_lit(o, ",\"duration_ms\":");
        out_i64(o, duration_ms);
        json_field(o, "end", r->end);
        if (r->error)
            json_field(o, "error", r->error);
        json_tls(o, r->tls, r->upstream_reused);
        out_lit(o, "}\n");
        line_end(o, "flow record");
    }
    flowlog_queue(fl);
}

void flowlog_write_http(struct flowlog *fl, const struct http_record *r)
{
    const struct httpmsg *rq = r->request;
    struct out *o;

    /* 10.0.0.2:5000 GET https://example.com/ << 200 OK 1.0 KiB 3 ms (like mitmdump's) */
    if ((o = console_start(fl))) {
        out_endpoint(o, r->client);
        out_lit(o, " ");
        out_text(o, rq->method);
        out_lit(o, " ");
        out_text(o, r->url);
        if (r->status) {
            out_lit(o, " << ");
            out_u64(o, (unsigned)r->status);
            out_lit(o, " ");
            out_text(o, r->reason ? r->reason : "");
            out_lit(o, " ");
            out_size(o, r->response_bytes);
            out_lit(o, " ");
            out_u64(o, (uint64_t)(r->total_ms + 0.5));
            out_lit(o, " ms");
            if (r->error) {
                out_lit(o, " - ");
                out_text(o, r->error);
            }
        } else {
            out_lit(o, " << no response: ");
            out_text(o, r->error ? r->error : "closed");
        }
        out_lit(o, "\n");
        line_end(o, "console line");
    }
    if (fl->fd >= 0) {
        o = line_start(&fl->file);
        json_record_start(fl, "http", &r->start, r->id, r->client, r->server);
        json_field(o, "mode", r->mode);
        json_field(o, "scheme", r->scheme);
        json_field(o, "method", rq->method);
        json_field(o, "url", r->url);
        out_lit(o, ",\"http_version\":\"HTTP/");
        out_u64(o, (unsigned)rq->major);
        out_lit(o, ".");
        out_u64(o, (unsigned)rq->minor);
        out_lit(o, "\",\"status\":");
        out_u64(o, (unsigned)r->status);
        json_field(o, "reason", r->reason);
        json_headers(o, "request_headers", rq);
        json_headers(o, "response_headers", r->response);
        json_uint(o, "request_bytes", r->request_bytes);
        json_uint(o, "response_bytes", r->response_bytes);
        json_body(o, "request_body", r->request_body, r->request_body_len);
        json_body(o, "response_body", r->response_body, r->response_body_len);
        json_tls(o, r->tls, r->upstream_reused);
        out_lit(o, ",\"timings\":{");
        json_ms(o, "connect_ms", r->connect_ms);
        out_lit(o, ",");
        json_ms(o, "tls_ms", r->tls_ms);
        out_lit(o, ",");
        json_ms(o, "ttfb_ms", r->ttfb_ms);
        out_lit(o, ",");
        json_ms(o, "total_ms", r->total_ms);
        out_lit(o, "}");
        if (r->resent)
            json_bool(o, "resent", 1);
        if (r->error)
            json_field(o, "error", r->error);
        out_lit(o, "}\n");
        line_end(o, "flow record");
    }
    flowlog_queue(fl);
}
