/*
 * test_seqtrack.c: per-exporter sequence accounting (client/seqtrack.h).
 *
 * Export datagrams are built here, classified with nf_check() as the
 * receive path does, and fed to a tracker; the events and totals must say
 * exactly what was lost, reordered or restarted.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "check.h"
#include "nf.h"
#include "seqtrack.h"

struct dg {
	uint8_t	 b[2048];
	size_t	 len;
	size_t	 set;
};

static void
u8(struct dg *d, uint8_t v)
{
	d->b[d->len++] = v;
}

static void
u16(struct dg *d, uint16_t v)
{
	put_be16(d->b + d->len, v);
	d->len += 2;
}

static void
u32(struct dg *d, uint32_t v)
{
	put_be32(d->b + d->len, v);
	d->len += 4;
}

static void
v5(struct dg *d, uint32_t seq, uint16_t count)
{
	memset(d, 0, sizeof(*d));
	u16(d, 5);
	u16(d, count);
	u32(d, 1000);
	u32(d, 1700000000);
	u32(d, 0);
	u32(d, seq);
	u8(d, 1);		/* engine type */
	u8(d, 2);		/* engine id */
	u16(d, 0);
	d->len += (size_t)count * 48;
}

static void
v9(struct dg *d, uint32_t seq, uint32_t source_id)
{
	memset(d, 0, sizeof(*d));
	u16(d, 9);
	u16(d, 1);
	u32(d, 1000);
	u32(d, 1700000000);
	u32(d, seq);
	u32(d, source_id);
	u16(d, 256);		/* one data flowset of 8 bytes */
	u16(d, 12);
	u32(d, 1);
	u32(d, 2);
}

static void
ipfix(struct dg *d, uint32_t seq)
{
	memset(d, 0, sizeof(*d));
	u16(d, 10);
	u16(d, 0);
	u32(d, 1700000000);
	u32(d, seq);
	u32(d, 7);		/* observation domain */
}

static void
set_end(struct dg *d)
{
	if (d->set != 0)
		put_be16(d->b + d->set + 2, (uint16_t)(d->len - d->set));
	d->set = 0;
}

static void
set(struct dg *d, uint16_t id)
{
	set_end(d);
	d->set = d->len;
	u16(d, id);
	u16(d, 0);
}

static void
msg_end(struct dg *d)
{
	set_end(d);
	put_be16(d->b + 2, (uint16_t)d->len);
}

/* Template 256: two fixed fields of 4 bytes; 257: 4 bytes + varlen. */
static void
templates(struct dg *d)
{
	set(d, 2);
	u16(d, 256);
	u16(d, 2);
	u16(d, 8);
	u16(d, 4);
	u16(d, 12);
	u16(d, 4);
	u16(d, 257);
	u16(d, 2);
	u16(d, 8);
	u16(d, 4);
	u16(d, 0x8000 | 82);	/* enterprise, variable length */
	u16(d, 65535);
	u32(d, 29305);
}

static void
fixed_records(struct dg *d, int n)
{
	set(d, 256);
	for (int i = 0; i < n; i++) {
		u32(d, (uint32_t)i);
		u32(d, (uint32_t)i);
	}
}

static struct wire_entry
from(const struct dg *d, uint8_t host, uint16_t port)
{
	struct wire_entry	 e;

	memset(&e, 0, sizeof(e));
	e.family = 4;
	e.addr[0] = 10;
	e.addr[3] = host;
	e.src_port = port;
	e.payload = d->b;
	e.len = (uint16_t)d->len;
	return e;
}

static enum seqtrack_event
feed(struct seqtrack *st, const struct dg *d, uint8_t host, uint16_t port,
    struct seqtrack_result *r)
{
	struct wire_entry	 e = from(d, host, port);
	struct nf_info		 info;

	CHECK(nf_check(d->b, d->len, &info) == NF_OK);
	seqtrack_observe(st, &e, &info, r);
	return r->ev;
}

static struct seqtrack_counts
counts(struct seqtrack *st)
{
	struct seqtrack_counts	 c;

	seqtrack_get(st, &c);
	return c;
}

