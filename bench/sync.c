/* SPDX-License-Identifier: MIT */
/*
 * Synchronization: what a barrier and a dsm_mutex cost, and how fairly ranks
 * share one hot atomic word. Every figure is a ratio to the 64-byte message
 * round trip measured in the same run with the peer polling (the floor of a
 * message, msg_rtt_64_polling): a barrier of 2 ranks is one message each
 * way, a remote lock one request and one reply.
 *
 *   sync      barrier; lock/unlock pair at the mutex's home, from another rank,
 *             and contended by two ranks (time per hand-off)
 *   hotword   every rank increments one C11 atomic in the heap: exact total,
 *             each rank's share, and the longest any rank waited for the word
 */
#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/driver.h"
#include "bench/mpiboot.h"

/* Pairs timed as one sample: a clock read costs ~20 ns, a local pair aims at 1 us. */
#define PAIRS_PER_SAMPLE 16

static void emit_us(const struct bench_opts *o, const struct bench_ctx *c, const char *metric,
                    double *v, long n, const char *extra_more)
{
	const struct bench_floor *f = c->floor;
	double p50, p99, mean = 0;
	char extra[320];

	/* The mean too: what a program that does many of them pays, tails included. */
	for (long i = 0; i < n; i++)
		mean += v[i] / (double)n;
	p50 = bench_quantile(v, (size_t)n, 0.5);
	p99 = bench_quantile(v, (size_t)n, 0.99);
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"mean_us\": %.6g, \"p99_us\": %.6g, \"samples\": %ld%s%s",
	         mean, p99, n, extra_more ? ", " : "", extra_more ? extra_more : "");
	bench_emit(o, &(struct bench_result){.workload = "sync",
	                                     .metric = metric,
	                                     .unit = "us",
	                                     .value = p50,
	                                     .baseline_name = f->have ? "msg_rtt_64_polling" : NULL,
	                                     .baseline = f->have ? f->rtt_poll_us[0] : 0,
	                                     .extra = extra});
}

/* Empty barriers, every rank arriving together (the previous barrier let them go). */
static int sync_barrier(const struct bench_opts *o, const struct bench_ctx *c)
{
	long n = bench_count(o, 20000, 500);
	double *lat = calloc((size_t)n, sizeof(*lat)), end;
	long i;
	char extra[64];

	if (lat == NULL)
		return -ENOMEM;
	for (i = 0; i < 100; i++)
		dsm_barrier();
	end = bench_now() + bench_budget(o);
	for (i = 0; i < n; i++) {
		double t0 = bench_now();
		int stop;

		dsm_barrier();
		lat[i] = (bench_now() - t0) * 1e6;
		/* Rank 0's clock decides for everyone, through the heap-free MPI path once in a
		 * while (not timed). */
		if ((i & 1023) == 1023) {
			stop = o->rank == 0 && bench_now() > end;
			MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
			if (stop) {
				i++;
				break;
			}
		}
	}
	snprintf(extra, sizeof(extra), "\"ranks_in_barrier\": %d", o->nranks);
	emit_us(o, c, "barrier", lat, i, extra);
	free(lat);
	return 0;
}

/* @n samples of PAIRS_PER_SAMPLE lock/unlock pairs of @m on rank @who; the others wait. */
static int pairs(const struct bench_opts *o, dsm_mutex_t *m, int who, long n, double *us)
{
	int err = 0;

	if (o->rank == who) {
		for (long i = 0; i < n && !err; i++) {
			double t0 = bench_now();

			for (int k = 0; k < PAIRS_PER_SAMPLE && !err; k++)
				err = dsm_mutex_lock(m) ? -1 : dsm_mutex_unlock(m);
			us[i] = (bench_now() - t0) * 1e6 / PAIRS_PER_SAMPLE;
		}
	}
	dsm_barrier();
	return err;
}

struct contender {
	dsm_mutex_t *m;
	uint64_t *sum; /* in the heap, protected by m */
	long n;
	int err;
};

/* Two ranks take the mutex in turn: each acquisition that another rank released is a
 * hand-off. The protected word counts every acquisition, and must end exact. */
static int sync_contended(const struct bench_opts *o, const struct bench_ctx *c, dsm_mutex_t *m,
                          uint64_t *sum)
{
	long n = bench_count(o, 20000, 500);
	double t = 0, per;
	uint64_t want = 2 * (uint64_t)n;
	int err = 0, bad;
	char extra[160];

	if (o->rank == 0)
		*sum = 0;
	dsm_barrier();
	if (o->rank <= 1) {
		double t0 = bench_now();

		for (long i = 0; i < n && !err; i++) {
			err = dsm_mutex_lock(m);
			if (err == 0) {
				(*sum)++;
				err = dsm_mutex_unlock(m);
			}
		}
		t = bench_now() - t0;
	}
	dsm_barrier();
	/* The slower of the two ranks' times, over both ranks' acquisitions. */
	MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	bad = err != 0 || (o->rank == 0 && *sum != want);
	if (bad && o->rank == 0)
		bench_fail(o, "sync", "contended mutex: %s, sum %" PRIu64 " of %" PRIu64,
		           err ? dsm_strerror(err) : "ok", *sum, want);
	MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (bad)
		return -1;
	per = t * 1e6 / (double)want;
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"mean\", \"acquisitions\": %" PRIu64 ", \"ranks_locking\": 2", want);
	bench_emit(o, &(struct bench_result){.workload = "sync",
	                                     .metric = "mutex_contended_per_acquisition",
	                                     .unit = "us",
	                                     .value = per,
	                                     .baseline_name =
	                                             c->floor->have ? "msg_rtt_64_polling" : NULL,
	                                     .baseline = c->floor->rtt_poll_us[0],
	                                     .extra = extra});
	return 0;
}

