/*
 * fuzz_health.c: libFuzzer target for the health block (common/health.c)
 * and the gateway's use of it (gateway/kits.c).
 *
 * Each input goes through three doors:
 *  (a) health_decode() on the input as a block.  A block it accepts must
 *      have safe, short strings, must encode again into a block that
 *      decodes to the same report, and every prefix of it shorter than
 *      what the layout says it spans (read independently, from
 *      docs/PROTOCOL.md 1.3) must be refused;
 *  (b) the input as the health block of a batch's content, handed to
 *      kits_heard() as a heartbeat and as a regular batch; the metrics and
 *      the JSON status page rendered from it must be well formed (the JSON
 *      is checked by a small parser here);
 *  (c) the input as the numbers and strings of a report: health_encode()
 *      must always fit HEALTH_MAX and decode back to the same numbers.
 */
#include <string.h>

#include "buf.h"
#include "fuzzlib.h"
#include "health.h"
#include "kits.h"
#include "log.h"
#include "wire.h"

#define OUT_MAX		(1u << 20)
#define JSON_DEPTH	16

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* the warnings run, but do not flood the fuzzer's output */
	log_init("fuzz_health", LOGL_ERROR, 0);
	return 0;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int
str_ok(const char *s)
{
	size_t	n = strlen(s);

	if (n > HEALTH_STR_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("._+:-", *s) != NULL))
			return 0;
	return 1;
}

/* The numbers and strings of two reports are the same. */
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

/*
 * The bytes a version 1 block spans, read from the layout: 0 if the
 * layout cannot be followed inside `size`.
 */
static size_t
span(const uint8_t *p, size_t size)
{
	size_t	off;

	if (size < 4)
		return 0;
	off = 4 + (size_t)get16(p + 2);
	if (off >= size)
		return 0;
	off += 1 + p[off];
	if (off >= size)
		return 0;
	off += 1 + p[off];
	return off <= size ? off : 0;
}

/* (a) */
static void
door_decode(const uint8_t *data, size_t size)
{
	struct health	 h, h2, zero;
	uint8_t		 b[HEALTH_MAX];
	uint8_t		*copy;
	size_t		 len = 0, s;
	enum health_err	 e;

	memset(&zero, 0, sizeof(zero));
	e = health_decode(data, size, &h);
	FUZZ_CHECK(health_strerror(e) != NULL);
	if (e != HEALTH_OK) {
		if (e == HEALTH_EVERSION) {
			FUZZ_CHECK(size >= 4 && h.version == get16(data) &&
			    h.version != HEALTH_VERSION);
			h.version = 0;
		}
		FUZZ_CHECK(memcmp(&h, &zero, sizeof(h)) == 0);
		return;
	}
	FUZZ_CHECK(size >= 4 && get16(data) == HEALTH_VERSION);
	FUZZ_CHECK(h.fixed_len == get16(data + 2) &&
	    h.fixed_len >= HEALTH_FIXED_V1);
	FUZZ_CHECK(str_ok(h.client_version) && str_ok(h.route));

	FUZZ_CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	FUZZ_CHECK(len <= HEALTH_MAX);
	FUZZ_CHECK(health_decode(b, len, &h2) == HEALTH_OK);
	FUZZ_CHECK(same(&h, &h2) && h2.fixed_len == HEALTH_FIXED_V1);

	/* What the layout spans must all be there; beyond it is ignored. */
	s = span(data, size);
	FUZZ_CHECK(s > 0 && s <= size);
	for (size_t n = 0; n < s; n++) {
		if ((copy = malloc(n > 0 ? n : 1)) == NULL)
			return;
		memcpy(copy, data, n);
		FUZZ_CHECK(health_decode(copy, n, &h2) != HEALTH_OK);
		free(copy);
	}
	FUZZ_CHECK(health_decode(data, s, &h2) == HEALTH_OK && same(&h, &h2));
}

