/*
 * test_pktdecode.c: link, IP and UDP decoding of frames the test builds.
 */
#include "check.h"
#include "pktbuild.h"

#include "pktdecode.h"

static uint8_t payload[2000];

/* Decodes and expects a UDP datagram carrying payload[0..plen). */
static void
expect_udp(int linktype, const struct pb *p, size_t plen, int family,
    int line)
{
	struct pktdecode_udp	 u;
	struct pktdecode_frag	 f;
	const char		*why = NULL;
	enum pktdecode_result	 r;

	r = pktdecode_frame(linktype, p->b, p->n, p->n, &u, &f, &why);
	if (r != PKTDECODE_UDP) {
		fprintf(stderr, "line %d: result %d (%s), wanted UDP\n", line,
		    r, why ? why : "-");
		check_failures++;
		return;
	}
	CHECK_EQ_U64(u.family, family);
	CHECK_EQ_U64(u.len, plen);
	CHECK(u.len == plen && memcmp(u.payload, payload, plen) == 0);
	CHECK_EQ_U64(u.src_port, 40000);
	CHECK_EQ_U64(u.dst_port, 2055);
	if (family == 4) {
		CHECK(memcmp(u.src, pb_src4, 4) == 0);
		CHECK(memcmp(u.dst, pb_dst4, 4) == 0);
	} else {
		CHECK(memcmp(u.src, pb_src6, 16) == 0);
		CHECK(memcmp(u.dst, pb_dst6, 16) == 0);
	}
}

static enum pktdecode_result
decode(int linktype, const struct pb *p, size_t caplen, size_t wirelen)
{
	struct pktdecode_udp	u;
	struct pktdecode_frag	f;

	return pktdecode_frame(linktype, p->b, caplen, wirelen, &u, &f, NULL);
}

static void
v4_udp(struct pb *p, size_t plen)
{
	pb_ipv4(p, pb_src4, pb_dst4, 17, 8 + plen, 77, 0x4000, 0);
	pb_udp(p, 40000, 2055, payload, plen);
}

static void
v6_udp(struct pb *p, size_t plen)
{
	pb_ipv6(p, pb_src6, pb_dst6, 17, 8 + plen);
	pb_udp(p, 40000, 2055, payload, plen);
}

static void
test_ethernet(void)
{
	static struct pb p;

	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	v4_udp(&p, 100);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 100, 4, __LINE__);

	/* minimum-size frame: padding after the IP packet is not payload */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	v4_udp(&p, 4);
	pb_zero(&p, 14);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 4, 4, __LINE__);

	p.n = 0;
	pb_eth(&p, NULL, 0, 0x86dd);
	v6_udp(&p, 1400);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 1400, 6, __LINE__);

	/* ARP is not UDP */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0806);
	pb_zero(&p, 28);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);
}

static void
test_vlan(void)
{
	static struct pb p;
	const uint16_t q[] = { 0x8100 };
	const uint16_t qinq[] = { 0x88a8, 0x8100 };
	const uint16_t old[] = { 0x9100, 0x8100 };
	const uint16_t many[9] = { 0x8100, 0x8100, 0x8100, 0x8100, 0x8100,
	    0x8100, 0x8100, 0x8100, 0x8100 };

	p.n = 0;
	pb_eth(&p, q, 1, 0x0800);
	v4_udp(&p, 300);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 300, 4, __LINE__);

	p.n = 0;
	pb_eth(&p, qinq, 2, 0x86dd);
	v6_udp(&p, 300);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 300, 6, __LINE__);

	p.n = 0;
	pb_eth(&p, old, 2, 0x0800);
	v4_udp(&p, 20);
	expect_udp(PKTDECODE_LINK_EN10MB, &p, 20, 4, __LINE__);

	p.n = 0;
	pb_eth(&p, many, 9, 0x0800);
	v4_udp(&p, 20);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, p.n, p.n),
	    PKTDECODE_BAD);

	/* a tag cut off by the capture */
	p.n = 0;
	pb_eth(&p, q, 1, 0x0800);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 15, 15),
	    PKTDECODE_TRUNCATED);
}

