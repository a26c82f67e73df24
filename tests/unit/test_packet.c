/* Unit tests for netstack/packet.c: parsing what the TUN delivers, building what we answer. */
#include "netstack/packet.h"

#include <arpa/inet.h>
#include <lwip/inet_chksum.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static const uint8_t client4[4] = {10, 1, 1, 2}, server4[4] = {10, 1, 2, 2};
static uint8_t client6[16], server6[16];

/* A valid IPv4 or IPv6 TCP segment with the given flags. */
static size_t make_tcp(uint8_t *buf, int family, uint8_t flags, uint32_t seq)
{
    size_t hl = family == AF_INET ? 20 : 40;
    uint8_t *tcp = buf + hl;

    memset(buf, 0, hl + 20);
    if (family == AF_INET) {
        buf[0] = 0x45;
        buf[3] = (uint8_t)(hl + 20);
        buf[8] = 64;
        buf[9] = IPPROTO_TCP;
        memcpy(buf + 12, client4, 4);
        memcpy(buf + 16, server4, 4);
    } else {
        buf[0] = 0x60;
        buf[5] = 20;
        buf[6] = IPPROTO_TCP;
        buf[7] = 64;
        memcpy(buf + 8, client6, 16);
        memcpy(buf + 24, server6, 16);
    }
    tcp[0] = 0xc3, tcp[1] = 0x50; /* 50000 */
    tcp[2] = 0x01, tcp[3] = 0xbb; /* 443 */
    tcp[4] = (uint8_t)(seq >> 24), tcp[5] = (uint8_t)(seq >> 16);
    tcp[6] = (uint8_t)(seq >> 8), tcp[7] = (uint8_t)seq;
    tcp[12] = 0x50;
    tcp[13] = flags;
    return hl + 20;
}

/* Verifies an IPv4 header checksum and a transport checksum with its pseudo-header. */
static void assert_checksums(const uint8_t *pkt, const struct packet_info *pi)
{
    size_t alen = packet_addr_len(pi->family);
    uint32_t sum;

    if (pi->family == AF_INET)
        assert_int_equal(packet_csum_fold(packet_csum_add(0, pkt, 20)), 0);
    if (pi->family == AF_INET && pi->proto == IPPROTO_ICMP) {
        sum = 0;
    } else {
        sum = packet_csum_add(0, pi->src, alen);
        sum = packet_csum_add(sum, pi->dst, alen);
        sum += pi->proto + (uint32_t)pi->l4_len;
    }
    assert_int_equal(packet_csum_fold(packet_csum_add(sum, pkt + pi->l4_offset, pi->l4_len)), 0);
}

static void test_parse_tcp4(void **state)
{
    uint8_t buf[64];
    struct packet_info pi;
    size_t n = make_tcp(buf, AF_INET, PACKET_TCP_SYN, 1000);

    (void)state;
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    assert_int_equal(pi.family, AF_INET);
    assert_int_equal(pi.proto, IPPROTO_TCP);
    assert_int_equal(pi.sport, 50000);
    assert_int_equal(pi.dport, 443);
    assert_int_equal(pi.tcp_flags, PACKET_TCP_SYN);
    assert_int_equal(pi.tcp_seq, 1000);
    assert_memory_equal(pi.src, client4, 4);
    assert_memory_equal(pi.dst, server4, 4);
    assert_int_equal(pi.l4_offset, 20);
    assert_int_equal(pi.l4_len, 20);
}

static void test_parse_rejects_truncation(void **state)
{
    uint8_t buf[80];
    struct packet_info pi;
    size_t n = make_tcp(buf, AF_INET6, PACKET_TCP_SYN, 1);

    (void)state;
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(packet_parse(buf, cut, &pi), -1);
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    buf[0] = 0x50; /* IP version 5 */
    assert_int_equal(packet_parse(buf, n, &pi), -1);
}

