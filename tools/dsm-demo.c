/* SPDX-License-Identifier: MIT */
/*
 * dsm-demo: the main job of `make run`. Every rank fills its block of a
 * shared array with plain stores, then sums the next rank's block with plain
 * loads (remote misses), publishes its partial sum in the heap and bumps a
 * shared C11 atomic; rank 0 checks the totals. Run it under mpiexec:
 *
 *   DSM_STATS=1 mpiexec -n 2 build/tools/dsm-demo [elements]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <dsm.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1L << 21;
	int rank, nranks, ret, ok = 1;
	double *a;
	struct {
		double sum;
		char pad[4096 - sizeof(double)];
	} * partial;
	_Atomic long *ticks;

	ret = dsm_init(NULL);
	if (ret < 0) {
		fprintf(stderr, "dsm-demo: dsm_init: %s\n", dsm_strerror(ret));
		return 1;
	}
	rank = dsm_rank();
	nranks = dsm_nranks();
	a = dsm_all_alloc((size_t)n * sizeof(*a), DSM_DIST_BLOCK);
	partial = dsm_all_alloc((size_t)nranks * sizeof(*partial), DSM_DIST_CYCLIC);
	ticks = dsm_all_alloc(sizeof(*ticks), DSM_DIST_LOCAL);
	if (a == NULL || partial == NULL || ticks == NULL) {
		fprintf(stderr, "dsm-demo: dsm_all_alloc failed\n");
		return 1;
	}

	long lo = n * rank / nranks, hi = n * (rank + 1) / nranks;
	for (long i = lo; i < hi; i++)
		a[i] = (double)i;
	dsm_barrier();

	int next = (rank + 1) % nranks;
	double s = 0;
	for (long i = n * next / nranks; i < n * (next + 1) / nranks; i++)
		s += a[i];
	partial[next].sum = s;
	for (int i = 0; i < 1000; i++)
		atomic_fetch_add(ticks, 1);
	dsm_barrier();

	if (rank == 0) {
		double total = 0, expect = (double)n * (double)(n - 1) / 2;
		for (int r = 0; r < nranks; r++)
			total += partial[r].sum;
		ok = total == expect && atomic_load(ticks) == 1000L * nranks;
		printf("dsm-demo: %d ranks summed %ld shared doubles: %.0f (expected %.0f), "
		       "%ld atomic increments (expected %ld): %s\n",
		       nranks, n, total, expect, atomic_load(ticks), 1000L * nranks,
		       ok ? "OK" : "WRONG");
		fflush(stdout);
	}
	dsm_barrier();
	ret = dsm_finalize();
	if (ret < 0) {
		fprintf(stderr, "dsm-demo: dsm_finalize: %s\n", dsm_strerror(ret));
		return 1;
	}
	return ok ? 0 : 1;
}
