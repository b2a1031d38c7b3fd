/* SPDX-License-Identifier: MIT */
/*
 * DSM_ON_DEATH=continue, 3 ranks: the last rank (the victim) SIGKILLs itself while the
 * others read and write lines homed at it and at themselves, and wait on a mutex it
 * holds. The survivors must then get SIGBUS exactly on the lines whose only copy died
 * (a handler catches each and checks its address), read every other value intact, see
 * the lines homed at the victim written on and kept coherent at their new home, get the
 * victim's mutex with DSM_ERR_PEER_DEAD once, and finish a barrier and dsm_finalize.
 *
 * The lines, 4 KiB each, homed cyclically (line L at rank L % 3); per home, by index j:
 *   homed at the victim:  j 0-3 A: the victim wrote them, the survivors read them (kept)
 *                         j 4-7 B: rank 1 wrote them (modified there: kept)
 *                         j 8-9 C: the victim wrote them, nobody else read them (lost)
 *                         j 10-11 D: never touched (lost: the victim's home copy died)
 *                         j 12-15 W: written by rank 1 and read by rank 0 during the kill
 *                           (kept, or lost on both survivors if the victim's home copy
 *                           was their only copy when it died; homed at rank 1 with
 *                           MR_DEATH_QUIET=1, and then kept)
 *                         j 16: a mutex (lost with its home)
 *   homed at rank 0 / 1:  j 0-3 E: the victim wrote them last (modified there: lost)
 *                         j 4-7 F: the home wrote them, the victim and the other read them
 *                         j 8: a mutex the victim holds when it dies (homed at rank 0)
 *                         j 9: rank 1's last W values (homed at rank 1)
 *                         j 10: the victim's pid (homed at rank 0)
 * Multiple-writer memory, 8 lines per home (cyclic), word r written by rank r and released
 * before the kill; the survivors read j 0-3 of every home. Rank 1 then writes words 5 and
 * 6 of j 0-3 homed at rank 0 and at the victim, and releases them while the victim is
 * stopped (SIGSTOP, then rank 0's SIGKILL): that release must return once the victim is
 * dead. Every line the victim homed is lost on both survivors (its home copy was the merged
 * line), the others keep every released word, and memory allocated after the death works.
 * Exits 0 on a survivor whose checks all passed; prints "N passed, M failed" per rank.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

static int rank;

#define VICTIM 2
#define PER    24 /* lines per home */
#define WORDS  512

static volatile long *heap;
/* MR_DEATH_QUIET=1: the lines written and read during the kill are homed at rank 1, so the
 * victim sends nothing as it dies (libfabric 1.17's shm cannot survive a rank killed in the
 * middle of a send to a peer: TRAPS.md, "A dead rank and shm"). */
static int w_home = VICTIM;
static atomic_int stop;
static long w_last[4];
static volatile long *mw;
#define MW_PER 8 /* multiple-writer lines per home */

static long *mw_at(int home, int j)
{
	return (long *)(mw + (size_t)(3 * j + home) * WORDS);
}

static long *line_at(int home, int j)
{
	return (long *)(heap + (size_t)(3 * j + home) * WORDS);
}

static long value(int home, int j, int salt)
{
	return salt * 100000L + home * 1000 + j;
}

/* ---- probes that survive a SIGBUS ---- */

static __thread sigjmp_buf probe_env;
static __thread void *volatile bus_addr;
static __thread volatile int probing;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!probing)
		_exit(7);
	bus_addr = si->si_addr;
	siglongjmp(probe_env, 1);
}

/* Reads word @w of the line (or writes @v there when @write): 1 if it raised SIGBUS. */
static int probe(long *line, int w, int write, long v, long *out)
{
	bus_addr = NULL;
	probing = 1;
	if (sigsetjmp(probe_env, 1)) {
		probing = 0;
		return 1;
	}
	if (write)
		((volatile long *)line)[w] = v;
	else
		*out = ((volatile long *)line)[w];
	probing = 0;
	return 0;
}

/* The lines written and read as the victim dies may be lost (its home copy was the only
 * one when it died: a write took them from the reader, and the grant to the writer died with
 * the victim); each thread stops using one that raised SIGBUS. */
static void *churn_writer(void *arg)
{
	int lost[4] = {0};

	(void)arg;
	for (long k = 1; !atomic_load(&stop); k++)
		for (int i = 0; i < 4; i++) {
			if (lost[i])
				continue;
			if (probe(line_at(w_home, 12 + i), 1, 1, k, NULL)) {
				lost[i] = 1;
				w_last[i] = -1;
			} else {
				w_last[i] = k;
			}
		}
	return NULL;
}

