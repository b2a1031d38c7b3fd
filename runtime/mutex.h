/* SPDX-License-Identifier: MIT */
/*
 * dsm_mutex_t: a FIFO queue of waiters at the home of the mutex's address,
 * so that locking never moves the page that holds it. A free mutex is taken
 * at its home with a compare-and-swap; every other operation is a request to
 * the home's loop, which answers when the lock is the caller's (mutex.c).
 */
#ifndef DSM_RT_MUTEX_H
#define DSM_RT_MUTEX_H

struct dsm_rt;

int dsm_rt_mutex_init(struct dsm_rt *rt);
void dsm_rt_mutex_fini(struct dsm_rt *rt);

/*
 * A remote unlock is a message nobody waits for. dsm_rt_mutex_fence() returns once every
 * home this rank sent one to has carried it out (one round trip to each such home, none if
 * there is none), so that what comes after, a collective, sees those mutexes free.
 */
int dsm_rt_mutex_fence(struct dsm_rt *rt);
/* Rank @dead died: its waits go, and the mutexes it held pass on (DSM_ERR_PEER_DEAD). */
void dsm_rt_mutex_peer_dead(struct dsm_rt *rt, int dead);

#endif
