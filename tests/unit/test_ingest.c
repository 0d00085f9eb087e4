/*
 * test_ingest.c: one batch through ingest, from body to answer.
 *
 * Real sealed batches (wire_seal) go into ingest_batch() with the real file
 * state backend in a temporary directory, and either an output that records
 * what it was given or the real UDP output aimed at a loopback socket.
 */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "ingest.h"
#include "keys.h"
#include "nf.h"
#include "output_udp.h"
#include "state_file.h"
#include "util.h"
#include "wire.h"

#define NOW_US		UINT64_C(1700000000000000)
#define DAY_US		(UINT64_C(86400) * 1000000)
#define SEQ0		(UINT64_C(1700000000) << 20)
#define REC_MAX		64

static const char *const test_keys_text =
    "# test clients\n"
    "kit-01 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
    "kit-02 2021222324252627282930313233343536373839404142434445464748494a4b\n";

static const uint8_t key1[WIRE_KEY_LEN] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
};

/* An output that keeps copies of what it was asked to send. */
struct rec {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	unsigned int	 calls;
	size_t		 n;
	uint8_t		 data[REC_MAX][256];
	uint16_t	 len[REC_MAX];
	int		 fail;		/* answer "no collector took it" */
	int		 hold;		/* keep the first sender inside send */
	int		 inside;	/* senders inside send right now */
	int		 max_inside;
};

static int
rec_send(void *ctx, const struct wire_entry *e, size_t n,
    struct output_result *res)
{
	struct rec	*r = ctx;
	struct timespec	 ts;

	pthread_mutex_lock(&r->mu);
	r->calls++;
	res->targets = 1;
	res->delivered = r->fail ? 0 : 1;
	r->inside++;
	if (r->inside > r->max_inside)
		r->max_inside = r->inside;
	pthread_cond_broadcast(&r->cv);
	/*
	 * Held: give a second sender of the same batch up to 200 ms to get
	 * in here too, which per-client locking must prevent.
	 */
	if (r->hold) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (r->inside < 2 && pthread_cond_timedwait(&r->cv, &r->mu,
		    &ts) != ETIMEDOUT)
			;
	}
	if (!r->fail) {
		for (size_t i = 0; i < n && r->n < REC_MAX; i++) {
			memcpy(r->data[r->n], e[i].payload, e[i].len);
			r->len[r->n] = e[i].len;
			r->n++;
		}
	}
	r->inside--;
	pthread_mutex_unlock(&r->mu);
	return r->fail ? -1 : 0;
}

static void
rec_close(void *ctx)
{
	(void)ctx;
}

static const struct output_ops rec_ops = {
	.send = rec_send,
	.foreach = NULL,
	.close = rec_close,
};

