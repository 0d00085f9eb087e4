/*
 * metrics.c: the client's counters and gauges in Prometheus text format.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <microhttpd.h>

#include "httpd.h"
#include "log.h"
#include "util.h"

#include "metrics.h"
#include "route.h"
#include "stats.h"

#define METRICS_PREFIX		"flowpost_client_"
#define METRICS_CONNECTIONS	16
#define METRICS_TIMEOUT_S	10
#define METRICS_BACKLOG		16
#define METRICS_CTYPE		"text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct MHD_Daemon	*d;
	uint64_t		 start_unix;
	char			 name[64];	/* bound address, for logs */
};

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
};

/*
 * Every series, in the order of the stats file.  Counters carry the
 * stats name plus "_total"; gauges with a unit name it (seconds), as
 * Prometheus expects.  docs/OPERATIONS.md lists the same table.
 */
static const struct {
	const char		*name;
	enum metrics_type	 type;
	_Atomic uint64_t	*v;
	const char		*help;
} metrics_series[] = {
	{ "received_datagrams_total", METRICS_COUNTER,
	    &stats_now.received_datagrams,
	    "Datagrams received on the UDP listeners." },
	{ "received_bytes_total", METRICS_COUNTER,
	    &stats_now.received_bytes,
	    "Payload bytes received on the UDP listeners." },
	{ "dropped_invalid_total", METRICS_COUNTER,
	    &stats_now.dropped_invalid,
	    "Datagrams dropped because they are not NetFlow v5/v9 or IPFIX." },
	{ "malformed_total", METRICS_COUNTER, &stats_now.malformed,
	    "NetFlow/IPFIX datagrams whose length fields disagree." },
	{ "dropped_malformed_total", METRICS_COUNTER,
	    &stats_now.dropped_malformed,
	    "Malformed datagrams dropped (drop_malformed = yes)." },
	{ "dropped_truncated_total", METRICS_COUNTER,
	    &stats_now.dropped_truncated,
	    "Datagrams dropped because they were too large to forward." },
	{ "dropped_backpressure_total", METRICS_COUNTER,
	    &stats_now.dropped_backpressure,
	    "Datagrams dropped because every batch buffer waited for the "
	    "disk." },
	{ "batches_sealed_total", METRICS_COUNTER,
	    &stats_now.batches_sealed, "Batches sealed." },
	{ "batches_sealed_busy_total", METRICS_COUNTER,
	    &stats_now.batches_sealed_busy,
	    "Batches compressed at zlib_level_busy because others were in "
	    "hand." },
	{ "datagrams_sealed_total", METRICS_COUNTER,
	    &stats_now.datagrams_sealed, "Datagrams in sealed batches." },
	{ "spool_dropped_batches_total", METRICS_COUNTER,
	    &stats_now.spool_dropped_batches,
	    "Batches lost to spool_full, spool_max_age or write errors." },
	{ "spool_dropped_datagrams_total", METRICS_COUNTER,
	    &stats_now.spool_dropped_datagrams,
	    "Datagrams in batches lost to spool limits or errors." },
	{ "spool_write_errors_total", METRICS_COUNTER,
	    &stats_now.spool_write_errors,
	    "Failed writes to the spool directory." },
	{ "quarantined_total", METRICS_COUNTER, &stats_now.quarantined,
	    "Batches moved to quarantine/ (damaged, or refused for good)." },
	{ "posts_total", METRICS_COUNTER, &stats_now.posts,
	    "Batch POSTs to the gateway." },
	{ "posts_failed_total", METRICS_COUNTER, &stats_now.posts_failed,
	    "Batch POSTs that did not deliver their batch." },
	{ "acked_batches_total", METRICS_COUNTER, &stats_now.acked_batches,
	    "Batches acknowledged by the gateway and removed from the "
	    "spool." },
	{ "acked_datagrams_total", METRICS_COUNTER,
	    &stats_now.acked_datagrams,
	    "Datagrams in acknowledged batches." },
	{ "acked_dup_total", METRICS_COUNTER, &stats_now.acked_dup,
	    "Acknowledgements saying the gateway had the batch already." },
	{ "bad_ack_total", METRICS_COUNTER, &stats_now.bad_ack,
	    "200 answers without a valid acknowledgement (captive portal or "
	    "proxy page)." },
	{ "retries_total", METRICS_COUNTER, &stats_now.retries,
	    "Back-offs started after failed POSTs." },
	{ "heartbeats_total", METRICS_COUNTER, &stats_now.heartbeats,
	    "Heartbeat batches (health only, no datagrams) sealed." },
	{ "splits_total", METRICS_COUNTER, &stats_now.splits,
	    "Batches cut in two after a 413 from the gateway or a proxy." },
	{ "unsplittable_total", METRICS_COUNTER, &stats_now.unsplittable,
	    "Batches of one datagram still refused with 413." },
	{ "renumbered_total", METRICS_COUNTER, &stats_now.renumbered,
	    "Batches sealed again under a fresh sequence number." },
	{ "batch_size_reduced_total", METRICS_COUNTER,
	    &stats_now.batch_size_reduced,
	    "Times the batch size in effect was lowered after a 413." },
	{ "route_changes_total", METRICS_COUNTER, &stats_now.route_changes,
	    "Changes of the way out to the gateway (proxy or direct)." },
	{ "spool_batches", METRICS_GAUGE, &stats_now.spool_batches,
	    "Sealed batches waiting in the spool." },
	{ "spool_bytes", METRICS_GAUGE, &stats_now.spool_bytes,
	    "Bytes of sealed batches waiting in the spool." },
	{ "spool_oldest_age_seconds", METRICS_GAUGE,
	    &stats_now.spool_oldest_age_s,
	    "Age of the oldest spooled batch; 0 when the spool is empty." },
	{ "backoff_seconds", METRICS_GAUGE, &stats_now.backoff_s,
	    "Current back-off before the next POST; 0 when not backing off." },
	{ "last_success_timestamp_seconds", METRICS_GAUGE,
	    &stats_now.last_success_unix,
	    "Unix time of the last acknowledged batch; 0 if none since the "
	    "start." },
	{ "retries_since_success", METRICS_GAUGE,
	    &stats_now.retries_since_success,
	    "Failed POSTs in a row; 0 after a delivery." },
	{ "route_index", METRICS_GAUGE, &stats_now.route_index,
	    "Way out in use, as the index the stats file's route line names." },
	{ "batch_max_bytes", METRICS_GAUGE, &stats_now.batch_max_bytes,
	    "Batch size in effect for new batches (lowered after a 413)." },
	{ "kernel_drops_total", METRICS_COUNTER, &stats_now.kernel_drops,
	    "Datagrams the kernel dropped on the UDP listeners (receive "
	    "buffer full)." },
	{ "upstream_exporters", METRICS_GAUGE, &stats_now.upstream_exporters,
	    "Exporter streams whose sequence numbers are tracked." },
	{ "upstream_gaps_total", METRICS_COUNTER, &stats_now.upstream_gaps,
	    "Gaps in exporters' sequence numbers: loss before the client." },
	{ "upstream_lost_records", METRICS_GAUGE,
	    &stats_now.upstream_lost_records,
	    "Flow records lost between exporters and client (v5, IPFIX), net "
	    "of late arrivals, so it can go down." },
	{ "upstream_lost_packets", METRICS_GAUGE,
	    &stats_now.upstream_lost_packets,
	    "Export packets lost between exporters and client (v9), net of "
	    "late arrivals, so it can go down." },
	{ "upstream_reordered_total", METRICS_COUNTER,
	    &stats_now.upstream_reordered,
	    "Datagrams that arrived behind their sequence number (late or "
	    "repeated)." },
	{ "upstream_resets_total", METRICS_COUNTER, &stats_now.upstream_resets,
	    "Exporter restarts seen as sequence numbers starting over." },
	{ "upstream_uncounted_total", METRICS_COUNTER,
	    &stats_now.upstream_uncounted,
	    "IPFIX messages whose records could not be counted (no "
	    "template yet)." },
	{ "pcap_received_total", METRICS_COUNTER, &stats_now.pcap_received,
	    "Frames seen by pcap input (live capture and files)." },
	{ "pcap_kernel_drops_total", METRICS_COUNTER,
	    &stats_now.pcap_kernel_drops,
	    "Packets the kernel dropped before the capture read them." },
	{ "pcap_if_drops_total", METRICS_COUNTER, &stats_now.pcap_if_drops,
	    "Packets the interface dropped (as libpcap reports it)." },
	{ "pcap_truncated_total", METRICS_COUNTER, &stats_now.pcap_truncated,
	    "Captured packets cut short by the snapshot length." },
	{ "pcap_fragments_total", METRICS_COUNTER, &stats_now.pcap_fragments,
	    "IP fragments seen on pcap input." },
	{ "pcap_reassembled_total", METRICS_COUNTER,
	    &stats_now.pcap_reassembled,
	    "Datagrams rebuilt from IP fragments." },
	{ "pcap_reasm_timeouts_total", METRICS_COUNTER,
	    &stats_now.pcap_reasm_timeouts,
	    "Fragment sets given up because parts never came." },
	{ "pcap_reasm_dropped_total", METRICS_COUNTER,
	    &stats_now.pcap_reasm_dropped,
	    "Fragments dropped for lack of reassembly room or as invalid." },
	{ "pcap_non_udp_total", METRICS_COUNTER, &stats_now.pcap_non_udp,
	    "Captured packets that are not UDP." },
	{ "pcap_bad_headers_total", METRICS_COUNTER,
	    &stats_now.pcap_bad_headers,
	    "Captured packets with unreadable link, IP or UDP headers." },
};

