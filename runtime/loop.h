/* SPDX-License-Identifier: MIT */
/*
 * The event loop thread: one per rank, serving this rank's faults and the
 * other ranks' requests. loop.c holds its phases; the work of each is in the
 * file named for it.
 */
#ifndef DSM_RT_LOOP_H
#define DSM_RT_LOOP_H

struct dsm_rt;
struct dsm_rt_req;

int dsm_rt_loop_start(struct dsm_rt *rt);
void dsm_rt_loop_stop(struct dsm_rt *rt);

/*
 * Application threads: hands @req (msg.h) to the loop and waits for its answer. Where the
 * node has a core per rank the caller runs the loop's turns itself meanwhile, for
 * DSM_WAIT_US at most, while the loop thread sleeps: one thread a rank polls and the answer
 * needs no hand-off between threads. Then it sleeps until the loop thread answers.
 */
int dsm_rt_submit(struct dsm_rt *rt, struct dsm_rt_req *req);

#endif
