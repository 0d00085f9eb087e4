/*
 * ingest.h: one batch, from request body to HTTP status and answer.
 *
 * Steps 3 to 11 of PROTOCOL.md section 3, knowing nothing of HTTP: parse the
 * clear header, find the client's key, open the batch, check its age,
 * validate every datagram, then under the client's lock look the sequence
 * number up in the duplicate window, forward, record, and acknowledge.
 * Unit tests and fuzzers drive ingest_batch() directly.
 */
#ifndef FLOWPOST_GATEWAY_INGEST_H
#define FLOWPOST_GATEWAY_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "output.h"
#include "state.h"
#include "wire.h"

struct ingest_params {
	uint64_t	 max_raw_bytes;
	uint64_t	 max_batch_age_s;	/* 0 = no limit */
	uint64_t	 max_clock_skew_s;
};

/* Borrowed by the ingest context; the caller keeps them alive. */
struct ingest_deps {
	struct keys_store	*keys;
	const struct state_ops	*state;
	void			*state_ctx;
	const struct output_ops	*output;
	void			*output_ctx;
};

#define INGEST_BODY_MAX	(WIRE_ACK_MAX + 160)

struct ingest_reply {
	int		 status;		/* HTTP status */
	const char	*content_type;		/* always text/plain */
	char		 body[INGEST_BODY_MAX];	/* one line, '\n'-terminated */
	size_t		 body_len;
};

/* Why a batch was refused: the `reason` label of the rejection counter. */
enum ingest_reason {
	INGEST_R_HEADER,	/* 400: clear header does not parse */
	INGEST_R_UNKNOWN,	/* 403: client id not in the keys file */
	INGEST_R_AUTH,		/* 401: AEAD tag does not verify */
	INGEST_R_TOO_OLD,	/* 410 */
	INGEST_R_FUTURE,	/* 400 */
	INGEST_R_TOO_BIG,	/* 413: content over max_raw_bytes */
	INGEST_R_CONTENT,	/* 400: inflate, CRC or entry layout */
	INGEST_R_DATAGRAM,	/* 400: a datagram is not NetFlow/IPFIX */
	INGEST_R_STATE,		/* 500: duplicate window unavailable */
	INGEST_R_OUTPUT,	/* 503: no collector took the batch */
	INGEST_R_INTERNAL,	/* 500: out of memory */
	INGEST_R_COUNT
};

const char	*ingest_reason_name(enum ingest_reason r);

struct ingest_totals {
	uint64_t	batches;		/* forwarded (ack new) */
	uint64_t	datagrams;		/* forwarded */
	uint64_t	bytes_in;		/* request bytes of opened batches */
	uint64_t	bytes_out;		/* payload bytes forwarded */
	uint64_t	duplicates;		/* acknowledged dup */
	uint64_t	auth_failures;
	uint64_t	unknown_clients;
	uint64_t	malformed_datagrams;	/* NetFlow/IPFIX with inconsistent
						 * lengths, in valid batches (dup
						 * or forwarded) */
	uint64_t	rejected[INGEST_R_COUNT];
};

struct ingest_client_stats {
	uint64_t	batches;
	uint64_t	datagrams;
	uint64_t	bytes_in;
	uint64_t	bytes_out;
	uint64_t	duplicates;
	uint64_t	auth_failures;
	uint64_t	last_seen;		/* unix seconds, 0 = never */
};

struct ingest;

struct ingest	*ingest_new(const struct ingest_params *p,
		    const struct ingest_deps *d);
void		 ingest_free(struct ingest *ig);

/* Processes one request body received at `now_us` (unix microseconds). */
void		 ingest_batch(struct ingest *ig, const uint8_t *body,
		    size_t len, uint64_t now_us, struct ingest_reply *r);

void		 ingest_get_totals(struct ingest *ig, struct ingest_totals *t);

struct kits;
/* Where health reports go (kits.h); set before the first batch. */
void		 ingest_set_kits(struct ingest *ig, struct kits *k);
struct template_cache;
/* The template cache (template.h), NULL = off; set before the first batch. */
void		 ingest_set_templates(struct ingest *ig,
		    struct template_cache *tc);
/* Calls cb for every client that has counters, in no particular order. */
void		 ingest_foreach_client(struct ingest *ig,
		    void (*cb)(const char *client,
		    const struct ingest_client_stats *s, void *arg), void *arg);

#endif
