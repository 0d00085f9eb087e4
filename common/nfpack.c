/*
 * nfpack.c: the column transform of codec 2 (docs/PROTOCOL.md 1.4).
 *
 * Deflate finds repeats within a 32 KiB window, byte by byte.  NetFlow v5
 * records are fixed 48-byte structs whose fields change little from one
 * record to the next, but a given field recurs only every 48 bytes, among
 * unrelated bytes.  Putting byte k of every record next to each other (a
 * byte plane), and turning absolute clocks and sequence numbers into small
 * differences, gives deflate long runs of equal or near-equal bytes.
 *
 * Both directions do two linear passes at most and write into one buffer
 * the caller sized; the decoder computes every section's place and the
 * content's size from the counts first and checks them against both
 * buffers before it writes a byte.
 */
#include <string.h>

#include "bytes.h"
#include "nfpack.h"

#define NFPACK_ENTRY	32	/* entry header, as in wire.h */
#define NFPACK_V5_HDR	24
#define NFPACK_V5_REC	48
#define NFPACK_V5_MAXREC 30

/* Entry kinds (the kind plane). */
#define NFPACK_KIND_OTHER	0
#define NFPACK_KIND_V5		1

/* Offsets inside a v5 header and record (Cisco's NetFlow v5 layout). */
#define V5_COUNT	2
#define V5_UPTIME	4
#define V5_SECS		8
#define V5_SEQ		16
#define V5R_SRCADDR	0
#define V5R_DSTADDR	4
#define V5R_FIRST	24
#define V5R_LAST	28
#define V5R_SRCPORT	32
#define V5R_DSTPORT	34

/* Where each section starts in a transformed stream. */
struct nfpack_layout {
	uint32_t	 health_len, count, n5, nrec, other_len;
	size_t		 health, kind, entry, v5hdr, v5rec, other;
	size_t		 stream_len;	/* transformed size */
	size_t		 raw_len;	/* content size */
};

/* Running values the deltas are taken against. */
struct nfpack_state {
	uint64_t	 recv_us;
	uint32_t	 uptime, secs, next_seq;
	uint8_t		 rec[NFPACK_V5_REC];	/* previous v5 record */
};

size_t
nfpack_bound(size_t raw_len)
{
	size_t	extra = NFPACK_FIXED + raw_len / (NFPACK_ENTRY + 1);

	if (raw_len > SIZE_MAX - extra)
		return 0;
	return raw_len + extra;
}

/* The number of records if `p` is a well-formed v5 datagram, else 0. */
static unsigned int
nfpack_v5_records(const uint8_t *p, size_t len)
{
	size_t	n;

	if (len < NFPACK_V5_HDR + NFPACK_V5_REC ||
	    (len - NFPACK_V5_HDR) % NFPACK_V5_REC != 0)
		return 0;
	n = (len - NFPACK_V5_HDR) / NFPACK_V5_REC;
	if (n > NFPACK_V5_MAXREC || be16(p) != 5 || be16(p + V5_COUNT) != n)
		return 0;
	return (unsigned int)n;
}

/*
 * Places the sections from the counts.  Sizes are summed in 64 bits:
 * counts read from a hostile stream cannot wrap them.
 */
static int
nfpack_place(struct nfpack_layout *l)
{
	uint64_t	 off, raw;

	off = 1 + 4 + (uint64_t)l->health_len;
	l->health = 5;
	off += 16;
	l->kind = (size_t)off;
	off += l->count;
	l->entry = (size_t)off;
	off += (uint64_t)NFPACK_ENTRY * l->count;
	l->v5hdr = (size_t)off;
	off += (uint64_t)NFPACK_V5_HDR * l->n5;
	l->v5rec = (size_t)off;
	off += (uint64_t)NFPACK_V5_REC * l->nrec;
	l->other = (size_t)off;
	off += l->other_len;
	raw = 4 + (uint64_t)l->health_len + (uint64_t)NFPACK_ENTRY * l->count +
	    (uint64_t)NFPACK_V5_HDR * l->n5 + (uint64_t)NFPACK_V5_REC *
	    l->nrec + l->other_len;
	if (off > SIZE_MAX || raw > UINT32_MAX)
		return -1;
	l->stream_len = (size_t)off;
	l->raw_len = (size_t)raw;
	return 0;
}

