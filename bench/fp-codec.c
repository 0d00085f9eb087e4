/*
 * fp-codec: sizes and sealing times of the batch codecs.
 *
 *   fp-codec [-b BATCH_BYTES] [-r REPEAT] < ENTRIES
 *
 * ENTRIES is a run of datagram entries in the batch layout (docs/
 * PROTOCOL.md 1.2: 32-byte entry header, payload).  They are cut into
 * batches as the client cuts them (a batch closes before the entry that
 * would take it over BATCH_BYTES, 256 KiB by default) and every batch is
 * sealed with codec 1 (zlib), codec 2 (nfpack + zlib) and codec 3
 * (nfpack3 + zlib) at zlib levels 1, 3, 6 and 9, each REPEAT times
 * (default 5) to time it.  One line per codec and level:
 *
 *   codec=NAME level=N batches=B entries=E raw=BYTES sealed=BYTES
 *   us_per_batch=T us_per_open=T
 *
 * `raw` is the content size (health word + entries); `sealed` the sum of
 * the sealed batches, header and tag included.  Every batch is opened
 * again and compared with the original, so a codec that does not give
 * the bytes back fails the run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "bytes.h"
#include "util.h"
#include "wire.h"

#define INPUT_MAX	(512u << 20)

struct result {
	uint64_t	 batches, entries, raw, sealed;
	double		 seal_s, open_s;
};

static const uint8_t key[WIRE_KEY_LEN] = { 1, 2, 3, 4, 5 };

static double
now_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
read_all(uint8_t **data, size_t *len)
{
	struct buf	 b;
	ssize_t		 n;

	if (buf_init(&b, 1u << 20, INPUT_MAX) == -1)
		return -1;
	for (;;) {
		if (buf_reserve(&b, 65536) == -1)
			return -1;
		n = read(0, b.data + b.len, 65536);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		b.len += (size_t)n;
	}
	*data = b.data;
	*len = b.len;
	return 0;
}

/* Seals one batch `repeat` times, opens it, checks it; adds to r. */
static int
one_batch(const uint8_t *entries, size_t len, uint32_t count, int codec,
    int level, int repeat, struct result *r)
{
	struct wire_seal_args	 a;
	struct wire_header	 h;
	struct buf		 out, raw;
	double			 t0;
	int			 rc = -1;

	if (buf_init(&out, 0, 2 * len + 4096) == -1 ||
	    buf_init(&raw, 0, len + 4096) == -1)
		return -1;
	memset(&a, 0, sizeof(a));
	a.client_id = "bench";
	a.seq = 1;
	a.created_us = 1;
	a.codec = (uint8_t)codec;
	a.zlevel = level;
	a.entries = entries;
	a.entries_len = len;
	a.count = count;
	a.key = key;
	t0 = now_s();
	for (int i = 0; i < repeat; i++)
		if (wire_seal(&a, &out) != WIRE_OK)
			goto out;
	r->seal_s += (now_s() - t0) / repeat;
	t0 = now_s();
	for (int i = 0; i < repeat; i++)
		if (wire_open(out.data, out.len, key, len + 4096, &h, &raw) !=
		    WIRE_OK)
			goto out;
	r->open_s += (now_s() - t0) / repeat;
	if (raw.len != len + 4 || memcmp(raw.data + 4, entries, len) != 0)
		goto out;
	r->batches++;
	r->entries += count;
	r->raw += len + 4;
	r->sealed += out.len;
	rc = 0;
out:
	buf_free(&out);
	buf_free(&raw);
	return rc;
}

static int
run(const uint8_t *data, size_t len, size_t batch_max, int codec, int level,
    int repeat, struct result *r)
{
	struct wire_iter	 it = { data, len };
	struct wire_entry	 e;
	const uint8_t		*start = data;
	size_t			 blen = 0;
	uint32_t		 count = 0;
	int			 k;

	memset(r, 0, sizeof(*r));
	while ((k = wire_entry_next(&it, &e)) == 1) {
		size_t sz = wire_entry_size(e.len);

		if (blen + sz > batch_max && blen > 0) {
			if (one_batch(start, blen, count, codec, level, repeat,
			    r) == -1)
				return -1;
			start += blen;
			blen = 0;
			count = 0;
		}
		blen += sz;
		count++;
	}
	if (k == -1)
		return -1;
	if (blen > 0)
		return one_batch(start, blen, count, codec, level, repeat, r);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: fp-codec [-b BATCH_BYTES] [-r REPEAT] "
	    "< ENTRIES\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const int	 levels[] = { 1, 3, 6, 9 };
	static const struct {
		const char	*name;
		int		 codec;
	} codecs[] = {
		{ "zlib", WIRE_CODEC_ZLIB },
		{ "nfpack", WIRE_CODEC_NFPACK },
		{ "nfpack3", WIRE_CODEC_NFPACK3 },
	};
	struct result		 r;
	uint8_t			*data;
	size_t			 len;
	uint64_t		 v;
	size_t			 batch_max = 256 * 1024;
	int			 repeat = 5, ch;

	while ((ch = getopt(argc, argv, "b:r:")) != -1) {
		switch (ch) {
		case 'b':
			if (util_parse_u64(optarg, &v) == -1 || v < 4096 ||
			    v > (16u << 20))
				usage();
			batch_max = (size_t)v;
			break;
		case 'r':
			if (util_parse_u64(optarg, &v) == -1 || v < 1 ||
			    v > 1000)
				usage();
			repeat = (int)v;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (wire_init() == -1 || read_all(&data, &len) == -1) {
		fprintf(stderr, "fp-codec: cannot start or read input\n");
		return 1;
	}
	for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]);
		    l++) {
			if (run(data, len, batch_max, codecs[c].codec,
			    levels[l], repeat, &r) == -1) {
				fprintf(stderr, "fp-codec: %s level %d: seal, "
				    "open or compare failed\n", codecs[c].name,
				    levels[l]);
				return 1;
			}
			printf("codec=%s level=%d batches=%" PRIu64
			    " entries=%" PRIu64 " raw=%" PRIu64 " sealed=%"
			    PRIu64 " us_per_batch=%.1f us_per_open=%.1f\n",
			    codecs[c].name, levels[l], r.batches, r.entries,
			    r.raw, r.sealed, r.batches ? r.seal_s * 1e6 /
			    (double)r.batches : 0.0, r.batches ? r.open_s *
			    1e6 / (double)r.batches : 0.0);
		}
	}
	free(data);
	return 0;
}
