/*
 * status.h: `flowpost-client status`, the stats file summed up for people.
 *
 * Reads <spool_dir>/client.stats (written once a second by the running
 * client, see stats.h), judges the state of delivery and prints it with
 * the spool depth, the last success, the back-off and the counters.
 */
#ifndef FLOWPOST_CLIENT_STATUS_H
#define FLOWPOST_CLIENT_STATUS_H

#include <stdio.h>

#include "config.h"

/* Batches waiting above which the spool counts as a backlog. */
#define STATUS_BACKLOG_BATCHES	10

enum status_state {
	STATUS_OK,		/* little or nothing waiting */
	STATUS_BACKLOG,		/* batches waiting, or retrying, but moving */
	STATUS_FAILING,		/* batches waiting and nothing delivered */
	STATUS_STOPPED,		/* the client is not running */
};

/* The figures the state is judged from (unix seconds, counts). */
struct status_view {
	int		 running;
	uint64_t	 now;
	uint64_t	 spool_batches;
	uint64_t	 oldest_age_s;
	uint64_t	 last_success;	/* 0 = none since the start */
	uint64_t	 backoff_s;
	uint64_t	 window_s;	/* longest normal gap between POSTs */
};

enum status_state status_judge(const struct status_view *v);
const char	*status_state_name(enum status_state st);

/*
 * Prints the summary of c->spool_dir's stats file to `f`.  -1 (message on
 * stderr) if the file cannot be read: the client never ran with this
 * spool directory, or status was pointed at another one.
 */
int	 status_print(const struct client_config *c, FILE *f);

#endif
