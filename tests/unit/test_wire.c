/*
 * test_wire.c: conformance of common/wire.c to docs/PROTOCOL.md 1 and 2.2.
 *
 * Besides round trips through wire_seal() and wire_open(), the test seals
 * batches with its own, independent rendering of the specification (header
 * layout, KDF contexts, AEAD with the clear header as associated data), so
 * that it can build batches wire_seal() never would: wrong CRC, bad entries,
 * deflate bombs.  It also opens wire_seal()'s output by hand, so a mistake
 * shared by seal and open cannot hide behind a successful round trip.
 */
#include <sodium.h>
#include <zlib.h>

#include "bytes.h"
#include "check.h"

#include "buf.h"
#include "wire.h"

#define BIG	(64u << 20)	/* ceiling for buffers that must not limit */

static uint8_t	 key_a[WIRE_KEY_LEN];
static uint8_t	 key_b[WIRE_KEY_LEN];

static void
keys_init(void)
{
	for (size_t i = 0; i < WIRE_KEY_LEN; i++) {
		key_a[i] = (uint8_t)(i * 13 + 1);
		key_b[i] = key_a[i];
	}
	key_b[31] ^= 0x01;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/*
 * Independent sealing, straight from PROTOCOL.md 1 and 1.1.  `body` is the
 * AEAD plaintext, i.e. the content already through the codec.
 */
struct craft {
	const char	*client_id;
	uint8_t		 version, codec, aead, flags;
	uint64_t	 seq, created_us;
	uint32_t	 count, raw_len, crc;
	const uint8_t	*body;
	size_t		 body_len;
	const uint8_t	*key;
};

static void
craft_defaults(struct craft *c)
{
	memset(c, 0, sizeof(*c));
	c->client_id = "kit-01";
	c->version = 1;
	c->codec = WIRE_CODEC_NONE;
	c->aead = 1;
	c->seq = 7;
	c->created_us = 1700000000000000ULL;
	c->key = key_a;
}

static uint8_t *
craft_seal(const struct craft *c, size_t *outlen)
{
	uint8_t		 bkey[32], nonce[24], *out;
	size_t		 idlen = strlen(c->client_id), hlen = 65 + idlen;
	unsigned long long clen;

	out = malloc(hlen + c->body_len + 16);
	if (out == NULL)
		abort();
	randombytes_buf(nonce, sizeof(nonce));
	memcpy(out, "FPB1", 4);
	out[4] = c->version;
	out[5] = c->codec;
	out[6] = c->aead;
	out[7] = c->flags;
	put_be64(out + 8, c->seq);
	put_be64(out + 16, c->created_us);
	put_be32(out + 24, c->count);
	put_be32(out + 28, c->raw_len);
	put_be32(out + 32, c->crc);
	put_be32(out + 36, (uint32_t)(c->body_len + 16));
	memcpy(out + 40, nonce, 24);
	out[64] = (uint8_t)idlen;
	memcpy(out + 65, c->client_id, idlen);
	crypto_kdf_derive_from_key(bkey, sizeof(bkey), 1, "fpbatch_", c->key);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + hlen, &clen,
	    c->body, c->body_len, out, hlen, NULL, nonce, bkey);
	*outlen = hlen + (size_t)clen;
	return out;
}

/* zlib stream of src; caller frees. */
static uint8_t *
zcompress(const uint8_t *src, size_t len, size_t *outlen)
{
	uLongf	 n = compressBound((uLong)len);
	uint8_t	*out = malloc(n);

	if (out == NULL || compress2(out, &n, src, (uLong)len, 6) != Z_OK)
		abort();
	*outlen = n;
	return out;
}

/*
 * Seals `content` (raw) as the test's own batch, with its true CRC unless
 * `crc` is given.
 */
static uint8_t *
craft_content(const uint8_t *content, size_t clen, uint8_t codec,
    uint32_t count, const uint32_t *crc, size_t *outlen)
{
	struct craft	 c;
	uint8_t		*z = NULL, *batch;
	size_t		 zlen;

	craft_defaults(&c);
	c.codec = codec;
	c.count = count;
	c.raw_len = (uint32_t)clen;
	c.crc = crc ? *crc : (uint32_t)crc32(0L, content, (uInt)clen);
	if (codec == WIRE_CODEC_ZLIB) {
		z = zcompress(content, clen, &zlen);
		c.body = z;
		c.body_len = zlen;
	} else {
		c.body = content;
		c.body_len = clen;
	}
	batch = craft_seal(&c, outlen);
	free(z);
	return batch;
}

/* One raw entry, any field values (including invalid ones). */
static size_t
put_entry(uint8_t *p, uint64_t recv_us, uint8_t family, uint8_t reserved,
    uint16_t sport, const uint8_t addr[16], uint16_t dport, uint16_t len,
    uint8_t fill)
{
	put_be64(p, recv_us);
	p[8] = family;
	p[9] = reserved;
	put_be16(p + 10, sport);
	memcpy(p + 12, addr, 16);
	put_be16(p + 28, dport);
	put_be16(p + 30, len);
	memset(p + 32, fill, len);
	return 32 + (size_t)len;
}

static const uint8_t v4addr[16] = { 192, 0, 2, 1 };
static const uint8_t v6addr[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0x42 };

static uint16_t entry_sizes[] = { 1, 2, 3, 24, 72, 1400, 1464, 9000, 32768,
    65534, 65535 };
#define NSIZES	(sizeof(entry_sizes) / sizeof(entry_sizes[0]))

