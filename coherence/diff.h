/* SPDX-License-Identifier: MIT */
/*
 * Diffs of multiple-writer lines (README, "Multiple-writer memory"): what a
 * rank changed in a line since its twin (the copy taken at its first write),
 * byte for byte, so that a home can merge the changes of several writers of
 * one line. Pure functions on buffers: the runtime makes them at a release
 * and applies them at the home.
 *
 * A diff is one of two encodings, whichever is shorter:
 *
 *   RUNS  u32 kind = 1, u32 nruns, then per run u32 offset, u32 length and
 *         the run's bytes (a run: bytes that differ from the twin, in a row)
 *   MASK  u32 kind = 2, u32 reserved, a bitmap of the changed bytes (one bit
 *         per byte of the line), then the line's bytes whole
 *
 * A byte that was written with the value it had is not in the diff: that is
 * what makes merging exact for race-free programs, where no other rank wrote
 * that byte between the same synchronizations.
 */
#ifndef DSM_COH_DIFF_H
#define DSM_COH_DIFF_H

#include <stddef.h>
#include <stdint.h>

#define DSM_COH_DIFF_RUNS 1u
#define DSM_COH_DIFF_MASK 2u

/* The longest diff of a line of @n bytes (the MASK encoding). @n is a multiple of 8. */
static inline size_t dsm_coh_diff_max(size_t n)
{
	return 8 + n / 8 + n;
}

/*
 * Writes to @out (dsm_coh_diff_max(n) bytes) the diff of @cur against @twin, both @n bytes
 * (a multiple of 8). Returns its length; 0 when nothing changed. *@changed_p, if not NULL,
 * gets the number of bytes that differ.
 */
size_t dsm_coh_diff_make(const void *twin, const void *cur, size_t n, void *out, size_t *changed_p);

/* Whether @diff (@len bytes) is a well-formed diff for a line of @n bytes: 0, or -EINVAL.
 * What dsm_coh_diff_apply takes is exactly what this accepts (a receiver can check a whole
 * message of diffs before it applies the first). */
int dsm_coh_diff_check(size_t n, const void *diff, size_t len);

/* Applies @diff (@len bytes, from dsm_coh_diff_make for a line of @n bytes) to @dst. 0, or
 * -EINVAL for a malformed diff, which leaves @dst as it was. */
int dsm_coh_diff_apply(void *dst, size_t n, const void *diff, size_t len);

#endif
