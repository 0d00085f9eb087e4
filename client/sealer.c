/*
 * sealer.c: closed batch -> sequence number -> sealed bytes -> spool.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buf.h"
#include "health.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include "batcher.h"
#include "heartbeat.h"
#include "sealer.h"
#include "spool.h"
#include "stats.h"

#define SEALER_THREADS_MAX	8

/* One sealing thread and the sealed batch it builds. */
struct sealer_worker {
	struct sealer	*se;
	pthread_t	 thread;
	struct buf	 out;
};

/*
 * Compressing is most of the client's work, so several threads compress
 * batches at once; numbering and spooling stay in the order the batches
 * closed.  Each batch carries the ticket batcher_take() gave it, and a
 * thread commits its batch (sequence number, encryption, spool) only when
 * `next_turn` reaches that ticket.
 */
struct sealer {
	struct batcher	*batcher;
	struct spool	*spool;
	char		 client_id[WIRE_CLIENT_ID_MAX + 1];
	uint8_t		 key[WIRE_KEY_LEN];
	_Atomic int	 zlevel;
	_Atomic int	 zlevel_busy;	/* while other batches are in hand */
	_Atomic int	 compressing;	/* threads in sealer_prepare() now */
	_Atomic int	 codec;		/* enum wire_codec */
	void		(*notify)(void *);
	void		*notify_arg;
	/*
	 * Held from taking a sequence number until the batch is spooled, by
	 * the committing thread or the heartbeat thread: numbers reach the
	 * spool in order.
	 */
	pthread_mutex_t	 seal_mu;
	pthread_cond_t	 turn_cv;	/* next_turn moved */
	uint64_t	 next_turn;	/* ticket of the next batch to commit */
	struct buf	 hb_out;	/* a heartbeat's sealed batch */
	int		 nworkers;	/* threads started */
	struct sealer_worker workers[SEALER_THREADS_MAX];
};

/*
 * The costly half of sealing, outside any lock: health block, transform,
 * deflate.  The content starts with a fresh health block; `bt` NULL is a
 * heartbeat (no datagrams).
 */
static enum wire_err
sealer_prepare(struct sealer *se, const struct batch *bt, int zlevel,
    struct buf *out, uint64_t *created_us)
{
	struct wire_seal_args	 a;
	struct health		 h;
	uint8_t			 hblock[HEALTH_MAX];
	size_t			 hlen = 0;
	enum wire_err		 we;

	/* HEALTH_MAX always fits; a batch without health is still good */
	heartbeat_snapshot(se->spool, &h);
	if (health_encode(&h, hblock, sizeof(hblock), &hlen) == -1)
		hlen = 0;
	memset(&a, 0, sizeof(a));
	a.client_id = se->client_id;
	a.seq = 0;		/* wire_seal_finish() writes the real one */
	a.created_us = *created_us = util_real_us();
	a.flags = bt == NULL ? WIRE_FLAG_HEARTBEAT : 0;
	a.codec = (uint8_t)atomic_load(&se->codec);
	a.zlevel = zlevel;
	a.health = hlen > 0 ? hblock : NULL;
	a.health_len = hlen;
	if (bt != NULL) {
		a.entries = bt->entries.data;
		a.entries_len = bt->entries.len;
		a.count = bt->count;
	}
	a.key = se->key;
	we = wire_seal_prepare(&a, out);
	/*
	 * The transform adds a byte per datagram before deflate: content
	 * that does not compress at all may fit the ceiling only as codec 1.
	 */
	if (we == WIRE_ETOOBIG && a.codec == WIRE_CODEC_NFPACK) {
		a.codec = WIRE_CODEC_ZLIB;
		we = wire_seal_prepare(&a, out);
	}
	return we;
}

/*
 * The ordered half, under seal_mu: a sequence number, encryption, the
 * spool.  `we` is what sealer_prepare() returned.  0 if the batch is in
 * the spool.
 */
static int
sealer_commit(struct sealer *se, enum wire_err we, uint32_t count,
    uint64_t created_us, struct buf *out)
{
	static struct log_limit	 lim;
	uint64_t		 seq;

	if (spool_next_seq(se->spool, &seq) == -1) {
		/* logged by the spool; without a number nothing can go out */
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		return -1;
	}
	if (we == WIRE_OK)
		we = wire_seal_finish(out, seq, se->key);
	if (we != WIRE_OK) {
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		log_limited(&lim, 10, LOGL_ERROR, "sealer: cannot seal batch "
		    "%" PRIu64 " of %u datagrams: %s; dropped", seq,
		    (unsigned int)count, wire_strerror(we));
		return -1;
	}
	STATS_INC(batches_sealed);
	STATS_ADD(datagrams_sealed, count);
	if (count == 0) {
		STATS_INC(heartbeats);
		log_debug("sealer: heartbeat batch %" PRIu64 ": %zu bytes", seq,
		    out->len);
	} else
		log_debug("sealer: batch %" PRIu64 ": %u datagrams -> %zu "
		    "bytes", seq, (unsigned int)count, out->len);
	return spool_put(se->spool, seq, out->data, out->len, count,
	    created_us);
}

