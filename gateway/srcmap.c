/*
 * srcmap.c: per-exporter sockets and spoofed sources (srcmap.h says when
 * and why).
 *
 * The table of per-exporter sockets is shared by every request thread and
 * collector.  A socket in use by a sender is never closed: lookups take a
 * reference under the lock, the send happens outside it, and eviction
 * only picks sockets nobody holds.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "log.h"
#include "srcmap.h"
#include "util.h"

#define SM_BUCKETS	1024
#define SM_IP4_HDR	20
#define SM_UDP_HDR	8
#define SM_PKT_MAX	65535
#define SM_STALLS_MAX	100
#define SM_POLL_MS	10
#define SM_SNDBUF	(1024 * 1024)

enum sm_kind {
	SM_MAPPED,		/* bound to an ephemeral port of ours */
	SM_TRANSPARENT,		/* IPv6, bound to the exporter's address */
};

struct sm_key {
	uint8_t		 kind;
	uint8_t		 sfamily;	/* AF_INET / AF_INET6 of the socket */
	uint8_t		 family;	/* exporter: 4 or 6 */
	uint8_t		 addr[16];
	uint16_t	 port;
};

struct sm_sock {
	struct sm_sock	*next;
	struct sm_sock	*newer, *older;
	unsigned int	 bucket;
	struct sm_key	 k;
	int		 fd;
	unsigned int	 users;
};

struct srcmap {
	struct srcmap_params	 p;
	int			 raw4;		/* -1 unless preserve_source */
	pthread_mutex_t		 mu;
	struct sm_sock		*bucket[SM_BUCKETS];
	struct sm_sock		*newest, *oldest;
	size_t			 n;
	struct srcmap_counters	 c;
	struct log_limit	 lim;
};

/* ------------------------------------------------------------------ */
/* Checksums */

static uint32_t
sm_sum(uint32_t acc, const uint8_t *p, size_t len)
{
	size_t	 i;

	for (i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)be16(p + i);
	if (i < len)
		acc += (uint32_t)p[i] << 8;
	return acc;
}

static uint16_t
sm_fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

uint16_t
srcmap_udp4_checksum(const uint8_t src[4], const uint8_t dst[4],
    const uint8_t *udp, size_t len)
{
	uint8_t		 pseudo[12];
	struct wcur	 w;
	uint16_t	 ck;

	wcur_init(&w, pseudo, sizeof(pseudo));
	wcur_bytes(&w, src, 4);
	wcur_bytes(&w, dst, 4);
	wcur_u8(&w, 0);
	wcur_u8(&w, IPPROTO_UDP);
	wcur_u16(&w, (uint16_t)len);
	ck = sm_fold(sm_sum(sm_sum(0, pseudo, sizeof(pseudo)), udp, len));
	/* 0 means "no checksum" in UDP over IPv4; all ones stands for it. */
	return ck == 0 ? 0xffff : ck;
}

/* The IPv4 and UDP headers and the payload into pkt; its length or 0. */
static size_t
sm_build4(uint8_t *pkt, size_t cap, const struct wire_entry *e,
    const struct sockaddr_in *dst)
{
	struct wcur	 w;
	size_t		 total = SM_IP4_HDR + SM_UDP_HDR + e->len;
	uint8_t		 daddr[4];
	uint16_t	 ck;

	if (total > SM_PKT_MAX || total > cap)
		return 0;
	memcpy(daddr, &dst->sin_addr, 4);
	wcur_init(&w, pkt, total);
	wcur_u8(&w, 0x45);			/* version 4, 5 words */
	wcur_u8(&w, 0);				/* DSCP, ECN */
	wcur_u16(&w, (uint16_t)total);
	wcur_u16(&w, 0);			/* id: the kernel fills it */
	wcur_u16(&w, 0);			/* may be fragmented */
	wcur_u8(&w, 64);			/* TTL */
	wcur_u8(&w, IPPROTO_UDP);
	wcur_u16(&w, 0);			/* header checksum, below */
	wcur_bytes(&w, e->addr, 4);
	wcur_bytes(&w, daddr, 4);
	wcur_u16(&w, e->src_port);
	wcur_u16(&w, ntohs(dst->sin_port));
	wcur_u16(&w, (uint16_t)(SM_UDP_HDR + e->len));
	wcur_u16(&w, 0);			/* UDP checksum, below */
	wcur_bytes(&w, e->payload, e->len);
	if (w.err)
		return 0;
	ck = sm_fold(sm_sum(0, pkt, SM_IP4_HDR));
	wcur_init(&w, pkt + 10, 2);
	wcur_u16(&w, ck);
	ck = srcmap_udp4_checksum(e->addr, daddr, pkt + SM_IP4_HDR,
	    SM_UDP_HDR + e->len);
	wcur_init(&w, pkt + SM_IP4_HDR + 6, 2);
	wcur_u16(&w, ck);
	return total;
}

