/* SPDX-License-Identifier: MIT */
/*
 * Read-ahead and prefetch hints: lines asked for before a thread faults on them.
 *
 * A prefetched line is requested exactly as a read fault would request it (a READ_FAULT
 * event to the engine, for a line in state I), so it arrives as an ordinary read copy and
 * the protocol keeps it coherent like any other: invalidations reach it, and the model
 * checker's read faults already cover it. What differs is that no thread waits for it:
 * its grant wakes nobody, and its hold ends as soon as another rank asks (hold.c).
 *
 * Read-ahead: the loop watches the read misses. A miss next to a recent one (within 16
 * lines, either direction) starts a stream; a stride of one line is taken at the second
 * miss, another stride once it repeats. A stream keeps its next `window` lines requested
 * ahead of its latest miss, never past the allocation (nor, in another rank's dsm_alloc
 * slice, past the 1 GiB chunk of the miss); the window doubles while the stream reaches
 * its lines and halves when they were invalidated before it got there (the kernel's
 * readahead does the same with pages). A line invalidated unused more often than used
 * (two strikes) is skipped: another rank writes it, and taking it would only slow that
 * rank down (prefetch.c, the shunned table).
 *
 * Hints (dsm_prefetch): ranges queued by application threads, requested by the loop in
 * the background, at most DSM_RT_PF_INFLIGHT lines in flight at once.
 *
 * Everything here runs on the loop (whoever holds the baton), except dsm_prefetch()'s
 * queueing and the quiesce at finalize.
 */
#ifndef DSM_RT_PREFETCH_H
#define DSM_RT_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "coherence/coherence.h"

struct dsm_rt;

/* Sets up read-ahead with windows of at most @max_lines lines (0: read-ahead off; hints
 * are served either way). 0 or -ENOMEM. */
int dsm_rt_prefetch_init(struct dsm_rt *rt, unsigned max_lines);
void dsm_rt_prefetch_fini(struct dsm_rt *rt);

/* The loop read a fault on @line of allocation @span from userfaultfd, and gave it to the
 * engine. */
void dsm_rt_prefetch_fault(struct dsm_rt *rt, uint64_t line, const dsm_coh_span_t *span,
                           bool write);
/* @line is installed (dsm_rt_fault_end): true if it was a prefetch nobody faulted on. */
bool dsm_rt_prefetch_arrived(struct dsm_rt *rt, uint64_t line);
/* A read-ahead request for @line is on its way (no thread's fault asked for it first). */
bool dsm_rt_prefetch_in_flight(struct dsm_rt *rt, uint64_t line);
/* A rank died: forget the read-ahead requests that went to it. */
void dsm_rt_prefetch_peer_dead(struct dsm_rt *rt);
/* @line is zapped (invalidated, or given up to a writer). */
void dsm_rt_prefetch_zapped(struct dsm_rt *rt, uint64_t line);
/* The loop: requests queued hint lines; returns how many it looked at. */
int dsm_rt_prefetch_drain(struct dsm_rt *rt);
/* The loop, before it sleeps: hint lines wait that it could ask for now. */
bool dsm_rt_prefetch_pending(struct dsm_rt *rt);

/* An application thread (dsm_prefetch): queues lines [first, first + n). 0, or -EAGAIN when
 * DSM_RT_PF_HINTS ranges wait already. */
int dsm_rt_prefetch_hint(struct dsm_rt *rt, uint64_t first, uint64_t n);

/* An application thread: stops new prefetches and waits until none is in flight (before
 * the collective of dsm_finalize, so that no grant arrives after the loops stop). */
void dsm_rt_prefetch_quiesce(struct dsm_rt *rt);

#endif
