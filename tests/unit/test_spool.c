/*
 * test_spool.c: the client's spool (client/spool.c) and the splitting of
 * spooled batches (client/split.c).
 *
 * Real sealed batches go into a spool in a temporary directory; the
 * checks look at the send order, the files on disk, the sequence numbers
 * across reopening, quarantine of damaged files, the spool limits, and
 * the replacement of a batch by its halves, including what a crash in the
 * middle of that leaves behind.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "buf.h"
#include "util.h"
#include "wire.h"

#include "split.h"
#include "spool.h"
#include "stats.h"

#define RAW_MAX		(256 * 1024)
#define SEALED_MAX	(300 * 1024)
#define CREATED_US	UINT64_C(1700000000000000)

static const uint8_t key[WIRE_KEY_LEN] = {
	9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
};

static char	dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
fresh_dir(void)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	snprintf(dir, sizeof(dir), "/tmp/fp-test-spool-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
}

static struct spool *
open_spool(uint64_t max_bytes, int drop_newest)
{
	struct spool_params	p;
	struct spool		*s = NULL;

	memset(&p, 0, sizeof(p));
	p.dir = dir;
	p.key = key;
	p.raw_max = RAW_MAX;
	p.sealed_max = SEALED_MAX;
	p.max_bytes = max_bytes;
	p.drop_newest = drop_newest;
	CHECK(spool_open(&s, &p) == 0);
	return s;
}

/*
 * Seals `count` datagrams into `out`; datagram i of batch `tagbyte` has
 * payload bytes derived from both, so every datagram is recognisable.
 */
static void
make_batch(struct buf *out, uint64_t seq, uint32_t count, uint8_t tagbyte,
    size_t payload)
{
	struct buf		entries;
	struct wire_entry	e;
	struct wire_seal_args	a;
	uint8_t			data[2048];
	uint32_t		i;
	size_t			j;

	CHECK(payload <= sizeof(data));
	CHECK(buf_init(&entries, 0, RAW_MAX) == 0);
	for (i = 0; i < count; i++) {
		memset(&e, 0, sizeof(e));
		for (j = 0; j < payload; j++)
			data[j] = (uint8_t)(tagbyte + i * 7 + j);
		e.recv_us = CREATED_US + i;
		e.family = 4;
		e.addr[0] = 192;
		e.addr[1] = 0;
		e.addr[2] = 2;
		e.addr[3] = tagbyte;
		e.src_port = (uint16_t)(1000 + i);
		e.dst_port = 2055;
		e.len = (uint16_t)payload;
		e.payload = data;
		CHECK(wire_entry_append(&entries, &e) == 0);
	}
	memset(&a, 0, sizeof(a));
	a.client_id = "kit-test";
	a.seq = seq;
	a.created_us = CREATED_US;
	a.codec = WIRE_CODEC_ZLIB;
	a.zlevel = 6;
	a.entries = entries.data;
	a.entries_len = entries.len;
	a.count = count;
	a.key = key;
	CHECK(wire_seal(&a, out) == WIRE_OK);
	buf_free(&entries);
}

/* Seals and stores a batch; returns its sequence number. */
static uint64_t
put_batch(struct spool *s, uint32_t count, uint8_t tagbyte, size_t payload)
{
	struct buf	b;
	uint64_t	seq = 0;

	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	CHECK(spool_next_seq(s, &seq) == 0);
	make_batch(&b, seq, count, tagbyte, payload);
	CHECK(spool_put(s, seq, b.data, b.len, count, CREATED_US) == 0);
	buf_free(&b);
	return seq;
}

/* Opens a batch; its entries' payloads go into `payloads` (appended). */
static uint32_t
open_batch(const struct buf *b, struct buf *payloads, uint64_t *seq)
{
	struct wire_header	h;
	struct wire_iter	it;
	struct wire_entry	e;
	struct buf		raw;
	uint32_t		n = 0;

	CHECK(buf_init(&raw, 0, RAW_MAX) == 0);
	CHECK(wire_open(b->data, b->len, key, RAW_MAX, &h, &raw) == WIRE_OK);
	CHECK(wire_content_entries(raw.data, raw.len, &it) == 0);
	while (wire_entry_next(&it, &e) == 1) {
		if (payloads != NULL)
			CHECK(buf_append(payloads, e.payload, e.len) == 0);
		n++;
	}
	CHECK_EQ_U64(n, h.count);
	if (seq != NULL)
		*seq = h.seq;
	buf_free(&raw);
	return n;
}

