/* SPDX-License-Identifier: MIT */
/*
 * The heap's allocators. The heap is cut in two: the collective region (the
 * first half) serves dsm_all_alloc, and the second half is cut into one slice
 * per rank for dsm_alloc. Every rank runs the collective allocator on the
 * same calls in the same order, so it returns the same addresses with no
 * communication; the home of a line in a slice is the slice's rank, so it
 * follows from the address alone. Small dsm_alloc objects come from slabs
 * (one line cut into objects of one size class).
 *
 * All metadata lives in malloc'd memory outside the heap: the event loop
 * serves remote frees and must never fault on the heap.
 */
#ifndef DSM_RT_ALLOC_H
#define DSM_RT_ALLOC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dsm.h>

#include "coherence/coherence.h"

struct dsm_rt_extent;
struct dsm_rt_slab;

/* Free extents of one region, in lines, sorted by start. */
struct dsm_rt_freelist {
	struct {
		uint64_t start, len;
	} * v;
	size_t n, cap;
};

#define DSM_RT_NCLASSES 16

struct dsm_rt_alloc {
	pthread_mutex_t lock;
	dsm_coh_layout_t layout;
	unsigned rank, nranks;
	uint64_t coll_lines;  /* lines [0, coll_lines) form the collective region */
	uint64_t slice_lines; /* then nranks slices of this many lines */
	size_t line_size;
	struct dsm_rt_freelist coll_free, local_free;
	struct dsm_rt_extent *ext; /* live allocations, sorted by first line */
	size_t next, next_cap;
	struct dsm_rt_slab *partial[DSM_RT_NCLASSES]; /* slabs with free objects, per class */
	uint64_t live_bytes;
	/* Reuse the lines of freed collective allocations. Off in the runtime: a new
	 * allocation there could home its lines elsewhere while ranks still hold
	 * coherence state for them, and the collective region is TiBs anyway. */
	bool reuse_collective;
	/* DSM_DEBUG_FREE: freed dsm_alloc memory is never handed out again (its lines stay
	 * unallocated, so every access to them ends the rank). */
	bool quarantine;
};

int dsm_rt_alloc_init(struct dsm_rt_alloc *a, const dsm_coh_layout_t *layout, unsigned rank);
void dsm_rt_alloc_fini(struct dsm_rt_alloc *a);

/* The first line of the collective region that no allocation has had yet (lines there are
 * handed out in increasing order while reuse_collective is off). */
uint64_t dsm_rt_alloc_coll_mark(struct dsm_rt_alloc *a);
/* Collective: same calls, same order on every rank -> same address. 0, -EINVAL, -ENOMEM.
 * @mw: multiple-writer memory (kept in snapshots, dsm_rt_alloc_each_mw). */
int dsm_rt_alloc_collective(struct dsm_rt_alloc *a, size_t size, dsm_dist_t dist, bool mw,
                            void **out_p);
/* 0, or -EINVAL for an address that is not a live collective allocation's start. */
int dsm_rt_free_collective(struct dsm_rt_alloc *a, void *p);

/* In this rank's slice. 0, -EINVAL (size 0), -ENOMEM. Thread-safe. */
int dsm_rt_alloc_local(struct dsm_rt_alloc *a, size_t size, void **out_p);
/*
 * Frees memory of this rank's slice (a remote free is forwarded to the
 * owner, who calls this). 0; DSM_ERR_FOREIGN outside this rank's slice;
 * -EINVAL for a pointer that is not a live allocation (a double free).
 * The lines that are no longer allocated at all go in *@first_p and *@n_p
 * (n 0 for an object of a slab that holds others still), when not NULL.
 */
int dsm_rt_free_local(struct dsm_rt_alloc *a, void *p, uint64_t *first_p, uint64_t *n_p);
/* The bytes of the live object or allocation of this rank's slice that starts at @p, or 0. */
size_t dsm_rt_alloc_size(struct dsm_rt_alloc *a, const void *p);
/* false for a line of this rank's slice that no live allocation covers; true otherwise
 * (the collective region: dsm_rt_alloc_home says; another rank's slice: only its owner
 * knows). */
bool dsm_rt_alloc_live(struct dsm_rt_alloc *a, uint64_t line);

/* The rank whose slice holds @p (the rank to send its dsm_free to), or -1 for
 * the collective region, or DSM_ERR_FOREIGN outside the heap. */
int dsm_rt_alloc_owner(const struct dsm_rt_alloc *a, const void *p);

/* The home of the line holding @addr, or -EINVAL outside the heap or allocated memory. */
int dsm_rt_alloc_home_of(struct dsm_rt_alloc *a, const void *addr);

/*
 * The home of @line and the span it belongs to. -EINVAL for a line of the
 * collective region that no live allocation covers.
 */
int dsm_rt_alloc_home(struct dsm_rt_alloc *a, uint64_t line, dsm_coh_span_t *span_p);

/*
 * Snapshots (ckpt.c). The allocators' state as words: the collective region's allocations
 * (the same on every rank), then this rank's slice (its free extents and allocations, slabs
 * with their objects). malloc'd into *@words_p. 0 or -ENOMEM.
 */
int dsm_rt_alloc_export(struct dsm_rt_alloc *a, uint64_t **words_p, size_t *n_p);
/* 1 if an exported state holds dsm_alloc memory, 0 if not, -EINVAL if malformed. */
int dsm_rt_alloc_state_has_local(const uint64_t *words, size_t n);
/* Into a fresh allocator: the collective part of a state, and with @local its slice (which
 * must be this rank's, of the same size). 0, -EINVAL (malformed, or another slice), -ENOMEM. */
int dsm_rt_alloc_restore(struct dsm_rt_alloc *a, const uint64_t *words, size_t n, bool local);
/* @fn for each live allocation (its lines and homes): the collective ones and this rank's. */
void dsm_rt_alloc_each(struct dsm_rt_alloc *a, void (*fn)(void *arg, const dsm_coh_span_t *s),
                       void *arg);
/* @fn for each live multiple-writer allocation: its first line and lines. */
void dsm_rt_alloc_each_mw(struct dsm_rt_alloc *a, void (*fn)(void *arg, uint64_t first, uint64_t n),
                          void *arg);

#endif
