/*
 * main.c: flowpost-gateway's options, start, signals and stop.
 *
 * Start: configuration (exit 2 if unusable), keys, collectors and the TLS
 * certificate and key, the listening sockets (exit 1 if they cannot be
 * bound), the privilege drop, the state directory (exit 1 if unusable), the
 * outputs, then the HTTP daemons.  Everything that may need root (reading
 * the TLS key, binding a port below 1024) happens before the drop.  Signals are blocked in every thread and taken synchronously
 * by the main loop with sigtimedwait(), so no code runs in signal context:
 * TERM/INT stop, HUP reloads the keys file and log level, USR1 logs the
 * counters.
 */
#include <sys/resource.h>

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "http.h"
#include "ingest.h"
#include "keys.h"
#include "kits.h"
#include "log.h"
#include "metrics.h"
#include "output_udp.h"
#include "srcmap.h"
#include "state_file.h"
#include "template.h"
#include "util.h"
#include "wire.h"

#define PROGNAME	"flowpost-gateway"
#define EXIT_RUNTIME	1
#define EXIT_CONFIG	2
#define DRAIN_EXTRA_S	5	/* beyond connection_timeout */
#define DRAIN_MAX_S	60
#define NOFILE_MARGIN	256	/* metrics, collectors, state files, logs */

struct gateway {
	struct gateway_config	 cfg;
	int			 argc;
	char			**argv;
	struct keys_store	 keys;
	int			 keys_ready;
	struct config_addr	*collectors;
	size_t			 ncollectors;
	const struct state_ops	*sops;
	void			*sctx;
	const struct output_ops	*oops;
	void			*octx;
	struct template_cache	*templates;	/* NULL: template_refresh 0 */
	struct srcmap		*srcmap;	/* NULL: gateway's own source */
	struct ingest		*ig;
	struct kits		*kits;
	struct http		*http;
	struct metrics		*metrics;
	int			 http_fd;
	int			 metrics_fd;
	char			 http_bound[CONFIG_ADDR_NAME_MAX];
	char			 metrics_bound[CONFIG_ADDR_NAME_MAX];
	char			*tls_cert;	/* PEM text until http_start() */
	char			*tls_key;
};

static const char *const main_level_names[] = {
	"error", "warn", "info", "debug"
};

struct main_opts {
	const char	*genkey;	/* --genkey CLIENT_ID */
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: " PROGNAME " [-c FILE] [--check-config] [-v] "
	    "[--key value ...]\n"
	    "       " PROGNAME " --genkey CLIENT_ID\n"
	    "\n"
	    "Receives sealed batches of NetFlow/IPFIX datagrams over HTTP and "
	    "re-emits\nthem as UDP to the configured collectors.\n"
	    "\n"
	    "  -c, --config FILE       INI file ([gateway] section)\n"
	    "  --check-config          check configuration, keys file and "
	    "collectors, then exit\n"
	    "  --genkey CLIENT_ID      print a new key for a client, then "
	    "exit\n"
	    "  -v                      more logging (repeatable)\n"
	    "  -h, --help              this text\n"
	    "  -V, --version           version\n"
	    "\nConfiguration keys (also as --key value):\n");
	conf_print_help(config_keys, f);
	fprintf(f, "\nExit status: 0 ok, 1 runtime failure (bind, state_dir), "
	    "2 configuration error.\n");
}

/* Options outside the key table: --genkey ID and --genkey=ID. */
static int
main_extra(int argc, char **argv, int i, void *arg, char *err, size_t errlen)
{
	struct main_opts	*o = arg;

	if (strcmp(argv[i], "--genkey") == 0) {
		if (i + 1 >= argc) {
			util_snprintf(err, errlen, "--genkey needs a client id");
			return -1;
		}
		o->genkey = argv[i + 1];
		return 2;
	}
	if (strncmp(argv[i], "--genkey=", 9) == 0) {
		o->genkey = argv[i] + 9;
		return 1;
	}
	return 0;
}

