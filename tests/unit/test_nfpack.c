/*
 * test_nfpack.c: the transforms of codec 2 (common/nfpack.c) and codec 3
 * (common/nfpack3.c), and batches of both through wire_seal()/wire_open().
 *
 * Every capture in tests/data/exports (and the corpus at
 * /work/shared/corpus/exports when it is there) is cut into batches the
 * way the client cuts them and must come back byte for byte under both
 * codecs; so must synthetic v5 with extreme values, malformed v5, mixed
 * versions, more exporters and addresses than the codec 3 tables hold,
 * empty content and a heartbeat.  Every truncation of a transformed
 * stream is refused; every change of its counts, lengths, kinds and
 * table references is refused; and every one-byte change is either
 * refused or gives other content (which the content CRC then refuses).
 * Fixed streams pin both formats byte for byte.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bytes.h"
#include "check.h"
#include "nfpack.h"
#include "nfpack3.h"
#include "wire.h"

#define BATCH_MAX	(256 * 1024)	/* the client's batch_max_bytes */
#define PCAP_MAX	(64u << 20)
#define CORPUS_DIR	"/work/shared/corpus/exports"

static const uint8_t key[WIRE_KEY_LEN] = { 7, 1, 2, 3 };

/* The two transforms behind one interface. */
struct codec {
	const char	*name;
	uint8_t		 wire;
	size_t		 (*bound)(size_t);
	int		 (*encode)(const uint8_t *, size_t, const uint8_t *,
			    size_t, uint8_t *, size_t, size_t *);
	int		 (*decode)(const uint8_t *, size_t, uint8_t *, size_t,
			    size_t *);
};

static const struct codec codecs[] = {
	{ "nfpack", WIRE_CODEC_NFPACK, nfpack_bound, nfpack_encode,
	    nfpack_decode },
	{ "nfpack3", WIRE_CODEC_NFPACK3, nfpack3_bound, nfpack3_encode,
	    nfpack3_decode },
};
#define NCODECS	(sizeof(codecs) / sizeof(codecs[0]))
#define CODEC2	(&codecs[0])
#define CODEC3	(&codecs[1])

static size_t	batches_checked, v5_checked;
static uint64_t	sealed_bytes[NCODECS];

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n > 0 ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

/* health + entries as one content buffer, as wire_open() returns it. */
static uint8_t *
content_of(const uint8_t *health, size_t hlen, const uint8_t *entries,
    size_t elen, size_t *clen)
{
	uint8_t	*c = xmalloc(4 + hlen + elen + 1);

	put_be32(c, (uint32_t)hlen);
	if (hlen > 0)
		memcpy(c + 4, health, hlen);
	if (elen > 0)
		memcpy(c + 4 + hlen, entries, elen);
	*clen = 4 + hlen + elen;
	return c;
}

static size_t
count_entries(const uint8_t *entries, size_t len)
{
	struct wire_iter	 it = { entries, len };
	struct wire_entry	 e;
	size_t			 n = 0;
	int			 r;

	while ((r = wire_entry_next(&it, &e)) == 1)
		n++;
	CHECK(r == 0);
	return n;
}

/* Seals a content with `codec` under a ceiling of `max` bytes. */
static enum wire_err
seal(uint8_t codec, const uint8_t *health, size_t hlen,
    const uint8_t *entries, size_t elen, int heartbeat, struct buf *out)
{
	struct wire_seal_args	 a;

	memset(&a, 0, sizeof(a));
	a.client_id = "kit-01";
	a.seq = 42;
	a.created_us = 1700000000000000ULL;
	a.flags = heartbeat ? WIRE_FLAG_HEARTBEAT : 0;
	a.codec = codec;
	a.zlevel = 6;
	a.health = health;
	a.health_len = hlen;
	a.entries = entries;
	a.entries_len = elen;
	a.count = (uint32_t)count_entries(entries, elen);
	a.key = key;
	return wire_seal(&a, out);
}

/*
 * The transform and the batch both give the content back, under each
 * codec.
 */
static void
roundtrip(const uint8_t *health, size_t hlen, const uint8_t *entries,
    size_t elen, int heartbeat)
{
	struct wire_header	 h;
	struct buf		 sealed, raw;
	uint8_t			*content, *packed, *back;
	size_t			 clen, bound, plen = 0, used = 0;

	content = content_of(health, hlen, entries, elen, &clen);
	back = xmalloc(clen);
	CHECK(buf_init(&sealed, 0, 2 * clen + 4096) == 0);
	CHECK(buf_init(&raw, 0, 16u << 20) == 0);
	for (size_t k = 0; k < NCODECS; k++) {
		const struct codec *c = &codecs[k];

		bound = c->bound(clen);
		CHECK(bound >= clen);
		packed = xmalloc(bound);
		CHECK(c->encode(health, hlen, entries, elen, packed, bound,
		    &plen) == 0);
		CHECK(plen <= bound);
		/* Too little output space is refused, not overrun. */
		CHECK(c->encode(health, hlen, entries, elen, packed, plen - 1,
		    &used) == -1);
		used = 0;
		CHECK(c->decode(packed, plen, back, clen, &used) == 0);
		CHECK_EQ_U64(used, clen);
		CHECK(used == clen && memcmp(back, content, clen) == 0);
		CHECK(c->decode(packed, plen, back, clen - 1, &used) == -1);
		free(packed);

		CHECK(seal(c->wire, health, hlen, entries, elen, heartbeat,
		    &sealed) == WIRE_OK);
		CHECK(wire_open(sealed.data, sealed.len, key, 16u << 20, &h,
		    &raw) == WIRE_OK);
		CHECK_EQ_U64(h.codec, c->wire);
		CHECK_EQ_U64(raw.len, clen);
		CHECK(raw.len == clen && memcmp(raw.data, content, clen) == 0);
		/* The cap on the content still applies. */
		CHECK(wire_open(sealed.data, sealed.len, key, clen - 1, &h,
		    &raw) == WIRE_ETOOBIG);
		sealed_bytes[k] += sealed.len;
	}
	batches_checked++;
	buf_free(&sealed);
	buf_free(&raw);
	free(back);
	free(content);
}

