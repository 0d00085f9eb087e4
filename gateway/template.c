/*
 * template.c: the template cache (template.h explains what and why).
 *
 * Streams live in a hash table and on a least-recently-used list, under
 * one mutex: the work done under it per datagram is a header read, a
 * lookup and, for the few datagrams that carry templates, a bounded walk
 * over their template sets.  The UDP sends happen outside the lock.
 *
 * Template records are stored as the exporter sent them (record bytes
 * only, without set header), keyed by template id: v9 and IPFIX share one
 * id space between templates and options templates, so a new definition of
 * an id replaces the old one whatever its kind.
 *
 * State file layout (big-endian, through the cursors of bytes.h):
 *
 *   0  4  magic "FPTC"
 *   4  1  version 1
 *   5  3  reserved, 0
 *   8  4  number of streams
 *   then per stream:
 *      1  client id length n, n client id
 *      1  address family (4 or 6), 16 address, 2 port
 *      2  export version (9 or 10), 4 source id / observation domain
 *      2  number of templates
 *      then per template: 2 set id, 2 template id, 2 length, record
 *   4  CRC-32 (zlib) of everything before it
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "buf.h"
#include "bytes.h"
#include "log.h"
#include "template.h"
#include "util.h"

#define TC_BUCKETS		4096
#define TC_MAGIC		"FPTC"
#define TC_FILE_VERSION		1
#define TC_V9_HEADER		20
#define TC_IPFIX_HEADER		16
#define TC_SET_HEADER		4
#define TC_MIN_ID		256	/* lower ids name sets, not templates */
#define TC_SAVE_PERIOD_NS	INT64_C(1000000000)
/* A stream's key in the file: id length, id, family, address, port,
 * version, domain, template count. */
#define TC_STREAM_FILE_MAX	(1 + WIRE_CLIENT_ID_MAX + 1 + 16 + 2 + 2 + \
				    4 + 2)
#define TC_TMPL_FILE_EXTRA	6

/* IPFIX set ids; v9 uses 0 (template) and 1 (options template). */
#define TC_V9_TEMPLATE		0
#define TC_V9_OPTIONS		1
#define TC_IPFIX_TEMPLATE	2
#define TC_IPFIX_OPTIONS	3

struct tc_tmpl {
	uint16_t	 set_id;
	uint16_t	 id;
	uint16_t	 len;
	uint8_t		*rec;
};

struct tc_key {
	char		 client[WIRE_CLIENT_ID_MAX + 1];
	uint8_t		 family;
	uint8_t		 addr[16];
	uint16_t	 port;
	uint16_t	 version;
	uint32_t	 domain;
};

struct tc_stream {
	struct tc_stream	*next;		/* hash chain */
	struct tc_stream	*newer, *older;	/* LRU list */
	struct tc_key		 k;
	unsigned int		 bucket;
	struct tc_tmpl		*t;
	size_t			 n, cap;
	size_t			 bytes;
	int64_t			 sent_ns;	/* templates last sent ahead */
	int			 loaded;	/* from the file, unsent */
};

struct template_cache {
	struct template_params	 p;
	int64_t			 refresh_ns;
	char			*dir;

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct tc_stream	*bucket[TC_BUCKETS];
	struct tc_stream	*newest, *oldest;
	size_t			 nstreams, ntemplates, bytes;
	int			 dirty;
	int			 stop;
	int			 thread_started;
	pthread_t		 thread;
	struct template_counters c;
};

/* Header fields of the datagram a template message precedes. */
struct tc_hdr {
	uint16_t	 version;
	uint32_t	 t1;		/* v9 sys_uptime, IPFIX export time */
	uint32_t	 t2;		/* v9 unix_secs */
	uint32_t	 seq;
	uint32_t	 domain;
};

/* One template message to insert before entry `at`. */
struct tc_ins {
	size_t		 at;
	size_t		 off;
	size_t		 len;
};

struct tc_plan {
	struct tc_ins	*ins;
	size_t		 n, cap;
	struct buf	 scratch;
};

static struct log_limit tc_lim_bound, tc_lim_save, tc_lim_mem;

/* ------------------------------------------------------------------ */
/* Streams */

static unsigned int
tc_hash(const struct tc_key *k)
{
	uint32_t	 h = 2166136261u;
	uint8_t		 tail[1 + 16 + 2 + 2 + 4];
	struct wcur	 w;

	for (const unsigned char *p = (const unsigned char *)k->client; *p;
	    p++)
		h = (h ^ *p) * 16777619u;
	wcur_init(&w, tail, sizeof(tail));
	wcur_u8(&w, k->family);
	wcur_bytes(&w, k->addr, sizeof(k->addr));
	wcur_u16(&w, k->port);
	wcur_u16(&w, k->version);
	wcur_u32(&w, k->domain);
	for (size_t i = 0; i < sizeof(tail); i++)
		h = (h ^ tail[i]) * 16777619u;
	return h % TC_BUCKETS;
}

