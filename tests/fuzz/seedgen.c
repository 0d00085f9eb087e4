/*
 * seedgen.c: writes the seed corpora of the fuzz targets.
 *
 *   fuzz_seedgen EXPORTS_DIR SEEDS_DIR
 *
 * EXPORTS_DIR is tests/data/exports: NetFlow/IPFIX datagrams are taken
 * from its pcaps (Apache-2.0 logstash and graylog captures only).
 * SEEDS_DIR gets one directory per target (wire, nf, conf, ingest,
 * health, nfpack) of small valid inputs.  Batches are sealed with fuzzlib's sealer, whose
 * nonce is derived from the header, so running the generator again writes
 * the same bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "buf.h"
#include "bytes.h"
#include "fuzzlib.h"
#include "health.h"
#include "nfpack.h"
#include "nfpack3.h"
#include "util.h"
#include "wire.h"

#define PCAP_MAX	(1u << 20)
#define DGRAM_MAX	4096

struct dgram {
	uint8_t		 data[DGRAM_MAX];
	size_t		 len;
};

static const char	*exports_dir, *seeds_dir;

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_seedgen: %s\n", what);
	exit(1);
}

/* Skips a link, IP and UDP header; 0 with the payload, -1 if not UDP. */
static int
frame_payload(const uint8_t *p, size_t len, const uint8_t **pl, size_t *pln)
{
	struct rcur	 r;
	uint16_t	 type, ulen;
	uint8_t		 vihl, proto;

	rcur_init(&r, p, len);
	(void)rcur_take(&r, 12);
	type = rcur_u16(&r);
	if (type == 0x8100) {
		(void)rcur_u16(&r);
		type = rcur_u16(&r);
	}
	if (type == 0x0800) {
		vihl = rcur_u8(&r);
		(void)rcur_take(&r, 8);
		proto = rcur_u8(&r);
		(void)rcur_take(&r, (size_t)(vihl & 0x0f) * 4 - 10);
	} else if (type == 0x86dd) {
		(void)rcur_take(&r, 6);
		proto = rcur_u8(&r);
		(void)rcur_take(&r, 33);
	} else
		return -1;
	(void)rcur_take(&r, 4);
	ulen = rcur_u16(&r);
	(void)rcur_u16(&r);
	if (r.err || proto != 17 || ulen < 8 || ulen - 8u > r.left)
		return -1;
	*pl = r.p;
	*pln = ulen - 8u;
	return 0;
}

/* The first `max` UDP payloads of a pcap in EXPORTS_DIR; their number. */
static size_t
pcap_dgrams(const char *name, struct dgram *out, size_t max)
{
	char		 path[1024];
	uint8_t		*data;
	size_t		 len, n = 0;
	struct rcur	 r;
	int		 swap;

	if (util_snprintf(path, sizeof(path), "%s/%s", exports_dir,
	    name) == -1 || util_read_file(path, PCAP_MAX, &data, &len) == -1) {
		fprintf(stderr, "fuzz_seedgen: %s: cannot read\n", path);
		exit(1);
	}
	rcur_init(&r, data, len);
	if (len < 24)
		die("pcap too short");
	/* Microsecond or nanosecond pcap, either byte order. */
	if (memcmp(data, "\xd4\xc3\xb2\xa1", 4) == 0 ||
	    memcmp(data, "\x4d\x3c\xb2\xa1", 4) == 0)
		swap = 1;
	else if (memcmp(data, "\xa1\xb2\xc3\xd4", 4) == 0 ||
	    memcmp(data, "\xa1\xb2\x3c\x4d", 4) == 0)
		swap = 0;
	else
		die("not a pcap file");
	(void)rcur_take(&r, 24);
	while (n < max && r.left >= 16) {
		const uint8_t	*rec = rcur_take(&r, 16), *frame, *pl;
		uint32_t	 incl = be32(rec + 8);
		size_t		 pln;

		if (swap)
			incl = (uint32_t)rec[8] | (uint32_t)rec[9] << 8 |
			    (uint32_t)rec[10] << 16 | (uint32_t)rec[11] << 24;
		if ((frame = rcur_take(&r, incl)) == NULL)
			break;
		if (frame_payload(frame, incl, &pl, &pln) == -1 ||
		    pln == 0 || pln > DGRAM_MAX)
			continue;
		memcpy(out[n].data, pl, pln);
		out[n].len = pln;
		n++;
	}
	free(data);
	if (n == 0)
		die("no UDP datagram in a pcap");
	return n;
}

