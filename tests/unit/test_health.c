/*
 * test_health.c: the health block (common/health.c against
 * docs/PROTOCOL.md 1.3) and the gateway's table of kits (gateway/kits.c).
 *
 * The layout is checked byte by byte against the specification's table,
 * not only by round trips, so that a mistake shared by the encoder and the
 * decoder cannot hide.
 */
#include <string.h>

#include "bytes.h"
#include "check.h"

#include "buf.h"
#include "health.h"
#include "kits.h"
#include "wire.h"

#define BIG	(1u << 20)

/* A report with a different value in every field. */
static void
sample(struct health *h)
{
	memset(h, 0, sizeof(*h));
	h->flags = HEALTH_F_CLOCK | HEALTH_F_KDROPS;
	h->uptime_s = 86400 * 3 + 17;
	h->spool_batches = 42;
	h->spool_bytes = 5u << 20;
	h->spool_oldest_age_s = 3601;
	h->spool_dropped_batches = 7;
	h->spool_dropped_datagrams = 700;
	h->dropped_invalid = 3;
	h->dropped_backpressure = 4;
	h->kernel_drops = 5;
	h->upstream_gaps = 6;
	h->upstream_lost_records = 600;
	h->upstream_lost_packets = 8;
	h->retries_since_success = 9;
	h->clock_offset_ms = -1250;
	memcpy(h->client_version, "0.1.0", 6);
	memcpy(h->route, "configured", 11);
}

static int
same(const struct health *a, const struct health *b)
{
	return a->flags == b->flags && a->uptime_s == b->uptime_s &&
	    a->spool_batches == b->spool_batches &&
	    a->spool_bytes == b->spool_bytes &&
	    a->spool_oldest_age_s == b->spool_oldest_age_s &&
	    a->spool_dropped_batches == b->spool_dropped_batches &&
	    a->spool_dropped_datagrams == b->spool_dropped_datagrams &&
	    a->dropped_invalid == b->dropped_invalid &&
	    a->dropped_backpressure == b->dropped_backpressure &&
	    a->kernel_drops == b->kernel_drops &&
	    a->upstream_gaps == b->upstream_gaps &&
	    a->upstream_lost_records == b->upstream_lost_records &&
	    a->upstream_lost_packets == b->upstream_lost_packets &&
	    a->retries_since_success == b->retries_since_success &&
	    a->clock_offset_ms == b->clock_offset_ms &&
	    strcmp(a->client_version, b->client_version) == 0 &&
	    strcmp(a->route, b->route) == 0;
}

static void
test_round_trip(void)
{
	struct health	h, d;
	uint8_t		b[HEALTH_MAX];
	size_t		len = 0;

	sample(&h);
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	CHECK_EQ_U64(len, 4 + HEALTH_FIXED_V1 + 1 + 5 + 1 + 10);
	CHECK(health_decode(b, len, &d) == HEALTH_OK);
	CHECK(same(&h, &d));
	CHECK_EQ_U64(d.version, HEALTH_VERSION);
	CHECK_EQ_U64(d.fixed_len, HEALTH_FIXED_V1);

	/* Extremes: all ones, the most negative offset, empty strings. */
	memset(&h, 0xff, sizeof(h));
	h.clock_offset_ms = INT64_MIN;
	h.client_version[0] = h.route[0] = '\0';
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	CHECK_EQ_U64(len, 4 + HEALTH_FIXED_V1 + 2);
	CHECK(health_decode(b, len, &d) == HEALTH_OK);
	CHECK(same(&h, &d));

	/* The largest block fits HEALTH_MAX exactly; one byte less fails. */
	sample(&h);
	memset(h.client_version, 'v', HEALTH_STR_MAX);
	memset(h.route, 'r', HEALTH_STR_MAX);
	h.client_version[HEALTH_STR_MAX] = h.route[HEALTH_STR_MAX] = '\0';
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	CHECK_EQ_U64(len, HEALTH_MAX);
	CHECK(health_encode(&h, b, HEALTH_MAX - 1, &len) == -1);
	CHECK(health_decode(b, HEALTH_MAX, &d) == HEALTH_OK);
	CHECK(same(&h, &d));
}