/* --genkey: the line for the keys file and what the client needs. */
static int
main_genkey(const char *id)
{
	uint8_t	 key[WIRE_KEY_LEN];
	char	 hex[2 * WIRE_KEY_LEN + 1];

	if (wire_client_id_valid(id) == -1) {
		fprintf(stderr, PROGNAME ": --genkey: bad client id \"%s\" "
		    "(1..%d characters of A-Z a-z 0-9 . _ -)\n", id,
		    WIRE_CLIENT_ID_MAX);
		return EXIT_CONFIG;
	}
	if (wire_init() == -1) {
		fprintf(stderr, PROGNAME ": libsodium failed to start\n");
		return EXIT_RUNTIME;
	}
	randombytes_buf(key, sizeof(key));
	wire_key_format(key, hex);
	printf("# gateway: add this line to keys_file, then send SIGHUP\n"
	    "%s %s\n"
	    "\n"
	    "# client: in the [client] section of its configuration\n"
	    "client_id = %s\n"
	    "# key_file contents (one line, mode 0600):\n"
	    "%s\n", id, hex, id, hex);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

static enum log_level
main_log_level(const struct gateway_config *cfg, int verbose)
{
	int	 l = cfg->log_level + verbose;

	return l > LOGL_DEBUG ? LOGL_DEBUG : (enum log_level)l;
}

/*
 * Parses options and file into a zeroed `cfg` and validates it; the
 * message goes to err.  Used at start and on SIGHUP.
 */
static int
main_parse(struct gateway_config *cfg, struct conf_cli *cli,
    struct main_opts *opts, int argc, char **argv, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	memset(cli, 0, sizeof(*cli));
	cli->progname = PROGNAME;
	cli->section = "gateway";
	cli->other = "client";
	cli->extra = main_extra;
	cli->extra_arg = opts;
	if (conf_cli_parse(config_keys, cfg, cli, argc, argv, err, errlen) ==
	    -1)
		return -1;
	if (cli->nwords > 0) {
		util_snprintf(err, errlen, "unexpected argument '%s'",
		    cli->words[0]);
		return -1;
	}
	return 0;
}

/* Collects "reason n" pairs of the 429 counters into one string. */
struct main_limits {
	char	 text[160];
	size_t	 len;
};

static void
main_limit_cb(const char *reason, uint64_t n, void *arg)
{
	struct main_limits	*l = arg;
	int			 w;

	w = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s %"
	    PRIu64, l->len > 0 ? ", " : "", reason, n);
	if (w > 0 && (size_t)w < sizeof(l->text) - l->len)
		l->len += (size_t)w;
}

static void
main_stats(struct gateway *gw, const char *why)
{
	struct ingest_totals	 t;
	struct main_limits	 l;
	uint64_t		 rejected = 0;

	ingest_get_totals(gw->ig, &t);
	for (int i = 0; i < INGEST_R_COUNT; i++)
		rejected += t.rejected[i];
	memset(&l, 0, sizeof(l));
	if (gw->http != NULL)
		http_foreach_limit(gw->http, main_limit_cb, &l);
	log_info("stats (%s): batches %" PRIu64 " datagrams %" PRIu64
	    " bytes_in %" PRIu64 " bytes_out %" PRIu64 " duplicates %" PRIu64
	    " rejected %" PRIu64 " (auth %" PRIu64 ", unknown client %" PRIu64
	    ", collectors unavailable %" PRIu64 ", state %" PRIu64 ")"
	    " rate_limited (%s)", why,
	    t.batches, t.datagrams, t.bytes_in, t.bytes_out, t.duplicates,
	    rejected, t.auth_failures, t.unknown_clients,
	    t.rejected[INGEST_R_OUTPUT], t.rejected[INGEST_R_STATE],
	    l.len > 0 ? l.text : "none");
}

static void
main_kits_params(const struct gateway_config *cfg, struct kits_params *p)
{
	memset(p, 0, sizeof(*p));
	p->warn_lag_s = cfg->warn_lag;
	p->warn_drops = cfg->warn_drops;
}

