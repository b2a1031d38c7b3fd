/* SPDX-License-Identifier: MIT */
/* Monotonic time in nanoseconds: the one clock of every layer. */
#ifndef DSM_COMMON_TIME_H
#define DSM_COMMON_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t dsm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A few milliseconds coarse and much cheaper (no vDSO clock read): for timeouts and
 * periodic checks on hot paths. */
static inline uint64_t dsm_now_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
