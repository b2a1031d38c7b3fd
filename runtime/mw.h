/* SPDX-License-Identifier: MIT */
/*
 * Multiple-writer memory (README, "Multiple-writer memory"): allocations from
 * dsm_all_alloc_mw, coherent at synchronization only. Its lines never enter the
 * coherence engine. A rank fetches a line from its home (read-only, so the
 * first store faults), keeps a twin of it at the first store and lets the
 * stores go; a release sends each written line's diff to its home, which
 * merges the diffs of every writer; an acquire drops the copies that others
 * may have written since (self-invalidation: every line homed elsewhere, and
 * the lines homed here that another rank's diff changed), so the next access
 * fetches the merged line.
 *
 * The loop owns every part of it; application threads ask through requests
 * (dsm_rt_mw_request) and skip them when there is nothing to do.
 */
#ifndef DSM_RT_MW_H
#define DSM_RT_MW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/wire.h"

struct dsm_rt;
struct dsm_rt_fault;

int dsm_rt_mw_init(struct dsm_rt *rt);
void dsm_rt_mw_fini(struct dsm_rt *rt);

/* The largest MW message for lines of @line_size bytes (the transport is opened for it). */
size_t dsm_rt_mw_msg_max(size_t line_size);

/* The loop: a fault on @line (homed at @home). Returns false when the line is not
 * multiple-writer memory (the engine's), true once the fault is taken care of. */
bool dsm_rt_mw_fault(struct dsm_rt *rt, const struct dsm_rt_fault *f, uint64_t line, int home);

/* The loop: reads the faults queued on the asynchronous userfaultfd (DSM_MW_TRACK=async) and
 * resolves each; returns how many. */
int dsm_rt_mw_drain(struct dsm_rt *rt);

/* The loop: whether a multiple-writer line is held for its woken threads (hold.c). */
bool dsm_rt_mw_holding(struct dsm_rt *rt);

/* The loop: whether a release or an acquire waits for such a hold to end. */
bool dsm_rt_mw_waits(struct dsm_rt *rt);

/* The loop: whether @line is multiple-writer memory. */
bool dsm_rt_mw_owns(struct dsm_rt *rt, uint64_t line);
/* Rank @dead died (DSM_ON_DEATH=continue): the lines it served are lost here, and no
 * release waits for its acknowledgements. */
void dsm_rt_mw_peer_dead(struct dsm_rt *rt, int dead);

/* Application threads: @op (ADD, DEL, RELEASE, ACQUIRE) done by this rank's loop. */
int dsm_rt_mw_request(struct dsm_rt *rt, enum dsm_rt_mw_op op, uint64_t addr, uint64_t len);

/* Application threads: a release and an acquire, at no cost when there is nothing to do
 * (no multiple-writer memory written, or held). */
void dsm_rt_mw_release(struct dsm_rt *rt);
void dsm_rt_mw_acquire(struct dsm_rt *rt);

/* On the loop (or before it runs: a restart): @n lines from @first become multiple-writer
 * memory here. 0, -EINVAL or -ENOMEM. */
int dsm_rt_mw_add_range(struct dsm_rt *rt, uint64_t first, uint64_t n);
/* A checkpoint's TAKE, on the loop: the master copies' bytes go into their home copies (how
 * many). */
uint64_t dsm_rt_mw_ckpt_take(struct dsm_rt *rt);

#endif
