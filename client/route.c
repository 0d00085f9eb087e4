/*
 * route.c: the ways to the gateway, which one is in use, and which one
 * delivered last on this network.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#include "post.h"
#include "route.h"
#include "stats.h"

#define ROUTE_URL_MAX		4096
#define ROUTE_ID_MAX		512
#define ROUTE_STATE_MAX		(ROUTE_STATE_LINES * (ROUTE_ID_MAX + 32))

static const char *const route_names[ROUTE_NWAYS] = {
	"configured", "direct", "proxy-connect", "proxy-plain", "proxy-http10",
};

struct route {
	int			 mode;
	struct post_params	 base;		/* strings are the copies below */
	char			*gateway_url, *proxy_cfg, *ca_file, *pinned;
	char			*state_dir;

	char			 proxy[ROUTE_URL_MAX];	/* "" = none known */
	int			 proxy_http;	/* an HTTP(S) proxy */
	int			 https;		/* gateway_url is https:// */
	char			 plain_url[ROUTE_URL_MAX];
	int			 usable[ROUTE_NWAYS];
	unsigned int		 nusable;

	enum route_way		 cur;
	unsigned int		 fails;		/* of cur, in a row */
	unsigned int		 changes;	/* since the last delivery */
	int			 exhausted;
	char			 identity[ROUTE_ID_MAX];
	int			 have_saved;
	enum route_way		 saved;		/* route.state for identity */
};

const char *
route_way_name(enum route_way w)
{
	return (unsigned int)w < ROUTE_NWAYS ? route_names[w] : "?";
}

static int
route_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The environment's proxy for this URL scheme, as libcurl reads it. */
static const char *
route_env_proxy(int https)
{
	const char	*names_https[] = { "https_proxy", "HTTPS_PROXY",
			    "all_proxy", "ALL_PROXY", NULL };
	/* libcurl reads only the lower-case http_proxy (CGI's HTTP_PROXY) */
	const char	*names_http[] = { "http_proxy", "all_proxy",
			    "ALL_PROXY", NULL };
	const char	**n, *v;

	for (n = https ? names_https : names_http; *n != NULL; n++)
		if ((v = getenv(*n)) != NULL && v[0] != '\0')
			return v;
	return NULL;
}

/* scheme://[user:pass@]host[:port][/...] -> scheme://host[:port] */
static void
route_redact(const char *url, char *out, size_t outlen)
{
	const char	*p = strstr(url, "://"), *auth, *end, *at;
	size_t		 j = 0, i;
	char		 tmp[ROUTE_URL_MAX];

	auth = p != NULL ? p + 3 : url;
	end = auth + strcspn(auth, "/?#");
	at = memchr(auth, '@', (size_t)(end - auth));
	if (util_snprintf(tmp, sizeof(tmp), "%.*s%.*s", (int)(auth - url), url,
	    (int)(end - (at ? at + 1 : auth)), at ? at + 1 : auth) == -1)
		tmp[0] = '\0';
	for (i = 0; tmp[i] != '\0' && j + 1 < outlen; i++)
		out[j++] = isgraph((unsigned char)tmp[i]) ? tmp[i] : '_';
	out[j] = '\0';
}

/* "eth0/192.0.2.1" for the IPv4 default route, "none" without one. */
static void
route_default_gateway(char *out, size_t outlen)
{
	FILE		*f;
	char		 line[256], iface[32];
	unsigned long	 dst, gw, mask;
	unsigned int	 flags;

	snprintf(out, outlen, "none");
	if ((f = fopen("/proc/net/route", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%31s %lx %lx %x %*d %*d %*d %lx", iface,
		    &dst, &gw, &flags, &mask) != 5)
			continue;
		/* RTF_UP and a destination of 0/0 */
		if ((flags & 1) == 0 || dst != 0 || mask != 0)
			continue;
		/* little-endian hex, as the kernel prints it */
		snprintf(out, outlen, "%s/%lu.%lu.%lu.%lu", iface, gw & 0xff,
		    (gw >> 8) & 0xff, (gw >> 16) & 0xff, (gw >> 24) & 0xff);
		break;
	}
	fclose(f);
}

/* https://host[:port]/path -> http://host/path (port 80). */
static int
route_derive_plain(const char *url, char *out, size_t outlen)
{
	const char	*auth = url + strlen("https://"), *end, *colon;

	end = auth + strcspn(auth, "/");
	/* a port follows the last ':' after an IPv6 literal's ']' */
	colon = NULL;
	for (const char *q = auth; q < end; q++) {
		if (*q == ']')
			colon = NULL;
		else if (*q == ':')
			colon = q;
	}
	if (colon == NULL)
		colon = end;
	return util_snprintf(out, outlen, "http://%.*s%s",
	    (int)(colon - auth), auth, end);
}

