/*
 * pcap_input.c: live capture threads, the file reader thread, and the
 * hand-off of what they decode to the batcher.
 *
 * One `struct pcap_src` per capture handle, each used by one thread only:
 * its pcap_t, its reassembler and its batcher lane.  The only state shared
 * with other threads is the stop flag and the file job's progress, both
 * atomics.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "bytes.h"
#include "log.h"
#include "nf.h"
#include "util.h"
#include "wire.h"

#include "batcher.h"
#include "config.h"
#include "pcap_input.h"
#include "seqtrack.h"
#include "pktdecode.h"
#include "reasm.h"
#include "stats.h"

#define PCAP_POLL_MS		100	/* stop flag, batch age, stats */
#define PCAP_WAIT_MS		100	/* file job: one wait for a buffer */
#define PCAP_REOPEN_S		5	/* a broken live capture is retried */
#define PCAP_OFFSET_EVERY	64	/* packets between progress updates */
#define PCAP_NAME_MAX		4096
#define PCAP_ITEM_MAX		4096	/* one `input` item */
#define PCAP_STATS_FILE_MAX	4096

/*
 * A filter on ports cannot see fragments after the first, which carry no
 * UDP header, nor IPv6 fragments (the fragment header comes first): they
 * always pass the capture filter, and the filter is applied again to the
 * reassembled datagram (reasm_keep()).
 */
#define PCAP_FRAGMENTS \
	"(udp and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] = 44)"
#define PCAP_EXPR_MAX		8192

struct pcap_input;

struct pcap_src {
	struct pcap_input	*pi;
	const char		*name;		/* interface or file path */
	pcap_t			*p;
	int			 linktype;
	int			 fd;		/* live: selectable fd or -1 */
	struct reasm		*reasm;
	struct reasm_counters	 counted;	/* already in the stats */
	struct batcher_lane	*lane;
	pthread_t		 thread;
	int			 started;
	struct pcap_stat	 last;		/* live: last pcap_stats() */
	int			 have_last;
	uint8_t			*scratch;	/* a reassembled packet, with
						 * an IP header, to filter */
};

struct pcap_input {
	_Atomic int		 stop;
	int			 is_job;
	int			 spool_only;
	int			 drop_malformed;
	uint64_t		 spool_gate;	/* file job pauses above this */
	struct pcap_src		*srcs;
	size_t			 nsrcs;
	struct bpf_program	 raw_prog;	/* the filter, for raw IP */
	int			 have_raw_prog;

	/* live capture */
	char			*filter;
	int			 promisc;
	int			 snaplen;
	int			 buffer;

	/* file job */
	char *const		*files;
	size_t			 nfiles;
	uint64_t		*sizes;
	uint64_t		 total;
	char			*file_filter;
	_Atomic uint64_t	 file_idx;
	_Atomic uint64_t	 offset;
	_Atomic uint64_t	 datagrams;
	_Atomic uint64_t	 bytes;
	_Atomic int		 done;
	_Atomic int		 damaged;
	_Atomic int		 spool_full;
};

/* ---- the `input` key and the job's command line ------------------------ */

