/*
 * fp-load.c: many concurrent flowpost clients against one gateway.
 *
 *   fp-load --write-keys FILE [--clients N] [--id-prefix NAME]
 *   fp-load --gateway HOST:PORT --keys FILE [--clients N]
 *           [--batches K | --seconds S] [--datagrams D] [--rate R] ...
 *
 * The first form writes N fresh keys in the gateway's keys_file format
 * ("<client_id> <64 hex digits>" per line, mode 0600), to start a gateway
 * with.  The second opens N keep-alive HTTP/1.1 connections, each from its
 * own loopback address (127.1.0.1, 127.1.0.2, ...: one connection per
 * address, so the gateway's per_ip_connection_limit is never what refuses
 * one), waits until all of them are open, and then lets every connection
 * post batches in sequence as its own client id: K batches each, or
 * batches until S seconds have passed.  Every connection stays open until
 * the last one has finished, so the gateway holds all N at the same time.
 *
 * Batches are sealed with the real code of common/wire.c (codec nfpack,
 * zlib level 6, the client's defaults), hold D NetFlow v5 datagrams of 30
 * records each with correct per-exporter flow sequence numbers, and carry
 * per-client batch sequence numbers that start, like a new client's, from
 * the clock (PROTOCOL.md 4.3), so a gateway forwards them (not dup).  Every
 * answer is checked: status 200 and exactly the acknowledgement of that
 * batch with a valid MAC (wire_ack_verify()).  Anything else fails the
 * request: another status, a bad acknowledgement, a connection refused,
 * reset or closed before the answer was complete, no answer within
 * --request-timeout.  A client stops at its first failure.
 *
 * One thread and epoll; every socket is non-blocking; every wait has a
 * deadline and the whole run is bounded by --timeout.  Prints one JSON
 * line.  The `set_hash` in it is the order-free digest (fpb.h) of every
 * datagram the gateway acknowledged as forwarded now: fp-sink's
 * `set_hash` must equal it when every one of them reached the collector
 * unaltered.
 *
 * Exit status: 0 when every request succeeded, 1 when one failed or was
 * never made (or the run could not start), 2 on a usage error.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "bytes.h"
#include "keys.h"
#include "util.h"
#include "wire.h"

#include "fpb.h"

#define LOAD_CLIENTS_DEFAULT	1000
#define LOAD_CLIENTS_MAX	65535	/* 127.1.0.1 .. 127.1.255.255 */
#define LOAD_SRC_NET		0x7f010000u	/* 127.1.0.0 */
#define LOAD_BATCHES_DEFAULT	3
#define LOAD_DATAGRAMS_DEFAULT	4
#define LOAD_DATAGRAMS_MAX	256
#define LOAD_V5_RECORDS		30
#define LOAD_V5_LEN		(24 + 48 * LOAD_V5_RECORDS)
#define LOAD_ZLEVEL		6
#define LOAD_HEAD_MAX		1024	/* request line and headers */
#define LOAD_RESP_MAX		4096	/* a whole answer, headers and body */
#define LOAD_EVENTS		256
#define LOAD_TICK_NS		(50 * 1000000LL)	/* deadline scan */
#define LOAD_FD_MARGIN		32	/* stdio, epoll, keys file */
#define LOAD_ERRORS_SHOWN	10	/* failure lines on stderr */
#define LOAD_PREFIX_MAX		48
#define LOAD_PATH_MAX		256
#define NS_PER_S		1000000000LL

/*
 * Latency histogram in microseconds: exact below 64, then 64 buckets per
 * power of two (under 1.6 % error) up to 2^40 us.
 */
#define HIST_SUB		64
#define HIST_SUB_BITS		6
#define HIST_MAX_POW		40
#define HIST_BUCKETS		(HIST_SUB + (HIST_MAX_POW - HIST_SUB_BITS + 1) * \
				    HIST_SUB)

enum cstate {
	C_IDLE,		/* not connected yet */
	C_CONNECTING,
	C_READY,	/* connected, waiting for the start or a rate token */
	C_SENDING,
	C_RECEIVING,
	C_DONE,		/* all its batches posted; held open */
	C_CLOSED,	/* failed, or closed by the gateway when done */
};

enum fail {
	F_CONNECT,	/* refused, unreachable, or no connection in time */
	F_RESET,	/* reset or closed before the answer was complete */
	F_TIMEOUT,	/* no complete answer within --request-timeout */
	F_STATUS,	/* an answer other than 200 */
	F_BAD_ACK,	/* 200 without the right acknowledgement */
	F_BAD_RESPONSE,	/* not an HTTP answer this tool can read */
	F_COUNT,
};

static const char *const fail_names[F_COUNT] = {
	[F_CONNECT] = "connect",
	[F_RESET] = "reset",
	[F_TIMEOUT] = "timeout",
	[F_STATUS] = "status",
	[F_BAD_ACK] = "bad_ack",
	[F_BAD_RESPONSE] = "bad_response",
};

struct hist {
	uint64_t	 n;
	uint64_t	 max;
	uint64_t	 b[HIST_BUCKETS];
};

struct conn {
	int		 fd;
	enum cstate	 st;
	uint32_t	 ev;		/* epoll mask registered, 0: none */
	uint32_t	 idx;
	int		 queued;	/* in the start queue */
	int		 closing;	/* the answer said Connection: close */
	const char	*id;
	const uint8_t	*key;
	uint64_t	 seq;		/* of the batch in flight, then next */
	uint32_t	 flow_seq;	/* v5 exporter sequence */
	struct fpb_rng	 rng;
	uint64_t	 started;	/* requests started */
	uint64_t	 pend_set;	/* digest of the batch in flight */
	uint32_t	 pend_dgrams;
	uint8_t		 tag[WIRE_TAG_LEN];
	int64_t		 t0;		/* request (or connect) start */
	int64_t		 deadline;
	struct buf	 out;
	size_t		 out_off;
	uint8_t		*in;
	size_t		 in_len;
};