/*
 * pcap reading: classic pcap (either byte order), Ethernet or Linux
 * cooked link types, IPv4 or IPv6, UDP only.  Enough for the captures in
 * tests/data/exports and the corpus.
 */
struct pcap_src {
	uint8_t		*data;
	size_t		 len, off;
	int		 swap;
	uint32_t	 link;
};

static uint32_t
pcap_u32(const struct pcap_src *ps, const uint8_t *p)
{
	if (ps->swap)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		    (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[1] << 8 | p[0];
}

static int
pcap_open(struct pcap_src *ps, const char *path)
{
	FILE	*f;
	size_t	 n;

	memset(ps, 0, sizeof(*ps));
	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	ps->data = malloc(PCAP_MAX);
	n = ps->data != NULL ? fread(ps->data, 1, PCAP_MAX, f) : 0;
	fclose(f);
	if (n < 24 || n == PCAP_MAX) {
		free(ps->data);
		return -1;
	}
	ps->len = n;
	if (memcmp(ps->data, "\xd4\xc3\xb2\xa1", 4) == 0)
		ps->swap = 0;
	else if (memcmp(ps->data, "\xa1\xb2\xc3\xd4", 4) == 0)
		ps->swap = 1;
	else {
		free(ps->data);
		return -1;
	}
	ps->link = pcap_u32(ps, ps->data + 20);
	ps->off = 24;
	return 0;
}

/* Next UDP datagram as an entry: 1, 0 at the end. */
static int
pcap_next(struct pcap_src *ps, struct wire_entry *e, uint64_t *seen)
{
	while (ps->len - ps->off >= 16) {
		const uint8_t	*rec = ps->data + ps->off;
		uint32_t	 incl = pcap_u32(ps, rec + 8);
		struct rcur	 r;
		uint16_t	 type, ulen;
		uint8_t		 proto = 0;

		if (incl > ps->len - ps->off - 16)
			return 0;
		ps->off += 16 + (size_t)incl;
		rcur_init(&r, rec + 16, incl);
		if (ps->link == 1) {
			(void)rcur_take(&r, 12);
		} else if (ps->link == 113) {
			(void)rcur_take(&r, 14);
		} else
			return 0;
		type = rcur_u16(&r);
		memset(e, 0, sizeof(*e));
		if (type == 0x0800) {
			uint8_t vihl = rcur_u8(&r);
			const uint8_t *ip;

			(void)rcur_take(&r, 8);
			proto = rcur_u8(&r);
			(void)rcur_take(&r, 2);
			ip = rcur_take(&r, 4);
			(void)rcur_take(&r, 4);
			if (ip == NULL || (vihl & 0x0f) < 5)
				continue;
			(void)rcur_take(&r, (size_t)(vihl & 0x0f) * 4 - 20);
			e->family = 4;
			memcpy(e->addr, ip, 4);
		} else if (type == 0x86dd) {
			const uint8_t *ip;

			(void)rcur_take(&r, 6);
			proto = rcur_u8(&r);
			(void)rcur_take(&r, 1);
			ip = rcur_take(&r, 16);
			(void)rcur_take(&r, 16);
			if (ip == NULL)
				continue;
			e->family = 6;
			memcpy(e->addr, ip, 16);
		} else
			continue;
		e->src_port = rcur_u16(&r);
		e->dst_port = rcur_u16(&r);
		ulen = rcur_u16(&r);
		(void)rcur_u16(&r);
		if (r.err || proto != 17 || ulen <= 8 || ulen - 8u > r.left)
			continue;
		e->len = (uint16_t)(ulen - 8u);
		e->payload = r.p;
		e->recv_us = (uint64_t)pcap_u32(ps, rec) * 1000000 +
		    pcap_u32(ps, rec + 4);
		if (e->len >= 2 && r.p[0] == 0 && r.p[1] == 5)
			(*seen)++;
		return 1;
	}
	return 0;
}

/* Cuts a capture into client-sized batches and round-trips each. */
static int
check_capture(const char *path)
{
	struct pcap_src		 ps;
	struct wire_entry	 e;
	struct buf		 entries;
	uint8_t			 health[40];

	if (pcap_open(&ps, path) == -1)
		return -1;
	memset(health, 0xa5, sizeof(health));
	CHECK(buf_init(&entries, 0, BATCH_MAX + WIRE_DATAGRAM_MAX + 32) == 0);
	while (pcap_next(&ps, &e, &v5_checked) == 1) {
		if (entries.len + wire_entry_size(e.len) > BATCH_MAX &&
		    entries.len > 0) {
			roundtrip(health, sizeof(health), entries.data,
			    entries.len, 0);
			buf_reset(&entries);
		}
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	if (entries.len > 0)
		roundtrip(health, sizeof(health), entries.data, entries.len,
		    0);
	buf_free(&entries);
	free(ps.data);
	return 0;
}

static size_t
check_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[1024];
	size_t		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		int k;

		if (l < 5 || strcmp(de->d_name + l - 5, ".pcap") != 0)
			continue;
		k = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (k < 0 || (size_t)k >= sizeof(path))
			continue;
		if (check_capture(path) == 0)
			n++;
		else {
			fprintf(stderr, "cannot read %s\n", path);
			check_failures++;
		}
	}
	closedir(d);
	return n;
}

