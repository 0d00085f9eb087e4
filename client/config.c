/*
 * config.c: the client's key table and the checks it cannot express.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

#include "config.h"
#include "route.h"
#include "pcap_input.h"

/* A key file holds 64 hex digits and perhaps a newline; refuse big files. */
#define CONFIG_KEY_FILE_MAX	1024

static const char *const spool_full_choices[] = {
	"drop-oldest", "drop-newest", NULL
};
static const char *const log_level_choices[] = {
	"error", "warn", "info", "debug", NULL	/* enum log_level order */
};
/* route.h: auto, then enum route_way order */
static const char *const route_choices[] = {
	"auto", "configured", "direct", "proxy-connect", "proxy-plain",
	"proxy-http10", NULL
};
/* enum config_codec order */
static const char *const codec_choices[] = {
	"zlib", "nfpack", "nfpack3", NULL
};
/* enum post_http_version order */
static const char *const http_version_choices[] = {
	"auto", "1.1", "1.0", NULL
};

#define O(f)	offsetof(struct client_config, f)
#define KiB	1024ULL
#define MiB	(1024ULL * 1024)
#define GiB	(1024ULL * 1024 * 1024)

const struct conf_key config_table[] = {
	{ "listen", CONF_STRING, O(listen), 0, 0, "0.0.0.0:2055", NULL,
	    "UDP addresses to receive NetFlow/IPFIX on (host:port list)" },
	{ "gateway_url", CONF_STRING, O(gateway_url), 0, 0, "", NULL,
	    "base URL of the gateway, http:// or https:// (required)" },
	{ "proxy", CONF_STRING, O(proxy), 0, 0, "", NULL,
	    "HTTP(S)/SOCKS proxy URL; empty: from environment; none: direct" },
	{ "client_id", CONF_STRING, O(client_id), 0, 0, "", NULL,
	    "this kit's name at the gateway, [A-Za-z0-9._-]{1,64} (required)" },
	{ "key_file", CONF_STRING, O(key_file), 0, 0, "", NULL,
	    "file holding the 64 hex digit key shared with the gateway "
	    "(required)" },
	{ "spool_dir", CONF_STRING, O(spool_dir), 0, 0,
	    "/var/spool/flowpost-client", NULL,
	    "directory of sealed batches waiting for delivery" },
	{ "batch_max_bytes", CONF_SIZE, O(batch_max_bytes), 4 * KiB, 16 * MiB,
	    "256K", NULL, "close a batch when its datagrams reach this size" },
	{ "batch_max_age", CONF_DURATION, O(batch_max_age), 1, 3600, "5s",
	    NULL, "close a batch when its first datagram is this old" },
	{ "spool_max_bytes", CONF_SIZE, O(spool_max_bytes), 64 * KiB,
	    UINT64_MAX, "1G", NULL, "largest total size of the spool" },
	{ "spool_max_age", CONF_DURATION, O(spool_max_age), 0, 0, "0", NULL,
	    "drop spooled batches older than this (0: never)" },
	{ "spool_full", CONF_ENUM, O(spool_full), 0, 0, "drop-oldest",
	    spool_full_choices,
	    "when the spool is full: drop-oldest or drop-newest batches" },
	{ "drop_malformed", CONF_BOOL, O(drop_malformed), 0, 0, "no", NULL,
	    "drop NetFlow/IPFIX datagrams whose lengths disagree" },
	{ "codec", CONF_ENUM, O(codec), 0, 0, "nfpack3", codec_choices,
	    "batch compression: zlib, nfpack (NetFlow v5 byte columns, then "
	    "zlib; codec 2) or nfpack3 (NetFlow v5 field coding, then zlib; "
	    "codec 3)" },
	{ "zlib_level", CONF_UINT, O(zlib_level), 0, 9, "6", NULL,
	    "zlib compression level of batches, 0..9" },
	{ "zlib_level_busy", CONF_UINT, O(zlib_level_busy), 0, 9, "1", NULL,
	    "zlib level of a batch sealed while other batches wait or are "
	    "being compressed (set it to zlib_level to never change level)" },
	{ "seal_threads", CONF_UINT, O(seal_threads), 1, 8, "2", NULL,
	    "threads that compress and seal batches, 1..8" },
	{ "ca_file", CONF_STRING, O(ca_file), 0, 0, "", NULL,
	    "CA certificates (PEM) to verify the gateway; empty: system "
	    "store" },
	{ "pinned_pubkey", CONF_STRING, O(pinned_pubkey), 0, 0, "", NULL,
	    "gateway public key pin: sha256//BASE64 or a PEM/DER file" },
	{ "route", CONF_ENUM, O(route), 0, 0, "auto", route_choices,
	    "way out to the gateway: auto, configured, direct, proxy-connect, "
	    "proxy-plain or proxy-http10" },
	{ "http_version", CONF_ENUM, O(http_version), 0, 0, "auto",
	    http_version_choices, "HTTP version of the POSTs: auto, 1.1 or "
	    "1.0" },
	{ "allow_plain_http", CONF_BOOL, O(allow_plain_http), 0, 0, "no", NULL,
	    "let way proxy-plain post an https:// gateway_url as plain http "
	    "(batches stay sealed)" },
	{ "plain_http_url", CONF_STRING, O(plain_http_url), 0, 0, "", NULL,
	    "gateway URL for plain http; empty: gateway_url as http:// on "
	    "port 80" },
	{ "connect_timeout", CONF_DURATION, O(connect_timeout), 1, 3600, "10s",
	    NULL, "time limit to connect to the gateway or proxy" },
	{ "request_timeout", CONF_DURATION, O(request_timeout), 1, 86400,
	    "60s", NULL, "time limit for one whole POST" },
	{ "retry_initial", CONF_DURATION, O(retry_initial), 1, 86400, "1s",
	    NULL, "first back-off after a failed POST" },
	{ "retry_factor", CONF_UINT, O(retry_factor), 1, 100, "3", NULL,
	    "back-off growth per failed attempt" },
	{ "retry_max", CONF_DURATION, O(retry_max), 1, 86400, "243s", NULL,
	    "longest back-off between attempts" },
	{ "rcvbuf", CONF_SIZE, O(rcvbuf), 0, 1 * GiB, "4M", NULL,
	    "UDP socket receive buffer (SO_RCVBUF)" },
	{ "stats_interval", CONF_DURATION, O(stats_interval), 0, 86400, "60s",
	    NULL, "interval of the stats log line (0: never)" },
	{ "heartbeat", CONF_DURATION, O(heartbeat), 0, 86400, "5m", NULL,
	    "send a health report this long after the last batch when idle "
	    "(0: never)" },
	{ "log_level", CONF_ENUM, O(log_level), 0, 0, "info",
	    log_level_choices, "error, warn, info or debug" },
	{ "syslog", CONF_BOOL, O(syslog), 0, 0, "no", NULL,
	    "log to syslog instead of stderr" },
	{ "metrics_listen", CONF_STRING, O(metrics_listen), 0, 0, "", NULL,
	    "host:port for GET /metrics (Prometheus); empty: off" },
	{ "input", CONF_STRING, O(input), 0, 0, "", NULL,
	    "more inputs: pcap:IFACE captures live, pcap-file:PATH sends a "
	    "capture file once and exits" },
	{ "pcap_filter", CONF_STRING, O(pcap_filter), 0, 0,
	    PCAP_INPUT_DEFAULT_FILTER, NULL,
	    "BPF filter of live capture (pcap: inputs)" },
	{ "pcap_file_filter", CONF_STRING, O(pcap_file_filter), 0, 0, "", NULL,
	    "BPF filter for pcap files; empty: every UDP datagram" },
	{ "pcap_promisc", CONF_BOOL, O(pcap_promisc), 0, 0, "yes", NULL,
	    "capture in promiscuous mode" },
	{ "pcap_snaplen", CONF_UINT, O(pcap_snaplen), 64, 262144, "65535",
	    NULL, "bytes captured per packet; longer ones count as truncated" },
	{ "pcap_buffer", CONF_SIZE, O(pcap_buffer), 64 * KiB, 1 * GiB, "8M",
	    NULL, "kernel capture buffer per interface" },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

int
config_wire_codec(const struct client_config *c)
{
	switch (c->codec) {
	case CONFIG_CODEC_ZLIB:
		return WIRE_CODEC_ZLIB;
	case CONFIG_CODEC_NFPACK:
		return WIRE_CODEC_NFPACK;
	default:
		return WIRE_CODEC_NFPACK3;
	}
}

size_t
config_entries_max(const struct client_config *c)
{
	size_t	one = wire_entry_size(WIRE_DATAGRAM_MAX);

	return c->batch_max_bytes > one ? (size_t)c->batch_max_bytes : one;
}

size_t
config_raw_max(const struct client_config *c)
{
	/* health_len word, entries, and room for a health block */
	return (size_t)c->batch_max_bytes + 64 * KiB;
}

size_t
config_sealed_max(const struct client_config *c)
{
	size_t	raw = config_raw_max(c);

	/* zlib never grows data by more than a few bytes per 16 KiB block */
	return WIRE_HEADER_MAX + raw + raw / 256 + 1024 + WIRE_TAG_LEN;
}

static int
has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* 0 if s has no spaces or control characters (URLs, paths in headers). */
static int
plain_text(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isgraph((unsigned char)*s))
			return -1;
	return 0;
}

