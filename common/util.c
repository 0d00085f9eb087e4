/*
 * util.c: bounded parsers, addresses, clocks and durable file writes.
 *
 * Everything here returns 0 or -1 and leaves errno meaningful on failure;
 * nothing logs, so the caller that decides what a failure means says it once.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/*
 * Reads the decimal digits at *sp into *out, advancing *sp past them.
 * Fails on no digits or on a value that does not fit 64 bits.
 */
static int
util_digits(const char **sp, uint64_t *out)
{
	const char	*s = *sp;
	uint64_t	 v = 0;

	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int d = (unsigned int)(*s - '0');

		if (v > (UINT64_MAX - d) / 10) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

/*
 * Number with at most one suffix letter from `suffixes`, each meaning the
 * multiplier at the same index of `mult`.  The product must fit 64 bits.
 */
static int
util_parse_scaled(const char *s, const char *suffixes, const uint64_t *mult,
    uint64_t *out)
{
	const char	*p;
	uint64_t	 v, m = 1;

	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (util_digits(&s, &v) == -1)
		return -1;
	if (*s != '\0') {
		p = strchr(suffixes, *s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' :
		    *s);
		if (p == NULL || s[1] != '\0') {
			errno = EINVAL;
			return -1;
		}
		m = mult[p - suffixes];
	}
	if (m != 0 && v > UINT64_MAX / m) {
		errno = ERANGE;
		return -1;
	}
	*out = v * m;
	return 0;
}

int
util_parse_u64(const char *s, uint64_t *out)
{
	return util_parse_scaled(s, "", NULL, out);
}

int
util_parse_duration(const char *s, uint64_t *seconds)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400 };

	return util_parse_scaled(s, "smhd", mult, seconds);
}

int
util_parse_size(const char *s, uint64_t *bytes)
{
	static const uint64_t mult[] = {
		UINT64_C(1) << 10, UINT64_C(1) << 20, UINT64_C(1) << 30
	};

	return util_parse_scaled(s, "kmg", mult, bytes);
}

int
util_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

/*
 * Splits "host:port" or "[v6]:port" into its parts.  A host with more than
 * one colon is a bare IPv6 address: refused, because "::1:80" could mean
 * either address ::1 port 80 or address ::1:80 with no port.
 */
static int
util_split_hostport(const char *s, char *host, size_t hostlen,
    uint16_t *port, int *bracketed)
{
	const char	*end, *colon;
	size_t		 n;
	uint64_t	 v;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		s++;
		colon = end + 1;
		n = (size_t)(end - s);
		*bracketed = 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) !=
		    NULL)
			return -1;
		n = (size_t)(colon - s);
		*bracketed = 0;
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (util_parse_u64(colon + 1, &v) == -1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int
util_parse_hostport(const char *s, int numeric, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct addrinfo	 hints, *res = NULL;
	char		 host[NI_MAXHOST], portstr[8];
	uint16_t	 port;
	int		 bracketed, rc = -1;

	if (s == NULL || util_split_hostport(s, host, sizeof(host), &port,
	    &bracketed) == -1) {
		errno = EINVAL;
		goto out;
	}
	snprintf(portstr, sizeof(portstr), "%u", (unsigned int)port);

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (bracketed) {
		/* Brackets are only for IPv6 literals, never names. */
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else {
		hints.ai_family = AF_UNSPEC;
		if (numeric)
			hints.ai_flags |= AI_NUMERICHOST;
	}
	/* A name with several addresses takes the first in RFC 6724 order. */
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL ||
	    res->ai_addrlen > sizeof(*ss)) {
		errno = EINVAL;
		goto out;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	rc = 0;
out:
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

int
util_split_list(const char *s, int (*cb)(const char *item, void *arg),
    void *arg)
{
	static const char	 sep[] = ", \t\r\n";
	char			*copy, *p;
	size_t			 n;
	int			 rc = 0;

	if ((copy = strdup(s)) == NULL)
		return -1;
	for (p = copy; *p != '\0'; p += n) {
		p += strspn(p, sep);
		n = strcspn(p, sep);
		if (n == 0)
			continue;
		if (p[n] != '\0')
			p[n++] = '\0';
		if (cb(p, arg) == -1) {
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

void
util_format_sockaddr(const struct sockaddr *sa, char *out, size_t outlen)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	char				 addr[INET6_ADDRSTRLEN];

	if (outlen == 0)
		return;
	if (sa == NULL) {
		snprintf(out, outlen, "(none)");
		return;
	}
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		if (inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)) ==
		    NULL)
			break;
		snprintf(out, outlen, "%s:%u", addr,
		    (unsigned int)ntohs(sin->sin_port));
		return;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
		    sizeof(addr)) == NULL)
			break;
		snprintf(out, outlen, "[%s]:%u", addr,
		    (unsigned int)ntohs(sin6->sin6_port));
		return;
	default:
		break;
	}
	snprintf(out, outlen, "(family %d)", (int)sa->sa_family);
}

