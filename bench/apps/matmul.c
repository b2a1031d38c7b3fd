/* SPDX-License-Identifier: MIT */
/*
 * matmul: C = A x B, dense n x n doubles, A and B initialized deterministically.
 *
 * DSM version: A, B and C are dsm_all_alloc(DSM_DIST_BLOCK). Every rank takes the rows whose
 * home it is (found with dsm_home(), so its rows of A and C never leave it), initializes its
 * rows of A and B, and after a barrier computes its rows of C, reading all of B from the heap:
 * the other ranks' rows of B arrive through read misses. With o->threads > 1 the rank's rows
 * are split between its threads.
 *
 * MPI version, as a user would write it: rows in balanced blocks; each rank initializes its
 * rows of A and B, gathers all of B with MPI_Allgatherv (timed: it is the communication the
 * DSM version does with misses) and computes its rows of C.
 *
 * pthreads version: the DSM kernel itself on rank 0 alone, on malloc'ed matrices initialized
 * before the clock starts (as the DSM ones are), the rows of C split between ranks x threads
 * threads.
 *
 * The entries of A and B are multiples of 1/4 in [-2, 2), so every product is a multiple of
 * 1/16 below 4 in magnitude and every partial sum of up to 2^40 of them is an exact double:
 * C is exact whatever the order of the additions, and the versions are compared exactly (==).
 * (They also use the same i-k-j loop, so they would agree bit for bit even without that.)
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

#define WL "matmul"
/* Above this size the serial reference would cost as much as the run: skip it. */
#define SERIAL_MAX_N 256

static double a_value(size_t i, size_t k)
{
	return (double)((int)((i * 7 + k * 3) % 16) - 8) / 4.0;
}

static double b_value(size_t k, size_t j)
{
	return (double)((int)((k * 5 + j * 11) % 16) - 8) / 4.0;
}

static void init_a_row(double *row, size_t i, size_t n)
{
	for (size_t k = 0; k < n; k++)
		row[k] = a_value(i, k);
}

static void init_b_row(double *row, size_t k, size_t n)
{
	for (size_t j = 0; j < n; j++)
		row[j] = b_value(k, j);
}

/* One row of C: c = a_row x b, in i-k-j order (streams through rows of B). */
static void mul_row(const double *a_row, const double *b, double *c, size_t n)
{
	for (size_t j = 0; j < n; j++)
		c[j] = 0;
	for (size_t k = 0; k < n; k++) {
		const double a = a_row[k], *b_row = b + k * n;

		for (size_t j = 0; j < n; j++)
			c[j] += a * b_row[j];
	}
}

/* The kernel of the DSM and pthreads versions: the team computes rows [lo, hi) of C. */
struct mm_job {
	const double *a, *b;
	double *c;
	size_t n, lo,
	        hi; /* rows [lo, hi) of C are computed by this rank (by this process: pthreads) */
};

static void team_rows(struct team *t, int tid)
{
	struct mm_job *m = t->arg;
	size_t rows = m->hi - m->lo, n = m->n;
	size_t lo = m->lo + rows * (size_t)tid / (size_t)t->n;
	size_t hi = m->lo + rows * (size_t)(tid + 1) / (size_t)t->n;

	for (size_t i = lo; i < hi; i++)
		mul_row(m->a + i * n, m->b, m->c + i * n, n);
}

static int run_dsm(const struct bench_opts *o, struct mm_job *m, double *a, double *b, int nthreads,
                   double *t, struct stats_delta *sum)
{
	size_t n = m->n, lo, hi;
	char msg[160] = "";

	apps_home_rows(a, n * sizeof(double), n, o->rank, &m->lo, &m->hi);
	apps_home_rows(m->c, n * sizeof(double), n, o->rank, &lo, &hi);
	if (lo != m->lo || hi != m->hi) {
		snprintf(msg, sizeof(msg), "A and C have different homes: [%zu,%zu) [%zu,%zu)",
		         m->lo, m->hi, lo, hi);
		return apps_agree(o, WL, 0, msg);
	}
	apps_home_rows(b, n * sizeof(double), n, o->rank, &lo, &hi);
	for (size_t i = m->lo; i < m->hi; i++)
		init_a_row(a + i * n, i, n);
	for (size_t k = lo; k < hi; k++)
		init_b_row(b + k * n, k, n);

	return apps_timed_team(o, WL, nthreads, team_rows, m, true, t, sum);
}