static int
strv_push(char ***v, size_t *n, size_t *cap, size_t max, const char *s)
{
	char	**nv, *d;
	size_t	  ncap;

	if (*n >= max)
		return -1;
	if (*n == *cap) {
		ncap = *cap ? *cap * 2 : 8;
		if ((nv = realloc(*v, ncap * sizeof(*nv))) == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	if ((d = strdup(s)) == NULL)
		return -1;
	(*v)[(*n)++] = d;
	return 0;
}

static void
strv_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

struct parse_arg {
	struct pcap_input_list	*l;
	size_t			 ifaces_cap;
	char			*err;
	size_t			 errlen;
};

static int
parse_item(const char *item, void *arg)
{
	struct parse_arg	*pa = arg;
	struct pcap_input_list	*l = pa->l;
	const char		*v;

	if (strncmp(item, "pcap:", 5) == 0) {
		v = item + 5;
		if (*v == '\0' || strlen(v) >= PCAP_ITEM_MAX) {
			snprintf(pa->err, pa->errlen, "input: \"%s\" needs an "
			    "interface name after pcap:", item);
			return -1;
		}
		if (strv_push(&l->ifaces, &l->nifaces, &pa->ifaces_cap,
		    PCAP_INPUT_IFACES_MAX, v) == -1) {
			snprintf(pa->err, pa->errlen, "input: more than %d "
			    "interfaces, or out of memory",
			    PCAP_INPUT_IFACES_MAX);
			return -1;
		}
		return 0;
	}
	if (strncmp(item, "pcap-file:", 10) == 0) {
		v = item + 10;
		if (*v == '\0') {
			snprintf(pa->err, pa->errlen, "input: \"%s\" needs a "
			    "path after pcap-file:", item);
			return -1;
		}
		if (strv_push(&l->files, &l->nfiles, &l->files_cap,
		    PCAP_INPUT_FILES_MAX, v) == -1) {
			snprintf(pa->err, pa->errlen, "input: more than %d "
			    "files, or out of memory", PCAP_INPUT_FILES_MAX);
			return -1;
		}
		return 0;
	}
	snprintf(pa->err, pa->errlen, "input: \"%s\" is neither pcap:IFACE "
	    "nor pcap-file:PATH", item);
	return -1;
}

int
pcap_input_parse(const char *input, struct pcap_input_list *l, char *err,
    size_t errlen)
{
	struct parse_arg	pa = { l, l->nifaces, err, errlen };

	err[0] = '\0';
	if (input == NULL)
		return 0;
	if (util_split_list(input, parse_item, &pa) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "input: out of memory");
		return -1;
	}
	return 0;
}

void
pcap_input_list_free(struct pcap_input_list *l)
{
	strv_free(l->ifaces, l->nifaces);
	strv_free(l->files, l->nfiles);
	memset(l, 0, sizeof(*l));
}

/* A filter that does not compile is a configuration error. */
static int
check_filter(const char *key, const char *expr, int snaplen, char *err,
    size_t errlen)
{
	struct bpf_program	 prog;
	pcap_t			*p;
	int			 rc = 0;

	if (expr == NULL || expr[0] == '\0')
		return 0;
	if ((p = pcap_open_dead(DLT_EN10MB, snaplen)) == NULL) {
		snprintf(err, errlen, "%s: cannot check the filter", key);
		return -1;
	}
	if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) == -1) {
		snprintf(err, errlen, "%s: \"%s\": %s", key, expr,
		    pcap_geterr(p));
		rc = -1;
	} else
		pcap_freecode(&prog);
	if (rc == 0 && strlen(expr) > PCAP_EXPR_MAX - sizeof(PCAP_FRAGMENTS) -
	    16) {
		snprintf(err, errlen, "%s: longer than %zu characters", key,
		    PCAP_EXPR_MAX - sizeof(PCAP_FRAGMENTS) - 16);
		rc = -1;
	}
	pcap_close(p);
	return rc;
}

int
pcap_input_check_config(const struct client_config *c, char *err,
    size_t errlen)
{
	struct pcap_input_list	l;
	int			rc = -1;

	memset(&l, 0, sizeof(l));
	if (pcap_input_parse(c->input, &l, err, errlen) == -1)
		goto out;
	if (check_filter("pcap_filter", c->pcap_filter, (int)c->pcap_snaplen,
	    err, errlen) == -1 || check_filter("pcap_file_filter",
	    c->pcap_file_filter, (int)c->pcap_snaplen, err, errlen) == -1)
		goto out;
	rc = 0;
 out:
	pcap_input_list_free(&l);
	return rc;
}

void
pcap_job_init(struct pcap_job *j)
{
	memset(j, 0, sizeof(*j));
	j->timeout_s = PCAP_JOB_TIMEOUT_S;
}

void
pcap_job_free(struct pcap_job *j)
{
	pcap_input_list_free(&j->in);
}

static int
job_add_file(struct pcap_job *j, const char *path, char *err, size_t errlen)
{
	if (strv_push(&j->in.files, &j->in.nfiles, &j->in.files_cap,
	    PCAP_INPUT_FILES_MAX, path) == -1) {
		snprintf(err, errlen, "--pcap-file: more than %d files, or out "
		    "of memory", PCAP_INPUT_FILES_MAX);
		return -1;
	}
	return 0;
}

int
pcap_job_cli(int argc, char **argv, int i, void *arg, char *err,
    size_t errlen)
{
	struct pcap_job	*j = arg;
	const char	*a = argv[i], *v;
	int		 k;

	if (strncmp(a, "--pcap-file=", 12) == 0) {
		if (a[12] == '\0') {
			snprintf(err, errlen, "--pcap-file needs a file");
			return -1;
		}
		return job_add_file(j, a + 12, err, errlen) == -1 ? -1 : 1;
	}
	if (strcmp(a, "--pcap-file") == 0) {
		/* every following word, so that a shell glob works */
		for (k = i + 1; k < argc && (argv[k][0] != '-' ||
		    (k == i + 1 && strcmp(argv[k], "-") == 0)); k++)
			if (job_add_file(j, argv[k], err, errlen) == -1)
				return -1;
		if (k == i + 1) {
			snprintf(err, errlen, "--pcap-file needs a file");
			return -1;
		}
		return k - i;
	}
	if (strcmp(a, "--spool-only") == 0) {
		j->spool_only = 1;
		j->spool_only_given = 1;
		return 1;
	}
	if (strncmp(a, "--pcap-timeout", 14) == 0 &&
	    (a[14] == '\0' || a[14] == '=')) {
		if (a[14] == '=')
			v = a + 15;
		else if (i + 1 < argc)
			v = argv[i + 1];
		else {
			snprintf(err, errlen, "--pcap-timeout needs a "
			    "duration");
			return -1;
		}
		if (util_parse_duration(v, &j->timeout_s) == -1 ||
		    j->timeout_s == 0) {
			snprintf(err, errlen, "--pcap-timeout: \"%s\" is not a "
			    "duration of at least 1s", v);
			return -1;
		}
		j->timeout_given = 1;
		return a[14] == '=' ? 1 : 2;
	}
	return 0;
}

