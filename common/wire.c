/*
 * wire.c: sealing and opening flowpost batches (docs/PROTOCOL.md, 1 and 2.2).
 *
 * Sealing writes the content straight into the output buffer (stored, or
 * deflated there), then encrypts it in place, so a batch costs one buffer of
 * its own size.  Opening authenticates first, then inflates into exactly
 * raw_len bytes, then checks the CRC and every entry: no byte of the body is
 * interpreted before the AEAD tag has verified.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zlib.h>

#include "bytes.h"
#include "nfpack.h"
#include "nfpack3.h"
#include "wire.h"

#define WIRE_KDF_BATCH_CTX	"fpbatch_"
#define WIRE_KDF_BATCH_ID	1
#define WIRE_KDF_ACK_CTX	"fpack___"
#define WIRE_KDF_ACK_ID		2

#define WIRE_FLAGS_KNOWN	WIRE_FLAG_HEARTBEAT
#define WIRE_ACK_PREFIX		"FPACK1 "
#define WIRE_ACK_MAC_HEX	(2 * crypto_auth_hmacsha256_BYTES)

static const char *const wire_errstr[] = {
	[WIRE_OK] = "ok",
	[WIRE_ETRUNC] = "batch truncated",
	[WIRE_EMAGIC] = "not a flowpost batch",
	[WIRE_EVERSION] = "unsupported batch version or flags",
	[WIRE_ECODEC] = "unknown codec or AEAD",
	[WIRE_ECLIENT] = "bad client id",
	[WIRE_ELENGTH] = "batch lengths disagree",
	[WIRE_EAUTH] = "authentication failed",
	[WIRE_ETOOBIG] = "batch too big",
	[WIRE_EINFLATE] = "decompression failed",
	[WIRE_ECRC] = "content CRC mismatch",
	[WIRE_EENTRY] = "malformed entry or wrong count",
	[WIRE_ENOMEM] = "out of memory",
};

const char *
wire_strerror(enum wire_err e)
{
	if ((unsigned int)e >= sizeof(wire_errstr) / sizeof(wire_errstr[0]) ||
	    wire_errstr[e] == NULL)
		return "unknown error";
	return wire_errstr[e];
}

int
wire_client_id_valid(const char *id)
{
	size_t	 n;

	if (id == NULL)
		return -1;
	n = strnlen(id, WIRE_CLIENT_ID_MAX + 1);
	if (n == 0 || n > WIRE_CLIENT_ID_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return -1;
	}
	return 0;
}

int
wire_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

/*
 * Subkeys: one per purpose, so that the AEAD key and the ack MAC key are
 * never the same bytes.
 */
static void
wire_subkey(uint8_t sub[WIRE_KEY_LEN], const uint8_t *key, uint64_t id,
    const char *ctx)
{
	crypto_kdf_derive_from_key(sub, WIRE_KEY_LEN, id, ctx, key);
}

/*
 * Entries.
 */

int
wire_entry_append(struct buf *entries, const struct wire_entry *e)
{
	struct wcur	 w;
	static const uint8_t zero[12];

	if ((e->family != 4 && e->family != 6) || e->len == 0 ||
	    e->payload == NULL)
		return -1;
	if (buf_reserve(entries, wire_entry_size(e->len)) == -1)
		return -1;

	wcur_init(&w, entries->data + entries->len, wire_entry_size(e->len));
	wcur_u64(&w, e->recv_us);
	wcur_u8(&w, e->family);
	wcur_u8(&w, 0);
	wcur_u16(&w, e->src_port);
	if (e->family == 4) {
		/* Only 4 bytes are the address; the rest must be zero. */
		wcur_bytes(&w, e->addr, 4);
		wcur_bytes(&w, zero, sizeof(zero));
	} else
		wcur_bytes(&w, e->addr, 16);
	wcur_u16(&w, e->dst_port);
	wcur_u16(&w, e->len);
	wcur_bytes(&w, e->payload, e->len);
	if (w.err || w.left != 0)
		return -1;
	entries->len += wire_entry_size(e->len);
	return 0;
}