static int
file_exists(const char *name)
{
	char	path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static size_t
count_files(const char *sub, const char *suffix)
{
	char		 path[256];
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0, l, sl = strlen(suffix);

	snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "",
	    sub ? sub : "");
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		l = strlen(de->d_name);
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
write_file(const char *name, const uint8_t *data, size_t len)
{
	CHECK(util_write_atomic(dir, name, data, len) == 0);
}

/* Takes the oldest batch, checks its number, removes it. */
static void
take(struct spool *s, struct buf *b, uint64_t want_seq)
{
	struct spool_item	it;

	CHECK(spool_oldest(s, b, &it) == 1);
	CHECK_EQ_U64(it.seq, want_seq);
	CHECK(spool_remove(s, it.seq) == 0);
}

static void
setup(void)
{
	CHECK(wire_init() == 0);
}

static void
test_order(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct buf		 b;
	uint64_t		 seq[3], got, batches, bytes, oldest;
	int			 i;
	char			 name[SPOOL_NAME_MAX + 1];

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	CHECK(spool_oldest(s, &b, &it) == 0);
	for (i = 0; i < 3; i++)
		seq[i] = put_batch(s, 3 + (uint32_t)i, (uint8_t)i, 100);
	CHECK(seq[1] == seq[0] + 1 && seq[2] == seq[1] + 1);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 3);
	CHECK_EQ_U64(oldest, CREATED_US);
	CHECK_EQ_U64(STATS_GET(spool_batches), 3);

	/* the oldest stays the oldest until it is removed */
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, seq[0]);
	CHECK_EQ_U64(it.count, 3);
	CHECK(it.path[0] == '\0' && it.root == seq[0] && !it.renumber);
	CHECK_EQ_U64(open_batch(&b, NULL, &got), 3);
	CHECK_EQ_U64(got, seq[0]);
	spool_item_name(&it, name);
	CHECK(strlen(name) == 24 && file_exists(name));
	spool_release(s, it.seq);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, seq[0]);
	CHECK(spool_remove(s, it.seq) == 0);
	CHECK(!file_exists(name));
	take(s, &b, seq[1]);
	take(s, &b, seq[2]);
	CHECK(spool_oldest(s, &b, &it) == 0);
	CHECK(spool_remove(s, seq[2]) == -1);
	CHECK_EQ_U64(count_files(NULL, ".fpb"), 0);
	spool_close(s);
	buf_free(&b);
}

static void
test_reopen(void)
{
	struct spool	*s;
	struct buf	 b;
	uint64_t	 seq[4], first, again, batches, bytes, oldest;
	int		 i;

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	for (i = 0; i < 4; i++)
		seq[i] = put_batch(s, 2, (uint8_t)(10 + i), 200);
	spool_close(s);

	/* everything is still there, in order, after a reopen */
	s = open_spool(UINT64_C(1) << 30, 0);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 4);
	take(s, &b, seq[0]);
	take(s, &b, seq[1]);
	/* a number handed out is never handed out again */
	CHECK(spool_next_seq(s, &first) == 0);
	CHECK(first > seq[3]);
	spool_close(s);

	s = open_spool(UINT64_C(1) << 30, 0);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 2);
	take(s, &b, seq[2]);
	/* numbers come from reserved blocks: past the whole first block */
	CHECK(spool_next_seq(s, &again) == 0);
	CHECK(again > first);
	CHECK(again >= seq[0] + SPOOL_SEQ_BLOCK);
	take(s, &b, seq[3]);
	spool_close(s);

	/* with every batch gone, seq.state alone still prevents reuse */
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(spool_next_seq(s, &first) == 0);
	CHECK(first > again);
	spool_close(s);
	buf_free(&b);
}

