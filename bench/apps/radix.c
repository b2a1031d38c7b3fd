/* SPDX-License-Identifier: MIT */
/*
 * radix: an LSD radix sort of 64-bit keys, 8 bits a pass (8 passes), from one array into the
 * other and back. Key i of the input is a function of i alone, so that every version sorts the
 * same keys whichever block of them a rank generates; each rank generates keys_per_rank of them.
 *
 * DSM version, written the way a threaded program is: both arrays and a histogram of one row of
 * 256 counts per worker (ranks x threads) are dsm_all_alloc(DSM_DIST_BLOCK). A rank's keys are
 * the ones it is home of, split between its threads. Every pass, each worker counts the digits
 * of its block, writes the counts into its row, and after a barrier reads the whole histogram:
 * its keys of digit d go after every key of a smaller digit and after the keys of digit d of the
 * workers before it. It scatters its keys there, into lines homed anywhere, and after a second
 * barrier the arrays swap.
 *
 * MPI version, as an MPI programmer writes it: balanced blocks in private memory. Every pass:
 * local counts; MPI_Allreduce (keys per digit) and MPI_Exscan (keys per digit on the ranks
 * before) say where each key goes; the keys are bucketed locally in that order (so each rank's
 * share is one run), the runs' lengths go with MPI_Alltoall and the keys with MPI_Alltoallv, and
 * a stable counting sort on the digit puts the received keys (each source's in its order) in
 * place.
 *
 * pthreads version: the DSM kernel itself on rank 0 alone, on malloc'ed arrays and histogram,
 * the keys split in balanced blocks between ranks x threads threads.
 *
 * Checked: the output is sorted and has the input's sum and xor of keys (a permutation, as far
 * as two checksums tell), and the three outputs are the same, key for key.
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

#define WL     "radix"
#define BITS   8
#define RADIX  (1u << BITS)
#define PASSES (64 / BITS) /* even: the sorted keys end in the first array */

