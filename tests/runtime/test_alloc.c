/* SPDX-License-Identifier: MIT */
/*
 * The allocators over a heap mapped PROT_NONE: any touch of the heap by the
 * allocator itself would crash the test, which shows that its metadata lives
 * outside (the event loop serves remote frees and must never fault).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include <dsm.h>

#include "runtime/alloc.h"

#define LINE   4096ull
#define NRANKS 4
#define HEAP   (1ull << 30)

static char *heap;

static int group_setup(void **state)
{
	(void)state;
	heap = mmap(NULL, HEAP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return heap == MAP_FAILED ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	munmap(heap, HEAP);
	return 0;
}

static void make(struct dsm_rt_alloc *a, unsigned rank, size_t line)
{
	dsm_coh_layout_t l;

	assert_int_equal(dsm_coh_layout_init(&l, (uintptr_t)heap, HEAP, line, 4096, NRANKS), 0);
	assert_int_equal(dsm_rt_alloc_init(a, &l, rank), 0);
	a->reuse_collective = true;
}

static uint64_t line_of(const void *p)
{
	return ((uintptr_t)p - (uintptr_t)heap) / LINE;
}

static void test_collective_same_everywhere(void **state)
{
	struct dsm_rt_alloc r0, r3;
	static const size_t sizes[] = {1, 4096, 4097, 100000, 1 << 20, 17};
	void *p0[6], *p3[6];

	(void)state;
	make(&r0, 0, LINE);
	make(&r3, 3, LINE);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(
		        dsm_rt_alloc_collective(&r0, sizes[i], DSM_DIST_BLOCK, false, &p0[i]), 0);
		assert_int_equal(
		        dsm_rt_alloc_collective(&r3, sizes[i], DSM_DIST_BLOCK, false, &p3[i]), 0);
		assert_ptr_equal(p0[i], p3[i]);
		assert_int_equal((uintptr_t)p0[i] % LINE, 0);
		if (i)
			assert_true((char *)p0[i] >= (char *)p0[i - 1] + sizes[i - 1]);
	}
	/* A free and the same request again: the same hole, on both. */
	assert_int_equal(dsm_rt_free_collective(&r0, p0[2]), 0);
	assert_int_equal(dsm_rt_free_collective(&r3, p3[2]), 0);
	assert_int_equal(dsm_rt_alloc_collective(&r0, 5000, DSM_DIST_CYCLIC, false, &p0[2]), 0);
	assert_int_equal(dsm_rt_alloc_collective(&r3, 5000, DSM_DIST_CYCLIC, false, &p3[2]), 0);
	assert_ptr_equal(p0[2], p3[2]);
	dsm_rt_alloc_fini(&r0);
	dsm_rt_alloc_fini(&r3);
}

static void test_homes_by_distribution(void **state)
{
	struct dsm_rt_alloc a;
	void *b, *c, *l;
	static const int block[10] = {0, 0, 0, 1, 1, 1, 2, 2, 3, 3};
	dsm_coh_span_t span;

	(void)state;
	make(&a, 1, LINE);
	assert_int_equal(dsm_rt_alloc_collective(&a, 10 * LINE, DSM_DIST_BLOCK, false, &b), 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, 10 * LINE, DSM_DIST_CYCLIC, false, &c), 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, 3 * LINE, DSM_DIST_LOCAL, false, &l), 0);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(dsm_rt_alloc_home(&a, line_of(b) + i, &span), block[i]);
		assert_int_equal(span.first_line, line_of(b));
		assert_int_equal(span.nlines, 10);
		assert_int_equal(dsm_rt_alloc_home(&a, line_of(c) + i, NULL), i % NRANKS);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(dsm_rt_alloc_home(&a, line_of(l) + i, NULL), 0);
	/* A line of the collective region that nothing covers has no home. */
	assert_int_equal(dsm_rt_alloc_home(&a, line_of(l) + 3, NULL), -EINVAL);
	assert_int_equal(dsm_rt_free_collective(&a, c), 0);
	assert_int_equal(dsm_rt_alloc_home(&a, line_of(c), NULL), -EINVAL);
	dsm_rt_alloc_fini(&a);
}

