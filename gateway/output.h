/*
 * output.h: where forwarded datagrams go, behind a small interface.
 *
 * An output takes one batch's datagrams, in batch order, and returns only
 * when every destination has either taken all of them (handed to the
 * kernel, for UDP) or failed.  The UDP backend (output_udp.h) is the first
 * implementation; a message-queue output can be added behind the same
 * operations.
 */
#ifndef FLOWPOST_GATEWAY_OUTPUT_H
#define FLOWPOST_GATEWAY_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct output_result {
	unsigned int	targets;	/* destinations tried */
	unsigned int	delivered;	/* destinations that took the batch */
};

/* Per-destination counters, as a snapshot. */
struct output_counters {
	uint64_t	datagrams;	/* handed over */
	uint64_t	bytes;		/* payload bytes handed over */
	uint64_t	send_errors;	/* datagrams that could not be */
	uint64_t	paced_ns;	/* time spent waiting for the pacer */
};

struct output_ops {
	/*
	 * Sends entries[0..n) to every destination.  0 if at least one
	 * destination took the whole batch (the batch counts as forwarded),
	 * -1 if none did.  Safe to call from several threads at once.
	 */
	int	(*send)(void *ctx, const struct wire_entry *entries, size_t n,
		    struct output_result *res);
	/* Calls cb once per destination with its name and counters. */
	void	(*foreach)(void *ctx, void (*cb)(const char *name,
		    const struct output_counters *c, void *arg), void *arg);
	void	(*close)(void *ctx);
};

#endif
