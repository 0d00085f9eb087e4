/*
 * fuzz_wire.c: libFuzzer target for the batch format (common/wire.c).
 *
 * Each input goes through four doors:
 *  (a) wire_parse_header() on the input as a batch;
 *  (b) wire_open() on the input as a batch, with the fixed key;
 *  (c) the input as content, sealed here under the fixed key, stored and
 *      deflated, with the right count and with wrong counts and a wrong
 *      CRC; and the input as the zlib stream itself.  Random bytes never
 *      pass the AEAD, so this is what lets the inflate, the CRC check and
 *      the entry walk see fuzzed bytes.  An independent walker
 *      (fuzzlib.c) says what wire_open() must answer;
 *  (d) wire_ack_verify() on the input as an acknowledgement body;
 *  (e) the input as content given to wire_seal() and wire_entry_append();
 *  (f) wire_key_parse() on the input as text.
 */
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "buf.h"
#include "fuzzlib.h"
#include "wire.h"

#define RAW_CEIL	(2u * FUZZLIB_RAW_MAX)	/* raw buf: raw_max binds */

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Oracle output space for door (c)'s own inflate; allocated once. */
static uint8_t	*inflated;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (wire_init() == -1)
		abort();
	if ((inflated = malloc(FUZZLIB_RAW_MAX + 1)) == NULL)
		abort();
	return 0;
}

/* What every successful wire_open() must satisfy. */
static void
check_opened(const uint8_t *data, size_t size, const struct wire_header *h,
    const struct buf *raw)
{
	struct fuzzlib_walk	 w;
	struct wire_iter	 it;
	struct wire_entry	 e;
	const uint8_t		*health;
	size_t			 hlen;
	uint32_t		 n = 0;
	int			 r;

	FUZZ_CHECK(raw->len == h->raw_len);
	FUZZ_CHECK(raw->len <= FUZZLIB_RAW_MAX);
	FUZZ_CHECK(h->header_len + h->sealed_len == size);
	FUZZ_CHECK((uint32_t)crc32(0L, raw->data, (uInt)raw->len) ==
	    h->crc32);
	FUZZ_CHECK(wire_tag(data, size) == data + size - WIRE_TAG_LEN);
	fuzzlib_walk(raw->data, raw->len, &w, NULL, 0);
	FUZZ_CHECK(w.health_ok && w.clean && w.entries == h->count);

	/* The iterators agree with the walk and stay inside the content. */
	FUZZ_CHECK(wire_content_health(raw->data, raw->len, &health,
	    &hlen) == 0);
	FUZZ_CHECK(health == raw->data + 4 && 4 + hlen <= raw->len);
	FUZZ_CHECK(wire_content_entries(raw->data, raw->len, &it) == 0);
	while ((r = wire_entry_next(&it, &e)) == 1) {
		FUZZ_CHECK(e.payload > raw->data &&
		    e.payload + e.len <= raw->data + raw->len);
		n++;
	}
	FUZZ_CHECK(r == 0 && n == h->count);
}

/* (a) and (b): the input as a sealed batch. */
static void
door_batch(const uint8_t *data, size_t size)
{
	struct wire_header	 h, h2;
	struct buf		 raw;
	enum wire_err		 e, e2;

	e = wire_parse_header(data, size, &h);
	FUZZ_CHECK(wire_strerror(e) != NULL);
	if (e == WIRE_OK) {
		FUZZ_CHECK(wire_client_id_valid(h.client_id) == 0);
		FUZZ_CHECK(h.header_len == 65 + strlen(h.client_id));
		FUZZ_CHECK(h.header_len + h.sealed_len == size);
		FUZZ_CHECK(h.sealed_len >= WIRE_TAG_LEN && h.raw_len >= 4);
		FUZZ_CHECK(memcmp(data, WIRE_MAGIC, 4) == 0);
	}

	if (buf_init(&raw, 0, RAW_CEIL) == -1)
		abort();
	e2 = wire_open(data, size, fuzzlib_key, FUZZLIB_RAW_MAX, &h2, &raw);
	/* wire_open() parses the same header first. */
	if (e != WIRE_OK)
		FUZZ_CHECK(e2 == e);
	if (e2 == WIRE_OK)
		check_opened(data, size, &h2, &raw);
	else
		FUZZ_CHECK(raw.len == 0);
	buf_free(&raw);
}

