/*
 * test_pacer.c: the per-collector schedule, its use by output_udp, and the
 * pps= / bps= collector options.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "output_udp.h"
#include "pacer.h"
#include "util.h"

#define MS	INT64_C(1000000)

static struct wire_entry	 ents[256];
static uint8_t			 payload[1400];

static void
fill(uint16_t len)
{
	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		memset(&ents[i], 0, sizeof(ents[i]));
		ents[i].payload = payload;
		ents[i].len = len;
	}
}

static void
test_inactive(void)
{
	struct pacer	 p;
	int64_t		 wait = -1;

	fill(100);
	CHECK(pacer_init(&p, 0, 0) == 0);
	CHECK(!pacer_active(&p));
	CHECK_EQ_U64(pacer_grant(&p, ents, 256, 0, &wait), 256);
	CHECK_EQ_U64(wait, 0);
	CHECK_EQ_U64(pacer_wait(&p, ents, 256), 256);
	CHECK_EQ_U64(pacer_waited_ns(&p), 0);
	pacer_destroy(&p);
}

/* 1000/s: a burst of PACER_BURST_NS (one more datagram than its ms), then
 * one per millisecond. */
static void
test_pps(void)
{
	struct pacer	 p;
	int64_t		 wait, now = 1000 * MS;
	size_t		 total = 0;

	fill(100);
	CHECK(pacer_init(&p, 1000, 0) == 0);
	CHECK_EQ_U64(pacer_grant(&p, ents, 100, now, &wait),
	    PACER_BURST_NS / MS + 1);
	CHECK_EQ_U64(pacer_grant(&p, ents, 100, now, &wait), 0);
	CHECK_EQ_U64(wait, 1 * MS);
	CHECK_EQ_U64(pacer_grant(&p, ents, 100, now + wait, &wait), 1);
	/* One simulated second: about 1000 more. */
	for (int64_t t = now + MS; t <= now + 1001 * MS; t += MS / 4)
		total += pacer_grant(&p, ents, 100, t, &wait);
	CHECK(total >= 999 && total <= 1001);
	/* A long idle time banks no more than the burst. */
	CHECK_EQ_U64(pacer_grant(&p, ents, 100, now + 60000 * MS, &wait),
	    PACER_BURST_NS / MS + 1);
	pacer_destroy(&p);
}

/* 8000 bit/s and 100-byte datagrams: 100 ms each; the stricter wins. */
static void
test_bps(void)
{
	struct pacer	 p;
	int64_t		 wait, now = 5 * MS;

	fill(100);
	CHECK(pacer_init(&p, 1000000, 8000) == 0);
	CHECK_EQ_U64(pacer_grant(&p, ents, 10, now, &wait), 1);
	CHECK_EQ_U64(pacer_grant(&p, ents, 10, now, &wait), 0);
	/* the next may go when it is no more than a burst ahead */
	CHECK_EQ_U64(wait, 100 * MS - PACER_BURST_NS);
	CHECK_EQ_U64(pacer_grant(&p, ents, 10, now + wait, &wait), 1);
	pacer_destroy(&p);

	/* Rates above the ceiling are clamped, not overflowed. */
	CHECK(pacer_init(&p, UINT64_MAX, UINT64_MAX) == 0);
	CHECK_EQ_U64(p.pps, PACER_RATE_MAX);
	CHECK_EQ_U64(pacer_grant(&p, ents, 256, now, &wait), 256);
	pacer_destroy(&p);
}

struct sender {
	struct pacer	*p;
	size_t		 n;
};

static void *
sender(void *arg)
{
	struct sender	*s = arg;
	size_t		 done = 0;

	while (done < s->n)
		done += pacer_wait(s->p, ents, s->n - done < 16 ? s->n - done :
		    16);
	return NULL;
}

