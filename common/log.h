/*
 * log.h: one log line per event, with a level, on stderr or syslog.
 *
 * Lines look like "flowpost-client[1234]: warn: spool: ...".  Repeated
 * messages under attack or outage go through log_limited(), which lets one
 * line through per interval per call site and counts the rest.
 */
#ifndef FLOWPOST_LOG_H
#define FLOWPOST_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN = 1,
	LOGL_INFO = 2,
	LOGL_DEBUG = 3,
};

void	 log_init(const char *progname, enum log_level level, int use_syslog);
void	 log_set_level(enum log_level level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int	 log_level_parse(const char *s);

void	 log_msg(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#define log_error(...)	log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOGL_DEBUG, __VA_ARGS__)

/*
 * Rate limiting: one `struct log_limit` per call site (static).  At most one
 * line per `interval_s`; the next line that gets through says how many were
 * suppressed.  Thread-safe.
 */
struct log_limit {
	int64_t		last_ns;
	uint64_t	suppressed;
};

void	 log_limited(struct log_limit *lim, int interval_s,
	    enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

#endif
