/*
 * nf.h: cheap NetFlow v5 / v9 / IPFIX sniffing.
 *
 * No record decoding: only what a forwarder needs to decide whether a
 * datagram is export traffic at all, whether its own length fields agree
 * with themselves, and which stream and sequence number it carries (for
 * loss accounting).  Every read is length-checked first.
 */
#ifndef FLOWPOST_NF_H
#define FLOWPOST_NF_H

#include <stddef.h>
#include <stdint.h>

#define NF_V5_HEADER	24
#define NF_V5_RECORD	48
#define NF_V9_HEADER	20
#define NF_IPFIX_HEADER	16

enum nf_verdict {
	NF_OK = 0,		/* well-formed export datagram */
	NF_MALFORMED = 1,	/* v5/v9/IPFIX, but its lengths disagree */
	NF_INVALID = 2,		/* not NetFlow/IPFIX at all: never forwarded */
};

struct nf_info {
	uint16_t	version;	/* 5, 9 or 10 */
	uint32_t	domain;		/* v5: engine type<<8|id; v9: source id;
					 * IPFIX: observation domain */
	uint32_t	seq;		/* header sequence number */
	uint32_t	export_time;	/* header unix seconds */
	uint32_t	records;	/* v5: flows in header; v9: header
					 * count; IPFIX: data records seen */
	uint32_t	data_records;	/* data (not template) records where
					 * they can be counted without templates
					 * (v5: count; v9/IPFIX: 0) */
	int		has_templates;	/* a v9/IPFIX template or options
					 * template set is present */
	const char	*why;		/* reason when not NF_OK, static text */
};

/* Classifies one datagram; fills *info (may be NULL). */
enum nf_verdict	 nf_check(const uint8_t *p, size_t len, struct nf_info *info);

#endif
