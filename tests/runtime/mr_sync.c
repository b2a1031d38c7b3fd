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
 *   fence     ranks other than the home lock and unlock (the unlock is a message nobody
 *             waits for), then a barrier: the home must find the mutex free, every round.
 *   fifo      the home holds the mutex while rank 1, a second thread of the home, then
 *             ranks 2.. ask for it in turn (100 ms apart): it must go to them in that
 *             order, each a hand-off.
 *   race      every thread of every rank takes one mutex, half the time with lock and
 *             half with trylock (a lock after a trylock that failed), until they have
 *             taken it a set number of times in all and every thread has had it at
 *             least once, and checks inside that nobody else is: the exact total and
 *             the acquisitions dsm_stats counted. The home's own threads take a free
 *             mutex without a message, but must not keep it from those in line: a
 *             thread never served keeps the race going, and RACE_LIMIT_S fails it.
 *   turns     the ranks take turns at one line, in rank order, MR_ROUNDS / 10 turns each: a
 *             rank waits for its turn on a counter, checks the payload the rank before
 *             wrote beside it, writes its own, then passes the turn. With DSM_MIGRATORY
 *             on (the default) and 2 ranks, this is the pattern migratory lines are for:
 *             the home must grant some read misses exclusive and some writes must need
 *             no message; with it off, none may.
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
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#define THREADS      4
#define FAIR_GAP_MS  1000
#define FAIR_SHARE   20
#define RACE_LIMIT_S 120

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
	/* The time is counted: more than nothing, and no more than rounds x the longest. */
	CHECK(st1.barrier_ns > st0.barrier_ns);
	CHECK(st1.barrier_ns_max > 0);
	CHECK(st1.barrier_ns - st0.barrier_ns <= (uint64_t)rounds * st1.barrier_ns_max);
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
	_Atomic long busy;      /* trylocks that found it held */
	long order[65], norder; /* fifo: who took it, in turn; protected by m */
	long unserved;          /* race: threads not yet served; protected by m */
};

static struct race *rc;
static long race_target; /* acquisitions by all threads of all ranks together */

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

/* ---- fence: unlocks before a barrier are done after it ------------------------------------ */

static void fence(long rounds)
{
	int home = dsm_home(&rc->m);
	long busy = 0;

	for (long i = 0; i < rounds; i++) {
		/* One rank a round, all of them at once every fourth round. */
		if (rank != home && (i % 4 == 3 || rank == 1 + i % (nranks - 1))) {
			CHECK(dsm_mutex_lock(&rc->m) == 0);
			CHECK(dsm_mutex_unlock(&rc->m) == 0);
		}
		dsm_barrier();
		if (rank == home) {
			int ret = dsm_mutex_trylock(&rc->m);

			busy += ret == -EBUSY;
			if (ret == 0)
				CHECK(dsm_mutex_unlock(&rc->m) == 0);
		}
		dsm_barrier();
	}
	CHECK(busy == 0);
	if (rank == home)
		printf("fence: %ld rounds of unlock, barrier, trylock at the home: %ld found it "
		       "held\n",
		       rounds, busy);
}

/* ---- fifo: waiters served in the order they came ------------------------------------------ */

#define FIFO_GAP_US 100000

static void fifo_take(int who)
{
	CHECK(dsm_mutex_lock(&rc->m) == 0);
	rc->order[rc->norder++] = who;
	CHECK(dsm_mutex_unlock(&rc->m) == 0);
}

static void *fifo_home_thread(void *arg)
{
	(void)arg;
	usleep(2 * FIFO_GAP_US);
	fifo_take(0);
	return NULL;
}

