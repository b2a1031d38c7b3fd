/* SPDX-License-Identifier: MIT */
#include "coherence/diff.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static uint64_t word(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The MASK encoding, from scratch: it does not depend on where RUNS gave up. */
static size_t make_mask(const unsigned char *t, const unsigned char *c, size_t n,
                        unsigned char *out)
{
	unsigned char *mask = out + 8;

	put32(out, DSM_COH_DIFF_MASK);
	put32(out + 4, 0);
	memset(mask, 0, n / 8);
	for (size_t i = 0; i < n; i++)
		if (t[i] != c[i])
			mask[i / 8] |= (unsigned char)(1u << (i % 8));
	memcpy(mask + n / 8, c, n);
	return dsm_coh_diff_max(n);
}

size_t dsm_coh_diff_make(const void *twin, const void *cur, size_t n, void *out_v,
                         size_t *changed_p)
{
	const unsigned char *t = twin, *c = cur;
	unsigned char *out = out_v, *o = out + 8;
	size_t max = dsm_coh_diff_max(n), changed = 0, i = 0;
	uint32_t nruns = 0;
	bool runs = true;

	while (i < n) {
		size_t start;

		/* Equal words go by eight bytes at a time: most of a line, usually. */
		while (i + 8 <= n && word(t + i) == word(c + i))
			i += 8;
		while (i < n && t[i] == c[i])
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && t[i] != c[i])
			i++;
		changed += i - start;
		/* RUNS is kept while it is shorter than MASK; past that only the count goes on. */
		if (runs && (size_t)(o - out) + 8 + (i - start) < max) {
			put32(o, (uint32_t)start);
			put32(o + 4, (uint32_t)(i - start));
			memcpy(o + 8, c + start, i - start);
			o += 8 + (i - start);
			nruns++;
		} else {
			runs = false;
		}
	}
	if (changed_p)
		*changed_p = changed;
	if (changed == 0)
		return 0;
	if (!runs)
		return make_mask(t, c, n, out);
	put32(out, DSM_COH_DIFF_RUNS);
	put32(out + 4, nruns);
	return (size_t)(o - out);
}

/* Checks the whole diff before the first byte changes: a malformed one changes nothing. */
static bool runs_valid(size_t n, const unsigned char *p, size_t len, uint32_t nruns)
{
	size_t at = 8;

	for (uint32_t r = 0; r < nruns; r++) {
		uint32_t off, rl;

		if (len - at < 8)
			return false;
		off = get32(p + at);
		rl = get32(p + at + 4);
		if (rl == 0 || off > n || rl > n - off || len - at - 8 < rl)
			return false;
		at += 8 + rl;
	}
	return at == len;
}

int dsm_coh_diff_check(size_t n, const void *diff, size_t len)
{
	const unsigned char *p = diff;
	uint32_t kind;

	if (len < 8 || n % 8)
		return -EINVAL;
	kind = get32(p);
	if (kind == DSM_COH_DIFF_RUNS)
		return runs_valid(n, p, len, get32(p + 4)) ? 0 : -EINVAL;
	if (kind == DSM_COH_DIFF_MASK && len == dsm_coh_diff_max(n))
		return 0;
	return -EINVAL;
}

int dsm_coh_diff_apply(void *dst_v, size_t n, const void *diff, size_t len)
{
	const unsigned char *p = diff, *mask = p + 8, *src = mask + n / 8;
	unsigned char *dst = dst_v;

	if (dsm_coh_diff_check(n, diff, len) < 0)
		return -EINVAL;
	if (get32(p) == DSM_COH_DIFF_RUNS) {
		uint32_t nruns = get32(p + 4);
		size_t at = 8;

		for (uint32_t r = 0; r < nruns; r++) {
			uint32_t off = get32(p + at), rl = get32(p + at + 4);

			memcpy(dst + off, p + at + 8, rl);
			at += 8 + rl;
		}
		return 0;
	}
	/* MASK */
	for (size_t i = 0; i < n; i += 8) {
		unsigned m = mask[i / 8];

		if (m == 0xff) {
			memcpy(dst + i, src + i, 8);
			continue;
		}
		for (unsigned b = 0; m; b++, m >>= 1)
			if (m & 1)
				dst[i + b] = src[i + b];
	}
	return 0;
}
