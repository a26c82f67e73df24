#include "httpmsg.h"

#include <http_parser.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEAD_START 1024 /* bytes a reader's head store starts with */

enum piece { PIECE_NONE, PIECE_URL, PIECE_STATUS, PIECE_FIELD, PIECE_VALUE };

struct httpmsg_reader {
    http_parser parser;
    http_parser_settings settings;
    struct httpmsg msg;
    int started;             /* a message has begun (its first byte was read) */
    int in_body;             /* the head was returned; bytes now are body */
    int done_pending;        /* the message ended with its head: report DONE next */
    int skip_body;           /* responses: the request was HEAD */
    int too_large;           /* the last error: the head did not fit */
    int head_done, msg_done; /* set by the callbacks of one execute */
    enum piece piece;        /* what the last data callback was storing */
    size_t url_off, status_off;
    size_t name_off[HTTPMSG_MAX_HEADERS], value_off[HTTPMSG_MAX_HEADERS];
    char error[128];
    httpmsg_body_sink sink; /* body capture, or NULL */
    void *sink_arg;
    char *store;     /* the head's strings, NUL-terminated one after another */
    size_t cap, len; /* store's size (grown on demand) and use */
    size_t max;      /* the limit on cap */
};

/* Makes room for n more bytes in the store, up to max. */
static int store_reserve(struct httpmsg_reader *r, size_t n)
{
    size_t cap = r->cap;
    char *grown;

    if (n <= r->cap - r->len)
        return 0;
    if (n > r->max - r->len) {
        r->too_large = 1;
        return -1;
    }
    while (cap - r->len < n)
        cap = cap * 2 < r->max ? cap * 2 : r->max;
    grown = realloc(r->store, cap);
    if (!grown)
        return -1;
    r->store = grown;
    r->cap = cap;
    return 0;
}

/* Ends the string being stored (NUL) and starts the next at len. */
static int store_end_piece(struct httpmsg_reader *r)
{
    if (r->piece == PIECE_NONE)
        return 0;
    if (store_reserve(r, 1) < 0)
        return -1;
    r->store[r->len++] = '\0';
    r->piece = PIECE_NONE;
    return 0;
}

/* Appends a fragment of piece p, starting a new string when p changes. */
static int store_piece(struct httpmsg_reader *r, enum piece p, const char *at, size_t n)
{
    if (r->piece != p) {
        if (store_end_piece(r) < 0)
            return -1;
        r->piece = p;
        switch (p) {
        case PIECE_URL:
            r->url_off = r->len;
            break;
        case PIECE_STATUS:
            r->status_off = r->len;
            break;
        case PIECE_FIELD:
            if (r->msg.nheaders >= HTTPMSG_MAX_HEADERS) {
                r->too_large = 1;
                return -1;
            }
            r->name_off[r->msg.nheaders++] = r->len;
            r->value_off[r->msg.nheaders - 1] = SIZE_MAX;
            break;
        case PIECE_VALUE:
            if (r->msg.nheaders == 0)
                return -1;
            r->value_off[r->msg.nheaders - 1] = r->len;
            break;
        case PIECE_NONE:
            break;
        }
    }
    if (store_reserve(r, n) < 0)
        return -1;
    memcpy(r->store + r->len, at, n);
    r->len += n;
    return 0;
}

static struct httpmsg_reader *reader_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct httpmsg_reader *r = reader_of(p);

    memset(&r->msg, 0, offsetof(struct httpmsg, headers));
    r->started = 1;
    r->len = 0;
    r->piece = PIECE_NONE;
    r->url_off = r->status_off = SIZE_MAX;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return store_piece(reader_of(p), PIECE_URL, at, n);
}