static void
test_exports(void)
{
	size_t	n;

	batches_checked = v5_checked = 0;
	memset(sealed_bytes, 0, sizeof(sealed_bytes));
	n = check_dir(FLOWPOST_TEST_DATA "/exports");
	CHECK(n >= 20);
	CHECK(v5_checked > 0);
	fprintf(stderr, "  exports: %zu captures, %zu batches, %zu v5; "
	    "sealed nfpack %llu, nfpack3 %llu bytes\n", n, batches_checked,
	    v5_checked, (unsigned long long)sealed_bytes[0],
	    (unsigned long long)sealed_bytes[1]);
}

static void
test_corpus(void)
{
	size_t	n;

	batches_checked = 0;
	n = check_dir(CORPUS_DIR);
	fprintf(stderr, "  corpus: %zu captures, %zu batches%s\n", n,
	    batches_checked, n == 0 ? " (not present)" : "");
}

/*
 * Synthetic datagrams.
 */

static void
v5_make(uint8_t *p, uint16_t count, uint32_t uptime, uint32_t secs,
    uint32_t seq, uint32_t fill)
{
	memset(p, 0, 24 + 48 * (size_t)count);
	put_be16(p, 5);
	put_be16(p + 2, count);
	put_be32(p + 4, uptime);
	put_be32(p + 8, secs);
	put_be32(p + 12, fill);
	put_be32(p + 16, seq);
	p[20] = (uint8_t)fill;
	for (uint16_t i = 0; i < count; i++) {
		uint8_t *r = p + 24 + 48 * (size_t)i;

		put_be32(r, 0x0a000001 + i);
		put_be32(r + 16, fill * i);		/* dPkts */
		put_be32(r + 20, i & 1 ? 0 : 0xffffffff);	/* dOctets */
		put_be32(r + 24, uptime - 1000 * i);	/* first */
		put_be32(r + 28, uptime + i);		/* last, after uptime */
		r[38] = 6;
		r[46] = (uint8_t)i;			/* pad2 kept as is */
	}
}

static void
add_from(struct buf *b, uint64_t recv_us, const uint8_t *p, size_t len,
    int v6, uint8_t host, uint16_t sport)
{
	struct wire_entry e;

	memset(&e, 0, sizeof(e));
	e.recv_us = recv_us;
	e.family = v6 ? 6 : 4;
	e.addr[0] = 192;
	e.addr[3] = host;
	if (v6)
		e.addr[15] = 1;
	e.src_port = sport;
	e.dst_port = 2055;
	e.len = (uint16_t)len;
	e.payload = p;
	CHECK(wire_entry_append(b, &e) == 0);
}

static void
add(struct buf *b, uint64_t recv_us, const uint8_t *p, size_t len, int v6)
{
	add_from(b, recv_us, p, len, v6, (uint8_t)len, (uint16_t)(40000 + len));
}

static void
test_v5_extremes(void)
{
	struct buf	 b;
	uint8_t		 p[24 + 48 * 30];
	uint32_t	 seq = 0xffffffe0u;

	CHECK(buf_init(&b, 0, 1u << 20) == 0);
	/* Sequence numbers and clocks that wrap, counts 1 and 30. */
	for (int i = 0; i < 40; i++) {
		uint16_t n = (uint16_t)(i % 30 + 1);

		v5_make(p, n, 0xfffffff0u + (uint32_t)i * 7,
		    0xfffffffeu + (uint32_t)i, seq, (uint32_t)i * 0x01010101u);
		add(&b, UINT64_MAX - 20 + (uint64_t)i, p, 24 + 48 * (size_t)n,
		    i & 1);
		seq += n + (i == 7 ? 1000 : 0);
	}
	/* recv_us going backwards, 0 and max fields. */
	v5_make(p, 30, 0, 0, 0, 0);
	add(&b, 0, p, 24 + 48 * 30, 0);
	v5_make(p, 30, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX);
	memset(p + 24, 0xff, 48 * 30);
	add(&b, UINT64_MAX, p, 24 + 48 * 30, 1);
	roundtrip(NULL, 0, b.data, b.len, 0);
	buf_free(&b);
}

