#include "gso.h"

#include "packet.h"

#include <linux/virtio_net.h>
#include <string.h>

#define TCP_HDR 20

/* Header length of a plain IPv4 (no options) or IPv6 (no extension headers) TCP packet with a
 * 20-byte TCP header carrying only ACK (PSH allowed), or 0 if it is anything else. */
static size_t mergeable_header(const uint8_t *pkt, size_t len)
{
    size_t iphl;

    if (len < 40)
        return 0;
    if ((pkt[0] >> 4) == 4) {
        if (pkt[0] != 0x45 || pkt[9] != 6 || packet_rd16(pkt + 2) != len ||
            (packet_rd16(pkt + 6) & 0x3fff))
            return 0;
        iphl = 20;
    } else if ((pkt[0] >> 4) == 6) {
        if (len < 60 || pkt[6] != 6 || packet_rd16(pkt + 4) + 40u != len)
            return 0;
        iphl = 40;
    } else {
        return 0;
    }
    if ((pkt[iphl + 12] >> 4) != TCP_HDR / 4 || (pkt[iphl + 13] & ~0x08) != 0x10)
        return 0;
    return iphl + TCP_HDR;
}

/* Same addresses and ports (IPv4: bytes 12..19; IPv6: 8..39; then the TCP ports). */
static int same_flow(const uint8_t *a, const uint8_t *b, size_t hdrlen)
{
    size_t iphl = hdrlen - TCP_HDR;
    size_t off = iphl == 20 ? 12 : 8;

    return memcmp(a + off, b + off, iphl - off) == 0 && memcmp(a + iphl, b + iphl, 4) == 0;
}

int gso_add(struct gso_batch *b, const uint8_t *pkt, size_t len)
{
    uint8_t *ip = b->buf + GSO_VNET_HDR;
    size_t hdrlen = mergeable_header(pkt, len);
    size_t payload;

    if (hdrlen == 0 || len <= hdrlen)
        return 0;
    payload = len - hdrlen;
    if (b->len == 0) {
        memcpy(ip, pkt, len);
        b->len = len;
        b->segs = 1;
        b->hdrlen = hdrlen;
        b->mss = (uint16_t)payload;
        b->next_seq = packet_rd32(pkt + hdrlen - TCP_HDR + 4) + (uint32_t)payload;
        return 1;
    }
    /* Joins only behind full-size segments without PSH, in sequence, within 64 KiB. */
    if (hdrlen != b->hdrlen || payload > b->mss || (b->len - b->hdrlen) % b->mss != 0 ||
        (ip[hdrlen - TCP_HDR + 13] & 0x08) || b->len + payload > GSO_MAX ||
        packet_rd32(pkt + hdrlen - TCP_HDR + 4) != b->next_seq || !same_flow(ip, pkt, hdrlen))
        return 0;
    memcpy(ip + b->len, pkt + hdrlen, payload);
    /* The newest acknowledgment, window and flags (PSH) go out with the merged packet. */
    memcpy(ip + hdrlen - TCP_HDR + 8, pkt + hdrlen - TCP_HDR + 8, 8);
    b->len += payload;
    b->segs++;
    b->next_seq += (uint32_t)payload;
    return 1;
}

size_t gso_finish(struct gso_batch *b)
{
    struct virtio_net_hdr *vh = (struct virtio_net_hdr *)b->buf;
    uint8_t *ip = b->buf + GSO_VNET_HDR, *tcp;
    size_t iphl, total = b->len;
    uint32_t sum;
    int v4;

    if (total == 0)
        return 0;
    iphl = b->hdrlen - TCP_HDR;
    tcp = ip + iphl;
    v4 = iphl == 20;
    memset(vh, 0, sizeof(*vh));
    b->len = 0;
    if (b->segs == 1)
        return GSO_VNET_HDR + total; /* lwIP's own checksums stand */

    if (v4) {
        packet_wr16(ip + 2, (uint16_t)total);
        packet_wr16(ip + 10, 0);
        packet_wr16(ip + 10, packet_csum_fold(packet_csum_add(0, ip, 20)));
    } else {
        packet_wr16(ip + 4, (uint16_t)(total - 40));
    }
    /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel adds the rest. */
    sum = packet_csum_add(0, ip + (v4 ? 12 : 8), v4 ? 8 : 32);
    sum += 6 + (uint32_t)(total - iphl);
    packet_wr16(tcp + 16, (uint16_t)~packet_csum_fold(sum));
    vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh->gso_type = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    vh->hdr_len = (uint16_t)b->hdrlen;
    vh->gso_size = b->mss;
    vh->csum_start = (uint16_t)iphl;
    vh->csum_offset = 16;
    return GSO_VNET_HDR + total;
}

int gso_complete_csum(const uint8_t *vnet, uint8_t *pkt, size_t len)
{
    const struct virtio_net_hdr *vh = (const struct virtio_net_hdr *)vnet;
    size_t start = vh->csum_start, field = start + vh->csum_offset;
    uint16_t sum;

    if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
        return 0;
    if (start >= len || field + 2 > len)
        return -1;
    /* The field holds the pseudo-header sum: summing over it completes the checksum. */
    sum = packet_csum_fold(packet_csum_add(0, pkt + start, len - start));
    packet_wr16(pkt + field, sum);
    return 0;
}
