/* SPDX-License-Identifier: MIT */
/*
 * What a dsm_free costs (use after free: the lines' copies go first). Rank 0 allocates
 * @lines lines of its slice, writes them, and frees them, @rounds times; with "shared",
 * rank 1 reads them in between (so every line has a copy there when it is freed). Prints
 * the median and spread of a free's time over the rounds.
 *
 *   mpicc -O2 -I include free_probe.c -L BUILD/runtime -ldsm -o free_probe
 *   DSM_PROVIDER=shm DSM_HEAP_SIZE=64G mpiexec -n 2 ./free_probe [lines] [rounds] [shared]
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsm.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int provided, rank;
	size_t lines = argc > 1 ? strtoul(argv[1], NULL, 0) : 16;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;
	int shared = argc > 3 && !strcmp(argv[3], "shared");
	dsm_info_t info = {.struct_size = sizeof(info)};
	double *t = calloc((size_t)rounds, sizeof(*t));
	volatile uint64_t sink = 0;

	MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (dsm_init(NULL) != 0 || dsm_query(&info) != 0)
		MPI_Abort(MPI_COMM_WORLD, 1);
	for (int r = 0; r < rounds; r++) {
		uint64_t *p = NULL;
		size_t words = lines * info.line_size / 8;

		if (rank == 0) {
			p = dsm_alloc(lines * info.line_size);
			for (size_t i = 0; i < words; i += 512)
				p[i] = (uint64_t)r + i;
		}
		MPI_Bcast(&p, sizeof(p), MPI_BYTE, 0, MPI_COMM_WORLD);
		if (shared && rank == 1)
			for (size_t i = 0; i < words; i += 512)
				sink += p[i];
		dsm_barrier();
		if (rank == 0) {
			double t0 = now_us();

			if (dsm_free(p) != 0)
				MPI_Abort(MPI_COMM_WORLD, 1);
			t[r] = now_us() - t0;
		}
		dsm_barrier();
	}
	if (rank == 0) {
		qsort(t, (size_t)rounds, sizeof(*t), cmp);
		printf("dsm_free of %zu lines of %zu bytes%s: median %.1f us [p10 %.1f, p90 %.1f] "
		       "over "
		       "%d rounds\n",
		       lines, info.line_size, shared ? ", each read by rank 1" : "", t[rounds / 2],
		       t[rounds / 10], t[rounds * 9 / 10], rounds);
	}
	dsm_finalize();
	MPI_Finalize();
	free(t);
	return 0;
}
