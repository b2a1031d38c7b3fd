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
 * pthreads version: the same loop on rank 0 alone, one thread per DSM thread of every rank
 * adding that thread's values into a malloc'ed accumulator under a pthread_mutex_t.
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

#include "common.h"

#define WL "mutex_sum"

/* Value k of thread tid of rank rank: deterministic, in [1, 1000]. */
static uint64_t value(int rank, int tid, uint64_t k)
{
	uint64_t z = ((uint64_t)rank << 48 ^ (uint64_t)tid << 32 ^ k) * 0x9e3779b97f4a7c15ULL;

	z ^= z >> 29;
	return z % 1000 + 1;
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

/* The pthreads version's accumulator and sequences: [0, nseq) of the DSM run's threads,
 * numbered rank * per_rank + tid, spread over the team. */
struct pth_sum {
	pthread_mutex_t lock;
	uint64_t sum; /* plain: only ever touched under lock */
	uint64_t adds;
	int nseq, per_rank;
};

static void pth_adds(struct team *t, int tid)
{
	struct pth_sum *p = t->arg;

	for (int w = tid; w < p->nseq; w += t->n) {
		for (uint64_t k = 0; k < p->adds; k++) {
			pthread_mutex_lock(&p->lock);
			p->sum += value(w / p->per_rank, w % p->per_rank, k);
			pthread_mutex_unlock(&p->lock);
		}
	}
}

static int run_dsm(const struct bench_opts *o, struct dsm_sum *d, int nthreads, double *t,
                   struct stats_delta *sum)
{
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
	if (apps_agree(o, WL, ok, msg))
		return -1;
	/* dsm_mutex_init() has returned on rank 0: after the barrier that starts the timed
	 * part any rank may lock. */
	if (apps_timed_team(o, WL, nthreads, dsm_adds, d, true, t, sum) < 0)
		return -1;
	if (d->err)
		snprintf(msg, sizeof(msg), "dsm_mutex_lock/unlock: %s", dsm_strerror(d->err));
	return apps_agree(o, WL, d->err == 0, msg);
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

/* The pthreads version: rank 0's sum in *total. */
static int run_pthreads(const struct bench_opts *o, uint64_t adds, int nthreads, int pth_threads,
                        double *t, uint64_t *total)
{
	struct pth_sum *p = o->rank == 0 ? malloc(sizeof(*p)) : NULL;
	int ret;

	if (p) {
		pthread_mutex_init(&p->lock, NULL);
		p->sum = 0;
		p->adds = adds;
		p->nseq = o->nranks * nthreads;
		p->per_rank = nthreads;
	}
	ret = apps_timed_pthreads(o, WL, pth_threads, pth_adds, p, p != NULL,
	                          "out of memory for the accumulator", t);
	if (p) {
		*total = p->sum;
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	return ret;
}

int bench_app_mutex_sum(const struct bench_opts *o)
{
	uint64_t adds = o->smoke ? 100 : 2000;
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct dsm_sum d = {0};
	struct stats_delta sum = {{0}};
	uint64_t mpi_total = 0, dsm_total = 0, pth_total = 0, serial = 0;
	double t_dsm = 0, t_mpi = 0, t_pth = 0;
	char msg[200] = "", mx[256], dx[256], px[128];
	int ok = 1, ret, dret;

	/* --size scales the additions per thread. */
	if (o->size_factor > 0)
		adds = (uint64_t)((double)adds * o->size_factor);
	if (adds == 0)
		adds = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	d.adds = adds;
	d.rank = o->rank;

	d.s = dsm_all_alloc(sizeof(*d.s), DSM_DIST_LOCAL);
	if (d.s == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc(%zu): %s", sizeof(*d.s),
		         dsm_strerror(-errno));
	if (apps_agree(o, WL, d.s != NULL, msg))
		return -1;
	ret = run_dsm(o, &d, nthreads, &t_dsm, &sum);
	if (ret == 0) {
		run_mpi(o, adds, nthreads, &mpi_total, &t_mpi);
		ret = run_pthreads(o, adds, nthreads, pth_threads, &t_pth, &pth_total);
	}
	if (ret == 0) {
		if (o->rank == 0) {
			dsm_total = d.s->sum;
			for (int r = 0; r < o->nranks; r++)
				for (int tid = 0; tid < nthreads; tid++)
					for (uint64_t k = 0; k < adds; k++)
						serial += value(r, tid, k);
			if (dsm_total != mpi_total || mpi_total != serial || pth_total != serial) {
				snprintf(msg, sizeof(msg),
				         "sums differ: dsm %" PRIu64 ", mpi %" PRIu64
				         ", pthreads %" PRIu64 ", serial %" PRIu64,
				         dsm_total, mpi_total, pth_total, serial);
				ok = 0;
			}
		}
		ret = apps_agree(o, WL, ok, msg);
	}
	/* Nobody holds the mutex once every rank is past this barrier. */
	dsm_barrier();
	dret = d.inited ? dsm_mutex_destroy(&d.s->lock) : 0;
	if (dret < 0)
		snprintf(msg, sizeof(msg), "dsm_mutex_destroy: %s", dsm_strerror(dret));
	if (ret == 0)
		ret = apps_agree(o, WL, dret == 0, msg);
	dsm_all_free(d.s);
	if (ret)
		return ret;

	snprintf(mx, sizeof(mx), "\"adds_per_thread\": %" PRIu64 ", \"sum\": %" PRIu64, adds,
	         mpi_total);
	snprintf(dx, sizeof(dx), "\"adds_per_thread\": %" PRIu64 ", \"us_per_add\": %.2f", adds,
	         t_dsm * 1e6 / (double)(adds * (uint64_t)nthreads * (uint64_t)o->nranks));
	snprintf(px, sizeof(px), "\"adds_per_thread\": %" PRIu64 ", \"us_per_add\": %.2f", adds,
	         t_pth * 1e6 / (double)(adds * (uint64_t)nthreads * (uint64_t)o->nranks));
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = (size_t)adds,
	                                   .nthreads = nthreads,
	                                   .pth_threads = pth_threads,
	                                   .t_mpi = t_mpi,
	                                   .t_pth = t_pth,
	                                   .t_dsm = t_dsm,
	                                   .mpi_extra = mx,
	                                   .pth_extra = px,
	                                   .dsm_extra = dx,
	                                   .sum = &sum});
	return 0;
}