struct fixture {
	char			 dir[256];
	struct keys_store	 keys;
	const struct state_ops	*sops;
	void			*sctx;
	const struct output_ops	*oops;
	void			*octx;
	struct rec		 rec;
	struct ingest		*ig;
	uint64_t		 window;
	uint64_t		 max_raw;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
fx_start_ingest(struct fixture *fx)
{
	struct ingest_params	 p = { fx->max_raw, 30 * 86400, 86400 };
	struct ingest_deps	 d;
	char			 err[256];

	CHECK(state_file_open(fx->dir, fx->window, &fx->sops, &fx->sctx, err,
	    sizeof(err)) == 0);
	d.keys = &fx->keys;
	d.state = fx->sops;
	d.state_ctx = fx->sctx;
	d.output = fx->oops;
	d.output_ctx = fx->octx;
	fx->ig = ingest_new(&p, &d);
	CHECK(fx->ig != NULL);
}

static void
fx_stop_ingest(struct fixture *fx)
{
	ingest_free(fx->ig);
	fx->ig = NULL;
	fx->sops->close(fx->sctx);
	fx->sops = NULL;
}

/* Keys, a state directory, the recording output, an ingest context. */
static void
fx_open(struct fixture *fx, uint64_t window, uint64_t max_raw)
{
	struct keys	*k = NULL;
	const char	*tmp = getenv("TMPDIR");
	char		 err[256];

	memset(fx, 0, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "%s/fp-test-ingest-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	CHECK(mkdtemp(fx->dir) != NULL);
	CHECK(keys_parse("test", test_keys_text, strlen(test_keys_text), &k,
	    err, sizeof(err)) == 0);
	CHECK(keys_store_init(&fx->keys, k) == 0);
	pthread_mutex_init(&fx->rec.mu, NULL);
	pthread_cond_init(&fx->rec.cv, NULL);
	fx->oops = &rec_ops;
	fx->octx = &fx->rec;
	fx->window = window;
	fx->max_raw = max_raw;
	fx_start_ingest(fx);
}

static void
fx_close(struct fixture *fx)
{
	if (fx->ig != NULL)
		fx_stop_ingest(fx);
	keys_store_destroy(&fx->keys);
	pthread_cond_destroy(&fx->rec.cv);
	pthread_mutex_destroy(&fx->rec.mu);
	nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* NetFlow v5 with one record; `k` marks its sequence and record bytes. */
static size_t
mk_v5(uint8_t *p, uint32_t k)
{
	memset(p, 0, NF_V5_HEADER + NF_V5_RECORD);
	p[1] = 5;
	p[3] = 1;
	p[16] = (uint8_t)(k >> 24);
	p[17] = (uint8_t)(k >> 16);
	p[18] = (uint8_t)(k >> 8);
	p[19] = (uint8_t)k;
	memset(p + NF_V5_HEADER, (int)(0x40 + k), NF_V5_RECORD);
	return NF_V5_HEADER + NF_V5_RECORD;
}

/* IPFIX message with one data set of 8 bytes. */
static size_t
mk_ipfix(uint8_t *p, uint32_t k)
{
	memset(p, 0, 28);
	p[1] = 10;
	p[3] = 28;
	p[11] = (uint8_t)k;
	p[16] = 0x01;			/* set id 256 */
	p[19] = 12;			/* set length */
	memset(p + 20, (int)(0x80 + k), 8);
	return 28;
}

struct dg {
	const uint8_t	*p;
	size_t		 len;
};

static void
seal(struct buf *out, const char *id, const uint8_t *key, uint64_t seq,
    uint64_t created_us, const struct dg *d, size_t n, uint8_t codec)
{
	struct wire_seal_args	 a;
	struct wire_entry	 e;
	struct buf		 entries;

	CHECK(buf_init(&entries, 0, 1 << 20) == 0);
	for (size_t i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		e.recv_us = created_us - 1000;
		e.family = 4;
		e.addr[0] = 192;
		e.addr[2] = 2;
		e.addr[3] = 1;
		e.src_port = (uint16_t)(40000 + i);
		e.dst_port = 2055;
		e.len = (uint16_t)d[i].len;
		e.payload = d[i].p;
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	memset(&a, 0, sizeof(a));
	a.client_id = id;
	a.seq = seq;
	a.created_us = created_us;
	a.flags = n == 0 ? WIRE_FLAG_HEARTBEAT : 0;
	a.codec = codec;
	a.zlevel = 6;
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = (uint32_t)n;
	a.key = key;
	CHECK(buf_init(out, 0, 1 << 20) == 0);
	CHECK(wire_seal(&a, out) == WIRE_OK);
	buf_free(&entries);
}

/* Three good datagrams: v5, IPFIX, v5. */
static uint8_t dg_store[3][128];

static void
three(struct dg d[3], uint32_t k)
{
	d[0].p = dg_store[0];
	d[0].len = mk_v5(dg_store[0], k);
	d[1].p = dg_store[1];
	d[1].len = mk_ipfix(dg_store[1], k);
	d[2].p = dg_store[2];
	d[2].len = mk_v5(dg_store[2], k + 1);
}

static void
post(struct fixture *fx, const struct buf *b, struct ingest_reply *r)
{
	ingest_batch(fx->ig, b->data, b->len, NOW_US, r);
}

/* 200 with a valid acknowledgement of this batch; returns its status. */
static int
acked(const struct ingest_reply *r, const struct buf *b, const char *id,
    uint64_t seq, const uint8_t *key)
{
	enum wire_ack_status	 st;

	if (r->status != 200 || strcmp(r->content_type, "text/plain") != 0)
		return -1;
	if (wire_ack_verify(r->body, r->body_len, id, seq,
	    wire_tag(b->data, b->len), key, &st) == -1)
		return -1;
	return (int)st;
}

static void
test_good_then_dup(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct ingest_totals	 t;
	struct buf		 b;
	struct dg		 d[3];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0, NOW_US - 1000000, d, 3,
	    WIRE_CODEC_ZLIB);

	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 200);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_NEW);
	CHECK_EQ_U64(fx.rec.calls, 1);
	CHECK_EQ_U64(fx.rec.n, 3);
	for (int i = 0; i < 3 && fx.rec.n == 3; i++) {
		CHECK_EQ_U64(fx.rec.len[i], d[i].len);
		CHECK(memcmp(fx.rec.data[i], d[i].p, d[i].len) == 0);
	}

	/* The same batch again: acknowledged dup, nothing sent. */
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_DUP);
	CHECK_EQ_U64(fx.rec.calls, 1);
	CHECK_EQ_U64(fx.rec.n, 3);