/*
 * SIGHUP: new keys table, log level and kit warning thresholds; the rest
 * needs a restart.
 */
static void
main_reload(struct gateway *gw)
{
	struct gateway_config	 ncfg;
	struct conf_cli		 cli;
	struct main_opts	 opts = { NULL };
	struct keys		*k = NULL;
	struct kits_params	 kp;
	char			 err[CONF_ERR_MAX];

	if (main_parse(&ncfg, &cli, &opts, gw->argc, gw->argv, err,
	    sizeof(err)) == -1 || config_validate(&ncfg, err,
	    sizeof(err)) == -1) {
		log_error("reload: configuration: %s; keeping the running one",
		    err);
		goto out;
	}
	if (keys_load(ncfg.keys_file, &k, err, sizeof(err)) == -1) {
		log_error("reload: keys: %s; keeping the %zu loaded keys", err,
		    keys_count(gw->keys.cur));
		goto out;
	}
	log_set_level(main_log_level(&ncfg, cli.verbose));
	log_info("reload: %zu client keys from %s, log_level %s",
	    keys_count(k), ncfg.keys_file,
	    main_level_names[main_log_level(&ncfg, cli.verbose)]);
	keys_store_swap(&gw->keys, k);
	http_keys_changed(gw->http);
	main_kits_params(&ncfg, &kp);
	kits_set_params(gw->kits, &kp);
out:
	conf_free(config_keys, &ncfg);
}

/* setgid/initgroups/setuid to cfg->user when started as root. */
static int
main_drop_privileges(const struct gateway_config *cfg)
{
	struct passwd	*pw;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return 0;
	if ((pw = getpwnam(cfg->user)) == NULL) {
		log_error("user %s: no such user", cfg->user);
		return -1;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			log_warn("user %s: not started as root; running as "
			    "uid %u", cfg->user, (unsigned int)geteuid());
		return 0;
	}
	if (setgroups(0, NULL) == -1 ||
	    initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
		log_error("user %s: cannot switch: %s", cfg->user,
		    strerror(errno));
		return -1;
	}
	/* Must not be able to get root back. */
	if (pw->pw_uid != 0 && setuid(0) != -1) {
		log_error("user %s: privileges could be regained", cfg->user);
		return -1;
	}
	log_info("running as user %s", cfg->user);
	return 0;
}

static void
main_free_tls(struct gateway *gw)
{
	if (gw->tls_key != NULL) {
		sodium_memzero(gw->tls_key, strlen(gw->tls_key));
		free(gw->tls_key);
		gw->tls_key = NULL;
	}
	free(gw->tls_cert);
	gw->tls_cert = NULL;
}

/*
 * Every HTTP connection is a file descriptor, and a soft RLIMIT_NOFILE of
 * 1024 (the usual default) is below connection_limit (1024) plus what the
 * gateway needs besides: accept() would fail with EMFILE from about 1,000
 * clients on.  The soft limit is raised as far as needed, within the hard
 * limit; what is still missing is said once at start.
 */
static void
main_raise_nofile(const struct gateway_config *cfg)
{
	struct rlimit	 rl;
	rlim_t		 need;

	need = (rlim_t)cfg->connection_limit + NOFILE_MARGIN;
	if (cfg->preserve_source || cfg->source_port_map)
		need += SRCMAP_SOCKETS_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		log_warn("open files limit: the hard limit %llu is below the "
		    "%llu that connection_limit %llu needs; connections "
		    "beyond the limit are not accepted: raise it (ulimit -Hn, "
		    "LimitNOFILE= in systemd) or lower connection_limit",
		    (unsigned long long)rl.rlim_max, (unsigned long long)need,
		    (unsigned long long)cfg->connection_limit);
		need = rl.rlim_max;
	}
	if (need <= rl.rlim_cur)
		return;
	log_info("open files limit: raising the soft limit from %llu to %llu "
	    "for connection_limit %llu", (unsigned long long)rl.rlim_cur,
	    (unsigned long long)need,
	    (unsigned long long)cfg->connection_limit);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s",
		    (unsigned long long)need, strerror(errno));
}