/* Reads route.state: "<way> <identity>" lines. */
static void
route_load(struct route *r)
{
	char		 path[4096], *line, *next, *sp;
	uint8_t		*data = NULL;
	size_t		 len;
	unsigned int	 w;

	if (r->state_dir == NULL || util_snprintf(path, sizeof(path), "%s/%s",
	    r->state_dir, ROUTE_STATE_FILE) == -1)
		return;
	if (util_read_file(path, ROUTE_STATE_MAX, &data, &len) == -1) {
		if (errno != ENOENT)
			log_warn("route: cannot read %s: %s", path,
			    strerror(errno));
		return;
	}
	for (line = (char *)data; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (strcmp(sp + 1, r->identity) != 0)
			continue;
		for (w = 0; w < ROUTE_NWAYS; w++) {
			if (strcmp(line, route_names[w]) == 0) {
				r->have_saved = 1;
				r->saved = (enum route_way)w;
			}
		}
	}
	free(data);
}

/* Writes route.state with the current way for this network. */
static void
route_save(struct route *r)
{
	char		 path[4096], *text = NULL, *line, *next, *sp;
	char		*keep[ROUTE_STATE_LINES];
	uint8_t		*data = NULL;
	size_t		 len = 0, off = 0, nkeep = 0, i;
	int		 n;

	if (r->state_dir == NULL || util_snprintf(path, sizeof(path), "%s/%s",
	    r->state_dir, ROUTE_STATE_FILE) == -1)
		return;
	if ((text = malloc(ROUTE_STATE_MAX + 1)) == NULL)
		goto out;
	/* other networks' lines stay, the oldest go when there are many */
	if (util_read_file(path, ROUTE_STATE_MAX, &data, &len) == 0) {
		for (line = (char *)data; line != NULL && *line != '\0';
		    line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if (line[0] == '#' || (sp = strchr(line, ' ')) ==
			    NULL || strcmp(sp + 1, r->identity) == 0)
				continue;
			if (nkeep == ROUTE_STATE_LINES - 1) {
				memmove(keep, keep + 1,
				    (nkeep - 1) * sizeof(keep[0]));
				nkeep--;
			}
			keep[nkeep++] = line;
		}
	}
	n = snprintf(text, ROUTE_STATE_MAX + 1, "# flowpost-client: the way "
	    "that last delivered, per network\n");
	off = n > 0 ? (size_t)n : 0;
	for (i = 0; i < nkeep; i++) {
		n = snprintf(text + off, ROUTE_STATE_MAX + 1 - off, "%s\n",
		    keep[i]);
		if (n < 0 || (size_t)n >= ROUTE_STATE_MAX + 1 - off)
			goto out;
		off += (size_t)n;
	}
	n = snprintf(text + off, ROUTE_STATE_MAX + 1 - off, "%s %s\n",
	    route_names[r->cur], r->identity);
	if (n < 0 || (size_t)n >= ROUTE_STATE_MAX + 1 - off)
		goto out;
	off += (size_t)n;
	if (util_write_atomic(r->state_dir, ROUTE_STATE_FILE, text,
	    off) == -1) {
		log_warn("route: cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	r->have_saved = 1;
	r->saved = r->cur;
 out:
	free(data);
	free(text);
}

static void
route_gauges(const struct route *r)
{
	STATS_SET(route_index, r->cur);
	stats_set_route_name(route_names[r->cur]);
}

static int
route_uses_proxy(const struct route *r, enum route_way w)
{
	switch (w) {
	case ROUTE_CONFIGURED:
		return r->proxy[0] != '\0';
	case ROUTE_DIRECT:
		return 0;
	default:
		return 1;
	}
}

/* What each way needs, and which ways would only repeat another. */
static int
route_ways(struct route *r, const struct route_params *rp)
{
	int	possible[ROUTE_NWAYS], dup[ROUTE_NWAYS];
	int	have = r->proxy[0] != '\0';
	int	w, pinned = rp->mode - 1;

	possible[ROUTE_CONFIGURED] = 1;
	dup[ROUTE_CONFIGURED] = 0;
	possible[ROUTE_DIRECT] = 1;
	dup[ROUTE_DIRECT] = !have;	/* configured is direct already */
	possible[ROUTE_PROXY_CONNECT] = r->proxy_http;
	dup[ROUTE_PROXY_CONNECT] = r->https && have;
	possible[ROUTE_PROXY_PLAIN] = r->proxy_http &&
	    (!r->https || rp->allow_plain_http);
	dup[ROUTE_PROXY_PLAIN] = !r->https && have;
	possible[ROUTE_PROXY_HTTP10] = r->proxy_http;
	dup[ROUTE_PROXY_HTTP10] = 0;

	if (rp->mode != ROUTE_AUTO) {
		if (pinned < 0 || pinned >= ROUTE_NWAYS) {
			log_error("route: unknown way %d", rp->mode);
			return -1;
		}
		if (!possible[pinned]) {
			if (!r->proxy_http)
				log_error("route = %s needs an HTTP proxy: set "
				    "proxy = http://host:port, or http_proxy / "
				    "https_proxy in the environment",
				    route_names[pinned]);
			else
				log_error("route = proxy-plain with an https:// "
				    "gateway_url needs allow_plain_http = yes");
			return -1;
		}
		memset(r->usable, 0, sizeof(r->usable));
		r->usable[pinned] = 1;
		r->nusable = 1;
		r->cur = (enum route_way)pinned;
		return 0;
	}
	r->nusable = 0;
	for (w = 0; w < ROUTE_NWAYS; w++) {
		r->usable[w] = possible[w] && !dup[w];
		r->nusable += r->usable[w] ? 1 : 0;
	}
	r->cur = ROUTE_CONFIGURED;
	return 0;
}

int
route_new(struct route **out, const struct route_params *rp,
    const struct post_params *base)
{
	struct route	*r;
	const char	*env, *proxy = NULL;
	char		 shown[ROUTE_URL_MAX], gw[64], list[128];
	size_t		 off = 0;
	int		 w;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto oom;
	r->mode = rp->mode;
	r->base = *base;
	if ((r->gateway_url = strdup(base->gateway_url)) == NULL ||
	    (r->proxy_cfg = strdup(base->proxy)) == NULL ||
	    (r->ca_file = strdup(base->ca_file)) == NULL ||
	    (r->pinned = strdup(base->pinned_pubkey)) == NULL ||
	    (rp->state_dir != NULL &&
	    (r->state_dir = strdup(rp->state_dir)) == NULL))
		goto oom;
	r->base.gateway_url = r->gateway_url;
	r->base.proxy = r->proxy_cfg;
	r->base.ca_file = r->ca_file;
	r->base.pinned_pubkey = r->pinned;
	r->https = route_prefix_ci(r->gateway_url, "https://");

	/* the proxy the proxy ways go through */
	if (strcmp(r->proxy_cfg, "none") == 0)
		proxy = NULL;
	else if (r->proxy_cfg[0] != '\0')
		proxy = r->proxy_cfg;
	else if ((env = route_env_proxy(r->https)) != NULL)
		proxy = env;
	if (proxy != NULL && util_snprintf(r->proxy, sizeof(r->proxy), "%s",
	    proxy) == -1) {
		log_error("route: proxy URL too long");
		goto fail;
	}
	r->proxy_http = r->proxy[0] != '\0' && (strstr(r->proxy, "://") ==
	    NULL || route_prefix_ci(r->proxy, "http://") ||
	    route_prefix_ci(r->proxy, "https://"));

	if (r->https) {
		if (rp->plain_http_url != NULL && rp->plain_http_url[0] != '\0')
			w = util_snprintf(r->plain_url, sizeof(r->plain_url),
			    "%s", rp->plain_http_url);
		else
			w = route_derive_plain(r->gateway_url, r->plain_url,
			    sizeof(r->plain_url));
		if (w == -1) {
			log_error("route: plain_http_url too long");
			goto fail;
		}
	}

	if (route_ways(r, rp) == -1)
		goto fail;

	/* the network: the proxy (without credentials) and the default route */
	if (r->proxy[0] != '\0')
		route_redact(r->proxy, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "none");
	route_default_gateway(gw, sizeof(gw));
	if (util_snprintf(r->identity, sizeof(r->identity), "proxy=%s,"
	    "default=%s", shown, gw) == -1)
		snprintf(r->identity, sizeof(r->identity), "proxy=long,"
		    "default=%s", gw);

	list[0] = '\0';
	for (w = 0; w < ROUTE_NWAYS; w++) {
		int n;

		if (!r->usable[w])
			continue;
		n = snprintf(list + off, sizeof(list) - off, "%s%s",
		    off ? ", " : "", route_names[w]);
		if (n > 0 && (size_t)n < sizeof(list) - off)
			off += (size_t)n;
	}
	if (r->mode == ROUTE_AUTO) {
		route_load(r);
		if (r->have_saved && r->usable[r->saved]) {
			r->cur = r->saved;
			log_info("route: using way %s (remembered for this "
			    "network, %s; ways: %s)", route_names[r->cur],
			    r->identity, list);
		} else
			log_info("route: using way %s (ways: %s)",
			    route_names[r->cur], list);
	} else
		log_info("route: using way %s (route = %s)",
		    route_names[r->cur], route_names[r->cur]);
	route_gauges(r);
	*out = r;
	return 0;
 oom:
	log_error("route: out of memory");
 fail:
	route_free(r);
	return -1;
}

void
route_free(struct route *r)
{
	if (r == NULL)
		return;
	free(r->gateway_url);
	free(r->proxy_cfg);
	free(r->ca_file);
	free(r->pinned);
	free(r->state_dir);
	free(r);
}

enum route_way
route_current(const struct route *r)
{
	return r->cur;
}

const char *
route_identity(const struct route *r)
{
	return r->identity;
}

void
route_post_params(const struct route *r, struct post_params *out)
{
	*out = r->base;
	out->tunnel = 0;
	out->proxy_http10 = 0;
	out->ignore_no_proxy = 0;
	switch (r->cur) {
	case ROUTE_CONFIGURED:
		break;
	case ROUTE_DIRECT:
		out->proxy = "none";
		break;
	case ROUTE_PROXY_CONNECT:
		out->proxy = r->proxy;
		out->ignore_no_proxy = 1;
		out->tunnel = 1;
		break;
	case ROUTE_PROXY_PLAIN:
		out->proxy = r->proxy;
		out->ignore_no_proxy = 1;
		if (r->https)
			out->gateway_url = r->plain_url;
		break;
	case ROUTE_PROXY_HTTP10:
		out->proxy = r->proxy;
		out->ignore_no_proxy = 1;
		out->proxy_http10 = 1;
		out->tunnel = r->https;
		out->http_version = POST_HTTP_10;
		break;
	case ROUTE_NWAYS:
		break;
	}
}

size_t
route_batch_cap(const struct route *r)
{
	return r->cur == ROUTE_PROXY_HTTP10 ? ROUTE_HTTP10_BATCH : 0;
}

int
route_exhausted(const struct route *r)
{
	return r->exhausted;
}

/* Does this failure speak against the way rather than the gateway? */
static int
route_way_failed(const struct route *r, const struct post_outcome *o)
{
	switch (o->via) {
	case POST_VIA_TRANSPORT:
		return 1;
	case POST_VIA_OTHER:
		/*
		 * Without a forward proxy, a 502/503/504 page comes from a
		 * web server in front of the gateway: another way would
		 * meet the same one.
		 */
		if (o->status >= 502 && o->status <= 504)
			return route_uses_proxy(r, r->cur);
		return 1;
	default:
		return 0;
	}
}

int
route_outcome(struct route *r, const struct post_outcome *o)
{
	enum route_way	old = r->cur;
	unsigned int	w;
	char		status[32];

	if (o->result == POST_DELIVERED) {
		r->fails = 0;
		r->changes = 0;
		r->exhausted = 0;
		/* with one way there is nothing to remember */
		if (r->mode == ROUTE_AUTO && r->nusable > 1 &&
		    (!r->have_saved || r->saved != r->cur)) {
			route_save(r);
			log_info("route: way %s delivers; remembered for this "
			    "network (%s)", route_names[r->cur], r->identity);
		}
		return 0;
	}
	if (o->via == POST_VIA_GATEWAY) {
		r->fails = 0;	/* the way works: the gateway answered */
		return 0;
	}
	if (!route_way_failed(r, o))
		return 0;
	if (++r->fails < ROUTE_TRIES || r->nusable < 2)
		return 0;

	w = (unsigned int)r->cur;
	do
		w = (w + 1) % ROUTE_NWAYS;
	while (!r->usable[w]);
	r->cur = (enum route_way)w;
	r->fails = 0;
	if (++r->changes >= r->nusable)
		r->exhausted = 1;
	STATS_INC(route_changes);
	route_gauges(r);
	if (o->status != 0)
		snprintf(status, sizeof(status), "HTTP %ld: ", o->status);
	else
		status[0] = '\0';
	log_warn("route: way %s failed %u times in a row (%s%s); using way %s",
	    route_names[old], ROUTE_TRIES, status, o->reason,
	    route_names[r->cur]);
	return 1;
}
