/* SPDX-License-Identifier: MIT */
/*
 * Live checkpoints of the heap (dsm_checkpoint) and restarts from them (DSM_RESTART).
 * docs/CHECKPOINT.md has the files; ckpt.c says how a snapshot stays consistent while the
 * program runs. The loop calls the hooks below: each costs one load while no snapshot is
 * being written.
 */
#ifndef DSM_RT_CKPT_H
#define DSM_RT_CKPT_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/rt.h"

int dsm_rt_ckpt_init(struct dsm_rt *rt);
void dsm_rt_ckpt_fini(struct dsm_rt *rt);

/* ---- the loop's hooks ---- */

/* A fault read from the userfaultfd: parked while a checkpoint is agreed, or, for a line of
 * the snapshot held here M or E that a thread writes, saved first (and, for M, let go
 * here). True when the fault needs nothing more. */
bool dsm_rt_ckpt_fault(struct dsm_rt *rt, const struct dsm_rt_fault *f, uint64_t line);
/* Before the engine handles @ev: the line it concerns is decided (whether this rank saves it,
 * from where) while its state is still the snapshot's. */
void dsm_rt_ckpt_event(struct dsm_rt *rt, const dsm_coh_event_t *ev);
/* Before the mapping (@src DSM_RT_CK_MAP: a zap) or the home segment (DSM_RT_CK_HOME: a
 * store) of @line changes: the snapshot's copy of it is saved first. */
void dsm_rt_ckpt_before(struct dsm_rt *rt, uint64_t line, enum dsm_rt_ck_dec src);
/* While a checkpoint is agreed: no prefetch, no eviction (they would start requests). */
static inline bool dsm_rt_ckpt_frozen(const struct dsm_rt *rt)
{
	return rt->ckpt.frozen;
}
/* The loop's turn: answers the step that waits for the protocol to come to rest. */
int dsm_rt_ckpt_poll(struct dsm_rt *rt);

/* ---- restart (dsm_init) ---- */

/* Before the heap is reserved, collective: reads DSM_RESTART's manifest (rank 0's names the
 * snapshot for all), checks the settings against it and sets where the heap must go. 0
 * without DSM_RESTART; -EINVAL (logged where found) on every rank if refused. */
int dsm_rt_ckpt_restart_check(struct dsm_rt *rt);
/* Once the heap, the allocators and the engine are up, before the loop runs, collective:
 * this rank's files are checked, then the allocations are restored and the lines exchanged
 * to their homes. 0 or a negative error (logged), after which dsm_init fails everywhere. */
int dsm_rt_ckpt_restore(struct dsm_rt *rt);

/* dsm_finalize: the snapshot being written becomes durable first. Collective. */
int dsm_rt_ckpt_wait(struct dsm_rt *rt);

#endif
