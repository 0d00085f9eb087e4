/*
 * test_ratelimit.c: token buckets and the per-client table, on a clock the
 * test moves by hand.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ratelimit.h"

#define MS	INT64_C(1000000)
#define S	(1000 * MS)
#define T0	(INT64_C(1000) * S)	/* any start; the clock is ours */

/* Takes tokens at `now` until refused; returns how many were had. */
static int
drain(struct ratelimit_bucket *b, const struct ratelimit_rate *r, int64_t now,
    int limit)
{
	int64_t	 wait;
	int	 n = 0;

	while (n < limit && ratelimit_bucket_take(b, r, now, &wait) == 0)
		n++;
	return n;
}

static void
test_rate_init(void)
{
	struct ratelimit_rate	 r;

	ratelimit_rate_init(&r, 20);
	CHECK_EQ_U64(r.interval_ns, 50 * MS);
	CHECK_EQ_U64(r.burst, 20);
	ratelimit_rate_init(&r, 1);
	CHECK_EQ_U64(r.interval_ns, S);
	CHECK_EQ_U64(r.burst, 1);
	ratelimit_rate_init(&r, 0);
	CHECK_EQ_U64(r.interval_ns, 0);
	/* Clamped, never a zero interval by division. */
	ratelimit_rate_init(&r, UINT64_MAX);
	CHECK_EQ_U64(r.interval_ns, S / RATELIMIT_RATE_MAX);
	CHECK_EQ_U64(r.burst, RATELIMIT_RATE_MAX);
}

/* A full bucket gives a burst, then one token per interval. */
static void
test_burst_then_rate(void)
{
	struct ratelimit_rate	 r;
	struct ratelimit_bucket	 b;
	int64_t			 wait = -1;

	ratelimit_rate_init(&r, 5);		/* 200 ms, burst 5 */
	ratelimit_bucket_init(&b);
	CHECK_EQ_U64(drain(&b, &r, T0, 100), 5);
	CHECK(ratelimit_bucket_take(&b, &r, T0, &wait) == -1);
	CHECK_EQ_U64(wait, 200 * MS);
	/* Just before the next token: still refused, and says how long. */
	CHECK(ratelimit_bucket_take(&b, &r, T0 + 199 * MS, &wait) == -1);
	CHECK_EQ_U64(wait, 1 * MS);
	CHECK(ratelimit_bucket_take(&b, &r, T0 + 200 * MS, &wait) == 0);
	CHECK_EQ_U64(wait, 0);
	CHECK(ratelimit_bucket_take(&b, &r, T0 + 200 * MS, &wait) == -1);

	/* A steady 5/s is admitted for ever. */
	for (int i = 2; i < 100; i++)
		CHECK(ratelimit_bucket_take(&b, &r, T0 + i * 200 * MS,
		    &wait) == 0);
	/* After a quiet second the whole burst is back, not more. */
	CHECK_EQ_U64(drain(&b, &r, T0 + 99 * 200 * MS + S, 100), 5);
	/* A long quiet time does not store up more than a burst either. */
	CHECK_EQ_U64(drain(&b, &r, T0 + 3600 * S, 100), 5);
}

/* Over any window the admitted count is at most burst + rate * window. */
static void
test_long_run_rate(void)
{
	struct ratelimit_rate	 r;
	struct ratelimit_bucket	 b;
	int64_t			 wait, now;
	int			 admitted = 0;

	ratelimit_rate_init(&r, 20);
	ratelimit_bucket_init(&b);
	/* A request every millisecond for 10 s. */
	for (now = T0; now < T0 + 10 * S; now += MS)
		if (ratelimit_bucket_take(&b, &r, now, &wait) == 0)
			admitted++;
	CHECK(admitted >= 20 * 10);
	CHECK(admitted <= 20 + 20 * 10);
}

