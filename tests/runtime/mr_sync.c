/* SPDX-License-Identifier: MIT */
/*
 * Synchronization under load:
 *
 *   barrier   MR_ROUNDS barriers (100,000 by default). Before barrier i each rank
 *             writes i into its own line; after it, it reads every rank's line and
 *             must see i or i + 1 (a rank may already be past the barrier and have
 *             written the next round), never i - 1: nobody passes early.
 *   home      a mutex locked and unlocked by its home rank with nobody else locking:
 *             every acquisition on the path with no message (dsm_stats' lock_local).
 *   race      every thread of every rank takes one mutex, half the time with lock and
 *             half with trylock, and checks inside that nobody else is: the exact
 *             total, every thread served, and the acquisitions dsm_stats counted.
 *   hotword   every rank increments one C11 atomic for MR_SECONDS (1 by default):
 *             the exact total, and every rank makes progress. The bound: no rank
 *             waits more than FAIR_GAP_MS between two of its increments, and none
 *             makes fewer than 1/FAIR_SHARE of the busiest rank's.
 *
 * MR_SYNC_INJECT=late makes the last rank write its round after the barrier, once,
 * which is what an early pass looks like to the others: the barrier check must fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#define THREADS     4
#define FAIR_GAP_MS 1000
#define FAIR_SHARE  20

static int rank, nranks;
static size_t line;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static dsm_stats_t stats(void)
{
	dsm_stats_t st = {.struct_size = sizeof(st)};

	CHECK(dsm_stats(&st) == 0);
	return st;
}

/* ---- barrier ------------------------------------------------------------------------------ */

static void barrier_stress(long rounds)
{
	/* One line per rank, each homed at its writer (cyclic over the ranks). */
	char *base = dsm_all_alloc((size_t)nranks * line, DSM_DIST_CYCLIC);
	const char *inject = getenv("MR_SYNC_INJECT");
	bool late = inject && strcmp(inject, "late") == 0 && rank == nranks - 1;
	long early = 0, first_bad = -1;
	dsm_stats_t st0, st1;

	CHECK(base != NULL);
	if (base == NULL)
		return;
#define SLOT(r) (*(volatile long *)(base + (size_t)(r)*line))
	SLOT(rank) = -1;
	dsm_barrier();
	st0 = stats();
	for (long i = 0; i < rounds; i++) {
		bool inject_now = late && i == rounds / 2;

		if (!inject_now)
			SLOT(rank) = i;
		dsm_barrier();
		if (inject_now) {
			usleep(50 * 1000);
			SLOT(rank) = i;
		}
		for (int r = 0; r < nranks; r++) {
			long v = SLOT(r);

			if (v != i && v != i + 1) {
				if (first_bad < 0)
					fprintf(stderr,
					        "[rank %d] barrier %ld: rank %d's line reads %ld: "
					        "passed before it arrived\n",
					        rank, i, r, v);
				early++;
				first_bad = first_bad < 0 ? i : first_bad;
			}
		}
	}
#undef SLOT
	st1 = stats();
	CHECK(early == 0);
	CHECK(st1.barriers - st0.barriers == (uint64_t)rounds);
	CHECK(st1.barrier_ns > st0.barrier_ns);
	CHECK(st1.barrier_ns_max * st1.barriers >= st1.barrier_ns);
	dsm_barrier();
	if (rank == 0)
		printf("barrier: %ld rounds, %d ranks, mean %.1f us on rank 0 (max %.1f us)\n",
		       rounds, nranks,
		       (double)(st1.barrier_ns - st0.barrier_ns) / (double)rounds / 1e3,
		       (double)st1.barrier_ns_max / 1e3);
	CHECK(dsm_all_free(base) == 0);
}

/* ---- mutex at its home -------------------------------------------------------------------- */

struct race {
	dsm_mutex_t m;
	long guarded;             /* protected by m */
	long served[64][THREADS]; /* acquisitions by each thread, protected by m */
	char pad[4096];
	atomic_int inside; /* threads between lock and unlock: 0 or 1 */
	char pad2[4096];
	_Atomic long busy; /* trylocks that found it held */
};

static struct race *rc;
static long race_rounds;

static void home_path(long rounds)
{
	dsm_stats_t st0, st1;
	int home = dsm_home(&rc->m);

	CHECK(home >= 0);
	dsm_barrier();
	st0 = stats();
	if (rank == home) {
		for (long i = 0; i < rounds; i++) {
			CHECK(dsm_mutex_lock(&rc->m) == 0);
			/* held: a second taker is refused without a message */
			if (i % 100 == 0)
				CHECK(dsm_mutex_trylock(&rc->m) == -EBUSY);
			CHECK(dsm_mutex_unlock(&rc->m) == 0);
		}
		CHECK(dsm_mutex_trylock(&rc->m) == 0);
		CHECK(dsm_mutex_unlock(&rc->m) == 0);
		CHECK(dsm_mutex_unlock(&rc->m) == -EPERM);
	}
	st1 = stats();
	if (rank == home) {
		CHECK(st1.lock_local - st0.lock_local == (uint64_t)rounds + 1);
		CHECK(st1.lock_remote == st0.lock_remote);
		CHECK(st1.lock_handoffs == st0.lock_handoffs);
		printf("home: %ld lock/unlock pairs at rank %d, %" PRIu64 " on the local path\n",
		       rounds, home, st1.lock_local - st0.lock_local);
	}
	dsm_barrier();
}

