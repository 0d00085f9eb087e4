/*
 * test_buf.c: the ceiling of struct buf holds, growth keeps the bytes.
 */
#include "check.h"

#include "buf.h"

static void
test_init(void)
{
	struct buf b;

	CHECK(buf_init(&b, 0, 100) == 0);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && b.max == 100);
	buf_free(&b);

	CHECK(buf_init(&b, 16, 100) == 0);
	CHECK(b.data != NULL);
	CHECK_EQ_U64(b.cap, 16);
	CHECK_EQ_U64(b.len, 0);
	buf_free(&b);
	CHECK(b.data == NULL && b.cap == 0 && b.len == 0);

	/* An initial size over the ceiling is refused. */
	CHECK(buf_init(&b, 101, 100) == -1);
	buf_free(&b);
}

static void
test_append_grows_and_keeps_bytes(void)
{
	struct buf	 b;
	uint8_t		 chunk[37];
	size_t		 total = 0;
	int		 ok = 1;

	CHECK(buf_init(&b, 0, 1 << 20) == 0);
	for (int i = 0; i < 1000; i++) {
		for (size_t j = 0; j < sizeof(chunk); j++)
			chunk[j] = (uint8_t)(i * 7 + j);
		CHECK(buf_append(&b, chunk, sizeof(chunk)) == 0);
		total += sizeof(chunk);
	}
	CHECK_EQ_U64(b.len, total);
	CHECK(b.cap >= b.len && b.cap <= b.max);
	for (int i = 0; i < 1000; i++)
		for (size_t j = 0; j < sizeof(chunk); j++)
			if (b.data[(size_t)i * sizeof(chunk) + j] !=
			    (uint8_t)(i * 7 + j))
				ok = 0;
	CHECK(ok);

	/* Appending nothing is a no-op that succeeds. */
	CHECK(buf_append(&b, NULL, 0) == 0);
	CHECK_EQ_U64(b.len, total);
	buf_free(&b);
}

static void
test_geometric_growth(void)
{
	struct buf	 b;
	size_t		 reallocs = 0, last_cap = 0;
	uint8_t		 byte = 0xab;

	/* One byte at a time: capacity changes only O(log n) times. */
	CHECK(buf_init(&b, 0, 1 << 20) == 0);
	for (size_t i = 0; i < (1 << 20); i++) {
		CHECK(buf_append(&b, &byte, 1) == 0);
		if (b.cap != last_cap) {
			reallocs++;
			last_cap = b.cap;
		}
	}
	CHECK(reallocs <= 20);
	CHECK_EQ_U64(b.len, 1 << 20);
	CHECK_EQ_U64(b.cap, 1 << 20);
	buf_free(&b);
}

static void
test_ceiling(void)
{
	struct buf	 b;
	uint8_t		 data[300];

	memset(data, 0x5a, sizeof(data));
	CHECK(buf_init(&b, 0, 1000) == 0);
	CHECK(buf_append(&b, data, 300) == 0);
	CHECK(buf_append(&b, data, 300) == 0);
	CHECK(buf_append(&b, data, 300) == 0);
	/* 900 + 300 > 1000: refused, nothing changes. */
	CHECK(buf_append(&b, data, 300) == -1);
	CHECK_EQ_U64(b.len, 900);
	CHECK(b.cap <= 1000);
	/* Filling exactly to the ceiling is allowed. */
	CHECK(buf_append(&b, data, 100) == 0);
	CHECK_EQ_U64(b.len, 1000);
	CHECK_EQ_U64(b.cap, 1000);
	CHECK(buf_append(&b, data, 1) == -1);
	CHECK(buf_reserve(&b, 0) == 0);
	CHECK(buf_reserve(&b, 1) == -1);
	/* A size that would overflow size_t is refused, not wrapped. */
	CHECK(buf_reserve(&b, SIZE_MAX) == -1);

	buf_reset(&b);
	CHECK_EQ_U64(b.len, 0);
	CHECK_EQ_U64(b.cap, 1000);
	CHECK(buf_reserve(&b, 1000) == 0);
	CHECK(buf_reserve(&b, 1001) == -1);
	buf_free(&b);

	/* A zero ceiling holds nothing. */
	CHECK(buf_init(&b, 0, 0) == 0);
	CHECK(buf_append(&b, data, 1) == -1);
	CHECK(buf_reserve(&b, 0) == 0);
	buf_free(&b);
}

static void
test_reserve_never_over_max(void)
{
	struct buf	 b;

	/* Doubling from 256 would pass 300: the step is clamped. */
	CHECK(buf_init(&b, 0, 300) == 0);
	CHECK(buf_reserve(&b, 10) == 0);
	CHECK(b.cap >= 10 && b.cap <= 300);
	b.len = 10;
	CHECK(buf_reserve(&b, 280) == 0);
	CHECK_EQ_U64(b.cap, 300);
	buf_free(&b);

	/* A ceiling under the first allocation size caps that too. */
	CHECK(buf_init(&b, 0, 100) == 0);
	CHECK(buf_append(&b, "x", 1) == 0);
	CHECK(b.cap >= 1 && b.cap <= 100);
	buf_free(&b);
	CHECK(buf_init(&b, 0, 5) == 0);
	CHECK(buf_append(&b, "abcde", 5) == 0);
	CHECK_EQ_U64(b.cap, 5);
	CHECK(memcmp(b.data, "abcde", 5) == 0);
	CHECK(buf_append(&b, "f", 1) == -1);
	buf_free(&b);
}

/* Formatted appends: long lines grow the buffer, the ceiling still holds. */
static void
test_printf(void)
{
	struct buf	 b;
	char		 big[1000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(buf_init(&b, 0, 1500) == 0);
	CHECK(buf_printf(&b, "a=%d ", 42) == 0);
	CHECK_EQ_U64(b.len, 5);
	CHECK(memcmp(b.data, "a=42 ", 5) == 0);
	CHECK(buf_printf(&b, "%s", big) == 0);	/* longer than 256 */
	CHECK_EQ_U64(b.len, 5 + 999);
	CHECK(b.data[5] == 'x' && b.data[5 + 998] == 'x');
	CHECK(buf_printf(&b, "%s", big) == -1);	/* over the ceiling */
	CHECK_EQ_U64(b.len, 5 + 999);		/* nothing half-written */
	buf_free(&b);
}

TEST_MAIN(test_init, test_append_grows_and_keeps_bytes, test_geometric_growth,
    test_ceiling, test_reserve_never_over_max, test_printf)
