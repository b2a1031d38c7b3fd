/* SPDX-License-Identifier: MIT */
/*
 * The bounded cache (DSM_CACHE_SIZE), under mpiexec with a small cache set by the test:
 *
 *   refused     dsm_init with a cache smaller than a line (dsm_config_t.cache_size) fails on
 *               every rank with -EINVAL; dsm_init then works
 *   survive     an array of 64 caches' worth of lines homed at rank 0; the other ranks write
 *               every word of their lines (a value per round and line), so their copies are
 *               evicted dirty and written back; after a barrier every rank reads every
 *               line (the writers again, after their copies went); MR_ROUNDS / 2500 rounds
 *   contend     every rank but 0 adds 1 to word 0 of every line of 4 caches' worth, in
 *               sweeps: copies are evicted while other ranks ask for them; exact totals
 *   refault     2 threads per rank read the same 2 caches' worth of lines in scattered
 *               orders, checking the values: a line is evicted while the other thread
 *               faults on it again
 *   rss         rank 1 reads 64 caches' worth of lines (at least 128 MiB) once while a
 *               thread samples its resident memory (/proc/self/statm) every millisecond:
 *               the growth must stay within the cache plus 32 MiB. MR_CACHE_UNBOUNDED=1
 *               (a run with DSM_CACHE_SIZE=unlimited) expects the bound broken instead:
 *               the test of the test
 *   counters    evictions, clean and dirty, write-back bytes, the cache's size and
 *               high-water mark in dsm_stats
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

static int rank, nranks;
static size_t L, cache_lines;

static uint64_t val(long round, size_t line, size_t word)
{
	return (uint64_t)round << 40 | (uint64_t)line << 12 | word;
}

static void stats(dsm_stats_t *s)
{
	memset(s, 0, sizeof(*s));
	s->struct_size = sizeof(*s);
	CHECK(dsm_stats(s) == 0);
}

static void survive(long rounds)
{
	size_t n = 64 * cache_lines, words = L / 8, bad = 0;
	uint64_t *a = dsm_all_alloc(n * L, DSM_DIST_LOCAL);

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (long r = 1; r <= rounds; r++) {
		if (rank != 0)
			for (size_t i = (size_t)rank - 1; i < n; i += (size_t)nranks - 1)
				for (size_t w = 0; w < words; w += 61)
					a[i * words + w] = val(r, i, w);
		dsm_barrier();
		for (size_t i = 0; i < n; i++)
			for (size_t w = 0; w < words; w += 61)
				bad += a[i * words + w] != val(r, i, w);
		dsm_barrier();
	}
	CHECK(bad == 0);
	if (bad)
		fprintf(stderr, "[rank %d] survive: %zu words read wrong\n", rank, bad);
	CHECK(dsm_all_free(a) == 0);
}

static void contend(long rounds)
{
	size_t n = 4 * cache_lines, words = L / 8, bad = 0;
	_Atomic uint64_t *a = dsm_all_alloc(n * L, DSM_DIST_CYCLIC);

	CHECK(a != NULL);
	if (a == NULL)
		return;
	dsm_barrier();
	for (long r = 0; r < rounds; r++)
		if (rank != 0)
			for (size_t i = 0; i < n; i++)
				atomic_fetch_add(&a[((i + (size_t)rank * 7) % n) * words], 1);
	dsm_barrier();
	for (size_t i = 0; i < n; i++)
		bad += atomic_load(&a[i * words]) != (uint64_t)(rounds * (nranks - 1));
	CHECK(bad == 0);
	if (bad)
		fprintf(stderr, "[rank %d] contend: %zu counters wrong\n", rank, bad);
	CHECK(dsm_all_free((void *)a) == 0);
}

struct refault_arg {
	const uint64_t *a;
	size_t n, words;
	unsigned seed;
	long sweeps, bad;
};

static void *refault_thread(void *p)
{
	struct refault_arg *ra = p;

	for (long s = 0; s < ra->sweeps; s++)
		for (size_t k = 0; k < ra->n; k++) {
			size_t i = (k * 7 + (size_t)rand_r(&ra->seed) % 3) % ra->n;

			ra->bad +=
			        ((volatile const uint64_t *)ra->a)[i * ra->words] != val(1, i, 0);
		}
	return NULL;
}

static void refault(long sweeps)
{
	size_t n = 2 * cache_lines, words = L / 8;
	uint64_t *a = dsm_all_alloc(n * L, DSM_DIST_LOCAL);
	struct refault_arg ra[2];
	pthread_t t[2];

	CHECK(a != NULL);
	if (a == NULL)
		return;
	if (rank == 0)
		for (size_t i = 0; i < n; i++)
			a[i * words] = val(1, i, 0);
	dsm_barrier();
	for (int k = 0; k < 2; k++) {
		ra[k] = (struct refault_arg){a, n, words, (unsigned)(rank * 2 + k + 1), sweeps, 0};
		CHECK(pthread_create(&t[k], NULL, refault_thread, &ra[k]) == 0);
	}
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	CHECK(ra[0].bad == 0 && ra[1].bad == 0);
	dsm_barrier();
	CHECK(dsm_all_free(a) == 0);
}

static atomic_bool sampling;
static long page_kb;

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;

	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * page_kb;
}

static void *sampler(void *p)
{
	long *max = p;
	struct timespec ms = {0, 1000000};

	while (atomic_load(&sampling)) {
		long r = rss_kb();

		if (r > *max)
			*max = r;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void rss(bool unbounded)
{
	size_t n = 64 * cache_lines, words = L / 8;
	uint64_t *a;
	long before, max = 0, limit_kb = (long)(cache_lines * L / 1024) + 32 * 1024;
	uint64_t sum = 0;
	pthread_t t;

	if (n * L < (128u << 20))
		n = (128u << 20) / L;
	a = dsm_all_alloc(n * L, DSM_DIST_LOCAL);
	CHECK(a != NULL);
	if (a == NULL)
		return;
	dsm_barrier();
	if (rank == 1) {
		before = rss_kb();
		max = before;
		atomic_store(&sampling, true);
		CHECK(pthread_create(&t, NULL, sampler, &max) == 0);
		for (size_t i = 0; i < n; i++)
			sum += ((volatile uint64_t *)a)[i * words];
		atomic_store(&sampling, false);
		pthread_join(t, NULL);
		CHECK(sum == 0);
		printf("rss: %zu MiB of lines read, resident memory grew by at most %ld KiB (cache "
		       "%zu KiB, bound %ld KiB)\n",
		       n * L >> 20, max - before, cache_lines * L / 1024, limit_kb);
		if (unbounded)
			CHECK(max - before > limit_kb); /* the check below can fail */
		else
			CHECK(max - before <= limit_kb);
	}
	dsm_barrier();
	CHECK(dsm_all_free(a) == 0);
}

