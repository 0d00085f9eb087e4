/*
 * recv.c: UDP in.  Listeners, recvmmsg into fixed slots, stamping,
 * sniffing, counting, and the hand-off to the batcher.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nf.h"
#include "util.h"
#include "wire.h"

#include "batcher.h"
#include "recv.h"
#include "seqtrack.h"
#include "stats.h"

/* Rounds of recvmmsg per socket per poll, so one busy port cannot starve
 * the others or the batch age timer. */
#define RECV_ROUNDS	16

struct recv_listener {
	int		fd;
	uint16_t	port;		/* local port, after bind */
	char		name[64];	/* bound address, for logs */
};

struct recv {
	struct recv_listener	*l;
	struct pollfd		*pfd;
	size_t			 n;
	struct batcher		*batcher;
	int			 drop_malformed;

	uint8_t			*slots;	/* RECV_SLOTS * RECV_SLOT_SIZE */
	struct mmsghdr		 msgs[RECV_SLOTS];
	struct iovec		 iov[RECV_SLOTS];
	struct sockaddr_storage	 from[RECV_SLOTS];
};

static void
recv_set_rcvbuf(struct recv_listener *l, uint64_t want)
{
	int		v, got = 0;
	socklen_t	len = sizeof(got);

	if (want == 0)
		return;
	v = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
	/* FORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN) */
	if (setsockopt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v,
	    sizeof(v)) == -1 &&
	    setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) == -1) {
		log_warn("recv: %s: cannot set SO_RCVBUF to %d: %s", l->name,
		    v, strerror(errno));
		return;
	}
	/* Linux reports twice the size it was given */
	if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 &&
	    got / 2 < v)
		log_warn("recv: %s: receive buffer is %d bytes, not the %d "
		    "asked (raise net.core.rmem_max)", l->name, got / 2, v);
}

static int
recv_bind(struct recv_listener *l, const struct sockaddr_storage *ss,
    socklen_t len, uint64_t rcvbuf)
{
	struct sockaddr_storage	 bound;
	socklen_t		 blen = sizeof(bound);
	int			 one = 1;

	util_format_sockaddr((const struct sockaddr *)ss, l->name,
	    sizeof(l->name));
	l->fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (l->fd == -1) {
		log_error("recv: cannot create a socket for %s: %s", l->name,
		    strerror(errno));
		return -1;
	}
	/* [::] must not take IPv4 too, or 0.0.0.0 on the same port fails */
	if (ss->ss_family == AF_INET6 && setsockopt(l->fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) {
		log_error("recv: %s: cannot set IPV6_V6ONLY: %s", l->name,
		    strerror(errno));
		return -1;
	}
	recv_set_rcvbuf(l, rcvbuf);
	if (bind(l->fd, (const struct sockaddr *)ss, len) == -1) {
		log_error("recv: cannot listen on %s: %s", l->name,
		    strerror(errno));
		return -1;
	}
	if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) == -1) {
		log_error("recv: %s: getsockname: %s", l->name,
		    strerror(errno));
		return -1;
	}
	/* port 0 picks a free one: name the real port from now on */
	util_format_sockaddr((const struct sockaddr *)&bound, l->name,
	    sizeof(l->name));
	if (bound.ss_family == AF_INET)
		l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	else
		l->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	return 0;
}

int
recv_open(struct recv **out, const struct sockaddr_storage *addrs,
    const socklen_t *lens, size_t n, uint64_t rcvbuf, struct batcher *b,
    int drop_malformed)
{
	struct recv	*r;
	size_t		 i;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->l = calloc(n, sizeof(*r->l))) == NULL ||
	    (r->pfd = calloc(n, sizeof(*r->pfd))) == NULL ||
	    (r->slots = malloc((size_t)RECV_SLOTS * RECV_SLOT_SIZE)) == NULL) {
		log_error("recv: out of memory");
		goto fail;
	}
	r->batcher = b;
	r->drop_malformed = drop_malformed;
	for (i = 0; i < n; i++)
		r->l[i].fd = -1;
	r->n = n;
	for (i = 0; i < n; i++) {
		if (recv_bind(&r->l[i], &addrs[i], lens[i], rcvbuf) == -1)
			goto fail;
		r->pfd[i].fd = r->l[i].fd;
		r->pfd[i].events = POLLIN;
	}
	for (i = 0; i < RECV_SLOTS; i++) {
		r->iov[i].iov_base = r->slots + i * RECV_SLOT_SIZE;
		r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
		r->msgs[i].msg_hdr.msg_iovlen = 1;
		r->msgs[i].msg_hdr.msg_name = &r->from[i];
	}
	*out = r;
	return 0;
 fail:
	recv_close(r);
	return -1;
}

void
recv_close(struct recv *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; r->l != NULL && i < r->n; i++)
		if (r->l[i].fd != -1)
			close(r->l[i].fd);
	free(r->slots);
	free(r->pfd);
	free(r->l);
	free(r);
}

void
recv_set_drop_malformed(struct recv *r, int drop_malformed)
{
	r->drop_malformed = drop_malformed;
}

