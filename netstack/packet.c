#include "packet.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define IPV4_HDR 20
#define IPV6_HDR 40
#define UDP_HDR  8
#define TCP_HDR  20
#define ICMP_HDR 8

size_t packet_addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/*
 * Eight bytes at a time into a 64-bit sum, carries counted apart: one's complement addition
 * does not care how the words are grouped, as 2^16, 2^32 and 2^64 are all 1 modulo 0xffff.
 */
uint16_t packet_csum_native(const uint8_t *buf, size_t len)
{
    uint64_t sum = 0, carries = 0, w;

    for (; len >= 8; buf += 8, len -= 8) {
        memcpy(&w, buf, 8);
        sum += w;
        carries += sum < w;
    }
    if (len) { /* the last bytes in a word padded with zeros: an odd byte is first of its pair */
        uint8_t tail[8] = {0};
        memcpy(tail, buf, len);
        memcpy(&w, tail, 8);
        sum += w;
        carries += sum < w;
    }
    sum = (sum & 0xffffffff) + (sum >> 32) + carries; /* below 2^34 */
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)((sum & 0xffff) + (sum >> 16));
}

uint32_t packet_csum_add(uint32_t sum, const uint8_t *buf, size_t len)
{
    return sum + ntohs(packet_csum_native(buf, len));
}

uint16_t packet_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Reads the transport header fields that callers dispatch on. */
static int parse_l4(const uint8_t *l4, size_t len, struct packet_info *pi)
{
    switch (pi->proto) {
    case IPPROTO_TCP:
        if (len < TCP_HDR || (size_t)(l4[12] >> 4) * 4 < TCP_HDR || (size_t)(l4[12] >> 4) * 4 > len)
            return -1;
        pi->sport = packet_rd16(l4);
        pi->dport = packet_rd16(l4 + 2);
        pi->tcp_seq = packet_rd32(l4 + 4);
        pi->tcp_flags = l4[13];
        return 0;
    case IPPROTO_UDP:
        if (len < UDP_HDR || packet_rd16(l4 + 4) < UDP_HDR || packet_rd16(l4 + 4) > len)
            return -1;
        pi->sport = packet_rd16(l4);
        pi->dport = packet_rd16(l4 + 2);
        pi->l4_len = packet_rd16(l4 + 4);
        return 0;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
        if (len < ICMP_HDR)
            return -1;
        pi->icmp_type = l4[0];
        pi->icmp_code = l4[1];
        pi->sport = packet_rd16(l4 + 4);
        pi->dport = packet_rd16(l4 + 6);
        return 0;
    default:
        return 0;
    }
}

static int parse_ipv4(const uint8_t *buf, size_t len, struct packet_info *pi)
{
    size_t ihl, total;

    if (len < IPV4_HDR)
        return -1;
    ihl = (size_t)(buf[0] & 0x0f) * 4;
    total = packet_rd16(buf + 2);
    if (ihl < IPV4_HDR || total < ihl || total > len)
        return -1;
    pi->family = AF_INET;
    pi->proto = buf[9];
    memcpy(pi->src, buf + 12, 4);
    memcpy(pi->dst, buf + 16, 4);
    pi->l4_offset = ihl;
    pi->l4_len = total - ihl;
    /* More-fragments flag or a non-zero offset. */
    pi->fragment = (packet_rd16(buf + 6) & 0x3fff) != 0;
    return 0;
}

