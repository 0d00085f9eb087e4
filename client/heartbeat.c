/*
 * heartbeat.c: what the kit reports about itself, and when it reports
 * with no datagrams to carry the report.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "util.h"

#include "heartbeat.h"
#include "route.h"
#include "sealer.h"
#include "spool.h"
#include "stats.h"

#define HB_SOCKETS_MAX		256		/* UDP sockets looked for */
#define HB_PROC_NET_MAX		(16u * 1024 * 1024)	/* /proc/net/udp */
#define HB_LINK_MAX		64		/* "socket:[4294967295]" */
#define HB_FIELD_INODE		9		/* columns of /proc/net/udp */
#define HB_FIELD_DROPS		12

struct heartbeat {
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 stop;
	_Atomic uint64_t	 interval_s;
	struct sealer		*sealer;
	struct spool		*spool;
};

static _Atomic int64_t	hb_start_ns;
/* Clock offset estimate: valid once hb_clock_known is set. */
static _Atomic int64_t	hb_clock_ms;
static _Atomic int	hb_clock_known;
static _Atomic int	hb_kdrops_known;

void
heartbeat_init(void)
{
	atomic_store(&hb_start_ns, util_mono_ns());
}

void
heartbeat_note_date(int64_t date_unix, uint64_t now_us)
{
	int64_t	now_ms = (int64_t)(now_us / 1000);

	if (date_unix <= 0)
		return;
	/*
	 * A Date header has whole seconds, cut down: the gateway's clock
	 * was somewhere in [date, date + 1 s) when it answered.  The middle
	 * of that second is the estimate; it is good to half a second plus
	 * the answer's time on the way.
	 */
	atomic_store(&hb_clock_ms, date_unix * 1000 + 500 - now_ms);
	atomic_store(&hb_clock_known, 1);
}

void
heartbeat_snapshot(struct spool *s, struct health *h)
{
	uint64_t	batches, bytes, oldest_us, now_us = util_real_us();
	int64_t		up = util_mono_ns() - atomic_load(&hb_start_ns);

	memset(h, 0, sizeof(*h));
	h->version = HEALTH_VERSION;
	h->fixed_len = HEALTH_FIXED_V1;
	h->uptime_s = up > 0 ? (uint64_t)(up / 1000000000LL) : 0;
	spool_depth(s, &batches, &bytes, &oldest_us);
	h->spool_batches = batches;
	h->spool_bytes = bytes;
	h->spool_oldest_age_s = batches > 0 && now_us > oldest_us ?
	    (now_us - oldest_us) / 1000000 : 0;
	h->spool_dropped_batches = STATS_GET(spool_dropped_batches);
	h->spool_dropped_datagrams = STATS_GET(spool_dropped_datagrams);
	h->dropped_invalid = STATS_GET(dropped_invalid);
	h->dropped_backpressure = STATS_GET(dropped_backpressure);
	if (atomic_load(&hb_kdrops_known)) {
		h->flags |= HEALTH_F_KDROPS;
		h->kernel_drops = STATS_GET(kernel_drops);
	}
	/* exporter sequence gaps, counted by the receive path (seqtrack.h) */
	h->flags |= HEALTH_F_LOSS;
	h->upstream_gaps = STATS_GET(upstream_gaps);
	h->upstream_lost_records = STATS_GET(upstream_lost_records);
	h->upstream_lost_packets = STATS_GET(upstream_lost_packets);
	h->retries_since_success = STATS_GET(retries_since_success);
	if (atomic_load(&hb_clock_known)) {
		h->flags |= HEALTH_F_CLOCK;
		h->clock_offset_ms = atomic_load(&hb_clock_ms);
	}
	(void)util_snprintf(h->client_version, sizeof(h->client_version),
	    "%s", FLOWPOST_VERSION);
	/* the sender's way out (route.h); "configured" until it picks one */
	(void)util_snprintf(h->route, sizeof(h->route), "%s",
	    route_way_name((enum route_way)STATS_GET(route_index)));
}

