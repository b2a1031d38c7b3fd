/* SPDX-License-Identifier: MIT */
/*
 * fft: a 2-D FFT of an n x n array of double complex (n a power of two), by rows: the 1-D FFTs
 * of the rows, a transpose, the 1-D FFTs of the rows again, and a transpose back, so that the
 * output is in the standard layout, X[k1][k2] = sum over j1, j2 of x[j1][j2] w^(j1 k1 + j2 k2)
 * with w = exp(-2 pi i / n). The 1-D FFT is an iterative radix-2 one: a bit-reversal
 * permutation, then log2(n) stages of butterflies, with a table of twiddles made beforehand.
 *
 * DSM version, written the way a threaded program is: the array x and its transpose y are
 * dsm_all_alloc(DSM_DIST_BLOCK); a rank takes the rows it is home of (in both), split between
 * its threads. It transforms its rows of x, and after a barrier fills its rows of y from the
 * columns of x: those cross every rank's rows, so they arrive by remote read misses. It
 * transforms its rows of y, and after a barrier fills its rows of x from the columns of y:
 * writes to its own lines of x, of which the others hold read-only copies by then.
 *
 * MPI version, as an MPI programmer writes it: balanced blocks of rows in private memory; each
 * transpose packs one block of columns per rank, exchanges them with MPI_Alltoallv (the blocks
 * are equal when the ranks divide n) and unpacks them transposed.
 *
 * pthreads version: the DSM kernel itself on rank 0 alone, on malloc'ed arrays, the rows split
 * between ranks x threads threads.
 *
 * Checked: the pthreads output against a direct DFT at a few points, and the other outputs
 * against it everywhere, within 1e-9 of the outputs' scale (n: the input is in [-1, 1)). All
 * three use the same row transform and copy the rest, so they agree far closer than that.
 */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <dsm.h>

#include "common.h"

#define WL       "fft"
#define TILE     16 /* rows of the source a transpose reads together */
#define NSAMPLES 6  /* output points checked against the direct DFT */
#define TOL      1e-9

typedef double complex cplx;

/* The input: two values in [-1, 1) from a hash of the index. */
static cplx input(size_t j1, size_t j2, size_t n)
{
	uint64_t z = (j1 * n + j2) * 0x9e3779b97f4a7c15ULL + 0x6a09e667f3bcc909ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return CMPLX((double)(z >> 40) / (double)(1 << 23) - 1.0,
	             (double)(z & 0xffffff) / (double)(1 << 23) - 1.0);
}

static void init_row(cplx *row, size_t j1, size_t n)
{
	for (size_t j2 = 0; j2 < n; j2++)
		row[j2] = input(j1, j2, n);
}

/* Written out: the compiler's complex multiply calls a library routine for C99's infinities. */
static cplx mul(cplx a, cplx b)
{
	double ar = creal(a), ai = cimag(a), br = creal(b), bi = cimag(b);

	return CMPLX(ar * br - ai * bi, ar * bi + ai * br);
}

/* tw[k] = w^k for k < n / 2. NULL when out of memory. */
static cplx *twiddles(size_t n)
{
	cplx *tw = malloc((n / 2 ? n / 2 : 1) * sizeof(*tw));

	for (size_t k = 0; tw && k < n / 2; k++) {
		double a = -2.0 * M_PI * (double)k / (double)n;

		tw[k] = CMPLX(cos(a), sin(a));
	}
	return tw;
}

/* The 1-D FFT of one row of n points, in place. */
static void fft_row(cplx *a, size_t n, const cplx *tw)
{
	for (size_t i = 1, j = 0; i < n; i++) {
		size_t bit = n >> 1;

		for (; j & bit; bit >>= 1)
			j ^= bit;
		j ^= bit;
		if (i < j) {
			cplx x = a[i];

			a[i] = a[j];
			a[j] = x;
		}
	}
	for (size_t len = 2; len <= n; len <<= 1) {
		size_t half = len / 2, step = n / len;

		for (size_t s = 0; s < n; s += len) {
			for (size_t k = 0; k < half; k++) {
				cplx u = a[s + k], v = mul(a[s + k + half], tw[k * step]);

				a[s + k] = u + v;
				a[s + k + half] = u - v;
			}
		}
	}
}

