/*
 * srcmap.h: the exporter's identity on the last hop.
 *
 * By default the gateway sends every datagram from one socket per
 * collector: the collector sees all exporters behind all clients as one
 * exporter, the gateway's address and port.  Collectors scope templates
 * and sequence numbers by exporter (IPFIX: source address, source port and
 * observation domain; NetFlow v9: source address and source id), so two
 * exporters with the same domain or source id mix their templates and
 * their numbering.  Two options keep exporters apart:
 *
 *   source_port_map = yes   one UDP socket per exporter (address, port),
 *                           bound to its own ephemeral port of the
 *                           gateway.  Enough for IPFIX; not for v9, whose
 *                           collectors ignore the port.  No privileges.
 *   preserve_source = yes   datagrams leave with the exporter's own
 *                           address and port as source.  IPv4: one raw
 *                           socket (IPPROTO_RAW, IP_HDRINCL) with the IP
 *                           and UDP headers built here, UDP checksum
 *                           included; needs CAP_NET_RAW when the gateway
 *                           starts (it is opened before the privilege
 *                           drop).  IPv6: one socket per exporter with
 *                           IPV6_TRANSPARENT bound to the exporter's
 *                           address and port (the kernel makes the
 *                           checksum); needs CAP_NET_RAW or CAP_NET_ADMIN
 *                           whenever a new exporter appears, so it does
 *                           not work after a switch to `user`.
 *
 * A datagram whose identity cannot be kept (an IPv6 exporter for an IPv4
 * collector or the other way round, an IPv4 packet over 65535 bytes with
 * headers, a bind or send refused) goes out the way it would without the
 * option: through the per-exporter socket when source_port_map is also on,
 * else through the collector's own socket.  Each such fallback is counted.
 *
 * Sockets are bounded: SRCMAP_SOCKETS_MAX in all, the least recently used
 * one is closed when another is needed (that exporter then gets a new
 * port, which a collector sees as a new exporter).
 */
#ifndef FLOWPOST_GATEWAY_SRCMAP_H
#define FLOWPOST_GATEWAY_SRCMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "pacer.h"
#include "wire.h"

#define SRCMAP_SOCKETS_MAX	1024

struct srcmap_params {
	int		 preserve_source;
	int		 source_port_map;
	size_t		 sockets_max;	/* 0 = SRCMAP_SOCKETS_MAX */
};

struct srcmap_counters {
	uint64_t	preserved;	/* sent with the exporter's address */
	uint64_t	mapped;		/* sent from the exporter's own port */
	uint64_t	fallbacks;	/* identity could not be kept */
	uint64_t	sockets;	/* gauge: per-exporter sockets open */
	uint64_t	evicted;	/* sockets closed to make room */
};

struct srcmap;

/*
 * Opens what needs privileges now (the raw IPv4 socket).  NULL with a
 * message when preserve_source is set and the raw socket cannot be
 * opened (no CAP_NET_RAW), or out of memory.
 */
struct srcmap	*srcmap_open(const struct srcmap_params *p, char *err,
		    size_t errlen);
void		 srcmap_close(struct srcmap *sm);

/*
 * Sends e[0..n) to one collector at `dst`, paced by `pacer`, keeping each
 * datagram's exporter identity where it can; `fd` is the collector's own
 * socket for fallbacks.  Waits a bounded time for buffer space like the
 * plain path.  0 if every datagram was handed to the kernel, else -1 with
 * errno; *sent and *bytes say how far it got.  Thread-safe.
 */
int		 srcmap_send(struct srcmap *sm, int fd,
		    const struct sockaddr_storage *dst, socklen_t dstlen,
		    const struct wire_entry *e, size_t n, struct pacer *pacer,
		    size_t *sent, uint64_t *bytes);

void		 srcmap_get_counters(struct srcmap *sm,
		    struct srcmap_counters *c);
/* Appends the counters in Prometheus text format; -1 over out's ceiling. */
int		 srcmap_metrics(struct srcmap *sm, struct buf *out);

/* The UDP checksum of an IPv4 datagram (exposed for the unit test). */
uint16_t	 srcmap_udp4_checksum(const uint8_t src[4],
		    const uint8_t dst[4], const uint8_t *udp, size_t len);

#endif