/* The bytes are where docs/PROTOCOL.md 1.3 says. */
static void
test_layout(void)
{
	struct health	h;
	uint8_t		b[HEALTH_MAX];
	size_t		len = 0;

	sample(&h);
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	CHECK(b[0] == 0 && b[1] == 1);			/* version */
	CHECK(b[2] == 0 && b[3] == 116);		/* fixed_len */
	CHECK(b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 5); /* flags */
	CHECK_EQ_U64(be64(b + 8), h.uptime_s);
	CHECK_EQ_U64(be64(b + 16), h.spool_batches);
	CHECK_EQ_U64(be64(b + 24), h.spool_bytes);
	CHECK_EQ_U64(be64(b + 32), h.spool_oldest_age_s);
	CHECK_EQ_U64(be64(b + 40), h.spool_dropped_batches);
	CHECK_EQ_U64(be64(b + 48), h.spool_dropped_datagrams);
	CHECK_EQ_U64(be64(b + 56), h.dropped_invalid);
	CHECK_EQ_U64(be64(b + 64), h.dropped_backpressure);
	CHECK_EQ_U64(be64(b + 72), h.kernel_drops);
	CHECK_EQ_U64(be64(b + 80), h.upstream_gaps);
	CHECK_EQ_U64(be64(b + 88), h.upstream_lost_records);
	CHECK_EQ_U64(be64(b + 96), h.upstream_lost_packets);
	CHECK_EQ_U64(be64(b + 104), h.retries_since_success);
	CHECK_EQ_U64(be64(b + 112), (uint64_t)-1250);
	CHECK(b[120] == 5 && memcmp(b + 121, "0.1.0", 5) == 0);
	CHECK(b[126] == 10 && memcmp(b + 127, "configured", 10) == 0);
	CHECK_EQ_U64(len, 137);
}

/* Every proper prefix of a block is refused, and leaves nothing behind. */
static void
test_truncation(void)
{
	struct health	h, d, zero;
	uint8_t		b[HEALTH_MAX], *copy;
	size_t		len = 0;

	memset(&zero, 0, sizeof(zero));
	sample(&h);
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	for (size_t n = 0; n < len; n++) {
		/* an exact-size copy, so that ASan sees any overread */
		copy = malloc(n > 0 ? n : 1);
		CHECK(copy != NULL);
		if (copy == NULL)
			return;
		memcpy(copy, b, n);
		if (health_decode(copy, n, &d) != HEALTH_ETRUNC) {
			fprintf(stderr, "prefix of %zu bytes not refused\n", n);
			CHECK(0);
		}
		CHECK(memcmp(&d, &zero, sizeof(d)) == 0);
		free(copy);
	}
	CHECK(health_decode(NULL, 0, &d) == HEALTH_ETRUNC);
}

static void
test_versions(void)
{
	struct health	h, d;
	uint8_t		b[HEALTH_MAX + 64], rev[HEALTH_MAX + 64];
	size_t		len = 0, rl;

	sample(&h);
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);

	/* Another version: ignored, and named. */
	put_be16(b, 2);
	CHECK(health_decode(b, len, &d) == HEALTH_EVERSION);
	CHECK_EQ_U64(d.version, 2);
	CHECK_EQ_U64(d.uptime_s, 0);
	put_be16(b, 0);
	CHECK(health_decode(b, len, &d) == HEALTH_EVERSION);
	put_be16(b, 0xffff);
	CHECK(health_decode(b, 3, &d) == HEALTH_ETRUNC);
	CHECK(health_decode(b, 4, &d) == HEALTH_EVERSION);
	put_be16(b, 1);

	/* A fixed part shorter than version 1's is malformed. */
	put_be16(b + 2, HEALTH_FIXED_V1 - 1);
	CHECK(health_decode(b, len, &d) == HEALTH_ELENGTH);
	put_be16(b + 2, 0);
	CHECK(health_decode(b, len, &d) == HEALTH_ELENGTH);
	put_be16(b + 2, HEALTH_FIXED_V1);

	/*
	 * A later revision: 16 more bytes in the fixed part, and an item
	 * after the strings.  The fields version 1 knows still come out.
	 */
	memcpy(rev, b, 4 + HEALTH_FIXED_V1);
	put_be16(rev + 2, HEALTH_FIXED_V1 + 16);
	memset(rev + 4 + HEALTH_FIXED_V1, 0xee, 16);
	rl = 4 + HEALTH_FIXED_V1 + 16;
	memcpy(rev + rl, b + 4 + HEALTH_FIXED_V1, len - 4 - HEALTH_FIXED_V1);
	rl += len - 4 - HEALTH_FIXED_V1;
	memcpy(rev + rl, "\x03new", 4);
	rl += 4;
	CHECK(health_decode(rev, rl, &d) == HEALTH_OK);
	CHECK(same(&h, &d));
	CHECK_EQ_U64(d.fixed_len, HEALTH_FIXED_V1 + 16);
	/* ... and its truncations are still refused up to the strings. */
	for (size_t n = 0; n < rl - 4; n++)
		CHECK(health_decode(rev, n, &d) != HEALTH_OK);
	/* A fixed_len running past the end of the block. */
	put_be16(rev + 2, 0xffff);
	CHECK(health_decode(rev, rl, &d) == HEALTH_ETRUNC);
}

