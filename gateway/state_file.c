/*
 * state_file.c: per-client duplicate windows persisted as small files.
 *
 * In memory a client has H (the highest forwarded sequence number) and a
 * ring of window+1 bits covering H-window .. H, where the bit for sequence
 * number s is at position s % (window+1).  A number above H is new, one
 * more than `window` below H counts as seen, and one in between is seen if
 * its bit is set.
 *
 * File layout (big-endian, through the cursors of bytes.h):
 *
 *   0   4  magic "FPGS"
 *   4   1  version 1
 *   5   1  flags: bit 0 = H is valid
 *   6   2  reserved, 0
 *   8   8  H
 *  16   4  window the ring was written with
 *  20   1  client id length n
 *  21   n  client id (must match the file name)
 *  ..   r  ring, (window + 1 + 7) / 8 bytes
 *  ..   4  CRC-32 (zlib) of everything before it
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "bytes.h"
#include "log.h"
#include "state_file.h"
#include "util.h"
#include "wire.h"

#define SF_MAGIC	"FPGS"
#define SF_VERSION	1
#define SF_FLAG_HIGH	0x01
#define SF_FIXED	21
#define SF_WINDOW_MIN	64
#define SF_WINDOW_MAX	1048576
#define SF_BUCKETS	1024
#define SF_SUFFIX	".state"

struct sf_client {
	struct sf_client	*next;
	char			 id[WIRE_CLIENT_ID_MAX + 1];
	int			 has_high;
	uint64_t		 high;
	uint8_t			*ring;
};

struct state_file {
	char			*dir;		/* state_dir/clients */
	uint64_t		 window;
	size_t			 ringbytes;
	pthread_mutex_t		 mu;		/* guards the buckets only */
	struct sf_client	*bucket[SF_BUCKETS];
};

static struct log_limit sf_load_limit, sf_write_limit;

static size_t
sf_ringbytes(uint64_t window)
{
	return (size_t)((window + 1 + 7) / 8);
}

static size_t
sf_file_size(size_t idlen, uint64_t window)
{
	return SF_FIXED + idlen + sf_ringbytes(window) + 4;
}

static unsigned int
sf_hash(const char *id)
{
	uint32_t	 h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % SF_BUCKETS;
}

static int
sf_bit(const uint8_t *ring, uint64_t window, uint64_t seq)
{
	uint64_t pos = seq % (window + 1);

	return (ring[pos >> 3] >> (pos & 7)) & 1;
}

static void
sf_bit_set(uint8_t *ring, uint64_t window, uint64_t seq, int on)
{
	uint64_t pos = seq % (window + 1);

	if (on)
		ring[pos >> 3] |= (uint8_t)(1u << (pos & 7));
	else
		ring[pos >> 3] &= (uint8_t)~(1u << (pos & 7));
}

static int
sf_seen(int has_high, uint64_t high, const uint8_t *ring, uint64_t window,
    uint64_t seq)
{
	if (!has_high || seq > high)
		return 0;
	if (high - seq > window)
		return 1;
	return sf_bit(ring, window, seq);
}

/* Records `seq` in (has_high, high, ring). */
static void
sf_apply(int *has_high, uint64_t *high, uint8_t *ring, uint64_t window,
    uint64_t seq)
{
	if (!*has_high) {
		memset(ring, 0, sf_ringbytes(window));
		*has_high = 1;
		*high = seq;
	} else if (seq > *high) {
		uint64_t d = seq - *high;

		/* Positions of H+1 .. seq held numbers now below the window. */
		if (d > window)
			memset(ring, 0, sf_ringbytes(window));
		else
			for (uint64_t s = *high + 1; s != seq + 1; s++)
				sf_bit_set(ring, window, s, 0);
		*high = seq;
	} else if (*high - seq > window)
		return;
	sf_bit_set(ring, window, seq, 1);
}

static int
sf_path(const struct state_file *sf, const char *id, char *out, size_t outlen)
{
	return util_snprintf(out, outlen, "%s/%s" SF_SUFFIX, sf->dir, id);
}

/* Serialises one client's state; `ring` is written as is. */
static void
sf_encode(const struct state_file *sf, const char *id, int has_high,
    uint64_t high, const uint8_t *ring, uint8_t *out, size_t len)
{
	struct wcur	 w;
	size_t		 idlen = strlen(id);

	wcur_init(&w, out, len);
	wcur_bytes(&w, SF_MAGIC, 4);
	wcur_u8(&w, SF_VERSION);
	wcur_u8(&w, has_high ? SF_FLAG_HIGH : 0);
	wcur_u16(&w, 0);
	wcur_u64(&w, high);
	wcur_u32(&w, (uint32_t)sf->window);
	wcur_u8(&w, (uint8_t)idlen);
	wcur_bytes(&w, id, idlen);
	wcur_bytes(&w, ring, sf->ringbytes);
	wcur_u32(&w, (uint32_t)crc32(0L, out, (uInt)(len - 4)));
}

