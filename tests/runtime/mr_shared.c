/* SPDX-License-Identifier: MIT */
/*
 * Shared memory that behaves as one machine's: C11 atomics from every thread
 * of every rank, a spin lock made of a heap atomic, a linked list built by
 * one rank and walked by another, eight threads per rank faulting on the same
 * lines at once, dsm_mutex with every thread of every rank, and MPI moving
 * data from and into heap pages that are not present yet (kernel faults).
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#define THREADS 4

static int rank, nranks;
static long rounds;

struct shared {
	_Atomic long counter;
	char pad1[4096];
	atomic_int spin;
	long plain; /* protected by spin */
	char pad2[4096];
	dsm_mutex_t mutex;
	long guarded; /* protected by mutex */
	long turns[64][THREADS];
	char pad3[4096];
	_Atomic long ping; /* taken in turns */
};

static struct shared *sh;

static void *atomics(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds; i++)
		atomic_fetch_add(&sh->counter, 1);
	return NULL;
}

static void *spinlocked(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds / 4; i++) {
		int expect = 0;
		while (!atomic_compare_exchange_weak(&sh->spin, &expect, 1))
			expect = 0;
		sh->plain++;
		atomic_store(&sh->spin, 0);
	}
	return NULL;
}

static void *mutexed(void *arg)
{
	long t = (long)arg;

	for (long i = 0; i < rounds / 10; i++) {
		if (dsm_mutex_lock(&sh->mutex) != 0)
			return (void *)1;
		sh->guarded++;
		sh->turns[rank][t]++;
		if (dsm_mutex_unlock(&sh->mutex) != 0)
			return (void *)1;
	}
	return NULL;
}

static void run_threads(void *(*fn)(void *), int n)
{
	pthread_t th[16];
	void *ret;

	for (long t = 0; t < n; t++)
		pthread_create(&th[t], NULL, fn, (void *)t);
	for (int t = 0; t < n; t++) {
		pthread_join(th[t], &ret);
		CHECK(ret == NULL);
	}
}

struct node {
	long value;
	struct node *next;
};

static long *same_lines;

static void *touch_same(void *arg)
{
	long t = (long)arg, bad = 0;

	/* Every thread reads then writes the same 16 lines, all starting at once. */
	for (int l = 0; l < 16; l++) {
		/* nobody writes word 0: it reads as zero */
		bad += __atomic_load_n(&same_lines[l * 512], __ATOMIC_RELAXED) != 0;
		__atomic_fetch_add(&same_lines[l * 512 + 1 + t], 1, __ATOMIC_RELAXED);
	}
	return (void *)bad;
}

