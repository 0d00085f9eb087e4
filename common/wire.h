/*
 * wire.h: the flowpost batch format (docs/PROTOCOL.md is the specification).
 *
 * A batch is what the client seals, keeps in its spool and POSTs, and what
 * the gateway opens and re-emits.  Layout (all integers big-endian):
 *
 *   header   64 bytes fixed + client id        authenticated, not encrypted
 *   sealed   AEAD(codec(content)) + 16-byte tag
 *
 * content (before compression):
 *   u32 health_len, health block (opaque here, see health.h)
 *   entries: 32-byte entry header + payload, `count` times
 *
 * Opening a batch authenticates it first, then inflates it under a caller
 * given cap, then checks the CRC and walks every entry; nothing of a batch is
 * trusted before wire_open() returned 0.
 */
#ifndef FLOWPOST_WIRE_H
#define FLOWPOST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define WIRE_MAGIC		"FPB1"
#define WIRE_VERSION		1
#define WIRE_HEADER_FIXED	65	/* up to and including client_id_len */
#define WIRE_CLIENT_ID_MAX	64
#define WIRE_KEY_LEN		32
#define WIRE_NONCE_LEN		24
#define WIRE_TAG_LEN		16
#define WIRE_ENTRY_HEADER	32
#define WIRE_DATAGRAM_MAX	65535
#define WIRE_HEADER_MAX		(WIRE_HEADER_FIXED + WIRE_CLIENT_ID_MAX)

enum wire_codec {
	WIRE_CODEC_NONE = 0,	/* stored; for tests and tiny batches */
	WIRE_CODEC_ZLIB = 1,	/* zlib stream (RFC 1950) of the content */
	WIRE_CODEC_NFPACK = 2,	/* zlib stream of the nfpack transform */
	WIRE_CODEC_NFPACK3 = 3,	/* zlib stream of the nfpack3 transform */
};

enum wire_aead {
	WIRE_AEAD_XCHACHA20POLY1305 = 1,	/* libsodium, IETF variant */
};

/* Header flags. */
#define WIRE_FLAG_HEARTBEAT	0x01	/* no entries, only a health block */

enum wire_err {
	WIRE_OK = 0,
	WIRE_ETRUNC,		/* shorter than its header or lengths say */
	WIRE_EMAGIC,		/* not a flowpost batch */
	WIRE_EVERSION,		/* format version we do not speak */
	WIRE_ECODEC,		/* unknown codec or AEAD id */
	WIRE_ECLIENT,		/* client id empty, too long or bad characters */
	WIRE_ELENGTH,		/* sealed_len disagrees with the body */
	WIRE_EAUTH,		/* AEAD tag does not verify */
	WIRE_ETOOBIG,		/* raw_len over the caller's cap */
	WIRE_EINFLATE,		/* decompression failed or size mismatch */
	WIRE_ECRC,		/* CRC32 of content does not match */
	WIRE_EENTRY,		/* an entry is malformed or count is wrong */
	WIRE_ENOMEM,
};

struct wire_header {
	uint8_t		version;
	uint8_t		codec;
	uint8_t		aead;
	uint8_t		flags;
	uint64_t	seq;
	uint64_t	created_us;	/* unix time, microseconds */
	uint32_t	count;		/* entries */
	uint32_t	raw_len;	/* content length before compression */
	uint32_t	crc32;		/* zlib crc32 of the content */
	uint32_t	sealed_len;	/* ciphertext + tag */
	uint8_t		nonce[WIRE_NONCE_LEN];
	char		client_id[WIRE_CLIENT_ID_MAX + 1];
	size_t		header_len;	/* bytes before the sealed body */
};

/* One forwarded datagram.  `payload` points into the caller's buffer. */
struct wire_entry {
	uint64_t	 recv_us;	/* unix time the client received it */
	uint8_t		 family;	/* 4 or 6 */
	uint8_t		 addr[16];	/* IPv4 uses the first 4 bytes */
	uint16_t	 src_port;	/* exporter's UDP source port */
	uint16_t	 dst_port;	/* client listener port */
	uint16_t	 len;
	const uint8_t	*payload;
};

const char	*wire_strerror(enum wire_err e);

/* 0 if `id` is 1..64 characters of [A-Za-z0-9._-], else -1. */
int		 wire_client_id_valid(const char *id);

/*
 * Content building (client receive path).  Entries are appended to a buf
 * that holds only entries; the health block is added at seal time.
 * Returns -1 if the buf's ceiling would be exceeded.
 */
int		 wire_entry_append(struct buf *entries, const struct wire_entry *e);

static inline size_t
wire_entry_size(size_t payload_len)
{
	return WIRE_ENTRY_HEADER + payload_len;
}

