/*
 * pktdecode.c: link layer, IPv4/IPv6 and UDP headers of captured frames.
 *
 * Every read goes through a cursor (bytes.h) over the captured bytes.  A
 * frame whose capture is shorter than the wire frame (snaplen), or whose
 * IP or UDP length claims more than was captured, is truncated: its
 * payload would be incomplete, so it is never handed on.  Frames that are
 * not UDP are told apart before truncation is judged, so a capture cut to
 * a short snaplen reports its TCP as "not UDP", not as truncated.
 */
#include <string.h>

#include "bytes.h"

#include "pktdecode.h"

#define ETHERTYPE_IPV4		0x0800
#define ETHERTYPE_IPV6		0x86dd

#define IP6_HOPOPTS		0
#define IP6_ROUTING		43
#define IP6_FRAGMENT		44
#define IP6_AH			51
#define IP6_NONE		59
#define IP6_DSTOPTS		60

#define IPV4_HEADER		20
#define IPV6_HEADER		40
#define UDP_HEADER		8

#define SLL_HEADER		16
#define SLL2_HEADER		20

int
pktdecode_link_supported(int linktype)
{
	switch (linktype) {
	case PKTDECODE_LINK_NULL:
	case PKTDECODE_LINK_EN10MB:
	case PKTDECODE_LINK_RAW:
	case PKTDECODE_LINK_RAW_OBSD:
	case PKTDECODE_LINK_RAW_101:
	case PKTDECODE_LINK_LOOP:
	case PKTDECODE_LINK_SLL:
	case PKTDECODE_LINK_IPV4:
	case PKTDECODE_LINK_IPV6:
	case PKTDECODE_LINK_SLL2:
		return 0;
	default:
		return -1;
	}
}

const char *
pktdecode_link_name(int linktype)
{
	switch (linktype) {
	case PKTDECODE_LINK_NULL:
		return "BSD loopback";
	case PKTDECODE_LINK_EN10MB:
		return "Ethernet";
	case PKTDECODE_LINK_RAW:
	case PKTDECODE_LINK_RAW_OBSD:
	case PKTDECODE_LINK_RAW_101:
		return "raw IP";
	case PKTDECODE_LINK_LOOP:
		return "OpenBSD loopback";
	case PKTDECODE_LINK_SLL:
		return "Linux cooked (SLL)";
	case PKTDECODE_LINK_IPV4:
		return "raw IPv4";
	case PKTDECODE_LINK_IPV6:
		return "raw IPv6";
	case PKTDECODE_LINK_SLL2:
		return "Linux cooked (SLL2)";
	default:
		return "unsupported";
	}
}

static enum pktdecode_result
fail(enum pktdecode_result r, const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return r;
}

static int
is_vlan_tpid(uint16_t type)
{
	/* 802.1Q, 802.1ad, and the pre-standard QinQ TPIDs */
	return type == 0x8100 || type == 0x88a8 || type == 0x9100 ||
	    type == 0x9200;
}

/* BSD address family numbers of IPv6: NetBSD/OpenBSD, FreeBSD, Darwin. */
static int
loop_family(uint32_t af)
{
	if (af == 2)
		return 4;
	if (af == 10 || af == 24 || af == 28 || af == 30)
		return 6;
	return 0;
}

/*
 * Leaves the cursor on the IP header and sets *family (4 or 6).  Returns
 * PKTDECODE_UDP to mean "go on".
 */
