/*
 * IP packet parsing and building for what the TUN carries and lwIP does not handle: UDP, ICMP
 * errors and echo replies, and the RST that refuses a held SYN. Pure functions over byte buffers,
 * no lwIP, so they are unit-tested and fuzzed directly.
 */
#ifndef MITMTUN_PACKET_H
#define MITMTUN_PACKET_H

#include <stddef.h>
#include <stdint.h>

#define PACKET_TCP_FIN 0x01
#define PACKET_TCP_SYN 0x02
#define PACKET_TCP_RST 0x04
#define PACKET_TCP_ACK 0x10

struct packet_info {
    int family;      /* AF_INET or AF_INET6 */
    uint8_t proto;   /* transport protocol after any IPv6 extension headers */
    uint8_t src[16]; /* 4 or 16 bytes used, network order */
    uint8_t dst[16];
    size_t l4_offset;  /* where the transport header starts */
    size_t l4_len;     /* transport header and payload */
    int fragment;      /* an IPv4 or IPv6 fragment: not parsed further */
    uint16_t sport;    /* TCP/UDP; ICMP echo: the identifier */
    uint16_t dport;    /* TCP/UDP; ICMP echo: the sequence number */
    uint8_t tcp_flags; /* TCP */
    uint32_t tcp_seq;  /* TCP */
    uint8_t icmp_type; /* ICMP or ICMPv6 */
    uint8_t icmp_code;
};

/* Fills pi from one IP packet. Returns 0, or -1 if the packet is malformed or truncated. */
int packet_parse(const uint8_t *buf, size_t len, struct packet_info *pi);

/* Length of the address for a family: 4 or 16. */
size_t packet_addr_len(int family);

/*
 * Builders write one whole IP packet into out (cap bytes) and return its length, or 0 when it
 * does not fit. Addresses are network order, 4 or 16 bytes by family.
 */
size_t packet_build_udp(uint8_t *out, size_t cap, int family, const uint8_t *src, uint16_t sport,
                        const uint8_t *dst, uint16_t dport, const uint8_t *payload, size_t len);

/* The RST|ACK a host sends for a SYN to a closed port (RFC 9293 3.10.7.1). */
size_t packet_build_tcp_rst(uint8_t *out, size_t cap, const struct packet_info *syn);

enum packet_unreach { PACKET_UNREACH_PORT, PACKET_UNREACH_HOST };

/* The ICMP or ICMPv6 destination-unreachable error for orig, from orig's destination. */
size_t packet_build_unreach(uint8_t *out, size_t cap, const uint8_t *orig, size_t origlen,
                            const struct packet_info *pi, enum packet_unreach why);

/* An echo reply (ICMP type 0 or ICMPv6 129) from src to dst with the given id, seq and data. */
size_t packet_build_echo_reply(uint8_t *out, size_t cap, int family, const uint8_t *src,
                               const uint8_t *dst, uint16_t id, uint16_t seq, const uint8_t *data,
                               size_t len);

/* Big-endian (network order) reads and writes of 16 and 32 bits. */
static inline uint16_t packet_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void packet_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint32_t packet_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void packet_wr32(uint8_t *p, uint32_t v)
{
    packet_wr16(p, (uint16_t)(v >> 16));
    packet_wr16(p + 2, (uint16_t)v);
}

/*
 * The one's complement sum of buf's 16-bit words (RFC 1071), each read in memory order, folded
 * to 16 bits and not complemented: what lwIP's lwip_standard_chksum returns.
 */
uint16_t packet_csum_native(const uint8_t *buf, size_t len);
/* The Internet checksum (RFC 1071) of buf, continuing from sum; fold with packet_csum_fold. */
uint32_t packet_csum_add(uint32_t sum, const uint8_t *buf, size_t len);
uint16_t packet_csum_fold(uint32_t sum);

#endif
