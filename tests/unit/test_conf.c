/*
 * test_conf.c: the configuration table, INI files and the command line.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "conf.h"

struct tcfg {
	char		*name;
	char		*listen;
	char		*proxy;
	uint64_t	 count;
	uint64_t	 bytes;
	uint64_t	 age;
	uint64_t	 port;
	int		 verify;
	int		 mode;
};

static const char *const modes[] = { "fast", "safe", "paranoid", NULL };

static const struct conf_key table[] = {
	{ "name", CONF_STRING, offsetof(struct tcfg, name), 0, 0,
	    "client-1", NULL, "client identifier" },
	{ "listen", CONF_STRING, offsetof(struct tcfg, listen), 0, 0,
	    "0.0.0.0:2055", NULL, "UDP addresses to receive on" },
	{ "proxy", CONF_STRING, offsetof(struct tcfg, proxy), 0, 0,
	    NULL, NULL, "HTTP proxy URL" },
	{ "batch_max_count", CONF_UINT, offsetof(struct tcfg, count), 1,
	    100000, "1000", NULL, "records per batch" },
	{ "batch_max_bytes", CONF_SIZE, offsetof(struct tcfg, bytes), 1024,
	    UINT64_C(64) << 20, "1M", NULL, "bytes per batch" },
	{ "batch_max_age", CONF_DURATION, offsetof(struct tcfg, age), 0, 0,
	    "5s", NULL, "seconds before a batch closes" },
	{ "port", CONF_UINT, offsetof(struct tcfg, port), 0, 0, NULL, NULL,
	    "any number" },
	{ "tls_verify", CONF_BOOL, offsetof(struct tcfg, verify), 0, 0,
	    "yes", NULL, "verify the server certificate" },
	{ "mode", CONF_ENUM, offsetof(struct tcfg, mode), 0, 0, "safe",
	    modes, "how careful to be" },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

/* NULL-safe string comparison, so a failed check cannot crash the test. */
static int
str_is(const char *got, const char *want)
{
	return got != NULL && strcmp(got, want) == 0;
}

/* Writes text to a new file under /tmp; path must hold 32 bytes. */
static void
write_conf(char *path, const char *text)
{
	size_t	len = strlen(text);
	int	fd;

	snprintf(path, 32, "/tmp/fp-conf-XXXXXX");
	if ((fd = mkstemp(path)) == -1) {
		CHECK(!"mkstemp");
		path[0] = '\0';
		return;
	}
	CHECK(write(fd, text, len) == (ssize_t)len);
	close(fd);
}

/* Loads text as a client config on top of the defaults. */
static int
load_text(struct tcfg *c, const char *text, char *path, char *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	CHECK(conf_defaults(table, c, err, CONF_ERR_MAX) == 0);
	write_conf(path, text);
	rc = conf_load_file(table, c, path, "client", "gateway", err,
	    CONF_ERR_MAX);
	unlink(path);
	return rc;
}

/* Checks that err is exactly "<path>:<rest>". */
static int
err_is(const char *err, const char *path, const char *rest)
{
	char want[CONF_ERR_MAX];

	snprintf(want, sizeof(want), "%s:%s", path, rest);
	if (strcmp(err, want) != 0) {
		fprintf(stderr, "  got:  %s\n  want: %s\n", err, want);
		return 0;
	}
	return 1;
}

static void
test_defaults(void)
{
	struct tcfg	c;
	char		err[CONF_ERR_MAX];

	memset(&c, 0, sizeof(c));
	CHECK(conf_defaults(table, &c, err, sizeof(err)) == 0);
	CHECK(c.name != NULL && strcmp(c.name, "client-1") == 0);
	CHECK(c.listen != NULL && strcmp(c.listen, "0.0.0.0:2055") == 0);
	CHECK(c.proxy == NULL);
	CHECK_EQ_U64(c.count, 1000);
	CHECK_EQ_U64(c.bytes, 1 << 20);
	CHECK_EQ_U64(c.age, 5);
	CHECK_EQ_U64(c.port, 0);
	CHECK(c.verify == 1);
	CHECK(c.mode == 1);
	/* Applying them again replaces, and does not leak, the strings. */
	CHECK(conf_defaults(table, &c, err, sizeof(err)) == 0);
	conf_free(table, &c);
	CHECK(c.name == NULL && c.listen == NULL && c.proxy == NULL);
	conf_free(table, &c);

	CHECK(conf_find(table, "batch_max_age") == &table[5]);
	CHECK(conf_find(table, "batch-max-age") == &table[5]);
	CHECK(conf_find(table, "batch_max") == NULL);
	CHECK(conf_find(table, "") == NULL);
}

