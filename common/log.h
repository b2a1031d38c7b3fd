/* SPDX-License-Identifier: MIT */
/*
 * Logging. DSM_LOG(level, fmt, ...) prints
 *
 *   libdsm [rank] file.c:line level: component: message
 *
 * with one write(2) to stderr: never stdio, because the event loop must not
 * take the stdio lock that an application thread faulting inside printf
 * holds. The level comes from DSM_LOG (error, warn, info, debug; default
 * warn). The component is the layer's name, set once per library by its
 * build (DSM_LOG_COMPONENT, e.g. "transport"), so messages need not repeat it.
 */
#ifndef DSM_COMMON_LOG_H
#define DSM_COMMON_LOG_H

#include <errno.h>

#ifndef DSM_LOG_COMPONENT
#define DSM_LOG_COMPONENT NULL
#endif

enum dsm_log_level {
	DSM_LOG_ERROR = 0,
	DSM_LOG_WARN = 1,
	DSM_LOG_INFO = 2,
	DSM_LOG_DEBUG = 3,
};

/* The level in force (DSM_LOG, read once; a malformed value counts as warn here and is
 * refused by dsm_init through the settings check). */
int dsm_log_level(void);
/* The rank that prefixes every line from now on; -1: none. */
void dsm_log_set_rank(int rank);
/* @err: an errno value to append as ": strerror(err)", or 0; @component may be NULL. */
void dsm_log_write(int level, int err, const char *component, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define DSM_LOG(level, ...)                                                                        \
	do {                                                                                       \
		if ((level) <= dsm_log_level())                                                    \
			dsm_log_write((level), 0, DSM_LOG_COMPONENT, __FILE__, __LINE__,           \
			              __VA_ARGS__);                                                \
	} while (0)

/* The same, followed by ": <strerror(errno)>" for the errno of the failed call. */
#define DSM_LOG_ERRNO(level, ...)                                                                  \
	do {                                                                                       \
		int dsm_log_errno_ = errno;                                                        \
		if ((level) <= dsm_log_level())                                                    \
			dsm_log_write((level), dsm_log_errno_, DSM_LOG_COMPONENT, __FILE__,        \
			              __LINE__, __VA_ARGS__);                                      \
		errno = dsm_log_errno_;                                                            \
	} while (0)

#endif
