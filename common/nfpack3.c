/*
 * nfpack3.c: the field transform of codec 3 (docs/PROTOCOL.md 1.5).
 *
 * Codec 2 puts byte k of every v5 record next to each other; deflate then
 * finds runs, but still pays for every byte of every record, including
 * the ones a flow probe repeats: the reply of a connection carries the
 * request's addresses and ports swapped and usually its times, a busy
 * host's address recurs in most records, counters and durations are small
 * numbers in 4-byte fields.  This transform codes those facts instead of
 * the bytes: an op byte per record says what is the same as in the
 * previous record, addresses are ranks in a 16-entry move-to-front table,
 * clocks become differences, numbers LEB128 varints, and each kind of
 * field has a column of its own.  The v5 header's clocks and sequence number are
 * predicted from the previous datagram of the same exporter (an 8-entry
 * move-to-front table of the entries' source), so exporters interleaved
 * in one batch do not spoil each other's deltas.
 *
 * Bounds.  Both directions are linear in the content and use a fixed few
 * hundred bytes of state.  The encoder lays every column out at its
 * worst-case size (from the counts of a first scan), writes them through
 * cursors, then packs them together in place.  The decoder reads the
 * counts and column lengths, checks that they add up to exactly the
 * stream it was given and to a content that fits its output, then reads
 * every column through its own cursor: nothing is written before the
 * sizes agree, and no read leaves its column.
 */
#include <string.h>

#include "bytes.h"
#include "nfpack3.h"

#define ENTRY_HDR	32	/* entry header, as in wire.h */
#define EXP_ID		22	/* entry header bytes 8..29: the source */
#define EXP_ID_OFF	8
#define ENTRY_LEN_OFF	30
#define V5_HDR		24
#define V5_REC		48
#define V5_MAXREC	30
#define V5_HDR_COL	9	/* count, unix_nsecs, engine, sampling */
#define REST_LEN	18	/* record bytes 8..15, 36, 39, 40..47 */

#define NEXP		8	/* exporter table */
#define EXP_NEW		NEXP
#define NADDR		16	/* address table */
#define ADDR_NEW	NADDR

/* The ENT byte. */
#define ENT_V5		0x80
#define ENT_SLOT	0x0f
#define ENT_RESERVED	0x70

/* The OP byte. */
#define OP_PAIR		0x01	/* addresses, ports swapped; same protocol */
#define OP_TIMES	0x02	/* first and last as the previous record's */
#define OP_SAME		0x04	/* the REST bytes as the previous record's */
#define OP_RESERVED	0xf8

/* Offsets inside a v5 header and record (Cisco's NetFlow v5 layout). */
#define V5_COUNT	2
#define V5_UPTIME	4
#define V5_SECS		8
#define V5_NSECS	12
#define V5_SEQ		16
#define V5_ENGINE	20
#define R_SRCADDR	0
#define R_DSTADDR	4
#define R_NEXTHOP	8
#define R_PKTS		16
#define R_OCTS		20
#define R_FIRST		24
#define R_LAST		28
#define R_SRCPORT	32
#define R_DSTPORT	34
#define R_PAD1		36
#define R_FLAGS		37
#define R_PROT		38
#define R_TOS		39
#define R_SRCAS		40

/* Columns, in stream order. */
enum col {
	COL_ENT,	/* u8 per entry: kind and exporter slot */
	COL_EXP,	/* 22 bytes per exporter new to the table */
	COL_RECV,	/* varint per entry: recv_us difference */
	COL_LEN,	/* u16 per entry of kind other */
	COL_V5HDR,	/* 9 bytes per v5 entry */
	COL_UPTIME,	/* varint per v5 entry */
	COL_SECS,	/* varint per v5 entry */
	COL_SEQ,	/* varint per v5 entry */
	COL_OP,		/* u8 per record */
	COL_FLAGS,	/* u8 per record: tcp_flags */
	COL_ADDR,	/* u8 per address of a record without OP_PAIR */
	COL_NEWADDR,	/* 4 bytes per address not in the table */
	COL_PORT,	/* 4 bytes per record without OP_PAIR */
	COL_PROTO,	/* u8 per record without OP_PAIR */
	COL_FIRST,	/* varint per record without OP_TIMES */
	COL_DUR,	/* varint per record without OP_TIMES */
	COL_PKTS,	/* varint per record */
	COL_OCTS,	/* varint per record */
	COL_REST,	/* 18 bytes per record without OP_SAME */
	NCOL
};

