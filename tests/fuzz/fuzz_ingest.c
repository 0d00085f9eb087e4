/*
 * fuzz_ingest.c: libFuzzer target for the gateway's request handling
 * (gateway/ingest.c, PROTOCOL.md section 3 steps 3 to 11).
 *
 * The ingest context has the real keys table (one client, FUZZLIB_CLIENT),
 * the real file state backend in a private directory, and an output that
 * discards what it is given after checking it.  The state is started
 * afresh for every input, so an input means the same thing in any order.
 *
 * The first input byte picks the mode:
 *
 *  even: the rest is a request body, as it arrives from the network.
 *
 *  odd:  the rest is [opts][rounds][rounds signed seq offsets][content].
 *        The content is sealed under the client's key (stored or deflated,
 *        heartbeat flag, creation time from opts) once per round with the
 *        round's sequence number, so fuzzed bytes reach the entry and
 *        datagram validation and the duplicate window.  A model of
 *        PROTOCOL.md 3 and 4 (fuzzlib's content walk, nf_check() for step 7,
 *        a set of forwarded sequence numbers for steps 8 to 10) says what
 *        each answer must be, and the output checks that exactly the
 *        batch's datagrams, unchanged, are forwarded.  When opts say so,
 *        the gateway restarts between rounds and must read its window
 *        back from state_dir.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "fuzzlib.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "nf.h"
#include "state_file.h"
#include "wire.h"

#define WINDOW		64		/* dedup_window: the smallest allowed */
#define ROUNDS_MAX	8
#define SEQ_BASE	(FUZZLIB_SEQ0 + 1000)
#define S_US		UINT64_C(1000000)
#define DAY_US		(86400 * S_US)

/* opts bits of the sealed mode */
#define OPT_ZLIB	0x01
#define OPT_HEARTBEAT	0x02
#define OPT_AGE_SHIFT	2		/* 3 bits: index into age_offset */
#define OPT_OUT_FAIL	0x20		/* the output refuses the batch */
#define OPT_RESTART	0x40		/* restart the gateway between rounds */

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* max_raw_bytes within the inputs' reach, so that 413 is reached too. */
static const struct ingest_params params = {
	.max_raw_bytes = 3000,
	.max_batch_age_s = 30 * 86400,
	.max_clock_skew_s = 86400,
};

/* created_us - now, and the answer freshness gives (0: fresh). */
static const struct {
	int64_t	 offset_us;
	int	 status;
} age_offset[8] = {
	{ 0, 0 },
	{ -1 * (int64_t)S_US, 0 },
	{ -29 * (int64_t)DAY_US, 0 },
	{ -31 * (int64_t)DAY_US, 410 },
	{ 3600 * (int64_t)S_US, 0 },
	{ 2 * (int64_t)DAY_US, 400 },
	{ -30 * (int64_t)DAY_US, 0 },		/* exactly max_batch_age */
	{ (int64_t)DAY_US, 0 },			/* exactly max_clock_skew */
};

/*
 * The discarding output.  What it expects is set before each request;
 * it is process state only for the length of one input.
 */
struct sink {
	int				 fail;
	unsigned int			 calls;
	/* Sealed mode: the datagrams the batch must forward. */
	const uint8_t			*content;
	const struct fuzzlib_entry	*want;
	size_t				 nwant;
	int				 check_want;
};

static struct sink	 sink;
static int		 trace;		/* FUZZ_TRACE=1: print every answer */
static struct keys_store keys;
static char		 state_dir[256];
static char		 state_file[512];
static char		 state_clients[300];

static int
sink_send(void *ctx, const struct wire_entry *e, size_t n,
    struct output_result *res)
{
	struct sink	*s = ctx;

	s->calls++;
	/* Step 7 ran before: nothing that is not NetFlow/IPFIX gets here. */
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(e[i].len > 0 && e[i].payload != NULL);
		FUZZ_CHECK(nf_check(e[i].payload, e[i].len, NULL) !=
		    NF_INVALID);
	}
	/* Bytes in equal bytes out, in batch order. */
	if (s->check_want) {
		FUZZ_CHECK(n == s->nwant);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(e[i].len == s->want[i].len &&
			    memcmp(e[i].payload, s->content + s->want[i].off,
			    e[i].len) == 0);
	}
	res->targets = 1;
	res->delivered = s->fail ? 0 : 1;
	return s->fail ? -1 : 0;
}