/* Deterministic entry i of the big test set. */
static void
make_entry(size_t i, struct wire_entry *e, uint8_t *payload)
{
	memset(e, 0, sizeof(*e));
	e->recv_us = 1700000000000000ULL + i * 1000;
	e->family = (i % 2) ? 6 : 4;
	memcpy(e->addr, e->family == 4 ? v4addr : v6addr, 16);
	e->addr[3] = (uint8_t)i;
	e->src_port = (uint16_t)(2055 + i);
	e->dst_port = 9995;
	e->len = entry_sizes[i % NSIZES];
	for (size_t j = 0; j < e->len; j++)
		payload[j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
	e->payload = payload;
}

static void
args_defaults(struct wire_seal_args *a)
{
	memset(a, 0, sizeof(*a));
	a->client_id = "kit-01";
	a->seq = 42;
	a->created_us = 1700000000123456ULL;
	a->codec = WIRE_CODEC_ZLIB;
	a->zlevel = 6;
	a->key = key_a;
}

/* A small valid batch (one health block, three entries) sealed by wire.c. */
static void
small_batch(uint8_t codec, struct buf *out)
{
	struct wire_seal_args	 a;
	struct wire_entry	 e;
	struct buf		 entries;
	static uint8_t		 payload[65535];
	static const uint8_t	 health[] = "health v1 ok";

	CHECK(buf_init(&entries, 0, BIG) == 0);
	for (size_t i = 0; i < 3; i++) {
		make_entry(i, &e, payload);
		e.len = (uint16_t)(20 + i);
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	args_defaults(&a);
	a.codec = codec;
	a.health = health;
	a.health_len = sizeof(health);
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = 3;
	CHECK(buf_init(out, 0, BIG) == 0);
	CHECK(wire_seal(&a, out) == WIRE_OK);
	buf_free(&entries);
}

static void
test_roundtrip(void)
{
	static uint8_t		 payload[65535];
	const size_t		 n = 3 * NSIZES + 1;
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB,
				    WIRE_CODEC_ZLIB, WIRE_CODEC_ZLIB };
	const int		 levels[] = { 0, 1, 6, 9 };
	struct buf		 entries, out, raw;
	struct wire_header	 h;
	uint8_t			 health[300];

	for (size_t i = 0; i < sizeof(health); i++)
		health[i] = (uint8_t)(i ^ 0x5c);
	CHECK(buf_init(&entries, 0, BIG) == 0);
	for (size_t i = 0; i < n; i++) {
		struct wire_entry e;

		make_entry(i, &e, payload);
		CHECK(wire_entry_append(&entries, &e) == 0);
	}

	for (size_t k = 0; k < sizeof(codecs); k++) {
		struct wire_seal_args	 a;
		struct wire_iter	 it;
		struct wire_entry	 got;
		const uint8_t		*hb;
		size_t			 hblen, i;
		int			 r;

		args_defaults(&a);
		a.codec = codecs[k];
		a.zlevel = levels[k];
		a.seq = 1000 + k;
		a.health = health;
		a.health_len = sizeof(health);
		a.entries = entries.data;
		a.entries_len = entries.len;
		a.count = (uint32_t)n;
		CHECK(buf_init(&out, 0, BIG) == 0);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		CHECK(wire_seal(&a, &out) == WIRE_OK);
		if (codecs[k] == WIRE_CODEC_ZLIB && levels[k] > 0)
			CHECK(out.len < entries.len);

		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);
		CHECK_EQ_U64(h.version, 1);
		CHECK_EQ_U64(h.codec, codecs[k]);
		CHECK_EQ_U64(h.aead, WIRE_AEAD_XCHACHA20POLY1305);
		CHECK_EQ_U64(h.flags, 0);
		CHECK_EQ_U64(h.seq, 1000 + k);
		CHECK_EQ_U64(h.created_us, a.created_us);
		CHECK_EQ_U64(h.count, n);
		CHECK_EQ_U64(h.raw_len, 4 + sizeof(health) + entries.len);
		CHECK_EQ_U64(h.header_len, 65 + strlen("kit-01"));
		CHECK_EQ_U64(h.sealed_len, out.len - h.header_len);
		CHECK(strcmp(h.client_id, "kit-01") == 0);
		CHECK_EQ_U64(raw.len, h.raw_len);
		CHECK(memcmp(wire_tag(out.data, out.len),
		    out.data + out.len - 16, 16) == 0);

		CHECK(wire_content_health(raw.data, raw.len, &hb, &hblen) == 0);
		CHECK_EQ_U64(hblen, sizeof(health));
		CHECK(hblen == sizeof(health) &&
		    memcmp(hb, health, hblen) == 0);
		CHECK(raw.len == h.raw_len &&
		    memcmp(raw.data + 4 + sizeof(health), entries.data,
		    entries.len) == 0);

		CHECK(wire_content_entries(raw.data, raw.len, &it) == 0);
		for (i = 0; (r = wire_entry_next(&it, &got)) == 1; i++) {
			struct wire_entry want;

			make_entry(i, &want, payload);
			CHECK_EQ_U64(got.recv_us, want.recv_us);
			CHECK_EQ_U64(got.family, want.family);
			CHECK(memcmp(got.addr, want.addr,
			    want.family == 4 ? 4 : 16) == 0);
			CHECK_EQ_U64(got.src_port, want.src_port);
			CHECK_EQ_U64(got.dst_port, want.dst_port);
			CHECK_EQ_U64(got.len, want.len);
			CHECK(got.len == want.len &&
			    memcmp(got.payload, payload, got.len) == 0);
		}
		CHECK_EQ_U64(r, 0);
		CHECK_EQ_U64(i, n);

		/* Each seal draws a fresh nonce. */
		{
			struct buf	 out2;

			CHECK(buf_init(&out2, 0, BIG) == 0);
			CHECK(wire_seal(&a, &out2) == WIRE_OK);
			CHECK(out2.len == out.len &&
			    memcmp(out.data + 40, out2.data + 40, 24) != 0);
			buf_free(&out2);
		}
		buf_free(&out);
		buf_free(&raw);
	}
	buf_free(&entries);
}

/* Incompressible content still fits: deflate's bound is respected. */
static void
test_roundtrip_incompressible(void)
{
	struct wire_seal_args	 a;
	struct wire_entry	 e;
	struct wire_header	 h;
	struct buf		 entries, out, raw;
	static uint8_t		 payload[65535];
	size_t			 need;

	CHECK(buf_init(&entries, 0, BIG) == 0);
	for (size_t i = 0; i < 8; i++) {
		make_entry(i, &e, payload);
		e.len = 65535;
		randombytes_buf(payload, e.len);
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	args_defaults(&a);
	a.zlevel = 9;
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = 8;
	CHECK(buf_init(&out, 0, BIG) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_OK);
	CHECK(out.len > entries.len);
	need = out.len;
	CHECK(buf_init(&raw, 0, BIG) == 0);
	CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) == WIRE_OK);
	CHECK(raw.len == 4 + entries.len &&
	    memcmp(raw.data + 4, entries.data, entries.len) == 0);
	buf_free(&out);

	/* An output ceiling below the sealed size refuses, either codec. */
	CHECK(buf_init(&out, 0, need - 1) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_ETOOBIG);
	buf_free(&out);
	a.codec = WIRE_CODEC_NONE;
	CHECK(buf_init(&out, 0, 65 + 6 + 4 + entries.len + 16) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_OK);
	buf_free(&out);
	CHECK(buf_init(&out, 0, 65 + 6 + 4 + entries.len + 15) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_ETOOBIG);
	buf_free(&out);
	CHECK(buf_init(&out, 0, 10) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_ETOOBIG);
	buf_free(&out);

	buf_free(&raw);
	buf_free(&entries);
}

