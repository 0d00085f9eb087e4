/*
 * ingest.c: authenticate, open, validate, de-duplicate, forward, acknowledge.
 *
 * The order is PROTOCOL.md section 3 and the first failure answers.  No
 * datagram is forwarded before the whole batch has been validated, and no
 * acknowledgement is written before the datagrams were handed over and the
 * sequence number was recorded.
 *
 * Counters: totals are atomics.  Per-client counters live in a small table
 * that only ever holds clients named in a keys file, so requests with
 * invented client ids cannot grow memory; those are counted globally.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ingest.h"
#include "kits.h"
#include "log.h"
#include "nf.h"
#include "template.h"
#include "util.h"

#define INGEST_BUCKETS		256
#define INGEST_CLIENTS_MAX	(1u << 20)	/* backstop; keys bound it */
#define US_PER_S		UINT64_C(1000000)

struct ingest_client {
	struct ingest_client	*next;
	char			 id[WIRE_CLIENT_ID_MAX + 1];
	_Atomic uint64_t	 batches;
	_Atomic uint64_t	 datagrams;
	_Atomic uint64_t	 bytes_in;
	_Atomic uint64_t	 bytes_out;
	_Atomic uint64_t	 duplicates;
	_Atomic uint64_t	 auth_failures;
	_Atomic uint64_t	 last_seen;
};

struct ingest {
	struct ingest_params	 p;
	struct ingest_deps	 d;
	struct state_locks	 locks;

	pthread_mutex_t		 clients_mu;
	struct ingest_client	*bucket[INGEST_BUCKETS];
	size_t			 nclients;

	_Atomic uint64_t	 batches;
	_Atomic uint64_t	 datagrams;
	_Atomic uint64_t	 bytes_in;
	_Atomic uint64_t	 bytes_out;
	_Atomic uint64_t	 duplicates;
	_Atomic uint64_t	 auth_failures;
	_Atomic uint64_t	 unknown_clients;
	_Atomic uint64_t	 malformed_datagrams;
	_Atomic uint64_t	 rejected[INGEST_R_COUNT];

	struct kits		*kits;		/* health reports; may be NULL */
	struct template_cache	*templates;	/* NULL: template_refresh 0 */
};

static const char *const ingest_reason_names[INGEST_R_COUNT] = {
	[INGEST_R_HEADER] = "header",
	[INGEST_R_UNKNOWN] = "unknown_client",
	[INGEST_R_AUTH] = "auth",
	[INGEST_R_TOO_OLD] = "too_old",
	[INGEST_R_FUTURE] = "future",
	[INGEST_R_TOO_BIG] = "too_big",
	[INGEST_R_CONTENT] = "content",
	[INGEST_R_DATAGRAM] = "datagram",
	[INGEST_R_STATE] = "state",
	[INGEST_R_OUTPUT] = "output",
	[INGEST_R_INTERNAL] = "internal",
};

/* One limiter per kind of complaint, so one noisy peer hides no other. */
static struct log_limit ingest_lim_bad, ingest_lim_auth, ingest_lim_unknown,
    ingest_lim_age, ingest_lim_fail;

static void	ingest_reject(struct ingest *, struct ingest_reply *, int,
		    enum ingest_reason, const char *, ...)
		    __attribute__((format(printf, 5, 6)));

const char *
ingest_reason_name(enum ingest_reason r)
{
	if ((unsigned int)r >= INGEST_R_COUNT)
		return "unknown";
	return ingest_reason_names[r];
}

