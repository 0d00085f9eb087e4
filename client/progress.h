/*
 * progress.h: a file job from the main thread's side.
 *
 * While the pcap reader reads, the job shows progress (a line redrawn in
 * place on a terminal, a log line every few seconds otherwise); when it is
 * done the job closes the input, lets the sealer spool everything and then
 * waits until the spool is empty, that is until the gateway acknowledged
 * every batch.  It gives up when the spool has held batches for
 * `timeout_s` without a single acknowledgement.  What is spooled stays
 * spooled whatever happens: a later run, or the daemon on the same spool
 * directory, sends it.
 */
#ifndef FLOWPOST_CLIENT_PROGRESS_H
#define FLOWPOST_CLIENT_PROGRESS_H

#include <signal.h>
#include <stdint.h>

struct batcher;
struct pcap_input;
struct sealer;
struct spool;

#define PROGRESS_TTY_MS		250	/* terminal redraw */
#define PROGRESS_LOG_S		5	/* plain progress line */

struct progress_job {
	struct pcap_input	**pcap;		/* stopped and NULLed here */
	struct batcher		 *batcher;
	struct sealer		 *sealer;
	struct spool		 *spool;
	const char		 *spool_dir;
	int			  spool_only;
	uint64_t		  timeout_s;
	int			  sealer_drain_s;
	volatile sig_atomic_t	 *stop;		/* SIGTERM/SIGINT flag */
	void			(*tick)(void *arg);	/* once a second */
	void			 *tick_arg;
};

/*
 * Runs the job to its end; returns the exit status (0 delivered, or
 * spooled with spool_only; 1 otherwise) and logs why.  *sealer_stuck is
 * set when the sealer did not finish (it must then not be freed).
 */
int	 progress_run_job(const struct progress_job *j, int *sealer_stuck);

#endif