static void
test_heartbeat(void)
{
	struct wire_seal_args	 a;
	struct wire_header	 h;
	struct wire_iter	 it;
	struct wire_entry	 e;
	struct buf		 out, raw;
	const uint8_t		*hb;
	size_t			 hblen;
	static const uint8_t	 health[] = "hb";
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };

	for (size_t k = 0; k < sizeof(codecs); k++) {
		args_defaults(&a);
		a.codec = codecs[k];
		a.flags = WIRE_FLAG_HEARTBEAT;
		a.health = health;
		a.health_len = sizeof(health);
		CHECK(buf_init(&out, 0, BIG) == 0);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		CHECK(wire_seal(&a, &out) == WIRE_OK);
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);
		CHECK_EQ_U64(h.flags, WIRE_FLAG_HEARTBEAT);
		CHECK_EQ_U64(h.count, 0);
		CHECK_EQ_U64(raw.len, 4 + sizeof(health));
		CHECK(wire_content_health(raw.data, raw.len, &hb, &hblen) == 0);
		CHECK(hblen == sizeof(health) && memcmp(hb, health, hblen) == 0);
		CHECK(wire_content_entries(raw.data, raw.len, &it) == 0);
		CHECK_EQ_U64(wire_entry_next(&it, &e), 0);

		/* A heartbeat carries no entries. */
		a.count = 1;
		CHECK(wire_seal(&a, &out) == WIRE_EENTRY);
		buf_free(&out);
		buf_free(&raw);
	}

	/* Without even a health block: content is just health_len = 0. */
	args_defaults(&a);
	a.flags = WIRE_FLAG_HEARTBEAT;
	CHECK(buf_init(&out, 0, BIG) == 0);
	CHECK(buf_init(&raw, 0, BIG) == 0);
	CHECK(wire_seal(&a, &out) == WIRE_OK);
	CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) == WIRE_OK);
	CHECK_EQ_U64(raw.len, 4);
	CHECK_EQ_U64(get32(raw.data), 0);
	buf_free(&out);
	buf_free(&raw);

	/* A heartbeat header with a count is refused before the key. */
	{
		uint8_t		 content[4 + 40];
		size_t		 blen, clen;
		uint8_t		*batch;
		struct craft	 c;

		put_be32(content, 0);
		clen = 4 + put_entry(content + 4, 1, 4, 0, 1, v4addr, 2, 8, 1);
		craft_defaults(&c);
		c.flags = WIRE_FLAG_HEARTBEAT;
		c.count = 1;
		c.raw_len = (uint32_t)clen;
		c.crc = (uint32_t)crc32(0L, content, (uInt)clen);
		c.body = content;
		c.body_len = clen;
		batch = craft_seal(&c, &blen);
		CHECK(wire_parse_header(batch, blen, &h) == WIRE_EENTRY);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) ==
		    WIRE_EENTRY);
		buf_free(&raw);
		free(batch);
	}
}

/* What the specification says, byte for byte, of wire_seal()'s output. */
static void
test_layout(void)
{
	struct buf		 out;
	struct wire_header	 h;
	uint8_t			 bkey[32], *plain;
	const uint8_t		*b;
	size_t			 hlen = 65 + 6, clen;

	small_batch(WIRE_CODEC_NONE, &out);
	b = out.data;
	CHECK(memcmp(b, "FPB1", 4) == 0);
	CHECK_EQ_U64(b[4], 1);
	CHECK_EQ_U64(b[5], 0);
	CHECK_EQ_U64(b[6], 1);
	CHECK_EQ_U64(b[7], 0);
	CHECK_EQ_U64(be64(b + 8), 42);
	CHECK_EQ_U64(be64(b + 16), 1700000000123456ULL);
	CHECK_EQ_U64(get32(b + 24), 3);
	CHECK_EQ_U64(get32(b + 36), out.len - hlen);
	CHECK_EQ_U64(b[64], 6);
	CHECK(memcmp(b + 65, "kit-01", 6) == 0);

	/* Open it by hand: KDF "fpbatch_"/1, AD = the whole clear header. */
	clen = out.len - hlen - 16;
	CHECK_EQ_U64(get32(b + 28), clen);
	plain = malloc(clen);
	CHECK(plain != NULL);
	crypto_kdf_derive_from_key(bkey, sizeof(bkey), 1, "fpbatch_", key_a);
	CHECK(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL,
	    b + hlen, clen, b + out.len - 16, b, hlen, b + 40, bkey) == 0);
	CHECK_EQ_U64(get32(b + 32), crc32(0L, plain, (uInt)clen));
	CHECK_EQ_U64(get32(plain), sizeof("health v1 ok"));
	CHECK(memcmp(plain + 4, "health v1 ok", sizeof("health v1 ok")) == 0);
	{
		/* First entry right after the health block. */
		const uint8_t *e = plain + 4 + sizeof("health v1 ok");

		CHECK_EQ_U64(be64(e), 1700000000000000ULL);
		CHECK_EQ_U64(e[8], 4);
		CHECK_EQ_U64(e[9], 0);
		CHECK_EQ_U64(e[10] << 8 | e[11], 2055);
		CHECK(memcmp(e + 12, "\xc0\x00\x02\x00", 4) == 0);
		for (int i = 16; i < 28; i++)
			CHECK_EQ_U64(e[i], 0);
		CHECK_EQ_U64(e[28] << 8 | e[29], 9995);
		CHECK_EQ_U64(e[30] << 8 | e[31], 20);
	}
	/* The key of another purpose does not open it. */
	crypto_kdf_derive_from_key(bkey, sizeof(bkey), 2, "fpack___", key_a);
	CHECK(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL,
	    b + hlen, clen, b + out.len - 16, b, hlen, b + 40, bkey) == -1);
	free(plain);
	buf_free(&out);

	/* ZLIB: the plaintext is an RFC 1950 stream of the content. */
	small_batch(WIRE_CODEC_ZLIB, &out);
	b = out.data;
	CHECK_EQ_U64(b[5], 1);
	clen = out.len - hlen - 16;
	plain = malloc(clen);
	CHECK(plain != NULL);
	crypto_kdf_derive_from_key(bkey, sizeof(bkey), 1, "fpbatch_", key_a);
	CHECK(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL,
	    b + hlen, clen, b + out.len - 16, b, hlen, b + 40, bkey) == 0);
	{
		uLongf	 rlen = get32(b + 28);
		uint8_t	*content = malloc(rlen);

		CHECK(content != NULL);
		CHECK(uncompress(content, &rlen, plain, clen) == Z_OK);
		CHECK_EQ_U64(rlen, get32(b + 28));
		CHECK_EQ_U64(get32(b + 32), crc32(0L, content, (uInt)rlen));
		CHECK_EQ_U64(get32(content), sizeof("health v1 ok"));
		free(content);
	}
	free(plain);
	buf_free(&out);

	/* And wire_parse_header reads what a hand-built header says. */
	{
		struct craft	 c;
		uint8_t		 content[4] = { 0 };
		uint8_t		*batch;
		size_t		 blen;

		craft_defaults(&c);
		c.client_id = "A.b_c-9";
		c.seq = 0x0102030405060708ULL;
		c.created_us = 0x1112131415161718ULL;
		c.raw_len = 4;
		c.crc = (uint32_t)crc32(0L, content, 4);
		c.body = content;
		c.body_len = 4;
		batch = craft_seal(&c, &blen);
		CHECK(wire_parse_header(batch, blen, &h) == WIRE_OK);
		CHECK_EQ_U64(h.seq, 0x0102030405060708ULL);
		CHECK_EQ_U64(h.created_us, 0x1112131415161718ULL);
		CHECK_EQ_U64(h.crc32, c.crc);
		CHECK_EQ_U64(h.sealed_len, 20);
		CHECK_EQ_U64(h.header_len, 72);
		CHECK(memcmp(h.nonce, batch + 40, 24) == 0);
		CHECK(strcmp(h.client_id, "A.b_c-9") == 0);
		CHECK(buf_init(&out, 0, BIG) == 0);
		CHECK(wire_open(batch, blen, key_a, BIG, &h, &out) == WIRE_OK);
		CHECK_EQ_U64(out.len, 4);
		buf_free(&out);
		free(batch);
	}
}