int bench_sync(const struct bench_opts *o, const struct bench_ctx *c)
{
	long n = bench_count(o, 2000, 100);
	double *us = calloc((size_t)n, sizeof(*us));
	struct {
		dsm_mutex_t m;
		char pad[4096 - sizeof(dsm_mutex_t)];
		uint64_t sum;
	} *s = dsm_all_alloc(sizeof(*s), DSM_DIST_LOCAL);
	int ret;

	if (us == NULL || s == NULL) {
		bench_fail(o, "sync", "out of memory: %s", dsm_strerror(-errno));
		free(us);
		return -1;
	}
	ret = sync_barrier(o, c);
	if (ret < 0)
		goto out;
	if (o->rank == 0 && (ret = dsm_mutex_init(&s->m)) < 0)
		bench_fail(o, "sync", "dsm_mutex_init: %s", dsm_strerror(ret));
	MPI_Allreduce(MPI_IN_PLACE, &ret, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (ret < 0)
		goto out;
	dsm_barrier();
	/* At the home (rank 0), nobody else locking. */
	ret = pairs(o, &s->m, 0, n, us);
	if (o->rank == 0 && ret == 0)
		emit_us(o, c, "mutex_pair_home", us, n, "\"home\": 0, \"locker\": 0");
	/* From rank 1, nobody else locking. */
	if (ret == 0)
		ret = pairs(o, &s->m, 1, n, us);
	MPI_Allreduce(MPI_IN_PLACE, &ret, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (ret < 0) {
		bench_fail(o, "sync", "an uncontended lock/unlock pair failed");
		goto out;
	}
	/* Rank 1's samples, reported by rank 0. */
	if (o->rank == 1)
		MPI_Send(us, (int)n, MPI_DOUBLE, 0, 11, MPI_COMM_WORLD);
	if (o->rank == 0) {
		MPI_Recv(us, (int)n, MPI_DOUBLE, 1, 11, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		emit_us(o, c, "mutex_pair_remote", us, n, "\"home\": 0, \"locker\": 1");
	}
	ret = sync_contended(o, c, &s->m, &s->sum);
out:
	bench_mpi_sleepy_barrier();
	free(us);
	if (s) {
		dsm_barrier();
		if (o->rank == 0)
			dsm_mutex_destroy(&s->m);
		dsm_barrier();
		dsm_all_free(s);
	}
	return ret;
}

/* ---- hotword ------------------------------------------------------------------------------ */

int bench_hotword(const struct bench_opts *o, const struct bench_ctx *c)
{
	_Atomic uint64_t *word = dsm_all_alloc(o->line_size, DSM_DIST_LOCAL);
	double dur = o->smoke ? 0.2 : 1.0, t0, last, gap = 0;
	uint64_t mine = 0, total = 0, end_value, *all;
	int bad = 0;

	(void)c;
	if (word == NULL) {
		bench_fail(o, "hotword", "dsm_all_alloc: %s", dsm_strerror(-errno));
		return -1;
	}
	dsm_barrier();
	t0 = last = bench_now();
	/* Every rank for the same time: the longest gap between two of its increments is how
	 * long the word stayed away from it. */
	for (;;) {
		double now;

		atomic_fetch_add_explicit(word, 1, memory_order_relaxed);
		mine++;
		now = bench_now();
		if (now - last > gap)
			gap = now - last;
		last = now;
		if (now - t0 > dur)
			break;
	}
	dsm_barrier();
	end_value = atomic_load(word);
	all = calloc((size_t)o->nranks, sizeof(*all));
	MPI_Gather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	{
		double *gaps = calloc((size_t)o->nranks, sizeof(*gaps));

		MPI_Gather(&gap, 1, MPI_DOUBLE, gaps, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
		if (o->rank == 0) {
			uint64_t lo = UINT64_MAX, hi = 0;
			double gmax = 0;
			char extra[512];
			size_t used;

			for (int r = 0; r < o->nranks; r++) {
				total += all[r];
				lo = all[r] < lo ? all[r] : lo;
				hi = all[r] > hi ? all[r] : hi;
				if (gaps[r] > gmax)
					gmax = gaps[r];
			}
			if (total != end_value) {
				bench_fail(o, "hotword",
				           "the word ended at %" PRIu64 " after %" PRIu64
				           " increments",
				           end_value, total);
				bad = 1;
			}
			used = (size_t)snprintf(
			        extra, sizeof(extra),
			        "\"total\": %" PRIu64 ", \"seconds\": %.3g, "
			        "\"share_min_over_max\": %.4g, \"max_gap_us\": %.6g, "
			        "\"per_rank\": [",
			        total, dur, hi ? (double)lo / (double)hi : 0, gmax * 1e6);
			for (int r = 0; r < o->nranks && used < sizeof(extra) - 24; r++)
				used += (size_t)snprintf(extra + used, sizeof(extra) - used,
				                         "%s%" PRIu64, r ? ", " : "", all[r]);
			snprintf(extra + used, sizeof(extra) - used, "]");
			if (!bad)
				bench_emit(o, &(struct bench_result){.workload = "hotword",
				                                     .metric = "increments_per_s",
				                                     .unit = "1/s",
				                                     .value = (double)total / dur,
				                                     .extra = extra});
		}
		free(gaps);
	}
	free(all);
	MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
	dsm_barrier();
	dsm_all_free((void *)word);
	return bad ? -1 : 0;
}