static void test_collective_bad_input(void **state)
{
	struct dsm_rt_alloc a;
	void *p = NULL, *q;
	int x;

	(void)state;
	make(&a, 0, LINE);
	assert_int_equal(dsm_rt_alloc_collective(&a, 0, DSM_DIST_BLOCK, false, &p), -EINVAL);
	assert_int_equal(dsm_rt_alloc_collective(&a, 10, (dsm_dist_t)7, false, &p), -EINVAL);
	assert_null(p); /* outputs set only on success */
	assert_int_equal(dsm_rt_alloc_collective(&a, HEAP, DSM_DIST_BLOCK, false, &p), -ENOMEM);
	assert_int_equal(dsm_rt_alloc_collective(&a, HEAP / 2, DSM_DIST_BLOCK, false, &p), 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, 1, DSM_DIST_BLOCK, false, &q),
	                 -ENOMEM);                                               /* full */
	assert_int_equal(dsm_rt_free_collective(&a, (char *)p + LINE), -EINVAL); /* not a start */
	assert_int_equal(dsm_rt_free_collective(&a, p), 0);
	assert_int_equal(dsm_rt_free_collective(&a, p), -EINVAL); /* double free */
	assert_int_equal(dsm_rt_free_collective(&a, &x), DSM_ERR_FOREIGN);
	assert_int_equal(dsm_rt_free_collective(&a, heap + HEAP), DSM_ERR_FOREIGN);
	assert_int_equal(a.live_bytes, 0);
	dsm_rt_alloc_fini(&a);
}

static void test_collective_retired_without_reuse(void **state)
{
	struct dsm_rt_alloc a;
	void *p, *q;

	(void)state;
	make(&a, 0, LINE);
	a.reuse_collective = false; /* as the runtime runs it */
	assert_int_equal(dsm_rt_alloc_collective(&a, 8 * LINE, DSM_DIST_BLOCK, false, &p), 0);
	assert_int_equal(dsm_rt_free_collective(&a, p), 0);
	assert_int_equal(dsm_rt_alloc_home(&a, line_of(p), NULL), -EINVAL); /* use after free */
	assert_int_equal(dsm_rt_alloc_collective(&a, 8 * LINE, DSM_DIST_CYCLIC, false, &q), 0);
	assert_true((char *)q >= (char *)p + 8 * LINE); /* never the same lines again */
	assert_int_equal(dsm_rt_free_collective(&a, p), -EINVAL);
	dsm_rt_alloc_fini(&a);
}

static void test_local_slices(void **state)
{
	struct dsm_rt_alloc r0, r2;
	void *p, *q;
	int x;

	(void)state;
	make(&r0, 0, LINE);
	make(&r2, 2, LINE);
	assert_int_equal(dsm_rt_alloc_local(&r2, 3 * LINE, &p), 0);
	assert_int_equal(dsm_rt_alloc_owner(&r2, p), 2);
	assert_int_equal(dsm_rt_alloc_owner(&r0, p), 2); /* any rank routes its free to 2 */
	assert_int_equal(dsm_rt_alloc_home(&r0, line_of(p), NULL), 2);
	assert_int_equal(dsm_rt_alloc_home(&r0, line_of(p) + 2, NULL), 2);
	assert_int_equal(dsm_rt_free_local(&r0, p, NULL, NULL), DSM_ERR_FOREIGN); /* not rank 0's */
	assert_int_equal(dsm_rt_alloc_local(&r0, 3 * LINE, &q), 0);
	assert_int_equal(dsm_rt_alloc_owner(&r2, q), 0);
	assert_true(line_of(q) < line_of(p));
	assert_int_equal(dsm_rt_free_local(&r2, p, NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&r2, p, NULL, NULL), -EINVAL); /* double free */
	assert_int_equal(dsm_rt_free_local(&r2, &x, NULL, NULL), DSM_ERR_FOREIGN);
	assert_int_equal(dsm_rt_alloc_local(&r2, 0, &p), -EINVAL);
	assert_int_equal(dsm_rt_alloc_local(&r2, HEAP, &p), -ENOMEM);
	assert_int_equal(dsm_rt_alloc_owner(&r0, heap), -1);
	dsm_rt_alloc_fini(&r0);
	dsm_rt_alloc_fini(&r2);
}

