/*
 * test_nfpack.c: the codec 2 transform (common/nfpack.c) and codec 2
 * batches through wire_seal()/wire_open().
 *
 * Every capture in tests/data/exports (and the corpus at
 * /work/shared/corpus/exports when it is there) is cut into batches the
 * way the client cuts them and must come back byte for byte; so must
 * synthetic v5 with extreme values, malformed v5, mixed versions, empty
 * content and a heartbeat.  Every truncation of a transformed stream, and
 * every change of its counts, is refused by the inverse.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bytes.h"
#include "check.h"
#include "nfpack.h"
#include "wire.h"

#define BATCH_MAX	(256 * 1024)	/* the client's batch_max_bytes */
#define PCAP_MAX	(64u << 20)
#define CORPUS_DIR	"/work/shared/corpus/exports"

static const uint8_t key[WIRE_KEY_LEN] = { 7, 1, 2, 3 };

static size_t	batches_checked, v5_checked;

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* health + entries as one content buffer, as wire_open() returns it. */
static uint8_t *
content_of(const uint8_t *health, size_t hlen, const uint8_t *entries,
    size_t elen, size_t *clen)
{
	uint8_t	*c = malloc(4 + hlen + elen + 1);

	if (c == NULL)
		abort();
	put32(c, (uint32_t)hlen);
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

/*
 * The transform and the codec 2 batch both give the content back; the
 * sealed batch is also checked against codec 1 for size sanity.
 */
static void
roundtrip(const uint8_t *health, size_t hlen, const uint8_t *entries,
    size_t elen, int heartbeat)
{
	struct wire_seal_args	 a;
	struct wire_header	 h;
	struct buf		 sealed, raw;
	uint8_t			*content, *packed, *back;
	size_t			 clen, bound, plen = 0, used = 0;
	uint32_t		 count = (uint32_t)count_entries(entries, elen);

	content = content_of(health, hlen, entries, elen, &clen);
	bound = nfpack_bound(clen);
	CHECK(bound >= clen);
	packed = malloc(bound);
	back = malloc(clen);
	if (packed == NULL || back == NULL)
		abort();
	CHECK(nfpack_encode(health, hlen, entries, elen, packed, bound,
	    &plen) == 0);
	CHECK(plen <= bound);
	/* One byte too little output space is refused, not overrun. */
	CHECK(nfpack_encode(health, hlen, entries, elen, packed, plen - 1,
	    &used) == -1);
	CHECK(nfpack_decode(packed, plen, back, clen, &used) == 0);
	CHECK_EQ_U64(used, clen);
	CHECK(memcmp(back, content, clen) == 0);
	CHECK(nfpack_decode(packed, plen, back, clen - 1, &used) == -1);

	memset(&a, 0, sizeof(a));
	a.client_id = "kit-01";
	a.seq = 42;
	a.created_us = 1700000000000000ULL;
	a.flags = heartbeat ? WIRE_FLAG_HEARTBEAT : 0;
	a.codec = WIRE_CODEC_NFPACK;
	a.zlevel = 6;
	a.health = health;
	a.health_len = hlen;
	a.entries = entries;
	a.entries_len = elen;
	a.count = count;
	a.key = key;
	CHECK(buf_init(&sealed, 0, 2 * clen + 4096) == 0);
	CHECK(buf_init(&raw, 0, 16u << 20) == 0);
	CHECK(wire_seal(&a, &sealed) == WIRE_OK);
	CHECK(wire_open(sealed.data, sealed.len, key, 16u << 20, &h, &raw) ==
	    WIRE_OK);
	CHECK_EQ_U64(h.codec, WIRE_CODEC_NFPACK);
	CHECK_EQ_U64(h.count, count);
	CHECK_EQ_U64(raw.len, clen);
	CHECK(raw.len == clen && memcmp(raw.data, content, clen) == 0);
	/* The cap on the content still applies. */
	CHECK(wire_open(sealed.data, sealed.len, key, clen - 1, &h, &raw) ==
	    WIRE_ETOOBIG);
	batches_checked++;

	buf_free(&sealed);
	buf_free(&raw);
	free(back);
	free(packed);
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
	n = check_dir(FLOWPOST_TEST_DATA "/exports");
	CHECK(n >= 20);
	CHECK(v5_checked > 0);
	fprintf(stderr, "  exports: %zu captures, %zu batches, %zu v5\n", n,
	    batches_checked, v5_checked);
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
	put16(p, 5);
	put16(p + 2, count);
	put32(p + 4, uptime);
	put32(p + 8, secs);
	put32(p + 12, fill);
	put32(p + 16, seq);
	p[20] = (uint8_t)fill;
	for (uint16_t i = 0; i < count; i++) {
		uint8_t *r = p + 24 + 48 * (size_t)i;

		put32(r, 0x0a000001 + i);
		put32(r + 16, fill * i);		/* dPkts */
		put32(r + 20, i & 1 ? 0 : 0xffffffff);	/* dOctets */
		put32(r + 24, uptime - 1000 * i);	/* first */
		put32(r + 28, uptime + i);		/* last, after uptime */
		r[38] = 6;
		r[46] = (uint8_t)i;			/* pad2 kept as is */
	}
}

static void
add(struct buf *b, uint64_t recv_us, const uint8_t *p, size_t len, int v6)
{
	struct wire_entry e;

	memset(&e, 0, sizeof(e));
	e.recv_us = recv_us;
	e.family = v6 ? 6 : 4;
	e.addr[0] = 192;
	e.addr[3] = (uint8_t)len;
	if (v6)
		e.addr[15] = 1;
	e.src_port = (uint16_t)(40000 + len);
	e.dst_port = 2055;
	e.len = (uint16_t)len;
	e.payload = p;
	CHECK(wire_entry_append(b, &e) == 0);
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
	put16(p + 2, 4);			/* count says 4, has 3 */
	add(&b, 10, p, 24 + 48 * 3, 0);
	v5_make(p, 3, 1000, 2000, 3000, 4);
	add(&b, 11, p, 24 + 48 * 3 - 1, 0);	/* cut short */
	add(&b, 12, p, 24 + 48 * 3 + 5, 0);	/* trailing bytes */
	add(&b, 13, p, 24, 0);			/* header only */
	v5_make(p, 31, 1, 2, 3, 4);		/* more than 30 records */
	add(&b, 14, p, 24 + 48 * 31, 0);
	v5_make(p, 2, 5, 6, 7, 8);
	add(&b, 15, p, 24 + 48 * 2, 0);		/* a good one between */
	put16(p, 9);				/* v9 of v5's length */
	add(&b, 16, p, 24 + 48 * 2, 1);
	put16(p, 10);
	put16(p + 2, 24 + 48 * 2);
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

/* A small stream holding every kind of section, for the damage tests. */
static uint8_t *
small_stream(size_t *plen, uint8_t **content, size_t *clen)
{
	struct buf	 b;
	uint8_t		 p[24 + 48 * 3], health[9] = "healthy!";
	uint8_t		*packed;
	size_t		 bound;

	CHECK(buf_init(&b, 0, 1u << 16) == 0);
	v5_make(p, 3, 100000, 1700000000, 77, 5);
	add(&b, 1700000000000001ULL, p, sizeof(p), 0);
	put16(p, 9);
	add(&b, 1700000000000002ULL, p, 40, 1);
	v5_make(p, 2, 100100, 1700000001, 80, 6);
	add(&b, 1700000000000003ULL, p, 24 + 48 * 2, 0);
	*content = content_of(health, sizeof(health), b.data, b.len, clen);
	bound = nfpack_bound(*clen);
	if ((packed = malloc(bound)) == NULL)
		abort();
	CHECK(nfpack_encode(health, sizeof(health), b.data, b.len, packed,
	    bound, plen) == 0);
	buf_free(&b);
	return packed;
}

static void
test_truncations(void)
{
	uint8_t		*packed, *content, *back, *cut;
	size_t		 plen = 0, clen = 0, used;

	packed = small_stream(&plen, &content, &clen);
	back = malloc(clen + 64);
	if (back == NULL)
		abort();
	CHECK(nfpack_decode(packed, plen, back, clen + 64, &used) == 0);
	CHECK(used == clen && memcmp(back, content, clen) == 0);
	/* Every prefix, in a buffer of its own size so ASan sees overruns. */
	for (size_t n = 0; n < plen; n++) {
		cut = malloc(n > 0 ? n : 1);
		if (cut == NULL)
			abort();
		memcpy(cut, packed, n);
		CHECK(nfpack_decode(cut, n, back, clen + 64, &used) == -1);
		free(cut);
	}
	/* A byte more is refused too. */
	cut = malloc(plen + 1);
	memcpy(cut, packed, plen);
	cut[plen] = 0;
	CHECK(nfpack_decode(cut, plen + 1, back, clen + 64, &used) == -1);
	free(cut);
	free(back);
	free(packed);
	free(content);
}

/* Damaged counts, kinds, versions and lengths are refused. */
static void
test_damage(void)
{
	uint8_t		*packed, *content, *back;
	size_t		 plen = 0, clen = 0, used, hl = 9;
	size_t		 counts = 1 + 4 + hl;	/* count, n5, nrec, other */
	size_t		 kind = counts + 16;

	packed = small_stream(&plen, &content, &clen);
	back = malloc(clen);
	if (back == NULL)
		abort();

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

/* Arbitrary bytes: never a crash, never past outlen. */
static void
test_garbage(void)
{
	uint8_t		 in[512], out[600];
	size_t		 used;
	uint32_t	 x = 12345;

	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round % (int)sizeof(in));

		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = (uint8_t)(x >> 24);
		}
		if (n > 0)
			in[0] = NFPACK_VERSION;
		if (n > 5)
			memset(in + 1, 0, 4);	/* no health */
		memset(out, 0xee, sizeof(out));
		if (nfpack_decode(in, n, out, 500, &used) == 0)
			CHECK(used <= 500);
		CHECK(out[500] == 0xee);
	}
}

TEST_MAIN(test_exports, test_corpus, test_v5_extremes,
    test_malformed_and_mixed, test_empty_and_heartbeat, test_truncations,
    test_damage, test_garbage)
