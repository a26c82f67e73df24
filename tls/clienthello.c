#include "clienthello.h"

#include <string.h>

#define RECORD_HEADER   5
#define RECORD_MAX      (16384 + 2048)
#define HANDSHAKE       22
#define CLIENT_HELLO    1
#define EXT_SERVER_NAME 0
#define EXT_ALPN        16
#define EXT_VERSIONS    43

/* A bounds-checked reader over the reassembled handshake message. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static int take(struct cursor *c, size_t n, const uint8_t **out)
{
    if (c->left < n)
        return -1;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int take_u8(struct cursor *c, size_t *v)
{
    const uint8_t *p;

    if (take(c, 1, &p) < 0)
        return -1;
    *v = p[0];
    return 0;
}

static int take_u16(struct cursor *c, size_t *v)
{
    const uint8_t *p;

    if (take(c, 2, &p) < 0)
        return -1;
    *v = (size_t)p[0] << 8 | p[1];
    return 0;
}

/* A sub-cursor over a length-prefixed vector (prefix of 1 or 2 bytes). */
static int take_vector(struct cursor *c, int prefix, struct cursor *sub)
{
    size_t n;
    const uint8_t *p;

    if ((prefix == 1 ? take_u8(c, &n) : take_u16(c, &n)) < 0 || take(c, n, &p) < 0)
        return -1;
    sub->p = p;
    sub->left = n;
    return 0;
}

/* A DNS name as a client may send it in SNI: letters, digits, '-', '_', '.'. */
static int valid_hostname(const uint8_t *name, size_t len)
{
    if (len == 0 || len > 255 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return 0;
    }
    return 1;
}

static int parse_sni(struct cursor ext, struct clienthello *ch)
{
    struct cursor list;
    size_t type;

    if (take_vector(&ext, 2, &list) < 0 || ext.left != 0)
        return -1;
    while (list.left > 0) {
        struct cursor name;
        if (take_u8(&list, &type) < 0 || take_vector(&list, 2, &name) < 0)
            return -1;
        if (type != 0 || ch->sni[0])
            continue; /* only the first host_name counts (RFC 6066 allows one) */
        if (!valid_hostname(name.p, name.left))
            return -1;
        memcpy(ch->sni, name.p, name.left);
        ch->sni[name.left] = '\0';
    }
    return 0;
}

static int parse_alpn(struct cursor ext, struct clienthello *ch)
{
    struct cursor list, walk;

    if (take_vector(&ext, 2, &list) < 0 || ext.left != 0 || list.left == 0 ||
        list.left > sizeof(ch->alpn))
        return -1;
    walk = list;
    while (walk.left > 0) {
        struct cursor proto;
        if (take_vector(&walk, 1, &proto) < 0 || proto.left == 0)
            return -1;
    }
    memcpy(ch->alpn, list.p, list.left);
    ch->alpn_len = list.left;
    return 0;
}

int clienthello_drop_h2(struct clienthello *ch)
{
    uint8_t kept[CLIENTHELLO_MAX_ALPN];
    size_t n = 0;
    int h2 = 0, http1 = 0;

    for (size_t i = 0; i < ch->alpn_len; i += 1u + ch->alpn[i]) {
        const uint8_t *proto = ch->alpn + i + 1;
        size_t len = ch->alpn[i];

        if (i + 1 + len > ch->alpn_len)
            return 0; /* not a list clienthello_parse accepted */
        if (len == 2 && memcmp(proto, "h2", 2) == 0) {
            h2 = 1;
            continue;
        }
        if (len == 8 && (memcmp(proto, "http/1.1", 8) == 0 || memcmp(proto, "http/1.0", 8) == 0))
            http1 = 1;
        memcpy(kept + n, ch->alpn + i, 1 + len);
        n += 1 + len;
    }
    if (!h2 || !http1)
        return 0;
    memcpy(ch->alpn, kept, n);
    ch->alpn_len = n;
    return 1;
}

