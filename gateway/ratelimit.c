/*
 * ratelimit.c: token buckets and the gateway's table of them.
 *
 * One mutex guards the global bucket and the table: each critical section
 * is a hash lookup and a few additions, far cheaper than the request it
 * decides about.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "wire.h"

#define RATELIMIT_BUCKETS	1024
#define RATELIMIT_CLIENTS_MAX	(1u << 20)	/* backstop; keys bound it */
#define NS_PER_S		INT64_C(1000000000)

struct ratelimit_client {
	struct ratelimit_client	*next;
	char			 id[WIRE_CLIENT_ID_MAX + 1];
	struct ratelimit_bucket	 requests;
	struct ratelimit_bucket	 auth;
};

struct ratelimit {
	struct ratelimit_rate	 global_rate;
	struct ratelimit_rate	 client_rate;
	struct ratelimit_rate	 auth_rate;

	pthread_mutex_t		 mu;
	struct ratelimit_bucket	 global;
	struct ratelimit_client	*bucket[RATELIMIT_BUCKETS];
	size_t			 nclients;
};

void
ratelimit_rate_init(struct ratelimit_rate *r, uint64_t per_s)
{
	if (per_s == 0) {
		r->interval_ns = 0;
		r->burst = 1;
		return;
	}
	if (per_s > RATELIMIT_RATE_MAX)
		per_s = RATELIMIT_RATE_MAX;
	r->interval_ns = NS_PER_S / (int64_t)per_s;
	r->burst = (int64_t)per_s;
}

void
ratelimit_bucket_init(struct ratelimit_bucket *b)
{
	b->full_at = INT64_MIN;
}

/* How far ahead of `now` the bucket's full moment lies (0 if full). */
static int64_t
ratelimit_ahead(const struct ratelimit_bucket *b, int64_t now)
{
	return b->full_at > now ? b->full_at - now : 0;
}

int
ratelimit_bucket_check(const struct ratelimit_bucket *b,
    const struct ratelimit_rate *r, int64_t now, int64_t *wait_ns)
{
	int64_t	 ahead, room;

	*wait_ns = 0;
	if (r->interval_ns == 0)
		return 0;
	/* A token is there while one more interval still fits the burst. */
	ahead = ratelimit_ahead(b, now);
	room = (r->burst - 1) * r->interval_ns;
	if (ahead <= room)
		return 0;
	*wait_ns = ahead - room;
	return -1;
}

int
ratelimit_bucket_take(struct ratelimit_bucket *b,
    const struct ratelimit_rate *r, int64_t now, int64_t *wait_ns)
{
	if (ratelimit_bucket_check(b, r, now, wait_ns) == -1)
		return -1;
	if (r->interval_ns != 0)
		b->full_at = now + ratelimit_ahead(b, now) + r->interval_ns;
	return 0;
}

void
ratelimit_bucket_charge(struct ratelimit_bucket *b,
    const struct ratelimit_rate *r, int64_t now)
{
	int64_t	 ahead, cap;

	if (r->interval_ns == 0)
		return;
	ahead = ratelimit_ahead(b, now) + r->interval_ns;
	cap = 2 * r->burst * r->interval_ns;
	b->full_at = now + (ahead < cap ? ahead : cap);
}

