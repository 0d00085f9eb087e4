/*
 * fuzzlib.c: the sealer and content walker of fuzzlib.h.
 *
 * Both are written from docs/PROTOCOL.md rather than from common/wire.c,
 * so that a mistake in wire.c shows up as a disagreement instead of being
 * repeated here.
 */
#include <string.h>

#include <sodium.h>

#include "fuzzlib.h"

#define FUZZLIB_FIXED	65	/* header bytes before the client id */
#define FUZZLIB_ENTRY	32	/* datagram entry header */

const uint8_t fuzzlib_key[WIRE_KEY_LEN] = {
	0xf0, 0x0d, 0xfe, 0xed, 0x01, 0x02, 0x03, 0x04,
	0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
	0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
	0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
};

const uint8_t fuzzlib_ack_tag[WIRE_TAG_LEN] = {
	0x7a, 0x61, 0x67, 0x21, 0x00, 0xff, 0x10, 0x20,
	0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0,
};

void
fuzzlib_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
	fflush(stderr);
	abort();
}

void
fuzzlib_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void
fuzzlib_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void
fuzzlib_put64(uint8_t *p, uint64_t v)
{
	fuzzlib_put32(p, (uint32_t)(v >> 32));
	fuzzlib_put32(p + 4, (uint32_t)v);
}

static uint32_t
fuzzlib_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
fuzzlib_batch_init(struct fuzzlib_batch *b, const char *client_id)
{
	memset(b, 0, sizeof(*b));
	b->client_id = client_id;
	b->version = WIRE_VERSION;
	b->codec = WIRE_CODEC_NONE;
	b->aead = WIRE_AEAD_XCHACHA20POLY1305;
	b->seq = FUZZLIB_SEQ0;
	b->created_us = FUZZLIB_NOW_US;
}

/*
 * PROTOCOL.md 1: the clear header, then the AEAD of the body with the
 * whole clear header as associated data, under the "fpbatch_" subkey.
 */
uint8_t *
fuzzlib_seal(const struct fuzzlib_batch *b, const uint8_t *key,
    size_t *outlen)
{
	uint8_t			 bkey[WIRE_KEY_LEN], nonce[WIRE_NONCE_LEN];
	uint8_t			*out;
	size_t			 idlen = strlen(b->client_id);
	size_t			 hlen = FUZZLIB_FIXED + idlen;
	unsigned long long	 clen;

	*outlen = 0;
	if (idlen > 255 || b->body_len > UINT32_MAX - WIRE_TAG_LEN)
		return NULL;
	if ((out = malloc(hlen + b->body_len + WIRE_TAG_LEN)) == NULL)
		return NULL;
	memcpy(out, WIRE_MAGIC, 4);
	out[4] = b->version;
	out[5] = b->codec;
	out[6] = b->aead;
	out[7] = b->flags;
	fuzzlib_put64(out + 8, b->seq);
	fuzzlib_put64(out + 16, b->created_us);
	fuzzlib_put32(out + 24, b->count);
	fuzzlib_put32(out + 28, b->raw_len);
	fuzzlib_put32(out + 32, b->crc);
	fuzzlib_put32(out + 36, (uint32_t)(b->body_len + WIRE_TAG_LEN));
	/* Repeatable: the nonce is a hash of the fields before it. */
	crypto_generichash(nonce, sizeof(nonce), out, 40, NULL, 0);
	memcpy(out + 40, nonce, sizeof(nonce));
	out[64] = (uint8_t)idlen;
	memcpy(out + FUZZLIB_FIXED, b->client_id, idlen);

	crypto_kdf_derive_from_key(bkey, sizeof(bkey), 1, "fpbatch_", key);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + hlen, &clen, b->body,
	    b->body_len, out, hlen, NULL, nonce, bkey);
	sodium_memzero(bkey, sizeof(bkey));
	*outlen = hlen + (size_t)clen;
	return out;
}

/* One entry at c[*off..len): 1 and advanced, or 0 if it is malformed. */
static int
fuzzlib_entry_at(const uint8_t *c, size_t len, size_t *off,
    struct fuzzlib_entry *e)
{
	const uint8_t	*p = c + *off;
	size_t		 left = len - *off;
	uint16_t	 plen;

	if (left < FUZZLIB_ENTRY)
		return 0;
	/* family 4 or 6, reserved byte 0 */
	if ((p[8] != 4 && p[8] != 6) || p[9] != 0)
		return 0;
	/* IPv4: "the rest are 0" (bytes 4..15 of the address field) */
	if (p[8] == 4)
		for (size_t i = 16; i < 28; i++)
			if (p[i] != 0)
				return 0;
	plen = (uint16_t)(p[30] << 8 | p[31]);
	if (plen == 0 || plen > left - FUZZLIB_ENTRY)
		return 0;
	e->off = *off + FUZZLIB_ENTRY;
	e->len = plen;
	*off += FUZZLIB_ENTRY + plen;
	return 1;
}

void
fuzzlib_walk(const uint8_t *c, size_t len, struct fuzzlib_walk *w,
    struct fuzzlib_entry *out, size_t max)
{
	struct fuzzlib_entry	 e;
	size_t			 off;
	uint32_t		 hl;

	memset(w, 0, sizeof(*w));
	if (len < 4)
		return;
	hl = fuzzlib_get32(c);
	if (hl > len - 4)
		return;
	w->health_ok = 1;
	off = 4 + (size_t)hl;
	while (fuzzlib_entry_at(c, len, &off, &e)) {
		if (out != NULL && w->entries < max)
			out[w->entries] = e;
		w->entries++;
	}
	w->clean = off == len;
}

/*
 * The order of PROTOCOL.md 3 within wire_open(): header plausibility
 * (raw_len at least 4, flags, count against raw_len), then after the tag
 * the size cap, the CRC (true here), then the entries.
 */
enum wire_err
fuzzlib_expect(const uint8_t *content, size_t len, uint32_t count,
    uint8_t flags, size_t raw_max)
{
	struct fuzzlib_walk	 w;

	if (len < 4)
		return WIRE_ELENGTH;
	if ((flags & WIRE_FLAG_HEARTBEAT) && count != 0)
		return WIRE_EENTRY;
	if ((uint64_t)count * FUZZLIB_ENTRY > len - 4)
		return WIRE_EENTRY;
	if (len > raw_max)
		return WIRE_ETOOBIG;
	fuzzlib_walk(content, len, &w, NULL, 0);
	if (!w.health_ok || !w.clean || w.entries != count)
		return WIRE_EENTRY;
	return WIRE_OK;
}
