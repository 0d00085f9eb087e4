/*
 * stats.c: counters, the summary line, the stats file and `status`.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#include "stats.h"

struct stats stats_now;

/* The way out in use (route.h); a string constant, NULL until known. */
static _Atomic(const char *) stats_route_name;

void
stats_set_route_name(const char *name)
{
	atomic_store(&stats_route_name, name);
}

/* Every counter and gauge, in the order the stats file lists them. */
static const struct {
	const char		*name;
	_Atomic uint64_t	*v;
} stats_fields[] = {
	{ "received_datagrams",		&stats_now.received_datagrams },
	{ "received_bytes",		&stats_now.received_bytes },
	{ "dropped_invalid",		&stats_now.dropped_invalid },
	{ "malformed",			&stats_now.malformed },
	{ "dropped_malformed",		&stats_now.dropped_malformed },
	{ "dropped_truncated",		&stats_now.dropped_truncated },
	{ "dropped_backpressure",	&stats_now.dropped_backpressure },
	{ "batches_sealed",		&stats_now.batches_sealed },
	{ "batches_sealed_busy",	&stats_now.batches_sealed_busy },
	{ "datagrams_sealed",		&stats_now.datagrams_sealed },
	{ "spool_dropped_batches",	&stats_now.spool_dropped_batches },
	{ "spool_dropped_datagrams",	&stats_now.spool_dropped_datagrams },
	{ "spool_write_errors",		&stats_now.spool_write_errors },
	{ "quarantined",		&stats_now.quarantined },
	{ "posts",			&stats_now.posts },
	{ "posts_failed",		&stats_now.posts_failed },
	{ "acked_batches",		&stats_now.acked_batches },
	{ "acked_datagrams",		&stats_now.acked_datagrams },
	{ "acked_dup",			&stats_now.acked_dup },
	{ "bad_ack",			&stats_now.bad_ack },
	{ "retries",			&stats_now.retries },
	{ "heartbeats",			&stats_now.heartbeats },
	{ "splits",			&stats_now.splits },
	{ "unsplittable",		&stats_now.unsplittable },
	{ "renumbered",			&stats_now.renumbered },
	{ "batch_size_reduced",		&stats_now.batch_size_reduced },
	{ "route_changes",		&stats_now.route_changes },
	{ "spool_batches",		&stats_now.spool_batches },
	{ "spool_bytes",		&stats_now.spool_bytes },
	{ "spool_oldest_age_s",		&stats_now.spool_oldest_age_s },
	{ "backoff_s",			&stats_now.backoff_s },
	{ "last_success_unix",		&stats_now.last_success_unix },
	{ "retries_since_success",	&stats_now.retries_since_success },
	{ "route_index",		&stats_now.route_index },
	{ "batch_max_bytes",		&stats_now.batch_max_bytes },
	{ "kernel_drops",		&stats_now.kernel_drops },
	{ "pcap_received",		&stats_now.pcap_received },
	{ "pcap_kernel_drops",		&stats_now.pcap_kernel_drops },
	{ "pcap_if_drops",		&stats_now.pcap_if_drops },
	{ "pcap_truncated",		&stats_now.pcap_truncated },
	{ "pcap_fragments",		&stats_now.pcap_fragments },
	{ "pcap_reassembled",		&stats_now.pcap_reassembled },
	{ "pcap_reasm_timeouts",	&stats_now.pcap_reasm_timeouts },
	{ "pcap_reasm_dropped",		&stats_now.pcap_reasm_dropped },
	{ "pcap_non_udp",		&stats_now.pcap_non_udp },
	{ "pcap_bad_headers",		&stats_now.pcap_bad_headers },
	{ "upstream_exporters",		&stats_now.upstream_exporters },
	{ "upstream_gaps",		&stats_now.upstream_gaps },
	{ "upstream_lost_records",	&stats_now.upstream_lost_records },
	{ "upstream_lost_packets",	&stats_now.upstream_lost_packets },
	{ "upstream_reordered",		&stats_now.upstream_reordered },
	{ "upstream_resets",		&stats_now.upstream_resets },
	{ "upstream_uncounted",		&stats_now.upstream_uncounted },
};

