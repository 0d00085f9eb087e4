/*
 * spool.c: sealed batches on disk, oldest first, within limits.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "wire.h"

#include "spool.h"
#include "stats.h"

#define SPOOL_SUFFIX		".fpb"
#define SPOOL_NAME_LEN		(20 + sizeof(SPOOL_SUFFIX) - 1)
#define SPOOL_TMP_PREFIX	".tmp."		/* util_write_atomic() */
#define SPOOL_STATE_MAX		64

struct spool {
	pthread_mutex_t		 mu;
	char			*dir;
	uint64_t		 max_bytes;
	uint64_t		 max_age_s;
	int			 drop_newest;

	/* index: items[head .. head + n), ascending seq */
	struct spool_item	*items;
	size_t			 head, n, cap;
	uint64_t		 total;		/* bytes of indexed files */
	uint64_t		 pending;	/* bytes being written */
	uint64_t		 inflight;	/* seq being sent, 0 = none */

	uint64_t		 next_seq;
	uint64_t		 seq_limit;	/* first seq not reserved */
};

static void
spool_name(char out[SPOOL_NAME_LEN + 1], uint64_t seq)
{
	snprintf(out, SPOOL_NAME_LEN + 1, "%020" PRIu64 SPOOL_SUFFIX, seq);
}

/* 0 and the sequence number if `name` is a batch file name. */
static int
spool_parse_name(const char *name, uint64_t *seq)
{
	char	digits[21];
	size_t	i;

	if (strlen(name) != SPOOL_NAME_LEN ||
	    strcmp(name + 20, SPOOL_SUFFIX) != 0)
		return -1;
	for (i = 0; i < 20; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	memcpy(digits, name, 20);
	digits[20] = '\0';
	return util_parse_u64(digits, seq);
}

static void
spool_gauges(struct spool *s)
{
	STATS_SET(spool_batches, s->n);
	STATS_SET(spool_bytes, s->total);
}

static struct spool_item *
spool_at(struct spool *s, size_t i)
{
	return &s->items[s->head + i];
}

static int
spool_append(struct spool *s, const struct spool_item *it)
{
	struct spool_item	*p;
	size_t			 ncap;

	if (s->head + s->n == s->cap) {
		if (s->head > 0) {
			memmove(s->items, s->items + s->head,
			    s->n * sizeof(*s->items));
			s->head = 0;
		} else {
			ncap = s->cap ? s->cap * 2 : 256;
			if ((p = reallocarray(s->items, ncap,
			    sizeof(*p))) == NULL)
				return -1;
			s->items = p;
			s->cap = ncap;
		}
	}
	s->items[s->head + s->n++] = *it;
	s->total += it->bytes;
	return 0;
}

/* Drops index entry i (relative to head) from memory only. */
static void
spool_forget(struct spool *s, size_t i)
{
	s->total -= spool_at(s, i)->bytes;
	if (spool_at(s, i)->seq == s->inflight)
		s->inflight = 0;
	if (i == 0)
		s->head++;
	else
		memmove(spool_at(s, i), spool_at(s, i + 1),
		    (s->n - i - 1) * sizeof(*s->items));
	s->n--;
	if (s->n == 0)
		s->head = 0;
	spool_gauges(s);
}

/* Index of `seq`, or -1. */
static int
spool_find(struct spool *s, uint64_t seq, size_t *idx)
{
	size_t	lo = 0, hi = s->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (spool_at(s, mid)->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->n && spool_at(s, lo)->seq == seq) {
		*idx = lo;
		return 0;
	}
	return -1;
}

static int
spool_path(const struct spool *s, uint64_t seq, char *out, size_t outlen)
{
	char	name[SPOOL_NAME_LEN + 1];

	spool_name(name, seq);
	if (util_snprintf(out, outlen, "%s/%s", s->dir, name) == -1)
		return -1;
	return 0;
}

/* Moves a file into quarantine/; `name` is relative to the spool dir. */
static int
spool_move_quarantine(const struct spool *s, const char *name,
    const char *reason)
{
	char	qdir[4096], from[4096], to[4096];

	if (util_snprintf(qdir, sizeof(qdir), "%s/%s", s->dir,
	    SPOOL_QUARANTINE) == -1 ||
	    util_snprintf(from, sizeof(from), "%s/%s", s->dir, name) == -1 ||
	    util_snprintf(to, sizeof(to), "%s/%s", qdir, name) == -1) {
		log_error("spool: path too long for %s", name);
		return -1;
	}
	if (util_mkdirs(qdir, 0700) == -1 || rename(from, to) == -1) {
		log_error("spool: cannot move %s to %s (%s): %s; deleting it",
		    from, qdir, reason, strerror(errno));
		unlink(from);
		return -1;
	}
	util_fsync_dir(qdir);
	util_fsync_dir(s->dir);
	STATS_INC(quarantined);
	log_warn("spool: moved %s to %s: %s", name, qdir, reason);
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Lists the batch files (sorted) and removes stale temporary files, which
 * are what a crash in the middle of a durable write leaves behind.
 */
static int
spool_scan(struct spool *s, uint64_t **seqs, size_t *nseqs)
{
	DIR		*d;
	struct dirent	*de;
	uint64_t	*v = NULL, *nv, seq;
	size_t		 n = 0, cap = 0;
	char		 path[4096];
	int		 rc = -1;

	if ((d = opendir(s->dir)) == NULL) {
		log_error("spool: cannot open %s: %s", s->dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, SPOOL_TMP_PREFIX,
		    strlen(SPOOL_TMP_PREFIX)) == 0) {
			if (util_snprintf(path, sizeof(path), "%s/%s", s->dir,
			    de->d_name) != -1 && unlink(path) == 0)
				log_info("spool: removed unfinished %s", path);
			continue;
		}
		if (spool_parse_name(de->d_name, &seq) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				log_error("spool: out of memory scanning %s",
				    s->dir);
				goto out;
			}
			v = nv;
		}
		v[n++] = seq;
	}
	if (errno != 0) {
		log_error("spool: cannot read %s: %s", s->dir, strerror(errno));
		goto out;
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_u64);
	*seqs = v;
	*nseqs = n;
	v = NULL;
	rc = 0;
 out:
	free(v);
	closedir(d);
	return rc;
}

