/*
 * Fuzz target: the HTTP request/response path. The first byte picks requests or responses and
 * a piece size; the rest is a client's (or server's) stream, fed the way http.c feeds it.
 */
#include "appliance/httpmsg.h"
#include "fuzz.h"

#include <string.h>

/* Feeds data in pieces of step bytes, as the connection code would; checks the invariants. */
static void fuzz_stream(int is_request, const char *data, size_t size, size_t step, size_t max_head)
{
    struct httpmsg_reader *r = httpmsg_reader_new(is_request, max_head);
    size_t off = 0, avail = step;
    int heads = 0, dones = 0;

    CHECK(r != NULL);
    for (int guard = 0; guard < 100000; guard++) {
        size_t n = off + avail <= size ? avail : size - off, used = 0;
        enum httpmsg_event ev = httpmsg_feed(r, data + off, n, &used);
        const struct httpmsg *m = httpmsg_current(r);

        CHECK(used <= n);
        off += used;
        if (ev == HTTPMSG_ERROR) {
            CHECK(httpmsg_error(r)[0] != '\0');
            break;
        }
        if (ev == HTTPMSG_HEAD) {
            heads++;
            CHECK(m->nheaders >= 0 && m->nheaders <= HTTPMSG_MAX_HEADERS);
            for (int i = 0; i < m->nheaders; i++)
                CHECK(m->headers[i].name && m->headers[i].value);
            /* every head is bounded */
            size_t total = 0;
            for (int i = 0; i < m->nheaders; i++)
                total += strlen(m->headers[i].name) + strlen(m->headers[i].value);
            CHECK(total <= max_head);
            if (is_request) {
                char scheme[16], host[256], path[4096];
                uint16_t port;
                CHECK(m->method && m->target);
                if (httpmsg_split_target(m->target, scheme, sizeof(scheme), host, sizeof(host),
                                         &port, path, sizeof(path)) == 0)
                    CHECK(port != 0 && path[0] == '/' && host[0] != '\0');
                httpmsg_split_target(m->target, NULL, 0, host, sizeof(host), &port, NULL, 0);
            } else {
                CHECK(m->reason != NULL);
            }
            /* what the head's parse found agrees with the lookups by name */
            for (int i = 0; i < m->nheaders; i++)
                CHECK(m->headers[i].hop == httpmsg_hop_by_hop(m, m->headers[i].name));
            CHECK(m->conn_close == httpmsg_header_has_token(m, "Connection", "close"));
            CHECK(m->conn_keep_alive == httpmsg_header_has_token(m, "Connection", "keep-alive"));
        }
        if (ev == HTTPMSG_DONE)
            dones++;
        CHECK(dones <= heads);
        if (ev == HTTPMSG_NEED_MORE && used == 0) {
            if (off == size)
                break;
            avail += step; /* the caller waits for more bytes */
            continue;
        }
        avail = step;
    }
    httpmsg_eof(r);
    httpmsg_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + (data[0] >> 1) % 64;
    int is_request = data[0] & 1;

    httpmsg_sniff((const char *)data + 1, size - 1);
    fuzz_stream(is_request, (const char *)data + 1, size - 1, step, 1024);
    fuzz_stream(is_request, (const char *)data + 1, size - 1, size, 65536);
    return 0;
}
