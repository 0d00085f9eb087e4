/*
 * pcap_input.h: export datagrams from libpcap, live or from files.
 *
 * Live capture (`input = pcap:IFACE`) takes NetFlow/IPFIX datagrams off
 * the wire without binding the ports: one thread per interface, each with
 * its own batcher lane, so the UDP receive path is untouched.  Datagrams
 * that the capture shows as IP fragments are reassembled (reasm.h); what
 * decodes to a whole UDP datagram goes through the same nf_check verdicts
 * as the UDP listeners and into the batcher with the exporter's address
 * and source port, its destination port and the capture time.  A full
 * pool drops and counts, as on the UDP path.
 *
 * A file job (`--pcap-file FILE...` or `input = pcap-file:PATH`) reads
 * pcap and pcapng files in one thread, in order, and never drops: when
 * the pool is empty it waits for the sealer, and it pauses while the
 * spool is more than half full (so spool limits cannot eat what it read).
 *
 * Counters: pcap_received (frames seen), pcap_kernel_drops and
 * pcap_if_drops (pcap_stats), pcap_truncated, pcap_fragments,
 * pcap_reassembled, pcap_reasm_timeouts, pcap_reasm_dropped, pcap_non_udp,
 * pcap_bad_headers; datagrams found also count in received_datagrams and
 * received_bytes like those of the UDP listeners.
 */
#ifndef FLOWPOST_CLIENT_PCAP_INPUT_H
#define FLOWPOST_CLIENT_PCAP_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PCAP_INPUT_DEFAULT_FILTER \
	"udp and (dst port 2055 or dst port 4739 or dst port 9995 or " \
	"dst port 9996)"
#define PCAP_INPUT_IFACES_MAX	16
#define PCAP_INPUT_FILES_MAX	100000
#define PCAP_JOB_TIMEOUT_S	600	/* --pcap-timeout default */

struct batcher;
struct client_config;

/* The inputs named by the `input` key and --pcap-file options. */
struct pcap_input_list {
	char	**ifaces;
	size_t	  nifaces;
	char	**files;
	size_t	  nfiles;
	size_t	  files_cap;
};

/*
 * Parses an `input` list ("pcap:eth0, pcap-file:/data/x.pcap"), adding to
 * `l`.  -1 with a message naming the item.
 */
int	 pcap_input_parse(const char *input, struct pcap_input_list *l,
	    char *err, size_t errlen);
void	 pcap_input_list_free(struct pcap_input_list *l);
/* config_validate(): the `input` key parses and the pcap keys agree. */
int	 pcap_input_check_config(const struct client_config *c, char *err,
	    size_t errlen);

/* A file job's command line. */
struct pcap_job {
	struct pcap_input_list	 in;	/* --pcap-file, then the input key's */
	int			 spool_only;
	uint64_t		 timeout_s;
	int			 timeout_given;
	int			 spool_only_given;
};

void	 pcap_job_init(struct pcap_job *j);
void	 pcap_job_free(struct pcap_job *j);
/*
 * conf_cli `extra` hook (arg: struct pcap_job *): --pcap-file FILE...
 * (every following argument that does not start with '-'),
 * --spool-only, --pcap-timeout DURATION.
 */
int	 pcap_job_cli(int argc, char **argv, int i, void *arg, char *err,
	    size_t errlen);
/* Help lines for the options above. */
void	 pcap_job_usage(FILE *f);
/*
 * After config_validate(): adds the `input` key's pcap-file items, checks
 * that the job options come with files, and refuses a spool directory
 * that a running flowpost-client uses.  Returns 1 for a file job, 0 for
 * none, -1 with a message.
 */
int	 pcap_job_resolve(struct pcap_job *j, const struct client_config *c,
	    char *err, size_t errlen);

struct pcap_input;

/*
 * Opens the live captures of the `input` key, or the files of a job (then
 * live captures are not opened), and starts their threads.  With neither,
 * *out is NULL and 0 is returned.  -1 with a logged reason.
 */
int	 pcap_input_open(struct pcap_input **out,
	    const struct client_config *c, const struct pcap_job *job,
	    struct batcher *b);
/* Stops the threads, queues their open batches, closes everything. */
void	 pcap_input_stop(struct pcap_input *pi);
/* "pcap:eth0 pcap:eth1": for the start line. */
void	 pcap_input_describe(const struct pcap_input *pi, char *out,
	    size_t outlen);

struct pcap_file_progress {
	size_t		file;		/* 1-based file being read */
	size_t		nfiles;
	uint64_t	offset;		/* bytes of all files read so far */
	uint64_t	total;		/* bytes of all files */
	uint64_t	datagrams;	/* datagrams handed to the batcher */
	uint64_t	bytes;		/* their payload bytes */
	int		done;		/* the reader finished or stopped */
	int		damaged;	/* files that could not be read whole */
	int		spool_full;	/* stopped: spool half full with no
					 * sender to drain it */
};

void	 pcap_input_progress(const struct pcap_input *pi,
	    struct pcap_file_progress *p);

#endif