static int parse_versions(struct cursor ext, struct clienthello *ch)
{
    struct cursor list;
    size_t v;

    if (take_vector(&ext, 1, &list) < 0 || ext.left != 0 || list.left == 0 || list.left % 2)
        return -1;
    ch->max_version = 0;
    ch->min_version = 0xffff;
    while (take_u16(&list, &v) == 0) {
        if ((v & 0x0f0f) == 0x0a0a)
            continue; /* GREASE (RFC 8701) */
        if (v > ch->max_version)
            ch->max_version = (uint16_t)v;
        if (v < ch->min_version)
            ch->min_version = (uint16_t)v;
    }
    if (ch->max_version == 0)
        return -1;
    return 0;
}

/* Parses a complete ClientHello body. */
static enum clienthello_result parse_body(struct cursor c, struct clienthello *ch)
{
    struct cursor skip, exts;
    const uint8_t *p;
    size_t v;
    int seen_sni = 0, seen_alpn = 0, seen_versions = 0;

    if (take_u16(&c, &v) < 0 || take(&c, 32, &p) < 0 || take_vector(&c, 1, &skip) < 0 ||
        skip.left > 32 || take_vector(&c, 2, &skip) < 0 || skip.left == 0 || skip.left % 2 ||
        take_vector(&c, 1, &skip) < 0 || skip.left == 0)
        return CLIENTHELLO_INVALID;
    if ((v >> 8) != 3)
        return CLIENTHELLO_INVALID;
    ch->legacy_version = ch->max_version = ch->min_version = (uint16_t)v;
    if (c.left == 0)
        return CLIENTHELLO_OK; /* no extensions at all */
    if (take_vector(&c, 2, &exts) < 0 || c.left != 0)
        return CLIENTHELLO_INVALID;
    while (exts.left > 0) {
        struct cursor ext;
        size_t type;
        int rc = 0;

        if (take_u16(&exts, &type) < 0 || take_vector(&exts, 2, &ext) < 0)
            return CLIENTHELLO_INVALID;
        switch (type) {
        case EXT_SERVER_NAME:
            rc = seen_sni++ ? -1 : parse_sni(ext, ch);
            break;
        case EXT_ALPN:
            rc = seen_alpn++ ? -1 : parse_alpn(ext, ch);
            break;
        case EXT_VERSIONS:
            rc = seen_versions++ ? -1 : parse_versions(ext, ch);
            break;
        }
        if (rc < 0)
            return CLIENTHELLO_INVALID;
    }
    return CLIENTHELLO_OK;
}

enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len, struct clienthello *ch)
{
    uint8_t msg[CLIENTHELLO_MAX_MESSAGE + 4];
    size_t have = 0, need = 0, off = 0;
    struct cursor body;

    memset(ch, 0, sizeof(*ch));
    /* Reassemble the handshake message from as many records as it spans. */
    for (;;) {
        size_t rlen, chunk;

        if (len - off < 1)
            return CLIENTHELLO_NEED_MORE;
        if (buf[off] != HANDSHAKE)
            return off == 0 ? CLIENTHELLO_NOT_TLS : CLIENTHELLO_INVALID;
        if (len - off >= 2 && buf[off + 1] != 3)
            return off == 0 ? CLIENTHELLO_NOT_TLS : CLIENTHELLO_INVALID;
        if (len - off < RECORD_HEADER)
            return CLIENTHELLO_NEED_MORE;
        rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
        if (rlen == 0 || rlen > RECORD_MAX)
            return off == 0 ? CLIENTHELLO_NOT_TLS : CLIENTHELLO_INVALID;
        if (len - off - RECORD_HEADER < rlen)
            return CLIENTHELLO_NEED_MORE;
        chunk = rlen;
        if (have + chunk > sizeof(msg))
            return CLIENTHELLO_INVALID;
        memcpy(msg + have, buf + off + RECORD_HEADER, chunk);
        have += chunk;
        off += RECORD_HEADER + rlen;
        if (have >= 4 && need == 0) {
            if (msg[0] != CLIENT_HELLO)
                return CLIENTHELLO_INVALID;
            need = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
            if (need > sizeof(msg))
                return CLIENTHELLO_INVALID;
        }
        if (need && have >= need)
            break;
    }
    body.p = msg + 4;
    body.left = need - 4;
    return parse_body(body, ch);
}

const char *clienthello_result_str(enum clienthello_result r)
{
    static const char *const names[] = {"ok", "need more", "not TLS", "invalid ClientHello"};

    return (unsigned)r < 4 ? names[r] : "?";
}