static void
test_v5(void)
{
	struct seqtrack		*st = seqtrack_new(0);
	struct seqtrack_result	 r;
	struct dg		 d;

	v5(&d, 1000, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_NEW);
	v5(&d, 1010, 20);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_OK);
	v5(&d, 1050, 5);			/* 1030..1049 missing */
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_GAP);
	CHECK_EQ_U64(r.expected, 1030);
	CHECK_EQ_U64(r.lost, 20);
	CHECK(!r.unit_packets);
	CHECK_EQ_U64(counts(st).lost_records, 20);
	v5(&d, 1030, 12);			/* part of it comes late */
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_records, 8);
	CHECK_EQ_U64(counts(st).reordered, 1);
	v5(&d, 1055, 1);			/* still in order after it */
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_OK);
	v5(&d, 1055, 1);			/* a repeat: nothing back */
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_records, 8);
	CHECK_EQ_U64(counts(st).gaps, 1);
	/* Restart at small numbers: one late, then a reset; in order after. */
	v5(&d, 0, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_LATE);
	v5(&d, 10, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_RESET);
	v5(&d, 20, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_OK);
	CHECK_EQ_U64(counts(st).lost_records, 8);
	/* Two reordered datagrams inside a gap are no restart. */
	v5(&d, 60, 10);				/* 30..59 lost */
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_GAP);
	v5(&d, 30, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_LATE);
	v5(&d, 40, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_records, 8 + 10);
	v5(&d, 70, 10);
	CHECK(feed(st, &d, 1, 2055, &r) == SEQTRACK_OK);
	/* Wrap-around of the 32-bit counter is no gap. */
	v5(&d, 0xFFFFFFF0u, 30);
	CHECK(feed(st, &d, 2, 2055, &r) == SEQTRACK_NEW);
	v5(&d, 14, 1);
	CHECK(feed(st, &d, 2, 2055, &r) == SEQTRACK_OK);
	seqtrack_free(st);
}

static void
test_v9(void)
{
	struct seqtrack		*st = seqtrack_new(0);
	struct seqtrack_result	 r;
	struct dg		 d;

	v9(&d, 5005, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_NEW);
	v9(&d, 5006, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_OK);
	v9(&d, 5009, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_GAP);
	CHECK_EQ_U64(r.lost, 2);
	CHECK(r.unit_packets);
	CHECK_EQ_U64(counts(st).lost_packets, 2);
	CHECK_EQ_U64(counts(st).lost_records, 0);
	v9(&d, 5007, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_packets, 1);
	/* A repeat inside the gap is taken back again: an estimate. */
	v9(&d, 5007, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_packets, 0);
	/* Another source id is another stream. */
	v9(&d, 500, 2);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_NEW);
	/* A restart far back, and a jump far ahead: resets, not loss. */
	v9(&d, 0, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_RESET);
	v9(&d, 1, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_OK);
	v9(&d, 1 + 2 * SEQTRACK_GAP_MAX_V9, 1);
	CHECK(feed(st, &d, 1, 9995, &r) == SEQTRACK_RESET);
	CHECK_EQ_U64(counts(st).resets, 2);
	CHECK_EQ_U64(counts(st).lost_packets, 0);
	CHECK_EQ_U64(counts(st).exporters, 2);
	seqtrack_free(st);
}

static void
test_ipfix(void)
{
	struct seqtrack		*st = seqtrack_new(0);
	struct seqtrack_result	 r;
	struct dg		 d;

	/* Data before any template: its size is unknown, no gap judged. */
	ipfix(&d, 100);
	fixed_records(&d, 3);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_NEW);
	CHECK_EQ_U64(counts(st).uncounted, 1);
	ipfix(&d, 103);
	templates(&d);
	fixed_records(&d, 4);			/* 103..106 */
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);
	ipfix(&d, 107);
	fixed_records(&d, 2);
	set(&d, 257);				/* 2 variable-length records */
	u32(&d, 1);
	u8(&d, 3);
	u8(&d, 'a');
	u8(&d, 'b');
	u8(&d, 'c');
	u32(&d, 2);
	u8(&d, 255);				/* 3-byte length form */
	u16(&d, 2);
	u8(&d, 'x');
	u8(&d, 'y');
	u8(&d, 0);				/* padding */
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);	/* 107..110 */
	ipfix(&d, 111);				/* template-only: 0 records */
	templates(&d);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);
	ipfix(&d, 116);				/* 111..115 lost */
	fixed_records(&d, 1);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_GAP);
	CHECK_EQ_U64(r.lost, 5);
	CHECK_EQ_U64(counts(st).lost_records, 5);
	ipfix(&d, 111);				/* 3 of them late */
	fixed_records(&d, 3);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).lost_records, 2);
	ipfix(&d, 117);
	fixed_records(&d, 1);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);

	/* Withdrawn: its data is of unknown size again. */
	ipfix(&d, 118);
	set(&d, 2);
	u16(&d, 256);
	u16(&d, 0);
	fixed_records(&d, 2);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);
	CHECK_EQ_U64(counts(st).uncounted, 2);
	/* Not judged after an unknown size; backwards is still seen. */
	ipfix(&d, 500);
	fixed_records(&d, 1);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_OK);
	ipfix(&d, 400);
	msg_end(&d);
	CHECK(feed(st, &d, 1, 4739, &r) == SEQTRACK_LATE);
	CHECK_EQ_U64(counts(st).gaps, 1);
	seqtrack_free(st);
}