static void
test_set(void)
{
	struct tcfg	c;
	char		err[CONF_ERR_MAX];

	memset(&c, 0, sizeof(c));
	CHECK(conf_defaults(table, &c, err, sizeof(err)) == 0);

	CHECK(conf_set(table, &c, "name", "kit-7", "x", err,
	    sizeof(err)) == 0);
	CHECK(str_is(c.name, "kit-7"));
	CHECK(conf_set(table, &c, "name", "", "x", err, sizeof(err)) == 0);
	CHECK(str_is(c.name, ""));
	CHECK(conf_set(table, &c, "batch-max-count", "7", "x", err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(c.count, 7);
	CHECK(conf_set(table, &c, "batch_max_bytes", "64K", "x", err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(c.bytes, 65536);
	CHECK(conf_set(table, &c, "batch_max_bytes", "64M", "x", err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(c.bytes, UINT64_C(64) << 20);
	CHECK(conf_set(table, &c, "batch_max_age", "2h", "x", err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(c.age, 7200);
	CHECK(conf_set(table, &c, "port", "18446744073709551615", "x", err,
	    sizeof(err)) == 0);
	CHECK_EQ_U64(c.port, UINT64_MAX);
	CHECK(conf_set(table, &c, "tls_verify", "off", "x", err,
	    sizeof(err)) == 0);
	CHECK(c.verify == 0);
	CHECK(conf_set(table, &c, "mode", "PARANOID", "x", err,
	    sizeof(err)) == 0);
	CHECK(c.mode == 2);

	/* Errors name the place, the key and the value; cfg is untouched. */
	CHECK(conf_set(table, &c, "batch_max_bytes", "10", "f.conf:3", err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "f.conf:3: batch_max_bytes: 10 is below the "
	    "minimum 1024") == 0);
	CHECK(conf_set(table, &c, "batch_max_bytes", "65M", "f.conf:3", err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "f.conf:3: batch_max_bytes: 68157440 is above the "
	    "maximum 67108864") == 0);
	CHECK(conf_set(table, &c, "batch_max_count", "0", NULL, err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "batch_max_count: 0 is below the minimum 1") == 0);
	CHECK_EQ_U64(c.count, 7);
	CHECK(conf_set(table, &c, "batch_max_age", "five", "client.conf:7",
	    err, sizeof(err)) == -1);
	CHECK(strcmp(err, "client.conf:7: batch_max_age: invalid duration "
	    "'five'") == 0);
	CHECK_EQ_U64(c.age, 7200);
	CHECK(conf_set(table, &c, "batch_max_count", "-1", "w", err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "w: batch_max_count: invalid number '-1'") == 0);
	CHECK(conf_set(table, &c, "batch_max_bytes", "1T", "w", err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "w: batch_max_bytes: invalid size '1T'") == 0);
	CHECK(conf_set(table, &c, "tls_verify", "maybe", "w", err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "w: tls_verify: invalid boolean 'maybe'") == err);
	CHECK(c.verify == 0);
	CHECK(conf_set(table, &c, "mode", "slow", "w", err,
	    sizeof(err)) == -1);
	CHECK(strcmp(err, "w: mode: invalid value 'slow' (one of: fast, "
	    "safe, paranoid)") == 0);
	CHECK(c.mode == 2);
	CHECK(conf_set(table, &c, "batch_max_byte", "1", "client.conf:12",
	    err, sizeof(err)) == -1);
	CHECK(strcmp(err, "client.conf:12: unknown key 'batch_max_byte'") ==
	    0);
	conf_free(table, &c);
}

static void
test_file_values(void)
{
	static const char text[] =
	    "; comment with ;\n"
	    "# comment with #\n"
	    "name = top\n"
	    "\n"
	    "[client]\n"
	    "batch_max_count = 50 ; inline comment\n"
	    "batch_max_bytes=2M #comment\n"
	    "  batch_max_age = 2m   \n"
	    "tls_verify = no # inline comment\n"
	    "mode = FAST\n"
	    "proxy = \"http://u:p;w#d@127.0.0.1:3128\"  ; quoted\n"
	    "listen = \" 127.0.0.1:1 \"\n"
	    "port = 10\r\n"
	    "[gateway]\n"
	    "unknown_here = is fine, the section is skipped\n"
	    "batch_max_count = 99999\n"
	    "not even = a valid ( value\n"
	    "[ client ]\n"
	    "name = last\n"
	    "batch-max-count = 60\n"
	    "port = 11\n";
	struct tcfg	c;
	char		err[CONF_ERR_MAX], path[32];

	CHECK(load_text(&c, text, path, err) == 0);
	if (c.name == NULL || strcmp(c.name, "last") != 0)
		fprintf(stderr, "  %s\n", err);
	/* Last one wins for a repeated key, even across sections. */
	CHECK(c.name != NULL && strcmp(c.name, "last") == 0);
	CHECK_EQ_U64(c.count, 60);
	CHECK_EQ_U64(c.port, 11);
	CHECK_EQ_U64(c.bytes, 2 << 20);
	CHECK_EQ_U64(c.age, 120);
	CHECK(c.verify == 0);
	CHECK(c.mode == 0);
	CHECK(c.proxy != NULL &&
	    strcmp(c.proxy, "http://u:p;w#d@127.0.0.1:3128") == 0);
	CHECK(c.listen != NULL && strcmp(c.listen, " 127.0.0.1:1 ") == 0);

	/* The dump reads back to the same values. */
	{
		char	*dump = NULL, path2[32];
		size_t	 dlen = 0;
		FILE	*f = open_memstream(&dump, &dlen);
		struct tcfg c2;

		CHECK(f != NULL);
		if (f != NULL) {
			conf_dump(table, &c, f);
			fclose(f);
			CHECK(strstr(dump, "batch_max_bytes = 2097152\n") !=
			    NULL);
			CHECK(strstr(dump, "batch_max_age = 120\n") != NULL);
			CHECK(strstr(dump, "tls_verify = no\n") != NULL);
			CHECK(strstr(dump, "mode = fast\n") != NULL);
			CHECK(strstr(dump, "name = last\n") != NULL);
			CHECK(load_text(&c2, dump, path2, err) == 0);
			CHECK(c2.proxy != NULL && c.proxy != NULL &&
			    strcmp(c2.proxy, c.proxy) == 0);
			CHECK(c2.listen != NULL && c.listen != NULL &&
			    strcmp(c2.listen, c.listen) == 0);
			CHECK_EQ_U64(c2.bytes, c.bytes);
			CHECK(c2.mode == c.mode);
			conf_free(table, &c2);
		}
		free(dump);
	}
	conf_free(table, &c);

	/* A byte order mark and a section on line 1. */
	CHECK(load_text(&c, "\xEF\xBB\xBF[client]\nport = 3\n", path,
	    err) == 0);
	CHECK_EQ_U64(c.port, 3);
	conf_free(table, &c);

	/* An empty file changes nothing. */
	CHECK(load_text(&c, "", path, err) == 0);
	CHECK_EQ_U64(c.count, 1000);
	conf_free(table, &c);
}

static void
test_file_errors(void)
{
	struct tcfg	c;
	char		err[CONF_ERR_MAX], path[32], text[6000];

	CHECK(load_text(&c, "port = 1\n\n[foo]\nport = 2\n", path,
	    err) == -1);
	CHECK(err_is(err, path, "3: unknown section [foo]"));
	conf_free(table, &c);

	/* Even a section without keys is caught. */
	CHECK(load_text(&c, "port = 1\n[client]\n[foo]\n", path, err) == -1);
	CHECK(err_is(err, path, "3: unknown section [foo]"));
	conf_free(table, &c);

	CHECK(load_text(&c, "[client]\nport = 1\n; x\n\n"
	    "batch_max_byte = 4K\n", path, err) == -1);
	CHECK(err_is(err, path, "5: unknown key 'batch_max_byte'"));
	conf_free(table, &c);

	CHECK(load_text(&c, "# x\n[client]\n\n\n\n\nbatch_max_age = five\n",
	    path, err) == -1);
	CHECK(err_is(err, path, "7: batch_max_age: invalid duration 'five'"));
	conf_free(table, &c);

	CHECK(load_text(&c, "batch_max_bytes = 10\n", path, err) == -1);
	CHECK(err_is(err, path,
	    "1: batch_max_bytes: 10 is below the minimum 1024"));
	conf_free(table, &c);

	CHECK(load_text(&c, "port = 1\nthis line has no equals sign\n", path,
	    err) == -1);
	CHECK(err_is(err, path, "2: syntax error"));
	conf_free(table, &c);

	CHECK(load_text(&c, "[client\nport = 1\n", path, err) == -1);
	CHECK(err_is(err, path, "1: syntax error"));
	conf_free(table, &c);

	/* The first error is the one reported, whichever kind it is. */
	CHECK(load_text(&c, "port = x\nno equals\n", path, err) == -1);
	CHECK(err_is(err, path, "1: port: invalid number 'x'"));
	conf_free(table, &c);
	CHECK(load_text(&c, "no equals\nport = x\n", path, err) == -1);
	CHECK(err_is(err, path, "1: syntax error"));
	conf_free(table, &c);
	CHECK(load_text(&c, "no equals\n[foo]\n", path, err) == -1);
	CHECK(err_is(err, path, "1: syntax error"));
	conf_free(table, &c);

	CHECK(load_text(&c, "proxy = \"abc\n", path, err) == -1);
	CHECK(err_is(err, path, "1: proxy: missing closing quote"));
	conf_free(table, &c);
	CHECK(load_text(&c, "proxy = \"abc\" def\n", path, err) == -1);
	CHECK(err_is(err, path, "1: proxy: text after the closing quote"));
	conf_free(table, &c);

	/* '#' or ';' without a blank before it is part of the value. */
	CHECK(load_text(&c, "batch_max_bytes = 2M# x\n", path, err) == -1);
	CHECK(err_is(err, path, "1: batch_max_bytes: invalid size '2M# x'"));
	conf_free(table, &c);
	CHECK(load_text(&c, "proxy = a#b;c ;d\n", path, err) == 0);
	CHECK(c.proxy != NULL && strcmp(c.proxy, "a#b;c") == 0);
	conf_free(table, &c);
	/* Inside quotes, " ;" and " #" are text. */
	CHECK(load_text(&c, "proxy = \"x ; y # z\" ; real comment\n", path,
	    err) == 0);
	CHECK(c.proxy != NULL && strcmp(c.proxy, "x ; y # z") == 0);
	conf_free(table, &c);

	/* Lines well over libinih's default 200 characters are fine. */
	memset(text, 'b', sizeof(text));
	memcpy(text, "name = ", 7);
	memcpy(text + 3000, "\nport = 5\n", 11);
	CHECK(load_text(&c, text, path, err) == 0);
	CHECK(c.name != NULL && strlen(c.name) == 3000 - 7);
	CHECK_EQ_U64(c.port, 5);
	conf_free(table, &c);

	/* Indented lines are keys of their own, not continuations. */
	CHECK(load_text(&c, "port = 1\n  name = indented\n", path, err) == 0);
	CHECK(c.name != NULL && strcmp(c.name, "indented") == 0);
	CHECK_EQ_U64(c.port, 1);
	conf_free(table, &c);

	/* A line over the limit is refused, not split in two. */
	memset(text, 'a', sizeof(text));
	memcpy(text, "name = ", 7);
	memcpy(text + sizeof(text) - 12, "\nport = 1\n", 11);
	CHECK(load_text(&c, text, path, err) == -1);
	CHECK(strstr(err, ":1: line too long") != NULL);
	conf_free(table, &c);

	/* Without a section name, [client] is unknown too. */
	memset(&c, 0, sizeof(c));
	write_conf(path, "port = 1\n[client]\nport = 2\n");
	CHECK(conf_load_file(table, &c, path, NULL, NULL, err,
	    sizeof(err)) == -1);
	CHECK(err_is(err, path, "2: unknown section [client]"));
	CHECK_EQ_U64(c.port, 1);
	unlink(path);

	CHECK(conf_load_file(table, &c, "/nonexistent/client.conf", "client",
	    "gateway", err, sizeof(err)) == -1);
	CHECK(strcmp(err, "cannot open /nonexistent/client.conf: No such "
	    "file or directory") == 0);
	CHECK(conf_load_file(table, &c, "/tmp", "client", "gateway", err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "/tmp") != NULL);
	conf_free(table, &c);
}

struct extra_seen {
	int		 foreground;
	const char	*pidfile;
};

/* Knows -f (one item) and --pidfile FILE (two); -x has a bad value. */
static int
extra_opt(int argc, char **argv, int i, void *arg, char *err,
    size_t errlen)
{
	struct extra_seen *x = arg;

	if (strcmp(argv[i], "-f") == 0) {
		x->foreground = 1;
		return 1;
	}
	if (strcmp(argv[i], "--pidfile") == 0) {
		if (i + 1 < argc)
			x->pidfile = argv[i + 1];
		return 2;
	}
	if (strcmp(argv[i], "-x") == 0) {
		snprintf(err, errlen, "-x: not today");
		return -1;
	}
	return 0;
}

static void
cli_init(struct conf_cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	cli->progname = "flowpost-test";
	cli->section = "client";
	cli->other = "gateway";
}

static int
cli_run(struct tcfg *c, struct conf_cli *cli, int argc, char **argv,
    char *err)
{
	memset(c, 0, sizeof(*c));
	return conf_cli_parse(table, c, cli, argc, argv, err, CONF_ERR_MAX);
}

static void
test_cli_file_and_options(void)
{
	struct tcfg	c;
	struct conf_cli	cli;
	char		err[CONF_ERR_MAX], path[32];

	write_conf(path, "[client]\nbatch_max_count = 50\nmode = paranoid\n"
	    "name = from-file\nport = 9\n");

	/* Options win over the file, even those given before -c. */
	{
		char *argv[] = { "prog", "--batch-max-count", "7", "-c", path,
		    "--mode=fast", "word1", "-v", "-vv", "--check-config",
		    "--batch_max_bytes=4K", "--tls-verify", "off", "word2",
		    NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 14, argv, err) == 0);
		CHECK_EQ_U64(c.count, 7);
		CHECK(c.mode == 0);
		CHECK_EQ_U64(c.bytes, 4096);
		CHECK(c.verify == 0);
		CHECK_EQ_U64(c.port, 9);		/* file */
		CHECK(str_is(c.name, "from-file"));
		CHECK_EQ_U64(c.age, 5);			/* default */
		CHECK(str_is(c.listen, "0.0.0.0:2055"));
		CHECK(cli.config_path != NULL &&
		    strcmp(cli.config_path, path) == 0);
		CHECK(cli.check_config == 1);
		CHECK(cli.verbose == 3);
		CHECK(cli.help == 0 && cli.version == 0);
		CHECK(cli.nwords == 2);
		CHECK(str_is(cli.words[0], "word1"));
		CHECK(str_is(cli.words[1], "word2"));
		conf_free(table, &c);
	}
	/* --config=FILE and --config FILE; a repeated option: last wins. */
	{
		char *argv1[] = { "prog", "--port", "1", "--port=2", NULL };
		char arg[64];
		char *argv2[] = { "prog", arg, NULL };
		char *argv3[] = { "prog", "--config", path, NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 4, argv1, err) == 0);
		CHECK_EQ_U64(c.port, 2);
		CHECK(cli.config_path == NULL);
		CHECK_EQ_U64(c.count, 1000);
		conf_free(table, &c);

		snprintf(arg, sizeof(arg), "--config=%s", path);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv2, err) == 0);
		CHECK_EQ_U64(c.count, 50);
		conf_free(table, &c);

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 3, argv3, err) == 0);
		CHECK_EQ_U64(c.count, 50);
		conf_free(table, &c);
	}
	/* A bad value on the command line names the option. */
	{
		char *argv[] = { "prog", "-c", path, "--batch-max-bytes", "10",
		    NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 5, argv, err) == -1);
		CHECK(strcmp(err, "--batch-max-bytes: batch_max_bytes: 10 is "
		    "below the minimum 1024") == 0);
		conf_free(table, &c);
	}
	/* Errors in the file come through. */
	{
		char bad[32];
		char *argv[] = { "prog", "-c", bad, NULL };

		write_conf(bad, "port = 1\nbogus = 2\n");
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 3, argv, err) == -1);
		CHECK(err_is(err, bad, "2: unknown key 'bogus'"));
		conf_free(table, &c);
		unlink(bad);
	}
	unlink(path);
}