/* Rows [lo, hi) of dst = the transpose of src (n x n), a few rows of src at a time. */
static void transpose_rows(const cplx *src, cplx *dst, size_t n, size_t lo, size_t hi)
{
	for (size_t jb = 0; jb < n; jb += TILE)
		for (size_t i = lo; i < hi; i++)
			for (size_t j = jb; j < jb + TILE && j < n; j++)
				dst[i * n + j] = src[j * n + i];
}

/* The kernel of the DSM and pthreads versions: the team transforms rows [lo, hi). */
struct fft_job {
	cplx *x, *y;
	const cplx *tw;
	size_t n, lo, hi; /* rows of this rank (of this process: pthreads) */
};

static void team_fft(struct team *t, int tid)
{
	struct fft_job *f = t->arg;
	size_t rows = f->hi - f->lo, n = f->n;
	size_t lo = f->lo + rows * (size_t)tid / (size_t)t->n;
	size_t hi = f->lo + rows * (size_t)(tid + 1) / (size_t)t->n;

	for (size_t i = lo; i < hi; i++)
		fft_row(f->x + i * n, n, f->tw);
	team_barrier(t, tid);
	transpose_rows(f->x, f->y, n, lo, hi);
	for (size_t i = lo; i < hi; i++)
		fft_row(f->y + i * n, n, f->tw);
	/* Everybody has read the columns of x it needed before anybody overwrites x. */
	team_barrier(t, tid);
	transpose_rows(f->y, f->x, n, lo, hi);
}

static int run_dsm(const struct bench_opts *o, struct fft_job *f, int nthreads, double *t,
                   struct stats_delta *sum)
{
	size_t n = f->n, lo, hi;
	char msg[160] = "";

	apps_home_rows(f->x, n * sizeof(cplx), n, o->rank, &f->lo, &f->hi);
	apps_home_rows(f->y, n * sizeof(cplx), n, o->rank, &lo, &hi);
	if (lo != f->lo || hi != f->hi) {
		snprintf(msg, sizeof(msg), "x and y have different homes: [%zu,%zu) [%zu,%zu)",
		         f->lo, f->hi, lo, hi);
		return apps_agree(o, WL, 0, msg);
	}
	for (size_t i = f->lo; i < f->hi; i++)
		init_row(f->x + i * n, i, n);
	return apps_timed_team(o, WL, nthreads, team_fft, f, true, t, sum);
}

/* Balanced blocks of rows: rank r has [row_lo(r), row_lo(r + 1)). */
static size_t row_lo(size_t n, int r, int nranks)
{
	return n * (size_t)r / (size_t)nranks;
}

/*
 * The MPI transpose of rows [lo, hi) of a (m = hi - lo of them) into rows [lo, hi) of b: the
 * columns of block s go to rank s, and what comes back from rank s is its rows of our columns.
 */
static void mpi_transpose(const struct bench_opts *o, size_t n, size_t lo, size_t hi, const cplx *a,
                          cplx *b, cplx *sbuf, cplx *rbuf, int *cnts)
{
	size_t m = hi - lo, nr = (size_t)o->nranks;
	int *c = cnts, *d = cnts + nr;

	for (int s = 0; s < o->nranks; s++) {
		size_t slo = row_lo(n, s, o->nranks), ms = row_lo(n, s + 1, o->nranks) - slo;
		size_t at = m * slo;

		/* Both ways the block is m x ms elements: the counts are symmetric. */
		c[s] = (int)(m * ms);
		d[s] = (int)at;
		for (size_t i = 0; i < m; i++)
			memcpy(sbuf + at + i * ms, a + i * n + slo, ms * sizeof(*a));
	}
	MPI_Alltoallv(sbuf, c, d, MPI_C_DOUBLE_COMPLEX, rbuf, c, d, MPI_C_DOUBLE_COMPLEX,
	              MPI_COMM_WORLD);
	for (int s = 0; s < o->nranks; s++) {
		size_t slo = row_lo(n, s, o->nranks), ms = row_lo(n, s + 1, o->nranks) - slo;
		const cplx *blk = rbuf + m * slo; /* ms rows of rank s, our m columns */

		for (size_t j = 0; j < m; j++)
			for (size_t i = 0; i < ms; i++)
				b[j * n + slo + i] = blk[i * m + j];
	}
}

