/*
 * fpb.h: what fp-gen and fp-sink must compute identically: the datagram
 * hash that proves byte-exact, in-order delivery, and the random number
 * generator that makes a generator run reproducible from its seed; and
 * the option parsing the bench tools share.
 *
 * Header-only and static inline: the two tools are separate programs and
 * share no library of their own.
 */
#ifndef FLOWPOST_FPB_H
#define FLOWPOST_FPB_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FPB_K1	0x9e3779b185ebca87ULL
#define FPB_K2	0xc2b2ae3d27d4eb4fULL
#define FPB_K3	0x165667b19e3779f9ULL

static inline uint64_t
fpb_rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Avalanche finisher: every input bit flips about half the output bits. */
static inline uint64_t
fpb_fmix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Little-endian 64-bit load through memcpy: no alignment assumption. */
static inline uint64_t
fpb_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t
fpb_lane(uint64_t h, uint64_t w)
{
	return fpb_rotl(h + w * FPB_K2, 31) * FPB_K1;
}

/*
 * 64-bit hash of one datagram.  Four independent lanes over 8-byte words
 * let the CPU overlap the multiplies, so hashing a 1.4 KB datagram costs
 * far less than receiving it; a sink that hashes everything stays faster
 * than the path it measures.  Not cryptographic: it detects accidents
 * (loss, truncation, reordering, corruption), not attackers.
 */
static inline uint64_t
fpb_hash(const uint8_t *p, size_t len)
{
	uint64_t	h0 = FPB_K1 + FPB_K2, h1 = FPB_K2, h2 = 0, h3 = FPB_K3;
	uint64_t	h, tail = 0;
	size_t		n = len;

	for (; n >= 32; p += 32, n -= 32) {
		h0 = fpb_lane(h0, fpb_le64(p));
		h1 = fpb_lane(h1, fpb_le64(p + 8));
		h2 = fpb_lane(h2, fpb_le64(p + 16));
		h3 = fpb_lane(h3, fpb_le64(p + 24));
	}
	for (; n >= 8; p += 8, n -= 8)
		h0 = fpb_lane(h0, fpb_le64(p));
	for (size_t i = 0; i < n; i++)
		tail |= (uint64_t)p[i] << (8 * i);
	h1 = fpb_lane(h1, tail ^ ((uint64_t)n << 56));
	h = fpb_rotl(h0, 1) + fpb_rotl(h1, 7) + fpb_rotl(h2, 12) +
	    fpb_rotl(h3, 18);
	return fpb_fmix(h ^ (uint64_t)len * FPB_K3);
}

/*
 * Two digests over a run of datagrams: `ordered` changes if any datagram
 * is missing, extra, altered or out of place; `set` (a sum) ignores order,
 * so equal `set` with different `ordered` means "all there, reordered".
 */
struct fpb_digest {
	uint64_t	ordered;
	uint64_t	set;
};

static inline void
fpb_digest_add(struct fpb_digest *d, const uint8_t *p, size_t len)
{
	uint64_t h = fpb_hash(p, len);

	d->ordered = fpb_fmix(d->ordered ^ h) + FPB_K1;
	d->set += h;
}

/* xoshiro256** seeded through splitmix64: fast and reproducible. */
struct fpb_rng {
	uint64_t	s[4];
};

static inline void
fpb_rng_seed(struct fpb_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		seed += 0x9e3779b97f4a7c15ULL;
		r->s[i] = fpb_fmix(seed);
	}
}

static inline uint64_t
fpb_rng_next(struct fpb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = fpb_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = fpb_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n) without division (Lemire's multiply-shift). */
static inline uint32_t
fpb_rng_below(struct fpb_rng *r, uint32_t n)
{
	return (uint32_t)(((fpb_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in (0, 1]: never 0, so it can go under a log or a power. */
static inline double
fpb_rng_unit(struct fpb_rng *r)
{
	return ((double)(fpb_rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
}

/* CLOCK_MONOTONIC in seconds: the clock both tools and bench/run share. */
static inline double
fpb_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds, possibly fractional ("0.5", "3"), at most 10^6; -1 if not. */
static inline int
fpb_parse_seconds(const char *s, double *out)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e6)
		return -1;
	*out = v;
	return 0;
}

#endif