void
pcap_job_usage(FILE *f)
{
	fprintf(f,
	    "\nFile job (send captures once, then exit):\n"
	    "  --pcap-file FILE... read export datagrams from pcap/pcapng "
	    "files (repeatable;\n"
	    "                      every following word not starting with "
	    "'-' is a file)\n"
	    "  --spool-only        exit once everything is spooled; do not "
	    "contact the gateway\n"
	    "  --pcap-timeout DUR  give up when nothing was acknowledged for "
	    "this long\n"
	    "                      (default: %ds); exit status 1\n",
	    PCAP_JOB_TIMEOUT_S);
}

/*
 * The pid in <spool_dir>/client.stats if that process is a running
 * flowpost-client other than this one, else 0.
 */
static long
spool_user(const char *spool_dir)
{
	char		 path[PCAP_NAME_MAX], comm[64], *line, *end;
	uint8_t		*data = NULL;
	size_t		 len;
	uint64_t	 pid = 0;
	long		 rc = 0;
	FILE		*f;

	if (util_snprintf(path, sizeof(path), "%s/%s", spool_dir,
	    STATS_FILE) == -1 ||
	    util_read_file(path, PCAP_STATS_FILE_MAX, &data, &len) == -1)
		goto out;
	/* the file is "name value" lines; make it a string */
	if ((line = malloc(len + 1)) == NULL)
		goto out;
	memcpy(line, data, len);
	line[len] = '\0';
	if (strncmp(line, "pid ", 4) == 0) {
		end = line + 4 + strcspn(line + 4, "\n");
		*end = '\0';
		if (util_parse_u64(line + 4, &pid) == -1)
			pid = 0;
	}
	free(line);
	if (pid == 0 || pid > INT32_MAX || (pid_t)pid == getpid() ||
	    (kill((pid_t)pid, 0) == -1 && errno != EPERM))
		goto out;
	/* a stale file whose pid now belongs to another program is no user */
	if (util_snprintf(path, sizeof(path), "/proc/%" PRIu64 "/comm",
	    pid) == 0 && (f = fopen(path, "r")) != NULL) {
		if (fgets(comm, sizeof(comm), f) != NULL &&
		    strncmp(comm, "flowpost-client", 15) != 0)
			pid = 0;
		fclose(f);
	}
	rc = (long)pid;
 out:
	free(data);
	return rc;
}