/* The pthreads version: rank 0's C is (*mem)[2 * n * n]; *mem is what to free (NULL elsewhere). */
static int run_pthreads(const struct bench_opts *o, size_t n, int nthreads, double *t, double **mem)
{
	struct mm_job m = {.n = n, .lo = 0, .hi = n};
	double *a = NULL;

	if (o->rank == 0 && (a = malloc(3 * n * n * sizeof(*a))) != NULL) {
		for (size_t i = 0; i < n; i++) {
			init_a_row(a + i * n, i, n);
			init_b_row(a + (n + i) * n, i, n);
		}
		m.a = a;
		m.b = a + n * n;
		m.c = a + 2 * n * n;
	}
	*mem = a;
	return apps_timed_pthreads(o, WL, nthreads, team_rows, &m, a != NULL,
	                           "out of memory for the matrices", t);
}

/* The MPI version: returns this rank's rows [lo, hi) of C, or NULL when out of memory (on
 * every rank). */
static double *run_mpi(const struct bench_opts *o, size_t n, size_t lo, size_t hi, double *t)
{
	size_t rows = hi - lo;
	double *a = malloc((rows ? rows : 1) * n * sizeof(*a));
	double *b = malloc(n * n * sizeof(*b));
	double *c = malloc((rows ? rows : 1) * n * sizeof(*c));
	int *counts = malloc((size_t)o->nranks * sizeof(*counts));
	int *displs = malloc((size_t)o->nranks * sizeof(*displs));
	int fail = !a || !b || !c || !counts || !displs, anyfail;

	MPI_Allreduce(&fail, &anyfail, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (anyfail) {
		free(c);
		c = NULL;
		goto out;
	}
	for (int r = 0; r < o->nranks; r++) {
		size_t rlo = n * (size_t)r / (size_t)o->nranks;
		size_t rhi = n * (size_t)(r + 1) / (size_t)o->nranks;

		counts[r] = (int)((rhi - rlo) * n);
		displs[r] = (int)(rlo * n);
	}
	for (size_t i = lo; i < hi; i++) {
		init_a_row(a + (i - lo) * n, i, n);
		init_b_row(b + i * n, i, n);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, counts, displs, MPI_DOUBLE,
	               MPI_COMM_WORLD);
	for (size_t i = 0; i < rows; i++)
		mul_row(a + i * n, b, c + i * n, n);
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now() - *t;
out:
	free(displs);
	free(counts);
	free(b);
	free(a);
	return c;
}

/* The serial reference for rows [lo, hi), compared with the MPI result. */
static int check_serial(const double *c, size_t n, size_t lo, size_t hi, char *msg, size_t msglen)
{
	double *a = malloc(n * sizeof(*a)), *b = malloc(n * n * sizeof(*b));
	double *ref = malloc(n * sizeof(*ref));
	int ok = 1;

	if (!a || !b || !ref) {
		snprintf(msg, msglen, "out of memory for the serial reference");
		ok = 0;
		goto out;
	}
	for (size_t k = 0; k < n; k++)
		init_b_row(b + k * n, k, n);
	for (size_t i = lo; i < hi && ok; i++) {
		/* Plain i-j-k dot products: a different order than mul_row, exact all the same. */
		for (size_t j = 0; j < n; j++) {
			double s = 0;

			for (size_t k = 0; k < n; k++)
				s += a_value(i, k) * b[k * n + j];
			ref[j] = s;
		}
		for (size_t j = 0; j < n; j++) {
			if (ref[j] == c[(i - lo) * n + j])
				continue;
			snprintf(msg, msglen, "serial and mpi differ at [%zu][%zu]: %.17g vs %.17g",
			         i, j, ref[j], c[(i - lo) * n + j]);
			ok = 0;
			break;
		}
	}
out:
	free(ref);
	free(b);
	free(a);
	return ok;
}

int bench_app_matmul(const struct bench_opts *o)
{
	size_t n = o->smoke ? 128 : 512;
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct mm_job m = {0};
	struct stats_delta sum = {{0}};
	double t_dsm = 0, t_mpi = 0, t_pth = 0, *a, *b, *c, *mpi_c = NULL, *pth_mem = NULL;
	unsigned long long rows_max = 0, rows_min = 0, my_rows;
	size_t lo, hi, bytes;
	char msg[200] = "", mx[256], dx[256], px[64];
	int ok = 1, ret, serial;

	/* --size scales n, kept a multiple of 64. */
	if (o->size_factor > 0)
		n = (size_t)((double)n * o->size_factor + 63) / 64 * 64;
	if (n < 64)
		n = 64;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	serial = n <= SERIAL_MAX_N;
	bytes = n * n * sizeof(double);
	m.n = n;

	a = dsm_all_alloc(bytes, DSM_DIST_BLOCK);
	b = a ? dsm_all_alloc(bytes, DSM_DIST_BLOCK) : NULL;
	c = b ? dsm_all_alloc(bytes, DSM_DIST_BLOCK) : NULL;
	if (c == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc(%zu): %s", bytes, dsm_strerror(-errno));
	if (apps_agree(o, WL, c != NULL, msg)) {
		if (b)
			dsm_all_free(b);
		if (a)
			dsm_all_free(a);
		return -1;
	}
	m.a = a;
	m.b = b;
	m.c = c;
	ret = run_dsm(o, &m, a, b, nthreads, &t_dsm, &sum);
	my_rows = m.hi - m.lo;
	MPI_Reduce(&my_rows, &rows_max, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
	MPI_Reduce(&my_rows, &rows_min, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, 0, MPI_COMM_WORLD);

	lo = n * (size_t)o->rank / (size_t)o->nranks;
	hi = n * (size_t)(o->rank + 1) / (size_t)o->nranks;
	if (ret == 0 && (mpi_c = run_mpi(o, n, lo, hi, &t_mpi)) == NULL)
		ret = apps_agree(o, WL, 0, "out of memory for the MPI matrices");
	if (ret == 0)
		ret = run_pthreads(o, n, pth_threads, &t_pth, &pth_mem);
	if (ret == 0) {
		/* Rows of C homed elsewhere arrive by read misses here, outside the timed part. */
		for (size_t i = lo; i < hi && ok; i++) {
			for (size_t j = 0; j < n; j++) {
				if (c[i * n + j] == mpi_c[(i - lo) * n + j])
					continue;
				snprintf(msg, sizeof(msg),
				         "dsm and mpi differ at [%zu][%zu]: %.17g vs %.17g", i, j,
				         c[i * n + j], mpi_c[(i - lo) * n + j]);
				ok = 0;
				break;
			}
		}
		if (ok && serial)
			ok = check_serial(mpi_c, n, lo, hi, msg, sizeof(msg));
		/* Rank 0 reads all of the DSM C for it: misses, outside the timed parts. */
		for (size_t i = 0; o->rank == 0 && i < n * n && ok; i++) {
			if (c[i] == pth_mem[2 * n * n + i])
				continue;
			snprintf(msg, sizeof(msg),
			         "dsm and pthreads differ at [%zu][%zu]: %.17g vs %.17g", i / n,
			         i % n, c[i], pth_mem[2 * n * n + i]);
			ok = 0;
		}
		ret = apps_agree(o, WL, ok, msg);
	}
	free(pth_mem);
	free(mpi_c);
	dsm_barrier();
	dsm_all_free(c);
	dsm_all_free(b);
	dsm_all_free(a);
	if (ret)
		return ret;

	snprintf(mx, sizeof(mx), "\"n\": %zu, \"serial_checked\": %s", n,
	         serial ? "true" : "false");
	/* rows_min/rows_max: the DSM rows follow the homes of whole lines, so with few rows
	 * per line they are less balanced than the MPI blocks. */
	snprintf(dx, sizeof(dx), "\"n\": %zu, \"rows_min\": %llu, \"rows_max\": %llu", n, rows_min,
	         rows_max);
	snprintf(px, sizeof(px), "\"n\": %zu", n);
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = n,
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
