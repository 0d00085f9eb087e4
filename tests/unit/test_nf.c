/*
 * test_nf.c: NetFlow v5 / v9 / IPFIX sniffing on synthetic datagrams.
 */
#include "check.h"

#include "nf.h"

static size_t
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

static size_t
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

/* A v5 datagram of `count` flows (header says `hcount`). */
static size_t
make_v5(uint8_t *p, uint16_t hcount, size_t count)
{
	size_t off = 0;

	off += put16(p + off, 5);
	off += put16(p + off, hcount);
	off += put32(p + off, 123456);		/* sys_uptime */
	off += put32(p + off, 1700000000);	/* unix_secs */
	off += put32(p + off, 5000);		/* unix_nsecs */
	off += put32(p + off, 0xdeadbeef);	/* flow_sequence */
	p[off++] = 1;				/* engine_type */
	p[off++] = 2;				/* engine_id */
	off += put16(p + off, 0);		/* sampling */
	for (size_t i = 0; i < count; i++) {
		memset(p + off, (int)(0x40 + i), NF_V5_RECORD);
		off += NF_V5_RECORD;
	}
	return off;
}

static void
expect(const uint8_t *p, size_t len, enum nf_verdict want,
    struct nf_info *info, int line)
{
	enum nf_verdict got = nf_check(p, len, info);

	if (got != want) {
		fprintf(stderr, "line %d: verdict %d, wanted %d (%s)\n", line,
		    got, want, info->why ? info->why : "-");
		check_failures++;
	}
	/* A reason exactly when the verdict is not OK. */
	if ((got == NF_OK) != (info->why == NULL)) {
		fprintf(stderr, "line %d: why is %s\n", line,
		    info->why ? info->why : "NULL");
		check_failures++;
	}
}
#define EXPECT(p, len, want, info) expect(p, len, want, info, __LINE__)

static void
test_v5(void)
{
	static uint8_t	 p[NF_V5_HEADER + 31 * NF_V5_RECORD + 8];
	struct nf_info	 info;
	size_t		 len;

	len = make_v5(p, 2, 2);
	CHECK_EQ_U64(len, 24 + 96);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.version, 5);
	CHECK_EQ_U64(info.domain, 0x0102);
	CHECK_EQ_U64(info.seq, 0xdeadbeef);
	CHECK_EQ_U64(info.export_time, 1700000000);
	CHECK_EQ_U64(info.records, 2);
	CHECK_EQ_U64(info.data_records, 2);
	CHECK_EQ_U64(info.has_templates, 0);

	/* Every shorter or longer length disagrees with the count. */
	for (size_t l = 0; l < sizeof(p); l++) {
		if (l == len)
			continue;
		EXPECT(p, l, l < NF_V5_HEADER ? NF_INVALID : NF_MALFORMED,
		    &info);
	}

	len = make_v5(p, 30, 30);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.records, 30);
	len = make_v5(p, 31, 31);
	EXPECT(p, len, NF_MALFORMED, &info);
	len = make_v5(p, 3, 2);
	EXPECT(p, len, NF_MALFORMED, &info);
	CHECK_EQ_U64(info.version, 5);
	CHECK_EQ_U64(info.seq, 0xdeadbeef);
	len = make_v5(p, 1, 2);
	EXPECT(p, len, NF_MALFORMED, &info);
	len = make_v5(p, 0, 0);
	CHECK_EQ_U64(len, 24);
	EXPECT(p, len, NF_MALFORMED, &info);
	len = make_v5(p, 0, 1);
	EXPECT(p, len, NF_MALFORMED, &info);
	len = make_v5(p, 1, 1);
	EXPECT(p, len - 1, NF_MALFORMED, &info);
	EXPECT(p, 23, NF_INVALID, &info);
}

/* v9 header; returns its length. */
static size_t
v9_header(uint8_t *p, uint16_t count)
{
	size_t off = 0;

	off += put16(p + off, 9);
	off += put16(p + off, count);
	off += put32(p + off, 99999);		/* sys_uptime */
	off += put32(p + off, 1700000001);	/* unix_secs */
	off += put32(p + off, 4242);		/* package sequence */
	off += put32(p + off, 0x01020304);	/* source id */
	return off;
}

/* Template flowset (id 0): template 256 with two 4-byte fields. */
static size_t
v9_template(uint8_t *p, uint16_t setid)
{
	size_t off = 0;

	off += put16(p + off, setid);
	off += put16(p + off, 16);
	off += put16(p + off, 256);
	off += put16(p + off, 2);
	off += put16(p + off, 8);		/* IPV4_SRC_ADDR */
	off += put16(p + off, 4);
	off += put16(p + off, 12);		/* IPV4_DST_ADDR */
	off += put16(p + off, 4);
	return off;
}

/* Data flowset for template 256: `n` 8-byte records, padded to 4. */
static size_t
v9_data(uint8_t *p, size_t n)
{
	size_t off = 4;

	for (size_t i = 0; i < n; i++) {
		memset(p + off, (int)(0x10 + i), 8);
		off += 8;
	}
	put16(p, 256);
	put16(p + 2, (uint16_t)off);
	return off;
}

