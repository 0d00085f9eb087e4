/*
 * seqtrack.c: per-exporter sequence accounting (seqtrack.h says what is
 * counted and how far it can be trusted).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "log.h"
#include "util.h"

#include "seqtrack.h"
#include "stats.h"

#define ST_BUCKETS		256
#define ST_IPFIX_HEADER		16
#define ST_VARLEN		65535	/* IPFIX variable-length field */
#define ST_HALF			UINT32_C(0x80000000)

struct st_tmpl {
	uint16_t	 id;
	uint16_t	 set_id;	/* 2 template, 3 options template */
	uint16_t	 nfields;
	uint16_t	 nvar;		/* variable-length fields */
	uint32_t	 fixed;		/* sum of the fixed lengths */
	uint16_t	*lens;		/* every field's length when nvar > 0 */
};

struct st_exp {
	struct st_exp	*next;		/* hash chain */
	struct st_exp	*newer, *older;	/* LRU list */
	unsigned int	 bucket;
	uint8_t		 family;
	uint8_t		 addr[16];
	uint16_t	 port;
	uint16_t	 version;
	uint32_t	 domain;
	int		 have_expected;
	uint32_t	 expected;
	int		 have_last;
	uint32_t	 last;		/* IPFIX: last number in order */
	uint64_t	 lost;		/* counted lost, not yet come late */
	uint32_t	 gap_lo, gap_hi;	/* the latest gap [lo, hi) */
	int		 have_late;
	uint32_t	 late_next;	/* follows the last late datagram */
	struct st_tmpl	 t[SEQTRACK_TEMPLATES_MAX];
	size_t		 nt;
	size_t		 fields;	/* lengths stored in t[].lens */
};

struct seqtrack {
	size_t			 max;
	struct st_exp		*bucket[ST_BUCKETS];
	struct st_exp		*newest, *oldest;
	size_t			 n;
	struct seqtrack_counts	 c;
};

/* ------------------------------------------------------------------ */
/* The table */

struct seqtrack *
seqtrack_new(size_t max_exporters)
{
	struct seqtrack	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->max = max_exporters ? max_exporters : SEQTRACK_EXPORTERS_MAX;
	return st;
}

static void
st_tmpl_clear(struct st_exp *x, size_t i)
{
	x->fields -= x->t[i].lens != NULL ? x->t[i].nfields : 0;
	free(x->t[i].lens);
	x->t[i].lens = NULL;
}

static void
st_exp_free(struct st_exp *x)
{
	for (size_t i = 0; i < x->nt; i++)
		free(x->t[i].lens);
	free(x);
}

static void
st_unlink(struct seqtrack *st, struct st_exp *x)
{
	if (x->newer != NULL)
		x->newer->older = x->older;
	else
		st->newest = x->older;
	if (x->older != NULL)
		x->older->newer = x->newer;
	else
		st->oldest = x->newer;
	x->newer = x->older = NULL;
}

static void
st_push(struct seqtrack *st, struct st_exp *x)
{
	x->older = st->newest;
	x->newer = NULL;
	if (st->newest != NULL)
		st->newest->newer = x;
	st->newest = x;
	if (st->oldest == NULL)
		st->oldest = x;
}

