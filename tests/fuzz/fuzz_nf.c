/*
 * fuzz_nf.c: libFuzzer target for NetFlow/IPFIX sniffing (common/nf.c).
 *
 * Besides running nf_check() on every input, it holds nf.h's promises:
 * NF_OK only for versions 5, 9 and 10, a reason whenever the verdict is not
 * NF_OK, the header fields read from where the formats put them, and the
 * same verdict with or without an info struct.
 */
#include <string.h>

#include "fuzzlib.h"
#include "nf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Header fields of a datagram nf_check() accepted, read independently. */
static void
check_header(const uint8_t *p, size_t len, const struct nf_info *info)
{
	switch (info->version) {
	case 5:
		FUZZ_CHECK(len >= NF_V5_HEADER);
		FUZZ_CHECK(info->records >= 1 && info->records <= 30);
		FUZZ_CHECK(len == NF_V5_HEADER + (size_t)NF_V5_RECORD *
		    info->records);
		FUZZ_CHECK(info->records == get16(p + 2));
		FUZZ_CHECK(info->data_records == info->records);
		FUZZ_CHECK(info->export_time == get32(p + 8));
		FUZZ_CHECK(info->seq == get32(p + 16));
		FUZZ_CHECK(info->domain == ((uint32_t)p[20] << 8 | p[21]));
		FUZZ_CHECK(!info->has_templates);
		break;
	case 9:
		FUZZ_CHECK(len >= NF_V9_HEADER);
		FUZZ_CHECK(info->records == get16(p + 2));
		FUZZ_CHECK(info->export_time == get32(p + 8));
		FUZZ_CHECK(info->seq == get32(p + 12));
		FUZZ_CHECK(info->domain == get32(p + 16));
		break;
	case 10:
		FUZZ_CHECK(len >= NF_IPFIX_HEADER);
		FUZZ_CHECK(get16(p + 2) == len);
		FUZZ_CHECK(info->export_time == get32(p + 4));
		FUZZ_CHECK(info->seq == get32(p + 8));
		FUZZ_CHECK(info->domain == get32(p + 12));
		break;
	default:
		FUZZ_CHECK(!"NF_OK for a version other than 5, 9 or 10");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_info	 info;
	enum nf_verdict	 v;

	v = nf_check(data, size, &info);
	FUZZ_CHECK(v == NF_OK || v == NF_MALFORMED || v == NF_INVALID);
	FUZZ_CHECK(nf_check(data, size, NULL) == v);

	if (v == NF_OK) {
		FUZZ_CHECK(info.version == 5 || info.version == 9 ||
		    info.version == 10);
		FUZZ_CHECK(size >= 4 && info.version == get16(data));
		check_header(data, size, &info);
	} else {
		FUZZ_CHECK(info.why != NULL && info.why[0] != '\0');
		FUZZ_CHECK(strlen(info.why) < 200);
	}
	/* A known version is never "not NetFlow" once its header fits. */
	if (size >= NF_V5_HEADER && (get16(data) == 5 || get16(data) == 9 ||
	    get16(data) == 10))
		FUZZ_CHECK(v != NF_INVALID);
	if (size < 4 || (get16(data) != 5 && get16(data) != 9 &&
	    get16(data) != 10))
		FUZZ_CHECK(v == NF_INVALID);
	return 0;
}