int
wire_entry_next(struct wire_iter *it, struct wire_entry *e)
{
	struct rcur	 r;
	const uint8_t	*addr;
	uint8_t		 reserved;

	if (it->left == 0)
		return 0;
	rcur_init(&r, it->p, it->left);
	e->recv_us = rcur_u64(&r);
	e->family = rcur_u8(&r);
	reserved = rcur_u8(&r);
	e->src_port = rcur_u16(&r);
	addr = rcur_take(&r, 16);
	e->dst_port = rcur_u16(&r);
	e->len = rcur_u16(&r);
	e->payload = rcur_take(&r, e->len);
	if (r.err || reserved != 0 || e->len == 0 ||
	    (e->family != 4 && e->family != 6))
		return -1;
	if (e->family == 4) {
		for (size_t i = 4; i < 16; i++)
			if (addr[i] != 0)
				return -1;
	}
	memcpy(e->addr, addr, 16);
	it->p = r.p;
	it->left = r.left;
	return 1;
}

/* Exactly `count` well-formed entries and nothing after them. */
static int
wire_entries_check(const uint8_t *p, size_t len, uint32_t count)
{
	struct wire_iter	 it = { p, len };
	struct wire_entry	 e;

	for (uint32_t i = 0; i < count; i++)
		if (wire_entry_next(&it, &e) != 1)
			return -1;
	return it.left == 0 ? 0 : -1;
}

int
wire_content_health(const uint8_t *raw, size_t raw_len,
    const uint8_t **health, size_t *health_len)
{
	struct rcur	 r;
	uint32_t	 n;

	rcur_init(&r, raw, raw_len);
	n = rcur_u32(&r);
	*health = rcur_take(&r, n);
	if (r.err) {
		*health = NULL;
		*health_len = 0;
		return -1;
	}
	*health_len = n;
	return 0;
}

int
wire_content_entries(const uint8_t *raw, size_t raw_len, struct wire_iter *it)
{
	struct rcur	 r;

	rcur_init(&r, raw, raw_len);
	(void)rcur_take(&r, rcur_u32(&r));
	if (r.err) {
		it->p = NULL;
		it->left = 0;
		return -1;
	}
	it->p = r.p;
	it->left = r.left;
	return 0;
}

/*
 * Sealing.
 */

/*
 * Deflates `n` content pieces, in order, into dst; *dlen is the space, then
 * used.
 */
static enum wire_err
wire_deflate(int zlevel, const uint8_t *const *piece, const size_t *plen,
    int n, uint8_t *dst, size_t *dlen)
{
	z_stream	 zs;
	enum wire_err	 err = WIRE_ETOOBIG;
	int		 zr = Z_OK;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit(&zs, zlevel) != Z_OK)
		return WIRE_ENOMEM;
	zs.next_out = dst;
	zs.avail_out = *dlen > UINT_MAX ? UINT_MAX : (uInt)*dlen;
	for (int i = 0; i < n; i++) {
		int last = i == n - 1;

		/* Pieces are each below 4 GiB: raw_len fits a u32. */
		zs.next_in = (Bytef *)(uintptr_t)piece[i];
		zs.avail_in = (uInt)plen[i];
		do {
			zr = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
			/* Finishing without progress: out of space. */
			if (zr == Z_STREAM_ERROR || (last && zr == Z_BUF_ERROR))
				goto out;
			/* Output full before the input is consumed. */
			if (zs.avail_out == 0 && (zs.avail_in > 0 ||
			    (last && zr != Z_STREAM_END)))
				goto out;
		} while (zs.avail_in > 0 || (last && zr != Z_STREAM_END));
	}
	*dlen = zs.total_out;
	err = WIRE_OK;
out:
	deflateEnd(&zs);
	return err;
}