static int parse_ipv6(const uint8_t *buf, size_t len, struct packet_info *pi)
{
    size_t off = IPV6_HDR, end;
    uint8_t next;

    if (len < IPV6_HDR)
        return -1;
    end = IPV6_HDR + (size_t)packet_rd16(buf + 4);
    if (end > len)
        return -1;
    pi->family = AF_INET6;
    memcpy(pi->src, buf + 8, 16);
    memcpy(pi->dst, buf + 24, 16);
    next = buf[6];
    /* Walk extension headers; a bounded count guards against a crafted chain. */
    for (int hops = 0; hops < 16; hops++) {
        switch (next) {
        case 0:  /* hop-by-hop */
        case 43: /* routing */
        case 60: /* destination options */
            if (off + 8 > end)
                return -1;
            next = buf[off];
            off += ((size_t)buf[off + 1] + 1) * 8;
            continue;
        case 44: /* fragment */
            if (off + 8 > end)
                return -1;
            pi->fragment = 1;
            next = buf[off];
            off += 8;
            continue;
        case 51: /* authentication header: length in 4-octet units */
            if (off + 8 > end)
                return -1;
            next = buf[off];
            off += ((size_t)buf[off + 1] + 2) * 4;
            continue;
        default:
            break;
        }
        break;
    }
    if (off > end)
        return -1;
    pi->proto = next;
    pi->l4_offset = off;
    pi->l4_len = end - off;
    return 0;
}

int packet_parse(const uint8_t *buf, size_t len, struct packet_info *pi)
{
    int rc;

    memset(pi, 0, sizeof(*pi));
    if (len < 1)
        return -1;
    switch (buf[0] >> 4) {
    case 4:
        rc = parse_ipv4(buf, len, pi);
        break;
    case 6:
        rc = parse_ipv6(buf, len, pi);
        break;
    default:
        return -1;
    }
    if (rc < 0 || pi->fragment)
        return rc;
    return parse_l4(buf + pi->l4_offset, pi->l4_len, pi);
}

/* Writes the IP header for a transport payload of l4len bytes; returns the header length.
 * df: IPv4 don't-fragment; clear for UDP so a router may fragment a large reply. */
static size_t put_ip_header(uint8_t *out, int family, uint8_t proto, const uint8_t *src,
                            const uint8_t *dst, size_t l4len, int df)
{
    if (family == AF_INET) {
        memset(out, 0, IPV4_HDR);
        out[0] = 0x45;
        packet_wr16(out + 2, (uint16_t)(IPV4_HDR + l4len));
        packet_wr16(out + 6, df ? 0x4000 : 0);
        out[8] = 64;
        out[9] = proto;
        memcpy(out + 12, src, 4);
        memcpy(out + 16, dst, 4);
        packet_wr16(out + 10, packet_csum_fold(packet_csum_add(0, out, IPV4_HDR)));
        return IPV4_HDR;
    }
    memset(out, 0, IPV6_HDR);
    out[0] = 0x60;
    packet_wr16(out + 4, (uint16_t)l4len);
    out[6] = proto;
    out[7] = 64;
    memcpy(out + 8, src, 16);
    memcpy(out + 24, dst, 16);
    return IPV6_HDR;
}

/* Checksum of a transport segment with the pseudo-header (always for IPv6, UDP and TCP). */
static uint16_t l4_checksum(int family, uint8_t proto, const uint8_t *src, const uint8_t *dst,
                            const uint8_t *l4, size_t len)
{
    size_t alen = packet_addr_len(family);
    uint32_t sum = packet_csum_add(0, src, alen);

    sum = packet_csum_add(sum, dst, alen);
    sum += proto;
    sum += (uint32_t)len;
    return packet_csum_fold(packet_csum_add(sum, l4, len));
}

static size_t ip_header_len(int family)
{
    return family == AF_INET ? IPV4_HDR : IPV6_HDR;
}

size_t packet_build_udp(uint8_t *out, size_t cap, int family, const uint8_t *src, uint16_t sport,
                        const uint8_t *dst, uint16_t dport, const uint8_t *payload, size_t len)
{
    size_t hl = ip_header_len(family);
    uint8_t *udp = out + hl;
    uint16_t sum;

    if (len > 0xffff - UDP_HDR - IPV6_HDR || hl + UDP_HDR + len > cap)
        return 0;
    put_ip_header(out, family, IPPROTO_UDP, src, dst, UDP_HDR + len, 0);
    packet_wr16(udp, sport);
    packet_wr16(udp + 2, dport);
    packet_wr16(udp + 4, (uint16_t)(UDP_HDR + len));
    packet_wr16(udp + 6, 0);
    memcpy(udp + UDP_HDR, payload, len);
    sum = l4_checksum(family, IPPROTO_UDP, src, dst, udp, UDP_HDR + len);
    packet_wr16(udp + 6, sum ? sum : 0xffff);
    return hl + UDP_HDR + len;
}