/*
 * Kernel drop counters.  The client's UDP sockets are found by inode:
 * /proc/self/fd links name them "socket:[inode]", and /proc/net/udp{,6}
 * lists every UDP socket of the network namespace with its inode and its
 * drop counter (datagrams the kernel discarded because the receive queue
 * was full).  The receive path stays as it is, and every listener counts,
 * whatever its address family.
 */

static int
hb_socket_inodes(uint64_t *inodes, size_t max, size_t *n)
{
	DIR		*d;
	struct dirent	*de;
	char		 link[HB_LINK_MAX], num[24];
	ssize_t		 len;
	size_t		 dl;
	uint64_t	 ino;

	*n = 0;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && *n < max) {
		if (de->d_name[0] == '.')
			continue;
		len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (len < 10)		/* shorter than "socket:[0]" */
			continue;
		link[len] = '\0';
		if (strncmp(link, "socket:[", 8) != 0 || link[len - 1] != ']')
			continue;
		dl = (size_t)len - 9;
		if (dl >= sizeof(num))
			continue;
		memcpy(num, link + 8, dl);
		num[dl] = '\0';
		if (util_parse_u64(num, &ino) == 0)
			inodes[(*n)++] = ino;
	}
	closedir(d);
	return 0;
}

/* Copies whitespace-separated token `want` of `line` into out. */
static int
hb_field(const char *line, size_t len, int want, char *out, size_t outlen)
{
	size_t	i = 0, start;
	int	k = 0;

	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			return -1;
		start = i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		if (k++ == want) {
			if (i - start >= outlen)
				return -1;
			memcpy(out, line + start, i - start);
			out[i - start] = '\0';
			return 0;
		}
	}
}

/* Adds the drops of the listed inodes found in one /proc/net file. */
static int
hb_proc_drops(const char *path, const uint64_t *inodes, size_t n,
    uint64_t *drops, size_t *found)
{
	uint8_t		*data = NULL;
	const char	*line, *end;
	char		 tok[32];
	size_t		 len, i, ll;
	uint64_t	 ino, d;

	if (util_read_file(path, HB_PROC_NET_MAX, &data, &len) == -1)
		return -1;
	/* util_read_file() NUL-terminates; the first line is the heading. */
	line = (const char *)data;
	if ((end = strchr(line, '\n')) == NULL)
		goto out;
	for (line = end + 1; *line != '\0'; line = end + 1) {
		if ((end = strchr(line, '\n')) == NULL)
			end = line + strlen(line);
		ll = (size_t)(end - line);
		if (hb_field(line, ll, HB_FIELD_INODE, tok, sizeof(tok)) == -1 ||
		    util_parse_u64(tok, &ino) == -1)
			goto next;
		for (i = 0; i < n; i++)
			if (inodes[i] == ino)
				break;
		if (i == n || hb_field(line, ll, HB_FIELD_DROPS, tok,
		    sizeof(tok)) == -1 || util_parse_u64(tok, &d) == -1)
			goto next;
		*drops += d;
		(*found)++;
 next:
		if (*end == '\0')
			break;
	}
 out:
	free(data);
	return 0;
}

int
heartbeat_kernel_drops(uint64_t *drops)
{
	uint64_t	inodes[HB_SOCKETS_MAX], sum = 0;
	size_t		n, found = 0;
	int		ok4, ok6;

	if (hb_socket_inodes(inodes, HB_SOCKETS_MAX, &n) == -1 || n == 0)
		return -1;
	ok4 = hb_proc_drops("/proc/net/udp", inodes, n, &sum, &found);
	ok6 = hb_proc_drops("/proc/net/udp6", inodes, n, &sum, &found);
	if ((ok4 == -1 && ok6 == -1) || found == 0)
		return -1;
	*drops = sum;
	return 0;
}

