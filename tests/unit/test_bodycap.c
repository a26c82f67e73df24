/* Unit tests for appliance/bodycap.c: truncation, and inflating what was kept. */
#include "appliance/bodycap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

static char text[20000];

static void fill_text(void)
{
    size_t n = 0;
    for (int i = 0; n + 64 < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "line %d of some compressible text\n", i);
}

/* text compressed with windowBits (31: gzip, 15: zlib, -15: raw deflate) into out. */
static size_t deflate_text(int bits, unsigned char *out, size_t cap)
{
    z_stream z;

    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)text;
    z.avail_in = (uInt)strlen(text);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    deflateEnd(&z);
    return cap - z.avail_out;
}

static void test_truncates_plain_bodies(void **state)
{
    struct bodycap *b = bodycap_new(10, 1);
    size_t len;
    (void)state;

    assert_null(bodycap_get(b, NULL, &len));
    bodycap_add(b, "hello ", 6, NULL);
    bodycap_add(b, "world, and more", 15, NULL);
    assert_memory_equal(bodycap_get(b, NULL, &len), "hello worl", 10);
    assert_int_equal(len, 10);
    bodycap_reset(b);
    bodycap_add(b, "abc", 3, NULL);
    assert_memory_equal(bodycap_get(b, NULL, &len), "abc", 3);
    assert_int_equal(len, 3);
    bodycap_free(b);
}

static void test_inflates(void **state)
{
    static unsigned char z[sizeof(text)];
    const int forms[] = {31, 15, -15};
    size_t len;
    (void)state;

    fill_text();
    for (int f = 0; f < 3; f++) {
        struct bodycap *b = bodycap_new(100, 1);
        size_t n = deflate_text(forms[f], z, sizeof(z));
        const char *coding = forms[f] == 31 ? "gzip" : "deflate";
        /* in pieces, as a body streams */
        for (size_t i = 0; i < n; i += 7)
            bodycap_add(b, (const char *)z + i, n - i < 7 ? n - i : 7, coding);
        const char *got = bodycap_get(b, coding, &len);
        assert_int_equal(len, 100);
        assert_memory_equal(got, text, 100);
        bodycap_free(b);
    }
}

static void test_decode_off_or_not_compressed(void **state)
{
    static unsigned char z[sizeof(text)];
    struct bodycap *off = bodycap_new(50, 0), *liar = bodycap_new(50, 1);
    size_t n, len;
    (void)state;

    fill_text();
    n = deflate_text(31, z, sizeof(z));
    bodycap_add(off, (const char *)z, n, "gzip");
    assert_memory_equal(bodycap_get(off, "gzip", &len), z, 50); /* kept as sent */
    assert_int_equal(len, 50);
    bodycap_add(liar, "plain text, not gzip at all, really", 35, "gzip");
    assert_memory_equal(bodycap_get(liar, "gzip", &len), "plain text", 10);
    assert_int_equal(len, 35);
    bodycap_free(off);
    bodycap_free(liar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncates_plain_bodies),
        cmocka_unit_test(test_inflates),
        cmocka_unit_test(test_decode_off_or_not_compressed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
