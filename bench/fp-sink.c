/*
 * fp-sink.c: counting UDP sink for the benchmarks.
 *
 * Receives with recvmmsg() on a socket with a large receive buffer, counts
 * datagrams, flow records and bytes, and hashes every payload in arrival
 * order (fpb.h) so that one comparison with fp-gen's digest proves the
 * stream arrived complete, unaltered and in order.  It also follows each
 * exporter's header sequence numbers (per source address and port, version
 * and engine or observation domain) to say where a difference came from:
 * gaps, duplicates or reordering.  The kernel's own drop count for this
 * socket (SO_RXQ_OVFL) separates loss at the sink from loss upstream.
 *
 * Stops after --expect datagrams, after --idle seconds without traffic or
 * at --timeout, whichever comes first, and prints one JSON line.
 */
#include <sys/socket.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bytes.h"
#include "nf.h"
#include "util.h"

#include "fpb.h"

#define SINK_SLOTS		64	/* datagrams per recvmmsg() */
#define SINK_DGRAM_MAX		65536
#define SINK_RCVBUF		(64 * 1024 * 1024)
#define SINK_STREAMS_MAX	256
#define SINK_TEMPLATES_MAX	64	/* IPFIX templates per stream */
#define SINK_WINDOW		(1U << 20)	/* sequence positions kept */
#define SINK_POLL_MAX_MS	200

/* What identifies one exporter's sequence-number space. */
struct stream_key {
	uint8_t		addr[16];
	uint16_t	port;
	uint16_t	version;
	uint32_t	domain;
	uint8_t		family;
	uint8_t		pad[3];
};

struct tmpl {
	uint16_t	id;
	uint16_t	reclen;		/* 0: variable length, uncountable */
};

struct stream {
	struct stream_key key;
	int		 synced;
	uint32_t	 expected;	/* next sequence number */
	uint64_t	*seen;		/* bitmap of recent datagram starts */
	struct tmpl	 tmpl[SINK_TEMPLATES_MAX];
	unsigned int	 ntmpl;
};

struct seqstats {
	uint64_t	gaps;		/* jumps forward */
	int64_t		missing;	/* skipped, less late arrivals */
	uint64_t	duplicates;
	uint64_t	reordered;	/* late, filling an earlier gap */
	uint64_t	stale;		/* too far behind to tell */
	uint64_t	uncounted;	/* IPFIX data, template unknown */
};

struct sink {
	struct stream	*streams[SINK_STREAMS_MAX];
	unsigned int	 nstreams;
	uint64_t	 streams_over;
	struct seqstats	 seq;
	struct fpb_digest digest;
	uint64_t	 datagrams, records, bytes, invalid, malformed;
	uint32_t	 kernel_drops;
	double		 t_first, t_last;
};