/* Opens one batch file found at start; damaged ones go to quarantine. */
static int
spool_verify(struct spool *s, const struct spool_params *p, uint64_t seq,
    struct buf *raw)
{
	struct wire_header	 h;
	struct spool_item	 it;
	enum wire_err		 we;
	char			 name[SPOOL_NAME_LEN + 1], path[4096];
	char			 reason[128];
	uint8_t			*data = NULL;
	size_t			 len;
	int			 rc = -1;

	spool_name(name, seq);
	if (util_snprintf(path, sizeof(path), "%s/%s", s->dir, name) == -1)
		goto out;
	if (util_read_file(path, p->sealed_max, &data, &len) == -1) {
		snprintf(reason, sizeof(reason), "cannot read: %s",
		    strerror(errno));
		spool_move_quarantine(s, name, reason);
		goto out;
	}
	buf_reset(raw);
	if ((we = wire_open(data, len, p->key, p->raw_max, &h, raw)) !=
	    WIRE_OK) {
		snprintf(reason, sizeof(reason), "damaged batch: %s",
		    wire_strerror(we));
		spool_move_quarantine(s, name, reason);
		goto out;
	}
	if (h.seq != seq) {
		snprintf(reason, sizeof(reason), "file name does not match its "
		    "sequence number %" PRIu64, h.seq);
		spool_move_quarantine(s, name, reason);
		goto out;
	}
	it.seq = seq;
	it.bytes = len;
	it.count = h.count;
	it.created_us = h.created_us;
	if (spool_append(s, &it) == -1) {
		log_error("spool: out of memory indexing %s", path);
		goto out;
	}
	rc = 0;
 out:
	free(data);
	return rc;
}

