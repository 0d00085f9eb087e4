/*
 * batcher.c: the open batch, the buffer pool and the queue to the sealer.
 *
 * The pool and the queue share one mutex, taken only when a batch closes or
 * a new buffer is needed, never per datagram.  The open batch belongs to
 * the receive thread alone; each lane's open batch to the lane's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

#include "batcher.h"
#include "stats.h"

struct batcher {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* queue not empty, or finished */
	pthread_cond_t	 cv_free;	/* a buffer came back to the pool */
	struct batch	*pool;
	size_t		 npool;
	struct batch	*free;		/* stack of unused buffers */
	struct batch	*head, *tail;	/* closed batches, oldest first */
	size_t		 nqueued;	/* batches between head and tail */
	uint64_t	 next_ticket;	/* batcher_take() numbers them */
	int		 finished;

	/* receive thread only */
	struct batch	*open;
	_Atomic size_t	 max_bytes;	/* the sender lowers it after a 413 */
	_Atomic int64_t	 max_age_ns;	/* lanes read it from their threads */
};

/* A further producer's open batch (batcher.h). */
struct batcher_lane {
	struct batcher	*b;
	struct batch	*open;
};

int
batcher_new(struct batcher **out, size_t max_bytes, size_t entries_max,
    uint64_t max_age_s)
{
	struct batcher		*b;
	pthread_condattr_t	 ca;
	size_t			 i;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (pthread_condattr_init(&ca) != 0) {
		free(b);
		return -1;
	}
	/* waits for a free buffer are timed on the monotonic clock */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv_free, &ca);
	pthread_condattr_destroy(&ca);
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
	pthread_cond_destroy(&b->cv_free);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

void
batcher_set_max_age(struct batcher *b, uint64_t max_age_s)
{
	b->max_age_ns = (int64_t)max_age_s * 1000000000LL;
}

void
batcher_set_max_bytes(struct batcher *b, size_t max_bytes)
{
	atomic_store_explicit(&b->max_bytes, max_bytes, memory_order_relaxed);
}

size_t
batcher_max_bytes(struct batcher *b)
{
	return atomic_load_explicit(&b->max_bytes, memory_order_relaxed);
}

/* Queues the open batch of one producer for the sealer. */
static void
batcher_close_open(struct batcher *b, struct batch **openp)
{
	struct batch	*bt = *openp;

	if (bt == NULL)
		return;
	*openp = NULL;
	pthread_mutex_lock(&b->mu);
	if (bt->count == 0) {
		/* nothing to seal: straight back to the pool */
		bt->next = b->free;
		b->free = bt;
		pthread_cond_broadcast(&b->cv_free);
	} else {
		bt->next = NULL;
		if (b->tail != NULL)
			b->tail->next = bt;
		else
			b->head = bt;
		b->tail = bt;
		b->nqueued++;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

static void
batcher_close(struct batcher *b)
{
	batcher_close_open(b, &b->open);
}

/* A buffer from the pool; waits up to wait_ms (lanes only) for one. */
static struct batch *
batcher_get_free(struct batcher *b, int wait_ms)
{
	struct batch	*bt;
	struct timespec	 ts;

	pthread_mutex_lock(&b->mu);
	if (b->free == NULL && wait_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (b->free == NULL && pthread_cond_timedwait(&b->cv_free,
		    &b->mu, &ts) != ETIMEDOUT)
			;
	}
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

/* One producer's add: the receive thread's or a lane's open batch. */
static int
batcher_add_to(struct batcher *b, struct batch **openp,
    const struct wire_entry *e, int64_t now_ns, int wait_ms)
{
	static struct log_limit	 lim_bp, lim_big;
	struct batch		*bt;
	size_t			 sz = wire_entry_size(e->len);

	if (*openp != NULL && (*openp)->count > 0 &&
	    (*openp)->entries.len + sz > atomic_load_explicit(&b->max_bytes,
	    memory_order_relaxed))
		batcher_close_open(b, openp);
	if (*openp == NULL &&
	    (*openp = batcher_get_free(b, wait_ms)) == NULL) {
		if (wait_ms > 0)
			return -1;	/* the caller keeps it and retries */
		STATS_INC(dropped_backpressure);
		log_limited(&lim_bp, 10, LOGL_WARN, "batcher: all %zu batch "
		    "buffers are waiting for the sealer (disk too slow?); "
		    "dropping datagrams", b->npool);
		return -1;
	}
	bt = *openp;
	if (wire_entry_append(&bt->entries, e) == -1) {
		/* cannot happen with entries_max >= one maximal entry */
		STATS_INC(dropped_truncated);
		log_limited(&lim_big, 10, LOGL_ERROR, "batcher: %u byte "
		    "datagram does not fit an empty batch; dropped",
		    (unsigned int)e->len);
		return -1;
	}
	if (bt->count == 0)
		bt->first_ns = now_ns;
	bt->count++;
	return 0;
}

void
batcher_add(struct batcher *b, const struct wire_entry *e, int64_t now_ns)
{
	batcher_add_to(b, &b->open, e, now_ns, 0);
}

static void
batcher_tick_open(struct batcher *b, struct batch **openp, int64_t now_ns)
{
	if (*openp != NULL && (*openp)->count > 0 &&
	    now_ns - (*openp)->first_ns >= atomic_load(&b->max_age_ns))
		batcher_close_open(b, openp);
}

void
batcher_tick(struct batcher *b, int64_t now_ns)
{
	batcher_tick_open(b, &b->open, now_ns);
}

int
batcher_lane_new(struct batcher *b, struct batcher_lane **out)
{
	struct batcher_lane	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -1;
	l->b = b;
	*out = l;
	return 0;
}

void
batcher_lane_free(struct batcher_lane *l)
{
	if (l == NULL)
		return;
	batcher_close_open(l->b, &l->open);
	free(l);
}

int
batcher_lane_add(struct batcher_lane *l, const struct wire_entry *e,
    int64_t now_ns, int wait_ms)
{
	return batcher_add_to(l->b, &l->open, e, now_ns, wait_ms);
}

void
batcher_lane_tick(struct batcher_lane *l, int64_t now_ns)
{
	batcher_tick_open(l->b, &l->open, now_ns);
}

void
batcher_lane_flush(struct batcher_lane *l)
{
	batcher_close_open(l->b, &l->open);
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
		bt->ticket = b->next_ticket++;
		b->nqueued--;
	}
	pthread_mutex_unlock(&b->mu);
	*out = bt;
	return bt != NULL ? 1 : 0;
}

size_t
batcher_queued(struct batcher *b)
{
	size_t	 n;

	pthread_mutex_lock(&b->mu);
	n = b->nqueued;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void
batcher_release(struct batcher *b, struct batch *bt)
{
	pthread_mutex_lock(&b->mu);
	bt->next = b->free;
	b->free = bt;
	pthread_cond_broadcast(&b->cv_free);
	pthread_mutex_unlock(&b->mu);
}
