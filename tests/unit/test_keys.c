/*
 * test_keys.c: the keys file parser, lookups and the reload swap.
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "keys.h"
#include "util.h"

#define HEX_A	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B	"FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100"

static int
parse(const char *text, struct keys **k, char *err, size_t errlen)
{
	err[0] = '\0';
	return keys_parse("gw.keys", text, strlen(text), k, err, errlen);
}

static void
test_valid(void)
{
	struct keys	*k = NULL;
	const uint8_t	*key;
	char		 err[256];

	CHECK(parse("# clients of site A\n"
	    "\n"
	    "kit-02 " HEX_B "   # uppercase hex is fine\n"
	    "   \t\n"
	    "kit-01\t" HEX_A "\r\n"
	    "a.b_c-9 " HEX_A, &k, err, sizeof(err)) == 0);
	CHECK_EQ_U64(keys_count(k), 3);
	/* Sorted ids. */
	CHECK(strcmp(keys_id(k, 0), "a.b_c-9") == 0);
	CHECK(strcmp(keys_id(k, 1), "kit-01") == 0);
	CHECK(strcmp(keys_id(k, 2), "kit-02") == 0);
	CHECK(keys_id(k, 3) == NULL);

	key = keys_find(k, "kit-01");
	CHECK(key != NULL && key[0] == 0x00 && key[31] == 0x1f);
	key = keys_find(k, "kit-02");
	CHECK(key != NULL && key[0] == 0xff && key[31] == 0x00);
	CHECK(keys_find(k, "kit-03") == NULL);
	CHECK(keys_find(k, "kit-0") == NULL);
	CHECK(keys_find(k, "") == NULL);
	keys_unref(k);
}

static void
test_empty(void)
{
	struct keys	*k = NULL;
	char		 err[256];

	CHECK(parse("# nobody yet\n\n", &k, err, sizeof(err)) == 0);
	CHECK_EQ_U64(keys_count(k), 0);
	CHECK(keys_find(k, "kit-01") == NULL);
	keys_unref(k);
}

/* Each bad file fails with file:line and a reason. */
static void
test_errors(void)
{
	static const struct {
		const char	*text;
		const char	*want;
	} cases[] = {
		{ "kit-01 " HEX_A "\n# x\nkit-01 " HEX_B "\n",
		  "gw.keys:3: client kit-01 already defined on line 1" },
		{ "\nkit-01 0011\n", "gw.keys:2: client kit-01: key must be" },
		{ "kit-01 " HEX_A "00\n", "gw.keys:1: client kit-01: key must" },
		{ "kit-01 " "zz0102030405060708090a0b0c0d0e0f101112131415161718"
		  "191a1b1c1d1e1f\n", "gw.keys:1: client kit-01: key must" },
		{ "kit/01 " HEX_A "\n", "gw.keys:1: bad client id" },
		{ "kit-01\n", "gw.keys:1: expected '<client_id> <64 hex" },
		{ "kit-01 " HEX_A " extra\n",
		  "gw.keys:1: extra text after the key" },
		{ "# ok\n\n\nkit-" "0123456789012345678901234567890123456789"
		  "01234567890123456789012345 " HEX_A "\n",
		  "gw.keys:4: bad client id" },
	};
	struct keys	*k;
	char		 err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k = NULL;
		CHECK(parse(cases[i].text, &k, err, sizeof(err)) == -1);
		CHECK(k == NULL);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) {
			fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
			CHECK(0);
		}
	}

	/* A NUL byte inside a line. */
	k = NULL;
	CHECK(keys_parse("gw.keys", "kit-01 \0x\n", 10, &k, err,
	    sizeof(err)) == -1);
	CHECK(strncmp(err, "gw.keys:1: NUL", 14) == 0);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
test_load_file(void)
{
	struct keys	*k = NULL;
	const char	*tmp = getenv("TMPDIR");
	char		 dir[256], path[300], err[512];
	static const char text[] = "kit-01 " HEX_A "\n";

	snprintf(dir, sizeof(dir), "%s/fp-test-keys-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	CHECK(util_write_atomic(dir, "gw.keys", text, sizeof(text) - 1) == 0);
	snprintf(path, sizeof(path), "%s/gw.keys", dir);
	chmod(path, 0600);
	CHECK(keys_load(path, &k, err, sizeof(err)) == 0);
	CHECK_EQ_U64(keys_count(k), 1);
	keys_unref(k);

	/* Missing file: the message names it. */
	snprintf(path, sizeof(path), "%s/missing.keys", dir);
	k = NULL;
	CHECK(keys_load(path, &k, err, sizeof(err)) == -1);
	CHECK(strstr(err, "missing.keys") != NULL);
	CHECK(k == NULL);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * A reload swaps in a new table while a request still holds the old one:
 * the old key stays valid until that request lets go.
 */
static void
test_store_swap(void)
{
	struct keys_store	 s;
	struct keys		*a = NULL, *b = NULL, *held, *now;
	const uint8_t		*key;
	char			 err[256];

	CHECK(parse("kit-01 " HEX_A "\n", &a, err, sizeof(err)) == 0);
	CHECK(parse("kit-02 " HEX_B "\n", &b, err, sizeof(err)) == 0);
	CHECK(keys_store_init(&s, a) == 0);

	held = keys_store_get(&s);
	key = keys_find(held, "kit-01");
	CHECK(key != NULL);

	keys_store_swap(&s, b);
	now = keys_store_get(&s);
	CHECK(keys_find(now, "kit-01") == NULL);
	CHECK(keys_find(now, "kit-02") != NULL);
	keys_unref(now);

	/* The held table still answers, with the same bytes. */
	CHECK(keys_find(held, "kit-01") == key);
	CHECK(key[0] == 0x00 && key[31] == 0x1f);
	keys_unref(held);
	keys_store_destroy(&s);
}

TEST_MAIN(test_valid, test_empty, test_errors, test_load_file,
    test_store_swap)
