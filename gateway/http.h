/*
 * http.h: the batch endpoint on libmicrohttpd.
 *
 * Routes under path_prefix: POST <prefix>/v1/batch and GET <prefix>/healthz.
 * Method, path, the global request rate and Content-Length are checked on
 * the first callback, before any of the body is read (PROTOCOL.md section
 * 3, step 1); the body is gathered into a buffer whose ceiling is the
 * announced length.  On the last callback the clear header names the
 * client, whose request rate is checked before ingest authenticates the
 * batch; the outcome is then charged to the client's request bucket (the
 * batch was forwarded now) or its authentication-failure bucket (it did
 * not authenticate).  docs/SECURITY.md explains that order.
 *
 * With tls_cert and tls_key the endpoint speaks HTTPS (GnuTLS inside
 * libmicrohttpd), TLS 1.2 and 1.3 only.
 */
#ifndef FLOWPOST_GATEWAY_HTTP_H
#define FLOWPOST_GATEWAY_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ingest.h"
#include "keys.h"
#include "ratelimit.h"

struct http_params {
	int		 fd;			/* from http_listen() */
	const char	*path_prefix;
	uint64_t	 max_body_bytes;
	unsigned int	 threads;
	unsigned int	 connection_limit;
	unsigned int	 connection_timeout;	/* seconds */
	unsigned int	 per_ip_connection_limit;	/* 0 = off */
	struct ratelimit_params rates;		/* per second, 0 = off */
	struct keys_store *keys;		/* ids that get buckets */
	const char	*tls_cert;		/* PEM text; NULL = plain HTTP */
	const char	*tls_key;		/* PEM text, with tls_cert */
};

/* Why a request got 429: the `reason` label of the counter. */
enum http_limit {
	HTTP_LIMIT_INFLIGHT,	/* bodies in progress over their budget */
	HTTP_LIMIT_GLOBAL,	/* rate_limit_global */
	HTTP_LIMIT_CLIENT,	/* rate_limit_client */
	HTTP_LIMIT_AUTH,	/* rate_limit_auth_failures */
	HTTP_LIMIT_COUNT
};

const char	*http_limit_name(enum http_limit l);

/*
 * Bodies of all requests in progress together may not announce more than
 * this (or twice max_body_bytes, if larger); a request over it gets 429.
 */
#define HTTP_INFLIGHT_MIN	(256u * 1024 * 1024)
#define HTTP_RETRY_AFTER	5		/* seconds, 429 for bodies */
#define HTTP_RETRY_AFTER_MAX	3600		/* seconds, any 429 */

struct http;

/*
 * Binds and listens on `a`; the address actually bound (port 0 resolved)
 * goes to `bound`.  Shared with metrics.c.
 */
int		 http_listen(const struct config_addr *a, int *fd, char *bound,
		    size_t boundlen, char *err, size_t errlen);

/* The daemon's flags for this machine (epoll where available). */
unsigned int	 http_mhd_flags(void);

/* Logs libmicrohttpd's own messages through log.h. */
void		 http_mhd_logger(void *cls, const char *fmt, va_list ap);

/* 1 if this libmicrohttpd can serve HTTPS. */
int		 http_tls_supported(void);

/* Serves on p->fd, which it then owns (closed also on failure). */
struct http	*http_start(const struct http_params *p, struct ingest *ig,
		    char *err, size_t errlen);
/* Stops accepting connections; requests in progress go on. */
void		 http_quiesce(struct http *h);
/* Waits up to timeout_ms for requests in progress; -1 on time-out. */
int		 http_drain(struct http *h, int64_t timeout_ms);
void		 http_stop(struct http *h);

/* Calls cb for every status code answered at least once. */
void		 http_foreach_status(struct http *h,
		    void (*cb)(int code, uint64_t n, void *arg), void *arg);
/* Calls cb for every reason of a 429, with its count (also 0). */
void		 http_foreach_limit(struct http *h,
		    void (*cb)(const char *reason, uint64_t n, void *arg),
		    void *arg);
/*
 * After a keys reload: forgets the rate-limit state of client ids that
 * are no longer in the keys file.
 */
void		 http_keys_changed(struct http *h);

#endif
