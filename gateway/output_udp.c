/*
 * output_udp.c: every datagram of a batch, in order, to every collector.
 *
 * One socket per collector, unconnected: on a connected UDP socket an ICMP
 * port unreachable from the collector fails a later send, whereas here a
 * collector that is briefly down simply does not receive.  The sockets are
 * non-blocking so a send can wait a bounded time for buffer space instead
 * of hanging a request thread forever; "sent" means the kernel took the
 * datagram.  A collector with pps= / bps= limits is paced (pacer.h): the
 * sending thread sleeps between chunks, so the batch takes longer and the
 * HTTP answer waits for it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "output_udp.h"
#include "pacer.h"
#include "srcmap.h"
#include "util.h"

#define OU_CHUNK	64	/* datagrams per sendmmsg() */
#define OU_STALLS_MAX	100	/* waits in a row without progress */
#define OU_POLL_MS	10

struct ou_target {
	int			 fd;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 name[CONFIG_ADDR_NAME_MAX];
	_Atomic uint64_t	 datagrams;
	_Atomic uint64_t	 bytes;
	_Atomic uint64_t	 send_errors;
	struct log_limit	 lim;
	struct pacer		 pacer;
	int			 pacer_ready;
	struct srcmap		*sm;		/* exporter identity, or NULL */
};

struct output_udp {
	size_t			 n;
	struct ou_target	*t;
};

/*
 * Waits a little for the kernel: for buffer space (EAGAIN) with poll(),
 * for memory (ENOBUFS, which poll() does not signal) with a short sleep.
 */
static void
ou_wait(int fd, int err, int stalls)
{
	struct pollfd	 pfd;
	struct timespec	 ts;

	if (err == ENOBUFS) {
		ts.tv_sec = 0;
		ts.tv_nsec = (stalls < 10 ? stalls : 10) * 1000000L;
		nanosleep(&ts, NULL);
		return;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	(void)poll(&pfd, 1, OU_POLL_MS);
}

/* The batch through the exporter identity module (srcmap.h). */
static int
ou_send_srcmap(struct ou_target *t, const struct wire_entry *e, size_t n)
{
	size_t		 sent = 0;
	uint64_t	 bytes = 0;
	int		 rv, err;

	rv = srcmap_send(t->sm, t->fd, &t->ss, t->sslen, e, n, &t->pacer,
	    &sent, &bytes);
	err = errno;
	atomic_fetch_add_explicit(&t->datagrams, sent, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->bytes, bytes, memory_order_relaxed);
	if (rv == -1) {
		atomic_fetch_add_explicit(&t->send_errors, n - sent,
		    memory_order_relaxed);
		log_limited(&t->lim, 10, LOGL_WARN, "output_udp: collector %s: "
		    "datagram %zu of %zu not sent: %s", t->name, sent + 1, n,
		    err == ETIMEDOUT ? "no buffer space for too long" :
		    strerror(err));
	}
	return rv;
}

/* The whole batch to one collector; 0 if the kernel took every datagram. */
static int
ou_send_target(struct ou_target *t, const struct wire_entry *e, size_t n)
{
	struct mmsghdr	 msgs[OU_CHUNK];
	struct iovec	 iov[OU_CHUNK];
	size_t		 done = 0, k = 0, sent = 0;
	uint64_t	 bytes = 0;
	int		 stalls = 0, r, err = 0;

	if (t->sm != NULL)
		return ou_send_srcmap(t, e, n);
	while (done < n) {
		k = n - done < OU_CHUNK ? n - done : OU_CHUNK;
		/* Paced collectors: no more than the schedule allows now. */
		k = pacer_wait(&t->pacer, e + done, k);
		memset(msgs, 0, k * sizeof(msgs[0]));
		for (size_t i = 0; i < k; i++) {
			iov[i].iov_base = (void *)(uintptr_t)e[done + i].payload;
			iov[i].iov_len = e[done + i].len;
			msgs[i].msg_hdr.msg_name = &t->ss;
			msgs[i].msg_hdr.msg_namelen = t->sslen;
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		for (sent = 0; sent < k;) {
			r = sendmmsg(t->fd, msgs + sent, (unsigned int)(k - sent),
			    MSG_DONTWAIT);
			if (r > 0) {
				for (size_t i = sent; i < sent + (size_t)r; i++)
					bytes += iov[i].iov_len;
				sent += (size_t)r;
				stalls = 0;
				continue;
			}
			if (r == 0)
				errno = EAGAIN;
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ENOBUFS) && ++stalls <= OU_STALLS_MAX) {
				ou_wait(t->fd, errno, stalls);
				continue;
			}
			err = stalls > OU_STALLS_MAX ? ETIMEDOUT : errno;
			goto fail;
		}
		done += k;
	}
	atomic_fetch_add_explicit(&t->datagrams, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->bytes, bytes, memory_order_relaxed);
	return 0;
fail:
	atomic_fetch_add_explicit(&t->datagrams, done + sent,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&t->bytes, bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->send_errors, n - done - sent,
	    memory_order_relaxed);
	log_limited(&t->lim, 10, LOGL_WARN, "output_udp: collector %s: "
	    "datagram %zu of %zu not sent: %s", t->name, done + sent + 1, n,
	    err == ETIMEDOUT ? "no buffer space for too long" : strerror(err));
	return -1;
}

