/*
 * post.h: one batch POST to the gateway with libcurl, and what its outcome
 * means (PROTOCOL.md 2.3).
 *
 * One easy handle is reused for every POST, so the connection (and a proxy
 * tunnel) stays open between batches.  Only the sender thread uses it.
 */
#ifndef FLOWPOST_CLIENT_POST_H
#define FLOWPOST_CLIENT_POST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum post_result {
	POST_DELIVERED,		/* 200 with a valid acknowledgement */
	POST_RETRY,		/* not delivered; retry with back-off */
	POST_RETRY_AFTER,	/* 429/503 with Retry-After */
	POST_STUCK,		/* gateway refuses; retry at the maximum */
	POST_REJECTED,		/* 410: can never be accepted; quarantine */
	POST_ABORTED,		/* shutdown interrupted the transfer */
};

struct post_params {
	const char	*gateway_url;	/* base URL; "/v1/batch" is appended */
	const char	*proxy;		/* "" = environment, "none" = direct */
	const char	*ca_file;	/* "" = system store */
	const char	*pinned_pubkey;	/* "" = none */
	uint64_t	 connect_timeout;	/* seconds */
	uint64_t	 request_timeout;	/* seconds */
};

struct post_outcome {
	enum post_result	 result;
	long			 status;	/* HTTP status, 0 if none */
	enum wire_ack_status	 ack;		/* POST_DELIVERED */
	uint64_t		 retry_after_s;	/* POST_RETRY_AFTER */
	char			 reason[256];	/* one line for the log */
};

struct post;

int	 post_new(struct post **out, const struct post_params *p,
	    _Atomic int *abort_flag);
/* New settings (reload): takes effect with the next POST. */
int	 post_configure(struct post *po, const struct post_params *p);
void	 post_free(struct post *po);

/*
 * POSTs one sealed batch and classifies the answer.  The acknowledgement is
 * checked against the batch's own client id, sequence number and tag.
 */
void	 post_batch(struct post *po, const uint8_t *data, size_t len,
	    const uint8_t *key, struct post_outcome *out);

#endif