enum wire_err
wire_seal(const struct wire_seal_args *a, struct buf *out)
{
	enum wire_err	 err;

	if ((err = wire_seal_prepare(a, out)) != WIRE_OK)
		return err;
	return wire_seal_finish(out, a->seq, a->key);
}

/* Where wire_seal_finish() patches a prepared header. */
#define WIRE_OFF_SEQ	8
#define WIRE_OFF_NONCE	40
#define WIRE_OFF_IDLEN	(WIRE_HEADER_FIXED - 1)

enum wire_err
wire_seal_finish(struct buf *out, uint64_t seq, const uint8_t *key)
{
	struct wcur	 w;
	uint8_t		 bkey[WIRE_KEY_LEN];
	uint8_t		 nonce[WIRE_NONCE_LEN];
	size_t		 hlen, clen;

	if (out->len < WIRE_HEADER_FIXED)
		return WIRE_ETRUNC;
	hlen = WIRE_HEADER_FIXED + out->data[WIRE_OFF_IDLEN];
	if (out->len < hlen + WIRE_TAG_LEN)
		return WIRE_ETRUNC;
	clen = out->len - hlen - WIRE_TAG_LEN;

	randombytes_buf(nonce, sizeof(nonce));
	wcur_init(&w, out->data + WIRE_OFF_SEQ, 8);
	wcur_u64(&w, seq);
	memcpy(out->data + WIRE_OFF_NONCE, nonce, sizeof(nonce));

	/* The whole clear header is the associated data. */
	wire_subkey(bkey, key, WIRE_KDF_BATCH_ID, WIRE_KDF_BATCH_CTX);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out->data + hlen,
	    out->data + hlen + clen, NULL, out->data + hlen, clen, out->data,
	    hlen, NULL, nonce, bkey);
	sodium_memzero(bkey, sizeof(bkey));
	return WIRE_OK;
}