static int
check_url(const struct client_config *c, char *err, size_t errlen)
{
	const char	*host;

	if (c->gateway_url[0] == '\0') {
		snprintf(err, errlen, "gateway_url: required (the gateway's "
		    "base URL, http://... or https://...)");
		return -1;
	}
	if (has_prefix_ci(c->gateway_url, "https://"))
		host = c->gateway_url + 8;
	else if (has_prefix_ci(c->gateway_url, "http://"))
		host = c->gateway_url + 7;
	else {
		snprintf(err, errlen, "gateway_url: \"%s\" must start with "
		    "http:// or https://", c->gateway_url);
		return -1;
	}
	if (*host == '\0' || *host == '/' || plain_text(c->gateway_url) == -1 ||
	    strchr(c->gateway_url, '?') != NULL ||
	    strchr(c->gateway_url, '#') != NULL) {
		snprintf(err, errlen, "gateway_url: \"%s\" is not a usable "
		    "base URL (host required; no spaces, query or fragment)",
		    c->gateway_url);
		return -1;
	}
	if (c->proxy[0] != '\0' && plain_text(c->proxy) == -1) {
		snprintf(err, errlen, "proxy: \"%s\" contains spaces or "
		    "control characters", c->proxy);
		return -1;
	}
	return 0;
}

