/* SPDX-License-Identifier: MIT */
/*
 * jacobi: a 2D 5-point Jacobi stencil on an N x N grid of doubles with fixed
 * boundary values, a fixed number of sweeps, two grids swapped every sweep.
 *
 * DSM version: both grids are dsm_all_alloc(DSM_DIST_BLOCK); every rank sweeps
 * the rows whose home it is (found with dsm_home(), so a rank writes only lines
 * it is home of and the only remote traffic is the neighbours' edge rows),
 * with a dsm_barrier() after every sweep. With o->threads > 1 the rank's rows
 * are split between its threads.
 *
 * MPI version, as a user would write it: rows in balanced blocks in private
 * memory with one halo row on each side, exchanged with MPI_Sendrecv before
 * every sweep.
 *
 * Multiple-writer version (dsm_mw): the DSM version on two dsm_all_alloc_mw grids, the same
 * kernel: each barrier releases the rows a rank wrote (diffs to their homes: its own) and
 * drops the copies of the neighbours' rows, fetched again in the next sweep.
 *
 * pthreads version: the DSM kernel itself on rank 0 alone, on two malloc'ed
 * grids, the interior rows split between ranks x threads threads that meet in
 * a pthread barrier after every sweep.
 *
 * Every version (and the serial reference of small runs) computes each point
 * with the same function, in the same operation order, so the grids must be
 * bit-identical: they are compared with memcmp, not a tolerance.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <dsm.h>

#include "common.h"

#define WL "jacobi"
/* A serial reference is computed (by every rank, for its own rows) up to this many point updates.
 */
#define SERIAL_MAX_UPDATES (1UL << 24)

static double init_value(size_t i, size_t j, size_t n)
{
	if (i == 0)
		return 1.0;
	if (j == 0)
		return 0.5;
	if (i == n - 1 || j == n - 1)
		return 0.0;
	return (double)((i * 31 + j * 17) % 64) / 64.0;
}

static void init_row(double *row, size_t i, size_t n)
{
	for (size_t j = 0; j < n; j++)
		row[j] = init_value(i, j, n);
}

/* The one place a point is computed: every version calls it, so the order of the additions is
 * the same everywhere and the results are bit-identical. Columns 0 and n-1 are boundary. */
static void sweep_row(const double *up, const double *mid, const double *down, double *out,
                      size_t n)
{
	for (size_t j = 1; j + 1 < n; j++)
		out[j] = 0.25 * ((up[j] + down[j]) + (mid[j - 1] + mid[j + 1]));
}

/* The kernel of the DSM and pthreads versions: the team sweeps rows [lo, hi) of the grids. */
struct grid_job {
	double *grid[2];
	size_t n, lo, hi; /* rows [lo, hi) are swept by this rank (by this process: pthreads) */
	int iters;
};

static void team_sweeps(struct team *t, int tid)
{
	struct grid_job *g = t->arg;
	size_t rows = g->hi - g->lo, n = g->n;
	size_t lo = g->lo + rows * (size_t)tid / (size_t)t->n;
	size_t hi = g->lo + rows * (size_t)(tid + 1) / (size_t)t->n;

	for (int it = 0; it < g->iters; it++) {
		const double *src = g->grid[it & 1];
		double *dst = g->grid[(it & 1) ^ 1];

		for (size_t i = lo; i < hi; i++)
			sweep_row(src + (i - 1) * n, src + i * n, src + (i + 1) * n, dst + i * n,
			          n);
		team_barrier(t, tid);
	}
}

/* The DSM version; the final grid is g->grid[iters & 1]. */
static int run_dsm(const struct bench_opts *o, struct grid_job *g, int nthreads, double *t,
                   struct stats_delta *sum)
{
	size_t n = g->n, olo, ohi, lo, hi;
	char msg[160] = "";

