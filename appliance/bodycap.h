/*
 * Body capture for HTTP records ([log] body_max, body_decode): the first bytes of one body as
 * they stream past, and on request those bytes inflated from gzip or deflate. zlib stays
 * behind this header.
 */
#ifndef MITMTUN_BODYCAP_H
#define MITMTUN_BODYCAP_H

#include <stddef.h>

struct bodycap;

/* Keeps up to max bytes of a body; with decode, also enough of an encoded one to inflate max. */
struct bodycap *bodycap_new(size_t max, int decode);
void bodycap_free(struct bodycap *b);
/* Forgets the body kept (for the next message). */
void bodycap_reset(struct bodycap *b);

/* More body bytes (de-chunked); encoding is the message's Content-Encoding or NULL. */
void bodycap_add(struct bodycap *b, const char *data, size_t len, const char *encoding);

/*
 * What the record keeps: NULL when nothing was captured; else at most max bytes, inflated when
 * decoding a gzip or deflate body (as far as the capture goes; raw bytes when it does not
 * inflate). The result stays valid until the next call on b.
 */
const char *bodycap_get(struct bodycap *b, const char *encoding, size_t *len);

#endif