static int
check_key(struct client_config *c, char *err, size_t errlen)
{
	uint8_t	*data = NULL;
	char	 hex[2 * WIRE_KEY_LEN + 1];
	size_t	 len, start = 0;
	int	 rc = -1;

	if (c->key_file[0] == '\0') {
		snprintf(err, errlen, "key_file: required (a file with the 64 "
		    "hex digit key shared with the gateway)");
		goto out;
	}
	errno = 0;
	if (util_read_file(c->key_file, CONFIG_KEY_FILE_MAX, &data,
	    &len) == -1) {
		snprintf(err, errlen, "key_file: cannot read %s: %s",
		    c->key_file, errno ? strerror(errno) : "too large");
		goto out;
	}
	while (start < len && isspace(data[start]))
		start++;
	while (len > start && isspace(data[len - 1]))
		len--;
	if (len - start != 2 * WIRE_KEY_LEN) {
		snprintf(err, errlen, "key_file: %s must hold exactly 64 hex "
		    "digits", c->key_file);
		goto out;
	}
	memcpy(hex, data + start, 2 * WIRE_KEY_LEN);
	hex[2 * WIRE_KEY_LEN] = '\0';
	if (wire_key_parse(hex, c->key) == -1) {
		snprintf(err, errlen, "key_file: %s must hold exactly 64 hex "
		    "digits", c->key_file);
		goto out;
	}
	rc = 0;
 out:
	sodium_memzero(hex, sizeof(hex));
	if (data != NULL) {
		sodium_memzero(data, len);
		free(data);
	}
	return rc;
}

struct listen_arg {
	struct client_config	*c;
	char			*err;
	size_t			 errlen;
};

static int
listen_item(const char *item, void *arg)
{
	struct listen_arg	*la = arg;
	struct client_config	*c = la->c;

	if (c->nlisten == CONFIG_LISTEN_MAX) {
		snprintf(la->err, la->errlen, "listen: more than %d addresses",
		    CONFIG_LISTEN_MAX);
		return -1;
	}
	if (util_parse_hostport(item, 0, &c->listen_addr[c->nlisten],
	    &c->listen_len[c->nlisten]) == -1) {
		snprintf(la->err, la->errlen, "listen: \"%s\" is not host:port "
		    "or [v6addr]:port", item);
		return -1;
	}
	c->nlisten++;
	return 0;
}