static void
test_quarantine(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct buf		 b;
	uint64_t		 good, q0, batches, bytes, oldest;
	char			 name[64];

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	good = put_batch(s, 2, 1, 100);
	spool_close(s);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);

	/* truncated: a crash cut it (cannot happen with the rename, but) */
	make_batch(&b, good + 1, 4, 2, 300);
	snprintf(name, sizeof(name), "%020llu.fpb",
	    (unsigned long long)(good + 1));
	write_file(name, b.data, b.len / 2);
	/* corrupted: one bit flipped in the sealed body */
	make_batch(&b, good + 2, 4, 3, 300);
	b.data[b.len - 20] ^= 0x10;
	snprintf(name, sizeof(name), "%020llu.fpb",
	    (unsigned long long)(good + 2));
	write_file(name, b.data, b.len);
	/* a sound batch under another number's name */
	make_batch(&b, good + 7, 1, 4, 50);
	snprintf(name, sizeof(name), "%020llu.fpb",
	    (unsigned long long)(good + 3));
	write_file(name, b.data, b.len);
	/* a left-over temporary file and an unrelated file */
	write_file(".tmp.00000000000000000001.fpb.123", b.data, 10);
	write_file("notes.txt", b.data, 10);

	q0 = STATS_GET(quarantined);
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK_EQ_U64(STATS_GET(quarantined) - q0, 3);
	CHECK_EQ_U64(count_files(SPOOL_QUARANTINE, ".fpb"), 3);
	CHECK(!file_exists(".tmp.00000000000000000001.fpb.123"));
	CHECK(file_exists("notes.txt"));
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 1);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, good);
	/* the sound batch named good + 7 was moved, so that number is free */
	CHECK(spool_quarantine(s, it.seq, "test") == 0);
	CHECK_EQ_U64(STATS_GET(quarantined) - q0, 4);
	CHECK(spool_oldest(s, &b, &it) == 0);
	spool_close(s);
	buf_free(&b);
}

static void
test_limits(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct buf		 b;
	uint64_t		 seq[6], d0, dd0, batches, bytes, oldest, one;
	int			 i;

	/* drop-oldest: room is made by dropping the oldest not in flight */
	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	seq[0] = put_batch(s, 5, 0, 400);
	spool_depth(s, &batches, &one, &oldest);
	spool_close(s);
	fresh_dir();
	/* room for three batches of this size, not four */
	s = open_spool(one * 3 + one / 2, 0);
	d0 = STATS_GET(spool_dropped_batches);
	dd0 = STATS_GET(spool_dropped_datagrams);
	for (i = 0; i < 3; i++)
		seq[i] = put_batch(s, 5, (uint8_t)i, 400);
	CHECK_EQ_U64(STATS_GET(spool_dropped_batches), d0);
	/* the oldest is in flight: the next one goes instead */
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, seq[0]);
	seq[3] = put_batch(s, 5, 3, 400);
	CHECK_EQ_U64(STATS_GET(spool_dropped_batches) - d0, 1);
	CHECK_EQ_U64(STATS_GET(spool_dropped_datagrams) - dd0, 5);
	spool_release(s, seq[0]);
	seq[4] = put_batch(s, 5, 4, 400);
	CHECK_EQ_U64(STATS_GET(spool_dropped_batches) - d0, 2);
	CHECK_EQ_U64(STATS_GET(spool_dropped_datagrams) - dd0, 10);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 3);
	CHECK(bytes <= one * 3 + one / 2);
	take(s, &b, seq[2]);
	take(s, &b, seq[3]);
	take(s, &b, seq[4]);
	spool_close(s);

	/* drop-newest: what is spooled stays, the new batch is dropped */
	fresh_dir();
	s = open_spool(one * 2 + one / 2, 1);
	d0 = STATS_GET(spool_dropped_batches);
	dd0 = STATS_GET(spool_dropped_datagrams);
	seq[0] = put_batch(s, 5, 0, 400);
	seq[1] = put_batch(s, 5, 1, 400);
	CHECK(spool_next_seq(s, &seq[2]) == 0);
	make_batch(&b, seq[2], 5, 2, 400);
	CHECK(spool_put(s, seq[2], b.data, b.len, 5, CREATED_US) == -1);
	CHECK_EQ_U64(STATS_GET(spool_dropped_batches) - d0, 1);
	CHECK_EQ_U64(STATS_GET(spool_dropped_datagrams) - dd0, 5);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 2);
	take(s, &b, seq[0]);
	take(s, &b, seq[1]);
	spool_close(s);
	buf_free(&b);
}

/* Splits the head batch in two; returns the halves' numbers. */
static void
split_head(struct spool *s, struct split *sp, struct buf *b, uint64_t *a,
    uint64_t *bb, uint32_t *ca, uint32_t *cb)
{
	struct spool_item	it;
	struct spool_piece	p[2];
	char			why[160];

	CHECK(spool_oldest(s, b, &it) == 1);
	CHECK(split_batch(sp, s, b->data, b->len, 2, p, why,
	    sizeof(why)) == 0);
	CHECK(spool_replace(s, &it, p, 2) == 0);
	*a = p[0].seq;
	*bb = p[1].seq;
	*ca = p[0].count;
	*cb = p[1].count;
}