/* Options templates count too; broken records make the size unknown. */
static void
test_ipfix_options_and_broken(void)
{
	struct seqtrack		*st = seqtrack_new(0);
	struct seqtrack_result	 r;
	struct dg		 d;

	ipfix(&d, 0);
	set(&d, 3);
	u16(&d, 300);
	u16(&d, 2);		/* fields */
	u16(&d, 1);		/* scope fields */
	u16(&d, 149);
	u16(&d, 4);
	u16(&d, 305);
	u16(&d, 4);
	set(&d, 300);
	for (int i = 0; i < 3; i++) {
		u32(&d, 1);
		u32(&d, 100);
	}
	msg_end(&d);
	CHECK(feed(st, &d, 3, 4739, &r) == SEQTRACK_NEW);
	ipfix(&d, 3);
	msg_end(&d);
	CHECK(feed(st, &d, 3, 4739, &r) == SEQTRACK_OK);
	CHECK_EQ_U64(counts(st).uncounted, 0);

	/* A variable-length record that runs past its set. */
	ipfix(&d, 3);
	templates(&d);
	set(&d, 257);
	u32(&d, 1);
	u8(&d, 200);
	u8(&d, 'a');
	msg_end(&d);
	CHECK(feed(st, &d, 3, 4739, &r) == SEQTRACK_OK);
	CHECK_EQ_U64(counts(st).uncounted, 1);
	/* Field count beyond the set: the template is not kept. */
	ipfix(&d, 3);
	set(&d, 2);
	u16(&d, 256);
	u16(&d, 40);
	u16(&d, 1);
	u16(&d, 4);
	fixed_records(&d, 1);
	msg_end(&d);
	CHECK(feed(st, &d, 3, 4739, &r) == SEQTRACK_OK);
	CHECK_EQ_U64(counts(st).uncounted, 2);
	seqtrack_free(st);
}

static void
test_bounded(void)
{
	struct seqtrack		*st = seqtrack_new(2);
	struct seqtrack_result	 r;
	struct dg		 d;

	v9(&d, 1, 1);
	CHECK(feed(st, &d, 1, 1, &r) == SEQTRACK_NEW);
	CHECK(feed(st, &d, 2, 1, &r) == SEQTRACK_NEW);
	v9(&d, 2, 1);
	CHECK(feed(st, &d, 1, 1, &r) == SEQTRACK_OK);	/* 1 is fresher */
	CHECK(feed(st, &d, 3, 1, &r) == SEQTRACK_NEW);	/* evicts 2 */
	CHECK_EQ_U64(counts(st).exporters, 2);
	v9(&d, 3, 1);
	CHECK(feed(st, &d, 1, 1, &r) == SEQTRACK_OK);
	CHECK(feed(st, &d, 2, 1, &r) == SEQTRACK_NEW);	/* forgotten */
	CHECK_EQ_U64(counts(st).exporters, 2);

	/* Many templates on one stream: no more are kept than allowed. */
	seqtrack_free(st);
	st = seqtrack_new(0);
	for (int k = 0; k < SEQTRACK_TEMPLATES_MAX + 8; k++) {
		ipfix(&d, 0);
		set(&d, 2);
		u16(&d, (uint16_t)(256 + k));
		u16(&d, 1);
		u16(&d, 8);
		u16(&d, 4);
		msg_end(&d);
		(void)feed(st, &d, 9, 9, &r);
	}
	ipfix(&d, 0);
	set(&d, (uint16_t)(256 + SEQTRACK_TEMPLATES_MAX + 7));
	u32(&d, 1);
	msg_end(&d);
	(void)feed(st, &d, 9, 9, &r);
	CHECK_EQ_U64(counts(st).uncounted, 1);
	seqtrack_free(st);
}

TEST_MAIN(test_v5, test_v9, test_ipfix, test_ipfix_options_and_broken,
    test_bounded)
