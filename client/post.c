/*
 * post.c: POST one batch, read the answer, decide what it means.
 *
 * The outcome rules are PROTOCOL.md 2.3.  Only a 200 whose body is exactly
 * a valid acknowledgement of this batch counts as delivered: a captive
 * portal or a proxy error page cannot forge one without the key.  The
 * gateway answers everything else with a one-line text/plain body, which
 * is how an answer of the gateway is told from a proxy's or a web
 * server's error page (usually HTML).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "log.h"
#include "util.h"
#include "wire.h"

#include "post.h"
#include "stats.h"

#define POST_PATH	"/v1/batch"

struct post {
	CURL		*curl;
	_Atomic int	*abort_flag;
	char		 errbuf[CURL_ERROR_SIZE];
	int		 fresh;		/* settings changed: new connection */

	/* the answer of the current POST */
	char		 body[POST_BODY_MAX + 1];
	size_t		 body_len;
	int		 body_over;
	int		 have_retry_after;
	uint64_t	 retry_after;
	int		 text_plain;
};

static size_t
post_write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct post	*po = arg;
	size_t		 n = size * nmemb;

	if (n > POST_BODY_MAX - po->body_len) {
		po->body_over = 1;
		return 0;	/* aborts the transfer: over the ceiling */
	}
	memcpy(po->body + po->body_len, p, n);
	po->body_len += n;
	return n;
}

/* 1 if the header line `p` (n bytes) is `name` (with its colon). */
static int
post_header_is(const char *p, size_t n, const char *name, size_t *vstart)
{
	size_t	len = strlen(name), i;

	if (n <= len || strncasecmp(p, name, len) != 0)
		return 0;
	i = len;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	*vstart = i;
	return 1;
}

static size_t
post_header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct post	*po = arg;
	size_t		 n = size * nmemb, i, j = 0;
	char		 v[32];
	uint64_t	 secs;

	/* A new status line (proxy CONNECT, 100, final): forget the last. */
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		po->have_retry_after = 0;
		po->text_plain = 0;
		return n;
	}
	if (post_header_is(p, n, "content-type:", &i)) {
		static const char tp[] = "text/plain";

		po->text_plain = n - i >= sizeof(tp) - 1 &&
		    strncasecmp(p + i, tp, sizeof(tp) - 1) == 0 &&
		    (n - i == sizeof(tp) - 1 || p[i + sizeof(tp) - 1] == ';' ||
		    p[i + sizeof(tp) - 1] == '\r' ||
		    p[i + sizeof(tp) - 1] == ' ');
		return n;
	}
	if (!post_header_is(p, n, "retry-after:", &i))
		return n;
	/* delta-seconds only; an HTTP-date falls back to the back-off */
	while (i < n && isdigit((unsigned char)p[i]) && j < sizeof(v) - 1)
		v[j++] = p[i++];
	v[j] = '\0';
	if (j > 0 && util_parse_u64(v, &secs) == 0) {
		po->retry_after = secs;
		po->have_retry_after = 1;
	}
	return n;
}

static int
post_xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct post	*po = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(po->abort_flag) ? 1 : 0;
}

int
post_new(struct post **out, const struct post_params *p,
    _Atomic int *abort_flag)
{
	struct post	*po;

	if ((po = calloc(1, sizeof(*po))) == NULL) {
		log_error("post: out of memory");
		return -1;
	}
	po->abort_flag = abort_flag;
	if ((po->curl = curl_easy_init()) == NULL) {
		log_error("post: cannot create a libcurl handle");
		free(po);
		return -1;
	}
	if (post_configure(po, p) == -1) {
		post_free(po);
		return -1;
	}
	*out = po;
	return 0;
}

/* Sets an option and fails on the first one libcurl refuses. */
#define SETOPT(opt, val) do {						\
	CURLcode setopt_rc_ = curl_easy_setopt(c, opt, val);		\
	if (setopt_rc_ != CURLE_OK) {					\
		log_error("post: libcurl refuses %s: %s", #opt,		\
		    curl_easy_strerror(setopt_rc_));			\
		goto out;						\
	}								\
} while (0)

