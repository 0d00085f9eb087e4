/*
 * test_util.c: parsers, addresses, durable writes and file reads of util.c,
 * and the log lines of log.c (which has no test executable of its own).
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "util.h"

static void
test_parse_u64(void)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "1x", "x1", "1.0", "0x10", "1k",
		"18446744073709551616", "99999999999999999999",
		"184467440737095516150",
	};
	uint64_t	v;
	size_t		i;

	CHECK(util_parse_u64("0", &v) == 0);
	CHECK_EQ_U64(v, 0);
	CHECK(util_parse_u64("42", &v) == 0);
	CHECK_EQ_U64(v, 42);
	CHECK(util_parse_u64("007", &v) == 0);
	CHECK_EQ_U64(v, 7);
	CHECK(util_parse_u64("18446744073709551615", &v) == 0);
	CHECK_EQ_U64(v, UINT64_MAX);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		if (util_parse_u64(bad[i], &v) != -1)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		CHECK(util_parse_u64(bad[i], &v) == -1);
		CHECK_EQ_U64(v, 12345);		/* untouched on failure */
	}
	CHECK(util_parse_u64(NULL, &v) == -1);
	errno = 0;
	CHECK(util_parse_u64("18446744073709551616", &v) == -1);
	CHECK(errno == ERANGE);
}

static void
test_parse_duration(void)
{
	static const struct {
		const char	*s;
		uint64_t	 v;
	} good[] = {
		{ "0", 0 }, { "0s", 0 }, { "90", 90 }, { "5s", 5 },
		{ "5S", 5 }, { "2m", 120 }, { "2M", 120 }, { "1h", 3600 },
		{ "3H", 10800 }, { "1d", 86400 }, { "7D", 604800 },
		{ "18446744073709551615s", UINT64_MAX },
		{ "5124095576030431h", UINT64_C(5124095576030431) * 3600 },
		{ "213503982334601d", UINT64_C(213503982334601) * 86400 },
	};
	static const char *const bad[] = {
		"", "s", "h", "-5", "+5", " 5", "5 ", "5 s", "5x", "5ms",
		"5sec", "1h30m", "5ss", "1.5h", "99999999999999999999h",
		"99999999999999999999", "5124095576030432h",
		"213503982334602d", "307445734561825861m",
	};
	uint64_t	v;
	size_t		i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		CHECK(util_parse_duration(good[i].s, &v) == 0);
		CHECK_EQ_U64(v, good[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (util_parse_duration(bad[i], &v) != -1)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		CHECK(util_parse_duration(bad[i], &v) == -1);
	}
}

static void
test_parse_size(void)
{
	static const struct {
		const char	*s;
		uint64_t	 v;
	} good[] = {
		{ "0", 0 }, { "0k", 0 }, { "1024", 1024 }, { "1k", 1024 },
		{ "1K", 1024 }, { "64k", 65536 }, { "2m", 2097152 },
		{ "2M", 2097152 }, { "3g", UINT64_C(3) << 30 },
		{ "3G", UINT64_C(3) << 30 },
		{ "17179869183G", UINT64_C(17179869183) << 30 },
		{ "18014398509481983K", UINT64_C(18014398509481983) << 10 },
	};
	static const char *const bad[] = {
		"", "k", "K", "-1K", "+1K", "1 K", " 1K", "1K ", "1KB",
		"1KiB", "1T", "1b", "1.5M", "1kk", "17179869184G",
		"17592186044416M", "99999999999999999999G",
	};
	uint64_t	v;
	size_t		i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		CHECK(util_parse_size(good[i].s, &v) == 0);
		CHECK_EQ_U64(v, good[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (util_parse_size(bad[i], &v) != -1)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		CHECK(util_parse_size(bad[i], &v) == -1);
	}
}

static void
test_parse_bool(void)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES",
	    "True", "On" };
	static const char *const no[] = { "no", "false", "off", "0", "NO",
	    "False", "OFF" };
	static const char *const bad[] = { "", "2", "y", "n", "yess",
	    " yes", "yes ", "enable", "-1", "01" };
	size_t	i;
	int	b;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = 0;
		CHECK(util_parse_bool(yes[i], &b) == 0);
		CHECK(b == 1);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = 1;
		CHECK(util_parse_bool(no[i], &b) == 0);
		CHECK(b == 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = 7;
		CHECK(util_parse_bool(bad[i], &b) == -1);
		CHECK(b == 7);
	}
}

