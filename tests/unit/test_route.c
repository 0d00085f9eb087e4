/*
 * test_route.c: the ways out to the gateway (client/route.c): which ways
 * a setting offers, what each way sets for libcurl, which failures move
 * to the next way, and the way remembered per network in route.state.
 */
#include <sys/stat.h>

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util.h"

#include "post.h"
#include "route.h"
#include "stats.h"

static char	dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
clear_env(void)
{
	static const char *const names[] = { "http_proxy", "https_proxy",
	    "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", NULL };
	size_t	i;

	for (i = 0; names[i] != NULL; i++)
		unsetenv(names[i]);
}

static void
base_params(struct post_params *p, const char *url, const char *proxy)
{
	memset(p, 0, sizeof(*p));
	p->gateway_url = url;
	p->proxy = proxy;
	p->ca_file = "";
	p->pinned_pubkey = "";
	p->connect_timeout = 5;
	p->request_timeout = 10;
}

static struct route *
new_route(int mode, const char *url, const char *proxy, int allow_plain,
    const char *plain_url, const char *state_dir)
{
	struct route_params	rp;
	struct post_params	pp;
	struct route		*r = NULL;

	memset(&rp, 0, sizeof(rp));
	rp.mode = mode;
	rp.allow_plain_http = allow_plain;
	rp.plain_http_url = plain_url;
	rp.state_dir = state_dir;
	base_params(&pp, url, proxy);
	if (route_new(&r, &rp, &pp) == -1)
		return NULL;
	return r;
}

static void
fail_with(struct post_outcome *o, enum post_via via, long status)
{
	memset(o, 0, sizeof(*o));
	o->result = POST_RETRY;
	o->via = via;
	o->status = status;
	snprintf(o->reason, sizeof(o->reason), "test failure");
}

/* Fails the current way ROUTE_TRIES times; returns the new way. */
static enum route_way
next_way(struct route *r)
{
	struct post_outcome	o;
	int			i, changed = 0;

	fail_with(&o, POST_VIA_TRANSPORT, 0);
	for (i = 0; i < ROUTE_TRIES; i++)
		changed = route_outcome(r, &o);
	CHECK(changed == 1);
	return route_current(r);
}

static void
test_no_proxy(void)
{
	struct route		*r;
	struct post_outcome	 o;
	int			 i;

	clear_env();
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost", "", 0, "",
	    NULL);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	CHECK(route_current(r) == ROUTE_CONFIGURED);
	/* one way only: nothing to change to */
	fail_with(&o, POST_VIA_TRANSPORT, 0);
	for (i = 0; i < 5; i++)
		CHECK(route_outcome(r, &o) == 0);
	CHECK(route_current(r) == ROUTE_CONFIGURED);
	CHECK(strstr(route_identity(r), "proxy=none") != NULL);
	route_free(r);

	/* a proxy in the environment is found; "none" ignores it */
	setenv("https_proxy", "http://127.0.0.9:3128", 1);
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost", "none", 0,
	    "", NULL);
	CHECK(r != NULL && route_current(r) == ROUTE_CONFIGURED);
	fail_with(&o, POST_VIA_TRANSPORT, 0);
	for (i = 0; r != NULL && i < 5; i++)
		CHECK(route_outcome(r, &o) == 0);
	route_free(r);
	clear_env();
}