enum wire_err
wire_seal_prepare(const struct wire_seal_args *a, struct buf *out)
{
	struct wcur	 w;
	uint8_t		 nonce[WIRE_NONCE_LEN];
	uint8_t		 hl[4];
	uint8_t		*body, *packed = NULL;
	const uint8_t	*piece[3];
	uint64_t	 raw64;
	size_t		 plen[3];
	size_t		 idlen, hlen, room, clen, zin, pbound = 0;
	uint32_t	 raw_len, crc;
	enum wire_err	 err;
	int		 npiece;

	buf_reset(out);
	if (wire_client_id_valid(a->client_id) == -1)
		return WIRE_ECLIENT;
	if (a->codec != WIRE_CODEC_NONE && a->codec != WIRE_CODEC_ZLIB &&
	    a->codec != WIRE_CODEC_NFPACK && a->codec != WIRE_CODEC_NFPACK3)
		return WIRE_ECODEC;
	if (a->codec != WIRE_CODEC_NONE &&
	    (a->zlevel < Z_DEFAULT_COMPRESSION || a->zlevel > 9))
		return WIRE_ECODEC;
	if ((a->flags & ~WIRE_FLAGS_KNOWN) != 0)
		return WIRE_EVERSION;
	if ((a->health_len > 0 && a->health == NULL) ||
	    (a->entries_len > 0 && a->entries == NULL))
		return WIRE_EENTRY;
	if ((a->flags & WIRE_FLAG_HEARTBEAT) &&
	    (a->count != 0 || a->entries_len != 0))
		return WIRE_EENTRY;

	raw64 = 4 + (uint64_t)a->health_len + a->entries_len;
	if (a->health_len > UINT32_MAX || a->entries_len > UINT32_MAX ||
	    raw64 > UINT32_MAX)
		return WIRE_ETOOBIG;
	raw_len = (uint32_t)raw64;

	/* Never seal what the gateway would refuse as malformed. */
	if (wire_entries_check(a->entries, a->entries_len, a->count) == -1)
		return WIRE_EENTRY;

	hl[0] = (uint8_t)(a->health_len >> 24);
	hl[1] = (uint8_t)(a->health_len >> 16);
	hl[2] = (uint8_t)(a->health_len >> 8);
	hl[3] = (uint8_t)a->health_len;
	crc = (uint32_t)crc32(0L, hl, 4);
	if (a->health_len > 0)
		crc = (uint32_t)crc32(crc, a->health, (uInt)a->health_len);
	if (a->entries_len > 0)
		crc = (uint32_t)crc32(crc, a->entries, (uInt)a->entries_len);

	/* What deflate reads: the content as is, or its nfpack transform. */
	piece[0] = hl;
	plen[0] = 4;
	piece[1] = a->health;
	plen[1] = a->health_len;
	piece[2] = a->entries;
	plen[2] = a->entries_len;
	npiece = 3;
	zin = raw_len;
	if (a->codec == WIRE_CODEC_NFPACK || a->codec == WIRE_CODEC_NFPACK3) {
		int	 rc;

		pbound = a->codec == WIRE_CODEC_NFPACK ? nfpack_bound(raw_len) :
		    nfpack3_bound(raw_len);
		if (pbound == 0 || (packed = malloc(pbound)) == NULL)
			return WIRE_ENOMEM;
		if (a->codec == WIRE_CODEC_NFPACK)
			rc = nfpack_encode(a->health, a->health_len,
			    a->entries, a->entries_len, packed, pbound, &zin);
		else
			rc = nfpack3_encode(a->health, a->health_len,
			    a->entries, a->entries_len, packed, pbound, &zin);
		if (rc == -1) {
			err = WIRE_EENTRY;
			goto out;
		}
		piece[0] = packed;
		plen[0] = zin;
		npiece = 1;
	}

	/* Room for the body: what the codec may need, capped by the ceiling. */
	idlen = strlen(a->client_id);
	hlen = WIRE_HEADER_FIXED + idlen;
	err = WIRE_ETOOBIG;
	if (out->max < hlen + WIRE_TAG_LEN + 1)
		goto out;
	room = out->max - hlen - WIRE_TAG_LEN;
	if (a->codec == WIRE_CODEC_NONE) {
		if (raw_len > room)
			goto out;
		room = raw_len;
	} else if (deflateBound(NULL, zin) < room)
		room = deflateBound(NULL, zin);
	if (buf_reserve(out, hlen + room + WIRE_TAG_LEN) == -1) {
		err = WIRE_ENOMEM;
		goto out;
	}
	body = out->data + hlen;

	if (a->codec == WIRE_CODEC_NONE) {
		wcur_init(&w, body, room);
		wcur_bytes(&w, hl, 4);
		wcur_bytes(&w, a->health, a->health_len);
		wcur_bytes(&w, a->entries, a->entries_len);
		if (w.err)
			goto out;
		clen = raw_len;
	} else {
		clen = room;
		if ((err = wire_deflate(a->zlevel, piece, plen, npiece, body,
		    &clen)) != WIRE_OK)
			goto out;
	}
	err = WIRE_ETOOBIG;
	if (clen > UINT32_MAX - WIRE_TAG_LEN)
		goto out;

	/* wire_seal_finish() draws the nonce and encrypts */
	memset(nonce, 0, sizeof(nonce));
	wcur_init(&w, out->data, hlen);
	wcur_bytes(&w, WIRE_MAGIC, 4);
	wcur_u8(&w, WIRE_VERSION);
	wcur_u8(&w, a->codec);
	wcur_u8(&w, WIRE_AEAD_XCHACHA20POLY1305);
	wcur_u8(&w, a->flags);
	wcur_u64(&w, a->seq);
	wcur_u64(&w, a->created_us);
	wcur_u32(&w, a->count);
	wcur_u32(&w, raw_len);
	wcur_u32(&w, crc);
	wcur_u32(&w, (uint32_t)(clen + WIRE_TAG_LEN));
	wcur_bytes(&w, nonce, sizeof(nonce));
	wcur_u8(&w, (uint8_t)idlen);
	wcur_bytes(&w, a->client_id, idlen);
	if (w.err || w.left != 0)
		goto out;
	out->len = hlen + clen + WIRE_TAG_LEN;
	err = WIRE_OK;
out:
	if (packed != NULL) {
		sodium_memzero(packed, pbound);
		free(packed);
	}
	/*
	 * The nfpack3 transform can make content that hardly compresses
	 * longer (a v5 record up to 55 bytes): seal such content as codec 1.
	 */
	if (err == WIRE_ETOOBIG && a->codec == WIRE_CODEC_NFPACK3) {
		struct wire_seal_args	 b = *a;

		b.codec = WIRE_CODEC_ZLIB;
		return wire_seal_prepare(&b, out);
	}
	return err;
}

