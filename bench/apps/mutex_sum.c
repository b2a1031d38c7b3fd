/* SPDX-License-Identifier: MIT */
/*
 * mutex_sum: every rank (and every application thread of it) adds its values into one plain,
 * non-atomic 64-bit accumulator in the heap, taking one dsm_mutex_t around every addition.
 * The mutex and the accumulator sit in one struct (as a user would put them), homed on rank 0;
 * the accumulator's line moves to each holder in turn.
 *
 * MPI version, as a user would write it: each rank sums its values privately and MPI_Reduce
 * adds the partial sums on rank 0. It adds the same values (one sequence per DSM thread).
 *
 * The sum is an integer: rank 0 checks it exactly against the MPI result and against a serial
 * reference that recomputes every value (cheap: a few multiplications per value).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <dsm.h>

#include "../bench.h"

#define WL          "mutex_sum"
#define MAX_THREADS 64

/* Value k of thread tid of rank rank: deterministic, in [1, 1000]. */
static uint64_t value(int rank, int tid, uint64_t k)
{
	uint64_t z = ((uint64_t)rank << 48 ^ (uint64_t)tid << 32 ^ k) * 0x9e3779b97f4a7c15ULL;

	z ^= z >> 29;
	return z % 1000 + 1;
}

/* Every rank learns whether every rank passed; the first failing rank's message is printed by
 * rank 0 through bench_fail(). Returns 0 when all passed, -1 otherwise, on every rank. */
