/*
 * route.h: finding a way out to the gateway.
 *
 * A way is one manner of reaching gateway_url from this network:
 *
 *   configured     the proxy setting as it is (proxy, or http_proxy /
 *                  https_proxy from the environment): CONNECT for https://,
 *                  plain forwarding for http://
 *   direct         no proxy
 *   proxy-connect  a CONNECT tunnel through the proxy, even for http://
 *   proxy-plain    a plain POST through the proxy; an https:// gateway_url
 *                  becomes plain_http_url (only with allow_plain_http)
 *   proxy-http10   HTTP/1.0 to the proxy and the gateway, smaller batches
 *
 * With route = auto the client starts with the way that last delivered on
 * this network (route.state in spool_dir) or else the configured one.
 * When a way fails ROUTE_TRIES times in a row for reasons of the way (no
 * connection, DNS, TLS, the proxy refusing CONNECT, a proxy's error page,
 * 411 or 417), it takes the next usable way, around in a circle.  Answers
 * of the gateway itself never change the way.  Any other route setting
 * pins one way.  Only the sender thread uses this.
 */
#ifndef FLOWPOST_CLIENT_ROUTE_H
#define FLOWPOST_CLIENT_ROUTE_H

#include <stddef.h>

#include "post.h"

#define ROUTE_TRIES		2	/* way failures in a row before the next */
#define ROUTE_STATE_FILE	"route.state"
#define ROUTE_STATE_LINES	16	/* networks remembered */
#define ROUTE_HTTP10_BATCH	(64 * 1024)	/* batch_max_bytes on proxy-http10 */

enum route_way {
	ROUTE_CONFIGURED = 0,
	ROUTE_DIRECT,
	ROUTE_PROXY_CONNECT,
	ROUTE_PROXY_PLAIN,
	ROUTE_PROXY_HTTP10,
	ROUTE_NWAYS
};

/* The `route` key: 0 = auto, else 1 + the one way to use. */
#define ROUTE_AUTO	0

struct route_params {
	int		 mode;		/* ROUTE_AUTO or 1 + enum route_way */
	int		 allow_plain_http;
	const char	*plain_http_url;	/* "" = derived from gateway_url */
	const char	*state_dir;	/* spool_dir; NULL = remember nothing */
};

struct route;

/*
 * Works out the usable ways from the configured post settings (proxy,
 * gateway_url) and the environment, and picks the first way.  -1 (logged)
 * if a pinned way cannot work with these settings.
 */
int	 route_new(struct route **out, const struct route_params *rp,
	    const struct post_params *base);
void	 route_free(struct route *r);

enum route_way route_current(const struct route *r);
const char *route_way_name(enum route_way w);
/* The post settings of the current way; strings point into r or base. */
void	 route_post_params(const struct route *r, struct post_params *out);
/* Largest batch for the current way, 0 = no limit of its own. */
size_t	 route_batch_cap(const struct route *r);

/*
 * Feeds the outcome of one POST.  Returns 1 if the way changed (logged;
 * apply route_post_params()), else 0.  A delivery remembers the way for
 * this network.
 */
int	 route_outcome(struct route *r, const struct post_outcome *o);
/* 1 once every usable way failed since the last delivery. */
int	 route_exhausted(const struct route *r);

/* The network identity ways are remembered under (tests, logs). */
const char *route_identity(const struct route *r);

#endif
