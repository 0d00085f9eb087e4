/*
 * health.c: encode and decode the health block (docs/PROTOCOL.md 1.3).
 *
 * The fixed part of version 1, after `version` and `fixed_len`:
 *
 *   off  size  field
 *     0     4  flags
 *     4     8  uptime_s
 *    12     8  spool_batches
 *    20     8  spool_bytes
 *    28     8  spool_oldest_age_s
 *    36     8  spool_dropped_batches
 *    44     8  spool_dropped_datagrams
 *    52     8  dropped_invalid
 *    60     8  dropped_backpressure
 *    68     8  kernel_drops
 *    76     8  upstream_gaps
 *    84     8  upstream_lost_records
 *    92     8  upstream_lost_packets
 *   100     8  retries_since_success
 *   108     8  clock_offset_ms (two's complement)
 *   116        end
 */
#include <string.h>

#include "bytes.h"
#include "health.h"

const char *
health_strerror(enum health_err e)
{
	switch (e) {
	case HEALTH_OK:
		return "ok";
	case HEALTH_ETRUNC:
		return "health block truncated";
	case HEALTH_EVERSION:
		return "unknown health block version";
	case HEALTH_ELENGTH:
		return "health block fixed part too short";
	}
	return "unknown error";
}

/* Bytes allowed in the strings; all are safe unquoted in logs and JSON. */
static int
health_char_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' ||
	    c == ':' || c == '-';
}

static void
health_put_str(struct wcur *w, const char *s)
{
	size_t	n = strlen(s);

	if (n > HEALTH_STR_MAX)
		n = HEALTH_STR_MAX;
	wcur_u8(w, (uint8_t)n);
	wcur_bytes(w, s, n);
}

int
health_encode(const struct health *h, uint8_t *out, size_t outlen,
    size_t *len)
{
	struct wcur	w;

	wcur_init(&w, out, outlen);
	wcur_u16(&w, HEALTH_VERSION);
	wcur_u16(&w, HEALTH_FIXED_V1);
	wcur_u32(&w, h->flags);
	wcur_u64(&w, h->uptime_s);
	wcur_u64(&w, h->spool_batches);
	wcur_u64(&w, h->spool_bytes);
	wcur_u64(&w, h->spool_oldest_age_s);
	wcur_u64(&w, h->spool_dropped_batches);
	wcur_u64(&w, h->spool_dropped_datagrams);
	wcur_u64(&w, h->dropped_invalid);
	wcur_u64(&w, h->dropped_backpressure);
	wcur_u64(&w, h->kernel_drops);
	wcur_u64(&w, h->upstream_gaps);
	wcur_u64(&w, h->upstream_lost_records);
	wcur_u64(&w, h->upstream_lost_packets);
	wcur_u64(&w, h->retries_since_success);
	wcur_u64(&w, (uint64_t)h->clock_offset_ms);
	health_put_str(&w, h->client_version);
	health_put_str(&w, h->route);
	if (w.err)
		return -1;
	*len = outlen - w.left;
	return 0;
}

/* A length-prefixed string into out (HEALTH_STR_MAX + 1 bytes). */
static void
health_get_str(struct rcur *r, char *out)
{
	const uint8_t	*p;
	size_t		 n, i;

	n = rcur_u8(r);
	out[0] = '\0';
	if ((p = rcur_take(r, n)) == NULL)
		return;
	if (n > HEALTH_STR_MAX)
		n = HEALTH_STR_MAX;
	for (i = 0; i < n; i++)
		out[i] = health_char_ok(p[i]) ? (char)p[i] : '_';
	out[n] = '\0';
}

enum health_err
health_decode(const uint8_t *data, size_t len, struct health *h)
{
	struct rcur	 r, f;
	const uint8_t	*fixed;
	enum health_err	 e;
	uint16_t	 version;

	memset(h, 0, sizeof(*h));
	rcur_init(&r, data, len);
	h->version = rcur_u16(&r);
	h->fixed_len = rcur_u16(&r);
	if (r.err) {
		e = HEALTH_ETRUNC;
		goto fail;
	}
	if (h->version != HEALTH_VERSION) {
		e = HEALTH_EVERSION;
		goto fail;
	}
	if (h->fixed_len < HEALTH_FIXED_V1) {
		e = HEALTH_ELENGTH;
		goto fail;
	}
	if ((fixed = rcur_take(&r, h->fixed_len)) == NULL) {
		e = HEALTH_ETRUNC;
		goto fail;
	}

	/* Only the fields version 1 defines; a longer part is a revision. */
	rcur_init(&f, fixed, HEALTH_FIXED_V1);
	h->flags = rcur_u32(&f);
	h->uptime_s = rcur_u64(&f);
	h->spool_batches = rcur_u64(&f);
	h->spool_bytes = rcur_u64(&f);
	h->spool_oldest_age_s = rcur_u64(&f);
	h->spool_dropped_batches = rcur_u64(&f);
	h->spool_dropped_datagrams = rcur_u64(&f);
	h->dropped_invalid = rcur_u64(&f);
	h->dropped_backpressure = rcur_u64(&f);
	h->kernel_drops = rcur_u64(&f);
	h->upstream_gaps = rcur_u64(&f);
	h->upstream_lost_records = rcur_u64(&f);
	h->upstream_lost_packets = rcur_u64(&f);
	h->retries_since_success = rcur_u64(&f);
	h->clock_offset_ms = (int64_t)rcur_u64(&f);

	/* Strings follow the fixed part; anything after them is ignored. */
	health_get_str(&r, h->client_version);
	health_get_str(&r, h->route);
	if (f.err || r.err) {
		e = HEALTH_ETRUNC;
		goto fail;
	}
	return HEALTH_OK;
 fail:
	version = h->version;
	memset(h, 0, sizeof(*h));
	/* names the version in the caller's log line */
	if (e == HEALTH_EVERSION)
		h->version = version;
	return e;
}
