/*
 * util.h: bounded parsers, addresses, clocks and durable file writes.
 */
#ifndef FLOWPOST_UTIL_H
#define FLOWPOST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Decimal unsigned integer, whole string, no sign, no overflow. */
int	 util_parse_u64(const char *s, uint64_t *out);
/* Seconds with an optional s/m/h/d suffix ("90", "5s", "2m", "1h"). */
int	 util_parse_duration(const char *s, uint64_t *seconds);
/* Bytes with an optional K/M/G suffix (powers of 1024). */
int	 util_parse_size(const char *s, uint64_t *bytes);
/* yes/no/true/false/on/off/1/0. */
int	 util_parse_bool(const char *s, int *out);

/*
 * "host:port", "[v6addr]:port", "v6addr" is refused (ambiguous).
 * Resolves names with getaddrinfo (numeric only when `numeric`).
 */
int	 util_parse_hostport(const char *s, int numeric,
	    struct sockaddr_storage *ss, socklen_t *sslen);
/* Splits a comma/space separated list; calls cb for each item, stops on -1. */
int	 util_split_list(const char *s, int (*cb)(const char *item, void *arg),
	    void *arg);
/* "1.2.3.4:5" / "[::1]:5" into out (always NUL-terminated). */
void	 util_format_sockaddr(const struct sockaddr *sa, char *out,
	    size_t outlen);

int64_t	 util_mono_ns(void);		/* CLOCK_MONOTONIC */
uint64_t util_real_us(void);		/* CLOCK_REALTIME, microseconds */

/*
 * Durable replace: writes `dir`/`name` through a temporary file in the
 * same directory, fsyncs it, renames it into place and fsyncs the directory.
 */
int	 util_write_atomic(const char *dir, const char *name, const void *data,
	    size_t len);
/* Reads a whole file of at most `max` bytes into a malloc'd buffer. */
int	 util_read_file(const char *path, size_t max, uint8_t **data,
	    size_t *len);
int	 util_fsync_dir(const char *dir);
/* mkdir -p with mode; ok if it exists. */
int	 util_mkdirs(const char *path, unsigned int mode);

/* snprintf that returns -1 on truncation or error. */
int	 util_snprintf(char *out, size_t outlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