/*
 * Opening.
 */

enum wire_err
wire_parse_header(const uint8_t *data, size_t len, struct wire_header *h)
{
	struct rcur	 r;
	const uint8_t	*magic, *nonce, *id;
	uint8_t		 idlen;

	memset(h, 0, sizeof(*h));
	rcur_init(&r, data, len);
	magic = rcur_take(&r, 4);
	h->version = rcur_u8(&r);
	h->codec = rcur_u8(&r);
	h->aead = rcur_u8(&r);
	h->flags = rcur_u8(&r);
	h->seq = rcur_u64(&r);
	h->created_us = rcur_u64(&r);
	h->count = rcur_u32(&r);
	h->raw_len = rcur_u32(&r);
	h->crc32 = rcur_u32(&r);
	h->sealed_len = rcur_u32(&r);
	nonce = rcur_take(&r, WIRE_NONCE_LEN);
	idlen = rcur_u8(&r);
	if (r.err) {
		/* Say "not a batch" rather than "truncated" for foreign data. */
		if (len >= 4 && memcmp(data, WIRE_MAGIC, 4) != 0)
			return WIRE_EMAGIC;
		return WIRE_ETRUNC;
	}
	if (memcmp(magic, WIRE_MAGIC, 4) != 0)
		return WIRE_EMAGIC;
	if (h->version != WIRE_VERSION)
		return WIRE_EVERSION;
	if (h->codec != WIRE_CODEC_NONE && h->codec != WIRE_CODEC_ZLIB &&
	    h->codec != WIRE_CODEC_NFPACK && h->codec != WIRE_CODEC_NFPACK3)
		return WIRE_ECODEC;
	if (h->aead != WIRE_AEAD_XCHACHA20POLY1305)
		return WIRE_ECODEC;
	if ((h->flags & ~WIRE_FLAGS_KNOWN) != 0)
		return WIRE_EVERSION;
	if (idlen == 0 || idlen > WIRE_CLIENT_ID_MAX)
		return WIRE_ECLIENT;
	if ((id = rcur_take(&r, idlen)) == NULL)
		return WIRE_ETRUNC;
	memcpy(h->client_id, id, idlen);
	h->client_id[idlen] = '\0';
	if (memchr(id, '\0', idlen) != NULL ||
	    wire_client_id_valid(h->client_id) == -1)
		return WIRE_ECLIENT;
	memcpy(h->nonce, nonce, WIRE_NONCE_LEN);
	h->header_len = WIRE_HEADER_FIXED + idlen;

	if (h->sealed_len < WIRE_TAG_LEN)
		return WIRE_ELENGTH;
	if (r.left < h->sealed_len)
		return WIRE_ETRUNC;
	if (r.left > h->sealed_len)
		return WIRE_ELENGTH;

	/* Plausibility: cheap checks that need no key. */
	if (h->raw_len < 4)
		return WIRE_ELENGTH;
	if (h->codec == WIRE_CODEC_NONE &&
	    (uint64_t)h->raw_len + WIRE_TAG_LEN != h->sealed_len)
		return WIRE_ELENGTH;
	if ((h->flags & WIRE_FLAG_HEARTBEAT) && h->count != 0)
		return WIRE_EENTRY;
	if ((uint64_t)h->count * WIRE_ENTRY_HEADER > h->raw_len - 4)
		return WIRE_EENTRY;
	return WIRE_OK;
}