struct ratelimit *
ratelimit_new(const struct ratelimit_params *p)
{
	struct ratelimit	*rl;

	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	if (pthread_mutex_init(&rl->mu, NULL) != 0) {
		free(rl);
		return NULL;
	}
	ratelimit_rate_init(&rl->global_rate, p->global);
	ratelimit_rate_init(&rl->client_rate, p->client);
	ratelimit_rate_init(&rl->auth_rate, p->auth_failures);
	ratelimit_bucket_init(&rl->global);
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	struct ratelimit_client	*c, *next;

	if (rl == NULL)
		return;
	for (int b = 0; b < RATELIMIT_BUCKETS; b++) {
		for (c = rl->bucket[b]; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	}
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

static unsigned int
ratelimit_hash(const char *id)
{
	uint32_t	 h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % RATELIMIT_BUCKETS;
}

/*
 * The buckets of `id`, created full when `create` is set.  NULL when the
 * id has none yet (and `create` is not set), is not a valid client id, or
 * memory ran out: the id is then simply not limited per client, the
 * global bucket still is.  Called with rl->mu held.
 */
static struct ratelimit_client *
ratelimit_find(struct ratelimit *rl, const char *id, int create)
{
	struct ratelimit_client	*c;
	unsigned int		 b;
	size_t			 n;

	n = strnlen(id, WIRE_CLIENT_ID_MAX + 1);
	if (n == 0 || n > WIRE_CLIENT_ID_MAX)
		return NULL;
	b = ratelimit_hash(id);
	for (c = rl->bucket[b]; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	if (!create || rl->nclients >= RATELIMIT_CLIENTS_MAX ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	memcpy(c->id, id, n + 1);
	ratelimit_bucket_init(&c->requests);
	ratelimit_bucket_init(&c->auth);
	c->next = rl->bucket[b];
	rl->bucket[b] = c;
	rl->nclients++;
	return c;
}

int
ratelimit_global(struct ratelimit *rl, int64_t now, int64_t *wait_ns)
{
	int	 rv;

	pthread_mutex_lock(&rl->mu);
	rv = ratelimit_bucket_take(&rl->global, &rl->global_rate, now,
	    wait_ns);
	pthread_mutex_unlock(&rl->mu);
	return rv;
}

int
ratelimit_client_check(struct ratelimit *rl, const char *id, int64_t now,
    int64_t *wait_ns)
{
	struct ratelimit_client	*c;
	int			 rv = 0;

	*wait_ns = 0;
	if (rl->client_rate.interval_ns == 0)
		return 0;
	pthread_mutex_lock(&rl->mu);
	/* An id without buckets has a full one. */
	if ((c = ratelimit_find(rl, id, 0)) != NULL)
		rv = ratelimit_bucket_check(&c->requests, &rl->client_rate,
		    now, wait_ns);
	pthread_mutex_unlock(&rl->mu);
	return rv;
}

void
ratelimit_client_charge(struct ratelimit *rl, const char *id, int64_t now)
{
	struct ratelimit_client	*c;

	if (rl->client_rate.interval_ns == 0)
		return;
	pthread_mutex_lock(&rl->mu);
	if ((c = ratelimit_find(rl, id, 1)) != NULL)
		ratelimit_bucket_charge(&c->requests, &rl->client_rate, now);
	pthread_mutex_unlock(&rl->mu);
}

int
ratelimit_auth_failure(struct ratelimit *rl, const char *id, int64_t now,
    int64_t *wait_ns)
{
	struct ratelimit_client	*c;
	int			 rv = 0;

	*wait_ns = 0;
	if (rl->auth_rate.interval_ns == 0)
		return 0;
	pthread_mutex_lock(&rl->mu);
	if ((c = ratelimit_find(rl, id, 1)) != NULL)
		rv = ratelimit_bucket_take(&c->auth, &rl->auth_rate, now,
		    wait_ns);
	pthread_mutex_unlock(&rl->mu);
	return rv;
}

void
ratelimit_retain(struct ratelimit *rl, int (*keep)(const char *id,
    void *arg), void *arg)
{
	struct ratelimit_client	**pp, *c;

	pthread_mutex_lock(&rl->mu);
	for (int b = 0; b < RATELIMIT_BUCKETS; b++) {
		pp = &rl->bucket[b];
		while ((c = *pp) != NULL) {
			if (keep(c->id, arg)) {
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			free(c);
			rl->nclients--;
		}
	}
	pthread_mutex_unlock(&rl->mu);
}

size_t
ratelimit_clients(struct ratelimit *rl)
{
	size_t	 n;

	pthread_mutex_lock(&rl->mu);
	n = rl->nclients;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