static void
sink_close(void *ctx)
{
	(void)ctx;
}

static const struct output_ops sink_ops = {
	.send = sink_send,
	.foreach = NULL,
	.close = sink_close,
};

static void
cleanup(void)
{
	char	 probe[512];

	keys_store_destroy(&keys);
	(void)unlink(state_file);
	if (snprintf(probe, sizeof(probe), "%s/.probe", state_clients) <
	    (int)sizeof(probe))
		(void)unlink(probe);
	(void)rmdir(state_clients);
	(void)rmdir(state_dir);
}

/* A tmpfs when there is one: every commit is a durable write. */
static const char *
state_parent(void)
{
	const char	*d;
	struct stat	 st;

	if ((d = getenv("FUZZ_STATE_DIR")) != NULL && d[0] != '\0')
		return d;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	if ((d = getenv("TMPDIR")) != NULL && d[0] != '\0')
		return d;
	return "/tmp";
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char	 text[] = FUZZLIB_CLIENT " " FUZZLIB_KEY_HEX "\n";
	struct keys		*k = NULL;
	char			 err[256];

	(void)argc;
	(void)argv;
	log_init("fuzz_ingest", LOGL_ERROR, 0);
	trace = getenv("FUZZ_TRACE") != NULL;
	if (wire_init() == -1)
		abort();
	if (keys_parse("fuzz", text, sizeof(text) - 1, &k, err,
	    sizeof(err)) == -1 || keys_store_init(&keys, k) == -1) {
		fprintf(stderr, "fuzz_ingest: keys: %s\n", err);
		abort();
	}
	if (snprintf(state_dir, sizeof(state_dir), "%s/fuzz-ingest-XXXXXX",
	    state_parent()) >= (int)sizeof(state_dir) ||
	    mkdtemp(state_dir) == NULL) {
		fprintf(stderr, "fuzz_ingest: state dir: %s\n",
		    strerror(errno));
		abort();
	}
	snprintf(state_clients, sizeof(state_clients), "%s/clients",
	    state_dir);
	snprintf(state_file, sizeof(state_file), "%s/%s.state",
	    state_clients, FUZZLIB_CLIENT);
	atexit(cleanup);
	return 0;
}

/* The gateway's request side: its state backend and ingest context. */
struct gw {
	const struct state_ops	*sops;
	void			*sctx;
	struct ingest		*ig;
};

static void
gw_start(struct gw *gw)
{
	struct ingest_deps	 d;
	char			 err[256];

	if (state_file_open(state_dir, WINDOW, &gw->sops, &gw->sctx, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "fuzz_ingest: %s\n", err);
		abort();
	}
	d.keys = &keys;
	d.state = gw->sops;
	d.state_ctx = gw->sctx;
	d.output = &sink_ops;
	d.output_ctx = &sink;
	if ((gw->ig = ingest_new(&params, &d)) == NULL)
		abort();
}

static void
gw_stop(struct gw *gw)
{
	ingest_free(gw->ig);
	gw->sops->close(gw->sctx);
	memset(gw, 0, sizeof(*gw));
}

/* Only clients of the keys table get counters of their own. */
static void
client_cb(const char *client, const struct ingest_client_stats *st,
    void *arg)
{
	const struct ingest_totals *t = arg;

	FUZZ_CHECK(strcmp(client, FUZZLIB_CLIENT) == 0);
	FUZZ_CHECK(st->batches == t->batches &&
	    st->duplicates == t->duplicates &&
	    st->datagrams == t->datagrams);
}

/* The counters agree with the answers given since the last start. */
static void
check_totals(struct gw *gw, uint64_t news, uint64_t dups, uint64_t dgrams,
    uint64_t refused)
{
	struct ingest_totals	 t;
	uint64_t		 rejected = 0;

	ingest_get_totals(gw->ig, &t);
	FUZZ_CHECK(t.batches == news && t.duplicates == dups);
	FUZZ_CHECK(t.datagrams == dgrams);
	/* Every answer but 200 counts once under one reason. */
	for (int i = 0; i < INGEST_R_COUNT; i++)
		rejected += t.rejected[i];
	FUZZ_CHECK(rejected == refused);
	ingest_foreach_client(gw->ig, client_cb, &t);
}

