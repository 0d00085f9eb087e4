/*
 * fuzz_conf.c: libFuzzer target for the INI loader (common/conf.c).
 *
 * The input is a configuration file.  It lives in a memfd, opened by
 * conf_load_file() through /proc/self/fd/N, so nothing touches the disk.
 * The key table has every conf_type, with and without ranges and defaults.
 * A file that loads must give values inside the table's bounds, and
 * conf_dump() of it must load back to the same values; a file that does
 * not load must give an error that names the file.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzzlib.h"

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_cfg {
	char		*name;
	char		*path;
	uint64_t	 count;
	uint64_t	 port;
	uint64_t	 max_bytes;
	uint64_t	 spool;
	uint64_t	 max_age;
	uint64_t	 interval;
	int		 debug;
	int		 syslog;
	int		 level;
	int		 mode;
};

static const char *const fz_levels[] = { "error", "warn", "info", "debug",
    NULL };
static const char *const fz_modes[] = { "oldest", "newest", NULL };

#define K(n, t, f, lo, hi, d, c) \
	{ n, t, offsetof(struct fz_cfg, f), lo, hi, d, c, "fuzz key " n }
static const struct conf_key fz_table[] = {
	K("name", CONF_STRING, name, 0, 0, "flowpost", NULL),
	K("path", CONF_STRING, path, 0, 0, NULL, NULL),
	K("count", CONF_UINT, count, 0, 0, "5", NULL),
	K("port", CONF_UINT, port, 1, 65535, "2055", NULL),
	K("max_bytes", CONF_SIZE, max_bytes, 1024, UINT64_C(1) << 40, "1M",
	    NULL),
	K("spool", CONF_SIZE, spool, 0, 0, NULL, NULL),
	K("max-age", CONF_DURATION, max_age, 1, 30 * 86400, "1h", NULL),
	K("interval", CONF_DURATION, interval, 0, 0, "0", NULL),
	K("debug", CONF_BOOL, debug, 0, 0, "no", NULL),
	K("syslog", CONF_BOOL, syslog, 0, 0, NULL, NULL),
	K("level", CONF_ENUM, level, 0, 0, "info", fz_levels),
	K("mode", CONF_ENUM, mode, 0, 0, NULL, fz_modes),
	{ NULL, CONF_STRING, 0, 0, 0, NULL, NULL, NULL },
};
#undef K

/* Two memfds: the input file, and the dump read back. */
static int	 fd_in = -1, fd_dump = -1;
static char	 path_in[64], path_dump[64];

static int
memfd_path(const char *name, int *fd, char *path, size_t len)
{
	if ((*fd = memfd_create(name, MFD_CLOEXEC)) == -1)
		return -1;
	if (snprintf(path, len, "/proc/self/fd/%d", *fd) >= (int)len)
		return -1;
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (memfd_path("fuzz-conf", &fd_in, path_in, sizeof(path_in)) == -1 ||
	    memfd_path("fuzz-conf-dump", &fd_dump, path_dump,
	    sizeof(path_dump)) == -1) {
		fprintf(stderr, "fuzz_conf: memfd: %s\n", strerror(errno));
		abort();
	}
	return 0;
}

/* Replaces the memfd's content with data. */
static void
memfd_fill(int fd, const void *data, size_t size)
{
	const uint8_t	*p = data;
	size_t		 off = 0;
	ssize_t		 n;

	if (ftruncate(fd, 0) == -1)
		abort();
	while (off < size) {
		if ((n = pwrite(fd, p + off, size - off, (off_t)off)) <= 0)
			abort();
		off += (size_t)n;
	}
}

