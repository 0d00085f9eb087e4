/*
 * health.h: the health block a field kit puts into every batch
 * (docs/PROTOCOL.md 1.3).
 *
 * Layout, all integers big-endian:
 *
 *   u16 version      1
 *   u16 fixed_len    bytes of the fixed part that follows (116 in v1)
 *   fixed part       flags, then 14 numbers (health.c lists them)
 *   u8 + bytes       client version string
 *   u8 + bytes       current way out to the gateway ("direct", ...)
 *
 * Revisions of version 1 only append: a longer fixed part, more items
 * after the strings.  A reader takes the fields it knows and skips the
 * rest, so an older gateway reads a newer kit.  A different version number
 * is an incompatible layout: health_decode() says HEALTH_EVERSION and the
 * caller ignores the block (the batch itself is still good).
 */
#ifndef FLOWPOST_HEALTH_H
#define FLOWPOST_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define HEALTH_VERSION		1
#define HEALTH_FIXED_V1		116	/* fixed part of version 1 */
#define HEALTH_STR_MAX		32	/* longest string kept, in bytes */
/* The largest block this code writes. */
#define HEALTH_MAX		(4 + HEALTH_FIXED_V1 + 2 * (1 + HEALTH_STR_MAX))

/* flags: which estimates are real; a field whose flag is clear is 0. */
#define HEALTH_F_CLOCK		0x00000001u	/* clock_offset_ms measured */
#define HEALTH_F_LOSS		0x00000002u	/* upstream_* counted */
#define HEALTH_F_KDROPS		0x00000004u	/* kernel_drops read */

enum health_err {
	HEALTH_OK = 0,
	HEALTH_ETRUNC,		/* shorter than its lengths say */
	HEALTH_EVERSION,	/* a version this code does not read */
	HEALTH_ELENGTH,		/* fixed part shorter than version 1's */
};

struct health {
	uint16_t	version;		/* as found; HEALTH_VERSION */
	uint16_t	fixed_len;		/* as found */
	uint32_t	flags;			/* HEALTH_F_* */
	uint64_t	uptime_s;		/* client process */
	uint64_t	spool_batches;
	uint64_t	spool_bytes;
	uint64_t	spool_oldest_age_s;	/* 0 when the spool is empty */
	uint64_t	spool_dropped_batches;	/* counters since client start */
	uint64_t	spool_dropped_datagrams;
	uint64_t	dropped_invalid;	/* not NetFlow/IPFIX */
	uint64_t	dropped_backpressure;	/* sealer fell behind */
	uint64_t	kernel_drops;		/* UDP receive queue overflows */
	uint64_t	upstream_gaps;		/* exporter sequence gaps */
	uint64_t	upstream_lost_records;	/* v5, IPFIX */
	uint64_t	upstream_lost_packets;	/* v9 */
	uint64_t	retries_since_success;	/* failed POSTs in a row */
	int64_t		clock_offset_ms;	/* gateway clock minus kit's */
	char		client_version[HEALTH_STR_MAX + 1];
	char		route[HEALTH_STR_MAX + 1];
};

const char	*health_strerror(enum health_err e);

/*
 * Writes `h` as a version 1 block into out[0..outlen) (HEALTH_MAX is
 * always enough); *len gets its length.  Strings longer than
 * HEALTH_STR_MAX are cut.  -1 if `outlen` is too small.
 */
int		 health_encode(const struct health *h, uint8_t *out,
		    size_t outlen, size_t *len);

/*
 * Reads a block of exactly `len` bytes.  Never reads outside it.  String
 * bytes outside [A-Za-z0-9._+:-] become '_' and strings are cut at
 * HEALTH_STR_MAX, so what comes out is safe in a log line, a JSON string
 * and a Prometheus label.  On error `h` is zeroed, except `version`
 * after HEALTH_EVERSION.
 */
enum health_err	 health_decode(const uint8_t *data, size_t len,
		    struct health *h);

#endif
