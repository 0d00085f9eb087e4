/*
 * test_post.c: what the client makes of an answer (client/post.c).
 *
 * post_classify() is checked directly against a table of answers; then
 * post_batch() posts real batches to a tiny HTTP responder on loopback
 * that plays the gateway, a web server, a captive portal or a proxy, so
 * that the headers libcurl sends and the ones it reads back are real.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "buf.h"
#include "wire.h"

#include "post.h"
#include "stats.h"

#define REQ_MAX		(64 * 1024)

static const uint8_t key[WIRE_KEY_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
};

/* ---- a batch to post ---- */

static struct buf	batch;
static struct wire_header hdr;

static void
make_batch(uint64_t seq)
{
	struct buf		entries;
	struct wire_entry	e;
	struct wire_seal_args	a;
	uint8_t			payload[100];

	memset(payload, 0x5a, sizeof(payload));
	CHECK(buf_init(&entries, 0, 4096) == 0);
	memset(&e, 0, sizeof(e));
	e.family = 4;
	e.addr[0] = 127;
	e.addr[3] = 1;
	e.src_port = 1234;
	e.dst_port = 2055;
	e.len = sizeof(payload);
	e.payload = payload;
	CHECK(wire_entry_append(&entries, &e) == 0);
	memset(&a, 0, sizeof(a));
	a.client_id = "kit-post";
	a.seq = seq;
	a.created_us = UINT64_C(1700000000000000);
	a.codec = WIRE_CODEC_ZLIB;
	a.zlevel = 6;
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = 1;
	a.key = key;
	buf_free(&batch);
	CHECK(buf_init(&batch, 0, 8192) == 0);
	CHECK(wire_seal(&a, &batch) == WIRE_OK);
	CHECK(wire_parse_header(batch.data, batch.len, &hdr) == WIRE_OK);
	buf_free(&entries);
}

/* ---- the classifier on its own ---- */

static void
answer(struct post_answer *a, long status, int text_plain, const char *body)
{
	memset(a, 0, sizeof(*a));
	a->curl_rc = CURLE_OK;
	a->curl_error = "";
	a->status = status;
	a->text_plain = text_plain;
	a->body = body;
	a->body_len = strlen(body);
	a->request_sent = 1;
}

static void
test_classify_table(void)
{
	static const struct {
		long			 status;
		int			 text_plain;
		const char		*body;
		enum post_result	 result;
		enum post_via		 via;
	} cases[] = {
		{ 200, 0, "<html>Welcome to Hotel WiFi</html>", POST_RETRY,
		    POST_VIA_OTHER },
		{ 200, 1, "FPACK1 kit-post 1 new 00\n", POST_RETRY,
		    POST_VIA_OTHER },
		{ 400, 1, "bad batch\n", POST_STUCK, POST_VIA_GATEWAY },
		{ 401, 1, "authentication failed\n", POST_STUCK,
		    POST_VIA_GATEWAY },
		{ 403, 1, "unknown client\n", POST_STUCK, POST_VIA_GATEWAY },
		{ 403, 0, "<html><title>Access Denied</title></html>",
		    POST_RETRY, POST_VIA_OTHER },
		{ 404, 1, "not found\n", POST_STUCK, POST_VIA_GATEWAY },
		{ 405, 0, "<html>Method Not Allowed</html>", POST_RETRY,
		    POST_VIA_OTHER },
		{ 407, 0, "<html>Proxy Authentication Required</html>",
		    POST_RETRY, POST_VIA_OTHER },
		{ 410, 1, "batch too old\n", POST_REJECTED, POST_VIA_GATEWAY },
		{ 410, 0, "<html>Gone</html>", POST_RETRY, POST_VIA_UNKNOWN },
		{ 411, 1, "Content-Length required\n", POST_RETRY,
		    POST_VIA_OTHER },
		{ 413, 1, "body over max_body_bytes\n", POST_TOO_BIG,
		    POST_VIA_GATEWAY },
		{ 413, 0, "<html><head><title>413 Request Entity Too Large"
		    "</title></head></html>", POST_TOO_BIG, POST_VIA_UNKNOWN },
		{ 417, 0, "", POST_RETRY, POST_VIA_OTHER },
		{ 429, 1, "rate limited, retry later\n", POST_RETRY,
		    POST_VIA_GATEWAY },
		{ 500, 1, "out of memory\n", POST_RETRY, POST_VIA_GATEWAY },
		{ 505, 0, "<html>HTTP Version Not Supported</html>",
		    POST_RETRY, POST_VIA_OTHER },
		{ 502, 0, "<html>Bad Gateway</html>", POST_RETRY,
		    POST_VIA_OTHER },
		{ 503, 1, "no collector\n", POST_RETRY, POST_VIA_GATEWAY },
		{ 504, 0, "<html>Gateway Time-out</html>", POST_RETRY,
		    POST_VIA_OTHER },
		{ 302, 0, "", POST_RETRY, POST_VIA_UNKNOWN },
	};
	struct post_answer	a;
	struct post_outcome	o;
	uint64_t		bad0 = STATS_GET(bad_ack);
	size_t			i;

	make_batch(1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		answer(&a, cases[i].status, cases[i].text_plain,
		    cases[i].body);
		post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key,
		    &o);
		if (o.result != cases[i].result || o.via != cases[i].via)
			fprintf(stderr, "case %zu (%ld): result %d via %d\n",
			    i, cases[i].status, o.result, o.via);
		CHECK(o.result == cases[i].result);
		CHECK(o.via == cases[i].via);
		CHECK_EQ_U64(o.status, cases[i].status);
		CHECK(o.reason[0] != '\0');
	}
	/* the two 200s without a valid ack */
	CHECK_EQ_U64(STATS_GET(bad_ack) - bad0, 2);

	/* an HTML page is named by its title */
	answer(&a, 413, 0, "<html><head><title>413 Request Entity Too Large"
	    "</title></head><body>nginx</body></html>");
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(strcmp(o.reason, "413 Request Entity Too Large") == 0);
	/* the gateway's text line is its reason */
	answer(&a, 503, 1, "no collector could take the datagrams\n");
	a.have_retry_after = 1;
	a.retry_after = 7;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_RETRY_AFTER);
	CHECK_EQ_U64(o.retry_after_s, 7);
	CHECK(strcmp(o.reason, "no collector could take the datagrams") == 0);
}