static void
test_v9(void)
{
	uint8_t		 p[512];
	struct nf_info	 info;
	size_t		 len, good;

	len = v9_header(p, 3);
	len += v9_template(p + len, 0);
	len += v9_data(p + len, 2);
	good = len;
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.version, 9);
	CHECK_EQ_U64(info.domain, 0x01020304);
	CHECK_EQ_U64(info.seq, 4242);
	CHECK_EQ_U64(info.export_time, 1700000001);
	CHECK_EQ_U64(info.records, 3);
	CHECK_EQ_U64(info.data_records, 0);
	CHECK_EQ_U64(info.has_templates, 1);

	/* Options template flowset (id 1) counts as templates too. */
	len = v9_header(p, 1);
	len += v9_template(p + len, 1);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.has_templates, 1);

	/* Data only. */
	len = v9_header(p, 2);
	len += v9_data(p + len, 2);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.has_templates, 0);

	/* Header only. */
	len = v9_header(p, 0);
	EXPECT(p, len, NF_OK, &info);
	EXPECT(p, len - 1, NF_INVALID, &info);

	/* Overrunning flowset: length one past the end of the datagram. */
	len = v9_header(p, 3);
	len += v9_template(p + len, 0);
	len += v9_data(p + len, 2);
	put16(p + good - 20 + 2, 21);
	EXPECT(p, len, NF_MALFORMED, &info);
	CHECK_EQ_U64(info.version, 9);
	CHECK_EQ_U64(info.seq, 4242);
	put16(p + good - 20 + 2, 20);
	EXPECT(p, len, NF_OK, &info);

	/* Cut inside the last flowset. */
	EXPECT(p, len - 4, NF_MALFORMED, &info);
	/* Flowset lengths under 4 (with a non-zero id). */
	put16(p + good - 20 + 2, 3);
	EXPECT(p, len, NF_MALFORMED, &info);
	put16(p + good - 20 + 2, 0);
	EXPECT(p, len, NF_MALFORMED, &info);
	put16(p + good - 20 + 2, 20);

	/* Padding after the last flowset: 1..3 bytes of anything. */
	for (size_t pad = 1; pad <= 3; pad++) {
		memset(p + good, 0xa5, pad);
		EXPECT(p, good + pad, NF_OK, &info);
	}
	/* Any amount of zeros. */
	for (size_t pad = 1; pad <= 40; pad++) {
		memset(p + good, 0, pad);
		EXPECT(p, good + pad, NF_OK, &info);
		CHECK_EQ_U64(info.has_templates, 1);
	}
	/* Four or more non-zero bytes are a flowset header, and a bad one. */
	memset(p + good, 0, 8);
	p[good] = 1;
	EXPECT(p, good + 8, NF_MALFORMED, &info);
	memset(p + good, 0, 8);
	p[good + 7] = 1;
	EXPECT(p, good + 8, NF_MALFORMED, &info);
	/* Zeros after the header alone. */
	len = v9_header(p, 0);
	memset(p + len, 0, 12);
	EXPECT(p, len + 12, NF_OK, &info);
}

/* IPFIX message header; the length is patched by ipfix_finish(). */
static size_t
ipfix_header(uint8_t *p)
{
	size_t off = 0;

	off += put16(p + off, 10);
	off += put16(p + off, 0);
	off += put32(p + off, 1700000002);	/* export time */
	off += put32(p + off, 777);		/* sequence */
	off += put32(p + off, 0xa0b0c0d0);	/* observation domain */
	return off;
}

static void
ipfix_finish(uint8_t *p, size_t len)
{
	put16(p + 2, (uint16_t)len);
}

static size_t
ipfix_template(uint8_t *p, uint16_t setid)
{
	size_t off = 0;

	off += put16(p + off, setid);
	off += put16(p + off, 12);
	off += put16(p + off, 256);
	off += put16(p + off, 1);
	off += put16(p + off, 8);		/* sourceIPv4Address */
	off += put16(p + off, 4);
	return off;
}

static size_t
ipfix_data(uint8_t *p, size_t n)
{
	size_t off = 4;

	for (size_t i = 0; i < n; i++) {
		memset(p + off, (int)(0x20 + i), 4);
		off += 4;
	}
	put16(p, 256);
	put16(p + 2, (uint16_t)off);
	return off;
}

