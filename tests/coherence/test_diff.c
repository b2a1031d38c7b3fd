/* SPDX-License-Identifier: MIT */
/*
 * Tests of the diffs of multiple-writer lines (coherence/diff.h): round trips
 * of both encodings, checked against a plain reference scan (the runs, the
 * bitmap, the choice of the shorter encoding, the changed count); the merge of
 * several writers' diffs of one line, byte for byte, in every order (false
 * sharing); bytes written with the value they had, which a diff must leave
 * out; and malformed diffs, which must be refused without touching the line.
 * Pure functions on buffers, seeded pseudo-random cases (splitmix64): every
 * run sees the same cases.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coherence/diff.h"

#define GUARD  64              /* bytes past dsm_coh_diff_max() that make must not write */
#define DSTN   (65536 + GUARD) /* the destination buffer of the malformed diffs */
#define MAXW   4               /* writers of one line in the merge tests */
#define SENTRY 0x5a

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *s, size_t n)
{
	return (size_t)(rng_next(s) % n);
}

static void fill(unsigned char *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rng_next(s);
}

/* A new value for a byte: never the one it had. */
static unsigned char new_value(unsigned char old, uint64_t *s)
{
	return (unsigned char)(old ^ (1 + rng_below(s, 255)));
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
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

/* Applies @diff from a heap copy of exactly @len bytes: a read past the end of a diff shows
 * under AddressSanitizer (DSM_SANITIZE=address). */
static int apply(void *dst, size_t n, const void *diff, size_t len)
{
	unsigned char *d = xmalloc(len);
	int rc;

	memcpy(d, diff, len);
	rc = dsm_coh_diff_apply(dst, n, d, len);
	free(d);
	return rc;
}

/* The reference: a plain scan for the bytes that differ and their maximal runs. Returns the
 * length the RUNS encoding of them has. */
static size_t ref_scan(const unsigned char *t, const unsigned char *c, size_t n, size_t *changed,
                       size_t *nruns)
{
	size_t len = 8;

	*changed = 0;
	*nruns = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == c[i])
			continue;
		(*changed)++;
		if (i == 0 || t[i - 1] == c[i - 1]) {
			(*nruns)++;
			len += 8;
		}
		len++;
	}
	return len;
}

/* What the diffs made so far looked like. */
struct seen {
	size_t cases, empty, runs, mask;
};

/*
 * Makes the diff of @cur against @twin (@n bytes) into @out (dsm_coh_diff_max(n) + GUARD
 * bytes) and checks all of it against the reference: the changed count, the length, the choice
 * of the shorter encoding, every run or every bit, the bytes, that nothing past the longest diff
 * was written, and that applying it over the twin gives @cur while applying it over an unrelated
 * line changes exactly the bytes that differ. Returns the length (0: nothing changed).
 */
static size_t check_diff(const unsigned char *twin, const unsigned char *cur, size_t n,
                         unsigned char *out, uint64_t *s, struct seen *seen)
{
	size_t max = dsm_coh_diff_max(n), changed = (size_t)-1, ref_changed, ref_nruns, runs_len;
	size_t len, i;
	unsigned char *dst = xmalloc(n), *other = xmalloc(n), *want = xmalloc(n);
	uint32_t kind;

	memset(out, SENTRY, max + GUARD);
	len = dsm_coh_diff_make(twin, cur, n, out, &changed);
	runs_len = ref_scan(twin, cur, n, &ref_changed, &ref_nruns);
	assert_int_equal(changed, ref_changed);
	assert_true(len <= max);
	for (i = max; i < max + GUARD; i++)
		assert_int_equal(out[i], SENTRY);
	/* Without the count too. */
	assert_int_equal(dsm_coh_diff_make(twin, cur, n, out, NULL), len);
	seen->cases++;
	if (ref_changed == 0) {
		assert_int_equal(len, 0);
		seen->empty++;
		goto out;
	}
	assert_true(len >= 8);
	kind = get32(out);
	if (runs_len < max) {
		/* RUNS is the shorter: its runs are the maximal runs of differing bytes, in order.
		 */
		size_t at = 8, pos = 0;

		assert_int_equal(kind, DSM_COH_DIFF_RUNS);
		assert_int_equal(len, runs_len);
		assert_int_equal(get32(out + 4), ref_nruns);
		for (size_t r = 0; r < ref_nruns; r++) {
			size_t end;

			while (twin[pos] == cur[pos])
				pos++;
			for (end = pos; end < n && twin[end] != cur[end]; end++)
				;
			assert_true(at + 8 <= len);
			assert_int_equal(get32(out + at), pos);
			assert_int_equal(get32(out + at + 4), end - pos);
			assert_memory_equal(out + at + 8, cur + pos, end - pos);
			at += 8 + (end - pos);
			pos = end;
		}
		assert_int_equal(at, len);
		seen->runs++;
	} else {
		/* MASK: one bit per byte, set exactly for the bytes that differ, then the line. */
		const unsigned char *mask = out + 8;

		assert_int_equal(kind, DSM_COH_DIFF_MASK);
		assert_int_equal(len, max);
		assert_int_equal(get32(out + 4), 0);
		for (i = 0; i < n; i++)
			assert_int_equal((mask[i / 8] >> (i % 8)) & 1, twin[i] != cur[i]);
		assert_memory_equal(mask + n / 8, cur, n);
		seen->mask++;
	}
	memcpy(dst, twin, n);
	assert_int_equal(apply(dst, n, out, len), 0);
	assert_memory_equal(dst, cur, n);
	fill(other, n, s);
	for (i = 0; i < n; i++)
		want[i] = twin[i] != cur[i] ? cur[i] : other[i];
	assert_int_equal(apply(other, n, out, len), 0);
	assert_memory_equal(other, want, n);
out:
	free(dst);
	free(other);
	free(want);
	return len;
}