static void
test_malformed_and_mixed(void)
{
	struct buf	 b;
	uint8_t		 p[24 + 48 * 31];

	CHECK(buf_init(&b, 0, 1u << 20) == 0);
	v5_make(p, 3, 1000, 2000, 3000, 4);
	put_be16(p + 2, 4);			/* count says 4, has 3 */
	add(&b, 10, p, 24 + 48 * 3, 0);
	v5_make(p, 3, 1000, 2000, 3000, 4);
	add(&b, 11, p, 24 + 48 * 3 - 1, 0);	/* cut short */
	add(&b, 12, p, 24 + 48 * 3 + 5, 0);	/* trailing bytes */
	add(&b, 13, p, 24, 0);			/* header only */
	v5_make(p, 31, 1, 2, 3, 4);		/* more than 30 records */
	add(&b, 14, p, 24 + 48 * 31, 0);
	v5_make(p, 2, 5, 6, 7, 8);
	add(&b, 15, p, 24 + 48 * 2, 0);		/* a good one between */
	put_be16(p, 9);				/* v9 of v5's length */
	add(&b, 16, p, 24 + 48 * 2, 1);
	put_be16(p, 10);
	put_be16(p + 2, 24 + 48 * 2);
	add(&b, 17, p, 24 + 48 * 2, 1);
	add(&b, 18, p, 1, 0);			/* one byte */
	v5_make(p, 1, 5, 6, 7, 8);
	add(&b, 19, p, 24 + 48, 0);
	roundtrip(NULL, 0, b.data, b.len, 0);
	buf_free(&b);
}

static void
test_empty_and_heartbeat(void)
{
	uint8_t	 health[130];

	for (size_t i = 0; i < sizeof(health); i++)
		health[i] = (uint8_t)(i * 13);
	roundtrip(NULL, 0, NULL, 0, 0);
	roundtrip(health, sizeof(health), NULL, 0, 1);
}

/*
 * What codec 3 codes specially: connection pairs, repeated times and
 * fields, recurring addresses (more than its 16-entry table holds), more
 * exporters than its 8-entry table holds, interleaved, each with its own
 * clocks and sequence, and counters at the varint size steps.
 */
static void
test_v5_tables(void)
{
	static const uint32_t	 nums[] = { 0, 1, 127, 128, 16383, 16384,
				    (1u << 21) - 1, 1u << 21, (1u << 28) - 1,
				    1u << 28, 0x7fffffffu, 0x80000000u,
				    UINT32_MAX };
	struct buf		 b;
	uint8_t			 p[24 + 48 * 30];
	uint32_t		 x = 99, seq[12] = { 0 }, up[12] = { 0 };

	CHECK(buf_init(&b, 0, 1u << 20) == 0);
	for (int d = 0; d < 120; d++) {
		unsigned int	 ex = (unsigned int)(d * 7 % 12);
		uint16_t	 n = (uint16_t)(d % 30 + 1);

		up[ex] += 1000 + (uint32_t)d;
		v5_make(p, n, up[ex], 1700000000u + up[ex] / 1000, seq[ex],
		    ex);
		p[21] = (uint8_t)ex;			/* engine_id */
		for (uint16_t i = 0; i < n; i++) {
			uint8_t		*r = p + 24 + 48 * (size_t)i;
			const uint8_t	*q = r - 48;

			x = x * 1103515245u + 12345u;
			if (i > 0 && (x >> 8) % 3 == 0) {
				/* The reply: the previous record turned. */
				memcpy(r, q + 4, 4);
				memcpy(r + 4, q, 4);
				memcpy(r + 32, q + 34, 2);
				memcpy(r + 34, q + 32, 2);
				r[38] = q[38];
				if ((x >> 12) & 1)
					memcpy(r + 24, q + 24, 8);
			} else {
				/* 40 addresses: more than the table. */
				put_be32(r, 0x0a000000u + (x >> 10) % 40);
				put_be32(r + 4, 0xc6120000u + (x >> 16) % 40);
				put_be16(r + 32, (uint16_t)(x >> 3));
				put_be16(r + 34, (x >> 20) & 1 ? 443 : 53);
				r[38] = (x >> 21) & 1 ? 6 : 17;
			}
			put_be32(r + 16, nums[(x >> 4) % 13]);
			put_be32(r + 20, nums[(x >> 9) % 13]);
			if (!((x >> 12) & 1))
				put_be32(r + 24, up[ex] - (x >> 14) % 100000);
			r[37] = (uint8_t)(x >> 24);
			r[39] = (x >> 25) % 8 == 0 ? 0xb8 : 0;
			if ((x >> 27) % 5 == 0)
				put_be16(r + 12, (uint16_t)(x >> 2));
		}
		seq[ex] += n + (d == 50 ? 7 : 0);
		add_from(&b, 1700000000000000ULL + (uint64_t)d * 997 -
		    (d % 5 == 0 ? 5000 : 0), p, 24 + 48 * (size_t)n, ex & 1,
		    (uint8_t)(ex + 1), (uint16_t)(50000 + ex));
	}
	roundtrip(NULL, 0, b.data, b.len, 0);
	buf_free(&b);
}

/*
 * Content that does not compress and that the codec 3 transform makes
 * longer, under a ceiling just big enough for codec 1: sealed as codec 1.
 */
