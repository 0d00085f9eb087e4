/*
 * conf.h: table-driven configuration shared by both daemons.
 *
 * Each program describes its keys in one table of struct conf_key; values
 * land in the program's own config struct at the given offsets.  Sources are
 * applied in this order, later ones winning: the table's defaults, the INI
 * file (-c FILE, parsed with libinih), then `--key value` options.
 *
 * INI sections: keys before any section header, and keys in the section
 * named after the program ("client" or "gateway"), belong to the program;
 * the other program's section is skipped, so one flowpost.conf can serve
 * both.  Any other section or unknown key is an error naming file:line.
 */
#ifndef FLOWPOST_CONF_H
#define FLOWPOST_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_type {
	CONF_STRING,	/* char *, owned by the config struct ("" allowed) */
	CONF_UINT,	/* uint64_t, plain decimal */
	CONF_SIZE,	/* uint64_t bytes, K/M/G suffix */
	CONF_DURATION,	/* uint64_t seconds, s/m/h/d suffix */
	CONF_BOOL,	/* int 0/1 */
	CONF_ENUM,	/* int index into `choices` */
};

struct conf_key {
	const char		*name;
	enum conf_type		 type;
	size_t			 offset;	/* offsetof(struct cfg, field) */
	uint64_t		 min, max;	/* numeric types; 0,0 = any */
	const char		*def;		/* default as text; NULL = unset */
	const char *const	*choices;	/* CONF_ENUM: NULL-terminated */
	const char		*help;		/* one line for --help */
};

#define CONF_ERR_MAX	512

/*
 * Applies every default.  -1 only if a default itself does not parse.
 * cfg must be zeroed or hold values set through this table (old strings
 * are freed); a key without a default becomes NULL or 0.
 */
int	 conf_defaults(const struct conf_key *table, void *cfg, char *err,
	    size_t errlen);
/* Sets one key from text; `where` prefixes errors ("f.conf:12", "--x"). */
int	 conf_set(const struct conf_key *table, void *cfg, const char *key,
	    const char *value, const char *where, char *err, size_t errlen);
/*
 * Loads an INI file; `section` is this program's section name and `other`
 * the section to skip.  Errors name file, line and key.
 */
int	 conf_load_file(const struct conf_key *table, void *cfg,
	    const char *path, const char *section, const char *other,
	    char *err, size_t errlen);
/* Frees the strings the table owns in cfg. */
void	 conf_free(const struct conf_key *table, void *cfg);
/* One line per key: --name VALUE   help (default: ...). */
void	 conf_print_help(const struct conf_key *table, FILE *f);
/* Writes every key = value, for --check-config -v and tests. */
void	 conf_dump(const struct conf_key *table, const void *cfg, FILE *f);
/* The key called `name`, '-' and '_' being the same; NULL if none. */
const struct conf_key *conf_find(const struct conf_key *table,
	    const char *name);

/*
 * Command line.  Understands -c FILE / --config FILE, --check-config,
 * -h/--help, -V/--version, -v (more logging; repeatable), and `--key value`
 * or `--key=value` for every table key ('-' and '_' are the same in names).
 * Options the table does not know are offered to `extra` (may be NULL),
 * which returns the number of argv items it consumed (1 or 2), 0 if it does
 * not know the option either, -1 on a bad value.  Non-option words are
 * collected into `words` (at most `words_max`).
 *
 * The defaults are applied, then the file is loaded and the options applied
 * on top, whatever their order on the line.  With -h or -V nothing is
 * applied and the file is not read.  Returns 0, or -1 with a message in err
 * (exit code 2).
 */
struct conf_cli {
	const char	*progname;	/* "flowpost-client" */
	const char	*section;	/* "client" */
	const char	*other;		/* "gateway" */
	const char	*config_path;	/* out: -c value or NULL */
	int		 check_config;	/* out */
	int		 help;		/* out */
	int		 version;	/* out */
	int		 verbose;	/* out: count of -v */
	const char	*words[8];	/* out: non-option words */
	int		 nwords;	/* out */
	int		(*extra)(int argc, char **argv, int i, void *arg,
			    char *err, size_t errlen);
	void		*extra_arg;
};

int	 conf_cli_parse(const struct conf_key *table, void *cfg,
	    struct conf_cli *cli, int argc, char **argv, char *err,
	    size_t errlen);

#endif
