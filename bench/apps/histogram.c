/* SPDX-License-Identifier: MIT */
/*
 * histogram: every rank (and every application thread of it) draws a deterministic
 * pseudo-random sequence and counts the draws in shared bins.
 *
 * DSM version: the bins are one array of 64-bit counters, dsm_all_alloc(DSM_DIST_CYCLIC) so
 * that their lines have different homes, and every draw is an atomic_fetch_add on its bin:
 * the lines move between the ranks as their writers change.
 *
 * MPI version, as a user would write it: a private histogram per rank, summed on rank 0 with
 * MPI_Reduce. It draws the same sequences (one per DSM thread, in turn).
 *
 * pthreads version: the DSM kernel itself on rank 0 alone, on malloc'ed bins, one thread per
 * DSM thread of every rank drawing that thread's sequence (with atomic_fetch_add as there).
 *
 * Multiple-writer version (dsm_mw): the bins in dsm_all_alloc_mw memory, rank r's count of bin
 * b at [b * nranks + r], so that every line holds counts of every rank (false sharing made on
 * purpose). A rank's threads add with atomic_fetch_add on its own slots, which works since they
 * share the rank's copy; no two ranks write one byte, so the program is race-free. The barrier
 * at the end merges the ranks' diffs at the homes, and rank 0 sums each bin's slots (timed).
 *
 * Counts are integers: rank 0 checks the bins exactly, the total against the number of draws
 * and, in smoke runs, against a serial reference that draws every sequence itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <dsm.h>

#include "common.h"

#define WL    "histogram"
#define NBINS 4096 /* a power of two; 32 KiB of counters */