static void
test_fallback(void)
{
	struct wire_header	 h;
	struct buf		 b, out, raw;
	uint8_t			 p[24 + 48 * 30];
	uint32_t		 x = 7;
	size_t			 one;

	CHECK(buf_init(&b, 0, 1u << 20) == 0);
	for (int d = 0; d < 40; d++) {
		v5_make(p, 30, (uint32_t)d, 1, (uint32_t)d * 30, 0);
		for (size_t i = 24; i < sizeof(p); i++) {
			x = x * 1103515245u + 12345u;
			p[i] = (uint8_t)(x >> 16);
		}
		add(&b, (uint64_t)d, p, sizeof(p), 0);
	}
	CHECK(buf_init(&out, 0, 1u << 20) == 0);
	CHECK(buf_init(&raw, 0, 1u << 20) == 0);
	CHECK(seal(WIRE_CODEC_ZLIB, NULL, 0, b.data, b.len, 0, &out) ==
	    WIRE_OK);
	one = out.len;
	CHECK(seal(WIRE_CODEC_NFPACK3, NULL, 0, b.data, b.len, 0, &out) ==
	    WIRE_OK);
	CHECK(wire_parse_header(out.data, out.len, &h) == WIRE_OK);
	CHECK_EQ_U64(h.codec, WIRE_CODEC_NFPACK3);
	CHECK(out.len > one);
	buf_free(&out);

	CHECK(buf_init(&out, 0, one) == 0);
	CHECK(seal(WIRE_CODEC_NFPACK3, NULL, 0, b.data, b.len, 0, &out) ==
	    WIRE_OK);
	CHECK(wire_open(out.data, out.len, key, 1u << 20, &h, &raw) ==
	    WIRE_OK);
	CHECK_EQ_U64(h.codec, WIRE_CODEC_ZLIB);
	CHECK(raw.len == b.len + 4 && memcmp(raw.data + 4, b.data, b.len) ==
	    0);
	/* Below codec 1's size nothing fits. */
	out.max = one - 1;
	CHECK(seal(WIRE_CODEC_NFPACK3, NULL, 0, b.data, b.len, 0, &out) ==
	    WIRE_ETOOBIG);
	buf_free(&out);
	buf_free(&raw);
	buf_free(&b);
}

/* A small stream holding every kind of section, for the damage tests. */
static uint8_t *
small_stream(const struct codec *c, size_t *plen, uint8_t **content,
    size_t *clen)
{
	struct buf	 b;
	uint8_t		 p[24 + 48 * 3], health[9] = "healthy!";
	uint8_t		*packed;
	size_t		 bound;

	CHECK(buf_init(&b, 0, 1u << 16) == 0);
	v5_make(p, 3, 100000, 1700000000, 77, 5);
	add(&b, 1700000000000001ULL, p, sizeof(p), 0);
	put_be16(p, 9);
	add(&b, 1700000000000002ULL, p, 40, 1);
	v5_make(p, 2, 100100, 1700000001, 80, 6);
	add(&b, 1700000000000003ULL, p, 24 + 48 * 2, 0);
	*content = content_of(health, sizeof(health), b.data, b.len, clen);
	bound = c->bound(*clen);
	packed = xmalloc(bound);
	CHECK(c->encode(health, sizeof(health), b.data, b.len, packed,
	    bound, plen) == 0);
	buf_free(&b);
	return packed;
}

static void
test_truncations(void)
{
	uint8_t		*packed, *content, *back, *cut;
	size_t		 plen = 0, clen = 0, used;

	for (size_t k = 0; k < NCODECS; k++) {
		packed = small_stream(&codecs[k], &plen, &content, &clen);
		back = xmalloc(clen + 64);
		CHECK(codecs[k].decode(packed, plen, back, clen + 64, &used) ==
		    0);
		CHECK(used == clen && memcmp(back, content, clen) == 0);
		/* Every prefix, in a buffer of its size (for ASan). */
		for (size_t n = 0; n < plen; n++) {
			cut = xmalloc(n);
			memcpy(cut, packed, n);
			CHECK(codecs[k].decode(cut, n, back, clen + 64,
			    &used) == -1);
			free(cut);
		}
		/* A byte more is refused too. */
		cut = xmalloc(plen + 1);
		memcpy(cut, packed, plen);
		cut[plen] = 0;
		CHECK(codecs[k].decode(cut, plen + 1, back, clen + 64, &used) ==
		    -1);
		free(cut);
		free(back);
		free(packed);
		free(content);
	}
}