int
post_configure(struct post *po, const struct post_params *p)
{
	CURL	*c = po->curl;
	char	 url[4096];
	size_t	 n;
	long	 version;
	int	 rc = -1;

	/* base URL without its trailing '/', then the endpoint */
	n = strlen(p->gateway_url);
	if (n > 0 && p->gateway_url[n - 1] == '/')
		n--;
	if (n > INT32_MAX || util_snprintf(url, sizeof(url), "%.*s%s",
	    (int)n, p->gateway_url, POST_PATH) == -1) {
		log_error("post: gateway_url too long");
		goto out;
	}

	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_ERRORBUFFER, po->errbuf);
	SETOPT(CURLOPT_CONNECTTIMEOUT, (long)p->connect_timeout);
	SETOPT(CURLOPT_TIMEOUT, (long)p->request_timeout);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);

	/*
	 * Proxy: unset lets libcurl read http_proxy, https_proxy and
	 * no_proxy; "" forces a direct connection whatever the environment.
	 */
	if (p->proxy[0] == '\0')
		SETOPT(CURLOPT_PROXY, (char *)NULL);
	else if (strcmp(p->proxy, "none") == 0)
		SETOPT(CURLOPT_PROXY, "");
	else
		SETOPT(CURLOPT_PROXY, p->proxy);
	/* an explicit "" turns no_proxy from the environment off */
	SETOPT(CURLOPT_NOPROXY, p->ignore_no_proxy ? "" : (char *)NULL);
	/* an http:// or bare proxy URL keeps this type; others override it */
	SETOPT(CURLOPT_PROXYTYPE, p->proxy_http10 ? (long)CURLPROXY_HTTP_1_0 :
	    (long)CURLPROXY_HTTP);
	SETOPT(CURLOPT_HTTPPROXYTUNNEL, p->tunnel ? 1L : 0L);

	switch (p->http_version) {
	case POST_HTTP_10:
		version = CURL_HTTP_VERSION_1_0;
		break;
	case POST_HTTP_11:
		version = CURL_HTTP_VERSION_1_1;
		break;
	default:
		version = CURL_HTTP_VERSION_NONE;
		break;
	}
	SETOPT(CURLOPT_HTTP_VERSION, version);
	/* HTTP/1.0 chains close after each answer: assume nothing else */
	SETOPT(CURLOPT_FORBID_REUSE, p->http_version == POST_HTTP_10 ? 1L : 0L);

	SETOPT(CURLOPT_CAINFO, p->ca_file[0] ? p->ca_file : (char *)NULL);
	SETOPT(CURLOPT_PINNEDPUBLICKEY,
	    p->pinned_pubkey[0] ? p->pinned_pubkey : (char *)NULL);

	SETOPT(CURLOPT_WRITEFUNCTION, post_write_cb);
	SETOPT(CURLOPT_WRITEDATA, po);
	SETOPT(CURLOPT_HEADERFUNCTION, post_header_cb);
	SETOPT(CURLOPT_HEADERDATA, po);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_XFERINFOFUNCTION, post_xferinfo_cb);
	SETOPT(CURLOPT_XFERINFODATA, po);
	/* a connection made under the old settings must not be reused */
	po->fresh = 1;
	rc = 0;
 out:
	return rc;
}

void
post_free(struct post *po)
{
	if (po == NULL)
		return;
	if (po->curl != NULL)
		curl_easy_cleanup(po->curl);
	free(po);
}

/*
 * A short printable reason from a body: the first line of a text answer,
 * the <title> of an HTML page.
 */
static void
post_reason(const char *body, size_t len, int text_plain, char *out,
    size_t outlen)
{
	const char	*p = body, *t;
	size_t		 i, j = 0, n = len;

	if (!text_plain && (t = strcasestr(body, "<title>")) != NULL) {
		p = t + 7;
		n = len - (size_t)(p - body);
	}
	for (i = 0; i < n && j + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\n' || ch == '\r' || (p != body && ch == '<'))
			break;
		out[j++] = isprint(ch) ? (char)ch : '?';
	}
	out[j] = '\0';
	if (j == 0)
		snprintf(out, outlen, "(no reason given)");
}

