/* SPDX-License-Identifier: MIT */
/*
 * Multiple-writer memory (dsm_all_alloc_mw), under mpiexec:
 *
 *   interleave  MR_ROUNDS / 10 rounds (1,000 by default): every rank writes the bytes i
 *               of 4 lines with i % nranks == its rank (every line written by every rank at
 *               once, neighbours in one word belonging to different ranks), then a barrier;
 *               every rank must read every byte as its writer wrote it that round.
 *   message     rank 0 writes a payload over 3 lines, dsm_release(), then raises a flag in
 *               default memory (a C11 atomic); rank 1 waits for the flag, dsm_acquire(),
 *               and must read the whole payload; then the other way round. MR_ROUNDS / 10
 *               rounds. MR_MW_INJECT=noacquire leaves the acquire out: the reader keeps its
 *               old copy, and the check must fail (the test of the test).
 *   mutex       THREADS threads per rank add 1 to a counter in multiple-writer memory
 *               under a dsm_mutex, MR_ROUNDS / 10 times each, and to a per-rank counter
 *               beside it in the same line with no lock: exact totals after a barrier.
 *   acqrace     on every rank a writer thread stores each 8-byte slot of its rank in 256 lines
 *               once, one after the other, while a second thread calls dsm_acquire() in a
 *               loop (the copies it drops are the writer's too), MR_ROUNDS / 500 rounds; then
 *               a barrier, and every rank reads every slot: a store lost to an acquire that
 *               dropped its line leaves the slot old.
 *   free        dsm_all_free of the memory, a new allocation reads zero and works; a
 *               dsm_all_alloc_mw on one rank against dsm_all_alloc on the others fails on
 *               every rank with DSM_ERR_MISMATCH.
 *   counters    diffs sent (more than one rank), merged, twins and invalidations counted.
 *
 * Before dsm_init, dsm_release and dsm_acquire say so and return.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsm.h>

#include "mr.h"

#define THREADS 2

static int rank, nranks;
static size_t line;

static uint8_t byte_of(long round, size_t i)
{
	return (uint8_t)(round * 131 + (long)i * 7 + 1);
}

static void interleave(long rounds)
{
	size_t n = 4 * line;
	uint8_t *a = dsm_all_alloc_mw(n, DSM_DIST_CYCLIC);
	long bad = 0;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (long r = 0; r < rounds; r++) {
		for (size_t i = (size_t)rank; i < n; i += (size_t)nranks)
			a[i] = byte_of(r, i);
		dsm_barrier();
		for (size_t i = 0; i < n; i++)
			if (a[i] != byte_of(r, i) && bad++ < 5)
				fprintf(stderr,
				        "[rank %d] interleave round %ld: byte %zu is %u, not %u\n",
				        rank, r, i, a[i], byte_of(r, i));
		dsm_barrier(); /* nobody writes the next round before everyone has read */
	}
	CHECK(bad == 0);
	if (rank == 0)
		printf("interleave: %ld rounds of %zu bytes written by %d ranks at once\n", rounds,
		       n, nranks);
	CHECK(dsm_all_free(a) == 0);
}

struct flags {
	_Atomic long to[2]; /* the round whose payload waits for rank i */
};

static void message(long rounds, bool inject)
{
	size_t n = 3 * line;
	uint8_t *p = dsm_all_alloc_mw(n, DSM_DIST_CYCLIC);
	struct flags *f = dsm_all_alloc(sizeof(*f), DSM_DIST_LOCAL);
	long bad = 0;

	CHECK(p != NULL && f != NULL);
	if (p == NULL || f == NULL)
		return;
	dsm_barrier();
	if (rank < 2) {
		int peer = 1 - rank;

		for (long r = 1; r <= rounds; r++) {
			/* Rank 0 sends in odd rounds, rank 1 in even ones. */
			if ((r & 1) == (rank == 0)) {
				for (size_t i = 0; i < n; i++)
					p[i] = byte_of(r, i);
				dsm_release();
				atomic_store(&f->to[peer], r);
			} else {
				while (atomic_load(&f->to[rank]) < r)
					sched_yield();
				if (!inject)
					dsm_acquire();
				for (size_t i = 0; i < n; i++)
					if (p[i] != byte_of(r, i) && bad++ < 5)
						fprintf(stderr,
						        "[rank %d] message %ld: byte %zu is %u, "
						        "not %u\n",
						        rank, r, i, p[i], byte_of(r, i));
			}
		}
	}
	CHECK(bad == 0);
	if (rank == 0)
		printf("message: %ld payloads of %zu bytes passed by release and acquire\n", rounds,
		       n);
	dsm_barrier();
	CHECK(dsm_all_free(p) == 0);
	CHECK(dsm_all_free(f) == 0);
}

struct shared_mw {
	long count;        /* under the mutex */
	long per_rank[64]; /* each rank's own, no lock, beside it */
};

static dsm_mutex_t *mtx;
static struct shared_mw *sm;
static long per_thread;

static void *mutex_thread(void *arg)
{
	(void)arg;
	for (long i = 0; i < per_thread; i++) {
		CHECK(dsm_mutex_lock(mtx) == 0);
		sm->count++;
		sm->per_rank[rank]++; /* this rank's threads take turns under the lock too */
		CHECK(dsm_mutex_unlock(mtx) == 0);
	}
	return NULL;
}