static void test_slabs(void **state)
{
	struct dsm_rt_alloc a;
	void *p[300];
	void *big;

	(void)state;
	make(&a, 1, LINE);
	/* 16-byte objects: 256 to a 4 KiB line, all distinct, the first 256 in one line. */
	for (int i = 0; i < 300; i++) {
		assert_int_equal(dsm_rt_alloc_local(&a, 10, &p[i]), 0);
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		assert_int_equal(dsm_rt_alloc_owner(&a, p[i]), 1);
		if (i > 0 && i < 256)
			assert_int_equal(line_of(p[i]), line_of(p[0]));
	}
	assert_true(line_of(p[256]) != line_of(p[0]));
	assert_int_equal(a.live_bytes, 300 * 16);
	assert_int_equal(dsm_rt_free_local(&a, (char *)p[5] + 8, NULL, NULL),
	                 -EINVAL); /* inside an object */
	assert_int_equal(dsm_rt_free_local(&a, p[5], NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&a, p[5], NULL, NULL), -EINVAL); /* double free */
	void *again;
	assert_int_equal(dsm_rt_alloc_local(&a, 16, &again), 0);
	assert_ptr_equal(again, p[5]); /* the hole is reused */
	for (int i = 0; i < 300; i++)
		assert_int_equal(dsm_rt_free_local(&a, p[i], NULL, NULL), 0);
	assert_int_equal(a.live_bytes, 0);
	/* Empty slabs gave their lines back: a whole-slice allocation fits again. */
	assert_int_equal(dsm_rt_alloc_local(&a, a.slice_lines * LINE, &big), 0);
	assert_int_equal(dsm_rt_free_local(&a, big, NULL, NULL), 0);
	/* A quarter line is the largest slab object; more takes whole lines. */
	assert_int_equal(dsm_rt_alloc_local(&a, LINE / 4, &p[0]), 0);
	assert_int_equal(dsm_rt_alloc_local(&a, LINE / 4 + 1, &p[1]), 0);
	assert_int_equal((uintptr_t)p[1] % LINE, 0);
	assert_int_equal(a.live_bytes, LINE / 4 + LINE);
	dsm_rt_alloc_fini(&a);
}

struct worker {
	struct dsm_rt_alloc *a;
	unsigned seed;
	void *live[512];
	size_t size[512];
	int err;
};

static void *churn(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 20000 && !w->err; i++) {
		int k = (int)(rand_r(&w->seed) % 512);
		if (w->live[k]) {
			if (dsm_rt_free_local(w->a, w->live[k], NULL, NULL) != 0)
				w->err = 1;
			w->live[k] = NULL;
		} else {
			w->size[k] = 1 + rand_r(&w->seed) % (3 * LINE);
			if (dsm_rt_alloc_local(w->a, w->size[k], &w->live[k]) != 0)
				w->err = 2;
		}
	}
	return NULL;
}

static int by_addr(const void *x, const void *y)
{
	const uintptr_t *a = x, *b = y;
	return a[0] < b[0] ? -1 : a[0] > b[0];
}

/* What a free leaves unallocated (free.c drops those lines' copies), and DSM_DEBUG_FREE's
 * quarantine: nothing freed is handed out again, and an emptied slab's line stays out. */
