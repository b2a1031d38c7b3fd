/* SPDX-License-Identifier: MIT */
/*
 * The event loop thread: one per rank, serving this rank's faults and the
 * other ranks' requests. loop.c holds its phases; the work of each is in the
 * file named for it.
 */
#ifndef DSM_RT_LOOP_H
#define DSM_RT_LOOP_H

struct dsm_rt;

int dsm_rt_loop_start(struct dsm_rt *rt);
void dsm_rt_loop_stop(struct dsm_rt *rt);

#endif
