/*
 * spool.h: the durable FIFO of sealed batches in spool_dir.
 *
 * One file per batch, written with a temporary name, fsync, rename and an
 * fsync of the directory, so a batch is either wholly on disk or not at
 * all.  The file name is the batch's place in the send order:
 *
 *   <root as 20 digits>.fpb          a batch as the sealer made it; the
 *                                    root is its sequence number
 *   <root as 20 digits>-<path>.fpb   a batch that replaced another one:
 *                                    path is the replaced one's path plus
 *                                    "a" or "b" (the halves of a split) or
 *                                    "r" (sealed again with a fresh number)
 *
 * Files are sent in order of (root, path) with the path compared as a
 * string, so the pieces of a batch take its place and keep their own
 * order.  Every piece has a fresh sequence number of its own (in its
 * sealed header); numbers are never reused (PROTOCOL.md 4.3).
 *
 * An in-memory index (under a mutex) keeps order key, sequence, size,
 * datagram count and creation time of every file, in send order.  The
 * spool also hands out sequence numbers, persisted in seq.state in blocks
 * so that one fsync covers many batches, and remembers in sent.state the
 * highest number posted out of order (spool_posting()).
 *
 * Thread use: the sealer calls spool_next_seq() and spool_put(), the sender
 * spool_oldest(), spool_posting(), spool_release(), spool_remove(),
 * spool_replace() and spool_quarantine(), the main thread spool_expire()
 * and spool_depth().
 */
#ifndef FLOWPOST_CLIENT_SPOOL_H
#define FLOWPOST_CLIENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SPOOL_SEQ_BLOCK		1024
#define SPOOL_SEQ_FILE		"seq.state"
#define SPOOL_SENT_FILE		"sent.state"
#define SPOOL_QUARANTINE	"quarantine"
/* Longest chain of splits and renumberings in one file name. */
#define SPOOL_PATH_MAX		40
/*
 * A batch whose number is more than this below the highest number already
 * posted is sealed again with a fresh one before it is sent, so the gateway
 * never sees a number far enough behind to fall out of its duplicate
 * window (whose smallest setting is 64).
 */
#define SPOOL_RENUMBER_SLACK	32

struct spool_params {
	const char	*dir;
	const uint8_t	*key;		/* verifies batches found at start */
	size_t		 raw_max;	/* content cap when verifying */
	size_t		 sealed_max;	/* largest batch file accepted */
	uint64_t	 max_bytes;	/* spool_max_bytes */
	uint64_t	 max_age_s;	/* spool_max_age, 0 = off */
	int		 drop_newest;	/* spool_full */
};

struct spool_item {
	uint64_t	seq;		/* in the batch's header */
	uint64_t	root;		/* order key, first part */
	char		path[SPOOL_PATH_MAX + 1];	/* order key, second */
	size_t		bytes;
	uint32_t	count;
	uint64_t	created_us;
	int		renumber;	/* spool_oldest(): seal again first */
};

/* A new batch that takes the place of an old one (spool_replace()). */
struct spool_piece {
	uint64_t	 seq;
	const uint8_t	*data;
	size_t		 len;
	uint32_t	 count;
	uint64_t	 created_us;
};

struct spool;

/*
 * Creates the directory if needed, removes stale temporary files, verifies
 * every batch found (moving damaged ones to quarantine/), finishes or
 * undoes a replacement a crash interrupted, and loads the sequence state.
 * -1 with a logged reason if the directory is unusable.
 */
int	 spool_open(struct spool **out, const struct spool_params *p);
void	 spool_close(struct spool *s);
/* Applies new limits (reload); the next put or expiry honours them. */
void	 spool_set_limits(struct spool *s, uint64_t max_bytes,
	    uint64_t max_age_s, int drop_newest);

/* Next sequence number; -1 if a new block cannot be reserved durably. */
int	 spool_next_seq(struct spool *s, uint64_t *seq);
/*
 * Stores a sealed batch, making room according to spool_full first.  0 if
 * stored; -1 if the batch was dropped (limits or write error), which is
 * already counted and logged.
 */
int	 spool_put(struct spool *s, uint64_t seq, const uint8_t *data,
	    size_t len, uint32_t count, uint64_t created_us);

/*
 * Reads the oldest batch into `out` and marks it in flight, so that
 * spool_full and spool_max_age leave it alone until spool_release(),
 * spool_remove(), spool_replace() or spool_quarantine().  1 with a batch,
 * 0 if the spool is empty, -1 if that batch could not be read (it was
 * dealt with; call again).  it->renumber says the batch must be sealed
 * again with a fresh number (spool_replace() with one piece) before it is
 * posted.
 */
int	 spool_oldest(struct spool *s, struct buf *out,
	    struct spool_item *it);
/*
 * To be called right before a batch is posted: records its number as
 * posted, durably if it was a replacement (the only batches that can be
 * ahead of the send order).  -1 if that record cannot be written; the
 * batch must not be posted then.
 */
int	 spool_posting(struct spool *s, const struct spool_item *it);
void	 spool_release(struct spool *s, uint64_t seq);
/* Deletes a delivered batch. */
int	 spool_remove(struct spool *s, uint64_t seq);
/*
 * Replaces the batch in flight `it` by `n` (1 or 2) new batches in its
 * place in the send order, each with its own fresh sequence number: 1 to
 * renumber it, 2 for the halves of a split.  Durable and atomic: after a
 * crash either the old batch or all the new ones are in the spool.  -1 if
 * it could not be done (logged); the old batch then stays.
 */
int	 spool_replace(struct spool *s, const struct spool_item *it,
	    const struct spool_piece *pieces, size_t n);
/* Moves a batch to quarantine/ with a warning naming `reason`. */
int	 spool_quarantine(struct spool *s, uint64_t seq, const char *reason);
/* Drops batches older than spool_max_age (if set). */
void	 spool_expire(struct spool *s, uint64_t now_us);
/* Batches, bytes and the creation time of the oldest (0 if empty). */
void	 spool_depth(struct spool *s, uint64_t *batches, uint64_t *bytes,
	    uint64_t *oldest_created_us);

/* The file name of an item (for logs and tests): NUL-terminated. */
#define SPOOL_NAME_MAX	(20 + 1 + SPOOL_PATH_MAX + 4)
void	 spool_item_name(const struct spool_item *it,
	    char out[SPOOL_NAME_MAX + 1]);

#endif