static int on_status(http_parser *p, const char *at, size_t n)
{
    return store_piece(reader_of(p), PIECE_STATUS, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    return store_piece(reader_of(p), PIECE_FIELD, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    return store_piece(reader_of(p), PIECE_VALUE, at, n);
}

static int list_next(const char **list, size_t *len);
static int fixed_hop_by_hop(const char *name);

/* Marks hop-by-hop headers, and notes the Connection tokens that matter to keep-alive. */
static void mark_hop_by_hop(struct httpmsg *m)
{
    int first = m->nheaders; /* the first Connection header */

    for (int i = 0; i < m->nheaders; i++) {
        m->headers[i].hop = fixed_hop_by_hop(m->headers[i].name);
        /* Connection is the one fixed hop-by-hop header whose name begins with a 'c' */
        if (m->headers[i].hop && (m->headers[i].name[0] | 0x20) == 'c' && first > i)
            first = i;
    }
    for (int i = first; i < m->nheaders; i++) {
        const char *list = m->headers[i].value;
        size_t len;

        if (strcasecmp(m->headers[i].name, "Connection") != 0)
            continue;
        while (list_next(&list, &len)) {
            const char *token = list - len;
            if (len == 5 && strncasecmp(token, "close", 5) == 0)
                m->conn_close = 1;
            else if (len == 10 && strncasecmp(token, "keep-alive", 10) == 0)
                m->conn_keep_alive = 1;
            for (int j = 0; j < m->nheaders; j++)
                if (!m->headers[j].hop && strncasecmp(m->headers[j].name, token, len) == 0 &&
                    m->headers[j].name[len] == '\0')
                    m->headers[j].hop = 1;
        }
    }
}

static int on_headers_complete(http_parser *p)
{
    struct httpmsg_reader *r = reader_of(p);
    struct httpmsg *m = &r->msg;
    static const char empty[] = "";

    if (store_end_piece(r) < 0)
        return -1;
    for (int i = 0; i < m->nheaders; i++) {
        m->headers[i].name = r->store + r->name_off[i];
        m->headers[i].value = r->value_off[i] == SIZE_MAX ? empty : r->store + r->value_off[i];
    }
    mark_hop_by_hop(m);
    m->major = p->http_major;
    m->minor = p->http_minor;
    if (p->type == HTTP_REQUEST) {
        m->method = http_method_str((enum http_method)p->method);
        m->target = r->url_off == SIZE_MAX ? empty : r->store + r->url_off;
    } else {
        m->status = p->status_code;
        m->reason = r->status_off == SIZE_MAX ? empty : r->store + r->status_off;
    }
    m->chunked = (p->flags & F_CHUNKED) != 0;
    m->has_length = (p->flags & F_CONTENTLENGTH) != 0;
    m->content_length = m->has_length ? p->content_length : 0;
    m->upgrade = p->upgrade || (p->type == HTTP_RESPONSE && p->status_code == 101);
    r->head_done = 1;
    http_parser_pause(p, 1);
    /* No body, whatever Content-Length says: HEAD's answer, 1xx, 204, 304 (RFC 9110 6.4.1). */
    if (p->type == HTTP_RESPONSE &&
        ((r->skip_body && m->status >= 200) || (m->status < 200 && m->status != 101) ||
         m->status == 204 || m->status == 304))
        return 1;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct httpmsg_reader *r = reader_of(p);

    r->msg.body_bytes += n;
    if (r->sink)
        r->sink(r->sink_arg, at, n);
    return 0;
}

void httpmsg_set_body_sink(struct httpmsg_reader *r, httpmsg_body_sink sink, void *arg)
{
    r->sink = sink;
    r->sink_arg = arg;
}

static int on_message_complete(http_parser *p)
{
    struct httpmsg_reader *r = reader_of(p);

    r->msg_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

struct httpmsg_reader *httpmsg_reader_new(int is_request, size_t max_head)
{
    struct httpmsg_reader *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->max = max_head;
    r->cap = max_head < HEAD_START ? max_head : HEAD_START;
    r->store = malloc(r->cap);
    if (!r->store) {
        free(r);
        return NULL;
    }
    /* The parser's own limit (process-wide) sits above ours, so ours is the one that answers. */
    http_parser_set_max_header_size((uint32_t)max_head + 1024);
    http_parser_init(&r->parser, is_request ? HTTP_REQUEST : HTTP_RESPONSE);
    r->parser.data = r;
    http_parser_settings_init(&r->settings);
    r->settings.on_message_begin = on_message_begin;
    r->settings.on_url = on_url;
    r->settings.on_status = on_status;
    r->settings.on_header_field = on_header_field;
    r->settings.on_header_value = on_header_value;
    r->settings.on_headers_complete = on_headers_complete;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_message_complete;
    return r;
}

void httpmsg_reader_free(struct httpmsg_reader *r)
{
    if (r)
        free(r->store);
    free(r);
}

const struct httpmsg *httpmsg_current(const struct httpmsg_reader *r)
{
    return &r->msg;
}

void httpmsg_expect_no_body(struct httpmsg_reader *r)
{
    r->skip_body = 1;
}

static enum httpmsg_event reader_fail(struct httpmsg_reader *r)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);

    if (r->too_large)
        snprintf(r->error, sizeof(r->error), "header section over %zu bytes or %d headers", r->max,
                 HTTPMSG_MAX_HEADERS);
    else if (e == HPE_HEADER_OVERFLOW)
        snprintf(r->error, sizeof(r->error), "header section too large");
    else
        snprintf(r->error, sizeof(r->error), "%s", http_errno_description(e));
    r->too_large = r->too_large || e == HPE_HEADER_OVERFLOW;
    return HTTPMSG_ERROR;
}

/* The message ended: keep-alive is known now; the next message starts afresh. */
static enum httpmsg_event reader_done(struct httpmsg_reader *r)
{
    r->msg.keep_alive = http_should_keep_alive(&r->parser) != 0;
    r->in_body = 0;
    r->started = 0;
    r->done_pending = 0;
    if (r->msg.status == 0 || r->msg.status >= 200)
        r->skip_body = 0; /* an interim 1xx leaves it for the final response */
    return HTTPMSG_DONE;
}

static size_t reader_execute(struct httpmsg_reader *r, const char *data, size_t len)
{
    size_t n;

    r->head_done = r->msg_done = 0;
    /* Unpausing a parser in an error state asserts: callers stop at the first error. */
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED)
        http_parser_pause(&r->parser, 0);
    n = http_parser_execute(&r->parser, &r->settings, data, len);
    return n;
}