static enum pktdecode_result
strip_link(int linktype, struct rcur *c, int *family, const char **why)
{
	const uint8_t	*p;
	uint16_t	 type = 0;
	uint32_t	 af;
	int		 tags, has_type = 1;

	switch (linktype) {
	case PKTDECODE_LINK_EN10MB:
		rcur_take(c, 12);		/* destination, source MAC */
		type = rcur_u16(c);
		break;
	case PKTDECODE_LINK_SLL:
		rcur_take(c, 14);		/* packet type .. address */
		type = rcur_u16(c);
		break;
	case PKTDECODE_LINK_SLL2:
		type = rcur_u16(c);
		rcur_take(c, SLL2_HEADER - 2);
		break;
	case PKTDECODE_LINK_NULL:
	case PKTDECODE_LINK_LOOP:
		if ((p = rcur_take(c, 4)) == NULL)
			break;
		af = be32(p);
		if (linktype == PKTDECODE_LINK_NULL && af > 0xffff)
			/* written by a little-endian machine */
			af = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
			    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		if ((*family = loop_family(af)) == 0)
			return fail(PKTDECODE_NOT_UDP, why, "not IP");
		return PKTDECODE_UDP;
	case PKTDECODE_LINK_RAW:
	case PKTDECODE_LINK_RAW_OBSD:
	case PKTDECODE_LINK_RAW_101:
	case PKTDECODE_LINK_IPV4:
	case PKTDECODE_LINK_IPV6:
		has_type = 0;
		break;
	default:
		return fail(PKTDECODE_NOT_UDP, why, "unsupported link type");
	}
	if (c->err)
		return fail(PKTDECODE_TRUNCATED, why, "short link header");
	if (!has_type) {
		if (c->left == 0)
			return fail(PKTDECODE_TRUNCATED, why, "empty packet");
		*family = c->p[0] >> 4;
		if (linktype == PKTDECODE_LINK_IPV4 && *family != 4)
			return fail(PKTDECODE_BAD, why, "not IPv4 on an IPv4 "
			    "link");
		if (linktype == PKTDECODE_LINK_IPV6 && *family != 6)
			return fail(PKTDECODE_BAD, why, "not IPv6 on an IPv6 "
			    "link");
		if (*family != 4 && *family != 6)
			return fail(PKTDECODE_NOT_UDP, why, "not IP");
		return PKTDECODE_UDP;
	}
	/* VLAN tags: TPID already read as `type`, then TCI, then a type */
	for (tags = 0; is_vlan_tpid(type); tags++) {
		if (tags == PKTDECODE_MAX_TAGS)
			return fail(PKTDECODE_BAD, why, "too many VLAN tags");
		rcur_u16(c);
		type = rcur_u16(c);
		if (c->err)
			return fail(PKTDECODE_TRUNCATED, why,
			    "short VLAN tag");
	}
	if (type == ETHERTYPE_IPV4)
		*family = 4;
	else if (type == ETHERTYPE_IPV6)
		*family = 6;
	else
		return fail(PKTDECODE_NOT_UDP, why, "not IP");
	return PKTDECODE_UDP;
}

/* The UDP header at `p` (`len` bytes of IP payload). */
static enum pktdecode_result
decode_udp(const uint8_t *p, size_t len, struct pktdecode_udp *u,
    enum pktdecode_result short_result, const char **why)
{
	struct rcur	c;
	uint16_t	ulen;

	rcur_init(&c, p, len);
	u->src_port = rcur_u16(&c);
	u->dst_port = rcur_u16(&c);
	ulen = rcur_u16(&c);
	rcur_u16(&c);				/* checksum: often offloaded */
	if (c.err)
		return fail(short_result, why, "short UDP header");
	if (ulen < UDP_HEADER)
		return fail(PKTDECODE_BAD, why, "UDP length below 8");
	if ((size_t)ulen > len)
		return fail(short_result, why, "UDP length beyond the packet");
	u->payload = p + UDP_HEADER;
	u->len = (size_t)ulen - UDP_HEADER;
	return PKTDECODE_UDP;
}

static enum pktdecode_result
decode_ipv4(struct rcur *c, int short_cap, struct pktdecode_udp *u,
    struct pktdecode_frag *f, const char **why)
{
	const uint8_t	*ip = c->p;
	size_t		 avail = c->left, ihl, total;
	uint16_t	 fragfield;

