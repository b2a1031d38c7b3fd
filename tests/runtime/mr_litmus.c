/* SPDX-License-Identifier: MIT */
/*
 * Litmus tests across ranks: MP, SB+mfence, LB, 2+2W and IRIW. Every round
 * uses fresh variables (each on its own line) from a pool that rank 0 resets
 * between batches, so no reset can race a round. The sides of a round meet
 * on a counter in the heap, then wait a random delay and run, which is what
 * makes rounds race. No outcome that x86-TSO forbids may appear; each shape
 * prints its histogram and fails if its racy outcome never appeared (a test
 * that never races proves nothing): it keeps going, up to 5x the rounds,
 * until it does.
 *
 * Thread placement: rank 0 runs T0 (and T2 for IRIW), rank 1 runs T1 (and T3);
 * further ranks take part in the barriers and serve homes (the slots are
 * spread cyclically over every rank).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <dsm.h>

#include "mr.h"

#define BATCH 128
#define NOUT  16

enum shape { MP, SB, LB, W22, IRIW, NSHAPES };
static const char *const shape_names[] = {"MP", "SB+mfence", "LB", "2+2W", "IRIW"};

/* Relaxed C11 atomics: plain moves on x86, so the shapes are the plain ones, and the threads
 * of one rank racing on them is no data race for the compiler or ThreadSanitizer. x, y and
 * the round's meeting counter each sit on a line of their own, whatever the line size. */
struct slot {
	atomic_int *x, *y;
	atomic_int *go; /* the round's sides meet here, so that they overlap */
};

static struct slot slots[BATCH];
static int rank, nranks, sides;
static unsigned seed_base;

#define COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")
/* The shape is SB+mfence: the x86 instruction itself (TSan also rejects C11 fences). */
#define MFENCE() __asm__ __volatile__("mfence" ::: "memory")

/* The spread of the random start, in ns: a few remote misses (calibrated at start). The
 * meeting on the go line leaves its last arrival a miss ahead of the others, so a delay much
 * shorter than a miss would let the same side win every round and never race. */
static long spread_ns = 100000;

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void delay(unsigned *seed)
{
	long until = now_ns() + (long)(rand_r(seed) % (unsigned)(spread_ns / 100 + 1)) * 100;

	while (now_ns() < until)
		;
}

/* Rank 0 times read misses on lines homed elsewhere; the spread is four median misses. */
static void calibrate(char *mem, size_t L)
{
	enum { N = 31 };
	long t[N], med = 0;

	dsm_barrier();
	if (rank == 0 && nranks > 1) {
		for (int i = 0; i < N; i++) {
			/* slot i's y line: homed at (3i + 1) % nranks; pick one that is not ours */
			size_t line = 3 * (size_t)i + 1;
			if (dsm_home(mem + line * L) == 0)
				line++;
			long t0 = now_ns();
			t[i] = atomic_load((atomic_int *)(mem + line * L));
			t[i] = now_ns() - t0;
		}
		for (int i = 1; i < N; i++) /* insertion sort: N is small */
			for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
				long x = t[j];
				t[j] = t[j - 1];
				t[j - 1] = x;
			}
		med = t[N / 2];
		spread_ns = 4 * med < 20000 ? 20000 : 4 * med;
	}
	MPI_Bcast(&spread_ns, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	if (rank == 0)
		printf("calibration: median read miss %ld us, start spread %ld us\n", med / 1000,
		       spread_ns / 1000);
}