static void
test_cooked(void)
{
	static struct pb p;

	p.n = 0;
	pb_sll(&p, 0x0800);
	v4_udp(&p, 64);
	expect_udp(PKTDECODE_LINK_SLL, &p, 64, 4, __LINE__);

	/* libpcap puts a VLAN tag back after the SLL header */
	p.n = 0;
	pb_sll(&p, 0x8100);
	pb_u16(&p, 42);
	pb_u16(&p, 0x86dd);
	v6_udp(&p, 64);
	expect_udp(PKTDECODE_LINK_SLL, &p, 64, 6, __LINE__);

	p.n = 0;
	pb_sll2(&p, 0x86dd);
	v6_udp(&p, 512);
	expect_udp(PKTDECODE_LINK_SLL2, &p, 512, 6, __LINE__);

	p.n = 0;
	pb_sll2(&p, 0x0800);
	v4_udp(&p, 512);
	expect_udp(PKTDECODE_LINK_SLL2, &p, 512, 4, __LINE__);

	p.n = 0;
	pb_sll2(&p, 0x0800);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_SLL2, &p, 10, 10),
	    PKTDECODE_TRUNCATED);
}

static void
test_raw_and_loopback(void)
{
	static struct pb p;
	const int raw[] = { PKTDECODE_LINK_RAW, PKTDECODE_LINK_RAW_101,
	    PKTDECODE_LINK_RAW_OBSD };
	size_t i;

	for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		p.n = 0;
		v4_udp(&p, 33);
		expect_udp(raw[i], &p, 33, 4, __LINE__);
		p.n = 0;
		v6_udp(&p, 33);
		expect_udp(raw[i], &p, 33, 6, __LINE__);
	}
	p.n = 0;
	v4_udp(&p, 10);
	expect_udp(PKTDECODE_LINK_IPV4, &p, 10, 4, __LINE__);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_IPV6, &p, p.n, p.n),
	    PKTDECODE_BAD);
	p.n = 0;
	v6_udp(&p, 10);
	expect_udp(PKTDECODE_LINK_IPV6, &p, 10, 6, __LINE__);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_IPV4, &p, p.n, p.n),
	    PKTDECODE_BAD);

	/* BSD loopback: AF_INET in the writer's (little-endian) order */
	p.n = 0;
	pb_u8(&p, 2);
	pb_zero(&p, 3);
	v4_udp(&p, 10);
	expect_udp(PKTDECODE_LINK_NULL, &p, 10, 4, __LINE__);
	/* OpenBSD loop: network order, AF_INET6 = 24 */
	p.n = 0;
	pb_u32(&p, 24);
	v6_udp(&p, 10);
	expect_udp(PKTDECODE_LINK_LOOP, &p, 10, 6, __LINE__);
	p.n = 0;
	pb_u32(&p, 7);
	v4_udp(&p, 10);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_LOOP, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);

	CHECK(pktdecode_link_supported(PKTDECODE_LINK_SLL2) == 0);
	CHECK(pktdecode_link_supported(127) == -1);	/* radiotap */
	p.n = 0;
	v4_udp(&p, 10);
	CHECK_EQ_U64(decode(127, &p, p.n, p.n), PKTDECODE_NOT_UDP);
}

static void
test_ipv4_headers(void)
{
	static struct pb p;

	/* options are skipped */
	p.n = 0;
	pb_ipv4(&p, pb_src4, pb_dst4, 17, 8 + 50, 1, 0, 12);
	pb_udp(&p, 40000, 2055, payload, 50);
	expect_udp(PKTDECODE_LINK_RAW, &p, 50, 4, __LINE__);

	/* a stale header checksum (anonymised captures) is no reason */
	p.n = 0;
	v4_udp(&p, 50);
	p.b[12] ^= 0x01;		/* source address rewritten */
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_UDP);

	/* IPv4 total length below its header */
	p.n = 0;
	v4_udp(&p, 50);
	p.b[2] = 0;
	p.b[3] = 16;
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_BAD);

	/* version 6 inside an IPv4 ethertype */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	v6_udp(&p, 50);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, p.n, p.n),
	    PKTDECODE_BAD);

	/* IHL below 5 */
	p.n = 0;
	v4_udp(&p, 50);
	p.b[0] = 0x44;
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_BAD);

	/* TCP and ICMP are not UDP */
	p.n = 0;
	pb_ipv4(&p, pb_src4, pb_dst4, 6, 20, 1, 0, 0);
	pb_zero(&p, 20);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);
	p.n = 0;
	pb_ipv4(&p, pb_src4, pb_dst4, 1, 8, 1, 0, 0);
	pb_zero(&p, 8);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);

	/* UDP length below its own header */
	p.n = 0;
	v4_udp(&p, 50);
	p.b[24] = 0;
	p.b[25] = 4;
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_BAD);
}

