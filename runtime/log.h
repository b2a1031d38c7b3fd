/* SPDX-License-Identifier: MIT */
/*
 * Logging. DSM_LOG(level, fmt, ...) prefixes "[rank] file:line" and writes
 * with one write(2) to stderr: never stdio, because the event loop must not
 * take the stdio lock that an application thread faulting inside printf holds.
 * The level comes from DSM_LOG (error, warn, info, debug; default warn).
 */
#ifndef DSM_RT_LOG_H
#define DSM_RT_LOG_H

#include <errno.h>

enum dsm_rt_log_level {
	DSM_LOG_ERROR = 0,
	DSM_LOG_WARN = 1,
	DSM_LOG_INFO = 2,
	DSM_LOG_DEBUG = 3,
};

int dsm_rt_log_level(void);
void dsm_rt_log_set_rank(int rank);
void dsm_rt_log(int level, int err, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

#define DSM_LOG(level, ...)                                                                        \
	do {                                                                                       \
		if ((level) <= dsm_rt_log_level())                                                 \
			dsm_rt_log((level), 0, __FILE__, __LINE__, __VA_ARGS__);                   \
	} while (0)

/* The same, followed by ": <strerror(errno)>" for the errno of the failed call. */
#define DSM_LOG_ERRNO(level, ...)                                                                  \
	do {                                                                                       \
		int dsm_log_errno_ = errno;                                                        \
		if ((level) <= dsm_rt_log_level())                                                 \
			dsm_rt_log((level), dsm_log_errno_, __FILE__, __LINE__, __VA_ARGS__);      \
		errno = dsm_log_errno_;                                                            \
	} while (0)

#endif