/* Damaged counts, kinds, versions and lengths are refused (codec 2). */
static void
test_damage(void)
{
	uint8_t		*packed, *content, *back;
	size_t		 plen = 0, clen = 0, used, hl = 9;
	size_t		 counts = 1 + 4 + hl;	/* count, n5, nrec, other */
	size_t		 kind = counts + 16;

	packed = small_stream(CODEC2, &plen, &content, &clen);
	back = xmalloc(clen);

	packed[0] = 2;					/* version */
	CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
	packed[0] = NFPACK_VERSION;
	for (size_t f = 0; f < 4; f++) {
		for (int d = -1; d <= 1; d += 2) {
			uint8_t *c = packed + counts + 4 * f + 3;

			*c = (uint8_t)(*c + d);
			CHECK(nfpack_decode(packed, plen, back, clen, &used) ==
			    -1);
			*c = (uint8_t)(*c - d);
		}
	}
	/* Kinds: unknown, v5 where other, other where v5. */
	packed[kind] = 2;
	CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
	packed[kind] = 0;
	CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
	packed[kind] = 1;
	packed[kind + 1] = 1;
	CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
	packed[kind + 1] = 0;
	/* A v5 header whose version or count no longer matches. */
	{
		size_t v5hdr = kind + 3 + 32 * 3;

		/* Plane j of the 2 v5 headers is at v5hdr + 2 * j. */
		CHECK(nfpack_decode(packed, plen, back, clen, &used) == 0);
		packed[v5hdr + 2] = 6;			/* version low byte */
		CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
		packed[v5hdr + 2] = 5;
		packed[v5hdr + 6] = 9;			/* count low byte */
		CHECK(nfpack_decode(packed, plen, back, clen, &used) == -1);
	}
	free(back);
	free(packed);
	free(content);
}

/*
 * Codec 3 damage.  A stream is taken apart into its columns (PROTOCOL.md
 * 1.5), one column is changed, and the stream is put together again with
 * the right length table, so that only the change itself can make the
 * decoder refuse.
 */
enum { C_ENT, C_EXP, C_RECV, C_LEN, C_V5HDR, C_UPTIME, C_SECS, C_SEQ, C_OP,
	C_FLAGS, C_ADDR, C_NEWADDR, C_PORT, C_PROTO, C_FIRST, C_DUR, C_PKTS,
	C_OCTS, C_REST };

struct s3 {
	uint8_t		*p;
	size_t		 len;
	size_t		 table;			/* the column length table */
	size_t		 off[NFPACK3_NCOL + 1];	/* the last: other payloads */
};

static void
s3_parse(struct s3 *s, uint8_t *p, size_t len)
{
	size_t	 off;

	s->p = p;
	s->len = len;
	s->table = 1 + 4 + be32(p + 1) + 16;
	off = s->table + 4 * NFPACK3_NCOL;
	for (size_t i = 0; i < NFPACK3_NCOL; i++) {
		s->off[i] = off;
		off += be32(p + s->table + 4 * i);
	}
	s->off[NFPACK3_NCOL] = off;
}

/*
 * A copy of the stream with `del` bytes at `at` of column `col` replaced
 * by `ins[0 .. nins)`; the length table says the new length.
 */
static uint8_t *
s3_splice(const struct s3 *s, size_t col, size_t at, size_t del,
    const uint8_t *ins, size_t nins, size_t *len)
{
	size_t	 pos = s->off[col] + at;
	uint8_t	*q = xmalloc(s->len - del + nins);
	size_t	 clen = s->off[col + 1] - s->off[col];

	memcpy(q, s->p, pos);
	if (nins > 0)
		memcpy(q + pos, ins, nins);
	memcpy(q + pos + nins, s->p + pos + del, s->len - pos - del);
	put_be32(q + s->table + 4 * col, (uint32_t)(clen - del + nins));
	*len = s->len - del + nins;
	return q;
}

/* Decodes a spliced copy: 0 if accepted. */
static int
s3_try(const struct s3 *s, size_t col, size_t at, size_t del,
    const uint8_t *ins, size_t nins, size_t clen)
{
	uint8_t	*q, *back = xmalloc(clen + 64);
	size_t	 len, used;
	int	 rc;

	q = s3_splice(s, col, at, del, ins, nins, &len);
	rc = nfpack3_decode(q, len, back, clen + 64, &used);
	free(q);
	free(back);
	return rc;
}

