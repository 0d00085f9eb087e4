/*
 * config.c: the gateway's key table and the checks a table cannot express.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"
#include "log.h"
#include "pacer.h"
#include "ratelimit.h"
#include "util.h"

#define KEY(field)	offsetof(struct gateway_config, field)

static const char *const config_log_levels[] = {
	"error", "warn", "info", "debug", NULL
};

const struct conf_key config_keys[] = {
	{ "listen", CONF_STRING, KEY(listen), 0, 0, "127.0.0.1:8750", NULL,
	  "address for the batch endpoint: host:port or [v6addr]:port" },
	{ "path_prefix", CONF_STRING, KEY(path_prefix), 0, 0, "", NULL,
	  "URL path the endpoints are served under: empty or /name" },
	{ "collector", CONF_STRING, KEY(collector), 0, 0, NULL, NULL,
	  "collectors to re-emit datagrams to: host:port, comma separated, "
	  "each optionally followed by pps=N and bps=N (required)" },
	{ "state_dir", CONF_STRING, KEY(state_dir), 0, 0,
	  "/var/lib/flowpost-gateway", NULL,
	  "directory for the per-client duplicate windows" },
	{ "keys_file", CONF_STRING, KEY(keys_file), 0, 0, NULL, NULL,
	  "file of '<client_id> <64 hex digits>' lines (required)" },
	{ "metrics_listen", CONF_STRING, KEY(metrics_listen), 0, 0,
	  "127.0.0.1:8751", NULL,
	  "address for /metrics and /healthz, or none" },
	{ "template_refresh", CONF_DURATION, KEY(template_refresh), 0,
	  86400, "0",
	  NULL, "cache v9/IPFIX templates and send them ahead of a stream's "
	  "data after a start and then every this long; 0 = off" },
	{ "collector_max_pps", CONF_UINT, KEY(collector_max_pps), 0,
	  PACER_RATE_MAX, "0", NULL,
	  "datagrams per second to each collector (pps= after a collector "
	  "overrides); 0 = unpaced" },
	{ "collector_max_bps", CONF_UINT, KEY(collector_max_bps), 0,
	  PACER_RATE_MAX, "0", NULL,
	  "payload bits per second to each collector (bps= after a "
	  "collector overrides); 0 = unpaced" },
	{ "preserve_source", CONF_BOOL, KEY(preserve_source), 0, 0, "no",
	  NULL, "send each datagram with its exporter's address and port as "
	  "source (IPv4: needs CAP_NET_RAW at start)" },
	{ "source_port_map", CONF_BOOL, KEY(source_port_map), 0, 0, "no",
	  NULL, "send each exporter's datagrams from its own UDP port of the "
	  "gateway" },
	{ "max_body_bytes", CONF_SIZE, KEY(max_body_bytes), 1024,
	  1024ULL * 1024 * 1024, "16M", NULL,
	  "largest request body accepted (413 above)" },
	{ "max_raw_bytes", CONF_SIZE, KEY(max_raw_bytes), 1024,
	  1024ULL * 1024 * 1024, "64M", NULL,
	  "largest decompressed batch content accepted (413 above)" },
	{ "max_batch_age", CONF_DURATION, KEY(max_batch_age), 0,
	  3650 * 86400, "30d",
	  NULL, "refuse batches sealed longer ago than this (410); 0 = off" },
	{ "max_clock_skew", CONF_DURATION, KEY(max_clock_skew), 0,
	  365 * 86400, "1d",
	  NULL, "refuse batches sealed further in the future than this (400)" },
	{ "dedup_window", CONF_UINT, KEY(dedup_window), 64, 1048576, "4096",
	  NULL, "per-client sequence numbers remembered below the newest" },
	{ "threads", CONF_UINT, KEY(threads), 1, 256, "4", NULL,
	  "HTTP worker threads" },
	{ "connection_limit", CONF_UINT, KEY(connection_limit), 1, 65536,
	  "1024", NULL, "most concurrent HTTP connections" },
	{ "connection_timeout", CONF_DURATION, KEY(connection_timeout), 1,
	  86400, "30s", NULL,
	  "close a connection idle (or a body stalled) this long" },
	{ "per_ip_connection_limit", CONF_UINT, KEY(per_ip_connection_limit),
	  0, 65536, "64", NULL,
	  "most concurrent connections from one address; 0 = off (behind "
	  "a reverse proxy)" },
	{ "rate_limit_global", CONF_UINT, KEY(rate_limit_global), 0,
	  RATELIMIT_RATE_MAX, "500", NULL,
	  "batch POSTs per second from everybody together (429 above); "
	  "0 = off" },
	{ "rate_limit_client", CONF_UINT, KEY(rate_limit_client), 0,
	  RATELIMIT_RATE_MAX, "100", NULL,
	  "batches per second per client, counting those forwarded (429 "
	  "above); 0 = off" },
	{ "rate_limit_auth_failures", CONF_UINT, KEY(rate_limit_auth_failures),
	  0, RATELIMIT_RATE_MAX, "5", NULL,
	  "failed authentications per second per client id, answered 401; "
	  "429 above; 0 = off" },
	{ "tls_cert", CONF_STRING, KEY(tls_cert), 0, 0, "", NULL,
	  "PEM certificate (chain) for HTTPS on listen; empty = plain HTTP" },
	{ "tls_key", CONF_STRING, KEY(tls_key), 0, 0, "", NULL,
	  "PEM private key of tls_cert (read before the privilege drop)" },
	{ "stats_interval", CONF_DURATION, KEY(stats_interval), 0, 86400,
	  "60s",
	  NULL, "period of the summary log line; 0 = off" },
	{ "warn_lag", CONF_DURATION, KEY(warn_lag), 0, 365 * 86400, "1h",
	  NULL, "warn when a kit's oldest spooled batch, or a batch's time "
	  "from sealing to forwarding, is older than this; 0 = off" },
	{ "warn_drops", CONF_UINT, KEY(warn_drops), 0, UINT64_MAX, "1", NULL,
	  "warn when a kit reports this many more datagrams dropped (spool "
	  "limits, invalid input); 0 = off" },
	{ "log_level", CONF_ENUM, KEY(log_level), 0, 0, "info",
	  config_log_levels, "least severe messages logged" },
	{ "syslog", CONF_BOOL, KEY(syslog), 0, 0, "no", NULL,
	  "log to syslog instead of stderr" },
	{ "user", CONF_STRING, KEY(user), 0, 0, "", NULL,
	  "when started as root, switch to this user after binding" },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

int
config_tls(const struct gateway_config *cfg)
{
	return cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0' &&
	    cfg->tls_key != NULL && cfg->tls_key[0] != '\0';
}

/* One PEM file into a NUL-terminated string holding a `what` block. */
static int
config_pem(const char *key, const char *path, const char *what, char **out,
    char *err, size_t errlen)
{
	uint8_t	*data = NULL;
	size_t	 len = 0;
	char	 end[32];

	*out = NULL;
	/* A PEM block's label ends its BEGIN line: "...CERTIFICATE-----". */
	(void)util_snprintf(end, sizeof(end), "%s-----", what);
	errno = 0;
	if (util_read_file(path, CONFIG_PEM_MAX, &data, &len) == -1) {
		util_snprintf(err, errlen, "%s %s: %s", key, path, errno != 0 ?
		    strerror(errno) : "cannot read (larger than 1 MiB?)");
		return -1;
	}
	/* util_read_file() NUL-terminates; a NUL inside is not PEM. */
	if (memchr(data, '\0', len) != NULL ||
	    strstr((char *)data, "-----BEGIN ") == NULL ||
	    strstr((char *)data, end) == NULL) {
		util_snprintf(err, errlen, "%s %s: not a PEM file with a %s "
		    "block", key, path, what);
		free(data);
		return -1;
	}
	*out = (char *)data;
	return 0;
}

