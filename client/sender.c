/*
 * sender.c: oldest batch first, one at a time, until acknowledged; split
 * what is too big, and find another way out when this one fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include "batcher.h"
#include "heartbeat.h"
#include "post.h"
#include "route.h"
#include "sender.h"
#include "split.h"
#include "spool.h"
#include "stats.h"

#define SENDER_BACKLOG		10	/* batches: report drain progress */
#define SENDER_PROGRESS_S	10	/* at most one progress line per */
#define SENDER_LOG_S		30	/* one failure line per kind per */
#define SENDER_BATCH_FLOOR	(4 * 1024)	/* smallest batch_max_bytes */

/* A private copy of the settings: the config struct may be freed. */
struct sender_conf {
	char			*gateway_url;
	char			*proxy;
	char			*ca_file;
	char			*pinned_pubkey;
	char			*plain_http_url;
	char			*state_dir;
	struct sender_params	 p;	/* strings point at the copies above */
};

struct sender {
	pthread_t		 thread;
	int			 started;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 kicked;	/* a batch arrived */
	int			 stop;
	struct sender_conf	*pending;	/* reload waiting to apply */
	_Atomic int		 abort_flag;	/* read by libcurl callbacks */

	/* sender thread only */
	struct spool		*spool;
	struct post		*post;
	struct sender_conf	*conf;
	uint8_t			 key[WIRE_KEY_LEN];
	struct buf		 batch;
	struct route		*route;
	struct split		 split;
	struct batcher		*batcher;
	size_t			 learned_max;	/* batch size after 413s */
	unsigned int		 attempt;	/* failures of this batch */
	uint64_t		 failures;	/* consecutive, any batch */
	enum post_result	 last_result;	/* of the last failure logged */
	long			 last_status;

	/* drain progress */
	int64_t			 prog_ns;
	uint64_t		 prog_batches, prog_bytes;
	uint64_t		 acked_bytes;
};

static void
sender_conf_free(struct sender_conf *c)
{
	if (c == NULL)
		return;
	free(c->gateway_url);
	free(c->proxy);
	free(c->ca_file);
	free(c->pinned_pubkey);
	free(c->plain_http_url);
	free(c->state_dir);
	free(c);
}

static struct sender_conf *
sender_conf_dup(const struct sender_params *p)
{
	struct sender_conf	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->p = *p;
	if ((c->gateway_url = strdup(p->post.gateway_url)) == NULL ||
	    (c->proxy = strdup(p->post.proxy)) == NULL ||
	    (c->ca_file = strdup(p->post.ca_file)) == NULL ||
	    (c->pinned_pubkey = strdup(p->post.pinned_pubkey)) == NULL ||
	    (c->plain_http_url = strdup(p->route.plain_http_url ?
	    p->route.plain_http_url : "")) == NULL ||
	    (p->route.state_dir != NULL &&
	    (c->state_dir = strdup(p->route.state_dir)) == NULL)) {
		sender_conf_free(c);
		return NULL;
	}
	c->p.post.gateway_url = c->gateway_url;
	c->p.post.proxy = c->proxy;
	c->p.post.ca_file = c->ca_file;
	c->p.post.pinned_pubkey = c->pinned_pubkey;
	c->p.route.plain_http_url = c->plain_http_url;
	c->p.route.state_dir = c->state_dir;
	return c;
}

/*
 * Full jitter: uniformly random in [0, min(max, initial * factor^attempt)],
 * in milliseconds, so that many kits coming back after an outage spread
 * their retries instead of arriving together.
 */
static uint64_t
sender_backoff_ms(const struct sender_params *p, unsigned int attempt)
{
	uint64_t	cap = p->retry_initial;
	unsigned int	i;

	for (i = 0; i < attempt && cap < p->retry_max; i++)
		cap *= p->retry_factor;
	if (cap > p->retry_max)
		cap = p->retry_max;
	cap *= 1000;
	if (cap >= UINT32_MAX)
		cap = UINT32_MAX - 1;
	return randombytes_uniform((uint32_t)cap + 1);
}

