/* SPDX-License-Identifier: MIT */
/*
 * The `threads` workload's reads outside dsm-bench, with libdsm's counters per run: rank 0's
 * N threads read disjoint lines homed at rank 1 in a scattered order, 4,096 lines, 3 rounds.
 * Built and run against two builds of libdsm (BENCHMARKS.md, "Batches"):
 *   mpicc -O2 -Iinclude bench/results/batch/threads_probe.c -o /tmp/probe -Lbuild -ldsm -lpthread
 *   mpiexec -n 2 -genv LD_LIBRARY_PATH <build> /tmp/probe 2
 */
#include <dsm.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}
static char *a;
static size_t L = 4096;
static long per;
static int nt;
static void *run(void *p)
{
	long t = (long)p;
	volatile long s = 0;
	for (long k = 0; k < per; k++) {
		long i = t * per + (k * 37) % per;
		s += *(volatile long *)(a + i * L);
	}
	return NULL;
}
int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	dsm_init(NULL);
	int r = dsm_rank();
	nt = atoi(argv[1]);
	per = 4096 / nt;
	for (int round = 0; round < 3; round++) {
		a = dsm_all_alloc(8192 * L * 2, DSM_DIST_BLOCK);
		a += 8192 * L; /* rank 1's half */
		if (r == 1)
			for (long i = 0; i < 8192; i++)
				*(long *)(a + i * L) = i;
		dsm_barrier();
		if (r == 0) {
			dsm_stats_t s0 = {.struct_size = sizeof s0},
			            s1 = {.struct_size = sizeof s1};
			dsm_stats(&s0);
			pthread_t th[8];
			double t0 = now();
			for (long t = 0; t < nt; t++)
				pthread_create(&th[t], 0, run, (void *)t);
			for (int t = 0; t < nt; t++)
				pthread_join(th[t], 0);
			double dt = now() - t0;
			dsm_stats(&s1);
			printf("%d thr: %.0f f/s faults %lu msgs %lu/%lu sleeps %lu naps %lu holds "
			       "%lu early %lu stale %lu missed %lu\n",
			       nt, 4096 / dt, s1.read_faults - s0.read_faults,
			       s1.msgs_sent - s0.msgs_sent, s1.msgs_received - s0.msgs_received,
			       s1.sleeps - s0.sleeps, s1.naps - s0.naps, s1.holds - s0.holds,
			       s1.holds_early - s0.holds_early, s1.stale_faults - s0.stale_faults,
			       s1.missed_wakeups - s0.missed_wakeups);
		}
		dsm_barrier();
		dsm_all_free(a - 8192 * L);
	}
	dsm_finalize();
	MPI_Finalize();
	return 0;
}
