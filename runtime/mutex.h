/* SPDX-License-Identifier: MIT */
/*
 * dsm_mutex_t: a FIFO queue of waiters at the home of the mutex's address,
 * so that locking never moves the page that holds it. Every operation is a
 * request to the home's loop; the home answers when the lock is the
 * caller's.
 */
#ifndef DSM_RT_MUTEX_H
#define DSM_RT_MUTEX_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ring.h"

struct dsm_rt;

struct dsm_rt_mutex_waiter {
	uint32_t rank;
	uint64_t token;
};

/* A mutex this rank is home of, keyed by its address. */
struct dsm_rt_mutex {
	uint64_t addr;
	bool held;
	struct dsm_rt_mutex_waiter holder;
	struct dsm_ring q; /* of struct dsm_rt_mutex_waiter, in arrival order */
	struct dsm_rt_mutex *next;
};

void dsm_rt_mutex_init(struct dsm_rt *rt);
void dsm_rt_mutex_fini(struct dsm_rt *rt);

#endif
