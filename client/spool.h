/*
 * spool.h: the durable FIFO of sealed batches in spool_dir.
 *
 * One file per batch, "<seq as 20 digits>.fpb", written with a temporary
 * name, fsync, rename and an fsync of the directory, so a batch is either
 * wholly on disk or not at all.  An in-memory index (under a mutex) keeps
 * sequence, size, datagram count and creation time of every file, oldest
 * first.  The spool also hands out sequence numbers, persisted in
 * seq.state in blocks so that one fsync covers many batches.
 *
 * Thread use: the sealer calls spool_next_seq() and spool_put(), the sender
 * spool_oldest(), spool_release(), spool_remove() and spool_quarantine(),
 * the main thread spool_expire() and spool_depth().
 */
#ifndef FLOWPOST_CLIENT_SPOOL_H
#define FLOWPOST_CLIENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SPOOL_SEQ_BLOCK		1024
#define SPOOL_SEQ_FILE		"seq.state"
#define SPOOL_QUARANTINE	"quarantine"

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
	uint64_t	seq;
	size_t		bytes;
	uint32_t	count;
	uint64_t	created_us;
};

struct spool;

/*
 * Creates the directory if needed, removes stale temporary files, verifies
 * every batch found (moving damaged ones to quarantine/) and loads the
 * sequence state.  -1 with a logged reason if the directory is unusable.
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
 * spool_full and spool_max_age leave it alone until spool_release() or
 * spool_remove().  1 with a batch, 0 if the spool is empty, -1 if that
 * batch could not be read (it was dealt with; call again).
 */
int	 spool_oldest(struct spool *s, struct buf *out,
	    struct spool_item *it);
void	 spool_release(struct spool *s, uint64_t seq);
/* Deletes a delivered batch. */
int	 spool_remove(struct spool *s, uint64_t seq);
/* Moves a batch to quarantine/ with a warning naming `reason`. */
int	 spool_quarantine(struct spool *s, uint64_t seq, const char *reason);
/* Drops batches older than spool_max_age (if set). */
void	 spool_expire(struct spool *s, uint64_t now_us);
/* Batches, bytes and the creation time of the oldest (0 if empty). */
void	 spool_depth(struct spool *s, uint64_t *batches, uint64_t *bytes,
	    uint64_t *oldest_created_us);

#endif
