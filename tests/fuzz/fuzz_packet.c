/* Fuzz target: IP packets as they arrive from the TUN, and the answers built from them. */
#include "netstack/gso.h"
#include "netstack/packet.h"
#include "fuzz.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[2048], copy[4096];
    static struct gso_batch batch;
    struct packet_info pi, back;
    size_t n;

    /* As read from the TUN: a vnet header, then the packet, whose checksum it may complete. */
    if (size > GSO_VNET_HDR && size - GSO_VNET_HDR <= sizeof(copy)) {
        memcpy(copy, data + GSO_VNET_HDR, size - GSO_VNET_HDR);
        gso_complete_csum(data, copy, size - GSO_VNET_HDR);
    }
    /* As lwIP's output: whatever joins a batch must finish into a packet that parses. */
    if (!gso_add(&batch, data, size)) {
        n = gso_finish(&batch);
        CHECK(n == 0 || packet_parse(batch.buf + GSO_VNET_HDR, n - GSO_VNET_HDR, &back) == 0);
    }
    if (packet_parse(data, size, &pi) < 0 || pi.fragment)
        return 0;
    CHECK(pi.l4_offset <= size && pi.l4_len <= size - pi.l4_offset);
    /* Everything we answer must itself parse, addressed back to the sender. */
    if (pi.proto == IPPROTO_TCP) {
        n = packet_build_tcp_rst(out, sizeof(out), &pi);
        CHECK(n > 0 && packet_parse(out, n, &back) == 0);
        CHECK(back.sport == pi.dport && back.dport == pi.sport);
        CHECK(memcmp(back.dst, pi.src, packet_addr_len(pi.family)) == 0);
    }
    n = packet_build_unreach(out, sizeof(out), data, size, &pi, PACKET_UNREACH_PORT);
    CHECK(n > 0 && packet_parse(out, n, &back) == 0);
    CHECK(back.proto == (pi.family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6));
    if (pi.proto == IPPROTO_UDP) {
        const uint8_t *payload = data + pi.l4_offset + 8;
        n = packet_build_udp(out, sizeof(out), pi.family, pi.dst, pi.dport, pi.src, pi.sport,
                             payload, pi.l4_len - 8);
        if (n > 0) {
            CHECK(packet_parse(out, n, &back) == 0 && back.l4_len == pi.l4_len);
            CHECK(memcmp(out + back.l4_offset + 8, payload, pi.l4_len - 8) == 0);
        }
    }
    return 0;
}