static int
tc_key_eq(const struct tc_key *a, const struct tc_key *b)
{
	return a->family == b->family && a->port == b->port &&
	    a->version == b->version && a->domain == b->domain &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0 &&
	    strcmp(a->client, b->client) == 0;
}

static void
tc_lru_unlink(struct template_cache *tc, struct tc_stream *s)
{
	if (s->newer != NULL)
		s->newer->older = s->older;
	else
		tc->newest = s->older;
	if (s->older != NULL)
		s->older->newer = s->newer;
	else
		tc->oldest = s->newer;
	s->newer = s->older = NULL;
}

static void
tc_lru_push(struct template_cache *tc, struct tc_stream *s)
{
	s->older = tc->newest;
	s->newer = NULL;
	if (tc->newest != NULL)
		tc->newest->newer = s;
	tc->newest = s;
	if (tc->oldest == NULL)
		tc->oldest = s;
}

static void
tc_touch(struct template_cache *tc, struct tc_stream *s)
{
	if (tc->newest == s)
		return;
	tc_lru_unlink(tc, s);
	tc_lru_push(tc, s);
}

static struct tc_stream *
tc_find(struct template_cache *tc, const struct tc_key *k)
{
	unsigned int	 b = tc_hash(k);

	for (struct tc_stream *s = tc->bucket[b]; s != NULL; s = s->next)
		if (tc_key_eq(&s->k, k))
			return s;
	return NULL;
}

static void
tc_free_stream(struct tc_stream *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->t[i].rec);
	free(s->t);
	free(s);
}

static void
tc_remove(struct template_cache *tc, struct tc_stream *s)
{
	struct tc_stream	**pp;

	for (pp = &tc->bucket[s->bucket]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	tc_lru_unlink(tc, s);
	tc->nstreams--;
	tc->ntemplates -= s->n;
	tc->bytes -= s->bytes;
	tc->dirty = 1;
	tc_free_stream(s);
}

/* Evicts the least recently used stream other than `keep`; -1 if none. */
static int
tc_evict(struct template_cache *tc, const struct tc_stream *keep)
{
	struct tc_stream	*s = tc->oldest;

	if (s == keep)
		s = s->newer;
	if (s == NULL)
		return -1;
	tc_remove(tc, s);
	tc->c.evicted++;
	return 0;
}

static struct tc_stream *
tc_create(struct template_cache *tc, const struct tc_key *k, int64_t now_ns)
{
	struct tc_stream	*s;

	while (tc->nstreams >= tc->p.streams_max)
		if (tc_evict(tc, NULL) == -1)
			return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->k = *k;
	s->bucket = tc_hash(k);
	s->sent_ns = now_ns;
	s->next = tc->bucket[s->bucket];
	tc->bucket[s->bucket] = s;
	tc_lru_push(tc, s);
	tc->nstreams++;
	return s;
}

/* ------------------------------------------------------------------ */
/* Templates of one stream */

static struct tc_tmpl *
tc_tmpl_find(struct tc_stream *s, uint16_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i].id == id)
			return &s->t[i];
	return NULL;
}

static void
tc_tmpl_drop(struct template_cache *tc, struct tc_stream *s, size_t i)
{
	s->bytes -= s->t[i].len;
	tc->bytes -= s->t[i].len;
	tc->ntemplates--;
	free(s->t[i].rec);
	memmove(&s->t[i], &s->t[i + 1], (s->n - i - 1) * sizeof(s->t[0]));
	s->n--;
	tc->dirty = 1;
}

/*
 * Stores one definition.  An identical one changes nothing (exporters
 * repeat their templates all the time, and the file is only rewritten
 * after a change).
 */
static void
tc_store(struct template_cache *tc, struct tc_stream *s, uint16_t set_id,
    uint16_t id, const uint8_t *rec, size_t len)
{
	struct tc_tmpl	*t = tc_tmpl_find(s, id);
	uint8_t		*copy;
	size_t		 old = t != NULL ? t->len : 0;

	if (t != NULL && t->set_id == set_id && t->len == len &&
	    memcmp(t->rec, rec, len) == 0)
		return;
	if (t == NULL && s->n >= tc->p.per_stream_max) {
		tc->c.dropped++;
		log_limited(&tc_lim_bound, 60, LOGL_WARN, "template: "
		    "client %s: an exporter stream has more than %zu "
		    "templates; template %u not cached", s->k.client,
		    tc->p.per_stream_max, id);
		return;
	}
	while (tc->bytes - old + len > tc->p.bytes_max)
		if (tc_evict(tc, s) == -1)
			break;
	if (tc->bytes - old + len > tc->p.bytes_max ||
	    (copy = malloc(len)) == NULL) {
		tc->c.dropped++;
		log_limited(&tc_lim_bound, 60, LOGL_WARN, "template: "
		    "client %s: template %u not cached (over %zu bytes, or "
		    "out of memory)", s->k.client, id, tc->p.bytes_max);
		return;
	}
	memcpy(copy, rec, len);
	if (t == NULL) {
		if (s->n == s->cap) {
			size_t		 ncap = s->cap ? s->cap * 2 : 8;
			struct tc_tmpl	*nt;

			if (ncap > tc->p.per_stream_max)
				ncap = tc->p.per_stream_max;
			if ((nt = realloc(s->t, ncap * sizeof(*nt))) == NULL) {
				free(copy);
				tc->c.dropped++;
				return;
			}
			s->t = nt;
			s->cap = ncap;
		}
		t = &s->t[s->n++];
		tc->ntemplates++;
	} else
		free(t->rec);
	t->set_id = set_id;
	t->id = id;
	t->len = (uint16_t)len;
	t->rec = copy;
	s->bytes = s->bytes - old + len;
	tc->bytes = tc->bytes - old + len;
	tc->c.learned++;
	tc->dirty = 1;
}

