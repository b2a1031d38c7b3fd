/* SPDX-License-Identifier: MIT */
/*
 * dsm_mutex_t: a FIFO queue of waiters at the home of the mutex's address,
 * so that locking never moves the page that holds it. Every operation is a
 * request to the home's loop; the home answers when the lock is the
 * caller's.
 */
#ifndef DSM_RT_MUTEX_H
#define DSM_RT_MUTEX_H

struct dsm_rt;

void dsm_rt_mutex_init(struct dsm_rt *rt);
void dsm_rt_mutex_fini(struct dsm_rt *rt);

#endif