static void
hb_sample_kernel(void)
{
	static struct log_limit	lim;
	uint64_t		drops;

	if (heartbeat_kernel_drops(&drops) == -1) {
		atomic_store(&hb_kdrops_known, 0);
		/* pcap input has no UDP sockets: not worth more than debug */
		log_limited(&lim, 3600, LOGL_DEBUG, "heartbeat: no UDP drop "
		    "counters of this process in /proc/net/udp; kernel_drops "
		    "not reported");
		return;
	}
	STATS_SET(kernel_drops, drops);
	atomic_store(&hb_kdrops_known, 1);
}

/* Waits `ms` or until stop; called and returns locked. */
static void
hb_wait(struct heartbeat *hb, int64_t ms)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!hb->stop)
		if (pthread_cond_timedwait(&hb->cv, &hb->mu, &ts) == ETIMEDOUT)
			break;
}

/*
 * The kit is idle since the last time a batch was sealed or delivered, or
 * the spool held something; a heartbeat is due `interval` after that.
 * Activity is seen at tick resolution, which is plenty for an interval of
 * seconds to minutes.
 */
static void *
hb_main(void *arg)
{
	struct heartbeat	*hb = arg;
	uint64_t		 sealed, acked, last_sealed = 0, last_acked = 0;
	uint64_t		 batches, bytes, oldest, interval;
	int64_t			 now, idle_since, next_kdrops;

	idle_since = next_kdrops = util_mono_ns();
	pthread_mutex_lock(&hb->mu);
	while (!hb->stop) {
		pthread_mutex_unlock(&hb->mu);
		now = util_mono_ns();
		if (now >= next_kdrops) {
			hb_sample_kernel();
			next_kdrops = now + HEARTBEAT_KDROPS_S * 1000000000LL;
		}
		sealed = STATS_GET(batches_sealed);
		acked = STATS_GET(acked_batches);
		spool_depth(hb->spool, &batches, &bytes, &oldest);
		interval = atomic_load(&hb->interval_s);
		if (sealed != last_sealed || acked != last_acked ||
		    batches > 0 || interval == 0) {
			last_sealed = sealed;
			last_acked = acked;
			idle_since = now;
		} else if (now - idle_since >=
		    (int64_t)interval * 1000000000LL) {
			sealer_heartbeat(hb->sealer);
			idle_since = now;
			last_sealed = STATS_GET(batches_sealed);
		}
		pthread_mutex_lock(&hb->mu);
		hb_wait(hb, HEARTBEAT_TICK_MS);
	}
	pthread_mutex_unlock(&hb->mu);
	return NULL;
}

int
heartbeat_start(struct heartbeat **out, struct sealer *se, struct spool *s,
    uint64_t interval_s)
{
	struct heartbeat	*hb;
	pthread_condattr_t	 ca;
	int			 e;

	if ((hb = calloc(1, sizeof(*hb))) == NULL) {
		log_error("heartbeat: out of memory");
		return -1;
	}
	pthread_mutex_init(&hb->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&hb->interval_s, interval_s);
	hb->sealer = se;
	hb->spool = s;
	/* The first batch already reports kernel drops. */
	hb_sample_kernel();
	if ((e = pthread_create(&hb->thread, NULL, hb_main, hb)) != 0) {
		log_error("heartbeat: cannot start thread: %s", strerror(e));
		pthread_cond_destroy(&hb->cv);
		pthread_mutex_destroy(&hb->mu);
		free(hb);
		return -1;
	}
	*out = hb;
	return 0;
}

void
heartbeat_set_interval(struct heartbeat *hb, uint64_t interval_s)
{
	if (hb != NULL)
		atomic_store(&hb->interval_s, interval_s);
}

void
heartbeat_stop(struct heartbeat *hb)
{
	if (hb == NULL)
		return;
	pthread_mutex_lock(&hb->mu);
	hb->stop = 1;
	pthread_cond_signal(&hb->cv);
	pthread_mutex_unlock(&hb->mu);
	pthread_join(hb->thread, NULL);
	pthread_cond_destroy(&hb->cv);
	pthread_mutex_destroy(&hb->mu);
	free(hb);
}
