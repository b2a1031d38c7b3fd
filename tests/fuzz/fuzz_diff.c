/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the diffs of multiple-writer lines, as a home receives them. The input
 * gives a line size, a twin and a current copy, and then arbitrary bytes taken as a diff.
 * Checked: a diff made from twin and copy turns the twin into the copy exactly; any bytes
 * applied as a diff are either taken (0) or refused (-EINVAL) with the line unchanged.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n, len, changed;
	uint8_t *twin, *cur, *diff, *line, *copy;
	int ret;

	if (size < 1)
		return 0;
	n = 8 * (1 + (size_t)(data[0] % 64)); /* 8 .. 512 bytes */
	data++, size--;
	twin = calloc(1, n);
	cur = calloc(1, n);
	diff = malloc(dsm_coh_diff_max(n));
	line = malloc(n);
	copy = malloc(n);
	if (!twin || !cur || !diff || !line || !copy)
		abort();
	memcpy(twin, data, size < n ? size : n);
	memcpy(cur, twin, n);
	for (size_t k = n; k < size && k < 2 * n; k++)
		cur[k - n] = data[k];
	len = dsm_coh_diff_make(twin, cur, n, diff, &changed);
	if (len > dsm_coh_diff_max(n) || (len == 0) != (memcmp(twin, cur, n) == 0))
		abort();
	memcpy(line, twin, n);
	if (len && (dsm_coh_diff_apply(line, n, diff, len) != 0 || memcmp(line, cur, n) != 0))
		abort();
	/* The rest of the input as a diff from a peer. */
	if (size > 2 * n) {
		memcpy(line, twin, n);
		memcpy(copy, line, n);
		ret = dsm_coh_diff_apply(line, n, data + 2 * n, size - 2 * n);
		if (ret != 0 && (ret != -EINVAL || memcmp(line, copy, n) != 0))
			abort();
	}
	free(twin);
	free(cur);
	free(diff);
	free(line);
	free(copy);
	return 0;
}