const uint8_t *
wire_tag(const uint8_t *data, size_t len)
{
	if (data == NULL || len < WIRE_TAG_LEN)
		return NULL;
	return data + len - WIRE_TAG_LEN;
}

/*
 * Inflates src into dst, at most `cap` bytes; the size goes to *got.  The
 * output space is `cap` and no more, so a stream that would expand further
 * (a deflate bomb) stops there and fails; so does one that is cut short or
 * has bytes after its end.
 */
static enum wire_err
wire_inflate(const uint8_t *src, size_t slen, uint8_t *dst, size_t cap,
    size_t *got)
{
	z_stream	 zs;
	enum wire_err	 err = WIRE_EINFLATE;
	int		 zr;

	if (slen > UINT_MAX)
		return WIRE_EINFLATE;
	memset(&zs, 0, sizeof(zs));
	zs.next_in = (Bytef *)(uintptr_t)src;
	zs.avail_in = (uInt)slen;
	if ((zr = inflateInit(&zs)) != Z_OK)
		return zr == Z_MEM_ERROR ? WIRE_ENOMEM : WIRE_EINFLATE;
	if (cap > UINT_MAX) {
		inflateEnd(&zs);
		return WIRE_EINFLATE;
	}
	zs.next_out = dst;
	zs.avail_out = (uInt)cap;
	zr = inflate(&zs, Z_FINISH);
	if (zr == Z_MEM_ERROR)
		err = WIRE_ENOMEM;
	else if (zr == Z_STREAM_END && zs.avail_in == 0) {
		*got = cap - zs.avail_out;
		err = WIRE_OK;
	}
	inflateEnd(&zs);
	return err;
}

/*
 * Codecs 2 and 3: inflates the transformed stream (never longer than
 * nfpack_bound() or nfpack3_bound() of raw_len) into scratch space, then
 * rebuilds exactly raw_len bytes of content from it into dst.
 */
static enum wire_err
wire_unpack(uint8_t codec, const uint8_t *src, size_t slen, uint8_t *dst,
    uint32_t raw_len)
{
	uint8_t		*packed;
	size_t		 bound, plen = 0, used = 0;
	enum wire_err	 err;
	int		 rc;

	bound = codec == WIRE_CODEC_NFPACK ? nfpack_bound(raw_len) :
	    nfpack3_bound(raw_len);
	if (bound == 0 || (packed = malloc(bound)) == NULL)
		return WIRE_ENOMEM;
	if ((err = wire_inflate(src, slen, packed, bound, &plen)) == WIRE_OK) {
		if (codec == WIRE_CODEC_NFPACK)
			rc = nfpack_decode(packed, plen, dst, raw_len, &used);
		else
			rc = nfpack3_decode(packed, plen, dst, raw_len, &used);
		if (rc == -1 || used != raw_len)
			err = WIRE_EINFLATE;
	}
	sodium_memzero(packed, bound);
	free(packed);
	return err;
}

