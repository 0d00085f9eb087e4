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

struct sealer {
	pthread_t	 thread;
	struct batcher	*batcher;
	struct spool	*spool;
	char		 client_id[WIRE_CLIENT_ID_MAX + 1];
	uint8_t		 key[WIRE_KEY_LEN];
	_Atomic int	 zlevel;
	_Atomic int	 codec;		/* enum wire_codec */
	void		(*notify)(void *);
	void		*notify_arg;
	/*
	 * Held from taking a sequence number until the batch is spooled, by
	 * this thread and by the heartbeat thread: numbers reach the spool
	 * in order, and `out` has one user at a time.
	 */
	pthread_mutex_t	 seal_mu;
	struct buf	 out;		/* one sealed batch */
};

/*
 * Numbers, seals and spools one batch: the datagrams of `bt`, or with `bt`
 * NULL a heartbeat (no datagrams).  Either way the content starts with a
 * fresh health block.  0 if the batch is in the spool.
 */
static int
sealer_seal(struct sealer *se, const struct batch *bt)
{
	static struct log_limit	 lim;
	struct wire_seal_args	 a;
	struct health		 h;
	uint8_t			 hblock[HEALTH_MAX];
	size_t			 hlen = 0;
	enum wire_err		 we;
	uint64_t		 seq;
	uint32_t		 count = bt != NULL ? bt->count : 0;
	int			 rc = -1;

	pthread_mutex_lock(&se->seal_mu);
	if (spool_next_seq(se->spool, &seq) == -1) {
		/* logged by the spool; without a number nothing can go out */
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		goto out;
	}
	/* HEALTH_MAX always fits; a batch without health is still good */
	heartbeat_snapshot(se->spool, &h);
	if (health_encode(&h, hblock, sizeof(hblock), &hlen) == -1)
		hlen = 0;
	memset(&a, 0, sizeof(a));
	a.client_id = se->client_id;
	a.seq = seq;
	a.created_us = util_real_us();
	a.flags = bt == NULL ? WIRE_FLAG_HEARTBEAT : 0;
	a.codec = (uint8_t)atomic_load(&se->codec);
	a.zlevel = atomic_load(&se->zlevel);
	a.health = hlen > 0 ? hblock : NULL;
	a.health_len = hlen;
	if (bt != NULL) {
		a.entries = bt->entries.data;
		a.entries_len = bt->entries.len;
	}
	a.count = count;
	a.key = se->key;
	we = wire_seal(&a, &se->out);
	/*
	 * The transform adds a byte per datagram before deflate: content
	 * that does not compress at all may fit the ceiling only as codec 1.
	 */
	if (we == WIRE_ETOOBIG && a.codec == WIRE_CODEC_NFPACK) {
		a.codec = WIRE_CODEC_ZLIB;
		we = wire_seal(&a, &se->out);
	}
	if (we != WIRE_OK) {
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		log_limited(&lim, 10, LOGL_ERROR, "sealer: cannot seal batch "
		    "%" PRIu64 " of %u datagrams: %s; dropped", seq,
		    (unsigned int)count, wire_strerror(we));
		goto out;
	}
	STATS_INC(batches_sealed);
	STATS_ADD(datagrams_sealed, count);
	if (bt != NULL)
		log_debug("sealer: batch %" PRIu64 ": %u datagrams, %zu bytes "
		    "-> %zu", seq, (unsigned int)count, bt->entries.len,
		    se->out.len);
	else {
		STATS_INC(heartbeats);
		log_debug("sealer: heartbeat batch %" PRIu64 ": %zu bytes", seq,
		    se->out.len);
	}
	if (spool_put(se->spool, seq, se->out.data, se->out.len, count,
	    a.created_us) == 0)
		rc = 0;
 out:
	pthread_mutex_unlock(&se->seal_mu);
	if (rc == 0 && se->notify != NULL)
		se->notify(se->notify_arg);
	return rc;
}

static void *
sealer_main(void *arg)
{
	struct sealer	*se = arg;
	struct batch	*bt;

	while (batcher_take(se->batcher, &bt) == 1) {
		if (bt->count > 0)
			(void)sealer_seal(se, bt);
		batcher_release(se->batcher, bt);
	}
	return NULL;
}

int
sealer_start(struct sealer **out, struct batcher *b, struct spool *s,
    const struct sealer_params *p)
{
	struct sealer	*se;
	int		 e;

	if ((se = calloc(1, sizeof(*se))) == NULL)
		goto fail;
	se->batcher = b;
	se->spool = s;
	if (util_snprintf(se->client_id, sizeof(se->client_id), "%s",
	    p->client_id) == -1)
		goto fail;
	memcpy(se->key, p->key, WIRE_KEY_LEN);
	atomic_init(&se->zlevel, p->zlevel);
	atomic_init(&se->codec, p->codec == WIRE_CODEC_NONE ? WIRE_CODEC_ZLIB :
	    p->codec);
	se->notify = p->notify;
	se->notify_arg = p->notify_arg;
	if (buf_init(&se->out, p->sealed_max, p->sealed_max) == -1)
		goto fail;
	pthread_mutex_init(&se->seal_mu, NULL);
	if ((e = pthread_create(&se->thread, NULL, sealer_main, se)) != 0) {
		log_error("sealer: cannot start thread: %s", strerror(e));
		pthread_mutex_destroy(&se->seal_mu);
		buf_free(&se->out);
		free(se);
		return -1;
	}
	*out = se;
	return 0;
 fail:
	log_error("sealer: out of memory");
	if (se != NULL)
		buf_free(&se->out);
	free(se);
	return -1;
}

void
sealer_set_level(struct sealer *se, int zlevel)
{
	atomic_store(&se->zlevel, zlevel);
}

void
sealer_set_codec(struct sealer *se, int codec)
{
	atomic_store(&se->codec, codec);
}

int
sealer_heartbeat(struct sealer *se)
{
	return sealer_seal(se, NULL);
}

int
sealer_join(struct sealer *se, int timeout_s)
{
	struct timespec	ts;
	int		e;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_s;
	if ((e = pthread_timedjoin_np(se->thread, NULL, &ts)) != 0) {
		log_error("sealer: still writing after %d s (%s); batches "
		    "not yet spooled are lost", timeout_s, strerror(e));
		return -1;
	}
	return 0;
}

void
sealer_free(struct sealer *se)
{
	if (se == NULL)
		return;
	sodium_memzero(se->key, sizeof(se->key));
	pthread_mutex_destroy(&se->seal_mu);
	buf_free(&se->out);
	free(se);
}
