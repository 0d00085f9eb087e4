/*
 * test_reasm.c: IPv4 and IPv6 fragment reassembly: order, overlaps,
 * repeats, timeouts and the memory limits.
 */
#include "check.h"
#include "pktbuild.h"

#include "pktdecode.h"
#include "reasm.h"

#define MSG_LEN	3472		/* an IPFIX message seen fragmented */

static uint8_t msg[MSG_LEN];
static struct pb whole;		/* UDP header + msg: what is fragmented */

static void
make_whole(void)
{
	pb_fill(msg, sizeof(msg), 11);
	whole.n = 0;
	pb_udp(&whole, 40000, 4739, msg, sizeof(msg));
}

/* Part `i` of `n` parts of `size` bytes (the last takes the rest). */
static void
part(struct pktdecode_frag *f, int family, uint32_t id, size_t i, size_t n,
    size_t size)
{
	memset(f, 0, sizeof(*f));
	f->family = (uint8_t)family;
	memcpy(f->src, family == 4 ? pb_src4 : pb_src6, family == 4 ? 4 : 16);
	memcpy(f->dst, family == 4 ? pb_dst4 : pb_dst6, family == 4 ? 4 : 16);
	f->id = id;
	f->proto = 17;
	f->offset = (uint32_t)(i * size);
	f->more = i + 1 < n;
	f->data = whole.b + i * size;
	f->len = i + 1 < n ? size : whole.n - i * size;
}

static void
expect_message(const struct reasm_packet *pkt, int family)
{
	struct pktdecode_udp	u;

	CHECK_EQ_U64(pkt->family, family);
	CHECK_EQ_U64(pkt->len, whole.n);
	CHECK_EQ_U64(pktdecode_transport(pkt->family, pkt->src, pkt->dst,
	    pkt->proto, pkt->data, pkt->len, &u, NULL), PKTDECODE_UDP);
	CHECK_EQ_U64(u.len, MSG_LEN);
	CHECK(u.len == MSG_LEN && memcmp(u.payload, msg, MSG_LEN) == 0);
	CHECK_EQ_U64(u.src_port, 40000);
	CHECK_EQ_U64(u.dst_port, 4739);
}

static void
test_in_order_ipv4(void)
{
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct reasm_counters	 c;
	struct pktdecode_frag	 f;
	size_t			 i, sets, bytes;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	for (i = 0; i < 3; i++) {
		part(&f, 4, 7, i, 3, 1480);
		CHECK_EQ_U64(reasm_add(r, &f, 1000 + i, &pkt),
		    i < 2 ? REASM_HELD : REASM_DONE);
	}
	expect_message(&pkt, 4);
	CHECK(memcmp(pkt.src, pb_src4, 4) == 0);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 0);
	CHECK_EQ_U64(bytes, 0);
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.fragments, 3);
	CHECK_EQ_U64(c.completed, 1);
	reasm_free(r);
}

static void
test_out_of_order_ipv6(void)
{
	const size_t		 order[] = { 2, 0, 1 }, rev[] = { 2, 1, 0 };
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct pktdecode_frag	 f;
	size_t			 i;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	for (i = 0; i < 3; i++) {
		part(&f, 6, 0x01020304, order[i], 3, 1232);
		CHECK_EQ_U64(reasm_add(r, &f, 5, &pkt),
		    i < 2 ? REASM_HELD : REASM_DONE);
	}
	expect_message(&pkt, 6);
	CHECK(memcmp(pkt.dst, pb_dst6, 16) == 0);

	/* last part first, and a different id: a new set */
	for (i = 0; i < 3; i++) {
		part(&f, 6, 0x01020305, rev[i], 3, 1232);
		CHECK_EQ_U64(reasm_add(r, &f, 6, &pkt),
		    i < 2 ? REASM_HELD : REASM_DONE);
	}
	expect_message(&pkt, 6);
	reasm_free(r);
}

static void
test_interleaved(void)
{
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct pktdecode_frag	 a, b;
	size_t			 i, done = 0;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	for (i = 0; i < 4; i++) {
		/* same id, other source: a packet of its own */
		part(&a, 4, 9, i, 4, 1000);
		part(&b, 4, 9, 3 - i, 4, 1000);
		b.src[3] = 99;
		if (reasm_add(r, &a, 1, &pkt) == REASM_DONE) {
			expect_message(&pkt, 4);
			done++;
		}
		if (reasm_add(r, &b, 1, &pkt) == REASM_DONE) {
			expect_message(&pkt, 4);
			CHECK_EQ_U64(pkt.src[3], 99);
			done++;
		}
	}
	CHECK_EQ_U64(done, 2);
	reasm_free(r);
}