/* splitmix64: a good 64-bit mix, cheap, and one state word per sequence. */
static uint64_t next_draw(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The sequence of thread tid of rank rank. */
static uint64_t seed(int rank, int tid)
{
	return ((uint64_t)rank << 32 | (uint64_t)tid) * 0x2545f4914f6cdd1dULL + 12345ULL;
}

static unsigned bin_of(uint64_t x)
{
	return (unsigned)(x >> 40) & (NBINS - 1);
}

/* The kernel of the DSM and pthreads versions: sequences [first, first + nseq) of the DSM
 * run's threads, numbered rank * per_rank + tid, spread over the team. */
struct hist_job {
	_Atomic uint64_t *bins;
	uint64_t draws; /* per sequence */
	int first, nseq, per_rank;
};

static void team_draws(struct team *t, int tid)
{
	struct hist_job *h = t->arg;

	for (int w = tid; w < h->nseq; w += t->n) {
		int q = h->first + w;
		uint64_t s = seed(q / h->per_rank, q % h->per_rank);

		for (uint64_t k = 0; k < h->draws; k++)
			atomic_fetch_add(&h->bins[bin_of(next_draw(&s))], 1);
	}
}

static int run_dsm(const struct bench_opts *o, struct hist_job *h, int nthreads, double *t,
                   struct stats_delta *sum)
{
	/* Each rank clears the bins it is home of. */
	for (unsigned b = 0; b < NBINS; b++)
		if (dsm_home((const void *)&h->bins[b]) == o->rank)
			atomic_store_explicit(&h->bins[b], 0, memory_order_relaxed);

	return apps_timed_team(o, WL, nthreads, team_draws, h, true, t, sum);
}

/* The multiple-writer version's job: every rank's slots of every bin. */
struct mw_job {
	_Atomic uint64_t *slots;
	uint64_t draws;
	int rank, nranks, nthreads;
};

static void team_draws_mw(struct team *t, int tid)
{
	struct mw_job *m = t->arg;

	for (int w = tid; w < m->nthreads; w += t->n) {
		uint64_t s = seed(m->rank, w);

		for (uint64_t k = 0; k < m->draws; k++) {
			size_t b = bin_of(next_draw(&s));

			atomic_fetch_add_explicit(
			        &m->slots[b * (size_t)m->nranks + (size_t)m->rank], 1,
			        memory_order_relaxed);
		}
	}
}

/*
 * The multiple-writer version: *t is the team's time with its closing barrier, plus rank 0's
 * sum of the slots into bins (rank 0's, for the check). 0, or -1 on every rank.
 */
static int run_mw(const struct bench_opts *o, uint64_t draws, int nthreads, uint64_t *bins,
                  double *t, struct apps_mw_stats *stats)
{
	struct mw_job m = {
	        .draws = draws, .rank = o->rank, .nranks = o->nranks, .nthreads = nthreads};
	struct stats_delta sum;
	struct apps_mw_stats before;
	size_t n = NBINS * (size_t)o->nranks;
	char msg[160] = "";
	double t0;
	int ret;

	m.slots = dsm_all_alloc_mw(n * sizeof(*m.slots), DSM_DIST_CYCLIC);
	if (m.slots == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc_mw(%zu): %s", n * sizeof(*m.slots),
		         dsm_strerror(-errno));
	if (apps_agree(o, WL, m.slots != NULL, msg))
		return -1;
	apps_mw_stats_take(&before);
	ret = apps_timed_team(o, WL, nthreads, team_draws_mw, &m, true, t, &sum);
	if (ret == 0 && o->rank == 0) {
		t0 = bench_now();
		for (size_t b = 0; b < NBINS; b++) {
			uint64_t c = 0;

			for (size_t r = 0; r < (size_t)o->nranks; r++)
				c += atomic_load_explicit(&m.slots[b * (size_t)o->nranks + r],
				                          memory_order_relaxed);
			bins[b] = c;
		}
		*t += bench_now() - t0;
	}
	apps_mw_stats_sum(&before, stats);
	dsm_barrier();
	dsm_all_free((void *)m.slots);
	return ret;
}

/* The pthreads version: rank 0's bins in *bins_p (to free; NULL elsewhere). */
static int run_pthreads(const struct bench_opts *o, uint64_t draws, int nthreads, int pth_threads,
                        double *t, _Atomic uint64_t **bins_p)
{
	struct hist_job h = {
	        .draws = draws, .first = 0, .nseq = o->nranks * nthreads, .per_rank = nthreads};

	if (o->rank == 0 && (h.bins = malloc(NBINS * sizeof(*h.bins))) != NULL)
		for (unsigned b = 0; b < NBINS; b++)
			atomic_init(&h.bins[b], 0);
	*bins_p = h.bins;
	return apps_timed_pthreads(o, WL, pth_threads, team_draws, &h, h.bins != NULL,
	                           "out of memory for the bins", t);
}

/* The MPI version: the same draws into a private histogram, reduced into total on rank 0. */
static void run_mpi(const struct bench_opts *o, uint64_t draws, int nthreads, uint64_t *local,
                    uint64_t *total, double *t)
{
	memset(local, 0, NBINS * sizeof(*local));
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	for (int tid = 0; tid < nthreads; tid++) {
		uint64_t s = seed(o->rank, tid);

		for (uint64_t k = 0; k < draws; k++)
			local[bin_of(next_draw(&s))]++;
	}
	MPI_Reduce(local, total, NBINS, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	*t = bench_now() - *t;
}

/* Rank 0's checks; the heap bins were copied to dsm. */
static int check(const struct bench_opts *o, const uint64_t *dsm, const uint64_t *mpi,
                 uint64_t *scratch, uint64_t draws, int nthreads, char *msg, size_t msglen)
{
	uint64_t total = 0, expect = draws * (uint64_t)nthreads * (uint64_t)o->nranks;

	for (unsigned b = 0; b < NBINS; b++) {
		if (dsm[b] != mpi[b]) {
			snprintf(msg, msglen, "bin %u: dsm %" PRIu64 ", mpi %" PRIu64, b, dsm[b],
			         mpi[b]);
			return 0;
		}
		total += dsm[b];
	}
	if (total != expect) {
		snprintf(msg, msglen, "%" PRIu64 " counts in all, %" PRIu64 " draws", total,
		         expect);
		return 0;
	}
	if (!o->smoke)
		return 1;
	memset(scratch, 0, NBINS * sizeof(*scratch));
	for (int r = 0; r < o->nranks; r++) {
		for (int tid = 0; tid < nthreads; tid++) {
			uint64_t s = seed(r, tid);

			for (uint64_t k = 0; k < draws; k++)
				scratch[bin_of(next_draw(&s))]++;
		}
	}
	for (unsigned b = 0; b < NBINS; b++) {
		if (scratch[b] != mpi[b]) {
			snprintf(msg, msglen, "bin %u: serial %" PRIu64 ", mpi %" PRIu64, b,
			         scratch[b], mpi[b]);
			return 0;
		}
	}
	return 1;
}

int bench_app_histogram(const struct bench_opts *o)
{
	uint64_t draws = o->smoke ? 1000 : 50000;
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct hist_job h = {0};
	struct stats_delta sum = {{0}};
	uint64_t *local = malloc(4 * NBINS * sizeof(uint64_t)), *total, *dsm_copy, *mw_bins;
	struct apps_mw_stats mws = {{0}};
	_Atomic uint64_t *pth_bins = NULL;
	double t_dsm = 0, t_mpi = 0, t_pth = 0, t_mw = 0;
	char msg[200] = "", mx[256], dx[256];
	int ok = 1, ret;

	/* --size scales the draws per thread. */
	if (o->size_factor > 0)
		draws = (uint64_t)((double)draws * o->size_factor);
	if (draws == 0)
		draws = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	h.draws = draws;
	h.first = o->rank * nthreads;
	h.nseq = nthreads;
	h.per_rank = nthreads;

	h.bins = dsm_all_alloc(NBINS * sizeof(uint64_t), DSM_DIST_CYCLIC);
	if (h.bins == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc(%zu): %s", NBINS * sizeof(uint64_t),
		         dsm_strerror(-errno));
	else if (local == NULL)
		snprintf(msg, sizeof(msg), "out of memory");
	if (apps_agree(o, WL, h.bins != NULL && local != NULL, msg)) {
		if (h.bins)
			dsm_all_free((void *)h.bins);
		free(local);
		return -1;
	}
	total = local + NBINS;
	dsm_copy = total + NBINS;
	mw_bins = dsm_copy + NBINS;
	ret = run_dsm(o, &h, nthreads, &t_dsm, &sum);
	if (ret == 0) {
		run_mpi(o, draws, nthreads, local, total, &t_mpi);
		ret = run_pthreads(o, draws, nthreads, pth_threads, &t_pth, &pth_bins);
	}
	if (ret == 0)
		ret = run_mw(o, draws, nthreads, mw_bins, &t_mw, &mws);
	if (ret == 0) {
		if (o->rank == 0) {
			for (unsigned b = 0; b < NBINS; b++)
				dsm_copy[b] = atomic_load(&h.bins[b]);
			ok = check(o, dsm_copy, total, local, draws, nthreads, msg, sizeof(msg));
			for (unsigned b = 0; b < NBINS && ok; b++) {
				if (atomic_load(&pth_bins[b]) == total[b])
					continue;
				snprintf(msg, sizeof(msg),
				         "bin %u: pthreads %" PRIu64 ", mpi %" PRIu64, b,
				         atomic_load(&pth_bins[b]), total[b]);
				ok = 0;
			}
			for (unsigned b = 0; b < NBINS && ok; b++) {
				if (mw_bins[b] == total[b])
					continue;
				snprintf(msg, sizeof(msg),
				         "bin %u: dsm_mw %" PRIu64 ", mpi %" PRIu64, b, mw_bins[b],
				         total[b]);
				ok = 0;
			}
		}
		ret = apps_agree(o, WL, ok, msg);
	}
	free((void *)pth_bins);
	free(local);
	dsm_barrier();
	dsm_all_free((void *)h.bins);
	if (ret)
		return ret;

	snprintf(mx, sizeof(mx),
	         "\"bins\": %d, \"draws_per_thread\": %" PRIu64 ", \"serial_checked\": %s", NBINS,
	         draws, o->smoke ? "true" : "false");
	snprintf(dx, sizeof(dx), "\"bins\": %d, \"draws_per_thread\": %" PRIu64, NBINS, draws);
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = (size_t)draws,
	                                   .nthreads = nthreads,
	                                   .pth_threads = pth_threads,
	                                   .t_mpi = t_mpi,
	                                   .t_pth = t_pth,
	                                   .t_dsm = t_dsm,
	                                   .mpi_extra = mx,
	                                   .pth_extra = dx,
	                                   .dsm_extra = dx,
	                                   .sum = &sum});
	apps_emit_mw(o, WL, (size_t)draws, nthreads, t_mw, t_mpi, t_dsm, dx, &mws);
	return 0;
}
