/* Unit tests for appliance/hostmatch.c: [tls] ignore_hosts patterns. */
#include "appliance/hostmatch.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static int match(const char *list, const char *name, const char *ip)
{
    uint8_t addr[16];
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;

    inet_pton(family, ip, addr);
    return hostmatch(list, name, family, addr);
}

static void test_names(void **state)
{
    const char *list = "*.bank.example, pay.example";

    (void)state;
    assert_int_equal(match(list, "www.bank.example", "192.0.2.1"), 0);
    assert_int_equal(match(list, "a.b.BANK.example", "192.0.2.1"), 0);
    assert_int_equal(match(list, "bank.example", "192.0.2.1"), -1); /* not the domain itself */
    assert_int_equal(match(list, "xbank.example", "192.0.2.1"), -1);
    assert_int_equal(match(list, "PAY.example", "192.0.2.1"), 1);
    assert_int_equal(match(list, "www.pay.example", "192.0.2.1"), -1);
    assert_int_equal(match(list, "", "192.0.2.1"), -1);
}

static void test_addresses(void **state)
{
    const char *list = "10.0.0.0/8, 192.0.2.128/25, 2001:db8::/32";

    (void)state;
    assert_int_equal(match(list, "", "10.200.3.4"), 0);
    assert_int_equal(match(list, "", "11.0.0.1"), -1);
    assert_int_equal(match(list, "", "192.0.2.200"), 1);
    assert_int_equal(match(list, "", "192.0.2.100"), -1);
    assert_int_equal(match(list, "x.example", "2001:db8:1::1"), 2);
    assert_int_equal(match(list, "", "2001:db9::1"), -1);
}

static void test_check(void **state)
{
    char err[256];

    (void)state;
    assert_int_equal(hostmatch_check("", err, sizeof(err)), 0);
    assert_int_equal(
        hostmatch_check(" *.a.example , b.example,10.0.0.0/8,fd00::/8 ", err, sizeof(err)), 0);
    assert_int_equal(hostmatch_check("a.example, bad/name", err, sizeof(err)), -1);
    assert_string_equal(
        err, "'bad/name' is neither a host name, a *.domain pattern nor an address/prefix");
    assert_int_equal(hostmatch_check("10.0.0.0/40", err, sizeof(err)), -1);
    assert_int_equal(hostmatch_check("*.", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
