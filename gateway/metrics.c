/*
 * metrics.c: counters in Prometheus text format, and a health page.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "srcmap.h"
#include "template.h"
#include "util.h"

#define METRICS_PREFIX		"flowpost_gateway_"
#define METRICS_CONNECTIONS	64
#define METRICS_TIMEOUT		10	/* seconds */
#define METRICS_PATH_MAX	512
#define METRICS_CTYPE		"text/plain; version=0.0.4; charset=utf-8"
#define METRICS_JSON		"application/json"

struct metrics {
	struct MHD_Daemon	*d;
	struct metrics_sources	 src;
	char			 metrics_path[METRICS_PATH_MAX];
	char			 health_path[METRICS_PATH_MAX];
	char			 status_path[METRICS_PATH_MAX];
};

/* Rendering state: the output and whether anything did not fit. */
struct metrics_out {
	struct buf	*b;
	int		 err;
	int		 family;	/* per-client pass in progress */
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

static void
metrics_head(struct metrics_out *o, const char *name, const char *type,
    const char *help)
{
	metrics_printf(o, "# HELP " METRICS_PREFIX "%s %s\n", name, help);
	metrics_printf(o, "# TYPE " METRICS_PREFIX "%s %s\n", name, type);
}

static void
metrics_counter(struct metrics_out *o, const char *name, const char *help,
    uint64_t v)
{
	metrics_head(o, name, "counter", help);
	metrics_printf(o, METRICS_PREFIX "%s %llu\n", name,
	    (unsigned long long)v);
}

/* A label value with '\\', '"' and newlines escaped. */
static void
metrics_label(const char *in, char *out, size_t outlen)
{
	size_t	 j = 0;

	for (size_t i = 0; in[i] != '\0' && j + 3 < outlen; i++) {
		if (in[i] == '\\' || in[i] == '"') {
			out[j++] = '\\';
			out[j++] = in[i];
		} else if (in[i] == '\n') {
			out[j++] = '\\';
			out[j++] = 'n';
		} else
			out[j++] = in[i];
	}
	out[j] = '\0';
}

static void
metrics_limit_cb(const char *reason, uint64_t n, void *arg)
{
	metrics_printf(arg, METRICS_PREFIX "rate_limited_total{reason=\"%s\"} "
	    "%llu\n", reason, (unsigned long long)n);
}

static void
metrics_status_cb(int code, uint64_t n, void *arg)
{
	metrics_printf(arg, METRICS_PREFIX "http_responses_total{code=\"%d\"} "
	    "%llu\n", code, (unsigned long long)n);
}

static const struct {
	const char	*name;
	const char	*type;
	const char	*help;
} metrics_client_families[] = {
	{ "client_batches_total", "counter", "batches forwarded, per client" },
	{ "client_datagrams_total", "counter",
	  "datagrams forwarded, per client" },
	{ "client_bytes_in_total", "counter",
	  "request bytes of authenticated batches, per client" },
	{ "client_bytes_out_total", "counter",
	  "datagram payload bytes forwarded, per client" },
	{ "client_duplicates_total", "counter",
	  "repeated batches acknowledged dup, per client" },
	{ "client_auth_failures_total", "counter",
	  "batches whose tag did not verify, per client" },
	{ "client_last_seen_seconds", "gauge",
	  "unix time of the last authenticated batch, per client" },
};

static void
metrics_client_cb(const char *client, const struct ingest_client_stats *s,
    void *arg)
{
	struct metrics_out	*o = arg;
	char			 label[2 * 64 + 1];
	uint64_t		 v[] = { s->batches, s->datagrams, s->bytes_in,
	    s->bytes_out, s->duplicates, s->auth_failures, s->last_seen };

	metrics_label(client, label, sizeof(label));
	metrics_printf(o, METRICS_PREFIX "%s{client=\"%s\"} %llu\n",
	    metrics_client_families[o->family].name, label,
	    (unsigned long long)v[o->family]);
}

static const struct {
	const char	*name;
	const char	*help;
} metrics_collector_families[] = {
	{ "collector_datagrams_total",
	  "datagrams handed to the kernel, per collector" },
	{ "collector_bytes_total",
	  "payload bytes handed to the kernel, per collector" },
	{ "collector_send_errors_total",
	  "datagrams that could not be sent, per collector" },
};

static void
metrics_collector_cb(const char *name, const struct output_counters *c,
    void *arg)
{
	struct metrics_out	*o = arg;
	char			 label[2 * 300 + 1];
	uint64_t		 v[] = { c->datagrams, c->bytes, c->send_errors };

	metrics_label(name, label, sizeof(label));
	metrics_printf(o, METRICS_PREFIX "%s{collector=\"%s\"} %llu\n",
	    metrics_collector_families[o->family].name, label,
	    (unsigned long long)v[o->family]);
}

/* Time a collector's pacer made senders wait, in seconds. */
static void
metrics_pacing_cb(const char *name, const struct output_counters *c,
    void *arg)
{
	char			 label[2 * 300 + 1];

	metrics_label(name, label, sizeof(label));
	metrics_printf(arg, METRICS_PREFIX "collector_pacing_delay_seconds_total"
	    "{collector=\"%s\"} %llu.%06llu\n", label,
	    (unsigned long long)(c->paced_ns / 1000000000),
	    (unsigned long long)(c->paced_ns % 1000000000 / 1000));
}

/* Resident set size from /proc/self/statm (second field, in pages). */
static int
metrics_rss(uint64_t *bytes)
{
	uint8_t		*data = NULL;
	char		*p, *end;
	size_t		 len;
	uint64_t	 pages;
	long		 page = sysconf(_SC_PAGESIZE);
	int		 rv = -1;

	if (page <= 0 || util_read_file("/proc/self/statm", 4096, &data,
	    &len) == -1)
		return -1;
	/* util_read_file() NUL-terminates. */
	p = strchr((char *)data, ' ');
	if (p != NULL) {
		p++;
		if ((end = strchr(p, ' ')) != NULL)
			*end = '\0';
		if (util_parse_u64(p, &pages) == 0) {
			*bytes = pages * (uint64_t)page;
			rv = 0;
		}
	}
	free(data);
	return rv;
}

int
metrics_render(const struct metrics_sources *src, struct buf *out)
{
	struct metrics_out	 o = { out, 0, 0 };
	struct ingest_totals	 t;
	uint64_t		 rss;

	buf_reset(out);
	ingest_get_totals(src->ingest, &t);

	metrics_head(&o, "http_responses_total", "counter",
	    "HTTP responses on the batch endpoint, by status code");
	if (src->http != NULL)
		http_foreach_status(src->http, metrics_status_cb, &o);
	if (src->http != NULL) {
		metrics_head(&o, "rate_limited_total", "counter",
		    "batch requests answered 429, by reason");
		http_foreach_limit(src->http, metrics_limit_cb, &o);
	}
	metrics_counter(&o, "batches_total", "batches forwarded (ack new)",
	    t.batches);
	metrics_counter(&o, "datagrams_total", "datagrams forwarded",
	    t.datagrams);
	metrics_counter(&o, "bytes_in_total",
	    "request bytes of authenticated batches", t.bytes_in);
	metrics_counter(&o, "bytes_out_total",
	    "datagram payload bytes forwarded (once, not per collector)",
	    t.bytes_out);
	metrics_counter(&o, "duplicates_total",
	    "repeated batches acknowledged dup and not forwarded",
	    t.duplicates);
	metrics_counter(&o, "auth_failures_total",
	    "batches whose authentication tag did not verify",
	    t.auth_failures);
	metrics_counter(&o, "unknown_clients_total",
	    "batches from client ids not in the keys file",
	    t.unknown_clients);
	metrics_counter(&o, "malformed_datagrams_total",
	    "NetFlow/IPFIX datagrams with inconsistent lengths in valid batches",
	    t.malformed_datagrams);
	metrics_head(&o, "rejected_batches_total", "counter",
	    "batches refused, by reason");
	for (int i = 0; i < INGEST_R_COUNT; i++)
		metrics_printf(&o, METRICS_PREFIX "rejected_batches_total"
		    "{reason=\"%s\"} %llu\n", ingest_reason_name(i),
		    (unsigned long long)t.rejected[i]);

	for (size_t f = 0; f < sizeof(metrics_client_families) /
	    sizeof(metrics_client_families[0]); f++) {
		metrics_head(&o, metrics_client_families[f].name,
		    metrics_client_families[f].type,
		    metrics_client_families[f].help);
		o.family = (int)f;
		ingest_foreach_client(src->ingest, metrics_client_cb, &o);
	}
	if (src->output != NULL && src->output->foreach != NULL) {
		for (size_t f = 0; f < sizeof(metrics_collector_families) /
		    sizeof(metrics_collector_families[0]); f++) {
			metrics_head(&o, metrics_collector_families[f].name,
			    "counter", metrics_collector_families[f].help);
			o.family = (int)f;
			src->output->foreach(src->output_ctx,
			    metrics_collector_cb, &o);
		}
		metrics_head(&o, "collector_pacing_delay_seconds_total",
		    "counter", "time senders waited for the collector's "
		    "pacing (collector_max_pps, collector_max_bps)");
		src->output->foreach(src->output_ctx, metrics_pacing_cb, &o);
	}

	if (src->kits != NULL && !o.err &&
	    kits_metrics(src->kits, util_real_us(), out) == -1)
		o.err = 1;
	if (src->templates != NULL && !o.err &&
	    template_metrics(src->templates, out) == -1)
		o.err = 1;
	if (src->srcmap != NULL && !o.err &&
	    srcmap_metrics(src->srcmap, out) == -1)
		o.err = 1;

	metrics_printf(&o, "# HELP process_start_time_seconds Start time of "
	    "the process since unix epoch in seconds.\n"
	    "# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %llu\n",
	    (unsigned long long)src->start_time);
	if (metrics_rss(&rss) == 0)
		metrics_printf(&o, "# HELP process_resident_memory_bytes "
		    "Resident memory size in bytes.\n"
		    "# TYPE process_resident_memory_bytes gauge\n"
		    "process_resident_memory_bytes %llu\n",
		    (unsigned long long)rss);
	return o.err ? -1 : 0;
}

/* GET <prefix>/status: every kit's last report (kits.h) as JSON. */
static enum MHD_Result
metrics_status(struct MHD_Connection *conn, struct metrics *m)
{
	static struct log_limit	 lim;
	static const char	 none[] = "{\"clients\":[]}\n";
	struct buf		 b;
	enum MHD_Result		 ret;

	if (m->src.kits == NULL)
		return httpd_reply(conn, 200, METRICS_JSON, none,
		    sizeof(none) - 1, NULL);
	if (buf_init(&b, 0, METRICS_BODY_MAX) == -1)
		return httpd_text(conn, 500, "out of memory\n", NULL);
	if (kits_status_json(m->src.kits, util_real_us(), &b) == -1) {
		log_limited(&lim, 60, LOGL_ERROR, "metrics: status page over "
		    "%u bytes or out of memory", METRICS_BODY_MAX);
		ret = httpd_text(conn, 500, "status too large\n", NULL);
	} else
		ret = httpd_reply(conn, 200, METRICS_JSON, b.data, b.len,
		    NULL);
	buf_free(&b);
	return ret;
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
	int			 is_metrics, is_status;

	(void)version;
	(void)upload_data;
	/* Answered on the first call: these requests carry no body. */
	if (*con_cls != NULL) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = m;
	is_metrics = strcmp(url, m->metrics_path) == 0;
	is_status = strcmp(url, m->status_path) == 0;
	if (!is_metrics && !is_status && strcmp(url, m->health_path) != 0)
		return httpd_text(conn, 404, "not found\n", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return httpd_text(conn, 405, "method not allowed\n",
		    "GET, HEAD");
	if (is_status)
		return metrics_status(conn, m);
	if (!is_metrics)
		return httpd_text(conn, 200, "ok\n", NULL);

	if (buf_init(&b, 0, METRICS_BODY_MAX) == -1)
		return httpd_text(conn, 500, "out of memory\n", NULL);
	if (metrics_render(&m->src, &b) == -1) {
		log_limited(&lim, 60, LOGL_ERROR, "metrics: exposition over "
		    "%u bytes or out of memory", METRICS_BODY_MAX);
		ret = httpd_text(conn, 500, "metrics too large\n", NULL);
	} else
		ret = httpd_reply(conn, 200, METRICS_CTYPE, b.data, b.len,
		    NULL);
	buf_free(&b);
	return ret;
}

struct metrics *
metrics_start(int fd, const char *path_prefix,
    const struct metrics_sources *src, char *err, size_t errlen)
{
	struct metrics	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		util_snprintf(err, errlen, "metrics: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	m->src = *src;
	if (util_snprintf(m->metrics_path, sizeof(m->metrics_path),
	    "%s/metrics", path_prefix) == -1 ||
	    util_snprintf(m->health_path, sizeof(m->health_path),
	    "%s/healthz", path_prefix) == -1 ||
	    util_snprintf(m->status_path, sizeof(m->status_path),
	    "%s/status", path_prefix) == -1) {
		util_snprintf(err, errlen, "metrics: path_prefix too long");
		goto fail;
	}
	m->d = MHD_start_daemon(http_mhd_flags(), 0, NULL, NULL,
	    metrics_handler, m,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_TIMEOUT,
	    MHD_OPTION_END);
	if (m->d == NULL) {
		util_snprintf(err, errlen, "metrics: libmicrohttpd did not "
		    "start");
		goto fail;
	}
	return m;
fail:
	close(fd);
	free(m);
	return NULL;
}

void
metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}