/*
 * Waits until `ms` have passed, or stop, or a reload.  With `for_batch`
 * the wait also ends when the sealer spools a new batch.  Called locked.
 */
static void
sender_wait(struct sender *sd, uint64_t ms, int for_batch)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!sd->stop && sd->pending == NULL &&
	    !(for_batch && sd->kicked)) {
		if (pthread_cond_timedwait(&sd->cv, &sd->mu, &ts) == ETIMEDOUT)
			break;
	}
	sd->kicked = 0;
}

/*
 * While a backlog drains, say how big it is, then how fast it goes and when
 * it will be empty, at most every SENDER_PROGRESS_S.
 */
static void
sender_progress(struct sender *sd)
{
	uint64_t	batches, bytes, oldest, db, dbytes;
	int64_t		now = util_mono_ns();
	double		secs, rate;

	spool_depth(sd->spool, &batches, &bytes, &oldest);
	if (batches <= SENDER_BACKLOG) {
		if (sd->prog_ns != 0)
			log_info("sender: backlog down to %" PRIu64 " batches",
			    batches);
		sd->prog_ns = 0;
		return;
	}
	if (sd->prog_ns == 0)
		log_info("sender: backlog of %" PRIu64 " batches (%" PRIu64
		    " bytes) to send", batches, bytes);
	else if (now - sd->prog_ns <
	    (int64_t)SENDER_PROGRESS_S * 1000000000LL)
		return;
	else {
		secs = (double)(now - sd->prog_ns) / 1e9;
		db = STATS_GET(acked_batches) - sd->prog_batches;
		dbytes = sd->acked_bytes - sd->prog_bytes;
		rate = (double)db / secs;
		/* with nothing delivered, the failure lines say why */
		if (db > 0)
			log_info("sender: backlog of %" PRIu64 " batches (%"
			    PRIu64 " bytes) draining at %.1f batches/s (%.0f "
			    "KiB/s); empty in about %.0f s", batches, bytes,
			    rate, (double)dbytes / secs / 1024,
			    (double)batches / rate);
	}
	sd->prog_ns = now;
	sd->prog_batches = STATS_GET(acked_batches);
	sd->prog_bytes = sd->acked_bytes;
}

static void
sender_delivered(struct sender *sd, const struct spool_item *it,
    const struct post_outcome *o)
{
	if (sd->failures > 0)
		log_info("sender: gateway accepts batches again after %"
		    PRIu64 " failed attempts", sd->failures);
	sd->failures = 0;
	sd->last_result = POST_DELIVERED;
	sd->last_status = 0;
	sd->attempt = 0;
	spool_remove(sd->spool, it->seq);
	STATS_INC(acked_batches);
	STATS_ADD(acked_datagrams, it->count);
	if (o->ack == WIRE_ACK_DUP)
		STATS_INC(acked_dup);
	STATS_SET(last_success_unix, time(NULL));
	STATS_SET(backoff_s, 0);
	STATS_SET(retries_since_success, 0);
	/* a valid ack proves the answer, and so its Date, is the gateway's */
	heartbeat_note_date(o->date_unix, util_real_us());
	sd->acked_bytes += it->bytes;
	log_debug("sender: batch %" PRIu64 " delivered (%s)", it->seq,
	    o->ack == WIRE_ACK_DUP ? "dup" : "new");
}

/*
 * Logs a failed POST: a failure unlike the last one (another outcome or
 * status) always gets its line, repeats of it at most every SENDER_LOG_S.
 */
static void
sender_log(struct sender *sd, const struct post_outcome *o,
    enum log_level level, const char *fmt, ...)
{
	static struct log_limit	 lim;
	char			 line[768];
	va_list			 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/*
	 * A new kind of failure restarts the limiter, so its first line
	 * passes and its repeats wait SENDER_LOG_S from there.  Only the
	 * sender thread touches `lim`.
	 */
	if (o->result != sd->last_result || o->status != sd->last_status) {
		sd->last_result = o->result;
		sd->last_status = o->status;
		lim.last_ns = 0;
		lim.suppressed = 0;
	}
	log_limited(&lim, SENDER_LOG_S, level, "%s", line);
}