static void
test_strings(void)
{
	struct health	h, d;
	uint8_t		b[HEALTH_MAX + 64];
	size_t		len = 0, off = 4 + HEALTH_FIXED_V1;

	/* Cut to HEALTH_STR_MAX when written. */
	sample(&h);
	memset(h.route, 'x', sizeof(h.route) - 1);
	h.route[sizeof(h.route) - 1] = '\0';
	CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	CHECK(health_decode(b, len, &d) == HEALTH_OK);
	CHECK_EQ_U64(strlen(d.route), HEALTH_STR_MAX);

	/* Hostile bytes come out as '_', and a long string is cut. */
	memset(b, 0, sizeof(b));
	put_be16(b, 1);
	put_be16(b + 2, HEALTH_FIXED_V1);
	b[off] = 6;
	memcpy(b + off + 1, "a\"b\\\n\xff", 6);
	b[off + 7] = 40;
	memset(b + off + 8, 'z', 40);
	CHECK(health_decode(b, off + 8 + 40, &d) == HEALTH_OK);
	CHECK(strcmp(d.client_version, "a_b___") == 0);
	CHECK_EQ_U64(strlen(d.route), HEALTH_STR_MAX);
	/* a string longer than the block */
	CHECK(health_decode(b, off + 8 + 39, &d) == HEALTH_ETRUNC);
}

/* Content as the gateway sees it: health_len, block, (no entries). */
static size_t
content(uint8_t *out, const struct health *h)
{
	size_t	len = 0;

	if (h == NULL) {
		put_be32(out, 0);
		return 4;
	}
	CHECK(health_encode(h, out + 4, HEALTH_MAX, &len) == 0);
	put_be32(out, (uint32_t)len);
	return 4 + len;
}

static void
header(struct wire_header *w, const char *id, uint64_t seq,
    uint64_t created_us, uint8_t flags)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->client_id, sizeof(w->client_id), "%s", id);
	w->seq = seq;
	w->created_us = created_us;
	w->flags = flags;
}

#define NOW	UINT64_C(1700000000000000)

static void
test_kits_latest(void)
{
	struct kits_params	 p = { 3600, 1 };
	struct kits		*k = kits_new(&p);
	struct kits_view	 v;
	struct wire_header	 w;
	struct health		 h;
	uint8_t			 c[4 + HEALTH_MAX];
	size_t			 n;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	CHECK(kits_get(k, "kit-a", &v) == -1);

	/* Heard without a health block (old client, or unopened content). */
	header(&w, "kit-a", 100, NOW - 5000000, 0);
	n = content(c, NULL);
	kits_heard(k, &w, c, n, NOW);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK_EQ_U64(v.heard_us, NOW);
	CHECK(!v.have_health);
	kits_heard(k, &w, NULL, 0, NOW + 1);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK_EQ_U64(v.heard_us, NOW + 1);

	/* A report, then a repeat of an older batch: the newer one stays. */
	sample(&h);
	h.spool_batches = 10;
	header(&w, "kit-a", 110, NOW - 1000000, 0);
	n = content(c, &h);
	kits_heard(k, &w, c, n, NOW + 2);
	h.spool_batches = 99;
	header(&w, "kit-a", 105, NOW - 2000000, 0);
	n = content(c, &h);
	kits_heard(k, &w, c, n, NOW + 3);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK(v.have_health);
	CHECK_EQ_U64(v.health.spool_batches, 10);
	CHECK_EQ_U64(v.health_seq, 110);
	CHECK_EQ_U64(v.heard_us, NOW + 3);	/* still heard */

	/* A heartbeat: counted, and its report taken. */
	h.spool_batches = 0;
	header(&w, "kit-a", 111, NOW, WIRE_FLAG_HEARTBEAT);
	n = content(c, &h);
	kits_heard(k, &w, c, n, NOW + 4);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK_EQ_U64(v.heartbeats, 1);
	CHECK_EQ_U64(v.health.spool_batches, 0);
	CHECK_EQ_U64(v.health_created_us, NOW);

	/* A block of another version: counted, the last report kept. */
	n = content(c, &h);
	put_be16(c + 4, 7);
	header(&w, "kit-a", 112, NOW + 1, 0);
	kits_heard(k, &w, c, n, NOW + 5);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK_EQ_U64(v.unreadable, 1);
	CHECK_EQ_U64(v.health_seq, 111);

	/* A health_len that runs past the content reports nothing. */
	n = content(c, &h);
	put_be32(c, (uint32_t)n);
	header(&w, "kit-a", 113, NOW + 2, 0);
	kits_heard(k, &w, c, n, NOW + 6);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK_EQ_U64(v.health_seq, 111);

	/* Lag of a forwarded batch. */
	header(&w, "kit-a", 114, NOW - 2500000, 0);
	kits_forwarded(k, &w, NOW);
	CHECK(kits_get(k, "kit-a", &v) == 0);
	CHECK(v.have_lag);
	CHECK_EQ_U64(v.lag_us, 2500000);
	kits_heard(NULL, &w, c, n, NOW);	/* no table: nothing happens */
	kits_free(k);
}