/* Seals one batch, opens it, and compares with what must come out. */
static void
open_expect_cap(const struct fuzzlib_batch *b, enum wire_err want,
    const uint8_t *content, size_t raw_max, size_t raw_ceil)
{
	struct wire_header	 h;
	struct buf		 raw;
	uint8_t			*batch;
	size_t			 blen;
	enum wire_err		 got;

	if ((batch = fuzzlib_seal(b, fuzzlib_key, &blen)) == NULL)
		return;		/* out of memory: nothing to learn */
	if (buf_init(&raw, 0, raw_ceil) == -1)
		abort();
	got = wire_open(batch, blen, fuzzlib_key, raw_max, &h, &raw);
	if (got != want)
		fprintf(stderr, "wire_open: got %d (%s), want %d (%s)\n",
		    (int)got, wire_strerror(got), (int)want,
		    wire_strerror(want));
	FUZZ_CHECK(got == want);
	if (got == WIRE_OK) {
		check_opened(batch, blen, &h, &raw);
		FUZZ_CHECK(h.seq == b->seq && h.created_us == b->created_us);
		FUZZ_CHECK(strcmp(h.client_id, b->client_id) == 0);
		if (content != NULL)
			FUZZ_CHECK(memcmp(raw.data, content, raw.len) == 0);
	} else
		FUZZ_CHECK(raw.len == 0);
	buf_free(&raw);
	free(batch);
}

static void
open_expect(const struct fuzzlib_batch *b, enum wire_err want,
    const uint8_t *content)
{
	open_expect_cap(b, want, content, FUZZLIB_RAW_MAX, RAW_CEIL);
}

/*
 * The size caps: content one byte over raw_max, or over the raw buffer's
 * own ceiling, is refused after the tag and before anything is decoded.
 */
static void
open_expect_caps(const struct fuzzlib_batch *b, const uint8_t *content,
    size_t len)
{
	enum wire_err	 want;

	if (len < 5)
		return;
	want = fuzzlib_expect(content, len, b->count, b->flags, len - 1);
	open_expect_cap(b, want, NULL, len - 1, RAW_CEIL);
	open_expect_cap(b, want, NULL, FUZZLIB_RAW_MAX, len - 1);
}

/* (c), first half: the input is the content; seal it stored and deflated. */
static void
door_content(const uint8_t *data, size_t size)
{
	struct fuzzlib_batch	 b;
	struct fuzzlib_walk	 w;
	uint8_t			*z = NULL;
	uLongf			 zlen;
	uint32_t		 crc, count;
	/* A heartbeat when the first byte says so: count must then be 0. */
	uint8_t			 flags = size > 0 && (data[0] & 0x80) ?
				    WIRE_FLAG_HEARTBEAT : 0;

	if (size > UINT32_MAX - 64)
		return;
	fuzzlib_walk(data, size, &w, NULL, 0);
	count = w.entries;
	crc = (uint32_t)crc32(0L, data, (uInt)size);

	fuzzlib_batch_init(&b, FUZZLIB_CLIENT);
	b.flags = flags;
	b.count = count;
	b.raw_len = (uint32_t)size;
	b.crc = crc;
	b.body = data;
	b.body_len = size;
	open_expect(&b, fuzzlib_expect(data, size, count, flags,
	    FUZZLIB_RAW_MAX), data);

	/* A count one off either way, and a CRC that is wrong. */
	b.count = count + 1;
	open_expect(&b, fuzzlib_expect(data, size, count + 1, flags,
	    FUZZLIB_RAW_MAX), data);
	if (count > 0) {
		b.count = count - 1;
		open_expect(&b, fuzzlib_expect(data, size, count - 1, flags,
		    FUZZLIB_RAW_MAX), data);
	}
	b.count = count;
	open_expect_caps(&b, data, size);
	b.crc = crc ^ 1;
	if (fuzzlib_expect(data, size, count, flags, FUZZLIB_RAW_MAX) ==
	    WIRE_OK)
		open_expect(&b, WIRE_ECRC, NULL);
	b.crc = crc;

	/* The same content deflated: wire_open() must inflate it back. */
	zlen = compressBound((uLong)size);
	if ((z = malloc(zlen)) == NULL ||
	    compress2(z, &zlen, data, (uLong)size, 1) != Z_OK)
		goto out;
	b.codec = WIRE_CODEC_ZLIB;
	b.body = z;
	b.body_len = zlen;
	open_expect(&b, fuzzlib_expect(data, size, count, flags,
	    FUZZLIB_RAW_MAX), data);
	open_expect_caps(&b, data, size);
out:
	free(z);
}