/* The encoding of a diff that check_diff() made. */
static uint32_t kind_of(const unsigned char *d, size_t len)
{
	return len ? get32(d) : 0;
}

/* cur = twin with these bytes changed (each to a value it did not have). */
static void change_where(const unsigned char *twin, unsigned char *cur, size_t n,
                         int (*pick)(size_t i, size_t n), uint64_t *s)
{
	memcpy(cur, twin, n);
	for (size_t i = 0; i < n; i++)
		if (pick(i, n))
			cur[i] = new_value(twin[i], s);
}

static int every_other(size_t i, size_t n)
{
	(void)n;
	return i % 2 == 1;
}

static int every_8th(size_t i, size_t n)
{
	(void)n;
	return i % 8 == 3;
}

static int every_8th_but_last(size_t i, size_t n)
{
	return i % 8 == 3 && i + 8 < n;
}

static int first_only(size_t i, size_t n)
{
	(void)n;
	return i == 0;
}

static int last_only(size_t i, size_t n)
{
	return i == n - 1;
}

static int first_and_last(size_t i, size_t n)
{
	return i == 0 || i == n - 1;
}

static int whole(size_t i, size_t n)
{
	(void)i;
	(void)n;
	return 1;
}

static int whole_but_middle(size_t i, size_t n)
{
	return i != n / 2;
}

static int across_words(size_t i, size_t n)
{
	(void)n;
	return i % 8 == 7 || (i % 8 == 0 && i > 0);
}

static int one_word(size_t i, size_t n)
{
	return i / 8 == (n / 8) / 2;
}

static const struct pattern {
	const char *name;
	int (*pick)(size_t i, size_t n);
} patterns[] = {
        {"every other byte", every_other},
        {"every 8th byte", every_8th},
        {"every 8th byte but the last", every_8th_but_last},
        {"first byte", first_only},
        {"last byte", last_only},
        {"first and last byte", first_and_last},
        {"whole line", whole},
        {"whole line but one byte", whole_but_middle},
        {"pairs across words", across_words},
        {"one word", one_word},
};