static void test_parse_ipv6_extension_headers(void **state)
{
    uint8_t buf[128];
    struct packet_info pi;
    size_t n = make_tcp(buf, AF_INET6, PACKET_TCP_SYN, 7);

    (void)state;
    /* Insert a hop-by-hop header and a destination-options header before TCP. */
    memmove(buf + 40 + 16, buf + 40, 20);
    memset(buf + 40, 0, 16);
    buf[6] = 0;            /* next: hop-by-hop */
    buf[40] = 60;          /* hop-by-hop -> destination options */
    buf[48] = IPPROTO_TCP; /* destination options -> TCP */
    buf[5] = 16 + 20;
    n += 16;
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    assert_int_equal(pi.proto, IPPROTO_TCP);
    assert_int_equal(pi.l4_offset, 56);
    assert_int_equal(pi.dport, 443);
    assert_int_equal(pi.tcp_seq, 7);
    /* A fragment header marks the packet as a fragment. */
    buf[48] = 44;
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    assert_true(pi.fragment);
}

static void test_parse_ipv4_fragment(void **state)
{
    uint8_t buf[64];
    struct packet_info pi;
    size_t n = make_tcp(buf, AF_INET, PACKET_TCP_ACK, 1);

    (void)state;
    buf[6] = 0x20; /* more fragments */
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    assert_true(pi.fragment);
    buf[6] = 0x40; /* don't fragment only */
    assert_int_equal(packet_parse(buf, n, &pi), 0);
    assert_false(pi.fragment);
}

static void test_rst_answers_syn(void **state)
{
    int families[] = {AF_INET, AF_INET6};

    (void)state;
    for (int i = 0; i < 2; i++) {
        uint8_t buf[80], out[80];
        struct packet_info syn, rst;
        size_t n = make_tcp(buf, families[i], PACKET_TCP_SYN, 0xfffffffe);

        assert_int_equal(packet_parse(buf, n, &syn), 0);
        n = packet_build_tcp_rst(out, sizeof(out), &syn);
        assert_true(n > 0);
        assert_int_equal(packet_parse(out, n, &rst), 0);
        assert_int_equal(rst.tcp_flags, PACKET_TCP_RST | PACKET_TCP_ACK);
        assert_int_equal(rst.sport, 443);
        assert_int_equal(rst.dport, 50000);
        assert_memory_equal(rst.src, syn.dst, packet_addr_len(families[i]));
        assert_memory_equal(rst.dst, syn.src, packet_addr_len(families[i]));
        /* The acknowledgment number is the SYN's sequence number plus one, wrapping. */
        const uint8_t *ack = out + rst.l4_offset + 8;
        assert_int_equal((uint32_t)ack[0] << 24 | (uint32_t)ack[1] << 16 | (uint32_t)ack[2] << 8 |
                             ack[3],
                         0xffffffffu);
        assert_checksums(out, &rst);
        assert_int_equal(packet_build_tcp_rst(out, 30, &syn), 0);
    }
}

static void test_udp_roundtrip(void **state)
{
    const uint8_t payload[] = "a DNS answer, say";
    uint8_t out[256];
    struct packet_info pi;
    size_t n;

    (void)state;
    n = packet_build_udp(out, sizeof(out), AF_INET6, server6, 53, client6, 40000, payload,
                         sizeof(payload));
    assert_int_equal(n, 40 + 8 + sizeof(payload));
    assert_int_equal(packet_parse(out, n, &pi), 0);
    assert_int_equal(pi.proto, IPPROTO_UDP);
    assert_int_equal(pi.sport, 53);
    assert_int_equal(pi.dport, 40000);
    assert_memory_equal(out + pi.l4_offset + 8, payload, sizeof(payload));
    assert_checksums(out, &pi);

    n = packet_build_udp(out, sizeof(out), AF_INET, server4, 53, client4, 40000, payload,
                         sizeof(payload));
    assert_int_equal(packet_parse(out, n, &pi), 0);
    assert_false(out[6] & 0x40); /* no DF: a router may fragment a large reply */
    assert_checksums(out, &pi);
    assert_int_equal(packet_build_udp(out, 40, AF_INET, server4, 53, client4, 1, payload, 30), 0);
}