static void
test_ipv6_extensions(void)
{
	static struct pb p;
	struct pktdecode_udp	u;
	struct pktdecode_frag	f;

	/* hop-by-hop, routing, destination options, then UDP */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 0, 24 + 8 + 80);
	pb_ext8(&p, 43);
	pb_ext8(&p, 60);
	pb_ext8(&p, 17);
	pb_udp(&p, 40000, 2055, payload, 80);
	expect_udp(PKTDECODE_LINK_RAW, &p, 80, 6, __LINE__);

	/* a longer destination options header (len 1: 16 bytes) */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 60, 16 + 8 + 80);
	pb_u8(&p, 17);
	pb_u8(&p, 1);
	pb_zero(&p, 14);
	pb_udp(&p, 40000, 2055, payload, 80);
	expect_udp(PKTDECODE_LINK_RAW, &p, 80, 6, __LINE__);

	/* AH: length in 4-byte units, minus 2 */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 51, 24 + 8 + 80);
	pb_u8(&p, 17);
	pb_u8(&p, 4);
	pb_zero(&p, 22);
	pb_udp(&p, 40000, 2055, payload, 80);
	expect_udp(PKTDECODE_LINK_RAW, &p, 80, 6, __LINE__);

	/* no next header, ESP and TCP are not UDP */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 59, 8);
	pb_zero(&p, 8);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 0, 8 + 20);
	pb_ext8(&p, 6);
	pb_zero(&p, 20);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);

	/* an extension header running past the payload length */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 0, 8);
	pb_u8(&p, 17);
	pb_u8(&p, 3);			/* 32 bytes */
	pb_zero(&p, 6);
	pb_zero(&p, 40);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_TRUNCATED);

	/* an atomic fragment (offset 0, no more) is a whole datagram */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 44, 8 + 8 + 40);
	pb_frag6(&p, 17, 0, 0, 99);
	pb_udp(&p, 40000, 2055, payload, 40);
	expect_udp(PKTDECODE_LINK_RAW, &p, 40, 6, __LINE__);

	/* a real fragment comes back as one */
	p.n = 0;
	pb_ipv6(&p, pb_src6, pb_dst6, 60, 8 + 8 + 64);
	pb_ext8(&p, 44);
	pb_frag6(&p, 17, 1232, 1, 0xabcdef01);
	pb_bytes(&p, payload, 64);
	CHECK_EQ_U64(pktdecode_frame(PKTDECODE_LINK_RAW, p.b, p.n, p.n, &u,
	    &f, NULL), PKTDECODE_FRAGMENT);
	CHECK_EQ_U64(f.family, 6);
	CHECK_EQ_U64(f.id, 0xabcdef01);
	CHECK_EQ_U64(f.offset, 1232);
	CHECK_EQ_U64(f.more, 1);
	CHECK_EQ_U64(f.proto, 17);
	CHECK_EQ_U64(f.len, 64);
	CHECK(f.data != NULL && memcmp(f.data, payload, 64) == 0);
	CHECK(memcmp(f.src, pb_src6, 16) == 0 &&
	    memcmp(f.dst, pb_dst6, 16) == 0);
}

static void
test_ipv4_fragment_fields(void)
{
	static struct pb p;
	struct pktdecode_udp	u;
	struct pktdecode_frag	f;

	/* first fragment: MF set, offset 0 */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	pb_ipv4(&p, pb_src4, pb_dst4, 17, 1480, 4242, 0x2000, 0);
	pb_bytes(&p, payload, 1480);
	CHECK_EQ_U64(pktdecode_frame(PKTDECODE_LINK_EN10MB, p.b, p.n, p.n, &u,
	    &f, NULL), PKTDECODE_FRAGMENT);
	CHECK_EQ_U64(f.family, 4);
	CHECK_EQ_U64(f.id, 4242);
	CHECK_EQ_U64(f.offset, 0);
	CHECK_EQ_U64(f.more, 1);
	CHECK_EQ_U64(f.len, 1480);
	CHECK(memcmp(f.src, pb_src4, 4) == 0);

	/* last fragment: offset 185 * 8 */
	p.n = 0;
	pb_ipv4(&p, pb_src4, pb_dst4, 17, 100, 4242, 185, 0);
	pb_bytes(&p, payload, 100);
	CHECK_EQ_U64(pktdecode_frame(PKTDECODE_LINK_RAW, p.b, p.n, p.n, &u,
	    &f, NULL), PKTDECODE_FRAGMENT);
	CHECK_EQ_U64(f.offset, 1480);
	CHECK_EQ_U64(f.more, 0);

	/* fragments of TCP are not ours */
	p.n = 0;
	pb_ipv4(&p, pb_src4, pb_dst4, 6, 100, 4242, 185, 0);
	pb_bytes(&p, payload, 100);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_NOT_UDP);
}