static void fifo(void)
{
	int home = dsm_home(&rc->m);
	dsm_stats_t st0, st1;
	pthread_t th;

	CHECK(home == 0);
	rc->norder = 0;
	dsm_barrier();
	st0 = stats();
	if (rank == 0) {
		/* Rank 1 asks at 1 gap, our second thread at 2, rank r >= 2 at r + 1. */
		CHECK(dsm_mutex_lock(&rc->m) == 0);
		pthread_create(&th, NULL, fifo_home_thread, NULL);
		usleep((useconds_t)(nranks + 1) * FIFO_GAP_US);
		CHECK(dsm_mutex_unlock(&rc->m) == 0);
		pthread_join(th, NULL);
	} else {
		usleep((useconds_t)(rank == 1 ? 1 : rank + 1) * FIFO_GAP_US);
		fifo_take(rank);
	}
	st1 = stats();
	if (rank != 0)
		CHECK(st1.lock_handoffs - st0.lock_handoffs == 1);
	dsm_barrier();
	CHECK(rc->norder == nranks);
	for (long i = 0; i < rc->norder && i < nranks; i++) {
		long want = i == 0 ? 1 : i == 1 ? 0 : i;

		if (rc->order[i] != want)
			fprintf(stderr, "[rank %d] fifo: turn %ld went to rank %ld, not %ld\n",
			        rank, i, rc->order[i], want);
		CHECK(rc->order[i] == want);
	}
	if (rank == 0)
		printf("fifo: %d waiters served in arrival order\n", nranks);
	dsm_barrier();
}

/* ---- lock and trylock race ---------------------------------------------------------------- */

static pthread_barrier_t race_start;
static atomic_long race_idle; /* this rank's acquisitions that counted nothing */

static void *racer(void *arg)
{
	long t = (long)arg, got = 0, bad = 0;

	pthread_barrier_wait(&race_start);
	for (;;) {
		bool try = (got + t) % 2 == 1;
		int ret = try ? dsm_mutex_trylock(&rc->m) : dsm_mutex_lock(&rc->m);

		/* A trylock may fail for as long as others keep the mutex busy: then wait in
		 * line, where every waiter's turn comes. */
		if (try && ret == -EBUSY) {
			atomic_fetch_add(&rc->busy, 1);
			ret = dsm_mutex_lock(&rc->m);
		}
		if (ret != 0)
			return (void *)1;
		bad += atomic_exchange(&rc->inside, 1) != 0;
		if (got == 0) {
			rc->unserved--;
		} else if (rc->guarded >= race_target) {
			/* Target reached: count no more, and stay until every thread had a turn. */
			bool done = rc->unserved == 0;

			atomic_fetch_add(&race_idle, 1);
			atomic_store(&rc->inside, 0);
			if (dsm_mutex_unlock(&rc->m) != 0)
				return (void *)1;
			if (done)
				break;
			continue;
		}
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
	unsigned long long mine, all, served = 0;
	long least = 0, most = 0;
	void *ret;

	race_target = (long)nranks * THREADS * rounds;
	atomic_store(&race_idle, 0);
	if (rank == 0)
		rc->unserved = (long)nranks * THREADS;
	dsm_barrier();
	st0 = stats();
	pthread_barrier_init(&race_start, NULL, THREADS + 1);
	for (long t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, racer, (void *)t);
	/* A thread that never gets its turn hangs the race: fail instead. */
	alarm(RACE_LIMIT_S);
	dsm_barrier();
	pthread_barrier_wait(&race_start);
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], &ret);
		CHECK(ret == NULL);
	}
	alarm(0);
	pthread_barrier_destroy(&race_start);
	st1 = stats();
	/* Acquisitions after the target was reached added nothing. */
	mine = (st1.lock_local - st0.lock_local) + (st1.lock_remote - st0.lock_remote) +
	       (st1.lock_handoffs - st0.lock_handoffs);
	for (int t = 0; t < THREADS; t++)
		served += (unsigned long long)rc->served[rank][t];
	CHECK(mine == served + (unsigned long long)atomic_load(&race_idle));
	MPI_Allreduce(&served, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	dsm_barrier();
	/* Threads still unserved when the target is reached take one more turn each. */
	CHECK(rc->unserved == 0);
	CHECK(rc->guarded >= race_target && rc->guarded <= race_target + nranks * THREADS);
	CHECK(all == (unsigned long long)rc->guarded);
	for (int r = 0; r < nranks; r++)
		for (int t = 0; t < THREADS; t++) {
			long n = rc->served[r][t];

			least = r + t == 0 || n < least ? n : least;
			most = n > most ? n : most;
		}
	CHECK(least > 0);
	if (rank == 0)
		printf("race: %d ranks x %d threads, %ld acquisitions in all (lock and trylock; "
		       "target %ld), fewest/most by one thread %ld/%ld, %ld trylocks found it "
		       "held; rank 0: %" PRIu64 " local, %" PRIu64 " remote, %" PRIu64
		       " handed off\n",
		       nranks, THREADS, rc->guarded, race_target, least, most,
		       atomic_load(&rc->busy), st1.lock_local - st0.lock_local,
		       st1.lock_remote - st0.lock_remote, st1.lock_handoffs - st0.lock_handoffs);
	dsm_barrier();
}