static void
test_ipfix(void)
{
	uint8_t		 p[512];
	struct nf_info	 info;
	size_t		 len, good;

	len = ipfix_header(p);
	len += ipfix_template(p + len, 2);
	len += ipfix_data(p + len, 3);
	ipfix_finish(p, len);
	good = len;
	CHECK_EQ_U64(good, 16 + 12 + 16);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.version, 10);
	CHECK_EQ_U64(info.domain, 0xa0b0c0d0);
	CHECK_EQ_U64(info.seq, 777);
	CHECK_EQ_U64(info.export_time, 1700000002);
	CHECK_EQ_U64(info.records, 0);
	CHECK_EQ_U64(info.data_records, 0);
	CHECK_EQ_U64(info.has_templates, 1);

	/* Options template set (3); data only. */
	len = ipfix_header(p);
	len += ipfix_template(p + len, 3);
	ipfix_finish(p, len);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.has_templates, 1);
	len = ipfix_header(p);
	len += ipfix_data(p + len, 1);
	ipfix_finish(p, len);
	EXPECT(p, len, NF_OK, &info);
	CHECK_EQ_U64(info.has_templates, 0);

	/* Header only: a message with no sets is consistent. */
	len = ipfix_header(p);
	ipfix_finish(p, len);
	EXPECT(p, len, NF_OK, &info);
	EXPECT(p, len - 1, NF_INVALID, &info);

	/* Message length disagreeing with the datagram, either way. */
	len = ipfix_header(p);
	len += ipfix_template(p + len, 2);
	len += ipfix_data(p + len, 3);
	ipfix_finish(p, len);
	for (size_t l = NF_IPFIX_HEADER; l < len; l++)
		EXPECT(p, l, NF_MALFORMED, &info);
	p[len] = 0;
	EXPECT(p, len + 1, NF_MALFORMED, &info);
	CHECK_EQ_U64(info.version, 10);
	CHECK_EQ_U64(info.seq, 777);

	/* Set lengths: under 4, overrunning, short of the end. */
	put16(p + good - 16 + 2, 3);
	EXPECT(p, good, NF_MALFORMED, &info);
	put16(p + good - 16 + 2, 0);
	EXPECT(p, good, NF_MALFORMED, &info);
	put16(p + good - 16 + 2, 17);
	EXPECT(p, good, NF_MALFORMED, &info);
	put16(p + good - 16 + 2, 14);
	EXPECT(p, good, NF_MALFORMED, &info);	/* 2 bytes left over */
	put16(p + good - 16 + 2, 12);
	EXPECT(p, good, NF_MALFORMED, &info);	/* 4 bytes left, a bad set */
	put16(p + good - 16 + 2, 16);
	EXPECT(p, good, NF_OK, &info);
	put16(p + 16 + 2, 11);
	EXPECT(p, good, NF_MALFORMED, &info);
}

static void
test_not_netflow(void)
{
	uint8_t		 p[256];
	struct nf_info	 info;

	/* sFlow v5: a 32-bit version 5, so the first 16 bits read 0. */
	memset(p, 0, sizeof(p));
	put32(p, 5);			/* version */
	put32(p + 4, 1);		/* agent address type IPv4 */
	put32(p + 8, 0xc0000201);	/* agent address */
	put32(p + 12, 0);		/* sub-agent id */
	put32(p + 16, 1234);		/* sequence */
	put32(p + 20, 99999);		/* uptime */
	put32(p + 24, 0);		/* samples */
	EXPECT(p, 28, NF_INVALID, &info);
	CHECK_EQ_U64(info.version, 0);

	/* Other NetFlow versions and random protocols. */
	for (uint16_t v = 0; v < 20; v++) {
		if (v == 5 || v == 9 || v == 10)
			continue;
		put16(p, v);
		EXPECT(p, 100, NF_INVALID, &info);
	}
	put16(p, 0xffff);
	EXPECT(p, 100, NF_INVALID, &info);
	memcpy(p, "GET / HTTP/1.1\r\n", 16);
	EXPECT(p, 16, NF_INVALID, &info);

	/* Too short to hold any version. */
	put16(p, 9);
	for (size_t l = 0; l < 4; l++)
		EXPECT(p, l, NF_INVALID, &info);
	CHECK(nf_check(NULL, 0, &info) == NF_INVALID);
	/* No info wanted. */
	CHECK(nf_check(p, 2, NULL) == NF_INVALID);
	{
		uint8_t v5[24 + 48];

		CHECK(nf_check(v5, make_v5(v5, 1, 1), NULL) == NF_OK);
	}
}

/*
 * Arbitrary bytes behind each version: whatever the verdict, nothing reads
 * outside the datagram (the sanitizer build checks that) and the verdict
 * is one of the three.  Each datagram is a fresh allocation of its exact
 * length so that an overread is caught.
 */
static void
test_garbage(void)
{
	uint32_t	 x = 2463534242u;
	const uint16_t	 versions[] = { 5, 9, 10 };
	struct nf_info	 info;

	for (int iter = 0; iter < 30000; iter++) {
		size_t		 len;
		uint8_t		*p;
		enum nf_verdict	 v;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		len = x % 300;
		if ((p = malloc(len > 0 ? len : 1)) == NULL)
			abort();
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			/* Mostly small bytes, so lengths are often plausible. */
			p[i] = (uint8_t)(x % 4 == 0 ? x >> 8 : (x >> 8) % 24);
		}
		if (len >= 2)
			put16(p, versions[iter % 3]);
		if (len >= 4 && iter % 3 == 2 && iter % 2 == 0)
			put16(p + 2, (uint16_t)len);
		v = nf_check(p, len, &info);
		CHECK(v == NF_OK || v == NF_MALFORMED || v == NF_INVALID);
		CHECK((v == NF_OK) == (info.why == NULL));
		free(p);
	}
}

TEST_MAIN(test_v5, test_v9, test_ipfix, test_not_netflow, test_garbage)
