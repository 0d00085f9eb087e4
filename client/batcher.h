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
	uint64_t	 ticket;	/* batcher_take() order, from 0 */
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
/*
 * Any thread: the size at which batches close from now on (the sender
 * lowers it after a 413), at most the `max_bytes` given to batcher_new()
 * since the buffers are no larger.
 */
void	 batcher_set_max_bytes(struct batcher *b, size_t max_bytes);
size_t	 batcher_max_bytes(struct batcher *b);

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
 * Further producers (the pcap capture and file reader threads).  A lane is
 * one thread's own open batch; lanes share the pool and the queue, so the
 * receive thread's path above stays as it is.  Close every lane with
 * batcher_lane_free() before batcher_finish().
 */
struct batcher_lane;

int	 batcher_lane_new(struct batcher *b, struct batcher_lane **out);
/* Queues the lane's open batch (if any) and frees the lane. */
void	 batcher_lane_free(struct batcher_lane *l);
/*
 * Adds one datagram.  With `wait_ms` 0 it behaves as batcher_add(): 0, or
 * -1 when no buffer is free (dropped and counted).  With `wait_ms` > 0 it
 * waits up to that long for a free buffer and returns -1 without counting
 * anything if none came: the caller still holds the datagram and retries.
 */
int	 batcher_lane_add(struct batcher_lane *l, const struct wire_entry *e,
	    int64_t now_ns, int wait_ms);
/* Closes the lane's open batch if it is too old. */
void	 batcher_lane_tick(struct batcher_lane *l, int64_t now_ns);
/* Closes the lane's open batch now (end of a file job). */
void	 batcher_lane_flush(struct batcher_lane *l);

/*
 * Sealer threads: waits for a closed batch.  Returns 1 with *out set, or 0
 * once batcher_finish() was called and the queue is empty.  Batches come
 * out in the order they closed, numbered by their `ticket`.
 */
int	 batcher_take(struct batcher *b, struct batch **out);
/* Closed batches waiting for a sealer thread. */
size_t	 batcher_queued(struct batcher *b);
/* Sealer thread: gives a buffer back to the pool. */
void	 batcher_release(struct batcher *b, struct batch *bt);

#endif
