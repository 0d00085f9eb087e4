/*
 * httpd.h: what the libmicrohttpd servers of both daemons share (the
 * gateway's batch endpoint and metrics page, the client's metrics page):
 * small answers, and libmicrohttpd's own messages into our log.
 *
 * Built as its own library (flowpost_httpd) so that only the programs
 * that serve HTTP link libmicrohttpd.
 */
#ifndef FLOWPOST_HTTPD_H
#define FLOWPOST_HTTPD_H

#include <stdarg.h>
#include <stddef.h>

#include <microhttpd.h>

#include "log.h"

/*
 * An answer of `len` bytes (copied) with Content-Type `ctype`,
 * Cache-Control: no-store and, unless NULL, an Allow header; the caller
 * may add headers, queues it and destroys it.  NULL without memory.
 */
struct MHD_Response *httpd_response(const char *ctype, const void *body,
		    size_t len, const char *allow);
/* httpd_response(), queued and released: MHD_NO if it could not be. */
enum MHD_Result	 httpd_reply(struct MHD_Connection *conn,
		    unsigned int status, const char *ctype, const void *body,
		    size_t len, const char *allow);
/* The same with a text/plain body. */
enum MHD_Result	 httpd_text(struct MHD_Connection *conn, unsigned int status,
		    const char *text, const char *allow);
/*
 * One libmicrohttpd message (MHD_OPTION_EXTERNAL_LOGGER) as a warning
 * "<who>: libmicrohttpd: ...", its line end removed, at most one per
 * `interval_s` through `lim`.
 */
void		 httpd_log(struct log_limit *lim, int interval_s,
		    const char *who, const char *fmt, va_list ap);

#endif