/* check() looks without taking; take() after check() gets the token. */
static void
test_check_does_not_take(void)
{
	struct ratelimit_rate	 r;
	struct ratelimit_bucket	 b;
	int64_t			 wait;

	ratelimit_rate_init(&r, 1);
	ratelimit_bucket_init(&b);
	for (int i = 0; i < 10; i++)
		CHECK(ratelimit_bucket_check(&b, &r, T0, &wait) == 0);
	CHECK(ratelimit_bucket_take(&b, &r, T0, &wait) == 0);
	CHECK(ratelimit_bucket_check(&b, &r, T0, &wait) == -1);
	CHECK_EQ_U64(wait, S);
	CHECK(ratelimit_bucket_check(&b, &r, T0 + S, &wait) == 0);
}

/*
 * charge() takes a token even from an empty bucket; the debt is waited out,
 * and it is capped at one burst however many overlapping charges come.
 */
static void
test_charge_debt(void)
{
	struct ratelimit_rate	 r;
	struct ratelimit_bucket	 b;
	int64_t			 wait;

	ratelimit_rate_init(&r, 2);		/* 500 ms, burst 2 */
	ratelimit_bucket_init(&b);
	ratelimit_bucket_charge(&b, &r, T0);
	ratelimit_bucket_charge(&b, &r, T0);
	ratelimit_bucket_charge(&b, &r, T0);	/* one in debt */
	CHECK(ratelimit_bucket_check(&b, &r, T0, &wait) == -1);
	CHECK_EQ_U64(wait, 1000 * MS);
	CHECK(ratelimit_bucket_check(&b, &r, T0 + 999 * MS, &wait) == -1);
	CHECK(ratelimit_bucket_check(&b, &r, T0 + 1000 * MS, &wait) == 0);

	ratelimit_bucket_init(&b);
	for (int i = 0; i < 1000; i++)
		ratelimit_bucket_charge(&b, &r, T0);
	CHECK(ratelimit_bucket_check(&b, &r, T0, &wait) == -1);
	/* Two bursts' worth of intervals ahead, minus one interval of room. */
	CHECK_EQ_U64(wait, 1500 * MS);
}

/* Rate 0 is "no limit": everything passes and nothing is stored. */
static void
test_off(void)
{
	struct ratelimit_params	 p = { 0, 0, 0 };
	struct ratelimit	*rl;
	int64_t			 wait;

	CHECK((rl = ratelimit_new(&p)) != NULL);
	for (int i = 0; i < 10000; i++) {
		CHECK(ratelimit_global(rl, T0, &wait) == 0);
		CHECK(ratelimit_client_check(rl, "kit-1", T0, &wait) == 0);
		ratelimit_client_charge(rl, "kit-1", T0);
		CHECK(ratelimit_auth_failure(rl, "kit-1", T0, &wait) == 0);
	}
	CHECK_EQ_U64(ratelimit_clients(rl), 0);
	ratelimit_free(rl);
}

static void
test_global(void)
{
	struct ratelimit_params	 p = { 500, 20, 5 };
	struct ratelimit	*rl;
	int64_t			 wait;
	int			 n = 0;

	CHECK((rl = ratelimit_new(&p)) != NULL);
	while (n < 10000 && ratelimit_global(rl, T0, &wait) == 0)
		n++;
	CHECK_EQ_U64(n, 500);
	CHECK(ratelimit_global(rl, T0, &wait) == -1);
	CHECK_EQ_U64(wait, 2 * MS);
	CHECK(ratelimit_global(rl, T0 + 2 * MS, &wait) == 0);
	/* The global bucket makes no per-client entries. */
	CHECK_EQ_U64(ratelimit_clients(rl), 0);
	ratelimit_free(rl);
}

/*
 * The per-client request bucket is only read before authentication and
 * only charged after it: a client's own batches use it up, and the next
 * batch is refused until a token comes back.
 */