/* Decides the delay after a failed POST and logs the failure. */
static uint64_t
sender_failed(struct sender *sd, const struct spool_item *it,
    const struct post_outcome *o)
{
	const struct sender_params *p = &sd->conf->p;
	char			 status[32], reason[320];
	uint64_t		 ms;

	if (o->status != 0)
		snprintf(status, sizeof(status), "HTTP %ld", o->status);
	else
		snprintf(status, sizeof(status), "no HTTP answer");
	sd->failures++;
	STATS_INC(posts_failed);
	STATS_SET(retries_since_success, sd->failures);

	switch (o->result) {
	case POST_REJECTED:
		/* the spool logs the move itself */
		snprintf(reason, sizeof(reason), "gateway rejected it for "
		    "good (%s: %s)", status, o->reason);
		spool_quarantine(sd->spool, it->seq, reason);
		sd->attempt = 0;
		return 0;
	case POST_STUCK:
		ms = p->retry_max * 1000;
		sender_log(sd, o, LOGL_ERROR, "sender: gateway refuses batch %"
		    PRIu64 " (%s: %s); check gateway_url, client_id, key_file "
		    "and the gateway's limits; retrying in %" PRIu64 " s",
		    it->seq, status, o->reason, ms / 1000);
		break;
	case POST_RETRY_AFTER:
		ms = o->retry_after_s < 1 ? 1000 : o->retry_after_s * 1000;
		if (ms > p->retry_max * 1000)
			ms = p->retry_max * 1000;
		sender_log(sd, o, LOGL_WARN, "sender: batch %" PRIu64 " not "
		    "delivered (%s: %s); retrying after %" PRIu64 " s as asked",
		    it->seq, status, o->reason, ms / 1000);
		break;
	default:
		ms = sender_backoff_ms(p, sd->attempt);
		sender_log(sd, o, LOGL_WARN, "sender: batch %" PRIu64 " not "
		    "delivered (%s: %s); retry %u in %.1f s", it->seq, status,
		    o->reason, sd->attempt + 1, (double)ms / 1000);
		break;
	}
	sd->attempt++;
	STATS_INC(retries);
	STATS_SET(backoff_s, (ms + 999) / 1000);
	return ms;
}

/* The batch size for new batches: what 413s taught, within the way's cap. */
static void
sender_batch_size(struct sender *sd)
{
	size_t	eff = sd->learned_max, cap = route_batch_cap(sd->route);

	if (cap != 0 && cap < eff)
		eff = cap;
	if (sd->batcher != NULL)
		batcher_set_max_bytes(sd->batcher, eff);
	STATS_SET(batch_max_bytes, eff);
}

/*
 * A batch with `raw_len` bytes of content was too big: new batches close
 * at half of that (never below SENDER_BATCH_FLOOR), unless they already
 * do.  Older, bigger batches still in the spool do not lower it further.
 */
static void
sender_shrink(struct sender *sd, uint32_t raw_len)
{
	size_t	want = raw_len / 2;

	if (want < SENDER_BATCH_FLOOR)
		want = SENDER_BATCH_FLOOR;
	if (want >= sd->learned_max)
		return;
	log_warn("sender: new batches close at %zu bytes instead of %zu: a "
	    "batch of %u bytes was too big for the gateway or a proxy on the "
	    "way", want, sd->learned_max, (unsigned int)raw_len);
	sd->learned_max = want;
	STATS_INC(batch_size_reduced);
	sender_batch_size(sd);
}

/*
 * Seals the head batch (in sd->batch) again as `n` pieces and puts them in
 * its place in the spool.  -1 with a reason.
 */