static void
test_truncation(void)
{
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };
	struct wire_header	 h;
	struct buf		 out, raw;
	uint8_t			*longer;

	for (size_t k = 0; k < sizeof(codecs); k++) {
		small_batch(codecs[k], &out);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		for (size_t len = 0; len < out.len; len++) {
			enum wire_err e;

			e = wire_open(out.data, len, key_a, BIG, &h, &raw);
			CHECK(e != WIRE_OK);
			CHECK(e == WIRE_ETRUNC);
			CHECK_EQ_U64(raw.len, 0);
		}
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);

		/* A trailing byte is an error too. */
		longer = malloc(out.len + 1);
		CHECK(longer != NULL);
		memcpy(longer, out.data, out.len);
		longer[out.len] = 0;
		CHECK(wire_parse_header(longer, out.len + 1, &h) ==
		    WIRE_ELENGTH);
		CHECK(wire_open(longer, out.len + 1, key_a, BIG, &h, &raw) ==
		    WIRE_ELENGTH);
		free(longer);
		buf_free(&raw);
		buf_free(&out);
	}
}

static void
test_bitflip(void)
{
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };
	const uint8_t		 masks[] = { 0x01, 0x80, 0xff };
	struct wire_header	 h;
	struct buf		 out, raw;
	size_t			 hlen = 65 + 6;

	for (size_t k = 0; k < sizeof(codecs); k++) {
		small_batch(codecs[k], &out);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		for (size_t i = 0; i < out.len; i++) {
			for (size_t m = 0; m < sizeof(masks); m++) {
				enum wire_err	 e, pe;

				out.data[i] ^= masks[m];
				e = wire_open(out.data, out.len, key_a, BIG,
				    &h, &raw);
				pe = wire_parse_header(out.data, out.len, &h);
				out.data[i] ^= masks[m];
				CHECK(e != WIRE_OK);
				CHECK_EQ_U64(raw.len, 0);
				if (i >= hlen)
					CHECK_EQ_U64(e, WIRE_EAUTH);
				/* Passing the header means failing the tag. */
				if (pe == WIRE_OK)
					CHECK_EQ_U64(e, WIRE_EAUTH);
				else
					CHECK_EQ_U64(e, pe);
			}
		}
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);
		buf_free(&raw);
		buf_free(&out);
	}
}

static void
test_wrong_key(void)
{
	struct wire_header	 h;
	struct buf		 out, raw;

	small_batch(WIRE_CODEC_ZLIB, &out);
	CHECK(buf_init(&raw, 0, BIG) == 0);
	CHECK(wire_open(out.data, out.len, key_b, BIG, &h, &raw) == WIRE_EAUTH);
	CHECK_EQ_U64(raw.len, 0);
	/* Authentication comes before the size cap. */
	CHECK(wire_open(out.data, out.len, key_b, 4, &h, &raw) == WIRE_EAUTH);
	CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) == WIRE_OK);
	buf_free(&raw);
	buf_free(&out);

	small_batch(WIRE_CODEC_NONE, &out);
	CHECK(buf_init(&raw, 0, BIG) == 0);
	CHECK(wire_open(out.data, out.len, key_b, BIG, &h, &raw) == WIRE_EAUTH);
	CHECK(wire_open(out.data, out.len, key_b, 4, &h, &raw) == WIRE_EAUTH);
	buf_free(&raw);
	buf_free(&out);
}

/*
 * wire_seal() in two steps, as the client's sealer threads use it: the
 * prepared batch carries a placeholder number and no tag yet; finishing
 * writes the real number and a fresh nonce, and the result opens like
 * any sealed batch, with the number authenticated.
 */
static void
test_prepare_finish(void)
{
	struct wire_seal_args	 a;
	struct wire_entry	 e;
	struct wire_header	 h, h2;
	struct buf		 entries, out, raw, whole;
	static uint8_t		 payload[65535];
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB,
	    WIRE_CODEC_NFPACK, WIRE_CODEC_NFPACK3 };

	CHECK(buf_init(&entries, 0, BIG) == 0);
	for (size_t i = 0; i < 4; i++) {
		make_entry(i, &e, payload);
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	for (size_t k = 0; k < sizeof(codecs); k++) {
		args_defaults(&a);
		a.codec = codecs[k];
		a.seq = 0;
		a.entries = entries.data;
		a.entries_len = entries.len;
		a.count = 4;
		CHECK(buf_init(&out, 0, BIG) == 0);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		CHECK(buf_init(&whole, 0, BIG) == 0);
		CHECK(wire_seal_prepare(&a, &out) == WIRE_OK);
		/* Not sealed yet: the tag is not there to verify. */
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_EAUTH);
		CHECK(wire_seal_finish(&out, 7777, key_a) == WIRE_OK);
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);
		CHECK_EQ_U64(h.seq, 7777);
		CHECK_EQ_U64(h.count, 4);

		/* The same content as wire_seal() makes in one step. */
		a.seq = 7777;
		CHECK(wire_seal(&a, &whole) == WIRE_OK);
		CHECK(wire_open(whole.data, whole.len, key_a, BIG, &h2, &raw) ==
		    WIRE_OK);
		CHECK_EQ_U64(whole.len, out.len);
		CHECK(memcmp(h.nonce, h2.nonce, WIRE_NONCE_LEN) != 0);

		/* The number is authenticated: another one does not open. */
		out.data[15] ^= 1;
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_EAUTH);

		/* Too short to be a prepared batch. */
		out.len = WIRE_HEADER_FIXED - 1;
		CHECK(wire_seal_finish(&out, 1, key_a) == WIRE_ETRUNC);
		buf_free(&whole);
		buf_free(&raw);
		buf_free(&out);
	}
	buf_free(&entries);
}

