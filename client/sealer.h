/*
 * sealer.h: the sealer threads.  They take closed batches from the batcher,
 * compress them side by side, then in the order the batches closed give
 * each the next sequence number, seal it (AEAD) and write it to the spool,
 * then wake the sender.
 */
#ifndef FLOWPOST_CLIENT_SEALER_H
#define FLOWPOST_CLIENT_SEALER_H

#include <stddef.h>
#include <stdint.h>

struct batcher;
struct spool;
struct sealer;

struct sealer_params {
	const char	*client_id;
	const uint8_t	*key;		/* WIRE_KEY_LEN bytes, copied */
	int		 zlevel;
	int		 zlevel_busy;	/* while batches wait for a thread */
	int		 threads;	/* 1..8 */
	int		 codec;		/* enum wire_codec; 0 means zlib */
	size_t		 sealed_max;	/* ceiling of one sealed batch */
	void		(*notify)(void *arg);	/* a batch was spooled */
	void		*notify_arg;
};

int	 sealer_start(struct sealer **out, struct batcher *b, struct spool *s,
	    const struct sealer_params *p);
/* New compression levels for the next batches (reload). */
void	 sealer_set_level(struct sealer *se, int zlevel, int zlevel_busy);
/* A new codec (enum wire_codec) for the next batches (reload). */
void	 sealer_set_codec(struct sealer *se, int codec);
/*
 * Seals and spools a heartbeat: a batch with the HEARTBEAT flag, no
 * datagrams and only a health block.  Any thread may call it while the
 * sealer runs; 0 if the heartbeat is in the spool.
 */
int	 sealer_heartbeat(struct sealer *se);
/*
 * After batcher_finish(): waits up to `timeout_s` for the threads to seal
 * and spool everything queued.  -1 if they did not finish in time (they
 * are then left running and the sealer must not be freed).
 */
int	 sealer_join(struct sealer *se, int timeout_s);
void	 sealer_free(struct sealer *se);

#endif
