/*
 * pktbuild.h: builds Ethernet, cooked, raw IP, IPv4/IPv6 and UDP packets
 * for the decoder and reassembly tests.  Everything big-endian, written
 * byte by byte; IPv4 header checksums are computed.
 */
#ifndef FLOWPOST_TEST_PKTBUILD_H
#define FLOWPOST_TEST_PKTBUILD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PB_MAX	70000

struct pb {
	uint8_t	b[PB_MAX];
	size_t	n;
};

static inline void
pb_u8(struct pb *p, uint8_t v)
{
	p->b[p->n++] = v;
}

static inline void
pb_u16(struct pb *p, uint16_t v)
{
	pb_u8(p, (uint8_t)(v >> 8));
	pb_u8(p, (uint8_t)v);
}

static inline void
pb_u32(struct pb *p, uint32_t v)
{
	pb_u16(p, (uint16_t)(v >> 16));
	pb_u16(p, (uint16_t)v);
}

static inline void
pb_bytes(struct pb *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static inline void
pb_zero(struct pb *p, size_t n)
{
	memset(p->b + p->n, 0, n);
	p->n += n;
}

/* Ethernet header; each tag is a TPID followed by a TCI. */
static inline void
pb_eth(struct pb *p, const uint16_t *tpids, size_t ntags, uint16_t type)
{
	static const uint8_t mac[12] = { 0x02, 0, 0, 0, 0, 1,
	    0x02, 0, 0, 0, 0, 2 };
	size_t i;

	pb_bytes(p, mac, sizeof(mac));
	for (i = 0; i < ntags; i++) {
		pb_u16(p, tpids[i]);
		pb_u16(p, (uint16_t)(100 + i));
	}
	pb_u16(p, type);
}

static inline void
pb_sll(struct pb *p, uint16_t type)
{
	pb_u16(p, 0);			/* to us */
	pb_u16(p, 1);			/* ARPHRD_ETHER */
	pb_u16(p, 6);
	pb_zero(p, 8);
	pb_u16(p, type);
}

static inline void
pb_sll2(struct pb *p, uint16_t type)
{
	pb_u16(p, type);
	pb_u16(p, 0);			/* reserved */
	pb_u32(p, 3);			/* ifindex */
	pb_u16(p, 1);			/* ARPHRD_ETHER */
	pb_u8(p, 0);			/* to us */
	pb_u8(p, 6);
	pb_zero(p, 8);
}

static inline uint16_t
pb_cksum(const uint8_t *d, size_t n)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(d[i] << 8 | d[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * IPv4 header with `optlen` bytes of options (a multiple of 4) for a body
 * of `bodylen` bytes; `frag` is the flags/offset field.
 */
static inline void
pb_ipv4(struct pb *p, const uint8_t src[4], const uint8_t dst[4],
    uint8_t proto, size_t bodylen, uint16_t id, uint16_t frag,
    size_t optlen)
{
	size_t start = p->n, hl = 20 + optlen;
	uint16_t ck;

	pb_u8(p, (uint8_t)(0x40 | (hl / 4)));
	pb_u8(p, 0);
	pb_u16(p, (uint16_t)(hl + bodylen));
	pb_u16(p, id);
	pb_u16(p, frag);
	pb_u8(p, 64);
	pb_u8(p, proto);
	pb_u16(p, 0);
	pb_bytes(p, src, 4);
	pb_bytes(p, dst, 4);
	for (size_t i = 0; i < optlen; i++)
		pb_u8(p, 1);		/* NOP options */
	ck = pb_cksum(p->b + start, hl);
	p->b[start + 10] = (uint8_t)(ck >> 8);
	p->b[start + 11] = (uint8_t)ck;
}

static inline void
pb_ipv6(struct pb *p, const uint8_t src[16], const uint8_t dst[16],
    uint8_t next, size_t plen)
{
	pb_u32(p, 0x60000000);
	pb_u16(p, (uint16_t)plen);
	pb_u8(p, next);
	pb_u8(p, 64);
	pb_bytes(p, src, 16);
	pb_bytes(p, dst, 16);
}

/* An 8-byte extension header (hop-by-hop, routing, destination). */
static inline void
pb_ext8(struct pb *p, uint8_t next)
{
	pb_u8(p, next);
	pb_u8(p, 0);
	pb_zero(p, 6);
}

static inline void
pb_frag6(struct pb *p, uint8_t next, uint16_t offset, int more,
    uint32_t id)
{
	pb_u8(p, next);
	pb_u8(p, 0);
	pb_u16(p, (uint16_t)(offset | (more ? 1 : 0)));
	pb_u32(p, id);
}

static inline void
pb_udp(struct pb *p, uint16_t sport, uint16_t dport, const uint8_t *payload,
    size_t len)
{
	pb_u16(p, sport);
	pb_u16(p, dport);
	pb_u16(p, (uint16_t)(8 + len));
	pb_u16(p, 0);
	pb_bytes(p, payload, len);
}

static const uint8_t pb_src4[4] = { 192, 0, 2, 10 };
static const uint8_t pb_dst4[4] = { 198, 51, 100, 20 };
static const uint8_t pb_src6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0x0a };
static const uint8_t pb_dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0x14 };

/* A recognisable payload: byte i is (i * 7 + seed). */
static inline void
pb_fill(uint8_t *d, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(i * 7 + seed);
}

#endif