void
recv_describe(const struct recv *r, char *out, size_t outlen)
{
	size_t	i, off = 0;
	int	k;

	out[0] = '\0';
	for (i = 0; i < r->n && off < outlen; i++) {
		k = snprintf(out + off, outlen - off, "%s%s", i ? " " : "",
		    r->l[i].name);
		if (k < 0)
			break;
		off += (size_t)k;
	}
}

/* Exporter address from the sender's sockaddr; -1 for other families. */
static int
recv_source(const struct sockaddr_storage *ss, struct wire_entry *e)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(e->addr, 0, sizeof(e->addr));
	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		e->family = 4;
		memcpy(e->addr, &sin->sin_addr, 4);
		e->src_port = ntohs(sin->sin_port);
		return 0;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		e->src_port = ntohs(sin6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			/* a dual-stack socket's IPv4 exporter is IPv4 */
			e->family = 4;
			memcpy(e->addr, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			e->family = 6;
			memcpy(e->addr, &sin6->sin6_addr, 16);
		}
		return 0;
	default:
		return -1;
	}
}

static void
recv_one(struct recv *r, const struct recv_listener *l, size_t i,
    uint64_t now_us, int64_t now_ns)
{
	static struct log_limit	 lim_inv, lim_mal, lim_trunc;
	const struct mmsghdr	*m = &r->msgs[i];
	const uint8_t		*p = r->iov[i].iov_base;
	struct wire_entry	 e;
	struct nf_info		 info;
	char			 from[64];
	size_t			 len = m->msg_len;

	STATS_INC(received_datagrams);
	STATS_ADD(received_bytes, len);
	if ((m->msg_hdr.msg_flags & MSG_TRUNC) || len > WIRE_DATAGRAM_MAX) {
		STATS_INC(dropped_truncated);
		log_limited(&lim_trunc, 60, LOGL_WARN, "recv: %s: truncated "
		    "datagram dropped", l->name);
		return;
	}
	switch (nf_check(p, len, &info)) {
	case NF_OK:
		break;
	case NF_MALFORMED:
		STATS_INC(malformed);
		if (r->drop_malformed) {
			STATS_INC(dropped_malformed);
			util_format_sockaddr(
			    (const struct sockaddr *)&r->from[i], from,
			    sizeof(from));
			log_limited(&lim_mal, 60, LOGL_WARN, "recv: %s: "
			    "malformed NetFlow/IPFIX from %s dropped: %s",
			    l->name, from, info.why ? info.why : "?");
			return;
		}
		break;
	case NF_INVALID:
	default:
		STATS_INC(dropped_invalid);
		util_format_sockaddr((const struct sockaddr *)&r->from[i],
		    from, sizeof(from));
		log_limited(&lim_inv, 60, LOGL_WARN, "recv: %s: dropping a "
		    "%zu byte datagram from %s that is not NetFlow/IPFIX: %s",
		    l->name, len, from, info.why ? info.why : "?");
		return;
	}
	if (recv_source(&r->from[i], &e) == -1) {
		STATS_INC(dropped_invalid);
		return;
	}
	e.recv_us = now_us;
	e.dst_port = l->port;
	e.len = (uint16_t)len;
	e.payload = p;
	/*
	 * Loss before the client, from the export sequence numbers; only
	 * well-formed datagrams (nf_check() names no reason for those).
	 */
	if (info.why == NULL)
		seqtrack_note(&e, &info);
	batcher_add(r->batcher, &e, now_ns);
}

static void
recv_drain(struct recv *r, const struct recv_listener *l)
{
	static struct log_limit	 lim;
	uint64_t		 now_us;
	int64_t			 now_ns;
	int			 round, got, i;

	for (round = 0; round < RECV_ROUNDS; round++) {
		for (i = 0; i < RECV_SLOTS; i++) {
			r->iov[i].iov_len = RECV_SLOT_SIZE;
			r->msgs[i].msg_hdr.msg_namelen = sizeof(r->from[i]);
			r->msgs[i].msg_hdr.msg_flags = 0;
			r->msgs[i].msg_len = 0;
		}
		got = recvmmsg(l->fd, r->msgs, RECV_SLOTS, MSG_DONTWAIT, NULL);
		if (got == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_limited(&lim, 60, LOGL_ERROR, "recv: %s: "
				    "recvmmsg: %s", l->name, strerror(errno));
			return;
		}
		/* one clock read per call: the datagrams arrived together */
		now_us = util_real_us();
		now_ns = util_mono_ns();
		for (i = 0; i < got; i++)
			recv_one(r, l, (size_t)i, now_us, now_ns);
		if (got < RECV_SLOTS)
			return;
	}
}

int
recv_poll(struct recv *r, int timeout_ms)
{
	size_t	i;
	int	n;

	n = poll(r->pfd, (nfds_t)r->n, timeout_ms);
	if (n <= 0)
		return 0;	/* time-out, or a signal: the caller looks */
	for (i = 0; i < r->n; i++)
		if (r->pfd[i].revents & (POLLIN | POLLERR))
			recv_drain(r, &r->l[i]);
	return 0;
}
