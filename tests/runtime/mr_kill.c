/* SPDX-License-Identifier: MIT */
/*
 * A rank dies in the middle of a run. The last rank first takes every line of
 * its block exclusive, then the other ranks' threads start reading lines homed
 * at it while it SIGKILLs itself: they must be told, and exit, not hang.
 * Prints "killed at <CLOCK_REALTIME ns>" so that the driver script can time
 * the others' exit. With MR_KILL_EXIT=1 the last rank instead returns 0 from main
 * without dsm_finalize: libdsm must turn that into status 4, and the others must take it
 * for dead. Exits 0 only on a rank that should never get there.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

static volatile long *data;
static long per_rank;
static int victim;

static void *reader(void *arg)
{
	long sum = 0;

	(void)arg;
	for (;;)
		for (long i = 0; i < per_rank; i += 512)
			sum += data[victim * per_rank + i]; /* homed at the victim */
	return (void *)sum;
}

int main(int argc, char **argv)
{
	int rank, n;
	pthread_t th[4];

	mr_start(&argc, &argv);
	if (dsm_init(NULL) != 0)
		return 2;
	rank = dsm_rank();
	n = dsm_nranks();
	printf("pid %d\n", (int)getpid()); /* kill_rank.sh looks for what it left in /dev/shm */
	fflush(stdout);
	victim = n - 1;
	per_rank = 64 * 512; /* 64 lines of 4 KiB */
	data = dsm_all_alloc((size_t)n * per_rank * sizeof(long), DSM_DIST_BLOCK);
	if (rank == victim)
		for (long i = 0; i < per_rank; i += 512)
			data[victim * per_rank + i] = i; /* held modified at the victim */
	dsm_barrier();
	if (rank == victim) {
		struct timespec ts;

		usleep(300000); /* let the readers pile up on its lines */
		clock_gettime(CLOCK_REALTIME, &ts);
		printf("killed at %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		fflush(stdout);
		if (getenv("MR_KILL_EXIT"))
			return 0; /* without dsm_finalize */
		raise(SIGKILL);
	}
	for (int t = 0; t < 4; t++)
		pthread_create(&th[t], NULL, reader, NULL);
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL); /* never: the loop exits the process */
	return 0;
}