static struct curl_slist *
post_headers(const struct wire_header *h)
{
	struct curl_slist	*l = NULL, *n;
	char			 line[3][128];
	const char		*fixed[] = {
		"Content-Type: application/vnd.flowpost.batch",
		"Cache-Control: no-transform",
		"Expect:",	/* no 100-continue: HTTP/1.0 chains say 417 */
	};
	size_t			 i;

	if (util_snprintf(line[0], sizeof(line[0]),
	    "User-Agent: flowpost-client/%s", FLOWPOST_VERSION) == -1 ||
	    util_snprintf(line[1], sizeof(line[1]), "X-Flowpost-Client: %s",
	    h->client_id) == -1 ||
	    util_snprintf(line[2], sizeof(line[2]), "X-Flowpost-Seq: %" PRIu64,
	    h->seq) == -1)
		return NULL;
	for (i = 0; i < 3; i++) {
		if ((n = curl_slist_append(l, fixed[i])) == NULL)
			goto fail;
		l = n;
	}
	for (i = 0; i < 3; i++) {
		if ((n = curl_slist_append(l, line[i])) == NULL)
			goto fail;
		l = n;
	}
	return l;
 fail:
	curl_slist_free_all(l);
	return NULL;
}

/* An answer with an HTTP status, final or to CONNECT. */
static void
post_classify_status(const struct post_answer *a,
    const struct wire_header *h, const uint8_t *tag, const uint8_t *key,
    struct post_outcome *out)
{
	enum wire_ack_status	st;
	int			gw = a->text_plain;

	out->status = a->status;
	out->via = gw ? POST_VIA_GATEWAY : POST_VIA_UNKNOWN;
	switch (a->status) {
	case 200:
		if (!a->body_over && wire_ack_verify(a->body, a->body_len,
		    h->client_id, h->seq, tag, key, &st) == 0) {
			out->result = POST_DELIVERED;
			out->via = POST_VIA_GATEWAY;
			out->ack = st;
			return;
		}
		STATS_INC(bad_ack);
		out->result = POST_RETRY;
		out->via = POST_VIA_OTHER;
		if (a->body_over)
			snprintf(out->reason, sizeof(out->reason), "200 with a "
			    "body over %d bytes: not an acknowledgement "
			    "(captive portal or proxy page?)", POST_BODY_MAX);
		else {
			char first[128];

			post_reason(a->body, a->body_len, a->text_plain, first,
			    sizeof(first));
			snprintf(out->reason, sizeof(out->reason),
			    "200 without a valid acknowledgement (captive "
			    "portal or proxy page?): %s", first);
		}
		return;
	case 413:
		/* the gateway's, a web server's or a proxy's: all the same */
		out->result = POST_TOO_BIG;
		break;
	case 411:
	case 417:
	case 505:
		/*
		 * The client always sends Content-Length and never Expect:
		 * something on the way changed the request, or (505) speaks
		 * an older HTTP than the request.
		 */
		out->result = POST_RETRY;
		out->via = POST_VIA_OTHER;
		break;
	case 429:
		out->result = a->have_retry_after ? POST_RETRY_AFTER :
		    POST_RETRY;
		out->retry_after_s = a->retry_after;
		break;
	case 403:
	case 405:
	case 407:
	case 501:
	case 502:
	case 503:
	case 504:
		if (!gw) {
			/* a proxy's refusal or error page */
			out->result = POST_RETRY;
			out->via = POST_VIA_OTHER;
			break;
		}
		if (a->status == 403)
			out->result = POST_STUCK;
		else if (a->status == 503 && a->have_retry_after) {
			out->result = POST_RETRY_AFTER;
			out->retry_after_s = a->retry_after;
		} else
			out->result = POST_RETRY;
		break;
	case 400:
	case 401:
	case 404:
		out->result = POST_STUCK;
		break;
	case 410:
		/* only the gateway's 410 may send a batch to quarantine */
		out->result = gw ? POST_REJECTED : POST_RETRY;
		break;
	default:
		out->result = POST_RETRY;
		break;
	}
	if (a->body_over)
		snprintf(out->reason, sizeof(out->reason), "(body over %d "
		    "bytes)", POST_BODY_MAX);
	else
		post_reason(a->body, a->body_len, a->text_plain, out->reason,
		    sizeof(out->reason));
}

