/*
 * http.c: libmicrohttpd handler for the batch endpoint.
 *
 * MHD calls the handler several times per request: once when the headers
 * are in (the request state is allocated here and every check that needs
 * no body is made, so a refusal costs no body bytes), once per piece of
 * body, and once more with no data when the body is complete.  The state
 * is freed in the completion callback, whatever way the request ended.
 *
 * Rate limits (ratelimit.c) sit at both ends: the global bucket is charged
 * on the first callback, before any body byte is read; the client's
 * buckets on the last, around ingest's authentication.
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
#include "httpd.h"
#include "log.h"
#include "util.h"

#define HTTP_STATUS_MIN		100
#define HTTP_STATUS_MAX		599
#define HTTP_PATH_MAX		512
/*
 * Each connection's libmicrohttpd memory pool: request line, headers, the
 * read buffer the body passes through (in pieces, into http_req's own
 * buffer) and the answer's headers.  libmicrohttpd zeroes the whole pool
 * whenever a keep-alive connection goes on to its next request, so every
 * open connection keeps all of it resident: pool size x open connections
 * is the HTTP layer's share of the gateway's memory.  At 64 KiB, 1,000
 * clients on keep-alive connections (bench/run --only gwload) took the
 * gateway to 69 MiB peak RSS, over the 64 MiB target; at 16 KiB it is
 * 16 MiB for the default connection_limit of 1024.  A client's request
 * headers are about 300 bytes, a few KiB once proxies add theirs, so
 * 16 KiB leaves room; bodies only need the read buffer in pieces.
 */
#define HTTP_MEMORY_LIMIT	(16 * 1024)
/*
 * Pending connections the kernel queues for accept(): a restart of the
 * gateway brings every kit back at once, and a SYN that finds the queue
 * full is retried only a second later.  The kernel caps it at
 * net.core.somaxconn (4096 by default since Linux 5.4).
 */
#define HTTP_BACKLOG		4096
#define NS_PER_S		INT64_C(1000000000)

/*
 * GnuTLS priorities for HTTPS: the system's defaults, with TLS 1.2 as the
 * oldest version (every libcurl the client runs on speaks it).
 */
#define HTTP_TLS_PRIORITIES	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

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
	struct keys_store	*keys;		/* may be NULL: no client limits */
	struct ratelimit	*rl;
	struct ratelimit_params	 rates;
	char			*tls_cert;	/* our copies; wiped at stop */
	char			*tls_key;
	size_t			 tls_key_len;
	int			 quiesced;
	int			 quiesced_fd;	/* ours to close after stop */
	atomic_int		 closing;	/* answer with Connection: close */

	pthread_mutex_t		 mu;		/* the two fields below */
	pthread_cond_t		 idle;
	uint64_t		 requests;	/* in progress */
	uint64_t		 inflight_bytes;	/* announced bodies */

	_Atomic uint64_t	 status[HTTP_STATUS_MAX - HTTP_STATUS_MIN + 1];
	_Atomic uint64_t	 limited[HTTP_LIMIT_COUNT];
};

struct http_req {
	enum http_route		 route;
	int			 answered;	/* a response is queued */
	int			 overflow;	/* more body than announced */
	uint64_t		 reserved;	/* of inflight_bytes */
	struct buf		 body;
};

static struct log_limit http_lim_mhd, http_lim_limit[HTTP_LIMIT_COUNT];

static const char *const http_limit_names[HTTP_LIMIT_COUNT] = {
	[HTTP_LIMIT_INFLIGHT] = "inflight_bytes",
	[HTTP_LIMIT_GLOBAL] = "global",
	[HTTP_LIMIT_CLIENT] = "client",
	[HTTP_LIMIT_AUTH] = "auth_failures",
};

const char *
http_limit_name(enum http_limit l)
{
	if ((unsigned int)l >= HTTP_LIMIT_COUNT)
		return "unknown";
	return http_limit_names[l];
}