	if (avail < IPV4_HEADER)
		return fail(PKTDECODE_TRUNCATED, why, "short IPv4 header");
	if (ip[0] >> 4 != 4)
		return fail(PKTDECODE_BAD, why, "IPv4 version is not 4");
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	total = be16(ip + 2);
	if (ihl < IPV4_HEADER || total < ihl)
		return fail(PKTDECODE_BAD, why, "IPv4 header length");
	if (ip[9] != PKTDECODE_PROTO_UDP)
		return fail(PKTDECODE_NOT_UDP, why, "not UDP");
	if (ihl > avail)
		return fail(PKTDECODE_TRUNCATED, why, "short IPv4 options");
	/*
	 * The header checksum is not checked: anonymised or rewritten
	 * captures keep stale ones, and the payload is passed on as it was.
	 */
	if (short_cap || total > avail)
		return fail(PKTDECODE_TRUNCATED, why,
		    "capture shorter than the IPv4 packet");
	/* total <= avail: whatever follows is link padding */
	fragfield = be16(ip + 6);
	if (fragfield & 0x3fff) {		/* MF, or an offset */
		f->family = 4;
		memset(f->src, 0, sizeof(f->src));
		memset(f->dst, 0, sizeof(f->dst));
		memcpy(f->src, ip + 12, 4);
		memcpy(f->dst, ip + 16, 4);
		f->id = be16(ip + 4);
		f->proto = ip[9];
		f->offset = (uint32_t)(fragfield & 0x1fff) * 8;
		f->more = (fragfield & 0x2000) != 0;
		f->data = ip + ihl;
		f->len = total - ihl;
		return PKTDECODE_FRAGMENT;
	}
	u->family = 4;
	memset(u->src, 0, sizeof(u->src));
	memset(u->dst, 0, sizeof(u->dst));
	memcpy(u->src, ip + 12, 4);
	memcpy(u->dst, ip + 16, 4);
	return decode_udp(ip + ihl, total - ihl, u, PKTDECODE_TRUNCATED, why);
}

static int
ipv6_skippable(uint8_t nxt)
{
	return nxt == IP6_HOPOPTS || nxt == IP6_ROUTING ||
	    nxt == IP6_DSTOPTS || nxt == IP6_AH;
}

/*
 * Walks extension headers from `*nxt` over the cursor.  Stops at UDP, at a
 * fragment header (if `frag` is not NULL) or at anything else.
 */
static enum pktdecode_result
ipv6_walk(struct rcur *c, uint8_t *nxt, struct pktdecode_frag *frag,
    enum pktdecode_result short_result, const char **why)
{
	const uint8_t	*h;
	size_t		 hl;
	uint16_t	 offflags;
	int		 n;

	for (n = 0; n <= PKTDECODE_MAX_EXT; n++) {
		if (*nxt == PKTDECODE_PROTO_UDP)
			return PKTDECODE_UDP;
		if (*nxt == IP6_FRAGMENT) {
			if (frag == NULL)
				return fail(PKTDECODE_BAD, why,
				    "IPv6 fragment header after reassembly");
			if ((h = rcur_take(c, 8)) == NULL)
				return fail(short_result, why,
				    "short IPv6 fragment header");
			offflags = be16(h + 2);
			*nxt = h[0];
			if ((offflags & 0xfff9) == 0)
				/* an atomic fragment: the whole packet */
				continue;
			frag->id = be32(h + 4);
			frag->offset = offflags & 0xfff8;
			frag->more = offflags & 1;
			frag->proto = *nxt;
			return PKTDECODE_FRAGMENT;
		}
		if (!ipv6_skippable(*nxt))
			return fail(PKTDECODE_NOT_UDP, why, *nxt == IP6_NONE ?
			    "IPv6 without payload" : "not UDP");
		if (c->left < 2)
			return fail(short_result, why,
			    "short IPv6 extension header");
		hl = *nxt == IP6_AH ? ((size_t)c->p[1] + 2) * 4 :
		    ((size_t)c->p[1] + 1) * 8;
		*nxt = c->p[0];
		if (rcur_take(c, hl) == NULL)
			return fail(short_result, why,
			    "short IPv6 extension header");
	}
	return fail(PKTDECODE_BAD, why, "too many IPv6 extension headers");
}

