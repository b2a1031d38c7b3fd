/* SPDX-License-Identifier: MIT */
/*
 * A scan of 32 MiB homed at rank 1 by rank 0, with libdsm's counters of each scan (faults,
 * lines read ahead, messages sent and received, sleeps, holds): BENCHMARKS.md, "Batches".
 *   mpicc -O2 -Iinclude bench/results/batch/scan_probe.c -o /tmp/scan -Lbuild -ldsm
 *   mpiexec -n 2 -genv LD_LIBRARY_PATH <build> /tmp/scan 6
 */
#include <dsm.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	if (dsm_init(NULL)) {
		fprintf(stderr, "init\n");
		return 1;
	}
	int r = dsm_rank();
	size_t n = (64u << 20) / 8;
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t *a = dsm_all_alloc(n * 8, DSM_DIST_BLOCK);
	/* owned by? use whole to rank1: BLOCK splits. Use only rank1's half */
	size_t lo = n / 2, hi = n;
	for (int k = 0; k < rounds; k++) {
		if (r == 1)
			for (size_t i = lo; i < hi; i++)
				a[i] = i + k;
		dsm_barrier();
		if (r == 0) {
			dsm_stats_t s0 = {.struct_size = sizeof s0},
			            s1 = {.struct_size = sizeof s1};
			dsm_stats(&s0);
			double t = now();
			uint64_t sum = 0;
			for (size_t i = lo; i < hi; i++)
				sum += a[i];
			t = now() - t;
			dsm_stats(&s1);
			printf("round %d %.1f MB/s faults %lu prefetched %lu used %lu wasted %lu "
			       "msgs %lu/%lu sleeps %lu naps %lu holds %lu sum %s\n",
			       k, (hi - lo) * 8 / t / 1e6, s1.read_faults - s0.read_faults,
			       s1.prefetched - s0.prefetched, s1.prefetch_used - s0.prefetch_used,
			       s1.prefetch_wasted - s0.prefetch_wasted, s1.msgs_sent - s0.msgs_sent,
			       s1.msgs_received - s0.msgs_received, s1.sleeps - s0.sleeps,
			       s1.naps - s0.naps, s1.holds - s0.holds, sum ? "ok" : "0");
		}
		dsm_barrier();
	}
	dsm_finalize();
	MPI_Finalize();
	return 0;
}
