/*
 * keys.h: the gateway's table of client keys.
 *
 * The keys file has one client per line, "<client_id> <64 hex digits>";
 * '#' starts a comment, blank lines are allowed.  A loaded table never
 * changes: a reload (SIGHUP) parses the file into a new table and swaps it
 * into the keys_store only if the whole file was valid, while requests in
 * flight keep the reference they took to the old one.  The last reference
 * wipes the key bytes.
 */
#ifndef FLOWPOST_GATEWAY_KEYS_H
#define FLOWPOST_GATEWAY_KEYS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define KEYS_FILE_MAX	(16u * 1024 * 1024)	/* bytes */
#define KEYS_LINE_MAX	1024

struct keys;

/* Parses `path`; errors name file:line.  The table has one reference. */
int		 keys_load(const char *path, struct keys **out, char *err,
		    size_t errlen);
/* Same for text already in memory; `name` is used in error messages. */
int		 keys_parse(const char *name, const char *text, size_t len,
		    struct keys **out, char *err, size_t errlen);

struct keys	*keys_ref(struct keys *k);
void		 keys_unref(struct keys *k);

size_t		 keys_count(const struct keys *k);
/* The client's WIRE_KEY_LEN key bytes, or NULL; valid while referenced. */
const uint8_t	*keys_find(const struct keys *k, const char *client_id);
/* Client ids in sorted order, i < keys_count(). */
const char	*keys_id(const struct keys *k, size_t i);

/* The table in use, swapped under a lock. */
struct keys_store {
	pthread_mutex_t	 mu;
	struct keys	*cur;
};

/* Takes over the caller's reference to `k`. */
int		 keys_store_init(struct keys_store *s, struct keys *k);
/* A new reference to the current table; release it with keys_unref(). */
struct keys	*keys_store_get(struct keys_store *s);
/* Installs `k` (taking over its reference) and drops the old table. */
void		 keys_store_swap(struct keys_store *s, struct keys *k);
void		 keys_store_destroy(struct keys_store *s);

#endif
