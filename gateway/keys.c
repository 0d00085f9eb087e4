/*
 * keys.c: loading, looking up and swapping the table of client keys.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "keys.h"
#include "log.h"
#include "util.h"

struct keys_entry {
	char		 id[WIRE_CLIENT_ID_MAX + 1];
	uint8_t		 key[WIRE_KEY_LEN];
	unsigned int	 line;		/* for duplicate reports */
};

struct keys {
	atomic_uint		 refs;
	size_t			 n;
	size_t			 cap;
	struct keys_entry	*e;
};

static void
keys_free(struct keys *k)
{
	if (k == NULL)
		return;
	if (k->e != NULL) {
		sodium_memzero(k->e, k->cap * sizeof(*k->e));
		free(k->e);
	}
	free(k);
}

static int
keys_entry_cmp(const void *a, const void *b)
{
	const struct keys_entry *ea = a, *eb = b;

	return strcmp(ea->id, eb->id);
}

static int
keys_add(struct keys *k, const char *id, const uint8_t *key,
    unsigned int line)
{
	struct keys_entry	*ne;
	size_t			 ncap;

	if (k->n == k->cap) {
		ncap = k->cap == 0 ? 16 : k->cap * 2;
		/* Grow by copy so that no key bytes are left in freed memory. */
		if ((ne = calloc(ncap, sizeof(*ne))) == NULL)
			return -1;
		if (k->e != NULL) {
			memcpy(ne, k->e, k->n * sizeof(*ne));
			sodium_memzero(k->e, k->cap * sizeof(*k->e));
			free(k->e);
		}
		k->e = ne;
		k->cap = ncap;
	}
	memcpy(k->e[k->n].id, id, strlen(id) + 1);
	memcpy(k->e[k->n].key, key, WIRE_KEY_LEN);
	k->e[k->n].line = line;
	k->n++;
	return 0;
}

/*
 * One line without its newline: "<id> <hex>", optional comment.  Returns 0
 * for a blank or comment-only line with *id == NULL, 0 with the two fields
 * NUL-terminated inside `line`, or -1 with a reason.
 */