/* Byte j of a fixed-size item goes to plane j, at the item's index. */
static void
nfpack_scatter(uint8_t *planes, size_t n, size_t idx, const uint8_t *item,
    size_t width)
{
	for (size_t j = 0; j < width; j++)
		planes[j * n + idx] = item[j];
}

static void
nfpack_gather(const uint8_t *planes, size_t n, size_t idx, uint8_t *item,
    size_t width)
{
	for (size_t j = 0; j < width; j++)
		item[j] = planes[j * n + idx];
}

/*
 * v5 header: uptime and unix_secs as differences from the previous v5
 * datagram's, flow_sequence as the difference from what the previous one
 * announces next (its sequence plus its record count), so that a single
 * exporter's steady stream becomes zeros.
 */
static void
nfpack_v5_hdr_fwd(uint8_t *t, const uint8_t *p, struct nfpack_state *s)
{
	uint32_t	 up = be32(p + V5_UPTIME), secs = be32(p + V5_SECS);
	uint32_t	 seq = be32(p + V5_SEQ);

	memcpy(t, p, NFPACK_V5_HDR);
	put_be32(t + V5_UPTIME, up - s->uptime);
	put_be32(t + V5_SECS, secs - s->secs);
	put_be32(t + V5_SEQ, seq - s->next_seq);
	s->uptime = up;
	s->secs = secs;
	s->next_seq = seq + be16(p + V5_COUNT);
}

static void
nfpack_v5_hdr_inv(uint8_t *p, const uint8_t *t, struct nfpack_state *s)
{
	memcpy(p, t, NFPACK_V5_HDR);
	s->uptime += be32(t + V5_UPTIME);
	s->secs += be32(t + V5_SECS);
	s->next_seq += be32(t + V5_SEQ);
	put_be32(p + V5_UPTIME, s->uptime);
	put_be32(p + V5_SECS, s->secs);
	put_be32(p + V5_SEQ, s->next_seq);
	s->next_seq += be16(p + V5_COUNT);
}

/*
 * v5 record, against the previous v5 record of the batch (all zeros for
 * the first): first as the difference from the previous first (flows
 * expire in about the order they started), last as the flow's duration
 * (last - first).  Flow probes export the two directions of a connection
 * one after the other, so the addresses and ports are XORed with the
 * previous record's swapped ones: a reply's become zeros.
 */
static void
nfpack_v5_swapxor(uint8_t *t, const uint8_t *p, const uint8_t *prev)
{
	for (size_t j = 0; j < 4; j++) {
		t[V5R_SRCADDR + j] = p[V5R_SRCADDR + j] ^ prev[V5R_DSTADDR + j];
		t[V5R_DSTADDR + j] = p[V5R_DSTADDR + j] ^ prev[V5R_SRCADDR + j];
	}
	for (size_t j = 0; j < 2; j++) {
		t[V5R_SRCPORT + j] = p[V5R_SRCPORT + j] ^ prev[V5R_DSTPORT + j];
		t[V5R_DSTPORT + j] = p[V5R_DSTPORT + j] ^ prev[V5R_SRCPORT + j];
	}
}

static void
nfpack_v5_rec_fwd(uint8_t *t, const uint8_t *p, struct nfpack_state *s)
{
	uint32_t	 first = be32(p + V5R_FIRST);

	memcpy(t, p, NFPACK_V5_REC);
	nfpack_v5_swapxor(t, p, s->rec);
	put_be32(t + V5R_FIRST, first - be32(s->rec + V5R_FIRST));
	put_be32(t + V5R_LAST, be32(p + V5R_LAST) - first);
	memcpy(s->rec, p, NFPACK_V5_REC);
}