#define METRICS_NSERIES	(sizeof(metrics_series) / sizeof(metrics_series[0]))

/* Rendering state: the output and whether anything did not fit. */
struct metrics_out {
	struct buf	*b;
	int		 err;
};

static void	metrics_printf(struct metrics_out *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list	 ap;

	if (o->err)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(o->b, fmt, ap) == -1)
		o->err = 1;
	va_end(ap);
}

int
metrics_render(struct buf *out, uint64_t start_unix)
{
	struct metrics_out	 o = { out, 0 };
	size_t			 i;

	buf_reset(out);
	for (i = 0; i < METRICS_NSERIES; i++) {
		metrics_printf(&o, "# HELP " METRICS_PREFIX "%s %s\n"
		    "# TYPE " METRICS_PREFIX "%s %s\n"
		    METRICS_PREFIX "%s %llu\n",
		    metrics_series[i].name, metrics_series[i].help,
		    metrics_series[i].name,
		    metrics_series[i].type == METRICS_COUNTER ? "counter" :
		    "gauge", metrics_series[i].name,
		    (unsigned long long)atomic_load_explicit(
		    metrics_series[i].v, memory_order_relaxed));
	}
	metrics_printf(&o, "# HELP " METRICS_PREFIX "route_info Way out to "
	    "the gateway in use.\n"
	    "# TYPE " METRICS_PREFIX "route_info gauge\n"
	    METRICS_PREFIX "route_info{way=\"%s\"} 1\n",
	    route_way_name((enum route_way)STATS_GET(route_index)));
	metrics_printf(&o, "# HELP " METRICS_PREFIX "info Version of the "
	    "running client.\n"
	    "# TYPE " METRICS_PREFIX "info gauge\n"
	    METRICS_PREFIX "info{version=\"%s\"} 1\n", FLOWPOST_VERSION);
	metrics_printf(&o, "# HELP process_start_time_seconds Start time of "
	    "the process since unix epoch in seconds.\n"
	    "# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %llu\n",
	    (unsigned long long)start_unix);
	return o.err ? -1 : 0;
}