int
config_tls_load(const struct gateway_config *cfg, char **cert, char **key,
    char *err, size_t errlen)
{
	struct stat	 st;

	*cert = *key = NULL;
	if (config_pem("tls_cert", cfg->tls_cert, "CERTIFICATE", cert,
	    err, errlen) == -1)
		return -1;
	if (config_pem("tls_key", cfg->tls_key, "PRIVATE KEY", key, err,
	    errlen) == -1) {
		free(*cert);
		*cert = NULL;
		return -1;
	}
	if (stat(cfg->tls_key, &st) == 0 && (st.st_mode & S_IROTH))
		log_warn("tls_key: %s is readable by all users; chmod o-r it",
		    cfg->tls_key);
	return 0;
}

int
config_metrics_disabled(const struct gateway_config *cfg)
{
	return cfg->metrics_listen != NULL &&
	    strcmp(cfg->metrics_listen, "none") == 0;
}

/* Unreserved URI characters and '/', no empty or dot segments. */
static int
config_check_prefix(const char *p, char *err, size_t errlen)
{
	size_t	 n = strlen(p);

	if (n == 0)
		return 0;
	if (p[0] != '/' || p[n - 1] == '/') {
		util_snprintf(err, errlen, "path_prefix \"%s\": must be empty "
		    "or start with '/' and not end with '/'", p);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || c == '/')) {
			util_snprintf(err, errlen, "path_prefix \"%s\": "
			    "character '%c' not allowed (use letters, digits, "
			    "'-', '.', '_', '~' and '/')", p,
			    c >= 0x20 && c < 0x7f ? c : '?');
			return -1;
		}
	}
	if (strstr(p, "//") != NULL || strstr(p, "/./") != NULL ||
	    strstr(p, "/../") != NULL ||
	    (n >= 2 && strcmp(p + n - 2, "/.") == 0) ||
	    (n >= 3 && strcmp(p + n - 3, "/..") == 0)) {
		util_snprintf(err, errlen, "path_prefix \"%s\": empty, '.' "
		    "or '..' path segment", p);
		return -1;
	}
	return 0;
}