/* Real sleeping, two threads sharing one collector's schedule. */
static void
test_wait_threads(void)
{
	struct pacer	 p;
	struct sender	 s = { &p, 100 };
	pthread_t	 a, b;
	int64_t		 t0, dt;

	fill(100);
	CHECK(pacer_init(&p, 2000, 0) == 0);
	t0 = util_mono_ns();
	CHECK(pthread_create(&a, NULL, sender, &s) == 0);
	CHECK(pthread_create(&b, NULL, sender, &s) == 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	dt = util_mono_ns() - t0;
	/* 200 datagrams at 2000/s, less the first burst of 21. */
	CHECK(dt >= (200 - 21) * MS / 2);
	CHECK(dt < 2000 * MS);
	CHECK(pacer_waited_ns(&p) > 0);
	pacer_destroy(&p);
}

static struct gateway_config *
gcfg(const char *collectors, uint64_t pps, uint64_t bps)
{
	static struct gateway_config	 c;

	memset(&c, 0, sizeof(c));
	c.listen = (char *)(uintptr_t)"127.0.0.1:1";
	c.path_prefix = (char *)(uintptr_t)"";
	c.collector = (char *)(uintptr_t)collectors;
	c.state_dir = (char *)(uintptr_t)"/tmp";
	c.keys_file = (char *)(uintptr_t)"/dev/null";
	c.metrics_listen = (char *)(uintptr_t)"none";
	c.tls_cert = (char *)(uintptr_t)"";
	c.tls_key = (char *)(uintptr_t)"";
	c.user = (char *)(uintptr_t)"";
	c.collector_max_pps = pps;
	c.collector_max_bps = bps;
	return &c;
}

static void
test_config(void)
{
	struct config_addr	*a = NULL;
	size_t			 n = 0;
	char			 err[256];

	CHECK(config_validate(gcfg("127.0.0.1:2055 pps=5000 bps=1000000, "
	    "127.0.0.1:2056", 100, 0), err, sizeof(err)) == 0);
	CHECK(config_collectors(gcfg("127.0.0.1:2055 pps=5000 bps=1000000, "
	    "127.0.0.1:2056, [::1]:2057 bps=0", 100, 7), &a, &n, err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(n, 3);
	if (n == 3) {
		CHECK_EQ_U64(a[0].max_pps, 5000);
		CHECK_EQ_U64(a[0].max_bps, 1000000);
		CHECK_EQ_U64(a[1].max_pps, 100);	/* the defaults */
		CHECK_EQ_U64(a[1].max_bps, 7);
		CHECK_EQ_U64(a[2].max_pps, 100);
		CHECK_EQ_U64(a[2].max_bps, 0);		/* overridden: off */
	}
	free(a);

	CHECK(config_validate(gcfg("127.0.0.1:1 pps=x", 0, 0), err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "pps=x") != NULL);
	CHECK(config_validate(gcfg("127.0.0.1:1 bps=-1", 0, 0), err,
	    sizeof(err)) == -1);
	CHECK(config_collectors(gcfg("pps=5 127.0.0.1:1", 0, 0), &a, &n, err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "before any collector") != NULL);
	CHECK(config_validate(gcfg("127.0.0.1:1 rate=5", 0, 0), err,
	    sizeof(err)) == -1);
}

/* output_udp paces a collector with pps= and counts the wait. */
struct paced_cb {
	uint64_t	 paced_ns[2];
	uint64_t	 datagrams[2];
	int		 i;
};

static void
paced_cb(const char *name, const struct output_counters *c, void *arg)
{
	struct paced_cb	*p = arg;

	(void)name;
	if (p->i < 2) {
		p->paced_ns[p->i] = c->paced_ns;
		p->datagrams[p->i] = c->datagrams;
	}
	p->i++;
}

static void
test_output_udp(void)
{
	struct config_addr	 col[2];
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	const struct output_ops	*ops;
	void			*ctx;
	struct output_result	 res;
	struct paced_cb		 pc;
	char			 err[256];
	int			 fd[2];
	int			 rcv = 4 << 20;
	int64_t			 t0, dt;

	fill(200);
	memset(col, 0, sizeof(col));
	for (int i = 0; i < 2; i++) {
		fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
		CHECK(fd[i] != -1);
		(void)setsockopt(fd[i], SOL_SOCKET, SO_RCVBUF, &rcv,
		    sizeof(rcv));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(bind(fd[i], (struct sockaddr *)&sin, sizeof(sin)) == 0);
		len = sizeof(sin);
		CHECK(getsockname(fd[i], (struct sockaddr *)&sin, &len) == 0);
		memcpy(&col[i].ss, &sin, sizeof(sin));
		col[i].sslen = sizeof(sin);
		snprintf(col[i].name, sizeof(col[i].name), "c%d", i);
	}
	col[1].max_pps = 1000;
	CHECK(output_udp_open(col, 2, &ops, &ctx, err, sizeof(err)) == 0);
	t0 = util_mono_ns();
	CHECK(ops->send(ctx, ents, 100, &res) == 0);
	dt = util_mono_ns() - t0;
	CHECK_EQ_U64(res.delivered, 2);
	/* 100 at 1000/s after a burst of 11: at least 89 ms. */
	CHECK(dt >= 89 * MS);
	memset(&pc, 0, sizeof(pc));
	ops->foreach(ctx, paced_cb, &pc);
	CHECK_EQ_U64(pc.paced_ns[0], 0);
	CHECK(pc.paced_ns[1] >= 80 * (uint64_t)MS);
	CHECK_EQ_U64(pc.datagrams[0], 100);
	CHECK_EQ_U64(pc.datagrams[1], 100);
	ops->close(ctx);
	close(fd[0]);
	close(fd[1]);
}

TEST_MAIN(test_inactive, test_pps, test_bps, test_wait_threads, test_config,
    test_output_udp)
