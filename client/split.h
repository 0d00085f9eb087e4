/*
 * split.h: a spooled batch sealed again, either as two smaller batches
 * (after a 413: the body was over a size limit of the gateway or of a web
 * server or proxy in between) or whole with a fresh sequence number (to
 * keep the numbers the gateway sees close together; spool.h).
 *
 * The pieces keep the original's client id, creation time, codec and
 * flags; the first one also carries its health block.  Each gets a fresh
 * sequence number from the spool, so no number is ever used twice.  Only
 * the sender thread uses this.
 */
#ifndef FLOWPOST_CLIENT_SPLIT_H
#define FLOWPOST_CLIENT_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "spool.h"

struct split {
	const uint8_t	*key;		/* WIRE_KEY_LEN bytes, not copied */
	int		 zlevel;
	size_t		 raw_max;	/* content cap when opening */
	struct buf	 raw;		/* the opened content */
	struct buf	 out[2];	/* the sealed pieces */
};

/* Buffers grow on demand up to raw_max and sealed_max. */
int	 split_init(struct split *sp, const uint8_t *key, int zlevel,
	    size_t raw_max, size_t sealed_max);
void	 split_set_level(struct split *sp, int zlevel);
void	 split_free(struct split *sp);

/*
 * Seals the content of the batch `data` again as `n` batches: n = 2 cuts
 * its entries in two halves of about the same size (it needs at least two
 * entries), n = 1 keeps them all.  pieces[0 .. n) point into sp->out and
 * are valid until the next call.  -1 with a reason in `why`.
 */
int	 split_batch(struct split *sp, struct spool *s, const uint8_t *data,
	    size_t len, size_t n, struct spool_piece *pieces, char *why,
	    size_t whylen);

#endif
