/* Unit tests for netstack/gso.c: which segments merge, and that the merged packet is right. */
#include "netstack/gso.h"
#include "netstack/packet.h"

#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#define MSS 1460

static const uint8_t a4[4] = {10, 1, 2, 2}, b4[4] = {10, 1, 1, 2};
static const uint8_t a6[16] = {0xfd, 0, 0, 2, [15] = 2}, b6[16] = {0xfd, 0, 0, 1, [15] = 2};

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

/* A TCP data segment as lwIP would send it, checksums complete; payload bytes are seq-derived. */
static size_t segment(uint8_t *buf, int family, uint16_t sport, uint32_t seq, size_t payload,
                      uint8_t flags)
{
    size_t iphl = family == AF_INET ? 20 : 40, alen = family == AF_INET ? 4 : 16;
    const uint8_t *src = family == AF_INET ? a4 : a6, *dst = family == AF_INET ? b4 : b6;
    uint8_t *tcp = buf + iphl;
    size_t len = iphl + 20 + payload;
    uint32_t sum;

    memset(buf, 0, iphl + 20);
    if (family == AF_INET) {
        buf[0] = 0x45;
        put16(buf + 2, (uint32_t)len);
        buf[8] = 64;
        buf[9] = 6;
        memcpy(buf + 12, src, 4);
        memcpy(buf + 16, dst, 4);
        put16(buf + 10, packet_csum_fold(packet_csum_add(0, buf, 20)));
    } else {
        buf[0] = 0x60;
        put16(buf + 4, (uint32_t)(len - 40));
        buf[6] = 6;
        buf[7] = 64;
        memcpy(buf + 8, src, 16);
        memcpy(buf + 24, dst, 16);
    }
    put16(tcp, sport);
    put16(tcp + 2, 50000);
    put32(tcp + 4, seq);
    put32(tcp + 8, 777);
    tcp[12] = 0x50;
    tcp[13] = flags;
    put16(tcp + 14, 1000);
    for (size_t i = 0; i < payload; i++)
        tcp[20 + i] = (uint8_t)(seq + i);
    sum = packet_csum_add(packet_csum_add(0, src, alen), dst, alen) + 6 + (uint32_t)(len - iphl);
    put16(tcp + 16, packet_csum_fold(packet_csum_add(sum, tcp, len - iphl)));
    return len;
}

static struct gso_batch batch;

/* Checks a finished merged packet: vnet header, IP header, payload, and (once the partial
 * checksum is completed as the kernel would) a valid TCP checksum. */