static void
test_too_big(void)
{
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };
	struct wire_header	 h;
	struct buf		 out, raw;
	uint32_t		 raw_len;

	for (size_t k = 0; k < sizeof(codecs); k++) {
		small_batch(codecs[k], &out);
		raw_len = get32(out.data + 28);
		CHECK(buf_init(&raw, 0, BIG) == 0);
		CHECK(wire_open(out.data, out.len, key_a, raw_len - 1, &h,
		    &raw) == WIRE_ETOOBIG);
		CHECK_EQ_U64(raw.len, 0);
		CHECK(wire_open(out.data, out.len, key_a, raw_len, &h, &raw) ==
		    WIRE_OK);
		buf_free(&raw);

		/* The raw buffer's own ceiling applies as well. */
		CHECK(buf_init(&raw, 0, raw_len - 1) == 0);
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_ETOOBIG);
		CHECK(raw.cap <= raw_len - 1);
		buf_free(&raw);
		CHECK(buf_init(&raw, 0, raw_len) == 0);
		CHECK(wire_open(out.data, out.len, key_a, BIG, &h, &raw) ==
		    WIRE_OK);
		buf_free(&raw);
		buf_free(&out);
	}
}

/* A zlib stream of `n` zero bytes, built without holding them in memory. */
static uint8_t *
zeros_stream(size_t n, size_t *outlen)
{
	static uint8_t	 zeros[1 << 20];
	z_stream	 zs;
	size_t		 cap = n / 500 + 4096;
	uint8_t		*out = malloc(cap);
	int		 zr;

	if (out == NULL)
		abort();
	memset(&zs, 0, sizeof(zs));
	if (deflateInit(&zs, 9) != Z_OK)
		abort();
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	do {
		size_t chunk = n < sizeof(zeros) ? n : sizeof(zeros);

		zs.next_in = zeros;
		zs.avail_in = (uInt)chunk;
		n -= chunk;
		zr = deflate(&zs, n == 0 ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR || zs.avail_in != 0)
			abort();
	} while (n > 0);
	if (zr != Z_STREAM_END)
		abort();
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static void
test_deflate_bomb(void)
{
	struct wire_header	 h;
	struct craft		 c;
	struct buf		 raw;
	uint8_t			*bomb, *batch;
	size_t			 bomb_len, blen;

	/* 100 MB of zeros, claimed to be 4096 bytes of content. */
	bomb = zeros_stream(100u << 20, &bomb_len);
	CHECK(bomb_len < (1u << 20));
	craft_defaults(&c);
	c.codec = WIRE_CODEC_ZLIB;
	c.raw_len = 4096;
	c.crc = 0;
	c.body = bomb;
	c.body_len = bomb_len;
	batch = craft_seal(&c, &blen);

	CHECK(buf_init(&raw, 0, 256u << 20) == 0);
	CHECK(wire_open(batch, blen, key_a, 256u << 20, &h, &raw) ==
	    WIRE_EINFLATE);
	/* Inflating never had more than raw_len bytes to write into. */
	CHECK(raw.cap <= 4096);
	CHECK_EQ_U64(raw.len, 0);
	buf_free(&raw);
	free(batch);

	/* Claiming the true size is refused by the cap, before inflating. */
	c.raw_len = 100u << 20;
	batch = craft_seal(&c, &blen);
	CHECK(buf_init(&raw, 0, 256u << 20) == 0);
	CHECK(wire_open(batch, blen, key_a, 1u << 20, &h, &raw) ==
	    WIRE_ETOOBIG);
	CHECK_EQ_U64(raw.cap, 0);
	buf_free(&raw);
	free(batch);
	free(bomb);
}

static void
test_inflate_mismatch(void)
{
	struct wire_header	 h;
	struct craft		 c;
	struct buf		 raw;
	uint8_t			 content[4 + 100], *z, *batch, *padded;
	size_t			 zlen, blen;
	uint32_t		 crc;

	memset(content, 0, sizeof(content));
	put_be32(content, 100);
	for (size_t i = 4; i < sizeof(content); i++)
		content[i] = (uint8_t)i;
	crc = (uint32_t)crc32(0L, content, sizeof(content));
	z = zcompress(content, sizeof(content), &zlen);
	CHECK(buf_init(&raw, 0, BIG) == 0);

	craft_defaults(&c);
	c.codec = WIRE_CODEC_ZLIB;
	c.crc = crc;
	c.body = z;
	c.body_len = zlen;

	/* The control: true raw_len opens. */
	c.raw_len = sizeof(content);
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_OK);
	free(batch);

	/* raw_len one short, one long. */
	c.raw_len = sizeof(content) - 1;
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);
	c.raw_len = sizeof(content) + 1;
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);

	/* A stream cut short, and one with bytes after its end. */
	c.raw_len = sizeof(content);
	c.body_len = zlen - 1;
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);
	padded = malloc(zlen + 1);
	CHECK(padded != NULL);
	memcpy(padded, z, zlen);
	padded[zlen] = 0;
	c.body = padded;
	c.body_len = zlen + 1;
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);

	/* Not zlib at all (the stored content under the ZLIB codec). */
	c.body = content;
	c.body_len = sizeof(content);
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);

	/* An empty body under ZLIB. */
	c.body_len = 0;
	batch = craft_seal(&c, &blen);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_EINFLATE);
	free(batch);

	free(padded);
	free(z);
	buf_free(&raw);
}

static void
test_crc(void)
{
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };
	struct wire_header	 h;
	struct buf		 raw;
	uint8_t			 content[4 + 32 + 50], *batch;
	size_t			 clen, blen;
	uint32_t		 bad;

	put_be32(content, 0);
	clen = 4 + put_entry(content + 4, 1, 6, 0, 2055, v6addr, 9995, 50, 7);
	bad = (uint32_t)crc32(0L, content, (uInt)clen) ^ 0x00010000;
	CHECK(buf_init(&raw, 0, BIG) == 0);
	for (size_t k = 0; k < sizeof(codecs); k++) {
		batch = craft_content(content, clen, codecs[k], 1, NULL, &blen);
		CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_OK);
		free(batch);
		batch = craft_content(content, clen, codecs[k], 1, &bad, &blen);
		CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) ==
		    WIRE_ECRC);
		CHECK_EQ_U64(raw.len, 0);
		free(batch);
	}
	buf_free(&raw);
}