static void test_unreach_quotes_original(void **state)
{
    uint8_t orig[1500], out[1600], payload[1000];
    struct packet_info pi, icmp;
    size_t n;

    (void)state;
    memset(payload, 0xab, sizeof(payload));
    n = packet_build_udp(orig, sizeof(orig), AF_INET, client4, 40000, server4, 443, payload,
                         sizeof(payload));
    assert_int_equal(packet_parse(orig, n, &pi), 0);
    n = packet_build_unreach(out, sizeof(out), orig, n, &pi, PACKET_UNREACH_PORT);
    assert_int_equal(n, 576); /* RFC 1812: at most 576 bytes */
    assert_int_equal(packet_parse(out, n, &icmp), 0);
    assert_int_equal(icmp.icmp_type, 3);
    assert_int_equal(icmp.icmp_code, 3);
    assert_memory_equal(icmp.src, server4, 4);
    assert_memory_equal(icmp.dst, client4, 4);
    assert_memory_equal(out + 28, orig, 576 - 28);
    assert_checksums(out, &icmp);

    n = packet_build_udp(orig, sizeof(orig), AF_INET6, client6, 40000, server6, 443, payload, 64);
    assert_int_equal(packet_parse(orig, n, &pi), 0);
    n = packet_build_unreach(out, sizeof(out), orig, n, &pi, PACKET_UNREACH_HOST);
    assert_int_equal(packet_parse(out, n, &icmp), 0);
    assert_int_equal(icmp.proto, IPPROTO_ICMPV6);
    assert_int_equal(icmp.icmp_type, 1);
    assert_int_equal(icmp.icmp_code, 3);
    assert_checksums(out, &icmp);
}

static void test_echo_reply(void **state)
{
    uint8_t out[128];
    struct packet_info pi;
    size_t n;

    (void)state;
    n = packet_build_echo_reply(out, sizeof(out), AF_INET, server4, client4, 0x1234, 7,
                                (const uint8_t *)"abcdefgh", 8);
    assert_int_equal(packet_parse(out, n, &pi), 0);
    assert_int_equal(pi.icmp_type, 0);
    assert_int_equal(pi.sport, 0x1234); /* identifier */
    assert_int_equal(pi.dport, 7);      /* sequence */
    assert_checksums(out, &pi);
    n = packet_build_echo_reply(out, sizeof(out), AF_INET6, server6, client6, 1, 2,
                                (const uint8_t *)"x", 1);
    assert_int_equal(packet_parse(out, n, &pi), 0);
    assert_int_equal(pi.icmp_type, 129);
    assert_checksums(out, &pi);
}

/* The Internet checksum's sum, as RFC 1071 writes it: big-endian words, an odd byte padded. */
static uint32_t reference_sum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < len; i += 2)
        sum += (uint32_t)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

/*
 * packet_csum_native takes the place of lwIP's lwip_standard_chksum in the appliance
 * (netstack.c): it must give what lwIP's own does (this binary does not replace it, so
 * inet_chksum is lwIP's), for any length and alignment; all-ones and all-zero data tell
 * 0xffff from 0. packet_csum_add must give RFC 1071's sum, in a few pieces too.
 */
static void test_checksum_matches_lwip(void **state)
{
    static uint8_t buf[65536 + 8];

    (void)state;
    srand(7);
    for (int round = 0; round < 4000; round++) {
        size_t len = (size_t)rand() % (round % 100 == 0 ? 65536 : 1600);
        size_t off = (size_t)rand() % 8, cut = len ? (size_t)rand() % len & ~(size_t)1 : 0;
        int fill = rand() % 4;
        uint16_t lwip, ours;

        for (size_t i = 0; i < len; i++)
            buf[off + i] = fill == 0 ? 0xff : fill == 1 ? 0 : (uint8_t)rand();
        lwip = (uint16_t)~inet_chksum(buf + off, (u16_t)len);
        ours = packet_csum_native(buf + off, len);
        if (lwip != ours)
            fail_msg("length %zu at offset %zu (fill %d): lwIP %04x, ours %04x", len, off, fill,
                     lwip, ours);
        assert_int_equal(packet_csum_fold(packet_csum_add(packet_csum_add(0, buf + off, cut),
                                                          buf + off + cut, len - cut)),
                         (uint16_t)~reference_sum(buf + off, len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tcp4),
        cmocka_unit_test(test_parse_rejects_truncation),
        cmocka_unit_test(test_parse_ipv6_extension_headers),
        cmocka_unit_test(test_parse_ipv4_fragment),
        cmocka_unit_test(test_rst_answers_syn),
        cmocka_unit_test(test_udp_roundtrip),
        cmocka_unit_test(test_unreach_quotes_original),
        cmocka_unit_test(test_echo_reply),
        cmocka_unit_test(test_checksum_matches_lwip),
    };

    inet_pton(AF_INET6, "fd00:1::2", client6);
    inet_pton(AF_INET6, "fd00:2::2", server6);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