static void *churn_reader(void *arg)
{
	int lost[4] = {0};
	long v;

	(void)arg;
	while (!atomic_load(&stop))
		for (int i = 0; i < 4; i++)
			if (!lost[i] && probe(line_at(w_home, 12 + i), 1, 0, 0, &v))
				lost[i] = 1;
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Rank 1, while the victim is stopped: a release that owes it diffs. */
static void *mw_releaser(void *arg)
{
	(void)arg;
	sleep_ms(450);
	for (int j = 0; j < 4; j++) {
		mw_at(VICTIM, j)[6] = value(VICTIM, j, 21);
		mw_at(0, j)[6] = value(0, j, 21);
	}
	dsm_release();
	printf("rank 1's release to the stopped victim returned\n");
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	dsm_mutex_t *mx0, *mxv;
	pthread_t th, rel;
	int dead[4], n, expected_bus = 0, got_bus = 0, wlost = 0;
	pid_t victim_pid = 0;

	mr_start(&argc, &argv); /* mr_finish is not for here: it calls MPI */
	if (dsm_init(NULL) != 0)
		return 2;
	rank = dsm_rank();
	if (getenv("MR_DEATH_QUIET") && atoi(getenv("MR_DEATH_QUIET")))
		w_home = 1;
	if (dsm_nranks() != 3) {
		fprintf(stderr, "mr_death runs on 3 ranks\n");
		return 2;
	}
	printf("pid %d\n", (int)getpid());
	fflush(stdout);
	heap = dsm_all_alloc((size_t)3 * PER * WORDS * sizeof(long), DSM_DIST_CYCLIC);
	if (heap == NULL)
		return 2;
	mx0 = (dsm_mutex_t *)line_at(0, 8);
	mxv = (dsm_mutex_t *)line_at(VICTIM, 16);
	if (rank == 0) {
		CHECK(dsm_mutex_init(mx0) == 0);
		CHECK(dsm_mutex_init(mxv) == 0);
	}
	dsm_barrier();

	/* Writes. */
	for (int j = 0; j < 4; j++) {
		if (rank == VICTIM) {
			long *a = line_at(VICTIM, j), *w = line_at(w_home, 12 + j);

			a[0] = a[WORDS - 1] = value(VICTIM, j, 1);
			if (w_home == VICTIM)
				w[0] = value(VICTIM, 12 + j, 1);
			for (int h = 0; h < 2; h++) {
				long *e = line_at(h, j);

				e[0] = e[WORDS - 1] = value(h, j, 5);
			}
		}
		if (rank == 1) {
			long *b = line_at(VICTIM, 4 + j);

			b[0] = b[WORDS - 1] = value(VICTIM, 4 + j, 2);
		}
		if (rank < 2) {
			long *f = line_at(rank, 4 + j);

			f[0] = f[WORDS - 1] = value(rank, 4 + j, 3);
		}
	}
	if (rank == VICTIM) {
		for (int j = 8; j < 10; j++)
			line_at(VICTIM, j)[0] = value(VICTIM, j, 4);
		line_at(0, 10)[0] = getpid();
	}
	mw = dsm_all_alloc_mw((size_t)3 * MW_PER * WORDS * sizeof(long), DSM_DIST_CYCLIC);
	if (mw == NULL)
		return 2;
	for (int h = 0; h < 3; h++)
		for (int j = 0; j < MW_PER; j++)
			mw_at(h, j)[rank] = value(h, j, 10 + rank);
	dsm_barrier();
	if (rank == 0)
		victim_pid = (pid_t)line_at(0, 10)[0];
	if (rank != VICTIM) {
		long sum = 0;

		for (int h = 0; h < 3; h++)
			for (int j = 0; j < 4; j++)
				sum += mw_at(h, j)[0] + mw_at(h, j)[1] + mw_at(h, j)[2];
		if (sum == 42)
			printf("(never)\n");
	}
	/* Reads: read-only copies. */
	{
		long sum = 0;

		for (int j = 0; j < 4; j++) {
			if (rank != VICTIM) {
				sum += line_at(VICTIM, j)[0] + line_at(w_home, 12 + j)[0];
				sum += line_at(1 - rank, 4 + j)[0];
			} else {
				sum += line_at(0, 4 + j)[0] + line_at(1, 4 + j)[0];
			}
		}
		if (sum == 42)
			printf("(never)\n");
	}
	dsm_barrier();
	if (rank == VICTIM)
		CHECK(dsm_mutex_lock(mx0) == 0);
	dsm_barrier();

	if (rank == VICTIM) {
		struct timespec ts;

		sleep_ms(300); /* the survivors are at work on its lines, and wait for its mutex */
		clock_gettime(CLOCK_REALTIME, &ts);
		printf("killed at %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		fflush(stdout);
		/* Stopped until rank 0 kills it: what is sent to it meanwhile stays unanswered. */
		raise(SIGSTOP);
		raise(SIGKILL);
	}
	if (rank == 1)
		for (int j = 0; j < 4; j++) {
			mw_at(VICTIM, j)[5] = value(VICTIM, j, 20);
			mw_at(0, j)[5] = value(0, j, 20);
		}

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	pthread_create(&th, NULL, rank == 1 ? churn_writer : churn_reader, NULL);
	if (rank == 1)
		pthread_create(&rel, NULL, mw_releaser, NULL);
	if (rank == 0) {
		sleep_ms(700);
		CHECK(victim_pid > 0 && kill(victim_pid, SIGKILL) == 0);
	}
	if (rank == 1) {
		/* Waits behind the victim, which dies holding it. */
		CHECK(dsm_mutex_lock(mx0) == DSM_ERR_PEER_DEAD);
		CHECK(dsm_mutex_unlock(mx0) == 0);
		CHECK(dsm_mutex_lock(mx0) == 0);
		CHECK(dsm_mutex_unlock(mx0) == 0);
	}
	while ((n = dsm_dead_ranks(dead, 4)) == 0)
		sleep_ms(10);
	CHECK(n == 1 && dead[0] == VICTIM);
	sleep_ms(200); /* the churn goes on at the lines' new home */
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	if (rank == 1) {
		pthread_join(rel, NULL);
		for (int i = 0; i < 4; i++)
			line_at(1, 9)[i] = w_last[i];
	}
	dsm_barrier(); /* among the survivors */

	for (int j = 0; j < 4; j++) {
		long v = 0;
		long *a = line_at(VICTIM, j), *b = line_at(VICTIM, 4 + j),
		     *w = line_at(w_home, 12 + j);

		CHECK(probe(a, 0, 0, 0, &v) == 0 && v == value(VICTIM, j, 1));
		CHECK(probe(a, WORDS - 1, 0, 0, &v) == 0 && v == value(VICTIM, j, 1));
		CHECK(probe(b, 0, 0, 0, &v) == 0 && v == value(VICTIM, 4 + j, 2));
		CHECK(probe(b, WORDS - 1, 0, 0, &v) == 0 && v == value(VICTIM, 4 + j, 2));
		if (probe(w, 0, 0, 0, &v)) {
			/* Lost as the victim died (possible only where it was their home). */
			wlost++;
			CHECK(w_home == VICTIM);
			CHECK(probe(w, 1, 0, 0, &v) == 1);
		} else {
			CHECK(v == (w_home == VICTIM ? value(VICTIM, 12 + j, 1) : 0));
			CHECK(probe(w, 1, 0, 0, &v) == 0 && v == line_at(1, 9)[j] && v > 0);
		}
		for (int h = 0; h < 2; h++) {
			long *f = line_at(h, 4 + j), *e = line_at(h, j);

			CHECK(probe(f, 0, 0, 0, &v) == 0 && v == value(h, 4 + j, 3));
			CHECK(probe(f, WORDS - 1, 0, 0, &v) == 0 && v == value(h, 4 + j, 3));
			/* E: the victim held them modified. */
			expected_bus++;
			if (probe(e, 0, rank == h, 1, &v)) {
				got_bus++;
				CHECK(bus_addr == (void *)e);
			} else {
				fprintf(stderr, "[rank %d] line E(%d,%d) did not raise SIGBUS\n",
				        rank, h, j);
			}
		}
	}
	for (int j = 8; j < 12; j++) {
		long v = 0, *c = line_at(VICTIM, j);

		/* C and D: homed at the victim, no survivor had a copy. */
		expected_bus++;
		if (probe(c, 3, j & 1, 1, &v)) {
			got_bus++;
			CHECK(bus_addr == (void *)(c + 3));
		} else {
			fprintf(stderr, "[rank %d] line C/D %d did not raise SIGBUS\n", rank, j);
		}
	}
	/* Poisoned for good: the same access raises SIGBUS again. */
	{
		long v;

		expected_bus++;
		got_bus += probe(line_at(VICTIM, 8), 0, 0, 0, &v);
	}
	/* Multiple-writer memory: what the victim homed is lost, the rest intact. */
	for (int j = 0; j < MW_PER; j++) {
		long v = 0, *m = mw_at(VICTIM, j);

		expected_bus++;
		if (probe(m, j & 3, 0, 0, &v)) {
			got_bus++;
			CHECK(bus_addr == (void *)(m + (j & 3)));
		} else {
			fprintf(stderr,
			        "[rank %d] multiple-writer line %d of the victim did not "
			        "raise SIGBUS\n",
			        rank, j);
		}
		for (int h = 0; h < 2; h++) {
			m = mw_at(h, j);
			for (int r = 0; r < 3; r++)
				CHECK(probe(m, r, 0, 0, &v) == 0 && v == value(h, j, 10 + r));
			CHECK(probe(m, 5, 0, 0, &v) == 0 &&
			      v == (h == 0 && j < 4 ? value(0, j, 20) : 0));
			CHECK(probe(m, 6, 0, 0, &v) == 0 &&
			      v == (h == 0 && j < 4 ? value(0, j, 21) : 0));
		}
	}
	printf("SIGBUS on %d of the %d accesses to lost lines; %d of the 4 lines in use as the "
	       "victim died were lost with it\n",
	       got_bus, expected_bus, wlost);
	CHECK(got_bus == expected_bus);
	CHECK(dsm_mutex_lock(mxv) == DSM_ERR_PEER_DEAD);

	dsm_stats_t st = {.struct_size = sizeof(st)};
	CHECK(dsm_stats(&st) == 0);
	printf("stats: dead_ranks %llu adopted_copies %llu lost_lines %llu\n",
	       (unsigned long long)st.dead_ranks, (unsigned long long)st.adopted_copies,
	       (unsigned long long)st.lost_lines);
	CHECK(st.dead_ranks == 1);
	CHECK(st.lost_lines == 12 + MW_PER + (uint64_t)wlost);
	/* Rank 0 held A, rank 1 A and B (and either may have held W). */
	CHECK(st.adopted_copies >= (rank == 1 ? 8u : 4u));

	/* Collective memory allocated after the death: a third of its lines homed at the heir in
	 * the victim's place, none of them lost. */
	{
		volatile long *fresh =
		        dsm_all_alloc((size_t)3 * 8 * WORDS * sizeof(long), DSM_DIST_CYCLIC);
		int bad = 0, bus = 0;
		long v;

		CHECK(fresh != NULL);
		for (int i = rank; fresh && i < 3 * 8; i += 2)
			if (probe((long *)(fresh + (size_t)i * WORDS), 7, 1, 7000 + i, NULL))
				bus++;
		dsm_barrier();
		for (int i = 0; fresh && i < 3 * 8; i++) {
			if (probe((long *)(fresh + (size_t)i * WORDS), 7, 0, 0, &v))
				bus++;
			else
				bad += v != 7000 + i;
		}
		printf("memory allocated after the death: %d wrong values, %d SIGBUS\n", bad, bus);
		CHECK(bad == 0 && bus == 0);
		dsm_barrier();
		CHECK(dsm_all_free((void *)fresh) == 0);
	}
	{
		volatile long *fresh =
		        dsm_all_alloc_mw((size_t)3 * 8 * WORDS * sizeof(long), DSM_DIST_CYCLIC);
		int bad = 0, bus = 0;
		long v;

		CHECK(fresh != NULL);
		for (int i = 0; fresh && i < 3 * 8; i++)
			if (probe((long *)(fresh + (size_t)i * WORDS), rank, 1, 8000 + i, NULL))
				bus++;
		dsm_barrier();
		for (int i = 0; fresh && i < 3 * 8; i++)
			for (int r = 0; r < 2; r++) {
				if (probe((long *)(fresh + (size_t)i * WORDS), r, 0, 0, &v))
					bus++;
				else
					bad += v != 8000 + i;
			}
		printf("multiple-writer memory allocated after the death: %d wrong values, %d "
		       "SIGBUS\n",
		       bad, bus);
		CHECK(bad == 0 && bus == 0);
		dsm_barrier();
		CHECK(dsm_all_free((void *)fresh) == 0);
	}
	dsm_barrier();
	CHECK(dsm_finalize() == 0);
	printf("%d passed, %d failed\n", mr_pass, mr_fail);
	fflush(stdout);
	/* Not MPI_Finalize: it would wait for the dead rank (README, "When a rank dies"). */
	return mr_fail != 0 || mr_pass == 0;
}
