/* SPDX-License-Identifier: MIT */
/*
 * The event loop thread: one per rank, serving this rank's faults and the
 * other ranks' requests. loop.c holds its phases; the work of each is in the
 * file named for it.
 */
#ifndef DSM_RT_LOOP_H
#define DSM_RT_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct dsm_rt;

struct dsm_rt_loop {
	pthread_t thread;
	int epfd;
	atomic_bool stop;
	uint64_t spin_ns; /* how long to poll for a due reply before sleeping */
	bool may_spin;    /* ranks on this node <= cores: spin briefly while a reply is due */
};

int dsm_rt_loop_start(struct dsm_rt *rt);
void dsm_rt_loop_stop(struct dsm_rt *rt);

#endif
