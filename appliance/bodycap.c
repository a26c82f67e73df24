#include "bodycap.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define ENCODED_EXTRA (64 * 1024) /* compressed bytes kept beyond max, to inflate max from */

struct bodycap {
    size_t max;
    int decode;
    char *raw; /* as it came */
    size_t raw_len, raw_cap;
    char *out; /* inflated, max bytes */
};

struct bodycap *bodycap_new(size_t max, int decode)
{
    struct bodycap *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->max = max;
    b->decode = decode;
    return b;
}

void bodycap_free(struct bodycap *b)
{
    if (!b)
        return;
    free(b->raw);
    free(b->out);
    free(b);
}

void bodycap_reset(struct bodycap *b)
{
    b->raw_len = 0;
}

static int bodycap_inflatable(const struct bodycap *b, const char *encoding)
{
    return b->decode && encoding &&
           (strcasecmp(encoding, "gzip") == 0 || strcasecmp(encoding, "deflate") == 0);
}

void bodycap_add(struct bodycap *b, const char *data, size_t len, const char *encoding)
{
    size_t limit = b->max + (bodycap_inflatable(b, encoding) ? ENCODED_EXTRA : 0);
    size_t take = limit > b->raw_len ? limit - b->raw_len : 0;

    if (take > len)
        take = len;
    if (take == 0)
        return;
    if (b->raw_len + take > b->raw_cap) {
        char *grown = realloc(b->raw, limit);
        if (!grown)
            return; /* the record goes without: nothing else depends on it */
        b->raw = grown;
        b->raw_cap = limit;
    }
    memcpy(b->raw + b->raw_len, data, take);
    b->raw_len += take;
}

/* Inflates the capture into b->out (zlib or gzip by its header, else raw deflate). Returns
 * the bytes made, 0 when it does not inflate. */
static size_t bodycap_inflate(struct bodycap *b)
{
    z_stream z;

    if (!b->out && !(b->out = malloc(b->max)))
        return 0;
    for (int i = 0; i < 2; i++) {
        int bits = i == 0 ? 15 + 32 : -15, rc;
        size_t made;

        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, bits) != Z_OK)
            return 0;
        z.next_in = (Bytef *)b->raw;
        z.avail_in = (uInt)b->raw_len;
        z.next_out = (Bytef *)b->out;
        z.avail_out = (uInt)b->max;
        rc = inflate(&z, Z_SYNC_FLUSH);
        made = b->max - z.avail_out;
        inflateEnd(&z);
        if ((rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR) && made > 0)
            return made;
    }
    return 0;
}

const char *bodycap_get(struct bodycap *b, const char *encoding, size_t *len)
{
    size_t made;

    if (b->raw_len == 0)
        return NULL;
    if (bodycap_inflatable(b, encoding) && (made = bodycap_inflate(b)) > 0) {
        *len = made;
        return b->out;
    }
    *len = b->raw_len < b->max ? b->raw_len : b->max;
    return b->raw; /* not encoded, or not what it said: as sent */
}
