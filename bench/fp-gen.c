/*
 * fp-gen.c: NetFlow v5 / IPFIX load generator for the benchmarks.
 *
 * Builds export datagrams that look like a small site's traffic: hosts and
 * service ports drawn with Zipf-like popularity, a TCP/UDP/ICMP mix,
 * Pareto packet counts, flow times that advance with a virtual export
 * clock, and header sequence numbers that are correct per exporter (v5:
 * flows, IPFIX: data records).  Sends them with sendmmsg(), paced to a
 * record rate or as fast as the kernel takes them, or writes them to a
 * pcap file.
 *
 * Everything, timestamps included, derives from --seed and --start-time,
 * never from the wall clock, so a run is reproducible; the digest printed
 * at the end (see fpb.h) is what fp-sink compares against.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "nf.h"
#include "util.h"

#include "fpb.h"

#define GEN_BURST		64	/* datagrams per sendmmsg() */
#define GEN_DGRAM_MAX		1500	/* buffer per datagram */
#define GEN_IPFIX_TARGET	1400	/* IPFIX message size aimed at */
#define GEN_V5_RECORDS		30
#define GEN_EXPORTERS_MAX	64
/* Records per second of export time when unpaced (--rate 0). */
#define GEN_VIRTUAL_RATE	2000
#define GEN_START_TIME		1700000000ULL
/* Exporter uptime when the export clock starts: three days. */
#define GEN_UPTIME_MS		(3ULL * 86400 * 1000)
#define GEN_SNDBUF		(4 * 1024 * 1024)
#define GEN_SYNC_POLL_NS	20000000L

#define IPFIX_TEMPLATE_ID	256
#define IPFIX_RECORD_LEN	55

/* The fixed IPFIX template: (information element, length). */
static const uint16_t ipfix_fields[][2] = {
	{ 8, 4 },	/* sourceIPv4Address */
	{ 12, 4 },	/* destinationIPv4Address */
	{ 7, 2 },	/* sourceTransportPort */
	{ 11, 2 },	/* destinationTransportPort */
	{ 4, 1 },	/* protocolIdentifier */
	{ 6, 2 },	/* tcpControlBits */
	{ 10, 4 },	/* ingressInterface */
	{ 14, 4 },	/* egressInterface */
	{ 2, 8 },	/* packetDeltaCount */
	{ 1, 8 },	/* octetDeltaCount */
	{ 152, 8 },	/* flowStartMilliseconds */
	{ 153, 8 },	/* flowEndMilliseconds */
};
#define IPFIX_NFIELDS	(sizeof(ipfix_fields) / sizeof(ipfix_fields[0]))
#define IPFIX_TEMPLATE_SET_LEN	(4 + 4 + 4 * IPFIX_NFIELDS)

/* Service ports by popularity; lower ranks past this list are scrambled. */
static const uint16_t popular_ports[] = {
	443, 80, 53, 123, 22, 8080, 25, 993, 3389, 445, 587, 5223, 1194,
	8443, 161, 514, 3478, 5060, 1935, 110, 143, 21, 389, 636,
};
#define SERVICE_RANKS	1024
#define INSIDE_HOSTS	4096
#define OUTSIDE_HOSTS	16384
#define PACKETS_TABLE	1024	/* Pareto packet counts drawn from a table */
#define PARETO_ALPHA	1.1
#define LAN_IFACES	8

/*
 * Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
 * Slot i keeps i when 32 random bits fall under keep, else gives other;
 * both halves share one 8-byte entry so a draw touches one cache line.
 */
struct alias_slot {
	uint32_t	keep;
	uint32_t	other;
};

struct alias {
	uint32_t	  n;
	struct alias_slot *slot;
};

struct model {
	struct fpb_rng	 rng;
	struct alias	 inside, outside, service, lanif, tcpflags, packets;
	uint16_t	 service_port[SERVICE_RANKS];
};

struct flow {
	uint32_t	src, dst, nexthop;
	uint16_t	sport, dport, in_if, out_if, src_as, dst_as;
	uint8_t		proto, tcp_flags, tos, src_mask, dst_mask;
	uint64_t	packets, octets, first_ms, last_ms;
};

struct exporter {
	int		fd;
	uint8_t		id;		/* v5 engine id; IPFIX domain id+1 */
	uint32_t	seq;		/* v5: flows, IPFIX: records sent */
	int64_t		template_ms;	/* export time of last template, -1 */
};

struct opts {
	const char	*dest;
	const char	*out;
	const char	*sync_file;
	const char	*sync_key;
	uint64_t	 rate, records, seconds, version, exporters, seed;
	uint64_t	 template_interval, start_time, chunk, sync_timeout;
	uint64_t	 sync_slack;
};

struct counters {
	uint64_t	records, datagrams, bytes, send_errors;
	uint64_t	sync_short;	/* syncs that settled short: loss */
	struct fpb_digest digest;
};

static volatile sig_atomic_t	got_stop;

