/*
 * sender.h: the sender thread.  It posts the oldest spooled batch, removes
 * it on a valid acknowledgement, and otherwise backs off with full jitter
 * and tries the same batch again: batches leave strictly in order.
 *
 * A batch answered with 413 is split in two in its place in the spool
 * (split.h) and new batches are made smaller; ways out that keep failing
 * are changed (route.h).
 */
#ifndef FLOWPOST_CLIENT_SENDER_H
#define FLOWPOST_CLIENT_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "post.h"
#include "route.h"

struct batcher;
struct spool;
struct sender;

struct sender_params {
	struct post_params	 post;
	struct route_params	 route;
	uint64_t		 retry_initial;	/* seconds */
	uint64_t		 retry_factor;
	uint64_t		 retry_max;	/* seconds */
	int			 zlevel;	/* for split batches */
	size_t			 raw_max;	/* content cap when splitting */
	/*
	 * Start only (a reload keeps them): the batcher whose batch size
	 * the sender lowers after a 413, and the configured size.
	 */
	struct batcher		*batcher;	/* may be NULL */
	size_t			 batch_max_bytes;
};

/* `key` (WIRE_KEY_LEN bytes, copied) verifies acknowledgements. */
int	 sender_start(struct sender **out, struct spool *s, const uint8_t *key,
	    size_t sealed_max, const struct sender_params *p);
/* A new batch is in the spool (called by the sealer; arg is the sender). */
void	 sender_notify(void *arg);
/*
 * New HTTP and retry settings (reload).  They apply before the next POST;
 * a back-off in progress ends at once, so a fixed gateway_url is tried now.
 */
int	 sender_reconfigure(struct sender *sd, const struct sender_params *p);
/* Aborts a POST in flight (the batch stays spooled) and joins the thread. */
void	 sender_stop(struct sender *sd);
void	 sender_free(struct sender *sd);

#endif
