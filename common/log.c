/* SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/settings.h"

static atomic_int log_level = -1; /* -1: not read from the environment yet */
static atomic_int log_rank = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int dsm_log_level(void)
{
	int l = atomic_load_explicit(&log_level, memory_order_relaxed);

	if (l < 0) {
		struct dsm_setting_value v;

		/* A malformed DSM_LOG reads as the default here: dsm_init refuses it. */
		dsm_setting_lookup(DSM_SETTING_LOG, &v, NULL, 0);
		l = (int)v.v;
		atomic_store_explicit(&log_level, l, memory_order_relaxed);
	}
	return l;
}

void dsm_log_set_rank(int rank)
{
	atomic_store(&log_rank, rank);
}

void dsm_log_write(int level, int err, const char *component, const char *file, int line,
                   const char *fmt, ...)
{
	char buf[1024];
	const char *base = strrchr(file, '/');
	int rank = atomic_load(&log_rank);
	size_t n = 0;
	int r;
	va_list ap;

	base = base ? base + 1 : file;
	if (rank >= 0)
		r = snprintf(buf, sizeof(buf), "libdsm [%d] %s:%d %s: %s%s", rank, base, line,
		             level_names[level & 3], component ? component : "",
		             component ? ": " : "");
	else
		r = snprintf(buf, sizeof(buf), "libdsm %s:%d %s: %s%s", base, line,
		             level_names[level & 3], component ? component : "",
		             component ? ": " : "");
	n = r > 0 ? (size_t)r : 0;
	va_start(ap, fmt);
	r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	n += r > 0 ? (size_t)r : 0;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (err) {
		r = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err));
		n += r > 0 ? (size_t)r : 0;
		if (n > sizeof(buf) - 2)
			n = sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	/* One write keeps lines of concurrent threads and ranks whole. */
	if (write(STDERR_FILENO, buf, n) < 0)
		return;
}
