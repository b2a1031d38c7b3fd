/* SPDX-License-Identifier: MIT */
/* What the application workloads share (common.c). */
#ifndef DSM_BENCH_APPS_COMMON_H
#define DSM_BENCH_APPS_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"

#define MAX_THREADS 64

/* Every rank learns whether every rank passed; the first failing rank's message is printed by
 * rank 0 through bench_fail(wl, ...). Returns 0 when all passed, -1 otherwise, on every rank. */
int apps_agree(const struct bench_opts *o, const char *wl, int ok, const char *msg);

/* Counters summed over the ranks, for the extra members of the DSM result. */
struct stats_delta {
	uint64_t v[6]; /* faults, upgrades, invalidations sent, messages, bytes, bytes received */
};

/*
 * A team of application threads on this rank: created before the timed part and held at a
 * gate, so that when a rank cannot create its threads every rank learns it (apps_agree()) before
 * any of them waits in a DSM barrier, and the threads already created are sent home. A local
 * team (the pthreads versions) is the whole program: its barrier is the pthread one alone.
 */
struct team {
	int n;
	bool local;
	pthread_t th[MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* 0: wait at the gate, 1: run, -1: quit */
	int has_bar;
	pthread_barrier_t bar;
	void (*fn)(struct team *t, int tid);
	void *arg;
	struct team_slot {
		struct team *t;
		int tid;
	} slot[MAX_THREADS];
};

/* The rows of an @n-row shared array of @row_bytes each whose first byte this rank is home
 * of: [*lo, *hi) (0, 0: none). With DSM_DIST_BLOCK they are contiguous. */
void apps_home_rows(const void *a, size_t row_bytes, size_t n, int rank, size_t *lo, size_t *hi);

void stats_take(struct stats_delta *s);
void stats_sum(const struct stats_delta *before, const struct stats_delta *after,
               struct stats_delta *sum);

int team_start(struct team *t, int n, bool local, void (*fn)(struct team *, int), void *arg,
               char *msg, size_t msglen);
void team_finish(struct team *t, int run);
void team_barrier(struct team *t, int tid);

/*
 * The timed part of a DSM version: @fn runs on a team of @nthreads threads of every rank.
 * The teams are started and agreed on first; then the clock runs from a barrier to the end
 * of the team (and a second barrier with @end_barrier: workloads whose threads end in one
 * of their own go without). *t: seconds; *sum: libdsm's counters over every rank. 0, or -1
 * on every rank when one could not start its team (after bench_fail).
 */
int apps_timed_team(const struct bench_opts *o, const char *wl, int nthreads,
                    void (*fn)(struct team *, int), void *arg, bool end_barrier, double *t,
                    struct stats_delta *sum);

/* Threads of the pthreads version: one per DSM thread of every rank, at most MAX_THREADS. */
int apps_pthreads_count(const struct bench_opts *o, int nthreads);

/* An MPI_COMM_WORLD barrier that sleeps 1 ms between tests: MPICH polls in MPI_Barrier, and
 * a waiting rank would take a core from rank 0's threads. */
void apps_sleepy_barrier(void);

/*
 * The timed part of a pthreads version, the same kernel as the DSM one in one process: on rank
 * 0, @fn runs on a local team of @nthreads threads over the memory the caller prepared (@ready:
 * it could; else @why says what failed); the clock runs from the gate to the last join, as for
 * the DSM team. The other ranks wait meanwhile in apps_sleepy_barrier(). *t: seconds, on rank
 * 0. 0, or -1 on every rank when rank 0 could not run (after bench_fail).
 */
int apps_timed_pthreads(const struct bench_opts *o, const char *wl, int nthreads,
                        void (*fn)(struct team *, int), void *arg, bool ready, const char *why,
                        double *t);

/* What an application workload reports. The *_extra are JSON members of each line
 * ("\"n\": 512"). */
struct apps_result {
	const char *wl;
	size_t size;
	int nthreads;    /* DSM threads per rank */
	int pth_threads; /* threads of the pthreads version */
	double t_mpi, t_pth, t_dsm;
	const char *mpi_extra, *pth_extra, *dsm_extra;
	const struct stats_delta *sum; /* the DSM run's counters over every rank */
};

/*
 * The three results of an application workload: the MPI version's time, the pthreads
 * version's, then the DSM version's with the MPI one as its baseline, the pthreads time and
 * its ratio to it, and the counters of r->sum.
 */
void apps_emit(const struct bench_opts *o, const struct apps_result *r);

/* The multiple-writer counters of a run: mw faults, diffs sent, bytes of diff, copies
 * dropped at acquires. */
struct apps_mw_stats {
	uint64_t v[4];
};

void apps_mw_stats_take(struct apps_mw_stats *s);
/* Since @before, summed over the ranks into *@sum on rank 0 (collective). */
void apps_mw_stats_sum(const struct apps_mw_stats *before, struct apps_mw_stats *sum);

/*
 * The result of a workload's multiple-writer version (dsm_all_alloc_mw memory): its time
 * @t_mw against the MPI version's, its ratio to the default-memory DSM version's @t_dsm, the
 * members @extra (a JSON fragment) and the counters.
 */
void apps_emit_mw(const struct bench_opts *o, const char *wl, size_t size, int nthreads,
                  double t_mw, double t_mpi, double t_dsm, const char *extra,
                  const struct apps_mw_stats *s);

#endif
