/*
 * template.h: NetFlow v9 / IPFIX template cache and template refresh.
 *
 * A v9 or IPFIX collector can decode data records only with the template
 * they refer to, and exporters send templates only now and then.  When a
 * collector restarts, or the gateway restarts and sends to a collector that
 * restarted meanwhile, data arrives that the collector cannot decode until
 * the exporter happens to send its templates again (often minutes).
 *
 * The cache keeps, per stream (client id, exporter address and UDP port,
 * export version, v9 source id / IPFIX observation domain), the latest
 * definition of every template and options template seen in forwarded
 * datagrams, and sends them as a template-only message of the stream's own
 * version ahead of the stream's data:
 *
 *   - before a stream's first datagram after the gateway started, for the
 *     streams whose templates were loaded from state_dir;
 *   - before a stream's first datagram once `template_refresh` seconds
 *     have passed since the stream's templates were last sent this way (or
 *     since the stream was first seen).
 *
 * template_refresh = 0 turns the cache off entirely.  Datagrams are never
 * changed: a template message is an extra datagram.  Header fields of a
 * template message come from the datagram it precedes: IPFIX keeps that
 * datagram's sequence number (a message without data records does not
 * advance it); v9 uses that datagram's sequence number minus one, i.e. it
 * repeats the number of the stream's previous packet (PROTOCOL.md 5).
 *
 * Bounds: TEMPLATE_STREAMS_MAX streams (least recently used evicted),
 * TEMPLATE_PER_STREAM_MAX templates per stream (further ids ignored and
 * counted), TEMPLATE_BYTES_MAX bytes of template records in all (least
 * recently used streams evicted).
 *
 * Persistence: state_dir/templates.cache, replaced atomically (temporary
 * file, fsync, rename) by a background thread at most once a second when
 * something changed, and on close.  A crash loses at most the last second
 * of template changes; a file that fails its checks is logged and ignored
 * (the cache starts empty and fills from the exporters again).
 */
#ifndef FLOWPOST_GATEWAY_TEMPLATE_H
#define FLOWPOST_GATEWAY_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "output.h"
#include "wire.h"

#define TEMPLATE_STREAMS_MAX		4096
#define TEMPLATE_PER_STREAM_MAX		512
#define TEMPLATE_BYTES_MAX		(16u * 1024 * 1024)
#define TEMPLATE_MSG_MAX		1400	/* payload of one template
						 * message, unless a single
						 * record is larger */
#define TEMPLATE_FILE			"templates.cache"

struct template_params {
	uint64_t	 refresh_s;	/* template_refresh; 0 = off */
	const char	*state_dir;	/* NULL: memory only (tests) */
	size_t		 streams_max;	/* 0 = TEMPLATE_STREAMS_MAX */
	size_t		 per_stream_max;/* 0 = TEMPLATE_PER_STREAM_MAX */
	size_t		 bytes_max;	/* 0 = TEMPLATE_BYTES_MAX */
};

struct template_counters {
	uint64_t	streams;	/* gauge */
	uint64_t	templates;	/* gauge */
	uint64_t	bytes;		/* gauge: template record bytes */
	uint64_t	learned;	/* definitions stored or replaced */
	uint64_t	withdrawn;	/* IPFIX withdrawals applied */
	uint64_t	messages;	/* template messages sent ahead */
	uint64_t	dropped;	/* definitions over a bound, not kept */
	uint64_t	evicted;	/* streams evicted */
	uint64_t	malformed;	/* template sets that did not parse */
	uint64_t	saves;		/* state file writes */
	uint64_t	save_errors;
};

struct template_cache;

/*
 * Creates the cache; with a state_dir, loads templates.cache (a bad file
 * is logged and ignored) and starts the saving thread.  NULL with a
 * message in err only for out of memory or a thread that cannot start.
 */
struct template_cache	*template_open(const struct template_params *p,
			    char *err, size_t errlen);
/* Saves if something changed, stops the thread, frees everything. */
void			 template_close(struct template_cache *tc);

/*
 * Sends entries[0..n) of one batch from `client` through `out`, each
 * stream's due template messages immediately ahead of its datagram, and
 * learns the templates the datagrams carry.  Same return and `res` as
 * out->send().  `now_ns` is CLOCK_MONOTONIC.  With tc NULL (the cache is
 * off) it is out->send() itself.
 */
int			 template_send(struct template_cache *tc,
			    const char *client, const struct output_ops *out,
			    void *octx, const struct wire_entry *entries,
			    size_t n, int64_t now_ns,
			    struct output_result *res);

/*
 * The planning half of template_send(), for tests: learns from entries
 * and returns in *plan a malloc'd array of *plan_n entries (the datagrams
 * with the template messages inserted), whose injected payloads live in
 * *scratch (malloc'd).  The caller frees both.
 */
int			 template_plan(struct template_cache *tc,
			    const char *client,
			    const struct wire_entry *entries, size_t n,
			    int64_t now_ns, struct wire_entry **plan,
			    size_t *plan_n, uint8_t **scratch);

/* Writes the state file now if something changed; 0, or -1 (logged). */
int			 template_save(struct template_cache *tc);

void			 template_get_counters(struct template_cache *tc,
			    struct template_counters *c);
/* Appends the counters in Prometheus text format; -1 over out's ceiling. */
int			 template_metrics(struct template_cache *tc,
			    struct buf *out);

#endif
