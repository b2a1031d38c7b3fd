/* SPDX-License-Identifier: MIT */
/*
 * The line profile (DSM_PROFILE=path): per line of the heap, what happened to it on this
 * rank (faults, and at which words; invalidations and downgrades; lines and diffs that
 * came in, from whom, and went out), and every allocation with its call site. Each rank
 * writes its own file, path.RANK.dsmprof, at dsm_finalize; `dsm-prof path` merges them and
 * says which lines and allocations move, between which ranks, and whether that is false
 * or true sharing (tools/dsm-prof.c; the format is in docs/PROFILE.md).
 *
 * Line events come from whoever runs the loop's turns (the baton serializes them), so the
 * line table has no lock; allocations come from application threads, under a mutex. With
 * no DSM_PROFILE every hook is one load of rt->prof.
 */
#ifndef DSM_RT_PROFILE_H
#define DSM_RT_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

enum dsm_rt_prof_ev {
	DSM_RT_PROF_INVAL,     /* this rank's copy was dropped (zapped, or an acquire's drop) */
	DSM_RT_PROF_DOWNGRADE, /* this rank's writable copy became read-only for a reader */
	DSM_RT_PROF_RECV,      /* the line came in from @peer */
	DSM_RT_PROF_SENT,      /* the line went out to @peer */
	DSM_RT_PROF_DIFF_OUT,  /* a diff of it went to its home @peer (multiple-writer) */
	DSM_RT_PROF_DIFF_IN,   /* a diff of it from @peer merged here, its home */
};

enum dsm_rt_prof_kind {
	DSM_RT_PROF_ALLOC,        /* dsm_alloc */
	DSM_RT_PROF_ALL_ALLOC,    /* dsm_all_alloc */
	DSM_RT_PROF_ALL_ALLOC_MW, /* dsm_all_alloc_mw */
};

/* Opens this rank's file (a bad path fails dsm_init here, not at the end), or nothing
 * when DSM_PROFILE is unset. 0 or a negative code, logged. */
int dsm_rt_prof_init(struct dsm_rt *rt);
/* Writes the file: the loop has stopped. */
void dsm_rt_prof_write(struct dsm_rt *rt);
void dsm_rt_prof_fini(struct dsm_rt *rt);

void dsm_rt_prof_fault_slow(struct dsm_rt *rt, uint64_t line, uint64_t addr, bool write);
void dsm_rt_prof_event_slow(struct dsm_rt *rt, uint64_t line, enum dsm_rt_prof_ev ev, int peer);
void dsm_rt_prof_alloc_slow(struct dsm_rt *rt, const void *p, size_t size,
                            enum dsm_rt_prof_kind kind, int dist, const void *site);
void dsm_rt_prof_free_slow(struct dsm_rt *rt, const void *p);

/* A fault at @addr in @line. */
static inline void dsm_rt_prof_fault(struct dsm_rt *rt, uint64_t line, uint64_t addr, bool write)
{
	if (rt->prof)
		dsm_rt_prof_fault_slow(rt, line, addr, write);
}

static inline void dsm_rt_prof_event(struct dsm_rt *rt, uint64_t line, enum dsm_rt_prof_ev ev,
                                     int peer)
{
	if (rt->prof)
		dsm_rt_prof_event_slow(rt, line, ev, peer);
}

/* An allocation made here, by the code at @site (a return address). */
static inline void dsm_rt_prof_alloc(struct dsm_rt *rt, const void *p, size_t size,
                                     enum dsm_rt_prof_kind kind, int dist, const void *site)
{
	if (rt->prof)
		dsm_rt_prof_alloc_slow(rt, p, size, kind, dist, site);
}

static inline void dsm_rt_prof_free(struct dsm_rt *rt, const void *p)
{
	if (rt->prof)
		dsm_rt_prof_free_slow(rt, p);
}

#endif