static void
test_classify_ack(void)
{
	struct post_answer	a;
	struct post_outcome	o;
	char			ack[WIRE_ACK_MAX];

	make_batch(77);
	CHECK(wire_ack_format(ack, sizeof(ack), "kit-post", 77, WIRE_ACK_DUP,
	    wire_tag(batch.data, batch.len), key) > 0);
	answer(&a, 200, 1, ack);
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_DELIVERED);
	CHECK(o.ack == WIRE_ACK_DUP);
	CHECK(o.via == POST_VIA_GATEWAY);

	/* an ack for another batch is no delivery */
	make_batch(78);
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_RETRY);
	CHECK(o.via == POST_VIA_OTHER);
}

static void
test_classify_transport(void)
{
	struct post_answer	a;
	struct post_outcome	o;

	make_batch(5);
	answer(&a, 0, 0, "");
	a.curl_rc = CURLE_COULDNT_CONNECT;
	a.curl_error = "Failed to connect to 127.0.0.1 port 9: refused";
	a.request_sent = 0;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_TRANSPORT);
	CHECK(strstr(o.reason, "refused") != NULL);

	/* the proxy refused CONNECT: its status is the outcome's */
	answer(&a, 0, 0, "");
	a.curl_rc = CURLE_RECV_ERROR;
	a.connect_code = 403;
	a.request_sent = 0;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_TRANSPORT);
	CHECK_EQ_U64(o.status, 403);

	/* TLS trouble is the way's */
	answer(&a, 0, 0, "");
	a.curl_rc = CURLE_PEER_FAILED_VERIFICATION;
	a.request_sent = 0;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.via == POST_VIA_TRANSPORT);

	/* a time-out before anything was sent is too ... */
	answer(&a, 0, 0, "");
	a.curl_rc = CURLE_OPERATION_TIMEDOUT;
	a.request_sent = 0;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.via == POST_VIA_TRANSPORT);
	/* ... one after the request went out may be a slow gateway */
	a.request_sent = 1;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_UNKNOWN);

	/* an early 413, then the connection broke during the upload */
	answer(&a, 413, 0, "");
	a.curl_rc = CURLE_SEND_ERROR;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_TOO_BIG);

	answer(&a, 0, 0, "");
	a.curl_rc = CURLE_ABORTED_BY_CALLBACK;
	a.aborted = 1;
	post_classify(&a, &hdr, wire_tag(batch.data, batch.len), key, &o);
	CHECK(o.result == POST_ABORTED);
}

/* ---- a responder on loopback ---- */

struct responder {
	int		 fd;
	int		 port;
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	const char	*reply;		/* whole response, or NULL for an ack */
	int		 ack_status;	/* WIRE_ACK_NEW when reply is NULL */
	char		 req[REQ_MAX];	/* the last request's head */
	size_t		 body_len;	/* and the length of its body */
	int		 requests;
	atomic_int	 stop;
};

static struct responder	rs;