int main(int argc, char **argv)
{
	mr_start(&argc, &argv);
	rounds = mr_rounds(20000);
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	sh = dsm_all_alloc(sizeof(*sh), DSM_DIST_BLOCK);
	CHECK(sh != NULL);
	if (rank == 0)
		CHECK(dsm_mutex_init(&sh->mutex) == 0);
	dsm_barrier();

	/* C11 atomics: the exact total. */
	run_threads(atomics, THREADS);
	dsm_barrier();
	CHECK(atomic_load(&sh->counter) == (long)nranks * THREADS * rounds);

	/* Taking turns on one line: every turn moves it, and the rank whose turn is next waits
	 * for it while the other holds it. The value counts the turns: exact, in order. */
	long nturns = rounds / 100;
	for (long v; (v = atomic_load(&sh->ping)) < nturns * nranks;)
		if (v % nranks == rank)
			CHECK(atomic_fetch_add(&sh->ping, 1) == v);
		else
			sched_yield();
	dsm_barrier();
	CHECK(atomic_load(&sh->ping) == nturns * nranks);

	/* There, holds end as soon as the woken threads have run (DESIGN.md, Progress), where
	 * the kernel shows how often a thread was scheduled. */
	dsm_stats_t st = {.struct_size = sizeof(st)};
	CHECK(dsm_stats(&st) == 0);
	unsigned long long hl[2] = {st.holds, st.holds_early}, all[2];
	MPI_Allreduce(hl, all, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	const char *early = getenv("DSM_HOLD_EARLY");
	bool expect_early =
	        access("/proc/self/schedstat", R_OK) == 0 && !(early && strcmp(early, "0") == 0);
	if (rank == 0)
		printf("mr_shared: %ld turns; %llu holds, %llu ended early%s\n", nturns * nranks,
		       all[0], all[1], expect_early ? "" : " (not expected here)");
	CHECK(all[0] > 0);
	if (expect_early)
		CHECK(all[1] > 0);

	/* A spin lock in the heap protecting a plain counter. */
	run_threads(spinlocked, THREADS);
	dsm_barrier();
	CHECK(sh->plain == (long)nranks * THREADS * (rounds / 4));

	/* dsm_mutex: the exact total, and every thread of every rank got the lock. */
	run_threads(mutexed, THREADS);
	dsm_barrier();
	CHECK(sh->guarded == (long)nranks * THREADS * (rounds / 10));
	for (int r = 0; r < nranks; r++)
		for (int t = 0; t < THREADS; t++)
			CHECK(sh->turns[r][t] == rounds / 10);

	/* A linked list built by rank 0 from its own dsm_alloc memory, walked by the last rank. */
	struct node **head = dsm_all_alloc(sizeof(*head), DSM_DIST_LOCAL);
	if (rank == 0) {
		struct node *h = NULL;
		for (long i = 0; i < 1000; i++) {
			struct node *nd = dsm_alloc(sizeof(*nd));
			nd->value = i;
			nd->next = h;
			h = nd;
		}
		*head = h;
	}
	dsm_barrier();
	if (rank == nranks - 1) {
		long sum = 0, count = 0;
		for (struct node *nd = *head; nd; nd = nd->next) {
			sum += nd->value;
			count++;
		}
		CHECK(count == 1000);
		CHECK(sum == 999 * 1000 / 2);
	}
	dsm_barrier();

	/* Eight threads per rank on the same lines at once. */
	same_lines = dsm_all_alloc(16 * 4096, DSM_DIST_CYCLIC);
	dsm_barrier();
	run_threads(touch_same, 8);
	dsm_barrier();
	for (int l = 0; l < 16; l++)
		for (int t = 0; t < 8; t++)
			CHECK(__atomic_load_n(&same_lines[l * 512 + 1 + t], __ATOMIC_RELAXED) ==
			      nranks);

	/* MPI into and from heap pages nobody holds yet: the kernel faults, libdsm serves. */
	size_t big = 64 * 4096;
	char *buf = dsm_all_alloc((size_t)nranks * big, DSM_DIST_BLOCK);
	CHECK(buf != NULL);
	if (rank == 0) {
		char *src =
		        buf + big * (size_t)(nranks - 1); /* homed on the last rank, absent here */
		MPI_Recv(src, (int)big, MPI_CHAR, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		long bad = 0;
		for (size_t i = 0; i < big; i++)
			bad += src[i] != (char)(i * 7);
		CHECK(bad == 0);
	} else if (rank == 1) {
		char *mine = malloc(big);
		for (size_t i = 0; i < big; i++)
			mine[i] = (char)(i * 7);
		MPI_Send(mine, (int)big, MPI_CHAR, 0, 7, MPI_COMM_WORLD);
		free(mine);
	}
	dsm_barrier();
	if (rank == 1) {
		/* And back: MPI reads heap pages this rank does not hold. */
		MPI_Send(buf + big * (size_t)(nranks - 1), (int)big, MPI_CHAR, 0, 8,
		         MPI_COMM_WORLD);
	} else if (rank == 0) {
		char *back = malloc(big);
		MPI_Recv(back, (int)big, MPI_CHAR, 1, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		long bad = 0;
		for (size_t i = 0; i < big; i++)
			bad += back[i] != (char)(i * 7);
		CHECK(bad == 0);
		free(back);
	}
	dsm_barrier();
	if (rank == 0)
		printf("mr_shared: %d ranks x %d threads, %ld rounds of atomics, %ld spin-locked, "
		       "%ld mutexed\n",
		       nranks, THREADS, rounds, rounds / 4, rounds / 10);
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