/*
 * Parses a state file into `c` (whose ring has sf->ringbytes).  A file
 * written with another window is carried over: numbers inside both windows
 * keep their bits, and when the window grew, numbers that the old window
 * already counted as seen (below it) are marked seen, so that changing
 * dedup_window never lets an old batch through again.
 */
static int
sf_decode(const struct state_file *sf, const char *id, const uint8_t *data,
    size_t len, struct sf_client *c, const char **why)
{
	struct rcur	 r;
	const uint8_t	*magic, *fid, *oring;
	uint64_t	 high, owin;
	uint8_t		 version, flags, idlen;
	uint16_t	 reserved;

	rcur_init(&r, data, len);
	magic = rcur_take(&r, 4);
	version = rcur_u8(&r);
	flags = rcur_u8(&r);
	reserved = rcur_u16(&r);
	high = rcur_u64(&r);
	owin = rcur_u32(&r);
	idlen = rcur_u8(&r);
	fid = rcur_take(&r, idlen);
	if (r.err) {
		*why = "truncated";
		return -1;
	}
	if (memcmp(magic, SF_MAGIC, 4) != 0) {
		*why = "not a flowpost-gateway state file";
		return -1;
	}
	if (version != SF_VERSION || (flags & ~SF_FLAG_HIGH) != 0 ||
	    reserved != 0) {
		*why = "unknown version or flags";
		return -1;
	}
	if (owin < SF_WINDOW_MIN || owin > SF_WINDOW_MAX) {
		*why = "window out of range";
		return -1;
	}
	if (len != sf_file_size(idlen, owin)) {
		*why = "wrong size";
		return -1;
	}
	if ((uint32_t)crc32(0L, data, (uInt)(len - 4)) != be32(data + len - 4)) {
		*why = "checksum mismatch";
		return -1;
	}
	if (idlen != strlen(id) || memcmp(fid, id, idlen) != 0) {
		*why = "written for another client";
		return -1;
	}
	oring = rcur_take(&r, sf_ringbytes(owin));
	if (oring == NULL) {
		*why = "truncated";
		return -1;
	}

	c->has_high = (flags & SF_FLAG_HIGH) != 0;
	c->high = c->has_high ? high : 0;
	if (owin == sf->window) {
		memcpy(c->ring, oring, sf->ringbytes);
		return 0;
	}
	memset(c->ring, 0, sf->ringbytes);
	if (!c->has_high)
		return 0;
	for (uint64_t back = 0; back <= sf->window && back <= high; back++) {
		uint64_t s = high - back;
		int seen = back > owin ? 1 : sf_bit(oring, owin, s);

		if (seen)
			sf_bit_set(c->ring, sf->window, s, 1);
	}
	return 0;
}

static void
sf_client_free(struct sf_client *c)
{
	if (c == NULL)
		return;
	free(c->ring);
	free(c);
}

/* Reads the client's file; a missing file is a client never seen. */
static struct sf_client *
sf_load(struct state_file *sf, const char *id)
{
	struct sf_client	*c;
	char			 path[4096];
	uint8_t			*data = NULL;
	size_t			 len = 0;
	const char		*why = NULL;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->ring = calloc(1, sf->ringbytes)) == NULL) {
		log_limited(&sf_load_limit, 10, LOGL_ERROR,
		    "state_file: client %s: %s", id, strerror(errno));
		goto fail;
	}
	memcpy(c->id, id, strlen(id) + 1);
	if (sf_path(sf, id, path, sizeof(path)) == -1) {
		log_limited(&sf_load_limit, 10, LOGL_ERROR,
		    "state_file: client %s: path too long", id);
		goto fail;
	}
	errno = 0;
	if (util_read_file(path, sf_file_size(WIRE_CLIENT_ID_MAX,
	    SF_WINDOW_MAX), &data, &len) == -1) {
		if (errno == ENOENT)
			return c;
		log_limited(&sf_load_limit, 10, LOGL_ERROR,
		    "state_file: %s: %s; refusing this client's batches until "
		    "it is repaired or removed", path,
		    errno != 0 ? strerror(errno) : "unreadable or too large");
		goto fail;
	}
	if (sf_decode(sf, id, data, len, c, &why) == -1) {
		log_limited(&sf_load_limit, 10, LOGL_ERROR,
		    "state_file: %s: damaged (%s); refusing this client's "
		    "batches until it is repaired or removed", path, why);
		goto fail;
	}
	free(data);
	return c;
fail:
	free(data);
	sf_client_free(c);
	return NULL;
}

