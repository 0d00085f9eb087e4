/*
 * state.h: the per-client duplicate window, behind a small interface.
 *
 * A backend remembers, per client, which batch sequence numbers were
 * forwarded: the highest one (H) and a window of `dedup_window` numbers
 * below it.  A number below the window counts as seen (PROTOCOL.md 4.2).
 * The file backend (state_file.h) is the first implementation; a shared
 * store for several gateways can be added behind the same operations.
 *
 * Both operations return 0, or -1 when the backend cannot answer (the
 * backend logs why); a request then fails with 500 and nothing is
 * acknowledged.  check() and commit() for one client are always called
 * under that client's state lock (below), so a backend need not serialise
 * one client's operations itself, only its own shared tables.
 */
#ifndef FLOWPOST_GATEWAY_STATE_H
#define FLOWPOST_GATEWAY_STATE_H

#include <pthread.h>
#include <stdint.h>

struct state_ops {
	/* *seen = 1 if `seq` was forwarded before (or is below the window). */
	int	(*check)(void *ctx, const char *client, uint64_t seq, int *seen);
	/* Records `seq` as forwarded, durably, before it returns 0. */
	int	(*commit)(void *ctx, const char *client, uint64_t seq);
	void	(*close)(void *ctx);
};

/*
 * Per-client locks: the check, the emission and the commit of one batch
 * happen under its client's lock, so two concurrent requests carrying the
 * same batch cannot both forward it.  Clients hash onto a fixed set of
 * mutexes: memory stays bounded whatever ids arrive, and two clients that
 * share a stripe merely take turns.
 */
#define STATE_LOCK_STRIPES	64

struct state_locks {
	pthread_mutex_t	 mu[STATE_LOCK_STRIPES];
};

int	 state_locks_init(struct state_locks *l);
void	 state_locks_destroy(struct state_locks *l);
void	 state_lock(struct state_locks *l, const char *client);
void	 state_unlock(struct state_locks *l, const char *client);

#endif