static void
test_hostport_good(void)
{
	struct sockaddr_storage		 ss;
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	socklen_t			 len;
	char				 text[64];

	CHECK(util_parse_hostport("127.0.0.1:2055", 1, &ss, &len) == 0);
	sin = (const struct sockaddr_in *)&ss;
	CHECK(ss.ss_family == AF_INET);
	CHECK(len == sizeof(struct sockaddr_in));
	CHECK(ntohs(sin->sin_port) == 2055);
	CHECK(ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK);
	util_format_sockaddr((const struct sockaddr *)&ss, text,
	    sizeof(text));
	CHECK(strcmp(text, "127.0.0.1:2055") == 0);

	CHECK(util_parse_hostport("0.0.0.0:2055", 1, &ss, &len) == 0);
	CHECK(ss.ss_family == AF_INET);
	CHECK(sin->sin_addr.s_addr == htonl(INADDR_ANY));

	CHECK(util_parse_hostport("[::1]:4739", 1, &ss, &len) == 0);
	sin6 = (const struct sockaddr_in6 *)&ss;
	CHECK(ss.ss_family == AF_INET6);
	CHECK(len == sizeof(struct sockaddr_in6));
	CHECK(ntohs(sin6->sin6_port) == 4739);
	CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	util_format_sockaddr((const struct sockaddr *)&ss, text,
	    sizeof(text));
	CHECK(strcmp(text, "[::1]:4739") == 0);

	CHECK(util_parse_hostport("[::]:4739", 1, &ss, &len) == 0);
	CHECK(ss.ss_family == AF_INET6);
	CHECK(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	util_format_sockaddr((const struct sockaddr *)&ss, text,
	    sizeof(text));
	CHECK(strcmp(text, "[::]:4739") == 0);

	/* Port edges. */
	CHECK(util_parse_hostport("127.0.0.1:0", 1, &ss, &len) == 0);
	CHECK(ntohs(sin->sin_port) == 0);
	CHECK(util_parse_hostport("127.0.0.1:65535", 1, &ss, &len) == 0);
	CHECK(ntohs(sin->sin_port) == 65535);

	/* A name resolves to a loopback address of either family. */
	CHECK(util_parse_hostport("localhost:8750", 0, &ss, &len) == 0);
	if (ss.ss_family == AF_INET) {
		CHECK(ntohs(sin->sin_port) == 8750);
		CHECK((ntohl(sin->sin_addr.s_addr) >> 24) == 127);
	} else {
		CHECK(ss.ss_family == AF_INET6);
		CHECK(ntohs(sin6->sin6_port) == 8750);
		CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	}
	/* ... but not when only numeric addresses are allowed. */
	CHECK(util_parse_hostport("localhost:8750", 1, &ss, &len) == -1);
}

static void
test_hostport_bad(void)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":2055", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:+1", "127.0.0.1: 80",
		"127.0.0.1:80x", "127.0.0.1:99999999999999999999",
		"::1", "::1:4739", "fe80::1:80", "[::1]", "[::1]:",
		"[::1]4739", "[::1", "::1]:80", "[]:80", "[127.0.0.1]:80",
		"[localhost]:80", "999.1.1.1:80", "1.2.3.4:80:90",
		"host", "[::1]:4739x",
	};
	struct sockaddr_storage	ss;
	socklen_t		len;
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (util_parse_hostport(bad[i], 1, &ss, &len) != -1)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		CHECK(util_parse_hostport(bad[i], 1, &ss, &len) == -1);
	}
	CHECK(util_parse_hostport(NULL, 1, &ss, &len) == -1);
}

static void
test_format_sockaddr(void)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
	struct sockaddr		sa;
	char			text[64], tiny[6];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(5);
	sin.sin_addr.s_addr = htonl(0x01020304);
	util_format_sockaddr((struct sockaddr *)&sin, text, sizeof(text));
	CHECK(strcmp(text, "1.2.3.4:5") == 0);

	/* Truncated output is still a C string. */
	memset(tiny, 'x', sizeof(tiny));
	util_format_sockaddr((struct sockaddr *)&sin, tiny, sizeof(tiny));
	CHECK(strcmp(tiny, "1.2.3") == 0);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(65535);
	CHECK(inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr) == 1);
	util_format_sockaddr((struct sockaddr *)&sin6, text, sizeof(text));
	CHECK(strcmp(text, "[2001:db8::1]:65535") == 0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	util_format_sockaddr(&sa, text, sizeof(text));
	CHECK(text[0] != '\0' && strchr(text, ':') == NULL);
}

struct items {
	char	got[8][16];
	int	n;
	int	stop_after;	/* return -1 after this many; 0 = never */
};