/* The round trips of one line size: k random bytes, random runs, and the fixed patterns. */
static size_t round_trip_size(size_t n, unsigned reps, uint64_t seed)
{
	const size_t ks[] = {0,  1,   2,      3,      4,     5,     7,     8,         9,     16,
	                     33, 100, n / 64, n / 16, n / 8, n / 4, n / 2, n - n / 8, n - 1, n};
	const size_t run_shapes[][2] = {{1, 1},      {1, 8},      {1, n},    {2, 3},
	                                {3, 17},     {5, 64},     {10, 2},   {50, 9},
	                                {n / 64, 4}, {n / 16, 1}, {8, n / 8}};
	size_t max = dsm_coh_diff_max(n), len, ki, i, r;
	unsigned char *twin = xmalloc(n), *cur = xmalloc(n), *out = xmalloc(max + GUARD);
	uint32_t *idx = xmalloc(n * sizeof(*idx));
	struct seen seen = {0};
	uint64_t s = seed;

	for (ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
		size_t k = ks[ki];

		if (k > n)
			continue;
		for (r = 0; r < reps; r++) {
			fill(twin, n, &s);
			memcpy(cur, twin, n);
			/* k distinct bytes: the first k of a partial shuffle. */
			for (i = 0; i < n; i++)
				idx[i] = (uint32_t)i;
			for (i = 0; i < k; i++) {
				size_t j = i + rng_below(&s, n - i);
				uint32_t tmp = idx[i];

				idx[i] = idx[j];
				idx[j] = tmp;
				cur[idx[i]] = new_value(twin[idx[i]], &s);
			}
			len = check_diff(twin, cur, n, out, &s, &seen);
			if (k == 0)
				assert_int_equal(len, 0);
			else
				assert_true(len > 0);
			/* A few changed bytes of a large line: the runs, always. */
			if (n >= 4096 && k >= 1 && k <= 16)
				assert_int_equal(kind_of(out, len), DSM_COH_DIFF_RUNS);
		}
	}
	for (ki = 0; ki < sizeof(run_shapes) / sizeof(run_shapes[0]); ki++) {
		size_t nr = run_shapes[ki][0], maxlen = run_shapes[ki][1];

		if (nr == 0 || maxlen == 0)
			continue;
		for (r = 0; r < reps; r++) {
			fill(twin, n, &s);
			memcpy(cur, twin, n);
			/* Runs may overlap or touch: each byte is changed from the twin, so it
			 * stays changed; the reference finds where the runs really are. */
			for (size_t j = 0; j < nr; j++) {
				size_t start = rng_below(&s, n), rl = 1 + rng_below(&s, maxlen);

				if (rl > n - start)
					rl = n - start;
				for (i = start; i < start + rl; i++)
					cur[i] = new_value(twin[i], &s);
			}
			assert_true(check_diff(twin, cur, n, out, &s, &seen) > 0);
		}
	}
	for (ki = 0; ki < sizeof(patterns) / sizeof(patterns[0]); ki++) {
		for (r = 0; r < reps; r++) {
			size_t nch = 0;

			fill(twin, n, &s);
			change_where(twin, cur, n, patterns[ki].pick, &s);
			for (i = 0; i < n; i++)
				nch += twin[i] != cur[i];
			len = check_diff(twin, cur, n, out, &s, &seen);
			assert_int_equal(len == 0, nch == 0);
			if (patterns[ki].pick == every_other && n >= 16)
				assert_int_equal(kind_of(out, len), DSM_COH_DIFF_MASK);
			/* One run of one byte per word: the runs are exactly as long as the mask,
			 * and the mask is taken; one run fewer and the runs are shorter. */
			if (patterns[ki].pick == every_8th) {
				assert_int_equal(8 + (n / 8) * 9, max);
				assert_int_equal(kind_of(out, len), DSM_COH_DIFF_MASK);
			}
			if (patterns[ki].pick == every_8th_but_last && n > 8) {
				assert_int_equal(kind_of(out, len), DSM_COH_DIFF_RUNS);
				assert_int_equal(len, max - 9);
			}
			if (patterns[ki].pick == whole) {
				assert_int_equal(kind_of(out, len), n + 16 < max
				                                            ? DSM_COH_DIFF_RUNS
				                                            : DSM_COH_DIFF_MASK);
			}
		}
	}
	/* Both encodings, for the line sizes the runtime uses. */
	if (n >= 4096) {
		assert_true(seen.runs > 0);
		assert_true(seen.mask > 0);
		assert_true(seen.empty > 0);
	}
	print_message("line %zu: %zu cases (%zu empty, %zu RUNS, %zu MASK)\n", n, seen.cases,
	              seen.empty, seen.runs, seen.mask);
	free(twin);
	free(cur);
	free(out);
	free(idx);
	return seen.cases;
}

static void round_trip(void **st)
{
	size_t cases = 0;

	(void)st;
	cases += round_trip_size(8, 16, 1);
	cases += round_trip_size(64, 16, 2);
	cases += round_trip_size(72, 16, 3);
	cases += round_trip_size(4096, 12, 4);
	cases += round_trip_size(65536, 3, 5);
	print_message("round_trip: %zu cases\n", cases);
}

/* Per ordering of the writers' diffs: 0 = in writer order, 1 = reversed, then shuffles. */
#define ORDERS 6

struct merge_seen {
	size_t cases, applies, runs, mask, mixed;
};

