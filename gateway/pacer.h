/*
 * pacer.h: per-collector pacing of re-emitted datagrams.
 *
 * A collector that receives a backlog at memory speed overflows its socket
 * buffer and loses datagrams that flowpost carried safely all the way.  A
 * pacer holds one collector to `pps` datagrams and `bps` bits of UDP
 * payload per second (IP and UDP headers are not counted), with bursts of
 * up to PACER_BURST_NS worth of traffic.  The request thread that sends a
 * batch sleeps until the next datagrams may go, so the HTTP answer waits
 * until the batch is out and the client's drain slows down instead of the
 * collector dropping.
 *
 * The schedule is a generic cell rate algorithm: each datagram costs
 * max(1/pps, 8 * len / bps) seconds of a virtual clock (the theoretical
 * arrival time); a datagram may go when that clock is at most
 * PACER_BURST_NS ahead of now.  Several threads sending to one collector
 * share its pacer (it locks).
 */
#ifndef FLOWPOST_GATEWAY_PACER_H
#define FLOWPOST_GATEWAY_PACER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/*
 * 1 ms: a burst must fit a collector's default socket buffer (nfcapd's
 * 208 KiB holds about 90 v5 datagrams); 10 ms overflowed it above about
 * 17,000 datagrams/s even at 80% of the collector's sustained rate.
 */
#define PACER_BURST_NS	INT64_C(1000000)	/* 1 ms */
#define PACER_RATE_MAX	UINT64_C(100000000000)	/* pps and bps ceiling */

struct pacer {
	uint64_t	 pps;		/* 0 = no datagram limit */
	uint64_t	 bps;		/* 0 = no bit rate limit */
	pthread_mutex_t	 mu;
	int64_t		 tat_ns;	/* theoretical arrival time */
	uint64_t	 waited_ns;	/* total time spent waiting */
};

/* 0, or -1 if the mutex cannot be created.  pps = bps = 0: no pacing. */
int	 pacer_init(struct pacer *p, uint64_t pps, uint64_t bps);
void	 pacer_destroy(struct pacer *p);

/* 1 if the pacer limits anything. */
int	 pacer_active(const struct pacer *p);

/*
 * How many of e[0..n) may be sent at `now_ns` (CLOCK_MONOTONIC); they are
 * charged to the schedule.  When it is 0, *wait_ns says how long until
 * the first one may go.  An inactive pacer grants all n.
 */
size_t	 pacer_grant(struct pacer *p, const struct wire_entry *e, size_t n,
	    int64_t now_ns, int64_t *wait_ns);

/*
 * pacer_grant() that sleeps until at least one datagram is granted; the
 * time slept is added to the pacer's waited_ns.  Returns the count (>= 1
 * when n >= 1).
 */
size_t	 pacer_wait(struct pacer *p, const struct wire_entry *e, size_t n);

/* Total time spent waiting, nanoseconds. */
uint64_t pacer_waited_ns(struct pacer *p);

#endif