static int reader_ok(const struct httpmsg_reader *r)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);

    return e == HPE_OK || e == HPE_PAUSED;
}

enum httpmsg_event httpmsg_feed(struct httpmsg_reader *r, const char *data, size_t len,
                                size_t *used)
{
    size_t n;

    *used = 0;
    if (!reader_ok(r))
        return HTTPMSG_ERROR; /* errors stick: the stream is not HTTP we can follow */
    if (r->done_pending)
        return reader_done(r);
    if (len == 0)
        return HTTPMSG_NEED_MORE;
    n = reader_execute(r, data, len);
    if (!reader_ok(r))
        return reader_fail(r);
    if (!r->in_body) {
        if (!r->head_done) {
            *used = n;
            return HTTPMSG_NEED_MORE;
        }
        /*
         * The parser pauses on the head's last byte (the blank line's LF) without taking it:
         * take it now, so the head is whole; a message without a body ends with it.
         */
        if (n < len) {
            size_t m = reader_execute(r, data + n, 1);
            if (!reader_ok(r))
                return reader_fail(r);
            n += m;
            if (r->msg_done)
                r->done_pending = 1;
        }
        r->in_body = 1;
        r->msg.until_eof = !r->done_pending && !r->msg.chunked && !r->msg.has_length &&
                           r->parser.type == HTTP_RESPONSE;
        *used = n;
        return HTTPMSG_HEAD;
    }
    *used = n;
    if (r->msg_done)
        return reader_done(r);
    return HTTPMSG_BODY;
}

enum httpmsg_event httpmsg_eof(struct httpmsg_reader *r)
{
    if (!reader_ok(r))
        return HTTPMSG_ERROR;
    if (r->done_pending)
        return reader_done(r);
    if (!r->started)
        return HTTPMSG_NEED_MORE;
    reader_execute(r, NULL, 0);
    if (!reader_ok(r))
        return reader_fail(r);
    if (r->msg_done)
        return reader_done(r);
    snprintf(r->error, sizeof(r->error), "the stream ended inside a message");
    return HTTPMSG_ERROR;
}

const char *httpmsg_error(const struct httpmsg_reader *r)
{
    return r->error;
}

int httpmsg_too_large(const struct httpmsg_reader *r)
{
    return r->too_large;
}

