/*
 * check.h: the smallest test harness that says what failed and where.
 *
 *   CHECK(expr)          records a failure and goes on
 *   CHECK_EQ_U64(a, b)   same, printing both values
 *   TEST_MAIN(...)       runs each test function, exits 1 if any failed
 */
#ifndef FLOWPOST_CHECK_H
#define FLOWPOST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(expr) do {						\
	if (!(expr)) {							\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n",		\
		    __FILE__, __LINE__, #expr);				\
		check_failures++;					\
	}								\
} while (0)

#define CHECK_EQ_U64(a, b) do {						\
	uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);	\
	if (check_a_ != check_b_) {					\
		fprintf(stderr, "%s:%d: CHECK failed: %s == %s "	\
		    "(%" PRIu64 " != %" PRIu64 ")\n", __FILE__,		\
		    __LINE__, #a, #b, check_a_, check_b_);		\
		check_failures++;					\
	}								\
} while (0)

typedef void (*check_fn)(void);

static inline int
check_run(const char *const *names, const check_fn *fns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int before = check_failures;

		fns[i]();
		fprintf(stderr, "%s %s\n",
		    check_failures == before ? "ok  " : "FAIL", names[i]);
	}
	return check_failures ? 1 : 0;
}

#define TEST_ENTRY(fn) #fn
#define TEST_MAIN(...)							\
	int main(void)							\
	{								\
		const check_fn fns[] = { __VA_ARGS__ };			\
		const char *names_all = #__VA_ARGS__;			\
		const char *names[sizeof(fns) / sizeof(fns[0])];	\
		static char copy[4096];					\
		size_t n = sizeof(fns) / sizeof(fns[0]), k = 0;		\
		char *p = copy;						\
		snprintf(copy, sizeof(copy), "%s", names_all);		\
		while (k < n && p != NULL) {				\
			while (*p == ' ' || *p == ',')			\
				p++;					\
			names[k++] = p;					\
			p = strchr(p, ',');				\
			if (p != NULL)					\
				*p++ = '\0';				\
		}							\
		while (k < n)						\
			names[k++] = "?";				\
		return check_run(names, fns, n);			\
	}

#endif