/*
 * A small JSON parser, enough to say the status page is one well-formed
 * value: objects, arrays, strings with escapes, numbers, null, true,
 * false.
 */
struct json {
	const char	*p;
	const char	*end;
};

static int	json_value(struct json *, int);

static void
json_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
	    *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

static int
json_lit(struct json *j, const char *w)
{
	size_t	n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

static int
json_string(struct json *j)
{
	if (j->p == j->end || *j->p++ != '"')
		return -1;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p++;

		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '\\')
			continue;
		if (j->p == j->end)
			return -1;
		c = (unsigned char)*j->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, j->p++)
				if (j->p == j->end ||
				    strchr("0123456789abcdefABCDEF", *j->p) ==
				    NULL || *j->p == '\0')
					return -1;
		} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
			return -1;
	}
	if (j->p == j->end)
		return -1;
	j->p++;
	return 0;
}

static int
json_number(struct json *j)
{
	const char	*start;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	start = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	if (j->p == start || (j->p - start > 1 && *start == '0'))
		return -1;
	if (j->p < j->end && *j->p == '.') {
		start = ++j->p;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
		if (j->p == start)
			return -1;
	}
	return 0;
}

static int
json_members(struct json *j, int depth, char close, int keys)
{
	j->p++;
	json_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (keys) {
			json_ws(j);
			if (json_string(j) == -1)
				return -1;
			json_ws(j);
			if (j->p == j->end || *j->p++ != ':')
				return -1;
		}
		if (json_value(j, depth + 1) == -1)
			return -1;
		json_ws(j);
		if (j->p == j->end)
			return -1;
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		if (*j->p++ != ',')
			return -1;
	}
}

static int
json_value(struct json *j, int depth)
{
	if (depth > JSON_DEPTH)
		return -1;
	json_ws(j);
	if (j->p == j->end)
		return -1;
	switch (*j->p) {
	case '{':
		return json_members(j, depth, '}', 1);
	case '[':
		return json_members(j, depth, ']', 0);
	case '"':
		return json_string(j);
	case 'n':
		return json_lit(j, "null");
	case 't':
		return json_lit(j, "true");
	case 'f':
		return json_lit(j, "false");
	default:
		return json_number(j);
	}
}

static int
json_valid(const struct buf *b)
{
	struct json	j = { (const char *)b->data,
			    (const char *)b->data + b->len };

	if (json_value(&j, 0) == -1)
		return 0;
	json_ws(&j);
	return j.p == j.end;
}

/* Every line is a comment or `name{labels} value`, nothing else. */
static int
metrics_valid(const struct buf *b)
{
	const char	*p = (const char *)b->data, *end = p + b->len, *nl;

	if (b->len == 0 || end[-1] != '\n')
		return 0;
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == p)
			return 0;
		if (*p == '#')
			continue;
		if (memcmp(p, "flowpost_gateway_kit_", 21) != 0)
			return 0;
		for (const char *q = p; q < nl; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
				return 0;
		if (memchr(p, '{', (size_t)(nl - p)) == NULL ||
		    memchr(p, '}', (size_t)(nl - p)) == NULL)
			return 0;
	}
	return 1;
}

