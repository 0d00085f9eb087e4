/*
 * test_template.c: the template cache, parser and template messages.
 *
 * Datagrams are built here field by field, run through template_plan()
 * (the planning half of template_send()), and the plan is checked: where
 * template messages were inserted and what bytes they hold.
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "check.h"
#include "nf.h"
#include "template.h"
#include "util.h"

#define S_NS		INT64_C(1000000000)
#define T0		(100 * S_NS)

/* ------------------------------------------------------------------ */
/* Building datagrams */

struct dg {
	uint8_t	 b[4096];
	size_t	 len;
	size_t	 set;		/* offset of the open set, 0 = none */
	int	 version;
	int	 records;
};

static void
dg_u16(struct dg *d, uint16_t v)
{
	put_be16(d->b + d->len, v);
	d->len += 2;
}

static void
dg_u32(struct dg *d, uint32_t v)
{
	put_be32(d->b + d->len, v);
	d->len += 4;
}

static void
dg_v9(struct dg *d, uint32_t seq, uint32_t source_id)
{
	memset(d, 0, sizeof(*d));
	d->version = 9;
	dg_u16(d, 9);
	dg_u16(d, 0);			/* count, set by dg_end */
	dg_u32(d, 123456);		/* sys_uptime */
	dg_u32(d, 1700000000);		/* unix_secs */
	dg_u32(d, seq);
	dg_u32(d, source_id);
}

static void
dg_ipfix(struct dg *d, uint32_t seq, uint32_t domain)
{
	memset(d, 0, sizeof(*d));
	d->version = 10;
	dg_u16(d, 10);
	dg_u16(d, 0);			/* length, set by dg_end */
	dg_u32(d, 1700000000);
	dg_u32(d, seq);
	dg_u32(d, domain);
}

static void
dg_close_set(struct dg *d)
{
	if (d->set == 0)
		return;
	put_be16(d->b + d->set + 2, (uint16_t)(d->len - d->set));
	d->set = 0;
}

static void
dg_set(struct dg *d, uint16_t id)
{
	dg_close_set(d);
	d->set = d->len;
	dg_u16(d, id);
	dg_u16(d, 0);
}

/* A template record with `n` fields of type 1000+i, length 4. */
static void
dg_template(struct dg *d, uint16_t id, uint16_t n)
{
	dg_u16(d, id);
	dg_u16(d, n);
	for (uint16_t i = 0; i < n; i++) {
		dg_u16(d, (uint16_t)(1 + i));
		dg_u16(d, 4);
	}
	d->records++;
}

/* An options template record: v9 byte lengths, IPFIX field counts. */
static void
dg_options(struct dg *d, uint16_t id)
{
	dg_u16(d, id);
	if (d->version == 9) {
		dg_u16(d, 4);		/* scope length: one field */
		dg_u16(d, 8);		/* option length: two fields */
	} else {
		dg_u16(d, 3);		/* field count */
		dg_u16(d, 1);		/* scope field count */
	}
	dg_u16(d, 1);			/* system / meteringProcessId */
	dg_u16(d, 4);
	dg_u16(d, 34);			/* sampling interval */
	dg_u16(d, 4);
	dg_u16(d, 35);			/* sampling algorithm */
	dg_u16(d, 4);
	d->records++;
}

/* One data record of 4 bytes per field. */
static void
dg_data(struct dg *d, uint16_t n, uint32_t v)
{
	for (uint16_t i = 0; i < n; i++)
		dg_u32(d, v + i);
	d->records++;
}

static void
dg_end(struct dg *d)
{
	dg_close_set(d);
	if (d->version == 9)
		put_be16(d->b + 2, (uint16_t)d->records);
	else
		put_be16(d->b + 2, (uint16_t)d->len);
}

static struct wire_entry
entry(const struct dg *d, uint8_t last_octet, uint16_t port)
{
	struct wire_entry	 e;

	memset(&e, 0, sizeof(e));
	e.family = 4;
	e.addr[0] = 192;
	e.addr[1] = 0;
	e.addr[2] = 2;
	e.addr[3] = last_octet;
	e.src_port = port;
	e.dst_port = 2055;
	e.recv_us = 42;
	e.len = (uint16_t)d->len;
	e.payload = d->b;
	return e;
}