int main(int argc, char **argv)
{
	dsm_config_t cfg = DSM_CONFIG_INIT;
	dsm_stats_t s0, s1;
	const char *ub = getenv("MR_CACHE_UNBOUNDED");
	bool unbounded = ub && ub[0] == '1';
	long rounds;

	mr_start(&argc, &argv);
	L = mr_line_size();
	page_kb = sysconf(_SC_PAGESIZE) / 1024;
	rounds = mr_rounds(10000) / 2500;
	cfg.cache_size = L / 2;
	CHECK(dsm_init(&cfg) == -EINVAL);
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	stats(&s0);
	cache_lines = s0.cache_limit_bytes / L;
	CHECK(unbounded ? cache_lines == 0 : cache_lines > 0);
	if (cache_lines == 0)
		cache_lines = 16; /* unlimited: the sizes of a 16-line cache */
	if (!unbounded) {
		survive(rounds);
		contend(rounds * 10);
		refault(rounds * 5);
	}
	rss(unbounded);
	stats(&s1);
	if (!unbounded && rank != 0) {
		CHECK(s1.evictions_dirty > s0.evictions_dirty);
		CHECK(s1.evictions_clean > s0.evictions_clean);
		CHECK(s1.cache_hwm_bytes >= s1.cache_limit_bytes / 2);
		/* Past the budget only by what was on its way while evictions ran. */
		CHECK(s1.cache_hwm_bytes <= 4 * s1.cache_limit_bytes);
		CHECK(s1.cache_bytes <= s1.cache_hwm_bytes);
		CHECK(s1.cache_bytes <= s1.cache_limit_bytes);
	}
	if (rank == 0)
		printf("mr_cache: %d ranks, %zu-line cache, %ld rounds\n", nranks, cache_lines,
		       rounds);
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