static void
test_bad_entries(void)
{
	const uint8_t		 codecs[] = { WIRE_CODEC_NONE, WIRE_CODEC_ZLIB };
	struct wire_header	 h;
	struct buf		 raw;
	static uint8_t		 content[4 + 3 * (32 + 65535) + 16];
	uint8_t			 a4[16], *batch;
	size_t			 off, blen;
	enum {
		GOOD, FAMILY0, FAMILY5, RESERVED, LEN0, V4TAIL, COUNT_MORE,
		COUNT_LESS, TRAILING, OVERRUN, HEALTH_OVERRUN, MAX_LEN,
		NCASES
	};

	CHECK(buf_init(&raw, 0, BIG) == 0);
	for (int tc = GOOD; tc < NCASES; tc++) {
		uint32_t	 count = 2;
		enum wire_err	 want = tc == GOOD || tc == MAX_LEN ? WIRE_OK :
				    WIRE_EENTRY;

		memcpy(a4, v4addr, 16);
		if (tc == V4TAIL)
			a4[15] = 1;
		put_be32(content, 3);
		memcpy(content + 4, "abc", 3);
		off = 7;
		off += put_entry(content + off, 10, tc == FAMILY5 ? 5 :
		    tc == FAMILY0 ? 0 : 4, tc == RESERVED ? 1 : 0, 1000, a4,
		    2000, tc == LEN0 ? 0 : 100, 0xaa);
		off += put_entry(content + off, 11, 6, 0, 1001, v6addr, 2000,
		    tc == MAX_LEN ? 65535 : 60, 0xbb);
		if (tc == COUNT_MORE)
			count = 3;
		if (tc == COUNT_LESS)
			count = 1;
		if (tc == TRAILING)
			content[off++] = 0;
		if (tc == OVERRUN)
			put_be16(content + off - 60 - 2, 61);
		if (tc == HEALTH_OVERRUN)
			put_be32(content, (uint32_t)off);
		for (size_t k = 0; k < sizeof(codecs); k++) {
			enum wire_err e;

			batch = craft_content(content, off, codecs[k], count,
			    NULL, &blen);
			e = wire_open(batch, blen, key_a, BIG, &h, &raw);
			if (e != want)
				fprintf(stderr, "bad entry case %d codec %u: "
				    "%s\n", tc, codecs[k], wire_strerror(e));
			CHECK_EQ_U64(e, want);
			free(batch);
		}
	}

	/* More entries claimed than the content could hold: header check. */
	put_be32(content, 0);
	off = 4 + put_entry(content + 4, 1, 4, 0, 1, v4addr, 2, 28, 1);
	batch = craft_content(content, off, WIRE_CODEC_NONE, 2, NULL, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_EENTRY);
	free(batch);
	batch = craft_content(content, off, WIRE_CODEC_NONE, 1, NULL, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_OK);
	CHECK(wire_open(batch, blen, key_a, BIG, &h, &raw) == WIRE_OK);
	free(batch);
	buf_free(&raw);
}

/* A header with one field changed: the header checks, no key involved. */
static void
test_header_fields(void)
{
	struct wire_header	 h;
	struct craft		 c;
	uint8_t			 content[4] = { 0 }, *batch;
	size_t			 blen;

	craft_defaults(&c);
	c.raw_len = 4;
	c.crc = (uint32_t)crc32(0L, content, 4);
	c.body = content;
	c.body_len = 4;

	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_OK);
	batch[0] = 'X';
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_EMAGIC);
	CHECK(wire_parse_header(batch, 10, &h) == WIRE_EMAGIC);
	batch[0] = 'F';
	CHECK(wire_parse_header(batch, 10, &h) == WIRE_ETRUNC);
	free(batch);

	c.version = 2;
	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_EVERSION);
	free(batch);
	c.version = 1;

	c.codec = 4;
	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ECODEC);
	free(batch);
	c.codec = 0;

	c.aead = 2;
	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ECODEC);
	free(batch);
	c.aead = 0;
	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ECODEC);
	free(batch);
	c.aead = 1;

	for (unsigned int bit = 1; bit < 8; bit++) {
		c.flags = (uint8_t)(1u << bit);
		batch = craft_seal(&c, &blen);
		CHECK(wire_parse_header(batch, blen, &h) == WIRE_EVERSION);
		free(batch);
	}
	c.flags = 0;

	{
		const char *id65 = "012345678901234567890123456789012345"
		    "67890123456789012345678901234";
		const char *bad[] = { "", "kit 01", "kit/01", "kit\xc3\xa9",
		    id65 };
		const char *good64 = "012345678901234567890123456789012345"
		    "6789012345678901234567890123";

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			c.client_id = bad[i];
			batch = craft_seal(&c, &blen);
			CHECK(wire_parse_header(batch, blen, &h) ==
			    WIRE_ECLIENT);
			free(batch);
		}
		c.client_id = good64;
		batch = craft_seal(&c, &blen);
		CHECK(wire_parse_header(batch, blen, &h) == WIRE_OK);
		CHECK(strcmp(h.client_id, good64) == 0);
		CHECK_EQ_U64(h.header_len, 65 + 64);
		/* A NUL inside the id is not a shorter id. */
		batch[65 + 3] = '\0';
		CHECK(wire_parse_header(batch, blen, &h) == WIRE_ECLIENT);
		free(batch);
		c.client_id = "kit-01";
	}

	/* sealed_len: under a tag, and disagreeing with the length. */
	batch = craft_seal(&c, &blen);
	put_be32(batch + 36, 15);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ELENGTH);
	put_be32(batch + 36, 21);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ETRUNC);
	put_be32(batch + 36, 19);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ELENGTH);
	put_be32(batch + 36, 20);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_OK);
	/* raw_len below the health_len field; stored size mismatch. */
	put_be32(batch + 28, 3);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ELENGTH);
	put_be32(batch + 28, 5);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ELENGTH);
	free(batch);

	c.raw_len = 3;
	c.body_len = 3;
	batch = craft_seal(&c, &blen);
	CHECK(wire_parse_header(batch, blen, &h) == WIRE_ELENGTH);
	free(batch);
}

static void
test_entry_append(void)
{
	struct buf		 b;
	struct wire_entry	 e, got;
	struct wire_iter	 it;
	uint8_t			 payload[100];

	memset(payload, 0x11, sizeof(payload));
	memset(&e, 0, sizeof(e));
	e.family = 4;
	memset(e.addr, 0xee, sizeof(e.addr));	/* tail must not leak */
	e.len = 100;
	e.payload = payload;
	CHECK(buf_init(&b, 0, 3 * 132) == 0);
	CHECK(wire_entry_append(&b, &e) == 0);
	CHECK_EQ_U64(b.len, 132);
	for (int i = 16; i < 28; i++)
		CHECK_EQ_U64(b.data[i], 0);
	it.p = b.data;
	it.left = b.len;
	CHECK_EQ_U64(wire_entry_next(&it, &got), 1);
	CHECK_EQ_U64(wire_entry_next(&it, &got), 0);

	e.family = 5;
	CHECK(wire_entry_append(&b, &e) == -1);
	e.family = 6;
	e.len = 0;
	CHECK(wire_entry_append(&b, &e) == -1);
	e.len = 100;
	e.payload = NULL;
	CHECK(wire_entry_append(&b, &e) == -1);
	e.payload = payload;
	CHECK_EQ_U64(b.len, 132);
	CHECK(wire_entry_append(&b, &e) == 0);
	CHECK(wire_entry_append(&b, &e) == 0);
	/* The ceiling is reached: nothing is added. */
	CHECK(wire_entry_append(&b, &e) == -1);
	CHECK_EQ_U64(b.len, 3 * 132);
	buf_free(&b);
}

