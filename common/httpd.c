/*
 * httpd.c: answers and log lines for the libmicrohttpd servers.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "httpd.h"

struct MHD_Response *
httpd_response(const char *ctype, const void *body, size_t len,
    const char *allow)
{
	struct MHD_Response	*resp;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	return resp;
}

enum MHD_Result
httpd_reply(struct MHD_Connection *conn, unsigned int status,
    const char *ctype, const void *body, size_t len, const char *allow)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;

	if ((resp = httpd_response(ctype, body, len, allow)) == NULL)
		return MHD_NO;
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
httpd_text(struct MHD_Connection *conn, unsigned int status,
    const char *text, const char *allow)
{
	return httpd_reply(conn, status, "text/plain", text, strlen(text),
	    allow);
}

void
httpd_log(struct log_limit *lim, int interval_s, const char *who,
    const char *fmt, va_list ap)
{
	char	 line[512];
	size_t	 n;

	/* libmicrohttpd's message; a cut one is still worth the line */
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_limited(lim, interval_s, LOGL_WARN, "%s: libmicrohttpd: %s", who,
	    line);
}
