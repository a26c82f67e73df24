/*
 * HTTP/1.x message framing on Debian's http-parser: one reader per direction of a stream. The
 * reader stores a message's head (request or status line and headers, bounded) and then tells
 * the caller how many of the following bytes belong to the body, so bodies are streamed on as
 * they arrived (chunked framing included) and never held. http_parser.h stays behind this file.
 *
 * Feeding: httpmsg_feed(r, data, len, &used) returns one event and how many bytes of data it
 * used; the caller drains those and feeds again (with the rest, or when more arrives):
 *   HTTPMSG_NEED_MORE  used bytes went into the head being stored; feed more
 *   HTTPMSG_HEAD       the head is complete (r->msg); used ends at the blank line
 *   HTTPMSG_BODY       used bytes are body (as framed on the wire): pass them on
 *   HTTPMSG_DONE       used bytes end the message (pass them on too); the reader is ready for the
 *                      next message, unless r->msg.upgrade (what follows is another protocol)
 *   HTTPMSG_ERROR      malformed; r->error says why, r->too_large for a head over the limit
 */
#ifndef MITMTUN_HTTPMSG_H
#define MITMTUN_HTTPMSG_H

#include <stddef.h>
#include <stdint.h>

#define HTTPMSG_MAX_HEADERS 128

enum httpmsg_event {
    HTTPMSG_NEED_MORE,
    HTTPMSG_HEAD,
    HTTPMSG_BODY,
    HTTPMSG_DONE,
    HTTPMSG_ERROR,
};

struct httpmsg_header {
    const char *name, *value; /* NUL-terminated, inside the message's store */
    int hop;                  /* hop-by-hop: httpmsg_hop_by_hop(m, name), found once */
};

/* One message's head. Pointers stay valid until the next message starts. */
struct httpmsg {
    const char *method; /* requests: "GET", ... */
    const char *target; /* requests: as sent (origin-form, absolute-form, authority-form) */
    int status;         /* responses */
    const char *reason; /* responses: the reason phrase */
    int major, minor;   /* HTTP version */
    int nheaders;
    unsigned chunked : 1;         /* Transfer-Encoding: chunked */
    unsigned has_length : 1;      /* Content-Length given */
    unsigned keep_alive : 1;      /* the connection may carry another message after this one */
    unsigned upgrade : 1;         /* requests: asks to switch protocols; responses: 101 */
    unsigned until_eof : 1;       /* responses: the body ends when the connection does */
    unsigned conn_close : 1;      /* a Connection header names "close" */
    unsigned conn_keep_alive : 1; /* a Connection header names "keep-alive" */
    uint64_t content_length;
    uint64_t body_bytes; /* decoded body bytes so far (chunk framing excluded) */
    /* last: a new message clears what comes before it only */
    struct httpmsg_header headers[HTTPMSG_MAX_HEADERS];
};

struct httpmsg_reader;

/* A reader of requests (is_request) or responses; heads over max_head bytes are refused. */
struct httpmsg_reader *httpmsg_reader_new(int is_request, size_t max_head);
void httpmsg_reader_free(struct httpmsg_reader *r);

/* The message being read (valid from HTTPMSG_HEAD on). */
const struct httpmsg *httpmsg_current(const struct httpmsg_reader *r);
/* Responses: the request was HEAD (or the like): the next response has no body. */
void httpmsg_expect_no_body(struct httpmsg_reader *r);

/* Body bytes (de-chunked, still content-encoded) go to sink as they are read, for capture. */
typedef void (*httpmsg_body_sink)(void *arg, const char *data, size_t len);
void httpmsg_set_body_sink(struct httpmsg_reader *r, httpmsg_body_sink sink, void *arg);

enum httpmsg_event httpmsg_feed(struct httpmsg_reader *r, const char *data, size_t len,
                                size_t *used);
/*
 * The stream ended. Returns HTTPMSG_DONE when that completes a message delimited by the end of
 * the stream, HTTPMSG_NEED_MORE when no message was under way, HTTPMSG_ERROR when one was cut.
 */
enum httpmsg_event httpmsg_eof(struct httpmsg_reader *r);
/* Why the last HTTPMSG_ERROR happened. */
const char *httpmsg_error(const struct httpmsg_reader *r);
/* The last error was a head over max_head bytes (or over HTTPMSG_MAX_HEADERS headers). */
int httpmsg_too_large(const struct httpmsg_reader *r);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *httpmsg_header(const struct httpmsg *m, const char *name);
/* Whether a comma-separated header list (Connection, ...) of m names token. */
int httpmsg_header_has_token(const struct httpmsg *m, const char *name, const char *token);
/* A hop-by-hop header (RFC 9110 7.6.1), or one that m's Connection header names. */
int httpmsg_hop_by_hop(const struct httpmsg *m, const char *name);

/*
 * Whether data (len bytes, the start of a stream) begins like an HTTP/1.x request: an
 * upper-case method token and a space. 1 yes, 0 no, -1 too short to tell.
 */
int httpmsg_sniff(const char *data, size_t len);

/*
 * Splits an absolute-form target "http://host[:port]/path?q" into its parts: host (IPv6 without
 * brackets), port (default_port when absent) and the origin-form path ("/" when empty). Also
 * authority-form "host:port" (CONNECT) when path is NULL. Returns 0 or -1 (malformed).
 */
int httpmsg_split_target(const char *target, char *scheme, size_t scheme_len, char *host,
                         size_t host_len, uint16_t *port, char *path, size_t path_len);

/* data as base64 into out (NUL-terminated, truncated to whole groups that fit). Returns its
 * length. */
size_t httpmsg_base64(const void *data, size_t len, char *out, size_t out_len);

#endif