/* One side of one round; returns its observations packed in bits. */
static int side(enum shape s, int t, struct slot *v, unsigned *seed)
{
	int r1 = 0, r2 = 0;

	atomic_fetch_add(v->go, 1);
	/* Yield while waiting: on a small node a spinning thread would take the core that the
	 * event loop needs to bring in the very line it waits on. */
	while (atomic_load(v->go) < sides)
		sched_yield();
	delay(seed);
	switch (s) {
	case MP:
		if (t == 0) {
			atomic_store_explicit(v->x, 1, memory_order_relaxed);
			COMPILER_BARRIER();
			atomic_store_explicit(v->y, 1, memory_order_relaxed);
		} else {
			r1 = atomic_load_explicit(v->y, memory_order_relaxed);
			COMPILER_BARRIER();
			r2 = atomic_load_explicit(v->x, memory_order_relaxed);
		}
		break;
	case SB:
		if (t == 0) {
			atomic_store_explicit(v->x, 1, memory_order_relaxed);
			MFENCE();
			r1 = atomic_load_explicit(v->y, memory_order_relaxed);
		} else {
			atomic_store_explicit(v->y, 1, memory_order_relaxed);
			MFENCE();
			r1 = atomic_load_explicit(v->x, memory_order_relaxed);
		}
		break;
	case LB:
		if (t == 0) {
			r1 = atomic_load_explicit(v->x, memory_order_relaxed);
			COMPILER_BARRIER();
			atomic_store_explicit(v->y, 1, memory_order_relaxed);
		} else {
			r1 = atomic_load_explicit(v->y, memory_order_relaxed);
			COMPILER_BARRIER();
			atomic_store_explicit(v->x, 1, memory_order_relaxed);
		}
		break;
	case W22:
		if (t == 0) {
			atomic_store_explicit(v->x, 1, memory_order_relaxed);
			COMPILER_BARRIER();
			atomic_store_explicit(v->y, 2, memory_order_relaxed);
		} else {
			atomic_store_explicit(v->y, 1, memory_order_relaxed);
			COMPILER_BARRIER();
			atomic_store_explicit(v->x, 2, memory_order_relaxed);
		}
		break;
	case IRIW:
		if (t == 0) {
			atomic_store_explicit(v->x, 1, memory_order_relaxed);
		} else if (t == 1) {
			atomic_store_explicit(v->y, 1, memory_order_relaxed);
		} else if (t == 2) {
			r1 = atomic_load_explicit(v->x, memory_order_relaxed);
			COMPILER_BARRIER();
			r2 = atomic_load_explicit(v->y, memory_order_relaxed);
		} else {
			r1 = atomic_load_explicit(v->y, memory_order_relaxed);
			COMPILER_BARRIER();
			r2 = atomic_load_explicit(v->x, memory_order_relaxed);
		}
		break;
	default:
		break;
	}
	return r1 | r2 << 1;
}

struct job {
	enum shape s;
	int t;
	int obs[BATCH];
};

static void *run_side(void *arg)
{
	struct job *j = arg;
	unsigned seed = seed_base * 31 + (unsigned)j->t;

	for (int i = 0; i < BATCH; i++)
		j->obs[i] = side(j->s, j->t, &slots[i], &seed);
	return NULL;
}

/* The outcome of round i from every side's observations (and, for 2+2W, the final values). */
static int outcome(enum shape s, const int *o0, const int *o1, const int *o2, const int *o3, int i,
                   const struct slot *v)
{
	switch (s) {
	case MP:
		return o1[i]; /* r1=y | r2=x << 1 */
	case SB:
	case LB:
		return (o0[i] & 1) | (o1[i] & 1) << 1;
	case W22:
		return atomic_load(v->x) | atomic_load(v->y) << 2; /* final x | final y << 2 */
	case IRIW:
		return o2[i] | o3[i] << 2;
	default:
		return 0;
	}
}

static int forbidden(enum shape s, int out)
{
	switch (s) {
	case MP:
		return out == 1; /* saw y=1 but x=0 */
	case SB:
		return out == 0; /* both read 0 despite the fences */
	case LB:
		return out == 3; /* both read the other's later write */
	case W22:
		return out == (1 | 1 << 2); /* x=1 and y=1: both first writes last */
	case IRIW:
		return out == (1 | 0 << 1 | 1 << 2 | 0 << 3); /* readers disagree on the order */
	default:
		return 1;
	}
}

