/*
 * TCP segmentation offload towards the TUN. lwIP sends MSS-sized segments; writing each one
 * costs the kernel a full trip through forwarding and the client's TCP receive, in our thread.
 * A batch gathers consecutive full-size segments of one connection into one large packet with
 * a virtio_net_hdr asking the kernel to segment it (IFF_VNET_HDR), so that trip is paid once per
 * up to 64 KiB. Pure byte-buffer code, no lwIP.
 */
#ifndef MITMTUN_GSO_H
#define MITMTUN_GSO_H

#include <stddef.h>
#include <stdint.h>

#define GSO_VNET_HDR 10    /* sizeof(struct virtio_net_hdr) */
#define GSO_MAX      65535 /* largest IP packet the batch builds */

struct gso_batch {
    size_t len;        /* IP bytes in buf after the vnet header; 0: empty */
    int segs;          /* segments merged */
    size_t hdrlen;     /* IP + TCP header length of the first segment */
    uint16_t mss;      /* payload of the first segment */
    uint32_t next_seq; /* sequence number the next segment must carry */
    uint8_t buf[GSO_VNET_HDR + GSO_MAX];
};

/*
 * Offers one IP packet as lwIP produced it (checksums complete). Returns 1 if the batch took it,
 * 0 if it cannot join the batch: the caller then flushes the batch and offers it again, and
 * writes it alone (after a zero vnet header) if it is refused a second time.
 */
int gso_add(struct gso_batch *b, const uint8_t *pkt, size_t len);

/*
 * Finishes the batch: the vnet header and the merged packet's headers. Returns the bytes to
 * write from b->buf (vnet header included), 0 if the batch was empty; the batch is then empty.
 */
size_t gso_finish(struct gso_batch *b);

/*
 * For a packet read from the TUN with a vnet header asking for a checksum (NEEDS_CSUM): computes
 * it, so the packet is complete. Returns 0, or -1 if the header's offsets do not fit the packet.
 */
int gso_complete_csum(const uint8_t *vnet, uint8_t *pkt, size_t len);

#endif
