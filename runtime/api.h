/* SPDX-License-Identifier: MIT */
/*
 * The public calls that are neither init and finalize (init.c), nor
 * collectives (coll.c), mutexes (mutex.c) or counters (stats.c): who am I,
 * what runs, where is home, and the heap's allocation calls.
 */
#ifndef DSM_RT_API_H
#define DSM_RT_API_H

struct dsm_rt;

/* A dsm_free of memory in another rank's slice is sent there: its handler. */
void dsm_rt_api_init(struct dsm_rt *rt);

#endif