int
config_listen_addr(const char *text, const char *key, struct config_addr *out,
    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0') {
		util_snprintf(err, errlen, "%s: no address given", key);
		return -1;
	}
	if (util_parse_hostport(text, 0, &out->ss, &out->sslen) == -1) {
		util_snprintf(err, errlen, "%s \"%s\": not a usable host:port "
		    "or [v6addr]:port", key, text);
		return -1;
	}
	if (out->ss.ss_family != AF_INET && out->ss.ss_family != AF_INET6) {
		util_snprintf(err, errlen, "%s \"%s\": not an IPv4 or IPv6 "
		    "address", key, text);
		return -1;
	}
	if (util_snprintf(out->name, sizeof(out->name), "%s", text) == -1) {
		util_snprintf(err, errlen, "%s: address too long", key);
		return -1;
	}
	return 0;
}

/* A collector: "host:port" with a port of 1..65535 (syntax only). */
struct config_errbuf {
	char	*err;
	size_t	 errlen;
};

/*
 * "pps=N" or "bps=N" after a collector sets its pacing: 1 with *pps
 * telling which, 0 if `item` is no such option, -1 if its value is bad.
 */
static int
config_rate_option(const char *item, int *pps, uint64_t *v, char *err,
    size_t errlen)
{
	if (strncmp(item, "pps=", 4) != 0 && strncmp(item, "bps=", 4) != 0)
		return 0;
	*pps = item[0] == 'p';
	if (util_parse_u64(item + 4, v) == -1 || *v > PACER_RATE_MAX) {
		util_snprintf(err, errlen, "collector option \"%s\": expected "
		    "%s=N with N of 0..%" PRIu64 " (0 = unpaced)", item,
		    *pps ? "pps" : "bps", PACER_RATE_MAX);
		return -1;
	}
	return 1;
}

static int
config_check_collector(const char *item, void *arg)
{
	struct config_errbuf	*eb = arg;
	char			*err = eb->err;
	size_t			 errlen = eb->errlen;
	const char		*colon;
	uint64_t	 port;
	int		 pps;

	switch (config_rate_option(item, &pps, &port, err, errlen)) {
	case -1:
		return -1;
	case 1:
		return 0;
	}

	colon = strrchr(item, ':');
	if (colon == NULL || colon == item || colon[1] == '\0' ||
	    util_parse_u64(colon + 1, &port) == -1 || port == 0 ||
	    port > 65535 || strlen(item) >= CONFIG_ADDR_NAME_MAX) {
		util_snprintf(err, errlen, "collector \"%s\": expected "
		    "host:port or [v6addr]:port with a port of 1..65535", item);
		return -1;
	}
	if (item[0] == '[' && colon[-1] != ']') {
		util_snprintf(err, errlen, "collector \"%s\": IPv6 address "
		    "must be written [addr]:port", item);
		return -1;
	}
	return 0;
}

