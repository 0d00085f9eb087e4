/*
 * bytes.h: bounds-checked big-endian cursors over wire bytes.
 *
 * Every read from a batch, a datagram or a pcap record goes through a
 * cursor.  A read past the end does not touch memory: it sets `err`, returns
 * zero, and every later read on that cursor also fails.  Callers check
 * `err` once after a group of reads.
 */
#ifndef FLOWPOST_BYTES_H
#define FLOWPOST_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rcur {
	const uint8_t	*p;
	size_t		 left;
	int		 err;
};

struct wcur {
	uint8_t		*p;
	size_t		 left;
	int		 err;
};

static inline void
rcur_init(struct rcur *c, const void *data, size_t len)
{
	c->p = data;
	c->left = len;
	c->err = 0;
}

static inline const uint8_t *
rcur_take(struct rcur *c, size_t n)
{
	const uint8_t *p;

	if (c->err || n > c->left) {
		c->err = 1;
		return NULL;
	}
	p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static inline uint8_t
rcur_u8(struct rcur *c)
{
	const uint8_t *p = rcur_take(c, 1);

	return p ? p[0] : 0;
}

static inline uint16_t
rcur_u16(struct rcur *c)
{
	const uint8_t *p = rcur_take(c, 2);

	return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

static inline uint32_t
rcur_u32(struct rcur *c)
{
	const uint8_t *p = rcur_take(c, 4);

	return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3] : 0;
}

static inline uint64_t
rcur_u64(struct rcur *c)
{
	uint64_t hi = rcur_u32(c);

	return (hi << 32) | rcur_u32(c);
}

static inline void
wcur_init(struct wcur *c, void *data, size_t len)
{
	c->p = data;
	c->left = len;
	c->err = 0;
}

static inline uint8_t *
wcur_take(struct wcur *c, size_t n)
{
	uint8_t *p;

	if (c->err || n > c->left) {
		c->err = 1;
		return NULL;
	}
	p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static inline void
wcur_u8(struct wcur *c, uint8_t v)
{
	uint8_t *p = wcur_take(c, 1);

	if (p)
		p[0] = v;
}

static inline void
wcur_u16(struct wcur *c, uint16_t v)
{
	uint8_t *p = wcur_take(c, 2);

	if (p) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

static inline void
wcur_u32(struct wcur *c, uint32_t v)
{
	uint8_t *p = wcur_take(c, 4);

	if (p) {
		p[0] = (uint8_t)(v >> 24);
		p[1] = (uint8_t)(v >> 16);
		p[2] = (uint8_t)(v >> 8);
		p[3] = (uint8_t)v;
	}
}

static inline void
wcur_u64(struct wcur *c, uint64_t v)
{
	wcur_u32(c, (uint32_t)(v >> 32));
	wcur_u32(c, (uint32_t)v);
}

static inline void
wcur_bytes(struct wcur *c, const void *src, size_t n)
{
	uint8_t *p = wcur_take(c, n);

	if (p && n > 0)
		memcpy(p, src, n);
}

/* Plain big-endian loads for code that has already checked the length. */
static inline uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Plain big-endian stores, the same bargain: the caller checked room. */
static inline void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

#endif
