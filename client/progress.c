/*
 * progress.c: the file job's phases (read, seal, deliver), its progress
 * display and its exit status.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#include "batcher.h"
#include "pcap_input.h"
#include "progress.h"
#include "sealer.h"
#include "spool.h"
#include "stats.h"

#define PROGRESS_STEP_MS	100

struct view {
	int		tty;
	int		drawn;		/* a line is on the terminal */
	int64_t		next_draw;
	int64_t		next_tick;
	int64_t		start;
	/* the stall clock: the spool held batches and nothing was acked */
	uint64_t	acked;
	int64_t		last_progress;
};

static void
human(uint64_t b, char *out, size_t outlen)
{
	if (b < 10 * 1024)
		snprintf(out, outlen, "%" PRIu64 " B", b);
	else if (b < 10 * 1024 * 1024)
		snprintf(out, outlen, "%.1f KiB", (double)b / 1024);
	else if (b < 10ULL * 1024 * 1024 * 1024)
		snprintf(out, outlen, "%.1f MiB", (double)b / (1024 * 1024));
	else
		snprintf(out, outlen, "%.1f GiB",
		    (double)b / (1024.0 * 1024 * 1024));
}

static void
draw(struct view *v, const struct pcap_file_progress *p, uint64_t waiting)
{
	char		size[32], line[256];
	unsigned int	pct;

	if (p->total > 0)
		pct = (unsigned int)((p->offset > p->total ? p->total :
		    p->offset) * 100 / p->total);
	else
		pct = p->done ? 100 : 0;
	human(p->bytes, size, sizeof(size));
	snprintf(line, sizeof(line), "file %zu/%zu, %" PRIu64 " datagrams "
	    "(%s) read, %u%%; %" PRIu64 " spooled, %" PRIu64 " acknowledged, "
	    "%" PRIu64 " batches waiting", p->file, p->nfiles, p->datagrams,
	    size, pct, STATS_GET(datagrams_sealed),
	    STATS_GET(acked_datagrams), waiting);
	if (v->tty) {
		fprintf(stderr, "\r%s\033[K", line);
		fflush(stderr);
		v->drawn = 1;
	} else
		log_info("progress: %s", line);
}

/* Ends the line redrawn in place, so log lines start on their own. */
static void
view_end(struct view *v)
{
	if (v->drawn) {
		fputc('\n', stderr);
		fflush(stderr);
		v->drawn = 0;
	}
}

/* One wait step: the once-a-second tick and a redraw when it is time. */
static void
step(const struct progress_job *j, struct view *v,
    const struct pcap_file_progress *p, uint64_t waiting)
{
	int64_t	now;

	poll(NULL, 0, PROGRESS_STEP_MS);
	now = util_mono_ns();
	if (now >= v->next_tick) {
		v->next_tick = now + 1000000000LL;
		if (j->tick != NULL)
			j->tick(j->tick_arg);
	}
	if (now >= v->next_draw) {
		v->next_draw = now + (v->tty ? PROGRESS_TTY_MS * 1000000LL :
		    PROGRESS_LOG_S * 1000000000LL);
		draw(v, p, waiting);
	}
}

/* 1 when the spool held batches for timeout_s without an ack. */
static int
stalled(const struct progress_job *j, struct view *v, uint64_t waiting)
{
	uint64_t	acked = STATS_GET(acked_batches);
	int64_t		now = util_mono_ns();

	if (waiting == 0 || acked != v->acked) {
		v->acked = acked;
		v->last_progress = now;
		return 0;
	}
	return !j->spool_only &&
	    now - v->last_progress >= (int64_t)j->timeout_s * 1000000000LL;
}

static uint64_t
spool_waiting(const struct progress_job *j, uint64_t *bytes)
{
	uint64_t	batches, b, oldest;

	spool_depth(j->spool, &batches, &b, &oldest);
	if (bytes != NULL)
		*bytes = b;
	return batches;
}

