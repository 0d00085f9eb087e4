/*
 * stats.h: the client's counters and gauges, the periodic summary line and
 * the stats file in the spool directory.
 *
 * Counters are lock-free atomics that any thread bumps; gauges are set by
 * the module that knows the value (spool depth by the spool, back-off by
 * the sender).  The main thread writes <spool_dir>/client.stats once a
 * second: one "name value" per line, replaced atomically but not fsynced,
 * because it is a status view and not data.
 */
#ifndef FLOWPOST_CLIENT_STATS_H
#define FLOWPOST_CLIENT_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define STATS_FILE	"client.stats"

struct stats {
	/* receive path */
	_Atomic uint64_t	received_datagrams;
	_Atomic uint64_t	received_bytes;
	_Atomic uint64_t	dropped_invalid;
	_Atomic uint64_t	malformed;
	_Atomic uint64_t	dropped_malformed;
	_Atomic uint64_t	dropped_truncated;
	_Atomic uint64_t	dropped_backpressure;
	/* sealer and spool */
	_Atomic uint64_t	batches_sealed;
	_Atomic uint64_t	batches_sealed_busy;	/* at zlib_level_busy */
	_Atomic uint64_t	datagrams_sealed;
	_Atomic uint64_t	spool_dropped_batches;
	_Atomic uint64_t	spool_dropped_datagrams;
	_Atomic uint64_t	spool_write_errors;
	_Atomic uint64_t	quarantined;
	/* sender */
	_Atomic uint64_t	posts;
	_Atomic uint64_t	posts_failed;
	_Atomic uint64_t	acked_batches;
	_Atomic uint64_t	acked_datagrams;
	_Atomic uint64_t	acked_dup;
	_Atomic uint64_t	bad_ack;
	_Atomic uint64_t	retries;
	_Atomic uint64_t	heartbeats;	/* heartbeat batches sealed */
	_Atomic uint64_t	splits;		/* batches cut in two after 413 */
	_Atomic uint64_t	unsplittable;	/* one datagram, still 413 */
	_Atomic uint64_t	renumbered;	/* sealed again, fresh number */
	_Atomic uint64_t	batch_size_reduced;	/* batch_max_bytes lowered */
	_Atomic uint64_t	route_changes;	/* another way out (route.h) */
	/* gauges */
	_Atomic uint64_t	spool_batches;
	_Atomic uint64_t	spool_bytes;
	_Atomic uint64_t	spool_oldest_age_s;
	_Atomic uint64_t	backoff_s;
	_Atomic uint64_t	last_success_unix;
	_Atomic uint64_t	retries_since_success;	/* failed POSTs in a row */
	_Atomic uint64_t	route_index;	/* enum route_way in use */
	_Atomic uint64_t	batch_max_bytes;	/* in effect for new batches */
	_Atomic uint64_t	kernel_drops;	/* UDP receive queue overflows */
	/* pcap input (live capture and files); see pcap_input.h */
	_Atomic uint64_t	pcap_received;
	_Atomic uint64_t	pcap_kernel_drops;
	_Atomic uint64_t	pcap_if_drops;
	_Atomic uint64_t	pcap_truncated;
	_Atomic uint64_t	pcap_fragments;
	_Atomic uint64_t	pcap_reassembled;
	_Atomic uint64_t	pcap_reasm_timeouts;
	_Atomic uint64_t	pcap_reasm_dropped;
	_Atomic uint64_t	pcap_non_udp;
	_Atomic uint64_t	pcap_bad_headers;
	/* exporter -> client sequence accounting; see seqtrack.h */
	_Atomic uint64_t	upstream_exporters;	/* streams tracked */
	_Atomic uint64_t	upstream_gaps;
	_Atomic uint64_t	upstream_lost_records;	/* v5, IPFIX */
	_Atomic uint64_t	upstream_lost_packets;	/* v9 */
	_Atomic uint64_t	upstream_reordered;
	_Atomic uint64_t	upstream_resets;
	_Atomic uint64_t	upstream_uncounted;	/* IPFIX, no template */
};

extern struct stats stats_now;

#define STATS_INC(field)	atomic_fetch_add_explicit(&stats_now.field, 1, \
				    memory_order_relaxed)
#define STATS_ADD(field, n)	atomic_fetch_add_explicit(&stats_now.field, \
				    (uint64_t)(n), memory_order_relaxed)
#define STATS_SET(field, v)	atomic_store_explicit(&stats_now.field, \
				    (uint64_t)(v), memory_order_relaxed)
#define STATS_GET(field)	atomic_load_explicit(&stats_now.field, \
				    memory_order_relaxed)

/*
 * The way out in use (route.h), written as a "route <name>" line of the
 * stats file.  `name` must be a string constant.
 */
void	 stats_set_route_name(const char *name);

/* Logs the one-line summary at info level. */
void	 stats_log(void);
/* Writes <dir>/client.stats (temporary name + rename, no fsync). */
int	 stats_write_file(const char *dir);
/*
 * Prints a short human summary of <dir>/client.stats to `f`.  -1 if the
 * file cannot be read (the daemon never ran with this spool directory).
 */
int	 stats_print_status(const char *dir, FILE *f);

#endif