static void
test_https_proxy(void)
{
	struct route		*r;
	struct post_params	 pp;

	clear_env();
	r = new_route(ROUTE_AUTO, "https://gw.example:8443/flowpost",
	    "http://user:secret@127.0.0.9:3128", 0, "", NULL);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	CHECK(strstr(route_identity(r), "secret") == NULL);
	CHECK(strstr(route_identity(r), "proxy=http://127.0.0.9:3128,") !=
	    NULL);
	route_post_params(r, &pp);
	CHECK(strcmp(pp.proxy, "http://user:secret@127.0.0.9:3128") == 0);
	CHECK(!pp.tunnel && !pp.proxy_http10 && !pp.ignore_no_proxy);
	CHECK_EQ_U64(STATS_GET(route_index), ROUTE_CONFIGURED);

	/* CONNECT is what configured does already; plain is not allowed */
	CHECK(next_way(r) == ROUTE_DIRECT);
	CHECK_EQ_U64(STATS_GET(route_index), ROUTE_DIRECT);
	route_post_params(r, &pp);
	CHECK(strcmp(pp.proxy, "none") == 0);
	CHECK(strcmp(pp.gateway_url, "https://gw.example:8443/flowpost") ==
	    0);
	CHECK(route_batch_cap(r) == 0);

	CHECK(next_way(r) == ROUTE_PROXY_HTTP10);
	route_post_params(r, &pp);
	CHECK(strcmp(pp.proxy, "http://user:secret@127.0.0.9:3128") == 0);
	CHECK(pp.tunnel && pp.proxy_http10 && pp.ignore_no_proxy);
	CHECK(pp.http_version == POST_HTTP_10);
	CHECK(route_batch_cap(r) == ROUTE_HTTP10_BATCH);
	CHECK(!route_exhausted(r));

	/* around the circle: every way failed once */
	CHECK(next_way(r) == ROUTE_CONFIGURED);
	CHECK(route_exhausted(r));
	route_free(r);

	/* allow_plain_http: https://host:port/path -> http://host/path */
	r = new_route(ROUTE_AUTO, "https://gw.example:8443/flowpost",
	    "http://127.0.0.9:3128", 1, "", NULL);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	CHECK(next_way(r) == ROUTE_DIRECT);
	CHECK(next_way(r) == ROUTE_PROXY_PLAIN);
	route_post_params(r, &pp);
	CHECK(strcmp(pp.gateway_url, "http://gw.example/flowpost") == 0);
	CHECK(!pp.tunnel && pp.ignore_no_proxy);
	route_free(r);

	/* ... or plain_http_url, and IPv6 literals keep their brackets */
	r = new_route(ROUTE_AUTO, "https://[2001:db8::1]:8443/fp",
	    "http://127.0.0.9:3128", 1, "", NULL);
	CHECK(r != NULL);
	if (r != NULL) {
		(void)next_way(r);
		CHECK(next_way(r) == ROUTE_PROXY_PLAIN);
		route_post_params(r, &pp);
		CHECK(strcmp(pp.gateway_url, "http://[2001:db8::1]/fp") == 0);
		route_free(r);
	}
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 1, "http://gw.example:8080/fp", NULL);
	CHECK(r != NULL);
	if (r != NULL) {
		(void)next_way(r);
		CHECK(next_way(r) == ROUTE_PROXY_PLAIN);
		route_post_params(r, &pp);
		CHECK(strcmp(pp.gateway_url, "http://gw.example:8080/fp") == 0);
		route_free(r);
	}
}

static void
test_http_env_proxy(void)
{
	struct route		*r;
	struct post_params	 pp;

	clear_env();
	/* libcurl reads lower-case http_proxy only, and so does the route */
	setenv("HTTP_PROXY", "http://127.0.0.8:3128", 1);
	setenv("http_proxy", "http://127.0.0.9:3128", 1);
	r = new_route(ROUTE_AUTO, "http://gw.example/flowpost", "", 0, "",
	    NULL);
	unsetenv("HTTP_PROXY");
	CHECK(r != NULL);
	if (r == NULL)
		return;
	route_post_params(r, &pp);
	CHECK(pp.proxy[0] == '\0');	/* configured: libcurl reads env */
	CHECK(next_way(r) == ROUTE_DIRECT);
	CHECK(next_way(r) == ROUTE_PROXY_CONNECT);
	route_post_params(r, &pp);
	CHECK(strcmp(pp.proxy, "http://127.0.0.9:3128") == 0);
	CHECK(pp.tunnel);
	/* plain forwarding of http:// is what configured does already */
	CHECK(next_way(r) == ROUTE_PROXY_HTTP10);
	route_post_params(r, &pp);
	CHECK(!pp.tunnel && pp.proxy_http10);
	CHECK(next_way(r) == ROUTE_CONFIGURED);
	route_free(r);

	/* a SOCKS proxy: only configured and direct */
	r = new_route(ROUTE_AUTO, "http://gw.example/flowpost",
	    "socks5h://127.0.0.9:1080", 0, "", NULL);
	CHECK(r != NULL);
	if (r != NULL) {
		CHECK(next_way(r) == ROUTE_DIRECT);
		CHECK(next_way(r) == ROUTE_CONFIGURED);
		route_free(r);
	}
	clear_env();
}

