/*
 * http.c: libmicrohttpd handler for the batch endpoint.
 *
 * MHD calls the handler several times per request: once when the headers
 * are in (the request state is allocated here and every check that needs
 * no body is made, so a refusal costs no body bytes), once per piece of
 * body, and once more with no data when the body is complete.  The state
 * is freed in the completion callback, whatever way the request ended.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define HTTP_STATUS_MIN		100
#define HTTP_STATUS_MAX		599
#define HTTP_PATH_MAX		512
#define HTTP_MEMORY_LIMIT	(64 * 1024)	/* per connection: headers */
#define HTTP_BACKLOG		512

enum http_route {
	HTTP_ROUTE_NONE,
	HTTP_ROUTE_BATCH,
	HTTP_ROUTE_HEALTH,
};

struct http {
	struct MHD_Daemon	*d;
	struct ingest		*ig;
	uint64_t		 max_body;
	uint64_t		 inflight_max;
	char			 batch_path[HTTP_PATH_MAX];
	char			 health_path[HTTP_PATH_MAX];
	int			 quiesced;
	int			 quiesced_fd;	/* ours to close after stop */
	atomic_int		 closing;	/* answer with Connection: close */

	pthread_mutex_t		 mu;		/* the two fields below */
	pthread_cond_t		 idle;
	uint64_t		 requests;	/* in progress */
	uint64_t		 inflight_bytes;	/* announced bodies */

	_Atomic uint64_t	 status[HTTP_STATUS_MAX - HTTP_STATUS_MIN + 1];
};

struct http_req {
	enum http_route		 route;
	int			 answered;	/* a response is queued */
	int			 overflow;	/* more body than announced */
	uint64_t		 reserved;	/* of inflight_bytes */
	struct buf		 body;
};

static struct log_limit http_lim_mhd, http_lim_busy;

unsigned int
http_mhd_flags(void)
{
	unsigned int	 f = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG;

	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		f |= MHD_USE_EPOLL;
	else
		f |= MHD_USE_POLL;
	return f;
}

void
http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char	 line[512];
	size_t	 n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_limited(&http_lim_mhd, 10, LOGL_WARN, "http: libmicrohttpd: %s",
	    line);
}

int
http_listen(const struct config_addr *a, int *fd, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	int			 s, one = 1;

	*fd = -1;
	s = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (s == -1) {
		util_snprintf(err, errlen, "%s: socket: %s", a->name,
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (const struct sockaddr *)&a->ss, a->sslen) == -1) {
		util_snprintf(err, errlen, "%s: bind: %s", a->name,
		    strerror(errno));
		close(s);
		return -1;
	}
	if (listen(s, HTTP_BACKLOG) == -1) {
		util_snprintf(err, errlen, "%s: listen: %s", a->name,
		    strerror(errno));
		close(s);
		return -1;
	}
	if (getsockname(s, (struct sockaddr *)&ss, &sslen) == 0)
		util_format_sockaddr((struct sockaddr *)&ss, bound, boundlen);
	else
		util_snprintf(bound, boundlen, "%s", a->name);
	*fd = s;
	return 0;
}

static void
http_count(struct http *h, int status)
{
	if (status >= HTTP_STATUS_MIN && status <= HTTP_STATUS_MAX)
		atomic_fetch_add_explicit(&h->status[status - HTTP_STATUS_MIN],
		    1, memory_order_relaxed);
}

static enum MHD_Result
http_respond(struct http *h, struct MHD_Connection *conn, struct http_req *rq,
    int status, const char *body, size_t len, const char *allow)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	char			 retry[16];

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (status == 429) {
		snprintf(retry, sizeof(retry), "%d", HTTP_RETRY_AFTER);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    retry);
	}
	if (atomic_load(&h->closing))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		    "close");
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		rq->answered = 1;
		http_count(h, status);
	}
	return ret;
}

static enum MHD_Result
http_text(struct http *h, struct MHD_Connection *conn, struct http_req *rq,
    int status, const char *text, const char *allow)
{
	return http_respond(h, conn, rq, status, text, strlen(text), allow);
}

