/*
 * conf.c: table-driven configuration from defaults, an INI file and the
 * command line.
 *
 * The INI syntax is libinih's, with three adjustments made through the
 * run-time knobs of Debian's build:
 *  - no multi-line values, so an indented `key = value` is a key of its own
 *    and not a continuation of the line above;
 *  - no inline comments inside libinih: conf_ini_value() strips them itself,
 *    so a double-quoted value may contain ';' and '#';
 *  - lines up to CONF_LINE_MAX, and a longer line is an error, not two lines.
 * libinih does not tell the handler its line number, so the reader callback
 * counts lines: libinih calls the handler for a line right after the reader
 * returned it, so the count is the line of the key being handled.
 *
 * A key given twice keeps its last value, as operators expect from INI.
 * List-valued keys (listen, collector) are plain strings split by their
 * users, so for them too the last line wins: the lines do not add up.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "conf.h"
#include "util.h"

/* Blanks as libinih trims them (isspace), so values read back unchanged. */
static int
conf_blank(char c)
{
	return c != '\0' && isspace((unsigned char)c);
}

#define CONF_LINE_MAX	4096	/* one INI line, newline and NUL included */
#define CONF_NAME_MAX	64	/* longest key name looked up */
#define CONF_HELP_COL	32	/* column where --help text starts */

struct conf_file {
	const struct conf_key	*table;
	void			*cfg;
	FILE			*fp;
	const char		*path;
	const char		*section;
	const char		*other;
	int			 lineno;	/* lines returned by the reader */
	int			 section_line;	/* line of the last [header] */
	int			 errline;	/* first error, 0 = none */
	char			*err;
	size_t			 errlen;
};

/* A table option seen on the command line, applied after the file. */
struct conf_pending {
	const struct conf_key	*key;
	const char		*opt;		/* argv item, "--name[=value]" */
	int			 optlen;	/* length of "--name" */
	const char		*value;
};