static void
on_signal(int sig)
{
	(void)sig;
	got_stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: fp-gen [--dest HOST:PORT | --out FILE] (--records N | "
	    "--seconds S)\n"
	    "              [--rate R] [--version 5|10] [--exporters K] "
	    "[--seed N]\n"
	    "              [--template-interval S] [--start-time UNIX|now]\n"
	    "              [--chunk D --sync-file F --sync-key NAME "
	    "[--sync-slack D] [--sync-timeout S]]\n\n"
	    "  --dest HOST:PORT        where to send (default 127.0.0.1:2055)\n"
	    "  --out FILE              write a pcap file instead of sending\n"
	    "  --records N             stop after N flow records\n"
	    "  --seconds S             stop after S seconds\n"
	    "  --rate R                records per second; 0 = as fast as "
	    "possible (default)\n"
	    "  --version 5|10          NetFlow v5 (default) or IPFIX\n"
	    "  --exporters K           exporters (sockets, engine ids, "
	    "domains), 1..64 (default 1)\n"
	    "  --seed N                random seed (default 1)\n"
	    "  --template-interval S   IPFIX template every S seconds of "
	    "export time (default 10)\n"
	    "  --start-time T          export clock start, Unix seconds or "
	    "'now' (default %llu)\n"
	    "  --chunk D               after every D datagrams wait until the "
	    "counter NAME in the\n"
	    "                          'name value' file F has grown by the "
	    "datagrams sent\n"
	    "                          (default NAME received_datagrams; "
	    "a+b sums counters)\n"
	    "  --sync-slack D          ... less D datagrams still in flight "
	    "(default 0),\n"
	    "                          or until NAME stops growing across two "
	    "rewrites of F\n"
	    "  --sync-timeout S        longest wait for one chunk (default "
	    "60)\n\n"
	    "Prints one JSON line: records, datagrams, bytes, digests, "
	    "times.\n", (unsigned long long)GEN_START_TIME);
}

static uint32_t
mix32(uint64_t x)
{
	return (uint32_t)fpb_fmix(x);
}

static int
alias_init(struct alias *a, const double *w, uint32_t n)
{
	double		*p = NULL, sum = 0;
	uint32_t	*small = NULL, *large = NULL, ns = 0, nl = 0, i;
	int		 rc = -1;

	a->n = n;
	a->slot = calloc(n, sizeof(*a->slot));
	p = calloc(n, sizeof(*p));
	small = calloc(n, sizeof(*small));
	large = calloc(n, sizeof(*large));
	if (a->slot == NULL || p == NULL || small == NULL || large == NULL)
		goto out;
	for (i = 0; i < n; i++)
		sum += w[i];
	for (i = 0; i < n; i++) {
		p[i] = w[i] * n / sum;
		if (p[i] < 1.0)
			small[ns++] = i;
		else
			large[nl++] = i;
	}
	/* Pair each under-full slot with an over-full one that tops it up. */
	while (ns > 0 && nl > 0) {
		uint32_t s = small[--ns], l = large[nl - 1];

		a->slot[s].keep = (uint32_t)(p[s] * 4294967295.0);
		a->slot[s].other = l;
		p[l] -= 1.0 - p[s];
		if (p[l] < 1.0) {
			nl--;
			small[ns++] = l;
		}
	}
	/* Leftovers are full up to rounding: both halves give i. */
	while (nl > 0) {
		i = large[--nl];
		a->slot[i].keep = UINT32_MAX;
		a->slot[i].other = i;
	}
	while (ns > 0) {
		i = small[--ns];
		a->slot[i].keep = UINT32_MAX;
		a->slot[i].other = i;
	}
	rc = 0;
out:
	free(p);
	free(small);
	free(large);
	return rc;
}

static void
alias_free(struct alias *a)
{
	free(a->slot);
}

static uint32_t
alias_draw(const struct alias *a, struct fpb_rng *r)
{
	uint64_t		 u = fpb_rng_next(r);
	uint32_t		 i = (uint32_t)(((u >> 32) * a->n) >> 32);
	struct alias_slot	 s = a->slot[i];

	/* Random outcome: a select, not a branch the CPU would mispredict. */
	return (uint32_t)u < s.keep ? i : s.other;
}