_Static_assert(NCOL == NFPACK3_NCOL, "column count");

/*
 * Worst-case bytes of a column per entry, per entry of kind other, per
 * v5 entry and per record: what the encoder reserves before it knows.
 */
static const struct {
	uint8_t	 entry, other, v5, rec;
} col_worst[NCOL] = {
	[COL_ENT] = { 1, 0, 0, 0 },
	[COL_EXP] = { EXP_ID, 0, 0, 0 },
	[COL_RECV] = { 10, 0, 0, 0 },
	[COL_LEN] = { 0, 2, 0, 0 },
	[COL_V5HDR] = { 0, 0, V5_HDR_COL, 0 },
	[COL_UPTIME] = { 0, 0, 5, 0 },
	[COL_SECS] = { 0, 0, 5, 0 },
	[COL_SEQ] = { 0, 0, 5, 0 },
	[COL_OP] = { 0, 0, 0, 1 },
	[COL_FLAGS] = { 0, 0, 0, 1 },
	[COL_ADDR] = { 0, 0, 0, 2 },
	[COL_NEWADDR] = { 0, 0, 0, 8 },
	[COL_PORT] = { 0, 0, 0, 4 },
	[COL_PROTO] = { 0, 0, 0, 1 },
	[COL_FIRST] = { 0, 0, 0, 5 },
	[COL_DUR] = { 0, 0, 0, 5 },
	[COL_PKTS] = { 0, 0, 0, 5 },
	[COL_OCTS] = { 0, 0, 0, 5 },
	[COL_REST] = { 0, 0, 0, REST_LEN },
};

/* Where each section starts in a transformed stream. */
struct layout {
	uint32_t	 health_len, count, n5, nrec, other_len;
	uint32_t	 len[NCOL];	/* column lengths (or worst cases) */
	size_t		 health;	/* offset of the health block */
	size_t		 off[NCOL];	/* offset of each column */
	size_t		 other;		/* offset of the other payloads */
	size_t		 stream_len;	/* transformed size */
	size_t		 raw_len;	/* content size */
};

struct exporter {
	uint8_t		 id[EXP_ID];
	uint32_t	 uptime, secs, next_seq;
};

/* What the differences are taken against; all zeros at the start. */
struct state {
	struct exporter	 exp[NEXP];	/* most recently used first */
	unsigned int	 nexp;
	uint32_t	 addr[NADDR];	/* most recently used first */
	unsigned int	 naddr;
	uint64_t	 recv_us;
	uint8_t		 rec[V5_REC];	/* previous v5 record */
};

/* Zigzag: small differences of either sign become small numbers. */
static uint32_t
zz32(uint32_t d)
{
	return d << 1 ^ (0u - (d >> 31));
}

static uint32_t
unzz32(uint32_t z)
{
	return z >> 1 ^ (0u - (z & 1));
}

static uint64_t
zz64(uint64_t d)
{
	return d << 1 ^ (UINT64_C(0) - (d >> 63));
}

static uint64_t
unzz64(uint64_t z)
{
	return z >> 1 ^ (UINT64_C(0) - (z & 1));
}

/* LEB128: 7 bits a byte, least significant first, high bit "more". */
static void
put_varint(struct wcur *w, uint64_t v)
{
	uint8_t		 b[10];
	size_t		 n = 0;

	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	wcur_bytes(w, b, n);
}

