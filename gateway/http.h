/*
 * http.h: the batch endpoint on libmicrohttpd.
 *
 * Routes under path_prefix: POST <prefix>/v1/batch and GET <prefix>/healthz.
 * Method, path and Content-Length are checked on the first callback, before
 * any of the body is read (PROTOCOL.md section 3, step 1); the body is
 * gathered into a buffer whose ceiling is the announced length; the answer
 * comes from ingest on the last callback.
 */
#ifndef FLOWPOST_GATEWAY_HTTP_H
#define FLOWPOST_GATEWAY_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ingest.h"

struct http_params {
	int		 fd;			/* from http_listen() */
	const char	*path_prefix;
	uint64_t	 max_body_bytes;
	unsigned int	 threads;
	unsigned int	 connection_limit;
	unsigned int	 connection_timeout;	/* seconds */
};

/*
 * Bodies of all requests in progress together may not announce more than
 * this (or twice max_body_bytes, if larger); a request over it gets 429.
 */
#define HTTP_INFLIGHT_MIN	(256u * 1024 * 1024)
#define HTTP_RETRY_AFTER	5		/* seconds, for 429 */

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

#endif
