#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_threshold = LOG_INFO;
static const char *const log_names[] = {"error", "warn", "info", "debug"};
static char log_source[32]; /* "worker 2: " in a worker process of several */

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

void log_set_source(const char *name)
{
    snprintf(log_source, sizeof(log_source), "%s%s", name, *name ? ": " : "");
}

int log_enabled(enum log_level level)
{
    return level <= log_threshold;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_DEBUG; i++)
        if (strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

size_t log_prefix(char *buf, enum log_level level)
{
    /* One line per HTTP exchange: the time is formatted once a second (per thread). */
    static __thread char stamp[9];
    static __thread time_t stamp_second = -1;
    struct timespec ts;
    struct tm tm;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != stamp_second) {
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
        stamp_second = ts.tv_sec;
    }
    ms = ts.tv_nsec / 1000000L;
    memcpy(buf, stamp, 8);
    buf[8] = '.';
    buf[9] = (char)('0' + ms / 100);
    buf[10] = (char)('0' + ms / 10 % 10);
    buf[11] = (char)('0' + ms % 10);
    buf[12] = ' ';
    memset(buf + 13, ' ', 6);
    memcpy(buf + 13, log_names[level], strlen(log_names[level]));
    return LOG_PREFIX_LEN;
}

/* "HH:MM:SS.mmm level text[: suffix]\n" into buf. */
static size_t log_vformat(char *buf, size_t len, enum log_level level, const char *fmt, va_list ap,
                          const char *suffix)
{
    char prefix[LOG_PREFIX_LEN], line[1024];
    int n;

    log_prefix(prefix, level);
    vsnprintf(line, sizeof(line), fmt, ap);
    n = snprintf(buf, len, "%.*s%s%s%s%s\n", LOG_PREFIX_LEN, prefix, log_source, line,
                 suffix ? ": " : "", suffix ? suffix : "");
    if (n < 0)
        return 0;
    if ((size_t)n >= len) { /* cut, but still one line */
        buf[len - 2] = '\n';
        return len - 1;
    }
    return (size_t)n;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap, const char *suffix)
{
    char out[1200];

    log_vformat(out, sizeof(out), level, fmt, ap, suffix);
    /* One fputs per line keeps lines whole when stderr is shared. */
    fputs(out, stderr);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap, NULL);
    va_end(ap);
}

void log_errno(enum log_level level, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap, strerror(saved));
    va_end(ap);
    errno = saved;
}

int log_every_due(struct log_every *e, int seconds)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (e->said && now.tv_sec - e->last < seconds)
        return 0;
    e->said = 1;
    e->last = now.tv_sec;
    return 1;
}

void log_every_reset(struct log_every *e)
{
    e->said = 0;
}
