/*
 * status.c: `flowpost-client status`.
 *
 * The first line is the verdict, for people and for scripts alike:
 *   flowpost-client OK: ...
 *   flowpost-client BACKLOG: ...
 *   flowpost-client FAILING: ...
 *   flowpost-client STOPPED: ...
 * followed by the figures it was drawn from.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#include "stats.h"
#include "status.h"

#define STATUS_FILE_MAX		(64 * 1024)	/* the file is ~1 KiB */
#define STATUS_FIELDS_MAX	128
#define STATUS_STALE_S		10	/* the file is rewritten every second */
#define STATUS_SLACK_S		60	/* beyond one full retry cycle */

struct status_file {
	const char	*route;		/* "route <way>" line, or NULL */
	char		*name[STATUS_FIELDS_MAX];
	uint64_t	 val[STATUS_FIELDS_MAX];
	int		 used[STATUS_FIELDS_MAX];
	size_t		 n;
};

static const char *const status_names[] = {
	"OK", "BACKLOG", "FAILING", "STOPPED"
};

const char *
status_state_name(enum status_state st)
{
	return (size_t)st < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[st] : "?";
}

/*
 * FAILING means batches have waited longer than a whole retry cycle and
 * nothing was delivered in that time; BACKLOG that more than a few batches
 * wait, or the sender is backing off, but it has not come to that.
 */
enum status_state
status_judge(const struct status_view *v)
{
	uint64_t	 since;

	if (!v->running)
		return STATUS_STOPPED;
	since = v->last_success == 0 ? UINT64_MAX : v->now > v->last_success ?
	    v->now - v->last_success : 0;
	if (v->spool_batches > 0 && v->oldest_age_s > v->window_s &&
	    since > v->window_s)
		return STATUS_FAILING;
	if (v->spool_batches > STATUS_BACKLOG_BATCHES ||
	    v->oldest_age_s > v->window_s || v->backoff_s > 0)
		return STATUS_BACKLOG;
	return STATUS_OK;
}