int
progress_run_job(const struct progress_job *j, int *sealer_stuck)
{
	struct pcap_file_progress	p;
	struct view			v;
	uint64_t			dropped0, dropped, waiting, bytes;
	int				interrupted = 0, timed_out = 0, rc = 1;

	*sealer_stuck = 0;
	memset(&v, 0, sizeof(v));
	v.tty = isatty(STDERR_FILENO);
	v.start = util_mono_ns();
	v.next_draw = v.start + PROGRESS_TTY_MS * 1000000LL;
	v.next_tick = v.start;
	v.acked = STATS_GET(acked_batches);
	v.last_progress = v.start;
	dropped0 = STATS_GET(spool_dropped_datagrams);

	/* 1: read, seal and spool as it goes */
	for (;;) {
		pcap_input_progress(*j->pcap, &p);
		if (p.done || p.spool_full)
			break;
		waiting = spool_waiting(j, NULL);
		if (*j->stop) {
			interrupted = 1;
			break;
		}
		if (stalled(j, &v, waiting)) {
			timed_out = 1;
			break;
		}
		step(j, &v, &p, waiting);
	}
	pcap_input_stop(*j->pcap);
	*j->pcap = NULL;

	/* 2: the last batch to the sealer, everything onto disk */
	batcher_finish(j->batcher);
	if (sealer_join(j->sealer, j->sealer_drain_s) == -1) {
		view_end(&v);
		*sealer_stuck = 1;
		return 1;
	}
	if (j->tick != NULL)
		j->tick(j->tick_arg);
	waiting = spool_waiting(j, &bytes);
	draw(&v, &p, waiting);
	dropped = STATS_GET(spool_dropped_datagrams) - dropped0;
	if (interrupted || p.spool_full || dropped > 0 || p.damaged > 0 ||
	    j->spool_only || timed_out)
		view_end(&v);
	if (interrupted) {
		log_error("pcap: interrupted while reading file %zu of %zu; "
		    "%" PRIu64 " batches (%" PRIu64 " bytes) stay spooled in "
		    "%s and go out with the next run", p.file, p.nfiles,
		    waiting, bytes, j->spool_dir);
		return 1;
	}
	if (p.spool_full)
		return 1;		/* said by the reader */
	if (dropped > 0)
		log_error("pcap: %" PRIu64 " datagrams were lost to the "
		    "spool's limits (spool_max_bytes, spool_max_age)", dropped);
	if (p.damaged > 0)
		log_error("pcap: %d file%s could not be read to the end (see "
		    "above); everything before the damage is spooled",
		    p.damaged, p.damaged == 1 ? "" : "s");
	if (j->spool_only) {
		log_info("pcap: %" PRIu64 " datagrams from %zu file%s "
		    "spooled; %" PRIu64 " batches (%" PRIu64 " bytes) wait in "
		    "%s for delivery", p.datagrams, p.nfiles,
		    p.nfiles == 1 ? "" : "s", waiting, bytes, j->spool_dir);
		return dropped > 0 || p.damaged > 0 ? 1 : 0;
	}

	/* 3: wait for the gateway to acknowledge every batch */
	while (!timed_out && (waiting = spool_waiting(j, &bytes)) > 0) {
		if (*j->stop) {
			interrupted = 1;
			break;
		}
		if (stalled(j, &v, waiting)) {
			timed_out = 1;
			break;
		}
		step(j, &v, &p, waiting);
	}
	if (j->tick != NULL)
		j->tick(j->tick_arg);
	waiting = spool_waiting(j, &bytes);
	draw(&v, &p, waiting);
	view_end(&v);
	if (interrupted) {
		log_error("pcap: interrupted; %" PRIu64 " batches (%" PRIu64
		    " bytes) not yet acknowledged stay spooled in %s and go "
		    "out with the next run", waiting, bytes, j->spool_dir);
	} else if (timed_out) {
		log_error("pcap: nothing acknowledged by the gateway for %"
		    PRIu64 "s (--pcap-timeout); %" PRIu64 " batches (%" PRIu64
		    " bytes) stay spooled in %s and go out with the next run",
		    j->timeout_s, waiting, bytes, j->spool_dir);
	} else {
		log_info("pcap: all %" PRIu64 " datagrams from %zu file%s "
		    "delivered and acknowledged in %.1fs", p.datagrams,
		    p.nfiles, p.nfiles == 1 ? "" : "s",
		    (double)(util_mono_ns() - v.start) / 1e9);
		rc = dropped > 0 || p.damaged > 0 ? 1 : 0;
	}
	return rc;
}