static enum MHD_Result
metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static struct log_limit	 lim;
	struct metrics		*m = cls;
	struct buf		 b;
	enum MHD_Result		 ret;

	(void)version;
	(void)upload_data;
	/* Answered on the first call: these requests carry no body. */
	if (*con_cls != NULL) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = m;
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0)
		return httpd_text(conn, 404, "not found\n", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return httpd_text(conn, 405, "method not allowed\n",
		    "GET, HEAD");
	if (strcmp(url, "/healthz") == 0)
		return httpd_text(conn, 200, "ok\n", NULL);

	if (buf_init(&b, 0, METRICS_BODY_MAX) == -1)
		return httpd_text(conn, 500, "out of memory\n", NULL);
	if (metrics_render(&b, m->start_unix) == -1) {
		log_limited(&lim, 60, LOGL_ERROR, "metrics: exposition over "
		    "%u bytes or out of memory", METRICS_BODY_MAX);
		ret = httpd_text(conn, 500, "metrics too large\n", NULL);
	} else
		ret = httpd_reply(conn, 200, METRICS_CTYPE, b.data, b.len,
		    NULL);
	buf_free(&b);
	return ret;
}

static void
metrics_mhd_logger(void *cls, const char *fmt, va_list ap)
{
	static struct log_limit	 lim;

	(void)cls;
	httpd_log(&lim, 60, "metrics", fmt, ap);
}

/* A listening TCP socket on `listen`; -1 (logged) on failure. */
static int
metrics_socket(const char *listen_on, char *bound, size_t boundlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 fd, one = 1;

	if (util_parse_hostport(listen_on, 0, &ss, &sslen) == -1) {
		log_error("metrics: metrics_listen \"%s\" is not host:port or "
		    "[v6addr]:port", listen_on);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_error("metrics: socket for %s: %s", listen_on,
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, METRICS_BACKLOG) == -1) {
		log_error("metrics: cannot listen on %s: %s", listen_on,
		    strerror(errno));
		close(fd);
		return -1;
	}
	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		util_format_sockaddr((struct sockaddr *)&ss, bound, boundlen);
	else
		snprintf(bound, boundlen, "%s", listen_on);
	return fd;
}

int
metrics_start(struct metrics **out, const char *listen_on)
{
	struct metrics	*m = NULL;
	sigset_t	 all, old;
	int		 fd = -1, rc = -1;

	*out = NULL;
	if (listen_on == NULL || listen_on[0] == '\0')
		return 0;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		log_error("metrics: out of memory");
		goto out;
	}
	m->start_unix = util_real_us() / 1000000;
	if ((fd = metrics_socket(listen_on, m->name, sizeof(m->name))) == -1)
		goto out;

	/*
	 * The daemon's thread inherits the signal mask: it must leave
	 * SIGTERM, SIGHUP and SIGUSR1 to the main thread.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    metrics_handler, m,
	    MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_TIMEOUT_S,
	    MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (m->d == NULL) {
		log_error("metrics: libmicrohttpd did not start on %s",
		    m->name);
		goto out;
	}
	fd = -1;	/* the daemon owns it now */
	log_info("metrics: serving http://%s/metrics", m->name);
	*out = m;
	m = NULL;
	rc = 0;
 out:
	if (fd != -1)
		close(fd);
	free(m);
	return rc;
}

void
metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}
