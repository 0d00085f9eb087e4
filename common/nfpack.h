/*
 * nfpack.h: a reversible transform of batch content that makes NetFlow v5
 * compress well (docs/PROTOCOL.md 1.4 is the specification).
 *
 * Codec 2 of the batch format is "nfpack, then zlib".  The transform keeps
 * every byte of the content but reorders it into columns: entry headers
 * field by field with the receive times delta-coded, NetFlow v5 headers with
 * their clocks and sequence numbers delta-coded against the previous v5
 * datagram, and the 48-byte v5 flow records as 48 byte planes, coded
 * against the previous record (start time difference, duration, addresses
 * and ports XORed with the previous record's swapped ones).  Payloads
 * of any other kind are kept verbatim.  The output is never more than
 * nfpack_bound() bytes and the encoder is one linear pass over the content.
 */
#ifndef FLOWPOST_NFPACK_H
#define FLOWPOST_NFPACK_H

#include <stddef.h>
#include <stdint.h>

#define NFPACK_VERSION	1
/* version, health_len, count, n5, nrec, other_len */
#define NFPACK_FIXED	21

/*
 * Largest transformed size of a content of `raw_len` bytes: the content,
 * the fixed fields and one kind byte per entry (an entry is at least 33
 * bytes).  0 if it would overflow.
 */
size_t	nfpack_bound(size_t raw_len);

/*
 * Transforms a content given as its two parts (the health block and the
 * entries, as wire_seal() takes them) into out[0 .. outlen).  The entries
 * must be well formed (wire.h's layout).  0 with the size in *used; -1 if
 * an entry is malformed, a part is 4 GiB or more, or out is too small.
 */
int	nfpack_encode(const uint8_t *health, size_t health_len,
	    const uint8_t *entries, size_t entries_len, uint8_t *out,
	    size_t outlen, size_t *used);

/*
 * The inverse: rebuilds the content into out[0 .. outlen).  Every length
 * is checked against the input and against outlen before anything is
 * written; any inconsistency is -1.  0 with the content's size in *used.
 */
int	nfpack_decode(const uint8_t *in, size_t inlen, uint8_t *out,
	    size_t outlen, size_t *used);

#endif