int
http_tls_supported(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

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

/*
 * The batch endpoint waits with poll(), never epoll.  libmicrohttpd's
 * epoll loop (0.9.75, Debian 12's, and later sources alike) collects events
 * with repeated epoll_wait() calls of at most 128 events, each allowed to
 * block until the next connection timeout: when one call returns exactly
 * 128, the next one sleeps, up to connection_timeout (30 s by default),
 * while the connections it has just collected wait unserved, and some of
 * them are then closed as idle.  A worker thread with 128 or more busy
 * connections meets it: 1,000 clients posting (bench/run --only gwload)
 * stalled in 4 of 6 runs.  poll() is level-triggered and called once a
 * round; it costs a pass over the thread's connections per wake-up,
 * microseconds for the few hundred each thread holds.  (metrics.c
 * keeps epoll: at most 64 connections never fill 128 events.)
 */
static unsigned int
http_batch_flags(void)
{
	return MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG | MHD_USE_POLL;
}

void
http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	httpd_log(&http_lim_mhd, 10, "http", fmt, ap);
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

/*
 * `retry_after` (seconds) is sent as Retry-After when not 0; every 429
 * has one.
 */
static enum MHD_Result
http_respond(struct http *h, struct MHD_Connection *conn, struct http_req *rq,
    int status, const char *body, size_t len, const char *allow,
    unsigned int retry_after)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	char			 retry[16];

	if ((resp = httpd_response("text/plain", body, len, allow)) == NULL)
		return MHD_NO;
	if (retry_after > 0) {
		snprintf(retry, sizeof(retry), "%u", retry_after);
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
	return http_respond(h, conn, rq, status, text, strlen(text), allow, 0);
}

/* Whole seconds until `wait_ns` has passed: at least 1, at most an hour. */
static unsigned int
http_retry_s(int64_t wait_ns)
{
	int64_t	 s = (wait_ns + NS_PER_S - 1) / NS_PER_S;

	if (s < 1)
		return 1;
	if (s > HTTP_RETRY_AFTER_MAX)
		return HTTP_RETRY_AFTER_MAX;
	return (unsigned int)s;
}

/*
 * Answers 429 for `why`, counted by reason and logged at most every ten
 * seconds per reason.  `client` names the client id for per-client limits.
 */
static enum MHD_Result
http_limited(struct http *h, struct MHD_Connection *conn, struct http_req *rq,
    enum http_limit why, unsigned int retry_s, const char *client)
{
	const char	*text = "rate limited, retry later\n";

	atomic_fetch_add_explicit(&h->limited[why], 1, memory_order_relaxed);
	switch (why) {
	case HTTP_LIMIT_INFLIGHT:
		log_limited(&http_lim_limit[why], 10, LOGL_WARN, "http: bodies "
		    "in progress reached %llu bytes; answering 429",
		    (unsigned long long)h->inflight_max);
		text = "busy, retry later\n";
		break;
	case HTTP_LIMIT_GLOBAL:
		log_limited(&http_lim_limit[why], 10, LOGL_WARN, "http: more "
		    "than rate_limit_global (%llu) batch POSTs per second; "
		    "answering 429", (unsigned long long)h->rates.global);
		break;
	case HTTP_LIMIT_CLIENT:
		log_limited(&http_lim_limit[why], 10, LOGL_WARN, "http: client "
		    "%s: more than rate_limit_client (%llu) batches per "
		    "second; answering 429", client,
		    (unsigned long long)h->rates.client);
		text = "rate limited for this client, retry later\n";
		break;
	case HTTP_LIMIT_AUTH:
		log_limited(&http_lim_limit[why], 10, LOGL_WARN, "http: client "
		    "id %s: more than rate_limit_auth_failures (%llu) failed "
		    "authentications per second; answering 429 instead of 401",
		    client, (unsigned long long)h->rates.auth_failures);
		text = "too many failed authentications for this client id, "
		    "retry later\n";
		break;
	case HTTP_LIMIT_COUNT:
		break;
	}
	return http_respond(h, conn, rq, 429, text, strlen(text), NULL,
	    retry_s);
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
	int64_t		 wait;

	/* Every batch POST counts, whoever sends it and whatever it holds. */
	if (ratelimit_global(h->rl, util_mono_ns(), &wait) == -1)
		return http_limited(h, conn, rq, HTTP_LIMIT_GLOBAL,
		    http_retry_s(wait), NULL);
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
	if (http_reserve(h, rq, len) == -1)
		return http_limited(h, conn, rq, HTTP_LIMIT_INFLIGHT,
		    HTTP_RETRY_AFTER, NULL);
	if (buf_init(&rq->body, 0, (size_t)len) == -1)
		return http_text(h, conn, rq, 500, "out of memory\n", NULL);
	return MHD_YES;
}

/*
 * The client id of the clear header into `id` if it is in the keys file,
 * else "".  Costs a header parse and a lookup, nothing of the AEAD; the id
 * is not authenticated yet.
 */
static void
http_known_client(struct http *h, const uint8_t *body, size_t len, char *id,
    size_t idlen)
{
	struct wire_header	 wh;
	struct keys		*k;

	id[0] = '\0';
	if (h->keys == NULL || wire_parse_header(body, len, &wh) != WIRE_OK)
		return;
	k = keys_store_get(h->keys);
	if (keys_find(k, wh.client_id) != NULL)
		(void)util_snprintf(id, idlen, "%s", wh.client_id);
	keys_unref(k);
}

/*
 * 1 if `r` acknowledges a batch forwarded now: "FPACK1 id seq new mac".
 * The line was formatted by wire_ack_format(), so its fields are known.
 */
static int
http_ack_new(const struct ingest_reply *r)
{
	const char	*p = r->body, *end = r->body + r->body_len;
	int		 field = 0;

	if (r->status != 200)
		return 0;
	while (p < end && field < 3) {
		if (*p++ == ' ')
			field++;
	}
	return field == 3 && end - p > 4 && memcmp(p, "new ", 4) == 0;
}

/*
 * Last callback of a batch POST.  A forger can put any client id into the
 * clear header, and anybody who once saw a sealed batch can send it again,
 * so nothing either can cause may use up the real client's request
 * bucket: that bucket is only read before the AEAD, and only charged for
 * a batch that authenticated and was forwarded now (a replay is answered
 * dup or 410 and charges nothing).  Failed authentications go to the id's
 * own failure bucket, which changes 401 into 429 once they come too fast
 * and never holds back a batch that authenticates.
 */
static enum MHD_Result
http_batch_finish(struct http *h, struct MHD_Connection *conn,
    struct http_req *rq)
{
	struct ingest_reply	 r;
	char			 id[WIRE_CLIENT_ID_MAX + 1];
	int64_t			 wait;

	if (rq->overflow)
		return http_text(h, conn, rq, 413, "body over its "
		    "Content-Length or out of memory\n", NULL);
	http_known_client(h, rq->body.data, rq->body.len, id, sizeof(id));
	if (id[0] != '\0' && ratelimit_client_check(h->rl, id, util_mono_ns(),
	    &wait) == -1) {
		buf_free(&rq->body);
		return http_limited(h, conn, rq, HTTP_LIMIT_CLIENT,
		    http_retry_s(wait), id);
	}
	ingest_batch(h->ig, rq->body.data, rq->body.len, util_real_us(), &r);
	/* The body is no longer needed; free it before the answer goes. */
	buf_free(&rq->body);
	if (id[0] != '\0') {
		if (r.status == 401) {
			if (ratelimit_auth_failure(h->rl, id, util_mono_ns(),
			    &wait) == -1)
				return http_limited(h, conn, rq,
				    HTTP_LIMIT_AUTH, http_retry_s(wait), id);
		} else if (http_ack_new(&r))
			ratelimit_client_charge(h->rl, id, util_mono_ns());
	}
	return http_respond(h, conn, rq, r.status, r.body, r.body_len, NULL,
	    0);
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

/* Frees what http_start() allocated, the TLS key wiped. */
static void
http_free(struct http *h)
{
	if (h->tls_key != NULL) {
		explicit_bzero(h->tls_key, h->tls_key_len);
		free(h->tls_key);
	}
	free(h->tls_cert);
	ratelimit_free(h->rl);
	free(h);
}

struct http *
http_start(const struct http_params *p, struct ingest *ig, char *err,
    size_t errlen)
{
	struct http		*h;
	struct MHD_OptionItem	 tls[4];
	unsigned int		 flags = http_batch_flags();

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		util_snprintf(err, errlen, "http: %s", strerror(errno));
		close(p->fd);
		return NULL;
	}
	h->ig = ig;
	h->keys = p->keys;
	h->rates = p->rates;
	h->max_body = p->max_body_bytes;
	h->inflight_max = 2 * p->max_body_bytes > HTTP_INFLIGHT_MIN ?
	    2 * p->max_body_bytes : HTTP_INFLIGHT_MIN;
	h->quiesced_fd = -1;
	if (http_paths(h, p->path_prefix) == -1) {
		util_snprintf(err, errlen, "http: path_prefix too long");
		goto fail;
	}
	if ((h->rl = ratelimit_new(&p->rates)) == NULL) {
		util_snprintf(err, errlen, "http: out of memory");
		goto fail;
	}
	memset(tls, 0, sizeof(tls));
	tls[0].option = MHD_OPTION_END;
	if (p->tls_cert != NULL && p->tls_key != NULL) {
		if (!http_tls_supported()) {
			util_snprintf(err, errlen, "http: tls_cert is set, but "
			    "this libmicrohttpd was built without TLS support; "
			    "terminate TLS in a reverse proxy instead");
			goto fail;
		}
		if ((h->tls_cert = strdup(p->tls_cert)) == NULL ||
		    (h->tls_key = strdup(p->tls_key)) == NULL) {
			util_snprintf(err, errlen, "http: out of memory");
			goto fail;
		}
		h->tls_key_len = strlen(h->tls_key);
		flags |= MHD_USE_TLS;
		tls[0].option = MHD_OPTION_HTTPS_MEM_CERT;
		tls[0].ptr_value = h->tls_cert;
		tls[1].option = MHD_OPTION_HTTPS_MEM_KEY;
		tls[1].ptr_value = h->tls_key;
		tls[2].option = MHD_OPTION_HTTPS_PRIORITIES;
		tls[2].ptr_value = (void *)(uintptr_t)HTTP_TLS_PRIORITIES;
		tls[3].option = MHD_OPTION_END;
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
	h->d = MHD_start_daemon(flags, 0, NULL, NULL,
	    http_handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)p->fd,
	    MHD_OPTION_THREAD_POOL_SIZE, p->threads,
	    MHD_OPTION_CONNECTION_LIMIT, p->connection_limit,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, p->per_ip_connection_limit,
	    MHD_OPTION_CONNECTION_TIMEOUT, p->connection_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	if (h->d == NULL) {
		util_snprintf(err, errlen, "http: libmicrohttpd did not start "
		    "(threads %u, connection_limit %u%s)", p->threads,
		    p->connection_limit, h->tls_cert != NULL ? "; with TLS: "
		    "do tls_cert and tls_key belong together?" : "");
		pthread_cond_destroy(&h->idle);
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	/*
	 * GnuTLS parsed the key into its own credentials during the start;
	 * the text is not read again, so it is wiped now.  The buffer stays
	 * allocated because the daemon keeps the pointer.
	 */
	if (h->tls_key != NULL)
		explicit_bzero(h->tls_key, h->tls_key_len);
	return h;
fail:
	close(p->fd);
	http_free(h);
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
	http_free(h);
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

void
http_foreach_limit(struct http *h, void (*cb)(const char *reason, uint64_t n,
    void *arg), void *arg)
{
	for (int i = 0; i < HTTP_LIMIT_COUNT; i++)
		cb(http_limit_name(i), atomic_load_explicit(&h->limited[i],
		    memory_order_relaxed), arg);
}

static int
http_key_known(const char *id, void *arg)
{
	return keys_find(arg, id) != NULL;
}

void
http_keys_changed(struct http *h)
{
	struct keys	*k;

	if (h == NULL || h->keys == NULL)
		return;
	k = keys_store_get(h->keys);
	ratelimit_retain(h->rl, http_key_known, k);
	keys_unref(k);
}
