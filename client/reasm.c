/*
 * reasm.c: fragment sets, their limits and their timeout.
 *
 * Sets live in a fixed array (REASM_MAX_SETS by default) searched
 * linearly: a capture rarely holds more than a handful of packets in
 * pieces at once.  Each set's buffer grows to the highest byte seen so
 * far and counts against the total; the list of parts received finds
 * overlaps and tells when the packet is whole.
 */
#include <stdlib.h>
#include <string.h>

#include "reasm.h"

struct reasm_part {
	uint32_t	off, len;
};

struct reasm_set {
	int			 used;
	uint8_t			 family, proto;
	uint8_t			 src[16], dst[16];
	uint32_t		 id;
	uint64_t		 first_us;	/* when its first part came */
	uint8_t			*buf;
	size_t			 cap;
	uint32_t		 total;		/* known once have_last */
	int			 have_last;
	uint32_t		 got;		/* bytes received */
	size_t			 nparts;
	struct reasm_part	 parts[REASM_MAX_FRAGS];
};

struct reasm {
	struct reasm_params	 p;
	struct reasm_set	*sets;
	size_t			 nsets;		/* in use */
	size_t			 bytes;		/* buffer bytes of all sets */
	uint8_t			*done;		/* the last packet handed out */
	struct reasm_counters	 c;
};

int
reasm_new(struct reasm **out, const struct reasm_params *p)
{
	struct reasm	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	if (p != NULL)
		r->p = *p;
	else {
		r->p.max_sets = REASM_MAX_SETS;
		r->p.max_packet = REASM_MAX_PACKET;
		r->p.max_total = REASM_MAX_TOTAL;
		r->p.timeout_us = REASM_TIMEOUT_US;
	}
	if (r->p.max_sets == 0 || r->p.max_packet == 0 ||
	    r->p.max_packet > REASM_MAX_PACKET ||
	    (r->sets = calloc(r->p.max_sets, sizeof(*r->sets))) == NULL) {
		free(r);
		return -1;
	}
	*out = r;
	return 0;
}

static void
reasm_drop_set(struct reasm *r, struct reasm_set *s)
{
	if (!s->used)
		return;
	r->bytes -= s->cap;
	free(s->buf);
	memset(s, 0, sizeof(*s));
	r->nsets--;
}

void
reasm_free(struct reasm *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->p.max_sets; i++)
		reasm_drop_set(r, &r->sets[i]);
	free(r->sets);
	free(r->done);
	free(r);
}

static struct reasm_set *
reasm_oldest(struct reasm *r, const struct reasm_set *except)
{
	struct reasm_set	*old = NULL;
	size_t			 i;

	for (i = 0; i < r->p.max_sets; i++) {
		struct reasm_set *s = &r->sets[i];

		if (s->used && s != except &&
		    (old == NULL || s->first_us < old->first_us))
			old = s;
	}
	return old;
}

static struct reasm_set *
reasm_find(struct reasm *r, const struct pktdecode_frag *f, uint64_t now_us)
{
	struct reasm_set	*s, *freeslot = NULL;
	size_t			 i, alen = f->family == 4 ? 4 : 16;

	for (i = 0; i < r->p.max_sets; i++) {
		s = &r->sets[i];
		if (!s->used) {
			if (freeslot == NULL)
				freeslot = s;
			continue;
		}
		if (s->id == f->id && s->family == f->family &&
		    s->proto == f->proto && memcmp(s->src, f->src, alen) == 0 &&
		    memcmp(s->dst, f->dst, alen) == 0)
			return s;
	}
	if (freeslot == NULL) {
		/* every slot taken: the oldest set gives way */
		freeslot = reasm_oldest(r, NULL);
		reasm_drop_set(r, freeslot);
		r->c.dropped++;
	}
	s = freeslot;
	s->used = 1;
	s->family = f->family;
	s->proto = f->proto;
	memcpy(s->src, f->src, alen);
	memcpy(s->dst, f->dst, alen);
	s->id = f->id;
	s->first_us = now_us;
	r->nsets++;
	return s;
}