/* Key i of the input: splitmix64's finalizer of a counter, all 64 bits in use. */
static uint64_t key_of(uint64_t i)
{
	uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x243f6a8885a308d3ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned digit(uint64_t k, int pass)
{
	return (unsigned)(k >> (pass * BITS)) & (RADIX - 1);
}

/* The kernel of the DSM and pthreads versions. */
struct radix_job {
	uint64_t *keys[2];
	uint64_t *hist;       /* nworkers rows of RADIX counts */
	const size_t *bounds; /* worker w sorts keys [bounds[w], bounds[w + 1]) */
	int first;            /* thread tid of the team is worker first + tid */
	int nworkers;
};

/* Where the keys of worker @w go this pass: off[d] for its first key of digit d. */
static void offsets(const struct radix_job *j, int w, uint64_t *off)
{
	uint64_t base = 0;

	for (unsigned d = 0; d < RADIX; d++) {
		uint64_t before = 0, all = 0;

		for (int v = 0; v < j->nworkers; v++) {
			uint64_t c = j->hist[(size_t)v * RADIX + d];

			all += c;
			before += v < w ? c : 0;
		}
		off[d] = base + before;
		base += all;
	}
}

static void team_sort(struct team *t, int tid)
{
	struct radix_job *j = t->arg;
	int w = j->first + tid;
	size_t lo = j->bounds[w], hi = j->bounds[w + 1];
	uint64_t cnt[RADIX], off[RADIX];

	for (int pass = 0; pass < PASSES; pass++) {
		const uint64_t *src = j->keys[pass & 1];
		uint64_t *dst = j->keys[(pass & 1) ^ 1];

		memset(cnt, 0, sizeof(cnt));
		for (size_t i = lo; i < hi; i++)
			cnt[digit(src[i], pass)]++;
		memcpy(j->hist + (size_t)w * RADIX, cnt, sizeof(cnt));
		team_barrier(t, tid);
		offsets(j, w, off);
		for (size_t i = lo; i < hi; i++) {
			uint64_t k = src[i];

			dst[off[digit(k, pass)]++] = k;
		}
		/* Nobody reads the histogram or this pass's input any more after it. */
		team_barrier(t, tid);
	}
}

/*
 * The keys each rank is home of in a DSM_DIST_BLOCK array of @n keys: rank r's are
 * [b[r], b[r + 1]). -1 when the homes are not in rank order.
 */
static int home_bounds(const uint64_t *a, size_t n, size_t line_size, int nranks, size_t *b)
{
	size_t step = line_size / sizeof(*a);
	int cur = 0;

	b[0] = 0;
	for (size_t i = 0; i < n; i += step) {
		int h = dsm_home(a + i);

		if (h < cur || h >= nranks)
			return -1;
		while (cur < h)
			b[++cur] = i;
	}
	while (cur < nranks)
		b[++cur] = n;
	return 0;
}

static int run_dsm(const struct bench_opts *o, struct radix_job *j, size_t n, int nthreads,
                   double *t, struct stats_delta *sum)
{
	size_t *rb = malloc(2 * ((size_t)o->nranks + 1) * sizeof(*rb)), *rb1;
	size_t *bounds = malloc(((size_t)j->nworkers + 1) * sizeof(*bounds));
	char msg[160] = "";
	int ok = rb != NULL && bounds != NULL, ret;

	if (!ok) {
		snprintf(msg, sizeof(msg), "out of memory");
	} else {
		rb1 = rb + o->nranks + 1;
		ok = home_bounds(j->keys[0], n, o->line_size, o->nranks, rb) == 0 &&
		     home_bounds(j->keys[1], n, o->line_size, o->nranks, rb1) == 0 &&
		     memcmp(rb, rb1, ((size_t)o->nranks + 1) * sizeof(*rb)) == 0;
		if (!ok)
			snprintf(msg, sizeof(msg),
			         "the two arrays are not block-distributed alike over the ranks");
	}
	if (apps_agree(o, WL, ok, msg)) {
		free(bounds);
		free(rb);
		return -1;
	}
	/* Worker r * nthreads + tid takes its share of the keys rank r is home of. */
	for (int r = 0; r < o->nranks; r++)
		for (int tid = 0; tid < nthreads; tid++)
			bounds[r * nthreads + tid] =
			        rb[r] + (rb[r + 1] - rb[r]) * (size_t)tid / (size_t)nthreads;
	bounds[j->nworkers] = n;
	j->bounds = bounds;
	j->first = o->rank * nthreads;
	/* Each rank generates the keys it is home of. */
	for (size_t i = rb[o->rank]; i < rb[o->rank + 1]; i++)
		j->keys[0][i] = key_of(i);
	free(rb);

	ret = apps_timed_team(o, WL, nthreads, team_sort, j, false, t, sum);
	j->bounds = NULL;
	free(bounds);
	return ret;
}

/* A stable counting sort of @m keys on their digit of @pass, from src into dst. */
static void counting_sort(const uint64_t *src, uint64_t *dst, size_t m, int pass)
{
	size_t off[RADIX] = {0}, base = 0;

	for (size_t i = 0; i < m; i++)
		off[digit(src[i], pass)]++;
	for (unsigned d = 0; d < RADIX; d++) {
		size_t c = off[d];

		off[d] = base;
		base += c;
	}
	for (size_t i = 0; i < m; i++)
		dst[off[digit(src[i], pass)]++] = src[i];
}

/* The balanced block of @r among @nranks in @n keys starts here. */
static size_t block_lo(size_t n, int r, int nranks)
{
	return n * (size_t)r / (size_t)nranks;
}

/* How many of this rank's keys (counts @cnt, the first of digit d at global position pos[d])
 * land in each rank's block: sc[s]. */
static void send_counts(const struct bench_opts *o, size_t n, const uint64_t *cnt,
                        const uint64_t *pos, int *sc)
{
	int s = 0;

	memset(sc, 0, (size_t)o->nranks * sizeof(*sc));
	for (unsigned d = 0; d < RADIX; d++) {
		uint64_t p = pos[d], c = cnt[d];

		/* Positions grow with d: the destinations only move forward. */
		while (c > 0) {
			uint64_t room;

			while (p >= block_lo(n, s + 1, o->nranks))
				s++;
			room = block_lo(n, s + 1, o->nranks) - p;
			room = room < c ? room : c;
			sc[s] += (int)room;
			p += room;
			c -= room;
		}
	}
}

/* The MPI version: returns this rank's block [lo, hi) of the sorted keys, or NULL when out of
 * memory (on every rank). */
static uint64_t *run_mpi(const struct bench_opts *o, size_t n, size_t lo, size_t hi, double *t)
{
	size_t m = hi - lo, nr = (size_t)o->nranks;
	uint64_t *a = malloc((m ? m : 1) * sizeof(*a)), *sbuf = malloc((m ? m : 1) * sizeof(*a));
	uint64_t *rbuf = malloc((m ? m : 1) * sizeof(*a));
	int *cnts = malloc(4 * nr * sizeof(*cnts)), *sc, *sd, *rc, *rd;
	uint64_t cnt[RADIX], tot[RADIX], before[RADIX], pos[RADIX], boff[RADIX];
	int fail = !a || !sbuf || !rbuf || !cnts, anyfail;

	MPI_Allreduce(&fail, &anyfail, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (anyfail) {
		free(a);
		a = NULL;
		goto out;
	}
	sc = cnts;
	sd = sc + nr;
	rc = sd + nr;
	rd = rc + nr;
	for (size_t i = 0; i < m; i++)
		a[i] = key_of(lo + i);
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now();
	for (int pass = 0; pass < PASSES; pass++) {
		uint64_t base = 0, lbase = 0;

		memset(cnt, 0, sizeof(cnt));
		for (size_t i = 0; i < m; i++)
			cnt[digit(a[i], pass)]++;
		MPI_Allreduce(cnt, tot, RADIX, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
		MPI_Exscan(cnt, before, RADIX, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
		if (o->rank == 0)
			memset(before, 0, sizeof(before));
		for (unsigned d = 0; d < RADIX; d++) {
			pos[d] = base + before[d];
			base += tot[d];
			boff[d] = lbase;
			lbase += cnt[d];
		}
		/* Bucketed, the keys are in the order of their global positions. */
		for (size_t i = 0; i < m; i++)
			sbuf[boff[digit(a[i], pass)]++] = a[i];
		send_counts(o, n, cnt, pos, sc);
		MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, MPI_COMM_WORLD);
		sd[0] = rd[0] = 0;
		for (size_t s = 1; s < nr; s++) {
			sd[s] = sd[s - 1] + sc[s - 1];
			rd[s] = rd[s - 1] + rc[s - 1];
		}
		MPI_Alltoallv(sbuf, sc, sd, MPI_UINT64_T, rbuf, rc, rd, MPI_UINT64_T,
		              MPI_COMM_WORLD);
		/* From each source, its keys of a digit in their order; the sources in rank
		 * order: a stable sort on the digit gives the global order. */
		counting_sort(rbuf, a, m, pass);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	*t = bench_now() - *t;
out:
	free(cnts);
	free(rbuf);
	free(sbuf);
	return a;
}

/* The pthreads version: rank 0's sorted keys are (*mem)[0..n); *mem is what to free. */
static int run_pthreads(const struct bench_opts *o, size_t n, int nthreads, double *t,
                        uint64_t **mem)
{
	struct radix_job j = {.first = 0, .nworkers = nthreads};
	size_t *bounds = NULL;
	uint64_t *a = NULL;
	int ret;

	if (o->rank == 0) {
		a = malloc((2 * n + (size_t)nthreads * RADIX) * sizeof(*a));
		bounds = malloc(((size_t)nthreads + 1) * sizeof(*bounds));
	}
	if (a && bounds) {
		j.keys[0] = a;
		j.keys[1] = a + n;
		j.hist = a + 2 * n;
		for (int w = 0; w <= nthreads; w++)
			bounds[w] = n * (size_t)w / (size_t)nthreads;
		j.bounds = bounds;
		for (size_t i = 0; i < n; i++)
			a[i] = key_of(i);
		/* Touched before the clock starts, as the DSM version's second array is mapped. */
		memset(a + n, 0, n * sizeof(*a));
	}
	ret = apps_timed_pthreads(o, WL, nthreads, team_sort, &j, a && bounds,
	                          "out of memory for the keys", t);
	free(bounds);
	*mem = a;
	return ret;
}

/* Rank 0: the DSM output is sorted, has the input's checksums, and equals the pthreads one. */
static int check_rank0(const uint64_t *dsm, const uint64_t *pth, size_t n, char *msg, size_t msglen)
{
	uint64_t in_sum = 0, in_xor = 0, sum = 0, x = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t k = key_of(i);

		in_sum += k;
		in_xor ^= k;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t k = dsm[i];

		if (i > 0 && k < dsm[i - 1]) {
			snprintf(msg, msglen,
			         "dsm output not sorted at %zu: %#" PRIx64 " < %#" PRIx64, i, k,
			         dsm[i - 1]);
			return 0;
		}
		if (k != pth[i]) {
			snprintf(msg, msglen,
			         "dsm and pthreads differ at %zu: %#" PRIx64 " vs %#" PRIx64, i, k,
			         pth[i]);
			return 0;
		}
		sum += k;
		x ^= k;
	}
	if (sum != in_sum || x != in_xor) {
		snprintf(msg, msglen,
		         "not a permutation: sum %#" PRIx64 " xor %#" PRIx64 ", input sum %#" PRIx64
		         " xor %#" PRIx64,
		         sum, x, in_sum, in_xor);
		return 0;
	}
	return 1;
}

int bench_app_radix(const struct bench_opts *o)
{
	size_t per_rank = (size_t)bench_count(o, 1l << 19, 1l << 9), n, bytes, lo, hi;
	int nthreads = o->threads > 0 ? o->threads : 1, pth_threads;
	struct radix_job j = {0};
	struct stats_delta sum = {{0}};
	uint64_t *mpi_keys = NULL, *pth_mem = NULL;
	double t_dsm = 0, t_mpi = 0, t_pth = 0;
	char msg[200] = "", mx[128];
	int ok = 1, ret;

	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pth_threads = apps_pthreads_count(o, nthreads);
	n = per_rank * (size_t)o->nranks;
	bytes = n * sizeof(uint64_t);
	j.nworkers = o->nranks * nthreads;

	j.keys[0] = dsm_all_alloc(bytes, DSM_DIST_BLOCK);
	j.keys[1] = j.keys[0] ? dsm_all_alloc(bytes, DSM_DIST_BLOCK) : NULL;
	j.hist = j.keys[1] ? dsm_all_alloc((size_t)j.nworkers * RADIX * sizeof(uint64_t),
	                                   DSM_DIST_BLOCK)
	                   : NULL;
	if (j.hist == NULL)
		snprintf(msg, sizeof(msg), "dsm_all_alloc: %s", dsm_strerror(-errno));
	if (apps_agree(o, WL, j.hist != NULL, msg)) {
		if (j.keys[1])
			dsm_all_free(j.keys[1]);
		if (j.keys[0])
			dsm_all_free(j.keys[0]);
		return -1;
	}
	ret = run_dsm(o, &j, n, nthreads, &t_dsm, &sum);

	lo = block_lo(n, o->rank, o->nranks);
	hi = block_lo(n, o->rank + 1, o->nranks);
	if (ret == 0 && (mpi_keys = run_mpi(o, n, lo, hi, &t_mpi)) == NULL)
		ret = apps_agree(o, WL, 0, "out of memory for the MPI keys");
	if (ret == 0)
		ret = run_pthreads(o, n, pth_threads, &t_pth, &pth_mem);
	if (ret == 0) {
		/* Reading the DSM keys homed elsewhere is misses, outside the timed parts. */
		for (size_t i = lo; i < hi && ok; i++) {
			if (j.keys[0][i] == mpi_keys[i - lo])
				continue;
			snprintf(msg, sizeof(msg),
			         "dsm and mpi differ at %zu: %#" PRIx64 " vs %#" PRIx64, i,
			         j.keys[0][i], mpi_keys[i - lo]);
			ok = 0;
		}
		if (ok && o->rank == 0)
			ok = check_rank0(j.keys[0], pth_mem, n, msg, sizeof(msg));
		ret = apps_agree(o, WL, ok, msg);
	}
	free(pth_mem);
	free(mpi_keys);
	dsm_barrier();
	dsm_all_free(j.hist);
	dsm_all_free(j.keys[1]);
	dsm_all_free(j.keys[0]);
	if (ret)
		return ret;

	snprintf(mx, sizeof(mx), "\"keys\": %zu, \"keys_per_rank\": %zu, \"passes\": %d", n,
	         per_rank, PASSES);
	apps_emit(o, &(struct apps_result){.wl = WL,
	                                   .size = n,
	                                   .nthreads = nthreads,
	                                   .pth_threads = pth_threads,
	                                   .t_mpi = t_mpi,
	                                   .t_pth = t_pth,
	                                   .t_dsm = t_dsm,
	                                   .mpi_extra = mx,
	                                   .pth_extra = mx,
	                                   .dsm_extra = mx,
	                                   .sum = &sum});
	return 0;
}