static void
test_cli_flags_and_errors(void)
{
	struct tcfg	c;
	struct conf_cli	cli;
	char		err[CONF_ERR_MAX];

	/* --help and --version do not need the config file to exist. */
	{
		char *argv[] = { "prog", "-c", "/nonexistent.conf", "--help",
		    NULL };
		char *argv2[] = { "prog", "-V", "-c", "/nonexistent.conf",
		    NULL };
		char *argv3[] = { "prog", "-h", NULL };
		char *argv4[] = { "prog", "--version", NULL };
		char *argv5[] = { "prog", "--bogus", "--help", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 4, argv, err) == 0);
		CHECK(cli.help == 1 && cli.version == 0);
		conf_free(table, &c);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 4, argv2, err) == 0);
		CHECK(cli.version == 1 && cli.help == 0);
		conf_free(table, &c);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv3, err) == 0);
		CHECK(cli.help == 1);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv4, err) == 0);
		CHECK(cli.version == 1);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 3, argv5, err) == 0);
		CHECK(cli.help == 1);
		conf_free(table, &c);
	}
	/* Without --help, the missing file is an error. */
	{
		char *argv[] = { "prog", "-c", "/nonexistent.conf", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 3, argv, err) == -1);
		CHECK(strcmp(err, "cannot open /nonexistent.conf: No such "
		    "file or directory") == 0);
		conf_free(table, &c);
	}
	/* Missing values. */
	{
		char *argv1[] = { "prog", "--listen", NULL };
		char *argv2[] = { "prog", "-c", NULL };
		char *argv3[] = { "prog", "--config=", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv1, err) == -1);
		CHECK(strcmp(err, "option '--listen' needs a value") == 0);
		conf_free(table, &c);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv2, err) == -1);
		CHECK(strcmp(err, "option '-c' needs a value") == 0);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv3, err) == -1);
		CHECK(strcmp(err, "option '--config' needs a value") == 0);
	}
	/* An empty value is still a value. */
	{
		char *argv[] = { "prog", "--proxy=", "--name", "", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 4, argv, err) == 0);
		CHECK(c.proxy != NULL && c.proxy[0] == '\0');
		CHECK(c.name != NULL && c.name[0] == '\0');
		conf_free(table, &c);
	}
	/* Unknown options. */
	{
		char *argv1[] = { "prog", "--foo", NULL };
		char *argv2[] = { "prog", "--foo=1", NULL };
		char *argv3[] = { "prog", "-q", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv1, err) == -1);
		CHECK(strcmp(err, "unknown option '--foo' (see --help)") == 0);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv2, err) == -1);
		CHECK(strcmp(err, "unknown option '--foo' (see --help)") == 0);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 2, argv3, err) == -1);
		CHECK(strcmp(err, "unknown option '-q' (see --help)") == 0);
		conf_free(table, &c);
	}
	/* Words: at most eight; "--" ends the options. */
	{
		char *argv1[] = { "prog", "1", "2", "3", "4", "5", "6", "7",
		    "8", NULL };
		char *argv2[] = { "prog", "1", "2", "3", "4", "5", "6", "7",
		    "8", "9", NULL };
		char *argv3[] = { "prog", "--port", "4", "--", "-x",
		    "--port", NULL };

		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 9, argv1, err) == 0);
		CHECK(cli.nwords == 8);
		CHECK(str_is(cli.words[7], "8"));
		conf_free(table, &c);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 10, argv2, err) == -1);
		CHECK(strstr(err, "too many arguments") != NULL);
		conf_free(table, &c);
		cli_init(&cli);
		CHECK(cli_run(&c, &cli, 6, argv3, err) == 0);
		CHECK_EQ_U64(c.port, 4);
		CHECK(cli.nwords == 2);
		CHECK(str_is(cli.words[0], "-x"));
		CHECK(str_is(cli.words[1], "--port"));
		conf_free(table, &c);
	}
}

