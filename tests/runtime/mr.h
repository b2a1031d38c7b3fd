/* SPDX-License-Identifier: MIT */
/*
 * A small harness for the multi-rank tests (run under mpiexec): CHECK counts
 * passes and failures per rank; mr_finish sums them over the job and rank 0
 * prints "N passed, M failed". The program owns MPI, so it outlives libdsm.
 */
#ifndef DSM_TESTS_MR_H
#define DSM_TESTS_MR_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int mr_rank, mr_pass, mr_fail;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			mr_pass++;                                                                 \
		} else {                                                                           \
			mr_fail++;                                                                 \
			fprintf(stderr, "[rank %d] FAIL %s:%d: %s\n", mr_rank, __FILE__, __LINE__, \
			        #cond);                                                            \
		}                                                                                  \
	} while (0)

static inline void mr_start(int *argc, char ***argv)
{
	int provided;

	MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &mr_rank);
}

/* The number of rounds: argv's or the default, times ten in the long tier. */
static inline long mr_rounds(long dflt)
{
	const char *tier = getenv("DSM_TEST_TIER");
	const char *r = getenv("MR_ROUNDS");
	long n = r ? atol(r) : dflt;

	return tier && tier[0] == 'l' ? 10 * n : n;
}

/* The line size the job runs with (DSM_LINE_SIZE, as a plain number or with a K suffix). */
static inline size_t mr_line_size(void)
{
	const char *e = getenv("DSM_LINE_SIZE");
	char *end;
	size_t v = e ? strtoul(e, &end, 10) : 0;

	if (v && (*end == 'K' || *end == 'k'))
		v <<= 10;
	return v ? v : 4096;
}

static inline int mr_finish(void)
{
	int local[2] = {mr_pass, mr_fail}, sum[2];

	MPI_Reduce(local, sum, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
	if (mr_rank == 0)
		printf("%d passed, %d failed\n", sum[0], sum[1]);
	MPI_Bcast(sum, 2, MPI_INT, 0, MPI_COMM_WORLD);
	MPI_Finalize();
	return sum[1] != 0 || sum[0] == 0;
}

#endif
