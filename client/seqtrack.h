/*
 * seqtrack.h: loss and reordering between the exporters and the client.
 *
 * flowpost guarantees delivery from the client on; the hop before it, from
 * the exporter to the client's UDP listener, is plain UDP.  The export
 * headers carry sequence numbers, so the client can count what that hop
 * lost.  Per exporter stream (address, UDP port, version, and v5 engine
 * type/id, v9 source id or IPFIX observation domain) the tracker keeps the
 * number it expects next:
 *
 *   v5     flow_sequence counts flows: next = sequence + count.  Lost
 *          flows are exact.
 *   v9     the sequence number counts export packets (RFC 3954): next =
 *          sequence + 1.  Lost packets are exact; how many records they
 *          held is unknown, so they count as lost packets, not records.
 *   IPFIX  the sequence number counts data records sent before the message
 *          (RFC 7011), and a message's data records can only be counted
 *          with their templates.  The tracker learns the stream's
 *          templates and options templates (field lengths only, variable
 *          length fields included) and counts the records of each data
 *          set: next = sequence + records.  When a message holds a set
 *          whose template it has not seen (data before templates, a
 *          template it could not keep), its size is unknown: the next
 *          message is taken as it comes (no gap can be judged across it),
 *          and only a number going backwards is seen.
 *
 * A number ahead of the expected one is a gap (its distance is lost); one
 * behind it, by at most a window, arrived late (reordered, or a duplicate):
 * it is counted as reordered, and what of it falls into the stream's latest
 * gap is taken back from the lost count, which is thus net of reordering.
 * (It is an estimate: a datagram repeated inside that gap is taken back
 * twice, and late arrivals into older gaps are not taken back.)  A jump
 * further than the window backwards, or further than SEQTRACK_GAP_MAX
 * forwards, is an exporter
 * restart (the tracker resynchronises and counts a reset, not a loss); so
 * is a second datagram behind the expected number, outside the latest gap,
 * that continues the numbering of the previous one (an exporter that
 * restarted at small numbers: its first datagram counts as reordered).
 *
 * The table is bounded: SEQTRACK_EXPORTERS_MAX streams (the least recently
 * seen one is forgotten), SEQTRACK_TEMPLATES_MAX IPFIX templates and
 * SEQTRACK_FIELDS_MAX stored field lengths per stream.
 */
#ifndef FLOWPOST_CLIENT_SEQTRACK_H
#define FLOWPOST_CLIENT_SEQTRACK_H

#include <stddef.h>
#include <stdint.h>

#include "nf.h"
#include "wire.h"

#define SEQTRACK_EXPORTERS_MAX	512
#define SEQTRACK_TEMPLATES_MAX	64
#define SEQTRACK_FIELDS_MAX	2048
#define SEQTRACK_GAP_MAX	UINT32_C(1000000)	/* records, v5/IPFIX */
#define SEQTRACK_GAP_MAX_V9	UINT32_C(100000)	/* packets */
#define SEQTRACK_WINDOW		UINT32_C(100000)	/* records, v5/IPFIX */
#define SEQTRACK_WINDOW_V9	UINT32_C(1000)		/* packets */

enum seqtrack_event {
	SEQTRACK_NEW,		/* first datagram of a stream */
	SEQTRACK_OK,		/* in sequence (or not judged) */
	SEQTRACK_GAP,		/* numbers skipped: lost upstream */
	SEQTRACK_LATE,		/* behind the expected number */
	SEQTRACK_RESET,		/* exporter restarted its numbering */
};

/* What one datagram did. */
struct seqtrack_result {
	enum seqtrack_event	 ev;
	uint32_t		 expected;	/* GAP, LATE, RESET */
	uint32_t		 got;
	uint64_t		 lost;		/* GAP: records (v5, IPFIX) or
						 * packets (v9) */
	int			 unit_packets;	/* lost counts packets (v9) */
};

struct seqtrack_counts {
	uint64_t	exporters;	/* streams tracked now */
	uint64_t	gaps;
	uint64_t	lost_records;	/* v5 and IPFIX, net of late arrivals */
	uint64_t	lost_packets;	/* v9, net of late arrivals */
	uint64_t	reordered;
	uint64_t	resets;
	uint64_t	uncounted;	/* IPFIX messages of unknown size */
};

struct seqtrack;

struct seqtrack	*seqtrack_new(size_t max_exporters);	/* 0 = default */
void		 seqtrack_free(struct seqtrack *st);

/*
 * One well-formed datagram (nf_check() said NF_OK and filled *info) from
 * the exporter named in *e.  Not thread-safe: one receive thread.
 */
void		 seqtrack_observe(struct seqtrack *st,
		    const struct wire_entry *e, const struct nf_info *info,
		    struct seqtrack_result *r);
void		 seqtrack_get(const struct seqtrack *st,
		    struct seqtrack_counts *c);

/*
 * The receive path's hook: a process-wide tracker that adds to the
 * upstream_* counters of stats.h and logs gaps, late datagrams and resets
 * (rate-limited).  Call from the receive thread only.
 */
void		 seqtrack_note(const struct wire_entry *e,
		    const struct nf_info *info);

#endif