static int
collect(const char *item, void *arg)
{
	struct items *it = arg;

	if (it->n < 8)
		snprintf(it->got[it->n], sizeof(it->got[0]), "%s", item);
	it->n++;
	return it->stop_after != 0 && it->n >= it->stop_after ? -1 : 0;
}

static void
test_split_list(void)
{
	struct items it;

	memset(&it, 0, sizeof(it));
	CHECK(util_split_list("a, b  c,,d\t,e\n", collect, &it) == 0);
	CHECK(it.n == 5);
	CHECK(strcmp(it.got[0], "a") == 0);
	CHECK(strcmp(it.got[1], "b") == 0);
	CHECK(strcmp(it.got[2], "c") == 0);
	CHECK(strcmp(it.got[3], "d") == 0);
	CHECK(strcmp(it.got[4], "e") == 0);

	memset(&it, 0, sizeof(it));
	CHECK(util_split_list("127.0.0.1:2055,[::1]:4739", collect,
	    &it) == 0);
	CHECK(it.n == 2);
	CHECK(strcmp(it.got[0], "127.0.0.1:2055") == 0);
	CHECK(strcmp(it.got[1], "[::1]:4739") == 0);

	memset(&it, 0, sizeof(it));
	CHECK(util_split_list("", collect, &it) == 0);
	CHECK(it.n == 0);
	CHECK(util_split_list(" , ,\t", collect, &it) == 0);
	CHECK(it.n == 0);
	CHECK(util_split_list("single", collect, &it) == 0);
	CHECK(it.n == 1);
	CHECK(strcmp(it.got[0], "single") == 0);

	/* The callback stops the walk. */
	memset(&it, 0, sizeof(it));
	it.stop_after = 2;
	CHECK(util_split_list("x y z w", collect, &it) == -1);
	CHECK(it.n == 2);
}

static void
test_snprintf(void)
{
	char buf[6];

	CHECK(util_snprintf(buf, sizeof(buf), "%s", "abc") == 3);
	CHECK(strcmp(buf, "abc") == 0);
	CHECK(util_snprintf(buf, sizeof(buf), "%d", 12345) == 5);
	CHECK(strcmp(buf, "12345") == 0);
	CHECK(util_snprintf(buf, sizeof(buf), "%d", 123456) == -1);
	CHECK(buf[sizeof(buf) - 1] == '\0');
	CHECK(util_snprintf(buf, 0, "%s", "") == -1);
	CHECK(util_snprintf(buf, 1, "%s", "") == 0);
}

static void
test_clocks(void)
{
	int64_t		a, b;
	uint64_t	now;

	a = util_mono_ns();
	b = util_mono_ns();
	CHECK(a > 0);
	CHECK(b >= a);
	now = util_real_us();
	/* After 2020-01-01 and before 2200-01-01. */
	CHECK(now > UINT64_C(1577836800) * 1000000);
	CHECK(now < UINT64_C(7258118400) * 1000000);
}

/* Removes a test directory tree: files, then subdirectories. */
static void
rm_tree(const char *path)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		 sub[PATH_MAX];

	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(sub);
		else
			unlink(sub);
	}
	closedir(d);
	rmdir(path);
}