static void
test_cli_extra(void)
{
	struct tcfg		c;
	struct conf_cli		cli;
	struct extra_seen	x;
	char			err[CONF_ERR_MAX];

	{
		char *argv[] = { "prog", "-f", "--pidfile", "/run/x.pid",
		    "--port", "3", "w", NULL };

		memset(&x, 0, sizeof(x));
		cli_init(&cli);
		cli.extra = extra_opt;
		cli.extra_arg = &x;
		CHECK(cli_run(&c, &cli, 7, argv, err) == 0);
		CHECK(x.foreground == 1);
		CHECK(x.pidfile != NULL &&
		    strcmp(x.pidfile, "/run/x.pid") == 0);
		CHECK_EQ_U64(c.port, 3);
		/* The pid file path was consumed, not taken as a word. */
		CHECK(cli.nwords == 1);
		CHECK(str_is(cli.words[0], "w"));
		conf_free(table, &c);
	}
	/* The hook's own message is kept. */
	{
		char *argv[] = { "prog", "-x", NULL };

		cli_init(&cli);
		cli.extra = extra_opt;
		cli.extra_arg = &x;
		CHECK(cli_run(&c, &cli, 2, argv, err) == -1);
		CHECK(strcmp(err, "-x: not today") == 0);
	}
	/* The hook claiming an item that is not there. */
	{
		char *argv[] = { "prog", "--pidfile", NULL };

		cli_init(&cli);
		cli.extra = extra_opt;
		cli.extra_arg = &x;
		CHECK(cli_run(&c, &cli, 2, argv, err) == -1);
		CHECK(strcmp(err, "option '--pidfile' needs a value") == 0);
	}
	/* Options the hook does not know either. */
	{
		char *argv[] = { "prog", "-f", "--nope", NULL };

		cli_init(&cli);
		cli.extra = extra_opt;
		cli.extra_arg = &x;
		CHECK(cli_run(&c, &cli, 3, argv, err) == -1);
		CHECK(strcmp(err, "unknown option '--nope' (see --help)") ==
		    0);
	}
	/* Table keys come first: the hook never sees them. */
	{
		char *argv[] = { "prog", "--name", "-f", NULL };

		memset(&x, 0, sizeof(x));
		cli_init(&cli);
		cli.extra = extra_opt;
		cli.extra_arg = &x;
		CHECK(cli_run(&c, &cli, 3, argv, err) == 0);
		CHECK(str_is(c.name, "-f"));
		CHECK(x.foreground == 0);
		conf_free(table, &c);
	}
}

static void
test_help(void)
{
	char	*out = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&out, &len)) == NULL) {
		CHECK(!"open_memstream");
		return;
	}
	conf_print_help(table, f);
	fclose(f);
	CHECK(strstr(out, "\n  --batch_max_bytes VALUE ") != NULL);
	CHECK(strstr(out, "  --name VALUE") == out);
	CHECK(strstr(out, "bytes per batch (default: 1M)\n") != NULL);
	CHECK(strstr(out, "how careful to be (one of: fast, safe, paranoid) "
	    "(default: safe)\n") != NULL);
	CHECK(strstr(out, "HTTP proxy URL\n") != NULL);
	/* One line per key. */
	{
		int	 n = 0;
		char	*p;

		for (p = out; *p != '\0'; p++)
			n += *p == '\n';
		CHECK(n == (int)(sizeof(table) / sizeof(table[0])) - 1);
	}
	free(out);
}

TEST_MAIN(test_defaults, test_set, test_file_values, test_file_errors,
    test_cli_file_and_options, test_cli_flags_and_errors, test_cli_extra,
    test_help)