struct opts {
	const char	*listen;
	const char	*expect_hash;
	uint64_t	 expect, rcvbuf;
	double		 idle, wait_first, timeout, linger;
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
	    "usage: fp-sink [--listen HOST:PORT] [--expect N] [--idle S] "
	    "[--wait-first S]\n"
	    "               [--timeout S] [--linger S] [--rcvbuf BYTES] "
	    "[--expect-hash HEX]\n\n"
	    "  --listen HOST:PORT  where to receive (default 127.0.0.1:2055; "
	    "port 0 picks one)\n"
	    "  --expect N          stop after N datagrams\n"
	    "  --linger S          after N, keep counting S seconds (extras, "
	    "duplicates)\n"
	    "  --idle S            stop after S seconds without a datagram "
	    "(default 5)\n"
	    "  --wait-first S      longest wait for the first datagram "
	    "(default: --idle)\n"
	    "  --timeout S         stop after S seconds in any case (default "
	    "3600)\n"
	    "  --rcvbuf BYTES      receive buffer (default 64M; K/M/G)\n"
	    "  --expect-hash HEX   exit 1 unless the ordered digest matches\n\n"
	    "Prints {\"listening\":...} once bound, then one JSON summary "
	    "line.\n");
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "expect", required_argument, NULL, 'e' },
		{ "expect-hash", required_argument, NULL, 'H' },
		{ "idle", required_argument, NULL, 'i' },
		{ "wait-first", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "linger", required_argument, NULL, 'g' },
		{ "rcvbuf", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch, bad = 0;

	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:2055";
	o->rcvbuf = SINK_RCVBUF;
	o->idle = 5;
	o->wait_first = -1;
	o->timeout = 3600;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': o->listen = optarg; break;
		case 'H': o->expect_hash = optarg; break;
		case 'e': bad = util_parse_u64(optarg, &o->expect); break;
		case 'b': bad = util_parse_size(optarg, &o->rcvbuf); break;
		case 'i': bad = fpb_parse_seconds(optarg, &o->idle); break;
		case 'w': bad = fpb_parse_seconds(optarg, &o->wait_first); break;
		case 't': bad = fpb_parse_seconds(optarg, &o->timeout); break;
		case 'g': bad = fpb_parse_seconds(optarg, &o->linger); break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad == -1) {
			fprintf(stderr, "fp-sink: bad value \"%s\"\n", optarg);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	if (o->wait_first < 0)
		o->wait_first = o->idle;
	if (o->idle <= 0 || o->timeout <= 0 || o->rcvbuf > INT32_MAX / 2) {
		fprintf(stderr, "fp-sink: --idle and --timeout must be > 0, "
		    "--rcvbuf under 1G\n");
		return -1;
	}
	return 0;
}

static void
key_from(struct stream_key *k, const struct sockaddr_storage *ss,
    const struct nf_info *info)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)ss->ss_family;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		memcpy(k->addr, &s4->sin_addr, 4);
		k->port = ntohs(s4->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)ss;

		memcpy(k->addr, &s6->sin6_addr, 16);
		k->port = ntohs(s6->sin6_port);
	}
	k->version = info->version;
	k->domain = info->domain;
}

/* The stream for `k`, created on first sight; NULL past the ceiling. */
static struct stream *
stream_get(struct sink *s, const struct stream_key *k)
{
	static unsigned int	 last;
	struct stream		*st;

	if (last < s->nstreams &&
	    memcmp(&s->streams[last]->key, k, sizeof(*k)) == 0)
		return s->streams[last];
	for (unsigned int i = 0; i < s->nstreams; i++) {
		if (memcmp(&s->streams[i]->key, k, sizeof(*k)) == 0) {
			last = i;
			return s->streams[i];
		}
	}
	if (s->nstreams == SINK_STREAMS_MAX)
		return NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	if ((st->seen = calloc(SINK_WINDOW / 64, sizeof(uint64_t))) == NULL) {
		free(st);
		return NULL;
	}
	st->key = *k;
	last = s->nstreams;
	s->streams[s->nstreams++] = st;
	return st;
}

static int
seen_test(const struct stream *st, uint32_t pos)
{
	pos %= SINK_WINDOW;
	return (st->seen[pos / 64] >> (pos % 64)) & 1;
}

static void
seen_set(struct stream *st, uint32_t pos, int on)
{
	uint64_t bit;

	pos %= SINK_WINDOW;
	bit = 1ULL << (pos % 64);
	if (on)
		st->seen[pos / 64] |= bit;
	else
		st->seen[pos / 64] &= ~bit;
}

/*
 * Sequence accounting for a datagram that starts at `seq` and covers `n`
 * positions (records for v5 and IPFIX, 1 for v9).  Moving forward forgets
 * what the window held for the positions now reused; moving backward is
 * a duplicate if that start was seen, a late arrival otherwise.
 */