/* Makes s->buf hold `end` bytes within the total cap; -1 if it cannot. */
static int
reasm_grow(struct reasm *r, struct reasm_set *s, size_t end)
{
	struct reasm_set	*old;
	uint8_t			*nb;
	size_t			 ncap;

	if (end <= s->cap)
		return 0;
	/* double, to keep reallocations few, but never past the packet cap */
	ncap = s->cap * 2 > end ? s->cap * 2 : end;
	if (ncap > r->p.max_packet)
		ncap = r->p.max_packet;
	while (r->bytes + (ncap - s->cap) > r->p.max_total) {
		if ((old = reasm_oldest(r, s)) == NULL)
			return -1;
		reasm_drop_set(r, old);
		r->c.dropped++;
	}
	if ((nb = realloc(s->buf, ncap)) == NULL)
		return -1;
	r->bytes += ncap - s->cap;
	s->buf = nb;
	s->cap = ncap;
	return 0;
}

enum reasm_result
reasm_add(struct reasm *r, const struct pktdecode_frag *f, uint64_t now_us,
    struct reasm_packet *out)
{
	struct reasm_set	*s;
	struct reasm_part	*pt;
	size_t			 end = (size_t)f->offset + f->len, i;

	r->c.fragments++;
	free(r->done);
	r->done = NULL;

	/* parts but the last are whole multiples of 8 bytes (RFC 791/8200) */
	if ((f->more && (f->len == 0 || f->len % 8 != 0)) ||
	    (f->family != 4 && f->family != 6)) {
		r->c.dropped++;
		return REASM_DROPPED;
	}
	s = reasm_find(r, f, now_us);
	if (end > r->p.max_packet)
		goto drop;
	if (!f->more) {
		if (s->have_last && s->total != end)
			goto drop;
		for (i = 0; i < s->nparts; i++)
			if (s->parts[i].off + s->parts[i].len > end)
				goto drop;
		s->have_last = 1;
		s->total = (uint32_t)end;
	} else if (s->have_last && end > s->total)
		goto drop;

	for (i = 0; i < s->nparts; i++) {
		pt = &s->parts[i];
		if (f->offset < pt->off + pt->len && pt->off < end) {
			if (pt->off == f->offset && pt->len == f->len &&
			    memcmp(s->buf + pt->off, f->data, f->len) == 0)
				return REASM_HELD;	/* the same part again */
			r->c.overlaps++;
			reasm_drop_set(r, s);
			return REASM_DROPPED;
		}
	}
	if (s->nparts == REASM_MAX_FRAGS || reasm_grow(r, s, end) == -1)
		goto drop;
	if (f->len > 0)
		memcpy(s->buf + f->offset, f->data, f->len);
	s->parts[s->nparts].off = f->offset;
	s->parts[s->nparts].len = (uint32_t)f->len;
	s->nparts++;
	s->got += (uint32_t)f->len;
	if (!s->have_last || s->got != s->total)
		return REASM_HELD;

	/* whole: parts do not overlap, so their sizes add up to the packet */
	r->c.completed++;
	out->family = s->family;
	memcpy(out->src, s->src, sizeof(out->src));
	memcpy(out->dst, s->dst, sizeof(out->dst));
	out->proto = s->proto;
	out->len = s->total;
	r->done = s->buf;		/* handed out until the next call */
	out->data = r->done;
	r->bytes -= s->cap;
	s->buf = NULL;
	s->cap = 0;
	reasm_drop_set(r, s);
	return REASM_DONE;
 drop:
	r->c.dropped++;
	reasm_drop_set(r, s);
	return REASM_DROPPED;
}

void
reasm_expire(struct reasm *r, uint64_t now_us)
{
	size_t	i;

	if (r->nsets == 0)
		return;
	for (i = 0; i < r->p.max_sets; i++) {
		struct reasm_set *s = &r->sets[i];

		if (s->used && now_us >= s->first_us &&
		    now_us - s->first_us >= r->p.timeout_us) {
			reasm_drop_set(r, s);
			r->c.timeouts++;
		}
	}
}

void
reasm_flush(struct reasm *r)
{
	size_t	i;

	for (i = 0; i < r->p.max_sets; i++) {
		if (r->sets[i].used) {
			reasm_drop_set(r, &r->sets[i]);
			r->c.timeouts++;
		}
	}
}

void
reasm_usage(const struct reasm *r, size_t *sets, size_t *bytes)
{
	*sets = r->nsets;
	*bytes = r->bytes;
}

void
reasm_counters(const struct reasm *r, struct reasm_counters *c)
{
	*c = r->c;
}
