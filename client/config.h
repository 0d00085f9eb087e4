/*
 * config.h: the client's configuration keys and their validation.
 *
 * config_table describes every key (conf.h); config_validate() checks what
 * the table cannot express (URL schemes, the client id, the key file, the
 * listen list, relations between keys) and fills the derived fields.
 */
#ifndef FLOWPOST_CLIENT_CONFIG_H
#define FLOWPOST_CLIENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "wire.h"

#define CONFIG_LISTEN_MAX	16

enum config_spool_full {
	CONFIG_DROP_OLDEST = 0,
	CONFIG_DROP_NEWEST = 1,
};

enum config_codec {
	CONFIG_CODEC_ZLIB = 0,
	CONFIG_CODEC_NFPACK = 1,
	CONFIG_CODEC_NFPACK3 = 2,
};

struct client_config {
	/* keys (conf.h table) */
	char		*listen;
	char		*gateway_url;
	char		*proxy;
	char		*client_id;
	char		*key_file;
	char		*spool_dir;
	uint64_t	 batch_max_bytes;
	uint64_t	 batch_max_age;
	uint64_t	 spool_max_bytes;
	uint64_t	 spool_max_age;
	int		 spool_full;		/* enum config_spool_full */
	int		 drop_malformed;
	int		 codec;			/* enum config_codec */
	uint64_t	 zlib_level;
	uint64_t	 zlib_level_busy;
	uint64_t	 seal_threads;
	char		*ca_file;
	char		*pinned_pubkey;
	int		 route;			/* route.h: ROUTE_AUTO, 1 + way */
	int		 http_version;		/* enum post_http_version */
	int		 allow_plain_http;
	char		*plain_http_url;	/* "" = derived from gateway_url */
	uint64_t	 connect_timeout;
	uint64_t	 request_timeout;
	uint64_t	 retry_initial;
	uint64_t	 retry_factor;
	uint64_t	 retry_max;
	uint64_t	 rcvbuf;
	uint64_t	 stats_interval;
	uint64_t	 heartbeat;		/* seconds, 0 = off */
	int		 log_level;		/* enum log_level */
	int		 syslog;
	char		*metrics_listen;	/* "" = no metrics endpoint */
	/* pcap input (pcap_input.h) */
	char		*input;			/* pcap:IFACE, pcap-file:PATH */
	char		*pcap_filter;
	char		*pcap_file_filter;
	int		 pcap_promisc;
	uint64_t	 pcap_snaplen;
	uint64_t	 pcap_buffer;

	/* derived by config_validate() */
	uint8_t			 key[WIRE_KEY_LEN];
	struct sockaddr_storage	 listen_addr[CONFIG_LISTEN_MAX];
	socklen_t		 listen_len[CONFIG_LISTEN_MAX];
	size_t			 nlisten;
};

extern const struct conf_key config_table[];

/*
 * Checks the loaded values, reads the key file and resolves the listen
 * list.  On error, a message naming the key goes to err.
 */
int	 config_validate(struct client_config *c, char *err, size_t errlen);
/* Frees the strings and wipes the key. */
void	 config_free(struct client_config *c);

/* Ceiling of the entries buffer of one batch: one datagram always fits. */
size_t	 config_entries_max(const struct client_config *c);
/* The batch codec (wire.h's enum wire_codec) the `codec` key names. */
int	 config_wire_codec(const struct client_config *c);
/* Ceiling of a batch's content after opening (spool verification). */
size_t	 config_raw_max(const struct client_config *c);
/* Ceiling of one sealed batch on disk and on the wire. */
size_t	 config_sealed_max(const struct client_config *c);

#endif