/* Every value where the table's types and bounds say it must be. */
static void
check_bounds(const struct fz_cfg *c)
{
	FUZZ_CHECK(c->name != NULL && strchr(c->name, '\n') == NULL);
	FUZZ_CHECK(c->path == NULL || strchr(c->path, '\n') == NULL);
	FUZZ_CHECK(c->port >= 1 && c->port <= 65535);
	FUZZ_CHECK(c->max_bytes >= 1024 && c->max_bytes <= UINT64_C(1) << 40);
	FUZZ_CHECK(c->max_age >= 1 && c->max_age <= 30 * 86400);
	FUZZ_CHECK(c->debug == 0 || c->debug == 1);
	FUZZ_CHECK(c->syslog == 0 || c->syslog == 1);
	FUZZ_CHECK(c->level >= 0 && c->level < 4);
	FUZZ_CHECK(c->mode >= 0 && c->mode < 2);
}

static int
str_eq(const char *a, const char *b)
{
	/* conf_dump() writes an unset string as "", which reads back as "". */
	if (a == NULL)
		a = "";
	if (b == NULL)
		b = "";
	return strcmp(a, b) == 0;
}

/*
 * The INI syntax has no escapes: a value that must be quoted (it has ';' or
 * '#', or blanks at an end) cannot hold a '"' as well, and conf_dump()
 * writes such a value as text that does not load.  A known limit of the
 * format, left out of the round trip.
 */
static int
dumpable(const char *s)
{
	size_t	 n;

	if (s == NULL || strchr(s, '"') == NULL)
		return 1;
	n = strlen(s);
	return !(s[0] == ' ' || s[0] == '\t' || s[0] == '"' ||
	    s[n - 1] == ' ' || s[n - 1] == '\t' || strpbrk(s, ";#") != NULL);
}

/* conf_dump() of a loaded config loads back to the same values. */
static void
check_dump_reloads(const struct fz_cfg *c)
{
	struct fz_cfg	 back;
	char		 err[CONF_ERR_MAX];
	FILE		*f;
	int		 dfd;

	if (!dumpable(c->name) || !dumpable(c->path))
		return;
	/* The dup shares fd_dump's offset: rewind it as well. */
	if ((dfd = dup(fd_dump)) == -1 || ftruncate(dfd, 0) == -1 ||
	    lseek(dfd, 0, SEEK_SET) == -1 || (f = fdopen(dfd, "w")) == NULL)
		abort();
	conf_dump(fz_table, c, f);
	if (fclose(f) != 0)
		abort();

	memset(&back, 0, sizeof(back));
	err[0] = '\0';
	FUZZ_CHECK(conf_defaults(fz_table, &back, err, sizeof(err)) == 0);
	if (conf_load_file(fz_table, &back, path_dump, "client", "gateway",
	    err, sizeof(err)) == -1)
		fprintf(stderr, "dump does not load: %s\n", err);
	else {
		FUZZ_CHECK(str_eq(c->name, back.name));
		FUZZ_CHECK(str_eq(c->path, back.path));
		FUZZ_CHECK(c->count == back.count && c->port == back.port);
		FUZZ_CHECK(c->max_bytes == back.max_bytes);
		FUZZ_CHECK(c->spool == back.spool);
		FUZZ_CHECK(c->max_age == back.max_age);
		FUZZ_CHECK(c->interval == back.interval);
		FUZZ_CHECK(c->debug == back.debug &&
		    c->syslog == back.syslog);
		FUZZ_CHECK(c->level == back.level && c->mode == back.mode);
		conf_free(fz_table, &back);
		return;
	}
	conf_free(fz_table, &back);
	FUZZ_CHECK(!"conf_dump() output does not load back");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_cfg	 cfg;
	char		 err[CONF_ERR_MAX];

	memfd_fill(fd_in, data, size);
	memset(&cfg, 0, sizeof(cfg));
	err[0] = '\0';
	FUZZ_CHECK(conf_defaults(fz_table, &cfg, err, sizeof(err)) == 0);

	if (conf_load_file(fz_table, &cfg, path_in, "client", "gateway", err,
	    sizeof(err)) == 0) {
		check_bounds(&cfg);
		check_dump_reloads(&cfg);
	} else {
		/* "Errors name file, line and key": at least the file. */
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(strncmp(err, path_in, strlen(path_in)) == 0);
	}
	conf_free(fz_table, &cfg);
	FUZZ_CHECK(cfg.name == NULL && cfg.path == NULL);
	return 0;
}