void
post_classify(const struct post_answer *a, const struct wire_header *h,
    const uint8_t *tag, const uint8_t *key, struct post_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->result = POST_RETRY;
	out->via = POST_VIA_UNKNOWN;
	if (a->aborted) {
		out->result = POST_ABORTED;
		snprintf(out->reason, sizeof(out->reason), "shutting down");
		return;
	}
	if (a->curl_rc == CURLE_OK || (a->curl_rc == CURLE_WRITE_ERROR &&
	    a->body_over && a->status != 0)) {
		post_classify_status(a, h, tag, key, out);
		return;
	}
	/* no usable HTTP answer: network, TLS, proxy or time-out */
	out->result = POST_RETRY;
	if (a->connect_code != 0 && a->connect_code != 200) {
		/* the proxy refused the tunnel (403, 405, 407, 501, ...) */
		out->status = a->connect_code;
		out->via = POST_VIA_TRANSPORT;
	} else if (a->status >= 300) {
		/*
		 * An answer came and then the connection broke, as when a
		 * server answers 413 early and closes while the body is
		 * still going up: the status says what happened.
		 */
		post_classify_status(a, h, tag, key, out);
		return;
	} else if (a->curl_rc == CURLE_OPERATION_TIMEDOUT && a->request_sent)
		out->via = POST_VIA_UNKNOWN;	/* slow, not necessarily lost */
	else
		out->via = POST_VIA_TRANSPORT;
	/* a cut-off reason is still a good log line */
	(void)util_snprintf(out->reason, sizeof(out->reason), "%s%s%s",
	    curl_easy_strerror((CURLcode)a->curl_rc),
	    a->curl_error[0] ? ": " : "", a->curl_error);
}

void
post_batch(struct post *po, const uint8_t *data, size_t len,
    const uint8_t *key, struct post_outcome *out)
{
	struct wire_header	 h;
	struct post_answer	 a;
	struct curl_slist	*hdrs = NULL;
	enum wire_err		 we;
	CURLcode		 rc;
	CURL			*c = po->curl;
	curl_off_t		 pretransfer = 0;
	struct curl_header	*date;
	time_t			 when;

	memset(out, 0, sizeof(*out));
	out->result = POST_RETRY;
	out->via = POST_VIA_UNKNOWN;
	if ((we = wire_parse_header(data, len, &h)) != WIRE_OK) {
		/* cannot happen with spooled batches; never retry it */
		out->result = POST_REJECTED;
		snprintf(out->reason, sizeof(out->reason), "batch header "
		    "unreadable: %s", wire_strerror(we));
		return;
	}
	if ((hdrs = post_headers(&h)) == NULL) {
		snprintf(out->reason, sizeof(out->reason), "out of memory");
		goto out;
	}
	po->body_len = 0;
	po->body_over = 0;
	po->have_retry_after = 0;
	po->retry_after = 0;
	po->text_plain = 0;
	po->errbuf[0] = '\0';
	SETOPT(CURLOPT_HTTPHEADER, hdrs);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDS, data);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	SETOPT(CURLOPT_FRESH_CONNECT, po->fresh ? 1L : 0L);

	rc = curl_easy_perform(c);
	po->fresh = 0;
	po->body[po->body_len] = '\0';

	memset(&a, 0, sizeof(a));
	a.curl_rc = (int)rc;
	a.curl_error = po->errbuf;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &a.connect_code);
	curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
	a.request_sent = pretransfer > 0;
	a.aborted = rc == CURLE_ABORTED_BY_CALLBACK &&
	    atomic_load(po->abort_flag);
	a.body = po->body;
	a.body_len = po->body_len;
	a.body_over = po->body_over;
	a.text_plain = po->text_plain;
	a.have_retry_after = po->have_retry_after;
	a.retry_after = po->retry_after;
	post_classify(&a, &h, wire_tag(data, len), key, out);
	/* the final answer's Date: the kit's clock check (heartbeat.c) */
	if (curl_easy_header(c, "Date", 0, CURLH_HEADER, -1, &date) ==
	    CURLHE_OK && (when = curl_getdate(date->value, NULL)) > 0)
		out->date_unix = (int64_t)when;
 out:
	/* the list must outlive the transfer; unset it before freeing */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_slist_free_all(hdrs);
}
