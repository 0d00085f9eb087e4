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
	/* gauges */
	_Atomic uint64_t	spool_batches;
	_Atomic uint64_t	spool_bytes;
	_Atomic uint64_t	spool_oldest_age_s;
	_Atomic uint64_t	backoff_s;
	_Atomic uint64_t	last_success_unix;
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