static void
test_overlap_and_repeat(void)
{
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct reasm_counters	 c;
	struct pktdecode_frag	 f;
	size_t			 sets, bytes;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);

	/* the same part twice (a capture seeing it twice) is harmless */
	part(&f, 4, 1, 0, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	part(&f, 4, 1, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	part(&f, 4, 1, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DONE);
	expect_message(&pkt, 4);

	/* a part overlapping another drops the whole set */
	part(&f, 4, 2, 0, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	part(&f, 4, 2, 1, 3, 1480);
	f.offset -= 8;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 0);
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.overlaps, 1);

	/* same range, different bytes: an overlap too */
	part(&f, 4, 3, 0, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	f.data = whole.b + 8;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.overlaps, 2);

	/* the remaining parts of a dropped set never complete */
	part(&f, 4, 3, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	part(&f, 4, 3, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	reasm_flush(r);
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.timeouts, 1);
	CHECK_EQ_U64(c.completed, 1);
	reasm_free(r);
}

static void
test_bad_parts(void)
{
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct pktdecode_frag	 f;
	size_t			 sets, bytes;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	/* not the last, and not a multiple of 8 bytes */
	part(&f, 4, 1, 0, 3, 1480);
	f.len = 1001;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	/* beyond 65535 bytes */
	part(&f, 4, 2, 0, 3, 1480);
	f.offset = 65528;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	/* two different ends */
	part(&f, 4, 3, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	f.offset += 8;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	/* a part beyond the known end */
	part(&f, 4, 4, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_HELD);
	f.more = 0;
	f.len = 8;
	CHECK_EQ_U64(reasm_add(r, &f, 1, &pkt), REASM_DROPPED);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 0);
	CHECK_EQ_U64(bytes, 0);
	reasm_free(r);
}

static void
test_timeout(void)
{
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct reasm_counters	 c;
	struct pktdecode_frag	 f;
	size_t			 sets, bytes;
	uint64_t		 t0 = 1700000000ULL * 1000000;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	part(&f, 4, 1, 0, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0, &pkt), REASM_HELD);
	part(&f, 4, 2, 0, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0 + 20 * 1000000, &pkt), REASM_HELD);
	reasm_expire(r, t0 + REASM_TIMEOUT_US - 1);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 2);
	reasm_expire(r, t0 + REASM_TIMEOUT_US);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 1);
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.timeouts, 1);

	/* the late parts of the expired packet start over and stay held */
	part(&f, 4, 1, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0 + 31 * 1000000, &pkt), REASM_HELD);
	part(&f, 4, 1, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0 + 31 * 1000000, &pkt), REASM_HELD);
	/* the other one still completes */
	part(&f, 4, 2, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0 + 31 * 1000000, &pkt), REASM_HELD);
	part(&f, 4, 2, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, t0 + 31 * 1000000, &pkt), REASM_DONE);
	expect_message(&pkt, 4);
	reasm_free(r);
}