/* The MPI version: this rank's rows [lo, hi) of the output, or NULL when out of memory (on
 * every rank). */
static cplx *run_mpi(const struct bench_opts *o, size_t n, size_t lo, size_t hi, const cplx *tw,
                     double *t)
{
	size_t m = hi - lo, elems = (m ? m : 1) * n;
	cplx *a = malloc(elems * sizeof(*a)), *b = malloc(elems * sizeof(*b));
	cplx *sbuf = malloc(elems * sizeof(*a)), *rbuf = malloc(elems * sizeof(*a));
	int *cnts = malloc(2 * (size_t)o->nranks * sizeof(*cnts));
	int fail = !a || !b || !sbuf || !rbuf || !cnts || !tw, anyfail;

	MPI_Allreduce(&fail, &anyfail, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (anyfail) {
		free(a);
		a = NULL;
		goto out;
	}
	for (size_t i = 0; i < m; i++)
		init_row(a + i * n, lo + i, n);
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	for (size_t i = 0; i < m; i++)
		fft_row(a + i * n, n, tw);
	mpi_transpose(o, n, lo, hi, a, b, sbuf, rbuf, cnts);
	for (size_t i = 0; i < m; i++)
		fft_row(b + i * n, n, tw);
	mpi_transpose(o, n, lo, hi, b, a, sbuf, rbuf, cnts);
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now() - *t;
out:
	free(cnts);
	free(rbuf);
	free(sbuf);
	free(b);
	return a;
}

/* The pthreads version: rank 0's output is (*mem)[0 .. n * n); *mem is what to free. */
static int run_pthreads(const struct bench_opts *o, size_t n, int nthreads, const cplx *tw,
                        double *t, cplx **mem)
{
	struct fft_job f = {.n = n, .lo = 0, .hi = n, .tw = tw};
	cplx *a = NULL;

	if (o->rank == 0 && tw && (a = malloc(2 * n * n * sizeof(*a))) != NULL) {
		f.x = a;
		f.y = a + n * n;
		for (size_t i = 0; i < n; i++)
			init_row(f.x + i * n, i, n);
		/* Touched before the clock starts, as the DSM version's y is mapped. */
		memset(f.y, 0, n * n * sizeof(*a));
	}
	*mem = a;
	return apps_timed_pthreads(o, WL, nthreads, team_fft, &f, a != NULL,
	                           "out of memory for the arrays", t);
}

/* X[k1][k2] computed directly, O(n^2). */
static cplx dft_point(size_t n, size_t k1, size_t k2, const cplx *tw)
{
	cplx s = 0;

	for (size_t j1 = 0; j1 < n; j1++) {
		for (size_t j2 = 0; j2 < n; j2++) {
			size_t e = (j1 * k1 + j2 * k2) % n;
			cplx w = e < n / 2 ? tw[e] : -tw[e - n / 2];

			s += mul(input(j1, j2, n), w);
		}
	}
	return s;
}

/* The first of @count points of @got farther than the tolerance from @want, in msg; 1 if none. */
static int close_rows(const cplx *got, const cplx *want, size_t count, size_t n, size_t first,
                      const char *what, char *msg, size_t msglen)
{
	for (size_t i = 0; i < count; i++) {
		if (cabs(got[i] - want[i]) <= TOL * (double)n)
			continue;
		snprintf(msg, msglen, "%s differ at [%zu][%zu]: %.17g%+.17gi vs %.17g%+.17gi", what,
		         (first + i) / n, (first + i) % n, creal(got[i]), cimag(got[i]),
		         creal(want[i]), cimag(want[i]));
		return 0;
	}
	return 1;
}

/* Rank 0: the pthreads output against the direct DFT at a few points. */
static int check_dft(const cplx *out, size_t n, const cplx *tw, char *msg, size_t msglen)
{
	const size_t pts[NSAMPLES][2] = {{0, 0},         {1, 0},         {0, 1},
	                                 {n - 1, n / 2}, {n / 3, n / 5}, {n / 2 + 1, n - 3}};

	for (int p = 0; p < NSAMPLES; p++) {
		size_t k1 = pts[p][0] % n, k2 = pts[p][1] % n;
		cplx want = dft_point(n, k1, k2, tw);

		if (!close_rows(out + k1 * n + k2, &want, 1, n, k1 * n + k2, "pthreads and dft",
		                msg, msglen))
			return 0;
	}
	return 1;
}

int bench_app_fft(const struct bench_opts *o)
{
	long want = bench_count(o, 1024, 64);
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct fft_job f = {0};
	struct stats_delta sum = {{0}};
	cplx *tw, *mpi_rows = NULL, *pth_mem = NULL;
	double t_dsm = 0, t_mpi = 0, t_pth = 0;
	size_t n = 8, bytes, lo, hi;
	char msg[256] = "", mx[64], px[128];
	int ok = 1, ret;

	/* --size scales n, kept a power of two of at least 8. */
	while ((long)n * 2 <= want)
		n *= 2;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	bytes = n * n * sizeof(cplx);
	f.n = n;
	f.tw = tw = twiddles(n);

	f.x = dsm_all_alloc(bytes, DSM_DIST_BLOCK);
	f.y = f.x ? dsm_all_alloc(bytes, DSM_DIST_BLOCK) : NULL;
	if (f.y == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc(%zu): %s", bytes, dsm_strerror(-errno));
	else if (tw == NULL)
		snprintf(msg, sizeof(msg), "out of memory for the twiddles");
	if (apps_agree(o, WL, f.y != NULL && tw != NULL, msg)) {
		if (f.y)
			dsm_all_free(f.y);
		if (f.x)
			dsm_all_free(f.x);
		free(tw);
		return -1;
	}
	ret = run_dsm(o, &f, nthreads, &t_dsm, &sum);

	lo = row_lo(n, o->rank, o->nranks);
	hi = row_lo(n, o->rank + 1, o->nranks);
	if (ret == 0 && (mpi_rows = run_mpi(o, n, lo, hi, tw, &t_mpi)) == NULL)
		ret = apps_agree(o, WL, 0, "out of memory for the MPI arrays");
	if (ret == 0)
		ret = run_pthreads(o, n, pth_threads, tw, &t_pth, &pth_mem);
	if (ret == 0) {
		/* Reading the DSM rows homed elsewhere is misses, outside the timed parts. */
		ok = close_rows(f.x + lo * n, mpi_rows, (hi - lo) * n, n, lo * n, "dsm and mpi",
		                msg, sizeof(msg));
		if (ok && o->rank == 0)
			ok = check_dft(pth_mem, n, tw, msg, sizeof(msg)) &&
			     close_rows(f.x, pth_mem, n * n, n, 0, "dsm and pthreads", msg,
			                sizeof(msg));
		ret = apps_agree(o, WL, ok, msg);
	}
	free(pth_mem);
	free(mpi_rows);
	dsm_barrier();
	dsm_all_free(f.y);
	dsm_all_free(f.x);
	free(tw);
	if (ret)
		return ret;

	snprintf(mx, sizeof(mx), "\"n\": %zu", n);
	snprintf(px, sizeof(px), "\"n\": %zu, \"dft_points_checked\": %d", n, NSAMPLES);
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = n,
	                                   .nthreads = nthreads,
	                                   .pth_threads = pth_threads,
	                                   .t_mpi = t_mpi,
	                                   .t_pth = t_pth,
	                                   .t_dsm = t_dsm,
	                                   .mpi_extra = mx,
	                                   .pth_extra = px,
	                                   .dsm_extra = mx,
	                                   .sum = &sum});
	return 0;
}