static void
seq_track(struct stream *st, uint32_t seq, uint32_t n, struct seqstats *ss)
{
	uint32_t	ahead = seq - st->expected, back = st->expected - seq;
	uint64_t	span;

	if (!st->synced || ahead < (1U << 31)) {
		if (!st->synced)
			span = SINK_WINDOW;
		else {
			span = (uint64_t)ahead + n;
			if (ahead > 0) {
				ss->gaps++;
				ss->missing += ahead;
			}
		}
		if (span >= SINK_WINDOW)
			memset(st->seen, 0, SINK_WINDOW / 8);
		else
			for (uint64_t i = 0; i < span; i++)
				seen_set(st, st->expected + (uint32_t)i, 0);
		seen_set(st, seq, 1);
		st->expected = seq + n;
		st->synced = 1;
		return;
	}
	if (back > SINK_WINDOW) {
		ss->stale++;
		return;
	}
	if (seen_test(st, seq)) {
		ss->duplicates++;
		return;
	}
	seen_set(st, seq, 1);
	ss->reordered++;
	ss->missing -= n;
}

static void
tmpl_put(struct stream *st, uint16_t id, uint16_t reclen, int withdraw)
{
	unsigned int i;

	for (i = 0; i < st->ntmpl; i++)
		if (st->tmpl[i].id == id)
			break;
	if (withdraw) {
		if (i < st->ntmpl)
			st->tmpl[i] = st->tmpl[--st->ntmpl];
		return;
	}
	if (i == st->ntmpl) {
		if (st->ntmpl == SINK_TEMPLATES_MAX)
			return;
		st->ntmpl++;
	}
	st->tmpl[i].id = id;
	st->tmpl[i].reclen = reclen;
}

/* Length of one record of template `id`; 0 if unknown or variable. */
static uint16_t
tmpl_reclen(const struct stream *st, uint16_t id)
{
	for (unsigned int i = 0; i < st->ntmpl; i++)
		if (st->tmpl[i].id == id)
			return st->tmpl[i].reclen;
	return 0;
}

/* Learns the (options) templates of one IPFIX template set. */
static void
ipfix_templates(struct stream *st, struct rcur *r, int options)
{
	while (r->left >= 4) {
		uint16_t id = rcur_u16(r), fields = rcur_u16(r);
		uint32_t len = 0;
		int	 variable = 0;

		if (fields == 0) {
			tmpl_put(st, id, 0, 1);
			continue;
		}
		if (options)
			(void)rcur_u16(r);		/* scope field count */
		for (uint16_t f = 0; f < fields && !r->err; f++) {
			uint16_t ie = rcur_u16(r), flen = rcur_u16(r);

			if (ie & 0x8000)
				(void)rcur_u32(r);	/* enterprise number */
			if (flen == 65535)
				variable = 1;
			else
				len += flen;
		}
		if (r->err)
			return;
		tmpl_put(st, id, variable || len == 0 || len > 65535 ? 0 :
		    (uint16_t)len, 0);
	}
}

/*
 * Data records in one IPFIX message, learning templates on the way;
 * -1 when a data set's template is unknown (the count cannot be told).
 */
static int64_t
ipfix_records(struct stream *st, const uint8_t *p, size_t len)
{
	struct rcur	r, set;
	int64_t		n = 0;
	int		unknown = 0;

	rcur_init(&r, p, len);
	(void)rcur_take(&r, NF_IPFIX_HEADER);
	while (r.left >= 4) {
		uint16_t	 id = rcur_u16(&r), slen = rcur_u16(&r), rl;
		const uint8_t	*body;

		if (slen < 4 || (body = rcur_take(&r, slen - 4)) == NULL)
			break;
		rcur_init(&set, body, slen - 4U);
		if (id == 2 || id == 3)
			ipfix_templates(st, &set, id == 3);
		else if (id >= 256) {
			if ((rl = tmpl_reclen(st, id)) == 0)
				unknown = 1;
			else
				n += (slen - 4) / rl;
		}
	}
	return unknown ? -1 : n;
}

