/*
 * fuzzlib.h: what the fuzz targets and the seed generator share.
 *
 * A fixed key and client, an independent sealer written from
 * docs/PROTOCOL.md 1 and 1.1 (it seals any header values and any body, so
 * that fuzzed bytes reach the inflate, CRC and entry walk of wire_open()),
 * and an independent walker of the content layout (PROTOCOL.md 1.2) that
 * the targets use as an oracle for what wire_open() must answer.
 *
 * Nothing here keeps state between calls: every target input starts from
 * the same process state.
 */
#ifndef FLOWPOST_FUZZLIB_H
#define FLOWPOST_FUZZLIB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wire.h"

/* The one client the targets know, with its key as bytes and as hex. */
#define FUZZLIB_CLIENT		"fz-01"
#define FUZZLIB_KEY_HEX \
	"f00dfeed0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
extern const uint8_t	fuzzlib_key[WIRE_KEY_LEN];

/* The acknowledgement the wire target verifies its input against. */
#define FUZZLIB_ACK_SEQ		UINT64_C(1783627776000001)
extern const uint8_t	fuzzlib_ack_tag[WIRE_TAG_LEN];

/* "Now" for the gateway: 2023-11-14T22:13:20Z, fixed so runs repeat. */
#define FUZZLIB_NOW_US		UINT64_C(1700000000000000)
#define FUZZLIB_SEQ0		(UINT64_C(1700000000) << 20)

#define FUZZLIB_RAW_MAX		(1u << 20)	/* raw_max for wire_open() */

/*
 * A failed property: says which and where, then aborts so that libFuzzer
 * keeps the input as a crash.
 */
#define FUZZ_CHECK(expr) do {						\
	if (!(expr))							\
		fuzzlib_fail(__FILE__, __LINE__, #expr);		\
} while (0)

void	 fuzzlib_fail(const char *file, int line, const char *what)
	    __attribute__((noreturn));

/* Header fields to seal; anything goes, including invalid values. */
struct fuzzlib_batch {
	const char	*client_id;
	uint8_t		 version;
	uint8_t		 codec;
	uint8_t		 aead;
	uint8_t		 flags;
	uint64_t	 seq;
	uint64_t	 created_us;
	uint32_t	 count;
	uint32_t	 raw_len;
	uint32_t	 crc;
	const uint8_t	*body;		/* AEAD plaintext: content after codec */
	size_t		 body_len;
};

/* A valid stored batch of nothing for `client_id`; the caller fills in. */
void	 fuzzlib_batch_init(struct fuzzlib_batch *b, const char *client_id);

/*
 * Seals `b` under `key` into a malloc'd buffer (*outlen bytes).  The nonce
 * is derived from the header, so the same input seals to the same bytes.
 * NULL when out of memory.
 */
uint8_t	*fuzzlib_seal(const struct fuzzlib_batch *b, const uint8_t *key,
	    size_t *outlen);

/* One datagram entry found by fuzzlib_walk(): where its payload is. */
struct fuzzlib_entry {
	size_t		 off;		/* payload offset in the content */
	uint16_t	 len;
};

/* What the content walk found. */
struct fuzzlib_walk {
	int		 health_ok;	/* health_len fits the content */
	uint32_t	 entries;	/* well-formed entries in a row */
	int		 clean;		/* ... and they end the content */
};

/*
 * Walks content as PROTOCOL.md 1.2 describes it.  When `out` is not NULL
 * it receives up to `max` entries.
 */
void	 fuzzlib_walk(const uint8_t *c, size_t len, struct fuzzlib_walk *w,
	    struct fuzzlib_entry *out, size_t max);

/*
 * What wire_open() must answer for `content` sealed with `codec` (whose
 * body decodes back to exactly `content`), a true CRC, `count` and
 * `flags`, under raw_max.
 */
enum wire_err	 fuzzlib_expect(const uint8_t *content, size_t len,
		    uint32_t count, uint8_t flags, size_t raw_max);

/* Big-endian stores for building test inputs. */
void	 fuzzlib_put16(uint8_t *p, uint16_t v);
void	 fuzzlib_put32(uint8_t *p, uint32_t v);
void	 fuzzlib_put64(uint8_t *p, uint64_t v);

#endif