/* ------------------------------------------------------------------ */
/* The socket table */

static unsigned int
sm_hash(const struct sm_key *k)
{
	uint32_t	 h = 2166136261u;
	uint8_t		 b[3 + 16 + 2];
	struct wcur	 w;

	wcur_init(&w, b, sizeof(b));
	wcur_u8(&w, k->kind);
	wcur_u8(&w, k->sfamily);
	wcur_u8(&w, k->family);
	wcur_bytes(&w, k->addr, 16);
	wcur_u16(&w, k->port);
	for (size_t i = 0; i < sizeof(b); i++)
		h = (h ^ b[i]) * 16777619u;
	return h % SM_BUCKETS;
}

static int
sm_key_eq(const struct sm_key *a, const struct sm_key *b)
{
	return a->kind == b->kind && a->sfamily == b->sfamily &&
	    a->family == b->family && a->port == b->port &&
	    memcmp(a->addr, b->addr, 16) == 0;
}

static void
sm_unlink(struct srcmap *sm, struct sm_sock *s)
{
	if (s->newer != NULL)
		s->newer->older = s->older;
	else
		sm->newest = s->older;
	if (s->older != NULL)
		s->older->newer = s->newer;
	else
		sm->oldest = s->newer;
	s->newer = s->older = NULL;
}

static void
sm_push(struct srcmap *sm, struct sm_sock *s)
{
	s->older = sm->newest;
	s->newer = NULL;
	if (sm->newest != NULL)
		sm->newest->newer = s;
	sm->newest = s;
	if (sm->oldest == NULL)
		sm->oldest = s;
}

static void
sm_drop(struct srcmap *sm, struct sm_sock *s)
{
	struct sm_sock	**pp;

	for (pp = &sm->bucket[s->bucket]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	sm_unlink(sm, s);
	close(s->fd);
	free(s);
	sm->n--;
}

/* Closes the least recently used idle socket; -1 if all are in use. */
static int
sm_evict(struct srcmap *sm)
{
	for (struct sm_sock *s = sm->oldest; s != NULL; s = s->newer) {
		if (s->users == 0) {
			sm_drop(sm, s);
			sm->c.evicted++;
			return 0;
		}
	}
	return -1;
}

/* A new socket for `k`; -1 with errno. */
static int
sm_socket(const struct sm_key *k)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 fd, one = 1, sz = SM_SNDBUF, saved;

	fd = socket(k->sfamily, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (k->sfamily == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one)) == -1)
			goto fail;
		sin6->sin6_family = AF_INET6;
		if (k->kind == SM_TRANSPARENT) {
			if (setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one,
			    sizeof(one)) == -1 ||
			    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			    sizeof(one)) == -1)
				goto fail;
			memcpy(&sin6->sin6_addr, k->addr, 16);
			sin6->sin6_port = htons(k->port);
		}
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		len = sizeof(*sin);
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* The socket for `k`, held (users + 1); NULL with errno. */
static struct sm_sock *
sm_get(struct srcmap *sm, const struct sm_key *k)
{
	unsigned int	 b = sm_hash(k);
	struct sm_sock	*s;
	int		 fd;

	pthread_mutex_lock(&sm->mu);
	for (s = sm->bucket[b]; s != NULL; s = s->next)
		if (sm_key_eq(&s->k, k))
			break;
	if (s != NULL) {
		sm_unlink(sm, s);
		sm_push(sm, s);
		s->users++;
		goto out;
	}
	if (sm->n >= sm->p.sockets_max && sm_evict(sm) == -1) {
		errno = EMFILE;
		goto out;
	}
	if ((fd = sm_socket(k)) == -1)
		goto out;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		errno = ENOMEM;
		goto out;
	}
	s->k = *k;
	s->fd = fd;
	s->bucket = b;
	s->users = 1;
	s->next = sm->bucket[b];
	sm->bucket[b] = s;
	sm_push(sm, s);
	sm->n++;
out:
	pthread_mutex_unlock(&sm->mu);
	return s;
}