size_t packet_build_tcp_rst(uint8_t *out, size_t cap, const struct packet_info *syn)
{
    size_t hl = ip_header_len(syn->family);
    uint8_t *tcp = out + hl;

    if (hl + TCP_HDR > cap)
        return 0;
    put_ip_header(out, syn->family, IPPROTO_TCP, syn->dst, syn->src, TCP_HDR, 1);
    memset(tcp, 0, TCP_HDR);
    packet_wr16(tcp, syn->dport);
    packet_wr16(tcp + 2, syn->sport);
    packet_wr32(tcp + 8, syn->tcp_seq + 1); /* acknowledges the SYN */
    tcp[12] = (TCP_HDR / 4) << 4;
    tcp[13] = PACKET_TCP_RST | PACKET_TCP_ACK;
    packet_wr16(tcp + 16, l4_checksum(syn->family, IPPROTO_TCP, syn->dst, syn->src, tcp, TCP_HDR));
    return hl + TCP_HDR;
}

/* An ICMP(v6) message with an 8-byte header and body; returns its length or 0. */
static size_t build_icmp(uint8_t *out, size_t cap, int family, const uint8_t *src,
                         const uint8_t *dst, uint8_t type, uint8_t code, uint32_t rest,
                         const uint8_t *body, size_t len)
{
    size_t hl = ip_header_len(family);
    uint8_t *icmp = out + hl;
    uint8_t proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    uint16_t sum;

    if (len > 0xffff - ICMP_HDR - IPV6_HDR || hl + ICMP_HDR + len > cap)
        return 0;
    put_ip_header(out, family, proto, src, dst, ICMP_HDR + len, 1);
    icmp[0] = type;
    icmp[1] = code;
    packet_wr16(icmp + 2, 0);
    packet_wr32(icmp + 4, rest);
    memcpy(icmp + ICMP_HDR, body, len);
    if (family == AF_INET)
        sum = packet_csum_fold(packet_csum_add(0, icmp, ICMP_HDR + len));
    else
        sum = l4_checksum(family, proto, src, dst, icmp, ICMP_HDR + len);
    packet_wr16(icmp + 2, sum);
    return hl + ICMP_HDR + len;
}

size_t packet_build_unreach(uint8_t *out, size_t cap, const uint8_t *orig, size_t origlen,
                            const struct packet_info *pi, enum packet_unreach why)
{
    /* RFC 1812 4.3.2.3 and RFC 4443 2.4: quote as much as fits in 576 / 1280 bytes. */
    size_t limit = pi->family == AF_INET ? 576 : 1280;
    size_t quote = limit - ip_header_len(pi->family) - ICMP_HDR;
    uint8_t type, code;

    if (origlen < quote)
        quote = origlen;
    if (pi->family == AF_INET) {
        type = 3;
        code = why == PACKET_UNREACH_PORT ? 3 : 1;
    } else {
        type = 1;
        code = why == PACKET_UNREACH_PORT ? 4 : 3;
    }
    return build_icmp(out, cap, pi->family, pi->dst, pi->src, type, code, 0, orig, quote);
}

size_t packet_build_echo_reply(uint8_t *out, size_t cap, int family, const uint8_t *src,
                               const uint8_t *dst, uint16_t id, uint16_t seq, const uint8_t *data,
                               size_t len)
{
    uint8_t type = family == AF_INET ? 0 : 129;

    return build_icmp(out, cap, family, src, dst, type, 0, (uint32_t)id << 16 | seq, data, len);
}
