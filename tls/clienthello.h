/*
 * Reading a TLS ClientHello without answering it: the server name (SNI), the ALPN offer and the
 * versions offered, from the first bytes a client sends. Handles a ClientHello split over
 * several TCP segments (call again with more bytes) or several TLS records. Pure code over a
 * byte buffer, no OpenSSL: unit-tested and fuzzed.
 */
#ifndef MITMTUN_CLIENTHELLO_H
#define MITMTUN_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

#define CLIENTHELLO_MAX_MESSAGE 16384 /* a longer ClientHello is refused as invalid */
#define CLIENTHELLO_MAX_ALPN    512

enum clienthello_result {
    CLIENTHELLO_OK,        /* parsed; the fields are filled */
    CLIENTHELLO_NEED_MORE, /* a prefix of a possible ClientHello: read more, call again */
    CLIENTHELLO_NOT_TLS,   /* the first bytes are not a TLS handshake record */
    CLIENTHELLO_INVALID,   /* TLS records, but no well-formed ClientHello in them */
};

struct clienthello {
    char sni[256];                      /* host_name, "" when the client sent none */
    uint8_t alpn[CLIENTHELLO_MAX_ALPN]; /* the ALPN protocol list, in wire format */
    size_t alpn_len;                    /* 0: no ALPN extension */
    uint16_t legacy_version;            /* ClientHello.legacy_version */
    uint16_t max_version;               /* highest offered (supported_versions, or legacy) */
    uint16_t min_version;               /* lowest offered */
};

/* Parses the ClientHello at the start of buf (len bytes received so far). */
enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len, struct clienthello *ch);

/*
 * Takes "h2" out of ch's ALPN offer when the offer keeps an HTTP/1.x protocol, so that the
 * server picks HTTP/1.1 and every exchange can be recorded. Returns 1 if it took it out.
 */
int clienthello_drop_h2(struct clienthello *ch);

/* A short name of a result, for log lines. */
const char *clienthello_result_str(enum clienthello_result r);

#endif