static void
sink_datagram(struct sink *s, const uint8_t *p, size_t len,
    const struct sockaddr_storage *from)
{
	struct nf_info		 info;
	struct stream_key	 k;
	struct stream		*st;
	enum nf_verdict		 v;
	int64_t			 n;
	uint32_t		 step;

	s->datagrams++;
	s->bytes += len;
	fpb_digest_add(&s->digest, p, len);
	v = nf_check(p, len, &info);
	if (v == NF_INVALID) {
		s->invalid++;
		return;
	}
	if (v == NF_MALFORMED)
		s->malformed++;
	key_from(&k, from, &info);
	if ((st = stream_get(s, &k)) == NULL) {
		s->streams_over++;
		return;
	}
	switch (info.version) {
	case 5:
		n = info.records;
		step = info.records;
		break;
	case 9:
		n = info.records;
		step = 1;		/* v9 counts export packets */
		break;
	default:
		n = ipfix_records(st, p, len);
		step = n < 0 ? 0 : (uint32_t)n;
		break;
	}
	if (n < 0) {
		/* Resynchronise on the next message that can be counted. */
		s->seq.uncounted++;
		st->synced = 0;
		return;
	}
	s->records += (uint64_t)n;
	/* A message without data records shares its number with the next. */
	if (step > 0)
		seq_track(st, info.seq, step, &s->seq);
}

static int
open_socket(const struct opts *o, char *bound, size_t boundlen, int *fdp,
    int *rcvbuf)
{
	struct sockaddr_storage	ss;
	socklen_t		sslen;
	int			fd = -1, one = 1, v = (int)o->rcvbuf;
	socklen_t		len = sizeof(*rcvbuf);

	if (util_parse_hostport(o->listen, 1, &ss, &sslen) == -1) {
		fprintf(stderr, "fp-sink: bad --listen \"%s\"\n", o->listen);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_DGRAM, 0)) == -1)
		goto fail;
	/* Root may exceed net.core.rmem_max; others get what it allows. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	(void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1)
		goto fail;
	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, &len) == -1)
		goto fail;
	util_format_sockaddr((struct sockaddr *)&ss, bound, boundlen);
	*fdp = fd;
	return 0;
fail:
	fprintf(stderr, "fp-sink: %s: %s\n", o->listen, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/* The kernel's running count of datagrams this socket dropped. */
static void
note_drops(struct sink *s, struct msghdr *mh)
{
	struct cmsghdr	*cm;
	uint32_t	 d;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SO_RXQ_OVFL &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(d))) {
			memcpy(&d, CMSG_DATA(cm), sizeof(d));
			if (d > s->kernel_drops)
				s->kernel_drops = d;
		}
	}
}

/* Receives until a stop condition; returns its name. */
static const char *
sink_run(struct sink *s, const struct opts *o, int fd)
{
	static uint8_t			 bufs[SINK_SLOTS][SINK_DGRAM_MAX];
	static struct sockaddr_storage	 from[SINK_SLOTS];
	static uint8_t			 ctl[SINK_SLOTS][CMSG_SPACE(4)];
	static struct mmsghdr		 msgs[SINK_SLOTS];
	static struct iovec		 iov[SINK_SLOTS];
	struct pollfd			 pfd = { .fd = fd, .events = POLLIN };
	double				 t0 = fpb_mono_s(), now, until;
	double				 linger_end = -1;
	int				 r, ms;

	for (;;) {
		now = fpb_mono_s();
		if (got_stop)
			return "signal";
		if (now - t0 >= o->timeout)
			return "timeout";
		if (o->expect > 0 && s->datagrams >= o->expect) {
			if (linger_end < 0)
				linger_end = now + o->linger;
			if (now >= linger_end)
				return "expect";
		}
		until = s->datagrams == 0 ? t0 + o->wait_first :
		    s->t_last + o->idle;
		if (now >= until)
			return s->datagrams == 0 ? "no_traffic" : "idle";
		if (linger_end >= 0 && linger_end < until)
			until = linger_end;
		if (t0 + o->timeout < until)
			until = t0 + o->timeout;
		ms = (int)((until - now) * 1000) + 1;
		if (ms > SINK_POLL_MAX_MS)
			ms = SINK_POLL_MAX_MS;
		if (poll(&pfd, 1, ms) <= 0)
			continue;

		for (int i = 0; i < SINK_SLOTS; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = SINK_DGRAM_MAX;
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			msgs[i].msg_hdr.msg_control = ctl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
		}
		r = recvmmsg(fd, msgs, SINK_SLOTS, MSG_DONTWAIT, NULL);
		if (r <= 0)
			continue;
		now = fpb_mono_s();
		if (s->datagrams == 0)
			s->t_first = now;
		s->t_last = now;
		for (int i = 0; i < r; i++) {
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				s->invalid++;
			sink_datagram(s, bufs[i], msgs[i].msg_len, &from[i]);
			note_drops(s, &msgs[i].msg_hdr);
		}
	}
}