static void
test_seal_args(void)
{
	struct wire_seal_args	 a;
	struct buf		 out, entries;
	struct wire_entry	 e;
	uint8_t			 payload[10] = { 1 };

	CHECK(buf_init(&out, 0, BIG) == 0);
	CHECK(buf_init(&entries, 0, BIG) == 0);
	memset(&e, 0, sizeof(e));
	e.family = 4;
	e.len = 10;
	e.payload = payload;
	CHECK(wire_entry_append(&entries, &e) == 0);
	CHECK(wire_entry_append(&entries, &e) == 0);

	args_defaults(&a);
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = 2;
	CHECK(wire_seal(&a, &out) == WIRE_OK);
	a.count = 1;
	CHECK(wire_seal(&a, &out) == WIRE_EENTRY);
	a.count = 3;
	CHECK(wire_seal(&a, &out) == WIRE_EENTRY);
	a.count = 2;
	a.entries_len--;
	CHECK(wire_seal(&a, &out) == WIRE_EENTRY);
	a.entries_len++;
	a.client_id = "bad id";
	CHECK(wire_seal(&a, &out) == WIRE_ECLIENT);
	CHECK_EQ_U64(out.len, 0);
	a.client_id = "kit-01";
	a.codec = 4;
	CHECK(wire_seal(&a, &out) == WIRE_ECODEC);
	a.codec = WIRE_CODEC_ZLIB;
	a.zlevel = 10;
	CHECK(wire_seal(&a, &out) == WIRE_ECODEC);
	a.zlevel = 6;
	a.flags = 0x02;
	CHECK(wire_seal(&a, &out) == WIRE_EVERSION);
	a.flags = 0;
	CHECK(wire_seal(&a, &out) == WIRE_OK);
	buf_free(&entries);
	buf_free(&out);
}

static void
test_tag(void)
{
	uint8_t	 b[20];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	CHECK(wire_tag(b, sizeof(b)) == b + 4);
	CHECK(wire_tag(b, 16) == b);
	CHECK(wire_tag(b, 15) == NULL);
}

/* The line, byte for byte, as PROTOCOL.md 2.2 describes it. */
static void
test_ack_format(void)
{
	char			 line[WIRE_ACK_MAX], want[WIRE_ACK_MAX];
	uint8_t			 tag[16], akey[32];
	uint8_t			 mac[crypto_auth_hmacsha256_BYTES];
	uint8_t			 msg[128];
	char			 hex[65];
	crypto_auth_hmacsha256_state st;
	int			 n, pn;
	const char		*id64 = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";

	for (size_t i = 0; i < sizeof(tag); i++)
		tag[i] = (uint8_t)(0xf0 ^ i);
	n = wire_ack_format(line, sizeof(line), "kit-01", 1234567890123ULL,
	    WIRE_ACK_DUP, tag, key_a);
	pn = snprintf((char *)msg, sizeof(msg),
	    "FPACK1 kit-01 1234567890123 dup ");
	CHECK(pn > 0);
	memcpy(msg + pn, tag, 16);
	crypto_kdf_derive_from_key(akey, sizeof(akey), 2, "fpack___", key_a);
	crypto_auth_hmacsha256(mac, msg, (size_t)pn + 16, akey);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	snprintf(want, sizeof(want), "%.*s%s\n", pn, (char *)msg, hex);
	CHECK_EQ_U64(n, strlen(want));
	CHECK(strcmp(line, want) == 0);

	/* The same through the streaming API, as a second opinion. */
	crypto_auth_hmacsha256_init(&st, akey, sizeof(akey));
	crypto_auth_hmacsha256_update(&st, msg, (size_t)pn + 16);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	CHECK(strstr(line, hex) == line + pn);

	/* The longest line fits WIRE_ACK_MAX; a buffer one short does not. */
	CHECK_EQ_U64(strlen(id64), 64);
	n = wire_ack_format(line, sizeof(line), id64, UINT64_MAX, WIRE_ACK_NEW,
	    tag, key_a);
	CHECK_EQ_U64(n, 162);
	CHECK(n > 0 && line[n - 1] == '\n' && line[n] == '\0');
	CHECK(wire_ack_format(line, (size_t)n, id64, UINT64_MAX, WIRE_ACK_NEW,
	    tag, key_a) == -1);
	CHECK(wire_ack_format(line, (size_t)n + 1, id64, UINT64_MAX,
	    WIRE_ACK_NEW, tag, key_a) == n);

	CHECK(wire_ack_format(line, sizeof(line), "bad id", 1, WIRE_ACK_NEW,
	    tag, key_a) == -1);
	CHECK(wire_ack_format(line, sizeof(line), "kit", 1,
	    (enum wire_ack_status)7, tag, key_a) == -1);
	CHECK(wire_ack_format(line, 0, "kit", 1, WIRE_ACK_NEW, tag, key_a) ==
	    -1);
}