static void
ingest_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t
ingest_load(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct ingest *
ingest_new(const struct ingest_params *p, const struct ingest_deps *d)
{
	struct ingest	*ig;

	if ((ig = calloc(1, sizeof(*ig))) == NULL)
		return NULL;
	ig->p = *p;
	ig->d = *d;
	if (state_locks_init(&ig->locks) == -1) {
		free(ig);
		return NULL;
	}
	if (pthread_mutex_init(&ig->clients_mu, NULL) != 0) {
		state_locks_destroy(&ig->locks);
		free(ig);
		return NULL;
	}
	return ig;
}

void
ingest_free(struct ingest *ig)
{
	if (ig == NULL)
		return;
	for (int b = 0; b < INGEST_BUCKETS; b++) {
		struct ingest_client *c, *next;

		for (c = ig->bucket[b]; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	}
	pthread_mutex_destroy(&ig->clients_mu);
	state_locks_destroy(&ig->locks);
	free(ig);
}

static unsigned int
ingest_hash(const char *id)
{
	uint32_t	 h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % INGEST_BUCKETS;
}

/*
 * The counters of a client that has a key (the caller checked), created on
 * first use.  NULL only when out of memory or over the backstop; the
 * request is then still served, just not counted per client.
 */
static struct ingest_client *
ingest_client(struct ingest *ig, const char *id)
{
	struct ingest_client	*c;
	unsigned int		 b = ingest_hash(id);

	pthread_mutex_lock(&ig->clients_mu);
	for (c = ig->bucket[b]; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			goto out;
	if (ig->nclients >= INGEST_CLIENTS_MAX ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	memcpy(c->id, id, strlen(id) + 1);
	c->next = ig->bucket[b];
	ig->bucket[b] = c;
	ig->nclients++;
out:
	pthread_mutex_unlock(&ig->clients_mu);
	return c;
}

static void
ingest_reply_text(struct ingest_reply *r, int status, const char *text)
{
	int	 n;

	r->status = status;
	r->content_type = "text/plain";
	n = snprintf(r->body, sizeof(r->body), "%s\n", text);
	if (n < 0) {
		r->body[0] = '\n';
		r->body[1] = '\0';
		n = 1;
	} else if ((size_t)n >= sizeof(r->body)) {
		/* Cut, but keep it one line. */
		n = (int)sizeof(r->body) - 1;
		r->body[n - 1] = '\n';
	}
	r->body_len = (size_t)n;
}

static void
ingest_reject(struct ingest *ig, struct ingest_reply *r, int status,
    enum ingest_reason why, const char *fmt, ...)
{
	char	 text[INGEST_BODY_MAX];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ingest_reply_text(r, status, text);
	ingest_add(&ig->rejected[why], 1);
}

/*
 * Step 5.  `h` must be authenticated: a forger could otherwise turn any
 * batch into a permanent 410 by editing the clear header.
 */
static int
ingest_fresh(struct ingest *ig, const struct wire_header *h, uint64_t now_us,
    struct ingest_reply *r)
{
	uint64_t	 age_max = ig->p.max_batch_age_s * US_PER_S;
	uint64_t	 skew_max = ig->p.max_clock_skew_s * US_PER_S;

	if (ig->p.max_batch_age_s != 0 && now_us > h->created_us &&
	    now_us - h->created_us > age_max) {
		log_limited(&ingest_lim_age, 10, LOGL_WARN, "ingest: client %s "
		    "seq %" PRIu64 ": sealed %" PRIu64 " s ago, older than "
		    "max_batch_age", h->client_id, h->seq,
		    (now_us - h->created_us) / US_PER_S);
		ingest_reject(ig, r, 410, INGEST_R_TOO_OLD,
		    "batch older than max_batch_age");
		return -1;
	}
	if (h->created_us > now_us && h->created_us - now_us > skew_max) {
		log_limited(&ingest_lim_age, 10, LOGL_WARN, "ingest: client %s "
		    "seq %" PRIu64 ": sealed %" PRIu64 " s in the future; "
		    "check the client's clock", h->client_id, h->seq,
		    (h->created_us - now_us) / US_PER_S);
		ingest_reject(ig, r, 400, INGEST_R_FUTURE,
		    "batch from the future (beyond max_clock_skew)");
		return -1;
	}
	return 0;
}

/*
 * Step 7: every entry into `out`, and every datagram sniffed.  A datagram
 * that is not export traffic at all refuses the whole batch; one that is
 * NetFlow/IPFIX with inconsistent lengths is forwarded, because the client
 * already decided to carry it and the collector is the better judge.
 */
static int
ingest_entries(struct ingest *ig, const struct wire_header *h,
    const struct buf *raw, struct wire_entry *out, uint64_t *payload,
    struct ingest_reply *r)
{
	struct wire_iter	 it;
	struct nf_info		 info;
	uint64_t		 malformed = 0;

	*payload = 0;
	if (wire_content_entries(raw->data, raw->len, &it) == -1) {
		ingest_reject(ig, r, 400, INGEST_R_CONTENT, "%s",
		    wire_strerror(WIRE_EENTRY));
		return -1;
	}
	for (uint32_t i = 0; i < h->count; i++) {
		if (wire_entry_next(&it, &out[i]) != 1) {
			ingest_reject(ig, r, 400, INGEST_R_CONTENT,
			    "entry %" PRIu32 ": %s", i,
			    wire_strerror(WIRE_EENTRY));
			return -1;
		}
		switch (nf_check(out[i].payload, out[i].len, &info)) {
		case NF_OK:
			break;
		case NF_MALFORMED:
			malformed++;
			break;
		default:
			log_limited(&ingest_lim_bad, 10, LOGL_WARN, "ingest: "
			    "client %s seq %" PRIu64 ": entry %" PRIu32 " of %"
			    PRIu32 " is not NetFlow/IPFIX (%s); batch refused",
			    h->client_id, h->seq, i, h->count,
			    info.why != NULL ? info.why : "?");
			ingest_reject(ig, r, 400, INGEST_R_DATAGRAM,
			    "entry %" PRIu32 ": not a NetFlow/IPFIX datagram "
			    "(%s)", i, info.why != NULL ? info.why : "?");
			return -1;
		}
		*payload += out[i].len;
	}
	if (malformed > 0)
		ingest_add(&ig->malformed_datagrams, malformed);
	return 0;
}

/* Maps a wire_open() failure after authentication to an answer. */
static void
ingest_open_failed(struct ingest *ig, const struct wire_header *h,
    enum wire_err e, struct ingest_reply *r)
{
	if (e == WIRE_ETOOBIG) {
		log_limited(&ingest_lim_bad, 10, LOGL_WARN, "ingest: client %s "
		    "seq %" PRIu64 ": content of %" PRIu32 " bytes is over "
		    "max_raw_bytes", h->client_id, h->seq, h->raw_len);
		ingest_reject(ig, r, 413, INGEST_R_TOO_BIG,
		    "content over max_raw_bytes");
	} else if (e == WIRE_ENOMEM) {
		log_limited(&ingest_lim_fail, 10, LOGL_ERROR, "ingest: client "
		    "%s seq %" PRIu64 ": out of memory", h->client_id, h->seq);
		ingest_reject(ig, r, 500, INGEST_R_INTERNAL, "out of memory");
	} else {
		log_limited(&ingest_lim_bad, 10, LOGL_WARN, "ingest: client %s "
		    "seq %" PRIu64 ": %s", h->client_id, h->seq,
		    wire_strerror(e));
		ingest_reject(ig, r, 400, INGEST_R_CONTENT, "%s",
		    wire_strerror(e));
	}
}

/*
 * Steps 8 to 11 under the client's lock: look up, forward, record, answer.
 * The datagrams are handed over before the sequence number is recorded: a
 * crash in between forwards the batch again on retry (at-least-once), the
 * opposite order could lose it.
 */
static void
ingest_deliver(struct ingest *ig, struct ingest_client *c,
    const struct wire_header *h, const uint8_t *tag, const uint8_t *key,
    const struct wire_entry *entries, uint64_t payload,
    struct ingest_reply *r)
{
	struct output_result	 res;
	enum wire_ack_status	 st;
	int			 seen = 0, n;

	state_lock(&ig->locks, h->client_id);
	if (ig->d.state->check(ig->d.state_ctx, h->client_id, h->seq,
	    &seen) == -1) {
		ingest_reject(ig, r, 500, INGEST_R_STATE,
		    "duplicate window unavailable for this client");
		goto out;
	}
	if (seen) {
		st = WIRE_ACK_DUP;
		ingest_add(&ig->duplicates, 1);
		if (c != NULL)
			ingest_add(&c->duplicates, 1);
		log_debug("ingest: client %s seq %" PRIu64 ": repeat, "
		    "acknowledged dup", h->client_id, h->seq);
	} else {
		/* Due cached templates go out ahead (template.h). */
		if (template_send(ig->templates, h->client_id,
		    ig->d.output, ig->d.output_ctx, entries, h->count,
		    util_mono_ns(), &res) == -1) {
			log_limited(&ingest_lim_fail, 10, LOGL_ERROR, "ingest: "
			    "client %s seq %" PRIu64 ": none of %u collectors "
			    "took the batch; answering 503", h->client_id,
			    h->seq, res.targets);
			ingest_reject(ig, r, 503, INGEST_R_OUTPUT,
			    "no collector could take the datagrams");
			goto out;
		}
		if (ig->d.state->commit(ig->d.state_ctx, h->client_id,
		    h->seq) == -1) {
			log_limited(&ingest_lim_fail, 10, LOGL_ERROR, "ingest: "
			    "client %s seq %" PRIu64 ": forwarded but not "
			    "recorded; a retry will forward it again",
			    h->client_id, h->seq);
			ingest_reject(ig, r, 500, INGEST_R_STATE,
			    "duplicate window could not be saved");
			goto out;
		}
		st = WIRE_ACK_NEW;
		ingest_add(&ig->batches, 1);
		ingest_add(&ig->datagrams, h->count);
		ingest_add(&ig->bytes_out, payload);
		if (c != NULL) {
			ingest_add(&c->batches, 1);
			ingest_add(&c->datagrams, h->count);
			ingest_add(&c->bytes_out, payload);
		}
		log_debug("ingest: client %s seq %" PRIu64 ": %" PRIu32
		    " datagrams forwarded", h->client_id, h->seq, h->count);
		kits_forwarded(ig->kits, h, util_real_us());
	}
	n = wire_ack_format(r->body, sizeof(r->body), h->client_id, h->seq, st,
	    tag, key);
	if (n < 0) {
		ingest_reject(ig, r, 500, INGEST_R_INTERNAL,
		    "cannot format the acknowledgement");
		goto out;
	}
	r->status = 200;
	r->content_type = "text/plain";
	r->body_len = (size_t)n;
out:
	state_unlock(&ig->locks, h->client_id);
}

void
ingest_batch(struct ingest *ig, const uint8_t *body, size_t len,
    uint64_t now_us, struct ingest_reply *r)
{
	struct wire_header	 h;
	struct wire_entry	*entries = NULL;
	struct ingest_client	*c = NULL;
	struct keys		*keys = NULL;
	struct buf		 raw;
	const uint8_t		*key;
	uint64_t		 payload = 0;
	enum wire_err		 e;

	memset(r, 0, sizeof(*r));
	buf_init(&raw, 0, ig->p.max_raw_bytes);

	/* Step 3: the clear header names the client; find its key. */
	if ((e = wire_parse_header(body, len, &h)) != WIRE_OK) {
		log_limited(&ingest_lim_bad, 10, LOGL_WARN, "ingest: bad batch "
		    "header: %s", wire_strerror(e));
		ingest_reject(ig, r, 400, INGEST_R_HEADER, "bad batch header: "
		    "%s", wire_strerror(e));
		goto out;
	}
	keys = keys_store_get(ig->d.keys);
	if ((key = keys_find(keys, h.client_id)) == NULL) {
		ingest_add(&ig->unknown_clients, 1);
		log_limited(&ingest_lim_unknown, 10, LOGL_WARN, "ingest: "
		    "unknown client %s", h.client_id);
		ingest_reject(ig, r, 403, INGEST_R_UNKNOWN, "unknown client");
		goto out;
	}
	c = ingest_client(ig, h.client_id);

	/* Step 4, then 6 inside wire_open(): authenticate before anything. */
	e = wire_open(body, len, key, ig->p.max_raw_bytes, &h, &raw);
	if (e == WIRE_EAUTH) {
		ingest_add(&ig->auth_failures, 1);
		if (c != NULL)
			ingest_add(&c->auth_failures, 1);
		log_limited(&ingest_lim_auth, 10, LOGL_WARN, "ingest: client %s "
		    "seq %" PRIu64 ": authentication failed (wrong key, or "
		    "changed on the way)", h.client_id, h.seq);
		ingest_reject(ig, r, 401, INGEST_R_AUTH,
		    "authentication failed");
		goto out;
	}
	if (e == WIRE_ENOMEM) {
		/* Perhaps before the tag was checked: judge nothing else. */
		ingest_open_failed(ig, &h, e, r);
		goto out;
	}
	/* Past the tag: the header is authentic, so its age can be judged. */
	ingest_add(&ig->bytes_in, len);
	if (c != NULL) {
		ingest_add(&c->bytes_in, len);
		atomic_store_explicit(&c->last_seen, now_us / US_PER_S,
		    memory_order_relaxed);
	}
	/* Heard from, and its health report, even if refused below. */
	kits_heard(ig->kits, &h, e == WIRE_OK ? raw.data : NULL,
	    e == WIRE_OK ? raw.len : 0, now_us);
	if (ingest_fresh(ig, &h, now_us, r) == -1)
		goto out;
	if (e != WIRE_OK) {
		ingest_open_failed(ig, &h, e, r);
		goto out;
	}

	if (h.count > 0 &&
	    (entries = calloc(h.count, sizeof(*entries))) == NULL) {
		ingest_open_failed(ig, &h, WIRE_ENOMEM, r);
		goto out;
	}
	if (ingest_entries(ig, &h, &raw, entries, &payload, r) == -1)
		goto out;
	ingest_deliver(ig, c, &h, wire_tag(body, len), key, entries, payload,
	    r);
out:
	free(entries);
	buf_free(&raw);
	keys_unref(keys);
}

void
ingest_get_totals(struct ingest *ig, struct ingest_totals *t)
{
	memset(t, 0, sizeof(*t));
	t->batches = ingest_load(&ig->batches);
	t->datagrams = ingest_load(&ig->datagrams);
	t->bytes_in = ingest_load(&ig->bytes_in);
	t->bytes_out = ingest_load(&ig->bytes_out);
	t->duplicates = ingest_load(&ig->duplicates);
	t->auth_failures = ingest_load(&ig->auth_failures);
	t->unknown_clients = ingest_load(&ig->unknown_clients);
	t->malformed_datagrams = ingest_load(&ig->malformed_datagrams);
	for (int i = 0; i < INGEST_R_COUNT; i++)
		t->rejected[i] = ingest_load(&ig->rejected[i]);
}

void
ingest_foreach_client(struct ingest *ig, void (*cb)(const char *client,
    const struct ingest_client_stats *s, void *arg), void *arg)
{
	struct ingest_client_stats	 s;

	pthread_mutex_lock(&ig->clients_mu);
	for (int b = 0; b < INGEST_BUCKETS; b++) {
		for (struct ingest_client *c = ig->bucket[b]; c != NULL;
		    c = c->next) {
			s.batches = ingest_load(&c->batches);
			s.datagrams = ingest_load(&c->datagrams);
			s.bytes_in = ingest_load(&c->bytes_in);
			s.bytes_out = ingest_load(&c->bytes_out);
			s.duplicates = ingest_load(&c->duplicates);
			s.auth_failures = ingest_load(&c->auth_failures);
			s.last_seen = ingest_load(&c->last_seen);
			cb(c->id, &s, arg);
		}
	}
	pthread_mutex_unlock(&ig->clients_mu);
}

void
ingest_set_kits(struct ingest *ig, struct kits *k)
{
	ig->kits = k;
}

void
ingest_set_templates(struct ingest *ig, struct template_cache *tc)
{
	ig->templates = tc;
}