static void	conf_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	conf_err_at(char *, size_t, const char *, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static void	conf_file_fail(struct conf_file *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/*
 * Error texts are for people: a cut-off message is still better than none,
 * so truncation is accepted here, and only here.
 */
static void
conf_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Same, prefixed with "where: " when `where` is given. */
static void
conf_err_at(char *err, size_t errlen, const char *where, const char *fmt,
    ...)
{
	char	msg[CONF_ERR_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (where != NULL)
		conf_err(err, errlen, "%s: %s", where, msg);
	else
		conf_err(err, errlen, "%s", msg);
}

static void *
conf_field(void *cfg, const struct conf_key *k)
{
	return (char *)cfg + k->offset;
}

static const void *
conf_cfield(const void *cfg, const struct conf_key *k)
{
	return (const char *)cfg + k->offset;
}

/* Key names compare with '-' and '_' as the same character. */
static int
conf_name_eq(const char *a, const char *b)
{
	for (;; a++, b++) {
		char ca = *a == '-' ? '_' : *a;
		char cb = *b == '-' ? '_' : *b;

		if (ca != cb)
			return 0;
		if (ca == '\0')
			return 1;
	}
}

const struct conf_key *
conf_find(const struct conf_key *table, const char *name)
{
	const struct conf_key *k;

	for (k = table; k->name != NULL; k++)
		if (conf_name_eq(k->name, name))
			return k;
	return NULL;
}

static int
conf_set_enum(const struct conf_key *k, void *cfg, const char *value,
    const char *where, char *err, size_t errlen)
{
	char	list[CONF_ERR_MAX / 2];
	size_t	i, off = 0;
	int	n;

	if (k->choices == NULL) {
		conf_err_at(err, errlen, where, "%s: enum without choices",
		    k->name);
		return -1;
	}
	for (i = 0; k->choices[i] != NULL; i++) {
		if (strcasecmp(value, k->choices[i]) == 0) {
			*(int *)conf_field(cfg, k) = (int)i;
			return 0;
		}
	}
	list[0] = '\0';
	for (i = 0; k->choices[i] != NULL && off < sizeof(list); i++) {
		n = snprintf(list + off, sizeof(list) - off, "%s%s",
		    i > 0 ? ", " : "", k->choices[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	conf_err_at(err, errlen, where, "%s: invalid value '%s' (one of: %s)",
	    k->name, value, list);
	return -1;
}

/* Parses `value` for key `k` and stores it; cfg is untouched on error. */
static int
conf_apply(const struct conf_key *k, void *cfg, const char *value,
    const char *where, char *err, size_t errlen)
{
	const char	*what;
	char		*s, **sp;
	uint64_t	 v;
	int		 b, rc;

	switch (k->type) {
	case CONF_STRING:
		if ((s = strdup(value)) == NULL) {
			conf_err_at(err, errlen, where, "%s: out of memory",
			    k->name);
			return -1;
		}
		sp = conf_field(cfg, k);
		free(*sp);
		*sp = s;
		return 0;
	case CONF_BOOL:
		if (util_parse_bool(value, &b) == -1) {
			conf_err_at(err, errlen, where,
			    "%s: invalid boolean '%s' (yes or no)", k->name,
			    value);
			return -1;
		}
		*(int *)conf_field(cfg, k) = b;
		return 0;
	case CONF_ENUM:
		return conf_set_enum(k, cfg, value, where, err, errlen);
	case CONF_UINT:
		rc = util_parse_u64(value, &v);
		what = "number";
		break;
	case CONF_SIZE:
		rc = util_parse_size(value, &v);
		what = "size";
		break;
	case CONF_DURATION:
		rc = util_parse_duration(value, &v);
		what = "duration";
		break;
	default:
		conf_err_at(err, errlen, where, "%s: unknown key type %d",
		    k->name, (int)k->type);
		return -1;
	}
	if (rc == -1) {
		conf_err_at(err, errlen, where, "%s: invalid %s '%s'", k->name,
		    what, value);
		return -1;
	}
	/* 0,0 means any value; max 0 alone means "no upper bound". */
	if ((k->min != 0 || k->max != 0) && v < k->min) {
		conf_err_at(err, errlen, where,
		    "%s: %llu is below the minimum %llu", k->name,
		    (unsigned long long)v, (unsigned long long)k->min);
		return -1;
	}
	if (k->max != 0 && v > k->max) {
		conf_err_at(err, errlen, where,
		    "%s: %llu is above the maximum %llu", k->name,
		    (unsigned long long)v, (unsigned long long)k->max);
		return -1;
	}
	*(uint64_t *)conf_field(cfg, k) = v;
	return 0;
}

int
conf_set(const struct conf_key *table, void *cfg, const char *key,
    const char *value, const char *where, char *err, size_t errlen)
{
	const struct conf_key *k;

	if ((k = conf_find(table, key)) == NULL) {
		conf_err_at(err, errlen, where, "unknown key '%s'", key);
		return -1;
	}
	return conf_apply(k, cfg, value, where, err, errlen);
}

/* Back to "unset": NULL string, zero number. */
static void
conf_clear(const struct conf_key *k, void *cfg)
{
	char **sp;

	switch (k->type) {
	case CONF_STRING:
		sp = conf_field(cfg, k);
		free(*sp);
		*sp = NULL;
		break;
	case CONF_BOOL:
	case CONF_ENUM:
		*(int *)conf_field(cfg, k) = 0;
		break;
	default:
		*(uint64_t *)conf_field(cfg, k) = 0;
		break;
	}
}

/*
 * cfg must be zeroed, or hold values set through this table: strings found
 * there are freed before being replaced.
 */
int
conf_defaults(const struct conf_key *table, void *cfg, char *err,
    size_t errlen)
{
	const struct conf_key *k;

	for (k = table; k->name != NULL; k++) {
		if (k->def == NULL)
			conf_clear(k, cfg);
		else if (conf_apply(k, cfg, k->def, "default", err,
		    errlen) == -1)
			return -1;
	}
	return 0;
}

void
conf_free(const struct conf_key *table, void *cfg)
{
	const struct conf_key	*k;
	char			**sp;

	for (k = table; k->name != NULL; k++) {
		if (k->type != CONF_STRING)
			continue;
		sp = conf_field(cfg, k);
		free(*sp);
		*sp = NULL;
	}
}

static void
conf_file_fail(struct conf_file *cf, int line, const char *fmt, ...)
{
	char	msg[CONF_ERR_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_err(cf->err, cf->errlen, "%s:%d: %s", cf->path, line, msg);
	cf->errline = line;
}

/* Does the section name s[0..n), blanks trimmed, equal `want`? */
static int
conf_section_is(const char *s, size_t n, const char *want)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return want != NULL && strlen(want) == n && memcmp(s, want, n) == 0;
}

/*
 * Turns the value libinih hands over into the final text.  Surrounding
 * blanks go; a ';' or '#' at the start or after a blank starts a comment;
 * a value in double quotes keeps everything between them (blanks, ';',
 * '#'), with no escapes, and only a comment may follow the closing quote.
 */
static int
conf_ini_value(const char *raw, char *out, size_t outlen, const char **why)
{
	const char	*p, *end, *rest;
	size_t		 n;

	p = raw;
	while (conf_blank(*p))
		p++;
	if (*p == '"') {
		p++;
		if ((end = strchr(p, '"')) == NULL) {
			*why = "missing closing quote";
			return -1;
		}
		for (rest = end + 1; conf_blank(*rest); rest++)
			;
		if (*rest != '\0' && *rest != ';' && *rest != '#') {
			*why = "text after the closing quote";
			return -1;
		}
	} else {
		for (end = p; *end != '\0'; end++)
			if ((*end == ';' || *end == '#') && (end == p ||
			    conf_blank(end[-1])))
				break;
		while (end > p && conf_blank(end[-1]))
			end--;
	}
	n = (size_t)(end - p);
	if (n >= outlen) {
		*why = "value too long";
		return -1;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/*
 * fgets for libinih that counts lines.  It also checks section headers:
 * the handler only sees key lines, so this is where an unknown section
 * without keys is caught, and where the header's own line is known.
 */
static char *
conf_ini_reader(char *str, int num, void *stream)
{
	struct conf_file	*cf = stream;
	const char		*p, *end;
	size_t			 n;
	int			 c;

	if (cf->errline != 0 || fgets(str, num, cf->fp) == NULL)
		return NULL;
	cf->lineno++;
	n = strlen(str);
	if (n > 0 && str[n - 1] != '\n') {
		/* Either the last line without a newline, or a cut line. */
		if ((c = getc(cf->fp)) != EOF) {
			ungetc(c, cf->fp);
			conf_file_fail(cf, cf->lineno,
			    "line too long (at most %d characters)", num - 3);
			return NULL;
		}
	}

	p = str;
	if (cf->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	p += strspn(p, " \t");
	if (*p == '[' && (end = strchr(p, ']')) != NULL) {
		cf->section_line = cf->lineno;
		p++;
		n = (size_t)(end - p);
		if (!conf_section_is(p, n, cf->section) &&
		    !conf_section_is(p, n, cf->other)) {
			conf_file_fail(cf, cf->lineno,
			    "unknown section [%.*s]", (int)n, p);
			return NULL;
		}
	}
	return str;
}

static int
conf_ini_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct conf_file	*cf = user;
	char			 where[CONF_ERR_MAX], buf[CONF_LINE_MAX];
	const char		*why;
	size_t			 slen = strlen(section);

	if (cf->errline != 0)
		return 0;
	if (slen != 0 && !conf_section_is(section, slen, cf->section)) {
		if (conf_section_is(section, slen, cf->other))
			return 1;
		/* The reader refuses these first; this is a second guard. */
		conf_file_fail(cf, cf->section_line, "unknown section [%s]",
		    section);
		return 0;
	}
	if (conf_ini_value(value, buf, sizeof(buf), &why) == -1) {
		conf_file_fail(cf, cf->lineno, "%s: %s", name, why);
		return 0;
	}
	snprintf(where, sizeof(where), "%s:%d", cf->path, cf->lineno);
	if (conf_set(cf->table, cf->cfg, name, buf, where, cf->err,
	    cf->errlen) == -1) {
		cf->errline = cf->lineno;
		return 0;
	}
	return 1;
}

int
conf_load_file(const struct conf_key *table, void *cfg, const char *path,
    const char *section, const char *other, char *err, size_t errlen)
{
	struct conf_file	cf;
	int			r, rc = -1;

	memset(&cf, 0, sizeof(cf));
	cf.table = table;
	cf.cfg = cfg;
	cf.path = path;
	cf.section = section;
	cf.other = other;
	cf.err = err;
	cf.errlen = errlen;
	if ((cf.fp = fopen(path, "re")) == NULL) {
		conf_err(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}

	/*
	 * Process-wide knobs of Debian's libinih, read at parse time; the
	 * stack line buffer is sized from ini_max_line.  Set on every load
	 * so nothing else in the process can leave them different.
	 */
	ini_allow_multiline = false;
	ini_allow_inline_comments = false;
	ini_max_line = CONF_LINE_MAX;

	r = ini_parse_stream(conf_ini_reader, &cf, conf_ini_handler, &cf);
	if (ferror(cf.fp))
		conf_err(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
	else if (r > 0 && (cf.errline == 0 || r < cf.errline))
		conf_err(err, errlen, "%s:%d: syntax error", path, r);
	else if (cf.errline == 0 && r < 0)
		conf_err(err, errlen, "%s: out of memory", path);
	else if (cf.errline == 0)
		rc = 0;
	/* Otherwise the reader or the handler already wrote err. */
	fclose(cf.fp);
	return rc;
}

static int
conf_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static int
conf_is_version(const char *arg)
{
	return strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0;
}

/* "-v", "-vv", "-vvv": the number of v's, or 0 for anything else. */
static int
conf_verbose_count(const char *arg)
{
	size_t n;

	if (arg[0] != '-' || arg[1] != 'v')
		return 0;
	n = strspn(arg + 1, "v");
	return arg[1 + n] == '\0' ? (int)n : 0;
}

/* The table key named by "--name" or "--name=value", or NULL. */
static const struct conf_key *
conf_cli_key(const struct conf_key *table, const char *arg, int *namelen)
{
	char	name[CONF_NAME_MAX];
	size_t	n;

	if (arg[0] != '-' || arg[1] != '-' || arg[2] == '\0')
		return NULL;
	n = strcspn(arg + 2, "=");
	if (n >= sizeof(name))
		return NULL;
	memcpy(name, arg + 2, n);
	name[n] = '\0';
	*namelen = (int)n + 2;
	return conf_find(table, name);
}

/*
 * One pass over argv collects everything; only then are the defaults, the
 * file and the collected options applied, in that order, so an option
 * given before -c still overrides the file.
 */
int
conf_cli_parse(const struct conf_key *table, void *cfg, struct conf_cli *cli,
    int argc, char **argv, char *err, size_t errlen)
{
	struct conf_pending	*pend = NULL;
	const struct conf_key	*k;
	const char		*arg;
	char			 where[CONF_NAME_MAX + 8];
	int			 i, j, n, npend = 0, words_only = 0, rc = -1;
	int			 namelen = 0, failed = 0;

	cli->config_path = NULL;
	cli->check_config = cli->help = cli->version = cli->verbose = 0;
	cli->nwords = 0;
	if (argc > 0 && (pend = calloc((size_t)argc, sizeof(*pend))) == NULL) {
		conf_err(err, errlen, "out of memory");
		goto out;
	}

	for (i = 1; i < argc && !failed; i++) {
		arg = argv[i];
		if (words_only || arg[0] != '-') {
			if (cli->nwords >= (int)(sizeof(cli->words) /
			    sizeof(cli->words[0]))) {
				conf_err(err, errlen, "too many arguments "
				    "(at most %zu)", sizeof(cli->words) /
				    sizeof(cli->words[0]));
				failed = 1;
			} else
				cli->words[cli->nwords++] = arg;
		} else if (strcmp(arg, "--") == 0)
			words_only = 1;
		else if (conf_is_help(arg))
			cli->help = 1;
		else if (conf_is_version(arg))
			cli->version = 1;
		else if ((n = conf_verbose_count(arg)) > 0)
			cli->verbose += n;
		else if (strcmp(arg, "--check-config") == 0)
			cli->check_config = 1;
		else if (strcmp(arg, "-c") == 0 ||
		    strcmp(arg, "--config") == 0) {
			if (i + 1 >= argc) {
				conf_err(err, errlen,
				    "option '%s' needs a value", arg);
				failed = 1;
			} else
				cli->config_path = argv[++i];
		} else if (strncmp(arg, "--config=", 9) == 0) {
			if (arg[9] == '\0') {
				conf_err(err, errlen,
				    "option '--config' needs a value");
				failed = 1;
			} else
				cli->config_path = arg + 9;
		} else if ((k = conf_cli_key(table, arg, &namelen)) != NULL) {
			pend[npend].key = k;
			pend[npend].opt = arg;
			pend[npend].optlen = namelen;
			if (arg[namelen] == '=')
				pend[npend].value = arg + namelen + 1;
			else if (i + 1 < argc)
				pend[npend].value = argv[++i];
			else {
				conf_err(err, errlen,
				    "option '%s' needs a value", arg);
				failed = 1;
				continue;
			}
			npend++;
		} else {
			n = 0;
			if (cli->extra != NULL) {
				if (err != NULL && errlen > 0)
					err[0] = '\0';
				n = cli->extra(argc, argv, i, cli->extra_arg,
				    err, errlen);
			}
			if (n > argc - i) {
				conf_err(err, errlen,
				    "option '%s' needs a value", arg);
				failed = 1;
			} else if (n > 0)
				i += n - 1;
			else if (n < 0) {
				if (err != NULL && errlen > 0 &&
				    err[0] == '\0')
					conf_err(err, errlen,
					    "invalid option '%s'", arg);
				failed = 1;
			} else {
				conf_err(err, errlen,
				    "unknown option '%.*s' (see --help)",
				    (int)strcspn(arg, "="), arg);
				failed = 1;
			}
		}
	}

	/* Someone asking for help gets it, even after a bad option. */
	for (j = i; j < argc && failed; j++) {
		if (conf_is_help(argv[j]))
			cli->help = 1;
		else if (conf_is_version(argv[j]))
			cli->version = 1;
	}
	if (cli->help || cli->version) {
		rc = 0;
		goto out;
	}
	if (failed)
		goto out;

	if (conf_defaults(table, cfg, err, errlen) == -1)
		goto out;
	if (cli->config_path != NULL && conf_load_file(table, cfg,
	    cli->config_path, cli->section, cli->other, err, errlen) == -1)
		goto out;
	for (i = 0; i < npend; i++) {
		snprintf(where, sizeof(where), "%.*s", pend[i].optlen,
		    pend[i].opt);
		if (conf_apply(pend[i].key, cfg, pend[i].value, where, err,
		    errlen) == -1)
			goto out;
	}
	rc = 0;
out:
	free(pend);
	return rc;
}

void
conf_print_help(const struct conf_key *table, FILE *f)
{
	const struct conf_key	*k;
	size_t			 i;
	int			 n;

	for (k = table; k->name != NULL; k++) {
		n = fprintf(f, "  --%s VALUE", k->name);
		if (n < 0)
			return;
		if (n < CONF_HELP_COL)
			fprintf(f, "%*s", CONF_HELP_COL - n, "");
		else
			fprintf(f, "\n%*s", CONF_HELP_COL, "");
		fputs(k->help != NULL ? k->help : "", f);
		if (k->type == CONF_ENUM && k->choices != NULL) {
			fputs(" (one of:", f);
			for (i = 0; k->choices[i] != NULL; i++)
				fprintf(f, "%s %s", i > 0 ? "," : "",
				    k->choices[i]);
			fputs(")", f);
		}
		if (k->def != NULL && k->def[0] != '\0')
			fprintf(f, " (default: %s)", k->def);
		fputc('\n', f);
	}
}

/* Strings that would not read back unchanged from INI get quotes. */
static int
conf_needs_quotes(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && (conf_blank(s[0]) || s[0] == '"' ||
	    conf_blank(s[n - 1]) || strpbrk(s, ";#") != NULL);
}

void
conf_dump(const struct conf_key *table, const void *cfg, FILE *f)
{
	const struct conf_key	*k;
	const char		*s;
	int			 v;
	size_t			 i;

	for (k = table; k->name != NULL; k++) {
		fprintf(f, "%s = ", k->name);
		switch (k->type) {
		case CONF_STRING:
			s = *(char *const *)conf_cfield(cfg, k);
			if (s == NULL)
				s = "";
			fprintf(f, conf_needs_quotes(s) ? "\"%s\"\n" : "%s\n",
			    s);
			break;
		case CONF_BOOL:
			fprintf(f, "%s\n", *(const int *)conf_cfield(cfg, k) ?
			    "yes" : "no");
			break;
		case CONF_ENUM:
			v = *(const int *)conf_cfield(cfg, k);
			for (i = 0; k->choices != NULL &&
			    k->choices[i] != NULL && (int)i != v; i++)
				;
			if (k->choices != NULL && k->choices[i] != NULL)
				fprintf(f, "%s\n", k->choices[i]);
			else
				fprintf(f, "%d\n", v);
			break;
		default:
			fprintf(f, "%llu\n", (unsigned long long)
			    *(const uint64_t *)conf_cfield(cfg, k));
			break;
		}
	}
}
