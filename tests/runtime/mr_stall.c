/* SPDX-License-Identifier: MIT */
/*
 * A home that stops answering without dying: rank 1 stops itself (SIGSTOP) for 12 s while
 * rank 0 reads a line homed at it. Rank 0 must report the stalled fault once, after 10 s,
 * with what its transport waits for, and finish normally when rank 1 comes back.
 * stall_rank.sh checks the report. Heartbeats must be off (DSM_TP_HEARTBEAT_MS=0): with
 * them, a rank silent for 6 s is declared dead, which is the right answer on a cluster but
 * not what this test is about.
 */
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#define STOP_S 12

extern char **environ;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	volatile long *data;
	long per_line;
	int rank;

	mr_start(&argc, &argv);
	if (dsm_init(NULL) != 0)
		return 2;
	rank = dsm_rank();
	per_line = (long)(mr_line_size() / sizeof(long));
	CHECK(dsm_nranks() == 2);
	data = dsm_all_alloc((size_t)dsm_nranks() * mr_line_size(), DSM_DIST_BLOCK);
	CHECK(data != NULL);
	if (rank == 1)
		data[per_line] = 42; /* rank 1's line, modified at its home */
	dsm_barrier();
	if (rank == 1) {
		char cmd[64];
		char *args[] = {"sh", "-c", cmd, NULL};
		pid_t waker;

		snprintf(cmd, sizeof(cmd), "sleep %d; kill -CONT %d", STOP_S, (int)getpid());
		CHECK(posix_spawn(&waker, "/bin/sh", NULL, NULL, args, environ) == 0);
		printf("rank 1 stops for %d s\n", STOP_S);
		fflush(stdout);
		raise(SIGSTOP);
		waitpid(waker, NULL, 0);
	} else {
		struct timespec settle = {0, 200000000};
		double t0;
		long v;

		nanosleep(&settle, NULL); /* rank 1 is stopped by now */
		t0 = now_s();
		v = data[per_line];
		printf("rank 0 read %ld after %.1f s\n", v, now_s() - t0);
		CHECK(v == 42);
		CHECK(now_s() - t0 > 10);
	}
	dsm_barrier();
	dsm_finalize();
	return mr_finish();
}
