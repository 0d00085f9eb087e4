/*
 * metrics.h: the client's optional Prometheus endpoint (metrics_listen).
 *
 * A small libmicrohttpd daemon with one internal thread answers
 * GET /metrics with the counters and gauges of stats.h in the text
 * exposition format, and GET /healthz with "ok".  It reads the same atomics
 * the stats file is written from, so it never touches the data path and
 * the two views always agree.  Off unless metrics_listen is set.
 */
#ifndef FLOWPOST_CLIENT_METRICS_H
#define FLOWPOST_CLIENT_METRICS_H

#include <stdint.h>

#include "buf.h"

/* Ceiling of one exposition: a few dozen series, far below this. */
#define METRICS_BODY_MAX	(64u * 1024)

struct metrics;

/*
 * Binds `listen` ("host:port" or "[v6addr]:port") and starts serving.  An
 * empty `listen` starts nothing: 0 with *out NULL.  -1 (logged) if the
 * address cannot be bound or the daemon does not start.
 */
int	 metrics_start(struct metrics **out, const char *listen);
/* Stops the daemon and frees it; NULL is fine. */
void	 metrics_stop(struct metrics *m);

/*
 * The exposition text into `out` (reset first); `start_unix` is the
 * process start time.  -1 if it does not fit out's ceiling.
 */
int	 metrics_render(struct buf *out, uint64_t start_unix);

#endif
