/*
 * fuzz_nfpack.c: libFuzzer target for the transforms of codec 2
 * (common/nfpack.c) and codec 3 (common/nfpack3.c).
 *
 * The input is used twice, under each transform:
 *  - as a transformed stream: the decoder must not crash or write past
 *    its output space (a guard zone after it is checked), and what it
 *    accepts must transform back to a stream that decodes to the same
 *    content;
 *  - as material for a content of valid entries: the first byte is the
 *    health length, then each entry takes a kind byte (v5 built from the
 *    bytes, with the right version and count, and with every second
 *    record the reply of the one before when the source port is odd; or
 *    the bytes as they are), a length and the bytes.
 *    decode(encode(content)) must equal content, prefixes of the
 *    transformed stream must be refused, and the stream with one byte
 *    changed must be refused or decode to a content that encodes back.
 */
#include <string.h>

#include "buf.h"
#include "fuzzlib.h"
#include "nfpack.h"
#include "nfpack3.h"
#include "wire.h"

#define OUT_MAX		(1u << 18)
#define GUARD		64

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The two transforms behind one interface. */
struct codec {
	size_t	 (*bound)(size_t);
	int	 (*encode)(const uint8_t *, size_t, const uint8_t *, size_t,
		    uint8_t *, size_t, size_t *);
	int	 (*decode)(const uint8_t *, size_t, uint8_t *, size_t,
		    size_t *);
};

static const struct codec codecs[] = {
	{ nfpack_bound, nfpack_encode, nfpack_decode },
	{ nfpack3_bound, nfpack3_encode, nfpack3_decode },
};

static uint8_t	out[OUT_MAX + GUARD];

/* An accepted content must encode again to a stream that gives it back. */
static void
reencode(const struct codec *c, const uint8_t *content, size_t used)
{
	uint8_t	*again, *back;
	size_t	 hl, bound, plen = 0, used2 = 0;

	FUZZ_CHECK(used >= 4);
	hl = (size_t)content[0] << 24 | (size_t)content[1] << 16 |
	    (size_t)content[2] << 8 | content[3];
	FUZZ_CHECK(hl <= used - 4);
	bound = c->bound(used);
	again = malloc(bound);
	back = malloc(used);
	FUZZ_CHECK(again != NULL && back != NULL);
	FUZZ_CHECK(c->encode(content + 4, hl, content + 4 + hl, used - 4 - hl,
	    again, bound, &plen) == 0);
	FUZZ_CHECK(c->decode(again, plen, back, used, &used2) == 0);
	FUZZ_CHECK(used2 == used && memcmp(back, content, used) == 0);
	free(back);
	free(again);
}

static void
decode_arbitrary(const struct codec *c, const uint8_t *data, size_t size)
{
	size_t	 used = 0, outlen = size * 4 < OUT_MAX ? size * 4 : OUT_MAX;

	memset(out + outlen, 0x5a, GUARD);
	if (c->decode(data, size, out, outlen, &used) == 0) {
		FUZZ_CHECK(used <= outlen);
		reencode(c, out, used);
	}
	for (size_t i = 0; i < GUARD; i++)
		FUZZ_CHECK(out[outlen + i] == 0x5a);
}

/*
 * Turns every second record into the reply of the one before it, as flow
 * probes export connections (codec 3 codes these as one op bit), with the
 * same times if `times`.
 */
static void
mirror(uint8_t *pl, size_t n, int times)
{
	for (size_t j = 1; j < n; j += 2) {
		uint8_t		*r = pl + 24 + 48 * j;
		const uint8_t	*q = r - 48;

		memcpy(r, q + 4, 4);
		memcpy(r + 4, q, 4);
		memcpy(r + 32, q + 34, 2);
		memcpy(r + 34, q + 32, 2);
		r[38] = q[38];
		if (times)
			memcpy(r + 24, q + 24, 8);
	}
}