static void
sm_put(struct srcmap *sm, struct sm_sock *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&sm->mu);
	s->users--;
	pthread_mutex_unlock(&sm->mu);
}

/* ------------------------------------------------------------------ */
/* Sending */

/*
 * One datagram on one socket, waiting a bounded time for buffer space.
 * 0, or -1 with errno.
 */
static int
sm_sendto(int fd, const void *buf, size_t len, const struct sockaddr *dst,
    socklen_t dstlen)
{
	struct pollfd	 pfd;
	struct timespec	 ts;
	int		 stalls = 0;

	for (;;) {
		if (sendto(fd, buf, len, MSG_DONTWAIT, dst, dstlen) != -1)
			return 0;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOBUFS) || ++stalls > SM_STALLS_MAX) {
			if (stalls > SM_STALLS_MAX)
				errno = ETIMEDOUT;
			return -1;
		}
		if (errno == ENOBUFS) {
			ts.tv_sec = 0;
			ts.tv_nsec = (stalls < 10 ? stalls : 10) * 1000000L;
			nanosleep(&ts, NULL);
		} else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			(void)poll(&pfd, 1, SM_POLL_MS);
		}
	}
}

static void
sm_count(struct srcmap *sm, uint64_t *c)
{
	pthread_mutex_lock(&sm->mu);
	(*c)++;
	pthread_mutex_unlock(&sm->mu);
}

static void
sm_key_of(struct sm_key *k, enum sm_kind kind, int sfamily,
    const struct wire_entry *e)
{
	memset(k, 0, sizeof(*k));
	k->kind = (uint8_t)kind;
	k->sfamily = (uint8_t)sfamily;
	k->family = e->family;
	memcpy(k->addr, e->addr, 16);
	k->port = e->src_port;
}

/*
 * Tries to send `e` with the exporter's own address: 1 if it went, 0 if
 * the identity cannot be kept (fall back), -1 with errno on a send error
 * worth failing for.
 */
static int
sm_preserve(struct srcmap *sm, uint8_t *pkt, const struct sockaddr_storage *dst,
    socklen_t dstlen, const struct wire_entry *e)
{
	struct sm_sock	*s;
	struct sm_key	 k;
	size_t		 len;
	int		 rv;

	if (e->family == 4 && dst->ss_family == AF_INET && sm->raw4 != -1) {
		len = sm_build4(pkt, SM_PKT_MAX, e,
		    (const struct sockaddr_in *)dst);
		if (len == 0)
			return 0;
		if (sm_sendto(sm->raw4, pkt, len, (const struct sockaddr *)dst,
		    dstlen) == 0)
			return 1;
		return errno == EMSGSIZE || errno == EPERM ||
		    errno == EACCES || errno == EINVAL ? 0 : -1;
	}
	if (e->family != 6 || dst->ss_family != AF_INET6)
		return 0;
	sm_key_of(&k, SM_TRANSPARENT, AF_INET6, e);
	if ((s = sm_get(sm, &k)) == NULL) {
		log_limited(&sm->lim, 60, LOGL_WARN, "srcmap: cannot send as "
		    "the IPv6 exporter (transparent socket): %s; sending from "
		    "the gateway's address", strerror(errno));
		return 0;
	}
	rv = sm_sendto(s->fd, e->payload, e->len, (const struct sockaddr *)dst,
	    dstlen);
	sm_put(sm, s);
	if (rv == 0)
		return 1;
	return errno == EMSGSIZE || errno == EPERM || errno == EACCES ||
	    errno == EINVAL ? 0 : -1;
}

int
srcmap_send(struct srcmap *sm, int fd, const struct sockaddr_storage *dst,
    socklen_t dstlen, const struct wire_entry *e, size_t n,
    struct pacer *pacer, size_t *sent, uint64_t *bytes)
{
	uint8_t		*pkt = NULL;
	struct sm_sock	*s;
	struct sm_key	 k;
	int		 rv = -1, r;

