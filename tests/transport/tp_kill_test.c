/* SPDX-License-Identifier: MIT */
/*
 * Peer death: the last rank kills itself with SIGKILL while the others sleep
 * in their event loops; each survivor must get DSM_TP_EV_PEER_DEAD within
 * 10 s, and a send to the dead rank must fail.
 *
 * `tp_kill_test fork N` starts N ranks itself, with a bootstrap in shared
 * memory: under mpiexec, hydra SIGKILLs every other rank's process group
 * about a millisecond after one dies, even with -disable-auto-cleanup
 * (measured), so the survivors' report would race hydra's cleanup.
 * Without arguments it runs under mpiexec; with one rank it only opens the
 * transport (the unknown-provider test).
 *
 * With DSM_TP_NO_PIDFD=1 only the heartbeats can tell: the path a rank on
 * another host takes. Afterwards /dev/shm must hold nothing of any rank of
 * the run, the victim's shm region included.
 */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "runtime/bootstrap.h"
#include "transport/transport.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- a bootstrap for forked ranks: shared memory and a process-shared barrier ---- */

struct shm_boot {
	pthread_barrier_t bar;
	int np;
	unsigned char buf[64 * 4096];
};

static struct shm_boot *sb;

static int shm_barrier(void *ctx)
{
	(void)ctx;
	pthread_barrier_wait(&sb->bar);
	return 0;
}

static int shm_allgather(void *ctx, const void *mine, void *all, size_t len)
{
	int rank = (int)(intptr_t)ctx;

	if (len * (size_t)sb->np > sizeof(sb->buf))
		return -1;
	memcpy(sb->buf + (size_t)rank * len, mine, len);
	pthread_barrier_wait(&sb->bar);
	memcpy(all, sb->buf, len * (size_t)sb->np);
	pthread_barrier_wait(&sb->bar);
	return 0;
}

static int run(const struct dsm_tp_boot *boot, bool mpi);

static int forked(int np)
{
	pthread_barrierattr_t a;
	pid_t pids[64];
	int failed = 0;
	DIR *d;

	sb = mmap(NULL, sizeof(*sb), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sb == MAP_FAILED)
		return 1;
	pthread_barrierattr_init(&a);
	pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&sb->bar, &a, (unsigned)np);
	sb->np = np;
	if (np < 2 || np > 64)
		return 1;
	for (int r = 0; r < np; r++) {
		if ((pids[r] = fork()) == 0) {
			struct dsm_tp_boot b = {(void *)(intptr_t)r, r, np, shm_allgather,
			                        shm_barrier};
			_exit(run(&b, false));
		}
	}
	for (int r = 0; r < np; r++) {
		int st;
		if (wait(&st) < 0)
			return 1;
		/* the victim dies by SIGKILL; everyone else must exit 0 */
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			failed++;
	}
	/* Leftovers in /dev/shm named after one of our ranks (shm's "pid:uid:n"). */
	d = opendir("/dev/shm");
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		for (int r = 0; r < np; r++) {
			char pre[32];
			int n = snprintf(pre, sizeof(pre), "%d:", (int)pids[r]);
			if (strncmp(e->d_name, pre, (size_t)n) == 0) {
				printf("kill test: FAILED: /dev/shm/%s of rank %d left behind\n",
				       e->d_name, r);
				failed++;
			}
		}
	}
	if (d)
		closedir(d);
	if (failed)
		printf("kill test: FAILED on %d ranks\n", failed);
	else
		printf("kill test: all survivors passed\n");
	return failed != 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "fork") == 0)
		return forked(atoi(argv[2]));
	if (dsm_rt_boot_init(NULL) != 0)
		return 1;
	return run(dsm_rt_boot_tp(), true);
}

static int run(const struct dsm_tp_boot *boot, bool mpi)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = 4};
	dsm_tp_t *tp;
	int me, np, victim, ret;
	double t_kill, deadline;
	bool seen = false;

	me = boot->rank;
	np = boot->size;
	attr.boot = boot;
	ret = dsm_tp_open(NULL, &attr, &tp);
	if (ret) {
		printf("rank %d: dsm_tp_open: %s\n", me, dsm_strerror(ret));
		fflush(stdout);
		if (mpi)
			dsm_rt_boot_fini();
		return np == 1 ? 0 : 1;
	}
	if (np < 2) {
		dsm_tp_close(tp);
		if (mpi)
			dsm_rt_boot_fini();
		return 0;
	}
	victim = np - 1;
	/* Some traffic first, so connections exist (rxm connects lazily). */
	for (int r = 0; r < np; r++)
		if (r != me)
			dsm_tp_send(tp, r, 1, "hi", 2);
	boot->barrier(boot->ctx);
	if (me == victim) {
		struct timespec d = {0, 300 * 1000 * 1000};
		nanosleep(&d, NULL); /* the others are asleep by now */
		raise(SIGKILL);
	}
	t_kill = now_s() + 0.3;
	deadline = now_s() + 15;
	while (!seen && now_s() < deadline) {
		struct dsm_tp_event ev[8];
		int n;

		dsm_tp_sleep(tp, 20000);
		n = dsm_tp_poll(tp, ev, 8);
		for (int k = 0; k < n; k++)
			if (ev[k].type == DSM_TP_EV_PEER_DEAD && ev[k].peer == victim)
				seen = true;
	}
	double took = now_s() - t_kill;
	ret = dsm_tp_send(tp, victim, 1, "x", 1);
	if (!seen || took > 10 || ret != DSM_ERR_PEER_DEAD) {
		printf("kill test: rank %d FAILED: death %s after %.2f s, send gave %d\n", me,
		       seen ? "seen" : "not seen", took, ret);
		fflush(stdout);
		_exit(1);
	}
	printf("kill test: rank %d saw rank %d die %.0f ms after the kill (%s), a send to it "
	       "gave '%s'\nkill test: rank %d passed\n",
	       me, victim, took * 1e3, tp->prov, dsm_strerror(ret), me);
	fflush(stdout);
	/* Close (frees libfabric's shm region) but do not finalize MPI: a rank is dead. */
	dsm_tp_close(tp);
	_exit(0);
}