static int
main_start(struct gateway *gw)
{
	struct ingest_params	 ip;
	struct ingest_deps	 id;
	struct http_params	 hp;
	struct metrics_sources	 ms;
	struct kits_params	 kp;
	struct config_addr	 a;
	char			 err[CONF_ERR_MAX];

	main_raise_nofile(&gw->cfg);
	/* Sockets first: the only step that may need root. */
	if (config_listen_addr(gw->cfg.listen, "listen", &a, err,
	    sizeof(err)) == -1 || http_listen(&a, &gw->http_fd,
	    gw->http_bound, sizeof(gw->http_bound), err, sizeof(err)) == -1) {
		log_error("listen: %s", err);
		return -1;
	}
	if (!config_metrics_disabled(&gw->cfg) &&
	    (config_listen_addr(gw->cfg.metrics_listen, "metrics_listen", &a,
	    err, sizeof(err)) == -1 || http_listen(&a, &gw->metrics_fd,
	    gw->metrics_bound, sizeof(gw->metrics_bound), err,
	    sizeof(err)) == -1)) {
		log_error("metrics_listen: %s", err);
		return -1;
	}
	/* The raw socket of preserve_source needs CAP_NET_RAW: before. */
	if (gw->cfg.preserve_source || gw->cfg.source_port_map) {
		struct srcmap_params sp;

		memset(&sp, 0, sizeof(sp));
		sp.preserve_source = gw->cfg.preserve_source;
		sp.source_port_map = gw->cfg.source_port_map;
		if ((gw->srcmap = srcmap_open(&sp, err, sizeof(err))) ==
		    NULL) {
			log_error("%s", err);
			return -1;
		}
	}
	if (main_drop_privileges(&gw->cfg) == -1)
		return -1;

	if (state_file_open(gw->cfg.state_dir, gw->cfg.dedup_window,
	    &gw->sops, &gw->sctx, err, sizeof(err)) == -1) {
		log_error("%s", err);
		return -1;
	}
	if (output_udp_open(gw->collectors, gw->ncollectors, &gw->oops,
	    &gw->octx, err, sizeof(err)) == -1) {
		log_error("%s", err);
		return -1;
	}
	if (gw->srcmap != NULL)
		output_udp_set_srcmap(gw->octx, gw->srcmap);

	memset(&ip, 0, sizeof(ip));
	ip.max_raw_bytes = gw->cfg.max_raw_bytes;
	ip.max_batch_age_s = gw->cfg.max_batch_age;
	ip.max_clock_skew_s = gw->cfg.max_clock_skew;
	memset(&id, 0, sizeof(id));
	id.keys = &gw->keys;
	id.state = gw->sops;
	id.state_ctx = gw->sctx;
	id.output = gw->oops;
	id.output_ctx = gw->octx;
	if (gw->cfg.template_refresh > 0) {
		struct template_params tp;

		memset(&tp, 0, sizeof(tp));
		tp.refresh_s = gw->cfg.template_refresh;
		tp.state_dir = gw->cfg.state_dir;
		if ((gw->templates = template_open(&tp, err,
		    sizeof(err))) == NULL) {
			log_error("%s", err);
			return -1;
		}
	}
	if ((gw->ig = ingest_new(&ip, &id)) == NULL) {
		log_error("ingest: out of memory");
		return -1;
	}
	main_kits_params(&gw->cfg, &kp);
	if ((gw->kits = kits_new(&kp)) == NULL) {
		log_error("kits: out of memory");
		return -1;
	}
	ingest_set_kits(gw->ig, gw->kits);
	ingest_set_templates(gw->ig, gw->templates);

	memset(&hp, 0, sizeof(hp));
	hp.fd = gw->http_fd;
	hp.path_prefix = gw->cfg.path_prefix;
	hp.max_body_bytes = gw->cfg.max_body_bytes;
	hp.threads = (unsigned int)gw->cfg.threads;
	hp.connection_limit = (unsigned int)gw->cfg.connection_limit;
	hp.connection_timeout = (unsigned int)gw->cfg.connection_timeout;
	hp.per_ip_connection_limit =
	    (unsigned int)gw->cfg.per_ip_connection_limit;
	hp.rates.global = gw->cfg.rate_limit_global;
	hp.rates.client = gw->cfg.rate_limit_client;
	hp.rates.auth_failures = gw->cfg.rate_limit_auth_failures;
	hp.keys = &gw->keys;
	hp.tls_cert = gw->tls_cert;
	hp.tls_key = gw->tls_key;
	gw->http_fd = -1;
	gw->http = http_start(&hp, gw->ig, err, sizeof(err));
	/* http keeps its own copies; ours go now, the key wiped. */
	main_free_tls(gw);
	if (gw->http == NULL) {
		log_error("%s", err);
		return -1;
	}
	if (gw->metrics_fd != -1) {
		memset(&ms, 0, sizeof(ms));
		ms.ingest = gw->ig;
		ms.http = gw->http;
		ms.output = gw->oops;
		ms.output_ctx = gw->octx;
		ms.kits = gw->kits;
		ms.templates = gw->templates;
		ms.srcmap = gw->srcmap;
		ms.start_time = util_real_us() / 1000000;
		gw->metrics = metrics_start(gw->metrics_fd,
		    gw->cfg.path_prefix, &ms, err, sizeof(err));
		gw->metrics_fd = -1;
		if (gw->metrics == NULL) {
			log_error("%s", err);
			return -1;
		}
	}
	log_info("listening on %s://%s%s/v1/batch; metrics %s%s%s; "
	    "%zu collector(s); %zu client key(s); state in %s",
	    config_tls(&gw->cfg) ? "https" : "http", gw->http_bound,
	    gw->cfg.path_prefix,
	    gw->metrics != NULL ? "on http://" : "off",
	    gw->metrics != NULL ? gw->metrics_bound : "",
	    gw->metrics != NULL ? "/metrics" : "", gw->ncollectors,
	    keys_count(gw->keys.cur), gw->cfg.state_dir);
	return 0;
}

