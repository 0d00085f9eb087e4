/*
 * nfpack3.h: the field transform of codec 3 (docs/PROTOCOL.md 1.5 is the
 * specification).
 *
 * Codec 3 of the batch format is "nfpack3, then zlib".  Like codec 2's
 * transform it keeps every byte of the content, but it codes NetFlow v5
 * fields rather than bytes: the reply of a connection is one op bit,
 * addresses are ranks in a small move-to-front table, clocks and counters
 * are variable-length differences, fields equal to the previous record's
 * cost a bit, and v5 headers are predicted from the previous datagram of
 * the same exporter.  Each kind of field goes to a column of its own, so
 * deflate sees like next to like.  Payloads that are not well-formed v5
 * are kept verbatim.  The encoder is a scan of the lengths and one pass
 * over the content; the output is never more than nfpack3_bound() bytes.
 */
#ifndef FLOWPOST_NFPACK3_H
#define FLOWPOST_NFPACK3_H

#include <stddef.h>
#include <stdint.h>

#define NFPACK3_VERSION	1
#define NFPACK3_NCOL	19	/* columns, PROTOCOL.md 1.5 */
/* version, health_len, count, n5, nrec, other_len, column lengths */
#define NFPACK3_FIXED	(21 + 4 * NFPACK3_NCOL)

/*
 * Largest transformed size of a content of `raw_len` bytes: a v5 record
 * can grow from 48 to 55 bytes and an entry header from 32 to 35, never
 * more than a sixth overall, plus the fixed fields.  0 if it would
 * overflow.
 */
size_t	nfpack3_bound(size_t raw_len);

/*
 * Transforms a content given as its two parts (the health block and the
 * entries, as wire_seal() takes them) into out[0 .. outlen).  The columns
 * are first laid out at their worst-case sizes, then packed together, so
 * out must have room for the worst case: nfpack3_bound() of the content's
 * size always suffices.  The entries must be well formed (wire.h's
 * layout).  0 with the size in *used; -1 if an entry is malformed, a part
 * is 4 GiB or more, or out is too small.
 */
int	nfpack3_encode(const uint8_t *health, size_t health_len,
	    const uint8_t *entries, size_t entries_len, uint8_t *out,
	    size_t outlen, size_t *used);

/*
 * The inverse: rebuilds the content into out[0 .. outlen).  The content's
 * size follows from the counts and is checked against outlen, and every
 * column against the input, before anything is written; every read is
 * bounded by its column.  Any inconsistency is -1.  0 with the content's
 * size in *used.
 */
int	nfpack3_decode(const uint8_t *in, size_t inlen, uint8_t *out,
	    size_t outlen, size_t *used);

#endif