/* ------------------------------------------------------------------ */
/* Plans */

struct plan {
	struct wire_entry	*e;
	size_t			 n;
	uint8_t			*scratch;
};

static void
plan(struct template_cache *tc, const char *client,
    const struct wire_entry *e, size_t n, int64_t now, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	CHECK(template_plan(tc, client, e, n, now, &p->e, &p->n,
	    &p->scratch) == 0);
}

static void
plan_free(struct plan *p)
{
	free(p->e);
	free(p->scratch);
	memset(p, 0, sizeof(*p));
}

static struct template_cache *
cache(uint64_t refresh_s, const char *dir)
{
	struct template_params	 tp;
	char			 err[256];
	struct template_cache	*tc;

	memset(&tp, 0, sizeof(tp));
	tp.refresh_s = refresh_s;
	tp.state_dir = dir;
	tc = template_open(&tp, err, sizeof(err));
	CHECK(tc != NULL);
	return tc;
}

static struct template_counters
counters(struct template_cache *tc)
{
	struct template_counters c;

	template_get_counters(tc, &c);
	return c;
}

/* 1 if `needle` occurs in hay. */
static int
contains(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests */

static void
test_v9_refresh(void)
{
	struct template_cache	*tc = cache(60, NULL);
	struct dg		 t, d;
	struct wire_entry	 e[2];
	struct plan		 p;
	struct nf_info		 info;
	struct rcur		 r;
	uint16_t		 fsid, flen;

	/* Templates and data in one datagram; data only in the next. */
	dg_v9(&t, 500, 77);
	dg_set(&t, 0);
	dg_template(&t, 256, 3);
	dg_template(&t, 300, 2);
	dg_set(&t, 1);
	dg_options(&t, 257);
	dg_set(&t, 256);
	dg_data(&t, 3, 9);
	dg_end(&t);
	dg_v9(&d, 501, 77);
	dg_set(&d, 256);
	dg_data(&d, 3, 10);
	dg_end(&d);
	CHECK(nf_check(t.b, t.len, NULL) == NF_OK);
	e[0] = entry(&t, 1, 4000);
	e[1] = entry(&d, 1, 4000);

	/* A new stream: its own templates just went out, nothing added. */
	plan(tc, "kit-1", e, 2, T0, &p);
	CHECK_EQ_U64(p.n, 2);
	CHECK(p.e[0].payload == t.b && p.e[1].payload == d.b);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 3);
	CHECK_EQ_U64(counters(tc).streams, 1);

	/* Before the interval: still nothing. */
	plan(tc, "kit-1", &e[1], 1, T0 + 59 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);

	/* After it: one template packet ahead of the data, once a batch. */
	plan(tc, "kit-1", e + 1, 1, T0 + 60 * S_NS, &p);
	CHECK_EQ_U64(p.n, 2);
	CHECK(p.e[1].payload == d.b);
	CHECK_EQ_U64(counters(tc).messages, 1);
	CHECK(nf_check(p.e[0].payload, p.e[0].len, &info) == NF_OK);
	CHECK_EQ_U64(info.version, 9);
	CHECK_EQ_U64(info.domain, 77);
	CHECK_EQ_U64(info.records, 3);		/* count: template records */
	CHECK_EQ_U64(info.seq, 500);		/* the previous packet's */
	CHECK(info.has_templates);
	CHECK(memcmp(p.e[0].payload + 4, d.b + 4, 8) == 0); /* times */
	CHECK(p.e[0].family == 4 && p.e[0].src_port == 4000 &&
	    p.e[0].addr[3] == 1 && p.e[0].recv_us == 42);
	/* Flowset 0 with both templates as sent, then flowset 1, padded. */
	rcur_init(&r, p.e[0].payload + 20, p.e[0].len - 20);
	fsid = rcur_u16(&r);
	flen = rcur_u16(&r);
	CHECK_EQ_U64(fsid, 0);
	CHECK_EQ_U64(flen, 4 + (4 + 3 * 4) + (4 + 2 * 4));
	CHECK(memcmp(r.p, t.b + 24, flen - 4) == 0);
	(void)rcur_take(&r, flen - 4);
	fsid = rcur_u16(&r);
	flen = rcur_u16(&r);
	CHECK_EQ_U64(fsid, 1);
	CHECK_EQ_U64(flen, 4 + 18 + 2);
	CHECK_EQ_U64(flen % 4, 0);
	(void)rcur_take(&r, flen - 4);
	CHECK(!r.err && r.left == 0);
	plan_free(&p);

	/* Sent now, so not again at once. */
	plan(tc, "kit-1", e + 1, 1, T0 + 61 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	template_close(tc);
}

static void
test_ipfix_withdraw(void)
{
	struct template_cache	*tc = cache(10, NULL);
	struct dg		 t, w, d;
	struct wire_entry	 e[3];
	struct plan		 p;
	struct nf_info		 info;

	dg_ipfix(&t, 1000, 5);
	dg_set(&t, 2);
	dg_template(&t, 256, 2);
	dg_template(&t, 258, 4);
	dg_set(&t, 3);
	dg_options(&t, 257);
	dg_end(&t);
	CHECK(nf_check(t.b, t.len, NULL) == NF_OK);
	e[0] = entry(&t, 2, 4739);
	plan(tc, "kit-1", e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 3);

	/* Withdraw 258 alone; then the data message gets 256 and 257. */
	dg_ipfix(&w, 1000, 5);
	dg_set(&w, 2);
	dg_u16(&w, 258);
	dg_u16(&w, 0);
	dg_end(&w);
	dg_ipfix(&d, 1003, 5);
	dg_set(&d, 256);
	dg_data(&d, 2, 1);
	dg_end(&d);
	e[1] = entry(&w, 2, 4739);
	e[2] = entry(&d, 2, 4739);
	plan(tc, "kit-1", e + 1, 2, T0 + 10 * S_NS, &p);
	/* The withdrawal message itself came first and got the refresh. */
	CHECK_EQ_U64(p.n, 3);
	CHECK(nf_check(p.e[0].payload, p.e[0].len, &info) == NF_OK);
	CHECK_EQ_U64(info.version, 10);
	CHECK_EQ_U64(info.seq, 1000);		/* no data records: kept */
	CHECK_EQ_U64(info.domain, 5);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 2);
	CHECK_EQ_U64(counters(tc).withdrawn, 1);

	plan(tc, "kit-1", e + 2, 1, T0 + 20 * S_NS, &p);
	CHECK_EQ_U64(p.n, 2);
	CHECK(nf_check(p.e[0].payload, p.e[0].len, &info) == NF_OK);
	CHECK_EQ_U64(info.seq, 1003);		/* the data message's number */
	CHECK_EQ_U64(p.e[0].len, 16 + 4 + (4 + 2 * 4) + 4 + 18);
	CHECK(contains(p.e[0].payload, p.e[0].len, t.b + 20, 12));
	plan_free(&p);

	/* All-withdrawal of templates (id 2 in set 2) keeps options. */
	dg_ipfix(&w, 1003, 5);
	dg_set(&w, 2);
	dg_u16(&w, 2);
	dg_u16(&w, 0);
	dg_end(&w);
	e[1] = entry(&w, 2, 4739);
	plan(tc, "kit-1", e + 1, 1, T0 + 21 * S_NS, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 1);
	/* And of options templates (id 3 in set 3). */
	dg_ipfix(&w, 1003, 5);
	dg_set(&w, 3);
	dg_u16(&w, 3);
	dg_u16(&w, 0);
	dg_end(&w);
	e[1] = entry(&w, 2, 4739);
	plan(tc, "kit-1", e + 1, 1, T0 + 22 * S_NS, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 0);
	/* Nothing left to send ahead. */
	plan(tc, "kit-1", e + 2, 1, T0 + 99 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	template_close(tc);
}

/* Streams are told apart by client, address, port, version and domain. */
static void
test_stream_keys(void)
{
	struct template_cache	*tc = cache(10, NULL);
	struct dg		 t, d;
	struct wire_entry	 e;
	struct plan		 p;

	dg_ipfix(&t, 1, 5);
	dg_set(&t, 2);
	dg_template(&t, 256, 1);
	dg_end(&t);
	e = entry(&t, 3, 9000);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);

	dg_ipfix(&d, 2, 5);
	dg_set(&d, 256);
	dg_data(&d, 1, 1);
	dg_end(&d);
	e = entry(&d, 3, 9000);
	plan(tc, "kit-2", &e, 1, T0 + 99 * S_NS, &p);	/* other client */
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	e = entry(&d, 4, 9000);				/* other address */
	plan(tc, "kit-1", &e, 1, T0 + 99 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	e = entry(&d, 3, 9001);				/* other port */
	plan(tc, "kit-1", &e, 1, T0 + 99 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	dg_ipfix(&d, 2, 6);				/* other domain */
	dg_set(&d, 256);
	dg_data(&d, 1, 1);
	dg_end(&d);
	e = entry(&d, 3, 9000);
	plan(tc, "kit-1", &e, 1, T0 + 99 * S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	dg_ipfix(&d, 2, 5);				/* the stream */
	dg_set(&d, 256);
	dg_data(&d, 1, 1);
	dg_end(&d);
	e = entry(&d, 3, 9000);
	plan(tc, "kit-1", &e, 1, T0 + 99 * S_NS, &p);
	CHECK_EQ_U64(p.n, 2);
	plan_free(&p);
	template_close(tc);
}

/* A repeated identical template changes nothing; a new one replaces. */
static void
test_replace(void)
{
	struct template_cache	*tc = cache(10, NULL);
	struct dg		 t;
	struct wire_entry	 e;
	struct plan		 p;

	for (int i = 0; i < 3; i++) {
		dg_v9(&t, (uint32_t)i, 1);
		dg_set(&t, 0);
		dg_template(&t, 256, 2);
		dg_end(&t);
		e = entry(&t, 1, 1);
		plan(tc, "kit-1", &e, 1, T0, &p);
		plan_free(&p);
	}
	CHECK_EQ_U64(counters(tc).learned, 1);
	dg_v9(&t, 3, 1);
	dg_set(&t, 0);
	dg_template(&t, 256, 5);
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).learned, 2);
	CHECK_EQ_U64(counters(tc).templates, 1);
	CHECK_EQ_U64(counters(tc).bytes, 4 + 5 * 4);
	template_close(tc);
}

/* Broken template sets are counted and never read past their end. */
static void
test_malformed(void)
{
	struct template_cache	*tc = cache(10, NULL);
	struct dg		 t;
	struct wire_entry	 e;
	struct plan		 p;

	/* Field count beyond the set. */
	dg_ipfix(&t, 1, 1);
	dg_set(&t, 2);
	dg_u16(&t, 256);
	dg_u16(&t, 50);
	dg_u16(&t, 1);
	dg_u16(&t, 4);
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 0);
	CHECK_EQ_U64(counters(tc).malformed, 1);

	/* A template id below 256; an enterprise field cut short. */
	dg_ipfix(&t, 1, 1);
	dg_set(&t, 2);
	dg_template(&t, 12, 1);
	dg_set(&t, 3);
	dg_u16(&t, 300);
	dg_u16(&t, 1);
	dg_u16(&t, 1);
	dg_u16(&t, 0x8001);
	dg_u16(&t, 4);
	dg_u16(&t, 0);		/* half an enterprise number */
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 0);
	CHECK_EQ_U64(counters(tc).malformed, 3);

	/* v9 options with a scope length that is not a field multiple. */
	dg_v9(&t, 1, 1);
	dg_set(&t, 1);
	dg_u16(&t, 260);
	dg_u16(&t, 3);
	dg_u16(&t, 4);
	dg_u16(&t, 0);
	dg_u16(&t, 0);
	dg_u16(&t, 0);
	dg_u16(&t, 0);
	dg_u16(&t, 0);
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).malformed, 4);

	/* Set length over the datagram, and every truncation of a valid one. */
	dg_v9(&t, 1, 1);
	dg_set(&t, 0);
	dg_template(&t, 256, 4);
	dg_template(&t, 257, 4);
	dg_end(&t);
	for (size_t cut = 0; cut <= t.len; cut++) {
		e = entry(&t, 9, 9);
		e.len = (uint16_t)cut;
		plan(tc, "kit-cut", &e, 1, T0, &p);
		CHECK_EQ_U64(p.n, 1);
		plan_free(&p);
	}
	/* Only the whole datagram's set is walked: both templates. */
	CHECK_EQ_U64(counters(tc).templates, 2);
	template_close(tc);
}