/*
 * How long a stop waits for requests in progress: a stalled body is cut
 * by connection_timeout anyway, and a stop must not take minutes.
 */
static int64_t
main_drain_s(const struct gateway_config *cfg)
{
	uint64_t	 s = cfg->connection_timeout + DRAIN_EXTRA_S;

	return s > DRAIN_MAX_S ? DRAIN_MAX_S : (int64_t)s;
}

/* Stops in the order that lets requests in flight finish. */
static void
main_stop(struct gateway *gw)
{
	if (gw->http != NULL) {
		http_quiesce(gw->http);
		if (http_drain(gw->http, main_drain_s(&gw->cfg) * 1000) == -1)
			log_warn("stop: requests still in progress after %"
			    PRId64 " s; closing them", main_drain_s(&gw->cfg));
	}
	metrics_stop(gw->metrics);
	/* Quiesced and drained: the counters are final. */
	if (gw->ig != NULL)
		main_stats(gw, "final");
	http_stop(gw->http);
	gw->http = NULL;
	ingest_free(gw->ig);
	kits_free(gw->kits);
	/* After the requests: saves the templates they taught. */
	template_close(gw->templates);
	if (gw->oops != NULL)
		gw->oops->close(gw->octx);
	srcmap_close(gw->srcmap);
	if (gw->sops != NULL)
		gw->sops->close(gw->sctx);
	if (gw->http_fd != -1)
		close(gw->http_fd);
	if (gw->metrics_fd != -1)
		close(gw->metrics_fd);
	if (gw->keys_ready)
		keys_store_destroy(&gw->keys);
	free(gw->collectors);
	main_free_tls(gw);
}