static void assert_merged(size_t n, int family, uint32_t seq0, int segs)
{
    const struct virtio_net_hdr *vh = (const struct virtio_net_hdr *)batch.buf;
    uint8_t *ip = batch.buf + GSO_VNET_HDR;
    size_t iphl = family == AF_INET ? 20 : 40, alen = family == AF_INET ? 4 : 16;
    size_t len = iphl + 20 + (size_t)segs * MSS;
    struct packet_info pi;
    uint32_t sum;

    assert_int_equal(n, GSO_VNET_HDR + len);
    assert_int_equal(vh->flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_int_equal(vh->gso_type,
                     family == AF_INET ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
    assert_int_equal(vh->gso_size, MSS);
    assert_int_equal(vh->hdr_len, iphl + 20);
    assert_int_equal(vh->csum_start, iphl);
    assert_int_equal(vh->csum_offset, 16);
    assert_int_equal(packet_parse(ip, len, &pi), 0);
    assert_int_equal(pi.l4_len, len - iphl);
    if (family == AF_INET)
        assert_int_equal(packet_csum_fold(packet_csum_add(0, ip, 20)), 0);
    for (size_t i = 0; i < (size_t)segs * MSS; i++)
        assert_int_equal(ip[iphl + 20 + i], (uint8_t)(seq0 + i));
    assert_int_equal(gso_complete_csum(batch.buf, ip, len), 0);
    sum = packet_csum_add(packet_csum_add(0, pi.src, alen), pi.dst, alen) + 6 +
          (uint32_t)(len - iphl);
    assert_int_equal(packet_csum_fold(packet_csum_add(sum, ip + iphl, len - iphl)), 0);
}

static void test_merges_contiguous_full_segments(void **state)
{
    int families[] = {AF_INET, AF_INET6};

    (void)state;
    for (int f = 0; f < 2; f++) {
        uint8_t seg[1600];
        uint32_t seq = 0xfffff000; /* wraps inside the batch */
        for (int i = 0; i < 5; i++)
            assert_int_equal(gso_add(&batch, seg,
                                     segment(seg, families[f], 80, seq + (uint32_t)i * MSS, MSS,
                                             i == 4 ? 0x18 : 0x10)),
                             1);
        assert_int_equal(batch.segs, 5);
        assert_merged(gso_finish(&batch), families[f], seq, 5);
        assert_int_equal(gso_finish(&batch), 0); /* empty again */
    }
}

static void test_single_segment_passes_unchanged(void **state)
{
    uint8_t seg[1600], copy[1600];
    size_t n = segment(seg, AF_INET, 80, 1, 100, 0x18);

    (void)state;
    memcpy(copy, seg, n);
    assert_int_equal(gso_add(&batch, seg, n), 1);
    assert_int_equal(gso_finish(&batch), GSO_VNET_HDR + n);
    assert_memory_equal(batch.buf + GSO_VNET_HDR, copy, n);
    for (int i = 0; i < GSO_VNET_HDR; i++)
        assert_int_equal(batch.buf[i], 0);
}

static void test_refuses_what_cannot_merge(void **state)
{
    uint8_t seg[1600];

    (void)state;
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000, MSS, 0x10)), 1);
    /* a gap in the sequence */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + 2 * MSS, MSS, 0x10)), 0);
    /* another connection */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 81, 1000 + MSS, MSS, 0x10)), 0);
    /* another family */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET6, 80, 1000 + MSS, MSS, 0x10)), 0);
    /* FIN, SYN, RST: never merged */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS, MSS, 0x11)), 0);
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS, 0, 0x12)), 0);
    /* a pure ACK */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS, 0, 0x10)), 0);
    /* larger than the first segment */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS, MSS + 1, 0x10)), 0);
    /* a short segment may close the batch, then nothing follows it */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS, 500, 0x10)), 1);
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1000 + MSS + 500, 500, 0x10)),
                     0);
    gso_finish(&batch);
    /* nothing follows a PSH segment */
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1, MSS, 0x18)), 1);
    assert_int_equal(gso_add(&batch, seg, segment(seg, AF_INET, 80, 1 + MSS, MSS, 0x10)), 0);
    gso_finish(&batch);
}

static void test_stops_at_64k(void **state)
{
    uint8_t seg[1600];
    int i;

    (void)state;
    for (i = 0; i < 100; i++)
        if (!gso_add(&batch, seg, segment(seg, AF_INET, 80, (uint32_t)i * MSS, MSS, 0x10)))
            break;
    assert_int_equal(i, (GSO_MAX - 40) / MSS);
    assert_merged(gso_finish(&batch), AF_INET, 0, i);
}

static void test_complete_csum_rejects_bad_offsets(void **state)
{
    struct virtio_net_hdr vh = {
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 16};
    uint8_t pkt[40] = {0};

    (void)state;
    assert_int_equal(gso_complete_csum((uint8_t *)&vh, pkt, sizeof(pkt)), 0);
    vh.csum_offset = 19;
    assert_int_equal(gso_complete_csum((uint8_t *)&vh, pkt, sizeof(pkt)), -1);
    vh.csum_start = 60;
    assert_int_equal(gso_complete_csum((uint8_t *)&vh, pkt, sizeof(pkt)), -1);
    vh.flags = 0; /* nothing asked: nothing checked */
    assert_int_equal(gso_complete_csum((uint8_t *)&vh, pkt, sizeof(pkt)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_contiguous_full_segments),
        cmocka_unit_test(test_single_segment_passes_unchanged),
        cmocka_unit_test(test_refuses_what_cannot_merge),
        cmocka_unit_test(test_stops_at_64k),
        cmocka_unit_test(test_complete_csum_rejects_bad_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