/*
 * One line, @w writers; @owner[i] is the writer that changes byte i (-1: none). Each writer
 * changes its bytes from @base; their diffs, applied to @base in several orders, must give
 * @base with every writer's changes, exactly.
 */
static void merge_case(const unsigned char *base, size_t n, const signed char *owner, unsigned w,
                       uint64_t *s, struct merge_seen *ms)
{
	size_t max = dsm_coh_diff_max(n), len[MAXW], i;
	unsigned char *cur[MAXW], *diff[MAXW], *want = xmalloc(n), *home = xmalloc(n);
	struct seen seen = {0};
	unsigned order[MAXW], k, nruns = 0, nmask = 0;

	assert_true(w >= 2 && w <= MAXW);
	memcpy(want, base, n);
	for (k = 0; k < w; k++) {
		cur[k] = xmalloc(n);
		diff[k] = xmalloc(max + GUARD);
		memcpy(cur[k], base, n);
	}
	for (i = 0; i < n; i++) {
		if (owner[i] < 0)
			continue;
		assert_true((unsigned)owner[i] < w);
		cur[owner[i]][i] = new_value(base[i], s);
		want[i] = cur[owner[i]][i];
	}
	for (k = 0; k < w; k++) {
		len[k] = check_diff(base, cur[k], n, diff[k], s, &seen);
		nruns += kind_of(diff[k], len[k]) == DSM_COH_DIFF_RUNS;
		nmask += kind_of(diff[k], len[k]) == DSM_COH_DIFF_MASK;
	}
	ms->runs += nruns;
	ms->mask += nmask;
	ms->mixed += nruns && nmask;
	for (unsigned o = 0; o < ORDERS; o++) {
		for (k = 0; k < w; k++)
			order[k] = o == 1 ? w - 1 - k : k;
		if (o >= 2) {
			for (k = w - 1; k > 0; k--) {
				unsigned j = (unsigned)rng_below(s, k + 1), tmp = order[k];

				order[k] = order[j];
				order[j] = tmp;
			}
		}
		memcpy(home, base, n);
		for (k = 0; k < w; k++) {
			/* An empty diff is not sent: there is nothing to apply. */
			if (len[order[k]] == 0)
				continue;
			assert_int_equal(apply(home, n, diff[order[k]], len[order[k]]), 0);
			ms->applies++;
		}
		assert_memory_equal(home, want, n);
	}
	ms->cases++;
	for (k = 0; k < w; k++) {
		free(cur[k]);
		free(diff[k]);
	}
	free(want);
	free(home);
}

static void merge_size(size_t n, unsigned reps, uint64_t seed, struct merge_seen *ms)
{
	/* Densities (in 1/1024) of the random ownerships: sparse (RUNS) to dense (MASK). */
	const unsigned dens[] = {1, 8, 64, 256, 512, 1024};
	unsigned char *base = xmalloc(n);
	signed char *owner = xmalloc(n);
	uint64_t s = seed;
	size_t i, words = n / 8;

	for (unsigned r = 0; r < reps; r++) {
		/* Byte by byte, A the even bytes and B the odd ones, over the whole line. */
		fill(base, n, &s);
		for (i = 0; i < n; i++)
			owner[i] = (signed char)(i % 2);
		merge_case(base, n, owner, 2, &s, ms);

		/* Byte by byte within one word, then within a few random words. */
		for (size_t nw = 1; nw <= 16 && nw <= words; nw *= 4) {
			fill(base, n, &s);
			memset(owner, -1, n);
			for (size_t j = 0; j < nw; j++) {
				size_t wd = rng_below(&s, words);

				for (i = 0; i < 8; i++)
					owner[wd * 8 + i] = (signed char)((i + r) % 2);
			}
			merge_case(base, n, owner, 2, &s, ms);
		}

		/* Half words: A bytes 0-3 of a word, B bytes 4-7 (or the other way round). */
		fill(base, n, &s);
		memset(owner, -1, n);
		for (size_t wd = 0; wd < words; wd++)
			if (rng_below(&s, 4) == 0)
				for (i = 0; i < 8; i++)
					owner[wd * 8 + i] = (signed char)((i / 4 + wd) % 2);
		merge_case(base, n, owner, 2, &s, ms);

		/* Adjacent ranges: A [x, y), B [y, z), y anywhere (not word aligned). */
		fill(base, n, &s);
		memset(owner, -1, n);
		{
			size_t y = 1 + rng_below(&s, n - 1), x = rng_below(&s, y);
			size_t z = y + 1 + rng_below(&s, n - y);

			for (i = x; i < z; i++)
				owner[i] = (signed char)(i >= y);
		}
		merge_case(base, n, owner, 2, &s, ms);

		/* One writer changes every byte, the other none. */
		fill(base, n, &s);
		memset(owner, 0, n);
		merge_case(base, n, owner, 2, &s, ms);

		/* Random disjoint sets, 2 to 4 writers, each byte to a writer or to nobody. */
		for (size_t d = 0; d < sizeof(dens) / sizeof(dens[0]); d++) {
			for (unsigned w = 2; w <= MAXW; w++) {
				fill(base, n, &s);
				for (i = 0; i < n; i++)
					owner[i] = rng_below(&s, 1024) < dens[d]
					                   ? (signed char)rng_below(&s, w)
					                   : -1;
				merge_case(base, n, owner, w, &s, ms);
			}
		}
		/* Writers of unequal densities: A sparse (RUNS), B dense (MASK). */
		fill(base, n, &s);
		for (i = 0; i < n; i++)
			owner[i] = rng_below(&s, 64) == 0 ? 0 : (rng_below(&s, 4) ? 1 : -1);
		merge_case(base, n, owner, 2, &s, ms);

		/* Round robin, w writers, byte by byte. */
		for (unsigned w = 2; w <= MAXW; w++) {
			fill(base, n, &s);
			for (i = 0; i < n; i++)
				owner[i] = (signed char)(i % w);
			merge_case(base, n, owner, w, &s, ms);
		}
	}
	free(base);
	free(owner);
}

