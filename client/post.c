/*
 * post.c: POST one batch, read the answer, decide what it means.
 *
 * The outcome rules are PROTOCOL.md 2.3.  Only a 200 whose body is exactly
 * a valid acknowledgement of this batch counts as delivered: a captive
 * portal or a proxy error page cannot forge one without the key.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "log.h"
#include "util.h"
#include "wire.h"

#include "post.h"
#include "stats.h"

#define POST_BODY_MAX	4096	/* an ack is ~130 bytes, reasons short */
#define POST_PATH	"/v1/batch"

struct post {
	CURL		*curl;
	_Atomic int	*abort_flag;
	char		 errbuf[CURL_ERROR_SIZE];

	/* the answer of the current POST */
	char		 body[POST_BODY_MAX + 1];
	size_t		 body_len;
	int		 body_over;
	int		 have_retry_after;
	uint64_t	 retry_after;
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

static size_t
post_header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	static const char	 name[] = "retry-after:";
	struct post		*po = arg;
	size_t			 n = size * nmemb, i, j = 0;
	char			 v[32];
	uint64_t		 secs;

	/* A new status line (proxy CONNECT, 100, final): forget the last. */
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		po->have_retry_after = 0;
		return n;
	}
	if (n <= sizeof(name) - 1 || strncasecmp(p, name,
	    sizeof(name) - 1) != 0)
		return n;
	i = sizeof(name) - 1;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
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

/* First line of the response body, printable characters only. */
static void
post_reason(const struct post *po, char *out, size_t outlen)
{
	size_t	i, j = 0;

	for (i = 0; i < po->body_len && j + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)po->body[i];

		if (ch == '\n' || ch == '\r')
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

static void
post_classify(struct post *po, const struct wire_header *h,
    const uint8_t *tag, const uint8_t *key, struct post_outcome *out)
{
	enum wire_ack_status	st;

	switch (out->status) {
	case 200:
		if (!po->body_over && wire_ack_verify(po->body, po->body_len,
		    h->client_id, h->seq, tag, key, &st) == 0) {
			out->result = POST_DELIVERED;
			out->ack = st;
			return;
		}
		STATS_INC(bad_ack);
		out->result = POST_RETRY;
		if (po->body_over)
			snprintf(out->reason, sizeof(out->reason), "200 with a "
			    "body over %d bytes: not an acknowledgement "
			    "(captive portal or proxy page?)", POST_BODY_MAX);
		else {
			char first[128];

			post_reason(po, first, sizeof(first));
			snprintf(out->reason, sizeof(out->reason),
			    "200 without a valid acknowledgement (captive "
			    "portal or proxy page?): %s", first);
		}
		return;
	case 429:
	case 503:
		out->result = po->have_retry_after ? POST_RETRY_AFTER :
		    POST_RETRY;
		out->retry_after_s = po->retry_after;
		break;
	case 400:
	case 401:
	case 403:
	case 404:
	case 413:
		out->result = POST_STUCK;
		break;
	case 410:
		out->result = POST_REJECTED;
		break;
	default:
		out->result = POST_RETRY;
		break;
	}
	if (po->body_over)
		snprintf(out->reason, sizeof(out->reason), "(body over %d "
		    "bytes)", POST_BODY_MAX);
	else
		post_reason(po, out->reason, sizeof(out->reason));
}

void
post_batch(struct post *po, const uint8_t *data, size_t len,
    const uint8_t *key, struct post_outcome *out)
{
	struct wire_header	 h;
	struct curl_slist	*hdrs = NULL;
	enum wire_err		 we;
	CURLcode		 rc;
	CURL			*c = po->curl;
	long			 connect_code = 0;

	memset(out, 0, sizeof(*out));
	out->result = POST_RETRY;
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
	po->errbuf[0] = '\0';
	SETOPT(CURLOPT_HTTPHEADER, hdrs);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDS, data);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);

	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	po->body[po->body_len] = '\0';

	if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(po->abort_flag)) {
		out->result = POST_ABORTED;
		snprintf(out->reason, sizeof(out->reason), "shutting down");
	} else if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR &&
	    po->body_over && out->status != 0)) {
		post_classify(po, &h, wire_tag(data, len), key, out);
	} else {
		/* no usable HTTP answer: network, TLS, proxy or time-out */
		out->result = POST_RETRY;
		if (connect_code != 0 && connect_code != 200)
			out->status = connect_code;
		/* a cut-off reason is still a good log line */
		(void)util_snprintf(out->reason, sizeof(out->reason), "%s%s%s",
		    curl_easy_strerror(rc), po->errbuf[0] ? ": " : "",
		    po->errbuf);
	}
 out:
	/* the list must outlive the transfer; unset it before freeing */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_slist_free_all(hdrs);
}
