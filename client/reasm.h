/*
 * reasm.h: IPv4 and IPv6 fragment reassembly for captured packets.
 *
 * Large IPFIX messages cross the wire as IP fragments; a capture sees the
 * fragments, never the datagram the exporter sent.  A set collects the
 * fragments of one packet, keyed by (family, source, destination, id,
 * protocol), in any order.  Overlapping fragments drop their whole set
 * (exact repeats of a fragment, which captures show when a packet passes
 * twice, are ignored).  Memory is bounded three ways: the number of sets,
 * the size of one packet, and the bytes held by all sets together; when a
 * new set or fragment would go over, the oldest sets are dropped first.
 * Sets older than the timeout (in the caller's clock: capture time for
 * files, wall time for live capture) are dropped by reasm_expire().
 *
 * One reassembler belongs to one thread.
 */
#ifndef FLOWPOST_CLIENT_REASM_H
#define FLOWPOST_CLIENT_REASM_H

#include <stddef.h>
#include <stdint.h>

#include "pktdecode.h"

#define REASM_MAX_SETS		256
#define REASM_MAX_PACKET	65535		/* payload of one IP packet */
#define REASM_MAX_TOTAL		(4u * 1024 * 1024)
#define REASM_TIMEOUT_US	(30ULL * 1000000)
#define REASM_MAX_FRAGS		256		/* fragments in one set */

struct reasm_params {
	size_t		max_sets;
	size_t		max_packet;
	size_t		max_total;
	uint64_t	timeout_us;
};

struct reasm_counters {
	uint64_t	fragments;	/* fragments offered */
	uint64_t	completed;	/* packets reassembled */
	uint64_t	timeouts;	/* sets that never completed */
	uint64_t	overlaps;	/* sets dropped for overlapping parts */
	uint64_t	dropped;	/* sets or fragments dropped: too large,
					 * too many parts, memory or set cap,
					 * inconsistent lengths */
};

enum reasm_result {
	REASM_HELD = 0,		/* kept; the packet is not complete yet */
	REASM_DONE,		/* complete: see *out */
	REASM_DROPPED,		/* the fragment (and perhaps its set) dropped */
};

/* A reassembled packet; `data` is valid until the next reasm_add(). */
struct reasm_packet {
	uint8_t		 family;
	uint8_t		 src[16];
	uint8_t		 dst[16];
	uint8_t		 proto;
	const uint8_t	*data;
	size_t		 len;
};

struct reasm;

/* `p` may be NULL for the defaults above. */
int	 reasm_new(struct reasm **out, const struct reasm_params *p);
void	 reasm_free(struct reasm *r);

/* Adds a fragment seen at `now_us`. */
enum reasm_result reasm_add(struct reasm *r, const struct pktdecode_frag *f,
	    uint64_t now_us, struct reasm_packet *out);
/* Drops sets started before now_us - timeout; counts them as timeouts. */
void	 reasm_expire(struct reasm *r, uint64_t now_us);
/* Drops every set still open (end of input); counts them as timeouts. */
void	 reasm_flush(struct reasm *r);
/* Sets open and bytes they hold. */
void	 reasm_usage(const struct reasm *r, size_t *sets, size_t *bytes);
void	 reasm_counters(const struct reasm *r, struct reasm_counters *c);

#endif