static void
write_seed(const char *target, const char *name, const void *data,
    size_t len)
{
	char	 dir[1024];

	if (util_snprintf(dir, sizeof(dir), "%s/%s", seeds_dir, target) ==
	    -1 || util_mkdirs(dir, 0755) == -1 ||
	    util_write_atomic(dir, name, data, len) == -1) {
		fprintf(stderr, "fuzz_seedgen: %s/%s: %s\n", dir, name,
		    strerror(errno));
		exit(1);
	}
}

/* Content of PROTOCOL.md 1.2: a small health block and the datagrams. */
static void
build_content(struct buf *c, const struct dgram *d, size_t n)
{
	static const uint8_t	 health[] = "fuzz health v1";
	struct wire_entry	 e;
	uint8_t			 hl[4];

	if (buf_init(c, 0, 1u << 20) == -1)
		die("out of memory");
	fuzzlib_put32(hl, sizeof(health) - 1);
	if (buf_append(c, hl, 4) == -1 ||
	    buf_append(c, health, sizeof(health) - 1) == -1)
		die("content too big");
	for (size_t i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		e.recv_us = FUZZLIB_NOW_US - 1000000 + i;
		e.family = i % 2 ? 6 : 4;
		e.addr[0] = 192;
		e.addr[1] = 0;
		e.addr[2] = 2;
		e.addr[3] = (uint8_t)(10 + i);
		if (e.family == 6) {
			memset(e.addr, 0, sizeof(e.addr));
			e.addr[0] = 0x20;
			e.addr[1] = 0x01;
			e.addr[2] = 0x0d;
			e.addr[3] = 0xb8;
			e.addr[15] = (uint8_t)i;
		}
		e.src_port = 2055;
		e.dst_port = 9995;
		e.len = (uint16_t)d[i].len;
		e.payload = d[i].data;
		if (wire_entry_append(c, &e) == -1)
			die("content too big");
	}
}

/* A sealed batch of `content` (stored or deflated) into a malloc'd buffer. */
static uint8_t *
seal(const char *client, const struct buf *content, uint32_t count,
    uint8_t codec, uint8_t flags, uint64_t seq, size_t *len)
{
	struct fuzzlib_batch	 b;
	uint8_t			*z = NULL, *out;
	uLongf			 zlen;

	fuzzlib_batch_init(&b, client);
	b.codec = codec;
	b.flags = flags;
	b.seq = seq;
	b.count = count;
	b.raw_len = (uint32_t)content->len;
	b.crc = (uint32_t)crc32(0L, content->data, (uInt)content->len);
	b.body = content->data;
	b.body_len = content->len;
	if (codec == WIRE_CODEC_ZLIB) {
		zlen = compressBound((uLong)content->len);
		if ((z = malloc(zlen)) == NULL || compress2(z, &zlen,
		    content->data, (uLong)content->len, 6) != Z_OK)
			die("deflate failed");
		b.body = z;
		b.body_len = zlen;
	}
	if ((out = fuzzlib_seal(&b, fuzzlib_key, len)) == NULL)
		die("out of memory");
	free(z);
	return out;
}

/* The seed written with a one-byte prefix (the ingest target's mode). */
static void
write_prefixed(const char *target, const char *name, const uint8_t *pfx,
    size_t pfxlen, const uint8_t *data, size_t len)
{
	uint8_t	*p;

	if ((p = malloc(pfxlen + len)) == NULL)
		die("out of memory");
	memcpy(p, pfx, pfxlen);
	memcpy(p + pfxlen, data, len);
	write_seed(target, name, p, pfxlen + len);
	free(p);
}