static void
print_summary(const struct sink *s, const char *stop, int rcvbuf,
    const char *match)
{
	double secs = s->t_last - s->t_first;

	printf("{\"tool\":\"fp-sink\",\"datagrams\":%" PRIu64 ",\"records\":%"
	    PRIu64 ",\"bytes\":%" PRIu64 ",\"hash\":\"%016" PRIx64
	    "\",\"set_hash\":\"%016" PRIx64 "\",\"match\":%s,\"t_first\":%.6f"
	    ",\"t_last\":%.6f,\"records_per_s\":%.0f,\"streams\":%u"
	    ",\"seq_gaps\":%" PRIu64 ",\"seq_missing_records\":%" PRId64
	    ",\"seq_duplicates\":%" PRIu64 ",\"seq_reordered\":%" PRIu64
	    ",\"seq_stale\":%" PRIu64 ",\"seq_uncounted\":%" PRIu64
	    ",\"invalid\":%" PRIu64 ",\"malformed\":%" PRIu64
	    ",\"kernel_drops\":%" PRIu32 ",\"rcvbuf\":%d,\"stop\":\"%s\"}\n",
	    s->datagrams, s->records, s->bytes, s->digest.ordered,
	    s->digest.set, match, s->t_first, s->t_last,
	    secs > 0 ? (double)s->records / secs : 0.0, s->nstreams,
	    s->seq.gaps, s->seq.missing, s->seq.duplicates, s->seq.reordered,
	    s->seq.stale, s->seq.uncounted, s->invalid, s->malformed,
	    s->kernel_drops, rcvbuf, stop);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct opts		 o;
	struct sigaction	 sa;
	static struct sink	 s;
	char			 bound[80], hash[24];
	const char		*stop, *match = "null";
	int			 fd = -1, rcvbuf = 0, rc = 1;

	if (parse_opts(argc, argv, &o) == -1)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (open_socket(&o, bound, sizeof(bound), &fd, &rcvbuf) == -1)
		goto out;
	printf("{\"listening\":\"%s\",\"rcvbuf\":%d}\n", bound, rcvbuf);
	fflush(stdout);

	stop = sink_run(&s, &o, fd);
	rc = 0;
	if (o.expect_hash != NULL) {
		if (util_snprintf(hash, sizeof(hash), "%016" PRIx64,
		    s.digest.ordered) == -1 ||
		    strcasecmp(hash, o.expect_hash) != 0)
			match = "false";
		else
			match = "true";
		if (strcmp(match, "true") != 0)
			rc = 1;
	}
	if (o.expect > 0 && s.datagrams != o.expect)
		rc = 1;
	print_summary(&s, stop, rcvbuf, match);
out:
	if (fd != -1)
		close(fd);
	for (unsigned int i = 0; i < s.nstreams; i++) {
		free(s.streams[i]->seen);
		free(s.streams[i]);
	}
	return rc;
}