/* Loads seq.state; 0 if it holds a number, -1 if missing or damaged. */
static int
spool_load_seq(struct spool *s, uint64_t *limit)
{
	char		 path[4096];
	uint8_t		*data = NULL;
	size_t		 len;
	int		 rc = -1;

	if (util_snprintf(path, sizeof(path), "%s/%s", s->dir,
	    SPOOL_SEQ_FILE) == -1)
		return -1;
	if (util_read_file(path, SPOOL_STATE_MAX, &data, &len) == -1) {
		if (errno != ENOENT)
			log_warn("spool: cannot read %s: %s", path,
			    strerror(errno));
		return -1;
	}
	/* util_read_file() terminates the data */
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
		data[--len] = '\0';
	if (util_parse_u64((const char *)data, limit) == -1)
		log_warn("spool: %s is damaged; ignoring it", path);
	else
		rc = 0;
	free(data);
	return rc;
}

int
spool_open(struct spool **out, const struct spool_params *p)
{
	struct spool	*s;
	struct buf	 raw = { 0 };
	uint64_t	*seqs = NULL, limit, start;
	size_t		 nseqs = 0, i;
	int		 rc = -1;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->dir = strdup(p->dir)) == NULL) {
		log_error("spool: out of memory");
		goto out;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->max_bytes = p->max_bytes;
	s->max_age_s = p->max_age_s;
	s->drop_newest = p->drop_newest;

	if (util_mkdirs(s->dir, 0700) == -1) {
		log_error("spool: cannot create %s: %s", s->dir,
		    strerror(errno));
		goto out;
	}
	if (access(s->dir, R_OK | W_OK | X_OK) == -1) {
		log_error("spool: %s is not usable: %s", s->dir,
		    strerror(errno));
		goto out;
	}
	if (spool_scan(s, &seqs, &nseqs) == -1)
		goto out;
	if (buf_init(&raw, 0, p->raw_max) == -1) {
		log_error("spool: out of memory");
		goto out;
	}
	for (i = 0; i < nseqs; i++)
		spool_verify(s, p, seqs[i], &raw);

	/*
	 * Never reuse a number: start above both the reserved limit and the
	 * newest batch.  Without any state, the clock gives a start that a
	 * reinstalled kit has not used before (PROTOCOL.md 4.3).
	 */
	start = 0;
	if (spool_load_seq(s, &limit) == 0)
		start = limit;
	else
		start = (uint64_t)time(NULL) << 20;
	if (s->n > 0 && spool_at(s, s->n - 1)->seq >= start)
		start = spool_at(s, s->n - 1)->seq + 1;
	if (start == 0)
		start = 1;
	s->next_seq = start;
	s->seq_limit = start;
	spool_gauges(s);
	*out = s;
	s = NULL;
	rc = 0;
 out:
	buf_free(&raw);
	free(seqs);
	if (s != NULL)
		spool_close(s);
	return rc;
}

void
spool_close(struct spool *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->items);
	free(s->dir);
	free(s);
}

void
spool_set_limits(struct spool *s, uint64_t max_bytes, uint64_t max_age_s,
    int drop_newest)
{
	pthread_mutex_lock(&s->mu);
	s->max_bytes = max_bytes;
	s->max_age_s = max_age_s;
	s->drop_newest = drop_newest;
	pthread_mutex_unlock(&s->mu);
}