static void
seeds_nf(void)
{
	static const char *const files[] = {
		"graylog__netflow5.pcap",
		"graylog__nprobe-netflow9.pcap",
		"logstash__netflow5_test_invalid01.pcap",
		"logstash__netflow9_test_valid01.pcap",
		"logstash__netflow9_test_invalid01.pcap",
		"logstash__netflow9_test_paloalto_81_tpl256-263+"
		    "data257_1flowset_in_large_zerofilled_packet.pcap",
		"logstash__ipfix.pcap",
		"logstash__ipfix_test_openbsd_pflow_tpl+data.pcap",
		"logstash__ipfix_test_juniper_mx240_junos151r6s3_"
		    "opttpl512+data512.pcap",
	};
	struct dgram	*d;
	char		 name[64];
	size_t		 n;

	if ((d = calloc(2, sizeof(*d))) == NULL)
		die("out of memory");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		n = pcap_dgrams(files[i], d, 2);
		for (size_t j = 0; j < n; j++) {
			snprintf(name, sizeof(name), "dgram-%02zu-%zu", i, j);
			write_seed("nf", name, d[j].data, d[j].len);
		}
	}
	free(d);
}

static void
seeds_wire_ingest(void)
{
	static const uint8_t	 raw_mode[] = { 0x00 };
	/* sealed mode: opts, 4 rounds, offsets 0, 0 (dup), -1, +100 */
	static const uint8_t	 sealed_mode[] = { 0x01, 0x00, 0x03, 0x00,
				    0x00, 0xff, 0x64 };
	static const uint8_t	 sealed_zlib[] = { 0x01, 0x01, 0x01, 0x05,
				    0x05 };
	/* restart between rounds; offsets 0, +64, 0 (dup), -64 (dup) */
	static const uint8_t	 sealed_restart[] = { 0x01, 0x41, 0x03, 0x00,
				    0x40, 0x00, 0xc0 };
	/* the output refuses, then a repeat: 503 both times */
	static const uint8_t	 sealed_503[] = { 0x01, 0x20, 0x01, 0x02,
				    0x02 };
	struct dgram		*d;
	struct buf		 content, hb;
	uint8_t			*batch, *z;
	size_t			 blen;
	uLongf			 zlen;
	char			 ack[WIRE_ACK_MAX];
	int			 alen;

	if ((d = calloc(3, sizeof(*d))) == NULL)
		die("out of memory");
	pcap_dgrams("graylog__netflow5.pcap", &d[0], 1);
	pcap_dgrams("logstash__netflow9_test_valid01.pcap", &d[1], 1);
	pcap_dgrams("logstash__ipfix.pcap", &d[2], 1);
	build_content(&content, d, 3);

	/* wire: batches, bare content, a bare zlib stream, acks */
	batch = seal(FUZZLIB_CLIENT, &content, 3, WIRE_CODEC_NONE, 0,
	    FUZZLIB_SEQ0, &blen);
	write_seed("wire", "batch-stored", batch, blen);
	write_prefixed("ingest", "raw-batch-stored", raw_mode, 1, batch, blen);
	free(batch);
	batch = seal(FUZZLIB_CLIENT, &content, 3, WIRE_CODEC_ZLIB, 0,
	    FUZZLIB_SEQ0 + 1, &blen);
	write_seed("wire", "batch-zlib", batch, blen);
	write_prefixed("ingest", "raw-batch-zlib", raw_mode, 1, batch, blen);
	free(batch);
	batch = seal("kit-unknown", &content, 3, WIRE_CODEC_ZLIB, 0,
	    FUZZLIB_SEQ0 + 2, &blen);
	write_prefixed("ingest", "raw-unknown-client", raw_mode, 1, batch,
	    blen);
	free(batch);

	build_content(&hb, d, 0);
	batch = seal(FUZZLIB_CLIENT, &hb, 0, WIRE_CODEC_ZLIB,
	    WIRE_FLAG_HEARTBEAT, FUZZLIB_SEQ0 + 3, &blen);
	write_seed("wire", "batch-heartbeat", batch, blen);
	write_prefixed("ingest", "raw-heartbeat", raw_mode, 1, batch, blen);
	free(batch);
	buf_free(&hb);

	write_seed("wire", "content", content.data, content.len);
	zlen = compressBound((uLong)content.len);
	if ((z = malloc(zlen)) == NULL || compress2(z, &zlen, content.data,
	    (uLong)content.len, 6) != Z_OK)
		die("deflate failed");
	write_seed("wire", "content-zlib", z, zlen);
	free(z);

	alen = wire_ack_format(ack, sizeof(ack), FUZZLIB_CLIENT,
	    FUZZLIB_ACK_SEQ, WIRE_ACK_NEW, fuzzlib_ack_tag, fuzzlib_key);
	if (alen < 0)
		die("ack format failed");
	write_seed("wire", "ack-new", ack, (size_t)alen);
	alen = wire_ack_format(ack, sizeof(ack), FUZZLIB_CLIENT,
	    FUZZLIB_ACK_SEQ, WIRE_ACK_DUP, fuzzlib_ack_tag, fuzzlib_key);
	if (alen < 0)
		die("ack format failed");
	write_seed("wire", "ack-dup", ack, (size_t)alen);

	/* ingest: the content for the target to seal round after round */
	write_prefixed("ingest", "sealed-stored", sealed_mode,
	    sizeof(sealed_mode), content.data, content.len);
	write_prefixed("ingest", "sealed-zlib", sealed_zlib,
	    sizeof(sealed_zlib), content.data, content.len);
	write_prefixed("ingest", "sealed-restart", sealed_restart,
	    sizeof(sealed_restart), content.data, content.len);
	write_prefixed("ingest", "sealed-503", sealed_503,
	    sizeof(sealed_503), content.data, content.len);
	write_seed("wire", "key", FUZZLIB_KEY_HEX "\n",
	    sizeof(FUZZLIB_KEY_HEX "\n") - 1);

	buf_free(&content);
	free(d);
}

