/*
 * fp-spooldump: opens sealed batches (spool files) with a client key and
 * prints every entry, one line each, tab-separated:
 *
 *   seq  index  recv_us  family  address  src_port  dst_port  len  hex
 *
 * usage: fp-spooldump KEYFILE BATCH...
 *
 * A test tool: it lets integration tests check what the client put into
 * its batches (exporter addresses, ports, capture times) through the real
 * wire_open(), without a gateway.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "wire.h"

#define DUMP_FILE_MAX	(64u * 1024 * 1024)

static int
read_key(const char *path, uint8_t key[WIRE_KEY_LEN])
{
	uint8_t	*data = NULL;
	char	 hex[2 * WIRE_KEY_LEN + 1];
	size_t	 len, i, n = 0;
	int	 rc = -1;

	if (util_read_file(path, 1024, &data, &len) == -1)
		return -1;
	for (i = 0; i < len && n < sizeof(hex) - 1; i++)
		if (!isspace(data[i]))
			hex[n++] = (char)data[i];
	hex[n] = '\0';
	if (n == 2 * WIRE_KEY_LEN && wire_key_parse(hex, key) == 0)
		rc = 0;
	free(data);
	return rc;
}

static int
dump(const char *path, const uint8_t *key)
{
	struct wire_header	 h;
	struct wire_iter	 it;
	struct wire_entry	 e;
	struct buf		 raw;
	enum wire_err		 we;
	uint8_t			*data = NULL;
	char			 addr[INET6_ADDRSTRLEN];
	size_t			 len, i;
	uint32_t		 idx = 0;
	int			 r, rc = -1;

	if (buf_init(&raw, 0, DUMP_FILE_MAX) == -1)
		return -1;
	if (util_read_file(path, DUMP_FILE_MAX, &data, &len) == -1) {
		fprintf(stderr, "fp-spooldump: cannot read %s\n", path);
		goto out;
	}
	if ((we = wire_open(data, len, key, DUMP_FILE_MAX, &h, &raw)) !=
	    WIRE_OK) {
		fprintf(stderr, "fp-spooldump: %s: %s\n", path,
		    wire_strerror(we));
		goto out;
	}
	if (wire_content_entries(raw.data, raw.len, &it) == -1) {
		fprintf(stderr, "fp-spooldump: %s: no entries\n", path);
		goto out;
	}
	while ((r = wire_entry_next(&it, &e)) == 1) {
		if (inet_ntop(e.family == 4 ? AF_INET : AF_INET6, e.addr, addr,
		    sizeof(addr)) == NULL)
			snprintf(addr, sizeof(addr), "?");
		printf("%" PRIu64 "\t%" PRIu32 "\t%" PRIu64 "\t%u\t%s\t%u\t%u\t"
		    "%u\t", h.seq, idx++, e.recv_us, (unsigned int)e.family,
		    addr, (unsigned int)e.src_port, (unsigned int)e.dst_port,
		    (unsigned int)e.len);
		for (i = 0; i < e.len; i++)
			printf("%02x", e.payload[i]);
		putchar('\n');
	}
	if (r == -1 || idx != h.count) {
		fprintf(stderr, "fp-spooldump: %s: bad entries\n", path);
		goto out;
	}
	rc = 0;
 out:
	free(data);
	buf_free(&raw);
	return rc;
}

int
main(int argc, char **argv)
{
	uint8_t	key[WIRE_KEY_LEN];
	int	i, rc = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: fp-spooldump KEYFILE BATCH...\n");
		return 2;
	}
	if (wire_init() == -1 || read_key(argv[1], key) == -1) {
		fprintf(stderr, "fp-spooldump: cannot read the key in %s\n",
		    argv[1]);
		return 2;
	}
	for (i = 2; i < argc; i++)
		if (dump(argv[i], key) == -1)
			rc = 1;
	return rc;
}
