/* Fuzz target: the first bytes a client sends on an intercepted port. */
#include "fuzz.h"
#include "tls/clienthello.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clienthello ch, again;
    enum clienthello_result r = clienthello_parse(data, size, &ch);

    if (r != CLIENTHELLO_OK)
        return 0;
    /* What we hand on is well-formed: a bounded host name, a bounded ALPN list. */
    CHECK(strlen(ch.sni) < sizeof(ch.sni));
    for (const char *p = ch.sni; *p; p++)
        CHECK(*p > ' ' && *p < 0x7f && *p != '/');
    CHECK(ch.alpn_len <= sizeof(ch.alpn));
    CHECK(ch.min_version <= ch.max_version);
    /* More bytes after a complete ClientHello change nothing. */
    {
        static uint8_t longer[70000];
        if (size + 16 <= sizeof(longer)) {
            memcpy(longer, data, size);
            memset(longer + size, 0x17, 16);
            CHECK(clienthello_parse(longer, size + 16, &again) == CLIENTHELLO_OK);
            CHECK(strcmp(again.sni, ch.sni) == 0 && again.alpn_len == ch.alpn_len);
        }
    }
    /* Taking h2 out leaves a shorter list of whole entries, without h2, still offering some. */
    again = ch;
    if (clienthello_drop_h2(&again)) {
        CHECK(again.alpn_len > 0 && again.alpn_len < ch.alpn_len);
        for (size_t i = 0; i < again.alpn_len; i += 1u + again.alpn[i]) {
            CHECK(again.alpn[i] > 0 && i + 1u + again.alpn[i] <= again.alpn_len);
            CHECK(!(again.alpn[i] == 2 && memcmp(again.alpn + i + 1, "h2", 2) == 0));
        }
    } else {
        CHECK(again.alpn_len == ch.alpn_len && memcmp(again.alpn, ch.alpn, ch.alpn_len) == 0);
    }
    return 0;
}