static int
check_listen(struct client_config *c, char *err, size_t errlen)
{
	struct listen_arg	la = { c, err, errlen };

	c->nlisten = 0;
	err[0] = '\0';
	if (util_split_list(c->listen, listen_item, &la) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "listen: cannot parse \"%s\"",
			    c->listen);
		return -1;
	}
	if (c->nlisten == 0) {
		snprintf(err, errlen, "listen: at least one host:port needed");
		return -1;
	}
	return 0;
}

static int
check_files(const struct client_config *c, char *err, size_t errlen)
{
	if (c->spool_dir[0] == '\0') {
		snprintf(err, errlen, "spool_dir: must not be empty");
		return -1;
	}
	if (c->ca_file[0] != '\0' && access(c->ca_file, R_OK) == -1) {
		snprintf(err, errlen, "ca_file: cannot read %s: %s", c->ca_file,
		    strerror(errno));
		return -1;
	}
	if (c->pinned_pubkey[0] != '\0' &&
	    strncmp(c->pinned_pubkey, "sha256//", 8) != 0 &&
	    access(c->pinned_pubkey, R_OK) == -1) {
		snprintf(err, errlen, "pinned_pubkey: \"%s\" is neither "
		    "sha256//BASE64 nor a readable file: %s", c->pinned_pubkey,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* The ways out (route.h) that the settings alone rule out. */
static int
check_route(const struct client_config *c, char *err, size_t errlen)
{
	if (c->plain_http_url[0] != '\0' &&
	    (!has_prefix_ci(c->plain_http_url, "http://") ||
	    c->plain_http_url[7] == '\0' || c->plain_http_url[7] == '/' ||
	    plain_text(c->plain_http_url) == -1 ||
	    strchr(c->plain_http_url, '?') != NULL ||
	    strchr(c->plain_http_url, '#') != NULL)) {
		snprintf(err, errlen, "plain_http_url: \"%s\" must be an "
		    "http:// base URL with a host", c->plain_http_url);
		return -1;
	}
	if (c->route == 1 + ROUTE_PROXY_PLAIN && has_prefix_ci(c->gateway_url, "https://") &&
	    !c->allow_plain_http) {
		snprintf(err, errlen, "route: proxy-plain with an https:// "
		    "gateway_url needs allow_plain_http = yes");
		return -1;
	}
	return 0;
}

/* metrics_listen: empty, or one address the metrics endpoint can bind. */
static int
check_metrics(const struct client_config *c, char *err, size_t errlen)
{
	struct sockaddr_storage	ss;
	socklen_t		sslen;

	if (c->metrics_listen[0] == '\0')
		return 0;
	if (util_parse_hostport(c->metrics_listen, 0, &ss, &sslen) == -1) {
		snprintf(err, errlen, "metrics_listen: \"%s\" is not host:port "
		    "or [v6addr]:port", c->metrics_listen);
		return -1;
	}
	return 0;
}

int
config_validate(struct client_config *c, char *err, size_t errlen)
{
	if (check_url(c, err, errlen) == -1)
		return -1;
	if (wire_client_id_valid(c->client_id) == -1) {
		snprintf(err, errlen, "client_id: \"%s\" must be 1 to %d "
		    "characters of A-Z a-z 0-9 . _ -", c->client_id,
		    WIRE_CLIENT_ID_MAX);
		return -1;
	}
	if (check_key(c, err, errlen) == -1 ||
	    check_listen(c, err, errlen) == -1 ||
	    check_files(c, err, errlen) == -1)
		return -1;
	if (pcap_input_check_config(c, err, errlen) == -1)
		return -1;
	if (check_metrics(c, err, errlen) == -1)
		return -1;
	if (check_route(c, err, errlen) == -1)
		return -1;
	if (c->retry_max < c->retry_initial) {
		snprintf(err, errlen, "retry_max: %" PRIu64 "s is less than "
		    "retry_initial %" PRIu64 "s", c->retry_max,
		    c->retry_initial);
		return -1;
	}
	if (c->spool_max_bytes < 2 * (uint64_t)config_sealed_max(c)) {
		snprintf(err, errlen, "spool_max_bytes: %" PRIu64 " bytes is "
		    "too small for batch_max_bytes %" PRIu64 " (need at least "
		    "%zu)", c->spool_max_bytes, c->batch_max_bytes,
		    2 * config_sealed_max(c));
		return -1;
	}
	return 0;
}

void
config_free(struct client_config *c)
{
	conf_free(config_table, c);
	sodium_memzero(c->key, sizeof(c->key));
}