static void
test_ack_verify(void)
{
	char			 line[WIRE_ACK_MAX + 8], copy[WIRE_ACK_MAX + 8];
	uint8_t			 tag[16], tag2[16];
	enum wire_ack_status	 st;
	int			 n;

	randombytes_buf(tag, sizeof(tag));
	memcpy(tag2, tag, sizeof(tag));
	tag2[15] ^= 1;

	n = wire_ack_format(line, sizeof(line), "kit-01", 77, WIRE_ACK_NEW,
	    tag, key_a);
	CHECK(n > 0);
	st = WIRE_ACK_DUP;
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 77, tag, key_a,
	    &st) == 0);
	CHECK_EQ_U64(st, WIRE_ACK_NEW);
	n = wire_ack_format(line, sizeof(line), "kit-01", 77, WIRE_ACK_DUP,
	    tag, key_a);
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 77, tag, key_a,
	    &st) == 0);
	CHECK_EQ_U64(st, WIRE_ACK_DUP);

	/* Another batch, client, key. */
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 78, tag, key_a,
	    &st) == -1);
	CHECK(wire_ack_verify(line, (size_t)n, "kit-02", 77, tag, key_a,
	    &st) == -1);
	CHECK(wire_ack_verify(line, (size_t)n, "kit-0", 77, tag, key_a,
	    &st) == -1);
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 77, tag2, key_a,
	    &st) == -1);
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 77, tag, key_b,
	    &st) == -1);

	/* Every single byte changed. */
	for (int i = 0; i < n; i++) {
		const uint8_t masks[] = { 0x01, 0x20, 0x80 };

		for (size_t m = 0; m < sizeof(masks); m++) {
			memcpy(copy, line, (size_t)n);
			copy[i] = (char)(copy[i] ^ masks[m]);
			CHECK(wire_ack_verify(copy, (size_t)n, "kit-01", 77,
			    tag, key_a, &st) == -1);
		}
	}
	/* Every truncation, and extra bytes. */
	for (int len = 0; len < n; len++)
		CHECK(wire_ack_verify(line, (size_t)len, "kit-01", 77, tag,
		    key_a, &st) == -1);
	memcpy(copy, line, (size_t)n);
	copy[n] = '\n';
	CHECK(wire_ack_verify(copy, (size_t)n + 1, "kit-01", 77, tag, key_a,
	    &st) == -1);
	copy[n - 1] = '\r';
	copy[n] = '\n';
	CHECK(wire_ack_verify(copy, (size_t)n + 1, "kit-01", 77, tag, key_a,
	    &st) == -1);
	/* Uppercase hex is not the canonical form. */
	memcpy(copy, line, (size_t)n);
	for (int i = n - 65; i < n - 1; i++)
		if (copy[i] >= 'a' && copy[i] <= 'f')
			copy[i] = (char)(copy[i] - 'a' + 'A');
	CHECK(memcmp(copy, line, (size_t)n) != 0);
	CHECK(wire_ack_verify(copy, (size_t)n, "kit-01", 77, tag, key_a,
	    &st) == -1);
	/* The status word swapped with an unchanged MAC. */
	memcpy(copy, line, (size_t)n);
	copy[n] = '\0';
	{
		char *w = strstr(copy, " dup ");

		CHECK(w != NULL);
		if (w != NULL)
			memcpy(w + 1, "new", 3);
	}
	CHECK(wire_ack_verify(copy, (size_t)n, "kit-01", 77, tag, key_a,
	    &st) == -1);

	/* Things a portal or proxy might answer with. */
	{
		const char *zero_mac = "FPACK1 kit-01 77 new "
		    "00000000000000000000000000000000"
		    "00000000000000000000000000000000\n";
		const char *junk[] = { "", "\n", "OK\n",
		    "<html><body>Login</body></html>",
		    "FPACK1 kit-01 77 new \n", zero_mac };

		for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
			CHECK(wire_ack_verify(junk[i], strlen(junk[i]),
			    "kit-01", 77, tag, key_a, &st) == -1);
	}
	/* A leading-zero seq is another string, so another line. */
	n = wire_ack_format(line, sizeof(line), "kit-01", 77, WIRE_ACK_NEW,
	    tag, key_a);
	memcpy(copy, "FPACK1 kit-01 077", 17);
	memcpy(copy + 17, line + 16, (size_t)n - 16);
	CHECK(wire_ack_verify(copy, (size_t)n + 1, "kit-01", 77, tag, key_a,
	    &st) == -1);
	/* A NULL status pointer is fine. */
	CHECK(wire_ack_verify(line, (size_t)n, "kit-01", 77, tag, key_a,
	    NULL) == 0);
}

static void
test_key(void)
{
	uint8_t		 k[WIRE_KEY_LEN];
	char		 hex[2 * WIRE_KEY_LEN + 1], in[80];
	const char	*good = "000102030405060708090a0b0c0d0e0f"
			    "101112131415161718191a1b1c1d1e1f";
	const char	*bad[] = { "", "\n", "00",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
	    " 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f ",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n",
	    "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	};

	CHECK(wire_key_parse(good, k) == 0);
	for (size_t i = 0; i < WIRE_KEY_LEN; i++)
		CHECK_EQ_U64(k[i], i);
	wire_key_format(k, hex);
	CHECK(strcmp(hex, good) == 0);

	snprintf(in, sizeof(in), "%s\n", good);
	CHECK(wire_key_parse(in, k) == 0);
	CHECK_EQ_U64(k[31], 31);
	for (size_t i = 0; in[i] != '\0'; i++)
		if (in[i] >= 'a' && in[i] <= 'f')
			in[i] = (char)(in[i] - 'a' + 'A');
	memset(k, 0, sizeof(k));
	CHECK(wire_key_parse(in, k) == 0);
	CHECK_EQ_U64(k[26], 26);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(wire_key_parse(bad[i], k) == -1);
	CHECK(wire_key_parse(NULL, k) == -1);

	randombytes_buf(k, sizeof(k));
	{
		uint8_t k2[WIRE_KEY_LEN];

		wire_key_format(k, hex);
		CHECK_EQ_U64(strlen(hex), 64);
		CHECK(wire_key_parse(hex, k2) == 0);
		CHECK(memcmp(k, k2, sizeof(k)) == 0);
	}
}

static void
test_client_id(void)
{
	CHECK(wire_client_id_valid("a") == 0);
	CHECK(wire_client_id_valid("Kit_01.site-B") == 0);
	CHECK(wire_client_id_valid("0123456789012345678901234567890123456789"
	    "012345678901234567890123") == 0);
	CHECK(wire_client_id_valid("0123456789012345678901234567890123456789"
	    "0123456789012345678901234") == -1);
	CHECK(wire_client_id_valid("") == -1);
	CHECK(wire_client_id_valid(NULL) == -1);
	CHECK(wire_client_id_valid("a b") == -1);
	CHECK(wire_client_id_valid("a/b") == -1);
	CHECK(wire_client_id_valid("a:b") == -1);
	CHECK(wire_client_id_valid("a\nb") == -1);
	CHECK(wire_client_id_valid("\xff") == -1);
}

static void
test_strerror(void)
{
	for (int e = WIRE_OK; e <= WIRE_ENOMEM; e++) {
		const char *s = wire_strerror((enum wire_err)e);

		CHECK(s != NULL && *s != '\0');
		for (int f = WIRE_OK; f < e; f++)
			CHECK(strcmp(s, wire_strerror((enum wire_err)f)) != 0);
	}
	CHECK(wire_strerror((enum wire_err)999) != NULL);
}

static void
test_setup(void)
{
	CHECK(wire_init() == 0);
	keys_init();
}

TEST_MAIN(test_setup, test_roundtrip, test_roundtrip_incompressible,
    test_heartbeat, test_layout, test_truncation, test_bitflip,
    test_wrong_key, test_prepare_finish, test_too_big, test_deflate_bomb, test_inflate_mismatch,
    test_crc, test_bad_entries, test_header_fields, test_entry_append,
    test_seal_args, test_tag, test_ack_format, test_ack_verify, test_key,
    test_client_id, test_strerror)