int
pcap_job_resolve(struct pcap_job *j, const struct client_config *c,
    char *err, size_t errlen)
{
	struct pcap_input_list	l;
	size_t			i;
	long			pid;
	int			rc = -1;

	memset(&l, 0, sizeof(l));
	if (pcap_input_parse(c->input, &l, err, errlen) == -1)
		goto out;
	for (i = 0; i < l.nfiles; i++)
		if (job_add_file(j, l.files[i], err, errlen) == -1)
			goto out;
	if (j->in.nfiles == 0) {
		if (j->spool_only_given || j->timeout_given) {
			snprintf(err, errlen, "--spool-only and --pcap-timeout "
			    "go with --pcap-file");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if ((pid = spool_user(c->spool_dir)) != 0) {
		snprintf(err, errlen, "spool_dir %s is in use by a running "
		    "flowpost-client (pid %ld); give the file job a spool of "
		    "its own with --spool-dir", c->spool_dir, pid);
		goto out;
	}
	rc = 1;
 out:
	pcap_input_list_free(&l);
	return rc;
}

/* ---- counting ------------------------------------------------------------ */

/* Adds what the reassembler counted since the last call. */
static void
src_count_reasm(struct pcap_src *s)
{
	struct reasm_counters	c;

	reasm_counters(s->reasm, &c);
	STATS_ADD(pcap_reasm_timeouts, c.timeouts - s->counted.timeouts);
	STATS_ADD(pcap_reasm_dropped, (c.dropped + c.overlaps) -
	    (s->counted.dropped + s->counted.overlaps));
	s->counted = c;
}

/* Adds the kernel's and the interface's drops since the last call. */
static void
src_count_drops(struct pcap_src *s)
{
	struct pcap_stat	ps;

	if (s->p == NULL || pcap_stats(s->p, &ps) != 0)
		return;
	if (s->have_last) {
		if (ps.ps_drop >= s->last.ps_drop)
			STATS_ADD(pcap_kernel_drops,
			    ps.ps_drop - s->last.ps_drop);
		if (ps.ps_ifdrop >= s->last.ps_ifdrop)
			STATS_ADD(pcap_if_drops,
			    ps.ps_ifdrop - s->last.ps_ifdrop);
	} else {
		STATS_ADD(pcap_kernel_drops, ps.ps_drop);
		STATS_ADD(pcap_if_drops, ps.ps_ifdrop);
	}
	s->last = ps;
	s->have_last = 1;
}

/* ---- from frame to batcher ---------------------------------------------- */

static int
stopping(struct pcap_input *pi)
{
	return atomic_load(&pi->stop) || atomic_load(&pi->spool_full);
}

static void
format_addr(uint8_t family, const uint8_t *addr, uint16_t port, char *out,
    size_t outlen)
{
	char	a[INET6_ADDRSTRLEN];

	if (inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, a,
	    sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(out, outlen, family == 4 ? "%s:%u" : "[%s]:%u", a,
	    (unsigned int)port);
}

/*
 * File job: hands the entry to the batcher, waiting as long as it takes,
 * and pauses while the spool is half full.  -1 when the job stops first.
 */
static int
job_add(struct pcap_src *s, const struct wire_entry *e)
{
	static struct log_limit	 lim;
	struct pcap_input	*pi = s->pi;

	while (!stopping(pi)) {
		if (STATS_GET(spool_bytes) >= pi->spool_gate) {
			if (pi->spool_only) {
				log_error("pcap: the spool is half full (%"
				    PRIu64 " bytes) and --spool-only sends "
				    "nothing; raise spool_max_bytes or run "
				    "without --spool-only",
				    STATS_GET(spool_bytes));
				atomic_store(&pi->spool_full, 1);
				return -1;
			}
			log_limited(&lim, 60, LOGL_INFO, "pcap: the spool is "
			    "half full; reading waits for the gateway");
			batcher_lane_tick(s->lane, util_mono_ns());
			poll(NULL, 0, PCAP_WAIT_MS);
			continue;
		}
		if (batcher_lane_add(s->lane, e, util_mono_ns(),
		    PCAP_WAIT_MS) == 0) {
			atomic_fetch_add(&pi->datagrams, 1);
			atomic_fetch_add(&pi->bytes, e->len);
			return 0;
		}
	}
	return -1;
}

/* The receive path's verdicts (recv.c), then the batcher. */
static void
deliver(struct pcap_src *s, const struct pktdecode_udp *u, uint64_t ts_us)
{
	static struct log_limit	 lim_inv, lim_mal;
	struct pcap_input	*pi = s->pi;
	struct wire_entry	 e;
	struct nf_info		 info;
	char			 from[64];

	STATS_INC(received_datagrams);
	STATS_ADD(received_bytes, u->len);
	switch (nf_check(u->payload, u->len, &info)) {
	case NF_OK:
		break;
	case NF_MALFORMED:
		STATS_INC(malformed);
		if (pi->drop_malformed) {
			STATS_INC(dropped_malformed);
			format_addr(u->family, u->src, u->src_port, from,
			    sizeof(from));
			log_limited(&lim_mal, 60, LOGL_WARN, "pcap: %s: "
			    "malformed NetFlow/IPFIX from %s dropped: %s",
			    s->name, from, info.why ? info.why : "?");
			return;
		}
		break;
	case NF_INVALID:
	default:
		STATS_INC(dropped_invalid);
		format_addr(u->family, u->src, u->src_port, from,
		    sizeof(from));
		log_limited(&lim_inv, 60, LOGL_WARN, "pcap: %s: dropping a %zu "
		    "byte datagram from %s that is not NetFlow/IPFIX: %s",
		    s->name, u->len, from, info.why ? info.why : "?");
		return;
	}
	memset(&e, 0, sizeof(e));
	e.recv_us = ts_us;
	e.family = u->family;
	memcpy(e.addr, u->src, sizeof(e.addr));
	e.src_port = u->src_port;
	e.dst_port = u->dst_port;
	e.len = (uint16_t)u->len;	/* a UDP length leaves at most 65527 */
	e.payload = u->payload;
	if (info.why == NULL)
		seqtrack_note(&e, &info);	/* loss before the capture */
	if (pi->is_job)
		job_add(s, &e);
	else
		batcher_lane_add(s->lane, &e, util_mono_ns(), 0);
}

static void
count_skip(struct pcap_src *s, enum pktdecode_result r, const char *why)
{
	static struct log_limit	lim_trunc, lim_bad;

	switch (r) {
	case PKTDECODE_TRUNCATED:
		STATS_INC(pcap_truncated);
		log_limited(&lim_trunc, 60, LOGL_WARN, "pcap: %s: skipping a "
		    "truncated packet (%s); is pcap_snaplen too small?",
		    s->name, why ? why : "?");
		break;
	case PKTDECODE_BAD:
		STATS_INC(pcap_bad_headers);
		log_limited(&lim_bad, 60, LOGL_WARN, "pcap: %s: skipping a "
		    "packet with a bad header: %s", s->name, why ? why : "?");
		break;
	default:
		STATS_INC(pcap_non_udp);
		break;
	}
}

/*
 * The capture filter, applied to a reassembled UDP datagram: rebuilt as a
 * raw IP packet (addresses, UDP header and payload, no extension
 * headers), since the filter could only see its parts.  1 to keep it.
 */
static int
reasm_keep(struct pcap_src *s, const struct pktdecode_udp *u,
    const struct pcap_pkthdr *h)
{
	struct pcap_input	*pi = s->pi;
	struct pcap_pkthdr	 rh;
	struct wcur		 w;
	size_t			 hl = u->family == 4 ? 20 : 40;
	size_t			 ulen = u->len + 8;

	if (!pi->have_raw_prog)
		return 1;
	wcur_init(&w, s->scratch, hl + REASM_MAX_PACKET);
	if (u->family == 4) {
		wcur_u8(&w, 0x45);
		wcur_u8(&w, 0);
		wcur_u16(&w, (uint16_t)(hl + ulen > 65535 ? 65535 :
		    hl + ulen));
		wcur_u32(&w, 0);		/* id, no fragment bits */
		wcur_u8(&w, 64);
		wcur_u8(&w, PKTDECODE_PROTO_UDP);
		wcur_u16(&w, 0);
		wcur_bytes(&w, u->src, 4);
		wcur_bytes(&w, u->dst, 4);
	} else {
		wcur_u32(&w, 0x60000000);
		wcur_u16(&w, (uint16_t)ulen);
		wcur_u8(&w, PKTDECODE_PROTO_UDP);
		wcur_u8(&w, 64);
		wcur_bytes(&w, u->src, 16);
		wcur_bytes(&w, u->dst, 16);
	}
	/* the UDP header is right before the payload */
	wcur_bytes(&w, u->payload - 8, ulen);
	if (w.err)
		return 1;
	memset(&rh, 0, sizeof(rh));
	rh.ts = h->ts;
	rh.caplen = rh.len = (bpf_u_int32)(hl + ulen);
	return pcap_offline_filter(&pi->raw_prog, &rh, s->scratch) != 0;
}

static void
handle_frame(struct pcap_src *s, const struct pcap_pkthdr *h,
    const uint8_t *data)
{
	struct pktdecode_udp	 u;
	struct pktdecode_frag	 f;
	struct reasm_packet	 pkt;
	enum pktdecode_result	 r;
	const char		*why = NULL;
	uint64_t		 ts_us;

	STATS_INC(pcap_received);
	ts_us = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
	r = pktdecode_frame(s->linktype, data, h->caplen, h->len, &u, &f,
	    &why);
	if (r == PKTDECODE_UDP) {
		deliver(s, &u, ts_us);
		return;
	}
	if (r != PKTDECODE_FRAGMENT) {
		count_skip(s, r, why);
		return;
	}
	STATS_INC(pcap_fragments);
	reasm_expire(s->reasm, ts_us);
	if (reasm_add(s->reasm, &f, ts_us, &pkt) == REASM_DONE) {
		STATS_INC(pcap_reassembled);
		r = pktdecode_transport(pkt.family, pkt.src, pkt.dst,
		    pkt.proto, pkt.data, pkt.len, &u, &why);
		if (r != PKTDECODE_UDP)
			count_skip(s, r, why);
		else if (reasm_keep(s, &u, h))
			deliver(s, &u, ts_us);
	}
	src_count_reasm(s);
}

static void
on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	handle_frame((struct pcap_src *)(void *)user, h, data);
}

/* ---- live capture ---------------------------------------------------------- */

static int
set_filter(pcap_t *p, const char *expr, char *why, size_t whylen)
{
	struct bpf_program	prog;
	char			full[PCAP_EXPR_MAX];

	if (expr == NULL || expr[0] == '\0')
		return 0;
	if (util_snprintf(full, sizeof(full), "(%s) or %s", expr,
	    PCAP_FRAGMENTS) == -1) {
		snprintf(why, whylen, "filter \"%s\" is too long", expr);
		return -1;
	}
	if (pcap_compile(p, &prog, full, 1, PCAP_NETMASK_UNKNOWN) == -1) {
		snprintf(why, whylen, "filter \"%s\": %s", expr,
		    pcap_geterr(p));
		return -1;
	}
	if (pcap_setfilter(p, &prog) == -1) {
		snprintf(why, whylen, "cannot set the filter: %s",
		    pcap_geterr(p));
		pcap_freecode(&prog);
		return -1;
	}
	pcap_freecode(&prog);
	return 0;
}

static int
src_open_live(struct pcap_src *s, char *why, size_t whylen)
{
	struct pcap_input	*pi = s->pi;
	char			 errbuf[PCAP_ERRBUF_SIZE];
	int			 rc;

	errbuf[0] = '\0';
	if ((s->p = pcap_create(s->name, errbuf)) == NULL) {
		snprintf(why, whylen, "%s", errbuf);
		return -1;
	}
	pcap_set_snaplen(s->p, pi->snaplen);
	pcap_set_promisc(s->p, pi->promisc);
	pcap_set_timeout(s->p, PCAP_POLL_MS);
	pcap_set_buffer_size(s->p, pi->buffer);
	if ((rc = pcap_activate(s->p)) < 0) {
		snprintf(why, whylen, "%s%s%s", pcap_statustostr(rc),
		    rc == PCAP_ERROR || rc == PCAP_ERROR_NO_SUCH_DEVICE ||
		    rc == PCAP_ERROR_PERM_DENIED ? ": " : "",
		    rc == PCAP_ERROR || rc == PCAP_ERROR_NO_SUCH_DEVICE ||
		    rc == PCAP_ERROR_PERM_DENIED ? pcap_geterr(s->p) : "");
		goto fail;
	}
	if (rc > 0)
		log_warn("pcap: %s: %s: %s", s->name, pcap_statustostr(rc),
		    pcap_geterr(s->p));
	s->linktype = pcap_datalink(s->p);
	if (pktdecode_link_supported(s->linktype) == -1) {
		snprintf(why, whylen, "link type %d (%s) is not supported",
		    s->linktype, pcap_datalink_val_to_name(s->linktype) ?
		    pcap_datalink_val_to_name(s->linktype) : "?");
		goto fail;
	}
	if (set_filter(s->p, pi->filter, why, whylen) == -1)
		goto fail;
	if (pcap_setnonblock(s->p, 1, errbuf) == -1) {
		snprintf(why, whylen, "cannot make the capture non-blocking: "
		    "%s", errbuf);
		goto fail;
	}
	s->fd = pcap_get_selectable_fd(s->p);
	s->have_last = 0;
	return 0;
 fail:
	pcap_close(s->p);
	s->p = NULL;
	return -1;
}

static void *
live_main(void *arg)
{
	static struct log_limit	 lim_reopen;
	struct pcap_src		*s = arg;
	struct pcap_input	*pi = s->pi;
	struct pollfd		 pfd;
	char			 why[PCAP_ERRBUF_SIZE + 128];
	int64_t			 now, next_second, next_reopen = 0;

	next_second = util_mono_ns() + 1000000000LL;
	while (!atomic_load(&pi->stop)) {
		now = util_mono_ns();
		if (s->p == NULL) {
			/* the capture broke (interface gone?): retry */
			if (now >= next_reopen) {
				if (src_open_live(s, why, sizeof(why)) == 0)
					log_info("pcap: %s: capturing again",
					    s->name);
				else {
					next_reopen = now +
					    PCAP_REOPEN_S * 1000000000LL;
					log_limited(&lim_reopen, 300,
					    LOGL_WARN, "pcap: %s: still "
					    "cannot capture: %s", s->name,
					    why);
				}
			}
			if (s->p == NULL) {
				batcher_lane_tick(s->lane, now);
				poll(NULL, 0, PCAP_POLL_MS);
				continue;
			}
		}
		if (s->fd >= 0) {
			pfd.fd = s->fd;
			pfd.events = POLLIN;
			poll(&pfd, 1, PCAP_POLL_MS);
		} else
			poll(NULL, 0, PCAP_POLL_MS / 10);
		if (pcap_dispatch(s->p, -1, on_packet, (u_char *)s) ==
		    PCAP_ERROR) {
			log_error("pcap: %s: capture failed: %s; trying again "
			    "every %d s", s->name, pcap_geterr(s->p),
			    PCAP_REOPEN_S);
			src_count_drops(s);
			pcap_close(s->p);
			s->p = NULL;
			next_reopen = util_mono_ns() +
			    PCAP_REOPEN_S * 1000000000LL;
		}
		now = util_mono_ns();
		batcher_lane_tick(s->lane, now);
		if (now >= next_second) {
			next_second = now + 1000000000LL;
			src_count_drops(s);
			reasm_expire(s->reasm, util_real_us());
			src_count_reasm(s);
		}
	}
	src_count_drops(s);
	reasm_flush(s->reasm);
	src_count_reasm(s);
	return NULL;
}

/* ---- files ------------------------------------------------------------------ */

static pcap_t *
file_open(const char *path, int *linktype, char *why, size_t whylen)
{
	char	 errbuf[PCAP_ERRBUF_SIZE];
	pcap_t	*p;

	errbuf[0] = '\0';
	p = pcap_open_offline_with_tstamp_precision(path,
	    PCAP_TSTAMP_PRECISION_MICRO, errbuf);
	if (p == NULL) {
		snprintf(why, whylen, "%s", errbuf);
		return NULL;
	}
	*linktype = pcap_datalink(p);
	if (pktdecode_link_supported(*linktype) == -1) {
		snprintf(why, whylen, "link type %d (%s) is not supported",
		    *linktype, pcap_datalink_val_to_name(*linktype) ?
		    pcap_datalink_val_to_name(*linktype) : "?");
		pcap_close(p);
		return NULL;
	}
	return p;
}

/* Reads one file through; `base` is the byte offset of its start. */
static void
read_file(struct pcap_src *s, const char *path, uint64_t base)
{
	struct pcap_input	*pi = s->pi;
	struct pcap_pkthdr	*h;
	const u_char		*data;
	char			 why[PCAP_ERRBUF_SIZE + 128];
	uint64_t		 n = 0;
	long			 off;
	FILE			*fp;
	int			 rc;

	s->name = path;
	if ((s->p = file_open(path, &s->linktype, why, sizeof(why))) == NULL ||
	    set_filter(s->p, pi->file_filter, why, sizeof(why)) == -1) {
		/* checked at the start: the file changed since */
		log_error("pcap: %s: %s; file skipped", path, why);
		atomic_fetch_add(&pi->damaged, 1);
		goto out;
	}
	log_info("pcap: reading %s (%s)", path,
	    pktdecode_link_name(s->linktype));
	fp = pcap_file(s->p);
	while (!stopping(pi)) {
		rc = pcap_next_ex(s->p, &h, &data);
		if (rc == 1) {
			handle_frame(s, h, data);
			if (++n % PCAP_OFFSET_EVERY == 0 && fp != NULL &&
			    (off = ftell(fp)) >= 0)
				atomic_store(&pi->offset, base + (uint64_t)off);
			continue;
		}
		if (rc == PCAP_ERROR_BREAK)
			break;			/* end of file */
		if (rc == 0)
			continue;
		log_error("pcap: %s: cannot read beyond packet %" PRIu64 ": "
		    "%s; the rest of the file is skipped", path, n,
		    pcap_geterr(s->p));
		atomic_fetch_add(&pi->damaged, 1);
		break;
	}
	log_debug("pcap: %s: %" PRIu64 " packets", path, n);
 out:
	if (s->p != NULL)
		pcap_close(s->p);
	s->p = NULL;
}

static void *
file_main(void *arg)
{
	struct pcap_src		*s = arg;
	struct pcap_input	*pi = s->pi;
	uint64_t		 base = 0;
	size_t			 i;

	for (i = 0; i < pi->nfiles && !stopping(pi); i++) {
		atomic_store(&pi->file_idx, i + 1);
		read_file(s, pi->files[i], base);
		base += pi->sizes[i];
		atomic_store(&pi->offset, base);
	}
	/* fragments whose other parts never came */
	reasm_flush(s->reasm);
	src_count_reasm(s);
	batcher_lane_flush(s->lane);
	atomic_store(&pi->done, 1);
	return NULL;
}

/* Every file opens and has a link type we decode: fail before sending. */
static int
check_files(struct pcap_input *pi)
{
	struct stat	 st;
	char		 why[PCAP_ERRBUF_SIZE + 128];
	pcap_t		*p;
	size_t		 i;
	int		 lt;

	for (i = 0; i < pi->nfiles; i++) {
		if ((p = file_open(pi->files[i], &lt, why, sizeof(why))) ==
		    NULL || set_filter(p, pi->file_filter, why,
		    sizeof(why)) == -1) {
			log_error("pcap: %s: %s", pi->files[i], why);
			if (p != NULL)
				pcap_close(p);
			return -1;
		}
		pcap_close(p);
		if (stat(pi->files[i], &st) == 0 && S_ISREG(st.st_mode))
			pi->sizes[i] = (uint64_t)st.st_size;
		pi->total += pi->sizes[i];
	}
	return 0;
}

/* ---- start and stop ------------------------------------------------------------ */

/*
 * The filter for reassembled datagrams.  An expression that cannot apply
 * to raw IP (link-layer terms: "ether host ...", "vlan") lets them all
 * through.
 */
static void
raw_filter(struct pcap_input *pi, const char *expr)
{
	pcap_t	*p;

	if (expr == NULL || expr[0] == '\0')
		return;
	if ((p = pcap_open_dead(DLT_RAW, 40 + REASM_MAX_PACKET)) == NULL)
		return;
	if (pcap_compile(p, &pi->raw_prog, expr, 1,
	    PCAP_NETMASK_UNKNOWN) == 0)
		pi->have_raw_prog = 1;
	else
		log_info("pcap: the filter \"%s\" does not apply to raw IP; "
		    "reassembled datagrams are not filtered: %s", expr,
		    pcap_geterr(p));
	pcap_close(p);
}

static int
start_threads(struct pcap_input *pi, void *(*fn)(void *))
{
	sigset_t	all, old;
	size_t		i;
	int		e, rc = 0;

	/* signals are for the main thread only */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < pi->nsrcs; i++) {
		if ((e = pthread_create(&pi->srcs[i].thread, NULL, fn,
		    &pi->srcs[i])) != 0) {
			log_error("pcap: cannot start a thread: %s",
			    strerror(e));
			rc = -1;
			break;
		}
		pi->srcs[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int
pcap_input_open(struct pcap_input **out, const struct client_config *c,
    const struct pcap_job *job, struct batcher *b)
{
	struct pcap_input	*pi = NULL;
	struct pcap_input_list	 l;
	char			 why[PCAP_ERRBUF_SIZE + 128], err[CONF_ERR_MAX];
	size_t			 i, n;
	int			 is_job = job != NULL && job->in.nfiles > 0;

	*out = NULL;
	memset(&l, 0, sizeof(l));
	if (pcap_input_parse(c->input, &l, err, sizeof(err)) == -1) {
		log_error("%s", err);
		goto fail;
	}
	n = is_job ? 1 : l.nifaces;
	if (n == 0) {
		pcap_input_list_free(&l);
		return 0;
	}
	if ((pi = calloc(1, sizeof(*pi))) == NULL ||
	    (pi->srcs = calloc(n, sizeof(*pi->srcs))) == NULL ||
	    (pi->filter = strdup(c->pcap_filter)) == NULL ||
	    (pi->file_filter = strdup(c->pcap_file_filter)) == NULL)
		goto oom;
	pi->nsrcs = n;
	pi->is_job = is_job;
	pi->drop_malformed = c->drop_malformed;
	pi->promisc = c->pcap_promisc;
	pi->snaplen = (int)c->pcap_snaplen;
	pi->buffer = c->pcap_buffer > INT32_MAX ? INT32_MAX :
	    (int)c->pcap_buffer;
	pi->spool_gate = c->spool_max_bytes / 2;
	for (i = 0; i < n; i++) {
		pi->srcs[i].pi = pi;
		pi->srcs[i].fd = -1;
		if (reasm_new(&pi->srcs[i].reasm, NULL) == -1 ||
		    (pi->srcs[i].scratch = malloc(40 + REASM_MAX_PACKET)) ==
		    NULL || batcher_lane_new(b, &pi->srcs[i].lane) == -1)
			goto oom;
	}
	raw_filter(pi, is_job ? pi->file_filter : pi->filter);

	if (is_job) {
		pi->spool_only = job->spool_only;
		pi->files = job->in.files;
		pi->nfiles = job->in.nfiles;
		if ((pi->sizes = calloc(pi->nfiles, sizeof(*pi->sizes))) ==
		    NULL)
			goto oom;
		if (check_files(pi) == -1)
			goto fail;
		if (start_threads(pi, file_main) == -1)
			goto fail;
	} else {
		/* names live as long as the list: keep it in the srcs */
		for (i = 0; i < n; i++) {
			pi->srcs[i].name = l.ifaces[i];
			l.ifaces[i] = NULL;
			if (src_open_live(&pi->srcs[i], why,
			    sizeof(why)) == -1) {
				log_error("pcap: cannot capture on %s: %s",
				    pi->srcs[i].name, why);
				goto fail;
			}
			log_info("pcap: capturing on %s (%s), filter \"%s\"",
			    pi->srcs[i].name,
			    pktdecode_link_name(pi->srcs[i].linktype),
			    pi->filter);
		}
		if (start_threads(pi, live_main) == -1)
			goto fail;
	}
	pcap_input_list_free(&l);
	*out = pi;
	return 0;
 oom:
	log_error("pcap: out of memory");
 fail:
	pcap_input_list_free(&l);
	pcap_input_stop(pi);
	return -1;
}

void
pcap_input_stop(struct pcap_input *pi)
{
	struct pcap_src	*s;
	size_t		 i;

	if (pi == NULL)
		return;
	atomic_store(&pi->stop, 1);
	for (i = 0; pi->srcs != NULL && i < pi->nsrcs; i++)
		if (pi->srcs[i].started)
			pthread_join(pi->srcs[i].thread, NULL);
	for (i = 0; pi->srcs != NULL && i < pi->nsrcs; i++) {
		s = &pi->srcs[i];
		batcher_lane_free(s->lane);
		reasm_free(s->reasm);
		free(s->scratch);
		if (s->p != NULL)
			pcap_close(s->p);
		if (!pi->is_job)
			free((char *)(uintptr_t)s->name);
	}
	if (pi->have_raw_prog)
		pcap_freecode(&pi->raw_prog);
	free(pi->srcs);
	free(pi->sizes);
	free(pi->filter);
	free(pi->file_filter);
	free(pi);
}

void
pcap_input_describe(const struct pcap_input *pi, char *out, size_t outlen)
{
	size_t	i, off = 0;
	int	k;

	out[0] = '\0';
	if (pi == NULL)
		return;
	if (pi->is_job) {
		snprintf(out, outlen, "%zu pcap file%s", pi->nfiles,
		    pi->nfiles == 1 ? "" : "s");
		return;
	}
	for (i = 0; i < pi->nsrcs && off < outlen; i++) {
		k = snprintf(out + off, outlen - off, "%spcap:%s", i ? " " : "",
		    pi->srcs[i].name);
		if (k < 0)
			break;
		off += (size_t)k;
	}
}

void
pcap_input_progress(const struct pcap_input *pi, struct pcap_file_progress *p)
{
	memset(p, 0, sizeof(*p));
	if (pi == NULL) {
		p->done = 1;
		return;
	}
	p->file = (size_t)atomic_load(&pi->file_idx);
	p->nfiles = pi->nfiles;
	p->offset = atomic_load(&pi->offset);
	p->total = pi->total;
	p->datagrams = atomic_load(&pi->datagrams);
	p->bytes = atomic_load(&pi->bytes);
	p->done = atomic_load(&pi->done);
	p->damaged = atomic_load(&pi->damaged);
	p->spool_full = atomic_load(&pi->spool_full);
}