int
spool_next_seq(struct spool *s, uint64_t *seq)
{
	static struct log_limit	 lim;
	char			 text[32];
	uint64_t		 limit;
	int			 rc = -1;

	pthread_mutex_lock(&s->mu);
	if (s->next_seq >= s->seq_limit) {
		limit = s->next_seq + SPOOL_SEQ_BLOCK;
		snprintf(text, sizeof(text), "%" PRIu64 "\n", limit);
		if (util_write_atomic(s->dir, SPOOL_SEQ_FILE, text,
		    strlen(text)) == -1) {
			STATS_INC(spool_write_errors);
			log_limited(&lim, 10, LOGL_ERROR, "spool: cannot "
			    "write %s/%s: %s", s->dir, SPOOL_SEQ_FILE,
			    strerror(errno));
			goto out;
		}
		s->seq_limit = limit;
	}
	*seq = s->next_seq++;
	rc = 0;
 out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Deletes index entry i and its file, counting it as lost. */
static void
spool_drop(struct spool *s, size_t i, const char *why)
{
	struct spool_item	it = *spool_at(s, i);
	char			path[4096];

	if (spool_path(s, it.seq, path, sizeof(path)) == 0 &&
	    unlink(path) == -1 && errno != ENOENT)
		log_error("spool: cannot delete %s: %s", path,
		    strerror(errno));
	spool_forget(s, i);
	STATS_INC(spool_dropped_batches);
	STATS_ADD(spool_dropped_datagrams, it.count);
	log_warn("spool: %s: dropped batch %" PRIu64 " with %u datagrams "
	    "(%zu bytes)", why, it.seq, (unsigned int)it.count, it.bytes);
}

/* Makes room for `len` more bytes; -1 if the new batch must go instead. */
static int
spool_make_room(struct spool *s, size_t len)
{
	size_t	i;

	while (s->total + s->pending + len > s->max_bytes) {
		if (s->drop_newest || len > s->max_bytes)
			return -1;
		/* the oldest batch that is not being sent right now */
		i = (s->n > 0 && spool_at(s, 0)->seq == s->inflight) ? 1 : 0;
		if (i >= s->n)
			return -1;
		spool_drop(s, i, "spool full (spool_full = drop-oldest)");
	}
	return 0;
}

int
spool_put(struct spool *s, uint64_t seq, const uint8_t *data, size_t len,
    uint32_t count, uint64_t created_us)
{
	static struct log_limit	 lim;
	struct spool_item	 it;
	char			 name[SPOOL_NAME_LEN + 1];
	uint64_t		 total, max;
	int			 rc = -1, err;

	pthread_mutex_lock(&s->mu);
	if (spool_make_room(s, len) == -1) {
		total = s->total;
		max = s->max_bytes;
		pthread_mutex_unlock(&s->mu);
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		log_warn("spool: spool full (%" PRIu64 " of %" PRIu64 " bytes "
		    "used): dropped new batch %" PRIu64 " with %u datagrams "
		    "(%zu bytes)", total, max, seq, (unsigned int)count, len);
		return -1;
	}
	s->pending += len;
	pthread_mutex_unlock(&s->mu);

	/* The slow part (fsync) runs without the lock. */
	spool_name(name, seq);
	err = util_write_atomic(s->dir, name, data, len) == -1 ? errno : 0;

	pthread_mutex_lock(&s->mu);
	s->pending -= len;
	if (err == 0) {
		it.seq = seq;
		it.bytes = len;
		it.count = count;
		it.created_us = created_us;
		if (spool_append(s, &it) == 0)
			rc = 0;
		else
			err = ENOMEM;
	}
	spool_gauges(s);
	pthread_mutex_unlock(&s->mu);

	if (rc == -1) {
		STATS_INC(spool_write_errors);
		STATS_INC(spool_dropped_batches);
		STATS_ADD(spool_dropped_datagrams, count);
		log_limited(&lim, 10, LOGL_ERROR, "spool: cannot write batch "
		    "%" PRIu64 " to %s: %s; its %u datagrams are lost", seq,
		    s->dir, strerror(err), (unsigned int)count);
	}
	return rc;
}

/* Reads the file of `it` into out; errno on failure. */
static int
spool_read(struct spool *s, const struct spool_item *it, struct buf *out)
{
	char		path[4096];
	struct stat	st;
	ssize_t		r;
	int		fd = -1, rc = -1, saved;

	buf_reset(out);
	if (spool_path(s, it->seq, path, sizeof(path)) == -1) {
		errno = ENAMETOOLONG;
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		goto out;
	if ((uint64_t)st.st_size != it->bytes ||
	    buf_reserve(out, it->bytes) == -1) {
		errno = EFBIG;
		goto out;
	}
	while (out->len < it->bytes) {
		r = read(fd, out->data + out->len, it->bytes - out->len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			goto out;
		}
		out->len += (size_t)r;
	}
	rc = 0;
 out:
	saved = errno;
	if (fd != -1)
		close(fd);
	errno = saved;
	return rc;
}

int
spool_oldest(struct spool *s, struct buf *out, struct spool_item *it)
{
	char	name[SPOOL_NAME_LEN + 1], reason[128];
	size_t	i;
	int	err;

	pthread_mutex_lock(&s->mu);
	if (s->n == 0) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	*it = *spool_at(s, 0);
	s->inflight = it->seq;
	pthread_mutex_unlock(&s->mu);

	/* In flight, so nobody else removes it while we read. */
	if (spool_read(s, it, out) == 0)
		return 1;
	err = errno;

	pthread_mutex_lock(&s->mu);
	if (spool_find(s, it->seq, &i) == 0) {
		if (err == ENOENT) {
			spool_forget(s, i);
			STATS_INC(spool_dropped_batches);
			STATS_ADD(spool_dropped_datagrams, it->count);
			log_error("spool: batch file of %" PRIu64 " vanished; "
			    "its %u datagrams are lost", it->seq,
			    (unsigned int)it->count);
		} else {
			snprintf(reason, sizeof(reason), "cannot read: %s",
			    strerror(err));
			spool_name(name, it->seq);
			spool_forget(s, i);
			spool_move_quarantine(s, name, reason);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return -1;
}

void
spool_release(struct spool *s, uint64_t seq)
{
	pthread_mutex_lock(&s->mu);
	if (s->inflight == seq)
		s->inflight = 0;
	pthread_mutex_unlock(&s->mu);
}

int
spool_remove(struct spool *s, uint64_t seq)
{
	char	path[4096];
	size_t	i;
	int	rc = -1;

	pthread_mutex_lock(&s->mu);
	if (spool_find(s, seq, &i) == -1)
		goto out;	/* dropped meanwhile: nothing left to do */
	if (spool_path(s, seq, path, sizeof(path)) == 0 &&
	    unlink(path) == -1 && errno != ENOENT) {
		/* left behind, it is sent again after a restart: a dup */
		log_error("spool: cannot delete delivered %s: %s", path,
		    strerror(errno));
	}
	spool_forget(s, i);
	rc = 0;
 out:
	if (s->inflight == seq)
		s->inflight = 0;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
spool_quarantine(struct spool *s, uint64_t seq, const char *reason)
{
	char	name[SPOOL_NAME_LEN + 1];
	size_t	i;
	int	rc = -1;

	pthread_mutex_lock(&s->mu);
	if (spool_find(s, seq, &i) == 0) {
		spool_name(name, seq);
		spool_forget(s, i);
		rc = spool_move_quarantine(s, name, reason);
	}
	if (s->inflight == seq)
		s->inflight = 0;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void
spool_expire(struct spool *s, uint64_t now_us)
{
	uint64_t	max_us;
	size_t		i = 0;

	pthread_mutex_lock(&s->mu);
	max_us = s->max_age_s * 1000000;
	while (s->max_age_s > 0 && i < s->n &&
	    spool_at(s, i)->created_us + max_us < now_us) {
		if (spool_at(s, i)->seq == s->inflight) {
			i++;
			continue;
		}
		spool_drop(s, i, "older than spool_max_age");
	}
	pthread_mutex_unlock(&s->mu);
}

void
spool_depth(struct spool *s, uint64_t *batches, uint64_t *bytes,
    uint64_t *oldest_created_us)
{
	pthread_mutex_lock(&s->mu);
	*batches = s->n;
	*bytes = s->total;
	*oldest_created_us = s->n > 0 ? spool_at(s, 0)->created_us : 0;
	pthread_mutex_unlock(&s->mu);
}
