/*
 * metrics.h: Prometheus metrics and a health page on metrics_listen.
 *
 * A second, small libmicrohttpd daemon, normally on a loopback address,
 * serving GET <prefix>/metrics (text exposition format),
 * GET <prefix>/status (the kits' health as JSON, kits.h) and
 * GET <prefix>/healthz.  It only reads counters that the request path
 * keeps anyway.
 */
#ifndef FLOWPOST_GATEWAY_METRICS_H
#define FLOWPOST_GATEWAY_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "ingest.h"
#include "kits.h"
#include "output.h"

#define METRICS_BODY_MAX	(32u * 1024 * 1024)

struct template_cache;
struct srcmap;

struct metrics_sources {
	struct ingest		*ingest;
	struct http		*http;		/* may be NULL */
	const struct output_ops	*output;
	void			*output_ctx;
	uint64_t		 start_time;	/* unix seconds */
	struct kits		*kits;		/* may be NULL */
	struct template_cache	*templates;	/* may be NULL */
	struct srcmap		*srcmap;	/* may be NULL */
};

struct metrics;

/* Serves on `fd` (from http_listen()), which it then owns (closed also
 * on failure). */
struct metrics	*metrics_start(int fd, const char *path_prefix,
		    const struct metrics_sources *src, char *err,
		    size_t errlen);
void		 metrics_stop(struct metrics *m);

/* The exposition text into `out` (reset first); -1 if over its ceiling. */
int		 metrics_render(const struct metrics_sources *src,
		    struct buf *out);

#endif
