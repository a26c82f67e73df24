#include "flowlog.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct flowlog {
    int fd; /* -1: console only */
};

struct flowlog *flowlog_open(const char *path, char *err, size_t errlen)
{
    struct flowlog *fl = calloc(1, sizeof(*fl));

    if (!fl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fl->fd = -1;
    if (path && *path) {
        /* O_APPEND: each record is one write(), whole even if several processes share it. */
        fl->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fl->fd < 0) {
            snprintf(err, errlen, "[log] flows: cannot open '%s': %s", path, strerror(errno));
            free(fl);
            return NULL;
        }
    }
    return fl;
}

void flowlog_close(struct flowlog *fl)
{
    if (!fl)
        return;
    if (fl->fd >= 0)
        close(fl->fd);
    free(fl);
}

static void append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*pos >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos = *pos + (size_t)n < cap ? *pos + (size_t)n : cap;
}

void flowlog_json_string(char *buf, size_t cap, size_t *pos, const char *s)
{
    append(buf, cap, pos, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            append(buf, cap, pos, "\\%c", *p);
        else if (*p < 0x20)
            append(buf, cap, pos, "\\u%04x", *p);
        else
            append(buf, cap, pos, "%c", *p);
    }
    append(buf, cap, pos, "\"");
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

void flowlog_write(struct flowlog *fl, const struct flow_record *r)
{
    char client[64], server[64], up[32], down[32], ts[40], line[1024];
    struct timespec now;
    int64_t duration_ms;
    struct tm tm;
    size_t pos = 0;

    clock_gettime(CLOCK_MONOTONIC, &now);
    duration_ms = (int64_t)(now.tv_sec - r->mono_start.tv_sec) * 1000 +
                  (now.tv_nsec - r->mono_start.tv_nsec) / 1000000;

    netstack_endpoint_str(r->client, client, sizeof(client));
    netstack_endpoint_str(r->server, server, sizeof(server));
    log_info("%s #%" PRIu64 " %s -> %s %s%s%s up %s down %s in %.2f s", r->type, r->id, client,
             server, r->end, r->error ? ": " : "", r->error ? r->error : "",
             human_bytes(r->bytes_up, up, sizeof(up)),
             human_bytes(r->bytes_down, down, sizeof(down)), (double)duration_ms / 1000);
    if (!fl || fl->fd < 0)
        return;

    gmtime_r(&r->start.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    append(line, sizeof(line), &pos, "{\"type\":\"%s\",\"ts\":\"%s.%03ldZ\",\"id\":%" PRIu64,
           r->type, ts, r->start.tv_nsec / 1000000L, r->id);
    append(line, sizeof(line), &pos, ",\"client\":\"%s\",\"server\":\"%s\"", client, server);
    append(line, sizeof(line), &pos,
           ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"duration_ms\":%" PRId64
           ",\"end\":",
           r->bytes_up, r->bytes_down, duration_ms);
    flowlog_json_string(line, sizeof(line), &pos, r->end);
    if (r->error) {
        append(line, sizeof(line), &pos, ",\"error\":");
        flowlog_json_string(line, sizeof(line), &pos, r->error);
    }
    if (r->tls) {
        append(line, sizeof(line), &pos, ",\"tls\":{\"sni\":");
        flowlog_json_string(line, sizeof(line), &pos, r->tls->sni);
        append(line, sizeof(line), &pos, ",\"version\":");
        flowlog_json_string(line, sizeof(line), &pos, r->tls->version);
        append(line, sizeof(line), &pos, ",\"alpn\":");
        flowlog_json_string(line, sizeof(line), &pos, r->tls->alpn);
        append(line, sizeof(line), &pos, ",\"intercepted\":%s",
               r->tls->intercepted ? "true" : "false");
        if (r->tls->intercepted)
            append(line, sizeof(line), &pos, ",\"upstream_resumed\":%s",
                   r->tls->upstream_resumed ? "true" : "false");
        if (!r->tls->intercepted && r->tls->error[0]) {
            append(line, sizeof(line), &pos, ",\"reason\":");
            flowlog_json_string(line, sizeof(line), &pos, r->tls->error);
        }
        append(line, sizeof(line), &pos, "}");
    }
    append(line, sizeof(line), &pos, "}\n");
    if (pos >= sizeof(line)) {
        log_warn("flow record #%" PRIu64 " too long for the flows file; dropped", r->id);
        return;
    }
    if (write(fl->fd, line, pos) != (ssize_t)pos)
        log_errno(LOG_WARN, "writing flow record #%" PRIu64, r->id);
}