/* What every answer looks like, whatever the input. */
static void
check_reply(const struct ingest_reply *r)
{
	FUZZ_CHECK(r->status == 200 || r->status == 400 || r->status == 401 ||
	    r->status == 403 || r->status == 410 || r->status == 413 ||
	    r->status == 500 || r->status == 503);
	FUZZ_CHECK(r->content_type != NULL &&
	    strcmp(r->content_type, "text/plain") == 0);
	FUZZ_CHECK(r->body_len > 0 && r->body_len < sizeof(r->body));
	FUZZ_CHECK(r->body[r->body_len - 1] == '\n');
	FUZZ_CHECK(memchr(r->body, '\n', r->body_len) ==
	    r->body + r->body_len - 1);
}

/* A 200 carries the acknowledgement the client accepts for this batch. */
static void
check_ack(const struct ingest_reply *r, const uint8_t *batch, size_t len,
    uint64_t seq, enum wire_ack_status *st)
{
	FUZZ_CHECK(wire_ack_verify(r->body, r->body_len, FUZZLIB_CLIENT, seq,
	    wire_tag(batch, len), fuzzlib_key, st) == 0);
}

static void
mode_raw(struct gw *gw, const uint8_t *body, size_t len)
{
	struct ingest_reply	 r;
	struct wire_header	 h;
	enum wire_ack_status	 st = WIRE_ACK_DUP;

	ingest_batch(gw->ig, body, len, FUZZLIB_NOW_US, &r);
	if (trace)
		fprintf(stderr, "raw: %d %.*s", r.status, (int)r.body_len,
		    r.body);
	check_reply(&r);
	if (r.status == 200) {
		FUZZ_CHECK(wire_parse_header(body, len, &h) == WIRE_OK);
		check_ack(&r, body, len, h.seq, &st);
		FUZZ_CHECK(sink.calls == (st == WIRE_ACK_NEW ? 1u : 0u));
		FUZZ_CHECK(st == WIRE_ACK_NEW);	/* the window was empty */
		check_totals(gw, 1, 0, h.count, 0);
	} else {
		FUZZ_CHECK(sink.calls == 0);
		check_totals(gw, 0, 0, 0, 1);
	}
}

/* Steps 8 to 10 in miniature: which sequence numbers were forwarded. */
struct model {
	bool		 has_high;
	uint64_t	 high;
	uint64_t	 done[ROUNDS_MAX];
	size_t		 ndone;
};

static bool
model_seen(const struct model *m, uint64_t seq)
{
	if (!m->has_high || seq > m->high)
		return false;
	if (m->high - seq > WINDOW)
		return true;		/* below the window: PROTOCOL.md 4.2 */
	for (size_t i = 0; i < m->ndone; i++)
		if (m->done[i] == seq)
			return true;
	return false;
}

static void
model_commit(struct model *m, uint64_t seq)
{
	if (!m->has_high || seq > m->high)
		m->high = seq;
	m->has_high = true;
	m->done[m->ndone++] = seq;
}

/* Steps 3 to 7 for the content: the answer before the window, or 0. */
static int
content_status(const uint8_t *c, size_t len, uint8_t flags, int age_status,
    const struct fuzzlib_entry *ents, const struct fuzzlib_walk *w)
{
	if (len < 4 || ((flags & WIRE_FLAG_HEARTBEAT) && w->entries != 0))
		return 400;			/* clear header */
	if (age_status != 0)
		return age_status;		/* step 5 */
	if (len > params.max_raw_bytes)
		return 413;			/* step 6 */
	if (!w->health_ok || !w->clean)
		return 400;
	for (uint32_t i = 0; i < w->entries; i++)	/* step 7 */
		if (nf_check(c + ents[i].off, ents[i].len, NULL) ==
		    NF_INVALID)
			return 400;
	return 0;
}