static enum pktdecode_result
decode_ipv6(struct rcur *c, int short_cap, struct pktdecode_udp *u,
    struct pktdecode_frag *f, const char **why)
{
	const uint8_t		*ip = c->p;
	size_t			 plen;
	struct rcur		 pc;
	enum pktdecode_result	 r;
	uint8_t			 nxt;

	if (c->left < IPV6_HEADER)
		return fail(PKTDECODE_TRUNCATED, why, "short IPv6 header");
	if (ip[0] >> 4 != 6)
		return fail(PKTDECODE_BAD, why, "IPv6 version is not 6");
	plen = be16(ip + 4);
	nxt = ip[6];
	if (plen == 0)
		/* no payload, or a jumbogram: never export traffic */
		return fail(PKTDECODE_NOT_UDP, why, "IPv6 without payload");
	/* the walk below sees only the captured bytes of the payload */
	rcur_init(&pc, ip + IPV6_HEADER, c->left - IPV6_HEADER < plen ?
	    c->left - IPV6_HEADER : plen);
	r = ipv6_walk(&pc, &nxt, f, PKTDECODE_TRUNCATED, why);
	if (r != PKTDECODE_UDP && r != PKTDECODE_FRAGMENT)
		return r;
	if (short_cap || IPV6_HEADER + plen > c->left)
		return fail(PKTDECODE_TRUNCATED, why,
		    "capture shorter than the IPv6 packet");
	if (r == PKTDECODE_FRAGMENT) {
		f->family = 6;
		memcpy(f->src, ip + 8, 16);
		memcpy(f->dst, ip + 24, 16);
		f->data = pc.p;
		f->len = pc.left;
		return PKTDECODE_FRAGMENT;
	}
	u->family = 6;
	memcpy(u->src, ip + 8, 16);
	memcpy(u->dst, ip + 24, 16);
	return decode_udp(pc.p, pc.left, u, PKTDECODE_TRUNCATED, why);
}

enum pktdecode_result
pktdecode_frame(int linktype, const uint8_t *frame, size_t caplen,
    size_t wirelen, struct pktdecode_udp *u, struct pktdecode_frag *f,
    const char **why)
{
	struct rcur		c;
	enum pktdecode_result	r;
	int			family = 0;

	if (why != NULL)
		*why = NULL;
	rcur_init(&c, frame, caplen);
	if ((r = strip_link(linktype, &c, &family, why)) != PKTDECODE_UDP)
		return r;
	if (family == 4)
		return decode_ipv4(&c, caplen < wirelen, u, f, why);
	return decode_ipv6(&c, caplen < wirelen, u, f, why);
}

enum pktdecode_result
pktdecode_transport(uint8_t family, const uint8_t *src, const uint8_t *dst,
    uint8_t proto, const uint8_t *data, size_t len, struct pktdecode_udp *u,
    const char **why)
{
	struct rcur		c;
	enum pktdecode_result	r;
	uint8_t			nxt = proto;

	if (why != NULL)
		*why = NULL;
	rcur_init(&c, data, len);
	if (family == 6) {
		if ((r = ipv6_walk(&c, &nxt, NULL, PKTDECODE_BAD,
		    why)) != PKTDECODE_UDP)
			return r;
	} else if (family != 4)
		return fail(PKTDECODE_BAD, why, "unknown address family");
	else if (nxt != PKTDECODE_PROTO_UDP)
		return fail(PKTDECODE_NOT_UDP, why, "not UDP");
	u->family = family;
	memset(u->src, 0, sizeof(u->src));
	memset(u->dst, 0, sizeof(u->dst));
	memcpy(u->src, src, family == 4 ? 4 : 16);
	memcpy(u->dst, dst, family == 4 ? 4 : 16);
	return decode_udp(c.p, c.left, u, PKTDECODE_BAD, why);
}