/* The outcome that needs the sides to interleave within a round. */
static int racy(enum shape s, int out)
{
	switch (s) {
	case MP:
		return out == 2; /* y=0, x=1: the writer ran between the two reads */
	case SB:
		return out == 3; /* both saw the other's store */
	case LB:
		return out == 0; /* both read before either wrote */
	case W22:
		return out == (2 | 2 << 2); /* x=2, y=2 */
	case IRIW:
		/* a reader saw exactly one write */
		return (out & 3) == 1 || (out & 3) == 2 || (out >> 2 & 3) == 1 ||
		       (out >> 2 & 3) == 2;
	default:
		return 0;
	}
}

static void reset_slots(void)
{
	if (rank == 0)
		for (int i = 0; i < BATCH; i++) {
			atomic_store(slots[i].x, 0);
			atomic_store(slots[i].y, 0);
			atomic_store(slots[i].go, 0);
		}
	dsm_barrier();
}

static void run_shape(enum shape s, long rounds)
{
	long hist[NOUT] = {0}, done = 0, seen_racy = 0, bad = 0;
	int nthreads = rank > 1 ? 0 : s == IRIW ? 2 : 1;

	sides = s == IRIW ? 4 : 2;
	struct job jobs[2] = {0};
	int *gathered = malloc(sizeof(int) * 2 * BATCH * (size_t)nranks);

	while (done < rounds || (seen_racy == 0 && done < 5 * rounds)) {
		pthread_t th[2];

		reset_slots();
		seed_base = (unsigned)(done * 7 + rank);
		for (int k = 0; k < nthreads; k++) {
			jobs[k].s = s;
			jobs[k].t = rank + 2 * k; /* rank 0: T0, T2; rank 1: T1, T3 */
			pthread_create(&th[k], NULL, run_side, &jobs[k]);
		}
		for (int k = 0; k < nthreads; k++)
			pthread_join(th[k], NULL);
		dsm_barrier(); /* every side done: final values are in place */

		/* Rank 0 gathers every side's observations: [T0][T1][T2][T3]. */
		int mine[2 * BATCH];
		memcpy(mine, jobs[0].obs, sizeof(jobs[0].obs));
		memcpy(mine + BATCH, nthreads > 1 ? jobs[1].obs : jobs[0].obs, sizeof(jobs[0].obs));
		MPI_Gather(mine, 2 * BATCH, MPI_INT, gathered, 2 * BATCH, MPI_INT, 0,
		           MPI_COMM_WORLD);
		if (rank == 0) {
			/* rank 0 sent [T0][T2], rank 1 sent [T1][T3] */
			const int *o0 = gathered, *o2 = gathered + BATCH;
			const int *o1 = gathered + 2 * BATCH, *o3 = gathered + 3 * BATCH;
			for (int i = 0; i < BATCH; i++) {
				int out = outcome(s, o0, o1, o2, o3, i, &slots[i]);
				hist[out & (NOUT - 1)]++;
				bad += forbidden(s, out);
				seen_racy += racy(s, out);
			}
		}
		done += BATCH;
		MPI_Bcast(&seen_racy, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	}
	if (rank == 0) {
		printf("%-10s %ld rounds:", shape_names[s], done);
		for (int o = 0; o < NOUT; o++)
			if (hist[o])
				printf(" [%s%d%s]=%ld", forbidden(s, o) ? "FORBIDDEN " : "", o,
				       racy(s, o) ? " racy" : "", hist[o]);
		printf("\n");
		fflush(stdout);
		CHECK(bad == 0);
		CHECK(seen_racy > 0);
	}
	free(gathered);
}

int main(int argc, char **argv)
{
	long rounds;

	mr_start(&argc, &argv);
	rounds = mr_rounds(10000);
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	size_t L = mr_line_size();
	char *mem = dsm_all_alloc(3 * L * BATCH, DSM_DIST_CYCLIC);
	CHECK(mem != NULL);
	for (int i = 0; i < BATCH; i++) {
		slots[i].x = (atomic_int *)(mem + (3 * (size_t)i) * L);
		slots[i].y = (atomic_int *)(mem + (3 * (size_t)i + 1) * L);
		slots[i].go = (atomic_int *)(mem + (3 * (size_t)i + 2) * L);
	}
	calibrate(mem, L);
	for (int s = 0; s < NSHAPES; s++)
		run_shape((enum shape)s, rounds);
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
