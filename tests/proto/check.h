/*
 * check.h - the few assertion macros the plain-C tests share.
 * A failed CHECK prints where and why and makes the test exit 1 at the end
 * (it keeps going, so one run shows every failure); CHECK_MSG adds a
 * printf-style explanation. REQUIRE is for a condition the rest of the test
 * cannot run without: it stops the test at once (with the last qs_err
 * detail when qs_err.h is included first).
 */
#ifndef QS_TEST_CHECK_H
#define QS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures __attribute__((unused));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

#define CHECK_MSG(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

#ifdef QS_ERR_H
#define CHECK_LAST_ERROR() qs_errdetail()
#else
#define CHECK_LAST_ERROR() "(not known)"
#endif

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s (last error: %s)\n", __FILE__,  \
			        __LINE__, #cond, CHECK_LAST_ERROR());                              \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
		if (check_a_ != check_b_) {                                                        \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n",        \
			        __FILE__, __LINE__, #a, check_a_, #b, check_b_);                   \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                       \
		if (check_a_ == NULL || check_b_ == NULL || strcmp(check_a_, check_b_) != 0) {     \
			fprintf(stderr,                                                            \
			        "%s:%d: CHECK_STR failed:\n  %s = \"%s\"\n  %s = \"%s\"\n",        \
			        __FILE__, __LINE__, #a, check_a_ ? check_a_ : "(null)", #b,        \
			        check_b_ ? check_b_ : "(null)");                                   \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

#define CHECK_DONE()                                                                               \
	do {                                                                                       \
		if (check_failures) {                                                              \
			fprintf(stderr, "%d check(s) failed\n", check_failures);                   \
			return 1;                                                                  \
		}                                                                                  \
		return 0;                                                                          \
	} while (0)

#endif