/* IPFIX: withdraws template `id`, or every template of the set's kind. */
static void
tc_withdraw(struct template_cache *tc, struct tc_stream *s, uint16_t set_id,
    uint16_t id)
{
	for (size_t i = s->n; i-- > 0;) {
		if (id == set_id ? s->t[i].set_id == set_id :
		    s->t[i].id == id) {
			tc_tmpl_drop(tc, s, i);
			tc->c.withdrawn++;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Parsing template sets */

/* Skips `n` field specifiers; IPFIX ones may carry an enterprise number. */
static void
tc_skip_fields(struct rcur *r, unsigned int n, int ipfix)
{
	for (unsigned int i = 0; i < n && !r->err; i++) {
		uint16_t ie = rcur_u16(r);

		(void)rcur_u16(r);
		if (ipfix && (ie & 0x8000))
			(void)rcur_u32(r);
	}
}

/*
 * The records of one template or options template (flow)set.  Fewer
 * bytes than a record header, or a record starting with id 0, are padding
 * and end the set; anything else that does not parse is counted once.
 */
static void
tc_parse_set(struct template_cache *tc, struct tc_stream *s, uint16_t set_id,
    const uint8_t *body, size_t len)
{
	struct rcur	 r;
	int		 ipfix = set_id >= TC_IPFIX_TEMPLATE;
	int		 options = set_id == TC_V9_OPTIONS ||
			    set_id == TC_IPFIX_OPTIONS;
	size_t		 min = options && !ipfix ? 6 : 4;

	rcur_init(&r, body, len);
	while (r.left >= min) {
		const uint8_t	*start = r.p;
		uint16_t	 id, cnt, scope, olen;

		id = rcur_u16(&r);
		cnt = rcur_u16(&r);
		if (id == 0)
			return;			/* padding */
		if (ipfix && cnt == 0) {
			/* Withdrawal: the set's own id withdraws them all. */
			if (id == set_id || id >= TC_MIN_ID) {
				tc_withdraw(tc, s, set_id, id);
				continue;
			}
			goto bad;
		}
		if (id < TC_MIN_ID)
			goto bad;
		if (!ipfix && options) {
			/* v9: scope and option lengths in bytes, 4 a field. */
			scope = cnt;
			olen = rcur_u16(&r);
			if (r.err || (scope % 4) != 0 || (olen % 4) != 0 ||
			    scope + olen == 0 ||
			    rcur_take(&r, (size_t)scope + olen) == NULL)
				goto bad;
		} else {
			if (cnt == 0)
				goto bad;
			if (options) {
				scope = rcur_u16(&r);
				if (scope == 0 || scope > cnt)
					goto bad;
			}
			tc_skip_fields(&r, cnt, ipfix);
			if (r.err)
				goto bad;
		}
		tc_store(tc, s, set_id, id, start, (size_t)(r.p - start));
	}
	return;
bad:
	tc->c.malformed++;
}

/*
 * Walks the (flow)sets of a v9/IPFIX datagram and calls cb (if not NULL)
 * for each template and options template set.  1 if there was one.  The
 * walk stops quietly at padding or at a set that overruns the datagram.
 */
static int
tc_walk(const uint8_t *p, size_t len, uint16_t version,
    void (*cb)(uint16_t id, const uint8_t *body, size_t blen, void *arg),
    void *arg)
{
	struct rcur	 r;
	size_t		 hdr = version == 9 ? TC_V9_HEADER : TC_IPFIX_HEADER;
	int		 found = 0;

	if (len < hdr)
		return 0;
	rcur_init(&r, p + hdr, len - hdr);
	while (r.left >= TC_SET_HEADER) {
		uint16_t	 id = rcur_u16(&r);
		uint16_t	 slen = rcur_u16(&r);
		const uint8_t	*body;

		if (slen < TC_SET_HEADER ||
		    (body = rcur_take(&r, slen - TC_SET_HEADER)) == NULL)
			break;
		if ((version == 9 && (id == TC_V9_TEMPLATE ||
		    id == TC_V9_OPTIONS)) || (version == 10 &&
		    (id == TC_IPFIX_TEMPLATE || id == TC_IPFIX_OPTIONS))) {
			found = 1;
			if (cb != NULL)
				cb(id, body, slen - TC_SET_HEADER, arg);
		}
	}
	return found;
}

struct tc_learn_arg {
	struct template_cache	*tc;
	struct tc_stream	*s;
};

static void
tc_learn_cb(uint16_t id, const uint8_t *body, size_t blen, void *arg)
{
	struct tc_learn_arg	*a = arg;

	tc_parse_set(a->tc, a->s, id, body, blen);
}

/* Stream key and header of a v9/IPFIX datagram; -1 for anything else. */
static int
tc_header(const char *client, const struct wire_entry *e, struct tc_key *k,
    struct tc_hdr *h)
{
	struct rcur	 r;

	memset(k, 0, sizeof(*k));
	memset(h, 0, sizeof(*h));
	rcur_init(&r, e->payload, e->len);
	h->version = rcur_u16(&r);
	if (h->version == 9) {
		(void)rcur_u16(&r);		/* count */
		h->t1 = rcur_u32(&r);		/* sys_uptime */
		h->t2 = rcur_u32(&r);		/* unix_secs */
		h->seq = rcur_u32(&r);
		h->domain = rcur_u32(&r);	/* source id */
	} else if (h->version == 10) {
		(void)rcur_u16(&r);		/* length */
		h->t1 = rcur_u32(&r);		/* export time */
		h->seq = rcur_u32(&r);
		h->domain = rcur_u32(&r);	/* observation domain */
	} else
		return -1;
	if (r.err)
		return -1;
	/* Both daemons check client ids; a longer one cannot get here. */
	if (util_snprintf(k->client, sizeof(k->client), "%s", client) == -1)
		return -1;
	k->family = e->family;
	memcpy(k->addr, e->addr, sizeof(k->addr));
	k->port = e->src_port;
	k->version = h->version;
	k->domain = h->domain;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Building template messages */

static void
tc_put16(uint8_t *p, uint16_t v)
{
	struct wcur	 w;

	wcur_init(&w, p, 2);
	wcur_u16(&w, v);
}

struct tc_builder {
	struct buf		*b;
	const struct tc_hdr	*h;
	size_t			 msg;		/* offset of the open message */
	size_t			 set;		/* offset of the open set */
	int			 msg_open, set_open;
	uint16_t		 set_id;
	uint16_t		 records;
	int			 err;
};

static void
tc_b_header(struct tc_builder *bd)
{
	uint8_t		 hdr[TC_V9_HEADER];
	struct wcur	 w;
	size_t		 hlen;

	wcur_init(&w, hdr, sizeof(hdr));
	if (bd->h->version == 9) {
		wcur_u16(&w, 9);
		wcur_u16(&w, 0);		/* count, set on close */
		wcur_u32(&w, bd->h->t1);
		wcur_u32(&w, bd->h->t2);
		/* Repeats the previous packet's number: see PROTOCOL.md 5. */
		wcur_u32(&w, bd->h->seq - 1);
		wcur_u32(&w, bd->h->domain);
		hlen = TC_V9_HEADER;
	} else {
		wcur_u16(&w, 10);
		wcur_u16(&w, 0);		/* length, set on close */
		wcur_u32(&w, bd->h->t1);
		/* No data records: the next expected number stays. */
		wcur_u32(&w, bd->h->seq);
		wcur_u32(&w, bd->h->domain);
		hlen = TC_IPFIX_HEADER;
	}
	bd->msg = bd->b->len;
	if (buf_append(bd->b, hdr, hlen) == -1)
		bd->err = 1;
	bd->msg_open = 1;
	bd->records = 0;
}

static void
tc_b_close_set(struct tc_builder *bd)
{
	static const uint8_t	 zero[4];
	size_t			 pad;

	if (!bd->set_open || bd->err)
		return;
	/*
	 * v9 asks for 32-bit aligned flowsets (but a message must stay a
	 * datagram); IPFIX needs no padding.
	 */
	pad = (4 - (bd->b->len - bd->set) % 4) % 4;
	if (bd->h->version == 9 && pad > 0 &&
	    bd->b->len - bd->msg + pad <= WIRE_DATAGRAM_MAX &&
	    buf_append(bd->b, zero, pad) == -1) {
		bd->err = 1;
		return;
	}
	tc_put16(bd->b->data + bd->set + 2, (uint16_t)(bd->b->len - bd->set));
	bd->set_open = 0;
}

static void
tc_b_close_msg(struct tc_builder *bd, struct tc_plan *pl, size_t at)
{
	struct tc_ins	*ins;

	if (!bd->msg_open || bd->err)
		return;
	tc_b_close_set(bd);
	if (bd->err)
		return;
	if (bd->h->version == 9)
		tc_put16(bd->b->data + bd->msg + 2, bd->records);
	else
		tc_put16(bd->b->data + bd->msg + 2,
		    (uint16_t)(bd->b->len - bd->msg));
	bd->msg_open = 0;
	if (pl->n == pl->cap) {
		size_t ncap = pl->cap ? pl->cap * 2 : 16;

		if ((ins = realloc(pl->ins, ncap * sizeof(*ins))) == NULL) {
			bd->err = 1;
			return;
		}
		pl->ins = ins;
		pl->cap = ncap;
	}
	pl->ins[pl->n].at = at;
	pl->ins[pl->n].off = bd->msg;
	pl->ins[pl->n].len = bd->b->len - bd->msg;
	pl->n++;
}

static void
tc_b_record(struct tc_builder *bd, struct tc_plan *pl, size_t at,
    const struct tc_tmpl *t)
{
	size_t	 need = t->len + 3;	/* room for v9 padding */
	uint8_t	 sh[TC_SET_HEADER];

	if (!bd->set_open || bd->set_id != t->set_id)
		need += TC_SET_HEADER;
	/* A full message goes out; a single large record gets its own. */
	if (bd->msg_open && bd->records > 0 &&
	    bd->b->len - bd->msg + need > TEMPLATE_MSG_MAX)
		tc_b_close_msg(bd, pl, at);
	if (!bd->msg_open)
		tc_b_header(bd);
	if (!bd->set_open || bd->set_id != t->set_id) {
		tc_b_close_set(bd);
		bd->set = bd->b->len;
		bd->set_id = t->set_id;
		bd->set_open = 1;
		tc_put16(sh, t->set_id);
		tc_put16(sh + 2, 0);
		if (buf_append(bd->b, sh, sizeof(sh)) == -1)
			bd->err = 1;
	}
	if (!bd->err && buf_append(bd->b, t->rec, t->len) == -1)
		bd->err = 1;
	bd->records++;
}

/*
 * The stream's templates as template messages into the plan, to go
 * before entry `at`.  On failure (scratch ceiling, memory) the plan is
 * left as it was and -1 returned.
 */
static int
tc_build(const struct tc_stream *s, const struct tc_hdr *h, size_t at,
    struct tc_plan *pl)
{
	struct tc_builder	 bd;
	size_t			 len0 = pl->scratch.len, n0 = pl->n;

	memset(&bd, 0, sizeof(bd));
	bd.b = &pl->scratch;
	bd.h = h;
	for (size_t i = 0; i < s->n && !bd.err; i++)
		tc_b_record(&bd, pl, at, &s->t[i]);
	tc_b_close_msg(&bd, pl, at);
	if (bd.err) {
		pl->scratch.len = len0;
		pl->n = n0;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Planning and sending */

static int
tc_due(const struct template_cache *tc, const struct tc_stream *s,
    int64_t now_ns)
{
	if (s->n == 0)
		return 0;
	return s->loaded || now_ns - s->sent_ns >= tc->refresh_ns;
}

int
template_plan(struct template_cache *tc, const char *client,
    const struct wire_entry *entries, size_t n, int64_t now_ns,
    struct wire_entry **plan, size_t *plan_n, uint8_t **scratch)
{
	struct tc_plan		 pl;
	struct tc_key		 k;
	struct tc_hdr		 h;
	struct tc_stream	*s;
	struct tc_learn_arg	 la;
	struct wire_entry	*out = NULL;
	size_t			 j = 0, next = 0, before;
	int			 rv = -1;

	*plan = NULL;
	*plan_n = 0;
	*scratch = NULL;
	memset(&pl, 0, sizeof(pl));
	/* Twice the cache: every stream in one batch, split into messages. */
	if (buf_init(&pl.scratch, 0, 2 * (size_t)tc->p.bytes_max +
	    (1u << 20)) == -1)
		goto out;

	pthread_mutex_lock(&tc->mu);
	for (size_t i = 0; i < n; i++) {
		if (tc_header(client, &entries[i], &k, &h) == -1)
			continue;
		s = tc_find(tc, &k);
		if (s != NULL && tc_due(tc, s, now_ns)) {
			before = pl.n;
			if (tc_build(s, &h, i, &pl) == 0) {
				tc->c.messages += pl.n - before;
				s->sent_ns = now_ns;
				s->loaded = 0;
			} else
				log_limited(&tc_lim_mem, 60, LOGL_WARN,
				    "template: client %s: templates not sent "
				    "ahead (out of memory)", client);
		}
		if (!tc_walk(entries[i].payload, entries[i].len, h.version,
		    NULL, NULL)) {
			if (s != NULL)
				tc_touch(tc, s);
			continue;
		}
		if (s == NULL && (s = tc_create(tc, &k, now_ns)) == NULL)
			continue;
		tc_touch(tc, s);
		la.tc = tc;
		la.s = s;
		(void)tc_walk(entries[i].payload, entries[i].len, h.version,
		    tc_learn_cb, &la);
	}
	pthread_mutex_unlock(&tc->mu);

	if ((out = calloc(n + pl.n > 0 ? n + pl.n : 1, sizeof(*out))) == NULL)
		goto out;
	/*
	 * A template message travels as a copy of the entry it precedes
	 * (same exporter identity and receive time) with its own payload.
	 */
	for (size_t i = 0; i < n; i++) {
		for (; next < pl.n && pl.ins[next].at == i; next++) {
			out[j] = entries[i];
			out[j].payload = pl.scratch.data + pl.ins[next].off;
			out[j].len = (uint16_t)pl.ins[next].len;
			j++;
		}
		out[j++] = entries[i];
	}
	*plan = out;
	*plan_n = j;
	*scratch = pl.scratch.data;
	pl.scratch.data = NULL;
	out = NULL;
	rv = 0;
out:
	free(out);
	free(pl.ins);
	buf_free(&pl.scratch);
	return rv;
}

int
template_send(struct template_cache *tc, const char *client,
    const struct output_ops *out, void *octx, const struct wire_entry *entries,
    size_t n, int64_t now_ns, struct output_result *res)
{
	struct wire_entry	*plan;
	uint8_t			*scratch;
	size_t			 plan_n;
	int			 rv;

	if (tc == NULL)
		return out->send(octx, entries, n, res);
	if (template_plan(tc, client, entries, n, now_ns, &plan, &plan_n,
	    &scratch) == -1) {
		/* The datagrams matter more than the templates. */
		log_limited(&tc_lim_mem, 60, LOGL_WARN, "template: out of "
		    "memory; batch sent without template refresh");
		return out->send(octx, entries, n, res);
	}
	rv = out->send(octx, plan, plan_n, res);
	free(plan);
	free(scratch);
	return rv;
}

/* ------------------------------------------------------------------ */
/* State file */

static size_t
tc_file_size(const struct template_cache *tc)
{
	size_t	 sz = 12 + 4;

	for (const struct tc_stream *s = tc->newest; s != NULL; s = s->older)
		sz += TC_STREAM_FILE_MAX + s->n * TC_TMPL_FILE_EXTRA +
		    s->bytes;
	return sz;
}

/* The whole cache as file bytes; called under the lock. */
static int
tc_encode(const struct template_cache *tc, uint8_t **data, size_t *len)
{
	struct wcur	 w;
	size_t		 cap = tc_file_size(tc);
	uint8_t		*p;

	if ((p = malloc(cap)) == NULL)
		return -1;
	wcur_init(&w, p, cap);
	wcur_bytes(&w, TC_MAGIC, 4);
	wcur_u8(&w, TC_FILE_VERSION);
	wcur_u8(&w, 0);
	wcur_u16(&w, 0);
	wcur_u32(&w, (uint32_t)tc->nstreams);
	/* Oldest first, so loading rebuilds the same LRU order. */
	for (const struct tc_stream *s = tc->oldest; s != NULL; s = s->newer) {
		size_t	 idlen = strlen(s->k.client);

		wcur_u8(&w, (uint8_t)idlen);
		wcur_bytes(&w, s->k.client, idlen);
		wcur_u8(&w, s->k.family);
		wcur_bytes(&w, s->k.addr, sizeof(s->k.addr));
		wcur_u16(&w, s->k.port);
		wcur_u16(&w, s->k.version);
		wcur_u32(&w, s->k.domain);
		wcur_u16(&w, (uint16_t)s->n);
		for (size_t i = 0; i < s->n; i++) {
			wcur_u16(&w, s->t[i].set_id);
			wcur_u16(&w, s->t[i].id);
			wcur_u16(&w, s->t[i].len);
			wcur_bytes(&w, s->t[i].rec, s->t[i].len);
		}
	}
	wcur_u32(&w, (uint32_t)crc32(0L, p, (uInt)(cap - w.left)));
	if (w.err) {
		free(p);
		return -1;
	}
	*data = p;
	*len = cap - w.left;
	return 0;
}

int
template_save(struct template_cache *tc)
{
	uint8_t		*data = NULL;
	size_t		 len = 0;
	int		 rv = -1, saved = 0;

	if (tc == NULL || tc->dir == NULL)
		return 0;
	pthread_mutex_lock(&tc->mu);
	if (!tc->dirty) {
		pthread_mutex_unlock(&tc->mu);
		return 0;
	}
	rv = tc_encode(tc, &data, &len);
	if (rv == 0)
		tc->dirty = 0;
	pthread_mutex_unlock(&tc->mu);
	if (rv == 0 && util_write_atomic(tc->dir, TEMPLATE_FILE, data,
	    len) == -1) {
		saved = errno;
		rv = -1;
	}
	pthread_mutex_lock(&tc->mu);
	if (rv == -1) {
		tc->dirty = 1;
		tc->c.save_errors++;
	} else
		tc->c.saves++;
	pthread_mutex_unlock(&tc->mu);
	if (rv == -1)
		log_limited(&tc_lim_save, 60, LOGL_ERROR, "template: cannot "
		    "write %s/%s: %s", tc->dir, TEMPLATE_FILE,
		    data == NULL ? "out of memory" : strerror(saved));
	free(data);
	return rv;
}

/* Checks one stored record the way a datagram's would be parsed. */
static int
tc_record_ok(uint16_t version, uint16_t set_id, uint16_t id,
    const uint8_t *rec, size_t len)
{
	struct template_cache	 probe;
	struct tc_stream	 s;

	if ((version == 9 && set_id != TC_V9_TEMPLATE &&
	    set_id != TC_V9_OPTIONS) || (version == 10 &&
	    set_id != TC_IPFIX_TEMPLATE && set_id != TC_IPFIX_OPTIONS) ||
	    id < TC_MIN_ID || len < 4 || be16(rec) != id)
		return -1;
	/* Parse it as a one-record set into a scratch stream. */
	memset(&probe, 0, sizeof(probe));
	memset(&s, 0, sizeof(s));
	probe.p.per_stream_max = 1;
	probe.p.bytes_max = len;
	tc_parse_set(&probe, &s, set_id, rec, len);
	if (probe.c.malformed != 0 || s.n != 1 || s.t[0].len != len) {
		for (size_t i = 0; i < s.n; i++)
			free(s.t[i].rec);
		free(s.t);
		return -1;
	}
	free(s.t[0].rec);
	free(s.t);
	return 0;
}

static int
tc_decode(struct template_cache *tc, const uint8_t *data, size_t len,
    const char **why)
{
	struct rcur	 r;
	uint32_t	 nstreams;

	*why = "truncated";
	if (len < 16)
		return -1;
	if (be32(data + len - 4) != (uint32_t)crc32(0L, data,
	    (uInt)(len - 4))) {
		*why = "checksum mismatch";
		return -1;
	}
	rcur_init(&r, data, len - 4);
	if (memcmp(rcur_take(&r, 4), TC_MAGIC, 4) != 0) {
		*why = "not a template cache file";
		return -1;
	}
	if (rcur_u8(&r) != TC_FILE_VERSION) {
		*why = "unknown version";
		return -1;
	}
	(void)rcur_take(&r, 3);
	nstreams = rcur_u32(&r);
	for (uint32_t i = 0; i < nstreams && !r.err; i++) {
		struct tc_key		 k;
		struct tc_stream	*s;
		uint8_t			 idlen;
		const uint8_t		*id, *addr;
		uint16_t		 nt;

		memset(&k, 0, sizeof(k));
		idlen = rcur_u8(&r);
		id = rcur_take(&r, idlen);
		k.family = rcur_u8(&r);
		addr = rcur_take(&r, 16);
		k.port = rcur_u16(&r);
		k.version = rcur_u16(&r);
		k.domain = rcur_u32(&r);
		nt = rcur_u16(&r);
		if (r.err)
			break;
		*why = "bad stream";
		if (idlen == 0 || idlen > WIRE_CLIENT_ID_MAX ||
		    (k.family != 4 && k.family != 6) ||
		    (k.version != 9 && k.version != 10))
			return -1;
		memcpy(k.client, id, idlen);
		k.client[idlen] = '\0';
		if (wire_client_id_valid(k.client) == -1)
			return -1;
		memcpy(k.addr, addr, 16);
		if ((s = tc_find(tc, &k)) == NULL &&
		    (s = tc_create(tc, &k, 0)) == NULL) {
			*why = "out of memory";
			return -1;
		}
		s->loaded = 1;
		for (uint16_t j = 0; j < nt; j++) {
			uint16_t	 set_id = rcur_u16(&r);
			uint16_t	 tid = rcur_u16(&r);
			uint16_t	 tlen = rcur_u16(&r);
			const uint8_t	*rec = rcur_take(&r, tlen);

			if (r.err)
				break;
			*why = "bad template record";
			if (tc_record_ok(k.version, set_id, tid, rec,
			    tlen) == -1)
				return -1;
			tc_store(tc, s, set_id, tid, rec, tlen);
		}
	}
	if (r.err || r.left != 0) {
		*why = "truncated or trailing bytes";
		return -1;
	}
	return 0;
}

/* Drops everything (a file that failed half way must not count). */
static void
tc_clear(struct template_cache *tc)
{
	while (tc->oldest != NULL)
		tc_remove(tc, tc->oldest);
}

static void
tc_load(struct template_cache *tc)
{
	uint8_t		*data = NULL;
	size_t		 len = 0, max;
	char		 path[4096];
	const char	*why = NULL;

	if (util_snprintf(path, sizeof(path), "%s/%s", tc->dir,
	    TEMPLATE_FILE) == -1)
		return;
	max = 16 + tc->p.streams_max * TC_STREAM_FILE_MAX +
	    tc->p.streams_max * tc->p.per_stream_max * TC_TMPL_FILE_EXTRA +
	    tc->p.bytes_max;
	errno = 0;
	if (util_read_file(path, max, &data, &len) == -1) {
		if (errno != ENOENT)
			log_warn("template: %s: %s; starting with an empty "
			    "cache", path, errno != 0 ? strerror(errno) :
			    "too large");
		return;
	}
	if (tc_decode(tc, data, len, &why) == -1) {
		log_warn("template: %s: %s; starting with an empty cache",
		    path, why);
		tc_clear(tc);
	} else
		log_info("template: %zu templates of %zu exporter streams "
		    "loaded from %s", tc->ntemplates, tc->nstreams, path);
	/* Loaded state equals the file: nothing to write back. */
	tc->dirty = 0;
	tc->c.learned = 0;
	free(data);
}

/* ------------------------------------------------------------------ */
/* Life cycle */

static void *
tc_saver(void *arg)
{
	struct template_cache	*tc = arg;
	struct timespec		 ts;

	pthread_mutex_lock(&tc->mu);
	while (!tc->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += TC_SAVE_PERIOD_NS / 1000000000;
		(void)pthread_cond_timedwait(&tc->cv, &tc->mu, &ts);
		if (tc->stop || !tc->dirty)
			continue;
		pthread_mutex_unlock(&tc->mu);
		(void)template_save(tc);
		pthread_mutex_lock(&tc->mu);
	}
	pthread_mutex_unlock(&tc->mu);
	return NULL;
}

struct template_cache *
template_open(const struct template_params *p, char *err, size_t errlen)
{
	struct template_cache	*tc;
	pthread_condattr_t	 ca;

	if ((tc = calloc(1, sizeof(*tc))) == NULL) {
		util_snprintf(err, errlen, "template: out of memory");
		return NULL;
	}
	tc->p = *p;
	if (tc->p.streams_max == 0)
		tc->p.streams_max = TEMPLATE_STREAMS_MAX;
	if (tc->p.per_stream_max == 0)
		tc->p.per_stream_max = TEMPLATE_PER_STREAM_MAX;
	if (tc->p.bytes_max == 0)
		tc->p.bytes_max = TEMPLATE_BYTES_MAX;
	tc->p.state_dir = NULL;
	tc->refresh_ns = (int64_t)p->refresh_s * INT64_C(1000000000);
	if (p->state_dir != NULL && (tc->dir = strdup(p->state_dir)) == NULL) {
		free(tc);
		util_snprintf(err, errlen, "template: out of memory");
		return NULL;
	}
	pthread_mutex_init(&tc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tc->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (tc->dir == NULL)
		return tc;
	tc_load(tc);
	if (pthread_create(&tc->thread, NULL, tc_saver, tc) != 0) {
		util_snprintf(err, errlen, "template: cannot start the saving "
		    "thread");
		template_close(tc);
		return NULL;
	}
	tc->thread_started = 1;
	return tc;
}

void
template_close(struct template_cache *tc)
{
	if (tc == NULL)
		return;
	if (tc->thread_started) {
		pthread_mutex_lock(&tc->mu);
		tc->stop = 1;
		pthread_cond_signal(&tc->cv);
		pthread_mutex_unlock(&tc->mu);
		pthread_join(tc->thread, NULL);
	}
	(void)template_save(tc);
	tc_clear(tc);
	pthread_cond_destroy(&tc->cv);
	pthread_mutex_destroy(&tc->mu);
	free(tc->dir);
	free(tc);
}

/* One metric family of a single value. */
static int
tc_metric(struct buf *out, const char *name, const char *type,
    const char *help, uint64_t v)
{
	char	 line[512];
	int	 n;

	n = snprintf(line, sizeof(line), "# HELP flowpost_gateway_template_%s "
	    "%s\n# TYPE flowpost_gateway_template_%s %s\n"
	    "flowpost_gateway_template_%s %" PRIu64 "\n", name, help, name,
	    type, name, v);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return buf_append(out, line, (size_t)n);
}

int
template_metrics(struct template_cache *tc, struct buf *out)
{
	struct template_counters	 c;

	template_get_counters(tc, &c);
	if (tc_metric(out, "streams", "gauge",
	    "exporter streams with cached templates", c.streams) == -1 ||
	    tc_metric(out, "templates", "gauge",
	    "templates and options templates cached", c.templates) == -1 ||
	    tc_metric(out, "bytes", "gauge",
	    "bytes of cached template records", c.bytes) == -1 ||
	    tc_metric(out, "learned_total", "counter",
	    "template definitions stored or replaced", c.learned) == -1 ||
	    tc_metric(out, "withdrawn_total", "counter",
	    "IPFIX template withdrawals applied", c.withdrawn) == -1 ||
	    tc_metric(out, "messages_total", "counter",
	    "template messages sent ahead of a stream's data (to every "
	    "collector)", c.messages) == -1 ||
	    tc_metric(out, "dropped_total", "counter",
	    "template definitions not cached (over a bound)",
	    c.dropped) == -1 ||
	    tc_metric(out, "evicted_streams_total", "counter",
	    "streams evicted from the cache (least recently used)",
	    c.evicted) == -1 ||
	    tc_metric(out, "malformed_sets_total", "counter",
	    "template sets that did not parse", c.malformed) == -1 ||
	    tc_metric(out, "save_errors_total", "counter",
	    "failed writes of the template state file", c.save_errors) == -1)
		return -1;
	return 0;
}

void
template_get_counters(struct template_cache *tc, struct template_counters *c)
{
	pthread_mutex_lock(&tc->mu);
	*c = tc->c;
	c->streams = tc->nstreams;
	c->templates = tc->ntemplates;
	c->bytes = tc->bytes;
	pthread_mutex_unlock(&tc->mu);
}