/*
 * (c), second half: the input is the zlib stream.  zlib's one-shot
 * uncompress2() decides independently whether it is exactly one complete
 * stream; only then may wire_open() inflate it.
 */
static void
door_stream(const uint8_t *data, size_t size)
{
	struct fuzzlib_batch	 b;
	struct fuzzlib_walk	 w;
	uLongf			 dlen = FUZZLIB_RAW_MAX + 1;
	uLong			 slen = (uLong)size;
	int			 zr;

	if (size > UINT32_MAX - 64)
		return;
	zr = uncompress2(inflated, &dlen, data, &slen);
	if (zr == Z_MEM_ERROR)
		return;

	fuzzlib_batch_init(&b, FUZZLIB_CLIENT);
	b.codec = WIRE_CODEC_ZLIB;
	b.body = data;
	b.body_len = size;

	if (zr == Z_OK && slen == size) {
		/* A good stream: the content it holds decides. */
		fuzzlib_walk(inflated, dlen, &w, NULL, 0);
		b.count = w.entries;
		b.raw_len = (uint32_t)dlen;
		b.crc = (uint32_t)crc32(0L, inflated, (uInt)dlen);
		open_expect(&b, fuzzlib_expect(inflated, dlen, w.entries, 0,
		    FUZZLIB_RAW_MAX), NULL);

		/* Claiming one byte less (a bomb) or one more must fail. */
		b.count = 0;
		b.raw_len = (uint32_t)dlen - 1;
		if (dlen - 1 <= FUZZLIB_RAW_MAX)
			open_expect(&b, dlen - 1 < 4 ? WIRE_ELENGTH :
			    WIRE_EINFLATE, NULL);
		b.raw_len = (uint32_t)dlen + 1;
		if (dlen + 1 <= FUZZLIB_RAW_MAX)
			open_expect(&b, dlen + 1 < 4 ? WIRE_ELENGTH :
			    WIRE_EINFLATE, NULL);
		return;
	}

	/*
	 * Damaged, truncated, followed by other bytes, or bigger than the
	 * cap: whatever raw_len is claimed, inflating must fail.
	 */
	b.count = 0;
	b.raw_len = size < 64 ? 256 : (uint32_t)(4 * size);
	if (b.raw_len > FUZZLIB_RAW_MAX)
		b.raw_len = FUZZLIB_RAW_MAX;
	open_expect(&b, WIRE_EINFLATE, NULL);
}

/*
 * (e): the input as content handed to wire_seal(), split into its health
 * block and its entries.  wire_seal() must refuse malformed entries, and
 * what it seals must open to the same content; the entries rebuilt with
 * wire_entry_append() must be the same bytes.
 */
