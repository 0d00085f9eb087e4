/*
 * ratelimit.h: request-rate limits as token buckets.
 *
 * A bucket admits `per_s` requests per second on average and up to `burst`
 * at once.  It is kept as one time stamp, the moment at which it will be
 * full again (the "theoretical arrival time" of the generic cell rate
 * algorithm): taking a token moves that moment one interval (1/per_s)
 * later, and a request conforms while the moment lies no more than `burst`
 * intervals ahead of now.  No timer runs and no division happens per
 * request.
 *
 * Every function takes the current time in nanoseconds from the caller
 * (util_mono_ns() in the daemon, a plain number in tests), so the logic can
 * be tested without waiting.
 *
 * struct ratelimit holds the gateway's buckets: one global bucket for all
 * batch POSTs, and for each client id the caller vouches for (the id is in
 * the keys file) a request bucket and an authentication-failure bucket.
 * The table only grows with ids the caller passes in, and
 * ratelimit_retain() drops ids that left the keys file.
 */
#ifndef FLOWPOST_GATEWAY_RATELIMIT_H
#define FLOWPOST_GATEWAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_RATE_MAX	1000000u	/* requests per second */

struct ratelimit_rate {
	int64_t		 interval_ns;	/* 1 s / rate; 0 = no limit */
	int64_t		 burst;		/* tokens, >= 1 */
};

struct ratelimit_bucket {
	int64_t		 full_at;	/* ns: bucket is full from then on */
};

/* Rate from requests per second; burst = max(1, per_s); 0 = no limit. */
void	 ratelimit_rate_init(struct ratelimit_rate *r, uint64_t per_s);

/* A bucket that is full at any time. */
void	 ratelimit_bucket_init(struct ratelimit_bucket *b);

/*
 * 0 if a token is there at `now` (nothing is taken); -1 if not, with the
 * time until one will be in *wait_ns.
 */
int	 ratelimit_bucket_check(const struct ratelimit_bucket *b,
	    const struct ratelimit_rate *r, int64_t now, int64_t *wait_ns);
/* Takes a token if one is there (0); else -1 as for _check(). */
int	 ratelimit_bucket_take(struct ratelimit_bucket *b,
	    const struct ratelimit_rate *r, int64_t now, int64_t *wait_ns);
/*
 * Takes a token whether or not one is there: requests admitted after a
 * _check() but charged later, and overlapping, leave a debt that later
 * requests wait out.  The debt never exceeds one burst.
 */
void	 ratelimit_bucket_charge(struct ratelimit_bucket *b,
	    const struct ratelimit_rate *r, int64_t now);

struct ratelimit_params {
	uint64_t	 global;		/* batch POSTs/s, 0 = off */
	uint64_t	 client;		/* forwarded batches/s, per id */
	uint64_t	 auth_failures;		/* failed authentications/s, per id */
};

struct ratelimit;

struct ratelimit *ratelimit_new(const struct ratelimit_params *p);
void		 ratelimit_free(struct ratelimit *rl);

/* One batch POST against the global bucket: 0, or -1 with *wait_ns. */
int		 ratelimit_global(struct ratelimit *rl, int64_t now,
		    int64_t *wait_ns);
/*
 * Whether client `id` may have a batch authenticated now (its request
 * bucket holds a token; nothing is taken): 0, or -1 with *wait_ns.
 */
int		 ratelimit_client_check(struct ratelimit *rl, const char *id,
		    int64_t now, int64_t *wait_ns);
/* Charges client `id`'s request bucket for a batch it had forwarded. */
void		 ratelimit_client_charge(struct ratelimit *rl, const char *id,
		    int64_t now);
/*
 * Charges client `id`'s authentication-failure bucket: 0 while it had a
 * token, -1 with *wait_ns once failures come faster than allowed.
 */
int		 ratelimit_auth_failure(struct ratelimit *rl, const char *id,
		    int64_t now, int64_t *wait_ns);

/* Drops every client id for which keep(id, arg) returns 0. */
void		 ratelimit_retain(struct ratelimit *rl,
		    int (*keep)(const char *id, void *arg), void *arg);
/* Client ids that have buckets (for tests). */
size_t		 ratelimit_clients(struct ratelimit *rl);

#endif