enum wire_err
wire_open(const uint8_t *data, size_t len, const uint8_t *key,
    size_t raw_max, struct wire_header *h, struct buf *raw)
{
	struct wire_iter it;
	uint8_t		 bkey[WIRE_KEY_LEN];
	uint8_t		*scratch = NULL, *plain;
	const uint8_t	*cipher, *tag;
	size_t		 clen, got = 0;
	enum wire_err	 err;
	int		 direct = 0;

	buf_reset(raw);
	if ((err = wire_parse_header(data, len, h)) != WIRE_OK)
		return err;
	cipher = data + h->header_len;
	clen = h->sealed_len - WIRE_TAG_LEN;
	tag = cipher + clen;

	/*
	 * A stored body decrypts straight into `raw` when it may; anything
	 * else decrypts into scratch space of the body's size first.
	 */
	if (h->codec == WIRE_CODEC_NONE && h->raw_len <= raw_max &&
	    buf_reserve(raw, h->raw_len) == 0) {
		plain = raw->data;
		direct = 1;
	} else {
		if ((scratch = malloc(clen > 0 ? clen : 1)) == NULL)
			return WIRE_ENOMEM;
		plain = scratch;
	}

	wire_subkey(bkey, key, WIRE_KDF_BATCH_ID, WIRE_KDF_BATCH_CTX);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL,
	    cipher, clen, tag, data, h->header_len, h->nonce, bkey) != 0) {
		err = WIRE_EAUTH;
		goto out;
	}

	if (h->raw_len > raw_max || h->raw_len > raw->max) {
		err = WIRE_ETOOBIG;
		goto out;
	}
	if (!direct) {
		if (buf_reserve(raw, h->raw_len) == -1) {
			err = WIRE_ENOMEM;
			goto out;
		}
		if (h->codec == WIRE_CODEC_NONE)
			memcpy(raw->data, plain, clen);
		else if (h->codec == WIRE_CODEC_NFPACK ||
		    h->codec == WIRE_CODEC_NFPACK3) {
			if ((err = wire_unpack(h->codec, plain, clen,
			    raw->data, h->raw_len)) != WIRE_OK)
				goto out;
		} else if ((err = wire_inflate(plain, clen, raw->data,
		    h->raw_len, &got)) != WIRE_OK)
			goto out;
		else if (got != h->raw_len) {
			err = WIRE_EINFLATE;
			goto out;
		}
	}

	if ((uint32_t)crc32(0L, raw->data, h->raw_len) != h->crc32) {
		err = WIRE_ECRC;
		goto out;
	}
	if (wire_content_entries(raw->data, h->raw_len, &it) == -1 ||
	    wire_entries_check(it.p, it.left, h->count) == -1) {
		err = WIRE_EENTRY;
		goto out;
	}
	raw->len = h->raw_len;
	err = WIRE_OK;
out:
	sodium_memzero(bkey, sizeof(bkey));
	if (scratch != NULL) {
		sodium_memzero(scratch, clen);
		free(scratch);
	}
	if (err != WIRE_OK)
		raw->len = 0;
	return err;
}

/*
 * Acknowledgements.
 */

static const char *
wire_ack_word(enum wire_ack_status st)
{
	switch (st) {
	case WIRE_ACK_NEW:
		return "new";
	case WIRE_ACK_DUP:
		return "dup";
	}
	return NULL;
}

/* HMAC-SHA-256 under the ack subkey over `text` then the batch tag. */
static void
wire_ack_mac(uint8_t mac[crypto_auth_hmacsha256_BYTES], const char *text,
    size_t textlen, const uint8_t *tag, const uint8_t *key)
{
	crypto_auth_hmacsha256_state	 st;
	uint8_t				 akey[WIRE_KEY_LEN];

	wire_subkey(akey, key, WIRE_KDF_ACK_ID, WIRE_KDF_ACK_CTX);
	crypto_auth_hmacsha256_init(&st, akey, sizeof(akey));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)text, textlen);
	crypto_auth_hmacsha256_update(&st, tag, WIRE_TAG_LEN);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(akey, sizeof(akey));
}

/* "FPACK1 <client_id> <seq> <status> " into out; its length or -1. */
static int
wire_ack_prefix(char *out, size_t outlen, const char *client_id,
    uint64_t seq, enum wire_ack_status st)
{
	const char	*word;
	int		 n;

	if (wire_client_id_valid(client_id) == -1 ||
	    (word = wire_ack_word(st)) == NULL)
		return -1;
	n = snprintf(out, outlen, WIRE_ACK_PREFIX "%s %llu %s ", client_id,
	    (unsigned long long)seq, word);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return n;
}