static void merge_writers(void **st)
{
	struct merge_seen ms = {0};

	(void)st;
	merge_size(64, 8, 11, &ms);
	merge_size(4096, 8, 12, &ms);
	merge_size(65536, 2, 13, &ms);
	/* Both encodings were merged, and merged with each other. */
	assert_true(ms.runs > 0);
	assert_true(ms.mask > 0);
	assert_true(ms.mixed > 0);
	print_message("merge_writers: %zu cases, %zu diffs applied (%zu RUNS, %zu MASK diffs, "
	              "%zu cases mixing both)\n",
	              ms.cases, ms.applies, ms.runs, ms.mask, ms.mixed);
}

/*
 * Writer A writes the bytes of a region, some of them with the value they had (the line ends up
 * as it was there); writer B changes those very bytes. A's diff must not hold them, so that B's
 * values survive in whatever order the home applies the two diffs.
 */
static size_t old_value_case(size_t n, size_t lo, size_t hi, unsigned same_in_16, uint64_t *s,
                             struct seen *seen)
{
	size_t max = dsm_coh_diff_max(n), la, lb, nsame = 0, i;
	unsigned char *base = xmalloc(n), *a = xmalloc(n), *b = xmalloc(n), *want = xmalloc(n);
	unsigned char *da = xmalloc(max + GUARD), *db = xmalloc(max + GUARD), *home = xmalloc(n);
	unsigned char *same = xmalloc(n);
	struct seen bseen = {0};

	fill(base, n, s);
	memcpy(a, base, n);
	memcpy(b, base, n);
	memset(same, 0, n);
	for (i = lo; i < hi; i++) {
		if (rng_below(s, 16) < same_in_16) {
			/* Written with a new value and then with the old one: as if not written. */
			a[i] = new_value(base[i], s);
			a[i] = base[i];
			same[i] = 1;
			nsame++;
		} else {
			a[i] = new_value(base[i], s);
		}
	}
	memcpy(want, a, n);
	for (i = 0; i < n; i++) {
		if (!same[i])
			continue;
		b[i] = new_value(base[i], s);
		want[i] = b[i];
	}
	la = check_diff(base, a, n, da, s, seen);
	lb = check_diff(base, b, n, db, s, &bseen);
	/* A's diff holds only the bytes A really changed. */
	{
		size_t ch;

		dsm_coh_diff_make(base, a, n, da, &ch);
		assert_int_equal(ch, (hi - lo) - nsame);
		assert_int_equal(la == 0, ch == 0);
	}
	for (unsigned o = 0; o < 2; o++) {
		memcpy(home, base, n);
		if (o == 0 && la)
			assert_int_equal(apply(home, n, da, la), 0);
		if (lb)
			assert_int_equal(apply(home, n, db, lb), 0);
		if (o == 1 && la)
			assert_int_equal(apply(home, n, da, la), 0);
		assert_memory_equal(home, want, n);
	}
	free(base);
	free(a);
	free(b);
	free(want);
	free(da);
	free(db);
	free(home);
	free(same);
	return nsame;
}

