/*
 * batcher.h: the open batch and the hand-off of closed ones to the sealer.
 *
 * The receive thread appends entries to the open batch and closes it when
 * the next entry would not fit or when its first datagram is too old.
 * Batch buffers come from a fixed pool, allocated at start to their full
 * ceiling (pages are only touched as they fill), so the receive thread
 * never allocates, never blocks on the sealer, and drops (counting
 * dropped_backpressure) when the pool is empty.
 */
#ifndef FLOWPOST_CLIENT_BATCHER_H
#define FLOWPOST_CLIENT_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wire.h"

/*
 * Pool size: about BATCHER_POOL_BYTES of buffers, at least BATCHER_POOL_MIN
 * and at most BATCHER_POOL_MAX of them.  Small batches close quickly in a
 * burst, so they need more buffers to ride out one slow fsync.
 */
#define BATCHER_POOL_BYTES	(32u * 1024 * 1024)
#define BATCHER_POOL_MIN	4
#define BATCHER_POOL_MAX	64

struct batch {
	struct buf	 entries;	/* wire_entry_append() records */
	uint32_t	 count;
	int64_t		 first_ns;	/* monotonic time of the first entry */
	struct batch	*next;		/* queue link */
};

struct batcher;

/*
 * `max_bytes` is the size at which a batch closes; each buffer's ceiling is
 * `entries_max` (at least one maximal datagram).  `max_age_s` closes a batch
 * by age.
 */
int	 batcher_new(struct batcher **out, size_t max_bytes,
	    size_t entries_max, uint64_t max_age_s);
void	 batcher_free(struct batcher *b);
/* Receive thread: a new age limit, applied to the next check. */
void	 batcher_set_max_age(struct batcher *b, uint64_t max_age_s);

/* Receive thread: adds one datagram; drops and counts it if it must. */
void	 batcher_add(struct batcher *b, const struct wire_entry *e,
	    int64_t now_ns);
/* Receive thread: closes the open batch if it is too old. */
void	 batcher_tick(struct batcher *b, int64_t now_ns);
/*
 * Receive thread, at shutdown: closes the open batch (if any) and tells the
 * sealer that nothing more will come.
 */
void	 batcher_finish(struct batcher *b);

/*
 * Sealer thread: waits for a closed batch.  Returns 1 with *out set, or 0
 * once batcher_finish() was called and the queue is empty.
 */
int	 batcher_take(struct batcher *b, struct batch **out);
/* Sealer thread: gives a buffer back to the pool. */
void	 batcher_release(struct batcher *b, struct batch *bt);

#endif
