/*
 * nf.c: NetFlow v5 / v9 / IPFIX sniffing.
 *
 * Reads the export header and walks the (flow)set length fields, nothing
 * more: no templates are kept and no record is decoded.  A datagram is
 * NF_INVALID when it is not export traffic at all, NF_MALFORMED when it
 * claims a known version but its own lengths disagree.
 */
#include <string.h>

#include "bytes.h"
#include "nf.h"

#define NF_V5_MAX_COUNT		30	/* flows in one v5 datagram */
#define NF_SET_HEADER		4	/* id and length of a (flow)set */

static enum nf_verdict
nf_fail(struct nf_info *info, enum nf_verdict v, const char *why)
{
	info->why = why;
	return v;
}

static enum nf_verdict
nf_v5(struct rcur *r, size_t len, struct nf_info *info)
{
	uint8_t	 engine_type, engine_id;
	uint16_t count;

	if (len < NF_V5_HEADER)
		return nf_fail(info, NF_INVALID, "shorter than a v5 header");
	count = rcur_u16(r);
	(void)rcur_u32(r);			/* sys_uptime */
	info->export_time = rcur_u32(r);	/* unix_secs */
	(void)rcur_u32(r);			/* unix_nsecs */
	info->seq = rcur_u32(r);		/* flow_sequence */
	engine_type = rcur_u8(r);
	engine_id = rcur_u8(r);
	(void)rcur_u16(r);			/* sampling */
	if (r->err)
		return nf_fail(info, NF_INVALID, "shorter than a v5 header");
	info->domain = (uint32_t)engine_type << 8 | engine_id;
	info->records = count;
	info->data_records = count;

	if (count == 0)
		return nf_fail(info, NF_MALFORMED, "v5 count is 0");
	if (count > NF_V5_MAX_COUNT)
		return nf_fail(info, NF_MALFORMED, "v5 count over 30");
	if ((size_t)NF_V5_HEADER + (size_t)NF_V5_RECORD * count != len)
		return nf_fail(info, NF_MALFORMED,
		    "v5 length disagrees with count");
	return NF_OK;
}

/* 1 if every remaining byte of the cursor is zero. */
static int
nf_all_zero(const struct rcur *r)
{
	for (size_t i = 0; i < r->left; i++)
		if (r->p[i] != 0)
			return 0;
	return 1;
}

static enum nf_verdict
nf_v9(struct rcur *r, size_t len, struct nf_info *info)
{
	uint16_t id, flen;

	if (len < NF_V9_HEADER)
		return nf_fail(info, NF_INVALID, "shorter than a v9 header");
	info->records = rcur_u16(r);		/* count */
	(void)rcur_u32(r);			/* sys_uptime */
	info->export_time = rcur_u32(r);	/* unix_secs */
	info->seq = rcur_u32(r);		/* package sequence */
	info->domain = rcur_u32(r);		/* source id */
	if (r->err)
		return nf_fail(info, NF_INVALID, "shorter than a v9 header");

	/*
	 * Exporters pad datagrams: fewer than 4 bytes left, or only zero
	 * bytes left, end the walk without error.  The zero scan stops at
	 * the first non-zero byte, which a valid flowset header has within
	 * its 4 bytes, so the walk stays linear.
	 */
	while (r->left >= NF_SET_HEADER && !nf_all_zero(r)) {
		id = rcur_u16(r);
		flen = rcur_u16(r);
		if (flen < NF_SET_HEADER)
			return nf_fail(info, NF_MALFORMED,
			    "v9 flowset length under 4");
		if (rcur_take(r, flen - NF_SET_HEADER) == NULL)
			return nf_fail(info, NF_MALFORMED,
			    "v9 flowset overruns datagram");
		/* 0: template flowset, 1: options template flowset. */
		if (id == 0 || id == 1)
			info->has_templates = 1;
	}
	return NF_OK;
}

static enum nf_verdict
nf_ipfix(struct rcur *r, size_t len, struct nf_info *info)
{
	uint16_t mlen, id, slen;

	if (len < NF_IPFIX_HEADER)
		return nf_fail(info, NF_INVALID, "shorter than an IPFIX header");
	mlen = rcur_u16(r);			/* message length */
	info->export_time = rcur_u32(r);
	info->seq = rcur_u32(r);
	info->domain = rcur_u32(r);		/* observation domain */
	if (r->err)
		return nf_fail(info, NF_INVALID, "shorter than an IPFIX header");
	if (mlen != len)
		return nf_fail(info, NF_MALFORMED,
		    "IPFIX length disagrees with datagram");

	/* IPFIX pads inside sets, so the sets must fill the message. */
	while (r->left > 0) {
		id = rcur_u16(r);
		slen = rcur_u16(r);
		if (r->err)
			return nf_fail(info, NF_MALFORMED,
			    "IPFIX trailing bytes after last set");
		if (slen < NF_SET_HEADER)
			return nf_fail(info, NF_MALFORMED,
			    "IPFIX set length under 4");
		if (rcur_take(r, slen - NF_SET_HEADER) == NULL)
			return nf_fail(info, NF_MALFORMED,
			    "IPFIX set overruns message");
		/* 2: template set, 3: options template set. */
		if (id == 2 || id == 3)
			info->has_templates = 1;
	}
	return NF_OK;
}

enum nf_verdict
nf_check(const uint8_t *p, size_t len, struct nf_info *info)
{
	struct nf_info	 scratch;
	struct rcur	 r;

	if (info == NULL)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (p == NULL || len < 4)
		return nf_fail(info, NF_INVALID, "too short for an export header");

	rcur_init(&r, p, len);
	info->version = rcur_u16(&r);
	switch (info->version) {
	case 5:
		return nf_v5(&r, len, info);
	case 9:
		return nf_v9(&r, len, info);
	case 10:
		return nf_ipfix(&r, len, info);
	}
	return nf_fail(info, NF_INVALID, "not NetFlow v5/v9 or IPFIX");
}