	ingest_get_totals(fx.ig, &t);
	CHECK_EQ_U64(t.batches, 1);
	CHECK_EQ_U64(t.datagrams, 3);
	CHECK_EQ_U64(t.duplicates, 1);
	CHECK_EQ_U64(t.bytes_out, d[0].len + d[1].len + d[2].len);
	buf_free(&b);
	fx_close(&fx);
}

static void
test_tampered(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct ingest_totals	 t;
	struct buf		 b;
	struct dg		 d[3];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_NONE);
	/* One byte of the sealed body, then one of the clear header. */
	b.data[b.len / 2 + 40] ^= 0x01;
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 401);
	b.data[b.len / 2 + 40] ^= 0x01;
	b.data[16] ^= 0x01;			/* created_us */
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 401);
	CHECK_EQ_U64(fx.rec.calls, 0);
	ingest_get_totals(fx.ig, &t);
	CHECK_EQ_U64(t.auth_failures, 2);
	CHECK_EQ_U64(t.rejected[INGEST_R_AUTH], 2);

	/* Sealed with another key under a known id: also 401. */
	{
		uint8_t other[WIRE_KEY_LEN];
		struct buf b2;

		memset(other, 0x55, sizeof(other));
		seal(&b2, "kit-02", other, SEQ0, NOW_US, d, 3,
		    WIRE_CODEC_ZLIB);
		post(&fx, &b2, &r);
		CHECK_EQ_U64(r.status, 401);
		buf_free(&b2);
	}
	CHECK_EQ_U64(fx.rec.calls, 0);
	buf_free(&b);
	fx_close(&fx);
}

static void
count_client(const char *id, const struct ingest_client_stats *s, void *arg)
{
	(void)id;
	(void)s;
	(*(int *)arg)++;
}

static void
test_unknown_client(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct ingest_totals	 t;
	struct buf		 b;
	struct dg		 d[3];
	char			 id[32];
	int			 nclients = 0;

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "scanner-%d", i);
		seal(&b, id, key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
		post(&fx, &b, &r);
		CHECK_EQ_U64(r.status, 403);
		CHECK(strcmp(r.body, "unknown client\n") == 0);
		buf_free(&b);
	}
	CHECK_EQ_U64(fx.rec.calls, 0);
	ingest_get_totals(fx.ig, &t);
	CHECK_EQ_U64(t.unknown_clients, 20);
	/* Unknown ids never get per-client entries. */
	ingest_foreach_client(fx.ig, count_client, &nclients);
	CHECK_EQ_U64(nclients, 0);
	fx_close(&fx);
}

static void
test_age(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;
	struct dg		 d[3];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0, NOW_US - 31 * DAY_US, d, 3,
	    WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 410);
	CHECK(strcmp(r.body, "batch older than max_batch_age\n") == 0);
	buf_free(&b);

	seal(&b, "kit-01", key1, SEQ0 + 1, NOW_US + 2 * DAY_US, d, 3,
	    WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 400);
	CHECK(strstr(r.body, "future") != NULL);
	buf_free(&b);

	/* Within the limits on both sides: accepted. */
	seal(&b, "kit-01", key1, SEQ0 + 2, NOW_US - 29 * DAY_US, d, 3,
	    WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 2, key1) == WIRE_ACK_NEW);
	buf_free(&b);
	seal(&b, "kit-01", key1, SEQ0 + 3, NOW_US + DAY_US / 2, d, 3,
	    WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 3, key1) == WIRE_ACK_NEW);
	buf_free(&b);
	CHECK_EQ_U64(fx.rec.calls, 2);
	fx_close(&fx);
}

