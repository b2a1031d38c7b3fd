/* SPDX-License-Identifier: MIT */
/*
 * For the multi-rank tests that link the runtime itself (mr_wire, mr_reply_fail): doing
 * something to the transport as the rank's event loop would, holding its baton (and with
 * the transport's sleep paused if the loop lent it while asleep).
 */
#ifndef DSM_TESTS_MR_LOOP_H
#define DSM_TESTS_MR_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transport/transport.h"

static inline void mr_as_loop(struct dsm_rt *rt, void (*fn)(struct dsm_rt *rt, void *arg),
                              void *arg)
{
	bool lent;

	atomic_fetch_add(&rt->loop.drivers, 1);
	pthread_mutex_lock(&rt->loop.baton);
	atomic_fetch_sub(&rt->loop.drivers, 1);
	lent = atomic_load(&rt->loop.asleep) && rt->loop.tp_asleep;
	if (lent)
		dsm_tp_sleep_pause(rt->tp);
	fn(rt, arg);
	if (lent)
		(void)dsm_tp_sleep_resume(rt->tp);
	pthread_mutex_unlock(&rt->loop.baton);
	dsm_rt_msg_wake(rt);
}

#endif