/* health: reports as kits write them, a later revision, another version */
static void
seeds_health(void)
{
	struct health	 h;
	uint8_t		 b[HEALTH_MAX + 32], rev[HEALTH_MAX + 32];
	size_t		 len = 0, tail;

	memset(&h, 0, sizeof(h));
	h.flags = HEALTH_F_CLOCK | HEALTH_F_KDROPS | HEALTH_F_LOSS;
	h.uptime_s = 86400;
	h.spool_batches = 12;
	h.spool_bytes = 3u << 20;
	h.spool_oldest_age_s = 7200;
	h.spool_dropped_batches = 2;
	h.spool_dropped_datagrams = 61;
	h.dropped_invalid = 1;
	h.kernel_drops = 4;
	h.upstream_gaps = 3;
	h.upstream_lost_records = 90;
	h.upstream_lost_packets = 2;
	h.retries_since_success = 5;
	h.clock_offset_ms = -2500;
	memcpy(h.client_version, "0.1.0", 6);
	memcpy(h.route, "configured", 11);
	if (health_encode(&h, b, sizeof(b), &len) == -1)
		die("health_encode failed");
	write_seed("health", "block-v1", b, len);

	/* a later revision: 8 more fixed bytes and an item after the route */
	tail = len - 4 - HEALTH_FIXED_V1;
	memcpy(rev, b, 4 + HEALTH_FIXED_V1);
	fuzzlib_put16(rev + 2, HEALTH_FIXED_V1 + 8);
	memset(rev + 4 + HEALTH_FIXED_V1, 0, 8);
	memcpy(rev + 4 + HEALTH_FIXED_V1 + 8, b + 4 + HEALTH_FIXED_V1, tail);
	memcpy(rev + len + 8, "\x02ok", 3);
	write_seed("health", "block-revision", rev, len + 8 + 3);

	fuzzlib_put16(b, 2);
	write_seed("health", "block-v2", b, len);

	memset(&h, 0, sizeof(h));
	if (health_encode(&h, b, sizeof(b), &len) == -1)
		die("health_encode failed");
	write_seed("health", "block-empty", b, len);
}

