/* SPDX-License-Identifier: MIT */
/*
 * The heap reservation: one range of address space at the same virtual
 * address on every rank, so that pointers stored in the heap are valid
 * everywhere. Memory use follows what is touched: the range is MAP_NORESERVE,
 * or, under vm.overcommit_memory=2 (where even MAP_NORESERVE is charged),
 * PROT_NONE and opened in chunks as the allocators hand it out.
 */
#ifndef DSM_RT_HEAP_H
#define DSM_RT_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSM_RT_HEAP_CHUNK (1ull << 30) /* opening granularity under strict overcommit */

/*
 * How the ranks agree, provided by the bootstrap (MPI) or by a test. Both are
 * collective: every rank calls them the same number of times.
 */
struct dsm_rt_heap_agree {
	void *ctx;
	int nranks;
	/* *all_p = the AND of every rank's @mine. 0 or a negative error. */
	int (*all_true)(void *ctx, bool mine, bool *all_p);
	/* all[r] = rank r's @mine, for every rank r. 0 or a negative error. */
	int (*allgather_u64)(void *ctx, uint64_t mine, uint64_t *all);
};

struct dsm_rt_heap {
	char *base;
	size_t size;
	bool strict;       /* reserved PROT_NONE, opened in chunks */
	uint8_t *opened;   /* strict only: one bit per chunk */
	unsigned attempts; /* candidates tried before all ranks agreed */
};

/*
 * Reserves @size bytes (a multiple of @align, a power of two) at one address
 * on every rank. @strict: -1 to read vm.overcommit_memory, else 0 or 1.
 * Returns 0, DSM_ERR_NO_ADDRESS when no candidate is free everywhere, or an
 * agreement error.
 */
int dsm_rt_heap_reserve(size_t size, size_t align, int strict,
                        const struct dsm_rt_heap_agree *agree, struct dsm_rt_heap *out);

/* The same at @want exactly (a restart: the snapshot's address), unless @want is 0. */
int dsm_rt_heap_reserve_at(size_t size, size_t align, int strict, uint64_t want,
                           const struct dsm_rt_heap_agree *agree, struct dsm_rt_heap *out);

/* Makes [off, off+len) usable (strict mode opens whole chunks; otherwise nothing to do). */
int dsm_rt_heap_open(struct dsm_rt_heap *h, size_t off, size_t len);

/*
 * Opens the chunk holding @addr if it lies in @h and is closed. Async-signal-
 * safe (the SIGSEGV handler calls it). 1 if the chunk is open now, 0 if
 * @addr is not in a strict heap, -errno if mprotect failed.
 */
int dsm_rt_heap_open_addr(struct dsm_rt_heap *h, const void *addr);

/* A reservation of @size at any address, with the same strict-mode rules (the home segment). */
int dsm_rt_heap_reserve_local(size_t size, int strict, struct dsm_rt_heap *out);

/*
 * Strict mode: catches SIGSEGV on closed chunks of the registered heaps (an
 * access to memory another rank allocated), opens the chunk and lets the
 * access run again, where it faults into userfaultfd as usual. Other SIGSEGVs
 * go to the handler that was there before. At most two heaps.
 */
int dsm_rt_heap_catch_segv(struct dsm_rt_heap *h);
void dsm_rt_heap_release_segv(void);

bool dsm_rt_heap_contains(const struct dsm_rt_heap *h, const void *addr);

void dsm_rt_heap_release(struct dsm_rt_heap *h);

/* The fixed candidates: deterministic, so ranks usually agree at the first. */
unsigned dsm_rt_heap_candidates(size_t size, size_t align, uint64_t *out, unsigned max);

#endif