struct wire_seal_args {
	const char	*client_id;
	uint64_t	 seq;
	uint64_t	 created_us;
	uint8_t		 flags;
	uint8_t		 codec;		/* enum wire_codec */
	int		 zlevel;	/* zlib level 0..9 */
	const uint8_t	*health;	/* may be NULL when health_len is 0 */
	size_t		 health_len;
	const uint8_t	*entries;	/* from wire_entry_append() */
	size_t		 entries_len;
	uint32_t	 count;
	const uint8_t	*key;		/* WIRE_KEY_LEN bytes */
};

/*
 * Builds a complete sealed batch into `out` (reset first).  `out`'s ceiling
 * bounds the result.  A random nonce is drawn from libsodium.  Content
 * that codec 3 cannot fit under the ceiling (it hardly compresses, and
 * the transform made it longer) is sealed as codec 1 instead; the header
 * says which.
 */
enum wire_err	 wire_seal(const struct wire_seal_args *a, struct buf *out);
/*
 * wire_seal() in two steps, for sealers that compress batches in parallel
 * but must number them in order: wire_seal_prepare() does the costly part
 * (transform, deflate, header with a->seq as a placeholder) and leaves the
 * body in clear; wire_seal_finish() writes the final sequence number and a
 * fresh nonce into the header and encrypts the body in place.  A prepared
 * batch must be finished before anything else uses `out`.
 */
enum wire_err	 wire_seal_prepare(const struct wire_seal_args *a,
		    struct buf *out);
enum wire_err	 wire_seal_finish(struct buf *out, uint64_t seq,
		    const uint8_t *key);

/*
 * Parses and checks the clear header only: magic, version, codec, AEAD,
 * client id, and that sealed_len matches `len`.  Needs no key; the gateway
 * uses it to find which key to open the batch with.
 */
enum wire_err	 wire_parse_header(const uint8_t *data, size_t len,
		    struct wire_header *h);

/*
 * Authenticates, decrypts, inflates (never beyond `raw_max` bytes, checked
 * while inflating), checks the CRC and walks every entry.  On success `raw`
 * holds the content and `h` the header.  `raw`'s own ceiling also applies.
 */
enum wire_err	 wire_open(const uint8_t *data, size_t len, const uint8_t *key,
		    size_t raw_max, struct wire_header *h, struct buf *raw);

/* The 16-byte AEAD tag of a sealed batch (its last bytes): names it in acks. */
const uint8_t	*wire_tag(const uint8_t *data, size_t len);

/*
 * Iterating an opened content: wire_content_health() returns the health
 * block; wire_content_entries() positions a cursor on the first entry;
 * wire_entry_next() returns 1 with an entry, 0 at the end, -1 on error.
 */
struct wire_iter {
	const uint8_t	*p;
	size_t		 left;
};

int		 wire_content_health(const uint8_t *raw, size_t raw_len,
		    const uint8_t **health, size_t *health_len);
int		 wire_content_entries(const uint8_t *raw, size_t raw_len,
		    struct wire_iter *it);
int		 wire_entry_next(struct wire_iter *it, struct wire_entry *e);

/*
 * Acknowledgements.  The body is one text line:
 *   FPACK1 <client_id> <seq> <new|dup> <64 hex digits>\n
 * The hex is HMAC-SHA-256, under a key derived from the client's key, over
 * "FPACK1 <client_id> <seq> <status> " followed by the batch's AEAD tag.
 */
enum wire_ack_status {
	WIRE_ACK_NEW = 0,	/* forwarded now */
	WIRE_ACK_DUP = 1,	/* forwarded before; not forwarded again */
};

/*
 * Longest line plus its NUL: "FPACK1 " 7, client id 64, space, seq 20
 * digits, space, status 3, space, MAC 64, newline: 162 bytes.
 */
#define WIRE_ACK_MAX	168

/* Writes the body into out (NUL-terminated); returns its length or -1. */
int		 wire_ack_format(char *out, size_t outlen, const char *client_id,
		    uint64_t seq, enum wire_ack_status st, const uint8_t *tag,
		    const uint8_t *key);

/*
 * 0 if `body` is exactly an acknowledgement of (client_id, seq, tag) with a
 * valid MAC under `key`; the status goes to *st.  -1 for anything else.
 */
int		 wire_ack_verify(const char *body, size_t len,
		    const char *client_id, uint64_t seq, const uint8_t *tag,
		    const uint8_t *key, enum wire_ack_status *st);

/* Key handling: 64 hex digits <-> 32 bytes. */
int		 wire_key_parse(const char *hex, uint8_t key[WIRE_KEY_LEN]);
void		 wire_key_format(const uint8_t key[WIRE_KEY_LEN],
		    char hex[2 * WIRE_KEY_LEN + 1]);

/* Calls sodium_init(); -1 if libsodium cannot start. */
int		 wire_init(void);

#endif