/* The client's record, loading it on first use; NULL on error. */
static struct sf_client *
sf_get(struct state_file *sf, const char *id)
{
	struct sf_client	*c, *loaded;
	unsigned int		 b = sf_hash(id);

	pthread_mutex_lock(&sf->mu);
	for (c = sf->bucket[b]; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			break;
	pthread_mutex_unlock(&sf->mu);
	if (c != NULL)
		return c;

	/* File I/O outside the table lock; the client lock is held. */
	if ((loaded = sf_load(sf, id)) == NULL)
		return NULL;
	pthread_mutex_lock(&sf->mu);
	for (c = sf->bucket[b]; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			break;
	if (c == NULL) {
		loaded->next = sf->bucket[b];
		sf->bucket[b] = loaded;
		c = loaded;
		loaded = NULL;
	}
	pthread_mutex_unlock(&sf->mu);
	sf_client_free(loaded);
	return c;
}

static int
sf_check(void *ctx, const char *client, uint64_t seq, int *seen)
{
	struct state_file	*sf = ctx;
	struct sf_client	*c;

	*seen = 0;
	if ((c = sf_get(sf, client)) == NULL)
		return -1;
	*seen = sf_seen(c->has_high, c->high, c->ring, sf->window, seq);
	return 0;
}

/*
 * The new state is built in the file image first and copied into memory
 * only once it is on disk, so a failed write changes nothing.
 */
static int
sf_commit(void *ctx, const char *client, uint64_t seq)
{
	struct state_file	*sf = ctx;
	struct sf_client	*c;
	uint8_t			*img = NULL, *ring;
	char			 name[WIRE_CLIENT_ID_MAX + sizeof(SF_SUFFIX)];
	size_t			 idlen, len;
	uint64_t		 high;
	int			 has_high, rv = -1;

	if ((c = sf_get(sf, client)) == NULL)
		return -1;
	idlen = strlen(client);
	len = sf_file_size(idlen, sf->window);
	if ((img = malloc(len)) == NULL) {
		log_limited(&sf_write_limit, 10, LOGL_ERROR,
		    "state_file: client %s: %s", client, strerror(errno));
		goto out;
	}
	ring = img + SF_FIXED + idlen;
	memcpy(ring, c->ring, sf->ringbytes);
	has_high = c->has_high;
	high = c->high;
	sf_apply(&has_high, &high, ring, sf->window, seq);
	sf_encode(sf, client, has_high, high, ring, img, len);

	if (util_snprintf(name, sizeof(name), "%s" SF_SUFFIX, client) == -1 ||
	    util_write_atomic(sf->dir, name, img, len) == -1) {
		log_limited(&sf_write_limit, 10, LOGL_ERROR,
		    "state_file: %s/%s: write failed: %s", sf->dir, name,
		    strerror(errno));
		goto out;
	}
	memcpy(c->ring, ring, sf->ringbytes);
	c->has_high = has_high;
	c->high = high;
	rv = 0;
out:
	free(img);
	return rv;
}

static void
sf_close(void *ctx)
{
	struct state_file	*sf = ctx;

	if (sf == NULL)
		return;
	for (int b = 0; b < SF_BUCKETS; b++) {
		struct sf_client *c, *next;

		for (c = sf->bucket[b]; c != NULL; c = next) {
			next = c->next;
			sf_client_free(c);
		}
	}
	pthread_mutex_destroy(&sf->mu);
	free(sf->dir);
	free(sf);
}

static const struct state_ops sf_ops = {
	.check = sf_check,
	.commit = sf_commit,
	.close = sf_close,
};

int
state_file_open(const char *state_dir, uint64_t window,
    const struct state_ops **ops, void **ctx, char *err, size_t errlen)
{
	struct state_file	*sf;
	static const char	 probe[] = "flowpost-gateway state probe\n";
	char			 path[4096];
	size_t			 dlen;

	*ops = NULL;
	*ctx = NULL;
	if (window < SF_WINDOW_MIN || window > SF_WINDOW_MAX) {
		util_snprintf(err, errlen, "dedup_window %llu: out of range "
		    "%d..%d", (unsigned long long)window, SF_WINDOW_MIN,
		    SF_WINDOW_MAX);
		return -1;
	}
	if ((sf = calloc(1, sizeof(*sf))) == NULL) {
		util_snprintf(err, errlen, "state: %s", strerror(errno));
		return -1;
	}
	if (pthread_mutex_init(&sf->mu, NULL) != 0) {
		free(sf);
		util_snprintf(err, errlen, "state: cannot create a mutex");
		return -1;
	}
	sf->window = window;
	sf->ringbytes = sf_ringbytes(window);
	dlen = strlen(state_dir);
	while (dlen > 1 && state_dir[dlen - 1] == '/')
		dlen--;
	if (util_snprintf(path, sizeof(path), "%.*s/clients", (int)dlen,
	    state_dir) == -1 || (sf->dir = strdup(path)) == NULL) {
		util_snprintf(err, errlen, "state_dir %s: path too long or "
		    "out of memory", state_dir);
		goto fail;
	}
	if (util_mkdirs(sf->dir, 0700) == -1) {
		util_snprintf(err, errlen, "state_dir: cannot create %s: %s",
		    sf->dir, strerror(errno));
		goto fail;
	}
	/* Prove now, not at the first batch, that commits can succeed. */
	if (util_write_atomic(sf->dir, ".probe", probe, sizeof(probe) - 1) ==
	    -1) {
		util_snprintf(err, errlen, "state_dir: cannot write in %s: %s",
		    sf->dir, strerror(errno));
		goto fail;
	}
	if (util_snprintf(path, sizeof(path), "%s/.probe", sf->dir) != -1)
		(void)unlink(path);
	*ops = &sf_ops;
	*ctx = sf;
	return 0;
fail:
	sf_close(sf);
	return -1;
}