static void
test_not_netflow(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct ingest_totals	 t;
	struct buf		 b;
	struct dg		 d[3];
	static const uint8_t	 junk[] = "GET / HTTP/1.0\r\n\r\n";
	uint8_t			 bad_v5[NF_V5_HEADER + NF_V5_RECORD];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	d[1].p = junk;
	d[1].len = sizeof(junk) - 1;
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 400);
	CHECK(strncmp(r.body, "entry 1:", 8) == 0);
	CHECK_EQ_U64(fx.rec.calls, 0);
	buf_free(&b);

	/* NetFlow whose lengths disagree is forwarded (and counted). */
	three(d, 1);
	mk_v5(bad_v5, 7);
	bad_v5[3] = 2;				/* count 2, one record */
	d[2].p = bad_v5;
	d[2].len = sizeof(bad_v5);
	seal(&b, "kit-01", key1, SEQ0 + 1, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 1, key1) == WIRE_ACK_NEW);
	CHECK_EQ_U64(fx.rec.n, 3);
	ingest_get_totals(fx.ig, &t);
	CHECK_EQ_U64(t.malformed_datagrams, 1);
	CHECK_EQ_U64(t.rejected[INGEST_R_DATAGRAM], 1);
	buf_free(&b);
	fx_close(&fx);
}

static void
test_bad_header(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	static const uint8_t	 junk[] = "<html>portal</html>";

	fx_open(&fx, 4096, 1 << 20);
	ingest_batch(fx.ig, junk, sizeof(junk) - 1, NOW_US, &r);
	CHECK_EQ_U64(r.status, 400);
	CHECK(strncmp(r.body, "bad batch header", 16) == 0);
	ingest_batch(fx.ig, NULL, 0, NOW_US, &r);
	CHECK_EQ_U64(r.status, 400);
	CHECK(r.body_len > 0 && r.body[r.body_len - 1] == '\n');
	CHECK_EQ_U64(fx.rec.calls, 0);
	fx_close(&fx);
}

static void
test_restart_keeps_window(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b, b2;
	struct dg		 d[3];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0 + 10, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 10, key1) == WIRE_ACK_NEW);

	/* A gateway restart: new state store and ingest, same directory. */
	fx_stop_ingest(&fx);
	fx_start_ingest(&fx);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 10, key1) == WIRE_ACK_DUP);
	CHECK_EQ_U64(fx.rec.calls, 1);

	/* A lower number never sent before is still new (out of order). */
	seal(&b2, "kit-01", key1, SEQ0 + 5, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b2, &r);
	CHECK(acked(&r, &b2, "kit-01", SEQ0 + 5, key1) == WIRE_ACK_NEW);

	/* And a restart with a larger window keeps both. */
	fx_stop_ingest(&fx);
	fx.window = 8192;
	fx_start_ingest(&fx);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0 + 10, key1) == WIRE_ACK_DUP);
	post(&fx, &b2, &r);
	CHECK(acked(&r, &b2, "kit-01", SEQ0 + 5, key1) == WIRE_ACK_DUP);
	CHECK_EQ_U64(fx.rec.calls, 2);
	buf_free(&b);
	buf_free(&b2);
	fx_close(&fx);
}