/* Reads one request (head and Content-Length body); -1 on EOF. */
static int
read_request(int c, char *head, size_t headmax, size_t *body_len,
    uint8_t *body, size_t bodymax)
{
	size_t	n = 0, want = 0, have;
	ssize_t	r;
	char	*end, *cl;

	for (;;) {
		if (n + 1 >= headmax)
			return -1;
		if ((r = read(c, head + n, headmax - 1 - n)) <= 0)
			return -1;
		n += (size_t)r;
		head[n] = '\0';
		if ((end = strstr(head, "\r\n\r\n")) != NULL)
			break;
	}
	have = n - (size_t)(end + 4 - head);
	if (have > bodymax)
		return -1;
	memcpy(body, end + 4, have);
	end[4] = '\0';
	if ((cl = strcasestr(head, "\r\ncontent-length:")) != NULL)
		want = strtoul(cl + 17, NULL, 10);
	if (want > bodymax || have > want)
		return -1;
	while (have < want) {
		if ((r = read(c, body + have, want - have)) <= 0)
			return -1;
		have += (size_t)r;
	}
	*body_len = want;
	return 0;
}

static void *
responder_main(void *arg)
{
	static uint8_t		 body[REQ_MAX];
	static char		 head[REQ_MAX];
	struct wire_header	 h;
	char			 resp[1024], ack[WIRE_ACK_MAX];
	size_t			 blen;
	int			 c;

	(void)arg;
	while (!atomic_load(&rs.stop)) {
		if ((c = accept(rs.fd, NULL, NULL)) == -1)
			continue;
		if (read_request(c, head, sizeof(head), &blen, body,
		    sizeof(body)) == 0) {
			pthread_mutex_lock(&rs.mu);
			snprintf(rs.req, sizeof(rs.req), "%s", head);
			rs.body_len = blen;
			rs.requests++;
			if (rs.reply != NULL)
				snprintf(resp, sizeof(resp), "%s", rs.reply);
			else if (wire_parse_header(body, blen, &h) == WIRE_OK &&
			    wire_ack_format(ack, sizeof(ack), h.client_id,
			    h.seq, WIRE_ACK_NEW, wire_tag(body, blen),
			    key) > 0)
				snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n"
				    "Content-Type: text/plain\r\n"
				    "Content-Length: %zu\r\n"
				    "Connection: close\r\n\r\n%s",
				    strlen(ack), ack);
			else
				snprintf(resp, sizeof(resp), "HTTP/1.1 400 Bad "
				    "Request\r\nContent-Type: text/plain\r\n"
				    "Content-Length: 4\r\nConnection: "
				    "close\r\n\r\nbad\n");
			pthread_mutex_unlock(&rs.mu);
			if (write(c, resp, strlen(resp)) < 0)
				perror("responder write");
		}
		close(c);
	}
	return NULL;
}

