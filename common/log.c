/*
 * log.c: one log line per event, on stderr or syslog.
 *
 * Each line is formatted into a local buffer and handed over in one call,
 * so lines from different threads never interleave.  The level is an atomic
 * so a signal-driven change (more logging on demand) needs no lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX	1024

static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* openlog() keeps the ident pointer, so the name lives here. */
static char		log_progname[64] = "flowpost";
static atomic_int	log_level = LOGL_INFO;
static atomic_int	log_syslog;

/* Guards every struct log_limit; the critical section is a few loads. */
static pthread_mutex_t	log_limit_mtx = PTHREAD_MUTEX_INITIALIZER;

static void	log_vemit(enum log_level, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* Called once before any thread starts: the name is not guarded. */
void
log_init(const char *progname, enum log_level level, int use_syslog)
{
	if (progname != NULL)
		snprintf(log_progname, sizeof(log_progname), "%s", progname);
	log_set_level(level);
	if (use_syslog)
		openlog(log_progname, LOG_PID, LOG_DAEMON);
	atomic_store(&log_syslog, use_syslog ? 1 : 0);
	if (!use_syslog)
		closelog();
}

void
log_set_level(enum log_level level)
{
	if ((int)level < LOGL_ERROR)
		level = LOGL_ERROR;
	if (level > LOGL_DEBUG)
		level = LOGL_DEBUG;
	atomic_store(&log_level, (int)level);
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0)
			return (int)i;
	return -1;
}

static int
log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level,
	    memory_order_relaxed);
}

static int
log_syslog_prio(enum log_level level)
{
	switch (level) {
	case LOGL_ERROR:
		return LOG_ERR;
	case LOGL_WARN:
		return LOG_WARNING;
	case LOGL_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

/*
 * Formats and writes one line; `suffix` (may be NULL) is appended after the
 * message.  Messages often quote what peers sent, so control characters are
 * replaced: a peer must not be able to forge a second log line.
 */
static void
log_vemit(enum log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	char	 line[LOG_LINE_MAX];
	char	*msg;
	size_t	 off, room, len, slen, i;
	int	 n, saved = errno;

	if ((unsigned int)level >= sizeof(log_names) / sizeof(log_names[0]))
		level = LOGL_ERROR;
	n = snprintf(line, sizeof(line), "%s[%ld]: %s: ", log_progname,
	    (long)getpid(), log_names[level]);
	off = n < 0 ? 0 : (size_t)n;
	if (off >= sizeof(line))
		off = 0;
	msg = line + off;

	/* One byte stays free for the newline; a long message is cut. */
	room = sizeof(line) - off - 1;
	errno = saved;
	if (vsnprintf(msg, room, fmt, ap) < 0)
		msg[0] = '\0';
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	/* The suffix matters most on a cut line, so it always goes in whole. */
	if (suffix != NULL && (slen = strlen(suffix)) < room) {
		if (len > room - 1 - slen)
			len = room - 1 - slen;
		memcpy(msg + len, suffix, slen + 1);
		len += slen;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			msg[i] = '?';
	}

	if (atomic_load(&log_syslog))
		syslog(log_syslog_prio(level), "%s", msg);
	else {
		msg[len] = '\n';
		fwrite(line, 1, off + len + 1, stderr);
	}
	errno = saved;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vemit(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_limited(struct log_limit *lim, int interval_s, enum log_level level,
    const char *fmt, ...)
{
	va_list		 ap;
	char		 suffix[64];
	int64_t		 now;
	uint64_t	 suppressed = 0;
	int		 pass = 0;

	if (!log_enabled(level))
		return;
	now = util_mono_ns();
	pthread_mutex_lock(&log_limit_mtx);
	if (lim->last_ns == 0 || interval_s <= 0 ||
	    now - lim->last_ns >= (int64_t)interval_s * 1000000000) {
		pass = 1;
		suppressed = lim->suppressed;
		lim->suppressed = 0;
		lim->last_ns = now;
	} else
		lim->suppressed++;
	pthread_mutex_unlock(&log_limit_mtx);
	if (!pass)
		return;

	suffix[0] = '\0';
	if (suppressed > 0)
		snprintf(suffix, sizeof(suffix),
		    " (%llu similar messages suppressed)",
		    (unsigned long long)suppressed);
	va_start(ap, fmt);
	log_vemit(level, suffix[0] != '\0' ? suffix : NULL, fmt, ap);
	va_end(ap);
}
