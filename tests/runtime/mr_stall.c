/* SPDX-License-Identifier: MIT */
/*
 * A home that stops answering without dying: rank 1 stops itself (SIGSTOP) for 12 s
 * (MR_STALL_S) while rank 0 reads a line homed at it. Rank 0 must report the stalled fault
 * once, after 10 s, with what its transport waits for, and finish normally when rank 1
 * comes back. stall_rank.sh checks the report, with heartbeats off, and again on the
 * heartbeat path (no pidfds, as between hosts) with a 20 s stop: rank 0 suspects rank 1
 * after 6 silent heartbeats but does not declare it dead (DSM_TP_DEAD_MS), and says when
 * it is back.
 */
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#include <stdlib.h>

#define STOP_S 12

extern char **environ;

/* The state letter of process @pid ('T': stopped), or 0. */
static char proc_state(int pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')'); /* "pid (comm) S ..." */
	return p && p[1] == ' ' ? p[2] : 0;
}

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
	int rank, pid1;
	int stop_s = getenv("MR_STALL_S") ? atoi(getenv("MR_STALL_S")) : STOP_S;

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
	pid1 = (int)getpid();
	MPI_Bcast(&pid1, 1, MPI_INT, 1, MPI_COMM_WORLD);
	dsm_barrier();
	if (rank == 1) {
		char cmd[64];
		char *args[] = {"sh", "-c", cmd, NULL};
		pid_t waker;

		snprintf(cmd, sizeof(cmd), "sleep %d; kill -CONT %d", stop_s, (int)getpid());
		CHECK(posix_spawn(&waker, "/bin/sh", NULL, NULL, args, environ) == 0);
		printf("rank 1 stops for %d s\n", stop_s);
		fflush(stdout);
		raise(SIGSTOP);
		waitpid(waker, NULL, 0);
	} else {
		struct timespec tick = {0, 1000000};
		double t0 = now_s();
		long v;

		/* Read only once rank 1 is stopped (it may take a while to get there). */
		while (proc_state(pid1) != 'T' && now_s() - t0 < 10)
			nanosleep(&tick, NULL);
		CHECK(proc_state(pid1) == 'T');
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