static int
ou_send(void *ctx, const struct wire_entry *entries, size_t n,
    struct output_result *res)
{
	struct output_udp	*ou = ctx;

	res->targets = (unsigned int)ou->n;
	res->delivered = 0;
	for (size_t i = 0; i < ou->n; i++)
		if (ou_send_target(&ou->t[i], entries, n) == 0)
			res->delivered++;
	return res->delivered > 0 ? 0 : -1;
}

static void
ou_foreach(void *ctx, void (*cb)(const char *name,
    const struct output_counters *c, void *arg), void *arg)
{
	struct output_udp	*ou = ctx;
	struct output_counters	 c;

	for (size_t i = 0; i < ou->n; i++) {
		c.datagrams = atomic_load_explicit(&ou->t[i].datagrams,
		    memory_order_relaxed);
		c.bytes = atomic_load_explicit(&ou->t[i].bytes,
		    memory_order_relaxed);
		c.send_errors = atomic_load_explicit(&ou->t[i].send_errors,
		    memory_order_relaxed);
		c.paced_ns = pacer_waited_ns(&ou->t[i].pacer);
		cb(ou->t[i].name, &c, arg);
	}
}

static void
ou_close(void *ctx)
{
	struct output_udp	*ou = ctx;

	if (ou == NULL)
		return;
	for (size_t i = 0; i < ou->n; i++) {
		if (ou->t[i].fd != -1)
			close(ou->t[i].fd);
		if (ou->t[i].pacer_ready)
			pacer_destroy(&ou->t[i].pacer);
	}
	free(ou->t);
	free(ou);
}

void
output_udp_set_srcmap(void *ctx, struct srcmap *sm)
{
	struct output_udp	*ou = ctx;

	for (size_t i = 0; i < ou->n; i++)
		ou->t[i].sm = sm;
}

static const struct output_ops ou_ops = {
	.send = ou_send,
	.foreach = ou_foreach,
	.close = ou_close,
};

int
output_udp_open(const struct config_addr *collectors, size_t n,
    const struct output_ops **ops, void **ctx, char *err, size_t errlen)
{
	struct output_udp	*ou;
	int			 sz = OUTPUT_UDP_SNDBUF;

	*ops = NULL;
	*ctx = NULL;
	if (n == 0) {
		util_snprintf(err, errlen, "output_udp: no collectors");
		return -1;
	}
	if ((ou = calloc(1, sizeof(*ou))) == NULL ||
	    (ou->t = calloc(n, sizeof(*ou->t))) == NULL) {
		util_snprintf(err, errlen, "output_udp: %s", strerror(errno));
		free(ou);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		ou->t[i].fd = -1;
	ou->n = n;
	for (size_t i = 0; i < n; i++) {
		struct ou_target *t = &ou->t[i];

		memcpy(&t->ss, &collectors[i].ss, sizeof(t->ss));
		t->sslen = collectors[i].sslen;
		memcpy(t->name, collectors[i].name, sizeof(t->name));
		if (pacer_init(&t->pacer, collectors[i].max_pps,
		    collectors[i].max_bps) == -1) {
			util_snprintf(err, errlen, "output_udp: collector %s: "
			    "cannot create a lock", t->name);
			ou_close(ou);
			return -1;
		}
		t->pacer_ready = 1;
		if (pacer_active(&t->pacer))
			log_info("output_udp: collector %s paced: pps=%" PRIu64
			    " bps=%" PRIu64 " (0 = no limit)", t->name,
			    collectors[i].max_pps, collectors[i].max_bps);
		t->fd = socket(t->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (t->fd == -1) {
			util_snprintf(err, errlen, "output_udp: collector %s: "
			    "socket: %s", t->name, strerror(errno));
			ou_close(ou);
			return -1;
		}
		/*
		 * A large send buffer absorbs a whole batch at once; beyond
		 * net.core.wmem_max only a privileged process gets it.
		 */
		if (setsockopt(t->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz,
		    sizeof(sz)) == -1)
			(void)setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &sz,
			    sizeof(sz));
	}
	*ops = &ou_ops;
	*ctx = ou;
	return 0;
}