static void
test_window_edges(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;
	struct dg		 d[3];
	const uint64_t		 hi = SEQ0 + 1000;
	static const struct {
		uint64_t	seq;
		int		want;
	} steps[] = {
		{ 1000, WIRE_ACK_NEW },
		{ 900, WIRE_ACK_DUP },		/* 100 below, window 64 */
		{ 990, WIRE_ACK_NEW },		/* inside, never sent */
		{ 990, WIRE_ACK_DUP },
		{ 936, WIRE_ACK_NEW },		/* exactly 64 below */
		{ 935, WIRE_ACK_DUP },		/* 65 below */
		{ 1100, WIRE_ACK_NEW },		/* jump past the window */
		{ 1000, WIRE_ACK_DUP },		/* now below it */
		{ 1099, WIRE_ACK_NEW },
	};

	fx_open(&fx, 64, 1 << 20);
	three(d, 1);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		uint64_t seq = hi - 1000 + steps[i].seq;

		seal(&b, "kit-01", key1, seq, NOW_US, d, 3, WIRE_CODEC_NONE);
		post(&fx, &b, &r);
		if (acked(&r, &b, "kit-01", seq, key1) != steps[i].want) {
			fprintf(stderr, "step %zu (seq +%llu): %d %s", i,
			    (unsigned long long)steps[i].seq, r.status,
			    r.body);
			CHECK(0);
		}
		buf_free(&b);
	}
	CHECK_EQ_U64(fx.rec.calls, 5);
	fx_close(&fx);
}

static void
test_raw_cap(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;
	struct dg		 d[30];
	uint8_t			 v5[30][NF_V5_HEADER + NF_V5_RECORD];

	/* 30 datagrams of 72 bytes: about 3 KiB of content, cap 1 KiB. */
	fx_open(&fx, 4096, 1024);
	for (int i = 0; i < 30; i++) {
		d[i].len = mk_v5(v5[i], (uint32_t)i);
		d[i].p = v5[i];
	}
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 30, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 413);
	buf_free(&b);
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 30, WIRE_CODEC_NONE);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 413);
	CHECK_EQ_U64(fx.rec.calls, 0);
	buf_free(&b);

	/* Small enough: accepted by the same gateway. */
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 5, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_NEW);
	buf_free(&b);
	fx_close(&fx);
}

static void
test_output_down(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;
	struct dg		 d[3];

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	fx.rec.fail = 1;
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 503);
	/* Not recorded: once a collector is back the batch goes out. */
	fx.rec.fail = 0;
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_NEW);
	CHECK_EQ_U64(fx.rec.n, 3);
	buf_free(&b);
	fx_close(&fx);
}

static void
test_damaged_state(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;
	struct dg		 d[3];
	static const uint8_t	 kit02[WIRE_KEY_LEN] = {
		0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
		0x28, 0x29, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
		0x36, 0x37, 0x38, 0x39, 0x40, 0x41, 0x42, 0x43,
		0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b
	};
	static const char	 junk[] = "not a state file";
	char			 dir[300], path[400];
	uint8_t			*data = NULL;
	size_t			 len = 0;

	fx_open(&fx, 4096, 1 << 20);
	snprintf(dir, sizeof(dir), "%s/clients", fx.dir);
	CHECK(util_write_atomic(dir, "kit-02.state", junk,
	    sizeof(junk) - 1) == 0);
	three(d, 1);
	seal(&b, "kit-02", kit02, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 500);
	post(&fx, &b, &r);
	CHECK_EQ_U64(r.status, 500);
	CHECK_EQ_U64(fx.rec.calls, 0);
	/* Left as it was for the operator, never reset. */
	snprintf(path, sizeof(path), "%s/kit-02.state", dir);
	CHECK(util_read_file(path, 4096, &data, &len) == 0);
	CHECK(len == sizeof(junk) - 1 && memcmp(data, junk, len) == 0);
	free(data);
	buf_free(&b);

	/* Other clients are not affected. */
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_NEW);
	buf_free(&b);
	fx_close(&fx);
}

static void
test_heartbeat(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct buf		 b;

	fx_open(&fx, 4096, 1 << 20);
	seal(&b, "kit-01", key1, SEQ0, NOW_US, NULL, 0, WIRE_CODEC_ZLIB);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_NEW);
	CHECK_EQ_U64(fx.rec.n, 0);
	post(&fx, &b, &r);
	CHECK(acked(&r, &b, "kit-01", SEQ0, key1) == WIRE_ACK_DUP);
	buf_free(&b);
	fx_close(&fx);
}

struct racer {
	struct fixture		*fx;
	const struct buf	*b;
	struct ingest_reply	 r;
};

static void *
racer_run(void *arg)
{
	struct racer	*rc = arg;

	post(rc->fx, rc->b, &rc->r);
	return NULL;
}

