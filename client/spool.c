/*
 * spool.c: sealed batches on disk, in send order, within limits.
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
#define SPOOL_ROOT_DIGITS	20
#define SPOOL_TMP_PREFIX	".tmp."		/* util_write_atomic() */
#define SPOOL_STATE_MAX		64
#define SPOOL_PIECES_MAX	2

struct spool {
	pthread_mutex_t		 mu;
	char			*dir;
	uint64_t		 max_bytes;
	uint64_t		 max_age_s;
	int			 drop_newest;

	/* index: items[head .. head + n), in send order */
	struct spool_item	*items;
	size_t			 head, n, cap;
	uint64_t		 total;		/* bytes of indexed files */
	uint64_t		 pending;	/* bytes being written */
	uint64_t		 inflight;	/* seq being sent, 0 = none */

	uint64_t		 next_seq;
	uint64_t		 seq_limit;	/* first seq not reserved */

	uint64_t		 sent_high;	/* highest seq posted */
	uint64_t		 sent_saved;	/* ... as in sent.state */
};

void
spool_item_name(const struct spool_item *it, char out[SPOOL_NAME_MAX + 1])
{
	snprintf(out, SPOOL_NAME_MAX + 1, "%020" PRIu64 "%s%s" SPOOL_SUFFIX,
	    it->root, it->path[0] ? "-" : "", it->path);
}

