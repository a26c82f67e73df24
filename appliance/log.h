/* Console logging: one line per event, a level, and the connection id where there is one. */
#ifndef MITMTUN_LOG_H
#define MITMTUN_LOG_H

#include <stddef.h>
#include <time.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
/* Names the process (a worker of several) at the start of each message; "" for none. */
void log_set_source(const char *name);
int log_enabled(enum log_level level);

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As log_msg, with ": strerror(errno)" appended. */
void log_errno(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The start of a console line, "HH:MM:SS.mmm level ", as log_msg prints it, into buf (which has
 * room for LOG_PREFIX_LEN bytes, not NUL-terminated): for callers that batch their lines (flow
 * records). Returns LOG_PREFIX_LEN.
 */
#define LOG_PREFIX_LEN 19
size_t log_prefix(char *buf, enum log_level level);

/*
 * A warning repeated while a condition lasts (a full table, a full disk): log_every_due says
 * whether to say it now, the first time and then every seconds; log_every_reset when the
 * condition is over, so that its next start is said at once.
 */
struct log_every {
    time_t last; /* CLOCK_MONOTONIC second it was last said */
    int said;
};
int log_every_due(struct log_every *e, int seconds);
void log_every_reset(struct log_every *e);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
