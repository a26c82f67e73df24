#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_threshold = LOG_INFO;
static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_threshold = level;
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

static void log_vwrite(enum log_level level, const char *fmt, va_list ap, const char *suffix)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    char line[1024];

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    vsnprintf(line, sizeof(line), fmt, ap);
    /* One fprintf per line keeps lines whole when stderr is shared. */
    fprintf(stderr, "%s.%03ld %-5s %s%s%s\n", stamp, ts.tv_nsec / 1000000L, log_names[level], line,
            suffix ? ": " : "", suffix ? suffix : "");
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
