/*
 * main.c: flowpost-client.  Options and configuration, signals, start and
 * orderly stop of the threads, and the main (receive) loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "conf.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include "batcher.h"
#include "config.h"
#include "pcap_input.h"
#include "progress.h"
#include "recv.h"
#include "heartbeat.h"
#include "sealer.h"
#include "sender.h"
#include "spool.h"
#include "stats.h"
#include "metrics.h"
#include "status.h"

#define PROGNAME		"flowpost-client"
#define POLL_MS			100	/* signal flags and batch age */
#define SEALER_DRAIN_S		30	/* shutdown: wait for last writes */

static volatile sig_atomic_t	got_term, got_hup, got_usr1;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		got_term = 1;
		break;
	case SIGHUP:
		got_hup = 1;
		break;
	case SIGUSR1:
		got_usr1 = 1;
		break;
	}
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: %s [-c FILE] [--check-config] [-v] [--KEY VALUE "
	    "...] [status]\n\n"
	    "Forwards NetFlow/IPFIX datagrams to a flowpost gateway over "
	    "HTTP(S).\n\n"
	    "  -c, --config FILE   configuration file ([client] section)\n"
	    "  --check-config      validate the configuration and exit\n"
	    "  -v                  more logging (repeatable)\n"
	    "  -h, --help          this text\n"
	    "  -V, --version       print the version\n"
	    "  status              summary of the running client's stats file\n"
	    "\nEvery configuration key is also an option:\n", PROGNAME);
	conf_print_help(config_table, f);
	pcap_job_usage(f);
}

static int
install_signals(void)
{
	struct sigaction	sa;
	const int		sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	size_t			i;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

/* Worker threads inherit this mask, so only the main thread sees signals. */
static void
block_signals(int how)
{
	sigset_t	set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(how, &set, NULL);
}

static void
sender_params_from(const struct client_config *c, struct sender_params *p)
{
	memset(p, 0, sizeof(*p));
	p->post.gateway_url = c->gateway_url;
	p->post.proxy = c->proxy;
	p->post.ca_file = c->ca_file;
	p->post.pinned_pubkey = c->pinned_pubkey;
	p->post.connect_timeout = c->connect_timeout;
	p->post.request_timeout = c->request_timeout;
	p->retry_initial = c->retry_initial;
	p->retry_factor = c->retry_factor;
	p->retry_max = c->retry_max;
	p->post.http_version = c->http_version;
	p->route.mode = c->route;
	p->route.allow_plain_http = c->allow_plain_http;
	p->route.plain_http_url = c->plain_http_url;
	p->route.state_dir = c->spool_dir;
	p->zlevel = (int)c->zlib_level;
	p->raw_max = config_raw_max(c);
	p->batch_max_bytes = (size_t)c->batch_max_bytes;
}

static enum log_level
effective_level(int level, int verbose)
{
	int	l = level + verbose;

	return l > LOGL_DEBUG ? LOGL_DEBUG : (enum log_level)l;
}

struct client {
	struct client_config	*cfg;
	int			 argc;
	char			**argv;
	int			 verbose;
	struct spool		*spool;
	struct batcher		*batcher;
	struct recv		*recv;
	struct sealer		*sealer;
	struct sender		*sender;
	struct pcap_input	*pcap;		/* pcap: and pcap-file: inputs */
	struct pcap_job		*job;		/* --pcap-file and friends */
	int			 is_job;	/* a file job, not the daemon */
	struct heartbeat	*heartbeat;
	struct metrics		*metrics;
};

static int
str_changed(const char *a, const char *b)
{
	return strcmp(a, b) != 0;
}

/* Swaps a string key from the new config into the running one. */
static void
take_str(char **cur, char **nw)
{
	char	*t = *cur;

	*cur = *nw;
	*nw = t;
}

/*
 * SIGHUP: parse the same file and options into a fresh config; if it is
 * valid, apply what can change while running and name what cannot.
 */
static void
reload(struct client *cl)
{
	struct client_config	*cur = cl->cfg, *nc;
	struct conf_cli		 cli = { .progname = PROGNAME,
				    .section = "client", .other = "gateway" };
	struct sender_params	 sp;
	char			 err[CONF_ERR_MAX];

	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		log_error("reload: out of memory; keeping the running "
		    "configuration");
		return;
	}
	if (conf_cli_parse(config_table, nc, &cli, cl->argc, cl->argv, err,
	    sizeof(err)) == -1 || config_validate(nc, err, sizeof(err)) == -1) {
		log_error("reload: %s; keeping the running configuration", err);
		goto out;
	}

#define NEEDS_RESTART(changed, key) do {				\
	if (changed)							\
		log_warn("reload: %s changed; it takes effect after a "	\
		    "restart", key);					\
} while (0)
	NEEDS_RESTART(str_changed(cur->listen, nc->listen), "listen");
	NEEDS_RESTART(str_changed(cur->spool_dir, nc->spool_dir), "spool_dir");
	NEEDS_RESTART(str_changed(cur->client_id, nc->client_id), "client_id");
	NEEDS_RESTART(memcmp(cur->key, nc->key, WIRE_KEY_LEN) != 0,
	    "the key in key_file");
	NEEDS_RESTART(cur->batch_max_bytes != nc->batch_max_bytes,
	    "batch_max_bytes");
	NEEDS_RESTART(cur->rcvbuf != nc->rcvbuf, "rcvbuf");
	NEEDS_RESTART(cur->seal_threads != nc->seal_threads, "seal_threads");
	NEEDS_RESTART(cur->syslog != nc->syslog, "syslog");
	NEEDS_RESTART(str_changed(cur->input, nc->input) ||
	    str_changed(cur->pcap_filter, nc->pcap_filter) ||
	    cur->pcap_promisc != nc->pcap_promisc ||
	    cur->pcap_snaplen != nc->pcap_snaplen ||
	    cur->pcap_buffer != nc->pcap_buffer, "input or a pcap_ key");
	NEEDS_RESTART(str_changed(cur->metrics_listen, nc->metrics_listen),
	    "metrics_listen");