static void
mode_sealed(struct gw *gw, const uint8_t *data, size_t size)
{
	struct fuzzlib_batch	 b;
	struct fuzzlib_walk	 w;
	struct fuzzlib_entry	*ents = NULL;
	struct ingest_reply	 r;
	struct model		 m;
	enum wire_ack_status	 st;
	const uint8_t		*content;
	uint8_t			 opts, *z = NULL, *batch;
	size_t			 clen, blen, rounds, hdr;
	uLongf			 zlen;
	uint64_t		 news = 0, dups = 0, dgrams = 0, refused = 0;
	int			 age_status, before;

	opts = size > 0 ? data[0] : 0;
	rounds = size > 1 ? (size_t)(data[1] & (ROUNDS_MAX - 1)) + 1 : 1;
	hdr = 2 + rounds;
	content = size > hdr ? data + hdr : data + size;
	clen = size > hdr ? size - hdr : 0;
	if (clen > UINT32_MAX - 64)
		return;

	/* The content as the model sees it. */
	fuzzlib_walk(content, clen, &w, NULL, 0);
	if ((ents = calloc((size_t)w.entries + 1, sizeof(*ents))) == NULL)
		return;
	fuzzlib_walk(content, clen, &w, ents, w.entries);
	age_status = age_offset[(opts >> OPT_AGE_SHIFT) & 7].status;
	before = content_status(content, clen,
	    (opts & OPT_HEARTBEAT) ? WIRE_FLAG_HEARTBEAT : 0, age_status,
	    ents, &w);

	fuzzlib_batch_init(&b, FUZZLIB_CLIENT);
	b.flags = (opts & OPT_HEARTBEAT) ? WIRE_FLAG_HEARTBEAT : 0;
	b.created_us = FUZZLIB_NOW_US +
	    (uint64_t)age_offset[(opts >> OPT_AGE_SHIFT) & 7].offset_us;
	b.count = w.entries;
	b.raw_len = (uint32_t)clen;
	b.crc = (uint32_t)crc32(0L, content, (uInt)clen);
	b.body = content;
	b.body_len = clen;
	if (opts & OPT_ZLIB) {
		zlen = compressBound((uLong)clen);
		if ((z = malloc(zlen)) == NULL ||
		    compress2(z, &zlen, content, (uLong)clen, 1) != Z_OK)
			goto out;
		b.codec = WIRE_CODEC_ZLIB;
		b.body = z;
		b.body_len = zlen;
	}

	sink.fail = (opts & OPT_OUT_FAIL) != 0;
	sink.content = content;
	sink.want = ents;
	sink.nwant = w.entries;
	sink.check_want = 1;
	memset(&m, 0, sizeof(m));

	for (size_t i = 0; i < rounds; i++) {
		int8_t	 off = (int8_t)(size > 2 + i ? data[2 + i] : 0);
		int	 want;
		bool	 seen;

		b.seq = SEQ_BASE + (uint64_t)(int64_t)off;
		if ((batch = fuzzlib_seal(&b, fuzzlib_key, &blen)) == NULL)
			goto out;
		/* A restart reads the window back from state_dir. */
		if (i > 0 && (opts & OPT_RESTART)) {
			check_totals(gw, news, dups, dgrams, refused);
			gw_stop(gw);
			gw_start(gw);
			news = dups = dgrams = refused = 0;
		}
		sink.calls = 0;
		ingest_batch(gw->ig, batch, blen, FUZZLIB_NOW_US, &r);
		if (trace)
			fprintf(stderr, "round %zu seq %+d: %d %.*s", i, off,
			    r.status, (int)r.body_len, r.body);
		check_reply(&r);

		seen = model_seen(&m, b.seq);
		if (before != 0)
			want = before;
		else if (!seen && sink.fail)
			want = 503;
		else
			want = 200;
		if (r.status != want)
			fprintf(stderr, "round %zu seq %+d: status %d, want "
			    "%d: %.*s", i, off, r.status, want,
			    (int)r.body_len, r.body);
		FUZZ_CHECK(r.status == want);

		if (want == 200) {
			check_ack(&r, batch, blen, b.seq, &st);
			FUZZ_CHECK(st == (seen ? WIRE_ACK_DUP : WIRE_ACK_NEW));
			FUZZ_CHECK(sink.calls == (seen ? 0u : 1u));
			if (!seen) {
				model_commit(&m, b.seq);
				news++;
				dgrams += w.entries;
			} else
				dups++;
		} else {
			refused++;
			FUZZ_CHECK(sink.calls == (want == 503 ? 1u : 0u));
		}
		free(batch);
	}
	check_totals(gw, news, dups, dgrams, refused);
out:
	memset(&sink, 0, sizeof(sink));
	free(z);
	free(ents);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw	 gw;

	/* A fresh duplicate window for every input. */
	if (unlink(state_file) == -1 && errno != ENOENT)
		abort();
	gw_start(&gw);
	memset(&sink, 0, sizeof(sink));
	if (size > 0 && (data[0] & 1))
		mode_sealed(&gw, data + 1, size - 1);
	else if (size > 0)
		mode_raw(&gw, data + 1, size - 1);
	else
		mode_raw(&gw, data, 0);
	gw_stop(&gw);
	return 0;
}