static void old_value_not_in_diff(void **st)
{
	const unsigned sames[] = {0, 1, 4, 8, 12, 15, 16};
	const size_t sizes[] = {64, 4096, 65536};
	struct seen seen = {0};
	size_t nsame = 0;
	uint64_t s = 21;

	(void)st;
	/* The byte in the middle of a run: A writes [100, 108) with 103 unchanged, B changes 103.
	 */
	{
		size_t n = 4096, max = dsm_coh_diff_max(n), la, lb, ch;
		unsigned char *base = xmalloc(n), *a = xmalloc(n), *b = xmalloc(n);
		unsigned char *da = xmalloc(max + GUARD), *db = xmalloc(max + GUARD);

		fill(base, n, &s);
		memcpy(a, base, n);
		memcpy(b, base, n);
		for (size_t i = 100; i < 108; i++)
			a[i] = i == 103 ? base[i] : new_value(base[i], &s);
		b[103] = new_value(base[103], &s);
		la = dsm_coh_diff_make(base, a, n, da, &ch);
		assert_int_equal(ch, 7);
		/* Two runs: [100, 103) and [104, 108). */
		assert_int_equal(la, 8 + 8 + 3 + 8 + 4);
		assert_int_equal(get32(da), DSM_COH_DIFF_RUNS);
		assert_int_equal(get32(da + 4), 2);
		assert_int_equal(get32(da + 8), 100);
		assert_int_equal(get32(da + 12), 3);
		assert_int_equal(get32(da + 8 + 8 + 3), 104);
		assert_int_equal(get32(da + 8 + 8 + 3 + 4), 4);
		lb = dsm_coh_diff_make(base, b, n, db, NULL);
		memcpy(a, base, n); /* the home */
		assert_int_equal(apply(a, n, db, lb), 0);
		assert_int_equal(apply(a, n, da, la), 0);
		assert_int_equal(a[103], b[103]);
		free(base);
		free(a);
		free(b);
		free(da);
		free(db);
		seen.cases++;
	}
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];

		for (size_t q = 0; q < sizeof(sames) / sizeof(sames[0]); q++) {
			unsigned reps = n > 4096 ? 2 : 6;

			for (unsigned r = 0; r < reps; r++) {
				/* The whole line (MASK, mostly), then a short region (RUNS). */
				size_t lo = rng_below(&s, n - 32), hi = lo + 1 + rng_below(&s, 32);

				nsame += old_value_case(n, 0, n, sames[q], &s, &seen);
				nsame += old_value_case(n, lo, hi, sames[q], &s, &seen);
			}
		}
	}
	assert_true(nsame > 0);
	assert_true(seen.runs > 0);
	assert_true(seen.mask > 0);
	assert_true(seen.empty > 0);
	print_message("old_value_not_in_diff: %zu cases (%zu RUNS, %zu MASK, %zu empty), %zu bytes "
	              "written with their old value\n",
	              seen.cases, seen.runs, seen.mask, seen.empty, nsame);
}

/* The malformed diffs: each must be refused and leave the whole destination as it was. */
static unsigned char *bad_dst, *bad_keep;
static size_t nbad, ngood;

static void refused(size_t n, const unsigned char *diff, size_t len)
{
	assert_int_equal(apply(bad_dst, n, diff, len), -EINVAL);
	assert_memory_equal(bad_dst, bad_keep, DSTN);
	nbad++;
}

/* A well-formed diff of the same shapes is taken (so that the refusals are not for nothing). */
static void accepted(size_t n, const unsigned char *diff, size_t len)
{
	assert_int_equal(apply(bad_dst, n, diff, len), 0);
	assert_memory_not_equal(bad_dst, bad_keep, DSTN);
	memcpy(bad_dst, bad_keep, DSTN);
	ngood++;
}

struct run {
	uint32_t off, len;
	size_t bytes; /* payload bytes that follow the header */
};

/* Two valid runs that a careless apply would have written before it met the bad one. */
#define PRE                                                                                        \
	{0, 4, 4},                                                                                 \
	{                                                                                          \
		64, 8, 8                                                                           \
	}