static enum http_route
http_route(const struct http *h, const char *url)
{
	if (strcmp(url, h->batch_path) == 0)
		return HTTP_ROUTE_BATCH;
	if (strcmp(url, h->health_path) == 0)
		return HTTP_ROUTE_HEALTH;
	return HTTP_ROUTE_NONE;
}

/* Reserves `n` announced body bytes; -1 if the budget is used up. */
static int
http_reserve(struct http *h, struct http_req *rq, uint64_t n)
{
	int	 rv = -1;

	pthread_mutex_lock(&h->mu);
	if (h->inflight_bytes <= h->inflight_max - n) {
		h->inflight_bytes += n;
		rq->reserved = n;
		rv = 0;
	}
	pthread_mutex_unlock(&h->mu);
	return rv;
}

/*
 * First callback of a batch POST: everything that can be refused without
 * reading the body is refused here.
 */
static enum MHD_Result
http_batch_start(struct http *h, struct MHD_Connection *conn,
    struct http_req *rq)
{
	const char	*cl, *te;
	uint64_t	 len;

	te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te != NULL || cl == NULL)
		return http_text(h, conn, rq, 411, "Content-Length required "
		    "(chunked bodies are not accepted)\n", NULL);
	if (util_parse_u64(cl, &len) == -1)
		return http_text(h, conn, rq, 400, "bad Content-Length\n",
		    NULL);
	if (len > h->max_body)
		return http_text(h, conn, rq, 413, "body over max_body_bytes\n",
		    NULL);
	if (http_reserve(h, rq, len) == -1) {
		log_limited(&http_lim_busy, 10, LOGL_WARN, "http: bodies in "
		    "progress reached %llu bytes; answering 429",
		    (unsigned long long)h->inflight_max);
		return http_text(h, conn, rq, 429, "busy, retry later\n",
		    NULL);
	}
	if (buf_init(&rq->body, 0, (size_t)len) == -1)
		return http_text(h, conn, rq, 500, "out of memory\n", NULL);
	return MHD_YES;
}

static enum MHD_Result
http_batch_finish(struct http *h, struct MHD_Connection *conn,
    struct http_req *rq)
{
	struct ingest_reply	 r;

	if (rq->overflow)
		return http_text(h, conn, rq, 413, "body over its "
		    "Content-Length or out of memory\n", NULL);
	ingest_batch(h->ig, rq->body.data, rq->body.len, util_real_us(), &r);
	/* The body is no longer needed; free it before the answer goes. */
	buf_free(&rq->body);
	return http_respond(h, conn, rq, r.status, r.body, r.body_len, NULL);
}

static enum MHD_Result
http_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http	*h = cls;
	struct http_req	*rq = *con_cls;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		buf_init(&rq->body, 0, 0);
		pthread_mutex_lock(&h->mu);
		h->requests++;
		pthread_mutex_unlock(&h->mu);
		*con_cls = rq;
		rq->route = http_route(h, url);
		switch (rq->route) {
		case HTTP_ROUTE_NONE:
			return http_text(h, conn, rq, 404, "not found\n", NULL);
		case HTTP_ROUTE_HEALTH:
			if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
			    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
				return http_text(h, conn, rq, 405,
				    "method not allowed\n", "GET, HEAD");
			return http_text(h, conn, rq, 200, "ok\n", NULL);
		case HTTP_ROUTE_BATCH:
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
				return http_text(h, conn, rq, 405,
				    "method not allowed\n", "POST");
			return http_batch_start(h, conn, rq);
		}
		return MHD_NO;
	}

	if (*upload_data_size > 0) {
		/* Body that follows an early answer is consumed and dropped. */
		if (!rq->answered && !rq->overflow &&
		    buf_append(&rq->body, upload_data, *upload_data_size) == -1)
			rq->overflow = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->answered)
		return MHD_YES;
	if (rq->route == HTTP_ROUTE_BATCH)
		return http_batch_finish(h, conn, rq);
	return MHD_NO;
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http	*h = cls;
	struct http_req	*rq = *con_cls;

	(void)conn;
	(void)toe;
	if (rq == NULL)
		return;
	*con_cls = NULL;
	buf_free(&rq->body);
	pthread_mutex_lock(&h->mu);
	h->inflight_bytes -= rq->reserved;
	h->requests--;
	if (h->requests == 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->mu);
	free(rq);
}