static int
keys_split(char *line, char **id, char **hex, const char **why)
{
	char	*p, *fields[3];
	int	 nf = 0;

	*id = *hex = NULL;
	if ((p = strchr(line, '#')) != NULL)
		*p = '\0';
	p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0')
			break;
		if (nf == 3)
			break;
		fields[nf++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	if (nf == 0)
		return 0;
	if (nf != 2) {
		*why = nf == 1 ? "expected '<client_id> <64 hex digits>'" :
		    "extra text after the key";
		return -1;
	}
	*id = fields[0];
	*hex = fields[1];
	return 0;
}

int
keys_parse(const char *name, const char *text, size_t len, struct keys **out,
    char *err, size_t errlen)
{
	struct keys	*k;
	char		 line[KEYS_LINE_MAX + 1];
	uint8_t		 key[WIRE_KEY_LEN];
	size_t		 pos = 0;
	unsigned int	 lineno = 0;
	int		 rv = -1;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		util_snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	atomic_init(&k->refs, 1);

	while (pos < len) {
		const char	*nl, *why = NULL;
		char		*id, *hex;
		size_t		 ll;

		lineno++;
		nl = memchr(text + pos, '\n', len - pos);
		ll = (nl != NULL ? (size_t)(nl - text) : len) - pos;
		if (ll > KEYS_LINE_MAX) {
			util_snprintf(err, errlen, "%s:%u: line longer than %d "
			    "characters", name, lineno, KEYS_LINE_MAX);
			goto out;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl != NULL ? 1 : 0);
		if (memchr(line, '\0', ll) != NULL) {
			util_snprintf(err, errlen, "%s:%u: NUL byte in line",
			    name, lineno);
			goto out;
		}
		if (keys_split(line, &id, &hex, &why) == -1) {
			util_snprintf(err, errlen, "%s:%u: %s", name, lineno,
			    why);
			goto out;
		}
		if (id == NULL)
			continue;
		if (wire_client_id_valid(id) == -1) {
			util_snprintf(err, errlen, "%s:%u: bad client id (1..%d "
			    "characters of A-Z a-z 0-9 . _ -)", name, lineno,
			    WIRE_CLIENT_ID_MAX);
			goto out;
		}
		if (strlen(hex) != 2 * WIRE_KEY_LEN ||
		    wire_key_parse(hex, key) == -1) {
			util_snprintf(err, errlen, "%s:%u: client %s: key must be "
			    "%d hex digits", name, lineno, id, 2 * WIRE_KEY_LEN);
			goto out;
		}
		if (keys_add(k, id, key, lineno) == -1) {
			util_snprintf(err, errlen, "%s:%u: %s", name, lineno,
			    strerror(errno));
			goto out;
		}
	}

	if (k->n > 1)
		qsort(k->e, k->n, sizeof(*k->e), keys_entry_cmp);
	for (size_t i = 1; i < k->n; i++) {
		if (strcmp(k->e[i - 1].id, k->e[i].id) == 0) {
			unsigned int a = k->e[i - 1].line, b = k->e[i].line;

			util_snprintf(err, errlen, "%s:%u: client %s already "
			    "defined on line %u", name, a > b ? a : b,
			    k->e[i].id, a > b ? b : a);
			goto out;
		}
	}
	*out = k;
	k = NULL;
	rv = 0;
out:
	sodium_memzero(line, sizeof(line));
	sodium_memzero(key, sizeof(key));
	keys_free(k);
	return rv;
}

int
keys_load(const char *path, struct keys **out, char *err, size_t errlen)
{
	struct stat	 st;
	uint8_t		*data = NULL;
	size_t		 len = 0;
	int		 rv;

	*out = NULL;
	if (util_read_file(path, KEYS_FILE_MAX, &data, &len) == -1) {
		util_snprintf(err, errlen, "%s: %s", path, errno != 0 ?
		    strerror(errno) : "cannot read (larger than 16 MiB?)");
		return -1;
	}
	rv = keys_parse(path, (const char *)data, len, out, err, errlen);
	sodium_memzero(data, len);
	free(data);
	/* Keys are secrets: say so if anybody on the host can read them. */
	if (rv == 0 && stat(path, &st) == 0 && (st.st_mode & S_IROTH))
		log_warn("keys: %s is readable by all users; chmod o-r it",
		    path);
	return rv;
}

struct keys *
keys_ref(struct keys *k)
{
	if (k != NULL)
		atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
	return k;
}

void
keys_unref(struct keys *k)
{
	if (k == NULL)
		return;
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
		keys_free(k);
}

size_t
keys_count(const struct keys *k)
{
	return k != NULL ? k->n : 0;
}

const uint8_t *
keys_find(const struct keys *k, const char *client_id)
{
	struct keys_entry	 probe;
	const struct keys_entry	*e;
	size_t			 n;

	if (k == NULL || k->n == 0 || client_id == NULL)
		return NULL;
	n = strnlen(client_id, WIRE_CLIENT_ID_MAX + 1);
	if (n > WIRE_CLIENT_ID_MAX)
		return NULL;
	memcpy(probe.id, client_id, n + 1);
	e = bsearch(&probe, k->e, k->n, sizeof(*k->e), keys_entry_cmp);
	return e != NULL ? e->key : NULL;
}

const char *
keys_id(const struct keys *k, size_t i)
{
	if (k == NULL || i >= k->n)
		return NULL;
	return k->e[i].id;
}

int
keys_store_init(struct keys_store *s, struct keys *k)
{
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		return -1;
	s->cur = k;
	return 0;
}

struct keys *
keys_store_get(struct keys_store *s)
{
	struct keys	*k;

	pthread_mutex_lock(&s->mu);
	k = keys_ref(s->cur);
	pthread_mutex_unlock(&s->mu);
	return k;
}

void
keys_store_swap(struct keys_store *s, struct keys *k)
{
	struct keys	*old;

	pthread_mutex_lock(&s->mu);
	old = s->cur;
	s->cur = k;
	pthread_mutex_unlock(&s->mu);
	keys_unref(old);
}

void
keys_store_destroy(struct keys_store *s)
{
	keys_unref(s->cur);
	s->cur = NULL;
	pthread_mutex_destroy(&s->mu);
}
