/*
 * pktdecode.h: captured frames to UDP datagrams.
 *
 * Strips the link layer (Ethernet with 802.1Q/802.1ad tags, Linux cooked
 * SLL and SLL2, raw IP, BSD loopback), checks the IPv4 or IPv6 header,
 * walks IPv6 extension headers and finds the UDP datagram.  Fragments are
 * handed back for reassembly (reasm.h), whose output goes through
 * pktdecode_transport().  Every read is bounded by the captured length; a
 * frame the capture cut short is reported as truncated and never yields a
 * payload.  The results point into the caller's frame.
 */
#ifndef FLOWPOST_CLIENT_PKTDECODE_H
#define FLOWPOST_CLIENT_PKTDECODE_H

#include <stddef.h>
#include <stdint.h>

/* Link types, by their pcap LINKTYPE_ / DLT_ numbers. */
#define PKTDECODE_LINK_NULL	0	/* BSD loopback, host byte order */
#define PKTDECODE_LINK_EN10MB	1	/* Ethernet */
#define PKTDECODE_LINK_RAW	12	/* raw IP (DLT_RAW on most systems) */
#define PKTDECODE_LINK_RAW_OBSD	14	/* raw IP (DLT_RAW on OpenBSD) */
#define PKTDECODE_LINK_RAW_101	101	/* raw IP (LINKTYPE_RAW) */
#define PKTDECODE_LINK_LOOP	108	/* OpenBSD loopback, network order */
#define PKTDECODE_LINK_SLL	113	/* Linux cooked capture v1 */
#define PKTDECODE_LINK_IPV4	228
#define PKTDECODE_LINK_IPV6	229
#define PKTDECODE_LINK_SLL2	276	/* Linux cooked capture v2 */

/* At most this many VLAN tags and IPv6 extension headers are walked. */
#define PKTDECODE_MAX_TAGS	8
#define PKTDECODE_MAX_EXT	16

#define PKTDECODE_PROTO_UDP	17

enum pktdecode_result {
	PKTDECODE_UDP = 0,	/* a whole UDP datagram: *u is filled */
	PKTDECODE_FRAGMENT,	/* an IP fragment: *f is filled */
	PKTDECODE_NOT_UDP,	/* not IP, or IP that is not UDP */
	PKTDECODE_TRUNCATED,	/* the capture holds less than the headers say */
	PKTDECODE_BAD,		/* a header that cannot be right */
};

struct pktdecode_udp {
	uint8_t		 family;	/* 4 or 6 */
	uint8_t		 src[16];	/* IPv4 in the first 4 bytes */
	uint8_t		 dst[16];
	uint16_t	 src_port;
	uint16_t	 dst_port;
	const uint8_t	*payload;
	size_t		 len;
};

struct pktdecode_frag {
	uint8_t		 family;
	uint8_t		 src[16];
	uint8_t		 dst[16];
	uint32_t	 id;		/* IPv4: 16 bits; IPv6: 32 bits */
	uint8_t		 proto;		/* protocol (v4) or the fragment
					 * header's next header (v6) */
	uint32_t	 offset;	/* bytes */
	int		 more;		/* more fragments follow */
	const uint8_t	*data;		/* this fragment's part */
	size_t		 len;
};

/* 0 if frames of this pcap link type can be decoded, else -1. */
int	 pktdecode_link_supported(int linktype);
/* "Ethernet", "Linux cooked (SLL2)", ...: for log lines. */
const char *pktdecode_link_name(int linktype);

/*
 * Decodes one captured frame of `caplen` bytes whose length on the wire
 * was `wirelen`.  `why` (may be NULL) gets a static reason for anything
 * but PKTDECODE_UDP and PKTDECODE_FRAGMENT.
 */
enum pktdecode_result pktdecode_frame(int linktype, const uint8_t *frame,
	    size_t caplen, size_t wirelen, struct pktdecode_udp *u,
	    struct pktdecode_frag *f, const char **why);

/*
 * A reassembled packet: `data` is what follows the IP header (IPv4) or
 * the fragment header (IPv6), `proto` the protocol of its first byte.
 * IPv6 extension headers that followed the fragment header are walked.
 */
enum pktdecode_result pktdecode_transport(uint8_t family,
	    const uint8_t *src, const uint8_t *dst, uint8_t proto,
	    const uint8_t *data, size_t len, struct pktdecode_udp *u,
	    const char **why);

#endif