static void
test_client_bucket(void)
{
	struct ratelimit_params	 p = { 0, 20, 5 };
	struct ratelimit	*rl;
	int64_t			 wait;
	int			 n = 0;

	CHECK((rl = ratelimit_new(&p)) != NULL);
	/* Checking alone neither limits nor stores anything. */
	for (int i = 0; i < 100; i++)
		CHECK(ratelimit_client_check(rl, "kit-1", T0, &wait) == 0);
	CHECK_EQ_U64(ratelimit_clients(rl), 0);

	while (n < 1000 && ratelimit_client_check(rl, "kit-1", T0,
	    &wait) == 0) {
		ratelimit_client_charge(rl, "kit-1", T0);
		n++;
	}
	CHECK_EQ_U64(n, 20);
	CHECK_EQ_U64(wait, 50 * MS);
	CHECK_EQ_U64(ratelimit_clients(rl), 1);
	/* Another client is not affected. */
	CHECK(ratelimit_client_check(rl, "kit-2", T0, &wait) == 0);
	CHECK(ratelimit_client_check(rl, "kit-1", T0 + 50 * MS, &wait) == 0);
	ratelimit_free(rl);
}

/*
 * Failed authentications have their own bucket: exhausting it (a forger
 * using kit-1's id) leaves kit-1's request bucket full, so kit-1's real
 * batches are not held back.
 */
static void
test_auth_failures_apart(void)
{
	struct ratelimit_params	 p = { 0, 20, 5 };
	struct ratelimit	*rl;
	int64_t			 wait;
	int			 n = 0;

	CHECK((rl = ratelimit_new(&p)) != NULL);
	while (n < 1000 && ratelimit_auth_failure(rl, "kit-1", T0,
	    &wait) == 0)
		n++;
	CHECK_EQ_U64(n, 5);
	CHECK_EQ_U64(wait, 200 * MS);
	for (int i = 0; i < 1000; i++)
		CHECK(ratelimit_auth_failure(rl, "kit-1", T0, &wait) == -1);
	/* The forgery flood did not touch the request bucket. */
	for (int i = 0; i < 20; i++) {
		CHECK(ratelimit_client_check(rl, "kit-1", T0, &wait) == 0);
		ratelimit_client_charge(rl, "kit-1", T0);
	}
	CHECK(ratelimit_client_check(rl, "kit-1", T0, &wait) == -1);
	/* Another id's failures are its own. */
	CHECK(ratelimit_auth_failure(rl, "kit-2", T0, &wait) == 0);
	CHECK(ratelimit_auth_failure(rl, "kit-1", T0 + 200 * MS, &wait) == 0);
	ratelimit_free(rl);
}

static int
keep_kit2(const char *id, void *arg)
{
	(void)arg;
	return strcmp(id, "kit-2") == 0;
}

/* A reload drops the buckets of ids that left the keys file. */
static void
test_retain(void)
{
	struct ratelimit_params	 p = { 0, 1, 1 };
	struct ratelimit	*rl;
	int64_t			 wait;
	char			 id[32], longid[66];

	CHECK((rl = ratelimit_new(&p)) != NULL);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "kit-%d", i);
		ratelimit_client_charge(rl, id, T0);
	}
	CHECK_EQ_U64(ratelimit_clients(rl), 3000);
	ratelimit_retain(rl, keep_kit2, NULL);
	CHECK_EQ_U64(ratelimit_clients(rl), 1);
	/* kit-2 kept its state (still empty), kit-1 starts full again. */
	CHECK(ratelimit_client_check(rl, "kit-2", T0, &wait) == -1);
	CHECK(ratelimit_client_check(rl, "kit-1", T0, &wait) == 0);
	/* Empty or over-long ids get no entry. */
	ratelimit_client_charge(rl, "", T0);
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';		/* 65 characters */
	ratelimit_client_charge(rl, longid, T0);
	CHECK_EQ_U64(ratelimit_clients(rl), 1);
	longid[sizeof(longid) - 2] = '\0';		/* 64: the longest */
	ratelimit_client_charge(rl, longid, T0);
	CHECK_EQ_U64(ratelimit_clients(rl), 2);
	ratelimit_free(rl);
}

TEST_MAIN(test_rate_init, test_burst_then_rate, test_long_run_rate,
    test_check_does_not_take, test_charge_debt, test_off, test_global,
    test_client_bucket, test_auth_failures_apart, test_retain)