/* ---- lock and trylock race ---------------------------------------------------------------- */

static void *racer(void *arg)
{
	long t = (long)arg, got = 0, bad = 0;

	while (got < race_rounds) {
		bool try = (got + t) % 2 == 1;
		int ret = try ? dsm_mutex_trylock(&rc->m) : dsm_mutex_lock(&rc->m);

		if (try && ret == -EBUSY) {
			atomic_fetch_add(&rc->busy, 1);
			continue;
		}
		if (ret != 0)
			return (void *)1;
		bad += atomic_exchange(&rc->inside, 1) != 0;
		rc->guarded++;
		rc->served[rank][t]++;
		got++;
		atomic_store(&rc->inside, 0);
		if (dsm_mutex_unlock(&rc->m) != 0)
			return (void *)1;
	}
	return (void *)bad;
}

static void lock_race(long rounds)
{
	pthread_t th[THREADS];
	dsm_stats_t st0, st1;
	unsigned long long mine, all;
	void *ret;

	race_rounds = rounds;
	dsm_barrier();
	st0 = stats();
	for (long t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, racer, (void *)t);
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], &ret);
		CHECK(ret == NULL);
	}
	st1 = stats();
	mine = (st1.lock_local - st0.lock_local) + (st1.lock_remote - st0.lock_remote) +
	       (st1.lock_handoffs - st0.lock_handoffs);
	CHECK(mine == (unsigned long long)THREADS * (unsigned long long)rounds);
	MPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	dsm_barrier();
	CHECK(rc->guarded == (long)nranks * THREADS * rounds);
	CHECK(all == (unsigned long long)nranks * THREADS * (unsigned long long)rounds);
	for (int r = 0; r < nranks; r++)
		for (int t = 0; t < THREADS; t++)
			CHECK(rc->served[r][t] == rounds);
	if (rank == 0)
		printf("race: %d ranks x %d threads x %ld acquisitions (lock and trylock), "
		       "%ld trylocks found it held; rank 0: %" PRIu64 " local, %" PRIu64
		       " remote, %" PRIu64 " handed off\n",
		       nranks, THREADS, rounds, atomic_load(&rc->busy),
		       st1.lock_local - st0.lock_local, st1.lock_remote - st0.lock_remote,
		       st1.lock_handoffs - st0.lock_handoffs);
	dsm_barrier();
}

/* ---- hotword ------------------------------------------------------------------------------ */

static void hotword(double seconds)
{
	_Atomic long *word = dsm_all_alloc(line, DSM_DIST_LOCAL);
	long mine = 0, lo, hi, total;
	double t0, last, gap = 0, gap_max;

	CHECK(word != NULL);
	if (word == NULL)
		return;
	dsm_barrier();
	t0 = last = now_s();
	for (;;) {
		double t;

		atomic_fetch_add(word, 1);
		mine++;
		t = now_s();
		if (t - last > gap)
			gap = t - last;
		last = t;
		if (t - t0 > seconds)
			break;
	}
	dsm_barrier();
	MPI_Allreduce(&mine, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	MPI_Allreduce(&mine, &lo, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
	MPI_Allreduce(&mine, &hi, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
	MPI_Allreduce(&gap, &gap_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	CHECK(atomic_load(word) == total);
	CHECK(gap * 1e3 <= FAIR_GAP_MS);
	CHECK(lo * FAIR_SHARE >= hi);
	if (rank == 0)
		printf("hotword: %ld increments in %.1f s by %d ranks, fewest/most %ld/%ld, "
		       "longest "
		       "wait %.1f ms (bounds: %d ms, 1/%d)\n",
		       total, seconds, nranks, lo, hi, gap_max * 1e3, FAIR_GAP_MS, FAIR_SHARE);
	dsm_barrier();
	CHECK(dsm_all_free((void *)word) == 0);
}

int main(int argc, char **argv)
{
	const char *secs = getenv("MR_SECONDS");

	mr_start(&argc, &argv);
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	line = mr_line_size();
	if (nranks > 64) {
		if (rank == 0)
			fprintf(stderr, "mr_sync: at most 64 ranks\n");
		CHECK(0);
		goto out;
	}
	barrier_stress(mr_rounds(100000));
	if (getenv("MR_SYNC_INJECT"))
		goto out;

	rc = dsm_all_alloc(sizeof(*rc), DSM_DIST_LOCAL);
	CHECK(rc != NULL);
	if (rc == NULL)
		goto out;
	if (rank == 0)
		CHECK(dsm_mutex_init(&rc->m) == 0);
	dsm_barrier();
	home_path(mr_rounds(100000) / 10);
	lock_race(mr_rounds(100000) / 100);
	hotword(secs ? atof(secs) : 1.0);
	dsm_barrier();
	if (rank == 0)
		CHECK(dsm_mutex_destroy(&rc->m) == 0);
	dsm_barrier();
	CHECK(dsm_all_free(rc) == 0);
out:
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