static int
responder_start(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			one = 1;

	memset(&rs, 0, sizeof(rs));
	pthread_mutex_init(&rs.mu, NULL);
	if ((rs.fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(rs.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(rs.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(rs.fd, 8) == -1 ||
	    getsockname(rs.fd, (struct sockaddr *)&sin, &len) == -1)
		return -1;
	rs.port = ntohs(sin.sin_port);
	return pthread_create(&rs.thread, NULL, responder_main, NULL) == 0 ?
	    0 : -1;
}

static void
responder_stop(void)
{
	int	c;
	struct sockaddr_in sin;

	atomic_store(&rs.stop, 1);
	/* wake accept() */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)rs.port);
	if ((c = socket(AF_INET, SOCK_STREAM, 0)) != -1) {
		(void)connect(c, (struct sockaddr *)&sin, sizeof(sin));
		close(c);
	}
	pthread_join(rs.thread, NULL);
	close(rs.fd);
	pthread_mutex_destroy(&rs.mu);
}

static _Atomic int	abort_flag;

/* Posts the current batch with these settings; returns the outcome. */
static void
post_once(const char *url, const char *proxy, int tunnel, int version,
    struct post_outcome *o)
{
	struct post_params	p;
	struct post		*po = NULL;

	memset(&p, 0, sizeof(p));
	p.gateway_url = url;
	p.proxy = proxy;
	p.ca_file = "";
	p.pinned_pubkey = "";
	p.connect_timeout = 5;
	p.request_timeout = 10;
	p.http_version = version;
	p.tunnel = tunnel;
	p.ignore_no_proxy = proxy[0] != '\0' && strcmp(proxy, "none") != 0;
	CHECK(post_new(&po, &p, &abort_flag) == 0);
	if (po == NULL)
		return;
	post_batch(po, batch.data, batch.len, key, o);
	post_free(po);
}

static void
set_reply(const char *reply)
{
	pthread_mutex_lock(&rs.mu);
	rs.reply = reply;
	pthread_mutex_unlock(&rs.mu);
}

static void
test_loopback(void)
{
	struct post_outcome	o;
	char			url[128], proxy[128], clen[64];
	int			port;

	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	CHECK(responder_start() == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/flowpost/", rs.port);
	make_batch(1000);

	/* the gateway: an ack; the request is as PROTOCOL.md 2.1 says */
	set_reply(NULL);
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	if (o.result != POST_DELIVERED)
		fprintf(stderr, "outcome %d via %d status %ld: %s\n", o.result,
		    o.via, o.status, o.reason);
	CHECK(o.result == POST_DELIVERED && o.via == POST_VIA_GATEWAY);
	pthread_mutex_lock(&rs.mu);
	snprintf(clen, sizeof(clen), "\r\nContent-Length: %zu\r\n", batch.len);
	CHECK(strncmp(rs.req, "POST /flowpost/v1/batch HTTP/1.1\r\n", 34) ==
	    0);
	CHECK(strstr(rs.req, clen) != NULL);
	CHECK_EQ_U64(rs.body_len, batch.len);
	CHECK(strcasestr(rs.req, "\r\nexpect:") == NULL);
	CHECK(strcasestr(rs.req, "\r\ntransfer-encoding:") == NULL);
	CHECK(strstr(rs.req, "\r\nX-Flowpost-Seq: 1000\r\n") != NULL);
	CHECK(strstr(rs.req, "\r\nContent-Type: application/vnd.flowpost."
	    "batch\r\n") != NULL);
	pthread_mutex_unlock(&rs.mu);

	/* http_version = 1.0 */
	post_once(url, "none", 0, POST_HTTP_10, &o);
	CHECK(o.result == POST_DELIVERED);
	pthread_mutex_lock(&rs.mu);
	CHECK(strncmp(rs.req, "POST /flowpost/v1/batch HTTP/1.0\r\n", 34) ==
	    0);
	CHECK(strstr(rs.req, clen) != NULL);
	pthread_mutex_unlock(&rs.mu);

	/* nginx's own 413 page */
	set_reply("HTTP/1.1 413 Request Entity Too Large\r\n"
	    "Server: nginx\r\nContent-Type: text/html\r\n"
	    "Content-Length: 176\r\nConnection: close\r\n\r\n"
	    "<html>\r\n<head><title>413 Request Entity Too Large</title>"
	    "</head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large"
	    "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
	    "</html>\r\n");
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	CHECK(o.result == POST_TOO_BIG);
	CHECK_EQ_U64(o.status, 413);
	CHECK(strcmp(o.reason, "413 Request Entity Too Large") == 0);

	/* the gateway's 503 with Retry-After */
	set_reply("HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nRetry-After: 9\r\n"
	    "Content-Length: 13\r\nConnection: close\r\n\r\nno collector\n");
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	CHECK(o.result == POST_RETRY_AFTER && o.via == POST_VIA_GATEWAY);
	CHECK_EQ_U64(o.retry_after_s, 9);

	/* a proxy's 502 page */
	set_reply("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
	    "X-Squid-Error: ERR_CONNECT_FAIL 111\r\nContent-Length: 9\r\n"
	    "Connection: close\r\n\r\n<html/>\r\n");
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_OTHER);

	/* a portal's 200 */
	set_reply("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
	    "<html>Welcome</html>");
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_OTHER);

	/* a proxy that refuses CONNECT, even for an http:// gateway */
	set_reply("HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", rs.port);
	post_once("http://192.0.2.1:81/flowpost", proxy, 1, POST_HTTP_AUTO,
	    &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_TRANSPORT);
	CHECK_EQ_U64(o.status, 403);
	pthread_mutex_lock(&rs.mu);
	CHECK(strncmp(rs.req, "CONNECT 192.0.2.1:81 HTTP/1.1\r\n", 31) == 0);
	pthread_mutex_unlock(&rs.mu);

	/* plain forwarding through the same proxy: absolute URL */
	set_reply(NULL);
	post_once("http://192.0.2.1:81/flowpost", proxy, 0, POST_HTTP_AUTO,
	    &o);
	CHECK(o.result == POST_DELIVERED);
	pthread_mutex_lock(&rs.mu);
	CHECK(strncmp(rs.req, "POST http://192.0.2.1:81/flowpost/v1/batch "
	    "HTTP/1.1\r\n", 52) == 0);
	pthread_mutex_unlock(&rs.mu);

	port = rs.port;
	responder_stop();

	/* nobody listens any more: a transport failure */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/flowpost", port);
	post_once(url, "none", 0, POST_HTTP_AUTO, &o);
	CHECK(o.result == POST_RETRY && o.via == POST_VIA_TRANSPORT);
	CHECK_EQ_U64(o.status, 0);
	curl_global_cleanup();
}

static void
cleanup(void)
{
	buf_free(&batch);
}

static void
setup(void)
{
	CHECK(wire_init() == 0);
}

TEST_MAIN(setup, test_classify_table, test_classify_ack,
    test_classify_transport, test_loopback, cleanup)