static int
contains(const struct buf *b, const char *s)
{
	return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static void
test_kits_render(void)
{
	struct kits_params	 p = { 0, 0 };
	struct kits		*k = kits_new(&p);
	struct wire_header	 w;
	struct health		 h;
	struct buf		 out;
	uint8_t			 c[4 + HEALTH_MAX];
	size_t			 n;

	CHECK(k != NULL && buf_init(&out, 0, BIG) == 0);
	if (k == NULL)
		return;
	sample(&h);
	header(&w, "kit-b", 7, NOW - 2000000, 0);
	n = content(c, &h);
	kits_heard(k, &w, c, n, NOW);
	kits_forwarded(k, &w, NOW);
	header(&w, "kit-a", 3, NOW, WIRE_FLAG_HEARTBEAT);
	kits_heard(k, &w, NULL, 0, NOW - 1500000);

	CHECK(kits_metrics(k, NOW, &out) == 0);
	CHECK(contains(&out, "# TYPE flowpost_gateway_kit_last_heard_seconds "
	    "gauge\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_last_heard_seconds"
	    "{client=\"kit-a\"} 1.500\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_last_heard_seconds"
	    "{client=\"kit-b\"} 0.000\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_heartbeats_total"
	    "{client=\"kit-a\"} 1\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_batch_lag_seconds"
	    "{client=\"kit-b\"} 2.000\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_spool_batches"
	    "{client=\"kit-b\"} 42\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_spool_oldest_age_seconds"
	    "{client=\"kit-b\"} 3601\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_kernel_drops_total"
	    "{client=\"kit-b\"} 5\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_clock_offset_seconds"
	    "{client=\"kit-b\"} -1.250\n"));
	CHECK(contains(&out, "flowpost_gateway_kit_info{client=\"kit-b\","
	    "version=\"0.1.0\",route=\"configured\"} 1\n"));
	/* upstream loss is not counted by this kit (flag clear): absent */
	CHECK(!contains(&out, "upstream_gaps_total{"));
	/* kit-a sent no health: no health series for it */
	CHECK(!contains(&out, "spool_batches{client=\"kit-a\"}"));

	CHECK(kits_status_json(k, NOW, &out) == 0);
	CHECK(contains(&out, "{\"clients\":[{\"id\":\"kit-a\","
	    "\"last_heard_s\":1.500,\"heartbeats\":1,"));
	CHECK(contains(&out, "\"batch_lag_s\":null,\"health\":null}"));
	CHECK(contains(&out, ",{\"id\":\"kit-b\",\"last_heard_s\":0.000,"));
	CHECK(contains(&out, "\"health\":{\"version\":1,\"seq\":7,"
	    "\"report_age_s\":2.000,\"client_version\":\"0.1.0\","
	    "\"route\":\"configured\",\"uptime_s\":259217,"));
	CHECK(contains(&out, "\"upstream_gaps\":null,"));
	CHECK(contains(&out, "\"clock_offset_ms\":-1250}}]}\n"));

	/* A ceiling that cannot hold it: an error, not a cut document. */
	buf_free(&out);
	CHECK(buf_init(&out, 0, 64) == 0);
	CHECK(kits_status_json(k, NOW, &out) == -1);
	CHECK(kits_metrics(k, NOW, &out) == -1);
	buf_free(&out);
	kits_free(k);
}

TEST_MAIN(test_round_trip, test_layout, test_truncation, test_versions,
    test_strings, test_kits_latest, test_kits_render)