/* Waits for signals; the timeout drives the periodic stats line. */
static void
main_loop(struct gateway *gw, const sigset_t *set)
{
	struct timespec	 ts = { 1, 0 };
	int64_t		 next = 0, now, step;
	int		 sig;

	step = (int64_t)gw->cfg.stats_interval * 1000000000;
	if (step > 0)
		next = util_mono_ns() + step;
	for (;;) {
		sig = sigtimedwait(set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("signal %s: stopping", sig == SIGTERM ?
			    "TERM" : "INT");
			return;
		}
		if (sig == SIGHUP)
			main_reload(gw);
		else if (sig == SIGUSR1)
			main_stats(gw, "SIGUSR1");
		now = util_mono_ns();
		if (step > 0 && now >= next) {
			main_stats(gw, "periodic");
			next = now + step;
		}
	}
}

int
main(int argc, char **argv)
{
	struct gateway		 gw;
	struct conf_cli		 cli;
	struct main_opts	 opts = { NULL };
	struct keys		*k = NULL;
	sigset_t		 set;
	char			 err[CONF_ERR_MAX];
	int			 rv = EXIT_RUNTIME;

	memset(&gw, 0, sizeof(gw));
	gw.argc = argc;
	gw.argv = argv;
	gw.http_fd = gw.metrics_fd = -1;

	if (main_parse(&gw.cfg, &cli, &opts, argc, argv, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, PROGNAME ": %s\n", err);
		rv = EXIT_CONFIG;
		goto out;
	}
	if (cli.help) {
		usage(stdout);
		rv = 0;
		goto out;
	}
	if (cli.version) {
		printf(PROGNAME " " FLOWPOST_VERSION "\n");
		rv = 0;
		goto out;
	}
	if (opts.genkey != NULL) {
		rv = main_genkey(opts.genkey);
		goto out;
	}
	if (config_validate(&gw.cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, PROGNAME ": %s\n", err);
		rv = EXIT_CONFIG;
		goto out;
	}
	log_init(PROGNAME, main_log_level(&gw.cfg, cli.verbose),
	    cli.check_config ? 0 : gw.cfg.syslog);
	if (wire_init() == -1) {
		log_error("libsodium failed to start");
		goto out;
	}
	if (keys_load(gw.cfg.keys_file, &k, err, sizeof(err)) == -1) {
		fprintf(stderr, PROGNAME ": keys_file: %s\n", err);
		rv = EXIT_CONFIG;
		goto out;
	}
	if (keys_store_init(&gw.keys, k) == -1) {
		keys_unref(k);
		log_error("keys: cannot create a lock");
		goto out;
	}
	gw.keys_ready = 1;
	if (config_collectors(&gw.cfg, &gw.collectors, &gw.ncollectors, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, PROGNAME ": %s\n", err);
		rv = EXIT_CONFIG;
		goto out;
	}
	if (config_tls(&gw.cfg)) {
		if (!http_tls_supported()) {
			fprintf(stderr, PROGNAME ": tls_cert and tls_key are "
			    "set, but this libmicrohttpd was built without TLS "
			    "support; terminate TLS in a reverse proxy "
			    "instead\n");
			rv = EXIT_CONFIG;
			goto out;
		}
		if (config_tls_load(&gw.cfg, &gw.tls_cert, &gw.tls_key, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, PROGNAME ": %s\n", err);
			rv = EXIT_CONFIG;
			goto out;
		}
	}
	if (keys_count(gw.keys.cur) == 0)
		log_warn("keys: %s has no clients; every batch will get 403",
		    gw.cfg.keys_file);
	if (cli.check_config) {
		if (cli.verbose > 0)
			conf_dump(config_keys, &gw.cfg, stdout);
		printf("configuration ok (%zu client keys, %zu collectors)\n",
		    keys_count(gw.keys.cur), gw.ncollectors);
		rv = 0;
		goto out;
	}

	/* Every thread started from here on inherits the blocked set. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		log_error("cannot block signals");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);

	if (main_start(&gw) == -1)
		goto out;
	main_loop(&gw, &set);
	rv = 0;
out:
	main_stop(&gw);
	conf_free(config_keys, &gw.cfg);
	return rv;
}