/*
 * Reads a varint of at most `bits` bits.  Only the encoder's form is
 * accepted: no bits beyond the field, no superfluous final zero byte.
 */
static int
get_varint(struct rcur *r, unsigned int bits, uint64_t *v)
{
	uint64_t	 x = 0;
	uint8_t		 b;

	for (unsigned int shift = 0; shift < bits; shift += 7) {
		b = rcur_u8(r);
		if (r->err)
			return -1;
		if (bits - shift < 7 && (b & 0x7f) >> (bits - shift) != 0)
			return -1;
		x |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			if (b == 0 && shift > 0)
				return -1;
			*v = x;
			return 0;
		}
	}
	return -1;
}

static int
get_varint32(struct rcur *r, uint32_t *v)
{
	uint64_t	 x;

	if (get_varint(r, 32, &x) == -1)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

size_t
nfpack3_bound(size_t raw_len)
{
	size_t	extra = NFPACK3_FIXED + raw_len / 6;

	if (raw_len > SIZE_MAX - extra)
		return 0;
	return raw_len + extra;
}

/* The number of records if `p` is a well-formed v5 datagram, else 0. */
static unsigned int
v5_records(const uint8_t *p, size_t len)
{
	size_t	n;

	if (len < V5_HDR + V5_REC || (len - V5_HDR) % V5_REC != 0)
		return 0;
	n = (len - V5_HDR) / V5_REC;
	if (n > V5_MAXREC || be16(p) != 5 || be16(p + V5_COUNT) != n)
		return 0;
	return (unsigned int)n;
}

/*
 * Places the sections from the counts and column lengths.  Sizes are
 * summed in 64 bits: lengths read from a hostile stream cannot wrap them.
 */
static int
place(struct layout *l)
{
	uint64_t	 off, raw;

	l->health = 5;
	off = 1 + 4 + (uint64_t)l->health_len + 16 + 4 * NCOL;
	for (size_t i = 0; i < NCOL; i++) {
		l->off[i] = (size_t)off;
		off += l->len[i];
	}
	l->other = (size_t)off;
	off += l->other_len;
	raw = 4 + (uint64_t)l->health_len + (uint64_t)ENTRY_HDR * l->count +
	    (uint64_t)V5_HDR * l->n5 + (uint64_t)V5_REC * l->nrec +
	    l->other_len;
	if (off > SIZE_MAX || raw > UINT32_MAX)
		return -1;
	l->stream_len = (size_t)off;
	l->raw_len = (size_t)raw;
	return 0;
}

/*
 * Exporter table: a move-to-front list of entry sources.  A source found
 * at slot i moves to the front; a new one goes in front with its clocks at
 * zero, and the least recently used falls off a full table.
 */
static struct exporter *
exp_front(struct state *s, unsigned int i)
{
	struct exporter	 e = s->exp[i];

	memmove(&s->exp[1], &s->exp[0], i * sizeof(s->exp[0]));
	s->exp[0] = e;
	return &s->exp[0];
}

static struct exporter *
exp_new(struct state *s, const uint8_t *id)
{
	if (s->nexp < NEXP)
		s->nexp++;
	memmove(&s->exp[1], &s->exp[0], (s->nexp - 1) * sizeof(s->exp[0]));
	memset(&s->exp[0], 0, sizeof(s->exp[0]));
	memcpy(s->exp[0].id, id, EXP_ID);
	return &s->exp[0];
}

/* The same for addresses. */
static void
addr_front(struct state *s, unsigned int i)
{
	uint32_t	 a = s->addr[i];

	memmove(&s->addr[1], &s->addr[0], i * sizeof(s->addr[0]));
	s->addr[0] = a;
}

static void
addr_new(struct state *s, uint32_t a)
{
	if (s->naddr < NADDR)
		s->naddr++;
	memmove(&s->addr[1], &s->addr[0], (s->naddr - 1) * sizeof(s->addr[0]));
	s->addr[0] = a;
}

/*
 * Encoding.
 */

/* Counts entries, v5 datagrams and records, other bytes; -1 if malformed. */
static int
scan(const uint8_t *entries, size_t entries_len, struct layout *l)
{
	struct rcur	 r;
	const uint8_t	*h, *pl;
	uint64_t	 count = 0, n5 = 0, nrec = 0, other = 0;
	uint16_t	 len;
	unsigned int	 nr;

	rcur_init(&r, entries, entries_len);
	while (r.left > 0) {
		h = rcur_take(&r, ENTRY_HDR);
		len = h != NULL ? be16(h + ENTRY_LEN_OFF) : 0;
		if ((pl = rcur_take(&r, len)) == NULL || len == 0)
			return -1;
		count++;
		if ((nr = v5_records(pl, len)) > 0) {
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

static void
addr_put(struct state *s, struct wcur *col, const uint8_t *p)
{
	uint32_t	 a = be32(p);

	for (unsigned int i = 0; i < s->naddr; i++) {
		if (s->addr[i] == a) {
			wcur_u8(&col[COL_ADDR], (uint8_t)i);
			addr_front(s, i);
			return;
		}
	}
	wcur_u8(&col[COL_ADDR], ADDR_NEW);
	wcur_bytes(&col[COL_NEWADDR], p, 4);
	addr_new(s, a);
}

/* The bytes of a record no other column holds. */
static int
rest_same(const uint8_t *r, const uint8_t *p)
{
	return memcmp(r + R_NEXTHOP, p + R_NEXTHOP, 8) == 0 &&
	    r[R_PAD1] == p[R_PAD1] && r[R_TOS] == p[R_TOS] &&
	    memcmp(r + R_SRCAS, p + R_SRCAS, 8) == 0;
}

static void
rec_put(struct state *s, struct wcur *col, const uint8_t *r)
{
	const uint8_t	*p = s->rec;
	uint32_t	 first = be32(r + R_FIRST);
	uint8_t		 op = 0;

	if (memcmp(r + R_SRCADDR, p + R_DSTADDR, 4) == 0 &&
	    memcmp(r + R_DSTADDR, p + R_SRCADDR, 4) == 0 &&
	    memcmp(r + R_SRCPORT, p + R_DSTPORT, 2) == 0 &&
	    memcmp(r + R_DSTPORT, p + R_SRCPORT, 2) == 0 &&
	    r[R_PROT] == p[R_PROT])
		op |= OP_PAIR;
	if (memcmp(r + R_FIRST, p + R_FIRST, 8) == 0)
		op |= OP_TIMES;
	if (rest_same(r, p))
		op |= OP_SAME;

	wcur_u8(&col[COL_OP], op);
	wcur_u8(&col[COL_FLAGS], r[R_FLAGS]);
	if (!(op & OP_PAIR)) {
		addr_put(s, col, r + R_SRCADDR);
		addr_put(s, col, r + R_DSTADDR);
		wcur_bytes(&col[COL_PORT], r + R_SRCPORT, 4);
		wcur_u8(&col[COL_PROTO], r[R_PROT]);
	}
	if (!(op & OP_TIMES)) {
		put_varint(&col[COL_FIRST], zz32(first - be32(p + R_FIRST)));
		put_varint(&col[COL_DUR], be32(r + R_LAST) - first);
	}
	put_varint(&col[COL_PKTS], be32(r + R_PKTS));
	put_varint(&col[COL_OCTS], be32(r + R_OCTS));
	if (!(op & OP_SAME)) {
		wcur_bytes(&col[COL_REST], r + R_NEXTHOP, 8);
		wcur_u8(&col[COL_REST], r[R_PAD1]);
		wcur_u8(&col[COL_REST], r[R_TOS]);
		wcur_bytes(&col[COL_REST], r + R_SRCAS, 8);
	}
	memcpy(s->rec, r, V5_REC);
}

/* Entry header and, for a v5 datagram, its header and records. */
static void
entry_put(struct state *s, struct wcur *col, const uint8_t *e,
    unsigned int nr)
{
	const uint8_t	*pl = e + ENTRY_HDR;
	const uint8_t	*id = e + EXP_ID_OFF;
	struct exporter	*x = NULL;
	uint64_t	 recv = be64(e);
	uint32_t	 up, secs, seq;
	unsigned int	 slot;

	for (slot = 0; slot < s->nexp; slot++)
		if (memcmp(s->exp[slot].id, id, EXP_ID) == 0)
			break;
	if (slot < s->nexp)
		x = exp_front(s, slot);
	else {
		slot = EXP_NEW;
		x = exp_new(s, id);
		wcur_bytes(&col[COL_EXP], id, EXP_ID);
	}
	wcur_u8(&col[COL_ENT], (uint8_t)(slot | (nr > 0 ? ENT_V5 : 0)));
	put_varint(&col[COL_RECV], zz64(recv - s->recv_us));
	s->recv_us = recv;
	if (nr == 0) {
		wcur_bytes(&col[COL_LEN], e + ENTRY_LEN_OFF, 2);
		return;
	}

	up = be32(pl + V5_UPTIME);
	secs = be32(pl + V5_SECS);
	seq = be32(pl + V5_SEQ);
	wcur_u8(&col[COL_V5HDR], (uint8_t)nr);
	wcur_bytes(&col[COL_V5HDR], pl + V5_NSECS, 4);
	wcur_bytes(&col[COL_V5HDR], pl + V5_ENGINE, 4);
	put_varint(&col[COL_UPTIME], zz32(up - x->uptime));
	put_varint(&col[COL_SECS], zz32(secs - x->secs));
	put_varint(&col[COL_SEQ], zz32(seq - x->next_seq));
	x->uptime = up;
	x->secs = secs;
	x->next_seq = seq + nr;
	for (unsigned int j = 0; j < nr; j++)
		rec_put(s, col, pl + V5_HDR + (size_t)j * V5_REC);
}

/* The fixed fields and the column length table. */
static int
header_put(uint8_t *out, const struct layout *l, const uint8_t *health)
{
	struct wcur	 w;

	wcur_init(&w, out, l->off[0]);
	wcur_u8(&w, NFPACK3_VERSION);
	wcur_u32(&w, l->health_len);
	wcur_bytes(&w, health, l->health_len);
	wcur_u32(&w, l->count);
	wcur_u32(&w, l->n5);
	wcur_u32(&w, l->nrec);
	wcur_u32(&w, l->other_len);
	for (size_t i = 0; i < NCOL; i++)
		wcur_u32(&w, l->len[i]);
	return w.err || w.left != 0 ? -1 : 0;
}

int
nfpack3_encode(const uint8_t *health, size_t health_len,
    const uint8_t *entries, size_t entries_len, uint8_t *out, size_t outlen,
    size_t *used)
{
	struct layout	 l, fin;
	struct state	 s;
	struct wcur	 col[NCOL];
	size_t		 ko = 0, pos;
	uint16_t	 len = 0;

	memset(&l, 0, sizeof(l));
	memset(&s, 0, sizeof(s));
	if (health_len > UINT32_MAX || entries_len > UINT32_MAX ||
	    (health_len > 0 && health == NULL) ||
	    (entries_len > 0 && entries == NULL) || out == NULL)
		return -1;
	l.health_len = (uint32_t)health_len;
	if (scan(entries, entries_len, &l) == -1)
		return -1;
	for (size_t i = 0; i < NCOL; i++) {
		uint64_t w = (uint64_t)col_worst[i].entry * l.count +
		    (uint64_t)col_worst[i].other * (l.count - l.n5) +
		    (uint64_t)col_worst[i].v5 * l.n5 +
		    (uint64_t)col_worst[i].rec * l.nrec;

		if (w > UINT32_MAX)
			return -1;
		l.len[i] = (uint32_t)w;
	}
	if (place(&l) == -1 || l.stream_len > outlen)
		return -1;

	for (size_t i = 0; i < NCOL; i++)
		wcur_init(&col[i], out + l.off[i], l.len[i]);
	/* The scan proved every length: the walk reads within entries. */
	for (size_t off = 0; off < entries_len; off += ENTRY_HDR + len) {
		const uint8_t	*e = entries + off;
		unsigned int	 nr;

		len = be16(e + ENTRY_LEN_OFF);
		nr = v5_records(e + ENTRY_HDR, len);
		entry_put(&s, col, e, nr);
		if (nr == 0) {
			memcpy(out + l.other + ko, e + ENTRY_HDR, len);
			ko += len;
		}
	}
	if (ko != l.other_len)
		return -1;

	/* Pack the columns together: each moves down, never up. */
	fin = l;
	for (size_t i = 0; i < NCOL; i++) {
		if (col[i].err)
			return -1;
		fin.len[i] = (uint32_t)(l.len[i] - col[i].left);
	}
	if (place(&fin) == -1)
		return -1;
	pos = fin.off[0];
	for (size_t i = 0; i < NCOL; i++) {
		memmove(out + pos, out + l.off[i], fin.len[i]);
		pos += fin.len[i];
	}
	memmove(out + pos, out + l.other, l.other_len);
	if (header_put(out, &fin, health) == -1)
		return -1;
	*used = fin.stream_len;
	return 0;
}

/*
 * Decoding.
 */

/* Reads the fixed fields and places the sections; -1 if they disagree. */
static int
read_layout(const uint8_t *in, size_t inlen, struct layout *l)
{
	struct rcur	 r;

	memset(l, 0, sizeof(*l));
	rcur_init(&r, in, inlen);
	if (rcur_u8(&r) != NFPACK3_VERSION)
		return -1;
	l->health_len = rcur_u32(&r);
	(void)rcur_take(&r, l->health_len);
	l->count = rcur_u32(&r);
	l->n5 = rcur_u32(&r);
	l->nrec = rcur_u32(&r);
	l->other_len = rcur_u32(&r);
	for (size_t i = 0; i < NCOL; i++)
		l->len[i] = rcur_u32(&r);
	if (r.err || l->n5 > l->count ||
	    (uint64_t)l->nrec > (uint64_t)l->n5 * V5_MAXREC ||
	    l->nrec < l->n5 || l->other_len < l->count - l->n5)
		return -1;
	if (place(l) == -1 || l->stream_len != inlen)
		return -1;
	return 0;
}

static int
addr_get(struct state *s, struct rcur *col, uint8_t *p)
{
	uint8_t		 k = rcur_u8(&col[COL_ADDR]);
	const uint8_t	*a;

	if (col[COL_ADDR].err)
		return -1;
	if (k == ADDR_NEW) {
		if ((a = rcur_take(&col[COL_NEWADDR], 4)) == NULL)
			return -1;
		addr_new(s, be32(a));
	} else if (k < s->naddr)
		addr_front(s, k);
	else
		return -1;
	put_be32(p, s->addr[0]);
	return 0;
}

/* One record into r[0 .. 48), against the previous one. */
static int
rec_get(struct state *s, struct rcur *col, uint8_t *r)
{
	const uint8_t	*p = s->rec, *b;
	uint32_t	 first, v;
	uint8_t		 op;

	op = rcur_u8(&col[COL_OP]);
	r[R_FLAGS] = rcur_u8(&col[COL_FLAGS]);
	if (col[COL_OP].err || col[COL_FLAGS].err || (op & OP_RESERVED))
		return -1;
	if (op & OP_PAIR) {
		memcpy(r + R_SRCADDR, p + R_DSTADDR, 4);
		memcpy(r + R_DSTADDR, p + R_SRCADDR, 4);
		memcpy(r + R_SRCPORT, p + R_DSTPORT, 2);
		memcpy(r + R_DSTPORT, p + R_SRCPORT, 2);
		r[R_PROT] = p[R_PROT];
	} else {
		if (addr_get(s, col, r + R_SRCADDR) == -1 ||
		    addr_get(s, col, r + R_DSTADDR) == -1 ||
		    (b = rcur_take(&col[COL_PORT], 4)) == NULL)
			return -1;
		memcpy(r + R_SRCPORT, b, 4);
		r[R_PROT] = rcur_u8(&col[COL_PROTO]);
		if (col[COL_PROTO].err)
			return -1;
	}
	if (op & OP_TIMES)
		memcpy(r + R_FIRST, p + R_FIRST, 8);
	else {
		if (get_varint32(&col[COL_FIRST], &v) == -1)
			return -1;
		first = be32(p + R_FIRST) + unzz32(v);
		if (get_varint32(&col[COL_DUR], &v) == -1)
			return -1;
		put_be32(r + R_FIRST, first);
		put_be32(r + R_LAST, first + v);
	}
	if (get_varint32(&col[COL_PKTS], &v) == -1)
		return -1;
	put_be32(r + R_PKTS, v);
	if (get_varint32(&col[COL_OCTS], &v) == -1)
		return -1;
	put_be32(r + R_OCTS, v);
	if (op & OP_SAME) {
		memcpy(r + R_NEXTHOP, p + R_NEXTHOP, 8);
		r[R_PAD1] = p[R_PAD1];
		r[R_TOS] = p[R_TOS];
		memcpy(r + R_SRCAS, p + R_SRCAS, 8);
	} else {
		if ((b = rcur_take(&col[COL_REST], REST_LEN)) == NULL)
			return -1;
		memcpy(r + R_NEXTHOP, b, 8);
		r[R_PAD1] = b[8];
		r[R_TOS] = b[9];
		memcpy(r + R_SRCAS, b + 10, 8);
	}
	memcpy(s->rec, r, V5_REC);
	return 0;
}

/* Where decoding stands: sections used so far, and the output. */
struct walk {
	const struct layout	*l;
	const uint8_t		*other;
	size_t			 k5, kr, ko;
	struct wcur		 w;
};

/* A v5 datagram: its header from the columns, then its records. */
static int
v5_get(struct state *s, struct rcur *col, struct exporter *x,
    const uint8_t *hc, struct walk *wk)
{
	uint8_t		 h[V5_HDR], r[V5_REC];
	uint32_t	 up, secs, seq, nr = hc[0];

	if (get_varint32(&col[COL_UPTIME], &up) == -1 ||
	    get_varint32(&col[COL_SECS], &secs) == -1 ||
	    get_varint32(&col[COL_SEQ], &seq) == -1)
		return -1;
	x->uptime += unzz32(up);
	x->secs += unzz32(secs);
	x->next_seq += unzz32(seq);
	h[0] = 0;
	h[1] = 5;
	h[2] = 0;
	h[3] = (uint8_t)nr;
	put_be32(h + V5_UPTIME, x->uptime);
	put_be32(h + V5_SECS, x->secs);
	memcpy(h + V5_NSECS, hc + 1, 4);
	put_be32(h + V5_SEQ, x->next_seq);
	memcpy(h + V5_ENGINE, hc + 5, 4);
	x->next_seq += nr;
	wcur_bytes(&wk->w, h, V5_HDR);
	for (uint32_t j = 0; j < nr; j++) {
		if (rec_get(s, col, r) == -1)
			return -1;
		wcur_bytes(&wk->w, r, V5_REC);
	}
	wk->k5++;
	wk->kr += nr;
	return wk->w.err ? -1 : 0;
}

static int
entry_get(struct state *s, struct rcur *col, struct walk *wk)
{
	uint8_t			 ent, hdr[ENTRY_HDR];
	const uint8_t		*id, *hc = NULL;
	struct exporter		*x;
	uint64_t		 d;
	unsigned int		 slot, nr = 0;
	uint16_t		 len;

	ent = rcur_u8(&col[COL_ENT]);
	if (col[COL_ENT].err || (ent & ENT_RESERVED))
		return -1;
	slot = ent & ENT_SLOT;
	if (slot == EXP_NEW) {
		if ((id = rcur_take(&col[COL_EXP], EXP_ID)) == NULL)
			return -1;
		x = exp_new(s, id);
	} else if (slot < s->nexp)
		x = exp_front(s, slot);
	else
		return -1;
	if (get_varint(&col[COL_RECV], 64, &d) == -1)
		return -1;
	s->recv_us += unzz64(d);

	if (ent & ENT_V5) {
		if ((hc = rcur_take(&col[COL_V5HDR], V5_HDR_COL)) == NULL)
			return -1;
		nr = hc[0];
		if (nr == 0 || nr > V5_MAXREC || wk->k5 >= wk->l->n5 ||
		    nr > wk->l->nrec - wk->kr)
			return -1;
		len = (uint16_t)(V5_HDR + V5_REC * nr);
	} else {
		len = rcur_u16(&col[COL_LEN]);
		if (col[COL_LEN].err || len == 0 ||
		    len > wk->l->other_len - wk->ko)
			return -1;
	}

	hdr[0] = (uint8_t)(s->recv_us >> 56);
	hdr[1] = (uint8_t)(s->recv_us >> 48);
	hdr[2] = (uint8_t)(s->recv_us >> 40);
	hdr[3] = (uint8_t)(s->recv_us >> 32);
	put_be32(hdr + 4, (uint32_t)s->recv_us);
	memcpy(hdr + EXP_ID_OFF, x->id, EXP_ID);
	hdr[ENTRY_LEN_OFF] = (uint8_t)(len >> 8);
	hdr[ENTRY_LEN_OFF + 1] = (uint8_t)len;
	wcur_bytes(&wk->w, hdr, ENTRY_HDR);
	if (hc != NULL)
		return v5_get(s, col, x, hc, wk);
	wcur_bytes(&wk->w, wk->other + wk->ko, len);
	wk->ko += len;
	return wk->w.err ? -1 : 0;
}

int
nfpack3_decode(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen,
    size_t *used)
{
	struct layout	 l;
	struct state	 s;
	struct rcur	 col[NCOL];
	struct walk	 wk;

	memset(&s, 0, sizeof(s));
	if (in == NULL || out == NULL || read_layout(in, inlen, &l) == -1 ||
	    l.raw_len > outlen)
		return -1;
	for (size_t i = 0; i < NCOL; i++)
		rcur_init(&col[i], in + l.off[i], l.len[i]);
	memset(&wk, 0, sizeof(wk));
	wk.l = &l;
	wk.other = in + l.other;
	wcur_init(&wk.w, out, l.raw_len);
	wcur_u32(&wk.w, l.health_len);
	wcur_bytes(&wk.w, in + l.health, l.health_len);
	for (size_t i = 0; i < l.count; i++)
		if (entry_get(&s, col, &wk) == -1)
			return -1;
	/* Every section used up, and the content exactly as long as said. */
	for (size_t i = 0; i < NCOL; i++)
		if (col[i].err || col[i].left != 0)
			return -1;
	if (wk.w.err || wk.w.left != 0 || wk.k5 != l.n5 || wk.kr != l.nrec ||
	    wk.ko != l.other_len)
		return -1;
	*used = l.raw_len;
	return 0;
}