static void
nfpack_v5_rec_inv(uint8_t *p, const uint8_t *t, struct nfpack_state *s)
{
	uint32_t	 first = be32(s->rec + V5R_FIRST) + be32(t + V5R_FIRST);

	memcpy(p, t, NFPACK_V5_REC);
	/* XOR is its own inverse. */
	nfpack_v5_swapxor(p, t, s->rec);
	put_be32(p + V5R_FIRST, first);
	put_be32(p + V5R_LAST, first + be32(t + V5R_LAST));
	memcpy(s->rec, p, NFPACK_V5_REC);
}

/* Counts entries, v5 datagrams and records, other bytes; -1 if malformed. */
static int
nfpack_scan(const uint8_t *entries, size_t entries_len,
    struct nfpack_layout *l)
{
	struct rcur	 r;
	const uint8_t	*h, *pl;
	uint64_t	 count = 0, n5 = 0, nrec = 0, other = 0;
	uint16_t	 len;
	unsigned int	 nr;

	rcur_init(&r, entries, entries_len);
	while (r.left > 0) {
		h = rcur_take(&r, NFPACK_ENTRY);
		len = h != NULL ? be16(h + 30) : 0;
		if ((pl = rcur_take(&r, len)) == NULL || len == 0)
			return -1;
		count++;
		if ((nr = nfpack_v5_records(pl, len)) > 0) {
			n5++;
			nrec += nr;
		} else
			other += len;
	}
	if (count > UINT32_MAX || other > UINT32_MAX)
		return -1;
	l->count = (uint32_t)count;
	l->n5 = (uint32_t)n5;
	l->nrec = (uint32_t)nrec;
	l->other_len = (uint32_t)other;
	return 0;
}

int
nfpack_encode(const uint8_t *health, size_t health_len,
    const uint8_t *entries, size_t entries_len, uint8_t *out, size_t outlen,
    size_t *used)
{
	struct nfpack_layout	 l;
	struct nfpack_state	 s;
	struct wcur		 w;
	uint8_t			 t[NFPACK_V5_REC];
	size_t			 i = 0, k5 = 0, kr = 0, ko = 0;
	uint16_t		 len = 0;

	memset(&l, 0, sizeof(l));
	memset(&s, 0, sizeof(s));
	if (health_len > UINT32_MAX || entries_len > UINT32_MAX ||
	    (health_len > 0 && health == NULL) ||
	    (entries_len > 0 && entries == NULL))
		return -1;
	l.health_len = (uint32_t)health_len;
	if (nfpack_scan(entries, entries_len, &l) == -1 ||
	    nfpack_place(&l) == -1 || l.stream_len > outlen)
		return -1;

	wcur_init(&w, out, l.kind);
	wcur_u8(&w, NFPACK_VERSION);
	wcur_u32(&w, l.health_len);
	wcur_bytes(&w, health, health_len);
	wcur_u32(&w, l.count);
	wcur_u32(&w, l.n5);
	wcur_u32(&w, l.nrec);
	wcur_u32(&w, l.other_len);
	if (w.err || w.left != 0)
		return -1;

	/* The scan proved every length: the walk reads within entries. */
	for (size_t off = 0; off < entries_len; off += NFPACK_ENTRY + len) {
		const uint8_t	*p = entries + off;
		const uint8_t	*pl = p + NFPACK_ENTRY;
		uint64_t	 recv = be64(p);
		unsigned int	 nr;

		len = be16(p + 30);
		nr = nfpack_v5_records(pl, len);

		memcpy(t, p, NFPACK_ENTRY);
		put_be64(t, recv - s.recv_us);
		s.recv_us = recv;
		nfpack_scatter(out + l.entry, l.count, i, t, NFPACK_ENTRY);
		if (nr > 0) {
			out[l.kind + i] = NFPACK_KIND_V5;
			nfpack_v5_hdr_fwd(t, pl, &s);
			nfpack_scatter(out + l.v5hdr, l.n5, k5++, t,
			    NFPACK_V5_HDR);
			for (unsigned int j = 0; j < nr; j++) {
				nfpack_v5_rec_fwd(t, pl + NFPACK_V5_HDR +
				    (size_t)j * NFPACK_V5_REC, &s);
				nfpack_scatter(out + l.v5rec, l.nrec, kr++, t,
				    NFPACK_V5_REC);
			}
		} else {
			out[l.kind + i] = NFPACK_KIND_OTHER;
			memcpy(out + l.other + ko, pl, len);
			ko += len;
		}
		i++;
	}
	if (i != l.count || k5 != l.n5 || kr != l.nrec || ko != l.other_len)
		return -1;
	*used = l.stream_len;
	return 0;
}