/* "name value" lines into sf; other lines are skipped. */
static void
status_parse(char *text, struct status_file *sf)
{
	char	*line, *end, *sp;

	for (line = text; *line != '\0' && sf->n < STATUS_FIELDS_MAX;
	    line = end) {
		if ((end = strchr(line, '\n')) != NULL)
			*end++ = '\0';
		else
			end = line + strlen(line);
		if ((sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (strcmp(line, "route") == 0) {
			sf->route = sp + 1;
			continue;
		}
		if (util_parse_u64(sp + 1, &sf->val[sf->n]) == -1)
			continue;
		sf->name[sf->n] = line;
		sf->used[sf->n] = 0;
		sf->n++;
	}
}

/* Value of `name`, marked as shown; 0 when the file lacks it. */
static uint64_t
status_get(struct status_file *sf, const char *name)
{
	size_t	i;

	for (i = 0; i < sf->n; i++) {
		if (strcmp(sf->name[i], name) == 0) {
			sf->used[i] = 1;
			return sf->val[i];
		}
	}
	return 0;
}

static void
status_age(char *out, size_t outlen, uint64_t s)
{
	if (s < 120)
		snprintf(out, outlen, "%" PRIu64 "s", s);
	else if (s < 2 * 3600)
		snprintf(out, outlen, "%" PRIu64 "m", s / 60);
	else if (s < 2 * 86400)
		snprintf(out, outlen, "%" PRIu64 "h %" PRIu64 "m", s / 3600,
		    s % 3600 / 60);
	else
		snprintf(out, outlen, "%" PRIu64 "d %" PRIu64 "h", s / 86400,
		    s % 86400 / 3600);
}

/* "12s ago", or "none since the start" for a zero timestamp. */
static void
status_since(char *out, size_t outlen, uint64_t now, uint64_t ts)
{
	char	age[32];

	if (ts == 0) {
		snprintf(out, outlen, "none since the start");
		return;
	}
	status_age(age, sizeof(age), now > ts ? now - ts : 0);
	snprintf(out, outlen, "%s ago", age);
}

static void
status_size(char *out, size_t outlen, uint64_t b)
{
	if (b < 1024)
		snprintf(out, outlen, "%" PRIu64 " B", b);
	else if (b < 1024 * 1024)
		snprintf(out, outlen, "%.1f KiB", (double)b / 1024);
	else if (b < 1024ULL * 1024 * 1024)
		snprintf(out, outlen, "%.1f MiB", (double)b / (1024 * 1024));
	else
		snprintf(out, outlen, "%.1f GiB", (double)b /
		    (1024.0 * 1024 * 1024));
}

static int
status_running(uint64_t pid)
{
	return pid > 0 && pid <= INT32_MAX && (kill((pid_t)pid, 0) == 0 ||
	    errno == EPERM);
}

/* The verdict line. */
static void
status_headline(FILE *f, enum status_state st, const struct status_view *v,
    uint64_t pid)
{
	char	age[32], last[48];

	status_since(last, sizeof(last), v->now, v->last_success);
	status_age(age, sizeof(age), v->oldest_age_s);
	fprintf(f, "flowpost-client %s: ", status_state_name(st));
	switch (st) {
	case STATUS_STOPPED:
		fprintf(f, "pid %" PRIu64 " is not running; %" PRIu64
		    " batches left in the spool\n", pid, v->spool_batches);
		break;
	case STATUS_FAILING:
		fprintf(f, "%" PRIu64 " batches waiting, oldest %s; last "
		    "delivery %s (the log says why)\n", v->spool_batches, age,
		    last);
		break;
	case STATUS_BACKLOG:
		fprintf(f, "%" PRIu64 " batches waiting, oldest %s; last "
		    "delivery %s%s\n", v->spool_batches, age, last,
		    v->backoff_s > 0 ? "; backing off after a failed POST" :
		    "");
		break;
	default:
		fprintf(f, "%" PRIu64 " batches waiting; last delivery %s\n",
		    v->spool_batches, last);
		break;
	}
}

/* Reads and parses <dir>/client.stats; -1 with a message on stderr. */
static int
status_load(const char *dir, uint8_t **data, struct status_file *sf)
{
	char	path[4096];
	size_t	len;

	if (util_snprintf(path, sizeof(path), "%s/%s", dir, STATS_FILE) ==
	    -1) {
		fprintf(stderr, "flowpost-client: spool_dir too long\n");
		return -1;
	}
	if (util_read_file(path, STATUS_FILE_MAX, data, &len) == -1) {
		fprintf(stderr, "flowpost-client: cannot read %s: %s (is "
		    "spool_dir the running client's? pass the same -c FILE "
		    "and --spool-dir)\n", path, strerror(errno));
		return -1;
	}
	/* util_read_file() NUL-terminates. */
	memset(sf, 0, sizeof(*sf));
	status_parse((char *)*data, sf);
	return 0;
}

/* The counter lines under the spool and gateway lines. */
static void
status_counters(FILE *f, struct status_file *sf,
    const struct client_config *c)
{
	char		s1[32];
	uint64_t	bmax;
	size_t		i;
	int		more = 0;

	status_size(s1, sizeof(s1), status_get(sf, "received_bytes"));
	fprintf(f, "  received %" PRIu64 " datagrams (%s); dropped %" PRIu64
	    " invalid, %" PRIu64 " malformed (of %" PRIu64 " seen), %" PRIu64
	    " truncated, %" PRIu64 " backpressure, %" PRIu64 " by the kernel\n",
	    status_get(sf, "received_datagrams"), s1,
	    status_get(sf, "dropped_invalid"),
	    status_get(sf, "dropped_malformed"), status_get(sf, "malformed"),
	    status_get(sf, "dropped_truncated"),
	    status_get(sf, "dropped_backpressure"),
	    status_get(sf, "kernel_drops"));
	/* The size in effect (lowered after a 413), else the configured. */
	bmax = status_get(sf, "batch_max_bytes");
	status_size(s1, sizeof(s1), bmax != 0 ? bmax : c->batch_max_bytes);
	fprintf(f, "  sealed %" PRIu64 " batches (%" PRIu64 " datagrams) and %"
	    PRIu64 " heartbeats; batches close at %s\n",
	    status_get(sf, "batches_sealed"),
	    status_get(sf, "datagrams_sealed"), status_get(sf, "heartbeats"),
	    s1);
	fprintf(f, "  delivered %" PRIu64 " batches (%" PRIu64 " datagrams, %"
	    PRIu64 " duplicates) in %" PRIu64 " posts: %" PRIu64 " failed, %"
	    PRIu64 " retries, %" PRIu64 " bad acks\n",
	    status_get(sf, "acked_batches"),
	    status_get(sf, "acked_datagrams"), status_get(sf, "acked_dup"),
	    status_get(sf, "posts"), status_get(sf, "posts_failed"),
	    status_get(sf, "retries"), status_get(sf, "bad_ack"));
	fprintf(f, "  upstream %" PRIu64 " exporters: %" PRIu64 " gaps, %"
	    PRIu64 " records and %" PRIu64 " packets lost before the kit, %"
	    PRIu64 " reordered, %" PRIu64 " restarts\n",
	    status_get(sf, "upstream_exporters"),
	    status_get(sf, "upstream_gaps"),
	    status_get(sf, "upstream_lost_records"),
	    status_get(sf, "upstream_lost_packets"),
	    status_get(sf, "upstream_reordered"),
	    status_get(sf, "upstream_resets"));
	fprintf(f, "  lost %" PRIu64 " batches (%" PRIu64 " datagrams) to "
	    "spool limits or errors, %" PRIu64 " write errors, %" PRIu64
	    " quarantined\n", status_get(sf, "spool_dropped_batches"),
	    status_get(sf, "spool_dropped_datagrams"),
	    status_get(sf, "spool_write_errors"),
	    status_get(sf, "quarantined"));

	/*
	 * Counters this summary does not name (pcap input, batch splits,
	 * newer ones) still get shown when they are not zero.
	 */
	(void)status_get(sf, "route_index");	/* shown as its name */
	for (i = 0; i < sf->n; i++) {
		if (sf->used[i] || sf->val[i] == 0)
			continue;
		fprintf(f, "%s%s %" PRIu64, more ? ", " : "  other ",
		    sf->name[i], sf->val[i]);
		more = 1;
	}
	if (more)
		fputc('\n', f);
}

int
status_print(const struct client_config *c, FILE *f)
{
	struct status_file	 sf;
	struct status_view	 v;
	char			 age[32], last[48], s1[32], s2[32];
	uint8_t			*data = NULL;
	uint64_t		 t, pid, bytes;
	int			 rc = -1;

	if (status_load(c->spool_dir, &data, &sf) == -1)
		goto out;

	memset(&v, 0, sizeof(v));
	v.now = (uint64_t)time(NULL);
	pid = status_get(&sf, "pid");
	t = status_get(&sf, "time_unix");
	v.running = status_running(pid);
	v.spool_batches = status_get(&sf, "spool_batches");
	v.oldest_age_s = status_get(&sf, "spool_oldest_age_s");
	v.last_success = status_get(&sf, "last_success_unix");
	v.backoff_s = status_get(&sf, "backoff_s");
	v.window_s = c->retry_max + c->connect_timeout + c->request_timeout +
	    STATUS_SLACK_S;
	status_headline(f, status_judge(&v), &v, pid);

	status_age(age, sizeof(age), v.now > t ? v.now - t : 0);
	fprintf(f, "  pid %" PRIu64 " (%s), stats updated %s ago%s\n", pid,
	    v.running ? "running" : "not running", age,
	    v.running && v.now > t + STATUS_STALE_S ?
	    " (stale: is the client stuck?)" : "");

	bytes = status_get(&sf, "spool_bytes");
	status_size(s1, sizeof(s1), bytes);
	status_size(s2, sizeof(s2), c->spool_max_bytes);
	status_age(age, sizeof(age), v.oldest_age_s);
	fprintf(f, "  spool %" PRIu64 " batches, %s (%.0f%% of "
	    "spool_max_bytes %s), oldest %s\n", v.spool_batches, s1,
	    c->spool_max_bytes > 0 ? 100.0 * (double)bytes /
	    (double)c->spool_max_bytes : 0.0, s2,
	    v.spool_batches > 0 ? age : "-");

	status_since(last, sizeof(last), v.now, v.last_success);
	fprintf(f, "  last success %s, current back-off %" PRIu64 "s, %" PRIu64
	    " failed POSTs in a row, way out %s\n", last, v.backoff_s,
	    status_get(&sf, "retries_since_success"),
	    sf.route != NULL ? sf.route : "not known yet");

	status_counters(f, &sf, c);
	rc = 0;
 out:
	free(data);
	return rc;
}