#undef NEEDS_RESTART

	take_str(&cur->gateway_url, &nc->gateway_url);
	take_str(&cur->proxy, &nc->proxy);
	take_str(&cur->ca_file, &nc->ca_file);
	take_str(&cur->pinned_pubkey, &nc->pinned_pubkey);
	take_str(&cur->plain_http_url, &nc->plain_http_url);
	cur->route = nc->route;
	cur->http_version = nc->http_version;
	cur->allow_plain_http = nc->allow_plain_http;
	cur->connect_timeout = nc->connect_timeout;
	cur->request_timeout = nc->request_timeout;
	cur->retry_initial = nc->retry_initial;
	cur->retry_factor = nc->retry_factor;
	cur->retry_max = nc->retry_max;
	cur->batch_max_age = nc->batch_max_age;
	cur->spool_max_bytes = nc->spool_max_bytes;
	cur->spool_max_age = nc->spool_max_age;
	cur->spool_full = nc->spool_full;
	cur->drop_malformed = nc->drop_malformed;
	cur->zlib_level = nc->zlib_level;
	cur->zlib_level_busy = nc->zlib_level_busy;
	cur->codec = nc->codec;
	cur->stats_interval = nc->stats_interval;
	cur->heartbeat = nc->heartbeat;
	cur->log_level = nc->log_level;

	log_set_level(effective_level(cur->log_level, cl->verbose));
	batcher_set_max_age(cl->batcher, cur->batch_max_age);
	recv_set_drop_malformed(cl->recv, cur->drop_malformed);
	sealer_set_level(cl->sealer, (int)cur->zlib_level,
	    (int)cur->zlib_level_busy);
	sealer_set_codec(cl->sealer, config_wire_codec(cur));
	spool_set_limits(cl->spool, cur->spool_max_bytes, cur->spool_max_age,
	    cur->spool_full == CONFIG_DROP_NEWEST);
	sender_params_from(cur, &sp);
	sender_reconfigure(cl->sender, &sp);
	heartbeat_set_interval(cl->heartbeat, cur->heartbeat);
	log_info("reload: configuration reloaded; gateway %s",
	    cur->gateway_url);
 out:
	config_free(nc);
	free(nc);
}

/* Once a second: age gauge, spool_max_age, the stats file. */
static void
every_second(struct client *cl)
{
	static struct log_limit	 lim;
	uint64_t		 batches, bytes, oldest, now_us;

	now_us = util_real_us();
	spool_expire(cl->spool, now_us);
	spool_depth(cl->spool, &batches, &bytes, &oldest);
	STATS_SET(spool_oldest_age_s,
	    oldest != 0 && now_us > oldest ? (now_us - oldest) / 1000000 : 0);
	if (stats_write_file(cl->cfg->spool_dir) == -1)
		log_limited(&lim, 300, LOGL_WARN, "stats: cannot write %s/%s: "
		    "%s", cl->cfg->spool_dir, STATS_FILE, strerror(errno));
}

