/* SPDX-License-Identifier: MIT */
#include "runtime/fatal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "runtime/rt.h"

void dsm_rt_fatal(struct dsm_rt *rt, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	DSM_LOG(DSM_LOG_ERROR, "%s", buf);
	if (rt && rt->tp)
		dsm_tp_abandon(rt->tp);
	_exit(DSM_RT_EXIT_FATAL);
}

void dsm_rt_peer_dead_exit(struct dsm_rt *rt, int peer)
{
	uint64_t until = dsm_now_ns() + 20000000ull;
	struct timespec tick = {0, 200000};

	DSM_LOG(DSM_LOG_ERROR,
	        "rank %d died (killed, exited without dsm_finalize, or unreachable: the transport "
	        "says which above); rank %d exits",
	        peer, rt->rank);
	/* tcp writes the notices from the progress of later polls. */
	while (dsm_now_ns() < until) {
		struct dsm_tp_event ev[16];

		if (dsm_tp_poll(rt->tp, ev, 16) < 0)
			break;
		nanosleep(&tick, NULL);
	}
	dsm_tp_abandon(rt->tp); /* our shm region would outlive us in /dev/shm */
	_exit(DSM_RT_EXIT_PEER_DEAD);
}

static void exit_check(int status, void *arg)
{
	struct dsm_rt *rt = atomic_load_explicit(&dsm_rt_g, memory_order_acquire);

	(void)arg;
	if (status != 0 || rt == NULL)
		return;
	DSM_LOG(DSM_LOG_ERROR,
	        "rank %d exits with status 0 without dsm_finalize: the other ranks take it for "
	        "dead and fail, so it exits with status %d",
	        rt->rank, DSM_RT_EXIT_NO_FINALIZE);
	fflush(NULL);
	if (rt->tp)
		dsm_tp_abandon(rt->tp);
	_exit(DSM_RT_EXIT_NO_FINALIZE);
}

void dsm_rt_exit_guard(void)
{
	static bool registered;

	if (!registered && on_exit(exit_check, NULL) == 0)
		registered = true;
}
