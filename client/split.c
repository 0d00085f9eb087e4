/*
 * split.c: open a sealed batch, cut its entries, seal the pieces.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "wire.h"

#include "spool.h"
#include "split.h"

int
split_init(struct split *sp, const uint8_t *key, int zlevel, size_t raw_max,
    size_t sealed_max)
{
	memset(sp, 0, sizeof(*sp));
	sp->key = key;
	sp->zlevel = zlevel;
	sp->raw_max = raw_max;
	if (buf_init(&sp->raw, 0, raw_max) == -1 ||
	    buf_init(&sp->out[0], 0, sealed_max) == -1 ||
	    buf_init(&sp->out[1], 0, sealed_max) == -1) {
		split_free(sp);
		return -1;
	}
	return 0;
}

void
split_set_level(struct split *sp, int zlevel)
{
	sp->zlevel = zlevel;
}

void
split_free(struct split *sp)
{
	buf_free(&sp->raw);
	buf_free(&sp->out[0]);
	buf_free(&sp->out[1]);
}

/*
 * Where the first half of the entries ends: after the entry that takes it
 * to half of the bytes, but with at least one entry on either side.
 */
static int
split_point(const uint8_t *entries, size_t len, uint32_t count, size_t *cut,
    uint32_t *first)
{
	struct wire_iter	it = { entries, len };
	struct wire_entry	e;
	uint32_t		k = 0;

	while (k + 1 < count && wire_entry_next(&it, &e) == 1) {
		k++;
		if ((size_t)(it.p - entries) * 2 >= len)
			break;
	}
	if (k == 0 || k >= count)
		return -1;
	*cut = (size_t)(it.p - entries);
	*first = k;
	return 0;
}

int
split_batch(struct split *sp, struct spool *s, const uint8_t *data,
    size_t len, size_t n, struct spool_piece *pieces, char *why,
    size_t whylen)
{
	struct wire_header	 h;
	struct wire_seal_args	 a;
	struct wire_iter	 it;
	const uint8_t		*health, *entries;
	size_t			 health_len, entries_len, cut, i;
	uint32_t		 first;
	enum wire_err		 we;

	if (n < 1 || n > 2) {
		snprintf(why, whylen, "cannot cut a batch in %zu", n);
		return -1;
	}
	buf_reset(&sp->raw);
	if ((we = wire_open(data, len, sp->key, sp->raw_max, &h,
	    &sp->raw)) != WIRE_OK) {
		snprintf(why, whylen, "cannot open it: %s", wire_strerror(we));
		return -1;
	}
	if (wire_content_health(sp->raw.data, sp->raw.len, &health,
	    &health_len) == -1 ||
	    wire_content_entries(sp->raw.data, sp->raw.len, &it) == -1) {
		snprintf(why, whylen, "its content is malformed");
		return -1;
	}
	entries = it.p;
	entries_len = it.left;
	if (n == 2) {
		if (h.count < 2 || split_point(entries, entries_len, h.count,
		    &cut, &first) == -1) {
			snprintf(why, whylen, "it holds %u datagram%s; cannot "
			    "cut it in two", (unsigned int)h.count,
			    h.count == 1 ? "" : "s");
			return -1;
		}
	} else {
		cut = entries_len;
		first = h.count;
	}

	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		if (spool_next_seq(s, &a.seq) == -1) {
			snprintf(why, whylen, "no sequence number (spool "
			    "state cannot be written)");
			return -1;
		}
		a.client_id = h.client_id;
		a.created_us = h.created_us;
		a.flags = h.flags;
		a.codec = h.codec;
		a.zlevel = sp->zlevel;
		a.key = sp->key;
		if (i == 0) {
			a.health = health_len > 0 ? health : NULL;
			a.health_len = health_len;
			a.entries = entries;
			a.entries_len = cut;
			a.count = first;
		} else {
			a.entries = entries + cut;
			a.entries_len = entries_len - cut;
			a.count = h.count - first;
		}
		if ((we = wire_seal(&a, &sp->out[i])) != WIRE_OK) {
			snprintf(why, whylen, "cannot seal piece %zu: %s",
			    i + 1, wire_strerror(we));
			return -1;
		}
		pieces[i].seq = a.seq;
		pieces[i].data = sp->out[i].data;
		pieces[i].len = sp->out[i].len;
		pieces[i].count = a.count;
		pieces[i].created_us = a.created_us;
	}
	return 0;
}