/* 0 with the order key if `name` is a batch file name. */
static int
spool_parse_name(const char *name, uint64_t *root, char *path)
{
	char	digits[SPOOL_ROOT_DIGITS + 1];
	size_t	len = strlen(name), slen = sizeof(SPOOL_SUFFIX) - 1, i, plen;

	if (len < SPOOL_ROOT_DIGITS + slen ||
	    strcmp(name + len - slen, SPOOL_SUFFIX) != 0)
		return -1;
	for (i = 0; i < SPOOL_ROOT_DIGITS; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	if (len == SPOOL_ROOT_DIGITS + slen)
		plen = 0;
	else {
		/* "-" and 1..SPOOL_PATH_MAX of a, b, r */
		if (name[SPOOL_ROOT_DIGITS] != '-')
			return -1;
		plen = len - slen - SPOOL_ROOT_DIGITS - 1;
		if (plen == 0 || plen > SPOOL_PATH_MAX)
			return -1;
		for (i = 0; i < plen; i++) {
			char c = name[SPOOL_ROOT_DIGITS + 1 + i];

			if (c != 'a' && c != 'b' && c != 'r')
				return -1;
		}
		memcpy(path, name + SPOOL_ROOT_DIGITS + 1, plen);
	}
	path[plen] = '\0';
	memcpy(digits, name, SPOOL_ROOT_DIGITS);
	digits[SPOOL_ROOT_DIGITS] = '\0';
	return util_parse_u64(digits, root);
}

/* Send order: root, then path as a string ("a" < "b" < "r"). */
static int
spool_order_cmp(const struct spool_item *a, const struct spool_item *b)
{
	if (a->root != b->root)
		return a->root < b->root ? -1 : 1;
	return strcmp(a->path, b->path);
}

static int
spool_order_qsort(const void *a, const void *b)
{
	return spool_order_cmp(a, b);
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

/* Puts `it` at index `pos` (relative to head), moving later ones up. */
static int
spool_insert(struct spool *s, size_t pos, const struct spool_item *it)
{
	struct spool_item	tmp = *it;

	if (pos == 0 && s->head > 0) {
		s->head--;
		s->n++;
		*spool_at(s, 0) = tmp;
		s->total += tmp.bytes;
		return 0;
	}
	if (spool_append(s, &tmp) == -1)
		return -1;
	memmove(spool_at(s, pos + 1), spool_at(s, pos),
	    (s->n - 1 - pos) * sizeof(*s->items));
	*spool_at(s, pos) = tmp;
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

/*
 * Index of the batch numbered `seq`, or -1.  Numbers are unique but not in
 * index order once batches were replaced; the sender asks for the head
 * almost always, so a scan from the head is quick.
 */
static int
spool_find(struct spool *s, uint64_t seq, size_t *idx)
{
	size_t	i;

	for (i = 0; i < s->n; i++) {
		if (spool_at(s, i)->seq == seq) {
			*idx = i;
			return 0;
		}
	}
	return -1;
}

/* First index whose order key is not below that of `it`. */
static size_t
spool_lower_bound(struct spool *s, const struct spool_item *it)
{
	size_t	lo = 0, hi = s->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (spool_order_cmp(spool_at(s, mid), it) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
spool_path(const struct spool *s, const struct spool_item *it, char *out,
    size_t outlen)
{
	char	name[SPOOL_NAME_MAX + 1];

	spool_item_name(it, name);
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

/*
 * Lists the batch files (in send order) and removes stale temporary
 * files, which are what a crash in the middle of a durable write leaves
 * behind.  The items carry only their order key.
 */
static int
spool_scan(struct spool *s, struct spool_item **list, size_t *nlist)
{
	DIR			*d;
	struct dirent		*de;
	struct spool_item	*v = NULL, *nv, it;
	size_t			 n = 0, cap = 0;
	char			 path[4096];
	int			 rc = -1;

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
		memset(&it, 0, sizeof(it));
		if (spool_parse_name(de->d_name, &it.root, it.path) == -1)
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
		v[n++] = it;
	}
	if (errno != 0) {
		log_error("spool: cannot read %s: %s", s->dir, strerror(errno));
		goto out;
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), spool_order_qsort);
	*list = v;
	*nlist = n;
	v = NULL;
	rc = 0;
 out:
	free(v);
	closedir(d);
	return rc;
}

/* Opens one batch file found at start; damaged ones go to quarantine. */
static int
spool_verify(struct spool *s, const struct spool_params *p,
    struct spool_item *it, struct buf *raw)
{
	struct wire_header	 h;
	enum wire_err		 we;
	char			 name[SPOOL_NAME_MAX + 1], path[4096];
	char			 reason[128];
	uint8_t			*data = NULL;
	size_t			 len;
	int			 rc = -1;

	spool_item_name(it, name);
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
	/*
	 * A sealer's batch is named after its number; a replacement got a
	 * number after the one it replaced.
	 */
	if (it->path[0] == '\0' ? h.seq != it->root : h.seq <= it->root) {
		snprintf(reason, sizeof(reason), "file name does not match its "
		    "sequence number %" PRIu64, h.seq);
		spool_move_quarantine(s, name, reason);
		goto out;
	}
	it->seq = h.seq;
	it->bytes = len;
	it->count = h.count;
	it->created_us = h.created_us;
	it->renumber = 0;
	if (spool_append(s, it) == -1) {
		log_error("spool: out of memory indexing %s", path);
		goto out;
	}
	rc = 0;
 out:
	free(data);
	return rc;
}

/* Deletes the file of index entry i and forgets it (not a loss). */
static void
spool_unlink_item(struct spool *s, size_t i, const char *why)
{
	char	path[4096];

	if (spool_path(s, spool_at(s, i), path, sizeof(path)) == 0) {
		if (unlink(path) == -1 && errno != ENOENT)
			log_error("spool: cannot delete %s: %s", path,
			    strerror(errno));
		else
			log_info("spool: removed %s: %s", path, why);
	}
	spool_forget(s, i);
}

/* 1 if `c` is the child of `p` made with the step `step`. */
static int
spool_is_child(const struct spool_item *p, const struct spool_item *c,
    char step)
{
	size_t	plen = strlen(p->path);

	return c->root == p->root && strlen(c->path) == plen + 1 &&
	    strncmp(c->path, p->path, plen) == 0 && c->path[plen] == step;
}

/*
 * A crash during spool_replace() can leave a batch together with some or
 * all of the batches that replace it (they follow it in send order).
 * With all of them there, the replacement was complete and the old one
 * goes; with only a half of a split, the half goes and the old one stays.
 */
static void
spool_resolve(struct spool *s)
{
	struct spool_item	*p, *c1, *c2;
	size_t			 i = 0;
	int			 changed = 0;

	while (i < s->n) {
		p = spool_at(s, i);
		c1 = i + 1 < s->n ? spool_at(s, i + 1) : NULL;
		c2 = i + 2 < s->n ? spool_at(s, i + 2) : NULL;
		if (c1 != NULL && (spool_is_child(p, c1, 'r') ||
		    (spool_is_child(p, c1, 'a') && c2 != NULL &&
		    spool_is_child(p, c2, 'b')))) {
			spool_unlink_item(s, i, "replaced before a restart");
			changed = 1;
		} else if (c1 != NULL && (spool_is_child(p, c1, 'a') ||
		    spool_is_child(p, c1, 'b'))) {
			spool_unlink_item(s, i + 1, "half of an unfinished "
			    "split");
			changed = 1;
		} else
			i++;
	}
	if (changed)
		util_fsync_dir(s->dir);
}

/* Loads a state file holding one number; 0 if it does, -1 if not. */
static int
spool_load_number(struct spool *s, const char *file, uint64_t *v)
{
	char		 path[4096];
	uint8_t		*data = NULL;
	size_t		 len;
	int		 rc = -1;

	if (util_snprintf(path, sizeof(path), "%s/%s", s->dir, file) == -1)
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
	if (util_parse_u64((const char *)data, v) == -1)
		log_warn("spool: %s is damaged; ignoring it", path);
	else
		rc = 0;
	free(data);
	return rc;
}

static int
spool_save_number(struct spool *s, const char *file, uint64_t v)
{
	char	text[32];

	snprintf(text, sizeof(text), "%" PRIu64 "\n", v);
	return util_write_atomic(s->dir, file, text, strlen(text));
}

int
spool_open(struct spool **out, const struct spool_params *p)
{
	struct spool		*s;
	struct spool_item	*list = NULL;
	struct buf		 raw = { 0 };
	uint64_t		 limit, start, high = 0;
	size_t			 nlist = 0, i;
	int			 rc = -1;

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
	if (spool_scan(s, &list, &nlist) == -1)
		goto out;
	if (buf_init(&raw, 0, p->raw_max) == -1) {
		log_error("spool: out of memory");
		goto out;
	}
	for (i = 0; i < nlist; i++)
		spool_verify(s, p, &list[i], &raw);
	spool_resolve(s);

	/*
	 * Never reuse a number: start above both the reserved limit and
	 * every batch.  Without any state, the clock gives a start that a
	 * reinstalled kit has not used before (PROTOCOL.md 4.3).
	 */
	for (i = 0; i < s->n; i++)
		if (spool_at(s, i)->seq > high)
			high = spool_at(s, i)->seq;
	if (spool_load_number(s, SPOOL_SEQ_FILE, &limit) == 0)
		start = limit;
	else
		start = (uint64_t)time(NULL) << 20;
	if (s->n > 0 && high >= start)
		start = high + 1;
	if (start == 0)
		start = 1;
	s->next_seq = start;
	s->seq_limit = start;
	if (spool_load_number(s, SPOOL_SENT_FILE, &s->sent_high) == 0)
		s->sent_saved = s->sent_high;
	spool_gauges(s);
	*out = s;
	s = NULL;
	rc = 0;
 out:
	buf_free(&raw);
	free(list);
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
	uint64_t		 limit;
	int			 rc = -1;

	pthread_mutex_lock(&s->mu);
	if (s->next_seq >= s->seq_limit) {
		limit = s->next_seq + SPOOL_SEQ_BLOCK;
		if (spool_save_number(s, SPOOL_SEQ_FILE, limit) == -1) {
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

	if (spool_path(s, &it, path, sizeof(path)) == 0 &&
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
	char			 name[SPOOL_NAME_MAX + 1];
	uint64_t		 total, max;
	int			 rc = -1, err;

	memset(&it, 0, sizeof(it));
	it.seq = seq;
	it.root = seq;
	it.bytes = len;
	it.count = count;
	it.created_us = created_us;

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
	spool_item_name(&it, name);
	err = util_write_atomic(s->dir, name, data, len) == -1 ? errno : 0;

	pthread_mutex_lock(&s->mu);
	s->pending -= len;
	if (err == 0) {
		/* numbers only grow, so a new batch goes last */
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
	if (spool_path(s, it, path, sizeof(path)) == -1) {
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
	char	name[SPOOL_NAME_MAX + 1], reason[128];
	size_t	i;
	int	err;

	pthread_mutex_lock(&s->mu);
	if (s->n == 0) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	*it = *spool_at(s, 0);
	it->renumber = s->sent_high > it->seq &&
	    s->sent_high - it->seq > SPOOL_RENUMBER_SLACK;
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
			spool_item_name(it, name);
			spool_forget(s, i);
			spool_move_quarantine(s, name, reason);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return -1;
}

int
spool_posting(struct spool *s, const struct spool_item *it)
{
	static struct log_limit	 lim;
	int			 save;

	pthread_mutex_lock(&s->mu);
	if (it->seq > s->sent_high)
		s->sent_high = it->seq;
	/*
	 * Only a replacement can carry a number above that of a batch
	 * behind it; for a sealer's batch the spool order itself says what
	 * was sent, so it costs no write.
	 */
	save = it->path[0] != '\0' && it->seq > s->sent_saved;
	pthread_mutex_unlock(&s->mu);
	if (!save)
		return 0;
	/* only the sender thread writes sent.state */
	if (spool_save_number(s, SPOOL_SENT_FILE, it->seq) == -1) {
		STATS_INC(spool_write_errors);
		log_limited(&lim, 10, LOGL_ERROR, "spool: cannot write %s/%s: "
		    "%s", s->dir, SPOOL_SENT_FILE, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	s->sent_saved = it->seq;
	pthread_mutex_unlock(&s->mu);
	return 0;
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
	if (spool_path(s, spool_at(s, i), path, sizeof(path)) == 0 &&
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
spool_replace(struct spool *s, const struct spool_item *it,
    const struct spool_piece *pieces, size_t n)
{
	static const char	 steps1[] = "r", steps2[] = "ab";
	struct spool_item	 child[SPOOL_PIECES_MAX];
	char			 name[SPOOL_NAME_MAX + 1], old[4096];
	size_t			 plen = strlen(it->path), i, k, pos;
	int			 rc = -1;

	if (n < 1 || n > SPOOL_PIECES_MAX) {
		log_error("spool: cannot replace a batch by %zu", n);
		return -1;
	}
	if (plen + 1 > SPOOL_PATH_MAX) {
		log_error("spool: batch %" PRIu64 " was split or renumbered "
		    "%zu times already; not again", it->seq, plen);
		return -1;
	}
	for (i = 0; i < n; i++) {
		memset(&child[i], 0, sizeof(child[i]));
		child[i].seq = pieces[i].seq;
		child[i].root = it->root;
		memcpy(child[i].path, it->path, plen);
		child[i].path[plen] = (n == 1 ? steps1 : steps2)[i];
		child[i].path[plen + 1] = '\0';
		child[i].bytes = pieces[i].len;
		child[i].count = pieces[i].count;
		child[i].created_us = pieces[i].created_us;
	}

	/*
	 * The old batch is in flight, so nothing else deletes it meanwhile.
	 * Each new file is durable before the old one goes; a crash in
	 * between is settled by spool_resolve() at the next start.
	 */
	for (i = 0; i < n; i++) {
		spool_item_name(&child[i], name);
		if (util_write_atomic(s->dir, name, pieces[i].data,
		    pieces[i].len) == -1) {
			STATS_INC(spool_write_errors);
			log_error("spool: cannot write %s/%s: %s; keeping batch "
			    "%" PRIu64 " as it is", s->dir, name,
			    strerror(errno), it->seq);
			for (k = 0; k < i; k++) {
				char path[4096];

				if (spool_path(s, &child[k], path,
				    sizeof(path)) == 0)
					unlink(path);
			}
			util_fsync_dir(s->dir);
			return -1;
		}
	}
	if (spool_path(s, it, old, sizeof(old)) == 0 && unlink(old) == -1 &&
	    errno != ENOENT)
		log_error("spool: cannot delete replaced %s: %s (it is "
		    "cleared at the next start)", old, strerror(errno));
	util_fsync_dir(s->dir);

	pthread_mutex_lock(&s->mu);
	if (spool_find(s, it->seq, &i) == 0)
		spool_forget(s, i);
	for (i = 0; i < n; i++) {
		pos = spool_lower_bound(s, &child[i]);
		if (spool_insert(s, pos, &child[i]) == -1) {
			/* on disk all the same: found again at restart */
			log_error("spool: out of memory indexing a replaced "
			    "batch");
			goto out;
		}
	}
	rc = 0;
 out:
	if (s->inflight == it->seq)
		s->inflight = 0;
	spool_gauges(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
spool_quarantine(struct spool *s, uint64_t seq, const char *reason)
{
	char	name[SPOOL_NAME_MAX + 1];
	size_t	i;
	int	rc = -1;

	pthread_mutex_lock(&s->mu);
	if (spool_find(s, seq, &i) == 0) {
		spool_item_name(spool_at(s, i), name);
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