/* Two requests with the same batch at once: forwarded exactly once. */
static void
test_concurrent_same_batch(void)
{
	struct fixture		 fx;
	struct racer		 rc[2];
	pthread_t		 th[2];
	struct buf		 b;
	struct dg		 d[3];
	int			 st0, st1;

	fx_open(&fx, 4096, 1 << 20);
	three(d, 1);
	seal(&b, "kit-01", key1, SEQ0, NOW_US, d, 3, WIRE_CODEC_ZLIB);
	fx.rec.hold = 1;
	for (int i = 0; i < 2; i++) {
		rc[i].fx = &fx;
		rc[i].b = &b;
		CHECK(pthread_create(&th[i], NULL, racer_run, &rc[i]) == 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	st0 = acked(&rc[0].r, &b, "kit-01", SEQ0, key1);
	st1 = acked(&rc[1].r, &b, "kit-01", SEQ0, key1);
	CHECK((st0 == WIRE_ACK_NEW && st1 == WIRE_ACK_DUP) ||
	    (st0 == WIRE_ACK_DUP && st1 == WIRE_ACK_NEW));
	CHECK_EQ_U64(fx.rec.calls, 1);
	CHECK_EQ_U64(fx.rec.max_inside, 1);
	CHECK_EQ_U64(fx.rec.n, 3);
	buf_free(&b);
	fx_close(&fx);
}

/* A UDP socket on 127.0.0.1 with a bounded receive wait. */
static int
udp_sink(struct config_addr *a)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 5, 0 };
	socklen_t		 len = sizeof(sin);
	int			 fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, &sin, sizeof(sin));
	a->sslen = sizeof(sin);
	util_format_sockaddr((struct sockaddr *)&sin, a->name,
	    sizeof(a->name));
	return fd;
}

static void
collector_cb(const char *name, const struct output_counters *c, void *arg)
{
	struct output_counters	*sum = arg;

	(void)name;
	sum->datagrams += c->datagrams;
	sum->send_errors += c->send_errors;
}

/*
 * The real UDP output: datagrams arrive byte for byte and in order, and a
 * collector whose port is closed (ICMP port unreachable) never stops the
 * next batch from reaching the other one.
 */
static void
test_udp_output(void)
{
	struct fixture		 fx;
	struct ingest_reply	 r;
	struct config_addr	 col[2];
	struct output_counters	 sum;
	struct buf		 b;
	struct dg		 d[3];
	uint8_t			 got[2048];
	char			 err[256];
	int			 sink, dead;
	ssize_t			 n;

	fx_open(&fx, 4096, 1 << 20);
	fx_stop_ingest(&fx);
	sink = udp_sink(&col[0]);
	dead = udp_sink(&col[1]);
	close(dead);				/* port now refuses */
	CHECK(output_udp_open(col, 2, &fx.oops, &fx.octx, err,
	    sizeof(err)) == 0);
	fx_start_ingest(&fx);

	for (uint32_t k = 0; k < 3; k++) {
		three(d, 10 * k);
		seal(&b, "kit-01", key1, SEQ0 + k, NOW_US, d, 3,
		    WIRE_CODEC_ZLIB);
		post(&fx, &b, &r);
		CHECK(acked(&r, &b, "kit-01", SEQ0 + k, key1) ==
		    WIRE_ACK_NEW);
		for (int i = 0; i < 3; i++) {
			n = recv(sink, got, sizeof(got), 0);
			CHECK(n == (ssize_t)d[i].len);
			CHECK(n > 0 && memcmp(got, d[i].p, d[i].len) == 0);
		}
		buf_free(&b);
	}
	memset(&sum, 0, sizeof(sum));
	fx.oops->foreach(fx.octx, collector_cb, &sum);
	CHECK_EQ_U64(sum.datagrams, 18);	/* 9 to each collector */
	CHECK_EQ_U64(sum.send_errors, 0);
	fx_stop_ingest(&fx);
	fx.oops->close(fx.octx);
	close(sink);
	fx_close(&fx);
}

TEST_MAIN(test_good_then_dup, test_tampered, test_unknown_client, test_age,
    test_not_netflow, test_bad_header, test_restart_keeps_window,
    test_window_edges, test_raw_cap, test_output_down, test_damaged_state,
    test_heartbeat, test_concurrent_same_batch, test_udp_output)