#define STATS_NFIELDS	(sizeof(stats_fields) / sizeof(stats_fields[0]))

/* Room for every line of the stats file plus the two header lines. */
#define STATS_FILE_MAX	4096

static uint64_t
ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

void
stats_log(void)
{
	log_info("stats: received %" PRIu64 " datagrams (%" PRIu64 " bytes), "
	    "dropped invalid %" PRIu64 " malformed %" PRIu64 "/%" PRIu64
	    " truncated %" PRIu64 " backpressure %" PRIu64 "; sealed %" PRIu64
	    " batches; "
	    "spool %" PRIu64 " batches %" PRIu64 " bytes oldest %" PRIu64
	    "s, dropped %" PRIu64 " batches (%" PRIu64 " datagrams), "
	    "write errors %" PRIu64 ", quarantined %" PRIu64 "; posts %"
	    PRIu64 " failed %" PRIu64 " bad_ack %" PRIu64 "; acked %" PRIu64
	    " batches (%" PRIu64 " datagrams, %" PRIu64 " dup); back-off %"
	    PRIu64 "s",
	    ld(&stats_now.received_datagrams), ld(&stats_now.received_bytes),
	    ld(&stats_now.dropped_invalid), ld(&stats_now.dropped_malformed),
	    ld(&stats_now.malformed), ld(&stats_now.dropped_truncated),
	    ld(&stats_now.dropped_backpressure),
	    ld(&stats_now.batches_sealed),
	    ld(&stats_now.spool_batches), ld(&stats_now.spool_bytes),
	    ld(&stats_now.spool_oldest_age_s),
	    ld(&stats_now.spool_dropped_batches),
	    ld(&stats_now.spool_dropped_datagrams),
	    ld(&stats_now.spool_write_errors), ld(&stats_now.quarantined),
	    ld(&stats_now.posts), ld(&stats_now.posts_failed),
	    ld(&stats_now.bad_ack), ld(&stats_now.acked_batches),
	    ld(&stats_now.acked_datagrams), ld(&stats_now.acked_dup),
	    ld(&stats_now.backoff_s));
}

int
stats_write_file(const char *dir)
{
	char		 text[STATS_FILE_MAX], path[4096], tmp[4096];
	const char	*route;
	size_t		 off = 0, i;
	int		 n, fd = -1, rc = -1;
	ssize_t		 w;

	if (util_snprintf(path, sizeof(path), "%s/%s", dir, STATS_FILE) == -1 ||
	    util_snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir,
	    STATS_FILE) == -1)
		goto out;

	n = snprintf(text, sizeof(text), "pid %ld\ntime_unix %lld\n",
	    (long)getpid(), (long long)time(NULL));
	if (n < 0 || (size_t)n >= sizeof(text))
		goto out;
	off = (size_t)n;
	for (i = 0; i < STATS_NFIELDS; i++) {
		n = snprintf(text + off, sizeof(text) - off, "%s %" PRIu64 "\n",
		    stats_fields[i].name, ld(stats_fields[i].v));
		if (n < 0 || (size_t)n >= sizeof(text) - off)
			goto out;
		off += (size_t)n;
	}
	if ((route = atomic_load(&stats_route_name)) != NULL) {
		n = snprintf(text + off, sizeof(text) - off, "route %s\n",
		    route);
		if (n < 0 || (size_t)n >= sizeof(text) - off)
			goto out;
		off += (size_t)n;
	}

	/*
	 * No fsync: the file is a view for operators and tests, rewritten
	 * every second; the rename only keeps readers from seeing half a file.
	 */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1)
		goto out;
	for (i = 0; i < off; i += (size_t)w) {
		if ((w = write(fd, text + i, off - i)) == -1) {
			if (errno == EINTR) {
				w = 0;
				continue;
			}
			goto out;
		}
	}
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto out;
	rc = 0;
 out:
	if (fd != -1) {
		close(fd);
		unlink(tmp);
	}
	return rc;
}

/* Value of `name` in the parsed file, or 0 when it is absent. */
static uint64_t
status_get(char *const *names, const uint64_t *vals, size_t n,
    const char *name)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return vals[i];
	return 0;
}