static void
test_memory_caps(void)
{
	struct reasm_params	 p = { 4, REASM_MAX_PACKET, 16 * 1024,
				    REASM_TIMEOUT_US };
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct reasm_counters	 c;
	struct pktdecode_frag	 f;
	size_t			 sets, bytes, i;

	make_whole();
	CHECK(reasm_new(&r, &p) == 0);

	/* a fifth set pushes out the oldest */
	for (i = 0; i < 5; i++) {
		part(&f, 4, (uint32_t)(100 + i), 0, 3, 1480);
		CHECK_EQ_U64(reasm_add(r, &f, 10 + i, &pkt), REASM_HELD);
		reasm_usage(r, &sets, &bytes);
		CHECK(sets <= 4);
		CHECK(bytes <= p.max_total);
	}
	reasm_counters(r, &c);
	CHECK_EQ_U64(c.dropped, 1);
	/* the first one is gone: its other parts cannot complete it */
	part(&f, 4, 100, 1, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 20, &pkt), REASM_HELD);
	part(&f, 4, 100, 2, 3, 1480);
	CHECK_EQ_U64(reasm_add(r, &f, 20, &pkt), REASM_HELD);
	reasm_flush(r);

	/* parts far into a packet need memory: older sets give way */
	for (i = 0; i < 3; i++) {
		part(&f, 4, (uint32_t)(200 + i), 0, 2, 8);
		f.offset = 6000;
		f.more = 1;
		CHECK_EQ_U64(reasm_add(r, &f, 30 + i, &pkt), REASM_HELD);
		reasm_usage(r, &sets, &bytes);
		CHECK(bytes <= p.max_total);
	}
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 2);

	/* one packet larger than all the memory allowed is dropped */
	part(&f, 4, 300, 0, 2, 8);
	f.offset = 20000;
	CHECK_EQ_U64(reasm_add(r, &f, 40, &pkt), REASM_DROPPED);
	reasm_usage(r, &sets, &bytes);
	CHECK_EQ_U64(sets, 0);
	CHECK_EQ_U64(bytes, 0);

	/* and the reassembler still works */
	for (i = 0; i < 3; i++) {
		part(&f, 4, 400, i, 3, 1480);
		CHECK_EQ_U64(reasm_add(r, &f, 50, &pkt),
		    i < 2 ? REASM_HELD : REASM_DONE);
	}
	expect_message(&pkt, 4);
	reasm_free(r);
}

/* From frames through the decoder into the reassembler. */
static void
test_frames(void)
{
	static struct pb	 p;
	struct reasm		*r;
	struct reasm_packet	 pkt;
	struct pktdecode_udp	 u;
	struct pktdecode_frag	 f;
	const size_t		 order[] = { 1, 2, 0 };
	size_t			 i, k, off, len;
	enum reasm_result	 rr = REASM_HELD;

	make_whole();
	CHECK(reasm_new(&r, NULL) == 0);
	for (k = 0; k < 3; k++) {
		i = order[k];
		off = i * 1480;
		len = i < 2 ? 1480 : whole.n - off;
		p.n = 0;
		pb_eth(&p, NULL, 0, 0x0800);
		pb_ipv4(&p, pb_src4, pb_dst4, 17, len, 555,
		    (uint16_t)((i < 2 ? 0x2000 : 0) | off / 8), 0);
		pb_bytes(&p, whole.b + off, len);
		CHECK_EQ_U64(pktdecode_frame(PKTDECODE_LINK_EN10MB, p.b, p.n,
		    p.n, &u, &f, NULL), PKTDECODE_FRAGMENT);
		rr = reasm_add(r, &f, 1, &pkt);
	}
	CHECK_EQ_U64(rr, REASM_DONE);
	if (rr == REASM_DONE)
		expect_message(&pkt, 4);

	/* IPv6, with a destination options header after the fragment one */
	for (k = 0; k < 3; k++) {
		static struct pb	body;

		body.n = 0;
		pb_ext8(&body, 17);
		pb_bytes(&body, whole.b, whole.n);
		i = order[k];
		off = i * 1232;
		len = i < 2 ? 1232 : body.n - off;
		p.n = 0;
		pb_ipv6(&p, pb_src6, pb_dst6, 44, 8 + len);
		pb_frag6(&p, 60, (uint16_t)off, i < 2, 0x5555);
		pb_bytes(&p, body.b + off, len);
		CHECK_EQ_U64(pktdecode_frame(PKTDECODE_LINK_RAW, p.b, p.n,
		    p.n, &u, &f, NULL), PKTDECODE_FRAGMENT);
		rr = reasm_add(r, &f, 1, &pkt);
	}
	CHECK_EQ_U64(rr, REASM_DONE);
	if (rr == REASM_DONE) {
		CHECK_EQ_U64(pktdecode_transport(pkt.family, pkt.src,
		    pkt.dst, pkt.proto, pkt.data, pkt.len, &u, NULL),
		    PKTDECODE_UDP);
		CHECK_EQ_U64(u.len, MSG_LEN);
		CHECK(memcmp(u.payload, msg, MSG_LEN) == 0);
	}
	reasm_free(r);
}

TEST_MAIN(test_in_order_ipv4, test_out_of_order_ipv6, test_interleaved,
    test_overlap_and_repeat, test_bad_parts, test_timeout, test_memory_caps,
    test_frames)