/* Zipf-like popularity: the item of rank i has weight 1 / (i + 1)^s. */
static int
alias_zipf(struct alias *a, uint32_t n, double s)
{
	double	*w;
	int	 rc;

	if ((w = calloc(n, sizeof(*w))) == NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		w[i] = 1.0 / pow(i + 1.0, s);
	rc = alias_init(a, w, n);
	free(w);
	return rc;
}

/*
 * Pareto packet counts as a table: slot i < n - 1 is the count i + 1 with
 * its exact probability under floor(Pareto(1, alpha)); the last slot is
 * the tail, count >= n, drawn with the continuous formula when hit.
 */
static int
alias_pareto(struct alias *a, uint32_t n, double alpha)
{
	double	*w;
	int	 rc;

	if ((w = calloc(n, sizeof(*w))) == NULL)
		return -1;
	for (uint32_t i = 0; i + 1 < n; i++)
		w[i] = pow(i + 1.0, -alpha) - pow(i + 2.0, -alpha);
	w[n - 1] = pow((double)n, -alpha);
	rc = alias_init(a, w, n);
	free(w);
	return rc;
}

static int
model_init(struct model *m, uint64_t seed)
{
	/* SYN+ACK+PSH+FIN, PSH+ACK, ACK, SYN, SYN+ACK, RST+ACK, ... */
	static const double flag_w[] = { 35, 20, 15, 10, 5, 5, 5, 5 };
	size_t i;

	memset(m, 0, sizeof(*m));
	fpb_rng_seed(&m->rng, seed);
	for (i = 0; i < SERVICE_RANKS; i++) {
		if (i < sizeof(popular_ports) / sizeof(popular_ports[0]))
			m->service_port[i] = popular_ports[i];
		else
			m->service_port[i] = (uint16_t)(1024 +
			    mix32(i * 7919) % (49152 - 1024));
	}
	if (alias_zipf(&m->inside, INSIDE_HOSTS, 1.0) == -1 ||
	    alias_zipf(&m->outside, OUTSIDE_HOSTS, 1.0) == -1 ||
	    alias_zipf(&m->service, SERVICE_RANKS, 1.2) == -1 ||
	    alias_zipf(&m->lanif, LAN_IFACES, 1.5) == -1 ||
	    alias_pareto(&m->packets, PACKETS_TABLE, PARETO_ALPHA) == -1 ||
	    alias_init(&m->tcpflags, flag_w,
	    sizeof(flag_w) / sizeof(flag_w[0])) == -1)
		return -1;
	return 0;
}

static void
model_free(struct model *m)
{
	alias_free(&m->inside);
	alias_free(&m->outside);
	alias_free(&m->service);
	alias_free(&m->lanif);
	alias_free(&m->tcpflags);
	alias_free(&m->packets);
}

/* Packets of one flow: Pareto(1, alpha), floored; heavy-tailed. */
static uint64_t
packet_count(struct model *m)
{
	uint32_t	i = alias_draw(&m->packets, &m->rng);
	double		x;

	if (i + 1 < PACKETS_TABLE)
		return i + 1;
	/* Tail: Pareto with minimum PACKETS_TABLE, by inversion. */
	x = PACKETS_TABLE * exp(-log(fpb_rng_unit(&m->rng)) / PARETO_ALPHA);
	return x > 1e7 ? 10000000 : (uint64_t)x;
}

/* Mean packet size of a flow: bimodal for TCP (ACKs and full segments). */
static uint64_t
packet_size(struct fpb_rng *r, uint8_t proto)
{
	switch (proto) {
	case 6:
		return fpb_rng_below(r, 100) < 45 ? 40 + fpb_rng_below(r, 80) :
		    500 + fpb_rng_below(r, 1001);
	case 17:
		return 60 + fpb_rng_below(r, 540);
	default:
		return 64 + fpb_rng_below(r, 64);
	}
}

/*
 * One flow that ended within the last second of export time `now_ms`.
 * Half the flows are a local client talking to a remote service, half the
 * answers; remote hosts sit in 198.18.0.0/15 and local ones in 10/8.
 */
static void
model_flow(struct model *m, uint64_t now_ms, struct flow *f)
{
	static const uint16_t	 tcp_flags[] = { 0x1b, 0x18, 0x10, 0x02, 0x12,
	    0x14, 0x19, 0x11 };
	static const uint16_t	 icmp_types[] = { 0x0800, 0x0000, 0x0303,
	    0x0b00 };
	struct fpb_rng		*r = &m->rng;
	uint32_t		 pick, in_rank, out_rank, local, remote;
	uint16_t		 service, ephemeral, lan;
	uint64_t		 dur;
	int			 outbound;

	memset(f, 0, sizeof(*f));
	pick = fpb_rng_below(r, 100);
	f->proto = pick < 75 ? 6 : pick < 97 ? 17 : 1;
	in_rank = alias_draw(&m->inside, r);
	out_rank = alias_draw(&m->outside, r);
	local = 0x0a000000U | (mix32(in_rank + 0x10001U) & 0x00ffffffU);
	remote = 0xc6120000U | (mix32(out_rank + 0x5bd1e995U) & 0x1ffffU);
	service = m->service_port[alias_draw(&m->service, r)];
	ephemeral = (uint16_t)(32768 + fpb_rng_below(r, 28232));
	lan = (uint16_t)(2 + alias_draw(&m->lanif, r));
	outbound = fpb_rng_below(r, 2);

	if (outbound) {
		f->src = local;
		f->dst = remote;
		f->sport = ephemeral;
		f->dport = service;
		f->in_if = lan;
		f->out_if = 1;
		f->nexthop = 0x0aff0001U;
		f->dst_as = (uint16_t)(64512 + out_rank % 1000);
		f->src_mask = 24;
		f->dst_mask = (uint8_t)(16 + out_rank % 9);
	} else {
		f->src = remote;
		f->dst = local;
		f->sport = service;
		f->dport = ephemeral;
		f->in_if = 1;
		f->out_if = lan;
		f->src_as = (uint16_t)(64512 + out_rank % 1000);
		f->src_mask = (uint8_t)(16 + out_rank % 9);
		f->dst_mask = 24;
	}
	if (f->proto == 1) {
		f->sport = 0;
		f->dport = icmp_types[fpb_rng_below(r, 4)];
	}
	if (f->proto == 6)
		f->tcp_flags = (uint8_t)tcp_flags[alias_draw(&m->tcpflags, r)];
	pick = fpb_rng_below(r, 100);
	f->tos = pick < 90 ? 0 : pick < 95 ? 0x28 : 0xb8;

	f->packets = packet_count(m);
	f->octets = f->packets * packet_size(r, f->proto);
	dur = f->packets == 1 ? 0 :
	    (f->packets - 1) * (1 + fpb_rng_below(r, 40));
	if (dur > 120000)	/* the usual active timeout */
		dur = 120000;
	f->last_ms = now_ms - fpb_rng_below(r, 1000);
	f->first_ms = f->last_ms - dur;
}

static uint32_t
clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* One v5 datagram of `n` flows; returns its length, 0 if it did not fit. */
static size_t
build_v5(struct model *m, struct exporter *e, uint64_t now_ms,
    uint64_t boot_ms, uint32_t n, uint8_t *buf, size_t cap)
{
	struct wcur	w;
	struct flow	f;

	wcur_init(&w, buf, cap);
	wcur_u16(&w, 5);
	wcur_u16(&w, (uint16_t)n);
	wcur_u32(&w, (uint32_t)(now_ms - boot_ms));	/* sys_uptime */
	wcur_u32(&w, (uint32_t)(now_ms / 1000));
	wcur_u32(&w, (uint32_t)(now_ms % 1000) * 1000000U);
	wcur_u32(&w, e->seq);				/* flow_sequence */
	wcur_u8(&w, 0);					/* engine_type */
	wcur_u8(&w, e->id);				/* engine_id */
	wcur_u16(&w, 0);				/* sampling */
	for (uint32_t i = 0; i < n; i++) {
		model_flow(m, now_ms, &f);
		wcur_u32(&w, f.src);
		wcur_u32(&w, f.dst);
		wcur_u32(&w, f.nexthop);
		wcur_u16(&w, f.in_if);
		wcur_u16(&w, f.out_if);
		wcur_u32(&w, clamp32(f.packets));
		wcur_u32(&w, clamp32(f.octets));
		wcur_u32(&w, (uint32_t)(f.first_ms - boot_ms));
		wcur_u32(&w, (uint32_t)(f.last_ms - boot_ms));
		wcur_u16(&w, f.sport);
		wcur_u16(&w, f.dport);
		wcur_u8(&w, 0);
		wcur_u8(&w, f.tcp_flags);
		wcur_u8(&w, f.proto);
		wcur_u8(&w, f.tos);
		wcur_u16(&w, f.src_as);
		wcur_u16(&w, f.dst_as);
		wcur_u8(&w, f.src_mask);
		wcur_u8(&w, f.dst_mask);
		wcur_u16(&w, 0);
	}
	if (w.err)
		return 0;
	e->seq += n;
	return cap - w.left;
}

static void
put_template_set(struct wcur *w)
{
	wcur_u16(w, 2);					/* template set */
	wcur_u16(w, (uint16_t)IPFIX_TEMPLATE_SET_LEN);
	wcur_u16(w, IPFIX_TEMPLATE_ID);
	wcur_u16(w, (uint16_t)IPFIX_NFIELDS);
	for (size_t i = 0; i < IPFIX_NFIELDS; i++) {
		wcur_u16(w, ipfix_fields[i][0]);
		wcur_u16(w, ipfix_fields[i][1]);
	}
}

/* Data records that fit one IPFIX message, with or without a template. */
static uint32_t
ipfix_capacity(int with_template)
{
	size_t used = NF_IPFIX_HEADER + 4 +
	    (with_template ? IPFIX_TEMPLATE_SET_LEN : 0);

	return (uint32_t)((GEN_IPFIX_TARGET - used) / IPFIX_RECORD_LEN);
}

static int
template_due(const struct exporter *e, uint64_t now_ms, uint64_t interval_s)
{
	return e->template_ms < 0 ||
	    now_ms - (uint64_t)e->template_ms >= interval_s * 1000;
}

/* One IPFIX message of `n` data records, led by the template when due. */
static size_t
build_ipfix(struct model *m, struct exporter *e, uint64_t now_ms,
    int with_template, uint32_t n, uint8_t *buf, size_t cap)
{
	struct wcur	w, len;
	struct flow	f;
	size_t		total;

	wcur_init(&w, buf, cap);
	wcur_u16(&w, 10);
	wcur_u16(&w, 0);			/* length, set below */
	wcur_u32(&w, (uint32_t)(now_ms / 1000));
	wcur_u32(&w, e->seq);			/* data records before this */
	wcur_u32(&w, (uint32_t)e->id + 1);	/* observation domain */
	if (with_template)
		put_template_set(&w);
	wcur_u16(&w, IPFIX_TEMPLATE_ID);
	wcur_u16(&w, (uint16_t)(4 + n * IPFIX_RECORD_LEN));
	for (uint32_t i = 0; i < n; i++) {
		model_flow(m, now_ms, &f);
		wcur_u32(&w, f.src);
		wcur_u32(&w, f.dst);
		wcur_u16(&w, f.sport);
		wcur_u16(&w, f.dport);
		wcur_u8(&w, f.proto);
		wcur_u16(&w, f.tcp_flags);
		wcur_u32(&w, f.in_if);
		wcur_u32(&w, f.out_if);
		wcur_u64(&w, f.packets);
		wcur_u64(&w, f.octets);
		wcur_u64(&w, f.first_ms);
		wcur_u64(&w, f.last_ms);
	}
	if (w.err)
		return 0;
	total = cap - w.left;
	wcur_init(&len, buf + 2, 2);
	wcur_u16(&len, (uint16_t)total);
	if (with_template)
		e->template_ms = (int64_t)now_ms;
	e->seq += n;
	return total;
}

/* pcap output: big-endian headers (readers detect the byte order). */
static int
pcap_open(const char *path, FILE **fp)
{
	uint8_t		hdr[24];
	struct wcur	w;
	FILE		*f;

	if ((f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "fp-gen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	wcur_init(&w, hdr, sizeof(hdr));
	wcur_u32(&w, 0xa1b2c3d4U);	/* microsecond timestamps */
	wcur_u16(&w, 2);
	wcur_u16(&w, 4);
	wcur_u32(&w, 0);		/* thiszone */
	wcur_u32(&w, 0);		/* sigfigs */
	wcur_u32(&w, 65535);		/* snaplen */
	wcur_u32(&w, 1);		/* LINKTYPE_ETHERNET */
	if (fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr)) {
		fprintf(stderr, "fp-gen: %s: write failed\n", path);
		fclose(f);
		return -1;
	}
	*fp = f;
	return 0;
}

static uint16_t
ip_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += be16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* One pcap record: Ethernet, IPv4 from 127.0.0.1, UDP, the datagram. */
static int
pcap_write(FILE *f, const struct sockaddr_in *dst, uint16_t sport,
    uint16_t ip_id, uint64_t ts_ms, const uint8_t *p, size_t len)
{
	uint8_t		hdr[16 + 14 + 20 + 8];
	struct wcur	w, ck;
	uint8_t		*ip;

	wcur_init(&w, hdr, sizeof(hdr));
	wcur_u32(&w, (uint32_t)(ts_ms / 1000));
	wcur_u32(&w, (uint32_t)(ts_ms % 1000) * 1000);
	wcur_u32(&w, (uint32_t)(14 + 20 + 8 + len));
	wcur_u32(&w, (uint32_t)(14 + 20 + 8 + len));
	for (int i = 0; i < 12; i++)		/* MAC addresses, as lo has */
		wcur_u8(&w, 0);
	wcur_u16(&w, 0x0800);
	ip = w.p;
	wcur_u8(&w, 0x45);
	wcur_u8(&w, 0);
	wcur_u16(&w, (uint16_t)(20 + 8 + len));
	wcur_u16(&w, ip_id);
	wcur_u16(&w, 0x4000);			/* don't fragment */
	wcur_u8(&w, 64);
	wcur_u8(&w, 17);
	wcur_u16(&w, 0);			/* checksum, set below */
	wcur_u32(&w, 0x7f000001U);
	wcur_bytes(&w, &dst->sin_addr.s_addr, 4);
	wcur_u16(&w, sport);
	wcur_u16(&w, ntohs(dst->sin_port));
	wcur_u16(&w, (uint16_t)(8 + len));
	wcur_u16(&w, 0);			/* no UDP checksum */
	if (w.err)
		return -1;
	wcur_init(&ck, ip + 10, 2);
	wcur_u16(&ck, ip_checksum(ip, 20));
	if (fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr) ||
	    fwrite(p, 1, len, f) != len)
		return -1;
	return 0;
}

/* Value of `key` in the "name value" lines of data[0..len). */
static int
find_counter(const uint8_t *data, size_t len, const char *key, size_t klen,
    uint64_t *out)
{
	char	num[24];
	size_t	i = 0, eol, n;

	while (i < len) {
		for (eol = i; eol < len && data[eol] != '\n'; eol++)
			;
		if (eol - i > klen + 1 && memcmp(data + i, key, klen) == 0 &&
		    data[i + klen] == ' ') {
			n = eol - (i + klen + 1);
			if (n >= sizeof(num))
				return -1;
			memcpy(num, data + i + klen + 1, n);
			num[n] = '\0';
			return util_parse_u64(num, out);
		}
		i = eol + 1;
	}
	return -1;
}

/*
 * The sum of the counters named in `keys` ("a" or "a+b+...") in a file of
 * "name value" lines.
 */
static int
read_counter(const char *path, const char *keys, uint64_t *out)
{
	uint8_t		*data = NULL;
	size_t		 len, klen;
	uint64_t	 v, sum = 0;
	int		 rc = -1;

	if (util_read_file(path, 1 << 16, &data, &len) == -1)
		return -1;
	while (*keys != '\0') {
		klen = strcspn(keys, "+");
		if (klen == 0 || find_counter(data, len, keys, klen, &v) == -1)
			goto out;
		sum += v;
		keys += klen;
		if (*keys == '+')
			keys++;
	}
	*out = sum;
	rc = 0;
out:
	free(data);
	return rc;
}

/*
 * Waits, bounded, until the sync counter has reached `target`, or until it
 * has settled short of it: unchanged across two rewrites of the file (its
 * writer is alive and has nothing more to count, so the rest was lost on
 * the way).  A writer that stalls rewrites nothing, so a stall is waited
 * out.  Settling short is counted in *short_out.
 */
static int
sync_wait(const struct opts *o, uint64_t target, uint64_t *short_out)
{
	struct timespec	ts = { 0, GEN_SYNC_POLL_NS }, mtime = { 0, 0 };
	struct stat	st;
	double		deadline = fpb_mono_s() + (double)o->sync_timeout;
	uint64_t	v = 0, last = UINT64_MAX;
	int		same = 0;

	while (!got_stop) {
		if (stat(o->sync_file, &st) == 0 &&
		    read_counter(o->sync_file, o->sync_key, &v) == 0) {
			if (v >= target)
				return 0;
			if (st.st_mtim.tv_sec != mtime.tv_sec ||
			    st.st_mtim.tv_nsec != mtime.tv_nsec) {
				same = v == last ? same + 1 : 0;
				last = v;
				mtime = st.st_mtim;
			}
			if (same >= 2 && short_out != NULL) {
				(*short_out)++;
				return 0;
			}
		}
		if (fpb_mono_s() > deadline) {
			fprintf(stderr, "fp-gen: %s: %s is %" PRIu64 ", waited "
			    "%" PRIu64 "s for %" PRIu64 "\n", o->sync_file,
			    o->sync_key, v, o->sync_timeout, target);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "dest", required_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' },
		{ "rate", required_argument, NULL, 'r' },
		{ "records", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "version", required_argument, NULL, 'v' },
		{ "exporters", required_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 'S' },
		{ "template-interval", required_argument, NULL, 'T' },
		{ "start-time", required_argument, NULL, 't' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "sync-file", required_argument, NULL, 'f' },
		{ "sync-key", required_argument, NULL, 'K' },
		{ "sync-timeout", required_argument, NULL, 'W' },
		{ "sync-slack", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t	*num;
	int		 ch;

	memset(o, 0, sizeof(*o));
	o->dest = "127.0.0.1:2055";
	o->version = 5;
	o->exporters = 1;
	o->seed = 1;
	o->template_interval = 10;
	o->start_time = GEN_START_TIME;
	o->sync_timeout = 60;
	o->sync_key = "received_datagrams";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		num = NULL;
		switch (ch) {
		case 'd': o->dest = optarg; break;
		case 'o': o->out = optarg; break;
		case 'f': o->sync_file = optarg; break;
		case 'K': o->sync_key = optarg; break;
		case 'r': num = &o->rate; break;
		case 'n': num = &o->records; break;
		case 's': num = &o->seconds; break;
		case 'v': num = &o->version; break;
		case 'k': num = &o->exporters; break;
		case 'S': num = &o->seed; break;
		case 'T': num = &o->template_interval; break;
		case 'c': num = &o->chunk; break;
		case 'W': num = &o->sync_timeout; break;
		case 'L': num = &o->sync_slack; break;
		case 't':
			if (strcmp(optarg, "now") == 0) {
				o->start_time = (uint64_t)time(NULL);
				break;
			}
			num = &o->start_time;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (num != NULL && util_parse_u64(optarg, num) == -1) {
			fprintf(stderr, "fp-gen: bad number \"%s\"\n", optarg);
			return -1;
		}
	}
	if (optind != argc || (o->records == 0 && o->seconds == 0)) {
		fprintf(stderr, "fp-gen: give --records or --seconds (a run "
		    "is always bounded)\n");
		return -1;
	}
	if (o->version != 5 && o->version != 10) {
		fprintf(stderr, "fp-gen: --version is 5 or 10\n");
		return -1;
	}
	if (o->exporters < 1 || o->exporters > GEN_EXPORTERS_MAX) {
		fprintf(stderr, "fp-gen: --exporters is 1..%d\n",
		    GEN_EXPORTERS_MAX);
		return -1;
	}
	if (o->chunk > 0 && (o->sync_file == NULL || o->out != NULL)) {
		fprintf(stderr, "fp-gen: --chunk needs --sync-file and a "
		    "destination\n");
		return -1;
	}
	if (o->template_interval == 0 || o->sync_timeout == 0) {
		fprintf(stderr, "fp-gen: intervals must be at least 1\n");
		return -1;
	}
	return 0;
}

static int
open_exporters(const struct opts *o, const struct sockaddr_storage *dst,
    struct exporter *ex)
{
	int sz = GEN_SNDBUF;

	for (uint64_t i = 0; i < o->exporters; i++) {
		ex[i].fd = -1;
		ex[i].id = (uint8_t)i;
		ex[i].template_ms = -1;
		if (o->out != NULL)
			continue;
		if ((ex[i].fd = socket(dst->ss_family, SOCK_DGRAM, 0)) == -1) {
			fprintf(stderr, "fp-gen: socket: %s\n",
			    strerror(errno));
			return -1;
		}
		if (setsockopt(ex[i].fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz,
		    sizeof(sz)) == -1)
			(void)setsockopt(ex[i].fd, SOL_SOCKET, SO_SNDBUF, &sz,
			    sizeof(sz));
	}
	return 0;
}

/* Sends one burst; a datagram the kernel refuses is counted, not retried. */
static void
send_burst(int fd, const struct sockaddr_storage *dst, socklen_t dstlen,
    struct mmsghdr *msgs, struct iovec *iov, unsigned int n,
    struct counters *c)
{
	unsigned int	sent = 0;
	int		r;

	for (unsigned int i = 0; i < n; i++) {
		memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
		msgs[i].msg_hdr.msg_name = (void *)(uintptr_t)dst;
		msgs[i].msg_hdr.msg_namelen = dstlen;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (sent < n) {
		r = sendmmsg(fd, msgs + sent, n - sent, 0);
		if (r == -1) {
			if (errno == EINTR && !got_stop)
				continue;
			c->send_errors++;
			sent++;		/* skip the datagram it refused */
			continue;
		}
		sent += (unsigned int)r;
	}
}

static void
print_summary(const struct opts *o, const struct counters *c, double t0,
    double t1, const char *stop)
{
	double secs = t1 - t0;

	printf("{\"tool\":\"fp-gen\",\"version\":%" PRIu64 ",\"exporters\":%"
	    PRIu64 ",\"seed\":%" PRIu64 ",\"records\":%" PRIu64
	    ",\"datagrams\":%" PRIu64 ",\"bytes\":%" PRIu64
	    ",\"send_errors\":%" PRIu64 ",\"hash\":\"%016" PRIx64
	    "\",\"set_hash\":\"%016" PRIx64 "\",\"t_start\":%.6f,\"t_end\":%.6f"
	    ",\"seconds\":%.6f,\"records_per_s\":%.0f,\"sync_short\":%" PRIu64
	    ",\"stop\":\"%s\"}\n",
	    o->version, o->exporters, o->seed, c->records, c->datagrams,
	    c->bytes, c->send_errors, c->digest.ordered, c->digest.set, t0, t1,
	    secs, secs > 0 ? (double)c->records / secs : 0.0, c->sync_short,
	    stop);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct opts		 o;
	struct model		 m;
	struct exporter		 ex[GEN_EXPORTERS_MAX];
	struct counters		 c;
	struct sockaddr_storage	 dst;
	socklen_t		 dstlen;
	struct sigaction	 sa;
	static uint8_t		 bufs[GEN_BURST][GEN_DGRAM_MAX];
	static struct mmsghdr	 msgs[GEN_BURST];
	static struct iovec	 iov[GEN_BURST];
	FILE			*pcap = NULL;
	uint64_t		 start_ms, boot_ms, vrate, rpd, base = 0;
	uint64_t		 next_sync = 0;
	unsigned int		 burst, cur = 0;
	double			 t0, t1;
	const char		*stop = "records";
	int			 rc = 1;

	memset(ex, 0, sizeof(ex));
	for (size_t i = 0; i < GEN_EXPORTERS_MAX; i++)
		ex[i].fd = -1;
	memset(&c, 0, sizeof(c));
	memset(&m, 0, sizeof(m));
	if (parse_opts(argc, argv, &o) == -1)
		return 2;
	if (util_parse_hostport(o.dest, 1, &dst, &dstlen) == -1) {
		fprintf(stderr, "fp-gen: bad --dest \"%s\"\n", o.dest);
		return 2;
	}
	if (o.out != NULL && dst.ss_family != AF_INET) {
		fprintf(stderr, "fp-gen: --out writes IPv4 only\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (model_init(&m, o.seed) == -1) {
		fprintf(stderr, "fp-gen: out of memory\n");
		goto out;
	}
	if (open_exporters(&o, &dst, ex) == -1)
		goto out;
	if (o.out != NULL && pcap_open(o.out, &pcap) == -1)
		goto out;
	if (o.chunk > 0) {
		if (sync_wait(&o, 0, NULL) == -1 ||
		    read_counter(o.sync_file, o.sync_key, &base) == -1)
			goto out;
		next_sync = o.chunk;
	}

	/*
	 * The export clock: record i is exported at start + i / vrate, so
	 * timestamps advance like real traffic at --rate (or at 2000
	 * records/s when unpaced) however fast the datagrams really leave.
	 */
	vrate = o.rate > 0 ? o.rate : GEN_VIRTUAL_RATE;
	start_ms = o.start_time * 1000;
	boot_ms = start_ms - GEN_UPTIME_MS;
	rpd = o.version == 5 ? GEN_V5_RECORDS : ipfix_capacity(0);
	/*
	 * One burst goes to one exporter's socket; several exporters take
	 * turns in bursts small enough to interleave their streams.  Paced:
	 * about one burst per millisecond, at least one datagram.
	 */
	burst = GEN_BURST / (unsigned int)o.exporters;
	if (burst < 8)
		burst = 8;
	if (o.rate > 0) {
		uint64_t per_ms = o.rate / rpd / 1000;

		burst = per_ms < 1 ? 1 : per_ms > burst ? burst :
		    (unsigned int)per_ms;
	}

	t0 = fpb_mono_s();
	for (;;) {
		struct exporter	*e = &ex[cur];
		unsigned int	 n = 0;
		uint64_t	 burst_first = c.records;

		if (got_stop) {
			stop = "signal";
			break;
		}
		if (o.records > 0 && c.records >= o.records)
			break;
		if (o.seconds > 0 && fpb_mono_s() - t0 >= (double)o.seconds) {
			stop = "seconds";
			break;
		}
		while (n < burst && (o.records == 0 || c.records < o.records) &&
		    (o.chunk == 0 || c.datagrams < next_sync)) {
			uint64_t now_ms = start_ms + c.records * 1000 / vrate;
			uint64_t want;
			size_t	 len;
			int	 tmpl = 0;

			if (o.version == 5) {
				want = GEN_V5_RECORDS;
			} else {
				tmpl = template_due(e, now_ms,
				    o.template_interval);
				want = ipfix_capacity(tmpl);
			}
			if (o.records > 0 && o.records - c.records < want)
				want = o.records - c.records;
			len = o.version == 5 ?
			    build_v5(&m, e, now_ms, boot_ms, (uint32_t)want,
			    bufs[n], GEN_DGRAM_MAX) :
			    build_ipfix(&m, e, now_ms, tmpl, (uint32_t)want,
			    bufs[n], GEN_DGRAM_MAX);
			if (len == 0) {
				fprintf(stderr, "fp-gen: datagram overflow\n");
				goto out;
			}
			iov[n].iov_base = bufs[n];
			iov[n].iov_len = len;
			fpb_digest_add(&c.digest, bufs[n], len);
			if (pcap != NULL && pcap_write(pcap,
			    (const struct sockaddr_in *)&dst,
			    (uint16_t)(50000 + e->id), (uint16_t)c.datagrams,
			    now_ms, bufs[n], len) == -1) {
				fprintf(stderr, "fp-gen: %s: write failed\n",
				    o.out);
				goto out;
			}
			c.records += want;
			c.datagrams++;
			c.bytes += len;
			n++;
		}
		if (n == 0)
			break;
		if (o.rate > 0) {
			/* Due time of this burst's first record. */
			double		due = t0 + (double)burst_first /
			    (double)o.rate;
			struct timespec	ts;

			if (due > fpb_mono_s()) {
				ts.tv_sec = (time_t)due;
				ts.tv_nsec = (long)((due - (double)ts.tv_sec) *
				    1e9);
				while (clock_nanosleep(CLOCK_MONOTONIC,
				    TIMER_ABSTIME, &ts, NULL) == EINTR &&
				    !got_stop)
					;
			}
		}
		if (pcap == NULL)
			send_burst(e->fd, &dst, dstlen, msgs, iov, n, &c);
		cur = (cur + 1) % (unsigned int)o.exporters;
		if (o.chunk > 0 && c.datagrams >= next_sync) {
			uint64_t want = c.datagrams > o.sync_slack ?
			    c.datagrams - o.sync_slack : 0;

			if (sync_wait(&o, base + want, &c.sync_short) == -1) {
				stop = "sync_timeout";
				break;
			}
			next_sync = c.datagrams + o.chunk;
		}
	}
	if (o.chunk > 0 && strcmp(stop, "sync_timeout") != 0 &&
	    sync_wait(&o, base + c.datagrams, &c.sync_short) == -1)
		stop = "sync_timeout";
	t1 = fpb_mono_s();
	if (pcap != NULL) {
		if (fclose(pcap) != 0) {
			pcap = NULL;
			fprintf(stderr, "fp-gen: %s: write failed\n", o.out);
			goto out;
		}
		pcap = NULL;
	}
	print_summary(&o, &c, t0, t1, stop);
	rc = strcmp(stop, "sync_timeout") == 0 || got_stop ? 1 : 0;
out:
	if (pcap != NULL)
		fclose(pcap);
	for (size_t i = 0; i < GEN_EXPORTERS_MAX; i++)
		if (ex[i].fd != -1)
			close(ex[i].fd);
	model_free(&m);
	return rc;
}
