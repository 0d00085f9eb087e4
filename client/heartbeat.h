/*
 * heartbeat.h: the kit's health report and the heartbeat thread.
 *
 * heartbeat_snapshot() fills a health block (common/health.h) from the
 * counters; the sealer calls it for every batch it seals, so each batch
 * tells the gateway how the kit was doing when it was sealed.
 *
 * The heartbeat thread samples the kernel's drop counters of this
 * process's UDP sockets every few seconds and, when `heartbeat` seconds
 * have passed with the spool empty and no batch sealed or delivered, has
 * the sealer seal a heartbeat: a batch with no datagrams, only the health
 * block, spooled and posted like any other.  A kit with a backlog sends no
 * heartbeats: its regular batches carry the health block anyway.
 */
#ifndef FLOWPOST_CLIENT_HEARTBEAT_H
#define FLOWPOST_CLIENT_HEARTBEAT_H

#include <stdint.h>

#include "health.h"

#define HEARTBEAT_TICK_MS	250	/* idle check */
#define HEARTBEAT_KDROPS_S	5	/* kernel drop counters sampled every */

struct sealer;
struct spool;
struct heartbeat;

/* Notes the process start (uptime); once, before any other call. */
void	 heartbeat_init(void);

/* The current health of the kit; `s` gives the spool's depth. */
void	 heartbeat_snapshot(struct spool *s, struct health *h);

/*
 * The Date header (unix seconds) of an answer that carried a valid
 * acknowledgement, so certainly the gateway's, received at `now_us`.
 * Updates the clock offset estimate.
 */
void	 heartbeat_note_date(int64_t date_unix, uint64_t now_us);

/*
 * Reads the drop counters of this process's UDP sockets from
 * /proc/net/udp and /proc/net/udp6 into *drops.  -1 if they cannot be
 * read (no /proc, or no UDP socket found).
 */
int	 heartbeat_kernel_drops(uint64_t *drops);

/*
 * Starts the thread; `interval_s` 0 means no heartbeats (the kernel
 * counters are still sampled).  Call with signals blocked.
 */
int	 heartbeat_start(struct heartbeat **out, struct sealer *se,
	    struct spool *s, uint64_t interval_s);
/* Reload: a new interval, from the next check on. */
void	 heartbeat_set_interval(struct heartbeat *hb, uint64_t interval_s);
/* Stops and joins the thread and frees it; NULL is fine. */
void	 heartbeat_stop(struct heartbeat *hb);

#endif
