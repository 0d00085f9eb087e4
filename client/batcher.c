/*
 * batcher.c: the open batch, the buffer pool and the queue to the sealer.
 *
 * The pool and the queue share one mutex, taken only when a batch closes or
 * a new buffer is needed, never per datagram.  The open batch belongs to
 * the receive thread alone.
 */
#include <pthread.h>
#include <stdlib.h>

#include "log.h"

#include "batcher.h"
#include "stats.h"

struct batcher {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* queue not empty, or finished */
	struct batch	*pool;
	size_t		 npool;
	struct batch	*free;		/* stack of unused buffers */
	struct batch	*head, *tail;	/* closed batches, oldest first */
	int		 finished;

	/* receive thread only */
	struct batch	*open;
	size_t		 max_bytes;
	int64_t		 max_age_ns;
};

int
batcher_new(struct batcher **out, size_t max_bytes, size_t entries_max,
    uint64_t max_age_s)
{
	struct batcher	*b;
	size_t		 i;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->max_bytes = max_bytes;
	b->max_age_ns = (int64_t)max_age_s * 1000000000LL;
	b->npool = BATCHER_POOL_BYTES / entries_max;
	if (b->npool < BATCHER_POOL_MIN)
		b->npool = BATCHER_POOL_MIN;
	if (b->npool > BATCHER_POOL_MAX)
		b->npool = BATCHER_POOL_MAX;
	if ((b->pool = calloc(b->npool, sizeof(*b->pool))) == NULL) {
		batcher_free(b);
		return -1;
	}
	for (i = 0; i < b->npool; i++) {
		/* Full size now: the receive path must never allocate. */
		if (buf_init(&b->pool[i].entries, entries_max,
		    entries_max) == -1) {
			batcher_free(b);
			return -1;
		}
		b->pool[i].next = b->free;
		b->free = &b->pool[i];
	}
	*out = b;
	return 0;
}

void
batcher_free(struct batcher *b)
{
	size_t	i;

	if (b == NULL)
		return;
	for (i = 0; b->pool != NULL && i < b->npool; i++)
		buf_free(&b->pool[i].entries);
	free(b->pool);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

void
batcher_set_max_age(struct batcher *b, uint64_t max_age_s)
{
	b->max_age_ns = (int64_t)max_age_s * 1000000000LL;
}

/* Queues the open batch for the sealer. */
static void
batcher_close(struct batcher *b)
{
	struct batch	*bt = b->open;

	if (bt == NULL)
		return;
	b->open = NULL;
	pthread_mutex_lock(&b->mu);
	if (bt->count == 0) {
		/* nothing to seal: straight back to the pool */
		bt->next = b->free;
		b->free = bt;
	} else {
		bt->next = NULL;
		if (b->tail != NULL)
			b->tail->next = bt;
		else
			b->head = bt;
		b->tail = bt;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

static struct batch *
batcher_get_free(struct batcher *b)
{
	struct batch	*bt;

	pthread_mutex_lock(&b->mu);
	if ((bt = b->free) != NULL)
		b->free = bt->next;
	pthread_mutex_unlock(&b->mu);
	if (bt != NULL) {
		buf_reset(&bt->entries);
		bt->count = 0;
		bt->first_ns = 0;
		bt->next = NULL;
	}
	return bt;
}

void
batcher_add(struct batcher *b, const struct wire_entry *e, int64_t now_ns)
{
	static struct log_limit	 lim_bp, lim_big;
	struct batch		*bt;
	size_t			 sz = wire_entry_size(e->len);

	if (b->open != NULL && b->open->count > 0 &&
	    b->open->entries.len + sz > b->max_bytes)
		batcher_close(b);
	if (b->open == NULL && (b->open = batcher_get_free(b)) == NULL) {
		STATS_INC(dropped_backpressure);
		log_limited(&lim_bp, 10, LOGL_WARN, "batcher: all %zu batch "
		    "buffers are waiting for the sealer (disk too slow?); "
		    "dropping datagrams", b->npool);
		return;
	}
	bt = b->open;
	if (wire_entry_append(&bt->entries, e) == -1) {
		/* cannot happen with entries_max >= one maximal entry */
		STATS_INC(dropped_truncated);
		log_limited(&lim_big, 10, LOGL_ERROR, "batcher: %u byte "
		    "datagram does not fit an empty batch; dropped",
		    (unsigned int)e->len);
		return;
	}
	if (bt->count == 0)
		bt->first_ns = now_ns;
	bt->count++;
}

void
batcher_tick(struct batcher *b, int64_t now_ns)
{
	if (b->open != NULL && b->open->count > 0 &&
	    now_ns - b->open->first_ns >= b->max_age_ns)
		batcher_close(b);
}

void
batcher_finish(struct batcher *b)
{
	batcher_close(b);
	pthread_mutex_lock(&b->mu);
	b->finished = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

int
batcher_take(struct batcher *b, struct batch **out)
{
	struct batch	*bt;

	pthread_mutex_lock(&b->mu);
	while (b->head == NULL && !b->finished)
		pthread_cond_wait(&b->cv, &b->mu);
	if ((bt = b->head) != NULL) {
		b->head = bt->next;
		if (b->head == NULL)
			b->tail = NULL;
		bt->next = NULL;
	}
	pthread_mutex_unlock(&b->mu);
	*out = bt;
	return bt != NULL ? 1 : 0;
}

void
batcher_release(struct batcher *b, struct batch *bt)
{
	pthread_mutex_lock(&b->mu);
	bt->next = b->free;
	b->free = bt;
	pthread_mutex_unlock(&b->mu);
}