static void
test_what_counts(void)
{
	struct route		*r;
	struct post_outcome	 o;

	clear_env();
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 0, "", NULL);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	/* the gateway answering in between resets the count */
	fail_with(&o, POST_VIA_TRANSPORT, 0);
	CHECK(route_outcome(r, &o) == 0);
	fail_with(&o, POST_VIA_GATEWAY, 401);
	CHECK(route_outcome(r, &o) == 0);
	fail_with(&o, POST_VIA_TRANSPORT, 0);
	CHECK(route_outcome(r, &o) == 0);
	/* answers of the gateway never count */
	fail_with(&o, POST_VIA_GATEWAY, 403);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 0);
	fail_with(&o, POST_VIA_GATEWAY, 429);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 0);
	/* nor do slow answers */
	fail_with(&o, POST_VIA_UNKNOWN, 0);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_current(r) == ROUTE_CONFIGURED);
	/* a proxy's 502 page on a way through the proxy counts */
	fail_with(&o, POST_VIA_OTHER, 502);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 1);
	CHECK(route_current(r) == ROUTE_DIRECT);
	/* without a proxy, a 502 page is the gateway's web server's */
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_current(r) == ROUTE_DIRECT);
	/* but a 417 means something on the way meddles */
	fail_with(&o, POST_VIA_OTHER, 417);
	CHECK(route_outcome(r, &o) == 0);
	CHECK(route_outcome(r, &o) == 1);
	route_free(r);
}

static void
test_remembered(void)
{
	struct route		*r;
	struct post_outcome	 o;
	char			 path[128], text[1024];
	uint8_t			*data = NULL;
	size_t			 len;
	uint64_t		 changes;
	int			 i;

	clear_env();
	snprintf(dir, sizeof(dir), "/tmp/fp-test-route-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_STATE_FILE);

	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 0, "", dir);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	changes = STATS_GET(route_changes);
	CHECK(next_way(r) == ROUTE_DIRECT);
	CHECK_EQ_U64(STATS_GET(route_changes) - changes, 1);
	CHECK(access(path, F_OK) == -1);	/* nothing delivered yet */
	memset(&o, 0, sizeof(o));
	o.result = POST_DELIVERED;
	CHECK(route_outcome(r, &o) == 0);
	CHECK(util_read_file(path, sizeof(text) - 1, &data, &len) == 0);
	if (data != NULL) {
		memcpy(text, data, len);
		text[len] = '\0';
		CHECK(strstr(text, "\ndirect proxy=http://127.0.0.9:3128,") !=
		    NULL);
		free(data);
	}
	route_free(r);

	/* the same network: start with the way that delivered */
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 0, "", dir);
	CHECK(r != NULL && route_current(r) == ROUTE_DIRECT);
	CHECK_EQ_U64(STATS_GET(route_index), ROUTE_DIRECT);
	route_free(r);

	/* another network (proxy): its own entry */
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.7:8080", 0, "", dir);
	CHECK(r != NULL && route_current(r) == ROUTE_CONFIGURED);
	if (r != NULL) {
		CHECK(route_outcome(r, &o) == 0);
		route_free(r);
	}
	r = new_route(ROUTE_AUTO, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 0, "", dir);
	CHECK(r != NULL && route_current(r) == ROUTE_DIRECT);
	route_free(r);

	/* a pinned way ignores what was remembered and never moves */
	r = new_route(1 + ROUTE_PROXY_CONNECT, "https://gw.example/flowpost",
	    "http://127.0.0.9:3128", 0, "", dir);
	CHECK(r != NULL);
	if (r != NULL) {
		CHECK(route_current(r) == ROUTE_PROXY_CONNECT);
		fail_with(&o, POST_VIA_TRANSPORT, 0);
		for (i = 0; i < 4; i++)
			CHECK(route_outcome(r, &o) == 0);
		route_free(r);
	}
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_pinned_refused(void)
{
	clear_env();
	/* proxy-plain of an https:// URL needs allow_plain_http */
	CHECK(new_route(1 + ROUTE_PROXY_PLAIN, "https://gw.example/fp",
	    "http://127.0.0.9:3128", 0, "", NULL) == NULL);
	/* proxy ways need an HTTP proxy */
	CHECK(new_route(1 + ROUTE_PROXY_CONNECT, "https://gw.example/fp",
	    "none", 0, "", NULL) == NULL);
	CHECK(new_route(1 + ROUTE_PROXY_HTTP10, "https://gw.example/fp",
	    "socks5h://127.0.0.9:1080", 0, "", NULL) == NULL);
}

TEST_MAIN(test_no_proxy, test_https_proxy, test_http_env_proxy,
    test_what_counts, test_remembered, test_pinned_refused)