static int
http_paths(struct http *h, const char *prefix)
{
	if (util_snprintf(h->batch_path, sizeof(h->batch_path), "%s/v1/batch",
	    prefix) == -1 ||
	    util_snprintf(h->health_path, sizeof(h->health_path), "%s/healthz",
	    prefix) == -1)
		return -1;
	return 0;
}

struct http *
http_start(const struct http_params *p, struct ingest *ig, char *err,
    size_t errlen)
{
	struct http	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		util_snprintf(err, errlen, "http: %s", strerror(errno));
		close(p->fd);
		return NULL;
	}
	h->ig = ig;
	h->max_body = p->max_body_bytes;
	h->inflight_max = 2 * p->max_body_bytes > HTTP_INFLIGHT_MIN ?
	    2 * p->max_body_bytes : HTTP_INFLIGHT_MIN;
	h->quiesced_fd = -1;
	if (http_paths(h, p->path_prefix) == -1) {
		util_snprintf(err, errlen, "http: path_prefix too long");
		goto fail;
	}
	if (pthread_mutex_init(&h->mu, NULL) != 0) {
		util_snprintf(err, errlen, "http: cannot create a mutex");
		goto fail;
	}
	if (pthread_cond_init(&h->idle, NULL) != 0) {
		util_snprintf(err, errlen, "http: cannot create a condition");
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	h->d = MHD_start_daemon(http_mhd_flags(), 0, NULL, NULL,
	    http_handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)p->fd,
	    MHD_OPTION_THREAD_POOL_SIZE, p->threads,
	    MHD_OPTION_CONNECTION_LIMIT, p->connection_limit,
	    MHD_OPTION_CONNECTION_TIMEOUT, p->connection_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_END);
	if (h->d == NULL) {
		util_snprintf(err, errlen, "http: libmicrohttpd did not start "
		    "(threads %u, connection_limit %u)", p->threads,
		    p->connection_limit);
		pthread_cond_destroy(&h->idle);
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	return h;
fail:
	close(p->fd);
	free(h);
	return NULL;
}

void
http_quiesce(struct http *h)
{
	MHD_socket	 fd;

	if (h == NULL || h->quiesced)
		return;
	atomic_store(&h->closing, 1);
	fd = MHD_quiesce_daemon(h->d);
	h->quiesced = 1;
	/*
	 * The listening socket is ours again, but a worker thread may still
	 * look at it: it is closed after the daemon has stopped.
	 */
	if (fd != MHD_INVALID_SOCKET) {
		/* On Linux this stops listening; the number stays ours. */
		(void)shutdown(fd, SHUT_RDWR);
		h->quiesced_fd = fd;
	}
}

int
http_drain(struct http *h, int64_t timeout_ms)
{
	struct timespec	 ts;
	int		 rv = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&h->mu);
	while (h->requests > 0 && rv == 0)
		if (pthread_cond_timedwait(&h->idle, &h->mu, &ts) == ETIMEDOUT)
			rv = -1;
	pthread_mutex_unlock(&h->mu);
	return rv;
}

void
http_stop(struct http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	if (h->quiesced_fd != -1)
		close(h->quiesced_fd);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void
http_foreach_status(struct http *h, void (*cb)(int code, uint64_t n,
    void *arg), void *arg)
{
	for (int i = 0; i <= HTTP_STATUS_MAX - HTTP_STATUS_MIN; i++) {
		uint64_t n = atomic_load_explicit(&h->status[i],
		    memory_order_relaxed);

		if (n > 0)
			cb(i + HTTP_STATUS_MIN, n, arg);
	}
}