	*sent = 0;
	*bytes = 0;
	if (sm->p.preserve_source && (pkt = malloc(SM_PKT_MAX)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		(void)pacer_wait(pacer, e + i, 1);
		if (sm->p.preserve_source) {
			r = sm_preserve(sm, pkt, dst, dstlen, e + i);
			if (r == -1)
				goto out;
			if (r == 1) {
				sm_count(sm, &sm->c.preserved);
				goto next;
			}
			sm_count(sm, &sm->c.fallbacks);
		}
		if (sm->p.source_port_map) {
			sm_key_of(&k, SM_MAPPED, dst->ss_family, e + i);
			if ((s = sm_get(sm, &k)) != NULL) {
				r = sm_sendto(s->fd, e[i].payload, e[i].len,
				    (const struct sockaddr *)dst, dstlen);
				sm_put(sm, s);
				if (r == -1)
					goto out;
				if (!sm->p.preserve_source)
					sm_count(sm, &sm->c.mapped);
				goto next;
			}
			if (!sm->p.preserve_source)
				sm_count(sm, &sm->c.fallbacks);
		}
		if (sm_sendto(fd, e[i].payload, e[i].len,
		    (const struct sockaddr *)dst, dstlen) == -1)
			goto out;
next:
		(*sent)++;
		*bytes += e[i].len;
	}
	rv = 0;
out:
	free(pkt);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Life cycle and counters */

struct srcmap *
srcmap_open(const struct srcmap_params *p, char *err, size_t errlen)
{
	struct srcmap	*sm;
	int		 sz = 4 * 1024 * 1024;

	if ((sm = calloc(1, sizeof(*sm))) == NULL) {
		util_snprintf(err, errlen, "srcmap: out of memory");
		return NULL;
	}
	sm->p = *p;
	if (sm->p.sockets_max == 0)
		sm->p.sockets_max = SRCMAP_SOCKETS_MAX;
	sm->raw4 = -1;
	if (pthread_mutex_init(&sm->mu, NULL) != 0) {
		util_snprintf(err, errlen, "srcmap: cannot create a lock");
		free(sm);
		return NULL;
	}
	if (p->preserve_source) {
		/* IPPROTO_RAW implies IP_HDRINCL: we write the IP header. */
		sm->raw4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, IPPROTO_RAW);
		if (sm->raw4 == -1) {
			util_snprintf(err, errlen, "preserve_source: cannot "
			    "open a raw socket (needs CAP_NET_RAW): %s",
			    strerror(errno));
			srcmap_close(sm);
			return NULL;
		}
		if (setsockopt(sm->raw4, SOL_SOCKET, SO_SNDBUFFORCE, &sz,
		    sizeof(sz)) == -1)
			(void)setsockopt(sm->raw4, SOL_SOCKET, SO_SNDBUF, &sz,
			    sizeof(sz));
	}
	return sm;
}

void
srcmap_close(struct srcmap *sm)
{
	if (sm == NULL)
		return;
	while (sm->oldest != NULL)
		sm_drop(sm, sm->oldest);
	if (sm->raw4 != -1)
		close(sm->raw4);
	pthread_mutex_destroy(&sm->mu);
	free(sm);
}

void
srcmap_get_counters(struct srcmap *sm, struct srcmap_counters *c)
{
	pthread_mutex_lock(&sm->mu);
	*c = sm->c;
	c->sockets = sm->n;
	pthread_mutex_unlock(&sm->mu);
}

static int
sm_metric(struct buf *out, const char *name, const char *type,
    const char *help, uint64_t v)
{
	char	 line[512];
	int	 n;

	n = snprintf(line, sizeof(line), "# HELP flowpost_gateway_srcmap_%s "
	    "%s\n# TYPE flowpost_gateway_srcmap_%s %s\n"
	    "flowpost_gateway_srcmap_%s %" PRIu64 "\n", name, help, name, type,
	    name, v);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return buf_append(out, line, (size_t)n);
}

int
srcmap_metrics(struct srcmap *sm, struct buf *out)
{
	struct srcmap_counters	 c;

	srcmap_get_counters(sm, &c);
	if (sm_metric(out, "preserved_total", "counter", "datagrams sent "
	    "with the exporter's address and port (preserve_source)",
	    c.preserved) == -1 ||
	    sm_metric(out, "mapped_total", "counter", "datagrams sent from "
	    "the exporter's own gateway port (source_port_map)",
	    c.mapped) == -1 ||
	    sm_metric(out, "fallbacks_total", "counter", "datagrams whose "
	    "exporter identity could not be kept", c.fallbacks) == -1 ||
	    sm_metric(out, "sockets", "gauge", "per-exporter sockets open",
	    c.sockets) == -1 ||
	    sm_metric(out, "evicted_total", "counter", "per-exporter sockets "
	    "closed to make room", c.evicted) == -1)
		return -1;
	return 0;
}