static void
door_seal(const uint8_t *data, size_t size)
{
	struct wire_seal_args	 a;
	struct fuzzlib_walk	 w;
	struct wire_header	 h;
	struct wire_iter	 it;
	struct wire_entry	 e;
	struct buf		 out, raw, rebuilt;
	size_t			 hl;
	enum wire_err		 got;

	fuzzlib_walk(data, size, &w, NULL, 0);
	if (!w.health_ok)
		return;
	hl = (size_t)data[0] << 24 | (size_t)data[1] << 16 |
	    (size_t)data[2] << 8 | data[3];

	memset(&a, 0, sizeof(a));
	a.client_id = FUZZLIB_CLIENT;
	a.seq = FUZZLIB_SEQ0;
	a.created_us = FUZZLIB_NOW_US;
	a.codec = size > 4 && (data[size - 1] & 1) ? WIRE_CODEC_ZLIB :
	    WIRE_CODEC_NONE;
	a.zlevel = size > 4 ? (int)(data[size - 1] >> 1) % 11 - 1 : 0;
	a.health = hl > 0 ? data + 4 : NULL;
	a.health_len = hl;
	a.entries = data + 4 + hl;
	a.entries_len = size - 4 - hl;
	a.count = w.entries;
	a.key = fuzzlib_key;
	if (buf_init(&out, 0, RAW_CEIL) == -1 ||
	    buf_init(&raw, 0, RAW_CEIL) == -1 ||
	    buf_init(&rebuilt, 0, RAW_CEIL) == -1)
		abort();

	got = wire_seal(&a, &out);
	FUZZ_CHECK(got == (w.clean ? WIRE_OK : WIRE_EENTRY));
	if (got == WIRE_OK) {
		FUZZ_CHECK(wire_open(out.data, out.len, fuzzlib_key,
		    FUZZLIB_RAW_MAX, &h, &raw) == WIRE_OK);
		FUZZ_CHECK(raw.len == size &&
		    memcmp(raw.data, data, size) == 0);
		FUZZ_CHECK(h.codec == a.codec && h.count == a.count);

		it.p = a.entries;
		it.left = a.entries_len;
		while (wire_entry_next(&it, &e) == 1)
			FUZZ_CHECK(wire_entry_append(&rebuilt, &e) == 0);
		FUZZ_CHECK(rebuilt.len == a.entries_len && (rebuilt.len == 0 ||
		    memcmp(rebuilt.data, a.entries, rebuilt.len) == 0));
	}
	buf_free(&rebuilt);
	buf_free(&raw);
	buf_free(&out);
}

/* (f): the input as a hex key, as keys files and key files hold them. */
static void
door_key(const uint8_t *data, size_t size)
{
	char	 text[80], hex[2 * WIRE_KEY_LEN + 1];
	uint8_t	 key[WIRE_KEY_LEN];
	size_t	 n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

	memcpy(text, data, n);
	text[n] = '\0';
	if (wire_key_parse(text, key) == -1)
		return;
	/* Accepted: 64 hex digits, perhaps a line end, and nothing else. */
	wire_key_format(key, hex);
	FUZZ_CHECK(strncasecmp(hex, text, 2 * WIRE_KEY_LEN) == 0);
	FUZZ_CHECK(text[64] == '\0' || strcmp(text + 64, "\n") == 0 ||
	    strcmp(text + 64, "\r\n") == 0);
}

/* (d): the input as an acknowledgement body. */
static void
door_ack(const uint8_t *data, size_t size)
{
	char			 id[WIRE_CLIENT_ID_MAX + 1], want[WIRE_ACK_MAX];
	const char		*ids[2] = { FUZZLIB_CLIENT, id };
	const char		*body = (const char *)data;
	const char		*sp1, *sp2;
	enum wire_ack_status	 st;
	size_t			 n;
	int			 wlen;

	/* Also with the client id the input names (its second word). */
	id[0] = '\0';
	if ((sp1 = memchr(body, ' ', size)) != NULL &&
	    (sp2 = memchr(sp1 + 1, ' ', size - (size_t)(sp1 + 1 - body))) !=
	    NULL && (n = (size_t)(sp2 - sp1 - 1)) <= WIRE_CLIENT_ID_MAX) {
		memcpy(id, sp1 + 1, n);
		id[n] = '\0';
	}

	for (size_t i = 0; i < 2; i++) {
		if (wire_ack_verify(body, size, ids[i], FUZZLIB_ACK_SEQ,
		    fuzzlib_ack_tag, fuzzlib_key, &st) == -1)
			continue;
		/* Accepted: it must be exactly the line the gateway writes. */
		wlen = wire_ack_format(want, sizeof(want), ids[i],
		    FUZZLIB_ACK_SEQ, st, fuzzlib_ack_tag, fuzzlib_key);
		FUZZ_CHECK(wlen > 0 && (size_t)wlen == size &&
		    memcmp(want, body, size) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	door_batch(data, size);
	door_content(data, size);
	door_stream(data, size);
	door_ack(data, size);
	door_seal(data, size);
	door_key(data, size);
	return 0;
}