/* Per-stream and stream-count bounds. */
static void
test_bounds(void)
{
	struct template_params	 tp;
	struct template_cache	*tc;
	struct dg		 t;
	struct wire_entry	 e;
	struct plan		 p;
	char			 err[128];

	memset(&tp, 0, sizeof(tp));
	tp.refresh_s = 10;
	tp.per_stream_max = 4;
	tp.streams_max = 3;
	tp.bytes_max = 512;
	tc = template_open(&tp, err, sizeof(err));
	CHECK(tc != NULL);

	dg_ipfix(&t, 1, 1);
	dg_set(&t, 2);
	for (uint16_t i = 0; i < 6; i++)
		dg_template(&t, (uint16_t)(256 + i), 1);
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 4);
	CHECK_EQ_U64(counters(tc).dropped, 2);

	/* Four more exporters: the least recently used one goes. */
	for (uint8_t a = 2; a <= 5; a++) {
		e = entry(&t, a, 1);
		plan(tc, "kit-1", &e, 1, T0 + a, &p);
		plan_free(&p);
	}
	CHECK_EQ_U64(counters(tc).streams, 3);
	CHECK_EQ_U64(counters(tc).evicted, 2);

	/*
	 * Bytes: records of 200 bytes.  The third one needs the room of
	 * every other stream and still does not fit; it is dropped.
	 */
	dg_ipfix(&t, 1, 1);
	dg_set(&t, 2);
	for (uint16_t i = 0; i < 3; i++)
		dg_template(&t, (uint16_t)(256 + i), 49);
	dg_end(&t);
	e = entry(&t, 7, 7);
	plan(tc, "kit-2", &e, 1, T0 + 10, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).bytes, 400);
	CHECK_EQ_U64(counters(tc).streams, 1);
	CHECK_EQ_U64(counters(tc).templates, 2);
	CHECK_EQ_U64(counters(tc).evicted, 5);
	template_close(tc);
}