/*
 * nfpack: transformed streams (codecs 2 and 3) of a v5 + v9 + IPFIX
 * content and of a v5-only one (decoded as streams), and the raw bytes of
 * a v5 datagram (material for the encoder's entries).
 */
static void
seeds_nfpack(void)
{
	struct dgram	*d;
	struct buf	 content;
	uint8_t		*packed;
	size_t		 bound, plen, hl;

	if ((d = calloc(3, sizeof(*d))) == NULL)
		die("out of memory");
	pcap_dgrams("graylog__netflow5.pcap", &d[0], 1);
	pcap_dgrams("logstash__netflow9_test_valid01.pcap", &d[1], 1);
	pcap_dgrams("logstash__ipfix.pcap", &d[2], 1);
	for (int k = 0; k < 2; k++) {
		size_t n = k == 0 ? 3 : 1;

		build_content(&content, d, n);
		hl = (size_t)content.data[3];
		bound = nfpack_bound(content.len);
		if ((packed = malloc(bound)) == NULL ||
		    nfpack_encode(content.data + 4, hl, content.data + 4 + hl,
		    content.len - 4 - hl, packed, bound, &plen) == -1)
			die("nfpack_encode failed");
		write_seed("nfpack", k == 0 ? "stream-mixed" : "stream-v5",
		    packed, plen);
		free(packed);
		bound = nfpack3_bound(content.len);
		if ((packed = malloc(bound)) == NULL ||
		    nfpack3_encode(content.data + 4, hl, content.data + 4 + hl,
		    content.len - 4 - hl, packed, bound, &plen) == -1)
			die("nfpack3_encode failed");
		write_seed("nfpack", k == 0 ? "stream3-mixed" : "stream3-v5",
		    packed, plen);
		free(packed);
		buf_free(&content);
	}
	write_seed("nfpack", "datagram-v5", d[0].data, d[0].len);
	free(d);
}

static void
seeds_conf(void)
{
	static const char full[] =
	    "# every key of the fuzz table, in the program's section\n"
	    "[client]\n"
	    "name = \"kit one; field\"   ; a quoted value with ';'\n"
	    "path = /var/spool/flowpost\n"
	    "count = 12\n"
	    "port = 2055\n"
	    "max_bytes = 64M\n"
	    "spool = 2G\n"
	    "max-age = 2h\n"
	    "interval = 90s\n"
	    "debug = yes\n"
	    "syslog = off\n"
	    "level = debug\n"
	    "mode = newest\n"
	    "\n"
	    "[gateway]\n"
	    "listen = 127.0.0.1:8080   # the other program's key\n";
	static const char top[] =
	    "\xEF\xBB\xBF; keys before any section belong to the program\n"
	    "port=9995\n"
	    "max_age = 1d\n"
	    "  level = WARN\n"
	    "name =\n";
	static const char bad[] =
	    "[client]\n"
	    "port = 70000\n";

	write_seed("conf", "full.ini", full, sizeof(full) - 1);
	write_seed("conf", "top.ini", top, sizeof(top) - 1);
	write_seed("conf", "bad-range.ini", bad, sizeof(bad) - 1);
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fuzz_seedgen EXPORTS_DIR SEEDS_DIR\n");
		return 2;
	}
	exports_dir = argv[1];
	seeds_dir = argv[2];
	if (wire_init() == -1)
		die("libsodium does not start");
	seeds_nf();
	seeds_wire_ingest();
	seeds_conf();
	seeds_health();
	seeds_nfpack();
	return 0;
}
