/*
 * buf.h: a byte buffer with a hard ceiling fixed when it is created.
 *
 * Growing past `max` fails with -1 instead of allocating: every buffer that
 * holds untrusted or unbounded input (HTTP bodies, inflate output, batches)
 * has a ceiling.
 */
#ifndef FLOWPOST_BUF_H
#define FLOWPOST_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
};

/* Allocates `initial` bytes now (may be 0); never grows beyond `max`. */
int	 buf_init(struct buf *b, size_t initial, size_t max);
/* Makes room for `extra` more bytes after `len`; -1 if over `max` or OOM. */
int	 buf_reserve(struct buf *b, size_t extra);
int	 buf_append(struct buf *b, const void *data, size_t len);
/* Appends formatted text (no NUL counted in len); -1 if over `max`. */
int	 buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	 buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void	 buf_reset(struct buf *b);
void	 buf_free(struct buf *b);

#endif