int
config_validate(const struct gateway_config *cfg, char *err, size_t errlen)
{
	struct config_addr	 a;
	struct config_errbuf	 eb = { err, errlen };

	if (config_listen_addr(cfg->listen, "listen", &a, err, errlen) == -1)
		return -1;
	if (config_check_prefix(cfg->path_prefix, err, errlen) == -1)
		return -1;
	if (cfg->collector == NULL || cfg->collector[0] == '\0') {
		util_snprintf(err, errlen, "collector: at least one "
		    "collector (host:port) is required");
		return -1;
	}
	err[0] = '\0';
	if (util_split_list(cfg->collector, config_check_collector,
	    &eb) == -1) {
		if (err[0] == '\0')
			util_snprintf(err, errlen, "collector: bad list \"%s\"",
			    cfg->collector);
		return -1;
	}
	if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
		util_snprintf(err, errlen, "state_dir: must not be empty");
		return -1;
	}
	if (cfg->keys_file == NULL || cfg->keys_file[0] == '\0') {
		util_snprintf(err, errlen, "keys_file: a keys file is "
		    "required (one '<client_id> <64 hex digits>' per line)");
		return -1;
	}
	if (!config_metrics_disabled(cfg) &&
	    config_listen_addr(cfg->metrics_listen, "metrics_listen", &a, err,
	    errlen) == -1)
		return -1;
	if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
		util_snprintf(err, errlen, "%s is set without %s: set both, "
		    "or neither", cfg->tls_cert[0] == '\0' ? "tls_key" :
		    "tls_cert", cfg->tls_cert[0] == '\0' ? "tls_cert" :
		    "tls_key");
		return -1;
	}
	if (cfg->user != NULL && cfg->user[0] != '\0' &&
	    getpwnam(cfg->user) == NULL) {
		util_snprintf(err, errlen, "user \"%s\": no such user",
		    cfg->user);
		return -1;
	}
	return 0;
}

struct config_resolve {
	struct config_addr	*list;
	size_t			 n;
	char			*err;
	size_t			 errlen;
};

static int
config_resolve_one(const char *item, void *arg)
{
	struct config_resolve	*r = arg;
	struct config_addr	*a;
	uint64_t		 v;
	int			 pps;

	switch (config_rate_option(item, &pps, &v, r->err, r->errlen)) {
	case -1:
		return -1;
	case 1:
		if (r->n == 0) {
			util_snprintf(r->err, r->errlen, "collector option "
			    "\"%s\" before any collector", item);
			return -1;
		}
		a = &r->list[r->n - 1];
		if (pps) {
			a->max_pps = v;
			a->has_pps = 1;
		} else {
			a->max_bps = v;
			a->has_bps = 1;
		}
		return 0;
	}
	if (r->n >= CONFIG_COLLECTORS_MAX) {
		util_snprintf(r->err, r->errlen, "collector: more than %d "
		    "collectors", CONFIG_COLLECTORS_MAX);
		return -1;
	}
	a = &r->list[r->n];
	if (config_listen_addr(item, "collector", a, r->err, r->errlen) == -1)
		return -1;
	for (size_t i = 0; i < r->n; i++) {
		if (r->list[i].sslen == a->sslen &&
		    memcmp(&r->list[i].ss, &a->ss, a->sslen) == 0) {
			util_snprintf(r->err, r->errlen, "collector \"%s\": "
			    "same address as \"%s\"", item, r->list[i].name);
			return -1;
		}
	}
	r->n++;
	return 0;
}

int
config_collectors(const struct gateway_config *cfg, struct config_addr **out,
    size_t *n, char *err, size_t errlen)
{
	struct config_resolve	 r;

	*out = NULL;
	*n = 0;
	memset(&r, 0, sizeof(r));
	r.err = err;
	r.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (cfg->collector == NULL || cfg->collector[0] == '\0') {
		util_snprintf(err, errlen, "collector: none configured");
		return -1;
	}
	if ((r.list = calloc(CONFIG_COLLECTORS_MAX, sizeof(*r.list))) ==
	    NULL) {
		util_snprintf(err, errlen, "collector: %s", strerror(errno));
		return -1;
	}
	if (util_split_list(cfg->collector, config_resolve_one, &r) == -1 ||
	    r.n == 0) {
		if (err[0] == '\0')
			util_snprintf(err, errlen, "collector: bad list \"%s\"",
			    cfg->collector);
		free(r.list);
		return -1;
	}
	for (size_t i = 0; i < r.n; i++) {
		if (!r.list[i].has_pps)
			r.list[i].max_pps = cfg->collector_max_pps;
		if (!r.list[i].has_bps)
			r.list[i].max_bps = cfg->collector_max_bps;
	}
	*out = r.list;
	*n = r.n;
	return 0;
}