static int agree(const struct bench_opts *o, int ok, const char *msg)
{
	int bad = ok ? o->nranks : o->rank, first;
	char buf[256];

	MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (first == o->nranks)
		return 0;
	if (o->rank == first && first != 0) {
		snprintf(buf, sizeof(buf), "%s", msg);
		MPI_Send(buf, sizeof(buf), MPI_CHAR, 0, 0, MPI_COMM_WORLD);
	}
	if (o->rank == 0) {
		if (first != 0)
			MPI_Recv(buf, sizeof(buf), MPI_CHAR, first, 0, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
		else
			snprintf(buf, sizeof(buf), "%s", msg);
		bench_fail(o, WL, "rank %d: %s", first, buf);
	}
	return -1;
}

/* Counters summed over the ranks, for the extra members of the DSM result. */
struct stats_delta {
	uint64_t v[6]; /* faults, upgrades, invalidations sent, messages, bytes, bytes received */
};

static void stats_take(struct stats_delta *s)
{
	dsm_stats_t st;

	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	dsm_stats(&st);
	s->v[0] = st.read_faults + st.write_faults;
	s->v[1] = st.upgrades;
	s->v[2] = st.inv_sent;
	s->v[3] = st.msgs_sent;
	s->v[4] = st.bytes_sent;
	s->v[5] = st.bytes_received;
}

static void stats_sum(const struct stats_delta *before, const struct stats_delta *after,
                      struct stats_delta *sum)
{
	struct stats_delta d;

	for (int k = 0; k < 6; k++)
		d.v[k] = after->v[k] - before->v[k];
	MPI_Reduce(d.v, sum->v, 6, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
}

/*
 * A team of application threads on this rank: created before the timed part and held at a
 * gate, so that when a rank cannot create its threads every rank learns it (agree()) before any
 * of them waits in a DSM barrier, and the threads already created are sent home.
 */
struct team {
	int n;
	pthread_t th[MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* 0: wait at the gate, 1: run, -1: quit */
	void (*fn)(struct team *t, int tid);
	void *arg;
	struct team_slot {
		struct team *t;
		int tid;
	} slot[MAX_THREADS];
};

static void *team_main(void *p)
{
	struct team_slot *s = p;
	struct team *t = s->t;
	int state;

	pthread_mutex_lock(&t->mu);
	while (t->state == 0)
		pthread_cond_wait(&t->cv, &t->mu);
	state = t->state;
	pthread_mutex_unlock(&t->mu);
	if (state > 0)
		t->fn(t, s->tid);
	return NULL;
}

/* Creates threads 1..n-1 waiting at the gate. Returns the number of threads that exist (n on
 * success) and leaves a message in msg when it falls short. */
static int team_start(struct team *t, int n, void (*fn)(struct team *, int), void *arg, char *msg,
                      size_t msglen)
{
	int ret;

	t->n = 1;
	t->state = 0;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	for (int k = 0; k < n; k++) {
		t->slot[k].t = t;
		t->slot[k].tid = k;
	}
	for (; t->n < n; t->n++) {
		ret = pthread_create(&t->th[t->n], NULL, team_main, &t->slot[t->n]);
		if (ret) {
			snprintf(msg, msglen, "pthread_create: %s", strerror(ret));
			break;
		}
	}
	return t->n;
}

/* Opens the gate (run != 0) or sends the threads home, runs thread 0 here when running, and
 * joins the others. */
static void team_finish(struct team *t, int run)
{
	pthread_mutex_lock(&t->mu);
	t->state = run ? 1 : -1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (run)
		t->fn(t, 0);
	for (int k = 1; k < t->n; k++)
		pthread_join(t->th[k], NULL);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
}

struct shared_sum {
	dsm_mutex_t lock;
	uint64_t sum; /* plain: only ever touched under lock */
};

struct dsm_sum {
	struct shared_sum *s;
	uint64_t adds; /* per thread */
	int rank;
	_Atomic int err; /* the first error of a dsm_mutex_* call on this rank */
	int inited;      /* rank 0: dsm_mutex_init() succeeded */
};

static void dsm_adds(struct team *t, int tid)
{
	struct dsm_sum *d = t->arg;
	int ret;

	for (uint64_t k = 0; k < d->adds; k++) {
		if ((ret = dsm_mutex_lock(&d->s->lock)) < 0) {
			d->err = ret;
			return;
		}
		d->s->sum += value(d->rank, tid, k);
		if ((ret = dsm_mutex_unlock(&d->s->lock)) < 0) {
			d->err = ret;
			return;
		}
	}
}

static int run_dsm(const struct bench_opts *o, struct dsm_sum *d, int nthreads, double *t,
                   struct stats_delta *sum)
{
	struct stats_delta before, after;
	struct team team;
	char msg[160] = "";
	int ok = 1, ret;

	if (o->rank == 0) {
		d->s->sum = 0;
		if ((ret = dsm_mutex_init(&d->s->lock)) < 0) {
			snprintf(msg, sizeof(msg), "dsm_mutex_init: %s", dsm_strerror(ret));
			ok = 0;
		}
		d->inited = ok;
	}
	if (agree(o, ok, msg))
		return -1;
	ok = team_start(&team, nthreads, dsm_adds, d, msg, sizeof(msg)) == nthreads;
	if (agree(o, ok, msg)) {
		team_finish(&team, 0);
		return -1;
	}
	/* dsm_mutex_init() has returned on rank 0: after this barrier any rank may lock. */
	dsm_barrier();
	stats_take(&before);
	*t = bench_now();
	team_finish(&team, 1);
	dsm_barrier();
	*t = bench_now() - *t;
	stats_take(&after);
	stats_sum(&before, &after, sum);
	if (d->err)
		snprintf(msg, sizeof(msg), "dsm_mutex_lock/unlock: %s", dsm_strerror(d->err));
	return agree(o, d->err == 0, msg);
}

static void run_mpi(const struct bench_opts *o, uint64_t adds, int nthreads, uint64_t *total,
                    double *t)
{
	/* volatile: one addition per value, as in the DSM version, not a folded loop. */
	volatile uint64_t local = 0;
	uint64_t mine;

	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	for (int tid = 0; tid < nthreads; tid++)
		for (uint64_t k = 0; k < adds; k++)
			local += value(o->rank, tid, k);
	mine = local;
	MPI_Reduce(&mine, total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	*t = bench_now() - *t;
}

int bench_app_mutex_sum(const struct bench_opts *o)
{
	uint64_t adds = o->smoke ? 100 : 2000;
	int nthreads = o->threads > 0 ? o->threads : 1;
	struct dsm_sum d = {0};
	struct stats_delta sum = {{0}};
	uint64_t mpi_total = 0, dsm_total = 0, serial = 0;
	double t_dsm = 0, t_mpi = 0;
	char msg[200] = "", extra[400];
	int ok = 1, ret, dret;

	/* --size scales the additions per thread. */
	if (o->size_factor > 0)
		adds = (uint64_t)((double)adds * o->size_factor);
	if (adds == 0)
		adds = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	d.adds = adds;
	d.rank = o->rank;

	d.s = dsm_all_alloc(sizeof(*d.s), DSM_DIST_LOCAL);
	if (d.s == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc(%zu): %s", sizeof(*d.s),
		         dsm_strerror(-errno));
	if (agree(o, d.s != NULL, msg))
		return -1;
	ret = run_dsm(o, &d, nthreads, &t_dsm, &sum);
	if (ret == 0) {
		run_mpi(o, adds, nthreads, &mpi_total, &t_mpi);
		if (o->rank == 0) {
			dsm_total = d.s->sum;
			for (int r = 0; r < o->nranks; r++)
				for (int tid = 0; tid < nthreads; tid++)
					for (uint64_t k = 0; k < adds; k++)
						serial += value(r, tid, k);
			if (dsm_total != mpi_total || mpi_total != serial) {
				snprintf(msg, sizeof(msg),
				         "sums differ: dsm %" PRIu64 ", mpi %" PRIu64
				         ", serial %" PRIu64,
				         dsm_total, mpi_total, serial);
				ok = 0;
			}
		}
		ret = agree(o, ok, msg);
	}
	/* Nobody holds the mutex once every rank is past this barrier. */
	dsm_barrier();
	dret = d.inited ? dsm_mutex_destroy(&d.s->lock) : 0;
	if (dret < 0)
		snprintf(msg, sizeof(msg), "dsm_mutex_destroy: %s", dsm_strerror(dret));
	if (ret == 0)
		ret = agree(o, dret == 0, msg);
	dsm_all_free(d.s);
	if (ret)
		return ret;

	snprintf(extra, sizeof(extra),
	         "\"version\": \"mpi\", \"adds_per_thread\": %" PRIu64 ", \"sum\": %" PRIu64, adds,
	         mpi_total);
	bench_emit(o, &(struct bench_result){.workload = WL,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = t_mpi,
	                                     .size = (size_t)adds,
	                                     .extra = extra});
	snprintf(extra, sizeof(extra),
	         "\"version\": \"dsm\", \"adds_per_thread\": %" PRIu64
	         ", \"us_per_add\": %.2f, \"faults\": %" PRIu64 ", \"upgrades\": %" PRIu64
	         ", \"invalidations\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64,
	         adds, t_dsm * 1e6 / (double)(adds * (uint64_t)nthreads * (uint64_t)o->nranks),
	         sum.v[0], sum.v[1], sum.v[2], sum.v[3], sum.v[4]);
	bench_emit(o, &(struct bench_result){.workload = WL,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = t_dsm,
	                                     .threads = nthreads,
	                                     .size = (size_t)adds,
	                                     .baseline_name = "mpi",
	                                     .baseline = t_mpi,
	                                     .extra = extra});
	return 0;
}