int
wire_ack_format(char *out, size_t outlen, const char *client_id,
    uint64_t seq, enum wire_ack_status st, const uint8_t *tag,
    const uint8_t *key)
{
	uint8_t	 mac[crypto_auth_hmacsha256_BYTES];
	int	 n;

	if (outlen > 0)
		out[0] = '\0';
	if ((n = wire_ack_prefix(out, outlen, client_id, seq, st)) == -1)
		return -1;
	/* The hex digits, the newline and the NUL. */
	if (outlen - (size_t)n < WIRE_ACK_MAC_HEX + 2) {
		out[0] = '\0';
		return -1;
	}
	wire_ack_mac(mac, out, (size_t)n, tag, key);
	sodium_bin2hex(out + n, WIRE_ACK_MAC_HEX + 1, mac, sizeof(mac));
	n += WIRE_ACK_MAC_HEX;
	out[n++] = '\n';
	out[n] = '\0';
	return n;
}

static int
wire_hexval(unsigned char c, int upper_ok)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (upper_ok && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2*n hex digits into n bytes; -1 on any other character. */
static int
wire_hex_decode(const char *hex, uint8_t *bin, size_t n, int upper_ok)
{
	for (size_t i = 0; i < n; i++) {
		int hi = wire_hexval((unsigned char)hex[2 * i], upper_ok);
		int lo = wire_hexval((unsigned char)hex[2 * i + 1], upper_ok);

		if (hi < 0 || lo < 0)
			return -1;
		bin[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
wire_ack_verify(const char *body, size_t len, const char *client_id,
    uint64_t seq, const uint8_t *tag, const uint8_t *key,
    enum wire_ack_status *st)
{
	char			 prefix[WIRE_ACK_MAX];
	uint8_t			 got[crypto_auth_hmacsha256_BYTES];
	uint8_t			 want[crypto_auth_hmacsha256_BYTES];
	enum wire_ack_status	 cand[] = { WIRE_ACK_NEW, WIRE_ACK_DUP };
	int			 rv = -1;

	if (body == NULL || tag == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		int	 n;

		n = wire_ack_prefix(prefix, sizeof(prefix), client_id, seq,
		    cand[i]);
		if (n == -1)
			return -1;
		/* The prefix is public: a plain comparison is fine. */
		if (len != (size_t)n + WIRE_ACK_MAC_HEX + 1 ||
		    memcmp(body, prefix, (size_t)n) != 0)
			continue;
		if (body[len - 1] != '\n' ||
		    wire_hex_decode(body + n, got, sizeof(got), 0) == -1)
			break;
		wire_ack_mac(want, prefix, (size_t)n, tag, key);
		if (sodium_memcmp(got, want, sizeof(got)) == 0) {
			if (st != NULL)
				*st = cand[i];
			rv = 0;
		}
		break;
	}
	sodium_memzero(want, sizeof(want));
	return rv;
}

/*
 * Keys.
 */

int
wire_key_parse(const char *hex, uint8_t key[WIRE_KEY_LEN])
{
	size_t	 n;

	if (hex == NULL)
		return -1;
	n = strnlen(hex, 2 * WIRE_KEY_LEN + 3);
	/* One trailing newline (as a key file ends) is allowed. */
	if (n > 0 && hex[n - 1] == '\n') {
		n--;
		if (n > 0 && hex[n - 1] == '\r')
			n--;
	}
	if (n != 2 * WIRE_KEY_LEN ||
	    wire_hex_decode(hex, key, WIRE_KEY_LEN, 1) == -1) {
		sodium_memzero(key, WIRE_KEY_LEN);
		return -1;
	}
	return 0;
}

void
wire_key_format(const uint8_t key[WIRE_KEY_LEN],
    char hex[2 * WIRE_KEY_LEN + 1])
{
	sodium_bin2hex(hex, 2 * WIRE_KEY_LEN + 1, key, WIRE_KEY_LEN);
}