	apps_home_rows(g->grid[0], n * sizeof(double), n, o->rank, &olo, &ohi);
	apps_home_rows(g->grid[1], n * sizeof(double), n, o->rank, &lo, &hi);
	if (lo != olo || hi != ohi) {
		snprintf(msg, sizeof(msg),
		         "the two grids have different homes: [%zu,%zu) [%zu,%zu)", olo, ohi, lo,
		         hi);
		return apps_agree(o, WL, 0, msg);
	}
	/* Each rank initializes the rows it is home of, boundary rows included, in both grids. */
	for (size_t i = olo; i < ohi; i++) {
		init_row(g->grid[0] + i * n, i, n);
		init_row(g->grid[1] + i * n, i, n);
	}
	g->lo = olo > 1 ? olo : 1;
	g->hi = ohi < n - 1 ? ohi : n - 1;
	if (g->hi < g->lo)
		g->hi = g->lo;

	return apps_timed_team(o, WL, nthreads, team_sweeps, g, false, t, sum);
}

/* The pthreads version: the final grid of rank 0's run is (*mem)[(iters & 1) * n * n]; *mem is
 * what to free (NULL elsewhere). */
static int run_pthreads(const struct bench_opts *o, size_t n, int iters, int nthreads, double *t,
                        double **mem)
{
	struct grid_job g = {.n = n, .lo = 1, .hi = n - 1, .iters = iters};
	double *a = NULL;

	if (o->rank == 0 && (a = malloc(2 * n * n * sizeof(*a))) != NULL) {
		g.grid[0] = a;
		g.grid[1] = a + n * n;
		for (size_t i = 0; i < n; i++) {
			init_row(g.grid[0] + i * n, i, n);
			init_row(g.grid[1] + i * n, i, n);
		}
	}
	*mem = a;
	return apps_timed_pthreads(o, WL, nthreads, team_sweeps, &g, a != NULL,
	                           "out of memory for the grids", t);
}

/* The MPI version: rows [lo, hi) of the interior in a[1..], halos in a[0] and a[hi-lo+1].
 * Returns the final rows (hi - lo of them, after the leading halo) or NULL. */
