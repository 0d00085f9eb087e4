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
	POST_TOO_BIG,		/* 413: over a size limit; split the batch */
	POST_ABORTED,		/* shutdown interrupted the transfer */
};

/*
 * Who answered, as far as the client can tell; the route (route.h) only
 * changes its way for failures that are not the gateway's.
 */
enum post_via {
	POST_VIA_GATEWAY = 0,	/* the gateway (its text/plain, or an ack) */
	POST_VIA_TRANSPORT,	/* no HTTP answer: connect, DNS, TLS, proxy
				   CONNECT refused, reset, nothing sent */
	POST_VIA_OTHER,		/* an answer that is not the gateway's: a
				   proxy's or portal's error page, a 200
				   without an ack, 411 or 417 */
	POST_VIA_UNKNOWN,	/* time-out after the request went out,
				   other pages, shutdown */
};

enum post_http_version {
	POST_HTTP_AUTO = 0,	/* libcurl's choice */
	POST_HTTP_11 = 1,
	POST_HTTP_10 = 2,	/* HTTP/1.0 and no connection reuse */
};

struct post_params {
	const char	*gateway_url;	/* base URL; "/v1/batch" is appended */
	const char	*proxy;		/* "" = environment, "none" = direct */
	const char	*ca_file;	/* "" = system store */
	const char	*pinned_pubkey;	/* "" = none */
	uint64_t	 connect_timeout;	/* seconds */
	uint64_t	 request_timeout;	/* seconds */
	int		 http_version;	/* enum post_http_version */
	/* set by the route (route.h) for its ways */
	int		 tunnel;	/* CONNECT even for http:// */
	int		 proxy_http10;	/* HTTP/1.0 to the proxy */
	int		 ignore_no_proxy;	/* the proxy even for no_proxy */
};

struct post_outcome {
	enum post_result	 result;
	enum post_via		 via;
	long			 status;	/* HTTP status, 0 if none */
	enum wire_ack_status	 ack;		/* POST_DELIVERED */
	uint64_t		 retry_after_s;	/* POST_RETRY_AFTER */
	int64_t			 date_unix;	/* its Date header, 0 = none */
	char			 reason[256];	/* one line for the log */
};

/*
 * What came back from one transfer, as post_classify() needs it.  Kept
 * apart from libcurl so that the rules can be tested on their own.
 */
struct post_answer {
	int		 curl_rc;	/* CURLcode of the transfer */
	const char	*curl_error;	/* libcurl's message, may be "" */
	long		 status;	/* final HTTP status, 0 if none */
	long		 connect_code;	/* proxy's answer to CONNECT, 0 if none */
	int		 request_sent;	/* the request left (pretransfer done) */
	int		 aborted;	/* shutdown */
	const char	*body;		/* NUL-terminated */
	size_t		 body_len;
	int		 body_over;	/* body was over POST_BODY_MAX */
	int		 text_plain;	/* Content-Type: text/plain */
	int		 have_retry_after;
	uint64_t	 retry_after;
};

#define POST_BODY_MAX	4096	/* an ack is ~130 bytes, reasons short */

struct post;

int	 post_new(struct post **out, const struct post_params *p,
	    _Atomic int *abort_flag);
/*
 * New settings (reload, another way): take effect with the next POST,
 * which then opens a new connection.
 */
int	 post_configure(struct post *po, const struct post_params *p);
void	 post_free(struct post *po);

/*
 * POSTs one sealed batch and classifies the answer.  The acknowledgement is
 * checked against the batch's own client id, sequence number and tag.
 */
void	 post_batch(struct post *po, const uint8_t *data, size_t len,
	    const uint8_t *key, struct post_outcome *out);

/*
 * The rules of PROTOCOL.md 2.3 for one answer to the batch with header `h`
 * and tag `tag`.  Counts bad_ack.
 */
void	 post_classify(const struct post_answer *a,
	    const struct wire_header *h, const uint8_t *tag,
	    const uint8_t *key, struct post_outcome *out);

#endif