static void
st_remove(struct seqtrack *st, struct st_exp *x)
{
	struct st_exp	**pp;

	for (pp = &st->bucket[x->bucket]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	st_unlink(st, x);
	st->n--;
	st_exp_free(x);
}

void
seqtrack_free(struct seqtrack *st)
{
	if (st == NULL)
		return;
	while (st->oldest != NULL)
		st_remove(st, st->oldest);
	free(st);
}

static unsigned int
st_hash(const struct wire_entry *e, uint16_t version, uint32_t domain)
{
	uint8_t		 k[1 + 16 + 2 + 2 + 4];
	struct wcur	 w;
	uint32_t	 h = 2166136261u;

	wcur_init(&w, k, sizeof(k));
	wcur_u8(&w, e->family);
	wcur_bytes(&w, e->addr, sizeof(e->addr));
	wcur_u16(&w, e->src_port);
	wcur_u16(&w, version);
	wcur_u32(&w, domain);
	for (size_t i = 0; i < sizeof(k); i++)
		h = (h ^ k[i]) * 16777619u;
	return h % ST_BUCKETS;
}

/* The stream of a datagram, created (evicting the stalest) if new. */
static struct st_exp *
st_lookup(struct seqtrack *st, const struct wire_entry *e, uint16_t version,
    uint32_t domain, int *created)
{
	unsigned int	 b = st_hash(e, version, domain);
	struct st_exp	*x;

	*created = 0;
	for (x = st->bucket[b]; x != NULL; x = x->next) {
		if (x->family == e->family && x->port == e->src_port &&
		    x->version == version && x->domain == domain &&
		    memcmp(x->addr, e->addr, sizeof(x->addr)) == 0) {
			if (st->newest != x) {
				st_unlink(st, x);
				st_push(st, x);
			}
			return x;
		}
	}
	while (st->n >= st->max && st->oldest != NULL)
		st_remove(st, st->oldest);
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->bucket = b;
	x->family = e->family;
	memcpy(x->addr, e->addr, sizeof(x->addr));
	x->port = e->src_port;
	x->version = version;
	x->domain = domain;
	x->next = st->bucket[b];
	st->bucket[b] = x;
	st_push(st, x);
	st->n++;
	*created = 1;
	return x;
}

/* ------------------------------------------------------------------ */
/* IPFIX templates and record counting */

static struct st_tmpl *
st_tmpl_find(struct st_exp *x, uint16_t id)
{
	for (size_t i = 0; i < x->nt; i++)
		if (x->t[i].id == id)
			return &x->t[i];
	return NULL;
}

static void
st_tmpl_remove(struct st_exp *x, size_t i)
{
	st_tmpl_clear(x, i);
	x->t[i] = x->t[x->nt - 1];
	x->nt--;
}

/* Withdraws template `id`, or all of the set's kind when id is its id. */
static void
st_withdraw(struct st_exp *x, uint16_t set_id, uint16_t id)
{
	for (size_t i = x->nt; i-- > 0;)
		if (id == set_id ? x->t[i].set_id == set_id : x->t[i].id == id)
			st_tmpl_remove(x, i);
}

/*
 * One template record at the cursor (its id and field count already
 * read).  Stores what record counting needs; a definition that cannot be
 * stored removes the old one, so its data counts as unknown.  -1 if the
 * record does not parse.
 */
static int
st_template(struct st_exp *x, struct rcur *r, uint16_t set_id, uint16_t id,
    uint16_t nfields)
{
	const uint8_t	*start;
	struct st_tmpl	 t, *old;
	struct rcur	 f;
	size_t		 flen;

	memset(&t, 0, sizeof(t));
	t.id = id;
	t.set_id = set_id;
	t.nfields = nfields;
	if (set_id == 3 && (rcur_u16(r) == 0 || r->err))
		return -1;		/* scope field count */
	start = r->p;
	for (uint16_t i = 0; i < nfields; i++) {
		uint16_t ie = rcur_u16(r), len = rcur_u16(r);

		if (ie & 0x8000)
			(void)rcur_u32(r);	/* enterprise number */
		if (len == ST_VARLEN)
			t.nvar++;
		else
			t.fixed += len;
	}
	if (r->err)
		return -1;
	flen = (size_t)(r->p - start);
	if ((old = st_tmpl_find(x, id)) != NULL)
		st_tmpl_remove(x, (size_t)(old - x->t));
	if (t.fixed == 0 && t.nvar == 0)
		return 0;
	if (x->nt >= SEQTRACK_TEMPLATES_MAX ||
	    (t.nvar > 0 && x->fields + nfields > SEQTRACK_FIELDS_MAX))
		return 0;
	if (t.nvar > 0) {
		if ((t.lens = calloc(nfields, sizeof(*t.lens))) == NULL)
			return 0;
		rcur_init(&f, start, flen);
		for (uint16_t i = 0; i < nfields; i++) {
			uint16_t ie = rcur_u16(&f);

			t.lens[i] = rcur_u16(&f);
			if (ie & 0x8000)
				(void)rcur_u32(&f);
		}
		x->fields += nfields;
	}
	x->t[x->nt++] = t;
	return 0;
}

/* Template or options template set: 0, or -1 if it does not parse. */
static int
st_template_set(struct st_exp *x, uint16_t set_id, const uint8_t *body,
    size_t len)
{
	struct rcur	 r;

	rcur_init(&r, body, len);
	while (r.left >= 4) {
		uint16_t id = rcur_u16(&r), n = rcur_u16(&r);

		if (id == 0)
			return 0;		/* padding */
		if (n == 0) {
			if (id != set_id && id < 256)
				return -1;
			st_withdraw(x, set_id, id);
			continue;
		}
		if (id < 256 || st_template(x, &r, set_id, id, n) == -1)
			return -1;
	}
	return 0;
}

/* Records of a data set; -1 if its template is unknown or it is broken. */
static int
st_data_set(struct st_exp *x, uint16_t set_id, const uint8_t *body,
    size_t len, uint64_t *records)
{
	struct st_tmpl	*t = st_tmpl_find(x, set_id);
	struct rcur	 r;
	size_t		 min;

	if (t == NULL)
		return -1;
	if (t->nvar == 0) {
		/* Padding is shorter than a record. */
		*records += len / t->fixed;
		return 0;
	}
	min = t->fixed + t->nvar;
	rcur_init(&r, body, len);
	while (r.left >= min && r.left > 0) {
		for (uint16_t i = 0; i < t->nfields; i++) {
			size_t	 l = t->lens[i];

			if (l == ST_VARLEN) {
				l = rcur_u8(&r);
				if (l == 255)
					l = rcur_u16(&r);
			}
			(void)rcur_take(&r, l);
		}
		if (r.err)
			return -1;
		(*records)++;
	}
	return 0;
}

/*
 * Learns the templates of an IPFIX message and counts its data records.
 * 0 with *records, or -1 when the count is unknown.
 */
static int
st_ipfix_records(struct st_exp *x, const uint8_t *p, size_t len,
    uint64_t *records)
{
	struct rcur	 r;
	int		 known = 1;

	*records = 0;
	if (len < ST_IPFIX_HEADER)
		return -1;
	rcur_init(&r, p + ST_IPFIX_HEADER, len - ST_IPFIX_HEADER);
	while (r.left >= 4) {
		uint16_t	 id = rcur_u16(&r);
		uint16_t	 slen = rcur_u16(&r);
		const uint8_t	*body;

		if (slen < 4 || (body = rcur_take(&r, slen - 4)) == NULL)
			return -1;
		if (id == 2 || id == 3) {
			if (st_template_set(x, id, body, slen - 4) == -1)
				known = 0;
		} else if (id >= 256) {
			if (st_data_set(x, id, body, slen - 4, records) == -1)
				known = 0;
		}
	}
	return known ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Judging a sequence number */

static void
st_judge(struct seqtrack *st, struct st_exp *x, uint32_t seq, int known,
    uint64_t n, struct seqtrack_result *r)
{
	int		 v9 = x->version == 9;
	uint32_t	 window = v9 ? SEQTRACK_WINDOW_V9 : SEQTRACK_WINDOW;
	uint32_t	 gap_max = v9 ? SEQTRACK_GAP_MAX_V9 : SEQTRACK_GAP_MAX;
	uint64_t	*lost = v9 ? &st->c.lost_packets : &st->c.lost_records;
	uint32_t	 ref, d;

	r->got = seq;
	r->unit_packets = v9;
	if (!x->have_expected && !x->have_last) {
		r->ev = SEQTRACK_OK;
		goto advance;
	}
	ref = x->have_expected ? x->expected : x->last;
	r->expected = ref;
	d = seq - ref;
	if (d == 0) {
		r->ev = SEQTRACK_OK;
	} else if (d < ST_HALF) {
		if (d > gap_max) {
			r->ev = SEQTRACK_RESET;
			st->c.resets++;
		} else if (x->have_expected) {
			r->ev = SEQTRACK_GAP;
			r->lost = d;
			st->c.gaps++;
			*lost += d;
			x->lost += d;
			x->gap_lo = ref;
			x->gap_hi = seq;
		} else
			r->ev = SEQTRACK_OK;	/* size unknown: not judged */
	} else if (ref - seq <= window) {
		d = seq - x->gap_lo;
		if (d >= x->gap_hi - x->gap_lo && x->have_late &&
		    seq == x->late_next) {
			/*
			 * Behind, outside the latest gap, and continuing the
			 * previous such datagram: a second numbering runs,
			 * the exporter restarted with small numbers.
			 */
			r->ev = SEQTRACK_RESET;
			st->c.resets++;
			goto advance;
		}
		/*
		 * Late: what of it falls into the latest gap was counted as
		 * lost and is taken back.  A mere repeat falls elsewhere.
		 */
		r->ev = SEQTRACK_LATE;
		st->c.reordered++;
		x->have_late = 0;
		if (known && d < x->gap_hi - x->gap_lo) {
			n = n < x->gap_hi - x->gap_lo - d ? n :
			    x->gap_hi - x->gap_lo - d;
			n = n < x->lost ? n : x->lost;
			x->lost -= n;
			*lost -= n;
		} else if (known) {
			x->have_late = 1;
			x->late_next = seq + (uint32_t)n;
		}
		return;
	} else {
		r->ev = SEQTRACK_RESET;
		st->c.resets++;
	}
advance:
	x->have_late = 0;
	x->have_last = 1;
	x->last = seq;
	x->have_expected = known;
	x->expected = seq + (uint32_t)n;
}

void
seqtrack_observe(struct seqtrack *st, const struct wire_entry *e,
    const struct nf_info *info, struct seqtrack_result *r)
{
	struct st_exp	*x;
	uint64_t	 n = 0;
	int		 created, known = 1;

	memset(r, 0, sizeof(*r));
	r->ev = SEQTRACK_OK;
	if (info->version != 5 && info->version != 9 && info->version != 10)
		return;
	if ((x = st_lookup(st, e, info->version, info->domain, &created)) ==
	    NULL)
		return;
	switch (info->version) {
	case 5:
		n = info->records;
		break;
	case 9:
		n = 1;
		break;
	default:
		if (st_ipfix_records(x, e->payload, e->len, &n) == -1) {
			known = 0;
			st->c.uncounted++;
		}
		break;
	}
	st_judge(st, x, info->seq, known, n, r);
	if (created)
		r->ev = SEQTRACK_NEW;
}

void
seqtrack_get(const struct seqtrack *st, struct seqtrack_counts *c)
{
	*c = st->c;
	c->exporters = st->n;
}

/* ------------------------------------------------------------------ */
/* The receive path's tracker */

/*
 * One tracker for every input: the UDP receive loop and each pcap thread
 * note into it, so it is locked (uncontended but for live captures).
 */
static struct seqtrack	*seqtrack_rx;
static pthread_mutex_t	 seqtrack_rx_mu = PTHREAD_MUTEX_INITIALIZER;

void
seqtrack_note(const struct wire_entry *e, const struct nf_info *info)
{
	static struct log_limit	 lim_gap, lim_late, lim_reset;
	struct seqtrack_result	 r;
	struct seqtrack_counts	 c;
	struct sockaddr_storage	 ss;
	char			 from[64];

	pthread_mutex_lock(&seqtrack_rx_mu);
	if (seqtrack_rx == NULL && (seqtrack_rx = seqtrack_new(0)) == NULL) {
		pthread_mutex_unlock(&seqtrack_rx_mu);
		return;
	}
	seqtrack_observe(seqtrack_rx, e, info, &r);
	seqtrack_get(seqtrack_rx, &c);
	pthread_mutex_unlock(&seqtrack_rx_mu);
	STATS_SET(upstream_exporters, c.exporters);
	STATS_SET(upstream_gaps, c.gaps);
	STATS_SET(upstream_lost_records, c.lost_records);
	STATS_SET(upstream_lost_packets, c.lost_packets);
	STATS_SET(upstream_reordered, c.reordered);
	STATS_SET(upstream_resets, c.resets);
	STATS_SET(upstream_uncounted, c.uncounted);
	if (r.ev != SEQTRACK_GAP && r.ev != SEQTRACK_LATE &&
	    r.ev != SEQTRACK_RESET)
		return;

	memset(&ss, 0, sizeof(ss));
	if (e->family == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, e->addr, 4);
		sin->sin_port = htons(e->src_port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, e->addr, 16);
		sin6->sin6_port = htons(e->src_port);
	}
	util_format_sockaddr((const struct sockaddr *)&ss, from, sizeof(from));
	if (r.ev == SEQTRACK_GAP)
		log_limited(&lim_gap, 60, LOGL_WARN, "seqtrack: exporter %s "
		    "v%u domain %u: sequence %u, expected %u: %llu %s lost "
		    "before the client", from, info->version, info->domain,
		    r.got, r.expected, (unsigned long long)r.lost,
		    r.unit_packets ? "export packets" : "records");
	else if (r.ev == SEQTRACK_LATE)
		log_limited(&lim_late, 60, LOGL_INFO, "seqtrack: exporter %s "
		    "v%u domain %u: sequence %u arrived after %u (reordered "
		    "or repeated before the client)", from, info->version,
		    info->domain, r.got, r.expected);
	else
		log_limited(&lim_reset, 60, LOGL_INFO, "seqtrack: exporter %s "
		    "v%u domain %u: sequence jumped from %u to %u; taken as an "
		    "exporter restart", from, info->version, info->domain,
		    r.expected, r.got);
}