/*
 * every_second() runs in a thread of its own while the daemon receives:
 * expiring spool files and rewriting the stats file touch the disk, and a
 * storage stall must never keep the receive loop from draining its sockets.
 */
struct housekeeper {
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 stop;
	struct client	*cl;
};

static void *
housekeeper_main(void *arg)
{
	struct housekeeper	*hk = arg;
	struct timespec		 ts;

	pthread_mutex_lock(&hk->mu);
	while (!hk->stop) {
		pthread_mutex_unlock(&hk->mu);
		every_second(hk->cl);
		pthread_mutex_lock(&hk->mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		while (!hk->stop && pthread_cond_timedwait(&hk->cv, &hk->mu,
		    &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&hk->mu);
	return NULL;
}

static int
housekeeper_start(struct housekeeper *hk, struct client *cl)
{
	pthread_condattr_t	ca;
	int			e;

	memset(hk, 0, sizeof(*hk));
	hk->cl = cl;
	pthread_mutex_init(&hk->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hk->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((e = pthread_create(&hk->thread, NULL, housekeeper_main,
	    hk)) != 0) {
		log_error("housekeeper: cannot start thread: %s", strerror(e));
		pthread_cond_destroy(&hk->cv);
		pthread_mutex_destroy(&hk->mu);
		return -1;
	}
	return 0;
}

static void
housekeeper_stop(struct housekeeper *hk)
{
	pthread_mutex_lock(&hk->mu);
	hk->stop = 1;
	pthread_cond_signal(&hk->cv);
	pthread_mutex_unlock(&hk->mu);
	pthread_join(hk->thread, NULL);
	pthread_cond_destroy(&hk->cv);
	pthread_mutex_destroy(&hk->mu);
}

static void
main_loop(struct client *cl)
{
	struct housekeeper	hk;
	int			hk_running;
	int64_t			now, next_stats;

	hk_running = housekeeper_start(&hk, cl) == 0;
	now = util_mono_ns();
	next_stats = now + (int64_t)cl->cfg->stats_interval * 1000000000LL;
	while (!got_term) {
		recv_poll(cl->recv, POLL_MS);
		now = util_mono_ns();
		batcher_tick(cl->batcher, now);
		if (got_hup) {
			got_hup = 0;
			reload(cl);
			next_stats = now +
			    (int64_t)cl->cfg->stats_interval * 1000000000LL;
		}
		if (got_usr1) {
			got_usr1 = 0;
			stats_log();
		}
		if (cl->cfg->stats_interval > 0 && now >= next_stats) {
			next_stats = now +
			    (int64_t)cl->cfg->stats_interval * 1000000000LL;
			stats_log();
		}
		if (!hk_running)
			every_second(cl);	/* degraded: no thread for it */
	}
	if (hk_running)
		housekeeper_stop(&hk);
}

static void
job_tick(void *arg)
{
	every_second(arg);
}

/*
 * A file job (--pcap-file): progress.c reads, seals, waits for delivery
 * and picks the exit status; this is the wiring.
 */
static int
run_job(struct client *cl, int *sealer_done)
{
	struct progress_job	j;
	char			what[64];
	int			rc, stuck;

	heartbeat_stop(cl->heartbeat);	/* it seals through the sealer */
	cl->heartbeat = NULL;
	pcap_input_describe(cl->pcap, what, sizeof(what));
	log_info("%s %s: sending %s %s%s; spool %s", PROGNAME,
	    FLOWPOST_VERSION, what, cl->job->spool_only ? "to the spool "
	    "only" : "to ", cl->job->spool_only ? "" : cl->cfg->gateway_url,
	    cl->cfg->spool_dir);
	memset(&j, 0, sizeof(j));
	j.pcap = &cl->pcap;
	j.batcher = cl->batcher;
	j.sealer = cl->sealer;
	j.spool = cl->spool;
	j.spool_dir = cl->cfg->spool_dir;
	j.spool_only = cl->job->spool_only;
	j.timeout_s = cl->job->timeout_s;
	j.sealer_drain_s = SEALER_DRAIN_S;
	j.stop = &got_term;
	j.tick = job_tick;
	j.tick_arg = cl;
	rc = progress_run_job(&j, &stuck);
	metrics_stop(cl->metrics);
	cl->metrics = NULL;
	sender_stop(cl->sender);
	every_second(cl);
	*sealer_done = !stuck;
	return rc;
}

static int
run(struct client *cl)
{
	struct client_config	*cfg = cl->cfg;
	struct spool_params	 spp;
	struct sealer_params	 sep;
	struct sender_params	 sdp;
	char			 listeners[1024];
	uint64_t		 batches, bytes, oldest;
	size_t			 n;
	int			 rc = 1, sealer_done = 1;

	heartbeat_init();
	memset(&spp, 0, sizeof(spp));
	spp.dir = cfg->spool_dir;
	spp.key = cfg->key;
	spp.raw_max = config_raw_max(cfg);
	spp.sealed_max = config_sealed_max(cfg);
	spp.max_bytes = cfg->spool_max_bytes;
	spp.max_age_s = cfg->spool_max_age;
	spp.drop_newest = cfg->spool_full == CONFIG_DROP_NEWEST;
	if (spool_open(&cl->spool, &spp) == -1)
		goto out;
	if (batcher_new(&cl->batcher, (size_t)cfg->batch_max_bytes,
	    config_entries_max(cfg), cfg->batch_max_age) == -1) {
		log_error("batcher: out of memory");
		goto out;
	}
	if (!cl->is_job && recv_open(&cl->recv, cfg->listen_addr,
	    cfg->listen_len, cfg->nlisten, cfg->rcvbuf, cl->batcher,
	    cfg->drop_malformed) == -1)
		goto out;
	if (pcap_input_open(&cl->pcap, cfg, cl->job, cl->batcher) == -1)
		goto out;
	/* before the threads: a failure here must not leave them running */
	if (metrics_start(&cl->metrics, cfg->metrics_listen) == -1)
		goto out;

	block_signals(SIG_BLOCK);
	sender_params_from(cfg, &sdp);
	sdp.batcher = cl->batcher;
	/* --spool-only: a file job that never talks to the gateway */
	if ((cl->is_job && cl->job->spool_only) ||
	    sender_start(&cl->sender, cl->spool, cfg->key,
	    config_sealed_max(cfg), &sdp) == 0) {
		memset(&sep, 0, sizeof(sep));
		sep.client_id = cfg->client_id;
		sep.key = cfg->key;
		sep.zlevel = (int)cfg->zlib_level;
		sep.zlevel_busy = (int)cfg->zlib_level_busy;
		sep.threads = (int)cfg->seal_threads;
		sep.codec = config_wire_codec(cfg);
		sep.sealed_max = config_sealed_max(cfg);
		sep.notify = cl->sender != NULL ? sender_notify : NULL;
		sep.notify_arg = cl->sender;
		if (sealer_start(&cl->sealer, cl->batcher, cl->spool,
		    &sep) == -1) {
			sender_free(cl->sender);
			cl->sender = NULL;
		}
	}
	/* without it batches still carry health; only heartbeats are off */
	if (cl->sealer != NULL)
		(void)heartbeat_start(&cl->heartbeat, cl->sealer, cl->spool,
		    cfg->heartbeat);
	block_signals(SIG_UNBLOCK);
	if (cl->sealer == NULL)
		goto out;
	if (cl->is_job) {
		rc = run_job(cl, &sealer_done);
		if (!sealer_done) {
			/* the sealer still uses the batcher and spool */
			sender_free(cl->sender);
			return 1;
		}
		goto out;
	}

	recv_describe(cl->recv, listeners, sizeof(listeners));
	if (cl->pcap != NULL && strlen(listeners) + 2 < sizeof(listeners)) {
		n = strlen(listeners);
		listeners[n++] = ' ';
		pcap_input_describe(cl->pcap, listeners + n,
		    sizeof(listeners) - n);
	}
	spool_depth(cl->spool, &batches, &bytes, &oldest);
	log_info("%s %s started: listening on %s; gateway %s; spool %s holds "
	    "%" PRIu64 " batches (%" PRIu64 " bytes)", PROGNAME,
	    FLOWPOST_VERSION, listeners, cfg->gateway_url, cfg->spool_dir,
	    batches, bytes);

	main_loop(cl);

	/*
	 * Stop in data order: no more datagrams, the open batch to the
	 * sealer, everything sealed onto disk, then the sender (a POST in
	 * flight is aborted; its batch stays spooled).
	 */
	log_info("shutting down");
	metrics_stop(cl->metrics);
	cl->metrics = NULL;
	recv_close(cl->recv);
	cl->recv = NULL;
	pcap_input_stop(cl->pcap);	/* queues its lanes' open batches */
	cl->pcap = NULL;
	heartbeat_stop(cl->heartbeat);	/* it seals through the sealer */
	cl->heartbeat = NULL;
	batcher_finish(cl->batcher);
	if (sealer_join(cl->sealer, SEALER_DRAIN_S) == -1)
		sealer_done = 0;
	sender_stop(cl->sender);
	every_second(cl);
	spool_depth(cl->spool, &batches, &bytes, &oldest);
	log_info("%s stopped: received %" PRIu64 " datagrams, sealed %"
	    PRIu64 " batches, delivered %" PRIu64 "; %" PRIu64 " batches (%"
	    PRIu64 " bytes) left in the spool", PROGNAME,
	    STATS_GET(received_datagrams), STATS_GET(batches_sealed),
	    STATS_GET(acked_batches), batches, bytes);
	if (!sealer_done) {
		/* the sealer still uses the batcher and spool: leave them */
		sender_free(cl->sender);
		return 1;
	}
	rc = 0;
 out:
	metrics_stop(cl->metrics);
	heartbeat_stop(cl->heartbeat);
	pcap_input_stop(cl->pcap);
	sealer_free(cl->sealer);
	sender_free(cl->sender);
	recv_close(cl->recv);
	batcher_free(cl->batcher);
	spool_close(cl->spool);
	return rc;
}

int
main(int argc, char **argv)
{
	struct client_config	cfg;
	struct client		cl;
	struct conf_cli		cli = { .progname = PROGNAME,
				    .section = "client", .other = "gateway" };
	struct pcap_job		job;
	char			err[CONF_ERR_MAX];
	int			rc, is_job = 0;

	memset(&cfg, 0, sizeof(cfg));
	pcap_job_init(&job);
	cli.extra = pcap_job_cli;
	cli.extra_arg = &job;
	if (conf_cli_parse(config_table, &cfg, &cli, argc, argv, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", PROGNAME, err);
		rc = 2;
		goto out;
	}
	if (cli.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (cli.version) {
		printf("%s %s\n", PROGNAME, FLOWPOST_VERSION);
		rc = 0;
		goto out;
	}
	if (cli.nwords > 0) {
		if (cli.nwords == 1 && strcmp(cli.words[0], "status") == 0) {
			rc = status_print(&cfg, stdout) == 0 ?
			    0 : 1;
			goto out;
		}
		fprintf(stderr, "%s: unknown command '%s' (see --help)\n",
		    PROGNAME, cli.words[0]);
		rc = 2;
		goto out;
	}
	if (wire_init() == -1) {
		fprintf(stderr, "%s: cannot initialise libsodium\n", PROGNAME);
		rc = 1;
		goto out;
	}
	if (config_validate(&cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s%s%s\n", PROGNAME,
		    cli.config_path ? cli.config_path : "",
		    cli.config_path ? ": " : "", err);
		rc = 2;
		goto out;
	}
	if ((is_job = pcap_job_resolve(&job, &cfg, err, sizeof(err))) == -1) {
		fprintf(stderr, "%s: %s\n", PROGNAME, err);
		rc = 2;
		goto out;
	}
	if (cli.check_config) {
		if (cli.verbose)
			conf_dump(config_table, &cfg, stdout);
		printf("configuration ok\n");
		rc = 0;
		goto out;
	}

	log_init(PROGNAME, effective_level(cfg.log_level, cli.verbose),
	    cfg.syslog);
	if (install_signals() == -1) {
		log_error("cannot install signal handlers: %s",
		    strerror(errno));
		rc = 1;
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		rc = 1;
		goto out;
	}
	memset(&cl, 0, sizeof(cl));
	cl.cfg = &cfg;
	cl.argc = argc;
	cl.argv = argv;
	cl.verbose = cli.verbose;
	cl.job = &job;
	cl.is_job = is_job;
	rc = run(&cl);
	curl_global_cleanup();
 out:
	pcap_job_free(&job);
	config_free(&cfg);
	return rc;
}