static void
status_age(char *out, size_t outlen, uint64_t secs)
{
	if (secs < 120)
		snprintf(out, outlen, "%" PRIu64 "s", secs);
	else if (secs < 2 * 3600)
		snprintf(out, outlen, "%" PRIu64 "m", secs / 60);
	else if (secs < 2 * 86400)
		snprintf(out, outlen, "%" PRIu64 "h", secs / 3600);
	else
		snprintf(out, outlen, "%" PRIu64 "d", secs / 86400);
}

int
stats_print_status(const char *dir, FILE *f)
{
	char		 path[4096], text[STATS_FILE_MAX + 1];
	char		*names[STATS_NFIELDS + 2], *line, *end, *sp;
	char		 age[32], last[64];
	uint64_t	 vals[STATS_NFIELDS + 2], t, now, ls, pid;
	uint8_t		*data = NULL;
	size_t		 len, n = 0;
	int		 rc = -1, running;

	if (util_snprintf(path, sizeof(path), "%s/%s", dir, STATS_FILE) == -1)
		goto out;
	if (util_read_file(path, STATS_FILE_MAX, &data, &len) == -1) {
		fprintf(stderr, "no stats file %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	memcpy(text, data, len);
	text[len] = '\0';

	/* "name value" lines; anything else is skipped. */
	for (line = text; *line != '\0' && n < STATS_NFIELDS + 2; line = end) {
		if ((end = strchr(line, '\n')) != NULL)
			*end++ = '\0';
		else
			end = line + strlen(line);
		if ((sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (util_parse_u64(sp + 1, &vals[n]) == -1)
			continue;
		names[n++] = line;
	}

#define G(name)	status_get(names, vals, n, name)
	now = (uint64_t)time(NULL);
	t = G("time_unix");
	status_age(age, sizeof(age), now > t ? now - t : 0);
	pid = G("pid");
	running = pid > 0 && pid <= INT32_MAX && (kill((pid_t)pid, 0) == 0 ||
	    errno == EPERM);
	fprintf(f, "flowpost-client status (pid %" PRIu64 ", %s; updated %s "
	    "ago)\n", pid, running ? "running" : "not running", age);
	fprintf(f, "  received   %" PRIu64 " datagrams, %" PRIu64 " bytes\n",
	    G("received_datagrams"), G("received_bytes"));
	fprintf(f, "  dropped    %" PRIu64 " invalid, %" PRIu64 " malformed "
	    "(of %" PRIu64 " seen), %" PRIu64 " truncated, %" PRIu64
	    " backpressure\n", G("dropped_invalid"), G("dropped_malformed"),
	    G("malformed"), G("dropped_truncated"), G("dropped_backpressure"));
	status_age(age, sizeof(age), G("spool_oldest_age_s"));
	fprintf(f, "  spool      %" PRIu64 " batches, %" PRIu64 " bytes, "
	    "oldest %s\n", G("spool_batches"), G("spool_bytes"),
	    G("spool_batches") ? age : "-");
	fprintf(f, "  lost       %" PRIu64 " batches (%" PRIu64 " datagrams) "
	    "to spool limits or errors, %" PRIu64 " write errors, %" PRIu64
	    " quarantined\n", G("spool_dropped_batches"),
	    G("spool_dropped_datagrams"), G("spool_write_errors"),
	    G("quarantined"));
	fprintf(f, "  delivered  %" PRIu64 " batches (%" PRIu64 " datagrams, %"
	    PRIu64 " duplicates) in %" PRIu64 " posts, %" PRIu64 " failed, %"
	    PRIu64 " bad acks\n", G("acked_batches"), G("acked_datagrams"),
	    G("acked_dup"), G("posts"), G("posts_failed"), G("bad_ack"));
	ls = G("last_success_unix");
	if (ls == 0)
		snprintf(last, sizeof(last), "never");
	else {
		status_age(age, sizeof(age), now > ls ? now - ls : 0);
		snprintf(last, sizeof(last), "%s ago", age);
	}
	fprintf(f, "  gateway    last success %s, back-off %" PRIu64 "s\n",
	    last, G("backoff_s"));
#undef G
	rc = 0;
 out:
	free(data);
	return rc;
}
