/*
 * config.h: flowpost-gateway's configuration keys and their validation.
 *
 * The key table (config_keys) is the one place that lists every knob with
 * its type, range, default and help text; common/conf.c fills a struct
 * gateway_config from defaults, the [gateway] section of the INI file and
 * the command line.  config_validate() then checks what a range cannot
 * express (addresses, the path prefix, relations between keys).
 */
#ifndef FLOWPOST_GATEWAY_CONFIG_H
#define FLOWPOST_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"

#define CONFIG_COLLECTORS_MAX	32
#define CONFIG_ADDR_NAME_MAX	300
#define CONFIG_PEM_MAX		(1024 * 1024)	/* tls_cert, tls_key */

struct gateway_config {
	char		*listen;		/* host:port of the batch endpoint */
	char		*path_prefix;		/* "" or "/x" (no trailing '/') */
	char		*collector;		/* list of host:port */
	char		*state_dir;
	char		*keys_file;
	char		*metrics_listen;	/* host:port or "none" */
	uint64_t	 template_refresh;	/* seconds, 0 = off (template.h) */
	uint64_t	 collector_max_pps;	/* per collector, 0 = off */
	uint64_t	 collector_max_bps;	/* payload bits/s, 0 = off */
	int		 preserve_source;	/* srcmap.h */
	int		 source_port_map;
	uint64_t	 max_body_bytes;
	uint64_t	 max_raw_bytes;
	uint64_t	 max_batch_age;		/* seconds, 0 = off */
	uint64_t	 max_clock_skew;	/* seconds */
	uint64_t	 dedup_window;		/* batches */
	uint64_t	 threads;
	uint64_t	 connection_limit;
	uint64_t	 connection_timeout;	/* seconds */
	uint64_t	 per_ip_connection_limit;	/* 0 = off */
	uint64_t	 rate_limit_global;	/* batch POSTs/s, 0 = off */
	uint64_t	 rate_limit_client;	/* batches/s per client, 0 = off */
	uint64_t	 rate_limit_auth_failures;	/* per client, 0 = off */
	char		*tls_cert;		/* PEM file, "" = plain HTTP */
	char		*tls_key;		/* PEM file, with tls_cert */
	uint64_t	 stats_interval;	/* seconds, 0 = off */
	uint64_t	 warn_lag;		/* seconds, 0 = off (kits.h) */
	uint64_t	 warn_drops;		/* datagrams, 0 = off */
	int		 log_level;		/* enum log_level */
	int		 syslog;
	char		*user;			/* "" = keep the current user */
};

extern const struct conf_key config_keys[];

/* One resolved address with the text it came from (for logs and labels). */
struct config_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 name[CONFIG_ADDR_NAME_MAX];
	/* Collectors only: pacing (pacer.h), from pps=/bps= or the defaults. */
	uint64_t		 max_pps;
	uint64_t		 max_bps;
	int			 has_pps, has_bps;
};

/*
 * Checks everything the key table cannot: required keys, address syntax,
 * the path prefix, sizes that depend on each other.  Needs no network.
 */
int	 config_validate(const struct gateway_config *cfg, char *err,
	    size_t errlen);

/* 1 if tls_cert and tls_key are set (the batch endpoint speaks HTTPS). */
int	 config_tls(const struct gateway_config *cfg);

/*
 * Reads tls_cert and tls_key into NUL-terminated malloc'd strings and
 * checks that they look like a PEM certificate and key.  Done before the
 * privilege drop, so the key file may be readable by root only.
 */
int	 config_tls_load(const struct gateway_config *cfg, char **cert,
	    char **key, char *err, size_t errlen);

/* 1 if metrics_listen is "none" (metrics and its health page are off). */
int	 config_metrics_disabled(const struct gateway_config *cfg);

/*
 * Resolves the collector list (names through getaddrinfo) into a
 * malloc'd array.
 */
int	 config_collectors(const struct gateway_config *cfg,
	    struct config_addr **out, size_t *n, char *err, size_t errlen);

/* Resolves one listen address ("host:port", "[v6]:port"). */
int	 config_listen_addr(const char *text, const char *key,
	    struct config_addr *out, char *err, size_t errlen);

#endif