/* Many templates: several messages, none over TEMPLATE_MSG_MAX. */
static void
test_split(void)
{
	struct template_cache	*tc = cache(1, NULL);
	struct dg		 t, d;
	struct wire_entry	 e;
	struct plan		 p;
	struct nf_info		 info;
	size_t			 recs = 0;

	dg_v9(&t, 1, 1);
	dg_set(&t, 0);
	for (uint16_t i = 0; i < 60; i++)
		dg_template(&t, (uint16_t)(256 + i), 10);
	dg_set(&t, 1);
	dg_options(&t, 400);
	dg_end(&t);
	e = entry(&t, 1, 1);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).templates, 61);

	dg_v9(&d, 2, 1);
	dg_set(&d, 256);
	dg_data(&d, 10, 1);
	dg_end(&d);
	e = entry(&d, 1, 1);
	plan(tc, "kit-1", &e, 1, T0 + S_NS, &p);
	CHECK(p.n > 2);
	for (size_t i = 0; i + 1 < p.n; i++) {
		CHECK(p.e[i].len <= TEMPLATE_MSG_MAX);
		CHECK(nf_check(p.e[i].payload, p.e[i].len, &info) == NF_OK);
		CHECK_EQ_U64(info.seq, 1);
		recs += info.records;
	}
	CHECK(p.e[p.n - 1].payload == d.b);
	CHECK_EQ_U64(recs, 61);
	CHECK_EQ_U64(counters(tc).messages, p.n - 1);
	plan_free(&p);
	template_close(tc);
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Saved on close, loaded on open, sent ahead of the first datagram. */
static void
test_persist(void)
{
	char			 dir[] = "/tmp/test_template.XXXXXX";
	char			 path[256];
	struct template_cache	*tc;
	struct dg		 t, d;
	struct wire_entry	 e;
	struct plan		 p;
	struct nf_info		 info;
	uint8_t			*data = NULL;
	size_t			 len = 0;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, TEMPLATE_FILE);
	tc = cache(3600, dir);
	dg_ipfix(&t, 1, 9);
	dg_set(&t, 2);
	dg_template(&t, 256, 2);
	dg_set(&t, 3);
	dg_options(&t, 257);
	dg_end(&t);
	e = entry(&t, 1, 2055);
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK(template_save(tc) == 0);
	CHECK_EQ_U64(counters(tc).saves, 1);
	/* Unchanged: no second write. */
	plan(tc, "kit-1", &e, 1, T0, &p);
	plan_free(&p);
	CHECK(template_save(tc) == 0);
	CHECK_EQ_U64(counters(tc).saves, 1);
	template_close(tc);
	CHECK(access(path, R_OK) == 0);

	tc = cache(3600, dir);
	CHECK_EQ_U64(counters(tc).templates, 2);
	dg_ipfix(&d, 7, 9);
	dg_set(&d, 256);
	dg_data(&d, 2, 1);
	dg_end(&d);
	e = entry(&d, 1, 2055);
	/* Long before template_refresh: sent because loaded. */
	plan(tc, "kit-1", &e, 1, T0, &p);
	CHECK_EQ_U64(p.n, 2);
	CHECK(nf_check(p.e[0].payload, p.e[0].len, &info) == NF_OK);
	CHECK_EQ_U64(info.seq, 7);
	CHECK(contains(p.e[0].payload, p.e[0].len, t.b + 20, 12));
	plan_free(&p);
	plan(tc, "kit-1", &e, 1, T0 + S_NS, &p);
	CHECK_EQ_U64(p.n, 1);
	plan_free(&p);
	template_close(tc);

	/* A damaged file is ignored: empty cache, no crash. */
	CHECK(util_read_file(path, 1 << 20, &data, &len) == 0);
	for (size_t i = 0; i < len; i += 7) {
		data[i] ^= 0x40;
		CHECK(util_write_atomic(dir, TEMPLATE_FILE, data, len) == 0);
		tc = cache(3600, dir);
		CHECK_EQ_U64(counters(tc).templates, 0);
		template_close(tc);
		data[i] ^= 0x40;
		CHECK(util_write_atomic(dir, TEMPLATE_FILE, data, len) == 0);
	}
	CHECK(util_write_atomic(dir, TEMPLATE_FILE, data, len / 2) == 0);
	tc = cache(3600, dir);
	CHECK_EQ_U64(counters(tc).templates, 0);
	template_close(tc);
	free(data);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* Not v9/IPFIX, or too short for a header: passed through untouched. */
static void
test_other(void)
{
	struct template_cache	*tc = cache(1, NULL);
	uint8_t			 v5[24 + 48];
	struct wire_entry	 e[2];
	struct plan		 p;

	memset(v5, 0, sizeof(v5));
	put_be16(v5, 5);
	put_be16(v5 + 2, 1);
	memset(e, 0, sizeof(e));
	e[0].payload = v5;
	e[0].len = sizeof(v5);
	e[1].payload = v5;
	e[1].len = 3;
	plan(tc, "kit-1", e, 2, T0, &p);
	CHECK_EQ_U64(p.n, 2);
	CHECK(p.e[0].payload == v5 && p.e[1].len == 3);
	plan_free(&p);
	plan(tc, "kit-1", e, 0, T0, &p);
	CHECK_EQ_U64(p.n, 0);
	plan_free(&p);
	CHECK_EQ_U64(counters(tc).streams, 0);
	template_close(tc);
}

TEST_MAIN(test_v9_refresh, test_ipfix_withdraw, test_stream_keys,
    test_replace, test_malformed, test_bounds, test_split, test_persist,
    test_other)
