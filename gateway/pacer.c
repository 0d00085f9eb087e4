/*
 * pacer.c: the per-collector send schedule (pacer.h explains it).
 */
#include <errno.h>
#include <time.h>

#include "pacer.h"
#include "util.h"

#define NS_PER_S	UINT64_C(1000000000)

int
pacer_init(struct pacer *p, uint64_t pps, uint64_t bps)
{
	p->pps = pps > PACER_RATE_MAX ? PACER_RATE_MAX : pps;
	p->bps = bps > PACER_RATE_MAX ? PACER_RATE_MAX : bps;
	p->tat_ns = 0;
	p->waited_ns = 0;
	return pthread_mutex_init(&p->mu, NULL) == 0 ? 0 : -1;
}

void
pacer_destroy(struct pacer *p)
{
	pthread_mutex_destroy(&p->mu);
}

int
pacer_active(const struct pacer *p)
{
	return p->pps != 0 || p->bps != 0;
}

/* Virtual time one datagram of `len` payload bytes takes. */
static int64_t
pacer_cost(const struct pacer *p, size_t len)
{
	uint64_t	 c = 0, b;

	if (p->pps != 0)
		c = NS_PER_S / p->pps;
	if (p->bps != 0) {
		/* len <= 65535: 8 * len * 1e9 stays far below 2^64. */
		b = (uint64_t)len * 8 * NS_PER_S / p->bps;
		if (b > c)
			c = b;
	}
	return (int64_t)c;
}

size_t
pacer_grant(struct pacer *p, const struct wire_entry *e, size_t n,
    int64_t now_ns, int64_t *wait_ns)
{
	size_t	 k = 0;

	*wait_ns = 0;
	if (!pacer_active(p))
		return n;
	pthread_mutex_lock(&p->mu);
	/* An idle pacer does not bank credit beyond the burst. */
	if (p->tat_ns < now_ns)
		p->tat_ns = now_ns;
	while (k < n && p->tat_ns - now_ns <= PACER_BURST_NS) {
		p->tat_ns += pacer_cost(p, e[k].len);
		k++;
	}
	if (k == 0)
		*wait_ns = p->tat_ns - PACER_BURST_NS - now_ns;
	pthread_mutex_unlock(&p->mu);
	return k;
}

size_t
pacer_wait(struct pacer *p, const struct wire_entry *e, size_t n)
{
	struct timespec	 until;
	int64_t		 now, wait, start, end;
	size_t		 k;

	if (n == 0 || !pacer_active(p))
		return n;
	for (;;) {
		now = util_mono_ns();
		if ((k = pacer_grant(p, e, n, now, &wait)) > 0)
			return k;
		start = now;
		until.tv_sec = (time_t)((now + wait) / (int64_t)NS_PER_S);
		until.tv_nsec = (long)((now + wait) % (int64_t)NS_PER_S);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until,
		    NULL) == EINTR)
			;
		end = util_mono_ns();
		pthread_mutex_lock(&p->mu);
		p->waited_ns += (uint64_t)(end - start);
		pthread_mutex_unlock(&p->mu);
	}
}

uint64_t
pacer_waited_ns(struct pacer *p)
{
	uint64_t	 v;

	pthread_mutex_lock(&p->mu);
	v = p->waited_ns;
	pthread_mutex_unlock(&p->mu);
	return v;
}