static void mutex(long rounds)
{
	pthread_t t[THREADS];

	mtx = dsm_all_alloc(sizeof(*mtx), DSM_DIST_LOCAL);
	sm = dsm_all_alloc_mw(sizeof(*sm), DSM_DIST_LOCAL);
	CHECK(mtx != NULL && sm != NULL);
	if (mtx == NULL || sm == NULL)
		return;
	per_thread = rounds;
	if (rank == 0)
		CHECK(dsm_mutex_init(mtx) == 0);
	dsm_barrier();
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, mutex_thread, NULL) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	dsm_barrier();
	CHECK(sm->count == (long)nranks * THREADS * rounds);
	for (int r = 0; r < nranks; r++)
		CHECK(sm->per_rank[r] == THREADS * rounds);
	if (rank == 0)
		printf("mutex: %ld increments under a dsm_mutex, counted %ld\n",
		       (long)nranks * THREADS * rounds, sm->count);
	dsm_barrier();
	CHECK(dsm_all_free(sm) == 0);
	CHECK(dsm_all_free(mtx) == 0);
}

#define RACE_LINES 256

static volatile uint64_t *race;
static atomic_int race_done;

static void *race_acquirer(void *arg)
{
	long *n = arg;

	/* A pause between acquires: thousands still race the writer, but the thread does not
	 * take a core from it (4 ranks of 3 threads share 2 cores in the smoke run). */
	while (!atomic_load(&race_done)) {
		struct timespec ts = {0, 20000};

		dsm_acquire();
		(*n)++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void acqrace(long rounds)
{
	size_t words = line / sizeof(uint64_t);
	long bad = 0, acquires = 0;

	race = dsm_all_alloc_mw(RACE_LINES * line, DSM_DIST_CYCLIC);
	CHECK(race != NULL && (size_t)nranks <= words);
	if (race == NULL || (size_t)nranks > words)
		return;
	for (long r = 1; r <= rounds; r++) {
		pthread_t t;

		atomic_store(&race_done, 0);
		dsm_barrier();
		CHECK(pthread_create(&t, NULL, race_acquirer, &acquires) == 0);
		for (size_t l = 0; l < RACE_LINES; l++)
			race[l * words + (size_t)rank] = (uint64_t)r << 32 | l;
		atomic_store(&race_done, 1);
		pthread_join(t, NULL);
		dsm_barrier();
		for (size_t l = 0; l < RACE_LINES; l++)
			for (size_t k = 0; k < (size_t)nranks; k++)
				if (race[l * words + k] != ((uint64_t)r << 32 | l) && bad++ < 5)
					fprintf(stderr,
					        "[rank %d] acqrace round %ld: line %zu slot %zu is "
					        "%#llx\n",
					        rank, r, l, k,
					        (unsigned long long)race[l * words + k]);
	}
	CHECK(bad == 0);
	if (rank == 0)
		printf("acqrace: %ld rounds of %d lines written while %ld acquires ran\n", rounds,
		       RACE_LINES, acquires);
	dsm_barrier();
	CHECK(dsm_all_free((void *)race) == 0);
}

static void free_and_mismatch(void)
{
	size_t n = 2 * line;
	uint8_t *a = dsm_all_alloc_mw(n, DSM_DIST_BLOCK), *b;
	long nonzero = 0;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	memset(a + (size_t)rank, 0xab, 1);
	dsm_barrier();
	CHECK(dsm_all_free(a) == 0);
	b = dsm_all_alloc_mw(n, DSM_DIST_BLOCK);
	CHECK(b != NULL && b != a);
	if (b != NULL) {
		for (size_t i = 0; i < n; i++)
			nonzero += b[i] != 0;
		CHECK(nonzero == 0);
		dsm_barrier(); /* read by all before anyone writes: that would be a race */
		b[n - 1 - (size_t)rank] = (uint8_t)(rank + 1);
		dsm_barrier();
		for (int r = 0; r < nranks && r < (int)n; r++)
			CHECK(b[n - 1 - (size_t)r] == (uint8_t)(r + 1));
		dsm_barrier();
		CHECK(dsm_all_free(b) == 0);
	}
	/* One kind of memory against the other: a mismatch everywhere, nothing allocated. */
	errno = 0;
	a = rank == 0 ? dsm_all_alloc_mw(line, DSM_DIST_BLOCK)
	              : dsm_all_alloc(line, DSM_DIST_BLOCK);
	CHECK(a == NULL);
	CHECK(errno == -DSM_ERR_MISMATCH);
}

int main(int argc, char **argv)
{
	const char *inject = getenv("MR_MW_INJECT");
	long rounds;
	dsm_stats_t st = {.struct_size = sizeof(st)};

	mr_start(&argc, &argv);
	dsm_release(); /* before dsm_init: one log line, nothing else */
	dsm_acquire();
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	line = mr_line_size();
	rounds = mr_rounds(10000) / 10;
	if (nranks > 64) {
		CHECK(0);
		goto out;
	}
	if (inject && strcmp(inject, "noacquire") == 0) {
		message(rounds, true);
		goto out;
	}
	interleave(rounds);
	message(rounds, false);
	mutex(rounds);
	acqrace(rounds / 50 > 0 ? rounds / 50 : 1);
	free_and_mismatch();
	CHECK(dsm_stats(&st) == 0);
	CHECK(st.mw_faults > 0 && st.mw_twins > 0 && st.diff_bytes > 0);
	CHECK(st.diffs_merged > 0 || rank != 0); /* rank 0 is home of the mutex's data */
	if (nranks > 1) {
		CHECK(st.diffs_sent > 0);
		CHECK(st.mw_invalidations > 0);
	}
	printf("rank %d: %llu mw faults, %llu twins, %llu diffs sent, %llu merged, %llu "
	       "copies dropped\n",
	       rank, (unsigned long long)st.mw_faults, (unsigned long long)st.mw_twins,
	       (unsigned long long)st.diffs_sent, (unsigned long long)st.diffs_merged,
	       (unsigned long long)st.mw_invalidations);
out:
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
