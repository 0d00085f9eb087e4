/*
 * kits.h: what the gateway knows about each field kit's health.
 *
 * Every authenticated batch says a kit is alive (last heard); the health
 * block in its content (common/health.h) says how it is doing: spool
 * depth, drops, retries, clock.  The newest report per kit is kept, with
 * the lag of its last forwarded batch (sealing to forwarding), and shown
 * as Prometheus metrics and as a JSON status page on metrics_listen.  A
 * kit whose lag or drops cross the configured thresholds is logged, at
 * most once per KITS_WARN_EVERY_S per kit and kind.
 *
 * Only clients named in the keys file reach this table (ingest checks the
 * key first), so it is bounded by the keys file.  All calls are
 * thread-safe.
 */
#ifndef FLOWPOST_GATEWAY_KITS_H
#define FLOWPOST_GATEWAY_KITS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "health.h"
#include "wire.h"

#define KITS_WARN_EVERY_S	600	/* per kit and kind of warning */

struct kits_params {
	uint64_t	warn_lag_s;	/* warn_lag; 0 = off */
	uint64_t	warn_drops;	/* warn_drops; 0 = off */
};

/* One kit as the metrics and the status page see it. */
struct kits_view {
	char		 id[WIRE_CLIENT_ID_MAX + 1];
	uint64_t	 heard_us;	/* last authenticated batch, unix */
	uint64_t	 heartbeats;	/* heartbeat batches authenticated */
	uint64_t	 unreadable;	/* health blocks not understood */
	int		 have_lag;
	uint64_t	 lag_us;	/* last forwarded batch: sealed -> sent */
	int		 have_health;
	struct health	 health;	/* newest report */
	uint64_t	 health_seq;	/* of the batch that carried it */
	uint64_t	 health_created_us;	/* when the kit sealed it */
};

struct kits;

struct kits	*kits_new(const struct kits_params *p);
void		 kits_free(struct kits *k);
/* New thresholds (reload). */
void		 kits_set_params(struct kits *k, const struct kits_params *p);

/*
 * An authenticated batch with header `h` arrived at `now_us`.  `raw` is
 * its opened content (raw_len bytes), or NULL when the content could not
 * be opened; its health block, if any, is read.  k may be NULL.
 */
void		 kits_heard(struct kits *k, const struct wire_header *h,
		    const uint8_t *raw, size_t raw_len, uint64_t now_us);
/* The batch `h` was forwarded (acknowledged new) at `now_us`. */
void		 kits_forwarded(struct kits *k, const struct wire_header *h,
		    uint64_t now_us);

/* One kit's record; -1 if the kit was never heard. */
int		 kits_get(struct kits *k, const char *id, struct kits_view *out);

/*
 * Appends the flowpost_gateway_kit_* families to `out`; -1 if its ceiling
 * was reached (or out of memory).
 */
int		 kits_metrics(struct kits *k, uint64_t now_us, struct buf *out);
/* The status page: {"clients":[...]}, into `out` (reset first). */
int		 kits_status_json(struct kits *k, uint64_t now_us,
		    struct buf *out);

#endif
