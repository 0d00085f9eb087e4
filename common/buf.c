/*
 * buf.c: a byte buffer with a hard ceiling.
 *
 * The buffer grows geometrically so that appending n bytes costs O(n)
 * overall, but a growth step is clamped to `max`: a buffer never holds more
 * than its ceiling, even transiently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* First allocation when a buffer starts empty. */
#define BUF_MIN_CAP	256

int
buf_init(struct buf *b, size_t initial, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	if (initial > max)
		return -1;
	if (initial > 0) {
		if ((b->data = malloc(initial)) == NULL)
			return -1;
		b->cap = initial;
	}
	return 0;
}

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t	 need, ncap;
	uint8_t	*p;

	if (extra > b->max || b->len > b->max - extra)
		return -1;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;

	ncap = b->cap > 0 ? b->cap : BUF_MIN_CAP;
	while (ncap < need && ncap <= b->max / 2)
		ncap *= 2;
	/* Doubling stopped short of `need`, or started above `max`. */
	if (ncap < need || ncap > b->max)
		ncap = b->max;

	if ((p = realloc(b->data, ncap)) == NULL)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (buf_reserve(b, len) == -1)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	 aq;
	size_t	 room;
	int	 n;

	/* Most lines fit in 256 bytes; a longer one is formatted again. */
	for (room = 256;; room *= 2) {
		if (buf_reserve(b, room) == -1)
			return -1;
		va_copy(aq, ap);
		n = vsnprintf((char *)b->data + b->len, room, fmt, aq);
		va_end(aq);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
	}
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}