static void test_freed_lines_and_quarantine(void **state)
{
	struct dsm_rt_alloc a;
	void *obj[2], *ext, *again;
	uint64_t first, n;

	(void)state;
	make(&a, 0, LINE);
	assert_int_equal(dsm_rt_alloc_local(&a, 32, &obj[0]), 0);
	assert_int_equal(dsm_rt_alloc_local(&a, 32, &obj[1]), 0);
	assert_int_equal(dsm_rt_alloc_local(&a, 3 * LINE, &ext), 0);
	assert_int_equal(dsm_rt_alloc_size(&a, obj[0]), 32);
	assert_int_equal(dsm_rt_alloc_size(&a, ext), 3 * LINE);
	assert_int_equal(dsm_rt_alloc_size(&a, (char *)ext + 8), 0);
	assert_true(dsm_rt_alloc_live(&a, line_of(ext) + 2));
	assert_int_equal(dsm_rt_free_local(&a, ext, &first, &n), 0);
	assert_int_equal(first, line_of(ext));
	assert_int_equal(n, 3);
	assert_false(dsm_rt_alloc_live(&a, line_of(ext) + 2));
	/* An object whose slab holds another: its line stays allocated. */
	assert_int_equal(dsm_rt_free_local(&a, obj[0], &first, &n), 0);
	assert_int_equal(n, 0);
	assert_true(dsm_rt_alloc_live(&a, line_of(obj[1])));
	assert_int_equal(dsm_rt_free_local(&a, obj[1], &first, &n), 0);
	assert_int_equal(first, line_of(obj[1]));
	assert_int_equal(n, 1);
	assert_false(dsm_rt_alloc_live(&a, line_of(obj[1])));
	dsm_rt_alloc_fini(&a);

	make(&a, 0, LINE);
	a.quarantine = true;
	assert_int_equal(dsm_rt_alloc_local(&a, 32, &obj[0]), 0);
	assert_int_equal(dsm_rt_alloc_local(&a, 32, &obj[1]), 0);
	assert_int_equal(dsm_rt_free_local(&a, obj[0], NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&a, obj[0], NULL, NULL), -EINVAL); /* double free */
	assert_int_equal(dsm_rt_alloc_local(&a, 32, &again), 0);
	assert_true(again != obj[0]); /* the hole is not reused */
	/* A slab whose free objects are all freed ones is full: the next object comes from a
	 * new slab. */
	for (int i = 0; i < (int)(LINE / 32) * 3; i++) {
		void *o;

		assert_int_equal(dsm_rt_alloc_local(&a, 32, &o), 0);
		if (i % 2 == 0)
			assert_int_equal(dsm_rt_free_local(&a, o, NULL, NULL), 0);
	}
	assert_int_equal(dsm_rt_alloc_local(&a, 3 * LINE, &ext), 0);
	assert_int_equal(dsm_rt_free_local(&a, ext, &first, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(dsm_rt_alloc_local(&a, 3 * LINE, &again), 0);
	assert_true(line_of(again) >= line_of(ext) + 3); /* nor are freed lines */
	assert_false(dsm_rt_alloc_live(&a, line_of(ext)));
	dsm_rt_alloc_fini(&a);
}

static void test_threads_never_overlap(void **state)
{
	struct dsm_rt_alloc a;
	static struct worker w[4];
	pthread_t th[4];
	uintptr_t(*all)[2] = calloc(4 * 512, sizeof(*all));
	size_t n = 0;

	(void)state;
	make(&a, 3, LINE);
	for (int t = 0; t < 4; t++) {
		memset(&w[t], 0, sizeof(w[t]));
		w[t].a = &a;
		w[t].seed = 1234u + (unsigned)t;
		assert_int_equal(pthread_create(&th[t], NULL, churn, &w[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(w[t].err, 0);
		for (int k = 0; k < 512; k++)
			if (w[t].live[k]) {
				all[n][0] = (uintptr_t)w[t].live[k];
				all[n++][1] = w[t].size[k];
			}
	}
	qsort(all, n, sizeof(*all), by_addr);
	for (size_t i = 1; i < n; i++)
		assert_true(all[i - 1][0] + all[i - 1][1] <= all[i][0]);
	print_message("4 threads x 20000 alloc/free: %zu live allocations, none overlapping\n", n);
	for (int t = 0; t < 4; t++)
		for (int k = 0; k < 512; k++)
			if (w[t].live[k])
				assert_int_equal(dsm_rt_free_local(&a, w[t].live[k], NULL, NULL),
				                 0);
	assert_int_equal(a.live_bytes, 0);
	free(all);
	dsm_rt_alloc_fini(&a);
}

/* A snapshot's allocator state (ckpt.c): restored into a fresh allocator it gives the same
 * homes, frees the same objects and hands out the same next addresses; a malformed state,
 * another rank's slice, or a restore into a used allocator are refused. */
static unsigned mw_seen;
static uint64_t mw_first, mw_lines;

static void count_mw(void *arg, uint64_t first, uint64_t n)
{
	(void)arg;
	mw_seen++;
	mw_first = first;
	mw_lines = n;
}

static void test_export_restore(void **state)
{
	struct dsm_rt_alloc a, b, c;
	void *coll[3], *obj[5], *ext, *x, *y;
	uint64_t *w;
	size_t n;

	(void)state;
	make(&a, 2, LINE);
	a.reuse_collective = false;
	assert_int_equal(dsm_rt_alloc_collective(&a, 5 * LINE, DSM_DIST_BLOCK, false, &coll[0]), 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, 3 * LINE, DSM_DIST_CYCLIC, false, &coll[1]),
	                 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, LINE, DSM_DIST_LOCAL, true, &coll[2]), 0);
	assert_int_equal(dsm_rt_free_collective(&a, coll[1]), 0); /* a gap, never reused */
	for (int i = 0; i < 5; i++)
		assert_int_equal(dsm_rt_alloc_local(&a, 100, &obj[i]), 0);
	assert_int_equal(dsm_rt_free_local(&a, obj[2], NULL, NULL), 0);
	assert_int_equal(dsm_rt_alloc_local(&a, 3 * LINE, &ext), 0);
	assert_int_equal(dsm_rt_alloc_export(&a, &w, &n), 0);
	assert_int_equal(dsm_rt_alloc_state_has_local(w, n), 1);

	make(&b, 2, LINE);
	b.reuse_collective = false;
	assert_int_equal(dsm_rt_alloc_restore(&b, w, n, true), 0);
	assert_int_equal(b.live_bytes, a.live_bytes);
	for (uint64_t l = 0; l < 16; l++)
		assert_int_equal(dsm_rt_alloc_home(&b, l, NULL), dsm_rt_alloc_home(&a, l, NULL));
	assert_int_equal(dsm_rt_alloc_home_of(&b, coll[1]), -EINVAL); /* freed stays freed */
	mw_seen = 0;
	dsm_rt_alloc_each_mw(&b, count_mw, NULL); /* coll[2] is multiple-writer memory */
	assert_int_equal(mw_seen, 1);
	assert_int_equal(mw_first, line_of(coll[2]));
	assert_int_equal(mw_lines, 1);
	assert_int_equal(dsm_rt_free_local(&b, obj[2], NULL, NULL), -EINVAL); /* freed before */
	assert_int_equal(dsm_rt_free_local(&b, obj[3], NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&b, ext, NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&a, obj[3], NULL, NULL), 0);
	assert_int_equal(dsm_rt_free_local(&a, ext, NULL, NULL), 0);
	assert_int_equal(dsm_rt_alloc_collective(&a, LINE, DSM_DIST_BLOCK, false, &x), 0);
	assert_int_equal(dsm_rt_alloc_collective(&b, LINE, DSM_DIST_BLOCK, false, &y), 0);
	assert_ptr_equal(x, y);
	assert_int_equal(dsm_rt_alloc_local(&a, 100, &x), 0);
	assert_int_equal(dsm_rt_alloc_local(&b, 100, &y), 0);
	assert_ptr_equal(x, y);
	/* Used already; another rank's slice; the collective part alone on rank 0. */
	assert_int_equal(dsm_rt_alloc_restore(&b, w, n, true), -EINVAL);
	make(&c, 1, LINE);
	assert_int_equal(dsm_rt_alloc_restore(&c, w, n, true), -EINVAL);
	dsm_rt_alloc_fini(&c);
	make(&c, 0, LINE);
	assert_int_equal(dsm_rt_alloc_restore(&c, w, n, false), 0);
	assert_int_equal(dsm_rt_alloc_home_of(&c, coll[0]), 0);
	assert_int_equal(dsm_rt_free_collective(&c, coll[2]), 0);
	dsm_rt_alloc_fini(&c);
	/* Cut short, or a word changed: refused, whatever the cut. */
	for (size_t k = 0; k < n; k++) {
		make(&c, 2, LINE);
		assert_int_equal(dsm_rt_alloc_restore(&c, w, k, true), -EINVAL);
		dsm_rt_alloc_fini(&c);
	}
	w[0] ^= 1;
	make(&c, 2, LINE);
	assert_int_equal(dsm_rt_alloc_restore(&c, w, n, true), -EINVAL);
	assert_int_equal(dsm_rt_alloc_state_has_local(w, n), -EINVAL);
	dsm_rt_alloc_fini(&c);
	free(w);
	dsm_rt_alloc_fini(&a);
	dsm_rt_alloc_fini(&b);
}

static void test_heap_too_small(void **state)
{
	struct dsm_rt_alloc a;
	dsm_coh_layout_t l;

	(void)state;
	assert_int_equal(dsm_coh_layout_init(&l, (uintptr_t)heap, 4 * LINE, LINE, 4096, NRANKS), 0);
	assert_int_equal(dsm_rt_alloc_init(&a, &l, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_collective_same_everywhere),
	        cmocka_unit_test(test_homes_by_distribution),
	        cmocka_unit_test(test_collective_bad_input),
	        cmocka_unit_test(test_collective_retired_without_reuse),
	        cmocka_unit_test(test_local_slices),
	        cmocka_unit_test(test_slabs),
	        cmocka_unit_test(test_freed_lines_and_quarantine),
	        cmocka_unit_test(test_threads_never_overlap),
	        cmocka_unit_test(test_export_restore),
	        cmocka_unit_test(test_heap_too_small),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