const char *httpmsg_header(const struct httpmsg *m, const char *name)
{
    int first = name[0] | 0x20; /* most names differ in it: no call for those */

    for (int i = 0; i < m->nheaders; i++)
        if ((m->headers[i].name[0] | 0x20) == first && strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

/*
 * Steps *list past its next element of a comma-separated list (spaces trimmed): returns 1 with
 * the element ending at *list (its length in *len), or 0 at the end.
 */
static int list_next(const char **list, size_t *len)
{
    const char *p = *list, *start, *end;

    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    if (!*p)
        return 0;
    start = p;
    while (*p && *p != ',')
        p++;
    end = p;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *len = (size_t)(end - start);
    *list = end;
    return 1;
}

int httpmsg_header_has_token(const struct httpmsg *m, const char *name, const char *token)
{
    size_t want = strlen(token), len;

    for (int i = 0; i < m->nheaders; i++) {
        const char *list = m->headers[i].value;
        if (strcasecmp(m->headers[i].name, name) != 0)
            continue;
        while (list_next(&list, &len))
            if (len == want && strncasecmp(list - len, token, len) == 0)
                return 1;
    }
    return 0;
}

/* The hop-by-hop headers RFC 9110 7.6.1 names, and those of RFC 7230 6.1 still sent. */
static int fixed_hop_by_hop(const char *name)
{
    switch (name[0] | 0x20) { /* each header is checked: one comparison for most */
    case 'c':
        return strcasecmp(name, "Connection") == 0;
    case 'k':
        return strcasecmp(name, "Keep-Alive") == 0;
    case 'p':
        return strncasecmp(name, "Proxy-", 6) == 0 && (strcasecmp(name + 6, "Connection") == 0 ||
                                                       strcasecmp(name + 6, "Authenticate") == 0 ||
                                                       strcasecmp(name + 6, "Authorization") == 0);
    case 't':
        return strcasecmp(name, "TE") == 0 || strcasecmp(name, "Trailer") == 0;
    case 'u':
        return strcasecmp(name, "Upgrade") == 0;
    default:
        return 0;
    }
}

int httpmsg_hop_by_hop(const struct httpmsg *m, const char *name)
{
    return fixed_hop_by_hop(name) || httpmsg_header_has_token(m, "Connection", name);
}

static int copy_field(const char *target, const struct http_parser_url *u, int field, char *out,
                      size_t out_len)
{
    size_t n = u->field_data[field].len;

    if (!(u->field_set & (1 << field)) || n >= out_len)
        return -1;
    memcpy(out, target + u->field_data[field].off, n);
    out[n] = '\0';
    return 0;
}

int httpmsg_split_target(const char *target, char *scheme, size_t scheme_len, char *host,
                         size_t host_len, uint16_t *port, char *path, size_t path_len)
{
    struct http_parser_url u;
    size_t len = strlen(target);
    int authority = path == NULL;

    http_parser_url_init(&u);
    if (http_parser_parse_url(target, len, authority, &u) != 0)
        return -1;
    if (copy_field(target, &u, UF_HOST, host, host_len) < 0 || !*host)
        return -1;
    if (authority) {
        if (!(u.field_set & (1 << UF_PORT)))
            return -1;
        *port = u.port;
        return *port ? 0 : -1;
    }
    if (copy_field(target, &u, UF_SCHEMA, scheme, scheme_len) < 0)
        return -1;
    for (char *s = scheme; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
    if (strcmp(scheme, "http") == 0)
        *port = 80;
    else if (strcmp(scheme, "https") == 0)
        *port = 443;
    else
        return -1;
    if (u.field_set & (1 << UF_PORT))
        *port = u.port;
    if (*port == 0)
        return -1;
    /* The origin-form: path and query as sent (from the path on to the end, fragment aside). */
    size_t from = len, to = len;
    if (u.field_set & (1 << UF_PATH))
        from = u.field_data[UF_PATH].off;
    else if (u.field_set & (1 << UF_QUERY))
        from = (size_t)u.field_data[UF_QUERY].off - 1;
    if (u.field_set & (1 << UF_FRAGMENT))
        to = (size_t)u.field_data[UF_FRAGMENT].off - 1;
    int n = snprintf(path, path_len, "%s%.*s", from < len && target[from] == '/' ? "" : "/",
                     (int)(to > from ? to - from : 0), target + from);
    return n > 0 && (size_t)n < path_len ? 0 : -1;
}

int httpmsg_sniff(const char *data, size_t len)
{
    static const char *const methods[] = {"GET",     "POST",  "PUT",   "HEAD",     "DELETE",
                                          "OPTIONS", "PATCH", "TRACE", "CONNECT",  "PROPFIND",
                                          "MKCOL",   "COPY",  "MOVE",  "PROPPATCH"};
    size_t n = 0;

    while (n < len && n < 10 && data[n] >= 'A' && data[n] <= 'Z')
        n++;
    if (n == len && n < 10)
        return -1;
    if (n == 0 || n >= len || data[n] != ' ')
        return 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i]) == n && memcmp(methods[i], data, n) == 0)
            return 1;
    return 0;
}

size_t httpmsg_base64(const void *data, size_t len, char *out, size_t out_len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t o = 0;

    if (out_len == 0)
        return 0;
    for (size_t i = 0; i < len && o + 4 < out_len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}