/* Reads the fixed fields and places the sections; -1 if they disagree. */
static int
nfpack_read_layout(const uint8_t *in, size_t inlen, struct nfpack_layout *l)
{
	struct rcur	 r;

	memset(l, 0, sizeof(*l));
	rcur_init(&r, in, inlen);
	if (rcur_u8(&r) != NFPACK_VERSION)
		return -1;
	l->health_len = rcur_u32(&r);
	(void)rcur_take(&r, l->health_len);
	l->count = rcur_u32(&r);
	l->n5 = rcur_u32(&r);
	l->nrec = rcur_u32(&r);
	l->other_len = rcur_u32(&r);
	if (r.err || l->n5 > l->count ||
	    (uint64_t)l->nrec > (uint64_t)l->n5 * NFPACK_V5_MAXREC ||
	    (uint64_t)l->nrec < l->n5 ||
	    (uint64_t)l->other_len < (uint64_t)(l->count - l->n5))
		return -1;
	if (nfpack_place(l) == -1 || l->stream_len != inlen)
		return -1;
	return 0;
}

int
nfpack_decode(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen,
    size_t *used)
{
	struct nfpack_layout	 l;
	struct nfpack_state	 s;
	struct wcur		 w;
	uint8_t			 t[NFPACK_V5_REC], v[NFPACK_V5_REC];
	size_t			 k5 = 0, kr = 0, ko = 0;

	memset(&s, 0, sizeof(s));
	if (in == NULL || nfpack_read_layout(in, inlen, &l) == -1 ||
	    l.raw_len > outlen)
		return -1;

	wcur_init(&w, out, l.raw_len);
	wcur_u32(&w, l.health_len);
	wcur_bytes(&w, in + l.health, l.health_len);
	for (size_t i = 0; i < l.count; i++) {
		uint8_t		 kind = in[l.kind + i];
		uint16_t	 len;
		size_t		 nr;

		nfpack_gather(in + l.entry, l.count, i, t, NFPACK_ENTRY);
		s.recv_us += be64(t);
		put_be64(t, s.recv_us);
		len = be16(t + 30);
		wcur_bytes(&w, t, NFPACK_ENTRY);
		if (len == 0)
			return -1;
		if (kind == NFPACK_KIND_OTHER) {
			if (len > l.other_len - ko)
				return -1;
			wcur_bytes(&w, in + l.other + ko, len);
			ko += len;
		} else if (kind == NFPACK_KIND_V5) {
			if (len < NFPACK_V5_HDR + NFPACK_V5_REC ||
			    (len - NFPACK_V5_HDR) % NFPACK_V5_REC != 0)
				return -1;
			nr = (size_t)(len - NFPACK_V5_HDR) / NFPACK_V5_REC;
			if (k5 >= l.n5 || nr > l.nrec - kr)
				return -1;
			nfpack_gather(in + l.v5hdr, l.n5, k5++, t,
			    NFPACK_V5_HDR);
			nfpack_v5_hdr_inv(v, t, &s);
			/* Only what the encoder would have called v5. */
			if (nfpack_v5_records(v, len) != nr)
				return -1;
			wcur_bytes(&w, v, NFPACK_V5_HDR);
			for (size_t j = 0; j < nr; j++) {
				nfpack_gather(in + l.v5rec, l.nrec, kr++, t,
				    NFPACK_V5_REC);
				nfpack_v5_rec_inv(v, t, &s);
				wcur_bytes(&w, v, NFPACK_V5_REC);
			}
		} else
			return -1;
		if (w.err)
			return -1;
	}
	if (w.err || w.left != 0 || k5 != l.n5 || kr != l.nrec ||
	    ko != l.other_len)
		return -1;
	*used = l.raw_len;
	return 0;
}
