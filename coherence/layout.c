/* SPDX-License-Identifier: MIT */
/*
 * Line ids and homes from addresses. The runtime and the engine share these
 * functions so that every rank derives the same home for an address with no
 * communication.
 */
#include <errno.h>

#include "coherence/coherence.h"

static int is_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

int dsm_coh_layout_init(dsm_coh_layout_t *l, uintptr_t base, size_t size, size_t line_size,
                        size_t page_size, unsigned nranks)
{
	unsigned shift = 0;

	if (!is_pow2(page_size) || !is_pow2(line_size) || line_size < page_size)
		return -EINVAL;
	if (nranks == 0 || nranks > DSM_COH_MAX_RANKS)
		return -EINVAL;
	if ((base & (line_size - 1)) != 0 || (size & (line_size - 1)) != 0)
		return -EINVAL;
	if (base + size < base)
		return -EINVAL;
	while (((size_t)1 << shift) != line_size)
		shift++;
	l->base = base;
	l->size = size;
	l->line_shift = shift;
	l->nranks = nranks;
	return 0;
}

int64_t dsm_coh_line_of(const dsm_coh_layout_t *l, uintptr_t addr)
{
	if (addr < l->base || addr - l->base >= l->size)
		return -EINVAL;
	return (int64_t)((addr - l->base) >> l->line_shift);
}

uintptr_t dsm_coh_line_addr(const dsm_coh_layout_t *l, uint64_t line)
{
	return l->base + ((uintptr_t)line << l->line_shift);
}

/* Block: rank r gets a contiguous run, and the runs differ by at most one
 * line, the longer ones first, so that no rank is home of nothing while
 * another holds two lines more than it. */
static int home_block(uint64_t i, uint64_t n, unsigned nranks)
{
	uint64_t q = n / nranks, rem = n % nranks;
	uint64_t big = rem * (q + 1); /* lines held by the ranks with q+1 */

	if (i < big)
		return (int)(i / (q + 1));
	return (int)(rem + (i - big) / q);
}

int dsm_coh_home_of(const dsm_coh_span_t *span, unsigned nranks, uint64_t line)
{
	uint64_t i;

	if (nranks == 0 || line < span->first_line || line - span->first_line >= span->nlines)
		return -EINVAL;
	i = line - span->first_line;
	switch (span->dist) {
	case DSM_COH_DIST_BLOCK:
		return home_block(i, span->nlines, nranks);
	case DSM_COH_DIST_CYCLIC:
		return (int)(i % nranks);
	case DSM_COH_DIST_ZERO:
		return 0;
	case DSM_COH_DIST_RANK:
		return span->rank < nranks ? (int)span->rank : -EINVAL;
	default:
		return -EINVAL;
	}
}