/* ---- turns -------------------------------------------------------------------------------- */

static bool migratory_on(void)
{
	const char *v = getenv("DSM_MIGRATORY");

	return v == NULL || !(strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
	                      strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0);
}

static void turns(long rounds)
{
	struct turn {
		_Atomic uint64_t turn; /* whose turn: turn % nranks */
		uint64_t payload[7];   /* written by the rank whose turn it was */
	} *t = dsm_all_alloc(line, DSM_DIST_LOCAL);
	uint64_t total = (uint64_t)rounds * (uint64_t)nranks, mine[2], sum[2];
	dsm_stats_t st0, st1;
	long bad = 0;
	double limit;

	CHECK(t != NULL);
	if (t == NULL)
		return;
	dsm_barrier();
	st0 = stats();
	limit = now_s() + RACE_LIMIT_S;
	for (uint64_t k = (uint64_t)rank; k < total; k += (uint64_t)nranks) {
		unsigned spins = 0;

		while (atomic_load_explicit(&t->turn, memory_order_acquire) != k) {
			if (++spins % 64 == 0)
				sched_yield();
			if (spins % 4096 == 0 && now_s() > limit)
				break;
		}
		if (atomic_load_explicit(&t->turn, memory_order_relaxed) != k) {
			CHECK(!"turns: a turn never came");
			break;
		}
		for (int i = 0; i < 7; i++)
			if (k > 0 && t->payload[i] != (k - 1) * 8 + (uint64_t)i)
				bad++;
		for (int i = 0; i < 7; i++)
			t->payload[i] = k * 8 + (uint64_t)i;
		atomic_store_explicit(&t->turn, k + 1, memory_order_release);
	}
	dsm_barrier();
	st1 = stats();
	CHECK(bad == 0);
	CHECK(atomic_load(&t->turn) == total);
	mine[0] = st1.migratory_grants - st0.migratory_grants;
	mine[1] = st1.exclusive_writes - st0.exclusive_writes;
	MPI_Allreduce(mine, sum, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
	if (!migratory_on())
		CHECK(sum[0] == 0 && sum[1] == 0);
	else if (nranks == 2)
		CHECK(sum[0] > 0 && sum[1] > 0);
	if (rank == 0)
		printf("turns: %" PRIu64 " turns by %d ranks, migratory %s: %" PRIu64
		       " read misses granted exclusive, %" PRIu64 " writes with no message\n",
		       total, nranks, migratory_on() ? "on" : "off", sum[0], sum[1]);
	dsm_barrier();
	CHECK(dsm_all_free(t) == 0);
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
	fence(mr_rounds(100000) / 100);
	fifo();
	lock_race(mr_rounds(100000) / 100);
	turns(mr_rounds(100000) / 10);
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
