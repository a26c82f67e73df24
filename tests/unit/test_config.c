/* Unit tests for appliance/config.c: defaults, every kind of value, and the error messages. */
#include "appliance/config.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static char path[64];

/* Writes text to a fresh temporary file named in path. */
static void write_ini(const char *text)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/mitmtun-test-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int load(const char *text, char *const *sets, int nsets, struct config *cfg, char *err)
{
    int rc;

    write_ini(text);
    rc = config_load(cfg, path, sets, nsets, err, 512);
    unlink(path);
    return rc;
}

/* Loads text and expects failure with a message containing want. */
static void assert_refused(const char *text, const char *want)
{
    struct config cfg;
    char err[512] = "";

    assert_int_equal(load(text, NULL, 0, &cfg, err), -1);
    if (!strstr(err, want))
        fail_msg("message '%s' lacks '%s'", err, want);
}

static void test_defaults(void **state)
{
    struct config cfg;
    char err[512], addr[64];

    (void)state;
    assert_int_equal(load("", NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.tun.name, "mitm0");
    inet_ntop(AF_INET, &cfg.tun.addr, addr, sizeof(addr));
    assert_string_equal(addr, "10.200.0.1");
    assert_int_equal(cfg.tun.prefix, 24);
    assert_int_equal(cfg.tun.prefix6, 0);
    assert_int_equal(cfg.tun.mtu, 1500);
    assert_int_equal(cfg.routing.mode, ROUTING_NONE);
    assert_int_equal(cfg.routing.table, 200);
    assert_int_equal(cfg.routing.mark, 0x6d74);
    assert_int_equal(cfg.routing.nuids, 0);
    assert_int_equal(cfg.tcp.connect_timeout, 10);
    assert_int_equal(cfg.udp.idle_timeout, 60);
    assert_int_equal(cfg.udp.relay_quic, 0);
    assert_int_equal(cfg.icmp.echo, ICMP_ECHO_RELAY);
    assert_string_equal(cfg.log.flows, "flows.jsonl");
    assert_int_equal(cfg.proxy.nlisten, 2);
    assert_int_equal(cfg.proxy.listen[0].kind, LISTEN_TUN);
    assert_int_equal(cfg.proxy.listen[1].kind, LISTEN_LAN);
    assert_int_equal(cfg.proxy.listen[1].port, 8080);
    assert_string_equal(cfg.proxy.auth, "");
    assert_int_equal(cfg.proxy.allow_local, 0);
    assert_int_equal(cfg.proxy.nhttp_ports, 1);
    assert_int_equal(cfg.proxy.http_ports[0].first, 80);
    assert_int_equal(cfg.proxy.max_header_bytes, 65536);
    assert_int_equal(cfg.proxy.idle_timeout, 120);
    assert_string_equal(cfg.proxy.onboarding_host, "mitm.it");
    assert_int_equal(cfg.log.body_max, 0);
}

static void test_proxy_values(void **state)
{
    struct config cfg;
    char err[512], addr[64];

    (void)state;
    assert_int_equal(load("[proxy]\nlisten = 127.0.0.1:3128, [fd00::1]:8888, lan:9\n"
                          "auth = u:p:w\nhttp_ports = 80, 8000-8010\nonboarding_host =\n"
                          "[log]\nbody_max = 4096\nbody_decode = yes\n",
                          NULL, 0, &cfg, err),
                     0);
    assert_int_equal(cfg.proxy.nlisten, 3);
    assert_int_equal(cfg.proxy.listen[0].kind, LISTEN_ADDR);
    assert_int_equal(cfg.proxy.listen[0].family, AF_INET);
    assert_int_equal(cfg.proxy.listen[0].port, 3128);
    inet_ntop(AF_INET6, cfg.proxy.listen[1].addr, addr, sizeof(addr));
    assert_string_equal(addr, "fd00::1");
    assert_int_equal(cfg.proxy.listen[1].port, 8888);
    assert_int_equal(cfg.proxy.listen[2].kind, LISTEN_LAN);
    assert_string_equal(cfg.proxy.auth, "u:p:w");
    assert_int_equal(cfg.proxy.http_ports[1].last, 8010);
    assert_string_equal(cfg.proxy.onboarding_host, "");
    assert_int_equal(cfg.log.body_max, 4096);
    assert_int_equal(cfg.log.body_decode, 1);
    assert_int_equal(load("[proxy]\nlisten = off\n", NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.proxy.nlisten, 0);
    assert_refused("[proxy]\nlisten = 8080\n", "[proxy] listen: '8080': expected a list of");
    assert_refused("[proxy]\nlisten = tun:0\n", "[proxy] listen");
    assert_refused("[proxy]\nlisten = example.com:80\n", "[proxy] listen");
    assert_refused("[proxy]\nlisten = [fd00::1:80\n", "[proxy] listen");
    assert_refused("[proxy]\nauth = nopassword\n",
                   "[proxy] auth: 'nopassword': expected user:password");
    assert_refused("[proxy]\nmax_header_bytes = 10\n", "[proxy] max_header_bytes");
    assert_refused("[proxy]\nonboarding_host = Mitm It\n", "[proxy] onboarding_host");
    assert_refused("[proxy]\nhttp_ports = 0\n", "[proxy] http_ports");
}

static void test_shipped_configs_load(void **state)
{
    const char *files[] = {"mitmtun.ini", "device.ini", "hotspot.ini"};
    struct config cfg;
    char file[512], err[512];

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        snprintf(file, sizeof(file), "%s/%s", TEST_CONFIGS_DIR, files[i]);
        if (config_load(&cfg, file, NULL, 0, err, sizeof(err)) != 0)
            fail_msg("%s", err);
    }
    snprintf(file, sizeof(file), "%s/hotspot.ini", TEST_CONFIGS_DIR);
    assert_int_equal(config_load(&cfg, file, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.routing.mode, ROUTING_GATEWAY);
    assert_string_equal(cfg.routing.lan_interface, "wlan0");
    assert_int_equal(cfg.tun.prefix6, 64);
}

static void test_values(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(load("[tun]\nname = tun7\naddress = 192.168.7.1/30\naddress6 = fd00::1/64\n"
                          "mtu = 9000\n[routing]\nmode = device\nmark = 0x10\nuids = 1000, "
                          "2000-2099\n[udp]\nrelay_quic = yes\n[icmp]\necho = drop\n",
                          NULL, 0, &cfg, err),
                     0);
    assert_string_equal(cfg.tun.name, "tun7");
    assert_int_equal(cfg.tun.prefix, 30);
    assert_int_equal(cfg.tun.prefix6, 64);
    assert_int_equal(cfg.tun.mtu, 9000);
    assert_int_equal(cfg.routing.mode, ROUTING_DEVICE);
    assert_int_equal(cfg.routing.mark, 16);
    assert_int_equal(cfg.routing.nuids, 2);
    assert_int_equal(cfg.routing.uids[1].first, 2000);
    assert_int_equal(cfg.routing.uids[1].last, 2099);
    assert_int_equal(cfg.udp.relay_quic, 1);
    assert_int_equal(cfg.icmp.echo, ICMP_ECHO_DROP);
}

static void test_errors_name_file_key_value(void **state)
{
    (void)state;
    assert_refused("[tun]\nmtu = abc\n", "[tun] mtu: 'abc': expected a whole number from 1280");
    assert_refused("[tun]\nmtu = 100\n", "[tun] mtu: '100'");
    assert_refused("[tun]\naddress = 10.0.0.1\n", "[tun] address: '10.0.0.1': expected an IPv4");
    assert_refused("[tun]\naddress = 10.0.0.1/33\n", "[tun] address");
    assert_refused("[tun]\naddress6 = 10.0.0.1/24\n", "[tun] address6");
    assert_refused("[tun]\nname = a-very-long-interface-name\n", "[tun] name");
    assert_refused("[routing]\nmode = bridge\n", "expected one of none|gateway|device");
    assert_refused("[routing]\nmode = gateway\n", "[routing] lan_interface: required");
    assert_refused("[routing]\nuids = 1000\n", "[routing] uids: only used with mode = device");
    assert_refused("[routing]\nmode = device\nuids = bob\n", "[routing] uids: 'bob'");
    assert_refused("[routing]\nmark = -1\n", "[routing] mark");
    assert_refused("[udp]\nrelay_quic = maybe\n", "expected yes or no");
    assert_refused("[tun]\nmtuu = 1500\n", "[tun] mtuu: unknown key");
    assert_refused("[tunnel]\nmtu = 1500\n", "[tunnel]: unknown section");
    assert_refused("[tun\nmtu = 1500\n", "not a valid INI file");
}

static void test_error_names_the_file(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(load("[tun]\nmtu = x\n", NULL, 0, &cfg, err), -1);
    assert_non_null(strstr(err, "/tmp/mitmtun-test-"));
    assert_int_equal(config_load(&cfg, "/nonexistent/mitmtun.ini", NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/mitmtun.ini: cannot open"));
}

static void test_set_overrides(void **state)
{
    char set1[] = "tun.mtu=1400", set2[] = "routing.mode=gateway",
         set3[] = "routing.lan_interface=veth0", bad1[] = "tun.nope=1", bad2[] = "mtu=1400",
         bad3[] = "tun.mtu=huge";
    char *sets[] = {set1, set2, set3};
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(load("[tun]\nmtu = 1500\n", sets, 3, &cfg, err), 0);
    assert_int_equal(cfg.tun.mtu, 1400);
    assert_int_equal(cfg.routing.mode, ROUTING_GATEWAY);
    assert_string_equal(cfg.routing.lan_interface, "veth0");

    sets[0] = bad1;
    assert_int_equal(load("", sets, 1, &cfg, err), -1);
    assert_non_null(strstr(err, "--set tun.nope: unknown key"));
    sets[0] = bad2;
    assert_int_equal(load("", sets, 1, &cfg, err), -1);
    assert_non_null(strstr(err, "expected section.key=value"));
    sets[0] = bad3;
    assert_int_equal(load("", sets, 1, &cfg, err), -1);
    assert_non_null(strstr(err, "[tun] mtu: 'huge'"));
}

static void test_parse_helpers(void **state)
{
    struct uid_range r[4];
    struct in6_addr a6;
    struct in_addr a4;
    int prefix;

    (void)state;
    assert_int_equal(config_parse_cidr("10.0.0.1/8", AF_INET, &a4, &prefix), 0);
    assert_int_equal(prefix, 8);
    assert_int_equal(config_parse_cidr("fd00::1/128", AF_INET6, &a6, &prefix), 0);
    assert_int_equal(prefix, 128);
    assert_int_equal(config_parse_cidr("/8", AF_INET, &a4, &prefix), -1);
    assert_int_equal(config_parse_cidr("10.0.0.1/", AF_INET, &a4, &prefix), -1);
    assert_int_equal(config_parse_cidr("10.0.0.1/0", AF_INET, &a4, &prefix), -1);
    assert_int_equal(config_parse_cidr("10.0.0.1/8x", AF_INET, &a4, &prefix), -1);
    assert_int_equal(config_parse_uids("", r, 4), 0);
    assert_int_equal(config_parse_uids(" 5 ,6-7", r, 4), 2);
    assert_int_equal(r[1].first, 6);
    assert_int_equal(r[1].last, 7);
    assert_int_equal(config_parse_uids("7-6", r, 4), -1);
    assert_int_equal(config_parse_uids("1,2,3,4,5", r, 4), -1);
    assert_int_equal(config_parse_uids("1;2", r, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_proxy_values),
        cmocka_unit_test(test_errors_name_file_key_value),
        cmocka_unit_test(test_error_names_the_file),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_parse_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