static void
test_truncated(void)
{
	static struct pb p;

	/* caplen below the wire length: never forwarded */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	v4_udp(&p, 1400);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 200, p.n),
	    PKTDECODE_TRUNCATED);
	/* even when every byte the headers name is there (FCS cut off) */
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, p.n, p.n + 4),
	    PKTDECODE_TRUNCATED);
	/* IP total length beyond the capture */
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, p.n - 1, p.n - 1),
	    PKTDECODE_TRUNCATED);
	/* headers cut */
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 10, 10),
	    PKTDECODE_TRUNCATED);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 30, 30),
	    PKTDECODE_TRUNCATED);

	/* UDP length beyond the IP packet */
	p.n = 0;
	v4_udp(&p, 100);
	p.b[24] = 0x10;
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n, p.n),
	    PKTDECODE_TRUNCATED);

	/* IPv6 payload length beyond the capture */
	p.n = 0;
	v6_udp(&p, 500);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, p.n - 10, p.n - 10),
	    PKTDECODE_TRUNCATED);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_RAW, &p, 44, p.n),
	    PKTDECODE_TRUNCATED);

	/* a short snaplen over TCP says "not UDP", not "truncated" */
	p.n = 0;
	pb_eth(&p, NULL, 0, 0x0800);
	pb_ipv4(&p, pb_src4, pb_dst4, 6, 1000, 1, 0, 0);
	pb_zero(&p, 1000);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 54, p.n),
	    PKTDECODE_NOT_UDP);
	CHECK_EQ_U64(decode(PKTDECODE_LINK_EN10MB, &p, 0, p.n),
	    PKTDECODE_TRUNCATED);
}

static void
test_transport(void)
{
	static struct pb p;
	struct pktdecode_udp	u;

	/* what reassembly hands over: UDP header and data */
	p.n = 0;
	pb_udp(&p, 40000, 2055, payload, 1500);
	CHECK_EQ_U64(pktdecode_transport(4, pb_src4, pb_dst4, 17, p.b, p.n,
	    &u, NULL), PKTDECODE_UDP);
	CHECK_EQ_U64(u.len, 1500);
	CHECK(memcmp(u.payload, payload, 1500) == 0);
	CHECK(memcmp(u.src, pb_src4, 4) == 0);
	CHECK_EQ_U64(u.dst_port, 2055);

	/* IPv6: a destination options header after the fragment header */
	p.n = 0;
	pb_ext8(&p, 17);
	pb_udp(&p, 40000, 2055, payload, 1500);
	CHECK_EQ_U64(pktdecode_transport(6, pb_src6, pb_dst6, 60, p.b, p.n,
	    &u, NULL), PKTDECODE_UDP);
	CHECK_EQ_U64(u.len, 1500);
	CHECK(memcmp(u.src, pb_src6, 16) == 0);

	/* a UDP length that disagrees with the whole packet is bad */
	p.n = 0;
	pb_udp(&p, 40000, 2055, payload, 100);
	CHECK_EQ_U64(pktdecode_transport(4, pb_src4, pb_dst4, 17, p.b, 50,
	    &u, NULL), PKTDECODE_BAD);
	CHECK_EQ_U64(pktdecode_transport(4, pb_src4, pb_dst4, 6, p.b, p.n,
	    &u, NULL), PKTDECODE_NOT_UDP);
}

static void
setup(void)
{
	pb_fill(payload, sizeof(payload), 3);
}

static void
test_setup(void)
{
	setup();
	CHECK(payload[1] == 10);
}

TEST_MAIN(test_setup, test_ethernet, test_vlan, test_cooked,
    test_raw_and_loopback, test_ipv4_headers, test_ipv6_extensions,
    test_ipv4_fragment_fields, test_truncated, test_transport)