struct opts {
	const char	*gateway;
	const char	*prefix;
	const char	*keys;
	const char	*write_keys;
	const char	*id_prefix;
	uint64_t	 clients, batches, datagrams, seed;
	double		 seconds, rate, timeout, req_timeout, conn_timeout;
};

struct load {
	struct opts		 o;
	struct sockaddr_in	 dst;
	char			 host[64];
	char			 path[LOAD_PATH_MAX];
	int			 ep;
	struct conn		*c;
	uint32_t		 n;
	struct keys		*keys;

	/* The start queue: connections ready to post, in order. */
	uint32_t		*q;
	uint32_t		 qhead, qlen;

	struct buf		 entries;	/* scratch: one batch's entries */
	struct buf		 sealed;	/* scratch: one sealed batch */
	uint64_t		 seq_base;

	int			 posting;	/* all connected: posts may go */
	int64_t			 t_start, t_post, t_first, t_last;
	uint64_t		 posts_started;	/* for --rate */
	uint32_t		 connecting, busy, open, peak_open;

	uint64_t		 ok, ack_new, ack_dup, reconnects, closed_idle;
	uint64_t		 failed[F_COUNT];
	uint64_t		 statuses[600];
	uint64_t		 datagrams, bytes_sent;
	uint64_t		 set_hash;
	unsigned int		 errors_shown;
	struct hist		 lat, conn_lat;
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
	    "usage: fp-load --write-keys FILE [--clients N] [--id-prefix "
	    "NAME]\n"
	    "       fp-load --gateway HOST:PORT --keys FILE [--clients N] "
	    "[--batches K | --seconds S]\n"
	    "               [--datagrams D] [--rate R] [--path-prefix P] "
	    "[--timeout S]\n"
	    "               [--request-timeout S] [--connect-timeout S] "
	    "[--seed N]\n\n"
	    "  --write-keys FILE     write N new keys in keys_file format "
	    "(mode 0600), exit\n"
	    "  --id-prefix NAME      client ids NAME-00000, ... (default "
	    "load)\n"
	    "  --gateway HOST:PORT   the gateway, on 127.0.0.0/8\n"
	    "  --keys FILE           keys_file of the clients; the first N "
	    "ids in sorted order\n"
	    "  --clients N           concurrent connections, one client id "
	    "and source address\n"
	    "                        127.1.x.y each (default 1000)\n"
	    "  --batches K           batches each client posts in sequence "
	    "(default 3)\n"
	    "  --seconds S           instead: post until S seconds have "
	    "passed\n"
	    "  --datagrams D         v5 datagrams (30 records) per batch "
	    "(default 4)\n"
	    "  --rate R              batch POSTs per second from all "
	    "clients together (default 0:\n"
	    "                        as fast as answered)\n"
	    "  --path-prefix P       the gateway's path_prefix (default "
	    "empty)\n"
	    "  --timeout S           bound of the whole run (default 120)\n"
	    "  --request-timeout S   longest wait for one answer (default "
	    "30)\n"
	    "  --connect-timeout S   longest wait for a connection (default "
	    "10)\n"
	    "  --seed N              seed of the flow records (default 1)\n\n"
	    "Prints one JSON line.  Exit 0: every request succeeded; 1: "
	    "some failed or\nwere not made; 2: usage error.\n");
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "gateway", required_argument, NULL, 'g' },
		{ "path-prefix", required_argument, NULL, 'P' },
		{ "keys", required_argument, NULL, 'k' },
		{ "write-keys", required_argument, NULL, 'W' },
		{ "id-prefix", required_argument, NULL, 'I' },
		{ "clients", required_argument, NULL, 'n' },
		{ "batches", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ "datagrams", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "request-timeout", required_argument, NULL, 'R' },
		{ "connect-timeout", required_argument, NULL, 'C' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch, bad = 0, batches_set = 0;

	memset(o, 0, sizeof(*o));
	o->prefix = "";
	o->id_prefix = "load";
	o->clients = LOAD_CLIENTS_DEFAULT;
	o->batches = LOAD_BATCHES_DEFAULT;
	o->datagrams = LOAD_DATAGRAMS_DEFAULT;
	o->seed = 1;
	o->timeout = 120;
	o->req_timeout = 30;
	o->conn_timeout = 10;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'g': o->gateway = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'k': o->keys = optarg; break;
		case 'W': o->write_keys = optarg; break;
		case 'I': o->id_prefix = optarg; break;
		case 'n': bad = util_parse_u64(optarg, &o->clients); break;
		case 'b':
			bad = util_parse_u64(optarg, &o->batches);
			batches_set = 1;
			break;
		case 's': bad = fpb_parse_seconds(optarg, &o->seconds); break;
		case 'd': bad = util_parse_u64(optarg, &o->datagrams); break;
		case 'r': bad = fpb_parse_seconds(optarg, &o->rate); break;
		case 't': bad = fpb_parse_seconds(optarg, &o->timeout); break;
		case 'R': bad = fpb_parse_seconds(optarg, &o->req_timeout); break;
		case 'C': bad = fpb_parse_seconds(optarg, &o->conn_timeout); break;
		case 'S': bad = util_parse_u64(optarg, &o->seed); break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad == -1) {
			fprintf(stderr, "fp-load: bad value \"%s\"\n", optarg);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	if (o->clients < 1 || o->clients > LOAD_CLIENTS_MAX) {
		fprintf(stderr, "fp-load: --clients must be 1..%d\n",
		    LOAD_CLIENTS_MAX);
		return -1;
	}
	if (strlen(o->id_prefix) > LOAD_PREFIX_MAX) {
		fprintf(stderr, "fp-load: --id-prefix longer than %d\n",
		    LOAD_PREFIX_MAX);
		return -1;
	}
	if (o->write_keys != NULL)
		return 0;
	if (o->gateway == NULL || o->keys == NULL) {
		fprintf(stderr, "fp-load: --gateway and --keys are needed "
		    "(or --write-keys)\n");
		return -1;
	}
	if (o->seconds > 0 && batches_set) {
		fprintf(stderr, "fp-load: --batches or --seconds, not both\n");
		return -1;
	}
	if ((o->seconds == 0 && o->batches == 0) || o->datagrams < 1 ||
	    o->datagrams > LOAD_DATAGRAMS_MAX || o->timeout <= 0 ||
	    o->req_timeout <= 0 || o->conn_timeout <= 0) {
		fprintf(stderr, "fp-load: --batches, --datagrams (1..%d) and "
		    "the timeouts must be > 0\n", LOAD_DATAGRAMS_MAX);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Keys */

static int
client_id_make(char *out, size_t outlen, const char *prefix, uint64_t i)
{
	if (util_snprintf(out, outlen, "%s-%05" PRIu64, prefix, i) == -1 ||
	    wire_client_id_valid(out) == -1)
		return -1;
	return 0;
}

/* --write-keys: N new keys, one "<id> <hex>" line each, mode 0600. */
static int
write_keys(const struct opts *o)
{
	struct buf	 b;
	uint8_t		 key[WIRE_KEY_LEN];
	char		 id[WIRE_CLIENT_ID_MAX + 1];
	char		 hex[2 * WIRE_KEY_LEN + 1];
	size_t		 off = 0;
	ssize_t		 w;
	int		 fd = -1, rv = -1;

	if (buf_init(&b, 0, (size_t)o->clients * (LOAD_PREFIX_MAX + 80) +
	    128) == -1)
		return -1;
	if (buf_printf(&b, "# fp-load: %" PRIu64 " client keys\n",
	    o->clients) == -1)
		goto out;
	for (uint64_t i = 0; i < o->clients; i++) {
		if (client_id_make(id, sizeof(id), o->id_prefix, i) == -1) {
			fprintf(stderr, "fp-load: --id-prefix \"%s\" makes a "
			    "bad client id\n", o->id_prefix);
			goto out;
		}
		randombytes_buf(key, sizeof(key));
		wire_key_format(key, hex);
		if (buf_printf(&b, "%s %s\n", id, hex) == -1)
			goto out;
	}
	fd = open(o->write_keys, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		fprintf(stderr, "fp-load: %s: %s\n", o->write_keys,
		    strerror(errno));
		goto out;
	}
	while (off < b.len) {
		w = write(fd, b.data + off, b.len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "fp-load: %s: %s\n", o->write_keys,
			    strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (close(fd) == -1) {
		fd = -1;
		fprintf(stderr, "fp-load: %s: %s\n", o->write_keys,
		    strerror(errno));
		goto out;
	}
	fd = -1;
	printf("{\"tool\":\"fp-load\",\"keys_written\":%" PRIu64 ",\"file\":"
	    "\"%s\"}\n", o->clients, o->write_keys);
	rv = 0;
out:
	if (fd != -1)
		close(fd);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	if (b.data != NULL)
		sodium_memzero(b.data, b.cap);
	buf_free(&b);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Histogram */

static unsigned int
hist_index(uint64_t v)
{
	unsigned int	 e;

	if (v < HIST_SUB)
		return (unsigned int)v;
	e = 63 - (unsigned int)__builtin_clzll(v);
	if (e > HIST_MAX_POW)
		return HIST_BUCKETS - 1;
	return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB +
	    (unsigned int)((v >> (e - HIST_SUB_BITS)) - HIST_SUB);
}

/* The middle of bucket `i`. */
static double
hist_value(unsigned int i)
{
	unsigned int	 e, m;
	double		 lo, width;

	if (i < HIST_SUB)
		return i;
	e = (i - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	m = (i - HIST_SUB) % HIST_SUB + HIST_SUB;
	width = (double)(1ULL << (e - HIST_SUB_BITS));
	lo = m * width;
	return lo + width / 2;
}

static void
hist_add(struct hist *h, uint64_t us)
{
	h->b[hist_index(us)]++;
	h->n++;
	if (us > h->max)
		h->max = us;
}

/* The p-quantile in milliseconds, or -1 for an empty histogram. */
static double
hist_ms(const struct hist *h, double p)
{
	uint64_t	 want, sum = 0;
	double		 v;

	if (h->n == 0)
		return -1;
	want = (uint64_t)(p * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		sum += h->b[i];
		if (sum >= want) {
			v = hist_value(i);
			return (v > (double)h->max ? (double)h->max : v) /
			    1000.0;
		}
	}
	return (double)h->max / 1000.0;
}

/* ------------------------------------------------------------------ */
/* Batches */

static uint32_t
ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	return ((uint32_t)a << 24) | ((uint32_t)b << 16) |
	    ((uint32_t)c << 8) | d;
}

/*
 * One NetFlow v5 datagram of 30 records from client `c`'s exporter: hosts
 * of its own 10.x.y.0/24 talking to 198.18.0.0/15, a TCP/UDP/ICMP mix,
 * common service ports, flow times within the last minute of uptime.
 */
static void
v5_build(struct conn *c, uint8_t *p, uint64_t now_us)
{
	static const uint16_t	 ports[] = { 443, 80, 53, 123, 22, 8080, 25,
	    993, 3389, 445 };
	struct wcur		 w;
	uint32_t		 uptime;
	uint8_t			 a = (uint8_t)(c->idx >> 8), b = (uint8_t)c->idx;

	/* An exporter that booted a day before the run, plus wall time. */
	uptime = (uint32_t)(86400000ULL + now_us / 1000 % 86400000ULL);
	wcur_init(&w, p, LOAD_V5_LEN);
	wcur_u16(&w, 5);
	wcur_u16(&w, LOAD_V5_RECORDS);
	wcur_u32(&w, uptime);
	wcur_u32(&w, (uint32_t)(now_us / 1000000));
	wcur_u32(&w, (uint32_t)(now_us % 1000000 * 1000));
	wcur_u32(&w, c->flow_seq);
	wcur_u8(&w, a);		/* engine type and id: the client index */
	wcur_u8(&w, b);
	wcur_u16(&w, 0);
	for (int i = 0; i < LOAD_V5_RECORDS; i++) {
		uint32_t r = (uint32_t)fpb_rng_next(&c->rng);
		uint32_t pk = 1 + fpb_rng_below(&c->rng, 40);
		uint32_t dur = fpb_rng_below(&c->rng, 30000);
		uint32_t last = uptime - fpb_rng_below(&c->rng, 30000);
		uint8_t proto = r % 100 < 75 ? 6 : r % 100 < 97 ? 17 : 1;
		uint16_t sport = (uint16_t)(32768 + (r >> 8) % 28000);
		uint16_t dport = proto == 1 ? 0 : ports[(r >> 20) % 10];

		wcur_u32(&w, ip4(10, a, b, (uint8_t)(1 + (r >> 3) % 254)));
		wcur_u32(&w, ip4(198, (uint8_t)(18 + (r >> 11 & 1)),
		    (uint8_t)(r >> 12), (uint8_t)(1 + (r >> 24) % 254)));
		wcur_u32(&w, 0);			/* nexthop */
		wcur_u16(&w, 1);			/* input */
		wcur_u16(&w, 2);			/* output */
		wcur_u32(&w, pk);
		wcur_u32(&w, pk * (40 + fpb_rng_below(&c->rng, 1460)));
		wcur_u32(&w, last - dur);		/* first */
		wcur_u32(&w, last);
		wcur_u16(&w, sport);
		wcur_u16(&w, dport);
		wcur_u8(&w, 0);
		wcur_u8(&w, proto == 6 ? 0x1b : 0);	/* tcp_flags */
		wcur_u8(&w, proto);
		wcur_u8(&w, 0);				/* tos */
		wcur_u16(&w, 0);			/* src_as */
		wcur_u16(&w, (uint16_t)(64512 + (r >> 16) % 100));
		wcur_u8(&w, 24);
		wcur_u8(&w, 15);
		wcur_u16(&w, 0);
	}
	c->flow_seq += LOAD_V5_RECORDS;
}

/*
 * Seals client `c`'s next batch and puts the whole request into c->out.
 * Remembers what the acknowledgement must name and what it forwards.
 */
static int
batch_request(struct load *L, struct conn *c)
{
	struct wire_seal_args	 a;
	struct wire_entry	 e;
	uint8_t			 dg[LOAD_V5_LEN];
	uint64_t		 now_us = util_real_us();
	enum wire_err		 we;

	buf_reset(&L->entries);
	c->pend_set = 0;
	c->pend_dgrams = 0;
	memset(&e, 0, sizeof(e));
	e.family = 4;
	e.addr[0] = 10;
	e.addr[1] = (uint8_t)(c->idx >> 8);
	e.addr[2] = (uint8_t)c->idx;
	e.addr[3] = 1;
	e.src_port = (uint16_t)(40000 + c->idx % 20000);
	e.dst_port = 2055;
	e.len = LOAD_V5_LEN;
	e.payload = dg;
	for (uint64_t i = 0; i < L->o.datagrams; i++) {
		v5_build(c, dg, now_us);
		e.recv_us = now_us;
		if (wire_entry_append(&L->entries, &e) == -1)
			return -1;
		c->pend_set += fpb_hash(dg, sizeof(dg));
		c->pend_dgrams++;
	}
	memset(&a, 0, sizeof(a));
	a.client_id = c->id;
	a.seq = c->seq;
	a.created_us = now_us;
	a.codec = WIRE_CODEC_NFPACK;
	a.zlevel = LOAD_ZLEVEL;
	a.entries = L->entries.data;
	a.entries_len = L->entries.len;
	a.count = c->pend_dgrams;
	a.key = c->key;
	if ((we = wire_seal(&a, &L->sealed)) != WIRE_OK) {
		fprintf(stderr, "fp-load: seal: %s\n", wire_strerror(we));
		return -1;
	}
	memcpy(c->tag, wire_tag(L->sealed.data, L->sealed.len), WIRE_TAG_LEN);
	buf_reset(&c->out);
	if (buf_printf(&c->out, "POST %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Content-Type: application/vnd.flowpost.batch\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-transform\r\n"
	    "User-Agent: fp-load\r\n"
	    "X-Flowpost-Client: %s\r\n"
	    "X-Flowpost-Seq: %" PRIu64 "\r\n"
	    "\r\n", L->path, L->host, L->sealed.len, c->id, c->seq) == -1 ||
	    buf_append(&c->out, L->sealed.data, L->sealed.len) == -1)
		return -1;
	c->out_off = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Connections */

static int
conn_watch(struct load *L, struct conn *c, uint32_t ev)
{
	struct epoll_event	 e;
	int			 op;

	if (c->ev == ev)
		return 0;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.u32 = c->idx;
	op = c->ev == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(L->ep, op, c->fd, &e) == -1) {
		fprintf(stderr, "fp-load: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	c->ev = ev;
	return 0;
}

static void
conn_close(struct load *L, struct conn *c)
{
	if (c->fd == -1)
		return;
	if (c->st == C_CONNECTING)
		L->connecting--;
	else
		L->open--;
	if (c->st == C_SENDING || c->st == C_RECEIVING)
		L->busy--;
	close(c->fd);	/* also leaves the epoll set */
	c->fd = -1;
	c->ev = 0;
}

/* The first lines of failures on stderr, so that a run says why. */
static void
conn_report(struct load *L, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_report(struct load *L, struct conn *c, const char *fmt, ...)
{
	va_list	 ap;

	if (L->errors_shown >= LOAD_ERRORS_SHOWN)
		return;
	L->errors_shown++;
	fprintf(stderr, "fp-load: client %s: ", c->id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Ends client `c` after a failure of kind `f`; it makes no more posts. */
static void
conn_fail(struct load *L, struct conn *c, enum fail f)
{
	L->failed[f]++;
	conn_close(L, c);
	c->st = C_CLOSED;
}

/* Starts a connection from the client's own 127.1.x.y. */
static int
conn_connect(struct load *L, struct conn *c, int64_t now)
{
	struct sockaddr_in	 src;
	int			 one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_report(L, c, "socket: %s", strerror(errno));
		c->st = C_CLOSED;
		L->failed[F_CONNECT]++;
		return errno == EMFILE || errno == ENFILE ? -1 : 0;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(LOAD_SRC_NET + c->idx + 1);
	c->st = C_CONNECTING;
	L->connecting++;
	c->t0 = now;
	c->deadline = now + (int64_t)(L->o.conn_timeout * NS_PER_S);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
		conn_report(L, c, "bind: %s", strerror(errno));
		conn_fail(L, c, F_CONNECT);
		return 0;
	}
	if (connect(c->fd, (struct sockaddr *)&L->dst, sizeof(L->dst)) == -1 &&
	    errno != EINPROGRESS) {
		conn_report(L, c, "connect: %s", strerror(errno));
		conn_fail(L, c, F_CONNECT);
		return 0;
	}
	if (conn_watch(L, c, EPOLLOUT) == -1)
		return -1;
	return 0;
}

/* 1 while client `c` has batches left to post. */
static int
conn_more(const struct load *L, const struct conn *c, int64_t now)
{
	if (L->o.seconds > 0)
		return now - L->t_post < (int64_t)(L->o.seconds * NS_PER_S);
	return c->started < L->o.batches;
}

static void
queue_push(struct load *L, struct conn *c)
{
	L->q[(L->qhead + L->qlen) % L->n] = c->idx;
	L->qlen++;
	c->queued = 1;
}

/* Connected and idle: queue for the next post, or done. */
static int
conn_next(struct load *L, struct conn *c, int64_t now)
{
	c->st = C_READY;
	if (L->posting && !conn_more(L, c, now))
		c->st = C_DONE;
	else if (L->posting)
		queue_push(L, c);
	/* Idle: only a close from the gateway can come. */
	return conn_watch(L, c, EPOLLIN | EPOLLRDHUP);
}

static int conn_write(struct load *, struct conn *, int64_t);

static int
conn_post(struct load *L, struct conn *c, int64_t now)
{
	c->queued = 0;
	if (c->st != C_READY)	/* failed while it waited */
		return 0;
	if (!conn_more(L, c, now)) {
		c->st = C_DONE;
		return 0;
	}
	if (batch_request(L, c) == -1)
		return -1;
	c->started++;
	L->posts_started++;
	c->st = C_SENDING;
	L->busy++;
	c->in_len = 0;
	c->t0 = now;
	c->deadline = now + (int64_t)(L->o.req_timeout * NS_PER_S);
	if (L->t_first == 0)
		L->t_first = now;
	return conn_write(L, c, now);
}

static int
conn_write(struct load *L, struct conn *c, int64_t now)
{
	ssize_t	 w;

	(void)now;
	while (c->out_off < c->out.len) {
		w = send(c->fd, c->out.data + c->out_off,
		    c->out.len - c->out_off, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return conn_watch(L, c, EPOLLOUT);
		if (w == -1) {
			conn_report(L, c, "send: %s", strerror(errno));
			conn_fail(L, c, F_RESET);
			return 0;
		}
		c->out_off += (size_t)w;
		L->bytes_sent += (uint64_t)w;
	}
	c->st = C_RECEIVING;
	return conn_watch(L, c, EPOLLIN | EPOLLRDHUP);
}

/* A header's value if line `p` (of `len` bytes) is "name: value". */
static const char *
header_value(const char *p, size_t len, const char *name, size_t *vlen)
{
	size_t	 n = strlen(name);

	if (len <= n || strncasecmp(p, name, n) != 0 || p[n] != ':')
		return NULL;
	p += n + 1;
	len -= n + 1;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	*vlen = len;
	return p;
}

/*
 * Parses c->in: 0 with the answer complete (status, body, Connection:
 * close), 1 when more bytes are needed, -1 when it is not an answer this
 * tool reads (no Content-Length, chunked, too long, bytes after it).
 */
static int
parse_response(struct conn *c, int *status, const char **body,
    size_t *blen)
{
	const char	*s = (const char *)c->in, *end, *line, *eol, *v;
	uint64_t	 cl = 0;
	size_t		 hlen, vlen;
	int		 have_cl = 0;
	char		 num[24];

	end = memmem(s, c->in_len, "\r\n\r\n", 4);
	if (end == NULL)
		return c->in_len >= LOAD_RESP_MAX ? -1 : 1;
	hlen = (size_t)(end - s) + 4;
	if (hlen < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' ||
	    s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' ||
	    s[11] < '0' || s[11] > '9')
		return -1;
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	c->closing = s[7] == '0';	/* HTTP/1.0: no keep-alive here */
	line = (const char *)memchr(s, '\n', hlen) + 1;
	while (line < end) {
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (eol == NULL)
			return -1;
		if ((v = header_value(line, (size_t)(eol - line),
		    "Content-Length", &vlen)) != NULL) {
			if (vlen == 0 || vlen >= sizeof(num))
				return -1;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			if (util_parse_u64(num, &cl) == -1)
				return -1;
			have_cl = 1;
		} else if (header_value(line, (size_t)(eol - line),
		    "Transfer-Encoding", &vlen) != NULL)
			return -1;
		else if ((v = header_value(line, (size_t)(eol - line),
		    "Connection", &vlen)) != NULL && vlen == 5 &&
		    strncasecmp(v, "close", 5) == 0)
			c->closing = 1;
		line = eol + 2;
	}
	if (!have_cl || cl > LOAD_RESP_MAX - hlen)
		return -1;
	if (c->in_len < hlen + cl)
		return 1;
	if (c->in_len > hlen + cl)
		return -1;
	*body = s + hlen;
	*blen = (size_t)cl;
	return 0;
}

/* The first line of a body, printable, for the failure report. */
static void
body_line(const char *b, size_t len, char *out, size_t outlen)
{
	size_t	 i;

	for (i = 0; i < len && i + 1 < outlen && b[i] != '\n'; i++)
		out[i] = b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '_';
	out[i] = '\0';
}

static int
conn_answer(struct load *L, struct conn *c, int64_t now, int status,
    const char *body, size_t blen)
{
	enum wire_ack_status	 st;
	char			 text[120];
	uint64_t		 seq = c->seq++;	/* never sealed twice */

	L->busy--;
	if (status >= 100 && status < 600)
		L->statuses[status]++;
	if (status != 200) {
		body_line(body, blen, text, sizeof(text));
		conn_report(L, c, "HTTP %d: %s", status, text);
		c->st = C_READY;	/* not busy any more */
		conn_fail(L, c, F_STATUS);
		return 0;
	}
	if (wire_ack_verify(body, blen, c->id, seq, c->tag, c->key, &st) ==
	    -1) {
		body_line(body, blen, text, sizeof(text));
		conn_report(L, c, "HTTP 200 without its acknowledgement: %s",
		    text);
		c->st = C_READY;
		conn_fail(L, c, F_BAD_ACK);
		return 0;
	}
	L->ok++;
	L->t_last = now;
	hist_add(&L->lat, (uint64_t)(now - c->t0) / 1000);
	if (st == WIRE_ACK_NEW) {
		L->ack_new++;
		L->datagrams += c->pend_dgrams;
		L->set_hash += c->pend_set;
	} else
		L->ack_dup++;
	if (c->closing) {
		/* The gateway closes after this answer: a new connection. */
		c->st = C_READY;
		conn_close(L, c);
		if (!conn_more(L, c, now)) {
			c->st = C_DONE;
			return 0;
		}
		L->reconnects++;
		return conn_connect(L, c, now);
	}
	return conn_next(L, c, now);
}

static int
conn_read(struct load *L, struct conn *c, int64_t now)
{
	const char	*body = NULL;
	size_t		 blen = 0;
	ssize_t		 r;
	int		 status = 0, k;

	for (;;) {
		if (c->in_len == LOAD_RESP_MAX) {
			conn_report(L, c, "answer longer than %d bytes",
			    LOAD_RESP_MAX);
			conn_fail(L, c, F_BAD_RESPONSE);
			return 0;
		}
		r = recv(c->fd, c->in + c->in_len, LOAD_RESP_MAX - c->in_len,
		    0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0) {
			conn_report(L, c, "connection %s before the answer "
			    "was complete (%zu bytes)", r == 0 ? "closed" :
			    strerror(errno), c->in_len);
			conn_fail(L, c, F_RESET);
			return 0;
		}
		c->in_len += (size_t)r;
		if ((k = parse_response(c, &status, &body, &blen)) == 1)
			continue;
		if (k == -1) {
			conn_report(L, c, "not an HTTP answer fp-load reads");
			conn_fail(L, c, F_BAD_RESPONSE);
			return 0;
		}
		return conn_answer(L, c, now, status, body, blen);
	}
}

/* An idle connection became readable: the gateway closed it (or spoke). */
static void
conn_idle_event(struct load *L, struct conn *c)
{
	uint8_t	 b;
	ssize_t	 r;

	r = recv(c->fd, &b, 1, MSG_PEEK);
	if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (c->st == C_DONE) {
		/* Its posts are done: an idle close is the gateway's right. */
		L->closed_idle++;
		conn_close(L, c);
		c->st = C_CLOSED;
		return;
	}
	conn_report(L, c, "the gateway %s before the post", r == 0 ?
	    "closed the connection" : r > 0 ? "sent bytes nobody asked for" :
	    strerror(errno));
	/* A queued client is skipped when its turn comes. */
	conn_fail(L, c, F_RESET);
}

static int
conn_event(struct load *L, struct conn *c, uint32_t ev, int64_t now)
{
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	switch (c->st) {
	case C_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == 0 && !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return 0;
		if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
			conn_report(L, c, "connect: %s", strerror(err != 0 ?
			    err : ECONNREFUSED));
			conn_fail(L, c, F_CONNECT);
			return 0;
		}
		L->connecting--;
		L->open++;
		if (L->open > L->peak_open)
			L->peak_open = L->open;
		hist_add(&L->conn_lat, (uint64_t)(now - c->t0) / 1000);
		return conn_next(L, c, now);
	case C_SENDING:
		return conn_write(L, c, now);
	case C_RECEIVING:
		return conn_read(L, c, now);
	case C_READY:
	case C_DONE:
		conn_idle_event(L, c);
		return 0;
	case C_IDLE:
	case C_CLOSED:
		break;
	}
	return 0;
}

/* Fails what waited too long: connections and answers. */
static void
deadlines(struct load *L, int64_t now)
{
	for (uint32_t i = 0; i < L->n; i++) {
		struct conn *c = &L->c[i];

		if (c->deadline > now)
			continue;
		if (c->st == C_CONNECTING) {
			conn_report(L, c, "no connection after %.1f s",
			    L->o.conn_timeout);
			conn_fail(L, c, F_CONNECT);
		} else if (c->st == C_SENDING || c->st == C_RECEIVING) {
			conn_report(L, c, "post %" PRIu64 ": no answer after "
			    "%.1f s (%zu of %zu request bytes sent, %zu answer "
			    "bytes in)", c->started, L->o.req_timeout,
			    c->out_off, c->out.len, c->in_len);
			conn_fail(L, c, F_TIMEOUT);
		}
	}
}

/* Starts queued posts, as many as --rate allows by now. */
static int
pump(struct load *L, int64_t now, int64_t *wait_ns)
{
	uint64_t	 allowed;
	struct conn	*c;

	*wait_ns = -1;
	while (L->qlen > 0) {
		if (L->o.rate > 0) {
			allowed = 1 + (uint64_t)((double)(now - L->t_post) *
			    L->o.rate / NS_PER_S);
			if (L->posts_started >= allowed) {
				*wait_ns = (int64_t)((double)(L->posts_started)
				    * NS_PER_S / L->o.rate) -
				    (now - L->t_post) + 1;
				return 0;
			}
		}
		c = &L->c[L->q[L->qhead]];
		L->qhead = (L->qhead + 1) % L->n;
		L->qlen--;
		if (conn_post(L, c, now) == -1)
			return -1;
	}
	return 0;
}

/* Everything connected (or failed): every ready client queues a post. */
static int
start_posting(struct load *L, int64_t now)
{
	L->posting = 1;
	L->t_post = now;
	for (uint32_t i = 0; i < L->n; i++)
		if (L->c[i].st == C_READY && conn_next(L, &L->c[i], now) == -1)
			return -1;
	return 0;
}

/* Runs the load; returns why it stopped. */
static const char *
run(struct load *L)
{
	struct epoll_event	 ev[LOAD_EVENTS];
	int64_t			 now, next_tick, end, wait_ns = -1, tmo;
	int			 n;

	now = util_mono_ns();
	L->t_start = now;
	end = now + (int64_t)(L->o.timeout * NS_PER_S);
	next_tick = now + LOAD_TICK_NS;
	for (uint32_t i = 0; i < L->n; i++)
		if (conn_connect(L, &L->c[i], now) == -1)
			return "error";
	for (;;) {
		now = util_mono_ns();
		if (got_stop)
			return "signal";
		if (now >= end)
			return "timeout";
		if (!L->posting && L->connecting == 0 &&
		    start_posting(L, now) == -1)
			return "error";
		if (L->posting && pump(L, now, &wait_ns) == -1)
			return "error";
		if (L->posting && L->connecting == 0 && L->busy == 0 &&
		    L->qlen == 0)
			return "done";
		if (now >= next_tick) {
			deadlines(L, now);
			next_tick = now + LOAD_TICK_NS;
		}
		tmo = next_tick - now;
		if (L->posting && wait_ns >= 0 && wait_ns < tmo)
			tmo = wait_ns;
		n = epoll_wait(L->ep, ev, LOAD_EVENTS,
		    (int)((tmo + 999999) / 1000000));
		if (n == -1 && errno != EINTR) {
			fprintf(stderr, "fp-load: epoll_wait: %s\n",
			    strerror(errno));
			return "error";
		}
		now = util_mono_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = &L->c[ev[i].data.u32];

			if (c->fd != -1 && conn_event(L, c, ev[i].events,
			    now) == -1)
				return "error";
		}
	}
}

/*
 * After the run: what never got an answer fails, what was never made is
 * counted; connections the gateway closed while we held them are
 * noticed first (one more look at the events).
 */
static uint64_t
finish(struct load *L, uint64_t *open_at_end)
{
	struct epoll_event	 ev[LOAD_EVENTS];
	uint64_t		 missing = 0;
	int			 n, rounds = 0;

	while (rounds++ < 4 && (n = epoll_wait(L->ep, ev, LOAD_EVENTS, 0)) >
	    0) {
		int idle_events = 0;

		for (int i = 0; i < n; i++) {
			struct conn *c = &L->c[ev[i].data.u32];

			if (c->fd != -1 && (c->st == C_DONE ||
			    c->st == C_READY)) {
				conn_idle_event(L, c);
				idle_events++;
			}
		}
		if (idle_events == 0)
			break;
	}
	*open_at_end = L->open;
	for (uint32_t i = 0; i < L->n; i++) {
		struct conn *c = &L->c[i];

		if (c->st == C_SENDING || c->st == C_RECEIVING ||
		    c->st == C_CONNECTING) {
			conn_report(L, c, "still waiting at the end of the run");
			conn_fail(L, c, c->st == C_CONNECTING ? F_CONNECT :
			    F_TIMEOUT);
		}
		if (L->o.seconds == 0)
			missing += L->o.batches - c->started;
		conn_close(L, c);
	}
	/*
	 * A client stops at its first failure, and a failed connection is
	 * the failure of the request it was opened for: not "not made".
	 */
	return L->o.seconds == 0 ? missing - L->failed[F_CONNECT] : 0;
}

/* ,"name":{"p50":..,"p90":..,"p99":..,"max":..} in ms, or null if empty. */
static void
print_hist(const char *name, const struct hist *h)
{
	if (h->n == 0) {
		printf(",\"%s\":null", name);
		return;
	}
	printf(",\"%s\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,"
	    "\"max\":%.2f}", name, hist_ms(h, 0.5), hist_ms(h, 0.9),
	    hist_ms(h, 0.99), (double)h->max / 1000);
}

static void
print_summary(const struct load *L, const char *stop, uint64_t open_at_end,
    uint64_t missing)
{
	uint64_t	 failed = 0;
	double		 span = L->t_last > L->t_first ?
	    (double)(L->t_last - L->t_first) / NS_PER_S : 0;
	double		 elapsed = (double)(util_mono_ns() - L->t_start) /
	    NS_PER_S;
	const char	*sep = "";

	for (int f = 0; f < F_COUNT; f++)
		failed += L->failed[f];
	printf("{\"tool\":\"fp-load\",\"clients\":%u,\"peak_open\":%u"
	    ",\"open_at_end\":%" PRIu64 ",\"requests\":%" PRIu64
	    ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"not_made\":%" PRIu64
	    ",\"ack_new\":%" PRIu64 ",\"ack_dup\":%" PRIu64,
	    L->n, L->peak_open, open_at_end, L->ok + failed, L->ok, failed,
	    missing, L->ack_new, L->ack_dup);
	for (int f = 0; f < F_COUNT; f++)
		printf(",\"failed_%s\":%" PRIu64, fail_names[f], L->failed[f]);
	printf(",\"statuses\":{");
	for (int s = 100; s < 600; s++) {
		if (L->statuses[s] == 0)
			continue;
		printf("%s\"%d\":%" PRIu64, sep, s, L->statuses[s]);
		sep = ",";
	}
	printf("},\"reconnects\":%" PRIu64 ",\"closed_idle\":%" PRIu64
	    ",\"datagrams\":%" PRIu64 ",\"records\":%" PRIu64
	    ",\"bytes_sent\":%" PRIu64 ",\"set_hash\":\"%016" PRIx64 "\""
	    ",\"connect_s\":%.3f",
	    L->reconnects, L->closed_idle, L->datagrams,
	    L->datagrams * LOAD_V5_RECORDS, L->bytes_sent, L->set_hash,
	    (double)((L->t_post > 0 ? L->t_post : util_mono_ns()) -
	    L->t_start) / NS_PER_S);
	print_hist("connect_ms", &L->conn_lat);
	printf(",\"post_s\":%.3f,\"posts_per_s\":%.0f,\"records_per_s\":%.0f",
	    span, span > 0 ? (double)L->ok / span : 0,
	    span > 0 ? (double)(L->datagrams * LOAD_V5_RECORDS) / span : 0);
	print_hist("latency_ms", &L->lat);
	printf(",\"elapsed_s\":%.3f,\"stop\":\"%s\"}\n", elapsed, stop);
	fflush(stdout);
}

/* Raises the soft RLIMIT_NOFILE to the hard limit if N clients need it. */
static int
raise_nofile(uint64_t need)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		fprintf(stderr, "fp-load: getrlimit: %s\n", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			fprintf(stderr, "fp-load: setrlimit: %s\n",
			    strerror(errno));
			return -1;
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		fprintf(stderr, "fp-load: %" PRIu64 " file descriptors needed, "
		    "the hard limit (RLIMIT_NOFILE) is %llu: raise it "
		    "(ulimit -Hn) or use fewer --clients\n", need,
		    (unsigned long long)rl.rlim_max);
		return -1;
	}
	return 0;
}

static int
setup(struct load *L)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 err[256];
	size_t			 raw_max;
	uint64_t		 now_us;

	if (util_parse_hostport(L->o.gateway, 1, &ss, &sslen) == -1 ||
	    ss.ss_family != AF_INET) {
		fprintf(stderr, "fp-load: --gateway %s: want IPv4 "
		    "address:port\n", L->o.gateway);
		return 2;
	}
	memcpy(&L->dst, &ss, sizeof(L->dst));
	if ((ntohl(L->dst.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "fp-load: --gateway %s: only 127.0.0.0/8 "
		    "(loopback) is allowed\n", L->o.gateway);
		return 2;
	}
	if (util_snprintf(L->host, sizeof(L->host), "%s", L->o.gateway) ==
	    -1 || util_snprintf(L->path, sizeof(L->path), "%s/v1/batch",
	    L->o.prefix) == -1 || (L->o.prefix[0] != '\0' &&
	    L->o.prefix[0] != '/')) {
		fprintf(stderr, "fp-load: bad --gateway or --path-prefix\n");
		return 2;
	}
	if (keys_load(L->o.keys, &L->keys, err, sizeof(err)) == -1) {
		fprintf(stderr, "fp-load: --keys: %s\n", err);
		return 2;
	}
	if (keys_count(L->keys) < L->o.clients) {
		fprintf(stderr, "fp-load: --keys %s has %zu clients, %" PRIu64
		    " wanted\n", L->o.keys, keys_count(L->keys), L->o.clients);
		return 2;
	}
	if (raise_nofile(L->o.clients + LOAD_FD_MARGIN) == -1)
		return 1;
	L->n = (uint32_t)L->o.clients;
	raw_max = 4 + L->o.datagrams * wire_entry_size(LOAD_V5_LEN);
	if ((L->c = calloc(L->n, sizeof(*L->c))) == NULL ||
	    (L->q = calloc(L->n, sizeof(*L->q))) == NULL ||
	    buf_init(&L->entries, raw_max, raw_max) == -1 ||
	    buf_init(&L->sealed, 0, raw_max + raw_max / 8 + 1024) == -1) {
		fprintf(stderr, "fp-load: out of memory\n");
		return 1;
	}
	if ((L->ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		fprintf(stderr, "fp-load: epoll_create1: %s\n",
		    strerror(errno));
		return 1;
	}
	/*
	 * Batch numbers start from the clock as a new client's do
	 * (unix_seconds << 20), at microsecond resolution, so a second run
	 * against the same gateway state is forwarded again, not dup.
	 */
	now_us = util_real_us();
	L->seq_base = (now_us / 1000000) << 20 |
	    (now_us % 1000000) * 1048576 / 1000000;
	for (uint32_t i = 0; i < L->n; i++) {
		struct conn *c = &L->c[i];

		c->fd = -1;
		c->idx = i;
		c->id = keys_id(L->keys, i);
		c->key = keys_find(L->keys, c->id);
		c->seq = L->seq_base;
		fpb_rng_seed(&c->rng, L->o.seed * 1000003 + i);
		if ((c->in = malloc(LOAD_RESP_MAX)) == NULL ||
		    buf_init(&c->out, 0, LOAD_HEAD_MAX +
		    L->sealed.max) == -1) {
			fprintf(stderr, "fp-load: out of memory\n");
			return 1;
		}
	}
	return 0;
}

static void
teardown(struct load *L)
{
	if (L->c != NULL) {
		for (uint32_t i = 0; i < L->n; i++) {
			free(L->c[i].in);
			buf_free(&L->c[i].out);
		}
	}
	free(L->c);
	free(L->q);
	buf_free(&L->entries);
	buf_free(&L->sealed);
	if (L->ep > 0)
		close(L->ep);
	keys_unref(L->keys);
}

int
main(int argc, char **argv)
{
	static struct load	 L;
	struct sigaction	 sa;
	const char		*stop;
	uint64_t		 open_at_end = 0, missing, failed = 0;
	int			 rc;

	if (parse_opts(argc, argv, &L.o) == -1)
		return 2;
	if (wire_init() == -1) {
		fprintf(stderr, "fp-load: libsodium failed to start\n");
		return 1;
	}
	if (L.o.write_keys != NULL)
		return write_keys(&L.o) == 0 ? 0 : 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	L.ep = -1;
	if ((rc = setup(&L)) != 0) {
		teardown(&L);
		return rc;
	}
	stop = run(&L);
	missing = finish(&L, &open_at_end);
	print_summary(&L, stop, open_at_end, missing);
	for (int f = 0; f < F_COUNT; f++)
		failed += L.failed[f];
	rc = failed == 0 && missing == 0 && strcmp(stop, "done") == 0 ? 0 : 1;
	teardown(&L);
	return rc;
}