/* Builds entries from the input; returns the health length used. */
static size_t
build(const uint8_t *data, size_t size, struct buf *entries, size_t *off)
{
	struct wire_entry	 e;
	uint8_t			 pl[24 + 48 * 30];
	size_t			 hl, i = 0;

	if (size == 0)
		return 0;
	hl = data[i++];
	if (hl > size - i)
		hl = size - i;
	*off = i;
	i += hl;
	while (size - i >= 4) {
		uint8_t	 kind = data[i];
		size_t	 len, take;

		memset(&e, 0, sizeof(e));
		e.recv_us = (uint64_t)data[i + 1] << 56 | (uint64_t)data[i + 2] *
		    1000003u;
		e.family = data[i + 1] & 1 ? 6 : 4;
		memcpy(e.addr, data + i, 4);
		e.src_port = (uint16_t)(data[i + 2] << 8 | data[i + 3]);
		e.dst_port = 2055;
		i += 4;
		if (kind & 1) {
			size_t n = (size_t)(kind >> 1) % 30 + 1;

			len = 24 + 48 * n;
			take = size - i < len ? size - i : len;
			memset(pl, 0, len);
			memcpy(pl, data + i, take);
			pl[0] = 0;
			pl[1] = 5;
			pl[2] = 0;
			pl[3] = (uint8_t)n;
			i += take;
			if (e.src_port & 1)
				mirror(pl, n, e.src_port & 2);
		} else {
			len = (size_t)(kind >> 1) * 7 + 1;
			take = size - i < len ? size - i : len;
			if (take == 0)
				break;
			memcpy(pl, data + i, take);
			len = take;
			i += take;
		}
		e.len = (uint16_t)len;
		e.payload = pl;
		if (wire_entry_append(entries, &e) == -1)
			break;
	}
	return hl;
}

static void
roundtrip(const struct codec *c, const uint8_t *data, size_t size)
{
	struct buf	 entries;
	uint8_t		*packed = NULL, *back = NULL;
	size_t		 hl, hoff = 0, clen, bound, plen = 0, used = 0;

	if (buf_init(&entries, 0, OUT_MAX) == -1)
		return;
	hl = build(data, size, &entries, &hoff);
	clen = 4 + hl + entries.len;
	bound = c->bound(clen);
	packed = malloc(bound);
	back = malloc(clen);
	FUZZ_CHECK(packed != NULL && back != NULL);
	FUZZ_CHECK(c->encode(hl ? data + hoff : NULL, hl, entries.data,
	    entries.len, packed, bound, &plen) == 0);
	FUZZ_CHECK(plen <= bound);
	FUZZ_CHECK(c->decode(packed, plen, back, clen, &used) == 0);
	FUZZ_CHECK(used == clen);
	FUZZ_CHECK(back[0] == (uint8_t)(hl >> 24) && back[3] == (uint8_t)hl);
	FUZZ_CHECK(hl == 0 || memcmp(back + 4, data + hoff, hl) == 0);
	FUZZ_CHECK(entries.len == 0 ||
	    memcmp(back + 4 + hl, entries.data, entries.len) == 0);
	/* A few prefixes (all of them would be quadratic). */
	for (size_t n = 0; n < plen; n += 1 + plen / 16)
		FUZZ_CHECK(c->decode(packed, n, back, clen, &used) == -1);
	FUZZ_CHECK(c->decode(packed, plen - 1, back, clen, &used) == -1);
	/*
	 * One byte of a valid stream changed (arbitrary bytes rarely get
	 * past the length checks): refused, or a content that encodes back.
	 */
	if (size >= 2) {
		size_t at = ((size_t)data[size - 2] << 8 | data[size - 1]) %
		    plen;

		packed[at] ^= (uint8_t)(data[size - 1] | 1);
		if (c->decode(packed, plen, back, clen, &used) == 0)
			reencode(c, back, used);
	}
	free(back);
	free(packed);
	buf_free(&entries);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t k = 0; k < sizeof(codecs) / sizeof(codecs[0]); k++) {
		decode_arbitrary(&codecs[k], data, size);
		roundtrip(&codecs[k], data, size);
	}
	return 0;
}