static int
sender_reseal(struct sender *sd, const struct spool_item *it, size_t n,
    struct spool_piece *pieces, char *why, size_t whylen)
{
	if (split_batch(&sd->split, sd->spool, sd->batch.data, sd->batch.len,
	    n, pieces, why, whylen) == -1)
		return -1;
	if (spool_replace(sd->spool, it, pieces, n) == -1) {
		snprintf(why, whylen, "the spool cannot store the result");
		return -1;
	}
	return 0;
}

/*
 * 413: cut the batch in two in its place in the spool and send the first
 * half at once; a batch of one datagram cannot be cut and goes to
 * quarantine.
 */
static uint64_t
sender_too_big(struct sender *sd, const struct spool_item *it,
    const struct post_outcome *o)
{
	static struct log_limit	 lim;
	struct spool_piece	 pieces[2];
	struct wire_header	 h;
	char			 why[160], reason[400];
	uint64_t		 ms;

	sd->failures++;
	STATS_INC(posts_failed);
	STATS_SET(retries_since_success, sd->failures);
	if (wire_parse_header(sd->batch.data, sd->batch.len, &h) == WIRE_OK)
		sender_shrink(sd, h.raw_len);

	if (it->count < 2) {
		STATS_INC(unsplittable);
		log_error("sender: batch %" PRIu64 " (%u datagram%s, %zu bytes) "
		    "is too big for the gateway or a proxy on the way (HTTP "
		    "413: %s) and cannot be split; raise the limit "
		    "(client_max_body_size of nginx, LimitRequestBody of "
		    "Apache, max_body_bytes of the gateway)", it->seq,
		    (unsigned int)it->count, it->count == 1 ? "" : "s",
		    it->bytes, o->reason);
		snprintf(reason, sizeof(reason), "too big to deliver (HTTP "
		    "413: %s) and holds %u datagram%s", o->reason,
		    (unsigned int)it->count, it->count == 1 ? "" : "s");
		spool_quarantine(sd->spool, it->seq, reason);
		sd->attempt = 0;
		return 0;
	}
	if (sender_reseal(sd, it, 2, pieces, why, sizeof(why)) == -1) {
		ms = sender_backoff_ms(&sd->conf->p, sd->attempt++);
		log_limited(&lim, SENDER_LOG_S, LOGL_ERROR, "sender: batch %"
		    PRIu64 " is too big (HTTP 413) but cannot be split: %s; "
		    "trying again in %.1f s", it->seq, why, (double)ms / 1000);
		spool_release(sd->spool, it->seq);
		STATS_SET(backoff_s, (ms + 999) / 1000);
		return ms;
	}
	STATS_INC(splits);
	log_warn("sender: batch %" PRIu64 " (%u datagrams, %zu bytes) is too "
	    "big for the gateway or a proxy on the way (HTTP 413: %s); split "
	    "into batches %" PRIu64 " (%u datagrams, %zu bytes) and %" PRIu64
	    " (%u, %zu bytes)", it->seq, (unsigned int)it->count, it->bytes,
	    o->reason, pieces[0].seq, (unsigned int)pieces[0].count,
	    pieces[0].len, pieces[1].seq, (unsigned int)pieces[1].count,
	    pieces[1].len);
	sd->attempt = 0;
	return 0;
}

/*
 * The head batch's number is far below what was already posted (batches
 * were split ahead of it): seal it again with a fresh number, so that the
 * gateway's duplicate window never takes it for an old one.  0 if done,
 * 1 if it cannot be (post it as it is), -1 on failure (try again later).
 */
static int
sender_renumber(struct sender *sd, const struct spool_item *it)
{
	static struct log_limit	 lim;
	struct spool_piece	 piece;
	char			 why[160];

	if (strlen(it->path) >= SPOOL_PATH_MAX) {
		/* cannot name it; within the window unless far behind */
		log_limited(&lim, SENDER_LOG_S, LOGL_WARN, "sender: batch %"
		    PRIu64 " was split or renumbered too often to renumber "
		    "it again; sending it as it is", it->seq);
		return 1;
	}
	if (sender_reseal(sd, it, 1, &piece, why, sizeof(why)) == -1) {
		log_limited(&lim, SENDER_LOG_S, LOGL_ERROR, "sender: cannot "
		    "seal batch %" PRIu64 " again with a fresh number: %s",
		    it->seq, why);
		return -1;
	}
	STATS_INC(renumbered);
	log_debug("sender: batch %" PRIu64 " sealed again as %" PRIu64 " "
	    "(numbers were handed out to split batches meanwhile)", it->seq,
	    piece.seq);
	return 0;
}