static void
test_damage3(void)
{
	struct s3	 s;
	uint8_t		*packed, *content, *back, b[16];
	size_t		 plen = 0, clen = 0, used;

	packed = small_stream(CODEC3, &plen, &content, &clen);
	back = xmalloc(clen + 64);
	s3_parse(&s, packed, plen);
	CHECK(s.off[NFPACK3_NCOL] + 40 == plen);	/* one v9 payload */
	CHECK(s3_try(&s, C_ENT, 0, 0, NULL, 0, clen) == 0);

	packed[0] = 2;					/* version */
	CHECK(nfpack3_decode(packed, plen, back, clen, &used) == -1);
	packed[0] = NFPACK3_VERSION;
	/* Each count and each column length one up or down. */
	for (size_t f = 0; f < 4 + NFPACK3_NCOL; f++) {
		for (int d = -1; d <= 1; d += 2) {
			uint8_t *c = packed + 1 + 4 + 9 + 4 * f + 3;

			*c = (uint8_t)(*c + d);
			CHECK(nfpack3_decode(packed, plen, back, clen, &used) ==
			    -1);
			*c = (uint8_t)(*c - d);
		}
	}
	/* A byte moved from one column to the next, total unchanged. */
	for (size_t f = 0; f + 1 < NFPACK3_NCOL; f++) {
		uint8_t *c = packed + s.table + 4 * f + 3;

		if (s.off[f + 1] == s.off[f])
			continue;
		(*c)--;
		c[4]++;
		CHECK(nfpack3_decode(packed, plen, back, clen, &used) == -1);
		(*c)++;
		c[4]--;
	}

	/* ENT: reserved bits, unknown slots, a slot not yet filled. */
	b[0] = 0x80 | 0x10;
	CHECK(s3_try(&s, C_ENT, 0, 1, b, 1, clen) == -1);
	for (uint8_t slot = 9; slot < 16; slot++) {
		b[0] = 0x80 | slot;
		CHECK(s3_try(&s, C_ENT, 0, 1, b, 1, clen) == -1);
	}
	b[0] = 0x80;				/* slot 0 of an empty table */
	CHECK(s3_try(&s, C_ENT, 0, 1, b, 1, clen) == -1);
	b[0] = 0x08;				/* v5 entry said to be other */
	CHECK(s3_try(&s, C_ENT, 0, 1, b, 1, clen) == -1);
	/* The other entry's length 0, or longer than the payloads. */
	memset(b, 0, 2);
	CHECK(s3_try(&s, C_LEN, 0, 2, b, 2, clen) == -1);
	put_be16(b, 41);
	CHECK(s3_try(&s, C_LEN, 0, 2, b, 2, clen) == -1);
	/* v5 record counts 0 and 31. */
	b[0] = 0;
	CHECK(s3_try(&s, C_V5HDR, 0, 1, b, 1, clen) == -1);
	b[0] = 31;
	CHECK(s3_try(&s, C_V5HDR, 0, 1, b, 1, clen) == -1);
	/* OP: reserved bits. */
	for (int bit = 3; bit < 8; bit++) {
		b[0] = (uint8_t)(packed[s.off[C_OP]] | 1u << bit);
		CHECK(s3_try(&s, C_OP, 0, 1, b, 1, clen) == -1);
	}
	/* ADDR: a rank the table does not have yet, an unknown code. */
	b[0] = 0;
	CHECK(s3_try(&s, C_ADDR, 0, 1, b, 1, clen) == -1);
	b[0] = 17;
	CHECK(s3_try(&s, C_ADDR, 0, 1, b, 1, clen) == -1);
	/* Varints: overlong, beyond 32 bits, running off the column. */
	b[0] = (uint8_t)(packed[s.off[C_PKTS]] | 0x80);
	b[1] = 0;
	CHECK(packed[s.off[C_PKTS]] < 0x80);
	CHECK(s3_try(&s, C_PKTS, 0, 1, b, 2, clen) == -1);
	memcpy(b, "\xff\xff\xff\xff\x1f", 5);	/* 2^33 - 1 */
	CHECK(s3_try(&s, C_PKTS, 0, 1, b, 5, clen) == -1);
	memcpy(b, "\xff\xff\xff\xff\x0f", 5);	/* 2^32 - 1: fine */
	CHECK(s3_try(&s, C_PKTS, 0, 1, b, 5, clen) == 0);
	memcpy(b, "\x80\x80\x80\x80\x80\x01", 6);
	CHECK(s3_try(&s, C_PKTS, 0, 1, b, 6, clen) == -1);
	b[0] = 0x80;
	CHECK(s3_try(&s, C_OCTS, s.off[C_OCTS + 1] - s.off[C_OCTS] - 1, 1,
	    b, 1, clen) == -1);
	/* recv_us of the first entry: 52 bits, 8 bytes; 10 are too many. */
	CHECK(packed[s.off[C_RECV] + 6] & 0x80);
	CHECK(!(packed[s.off[C_RECV] + 7] & 0x80));
	memcpy(b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x03", 10);
	CHECK(s3_try(&s, C_RECV, 0, 8, b, 10, clen) == -1);

	/*
	 * Any one byte changed: refused, or other content.  (The same
	 * content from a changed stream would be harmless too, but the
	 * format leaves no room for it.)
	 */
	for (size_t i = 0; i < plen; i++) {
		static const uint8_t flips[] = { 0x01, 0x02, 0x10, 0x80, 0xff };

		for (size_t f = 0; f < sizeof(flips); f++) {
			packed[i] ^= flips[f];
			if (nfpack3_decode(packed, plen, back, clen + 64,
			    &used) == 0)
				CHECK(used != clen ||
				    memcmp(back, content, clen) != 0);
			packed[i] ^= flips[f];
		}
	}
	free(back);
	free(packed);
	free(content);
}

/*
 * Both formats byte for byte: the small stream of the damage tests (its
 * content is built by small_stream()), as encoded when each codec was
 * specified.  A change here breaks every spool that holds such batches.
 */
static const uint8_t golden_nfpack[] = {
	0x01, 0x00, 0x00, 0x00, 0x09, 0x68, 0x65, 0x61, 0x6c, 0x74, 0x68, 0x79,
	0x21, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	0x00, 0x05, 0x00, 0x00, 0x00, 0x28, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x06, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x24, 0x00, 0x00, 0x18, 0x00, 0x00,
	0x1e, 0x00, 0x00, 0x40, 0x00, 0x00, 0x01, 0x01, 0x01, 0x04, 0x06, 0x04,
	0x00, 0x00, 0x00, 0x9c, 0x9c, 0x9c, 0xe8, 0x68, 0xb8, 0xc0, 0xc0, 0xc0,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa8, 0x28, 0x78, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x08, 0x08,
	0x07, 0x07, 0x07, 0x00, 0x00, 0x00, 0xa8, 0x28, 0x78, 0x00, 0x00, 0x05,
	0x05, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x01, 0x00, 0x86, 0x00, 0xa0,
	0x64, 0x65, 0x00, 0x53, 0x00, 0xf1, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d,
	0x00, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0a, 0x0a,
	0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x02, 0x03, 0x01, 0x02, 0x00, 0x0a, 0x0a, 0x0a, 0x0a, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0a, 0x00,
	0x06, 0xff, 0x00, 0xff, 0xff, 0x00, 0xff, 0x00, 0xff, 0xff, 0x00, 0xff,
	0x00, 0xff, 0xff, 0x00, 0xff, 0x00, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff,
	0x00, 0xff, 0x01, 0xff, 0xff, 0x00, 0xff, 0x86, 0xfc, 0xfc, 0x08, 0xfc,
	0xa0, 0x18, 0x18, 0x34, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x03, 0x07, 0x00, 0x03, 0x00, 0xe9, 0xd2, 0x00,
	0xe9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x06, 0x06, 0x06, 0x06,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00,
	0x03, 0x00, 0x01, 0x86, 0xa0, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00,
	0x05, 0x00, 0x00, 0x00, 0x4d, 0x05, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00,
};
static const uint8_t golden_nfpack3[] = {
	0x01, 0x00, 0x00, 0x00, 0x09, 0x68, 0x65, 0x61, 0x6c, 0x74, 0x68, 0x79,
	0x21, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	0x00, 0x05, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
	0x00, 0x42, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	0x00, 0x12, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
	0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
	0x00, 0x0a, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
	0x00, 0x05, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
	0x00, 0x05, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x48, 0x88, 0x08,
	0x88, 0x04, 0x00, 0x9c, 0xe8, 0xc0, 0x00, 0x00, 0xa8, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06,
	0x00, 0x9c, 0x68, 0xc0, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x07, 0x04, 0x00, 0x9c,
	0xb8, 0xc0, 0x00, 0x00, 0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x07, 0x82, 0x80, 0xf2, 0x81, 0x83,
	0x89, 0x85, 0x06, 0x02, 0x02, 0x00, 0x28, 0x03, 0x00, 0x00, 0x00, 0x05,
	0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x06, 0x06, 0x00, 0x00,
	0x00, 0xc0, 0x9a, 0x0c, 0x88, 0x9c, 0x0c, 0x80, 0xc4, 0x9f, 0xd5, 0x0c,
	0x82, 0xc4, 0x9f, 0xd5, 0x0c, 0x9a, 0x01, 0xa0, 0x01, 0x04, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x10, 0x10, 0x01, 0x10,
	0x01, 0x03, 0x01, 0x03, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x06, 0x06, 0x06, 0x06, 0xc0, 0x9a,
	0x0c, 0xcf, 0x0f, 0xcf, 0x0f, 0xe8, 0x20, 0xcf, 0x0f, 0x00, 0xe9, 0x07,
	0xd2, 0x0f, 0x00, 0xe9, 0x07, 0x00, 0x05, 0x0a, 0x00, 0x06, 0xff, 0xff,
	0xff, 0xff, 0x0f, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff,
	0xff, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x00, 0x09, 0x00, 0x03, 0x00, 0x01, 0x86, 0xa0, 0x65,
	0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x4d, 0x05,
	0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void
test_golden(void)
{
	static const struct {
		const uint8_t	*p;
		size_t		 len;
	} golden[NCODECS] = {
		{ golden_nfpack, sizeof(golden_nfpack) },
		{ golden_nfpack3, sizeof(golden_nfpack3) },
	};

	for (size_t k = 0; k < NCODECS; k++) {
		uint8_t	*packed, *content, *back;
		size_t	 plen = 0, clen = 0, used = 0;

		packed = small_stream(&codecs[k], &plen, &content, &clen);
		CHECK_EQ_U64(plen, golden[k].len);
		CHECK(plen == golden[k].len &&
		    memcmp(packed, golden[k].p, plen) == 0);
		back = xmalloc(clen);
		CHECK(codecs[k].decode(golden[k].p, golden[k].len, back, clen,
		    &used) == 0);
		CHECK(used == clen && memcmp(back, content, clen) == 0);
		free(back);
		free(packed);
		free(content);
	}
}

static void
test_garbage(void)
{
	uint8_t		 in[512], out[600];
	size_t		 used;
	uint32_t	 x = 12345;

	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round % (int)sizeof(in));
		const struct codec *c = &codecs[round % NCODECS];

		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = (uint8_t)(x >> 24);
		}
		if (n > 0)
			in[0] = 1;		/* both versions */
		if (n > 5)
			memset(in + 1, 0, 4);	/* no health */
		memset(out, 0xee, sizeof(out));
		if (c->decode(in, n, out, 500, &used) == 0)
			CHECK(used <= 500);
		CHECK(out[500] == 0xee);
	}
}

TEST_MAIN(test_exports, test_corpus, test_v5_extremes,
    test_malformed_and_mixed, test_empty_and_heartbeat, test_v5_tables,
    test_fallback, test_truncations, test_damage, test_damage3,
    test_golden, test_garbage)