static void
test_split(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct split		 sp;
	struct buf		 b, whole, parts;
	uint64_t		 seq[3], a, bb, aa, ab, got, batches, bytes;
	uint64_t		 oldest;
	uint32_t		 ca, cb, caa, cab;
	char			 name[SPOOL_NAME_MAX + 1], why[160];
	struct spool_piece	 p[2];

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	CHECK(buf_init(&whole, 0, RAW_MAX) == 0);
	CHECK(buf_init(&parts, 0, RAW_MAX) == 0);
	CHECK(split_init(&sp, key, 6, RAW_MAX, SEALED_MAX) == 0);
	seq[0] = put_batch(s, 9, 0x40, 300);
	seq[1] = put_batch(s, 4, 0x50, 300);
	seq[2] = put_batch(s, 1, 0x60, 300);

	CHECK(spool_oldest(s, &b, &it) == 1);
	open_batch(&b, &whole, NULL);
	spool_release(s, it.seq);

	/* the halves take the original's place, each with a new number */
	split_head(s, &sp, &b, &a, &bb, &ca, &cb);
	CHECK(a > seq[2] && bb > a);
	CHECK_EQ_U64(ca + cb, 9);
	CHECK(ca >= 1 && cb >= 1);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 4);
	snprintf(name, sizeof(name), "%020llu.fpb", (unsigned long long)seq[0]);
	CHECK(!file_exists(name));
	snprintf(name, sizeof(name), "%020llu-a.fpb",
	    (unsigned long long)seq[0]);
	CHECK(file_exists(name));
	snprintf(name, sizeof(name), "%020llu-b.fpb",
	    (unsigned long long)seq[0]);
	CHECK(file_exists(name));

	/* the first half splits again: its halves go before the second */
	split_head(s, &sp, &b, &aa, &ab, &caa, &cab);
	CHECK_EQ_U64(caa + cab, ca);
	spool_close(s);

	/* the order survives a restart */
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, aa);
	CHECK(strcmp(it.path, "aa") == 0 && it.root == seq[0]);
	CHECK(spool_posting(s, &it) == 0);
	open_batch(&b, &parts, &got);
	CHECK_EQ_U64(got, aa);
	CHECK(spool_remove(s, aa) == 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, ab);
	CHECK(spool_posting(s, &it) == 0);
	open_batch(&b, &parts, NULL);
	CHECK(spool_remove(s, ab) == 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, bb);
	CHECK(!it.renumber);	/* a few numbers behind: inside the slack */
	CHECK(spool_posting(s, &it) == 0);
	open_batch(&b, &parts, NULL);
	CHECK(spool_remove(s, bb) == 0);
	/* the datagrams of the halves are the original's, in order */
	CHECK(parts.len == whole.len &&
	    memcmp(parts.data, whole.data, whole.len) == 0);
	take(s, &b, seq[1]);

	/* a batch of one datagram cannot be cut */
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, seq[2]);
	CHECK(split_batch(&sp, s, b.data, b.len, 2, p, why,
	    sizeof(why)) == -1);
	CHECK(strstr(why, "1 datagram") != NULL);
	CHECK(spool_remove(s, seq[2]) == 0);
	CHECK_EQ_U64(count_files(NULL, ".fpb"), 0);
	spool_close(s);
	split_free(&sp);
	buf_free(&b);
	buf_free(&whole);
	buf_free(&parts);
}

/*
 * Batches behind a split whose numbers fall far behind the numbers
 * already posted are flagged for renumbering, also after a restart, and
 * renumbering keeps their place and content.
 */