static size_t build(unsigned char *out, uint32_t kind, uint32_t nruns, const struct run *r,
                    size_t nr)
{
	size_t at = 8;

	put32(out, kind);
	put32(out + 4, nruns);
	for (size_t i = 0; i < nr; i++) {
		put32(out + at, r[i].off);
		put32(out + at + 4, r[i].len);
		/* Payload bytes >= 0x80, the destination's are < 0x80: any write shows. */
		memset(out + at + 8, 0xc0 | (int)i, r[i].bytes);
		at += 8 + r[i].bytes;
	}
	return at;
}

#define BUILD_RUNS(...)                                                                            \
	do {                                                                                       \
		const struct run r_[] = {__VA_ARGS__};                                             \
		const size_t nr_ = sizeof(r_) / sizeof(r_[0]);                                     \
                                                                                                   \
		blen = build(hb, DSM_COH_DIFF_RUNS, (uint32_t)nr_, r_, nr_);                       \
	} while (0)

static void malformed(void **st)
{
	const size_t n = 4096, max = dsm_coh_diff_max(n);
	const uint32_t kinds[] = {0,       3,          4,          0xff,        0x100,
	                          0x10000, 0x01000000, 0x02000000, 0x80000000u, 0xffffffffu};
	const size_t odd_n[] = {1, 4, 7, 9, 12, 4092, 4095, 4097, 4100};
	unsigned char *twin = xmalloc(n), *cur = xmalloc(n), *rd = xmalloc(max + GUARD);
	unsigned char *md = xmalloc(max + GUARD), *tmp = xmalloc(max + 64), *hb = xmalloc(3 * DSTN);
	size_t rlen, mlen, blen, i, k;
	struct seen seen = {0};
	uint64_t s = 31;

	(void)st;
	bad_dst = xmalloc(DSTN);
	bad_keep = xmalloc(DSTN);
	for (i = 0; i < DSTN; i++)
		bad_keep[i] = (unsigned char)(rng_next(&s) & 0x7f);
	memcpy(bad_dst, bad_keep, DSTN);
	/* The twin's bytes are < 0x80, the changed ones >= 0x80; the runs end before n - 8. */
	for (i = 0; i < n; i++)
		twin[i] = (unsigned char)(rng_next(&s) & 0x7f);
	memcpy(cur, twin, n);
	for (i = 10; i < 15; i++)
		cur[i] |= 0x80;
	cur[1000] |= 0x80;
	for (i = 2040; i < 2100; i++)
		cur[i] |= 0x80;
	for (i = 4000; i < 4087; i += 17)
		cur[i] |= 0x80;
	rlen = check_diff(twin, cur, n, rd, &s, &seen);
	assert_int_equal(get32(rd), DSM_COH_DIFF_RUNS);
	assert_true(get32(rd + 4) > 3);
	/* Every other byte: MASK. */
	for (i = 1; i < n; i += 2)
		cur[i] = twin[i] | 0x80;
	mlen = check_diff(twin, cur, n, md, &s, &seen);
	assert_int_equal(get32(md), DSM_COH_DIFF_MASK);
	assert_int_equal(mlen, max);
	accepted(n, rd, rlen);
	accepted(n, md, mlen);

	/* Truncated at every length, which covers len < 8. */
	for (k = 0; k < rlen; k++)
		refused(n, rd, k);
	for (k = 0; k < mlen; k++)
		refused(n, md, k);

	/* Unknown kinds, over the bytes of a valid RUNS and of a valid MASK diff. */
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		memcpy(tmp, rd, rlen);
		put32(tmp, kinds[k]);
		refused(n, tmp, rlen);
		memcpy(tmp, md, mlen);
		put32(tmp, kinds[k]);
		refused(n, tmp, mlen);
	}
	/* The kinds swapped: a MASK read as RUNS, a RUNS read as MASK. */
	memcpy(tmp, md, mlen);
	put32(tmp, DSM_COH_DIFF_RUNS);
	refused(n, tmp, mlen);
	memcpy(tmp, rd, rlen);
	put32(tmp, DSM_COH_DIFF_MASK);
	refused(n, tmp, rlen);

	/* nruns larger than the bytes hold, or smaller (the rest is then garbage). */
	{
		uint32_t nr = get32(rd + 4);
		const uint32_t bad_nr[] = {nr + 1,      nr + 2, 2 * nr, 0x7fffffff,
		                           0xffffffffu, nr - 1, 0};

		for (k = 0; k < sizeof(bad_nr) / sizeof(bad_nr[0]); k++) {
			memcpy(tmp, rd, rlen);
			put32(tmp + 4, bad_nr[k]);
			refused(n, tmp, rlen);
		}
	}
	/* Trailing garbage: bytes, and a well-formed run that nruns does not count. */
	for (k = 1; k <= 16; k++) {
		memcpy(tmp, rd, rlen);
		memset(tmp + rlen, (int)(0x80 + k), k);
		refused(n, tmp, rlen + k);
	}
	memcpy(tmp, rd, rlen);
	put32(tmp + rlen, 0);
	put32(tmp + rlen + 4, 1);
	tmp[rlen + 8] = 0xee;
	refused(n, tmp, rlen + 9);

	/* Runs past the end of the line, after two valid ones and alone. */
	BUILD_RUNS(PRE, {n - 2, 4, 4});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {n - 1, 2, 2});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {n, 1, 1});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {n + 1, 1, 1});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {0, n + 1, n + 1});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {1, n, n});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {0xffffffffu, 1, 1});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {0xffffffffu, 0xffffffffu, 8});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {0xfffffff0u, 0x20, 0x20}); /* off + len wraps in 32 bits */
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {8, 0xfffffff8u, 8}); /* off + len wraps to 0 in 32 bits */
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {0, 0xffffffffu, 16});
	refused(n, hb, blen);
	BUILD_RUNS({n - 2, 4, 4});
	refused(n, hb, blen);
	BUILD_RUNS({0, n + 1, n + 1});
	refused(n, hb, blen);
	BUILD_RUNS({n - 8, 4, 4}, {n, 1, 1}, {16, 4, 4});
	refused(n, hb, blen);
	/* A run as long as the bytes that follow but longer than the header says. */
	BUILD_RUNS(PRE, {100, 8, 4});
	refused(n, hb, blen);
	/* The same runs, well placed, are taken: up to the last byte, and the whole line. */
	BUILD_RUNS(PRE, {n - 4, 4, 4});
	accepted(n, hb, blen);
	BUILD_RUNS(PRE, {0, n, n});
	accepted(n, hb, blen);
	BUILD_RUNS({n - 1, 1, 1});
	accepted(n, hb, blen);
	/* A diff of a 64 KiB line applied to a 4 KiB one, and to a line of 0 bytes. */
	BUILD_RUNS({4096, 4, 4});
	refused(4096, hb, blen);
	accepted(65536, hb, blen);
	BUILD_RUNS({0, 4, 4});
	refused(0, hb, blen);

	/* Zero-length runs: alone, last, in the middle, at the end of the line, past it. */
	BUILD_RUNS({5, 0, 0});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {100, 0, 0});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {100, 0, 0}, {200, 4, 4});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {n, 0, 0});
	refused(n, hb, blen);
	BUILD_RUNS(PRE, {n + 8, 0, 0});
	refused(n, hb, blen);

	/* MASK of the wrong length, with every byte there to be read. */
	{
		const size_t lens[] = {max - 1, max + 1, max + 8, max - 8, 8 + n,  8 + n / 8,
		                       n,       8,       9,       16,      2 * max};

		memset(hb, 0, 2 * max);
		memcpy(hb, md, mlen);
		for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
			refused(n, hb, lens[k]);
	}
	/* A MASK made for another line size. */
	refused(n / 2, md, mlen);
	refused(n * 2, md, mlen);

	/* n not a multiple of 8: valid diffs of a 4 KiB line, and a MASK as long as n says. */
	for (k = 0; k < sizeof(odd_n) / sizeof(odd_n[0]); k++) {
		size_t on = odd_n[k], olen = 8 + on / 8 + on;

		refused(on, rd, rlen);
		refused(on, md, mlen);
		BUILD_RUNS({0, 1, 1});
		refused(on, hb, blen);
		memset(hb, 0xff, olen);
		put32(hb, DSM_COH_DIFF_MASK);
		put32(hb + 4, 0);
		refused(on, hb, olen);
	}

	/* And the valid diffs still apply, as made. */
	accepted(n, rd, rlen);
	accepted(n, md, mlen);
	print_message("malformed: %zu malformed diffs refused, %zu valid ones taken\n", nbad,
	              ngood);
	free(twin);
	free(cur);
	free(rd);
	free(md);
	free(tmp);
	free(hb);
	free(bad_dst);
	free(bad_keep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(round_trip),
	        cmocka_unit_test(merge_writers),
	        cmocka_unit_test(old_value_not_in_diff),
	        cmocka_unit_test(malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
