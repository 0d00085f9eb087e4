/*
 * state.c: per-client locks shared by every state backend.
 */
#include <string.h>

#include "state.h"

/* FNV-1a: cheap, and good enough to spread client ids over the stripes. */
static unsigned int
state_stripe(const char *client)
{
	uint32_t	 h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)client; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % STATE_LOCK_STRIPES;
}

int
state_locks_init(struct state_locks *l)
{
	for (int i = 0; i < STATE_LOCK_STRIPES; i++) {
		if (pthread_mutex_init(&l->mu[i], NULL) != 0) {
			while (--i >= 0)
				pthread_mutex_destroy(&l->mu[i]);
			return -1;
		}
	}
	return 0;
}

void
state_locks_destroy(struct state_locks *l)
{
	for (int i = 0; i < STATE_LOCK_STRIPES; i++)
		pthread_mutex_destroy(&l->mu[i]);
}

void
state_lock(struct state_locks *l, const char *client)
{
	pthread_mutex_lock(&l->mu[state_stripe(client)]);
}

void
state_unlock(struct state_locks *l, const char *client)
{
	pthread_mutex_unlock(&l->mu[state_stripe(client)]);
}