/* (b) */
static void
door_kits(const uint8_t *data, size_t size)
{
	struct kits_params	 p = { 60, 1 };
	struct kits		*k;
	struct kits_view	 v;
	struct wire_header	 w;
	struct buf		 content, out;
	uint8_t			 hl[4];
	struct health		 h;
	int			 ok;

	if (size > UINT32_MAX - 4 || (k = kits_new(&p)) == NULL)
		return;
	if (buf_init(&content, 0, size + 4) == -1 ||
	    buf_init(&out, 0, OUT_MAX) == -1)
		abort();
	fuzzlib_put32(hl, (uint32_t)size);
	if (buf_append(&content, hl, 4) == -1 ||
	    buf_append(&content, data, size) == -1)
		abort();
	ok = health_decode(data, size, &h) == HEALTH_OK;

	memset(&w, 0, sizeof(w));
	memcpy(w.client_id, FUZZLIB_CLIENT, sizeof(FUZZLIB_CLIENT));
	w.seq = FUZZLIB_SEQ0;
	w.created_us = FUZZLIB_NOW_US - 1000000;
	w.flags = WIRE_FLAG_HEARTBEAT;
	kits_heard(k, &w, content.data, content.len, FUZZLIB_NOW_US);
	w.seq++;
	w.flags = 0;
	kits_heard(k, &w, content.data, content.len, FUZZLIB_NOW_US);
	kits_forwarded(k, &w, FUZZLIB_NOW_US);

	FUZZ_CHECK(kits_get(k, FUZZLIB_CLIENT, &v) == 0);
	FUZZ_CHECK(v.heartbeats == 1 && v.have_lag);
	FUZZ_CHECK(v.have_health == ok);
	FUZZ_CHECK(v.unreadable == (ok || size == 0 ? 0u : 2u));
	if (ok)
		FUZZ_CHECK(same(&v.health, &h) && v.health_seq == w.seq);

	FUZZ_CHECK(kits_metrics(k, FUZZLIB_NOW_US, &out) == 0);
	FUZZ_CHECK(metrics_valid(&out));
	FUZZ_CHECK(kits_status_json(k, FUZZLIB_NOW_US, &out) == 0);
	FUZZ_CHECK(json_valid(&out));

	buf_free(&out);
	buf_free(&content);
	kits_free(k);
}

/* (c) */
static void
door_encode(const uint8_t *data, size_t size)
{
	struct health	 h, d;
	uint8_t		 b[HEALTH_MAX];
	uint64_t	 num[15];
	size_t		 len = 0, n, rest;

	memset(num, 0, sizeof(num));
	n = size < sizeof(num) ? size : sizeof(num);
	memcpy(num, data, n);
	memset(&h, 0, sizeof(h));
	h.flags = (uint32_t)num[0];
	h.uptime_s = num[1];
	h.spool_batches = num[2];
	h.spool_bytes = num[3];
	h.spool_oldest_age_s = num[4];
	h.spool_dropped_batches = num[5];
	h.spool_dropped_datagrams = num[6];
	h.dropped_invalid = num[7];
	h.dropped_backpressure = num[8];
	h.kernel_drops = num[9];
	h.upstream_gaps = num[10];
	h.upstream_lost_records = num[11];
	h.upstream_lost_packets = num[12];
	h.retries_since_success = num[13];
	h.clock_offset_ms = (int64_t)num[14];
	/* The rest: the version string, then the route, each cut to fit. */
	rest = size - n;
	n = rest < HEALTH_STR_MAX ? rest : HEALTH_STR_MAX;
	memcpy(h.client_version, data + size - rest, n);
	h.client_version[n] = '\0';
	rest -= n;
	n = rest < HEALTH_STR_MAX ? rest : HEALTH_STR_MAX;
	memcpy(h.route, data + size - rest, n);
	h.route[n] = '\0';

	FUZZ_CHECK(health_encode(&h, b, sizeof(b), &len) == 0);
	FUZZ_CHECK(len >= 4 + HEALTH_FIXED_V1 + 2 && len <= HEALTH_MAX);
	FUZZ_CHECK(health_decode(b, len, &d) == HEALTH_OK);
	FUZZ_CHECK(str_ok(d.client_version) && str_ok(d.route));
	/* Strings that were clean to begin with come back the same. */
	if (str_ok(h.client_version) && str_ok(h.route))
		FUZZ_CHECK(same(&h, &d));
	else
		FUZZ_CHECK(d.uptime_s == h.uptime_s &&
		    d.clock_offset_ms == h.clock_offset_ms);
	/* One byte less never fits. */
	FUZZ_CHECK(health_encode(&h, b, len - 1, &len) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	door_decode(data, size);
	door_kits(data, size);
	door_encode(data, size);
	return 0;
}