/* Points the HTTP handle at the route's current way. */
static void
sender_use_way(struct sender *sd)
{
	struct post_params	pp;

	route_post_params(sd->route, &pp);
	if (post_configure(sd->post, &pp) == -1)
		log_error("sender: way %s cannot be set up; trying it anyway",
		    route_way_name(route_current(sd->route)));
	sender_batch_size(sd);
}

static void
sender_apply(struct sender *sd, struct sender_conf *c)
{
	struct route		*r;
	struct post_params	 pp;

	if (route_new(&r, &c->p.route, &c->p.post) == -1) {
		log_error("sender: new route settings refused; keeping the "
		    "old");
		sender_conf_free(c);
		return;
	}
	route_post_params(r, &pp);
	if (post_configure(sd->post, &pp) == -1) {
		log_error("sender: new HTTP settings refused; keeping the old");
		route_free(r);
		/* the handle may hold some new options: set the old again */
		sender_use_way(sd);
		sender_conf_free(c);
		return;
	}
	route_free(sd->route);
	sd->route = r;
	split_set_level(&sd->split, c->p.zlevel);
	sender_conf_free(sd->conf);
	sd->conf = c;
	sd->attempt = 0;
	sender_batch_size(sd);
}

/* Posts the head batch; returns the delay before the next attempt. */
static uint64_t
sender_post(struct sender *sd, struct spool_item *it, int *aborted)
{
	struct post_outcome	o;
	uint64_t		ms = 0;

	if (spool_posting(sd->spool, it) == -1) {
		/* cannot record it: sending might confuse a later restart */
		spool_release(sd->spool, it->seq);
		ms = sender_backoff_ms(&sd->conf->p, sd->attempt++);
		STATS_SET(backoff_s, (ms + 999) / 1000);
		return ms;
	}
	sender_progress(sd);
	post_batch(sd->post, sd->batch.data, sd->batch.len, sd->key, &o);
	if (o.result == POST_ABORTED) {
		spool_release(sd->spool, it->seq);
		*aborted = 1;
		return 0;
	}
	STATS_INC(posts);
	if (route_outcome(sd->route, &o)) {
		sender_use_way(sd);
		/* a new way gets a quick try, until all of them failed */
		if (!route_exhausted(sd->route))
			sd->attempt = 0;
	}
	if (o.result == POST_DELIVERED)
		sender_delivered(sd, it, &o);
	else if (o.result == POST_TOO_BIG)
		ms = sender_too_big(sd, it, &o);
	else {
		ms = sender_failed(sd, it, &o);
		spool_release(sd->spool, it->seq);
	}
	return ms;
}

/* One step with the head batch: renumber it first if it must be, post it. */
static uint64_t
sender_head(struct sender *sd, struct spool_item *it, int *aborted)
{
	if (it->renumber) {
		switch (sender_renumber(sd, it)) {
		case 0:
			return 0;	/* its renumbered copy is the new head */
		case -1:
			spool_release(sd->spool, it->seq);
			return sender_backoff_ms(&sd->conf->p, sd->attempt++);
		default:
			break;		/* cannot be renumbered: post as it is */
		}
	}
	return sender_post(sd, it, aborted);
}