int64_t
util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t
util_real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* write(2) until everything is out; EINTR and short writes just go on. */
static int
util_write_all(int fd, const void *data, size_t len)
{
	const uint8_t	*p = data;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The temporary name starts with a dot and carries the pid, so directory
 * scans can skip it and a crash leaves a file that is recognisably junk.
 * O_TRUNC rather than O_EXCL: after a power cut the same pid may come back
 * and must be able to reuse its stale temporary name.  The file mode is
 * 0644 minus umask; the directory's own mode is what keeps data private.
 */
int
util_write_atomic(const char *dir, const char *name, const void *data,
    size_t len)
{
	char	 tmp[PATH_MAX], dst[PATH_MAX];
	int	 fd = -1, created = 0, rc = -1, saved;

	if (util_snprintf(tmp, sizeof(tmp), "%s/.tmp.%s.%ld", dir, name,
	    (long)getpid()) == -1 ||
	    util_snprintf(dst, sizeof(dst), "%s/%s", dir, name) == -1) {
		errno = ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd == -1)
		goto out;
	created = 1;
	if (util_write_all(fd, data, len) == -1 || fsync(fd) == -1)
		goto out;
	/* close() can report a delayed write error; it counts. */
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, dst) == -1)
		goto out;
	created = 0;
	if (util_fsync_dir(dir) == -1)
		goto out;
	rc = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	errno = saved;
	return rc;
}

int
util_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
	struct stat	 st;
	uint8_t		*buf = NULL, *nbuf;
	size_t		 alloc, used = 0;
	ssize_t		 n;
	int		 fd, rc = -1, saved;
	char		 probe;

	/* One byte stays free for the terminating NUL. */
	if (max > SIZE_MAX - 1)
		max = SIZE_MAX - 1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto out;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto out;
	}
	if (st.st_size > 0 && (uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto out;
	}
	/* st_size is a hint only: the file may grow, or be a /proc file. */
	alloc = st.st_size > 0 ? (size_t)st.st_size : 4096;
	if (alloc > max)
		alloc = max;
	if ((buf = malloc(alloc + 1)) == NULL)
		goto out;
	for (;;) {
		if (used == alloc) {
			if (alloc == max) {
				/* Full: one more byte means too big. */
				n = read(fd, &probe, 1);
				if (n == -1 && errno == EINTR)
					continue;
				if (n == -1)
					goto out;
				if (n > 0) {
					errno = EFBIG;
					goto out;
				}
				break;
			}
			alloc = alloc > max / 2 ? max : alloc * 2;
			if ((nbuf = realloc(buf, alloc + 1)) == NULL)
				goto out;
			buf = nbuf;
		}
		n = read(fd, buf + used, alloc - used);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*data = buf;
	*len = used;
	buf = NULL;
	rc = 0;
out:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return rc;
}

int
util_fsync_dir(const char *dir)
{
	int fd, rc = 0, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fsync(fd) == -1)
		rc = -1;
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * Creates each missing component in turn.  Intermediate directories also
 * get owner write and search bits, or nothing below them could be created.
 */
int
util_mkdirs(const char *path, unsigned int mode)
{
	struct stat	 st;
	char		 buf[PATH_MAX];
	char		*p;
	size_t		 n;

	n = strlen(path);
	if (n == 0) {
		errno = ENOENT;
		return -1;
	}
	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';

	for (p = buf + 1; ; p++) {
		int last;

		p += strcspn(p, "/");
		last = (*p == '\0');
		*p = '\0';
		if (mkdir(buf, last ? (mode_t)mode :
		    (mode_t)(mode | S_IWUSR | S_IXUSR)) == -1) {
			if (errno != EEXIST)
				return -1;
			if (stat(buf, &st) == -1)
				return -1;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				return -1;
			}
		}
		if (last)
			break;
		*p = '/';
		/* Collapse "a//b". */
		while (p[1] == '/')
			p++;
	}
	return 0;
}

int
util_snprintf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return n;
}