static void
test_renumber(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct split		 sp;
	struct buf		 b, before, after;
	struct spool_piece	 p;
	uint64_t		 first, last = 0, a, bb;
	uint32_t		 ca, cb;
	char			 why[160];
	int			 i;

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	CHECK(buf_init(&before, 0, RAW_MAX) == 0);
	CHECK(buf_init(&after, 0, RAW_MAX) == 0);
	CHECK(split_init(&sp, key, 6, RAW_MAX, SEALED_MAX) == 0);
	first = put_batch(s, 4, 1, 64);
	for (i = 0; i < SPOOL_RENUMBER_SLACK + 8; i++)
		last = put_batch(s, 2, (uint8_t)(2 + i), 64);
	split_head(s, &sp, &b, &a, &bb, &ca, &cb);
	CHECK(a > last);
	(void)first;
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK(!it.renumber);
	CHECK(spool_posting(s, &it) == 0);
	CHECK(spool_remove(s, a) == 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK(spool_posting(s, &it) == 0);
	CHECK(spool_remove(s, bb) == 0);
	spool_close(s);

	/* sent.state carries the highest number posted across a restart */
	s = open_spool(UINT64_C(1) << 30, 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, first + 1);
	CHECK(it.renumber);
	open_batch(&b, &before, NULL);
	CHECK(split_batch(&sp, s, b.data, b.len, 1, &p, why,
	    sizeof(why)) == 0);
	CHECK(p.seq > bb);
	CHECK(spool_replace(s, &it, &p, 1) == 0);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, p.seq);
	CHECK(strcmp(it.path, "r") == 0 && !it.renumber);
	open_batch(&b, &after, NULL);
	CHECK(before.len == after.len &&
	    memcmp(before.data, after.data, before.len) == 0);
	CHECK(spool_posting(s, &it) == 0);
	CHECK(spool_remove(s, p.seq) == 0);
	/*
	 * After the restart numbers come from a new block, so the renumbered
	 * batch is far ahead of every batch behind it: all of them follow.
	 */
	while (spool_oldest(s, &b, &it) == 1) {
		CHECK(it.renumber);
		CHECK(it.seq <= last);
		CHECK(spool_remove(s, it.seq) == 0);
	}
	spool_close(s);
	split_free(&sp);
	buf_free(&b);
	buf_free(&before);
	buf_free(&after);
}

/*
 * What a crash during spool_replace() can leave: the old batch with all
 * of its replacements (the old one goes), or with only the first half
 * (the half goes), and a renumbered copy (the old one goes).
 */
static void
test_replace_crash(void)
{
	struct spool		*s;
	struct spool_item	 it;
	struct buf		 b, whole, parts;
	uint64_t		 p1, p2, p3, next, batches, bytes, oldest;
	char			 name[64];

	fresh_dir();
	s = open_spool(UINT64_C(1) << 30, 0);
	p1 = put_batch(s, 4, 1, 100);
	p2 = put_batch(s, 4, 2, 100);
	p3 = put_batch(s, 4, 3, 100);
	CHECK(spool_next_seq(s, &next) == 0);
	spool_close(s);
	CHECK(buf_init(&b, 0, SEALED_MAX) == 0);
	CHECK(buf_init(&whole, 0, RAW_MAX) == 0);
	CHECK(buf_init(&parts, 0, RAW_MAX) == 0);

	/* p1: both halves written, the original not yet deleted */
	make_batch(&b, next + 1, 2, 0x11, 100);
	snprintf(name, sizeof(name), "%020llu-a.fpb", (unsigned long long)p1);
	write_file(name, b.data, b.len);
	make_batch(&b, next + 2, 2, 0x12, 100);
	snprintf(name, sizeof(name), "%020llu-b.fpb", (unsigned long long)p1);
	write_file(name, b.data, b.len);
	/* p2: only the first half written */
	make_batch(&b, next + 3, 2, 0x21, 100);
	snprintf(name, sizeof(name), "%020llu-a.fpb", (unsigned long long)p2);
	write_file(name, b.data, b.len);
	/* p3: renumbered copy written */
	make_batch(&b, next + 4, 4, 3, 100);
	snprintf(name, sizeof(name), "%020llu-r.fpb", (unsigned long long)p3);
	write_file(name, b.data, b.len);

	s = open_spool(UINT64_C(1) << 30, 0);
	spool_depth(s, &batches, &bytes, &oldest);
	CHECK_EQ_U64(batches, 4);
	snprintf(name, sizeof(name), "%020llu.fpb", (unsigned long long)p1);
	CHECK(!file_exists(name));
	snprintf(name, sizeof(name), "%020llu-a.fpb", (unsigned long long)p2);
	CHECK(!file_exists(name));
	snprintf(name, sizeof(name), "%020llu.fpb", (unsigned long long)p3);
	CHECK(!file_exists(name));
	take(s, &b, next + 1);
	take(s, &b, next + 2);
	take(s, &b, p2);
	CHECK(spool_oldest(s, &b, &it) == 1);
	CHECK_EQ_U64(it.seq, next + 4);
	CHECK(strcmp(it.path, "r") == 0);
	CHECK(spool_remove(s, it.seq) == 0);
	/* numbers keep growing past every replacement found */
	CHECK(spool_next_seq(s, &p1) == 0);
	CHECK(p1 > next + 4);
	spool_close(s);
	buf_free(&b);
	buf_free(&whole);
	buf_free(&parts);
}

static void
cleanup(void)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
}

TEST_MAIN(setup, test_order, test_reopen, test_quarantine, test_limits, test_split,
    test_renumber, test_replace_crash, cleanup)