/* One batch from the queue: prepare now, commit in ticket order. */
static void
sealer_seal_batch(struct sealer_worker *w, const struct batch *bt)
{
	struct sealer	*se = w->se;
	enum wire_err	 we = WIRE_OK;
	uint64_t	 created_us = 0;
	int		 zlevel, rc = -1;

	/*
	 * Another batch already waiting, or being compressed by another
	 * thread, means batches close faster than one thread compresses
	 * them at zlib_level: this one gets the faster level.  (Checking
	 * the queue alone is not enough: with a thread per batch the queue
	 * stays empty while every core compresses at the slow level.)
	 */
	if (bt->count > 0) {
		int others = atomic_fetch_add(&se->compressing, 1);

		zlevel = others > 0 || batcher_queued(se->batcher) > 0 ?
		    atomic_load(&se->zlevel_busy) : atomic_load(&se->zlevel);
		if (zlevel != atomic_load(&se->zlevel))
			STATS_INC(batches_sealed_busy);
		we = sealer_prepare(se, bt, zlevel, &w->out, &created_us);
		atomic_fetch_sub(&se->compressing, 1);
	}

	pthread_mutex_lock(&se->seal_mu);
	while (se->next_turn != bt->ticket)
		pthread_cond_wait(&se->turn_cv, &se->seal_mu);
	if (bt->count > 0)
		rc = sealer_commit(se, we, bt->count, created_us, &w->out);
	se->next_turn++;
	pthread_cond_broadcast(&se->turn_cv);
	pthread_mutex_unlock(&se->seal_mu);
	if (rc == 0 && se->notify != NULL)
		se->notify(se->notify_arg);
}

static void *
sealer_main(void *arg)
{
	struct sealer_worker	*w = arg;
	struct batch		*bt;

	while (batcher_take(w->se->batcher, &bt) == 1) {
		sealer_seal_batch(w, bt);
		batcher_release(w->se->batcher, bt);
	}
	return NULL;
}

int
sealer_start(struct sealer **out, struct batcher *b, struct spool *s,
    const struct sealer_params *p)
{
	struct sealer	*se;
	int		 e, i, n;

	if ((se = calloc(1, sizeof(*se))) == NULL) {
		log_error("sealer: out of memory");
		return -1;
	}
	pthread_mutex_init(&se->seal_mu, NULL);
	pthread_cond_init(&se->turn_cv, NULL);
	se->batcher = b;
	se->spool = s;
	if (util_snprintf(se->client_id, sizeof(se->client_id), "%s",
	    p->client_id) == -1)
		goto fail;
	memcpy(se->key, p->key, WIRE_KEY_LEN);
	atomic_init(&se->zlevel, p->zlevel);
	atomic_init(&se->zlevel_busy, p->zlevel_busy);
	atomic_init(&se->codec, p->codec == WIRE_CODEC_NONE ? WIRE_CODEC_ZLIB :
	    p->codec);
	se->notify = p->notify;
	se->notify_arg = p->notify_arg;
	n = p->threads < 1 ? 1 : p->threads > SEALER_THREADS_MAX ?
	    SEALER_THREADS_MAX : p->threads;
	/* Buffers at their ceiling; only the pages a batch fills count. */
	if (buf_init(&se->hb_out, p->sealed_max, p->sealed_max) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		se->workers[i].se = se;
		if (buf_init(&se->workers[i].out, p->sealed_max,
		    p->sealed_max) == -1)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((e = pthread_create(&se->workers[i].thread, NULL,
		    sealer_main, &se->workers[i])) != 0) {
			log_error("sealer: cannot start thread: %s",
			    strerror(e));
			break;
		}
		se->nworkers++;
	}
	if (se->nworkers == 0) {
		sealer_free(se);
		return -1;
	}
	*out = se;
	return 0;
 fail:
	log_error("sealer: out of memory");
	sealer_free(se);
	return -1;
}

void
sealer_set_level(struct sealer *se, int zlevel, int zlevel_busy)
{
	atomic_store(&se->zlevel, zlevel);
	atomic_store(&se->zlevel_busy, zlevel_busy);
}

void
sealer_set_codec(struct sealer *se, int codec)
{
	atomic_store(&se->codec, codec);
}

int
sealer_heartbeat(struct sealer *se)
{
	enum wire_err	 we;
	uint64_t	 created_us;
	int		 rc;

	pthread_mutex_lock(&se->seal_mu);
	we = sealer_prepare(se, NULL, atomic_load(&se->zlevel), &se->hb_out,
	    &created_us);
	rc = sealer_commit(se, we, 0, created_us, &se->hb_out);
	pthread_mutex_unlock(&se->seal_mu);
	if (rc == 0 && se->notify != NULL)
		se->notify(se->notify_arg);
	return rc;
}

int
sealer_join(struct sealer *se, int timeout_s)
{
	struct timespec	ts;
	int		e, i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_s;
	for (i = 0; i < se->nworkers; i++) {
		if ((e = pthread_timedjoin_np(se->workers[i].thread, NULL,
		    &ts)) != 0) {
			log_error("sealer: still writing after %d s (%s); "
			    "batches not yet spooled are lost", timeout_s,
			    strerror(e));
			return -1;
		}
	}
	return 0;
}

void
sealer_free(struct sealer *se)
{
	if (se == NULL)
		return;
	for (int i = 0; i < SEALER_THREADS_MAX; i++)
		buf_free(&se->workers[i].out);
	buf_free(&se->hb_out);
	pthread_cond_destroy(&se->turn_cv);
	pthread_mutex_destroy(&se->seal_mu);
	sodium_memzero(se->key, sizeof(se->key));
	free(se);
}