static double *run_mpi(const struct bench_opts *o, size_t n, int iters, size_t lo, size_t hi,
                       double *t, double **mem)
{
	size_t rows = hi - lo;
	double *a = malloc((rows + 2) * n * sizeof(*a));
	double *b = malloc((rows + 2) * n * sizeof(*b));
	int up = o->rank > 0 ? o->rank - 1 : MPI_PROC_NULL;
	int down = o->rank < o->nranks - 1 ? o->rank + 1 : MPI_PROC_NULL;
	int fail = a == NULL || b == NULL, anyfail;

	MPI_Allreduce(&fail, &anyfail, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (anyfail) {
		free(a);
		free(b);
		return NULL;
	}
	for (size_t k = 0; k < rows + 2; k++) {
		init_row(a + k * n, lo - 1 + k, n);
		init_row(b + k * n, lo - 1 + k, n);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	for (int it = 0; it < iters; it++) {
		double *src = it & 1 ? b : a, *dst = it & 1 ? a : b;

		/* Halos of this sweep: my first row goes up, my last row goes down. */
		MPI_Sendrecv(src + n, (int)n, MPI_DOUBLE, up, 1, src + (rows + 1) * n, (int)n,
		             MPI_DOUBLE, down, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		MPI_Sendrecv(src + rows * n, (int)n, MPI_DOUBLE, down, 2, src, (int)n, MPI_DOUBLE,
		             up, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (size_t k = 1; k <= rows; k++)
			sweep_row(src + (k - 1) * n, src + k * n, src + (k + 1) * n, dst + k * n,
			          n);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now() - *t;
	if (iters & 1) {
		free(a);
		*mem = b;
		return b + n;
	}
	free(b);
	*mem = a;
	return a + n;
}

/* The serial reference, rows [lo, hi) of the final grid copied to out. */
static int run_serial(size_t n, int iters, size_t lo, size_t hi, double *out)
{
	double *a = malloc(n * n * sizeof(*a)), *b = malloc(n * n * sizeof(*b));

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		init_row(a + i * n, i, n);
		init_row(b + i * n, i, n);
	}
	for (int it = 0; it < iters; it++) {
		double *src = it & 1 ? b : a, *dst = it & 1 ? a : b;

		for (size_t i = 1; i + 1 < n; i++)
			sweep_row(src + (i - 1) * n, src + i * n, src + (i + 1) * n, dst + i * n,
			          n);
	}
	memcpy(out, (iters & 1 ? b : a) + lo * n, (hi - lo) * n * sizeof(*out));
	free(a);
	free(b);
	return 0;
}

/* First difference between rows [lo, hi) of two grids, described in msg; 1 when equal. */
static int same_rows(const double *x, const double *y, size_t n, size_t lo, size_t hi,
                     const char *what, char *msg, size_t msglen)
{
	for (size_t i = 0; i < hi - lo; i++) {
		if (memcmp(x + i * n, y + i * n, n * sizeof(*x)) == 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			if (memcmp(&x[i * n + j], &y[i * n + j], sizeof(*x)) == 0)
				continue;
			snprintf(msg, msglen, "%s differ at [%zu][%zu]: %.17g vs %.17g", what,
			         lo + i, j, x[i * n + j], y[i * n + j]);
			return 0;
		}
	}
	return 1;
}

/* Both grids of @g (g->n set), from dsm_all_alloc_mw if @mw, else dsm_all_alloc. 0, or -1 on
 * every rank. */
static int alloc_grids(const struct bench_opts *o, struct grid_job *g, bool mw)
{
	size_t bytes = g->n * g->n * sizeof(double);
	char msg[200] = "";

	for (int i = 0; i < 2; i++)
		g->grid[i] = i && !g->grid[0] ? NULL
		             : mw             ? dsm_all_alloc_mw(bytes, DSM_DIST_BLOCK)
		                              : dsm_all_alloc(bytes, DSM_DIST_BLOCK);
	if (g->grid[1] == NULL)
		snprintf(msg, sizeof(msg), "%s(%zu): %s", mw ? "dsm_all_alloc_mw" : "dsm_all_alloc",
		         bytes, dsm_strerror(-errno));
	if (apps_agree(o, WL, g->grid[1] != NULL, msg)) {
		if (g->grid[0])
			dsm_all_free(g->grid[0]);
		return -1;
	}
	return 0;
}

/* The multiple-writer version: the DSM version on grids from dsm_all_alloc_mw, checked against
 * the MPI version's rows [lo, hi) in @mpi_rows. 0, or -1 on every rank. */
static int run_mw(const struct bench_opts *o, size_t n, int iters, int nthreads, size_t lo,
                  size_t hi, const double *mpi_rows, double *t, struct apps_mw_stats *st)
{
	struct grid_job g = {.n = n, .iters = iters};
	struct apps_mw_stats before;
	struct stats_delta sum;
	char msg[200] = "";
	int ret, ok;

	if (alloc_grids(o, &g, true) < 0)
		return -1;
	apps_mw_stats_take(&before);
	ret = run_dsm(o, &g, nthreads, t, &sum);
	apps_mw_stats_sum(&before, st);
	if (ret == 0) {
		/* The last sweep ended in a barrier: an acquire, so every row is the merged one. */
		ok = same_rows(g.grid[iters & 1] + lo * n, mpi_rows, n, lo, hi, "dsm_mw and mpi",
		               msg, sizeof(msg));
		ret = apps_agree(o, WL, ok, msg);
	}
	dsm_barrier();
	dsm_all_free(g.grid[1]);
	dsm_all_free(g.grid[0]);
	return ret;
}

int bench_app_jacobi(const struct bench_opts *o)
{
	size_t n = o->smoke ? 256 : 1024;
	int iters = o->smoke ? 20 : 100;
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct grid_job g = {0};
	struct stats_delta sum = {{0}};
	struct apps_mw_stats mws = {{0}};
	double t_dsm = 0, t_mpi = 0, t_pth = 0, t_mw = 0, *mpi_rows, *mpi_mem = NULL, *ref = NULL;
	double *pth_mem = NULL;
	size_t lo, hi;
	char msg[200] = "", mx[256], dx[256];
	int ok = 1, ret;

	/* --size scales the side of the grid, kept a multiple of 64 and at least 4 rows per
	 * rank. */
	if (o->size_factor > 0)
		n = (size_t)((double)n * o->size_factor + 63) / 64 * 64;
	if (n < 64)
		n = 64;
	if (n < 4 * (size_t)o->nranks + 2)
		n = (4 * (size_t)o->nranks + 2 + 63) / 64 * 64;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	g.n = n;
	g.iters = iters;

	if (alloc_grids(o, &g, false) < 0)
		return -1;
	ret = run_dsm(o, &g, nthreads, &t_dsm, &sum);

	/* The MPI version splits the interior rows in balanced blocks. */
	lo = 1 + (n - 2) * (size_t)o->rank / (size_t)o->nranks;
	hi = 1 + (n - 2) * (size_t)(o->rank + 1) / (size_t)o->nranks;
	mpi_rows = ret == 0 ? run_mpi(o, n, iters, lo, hi, &t_mpi, &mpi_mem) : NULL;
	if (ret == 0 && mpi_rows == NULL)
		ret = apps_agree(o, WL, 0, "out of memory for the MPI grids");
	if (ret == 0)
		ret = run_pthreads(o, n, iters, pth_threads, &t_pth, &pth_mem);
	if (ret == 0) {
		/* The final DSM grid is grid[iters & 1]; reading other ranks' rows here is
		 * remote misses, outside the timed part. */
		ok = same_rows(g.grid[iters & 1] + lo * n, mpi_rows, n, lo, hi, "dsm and mpi", msg,
		               sizeof(msg));
		if (ok && o->smoke && (size_t)iters * n * n <= SERIAL_MAX_UPDATES) {
			ref = malloc((hi - lo) * n * sizeof(*ref));
			if (ref == NULL || run_serial(n, iters, lo, hi, ref) < 0) {
				snprintf(msg, sizeof(msg),
				         "out of memory for the serial reference");
				ok = 0;
			} else {
				ok = same_rows(ref, mpi_rows, n, lo, hi, "serial and mpi", msg,
				               sizeof(msg));
			}
		}
		/* Rank 0 reads the whole DSM grid for it: misses, outside the timed parts. */
		if (ok && o->rank == 0)
			ok = same_rows(g.grid[iters & 1], pth_mem + (size_t)(iters & 1) * n * n, n,
			               0, n, "dsm and pthreads", msg, sizeof(msg));
		ret = apps_agree(o, WL, ok, msg);
	}
	free(pth_mem);
	free(ref);
	dsm_barrier();
	dsm_all_free(g.grid[1]);
	dsm_all_free(g.grid[0]);
	if (ret == 0)
		ret = run_mw(o, n, iters, nthreads, lo, hi, mpi_rows, &t_mw, &mws);
	free(mpi_mem);
	if (ret)
		return ret;

	/* Report what rank 0 measured (every timed part ends in a barrier). */
	snprintf(mx, sizeof(mx), "\"n\": %zu, \"iterations\": %d, \"serial_checked\": %s", n, iters,
	         o->smoke && (size_t)iters * n * n <= SERIAL_MAX_UPDATES ? "true" : "false");
	snprintf(dx, sizeof(dx), "\"n\": %zu, \"iterations\": %d", n, iters);
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = n,
	                                   .nthreads = nthreads,
	                                   .pth_threads = pth_threads,
	                                   .t_mpi = t_mpi,
	                                   .t_pth = t_pth,
	                                   .t_dsm = t_dsm,
	                                   .mpi_extra = mx,
	                                   .pth_extra = dx,
	                                   .dsm_extra = dx,
	                                   .sum = &sum});
	apps_emit_mw(o, WL, n, nthreads, t_mw, t_mpi, t_dsm, dx, &mws);
	return 0;
}
