/* SPDX-License-Identifier: MIT */
/*
 * Faults: the loop reads them from the userfaultfd, maps each address to its
 * line and home, and feeds the engine (engine.c), which asks the home and
 * later installs the line (region.c). A fault that waits for seconds is
 * reported, with what the transport waits for.
 */
#ifndef DSM_RT_FAULT_H
#define DSM_RT_FAULT_H

#include <stdint.h>

struct dsm_rt;
struct dsm_rt_fault;

/* One fault read from the userfaultfd (or parked by a checkpoint, ckpt.c), on its way. */
void dsm_rt_fault_handle(struct dsm_rt *rt, const struct dsm_rt_fault *f);
/* Reads the faults that are queued (a batch at most) and starts resolving each; returns
 * how many. */
int dsm_rt_fault_drain(struct dsm_rt *rt);
/* Logs, once per fault, the faults older than 10 s (at most one report a second). */
void dsm_rt_fault_stall_check(struct dsm_rt *rt, uint64_t now);

#endif