/* Number of entries in dir whose name starts with `prefix`. */
static int
count_prefix(const char *dir, const char *prefix)
{
	struct dirent	*de;
	DIR		*d;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static void
test_write_atomic(void)
{
	char		 dir[] = "/tmp/fp-util-XXXXXX";
	char		 path[PATH_MAX], sub[PATH_MAX];
	uint8_t		*data = NULL;
	size_t		 len = 0;
	struct stat	 st;
	static const char first[] = "first version\n";
	static const char second[] = "second";

	if (mkdtemp(dir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/state", dir);

	CHECK(util_write_atomic(dir, "state", first, strlen(first)) == 0);
	CHECK(util_read_file(path, 1024, &data, &len) == 0);
	CHECK_EQ_U64(len, strlen(first));
	CHECK(data != NULL && memcmp(data, first, len) == 0);
	CHECK(data != NULL && data[len] == '\0');
	free(data);
	data = NULL;

	/* Replacing keeps exactly the new bytes. */
	CHECK(util_write_atomic(dir, "state", second, strlen(second)) == 0);
	CHECK(util_read_file(path, 1024, &data, &len) == 0);
	CHECK_EQ_U64(len, strlen(second));
	CHECK(data != NULL && memcmp(data, second, len) == 0);
	free(data);
	data = NULL;

	/* Empty content is a valid file. */
	CHECK(util_write_atomic(dir, "empty", NULL, 0) == 0);
	snprintf(sub, sizeof(sub), "%s/empty", dir);
	CHECK(stat(sub, &st) == 0 && st.st_size == 0);
	CHECK(count_prefix(dir, ".tmp.") == 0);

	/* A directory where the file should go: rename fails, temp goes. */
	snprintf(sub, sizeof(sub), "%s/blocked", dir);
	CHECK(mkdir(sub, 0700) == 0);
	snprintf(sub, sizeof(sub), "%s/blocked/inner", dir);
	CHECK(mkdir(sub, 0700) == 0);
	errno = 0;
	CHECK(util_write_atomic(dir, "blocked", first, strlen(first)) == -1);
	CHECK(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
	CHECK(count_prefix(dir, ".tmp.") == 0);

	/* A missing directory reports ENOENT. */
	snprintf(sub, sizeof(sub), "%s/missing", dir);
	errno = 0;
	CHECK(util_write_atomic(sub, "x", first, strlen(first)) == -1);
	CHECK(errno == ENOENT);

	CHECK(util_fsync_dir(dir) == 0);
	CHECK(util_fsync_dir(sub) == -1);

	rm_tree(dir);
	CHECK(stat(dir, &st) == -1);
}

static void
test_read_file(void)
{
	char		 dir[] = "/tmp/fp-util-XXXXXX";
	char		 path[PATH_MAX];
	uint8_t		*data = NULL;
	size_t		 len = 0;
	static const char ten[] = "0123456789";

	if (mkdtemp(dir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/ten", dir);
	CHECK(util_write_atomic(dir, "ten", ten, 10) == 0);

	/* Exactly at the limit is fine, one byte over is EFBIG. */
	CHECK(util_read_file(path, 10, &data, &len) == 0);
	CHECK_EQ_U64(len, 10);
	CHECK(data != NULL && memcmp(data, ten, 10) == 0);
	free(data);
	data = NULL;
	errno = 0;
	CHECK(util_read_file(path, 9, &data, &len) == -1);
	CHECK(errno == EFBIG);
	CHECK(data == NULL);
	CHECK(util_read_file(path, 0, &data, &len) == -1);
	CHECK(errno == EFBIG);

	/* An empty file with a zero limit. */
	CHECK(util_write_atomic(dir, "empty", "", 0) == 0);
	snprintf(path, sizeof(path), "%s/empty", dir);
	CHECK(util_read_file(path, 0, &data, &len) == 0);
	CHECK_EQ_U64(len, 0);
	free(data);
	data = NULL;

	/* Missing file and directory. */
	snprintf(path, sizeof(path), "%s/nope", dir);
	errno = 0;
	CHECK(util_read_file(path, 100, &data, &len) == -1);
	CHECK(errno == ENOENT);
	CHECK(util_read_file(dir, 100, &data, &len) == -1);
	CHECK(errno == EISDIR);

	/*
	 * /proc files report size 0: the read must still be capped, and
	 * must still read everything when the cap allows.
	 */
	errno = 0;
	CHECK(util_read_file("/proc/self/status", 16, &data, &len) == -1);
	CHECK(errno == EFBIG);
	CHECK(util_read_file("/proc/self/status", 1 << 20, &data,
	    &len) == 0);
	CHECK(len > 16);
	CHECK(data != NULL && strncmp((char *)data, "Name:", 5) == 0);
	free(data);

	rm_tree(dir);
}

static void
test_mkdirs(void)
{
	char		dir[] = "/tmp/fp-util-XXXXXX";
	char		path[PATH_MAX];
	struct stat	st;

	if (mkdtemp(dir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/a/b//c/", dir);
	CHECK(util_mkdirs(path, 0750) == 0);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	/* Existing is fine. */
	CHECK(util_mkdirs(path, 0750) == 0);
	CHECK(util_mkdirs("/", 0755) == 0);

	/* A file in the way. */
	CHECK(util_write_atomic(path, "file", "x", 1) == 0);
	snprintf(path, sizeof(path), "%s/a/b/c/file", dir);
	errno = 0;
	CHECK(util_mkdirs(path, 0750) == -1);
	CHECK(errno == ENOTDIR);
	snprintf(path, sizeof(path), "%s/a/b/c/file/below", dir);
	CHECK(util_mkdirs(path, 0750) == -1);
	CHECK(util_mkdirs("", 0750) == -1);

	rm_tree(dir);
}

/*
 * Runs fn with stderr sent to a temporary file and returns what it wrote
 * (malloc'd, NUL-terminated), or NULL.
 */
static char *
capture_stderr(void (*fn)(void))
{
	char	 path[] = "/tmp/fp-log-XXXXXX";
	uint8_t	*data = NULL;
	size_t	 len;
	int	 fd, saved;

	if ((fd = mkstemp(path)) == -1)
		return NULL;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	if (util_read_file(path, 1 << 20, &data, &len) == -1)
		data = NULL;
	unlink(path);
	return (char *)data;
}

static int log_errno_after;

static void
log_basic(void)
{
	char big[3000];

	log_init("test-util", LOGL_INFO, 0);
	log_info("hello %d", 5);
	log_debug("hidden");
	log_set_level(LOGL_DEBUG);
	log_debug("shown");
	log_set_level(LOGL_ERROR);
	log_warn("filtered");
	log_error("bad\nforged: line\n");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_error("%s", big);
	errno = ENOSPC;
	log_error("errno %s", "kept");
	log_errno_after = errno;
	log_set_level(LOGL_INFO);
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

static void
test_log_lines(void)
{
	char	*out, prefix[64], want[128];
	char	*line, *nl;

	CHECK(log_level_parse("error") == LOGL_ERROR);
	CHECK(log_level_parse("warn") == LOGL_WARN);
	CHECK(log_level_parse("info") == LOGL_INFO);
	CHECK(log_level_parse("DEBUG") == LOGL_DEBUG);
	CHECK(log_level_parse("verbose") == -1);
	CHECK(log_level_parse("") == -1);

	out = capture_stderr(log_basic);
	CHECK(out != NULL);
	if (out == NULL)
		return;
	snprintf(prefix, sizeof(prefix), "test-util[%ld]: ", (long)getpid());
	CHECK(count_lines(out) == 5);

	snprintf(want, sizeof(want), "%sinfo: hello 5\n", prefix);
	CHECK(strncmp(out, want, strlen(want)) == 0);
	snprintf(want, sizeof(want), "%sdebug: shown\n", prefix);
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "hidden") == NULL);
	CHECK(strstr(out, "filtered") == NULL);
	/* A newline inside a message cannot start a forged line. */
	snprintf(want, sizeof(want), "%serror: bad?forged: line\n", prefix);
	CHECK(strstr(out, want) != NULL);
	/* A long message is cut to one line of at most 1 KiB. */
	line = strstr(out, "error: xxx");
	CHECK(line != NULL);
	if (line != NULL) {
		nl = strchr(line, '\n');
		CHECK(nl != NULL);
		CHECK(nl != NULL && (size_t)(nl - line) + strlen(prefix) < 1024);
		CHECK(nl != NULL && nl - line > 900);
	}
	snprintf(want, sizeof(want), "%serror: errno kept\n", prefix);
	CHECK(strstr(out, want) != NULL);
	CHECK(log_errno_after == ENOSPC);
	free(out);
}

static struct log_limit	limit_site;

static void *
limited_thread(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 1000; i++)
		log_limited(&limit_site, 3600, LOGL_WARN, "drop %d", i);
	return NULL;
}

static void
log_limited_run(void)
{
	pthread_t	t[4];
	int		i;

	log_init("test-util", LOGL_INFO, 0);
	memset(&limit_site, 0, sizeof(limit_site));
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, limited_thread, NULL);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* Pretend the interval went by instead of waiting an hour. */
	limit_site.last_ns -= (int64_t)3601 * 1000000000;
	log_limited(&limit_site, 3600, LOGL_WARN, "after %s", "pause");
	log_limited(&limit_site, 3600, LOGL_WARN, "again");
	/* Filtered levels are neither logged nor counted. */
	log_limited(&limit_site, 3600, LOGL_DEBUG, "debug");
}

static void
test_log_limited(void)
{
	char *out, want[160];

	out = capture_stderr(log_limited_run);
	CHECK(out != NULL);
	if (out == NULL)
		return;
	/* 4000 attempts inside one interval: one line gets through. */
	CHECK(count_lines(out) == 2);
	CHECK(strstr(out, ": warn: drop ") != NULL);
	snprintf(want, sizeof(want), "test-util[%ld]: warn: after pause "
	    "(3999 similar messages suppressed)\n", (long)getpid());
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "again") == NULL);
	CHECK_EQ_U64(limit_site.suppressed, 1);
	free(out);
}

TEST_MAIN(test_parse_u64, test_parse_duration, test_parse_size,
    test_parse_bool, test_hostport_good, test_hostport_bad,
    test_format_sockaddr, test_split_list, test_snprintf, test_clocks,
    test_write_atomic, test_read_file, test_mkdirs, test_log_lines,
    test_log_limited)
