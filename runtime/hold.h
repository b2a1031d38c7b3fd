/* SPDX-License-Identifier: MIT */
/*
 * The progress guarantee (README, "Progress"): a line granted to faulting
 * threads is held until each of them has been scheduled in again (its access
 * has then happened) or DSM_HOLD_US has passed. This file keeps the threads
 * waiting on each pending fault, with how often each had run when it
 * faulted, and the holds that follow an install. It only keeps books: the
 * loop feeds the holds that are due to the engine.
 */
#ifndef DSM_RT_HOLD_H
#define DSM_RT_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dsm_rt;

void dsm_rt_holds_init(struct dsm_rt *rt);
void dsm_rt_holds_fini(struct dsm_rt *rt);

/* Thread @tid (0: unknown) faulted on @line. */
void dsm_rt_fault_begin(struct dsm_rt *rt, uint64_t line, int32_t tid);
/* A thread's fault on @line waits for its install. */
bool dsm_rt_fault_pending(struct dsm_rt *rt, uint64_t line);
/* Reads how often @tid has run, for the hold (see hold.c for when). */
void dsm_rt_fault_sample(struct dsm_rt *rt, uint64_t line, int32_t tid);
/* @line is installed: its latency is counted and its waiters kept for the hold. */
void dsm_rt_fault_end(struct dsm_rt *rt, uint64_t line);
/* (Re)arms the hold of @line (the engine's HOLD action). */
void dsm_rt_hold_add(struct dsm_rt *rt, uint64_t line);
/*
 * The same for a line that only this rank's own requests wait for (multiple-writer memory):
 * where its threads are known the hold lasts until they have all run, or @ns at most, since
 * with more threads than cores a woken thread may wait a scheduler's time slice (ms) to
 * run; where they are not, DSM_HOLD_US.
 */
void dsm_rt_hold_add_own(struct dsm_rt *rt, uint64_t line, uint64_t ns);
/* Ends the holds of lines [first, first + n) at once (their memory was freed). */
void dsm_rt_hold_forget(struct dsm_rt *rt, uint64_t first, uint64_t n);
/*
 * Walks the holds from *@i: the next that is due at @now (its time passed, or its threads
 * have run while a request waits for the line) is removed and returned in *@line_p. false
 * when none is left; *@next_p is then when to look again (UINT64_MAX: never). Start with
 * *@i = 0 and *@next_p = UINT64_MAX; holds added meanwhile are seen.
 */
bool dsm_rt_hold_next_due(struct dsm_rt *rt, uint64_t now, size_t *i, uint64_t *line_p,
                          uint64_t *next_p);

#endif