static void *
sender_main(void *arg)
{
	struct sender		*sd = arg;
	struct sender_conf	*c;
	struct spool_item	 it;
	uint64_t		 ms;
	int			 r, aborted = 0;

	pthread_mutex_lock(&sd->mu);
	while (!sd->stop) {
		c = sd->pending;
		sd->pending = NULL;
		pthread_mutex_unlock(&sd->mu);
		if (c != NULL)
			sender_apply(sd, c);

		ms = 0;
		if ((r = spool_oldest(sd->spool, &sd->batch, &it)) == 1) {
			ms = sender_head(sd, &it, &aborted);
			if (aborted) {
				pthread_mutex_lock(&sd->mu);
				break;
			}
		}

		pthread_mutex_lock(&sd->mu);
		if (r == 0)
			sender_wait(sd, UINT32_MAX, 1);	/* until a batch */
		else if (ms > 0) {
			sender_wait(sd, ms, 0);
			STATS_SET(backoff_s, 0);
		}
	}
	pthread_mutex_unlock(&sd->mu);
	return NULL;
}

int
sender_start(struct sender **out, struct spool *s, const uint8_t *key,
    size_t sealed_max, const struct sender_params *p)
{
	struct sender		*sd;
	struct post_params	 pp;
	pthread_condattr_t	 ca;
	int			 e;

	if ((sd = calloc(1, sizeof(*sd))) == NULL) {
		log_error("sender: out of memory");
		return -1;
	}
	pthread_mutex_init(&sd->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sd->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&sd->abort_flag, 0);
	sd->spool = s;
	memcpy(sd->key, key, WIRE_KEY_LEN);
	sd->batcher = p->batcher;
	sd->learned_max = p->batch_max_bytes;
	if (buf_init(&sd->batch, 0, sealed_max) == -1 ||
	    (sd->conf = sender_conf_dup(p)) == NULL ||
	    split_init(&sd->split, sd->key, p->zlevel, p->raw_max,
	    sealed_max) == -1) {
		log_error("sender: out of memory");
		goto fail;
	}
	if (route_new(&sd->route, &sd->conf->p.route, &sd->conf->p.post) == -1)
		goto fail;
	route_post_params(sd->route, &pp);
	if (post_new(&sd->post, &pp, &sd->abort_flag) == -1)
		goto fail;
	sender_batch_size(sd);
	if ((e = pthread_create(&sd->thread, NULL, sender_main, sd)) != 0) {
		log_error("sender: cannot start thread: %s", strerror(e));
		goto fail;
	}
	sd->started = 1;
	*out = sd;
	return 0;
 fail:
	sender_free(sd);
	return -1;
}

void
sender_notify(void *arg)
{
	struct sender	*sd = arg;

	pthread_mutex_lock(&sd->mu);
	sd->kicked = 1;
	pthread_cond_signal(&sd->cv);
	pthread_mutex_unlock(&sd->mu);
}

int
sender_reconfigure(struct sender *sd, const struct sender_params *p)
{
	struct sender_conf	*c;

	if ((c = sender_conf_dup(p)) == NULL) {
		log_error("sender: out of memory");
		return -1;
	}
	pthread_mutex_lock(&sd->mu);
	sender_conf_free(sd->pending);
	sd->pending = c;
	pthread_cond_signal(&sd->cv);
	pthread_mutex_unlock(&sd->mu);
	return 0;
}

void
sender_stop(struct sender *sd)
{
	if (sd == NULL || !sd->started)
		return;
	pthread_mutex_lock(&sd->mu);
	sd->stop = 1;
	atomic_store(&sd->abort_flag, 1);
	pthread_cond_signal(&sd->cv);
	pthread_mutex_unlock(&sd->mu);
	pthread_join(sd->thread, NULL);
	sd->started = 0;
}

void
sender_free(struct sender *sd)
{
	if (sd == NULL)
		return;
	sender_stop(sd);
	post_free(sd->post);
	route_free(sd->route);
	split_free(&sd->split);
	sender_conf_free(sd->conf);
	sender_conf_free(sd->pending);
	buf_free(&sd->batch);
	sodium_memzero(sd->key, sizeof(sd->key));
	pthread_cond_destroy(&sd->cv);
	pthread_mutex_destroy(&sd->mu);
	free(sd);
}
